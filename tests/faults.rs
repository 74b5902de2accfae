//! The fault suite: ticketd (the binary, as a separate process) against a
//! real Dovecot and Postfix while things go wrong — kill -9 at random
//! moments, the IMAP or SMTP server gone for a while, hostile and poison
//! mail, an auto-responder loop — and afterwards: every message exactly
//! one case, follow-up or record; every acknowledgement delivered; no
//! auto-replier answered; no address, name, subject or body in the logs.
//!
//! CI runs the short form. The long form (documented in README.md,
//! "Fault suite") sets `FAULTS_N`, `FAULTS_KILLS`, `FAULTS_DOVECOT_OUTAGE`
//! and `FAULTS_POSTFIX_OUTAGE`; every test prints a `faults:` line with
//! its figures (`cargo test --test faults -- --nocapture`).

mod common;
#[path = "faults/harness.rs"]
mod harness;

use common::MailStack;
use harness::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use ticketd::store::{OutboxState, Purpose};

/// Nothing personal in the daemon's log (info and above).
fn assert_no_pii(log: &std::path::Path, secrets: &[&str]) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let bad = pii_lines(&text, secrets);
    assert!(
        bad.is_empty(),
        "the log carries personal data ({} lines), e.g.:\n{}",
        bad.len(),
        bad.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// Append the mix to the INBOXes over IMAP (one session per mailbox).
async fn append_all(stack: &MailStack, msgs: &[&Mixed]) {
    let mut by_to: HashMap<&str, Vec<&Mixed>> = HashMap::new();
    for m in msgs {
        by_to.entry(m.to.as_str()).or_default().push(m);
    }
    for (to, ms) in by_to {
        let mut s = stack.imap(to).await;
        for m in ms {
            s.append("INBOX", None, None, &m.raw).await.expect("append");
        }
        let _ = s.logout().await;
    }
}

/// What the store must hold for `msgs`, checked against it; returns the
/// acknowledgements (outbox entries) per recipient.
fn check_exactly_once(seen: &Seen, msgs: &[Mixed]) -> HashMap<String, Vec<String>> {
    let want = |e: Expect| msgs.iter().filter(|m| m.expect == e).count();
    let (tickets, privacy, follow_ups, auto) = (
        want(Expect::Ticket),
        want(Expect::Privacy),
        want(Expect::FollowUp),
        want(Expect::AutoReply),
    );
    let support = seen
        .cases
        .iter()
        .filter(|c| c.id.starts_with("SUP"))
        .count();
    let prv = seen
        .cases
        .iter()
        .filter(|c| c.id.starts_with("PRV"))
        .count();
    let in_cases: usize = seen.cases.iter().map(|c| c.messages.len()).sum();
    assert_eq!(
        (support, prv),
        (tickets, privacy),
        "support and privacy cases: lost or doubled"
    );
    assert_eq!(
        in_cases,
        tickets + privacy + follow_ups,
        "messages in cases (follow-ups joined)"
    );
    let ignored: Vec<_> = seen.ignored.iter().map(|r| r.category.as_str()).collect();
    assert_eq!(
        ignored.len(),
        auto,
        "set-aside records (auto-replies only): {ignored:?}"
    );
    let mut acks: HashMap<String, Vec<String>> = HashMap::new();
    for e in seen.outbox.iter().filter(|e| e.purpose == Purpose::Ack) {
        assert_eq!(
            e.state,
            OutboxState::Sent,
            "acknowledgement {} ({:?}): {:?}",
            e.id,
            e.case,
            e.last_error
        );
        for r in &e.recipients {
            acks.entry(r.clone())
                .or_default()
                .push(e.message_id.clone());
        }
    }
    assert_eq!(
        acks.values().map(Vec::len).sum::<usize>(),
        tickets + privacy,
        "one acknowledgement per new case"
    );
    acks
}

/// Every acknowledgement arrived (at least once); returns how many arrived
/// twice or more (the SMTP window: accepted, then killed before marked).
async fn acks_arrived(stack: &MailStack, acks: &HashMap<String, Vec<String>>) -> usize {
    let mut doubled = 0;
    let mut redelivered = 0;
    for (to, ids) in acks {
        let got = message_submissions(stack, to).await;
        for id in ids {
            let copies: Vec<&Option<String>> = got
                .iter()
                .filter(|(g, _)| g == id)
                .map(|(_, q)| q)
                .collect();
            let n = copies.len();
            assert!(n >= 1, "acknowledgement {id} never reached {to}");
            // Sent twice by ticketd: two submissions (two queue ids, or
            // copies whose submission cannot be told apart). Copies of one
            // submission were delivered twice by the mail stack.
            let mut queues: Vec<&String> = copies.iter().filter_map(|q| q.as_ref()).collect();
            queues.sort();
            queues.dedup();
            let unknown = copies.iter().filter(|q| q.is_none()).count();
            let sent = queues.len() + unknown;
            doubled += sent.saturating_sub(1);
            redelivered += n - sent.max(1);
        }
    }
    if redelivered > 0 {
        println!("faults: {redelivered} acknowledgements submitted once and delivered twice by the mail stack (not counted as doubled)");
    }
    doubled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_at_random_moments_loses_and_doubles_nothing() {
    let n = knob("FAULTS_N", 300);
    let kills = knob("FAULTS_KILLS", 10);
    let stack = MailStack::start();
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(&stack, data.path(), "");
    let kill_at_delivery = std::env::var("FAULTS_KILL_AT").is_ok_and(|v| v == "delivery");
    let requesters = (n / 4).max(1);
    let msgs: Vec<Mixed> = (0..n).map(|i| mixed("k", i, requesters)).collect();
    // Two thirds arrive in bursts while the daemon is down (one burst per
    // kill, so each start has mail to take and acknowledgements to send
    // when it is killed), the rest over SMTP meanwhile.
    let upfront = n * 2 / 3;
    let bursts: Vec<Vec<&Mixed>> = msgs[..upfront]
        .chunks(upfront.div_ceil(kills.max(1)).max(1))
        .map(|c| c.iter().collect())
        .collect();

    // The rest arrives over SMTP while the daemon is killed again and again.
    let late: Vec<(String, String, Vec<u8>)> = msgs[upfront..]
        .iter()
        .map(|m| (m.from.clone(), m.to.clone(), m.raw.clone()))
        .collect();
    let stack = std::sync::Arc::new(stack);
    let sender = {
        let stack = stack.clone();
        let per = Duration::from_millis((kills as u64 * 900) / late.len().max(1) as u64);
        tokio::spawn(async move {
            for (from, to, raw) in late {
                smtp_send(&stack, &from, &[&to], &raw).await;
                tokio::time::sleep(per).await;
            }
        })
    };
    let start = Instant::now();
    for k in 0..kills {
        if let Some(b) = bursts.get(k) {
            append_all(&stack, b).await;
        }
        let p = Proc::start(&cfg, &[]);
        // `FAULTS_KILL_AT=delivery`: kill as soon as this burst's first
        // acknowledgement has arrived, i.e. in the middle of a delivery pass
        // (the widest duplicate window); else at a random moment.
        let first_ack = bursts.get(k).and_then(|b| {
            b.iter()
                .find(|m| matches!(m.expect, Expect::Ticket | Expect::Privacy))
                .map(|m| m.from.clone())
        });
        match (kill_at_delivery, first_ack) {
            (true, Some(to)) => {
                let before = count(&stack, &to, "INBOX").await;
                wait_or(Duration::from_secs(20), async || {
                    count(&stack, &to, "INBOX").await > before
                })
                .await;
            }
            _ => tokio::time::sleep(Duration::from_millis(fastrand::u64(200..1200))).await,
        }
        p.kill9();
    }
    sender.await.expect("sender");
    for b in bursts.iter().skip(kills) {
        append_all(&stack, b).await;
    }
    let p = Proc::start(&cfg, &[]);
    let acks_due = msgs
        .iter()
        .filter(|m| matches!(m.expect, Expect::Ticket | Expect::Privacy))
        .count();
    let mut ack_to: HashMap<&str, usize> = HashMap::new();
    for m in msgs
        .iter()
        .filter(|m| matches!(m.expect, Expect::Ticket | Expect::Privacy))
    {
        *ack_to.entry(m.from.as_str()).or_default() += 1;
    }
    let (_, drained) = wait_or(Duration::from_secs(120), async || {
        count(&stack, "support@example.test", "INBOX").await == 0
            && count(&stack, "privacy@example.test", "INBOX").await == 0
    })
    .await;
    wait_or(Duration::from_secs(120), async || {
        let mut got = 0;
        for (to, want) in &ack_to {
            got += count(&stack, to, "INBOX").await.min(*want);
        }
        got >= acks_due
    })
    .await;
    let log = p.log.clone();
    p.stop();
    let seen = read_store(data.path());
    // The figures first (also for an older build, `TICKETD_BIN`), then the
    // checks.
    let mut arrived: HashMap<String, usize> = HashMap::new();
    for to in ack_to.keys() {
        for id in message_ids(&stack, to).await {
            *arrived.entry(id).or_default() += 1;
        }
    }
    let ack_entries: Vec<_> = seen
        .outbox
        .iter()
        .filter(|e| e.purpose == Purpose::Ack)
        .collect();
    let unsent = ack_entries
        .iter()
        .filter(|e| e.state != OutboxState::Sent)
        .count();
    let doubled: usize = ack_entries
        .iter()
        .map(|e| {
            arrived
                .get(&e.message_id)
                .copied()
                .unwrap_or(0)
                .saturating_sub(1)
        })
        .sum();
    let cases = seen.cases.len();
    println!(
        "faults: kill9 messages={n} kills={kills} cases={cases} (want {acks_due}) acks_unsent={unsent} duplicate_acks={doubled} ({:.2} per kill) drained_in={:.1}s total={:.1}s",
        doubled as f64 / kills.max(1) as f64,
        drained.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    let acks = check_exactly_once(&seen, &msgs);
    assert_eq!(acks_arrived(&stack, &acks).await, doubled);
    // No auto-replier was answered.
    for m in msgs.iter().filter(|m| m.expect == Expect::AutoReply) {
        assert_eq!(
            count(&stack, &m.from, "INBOX").await,
            0,
            "{} got mail",
            m.from
        );
    }
    assert_eq!(
        count(&stack, "support@example.test", "Processed").await
            + count(&stack, "privacy@example.test", "Processed").await,
        n,
        "every message moved once"
    );
    // At most one resend per SMTP connection per kill (pool size 4).
    assert!(
        doubled <= kills * 4,
        "{doubled} acknowledgements arrived twice"
    );
    assert_no_pii(
        &log,
        &[
            "Requester ",
            "Report error",
            "monthly report",
            "Access request",
        ],
    );
}

/// Mail flowing while Dovecot is down for `FAULTS_DOVECOT_OUTAGE` seconds
/// (default 30): the backlog drains and every ack arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dovecot_outage_is_ridden_out() {
    let outage = Duration::from_secs(knob("FAULTS_DOVECOT_OUTAGE", 30) as u64);
    let stack = MailStack::start();
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(&stack, data.path(), "");
    let p = Proc::start(&cfg, &[]);
    let msgs: Vec<Mixed> = (0..40)
        .map(|i| ticket("d", i, &format!("r{i}.d@example.test")))
        .collect();
    for m in &msgs[..20] {
        smtp_send(&stack, &m.from, &[&m.to], &m.raw).await;
    }
    wait_for("first acks", Duration::from_secs(30), async || {
        count(&stack, &msgs[19].from, "INBOX").await == 1
    })
    .await;
    stack.stop_dovecot();
    for m in &msgs[20..] {
        smtp_send(&stack, &m.from, &[&m.to], &m.raw).await;
    }
    tokio::time::sleep(outage).await;
    stack.start_dovecot();
    let recovered = wait_for(
        "backlog and acks after the outage",
        Duration::from_secs(120),
        async || {
            for m in &msgs {
                if count(&stack, &m.from, "INBOX").await == 0 {
                    return false;
                }
            }
            count(&stack, "support@example.test", "INBOX").await == 0
        },
    )
    .await;
    let log = p.log.clone();
    p.stop();
    let seen = read_store(data.path());
    let acks = check_exactly_once(&seen, &msgs);
    let doubled = acks_arrived(&stack, &acks).await;
    assert_eq!(doubled, 0, "no acknowledgement twice");
    println!(
        "faults: dovecot_outage={}s messages=40 recovered_in={:.1}s duplicate_acks=0",
        outage.as_secs(),
        recovered.as_secs_f64()
    );
    assert_no_pii(&log, &["Requester ", "Report error", "monthly report"]);
}

/// Postfix down for `FAULTS_POSTFIX_OUTAGE` seconds (default 60) while
/// mail arrives: no acknowledgement is lost to the rate limit or to
/// backoff; all go out within seconds of Postfix coming back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postfix_outage_loses_no_acknowledgement() {
    let outage = Duration::from_secs(knob("FAULTS_POSTFIX_OUTAGE", 60) as u64);
    let stack = MailStack::start();
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(&stack, data.path(), "");
    let p = Proc::start(&cfg, &[]);
    // Five requesters with five requests each: exactly the rate limit,
    // which counts only mail the server accepted.
    let msgs: Vec<Mixed> = (0..25)
        .map(|i| ticket("p", i, &format!("r{}.p@example.test", i % 5)))
        .collect();
    stack.stop_postfix();
    let first: Vec<&Mixed> = msgs.iter().collect();
    append_all(&stack, &first).await;
    wait_for("INBOX taken", Duration::from_secs(30), async || {
        count(&stack, "support@example.test", "INBOX").await == 0
    })
    .await;
    tokio::time::sleep(outage).await;
    stack.start_postfix();
    let recovered = wait_for(
        "every ack after the outage",
        Duration::from_secs(120),
        async || {
            let mut got = 0;
            for r in 0..5 {
                got += count(&stack, &format!("r{r}.p@example.test"), "INBOX").await;
            }
            got >= 25
        },
    )
    .await;
    let log = p.log.clone();
    p.stop();
    let seen = read_store(data.path());
    let acks = check_exactly_once(&seen, &msgs);
    assert_eq!(acks_arrived(&stack, &acks).await, 0);
    println!(
        "faults: postfix_outage={}s messages=25 recovered_in={:.1}s suppressed=0 duplicate_acks=0",
        outage.as_secs(),
        recovered.as_secs_f64()
    );
    assert_no_pii(&log, &["Requester ", "Report error", "monthly report"]);
}

#[test]
fn the_pii_scan_finds_what_it_must() {
    let log = "2026-12-02T10:00:00Z  INFO ticketd: new case case=SUP-000001\n\
               2026-12-02T10:00:01Z  WARN ticketd: mail failed error=550 <p***@example.org> rejected\n\
               2026-12-02T10:00:02Z  WARN ticketd: mail failed error=550 <person@example.org> rejected\n\
               2026-12-02T10:00:03Z DEBUG ticketd: body person@example.org\n\
               2026-12-02T10:00:04Z  INFO ticketd: subject Report error 7\n";
    let bad = pii_lines(log, &["Report error"]);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].contains("person@example.org") && bad[1].contains("Report error"));
}

