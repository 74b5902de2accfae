//! The privacy request's own actions (pure), beside the support ones:
//! `verify` (another method, or not needed), `forward` to the agency that
//! controls the data, `extend` inside the first period, `deny` with reasons
//! and the right to complain, `complete` (the answer; for access requests
//! with the disclosure the vendor's policy promises), and the identity code
//! quoted in a requester's reply.

use super::reply::{to_requester, Attachment};
use super::{identity, not_done, responded, set_status, Ctx, Outcome, Refusal};
use crate::clock::Regime;
use crate::policy::Right;
use crate::store::{
    Case, CaseChange, CaseKind, CaseStatus, EventKind, PrivacyState, PrivacyStatus, Timer,
    TimerKind,
};
use chrono::{DateTime, Utc};

fn state(c: &Case) -> Result<PrivacyState, Refusal> {
    match (&c.kind, &c.privacy) {
        (CaseKind::Privacy, Some(p)) => Ok(p.clone()),
        (CaseKind::Privacy, None) => Ok(PrivacyState::new(c.rights.is_empty())),
        _ => Err(Refusal::NotPrivacy { case: c.id.clone() }),
    }
}

fn open_request(c: &Case) -> Result<PrivacyState, Refusal> {
    not_done(c)?;
    let p = state(c)?;
    if p.status.is_final() {
        return Err(Refusal::PrivacyFinal {
            case: c.id.clone(),
            status: p.status,
        });
    }
    Ok(p)
}

fn move_to(
    n: &mut Case,
    p: &mut PrivacyState,
    change: &mut CaseChange,
    to: PrivacyStatus,
    reason: Option<String>,
) {
    if p.status != to {
        change.events.push(EventKind::PrivacyStatusChanged {
            from: p.status,
            to,
            reason,
        });
        p.status = to;
    }
    n.privacy = Some(p.clone());
}

/// Identity established at `at` by `method`: the request is verified, and
/// where the regime pauses for identity the dates move by the days waited.
fn verified(ctx: &Ctx<'_>, c: &Case, method: String, at: DateTime<Utc>) -> Outcome {
    let mut p = open_request(c)?;
    if p.verified.is_some() {
        return Err(Refusal::Already {
            case: c.id.clone(),
            status: c.status,
        });
    }
    let mut n = c.clone();
    let mut change = CaseChange::default();
    change.events.push(EventKind::IdentityVerified {
        method: method.clone(),
    });
    p.verified = Some(method);
    p.verified_at = Some(at);
    let pauses = c
        .clocks
        .regime
        .is_some_and(|r| ctx.notifier.config().privacy.identity_pauses.contains(&r));
    if let (true, Some(since), Some(dates)) = (pauses, p.identity_since, c.clocks.privacy) {
        let cal = ctx.notifier.calendar();
        let days = (cal.local_date(at) - cal.local_date(since))
            .num_days()
            .max(0);
        if days > 0 {
            p.original.get_or_insert(dates);
            p.paused_days += days;
            n.privacy = Some(p.clone());
            n.clocks.plan = c.clocks.plan.saturating_add(1);
            n.clocks = ctx.notifier.clocks_for(&n);
            if let Some(d) = n.clocks.privacy {
                change.events.push(EventKind::DatesMoved {
                    why: format!("the clock stood still {days} days while identity was awaited"),
                    respond_by: d.respond_by,
                });
            }
            change.timers = ctx.notifier.timers_for(&n, ctx.now);
        }
    }
    move_to(&mut n, &mut p, &mut change, PrivacyStatus::Verified, None);
    super::open_if_new(&mut n, &mut change);
    Ok((n, change))
}

/// `verify --method TEXT` or `--not-needed --reason TEXT`.
pub(super) fn verify(
    ctx: &Ctx<'_>,
    c: &Case,
    method: Option<&str>,
    not_needed: Option<&str>,
) -> Outcome {
    let how = match (method.map(str::trim), not_needed.map(str::trim)) {
        (Some(m), None) if !m.is_empty() => format!("{m} (recorded by {})", ctx.actor),
        (None, Some(r)) if !r.is_empty() => format!("not needed: {r} (decided by {})", ctx.actor),
        _ => {
            return Err(Refusal::Empty(
                "verify (--method TEXT, or --not-needed --reason TEXT)",
            ))
        }
    };
    verified(ctx, c, how, ctx.now)
}

