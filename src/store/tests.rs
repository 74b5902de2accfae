//! Unit tests of the store: numbering, dedupe, threading, limits, locking,
//! outbox bookkeeping.

use super::*;
use crate::mail::Addr;
use crate::triage::{Auth, Decision, Kind};
use chrono::TimeZone;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 14, 0, 0)
        .single()
        .unwrap_or_default()
}

fn ticket(level: u8) -> Decision {
    Decision {
        kind: Kind::Ticket,
        level: Some(level),
        rights: None,
        jurisdiction: None,
        case_ref: None,
        language: None,
        auth: Auth::None,
        ack: true,
        reasons: vec![format!("test level {level}")],
        hygiene: None,
        confidence: crate::triage::Confidence::High,
        confidence_score: None,
        runner_up: None,
    }
}

fn privacy() -> Decision {
    Decision {
        kind: Kind::Privacy,
        level: None,
        rights: Some(vec![crate::policy::Right::Access]),
        jurisdiction: Some(crate::policy::Jurisdiction::Gdpr),
        case_ref: None,
        language: None,
        auth: Auth::None,
        ack: true,
        reasons: vec![],
        hygiene: None,
        confidence: crate::triage::Confidence::High,
        confidence_score: None,
        runner_up: None,
    }
}

fn render(case: &Case) -> std::result::Result<NewMail, String> {
    Ok(NewMail {
        purpose: Purpose::Ack,
        from: "support@casehost.example".into(),
        recipients: vec!["a@x.example".into()],
        message_id: format!("ack.{}.tok@casehost.example", case.id),
        in_reply_to: None,
        subject: format!("[{}] test", case.id),
        mail: "Subject: test\r\n\r\nbody\r\n".into(),
    })
}

fn plan(case: &Case, _d: &Decision) -> NewCasePlan {
    NewCasePlan {
        ack: Some(render(case)),
        ..NewCasePlan::default()
    }
}

fn follow_up(case: &Case, f: &JoinFacts) -> crate::workflow::ArrivalPlan {
    crate::workflow::ArrivalPlan {
        case: case.clone(),
        change: CaseChange {
            events: vec![EventKind::FollowUp {
                message: f.message,
                matched_by: f.matched_by.clone(),
            }],
            ..CaseChange::default()
        },
        actor: "ticketd".into(),
        staff: false,
    }
}

struct Msg<'a> {
    mid: Option<&'a str>,
    raw: &'a [u8],
    from: &'a str,
    decision: Decision,
    thread: ThreadHint,
}

