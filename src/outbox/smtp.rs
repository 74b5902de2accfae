//! SMTP delivery with lettre's SMTP client: long-lived connections (up to
//! the pool size, one mail at a time each), TLS with certificate checks
//! (implicit or STARTTLS; none only to loopback), optional PLAIN/LOGIN or
//! XOAUTH2 authentication. A 5xx reply is a permanent failure, everything
//! else (4xx, connection trouble, timeouts) transient. The message bytes are
//! sent as queued, so the Message-ID fixed at queue time is what the server
//! sees, on every attempt.
//!
//! Why not lettre's pooled `AsyncSmtpTransport`: its sockets keep Nagle's
//! algorithm on, and lettre writes the message and the closing `.` in two
//! writes, so every mail waited for the server's delayed ACK (≈ 40 ms on
//! Linux); and its pool sends a NOOP before every reuse. Here the socket has
//! `TCP_NODELAY`, an idle connection is tested with NOOP only after
//! [`TEST_AFTER_IDLE`], a connection found dead before anything was sent
//! on it is replaced once at once, and a refused mail is followed by `RSET`
//! so its connection stays usable.

use super::{SendError, Transport};
use crate::config::{Endpoint, TlsMode};
use crate::secrets::{Login, Secrets};
use crate::store::OutboxEntry;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// An idle connection older than this is tested with NOOP before reuse
/// (servers drop idle clients after a while: Postfix after 300 s).
pub const TEST_AFTER_IDLE: Duration = Duration::from_secs(10);

/// The body of a mail gets the configured timeout plus this much per MiB.
const BODY_TIME_PER_MIB: Duration = Duration::from_secs(10);

