//! The sled store: cases, messages (raw bytes kept whole up to a limit), an
//! append-only event log per case, the outbox, the ignored list, the dedupe
//! and Message-ID indexes, per-source cursors and the schema version.
//!
//! sled allows one process per store. [`Store::open`] first takes an
//! exclusive lock on `DATA_DIR/ticketd.lock`, so a second daemon (or a CLI
//! while the daemon runs) gets a clear [`StoreError::Locked`] instead of a
//! sled I/O error.
//!
//! Trees and keys (see ARCHITECTURE.md for the invariants):
//!
//! | tree | key | value |
//! |---|---|---|
//! | `meta` | `schema_version`, `seq:<name>` | u64 BE |
//! | `cases` | case id (`SUP-000001`) | [`Case`] JSON |
//! | `events` | case id, `/`, u64 BE seq | [`Event`] JSON |
//! | `messages` | u64 BE message id | [`MessageRecord`] JSON |
//! | `raw` | u64 BE message id | raw bytes: `0x00` + a zstd frame ([`encode_raw`]); a value written before compression is the bytes themselves, and reads as it is |
//! | `outbox` | u64 BE outbox id | [`OutboxEntry`] JSON |
//! | `outbox_pending` | u64 BE outbox id | empty (queued or sending) |
//! | `dedupe` | `src:<source>\0<key>` (every message), `mid:<message-id>` (first with that id), `mh:<message-id>\0<blake3>` (id and content), `hash:<blake3>` (no id) | u64 BE message id |
//! | `msgids` | Message-ID (ours and received) | case id |
//! | `ignored` | u64 BE ignored id | [`IgnoredRecord`] JSON |
//! | `cursors` | source name | source-specific bytes |
//! | `rate` | recipient address | JSON list of send times (last hour) |
//! | `case_index` | `a` or `o`, u64 BE ms of `created_at`, case id | empty: every case (`a`) and the open ones (`o`) in creation order ([`case_index_keys`]) |
//! | `timers` | queue byte, u64 BE due ms, case id, 0, kind | a case's earliest [`Timer`] of one queue, JSON, with its later ones in `then` (the due index) |
//! | `meta` | `job:<name>` | RFC 3339 time the scheduled job last ran |
//! | `meta` | `fail:<source>\0<key>` | u64 BE failed attempts at a message still in its source |
//! | `erasures` | u64 BE tombstone id | [`crate::erase::Tombstone`] JSON (no address: a keyed hash) |
//! | `retention_runs` | u64 BE ms of the run | [`crate::erase::apply::RetentionRecord`] JSON (counts only) |
//!
//! Not for: deciding what a message is (triage) or sending mail (outbox).

mod clocks;
mod ingest;
pub mod model;
pub mod schema;

pub use clocks::{
    CaseChange, CaseUpdate, DueTimer, FollowUpFn, JoinFacts, NewCaseFn, NewCasePlan, Notice,
};
pub use ingest::{
    case_id, case_kind, dedupe_key, dedupe_keys, dedupe_verdict, planned_case, AlertRenderer,
    DedupeQuery, FailedInput, IngestInput, IngestOutcome, Seen, ThreadHint,
};
pub use model::*;

