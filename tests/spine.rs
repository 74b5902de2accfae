//! End-to-end tests of the spine, through the real binary: Maildir in,
//! cases in sled, acknowledgements as files; reruns, simulated kills, bad
//! input, the control socket and the CLI.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ticketd");

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// A data dir with a config whose support Maildir is `maildir/`.
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = r#"
data_dir = "data"
domain = "casehost.example"

[[mailboxes]]
name = "support"
role = "support"
address = "support@casehost.example"
source = "maildir"
path = "../maildir"

[[mailboxes]]
name = "privacy"
role = "privacy"
address = "privacy@casehost.example"
source = "maildir"
path = "../privacy-maildir"

[outbound]
from_support = "CaseHost Support <support@casehost.example>"
from_privacy = "CaseHost Privacy <privacy@casehost.example>"
transport = "file"

[limits]
max_stored_message_bytes = "25MiB"

[daemon]
poll_interval = "100ms"
batch_size = 4

"#;
        std::fs::write(dir.path().join("ticketd.toml"), cfg).expect("write config");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(dir.path().join("maildir").join(sub)).expect("maildir");
        }
        Env { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn config(&self) -> PathBuf {
        self.path("ticketd.toml")
    }

    /// Deliver a message into the support Maildir's new/.
    fn deliver(&self, name: &str, bytes: &[u8]) {
        let tmp = self.path("maildir/tmp").join(name);
        std::fs::write(&tmp, bytes).expect("write tmp");
        std::fs::rename(&tmp, self.path("maildir/new").join(name)).expect("rename");
    }

    fn deliver_fixtures(&self, dir: &str) -> usize {
        let mut names: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
            .expect("fixtures")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        for (i, p) in names.iter().enumerate() {
            let bytes = std::fs::read(p).expect("read fixture");
            self.deliver(&format!("{}.{i:02}.test", 1_800_000_000 + i), &bytes);
            // Distinct mtimes keep the arrival order.
            let f = std::fs::File::options()
                .write(true)
                .open(
                    self.path("maildir/new")
                        .join(format!("{}.{i:02}.test", 1_800_000_000 + i)),
                )
                .expect("open");
            f.set_modified(std::time::SystemTime::now() - Duration::from_secs(1000 - i as u64))
                .expect("mtime");
        }
        names.len()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(self.config())
            .args(args)
            .current_dir(self.dir.path());
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run ticketd")
    }

    fn json_lines(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect()
    }

    fn cases(&self) -> Vec<serde_json::Value> {
        self.json_lines(&["cases", "list", "--all", "--json"])
    }

    fn ack_files(&self) -> Vec<PathBuf> {
        let dir = self.path("data/outbox-mail");
        let mut v: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            // Finished mail only: a `.outbox-N.eml.tmp` may be left by a kill.
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    fn count(&self, sub: &str) -> usize {
        std::fs::read_dir(self.path(sub))
            .map(|rd| rd.count())
            .unwrap_or(0)
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn field<'a>(v: &'a serde_json::Value, k: &str) -> &'a serde_json::Value {
    &v[k]
}

#[test]
fn demo_fixtures_become_the_expected_cases_events_and_acks() {
    let env = Env::new();
    let n = env.deliver_fixtures("fixtures/demo");
    assert_eq!(n, 10);
    let stdout = ok(&env.run(&["run", "--once"]));
    assert!(
        stdout.contains(
            "7 new cases, 1 follow-ups, 2 set aside, 0 duplicates, 7 acknowledgements, 7 mails written"
        ),
        "{stdout}"
    );

    let cases = env.cases();
    let summary: Vec<(String, serde_json::Value, serde_json::Value)> = cases
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or("").to_string(),
                c["level"].clone(),
                c["rights"].clone(),
            )
        })
        .collect();
    let expect = [
        ("SUP-000001", serde_json::json!(1)),
        ("SUP-000002", serde_json::json!(2)),
        ("SUP-000003", serde_json::json!(3)),
        ("SUP-000004", serde_json::json!(5)),
        ("SUP-000005", serde_json::json!(4)),
    ];
    for (id, level) in expect {
        assert!(
            summary.iter().any(|(i, l, _)| i == id && *l == level),
            "{id} level {level}: {summary:?}"
        );
    }
    let prv1 = cases
        .iter()
        .find(|c| c["id"] == "PRV-000001")
        .expect("PRV-000001");
    assert_eq!(prv1["rights"], serde_json::json!(["access", "erasure"]));
    assert_eq!(prv1["jurisdiction"], "gdpr");
    let prv2 = cases
        .iter()
        .find(|c| c["id"] == "PRV-000002")
        .expect("PRV-000002");
    assert_eq!(
        prv2["rights"],
        serde_json::json!(["ccpa_know", "ccpa_delete"])
    );
    assert_eq!(prv2["jurisdiction"], "ccpa");

    // The follow-up joined SUP-000001; the case log tells the story.
    let show = env.run(&["cases", "show", "SUP-000001", "--json"]);
    let view: serde_json::Value = serde_json::from_str(&ok(&show)).expect("json");
    assert_eq!(view["messages"].as_array().map(Vec::len), Some(2));
    let events: Vec<&str> = view["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    // Delivery runs after the sources are drained, so mail_sent comes last.
    assert_eq!(
        events,
        vec![
            "received",
            "triaged",
            // No people configured here, so no notices (the daemon warns at
            // start; tests/clocks.rs covers who gets what).
            "ack_queued",
            "received",
            "follow_up",
            "mail_sent"
        ]
    );
    assert_eq!(view["outbox"][0]["state"], "sent");

    // Acknowledgement files: one per new case, well-formed, threaded.
    let acks = env.ack_files();
    assert_eq!(acks.len(), 7);
    let sup2 =
        std::fs::read_to_string(env.path("data/outbox-mail/outbox-0000000002.eml")).expect("ack 2");
    assert!(
        sup2.contains("To: \"Intake Team\" <intake@riverside-legal.example.org>"),
        "ack goes to Reply-To:\n{sup2}"
    );
    assert!(!sup2.contains("colleague@"), "never to Cc");
    assert!(sup2.contains("Subject: [SUP-000002] Re: "), "{sup2}");
    assert!(sup2.contains("Message-ID: <ack.SUP-000002."), "{sup2}");
    assert!(sup2.contains("Auto-Submitted: auto-replied"));
    assert!(sup2.contains("In-Reply-To: <20261109140315.7f3a9c@riverside-legal.example.org>"));
    let prv =
        std::fs::read_to_string(env.path("data/outbox-mail/outbox-0000000004.eml")).expect("ack 4");
    assert!(
        prv.starts_with("From: \"CaseHost Privacy\" <privacy@casehost.example>"),
        "{prv}"
    );

    // Both set-aside messages are listed with reasons.
    let ignored = env.json_lines(&["ignored", "list", "--json"]);
    assert_eq!(ignored.len(), 2);
    assert!(
        ignored.iter().any(|r| r["category"] == "auto-reply"),
        "{ignored:?}"
    );
    assert!(
        ignored.iter().any(|r| field(r, "category")
            .as_str()
            .is_some_and(|c| c.contains("bounce"))),
        "{ignored:?}"
    );

    // Every message left new/ for cur/.
    assert_eq!(env.count("maildir/new"), 0);
    assert_eq!(env.count("maildir/cur"), 10);
}