/// A message that makes rendering panic (armed by `TICKETD_PANIC` for its
/// subject) is tried `quarantine_after` times, recorded as an error with
/// an alert, and moved to the Quarantine folder; the five behind it flow
/// within seconds, and so does mail arriving afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_mail_is_quarantined_and_the_mail_behind_it_flows() {
    let stack = MailStack::start();
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(&stack, data.path(), "");
    let p = Proc::start(&cfg, &[("TICKETD_PANIC", "render:POISON-PILL")]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let poison = common::request(
        "Pat <pat.q@example.test>",
        "support@example.test",
        "POISON-PILL please help",
        "Our reports show an error.",
        "poison.q@sender.example.test",
    );
    let mut s = stack.imap("support@example.test").await;
    s.append("INBOX", None, None, &poison)
        .await
        .expect("append");
    let normal: Vec<Mixed> = (0..5)
        .map(|i| ticket("q", i, &format!("r{i}.q@example.test")))
        .collect();
    for m in &normal {
        s.append("INBOX", None, None, &m.raw).await.expect("append");
    }
    let _ = s.logout().await;
    let start = Instant::now();
    let flowed = wait_for(
        "the five behind the poison",
        Duration::from_secs(30),
        async || {
            for m in &normal {
                if count(&stack, &m.from, "INBOX").await == 0 {
                    return false;
                }
            }
            true
        },
    )
    .await;
    let quarantined = wait_for(
        "the poison quarantined",
        Duration::from_secs(30),
        async || {
            count(&stack, "support@example.test", "Quarantine").await == 1
                && count(&stack, "support@example.test", "INBOX").await == 0
        },
    )
    .await;
    let alerts = stack
        .wait_messages("admin@example.test", "INBOX", 1, Duration::from_secs(30))
        .await;
    assert!(alerts
        .iter()
        .any(|a| String::from_utf8_lossy(a).contains("message quarantined in mailbox support")));
    // Mail arriving afterwards flows as ever.
    let after = ticket("q", 9, "r9.q@example.test");
    smtp_send(&stack, &after.from, &[&after.to], &after.raw).await;
    stack
        .wait_messages(&after.from, "INBOX", 1, Duration::from_secs(20))
        .await;
    let log = p.log.clone();
    p.stop();
    let seen = read_store(data.path());
    let err: Vec<_> = seen
        .ignored
        .iter()
        .filter(|r| r.category == "error")
        .collect();
    assert_eq!(err.len(), 1, "{:?}", seen.ignored);
    assert!(
        err[0].reasons[0].contains("panic point render armed"),
        "{:?}",
        err[0].reasons
    );
    assert_eq!(seen.cases.len(), 6);
    assert_eq!(
        count(&stack, "pat.q@example.test", "INBOX").await,
        0,
        "no ack for the poison"
    );
    println!(
        "faults: poison behind_flowed_in={:.1}s quarantined_in={:.1}s total={:.1}s",
        flowed.as_secs_f64(),
        quarantined.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    assert_no_pii(&log, &["Pat ", "POISON-PILL", "Requester ", "Report error"]);
}

/// CR, LF and NUL in every header value we copy into an acknowledgement
/// (display names in From and Reply-To as encoded words, the Subject, the
/// ids we thread on), and a 1 MB Subject: every message is acknowledged,
/// no header is injected, and the acknowledgements stay small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_header_values_never_reach_outgoing_headers() {
    let stack = MailStack::start();
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(&stack, data.path(), "");
    let p = Proc::start(&cfg, &[]);
    let big = "B".repeat(1 << 20);
    let msgs: Vec<(String, String)> = vec![
        ("h1.x@example.test".into(), "From: =?utf-8?q?Eve=0D=0ABcc=3A_bcc1=40example.test=00?= <h1.x@example.test>\r\nSubject: Help\r\nMessage-ID: <h1.x@sender.example.test>\r\n".into()),
        ("h2.x@example.test".into(), "From: Someone <h2from.x@example.test>\r\nReply-To: =?utf-8?b?TWFsbG9yeQ0KQmNjOiBiY2MyQGV4YW1wbGUudGVzdA==?= <h2.x@example.test>\r\nSubject: Help\r\nMessage-ID: <h2.x@sender.example.test>\r\n".into()),
        ("h3.x@example.test".into(), "From: Dana <h3.x@example.test>\r\nSubject: =?utf-8?q?Help=0D=0ABcc=3A_bcc3=40example.test=00end?=\r\nMessage-ID: <h3.x@sender.example.test>\r\n".into()),
        ("h4.x@example.test".into(), "From: Dana <h4.x@example.test>\r\nSubject: Help\r\nMessage-ID: <h4.x@sender.example.test>\r\nIn-Reply-To: <bad id\u{0}@x>\r\nReferences: <a@x>\r\n\tBcc: bcc4@example.test\r\n".into()),
        ("h5.x@example.test".into(), format!("From: Dana <h5.x@example.test>\r\nSubject: {big}\r\nMessage-ID: <h5.x@sender.example.test>\r\n")),
    ];
    for (from, head) in &msgs {
        let raw = format!("{head}To: support@example.test\r\nDate: Tue, 01 Dec 2026 10:00:00 -0500\r\n\r\nThe monthly report shows an error.\r\n");
        smtp_send(&stack, from, &["support@example.test"], raw.as_bytes()).await;
    }
    for (to, _) in &msgs {
        let got = stack
            .wait_messages(to, "INBOX", 1, Duration::from_secs(30))
            .await;
        let text = String::from_utf8_lossy(&got[0]).into_owned();
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        let names: Vec<String> = head
            .lines()
            .filter(|l| !l.starts_with([' ', '\t']))
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_ascii_lowercase()))
            .collect();
        for injected in ["bcc", "cc"] {
            assert!(
                !names.iter().any(|n| n == injected),
                "{to}: injected {injected}:\n{head}"
            );
        }
        assert_eq!(names.iter().filter(|n| *n == "to").count(), 1, "{head}");
        assert!(
            got[0].len() < 64 * 1024,
            "{to}: acknowledgement of {} bytes",
            got[0].len()
        );
        assert!(!text.contains('\0'), "{to}: NUL in the acknowledgement");
    }
    for n in 1..=4 {
        assert_eq!(
            count(&stack, &format!("bcc{n}@example.test"), "INBOX").await,
            0
        );
    }
    let log = p.log.clone();
    p.stop();
    assert_eq!(read_store(data.path()).cases.len(), 5);
    assert_no_pii(&log, &["Eve", "Mallory", "Dana", "monthly report"]);
}

