//! `assign`: who works the case; follow-up notices go to them.

use super::{not_closed, Ctx, Outcome, Refusal};
use crate::store::{Case, CaseChange, EventKind};

pub(super) fn run(_ctx: &Ctx<'_>, c: &Case, to: &str) -> Outcome {
    not_closed(c)?;
    let to = to.trim();
    if to.is_empty() || to.contains(char::is_control) || to.len() > 200 {
        return Err(Refusal::Empty("assign (a name or address)"));
    }
    let mut n = c.clone();
    let to = if to.contains('@') {
        to.to_ascii_lowercase()
    } else {
        to.to_string()
    };
    n.assignee = Some(to.clone());
    let mut change = CaseChange::default();
    change.events.push(EventKind::Assigned {
        from: c.assignee.clone(),
        to,
    });
    Ok((n, change))
}