#[test]
fn second_run_changes_nothing_even_with_the_same_mail_redelivered() {
    let env = Env::new();
    env.deliver_fixtures("fixtures/demo");
    ok(&env.run(&["run", "--once"]));
    let before = env.cases();
    let acks_before: Vec<Vec<u8>> = env
        .ack_files()
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_default())
        .collect();

    let out = ok(&env.run(&["run", "--once"]));
    assert!(out.contains("this run: 0 new cases, 0 follow-ups, 0 set aside, 0 duplicates, 0 acknowledgements, 0 mails written"), "{out}");
    // The same messages delivered again (another copy in new/) are duplicates.
    env.deliver_fixtures("fixtures/demo");
    let out = ok(&env.run(&["run", "--once"]));
    assert!(
        out.contains(
            "0 new cases, 0 follow-ups, 0 set aside, 10 duplicates, 0 acknowledgements, 0 mails written"
        ),
        "{out}"
    );
    assert_eq!(env.cases(), before);
    let acks_after: Vec<Vec<u8>> = env
        .ack_files()
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_default())
        .collect();
    assert_eq!(acks_before, acks_after);
}

#[test]
fn kill_between_store_and_source_move_creates_no_duplicate() {
    let env = Env::new();
    env.deliver_fixtures("fixtures/demo");
    let out = env.run_env(
        &["run", "--once"],
        &[("TICKETD_FAILPOINT", "after_flush_before_ack")],
    );
    assert_eq!(
        out.status.code(),
        Some(86),
        "the failpoint ends the process"
    );
    // The first batch (4 messages) is stored but still in new/.
    assert_eq!(env.count("maildir/new"), 10);
    assert!(
        env.ack_files().is_empty(),
        "nothing was delivered before the kill"
    );

    let out = ok(&env.run(&["run", "--once"]));
    assert!(
        out.contains("7 new cases") || out.contains("new cases"),
        "{out}"
    );
    let cases = env.cases();
    assert_eq!(cases.len(), 7, "no duplicate case: {cases:?}");
    assert_eq!(env.ack_files().len(), 7);
    assert_eq!(env.count("maildir/new"), 0);
}

