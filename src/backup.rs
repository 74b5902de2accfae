//! `ticketd backup FILE` and `ticketd restore FILE`: one file holding every
//! sled tree's keys and values, the thread-key file and a manifest.
//!
//! The snapshot is consistent: [`write`] holds the store's write gate
//! ([`Store::quiesce`]) while it reads the trees, so no transaction lands
//! half in the copy. A running daemon writes the file itself (the control
//! request `backup`); with the daemon stopped the CLI opens the store.
//!
//! Format (version 1; integers big-endian; no compression):
//!
//! ```text
//! MAGIC (16 bytes: "ticketd-backup\0\x01")
//! records:  'T' u32 len, tree name          (the entries that follow are in it)
//!           'E' u32 len, key, u64 len, value
//!           'F' u32 len, file name, u64 len, bytes   (a file of the data dir)
//!           'M' u64 len, manifest JSON        (last record)
//! trailer:  32 bytes, BLAKE3 of everything before it
//! ```
//!
//! The manifest ([`Manifest`]) carries the schema version, the time, the
//! entry count of every tree and the BLAKE3 of the records before it (up
//! to and including its own `M`).
//! [`restore`] checks the whole file first (checksums, counts, schema), then
//! builds the store in `DATA_DIR/store.restoring`, checks its counts, and
//! renames it into place; it works only into an empty data directory.

use crate::store::{schema, Store, StoreError, SCHEMA_VERSION};
use crate::workflow::token::KEY_FILE;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 16] = b"ticketd-backup\0\x01";
/// The format version written.
pub const FORMAT: u32 = 1;
/// Where a restore builds the store before moving it into place.
const STAGING: &str = "store.restoring";
/// Files of the data directory that go into a backup.
const FILES: &[&str] = &[KEY_FILE];

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("{path} is not a usable ticketd backup: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{0}")]
    Refused(String),
}

type Result<T, E = BackupError> = std::result::Result<T, E>;

/// What a backup holds (the last record of the file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: u32,
    pub ticketd_version: String,
    pub schema_version: u64,
    pub created_at: DateTime<Utc>,
    /// Entries per tree.
    pub trees: BTreeMap<String, u64>,
    pub entries: u64,
    /// Files of the data directory included (the thread key).
    pub files: Vec<String>,
    /// `blake3:<hex>` of the file up to and including the manifest's tag.
    pub checksum: String,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A writer that hashes what passes through.
