//! The one transaction that takes a message in: dedupe check, message record
//! (and raw bytes), case (new or follow-up) or ignored record, events,
//! outbox entry, Message-ID index, source cursor — all or nothing.
//!
//! The closure may be re-run by sled on conflict, so it has no side effects;
//! a new case's plan (clocks, acknowledgement, notices, timers) comes from a
//! pure callback, because the case number is only known there. The callback
//! may hand back a plan made ahead of the transaction for the very case
//! [`planned_case`] builds (see `Pipeline::plan_ahead`).

use super::*;
use crate::mail::Addr;
use crate::triage::{Decision, Kind};
use sled::transaction::{ConflictableTransactionError as Cte, TransactionalTree};
use sled::Transactional;

/// Builds an operator alert, for a case if there is one (pure).
pub type AlertRenderer<'a> =
    dyn Fn(Option<&Case>) -> std::result::Result<NewMail, String> + Sync + 'a;

/// How a message may join an existing case (see
/// [`crate::workflow::thread`], the one threading rule).
#[derive(Debug, Clone, Default)]
pub struct ThreadHint {
    /// In-Reply-To ids, then References newest first.
    pub header_ids: Vec<String>,
    /// The same ids as the rule reads them (ours verified or not, others).
    pub refs: Vec<crate::workflow::HeaderRef>,
    /// `[SUP-000123]` in the subject.
    pub subject_tag: Option<String>,
    /// From, lower case.
    pub sender: Option<String>,
    /// The sender is staff and its authentication did not fail.
    pub staff: bool,
    /// The agency whose site administrator the sender is.
    pub site_admin_of: Option<String>,
    /// From, To and Cc without our own addresses, lower case.
    pub parties: Vec<String>,
    /// A reply to a case closed less than this long ago is linked to it.
    pub link_closed_within: chrono::Duration,
}

/// The store inside a transaction, as the threading rule reads it.
struct TxLookup<'a, 't> {
    tx: &'a Tx<'t>,
    site_admin_of: Option<&'a str>,
}

impl crate::workflow::ThreadLookup for TxLookup<'_, '_> {
    type Error = Cte<StoreError>;
    fn case_of_message_id(&self, id: &str) -> TxResult<Option<String>> {
        Ok(self
            .tx
            .msgids
            .get(id.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
    fn case(&self, id: &str) -> TxResult<Option<Case>> {
        self.tx.get_case(id)
    }
    fn site_admin(&self, case: &Case, _address: &str) -> bool {
        self.site_admin_of.is_some() && case.agency.as_deref() == self.site_admin_of
    }
}

/// Everything the transaction needs, computed before it starts.
pub struct IngestInput<'a> {
    pub source: &'a str,
    pub source_key: &'a str,
    pub received_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub actor: &'a str,
    pub raw: &'a [u8],
    pub max_stored_bytes: u64,
    /// Set when only the header was fetched (the message was over the
    /// per-message limit): the size of the whole original.
    pub original_size: Option<u64>,
    /// Builds the operator alert for an oversize message (pure).
    pub render_alert: Option<&'a AlertRenderer<'a>>,
    pub message_id: Option<&'a str>,
    pub content_hash: &'a str,
    pub subject: &'a str,
    pub from: Option<&'a Addr>,
    pub warnings: &'a [String],
    pub thread: ThreadHint,
    /// Triage's decision; `None` when the bytes are not mail.
    pub decision: Option<&'a Decision>,
    /// Decision as a new case, used when a reply names no case it may join.
    pub fallback: Option<&'a Decision>,
    /// Why the bytes could not be parsed, when they could not.
    pub unparseable: Option<&'a str>,
    /// Where an acknowledgement would go, or why none may be sent.
    pub reply_address: std::result::Result<String, String>,
    /// Clocks, acknowledgement, notices and timers for a new case (pure).
    pub plan: &'a NewCaseFn<'a>,
    /// What the message does to a case it joins (pure).
    pub follow_up: &'a FollowUpFn<'a>,
    /// How long a message naming an unseen parent waits for it.
    pub late_parent_window: chrono::Duration,
    pub cursor: Option<(&'a str, &'a [u8])>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IngestOutcome {
    Duplicate {
        message: u64,
    },
    NewCase {
        case: String,
        message: u64,
        outbox: Option<u64>,
    },
    FollowUp {
        case: String,
        message: u64,
    },
    Ignored {
        ignored: u64,
        message: u64,
    },
}

impl IngestOutcome {
    /// The decision's name, for metrics (`new_case`, `follow_up`, ...).
    pub fn decision(&self) -> &'static str {
        match self {
            IngestOutcome::Duplicate { .. } => "duplicate",
            IngestOutcome::NewCase { .. } => "new_case",
            IngestOutcome::FollowUp { .. } => "follow_up",
            IngestOutcome::Ignored { .. } => "ignored",
        }
    }
}

pub(super) struct Tx<'t> {
    meta: &'t TransactionalTree,
    cases: &'t TransactionalTree,
    events: &'t TransactionalTree,
    messages: &'t TransactionalTree,
    raw: &'t TransactionalTree,
    outbox: &'t TransactionalTree,
    pending: &'t TransactionalTree,
    dedupe: &'t TransactionalTree,
    msgids: &'t TransactionalTree,
    ignored: &'t TransactionalTree,
    cursors: &'t TransactionalTree,
    pub(super) timers: &'t TransactionalTree,
    case_index: &'t TransactionalTree,
}

pub(super) type TxResult<T> = std::result::Result<T, Cte<StoreError>>;

impl Tx<'_> {
    pub(super) fn next_seq(&self, name: &str) -> TxResult<u64> {
        let key = seq_key(name);
        let cur = self
            .meta
            .get(key.as_bytes())?
            .and_then(|v| from_be(&v))
            .unwrap_or(0);
        let next = cur + 1;
        self.meta.insert(key.as_bytes(), &be(next))?;
        Ok(next)
    }

    pub(super) fn get_case(&self, id: &str) -> TxResult<Option<Case>> {
        match self.cases.get(id.as_bytes())? {
            Some(v) => Ok(Some(from_json("cases", &v).map_err(Cte::Abort)?)),
            None => Ok(None),
        }
    }

    /// Write a case and keep its index entries ([`super::case_index_keys`])
    /// true: always in creation order, in the open index while not done.
    pub(super) fn put_case(&self, c: &Case) -> TxResult<()> {
        self.cases.insert(c.id.as_bytes(), to_json(c))?;
        for (k, present) in super::case_index_entries(c) {
            if present {
                self.case_index.insert(k, &[])?;
            } else {
                self.case_index.remove(k)?;
            }
        }
        Ok(())
    }

