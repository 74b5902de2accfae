//! Delivering the outbox: a [`Transport`] puts one mail somewhere, the
//! [`deliver_due`] worker walks the pending entries and moves each through
//! the state machine in [`state`]. Nothing is sent that is not first a
//! durable outbox entry; an entry is marked sent only after the transport
//! returned, and a resend after a crash replaces rather than duplicates
//! (the file transport names files by outbox id; SMTP recipients see the
//! same fixed Message-ID).

pub mod file;
pub mod smtp;
pub mod state;

use crate::clock::Clock;
use crate::store::{EventKind, OutboxEntry, OutboxState, Purpose, Store, StoreError};
use std::future::Future;
use std::sync::Arc;

/// Why a transport could not deliver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying (4xx, connection trouble, disk full).
    #[error("transient: {0}")]
    Transient(String),
    /// Will never work (5xx, invalid recipient).
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Puts one mail on its way. Returns where it went (file path, queue id).
pub trait Transport: Send + Sync {
    fn send(&self, entry: &OutboxEntry) -> impl Future<Output = Result<String, SendError>> + Send;
    /// How many deliveries may run at once.
    fn concurrency_hint(&self) -> usize {
        1
    }
}

/// The configured transport.
pub enum AnyTransport {
    File(file::FileTransport),
    Smtp(Box<smtp::SmtpTransport>),
}

impl AnyTransport {
    pub fn from_config(o: &crate::config::Outbound) -> AnyTransport {
        match (&o.transport, &o.smtp) {
            (crate::config::TransportKind::Smtp, Some(ep)) => {
                AnyTransport::Smtp(Box::new(smtp::SmtpTransport::new(ep.clone(), o.pool_size)))
            }
            _ => AnyTransport::File(file::FileTransport::new(o.dir.clone())),
        }
    }
}

impl Transport for AnyTransport {
    async fn send(&self, entry: &OutboxEntry) -> Result<String, SendError> {
        match self {
            AnyTransport::File(t) => t.send(entry).await,
            AnyTransport::Smtp(t) => t.send(entry).await,
        }
    }
    fn concurrency_hint(&self) -> usize {
        match self {
            AnyTransport::File(_) => 1,
            AnyTransport::Smtp(s) => s.pool_size(),
        }
    }
}

/// What one delivery pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryStats {
    pub sent: usize,
    pub retry_later: usize,
    pub failed: usize,
    /// Not sent: per-recipient rate limit.
    pub suppressed: usize,
    /// Entries waiting out a transient failure that were made due again
    /// because the server accepted mail in this pass (it is back).
    pub released: usize,
}

/// How the worker treats entries besides retrying them.
#[derive(Debug, Clone)]
pub struct OutboxPolicy {
    pub retry: state::RetryPolicy,
    /// Automatic mail to one requester address per rolling hour (0 = no
    /// limit), counting only mail the server accepted. Staff mail is never
    /// limited.
    pub rate_limit_per_hour: u32,
    /// Where permanent failures and suppressed mail are reported.
    pub alerts_to: Vec<String>,
    pub alert_from: lettre::message::Mailbox,
    pub domain: String,
}

impl OutboxPolicy {
    pub fn from_config(c: &crate::config::Config) -> OutboxPolicy {
        OutboxPolicy {
            retry: state::RetryPolicy {
                max_age: chrono::Duration::from_std(c.outbound.max_age.0)
                    .unwrap_or_else(|_| chrono::Duration::days(3)),
                first_backoff: chrono::Duration::from_std(c.outbound.retry_initial.0)
                    .unwrap_or_else(|_| chrono::Duration::minutes(1)),
                ..state::RetryPolicy::default()
            },
            rate_limit_per_hour: c.outbound.rate_limit_per_hour,
            alerts_to: c
                .people
                .alerts_to
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
            alert_from: c.outbound.from_support.mailbox().clone(),
            domain: c.domain.clone(),
        }
    }
}

