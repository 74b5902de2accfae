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
pub mod identity;
mod level;
mod note;
pub mod privacy;
mod reopen;
mod reply;
mod resolve;
mod respond;
mod review;
pub mod thread;
pub mod token;
mod waiting;

pub use arrival::{on_message, Arrival, ArrivalPlan};
pub use reply::{build_reply, Attachment};
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
    /// Privacy: identity established by other means, or not needed.
    Verify {
        #[serde(default)]
        method: Option<String>,
        #[serde(default)]
        not_needed: Option<String>,
    },
    /// Privacy: send the request to the agency that controls the data.
    Forward {
        agency: String,
    },
    /// Privacy: extend the period, with the reasons (inside the first one).
    Extend {
        reason: String,
    },
    /// Privacy: refuse, with the reasons and the right to complain.
    Deny {
        reason: String,
    },
    /// Privacy: the answer (access requests: with the disclosure).
    Complete {
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        attachments: Vec<reply::Attachment>,
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
            Action::Verify { .. } => "verify",
            Action::Forward { .. } => "forward",
            Action::Extend { .. } => "extend",
            Action::Deny { .. } => "deny",
            Action::Complete { .. } => "complete",
        }
    }

    /// Only a privacy officer may do this (by mail).
    pub fn privacy_only(&self) -> bool {
        matches!(
            self,
            Action::Verify { .. }
                | Action::Forward { .. }
                | Action::Extend { .. }
                | Action::Deny { .. }
                | Action::Complete { .. }
        )
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
    #[error("{case} is not a privacy request")]
    NotPrivacy { case: String },
    #[error("{case} is already {status}")]
    PrivacyFinal {
        case: String,
        status: crate::store::PrivacyStatus,
    },
    #[error("no agency {0:?} with a privacy_contact in [[agencies]]")]
    NoAgency(String),
    #[error("{case} has no statutory period that can be extended")]
    NoClock { case: String },
    #[error("too late for {what}: it had to reach the requester by {by}")]
    TooLate { what: &'static str, by: String },
    #[error("only an authenticated privacy officer may command privacy requests by mail")]
    NotPrivacyOfficer,
}

/// Who acts, when, and the nonce for any mail the action sends.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub notifier: &'a Notifier,
    pub now: DateTime<Utc>,
    pub actor: &'a str,
    pub token: &'a str,
    /// The request's own text (the first message), for forwarding.
    pub request_text: Option<&'a str>,
}

/// The changed case and what else happens, or why not.
pub type Outcome = Result<(Case, CaseChange), Refusal>;

