//! Who gets what: the `[people]`, `[people.on_call]`, `[[agencies]]` and
//! `[notify]` sections, raw and validated, and the pure lookups over them
//! (who is on call at an instant, which agency a sender belongs to).

use super::clocks::LocalDateTime;
use super::{ConfigError, EmailAddress, HumanDuration};
use crate::clock::BusinessCalendar;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeople {
    #[serde(default)]
    alerts_to: Vec<EmailAddress>,
    #[serde(default)]
    staff: Vec<EmailAddress>,
    #[serde(default)]
    developers: Vec<EmailAddress>,
    #[serde(default)]
    support_lead: Vec<EmailAddress>,
    #[serde(default)]
    privacy_officer: Vec<EmailAddress>,
    #[serde(default)]
    staff_senders: Vec<String>,
    on_call: Option<RawOnCall>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOnCall {
    rotation: toml::Spanned<Vec<EmailAddress>>,
    /// Local date and time of a handover to the first person.
    handover: LocalDateTime,
    every: Option<toml::Spanned<HumanDuration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgency {
    name: toml::Spanned<String>,
    domains: Vec<String>,
    #[serde(default)]
    site_admins: Vec<EmailAddress>,
    #[serde(default)]
    notify_on_new_ticket: bool,
    /// Where privacy requests about the agency's site data go (the agency
    /// is the controller; the vendor its processor).
    privacy_contact: Option<EmailAddress>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    page_every: Option<toml::Spanned<HumanDuration>>,
    warn_at_percent: Option<toml::Spanned<u32>>,
    staff_digest_only_levels: Option<toml::Spanned<Vec<u8>>>,
    privacy_reminder_days: Option<Vec<u32>>,
}

/// People ticketd writes to.
#[derive(Debug, Clone, Serialize, Default)]
pub struct People {
    /// Operator alerts: permanent delivery failures, oversize messages.
    pub alerts_to: Vec<EmailAddress>,
    /// Support staff: new-case notices, level-1 pages, 80 % warnings.
    pub staff: Vec<EmailAddress>,
    /// All developers: level-1 pages.
    pub developers: Vec<EmailAddress>,
    /// Breaches, missed triage reviews, the daily digest.
    pub support_lead: Vec<EmailAddress>,
    /// Privacy reminders and overdue escalations.
    pub privacy_officer: Vec<EmailAddress>,
    pub on_call: Option<OnCall>,
    /// Who counts as staff when they send: addresses and whole domains
    /// (lower case; a domain is written without `@`). Everyone on the
    /// lists above counts too.
    pub staff_senders: Vec<String>,
}

impl People {
    /// Whether mail from `address` comes from staff (by address or domain;
    /// authentication is checked by the caller).
    pub fn is_staff_sender(&self, address: &str) -> bool {
        let a = address.trim().to_ascii_lowercase();
        if a.is_empty() {
            return false;
        }
        let domain = a.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        let listed = |v: &[EmailAddress]| v.iter().any(|x| x.as_str() == a);
        self.staff_senders.iter().any(|s| {
            *s == a || (!s.contains('@') && (domain == s || domain.ends_with(&format!(".{s}"))))
        }) || listed(&self.staff)
            || listed(&self.developers)
            || listed(&self.support_lead)
            || listed(&self.privacy_officer)
            || self.on_call.as_ref().is_some_and(|o| listed(&o.rotation))
    }
}

/// An on-call rotation: `rotation[0]` takes over at `handover` (local time
/// in the calendar's zone), the next person `every` later, and so on round.
#[derive(Debug, Clone, Serialize)]
pub struct OnCall {
    pub rotation: Vec<EmailAddress>,
    pub handover: NaiveDateTime,
    pub every: HumanDuration,
}

impl OnCall {
    /// Who is on call at `t`. Handovers are counted in local wall-clock
    /// time, so a weekly Monday 07:30 handover stays at 07:30 across
    /// daylight-saving switches.
    pub fn at(&self, cal: &BusinessCalendar, t: DateTime<Utc>) -> Option<&EmailAddress> {
        let n = self.rotation.len();
        if n == 0 {
            return None;
        }
        let local = cal.local(t).naive_local();
        let every = i64::try_from(self.every.0.as_secs()).ok()?.max(1);
        let since = (local - self.handover).num_seconds();
        let turns = since.div_euclid(every);
        let idx = usize::try_from(turns.rem_euclid(i64::try_from(n).ok()?)).ok()?;
        self.rotation.get(idx)
    }
}

/// A customer agency: its mail domains and site administrators.
#[derive(Debug, Clone, Serialize)]
pub struct Agency {
    pub name: String,
    /// Lower-case mail domains (`legalaid-north.example.org`).
    pub domains: Vec<String>,
    pub site_admins: Vec<EmailAddress>,
    /// The site administrators asked to hear of every new support case.
    pub notify_on_new_ticket: bool,
    /// Where privacy requests about the agency's site data go.
    pub privacy_contact: Option<EmailAddress>,
}

impl Agency {
    pub fn is_site_admin(&self, address: &str) -> bool {
        self.site_admins
            .iter()
            .any(|a| a.as_str().eq_ignore_ascii_case(address))
    }
}

/// The agency a sender address belongs to, by its mail domain (exact, or a
/// subdomain of a listed domain).
pub fn agency_for<'a>(agencies: &'a [Agency], address: &str) -> Option<&'a Agency> {
    let domain = address.rsplit_once('@')?.1.to_ascii_lowercase();
    agencies.iter().find(|a| {
        a.domains
            .iter()
            .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
    })
}

