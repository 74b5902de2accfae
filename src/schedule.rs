//! The scheduler (I/O shell): runs the configured jobs — `escalate`,
//! `digest`, `privacy_reminders`, `retention` — when their cron schedules
//! say, reading the store's due index and writing outbox entries; it never
//! sends mail itself. What a job decides is pure ([`crate::notify`]); when
//! it runs is [`crate::clock::cron`]'s.
//!
//! Each job's last run is kept in the store, so after downtime a missed job
//! runs once (not once per missed tick). A store seen for the first time
//! records "now" as every job's last run: nothing is caught up on a first
//! start.

use crate::config::JobName;
use crate::pipeline::Pipeline;
use crate::store::{Queue, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What one job run did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct JobReport {
    pub job: String,
    /// Timers that came due and were settled.
    pub timers: usize,
    /// Mails queued (notifications, digest).
    pub queued: usize,
}

/// How many due timers one pass reads at a time.
const BATCH: usize = 256;

/// Run every job that is due at `now` (then record its run). Returns what
/// ran. The caller flushes the store and wakes the outbox.
pub fn run_due(p: &Pipeline, now: DateTime<Utc>) -> Result<Vec<JobReport>, StoreError> {
    let cal = p.notifier.calendar();
    let mut out = Vec::new();
    for job in &p.config.schedule {
        let name = job.name.as_str();
        let Some(last) = p.store.job_last_run(name)? else {
            p.store.set_job_last_run(name, now)?;
            continue;
        };
        let due = job.schedule.next_run(cal, last, now);
        if due.is_some_and(|t| t <= now) {
            let started = std::time::Instant::now();
            let report = run_job(p, job.name, now, last)?;
            p.store.set_job_last_run(name, now)?;
            let took_ms = started.elapsed().as_secs_f64() * 1000.0;
            if report.timers > 0 || report.queued > 0 {
                tracing::info!(
                    job = name,
                    timers = report.timers,
                    queued = report.queued,
                    took_ms,
                    "job ran"
                );
            } else {
                tracing::debug!(job = name, took_ms, "job ran; nothing due");
            }
            out.push(report);
        }
    }
    Ok(out)
}

/// When the next job is due (for the daemon's timer).
pub fn next_wake(p: &Pipeline, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
    let cal = p.notifier.calendar();
    let mut best: Option<DateTime<Utc>> = None;
    for job in &p.config.schedule {
        let last = p.store.job_last_run(job.name.as_str())?.unwrap_or(now);
        if let Some(t) = job.schedule.next_run(cal, last, now) {
            best = Some(best.map_or(t, |b| b.min(t)));
        }
    }
    Ok(best)
}

/// Run one job now, whatever its schedule says.
pub fn run_job(
    p: &Pipeline,
    job: JobName,
    now: DateTime<Utc>,
    last: DateTime<Utc>,
) -> Result<JobReport, StoreError> {
    let mut r = JobReport {
        job: job.as_str().to_string(),
        ..JobReport::default()
    };
    match job {
        JobName::Escalate => drain(p, Queue::Escalate, now, &mut r)?,
        JobName::PrivacyReminders => drain(p, Queue::Privacy, now, &mut r)?,
        JobName::Digest => {
            // The digest speaks of open cases only: read them alone.
            let mut cases = Vec::new();
            let open = crate::store::CaseFilter::open_cases();
            p.store.for_each_case(&open, None, |c| {
                cases.push(c);
                Ok(true)
            })?;
            let problems = p.store.outbox_problems(last)?;
            let set_aside: Vec<_> = p
                .store
                .list_ignored()?
                .into_iter()
                .filter(|r| r.received_at > last && r.promoted_to.is_none())
                .collect();
            let token = crate::render::token();
            match p.notifier.digest(&crate::notify::DigestInput {
                cases: &cases,
                problems: &problems,
                set_aside: &set_aside,
                now,
                since: Some(last),
                token: &token,
            }) {
                None => {
                    tracing::info!("digest: nobody configured to receive it (people.support_lead)")
                }
                Some(Err(e)) => tracing::error!(error = %e, "digest could not be built"),
                Some(Ok(mail)) => {
                    p.store.queue_standalone(mail, now)?;
                    r.queued += 1;
                }
            }
        }
        // What retention removes is decided in `erase::retention` (pure);
        // the run is recorded in the store with counts only.
        JobName::Retention => {
            crate::erase::apply::run_retention(&p.store, &p.config, now)?;
        }
    }
    Ok(r)
}

/// Settle every timer of `queue` due at `now`.
fn drain(
    p: &Pipeline,
    queue: Queue,
    now: DateTime<Utc>,
    r: &mut JobReport,
) -> Result<(), StoreError> {
    // Each pass removes what it reads and reschedules strictly later, so
    // the loop ends; the bound is a guard against a planning bug.
    for _ in 0..10_000 {
        let due = p.store.due_timers(queue, now, BATCH)?;
        if due.is_empty() {
            break;
        }
        for d in &due {
            let token = crate::render::token();
            let change = p.store.fire_timer(d, now, &|case| {
                let mut c = p.notifier.fire(&d.timer, case, now, &token);
                for t in &mut c.timers {
                    if t.due <= now {
                        t.due = now + chrono::Duration::seconds(1);
                    }
                }
                c
            })?;
            r.timers += 1;
            r.queued += change.notices.iter().filter(|n| n.mail.is_ok()).count();
        }
    }
    Ok(())
}
