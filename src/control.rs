//! The control protocol: how the CLI talks to a running daemon (sled allows
//! one process per store). A Unix domain socket `DATA_DIR/control.sock`,
//! owner-only (0600, in a 0700 directory); one JSON [`Request`] per line in,
//! one JSON [`Response`] per line out.
//!
//! ```text
//! → {"cmd":"cases_list","kind":"support","status":null}
//! ← {"ok":true,"result":[...]}
//! ← {"ok":false,"error":"no such case SUP-000099"}
//! → {"cmd":"health"}
//! ← {"ok":true,"result":{"failing":{}}}
//! ```
//!
//! Lists (`cases_list`, `ignored_list`) are answered as a stream: one JSON
//! record per line, written as the store is read (on a blocking thread, in
//! chunks, so a long list neither holds the whole answer in memory nor
//! stalls the daemon's other tasks), then one terminator line:
//!
//! ```text
//! → {"cmd":"cases_list","open":true,"limit":2}
//! ← {"id":"SUP-000001",...}
//! ← {"id":"SUP-000002",...}
//! ← {"end":true,"count":2}
//! ← {"end":true,"count":0,"error":"no such case SUP-000099"}   (instead, on an error)
//! ```
//!
//! [`handle`] and [`stream_records`] answer a request against a store, so
//! the CLI uses the very same code when no daemon runs and it opens the
//! store itself.

use crate::observe::watch::Probe;
use crate::pipeline::{IngestOptions, Pipeline, Report};
use crate::render;
use crate::store::{Case, CaseFilter, NewMail, StoreError};
use crate::triage;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Requests the daemon answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    Ping,
    /// Streamed (see the module comment).
    CasesList {
        #[serde(flatten)]
        filter: CaseFilter,
        /// Start after this case (the last one of the previous page).
        #[serde(default)]
        after: Option<String>,
        /// At most this many cases.
        #[serde(default)]
        limit: Option<usize>,
    },
    CaseShow {
        id: String,
    },
    /// Streamed (see the module comment).
    IgnoredList,
    /// Staff corrections of triage with their raw mail (for training).
    Corrections,
    IgnoredPromote {
        id: u64,
        actor: String,
    },
    Import {
        paths: Vec<PathBuf>,
        no_ack: bool,
    },
    /// A clock stopper: review, respond, resolve or relevel a case.
    CaseAct {
        id: String,
        action: CaseAction,
        actor: String,
    },
    /// Everything held about one person (`ticketd subject-report`).
    SubjectReport {
        address: String,
    },
    /// Write a consistent backup of the store to `path` (on the daemon's
    /// machine, written by the daemon; see [`crate::backup`]).
    Backup {
        path: PathBuf,
        #[serde(default)]
        overwrite: bool,
    },
    /// The daemon's health, the same evaluation as `GET /healthz`
    /// ([`crate::observe::health::Report`]; `ticketd health`). Only a
    /// running daemon answers it.
    Health,
}

/// What staff do to a case: the workflow's actions (see [`crate::workflow`]).
pub use crate::workflow::Action as CaseAction;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    fn ok<T: Serialize>(v: &T) -> Response {
        match serde_json::to_value(v) {
            Ok(result) => Response {
                ok: true,
                result: Some(result),
                error: None,
            },
            Err(e) => Response::err(format!("cannot encode result: {e}")),
        }
    }
    fn err(e: impl ToString) -> Response {
        Response {
            ok: false,
            result: None,
            error: Some(e.to_string()),
        }
    }
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// The last line of a streamed answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamEnd {
    pub end: bool,
    /// Records sent.
    pub count: u64,
    /// Why the stream stopped early, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Request {
    /// Whether the answer is a stream of records ([`stream_records`]).
    pub fn is_stream(&self) -> bool {
        matches!(self, Request::CasesList { .. } | Request::IgnoredList)
    }
}

/// One record as its JSON line.
fn record_line<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(format!("cannot encode record: {e}")))
}

