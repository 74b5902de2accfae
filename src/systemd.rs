//! The systemd service protocol (`Type=notify`), over the `sd-notify` crate
//! (a datagram to `$NOTIFY_SOCKET`; no libsystemd):
//!
//! - [`ready`]: `READY=1`, once the daemon has opened its store, bound its
//!   control socket and started its tasks (`Daemon::run_until`);
//! - [`watchdog_task`]: `WATCHDOG=1` every half of `$WATCHDOG_USEC`
//!   (`WatchdogSec=` in the unit), from a task of its own on the daemon's
//!   runtime, so a wedged runtime stops the pings and systemd restarts it;
//! - [`stopping`]: `STOPPING=1` when shutdown begins.
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every call does nothing, and
//! the watchdog task ends at once when `WATCHDOG_USEC` is unset. A failed
//! send is logged at debug level and otherwise ignored: the daemon's work
//! never depends on the supervisor.

use crate::shutdown::CancellationToken;
use sd_notify::NotifyState;
use std::time::Duration;

/// The ping interval for a `WATCHDOG_USEC` value: half the timeout, as
/// `sd_watchdog_enabled(3)` recommends. `None` when unset, not a number or
/// zero (no watchdog). Pure.
pub fn watchdog_interval(watchdog_usec: Option<&str>) -> Option<Duration> {
    let usec: u64 = watchdog_usec?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// Whether a watchdog set by `WATCHDOG_PID` is meant for process `own`
/// (systemd sets it to the main PID; unset means "this process"). Pure.
pub fn watchdog_is_ours(watchdog_pid: Option<&str>, own: u32) -> bool {
    match watchdog_pid {
        None => true,
        Some(p) => p.trim().parse::<u32>().is_ok_and(|p| p == own),
    }
}

/// The ping interval this process was started with, if any.
pub fn watchdog_from_env() -> Option<Duration> {
    let pid = std::env::var("WATCHDOG_PID").ok();
    if !watchdog_is_ours(pid.as_deref(), std::process::id()) {
        return None;
    }
    watchdog_interval(std::env::var("WATCHDOG_USEC").ok().as_deref())
}

fn send(what: &str, state: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!(notify = what, error = %e, "cannot notify the service manager");
    }
}

/// `READY=1`: the daemon is up.
pub fn ready() {
    send("READY=1", &[NotifyState::Ready]);
}

/// `STOPPING=1`: shutdown has begun.
pub fn stopping() {
    send("STOPPING=1", &[NotifyState::Stopping]);
}

/// `WATCHDOG=1`, every [`watchdog_from_env`] interval until `shutdown`;
/// returns at once when no watchdog is asked for.
pub async fn watchdog_task(shutdown: CancellationToken) {
    let Some(every) = watchdog_from_env() else {
        return;
    };
    tracing::debug!(every = ?every, "systemd watchdog enabled");
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => send("WATCHDOG=1", &[NotifyState::Watchdog]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_half_the_watchdog_timeout() {
        assert_eq!(
            watchdog_interval(Some("60000000")),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_interval(Some(" 200000\n")),
            Some(Duration::from_millis(100))
        );
        // Tiny values still give a positive interval.
        assert_eq!(watchdog_interval(Some("1")), Some(Duration::from_millis(1)));
    }

    #[test]
    fn no_watchdog_when_unset_zero_or_garbage() {
        assert_eq!(watchdog_interval(None), None);
        assert_eq!(watchdog_interval(Some("0")), None);
        assert_eq!(watchdog_interval(Some("")), None);
        assert_eq!(watchdog_interval(Some("-5")), None);
        assert_eq!(watchdog_interval(Some("60s")), None);
    }

    #[test]
    fn the_watchdog_pid_must_be_ours() {
        assert!(watchdog_is_ours(None, 42));
        assert!(watchdog_is_ours(Some("42"), 42));
        assert!(!watchdog_is_ours(Some("43"), 42));
        assert!(!watchdog_is_ours(Some("x"), 42));
    }
}
