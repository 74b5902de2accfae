//! The daemon's watch task: samples the parts (IMAP health, outbox, cases,
//! disk, token commands), serves `/healthz` and `/metrics` when `[http]`
//! is configured, and every `alerts.check_every` turns the conditions into
//! operator alerts (mail to `people.alerts_to`, queued as standalone
//! outbox entries, one `alert_active` gauge each).

use super::alerts::{Action, Book};
use super::health::{self, MailboxState, OutboxState};
use super::metrics::{self, days_left_bucket, Sample};
use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::source::imap::Health;
use crate::store::OutboxState as EntryState;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the watch task and the HTTP server read.
pub struct Probe {
    pipeline: Pipeline,
    /// Per IMAP mailbox: its name, health and reconcile interval.
    mailboxes: Vec<(String, Arc<Mutex<Health>>, Duration)>,
    started: DateTime<Utc>,
    book: Mutex<Book>,
}

/// One look at everything.
pub struct Snapshot {
    pub mailboxes: Vec<MailboxState>,
    pub outbox: OutboxState,
    pub sample: Sample,
}

impl Probe {
    pub fn new(pipeline: Pipeline, health: Vec<(String, Arc<Mutex<Health>>)>) -> Probe {
        let config = pipeline.config.clone();
        let mailboxes = health
            .into_iter()
            .map(|(name, h)| {
                let interval = config
                    .mailbox(&name)
                    .and_then(|m| m.imap.as_ref())
                    .map(|i| i.reconcile_interval.0)
                    .unwrap_or(Duration::from_secs(300));
                (name, h, interval)
            })
            .collect();
        // IMAP health is kept on the wall clock (`Utc::now`), so mailbox
        // ages are too; outbox ages are on the pipeline's clock, like the
        // entries' own times.
        let started = Utc::now();
        Probe {
            book: Mutex::new(Book::new(config.alerts.repeat_every.0)),
            pipeline,
            mailboxes,
            started,
        }
    }

    fn config(&self) -> &Config {
        &self.pipeline.config
    }