fn ingest(store: &Store, m: Msg<'_>) -> IngestOutcome {
    let from = Addr {
        name: None,
        address: m.from.into(),
    };
    let hash = crate::mail::content_hash(m.raw);
    let fallback = ticket(4);
    // Every call is a new mailbox item (a re-read is tested with
    // `ingest_key`).
    static KEY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let key = format!(
        "k{}",
        KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    ingest_key(store, m, &key, &hash, &from, &fallback)
}

fn ingest_key(
    store: &Store,
    m: Msg<'_>,
    key: &str,
    hash: &str,
    from: &Addr,
    fallback: &Decision,
) -> IngestOutcome {
    let mut thread = m.thread;
    if thread.sender.is_none() {
        thread.sender = Some(from.address.to_ascii_lowercase());
    }
    if thread.refs.is_empty() {
        thread.refs = thread
            .header_ids
            .iter()
            .map(|id| crate::workflow::HeaderRef::Other {
                id: id.clone(),
                case: None,
            })
            .collect();
    }
    let input = IngestInput {
        source: "support",
        source_key: key,
        received_at: t0(),
        now: t0(),
        actor: "ticketd",
        raw: m.raw,
        max_stored_bytes: 1000,
        original_size: None,
        render_alert: None,
        message_id: m.mid,
        content_hash: hash,
        subject: "s",
        from: Some(from),
        warnings: &[],
        thread,
        decision: Some(&m.decision),
        fallback: Some(fallback),
        unparseable: None,
        reply_address: Ok(m.from.into()),
        plan: &plan,
        follow_up: &follow_up,
        late_parent_window: chrono::Duration::days(7),
        cursor: Some(("support", b"cursor-1")),
    };
    match store.ingest(&input) {
        Ok(o) => o,
        Err(e) => panic!("ingest failed: {e}"),
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open store");
    (dir, store)
}

fn msg<'a>(mid: Option<&'a str>, raw: &'a [u8], d: Decision) -> Msg<'a> {
    Msg {
        mid,
        raw,
        from: "a@x.example",
        decision: d,
        thread: ThreadHint::default(),
    }
}

#[test]
fn case_numbers_are_sequential_per_kind() {
    let (_d, s) = open();
    let a = ingest(&s, msg(Some("1@x"), b"one", ticket(3)));
    let b = ingest(&s, msg(Some("2@x"), b"two", privacy()));
    let c = ingest(&s, msg(Some("3@x"), b"three", ticket(1)));
    let ids: Vec<String> = [a, b, c]
        .into_iter()
        .filter_map(|o| match o {
            IngestOutcome::NewCase { case, .. } => Some(case),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec!["SUP-000001", "PRV-000001", "SUP-000002"]);
    assert_eq!(s.schema_version().ok(), Some(SCHEMA_VERSION));
    assert_eq!(
        s.cursor("support").ok().flatten().as_deref(),
        Some(&b"cursor-1"[..])
    );
}

#[test]
fn dedupe_by_message_id_and_content() {
    let (_d, s) = open();
    ingest(&s, msg(Some("same@x"), b"first bytes", ticket(3)));
    // The same id with other content is another message: never dropped.
    let reused = ingest(&s, msg(Some("same@x"), b"other bytes", privacy()));
    assert!(
        matches!(reused, IngestOutcome::NewCase { ref case, .. } if case == "PRV-000001"),
        "{reused:?}"
    );
    let v = s.case_view("PRV-000001").expect("view");
    assert!(
        v.events.iter().any(|e| matches!(&e.kind, EventKind::Note { text } if text.contains("reuses the Message-ID of message 1"))),
        "{:?}",
        v.events
    );
    // The id still threads to where it first pointed.
    assert_eq!(
        s.msgid_case("same@x").ok().flatten().as_deref(),
        Some("SUP-000001")
    );
    // The same id and content delivered again: recorded as a duplicate.
    for (raw, original) in [(&b"first bytes"[..], 1), (&b"other bytes"[..], 2)] {
        let dup = ingest(&s, msg(Some("same@x"), raw, ticket(3)));
        let IngestOutcome::Ignored { ignored, .. } = dup else {
            panic!("expected a duplicate record, got {dup:?}");
        };
        let rec = s.ignored(ignored).ok().flatten().expect("ignored record");
        assert_eq!(rec.category, "duplicate");
        assert!(
            rec.reasons[0].contains(&format!("as message {original} (")),
            "{:?}",
            rec.reasons
        );
    }
    // Without a Message-ID: by content.
    ingest(&s, msg(None, b"no id bytes", ticket(3)));
    let dup = ingest(&s, msg(None, b"no id bytes", ticket(3)));
    assert!(matches!(dup, IngestOutcome::Ignored { .. }), "{dup:?}");
    let other = ingest(&s, msg(None, b"different no id", ticket(3)));
    assert!(matches!(other, IngestOutcome::NewCase { .. }));
    assert_eq!(
        s.list_cases(&CaseFilter::default()).map(|v| v.len()).ok(),
        Some(4)
    );
    assert_eq!(s.outbox_pending().map(|v| v.len()).ok(), Some(4));
}

#[test]
fn a_reread_of_the_same_item_records_nothing() {
    let (_d, s) = open();
    let from = Addr {
        name: None,
        address: "a@x.example".into(),
    };
    let fb = ticket(4);
    let hash = crate::mail::content_hash(b"bytes");
    let first = ingest_key(
        &s,
        msg(Some("m@x"), b"bytes", ticket(3)),
        "7:42",
        &hash,
        &from,
        &fb,
    );
    assert!(matches!(first, IngestOutcome::NewCase { .. }));
    let again = ingest_key(
        &s,
        msg(Some("m@x"), b"bytes", ticket(3)),
        "7:42",
        &hash,
        &from,
        &fb,
    );
    assert_eq!(again, IngestOutcome::Duplicate { message: 1 });
    assert_eq!(s.list_ignored().map(|v| v.len()).ok(), Some(0));
}

#[test]
fn reply_to_stored_message_joins_case_without_ack() {
    let (_d, s) = open();
    ingest(&s, msg(Some("orig@x"), b"orig", ticket(1)));
    let mut m = msg(Some("reply@x"), b"reply", ticket(4));
    m.thread.header_ids = vec!["orig@x".into()];
    let o = ingest(&s, m);
    assert_eq!(
        o,
        IngestOutcome::FollowUp {
            case: "SUP-000001".into(),
            message: 2
        }
    );
    let v = s.case_view("SUP-000001").expect("view");
    assert_eq!(v.messages.len(), 2);
    assert_eq!(v.outbox.len(), 1, "no second acknowledgement");
    let names: Vec<&str> = v.events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        names,
        vec!["received", "triaged", "ack_queued", "received", "follow_up"]
    );
    let seqs: Vec<u64> = v.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    // A reply to our acknowledgement's Message-ID threads too.
    let mut m = msg(Some("reply2@x"), b"reply2", ticket(4));
    m.thread.header_ids = vec!["ack.SUP-000001.tok@casehost.example".into()];
    assert!(matches!(ingest(&s, m), IngestOutcome::FollowUp { .. }));
}

#[test]
fn subject_tag_alone_admits_only_the_requester() {
    let (_d, s) = open();
    ingest(&s, msg(Some("orig@x"), b"orig", ticket(3)));
    let reply = |from: &'static str, mid: &'static str, raw: &'static [u8]| {
        let mut d = ticket(3);
        d.kind = Kind::Reply;
        d.case_ref = Some("SUP-000001".into());
        Msg {
            mid: Some(mid),
            raw,
            from,
            decision: d,
            thread: ThreadHint {
                subject_tag: Some("SUP-000001".into()),
                ..ThreadHint::default()
            },
        }
    };
    let stranger = ingest(&s, reply("mallory@evil.example", "m1@x", b"m1"));
    assert!(
        matches!(stranger, IngestOutcome::NewCase { ref case, .. } if case == "SUP-000002"),
        "{stranger:?}"
    );
    let own = ingest(&s, reply("a@x.example", "m2@x", b"m2"));
    assert!(
        matches!(own, IngestOutcome::FollowUp { ref case, .. } if case == "SUP-000001"),
        "{own:?}"
    );
}

#[test]
fn oversized_raw_is_not_stored_and_the_case_says_so() {
    let (_d, s) = open();
    let big = vec![b'x'; 5000];
    let o = ingest(&s, msg(Some("big@x"), &big, ticket(3)));
    let IngestOutcome::NewCase { case, message, .. } = o else {
        panic!("{o:?}")
    };
    let m = s.message(message).ok().flatten().expect("record");
    assert!(!m.raw_stored);
    assert_eq!(m.size, 5000);
    assert!(s.raw(message).ok().flatten().is_none());
    let c = s.case(&case).ok().flatten().expect("case");
    assert!(
        c.notes.iter().any(|n| n.contains("stays in its source")),
        "{:?}",
        c.notes
    );
    let small = ingest(&s, msg(Some("small@x"), b"small", ticket(3)));
    let IngestOutcome::NewCase { message, .. } = small else {
        panic!()
    };
    assert_eq!(
        s.raw(message).ok().flatten().as_deref(),
        Some(&b"small"[..])
    );
}

#[test]
fn ignored_messages_are_recorded_and_promotable() {
    let (_d, s) = open();
    let mut d = ticket(3);
    d.kind = Kind::Ignore;
    d.ack = false;
    d.reasons = vec![
        "header Auto-Submitted: auto-replied".into(),
        "ignored: auto-reply".into(),
    ];
    let o = ingest(&s, msg(Some("ooo@x"), b"ooo", d));
    let IngestOutcome::Ignored { ignored, .. } = o else {
        panic!("{o:?}")
    };
    let rec = s.ignored(ignored).ok().flatten().expect("record");
    assert_eq!(rec.category, "auto-reply");
    assert!(s
        .list_cases(&CaseFilter::default())
        .map(|v| v.is_empty())
        .unwrap_or(false));
    let (case, outbox) = s
        .promote_ignored(
            ignored,
            &ticket(4),
            Ok("a@x.example".into()),
            t0(),
            "cli:test",
            &plan,
        )
        .expect("promote");
    assert_eq!(case, "SUP-000001");
    assert!(outbox.is_some());
    assert_eq!(
        s.ignored(ignored)
            .ok()
            .flatten()
            .and_then(|r| r.promoted_to),
        Some(case.clone())
    );
    let names: Vec<String> = s
        .events(&case)
        .unwrap_or_default()
        .iter()
        .map(|e| e.kind.name().to_string())
        .collect();
    assert!(names.contains(&"promoted".to_string()), "{names:?}");
    assert!(s
        .promote_ignored(
            ignored,
            &ticket(4),
            Ok("a@x.example".into()),
            t0(),
            "cli:test",
            &plan
        )
        .is_err());
}

#[test]
fn second_open_is_refused_clearly() {
    let (dir, _s) = open();
    match Store::open(dir.path()) {
        Err(StoreError::Locked(p)) => assert_eq!(p, dir.path()),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("second open succeeded"),
    }
}

#[test]
fn outbox_states_and_pending_index_move_together() {
    let (_d, s) = open();
    ingest(&s, msg(Some("1@x"), b"one", ticket(3)));
    let mut e = s.outbox_pending().expect("pending").remove(0);
    crate::outbox::state::begin_send(&mut e);
    s.update_outbox(&e, None).expect("update");
    assert_eq!(
        s.recover_outbox().ok(),
        Some(1),
        "sending goes back to queued after a crash"
    );
    let mut e = s.outbox_pending().expect("pending").remove(0);
    assert_eq!(e.state, OutboxState::Queued);
    crate::outbox::state::begin_send(&mut e);
    crate::outbox::state::succeeded(&mut e, t0(), "file".into());
    s.update_outbox(
        &e,
        Some((
            t0(),
            EventKind::MailSent {
                outbox: e.id,
                delivered_as: "file".into(),
            },
        )),
    )
    .expect("update");
    assert!(s.outbox_pending().map(|v| v.is_empty()).unwrap_or(false));
    let names: Vec<String> = s
        .events("SUP-000001")
        .unwrap_or_default()
        .iter()
        .map(|e| e.kind.name().to_string())
        .collect();
    assert_eq!(names.last().map(String::as_str), Some("mail_sent"));
}

#[test]
fn data_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = Store::open(dir.path()).expect("open");
        ingest(&s, msg(Some("1@x"), b"one", ticket(2)));
        s.flush_blocking().expect("flush");
    }
    let s = Store::open(dir.path()).expect("reopen");
    assert_eq!(
        s.case("SUP-000001").ok().flatten().and_then(|c| c.level),
        Some(2)
    );
    // Delivered again (another mailbox item): recorded as a duplicate.
    let again = ingest(&s, msg(Some("1@x"), b"one", ticket(2)));
    assert!(matches!(again, IngestOutcome::Ignored { .. }), "{again:?}");
    let next = ingest(&s, msg(Some("2@x"), b"two", ticket(2)));
    assert!(matches!(next, IngestOutcome::NewCase { ref case, .. } if case == "SUP-000002"));
}

