//! `waiting`: staff wait on the requester; the requester's reply returns
//! the case to `open`.

use super::{not_done, set_status, Ctx, Outcome, Refusal};
use crate::store::{Case, CaseChange, CaseStatus};

pub(super) fn run(_ctx: &Ctx<'_>, c: &Case) -> Outcome {
    not_done(c)?;
    if c.status == CaseStatus::Waiting {
        return Err(Refusal::Already {
            case: c.id.clone(),
            status: c.status,
        });
    }
    let mut n = c.clone();
    let mut change = CaseChange::default();
    set_status(&mut n, &mut change, CaseStatus::Waiting);
    Ok((n, change))
}
