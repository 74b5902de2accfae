//! Deleting the mail of an erasure or a retention run from the IMAP folder
//! ticketd moves processed mail into (I/O shell over
//! [`crate::source::imap::ImapSource::delete_taken`]).

use crate::config::{Config, SourceKind};
use crate::source::imap::ImapSource;

/// What was deleted (or would be) per mailbox, and the mailboxes that
/// could not be reached.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImapOutcome {
    pub deleted: usize,
    pub mailboxes: Vec<(String, usize)>,
    pub errors: Vec<String>,
}

/// For every IMAP mailbox of `config`: delete the taken mail with one of
/// the Message-IDs that came through it (`message_ids`: (mailbox, id)) or
/// sent from one of `from`.
pub async fn delete_processed(
    config: &Config,
    message_ids: &[(String, String)],
    from: &[String],
    dry_run: bool,
) -> ImapOutcome {
    let mut out = ImapOutcome::default();
    for mb in &config.mailboxes {
        let (SourceKind::Imap, Some(settings)) = (mb.source, mb.imap.as_ref()) else {
            continue;
        };
        let ids: Vec<String> = message_ids
            .iter()
            .filter(|(m, _)| m == &mb.name)
            .map(|(_, i)| i.clone())
            .collect();
        if ids.is_empty() && from.is_empty() {
            continue;
        }
        let mut src = ImapSource::new(&mb.name, settings.clone(), None);
        match src.delete_taken(&ids, from, dry_run).await {
            Ok(n) => {
                out.deleted += n;
                out.mailboxes.push((mb.name.clone(), n));
            }
            Err(e) => out
                .errors
                .push(crate::logmask::mask_addresses(&e.to_string())),
        }
    }
    out
}

/// [`delete_processed`] from synchronous code (the scheduler): on a thread
/// of its own with its own runtime, whatever runtime the caller is in.
pub fn delete_processed_blocking(
    config: &Config,
    message_ids: &[(String, String)],
    from: &[String],
) -> ImapOutcome {
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(delete_processed(config, message_ids, from, false)),
                Err(e) => ImapOutcome {
                    errors: vec![format!("cannot start a runtime for IMAP: {e}")],
                    ..ImapOutcome::default()
                },
            }
        });
        h.join().unwrap_or_else(|_| ImapOutcome {
            errors: vec!["IMAP deletion thread panicked".into()],
            ..ImapOutcome::default()
        })
    })
}
