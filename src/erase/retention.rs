//! What the scheduled `retention` job removes at time `now` (pure; the
//! shell in [`super::apply`] writes it, the scheduler passes `now`).
//!
//! - `closed_case_days`: a case closed more than N days ago loses the raw
//!   mail of its messages and the bodies of its finished outbox mail; the
//!   case skeleton (numbers, dates, status, clocks) and its events stay.
//! - `ignored_days`: a set-aside message (never promoted) older than M days
//!   is deleted with its raw mail.
//! - `sent_outbox_days`: outbox mail that is done (sent, failed for good or
//!   suppressed) more than K days ago loses its body.
//!
//! A limit of 0 keeps that data for ever.

use super::Holdings;
use crate::config::Retention;
use crate::store::{Disposition, MessageRecord, OutboxEntry, OutboxState};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The warning a message keeps once retention removed its raw mail.
pub const RAW_REMOVED: &str = "raw mail removed by retention";

/// Counts of one retention run: no personal data, fit for logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionCounts {
    /// Closed cases whose raw mail or bodies were removed.
    pub cases: usize,
    pub raw_deleted: usize,
    pub ignored_deleted: usize,
    pub outbox_bodies_deleted: usize,
    #[serde(default)]
    pub imap_deleted: usize,
}

impl RetentionCounts {
    pub fn is_empty(&self) -> bool {
        self.cases == 0
            && self.raw_deleted == 0
            && self.ignored_deleted == 0
            && self.outbox_bodies_deleted == 0
            && self.imap_deleted == 0
    }
}

/// What one run removes.
#[derive(Debug, Clone, Default)]
pub struct RetentionPlan {
    /// Closed cases touched, with (messages, outbox bodies) removed from
    /// each (each gets a `data_removed` event).
    pub cases: BTreeMap<String, (usize, usize)>,
    /// Message records rewritten (raw gone); their raw entries are deleted.
    pub message_rewrites: Vec<MessageRecord>,
    /// Ignored records deleted, with their message id.
    pub delete_ignored: Vec<(u64, u64)>,
    pub outbox_rewrites: Vec<OutboxEntry>,
    /// (case, mailbox, Message-ID) of mail whose copy on the IMAP server
    /// goes too when `processed_imap` is on (no case: a set-aside message).
    pub message_ids: Vec<(Option<String>, String, String)>,
}

impl RetentionPlan {
    pub fn counts(&self) -> RetentionCounts {
        RetentionCounts {
            cases: self.cases.len(),
            raw_deleted: self.message_rewrites.len() + self.delete_ignored.len(),
            ignored_deleted: self.delete_ignored.len(),
            outbox_bodies_deleted: self.outbox_rewrites.len(),
            imap_deleted: 0,
        }
    }
}

fn older(t: DateTime<Utc>, now: DateTime<Utc>, days: u32) -> bool {
    days > 0 && t < now - Duration::days(i64::from(days))
}

fn finished(o: &OutboxEntry) -> bool {
    matches!(
        o.state,
        OutboxState::Sent | OutboxState::Failed | OutboxState::Suppressed
    )
}