/// A reused Message-ID with other content, a Message-ID-less message
/// delivered twice through Postfix (other trace headers each time), and a
/// reply that arrives before the message it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_ids_missing_ids_and_late_parents_are_kept_apart_or_together_rightly() {
    let stack = MailStack::start();
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(&stack, data.path(), "");
    let p = Proc::start(&cfg, &[]);
    let send = |from: &'static str, to: &'static str, head: String, body: &'static str| {
        let stack = &stack;
        async move {
            let raw = format!("From: {from}\r\nTo: {to}\r\n{head}Date: Tue, 01 Dec 2026 10:00:00 -0500\r\n\r\n{body}\r\n");
            smtp_send(stack, from, &[to], raw.as_bytes()).await;
        }
    };
    // 1. The same Message-ID, other sender and content: both recorded.
    send(
        "a1.r@example.test",
        "privacy@example.test",
        "Subject: Access request\r\nMessage-ID: <reused.r@x.example.test>\r\n".into(),
        "Under Article 15 GDPR I request a copy of all personal data you hold about me.",
    )
    .await;
    stack
        .wait_messages("a1.r@example.test", "INBOX", 1, Duration::from_secs(20))
        .await;
    send(
        "a2.r@example.test",
        "privacy@example.test",
        "Subject: Delete my data\r\nMessage-ID: <reused.r@x.example.test>\r\n".into(),
        "Under Article 17 GDPR please erase all my personal data.",
    )
    .await;
    stack
        .wait_messages("a2.r@example.test", "INBOX", 1, Duration::from_secs(20))
        .await;
    // 2. No Message-ID, delivered twice.
    for _ in 0..2 {
        send(
            "b.r@example.test",
            "support@example.test",
            "Subject: Export fails\r\n".into(),
            "The CSV export shows an error every time.",
        )
        .await;
    }
    // 3. The reply first, then the message it answers.
    send("c2.r@example.test", "support@example.test",
        "Subject: Re: Intake form broken\r\nMessage-ID: <child.r@x.example.test>\r\nIn-Reply-To: <parent.r@x.example.test>\r\nReferences: <parent.r@x.example.test>\r\n".into(),
        "Same here in our office, the intake form shows an error.").await;
    stack
        .wait_messages("c2.r@example.test", "INBOX", 1, Duration::from_secs(20))
        .await;
    send(
        "c1.r@example.test",
        "support@example.test",
        "Subject: Intake form broken\r\nMessage-ID: <parent.r@x.example.test>\r\n".into(),
        "The intake form shows an error when we save.",
    )
    .await;
    wait_for("everything taken", Duration::from_secs(20), async || {
        count(&stack, "support@example.test", "INBOX").await == 0
            && count(&stack, "support@example.test", "Processed").await == 4
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = p.log.clone();
    p.stop();
    let seen = read_store(data.path());
    let prv: Vec<_> = seen
        .cases
        .iter()
        .filter(|c| c.id.starts_with("PRV"))
        .collect();
    assert_eq!(prv.len(), 2, "a reused id never hides a request");
    let sup: Vec<_> = seen
        .cases
        .iter()
        .filter(|c| c.id.starts_with("SUP"))
        .collect();
    assert_eq!(sup.len(), 2, "{sup:?}");
    let dup: Vec<_> = seen
        .ignored
        .iter()
        .filter(|r| r.category == "duplicate")
        .collect();
    assert_eq!(dup.len(), 1, "{:?}", seen.ignored);
    let thread = sup
        .iter()
        .find(|c| c.messages.len() == 2)
        .expect("the late parent joined its reply's case");
    assert_eq!(
        thread.requester.as_ref().map(|a| a.address.as_str()),
        Some("c2.r@example.test")
    );
    assert_eq!(
        count(&stack, "b.r@example.test", "INBOX").await,
        1,
        "one ack for the twice-delivered message"
    );
    assert_eq!(
        count(&stack, "c1.r@example.test", "INBOX").await,
        0,
        "the late parent opens no second case"
    );
    assert_no_pii(&log, &["Access request", "Intake form", "CSV export"]);
}

/// A message delivered in the window between taking the previous one and
/// entering IDLE (widened to 3 s by a delay point) is taken within
/// seconds, not at the next reconciliation (5 minutes): on one mailbox
/// and on ten at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_landing_just_before_idle_is_taken_at_once() {
    let stack = MailStack::start();
    let data = tempfile::tempdir().expect("tempdir");
    let many = 10;
    let password = stack.path().join("password");
    let mut extra = String::from("|||\n|||\n");
    for i in 0..many {
        extra.push_str(&format!(
            "[[mailboxes]]\nname = \"box{i}\"\nrole = \"support\"\naddress = \"box{i}@example.test\"\nsource = \"imap\"\n\
             host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = \"box{i}@example.test\"\nauth = \"password\"\n\
             password_file = \"{}\"\ntimeout = \"5s\"\n\n",
            stack.port("IMAP_PORT"),
            password.display()
        ));
    }
    let cfg = write_config(&stack, data.path(), &extra);
    let p = Proc::start(&cfg, &[("TICKETD_DELAY", "before_idle:3000")]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let boxes: Vec<String> = std::iter::once("support@example.test".to_string())
        .chain((0..many).map(|i| format!("box{i}@example.test")))
        .collect();
    let mut worst = Duration::ZERO;
    for round in 0..2 {
        // Round 0: one mailbox; round 1: all at once.
        let these: Vec<&String> = if round == 0 {
            boxes.iter().take(1).collect()
        } else {
            boxes.iter().collect()
        };
        for (i, b) in these.iter().enumerate() {
            let first = ticket("w", round * 100 + i, &format!("a{round}{i}.w@example.test"));
            stack.append(b, "INBOX", &first.raw).await;
        }
        for b in &these {
            wait_for(
                "the first message taken",
                Duration::from_secs(20),
                async || count(&stack, b, "INBOX").await == 0,
            )
            .await;
        }
        // Now each mailbox sits in the window before IDLE.
        let t = Instant::now();
        for (i, b) in these.iter().enumerate() {
            let second = ticket(
                "w",
                round * 100 + 50 + i,
                &format!("b{round}{i}.w@example.test"),
            );
            stack.append(b, "INBOX", &second.raw).await;
        }
        for b in &these {
            wait_for(
                "the second message taken",
                Duration::from_secs(30),
                async || count(&stack, b, "INBOX").await == 0,
            )
            .await;
        }
        worst = worst.max(t.elapsed());
    }
    p.stop();
    println!(
        "faults: idle_window delay=3s mailboxes=1,{} worst_taken_in={:.1}s",
        many + 1,
        worst.as_secs_f64()
    );
    assert!(worst < Duration::from_secs(15), "taken after {worst:?}");
}

/// An auto-responder loop: Pigeonhole's vacation (RFC 3834-aware) answers a
/// human mail from support@ and is recorded, never answered; a naive
/// responder that strips Auto-Submitted and threading is held by the rate
/// limit, and the operators are told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_responder_loops_are_held() {
    let secs = knob("FAULTS_LOOP_SECS", 40) as u64;
    let stack = MailStack::start();
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(&stack, data.path(), "");
    let p = Proc::start(&cfg, &[]);
    stack.set_vacation("v.l@example.test");
    let req = ticket("l", 1, "v.l@example.test");
    smtp_send(&stack, &req.from, &[&req.to], &req.raw).await;
    stack
        .wait_messages("v.l@example.test", "INBOX", 1, Duration::from_secs(20))
        .await;
    // A person at support@ writes to the requester: the vacation answers.
    let human = common::request(
        "Support <support@example.test>",
        "v.l@example.test",
        "About your report",
        "Could you tell us which browser you use?",
        "human.l@casehost.example.test",
    );
    smtp_send(
        &stack,
        "support@example.test",
        &["v.l@example.test"],
        &human,
    )
    .await;
    // The naive responder writes to us with every answer it gets.
    let naive = stack.spawn_naive_responder("n.l@example.test", secs);
    let first = ticket("l", 2, "n.l@example.test");
    smtp_send(&stack, &first.from, &[&first.to], &first.raw).await;
    let replies = common::naive_responder_replies(naive);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = p.log.clone();
    p.stop();
    let v_inbox = count(&stack, "v.l@example.test", "INBOX").await;
    let acks_to_naive = count(&stack, "n.l@example.test", "INBOX").await;
    let seen = read_store(data.path());
    let vacation_recorded = seen
        .ignored
        .iter()
        .filter(|r| {
            r.from
                .as_ref()
                .is_some_and(|a| a.address == "v.l@example.test")
        })
        .count();
    let suppressed = seen
        .outbox
        .iter()
        .filter(|e| e.state == OutboxState::Suppressed)
        .count();
    println!("faults: loop secs={secs} vacation_acks=1 vacation_replies_recorded={vacation_recorded} naive_replies={replies} acks_to_naive={acks_to_naive} suppressed={suppressed}");
    assert_eq!(
        v_inbox, 2,
        "the requester on vacation: one ack and the human mail, nothing more"
    );
    assert_eq!(
        vacation_recorded, 1,
        "the vacation reply is recorded: {:?}",
        seen.ignored
    );
    assert!(
        acks_to_naive <= 5,
        "the rate limit holds: {acks_to_naive} acks"
    );
    if replies >= 5 {
        assert!(suppressed >= 1);
        let alerts = stack.messages("admin@example.test", "INBOX").await;
        assert!(alerts
            .iter()
            .any(|a| String::from_utf8_lossy(a).contains("per-recipient rate limit")));
    }
    assert_no_pii(&log, &["Requester ", "Report error", "About your report"]);
}

