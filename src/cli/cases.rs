//! `ticketd cases …`: list, show (the whole timeline in the calendar's
//! zone), export, and every workflow action (review, respond, reply, note,
//! assign, waiting, resolve, close, reopen, relevel) — through the daemon's
//! control socket when it runs, else on the store directly. The audit actor
//! is `workflow.operator`, else the Unix user; never empty.

use super::table::Table;
use super::{ask, ask_stream, CliError, CliResult};
use crate::config::Config;
use crate::control::{CaseAction, Request};
use crate::store::{Case, CaseFilter, CaseKind, CaseStatus, CaseView, Disposition};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use std::path::PathBuf;

/// Filters shared by `cases list` and `cases export`.
#[derive(Debug, Clone, clap::Args)]
pub struct Filters {
    /// support or privacy
    #[arg(long)]
    kind: Option<CaseKind>,
    /// new, open, waiting, resolved or closed
    #[arg(long)]
    status: Option<CaseStatus>,
    /// Support level 1–5.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
    level: Option<u8>,
    #[arg(long)]
    assignee: Option<String>,
    /// Agency name (as in [[agencies]]).
    #[arg(long)]
    agency: Option<String>,
    /// Only cases past their target or due date without a response.
    #[arg(long)]
    breached: bool,
    /// Only cases received since this date (YYYY-MM-DD, UTC) or RFC 3339 time.
    #[arg(long, value_parser = parse_since)]
    since: Option<DateTime<Utc>>,
}

fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("{s:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))
}

impl Filters {
    fn filter(&self) -> CaseFilter {
        CaseFilter {
            kind: self.kind,
            status: self.status,
            level: self.level,
            assignee: self.assignee.clone(),
            agency: self.agency.clone(),
            breached: self.breached,
            since: self.since,
            open: false,
            now: None,
            today: None,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    Json,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum CasesCommand {
    /// List cases in the order they were opened, newest last: open cases
    /// (not resolved or closed) unless `--all` or `--status` says otherwise.
    List {
        #[command(flatten)]
        filters: Filters,
        /// Resolved and closed cases too.
        #[arg(long)]
        all: bool,
        /// At most N cases.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Start after this case (the last one of the previous page).
        #[arg(long, value_name = "ID")]
        after: Option<String>,
        /// JSON lines, one case per line.
        #[arg(long)]
        json: bool,
    },
    /// Show one case: clocks, then the whole timeline (messages in and out,
    /// events with their actor), timers pending.
    Show {
        id: String,
        /// One JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Export cases for reporting (JSON lines or CSV with a header row).
    Export {
        #[command(flatten)]
        filters: Filters,
        #[arg(long, value_enum, default_value = "json")]
        format: ExportFormat,
    },
    /// Triage review done (stops the review clock).
    Review { id: String },
    /// First response given by other means (stops the response clock).
    Respond {
        id: String,
        /// What was done, for the case log.
        #[arg(long)]
        note: Option<String>,
    },
    /// Mail the requester (threaded, from the case's address); counts as
    /// the response.
    Reply {
        id: String,
        /// The text to send (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        message_file: PathBuf,
    },
    /// An internal note (never sent to the requester).
    Note { id: String, text: String },
    /// Who works the case (name or address).
    Assign { id: String, name: String },
    /// Waiting on the requester (their reply makes it open again).
    Waiting { id: String },
    /// Resolve the case (stops every clock, ends level-1 pages; closes
    /// automatically after `workflow.close_after`).
    Resolve { id: String },
    /// Close the case.
    Close { id: String },
    /// Open a resolved or closed case again.
    Reopen { id: String },
    /// Change the level; the targets are re-planned from the receipt time.
    Relevel {
        id: String,
        #[arg(value_parser = clap::value_parser!(u8).range(1..=5))]
        level: u8,
        /// Why (required; kept in the case log).
        #[arg(long)]
        reason: String,
    },
}

pub(super) async fn run(config: &Config, command: CasesCommand) -> CliResult {
    match command {
        CasesCommand::List {
            filters,
            all,
            limit,
            after,
            json,
        } => {
            let mut filter = filters.filter();
            filter.open = !all && filter.status.is_none();
            let req = Request::CasesList {
                filter,
                after,
                limit,
            };
            if json {
                ask_stream(config, req, &mut |line| Ok(super::print_line(line).is_ok())).await?;
                return Ok(());
            }
            // A table is aligned per block of TABLE_BLOCK rows, so a long
            // list is printed as it comes too.
            let mut block: Vec<Case> = Vec::new();
            ask_stream(config, req, &mut |line| {
                block.push(serde_json::from_str(line)?);
                if block.len() >= TABLE_BLOCK {
                    print_cases(&block, config);
                    block.clear();
                }
                Ok(true)
            })
            .await?;
            if !block.is_empty() {
                print_cases(&block, config);
            }
            Ok(())
        }
        CasesCommand::Export { filters, format } => {
            let req = Request::CasesList {
                filter: filters.filter(),
                after: None,
                limit: None,
            };
            export(config, req, format).await
        }
        CasesCommand::Show { id, json } => {
            let v: CaseView = ask(config, Request::CaseShow { id }).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_case_view(&v, config);
            }
            Ok(())
        }
        CasesCommand::Review { id } => act(config, id, CaseAction::Review).await,
        CasesCommand::Respond { id, note } => act(config, id, CaseAction::Respond { note }).await,
        CasesCommand::Reply { id, message_file } => {
            let body = if message_file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                s
            } else {
                std::fs::read_to_string(&message_file).map_err(|e| {
                    CliError::from(format!("cannot read {}: {e}", message_file.display()))
                })?
            };
            act(config, id, CaseAction::Reply { body }).await
        }
        CasesCommand::Note { id, text } => act(config, id, CaseAction::Note { text }).await,
        CasesCommand::Assign { id, name } => act(config, id, CaseAction::Assign { to: name }).await,
        CasesCommand::Waiting { id } => act(config, id, CaseAction::Waiting).await,
        CasesCommand::Resolve { id } => act(config, id, CaseAction::Resolve).await,
        CasesCommand::Close { id } => act(config, id, CaseAction::Close).await,
        CasesCommand::Reopen { id } => act(config, id, CaseAction::Reopen).await,
        CasesCommand::Relevel { id, level, reason } => {
            act(config, id, CaseAction::Relevel { level, reason }).await
        }
    }
}

/// Who acts at the CLI: `workflow.operator`, else the Unix user, else the
/// numeric user id; never empty.
pub(super) fn actor(config: &Config) -> String {
    if let Some(o) = &config.workflow.operator {
        return format!("cli:{o}");
    }
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.trim().is_empty()))
        .or_else(|| {
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .and_then(|l| l.split_whitespace().next())
                        .map(|u| format!("uid-{u}"))
                })
        })
        .unwrap_or_else(|| "operator".to_string());
    format!("cli:{user}")
}

