//! The subcommands behind the thin `main.rs`: argument parsing (clap),
//! output as aligned tables or JSON, and the choice between talking to a
//! running daemon (control socket) and opening the store directly.
//!
//! JSON output: `cases list --json` and `ignored list --json` print JSON
//! lines (one object per line); `cases show --json`, `import --json` and
//! `ignored promote --json` print one JSON document.

mod backup;
mod cases;
mod check;
mod deadline;
mod erase;
mod health;
pub mod ops;
mod privacy;
mod table;
pub mod train;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::control::{self, Request, Response};
use crate::daemon;
use crate::pipeline::{IngestOptions, Pipeline, Report};
use crate::render::Templates;
use crate::store::{IgnoredRecord, Store};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use table::Table;

#[derive(Debug, Parser)]
#[command(
    name = "ticketd",
    version,
    about = "Support and privacy mail → tracked cases, acknowledged, never looped"
)]
pub struct Cli {
    /// Configuration file (default: $TICKETD_CONFIG, else
    /// /etc/ticketd/ticketd.toml, else the embedded demo configuration).
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (on the embedded demo when no configuration exists).
    Run {
        /// Drain the sources and the outbox once, print a summary; exit 1
        /// when a mailbox or a delivery failed.
        #[arg(long)]
        once: bool,
    },
    /// Import .eml files, Maildirs and mbox files (input is never changed).
    Import {
        /// Record cases without queueing acknowledgements (historic mail).
        #[arg(long)]
        no_ack: bool,
        /// Print the report as one JSON document.
        #[arg(long)]
        json: bool,
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// List or show cases.
    Cases {
        #[command(subcommand)]
        command: cases::CasesCommand,
    },
    /// Privacy requests: list by urgency, show, verify, forward, extend,
    /// deny, complete.
    Privacy {
        #[command(subcommand)]
        command: privacy::PrivacyCommand,
    },
    /// Messages triage set aside, with their reasons.
    Ignored {
        #[command(subcommand)]
        command: IgnoredCommand,
    },
    /// Validate the configuration (every error, every referenced variable
    /// and file) and print the resolved settings.
    CheckConfig {
        /// Also log in to every mailbox and the SMTP server, and print the
        /// next run of every job and the calendar's next opening.
        #[arg(long)]
        connect: bool,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff).
    Man,
    /// When a case is due: support first response, or privacy dates (JSON;
    /// a stable interface). Reads only the clock sections of --config.
    Deadline(deadline::DeadlineArgs),
    /// Train or evaluate the learned triage scorer.
    Triage {
        #[command(subcommand)]
        command: train::TriageCommand,
    },
    /// Triage message files without storing them (a stable interface).
    Classify {
        /// Mailbox the files arrived in (default: from their recipients).
        #[arg(long)]
        mailbox: Option<RoleArg>,
        /// One JSON object per file, per line, in input order.
        #[arg(long)]
        json: bool,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Remove a person's personal data from every record (the daemon must
    /// be stopped); leaves a tombstone and compacts the store.
    Erase(erase::EraseArgs),
    /// Everything ticketd holds about a person (its part of an access answer).
    SubjectReport(erase::ReportArgs),
    /// Write a consistent backup of the store to one file (the running
    /// daemon writes it; else the store is opened directly).
    Backup(backup::BackupArgs),
    /// Restore a backup into the configured data directory, which must be
    /// empty (the daemon stopped).
    Restore(backup::RestoreArgs),
    /// Ask the running daemon whether it is healthy (what /healthz says):
    /// exit 0 healthy, 1 not (or not running), with the reason.
    Health,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Support,
    Privacy,
}

#[derive(Debug, Subcommand)]
pub enum IgnoredCommand {
    /// List set-aside messages.
    List {
        /// JSON lines, one record per line.
        #[arg(long)]
        json: bool,
    },
    /// Make a case from a set-aside message.
    Promote {
        id: u64,
        #[arg(long)]
        json: bool,
    },
}

/// An error for the user, with the exit status to use.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub code: i32,
}

impl<E: std::fmt::Display> From<E> for CliError {
    fn from(e: E) -> Self {
        CliError {
            message: e.to_string(),
            code: 1,
        }
    }
}

type CliResult = Result<(), CliError>;

/// Run a parsed command line.
pub async fn run(cli: Cli) -> CliResult {
    // The daemon's shutdown token comes first: a signal from here on is
    // never lost, even one that arrives while the config is read.
    let shutdown = match cli.command {
        Command::Run { once: false } => Some(crate::shutdown::install().map_err(|e| CliError {
            message: format!("cannot install the signal handlers: {e}"),
            code: 1,
        })?),
        _ => None,
    };
    match &cli.command {
        Command::Completions { shell } => return ops::completions(*shell),
        Command::Man => return ops::man(),
        _ => {}
    }
    let config_path = ops::config_path(cli.config.as_deref());
    if let Command::Deadline(args) = &cli.command {
        return deadline::run(config_path.as_deref(), args);
    }
    if let Command::CheckConfig { connect } = cli.command {
        return check::run(config_path.as_deref(), connect).await;
    }
    if let Command::Health = cli.command {
        return health::run(config_path.as_deref()).await;
    }
    let config = Config::load(config_path.as_deref()).map_err(|e| CliError {
        message: e.to_string(),
        code: 2,
    })?;
    match cli.command {
        Command::CheckConfig { .. }
        | Command::Completions { .. }
        | Command::Man
        | Command::Health => Ok(()),
        Command::Run { once } => run_daemon(config, once, shutdown).await,
        Command::Deadline(args) => deadline::run(config_path.as_deref(), &args),
        Command::Classify {
            mailbox,
            json,
            files,
        } => classify(&config, mailbox, json, &files),
        Command::Triage { command } => train::run(&config, command).await,
        Command::Import {
            no_ack,
            json,
            paths,
        } => import(config, paths, no_ack, json).await,
        Command::Cases { command } => cases::run(&config, command).await,
        Command::Privacy { command } => privacy::run(&config, command).await,
        Command::Erase(args) => erase::erase_cmd(&config, args).await,
        Command::SubjectReport(args) => erase::report_cmd(&config, args).await,
        Command::Backup(args) => backup::backup_cmd(&config, args).await,
        Command::Restore(args) => backup::restore_cmd(&config, args).await,
        Command::Ignored { command } => match command {
            IgnoredCommand::List { json } => {
                if json {
                    ask_stream(&config, Request::IgnoredList, &mut |line| {
                        Ok(print_line(line).is_ok())
                    })
                    .await?;
                } else {
                    let mut v: Vec<IgnoredRecord> = Vec::new();
                    ask_stream(&config, Request::IgnoredList, &mut |line| {
                        v.push(serde_json::from_str(line)?);
                        Ok(true)
                    })
                    .await?;
                    let mut t = Table::new(&[
                        "ID", "RECEIVED", "CATEGORY", "FROM", "SUBJECT", "NAMES", "PROMOTED",
                    ]);
                    for r in &v {
                        t.row(vec![
                            r.id.to_string(),
                            r.received_at.format("%Y-%m-%d %H:%M").to_string(),
                            r.category.clone(),
                            r.from
                                .as_ref()
                                .map(|a| a.address.clone())
                                .unwrap_or_else(|| "-".into()),
                            r.subject.clone(),
                            r.case.clone().unwrap_or_else(|| "-".into()),
                            r.promoted_to.clone().unwrap_or_else(|| "-".into()),
                        ]);
                    }
                    t.print();
                    for r in &v {
                        println!("#{}: {}", r.id, r.reasons.join("; "));
                    }
                }
                Ok(())
            }
            IgnoredCommand::Promote { id, json } => {
                let actor = cases::actor(&config);
                let v: control::Promoted =
                    ask(&config, Request::IgnoredPromote { id, actor }).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    println!(
                        "ignored #{} promoted to case {}{}",
                        v.ignored,
                        v.case,
                        if v.outbox.is_some() {
                            " (acknowledgement queued)"
                        } else {
                            " (no acknowledgement)"
                        }
                    );
                }
                Ok(())
            }
        },
    }
}