/// Apply `action` to `case` (pure).
pub fn apply(ctx: &Ctx<'_>, case: &Case, action: &Action) -> Outcome {
    match action {
        Action::Review => review::run(ctx, case),
        Action::Respond { note } => respond::run(ctx, case, note.clone())
            .map(|r| privacy::work_started(r, "first response")),
        Action::Resolve => resolve::run(ctx, case),
        Action::Relevel { level, reason } => level::run(ctx, case, *level, reason),
        Action::Waiting => waiting::run(ctx, case),
        Action::Close => close::run(ctx, case, "closed by staff"),
        Action::Reopen => reopen::run(ctx, case, "reopened by staff", None),
        Action::Note { text } => note::run(ctx, case, text),
        Action::Assign { to } => {
            assign::run(ctx, case, to).map(|r| privacy::work_started(r, "assigned"))
        }
        Action::Reply { body } => {
            reply::run(ctx, case, body, None).map(|r| privacy::work_started(r, "answered"))
        }
        Action::Verify { method, not_needed } => {
            privacy::verify(ctx, case, method.as_deref(), not_needed.as_deref())
        }
        Action::Forward { agency } => privacy::forward(ctx, case, agency),
        Action::Extend { reason } => privacy::extend(ctx, case, reason),
        Action::Deny { reason } => privacy::deny(ctx, case, reason),
        Action::Complete { text, attachments } => {
            privacy::complete(ctx, case, text.as_deref(), attachments)
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, EMBEDDED_DEFAULT};
    use crate::store::{Timer, TimerKind};
    use std::sync::Arc;

    fn notifier(extra: &str) -> Notifier {
        let text = format!("{EMBEDDED_DEFAULT}\n{extra}");
        let c = Config::from_toml(&text, "t.toml", std::path::Path::new("/tmp")).expect("config");
        let t = crate::render::Templates::load(None).expect("templates");
        Notifier::new(Arc::new(c), Arc::new(t)).with_keys(Arc::new(ThreadKeys::from_secret(
            "a secret for the unit tests, long",
        )))
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn case() -> Case {
        let d = crate::triage::Decision::test_ticket(3);
        let t = at("2026-12-01T15:00:00Z");
        crate::store::planned_case(
            "SUP-000001",
            &d,
            1,
            "Printer",
            Some(&crate::mail::Addr {
                name: None,
                address: "ann@r.example".into(),
            }),
            &Ok("ann@r.example".into()),
            "support",
            t,
            t,
            vec![],
        )
    }

    fn ctx<'a>(n: &'a Notifier, now: &str) -> Ctx<'a> {
        Ctx {
            notifier: n,
            now: at(now),
            actor: "cli:t",
            token: "tok",
            request_text: None,
        }
    }

    fn arrival<'a>(
        text: &'a str,
        staff: bool,
        recipients: &'a [String],
        notice: &'a [String],
    ) -> Arrival<'a> {
        Arrival {
            message: 2,
            message_id: Some("m2@r.example"),
            received_at: at("2026-12-02T15:00:00Z"),
            sender: Some(if staff {
                "sam@casehost.example"
            } else {
                "ann@r.example"
            }),
            staff,
            recipients,
            parties: &[],
            answers_notice_of: notice,
            text,
            matched_by: "test",
            new_participant: false,
        }
    }

    #[test]
    fn resolve_plans_the_auto_close_and_the_timer_closes_only_a_resolved_case() {
        let n = notifier("");
        let (c, ch) =
            apply(&ctx(&n, "2026-12-02T15:00:00Z"), &case(), &Action::Resolve).expect("resolve");
        assert_eq!(c.status, CaseStatus::Resolved);
        let t: &Timer = ch
            .timers
            .iter()
            .find(|t| t.kind == TimerKind::AutoClose)
            .expect("auto-close");
        assert_eq!(t.due, at("2026-12-09T15:00:00Z"), "7 days by default");
        let fired = n.fire(t, Some(&c), t.due, "x");
        assert_eq!(fired.set_status, Some(CaseStatus::Closed));
        // Reopened meanwhile: the old timer does nothing.
        let (open, _) =
            apply(&ctx(&n, "2026-12-03T15:00:00Z"), &c, &Action::Reopen).expect("reopen");
        assert_eq!(n.fire(t, Some(&open), t.due, "x").set_status, None);
    }

    #[test]
    fn refusals_are_typed() {
        let n = notifier("");
        let x = ctx(&n, "2026-12-02T15:00:00Z");
        let (done, _) = apply(&x, &case(), &Action::Close).expect("close");
        assert!(matches!(
            apply(&x, &done, &Action::Resolve),
            Err(Refusal::Done { .. })
        ));
        assert!(matches!(
            apply(&x, &case(), &Action::Reopen),
            Err(Refusal::NotDone { .. })
        ));
        assert!(matches!(
            apply(&x, &case(), &Action::Note { text: " ".into() }),
            Err(Refusal::Empty(_))
        ));
        assert!(matches!(
            apply(
                &x,
                &case(),
                &Action::Relevel {
                    level: 2,
                    reason: "".into()
                }
            ),
            Err(Refusal::Empty(_))
        ));
        // A note is fine even on a closed case.
        assert!(apply(
            &x,
            &done,
            &Action::Note {
                text: "for the record".into()
            }
        )
        .is_ok());
    }

    #[test]
    fn a_requester_reply_reopens_a_resolved_case_from_its_arrival() {
        let n = notifier("");
        let x = ctx(&n, "2026-12-02T15:00:05Z");
        let (resolved, _) = apply(&x, &case(), &Action::Resolve).expect("resolve");
        let p = on_message(
            &x,
            &resolved,
            &arrival("Broken again, urgent", false, &[], &[]),
        );
        assert_eq!(p.case.status, CaseStatus::Open);
        assert_eq!(p.case.clocks.started_at, Some(at("2026-12-02T15:00:00Z")));
        assert!(p.case.clocks.respond_by > resolved.clocks.respond_by);
        assert!(p.change.notices.iter().any(|n| n.kind == "reopened"));
        assert!(!p.staff);
    }

    #[test]
    fn follow_up_notices_can_be_left_to_the_digest() {
        let mail = notifier("");
        let x = ctx(&mail, "2026-12-02T15:00:05Z");
        let p = on_message(&x, &case(), &arrival("More detail", false, &[], &[]));
        assert_eq!(
            p.change
                .notices
                .iter()
                .filter(|n| n.kind == "follow_up")
                .count(),
            1
        );
        let digest = notifier("[workflow]\nfollow_up_notice = \"digest\"\n");
        let x = ctx(&digest, "2026-12-02T15:00:05Z");
        let p = on_message(&x, &case(), &arrival("More detail", false, &[], &[]));
        assert!(p.change.notices.is_empty());
        assert_eq!(p.case.requester_wrote_at, Some(at("2026-12-02T15:00:00Z")));
    }

    #[test]
    fn a_staff_answer_is_relayed_reply_all_recorded_and_a_bad_command_applies_nothing() {
        let n = notifier("");
        let x = ctx(&n, "2026-12-02T15:00:05Z");
        let notice = vec!["SUP-000001".to_string()];
        let relay = on_message(
            &x,
            &case(),
            &arrival(
                "Please restart it.\n\nOn Tue, Sam wrote:\n> notice",
                true,
                &[],
                &notice,
            ),
        );
        assert!(relay.staff && relay.case.clocks.responded_at.is_some());
        let r = relay
            .change
            .notices
            .iter()
            .find(|n| n.kind == "reply")
            .expect("relay");
        let m = r.mail.as_ref().expect("mail");
        assert_eq!(m.recipients, vec!["ann@r.example".to_string()]);
        assert!(m.mail.contains("Please restart it.") && !m.mail.contains("notice"));
        assert!(matches!(
            n.keys().verify(&m.message_id, "casehost.example", x.now),
            OurId::Verified { .. }
        ));
        let to = vec!["ann@r.example".to_string()];
        let all = on_message(&x, &case(), &arrival("Looking at it.", true, &to, &[]));
        assert!(all.case.clocks.responded_at.is_some() && all.change.notices.is_empty());
        let bad = on_message(
            &x,
            &case(),
            &arrival("#assign sam\n#level 0 no", true, &[], &notice),
        );
        assert_eq!(bad.case.assignee, None);
        assert!(bad
            .change
            .events
            .iter()
            .any(|e| matches!(e, EventKind::CommandRefused { .. })));
        assert!(!bad.change.notices.iter().any(|n| n.kind == "reply"));
    }

    #[test]
    fn stale_notices_are_not_wanted() {
        let mut c = case();
        assert!(still_wanted("breach", &c).is_ok());
        c.clocks.responded_at = Some(at("2026-12-02T15:00:00Z"));
        assert!(still_wanted("breach", &c).is_err());
        assert!(
            still_wanted("page", &c).is_ok(),
            "pages go on until resolved"
        );
        c.status = CaseStatus::Resolved;
        assert!(still_wanted("page", &c).is_err());
        assert!(
            still_wanted("reply", &c).is_ok(),
            "mail to people always goes"
        );
    }
}
