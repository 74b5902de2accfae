//! Erasure and retention against the real Dovecot and Postfix of
//! `tests/mailstack/`: mail from two people is taken by `ticketd run
//! --once`, then `ticketd erase --subject` (the binary) removes one of them
//! from every file under the data directory and from the IMAP processed
//! folders, leaving the other's case and a tombstone; `--dry-run` changes
//! nothing; an open privacy request refuses without `--force`; a running
//! daemon (the store lock) refuses. Retention runs under a controlled
//! clock and removes exactly what is older than its limits.

mod common;

use common::MailStack;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use ticketd::clock::ManualClock;
use ticketd::config::{Config, JobName};
use ticketd::control::{self, CaseAction};
use ticketd::daemon::Daemon;

const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";
const PHRASE: &str = "zebra-quartz-7731";
const BOB_PHRASE: &str = "walrus-ember-4410";

fn config_text(stack: &MailStack, data: &Path, extra: &str) -> String {
    format!(
        r#"data_dir = "{data}"
domain = "casehost.example.test"
{support}{privacy}{outbound}
[people]
alerts_to = ["admin@example.test"]
staff = ["sam@example.test"]
support_lead = ["lead@example.test"]
privacy_officer = ["dpo@example.test"]

[workflow]
operator = "dpo-tester"
{extra}
"#,
        data = data.display(),
        support = common::imap_mailbox(stack, "support"),
        privacy = common::imap_mailbox(stack, "privacy"),
        outbound = common::smtp_outbound(stack),
    )
}

fn mail(headers: &str, body: &str) -> Vec<u8> {
    common::mail(headers, body).into_bytes()
}

fn cli(cfg: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env("USER", "tester")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ticketd")
}

fn ok(cfg: &Path, args: &[&str]) -> String {
    let out = cli(cfg, args);
    assert!(
        out.status.success(),
        "ticketd {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The files under `dir` whose bytes contain `needle` (ASCII case folded).
/// Files under `dir` holding `needle`, as text or inside a zstd frame (the
/// store keeps raw mail compressed: every frame in a file is decoded).
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|f| {
            let b = std::fs::read(f).unwrap_or_default();
            contains(&b, needle) || frames(&b).iter().any(|t| contains(t, needle))
        })
        .collect()
}

/// The contents of every zstd frame that starts somewhere in `b`.
fn frames(b: &[u8]) -> Vec<Vec<u8>> {
    const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
    let mut out = Vec::new();
    for (i, w) in b.windows(4).enumerate() {
        if w != MAGIC {
            continue;
        }
        let mut text = Vec::new();
        if let Ok(d) = zstd::stream::read::Decoder::new(&b[i..]) {
            let mut d = d.single_frame();
            if std::io::Read::read_to_end(&mut d, &mut text).is_ok() || !text.is_empty() {
                out.push(text);
            }
        }
    }
    out
}

fn contains(raw: &[u8], needle: &str) -> bool {
    let b = raw.to_ascii_lowercase();
    let n = needle.to_ascii_lowercase().into_bytes();
    b.windows(n.len()).any(|w| w == n.as_slice())
}

