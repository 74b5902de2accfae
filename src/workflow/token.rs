//! Keyed tokens in the Message-IDs we send, so that only the recipients of
//! our mail can thread into a case by its headers (as FreeScout does against
//! thread hijacking). An id is `KIND.CASE.NONCE.MAC@DOMAIN`, where MAC is a
//! keyed BLAKE3 hash of kind, case and nonce under a secret that ticketd
//! generates in `DATA_DIR/thread-key` on first start (or reads from
//! `[threading] secret_env` / `secret_file`). After a rotation the previous
//! key is accepted until `previous_valid_until`.
//!
//! Pure but for [`ThreadKeys::load`], which reads (or creates) the key file.

use crate::config::{resolve_secret, Threading};
use chrono::{DateTime, NaiveDate, Utc};
use std::path::Path;

/// The current signing key and, after a rotation, the previous one.
#[derive(Clone)]
pub struct ThreadKeys {
    current: [u8; 32],
    previous: Option<([u8; 32], NaiveDate)>,
}

impl std::fmt::Debug for ThreadKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ThreadKeys(..)")
    }
}

/// What one of the ids in a message's headers is to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OurId {
    /// Not one of ours (or not in our shape).
    NotOurs,
    /// Ours, with a valid token: only a recipient of our mail knows it.
    Verified { kind: String, case: String },
    /// Looks like ours but the token is missing or wrong (forged, or from
    /// before tokens existed): as strong as a subject tag.
    Unverified { case: String },
}

/// The file the generated key lives in.
pub const KEY_FILE: &str = "thread-key";

fn key_from_text(what: &str, text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    if t.len() < 32 {
        return Err(format!(
            "{what}: the threading secret must be at least 32 characters"
        ));
    }
    // Any text is accepted; it is stretched to a key.
    Ok(blake3::derive_key("ticketd thread key v1", t.as_bytes()))
}

impl ThreadKeys {
    /// Keys from fixed text (tests, fuzzing).
    pub fn from_secret(secret: &str) -> ThreadKeys {
        ThreadKeys {
            current: blake3::derive_key("ticketd thread key v1", secret.as_bytes()),
            previous: None,
        }
    }

    /// A key that lives only as long as this process (no store).
    pub fn ephemeral() -> ThreadKeys {
        let mut k = [0u8; 32];
        if getrandom::getrandom(&mut k).is_err() {
            k = blake3::derive_key("ticketd ephemeral", &fastrand::u64(..).to_le_bytes());
        }
        ThreadKeys {
            current: k,
            previous: None,
        }
    }

    /// The keys `settings` name, else the key in `data_dir/thread-key`,
    /// generated (random, mode 0600) when the file does not exist yet.
    pub fn load(settings: &Threading, data_dir: &Path) -> Result<ThreadKeys, String> {
        let current = match &settings.secret {
            Some(s) => key_from_text(
                "[threading] secret",
                &resolve_secret("[threading] secret", s)?,
            )?,
            None => Self::key_file(data_dir)?,
        };
        let previous = match (&settings.previous, settings.previous_valid_until) {
            (Some(s), Some(until)) => Some((
                key_from_text(
                    "[threading] previous_secret",
                    &resolve_secret("[threading] previous_secret", s)?,
                )?,
                until,
            )),
            _ => None,
        };
        Ok(ThreadKeys { current, previous })
    }