/// The rate-limit decision for one pass (pure but for the store's counts
/// of accepted mail): which due acknowledgements may go, counting what the
/// server accepted in the last hour plus what this pass is about to send.
/// Returns, per entry, the recipient over the limit (`None`: it may go).
pub fn rate_limit_pass(
    due: &[OutboxEntry],
    per_hour: u32,
    accepted: &dyn Fn(&str) -> usize,
) -> Vec<Option<String>> {
    let mut planned: std::collections::HashMap<String, usize> = Default::default();
    due.iter()
        .map(|e| {
            if e.purpose != Purpose::Ack || per_hour == 0 {
                return None;
            }
            let keys: Vec<String> = e
                .recipients
                .iter()
                .map(|r| r.to_ascii_lowercase())
                .collect();
            let over = keys.iter().find(|r| {
                let n = planned.get(*r).copied().unwrap_or(0) + accepted(r);
                n >= per_hour as usize
            });
            if let Some(r) = over {
                return Some(r.clone());
            }
            for r in keys {
                *planned.entry(r).or_default() += 1;
            }
            None
        })
        .collect()
}

/// Deliver every pending entry that is due now. Each entry is marked
/// `sending` (durably) before the transport is called, and `sent` after;
/// deliveries run concurrently up to the transport's pool size. A result
/// is durable before its connection is handed the next mail: the sends
/// hand their results to a writer task, which writes whatever has arrived
/// in one transaction and flushes (group commit), and each send waits for
/// that before the next one starts. So a crash can resend at most one mail
/// per connection (the one the server accepted just before it).
pub async fn deliver_due<T: Transport>(
    store: &Arc<Store>,
    transport: &T,
    clock: &dyn Clock,
    policy: &OutboxPolicy,
) -> Result<DeliveryStats, StoreError> {
    use futures::StreamExt;
    let mut stats = DeliveryStats::default();
    let now = clock.now();
    let (due, waiting): (Vec<OutboxEntry>, Vec<OutboxEntry>) = store
        .outbox_pending()?
        .into_iter()
        .filter(|e| e.state == OutboxState::Queued)
        .partition(|e| e.next_attempt_at <= now);
    // Mail waiting out an earlier failure, released below if the server
    // accepts mail in this pass.
    let some_waiting = waiting.iter().any(|e| e.attempts > 0);
    if due.is_empty() {
        return Ok(stats);
    }
    // A notice no longer wanted (the case was resolved or answered after
    // it was queued) is dropped here, with an event, before it can go.
    let mut dropped = Vec::new();
    let due: Vec<OutboxEntry> = due
        .into_iter()
        .filter_map(|mut e| {
            let (Some(kind), Some(case)) = (e.notice.clone(), e.case.clone()) else {
                return Some(e);
            };
            let Ok(Some(c)) = store.case(&case) else {
                return Some(e);
            };
            match crate::workflow::still_wanted(&kind, &c) {
                Ok(()) => Some(e),
                Err(reason) => {
                    e.state = OutboxState::Suppressed;
                    e.next_attempt_at = now;
                    e.last_error = Some(format!("dropped before sending: {reason}"));
                    let ev = EventKind::NotificationDropped {
                        outbox: e.id,
                        kind,
                        reason,
                    };
                    dropped.push((e, Some((now, ev))));
                    None
                }
            }
        })
        .collect();
    if !dropped.is_empty() {
        tracing::info!(
            dropped = dropped.len(),
            "queued notices no longer wanted, not sent"
        );
        store.update_outbox_many(&dropped)?;
        store.flush().await?;
    }
    if due.is_empty() {
        return Ok(stats);
    }
    let verdicts = rate_limit_pass(&due, policy.rate_limit_per_hour, &|r| {
        store.rate_count(r, now).unwrap_or(0)
    });
    // One durable step marks the whole batch as being sent.
    let mut batch = Vec::with_capacity(due.len());
    let mut marks = Vec::with_capacity(due.len());
    let mut suppressed = Vec::new();
    for (mut e, over) in due.into_iter().zip(verdicts) {
        if let Some(r) = over {
            e.state = OutboxState::Suppressed;
            e.next_attempt_at = now;
            e.last_error = Some(format!(
                "rate limit: the server already accepted {} automatic mails to this address in the last hour",
                policy.rate_limit_per_hour
            ));
            tracing::warn!(
                outbox = e.id,
                case = e.case.as_deref().unwrap_or("-"),
                "automatic mail not sent: per-recipient rate limit"
            );
            let ev = EventKind::RateLimited {
                outbox: e.id,
                recipient: r,
            };
            suppressed.push(e.clone());
            marks.push((e, Some((now, ev))));
            stats.suppressed += 1;
            crate::observe::record(crate::observe::Event::Suppressed);
            continue;
        }
        state::begin_send(&mut e);
        marks.push((e.clone(), None));
        batch.push(e);
    }
    for chunk in marks.chunks(500) {
        store.update_outbox_many(chunk)?;
    }
    if !suppressed.is_empty() {
        alert_suppressed(store, policy, &suppressed, now)?;
    }
    store.flush().await?;
    let concurrency = transport.concurrency_hint().max(1);
    let (tx, writer) = result_writer(store.clone());
    let counts = std::sync::Mutex::new(DeliveryStats::default());
    let failures = std::sync::Mutex::new(Vec::new());
    {
        let sends = futures::stream::iter(batch.into_iter().map(|e| {
            let tx = tx.clone();
            let (counts, failures) = (&counts, &failures);
            async move {
                let started = std::time::Instant::now();
                let result = transport.send(&e).await;
                crate::failpoint::hit("after_send_before_mark");
                crate::observe::record(crate::observe::Event::Sent {
                    result: match &result {
                        Ok(_) => "sent",
                        Err(SendError::Transient(_)) => "retry_later",
                        Err(_) => "failed",
                    },
                    notice: e.notice.as_deref(),
                    took: started.elapsed(),
                });
                let now = clock.now();
                let update = settle(store, policy, e, result, now, counts, failures);
                // Durable before this connection is handed the next mail.
                let (done_tx, done_rx) = tokio::sync::oneshot::channel();
                if tx.send((update, done_tx)).is_err() {
                    return false;
                }
                matches!(done_rx.await, Ok(true))
            }
        }))
        .buffer_unordered(concurrency);
        futures::pin_mut!(sends);
        while let Some(ok) = sends.next().await {
            if !ok {
                // The writer stopped on a store error: send nothing more.
                break;
            }
        }
    }
    drop(tx);
    let c = counts.into_inner().unwrap_or_default();
    stats.sent += c.sent;
    stats.retry_later += c.retry_later;
    stats.failed += c.failed;
    writer
        .await
        .map_err(|e| StoreError::Invalid(format!("outbox writer task failed: {e}")))??;
    for e in failures.into_inner().unwrap_or_default() {
        alert_failure(store, policy, &e, now)?;
    }
    if stats.sent > 0 && some_waiting {
        stats.released = release_waiting(store, clock.now())?;
    }
    store.flush().await?;
    Ok(stats)
}

