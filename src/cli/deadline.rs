//! `ticketd deadline`: the clocks as a stable command-line interface (other
//! tools depend on its JSON). Reads only the clock sections of `--config`.

use super::CliError;
use crate::clock::deadline::{privacy_dates, support_respond_by, Regime};
use crate::clock::BusinessCalendar;
use crate::config::clocks::load_clocks;
use crate::policy::Right;
use chrono::{DateTime, SecondsFormat, Utc};
use std::path::Path;

/// The arguments of `ticketd deadline`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["support_level", "privacy"])))]
pub struct DeadlineArgs {
    /// Support level 1..5: print the first-response instant.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=5))]
    pub support_level: Option<u8>,
    /// Privacy regime: gdpr, uk_gdpr or ccpa.
    #[arg(long, value_name = "REGIME", value_parser = parse_regime)]
    pub privacy: Option<Regime>,
    /// A right the request asks for (repeatable), e.g. access, erasure,
    /// ccpa_know, ccpa_opt_out. The earliest date of all of them applies.
    #[arg(long = "right", value_name = "R", value_parser = parse_right, requires = "privacy")]
    pub rights: Vec<Right>,
    /// When the message reached our server (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = parse_instant)]
    pub received: DateTime<Utc>,
}

fn parse_regime(s: &str) -> Result<Regime, String> {
    s.parse()
}

fn parse_right(s: &str) -> Result<Right, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
        format!(
            "unknown right {s:?} (access, erasure, rectification, restriction, portability, objection, automated_decision, consent_withdrawal, ccpa_know, ccpa_delete, ccpa_correct, ccpa_opt_out, ccpa_limit)"
        )
    })
}

fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("not an RFC 3339 date-time {s:?}: {e} (e.g. 2026-11-24T09:00:00-05:00)")
        })
}

/// Print the deadline JSON for `args`.
pub fn run(config: Option<&Path>, args: &DeadlineArgs) -> Result<(), CliError> {
    let clocks = load_clocks(config).map_err(|e| CliError {
        message: e.to_string(),
        code: 2,
    })?;
    let cal = BusinessCalendar::new(clocks.calendar.clone());
    let unreachable = || CliError {
        message: "no business day within three years: check [calendar]".into(),
        code: 1,
    };
    #[derive(serde::Serialize)]
    struct Support {
        respond_by: String,
    }
    #[derive(serde::Serialize)]
    struct Privacy {
        acknowledge_by: Option<String>,
        respond_by: String,
        extended_respond_by: Option<String>,
        extension_notice_by: Option<String>,
    }
    let out = if let Some(level) = args.support_level {
        let t = support_respond_by(&cal, &clocks.targets, level, args.received)
            .ok_or_else(unreachable)?;
        serde_json::to_string(&Support {
            respond_by: cal.local(t).to_rfc3339_opts(SecondsFormat::Secs, false),
        })?
    } else {
        let regime = args.privacy.unwrap_or(clocks.unknown_jurisdiction);
        let d = privacy_dates(&cal, regime, &args.rights, args.received).ok_or_else(unreachable)?;
        let day = |x: chrono::NaiveDate| x.format("%Y-%m-%d").to_string();
        serde_json::to_string(&Privacy {
            acknowledge_by: d.acknowledge_by.map(day),
            respond_by: day(d.respond_by),
            extended_respond_by: d.extended_respond_by.map(day),
            extension_notice_by: d.extension_notice_by.map(day),
        })?
    };
    println!("{out}");
    Ok(())
}