/// A workflow action, through the daemon when it runs.
pub(super) async fn act(config: &Config, id: String, action: CaseAction) -> CliResult {
    let what = match &action {
        CaseAction::Review => "reviewed".to_string(),
        CaseAction::Respond { .. } => "first response recorded".to_string(),
        CaseAction::Resolve => "resolved".to_string(),
        CaseAction::Relevel { level, .. } => format!("now level {level}"),
        CaseAction::Reply { .. } => "reply queued to the requester".to_string(),
        CaseAction::Note { .. } => "note added".to_string(),
        CaseAction::Assign { to } => format!("assigned to {to}"),
        CaseAction::Waiting => "waiting on the requester".to_string(),
        CaseAction::Close => "closed".to_string(),
        CaseAction::Reopen => "reopened".to_string(),
        CaseAction::Verify { .. } => "identity verified".to_string(),
        CaseAction::Forward { agency } => format!("forwarded to {agency}"),
        CaseAction::Extend { .. } => "extended; the requester is told".to_string(),
        CaseAction::Deny { .. } => "refused; the requester is told why".to_string(),
        CaseAction::Complete { .. } => "answered".to_string(),
    };
    let c: Case = ask(
        config,
        Request::CaseAct {
            id,
            action,
            actor: actor(config),
        },
    )
    .await?;
    let due = match (c.clocks.respond_by, c.clocks.privacy) {
        (Some(t), _) if c.clocks.responded_at.is_none() && !c.is_done() => format!(
            "; respond by {}",
            crate::notify::text::human_instant("en", config.clocks.calendar.time_zone, t)
        ),
        _ => String::new(),
    };
    let privacy = c
        .privacy
        .as_ref()
        .map(|p| format!(", request {}", p.status))
        .unwrap_or_default();
    println!("{}: {what} (status {}{privacy}){due}", c.id, c.status);
    Ok(())
}

/// Rows per aligned block of the `cases list` table.
const TABLE_BLOCK: usize = 1000;

