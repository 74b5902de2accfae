//! `ticketd check-config [--connect]`: every error of a configuration in one
//! run, then the resolved settings; with `--connect`, a login to every
//! mailbox and the SMTP server, the next run of every job and the
//! calendar's next opening.
//!
//! [`Config::check`] gives every validation error (every section, every
//! mailbox and key, every unknown key); the checks of
//! [`crate::config::check`] (variables, files, cron weekdays) and the
//! templates run besides it, so one run lists everything they find.

use super::{CliError, CliResult};
use crate::clock::calendar::BusinessCalendar;
use crate::config::check::{self, Finding, Severity};
use crate::config::{Config, SourceKind, TransportKind, EMBEDDED_DEFAULT};
use crate::render::Templates;
use std::path::{Path, PathBuf};

/// The text, name and base directory of the configuration to check.
fn read(path: Option<&Path>) -> Result<(String, String, PathBuf), CliError> {
    let fail = |message: String| CliError { message, code: 2 };
    match path {
        None => {
            let cwd = std::env::current_dir()
                .map_err(|e| fail(format!("cannot read the working directory: {e}")))?;
            Ok((
                EMBEDDED_DEFAULT.to_string(),
                "<embedded default>".into(),
                cwd,
            ))
        }
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| fail(format!("cannot read config file {}: {e}", p.display())))?;
            let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
            let base = std::path::absolute(dir.unwrap_or(Path::new(".")))
                .map_err(|e| fail(format!("{}: {e}", p.display())))?;
            Ok((text, p.display().to_string(), base))
        }
    }
}

/// Everything wrong with the configuration text, and the validated config
/// when validation passed.
pub fn findings(text: &str, file: &str, base: &Path) -> (Vec<Finding>, Option<Config>) {
    let (config, errors) = Config::check(text, file, base);
    let mut out: Vec<Finding> = errors
        .iter()
        .map(|e| Finding::error(e.to_string()))
        .collect();
    if let Ok(value) = toml::from_str::<toml::Value>(text) {
        out.extend(check::references(&value, base, &|name| {
            std::env::var_os(name).is_some()
        }));
        out.extend(check::schedule_warnings(&value));
    }
    if let Some(c) = &config {
        if let Err(e) = Templates::for_config(c) {
            out.push(Finding::error(e.to_string()));
        }
        out.extend(c.warnings().into_iter().map(Finding::warning));
    }
    (out, config)
}

pub async fn run(path: Option<&Path>, connect: bool) -> CliResult {
    let (text, file, base) = read(path)?;
    let (found, config) = findings(&text, &file, &base);
    let errors = found
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    for f in &found {
        match f.severity {
            Severity::Error => eprintln!("error: {}", f.message),
            Severity::Warning => {
                println!("# warning: {}", f.message);
                eprintln!("warning: {}", f.message);
            }
        }
    }
    let config = match config {
        Some(c) if errors == 0 => c,
        _ => {
            return Err(CliError {
                message: format!("{file}: {errors} errors (each listed above)"),
                code: 2,
            })
        }
    };
    println!("# configuration OK: {}", config.origin);
    let mut failed = 0;
    if connect {
        failed = connect_all(&config).await;
        schedule_report(&config);
    }
    print!("{}", config.to_toml_string());
    if failed > 0 {
        return Err(CliError {
            message: format!("{failed} connections failed (listed above)"),
            code: 1,
        });
    }
    Ok(())
}

/// Log in to every IMAP mailbox and the SMTP server; print each result.
/// Returns how many failed.
async fn connect_all(config: &Config) -> usize {
    let mut failed = 0;
    for m in &config.mailboxes {
        let (what, result) = match (m.source, &m.imap) {
            (SourceKind::Imap, Some(imap)) => {
                let ep = &imap.endpoint;
                let mut src = crate::source::imap::ImapSource::new(&m.name, imap.clone(), None);
                let limit = ep.timeout.0.saturating_mul(3);
                let r = match tokio::time::timeout(limit, src.connect_now()).await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(_) => Err(format!("no answer within {limit:?}")),
                };
                (
                    format!("imap {}:{} folder {}", ep.host, ep.port, imap.folder),
                    r,
                )
            }
            _ => {
                let r = if m.path.is_dir() || m.demo_seed {
                    Ok(())
                } else {
                    Err(format!("{} is not a directory", m.path.display()))
                };
                (format!("maildir {}", m.path.display()), r)
            }
        };
        failed += usize::from(result.is_err());
        print_result(&format!("mailbox {} ({what})", m.name), &result);
    }
    match (&config.outbound.transport, &config.outbound.smtp) {
        (TransportKind::Smtp, Some(ep)) => {
            let t = crate::outbox::smtp::SmtpTransport::new(ep.clone(), 1);
            let limit = ep.timeout.0.saturating_mul(3);
            let r = match tokio::time::timeout(limit, t.probe()).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {limit:?}")),
            };
            failed += usize::from(r.is_err());
            print_result(&format!("smtp {}:{}", ep.host, ep.port), &r);
        }
        _ => println!("# outbound: files in {}", config.outbound.dir.display()),
    }
    failed
}

fn print_result(what: &str, r: &Result<(), String>) {
    match r {
        Ok(()) => println!("# {what}: ok"),
        Err(e) => println!("# {what}: FAILED: {}", crate::logmask::mask_addresses(e)),
    }
}

/// The next run of every job and the calendar's next opening, in the
/// calendar's zone.
fn schedule_report(config: &Config) {
    let cal = BusinessCalendar::new(config.clocks.calendar.clone());
    let now = chrono::Utc::now();
    let show = |t: Option<chrono::DateTime<chrono::Utc>>| match t {
        Some(t) => cal.local(t).format("%Y-%m-%d %H:%M:%S %Z (%a)").to_string(),
        None => "never".to_string(),
    };
    for job in &config.schedule {
        println!(
            "# job {} ({}): next run {}",
            job.name.as_str(),
            job.cron,
            show(job.schedule.next_allowed_tick(&cal, now))
        );
    }
    println!("# calendar: next opening {}", show(cal.next_opening(now)));
}
