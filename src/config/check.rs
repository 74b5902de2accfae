//! What `ticketd check-config` checks beyond validation: every environment
//! variable and file the configuration refers to (`*_env`, `*_file`,
//! `templates_dir`, `[triage] model`) and cron expressions whose weekday
//! field is written in numbers.
//!
//! These checks read the raw TOML, not the validated [`super::Config`], so
//! they run (and all of their findings are reported) even when validation
//! fails; validation's own errors, all of them, come from
//! [`super::Config::check`]. They never print or keep a secret's value.

use std::path::Path;

/// How bad a finding is: an error fails `check-config`, a warning does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One thing `check-config` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
}

impl Finding {
    pub fn error(message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Error,
            message: message.into(),
        }
    }

    pub fn warning(message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Warning,
            message: message.into(),
        }
    }
}

/// Every referenced environment variable and file, checked. `env_set` says
/// whether a variable is set (the process environment, or a fake in
/// tests); relative paths are read against `base` (the config's directory).
pub fn references(
    value: &toml::Value,
    base: &Path,
    env_set: &dyn Fn(&str) -> bool,
) -> Vec<Finding> {
    let mut out = Vec::new();
    walk(value, "", base, env_set, &mut out);
    out
}

fn walk(
    value: &toml::Value,
    at: &str,
    base: &Path,
    env_set: &dyn Fn(&str) -> bool,
    out: &mut Vec<Finding>,
) {
    match value {
        toml::Value::Table(t) => {
            for (key, v) in t {
                let here = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                if let toml::Value::String(s) = v {
                    check_key(key, s, &here, base, env_set, out);
                } else {
                    walk(v, &here, base, env_set, out);
                }
            }
        }
        toml::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                // A mailbox is named by its name rather than its index.
                let label = match v.get("name").and_then(|n| n.as_str()) {
                    Some(name) => format!("{at}[{name:?}]"),
                    None => format!("{at}[{i}]"),
                };
                walk(v, &label, base, env_set, out);
            }
        }
        _ => {}
    }
}

fn check_key(
    key: &str,
    value: &str,
    at: &str,
    base: &Path,
    env_set: &dyn Fn(&str) -> bool,
    out: &mut Vec<Finding>,
) {
    if key.ends_with("_env") {
        if !env_set(value) {
            out.push(Finding::error(format!(
                "{at}: environment variable {value} is not set"
            )));
        }
    } else if key.ends_with("_file") || (key == "model" && at == "triage.model") {
        let path = base.join(value);
        match std::fs::File::open(&path).and_then(|f| f.metadata()) {
            Ok(m) if m.is_dir() => out.push(Finding::error(format!(
                "{at}: {} is a directory, not a file",
                path.display()
            ))),
            Ok(_) => {}
            Err(e) => out.push(Finding::error(format!(
                "{at}: cannot read {}: {e}",
                path.display()
            ))),
        }
    } else if key == "templates_dir" {
        let path = base.join(value);
        if let Err(e) = std::fs::read_dir(&path) {
            out.push(Finding::error(format!(
                "{at}: cannot read the directory {}: {e}",
                path.display()
            )));
        }
    }
}

/// Warnings for the `[schedule]` jobs' cron expressions.
pub fn schedule_warnings(value: &toml::Value) -> Vec<Finding> {
    let Some(jobs) = value.get("schedule").and_then(|s| s.as_table()) else {
        return Vec::new();
    };
    jobs.iter()
        .filter_map(|(name, job)| {
            let expr = match job {
                toml::Value::String(s) => Some(s.as_str()),
                other => other.get("cron").and_then(|c| c.as_str()),
            }?;
            cron_weekday_warning(expr).map(|w| Finding::warning(format!("schedule.{name}: {w}")))
        })
        .collect()
}

/// A warning when the day-of-week field (the sixth of our seconds-first
/// expressions) uses numbers: in the `cron` crate 1 is Sunday, so `1-5`
/// means Sunday to Thursday, not Monday to Friday as in classic cron.
pub fn cron_weekday_warning(expr: &str) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let dow = fields.get(5)?;
    if !dow.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(format!(
        "day-of-week field {dow:?} of {expr:?} uses numbers, and here 1 = Sunday (`1-5` is Sunday to Thursday): write names such as MON-FRI"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_weekdays_are_warned_about() {
        assert!(cron_weekday_warning("0 0 8 * * 1-5").is_some());
        assert!(cron_weekday_warning("0 0 8 * * 2,4").is_some());
        assert!(cron_weekday_warning("0 0 8 * * MON-FRI").is_none());
        assert!(cron_weekday_warning("0 0 8 * * *").is_none());
        assert!(cron_weekday_warning("0 0 8 * * * 2027").is_none());
        assert!(cron_weekday_warning("0 0 8 * *").is_none());
        // A step on names is fine; a number anywhere in the field is not.
        assert!(cron_weekday_warning("0 0 8 * * MON-FRI/2").is_some());
    }

    #[test]
    fn schedule_warnings_read_both_forms() {
        let v: toml::Value = toml::from_str(
            r#"
[schedule]
escalate = "0 * * * * *"
digest = { cron = "0 0 8 * * 1-5", support_hours_only = true }
privacy_reminders = "0 0 8 * * 2-6"
"#,
        )
        .unwrap();
        let w = schedule_warnings(&v);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().all(|f| f.severity == Severity::Warning));
        assert!(w.iter().any(|f| f.message.starts_with("schedule.digest:")));
    }

    #[test]
    fn errors_in_several_sections_are_all_reported() {
        let text = format!(
            "{}\n[schedule]\nescalate = \"not cron\"\n\n[retention]\nno_such_key = 1\n\n[extra]\npassword = \"x\"\n",
            crate::config::EMBEDDED_DEFAULT
                .replace("[people]\n", "[calendar]\nworking_days = []\n\n[people]\n")
        );
        let (config, errs) = super::super::Config::check(&text, "t.toml", Path::new("/tmp"));
        assert!(config.is_none());
        // The unknown keys no longer hide the rest.
        let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 4, "{all:#?}");
        for needle in ["no_such_key", "extra", "working day", "escalate"] {
            assert!(all.iter().any(|e| e.contains(needle)), "{needle}: {all:#?}");
        }
    }

    #[test]
    fn every_missing_reference_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("present.pw"), "x").unwrap();
        let v: toml::Value = toml::from_str(
            r#"
templates_dir = "no-such-templates"
[[mailboxes]]
name = "support"
password_env = "SET_VAR"
[[mailboxes]]
name = "privacy"
password_env = "UNSET_VAR"
ca_file = "missing-ca.pem"
[outbound]
password_file = "present.pw"
token_file = "missing-token"
[threading]
secret_file = "missing-secret"
"#,
        )
        .unwrap();
        let f = references(&v, dir.path(), &|name| name == "SET_VAR");
        let msgs: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
        assert_eq!(f.len(), 5, "{msgs:#?}");
        assert!(f.iter().all(|f| f.severity == Severity::Error));
        for needle in [
            "templates_dir",
            "mailboxes[\"privacy\"].password_env: environment variable UNSET_VAR",
            "mailboxes[\"privacy\"].ca_file",
            "outbound.token_file",
            "threading.secret_file",
        ] {
            assert!(
                msgs.iter().any(|m| m.contains(needle)),
                "{needle}: {msgs:#?}"
            );
        }
    }
}
