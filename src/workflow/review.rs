//! `review`: the triage review is done; the review clock stops and a new
//! case becomes open.

use super::{not_done, open_if_new, Ctx, Outcome, Refusal};
use crate::store::{Case, CaseChange, EventKind};

pub(super) fn run(ctx: &Ctx<'_>, c: &Case) -> Outcome {
    not_done(c)?;
    if let Some(at) = c.clocks.reviewed_at {
        return Err(Refusal::AlreadyReviewed {
            case: c.id.clone(),
            at: at.to_rfc3339(),
        });
    }
    let mut n = c.clone();
    n.clocks.reviewed_at = Some(ctx.now);
    n.doubt = None;
    let mut change = CaseChange::default();
    change.events.push(EventKind::Reviewed);
    open_if_new(&mut n, &mut change);
    Ok((n, change))
}
