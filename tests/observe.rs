//! Monitoring against the real Dovecot and Postfix of `tests/mailstack/`:
//! a running daemon serves `/healthz` and `/metrics` over HTTP while mail
//! flows; `/healthz` turns 503 with a reason while Dovecot is stopped (and
//! the mailbox alert is queued for `people.alerts_to`), then 200 again
//! with a recovery mail.

mod common;

use common::{request, MailStack};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use ticketd::clock::SystemClock;
use ticketd::config::Config;
use ticketd::daemon::Daemon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn config(stack: &MailStack, data: &Path, http: u16) -> Config {
    config_with(stack, data, http, "", "")
}

/// The test configuration; `auth` replaces the mailbox's password login.
/// `alerts` is added to the `[alerts]` section.
fn config_with(stack: &MailStack, data: &Path, http: u16, auth: &str, alerts: &str) -> Config {
    std::fs::write(
        stack.path().join("password"),
        format!("{}\n", stack.get("PASSWORD")),
    )
    .expect("password file");
    let t = format!(
        r#"data_dir = "{data}"
domain = "casehost.example.test"
log_format = "json"

[[mailboxes]]
name = "support"
role = "support"
address = "support@example.test"
source = "imap"
username = "support@example.test"
host = "127.0.0.1"
port = {imap}
tls = "none"
{auth}
timeout = "5s"

[outbound]
from_support = "CaseHost Support <support@example.test>"
from_privacy = "CaseHost Privacy <privacy@example.test>"
transport = "smtp"
host = "127.0.0.1"
port = {smtp}
tls = "none"
retry_initial = "1s"
timeout = "5s"

[people]
alerts_to = ["admin@example.test"]
staff = ["sam@example.test"]

[http]
listen = "127.0.0.1:{http}"

[alerts]
mailbox_unreachable = "2s"
check_every = "1s"
repeat_every = "1h"
{alerts}
"#,
        data = data.display(),
        imap = stack.port("IMAP_PORT"),
        smtp = stack.port("SMTP_PORT"),
        auth = if auth.is_empty() {
            format!(
                "auth = \"password\"\npassword_file = \"{}\"",
                stack.path().join("password").display()
            )
        } else {
            auth.to_string()
        },
    );
    // The token test's mailbox has a name of its own: the metrics (and the
    // token commands' state) are one per process.
    let t = if auth.is_empty() {
        t
    } else {
        t.replace("name = \"support\"", "name = \"oauth\"")
    };
    Config::from_toml(&t, "test.toml", data).unwrap_or_else(|e| panic!("config: {e}\n{t}"))
}

