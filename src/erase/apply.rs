//! The sled edge of erasure and retention: read the records the planners
//! need ([`holdings`]), write a plan, keep tombstones and retention
//! records. Erasure runs with the daemon stopped (the store lock is held);
//! its writes are idempotent, so an erasure interrupted half-way is
//! finished by running it again. The tombstone is written last.

use super::plan::ErasePlan;
use super::retention::{RetentionCounts, RetentionPlan};
use super::{Counts, Holdings, MessageFacts, Tombstone};
use crate::store::{
    be, event_key, from_be, from_json, to_json, Event, EventKind, MessageRecord, Result, Store,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// Tombstones of erasures, u64 BE id → [`Tombstone`] JSON.
pub const TOMBSTONES: &str = "erasures";
/// Retention runs, u64 BE ms of the run → [`RetentionRecord`] JSON.
pub const RETENTION_RUNS: &str = "retention_runs";

/// What one retention run removed (counts only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionRecord {
    pub at: DateTime<Utc>,
    pub counts: RetentionCounts,
}

/// Everything the planners read. With `subject` (erasure, subject
/// report), each message's raw mail is read for its addresses (From,
/// Reply-To, To, Cc) and for which of the subject's identifying texts
/// ([`super::plan::needles`]) it contains; only those matches are kept, so
/// memory stays in proportion to the records, not the mail. Without
/// (retention), only the records are read, and no events.
pub fn holdings(store: &Store, subject: Option<&str>) -> Result<Holdings> {
    let mut h = Holdings {
        cases: store.list_cases(&Default::default())?,
        outbox: store.outbox_all()?,
        ignored: store.list_ignored()?,
        tombstones: tombstones(store)?,
        ..Holdings::default()
    };
    for kv in store.t.messages.iter() {
        let (_, v) = kv?;
        let record: MessageRecord = from_json("messages", &v)?;
        h.messages.push(MessageFacts {
            record,
            addresses: Vec::new(),
            texts: Vec::new(),
        });
    }
    let Some(subject) = subject else {
        return Ok(h);
    };
    for c in &h.cases {
        h.events.insert(c.id.clone(), store.events(&c.id)?);
    }
    let needles = super::plan::needles(&h, &super::normalise(subject));
    for m in &mut h.messages {
        if let Some(raw) = store.raw(m.record.id)? {
            facts_from_raw(m, &raw, &needles);
        }
    }
    Ok(h)
}

/// Addresses of one raw message, and which `needles` its bytes or its
/// decoded text contain.
fn facts_from_raw(f: &mut MessageFacts, raw: &[u8], needles: &[String]) {
    let mut hay = String::from_utf8_lossy(raw).to_lowercase();
    if let Ok(p) = crate::mail::parse(raw, raw.len()) {
        f.addresses.extend(p.from.iter().map(|a| a.address.clone()));
        for a in p.reply_to.iter().chain(&p.to).chain(&p.cc) {
            f.addresses.push(a.address.clone());
        }
        hay.push('\n');
        hay.push_str(&p.text.to_lowercase());
    }
    f.texts = needles
        .iter()
        .filter(|n| !n.is_empty() && hay.contains(n.as_str()))
        .cloned()
        .collect();
}

pub fn tombstones(store: &Store) -> Result<Vec<Tombstone>> {
    let tree = store.db().open_tree(TOMBSTONES)?;
    tree.iter()
        .map(|kv| {
            let (_, v) = kv?;
            from_json("erasures", &v)
        })
        .collect()
}

pub fn retention_runs(store: &Store) -> Result<Vec<RetentionRecord>> {
    let tree = store.db().open_tree(RETENTION_RUNS)?;
    tree.iter()
        .map(|kv| {
            let (_, v) = kv?;
            from_json("retention_runs", &v)
        })
        .collect()
}

/// The case id in a timer key (queue byte, 8 bytes of time, case, 0, kind).
fn timer_case(key: &[u8]) -> Option<&[u8]> {
    let rest = key.get(9..)?;
    let end = rest.iter().position(|b| *b == 0)?;
    Some(&rest[..end])
}

