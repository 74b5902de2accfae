//! The daemon: opens the store, builds sources, the pipeline and the
//! transport, then either drains everything once (`run --once`) or runs a
//! task per mailbox, an outbox worker and the control socket until SIGINT
//! or SIGTERM.
//!
//! Each mailbox runs on its own task, so one bad mailbox (wrong password,
//! server down) never stalls the others: it backs off exponentially with
//! jitter (1 s doubling to 5 min) and reconnects on its own.
//!
//! Shutdown: one [`CancellationToken`] (see [`crate::shutdown`]), which
//! stays cancelled, so a signal that comes before a task has started is
//! still seen by it. Every long-lived task is a named function here
//! (`control_task`, `mailbox_task`, `scheduler`, `outbox_worker`, and
//! `systemd::watchdog_task`); a task finishes the message in hand, the
//! batch is flushed and acked, and the daemon waits for every task before a
//! last flush. Under systemd (`Type=notify`) it says `READY=1` once the
//! control socket is bound and every task spawned, and `STOPPING=1` when
//! the token is cancelled (see [`crate::systemd`]).

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, SourceKind};
use crate::control;
use crate::outbox::{self, AnyTransport, DeliveryStats, OutboxPolicy};
use crate::pipeline::{IngestOptions, Pipeline, Report};
use crate::render::Templates;
use crate::shutdown::CancellationToken;
use crate::source::imap::{Health, ImapSource};
use crate::source::maildir::MaildirSource;
use crate::source::{Envelope, Fetched, Source, SourceError};
use crate::store::{Store, StoreError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
    #[error("{0}")]
    Io(String),
}

/// What a run did, for the summary.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub report: Report,
    pub delivery: DeliveryStats,
    pub seeded: usize,
    /// Scheduled jobs that were due and ran.
    pub jobs: Vec<crate::schedule::JobReport>,
}

/// Any configured source.
pub enum AnySource {
    Maildir(MaildirSource),
    Imap(Box<ImapSource>),
}

impl Source for AnySource {
    fn name(&self) -> &str {
        match self {
            AnySource::Maildir(s) => s.name(),
            AnySource::Imap(s) => s.name(),
        }
    }
    async fn fetch(&mut self, max: usize) -> Result<Fetched, SourceError> {
        match self {
            AnySource::Maildir(s) => s.fetch(max).await,
            AnySource::Imap(s) => s.fetch(max).await,
        }
    }
    async fn ack(&mut self, taken: &[Envelope]) -> Result<(), SourceError> {
        match self {
            AnySource::Maildir(s) => s.ack(taken).await,
            AnySource::Imap(s) => s.ack(taken).await,
        }
    }
    async fn ack_and_fetch(
        &mut self,
        taken: &[Envelope],
        max: usize,
    ) -> (Result<(), SourceError>, Result<Fetched, SourceError>) {
        match self {
            AnySource::Maildir(s) => s.ack_and_fetch(taken, max).await,
            AnySource::Imap(s) => s.ack_and_fetch(taken, max).await,
        }
    }
    fn set_fetch_bytes(&mut self, max_bytes: u64) {
        match self {
            AnySource::Maildir(s) => s.set_fetch_bytes(max_bytes),
            AnySource::Imap(s) => s.set_fetch_bytes(max_bytes),
        }
    }
    async fn wait(&mut self, max: Duration) -> Result<(), SourceError> {
        match self {
            AnySource::Maildir(s) => s.wait(max).await,
            AnySource::Imap(s) => s.wait(max).await,
        }
    }
    async fn quarantine(&mut self, envs: &[Envelope]) -> Result<(), SourceError> {
        match self {
            AnySource::Maildir(s) => s.quarantine(envs).await,
            AnySource::Imap(s) => s.quarantine(envs).await,
        }
    }
    fn reset(&mut self) {
        match self {
            AnySource::Maildir(s) => s.reset(),
            AnySource::Imap(s) => s.reset(),
        }
    }
}

/// Everything a running daemon holds.
pub struct Daemon {
    pub pipeline: Pipeline,
    transport: AnyTransport,
    policy: OutboxPolicy,
    /// Per IMAP mailbox: connection health (for metrics later).
    pub health: Mutex<Vec<(String, Arc<Mutex<Health>>)>>,
}

