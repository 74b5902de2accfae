//! The operator alert state machine (pure). Each alert has a key
//! (`mailbox_unreachable:support`, `outbox_stuck`, `disk_full`,
//! `token_command:mailbox support`) and is fed whether its condition holds
//! now. It is mailed once when raised, again at most every `repeat_every`
//! while it lasts, and cleared with a recovery mail. A condition that
//! flaps is rate-limited too: a new raise within `repeat_every` of the last
//! mail is not mailed (nor then its recovery), but still counted as active.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;

/// What to mail for one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Raise,
    Repeat,
    Clear,
}

#[derive(Debug, Clone, Default)]
struct Entry {
    active: bool,
    /// The current raise was mailed (so its recovery is mailed too).
    mailed: bool,
    last_mail: Option<DateTime<Utc>>,
}

/// Every alert's state.
#[derive(Debug, Clone)]
pub struct Book {
    repeat_every: Duration,
    entries: BTreeMap<String, Entry>,
}

impl Book {
    pub fn new(repeat_every: Duration) -> Book {
        Book {
            repeat_every,
            entries: BTreeMap::new(),
        }
    }

    fn may_mail(&self, e: &Entry, now: DateTime<Utc>) -> bool {
        e.last_mail
            .is_none_or(|t| (now - t).to_std().unwrap_or(Duration::ZERO) >= self.repeat_every)
    }

    /// Feed whether `key`'s condition holds at `now`.
    pub fn update(&mut self, key: &str, active: bool, now: DateTime<Utc>) -> Option<Action> {
        let e = self.entries.get(key).cloned().unwrap_or_default();
        let may = self.may_mail(&e, now);
        let (next, action) = match (e.active, active) {
            (false, false) => {
                // Known, so its gauge reads 0 before it is ever raised.
                self.entries.entry(key.to_string()).or_default();
                return None;
            }
            (false, true) if may => (
                Entry {
                    active: true,
                    mailed: true,
                    last_mail: Some(now),
                },
                Some(Action::Raise),
            ),
            (false, true) => (
                Entry {
                    active: true,
                    mailed: false,
                    ..e
                },
                None,
            ),
            (true, true) if may => (
                Entry {
                    active: true,
                    mailed: true,
                    last_mail: Some(now),
                },
                Some(if e.mailed {
                    Action::Repeat
                } else {
                    Action::Raise
                }),
            ),
            (true, true) => return None,
            (true, false) => (
                Entry {
                    active: false,
                    mailed: false,
                    ..e.clone()
                },
                e.mailed.then_some(Action::Clear),
            ),
        };
        self.entries.insert(key.to_string(), next);
        action
    }

    /// Keys of the alerts whose condition held at the last update.
    pub fn active(&self) -> Vec<(String, bool)> {
        self.entries
            .iter()
            .map(|(k, e)| (k.clone(), e.active))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + min * 60, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn raised_once_repeated_hourly_cleared_with_recovery() {
        let mut b = Book::new(Duration::from_secs(3600));
        assert_eq!(b.update("disk_full", false, t(0)), None);
        assert_eq!(b.active(), vec![("disk_full".to_string(), false)]);
        assert_eq!(b.update("disk_full", true, t(1)), Some(Action::Raise));
        assert_eq!(b.update("disk_full", true, t(2)), None);
        assert_eq!(b.update("disk_full", true, t(30)), None);
        assert_eq!(b.update("disk_full", true, t(61)), Some(Action::Repeat));
        assert_eq!(b.active(), vec![("disk_full".to_string(), true)]);
        assert_eq!(b.update("disk_full", false, t(62)), Some(Action::Clear));
        assert_eq!(b.update("disk_full", false, t(63)), None);
        assert_eq!(b.active(), vec![("disk_full".to_string(), false)]);
    }

    #[test]
    fn flapping_is_rate_limited() {
        let mut b = Book::new(Duration::from_secs(3600));
        assert_eq!(b.update("outbox_stuck", true, t(0)), Some(Action::Raise));
        assert_eq!(b.update("outbox_stuck", false, t(1)), Some(Action::Clear));
        // Raised again within the hour: not mailed, nor its recovery.
        assert_eq!(b.update("outbox_stuck", true, t(2)), None);
        assert_eq!(b.update("outbox_stuck", false, t(3)), None);
        assert_eq!(b.update("outbox_stuck", true, t(4)), None);
        // Still on after the hour: mailed as a raise now.
        assert_eq!(b.update("outbox_stuck", true, t(61)), Some(Action::Raise));
        assert_eq!(b.update("outbox_stuck", false, t(62)), Some(Action::Clear));
    }

    #[test]
    fn alerts_are_independent() {
        let mut b = Book::new(Duration::from_secs(3600));
        assert_eq!(b.update("a", true, t(0)), Some(Action::Raise));
        assert_eq!(b.update("b", true, t(0)), Some(Action::Raise));
        assert_eq!(b.update("a", false, t(1)), Some(Action::Clear));
        assert_eq!(b.update("b", true, t(1)), None);
    }
}