fn cases_json(cfg: &Path) -> Vec<serde_json::Value> {
    ok(cfg, &["cases", "list", "--all", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("case json"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erase_removes_a_person_from_disk_and_the_processed_folders() {
    let stack = MailStack::start();
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = stack.path().join("ticketd.toml");
    std::fs::write(&cfg, config_text(&stack, data.path(), "")).expect("config");

    stack
        .append(
            "support@example.test",
            "INBOX",
            &mail(
                &format!("From: Alice Example <{ALICE}>\nTo: support@example.test\nSubject: Printer page fails\nMessage-ID: <alice-1@example.test>"),
                &format!("The print page shows an error. My reference is {PHRASE}."),
            ),
        )
        .await;
    stack
        .append(
            "support@example.test",
            "INBOX",
            &mail(
                &format!("From: Bob Other <{BOB}>\nTo: support@example.test\nSubject: Export fails with an error\nMessage-ID: <bob-1@example.test>"),
                &format!("The CSV export gives an error page. Code {BOB_PHRASE}."),
            ),
        )
        .await;
    ok(&cfg, &["run", "--once"]);
    // Bob follows up with Alice on Cc; Alice asks for erasure.
    stack
        .append(
            "support@example.test",
            "INBOX",
            &mail(
                &format!("From: Bob Other <{BOB}>\nTo: support@example.test\nCc: {ALICE}\nSubject: Re: Export fails with an error\nMessage-ID: <bob-2@example.test>\nIn-Reply-To: <bob-1@example.test>\nReferences: <bob-1@example.test>"),
                "Still broken; copying my colleague.",
            ),
        )
        .await;
    stack
        .append(
            "privacy@example.test",
            "INBOX",
            &mail(
                &format!("From: Alice Example <{ALICE}>\nTo: privacy@example.test\nSubject: Delete my personal data\nMessage-ID: <alice-2@example.test>"),
                "Under GDPR Article 17 I ask you to erase all personal data you hold about me. Please delete my data.",
            ),
        )
        .await;
    ok(&cfg, &["run", "--once"]);

    let cases = cases_json(&cfg);
    let id_of = |who: &str, kind: &str| {
        cases
            .iter()
            .find(|c| {
                c["requester"]["address"].as_str() == Some(who) && c["kind"].as_str() == Some(kind)
            })
            .and_then(|c| c["id"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("no {kind} case from {who}: {cases:?}"))
    };
    let bob_case = id_of(BOB, "support");
    let alice_support = id_of(ALICE, "support");
    let alice_privacy = id_of(ALICE, "privacy");
    let show_bob = ok(&cfg, &["cases", "show", &bob_case]);
    assert!(
        show_bob.contains(ALICE),
        "Alice is on Bob's case: {show_bob}"
    );
    assert!(!files_containing(data.path(), ALICE).is_empty());
    assert!(!files_containing(data.path(), PHRASE).is_empty());
    println!(
        "scan before erase: {} files under data_dir; address in {}, phrase in {}",
        files(data.path()).len(),
        files_containing(data.path(), ALICE).len(),
        files_containing(data.path(), PHRASE).len()
    );
    let processed = stack.messages("support@example.test", "Processed").await;
    assert_eq!(processed.len(), 3);

    // The subject report is the access answer.
    let report: serde_json::Value =
        serde_json::from_str(&ok(&cfg, &["subject-report", ALICE, "--json"])).expect("json");
    let roles: Vec<(String, String)> = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or("").to_string(),
                c["role"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        roles.contains(&(alice_support.clone(), "requester".into())),
        "{roles:?}"
    );
    assert!(
        roles.contains(&(alice_privacy.clone(), "requester".into())),
        "{roles:?}"
    );
    assert!(
        roles.contains(&(bob_case.clone(), "participant".into())),
        "{roles:?}"
    );
    assert!(!report["outbox"].as_array().expect("outbox").is_empty());

    // An open privacy request refuses without --force.
    let out = cli(&cfg, &["erase", "--subject", ALICE]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&alice_privacy));

    // A running daemon (the store lock) refuses with a clear message.
    {
        let held = ticketd::store::Store::open(data.path()).expect("hold the store");
        let out = cli(&cfg, &["erase", "--subject", ALICE, "--force"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("daemon stopped") && err.contains("Stop the daemon"),
            "{err}"
        );
        drop(held);
    }

    // --dry-run changes nothing and reports the same.
    let before_cases = ok(&cfg, &["cases", "list", "--json"]);
    let dry: serde_json::Value = serde_json::from_str(&ok(
        &cfg,
        &[
            "erase",
            "--subject",
            "Alice@Example.TEST",
            "--force",
            "--dry-run",
            "--json",
        ],
    ))
    .expect("json");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["counts"]["cases_deleted"], 2);
    assert_eq!(dry["counts"]["cases_scrubbed"], 1);
    assert!(dry["counts"]["imap_deleted"].as_u64() >= Some(3), "{dry}");
    assert!(dry["tombstone"].is_null());
    assert_eq!(ok(&cfg, &["cases", "list", "--json"]), before_cases);
    assert_eq!(
        stack
            .messages("support@example.test", "Processed")
            .await
            .len(),
        3
    );
    assert!(!files_containing(data.path(), ALICE).is_empty());

    // The erasure.
    let done: serde_json::Value = serde_json::from_str(&ok(
        &cfg,
        &["erase", "--subject", ALICE, "--force", "--json"],
    ))
    .expect("json");
    assert_eq!(done["dry_run"], false);
    assert_eq!(done["forced"], true);
    assert_eq!(
        done["counts"], dry["counts"],
        "the dry run reported the same"
    );
    assert!(done["counts"]["raw_deleted"].as_u64() >= Some(3), "{done}");
    assert!(done["tombstone"].as_u64().is_some());
    assert!(done["compaction"]["entries"].as_u64() > Some(0));

    // Gone from every file under the data directory.
    let all = files(data.path());
    let bytes: u64 = all
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "scan after erase: {} files, {bytes} bytes under data_dir; address in {}, phrase in {}, Bob's phrase in {}",
        all.len(),
        files_containing(data.path(), ALICE).len(),
        files_containing(data.path(), PHRASE).len(),
        files_containing(data.path(), BOB_PHRASE).len()
    );
    assert_eq!(files_containing(data.path(), ALICE), Vec::<PathBuf>::new());
    assert_eq!(files_containing(data.path(), PHRASE), Vec::<PathBuf>::new());
    assert_eq!(
        files_containing(data.path(), "Alice Example"),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        files_containing(data.path(), "alice-1@example.test"),
        Vec::<PathBuf>::new()
    );
    // ... and from the processed folders; Bob's own first mail stays.
    let processed = stack.messages("support@example.test", "Processed").await;
    assert!(processed
        .iter()
        .all(|m| !contains(m, ALICE) && !contains(m, PHRASE)));
    assert_eq!(processed.len(), 1);
    assert!(contains(&processed[0], BOB_PHRASE));
    let processed = stack.messages("privacy@example.test", "Processed").await;
    assert!(
        processed.iter().all(|m| !contains(m, ALICE)),
        "privacy Processed"
    );

    // Bob's case is intact (his first message, its raw mail, his address).
    let cases = cases_json(&cfg);
    assert_eq!(cases.len(), 1, "{cases:?}");
    let show_bob = ok(&cfg, &["cases", "show", &bob_case]);
    assert!(
        show_bob.contains(BOB) && !show_bob.to_lowercase().contains(ALICE),
        "{show_bob}"
    );
    assert!(!files_containing(data.path(), BOB_PHRASE).is_empty());
    assert!(cli(&cfg, &["cases", "show", &alice_support]).status.code() != Some(0));

    // The tombstone, found by the keyed hash of the address.
    let report: serde_json::Value =
        serde_json::from_str(&ok(&cfg, &["subject-report", ALICE, "--json"])).expect("json");
    assert!(report["cases"].as_array().expect("cases").is_empty());
    let t = report["tombstones"].as_array().expect("tombstones");
    assert_eq!(t.len(), 1);
    assert_eq!(t[0]["actor"], "cli:dpo-tester");
    assert_eq!(t[0]["forced"], true);
    assert_eq!(t[0]["subject_hash"], done["subject_hash"]);
    let cases_erased: Vec<&str> = t[0]["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(cases_erased.contains(&alice_support.as_str()));

    // A second run finds nothing more, and the daemon still works.
    let again: serde_json::Value =
        serde_json::from_str(&ok(&cfg, &["erase", "--subject", ALICE, "--json"])).expect("json");
    assert_eq!(again["counts"]["cases_deleted"], 0);
    assert_eq!(again["counts"]["messages_scrubbed"], 0);
    ok(&cfg, &["run", "--once"]);
}

/// Retention with a controlled clock: nothing before the limits, exactly
/// what is older after them, the processed IMAP copies with
/// `processed_imap`, one record per run with counts only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_exactly_what_is_older_than_its_limits() {
    let stack = MailStack::start();
    let data = tempfile::tempdir().expect("tempdir");
    let extra = "[retention]\nclosed_case_days = 10\nignored_days = 5\nsent_outbox_days = 20\nprocessed_imap = true\n";
    let text = config_text(&stack, data.path(), extra);
    let config = Config::from_toml(&text, "test.toml", data.path()).expect("config");
    let t0 = chrono::Utc::now();
    let clock = Arc::new(ManualClock::new(t0));
    let d = Daemon::open(config, clock.clone()).expect("open");
    for (who, subject, body, id, extra) in [
        (
            "carol@example.test",
            "Timesheet page error",
            "The time entry page shows an error.",
            "carol-1",
            "",
        ),
        (
            "dave@example.test",
            "Case notes error",
            "Adding a case note gives an error.",
            "dave-1",
            "",
        ),
        (
            "erin@example.test",
            "Out of office",
            "I am away.",
            "erin-1",
            "\nAuto-Submitted: auto-replied",
        ),
    ] {
        stack
            .append(
                "support@example.test",
                "INBOX",
                &mail(
                    &format!("From: {who}\nTo: support@example.test\nSubject: {subject}\nMessage-ID: <{id}@example.test>{extra}"),
                    body,
                ),
            )
            .await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    d.run_once().await.expect("run once");
    let store = &d.pipeline.store;
    let cases = store.list_cases(&Default::default()).expect("cases");
    assert_eq!(cases.len(), 2, "{cases:?}");
    let carol = cases
        .iter()
        .find(|c| c.requester.as_ref().map(|a| a.address.as_str()) == Some("carol@example.test"))
        .expect("carol's case")
        .id
        .clone();
    let dave = cases
        .iter()
        .find(|c| c.id != carol)
        .expect("dave")
        .id
        .clone();
    control::act(&d.pipeline, &carol, &CaseAction::Close, "cli:tester")
        .await
        .expect("close");
    assert_eq!(store.list_ignored().expect("ignored").len(), 1);
    assert_eq!(
        stack
            .messages("support@example.test", "Processed")
            .await
            .len(),
        3
    );
    let raw_of = |case: &str| {
        let c = store.case(case).expect("read").expect("case");
        c.messages
            .iter()
            .filter(|m| store.raw(**m).expect("raw").is_some())
            .count()
    };
    let bodies = |case: &str| {
        store
            .outbox_all()
            .expect("outbox")
            .iter()
            .filter(|o| o.case.as_deref() == Some(case) && !o.mail.is_empty())
            .count()
    };
    assert_eq!((raw_of(&carol), raw_of(&dave)), (1, 1));
    let dave_bodies = bodies(&dave);
    assert!(dave_bodies > 0 && bodies(&carol) > 0);

    let run = |days: i64| {
        let now = t0 + chrono::Duration::days(days);
        clock.set(now);
        ticketd::schedule::run_job(&d.pipeline, JobName::Retention, now, t0).expect("retention")
    };
    // Day 4: nothing is old enough.
    run(4);
    assert_eq!(store.list_ignored().expect("ignored").len(), 1);
    assert_eq!((raw_of(&carol), raw_of(&dave)), (1, 1));
    // Day 6: only the set-aside message (older than 5 days).
    run(6);
    assert!(store.list_ignored().expect("ignored").is_empty());
    assert_eq!((raw_of(&carol), raw_of(&dave)), (1, 1));
    assert_eq!(
        stack
            .messages("support@example.test", "Processed")
            .await
            .len(),
        2
    );
    // Day 11: Carol's case, closed on day 0, loses raw mail and bodies;
    // Dave's open case keeps everything.
    run(11);
    assert_eq!((raw_of(&carol), raw_of(&dave)), (0, 1));
    assert_eq!(bodies(&carol), 0);
    assert_eq!(bodies(&dave), dave_bodies);
    let c = store.case(&carol).expect("read").expect("skeleton kept");
    assert_eq!(c.messages.len(), 1);
    let events = store.events(&carol).expect("events");
    assert!(events
        .iter()
        .any(|e| matches!(e.kind, ticketd::store::EventKind::DataRemoved { .. })));
    let processed = stack.messages("support@example.test", "Processed").await;
    assert_eq!(processed.len(), 1);
    assert!(contains(&processed[0], "dave-1@example.test"));
    // Day 21: sent outbox bodies older than 20 days, Dave's too.
    run(21);
    assert_eq!(bodies(&dave), 0);
    assert_eq!(raw_of(&dave), 1);
    // Each run is recorded, counts only.
    let runs = ticketd::erase::apply::retention_runs(store).expect("runs");
    let counts: Vec<(usize, usize, usize, usize)> = runs
        .iter()
        .map(|r| {
            (
                r.counts.ignored_deleted,
                r.counts.cases,
                r.counts.raw_deleted,
                r.counts.imap_deleted,
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![(0, 0, 0, 0), (1, 0, 1, 1), (0, 1, 1, 1), (0, 0, 0, 0)]
    );
    assert!(runs[3].counts.outbox_bodies_deleted >= dave_bodies);
    let json = serde_json::to_string(&runs).expect("json");
    assert!(!json.contains("@example.test"));
}

/// An IMAP server that cannot be reached stops the erasure before the
/// store changes; `--no-imap` erases the store alone, and a later run
/// finds the person's processed mail by its From.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_imap_server_stops_the_erasure_before_the_store_changes() {
    let stack = MailStack::start();
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = stack.path().join("ticketd.toml");
    std::fs::write(&cfg, config_text(&stack, data.path(), "")).expect("config");
    stack
        .append(
            "support@example.test",
            "INBOX",
            &mail(
                &format!("From: {ALICE}\nTo: support@example.test\nSubject: Login page error\nMessage-ID: <alice-9@example.test>"),
                &format!("The login page shows an error. {PHRASE}"),
            ),
        )
        .await;
    ok(&cfg, &["run", "--once"]);
    assert_eq!(cases_json(&cfg).len(), 1);

    stack.stop_dovecot();
    let out = cli(&cfg, &["erase", "--subject", ALICE]);
    stack.start_dovecot();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nothing in the store was changed") && !err.contains(ALICE),
        "{err}"
    );
    assert_eq!(cases_json(&cfg).len(), 1);

    let done: serde_json::Value = serde_json::from_str(&ok(
        &cfg,
        &["erase", "--subject", ALICE, "--no-imap", "--json"],
    ))
    .expect("json");
    assert!(done["imap"].is_null());
    assert_eq!(done["counts"]["cases_deleted"], 1);
    assert_eq!(files_containing(data.path(), ALICE), Vec::<PathBuf>::new());
    assert_eq!(files_containing(data.path(), PHRASE), Vec::<PathBuf>::new());
    assert_eq!(
        stack
            .messages("support@example.test", "Processed")
            .await
            .len(),
        1
    );

    let again: serde_json::Value =
        serde_json::from_str(&ok(&cfg, &["erase", "--subject", ALICE, "--json"])).expect("json");
    assert_eq!(again["counts"]["imap_deleted"], 1);
    assert!(stack
        .messages("support@example.test", "Processed")
        .await
        .is_empty());
    let report: serde_json::Value =
        serde_json::from_str(&ok(&cfg, &["subject-report", ALICE, "--json"])).expect("json");
    assert_eq!(report["tombstones"].as_array().map(Vec::len), Some(2));
}
