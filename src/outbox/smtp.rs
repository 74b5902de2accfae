//! SMTP delivery with lettre: pooled connections, TLS with certificate
//! checks (implicit or STARTTLS; none only to loopback), optional
//! PLAIN/LOGIN or XOAUTH2 authentication. A 5xx reply is a permanent
//! failure, everything else (4xx, connection trouble, timeouts) transient.
//! The message bytes are sent as queued, so the Message-ID fixed at queue
//! time is what the server sees, on every attempt.

use super::{SendError, Transport};
use crate::config::{Endpoint, TlsMode};
use crate::secrets::{Login, Secrets};
use crate::store::OutboxEntry;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::sync::Arc;
use tokio::sync::Mutex;

pub struct SmtpTransport {
    endpoint: Endpoint,
    pool_size: u32,
    secrets: Secrets,
    /// Built on first use and rebuilt after an authentication failure
    /// (a fresh XOAUTH2 token).
    inner: Mutex<Option<Arc<AsyncSmtpTransport<Tokio1Executor>>>>,
}

impl SmtpTransport {
    pub fn new(endpoint: Endpoint, pool_size: u32) -> Self {
        SmtpTransport {
            secrets: Secrets::new("outbound SMTP", endpoint.credentials.clone()),
            endpoint,
            pool_size,
            inner: Mutex::new(None),
        }
    }

    pub fn pool_size(&self) -> usize {
        self.pool_size as usize
    }

    async fn transport(&self) -> Result<Arc<AsyncSmtpTransport<Tokio1Executor>>, SendError> {
        let mut guard = self.inner.lock().await;
        if let Some(t) = guard.as_ref() {
            return Ok(t.clone());
        }
        let ep = &self.endpoint;
        let tls = match ep.tls {
            TlsMode::None => Tls::None,
            mode => {
                let mut b = TlsParameters::builder(ep.host.clone());
                if let Some(ca) = &ep.ca_file {
                    let pem = std::fs::read(ca).map_err(|e| {
                        SendError::Transient(format!("cannot read CA file {}: {e}", ca.display()))
                    })?;
                    let cert = Certificate::from_pem(&pem).map_err(|e| {
                        SendError::Transient(format!("bad CA file {}: {e}", ca.display()))
                    })?;
                    b = b.add_root_certificate(cert);
                }
                let params = b
                    .build_rustls()
                    .map_err(|e| SendError::Transient(format!("TLS setup: {e}")))?;
                if mode == TlsMode::Implicit {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(ep.host.clone())
            .port(ep.port)
            .tls(tls)
            .timeout(Some(ep.timeout.0))
            .pool_config(PoolConfig::new().max_size(self.pool_size));
        match self.secrets.login().await.map_err(SendError::Transient)? {
            Login::None => {}
            Login::Password { username, password } => {
                builder = builder
                    .credentials(Credentials::new(username, password))
                    .authentication(vec![Mechanism::Plain, Mechanism::Login]);
            }
            Login::Xoauth2 { username, token } => {
                builder = builder
                    .credentials(Credentials::new(username, token))
                    .authentication(vec![Mechanism::Xoauth2]);
            }
        }
        let t = Arc::new(builder.build());
        *guard = Some(t.clone());
        Ok(t)
    }
}

impl Transport for SmtpTransport {
    async fn send(&self, entry: &OutboxEntry) -> Result<String, SendError> {
        let from = entry
            .from
            .parse()
            .map_err(|e| SendError::Permanent(format!("bad sender {}: {e}", entry.from)))?;
        let to = entry
            .recipients
            .iter()
            .map(|r| {
                r.parse()
                    .map_err(|e| SendError::Permanent(format!("bad recipient {r}: {e}")))
            })
            .collect::<Result<Vec<lettre::Address>, _>>()?;
        let envelope = lettre::address::Envelope::new(Some(from), to)
            .map_err(|e| SendError::Permanent(format!("bad envelope: {e}")))?;
        let transport = self.transport().await?;
        match transport.send_raw(&envelope, entry.mail.as_bytes()).await {
            Ok(resp) => Ok(format!(
                "smtp {}:{} {}",
                self.endpoint.host,
                self.endpoint.port,
                resp.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) => {
                let auth_failed = e.status().is_some_and(|c| c.to_string().starts_with("535"));
                if auth_failed {
                    // A rejected token or password: get fresh credentials and
                    // a fresh connection pool next time, and retry.
                    self.secrets.rejected();
                    *self.inner.lock().await = None;
                    return Err(SendError::Transient(format!(
                        "authentication rejected: {e}"
                    )));
                }
                if e.is_permanent() {
                    Err(SendError::Permanent(e.to_string()))
                } else {
                    if e.is_tls() || e.is_transport_shutdown() {
                        *self.inner.lock().await = None;
                    }
                    Err(SendError::Transient(e.to_string()))
                }
            }
        }
    }
}
