//! `ticketd erase --subject ADDRESS` and `ticketd subject-report ADDRESS`:
//! the shell around [`crate::erase`]. An erasure opens the store directly
//! and needs the daemon stopped (it rewrites the store directory); a report
//! asks the running daemon over its control socket, or reads the store
//! when none runs.
//!
//! Order of an erasure: refuse while a privacy request of the person is
//! open (unless `--force`); delete their mail from the IMAP processed
//! folders (a failure stops here, before the store changes, unless
//! `--no-imap`); write the plan; record the tombstone; compact the store.

use super::table::Table;
use super::{CliError, CliResult};
use crate::config::Config;
use crate::erase::{self, apply, compact, Counts, Tombstone};
use crate::store::{Store, StoreError};
use crate::workflow::ThreadKeys;
use chrono::Utc;
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct EraseArgs {
    /// The data subject's e-mail address.
    #[arg(long, value_name = "ADDRESS")]
    pub subject: String,
    /// Change nothing; print what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Erase even while a privacy request of theirs is still open.
    #[arg(long)]
    pub force: bool,
    /// Leave the IMAP processed folders alone (a server that cannot be
    /// reached); the report says so.
    #[arg(long)]
    pub no_imap: bool,
    /// Print the report as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The person's e-mail address.
    #[arg(value_name = "ADDRESS")]
    pub address: String,
    /// Print the report as one JSON document.
    #[arg(long)]
    pub json: bool,
}

/// The report of an erasure (the same shape for `--dry-run`).
#[derive(Debug, Serialize)]
struct EraseReport {
    dry_run: bool,
    forced: bool,
    subject_hash: String,
    actor: String,
    at: chrono::DateTime<Utc>,
    /// Their requests, removed whole.
    cases_deleted: Vec<String>,
    /// Other cases they appeared on, kept without them.
    cases_scrubbed: Vec<String>,
    counts: Counts,
    imap: Option<erase::imap::ImapOutcome>,
    compaction: Option<compact::Compacted>,
    tombstone: Option<u64>,
}

/// Open the store for an erasure or a report: the daemon must be stopped.
fn open_store(config: &Config, what: &str) -> Result<Store, CliError> {
    match Store::open_with(&config.data_dir, config.store.cache_capacity) {
        Ok(s) => Ok(s),
        Err(StoreError::Locked(dir)) => Err(CliError {
            message: format!(
                "ticketd {what} needs the daemon stopped: the store in {} is in use by a running ticketd (lock held on {}/ticketd.lock). Stop the daemon (e.g. `systemctl stop ticketd`), run `ticketd {what}` again, then start it.",
                dir.display(),
                dir.display()
            ),
            code: 1,
        }),
        Err(e) => Err(e.into()),
    }
}

fn keys(config: &Config) -> Result<ThreadKeys, CliError> {
    ThreadKeys::load(&config.threading, &config.data_dir).map_err(|e| CliError {
        message: e,
        code: 2,
    })
}