struct Hashing<W> {
    inner: W,
    hash: blake3::Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn put_u32_bytes(w: &mut impl Write, b: &[u8]) -> io::Result<()> {
    let n = u32::try_from(b.len()).map_err(|_| io::Error::other("key longer than 4 GiB"))?;
    w.write_all(&n.to_be_bytes())?;
    w.write_all(b)
}

fn put_u64_bytes(w: &mut impl Write, b: &[u8]) -> io::Result<()> {
    w.write_all(&(b.len() as u64).to_be_bytes())?;
    w.write_all(b)
}

/// Write a consistent backup of `store` to `path` (through `path.tmp`,
/// synced, then renamed; mode 0600). Refuses an existing file unless
/// `overwrite`.
pub fn write(store: &Store, path: &Path, overwrite: bool) -> Result<Manifest> {
    if path.exists() && !overwrite {
        return Err(BackupError::Refused(format!(
            "{} already exists; choose another name or pass --force",
            path.display()
        )));
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let file = o.open(&tmp).map_err(io_err(&tmp))?;
    let res = write_to(store, file, &tmp);
    let manifest = match res {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(manifest)
}

fn write_to(store: &Store, file: File, path: &Path) -> Result<Manifest> {
    let mut w = Hashing {
        inner: BufWriter::with_capacity(1 << 20, file),
        hash: blake3::Hasher::new(),
    };
    let e = io_err(path);
    w.write_all(MAGIC).map_err(io_err(path))?;
    let mut trees = BTreeMap::new();
    let mut entries = 0u64;
    let schema_version;
    {
        // Every tree at one instant: writers wait for the gate.
        let _q = store.quiesce();
        schema_version = schema::recorded(&store.t.meta)?.unwrap_or(schema::UNVERSIONED);
        let mut names = store.db().tree_names();
        names.sort();
        for name in names {
            let tree = store.db().open_tree(&name)?;
            let mut w_rec = || -> Result<u64> {
                w.write_all(b"T").map_err(io_err(path))?;
                put_u32_bytes(&mut w, &name).map_err(io_err(path))?;
                let mut n = 0u64;
                for kv in tree.iter() {
                    let (k, v) = kv?;
                    w.write_all(b"E").map_err(io_err(path))?;
                    put_u32_bytes(&mut w, &k).map_err(io_err(path))?;
                    put_u64_bytes(&mut w, &v).map_err(io_err(path))?;
                    n += 1;
                }
                Ok(n)
            };
            let n = w_rec()?;
            entries += n;
            trees.insert(String::from_utf8_lossy(&name).into_owned(), n);
        }
    }
    let mut files = Vec::new();
    for name in FILES {
        let p = store.data_dir().join(name);
        match std::fs::read(&p) {
            Ok(bytes) => {
                w.write_all(b"F").map_err(io_err(path))?;
                put_u32_bytes(&mut w, name.as_bytes()).map_err(io_err(path))?;
                put_u64_bytes(&mut w, &bytes).map_err(io_err(path))?;
                files.push((*name).to_string());
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_err(&p)(err)),
        }
    }
    // The manifest's checksum covers everything up to its own tag.
    w.write_all(b"M").map_err(io_err(path))?;
    let manifest = Manifest {
        format: FORMAT,
        ticketd_version: env!("CARGO_PKG_VERSION").to_string(),
        schema_version,
        created_at: Utc::now(),
        trees,
        entries,
        files,
        checksum: format!("blake3:{}", w.hash.finalize().to_hex()),
    };
    let json = serde_json::to_vec(&manifest).map_err(|x| e(io::Error::other(x)))?;
    put_u64_bytes(&mut w, &json).map_err(io_err(path))?;
    let trailer = *w.hash.finalize().as_bytes();
    let Hashing { inner, .. } = w;
    let mut inner = inner;
    inner.write_all(&trailer).map_err(io_err(path))?;
    let file = inner
        .into_inner()
        .map_err(|x| io_err(path)(x.into_error()))?;
    file.sync_all().map_err(io_err(path))?;
    Ok(manifest)
}

/// One record of a backup, as [`read`] hands it over.
pub enum Record {
    Tree(Vec<u8>),
    Entry(Vec<u8>, Vec<u8>),
    File(String, Vec<u8>),
}

/// A reader that hashes what it reads and knows how much is left.
struct Src {
    inner: BufReader<File>,
    hash: blake3::Hasher,
    left: u64,
}

impl Src {
    fn bytes(&mut self, n: u64) -> io::Result<Vec<u8>> {
        if n > self.left {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "a length runs past the end of the file",
            ));
        }
        let mut b = vec![0u8; n as usize];
        self.inner.read_exact(&mut b)?;
        self.hash.update(&b);
        self.left -= n;
        Ok(b)
    }
    fn u32(&mut self) -> io::Result<u64> {
        let b = self.bytes(4)?;
        Ok(u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
    }
    fn u64(&mut self) -> io::Result<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(u64::from_be_bytes(a))
    }
}

/// Read and check a whole backup, handing every record to `visit`.
/// Returns the manifest once the checksums, the counts and the end of the
/// file are all as they should be (so a `visit` that writes must treat
/// its work as provisional until this returns `Ok`).
pub fn read(path: &Path, mut visit: impl FnMut(Record) -> Result<()>) -> Result<Manifest> {
    let corrupt = |detail: String| BackupError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut s = Src {
        inner: BufReader::with_capacity(1 << 20, file),
        hash: blake3::Hasher::new(),
        left: len.saturating_sub(32),
    };
    let ioc = |e: io::Error| BackupError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("truncated or unreadable ({e})"),
    };
    if len < (MAGIC.len() + 32) as u64 || s.bytes(MAGIC.len() as u64).map_err(ioc)? != MAGIC {
        return Err(corrupt("no ticketd backup header".into()));
    }
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut files = Vec::new();
    let manifest = loop {
        let tag = s.bytes(1).map_err(ioc)?[0];
        match tag {
            b'T' => {
                let n = s.u32().map_err(ioc)?;
                let name = s.bytes(n).map_err(ioc)?;
                let text = String::from_utf8_lossy(&name).into_owned();
                if seen.insert(text.clone(), 0).is_some() {
                    return Err(corrupt(format!("tree {text} appears twice")));
                }
                current = Some(text);
                visit(Record::Tree(name))?;
            }
            b'E' => {
                let Some(tree) = &current else {
                    return Err(corrupt("an entry before any tree".into()));
                };
                let n = s.u32().map_err(ioc)?;
                let k = s.bytes(n).map_err(ioc)?;
                let n = s.u64().map_err(ioc)?;
                let v = s.bytes(n).map_err(ioc)?;
                *seen.entry(tree.clone()).or_default() += 1;
                visit(Record::Entry(k, v))?;
            }
            b'F' => {
                let n = s.u32().map_err(ioc)?;
                let name = String::from_utf8_lossy(&s.bytes(n).map_err(ioc)?).into_owned();
                if !FILES.contains(&name.as_str()) {
                    return Err(corrupt(format!("unexpected file {name:?}")));
                }
                let n = s.u64().map_err(ioc)?;
                let b = s.bytes(n).map_err(ioc)?;
                files.push(name.clone());
                visit(Record::File(name, b))?;
            }
            b'M' => {
                let data_hash = format!("blake3:{}", s.hash.clone().finalize().to_hex());
                let n = s.u64().map_err(ioc)?;
                let json = s.bytes(n).map_err(ioc)?;
                let m: Manifest =
                    serde_json::from_slice(&json).map_err(|e| corrupt(format!("manifest: {e}")))?;
                if m.checksum != data_hash {
                    return Err(corrupt(format!(
                        "checksum mismatch: the manifest says {}, the data is {data_hash}",
                        m.checksum
                    )));
                }
                break m;
            }
            other => return Err(corrupt(format!("unknown record type {other:#04x}"))),
        }
    };
    if s.left != 0 {
        return Err(corrupt(format!("{} bytes after the manifest", s.left)));
    }
    let mut trailer = [0u8; 32];
    s.inner.read_exact(&mut trailer).map_err(ioc)?;
    if *s.hash.finalize().as_bytes() != trailer {
        return Err(corrupt("checksum mismatch (file trailer)".into()));
    }
    if m_counts_differ(&manifest, &seen, &files) {
        return Err(corrupt(format!(
            "counts differ from the manifest: the file holds {seen:?}, the manifest says {:?}",
            manifest.trees
        )));
    }
    Ok(manifest)
}

