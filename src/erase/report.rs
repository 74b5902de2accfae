//! `ticketd subject-report ADDRESS`: everything ticketd holds about one
//! person, from the store's records alone (pure). It is ticketd's own part
//! of an access answer (GDPR Art. 15, CCPA right to know).

use super::{mentions, normalise, plan, Holdings, Tombstone};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SubjectReport {
    pub cases: Vec<CaseLine>,
    pub messages: Vec<MessageLine>,
    pub outbox: Vec<OutboxLine>,
    pub ignored: Vec<IgnoredLine>,
    /// Erasures of this address (matched by its keyed hash).
    pub tombstones: Vec<Tombstone>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CaseLine {
    pub id: String,
    pub kind: String,
    pub status: String,
    /// `requester` (their request) or `participant` (on someone else's).
    pub role: String,
    pub subject: String,
    pub received_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageLine {
    pub id: u64,
    pub case: Option<String>,
    pub received_at: DateTime<Utc>,
    pub subject: String,
    /// `inbound` (mail we received).
    pub direction: String,
    /// Whether the raw mail is still kept.
    pub raw_stored: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OutboxLine {
    pub id: u64,
    pub case: Option<String>,
    pub purpose: String,
    pub state: String,
    pub subject: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// `outbound`.
    pub direction: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IgnoredLine {
    pub id: u64,
    pub received_at: DateTime<Utc>,
    pub category: String,
    pub subject: String,
    pub promoted_to: Option<String>,
}

/// What `h` holds about `address`; `hash` is its [`super::subject_hash`].
pub fn subject_report(h: &Holdings, address: &str, hash: &str) -> SubjectReport {
    let subject = normalise(address);
    let needles = plan::needles(h, &subject);
    let is = |a: Option<&str>| a.is_some_and(|a| normalise(a) == subject);
    let involved = |m: &super::MessageFacts| {
        is(m.record.from.as_ref().map(|a| a.address.as_str()))
            || m.addresses.iter().any(|a| normalise(a) == subject)
            || m.texts.iter().any(|t| mentions(t, &needles))
    };
    let messages: Vec<MessageLine> = h
        .messages
        .iter()
        .filter(|m| involved(m))
        .map(|m| MessageLine {
            id: m.record.id,
            case: m.record.disposition.case().map(str::to_string),
            received_at: m.record.received_at,
            subject: m.record.subject.clone(),
            direction: "inbound".into(),
            raw_stored: m.record.raw_stored,
        })
        .collect();
    let mut cases = Vec::new();
    for c in &h.cases {
        let role = if plan::requested_by(c, &subject) {
            "requester"
        } else if c.participants.iter().any(|p| normalise(p) == subject)
            || messages
                .iter()
                .any(|m| m.case.as_deref() == Some(c.id.as_str()))
        {
            "participant"
        } else {
            continue;
        };
        cases.push(CaseLine {
            id: c.id.clone(),
            kind: c.kind.as_str().into(),
            status: c.status.as_str().into(),
            role: role.into(),
            subject: c.subject.clone(),
            received_at: c.received_at,
            updated_at: c.updated_at,
            closed_at: c.clocks.closed_at,
        });
    }
    let outbox = h
        .outbox
        .iter()
        .filter(|o| o.recipients.iter().any(|r| normalise(r) == subject))
        .map(|o| OutboxLine {
            id: o.id,
            case: o.case.clone(),
            purpose: serde_json::to_value(o.purpose)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            state: o.state.as_str().into(),
            subject: o.subject.clone(),
            created_at: o.created_at,
            sent_at: o.sent_at,
            direction: "outbound".into(),
        })
        .collect();
    let ignored = h
        .ignored
        .iter()
        .filter(|i| is(i.from.as_ref().map(|a| a.address.as_str())))
        .map(|i| IgnoredLine {
            id: i.id,
            received_at: i.received_at,
            category: i.category.clone(),
            subject: i.subject.clone(),
            promoted_to: i.promoted_to.clone(),
        })
        .collect();
    let tombstones = h
        .tombstones
        .iter()
        .filter(|t| t.subject_hash == hash)
        .cloned()
        .collect();
    SubjectReport {
        cases,
        messages,
        outbox,
        ignored,
        tombstones,
    }
}
