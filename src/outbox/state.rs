//! The outbox state machine, as pure functions on an entry:
//!
//! ```text
//! queued ──begin_send──▶ sending ──succeeded──▶ sent
//!    ▲                      │
//!    └──── failed(transient, younger than max age) ◀┘
//!                           └── failed(permanent, or too old) ──▶ failed
//! ```
//!
//! A transient failure waits with exponential backoff (1 min doubling, capped
//! at 1 h, plus jitter) until the entry is older than the maximum age.

use super::SendError;
use crate::store::{OutboxEntry, OutboxState};
use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    pub max_age: Duration,
    /// Add up to 10 % random jitter (off in tests for exact times).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_backoff: Duration::minutes(1),
            max_backoff: Duration::hours(1),
            max_age: Duration::days(3),
            jitter: true,
        }
    }
}

pub fn begin_send(e: &mut OutboxEntry) {
    e.state = OutboxState::Sending;
    e.attempts = e.attempts.saturating_add(1);
}

pub fn succeeded(e: &mut OutboxEntry, now: DateTime<Utc>, delivered_as: String) {
    e.state = OutboxState::Sent;
    e.sent_at = Some(now);
    e.delivered_as = Some(delivered_as);
    e.last_error = None;
}

/// Record a failure. Returns true when the entry is now failed for good.
pub fn failed(e: &mut OutboxEntry, now: DateTime<Utc>, err: &SendError, p: &RetryPolicy) -> bool {
    e.last_error = Some(err.to_string());
    let too_old = now - e.created_at >= p.max_age;
    match err {
        SendError::Permanent(_) => {
            e.state = OutboxState::Failed;
            e.next_attempt_at = now;
            true
        }
        SendError::Transient(_) if too_old => {
            e.state = OutboxState::Failed;
            e.next_attempt_at = now;
            e.last_error = Some(format!("{err} (gave up after {} h)", p.max_age.num_hours()));
            true
        }
        SendError::Transient(_) => {
            let exp = e.attempts.saturating_sub(1).min(20);
            let mut wait = p.first_backoff * 2i32.saturating_pow(exp);
            if wait > p.max_backoff {
                wait = p.max_backoff;
            }
            if p.jitter {
                let ms = wait.num_milliseconds().max(1) as u64;
                wait += Duration::milliseconds(fastrand::u64(0..=ms / 10) as i64);
            }
            e.state = OutboxState::Queued;
            e.next_attempt_at = now + wait;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Purpose;
    use chrono::TimeZone;

    fn entry(created: DateTime<Utc>) -> OutboxEntry {
        OutboxEntry {
            id: 1,
            case: Some("SUP-000001".into()),
            purpose: Purpose::Ack,
            from: "support@casehost.example".into(),
            recipients: vec!["a@x.example".into()],
            message_id: "ack.SUP-000001.x@casehost.example".into(),
            in_reply_to: None,
            subject: "s".into(),
            state: OutboxState::Queued,
            attempts: 0,
            created_at: created,
            next_attempt_at: created,
            last_error: None,
            sent_at: None,
            delivered_as: None,
            mail: String::new(),
            notice: None,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn queued_sending_sent() {
        let t0 = Utc
            .with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
            .single()
            .unwrap_or_default();
        let mut e = entry(t0);
        begin_send(&mut e);
        assert_eq!((e.state, e.attempts), (OutboxState::Sending, 1));
        succeeded(&mut e, t0, "f.eml".into());
        assert_eq!(e.state, OutboxState::Sent);
        assert_eq!(e.sent_at, Some(t0));
    }

    #[test]
    fn transient_failures_back_off_then_give_up() {
        let t0 = Utc
            .with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
            .single()
            .unwrap_or_default();
        let mut e = entry(t0);
        let err = SendError::Transient("421 try later".into());
        begin_send(&mut e);
        assert!(!failed(&mut e, t0, &err, &policy()));
        assert_eq!(e.state, OutboxState::Queued);
        assert_eq!(e.next_attempt_at, t0 + Duration::minutes(1));
        begin_send(&mut e);
        assert!(!failed(&mut e, t0, &err, &policy()));
        assert_eq!(e.next_attempt_at, t0 + Duration::minutes(2));
        for _ in 0..10 {
            begin_send(&mut e);
            failed(&mut e, t0, &err, &policy());
        }
        assert_eq!(
            e.next_attempt_at,
            t0 + Duration::hours(1),
            "backoff is capped"
        );
        begin_send(&mut e);
        assert!(failed(&mut e, t0 + Duration::days(3), &err, &policy()));
        assert_eq!(e.state, OutboxState::Failed);
    }

    #[test]
    fn permanent_failure_is_final() {
        let t0 = Utc
            .with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
            .single()
            .unwrap_or_default();
        let mut e = entry(t0);
        begin_send(&mut e);
        assert!(failed(
            &mut e,
            t0,
            &SendError::Permanent("550 no such user".into()),
            &policy()
        ));
        assert_eq!(e.state, OutboxState::Failed);
        assert!(e.last_error.as_deref().is_some_and(|s| s.contains("550")));
    }
}