/// Answer a streamed request: each record as one JSON line (no line break)
/// to `emit`, which returns `false` when the reader has gone (the stream
/// stops). Blocking (reads the store): the daemon calls it on a blocking
/// thread. Returns how many records went out.
pub fn stream_records(
    p: &Pipeline,
    req: Request,
    emit: &mut dyn FnMut(&str) -> bool,
) -> Result<u64, StoreError> {
    let mut count = 0u64;
    match req {
        Request::CasesList {
            mut filter,
            after,
            limit,
        } => {
            let now = p.clock.now();
            filter.now = Some(now);
            filter.today = Some(p.notifier.calendar().local_date(now));
            let limit = limit.unwrap_or(usize::MAX);
            if limit == 0 {
                return Ok(0);
            }
            let after = after.map(|a| a.to_ascii_uppercase());
            p.store.for_each_case(&filter, after.as_deref(), |c| {
                count += 1;
                Ok(emit(&record_line(&c)?) && (count as usize) < limit)
            })?;
        }
        Request::IgnoredList => p.store.for_each_ignored(|r| {
            count += 1;
            Ok(emit(&record_line(&r)?))
        })?,
        other => {
            return Err(StoreError::Invalid(format!(
                "not a streamed request: {other:?}"
            )))
        }
    }
    Ok(count)
}

/// Bytes of records the blocking reader hands to the socket writer at once.
const STREAM_CHUNK: usize = 64 * 1024;

/// Write the streamed answer to `req` on `w`: the store is read on a
/// blocking thread, in chunks of [`STREAM_CHUNK`] bytes of lines passed
/// over a channel of two, so at most a few chunks are in memory and the
/// runtime's worker threads never wait on the store. Returns `false` when
/// the connection is gone.
async fn stream_to(
    p: &Pipeline,
    req: Request,
    w: &mut (impl tokio::io::AsyncWrite + Unpin),
) -> bool {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let p = p.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let mut buf: Vec<u8> = Vec::with_capacity(STREAM_CHUNK + 4096);
        let r = stream_records(&p, req, &mut |line| {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            if buf.len() >= STREAM_CHUNK {
                let full = std::mem::replace(&mut buf, Vec::with_capacity(STREAM_CHUNK + 4096));
                return tx.blocking_send(full).is_ok();
            }
            true
        });
        let end = match r {
            Ok(count) => StreamEnd {
                end: true,
                count,
                error: None,
            },
            Err(e) => StreamEnd {
                end: true,
                count: 0,
                error: Some(e.to_string()),
            },
        };
        buf.extend_from_slice(
            &serde_json::to_vec(&end).unwrap_or_else(|_| b"{\"end\":true,\"count\":0}".to_vec()),
        );
        buf.push(b'\n');
        let _ = tx.blocking_send(buf);
    });
    let mut alive = true;
    while let Some(chunk) = rx.recv().await {
        if w.write_all(&chunk).await.is_err() {
            alive = false;
            break;
        }
    }
    drop(rx);
    if let Err(e) = reader.await {
        tracing::warn!(error = %e, "control: list reader failed");
    }
    // What the read brought in is freed: give it back, so one long list
    // does not leave the daemon bigger.
    crate::alloc::trim();
    alive
}

