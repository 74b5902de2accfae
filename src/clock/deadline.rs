//! Deadlines (pure): the support targets in support time, and the statutory
//! clocks of privacy requests (GDPR, UK GDPR, CCPA) as calendar dates.
//!
//! These functions are the whole of `ticketd deadline` and of the clocks a
//! new case is given; the scheduler only reads what they computed.

use super::calendar::BusinessCalendar;
use crate::policy::{Jurisdiction, Level, Right};
use chrono::{DateTime, Duration, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// First-response targets per level, in support time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Targets {
    /// Seconds of support time for levels 1..=5.
    pub seconds: [u64; 5],
    /// Seconds of support time for the triage review of every new case.
    pub review_seconds: u64,
}

impl Default for Targets {
    fn default() -> Self {
        Targets {
            seconds: [
                u64::from(crate::policy::support_target_minutes(1)) * 60,
                u64::from(crate::policy::support_target_minutes(2)) * 60,
                u64::from(crate::policy::support_target_minutes(3)) * 60,
                u64::from(crate::policy::support_target_minutes(4)) * 60,
                u64::from(crate::policy::support_target_minutes(5)) * 60,
            ],
            review_seconds: 30 * 60,
        }
    }
}

impl Targets {
    /// The target of `level` (levels outside 1..=5 are treated as 5).
    pub fn of(&self, level: Level) -> Duration {
        let i = usize::from(level.clamp(1, 5)) - 1;
        Duration::seconds(i64::try_from(self.seconds[i]).unwrap_or(i64::MAX / 1000))
    }

    pub fn review(&self) -> Duration {
        Duration::seconds(i64::try_from(self.review_seconds).unwrap_or(i64::MAX / 1000))
    }
}

/// When the first response to a support case of `level` received at
/// `received` is due: that much support time after receipt.
pub fn support_respond_by(
    cal: &BusinessCalendar,
    targets: &Targets,
    level: Level,
    received: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    cal.add_support_time(received, targets.of(level))
}

/// The point at which `fraction` of the target has passed (the 80 % warning).
pub fn support_fraction_by(
    cal: &BusinessCalendar,
    target: Duration,
    fraction_percent: u32,
    received: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let part = target.num_seconds() * i64::from(fraction_percent.min(100)) / 100;
    cal.add_support_time(received, Duration::seconds(part))
}

/// Which statutory clock runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Regime {
    Gdpr,
    UkGdpr,
    Ccpa,
}

impl Regime {
    /// The clock for a jurisdiction; `unknown` uses `fallback`.
    pub fn for_jurisdiction(j: Jurisdiction, fallback: Regime) -> Regime {
        match j {
            Jurisdiction::Gdpr => Regime::Gdpr,
            Jurisdiction::UkGdpr => Regime::UkGdpr,
            Jurisdiction::Ccpa => Regime::Ccpa,
            Jurisdiction::Unknown => fallback,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Regime::Gdpr => "gdpr",
            Regime::UkGdpr => "uk_gdpr",
            Regime::Ccpa => "ccpa",
        }
    }
}

impl std::str::FromStr for Regime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gdpr" => Ok(Regime::Gdpr),
            "uk_gdpr" => Ok(Regime::UkGdpr),
            "ccpa" => Ok(Regime::Ccpa),
            _ => Err(format!(
                "unknown privacy regime {s:?} (gdpr, uk_gdpr, ccpa)"
            )),
        }
    }
}

/// The dates of a privacy request, in the calendar's zone. `None` where the
/// regime sets no such date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivacyDates {
    pub acknowledge_by: Option<NaiveDate>,
    pub respond_by: NaiveDate,
    pub extended_respond_by: Option<NaiveDate>,
    pub extension_notice_by: Option<NaiveDate>,
}

/// `d` plus `months`, on the same day number, or the month's last day when
/// it has no such day (GDPR Art. 12(3) read with Reg. 1182/71 Art. 3(2)(c)).
fn add_months_clamped(d: NaiveDate, months: u32) -> Option<NaiveDate> {
    // chrono clamps to the last day of the target month.
    d.checked_add_months(Months::new(months))
}

