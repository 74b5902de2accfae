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

/// Words that put a request on the vendor's own data (its user accounts,
/// site usage, support mail): such a request stays with us even when it
/// names an agency, so it is never forwarded automatically.
const VENDOR_DATA: &[&str] = &[
    "user account",
    "my account",
    "my login",
    "casehost account",
    "support mail",
    "support ticket",
    "newsletter",
    "analytics",
    "cookies",
    "benutzerkonto",
    "mein konto",
    "mon compte",
    "mi cuenta",
];

/// Whether `text` asks about the vendor's own data (pure).
pub fn about_vendor_data(text: &str) -> bool {
    let t = text.to_lowercase();
    VENDOR_DATA.iter().any(|w| t.contains(w))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, EMBEDDED_DEFAULT};
    use crate::notify::Notifier;
    use crate::policy::Jurisdiction;
    use crate::workflow::{apply, Action, ThreadKeys};
    use std::sync::Arc;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn notifier() -> Notifier {
        let c = Config::from_toml(EMBEDDED_DEFAULT, "t.toml", std::path::Path::new("/tmp"))
            .expect("config");
        let t = crate::render::Templates::load(None).expect("templates");
        Notifier::new(Arc::new(c), Arc::new(t)).with_keys(Arc::new(ThreadKeys::from_secret(
            "a secret for the unit tests, long",
        )))
    }

    fn ctx<'a>(n: &'a Notifier, now: &str) -> Ctx<'a> {
        Ctx {
            notifier: n,
            now: at(now),
            actor: "cli:t",
            token: "tok",
            request_text: Some("the request"),
        }
    }

    /// A request received 2026-12-01 15:00 UTC, awaiting its code `code`.
    fn request(n: &Notifier, j: Jurisdiction, code: &str) -> Case {
        let d = crate::triage::Decision::test_request(vec![Right::Access], j);
        let t = at("2026-12-01T15:00:00Z");
        let mut c = crate::store::planned_case(
            "PRV-000001",
            &d,
            1,
            "Access",
            Some(&crate::mail::Addr {
                name: None,
                address: "eve@r.example".into(),
            }),
            &Ok("eve@r.example".into()),
            "privacy",
            t,
            t,
            vec![],
        );
        c.clocks = n.clocks_for(&c);
        if let Some(p) = c.privacy.as_mut() {
            p.code_hash = Some(identity::code_hash(n.keys(), &c.id, code));
            p.status = PrivacyStatus::IdentityPending;
            p.identity_since = Some(t);
        }
        c
    }

    #[test]
    fn codes_verify_only_from_the_requester_and_only_within_the_attempts() {
        let n = notifier();
        let x = ctx(&n, "2026-12-02T15:00:00Z");
        let mut c = request(&n, Jurisdiction::Gdpr, "ABCD-EFGH");
        let t = at("2026-12-02T15:00:00Z");
        // No code-shaped word: nothing happens (an ordinary reply).
        assert!(code_reply(&x, &c, "eve@r.example", "thanks", t).is_none());
        // The right code from elsewhere, then wrong codes, up to the limit.
        let limit = n.config().privacy.code_attempts;
        let (c2, ch) = code_reply(&x, &c, "mallory@x.example", "ABCD-EFGH", t).expect("attempt");
        assert_eq!(c2.privacy.as_ref().map(|p| p.code_attempts), Some(1));
        assert!(matches!(ch.events[0], EventKind::CodeRejected { .. }));
        c = c2;
        for _ in 1..limit {
            c = code_reply(&x, &c, "eve@r.example", "ZZZZ-ZZZZ", t)
                .expect("attempt")
                .0;
        }
        assert_eq!(c.privacy.as_ref().map(|p| p.code_attempts), Some(limit));
        // The limit is reached: even the right code from Eve is refused.
        let (c3, _) = code_reply(&x, &c, "EVE@r.example", "abcd-efgh", t).expect("attempt");
        assert_eq!(
            c3.privacy.as_ref().map(|p| p.status),
            Some(PrivacyStatus::IdentityPending)
        );
        // Within the limit, the right code from Eve's own address verifies
        // (any case, with or without the dash).
        let fresh = request(&n, Jurisdiction::Gdpr, "ABCD-EFGH");
        let (v, _) = code_reply(&x, &fresh, "Eve@R.example", "code: abcdefgh", t).expect("ok");
        assert_eq!(
            v.privacy.as_ref().map(|p| p.status),
            Some(PrivacyStatus::Verified)
        );
        // Verified once: a second verification is refused.
        assert!(apply(
            &x,
            &v,
            &Action::Verify {
                method: Some("phone".into()),
                not_needed: None
            }
        )
        .is_err());
    }

    #[test]
    fn the_uk_pause_moves_the_dates_by_the_days_waited_and_gdpr_does_not() {
        let n = notifier();
        let x = ctx(&n, "2026-12-11T15:00:00Z");
        for (j, moves) in [(Jurisdiction::UkGdpr, true), (Jurisdiction::Gdpr, false)] {
            let c = request(&n, j, "ABCD-EFGH");
            let before = c.clocks.privacy.expect("dates").respond_by;
            let (v, ch) = code_reply(&x, &c, "eve@r.example", "ABCD-EFGH", x.now).expect("ok");
            let after = v.clocks.privacy.expect("dates").respond_by;
            let p = v.privacy.clone().expect("state");
            if moves {
                assert_eq!(p.paused_days, 10);
                assert_eq!(p.original.map(|d| d.respond_by), Some(before));
                // One month from 1 December ends on New Year's Day, a
                // holiday, so 4 January; ten days later the month runs
                // from 11 December: 11 January, a Monday.
                assert_eq!(before.to_string(), "2027-01-04");
                assert_eq!(after.to_string(), "2027-01-11");
                assert!(ch
                    .events
                    .iter()
                    .any(|e| matches!(e, EventKind::DatesMoved { .. })));
                assert!(!ch.timers.is_empty(), "reminders re-planned");
            } else {
                assert_eq!((p.paused_days, after), (0, before), "{j:?}");
            }
        }
        // While identity is awaited the view shows the paused date.
        let c = request(&n, Jurisdiction::UkGdpr, "ABCD-EFGH");
        let due = c.clocks.privacy.expect("dates").respond_by;
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 6).expect("date");
        let v = due_view(&c, today, true, |t| t.date_naive());
        assert!(v.paused_now);
        assert_eq!(v.original, Some(due));
        assert_eq!(v.due, Some(due + chrono::Duration::days(5)));
    }

    #[test]
    fn extension_and_refusal_respect_the_first_period() {
        let n = notifier();
        let c = request(&n, Jurisdiction::Gdpr, "ABCD-EFGH");
        let notice_by = c
            .clocks
            .privacy
            .and_then(|d| d.extension_notice_by)
            .expect("notice date");
        let inside = ctx(&n, "2026-12-20T15:00:00Z");
        let ext = Action::Extend {
            reason: "three systems".into(),
        };
        let (e, ch) = apply(&inside, &c, &ext).expect("extend");
        let p = e.privacy.clone().expect("state");
        assert!(p.extended && p.status == PrivacyStatus::Extended);
        assert!(e.clocks.privacy.expect("dates").respond_by > notice_by);
        assert_eq!(ch.notices.len(), 1, "the requester is told");
        assert!(apply(&inside, &e, &ext).is_err(), "only once");
        let late = ctx(
            &n,
            &format!("{}T15:00:00Z", notice_by + chrono::Duration::days(2)),
        );
        assert!(matches!(
            apply(&late, &c, &ext),
            Err(Refusal::TooLate { .. })
        ));
        assert!(matches!(
            apply(&late, &c, &Action::Deny { reason: "x".into() }),
            Err(Refusal::TooLate { .. })
        ));
        // Inside the period a refusal names the regime's authority.
        for (j, authority) in [
            (Jurisdiction::Ccpa, "California Attorney General"),
            (Jurisdiction::UkGdpr, "Information Commissioner"),
            (Jurisdiction::Gdpr, "supervisory authority"),
        ] {
            let c = request(&n, j, "ABCD-EFGH");
            let (d, ch) = apply(
                &inside,
                &c,
                &Action::Deny {
                    reason: "manifestly excessive".into(),
                },
            )
            .expect("deny");
            assert_eq!(d.privacy.map(|p| p.status), Some(PrivacyStatus::Denied));
            let mail = ch.notices[0].mail.as_ref().expect("rendered");
            let text = crate::mail::parse(mail.mail.as_bytes(), 1 << 20)
                .expect("mail")
                .text;
            assert!(text.contains(authority), "{j:?}: {text}");
            assert!(text.contains("manifestly excessive") && text.contains("judicial remedy"));
        }
    }

    #[test]
    fn an_agency_is_named_as_a_whole_phrase() {
        let a = |name: &str| crate::config::Agency {
            name: name.into(),
            domains: vec![],
            site_admins: vec![],
            notify_on_new_ticket: false,
            privacy_contact: None,
        };
        let list = [a("Legal Aid North"), a("Aid")];
        let hit = |t: &str| agency_named(&list, t).map(|a| a.name.clone());
        assert_eq!(
            hit("my file at legal aid north, please"),
            Some("Legal Aid North".into())
        );
        assert_eq!(
            hit("Legal Aid Northwest"),
            None,
            "a longer name is another agency"
        );
        assert_eq!(hit("first aid kit"), None, "short names never match");
        assert!(about_vendor_data("Please delete my CaseHost user account"));
        assert!(!about_vendor_data(
            "the file Legal Aid North keeps about me"
        ));
    }
}