/// Answer one request. Import reads files from paths on this machine.
pub async fn handle(p: &Pipeline, req: Request) -> Response {
    let store = &p.store;
    match req {
        Request::Ping => Response::ok(&"pong"),
        // Streamed (`stream_records`); answered here as one document only
        // for callers inside the process.
        req @ (Request::CasesList { .. } | Request::IgnoredList) => {
            let mut records = Vec::new();
            let r = stream_records(p, req, &mut |line| {
                records.push(serde_json::from_str::<serde_json::Value>(line).unwrap_or_default());
                true
            });
            match r {
                Ok(_) => Response::ok(&records),
                Err(e) => Response::err(e),
            }
        }
        Request::CaseShow { id } => match store.case_view(&id.to_ascii_uppercase()) {
            Ok(v) => Response::ok(&v),
            Err(e) => Response::err(e),
        },
        Request::SubjectReport { address } => {
            match crate::erase::apply::holdings(store, Some(&address)) {
                Ok(h) => Response::ok(&crate::erase::subject_report(
                    &h,
                    &address,
                    &crate::erase::subject_hash(p.notifier.keys(), &address),
                )),
                Err(e) => Response::err(e),
            }
        }
        Request::Corrections => match corrections(store) {
            Ok(v) => Response::ok(&v),
            Err(e) => Response::err(e),
        },
        Request::IgnoredPromote { id, actor } => match promote(p, id, &actor).await {
            Ok(v) => Response::ok(&v),
            Err(e) => Response::err(e),
        },
        Request::Import { paths, no_ack } => {
            match import(p, &paths, IngestOptions { no_ack }, |_| {}).await {
                Ok(r) => Response::ok(&r),
                Err(e) => Response::err(e),
            }
        }
        Request::CaseAct { id, action, actor } => match act(p, &id, &action, &actor).await {
            Ok(c) => Response::ok(&c),
            Err(e) => Response::err(e),
        },
        Request::Backup { path, overwrite } => {
            let store = p.store.clone();
            match tokio::task::spawn_blocking(move || {
                crate::backup::write(&store, &path, overwrite)
            })
            .await
            {
                Ok(Ok(m)) => Response::ok(&m),
                Ok(Err(e)) => Response::err(e),
                Err(e) => Response::err(format!("backup task failed: {e}")),
            }
        }
        Request::Health => {
            Response::err("ticketd is not running (health is known only to a running daemon)")
        }
    }
}

/// Answer [`Request::Health`] from the daemon's probe: the `/healthz`
/// evaluation ([`Probe::health`](crate::observe::watch::Probe::health)).
pub async fn health(probe: Option<Arc<Probe>>) -> Response {
    let Some(probe) = probe else {
        return Response::err("this daemon has no health probe");
    };
    match tokio::task::spawn_blocking(move || probe.health(&probe.snapshot())).await {
        Ok(report) => Response::ok(&report),
        Err(e) => Response::err(format!("the health probe failed: {e}")),
    }
}

/// Apply a workflow action to a case, durably (the same action a mail
/// command applies).
pub async fn act(
    p: &Pipeline,
    id: &str,
    action: &CaseAction,
    actor: &str,
) -> Result<Case, StoreError> {
    let now = p.clock.now();
    let token = render::token();
    let id = id.to_ascii_uppercase();
    // A forward sends the agency what we received: the first message.
    let request_text = match action {
        CaseAction::Forward { .. } => p.store.case(&id)?.and_then(|c| p.request_text(&c)),
        _ => None,
    };
    let ctx = crate::workflow::Ctx {
        notifier: &p.notifier,
        now,
        actor,
        token: &token,
        request_text: request_text.as_deref(),
    };
    let case = p.store.update_case(&id, now, actor, &|c| {
        crate::workflow::apply(&ctx, c, action).map_err(|e| e.to_string())
    })?;
    p.store.flush().await?;
    Ok(case)
}

/// A correction with the mail it corrects.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CorrectionExample {
    pub correction: crate::store::Correction,
    pub raw: Vec<u8>,
    /// The mailbox (source) the mail came through.
    pub source: String,
}

fn corrections(store: &crate::store::Store) -> Result<Vec<CorrectionExample>, StoreError> {
    let mut out = Vec::new();
    for c in store.corrections()? {
        let Some(msg) = store.message(c.message)? else {
            continue;
        };
        let Some(raw) = store.raw(c.message)? else {
            continue;
        };
        out.push(CorrectionExample {
            correction: c,
            raw,
            source: msg.source,
        });
    }
    Ok(out)
}

/// Result of promoting an ignored message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Promoted {
    pub ignored: u64,
    pub case: String,
    pub outbox: Option<u64>,
}

