//! An IMAP source (async-imap on tokio, rustls): connect with timeouts, TLS
//! (implicit, STARTTLS, or none on loopback only), LOGIN or XOAUTH2, SELECT
//! the folder, then hand out batches of messages not yet taken and take them
//! (MOVE, COPY+EXPUNGE, or \Seen plus a keyword) only when acked — after
//! their cases are flushed. Never deletes.
//!
//! Exactly-once rests on three things: the server state (a taken message
//! is moved or flagged, so the search for untaken mail no longer finds it),
//! the cursor (UIDVALIDITY and the last taken UID, written in the ingest
//! transaction as the envelope key `UIDVALIDITY:UID`), and the store's
//! Message-ID/content-hash dedupe, which makes any rescan (a UIDVALIDITY
//! change, a crash between flush and move) harmless.
//!
//! Push: [`ImapSource::wait`] sits in IDLE (re-issued before 29 minutes)
//! and returns on any server data or at the reconciliation interval; the
//! daemon then drains with a fresh `UID SEARCH`, so a lost notification
//! never strands a message. Without IDLE it sleeps the poll interval.

use super::{Envelope, Fetched, Source, SourceError};
use crate::config::{AfterTake, ImapSettings, TlsMode};
use crate::secrets::{xoauth2_response, Login, Secrets};
use async_imap::{Client, Session};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use std::collections::{BTreeMap, HashSet};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// IDLE is re-issued before the 30-minute limit of RFC 2177.
const IDLE_MAX: Duration = Duration::from_secs(28 * 60);

/// Connection state other parts (metrics, `/healthz`) can read.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Health {
    pub connected: bool,
    pub last_sync: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub uidvalidity: Option<u32>,
}

/// Plain or TLS TCP stream.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Plain(_) => "Stream::Plain",
            Stream::Tls(_) => "Stream::Tls",
        })
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

struct XOAuth2 {
    response: String,
    sent: bool,
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = String;
    fn process(&mut self, _challenge: &[u8]) -> String {
        // First the token; after a failure the server sends an error
        // challenge that must be answered with an empty line.
        if self.sent {
            String::new()
        } else {
            self.sent = true;
            self.response.clone()
        }
    }
}

pub struct ImapSource {
    name: String,
    s: ImapSettings,
    secrets: Secrets,
    session: Option<Session<Stream>>,
    /// A second session that moves taken mail while `session` fetches
    /// more: opened only while a backlog is drained (see
    /// [`Source::ack_and_fetch`]), closed when the source goes idle.
    mover: Option<Session<Stream>>,
    /// The mover took messages since the main session last synced: it
    /// may still list them until a NOOP brings their expunges.
    moved_elsewhere: bool,
    /// A second session could not be had (a server's connection limit):
    /// not tried again; everything runs on the main session.
    mover_refused: bool,
    has_idle: bool,
    has_move: bool,
    has_uidplus: bool,
    uidvalidity: Option<u32>,
    /// What taking a message does on this server: the configured action,
    /// or flagging where the server can neither MOVE nor UID EXPUNGE (a
    /// plain EXPUNGE could remove other people's deleted mail). The search
    /// for untaken mail follows from it.
    after: AfterTake,
    /// UIDVALIDITY of the last run, from the cursor (to log a change).
    known_uidvalidity: Option<u32>,
    folder_checked: bool,
    in_flight: HashSet<u32>,
    /// Bytes of raw mail one fetch hands out at most
    /// ([`Source::set_fetch_bytes`]).
    fetch_bytes: u64,
    health: Arc<Mutex<Health>>,
}

/// An error as a sentence (a refused command reads as what the server
/// said, not as Rust Debug text), with addresses masked.
/// What a failed LOGIN/AUTHENTICATE means: `(context for the log, whether
/// the server refused the credentials)`. A connection that drops during
/// login is not a refusal: Dovecot does that when its `imap` service is at
/// `process_limit` (default 100 with `default_process_limit`) or the user
/// is at `mail_max_userip_connections`, and the log has to say so instead
/// of sending the operator to check a password that is right.
fn login_failure(e: &async_imap::error::Error) -> (&'static str, bool) {
    use async_imap::error::Error as E;
    match e {
        E::ConnectionLost | E::Io(_) => (
            "login failed: the server closed the connection during login, \
             not a credentials refusal (is the server at its process or connection limit? \
             Dovecot: default_process_limit, mail_max_userip_connections)",
            false,
        ),
        _ => ("login rejected", true),
    }
}

fn err(name: &str, context: &str, e: impl std::fmt::Display) -> SourceError {
    let e = crate::logmask::readable_error(&e.to_string());
    SourceError::Other(format!("{name}: {context}: {e}"))
}

