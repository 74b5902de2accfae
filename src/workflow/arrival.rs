//! What a message that joins a case does (pure).
//!
//! - From authenticated staff: a **staff message**, not a follow-up. Its
//!   command lines apply (all or none; a refusal is answered with a short
//!   error mail to the sender, and the message is still recorded). It is
//!   the response when it reached the requester (reply-all: recorded,
//!   never sent again), or when it answers one of our notifications: then
//!   ticketd relays it to the requester from the case's address, quoted
//!   notification stripped. `#note` keeps it internal.
//! - From anyone else: a follow-up. A resolved case reopens with a fresh
//!   first-response target from the reply's arrival and staff are told; a
//!   case waiting on the requester is open again; on an open case staff
//!   (or the assignee) hear of it unless config keeps that for the digest.

use super::{commands, reopen, reply, responded, set_status, Ctx, Refusal};
use crate::config::FollowUpNotice;
use crate::store::{Case, CaseChange, CaseStatus, EventKind};
use chrono::{DateTime, Utc};

/// A message joining a case, as the workflow sees it.
#[derive(Debug, Clone)]
pub struct Arrival<'a> {
    /// The stored message's id.
    pub message: u64,
    pub message_id: Option<&'a str>,
    pub received_at: DateTime<Utc>,
    /// From, lower case.
    pub sender: Option<&'a str>,
    /// The sender is staff and its authentication did not fail.
    pub staff: bool,
    /// To and Cc, lower case.
    pub recipients: &'a [String],
    /// From, To and Cc without our own addresses, lower case.
    pub parties: &'a [String],
    /// Cases whose staff notifications this message answers (valid token).
    pub answers_notice_of: &'a [String],
    /// The body text.
    pub text: &'a str,
    pub matched_by: &'a str,
    /// The sender was not a party (it joined with a valid token).
    pub new_participant: bool,
}

/// The case after the message, what else happens, and whose events they are.
#[derive(Debug, Clone)]
pub struct ArrivalPlan {
    pub case: Case,
    pub change: CaseChange,
    pub actor: String,
    /// Recorded as a staff message (not a follow-up).
    pub staff: bool,
}

/// What the message `a` does to `case` (pure).
pub fn on_message(ctx: &Ctx<'_>, case: &Case, a: &Arrival<'_>) -> ArrivalPlan {
    let mut n = case.clone();
    let mut change = CaseChange::default();
    let sender = a.sender.unwrap_or("").to_string();
    for p in a.parties {
        if !n.participants.iter().any(|x| x == p) {
            n.participants.push(p.clone());
        }
    }
    if a.new_participant && !sender.is_empty() {
        change.events.push(EventKind::ParticipantAdded {
            address: sender.clone(),
            message: a.message,
        });
    }
    if a.staff {
        let actor = if sender.is_empty() {
            ctx.actor.to_string()
        } else {
            sender.clone()
        };
        let sctx = Ctx {
            actor: &actor,
            ..*ctx
        };
        let (n, change) = staff_message(&sctx, n, change, a);
        return ArrivalPlan {
            case: n,
            change,
            actor,
            staff: true,
        };
    }
    change.events.push(EventKind::FollowUp {
        message: a.message,
        matched_by: a.matched_by.to_string(),
    });
    if let Some(mid) = a.message_id {
        n.last_requester_message_id = Some(mid.to_string());
    }
    n.requester_wrote_at = Some(a.received_at);
    if n.kind == crate::store::CaseKind::Privacy {
        // A reply quoting the identity code; the agency acknowledging a
        // forwarded request.
        if let Some((c2, ch)) = super::privacy::code_reply(ctx, &n, &sender, a.text, a.received_at)
        {
            n = c2;
            change.merge(ch);
        }
        let acked = n.privacy.as_mut().filter(|p| {
            p.status == crate::store::PrivacyStatus::Forwarded
                && p.agency_acknowledged_at.is_none()
                && p.forward_contact
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(&sender))
        });
        if let Some(p) = acked {
            p.agency_acknowledged_at = Some(a.received_at);
            change
                .events
                .push(EventKind::AgencyAcknowledged { message: a.message });
            return ArrivalPlan {
                case: n,
                change,
                actor: "ticketd".to_string(),
                staff: false,
            };
        }
    }
    match n.status {
        CaseStatus::Resolved => {
            if let Ok((c2, ch)) = reopen::by_requester(ctx, &n, a.received_at) {
                n = c2;
                change.merge(ch);
            }
        }
        CaseStatus::Waiting => {
            set_status(&mut n, &mut change, CaseStatus::Open);
            change.notices.extend(follow_up(ctx, &n, &sender));
        }
        CaseStatus::New | CaseStatus::Open => change.notices.extend(follow_up(ctx, &n, &sender)),
        CaseStatus::Closed => {}
    }
    ArrivalPlan {
        case: n,
        change,
        actor: "ticketd".to_string(),
        staff: false,
    }
}