/// `cases export`: every case as it is read (JSON lines as the store
/// holds them, or CSV rows).
async fn export(config: &Config, req: Request, format: ExportFormat) -> CliResult {
    let now = Utc::now();
    let today = crate::clock::BusinessCalendar::new(config.clocks.calendar.clone()).local_date(now);
    match format {
        ExportFormat::Json => {
            ask_stream(config, req, &mut |line| Ok(super::print_line(line).is_ok())).await?;
        }
        ExportFormat::Csv => {
            let t = |x: Option<DateTime<Utc>>| x.map(|t| t.to_rfc3339()).unwrap_or_default();
            let header = "id,kind,status,level,rights,jurisdiction,requester,agency,assignee,received_at,respond_by,privacy_due,responded_at,resolved_at,closed_at,breached,messages,subject";
            if super::print_line(header).is_err() {
                return Ok(());
            }
            ask_stream(config, req, &mut |line| {
                let c: Case = serde_json::from_str(line)?;
                let row = [
                    c.id.clone(),
                    c.kind.as_str().into(),
                    c.status.as_str().into(),
                    c.level.map(|l| l.to_string()).unwrap_or_default(),
                    c.rights
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                    c.jurisdiction
                        .map(|j| j.as_str().to_string())
                        .unwrap_or_default(),
                    c.requester
                        .as_ref()
                        .map(|a| a.address.clone())
                        .unwrap_or_default(),
                    c.agency.clone().unwrap_or_default(),
                    c.assignee.clone().unwrap_or_default(),
                    c.received_at.to_rfc3339(),
                    t(c.clocks.respond_by),
                    c.clocks
                        .privacy
                        .map(|p| p.respond_by.to_string())
                        .unwrap_or_default(),
                    t(c.clocks.responded_at),
                    t(c.clocks.resolved_at),
                    t(c.clocks.closed_at),
                    c.is_breached(now, today).to_string(),
                    c.messages.len().to_string(),
                    c.subject.clone(),
                ];
                let line = row
                    .iter()
                    .map(|f| csv_field(f))
                    .collect::<Vec<_>>()
                    .join(",");
                Ok(super::print_line(&line).is_ok())
            })
            .await?;
        }
    }
    Ok(())
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line
/// break; a leading `=`, `+`, `-` or `@` is prefixed with `'` so that a
/// spreadsheet never runs a subject as a formula.
fn csv_field(f: &str) -> String {
    let f = if f.starts_with(['=', '+', '-', '@']) {
        format!("'{f}")
    } else {
        f.to_string()
    };
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f
    }
}
fn level_or_rights(c: &Case) -> String {
    match c.kind {
        CaseKind::Support => c
            .level
            .map(|l| format!("level {l}"))
            .unwrap_or_else(|| "-".into()),
        CaseKind::Privacy => {
            let rights: Vec<&str> = c.rights.iter().map(|r| r.as_str()).collect();
            let j = c.jurisdiction.map(|j| j.as_str()).unwrap_or("unknown");
            format!("{} ({j})", rights.join(","))
        }
    }
}

pub(super) fn print_cases(cases: &[Case], config: &Config) {
    let mut t = Table::new(&[
        "CASE",
        "KIND",
        "STATUS",
        "LEVEL/RIGHTS",
        "TRIAGE",
        "FROM",
        "MSGS",
        "ACK FILE",
    ]);
    for c in cases {
        let ack = c
            .outbox
            .first()
            .map(|id| {
                let p = crate::outbox::file::FileTransport::path_for(&config.outbound.dir, *id);
                if p.exists() {
                    p.strip_prefix(std::env::current_dir().unwrap_or_default())
                        .unwrap_or(&p)
                        .display()
                        .to_string()
                } else {
                    "(queued)".into()
                }
            })
            .unwrap_or_else(|| "-".into());
        t.row(vec![
            c.id.clone(),
            c.kind.as_str().into(),
            c.status.as_str().into(),
            level_or_rights(c),
            c.doubt
                .as_deref()
                .map(|d| format!("REVIEW: {d}"))
                .unwrap_or_else(|| "-".into()),
            c.requester
                .as_ref()
                .map(|a| a.address.clone())
                .unwrap_or_else(|| "-".into()),
            c.messages.len().to_string(),
            ack,
        ]);
    }
    t.print();
}

/// The role of a message's sender on the case.
fn sender_role(c: &Case, m: &crate::store::MessageRecord) -> &'static str {
    if matches!(m.disposition, Disposition::Staff { .. }) {
        return "staff";
    }
    let from = m.from.as_ref().map(|a| a.address.to_ascii_lowercase());
    let is = |x: Option<&str>| {
        from.as_deref()
            .is_some_and(|f| x.is_some_and(|x| x.eq_ignore_ascii_case(f)))
    };
    if is(c.requester.as_ref().map(|a| a.address.as_str())) || is(c.reply_address.as_deref()) {
        "requester"
    } else if from.as_ref().is_some_and(|f| c.participants.contains(f)) {
        "participant"
    } else {
        "stranger"
    }
}

