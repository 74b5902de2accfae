//! The daemon: opens the store, builds sources, the pipeline and the
//! transport, then either drains everything once (`run --once`) or runs a
//! task per source, an outbox worker and the control socket until SIGINT or
//! SIGTERM.
//!
//! Shutdown (as in mini-redis): a broadcast channel tells every task to
//! stop; a task finishes the message in hand, the batch is flushed and
//! acked, and the daemon waits for every task before a last flush.

use crate::clock::{Clock, SystemClock};
use crate::config::{Config, SourceKind};
use crate::control;
use crate::outbox::{self, file::FileTransport, state::RetryPolicy, DeliveryStats};
use crate::pipeline::{IngestOptions, Pipeline, Report};
use crate::render::Templates;
use crate::source::maildir::MaildirSource;
use crate::store::{Store, StoreError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
}

/// Everything a running daemon holds.
pub struct Daemon {
    pub pipeline: Pipeline,
    transport: FileTransport,
    retry: RetryPolicy,
}

impl Daemon {
    /// Open the store (taking its lock) and build the parts.
    pub fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Daemon, DaemonError> {
        let templates = Templates::load(config.templates_dir.as_deref())?;
        let store = Store::open(&config.data_dir)?;
        let recovered = store.recover_outbox()?;
        if recovered > 0 {
            tracing::info!(
                entries = recovered,
                "outbox entries from an interrupted run re-queued"
            );
        }
        let transport = FileTransport::new(config.outbound.dir.clone());
        let pipeline = Pipeline::new(
            Arc::new(store),
            Arc::new(config),
            Arc::new(templates),
            clock,
        );
        Ok(Daemon {
            pipeline,
            transport,
            retry: RetryPolicy::default(),
        })
    }

    fn sources(&self) -> Result<(Vec<MaildirSource>, usize), DaemonError> {
        let mut seeded = 0;
        let mut out = Vec::new();
        for m in &self.pipeline.config.mailboxes {
            match m.source {
                SourceKind::Maildir => {
                    if m.demo_seed {
                        seeded += crate::demo::seed(&m.path).map_err(|e| {
                            DaemonError::Io(format!(
                                "cannot seed demo Maildir {}: {e}",
                                m.path.display()
                            ))
                        })?;
                    }
                    out.push(MaildirSource::open(&m.name, &m.path)?);
                }
            }
        }
        Ok((out, seeded))
    }

    /// Drain every source and the outbox once, then return.
    pub async fn run_once(&self) -> Result<RunSummary, DaemonError> {
        let (mut sources, seeded) = self.sources()?;
        let mut summary = RunSummary {
            seeded,
            ..RunSummary::default()
        };
        let batch = self.pipeline.config.daemon.batch_size;
        for src in &mut sources {
            let r = self
                .pipeline
                .drain(src, batch, IngestOptions::default(), &|| false)
                .await?;
            summary.report.merge(r);
        }
        summary.delivery = self.deliver().await?;
        Ok(summary)
    }

    async fn deliver(&self) -> Result<DeliveryStats, DaemonError> {
        Ok(outbox::deliver_due(
            &self.pipeline.store,
            &self.transport,
            self.pipeline.clock.as_ref(),
            &self.retry,
        )
        .await?)
    }

    /// Run until SIGINT/SIGTERM.
    pub async fn run_forever(self) -> Result<(), DaemonError> {
        let (sources, seeded) = self.sources()?;
        if seeded > 0 {
            tracing::info!(messages = seeded, "demo Maildir seeded");
        }
        let (shutdown_tx, _) = tokio::sync::broadcast::channel::<()>(4);
        let stop = Arc::new(AtomicBool::new(false));
        let wake_outbox = Arc::new(tokio::sync::Notify::new());
        let mut tasks = tokio::task::JoinSet::new();

        tasks.spawn({
            let p = self.pipeline.clone();
            let rx = shutdown_tx.subscribe();
            async move {
                if let Err(e) = control::serve(p, rx).await {
                    tracing::error!(error = %e, "control socket failed");
                }
            }
        });

        let poll = self.pipeline.config.daemon.poll_interval.0;
        let batch = self.pipeline.config.daemon.batch_size;
        for mut src in sources {
            let p = self.pipeline.clone();
            let mut rx = shutdown_tx.subscribe();
            let stop = stop.clone();
            let wake = wake_outbox.clone();
            tasks.spawn(async move {
                let mut backoff = poll;
                loop {
                    // Messages that failed last pass are tried again.
                    src.reset();
                    let stop_fn = || stop.load(Ordering::SeqCst);
                    match p.drain(&mut src, batch, IngestOptions::default(), &stop_fn).await {
                        Ok(r) => {
                            backoff = poll;
                            if r.acks_queued > 0 {
                                wake.notify_one();
                            }
                        }
                        Err(e) => {
                            backoff = (backoff * 2).min(Duration::from_secs(300));
                            tracing::error!(source = %crate::source::Source::name(&src), error = %e, retry_in = ?backoff, "source pass failed");
                        }
                    }
                    tokio::select! {
                        _ = rx.recv() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                }
            });
        }

        let me = Arc::new(self);
        tasks.spawn({
            let me = me.clone();
            let mut rx = shutdown_tx.subscribe();
            let wake = wake_outbox.clone();
            async move {
                loop {
                    if let Err(e) = me.deliver().await {
                        tracing::error!(error = %e, "outbox pass failed");
                    }
                    tokio::select! {
                        _ = rx.recv() => break,
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
            }
        });

        tracing::info!(data_dir = %me.pipeline.config.data_dir.display(), "ticketd running; SIGINT or SIGTERM stops it");
        wait_for_signal().await;
        tracing::info!("shutting down: finishing the messages in hand");
        stop.store(true, Ordering::SeqCst);
        let _ = shutdown_tx.send(());
        while let Some(res) = tasks.join_next().await {
            if let Err(e) = res {
                tracing::error!(error = %e, "task ended abnormally");
            }
        }
        me.pipeline.store.flush().await?;
        tracing::info!("stopped cleanly");
        Ok(())
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Open a daemon on the system clock.
pub fn open(config: Config) -> Result<Daemon, DaemonError> {
    Daemon::open(config, Arc::new(SystemClock))
}
