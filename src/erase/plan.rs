//! What `ticketd erase --subject ADDRESS` removes, decided over the
//! store's records alone (pure; the shell in [`super::apply`] writes it).
//!
//! - Cases the person requested (From or reply address of the first
//!   message) go whole: the case, its events, timers, messages, raw mail,
//!   outbox entries and index keys.
//! - A message on another case that involves them (From, Reply-To, To or
//!   Cc, or their address in its text) is scrubbed: raw mail gone, subject,
//!   Message-ID and content hash cleared, their From removed; the case
//!   loses them as a participant and gets a `data_removed` event.
//! - Events on other cases that mention them are replaced by a
//!   `data_removed` entry with the same sequence number.
//! - Outbox mail to or about them on other cases (and standalone mail such
//!   as the digest): queued mail is cancelled, sent mail loses its body.
//! - Ignored records (and their messages) that involve them are deleted.

use super::{mentions, normalise, Counts, Holdings, MessageFacts};
use crate::store::{
    Case, CaseKind, CaseStatus, Event, EventKind, MessageRecord, OutboxEntry, OutboxState,
};
use serde::Serialize;
use std::collections::BTreeSet;

/// The subject line a scrubbed record carries.
pub const ERASED: &str = "[erased]";

/// Everything one erasure changes. Applying it twice changes nothing more.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ErasePlan {
    /// The address, normalised (never logged, never stored).
    #[serde(skip)]
    pub subject: String,
    /// Their requests: removed whole.
    pub delete_cases: Vec<String>,
    /// Other cases, rewritten without them.
    #[serde(skip)]
    pub case_rewrites: Vec<Case>,
    /// Cases that get a `data_removed` event (appended by the shell with
    /// the case's next sequence number, already counted in `case_rewrites`).
    pub scrubbed_cases: Vec<String>,
    /// Messages removed with their raw mail.
    pub delete_messages: Vec<u64>,
    /// Messages kept (their case stays) but scrubbed; raw mail removed.
    #[serde(skip)]
    pub message_rewrites: Vec<MessageRecord>,
    /// Events replaced on cases that stay: (case, event).
    #[serde(skip)]
    pub event_rewrites: Vec<(String, Event)>,
    /// Events of deleted cases (counted, removed with the case).
    pub events_deleted: usize,
    pub delete_outbox: Vec<u64>,
    /// Outbox entries rewritten (cancelled or body removed).
    #[serde(skip)]
    pub outbox_rewrites: Vec<OutboxEntry>,
    pub outbox_cancelled: usize,
    pub delete_ignored: Vec<u64>,
    /// Message-IDs to drop from the Message-ID index (and to delete from
    /// the IMAP processed folder), with the mailbox each came through.
    #[serde(skip)]
    pub message_ids: Vec<(String, String)>,
    /// Files the file transport wrote for outbox entries that go.
    #[serde(skip)]
    pub files: Vec<String>,
    /// (mailbox, source key) of every message that goes or is scrubbed:
    /// the taken copy in a Maildir's `cur/` goes too.
    #[serde(skip)]
    pub source_keys: Vec<(String, String)>,
}