pub(super) fn print_case_view(v: &CaseView, config: &Config) {
    let tz = config.clocks.calendar.time_zone;
    let local = |t: DateTime<Utc>| {
        t.with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    };
    let when = |t: Option<DateTime<Utc>>| t.map(local).unwrap_or_else(|| "-".into());
    let c = &v.case;
    println!(
        "{}  {}  {}  {}",
        c.id,
        c.kind.as_str(),
        c.status,
        level_or_rights(c)
    );
    println!("subject:   {}", c.subject);
    println!(
        "requester: {}",
        c.requester
            .as_ref()
            .map(|a| a.address.as_str())
            .unwrap_or("-")
    );
    println!(
        "received:  {}  (mailbox {})",
        local(c.received_at),
        c.mailbox
    );
    println!("times in:  {tz}");
    if let Some(d) = &c.doubt {
        println!("triage:    REVIEW FIRST: {d}");
    }
    if let Some(a) = &c.agency {
        println!("agency:    {a}");
    }
    if let Some(a) = &c.assignee {
        println!("assignee:  {a}");
    }
    if !c.participants.is_empty() {
        println!("parties:   {}", c.participants.join(", "));
    }
    if !c.links.is_empty() {
        println!("linked:    {}", c.links.join(", "));
    }
    for n in &c.notes {
        println!("note:      {n}");
    }
    let k = &c.clocks;
    println!("\nclocks:");
    println!(
        "  review by:   {}   reviewed: {}",
        when(k.review_by),
        when(k.reviewed_at)
    );
    if c.kind == CaseKind::Support {
        println!(
            "  respond by:  {}   responded: {}",
            when(k.respond_by),
            when(k.responded_at)
        );
        if k.started_at.is_some() {
            println!("  (response clock restarted {})", when(k.started_at));
        }
        if k.warn_at.is_some() {
            println!("  warn at:     {}", when(k.warn_at));
        }
    }
    if let Some(p) = &k.privacy {
        let d =
            |x: Option<chrono::NaiveDate>| x.map(|d| d.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "  {}: acknowledge by {}, respond by {}, extension notice by {}, extended due {}; responded: {}",
            k.regime.map(|r| r.as_str()).unwrap_or("-"),
            d(p.acknowledge_by),
            p.respond_by,
            d(p.extension_notice_by),
            d(p.extended_respond_by),
            when(k.responded_at)
        );
    }
    if k.resolved_at.is_some() {
        println!("  resolved:    {}", when(k.resolved_at));
    }
    if k.closed_at.is_some() {
        println!("  closed:      {}", when(k.closed_at));
    }
    // One timeline: messages in, mail out, events, in time order.
    let mut rows: Vec<(DateTime<Utc>, u8, Vec<String>)> = Vec::new();
    for m in &v.messages {
        rows.push((
            m.received_at,
            0,
            vec![
                "in".into(),
                sender_role(c, m).into(),
                m.from
                    .as_ref()
                    .map(|a| a.address.clone())
                    .unwrap_or_else(|| "-".into()),
                format!(
                    "message {}: {}{}",
                    m.id,
                    m.subject,
                    if m.raw_stored {
                        ""
                    } else {
                        " (original in source)"
                    }
                ),
            ],
        ));
    }
    for o in &v.outbox {
        let purpose = match o.purpose {
            crate::store::Purpose::Ack => "acknowledgement",
            crate::store::Purpose::StaffNotice => "staff notice",
            crate::store::Purpose::AgencyNotice => "agency notice",
            crate::store::Purpose::Reply => "reply to requester",
        };
        rows.push((
            o.sent_at.or(o.created_at).unwrap_or(c.created_at),
            1,
            vec![
                "out".into(),
                format!(
                    "{purpose}{}",
                    o.notice
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                ),
                o.recipients.join(", "),
                format!("outbox {} {}: {}", o.id, o.state.as_str(), o.subject),
            ],
        ));
    }
    for e in &v.events {
        let detail = match &e.kind {
            crate::store::EventKind::Triaged { decision, .. } => decision.reasons.join("; "),
            other => serde_json::to_value(other)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| k.as_str() != "event" && k.as_str() != "clocks")
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default(),
        };
        rows.push((
            e.at,
            2,
            vec![
                "event".into(),
                e.kind.name().into(),
                e.actor.clone(),
                detail,
            ],
        ));
    }
    rows.sort_by_key(|r| (r.0, r.1));
    println!("\ntimeline:");
    let mut t = Table::new(&["AT", "WHAT", "KIND / ROLE", "WHO", "DETAIL"]);
    for (at, _, r) in rows {
        let mut row = vec![local(at)];
        row.extend(r);
        t.row(row);
    }
    t.print();
    if !v.timers.is_empty() {
        println!("\ntimers pending:");
        for tm in &v.timers {
            println!("  {} at {}", tm.kind.name(), local(tm.due));
        }
    }
}