#[test]
fn kill_between_send_and_mark_resends_in_place() {
    let env = Env::new();
    env.deliver_fixtures("fixtures/demo");
    let out = env.run_env(
        &["run", "--once"],
        &[("TICKETD_FAILPOINT", "after_send_before_mark")],
    );
    assert_eq!(out.status.code(), Some(86));
    // The transport wrote at least one mail, none was marked sent.
    let before: Vec<(PathBuf, Vec<u8>)> = env
        .ack_files()
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).expect("read");
            (p, b)
        })
        .collect();
    assert!(
        !before.is_empty() && before.len() < 7,
        "{} written before the kill",
        before.len()
    );

    ok(&env.run(&["run", "--once"]));
    let files = env.ack_files();
    assert_eq!(files.len(), 7, "the resend replaced the file: {files:?}");
    for (p, bytes) in &before {
        assert_eq!(
            &std::fs::read(p).expect("read"),
            bytes,
            "same bytes, same Message-ID"
        );
    }
    let view: serde_json::Value =
        serde_json::from_str(&ok(&env.run(&["cases", "show", "SUP-000001", "--json"])))
            .expect("json");
    assert_eq!(view["outbox"][0]["state"], "sent");
    assert_eq!(view["outbox"][0]["attempts"], 2);
}

#[test]
fn bad_input_is_recorded_never_lost_never_a_panic() {
    let env = Env::new();
    let n = env.deliver_fixtures("fixtures/bad");
    // A 50 MB message: a case, with the original left in the mailbox.
    let mut big = b"From: Big Sender <big@legalaid-north.example.org>\r\nTo: support@casehost.example\r\nSubject: Export gives an error\r\nMessage-ID: <big-1@legalaid-north.example.org>\r\nContent-Type: text/plain\r\n\r\nThe export shows an error. Log attached below.\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'A', 50 * 1024 * 1024));
    env.deliver("1900000000.big.test", &big);
    let out = env.run(&["run", "--once"]);
    let stdout = ok(&out);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    assert!(stdout.contains("0 errors"), "{stdout}");
    assert_eq!(env.count("maildir/new"), 0, "every message taken");
    assert_eq!(env.count("maildir/cur"), n + 1);

    let ignored = env.json_lines(&["ignored", "list", "--json"]);
    let unparseable: Vec<&serde_json::Value> = ignored
        .iter()
        .filter(|r| r["category"] == "unparseable")
        .collect();
    // The empty file and the PNG; in debug builds also the MIME that trips
    // mail-parser's assertion (in release builds it parses as a bounce).
    assert!(
        unparseable.len() >= 2,
        "empty file and PNG are recorded: {ignored:?}"
    );
    assert_eq!(ignored.len(), 3, "{ignored:?}");
    assert!(unparseable.iter().any(|r| r["reasons"][0]
        .as_str()
        .is_some_and(|s| s.contains("empty"))));

    let cases = env.cases();
    let big_case = cases
        .iter()
        .find(|c| c["subject"] == "Export gives an error")
        .expect("50 MB message is a case");
    assert!(
        big_case["notes"][0]
            .as_str()
            .is_some_and(|n| n.contains("storage limit")),
        "{big_case}"
    );
    // truncated, no-message-id and malformed-boundary mail are cases too.
    assert!(cases
        .iter()
        .any(|c| c["requester"]["address"] == "priya.shah@riverside-legal.example.org"));
    // The truncated message lost its unfinished Subject line but is a case.
    assert!(
        cases
            .iter()
            .any(|c| c["requester"]["address"] == "sam.okafor@riverside-legal.example.org"),
        "{cases:?}"
    );
    assert_eq!(cases.len(), 4, "{cases:?}");

    // Re-delivering the message without Message-ID (with another trace
    // header, as a second delivery would have) is caught by its content
    // hash: no second case, and a duplicate record naming the original.
    let again = std::fs::read(repo().join("fixtures/bad/no-message-id.eml")).expect("read");
    let mut again2 = b"Received: from mx2.example.net by mx.casehost.example; Tue, 1 Dec 2026 10:00:00 +0000\r\n".to_vec();
    again2.extend_from_slice(&again);
    env.deliver("1900000001.again.test", &again2);
    ok(&env.run(&["run", "--once"]));
    assert_eq!(env.cases().len(), 4);
    let ignored = env.json_lines(&["ignored", "list", "--json"]);
    let dup: Vec<_> = ignored
        .iter()
        .filter(|r| r["category"] == "duplicate")
        .collect();
    assert_eq!(dup.len(), 1, "{ignored:?}");
    assert!(
        dup[0]["reasons"][0]
            .as_str()
            .is_some_and(|r| r.contains("(SUP-")),
        "{dup:?}"
    );
}

