//! The store side of clocks and notifications: the due index (`timers`),
//! applying a [`CaseChange`] (events, notices to the outbox, new timers) in
//! one transaction, and the last-run times of scheduled jobs.
//!
//! Timers are cancelled lazily: a stopped clock (review done, response
//! given, case resolved, re-levelled) leaves its timers in the index, and
//! the pure firing logic drops them when they come due. So an escalation
//! tick reads only what is due, never every case.

use super::ingest::{Tx, TxResult};
use super::*;
use crate::triage::Decision;
use sled::transaction::ConflictableTransactionError as Cte;

/// An outgoing notification planned for a case (pure), or why it cannot be
/// built.
#[derive(Debug, Clone)]
pub struct Notice {
    /// `new_case`, `page`, `on_call`, `warning`, ... (see `notify`).
    pub kind: String,
    pub mail: std::result::Result<NewMail, String>,
}

/// What happens to a case besides its own fields: events, notices, timers
/// (and, for a timer that fires, a new status).
#[derive(Debug, Clone, Default)]
pub struct CaseChange {
    pub events: Vec<EventKind>,
    pub notices: Vec<Notice>,
    pub timers: Vec<Timer>,
    /// A due timer moves the case to this status (auto-close).
    pub set_status: Option<CaseStatus>,
}

impl CaseChange {
    /// `other` after this change.
    pub fn merge(&mut self, other: CaseChange) {
        self.events.extend(other.events);
        self.notices.extend(other.notices);
        self.timers.extend(other.timers);
        if other.set_status.is_some() {
            self.set_status = other.set_status;
        }
    }
}

/// What a message joining a case does to it (pure; see
/// [`crate::workflow::on_message`]): the case after it, what else happens,
/// whose events they are, and whether it is a staff message.
pub type FollowUpFn<'a> = dyn Fn(&Case, &JoinFacts) -> crate::workflow::ArrivalPlan + Sync + 'a;

/// What the transaction knows of a message joining a case.
#[derive(Debug, Clone)]
pub struct JoinFacts {
    pub message: u64,
    pub matched_by: String,
    pub new_participant: bool,
    /// The raw first message of a privacy case, read in the transaction
    /// when the joining message may carry `#forward` (the agency gets
    /// what we received).
    pub first_raw: Option<Vec<u8>>,
}

/// What a new case gets (computed by a pure planner inside the ingest
/// transaction, because the case number is only known there).
#[derive(Debug, Clone, Default)]
pub struct NewCasePlan {
    pub clocks: CaseClocks,
    pub agency: Option<String>,
    /// A privacy request's state as planned (identity code, suggested
    /// agency, forwarded at once).
    pub privacy: Option<PrivacyState>,
    /// The status the case starts in, when not `new`.
    pub status: Option<CaseStatus>,
    /// The acknowledgement, when one can be addressed.
    pub ack: Option<std::result::Result<NewMail, String>>,
    pub change: CaseChange,
}

/// A case changed by staff (pure), or why the change is refused.
pub type CaseUpdate = std::result::Result<(Case, CaseChange), String>;

/// Plans a new case (pure).
pub type NewCaseFn<'a> = dyn Fn(&Case, &Decision) -> NewCasePlan + Sync + 'a;

/// A due-index entry: a case's earliest timer of one queue, and the
/// case's later timers of that queue, indexed in turn when it is settled.
/// One index write per case and queue instead of one per timer (a new case
/// has up to three), since every write is paid under sled's one lock.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Indexed {
    #[serde(flatten)]
    timer: Timer,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    then: Vec<Timer>,
}

impl Tx<'_> {
    #[cfg(test)]
    pub(super) fn put_timer(&self, t: &Timer) -> TxResult<()> {
        self.put_timers(std::slice::from_ref(t))
    }

    /// Index `timers`: per queue, the earliest with the rest behind it. An
    /// entry already under the same key keeps its followers.
    pub(super) fn put_timers(&self, timers: &[Timer]) -> TxResult<()> {
        let mut by_queue: Vec<Vec<Timer>> = Vec::new();
        for t in timers {
            match by_queue
                .iter_mut()
                .find(|q| q[0].kind.queue() == t.kind.queue())
            {
                Some(q) => q.push(t.clone()),
                None => by_queue.push(vec![t.clone()]),
            }
        }
        for mut chain in by_queue {
            chain.sort_by_key(|t| t.due);
            let timer = chain.remove(0);
            let key = timer.key();
            if let Some(v) = self.timers.get(&key)? {
                if let Ok(old) = serde_json::from_slice::<Indexed>(&v) {
                    chain.extend(old.then);
                    chain.sort_by_key(|t| t.due);
                }
            }
            self.timers
                .insert(key, to_json(&Indexed { timer, then: chain }))?;
        }
        Ok(())
    }

    /// Record `change` on `case` (the caller stores the case afterwards).
    pub(super) fn apply_change(
        &self,
        case: &mut Case,
        change: CaseChange,
        now: DateTime<Utc>,
        actor: &str,
    ) -> TxResult<()> {
        for ev in change.events {
            self.event(case, now, actor, ev)?;
        }
        if let Some(to) = change.set_status {
            case.status = to;
            if to == CaseStatus::Closed && case.clocks.closed_at.is_none() {
                case.clocks.closed_at = Some(now);
            }
        }
        for n in change.notices {
            match n.mail {
                Ok(mail) => {
                    let recipients = mail.recipients.len();
                    let oid = self.queue_kind(case, mail, now, Some(&n.kind))?;
                    self.event(
                        case,
                        now,
                        "ticketd",
                        EventKind::NotificationQueued {
                            outbox: oid,
                            kind: n.kind,
                            recipients,
                        },
                    )?;
                }
                Err(reason) => {
                    self.event(
                        case,
                        now,
                        "ticketd",
                        EventKind::NotificationSkipped {
                            kind: n.kind,
                            reason,
                        },
                    )?;
                }
            }
        }
        self.put_timers(&change.timers)?;
        case.updated_at = now;
        Ok(())
    }
}

