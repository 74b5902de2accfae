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
}

/// How the worker treats entries besides retrying them.
#[derive(Debug, Clone)]
pub struct OutboxPolicy {
    pub retry: state::RetryPolicy,
    /// Automatic mail to one requester address per rolling hour (0 = no
    /// limit). Staff mail is never limited.
    pub rate_limit_per_hour: u32,
    /// Where permanent failures are reported.
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

/// Deliver every pending entry that is due now. Each entry is marked
/// `sending` (durably) before the transport is called, and `sent` after;
/// deliveries run concurrently up to the transport's pool size, and their
/// results are written back by a writer task (one transaction per group)
/// while the next mails are being sent. Everything is flushed before this
/// returns.
pub async fn deliver_due<T: Transport>(
    store: &Arc<Store>,
    transport: &T,
    clock: &dyn Clock,
    policy: &OutboxPolicy,
) -> Result<DeliveryStats, StoreError> {
    use futures::StreamExt;
    let mut stats = DeliveryStats::default();
    let now = clock.now();
    let due: Vec<OutboxEntry> = store
        .outbox_pending()?
        .into_iter()
        .filter(|e| e.state == OutboxState::Queued && e.next_attempt_at <= now)
        .collect();
    if due.is_empty() {
        return Ok(stats);
    }
    // One durable step marks the whole batch as being sent.
    let mut batch = Vec::with_capacity(due.len());
    let mut marks = Vec::with_capacity(due.len());
    for mut e in due {
        if e.purpose == Purpose::Ack && policy.rate_limit_per_hour > 0 {
            let over = e.recipients.iter().find(|r| {
                !store
                    .rate_take(r, now, policy.rate_limit_per_hour)
                    .unwrap_or(true)
            });
            if let Some(r) = over {
                e.state = OutboxState::Suppressed;
                e.last_error = Some(format!(
                    "rate limit: more than {} automatic mails to this address in an hour",
                    policy.rate_limit_per_hour
                ));
                tracing::info!(
                    outbox = e.id,
                    "automatic mail not sent: per-recipient rate limit"
                );
                let ev = EventKind::RateLimited {
                    outbox: e.id,
                    recipient: r.clone(),
                };
                marks.push((e, Some((now, ev))));
                stats.suppressed += 1;
                continue;
            }
        }
        state::begin_send(&mut e);
        marks.push((e.clone(), None));
        batch.push(e);
    }
    for chunk in marks.chunks(500) {
        store.update_outbox_many(chunk)?;
    }
    store.flush().await?;
    let concurrency = transport.concurrency_hint().max(1);
    let results = futures::stream::iter(batch.into_iter().map(|e| async move {
        let r = transport.send(&e).await;
        (e, r)
    }))
    .buffer_unordered(concurrency)
    .ready_chunks(64);
    futures::pin_mut!(results);
    // Results go to a writer task in groups, one transaction each, so the
    // sends are not held up by the store (writing a group took ≈ 13 % of a
    // pass when done in line).
    let (tx, writer) = result_writer(store.clone());
    while let Some(done) = results.next().await {
        crate::failpoint::hit("after_send_before_mark");
        let now = clock.now();
        let mut updates = Vec::with_capacity(done.len());
        for (mut e, result) in done {
            let event = match result {
                Ok(delivered_as) => {
                    state::succeeded(&mut e, now, delivered_as.clone());
                    stats.sent += 1;
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
                    if permanent {
                        stats.failed += 1;
                        tracing::warn!(outbox = e.id, error = %err, "mail failed permanently");
                        if e.purpose != Purpose::StaffNotice {
                            alert_failure(store, policy, &e, now)?;
                        }
                    } else {
                        stats.retry_later += 1;
                        tracing::info!(outbox = e.id, error = %err, "mail delivery deferred");
                    }
                    EventKind::MailFailed {
                        outbox: e.id,
                        error: err.to_string(),
                        permanent,
                    }
                }
            };
            // A retry's every attempt is not worth an event; the first and
            // the outcome are.
            let record_event = e.state != OutboxState::Queued || e.attempts == 1;
            updates.push((e, record_event.then_some((now, event))));
        }
        if tx.send(updates).is_err() {
            // The writer stopped on a store error: send nothing more.
            break;
        }
    }
    drop(tx);
    writer
        .await
        .map_err(|e| StoreError::Invalid(format!("outbox writer task failed: {e}")))??;
    store.flush().await?;
    Ok(stats)
}

/// A task that writes groups of outbox results, in the order sent, each in
/// one transaction (on a blocking thread), until the sender is dropped or a
/// write fails.
fn result_writer(
    store: Arc<Store>,
) -> (
    tokio::sync::mpsc::UnboundedSender<Vec<crate::store::OutboxUpdate>>,
    tokio::task::JoinHandle<Result<(), StoreError>>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<crate::store::OutboxUpdate>>();
    let handle = tokio::spawn(async move {
        while let Some(mut group) = rx.recv().await {
            // Whatever arrived meanwhile goes into the same transaction.
            while group.len() < 500 {
                match rx.try_recv() {
                    Ok(more) => group.extend(more),
                    Err(_) => break,
                }
            }
            let s = store.clone();
            tokio::task::spawn_blocking(move || s.update_outbox_many(&group))
                .await
                .map_err(|e| StoreError::Invalid(format!("outbox write failed: {e}")))??;
        }
        Ok(())
    });
    (tx, handle)
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
    match crate::render::build_notice(
        &policy.alert_from,
        &policy.alerts_to,
        &subject,
        &body,
        &policy.domain,
        &crate::render::token(),
        e.case.as_deref(),
        now,
    ) {
        Ok(mail) => {
            store.queue_notice(
                e.case.as_deref(),
                mail,
                now,
                &format!("outbox entry {} failed permanently", e.id),
            )?;
        }
        Err(err) => tracing::warn!(error = %err, "cannot build failure alert"),
    }
    Ok(())
}
