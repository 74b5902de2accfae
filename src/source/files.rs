//! `ticketd import`: messages from `.eml` files, Maildirs (both `new/` and
//! `cur/`) and mbox files. Import reads only; it never moves or changes its
//! input. Directories that are not Maildirs are walked for files.

use super::{Envelope, Fetched, Source, SourceError};
use chrono::{DateTime, TimeZone, Utc};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// One input unit found under the paths given to `import`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// One message per file.
    File(PathBuf),
    /// Many messages in one mbox file.
    Mbox(PathBuf),
}

/// Expand paths into inputs. Errors (missing path) are returned per path.
pub fn discover(paths: &[PathBuf]) -> (Vec<Input>, Vec<(PathBuf, String)>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if let Err(e) = walk(p, &mut out) {
            errors.push((p.clone(), e.to_string()));
        }
    }
    (out, errors)
}

fn walk(p: &Path, out: &mut Vec<Input>) -> std::io::Result<()> {
    let meta = std::fs::metadata(p)?;
    if meta.is_file() {
        out.push(if is_mbox(p)? {
            Input::Mbox(p.to_path_buf())
        } else {
            Input::File(p.to_path_buf())
        });
        return Ok(());
    }
    let is_maildir = p.join("cur").is_dir() && p.join("new").is_dir();
    let subdirs: Vec<PathBuf> = if is_maildir {
        vec![p.join("cur"), p.join("new")]
    } else {
        vec![p.to_path_buf()]
    };
    for d in subdirs {
        // The entry's type from the directory itself (no stat per file on
        // most file systems); a symbolic link is followed.
        let mut entries: Vec<(PathBuf, std::fs::FileType)> = std::fs::read_dir(&d)?
            .filter_map(|e| {
                let e = e.ok()?;
                let ty = e.file_type().ok()?;
                let ty = if ty.is_symlink() {
                    std::fs::metadata(e.path()).ok()?.file_type()
                } else {
                    ty
                };
                Some((e.path(), ty))
            })
            .filter(|(p, _)| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (e, ty) in entries {
            if ty.is_dir() {
                if !is_maildir && e.file_name().is_some_and(|n| n != "tmp") {
                    walk(&e, out)?;
                }
            } else if ty.is_file() {
                // Not opened here: an mbox among the files of a directory
                // is recognised when it is read (one open a file).
                out.push(Input::File(e));
            }
        }
    }
    Ok(())
}

fn is_mbox(p: &Path) -> std::io::Result<bool> {
    let mut head = Vec::with_capacity(MBOX_HEAD.len());
    std::fs::File::open(p)?
        .take(MBOX_HEAD.len() as u64)
        .read_to_end(&mut head)?;
    Ok(head == MBOX_HEAD)
}

/// How an mbox file starts (and a single message never does).
const MBOX_HEAD: &[u8] = b"From ";

/// Total bytes of the inputs (for the progress bar).
pub fn total_bytes(inputs: &[Input]) -> u64 {
    inputs
        .iter()
        .map(|i| match i {
            Input::File(p) | Input::Mbox(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// How many messages the inputs hold (an mbox counts its `From ` lines),
/// for the import progress bar; an unreadable input counts as one.
pub fn count_messages(inputs: &[Input]) -> u64 {
    inputs
        .iter()
        .map(|i| match i {
            Input::File(_) => 1,
            Input::Mbox(p) => std::fs::File::open(p)
                .map(|f| count_mbox(BufReader::new(f)))
                .unwrap_or(1),
        })
        .sum()
}

fn count_mbox<R: BufRead>(mut reader: R) -> u64 {
    let mut n = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return n,
            Ok(_) if line.starts_with(b"From ") => n += 1,
            Ok(_) => {}
        }
    }
}

type MboxMessages = mail_parser::mailbox::mbox::MessageIterator<BufReader<std::fs::File>>;

/// What an [`ImportSource`] tells its caller as it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// This many messages were stored (made durable).
    Taken(u64),
    /// An input counted as one message turned out to be an mbox holding
    /// this many more.
    More(u64),
}

/// An mbox file being read: its messages one at a time.
struct OpenMbox {
    path: PathBuf,
    messages: MboxMessages,
    fallback: DateTime<Utc>,
    next: usize,
}

/// The inputs of an import as a [`Source`], so that an import stores
/// exactly as a drain does (the same overlapping stages and in-flight
/// limits). Reads lazily, an mbox message by message, so memory does not
/// grow with the input. Taking a message does nothing to the input (import
/// never changes it); it only reports [`Progress::Taken`]. A file found in
/// a directory is opened once: read as one message, or as an mbox when it
/// starts with `From ` (then [`Progress::More`] says how many more).
pub struct ImportSource<P> {
    inputs: std::vec::IntoIter<Input>,
    mbox: Option<OpenMbox>,
    fetch_bytes: u64,
    progress: P,
}

impl<P: FnMut(Progress) + Send> ImportSource<P> {
    pub fn new(inputs: Vec<Input>, progress: P) -> ImportSource<P> {
        ImportSource {
            inputs: inputs.into_iter(),
            mbox: None,
            fetch_bytes: u64::MAX,
            progress,
        }
    }

    /// The next message, or `None` when every input is read. An input that
    /// cannot be read goes into `errors` and the next one is tried.
    fn next_message(&mut self, errors: &mut Vec<(String, String)>) -> Option<Envelope> {
        loop {
            if let Some(m) = &mut self.mbox {
                let key = format!("{}#{}", m.path.display(), m.next + 1);
                match m.messages.next() {
                    Some(Ok(msg)) => {
                        m.next += 1;
                        let received_at = i64::try_from(msg.internal_date())
                            .ok()
                            .filter(|t| *t > 0)
                            .and_then(|t| Utc.timestamp_opt(t, 0).single())
                            .unwrap_or(m.fallback);
                        return Some(Envelope {
                            source: "import".into(),
                            key,
                            received_at,
                            raw: msg.unwrap_contents(),
                            original_size: None,
                        });
                    }
                    Some(Err(e)) => errors.push((key, e.to_string())),
                    None => {}
                }
                // The end of the mbox, or a read error that ends it.
                self.mbox = None;
            }
            let (p, counted) = match self.inputs.next()? {
                Input::File(p) => (p, false),
                Input::Mbox(p) => (p, true),
            };
            match read_file(&p) {
                Ok(Opened::Message(meta, raw)) => {
                    return Some(Envelope {
                        source: "import".into(),
                        key: p.display().to_string(),
                        received_at: super::maildir::mtime(&meta),
                        raw,
                        original_size: None,
                    })
                }
                Ok(Opened::Mbox(meta, f)) => {
                    if !counted {
                        let n = std::fs::File::open(&p)
                            .map(|f| count_mbox(BufReader::new(f)))
                            .unwrap_or(1);
                        (self.progress)(Progress::More(n.saturating_sub(1)));
                    }
                    self.mbox = Some(OpenMbox {
                        messages: MboxMessages::new(BufReader::new(f)),
                        fallback: super::maildir::mtime(&meta),
                        next: 0,
                        path: p,
                    })
                }
                Err(e) => errors.push((p.display().to_string(), e.to_string())),
            }
        }
    }
}

/// A file opened for import: one message, or an mbox to read on.
enum Opened {
    Message(std::fs::Metadata, Vec<u8>),
    Mbox(std::fs::Metadata, std::fs::File),
}

/// Open `p` once: an mbox (it starts with `From `) is handed back at its
/// start, anything else is read whole as one message.
fn read_file(p: &Path) -> std::io::Result<Opened> {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::File::open(p)?;
    let meta = f.metadata()?;
    let mut raw = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    (&mut f)
        .take(MBOX_HEAD.len() as u64)
        .read_to_end(&mut raw)?;
    if raw == MBOX_HEAD {
        f.seek(SeekFrom::Start(0))?;
        return Ok(Opened::Mbox(meta, f));
    }
    f.read_to_end(&mut raw)?;
    Ok(Opened::Message(meta, raw))
}

impl<P: FnMut(Progress) + Send> Source for ImportSource<P> {
    fn name(&self) -> &str {
        "import"
    }

    async fn fetch(&mut self, max: usize) -> Result<Fetched, SourceError> {
        let mut out = Fetched::default();
        let mut bytes = 0u64;
        while out.envelopes.len() < max {
            let Some(env) = self.next_message(&mut out.errors) else {
                break;
            };
            bytes = bytes.saturating_add(env.raw.len() as u64);
            out.envelopes.push(env);
            if bytes >= self.fetch_bytes {
                break;
            }
        }
        Ok(out)
    }

    async fn ack(&mut self, taken: &[Envelope]) -> Result<(), SourceError> {
        if !taken.is_empty() {
            (self.progress)(Progress::Taken(taken.len() as u64));
        }
        Ok(())
    }

    fn set_fetch_bytes(&mut self, max_bytes: u64) {
        self.fetch_bytes = max_bytes.max(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn import_source_reads_files_and_mboxes_lazily_and_reports_what_it_cannot_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("a.eml"), b"Subject: one\r\n\r\nbody\r\n").expect("write");
        std::fs::write(
            d.join("b.mbox"),
            b"From x@example Mon Jan  1 00:00:00 2026\nSubject: two\n\nx\n\nFrom y@example Mon Jan  1 00:00:01 2026\nSubject: three\n\ny\n",
        )
        .expect("write");
        let (mut inputs, errors) = discover(&[d.to_path_buf()]);
        assert!(errors.is_empty(), "{errors:?}");
        // Files of a directory are not opened to count them: the mbox
        // says how many more it holds when it is read.
        assert_eq!(count_messages(&inputs), 2);
        // A file that vanished between discovery and reading.
        inputs.insert(0, Input::File(d.join("gone.eml")));
        let (mut taken, mut more) = (0, 0);
        let mut src = ImportSource::new(inputs, |step| match step {
            Progress::Taken(n) => taken += n,
            Progress::More(n) => more += n,
        });
        let first = src.fetch(2).await.expect("fetch");
        assert_eq!(first.errors.len(), 1, "{:?}", first.errors);
        assert!(first.errors[0].0.ends_with("gone.eml"));
        let keys: Vec<&str> = first.envelopes.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys.len(), 2);
        assert!(
            keys[0].ends_with("a.eml") && keys[1].ends_with("b.mbox#1"),
            "{keys:?}"
        );
        src.set_fetch_bytes(1);
        let second = src.fetch(10).await.expect("fetch");
        // One message always goes, however small the byte limit.
        assert_eq!(second.envelopes.len(), 1);
        assert!(second.envelopes[0].key.ends_with("b.mbox#2"));
        assert!(String::from_utf8_lossy(&second.envelopes[0].raw).contains("three"));
        assert!(src.fetch(10).await.expect("fetch").envelopes.is_empty());
        src.ack(&first.envelopes).await.expect("ack");
        src.ack(&second.envelopes).await.expect("ack");
        drop(src);
        assert_eq!((taken, more), (3, 1));
        // A path given itself is an mbox counted whole before it is read.
        let (inputs, _) = discover(&[d.join("b.mbox")]);
        assert_eq!(inputs, vec![Input::Mbox(d.join("b.mbox"))]);
        assert_eq!(count_messages(&inputs), 2);
    }

    #[test]
    fn mbox_messages_are_counted_by_their_from_lines() {
        let mbox = b"From a@example Mon Jan  1 00:00:00 2026\nSubject: one\n\nbody\n>From quoted\n\nFrom b@example Mon Jan  1 00:00:01 2026\nSubject: two\n\nx\n";
        assert_eq!(count_mbox(&mbox[..]), 2);
        assert_eq!(count_mbox(&b""[..]), 0);
    }
}