    pub(super) fn event(
        &self,
        case: &mut Case,
        at: DateTime<Utc>,
        actor: &str,
        kind: EventKind,
    ) -> TxResult<()> {
        let ev = Event {
            seq: case.next_event,
            at,
            actor: actor.to_string(),
            kind,
        };
        case.next_event += 1;
        self.events
            .insert(event_key(&case.id, ev.seq), to_json(&ev))?;
        Ok(())
    }

    pub(super) fn queue(
        &self,
        case: &mut Case,
        mail: NewMail,
        now: DateTime<Utc>,
    ) -> TxResult<u64> {
        self.queue_kind(case, mail, now, None)
    }

    /// Queue mail for `case`; `notice` names the notification kind, checked
    /// against the case again just before sending.
    pub(super) fn queue_kind(
        &self,
        case: &mut Case,
        mail: NewMail,
        now: DateTime<Utc>,
        notice: Option<&str>,
    ) -> TxResult<u64> {
        let id = self.queue_entry(Some(&case.id), mail, now, notice)?;
        case.outbox.push(id);
        Ok(id)
    }

    /// Put a mail in the outbox (optionally for a case); index its
    /// Message-ID so replies to it thread into the case.
    pub(super) fn queue_mail(
        &self,
        case: Option<&str>,
        mail: NewMail,
        now: DateTime<Utc>,
    ) -> TxResult<u64> {
        self.queue_entry(case, mail, now, None)
    }

    fn queue_entry(
        &self,
        case: Option<&str>,
        mail: NewMail,
        now: DateTime<Utc>,
        notice: Option<&str>,
    ) -> TxResult<u64> {
        let id = self.next_seq("outbox")?;
        let entry = OutboxEntry {
            id,
            case: case.map(str::to_string),
            purpose: mail.purpose,
            from: mail.from,
            recipients: mail.recipients,
            message_id: mail.message_id.clone(),
            in_reply_to: mail.in_reply_to,
            subject: mail.subject,
            state: OutboxState::Queued,
            attempts: 0,
            created_at: now,
            next_attempt_at: now,
            last_error: None,
            sent_at: None,
            delivered_as: None,
            mail: mail.mail,
            notice: notice.map(str::to_string),
        };
        self.outbox.insert(&be(id), to_json(&entry))?;
        self.pending.insert(&be(id), &[])?;
        if let Some(case) = case {
            self.msgids
                .insert(mail.message_id.as_bytes(), case.as_bytes())?;
        }
        Ok(id)
    }

    /// Create a case from `decision`, with its received/triaged events and,
    /// when allowed, its acknowledgement. Returns (case id, outbox id).
    #[allow(clippy::too_many_arguments)]
    fn create_case(
        &self,
        decision: &Decision,
        message: u64,
        input_subject: &str,
        from: Option<&Addr>,
        reply_address: &std::result::Result<String, String>,
        source: &str,
        received_at: DateTime<Utc>,
        now: DateTime<Utc>,
        actor: &str,
        notes: Vec<String>,
        plan: &NewCaseFn<'_>,
        shape: Option<(&crate::workflow::Thread, &[String], Option<&str>)>,
    ) -> TxResult<(String, Option<u64>)> {
        let kind = case_kind(decision);
        let n = self.next_seq(&format!("case:{}", kind.prefix()))?;
        let mut case = planned_case(
            &case_id(kind, n),
            decision,
            message,
            input_subject,
            from,
            reply_address,
            source,
            received_at,
            now,
            notes,
        );
        if let Some((t, parties, _)) = shape {
            crate::workflow::thread::shape_new_case(&mut case, t, parties);
        }
        let id = case.id.clone();
        // The Received event is seq 1, as `planned_case` counts it.
        self.events.insert(
            event_key(&id, 1),
            to_json(&Event {
                seq: 1,
                at: now,
                actor: actor.to_string(),
                kind: EventKind::Received {
                    message,
                    source: source.to_string(),
                },
            }),
        )?;
        // Planning renders mail from the message's text: should it ever
        // panic, this message fails alone (and is quarantined after its
        // attempts), instead of the thread and its whole batch.
        let planned =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| plan(&case, decision)))
                .map_err(|p| {
                    Cte::Abort(StoreError::Invalid(format!(
                        "planning the new case failed: {}",
                        crate::failpoint::panic_text(p.as_ref())
                    )))
                })?;
        let NewCasePlan {
            clocks,
            agency,
            privacy,
            status,
            ack,
            change,
        } = planned;
        case.clocks = clocks.clone();
        case.agency = agency;
        if privacy.is_some() {
            case.privacy = privacy;
        }
        if let Some(s) = status {
            case.status = s;
        }
        if let Some((_, _, mid)) = shape {
            case.last_requester_message_id = mid.map(str::to_string);
        }
        self.event(
            &mut case,
            now,
            "ticketd",
            EventKind::Triaged {
                decision: decision.clone(),
                clocks: Some(clocks),
            },
        )?;
        let mut outbox = None;
        let skipped = |reason: String| EventKind::AckSkipped { reason };
        match (decision.ack, reply_address, ack) {
            (false, _, _) => {
                self.event(
                    &mut case,
                    now,
                    "ticketd",
                    skipped("triage says no acknowledgement".into()),
                )?;
            }
            (true, Err(reason), _) => {
                self.event(&mut case, now, "ticketd", skipped(reason.clone()))?;
            }
            (true, Ok(_), None) => {
                self.event(
                    &mut case,
                    now,
                    "ticketd",
                    skipped("no acknowledgement for this message".into()),
                )?;
            }
            (true, Ok(_), Some(Err(e))) => {
                self.event(
                    &mut case,
                    now,
                    "ticketd",
                    skipped(format!("acknowledgement could not be rendered: {e}")),
                )?;
            }
            (true, Ok(_), Some(Ok(mail))) => {
                let oid = self.queue(&mut case, mail, now)?;
                self.event(
                    &mut case,
                    now,
                    "ticketd",
                    EventKind::AckQueued { outbox: oid },
                )?;
                outbox = Some(oid);
            }
        }
        self.apply_change(&mut case, change, now, "ticketd")?;
        self.put_case(&case)?;
        Ok((id, outbox))
    }
}

