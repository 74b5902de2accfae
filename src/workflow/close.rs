//! `close`: the case is finished for good; a requester's later mail opens
//! a new case linked to this one.

use super::{not_closed, set_status, Ctx, Outcome};
use crate::store::{Case, CaseChange, CaseStatus, EventKind};

pub(super) fn run(ctx: &Ctx<'_>, c: &Case, why: &str) -> Outcome {
    not_closed(c)?;
    let mut n = c.clone();
    n.clocks.closed_at = Some(ctx.now);
    if n.clocks.resolved_at.is_none() {
        n.clocks.resolved_at = Some(ctx.now);
    }
    n.clocks.plan = c.clocks.plan.saturating_add(1);
    let mut change = CaseChange::default();
    change.events.push(EventKind::Closed {
        why: why.to_string(),
    });
    set_status(&mut n, &mut change, CaseStatus::Closed);
    Ok((n, change))
}