pub struct SmtpTransport {
    endpoint: Endpoint,
    pool_size: u32,
    secrets: Secrets,
    hello: ClientId,
    /// Connections not in use, with the time each was last used.
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

/// Where a transaction stopped.
enum Failed {
    /// The server refused (4xx/5xx) before it took the mail; the connection
    /// is usable after RSET.
    Refused(lettre::transport::smtp::Error),
    /// The server answered the mail data with 4xx/5xx; the transaction is
    /// over and the connection usable.
    RefusedData(lettre::transport::smtp::Error),
    /// The connection failed (I/O, protocol, timeout). `before_mail` says
    /// that nothing of this mail had been sent yet.
    Broken { error: String, before_mail: bool },
    /// This mail can never go (bad address, capability missing).
    Unsendable(String),
}

impl SmtpTransport {
    pub fn new(endpoint: Endpoint, pool_size: u32) -> Self {
        SmtpTransport {
            secrets: Secrets::new("outbound SMTP", endpoint.credentials.clone()),
            endpoint,
            pool_size,
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Connect, secure and log in once, then quit (`check-config --connect`).
    pub async fn probe(&self) -> Result<(), String> {
        match self.connect().await {
            Ok(mut conn) => {
                let _ = conn.quit().await;
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn pool_size(&self) -> usize {
        self.pool_size as usize
    }

    fn take_idle(&self) -> Option<(AsyncSmtpConnection, Instant)> {
        self.idle.lock().ok()?.pop()
    }

    fn put_idle(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.pool_size as usize {
                idle.push((conn, Instant::now()));
            }
        }
    }

    fn forget_idle(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    /// Open, secure and log in a new connection.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let ep = &self.endpoint;
        let t = ep.timeout.0;
        let transient = |what: &str, e: &dyn std::fmt::Display| {
            SendError::Transient(format!("{what} {}:{}: {e}", ep.host, ep.port))
        };
        let tcp = tokio::time::timeout(t, TcpStream::connect((ep.host.as_str(), ep.port)))
            .await
            .map_err(|_| transient("connect", &"timed out"))?
            .map_err(|e| transient("connect", &e))?;
        // The message and the closing dot go out in separate writes: with
        // Nagle on, the second waits for the server's delayed ACK.
        tcp.set_nodelay(true)
            .map_err(|e| transient("TCP_NODELAY on", &e))?;
        let mut conn = match ep.tls {
            TlsMode::None => timed(
                t,
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello),
            )
            .await
            .map_err(|e| transient("greeting from", &e))?,
            TlsMode::Implicit => {
                let config = crate::tls::client_config(ep.ca_file.as_deref())
                    .map_err(SendError::Transient)?;
                let name = crate::tls::server_name(&ep.host).map_err(SendError::Transient)?;
                let tls = tokio::time::timeout(
                    t,
                    tokio_rustls::TlsConnector::from(config).connect(name, tcp),
                )
                .await
                .map_err(|_| transient("TLS handshake with", &"timed out"))?
                .map_err(|e| transient("TLS handshake with", &e))?;
                timed(
                    t,
                    AsyncSmtpConnection::connect_with_transport(
                        Box::new(TlsTcp(Box::new(tls))),
                        &self.hello,
                    ),
                )
                .await
                .map_err(|e| transient("greeting from", &e))?
            }
            TlsMode::Starttls => {
                let mut conn = timed(
                    t,
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello),
                )
                .await
                .map_err(|e| transient("greeting from", &e))?;
                let params = self.tls_parameters()?;
                timed(t, conn.starttls(params, &self.hello))
                    .await
                    .map_err(|e| transient("STARTTLS with", &e))?;
                conn
            }
        };
        let (creds, mechs) = match self.secrets.login().await.map_err(SendError::Transient)? {
            Login::None => return Ok(conn),
            Login::Password { username, password } => (
                Credentials::new(username, password),
                vec![Mechanism::Plain, Mechanism::Login],
            ),
            Login::Xoauth2 { username, token } => {
                (Credentials::new(username, token), vec![Mechanism::Xoauth2])
            }
        };
        match timed2(t, conn.auth(&mechs, &creds)).await {
            Ok(_) => Ok(conn),
            Err(e) => {
                conn.abort().await;
                let e = match e {
                    Ok(e) => e,
                    Err(()) => return Err(transient("authentication with", &"timed out")),
                };
                if e.status().is_some_and(|c| c.to_string().starts_with("535")) {
                    // A rejected token or password: fresh credentials next
                    // time, and retry.
                    self.secrets.rejected();
                    self.forget_idle();
                    return Err(SendError::Transient(format!(
                        "authentication rejected: {e}"
                    )));
                }
                Err(transient("authentication with", &e))
            }
        }
    }

    fn tls_parameters(&self) -> Result<TlsParameters, SendError> {
        let ep = &self.endpoint;
        let mut b = TlsParameters::builder(ep.host.clone());
        if let Some(ca) = &ep.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                SendError::Transient(format!("cannot read CA file {}: {e}", ca.display()))
            })?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| SendError::Transient(format!("bad CA file {}: {e}", ca.display())))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls()
            .map_err(|e| SendError::Transient(format!("TLS setup: {e}")))
    }

    /// An idle connection (tested when it sat long), else a new one. The
    /// flag says whether it was reused.
    async fn connection(&self) -> Result<(AsyncSmtpConnection, bool), SendError> {
        while let Some((mut conn, since)) = self.take_idle() {
            if since.elapsed() < TEST_AFTER_IDLE {
                return Ok((conn, true));
            }
            if tokio::time::timeout(self.endpoint.timeout.0, conn.test_connected())
                .await
                .unwrap_or(false)
            {
                return Ok((conn, false));
            }
            conn.abort().await;
        }
        Ok((self.connect().await?, false))
    }