use chrono::{DateTime, Utc};
use fs2::FileExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The schema this build writes. Bumped when a key or value layout changes
/// in a way old code cannot read. 2: raw mail compressed ([`encode_raw`];
/// a version-1 store needs no rewrite, but a version-1 ticketd would hand
/// out compressed bytes as mail, so it must refuse a version-2 store).
/// 3: the `case_index` tree (built from the cases on migration).
pub const SCHEMA_VERSION: u64 = 3;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store in {0} is in use by another ticketd process (lock held on {0}/ticketd.lock); stop it first, or use the CLI, which talks to a running daemon over its control socket")]
    Locked(PathBuf),
    #[error("cannot open data directory {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store schema {found} is newer than this ticketd ({SCHEMA_VERSION}); upgrade ticketd")]
    NewerSchema { found: u64 },
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record in tree {tree}: {detail}")]
    Corrupt { tree: &'static str, detail: String },
    #[error("no such case {0}")]
    NoCase(String),
    #[error("no such ignored message {0}")]
    NoIgnored(u64),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The `meta` key of sequence `name`.
fn seq_key(name: &str) -> String {
    format!("seq:{name}")
}

/// Named handles on every tree.
#[derive(Clone)]
pub(crate) struct Trees {
    pub meta: sled::Tree,
    pub cases: sled::Tree,
    pub events: sled::Tree,
    pub messages: sled::Tree,
    pub raw: sled::Tree,
    pub outbox: sled::Tree,
    pub outbox_pending: sled::Tree,
    pub dedupe: sled::Tree,
    pub msgids: sled::Tree,
    pub ignored: sled::Tree,
    pub cursors: sled::Tree,
    pub rate: sled::Tree,
    pub timers: sled::Tree,
    pub case_index: sled::Tree,
}

pub struct Store {
    db: sled::Db,
    pub(crate) t: Trees,
    dir: PathBuf,
    // Held for the life of the store; the OS drops the lock with the process.
    _lock: File,
    /// Shared by every write, exclusive for a backup (see [`Store::write_gate`]).
    gate: std::sync::RwLock<()>,
}

/// A case with everything attached, for `cases show`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct CaseView {
    pub case: Case,
    pub messages: Vec<MessageRecord>,
    pub events: Vec<Event>,
    pub outbox: Vec<OutboxSummary>,
    /// Pending timers (escalations, reminders) of the case, earliest first.
    #[serde(default)]
    pub timers: Vec<Timer>,
}

/// An outbox entry without its mail body.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct OutboxSummary {
    pub id: u64,
    pub purpose: Purpose,
    pub state: OutboxState,
    pub recipients: Vec<String>,
    pub subject: String,
    pub message_id: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_as: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub notice: Option<String>,
}

impl From<&OutboxEntry> for OutboxSummary {
    fn from(e: &OutboxEntry) -> Self {
        OutboxSummary {
            id: e.id,
            purpose: e.purpose,
            state: e.state,
            recipients: e.recipients.clone(),
            subject: e.subject.clone(),
            message_id: e.message_id.clone(),
            attempts: e.attempts,
            last_error: e.last_error.clone(),
            sent_at: e.sent_at,
            delivered_as: e.delivered_as.clone(),
            created_at: Some(e.created_at),
            notice: e.notice.clone(),
        }
    }
}

/// An outbox entry to write back, with the event to record on its case.
pub type OutboxUpdate = (OutboxEntry, Option<(DateTime<Utc>, EventKind)>);

/// Filter for [`Store::list_cases`] (every field optional).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct CaseFilter {
    pub kind: Option<CaseKind>,
    pub status: Option<CaseStatus>,
    #[serde(default)]
    pub level: Option<u8>,
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub agency: Option<String>,
    /// Only cases past their response target (support) or due date
    /// (privacy) without a response; needs `now` and `today`.
    #[serde(default)]
    pub breached: bool,
    /// Only cases received at or after this instant.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Only cases not resolved or closed (`cases list` without `--all`).
    #[serde(default)]
    pub open: bool,
    #[serde(default)]
    pub now: Option<DateTime<Utc>>,
    /// The calendar's date at `now` (privacy due dates are dates).
    #[serde(default)]
    pub today: Option<chrono::NaiveDate>,
}

impl CaseFilter {
    /// Every case not resolved or closed (read through the open index).
    pub fn open_cases() -> CaseFilter {
        CaseFilter {
            open: true,
            ..CaseFilter::default()
        }
    }

    /// Whether `c` passes the filter (pure).
    pub fn matches(&self, c: &Case) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| have.as_ref().is_some_and(|h| h.eq_ignore_ascii_case(w)))
        };
        self.kind.is_none_or(|k| k == c.kind)
            && self.status.is_none_or(|s| s == c.status)
            && self.level.is_none_or(|l| c.level == Some(l))
            && eq(&self.assignee, &c.assignee)
            && eq(&self.agency, &c.agency)
            && self.since.is_none_or(|t| c.received_at >= t)
            && (!self.open || !c.is_done())
            && (!self.breached
                || self
                    .now
                    .is_some_and(|now| c.is_breached(now, self.today.unwrap_or(now.date_naive()))))
    }
}

pub(crate) fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

pub(crate) fn from_be(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising our own plain structs to JSON cannot fail (no maps with
    // non-string keys, no custom serialisers that error).
    serde_json::to_vec(v).unwrap_or_default()
}

pub(crate) fn from_json<T: DeserializeOwned>(tree: &'static str, b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt {
        tree,
        detail: e.to_string(),
    })
}