/// Record one send's result on its entry (pure but for the rate-limit
/// record of an accepted acknowledgement).
fn settle(
    store: &Store,
    policy: &OutboxPolicy,
    mut e: OutboxEntry,
    result: Result<String, SendError>,
    now: chrono::DateTime<chrono::Utc>,
    counts: &std::sync::Mutex<DeliveryStats>,
    failures: &std::sync::Mutex<Vec<OutboxEntry>>,
) -> crate::store::OutboxUpdate {
    let count = |f: &dyn Fn(&mut DeliveryStats)| {
        if let Ok(mut c) = counts.lock() {
            f(&mut c);
        }
    };
    let event = match result {
        Ok(delivered_as) => {
            state::succeeded(&mut e, now, delivered_as.clone());
            count(&|s| s.sent += 1);
            if e.purpose == Purpose::Ack {
                for r in &e.recipients {
                    if let Err(err) = store.rate_record(r, now) {
                        tracing::warn!(error = %err, "cannot record a sent mail for the rate limit");
                    }
                }
            }
            tracing::info!(
                outbox = e.id,
                case = e.case.as_deref().unwrap_or("-"),
                "mail delivered"
            );
            EventKind::MailSent {
                outbox: e.id,
                delivered_as,
            }
        }
        Err(err) => {
            let permanent = state::failed(&mut e, now, &err, &policy.retry);
            let shown = crate::logmask::mask_addresses(&err.to_string());
            if permanent {
                count(&|s| s.failed += 1);
                tracing::warn!(outbox = e.id, error = %shown, "mail failed permanently");
                if e.purpose != Purpose::StaffNotice {
                    if let Ok(mut f) = failures.lock() {
                        f.push(e.clone());
                    }
                }
            } else {
                count(&|s| s.retry_later += 1);
                // Every retry of an outage is not worth a line: the first is.
                if e.attempts <= 1 {
                    tracing::info!(outbox = e.id, error = %shown, "mail delivery deferred");
                } else {
                    tracing::debug!(outbox = e.id, attempts = e.attempts, error = %shown, "mail delivery deferred again");
                }
            }
            EventKind::MailFailed {
                outbox: e.id,
                error: err.to_string(),
                permanent,
            }
        }
    };
    // A retry's every attempt is not worth an event; the first and the
    // outcome are.
    let record_event = e.state != OutboxState::Queued || e.attempts == 1;
    (e, record_event.then_some((now, event)))
}