/// The index keys an erasure removes: dedupe keys of gone messages,
/// Message-ID index entries of gone cases and ids, the rate record.
fn index_keys(store: &Store, plan: &ErasePlan) -> Result<Vec<(&'static str, sled::IVec)>> {
    let t = &store.t;
    let deleted_cases: BTreeSet<&str> = plan.delete_cases.iter().map(String::as_str).collect();
    let gone_msgs = gone_messages(plan);
    let gone_ids: BTreeSet<&str> = plan.message_ids.iter().map(|(_, i)| i.as_str()).collect();
    let mut out = Vec::new();
    for kv in t.dedupe.iter() {
        let (k, v) = kv?;
        if from_be(&v).is_some_and(|id| gone_msgs.contains(&id)) {
            out.push(("dedupe", k));
        }
    }
    for kv in t.msgids.iter() {
        let (k, v) = kv?;
        let case = String::from_utf8_lossy(&v);
        let id = String::from_utf8_lossy(&k);
        if deleted_cases.contains(case.as_ref()) || gone_ids.contains(id.as_ref()) {
            out.push(("msgids", k));
        }
    }
    if t.rate.contains_key(plan.subject.as_bytes())? {
        out.push(("rate", sled::IVec::from(plan.subject.as_bytes())));
    }
    Ok(out)
}

/// Every message whose raw mail goes (deleted or scrubbed).
fn gone_messages(plan: &ErasePlan) -> BTreeSet<u64> {
    let mut gone: BTreeSet<u64> = plan.delete_messages.iter().copied().collect();
    gone.extend(plan.message_rewrites.iter().map(|m| m.id));
    gone
}

/// Files of the file transport named by the plan that exist in
/// `outbound_dir`.
fn plan_files<'a>(plan: &'a ErasePlan, outbound_dir: Option<&Path>) -> Vec<&'a Path> {
    let Some(dir) = outbound_dir else {
        return Vec::new();
    };
    plan.files
        .iter()
        .map(Path::new)
        .filter(|p| p.starts_with(dir) && p.is_file())
        .collect()
}

/// The counts `plan` comes to in `store` (what `--dry-run` reports and
/// [`apply_erasure`] then does), IMAP and Maildir apart.
pub fn erasure_counts(
    store: &Store,
    plan: &ErasePlan,
    outbound_dir: Option<&Path>,
) -> Result<Counts> {
    let mut counts = plan.counts();
    for id in gone_messages(plan) {
        if store.t.raw.contains_key(be(id))? {
            counts.raw_deleted += 1;
        }
    }
    counts.index_keys_deleted = index_keys(store, plan)?.len();
    counts.files_deleted = plan_files(plan, outbound_dir).len();
    Ok(counts)
}

