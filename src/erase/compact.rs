//! Erased must mean gone from disk: sled is log-structured and keeps old
//! values in its segments until it rewrites them. An erasure therefore ends
//! by exporting every tree into a fresh sled database in a sibling
//! directory (`store.compact`), syncing it, and swapping the directories
//! (`store` → `store.old`, `store.compact` → `store`, `store.old` deleted),
//! all under the store lock.
//!
//! A marker file (`store.compact.done`, written once the new copy is
//! complete and synced) makes the swap recoverable: [`recover`], called by
//! `Store::open`, finishes a swap that has the marker and throws away a
//! copy that has none.

use crate::store::Store;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const STORE: &str = "store";
const NEW: &str = "store.compact";
const OLD: &str = "store.old";
const DONE: &str = "store.compact.done";

#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error("compaction: {0}")]
    Io(#[from] io::Error),
    #[error("compaction: sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("compaction: the copy of tree {tree} has {copied} entries, the store {expected}; the store was left as it was")]
    Mismatch {
        tree: String,
        copied: usize,
        expected: usize,
    },
}

/// What the compaction did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Compacted {
    pub trees: usize,
    pub entries: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Rewrite `store` into a fresh directory and swap it in; the store is
/// closed afterwards (its lock is held until this returns).
pub fn compact(store: Store) -> Result<Compacted, CompactError> {
    let dir = store.data_dir().to_path_buf();
    let old_path = dir.join(STORE);
    let new_path = dir.join(NEW);
    let _ = std::fs::remove_file(dir.join(DONE));
    if new_path.exists() {
        std::fs::remove_dir_all(&new_path)?;
    }
    let bytes_before = dir_size(&old_path);
    store
        .flush_blocking()
        .map_err(|e| io::Error::other(e.to_string()))?;
    let (trees, entries) = {
        let new = sled::Config::new()
            .path(&new_path)
            .cache_capacity(crate::store::DEFAULT_CACHE_CAPACITY)
            .open()?;
        // Tree by tree, in batches (sled's own export/import panics on
        // an I/O error; this returns it).
        for name in store.db().tree_names() {
            let from = store.db().open_tree(&name)?;
            let to = new.open_tree(&name)?;
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for kv in from.iter() {
                let (k, v) = kv?;
                batch.insert(k, v);
                n += 1;
                if n % 1024 == 0 {
                    to.apply_batch(std::mem::take(&mut batch))?;
                }
            }
            to.apply_batch(batch)?;
        }
        new.flush()?;
        let mut trees = 0;
        let mut entries = 0;
        for name in store.db().tree_names() {
            let expected = store.db().open_tree(&name)?.len();
            let copied = new.open_tree(&name)?.len();
            if copied != expected {
                drop(new);
                let _ = std::fs::remove_dir_all(&new_path);
                return Err(CompactError::Mismatch {
                    tree: String::from_utf8_lossy(&name).into_owned(),
                    copied,
                    expected,
                });
            }
            trees += 1;
            entries += copied;
        }
        (trees, entries)
    };
    wait_unlocked(&new_path.join("db"))?;
    let lock = store.close_keep_lock();
    wait_unlocked(&old_path.join("db"))?;
    sync_tree(&new_path)?;
    File::create(dir.join(DONE))?.sync_all()?;
    sync_dir(&dir)?;
    std::fs::rename(&old_path, dir.join(OLD))?;
    std::fs::rename(&new_path, &old_path)?;
    sync_dir(&dir)?;
    std::fs::remove_dir_all(dir.join(OLD))?;
    std::fs::remove_file(dir.join(DONE))?;
    sync_dir(&dir)?;
    drop(lock);
    Ok(Compacted {
        trees,
        entries,
        bytes_before,
        bytes_after: dir_size(&old_path),
    })
}

/// Finish or undo a compaction a crash interrupted (see the module doc).
pub fn recover(dir: &Path) -> io::Result<()> {
    let (store, new, old, done) = (
        dir.join(STORE),
        dir.join(NEW),
        dir.join(OLD),
        dir.join(DONE),
    );
    if done.exists() {
        if new.exists() && store.exists() && !old.exists() {
            std::fs::rename(&store, &old)?;
        }
        if new.exists() && !store.exists() {
            std::fs::rename(&new, &store)?;
        }
        sync_dir(dir)?;
        if old.exists() && store.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::remove_file(&done)?;
        sync_dir(dir)?;
    } else {
        if new.exists() {
            std::fs::remove_dir_all(&new)?;
        }
        if old.exists() && store.exists() {
            std::fs::remove_dir_all(&old)?;
        } else if old.exists() {
            std::fs::rename(&old, &store)?;
        }
    }
    Ok(())
}