/// A message that kept failing, as it is recorded before it is moved to
/// quarantine.
pub struct FailedInput<'a> {
    pub source: &'a str,
    pub source_key: &'a str,
    pub received_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub raw: &'a [u8],
    pub max_stored_bytes: u64,
    pub message_id: Option<&'a str>,
    pub content_hash: &'a str,
    pub subject: &'a str,
    pub from: Option<&'a Addr>,
    /// Why it failed, and how often.
    pub reason: &'a str,
    pub attempts: u32,
    /// The operator alert, when one could be built.
    pub alert: Option<NewMail>,
}

impl Store {
    /// Record a message that kept failing as an error record (category
    /// `error`, in the ignored list, promotable), with its raw bytes and an
    /// operator alert — one transaction. Returns the ignored id.
    pub fn record_failed(&self, i: &FailedInput<'_>) -> Result<u64> {
        let size = i.raw.len() as u64;
        let stored = (size <= i.max_stored_bytes).then(|| super::encode_raw(i.raw));
        self.transact(|tx| {
            let msg_id = tx.next_seq("message")?;
            let raw_stored = stored.is_some();
            if let Some(stored) = &stored {
                tx.raw.insert(&be(msg_id), stored.as_slice())?;
            }
            let id = tx.next_seq("ignored")?;
            let reasons = vec![
                format!(
                    "could not be processed ({} attempts): {}",
                    i.attempts, i.reason
                ),
                "moved to the mailbox's quarantine; promote it once the cause is fixed".to_string(),
            ];
            let rec = IgnoredRecord {
                id,
                message: msg_id,
                source: i.source.to_string(),
                received_at: i.received_at,
                from: i.from.cloned(),
                subject: i.subject.to_string(),
                category: "error".to_string(),
                reasons: reasons.clone(),
                promoted_to: None,
                case: None,
            };
            tx.ignored.insert(&be(id), to_json(&rec))?;
            let record = MessageRecord {
                id: msg_id,
                source: i.source.to_string(),
                source_key: i.source_key.to_string(),
                received_at: i.received_at,
                size,
                raw_stored,
                message_id: i.message_id.map(str::to_string),
                content_hash: i.content_hash.to_string(),
                subject: i.subject.to_string(),
                from: i.from.cloned(),
                disposition: Disposition::Ignored { ignored: id },
                warnings: reasons,
            };
            tx.messages.insert(&be(msg_id), to_json(&record))?;
            // A re-read of this very item (the move to quarantine failed)
            // is recognised; the same message delivered anew is tried anew.
            tx.dedupe
                .insert(source_key(i.source, i.source_key).as_bytes(), &be(msg_id))?;
            if let Some(mail) = &i.alert {
                tx.queue_mail(None, mail.clone(), i.now)?;
            }
            Ok(id)
        })
    }

