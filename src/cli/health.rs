//! `ticketd health`: ask the running daemon over its control socket for the
//! evaluation `GET /healthz` serves ([`crate::observe::health::Report`]),
//! for a container's `HEALTHCHECK` or a monitoring script.
//!
//! Exit status: 0 healthy; 1 for everything else (failing parts, no daemon
//! answering, an unreadable configuration, no answer within
//! [`ANSWER_WAIT`]), with the reason printed. Never 2, which Docker
//! reserves in health checks.

use super::CliError;
use crate::config::Config;
use crate::control::{self, Request};
use crate::observe::health::Report;
use std::path::Path;
use std::time::Duration;

/// How long to wait for the daemon's answer (a wedged daemon is unhealthy).
pub const ANSWER_WAIT: Duration = Duration::from_secs(10);

fn unhealthy(message: String) -> CliError {
    CliError { message, code: 1 }
}

/// Run `ticketd health` with the configuration at `config_path` (`None`:
/// the embedded demo).
pub async fn run(config_path: Option<&Path>) -> Result<(), CliError> {
    let config = Config::load(config_path).map_err(|e| unhealthy(e.to_string()))?;
    let answer = tokio::time::timeout(
        ANSWER_WAIT,
        control::call(&config.data_dir, &Request::Health),
    )
    .await;
    let resp = match answer {
        Err(_) => {
            return Err(unhealthy(format!(
                "unhealthy: the daemon did not answer within {} s",
                ANSWER_WAIT.as_secs()
            )))
        }
        Ok(Err(e)) => {
            return Err(unhealthy(format!(
                "not running: cannot reach the control socket in {}: {e}",
                config.data_dir.display()
            )))
        }
        Ok(Ok(None)) => {
            return Err(unhealthy(format!(
                "not running: no daemon answers on {}",
                control::socket_path(&config.data_dir).display()
            )))
        }
        Ok(Ok(Some(r))) => r,
    };
    if !resp.ok {
        return Err(unhealthy(format!(
            "unhealthy: {}",
            resp.error
                .unwrap_or_else(|| "the daemon refused the request".into())
        )));
    }
    let report: Report = serde_json::from_value(resp.result.unwrap_or_default())
        .map_err(|e| unhealthy(format!("unhealthy: unexpected answer from the daemon: {e}")))?;
    if report.ok() {
        println!("healthy");
        return Ok(());
    }
    for (part, reason) in &report.failing {
        println!("{part}: {reason}");
    }
    Err(unhealthy(format!(
        "unhealthy: {} failing ({})",
        report.failing.len(),
        report
            .failing
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    )))
}
