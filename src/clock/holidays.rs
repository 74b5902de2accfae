//! Public holidays computed by rule for any year (pure): the United States
//! federal holidays on their observed dates, and the bank holidays of England
//! and Wales with their substitute days. Config adds and removes dates on top
//! (see [`super::calendar`]).
//!
//! Not for: regional or company holidays (those are config), or years before
//! the rules below took their present form (results for them follow today's
//! rules).

use chrono::{Datelike, Duration, NaiveDate, Weekday};

/// A day off and its name.
pub type Holiday = (NaiveDate, &'static str);

fn ymd(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

/// The `n`th (1-based) `wd` of month `m`.
fn nth_weekday(y: i32, m: u32, wd: Weekday, n: u8) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(y, m, wd, n)
}

/// The last `wd` of month `m`.
fn last_weekday(y: i32, m: u32, wd: Weekday) -> Option<NaiveDate> {
    let first_next = if m == 12 {
        ymd(y + 1, 1, 1)?
    } else {
        ymd(y, m + 1, 1)?
    };
    let mut d = first_next - Duration::days(1);
    while d.weekday() != wd {
        d -= Duration::days(1);
    }
    Some(d)
}

/// US observance rule (5 U.S.C. 6103(b), Executive Order 11582): a holiday
/// on a Saturday is observed the Friday before, on a Sunday the Monday after.
fn us_observed(d: NaiveDate) -> NaiveDate {
    match d.weekday() {
        Weekday::Sat => d - Duration::days(1),
        Weekday::Sun => d + Duration::days(1),
        _ => d,
    }
}

/// The legal public holidays of 5 U.S.C. 6103(a) for calendar year `y`, as
/// observed, with the dates they fall on *in that year's rule* (an observed
/// date may fall in the previous year: New Year's Day 2028 is a Saturday and
/// is observed on Friday 2027-12-31).
fn us_rule_year(y: i32) -> Vec<Holiday> {
    let fixed = [
        (ymd(y, 1, 1), "New Year's Day"),
        // Juneteenth National Independence Day, added in 2021 (Pub. L. 117-17).
        (
            if y >= 2021 { ymd(y, 6, 19) } else { None },
            "Juneteenth National Independence Day",
        ),
        (ymd(y, 7, 4), "Independence Day"),
        (ymd(y, 11, 11), "Veterans Day"),
        (ymd(y, 12, 25), "Christmas Day"),
    ];
    let floating = [
        // Martin Luther King Jr.'s birthday, third Monday of January (since 1986).
        (
            if y >= 1986 {
                nth_weekday(y, 1, Weekday::Mon, 3)
            } else {
                None
            },
            "Birthday of Martin Luther King, Jr.",
        ),
        (nth_weekday(y, 2, Weekday::Mon, 3), "Washington's Birthday"),
        (last_weekday(y, 5, Weekday::Mon), "Memorial Day"),
        (nth_weekday(y, 9, Weekday::Mon, 1), "Labor Day"),
        (nth_weekday(y, 10, Weekday::Mon, 2), "Columbus Day"),
        (nth_weekday(y, 11, Weekday::Thu, 4), "Thanksgiving Day"),
    ];
    let mut out: Vec<Holiday> = fixed
        .into_iter()
        .filter_map(|(d, n)| d.map(|d| (us_observed(d), n)))
        .chain(floating.into_iter().filter_map(|(d, n)| d.map(|d| (d, n))))
        .collect();
    out.sort();
    out
}

/// US federal holidays whose observed date falls in calendar year `year`
/// (so 2027 includes Friday 2027-12-31 for New Year's Day 2028, and 2028 has
/// no New Year's Day of its own).
pub fn us_federal(year: i32) -> Vec<Holiday> {
    let mut out: Vec<Holiday> = us_rule_year(year)
        .into_iter()
        .chain(us_rule_year(year + 1))
        .filter(|(d, _)| d.year() == year)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Easter Sunday (Gregorian calendar; the anonymous algorithm of 1876,
/// "Meeus/Jones/Butcher").
pub fn easter(y: i32) -> Option<NaiveDate> {
    let a = y % 19;
    let b = y / 100;
    let c = y % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    ymd(y, u32::try_from(month).ok()?, u32::try_from(day).ok()?)
}

/// Bank holidays of England and Wales (Banking and Financial Dealings Act
/// 1971, Sch. 1, and the royal proclamations that move or add days), as the
/// days actually off: when Christmas Day, Boxing Day or New Year's Day falls
/// on a weekend, the substitute weekday is listed instead.
pub fn uk_england_wales(y: i32) -> Vec<Holiday> {
    let mut out: Vec<Holiday> = Vec::new();
    let mut push = |d: Option<NaiveDate>, n: &'static str| {
        if let Some(d) = d {
            out.push((d, n));
        }
    };
    // New Year's Day, or the Monday after when it falls on a weekend.
    if let Some(ny) = ymd(y, 1, 1) {
        let d = match ny.weekday() {
            Weekday::Sat => ny + Duration::days(2),
            Weekday::Sun => ny + Duration::days(1),
            _ => ny,
        };
        push(Some(d), "New Year's Day");
    }
    if let Some(e) = easter(y) {
        push(Some(e - Duration::days(2)), "Good Friday");
        push(Some(e + Duration::days(1)), "Easter Monday");
    }
    // Early May bank holiday: first Monday of May (moved by proclamation in
    // 1995 and 2020 to mark VE Day anniversaries).
    match y {
        1995 => push(ymd(1995, 5, 8), "Early May bank holiday (VE Day)"),
        2020 => push(ymd(2020, 5, 8), "Early May bank holiday (VE Day)"),
        _ => push(nth_weekday(y, 5, Weekday::Mon, 1), "Early May bank holiday"),
    }
    // Spring bank holiday: last Monday of May (moved for the jubilees).
    match y {
        2002 => {
            push(ymd(2002, 6, 3), "Golden Jubilee bank holiday");
            push(ymd(2002, 6, 4), "Spring bank holiday");
        }
        2012 => {
            push(ymd(2012, 6, 4), "Spring bank holiday");
            push(ymd(2012, 6, 5), "Queen's Diamond Jubilee");
        }
        2022 => {
            push(ymd(2022, 6, 2), "Spring bank holiday");
            push(ymd(2022, 6, 3), "Platinum Jubilee bank holiday");
        }
        _ => push(last_weekday(y, 5, Weekday::Mon), "Spring bank holiday"),
    }
    push(last_weekday(y, 8, Weekday::Mon), "Summer bank holiday");
    // One-off days by proclamation.
    match y {
        1999 => push(ymd(1999, 12, 31), "Millennium Celebrations"),
        2011 => push(ymd(2011, 4, 29), "Royal wedding"),
        2022 => push(ymd(2022, 9, 19), "State Funeral of Queen Elizabeth II"),
        2023 => push(ymd(2023, 5, 8), "Coronation of King Charles III"),
        _ => {}
    }
    // Christmas Day and Boxing Day with substitute days.
    if let Some(xmas) = ymd(y, 12, 25) {
        let (c, b) = match xmas.weekday() {
            // Sat 25, Sun 26: Monday 27 and Tuesday 28 are the substitutes.
            Weekday::Sat => (ymd(y, 12, 27), ymd(y, 12, 28)),
            // Sun 25, Mon 26 Boxing Day: Christmas substituted on Tuesday 27.
            Weekday::Sun => (ymd(y, 12, 27), ymd(y, 12, 26)),
            // Fri 25, Sat 26: Boxing Day substituted on Monday 28.
            Weekday::Fri => (ymd(y, 12, 25), ymd(y, 12, 28)),
            _ => (ymd(y, 12, 25), ymd(y, 12, 26)),
        };
        push(c, "Christmas Day");
        push(b, "Boxing Day");
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    fn dates(v: Vec<Holiday>) -> Vec<String> {
        v.into_iter().map(|(d, _)| d.to_string()).collect()
    }

    #[test]
    fn us_2026_matches_opm_list() {
        // OPM's published 2026 list.
        assert_eq!(
            dates(us_federal(2026)),
            [
                "2026-01-01",
                "2026-01-19",
                "2026-02-16",
                "2026-05-25",
                "2026-06-19",
                "2026-07-03", // July 4 is a Saturday
                "2026-09-07",
                "2026-10-12",
                "2026-11-11",
                "2026-11-26",
                "2026-12-25",
            ]
        );
    }

    #[test]
    fn new_year_2028_is_observed_in_2027() {
        let y27 = dates(us_federal(2027));
        assert!(y27.contains(&"2027-12-31".to_string()), "{y27:?}");
        assert!(
            y27.contains(&"2027-12-24".to_string()),
            "Christmas 2027 is a Saturday"
        );
        assert!(
            y27.contains(&"2027-07-05".to_string()),
            "July 4 2027 is a Sunday"
        );
        assert!(
            y27.contains(&"2027-06-18".to_string()),
            "Juneteenth 2027 is a Saturday"
        );
        let y28 = dates(us_federal(2028));
        assert!(!y28.iter().any(|d| d.starts_with("2028-01-0")), "{y28:?}");
        assert_eq!(y28.len(), 10);
        // 2022: New Year's Day 2022 was a Saturday, observed Fri 2021-12-31.
        assert!(dates(us_federal(2021)).contains(&"2021-12-31".to_string()));
        assert!(!dates(us_federal(2020)).iter().any(|d| d.contains("06-19")));
    }

    #[test]
    fn easter_dates() {
        for (y, e) in [
            (2024, "2024-03-31"),
            (2025, "2025-04-20"),
            (2026, "2026-04-05"),
            (2027, "2027-03-28"),
            (2028, "2028-04-16"),
            (2038, "2038-04-25"),
            (2285, "2285-03-22"),
        ] {
            assert_eq!(easter(y), Some(d(e)), "{y}");
        }
    }

    #[test]
    fn england_and_wales_with_substitutes() {
        assert_eq!(
            dates(uk_england_wales(2026)),
            [
                "2026-01-01",
                "2026-04-03",
                "2026-04-06",
                "2026-05-04",
                "2026-05-25",
                "2026-08-31",
                "2026-12-25",
                "2026-12-28", // Boxing Day is a Saturday
            ]
        );
        // 2027: Christmas on a Saturday → Mon 27 and Tue 28.
        let y27 = dates(uk_england_wales(2027));
        assert!(y27.ends_with(&["2027-12-27".to_string(), "2027-12-28".to_string()]));
        // 2022: Christmas on a Sunday → Mon 26, Tue 27; jubilee and funeral.
        let y22 = dates(uk_england_wales(2022));
        for x in [
            "2022-06-02",
            "2022-06-03",
            "2022-09-19",
            "2022-12-26",
            "2022-12-27",
        ] {
            assert!(y22.contains(&x.to_string()), "{x} in {y22:?}");
        }
        assert!(!y22.contains(&"2022-05-30".to_string()));
        // 2028: New Year's Day is a Saturday → Monday 3 January.
        assert_eq!(dates(uk_england_wales(2028))[0], "2028-01-03");
        assert!(dates(uk_england_wales(2020)).contains(&"2020-05-08".to_string()));
    }
}