#[path = "faults/hostile_inputs.rs"]
mod hostile_inputs;

/// Each hostile input (30 MB, 10,000 parts, 1,000-deep nesting, 100,000
/// links, header injection, a 1 MB Subject, 8-bit garbage headers, 10,000
/// References) through `ticketd import`: exit 0, one record each, and a
/// reason that says what was wrong for what is not mail.
#[test]
fn hostile_inputs_are_recorded_never_a_panic() {
    for (name, raw) in hostile_inputs::inputs() {
        let input = tempfile::NamedTempFile::new().expect("input file");
        std::fs::write(input.path(), &raw).expect("input");
        let (out, data, _dir) = import_fresh(input.path(), true);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{name}: {e}"));
        let recorded = v["new_cases"].as_u64().unwrap_or(0) + v["ignored"].as_u64().unwrap_or(0);
        assert_eq!(recorded, 1, "{name}: {v}");
        let seen = read_store(&data);
        if name == "8-bit garbage headers" {
            assert_eq!(seen.ignored.len(), 1);
            assert!(
                seen.ignored[0].reasons[0].contains("8-bit, control or space bytes"),
                "{name}: {:?}",
                seen.ignored[0].reasons
            );
        } else {
            assert_eq!(seen.cases.len(), 1, "{name}: {:?}", seen.ignored);
            for e in &seen.outbox {
                assert!(
                    e.mail.len() < 64 * 1024,
                    "{name}: a mail of {} bytes",
                    e.mail.len()
                );
                let head = e.mail.split("\r\n\r\n").next().unwrap_or("");
                assert!(
                    head.lines().all(|l| l.len() <= 998),
                    "{name}: a header line over 998 bytes"
                );
                assert!(
                    !head
                        .lines()
                        .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
                    "{name}: {head}"
                );
            }
        }
    }
}

