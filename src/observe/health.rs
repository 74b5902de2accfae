//! `/healthz` from a snapshot of the parts (pure): healthy when every IMAP
//! mailbox synced within its interval (and is connected) and the outbox is
//! moving; otherwise a reason per failing part.
//!
//! A mailbox may go `2 × reconcile_interval + 60 s` without a sync (it
//! syncs at least once per interval while IDLE works); one that is not
//! connected fails at once, with its last error. The outbox is stalled when
//! an entry has waited longer than `STALL` and nothing was sent for as long.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long the outbox may hold mail without sending before it is stalled.
pub const STALL: Duration = Duration::from_secs(300);

/// One IMAP mailbox, as `ImapSource::health` tells it.
#[derive(Debug, Clone)]
pub struct MailboxState {
    pub name: String,
    pub interval: Duration,
    pub connected: bool,
    pub last_sync: Option<DateTime<Utc>>,
    /// Already masked and readable.
    pub last_error: Option<String>,
}

/// The outbox, sampled.
#[derive(Debug, Clone, Default)]
pub struct OutboxState {
    pub depth: usize,
    /// Age of the oldest entry still to send.
    pub oldest: Option<Duration>,
    /// Since the transport last accepted a mail (None: not since start).
    pub since_last_sent: Option<Duration>,
}

/// The outcome: healthy, or the reasons by part (`mailbox:NAME`, `outbox`).
/// Serialized as the control socket's answer to `health`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub failing: BTreeMap<String, String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failing.is_empty()
    }

    /// The JSON body: `{"status":"ok"}` or `{"status":"failing","failing":{...}}`.
    pub fn to_json(&self) -> String {
        let v = if self.ok() {
            serde_json::json!({ "status": "ok" })
        } else {
            serde_json::json!({ "status": "failing", "failing": self.failing })
        };
        v.to_string()
    }
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

/// Evaluate health at `now`; `started` is when the daemon started (a
/// mailbox not yet synced is given its allowance from there).
pub fn evaluate(
    now: DateTime<Utc>,
    started: DateTime<Utc>,
    mailboxes: &[MailboxState],
    outbox: &OutboxState,
) -> Report {
    let mut failing = BTreeMap::new();
    for m in mailboxes {
        let allowance = m.interval.saturating_mul(2) + Duration::from_secs(60);
        let since = m.last_sync.unwrap_or(started);
        let age = (now - since).to_std().unwrap_or(Duration::ZERO);
        let part = format!("mailbox:{}", m.name);
        if !m.connected && m.last_error.is_some() {
            let e = m.last_error.as_deref().unwrap_or("");
            failing.insert(part, format!("not connected: {e}"));
        } else if age > allowance {
            let what = match m.last_sync {
                Some(_) => format!("last synced {} s ago", secs(age)),
                None => format!("not synced in the {} s since the start", secs(age)),
            };
            failing.insert(part, format!("{what} (allowed {} s)", secs(allowance)));
        }
    }
    if let Some(oldest) = outbox.oldest {
        let moving = outbox.since_last_sent.is_some_and(|d| d <= STALL);
        if oldest > STALL && !moving {
            failing.insert(
                "outbox".into(),
                format!(
                    "{} entries waiting, the oldest for {} s, and nothing sent for {}",
                    outbox.depth,
                    secs(oldest),
                    match outbox.since_last_sent {
                        Some(d) => format!("{} s", secs(d)),
                        None => "as long as the daemon has run".into(),
                    }
                ),
            );
        }
    }
    Report { failing }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0)
            .single()
            .unwrap_or_default()
    }

    fn mb(connected: bool, last: Option<i64>, err: Option<&str>) -> MailboxState {
        MailboxState {
            name: "support".into(),
            interval: Duration::from_secs(60),
            connected,
            last_sync: last.map(t),
            last_error: err.map(str::to_string),
        }
    }

    #[test]
    fn healthy_when_synced_and_outbox_empty() {
        let r = evaluate(
            t(100),
            t(0),
            &[mb(true, Some(90), None)],
            &OutboxState::default(),
        );
        assert!(r.ok());
        assert_eq!(r.to_json(), r#"{"status":"ok"}"#);
    }

    #[test]
    fn a_disconnected_mailbox_fails_with_its_error() {
        let r = evaluate(
            t(100),
            t(0),
            &[mb(false, Some(90), Some("connection refused"))],
            &OutboxState::default(),
        );
        assert_eq!(
            r.failing.get("mailbox:support").map(String::as_str),
            Some("not connected: connection refused")
        );
        assert!(r.to_json().contains("\"status\":\"failing\""));
    }

    #[test]
    fn a_stale_mailbox_fails_after_its_allowance() {
        let ok = evaluate(
            t(170),
            t(0),
            &[mb(true, Some(0), None)],
            &OutboxState::default(),
        );
        assert!(ok.ok());
        let late = evaluate(
            t(190),
            t(0),
            &[mb(true, Some(0), None)],
            &OutboxState::default(),
        );
        assert!(late.failing["mailbox:support"].starts_with("last synced 190 s ago"));
        let never = evaluate(
            t(190),
            t(0),
            &[mb(false, None, None)],
            &OutboxState::default(),
        );
        assert!(never.failing["mailbox:support"].contains("not synced"));
        let starting = evaluate(
            t(10),
            t(0),
            &[mb(false, None, None)],
            &OutboxState::default(),
        );
        assert!(starting.ok());
    }

    #[test]
    fn the_outbox_fails_only_when_old_mail_waits_and_nothing_moves() {
        let stuck = OutboxState {
            depth: 3,
            oldest: Some(Duration::from_secs(600)),
            since_last_sent: Some(Duration::from_secs(400)),
        };
        assert!(evaluate(t(0), t(0), &[], &stuck)
            .failing
            .contains_key("outbox"));
        let moving = OutboxState {
            since_last_sent: Some(Duration::from_secs(5)),
            ..stuck.clone()
        };
        assert!(evaluate(t(0), t(0), &[], &moving).ok());
        let young = OutboxState {
            oldest: Some(Duration::from_secs(30)),
            since_last_sent: None,
            ..stuck
        };
        assert!(evaluate(t(0), t(0), &[], &young).ok());
    }
}
