//! Learning from staff corrections: a vendor whose own mail the shipped
//! corpus does not know (reports about its "Zephyr ledger", which this
//! vendor treats as level 1) imports a batch, staff relevel half of it, and
//! `ticketd triage train --from-store` then gets the other half (a holdout
//! the corrections never saw) right more often than the same training
//! without the store. Runs the real binary on a real store.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ticketd");

/// Different writers' wording around the one vendor-specific topic.
const OPENERS: &[&str] = &[
    "The Zephyr ledger shows a difference of a few cents",
    "Our Zephyr ledger total is off by one line",
    "Zephyr ledger: the balance does not match the statement",
    "In the Zephyr ledger the closing figure looks slightly different",
    "The Zephyr ledger export has a small mismatch against the bank file",
    "Zephyr ledger numbers differ from last week's printout",
    "There is a tiny gap in the Zephyr ledger reconciliation",
    "The Zephyr ledger sum is not the same as the invoice list",
    "Zephyr ledger reconciliation is out by a small amount",
    "A small discrepancy appeared in the Zephyr ledger this morning",
    "Zephyr ledger line totals disagree with the summary",
    "The Zephyr ledger closing balance changed overnight",
    "We noticed the Zephyr ledger total moved by a little",
    "Zephyr ledger: two entries seem to differ from the receipts",
    "The monthly Zephyr ledger is slightly different from accounting",
    "Zephyr ledger amounts are a bit off compared to the bank",
];

const CLOSERS: &[&str] = &[
    "Could someone have a look when possible?",
    "Thanks for checking.",
    "Please let us know what you find.",
    "Regards, the finance desk",
];

fn message(i: usize) -> String {
    format!(
        "From: Finance {i} <finance{i}@legalaid-north.example.org>\r\nTo: support@casehost.example\r\nSubject: Zephyr ledger question {i}\r\nMessage-ID: <zephyr-{i}@legalaid-north.example.org>\r\nDate: Tue, 01 Dec 2026 09:{i:02}:00 +0000\r\n\r\n{}.\r\n{}\r\n",
        OPENERS[i % OPENERS.len()],
        CLOSERS[i % CLOSERS.len()]
    )
}

fn config(dir: &Path) -> String {
    format!(
        r#"data_dir = "{}"
domain = "casehost.example"
[[mailboxes]]
name = "support"
role = "support"
address = "support@casehost.example"
source = "maildir"
path = "{}"
[outbound]
from_support = "CaseHost Support <support@casehost.example>"
from_privacy = "CaseHost Privacy <privacy@casehost.example>"
transport = "file"
"#,
        dir.join("data").display(),
        dir.join("maildir").display()
    )
}

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().expect("run ticketd");
    assert!(
        out.status.success(),
        "ticketd {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The level-exact figure of the "after" line for the holdout.
fn holdout_level(out: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.starts_with("after (new model)"))
        .unwrap_or_else(|| panic!("no after line in:\n{out}"));
    let at = line.find("level exact ").expect("level figure") + "level exact ".len();
    line[at..]
        .split(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a number")
}

#[test]
fn training_from_store_corrections_improves_a_holdout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg_path = tmp.path().join("ticketd.toml");
    std::fs::write(&cfg_path, config(tmp.path())).expect("config");
    let cfg = cfg_path.to_str().expect("utf-8 path");

    // The vendor's mail: the first 12 are imported and corrected by staff,
    // the last 12 are kept apart as the holdout.
    let inbox = tmp.path().join("import");
    let holdout = tmp.path().join("holdout");
    std::fs::create_dir_all(&inbox).expect("mkdir");
    std::fs::create_dir_all(&holdout).expect("mkdir");
    let mut labels = String::new();
    for i in 0..24 {
        if i < 12 {
            std::fs::write(inbox.join(format!("{i:02}.eml")), message(i)).expect("write");
        } else {
            let file = format!("{i:02}.eml");
            std::fs::write(holdout.join(&file), message(i)).expect("write");
            labels.push_str(&format!(
                "{{\"file\":\"{file}\",\"kind\":\"ticket\",\"level\":1,\"mailbox\":\"support\",\"language\":\"en\",\"class\":\"vendor_specific\"}}\n"
            ));
        }
    }
    std::fs::write(holdout.join("labels.jsonl"), labels).expect("labels");
    run(&[
        "import",
        "--config",
        cfg,
        "--no-ack",
        inbox.to_str().expect("path"),
    ]);

    let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/corpus");
    let model = tmp.path().join("m.bin");
    let model = model.to_str().expect("path");
    let holdout = holdout.to_str().expect("path");
    let train = |extra: &[&str]| -> String {
        let mut args = vec![
            "triage",
            "train",
            "--config",
            cfg,
            "--corpus",
            corpus,
            "--holdout",
            holdout,
            "--out",
            model,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let without = holdout_level(&train(&[]));

    // Staff relevel every imported case to 1 (the vendor's own rule).
    let list = run(&["cases", "list", "--config", cfg, "--json"]);
    let ids: Vec<String> = list
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 12, "{list}");
    let mut changed = 0;
    for id in &ids {
        let out = Command::new(BIN)
            .args([
                "cases",
                "relevel",
                "--config",
                cfg,
                id,
                "1",
                "--reason",
                "Zephyr ledger is critical for us",
            ])
            .output()
            .expect("relevel");
        changed += usize::from(out.status.success());
    }
    assert!(changed >= 10, "relevel succeeded for {changed} cases");

    let with_out = train(&["--from-store"]);
    assert!(
        with_out.contains(&format!("{changed} staff corrections from the store")),
        "{with_out}"
    );
    let with = holdout_level(&with_out);
    println!("holdout level exact: {without} % without corrections, {with} % with {changed}");
    assert!(
        with > without && with >= 75.0,
        "holdout level exact without corrections {without} %, with {with} %\n{with_out}"
    );
}