/// How notifications behave.
#[derive(Debug, Clone, Serialize)]
pub struct Notify {
    /// Level 1: page again this often until the case is resolved.
    pub page_every: HumanDuration,
    /// Levels 3–5: warn staff when this share of the target has passed.
    pub warn_at_percent: u32,
    /// New cases of these levels reach `staff` only in the daily digest.
    pub staff_digest_only_levels: Vec<u8>,
    /// Remind the privacy officer this many days before a due date.
    pub privacy_reminder_days: Vec<u32>,
}

impl Default for Notify {
    fn default() -> Self {
        Notify {
            page_every: HumanDuration(Duration::from_secs(30 * 60)),
            warn_at_percent: 80,
            staff_digest_only_levels: Vec::new(),
            privacy_reminder_days: vec![7, 2],
        }
    }
}

type AtFn<'a> = dyn Fn(std::ops::Range<usize>, String) -> ConfigError + 'a;

pub(super) fn build_people(raw: RawPeople, at: &AtFn<'_>) -> Result<People, ConfigError> {
    let mut staff_senders = Vec::new();
    for s in &raw.staff_senders {
        let v = s.trim().trim_start_matches('@').to_ascii_lowercase();
        let ok = !v.is_empty()
            && !v.contains(char::is_whitespace)
            && (v.contains('@') || v.contains('.'))
            && (!v.contains('@') || v.parse::<lettre::Address>().is_ok());
        if !ok {
            return Err(ConfigError::General {
                file: String::new(),
                message: format!("people.staff_senders: {s:?} is neither an address nor a domain"),
            });
        }
        staff_senders.push(v);
    }
    let on_call = match raw.on_call {
        None => None,
        Some(o) => {
            if o.rotation.get_ref().is_empty() {
                return Err(at(
                    o.rotation.span(),
                    "the rotation needs at least one person".into(),
                ));
            }
            let every = match o.every {
                Some(e) if e.get_ref().0.as_secs() < 60 => {
                    return Err(at(
                        e.span(),
                        "a handover period must be at least a minute".into(),
                    ))
                }
                Some(e) => *e.get_ref(),
                None => HumanDuration(Duration::from_secs(7 * 24 * 3600)),
            };
            Some(OnCall {
                rotation: o.rotation.into_inner(),
                handover: o.handover.0,
                every,
            })
        }
    };
    Ok(People {
        alerts_to: raw.alerts_to,
        staff: raw.staff,
        developers: raw.developers,
        support_lead: raw.support_lead,
        privacy_officer: raw.privacy_officer,
        on_call,
        staff_senders,
    })
}

pub(super) fn build_agencies(
    raw: Vec<RawAgency>,
    at: &AtFn<'_>,
) -> Result<Vec<Agency>, ConfigError> {
    let mut out: Vec<Agency> = Vec::new();
    for a in raw {
        let name = a.name.get_ref().trim().to_string();
        if name.is_empty() {
            return Err(at(a.name.span(), "an agency needs a name".into()));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(at(
                a.name.span(),
                format!("agency {name:?} is listed twice"),
            ));
        }
        let domains: Vec<String> = a
            .domains
            .iter()
            .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        if domains.is_empty() {
            return Err(at(
                a.name.span(),
                format!("agency {name:?} needs at least one mail domain"),
            ));
        }
        out.push(Agency {
            name,
            domains,
            site_admins: a.site_admins,
            notify_on_new_ticket: a.notify_on_new_ticket,
            privacy_contact: a.privacy_contact,
        });
    }
    Ok(out)
}

pub(super) fn build_notify(raw: RawNotify, at: &AtFn<'_>) -> Result<Notify, ConfigError> {
    let mut n = Notify::default();
    if let Some(p) = raw.page_every {
        if p.get_ref().0.as_secs() < 60 {
            return Err(at(
                p.span(),
                "pages may repeat at most once a minute".into(),
            ));
        }
        n.page_every = *p.get_ref();
    }
    if let Some(w) = raw.warn_at_percent {
        let v = *w.get_ref();
        if v == 0 || v >= 100 {
            return Err(at(
                w.span(),
                "warn_at_percent must be between 1 and 99".into(),
            ));
        }
        n.warn_at_percent = v;
    }
    if let Some(l) = raw.staff_digest_only_levels {
        if l.get_ref().iter().any(|x| !(1..=5).contains(x)) {
            return Err(at(l.span(), "levels are 1 to 5".into()));
        }
        n.staff_digest_only_levels = l.into_inner();
    }
    if let Some(mut d) = raw.privacy_reminder_days {
        d.sort_unstable_by(|a, b| b.cmp(a));
        d.dedup();
        n.privacy_reminder_days = d;
    }
    Ok(n)
}