#[test]
fn an_escalation_tick_reads_only_the_due_timers_of_its_queue() {
    let (_d, s) = open();
    let timer = |case: String, due: DateTime<Utc>, kind: TimerKind| Timer {
        case,
        due,
        plan: 0,
        kind,
    };
    // 2,000 timers in the future, 3 due, and a privacy timer that is due but
    // belongs to the other queue.
    let mut all = Vec::new();
    for i in 0..2000 {
        all.push(timer(
            format!("SUP-{i:06}"),
            t0() + chrono::Duration::minutes(1 + i64::from(i)),
            TimerKind::Breach,
        ));
    }
    for i in 0..3 {
        all.push(timer(
            format!("SUP-9{i:05}"),
            t0() - chrono::Duration::minutes(i64::from(i)),
            TimerKind::Warn,
        ));
    }
    all.push(timer(
        "PRV-000001".into(),
        t0() - chrono::Duration::days(1),
        TimerKind::PrivacyOverdue {
            date: t0().date_naive(),
        },
    ));
    s.transact(|tx| {
        for t in &all {
            tx.put_timer(t)?;
        }
        Ok(())
    })
    .expect("timers");
    assert_eq!(s.timer_count(), 2004);
    let due = s.due_timers(Queue::Escalate, t0(), 100).expect("due");
    let cases: Vec<&str> = due.iter().map(|d| d.timer.case.as_str()).collect();
    // Earliest first; a timer due exactly now is due.
    assert_eq!(cases, ["SUP-900002", "SUP-900001", "SUP-900000"]);
    let p = s.due_timers(Queue::Privacy, t0(), 100).expect("due");
    assert_eq!(p.len(), 1);
    // Settling one removes it from the index, atomically with its change.
    s.fire_timer(&due[0], t0(), &|_| CaseChange::default())
        .expect("fire");
    assert_eq!(
        s.due_timers(Queue::Escalate, t0(), 100).expect("due").len(),
        2
    );
}