impl ImapSource {
    /// `cursor` is the stored cursor (JSON with `last_key` =
    /// `UIDVALIDITY:UID`), used to notice a UIDVALIDITY change.
    pub fn new(name: &str, settings: ImapSettings, cursor: Option<&[u8]>) -> Self {
        let known_uidvalidity = cursor
            .and_then(|c| serde_json::from_slice::<serde_json::Value>(c).ok())
            .and_then(|v| v["last_key"].as_str().map(str::to_string))
            .and_then(|k| k.split(':').next().and_then(|v| v.parse().ok()));
        ImapSource {
            name: name.to_string(),
            secrets: Secrets::new(
                &format!("mailbox {name}"),
                settings.endpoint.credentials.clone(),
            ),
            after: settings.after.clone(),
            s: settings,
            session: None,
            mover: None,
            moved_elsewhere: false,
            mover_refused: false,
            has_idle: false,
            has_move: false,
            has_uidplus: false,
            uidvalidity: None,
            known_uidvalidity,
            folder_checked: false,
            in_flight: HashSet::new(),
            fetch_bytes: u64::MAX,
            health: Arc::new(Mutex::new(Health::default())),
        }
    }

    /// Connect, log in and select the folder now, rather than on the first
    /// fetch (the mail I/O benchmark times the connection apart from the
    /// ingest).
    pub async fn connect_now(&mut self) -> Result<(), SourceError> {
        self.ensure().await
    }

    /// Whether a second session was refused (a provider's connection
    /// limit), so that everything now runs on the main session.
    pub fn second_session_refused(&self) -> bool {
        self.mover_refused
    }

    pub fn health(&self) -> Arc<Mutex<Health>> {
        self.health.clone()
    }

    fn set_health(&self, f: impl FnOnce(&mut Health)) {
        if let Ok(mut h) = self.health.lock() {
            f(&mut h);
        }
    }

    fn timeout(&self) -> Duration {
        self.s.endpoint.timeout.0
    }