/// Turn an ignored message into a case: triage it again as a new case
/// (ignoring the hygiene verdict a human has overruled) and acknowledge it
/// when its sender may be answered.
pub async fn promote(p: &Pipeline, id: u64, actor: &str) -> Result<Promoted, StoreError> {
    let store = &p.store;
    let rec = store.ignored(id)?.ok_or(StoreError::NoIgnored(id))?;
    let msg = store
        .message(rec.message)?
        .ok_or_else(|| StoreError::Invalid(format!("message {} is missing", rec.message)))?;
    let raw = store.raw(msg.id)?.unwrap_or_default();
    let limit = usize::try_from(p.config.limits.triage_parse_bytes).unwrap_or(usize::MAX);
    let parsed = crate::mail::parse(&raw, limit).ok();
    let role = p.role_of(&msg.source);
    let now = p.clock.now();
    let (mut decision, ack_to) = match &parsed {
        Some(m) => {
            // Staff overrule hygiene: decide as a new case with no hygiene context.
            let ctx = triage::TriageContext {
                role,
                own_addresses: &[],
                own_domain: "",
                block_senders: &[],
                allow_automated: &[],
                receive_lists: &[],
                trusted_authserv_id: None,
                rules: p.rules(),
                agency_domains: &p.config.triage.agency_domains,
                model: &p.config.triage.model,
            };
            let mut d = triage::triage_as_new(m, &ctx);
            if d.kind == triage::Kind::Ignore {
                d.kind = triage::Kind::Ticket;
                d.level = Some(4);
            }
            (d, render::ack_address(m, &p.config.own_addresses()))
        }
        None => (
            triage::Decision {
                kind: triage::Kind::Ticket,
                level: Some(4),
                rights: None,
                jurisdiction: None,
                case_ref: None,
                language: None,
                auth: triage::Auth::None,
                ack: false,
                reasons: vec!["promoted unparseable message: no acknowledgement possible".into()],
                hygiene: None,
                confidence: triage::Confidence::High,
                confidence_score: None,
                runner_up: None,
            },
            Err("message could not be parsed".to_string()),
        ),
    };
    decision
        .reasons
        .push(format!("promoted from ignored #{id} by {actor}"));
    let token = render::token();
    let references: Vec<String> = parsed
        .as_ref()
        .map(|m| m.references.clone())
        .unwrap_or_default();
    let in_reply_to = parsed.as_ref().and_then(|m| m.message_id.clone());
    let plan_fn = |case: &Case, d: &triage::Decision| {
        let (case, code) = p.identity_code(case, ack_to.is_ok() && d.ack);
        let ack = |c: &Case| -> Result<NewMail, String> {
            let to = ack_to.as_ref().map_err(Clone::clone)?;
            let target = crate::pipeline::AckTarget {
                to,
                token: &token,
                in_reply_to: in_reply_to.as_deref(),
                references: &references,
                language: d.language.as_deref(),
                identity_code: code.as_deref(),
            };
            p.build_ack(c, &target, now)
        };
        p.notifier.plan_new_case(&case, d, now, &token, false, &ack)
    };
    let reply_address = ack_to
        .as_ref()
        .map(|a| a.address.clone())
        .map_err(Clone::clone);
    let (case, outbox) =
        store.promote_ignored(id, &decision, reply_address, now, actor, &plan_fn)?;
    store.flush().await?;
    Ok(Promoted {
        ignored: id,
        case,
        outbox,
    })
}

/// Import files, Maildirs and mbox files through the pipeline, exactly as
/// a drain stores a mailbox ([`Pipeline::drain`] over a
/// [`files::ImportSource`]): batches parsed and triaged on all cores while
/// the one before is committed, one flush a batch, at most `[limits]` in
/// flight. A message that fails is reported and the rest go on; a store
/// failure ends the import (what was flushed before stays). `progress` is
/// called with the number of messages each flush made durable.
///
/// [`files::ImportSource`]: crate::source::files::ImportSource
pub async fn import(
    p: &Pipeline,
    paths: &[PathBuf],
    opts: IngestOptions,
    progress: impl FnMut(crate::source::files::Progress) + Send,
) -> Result<Report, StoreError> {
    let found = crate::source::files::discover(paths);
    import_found(p, found, opts, progress).await
}