/// The header byte of a compressed raw value (then a zstd frame).
const RAW_ZSTD: u8 = 0x00;
/// The magic number every zstd frame starts with.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// zstd's level for raw mail: fast, and mail text shrinks ≈ 2–4×.
const RAW_LEVEL: i32 = 3;

/// A raw message as the `raw` tree keeps it: [`RAW_ZSTD`] and a zstd frame.
/// Compressing a byte slice in memory cannot fail; if it ever did, the
/// bytes are kept as they are (which [`decode_raw`] reads as well).
pub(crate) fn encode_raw(raw: &[u8]) -> Vec<u8> {
    thread_local! {
        // One compression context a thread: making one costs as much as
        // compressing a 2 KB message.
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let compressed = COMPRESSOR.with(|c| {
        let mut c = c.try_borrow_mut().map_err(std::io::Error::other)?;
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(RAW_LEVEL)?);
        }
        match c.as_mut() {
            Some(z) => z.compress(raw),
            None => zstd::bulk::compress(raw, RAW_LEVEL),
        }
    });
    match compressed {
        Ok(z) => {
            let mut v = Vec::with_capacity(z.len() + 1);
            v.push(RAW_ZSTD);
            v.extend_from_slice(&z);
            v
        }
        Err(_) => raw.to_vec(),
    }
}

/// A value of the `raw` tree as the message's bytes: compressed values
/// (header byte and zstd magic) are decompressed; a value written before
/// compression existed (mail never starts with a NUL byte and a zstd
/// magic) is returned as it is, so old stores read without a migration.
pub(crate) fn decode_raw(v: &[u8]) -> Result<Vec<u8>> {
    match v.split_first() {
        Some((&RAW_ZSTD, rest)) if rest.starts_with(&ZSTD_MAGIC) => zstd::stream::decode_all(rest)
            .map_err(|e| StoreError::Corrupt {
                tree: "raw",
                detail: format!("compressed value does not decompress: {e}"),
            }),
        _ => Ok(v.to_vec()),
    }
}

/// The namespace bytes of the `case_index` tree.
pub(crate) const INDEX_ALL: u8 = b'a';
pub(crate) const INDEX_OPEN: u8 = b'o';

/// A case's key in the `case_index` tree under namespace `ns`: the
/// namespace, its creation time (ms, big-endian, so keys sort in the order
/// cases were opened whatever the width of their number) and its id.
pub(crate) fn case_index_key(ns: u8, created_at: DateTime<Utc>, id: &str) -> Vec<u8> {
    let ms = u64::try_from(created_at.timestamp_millis()).unwrap_or(0);
    let mut k = Vec::with_capacity(9 + id.len());
    k.push(ns);
    k.extend_from_slice(&be(ms));
    k.extend_from_slice(id.as_bytes());
    k
}

/// A case's two index keys: among all cases, and among the open ones.
pub(crate) fn case_index_keys(c: &Case) -> (Vec<u8>, Vec<u8>) {
    (
        case_index_key(INDEX_ALL, c.created_at, &c.id),
        case_index_key(INDEX_OPEN, c.created_at, &c.id),
    )
}

/// What the `case_index` must hold for case `c`: each key, and whether it
/// is present (the creation-order key always, the open key only while the
/// case is not resolved or closed).
pub(crate) fn case_index_entries(c: &Case) -> [(Vec<u8>, bool); 2] {
    let (all, open) = case_index_keys(c);
    [(all, true), (open, !c.is_done())]
}

pub(crate) fn event_key(case: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(case.len() + 9);
    k.extend_from_slice(case.as_bytes());
    k.push(b'/');
    k.extend_from_slice(&be(seq));
    k
}

/// sled's page cache when the configuration does not say (`[store]
/// cache_capacity`); sled's own default is 1 GiB. 16 MiB keeps a
/// 10,000-message drain under 100 MB at the rate 32 MiB gives
/// (BENCHMARKS.md, "Ingest memory"); sequential reads (lists) hardly use
/// it.
pub const DEFAULT_CACHE_CAPACITY: u64 = 16 * 1024 * 1024;