/// A reply on a privacy request that may quote its code (pure). Only a
/// reply from the requester's own address verifies; a wrong code, or the
/// right one from elsewhere, counts as an attempt, and after the limit no
/// code verifies any more.
pub(crate) fn code_reply(
    ctx: &Ctx<'_>,
    c: &Case,
    sender: &str,
    text: &str,
    at: DateTime<Utc>,
) -> Option<(Case, CaseChange)> {
    let p = c.privacy.as_ref()?;
    if p.status != PrivacyStatus::IdentityPending || p.verified.is_some() {
        return None;
    }
    let hash = p.code_hash.as_deref()?;
    if identity::codes_in(text).is_empty() {
        return None;
    }
    let limit = ctx.notifier.config().privacy.code_attempts;
    // The requester's own address (From), never a Reply-To: the code
    // proves that mailbox.
    let own = c
        .requester
        .as_ref()
        .is_some_and(|a| a.address.eq_ignore_ascii_case(sender));
    let right = identity::quotes_code(ctx.notifier.keys(), &c.id, hash, text);
    if own && right && p.code_attempts < limit {
        return verified(
            ctx,
            c,
            "one-time code quoted from the requester's own mailbox".into(),
            at,
        )
        .ok();
    }
    let mut n = c.clone();
    let mut q = p.clone();
    q.code_attempts = q.code_attempts.saturating_add(1);
    let why = if q.code_attempts > limit {
        "too many attempts: code verification is closed; verify by other means".to_string()
    } else if right {
        "the right code, but not from the requester's own address".to_string()
    } else {
        "a wrong code".to_string()
    };
    n.privacy = Some(q.clone());
    let mut change = CaseChange::default();
    change.events.push(EventKind::CodeRejected {
        attempts: q.code_attempts,
        why,
    });
    Some((n, change))
}

/// `forward --agency NAME`: the request goes to the agency's privacy
/// contact with what we received; the requester is told who holds their
/// data; the request ends `forwarded`, with a reminder if unacknowledged.
pub(super) fn forward(ctx: &Ctx<'_>, c: &Case, agency: &str) -> Outcome {
    let mut p = open_request(c)?;
    let cfg = ctx.notifier.config();
    let a = cfg
        .agencies
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(agency.trim()))
        .ok_or_else(|| Refusal::NoAgency(agency.to_string()))?;
    let contact = a
        .privacy_contact
        .as_ref()
        .ok_or_else(|| Refusal::NoAgency(format!("{} has no privacy_contact", a.name)))?
        .as_str()
        .to_string();
    let mut n = c.clone();
    let mut change = CaseChange::default();
    let original = ctx
        .request_text
        .unwrap_or("(the request's text is in the attached case record)");
    let mut tok = crate::notify::Tokens::new(ctx.token);
    change.notices.extend(ctx.notifier.notice(
        "privacy_forward",
        c,
        vec![contact.clone()],
        "privacy_forward_agency.txt",
        minijinja::context! { agency => a.name, original => original },
        ctx.now,
        &mut tok,
    ));
    let body = ctx
        .notifier
        .render_text(
            "privacy_forwarded.txt",
            c,
            minijinja::context! { agency => a.name, contact => contact },
        )
        .map_err(Refusal::Render)?;
    change
        .notices
        .push(to_requester(ctx, c, "privacy_forwarded", &body, &[])?);
    change.events.push(EventKind::Forwarded {
        agency: a.name.clone(),
        contact: contact.clone(),
    });
    p.forwarded_to = Some(a.name.clone());
    p.forward_contact = Some(contact);
    move_to(
        &mut n,
        &mut p,
        &mut change,
        PrivacyStatus::Forwarded,
        Some(format!("the data is {}'s (controller)", a.name)),
    );
    responded(&mut n, ctx.now, &mut change);
    n.clocks.resolved_at = Some(ctx.now);
    n.clocks.plan = c.clocks.plan.saturating_add(1);
    set_status(&mut n, &mut change, CaseStatus::Resolved);
    let after = chrono::Duration::from_std(cfg.privacy.forward_reminder_after.0)
        .unwrap_or_else(|_| chrono::Duration::days(7));
    change.timers.push(Timer {
        case: n.id.clone(),
        due: ctx.now + after,
        plan: n.clocks.plan,
        kind: TimerKind::ForwardUnacknowledged,
    });
    Ok((n, change))
}