/// The server accepted mail: entries waiting out an earlier transient
/// failure are due again now, so mail that waited out an outage goes as
/// soon as the server is back instead of at the end of its backoff.
/// Returns how many.
pub fn release_waiting(
    store: &Store,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, StoreError> {
    let waiting: Vec<crate::store::OutboxUpdate> = store
        .outbox_pending()?
        .into_iter()
        .filter(|e| e.state == OutboxState::Queued && e.next_attempt_at > now && e.attempts > 0)
        .map(|mut e| {
            e.next_attempt_at = now;
            (e, None)
        })
        .collect();
    for chunk in waiting.chunks(500) {
        store.update_outbox_many(chunk)?;
    }
    Ok(waiting.len())
}

/// While mail waits out a transient failure and nothing is due, make the
/// one that has waited longest due now: a probe of whether the server is
/// back (its success releases the rest, see [`release_waiting`]). The
/// daemon calls this every `probe_every`. Returns whether one was made due.
pub fn probe_waiting(
    store: &Store,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, StoreError> {
    let pending = store.outbox_pending()?;
    if pending
        .iter()
        .any(|e| e.state != OutboxState::Queued || e.next_attempt_at <= now)
    {
        return Ok(false);
    }
    let Some(mut e) = pending
        .into_iter()
        .filter(|e| e.attempts > 0)
        .min_by_key(|e| e.next_attempt_at)
    else {
        return Ok(false);
    };
    e.next_attempt_at = now;
    store.update_outbox(&e, None)?;
    Ok(true)
}

type Durable = tokio::sync::oneshot::Sender<bool>;
/// Where sends hand their results, each with its durability waiter.
type ResultTx = tokio::sync::mpsc::UnboundedSender<(crate::store::OutboxUpdate, Durable)>;

/// A task that writes outbox results in the order they arrive: whatever
/// has arrived goes into one transaction, is flushed, and only then are
/// their senders told (each send waits for that). Stops when the sender is
/// dropped or a write fails.
fn result_writer(store: Arc<Store>) -> (ResultTx, tokio::task::JoinHandle<Result<(), StoreError>>) {
    let (tx, mut rx) =
        tokio::sync::mpsc::unbounded_channel::<(crate::store::OutboxUpdate, Durable)>();
    let handle = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut group = vec![first];
            // Whatever arrived meanwhile goes into the same transaction.
            while group.len() < 500 {
                match rx.try_recv() {
                    Ok(more) => group.push(more),
                    Err(_) => break,
                }
            }
            let (updates, waiters): (Vec<_>, Vec<_>) = group.into_iter().unzip();
            let s = store.clone();
            let written = tokio::task::spawn_blocking(move || s.update_outbox_many(&updates))
                .await
                .map_err(|e| StoreError::Invalid(format!("outbox write failed: {e}")))
                .and_then(|r| r);
            let flushed = match written {
                Ok(()) => store.flush().await,
                Err(e) => Err(e),
            };
            let ok = flushed.is_ok();
            for w in waiters {
                let _ = w.send(ok);
            }
            flushed?;
        }
        Ok(())
    });
    (tx, handle)
}