#[test]
fn a_case_has_one_index_entry_per_queue_and_its_later_timers_follow_in_turn() {
    let (_d, s) = open();
    let timer = |due: DateTime<Utc>, kind: TimerKind| Timer {
        case: "SUP-000001".into(),
        due,
        plan: 0,
        kind,
    };
    let m = chrono::Duration::minutes;
    let review = timer(t0() - m(30), TimerKind::ReviewMissed);
    let warn = timer(t0() - m(10), TimerKind::Warn);
    let breach = timer(t0() + m(10), TimerKind::Breach);
    let overdue = timer(
        t0() - m(5),
        TimerKind::PrivacyOverdue {
            date: t0().date_naive(),
        },
    );
    s.transact(|tx| {
        tx.put_timers(&[
            breach.clone(),
            review.clone(),
            warn.clone(),
            overdue.clone(),
        ])
    })
    .expect("timers");
    // One entry per queue; every timer still listed for the case.
    assert_eq!(s.timer_count(), 2);
    assert_eq!(s.timers_for("SUP-000001").expect("timers").len(), 4);
    // The earliest is due first; its follower is indexed when it is
    // settled, and is due in the same tick if its time has come.
    let due = s.due_timers(Queue::Escalate, t0(), 100).expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].timer.kind, TimerKind::ReviewMissed);
    s.fire_timer(&due[0], t0(), &|_| CaseChange::default())
        .expect("fire");
    let due = s.due_timers(Queue::Escalate, t0(), 100).expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].timer.kind, TimerKind::Warn);
    s.fire_timer(&due[0], t0(), &|_| CaseChange::default())
        .expect("fire");
    assert!(s
        .due_timers(Queue::Escalate, t0(), 100)
        .expect("due")
        .is_empty());
    let later = s
        .due_timers(Queue::Escalate, t0() + m(10), 100)
        .expect("due");
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].timer.kind, TimerKind::Breach);
    // A second chain under the same first key keeps both sets of followers.
    let extra = timer(t0() + m(20), TimerKind::Warn);
    s.transact(|tx| tx.put_timers(&[breach.clone(), extra.clone()]))
        .expect("again");
    assert_eq!(s.timer_count(), 2);
    let kinds: Vec<TimerKind> = s
        .timers_for("SUP-000001")
        .expect("timers")
        .into_iter()
        .map(|t| t.kind)
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}