/// Plan the retention run at `now` under `r` (pure).
pub fn plan_retention(h: &Holdings, r: &Retention, now: DateTime<Utc>) -> RetentionPlan {
    let mut plan = RetentionPlan::default();
    let expired: BTreeMap<&str, ()> = h
        .cases
        .iter()
        .filter(|c| c.status == crate::store::CaseStatus::Closed)
        .filter(|c| {
            older(
                c.clocks.closed_at.unwrap_or(c.updated_at),
                now,
                r.closed_case_days,
            )
        })
        .map(|c| (c.id.as_str(), ()))
        .collect();
    for m in &h.messages {
        let rec = &m.record;
        let Some(case) = rec.disposition.case() else {
            continue;
        };
        if !expired.contains_key(case) || rec.warnings.iter().any(|w| w == RAW_REMOVED) {
            continue;
        }
        let mut n = rec.clone();
        n.raw_stored = false;
        n.warnings.push(RAW_REMOVED.to_string());
        if let Some(id) = &rec.message_id {
            plan.message_ids
                .push((Some(case.to_string()), rec.source.clone(), id.clone()));
        }
        plan.cases.entry(case.to_string()).or_default().0 += 1;
        plan.message_rewrites.push(n);
    }
    for o in &h.outbox {
        if !finished(o) || o.mail.is_empty() {
            continue;
        }
        let case_expired = o.case.as_deref().is_some_and(|c| expired.contains_key(c));
        let done_at = o.sent_at.unwrap_or(o.next_attempt_at.max(o.created_at));
        if case_expired || older(done_at, now, r.sent_outbox_days) {
            let mut n = o.clone();
            n.mail = String::new();
            if let Some(c) = o.case.as_deref().filter(|c| expired.contains_key(c)) {
                plan.cases.entry(c.to_string()).or_default().1 += 1;
            }
            plan.outbox_rewrites.push(n);
        }
    }
    for i in &h.ignored {
        if i.promoted_to.is_none() && older(i.received_at, now, r.ignored_days) {
            plan.delete_ignored.push((i.id, i.message));
            if let Some(m) = h.messages.iter().find(|m| {
                m.record.id == i.message
                    && matches!(m.record.disposition, Disposition::Ignored { .. })
            }) {
                if let Some(id) = &m.record.message_id {
                    plan.message_ids
                        .push((None, m.record.source.clone(), id.clone()));
                }
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erase::plan::tests::{case, msg, outbox, t};
    use crate::store::{CaseStatus, IgnoredRecord};

    fn limits() -> Retention {
        Retention {
            closed_case_days: 10,
            ignored_days: 5,
            sent_outbox_days: 20,
            processed_imap: false,
        }
    }

    fn holdings() -> Holdings {
        let mut h = Holdings::default();
        let mut closed = case("SUP-000001", "a@example.org", "x", vec![1]);
        closed.status = CaseStatus::Closed;
        closed.clocks.closed_at = Some(t(2));
        h.cases.push(closed);
        h.cases
            .push(case("SUP-000002", "b@example.org", "y", vec![2]));
        h.messages.push(msg(1, "a@example.org", "SUP-000001", ""));
        h.messages.push(msg(2, "b@example.org", "SUP-000002", ""));
        h.messages.push(msg(3, "c@example.org", "", ""));
        h.ignored.push(IgnoredRecord {
            id: 1,
            message: 3,
            source: "support".into(),
            received_at: t(1),
            from: None,
            subject: "auto".into(),
            category: "auto-reply".into(),
            reasons: vec![],
            promoted_to: None,
            case: None,
        });
        h.outbox.push(outbox(
            1,
            Some("SUP-000001"),
            "a@example.org",
            OutboxState::Sent,
        ));
        h.outbox.push(outbox(
            2,
            Some("SUP-000002"),
            "b@example.org",
            OutboxState::Sent,
        ));
        h.outbox.push(outbox(
            3,
            Some("SUP-000002"),
            "b@example.org",
            OutboxState::Queued,
        ));
        h
    }

    #[test]
    fn each_limit_takes_exactly_what_is_older() {
        let h = holdings();
        // Day 5: nothing (ignored since day 1 is 4 days old).
        let p = plan_retention(&h, &limits(), t(5));
        assert!(p.counts().is_empty(), "{:?}", p.counts());
        // Day 7: the ignored message only.
        let p = plan_retention(&h, &limits(), t(7));
        assert_eq!(p.delete_ignored, vec![(1, 3)]);
        assert!(p.message_rewrites.is_empty() && p.outbox_rewrites.is_empty());
        assert_eq!(
            p.message_ids,
            vec![(None, "support".into(), "m3@example.org".into())]
        );
        // Day 13: the case closed on day 2, with its sent mail.
        let p = plan_retention(&h, &limits(), t(13));
        let ids: Vec<u64> = p.message_rewrites.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![1]);
        assert!(!p.message_rewrites[0].raw_stored);
        let out: Vec<u64> = p.outbox_rewrites.iter().map(|o| o.id).collect();
        assert_eq!(out, vec![1]);
        assert_eq!(p.cases.get("SUP-000001"), Some(&(1, 1)));
        // Day 22: sent mail of the open case too, never queued mail.
        let p = plan_retention(&h, &limits(), t(22));
        let out: Vec<u64> = p.outbox_rewrites.iter().map(|o| o.id).collect();
        assert_eq!(out, vec![1, 2]);
        assert!(!p.cases.contains_key("SUP-000002"));
    }

    #[test]
    fn zero_keeps_for_ever_and_a_second_run_finds_nothing() {
        let h = holdings();
        let keep = Retention {
            closed_case_days: 0,
            ignored_days: 0,
            sent_outbox_days: 0,
            processed_imap: false,
        };
        assert!(plan_retention(&h, &keep, t(28)).counts().is_empty());
        let p = plan_retention(&h, &limits(), t(28));
        let mut after = h.clone();
        for m in &mut after.messages {
            if let Some(n) = p.message_rewrites.iter().find(|n| n.id == m.record.id) {
                m.record = n.clone();
            }
        }
        for o in &mut after.outbox {
            if let Some(n) = p.outbox_rewrites.iter().find(|n| n.id == o.id) {
                *o = n.clone();
            }
        }
        after.ignored.clear();
        assert!(plan_retention(&after, &limits(), t(28)).counts().is_empty());
    }
}