/// Every input the fuzzers found (`fixtures/fuzz/`) through the daemon's
/// own import: one case each, and its acknowledgement and notices are
/// well-formed mail (no header line over 998 bytes, no injected header, no
/// line break or re-decodable encoded word in a subject, bounded size).
#[test]
fn every_fuzz_finding_stays_fixed() {
    let dir_in = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fuzz");
    let mut files: Vec<_> = std::fs::read_dir(&dir_in)
        .expect("fixtures/fuzz")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    assert!(files.len() >= 6);
    for file in files {
        let name = file.display().to_string();
        let (out, data, _dir) = import_fresh(&file, false);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{name}"
        );
        let seen = read_store(&data);
        assert_eq!(seen.cases.len() + seen.ignored.len(), 1, "{name}");
        for e in &seen.outbox {
            let head = e.mail.split("\r\n\r\n").next().unwrap_or("");
            assert!(
                head.lines().all(|l| l.len() <= 998),
                "{name}: a header line over 998 bytes:\n{head}"
            );
            let names: Vec<String> = head
                .lines()
                .filter(|l| !l.starts_with([' ', '\t']))
                .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_ascii_lowercase()))
                .collect();
            assert!(
                !names
                    .iter()
                    .any(|n| n == "bcc" || n == "cc" || n == "reply-to"),
                "{name}:\n{head}"
            );
            assert!(
                !e.subject.contains(['\r', '\n', '\0']) && !e.subject.contains("=?"),
                "{name}: {:?}",
                e.subject
            );
            assert!(
                e.subject.chars().count() <= 450,
                "{name}: subject of {} chars",
                e.subject.chars().count()
            );
            assert!(e.mail.len() < 64 * 1024, "{name}");
        }
    }
}
