//! The privacy workflow's part of `[privacy]` (the clock keys are in
//! `clocks.rs`): which regimes stop the clock while identity is awaited,
//! how many wrong identity codes are tolerated, forwarding to agencies, and
//! `[privacy.disclosure]` — what an access answer says about processing
//! (purposes, categories, recipients, transfers, retention).

use super::{ConfigError, HumanDuration};
use crate::clock::Regime;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDisclosure {
    purposes: Option<Vec<String>>,
    categories: Option<Vec<String>>,
    recipients: Option<Vec<Recipient>>,
    transfers: Option<String>,
    retention: Option<String>,
}

/// A recipient of personal data (a sub-processor) and what it does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Recipient {
    pub name: String,
    pub purpose: String,
}

/// What an access answer tells the requester about processing.
#[derive(Debug, Clone, Serialize)]
pub struct Disclosure {
    pub purposes: Vec<String>,
    pub categories: Vec<String>,
    pub recipients: Vec<Recipient>,
    pub transfers: String,
    pub retention: String,
}

impl Default for Disclosure {
    fn default() -> Self {
        let r = |name: &str, purpose: &str| Recipient {
            name: name.into(),
            purpose: purpose.into(),
        };
        Disclosure {
            purposes: vec![
                "providing and supporting the CaseHost service your agency uses".into(),
                "answering your support and privacy requests".into(),
                "security and abuse prevention".into(),
            ],
            categories: vec![
                "contact details (name, e-mail address)".into(),
                "the content of your messages to us and our answers".into(),
                "account and site-usage data".into(),
            ],
            recipients: vec![
                r("Google", "analytics; maps and geocoding; productivity suite"),
                r("Amazon Web Services", "hosting"),
                r("US Postal Service", "address validation"),
            ],
            transfers: "Your data is processed in the United States.".into(),
            retention: "Agencies license their data to us until 30 days after their subscription ends; our own records of your requests are kept as our retention settings say.".into(),
        }
    }
}

/// How privacy requests are worked.
#[derive(Debug, Clone, Serialize)]
pub struct PrivacyWorkflow {
    /// Regimes whose clock stops while identity is awaited (UK GDPR may,
    /// Data (Use and Access) Act 2025, Art. 12A). Default: UK GDPR only.
    pub identity_pauses: Vec<Regime>,
    /// Wrong codes (or right codes from another address) before code
    /// verification is closed and the privacy officer must verify by hand.
    pub code_attempts: u32,
    /// Remind the privacy officer when a forwarded request is not
    /// acknowledged by the agency within this time.
    pub forward_reminder_after: HumanDuration,
    /// Forward at once when the requester's mail domain is an agency's and
    /// the agency has a `privacy_contact` (default: only offer it).
    pub auto_forward: bool,
    pub disclosure: Disclosure,
}

impl Default for PrivacyWorkflow {
    fn default() -> Self {
        PrivacyWorkflow {
            identity_pauses: vec![Regime::UkGdpr],
            code_attempts: 5,
            forward_reminder_after: HumanDuration(Duration::from_secs(7 * 24 * 3600)),
            auto_forward: false,
            disclosure: Disclosure::default(),
        }
    }
}

pub(super) fn build_privacy(
    raw: &super::clocks::RawPrivacy,
) -> Result<PrivacyWorkflow, ConfigError> {
    let mut p = PrivacyWorkflow::default();
    if let Some(v) = &raw.identity_pauses {
        p.identity_pauses = v.clone();
    }
    if let Some(n) = raw.code_attempts {
        p.code_attempts = n.clamp(1, 100);
    }
    if let Some(d) = raw.forward_reminder_after {
        p.forward_reminder_after = d;
    }
    p.auto_forward = raw.auto_forward.unwrap_or(false);
    if let Some(d) = &raw.disclosure {
        let x = &mut p.disclosure;
        if let Some(v) = &d.purposes {
            x.purposes = v.clone();
        }
        if let Some(v) = &d.categories {
            x.categories = v.clone();
        }
        if let Some(v) = &d.recipients {
            x.recipients = v.clone();
        }
        if let Some(v) = &d.transfers {
            x.transfers = v.clone();
        }
        if let Some(v) = &d.retention {
            x.retention = v.clone();
        }
    }
    Ok(p)
}