impl Daemon {
    /// Open the store (taking its lock) and build the parts.
    pub fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Daemon, DaemonError> {
        let templates = Templates::for_config(&config)?;
        let store = Store::open_with(&config.data_dir, config.store.cache_capacity)?;
        let recovered = store.recover_outbox()?;
        if recovered > 0 {
            tracing::info!(
                entries = recovered,
                "outbox entries from an interrupted run re-queued"
            );
        }
        let transport = AnyTransport::from_config(&config.outbound);

        let policy = OutboxPolicy::from_config(&config);
        let pipeline = Pipeline::new(
            Arc::new(store),
            Arc::new(config),
            Arc::new(templates),
            clock,
        )?;
        for w in pipeline.config.warnings() {
            tracing::warn!("{w}");
        }
        let gaps = pipeline.notifier.unconfigured();
        if !gaps.is_empty() {
            tracing::warn!(
                empty = %gaps.join(", "),
                "some notifications go to nobody: these people lists are empty"
            );
        }
        Ok(Daemon {
            pipeline,
            transport,
            policy,
            health: Mutex::new(Vec::new()),
        })
    }

    fn sources(&self) -> Result<(Vec<(AnySource, Duration)>, usize), DaemonError> {
        let mut seeded = 0;
        let mut out = Vec::new();
        let config = &self.pipeline.config;
        for m in &config.mailboxes {
            match (m.source, &m.imap) {
                (SourceKind::Imap, Some(imap)) => {
                    let cursor = self.pipeline.store.cursor(&m.name)?;
                    let src = ImapSource::new(&m.name, imap.clone(), cursor.as_deref());
                    if let Ok(mut h) = self.health.lock() {
                        h.push((m.name.clone(), src.health()));
                    }
                    out.push((AnySource::Imap(Box::new(src)), imap.reconcile_interval.0));
                }
                _ => {
                    if m.demo_seed {
                        seeded += crate::demo::seed(&m.path).map_err(|e| {
                            DaemonError::Io(format!(
                                "cannot seed demo Maildir {}: {e}",
                                m.path.display()
                            ))
                        })?;
                    }
                    out.push((
                        AnySource::Maildir(MaildirSource::open(&m.name, &m.path)?),
                        config.daemon.poll_interval.0,
                    ));
                }
            }
        }
        Ok((out, seeded))
    }

    /// Drain every source and the outbox once, then return. A mailbox that
    /// cannot be reached is reported and does not stop the others.
    pub async fn run_once(&self) -> Result<RunSummary, DaemonError> {
        let (sources, seeded) = self.sources()?;
        let mut summary = RunSummary {
            seeded,
            ..RunSummary::default()
        };
        let batch = self.pipeline.config.daemon.batch_size;
        for (mut src, _) in sources {
            match self
                .pipeline
                .drain(&mut src, batch, IngestOptions::default(), &|| false)
                .await
            {
                Ok(r) => summary.report.merge(r),
                Err(e) => {
                    tracing::error!(source = src.name(), error = %e, "mailbox failed");
                    summary.report.errors.push(format!("{}: {e}", src.name()));
                }
            }
        }
        let now = self.pipeline.clock.now();
        summary.jobs = crate::schedule::run_due(&self.pipeline, now)?;
        self.pipeline.store.flush().await?;
        summary.delivery = self.deliver().await?;
        Ok(summary)
    }

    async fn deliver(&self) -> Result<DeliveryStats, DaemonError> {
        Ok(outbox::deliver_due(
            &self.pipeline.store,
            &self.transport,
            self.pipeline.clock.as_ref(),
            &self.policy,
        )
        .await?)
    }

