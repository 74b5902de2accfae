//! The embedded default transport: each outbox entry becomes
//! `DIR/outbox-<id>.eml`, written atomically (temporary file, fsync, rename,
//! fsync of the directory), so a resend after a crash replaces the file
//! rather than adding a second one.

use super::{SendError, Transport};
use crate::store::OutboxEntry;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct FileTransport {
    dir: PathBuf,
}

impl FileTransport {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileTransport { dir: dir.into() }
    }

    /// The file an outbox entry is written to.
    pub fn path_for(dir: &Path, id: u64) -> PathBuf {
        dir.join(format!("outbox-{id:010}.eml"))
    }

    fn write(&self, entry: &OutboxEntry) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let target = Self::path_for(&self.dir, entry.id);
        let tmp = self.dir.join(format!(".outbox-{:010}.eml.tmp", entry.id));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(entry.mail.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &target)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(target)
    }
}

impl Transport for FileTransport {
    async fn send(&self, entry: &OutboxEntry) -> Result<String, SendError> {
        let this = self.clone();
        let entry = entry.clone();
        match tokio::task::spawn_blocking(move || this.write(&entry)).await {
            Ok(Ok(path)) => Ok(path.display().to_string()),
            Ok(Err(e)) => Err(SendError::Transient(format!("cannot write mail file: {e}"))),
            Err(e) => Err(SendError::Transient(format!("writer task failed: {e}"))),
        }
    }
}