/// Write `plan` (an erasure of `plan.subject`); returns its counts (see
/// [`erasure_counts`]). `outbound_dir`: where the file transport writes
/// (files there named by gone entries are deleted).
pub fn apply_erasure(
    store: &Store,
    plan: &ErasePlan,
    now: DateTime<Utc>,
    actor: &str,
    outbound_dir: Option<&Path>,
) -> Result<Counts> {
    let t = &store.t;
    let counts = erasure_counts(store, plan, outbound_dir)?;
    let deleted_cases: BTreeSet<&str> = plan.delete_cases.iter().map(String::as_str).collect();

    // Index keys first (they are found through the records that go).
    for (tree, k) in index_keys(store, plan)? {
        match tree {
            "dedupe" => t.dedupe.remove(k)?,
            "msgids" => t.msgids.remove(k)?,
            _ => t.rate.remove(k)?,
        };
    }

    // Messages: raw entries of every message that goes or is scrubbed.
    for id in gone_messages(plan) {
        t.raw.remove(be(id))?;
    }
    for id in &plan.delete_messages {
        t.messages.remove(be(*id))?;
    }
    for m in &plan.message_rewrites {
        t.messages.insert(be(m.id), to_json(m))?;
    }
    for id in &plan.delete_ignored {
        t.ignored.remove(be(*id))?;
    }

    // Cases they requested, whole.
    for id in &plan.delete_cases {
        if let Some(c) = store.case(id)? {
            let (all, open) = crate::store::case_index_keys(&c);
            t.case_index.remove(all)?;
            t.case_index.remove(open)?;
        }
        t.cases.remove(id.as_bytes())?;
        let mut prefix = id.as_bytes().to_vec();
        prefix.push(b'/');
        for kv in t.events.scan_prefix(&prefix) {
            let (k, _) = kv?;
            t.events.remove(k)?;
        }
    }
    for kv in t.timers.iter() {
        let (k, _) = kv?;
        if timer_case(&k)
            .is_some_and(|c| deleted_cases.contains(String::from_utf8_lossy(c).as_ref()))
        {
            t.timers.remove(k)?;
        }
    }

    // Other cases: rewritten events, the case, one event saying so.
    for (case, e) in &plan.event_rewrites {
        t.events.insert(event_key(case, e.seq), to_json(e))?;
    }
    for c in &plan.case_rewrites {
        let mut c = c.clone();
        let messages = plan
            .message_rewrites
            .iter()
            .filter(|m| m.disposition.case() == Some(c.id.as_str()))
            .count();
        let outbox = plan
            .outbox_rewrites
            .iter()
            .filter(|o| o.case.as_deref() == Some(c.id.as_str()))
            .count();
        let e = Event {
            seq: c.next_event,
            at: now,
            actor: actor.to_string(),
            kind: EventKind::DataRemoved {
                why: "erasure of a data subject".into(),
                messages,
                outbox,
            },
        };
        t.events.insert(event_key(&c.id, e.seq), to_json(&e))?;
        c.next_event += 1;
        c.updated_at = now;
        t.cases.insert(c.id.as_bytes(), to_json(&c))?;
    }

    // Outbox.
    for id in &plan.delete_outbox {
        t.outbox.remove(be(*id))?;
        t.outbox_pending.remove(be(*id))?;
    }
    for o in &plan.outbox_rewrites {
        t.outbox.insert(be(o.id), to_json(o))?;
        if !matches!(
            o.state,
            crate::store::OutboxState::Queued | crate::store::OutboxState::Sending
        ) {
            t.outbox_pending.remove(be(o.id))?;
        }
    }
    for f in plan_files(plan, outbound_dir) {
        std::fs::remove_file(f).map_err(|e| crate::store::StoreError::Dir {
            path: f.to_path_buf(),
            source: e,
        })?;
    }
    store.flush_blocking()?;
    Ok(counts)
}

/// Record a tombstone (its id is assigned here); flushed.
pub fn put_tombstone(store: &Store, mut t: Tombstone) -> Result<Tombstone> {
    let tree = store.db().open_tree(TOMBSTONES)?;
    let next = tree
        .last()?
        .and_then(|(k, _)| from_be(&k))
        .map_or(1, |n| n + 1);
    t.id = next;
    tree.insert(be(next), to_json(&t))?;
    store.flush_blocking()?;
    Ok(t)
}