    /// MAIL, RCPT…, DATA and the mail on one connection.
    async fn transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        mail: &[u8],
    ) -> Result<lettre::transport::smtp::response::Response, Failed> {
        let t = self.endpoint.timeout.0;
        let mut params = Vec::new();
        let non_ascii = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
        if non_ascii {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err(Failed::Unsendable(
                    "non-ASCII address but the server does not offer SMTPUTF8".into(),
                ));
            }
            params.push(MailParameter::SmtpUtfEight);
        }
        if !mail.is_ascii() {
            if !conn.server_info().supports_feature(Extension::EightBitMime) {
                return Err(Failed::Unsendable(
                    "8-bit mail but the server does not offer 8BITMIME".into(),
                ));
            }
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let step = |r: Result<_, Result<lettre::transport::smtp::Error, ()>>, before_mail| match r {
            Ok(v) => Ok(v),
            Err(Ok(e)) if e.is_transient() || e.is_permanent() => Err(Failed::Refused(e)),
            Err(Ok(e)) => Err(Failed::Broken {
                error: e.to_string(),
                before_mail,
            }),
            Err(Err(())) => Err(Failed::Broken {
                error: format!("no answer within {} s", t.as_secs()),
                before_mail,
            }),
        };
        step(
            timed2(t, conn.command(Mail::new(envelope.from().cloned(), params))).await,
            true,
        )?;
        for to in envelope.to() {
            step(
                timed2(t, conn.command(Rcpt::new(to.clone(), vec![]))).await,
                false,
            )?;
        }
        step(timed2(t, conn.command(Data)).await, false)?;
        let mib = u32::try_from(mail.len() >> 20).unwrap_or(u32::MAX);
        let body_time = t.saturating_add(BODY_TIME_PER_MIB.saturating_mul(mib));
        match step(timed2(body_time, conn.message(mail)).await, false) {
            Err(Failed::Refused(e)) => Err(Failed::RefusedData(e)),
            other => other,
        }
    }
}

/// `fut` with a time limit, the timeout as a lettre-free error.
async fn timed<T>(
    t: Duration,
    fut: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(t, fut).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", t.as_secs())),
    }
}

/// `fut` with a time limit: `Err(Err(()))` when the time ran out.
async fn timed2<T>(
    t: Duration,
    fut: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, Result<lettre::transport::smtp::Error, ()>> {
    match tokio::time::timeout(t, fut).await {
        Ok(r) => r.map_err(Ok),
        Err(_) => Err(Err(())),
    }
}

fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    if e.is_permanent() {
        SendError::Permanent(e.to_string())
    } else {
        SendError::Transient(e.to_string())
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
        let envelope = Envelope::new(Some(from), to)
            .map_err(|e| SendError::Permanent(format!("bad envelope: {e}")))?;
        let mail = entry.mail.as_bytes();
        let (mut conn, mut reused) = self.connection().await?;
        loop {
            match self.transaction(&mut conn, &envelope, mail).await {
                Ok(resp) => {
                    self.put_idle(conn);
                    return Ok(format!(
                        "smtp {}:{} {}",
                        self.endpoint.host,
                        self.endpoint.port,
                        resp.message().collect::<Vec<_>>().join(" ")
                    ));
                }
                Err(Failed::Refused(e)) => {
                    // Undo the half-made transaction; keep the connection
                    // only if the server agrees.
                    let t = self.endpoint.timeout.0;
                    if timed(t, conn.command(Rset)).await.is_ok() {
                        self.put_idle(conn);
                    } else {
                        conn.abort().await;
                    }
                    return Err(classify(&e));
                }
                Err(Failed::RefusedData(e)) => {
                    self.put_idle(conn);
                    return Err(classify(&e));
                }
                Err(Failed::Unsendable(why)) => {
                    self.put_idle(conn);
                    return Err(SendError::Permanent(why));
                }
                Err(Failed::Broken { error, before_mail }) => {
                    conn.abort().await;
                    // A reused connection the server had closed while it sat
                    // idle: nothing of this mail went out, so one fresh
                    // connection may try it at once.
                    if reused && before_mail {
                        tracing::debug!(error = %error, "idle SMTP connection was closed; reconnecting");
                        conn = self.connect().await?;
                        reused = false;
                        continue;
                    }
                    return Err(SendError::Transient(format!(
                        "smtp {}:{}: {error}",
                        self.endpoint.host, self.endpoint.port
                    )));
                }
            }
        }
    }

    fn concurrency_hint(&self) -> usize {
        self.pool_size()
    }
}

/// A TLS stream (implicit TLS) in the shape lettre's client takes.
#[derive(Debug)]
struct TlsTcp(Box<tokio_rustls::client::TlsStream<TcpStream>>);

impl AsyncRead for TlsTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(self.0.as_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(self.0.as_mut()).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(self.0.as_mut()).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(self.0.as_mut()).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}
