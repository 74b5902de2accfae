//! Job schedules (pure): a cron expression (seconds first, `cron` crate)
//! evaluated in the business calendar's zone, with the daylight-saving rules
//! of classic cron (Vixie cron's, also systemd's spirit):
//!
//! - A *fixed-time* job (its hour field is not `*`) runs once per wall-clock
//!   time: in the fall-back hour it does not run a second time, and if its
//!   time falls in the spring-forward gap it runs once at the first instant
//!   after the gap (the `cron` crate alone would skip it).
//! - A *wildcard* job (hour field `*`, e.g. every minute) runs on every tick
//!   of real time, including both passes through a repeated hour.
//!
//! Missed runs (the daemon was down) are caught up once, not once per missed
//! tick: see [`JobSchedule::next_run`].

use super::calendar::BusinessCalendar;
use chrono::{DateTime, Duration, FixedOffset, Offset, TimeZone, Utc};
use cron::{Schedule, TimeUnitSpec};
use std::str::FromStr;

/// A parsed job schedule.
#[derive(Debug, Clone)]
pub struct JobSchedule {
    schedule: Schedule,
    /// The hour field names particular hours (not `*`).
    fixed_time: bool,
    /// Ticks outside support hours do not count.
    pub support_hours_only: bool,
}

/// How many ticks a search may look at before giving up (a schedule that
/// never matches, such as 30 February).
const MAX_TICKS: usize = 100_000;

impl JobSchedule {
    /// Parse a cron expression (6 or 7 fields, seconds first). Day-of-week
    /// numbers in the `cron` crate count Sunday as 1, so write `MON-FRI`.
    pub fn parse(expr: &str, support_hours_only: bool) -> Result<JobSchedule, String> {
        let schedule = Schedule::from_str(expr.trim()).map_err(|e| {
            format!("not a cron expression {expr:?}: {e} (6 fields, seconds first, e.g. \"0 0 8 * * MON-FRI\")")
        })?;
        let fixed_time = !schedule.hours().is_all();
        Ok(JobSchedule {
            schedule,
            fixed_time,
            support_hours_only,
        })
    }

    /// The first tick strictly after `after`, as an instant.
    pub fn next_tick(&self, cal: &BusinessCalendar, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.fixed_time {
            // Walk the schedule in local wall-clock time (read as if it were
            // UTC), then map each wall time to its one instant.
            let naive = cal.local(after).naive_local();
            let start = Utc.from_utc_datetime(&naive);
            self.schedule
                .after(&start)
                .take(MAX_TICKS)
                .map(|t| cal.resolve(t.naive_utc()))
                .find(|t| *t > after)
        } else {
            // Real-time ticks: evaluate in the fixed UTC offset in force, and
            // accept a tick only if that offset is still the zone's offset at
            // the tick (so both passes through a repeated hour count, and
            // nothing is computed for wall times that do not exist).
            let offset_at = |t: DateTime<Utc>| cal.local(t).offset().fix();
            let tick_in = |o: FixedOffset| {
                self.schedule
                    .after(&after.with_timezone(&o))
                    .next()
                    .map(|t| t.with_timezone(&Utc))
            };
            let mut offsets = vec![offset_at(after)];
            let mut best: Option<DateTime<Utc>> = None;
            let mut i = 0;
            while i < offsets.len() && i < 4 {
                if let Some(t) = tick_in(offsets[i]) {
                    let o = offset_at(t);
                    if o == offsets[i] {
                        best = Some(best.map_or(t, |b| b.min(t)));
                    } else if !offsets.contains(&o) {
                        offsets.push(o);
                    }
                }
                i += 1;
            }
            best
        }
    }

    /// The first tick after `after` that the job may run at (inside support
    /// hours when it is restricted to them).
    pub fn next_allowed_tick(
        &self,
        cal: &BusinessCalendar,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut from = after;
        for _ in 0..MAX_TICKS {
            let t = self.next_tick(cal, from)?;
            if !self.support_hours_only || cal.in_hours(t) {
                return Some(t);
            }
            // Skip straight to the next opening (minus a second, so a tick
            // exactly at opening time is found).
            let open = cal.next_opening(t)?;
            from = (open - Duration::seconds(1)).max(t);
        }
        None
    }

