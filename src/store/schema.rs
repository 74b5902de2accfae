//! The store's schema version: the `meta` key `schema_version` (u64 BE).
//!
//! [`check_and_migrate`], called by `Store::open` before anything else reads
//! the trees, refuses a store written by a newer ticketd
//! ([`StoreError::NewerSchema`]) and brings an older one up to
//! [`SCHEMA_VERSION`] one step at a time, recording the version each step
//! reaches, and flushes once at the end. A store without the key is a
//! store from before versions were recorded: it is version 1 and gets
//! stamped.
//!
//! Adding a migration: bump [`SCHEMA_VERSION`] to N and add the step from
//! N-1 to `MIGRATIONS`. A step must be idempotent, because a crash before
//! the flush runs it again.

use super::{be, from_be, Result, StoreError, Trees, SCHEMA_VERSION};

/// The `meta` key holding the version.
pub const KEY: &str = "schema_version";

/// The version of a store that has no version key (every store made
/// before versions were recorded).
pub const UNVERSIONED: u64 = 1;

/// One step: from `from` to `from + 1`.
pub(crate) struct Migration {
    pub from: u64,
    pub what: &'static str,
    pub apply: fn(&Trees) -> Result<()>,
}

/// Every step, oldest first.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        from: 1,
        what: "raw mail may be zstd-compressed (0x00 + a zstd frame); version-1 values read as they are, so nothing is rewritten",
        apply: |_| Ok(()),
    },
    Migration {
        from: 2,
        what: "the case index (every case and the open ones, in creation order) is built from the cases",
        apply: build_case_index,
    },
];

/// Index every case (idempotent: the keys are a function of the case),
/// in batches of 10,000. A record that does not parse is left out (and
/// logged by key): it must not keep the store from opening.
fn build_case_index(t: &Trees) -> Result<()> {
    let mut batch = sled::Batch::default();
    let mut n = 0usize;
    for item in t.cases.iter() {
        let (k, v) = item?;
        let c: super::Case = match super::from_json("cases", &v) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(case = %String::from_utf8_lossy(&k), error = %e, "case record does not parse; not indexed");
                continue;
            }
        };
        for (k, present) in super::case_index_entries(&c) {
            if present {
                batch.insert(k, &[]);
            } else {
                batch.remove(k);
            }
        }
        n += 1;
        if n.is_multiple_of(10_000) {
            t.case_index.apply_batch(std::mem::take(&mut batch))?;
        }
    }
    t.case_index.apply_batch(batch)?;
    Ok(())
}

/// The version recorded in `meta`, `None` when the key is absent.
pub fn recorded(meta: &sled::Tree) -> Result<Option<u64>> {
    match meta.get(KEY)? {
        None => Ok(None),
        Some(v) => from_be(&v).map(Some).ok_or_else(|| StoreError::Corrupt {
            tree: "meta",
            detail: format!("{KEY} is {} bytes, not a u64", v.len()),
        }),
    }
}

/// Refuse a newer store, migrate an older one, stamp an unversioned one.
/// Returns the version found (before migrating).
pub(crate) fn check_and_migrate(db: &sled::Db, t: &Trees) -> Result<u64> {
    migrate_to(db, t, SCHEMA_VERSION, MIGRATIONS)
}