    /// Sample every part (reads the store: call off the async threads).
    pub fn snapshot(&self) -> Snapshot {
        let now = self.pipeline.clock.now();
        let mailboxes: Vec<MailboxState> = self
            .mailboxes
            .iter()
            .map(|(name, h, interval)| {
                let h = h.lock().map(|h| h.clone()).unwrap_or_default();
                MailboxState {
                    name: name.clone(),
                    interval: *interval,
                    connected: h.connected,
                    last_sync: h.last_sync,
                    last_error: h.last_error.map(|e| crate::logmask::readable_error(&e)),
                }
            })
            .collect();
        let mut sample = Sample::default();
        let pending = match self.pipeline.store.outbox_pending() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox for metrics");
                Vec::new()
            }
        };
        let pending: Vec<_> = pending
            .into_iter()
            .filter(|e| matches!(e.state, EntryState::Queued | EntryState::Sending))
            .collect();
        let oldest = pending
            .iter()
            .map(|e| e.created_at)
            .min()
            .map(|t| (now - t).to_std().unwrap_or(Duration::ZERO));
        sample.outbox_depth = i64::try_from(pending.len()).unwrap_or(i64::MAX);
        sample.outbox_oldest_seconds = oldest.map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let outbox = OutboxState {
            depth: pending.len(),
            oldest,
            since_last_sent: metrics::metrics().since_last_sent(),
        };
        let mut cases: BTreeMap<(String, String, String), i64> = BTreeMap::new();
        let mut privacy: BTreeMap<&'static str, i64> = BTreeMap::new();
        let today = now.date_naive();
        // The open cases only, through their index: a sample costs what
        // is open, however many cases the store has kept.
        let open = crate::store::CaseFilter::open_cases();
        let counted = self.pipeline.store.for_each_case(&open, None, |c| {
            let level = c.level.map(|l| l.to_string()).unwrap_or_else(|| "-".into());
            *cases
                .entry((c.kind.as_str().into(), level, c.status.as_str().into()))
                .or_default() += 1;
            if let Some(d) = c.clocks.privacy.as_ref() {
                let due = d.extended_respond_by.unwrap_or(d.respond_by);
                *privacy
                    .entry(days_left_bucket((due - today).num_days()))
                    .or_default() += 1;
            }
            Ok(true)
        });
        if let Err(e) = counted {
            tracing::warn!(error = %e, "cannot read the cases for metrics");
        }
        sample.cases = cases.into_iter().collect();
        sample.privacy = privacy.into_iter().collect();
        sample.imap = mailboxes
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    m.connected,
                    m.last_sync.map(|t| t.timestamp()),
                )
            })
            .collect();
        sample.disk_free_percent = disk_free_percent(&self.config().data_dir);
        if let Ok(b) = self.book.lock() {
            sample.alerts = b.active();
        }
        Snapshot {
            mailboxes,
            outbox,
            sample,
        }
    }

    /// `/healthz`.
    pub fn health(&self, s: &Snapshot) -> health::Report {
        health::evaluate(Utc::now(), self.started, &s.mailboxes, &s.outbox)
    }

    /// `/metrics`.
    pub fn metrics_text(&self, s: &Snapshot) -> String {
        let m = metrics::metrics();
        m.set_sample(&s.sample);
        m.encode()
    }

    /// Check every alert condition once; queue the mails due.
    pub fn check_alerts(&self, s: &Snapshot) {
        let now = Utc::now();
        // Only this daemon's token commands (its mailboxes and transport).
        let ours: Vec<String> = self
            .config()
            .mailboxes
            .iter()
            .map(|m| format!("mailbox {}", m.name))
            .chain(std::iter::once("outbound SMTP".to_string()))
            .collect();
        let failing: Vec<String> = metrics::metrics()
            .failing_token_commands()
            .into_iter()
            .filter(|w| ours.contains(w))
            .collect();
        let conditions = conditions(self.config(), now, self.started, s, &failing);
        let mut mails = Vec::new();
        if let Ok(mut book) = self.book.lock() {
            for c in &conditions {
                if let Some(a) = book.update(&c.key, c.active, now) {
                    mails.push((a, c));
                }
            }
            metrics::metrics().set_sample(&Sample {
                alerts: book.active(),
                ..s.sample.clone()
            });
        }
        for (action, c) in mails {
            metrics::record(metrics::Event::Alert {
                alert: &c.key,
                raised: action != Action::Clear,
            });
            match action {
                Action::Clear => tracing::info!(alert = %c.key, "operator alert cleared"),
                _ => tracing::warn!(alert = %c.key, "operator alert raised"),
            }
            self.mail(action, c, self.pipeline.clock.now());
        }
    }

    fn mail(&self, action: Action, c: &Condition, now: DateTime<Utc>) {
        let config = self.config();
        let to: Vec<String> = config
            .people
            .alerts_to
            .iter()
            .map(|a| a.as_str().to_string())
            .collect();
        if to.is_empty() {
            tracing::warn!(alert = %c.key, "no people.alerts_to configured: the alert is not mailed");
            return;
        }
        let (subject, body) = match action {
            Action::Raise | Action::Repeat => (
                format!("[ticketd] ALERT: {}", c.title),
                format!(
                    "{}\n\n{}\n\nA recovery mail follows when it clears. This alert is repeated at most every {} while it lasts.\n",
                    c.title,
                    c.detail,
                    humantime::format_duration(config.alerts.repeat_every.0)
                ),
            ),
            Action::Clear => (
                format!("[ticketd] RECOVERED: {}", c.title),
                format!("Cleared: {}\n\nIt no longer holds.\n", c.title),
            ),
        };
        let id = format!("note.ticketd.{}@{}", crate::render::token(), config.domain);
        let mail = match crate::render::build_notice(
            config.outbound.from_support.mailbox(),
            &to,
            &subject,
            &body,
            &id,
            now,
        ) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(alert = %c.key, error = %e, "cannot build the alert mail");
                return;
            }
        };
        if let Err(e) = self.pipeline.store.queue_standalone(mail, now) {
            tracing::error!(alert = %c.key, error = %e, "cannot queue the alert mail");
        }
    }
}

/// One alert condition as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub key: String,
    pub active: bool,
    pub title: String,
    pub detail: String,
}

/// Every alert condition at `now` (wall clock; pure).
pub fn conditions(
    config: &Config,
    now: DateTime<Utc>,
    started: DateTime<Utc>,
    s: &Snapshot,
    failing_tokens: &[String],
) -> Vec<Condition> {
    let a = &config.alerts;
    let mut out = Vec::new();
    let human =
        |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string();
    for m in &s.mailboxes {
        let since = m.last_sync.unwrap_or(started);
        let down_for = (now - since).to_std().unwrap_or(Duration::ZERO);
        out.push(Condition {
            key: format!("mailbox_unreachable:{}", m.name),
            active: !m.connected && down_for > a.mailbox_unreachable.0,
            title: format!("mailbox {} unreachable", m.name),
            detail: format!(
                "Mailbox {} has not been reached for {} (alert after {}). Last error: {}",
                m.name,
                human(down_for),
                human(a.mailbox_unreachable.0),
                m.last_error.as_deref().unwrap_or("none recorded")
            ),
        });
    }
    let oldest = s.outbox.oldest.unwrap_or(Duration::ZERO);
    out.push(Condition {
        key: "outbox_stuck".into(),
        active: s.outbox.oldest.is_some() && oldest > a.outbox_stuck.0,
        title: "outgoing mail stuck in the outbox".into(),
        detail: format!(
            "{} outbox entries wait; the oldest has waited {} (alert after {}). See `ticketd outbox` and the log for the server's replies.",
            s.outbox.depth,
            human(oldest),
            human(a.outbox_stuck.0)
        ),
    });
    if let Some(free) = s.sample.disk_free_percent {
        out.push(Condition {
            key: "disk_full".into(),
            active: a.disk_free_percent > 0.0 && free < a.disk_free_percent,
            title: "data directory's disk nearly full".into(),
            detail: format!(
                "{free:.1} % free on the disk of the data directory (alert under {} %).",
                a.disk_free_percent
            ),
        });
    }
    for what in failing_tokens {
        out.push(Condition {
            key: format!("token_command:{what}"),
            active: true,
            title: format!("OAuth token command failing for {what}"),
            detail: format!("The token_command of {what} failed on its last run; logins with it fail until it works again."),
        });
    }
    // Token commands that recovered: their alerts clear.
    let known: Vec<String> = failing_tokens
        .iter()
        .map(|w| format!("token_command:{w}"))
        .collect();
    for (key, on) in &s.sample.alerts {
        if key.starts_with("token_command:") && *on && !known.contains(key) {
            let what = key.trim_start_matches("token_command:");
            out.push(Condition {
                key: key.clone(),
                active: false,
                title: format!("OAuth token command failing for {what}"),
                detail: String::new(),
            });
        }
    }
    out
}