    /// Run until `shutdown` is cancelled (by SIGINT/SIGTERM through
    /// [`crate::shutdown::install`], or by a test). A token cancelled before
    /// this is called stops the daemon as soon as it has started.
    pub async fn run_until(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> Result<(), DaemonError> {
        let (sources, seeded) = self.sources()?;
        if seeded > 0 {
            tracing::info!(messages = seeded, "demo Maildir seeded");
        }
        let wake_outbox = Arc::new(tokio::sync::Notify::new());
        let mut tasks = tokio::task::JoinSet::new();

        // The probe behind /healthz, also asked by `ticketd health` over
        // the control socket.
        let probe = Arc::new(crate::observe::watch::Probe::new(
            self.pipeline.clone(),
            self.health.lock().map(|h| h.clone()).unwrap_or_default(),
        ));
        match control::bind(self.pipeline.store.data_dir()) {
            Ok(listener) => {
                tasks.spawn(control_task(
                    listener,
                    self.pipeline.clone(),
                    probe.clone(),
                    shutdown.clone(),
                ));
            }
            Err(e) => tracing::error!(error = %e, "control socket failed"),
        }
        for (src, reconcile) in sources {
            let span = tracing::info_span!("mailbox", name = %src.name());
            tasks.spawn(tracing::Instrument::instrument(
                mailbox_task(
                    self.pipeline.clone(),
                    src,
                    reconcile,
                    shutdown.clone(),
                    wake_outbox.clone(),
                ),
                span,
            ));
        }

        // Health, metrics and operator alerts (`observe::watch`).
        tasks.spawn(crate::observe::watch::run(probe, shutdown.clone()));
        tasks.spawn(scheduler(
            self.pipeline.clone(),
            shutdown.clone(),
            wake_outbox.clone(),
        ));
        tasks.spawn(outbox_worker(self.clone(), shutdown.clone(), wake_outbox));
        // systemd (Type=notify): the watchdog pings, then READY=1 now that
        // the store is open, the control socket listens and the tasks run.
        tasks.spawn(crate::systemd::watchdog_task(shutdown.clone()));
        crate::systemd::ready();

        tracing::info!(data_dir = %self.pipeline.config.data_dir.display(), "ticketd running; SIGINT or SIGTERM stops it");
        shutdown.cancelled().await;
        crate::systemd::stopping();
        tracing::info!("shutting down: waiting for the tasks");
        // Test hook: a slow shutdown, to show a second signal still ends it.
        crate::failpoint::delay("shutdown").await;
        while let Some(res) = tasks.join_next().await {
            if let Err(e) = res {
                tracing::error!(error = %e, "task ended abnormally");
            }
        }
        self.pipeline.store.flush().await?;
        tracing::info!("stopped cleanly");
        Ok(())
    }
}

/// The control socket task (see [`control::serve_on`]).
async fn control_task(
    listener: tokio::net::UnixListener,
    p: Pipeline,
    probe: Arc<crate::observe::watch::Probe>,
    shutdown: CancellationToken,
) {
    if let Err(e) = control::serve_on(listener, p, Some(probe), shutdown).await {
        tracing::error!(error = %e, "control socket failed");
    }
}

/// One mailbox: drain it, wait for mail (IDLE or polling), again; back off
/// on failure. A drain finishes the message in hand when `shutdown` is
/// cancelled (its batch is flushed and acked), then the task ends.
async fn mailbox_task(
    p: Pipeline,
    mut src: AnySource,
    reconcile: Duration,
    shutdown: CancellationToken,
    wake_outbox: Arc<tokio::sync::Notify>,
) {
    let batch = p.config.daemon.batch_size;
    let mut failures: u32 = 0;
    let mut repeats = crate::observe::logs::Repeats::default();
    while !shutdown.is_cancelled() {
        // Messages that failed last pass are tried again.
        src.reset();
        let stop_fn = || shutdown.is_cancelled();
        let mut retry_soon = false;
        let ok = match p
            .drain(&mut src, batch, IngestOptions::default(), &stop_fn)
            .await
        {
            Ok(r) => {
                if r.acks_queued > 0 || r.new_cases > 0 || r.follow_ups > 0 || r.quarantined > 0 {
                    wake_outbox.notify_one();
                }
                // Messages that failed are tried again soon (and
                // quarantined after their attempts).
                retry_soon = r.failed > 0;
                true
            }
            Err(e) => {
                crate::observe::logs::log_failure(&mut repeats, src.name(), &e.to_string());
                false
            }
        };
        if shutdown.is_cancelled() {
            break;
        }
        if ok {
            crate::observe::logs::log_recovery(&mut repeats, src.name());
        }
        if ok && retry_soon {
            failures = 0;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        } else if ok {
            failures = 0;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = src.wait(reconcile) => {
                    if let Err(e) = r {
                        tracing::warn!(source = src.name(), error = %crate::logmask::readable_error(&e.to_string()), "waiting for mail failed; reconnecting");
                    }
                }
            }
        } else {
            failures = failures.saturating_add(1);
            let delay = backoff(failures);
            tracing::debug!(source = src.name(), retry_in = ?delay, "backing off");
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// The outbox worker: deliver what is due, woken after ingest and every
/// 5 s; while mail waits out an outage, probe with one mail every
/// [`OUTBOX_PROBE`].
async fn outbox_worker(
    me: Arc<Daemon>,
    shutdown: CancellationToken,
    wake: Arc<tokio::sync::Notify>,
) {
    let mut last_probe = tokio::time::Instant::now();
    while !shutdown.is_cancelled() {
        let again = match me.deliver().await {
            // The server is back: what waited goes now.
            Ok(stats) => stats.released > 0,
            Err(e) => {
                tracing::error!(error = %e, "outbox pass failed");
                false
            }
        };
        if again {
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        if last_probe.elapsed() >= OUTBOX_PROBE {
            last_probe = tokio::time::Instant::now();
            let now = me.pipeline.clock.now();
            if let Err(e) = outbox::probe_waiting(&me.pipeline.store, now) {
                tracing::error!(error = %e, "outbox probe failed");
            }
        }
    }
}

/// The scheduler task: run the jobs that are due, then sleep until the
/// next one (at most a minute, so a changed wall clock is noticed).
async fn scheduler(
    p: Pipeline,
    shutdown: CancellationToken,
    wake_outbox: Arc<tokio::sync::Notify>,
) {
    while !shutdown.is_cancelled() {
        let now = p.clock.now();
        let p2 = p.clone();
        match tokio::task::spawn_blocking(move || crate::schedule::run_due(&p2, now)).await {
            Ok(Ok(reports)) => {
                if !reports.is_empty() {
                    if let Err(e) = p.store.flush().await {
                        tracing::error!(error = %e, "store flush after scheduled jobs failed");
                    }
                    if reports.iter().any(|r| r.queued > 0) {
                        wake_outbox.notify_one();
                    }
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "scheduled jobs failed"),
            Err(e) => tracing::error!(error = %e, "scheduler task failed"),
        }
        let now = p.clock.now();
        let wait = match crate::schedule::next_wake(&p, now) {
            Ok(Some(t)) => (t - now).to_std().unwrap_or(Duration::ZERO),
            _ => Duration::from_secs(60),
        }
        .clamp(Duration::from_millis(200), Duration::from_secs(60));
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// How often the outbox worker tries one waiting mail early while mail
/// waits out a transient failure (an SMTP outage ends within this of the
/// server coming back).
const OUTBOX_PROBE: Duration = Duration::from_secs(15);

/// Exponential backoff with jitter: 1 s, 2 s, 4 s … capped at 5 min, each
/// plus up to 25 % random.
pub fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(1u64 << failures.saturating_sub(1).min(9))
        .min(Duration::from_secs(300));
    let jitter = base.as_millis() as u64 / 4;
    base + Duration::from_millis(fastrand::u64(0..=jitter))
}

/// Open a daemon on the system clock.
pub fn open(config: Config) -> Result<Daemon, DaemonError> {
    Daemon::open(config, Arc::new(SystemClock))
}

/// Open a daemon on the system clock, waiting while another process holds
/// the store lock: a CLI command that ran before this daemon's control
/// socket existed opened the store itself and lets go when it ends. Fails at
/// once when a daemon already answers on the control socket. `Ok(None)`
/// when `shutdown` is cancelled while waiting.
pub async fn open_when_free(
    config: Config,
    shutdown: &CancellationToken,
) -> Result<Option<Daemon>, DaemonError> {
    let mut told = false;
    loop {
        if shutdown.is_cancelled() {
            return Ok(None);
        }
        match Daemon::open(config.clone(), Arc::new(SystemClock)) {
            Err(DaemonError::Store(StoreError::Locked(dir))) => {
                if let Ok(Some(_)) = control::call(&dir, &control::Request::Ping).await {
                    return Err(DaemonError::Store(StoreError::Locked(dir)));
                }
                if !told {
                    tracing::warn!(
                        data_dir = %dir.display(),
                        "the store is in use by another ticketd command; waiting for it to finish"
                    );
                    told = true;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            other => return other.map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) >= Duration::from_secs(1) && backoff(1) <= Duration::from_millis(1250));
        assert!(backoff(3) >= Duration::from_secs(4));
        assert!(backoff(30) <= Duration::from_secs(375));
        assert!(backoff(30) >= Duration::from_secs(300));
    }
}
