//! Named crash points for fault-injection tests, and the text of a caught
//! panic (for the record of a message that made some stage fail).
//!
//! Setting `TICKETD_FAILPOINT=<name>` makes [`hit`] with that name end the
//! process at once (exit code 86, no destructors, no flush), which is what a
//! `kill -9` at that point would leave behind. Unset, a check is one atomic
//! load. Names in use: `after_flush_before_ack` (case durably stored, source
//! message not yet moved), `after_send_before_mark` (mail written by the
//! transport, outbox entry not yet marked sent).

use std::sync::OnceLock;

static ARMED: OnceLock<Option<String>> = OnceLock::new();

/// End the process here when the failpoint `name` is armed.
pub fn hit(name: &str) {
    let armed = ARMED.get_or_init(|| std::env::var("TICKETD_FAILPOINT").ok());
    if armed.as_deref() == Some(name) {
        eprintln!("ticketd: failpoint {name} hit; exiting as if killed");
        std::process::exit(86);
    }
}

/// Named delay points: `TICKETD_DELAY=name:ms[,name:ms]` makes [`delay`]
/// with that name sleep, so a test can widen a race window (e.g.
/// `before_idle`, between the last search and entering IDLE; `shutdown`,
/// after the shutdown token is cancelled and before the tasks are joined). Unset, a
/// check is one atomic load.
pub fn delay_ms(name: &str) -> Option<u64> {
    static DELAYS: OnceLock<Vec<(String, u64)>> = OnceLock::new();
    let all = DELAYS.get_or_init(|| {
        std::env::var("TICKETD_DELAY")
            .ok()
            .map(|v| {
                v.split(',')
                    .filter_map(|p| {
                        let (n, ms) = p.split_once(':')?;
                        Some((n.trim().to_string(), ms.trim().parse().ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default()
    });
    all.iter().find(|(n, _)| n == name).map(|(_, ms)| *ms)
}

/// Sleep at the named delay point when it is armed (see [`delay_ms`]).
pub async fn delay(name: &str) {
    if let Some(ms) = delay_ms(name) {
        tracing::debug!(point = name, ms, "delay point");
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// Named panic points: `TICKETD_PANIC=name` makes [`panic_point`] with that
/// name panic (tests of the isolation of a failing message).
pub fn panic_point(name: &str, subject: &str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var("TICKETD_PANIC").ok());
    if let Some(spec) = armed.as_deref() {
        // `name` or `name:SUBSTRING` (panic only for subjects with it).
        let (n, needle) = spec.split_once(':').unwrap_or((spec, ""));
        if n == name && subject.contains(needle) {
            panic!("panic point {name} armed");
        }
    }
}

/// The message of a caught panic.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic".to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn panic_text_reads_the_payload_of_a_caught_panic() {
        let p = std::panic::catch_unwind(|| panic!("boom {}", 7)).err();
        let text = p.as_deref().map(super::panic_text);
        assert_eq!(text.as_deref(), Some("panic: boom 7"));
        let p = std::panic::catch_unwind(|| panic!("static")).err();
        assert_eq!(
            p.as_deref().map(super::panic_text).as_deref(),
            Some("panic: static")
        );
    }
}
