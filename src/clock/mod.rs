//! Time: the one place that reads the wall clock ([`Clock`]; everything else
//! takes one, so tests can fix or advance time), and the pure arithmetic of
//! support hours and legal deadlines.
//!
//! - [`holidays`]: US federal and England-and-Wales bank holidays by rule.
//! - [`calendar`]: the business calendar (zone, opening hours, working days,
//!   holidays) and support-time arithmetic.
//! - [`deadline`]: support targets and the GDPR / UK GDPR / CCPA clocks.
//! - [`cron`]: job schedules from cron expressions, with daylight-saving
//!   switches handled the way cron users expect.

pub mod calendar;
pub mod cron;
pub mod deadline;
pub mod holidays;

pub use calendar::{BusinessCalendar, CalendarSettings};
pub use deadline::{PrivacyDates, Regime, Targets};

use chrono::{DateTime, Utc};
use std::sync::Mutex;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock tests set by hand.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(at))
    }
    pub fn set(&self, at: DateTime<Utc>) {
        if let Ok(mut g) = self.0.lock() {
            *g = at;
        }
    }
    pub fn advance(&self, by: chrono::Duration) {
        if let Ok(mut g) = self.0.lock() {
            *g += by;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        match self.0.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        }
    }
}
