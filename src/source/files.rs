//! `ticketd import`: messages from `.eml` files, Maildirs (both `new/` and
//! `cur/`) and mbox files. Import reads only; it never moves or changes its
//! input. Directories that are not Maildirs are walked for files.

use super::Envelope;
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
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&d)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        entries.sort();
        for e in entries {
            if e.is_dir() {
                if !is_maildir && e.file_name().is_some_and(|n| n != "tmp") {
                    walk(&e, out)?;
                }
            } else if e.is_file() {
                out.push(if is_mbox(&e)? {
                    Input::Mbox(e)
                } else {
                    Input::File(e)
                });
            }
        }
    }
    Ok(())
}

fn is_mbox(p: &Path) -> std::io::Result<bool> {
    let mut head = [0u8; 5];
    let mut f = std::fs::File::open(p)?;
    let n = f.read(&mut head)?;
    Ok(n == 5 && &head == b"From ")
}

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

/// Read the messages of one input. `f` is called per message; a read error
/// is returned after the messages read so far.
pub fn read_input(input: &Input, mut f: impl FnMut(Envelope)) -> std::io::Result<()> {
    match input {
        Input::File(p) => {
            let meta = std::fs::metadata(p)?;
            let raw = std::fs::read(p)?;
            f(Envelope {
                source: "import".into(),
                key: p.display().to_string(),
                received_at: super::maildir::mtime(&meta),
                raw,
                original_size: None,
            });
            Ok(())
        }
        Input::Mbox(p) => {
            let meta = std::fs::metadata(p)?;
            let fallback = super::maildir::mtime(&meta);
            let reader = BufReader::new(std::fs::File::open(p)?);
            read_mbox(reader, p, fallback, f)
        }
    }
}

fn read_mbox<R: BufRead>(
    reader: R,
    p: &Path,
    fallback: DateTime<Utc>,
    mut f: impl FnMut(Envelope),
) -> std::io::Result<()> {
    for (i, m) in mail_parser::mailbox::mbox::MessageIterator::new(reader).enumerate() {
        let m = m?;
        let ts = m.internal_date();
        let received_at = i64::try_from(ts)
            .ok()
            .filter(|t| *t > 0)
            .and_then(|t| Utc.timestamp_opt(t, 0).single())
            .unwrap_or(fallback);
        f(Envelope {
            source: "import".into(),
            key: format!("{}#{}", p.display(), i + 1),
            received_at,
            raw: m.unwrap_contents(),
            original_size: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_messages_are_counted_by_their_from_lines() {
        let mbox = b"From a@example Mon Jan  1 00:00:00 2026\nSubject: one\n\nbody\n>From quoted\n\nFrom b@example Mon Jan  1 00:00:01 2026\nSubject: two\n\nx\n";
        assert_eq!(count_mbox(&mbox[..]), 2);
        assert_eq!(count_mbox(&b""[..]), 0);
    }
}