impl ErasePlan {
    /// Counts of this plan (before index keys, files and IMAP, which the
    /// shell adds).
    pub fn counts(&self) -> Counts {
        Counts {
            cases_deleted: self.delete_cases.len(),
            cases_scrubbed: self.scrubbed_cases.len(),
            messages_deleted: self.delete_messages.len(),
            messages_scrubbed: self.message_rewrites.len(),
            raw_deleted: 0,
            events_deleted: self.events_deleted,
            events_scrubbed: self.event_rewrites.len(),
            outbox_deleted: self.delete_outbox.len(),
            outbox_cancelled: self.outbox_cancelled,
            outbox_scrubbed: self
                .outbox_rewrites
                .len()
                .saturating_sub(self.outbox_cancelled),
            ignored_deleted: self.delete_ignored.len(),
            index_keys_deleted: 0,
            files_deleted: 0,
            maildir_deleted: 0,
            imap_deleted: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.delete_cases.is_empty()
            && self.case_rewrites.is_empty()
            && self.delete_messages.is_empty()
            && self.message_rewrites.is_empty()
            && self.event_rewrites.is_empty()
            && self.delete_outbox.is_empty()
            && self.outbox_rewrites.is_empty()
            && self.delete_ignored.is_empty()
    }
}

fn is_subject(addr: Option<&str>, subject: &str) -> bool {
    addr.is_some_and(|a| normalise(a) == subject)
}

/// Cases the address requested (From of the first message, or the
/// reply address).
pub fn requested_by(c: &Case, subject: &str) -> bool {
    is_subject(c.requester.as_ref().map(|a| a.address.as_str()), subject)
        || is_subject(c.reply_address.as_deref(), subject)
}

/// The person's privacy requests still being worked (not closed, and not
/// completed, denied or forwarded): an erasure waits for them.
pub fn open_privacy_requests(h: &Holdings, address: &str) -> Vec<String> {
    let subject = normalise(address);
    h.cases
        .iter()
        .filter(|c| c.kind == CaseKind::Privacy && requested_by(c, &subject))
        .filter(|c| c.status != CaseStatus::Closed)
        .filter(|c| c.privacy.as_ref().is_none_or(|p| !p.status.is_final()))
        .map(|c| c.id.clone())
        .collect()
}

/// Whether a message involves the subject (`needles`: their address and
/// names).
fn message_involves(m: &MessageFacts, subject: &str, needles: &[String]) -> bool {
    is_subject(m.record.from.as_ref().map(|a| a.address.as_str()), subject)
        || m.addresses.iter().any(|a| normalise(a) == subject)
        || m.texts.iter().any(|t| mentions(t, needles))
        || mentions(&m.record.subject, needles)
}

/// The texts that identify the subject: their address, and the display
/// names they used that look like a person's full name (two words or
/// more, six characters or more: a lone "Admin" or "Office" would match
/// other people's mail).
pub fn needles(h: &Holdings, subject: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    out.insert(subject.to_string());
    let names = h
        .messages
        .iter()
        .filter_map(|m| m.record.from.as_ref())
        .chain(h.cases.iter().filter_map(|c| c.requester.as_ref()))
        .chain(h.ignored.iter().filter_map(|i| i.from.as_ref()))
        .filter(|a| normalise(&a.address) == subject)
        .filter_map(|a| a.name.as_deref());
    for n in names {
        let n = n.trim().trim_matches('"').trim().to_lowercase();
        let words = n
            .split_whitespace()
            .filter(|w| w.chars().count() >= 2)
            .count();
        if words >= 2 && n.chars().count() >= 6 && !n.contains('@') {
            out.insert(n);
        }
    }
    out.into_iter().collect()
}

/// Plan the erasure of `address` over `h` (pure).
pub fn plan_erasure(h: &Holdings, address: &str) -> ErasePlan {
    let subject = normalise(address);
    let needles = needles(h, &subject);
    let mut plan = ErasePlan {
        subject: subject.clone(),
        ..ErasePlan::default()
    };

    // Their requests go whole.
    let deleted: BTreeSet<String> = h
        .cases
        .iter()
        .filter(|c| requested_by(c, &subject))
        .map(|c| c.id.clone())
        .collect();
    plan.delete_cases = deleted.iter().cloned().collect();
    plan.events_deleted = deleted
        .iter()
        .map(|id| h.events.get(id).map_or(0, Vec::len))
        .sum();

    // Outbox text needles: the subject lines of their requests too (the
    // digest lists them).
    let mut mail_needles = needles.clone();
    for c in h.cases.iter().filter(|c| deleted.contains(&c.id)) {
        let s = c.subject.trim().to_lowercase();
        if s.chars().count() >= 10 {
            mail_needles.push(s);
        }
    }

    // Messages.
    let mut scrubbed_msgs: BTreeSet<u64> = BTreeSet::new();
    for m in &h.messages {
        let r = &m.record;
        let on_deleted = r.disposition.case().is_some_and(|c| deleted.contains(c));
        let ignored_involved = matches!(r.disposition, crate::store::Disposition::Ignored { .. })
            && message_involves(m, &subject, &needles);
        if on_deleted || ignored_involved {
            plan.source_keys
                .push((r.source.clone(), r.source_key.clone()));
            plan.delete_messages.push(r.id);
            if let Some(id) = &r.message_id {
                plan.message_ids.push((r.source.clone(), id.clone()));
            }
        } else if message_involves(m, &subject, &needles) {
            if r.disposition.case().is_none() {
                continue;
            }
            let mut n = r.clone();
            if is_subject(n.from.as_ref().map(|a| a.address.as_str()), &subject) {
                n.from = None;
            }
            n.subject = ERASED.to_string();
            if let Some(id) = n.message_id.take() {
                plan.message_ids.push((r.source.clone(), id));
            }
            n.content_hash = String::new();
            n.raw_stored = false;
            n.warnings = vec!["personal data removed by erasure".to_string()];
            if &n != r {
                plan.source_keys
                    .push((r.source.clone(), r.source_key.clone()));
                scrubbed_msgs.insert(r.id);
                plan.message_rewrites.push(n);
            }
        }
    }
    let deleted_msgs: BTreeSet<u64> = plan.delete_messages.iter().copied().collect();
    let gone_ids: BTreeSet<String> = plan.message_ids.iter().map(|(_, i)| i.clone()).collect();

    // Ignored records.
    for i in &h.ignored {
        if deleted_msgs.contains(&i.message)
            || is_subject(i.from.as_ref().map(|a| a.address.as_str()), &subject)
        {
            plan.delete_ignored.push(i.id);
            if !deleted_msgs.contains(&i.message) {
                plan.delete_messages.push(i.message);
                if let Some(m) = h.messages.iter().find(|m| m.record.id == i.message) {
                    let r = &m.record;
                    plan.source_keys
                        .push((r.source.clone(), r.source_key.clone()));
                    if let Some(id) = &r.message_id {
                        plan.message_ids.push((r.source.clone(), id.clone()));
                    }
                }
            }
        }
    }

    // Other cases: participants, subject, notes, events.
    for c in h.cases.iter().filter(|c| !deleted.contains(&c.id)) {
        let mut n = c.clone();
        n.participants.retain(|p| normalise(p) != subject);
        if mentions(&n.subject, &needles) {
            n.subject = ERASED.to_string();
        }
        n.notes.retain(|t| !mentions(t, &needles));
        if n.last_requester_message_id
            .as_ref()
            .is_some_and(|i| gone_ids.contains(i))
        {
            n.last_requester_message_id = None;
        }
        let touched_msgs = c.messages.iter().any(|m| scrubbed_msgs.contains(m));
        let mut touched_events = false;
        for e in h.events.get(&c.id).into_iter().flatten() {
            let text = serde_json::to_string(e).unwrap_or_default();
            if mentions(&text, &needles) {
                touched_events = true;
                plan.event_rewrites.push((
                    c.id.clone(),
                    Event {
                        seq: e.seq,
                        at: e.at,
                        actor: if mentions(&e.actor, &needles) {
                            "erased".into()
                        } else {
                            e.actor.clone()
                        },
                        kind: EventKind::DataRemoved {
                            why: "erasure: entry removed".into(),
                            messages: 0,
                            outbox: 0,
                        },
                    },
                ));
            }
        }
        if &n != c || touched_msgs || touched_events {
            plan.scrubbed_cases.push(c.id.clone());
            plan.case_rewrites.push(n);
        }
    }

    // Outbox.
    for o in &h.outbox {
        if o.case.as_ref().is_some_and(|c| deleted.contains(c)) {
            plan.delete_outbox.push(o.id);
            if let Some(f) = &o.delivered_as {
                plan.files.push(f.clone());
            }
            plan.message_ids.push((String::new(), o.message_id.clone()));
            continue;
        }
        let to_them = o.recipients.iter().any(|r| normalise(r) == subject);
        // Subject lines count only in mail of no case (the digest): an
        // acknowledgement to someone else may share a subject line.
        let texts = if o.case.is_none() {
            &mail_needles
        } else {
            &needles
        };
        let about = mentions(&o.mail, texts)
            || mentions(&o.subject, texts)
            || o.in_reply_to.as_ref().is_some_and(|i| gone_ids.contains(i));
        if !(to_them || about) || (o.mail.is_empty() && o.subject == ERASED && !to_them) {
            continue;
        }
        let mut n = o.clone();
        n.recipients.retain(|r| normalise(r) != subject);
        n.mail = String::new();
        n.subject = ERASED.to_string();
        if n.in_reply_to.as_ref().is_some_and(|i| gone_ids.contains(i)) {
            n.in_reply_to = None;
        }
        if matches!(o.state, OutboxState::Queued | OutboxState::Sending) {
            n.state = OutboxState::Failed;
            n.last_error = Some("cancelled: recipient's data erased".into());
            plan.outbox_cancelled += 1;
        }
        if let Some(f) = n.delivered_as.take() {
            plan.files.push(f);
        }
        if &n != o {
            plan.outbox_rewrites.push(n);
        }
    }
    plan.delete_messages.sort_unstable();
    plan.delete_messages.dedup();
    plan.delete_ignored.sort_unstable();
    plan
}

#[cfg(test)]
pub(crate) mod tests;
