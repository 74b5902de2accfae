//! `reopen`: a resolved or closed case is open again. When the requester
//! wrote (`arrival`, the reply's arrival time), the first-response clock
//! starts afresh from that moment and staff are told.

use super::{set_status, Ctx, Outcome, Refusal};
use crate::store::{Case, CaseChange, CaseStatus, EventKind};
use chrono::{DateTime, Utc};

pub(super) fn run(ctx: &Ctx<'_>, c: &Case, why: &str, arrival: Option<DateTime<Utc>>) -> Outcome {
    if !c.is_done() {
        return Err(Refusal::NotDone {
            case: c.id.clone(),
            status: c.status,
        });
    }
    let n = ctx.notifier;
    let mut c2 = c.clone();
    c2.clocks.plan = c.clocks.plan.saturating_add(1);
    c2.clocks.resolved_at = None;
    c2.clocks.closed_at = None;
    let mut change = CaseChange::default();
    change.events.push(EventKind::Reopened {
        why: why.to_string(),
    });
    set_status(&mut c2, &mut change, CaseStatus::Open);
    if let Some(at) = arrival {
        c2.clocks.started_at = Some(at);
        c2.clocks.responded_at = None;
        c2.clocks = n.clocks_for(&c2);
        change.events.push(EventKind::ClocksSet {
            clocks: c2.clocks.clone(),
        });
        change
            .notices
            .extend(n.reopened_notice(&c2, ctx.now, ctx.token));
    }
    change.timers = n
        .timers_for(&c2, ctx.now)
        .into_iter()
        .filter(|t| t.kind != crate::store::TimerKind::ReviewMissed)
        .map(|mut t| {
            if t.due < ctx.now {
                t.due = ctx.now;
            }
            t
        })
        .collect();
    Ok((c2, change))
}

/// A requester's reply to a resolved case reopens it (pure).
pub(crate) fn by_requester(ctx: &Ctx<'_>, c: &Case, arrival: DateTime<Utc>) -> Outcome {
    run(
        ctx,
        c,
        "the requester replied to the resolved case",
        Some(arrival),
    )
}
