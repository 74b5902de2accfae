//! The business calendar (pure): a time zone, opening hours on working days,
//! and holidays. Support time counts only inside opening hours on working
//! days that are not holidays; everything here takes and returns UTC
//! instants and keeps their seconds.
//!
//! Opening hours are wall-clock times in the calendar's zone, so a
//! daylight-saving switch day is an ordinary 07:30–19:30 day. Local times
//! that do not exist (a spring-forward gap) map to the first instant after
//! the gap; local times that exist twice (fall back) map to the first.

use super::holidays;
use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::BTreeSet;

/// Which rule-computed holidays a calendar starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HolidayRule {
    /// US federal holidays on their observed dates (5 U.S.C. 6103).
    UsFederal,
    /// No holidays but the configured extra dates.
    None,
}

/// The validated `[calendar]` settings.
#[derive(Debug, Clone, Serialize)]
pub struct CalendarSettings {
    #[serde(serialize_with = "ser_tz")]
    pub time_zone: Tz,
    pub opens: NaiveTime,
    pub closes: NaiveTime,
    /// Working days, Monday first.
    pub working_days: Vec<Weekday>,
    pub holidays: HolidayRule,
    pub extra_holidays: BTreeSet<NaiveDate>,
    pub removed_holidays: BTreeSet<NaiveDate>,
    /// England and Wales bank holidays added (UK GDPR clock).
    pub uk_extra_bank_holidays: BTreeSet<NaiveDate>,
    pub uk_removed_bank_holidays: BTreeSet<NaiveDate>,
}

fn ser_tz<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

impl Default for CalendarSettings {
    fn default() -> Self {
        CalendarSettings {
            time_zone: chrono_tz::America::New_York,
            opens: NaiveTime::from_hms_opt(7, 30, 0).unwrap_or_default(),
            closes: NaiveTime::from_hms_opt(19, 30, 0).unwrap_or_default(),
            working_days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
            holidays: HolidayRule::UsFederal,
            extra_holidays: BTreeSet::new(),
            removed_holidays: BTreeSet::new(),
            uk_extra_bank_holidays: BTreeSet::new(),
            uk_removed_bank_holidays: BTreeSet::new(),
        }
    }
}

/// How far ahead a search for the next working day may look before it
/// gives up (a calendar whose every day is a holiday).
const MAX_DAYS: usize = 3 * 366;

/// Years whose rule-computed holidays are worked out once, when the
/// calendar is built (others are computed on demand).
const CACHED_YEARS: std::ops::RangeInclusive<i32> = 1990..=2100;

/// A business calendar built from [`CalendarSettings`].
#[derive(Debug, Clone)]
pub struct BusinessCalendar {
    s: CalendarSettings,
    /// US federal holidays of [`CACHED_YEARS`] (empty for `holidays = "none"`).
    us: std::sync::Arc<BTreeSet<NaiveDate>>,
    /// England-and-Wales bank holidays of [`CACHED_YEARS`].
    uk: std::sync::Arc<BTreeSet<NaiveDate>>,
}

impl Default for BusinessCalendar {
    fn default() -> Self {
        BusinessCalendar::new(CalendarSettings::default())
    }
}

impl BusinessCalendar {
    pub fn new(s: CalendarSettings) -> Self {
        let us = match s.holidays {
            HolidayRule::UsFederal => CACHED_YEARS
                .flat_map(holidays::us_federal)
                .map(|(d, _)| d)
                .collect(),
            HolidayRule::None => BTreeSet::new(),
        };
        let uk = CACHED_YEARS
            .flat_map(holidays::uk_england_wales)
            .map(|(d, _)| d)
            .collect();
        BusinessCalendar {
            s,
            us: std::sync::Arc::new(us),
            uk: std::sync::Arc::new(uk),
        }
    }

    pub fn settings(&self) -> &CalendarSettings {
        &self.s
    }

    pub fn tz(&self) -> Tz {
        self.s.time_zone
    }

    /// The instant in the calendar's zone.
    pub fn local(&self, t: DateTime<Utc>) -> DateTime<Tz> {
        t.with_timezone(&self.s.time_zone)
    }

