//! Prints one of every mail ticketd sends — acknowledgements (English,
//! German), staff and agency notices, pages, on-call escalations, warnings,
//! breaches, missed reviews, privacy notices, reminders and overdue
//! escalations, and the digest — by running the real pipeline and scheduler
//! against a controlled clock in a temporary store.
//!
//! ```sh
//! cargo run --example mail_samples
//! ```

use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeSet;
use std::sync::Arc;
use ticketd::clock::{Clock, ManualClock};
use ticketd::config::{Config, Role};
use ticketd::daemon::Daemon;
use ticketd::pipeline::{IngestOptions, Pipeline};
use ticketd::source::Envelope;

const CONFIG: &str = r#"
data_dir = "data"
domain = "casehost.example"
[[mailboxes]]
name = "support"
role = "support"
address = "support@casehost.example"
source = "maildir"
path = "maildir"
[outbound]
from_support = "CaseHost Support <support@casehost.example>"
from_privacy = "CaseHost Privacy <privacy@casehost.example>"
transport = "file"
[people]
staff = ["support-team@casehost.example"]
developers = ["developers@casehost.example"]
support_lead = ["support-lead@casehost.example"]
privacy_officer = ["privacy-officer@casehost.example"]
[people.on_call]
rotation = ["alex.dev@casehost.example", "bea.dev@casehost.example"]
handover = "2026-11-16T07:30"
[[agencies]]
name = "Legal Aid North"
domains = ["legalaid-north.example.org"]
site_admins = ["it-admin@legalaid-north.example.org"]
notify_on_new_ticket = true
"#;

fn at(s: &str) -> Result<DateTime<Utc>, Box<dyn std::error::Error>> {
    Ok(DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let config = Config::from_toml(CONFIG, "samples.toml", dir.path())?;
    let start = at("2026-11-20T06:00:00-05:00")?;
    let clock = Arc::new(ManualClock::new(start));
    let p = Daemon::open(config, clock.clone())?.pipeline;
    ticketd::schedule::run_due(&p, start)?;
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo");
    let deliveries = [
        ("01-site-down.eml", "2026-11-20T07:00:00-05:00"),
        ("02-case-notes-broken.eml", "2026-11-20T09:00:00-05:00"),
        ("03-report-error.eml", "2026-11-20T10:00:00-05:00"),
        ("04-dsgvo-auskunft.eml", "2026-11-20T11:00:00-05:00"),
        ("10-ccpa-request.eml", "2026-11-20T12:00:00-05:00"),
    ];
    let mut resolved = false;
    for (i, (file, when)) in deliveries.iter().enumerate() {
        let t = at(when)?;
        run_until(&p, &clock, t)?;
        let raw = std::fs::read(format!("{fixtures}/{file}"))?;
        let env = Envelope {
            source: "support".into(),
            key: format!("sample-{i}"),
            received_at: t,
            raw,
            original_size: None,
        };
        p.ingest(&env, Role::Support, IngestOptions::default())?;
        if i == 1 && !resolved {
            // Resolve the level-1 case after its first repeat page.
            let rt = tokio::runtime::Builder::new_current_thread().build()?;
            rt.block_on(ticketd::control::act(
                &p,
                "SUP-000001",
                &ticketd::control::CaseAction::Resolve,
                "cli:sample",
            ))?;
            resolved = true;
        }
    }
    // A month and a bit: warnings, breaches, digests, privacy reminders.
    run_until(&p, &clock, at("2026-12-27T09:00:00-05:00")?)?;

    let mut seen = BTreeSet::new();
    for e in p.store.outbox_all()? {
        let kind = match (&e.case, e.message_id.split('.').collect::<Vec<_>>()) {
            (None, _) => "digest".to_string(),
            (Some(_), parts) if parts.first() == Some(&"ack") => {
                format!("ack {}", e.case.clone().unwrap_or_default())
            }
            (Some(_), parts) => parts.get(2).copied().unwrap_or("?").to_string(),
        };
        if !seen.insert(kind.clone()) {
            continue;
        }
        let m = mail_parser::MessageParser::default()
            .parse(e.mail.as_bytes())
            .ok_or("unparseable mail")?;
        println!(
            "==================== {kind}  (queued {})",
            e.created_at
                .with_timezone(&chrono_tz::America::New_York)
                .format("%a %Y-%m-%d %H:%M %Z")
        );
        println!("To: {}", e.recipients.join(", "));
        println!("Subject: {}", e.subject);
        println!();
        println!(
            "{}",
            m.body_text(0)
                .unwrap_or_default()
                .replace("\r\n", "\n")
                .trim_end()
        );
        println!();
    }
    Ok(())
}

/// Advance minute by minute to `end`, running the due jobs.
fn run_until(
    p: &Pipeline,
    clock: &ManualClock,
    end: DateTime<Utc>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut t = clock.now();
    while t < end {
        t = (t + Duration::minutes(1)).min(end);
        clock.set(t);
        ticketd::schedule::run_due(p, t)?;
    }
    Ok(())
}
