//! `note`: an internal note on the case log (never sent to the requester);
//! allowed in every status.

use super::{Ctx, Outcome, Refusal};
use crate::store::{Case, CaseChange, EventKind};

pub(super) fn run(_ctx: &Ctx<'_>, c: &Case, text: &str) -> Outcome {
    let text = text.trim();
    if text.is_empty() {
        return Err(Refusal::Empty("a note"));
    }
    let mut change = CaseChange::default();
    change.events.push(EventKind::Note {
        text: text.to_string(),
    });
    Ok((c.clone(), change))
}