    /// The calendar date of an instant in the calendar's zone.
    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        self.local(t).date_naive()
    }

    /// The instant a local wall-clock time names (see the module docs for
    /// gaps and repeats).
    pub fn resolve(&self, naive: NaiveDateTime) -> DateTime<Utc> {
        resolve_in(self.s.time_zone, naive)
    }

    /// A holiday of this calendar (rule, plus extra, minus removed).
    pub fn is_holiday(&self, d: NaiveDate) -> bool {
        if self.s.extra_holidays.contains(&d) {
            return true;
        }
        if self.s.removed_holidays.contains(&d) {
            return false;
        }
        match self.s.holidays {
            HolidayRule::UsFederal if CACHED_YEARS.contains(&d.year()) => self.us.contains(&d),
            HolidayRule::UsFederal => holidays::us_federal(d.year()).iter().any(|(h, _)| *h == d),
            HolidayRule::None => false,
        }
    }

    /// A working day that is not a holiday ("business day" in CCPA terms).
    pub fn is_business_day(&self, d: NaiveDate) -> bool {
        self.s.working_days.contains(&d.weekday()) && !self.is_holiday(d)
    }

    /// A day off in England and Wales: a weekend or a bank holiday.
    pub fn is_uk_day_off(&self, d: NaiveDate) -> bool {
        if matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
            return true;
        }
        if self.s.uk_extra_bank_holidays.contains(&d) {
            return true;
        }
        if self.s.uk_removed_bank_holidays.contains(&d) {
            return false;
        }
        if CACHED_YEARS.contains(&d.year()) {
            return self.uk.contains(&d);
        }
        holidays::uk_england_wales(d.year())
            .iter()
            .any(|(h, _)| *h == d)
    }

    /// `d` itself if it is a UK working day, else the next one.
    pub fn uk_working_day_on_or_after(&self, d: NaiveDate) -> NaiveDate {
        let mut x = d;
        for _ in 0..MAX_DAYS {
            if !self.is_uk_day_off(x) {
                return x;
            }
            match x.succ_opt() {
                Some(n) => x = n,
                None => return x,
            }
        }
        x
    }

    /// The `n`th business day after `d` (`d` itself never counts).
    pub fn nth_business_day_after(&self, d: NaiveDate, n: u32) -> Option<NaiveDate> {
        let mut x = d;
        let mut left = n;
        for _ in 0..(MAX_DAYS + n as usize) {
            x = x.succ_opt()?;
            if self.is_business_day(x) {
                left -= 1;
                if left == 0 {
                    return Some(x);
                }
            }
        }
        None
    }

    /// Opening and closing instant of date `d`, if it is a business day.
    pub fn window(&self, d: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.is_business_day(d) {
            return None;
        }
        let open = self.resolve(d.and_time(self.s.opens));
        let close = self.resolve(d.and_time(self.s.closes));
        (open < close).then_some((open, close))
    }

    /// Inside support hours: opening ≤ t < closing on a business day.
    pub fn in_hours(&self, t: DateTime<Utc>) -> bool {
        match self.window(self.local_date(t)) {
            Some((open, close)) => open <= t && t < close,
            None => false,
        }
    }

    /// `start` plus `d` of support time. A start outside hours begins at the
    /// next opening; a result that lands exactly on a closing time stays
    /// there. `None` only if no business day follows within three years.
    pub fn add_support_time(&self, start: DateTime<Utc>, d: Duration) -> Option<DateTime<Utc>> {
        let mut remaining = d.max(Duration::zero());
        let mut date = self.local_date(start);
        for _ in 0..MAX_DAYS + (remaining.num_days() as usize) {
            if let Some((open, close)) = self.window(date) {
                if start < close {
                    let s = start.max(open);
                    let avail = close - s;
                    if remaining <= avail {
                        return Some(s + remaining);
                    }
                    remaining -= avail;
                }
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// The first instant at or after `t` inside support hours.
    pub fn next_opening(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.add_support_time(t, Duration::zero())
    }

    /// Midnight at the start of local date `d`, as an instant.
    pub fn start_of_day(&self, d: NaiveDate) -> DateTime<Utc> {
        self.resolve(d.and_time(NaiveTime::MIN))
    }
}

/// The instant a local wall-clock time names in `tz`: the earlier of two in
/// a repeated hour; the first instant after a gap for a time that does not
/// exist.
pub fn resolve_in(tz: Tz, naive: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(a, b) => a.min(b).with_timezone(&Utc),
        LocalResult::None => {
            // Walk forward minute by minute from the start of the minute
            // until the wall clock exists again (real gaps start and end on
            // minute boundaries and last at most a few hours).
            let base = naive
                .with_second(0)
                .and_then(|n| n.with_nanosecond(0))
                .unwrap_or(naive);
            for k in 1..=(26 * 60) {
                let n = base + Duration::minutes(k);
                match tz.from_local_datetime(&n) {
                    LocalResult::Single(t) => return t.with_timezone(&Utc),
                    LocalResult::Ambiguous(a, b) => return a.min(b).with_timezone(&Utc),
                    LocalResult::None => {}
                }
            }
            // Unreachable for real zones; fall back to reading it as UTC.
            Utc.from_utc_datetime(&naive)
        }
    }
}