fn follow_up(ctx: &Ctx<'_>, c: &Case, sender: &str) -> Option<crate::store::Notice> {
    if ctx.notifier.config().workflow.follow_up_notice == FollowUpNotice::Digest {
        return None;
    }
    ctx.notifier.follow_up_notice(c, sender, ctx.now, ctx.token)
}

fn staff_message(
    ctx: &Ctx<'_>,
    mut n: Case,
    mut change: CaseChange,
    a: &Arrival<'_>,
) -> (Case, CaseChange) {
    let words = crate::triage::text::reply_words(a.text);
    let requester = n.requester.as_ref().map(|r| r.address.to_ascii_lowercase());
    let reply_to = n.reply_address.as_ref().map(|r| r.to_ascii_lowercase());
    let reaches = a
        .recipients
        .iter()
        .any(|r| Some(r) == requester.as_ref() || Some(r) == reply_to.as_ref());
    let refuse = |n: Case, mut change: CaseChange, error: Refusal, names: Vec<String>| {
        change.events.push(EventKind::StaffMessage {
            message: a.message,
            response: false,
            relayed: false,
            commands: names,
        });
        change.events.push(EventKind::CommandRefused {
            message: a.message,
            error: error.to_string(),
        });
        if let Some(to) = a.sender {
            change.notices.extend(ctx.notifier.command_error(
                &n,
                to,
                &error.to_string(),
                ctx.now,
                ctx.token,
            ));
        }
        (n, change)
    };
    let cmds = match commands::parse(&words) {
        Ok(c) => c,
        Err(e) => return refuse(n, change, e, Vec::new()),
    };
    let names: Vec<String> = cmds.actions.iter().map(|x| x.name().to_string()).collect();
    // Privacy requests take commands (and relays) only from an
    // authenticated privacy officer.
    let officer = a.sender.is_some_and(|s| {
        ctx.notifier
            .config()
            .people
            .privacy_officer
            .iter()
            .any(|o| o.as_str().eq_ignore_ascii_case(s))
    });
    let privacy_case = n.kind == crate::store::CaseKind::Privacy;
    let needs_officer = cmds.actions.iter().any(|x| x.privacy_only())
        || (privacy_case
            && cmds
                .actions
                .iter()
                .any(|x| !matches!(x, super::Action::Note { .. })));
    if needs_officer && !officer {
        return refuse(n, change, Refusal::NotPrivacyOfficer, names);
    }
    let (mut n2, mut ch) = match super::apply_all(ctx, &n, &cmds.actions) {
        Ok(r) => r,
        Err(e) => return refuse(n, change, e, names),
    };
    let answers_notice = a.answers_notice_of.contains(&n.id);
    let completes = cmds
        .actions
        .iter()
        .any(|x| matches!(x, super::Action::Complete { .. }));
    let relay = !cmds.internal
        && !completes
        && !reaches
        && answers_notice
        && (!privacy_case || officer)
        && !cmds.body.trim().is_empty();
    let response = !cmds.internal && (reaches || relay);
    if relay {
        match reply::reply_notice(ctx, &n2, &cmds.body) {
            Ok(notice) => ch.notices.push(notice),
            Err(e) => return refuse(n, change, e, names),
        }
    }
    if response {
        responded(&mut n2, ctx.now, &mut ch);
        (n2, ch) = super::privacy::work_started((n2, ch), "answered by mail");
    }
    change.events.push(EventKind::StaffMessage {
        message: a.message,
        response,
        relayed: relay,
        commands: names,
    });
    change.merge(ch);
    n = n2;
    (n, change)
}