/// [`check_and_migrate`] towards `target` with `steps` (tests use their own).
fn migrate_to(db: &sled::Db, t: &Trees, target: u64, steps: &[Migration]) -> Result<u64> {
    let found = recorded(&t.meta)?;
    let mut v = found.unwrap_or(UNVERSIONED);
    if v > target {
        return Err(StoreError::NewerSchema { found: v });
    }
    if found.is_none() {
        tracing::info!(version = v, "store has no schema version: stamping it");
        t.meta.insert(KEY, &be(v))?;
    }
    while v < target {
        let Some(step) = steps.iter().find(|m| m.from == v) else {
            return Err(StoreError::Invalid(format!(
                "store schema {v} cannot be migrated by this ticketd ({target}): no migration from {v}"
            )));
        };
        tracing::info!(
            from = v,
            to = v + 1,
            what = step.what,
            "migrating the store"
        );
        (step.apply)(t)?;
        v += 1;
        t.meta.insert(KEY, &be(v))?;
    }
    if found != Some(v) {
        db.flush()?;
    }
    Ok(found.unwrap_or(UNVERSIONED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn an_unversioned_store_is_version_1_and_gets_stamped() {
        let d = tempfile::tempdir().expect("tempdir");
        {
            let s = Store::open(d.path()).expect("open");
            s.t.cases
                .insert("SUP-000001", b"{}".to_vec())
                .expect("insert");
            // A store from before versions were recorded.
            s.t.meta.remove(KEY).expect("remove");
            s.flush_blocking().expect("flush");
            assert_eq!(recorded(&s.t.meta).ok(), Some(None));
        }
        let s = Store::open(d.path()).expect("reopen migrates");
        assert_eq!(s.schema_version().ok(), Some(SCHEMA_VERSION));
        assert_eq!(recorded(&s.t.meta).ok(), Some(Some(SCHEMA_VERSION)));
        assert_eq!(s.t.cases.len(), 1, "data kept");
    }

    #[test]
    fn an_older_store_is_migrated_step_by_step_once() {
        let d = tempfile::tempdir().expect("tempdir");
        let s = Store::open(d.path()).expect("open");
        s.t.meta.remove(KEY).expect("unversioned");
        let steps = [
            Migration {
                from: 1,
                what: "test: mark",
                apply: |t| {
                    t.meta.insert("migrated", b"1".to_vec())?;
                    Ok(())
                },
            },
            Migration {
                from: 2,
                what: "test: count",
                apply: |t| {
                    let n = t.meta.get("migrated")?.map(|v| v.len()).unwrap_or(0);
                    t.meta.insert("migrated", vec![b'1'; n + 1])?;
                    Ok(())
                },
            },
        ];
        assert_eq!(migrate_to(&s.db, &s.t, 3, &steps).ok(), Some(1));
        assert_eq!(recorded(&s.t.meta).ok(), Some(Some(3)));
        assert_eq!(
            s.t.meta.get("migrated").ok().flatten().map(|v| v.to_vec()),
            Some(b"11".to_vec())
        );
        // At the target already: nothing runs again.
        assert_eq!(migrate_to(&s.db, &s.t, 3, &steps).ok(), Some(3));
        assert_eq!(
            s.t.meta.get("migrated").ok().flatten().map(|v| v.len()),
            Some(2)
        );
        // A gap in the steps is an error, not a silent skip.
        s.t.meta.insert(KEY, &be(1)).expect("back to 1");
        assert!(matches!(
            migrate_to(&s.db, &s.t, 3, &steps[1..]),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn a_newer_store_is_refused_and_left_alone() {
        let d = tempfile::tempdir().expect("tempdir");
        {
            let s = Store::open(d.path()).expect("open");
            s.t.meta
                .insert(KEY, &be(SCHEMA_VERSION + 1))
                .expect("insert");
            s.flush_blocking().expect("flush");
        }
        let err = Store::open(d.path()).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                format!(
                    "store schema {} is newer than this ticketd ({SCHEMA_VERSION}); upgrade ticketd",
                    SCHEMA_VERSION + 1
                )
                .as_str()
            )
        );
        // Refused again: nothing was rewritten.
        assert!(matches!(
            Store::open(d.path()),
            Err(StoreError::NewerSchema { found }) if found == SCHEMA_VERSION + 1
        ));
    }

    #[test]
    fn a_garbled_version_is_corrupt_not_newer() {
        let d = tempfile::tempdir().expect("tempdir");
        {
            let s = Store::open(d.path()).expect("open");
            s.t.meta.insert(KEY, b"x".to_vec()).expect("insert");
            s.flush_blocking().expect("flush");
        }
        assert!(matches!(
            Store::open(d.path()),
            Err(StoreError::Corrupt { tree: "meta", .. })
        ));
    }
}
