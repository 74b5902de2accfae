//! The HTTP endpoint (hyper 1, HTTP/1.1 only, no TLS, no auth: bind it to
//! loopback or put it behind a proxy): `GET /healthz` (200 or 503 with a
//! JSON body naming each failing part) and `GET /metrics` (Prometheus
//! text). Anything else is 404.

use super::watch::Probe;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

fn reply(status: StatusCode, kind: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn handle(probe: Arc<Probe>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    let path = req.uri().path().to_string();
    if path != "/healthz" && path != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /healthz or /metrics\n".into(),
        );
    }
    let p = probe.clone();
    let out = tokio::task::spawn_blocking(move || {
        let s = p.snapshot();
        if path == "/healthz" {
            let h = p.health(&s);
            let status = if h.ok() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, "application/json", h.to_json())
        } else {
            (
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                p.metrics_text(&s),
            )
        }
    })
    .await;
    match out {
        Ok((status, kind, body)) => reply(status, kind, body),
        Err(_) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "the probe failed\n".into(),
        ),
    }
}

/// Serve until shutdown. A listen address that cannot be bound is logged
/// and leaves the daemon running without the endpoint.
pub async fn serve(
    addr: SocketAddr,
    probe: Arc<Probe>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %addr, error = %e, "cannot listen for /healthz and /metrics; the daemon runs without them");
            return;
        }
    };
    tracing::info!(listen = %addr, "serving /healthz and /metrics");
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a metrics connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let probe = probe.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let probe = probe.clone();
                async move { Ok::<_, Infallible>(handle(probe, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
        });
    }
}
