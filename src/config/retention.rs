//! The `[retention]` section: how long ticketd keeps personal data it no
//! longer needs (the scheduled `retention` job, [`crate::erase::retention`]).
//!
//! Defaults: raw mail and bodies of cases closed over 365 days ago,
//! set-aside messages after 30 days, bodies of sent outbox mail after 90
//! days; the copies in the IMAP processed folder are left alone unless
//! `processed_imap = true`. A limit of 0 keeps that data for ever.

use super::ConfigError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    closed_case_days: Option<toml::Spanned<i64>>,
    ignored_days: Option<toml::Spanned<i64>>,
    sent_outbox_days: Option<toml::Spanned<i64>>,
    processed_imap: Option<bool>,
}

/// Retention limits in days (0: keep for ever).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retention {
    pub closed_case_days: u32,
    pub ignored_days: u32,
    pub sent_outbox_days: u32,
    /// Delete the matching mail from the IMAP processed folder too.
    pub processed_imap: bool,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            closed_case_days: 365,
            ignored_days: 30,
            sent_outbox_days: 90,
            processed_imap: false,
        }
    }
}

type AtFn<'a> = dyn Fn(std::ops::Range<usize>, String) -> ConfigError + 'a;

pub(super) fn build_retention(raw: RawRetention, at: &AtFn<'_>) -> Result<Retention, ConfigError> {
    let d = Retention::default();
    let days = |v: Option<toml::Spanned<i64>>, name: &str, default: u32| match v {
        None => Ok(default),
        Some(s) => u32::try_from(*s.get_ref())
            .ok()
            .filter(|n| *n <= 36_500)
            .ok_or_else(|| {
                at(
                    s.span(),
                    format!("{name} is a number of days from 0 (keep for ever) to 36500"),
                )
            }),
    };
    Ok(Retention {
        closed_case_days: days(raw.closed_case_days, "closed_case_days", d.closed_case_days)?,
        ignored_days: days(raw.ignored_days, "ignored_days", d.ignored_days)?,
        sent_outbox_days: days(raw.sent_outbox_days, "sent_outbox_days", d.sent_outbox_days)?,
        processed_imap: raw.processed_imap.unwrap_or(d.processed_imap),
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(extra: &str) -> Result<Config, String> {
        let text = format!(
            "data_dir = \"/tmp/x\"\n[outbound]\nfrom_support = \"S <s@example.org>\"\nfrom_privacy = \"P <p@example.org>\"\ntransport = \"file\"\n{extra}"
        );
        Config::from_toml(&text, "t.toml", std::path::Path::new("/tmp")).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_values() {
        let c = parse("").expect("config");
        assert_eq!(c.retention, super::Retention::default());
        let c = parse("[retention]\nclosed_case_days = 10\nignored_days = 0\nsent_outbox_days = 5\nprocessed_imap = true\n")
            .expect("config");
        assert_eq!(c.retention.closed_case_days, 10);
        assert_eq!(c.retention.ignored_days, 0);
        assert_eq!(c.retention.sent_outbox_days, 5);
        assert!(c.retention.processed_imap);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse("[retention]\nclosed_case_dayz = 3\n").expect_err("unknown key");
        assert!(
            e.contains("t.toml:7") && e.contains("closed_case_dayz"),
            "{e}"
        );
        let e = parse("[retention]\nignored_days = -1\n").expect_err("negative");
        assert!(e.contains("t.toml:7") && e.contains("ignored_days"), "{e}");
    }
}
