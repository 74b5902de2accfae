//! `level N reason`: the targets are re-planned from the receipt time (as
//! helpdesks measure SLAs from creation); a target already passed is a
//! breach at once (in hours). Raising to 1 pages at once; raising to 2
//! escalates to on call.

use super::{not_done, Ctx, Outcome, Refusal};
use crate::store::{Case, CaseChange, CaseKind, EventKind};

pub(super) fn run(ctx: &Ctx<'_>, c: &Case, level: u8, reason: &str) -> Outcome {
    not_done(c)?;
    if c.kind != CaseKind::Support {
        return Err(Refusal::NoLevel { case: c.id.clone() });
    }
    if !(1..=5).contains(&level) {
        return Err(Refusal::BadLevel(level.to_string()));
    }
    if reason.trim().is_empty() {
        return Err(Refusal::Empty("a level change (the reason)"));
    }
    let n = ctx.notifier;
    let mut c2 = c.clone();
    c2.level = Some(level);
    c2.doubt = None;
    c2.clocks.plan = c.clocks.plan.saturating_add(1);
    c2.clocks = n.clocks_for(&c2);
    let mut change = CaseChange::default();
    change.events.push(EventKind::Releveled {
        from: c.level,
        to: level,
        reason: reason.trim().to_string(),
    });
    change.events.push(EventKind::ClocksSet {
        clocks: c2.clocks.clone(),
    });
    change
        .notices
        .extend(n.raised_notices(&c2, c.level, ctx.now, ctx.token));
    change.timers = n
        .timers_for(&c2, ctx.now)
        .into_iter()
        .map(|mut t| {
            // A target already passed fires at the next escalation tick.
            if t.due < ctx.now {
                t.due = ctx.now;
            }
            t
        })
        .collect();
    Ok((c2, change))
}
