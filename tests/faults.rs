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
            acks.entry(r.clone()).or_default().push(e.message_id.clone());
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
    for (to, ids) in acks {
        let got = message_ids(stack, to).await;
        for id in ids {
            let n = got.iter().filter(|g| *g == id).count();
            assert!(n >= 1, "acknowledgement {id} never reached {to}");
            doubled += n - 1;
        }
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
    let requesters = (n / 4).max(1);
    let msgs: Vec<Mixed> = (0..n).map(|i| mixed("k", i, requesters)).collect();
    let upfront = n * 2 / 3;
    let first: Vec<&Mixed> = msgs[..upfront].iter().collect();
    append_all(&stack, &first).await;

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
    for _ in 0..kills {
        let p = Proc::start(&cfg, &[]);
        tokio::time::sleep(Duration::from_millis(fastrand::u64(300..1500))).await;
        p.kill9();
    }
    sender.await.expect("sender");
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
    let drained = wait_for("INBOXes empty", Duration::from_secs(120), async || {
        count(&stack, "support@example.test", "INBOX").await == 0
            && count(&stack, "privacy@example.test", "INBOX").await == 0
    })
    .await;
    wait_for(
        "every acknowledgement delivered",
        Duration::from_secs(120),
        async || {
            let mut got = 0;
            for (to, want) in &ack_to {
                got += count(&stack, to, "INBOX").await.min(*want);
            }
            got >= acks_due
        },
    )
    .await;
    let log = p.log.clone();
    p.stop();
    let seen = read_store(data.path());
    let acks = check_exactly_once(&seen, &msgs);
    let doubled = acks_arrived(&stack, &acks).await;
    // No auto-replier was answered.
    for m in msgs.iter().filter(|m| m.expect == Expect::AutoReply) {
        assert_eq!(count(&stack, &m.from, "INBOX").await, 0, "{} got mail", m.from);
    }
    assert_eq!(count(&stack, "support@example.test", "Processed").await
        + count(&stack, "privacy@example.test", "Processed").await, n, "every message moved once");
    println!(
        "faults: kill9 messages={n} kills={kills} lost=0 doubled=0 duplicate_acks={doubled} ({:.2} per kill) drained_in={:.1}s total={:.1}s",
        doubled as f64 / kills.max(1) as f64,
        drained.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    // At most one resend per SMTP connection per kill (pool size 4).
    assert!(doubled <= kills * 4, "{doubled} acknowledgements arrived twice");
    assert_no_pii(&log, &["Requester ", "Report error", "monthly report", "Access request"]);
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
    let recovered = wait_for("backlog and acks after the outage", Duration::from_secs(120), async || {
        for m in &msgs {
            if count(&stack, &m.from, "INBOX").await == 0 {
                return false;
            }
        }
        count(&stack, "support@example.test", "INBOX").await == 0
    })
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
    let recovered = wait_for("every ack after the outage", Duration::from_secs(120), async || {
        let mut got = 0;
        for r in 0..5 {
            got += count(&stack, &format!("r{r}.p@example.test"), "INBOX").await;
        }
        got >= 25
    })
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
