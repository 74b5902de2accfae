//! Observability: typed events recorded at the edges (a mailbox took a
//! message, the outbox sent one, a token command failed …) feed the
//! Prometheus metrics; the daemon's watch task samples what is a state
//! rather than an event (outbox depth, IMAP connections, cases), evaluates
//! health and raises operator alerts.
//!
//! Layout:
//! - [`metrics`]: the metric families and [`record`] (events → metrics),
//!   and the Prometheus text encoding.
//! - [`health`]: pure: `/healthz` from a snapshot of the parts.
//! - [`alerts`]: pure: the alert state machine (raise once, repeat at most
//!   every `repeat_every`, clear with a recovery mail).
//! - [`http`]: the small hyper server for `/healthz` and `/metrics`.
//! - [`watch`]: the daemon task that samples, alerts and serves.
//! - [`logs`]: log setup (text or JSON) and repeated-failure folding.
//!
//! Not for: anything that changes what the daemon does. No label carries
//! an address, a name or a subject: mailboxes are named by their
//! configured name, cases only counted.

pub mod alerts;
pub mod health;
pub mod http;
pub mod logs;
pub mod metrics;
pub mod watch;

pub use metrics::{record, Event};
