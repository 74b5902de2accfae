//! The vendor's published policy as data: support levels with their
//! first-response targets, and the privacy rights and jurisdictions ticketd
//! recognises (see `PRODUCT.md`). Pure; no I/O.
//!
//! Targets are durations of *support time* (07:30–19:30 on working days);
//! turning them into due instants is the business calendar's job.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Support level 1 (most urgent) to 5.
pub type Level = u8;

/// Minutes of support time for the first response, per level (1..=5).
pub fn support_target_minutes(level: Level) -> u32 {
    match level {
        1 | 2 => 30,
        3 => 60,
        4 => 12 * 60,
        _ => 5 * 12 * 60,
    }
}

/// What the level means, in the vendor's words.
pub fn level_meaning(level: Level) -> &'static str {
    match level {
        1 => "the site is unreachable or not responding",
        2 => "a critical feature is broken",
        3 => "an error in a feature",
        4 => "a feature does not work as expected",
        _ => "a change or new feature request",
    }
}

/// "30 minutes", "1 hour", "1 support day (12 hours of support time)", ...
pub fn target_phrase(level: Level) -> String {
    match support_target_minutes(level) {
        m if m < 60 => format!("{m} minutes"),
        60 => "1 hour".to_string(),
        720 => "1 support day (12 hours of support time)".to_string(),
        3600 => "1 support week (5 support days)".to_string(),
        m if m % 60 == 0 => format!("{} hours", m / 60),
        m => format!("{m} minutes"),
    }
}

/// A data-subject right. GDPR names are used unless the jurisdiction is CCPA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Right {
    Access,
    Erasure,
    Rectification,
    Restriction,
    Portability,
    Objection,
    AutomatedDecision,
    ConsentWithdrawal,
    CcpaKnow,
    CcpaDelete,
    CcpaCorrect,
    CcpaOptOut,
    CcpaLimit,
}

impl Right {
    pub fn as_str(self) -> &'static str {
        match self {
            Right::Access => "access",
            Right::Erasure => "erasure",
            Right::Rectification => "rectification",
            Right::Restriction => "restriction",
            Right::Portability => "portability",
            Right::Objection => "objection",
            Right::AutomatedDecision => "automated_decision",
            Right::ConsentWithdrawal => "consent_withdrawal",
            Right::CcpaKnow => "ccpa_know",
            Right::CcpaDelete => "ccpa_delete",
            Right::CcpaCorrect => "ccpa_correct",
            Right::CcpaOptOut => "ccpa_opt_out",
            Right::CcpaLimit => "ccpa_limit",
        }
    }

    /// Every right, GDPR names first.
    pub const ALL: [Right; 13] = [
        Right::Access,
        Right::Erasure,
        Right::Rectification,
        Right::Restriction,
        Right::Portability,
        Right::Objection,
        Right::AutomatedDecision,
        Right::ConsentWithdrawal,
        Right::CcpaKnow,
        Right::CcpaDelete,
        Right::CcpaCorrect,
        Right::CcpaOptOut,
        Right::CcpaLimit,
    ];

    /// The right named by [`Right::as_str`].
    pub fn parse(s: &str) -> Option<Right> {
        Right::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Human description, with the article that grants it.
    pub fn describe(self) -> &'static str {
        match self {
            Right::Access => "access to your personal data (GDPR Art. 15)",
            Right::Erasure => "erasure of your personal data (GDPR Art. 17)",
            Right::Rectification => "rectification of your personal data (GDPR Art. 16)",
            Right::Restriction => "restriction of processing (GDPR Art. 18)",
            Right::Portability => "a portable copy of your data (GDPR Art. 20)",
            Right::Objection => "objection to processing (GDPR Art. 21)",
            Right::AutomatedDecision => "not to be subject to automated decisions (GDPR Art. 22)",
            Right::ConsentWithdrawal => "withdrawal of consent (GDPR Art. 7(3))",
            Right::CcpaKnow => "to know what personal information we hold (CCPA)",
            Right::CcpaDelete => "deletion of your personal information (CCPA)",
            Right::CcpaCorrect => "correction of your personal information (CCPA)",
            Right::CcpaOptOut => "to opt out of sale or sharing (CCPA)",
            Right::CcpaLimit => "to limit use of sensitive personal information (CCPA)",
        }
    }

    /// The CCPA counterpart of a GDPR right, where one exists.
    pub fn to_ccpa(self) -> Right {
        match self {
            Right::Access | Right::Portability => Right::CcpaKnow,
            Right::Erasure => Right::CcpaDelete,
            Right::Rectification => Right::CcpaCorrect,
            Right::Objection | Right::ConsentWithdrawal => Right::CcpaOptOut,
            Right::Restriction => Right::CcpaLimit,
            Right::AutomatedDecision => Right::CcpaOptOut,
            other => other,
        }
    }

    /// The GDPR counterpart of a CCPA right.
    pub fn to_gdpr(self) -> Right {
        match self {
            Right::CcpaKnow => Right::Access,
            Right::CcpaDelete => Right::Erasure,
            Right::CcpaCorrect => Right::Rectification,
            Right::CcpaOptOut => Right::Objection,
            Right::CcpaLimit => Right::Restriction,
            other => other,
        }
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which law's clock applies to a privacy request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jurisdiction {
    Gdpr,
    UkGdpr,
    Ccpa,
    Unknown,
}

impl Jurisdiction {
    /// The jurisdiction named by [`Jurisdiction::as_str`].
    pub fn parse(s: &str) -> Option<Jurisdiction> {
        [
            Jurisdiction::Gdpr,
            Jurisdiction::UkGdpr,
            Jurisdiction::Ccpa,
            Jurisdiction::Unknown,
        ]
        .into_iter()
        .find(|j| j.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Jurisdiction::Gdpr => "gdpr",
            Jurisdiction::UkGdpr => "uk_gdpr",
            Jurisdiction::Ccpa => "ccpa",
            Jurisdiction::Unknown => "unknown",
        }
    }

    /// What the acknowledgement promises, as a duration (the clocks work
    /// turns it into a date).
    pub fn answer_phrase(self) -> &'static str {
        match self {
            // GDPR Art. 12(3): one month from receipt, extendable by two.
            Jurisdiction::Gdpr | Jurisdiction::Unknown => {
                "within one month of receipt (GDPR Art. 12(3))"
            }
            Jurisdiction::UkGdpr => "within one month of receipt (UK GDPR Art. 12(3))",
            // 11 CCR § 7021: confirm in 10 business days, answer in 45 days.
            Jurisdiction::Ccpa => "within 45 calendar days of receipt (11 CCR § 7021)",
        }
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_match_published_policy() {
        assert_eq!(support_target_minutes(1), 30);
        assert_eq!(support_target_minutes(2), 30);
        assert_eq!(support_target_minutes(3), 60);
        assert_eq!(support_target_minutes(4), 720);
        assert_eq!(support_target_minutes(5), 3600);
        assert_eq!(target_phrase(3), "1 hour");
        assert_eq!(target_phrase(1), "30 minutes");
    }

    #[test]
    fn ccpa_and_gdpr_names_map_both_ways() {
        for r in [
            Right::Access,
            Right::Erasure,
            Right::Rectification,
            Right::Objection,
            Right::Restriction,
        ] {
            assert_eq!(r.to_ccpa().to_gdpr(), r);
        }
        assert_eq!(Right::CcpaOptOut.as_str(), "ccpa_opt_out");
    }
}