/// Write a retention plan at `now` (the daemon may run: each closed case
/// is checked and given its `data_removed` event in one transaction, and a
/// case reopened since the plan was made is left alone, as is a set-aside
/// message promoted since). Returns the counts of what was written and
/// the plan's (case, mailbox, Message-ID) entries that went.
pub fn apply_retention(
    store: &Store,
    plan: &RetentionPlan,
    now: DateTime<Utc>,
) -> Result<(RetentionCounts, Vec<(String, String)>)> {
    use sled::transaction::{ConflictableTransactionError as Cte, Transactional};
    let t = &store.t;
    let mut counts = RetentionCounts::default();
    let mut kept: BTreeSet<&str> = BTreeSet::new();
    for (case, (messages, outbox)) in &plan.cases {
        let r = store.update_case(case, now, "ticketd", &|c| {
            if c.status != crate::store::CaseStatus::Closed {
                return Err("reopened since the retention plan".into());
            }
            Ok((
                c.clone(),
                crate::store::CaseChange {
                    events: vec![EventKind::DataRemoved {
                        why: "retention: closed case".into(),
                        messages: *messages,
                        outbox: *outbox,
                    }],
                    ..Default::default()
                },
            ))
        });
        match r {
            Ok(_) => {
                kept.insert(case.as_str());
                counts.cases += 1;
            }
            Err(crate::store::StoreError::Invalid(_) | crate::store::StoreError::NoCase(_)) => {}
            Err(e) => return Err(e),
        }
    }
    // The rest writes the trees directly: hold off a backup meanwhile.
    let _w = store.write_gate();
    // Only the closed cases of the plan can have been reopened meanwhile.
    let case_ok =
        |c: Option<&str>| c.is_none_or(|c| kept.contains(c) || !plan.cases.contains_key(c));
    for m in &plan.message_rewrites {
        if case_ok(m.disposition.case()) {
            if t.raw.remove(be(m.id))?.is_some() {
                counts.raw_deleted += 1;
            }
            t.messages.insert(be(m.id), to_json(m))?;
        }
    }
    let mut gone: BTreeSet<u64> = BTreeSet::new();
    for (ignored, message) in &plan.delete_ignored {
        let removed = (&t.ignored, &t.messages, &t.raw)
            .transaction(|(ti, tm, tr)| {
                let Some(v) = ti.get(be(*ignored))? else {
                    return Ok(false);
                };
                let rec: crate::store::IgnoredRecord =
                    from_json("ignored", &v).map_err(Cte::Abort)?;
                if rec.promoted_to.is_some() {
                    return Ok(false);
                }
                ti.remove(&be(*ignored))?;
                tm.remove(&be(*message))?;
                tr.remove(&be(*message))?;
                Ok(true)
            })
            .map_err(crate::store::tx_err)?;
        if removed {
            gone.insert(*message);
            counts.ignored_deleted += 1;
            counts.raw_deleted += 1;
        }
    }
    if !gone.is_empty() {
        for kv in t.dedupe.iter() {
            let (k, v) = kv?;
            if from_be(&v).is_some_and(|id| gone.contains(&id)) {
                t.dedupe.remove(k)?;
            }
        }
    }
    for o in &plan.outbox_rewrites {
        if case_ok(o.case.as_deref()) {
            t.outbox.insert(be(o.id), to_json(o))?;
            counts.outbox_bodies_deleted += 1;
        }
    }
    let gone_ids: Vec<(String, String)> = plan
        .message_ids
        .iter()
        .filter(|(case, _, _)| case_ok(case.as_deref()))
        .map(|(_, mailbox, id)| (mailbox.clone(), id.clone()))
        .collect();
    store.flush_blocking()?;
    Ok((counts, gone_ids))
}

/// Record one retention run (counts only).
pub fn record_retention_run(
    store: &Store,
    now: DateTime<Utc>,
    counts: &RetentionCounts,
) -> Result<()> {
    let runs = store.db().open_tree(RETENTION_RUNS)?;
    let ms = u64::try_from(now.timestamp_millis().max(0)).unwrap_or(0);
    let _w = store.write_gate();
    runs.insert(
        be(ms),
        to_json(&RetentionRecord {
            at: now,
            counts: counts.clone(),
        }),
    )?;
    Ok(())
}

