//! A local Maildir source: messages are read from `new/` and moved to
//! `cur/` (with the `S` flag) only when acked, i.e. after their case is
//! durably stored. `tmp/` is never touched (deliveries in progress).
//! Receipt time is the file's modification time, which is the delivery
//! time for Maildir. A message that keeps failing is moved to
//! `quarantine/` beside them.

use super::{Envelope, Fetched, Source, SourceError};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub struct MaildirSource {
    name: String,
    root: PathBuf,
    /// Keys handed out and not yet acked, so one pass never returns the
    /// same file twice.
    in_flight: HashSet<String>,
    /// Bytes of raw mail one fetch hands out at most (see
    /// [`Source::set_fetch_bytes`]).
    fetch_bytes: u64,
}

impl MaildirSource {
    /// Open a Maildir, creating `new/`, `cur/` and `tmp/` when missing.
    pub fn open(name: &str, root: &Path) -> Result<Self, SourceError> {
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(root.join(sub)).map_err(|e| SourceError::Io {
                source_name: name.to_string(),
                context: format!("create {}", root.join(sub).display()),
                error: e,
            })?;
        }
        Ok(MaildirSource {
            name: name.to_string(),
            root: root.to_path_buf(),
            in_flight: HashSet::new(),
            fetch_bytes: u64::MAX,
        })
    }

    fn io(&self, context: String, error: std::io::Error) -> SourceError {
        SourceError::Io {
            source_name: self.name.clone(),
            context,
            error,
        }
    }
}

pub(crate) fn mtime(meta: &std::fs::Metadata) -> DateTime<Utc> {
    meta.modified()
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now())
}

impl Source for MaildirSource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn fetch(&mut self, max: usize) -> Result<Fetched, SourceError> {
        let new = self.root.join("new");
        let rd =
            std::fs::read_dir(&new).map_err(|e| self.io(format!("read {}", new.display()), e))?;
        let mut names: Vec<(DateTime<Utc>, String, u64)> = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| self.io(format!("read {}", new.display()), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || self.in_flight.contains(&name) {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) if m.is_file() => m,
                _ => continue,
            };
            names.push((mtime(&meta), name, meta.len()));
        }
        names.sort();
        let mut out = Fetched::default();
        let mut bytes = 0u64;
        for (received_at, name, len) in names.into_iter().take(max) {
            bytes = bytes.saturating_add(len);
            if bytes > self.fetch_bytes && !out.envelopes.is_empty() {
                break;
            }
            match std::fs::read(new.join(&name)) {
                Ok(raw) => {
                    self.in_flight.insert(name.clone());
                    out.envelopes.push(Envelope {
                        source: self.name.clone(),
                        key: name,
                        received_at,
                        raw,
                        original_size: None,
                    });
                }
                Err(e) => out.errors.push((name, e.to_string())),
            }
        }
        Ok(out)
    }

    fn reset(&mut self) {
        self.in_flight.clear();
    }

    fn set_fetch_bytes(&mut self, max_bytes: u64) {
        self.fetch_bytes = max_bytes.max(1);
    }

    /// Move to `DIR/quarantine/` (created when missing).
    async fn quarantine(&mut self, envs: &[Envelope]) -> Result<(), SourceError> {
        let dir = self.root.join("quarantine");
        std::fs::create_dir_all(&dir)
            .map_err(|e| self.io(format!("create {}", dir.display()), e))?;
        for env in envs {
            let from = self.root.join("new").join(&env.key);
            match std::fs::rename(&from, dir.join(&env.key)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io(format!("move {} to quarantine/", env.key), e)),
            }
            self.in_flight.remove(&env.key);
        }
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    async fn ack(&mut self, taken: &[Envelope]) -> Result<(), SourceError> {
        for env in taken {
            let from = self.root.join("new").join(&env.key);
            let base = env.key.split(':').next().unwrap_or(&env.key);
            let to = self.root.join("cur").join(format!("{base}:2,S"));
            match std::fs::rename(&from, &to) {
                Ok(()) => {}
                // Already moved (e.g. by a previous run that died after the move).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io(format!("move {} to cur/", env.key), e)),
            }
            self.in_flight.remove(&env.key);
        }
        if let Ok(d) = std::fs::File::open(self.root.join("cur")) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_hands_out_at_most_its_bytes_and_one_always() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut m = MaildirSource::open("support", d.path()).expect("open");
        for i in 0..5 {
            std::fs::write(d.path().join("new").join(format!("m{i}")), [b'x'; 1000])
                .expect("write");
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        m.set_fetch_bytes(2500);
        let f = rt.block_on(m.fetch(10)).expect("fetch");
        assert_eq!(f.envelopes.len(), 2);
        m.set_fetch_bytes(10);
        let f = rt.block_on(m.fetch(10)).expect("fetch");
        assert_eq!(f.envelopes.len(), 1, "one message always goes");
        m.set_fetch_bytes(u64::MAX);
        let f = rt.block_on(m.fetch(10)).expect("fetch");
        assert_eq!(f.envelopes.len(), 2, "the rest, none twice");
    }
}