/// Print one line to stdout; `Err` when the reader has gone (a closed
/// pipe ends the output quietly instead of panicking).
fn print_line(line: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
}

/// A pipeline on a store opened by this process (no daemon runs).
fn direct_pipeline(store: Store, config: &Config) -> Result<Pipeline, CliError> {
    Ok(Pipeline::new(
        Arc::new(store),
        Arc::new(config.clone()),
        Arc::new(Templates::for_config(config)?),
        Arc::new(SystemClock),
    )?)
}

/// How long a command waits for the control socket of a daemon that holds
/// the store lock but is still starting.
const STARTING_DAEMON_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where a request is answered.
enum Route {
    /// The running daemon answered.
    Daemon(Response),
    /// No daemon runs: this process opened the store.
    Direct(Pipeline),
}

/// Send `req` to the running daemon, else open the store. A command never
/// takes the store from a daemon that is starting: when the store is
/// locked and no control socket answers yet, it waits for the socket (up to
/// [`STARTING_DAEMON_WAIT`]) and asks the daemon. (The daemon, for its part,
/// waits for a command that holds the store to finish: `open_when_free`.)
async fn route(config: &Config, req: &Request) -> Result<Route, CliError> {
    Ok(match connect(config).await? {
        Conn::Daemon(s) => Route::Daemon(control::call_on(s, req).await?),
        Conn::Direct(p) => Route::Direct(*p),
    })
}