    /// When the job should next run, given when it last ran. A result at or
    /// before `now` means "run now": the missed ticks since `last_run`
    /// collapse into that one run. A job restricted to support hours whose
    /// run was missed while `now` is outside hours waits for its next
    /// in-hours tick (and runs once then).
    pub fn next_run(
        &self,
        cal: &BusinessCalendar,
        last_run: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let t = self.next_allowed_tick(cal, last_run)?;
        if t <= now && self.support_hours_only && !cal.in_hours(now) {
            return self.next_allowed_tick(cal, now);
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test instant")
            .with_timezone(&Utc)
    }

    fn cal() -> BusinessCalendar {
        BusinessCalendar::default()
    }

    #[test]
    fn fall_back_runs_a_fixed_job_once_and_a_wildcard_job_every_minute() {
        let c = cal();
        let daily = JobSchedule::parse("0 30 1 * * *", false).expect("cron");
        // 2026-11-01: 01:30 EDT = 05:30Z, then 01:30 EST = 06:30Z must not run.
        let t1 = daily
            .next_tick(&c, at("2026-10-31T12:00:00Z"))
            .expect("tick");
        assert_eq!(t1, at("2026-11-01T05:30:00Z"));
        let t2 = daily.next_tick(&c, t1).expect("tick");
        assert_eq!(
            t2,
            at("2026-11-02T06:30:00Z"),
            "next day, not 06:30Z the same day"
        );
        // A job started during the second 01:xx does not run 01:30 again.
        assert_eq!(
            daily.next_tick(&c, at("2026-11-01T06:10:00Z")),
            Some(at("2026-11-02T06:30:00Z"))
        );
        let minutely = JobSchedule::parse("0 * * * * *", false).expect("cron");
        assert_eq!(
            minutely.next_tick(&c, at("2026-11-01T05:59:00Z")),
            Some(at("2026-11-01T06:00:00Z")),
            "01:59 EDT is followed by 01:00 EST"
        );
    }

    #[test]
    fn spring_gap_runs_once_at_the_first_instant_after_it() {
        let c = cal();
        let daily = JobSchedule::parse("0 30 2 * * *", false).expect("cron");
        // 2027-03-14 02:30 does not exist in New York; 03:00 EDT = 07:00Z.
        let t = daily
            .next_tick(&c, at("2027-03-13T12:00:00Z"))
            .expect("tick");
        assert_eq!(t, at("2027-03-14T07:00:00Z"));
        assert_eq!(daily.next_tick(&c, t), Some(at("2027-03-15T06:30:00Z")));
        // Every minute from 02:00 to 02:59: one run at 03:00, not sixty.
        let gap = JobSchedule::parse("0 * 2 * * *", false).expect("cron");
        let t = gap.next_tick(&c, at("2027-03-14T06:59:00Z")).expect("tick");
        assert_eq!(t, at("2027-03-14T07:00:00Z"));
        assert_eq!(gap.next_tick(&c, t), Some(at("2027-03-15T06:00:00Z")));
    }

    #[test]
    fn missed_runs_collapse_into_one() {
        let c = cal();
        let digest = JobSchedule::parse("0 0 8 * * MON-FRI", true).expect("cron");
        // Last ran Friday 2026-11-20 08:00 EST; down until Tuesday 10:00.
        let last = at("2026-11-20T13:00:00Z");
        let now = at("2026-11-24T15:00:00Z");
        assert_eq!(
            digest.next_run(&c, last, now),
            Some(at("2026-11-23T13:00:00Z"))
        );
        // After running at `now`, the next run is Wednesday 08:00.
        assert_eq!(
            digest.next_run(&c, now, now),
            Some(at("2026-11-25T13:00:00Z"))
        );
        // Missed while the office is closed (Saturday): waits for Monday 08:00.
        let sat = at("2026-11-21T15:00:00Z");
        assert_eq!(
            digest.next_run(&c, last, sat),
            Some(at("2026-11-23T13:00:00Z"))
        );
        // Thanksgiving: no digest on Thursday 2026-11-26.
        assert_eq!(
            digest.next_allowed_tick(&c, at("2026-11-25T14:00:00Z")),
            Some(at("2026-11-27T13:00:00Z"))
        );
    }

    #[test]
    fn bad_expressions_are_refused() {
        assert!(JobSchedule::parse("every minute", false).is_err());
        assert!(JobSchedule::parse("* * * *", false).is_err());
    }
}
