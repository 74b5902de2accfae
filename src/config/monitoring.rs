//! Monitoring settings: the `[http]` section (health and metrics endpoint,
//! off unless `listen` is set), the `[alerts]` section (operator alert
//! thresholds) and the top-level `log_format` key.
//!
//! Defaults: no HTTP listener; a mailbox unreachable for 15 minutes, an
//! outbox entry queued for 30 minutes, the data directory's disk under 5 %
//! free or an OAuth token command failing raise an alert; the same alert
//! is mailed at most once an hour (its recovery is always mailed).

use super::{ConfigError, HumanDuration};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    listen: Option<toml::Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    mailbox_unreachable: Option<HumanDuration>,
    outbox_stuck: Option<HumanDuration>,
    disk_free_percent: Option<toml::Spanned<f64>>,
    repeat_every: Option<HumanDuration>,
    check_every: Option<HumanDuration>,
}

/// The `[http]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Http {
    /// Where `/healthz` and `/metrics` are served (no TLS, no auth: keep it
    /// on loopback or behind a proxy).
    pub listen: SocketAddr,
}

/// The `[alerts]` section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alerts {
    /// A mailbox not synced for this long raises an alert.
    pub mailbox_unreachable: HumanDuration,
    /// An outbox entry queued for this long raises an alert.
    pub outbox_stuck: HumanDuration,
    /// Less free space than this (percent of the data directory's disk)
    /// raises an alert.
    pub disk_free_percent: f64,
    /// The same alert is mailed again at most this often while it lasts.
    pub repeat_every: HumanDuration,
    /// How often the conditions are checked.
    pub check_every: HumanDuration,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            mailbox_unreachable: HumanDuration(Duration::from_secs(15 * 60)),
            outbox_stuck: HumanDuration(Duration::from_secs(30 * 60)),
            disk_free_percent: 5.0,
            repeat_every: HumanDuration(Duration::from_secs(3600)),
            check_every: HumanDuration(Duration::from_secs(30)),
        }
    }
}

/// How log lines are written (`log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

type AtFn<'a> = dyn Fn(std::ops::Range<usize>, String) -> ConfigError + 'a;

pub(super) fn build_http(raw: RawHttp, at: &AtFn<'_>) -> Result<Option<Http>, ConfigError> {
    let Some(listen) = raw.listen else {
        return Ok(None);
    };
    let addr = listen.get_ref().trim().parse::<SocketAddr>().map_err(|_| {
        at(
            listen.span(),
            "listen is an address and port, e.g. \"127.0.0.1:9187\"".into(),
        )
    })?;
    Ok(Some(Http { listen: addr }))
}

pub(super) fn build_alerts(raw: RawAlerts, at: &AtFn<'_>) -> Result<Alerts, ConfigError> {
    let d = Alerts::default();
    let disk_free_percent = match raw.disk_free_percent {
        None => d.disk_free_percent,
        Some(s) => {
            let v = *s.get_ref();
            if !(0.0..=100.0).contains(&v) {
                return Err(at(
                    s.span(),
                    "disk_free_percent is a percentage from 0 (off) to 100".into(),
                ));
            }
            v
        }
    };
    let at_least_1s = |d: HumanDuration| HumanDuration(d.0.max(Duration::from_secs(1)));
    Ok(Alerts {
        mailbox_unreachable: raw.mailbox_unreachable.unwrap_or(d.mailbox_unreachable),
        outbox_stuck: raw.outbox_stuck.unwrap_or(d.outbox_stuck),
        disk_free_percent,
        repeat_every: raw.repeat_every.unwrap_or(d.repeat_every),
        check_every: at_least_1s(raw.check_every.unwrap_or(d.check_every)),
    })
}

/// The `log_format` of the file at `path`, read before logging starts (so
/// before the configuration is validated): anything unreadable is `Text`,
/// and the real load reports the error.
pub fn peek_log_format(path: Option<&Path>) -> LogFormat {
    let Some(p) = path else {
        return LogFormat::Text;
    };
    std::fs::read_to_string(p)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| {
            t.get("log_format")
                .and_then(|v| v.as_str().map(str::to_string))
        })
        .map(|s| match s.as_str() {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::super::{Config, EMBEDDED_DEFAULT};
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, "test.toml", Path::new("/base"))
    }

    #[test]
    fn off_unless_configured_with_default_thresholds() {
        let c = parse(EMBEDDED_DEFAULT).expect("parses");
        assert_eq!(c.http, None);
        assert_eq!(c.alerts, Alerts::default());
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn listen_alerts_and_log_format() {
        let text = format!(
            "log_format = \"json\"\n{EMBEDDED_DEFAULT}\n[http]\nlisten = \"127.0.0.1:9187\"\n\n[alerts]\noutbox_stuck = \"10m\"\ndisk_free_percent = 2.5\n"
        );
        let c = parse(&text).expect("parses");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(
            c.http.map(|h| h.listen.to_string()).as_deref(),
            Some("127.0.0.1:9187")
        );
        assert_eq!(c.alerts.outbox_stuck.0, Duration::from_secs(600));
        assert_eq!(c.alerts.disk_free_percent, 2.5);
        assert_eq!(
            c.alerts.mailbox_unreachable,
            Alerts::default().mailbox_unreachable
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let text = format!("{EMBEDDED_DEFAULT}\n[http]\nlisten = \"localhost\"\n");
        let err = parse(&text).expect_err("not an address").to_string();
        assert!(err.contains("listen"), "{err}");
        let text = format!("{EMBEDDED_DEFAULT}\n[alerts]\ndisk_free_percent = 120.0\n");
        let err = parse(&text).expect_err("over 100").to_string();
        assert!(err.contains("disk_free_percent"), "{err}");
        let text = format!("{EMBEDDED_DEFAULT}\n[alerts]\nbogus = 1\n");
        assert!(parse(&text).is_err());
    }

    #[test]
    fn peeks_the_log_format_before_logging_starts() {
        let dir = std::env::temp_dir().join(format!("ticketd-peek-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let f = dir.join("c.toml");
        let _ = std::fs::write(&f, "log_format = \"json\"\ndata_dir = \"x\"\n");
        assert_eq!(peek_log_format(Some(&f)), LogFormat::Json);
        assert_eq!(
            peek_log_format(Some(&dir.join("missing.toml"))),
            LogFormat::Text
        );
        assert_eq!(peek_log_format(None), LogFormat::Text);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