fn m_counts_differ(m: &Manifest, seen: &BTreeMap<String, u64>, files: &[String]) -> bool {
    &m.trees != seen || m.files != files || m.entries != seen.values().sum::<u64>()
}

/// The data directory's entries, when it exists and is not empty.
fn dir_entries(dir: &Path) -> Result<Vec<String>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut v = Vec::new();
            for e in rd {
                let e = e.map_err(io_err(dir))?;
                v.push(e.file_name().to_string_lossy().into_owned());
            }
            v.sort();
            Ok(v)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// Check a backup without restoring it.
pub fn verify(path: &Path) -> Result<Manifest> {
    let m = read(path, |_| Ok(()))?;
    check_restorable(&m)?;
    Ok(m)
}

fn check_restorable(m: &Manifest) -> Result<()> {
    if m.format != FORMAT {
        return Err(BackupError::Refused(format!(
            "backup format {} is not one this ticketd reads ({FORMAT}); upgrade ticketd",
            m.format
        )));
    }
    if m.schema_version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: m.schema_version,
        }
        .into());
    }
    Ok(())
}

/// Restore `path` into `data_dir`, which must be empty or absent. The file
/// is checked whole before anything is written; the store is then built
/// beside its final place, checked, and moved in; opening it stamps or
/// migrates its schema.
pub fn restore(path: &Path, data_dir: &Path) -> Result<Manifest> {
    let present = dir_entries(data_dir)?;
    if !present.is_empty() {
        let mut shown = present
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if present.len() > 5 {
            shown.push_str(", …");
        }
        return Err(BackupError::Refused(format!(
            "refused: the data directory {} is not empty ({shown}); restore only into an empty or new directory (stop ticketd and move the old directory aside first)",
            data_dir.display()
        )));
    }
    let manifest = verify(path)?;
    std::fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700));
    }
    // No daemon may start on the directory meanwhile.
    let lock_path = data_dir.join("ticketd.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    {
        use fs2::FileExt;
        if lock.try_lock_exclusive().is_err() {
            return Err(StoreError::Locked(data_dir.to_path_buf()).into());
        }
    }
    let staging = data_dir.join(STAGING);
    let res = build(path, &staging, data_dir);
    if let Err(e) = res {
        let _ = std::fs::remove_dir_all(&staging);
        for f in FILES {
            let _ = std::fs::remove_file(data_dir.join(f));
        }
        // Leave the directory as empty as it was, so a retry is not refused.
        drop(lock);
        let _ = std::fs::remove_file(&lock_path);
        return Err(e);
    }
    let store_dir = data_dir.join("store");
    std::fs::rename(&staging, &store_dir).map_err(io_err(&store_dir))?;
    if let Ok(d) = File::open(data_dir) {
        let _ = d.sync_all();
    }
    // The store takes the lock itself (on its own handle).
    drop(lock);
    // Opening stamps an unversioned store and migrates an older one.
    let store = Store::open(data_dir)?;
    store.flush_blocking()?;
    Ok(manifest)
}