/// How long [`open_sled`] waits for sled's own file lock.
const SLED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Open sled at `path`. Called only while `ticketd.lock` is held, so no
/// other ticketd can hold sled's own lock on `path/db`: if it is busy,
/// it is a store this process just dropped whose background I/O threads
/// still hold the file for a few milliseconds (sled's pagecache jobs keep
/// a handle to it). Wait for them instead of failing a reopen, as a
/// restart inside one process (tests, a reload) does.
fn open_sled(path: &Path, cache_capacity: u64) -> Result<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        match sled::Config::new()
            .path(path)
            .cache_capacity(cache_capacity)
            .mode(sled::Mode::HighThroughput)
            .open()
        {
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::Other
                    && e.to_string().contains("could not acquire lock")
                    && started.elapsed() < SLED_LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return Ok(other?),
        }
    }
}

impl Store {
    /// Open (creating if needed) the store in `data_dir/store`, with the
    /// default page cache ([`DEFAULT_CACHE_CAPACITY`]).
    pub fn open(data_dir: &Path) -> Result<Store> {
        Store::open_with(data_dir, DEFAULT_CACHE_CAPACITY)
    }

    /// [`Store::open`] with sled's page cache bounded to `cache_capacity`
    /// bytes (`[store] cache_capacity`).
    pub fn open_with(data_dir: &Path, cache_capacity: u64) -> Result<Store> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Dir {
            path: data_dir.to_path_buf(),
            source: e,
        })?;
        restrict_dir(data_dir);
        let lock_path = data_dir.join("ticketd.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::Dir {
                path: lock_path.clone(),
                source: e,
            })?;
        if lock.try_lock_exclusive().is_err() {
            return Err(StoreError::Locked(data_dir.to_path_buf()));
        }
        // A compaction (after an erasure) interrupted by a crash is
        // finished or undone before the store is opened.
        crate::erase::compact::recover(data_dir).map_err(|e| StoreError::Dir {
            path: data_dir.to_path_buf(),
            source: e,
        })?;
        let db = open_sled(&data_dir.join("store"), cache_capacity)?;
        let t = Trees {
            meta: db.open_tree("meta")?,
            cases: db.open_tree("cases")?,
            events: db.open_tree("events")?,
            messages: db.open_tree("messages")?,
            raw: db.open_tree("raw")?,
            outbox: db.open_tree("outbox")?,
            outbox_pending: db.open_tree("outbox_pending")?,
            dedupe: db.open_tree("dedupe")?,
            msgids: db.open_tree("msgids")?,
            ignored: db.open_tree("ignored")?,
            cursors: db.open_tree("cursors")?,
            rate: db.open_tree("rate")?,
            timers: db.open_tree("timers")?,
            case_index: db.open_tree("case_index")?,
        };
        schema::check_and_migrate(&db, &t)?;
        // sled's recovery frees much of what it built to open a large store.
        crate::alloc::trim();
        Ok(Store {
            db,
            t,
            dir: data_dir.to_path_buf(),
            _lock: lock,
            gate: std::sync::RwLock::new(()),
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The sled database itself (erasure: tombstones, compaction).
    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Close the store but keep holding `ticketd.lock` (the compaction
    /// after an erasure swaps the store directory under it).
    pub(crate) fn close_keep_lock(self) -> File {
        let Store { db, _lock, .. } = self;
        drop(db);
        _lock
    }

    /// Taken (shared) by every write to the trees, outermost only (never
    /// while holding it already); [`Store::quiesce`] takes it exclusively,
    /// so a backup sees every tree at one instant.
    pub(crate) fn write_gate(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Hold off every write until the guard is dropped (a backup).
    pub(crate) fn quiesce(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.gate.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn schema_version(&self) -> Result<u64> {
        Ok(self
            .t
            .meta
            .get("schema_version")?
            .and_then(|v| from_be(&v))
            .unwrap_or(0))
    }

    /// Make everything written so far durable. Nothing is taken from a
    /// source, and no outbox state is trusted, before this returns.
    pub async fn flush(&self) -> Result<()> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// The last value handed out by sequence `name` (`message`,
    /// `case:SUP`, ...), 0 before the first. Outside any transaction: for
    /// planning ahead, never for allocating.
    pub fn seq(&self, name: &str) -> Result<u64> {
        Ok(self
            .t
            .meta
            .get(seq_key(name).as_bytes())?
            .and_then(|v| from_be(&v))
            .unwrap_or(0))
    }

    /// The dedupe verdict for a message as the store stands now (outside
    /// any transaction: for planning ahead; the transaction decides).
    pub fn dedupe_now(&self, q: &DedupeQuery<'_>) -> Result<Seen> {
        dedupe_verdict(
            q,
            &|k: &str| Ok(self.t.dedupe.get(k.as_bytes())?.and_then(|v| from_be(&v))),
            &|id: u64| self.message(id),
        )
    }

    /// The case a stored Message-ID (ours or received) belongs to.
    pub fn msgid_case(&self, id: &str) -> Result<Option<String>> {
        Ok(self
            .t
            .msgids
            .get(id.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Blocking flush, for synchronous callers (tests, CLI).
    pub fn flush_blocking(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    // ------------------------------------------------------------ reading

    pub fn case(&self, id: &str) -> Result<Option<Case>> {
        self.t
            .cases
            .get(id.as_bytes())?
            .map(|v| from_json("cases", &v))
            .transpose()
    }

    pub fn list_cases(&self, filter: &CaseFilter) -> Result<Vec<Case>> {
        let mut out = Vec::new();
        let prefix: &[u8] = match filter.kind {
            Some(k) => k.prefix().as_bytes(),
            None => b"",
        };
        for item in self.t.cases.scan_prefix(prefix) {
            let (_, v) = item?;
            let c: Case = from_json("cases", &v)?;
            if filter.matches(&c) {
                out.push(c);
            }
        }
        out.sort_by(|a, b| a.received_at.cmp(&b.received_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Hand every case passing `filter` to `f`, one at a time, in the order
    /// the cases were opened (newest last; the two kinds interleaved by
    /// `created_at`), starting after case `after` when given. `f` returns
    /// `Ok(false)` to stop. Walks the `case_index` (the open cases alone
    /// when `filter.open`, so an open-only read costs what is open, not
    /// what was ever stored) and reads each case as it goes, so memory does
    /// not grow with the number of cases.
    pub fn for_each_case(
        &self,
        filter: &CaseFilter,
        after: Option<&str>,
        mut f: impl FnMut(Case) -> Result<bool>,
    ) -> Result<()> {
        use std::ops::Bound;
        let ns = if filter.open { INDEX_OPEN } else { INDEX_ALL };
        let start = match after {
            Some(id) => {
                let c = self
                    .case(id)?
                    .ok_or_else(|| StoreError::NoCase(id.to_string()))?;
                Bound::Excluded(case_index_key(ns, c.created_at, &c.id))
            }
            None => Bound::Included(vec![ns]),
        };
        for item in self
            .t
            .case_index
            .range::<Vec<u8>, _>((start, Bound::Excluded(vec![ns + 1])))
        {
            let (k, _) = item?;
            let id = k.get(9..).unwrap_or_default();
            // An index entry whose case is gone (erased) is skipped.
            let Some(v) = self.t.cases.get(id)? else {
                continue;
            };
            let c: Case = from_json("cases", &v)?;
            if filter.matches(&c) && !f(c)? {
                break;
            }
        }
        Ok(())
    }

    /// Hand every ignored record to `f` in id order (oldest first), one at
    /// a time; `f` returns `Ok(false)` to stop.
    pub fn for_each_ignored(&self, mut f: impl FnMut(IgnoredRecord) -> Result<bool>) -> Result<()> {
        for item in self.t.ignored.iter() {
            let (_, v) = item?;
            if !f(from_json("ignored", &v)?)? {
                break;
            }
        }
        Ok(())
    }

    /// Every staff correction of triage, as a labelled example: a case
    /// staff releveled, or opened by promoting a set-aside message (a spam
    /// or machine-mail rescue), labelled with what the case is now. The
    /// events are the record; nothing else is written for them.
    pub fn corrections(&self) -> Result<Vec<Correction>> {
        let mut out = Vec::new();
        for item in self.t.cases.iter() {
            let (_, v) = item?;
            let c: Case = from_json("cases", &v)?;
            let Some(&message) = c.messages.first() else {
                continue;
            };
            let mut what = Vec::new();
            let mut last = None;
            for e in self.events(&c.id)? {
                match &e.kind {
                    EventKind::Releveled { from, to, .. } => {
                        what.push(format!(
                            "relevel {} → {to}",
                            from.map(|f| f.to_string()).unwrap_or_else(|| "-".into())
                        ));
                        last = Some((e.at, e.actor.clone()));
                    }
                    EventKind::Promoted { ignored } => {
                        what.push(format!("promoted from ignored #{ignored}"));
                        last = Some((e.at, e.actor.clone()));
                    }
                    _ => {}
                }
            }
            if let Some((at, actor)) = last {
                out.push(Correction {
                    case: c.id.clone(),
                    message,
                    kind: c.kind,
                    level: c.level,
                    what: what.join("; "),
                    actor,
                    at,
                });
            }
        }
        out.sort_by(|a, b| a.at.cmp(&b.at).then(a.case.cmp(&b.case)));
        Ok(out)
    }

    pub fn events(&self, case: &str) -> Result<Vec<Event>> {
        let mut prefix = case.as_bytes().to_vec();
        prefix.push(b'/');
        self.t
            .events
            .scan_prefix(prefix)
            .map(|item| {
                let (_, v) = item?;
                from_json("events", &v)
            })
            .collect()
    }

    pub fn message(&self, id: u64) -> Result<Option<MessageRecord>> {
        self.t
            .messages
            .get(be(id))?
            .map(|v| from_json("messages", &v))
            .transpose()
    }

    pub fn raw(&self, id: u64) -> Result<Option<Vec<u8>>> {
        self.t.raw.get(be(id))?.map(|v| decode_raw(&v)).transpose()
    }

    pub fn message_count(&self) -> usize {
        self.t.messages.len()
    }

    pub fn outbox_entry(&self, id: u64) -> Result<Option<OutboxEntry>> {
        self.t
            .outbox
            .get(be(id))?
            .map(|v| from_json("outbox", &v))
            .transpose()
    }

    pub fn outbox_all(&self) -> Result<Vec<OutboxEntry>> {
        self.t
            .outbox
            .iter()
            .map(|item| {
                let (_, v) = item?;
                from_json("outbox", &v)
            })
            .collect()
    }

    /// Entries still to deliver (queued or sending), oldest first.
    pub fn outbox_pending(&self) -> Result<Vec<OutboxEntry>> {
        let mut out = Vec::new();
        for item in self.t.outbox_pending.iter() {
            let (k, _) = item?;
            let id = from_be(&k).ok_or(StoreError::Corrupt {
                tree: "outbox_pending",
                detail: "key is not a u64".into(),
            })?;
            if let Some(e) = self.outbox_entry(id)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    pub fn case_view(&self, id: &str) -> Result<CaseView> {
        let case = self
            .case(id)?
            .ok_or_else(|| StoreError::NoCase(id.to_string()))?;
        let mut messages = Vec::new();
        for m in &case.messages {
            if let Some(r) = self.message(*m)? {
                messages.push(r);
            }
        }
        let mut outbox = Vec::new();
        for o in &case.outbox {
            if let Some(e) = self.outbox_entry(*o)? {
                outbox.push(OutboxSummary::from(&e));
            }
        }
        let events = self.events(id)?;
        let mut timers = self.timers_for(id)?;
        timers.sort_by_key(|t| t.due);
        Ok(CaseView {
            case,
            messages,
            events,
            outbox,
            timers,
        })
    }

    pub fn list_ignored(&self) -> Result<Vec<IgnoredRecord>> {
        self.t
            .ignored
            .iter()
            .map(|item| {
                let (_, v) = item?;
                from_json("ignored", &v)
            })
            .collect()
    }

    pub fn ignored(&self, id: u64) -> Result<Option<IgnoredRecord>> {
        self.t
            .ignored
            .get(be(id))?
            .map(|v| from_json("ignored", &v))
            .transpose()
    }

    /// The case a stored Message-ID (received or sent by us) belongs to.
    pub fn case_for_message_id(&self, message_id: &str) -> Result<Option<String>> {
        Ok(self
            .t
            .msgids
            .get(message_id.as_bytes())?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Whether a dedupe key (`mid:…` / `hash:…`) is known.
    pub fn dedupe_hit(&self, key: &str) -> Result<Option<u64>> {
        Ok(self.t.dedupe.get(key.as_bytes())?.and_then(|v| from_be(&v)))
    }

    pub fn cursor(&self, source: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.t.cursors.get(source.as_bytes())?.map(|v| v.to_vec()))
    }

    pub fn set_cursor(&self, source: &str, value: &[u8]) -> Result<()> {
        let _w = self.write_gate();
        self.t.cursors.insert(source.as_bytes(), value)?;
        Ok(())
    }

    // ------------------------------------------------------------ outbox

    /// Write an outbox entry back after a state change, keeping the pending
    /// index in step, and append `event` to its case if given.
    pub fn update_outbox(
        &self,
        entry: &OutboxEntry,
        event: Option<(DateTime<Utc>, EventKind)>,
    ) -> Result<()> {
        self.update_outbox_many(&[(entry.clone(), event)])
    }

    /// Count one failed attempt at the message `key` (`source\0key`);
    /// returns the attempts so far. Kept in the store (flushed with the
    /// batch), so `run --once` from cron and restarts count on.
    pub fn count_failure(&self, key: &str) -> Result<u32> {
        let k = format!("fail:{key}");
        let _w = self.write_gate();
        let v = self.t.meta.update_and_fetch(k.as_bytes(), |old| {
            let n = old.and_then(from_be).unwrap_or(0) + 1;
            Some(be(n).to_vec())
        })?;
        Ok(v.and_then(|v| from_be(&v)).unwrap_or(1) as u32)
    }

    /// Forget the failed attempts at the message `key`.
    pub fn forget_failure(&self, key: &str) -> Result<()> {
        let _w = self.write_gate();
        self.t.meta.remove(format!("fail:{key}").as_bytes())?;
        Ok(())
    }

    /// Automatic mails the server accepted for `recipient` in the hour
    /// before `now` (the per-recipient rate limit counts only these: an
    /// attempt that failed or was interrupted never counts).
    pub fn rate_count(&self, recipient: &str, now: DateTime<Utc>) -> Result<usize> {
        let key = recipient.to_ascii_lowercase();
        let times: Vec<i64> = match self.t.rate.get(key.as_bytes())? {
            Some(v) => serde_json::from_slice(&v).unwrap_or_default(),
            None => Vec::new(),
        };
        let cutoff = (now - chrono::Duration::hours(1)).timestamp();
        Ok(times.iter().filter(|t| **t > cutoff).count())
    }

    /// Record that the server accepted an automatic mail to `recipient` at
    /// `now` (times older than an hour are dropped).
    pub fn rate_record(&self, recipient: &str, now: DateTime<Utc>) -> Result<()> {
        let key = recipient.to_ascii_lowercase();
        let cutoff = (now - chrono::Duration::hours(1)).timestamp();
        let _w = self.write_gate();
        self.t.rate.update_and_fetch(key.as_bytes(), |old| {
            let mut times: Vec<i64> = old
                .and_then(|v| serde_json::from_slice(v).ok())
                .unwrap_or_default();
            times.retain(|t| *t > cutoff);
            times.push(now.timestamp());
            serde_json::to_vec(&times).ok()
        })?;
        Ok(())
    }

    /// Outbox entries that will not be delivered (suppressed by the rate
    /// limit, or failed for good) created at or after `since`: for the
    /// digest.
    pub fn outbox_problems(&self, since: DateTime<Utc>) -> Result<Vec<OutboxEntry>> {
        let mut out = Vec::new();
        for kv in self.t.outbox.iter().rev() {
            let (_, v) = kv?;
            let e: OutboxEntry = from_json("outbox", &v)?;
            if e.created_at < since - chrono::Duration::days(4) {
                // Entries are numbered in creation order; one retried for
                // up to `max_age` (3 days by default) may end later.
                break;
            }
            if matches!(e.state, OutboxState::Suppressed | OutboxState::Failed)
                && e.next_attempt_at >= since
            {
                out.push(e);
            }
        }
        out.reverse();
        Ok(out)
    }

    /// After a restart: entries left in `sending` go back to `queued` (the
    /// transport's writes are idempotent per outbox id). Returns how many.
    pub fn recover_outbox(&self) -> Result<usize> {
        let stuck: Vec<OutboxUpdate> = self
            .outbox_pending()?
            .into_iter()
            .filter(|e| e.state == OutboxState::Sending)
            .map(|mut e| {
                e.state = OutboxState::Queued;
                (e, None)
            })
            .collect();
        self.update_outbox_many(&stuck)?;
        Ok(stuck.len())
    }
}

/// The next case of `it` that passes `filter`.
pub(crate) fn tx_err(e: sled::transaction::TransactionError<StoreError>) -> StoreError {
    match e {
        sled::transaction::TransactionError::Abort(e) => e,
        sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

/// Owner-only permissions on the data directory (it holds mail and the
/// control socket).
fn restrict_dir(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
}

#[cfg(test)]
mod tests;
