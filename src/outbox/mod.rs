//! Delivering the outbox: a [`Transport`] puts one mail somewhere, the
//! [`deliver_due`] worker walks the pending entries and moves each through
//! the state machine in [`state`]. Nothing is sent that is not first a
//! durable outbox entry; an entry is marked sent only after the transport
//! returned, and a resend after a crash replaces rather than duplicates
//! (the file transport names files by outbox id; SMTP recipients see the
//! same fixed Message-ID).

pub mod file;
pub mod state;

use crate::clock::Clock;
use crate::store::{EventKind, OutboxEntry, OutboxState, Store, StoreError};
use std::future::Future;

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
}

/// What one delivery pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryStats {
    pub sent: usize,
    pub retry_later: usize,
    pub failed: usize,
}

/// Deliver every pending entry that is due now. Each entry is marked
/// `sending` (durably) before the transport is called, and `sent` after.
pub async fn deliver_due<T: Transport>(
    store: &Store,
    transport: &T,
    clock: &dyn Clock,
    policy: &state::RetryPolicy,
) -> Result<DeliveryStats, StoreError> {
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
    for mut e in due {
        state::begin_send(&mut e);
        store.update_outbox(&e, None)?;
        batch.push(e);
    }
    store.flush().await?;
    for mut e in batch {
        let result = transport.send(&e).await;
        crate::failpoint::hit("after_send_before_mark");
        let now = clock.now();
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
                let permanent = state::failed(&mut e, now, &err, policy);
                if permanent {
                    stats.failed += 1;
                    tracing::warn!(outbox = e.id, error = %err, "mail failed permanently");
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
        let record_event = e.state != OutboxState::Queued || e.attempts == 1;
        store.update_outbox(&e, record_event.then_some((now, event)))?;
    }
    store.flush().await?;
    Ok(stats)
}