/// `extend --reason TEXT`: inside the first period only (the notice must
/// reach the requester by the extension notice date).
pub(super) fn extend(ctx: &Ctx<'_>, c: &Case, reason: &str) -> Outcome {
    let mut p = open_request(c)?;
    if reason.trim().is_empty() {
        return Err(Refusal::Empty("an extension (the reasons)"));
    }
    if p.extended {
        return Err(Refusal::Already {
            case: c.id.clone(),
            status: c.status,
        });
    }
    let dates = c
        .clocks
        .privacy
        .ok_or_else(|| Refusal::NoClock { case: c.id.clone() })?;
    let (Some(notice_by), Some(_)) = (dates.extension_notice_by, dates.extended_respond_by) else {
        return Err(Refusal::NoClock { case: c.id.clone() });
    };
    let today = ctx.notifier.calendar().local_date(ctx.now);
    if today > notice_by {
        return Err(Refusal::TooLate {
            what: "an extension",
            by: notice_by.to_string(),
        });
    }
    let mut n = c.clone();
    let mut change = CaseChange::default();
    p.original.get_or_insert(dates);
    p.extended = true;
    p.reason = Some(reason.trim().to_string());
    n.privacy = Some(p.clone());
    n.clocks.plan = c.clocks.plan.saturating_add(1);
    n.clocks = ctx.notifier.clocks_for(&n);
    let new_date = n
        .clocks
        .privacy
        .map(|d| d.respond_by)
        .unwrap_or(dates.respond_by);
    let body = ctx
        .notifier
        .render_text(
            "privacy_extended.txt",
            &n,
            minijinja::context! { reason => reason.trim(), new_date => new_date.to_string() },
        )
        .map_err(Refusal::Render)?;
    change
        .notices
        .push(to_requester(ctx, &n, "privacy_extended", &body, &[])?);
    change.events.push(EventKind::DatesMoved {
        why: format!("extended: {}", reason.trim()),
        respond_by: new_date,
    });
    change.timers = ctx.notifier.timers_for(&n, ctx.now);
    move_to(
        &mut n,
        &mut p,
        &mut change,
        PrivacyStatus::Extended,
        Some(reason.trim().to_string()),
    );
    Ok((n, change))
}

/// `deny --reason TEXT` (manifestly unfounded or excessive, Art. 12(5);
/// the CCPA's grounds): the reasons, the right to complain and to a
/// judicial remedy (Art. 12(4)), within the first period.
pub(super) fn deny(ctx: &Ctx<'_>, c: &Case, reason: &str) -> Outcome {
    let mut p = open_request(c)?;
    if reason.trim().is_empty() {
        return Err(Refusal::Empty("a refusal (the reasons)"));
    }
    if let Some(d) = p.original.or(c.clocks.privacy) {
        let today = ctx.notifier.calendar().local_date(ctx.now);
        if today > d.respond_by && !p.extended {
            return Err(Refusal::TooLate {
                what: "a refusal",
                by: d.respond_by.to_string(),
            });
        }
    }
    let authority = match c.clocks.regime {
        Some(Regime::Ccpa) => "the California Attorney General or the California Privacy Protection Agency (CPPA)",
        Some(Regime::UkGdpr) => "the Information Commissioner's Office (ICO)",
        _ => "a data protection supervisory authority, in particular in the EU member state where you live or work",
    };
    let mut n = c.clone();
    let mut change = CaseChange::default();
    let body = ctx
        .notifier
        .render_text(
            "privacy_denied.txt",
            c,
            minijinja::context! { reason => reason.trim(), authority => authority },
        )
        .map_err(Refusal::Render)?;
    change
        .notices
        .push(to_requester(ctx, c, "privacy_denied", &body, &[])?);
    p.reason = Some(reason.trim().to_string());
    move_to(
        &mut n,
        &mut p,
        &mut change,
        PrivacyStatus::Denied,
        Some(reason.trim().to_string()),
    );
    responded(&mut n, ctx.now, &mut change);
    n.clocks.resolved_at = Some(ctx.now);
    set_status(&mut n, &mut change, CaseStatus::Resolved);
    Ok((n, change))
}

/// `complete [--attach FILE]…`: the answer, threaded to the request. An
/// access (or CCPA know) request's answer carries the disclosure.
pub(super) fn complete(
    ctx: &Ctx<'_>,
    c: &Case,
    text: Option<&str>,
    attachments: &[Attachment],
) -> Outcome {
    let mut p = open_request(c)?;
    // An access (or CCPA know) answer, and an inquiry's (it asks how data
    // is processed), carry the disclosure.
    let access = p.inquiry
        || c.rights
            .iter()
            .any(|r| matches!(r, Right::Access | Right::CcpaKnow | Right::Portability));
    let d = &ctx.notifier.config().privacy.disclosure;
    let body = ctx
        .notifier
        .render_text(
            "privacy_completed.txt",
            c,
            minijinja::context! {
                text => text.map(str::trim).filter(|t| !t.is_empty()),
                access => access,
                inquiry => p.inquiry,
                purposes => d.purposes,
                categories => d.categories,
                recipients => d.recipients,
                transfers => d.transfers,
                retention => d.retention,
                attachments => attachments.iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
            },
        )
        .map_err(Refusal::Render)?;
    let mut n = c.clone();
    let mut change = CaseChange::default();
    change.notices.push(to_requester(
        ctx,
        c,
        "privacy_completed",
        &body,
        attachments,
    )?);
    move_to(&mut n, &mut p, &mut change, PrivacyStatus::Completed, None);
    responded(&mut n, ctx.now, &mut change);
    n.clocks.resolved_at = Some(ctx.now);
    set_status(&mut n, &mut change, CaseStatus::Resolved);
    Ok((n, change))
}

