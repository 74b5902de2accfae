//! `resolve`: every clock stops (pending timers are dropped when they come
//! due, queued notices before they are sent) and the case is closed
//! automatically `workflow.close_after` later.

use super::{not_done, set_status, Ctx, Outcome};
use crate::store::{Case, CaseChange, CaseStatus, EventKind, Timer, TimerKind};

pub(super) fn run(ctx: &Ctx<'_>, c: &Case) -> Outcome {
    not_done(c)?;
    let mut n = c.clone();
    n.clocks.resolved_at = Some(ctx.now);
    n.clocks.plan = c.clocks.plan.saturating_add(1);
    let mut change = CaseChange::default();
    change.events.push(EventKind::Resolved);
    set_status(&mut n, &mut change, CaseStatus::Resolved);
    let after = chrono::Duration::from_std(ctx.notifier.config().workflow.close_after.0)
        .unwrap_or_else(|_| chrono::Duration::days(7));
    change.timers.push(Timer {
        case: n.id.clone(),
        due: ctx.now + after,
        plan: n.clocks.plan,
        kind: TimerKind::AutoClose,
    });
    Ok((n, change))
}
