//! The erasure planner with data.

use super::*;
use crate::erase::{Holdings, MessageFacts};
use crate::mail::Addr;
use crate::store::{
    Case, CaseClocks, CaseKind, CaseStatus, Disposition, Event, EventKind, IgnoredRecord,
    MessageRecord, OutboxEntry, OutboxState, PrivacyState, PrivacyStatus, Purpose,
};
use chrono::{DateTime, TimeZone, Utc};

pub(crate) fn t(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, day, 10, 0, 0)
        .single()
        .expect("date")
}

pub(crate) fn case(id: &str, from: &str, subject: &str, messages: Vec<u64>) -> Case {
    Case {
        id: id.into(),
        kind: CaseKind::from_case_id(id).expect("kind"),
        status: CaseStatus::Open,
        level: None,
        rights: vec![],
        jurisdiction: None,
        subject: subject.into(),
        requester: Some(Addr {
            name: Some(if from.starts_with("alice") {
                "Alice Zebra".into()
            } else {
                "Bob Other".into()
            }),
            address: from.into(),
        }),
        reply_address: Some(from.into()),
        mailbox: "support".into(),
        received_at: t(1),
        created_at: t(1),
        updated_at: t(1),
        messages,
        outbox: vec![],
        next_event: 1,
        notes: vec![],
        clocks: CaseClocks::default(),
        agency: None,
        doubt: None,
        participants: vec![from.into()],
        assignee: None,
        links: vec![],
        last_requester_message_id: None,
        requester_wrote_at: None,
        language: None,
        privacy: None,
    }
}

pub(crate) fn msg(id: u64, from: &str, case: &str, text: &str) -> MessageFacts {
    MessageFacts {
        record: MessageRecord {
            id,
            source: "support".into(),
            source_key: format!("1:{id}"),
            received_at: t(1),
            size: 100,
            raw_stored: true,
            message_id: Some(format!("m{id}@example.org")),
            content_hash: format!("h{id}"),
            subject: "Help".into(),
            from: Some(Addr {
                name: None,
                address: from.into(),
            }),
            disposition: if case.is_empty() {
                Disposition::Ignored { ignored: id }
            } else {
                Disposition::NewCase { case: case.into() }
            },
            warnings: vec![],
        },
        addresses: vec![from.into()],
        texts: vec![text.to_lowercase()],
    }
}

pub(crate) fn outbox(id: u64, case: Option<&str>, to: &str, state: OutboxState) -> OutboxEntry {
    OutboxEntry {
        id,
        case: case.map(str::to_string),
        purpose: Purpose::Ack,
        from: "support@casehost.example".into(),
        recipients: vec![to.into()],
        message_id: format!("o{id}@casehost.example"),
        in_reply_to: None,
        subject: "Re: Help".into(),
        state,
        attempts: 0,
        created_at: t(1),
        next_attempt_at: t(1),
        last_error: None,
        sent_at: (state == OutboxState::Sent).then(|| t(1)),
        delivered_as: None,
        mail: format!("To: {to}\r\n\r\nbody"),
        notice: None,
    }
}

const A: &str = "alice@example.org";
const B: &str = "bob@example.org";

fn holdings() -> Holdings {
    let mut h = Holdings::default();
    h.cases
        .push(case("SUP-000001", A, "zebra-quartz printer", vec![1]));
    let mut bob = case("SUP-000002", B, "Bob's problem", vec![2, 3]);
    bob.participants.push(A.into());
    h.cases.push(bob);
    h.messages
        .push(msg(1, A, "SUP-000001", "zebra-quartz-7731"));
    h.messages.push(msg(2, B, "SUP-000002", "my problem"));
    let mut cc = msg(3, B, "SUP-000002", "cc alice");
    cc.addresses.push(A.into());
    cc.record.disposition = Disposition::FollowUp {
        case: "SUP-000002".into(),
    };
    h.messages.push(cc);
    h.messages.push(msg(4, A, "", "auto reply"));
    h.ignored.push(IgnoredRecord {
        id: 1,
        message: 4,
        source: "support".into(),
        received_at: t(1),
        from: Some(Addr {
            name: None,
            address: A.into(),
        }),
        subject: "Out of office".into(),
        category: "auto-reply".into(),
        reasons: vec![],
        promoted_to: None,
        case: None,
    });
    h.events.insert(
        "SUP-000002".into(),
        vec![
            Event {
                seq: 0,
                at: t(1),
                actor: "ticketd".into(),
                kind: EventKind::Received {
                    message: 2,
                    source: "support".into(),
                },
            },
            Event {
                seq: 1,
                at: t(2),
                actor: "ticketd".into(),
                kind: EventKind::ParticipantAdded {
                    address: A.into(),
                    message: 3,
                },
            },
        ],
    );
    h.events.insert(
        "SUP-000001".into(),
        vec![Event {
            seq: 0,
            at: t(1),
            actor: "ticketd".into(),
            kind: EventKind::Reviewed,
        }],
    );
    h.outbox
        .push(outbox(1, Some("SUP-000001"), A, OutboxState::Sent));
    h.outbox
        .push(outbox(2, Some("SUP-000002"), B, OutboxState::Sent));
    // Staff relayed something to Alice on Bob's case, still queued.
    h.outbox
        .push(outbox(3, Some("SUP-000002"), A, OutboxState::Queued));
    h.outbox
        .push(outbox(4, Some("SUP-000002"), A, OutboxState::Sent));
    h
}