/// Where a request's date stands on `today` (pure): what `privacy list`
/// sorts by and `privacy show` prints.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DueView {
    /// The date due now: after pauses and an extension; for an inquiry, the
    /// review date. While the clock stands still (identity awaited under a
    /// regime that pauses) it is the date if identity arrived today.
    pub due: Option<chrono::NaiveDate>,
    /// The date before a pause or an extension moved it.
    pub original: Option<chrono::NaiveDate>,
    /// Days the clock has stood still, including the days so far of a
    /// pause that still runs.
    pub paused_days: i64,
    /// The clock stands still now (identity awaited, regime pauses).
    pub paused_now: bool,
    pub days_left: Option<i64>,
}

/// The due view of `c` on `today`; `pauses` says whether its regime stops
/// the clock while identity is awaited; `local` maps an instant to the
/// calendar's date.
pub fn due_view(
    c: &Case,
    today: chrono::NaiveDate,
    pauses: bool,
    local: impl Fn(DateTime<Utc>) -> chrono::NaiveDate,
) -> DueView {
    let p = c.privacy.as_ref();
    let mut v = DueView {
        due: None,
        original: p.and_then(|p| p.original).map(|d| d.respond_by),
        paused_days: p.map(|p| p.paused_days).unwrap_or(0),
        paused_now: false,
        days_left: None,
    };
    match c.clocks.privacy {
        Some(d) => {
            v.due = Some(d.respond_by);
            let waiting = p.filter(|p| p.status == PrivacyStatus::IdentityPending);
            if let (true, Some(since)) = (pauses, waiting.and_then(|p| p.identity_since)) {
                let so_far = (today - local(since)).num_days().max(0);
                v.paused_now = true;
                v.paused_days += so_far;
                v.original.get_or_insert(d.respond_by);
                v.due = Some(d.respond_by + chrono::Duration::days(so_far));
            }
        }
        None => v.due = c.clocks.review_by.map(&local),
    }
    v.days_left = v.due.map(|d| (d - today).num_days());
    v
}

/// `privacy list` order: open requests first, the most urgent (fewest
/// days left) first, then the case number.
pub fn urgency_key(c: &Case, v: &DueView) -> (bool, i64, String) {
    let done = c.is_done() || c.privacy.as_ref().is_some_and(|p| p.status.is_final());
    (done, v.days_left.unwrap_or(i64::MAX), c.id.clone())
}

/// The agency whose name `text` mentions (a whole word or phrase, any
/// case; names shorter than four letters are too ambiguous to match).
pub fn agency_named<'a>(
    agencies: &'a [crate::config::Agency],
    text: &str,
) -> Option<&'a crate::config::Agency> {
    let hay = text.to_lowercase();
    agencies.iter().find(|a| {
        let name = a.name.trim().to_lowercase();
        name.chars().filter(|c| c.is_alphanumeric()).count() >= 4
            && hay.match_indices(&name).any(|(i, _)| {
                let before = hay[..i].chars().next_back();
                let after = hay[i + name.len()..].chars().next();
                !before.is_some_and(char::is_alphanumeric)
                    && !after.is_some_and(char::is_alphanumeric)
            })
    })
}

/// A privacy request someone works on (assigned, answered, a first
/// response) is `in_progress` once it is `received` or `verified`; one
/// still awaiting identity stays so (pure).
pub(super) fn work_started(
    (mut n, mut change): (Case, CaseChange),
    why: &str,
) -> (Case, CaseChange) {
    if let Some(mut p) = n.privacy.clone() {
        if matches!(p.status, PrivacyStatus::Received | PrivacyStatus::Verified) {
            move_to(
                &mut n,
                &mut p,
                &mut change,
                PrivacyStatus::InProgress,
                Some(why.to_string()),
            );
        }
    }
    (n, change)
}