/// A connection to the running daemon, or the store opened here.
enum Conn {
    Daemon(tokio::net::UnixStream),
    Direct(Box<Pipeline>),
}

/// Connect to the running daemon, else open the store (see [`route`]).
async fn connect(config: &Config) -> Result<Conn, CliError> {
    let start = std::time::Instant::now();
    let mut told = false;
    loop {
        if let Some(s) = control::connect(&config.data_dir).await? {
            return Ok(Conn::Daemon(s));
        }
        match Store::open_with(&config.data_dir, config.store.cache_capacity) {
            Ok(store) => return Ok(Conn::Direct(Box::new(direct_pipeline(store, config)?))),
            Err(crate::store::StoreError::Locked(_)) if start.elapsed() < STARTING_DAEMON_WAIT => {
                if !told {
                    eprintln!("ticketd: the store is locked (a daemon is starting?); waiting for its control socket");
                    told = true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Ask the running daemon, or answer from the store when none runs.
async fn ask<T: serde::de::DeserializeOwned>(config: &Config, req: Request) -> Result<T, CliError> {
    let resp = match route(config, &req).await? {
        Route::Daemon(r) => r,
        Route::Direct(p) => control::handle(&p, req).await,
    };
    unwrap_response(resp)
}

/// A streamed request (a list): each record, one JSON line, to `on_line`
/// as the daemon sends it or as the store is read (`Ok(false)`: stop).
/// Returns how many records came.
async fn ask_stream(
    config: &Config,
    req: Request,
    on_line: &mut dyn FnMut(&str) -> Result<bool, CliError>,
) -> Result<u64, CliError> {
    let mut failed = None;
    let mut emit = |line: &str| match on_line(line) {
        Ok(go) => go,
        Err(e) => {
            failed = Some(e);
            false
        }
    };
    let end = match connect(config).await? {
        Conn::Daemon(s) => control::call_stream(s, &req, &mut emit).await?,
        Conn::Direct(p) => control::StreamEnd {
            end: true,
            count: control::stream_records(&p, req, &mut emit)?,
            error: None,
        },
    };
    if let Some(e) = failed {
        return Err(e);
    }
    match end.error {
        Some(message) => Err(CliError { message, code: 1 }),
        None => Ok(end.count),
    }
}

fn unwrap_response<T: serde::de::DeserializeOwned>(resp: Response) -> Result<T, CliError> {
    if !resp.ok {
        return Err(CliError {
            message: resp.error.unwrap_or_else(|| "request failed".into()),
            code: 1,
        });
    }
    let v = resp.result.unwrap_or(serde_json::Value::Null);
    serde_json::from_value(v).map_err(|e| CliError {
        message: format!("unexpected answer from daemon: {e}"),
        code: 1,
    })
}

async fn run_daemon(
    config: Config,
    once: bool,
    shutdown: Option<crate::shutdown::CancellationToken>,
) -> CliResult {
    if let (false, Some(token)) = (once, shutdown) {
        let Some(d) = daemon::open_when_free(config, &token).await? else {
            tracing::info!("stopped before the store was opened");
            return Ok(());
        };
        Arc::new(d).run_until(token).await?;
        return Ok(());
    }
    let d = daemon::open(config.clone())?;
    let s = d.run_once().await?;
    let store = &d.pipeline.store;
    let r = &s.report;
    // The cases this run opened or added to (not every case the store
    // holds: that could be a million).
    let mut seen = std::collections::HashSet::new();
    let mut cases = Vec::new();
    for (_, o) in &r.outcomes {
        let id = match o {
            crate::store::IngestOutcome::NewCase { case, .. }
            | crate::store::IngestOutcome::FollowUp { case, .. } => case,
            _ => continue,
        };
        if seen.insert(id.clone()) {
            if let Some(c) = store.case(id)? {
                cases.push(c);
            }
        }
    }
    cases::print_cases(&cases, &config);
    if r.outcomes_dropped > 0 {
        println!(
            "… and the cases of {} more messages (`ticketd cases list`)",
            r.outcomes_dropped
        );
    }
    println!();
    if s.seeded > 0 {
        println!("demo Maildir seeded with {} messages", s.seeded);
    }
    println!(
        "this run: {} new cases, {} follow-ups, {} set aside, {} duplicates, {} acknowledgements, {} mails written, {} errors",
        r.new_cases,
        r.follow_ups,
        r.ignored,
        r.duplicates,
        r.acks_queued,
        s.delivery.sent,
        r.errors.len()
    );
    for e in &r.errors {
        println!("  error: {e}");
    }
    let undelivered = s.delivery.failed + s.delivery.retry_later;
    if undelivered > 0 {
        println!(
            "  error: {} mails not delivered ({} failed, {} to retry)",
            undelivered, s.delivery.failed, s.delivery.retry_later
        );
    }
    println!(
        "store: {}   mail: {}",
        config.data_dir.join("store").display(),
        config.outbound.dir.display()
    );
    ops::once_status(r.errors.len(), undelivered)
}

async fn import(config: Config, paths: Vec<PathBuf>, no_ack: bool, json: bool) -> CliResult {
    let paths: Vec<PathBuf> = paths
        .into_iter()
        .map(|p| std::path::absolute(&p).unwrap_or(p))
        .collect();
    let req = Request::Import {
        paths: paths.clone(),
        no_ack,
    };
    let report: Report = match route(&config, &req).await? {
        Route::Daemon(resp) => unwrap_response(resp)?,
        Route::Direct(p) => {
            let found = crate::source::files::discover(&paths);
            let total = crate::source::files::count_messages(&found.0);
            let mut bar = ImportProgress::new(total);
            let opts = IngestOptions { no_ack };
            let r = control::import_found(&p, found, opts, |step| match step {
                crate::source::files::Progress::Taken(n) => bar.inc(n),
                crate::source::files::Progress::More(n) => bar.grow(n),
            })
            .await?;
            bar.finish();
            r
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "imported: {} new cases, {} follow-ups, {} set aside, {} duplicates, {} acknowledgements queued (`ticketd run` delivers them)",
            report.new_cases, report.follow_ups, report.ignored, report.duplicates, report.acks_queued
        );
        for e in &report.errors {
            eprintln!("error: {e}");
        }
    }
    if report.errors.is_empty() {
        Ok(())
    } else {
        Err(CliError {
            message: format!("{} inputs could not be read", report.errors.len()),
            code: 1,
        })
    }
}

/// The import progress bar: counts messages, and appears once an import
/// has run for a second (on a terminal; indicatif hides it otherwise).
struct ImportProgress {
    bar: indicatif::ProgressBar,
    started: std::time::Instant,
    shown: bool,
}

impl ImportProgress {
    fn new(total: u64) -> ImportProgress {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::hidden(),
        );
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} messages {per_sec} {eta}")
        {
            bar.set_style(style);
        }
        ImportProgress {
            bar,
            started: std::time::Instant::now(),
            shown: false,
        }
    }

    /// `n` more messages done.
    fn inc(&mut self, n: u64) {
        self.bar.inc(n);
        if !self.shown && self.started.elapsed() >= std::time::Duration::from_secs(1) {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
            self.shown = true;
        }
    }

    /// An input turned out to hold `n` more messages than counted.
    fn grow(&self, n: u64) {
        self.bar.inc_length(n);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn classify(config: &Config, mailbox: Option<RoleArg>, json: bool, files: &[PathBuf]) -> CliResult {
    use std::io::Write;
    let rules = config.triage.compiled.clone();
    let forced = mailbox.map(|m| match m {
        RoleArg::Support => crate::config::Role::Support,
        RoleArg::Privacy => crate::config::Role::Privacy,
    });
    let classifier = crate::classify::Classifier::new(config, &rules);
    let mut unreadable = 0;
    let mut table = Table::new(&[
        "FILE",
        "KIND",
        "LEVEL/RIGHTS",
        "JURISDICTION",
        "CASE",
        "LANG",
        "AUTH",
        "ACK",
        "CONFIDENCE",
    ]);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for f in files {
        let name = f.display().to_string();
        let raw = match std::fs::read(f) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("ticketd: cannot read {name}: {e}");
                unreadable += 1;
                continue;
            }
        };
        let c = classifier.classify(&name, &raw, forced);
        if json {
            if writeln!(out, "{}", serde_json::to_string(&c)?).is_err() {
                return Ok(()); // closed pipe
            }
        } else {
            let what = match (&c.level, &c.rights) {
                (Some(l), _) => format!("level {l}"),
                (_, Some(r)) => r.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(","),
                _ => c.error.clone().unwrap_or_else(|| "-".into()),
            };
            table.row(vec![
                name,
                c.kind
                    .map(|k| k.as_str().to_string())
                    .unwrap_or_else(|| "-".into()),
                what,
                c.jurisdiction
                    .map(|j| j.as_str().to_string())
                    .unwrap_or_else(|| "-".into()),
                c.case_ref.clone().unwrap_or_else(|| "-".into()),
                c.language.clone().unwrap_or_else(|| "-".into()),
                format!("{:?}", c.auth).to_lowercase(),
                if c.ack { "yes".into() } else { "no".into() },
                match &c.runner_up {
                    Some(r) => format!("{} (or {r}?)", c.confidence.as_str()),
                    None => c.confidence.as_str().to_string(),
                },
            ]);
        }
    }
    if !json {
        table.print();
    }
    if unreadable > 0 {
        return Err(CliError {
            message: format!("{unreadable} files could not be read"),
            code: 1,
        });
    }
    Ok(())
}