    /// Run `f` as one transaction over every tree.
    pub(super) fn transact<T>(&self, f: impl Fn(&Tx<'_>) -> TxResult<T>) -> Result<T> {
        let _w = self.write_gate();
        let t = &self.t;
        let res = (
            &t.meta,
            &t.cases,
            &t.events,
            &t.messages,
            &t.raw,
            &t.outbox,
            &t.outbox_pending,
            &t.dedupe,
            &t.msgids,
            &t.ignored,
            &t.cursors,
            &t.timers,
            &t.case_index,
        )
            .transaction(
                |(
                    meta,
                    cases,
                    events,
                    messages,
                    raw,
                    outbox,
                    pending,
                    dedupe,
                    msgids,
                    ignored,
                    cursors,
                    timers,
                    case_index,
                )| {
                    f(&Tx {
                        meta,
                        cases,
                        events,
                        messages,
                        raw,
                        outbox,
                        pending,
                        dedupe,
                        msgids,
                        ignored,
                        cursors,
                        timers,
                        case_index,
                    })
                },
            );
        res.map_err(tx_err)
    }

    /// Take many messages in one transaction (group commit). Either all are
    /// stored or none; a duplicate within the group is recognised.
    pub fn ingest_many(&self, inputs: &[IngestInput<'_>]) -> Result<Vec<IngestOutcome>> {
        // Compressed before the transaction: outside sled's lock.
        let stored: Vec<Option<Vec<u8>>> = inputs.iter().map(stored_raw).collect();
        self.transact(|tx| {
            inputs
                .iter()
                .zip(&stored)
                .map(|(i, s)| ingest_tx(tx, i, s.as_deref()))
                .collect()
        })
    }

    /// Take one message in (see the module docs). Not durable until
    /// [`Store::flush`] returns.
    pub fn ingest(&self, input: &IngestInput<'_>) -> Result<IngestOutcome> {
        let stored = stored_raw(input);
        self.transact(|tx| ingest_tx(tx, input, stored.as_deref()))
    }

    /// Write outbox entries back after state changes, keeping the pending
    /// index in step, with each entry's event (if any) on its case — one
    /// transaction.
    pub fn update_outbox_many(&self, updates: &[OutboxUpdate]) -> Result<()> {
        self.transact(|tx| {
            for (entry, event) in updates {
                tx.outbox.insert(&be(entry.id), to_json(entry))?;
                match entry.state {
                    OutboxState::Queued | OutboxState::Sending => {
                        tx.pending.insert(&be(entry.id), &[])?;
                    }
                    OutboxState::Sent | OutboxState::Failed | OutboxState::Suppressed => {
                        tx.pending.remove(&be(entry.id))?;
                    }
                }
                if let (Some(id), Some((at, kind))) = (&entry.case, event) {
                    if let Some(mut case) = tx.get_case(id)? {
                        case.updated_at = *at;
                        tx.event(&mut case, *at, "ticketd", kind.clone())?;
                        tx.put_case(&case)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// Queue a mail to our own people (an alert), with an event on its case.
    pub fn queue_notice(
        &self,
        case: Option<&str>,
        mail: NewMail,
        now: DateTime<Utc>,
        reason: &str,
    ) -> Result<u64> {
        self.transact(|tx| {
            let oid = tx.queue_mail(case, mail.clone(), now)?;
            if let Some(id) = case {
                if let Some(mut c) = tx.get_case(id)? {
                    c.outbox.push(oid);
                    tx.event(
                        &mut c,
                        now,
                        "ticketd",
                        EventKind::AlertQueued {
                            outbox: oid,
                            reason: reason.to_string(),
                        },
                    )?;
                    tx.put_case(&c)?;
                }
            }
            Ok(oid)
        })
    }

    /// Make a case from an ignored message, with `decision` (triage as a new
    /// case). The ignored record keeps its history and points at the case.
    pub fn promote_ignored(
        &self,
        ignored_id: u64,
        decision: &Decision,
        reply_address: std::result::Result<String, String>,
        now: DateTime<Utc>,
        actor: &str,
        plan: &NewCaseFn<'_>,
    ) -> Result<(String, Option<u64>)> {
        self.transact(|tx| {
            let v = tx
                .ignored
                .get(be(ignored_id))?
                .ok_or(Cte::Abort(StoreError::NoIgnored(ignored_id)))?;
            let mut rec: IgnoredRecord = from_json("ignored", &v).map_err(Cte::Abort)?;
            if let Some(c) = &rec.promoted_to {
                return Err(Cte::Abort(StoreError::Invalid(format!(
                    "ignored message {ignored_id} was already promoted to {c}"
                ))));
            }
            let mv = tx
                .messages
                .get(be(rec.message))?
                .ok_or(Cte::Abort(StoreError::Corrupt {
                    tree: "messages",
                    detail: format!("ignored {ignored_id} names missing message {}", rec.message),
                }))?;
            let mut msg: MessageRecord = from_json("messages", &mv).map_err(Cte::Abort)?;
            let (case_id, outbox) = tx.create_case(
                decision,
                msg.id,
                &msg.subject,
                msg.from.as_ref(),
                &reply_address,
                &msg.source,
                msg.received_at,
                now,
                actor,
                Vec::new(),
                plan,
                None,
            )?;
            if let Some(mut case) = tx.get_case(&case_id)? {
                tx.event(
                    &mut case,
                    now,
                    actor,
                    EventKind::Promoted {
                        ignored: ignored_id,
                    },
                )?;
                tx.put_case(&case)?;
            }
            if let Some(mid) = &msg.message_id {
                tx.msgids.insert(mid.as_bytes(), case_id.as_bytes())?;
            }
            msg.disposition = Disposition::NewCase {
                case: case_id.clone(),
            };
            tx.messages.insert(&be(msg.id), to_json(&msg))?;
            rec.promoted_to = Some(case_id.clone());
            tx.ignored.insert(&be(ignored_id), to_json(&rec))?;
            Ok((case_id, outbox))
        })
    }
}

/// The value of the `raw` tree for `input` (compressed,
/// [`super::encode_raw`]) when its raw bytes are kept: fetched whole and
/// within `max_stored_bytes`.
fn stored_raw(input: &IngestInput<'_>) -> Option<Vec<u8>> {
    let keep = input.original_size.is_none() && input.raw.len() as u64 <= input.max_stored_bytes;
    keep.then(|| super::encode_raw(input.raw))
}

fn ingest_tx(
    tx: &Tx<'_>,
    input: &IngestInput<'_>,
    stored: Option<&[u8]>,
) -> TxResult<IngestOutcome> {
    // 1. Dedupe: this source item, else Message-ID and content, else content.
    let seen = dedupe_verdict::<Cte<StoreError>>(
        &DedupeQuery {
            source: input.source,
            key: input.source_key,
            message_id: input.message_id,
            hash: input.content_hash,
            raw: input.raw,
        },
        &|k: &str| Ok(tx.dedupe.get(k.as_bytes())?.and_then(|v| from_be(&v))),
        &|id: u64| match tx.messages.get(be(id))? {
            Some(v) => Ok(Some(
                from_json::<MessageRecord>("messages", &v).map_err(Cte::Abort)?,
            )),
            None => Ok(None),
        },
    )?;
    if let Seen::Reread { message } = seen {
        return Ok(IngestOutcome::Duplicate { message });
    }

    let msg_id = tx.next_seq("message")?;
    let size = input.original_size.unwrap_or(input.raw.len() as u64);
    let raw_stored = stored.is_some();
    let mut notes = Vec::new();
    if let Some(stored) = stored {
        tx.raw.insert(&be(msg_id), stored)?;
    } else if input.original_size.is_some() {
        notes.push(format!(
            "message is {size} bytes, over the per-message fetch limit: only its header was fetched and triaged; the original stays in its source ({} {})",
            input.source, input.source_key
        ));
    } else {
        notes.push(format!(
            "original message is {size} bytes, over the {} byte storage limit: it is not stored here and stays in its source ({} {})",
            input.max_stored_bytes, input.source, input.source_key
        ));
    }
    let mut record = MessageRecord {
        id: msg_id,
        source: input.source.to_string(),
        source_key: input.source_key.to_string(),
        received_at: input.received_at,
        size,
        raw_stored,
        message_id: input.message_id.map(str::to_string),
        content_hash: input.content_hash.to_string(),
        subject: input.subject.to_string(),
        from: input.from.cloned(),
        disposition: Disposition::Ignored { ignored: 0 },
        warnings: input.warnings.to_vec(),
    };

    if let Seen::ReusedId { earlier } = seen {
        let note = format!(
            "its Message-ID <{}> was already used by message {earlier} with other content: recorded as a separate message",
            input.message_id.unwrap_or("")
        );
        record.warnings.push(note.clone());
        notes.push(note);
    }
    // Children that arrived before this message and wait for it.
    let waiting = match (input.message_id, seen) {
        (Some(mid), Seen::New) => take_awaiting(tx, mid, input.now, input.late_parent_window)?,
        _ => Vec::new(),
    };
    let outcome = match (input.decision, input.unparseable) {
        _ if matches!(seen, Seen::Duplicate { .. }) => {
            let original = match seen {
                Seen::Duplicate { original } => original,
                _ => 0,
            };
            let case = match tx.messages.get(be(original))? {
                Some(v) => from_json::<MessageRecord>("messages", &v)
                    .ok()
                    .and_then(|m| m.disposition.case().map(str::to_string)),
                None => None,
            };
            let reason = format!(
                "the same message (Message-ID and content) as message {original}{}, delivered again",
                case.map(|c| format!(" ({c})")).unwrap_or_default()
            );
            let ignored = put_ignored(tx, input, msg_id, "duplicate", vec![reason])?;
            record.disposition = Disposition::Ignored { ignored };
            IngestOutcome::Ignored {
                ignored,
                message: msg_id,
            }
        }
        (Some(d), _) if d.kind != Kind::Ignore => match late_parent_target(tx, input, d, &waiting)?
        {
            crate::workflow::Thread::Join {
                case: case_id,
                matched_by,
                new_participant,
            } => {
                let mut case = tx
                    .get_case(&case_id)?
                    .ok_or_else(|| Cte::Abort(StoreError::NoCase(case_id.clone())))?;
                case.messages.push(msg_id);
                case.updated_at = input.now;
                tx.event(
                    &mut case,
                    input.now,
                    input.actor,
                    EventKind::Received {
                        message: msg_id,
                        source: input.source.to_string(),
                    },
                )?;
                let first_raw = match case.messages.first() {
                    Some(first)
                        if case.kind == CaseKind::Privacy && mentions_forward(input.raw) =>
                    {
                        match tx.raw.get(be(*first))? {
                            Some(v) => Some(super::decode_raw(&v).map_err(Cte::Abort)?),
                            None => None,
                        }
                    }
                    _ => None,
                };
                let facts = JoinFacts {
                    message: msg_id,
                    matched_by,
                    new_participant,
                    first_raw,
                };
                // Pure, but it renders mail from the message: a panic fails
                // this message alone.
                let plan = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    (input.follow_up)(&case, &facts)
                }))
                .map_err(|p| {
                    Cte::Abort(StoreError::Invalid(format!(
                        "planning the follow-up failed: {}",
                        crate::failpoint::panic_text(p.as_ref())
                    )))
                })?;
                let crate::workflow::ArrivalPlan {
                    case: mut next,
                    change,
                    actor,
                    staff,
                } = plan;
                next.next_event = next.next_event.max(case.next_event);
                tx.apply_change(&mut next, change, input.now, &actor)?;
                tx.put_case(&next)?;
                record.disposition = if staff {
                    Disposition::Staff {
                        case: case_id.clone(),
                    }
                } else {
                    Disposition::FollowUp {
                        case: case_id.clone(),
                    }
                };
                IngestOutcome::FollowUp {
                    case: case_id,
                    message: msg_id,
                }
            }
            thread @ crate::workflow::Thread::New { .. } => {
                let decision = if d.kind == Kind::Reply {
                    input.fallback.unwrap_or(d)
                } else {
                    d
                };
                if decision.kind == Kind::Ignore || decision.kind == Kind::Reply {
                    let mut reasons = vec!["reply names no case it may join".to_string()];
                    reasons.extend(notes.iter().cloned());
                    let ignored = put_ignored(tx, input, msg_id, "unmatched reply", reasons)?;
                    record.disposition = Disposition::Ignored { ignored };
                    IngestOutcome::Ignored {
                        ignored,
                        message: msg_id,
                    }
                } else {
                    let (case_id, outbox) = tx.create_case(
                        decision,
                        msg_id,
                        input.subject,
                        input.from,
                        &input.reply_address,
                        input.source,
                        input.received_at,
                        input.now,
                        input.actor,
                        notes,
                        input.plan,
                        Some((&thread, &input.thread.parties, input.message_id)),
                    )?;
                    if let crate::workflow::Thread::New {
                        link: Some(other),
                        review,
                        ..
                    } = &thread
                    {
                        link_cases(tx, &case_id, other, review.as_deref(), input.now)?;
                    }
                    record.disposition = Disposition::NewCase {
                        case: case_id.clone(),
                    };
                    IngestOutcome::NewCase {
                        case: case_id,
                        message: msg_id,
                        outbox,
                    }
                }
            }
        },
        (Some(d), _) => {
            let category = d
                .reasons
                .iter()
                .rev()
                .find_map(|r| r.strip_prefix("ignored: "))
                .unwrap_or("ignored")
                .to_string();
            let mut reasons = d.reasons.clone();
            reasons.extend(notes.iter().cloned());
            let ignored = put_ignored(tx, input, msg_id, &category, reasons)?;
            record.disposition = Disposition::Ignored { ignored };
            IngestOutcome::Ignored {
                ignored,
                message: msg_id,
            }
        }
        (None, reason) => {
            let mut reasons = vec![reason.unwrap_or("not mail").to_string()];
            reasons.extend(notes.iter().cloned());
            let ignored = put_ignored(tx, input, msg_id, "unparseable", reasons)?;
            record.disposition = Disposition::Ignored { ignored };
            IngestOutcome::Ignored {
                ignored,
                message: msg_id,
            }
        }
    };

    let outcome = link_waiting(tx, input, msg_id, outcome, &waiting)?;
    if outcome_case(&outcome).is_some() && matches!(seen, Seen::New | Seen::ReusedId { .. }) {
        await_parents(tx, input, msg_id, &outcome)?;
    }
    if let (Seen::ReusedId { earlier }, Some(c)) = (seen, outcome_case(&outcome)) {
        if let Some(mut case) = tx.get_case(c)? {
            tx.event(
                &mut case,
                input.now,
                "ticketd",
                EventKind::Note {
                    text: format!(
                        "message {msg_id} reuses the Message-ID of message {earlier}, with other content; both are kept"
                    ),
                },
            )?;
            tx.put_case(&case)?;
        }
    }
    if input.original_size.is_some() {
        if let Some(render) = input.render_alert {
            let mut case = match outcome_case(&outcome) {
                Some(c) => tx.get_case(c)?,
                None => None,
            };
            match render(case.as_ref()) {
                Ok(mail) => {
                    let oid =
                        tx.queue_mail(case.as_ref().map(|c| c.id.as_str()), mail, input.now)?;
                    if let Some(c) = case.as_mut() {
                        c.outbox.push(oid);
                        tx.event(
                            c,
                            input.now,
                            "ticketd",
                            EventKind::AlertQueued {
                                outbox: oid,
                                reason: format!(
                                    "message of {size} bytes over the per-message limit"
                                ),
                            },
                        )?;
                        tx.put_case(c)?;
                    }
                }
                Err(e) => {
                    if let Some(c) = case.as_mut() {
                        tx.event(
                            c,
                            input.now,
                            "ticketd",
                            EventKind::Note {
                                text: format!("no operator alert sent: {e}"),
                            },
                        )?;
                        tx.put_case(c)?;
                    }
                }
            }
        }
    }
    tx.messages.insert(&be(msg_id), to_json(&record))?;
    for key in dedupe_keys(
        input.source,
        input.source_key,
        input.message_id,
        input.content_hash,
        &seen,
    ) {
        tx.dedupe.insert(key.as_bytes(), &be(msg_id))?;
    }
    // Index the received Message-ID so replies to it thread into the case
    // (a reused id keeps pointing where it first did).
    if let (Some(mid), Some(case), Seen::New) = (input.message_id, outcome_case(&outcome), &seen) {
        tx.msgids.insert(mid.as_bytes(), case.as_bytes())?;
    }
    if let Some((name, value)) = input.cursor {
        tx.cursors.insert(name.as_bytes(), value)?;
    }
    Ok(outcome)
}

/// The kind of case a decision opens.
pub fn case_kind(decision: &Decision) -> CaseKind {
    if decision.kind == Kind::Privacy {
        CaseKind::Privacy
    } else {
        CaseKind::Support
    }
}

/// A case number: `SUP-000042`.
pub fn case_id(kind: CaseKind, n: u64) -> String {
    format!("{}-{:06}", kind.prefix(), n)
}

/// What the dedupe index says about a message: one rule, used by the
/// ingest transaction and by planning ahead alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen before.
    New,
    /// This very source item (mailbox and key) was stored before: a
    /// re-read, e.g. after a crash between the flush and the take.
    /// Nothing new is recorded.
    Reread { message: u64 },
    /// The same message (Message-ID and content, or content when it has
    /// no Message-ID) delivered again: recorded as a duplicate of
    /// `original`, visible in the ignored list.
    Duplicate { original: u64 },
    /// Its Message-ID names an earlier message with other content: a new
    /// message (a reused id never hides a message), with a note.
    ReusedId { earlier: u64 },
}

/// One message as the dedupe rule sees it.
pub struct DedupeQuery<'a> {
    pub source: &'a str,
    pub key: &'a str,
    pub message_id: Option<&'a str>,
    /// [`crate::mail::content_hash`] of `raw`.
    pub hash: &'a str,
    pub raw: &'a [u8],
}

/// The dedupe verdict for `q`, reading the dedupe tree through `dedupe`
/// and stored message records through `stored`. Keys: `src:SOURCE\0KEY`
/// (every message), `mid:ID` (the first message with that Message-ID),
/// `mh:ID\0HASH` (Message-ID and content), `hash:HASH` (no Message-ID).
pub fn dedupe_verdict<E>(
    q: &DedupeQuery<'_>,
    dedupe: &dyn Fn(&str) -> std::result::Result<Option<u64>, E>,
    stored: &dyn Fn(u64) -> std::result::Result<Option<MessageRecord>, E>,
) -> std::result::Result<Seen, E> {
    if let Some(message) = dedupe(&source_key(q.source, q.key))? {
        return Ok(Seen::Reread { message });
    }
    // A hit on the original: a re-read when it is this very item (stores
    // written before `src:` keys existed), else a second delivery.
    let hit = |original: u64| -> std::result::Result<Seen, E> {
        Ok(match stored(original)? {
            Some(m) if m.source == q.source && same_item(&m.source_key, q.key) => {
                Seen::Reread { message: original }
            }
            _ => Seen::Duplicate { original },
        })
    };
    let legacy = || crate::mail::legacy_content_hash(q.raw);
    match q.message_id {
        Some(mid) => {
            if let Some(m) = dedupe(&format!("mh:{mid}\0{}", q.hash))? {
                return hit(m);
            }
            let Some(first) = dedupe(&format!("mid:{mid}"))? else {
                return Ok(Seen::New);
            };
            match stored(first)? {
                Some(m) if m.content_hash == q.hash || m.content_hash == legacy() => hit(first),
                // Recorded before its hash was kept: trust the id, as before.
                None => hit(first),
                Some(_) => Ok(Seen::ReusedId { earlier: first }),
            }
        }
        None => {
            if let Some(m) = dedupe(&format!("hash:{}", q.hash))? {
                return hit(m);
            }
            match dedupe(&format!("hash:{}", legacy()))? {
                Some(m) => hit(m),
                None => Ok(Seen::New),
            }
        }
    }
}

/// The dedupe keys a stored message writes (see [`dedupe_verdict`]).
pub fn dedupe_keys(
    source: &str,
    key: &str,
    message_id: Option<&str>,
    hash: &str,
    seen: &Seen,
) -> Vec<String> {
    let mut keys = vec![source_key(source, key)];
    match (message_id, seen) {
        (_, Seen::Duplicate { .. } | Seen::Reread { .. }) => {}
        (Some(mid), Seen::New) => {
            keys.push(format!("mid:{mid}"));
            keys.push(format!("mh:{mid}\0{hash}"));
        }
        (Some(mid), Seen::ReusedId { .. }) => keys.push(format!("mh:{mid}\0{hash}")),
        (None, _) => keys.push(format!("hash:{hash}")),
    }
    keys
}

/// Whether two keys of one source name the same mailbox item: equal, or
/// IMAP keys (`UIDVALIDITY:UID`) from different UIDVALIDITY epochs (the
/// folder was reset or recreated, and its messages came back with new
/// UIDs). Two UIDs of one epoch are two deliveries.
fn same_item(stored: &str, key: &str) -> bool {
    let epoch = |k: &str| -> Option<(u32, u32)> {
        let (v, u) = k.split_once(':')?;
        Some((v.parse().ok()?, u.parse().ok()?))
    };
    match (epoch(stored), epoch(key)) {
        (Some((v1, _)), Some((v2, _))) if v1 != v2 => true,
        _ => stored == key,
    }
}

fn source_key(source: &str, key: &str) -> String {
    format!("src:{source}\0{key}")
}

/// The key a message's content is known by in a batch before it is
/// stored (planning ahead): Message-ID and content, else content.
pub fn dedupe_key(message_id: Option<&str>, content_hash: &str) -> String {
    match message_id {
        Some(mid) => format!("mh:{mid}\0{content_hash}"),
        None => format!("hash:{content_hash}"),
    }
}

/// A new case as its planner sees it: opened from `decision` with its
/// first message, the Received event (seq 1) written, no clocks yet. The
/// ingest transaction builds it this way, and so can a caller that plans
/// ahead of the transaction (the plan is a pure function of this case).
#[allow(clippy::too_many_arguments)]
pub fn planned_case(
    id: &str,
    decision: &Decision,
    message: u64,
    subject: &str,
    from: Option<&Addr>,
    reply_address: &std::result::Result<String, String>,
    source: &str,
    received_at: DateTime<Utc>,
    now: DateTime<Utc>,
    notes: Vec<String>,
) -> Case {
    Case {
        id: id.to_string(),
        kind: case_kind(decision),
        status: CaseStatus::New,
        level: decision.level,
        rights: decision.rights.clone().unwrap_or_default(),
        jurisdiction: decision.jurisdiction,
        subject: subject.to_string(),
        requester: from.cloned(),
        reply_address: reply_address.as_ref().ok().cloned(),
        mailbox: source.to_string(),
        received_at,
        created_at: now,
        updated_at: now,
        messages: vec![message],
        outbox: Vec::new(),
        next_event: 2,
        notes,
        clocks: CaseClocks::default(),
        agency: None,
        doubt: decision.doubt(),
        participants: Vec::new(),
        assignee: None,
        links: Vec::new(),
        last_requester_message_id: None,
        requester_wrote_at: None,
        language: decision.language.clone(),
        privacy: (case_kind(decision) == CaseKind::Privacy)
            .then(|| PrivacyState::new(decision.rights.as_ref().is_some_and(|r| r.is_empty()))),
    }
}

/// Whether raw mail may carry a `#forward` command (any case).
fn mentions_forward(raw: &[u8]) -> bool {
    raw.windows(8).any(|w| w.eq_ignore_ascii_case(b"#forward"))
}

fn outcome_case(o: &IngestOutcome) -> Option<&str> {
    match o {
        IngestOutcome::NewCase { case, .. } | IngestOutcome::FollowUp { case, .. } => Some(case),
        _ => None,
    }
}

fn put_ignored(
    tx: &Tx<'_>,
    input: &IngestInput<'_>,
    message: u64,
    category: &str,
    reasons: Vec<String>,
) -> TxResult<u64> {
    let id = tx.next_seq("ignored")?;
    let case = named_case(tx, input)?;
    let mut reasons = reasons;
    if let Some(c) = &case {
        reasons.push(format!("names case {c} (not added to it)"));
    }
    let rec = IgnoredRecord {
        id,
        message,
        source: input.source.to_string(),
        received_at: input.received_at,
        from: input.from.cloned(),
        subject: input.subject.to_string(),
        category: category.to_string(),
        reasons,
        promoted_to: None,
        case,
    };
    tx.ignored.insert(&be(id), to_json(&rec))?;
    Ok(id)
}

/// A message that named a parent not seen yet, waiting for it (the value
/// of `await:<parent Message-ID>` in the dedupe tree is a list of these).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct Awaiting {
    message: u64,
    case: String,
    at: DateTime<Utc>,
}

/// Parents a message may wait for: its In-Reply-To and its nearest
/// References, at most this many.
const AWAIT_MAX: usize = 8;

/// Record that the message `msg_id` (now in a case) waits for the parents
/// its headers name that are not stored yet.
fn await_parents(
    tx: &Tx<'_>,
    input: &IngestInput<'_>,
    msg_id: u64,
    outcome: &IngestOutcome,
) -> TxResult<()> {
    let Some(case) = outcome_case(outcome) else {
        return Ok(());
    };
    for id in input.thread.header_ids.iter().take(AWAIT_MAX) {
        if Some(id.as_str()) == input.message_id
            || !crate::render::safe_msg_id(id)
            || tx.msgids.get(id.as_bytes())?.is_some()
        {
            continue;
        }
        let key = format!("await:{id}");
        let mut list: Vec<Awaiting> = match tx.dedupe.get(key.as_bytes())? {
            Some(v) => serde_json::from_slice(&v).unwrap_or_default(),
            None => Vec::new(),
        };
        if list.len() >= 32 || list.iter().any(|a| a.message == msg_id) {
            continue;
        }
        list.push(Awaiting {
            message: msg_id,
            case: case.to_string(),
            at: input.now,
        });
        tx.dedupe.insert(key.as_bytes(), to_json(&list))?;
    }
    Ok(())
}

/// The children waiting for the message `mid` (within the window), whose
/// cases still exist; the entry is removed.
fn take_awaiting(
    tx: &Tx<'_>,
    mid: &str,
    now: DateTime<Utc>,
    window: chrono::Duration,
) -> TxResult<Vec<(Awaiting, Case)>> {
    let key = format!("await:{mid}");
    let Some(v) = tx.dedupe.remove(key.as_bytes())? else {
        return Ok(Vec::new());
    };
    let list: Vec<Awaiting> = serde_json::from_slice(&v).unwrap_or_default();
    let mut out = Vec::new();
    for a in list {
        if now - a.at > window {
            continue;
        }
        if let Some(c) = tx.get_case(&a.case)? {
            out.push((a, c));
        }
    }
    Ok(out)
}

/// Where a message goes when children wait for it: the case it threads
/// into by its own headers, else (when it would open a case of the same
/// kind) the case of the children that arrived before it.
fn late_parent_target(
    tx: &Tx<'_>,
    input: &IngestInput<'_>,
    d: &Decision,
    waiting: &[(Awaiting, Case)],
) -> TxResult<crate::workflow::Thread> {
    let t = thread_target(tx, input)?;
    if matches!(t, crate::workflow::Thread::Join { .. }) || waiting.is_empty() {
        return Ok(t);
    }
    let as_new = if d.kind == Kind::Reply {
        input.fallback.unwrap_or(d)
    } else {
        d
    };
    if as_new.kind == Kind::Ignore || as_new.kind == Kind::Reply {
        return Ok(t);
    }
    let kind = case_kind(as_new);
    Ok(waiting
        .iter()
        .find(|(_, c)| c.kind == kind && !c.is_done())
        .map(|(a, c)| crate::workflow::Thread::Join {
            case: c.id.clone(),
            matched_by: format!(
                "late parent: message {} of this case, which arrived first, replies to it",
                a.message
            ),
            new_participant: false,
        })
        .unwrap_or(t))
}

/// Link the new case `new` to `other` (a stranger's mail named it, or a
/// reply to it after it was closed): an event on both.
fn link_cases(
    tx: &Tx<'_>,
    new: &str,
    other: &str,
    review: Option<&str>,
    now: DateTime<Utc>,
) -> TxResult<()> {
    let why = review
        .map(str::to_string)
        .unwrap_or_else(|| "the requester wrote again after it was closed".to_string());
    if let Some(mut c) = tx.get_case(other)? {
        if !c.links.iter().any(|l| l == new) {
            c.links.push(new.to_string());
        }
        tx.event(
            &mut c,
            now,
            "ticketd",
            EventKind::Linked {
                case: new.to_string(),
                why: format!("a message that names this case opened {new}: {why}"),
            },
        )?;
        tx.put_case(&c)?;
    }
    if let Some(mut c) = tx.get_case(new)? {
        tx.event(
            &mut c,
            now,
            "ticketd",
            EventKind::Linked {
                case: other.to_string(),
                why,
            },
        )?;
        tx.put_case(&c)?;
    }
    Ok(())
}

/// After the message `msg_id` is placed: every other case that children
/// waiting for it opened is linked. Same kind: the later-created case is
/// merged into the earlier (its unsent acknowledgement is not sent);
/// another kind (a privacy request and a support ticket keep their own
/// clocks): each case gets a note naming the other. Returns the outcome,
/// moved to the surviving case when this message's own case was merged.
fn link_waiting(
    tx: &Tx<'_>,
    input: &IngestInput<'_>,
    msg_id: u64,
    outcome: IngestOutcome,
    waiting: &[(Awaiting, Case)],
) -> TxResult<IngestOutcome> {
    let Some(mut here) = outcome_case(&outcome).map(str::to_string) else {
        return Ok(outcome);
    };
    let mut outcome = outcome;
    let mut done: Vec<String> = Vec::new();
    for (a, _) in waiting {
        if a.case == here || done.contains(&a.case) {
            continue;
        }
        done.push(a.case.clone());
        let (Some(mine), Some(theirs)) = (tx.get_case(&here)?, tx.get_case(&a.case)?) else {
            continue;
        };
        if mine.kind != theirs.kind || mine.is_done() || theirs.is_done() {
            for (mut c, other) in [(mine, theirs.id.clone()), (theirs, here.clone())] {
                tx.event(
                    &mut c,
                    input.now,
                    "ticketd",
                    EventKind::Note {
                        text: format!(
                            "related to {other}: message {} replies to message {msg_id}, which arrived after it",
                            a.message
                        ),
                    },
                )?;
                tx.put_case(&c)?;
            }
            continue;
        }
        // The later-created case goes into the earlier one.
        let (from, into) = if (mine.created_at, &mine.id) > (theirs.created_at, &theirs.id) {
            (mine, theirs)
        } else {
            (theirs, mine)
        };
        let into_id = into.id.clone();
        merge_case(
            tx,
            from,
            into,
            input.now,
            &format!(
                "message {} replies to message {msg_id}, which arrived after it",
                a.message
            ),
        )?;
        if here != into_id {
            here = into_id.clone();
            outcome = match outcome {
                IngestOutcome::NewCase { message, .. }
                | IngestOutcome::FollowUp { message, .. } => IngestOutcome::FollowUp {
                    case: into_id,
                    message,
                },
                o => o,
            };
        }
    }
    Ok(outcome)
}

/// Merge case `from` into `into`: its messages join `into`, replies to
/// its messages and to our mail for it thread into `into` from now on, an
/// acknowledgement of it not yet sent is not sent (the requester is told
/// once), and `from` is closed with a note (its timers are dropped when
/// they come due). Events on both.
fn merge_case(
    tx: &Tx<'_>,
    mut from: Case,
    mut into: Case,
    now: DateTime<Utc>,
    why: &str,
) -> TxResult<()> {
    for m in &from.messages {
        if !into.messages.contains(m) {
            into.messages.push(*m);
        }
        if let Some(v) = tx.messages.get(be(*m))? {
            let rec: MessageRecord = from_json("messages", &v).map_err(Cte::Abort)?;
            if let Some(mid) = &rec.message_id {
                tx.msgids.insert(mid.as_bytes(), into.id.as_bytes())?;
            }
        }
    }
    into.messages.sort_unstable();
    for o in &from.outbox {
        let Some(v) = tx.outbox.get(be(*o))? else {
            continue;
        };
        let mut e: OutboxEntry = from_json("outbox", &v).map_err(Cte::Abort)?;
        tx.msgids
            .insert(e.message_id.as_bytes(), into.id.as_bytes())?;
        if e.purpose == Purpose::Ack && e.state == OutboxState::Queued {
            e.state = OutboxState::Suppressed;
            e.last_error = Some(format!("not sent: case merged into {}", into.id));
            e.next_attempt_at = now;
            tx.outbox.insert(&be(e.id), to_json(&e))?;
            tx.pending.remove(&be(e.id))?;
        }
    }
    let was = from.status;
    from.status = CaseStatus::Closed;
    from.updated_at = now;
    from.notes.push(format!("merged into {}", into.id));
    tx.event(
        &mut from,
        now,
        "ticketd",
        EventKind::Note {
            text: format!("merged into {}: {why}", into.id),
        },
    )?;
    tx.event(
        &mut from,
        now,
        "ticketd",
        EventKind::StatusChanged {
            from: was,
            to: CaseStatus::Closed,
        },
    )?;
    into.updated_at = now;
    tx.event(
        &mut into,
        now,
        "ticketd",
        EventKind::Note {
            text: format!("{} merged into this case: {why}", from.id),
        },
    )?;
    tx.put_case(&from)?;
    tx.put_case(&into)?;
    Ok(())
}

/// The existing case this message may join, or how it opens a new one
/// (the one threading rule, [`crate::workflow::thread::decide`]).
fn thread_target(tx: &Tx<'_>, input: &IngestInput<'_>) -> TxResult<crate::workflow::Thread> {
    let h = &input.thread;
    crate::workflow::thread::decide(
        &crate::workflow::ThreadQuery {
            refs: &h.refs,
            subject_tag: h.subject_tag.as_deref(),
            sender: h.sender.as_deref(),
            staff: h.staff,
            now: input.now,
            link_closed_within: h.link_closed_within,
        },
        &TxLookup {
            tx,
            site_admin_of: h.site_admin_of.as_deref(),
        },
    )
}

/// The case a message names (for the record of mail set aside): a valid
/// token, a stored Message-ID, else an id or tag naming an existing case.
fn named_case(tx: &Tx<'_>, input: &IngestInput<'_>) -> TxResult<Option<String>> {
    use crate::workflow::HeaderRef;
    for r in &input.thread.refs {
        let c = match r {
            HeaderRef::Ours { case, .. } => Some(case.clone()),
            HeaderRef::Other { id, case } => match tx.msgids.get(id.as_bytes())? {
                Some(v) => Some(String::from_utf8_lossy(&v).into_owned()),
                None => case.clone(),
            },
        };
        if let Some(c) = c {
            if tx.get_case(&c)?.is_some() {
                return Ok(Some(c));
            }
        }
    }
    match &input.thread.subject_tag {
        Some(t) if tx.get_case(t)?.is_some() => Ok(Some(t.clone())),
        _ => Ok(None),
    }
}