/// The `retention` job at `now` (the scheduler passes its clock): plan,
/// write, delete the processed IMAP copies when configured, record the
/// run, log counts only. Returns the counts.
pub fn run_retention(
    store: &Store,
    config: &crate::config::Config,
    now: DateTime<Utc>,
) -> Result<RetentionCounts> {
    let h = holdings(store, None)?;
    let plan = super::plan_retention(&h, &config.retention, now);
    drop(h);
    let (mut counts, gone_ids) = apply_retention(store, &plan, now)?;
    if config.retention.processed_imap && !gone_ids.is_empty() {
        let out = super::imap::delete_processed_blocking(config, &gone_ids, &[]);
        counts.imap_deleted = out.deleted;
        for e in &out.errors {
            tracing::warn!(error = %e, "retention: IMAP processed folder not cleaned");
        }
    }
    record_retention_run(store, now, &counts)?;
    tracing::info!(
        cases = counts.cases,
        raw_deleted = counts.raw_deleted,
        ignored_deleted = counts.ignored_deleted,
        outbox_bodies_deleted = counts.outbox_bodies_deleted,
        imap_deleted = counts.imap_deleted,
        "retention ran"
    );
    Ok(counts)
}

/// Delete the taken copies (`cur/`) of `source_keys` ((mailbox, key)) from
/// the Maildir mailboxes of `config`; with `dry_run`, count them. A key
/// from another kind of source matches nothing.
pub fn delete_maildir_copies(
    config: &crate::config::Config,
    source_keys: &[(String, String)],
    dry_run: bool,
) -> usize {
    let mut n = 0;
    for mb in &config.mailboxes {
        if mb.source != crate::config::SourceKind::Maildir {
            continue;
        }
        let cur = mb.path.join("cur");
        for (_, key) in source_keys.iter().filter(|(m, _)| m == &mb.name) {
            let base = key.split(':').next().unwrap_or(key);
            if base.is_empty() || base.contains('/') || base.starts_with('.') {
                continue;
            }
            let Ok(rd) = std::fs::read_dir(&cur) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                let matches = name.as_ref() == base
                    || name.strip_prefix(base).is_some_and(|r| r.starts_with(':'));
                if matches && (dry_run || std::fs::remove_file(e.path()).is_ok()) {
                    n += 1;
                }
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erase::plan::tests::{case, msg, t};
    use crate::store::CaseStatus;

    #[test]
    fn retention_leaves_a_case_reopened_since_the_plan_alone() {
        let d = tempfile::tempdir().expect("tempdir");
        let store = Store::open(d.path()).expect("open");
        let mut c = case("SUP-000001", "a@example.org", "x", vec![1]);
        c.status = CaseStatus::Closed;
        c.clocks.closed_at = Some(t(1));
        store
            .t
            .cases
            .insert(c.id.as_bytes(), to_json(&c))
            .expect("case");
        let m = msg(1, "a@example.org", "SUP-000001", "");
        store
            .t
            .messages
            .insert(be(1), to_json(&m.record))
            .expect("message");
        store.t.raw.insert(be(1), b"raw".to_vec()).expect("raw");
        let limits = crate::config::Retention {
            closed_case_days: 5,
            ..Default::default()
        };
        let h = holdings(&store, None).expect("holdings");
        let plan = crate::erase::plan_retention(&h, &limits, t(20));
        assert_eq!(plan.message_rewrites.len(), 1);
        // Reopened by a reply before the plan is written.
        c.status = CaseStatus::Open;
        store
            .t
            .cases
            .insert(c.id.as_bytes(), to_json(&c))
            .expect("case");
        let (counts, ids) = apply_retention(&store, &plan, t(20)).expect("apply");
        assert!(counts.is_empty(), "{counts:?}");
        assert!(ids.is_empty());
        assert!(store.raw(1).expect("raw").is_some());
        // Closed again: the next run takes it.
        c.status = CaseStatus::Closed;
        store
            .t
            .cases
            .insert(c.id.as_bytes(), to_json(&c))
            .expect("case");
        let (counts, ids) = apply_retention(&store, &plan, t(20)).expect("apply");
        assert_eq!((counts.cases, counts.raw_deleted, ids.len()), (1, 1, 1));
        assert!(store.raw(1).expect("raw").is_none());
        let events = store.events("SUP-000001").expect("events");
        assert!(matches!(
            events.last().map(|e| &e.kind),
            Some(EventKind::DataRemoved { messages: 1, .. })
        ));
    }
}