#[test]
fn reopening_at_once_after_a_drop_waits_for_sleds_own_lock() {
    // sled's background I/O threads keep its file lock for a moment after
    // the last handle is dropped; a reopen in the same process (a restart,
    // a test) must wait for them rather than fail. Many quick cycles.
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..40u32 {
        let s = Store::open(dir.path()).expect("reopen right after drop");
        let id = format!("{i}@x");
        ingest(&s, msg(Some(&id), id.as_bytes(), ticket(3)));
        s.flush_blocking().expect("flush");
    }
    let s = Store::open(dir.path()).expect("open");
    assert_eq!(s.seq("case:SUP").ok(), Some(40));
}

fn child_of<'a>(mid: &'a str, parent: &str, raw: &'a [u8], d: Decision) -> Msg<'a> {
    let mut m = msg(Some(mid), raw, d);
    m.thread.header_ids = vec![parent.to_string()];
    m
}

#[test]
fn a_parent_that_arrives_after_its_reply_joins_the_replys_case() {
    let (_d, s) = open();
    let c = ingest(&s, child_of("child@x", "parent@x", b"child", ticket(3)));
    assert!(matches!(c, IngestOutcome::NewCase { ref case, .. } if case == "SUP-000001"));
    let p = ingest(&s, msg(Some("parent@x"), b"parent", ticket(3)));
    assert_eq!(
        p,
        IngestOutcome::FollowUp {
            case: "SUP-000001".into(),
            message: 2
        }
    );
    let v = s.case_view("SUP-000001").expect("view");
    assert_eq!(v.messages.len(), 2);
    assert_eq!(v.outbox.len(), 1, "one acknowledgement for the thread");
    assert!(v.events.iter().any(|e| matches!(&e.kind, EventKind::FollowUp { matched_by, .. } if matched_by.starts_with("late parent"))));
    // The parent's id now threads too; the wait is over.
    assert_eq!(
        s.msgid_case("parent@x").ok().flatten().as_deref(),
        Some("SUP-000001")
    );
    assert_eq!(s.dedupe_hit("await:parent@x").ok().flatten(), None);
}

