//! Shutdown that cannot be lost: one [`CancellationToken`] for the whole
//! daemon, cancelled by the first SIGINT or SIGTERM.
//!
//! Why a token and not a broadcast channel: a broadcast sent before a task
//! has subscribed is lost to that task, so a signal in the first moments
//! after start used to go unheard (and the daemon then kept the store lock
//! and ignored later signals). A token *stays* cancelled: a task that looks
//! late still sees it.
//!
//! [`install`] is called first thing by `ticketd run`, before the
//! configuration is read or the store opened; the signal streams are
//! registered synchronously inside it, so a signal that arrives at any later
//! moment is kept by tokio until the watcher reads it. A second signal
//! during shutdown ends the process at once (status 128 + signal number):
//! the store is crash-safe, a message is taken from its source only after it
//! is flushed, and an operator pressing Ctrl-C twice wants out.

pub use tokio_util::sync::CancellationToken;

/// Register SIGINT and SIGTERM and return the token they cancel. Must be
/// called inside the tokio runtime.
pub fn install() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let signals = Signals::register()?;
    tokio::spawn(watch_signals(signals, token.clone()));
    Ok(token)
}

/// The first signal cancels `token`; the second exits the process.
async fn watch_signals(mut signals: Signals, token: CancellationToken) {
    let (name, _) = signals.next().await;
    tracing::info!(
        signal = name,
        "shutting down: finishing the messages in hand (a second signal stops at once)"
    );
    token.cancel();
    let (name, number) = signals.next().await;
    tracing::warn!(signal = name, "second signal: exiting now");
    std::process::exit(128 + number);
}

#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn register() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next signal's name and number (waits forever if the streams end).
    async fn next(&mut self) -> (&'static str, i32) {
        tokio::select! {
            Some(()) = self.term.recv() => ("SIGTERM", 15),
            Some(()) = self.int.recv() => ("SIGINT", 2),
            else => std::future::pending().await,
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn register() -> std::io::Result<Signals> {
        Ok(Signals)
    }

    async fn next(&mut self) -> (&'static str, i32) {
        match tokio::signal::ctrl_c().await {
            Ok(()) => ("Ctrl-C", 2),
            Err(_) => std::future::pending().await,
        }
    }
}