    async fn within<T, E: std::fmt::Display>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(self.timeout(), fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(err(&self.name, what, e)),
            Err(_) => Err(err(
                &self.name,
                what,
                format!("timed out after {:?}", self.timeout()),
            )),
        }
    }

    /// Forget the session after an error; the next call reconnects.
    fn drop_session(&mut self, e: &SourceError) {
        self.session = None;
        self.mover = None;
        self.in_flight.clear();
        let msg = e.to_string();
        self.set_health(|h| {
            h.connected = false;
            h.last_error = Some(msg);
        });
    }

    /// Connect, secure, log in and SELECT the folder: a new session and
    /// the server's capabilities and UIDVALIDITY.
    async fn open_session(
        &mut self,
    ) -> Result<
        (
            Session<Stream>,
            async_imap::types::Capabilities,
            Option<u32>,
        ),
        SourceError,
    > {
        let ep = self.s.endpoint.clone();
        let tcp = self
            .within("connect", TcpStream::connect((ep.host.as_str(), ep.port)))
            .await?;
        let _ = tcp.set_nodelay(true);
        let tls_wrap = |tcp: TcpStream| async {
            let config = crate::tls::client_config(ep.ca_file.as_deref())
                .map_err(|e| err(&self.name, "TLS", e))?;
            let name = crate::tls::server_name(&ep.host).map_err(|e| err(&self.name, "TLS", e))?;
            let connector = tokio_rustls::TlsConnector::from(config);
            self.within("TLS handshake", connector.connect(name, tcp))
                .await
        };
        let client = match ep.tls {
            TlsMode::Implicit => {
                let tls = tls_wrap(tcp).await?;
                let mut c = Client::new(Stream::Tls(Box::new(tls)));
                self.within("greeting", async { c.read_response().await.map(|_| ()) })
                    .await?;
                c
            }
            TlsMode::None => {
                let mut c = Client::new(Stream::Plain(tcp));
                self.within("greeting", async { c.read_response().await.map(|_| ()) })
                    .await?;
                c
            }
            TlsMode::Starttls => {
                let mut c = Client::new(Stream::Plain(tcp));
                self.within("greeting", async { c.read_response().await.map(|_| ()) })
                    .await?;
                self.within("STARTTLS", c.run_command_and_check_ok("STARTTLS", None))
                    .await?;
                let Stream::Plain(tcp) = c.into_inner() else {
                    return Err(err(&self.name, "STARTTLS", "unexpected stream state"));
                };
                // No plaintext fallback: a failed handshake is an error.
                let tls = tls_wrap(tcp).await?;
                Client::new(Stream::Tls(Box::new(tls)))
            }
        };
        let login = self.secrets.login().await.map_err(SourceError::Other)?;
        let auth = match login {
            Login::Password { username, password } => {
                tokio::time::timeout(self.timeout(), client.login(username, password)).await
            }
            Login::Xoauth2 { username, token } => {
                let auth = XOAuth2 {
                    response: xoauth2_response(&username, &token),
                    sent: false,
                };
                tokio::time::timeout(self.timeout(), client.authenticate("XOAUTH2", auth)).await
            }
            Login::None => return Err(err(&self.name, "login", "no credentials configured")),
        };
        let mut session = match auth {
            Ok(Ok(s)) => s,
            Ok(Err((e, _))) => {
                let (context, refused) = login_failure(&e);
                if refused {
                    self.secrets.rejected();
                }
                return Err(err(&self.name, context, e));
            }
            Err(_) => return Err(err(&self.name, "login", "timed out")),
        };
        let caps = self.within("CAPABILITY", session.capabilities()).await?;
        let folder = self.s.folder.clone();
        let mb = self.within("SELECT", session.select(&folder)).await?;
        Ok((session, caps, mb.uid_validity))
    }

    async fn connect(&mut self) -> Result<(), SourceError> {
        let (session, caps, uid_validity) = self.open_session().await?;
        self.has_idle = caps.has_str("IDLE");
        self.has_move = caps.has_str("MOVE");
        self.has_uidplus = caps.has_str("UIDPLUS");
        self.after = match &self.s.after {
            AfterTake::Move(_) if !self.has_move && !self.has_uidplus => {
                tracing::warn!(mailbox = %self.name, "server has neither MOVE nor UIDPLUS: taken mail is flagged $TicketdTaken instead of moved");
                AfterTake::Flag("$TicketdTaken".into())
            }
            other => other.clone(),
        };
        if let (Some(old), Some(new)) = (self.known_uidvalidity, uid_validity) {
            if old != new {
                tracing::warn!(mailbox = %self.name, old, new, "UIDVALIDITY changed: rescanning; dedupe keeps cases single");
            }
        }
        self.uidvalidity = uid_validity;
        self.known_uidvalidity = uid_validity;
        self.session = Some(session);
        if !self.folder_checked {
            self.ensure_target_folder().await?;
            self.folder_checked = true;
        }
        let v = self.uidvalidity;
        self.set_health(|h| {
            h.connected = true;
            h.uidvalidity = v;
            h.last_error = None;
        });
        tracing::info!(mailbox = %self.name, idle = self.has_idle, r#move = self.has_move, "IMAP connected");
        Ok(())
    }

    /// Create the `move` folder when it is missing.
    async fn ensure_target_folder(&mut self) -> Result<(), SourceError> {
        let AfterTake::Move(folder) = self.after.clone() else {
            return Ok(());
        };
        self.ensure_folder(&folder, "created folder for taken mail")
            .await
    }

    /// Erasure and retention (the one place ticketd deletes on a server):
    /// in the folder taken mail is moved into (or, where taken mail is
    /// only flagged, the source folder's flagged mail) and in the
    /// quarantine folder, delete the messages whose Message-ID is one of
    /// `message_ids` or whose From is one of `from` (exact address, checked
    /// on the fetched header after the server's substring search). With
    /// `dry_run`, only count them. Returns how many matched. Runs on a
    /// session of its own.
    pub async fn delete_taken(
        &mut self,
        message_ids: &[String],
        from: &[String],
        dry_run: bool,
    ) -> Result<usize, SourceError> {
        let (mut session, caps, _) = self.open_session().await?;
        let moved = caps.has_str("MOVE") || caps.has_str("UIDPLUS");
        let mut folders = vec![match &self.s.after {
            AfterTake::Move(f) if moved => (f.clone(), None),
            AfterTake::Move(_) => (self.s.folder.clone(), Some("$TicketdTaken".to_string())),
            AfterTake::Flag(kw) => (self.s.folder.clone(), Some(kw.clone())),
        }];
        if moved && folders.iter().all(|(f, _)| f != &self.s.quarantine) {
            folders.push((self.s.quarantine.clone(), None));
        }
        let mut n = 0;
        let mut r = Ok(());
        for (folder, keyword) in &folders {
            match self
                .delete_on(
                    &mut session,
                    &caps,
                    folder,
                    keyword.as_deref(),
                    message_ids,
                    from,
                    dry_run,
                )
                .await
            {
                Ok(k) => n += k,
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        let _ = tokio::time::timeout(self.timeout(), session.logout()).await;
        r.map(|()| n)
    }

    /// [`ImapSource::delete_taken`] in one folder (only the messages
    /// with `keyword`, when given).
    #[allow(clippy::too_many_arguments)]
    async fn delete_on(
        &self,
        session: &mut Session<Stream>,
        caps: &async_imap::types::Capabilities,
        folder: &str,
        flagged: Option<&str>,
        message_ids: &[String],
        from: &[String],
        dry_run: bool,
    ) -> Result<usize, SourceError> {
        let (name, t) = (self.name.as_str(), self.timeout());
        let has_uidplus = caps.has_str("UIDPLUS");
        match tokio::time::timeout(t, session.select(folder)).await {
            Ok(Ok(_)) => {}
            // No such folder: nothing was ever moved there.
            Ok(Err(_)) => return Ok(0),
            Err(_) => return Err(err(name, "SELECT", "timed out")),
        }
        let quote = |v: &str| -> Option<String> {
            if v.is_empty() || v.chars().any(|c| c.is_control() || !c.is_ascii()) {
                return None;
            }
            Some(format!(
                "\"{}\"",
                v.replace('\\', "\\\\").replace('"', "\\\"")
            ))
        };
        let keyword = flagged.map(|k| format!("KEYWORD {k} ")).unwrap_or_default();
        let mut criteria = Vec::new();
        for id in message_ids {
            let bare = id.trim().trim_start_matches('<').trim_end_matches('>');
            if let Some(q) = quote(&format!("<{bare}>")) {
                criteria.push(format!("{keyword}HEADER Message-ID {q}"));
            }
        }
        for a in from {
            if let Some(q) = quote(a.trim()) {
                criteria.push(format!("{keyword}FROM {q}"));
            }
        }
        let mut found: HashSet<u32> = HashSet::new();
        for c in &criteria {
            found.extend(timed(name, "UID SEARCH", t, session.uid_search(c)).await?);
        }
        if found.is_empty() {
            return Ok(0);
        }
        let mut uids: Vec<u32> = found.into_iter().collect();
        uids.sort_unstable();
        // The server matched substrings: keep only exact matches.
        let want_ids: HashSet<String> = message_ids
            .iter()
            .map(|i| {
                i.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_ascii_lowercase()
            })
            .collect();
        let want_from: HashSet<String> = from.iter().map(|a| a.trim().to_lowercase()).collect();
        let stream = timed(
            name,
            "UID FETCH headers",
            t,
            session.uid_fetch(
                uid_set(&uids),
                "(UID BODY.PEEK[HEADER.FIELDS (FROM MESSAGE-ID)])",
            ),
        )
        .await?;
        let fetched: Vec<_> =
            timed(name, "UID FETCH headers", t, stream.try_collect::<Vec<_>>()).await?;
        let mut exact = Vec::new();
        for f in &fetched {
            let (Some(uid), Some(h)) = (f.uid, f.header().or_else(|| f.body())) else {
                continue;
            };
            let Ok(p) = crate::mail::parse(h, h.len()) else {
                continue;
            };
            let by_id = p
                .message_id
                .as_ref()
                .is_some_and(|i| want_ids.contains(&i.to_ascii_lowercase()));
            let by_from = p
                .from
                .as_ref()
                .is_some_and(|a| want_from.contains(&a.address.to_lowercase()));
            if by_id || by_from {
                exact.push(uid);
            }
        }
        exact.sort_unstable();
        if dry_run || exact.is_empty() {
            return Ok(exact.len());
        }
        let set = uid_set(&exact);
        store_flags(name, t, session, &set, "\\Deleted").await?;
        if has_uidplus {
            let s = timed(name, "UID EXPUNGE", t, session.uid_expunge(&set)).await?;
            timed(name, "UID EXPUNGE", t, s.try_collect::<Vec<_>>()).await?;
        } else {
            // Without UIDPLUS only a plain EXPUNGE exists; it also removes
            // whatever else is marked deleted in this folder.
            let s = timed(name, "EXPUNGE", t, session.expunge()).await?;
            timed(name, "EXPUNGE", t, s.try_collect::<Vec<_>>()).await?;
        }
        Ok(exact.len())
    }

    /// Create `folder` when it is missing.
    async fn ensure_folder(&mut self, folder: &str, created: &str) -> Result<(), SourceError> {
        let timeout = self.timeout();
        let name = self.name.clone();
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        let exists = match tokio::time::timeout(timeout, session.list(None, Some(folder))).await {
            Ok(Ok(stream)) => {
                let names: Vec<_> = stream
                    .try_collect()
                    .await
                    .map_err(|e| err(&name, "LIST", e))?;
                !names.is_empty()
            }
            Ok(Err(e)) => return Err(err(&name, "LIST", e)),
            Err(_) => return Err(err(&name, "LIST", "timed out")),
        };
        if !exists {
            match tokio::time::timeout(timeout, session.create(folder)).await {
                Ok(Ok(())) => {
                    tracing::info!(mailbox = %name, folder = %folder, "{created}")
                }
                Ok(Err(e)) => return Err(err(&name, "CREATE", e)),
                Err(_) => return Err(err(&name, "CREATE", "timed out")),
            }
        }
        Ok(())
    }

    /// Move messages that keep failing to the quarantine folder (or, on a
    /// server without MOVE and UIDPLUS, flag them `$TicketdQuarantine` and
    /// taken), so the mail behind them flows.
    async fn quarantine_inner(&mut self, envs: &[Envelope]) -> Result<(), SourceError> {
        let uids = self.uids_of(envs);
        if uids.is_empty() {
            return Ok(());
        }
        self.ensure().await?;
        let mut ctx = self.ctx();
        if ctx.has_move || ctx.has_uidplus {
            let folder = self.s.quarantine.clone();
            self.ensure_folder(&folder, "created quarantine folder")
                .await?;
            ctx.after = AfterTake::Move(folder);
        } else {
            let kw = match &self.after {
                AfterTake::Flag(kw) => format!("$TicketdQuarantine {kw}"),
                AfterTake::Move(_) => "$TicketdQuarantine".to_string(),
            };
            ctx.after = AfterTake::Flag(kw);
        }
        let session = self
            .session
            .as_mut()
            .ok_or_else(|| err(&ctx.name, "quarantine", "not connected"))?;
        take_on(session, &ctx, &uid_set(&uids)).await?;
        self.taken(&uids);
        Ok(())
    }

    async fn ensure(&mut self) -> Result<(), SourceError> {
        if self.session.is_none() {
            if let Err(e) = self.connect().await {
                self.drop_session(&e);
                return Err(e);
            }
        }
        Ok(())
    }

    /// What a fetch or a move needs besides its session.
    fn ctx(&self) -> Ctx {
        Ctx {
            name: self.name.clone(),
            timeout: self.timeout(),
            after: self.after.clone(),
            has_move: self.has_move,
            has_uidplus: self.has_uidplus,
            limit: self.s.max_message_bytes,
            fetch_batch: self.s.fetch_batch,
            fetch_bytes: self.fetch_bytes,
            uidvalidity: self.uidvalidity.unwrap_or(0),
        }
    }

    async fn fetch_inner(&mut self, max: usize) -> Result<Fetched, SourceError> {
        self.ensure().await?;
        let ctx = self.ctx();
        let session = self
            .session
            .as_mut()
            .ok_or_else(|| err(&ctx.name, "fetch", "not connected"))?;
        let sync = std::mem::take(&mut self.moved_elsewhere);
        let (out, uids) = fetch_on(session, &ctx, &self.in_flight, max, sync).await?;
        self.fetched(uids);
        Ok(out)
    }

    /// Messages handed out: not offered again until taken or reset.
    fn fetched(&mut self, uids: Vec<u32>) {
        self.in_flight.extend(uids);
        self.set_health(|h| h.last_sync = Some(Utc::now()));
    }

    /// The UIDs of `taken` in the folder as it is now (none after a
    /// UIDVALIDITY change: those UIDs name other messages; the rescan finds
    /// them again and dedupe takes them).
    fn uids_of(&self, taken: &[Envelope]) -> Vec<u32> {
        let current = self.uidvalidity.unwrap_or(0);
        taken
            .iter()
            .filter_map(|e| {
                let (v, u) = e.key.split_once(':')?;
                (v.parse::<u32>().ok()? == current).then_some(u.parse().ok()?)
            })
            .collect()
    }

    async fn ack_inner(&mut self, taken: &[Envelope]) -> Result<(), SourceError> {
        let uids = self.uids_of(taken);
        if uids.is_empty() {
            return Ok(());
        }
        self.ensure().await?;
        let ctx = self.ctx();
        let session = self
            .session
            .as_mut()
            .ok_or_else(|| err(&ctx.name, "ack", "not connected"))?;
        take_on(session, &ctx, &uid_set(&uids)).await?;
        self.taken(&uids);
        Ok(())
    }

    /// Messages taken: gone from the folder, no longer in flight.
    fn taken(&mut self, uids: &[u32]) {
        for u in uids {
            self.in_flight.remove(u);
        }
    }

    /// The second session, opened on first use; `None` when it cannot be
    /// (the caller then moves on the main session).
    async fn ensure_mover(&mut self) -> bool {
        if self.mover.is_some() {
            return true;
        }
        if self.mover_refused {
            return false;
        }
        match self.open_session().await {
            Ok((s, _, v)) if v == self.uidvalidity => {
                self.mover = Some(s);
                true
            }
            Ok(_) => {
                tracing::warn!(mailbox = %self.name, "second session sees another UIDVALIDITY; moving on the main session");
                false
            }
            Err(e) => {
                tracing::warn!(mailbox = %self.name, error = %e, "cannot open a second session; from now on moving on the main session");
                self.mover_refused = true;
                false
            }
        }
    }

    async fn wait_inner(&mut self, max: Duration) -> Result<(), SourceError> {
        // The backlog is drained: the second session is not needed.
        if let Some(mut m) = self.mover.take() {
            let _ = tokio::time::timeout(self.timeout(), m.logout()).await;
        }
        if !(self.s.idle && self.has_idle) || self.session.is_none() {
            let nap = if self.session.is_none() {
                max.min(Duration::from_secs(1))
            } else {
                max.min(self.s.poll_interval.0)
            };
            tokio::time::sleep(nap).await;
            return Ok(());
        }
        let timeout = self.timeout();
        let name = self.name.clone();
        // The deadline is absolute: keep-alive responses (`* OK Still
        // here`) never push it back.
        let deadline = tokio::time::Instant::now() + max.min(IDLE_MAX);
        let ctx = self.ctx();
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        // Mail that arrived since the last search (its EXISTS may already
        // sit among the unsolicited responses, or never have been sent):
        // look before waiting, so no wake-up is lost.
        if untaken_mail(session, &ctx, &self.in_flight).await? {
            tracing::debug!(mailbox = %name, "new mail before IDLE");
            return Ok(());
        }
        crate::failpoint::delay("before_idle").await;
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        // The channel's receiver is shared (async-channel): a clone reads
        // it while the handle owns the session.
        let unsolicited = session.unsolicited_responses.clone();
        let mut handle = session.idle();
        timed(&name, "IDLE", timeout, handle.init()).await?;
        // An EXISTS that came before the `+ idling` continuation went to
        // the unsolicited responses: it is a wake-up, not to be lost.
        let mut woke_early = false;
        while let Ok(r) = unsolicited.try_recv() {
            if is_new_mail(&r) {
                woke_early = true;
            }
        }
        if !woke_early {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (idle, _stop) = handle.wait_with_timeout(left.max(Duration::from_millis(1)));
            match tokio::time::timeout_at(deadline, idle).await {
                Ok(woke) => {
                    let woke = woke.map_err(|e| err(&name, "IDLE", e))?;
                    tracing::debug!(mailbox = %name, ?woke, "IDLE returned");
                }
                Err(_) => tracing::debug!(mailbox = %name, "IDLE reached its deadline"),
            }
        } else {
            tracing::debug!(mailbox = %name, "new mail announced as IDLE began");
        }
        // DONE has no timeout of its own.
        let session = timed(&name, "IDLE DONE", timeout, handle.done()).await?;
        self.session = Some(session);
        Ok(())
    }
}

/// Whether an unsolicited response announces mail (EXISTS or RECENT).
fn is_new_mail(r: &async_imap::types::UnsolicitedResponse) -> bool {
    use async_imap::types::UnsolicitedResponse as U;
    matches!(r, U::Exists(_) | U::Recent(_))
}

/// Whether the folder holds mail not yet taken and not in flight (the
/// unsolicited responses are drained first: they are only hints, and
/// their channel drops what overflows it).
async fn untaken_mail(
    session: &mut Session<Stream>,
    ctx: &Ctx,
    in_flight: &HashSet<u32>,
) -> Result<bool, SourceError> {
    while session.unsolicited_responses.try_recv().is_ok() {}
    let found = timed(
        &ctx.name,
        "UID SEARCH",
        ctx.timeout,
        session.uid_search(search_criteria(&ctx.after)),
    )
    .await?;
    Ok(found.iter().any(|u| !in_flight.contains(u)))
}

/// The search for mail not yet taken.
fn search_criteria(after: &AfterTake) -> String {
    match after {
        AfterTake::Move(_) => "ALL".to_string(),
        AfterTake::Flag(kw) => format!("UNKEYWORD {kw}"),
    }
}

/// Taken messages per ack below which moving and fetching share one
/// session (a second one pays off only for a backlog).
const MOVER_MIN: usize = 200;

/// What a fetch or a move needs besides its session, so that both can run
/// at once on two sessions.
struct Ctx {
    name: String,
    timeout: Duration,
    after: AfterTake,
    has_move: bool,
    has_uidplus: bool,
    limit: u64,
    fetch_batch: usize,
    /// Bytes of whole messages one fetch takes at most (one always goes).
    fetch_bytes: u64,
    uidvalidity: u32,
}

/// Up to `max` messages not in `in_flight`, oldest first, and their UIDs.
/// With `sync`, a NOOP first, so that messages another session took are no
/// longer listed (Dovecot reports their expunges to this session then, not
/// during the search).
async fn fetch_on(
    session: &mut Session<Stream>,
    ctx: &Ctx,
    in_flight: &HashSet<u32>,
    max: usize,
    sync: bool,
) -> Result<(Fetched, Vec<u32>), SourceError> {
    let (timeout, name, limit, uidvalidity) = (ctx.timeout, &ctx.name, ctx.limit, ctx.uidvalidity);
    let criteria = search_criteria(&ctx.after);
    let batch = max.min(ctx.fetch_batch).max(1);
    let mut taken_uids = Vec::new();
    if sync {
        timed(name, "NOOP", timeout, session.noop()).await?;
    }
    // Notifications are only hints; the search below is the truth.
    while session.unsolicited_responses.try_recv().is_ok() {}
    let found = timed(name, "UID SEARCH", timeout, session.uid_search(&criteria)).await?;
    let mut uids: Vec<u32> = found
        .into_iter()
        .filter(|u| !in_flight.contains(u))
        .collect();
    uids.sort_unstable();
    uids.truncate(batch);
    let mut out = Fetched::default();
    if uids.is_empty() {
        return Ok((out, taken_uids));
    }
    let set = uid_set(&uids);
    // Sizes first, so an oversize message is never fetched whole.
    let sizes: BTreeMap<u32, u32> = {
        let stream =
            match tokio::time::timeout(timeout, session.uid_fetch(&set, "(UID RFC822.SIZE)")).await
            {
                Ok(r) => r.map_err(|e| err(name, "UID FETCH sizes", e))?,
                Err(_) => return Err(err(name, "UID FETCH sizes", "timed out")),
            };
        let fetched: Vec<_> = timed(
            name,
            "UID FETCH sizes",
            timeout,
            stream.try_collect::<Vec<_>>(),
        )
        .await?;
        fetched
            .iter()
            .filter_map(|f| Some((f.uid?, f.size.unwrap_or(0))))
            .collect()
    };
    let (mut small, big): (Vec<u32>, Vec<u32>) =
        sizes.keys().partition(|u| u64::from(sizes[u]) <= limit);
    // At most `fetch_bytes` of whole messages (oldest first; one always
    // goes); the rest stay for the next fetch.
    let mut bytes = 0u64;
    let keep = small
        .iter()
        .take_while(|u| {
            bytes = bytes.saturating_add(u64::from(sizes.get(*u).copied().unwrap_or(0)));
            bytes <= ctx.fetch_bytes
        })
        .count()
        .max(1);
    small.truncate(keep);
    for (uids, query, oversize) in [
        (small, "(UID INTERNALDATE BODY.PEEK[])", false),
        (big, "(UID INTERNALDATE BODY.PEEK[HEADER])", true),
    ] {
        if uids.is_empty() {
            continue;
        }
        let set = uid_set(&uids);
        let stream = timed(name, "UID FETCH", timeout, session.uid_fetch(&set, query)).await?;
        // The body fetch may take long for a big batch: allow the
        // timeout per 4 MB of data.
        let budget = timeout * (1 + (uids.len() as u32 / 50));
        let fetched: Vec<_> = tokio::time::timeout(budget, stream.try_collect::<Vec<_>>())
            .await
            .map_err(|_| err(name, "UID FETCH", "timed out"))?
            .map_err(|e| err(name, "UID FETCH", e))?;
        for f in fetched {
            let Some(uid) = f.uid else { continue };
            let raw = if oversize { f.header() } else { f.body() };
            let Some(raw) = raw else {
                out.errors
                    .push((uid.to_string(), "server returned no body".into()));
                // In flight until the next pass: waiting for mail must not
                // see it as new.
                taken_uids.push(uid);
                continue;
            };
            let received_at = f
                .internal_date()
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or_else(Utc::now);
            taken_uids.push(uid);
            out.envelopes.push(Envelope {
                source: name.clone(),
                key: format!("{uidvalidity}:{uid}"),
                received_at,
                raw: raw.to_vec(),
                original_size: oversize.then(|| u64::from(sizes.get(&uid).copied().unwrap_or(0))),
            });
        }
    }
    out.envelopes.sort_by_key(|e| {
        e.key
            .rsplit(':')
            .next()
            .and_then(|u| u.parse::<u32>().ok())
            .unwrap_or(0)
    });
    Ok((out, taken_uids))
}

/// Take the messages in `set` as configured: MOVE (or COPY + UID EXPUNGE),
/// or flag them.
async fn take_on(session: &mut Session<Stream>, ctx: &Ctx, set: &str) -> Result<(), SourceError> {
    let (name, timeout) = (ctx.name.as_str(), ctx.timeout);
    match &ctx.after {
        AfterTake::Move(folder) if ctx.has_move => {
            timed(name, "UID MOVE", timeout, session.uid_mv(set, folder)).await?;
        }
        AfterTake::Move(folder) if ctx.has_uidplus => {
            timed(name, "UID COPY", timeout, session.uid_copy(set, folder)).await?;
            store_flags(name, timeout, session, set, "\\Deleted").await?;
            let s = timed(name, "UID EXPUNGE", timeout, session.uid_expunge(set)).await?;
            timed(name, "UID EXPUNGE", timeout, s.try_collect::<Vec<_>>()).await?;
        }
        AfterTake::Move(folder) => {
            // `after` is Move only on servers with MOVE or UIDPLUS.
            return Err(err(
                name,
                "ack",
                format!("cannot move to {folder} on this server"),
            ));
        }
        AfterTake::Flag(kw) => {
            store_flags(name, timeout, session, set, &format!("\\Seen {kw}")).await?;
        }
    }
    Ok(())
}

/// Run one IMAP command with a timeout.
async fn timed<T, E: std::fmt::Display>(
    name: &str,
    what: &str,
    t: Duration,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, SourceError> {
    match tokio::time::timeout(t, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(err(name, what, e)),
        Err(_) => Err(err(name, what, format!("timed out after {t:?}"))),
    }
}

/// `UID STORE set +FLAGS.SILENT (flags)`, the command and its responses
/// within the timeout.
async fn store_flags(
    name: &str,
    t: Duration,
    session: &mut Session<Stream>,
    set: &str,
    flags: &str,
) -> Result<(), SourceError> {
    let s = timed(
        name,
        "UID STORE",
        t,
        session.uid_store(set, format!("+FLAGS.SILENT ({flags})")),
    )
    .await?;
    timed(name, "UID STORE", t, s.try_collect::<Vec<_>>()).await?;
    Ok(())
}

/// `1,2,5` → an IMAP UID set (ranges compressed).
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

impl Source for ImapSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn set_fetch_bytes(&mut self, max_bytes: u64) {
        self.fetch_bytes = max_bytes.max(1);
    }

    async fn fetch(&mut self, max: usize) -> Result<Fetched, SourceError> {
        match self.fetch_inner(max).await {
            Ok(f) => Ok(f),
            Err(e) => {
                self.drop_session(&e);
                Err(e)
            }
        }
    }

    async fn ack(&mut self, taken: &[Envelope]) -> Result<(), SourceError> {
        match self.ack_inner(taken).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.drop_session(&e);
                Err(e)
            }
        }
    }

    async fn ack_and_fetch(
        &mut self,
        taken: &[Envelope],
        max: usize,
    ) -> (Result<(), SourceError>, Result<Fetched, SourceError>) {
        let uids = self.uids_of(taken);
        let together = uids.len() >= MOVER_MIN
            && self.session.is_some()
            && matches!(self.after, AfterTake::Move(_))
            && self.ensure_mover().await;
        if !together {
            let a = self.ack(taken).await;
            if a.is_err() {
                return (a, Ok(Fetched::default()));
            }
            return (a, self.fetch(max).await);
        }
        let ctx = self.ctx();
        let (Some(main), Some(mover)) = (self.session.as_mut(), self.mover.as_mut()) else {
            return (Ok(()), Ok(Fetched::default()));
        };
        // The fetch skips the UIDs being moved: they are still in flight.
        let set = uid_set(&uids);
        let sync = std::mem::take(&mut self.moved_elsewhere);
        let (moved, fetched) = tokio::join!(
            take_on(mover, &ctx, &set),
            fetch_on(main, &ctx, &self.in_flight, max, sync)
        );
        let fetched = match fetched {
            Ok((f, new)) => {
                self.fetched(new);
                Ok(f)
            }
            Err(e) => {
                self.drop_session(&e);
                Err(e)
            }
        };
        let acked = match moved {
            Ok(()) => {
                self.taken(&uids);
                self.moved_elsewhere = true;
                Ok(())
            }
            Err(e) => {
                // Try once more on the main session.
                tracing::warn!(mailbox = %self.name, error = %e, "move on the second session failed; moving on the main session");
                self.mover = None;
                self.ack(taken).await
            }
        };
        (acked, fetched)
    }

    async fn wait(&mut self, max: Duration) -> Result<(), SourceError> {
        match self.wait_inner(max).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.drop_session(&e);
                Err(e)
            }
        }
    }

    async fn quarantine(&mut self, envs: &[Envelope]) -> Result<(), SourceError> {
        match self.quarantine_inner(envs).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.drop_session(&e);
                Err(e)
            }
        }
    }

    fn reset(&mut self) {
        self.in_flight.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_login_is_not_a_refusal() {
        use async_imap::error::Error as E;
        let (why, refused) = login_failure(&E::ConnectionLost);
        assert!(!refused);
        assert!(why.contains("process or connection limit"), "{why}");
        let io = E::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(!login_failure(&io).1);
        let (why, refused) = login_failure(&E::No("[AUTHENTICATIONFAILED] no".into()));
        assert!(refused);
        assert_eq!(why, "login rejected");
    }

    #[test]
    fn uid_sets_compress_ranges() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&[4]), "4");
        assert_eq!(uid_set(&[]), "");
    }
}