/// Tell the operators that automatic mail was not sent because of the
/// per-recipient rate limit (one alert per pass, listing the entries).
fn alert_suppressed(
    store: &Store,
    policy: &OutboxPolicy,
    entries: &[OutboxEntry],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    if policy.alerts_to.is_empty() || entries.is_empty() {
        return Ok(());
    }
    let subject = format!(
        "[ticketd] {} automatic mail(s) not sent: per-recipient rate limit",
        entries.len()
    );
    let mut body = format!(
        "The per-recipient rate limit ({} automatic mails accepted per address per hour) held back these mails. \
         This usually means an auto-responder or a script is writing to us in a loop; \
         the messages themselves are recorded on their cases.\n\n",
        policy.rate_limit_per_hour
    );
    for e in entries.iter().take(50) {
        body.push_str(&format!(
            "outbox {}  case {}  to {}\n",
            e.id,
            e.case.as_deref().unwrap_or("-"),
            e.recipients.join(", ")
        ));
    }
    if entries.len() > 50 {
        body.push_str(&format!("... and {} more\n", entries.len() - 50));
    }
    queue_alert(
        store,
        policy,
        None,
        &subject,
        &body,
        now,
        "automatic mail suppressed by the rate limit",
    )
}

/// Tell the operators that a mail could not be delivered.
fn alert_failure(
    store: &Store,
    policy: &OutboxPolicy,
    e: &OutboxEntry,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    if policy.alerts_to.is_empty() {
        return Ok(());
    }
    let subject = format!(
        "[ticketd] undeliverable mail{}",
        e.case
            .as_deref()
            .map(|c| format!(" for {c}"))
            .unwrap_or_default()
    );
    let body = format!(
        "Outbox entry {} ({:?}) could not be delivered and will not be retried.\nSubject: {}\nError: {}\nCase: {}\n",
        e.id,
        e.purpose,
        e.subject,
        e.last_error.as_deref().unwrap_or("-"),
        e.case.as_deref().unwrap_or("none")
    );
    let reason = format!("outbox entry {} failed permanently", e.id);
    queue_alert(
        store,
        policy,
        e.case.as_deref(),
        &subject,
        &body,
        now,
        &reason,
    )
}

/// Queue an operator alert to `people.alerts_to` (on `case`, if any).
fn queue_alert(
    store: &Store,
    policy: &OutboxPolicy,
    case: Option<&str>,
    subject: &str,
    body: &str,
    now: chrono::DateTime<chrono::Utc>,
    reason: &str,
) -> Result<(), StoreError> {
    match crate::render::build_notice(
        &policy.alert_from,
        &policy.alerts_to,
        subject,
        body,
        &format!(
            "note.{}.{}@{}",
            case.unwrap_or("ticketd"),
            crate::render::token(),
            policy.domain
        ),
        now,
    ) {
        Ok(mail) => {
            store.queue_notice(case, mail, now, reason)?;
        }
        Err(err) => tracing::warn!(error = %err, "cannot build an operator alert"),
    }
    Ok(())
}