#[test]
fn promote_an_ignored_message_into_a_case() {
    let env = Env::new();
    env.deliver(
        "1.ooo.test",
        &std::fs::read(repo().join("fixtures/demo/05-out-of-office.eml")).expect("read"),
    );
    ok(&env.run(&["run", "--once"]));
    assert!(env.cases().is_empty());
    let ignored = env.json_lines(&["ignored", "list", "--json"]);
    let id = ignored[0]["id"].as_u64().expect("id").to_string();
    let out = ok(&env.run(&["ignored", "promote", &id]));
    assert!(out.contains("promoted to case SUP-000001"), "{out}");
    let cases = env.cases();
    assert_eq!(cases.len(), 1);
    let again = env.run(&["ignored", "promote", &id]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already promoted"));
}

#[test]
fn import_reads_eml_maildir_and_mbox_without_touching_them() {
    let env = Env::new();
    // An mbox with two messages, one a ">From "-escaped body line.
    let mbox = "From dana@x.example Mon Nov  9 10:00:00 2026\nFrom: dana@legalaid-north.example.org\nSubject: Timesheet wrong\nMessage-ID: <mbox-1@x>\n\nThe totals are wrong.\n>From here on it is fine.\n\nFrom sam@x.example Mon Nov  9 11:00:00 2026\nFrom: sam@riverside-legal.example.org\nSubject: Feature idea\nMessage-ID: <mbox-2@x>\n\nWould it be possible to add a CSV export?\n";
    std::fs::write(env.path("old.mbox"), mbox).expect("mbox");
    let md = env.path("oldmaildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).expect("dir");
    }
    std::fs::copy(
        repo().join("fixtures/demo/03-report-error.eml"),
        md.join("cur/1:2,S"),
    )
    .expect("copy");
    let eml = repo().join("fixtures/demo/01-site-down.eml");
    let out = env.run(&[
        "import",
        "--json",
        env.path("old.mbox").to_str().unwrap_or(""),
        md.to_str().unwrap_or(""),
        eml.to_str().unwrap_or(""),
    ]);
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    assert_eq!(report["new_cases"], 4, "{report}");
    assert_eq!(report["acks_queued"], 4);
    assert!(
        md.join("cur/1:2,S").exists(),
        "import never moves its input"
    );
    let cases = env.cases();
    let mbox_case = cases
        .iter()
        .find(|c| c["subject"] == "Timesheet wrong")
        .expect("mbox case");
    assert_eq!(
        mbox_case["received_at"], "2026-11-09T10:00:00Z",
        "mbox From-line date is the receipt time"
    );
    // Importing again: all duplicates.
    let out = env.run(&[
        "import",
        "--json",
        env.path("old.mbox").to_str().unwrap_or(""),
    ]);
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    assert_eq!(report["duplicates"], 2);
    let missing = env.run(&["import", env.path("nope.eml").to_str().unwrap_or("")]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.eml"));
}

/// Import stores in batches like a drain; a message whose triage panics
/// (armed by `TICKETD_PANIC`) is reported and the messages around it, in
/// the same batch, are stored.
#[test]
fn import_reports_a_failing_message_and_stores_the_rest() {
    let env = Env::new();
    let dir = env.path("batch");
    std::fs::create_dir_all(&dir).expect("dir");
    for (i, subject) in ["Export broken", "POISON-PILL here", "Login slow"]
        .iter()
        .enumerate()
    {
        std::fs::write(
            dir.join(format!("{i}.eml")),
            format!("From: p{i}@legalaid-north.example.org\r\nSubject: {subject}\r\nMessage-ID: <batch-{i}@x>\r\n\r\nPlease look at this, it stopped working today.\r\n"),
        )
        .expect("write");
    }
    let out = env.run_env(
        &["import", "--json", dir.to_str().unwrap_or("")],
        &[("TICKETD_PANIC", "triage:POISON-PILL")],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["new_cases"], 2, "{report}");
    let errors = report["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 1, "{report}");
    assert!(
        errors[0].as_str().unwrap_or("").contains("1.eml"),
        "{report}"
    );
    let subjects: Vec<String> = env
        .cases()
        .iter()
        .map(|c| c["subject"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        subjects.contains(&"Export broken".to_string()),
        "{subjects:?}"
    );
    assert!(subjects.contains(&"Login slow".to_string()), "{subjects:?}");
}

#[test]
fn config_typo_is_an_error_naming_file_line_and_key() {
    let env = Env::new();
    let text = std::fs::read_to_string(env.config())
        .expect("read")
        .replace("poll_interval", "pol_interval");
    std::fs::write(env.config(), text).expect("write");
    let out = env.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ticketd.toml:"), "{err}");
    assert!(err.contains("pol_interval"), "{err}");
    let line = std::fs::read_to_string(env.config())
        .expect("read")
        .lines()
        .position(|l| l.starts_with("pol_interval"))
        .map(|i| i + 1)
        .expect("typo line");
    assert!(
        err.contains(&format!("ticketd.toml:{line}:1: key `pol_interval`")),
        "line {line} named: {err}"
    );
    let ok_env = Env::new();
    let out = ok(&ok_env.run(&["check-config"]));
    assert!(out.contains("configuration OK"));
    assert!(out.contains("poll_interval = \"100ms\""), "{out}");
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn daemon_serves_the_cli_refuses_a_second_daemon_and_stops_on_sigterm() {
    let env = Env::new();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(env.config())
        .arg("run")
        .current_dir(env.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn daemon");
    let sock = env.path("data/control.sock");
    wait_for("control socket", || sock.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sock).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "socket is owner-only");
    }

    // Mail delivered while it runs becomes a case; the CLI asks the daemon.
    env.deliver(
        "1.site.test",
        &std::fs::read(repo().join("fixtures/demo/01-site-down.eml")).expect("read"),
    );
    wait_for("case via control socket", || env.cases().len() == 1);
    wait_for("ack file", || env.ack_files().len() == 1);
    let show = ok(&env.run(&["cases", "show", "SUP-000001"]));
    assert!(show.contains("level 1"), "{show}");
    assert!(
        show.contains("timers pending:") && show.contains("\n  page at "),
        "{show}"
    );

    // Clock stoppers go through the daemon's socket.
    let out = ok(&env.run(&["cases", "review", "SUP-000001"]));
    assert!(
        out.starts_with("SUP-000001: reviewed (status open)"),
        "{out}"
    );
    let again = env.run(&["cases", "review", "sup-000001"]);
    assert_eq!(again.status.code(), Some(1), "a second review is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already reviewed"));
    let out = ok(&env.run(&[
        "cases",
        "relevel",
        "SUP-000001",
        "2",
        "--reason",
        "login works again",
    ]));
    assert!(
        out.starts_with("SUP-000001: now level 2 (status open); respond by "),
        "{out}"
    );
    let out = ok(&env.run(&["cases", "respond", "SUP-000001", "--note", "called back"]));
    assert!(
        out.starts_with("SUP-000001: first response recorded"),
        "{out}"
    );
    let out = ok(&env.run(&["cases", "resolve", "SUP-000001"]));
    assert!(
        out.starts_with("SUP-000001: resolved (status resolved)"),
        "{out}"
    );
    let show = ok(&env.run(&["cases", "show", "SUP-000001", "--json"]));
    let view: serde_json::Value = serde_json::from_str(&show).expect("json");
    let names: Vec<&str> = view["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    for e in [
        "reviewed",
        "releveled",
        "responded",
        "resolved",
        "status_changed",
    ] {
        assert!(names.contains(&e), "{e} in {names:?}");
    }
    assert_eq!(view["case"]["level"], 2);
    assert!(view["case"]["clocks"]["resolved_at"].is_string());

    let second = env.run(&["run", "--once"]);
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("in use by another ticketd"), "{err}");

    #[cfg(unix)]
    {
        let pid = child.id().to_string();
        let st = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(st.success());
    }
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "clean exit on SIGTERM");
    assert!(!sock.exists(), "socket removed on shutdown");
    // Without a daemon the CLI opens the store itself.
    assert_eq!(env.cases().len(), 1);
    let _ = Path::new("");
}

#[test]
fn failed_sender_authentication_gets_a_case_but_no_acknowledgement() {
    let env = Env::new();
    let mut cfg = std::fs::read_to_string(env.config()).expect("read");
    cfg.push_str("\n[triage]\ntrusted_authserv_id = \"mx.casehost.example\"\n\n[[agencies]]\nname = \"Legal Aid North\"\ndomains = [\"legalaid-north.example.org\"]\n");
    std::fs::write(env.config(), cfg).expect("write");
    let spoof = b"Authentication-Results: mx.casehost.example; spf=fail smtp.mailfrom=legalaid-north.example.org; dkim=none; dmarc=fail header.from=legalaid-north.example.org\r\nFrom: Dana Ruiz <dana.ruiz@legalaid-north.example.org>\r\nTo: support@casehost.example\r\nSubject: Error when exporting\r\nMessage-ID: <spoof-1@elsewhere.example>\r\n\r\nThe export shows an error.\r\n";
    env.deliver("1.spoof.test", spoof);
    ok(&env.run(&["run", "--once"]));
    let cases = env.cases();
    assert_eq!(cases.len(), 1);
    assert!(
        env.ack_files().is_empty(),
        "no acknowledgement to a spoofed sender"
    );
    let view: serde_json::Value =
        serde_json::from_str(&ok(&env.run(&["cases", "show", "SUP-000001", "--json"])))
            .expect("json");
    let events = view["events"].to_string();
    assert!(events.contains("ack_skipped"), "{events}");
    assert!(events.contains("\"auth\":\"fail\""), "{events}");
    // The same failure from outside every agency domain is forged mail:
    // set aside as spam, never acknowledged, promotable.
    let stranger = b"Authentication-Results: mx.casehost.example; spf=fail smtp.mailfrom=mailer.example.net; dkim=none; dmarc=fail header.from=mailer.example.net\r\nFrom: Billing <billing@mailer.example.net>\r\nTo: support@casehost.example\r\nSubject: Error when exporting\r\nMessage-ID: <spoof-2@elsewhere.example>\r\n\r\nThe export shows an error.\r\n";
    env.deliver("2.spoof.test", stranger);
    ok(&env.run(&["run", "--once"]));
    assert_eq!(env.cases().len(), 1, "no case for forged mail");
    assert!(env.ack_files().is_empty());
    let ignored = ok(&env.run(&["ignored", "list", "--json"]));
    assert!(ignored.contains("spam"), "{ignored}");
    assert!(ignored.contains("forged"), "{ignored}");
}

#[test]
fn automatic_mail_to_one_requester_is_rate_limited_and_recorded() {
    let env = Env::new();
    for i in 0..7 {
        let raw = format!("From: Loop <loop@example.org>\r\nTo: support@casehost.example\r\nSubject: Error number {i}\r\nMessage-ID: <rl{i}@example.org>\r\n\r\nAn error is shown ({i}).\r\n");
        env.deliver(&format!("{i}.rl.test"), raw.as_bytes());
    }
    let out = ok(&env.run(&["run", "--once"]));
    assert!(out.contains("7 new cases"), "{out}");
    assert_eq!(
        env.ack_files().len(),
        5,
        "default limit: 5 per hour per recipient"
    );
    let suppressed: Vec<serde_json::Value> = env
        .cases()
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .map(|id| {
            serde_json::from_str(&ok(&env.run(&["cases", "show", &id, "--json"]))).expect("json")
        })
        .filter(|v: &serde_json::Value| v["outbox"][0]["state"] == "suppressed")
        .collect();
    assert_eq!(suppressed.len(), 2);
    assert!(suppressed[0]["events"].to_string().contains("rate_limited"));
}
