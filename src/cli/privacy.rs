//! `ticketd privacy …`: the privacy officer's desk. `list` (open requests,
//! most urgent first, with days left), `show` (the request's own state —
//! identity, original and moved dates, agency — then the case timeline),
//! and the request's actions: `verify`, `forward`, `extend`, `deny`,
//! `complete` (with attachments). Every action is the same workflow action
//! a mail command applies, through the daemon when it runs.

use super::cases::{act, print_case_view};
use super::table::Table;
use super::{ask, print_line, CliError, CliResult};
use crate::config::Config;
use crate::control::{CaseAction, Request};
use crate::store::{Case, CaseFilter, CaseKind, CaseView};
use crate::workflow::privacy::{due_view, urgency_key, DueView};
use crate::workflow::Attachment;
use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// Privacy requests, the most urgent first, with the days left.
    List {
        /// Answered (completed, denied, forwarded) and closed ones too.
        #[arg(long)]
        all: bool,
        /// JSON lines: the case and its due view.
        #[arg(long)]
        json: bool,
    },
    /// One request: identity, dates (original and moved), agency, timeline.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Record that identity is established by other means, or not needed.
    Verify {
        id: String,
        /// How identity was checked (e.g. "call back on the number we hold").
        #[arg(
            long,
            conflicts_with = "not_needed",
            required_unless_present = "not_needed"
        )]
        method: Option<String>,
        /// There is no reasonable doubt about who wrote (needs --reason).
        #[arg(long, requires = "reason")]
        not_needed: bool,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Send the request to the agency that controls the data (its
    /// `privacy_contact`), tell the requester, end it `forwarded`.
    Forward {
        id: String,
        #[arg(long)]
        agency: String,
    },
    /// Extend the period (inside the first one), telling the requester why.
    Extend {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Refuse (manifestly unfounded or excessive), with the reasons and the
    /// right to complain and to a judicial remedy.
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Answer the request, threaded (access: with the disclosure).
    Complete {
        id: String,
        /// The answer's own words (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        message_file: Option<PathBuf>,
        /// A file to attach (repeatable).
        #[arg(long = "attach", value_name = "FILE")]
        attach: Vec<PathBuf>,
    },
}

pub(super) async fn run(config: &Config, command: PrivacyCommand) -> CliResult {
    match command {
        PrivacyCommand::List { all, json } => list(config, all, json).await,
        PrivacyCommand::Show { id, json } => {
            let v: CaseView = ask(config, Request::CaseShow { id }).await?;
            if v.case.kind != CaseKind::Privacy {
                return Err(CliError::from(format!(
                    "{} is a support case; see `ticketd cases show {}`",
                    v.case.id, v.case.id
                )));
            }
            let due = view(config, &v.case, Utc::now());
            if json {
                let doc = serde_json::json!({ "case": v.case, "due": due, "events": v.events });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                print_request(&v.case, &due);
                println!();
                print_case_view(&v, config);
            }
            Ok(())
        }
        PrivacyCommand::Verify {
            id,
            method,
            not_needed,
            reason,
        } => {
            let action = if not_needed {
                CaseAction::Verify {
                    method: None,
                    not_needed: reason,
                }
            } else {
                CaseAction::Verify {
                    method,
                    not_needed: None,
                }
            };
            act(config, id, action).await
        }
        PrivacyCommand::Forward { id, agency } => {
            act(config, id, CaseAction::Forward { agency }).await
        }
        PrivacyCommand::Extend { id, reason } => {
            act(config, id, CaseAction::Extend { reason }).await
        }
        PrivacyCommand::Deny { id, reason } => act(config, id, CaseAction::Deny { reason }).await,
        PrivacyCommand::Complete {
            id,
            message_file,
            attach,
        } => {
            let text = match message_file {
                None => None,
                Some(f) if f.as_os_str() == "-" => {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                    Some(s)
                }
                Some(f) => Some(
                    std::fs::read_to_string(&f)
                        .map_err(|e| CliError::from(format!("cannot read {}: {e}", f.display())))?,
                ),
            };
            let attachments = attach
                .iter()
                .map(|p| attachment(p))
                .collect::<Result<Vec<_>, _>>()?;
            act(config, id, CaseAction::Complete { text, attachments }).await
        }
    }
}

/// `path` read as an attachment, its type from its extension.
fn attachment(path: &Path) -> Result<Attachment, CliError> {
    let data = std::fs::read(path)
        .map_err(|e| CliError::from(format!("cannot read {}: {e}", path.display())))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "attachment".into());
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let content_type = match ext.as_str() {
        "pdf" => "application/pdf",
        "json" => "application/json",
        "csv" => "text/csv",
        "txt" | "log" => "text/plain",
        "zip" => "application/zip",
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "eml" => "message/rfc822",
        _ => "application/octet-stream",
    }
    .to_string();
    Ok(Attachment {
        name,
        content_type,
        data,
    })
}