#[test]
fn two_cases_opened_by_replies_to_a_late_parent_are_merged_into_the_earlier() {
    let (_d, s) = open();
    ingest(&s, child_of("a@x", "p@x", b"reply a", ticket(3)));
    ingest(&s, child_of("b@x", "p@x", b"reply b", ticket(3)));
    let p = ingest(&s, msg(Some("p@x"), b"parent", ticket(3)));
    assert!(
        matches!(p, IngestOutcome::FollowUp { ref case, .. } if case == "SUP-000001"),
        "{p:?}"
    );
    let merged = s.case_view("SUP-000002").expect("view");
    assert_eq!(merged.case.status, CaseStatus::Closed);
    assert!(merged
        .case
        .notes
        .iter()
        .any(|n| n == "merged into SUP-000001"));
    // Its acknowledgement had not gone out: it never will.
    assert!(
        merged
            .outbox
            .iter()
            .all(|e| e.state == OutboxState::Suppressed),
        "{:?}",
        merged.outbox
    );
    let into = s.case_view("SUP-000001").expect("view");
    assert_eq!(into.case.messages, vec![1, 2, 3]);
    assert!(into.events.iter().any(|e| matches!(&e.kind, EventKind::Note { text } if text.starts_with("SUP-000002 merged into this case"))));
    // Replies to the merged case's messages and mail land in the survivor.
    assert_eq!(
        s.msgid_case("b@x").ok().flatten().as_deref(),
        Some("SUP-000001")
    );
    assert_eq!(
        s.msgid_case("ack.SUP-000002.tok@casehost.example")
            .ok()
            .flatten()
            .as_deref(),
        Some("SUP-000001")
    );
    assert_eq!(s.outbox_pending().map(|v| v.len()).ok(), Some(1));
}