    fn key_file(data_dir: &Path) -> Result<[u8; 32], String> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => key_from_text(&path.display().to_string(), &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut raw = [0u8; 32];
                getrandom::getrandom(&mut raw)
                    .map_err(|e| format!("cannot draw a random threading key: {e}"))?;
                let text: String = raw.iter().map(|b| format!("{b:02x}")).collect();
                std::fs::create_dir_all(data_dir)
                    .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
                let tmp = data_dir.join(format!("{KEY_FILE}.tmp"));
                {
                    use std::io::Write;
                    let mut o = std::fs::OpenOptions::new();
                    o.write(true).create(true).truncate(true);
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::OpenOptionsExt;
                        o.mode(0o600);
                    }
                    let mut f = o
                        .open(&tmp)
                        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
                    f.write_all(format!("{text}\n").as_bytes())
                        .and_then(|_| f.sync_all())
                        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
                }
                std::fs::rename(&tmp, &path)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                key_from_text(&path.display().to_string(), &text)
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Our Message-ID (without brackets) for mail of `kind` (`ack`, `note`,
    /// `reply`, ...) about `case`, with `nonce` (letters and digits).
    pub fn message_id(&self, kind: &str, case: &str, nonce: &str, domain: &str) -> String {
        let nonce: String = nonce
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        format!(
            "{kind}.{case}.{nonce}.{}@{domain}",
            mac(&self.current, kind, case, &nonce)
        )
    }

    /// A keyed hash of `data` for `context` (identity codes): hex, 128 bits.
    pub fn keyed(&self, context: &str, data: &str) -> String {
        let k = blake3::derive_key(&format!("ticketd {context} v1"), &self.current);
        blake3::keyed_hash(&k, data.as_bytes()).as_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// What `id` (without brackets) is to us, at `now`.
    pub fn verify(&self, id: &str, domain: &str, now: DateTime<Utc>) -> OurId {
        let Some((local, dom)) = id.rsplit_once('@') else {
            return OurId::NotOurs;
        };
        let mut parts = local.splitn(3, '.');
        let (Some(kind), Some(case), rest) = (parts.next(), parts.next(), parts.next()) else {
            return OurId::NotOurs;
        };
        let ours_shape = dom.eq_ignore_ascii_case(domain)
            && crate::triage::find_case_number(case).as_deref() == Some(case);
        if !ours_shape {
            return OurId::NotOurs;
        }
        let unverified = OurId::Unverified {
            case: case.to_string(),
        };
        let Some((nonce, tag)) = rest.and_then(|r| r.rsplit_once('.')) else {
            return unverified;
        };
        let mut keys = vec![&self.current];
        if let Some((k, until)) = &self.previous {
            if now.date_naive() <= *until {
                keys.push(k);
            }
        }
        if keys
            .iter()
            .any(|k| constant_eq(mac(k, kind, case, nonce).as_bytes(), tag.as_bytes()))
        {
            OurId::Verified {
                kind: kind.to_string(),
                case: case.to_string(),
            }
        } else {
            unverified
        }
    }
}

/// 96 bits of keyed BLAKE3 over kind, case and nonce, in hex.
fn mac(key: &[u8; 32], kind: &str, case: &str, nonce: &str) -> String {
    let h = blake3::keyed_hash(key, format!("{kind}\0{case}\0{nonce}").as_bytes());
    h.as_bytes()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-12-03T10:00:00Z".parse().expect("time")
    }

    #[test]
    fn our_ids_verify_and_forgeries_do_not() {
        let k = ThreadKeys::from_secret("a test secret that is long enough!!");
        let id = k.message_id("ack", "SUP-000001", "abc123", "casehost.example");
        assert_eq!(
            k.verify(&id, "casehost.example", now()),
            OurId::Verified {
                kind: "ack".into(),
                case: "SUP-000001".into()
            }
        );
        // Another case number with the same token does not verify.
        let forged = id.replace("SUP-000001", "SUP-000002");
        assert_eq!(
            k.verify(&forged, "casehost.example", now()),
            OurId::Unverified {
                case: "SUP-000002".into()
            }
        );
        // Old-style ids (no token) and made-up ones count as a tag.
        assert_eq!(
            k.verify(
                "ack.SUP-000001.abc@casehost.example",
                "casehost.example",
                now()
            ),
            OurId::Unverified {
                case: "SUP-000001".into()
            }
        );
        assert_eq!(
            k.verify(
                "made-up-SUP-000001@elsewhere.example.net",
                "casehost.example",
                now()
            ),
            OurId::NotOurs
        );
        // Another key does not verify it.
        let other = ThreadKeys::from_secret("another secret that is long enough!");
        assert!(matches!(
            other.verify(&id, "casehost.example", now()),
            OurId::Unverified { .. }
        ));
    }

    #[test]
    fn the_previous_key_is_accepted_until_its_date() {
        let old = ThreadKeys::from_secret("the old secret, long enough to use...");
        let id = old.message_id("note", "PRV-000004", "n1", "d.example");
        let mut k = ThreadKeys::from_secret("the new secret, long enough to use...");
        k.previous = Some((old.current, "2026-12-31".parse().expect("date")));
        assert!(matches!(
            k.verify(&id, "d.example", now()),
            OurId::Verified { .. }
        ));
        let later: DateTime<Utc> = "2027-01-01T00:00:00Z".parse().expect("time");
        assert!(matches!(
            k.verify(&id, "d.example", later),
            OurId::Unverified { .. }
        ));
    }

    #[test]
    fn a_generated_key_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = ThreadKeys::load(&Threading::default(), dir.path()).expect("create");
        let b = ThreadKeys::load(&Threading::default(), dir.path()).expect("reread");
        let id = a.message_id("ack", "SUP-000009", "x", "d.example");
        assert!(matches!(
            b.verify(&id, "d.example", now()),
            OurId::Verified { .. }
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "key file is owner-only");
        }
    }
}