/// Free share of the disk holding `dir`, percent.
pub fn disk_free_percent(dir: &std::path::Path) -> Option<f64> {
    let avail = fs2::available_space(dir).ok()?;
    let total = fs2::total_space(dir).ok()?;
    (total > 0).then(|| avail as f64 * 100.0 / total as f64)
}

/// Run the watch task until shutdown: the HTTP server (if configured)
/// and the alert checks.
pub async fn run(probe: Arc<Probe>, shutdown: tokio_util::sync::CancellationToken) {
    let server = match probe.config().http.clone() {
        Some(http) => {
            let rx = shutdown.clone();
            Some(tokio::spawn(super::http::serve(
                http.listen,
                probe.clone(),
                rx,
            )))
        }
        None => None,
    };
    let every = probe.config().alerts.check_every.0;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        let p = probe.clone();
        let r = tokio::task::spawn_blocking(move || {
            let s = p.snapshot();
            p.check_alerts(&s);
        })
        .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "alert check failed");
        }
    }
    if let Some(s) = server {
        let _ = s.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + min * 60, 0)
            .single()
            .unwrap_or_default()
    }

    fn snapshot(
        connected: bool,
        last_sync_min: i64,
        oldest_min: Option<u64>,
        free: f64,
    ) -> Snapshot {
        Snapshot {
            mailboxes: vec![MailboxState {
                name: "support".into(),
                interval: Duration::from_secs(300),
                connected,
                last_sync: Some(t(last_sync_min)),
                last_error: Some("connect: Connection refused".into()),
            }],
            outbox: OutboxState {
                depth: usize::from(oldest_min.is_some()),
                oldest: oldest_min.map(|m| Duration::from_secs(m * 60)),
                since_last_sent: None,
            },
            sample: Sample {
                disk_free_percent: Some(free),
                ..Sample::default()
            },
        }
    }

    fn active(c: &[Condition]) -> Vec<&str> {
        c.iter()
            .filter(|c| c.active)
            .map(|c| c.key.as_str())
            .collect()
    }

    #[test]
    fn conditions_follow_the_thresholds() {
        let config = Config::load(None).expect("embedded config");
        // Defaults: 15 min unreachable, 30 min queued, 5 % free.
        let quiet = conditions(
            &config,
            t(20),
            t(0),
            &snapshot(true, 19, Some(5), 50.0),
            &[],
        );
        assert!(active(&quiet).is_empty(), "{quiet:?}");
        let brief = conditions(&config, t(20), t(0), &snapshot(false, 10, None, 50.0), &[]);
        assert!(active(&brief).is_empty());
        let all = conditions(
            &config,
            t(40),
            t(0),
            &snapshot(false, 10, Some(31), 2.0),
            &["mailbox support".to_string()],
        );
        assert_eq!(
            active(&all),
            vec![
                "mailbox_unreachable:support",
                "outbox_stuck",
                "disk_full",
                "token_command:mailbox support"
            ]
        );
        let down = &all[0];
        assert!(down.detail.contains("30m"), "{}", down.detail);
        assert!(down.detail.contains("Connection refused"));
        assert!(!all.iter().any(|c| c.detail.contains('@')));
    }

    #[test]
    fn a_token_command_that_works_again_clears() {
        let config = Config::load(None).expect("embedded config");
        let mut s = snapshot(true, 0, None, 50.0);
        s.sample.alerts = vec![("token_command:mailbox support".into(), true)];
        let c = conditions(&config, t(1), t(0), &s, &[]);
        let token: Vec<_> = c
            .iter()
            .filter(|c| c.key == "token_command:mailbox support")
            .collect();
        assert_eq!(token.len(), 1);
        assert!(!token[0].active);
    }
}
