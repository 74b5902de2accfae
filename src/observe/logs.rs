//! Logging: the subscriber (text or JSON lines, `log_format`) and
//! [`Repeats`], which folds a failure repeated identically into one line
//! and a count (a mailbox down for an hour writes two lines, not 700).

use crate::config::LogFormat;

/// Install the global subscriber: `RUST_LOG` else `default_level`, to
/// stderr, as text (ANSI on a terminal) or one JSON object a line (with
/// the current spans: mailbox and message ids, never addresses).
pub fn init(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => b
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

/// What to do with one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// A new failure: log it (`ended` repeats of the one before it were
    /// not logged).
    Log { ended: u32 },
    /// The same as the last: counted, not logged.
    Quiet,
    /// The same again, `count` times so far: log it once more with the
    /// count (every `EVERY` repeats, so a long outage is not silent).
    Again { count: u32 },
}

/// Identical failures in a row, for one task.
#[derive(Debug, Default)]
pub struct Repeats {
    last: Option<String>,
    count: u32,
}

impl Repeats {
    /// Re-log a repeated failure every this many times.
    pub const EVERY: u32 = 100;

    /// A failure with this text happened.
    pub fn failed(&mut self, text: &str) -> Fold {
        if self.last.as_deref() == Some(text) {
            self.count = self.count.saturating_add(1);
            if self.count.is_multiple_of(Self::EVERY) {
                return Fold::Again { count: self.count };
            }
            return Fold::Quiet;
        }
        let ended = self.count;
        self.last = Some(text.to_string());
        self.count = 0;
        Fold::Log { ended }
    }

    /// It worked: how many repeats of the last failure were not logged
    /// (None if nothing was failing).
    pub fn recovered(&mut self) -> Option<u32> {
        self.last.take()?;
        Some(std::mem::take(&mut self.count))
    }
}

/// Log a mailbox pass that failed, as a sentence with addresses masked,
/// folding identical repeats.
pub fn log_failure(r: &mut Repeats, source: &str, error: &str) {
    let text = crate::logmask::readable_error(error);
    match r.failed(&text) {
        Fold::Log { ended: 0 } => {
            tracing::error!(source, error = %text, "mailbox pass failed; retrying with backoff")
        }
        Fold::Log { ended } => tracing::error!(
            source,
            error = %text,
            "mailbox pass failed (the failure before repeated {ended} more times); retrying with backoff"
        ),
        Fold::Again { count } => tracing::error!(
            source,
            error = %text,
            "mailbox pass still failing: the same failure {count} times in a row"
        ),
        Fold::Quiet => {}
    }
}

/// Log that a mailbox works again after failures.
pub fn log_recovery(r: &mut Repeats, source: &str) {
    if let Some(n) = r.recovered() {
        tracing::info!(
            source,
            "mailbox reached again (the last failure repeated {n} more times)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_failures_are_folded_with_a_count() {
        let mut r = Repeats::default();
        assert_eq!(r.recovered(), None);
        assert_eq!(r.failed("refused"), Fold::Log { ended: 0 });
        assert_eq!(r.failed("refused"), Fold::Quiet);
        assert_eq!(r.failed("refused"), Fold::Quiet);
        assert_eq!(r.failed("timed out"), Fold::Log { ended: 2 });
        for _ in 1..Repeats::EVERY {
            assert_eq!(r.failed("timed out"), Fold::Quiet);
        }
        assert_eq!(
            r.failed("timed out"),
            Fold::Again {
                count: Repeats::EVERY
            }
        );
        assert_eq!(r.recovered(), Some(Repeats::EVERY));
        assert_eq!(r.recovered(), None);
    }
}