/// The metrics are one per process: the tests that count run one at a time
/// and count from where they started.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `GET path` over plain HTTP/1.1: (status, body).
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Poll `path` until `ok(status, body)` holds, up to `within`.
async fn wait_for(
    port: u16,
    path: &str,
    within: Duration,
    ok: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let end = tokio::time::Instant::now() + within;
    let mut last = (0, String::new());
    while tokio::time::Instant::now() < end {
        if let Some((st, body)) = get(port, path).await {
            if ok(st, &body) {
                return (st, body);
            }
            last = (st, body);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "{path} never matched within {within:?}; last: {} {}",
        last.0, last.1
    );
}

/// The value of the sample named `name` (with its labels), or -1.
fn value(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(-1.0)
}

fn alert_subjects(d: &Daemon) -> Vec<String> {
    d.pipeline
        .store
        .outbox_all()
        .expect("outbox")
        .into_iter()
        .filter(|e| e.subject.starts_with("[ticketd] "))
        .map(|e| e.subject)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_over_http_while_mail_flows_and_dovecot_stops() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let _serial = SERIAL.lock().await;
    let stack = MailStack::start();
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let d = Arc::new(
        Daemon::open(config(&stack, data.path(), port), Arc::new(SystemClock)).expect("open"),
    );
    let tx = ticketd::shutdown::CancellationToken::new();
    let run = tokio::spawn(d.clone().run_until(tx.clone()));

    // Healthy once the mailbox has synced.
    let (_, body) = wait_for(port, "/healthz", Duration::from_secs(30), |s, _| s == 200).await;
    assert_eq!(body, r#"{"status":"ok"}"#);
    let taken = r#"ticketd_messages_taken_total{mailbox="support",decision="new_case"}"#;
    let acks = r#"ticketd_notices_sent_total{kind="new_case"}"#;
    let sent = r#"ticketd_sends_total{result="sent"}"#;
    let before = get(port, "/metrics").await.expect("metrics").1;
    let base = |name: &str| value(&before, name).max(0.0);
    let (taken0, acks0, sent0) = (base(taken), base(acks), base(sent));

    for i in 0..3 {
        let raw = request(
            &format!("User {i} <user{i}@example.test>"),
            "support@example.test",
            &format!("Site {i} is down"),
            "The whole site is down for everyone, nothing loads.",
            &format!("obs-{i}@example.test"),
        );
        stack.append("support@example.test", "INBOX", &raw).await;
    }
    // The acknowledgements reach their requesters through Postfix.
    for i in 0..3 {
        stack
            .wait_messages(
                &format!("user{i}@example.test"),
                "INBOX",
                1,
                Duration::from_secs(30),
            )
            .await;
    }
    // Acknowledgements and the staff's notices and pages all sent.
    let (_, metrics) = wait_for(port, "/metrics", Duration::from_secs(20), |_, b| {
        value(b, sent) >= sent0 + 3.0
            && value(b, taken) == taken0 + 3.0
            && b.contains("ticketd_outbox_depth 0")
            && b.contains(r#"ticketd_alert_active{alert="outbox_stuck"} 0"#)
    })
    .await;
    println!(
        "/metrics while mail flows (ticketd_ lines):\n{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("ticketd_") && !l.contains("_bucket"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(value(&metrics, "ticketd_delivery_seconds_count") >= 3.0);
    assert_eq!(value(&metrics, acks), acks0 + 3.0, "{metrics}");
    for want in [
        r#"ticketd_imap_connected{mailbox="support"} 1"#,
        r#"ticketd_imap_last_sync_timestamp_seconds{mailbox="support"}"#,
        r#"ticketd_cases{kind="support""#,
        "ticketd_outbox_oldest_queued_seconds 0",
        "ticketd_fetch_seconds_count{mailbox=\"support\"}",
        "ticketd_commit_seconds_count",
        "ticketd_data_disk_free_percent",
        "# EOF",
    ] {
        assert!(metrics.contains(want), "no {want} in:\n{metrics}");
    }
    assert!(
        !metrics.contains('@'),
        "an address in the metrics:\n{metrics}"
    );
    assert_eq!(get(port, "/nothing").await.map(|r| r.0), Some(404));

    // Dovecot stops: 503 with the mailbox's reason, and the alert.
    stack.stop_dovecot();
    let (_, body) = wait_for(port, "/healthz", Duration::from_secs(60), |s, _| s == 503).await;
    println!("/healthz during the Dovecot stop: 503 {body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(v["status"], "failing", "{body}");
    let reason = v["failing"]["mailbox:support"].as_str().unwrap_or("");
    assert!(reason.starts_with("not connected: "), "{body}");
    assert!(!reason.contains("code: None"), "{body}");
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    while !alert_subjects(&d)
        .iter()
        .any(|s| s == "[ticketd] ALERT: mailbox support unreachable")
    {
        assert!(
            tokio::time::Instant::now() < end,
            "no alert: {:?}",
            alert_subjects(&d)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, metrics) = wait_for(port, "/metrics", Duration::from_secs(10), |_, b| {
        b.contains(r#"ticketd_imap_connected{mailbox="support"} 0"#)
    })
    .await;
    assert!(
        metrics.contains(r#"ticketd_alerts_raised_total{alert="mailbox_unreachable:support"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"ticketd_alert_active{alert="mailbox_unreachable:support"} 1"#),
        "{metrics}"
    );

    // Back: 200 again, and the recovery mail.
    stack.start_dovecot();
    wait_for(port, "/healthz", Duration::from_secs(90), |s, _| s == 200).await;
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    while !alert_subjects(&d)
        .iter()
        .any(|s| s == "[ticketd] RECOVERED: mailbox support unreachable")
    {
        assert!(
            tokio::time::Instant::now() < end,
            "no recovery: {:?}",
            alert_subjects(&d)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Raised once, not once a check. (Only this alert: the metrics, and
    // so the token commands' state, are one per process, shared with the
    // other test here.)
    let raised = alert_subjects(&d)
        .iter()
        .filter(|s| *s == "[ticketd] ALERT: mailbox support unreachable")
        .count();
    assert_eq!(raised, 1);

    tx.cancel();
    run.await.expect("join").expect("clean stop");
}

/// A failing OAuth `token_command` raises its alert (and counts), and the
/// refused mailbox is in `/healthz`'s reasons.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_command_raises_its_alert() {
    let _serial = SERIAL.lock().await;
    let stack = MailStack::start();
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let auth = "auth = \"xoauth2\"\ntoken_command = \"echo no token for you >&2; exit 3\"";
    let d = Arc::new(
        Daemon::open(
            config_with(&stack, data.path(), port, auth, ""),
            Arc::new(SystemClock),
        )
        .expect("open"),
    );
    let tx = ticketd::shutdown::CancellationToken::new();
    let run = tokio::spawn(d.clone().run_until(tx.clone()));
    let (_, body) = wait_for(port, "/healthz", Duration::from_secs(30), |s, _| s == 503).await;
    assert!(body.contains("token_command failed"), "{body}");
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    let want = "[ticketd] ALERT: OAuth token command failing for mailbox oauth";
    while !alert_subjects(&d).iter().any(|s| s == want) {
        assert!(
            tokio::time::Instant::now() < end,
            "no alert: {:?}",
            alert_subjects(&d)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, metrics) = get(port, "/metrics").await.expect("metrics");
    assert!(
        value(
            &metrics,
            r#"ticketd_token_command_failures_total{source="mailbox oauth"}"#
        ) >= 1.0,
        "{metrics}"
    );
    tx.cancel();
    run.await.expect("join").expect("clean stop");
}

/// Postfix stopped: acknowledgements wait, `outbox_stuck` is raised once
/// they have waited `outbox_stuck`, the sends count `retry_later`; Postfix
/// back: they go, and the alert clears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_stuck_in_the_outbox_raises_and_clears_its_alert() {
    let _serial = SERIAL.lock().await;
    let stack = MailStack::start();
    let data = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let d = Arc::new(
        Daemon::open(
            config_with(&stack, data.path(), port, "", "outbox_stuck = \"3s\""),
            Arc::new(SystemClock),
        )
        .expect("open"),
    );
    let tx = ticketd::shutdown::CancellationToken::new();
    let run = tokio::spawn(d.clone().run_until(tx.clone()));
    wait_for(port, "/healthz", Duration::from_secs(30), |s, _| s == 200).await;
    stack.stop_postfix();
    let raw = request(
        "Kim <kim@example.test>",
        "support@example.test",
        "Site is down",
        "The whole site is down for everyone, nothing loads.",
        "obs-stuck@example.test",
    );
    stack.append("support@example.test", "INBOX", &raw).await;
    let want = "[ticketd] ALERT: outgoing mail stuck in the outbox";
    let end = tokio::time::Instant::now() + Duration::from_secs(40);
    while !alert_subjects(&d).iter().any(|s| s == want) {
        assert!(
            tokio::time::Instant::now() < end,
            "no alert: {:?}",
            alert_subjects(&d)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, metrics) = get(port, "/metrics").await.expect("metrics");
    assert!(value(&metrics, "ticketd_outbox_depth") >= 1.0, "{metrics}");
    assert!(
        value(&metrics, r#"ticketd_sends_total{result="retry_later"}"#) >= 1.0,
        "{metrics}"
    );
    assert!(
        value(&metrics, "ticketd_outbox_oldest_queued_seconds") >= 3.0,
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"ticketd_alert_active{alert="outbox_stuck"} 1"#),
        "{metrics}"
    );
    stack.start_postfix();
    stack
        .wait_messages("kim@example.test", "INBOX", 1, Duration::from_secs(60))
        .await;
    let want = "[ticketd] RECOVERED: outgoing mail stuck in the outbox";
    let end = tokio::time::Instant::now() + Duration::from_secs(60);
    while !alert_subjects(&d).iter().any(|s| s == want) {
        assert!(
            tokio::time::Instant::now() < end,
            "no recovery: {:?}",
            alert_subjects(&d)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tx.cancel();
    run.await.expect("join").expect("clean stop");
}

/// `log_format = "json"`: the binary writes one JSON object a line, with
/// no full address in it.
#[test]
fn json_logs_from_the_binary() {
    let data = tempfile::tempdir().expect("tempdir");
    let default = include_str!("../src/default.toml").replace(
        "data_dir = \"ticketd-data\"",
        &format!("data_dir = \"{}\"", data.path().display()),
    );
    let cfg = data.path().join("ticketd.toml");
    std::fs::write(&cfg, format!("log_format = \"json\"\n{default}")).expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .args(["--config", cfg.to_str().expect("utf-8"), "run", "--once"])
        .env("RUST_LOG", "info")
        .output()
        .expect("run ticketd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
        for (i, _) in l.match_indices('@') {
            assert!(l[..i].ends_with("***"), "an address in the log: {l}");
        }
    }
    assert!(lines.iter().any(|l| l.contains("new case")), "{stderr}");
}