fn build(path: &Path, staging: &Path, data_dir: &Path) -> Result<()> {
    let db = sled::Config::new()
        .path(staging)
        .cache_capacity(crate::store::DEFAULT_CACHE_CAPACITY)
        .open()?;
    let mut tree: Option<sled::Tree> = None;
    let mut batch = sled::Batch::default();
    let mut pending = 0usize;
    let manifest = read(path, |rec| {
        match rec {
            Record::Tree(name) => {
                if let Some(t) = &tree {
                    t.apply_batch(std::mem::take(&mut batch))?;
                    pending = 0;
                }
                tree = Some(db.open_tree(name)?);
            }
            Record::Entry(k, v) => {
                batch.insert(k, v);
                pending += 1;
                if pending >= 1024 {
                    if let Some(t) = &tree {
                        t.apply_batch(std::mem::take(&mut batch))?;
                    }
                    pending = 0;
                }
            }
            Record::File(name, bytes) => write_private(&data_dir.join(name), &bytes)?,
        }
        Ok(())
    })?;
    if let Some(t) = &tree {
        t.apply_batch(batch)?;
    }
    db.flush()?;
    for (name, want) in &manifest.trees {
        let have = db.open_tree(name.as_bytes())?.len() as u64;
        if have != *want {
            return Err(BackupError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("tree {name}: {have} entries restored, {want} in the backup"),
            });
        }
    }
    drop(tree);
    drop(db);
    crate::erase::compact::wait_unlocked(&staging.join("db")).map_err(io_err(staging))?;
    Ok(())
}