#[test]
fn a_late_parent_of_another_kind_keeps_its_own_case_and_both_are_noted() {
    let (_d, s) = open();
    ingest(&s, child_of("c@x", "gdpr@x", b"reply", ticket(4)));
    let p = ingest(&s, msg(Some("gdpr@x"), b"access request", privacy()));
    assert!(
        matches!(p, IngestOutcome::NewCase { ref case, .. } if case == "PRV-000001"),
        "{p:?}"
    );
    for (id, other) in [("SUP-000001", "PRV-000001"), ("PRV-000001", "SUP-000001")] {
        let v = s.case_view(id).expect("view");
        assert!(
            v.events.iter().any(|e| matches!(&e.kind, EventKind::Note { text } if text.starts_with(&format!("related to {other}")))),
            "{id}: {:?}",
            v.events
        );
    }
}

/// Replace case `old` by `new` (another id or opening time, as no real
/// change makes), keeping the case index true.
fn rewrite_case(s: &Store, old: &Case, new: &Case) {
    let (all, open) = crate::store::case_index_keys(old);
    s.t.case_index.remove(all).expect("unindex");
    s.t.case_index.remove(open).expect("unindex");
    s.t.cases.remove(old.id.as_bytes()).expect("remove");
    s.t.cases
        .insert(new.id.as_bytes(), to_json(new))
        .expect("write");
    for (k, present) in crate::store::case_index_entries(new) {
        if present {
            s.t.case_index.insert(k, &[]).expect("index");
        }
    }
}

#[test]
fn cases_stream_in_opening_order_with_open_after_and_stop() {
    let (_d, s) = open();
    for (i, d) in [ticket(3), privacy(), ticket(4), ticket(2)]
        .into_iter()
        .enumerate()
    {
        let mid = format!("<m{i}@x>");
        let raw = format!("body {i}");
        ingest(&s, msg(Some(&mid), raw.as_bytes(), d));
    }
    // Opening times: the order of the loop above, whatever the kind.
    let mut all = s.list_cases(&CaseFilter::default()).expect("list");
    assert_eq!(all.len(), 4);
    all.sort_by_key(|c| c.created_at);
    for (i, c) in all.iter_mut().enumerate() {
        let old = c.clone();
        c.created_at = t0() + chrono::Duration::seconds(i as i64);
        if i == 2 {
            c.status = CaseStatus::Closed;
        }
        // Past SUP-999999 a number is wider: order is by opening time,
        // not by the text of the id.
        if i == 3 {
            c.id = "SUP-1000000".into();
        } else if c.id.starts_with("SUP-") {
            c.id = format!("SUP-99999{i}");
        }
        rewrite_case(&s, &old, c);
    }
    let ids = |filter: &CaseFilter, after: Option<&str>, limit: usize| {
        let mut v = Vec::new();
        s.for_each_case(filter, after, |c| {
            v.push(c.id);
            Ok(v.len() < limit)
        })
        .expect("stream");
        v
    };
    let want: Vec<String> = all.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids(&CaseFilter::default(), None, 99), want);
    let open = CaseFilter {
        open: true,
        ..CaseFilter::default()
    };
    assert_eq!(
        ids(&open, None, 99),
        vec![want[0].clone(), want[1].clone(), want[3].clone()]
    );
    assert_eq!(ids(&open, None, 1), vec![want[0].clone()]);
    // A page after the privacy case (the other kind) goes on in order.
    assert_eq!(ids(&CaseFilter::default(), Some(&want[1]), 99), want[2..]);
    assert_eq!(
        ids(&CaseFilter::default(), Some(&want[3]), 99),
        Vec::<String>::new()
    );
    assert!(matches!(
        s.for_each_case(&open, Some("SUP-999999"), |_| Ok(true)),
        Err(StoreError::NoCase(_))
    ));
    let mut n = 0;
    s.for_each_ignored(|_| {
        n += 1;
        Ok(true)
    })
    .expect("ignored");
    assert_eq!(n, 0);
}