#[test]
fn their_request_goes_whole_and_others_are_scrubbed() {
    let h = holdings();
    let p = plan_erasure(&h, "  Alice@Example.ORG ");
    assert_eq!(p.delete_cases, vec!["SUP-000001"]);
    assert_eq!(p.delete_messages, vec![1, 4]);
    assert_eq!(p.delete_ignored, vec![1]);
    assert_eq!(p.events_deleted, 1);
    assert_eq!(p.delete_outbox, vec![1]);
    // Bob's case stays, without Alice.
    assert_eq!(p.scrubbed_cases, vec!["SUP-000002"]);
    let bob = &p.case_rewrites[0];
    assert_eq!(bob.participants, vec![B.to_string()]);
    assert_eq!(bob.requester.as_ref().map(|a| a.address.as_str()), Some(B));
    // Message 3 (Alice on Cc) scrubbed, message 2 untouched.
    assert_eq!(p.message_rewrites.len(), 1);
    let m3 = &p.message_rewrites[0];
    assert_eq!(
        (m3.id, m3.raw_stored, m3.message_id.clone()),
        (3, false, None)
    );
    assert_eq!(m3.from.as_ref().map(|a| a.address.as_str()), Some(B));
    // The event naming her replaced, same sequence number.
    assert_eq!(p.event_rewrites.len(), 1);
    assert_eq!(p.event_rewrites[0].1.seq, 1);
    assert!(matches!(
        p.event_rewrites[0].1.kind,
        EventKind::DataRemoved { .. }
    ));
    // Queued mail to her cancelled, sent mail to her emptied, Bob's kept.
    assert_eq!(p.outbox_cancelled, 1);
    let ids: Vec<u64> = p.outbox_rewrites.iter().map(|o| o.id).collect();
    assert_eq!(ids, vec![3, 4]);
    for o in &p.outbox_rewrites {
        assert!(o.mail.is_empty() && o.recipients.is_empty());
    }
    assert_eq!(p.outbox_rewrites[0].state, OutboxState::Failed);
    assert_eq!(p.outbox_rewrites[1].state, OutboxState::Sent);
    // Nothing of the plan that stays names her.
    let kept = serde_json::to_string(&(&p.case_rewrites, &p.message_rewrites, &p.outbox_rewrites))
        .expect("json");
    assert!(!kept.to_lowercase().contains(A) && !kept.contains("Alice Zebra"));
    // Message-IDs of everything that went, for the index and IMAP.
    assert!(p
        .message_ids
        .contains(&("support".into(), "m1@example.org".into())));
    assert!(p
        .message_ids
        .contains(&("support".into(), "m3@example.org".into())));
}

#[test]
fn a_mention_by_name_or_in_the_text_counts() {
    let mut h = holdings();
    h.messages
        .push(msg(5, B, "SUP-000002", "as Alice Zebra said"));
    h.cases[1].messages.push(5);
    let p = plan_erasure(&h, A);
    assert!(p.message_rewrites.iter().any(|m| m.id == 5));
    let q = plan_erasure(&h, "carol@example.org");
    assert!(q.is_empty(), "{q:?}");
}

