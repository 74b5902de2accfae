//! The case workflow (pure): every staff action — by CLI, control socket or
//! mail command — is a function of (case, action, actor, time) that returns
//! the changed case and what else happens ([`CaseChange`]: events, notices,
//! timers), or a typed [`Refusal`]. One file per action; `arrival.rs`
//! decides what a message that joins a case does (staff message, relay,
//! commands, reopen, follow-up notice); `thread.rs` is the threading rule;
//! `token.rs` signs our Message-IDs.
//!
//! Statuses: `new` → `open` (reviewed or answered) → `waiting` (on the
//! requester; their reply returns it to `open`) → `resolved` → `closed`
//! (automatically `workflow.close_after` after resolving).

pub mod arrival;
mod assign;
mod close;
pub mod commands;
mod level;
mod note;
mod reopen;
mod reply;
mod resolve;
mod respond;
mod review;
pub mod thread;
pub mod token;
mod waiting;

pub use arrival::{on_message, Arrival, ArrivalPlan};
pub use reply::build_reply;
pub use thread::{HeaderRef, Thread, ThreadLookup, ThreadQuery};
pub use token::{OurId, ThreadKeys};

use crate::notify::Notifier;
use crate::store::{Case, CaseChange, CaseStatus, EventKind};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What staff do to a case (CLI, control socket, mail commands).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Triage review done.
    Review,
    /// First response given by other means.
    Respond {
        note: Option<String>,
    },
    Resolve,
    /// New level, with the reason (re-plans the targets).
    Relevel {
        level: u8,
        reason: String,
    },
    /// Waiting on the requester.
    Waiting,
    Close,
    Reopen,
    /// An internal note (never sent to the requester).
    Note {
        text: String,
    },
    Assign {
        to: String,
    },
    /// Mail to the requester, threaded; counts as the response.
    Reply {
        body: String,
    },
}

impl Action {
    /// The command word, as in mail commands and the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Review => "review",
            Action::Respond { .. } => "respond",
            Action::Resolve => "resolve",
            Action::Relevel { .. } => "level",
            Action::Waiting => "waiting",
            Action::Close => "close",
            Action::Reopen => "reopen",
            Action::Note { .. } => "note",
            Action::Assign { .. } => "assign",
            Action::Reply { .. } => "reply",
        }
    }
}

/// Why an action was refused (nothing of it applies).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{case} is {status}")]
    Done { case: String, status: CaseStatus },
    #[error("{case} is already {status}")]
    Already { case: String, status: CaseStatus },
    #[error("{case} was already reviewed at {at}")]
    AlreadyReviewed { case: String, at: String },
    #[error("{case} is {status}: only a resolved or closed case can be reopened")]
    NotDone { case: String, status: CaseStatus },
    #[error("{case} is a privacy request: it has no level")]
    NoLevel { case: String },
    #[error("level {0} is not 1..5")]
    BadLevel(String),
    #[error("{0} needs text")]
    Empty(&'static str),
    #[error("{case} has no requester address to write to")]
    NoRequester { case: String },
    #[error("the mail could not be built: {0}")]
    Render(String),
    #[error("unknown command #{0} (known: #note, #level N reason, #assign NAME, #waiting, #resolve, #close, #reopen, #review)")]
    UnknownCommand(String),
}

/// Who acts, when, and the nonce for any mail the action sends.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub notifier: &'a Notifier,
    pub now: DateTime<Utc>,
    pub actor: &'a str,
    pub token: &'a str,
}

/// The changed case and what else happens, or why not.
pub type Outcome = Result<(Case, CaseChange), Refusal>;

/// Apply `action` to `case` (pure).
pub fn apply(ctx: &Ctx<'_>, case: &Case, action: &Action) -> Outcome {
    match action {
        Action::Review => review::run(ctx, case),
        Action::Respond { note } => respond::run(ctx, case, note.clone()),
        Action::Resolve => resolve::run(ctx, case),
        Action::Relevel { level, reason } => level::run(ctx, case, *level, reason),
        Action::Waiting => waiting::run(ctx, case),
        Action::Close => close::run(ctx, case, "closed by staff"),
        Action::Reopen => reopen::run(ctx, case, "reopened by staff", None),
        Action::Note { text } => note::run(ctx, case, text),
        Action::Assign { to } => assign::run(ctx, case, to),
        Action::Reply { body } => reply::run(ctx, case, body, None),
    }
}

/// Apply several actions in order; the first refusal refuses them all.
pub fn apply_all(ctx: &Ctx<'_>, case: &Case, actions: &[Action]) -> Outcome {
    let mut cur = case.clone();
    let mut all = CaseChange::default();
    for a in actions {
        let (next, change) = apply(ctx, &cur, a)?;
        cur = next;
        all.merge(change);
    }
    Ok((cur, all))
}

/// Whether a queued notification of `kind` is still wanted for `c` when it
/// is about to be sent (timers check the same when they fire): nothing
/// pages, warns or breaches for a case that is resolved, closed or already
/// answered. Mail to people (replies, error notes) always goes.
pub fn still_wanted(kind: &str, c: &Case) -> Result<(), String> {
    let done = || {
        if c.is_done() {
            Err(format!("{} is {}", c.id, c.status))
        } else {
            Ok(())
        }
    };
    let answered = || {
        if c.clocks.responded_at.is_some() {
            Err(format!("{} was answered", c.id))
        } else {
            Ok(())
        }
    };
    match kind {
        "page" => done(),
        "on_call" | "warning" | "breach" | "privacy_reminder" | "privacy_overdue" => {
            done()?;
            answered()
        }
        "review_missed" => {
            done()?;
            answered()?;
            if c.clocks.reviewed_at.is_some() {
                return Err(format!("{} was reviewed", c.id));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

pub(crate) fn not_done(c: &Case) -> Result<(), Refusal> {
    if c.is_done() {
        Err(Refusal::Done {
            case: c.id.clone(),
            status: c.status,
        })
    } else {
        Ok(())
    }
}

pub(crate) fn not_closed(c: &Case) -> Result<(), Refusal> {
    if c.status == CaseStatus::Closed {
        Err(Refusal::Done {
            case: c.id.clone(),
            status: c.status,
        })
    } else {
        Ok(())
    }
}

/// Move `n` to `to`, with the event.
pub(crate) fn set_status(n: &mut Case, change: &mut CaseChange, to: CaseStatus) {
    if n.status != to {
        change
            .events
            .push(EventKind::StatusChanged { from: n.status, to });
        n.status = to;
    }
}

pub(crate) fn open_if_new(n: &mut Case, change: &mut CaseChange) {
    if n.status == CaseStatus::New {
        set_status(n, change, CaseStatus::Open);
    }
}

/// The first response is given now (once): the response clock stops.
pub(crate) fn responded(n: &mut Case, now: DateTime<Utc>, change: &mut CaseChange) {
    if n.clocks.responded_at.is_none() {
        n.clocks.responded_at = Some(now);
    }
    if n.clocks.reviewed_at.is_none() {
        n.clocks.reviewed_at = Some(now);
    }
    n.doubt = None;
    open_if_new(n, change);
}