#[test]
fn raw_values_are_compressed_and_old_ones_still_read() {
    let (_d, s) = open();
    let raw = b"Subject: printer\r\n\r\nThe printer on floor 3 is out of toner again. ".repeat(12);
    ingest(&s, msg(Some("<z@x>"), &raw, ticket(3)));
    let id =
        s.t.raw
            .iter()
            .keys()
            .next()
            .and_then(|k| k.ok())
            .and_then(|k| from_be(&k));
    let id = id.expect("a raw value");
    let stored = s.t.raw.get(be(id)).ok().flatten().expect("stored");
    assert_eq!(stored.first(), Some(&RAW_ZSTD));
    assert!(
        stored.len() * 4 < raw.len(),
        "{} of {}",
        stored.len(),
        raw.len()
    );
    assert_eq!(s.raw(id).ok().flatten(), Some(raw.clone()));
    // A value from before compression: the bytes themselves.
    s.t.raw.insert(be(99), raw.clone()).expect("old value");
    assert_eq!(s.raw(99).ok().flatten(), Some(raw));
    s.t.raw.insert(be(98), &b""[..]).expect("empty");
    assert_eq!(s.raw(98).ok().flatten(), Some(Vec::new()));
    // A damaged compressed value is an error, not mail.
    let mut bad = vec![RAW_ZSTD];
    bad.extend_from_slice(&ZSTD_MAGIC);
    bad.extend_from_slice(b"garbage");
    s.t.raw.insert(be(97), bad).expect("bad");
    assert!(matches!(s.raw(97), Err(StoreError::Corrupt { .. })));
}

#[test]
fn a_version_2_store_gets_its_case_index_built_on_open() {
    let d = tempfile::tempdir().expect("tempdir");
    let ids: Vec<String> = {
        let s = Store::open(d.path()).expect("open");
        for (i, t) in [ticket(3), ticket(4)].into_iter().enumerate() {
            let mid = format!("<v2-{i}@x>");
            ingest(&s, msg(Some(&mid), format!("body {i}").as_bytes(), t));
        }
        let mut all = s.list_cases(&CaseFilter::default()).expect("list");
        all.sort_by_key(|c| c.created_at);
        // The second is closed, as a version-2 ticketd would have left it.
        let mut closed = all[1].clone();
        closed.status = CaseStatus::Closed;
        s.t.cases
            .insert(closed.id.as_bytes(), to_json(&closed))
            .expect("write");
        // A version-2 store has no index.
        s.t.case_index.clear().expect("clear");
        s.t.meta
            .insert(super::schema::KEY, &be(2))
            .expect("version");
        s.flush_blocking().expect("flush");
        all.into_iter().map(|c| c.id).collect()
    };
    let s = Store::open(d.path()).expect("reopen migrates");
    assert_eq!(s.schema_version().ok(), Some(SCHEMA_VERSION));
    let listed = |open: bool| {
        let mut v = Vec::new();
        let f = CaseFilter {
            open,
            ..CaseFilter::default()
        };
        s.for_each_case(&f, None, |c| {
            v.push(c.id);
            Ok(true)
        })
        .expect("stream");
        v
    };
    assert_eq!(listed(false), ids);
    assert_eq!(listed(true), ids[..1].to_vec());
}