fn check_address(a: &str) -> Result<String, CliError> {
    let n = erase::normalise(a);
    let ok = n.split_once('@').is_some_and(|(l, d)| {
        !l.is_empty() && !d.is_empty() && !n.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if ok {
        Ok(n)
    } else {
        Err(CliError {
            message: format!("{a:?} is not an e-mail address"),
            code: 2,
        })
    }
}

pub async fn erase_cmd(config: &Config, args: EraseArgs) -> CliResult {
    let subject = check_address(&args.subject)?;
    let store = open_store(config, "erase")?;
    let keys = keys(config)?;
    let actor = super::cases::actor(config);
    let now = Utc::now();
    let h = apply::holdings(&store, Some(&subject))?;
    let open = erase::open_privacy_requests(&h, &subject);
    if !open.is_empty() && !args.force {
        return Err(CliError {
            message: format!(
                "refused: the person has an open privacy request ({}); finish it (complete, deny or forward) first, or run again with --force",
                open.join(", ")
            ),
            code: 3,
        });
    }
    let plan = erase::plan_erasure(&h, &subject);
    drop(h);
    let mut report = EraseReport {
        dry_run: args.dry_run,
        forced: args.force && !open.is_empty(),
        subject_hash: erase::subject_hash(&keys, &subject),
        actor: actor.clone(),
        at: now,
        cases_deleted: plan.delete_cases.clone(),
        cases_scrubbed: plan.scrubbed_cases.clone(),
        counts: apply::erasure_counts(&store, &plan, Some(config.outbound.dir.as_path()))?,
        imap: None,
        compaction: None,
        tombstone: None,
    };
    if !args.no_imap {
        let from = vec![subject.clone()];
        let out =
            erase::imap::delete_processed(config, &plan.message_ids, &from, args.dry_run).await;
        report.counts.imap_deleted = out.deleted;
        let failed = !out.errors.is_empty();
        let errors = out.errors.join("; ");
        report.imap = Some(out);
        if failed && !args.dry_run {
            print_erase(&report, args.json)?;
            return Err(CliError {
                message: format!(
                    "IMAP: {errors}; nothing in the store was changed. Fix the connection and run again, or pass --no-imap to erase the store alone"
                ),
                code: 1,
            });
        }
    }
    report.counts.maildir_deleted =
        apply::delete_maildir_copies(config, &plan.source_keys, args.dry_run);
    if args.dry_run {
        return print_erase(&report, args.json);
    }
    let mut counts = apply::apply_erasure(
        &store,
        &plan,
        now,
        &actor,
        Some(config.outbound.dir.as_path()),
    )?;
    counts.imap_deleted = report.counts.imap_deleted;
    counts.maildir_deleted = report.counts.maildir_deleted;
    let t = apply::put_tombstone(
        &store,
        Tombstone {
            id: 0,
            subject_hash: report.subject_hash.clone(),
            at: now,
            actor: actor.clone(),
            cases: plan.delete_cases.clone(),
            counts: counts.clone(),
            forced: report.forced,
        },
    )?;
    report.counts = counts;
    report.tombstone = Some(t.id);
    report.compaction = Some(compact::compact(store)?);
    tracing::info!(
        tombstone = t.id,
        cases_deleted = t.counts.cases_deleted,
        cases_scrubbed = t.counts.cases_scrubbed,
        messages_deleted = t.counts.messages_deleted,
        messages_scrubbed = t.counts.messages_scrubbed,
        outbox_deleted = t.counts.outbox_deleted,
        imap_deleted = t.counts.imap_deleted,
        "erasure done; store compacted"
    );
    print_erase(&report, args.json)
}

fn print_erase(r: &EraseReport, json: bool) -> CliResult {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    let c = &r.counts;
    println!(
        "{}erasure of subject {} by {}",
        if r.dry_run {
            "dry run: nothing changed; "
        } else {
            ""
        },
        &r.subject_hash,
        r.actor
    );
    if r.forced {
        println!("forced over an open privacy request");
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    println!(
        "cases removed whole:    {} ({})",
        c.cases_deleted,
        list(&r.cases_deleted)
    );
    println!(
        "cases kept, scrubbed:   {} ({})",
        c.cases_scrubbed,
        list(&r.cases_scrubbed)
    );
    println!("messages removed:       {}", c.messages_deleted);
    println!("messages scrubbed:      {}", c.messages_scrubbed);
    println!("raw mails removed:      {}", c.raw_deleted);
    println!("events removed:         {}", c.events_deleted);
    println!("events scrubbed:        {}", c.events_scrubbed);
    println!("outbox removed:         {}", c.outbox_deleted);
    println!("outbox cancelled:       {}", c.outbox_cancelled);
    println!("outbox bodies removed:  {}", c.outbox_scrubbed);
    println!("ignored removed:        {}", c.ignored_deleted);
    println!("index keys removed:     {}", c.index_keys_deleted);
    println!("mail files removed:     {}", c.files_deleted);
    println!("Maildir copies removed: {}", c.maildir_deleted);
    match &r.imap {
        None => println!("IMAP processed folders: not touched (--no-imap)"),
        Some(i) => {
            println!("IMAP messages deleted:  {}", i.deleted);
            for e in &i.errors {
                println!("IMAP error: {e}");
            }
        }
    }
    if let Some(k) = &r.compaction {
        println!(
            "store compacted:        {} trees, {} entries, {} → {} bytes",
            k.trees, k.entries, k.bytes_before, k.bytes_after
        );
    }
    if let Some(t) = r.tombstone {
        println!("tombstone:              #{t}");
    }
    Ok(())
}

pub async fn report_cmd(config: &Config, args: ReportArgs) -> CliResult {
    let subject = check_address(&args.address)?;
    let r: erase::SubjectReport = super::ask(
        config,
        crate::control::Request::SubjectReport {
            address: subject.clone(),
        },
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("what ticketd holds about {subject}");
    println!("\ncases");
    let mut t = Table::new(&[
        "CASE", "KIND", "STATUS", "ROLE", "RECEIVED", "UPDATED", "SUBJECT",
    ]);
    for c in &r.cases {
        t.row(vec![
            c.id.clone(),
            c.kind.clone(),
            c.status.clone(),
            c.role.clone(),
            c.received_at.format("%Y-%m-%d %H:%M").to_string(),
            c.updated_at.format("%Y-%m-%d %H:%M").to_string(),
            c.subject.clone(),
        ]);
    }
    t.print();
    println!("\nmessages");
    let mut t = Table::new(&["ID", "CASE", "DATE", "DIRECTION", "RAW KEPT", "SUBJECT"]);
    for m in &r.messages {
        t.row(vec![
            m.id.to_string(),
            m.case.clone().unwrap_or_else(|| "-".into()),
            m.received_at.format("%Y-%m-%d %H:%M").to_string(),
            m.direction.clone(),
            if m.raw_stored { "yes" } else { "no" }.into(),
            m.subject.clone(),
        ]);
    }
    for o in &r.outbox {
        t.row(vec![
            format!("out:{}", o.id),
            o.case.clone().unwrap_or_else(|| "-".into()),
            o.sent_at
                .unwrap_or(o.created_at)
                .format("%Y-%m-%d %H:%M")
                .to_string(),
            format!("{} ({}, {})", o.direction, o.purpose, o.state),
            "-".into(),
            o.subject.clone(),
        ]);
    }
    t.print();
    println!("\nset aside (ignored)");
    let mut t = Table::new(&["ID", "RECEIVED", "CATEGORY", "PROMOTED", "SUBJECT"]);
    for i in &r.ignored {
        t.row(vec![
            i.id.to_string(),
            i.received_at.format("%Y-%m-%d %H:%M").to_string(),
            i.category.clone(),
            i.promoted_to.clone().unwrap_or_else(|| "-".into()),
            i.subject.clone(),
        ]);
    }
    t.print();
    println!("\nerasures");
    for t in &r.tombstones {
        println!(
            "#{} at {} by {}: cases {} removed, {} messages removed, {} scrubbed",
            t.id,
            t.at.format("%Y-%m-%d %H:%M"),
            t.actor,
            if t.cases.is_empty() {
                "-".to_string()
            } else {
                t.cases.join(", ")
            },
            t.counts.messages_deleted,
            t.counts.messages_scrubbed
        );
    }
    if r.tombstones.is_empty() {
        println!("none");
    }
    Ok(())
}