/// The due view of `c` at `now`, in the calendar's zone.
fn view(config: &Config, c: &Case, now: DateTime<Utc>) -> DueView {
    let tz = config.clocks.calendar.time_zone;
    let local = |t: DateTime<Utc>| -> NaiveDate { t.with_timezone(&tz).date_naive() };
    let pauses = c
        .clocks
        .regime
        .is_some_and(|r| config.privacy.identity_pauses.contains(&r));
    due_view(c, local(now), pauses, local)
}

async fn list(config: &Config, all: bool, json: bool) -> CliResult {
    // Sorted by urgency, so collected: privacy cases only (few), and only
    // the open ones unless `--all`.
    let mut cases: Vec<Case> = Vec::new();
    super::ask_stream(
        config,
        Request::CasesList {
            filter: CaseFilter {
                kind: Some(CaseKind::Privacy),
                ..CaseFilter::default()
            },
            after: None,
            limit: None,
        },
        &mut |line| {
            let c: Case = serde_json::from_str(line)?;
            if all || !(c.is_done() || c.privacy.as_ref().is_some_and(|p| p.status.is_final())) {
                cases.push(c);
            }
            Ok(true)
        },
    )
    .await?;
    let now = Utc::now();
    let mut rows: Vec<(Case, DueView)> = cases
        .into_iter()
        .map(|c| {
            let v = view(config, &c, now);
            (c, v)
        })
        .filter(|(c, _)| {
            all || !(c.is_done() || c.privacy.as_ref().is_some_and(|p| p.status.is_final()))
        })
        .collect();
    rows.sort_by_key(|(c, v)| urgency_key(c, v));
    if json {
        for (c, v) in &rows {
            let line = serde_json::to_string(&serde_json::json!({ "case": c, "due": v }))?;
            if print_line(&line).is_err() {
                return Ok(());
            }
        }
        return Ok(());
    }
    let mut t = Table::new(&[
        "CASE",
        "REQUEST",
        "RIGHTS",
        "LAW",
        "DUE",
        "DAYS LEFT",
        "FROM",
        "AGENCY",
    ]);
    for (c, v) in &rows {
        let p = c.privacy.as_ref();
        let rights = if p.is_some_and(|p| p.inquiry) {
            "inquiry".to_string()
        } else {
            c.rights
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let due = match (v.due, v.original) {
            (Some(d), Some(o)) if o != d => format!("{d} (was {o})"),
            (Some(d), _) => d.to_string(),
            (None, _) => "-".into(),
        };
        let left = match v.days_left {
            Some(n) if v.paused_now => format!("{n} (paused)"),
            Some(n) if n < 0 => format!("{n} OVERDUE"),
            Some(n) => n.to_string(),
            None => "-".into(),
        };
        t.row(vec![
            c.id.clone(),
            p.map(|p| p.status.as_str())
                .unwrap_or("received")
                .to_string(),
            rights,
            c.clocks
                .regime
                .map(|r| r.as_str().to_string())
                .unwrap_or_else(|| "-".into()),
            due,
            left,
            c.requester
                .as_ref()
                .map(|a| a.address.clone())
                .unwrap_or_else(|| "-".into()),
            p.and_then(|p| p.forwarded_to.clone().or(p.suggested_agency.clone()))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    t.print();
    Ok(())
}

fn print_request(c: &Case, v: &DueView) {
    let Some(p) = c.privacy.as_ref() else {
        println!("{}  request: received", c.id);
        return;
    };
    println!(
        "{}  request {}{}",
        c.id,
        p.status,
        if p.inquiry {
            "  (inquiry: no statutory clock)"
        } else {
            ""
        }
    );
    match (&p.verified, p.status) {
        (Some(how), _) => println!("identity:  verified — {how}"),
        (None, crate::store::PrivacyStatus::IdentityPending) => println!(
            "identity:  awaited (one-time code sent; {} failed attempt(s))",
            p.code_attempts
        ),
        _ => println!("identity:  not asked"),
    }
    if let Some(d) = v.due {
        println!(
            "due:       {d}{}{}",
            v.original
                .filter(|o| *o != d)
                .map(|o| format!("   original {o}"))
                .unwrap_or_default(),
            if v.paused_now {
                format!("   clock paused: {} day(s) so far", v.paused_days)
            } else if v.paused_days > 0 {
                format!("   paused {} day(s)", v.paused_days)
            } else {
                String::new()
            }
        );
    }
    if p.extended {
        println!("extended:  {}", p.reason.as_deref().unwrap_or("-"));
    }
    if let Some(a) = &p.suggested_agency {
        if p.forwarded_to.is_none() {
            println!(
                "agency:    points to {a} (privacy forward {} --agency \"{a}\")",
                c.id
            );
        }
    }
    if let Some(a) = &p.forwarded_to {
        println!(
            "forwarded: to {a} <{}>{}",
            p.forward_contact.as_deref().unwrap_or("-"),
            p.agency_acknowledged_at
                .map(|t| format!(", acknowledged {t}"))
                .unwrap_or_else(|| ", not acknowledged yet".into())
        );
    }
    if p.status == crate::store::PrivacyStatus::Denied {
        println!("refused:   {}", p.reason.as_deref().unwrap_or("-"));
    }
}
