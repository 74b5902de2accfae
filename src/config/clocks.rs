//! The time-related sections of the config: `[calendar]`, `[targets]`,
//! `[privacy]` and `[schedule]`, raw and validated. Kept apart so that
//! `ticketd deadline --config F` can read them from a file that has nothing
//! else (see [`load_clocks`]).

use super::{locate, ConfigError, HumanDuration};
use crate::clock::calendar::{CalendarSettings, HolidayRule};
use crate::clock::cron::JobSchedule;
use crate::clock::{Regime, Targets};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

/// An IANA time zone name.
#[derive(Debug, Clone, Copy)]
pub struct TzName(pub Tz);

impl<'de> Deserialize<'de> for TzName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<Tz>().map(TzName).map_err(|_| {
            serde::de::Error::custom(format!(
                "unknown time zone {s:?} (write an IANA name such as \"America/New_York\")"
            ))
        })
    }
}

/// A wall-clock time `HH:MM`.
#[derive(Debug, Clone, Copy)]
pub struct HhMm(pub NaiveTime);

impl<'de> Deserialize<'de> for HhMm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NaiveTime::parse_from_str(s.trim(), "%H:%M")
            .map(HhMm)
            .map_err(|_| serde::de::Error::custom(format!("not a time {s:?} (write HH:MM)")))
    }
}

/// A calendar date `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy)]
pub struct Day(pub NaiveDate);

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map(Day)
            .map_err(|_| serde::de::Error::custom(format!("not a date {s:?} (write YYYY-MM-DD)")))
    }
}

/// A local date and time `YYYY-MM-DDTHH:MM`.
#[derive(Debug, Clone, Copy)]
pub struct LocalDateTime(pub NaiveDateTime);

impl<'de> Deserialize<'de> for LocalDateTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M")
            .map(LocalDateTime)
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "not a local date and time {s:?} (write YYYY-MM-DDTHH:MM)"
                ))
            })
    }
}

/// A day of the week, `Mon` … `Sun` (or the full English name).
#[derive(Debug, Clone, Copy)]
pub struct Dow(pub Weekday);

