//! ticketd turns the mail that reaches a software vendor's `support@` and
//! `privacy@` mailboxes into tracked cases, and answers each new case with an
//! acknowledgement, without ever answering a robot or losing a message.
//!
//! # Layout
//!
//! A message moves one way through the crate:
//!
//! ```text
//! source ─▶ mail (parse) ─▶ triage ─▶ pipeline ─▶ store (one transaction) ─▶ flush ─▶ source.ack
//!                                                    │
//!                                                    └─▶ outbox entries ─▶ outbox worker ─▶ transport
//! ```
//!
//! Pure core (no I/O, tested with data):
//! - [`mail`]: a parsed, bounded view of a raw message over mail-parser.
//! - [`triage`]: parsed message + context in, decision + reasons out.
//! - [`policy`]: the vendor's support levels, targets and privacy rights.
//! - [`render`]: acknowledgement templates and the building of outgoing mail.
//! - [`classify`]: `ticketd classify`, triage of files in a stable JSON shape.
//! - [`observe`]: typed events → Prometheus metrics, `/healthz`, operator
//!   alerts (mailbox down, outbox stuck, disk full, token command), log setup.
//! - [`logmask`]: addresses in foreign text shortened before they are logged.
//! - [`erase`]: what an erasure or a retention run removes (the planners;
//!   the sled, compaction and IMAP work sits beside them in the module).
//!
//! I/O shell (behind small traits so tests can drive time and faults):
//! - [`source`]: where messages come from (Maildir, import files; IMAP later).
//! - [`store`]: the sled database: cases, messages, events, outbox, dedupe.
//! - [`outbox`]: delivering queued mail through a transport.
//! - [`clock`]: the one place that reads the wall clock.
//! - [`pipeline`]: one message (or batch) from a source into the store.
//! - [`daemon`]: wires sources, pipeline, outbox worker, control socket, shutdown.
//! - [`control`]: the JSON protocol over the daemon's Unix socket.
//! - [`shutdown`]: the cancellation token SIGINT/SIGTERM cancel (never lost).
//! - [`systemd`]: `Type=notify` readiness, watchdog and stopping (no-ops outside systemd).
//! - [`config`]: raw TOML to a validated [`config::Config`].
//! - [`demo`]: the embedded default (demo Maildir seeded from `fixtures/demo`).
//! - [`cli`]: the subcommands behind the thin `main.rs`.
//! - [`alloc`]: two glibc malloc arenas unless `MALLOC_ARENA_MAX` says otherwise.
//! - [`failpoint`]: named crash points that tests switch on by environment variable.
//! - [`tls`], [`secrets`]: TLS client settings (checks always on) and
//!   credentials (passwords, XOAUTH2 tokens) resolved at connect time.

pub mod alloc;
pub mod backup;
pub mod classify;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod erase;
pub mod failpoint;
pub mod logmask;
pub mod mail;
pub mod notify;
pub mod observe;
pub mod outbox;
pub mod pipeline;
pub mod policy;
pub mod render;
pub mod schedule;
pub mod secrets;
pub mod shutdown;
pub mod source;
pub mod store;
pub mod systemd;
pub mod tls;
pub mod triage;
pub mod workflow;
