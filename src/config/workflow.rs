//! The `[workflow]` and `[threading]` sections: how a case moves between
//! statuses by mail (auto-close, replies to closed cases, follow-up
//! notices, the audit name of the operator) and where the secret that signs
//! our Message-IDs comes from.

use super::{ConfigError, HumanDuration, SecretRef};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkflow {
    close_after: Option<toml::Spanned<HumanDuration>>,
    closed_reply_link_within: Option<HumanDuration>,
    follow_up_notice: Option<FollowUpNotice>,
    operator: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawThreading {
    secret_env: Option<String>,
    secret_file: Option<String>,
    previous_secret_env: Option<String>,
    previous_secret_file: Option<String>,
    previous_valid_until: Option<toml::Spanned<String>>,
}

/// How staff hear of a requester's follow-up on an open case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpNotice {
    /// A notice at once (to the assignee when set, else to `staff`).
    Mail,
    /// Only in the daily digest.
    Digest,
}

/// How cases move by mail.
#[derive(Debug, Clone, Serialize)]
pub struct Workflow {
    /// A resolved case is closed automatically this long after it was
    /// resolved (by the scheduler's escalation tick).
    pub close_after: HumanDuration,
    /// A requester reply to a case closed less than this long ago opens a
    /// new case linked to it; later replies open a new case with no link.
    pub closed_reply_link_within: HumanDuration,
    pub follow_up_notice: FollowUpNotice,
    /// The audit name of the person at the CLI (default: the Unix user).
    pub operator: Option<String>,
}

impl Default for Workflow {
    fn default() -> Self {
        Workflow {
            close_after: HumanDuration(Duration::from_secs(7 * 24 * 3600)),
            closed_reply_link_within: HumanDuration(Duration::from_secs(180 * 24 * 3600)),
            follow_up_notice: FollowUpNotice::Mail,
            operator: None,
        }
    }
}

/// Where the Message-ID signing secret comes from. Without `secret_*`,
/// ticketd generates one in `DATA_DIR/thread-key` on first start.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Threading {
    pub secret: Option<SecretRef>,
    /// The key before a rotation, still accepted until `previous_valid_until`.
    pub previous: Option<SecretRef>,
    pub previous_valid_until: Option<NaiveDate>,
}

type AtFn<'a> = dyn Fn(std::ops::Range<usize>, String) -> ConfigError + 'a;

pub(super) fn build_workflow(raw: RawWorkflow, at: &AtFn<'_>) -> Result<Workflow, ConfigError> {
    let mut w = Workflow::default();
    if let Some(c) = raw.close_after {
        if c.get_ref().0.as_secs() < 60 {
            return Err(at(c.span(), "close_after must be at least a minute".into()));
        }
        w.close_after = *c.get_ref();
    }
    if let Some(l) = raw.closed_reply_link_within {
        w.closed_reply_link_within = l;
    }
    if let Some(f) = raw.follow_up_notice {
        w.follow_up_notice = f;
    }
    w.operator = raw
        .operator
        .map(|o| o.trim().to_string())
        .filter(|o| !o.is_empty());
    Ok(w)
}

pub(super) fn build_threading(
    raw: RawThreading,
    base: &Path,
    file: &str,
    at: &AtFn<'_>,
) -> Result<Threading, ConfigError> {
    let secret = |env: Option<String>, file: Option<String>| {
        (env.is_some() || file.is_some()).then(|| SecretRef {
            env,
            file: file.map(|f| base.join(f)),
        })
    };
    let previous_valid_until = match raw.previous_valid_until {
        None => None,
        Some(d) => Some(
            NaiveDate::parse_from_str(d.get_ref().trim(), "%Y-%m-%d").map_err(|e| {
                at(
                    d.span(),
                    format!("previous_valid_until is a date (YYYY-MM-DD): {e}"),
                )
            })?,
        ),
    };
    let previous = secret(raw.previous_secret_env, raw.previous_secret_file);
    if previous.is_some() && previous_valid_until.is_none() {
        return Err(ConfigError::General {
            file: file.to_string(),
            message: "[threading] previous_secret_* needs previous_valid_until (the date the old key stops being accepted)".into(),
        });
    }
    Ok(Threading {
        secret: secret(raw.secret_env, raw.secret_file),
        previous,
        previous_valid_until,
    })
}
