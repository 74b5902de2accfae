//! `ticketd deadline` against an independent table of clocks.
//!
//! Every line of `fixtures/clocks/deadlines.jsonl` gives the command-line
//! arguments (plus, optionally, a `fixtures/clocks/*.toml` calendar passed as
//! `--config`) and the exact JSON object the command must print: support
//! `respond_by` instants (opening hours, weekends, US federal holidays on
//! their observed dates, DST, received offsets) and GDPR / UK GDPR / CCPA
//! dates (month ends, leap years, UK bank holidays and substitute days,
//! business days). The expected values were computed independently of the
//! implementation — by hand and by `fixtures/clocks/oracle.py` (Python,
//! standard library, minute-by-minute walk), cross-checked against published
//! OPM / GOV.UK calendars; `python3 fixtures/clocks/oracle.py --check`
//! re-derives them. All mismatches are collected and reported together.
//! Bad input must fail with a non-zero exit and a message on stderr.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ticketd");

fn clocks_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/clocks")
}

struct Case {
    line: usize,
    name: String,
    args: Vec<String>,
    config: Option<String>,
    expect: Value,
    why: String,
}

fn load_cases() -> Vec<Case> {
    let path = clocks_dir().join("deadlines.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}:{}: not JSON: {e}", path.display(), i + 1));
        let field = |k: &str| {
            row.get(k)
                .unwrap_or_else(|| panic!("{}:{}: no `{k}`", path.display(), i + 1))
        };
        let args = field("args")
            .as_array()
            .unwrap_or_else(|| panic!("line {}: args is not an array", i + 1))
            .iter()
            .map(|a| {
                a.as_str()
                    .unwrap_or_else(|| panic!("line {}: args must be strings", i + 1))
                    .to_string()
            })
            .collect();
        cases.push(Case {
            line: i + 1,
            name: field("name").as_str().unwrap_or_default().to_string(),
            args,
            config: row
                .get("config")
                .and_then(Value::as_str)
                .map(str::to_string),
            expect: field("expect").clone(),
            why: row
                .get("why")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        });
    }
    cases
}

fn deadline(args: &[String], config: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("deadline");
    if let Some(c) = config {
        cmd.arg("--config").arg(clocks_dir().join(c));
    }
    cmd.args(args).output().expect("run ticketd deadline")
}

#[test]
fn table_is_big_enough_and_well_formed() {
    let cases = load_cases();
    assert!(
        cases.len() >= 60,
        "only {} cases in deadlines.jsonl",
        cases.len()
    );
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "case names must be unique");
    for c in &cases {
        assert!(!c.name.is_empty(), "line {}: empty name", c.line);
        assert!(
            c.expect.is_object(),
            "line {}: expect is not an object",
            c.line
        );
        if let Some(cfg) = &c.config {
            assert!(
                clocks_dir().join(cfg).is_file(),
                "line {}: config {cfg} missing",
                c.line
            );
        }
    }
}

#[test]
fn every_deadline_matches_the_independent_table() {
    let cases = load_cases();
    let mut failures = Vec::new();
    for c in &cases {
        let out = deadline(&c.args, c.config.as_deref());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let got = if !out.status.success() {
            Err(format!(
                "exit {:?}, stderr: {}",
                out.status.code(),
                stderr.trim()
            ))
        } else {
            serde_json::from_str::<Value>(stdout.trim())
                .map_err(|e| format!("stdout is not one JSON value ({e}): {:?}", stdout))
        };
        let ok = matches!(&got, Ok(v) if *v == c.expect);
        if !ok {
            let got = match got {
                Ok(v) => v.to_string(),
                Err(e) => e,
            };
            let config = c
                .config
                .as_deref()
                .map(|x| format!(" --config fixtures/clocks/{x}"))
                .unwrap_or_default();
            failures.push(format!(
                "- {} (line {})\n    args:     deadline{} {}\n    expected: {}\n    got:      {}\n    why:      {}",
                c.name,
                c.line,
                config,
                c.args.join(" "),
                c.expect,
                got,
                c.why
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} deadline cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn assert_refused(args: &[&str], problem: &[&str]) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = deadline(&args, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "deadline {args:?} should fail; stdout: {stdout}"
    );
    assert!(
        stdout.trim().is_empty(),
        "deadline {args:?} failed but printed on stdout: {stdout}"
    );
    assert!(
        !stderr.trim().is_empty(),
        "deadline {args:?} failed without a message"
    );
    let lower = stderr.to_lowercase();
    assert!(
        problem.iter().any(|p| lower.contains(p)),
        "deadline {args:?}: stderr should name the problem (one of {problem:?}): {stderr}"
    );
}

#[test]
fn an_unparseable_received_instant_is_refused() {
    assert_refused(
        &["--support-level", "3", "--received", "not-a-date"],
        &["not-a-date", "received"],
    );
}

#[test]
fn an_unknown_support_level_is_refused() {
    assert_refused(
        &[
            "--support-level",
            "9",
            "--received",
            "2026-11-24T10:00:00-05:00",
        ],
        &["9", "level"],
    );
}

#[test]
fn an_unknown_privacy_regime_is_refused() {
    assert_refused(
        &[
            "--privacy",
            "martian",
            "--received",
            "2026-11-24T10:00:00-05:00",
        ],
        &["martian", "privacy"],
    );
}