#[test]
fn applying_the_plan_leaves_nothing_to_plan() {
    let h = holdings();
    let p = plan_erasure(&h, A);
    let mut after = h.clone();
    after.cases.retain(|c| !p.delete_cases.contains(&c.id));
    for c in &mut after.cases {
        if let Some(n) = p.case_rewrites.iter().find(|n| n.id == c.id) {
            *c = n.clone();
        }
    }
    after
        .messages
        .retain(|m| !p.delete_messages.contains(&m.record.id));
    for m in &mut after.messages {
        if let Some(n) = p.message_rewrites.iter().find(|n| n.id == m.record.id) {
            m.record = n.clone();
            m.addresses.clear();
            m.texts.clear();
        }
    }
    after.ignored.retain(|i| !p.delete_ignored.contains(&i.id));
    after.outbox.retain(|o| !p.delete_outbox.contains(&o.id));
    for o in &mut after.outbox {
        if let Some(n) = p.outbox_rewrites.iter().find(|n| n.id == o.id) {
            *o = n.clone();
        }
    }
    for (case, e) in &p.event_rewrites {
        if let Some(v) = after.events.get_mut(case) {
            for x in v.iter_mut().filter(|x| x.seq == e.seq) {
                *x = e.clone();
            }
        }
    }
    after.events.remove("SUP-000001");
    let again = plan_erasure(&after, A);
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn an_open_privacy_request_blocks_until_it_is_final() {
    let mut h = holdings();
    let mut prv = case("PRV-000001", A, "Delete my data", vec![]);
    prv.privacy = Some(PrivacyState::new(false));
    h.cases.push(prv);
    assert_eq!(
        open_privacy_requests(&h, "ALICE@example.org"),
        vec!["PRV-000001"]
    );
    assert!(open_privacy_requests(&h, B).is_empty());
    for (status, open) in [
        (PrivacyStatus::Verified, true),
        (PrivacyStatus::InProgress, true),
        (PrivacyStatus::Completed, false),
        (PrivacyStatus::Denied, false),
        (PrivacyStatus::Forwarded, false),
    ] {
        if let Some(p) = h.cases[2].privacy.as_mut() {
            p.status = status;
        }
        assert_eq!(!open_privacy_requests(&h, A).is_empty(), open, "{status}");
    }
    if let Some(p) = h.cases[2].privacy.as_mut() {
        p.status = PrivacyStatus::InProgress;
    }
    h.cases[2].status = CaseStatus::Closed;
    assert!(open_privacy_requests(&h, A).is_empty());
}

#[test]
fn subject_report_lists_roles_and_mail() {
    let h = holdings();
    let r = crate::erase::subject_report(&h, A, "hash");
    let roles: Vec<(&str, &str)> = r
        .cases
        .iter()
        .map(|c| (c.id.as_str(), c.role.as_str()))
        .collect();
    assert_eq!(
        roles,
        vec![("SUP-000001", "requester"), ("SUP-000002", "participant")]
    );
    let ids: Vec<u64> = r.messages.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![1, 3, 4]);
    assert_eq!(r.outbox.len(), 3);
    assert_eq!(r.ignored.len(), 1);
    assert!(r.tombstones.is_empty());
}

#[test]
fn only_full_names_and_digest_subject_lines_identify_someone() {
    let mut h = holdings();
    h.messages.push(msg(9, A, "SUP-000001", ""));
    if let Some(a) = h.messages[4].record.from.as_mut() {
        a.name = Some("Admin".into());
    }
    let n = needles(&h, A);
    assert!(n.contains(&"alice zebra".to_string()), "{n:?}");
    assert!(!n.contains(&"admin".to_string()), "{n:?}");
    // Someone else's mail with her subject line stays; the digest does not.
    let mut other = outbox(7, Some("SUP-000002"), B, OutboxState::Sent);
    other.mail = "Re: zebra-quartz printer".into();
    let mut digest = outbox(8, None, "lead@casehost.example", OutboxState::Sent);
    digest.mail = "SUP-000001 zebra-quartz printer".into();
    h.outbox.push(other);
    h.outbox.push(digest);
    let p = plan_erasure(&h, A);
    let ids: Vec<u64> = p.outbox_rewrites.iter().map(|o| o.id).collect();
    assert!(ids.contains(&8) && !ids.contains(&7), "{ids:?}");
}