/// The dates for one right under `regime`, the receipt taken as the
/// calendar date of `received` in the calendar's zone.
fn dates_for(
    cal: &BusinessCalendar,
    regime: Regime,
    right: Option<Right>,
    received: NaiveDate,
) -> Option<PrivacyDates> {
    match regime {
        // GDPR Art. 12(3): "without undue delay and in any event within one
        // month of receipt", extendable "by two further months" with the
        // data subject told within the first month. Periods in months end
        // on the same day number (Reg. 1182/71 Art. 3(2)(c)), or the last
        // day of a shorter month. Art. 3(4) of that regulation would move
        // a period ending on a weekend or holiday to the next working day;
        // we keep the earlier date, which is always on the safe side.
        Regime::Gdpr => {
            let due = add_months_clamped(received, 1)?;
            Some(PrivacyDates {
                acknowledge_by: None,
                respond_by: due,
                extended_respond_by: Some(add_months_clamped(received, 3)?),
                extension_notice_by: Some(due),
            })
        }
        // UK GDPR Art. 12(3) as GDPR; the ICO counts a deadline that falls
        // on a weekend or bank holiday to the next working day, with UK
        // (England and Wales) bank holidays, not the US calendar's.
        Regime::UkGdpr => {
            let due = cal.uk_working_day_on_or_after(add_months_clamped(received, 1)?);
            let ext = cal.uk_working_day_on_or_after(add_months_clamped(received, 3)?);
            Some(PrivacyDates {
                acknowledge_by: None,
                respond_by: due,
                extended_respond_by: Some(ext),
                extension_notice_by: Some(due),
            })
        }
        // CCPA regulations, 11 CCR § 7021: confirm receipt within 10
        // business days, respond within 45 calendar days (the day of receipt
        // not counted), extendable once to 90 days with notice inside the
        // first 45. § 7026(f) / § 7027(g): requests to opt out of sale or
        // sharing, or to limit use of sensitive information, within 15
        // business days.
        Regime::Ccpa => match right.map(Right::to_ccpa) {
            Some(Right::CcpaOptOut) | Some(Right::CcpaLimit) => Some(PrivacyDates {
                acknowledge_by: None,
                respond_by: cal.nth_business_day_after(received, 15)?,
                extended_respond_by: None,
                extension_notice_by: None,
            }),
            _ => {
                let due = received.checked_add_signed(Duration::days(45))?;
                Some(PrivacyDates {
                    acknowledge_by: Some(cal.nth_business_day_after(received, 10)?),
                    respond_by: due,
                    extended_respond_by: Some(received.checked_add_signed(Duration::days(90))?),
                    extension_notice_by: Some(due),
                })
            }
        },
    }
}

fn earliest(a: Option<NaiveDate>, b: Option<NaiveDate>) -> Option<NaiveDate> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The dates of a request for `rights` under `regime`: each date is the
/// earliest any of the rights sets (a request with several rights is due at
/// the earliest of its rights' dates). No rights: the general clock.
pub fn privacy_dates(
    cal: &BusinessCalendar,
    regime: Regime,
    rights: &[Right],
    received: DateTime<Utc>,
) -> Option<PrivacyDates> {
    let day = cal.local_date(received);
    if rights.is_empty() {
        return dates_for(cal, regime, None, day);
    }
    let mut out: Option<PrivacyDates> = None;
    for r in rights {
        let d = dates_for(cal, regime, Some(*r), day)?;
        out = Some(match out {
            None => d,
            Some(o) => PrivacyDates {
                acknowledge_by: earliest(o.acknowledge_by, d.acknowledge_by),
                respond_by: o.respond_by.min(d.respond_by),
                extended_respond_by: earliest(o.extended_respond_by, d.extended_respond_by),
                extension_notice_by: earliest(o.extension_notice_by, d.extension_notice_by),
            },
        });
    }
    out
}
