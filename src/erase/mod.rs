//! Erasure and retention of personal data (GDPR Art. 17, CCPA delete; the
//! vendor's retention horizon) for ticketd's own records.
//!
//! Pure core / I/O shell:
//! - [`plan`]: what to remove for one data subject (`ticketd erase`), as a
//!   pure function over the store's records ([`Holdings`]); the refusal
//!   while a privacy request of theirs is open.
//! - [`report`]: everything ticketd holds about a person
//!   (`ticketd subject-report`), pure.
//! - [`retention`]: what the `retention` job removes at time `now`, pure.
//! - [`apply`]: the sled edge: read the [`Holdings`], write a plan, keep
//!   the tombstones and the retention records.
//! - [`compact`]: sled keeps old values in its log; an erasure ends by
//!   rewriting the store into a fresh directory and swapping it in.
//! - [`imap`]: deleting the matching mail from the folder ticketd moves
//!   processed mail into (the one place ticketd deletes on a server).
//!
//! A tombstone keeps only a keyed hash of the lowercased address (BLAKE3
//! under a key derived from the thread key), when, who asked, which case
//! numbers went and counts: enough for an audit to show the erasure
//! happened, nothing to find the person by.

pub mod apply;
pub mod compact;
pub mod imap;
pub mod plan;
pub mod report;
pub mod retention;

use crate::store::{Case, Event, IgnoredRecord, MessageRecord, OutboxEntry};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use plan::{open_privacy_requests, plan_erasure, ErasePlan};
pub use report::{subject_report, SubjectReport};
pub use retention::{plan_retention, RetentionPlan};

/// What the planners read: the store's records, with facts about each
/// message drawn from its raw mail by the shell.
#[derive(Debug, Clone, Default)]
pub struct Holdings {
    pub cases: Vec<Case>,
    /// Each case's event log, by case id.
    pub events: BTreeMap<String, Vec<Event>>,
    pub messages: Vec<MessageFacts>,
    pub outbox: Vec<OutboxEntry>,
    pub ignored: Vec<IgnoredRecord>,
    pub tombstones: Vec<Tombstone>,
}

/// A stored message and what its raw mail says about who it involves.
#[derive(Debug, Clone)]
pub struct MessageFacts {
    pub record: MessageRecord,
    /// From, Reply-To, To and Cc addresses (lower case).
    pub addresses: Vec<String>,
    /// Lower-cased texts a subject may be mentioned in, matched by
    /// [`mentions`]: the shell keeps only the subject's identifying texts
    /// found in the raw bytes or the decoded body.
    pub texts: Vec<String>,
}

/// Counts of what an erasure removed (or would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub cases_deleted: usize,
    pub cases_scrubbed: usize,
    pub messages_deleted: usize,
    pub messages_scrubbed: usize,
    pub raw_deleted: usize,
    pub events_deleted: usize,
    pub events_scrubbed: usize,
    pub outbox_deleted: usize,
    pub outbox_cancelled: usize,
    pub outbox_scrubbed: usize,
    pub ignored_deleted: usize,
    pub index_keys_deleted: usize,
    pub files_deleted: usize,
    /// Taken copies deleted from Maildir `cur/` folders.
    #[serde(default)]
    pub maildir_deleted: usize,
    pub imap_deleted: usize,
}

/// The record an erasure leaves behind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tombstone {
    pub id: u64,
    /// [`subject_hash`] of the erased address.
    pub subject_hash: String,
    pub at: DateTime<Utc>,
    /// Who ran the erasure (`cli:<user>`).
    pub actor: String,
    /// Case numbers removed whole (their requests).
    pub cases: Vec<String>,
    pub counts: Counts,
    /// Run with `--force` over an open privacy request.
    #[serde(default)]
    pub forced: bool,
}

/// The keyed hash a tombstone keeps of an address (lower-cased, trimmed).
pub fn subject_hash(keys: &crate::workflow::ThreadKeys, address: &str) -> String {
    keys.keyed("ticketd erasure subject v1", &normalise(address))
}

/// The form addresses are compared in.
pub fn normalise(address: &str) -> String {
    address.trim().to_lowercase()
}

/// Whether `text` (any case) contains one of `needles` (lower case, not
/// empty).
pub fn mentions(text: &str, needles: &[String]) -> bool {
    if needles.is_empty() {
        return false;
    }
    let lower = text.to_lowercase();
    needles
        .iter()
        .any(|n| !n.is_empty() && lower.contains(n.as_str()))
}
