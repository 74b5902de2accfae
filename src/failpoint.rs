//! Named crash points for fault-injection tests.
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
