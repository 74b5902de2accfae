//! `respond`: the first response was given by other means (phone, another
//! mail system); the response clock stops (warnings, breach, on call,
//! privacy reminders). Level-1 pages go on until the case is resolved.

use super::{not_done, responded, Ctx, Outcome};
use crate::store::{Case, CaseChange, EventKind};

pub(super) fn run(ctx: &Ctx<'_>, c: &Case, note: Option<String>) -> Outcome {
    not_done(c)?;
    let mut n = c.clone();
    let mut change = CaseChange::default();
    change.events.push(EventKind::Responded { note });
    responded(&mut n, ctx.now, &mut change);
    Ok((n, change))
}