impl<'de> Deserialize<'de> for Dow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.trim().parse::<Weekday>().map(Dow).map_err(|_| {
            serde::de::Error::custom(format!("not a day of the week {s:?} (Mon..Sun)"))
        })
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCalendar {
    time_zone: Option<TzName>,
    opens: Option<toml::Spanned<HhMm>>,
    closes: Option<toml::Spanned<HhMm>>,
    working_days: Option<toml::Spanned<Vec<Dow>>>,
    holidays: Option<HolidayRule>,
    #[serde(default)]
    extra_holidays: Vec<Day>,
    #[serde(default)]
    removed_holidays: Vec<Day>,
    #[serde(default)]
    uk_extra_bank_holidays: Vec<Day>,
    #[serde(default)]
    uk_removed_bank_holidays: Vec<Day>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTargets {
    level_1: Option<toml::Spanned<HumanDuration>>,
    level_2: Option<toml::Spanned<HumanDuration>>,
    level_3: Option<toml::Spanned<HumanDuration>>,
    level_4: Option<toml::Spanned<HumanDuration>>,
    level_5: Option<toml::Spanned<HumanDuration>>,
    review: Option<toml::Spanned<HumanDuration>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrivacy {
    unknown_jurisdiction: Option<Regime>,
    // The privacy workflow's keys, built by `config::privacy`.
    pub(super) identity_pauses: Option<Vec<Regime>>,
    pub(super) code_attempts: Option<u32>,
    pub(super) forward_reminder_after: Option<HumanDuration>,
    pub(super) auto_forward: Option<bool>,
    pub(super) disclosure: Option<super::privacy::RawDisclosure>,
}

/// A job line: a cron expression, or a table with options.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawJob {
    Expr(String),
    Table(RawJobTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawJobTable {
    cron: String,
    #[serde(default)]
    support_hours_only: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchedule {
    escalate: Option<toml::Spanned<RawJob>>,
    digest: Option<toml::Spanned<RawJob>>,
    privacy_reminders: Option<toml::Spanned<RawJob>>,
    retention: Option<toml::Spanned<RawJob>>,
}

/// The clocks a case runs on.
#[derive(Debug, Clone, Serialize)]
pub struct Clocks {
    pub calendar: CalendarSettings,
    pub targets: Targets,
    /// The clock for a privacy request whose jurisdiction is unknown.
    pub unknown_jurisdiction: Regime,
}

impl Default for Clocks {
    fn default() -> Self {
        Clocks {
            calendar: CalendarSettings::default(),
            targets: Targets::default(),
            unknown_jurisdiction: Regime::Gdpr,
        }
    }
}

/// The scheduled jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobName {
    /// Support escalations, pages and warnings (default every minute).
    Escalate,
    /// The daily digest to the support lead (default 08:00 on working days).
    Digest,
    /// Privacy reminders and overdue escalations (default daily 08:00).
    PrivacyReminders,
    /// Retention (the workflow adds its work; default daily 03:30).
    Retention,
}

impl JobName {
    pub const ALL: [JobName; 4] = [
        JobName::Escalate,
        JobName::Digest,
        JobName::PrivacyReminders,
        JobName::Retention,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobName::Escalate => "escalate",
            JobName::Digest => "digest",
            JobName::PrivacyReminders => "privacy_reminders",
            JobName::Retention => "retention",
        }
    }

    fn default_job(self) -> (&'static str, bool) {
        match self {
            JobName::Escalate => ("0 * * * * *", false),
            JobName::Digest => ("0 0 8 * * MON-FRI", true),
            JobName::PrivacyReminders => ("0 0 8 * * *", false),
            JobName::Retention => ("0 30 3 * * *", false),
        }
    }
}

/// One scheduled job.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub name: JobName,
    pub cron: String,
    /// Runs only inside support hours (a missed run waits for the next
    /// in-hours tick).
    pub support_hours_only: bool,
    #[serde(skip)]
    pub schedule: Arc<JobSchedule>,
}

type AtFn<'a> = dyn Fn(std::ops::Range<usize>, String) -> ConfigError + 'a;

pub(super) fn build_clocks(
    cal: RawCalendar,
    targets: RawTargets,
    privacy: RawPrivacy,
    at: &AtFn<'_>,
) -> Result<Clocks, ConfigError> {
    let mut c = CalendarSettings::default();
    if let Some(tz) = cal.time_zone {
        c.time_zone = tz.0;
    }
    if let Some(o) = &cal.opens {
        c.opens = o.get_ref().0;
    }
    if let Some(o) = &cal.closes {
        c.closes = o.get_ref().0;
    }
    if c.closes <= c.opens {
        let span = cal
            .closes
            .as_ref()
            .or(cal.opens.as_ref())
            .map(|s| s.span())
            .unwrap_or(0..0);
        return Err(at(
            span,
            format!(
                "closing time {} must be after opening time {} (overnight hours are not supported)",
                c.closes.format("%H:%M"),
                c.opens.format("%H:%M")
            ),
        ));
    }
    if let Some(w) = &cal.working_days {
        let mut days: Vec<Weekday> = w.get_ref().iter().map(|d| d.0).collect();
        days.sort_by_key(|d| d.num_days_from_monday());
        days.dedup();
        if days.is_empty() {
            return Err(at(w.span(), "at least one working day is needed".into()));
        }
        c.working_days = days;
    }
    if let Some(h) = cal.holidays {
        c.holidays = h;
    }
    let set = |v: Vec<Day>| v.into_iter().map(|d| d.0).collect::<BTreeSet<_>>();
    c.extra_holidays = set(cal.extra_holidays);
    c.removed_holidays = set(cal.removed_holidays);
    c.uk_extra_bank_holidays = set(cal.uk_extra_bank_holidays);
    c.uk_removed_bank_holidays = set(cal.uk_removed_bank_holidays);

    let mut t = Targets::default();
    for (i, v) in [
        targets.level_1,
        targets.level_2,
        targets.level_3,
        targets.level_4,
        targets.level_5,
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(v) = v {
            let secs = v.get_ref().0.as_secs();
            if secs == 0 {
                return Err(at(v.span(), "a target must be longer than zero".into()));
            }
            t.seconds[i] = secs;
        }
    }
    if let Some(r) = targets.review {
        t.review_seconds = r.get_ref().0.as_secs().max(1);
    }
    Ok(Clocks {
        calendar: c,
        targets: t,
        unknown_jurisdiction: privacy.unknown_jurisdiction.unwrap_or(Regime::Gdpr),
    })
}

pub(super) fn build_schedule(raw: RawSchedule, at: &AtFn<'_>) -> Result<Vec<Job>, ConfigError> {
    let mut jobs = Vec::new();
    for (name, rj) in [
        (JobName::Escalate, raw.escalate),
        (JobName::Digest, raw.digest),
        (JobName::PrivacyReminders, raw.privacy_reminders),
        (JobName::Retention, raw.retention),
    ] {
        let (def_expr, def_hours) = name.default_job();
        let (expr, span, hours) = match rj {
            None => (def_expr.to_string(), 0..0, def_hours),
            Some(s) => {
                let span = s.span();
                match s.into_inner() {
                    RawJob::Expr(e) => (e, span, def_hours),
                    RawJob::Table(t) => (t.cron, span, t.support_hours_only.unwrap_or(def_hours)),
                }
            }
        };
        let schedule = JobSchedule::parse(&expr, hours).map_err(|e| at(span, e))?;
        jobs.push(Job {
            name,
            cron: expr,
            support_hours_only: hours,
            schedule: Arc::new(schedule),
        });
    }
    Ok(jobs)
}

/// Only the clock sections of a config file (all optional; other sections
/// are not read), for `ticketd deadline --config F`.
#[derive(Debug, Deserialize)]
struct RawClockFile {
    #[serde(default)]
    calendar: RawCalendar,
    #[serde(default)]
    targets: RawTargets,
    #[serde(default)]
    privacy: RawPrivacy,
    #[serde(flatten)]
    _rest: toml::Table,
}

/// Read the clocks from a config file that may hold nothing else; `None`
/// gives the defaults.
pub fn load_clocks(path: Option<&Path>) -> Result<Clocks, ConfigError> {
    let Some(p) = path else {
        return Ok(Clocks::default());
    };
    let file = p.display().to_string();
    let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
        file: file.clone(),
        source: e,
    })?;
    let at = |span: std::ops::Range<usize>, message: String| {
        let (line, column, key, text_line) = locate(&text, Some(span));
        ConfigError::At {
            file: file.clone(),
            line,
            column,
            key,
            message,
            text: text_line,
        }
    };
    let raw: RawClockFile = toml::from_str(&text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        at(span, e.message().trim().to_string())
    })?;
    build_clocks(raw.calendar, raw.targets, raw.privacy, &at)
}