/// Write a file readable by its owner only, synced.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path).map_err(io_err(path))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&d.path().join("data")).expect("open");
        for i in 0..3000u64 {
            s.t.raw
                .insert(i.to_be_bytes(), format!("mail {i}").into_bytes())
                .expect("insert");
        }
        s.t.cases
            .insert("SUP-000001", b"{\"x\":1}".to_vec())
            .expect("insert");
        s.db()
            .open_tree("erasures")
            .and_then(|t| t.insert(b"k", b"v".to_vec()))
            .expect("erasures");
        std::fs::write(d.path().join("data").join(KEY_FILE), "key\n").expect("key");
        (d, s)
    }

    type Dump = BTreeMap<Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>>;

    fn dump(dir: &Path) -> Dump {
        let s = Store::open(dir).expect("open");
        let mut out = BTreeMap::new();
        for name in s.db().tree_names() {
            let t = s.db().open_tree(&name).expect("tree");
            let kv = t
                .iter()
                .filter_map(|r| r.ok())
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect();
            out.insert(name.to_vec(), kv);
        }
        out
    }

    #[test]
    fn a_backup_restores_every_tree_and_the_key_file() {
        let (d, s) = filled();
        let file = d.path().join("b.tkb");
        let m = write(&s, &file, false).expect("backup");
        assert_eq!(m.trees.get("raw"), Some(&3000));
        assert_eq!(m.files, vec![KEY_FILE.to_string()]);
        assert_eq!(m.schema_version, SCHEMA_VERSION);
        assert!(matches!(
            write(&s, &file, false),
            Err(BackupError::Refused(_))
        ));
        drop(s);
        let to = d.path().join("restored");
        assert_eq!(restore(&file, &to).expect("restore"), m);
        assert_eq!(dump(&d.path().join("data")), dump(&to));
        assert_eq!(
            std::fs::read_to_string(to.join(KEY_FILE)).ok().as_deref(),
            Some("key\n")
        );
        // Not again into a directory that now holds a store.
        let e = restore(&file, &to).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("is not empty")));
    }

    #[test]
    fn a_damaged_backup_is_refused_before_anything_is_written() {
        let (d, s) = filled();
        let file = d.path().join("b.tkb");
        write(&s, &file, false).expect("backup");
        let good = std::fs::read(&file).expect("read");
        for at in [20, good.len() / 2, good.len() - 40, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x55;
            std::fs::write(&file, &bad).expect("write");
            let to = d.path().join(format!("r{at}"));
            let e = restore(&file, &to).err();
            assert!(
                matches!(e, Some(BackupError::Corrupt { .. })),
                "byte {at}: {e:?}"
            );
            assert!(dir_entries(&to).expect("entries").is_empty(), "byte {at}");
        }
        std::fs::write(&file, &good[..good.len() - 10]).expect("truncate");
        assert!(matches!(verify(&file), Err(BackupError::Corrupt { .. })));
    }

    #[test]
    fn a_backup_of_a_newer_schema_is_refused() {
        let (d, s) = filled();
        s.t.meta
            .insert(schema::KEY, &(SCHEMA_VERSION + 1).to_be_bytes())
            .expect("insert");
        let file = d.path().join("b.tkb");
        write(&s, &file, false).expect("backup");
        let e = restore(&file, &d.path().join("r"))
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("is newer than this ticketd")),
            "{e:?}"
        );
    }

    #[test]
    fn a_backup_never_holds_half_a_write() {
        // Each write puts one key in two trees under the write gate, as a
        // store transaction does; every backup must hold both or neither.
        let d = tempfile::tempdir().expect("tempdir");
        let s = Store::open(&d.path().join("data")).expect("open");
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|sc| {
            sc.spawn(|| {
                for i in 0..5_000u64 {
                    let _w = s.write_gate();
                    let _ = s.t.cases.insert(i.to_be_bytes(), b"c".to_vec());
                    std::thread::yield_now();
                    let _ = s.t.events.insert(i.to_be_bytes(), b"e".to_vec());
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            let mut n = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) || n < 3 {
                let file = d.path().join(format!("b{n}"));
                let m = write(&s, &file, false).expect("backup");
                assert_eq!(m.trees.get("cases"), m.trees.get("events"), "backup {n}");
                let _ = std::fs::remove_file(&file);
                n += 1;
            }
        });
    }
}
