//! Where messages come from. A [`Source`] hands out batches of
//! [`Envelope`]s it has not yet been told are taken, and takes them (moves
//! or flags them) only when [`Source::ack`] is called — which the pipeline
//! does only after the store has flushed their cases. The IMAP source will
//! sit behind the same trait: [`imap::ImapSource`].

pub mod files;
pub mod imap;
pub mod maildir;

use chrono::{DateTime, Utc};
use std::future::Future;

/// One message as it came from a source.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Source name (the mailbox name, or `import`).
    pub source: String,
    /// Where the message is in its source (Maildir file name, path, UID).
    pub key: String,
    /// Arrival time at our server (Maildir delivery time, IMAP INTERNALDATE);
    /// never the sender's `Date` header.
    pub received_at: DateTime<Utc>,
    pub raw: Vec<u8>,
    /// Set when the message was over the per-message size limit and only
    /// its header was fetched: the size of the whole original.
    pub original_size: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{source_name}: {context}: {error}")]
    Io {
        source_name: String,
        context: String,
        #[source]
        error: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

pub trait Source: Send {
    fn name(&self) -> &str;
    /// Up to `max` messages not yet taken, oldest first. A message whose
    /// bytes cannot be read is reported in the returned errors and left
    /// where it is (never lost, retried on the next pass).
    fn fetch(&mut self, max: usize) -> impl Future<Output = Result<Fetched, SourceError>> + Send;
    /// Take these messages from the source. Called only after their cases
    /// are durable.
    fn ack(&mut self, taken: &[Envelope]) -> impl Future<Output = Result<(), SourceError>> + Send;
    /// Take `taken` (as [`Source::ack`]) and fetch up to `max` more (as
    /// [`Source::fetch`]); the fetch is skipped when the take fails. A
    /// source that can do both at once (IMAP, with a second session while
    /// it drains a backlog) overrides this.
    fn ack_and_fetch(
        &mut self,
        taken: &[Envelope],
        max: usize,
    ) -> impl Future<Output = (Result<(), SourceError>, Result<Fetched, SourceError>)> + Send {
        async move {
            let acked = self.ack(taken).await;
            if acked.is_err() {
                return (acked, Ok(Fetched::default()));
            }
            (acked, self.fetch(max).await)
        }
    }
    /// From now on a fetch hands out at most `max_bytes` of raw mail (one
    /// message always goes, however large); the rest waits in the source
    /// for the next fetch. Sources that know sizes before reading (Maildir,
    /// IMAP) honour it; the default ignores it.
    fn set_fetch_bytes(&mut self, _max_bytes: u64) {}
    /// Wait until new mail may be there (IMAP IDLE), at most `max`.
    fn wait(
        &mut self,
        max: std::time::Duration,
    ) -> impl Future<Output = Result<(), SourceError>> + Send {
        async move {
            tokio::time::sleep(max).await;
            Ok(())
        }
    }
    /// Move messages that keep failing aside (a quarantine folder or
    /// directory), after their error records are durable, so the mail
    /// behind them flows. Sources without a place for them take them as
    /// [`Source::ack`] does.
    fn quarantine(
        &mut self,
        envs: &[Envelope],
    ) -> impl Future<Output = Result<(), SourceError>> + Send {
        self.ack(envs)
    }
    /// Forget messages handed out but not acked (they are tried again).
    fn reset(&mut self) {}
}

/// A batch from [`Source::fetch`].
#[derive(Debug, Default)]
pub struct Fetched {
    pub envelopes: Vec<Envelope>,
    /// Messages that could not be read this time (key, error).
    pub errors: Vec<(String, String)>,
}