/// A due timer as read from the index.
#[derive(Debug, Clone)]
pub struct DueTimer {
    pub key: Vec<u8>,
    pub timer: Timer,
}

impl Store {
    /// Timers of `queue` due at or before `now`, earliest first, at most
    /// `limit`. Reads only the due part of the index.
    pub fn due_timers(
        &self,
        queue: Queue,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueTimer>> {
        let q = queue.byte();
        let ms = u64::try_from(now.timestamp_millis().max(0)).unwrap_or(0);
        let mut end = vec![q];
        end.extend_from_slice(&ms.saturating_add(1).to_be_bytes());
        let mut out = Vec::new();
        for kv in self.t.timers.range(vec![q]..end).take(limit) {
            let (k, v) = kv?;
            let e: Indexed = from_json("timers", &v)?;
            out.push(DueTimer {
                key: k.to_vec(),
                timer: e.timer,
            });
        }
        Ok(out)
    }

    /// Every pending timer of `case` (for `cases show` and tests), indexed
    /// or waiting behind an earlier one.
    pub fn timers_for(&self, case: &str) -> Result<Vec<Timer>> {
        let mut out = Vec::new();
        for kv in self.t.timers.iter() {
            let (_, v) = kv?;
            let e: Indexed = from_json("timers", &v)?;
            if e.timer.case == case {
                out.push(e.timer);
                out.extend(e.then);
            }
        }
        Ok(out)
    }

    /// How many entries are in the due index (one per case and queue).
    pub fn timer_count(&self) -> usize {
        self.t.timers.len()
    }

    /// Settle a due timer: remove it and apply what firing it decided, all
    /// in one transaction. `decide` sees the case as stored now (pure).
    pub fn fire_timer(
        &self,
        due: &DueTimer,
        now: DateTime<Utc>,
        decide: &(dyn Fn(Option<&Case>) -> CaseChange + Sync),
    ) -> Result<CaseChange> {
        self.transact(|tx| {
            // Its followers are indexed next (the next due one in front).
            let then = match tx.timers.remove(due.key.as_slice())? {
                Some(v) => from_json::<Indexed>("timers", &v).map_err(Cte::Abort)?.then,
                None => Vec::new(),
            };
            tx.put_timers(&then)?;
            let case = tx.get_case(&due.timer.case)?;
            let change = decide(case.as_ref());
            if let Some(mut c) = case {
                tx.apply_change(&mut c, change.clone(), now, "ticketd")?;
                tx.put_case(&c)?;
            }
            Ok(change)
        })
    }

    /// Change a case through `f` (pure: it gets the stored case and returns
    /// the new case and what else happens), in one transaction. Used by the
    /// clock stoppers (review, respond, resolve, relevel).
    pub fn update_case(
        &self,
        id: &str,
        now: DateTime<Utc>,
        actor: &str,
        f: &(dyn Fn(&Case) -> CaseUpdate + Sync),
    ) -> Result<Case> {
        self.transact(|tx| {
            let case = tx
                .get_case(id)?
                .ok_or_else(|| Cte::Abort(StoreError::NoCase(id.to_string())))?;
            let (mut new, change) = f(&case).map_err(|e| Cte::Abort(StoreError::Invalid(e)))?;
            tx.apply_change(&mut new, change, now, actor)?;
            tx.put_case(&new)?;
            Ok(new)
        })
    }

    /// Queue mail that belongs to no case (the digest), in one transaction.
    pub fn queue_standalone(&self, mail: NewMail, now: DateTime<Utc>) -> Result<u64> {
        self.transact(|tx| tx.queue_mail(None, mail.clone(), now))
    }

    /// When the scheduled job `name` last ran.
    pub fn job_last_run(&self, name: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(self
            .t
            .meta
            .get(format!("job:{name}"))?
            .and_then(|v| std::str::from_utf8(&v).ok().map(str::to_string))
            .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    pub fn set_job_last_run(&self, name: &str, at: DateTime<Utc>) -> Result<()> {
        let _w = self.write_gate();
        self.t
            .meta
            .insert(format!("job:{name}"), at.to_rfc3339().as_bytes())?;
        Ok(())
    }
}