/// [`import`] of inputs already found ([`crate::source::files::discover`]),
/// with the paths that could not be read.
pub async fn import_found(
    p: &Pipeline,
    (inputs, errors): (Vec<crate::source::files::Input>, Vec<(PathBuf, String)>),
    opts: IngestOptions,
    progress: impl FnMut(crate::source::files::Progress) + Send,
) -> Result<Report, StoreError> {
    use crate::source::files;
    let mut src = files::ImportSource::new(inputs, progress);
    let batch = p.config.daemon.batch_size.max(1);
    let mut report = p
        .drain(&mut src, batch, opts, &|| false)
        .await
        .map_err(|e| match e {
            crate::pipeline::PipelineError::Store(e) => e,
            other => StoreError::Invalid(other.to_string()),
        })?;
    let unreadable = errors
        .into_iter()
        .map(|(path, e)| format!("{}: {e}", path.display()));
    report.errors.splice(0..0, unreadable);
    Ok(report)
}

/// Bind the control socket (owner-only); the caller must hold the store
/// lock. Once this returns, CLI commands reach the daemon.
pub fn bind(data_dir: &Path) -> std::io::Result<tokio::net::UnixListener> {
    let path = socket_path(data_dir);
    // We hold the store lock, so any socket file left here is stale.
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    tracing::info!(socket = %path.display(), "control socket listening");
    Ok(listener)
}

/// Serve a bound control socket until `shutdown` fires; `probe` answers
/// [`Request::Health`].
pub async fn serve_on(
    listener: tokio::net::UnixListener,
    p: Pipeline,
    probe: Option<Arc<Probe>>,
    shutdown: crate::shutdown::CancellationToken,
) -> std::io::Result<()> {
    let path = socket_path(p.store.data_dir());
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => { tracing::warn!(error = %e, "control accept failed"); continue; }
                };
                let p = p.clone();
                let probe = probe.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut lines = BufReader::new(r).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let resp = match serde_json::from_str::<Request>(&line) {
                            Ok(Request::Health) => health(probe.clone()).await,
                            Ok(req) if req.is_stream() => {
                                if stream_to(&p, req, &mut w).await { continue; }
                                break;
                            }
                            Ok(req) => handle(&p, req).await,
                            Err(e) => Response::err(format!("bad request: {e}")),
                        };
                        let mut out = serde_json::to_vec(&resp).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
                        out.push(b'\n');
                        if w.write_all(&out).await.is_err() { break; }
                    }
                });
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// Connect to a running daemon. `Ok(None)` when no daemon listens.
pub async fn connect(data_dir: &Path) -> std::io::Result<Option<tokio::net::UnixStream>> {
    let path = socket_path(data_dir);
    match tokio::net::UnixStream::connect(&path).await {
        Ok(s) => Ok(Some(s)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Send a streamed request on `stream` and hand each record line to
/// `on_line` (`false`: stop reading) until the terminator, which is
/// returned.
pub async fn call_stream(
    stream: tokio::net::UnixStream,
    req: &Request,
    on_line: &mut dyn FnMut(&str) -> bool,
) -> std::io::Result<StreamEnd> {
    let (r, mut w) = stream.into_split();
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    let mut lines = BufReader::new(r).lines();
    let mut count = 0u64;
    while let Some(l) = lines.next_line().await? {
        if l.starts_with("{\"end\":") {
            return serde_json::from_str(&l).map_err(std::io::Error::other);
        }
        count += 1;
        if !on_line(&l) {
            return Ok(StreamEnd {
                end: true,
                count,
                error: None,
            });
        }
    }
    Err(std::io::Error::other(
        "daemon closed the control socket before the end of the list",
    ))
}

/// Send one request to a running daemon. `Ok(None)` when no daemon listens.
pub async fn call(data_dir: &Path, req: &Request) -> std::io::Result<Option<Response>> {
    let Some(stream) = connect(data_dir).await? else {
        return Ok(None);
    };
    call_on(stream, req).await.map(Some)
}

/// Send one request on a connected `stream` and read its one answer.
pub async fn call_on(stream: tokio::net::UnixStream, req: &Request) -> std::io::Result<Response> {
    let (r, mut w) = stream.into_split();
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    let mut lines = BufReader::new(r).lines();
    match lines.next_line().await? {
        Some(l) => serde_json::from_str(&l).map_err(std::io::Error::other),
        None => Err(std::io::Error::other(
            "daemon closed the control socket without answering",
        )),
    }
}