/// sled's background threads of a just-dropped database hold its file
/// lock for a few milliseconds more; wait for them (as `Store::open`
/// does), so nothing writes into a directory being moved.
pub(crate) fn wait_unlocked(db_file: &Path) -> io::Result<()> {
    use fs2::FileExt;
    let start = Instant::now();
    loop {
        let f = match File::open(db_file) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if f.try_lock_exclusive().is_ok() {
            let _ = FileExt::unlock(&f);
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(io::Error::other(format!(
                "{} is still locked by sled after 10 s",
                db_file.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn dir_size(dir: &Path) -> u64 {
    files(dir)
        .iter()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// fsync every file under `dir` and the directories themselves.
fn sync_tree(dir: &Path) -> io::Result<()> {
    for f in files(dir) {
        File::open(&f)?.sync_all()?;
        if let Some(parent) = f.parent() {
            sync_dir(parent)?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(dir: &Path, name: &str, content: &str) {
        std::fs::create_dir_all(dir.join(name)).expect("mkdir");
        std::fs::write(dir.join(name).join("db"), content).expect("write");
    }

    fn db(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(STORE).join("db")).expect("store/db")
    }

    #[test]
    fn recovery_finishes_a_marked_swap_and_drops_an_unmarked_copy() {
        // Copy complete and marked, swap not begun.
        let d = tempfile::tempdir().expect("tempdir");
        mk(d.path(), STORE, "old");
        mk(d.path(), NEW, "new");
        std::fs::write(d.path().join(DONE), "").expect("marker");
        recover(d.path()).expect("recover");
        assert_eq!(db(d.path()), "new");
        assert!(!d.path().join(NEW).exists() && !d.path().join(OLD).exists());
        assert!(!d.path().join(DONE).exists());
        // Crash between the two renames.
        let d = tempfile::tempdir().expect("tempdir");
        mk(d.path(), OLD, "old");
        mk(d.path(), NEW, "new");
        std::fs::write(d.path().join(DONE), "").expect("marker");
        recover(d.path()).expect("recover");
        assert_eq!(db(d.path()), "new");
        assert!(!d.path().join(OLD).exists());
        // Copy not complete: the store stays as it was.
        let d = tempfile::tempdir().expect("tempdir");
        mk(d.path(), STORE, "old");
        mk(d.path(), NEW, "partial");
        recover(d.path()).expect("recover");
        assert_eq!(db(d.path()), "old");
        assert!(!d.path().join(NEW).exists());
        // Nothing to do.
        recover(d.path()).expect("recover");
        assert_eq!(db(d.path()), "old");
    }

    #[test]
    fn compaction_leaves_no_removed_value_on_disk() {
        let d = tempfile::tempdir().expect("tempdir");
        let store = Store::open(d.path()).expect("open");
        for i in 0..50u64 {
            store
                .t
                .raw
                .insert(i.to_be_bytes(), format!("keep-{i} ").repeat(50).as_bytes())
                .expect("insert");
        }
        store
            .t
            .raw
            .insert(999u64.to_be_bytes(), b"secret-okapi-9911".to_vec())
            .expect("insert");
        store.flush_blocking().expect("flush");
        store.t.raw.remove(999u64.to_be_bytes()).expect("remove");
        store.flush_blocking().expect("flush");
        let scan = |needle: &[u8]| {
            let mut hit = false;
            for f in files(d.path()) {
                let b = std::fs::read(&f).unwrap_or_default();
                hit |= b.windows(needle.len()).any(|w| w == needle);
            }
            hit
        };
        assert!(scan(b"secret-okapi-9911"), "sled keeps the old value");
        let c = compact(store).expect("compact");
        assert!(c.entries >= 50);
        assert!(!scan(b"secret-okapi-9911"));
        assert!(!d.path().join(OLD).exists() && !d.path().join(NEW).exists());
        let store = Store::open(d.path()).expect("reopen");
        assert_eq!(store.t.raw.len(), 50);
        assert!(store.raw(7).expect("raw").is_some());
    }
}
