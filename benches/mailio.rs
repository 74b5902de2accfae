//! Mail I/O benchmark (not a test): `cargo bench --bench mailio`.
//!
//! Starts its own Dovecot + Postfix (tests/mailstack/mailstack.sh), preloads
//! N messages (default 10,000; `TICKETD_BENCH_N`) into the support INBOX,
//! then measures in one run:
//! - ingest: IMAP fetch → parse → triage → sled (group commit) → MOVE, from
//!   a connected session (as the daemon's is when mail arrives; the connect,
//!   login and first SELECT are timed apart) until every case is durable
//!   with its acknowledgement queued and every message moved: messages/s
//!   (also with the connection counted) and peak RSS during the drain
//!   (VmHWM reset when it starts; the RSS it started from is printed);
//!   `TICKETD_BENCH_EXTRA` is appended to the bench's configuration
//!   (`\n` for a new line), e.g. `[store]\ncache_capacity = "32MiB"`;
//! - delivery: the outbox through Postfix until every mail is accepted:
//!   mails/s, next to Postfix's own `smtp-source` (1, 4 and 8 sessions kept
//!   open, mails of the same average size) against the same Postfix, each measurement
//!   started with Postfix's queue empty;
//! - latency: APPEND → acknowledgement in the requester's mailbox, for 100
//!   single messages appended while the daemon sits in IDLE: p50 / p99
//!   (skipped with `TICKETD_BENCH_NO_LATENCY`).

#[path = "corpus.rs"]
mod bench_corpus;
#[path = "../tests/common/mod.rs"]
mod common;

use bench_corpus::{corpus, cpu_seconds, variant};
use common::MailStack;
use std::sync::Arc;
use std::time::{Duration, Instant};
use ticketd::clock::SystemClock;
use ticketd::config::Config;
use ticketd::daemon::{AnySource, Daemon};
use ticketd::pipeline::IngestOptions;
use ticketd::source::imap::ImapSource;

/// A `/proc/self/status` field in MB (`VmHWM:`, `VmRSS:`).
fn status_mb(field: &str) -> f64 {
    common::proc_status_kb("self", field) as f64 / 1024.0
}

fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// Start the peak over from the current RSS (Linux: `clear_refs` 5), so
/// that the peak printed after ingest is the drain's, not the preload's.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn config(stack: &MailStack, data: &std::path::Path, idle: bool) -> Config {
    std::fs::write(
        stack.path().join("password"),
        format!("{}\n", stack.get("PASSWORD")),
    )
    .expect("password");
    let t = format!(
        r#"data_dir = "{data}"
domain = "casehost.example.test"
[[mailboxes]]
name = "support"
role = "support"
address = "support@example.test"
source = "imap"
host = "127.0.0.1"
port = {imap}
tls = "none"
username = "support@example.test"
auth = "password"
password_file = "{pw}"
fetch_batch = 1000
idle = {idle}
poll_interval = "1h"
reconcile_interval = "1h"
[outbound]
from_support = "CaseHost Support <support@example.test>"
from_privacy = "CaseHost Privacy <privacy@example.test>"
transport = "smtp"
host = "127.0.0.1"
port = {smtp}
tls = "none"
pool_size = 8
rate_limit_per_hour = 0
retry_initial = "1s"
[daemon]
batch_size = 1000
{extra}
"#,
        extra = std::env::var("TICKETD_BENCH_EXTRA")
            .unwrap_or_default()
            .replace("\\n", "\n"),
        data = data.display(),
        imap = stack.port("IMAP_PORT"),
        smtp = stack.port("SMTP_PORT"),
        pw = stack.path().join("password").display(),
    );
    Config::from_toml(&t, "bench.toml", data).expect("config")
}

/// The IMAP side of ingest alone, against the same Dovecot in the same run:
/// one session that searches, fetches whole messages (1,000 at a time, as
/// ingest does) and moves them on, doing nothing with them — what ingest
/// would reach if parsing, triage and the store cost nothing. Works on the
/// `Processed` folder ingest has just filled, moving to `Bare`.
async fn bare_imap_ceiling(stack: &MailStack, n: usize) {
    use futures::TryStreamExt;
    let mut s = stack.imap("support@example.test").await;
    s.create("Bare").await.expect("create Bare");
    s.select("Processed").await.expect("select Processed");
    let start = Instant::now();
    let mut moved = 0;
    loop {
        let mut uids: Vec<u32> = s
            .uid_search("ALL")
            .await
            .expect("search")
            .into_iter()
            .collect();
        uids.sort_unstable();
        uids.truncate(1000);
        if uids.is_empty() {
            break;
        }
        let set = ticketd::source::imap::uid_set(&uids);
        let bodies: Vec<_> = s
            .uid_fetch(&set, "(UID INTERNALDATE BODY.PEEK[])")
            .await
            .expect("fetch")
            .try_collect()
            .await
            .expect("fetch");
        let bytes: usize = bodies
            .iter()
            .filter_map(|f| f.body())
            .map(<[u8]>::len)
            .sum();
        std::hint::black_box(bytes);
        s.uid_mv(&set, "Bare").await.expect("move");
        moved += uids.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "  IMAP alone (search, fetch, move; nothing done with the mail): {moved} messages in {secs:.2} s = {:.0} messages/s (ingest took {n})",
        moved as f64 / secs
    );
    let _ = s.logout().await;
}

async fn preload(stack: &MailStack, n: usize) {
    let templates = corpus();
    let per = n.div_ceil(8);
    let mut tasks = Vec::new();
    for w in 0..8 {
        let templates = templates.clone();
        let port = stack.port("IMAP_PORT");
        let pw = stack.get("PASSWORD");
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            let mut c = async_imap::Client::new(tcp);
            c.read_response().await.expect("greeting");
            let mut s = c
                .login("support@example.test", pw)
                .await
                .map_err(|(e, _)| e)
                .expect("login");
            for i in (w * per)..((w + 1) * per).min(n) {
                let raw = variant(&templates[i % templates.len()], i);
                s.append("INBOX", None, None, &raw).await.expect("append");
            }
            let _ = s.logout().await;
        }));
    }
    for t in tasks {
        t.await.expect("preload task");
    }
}

/// Postfix's own load generator against the same Postfix: `sessions`
/// parallel sessions each kept open, `n` mails of about `bytes` bytes each (smtp-source
/// adds ≈ 100 bytes of headers to its `-l` payload), one recipient in
/// example.test, so Postfix delivers them into Dovecot over LMTP as it does
/// our mail. Starts with Postfix's queue empty, as our run does.
fn smtp_source(stack: &MailStack, sessions: u32, n: usize, bytes: usize) -> Option<f64> {
    let bin = ["/usr/sbin/smtp-source", "/usr/lib/postfix/sbin/smtp-source"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    wait_postfix_queue_empty(stack);
    let start = Instant::now();
    let st = std::process::Command::new(bin)
        .args([
            "-c",
            // One connection per session for all its mails, as ours are
            // (without -d smtp-source reconnects for every mail).
            "-d",
            "-s",
            &sessions.to_string(),
            "-m",
            &n.to_string(),
            "-l",
            &bytes.saturating_sub(100).max(1).to_string(),
            "-f",
            "bench@example.test",
            "-t",
            "sink@example.test",
        ])
        .arg(format!("127.0.0.1:{}", stack.port("SMTP_PORT")))
        .stdout(std::process::Stdio::null())
        .status()
        .ok()?;
    st.success()
        .then(|| n as f64 / start.elapsed().as_secs_f64())
}

/// Mail files in Postfix's queue (incoming, active, deferred, maildrop).
fn postfix_queue_len(stack: &MailStack) -> usize {
    fn count(p: &std::path::Path) -> usize {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| {
                        if e.file_type().is_ok_and(|t| t.is_dir()) {
                            count(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    let q = std::path::PathBuf::from(stack.get("POSTFIX_QUEUE_DIR"));
    ["incoming", "active", "deferred", "maildrop"]
        .iter()
        .map(|d| count(&q.join(d)))
        .sum()
}

/// Wait (at most 5 min) until Postfix has handed everything to Dovecot, so
/// each measurement starts with the same idle servers.
fn wait_postfix_queue_empty(stack: &MailStack) {
    let t = Instant::now();
    while postfix_queue_len(stack) > 0 && t.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    // As the ticketd binary does, before any thread starts.
    ticketd::alloc::bound_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench());
}

async fn bench() {
    let n: usize = std::env::var("TICKETD_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let stack = MailStack::start();
    let t = Instant::now();
    preload(&stack, n).await;
    println!(
        "preloaded {n} messages in {:.1} s (not timed)",
        t.elapsed().as_secs_f64()
    );

    // Ingest.
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = config(&stack, data.path(), true);
    let d = Arc::new(Daemon::open(cfg.clone(), Arc::new(SystemClock)).expect("daemon"));
    let imap = cfg.mailboxes[0].imap.clone().expect("imap");
    // Connected and the folder selected before the clock starts, as the
    // daemon is when mail arrives (and as the bare IMAP client below is).
    // Dovecot's first SELECT of a folder just filled with 10,000 messages
    // syncs its index: timed apart.
    let mut imap_src = ImapSource::new("support", imap, None);
    let t = Instant::now();
    imap_src.connect_now().await.expect("connect");
    let connect_secs = t.elapsed().as_secs_f64();
    println!(
        "connect, login and SELECT (Dovecot syncs the new folder's index): {:.0} ms, before the clock starts",
        connect_secs * 1000.0
    );
    let mut src = AnySource::Imap(Box::new(imap_src));
    const DOVECOT: &[&str] = &[
        "dovecot",
        "imap",
        "imap-login",
        "auth",
        "log",
        "config",
        "anvil",
        "stats",
    ];
    let cpu0 = cpu_seconds(DOVECOT);
    let before = (peak_rss_mb(), status_mb("VmRSS:"), reset_peak_rss());
    let start = Instant::now();
    let report = d
        .pipeline
        .drain(&mut src, 1000, IngestOptions::default(), &|| false)
        .await
        .expect("drain");
    let secs = start.elapsed().as_secs_f64();
    let taken = report.new_cases + report.follow_ups + report.ignored;
    println!(
        "ingest: {taken} messages in {secs:.2} s = {:.0} messages/s ({} cases, {} set aside, {} acks queued); peak RSS {:.0} MB (target >= 5000/s)",
        taken as f64 / secs,
        report.new_cases,
        report.ignored,
        report.acks_queued,
        peak_rss_mb()
    );
    println!(
        "  with the connection counted: {:.0} messages/s",
        taken as f64 / (secs + connect_secs)
    );
    println!(
        "  RSS when the drain started {:.0} MB (peak before it, preload included: {:.0} MB); the peak above is {}",
        before.1,
        before.0,
        if before.2 { "the drain's own (VmHWM reset at its start)" } else { "the process's (VmHWM could not be reset)" }
    );
    let cpu1 = cpu_seconds(DOVECOT);
    for e in report.errors.iter().take(3) {
        println!("  error: {e}");
    }
    let (used, discarded) = d.pipeline.plans_made_ahead();
    println!("  new-case plans made ahead: {used} used, {discarded} discarded");
    println!(
        "  CPU during ingest: ticketd {:.2} s, Dovecot {:.2} s (of {:.2} s on 2 cores) = {:.0} + {:.0} µs per message",
        cpu1.0 - cpu0.0,
        cpu1.1 - cpu0.1,
        2.0 * secs,
        1e6 * (cpu1.0 - cpu0.0) / taken.max(1) as f64,
        1e6 * (cpu1.1 - cpu0.1) / taken.max(1) as f64,
    );
    bare_imap_ceiling(&stack, taken).await;

    if std::env::var("TICKETD_BENCH_ONLY_INGEST").is_ok() {
        return;
    }
    // Delivery.
    let t = Instant::now();
    let pending = d.pipeline.store.outbox_pending().unwrap_or_default();
    let queued = pending.len();
    println!(
        "  reading the {queued} pending outbox entries (as every delivery pass does): {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let avg_bytes = pending.iter().map(|e| e.mail.len()).sum::<usize>() / queued.max(1);
    drop(pending);
    let transport = ticketd::outbox::AnyTransport::from_config(&cfg.outbound);
    let policy = ticketd::outbox::OutboxPolicy::from_config(&cfg);
    wait_postfix_queue_empty(&stack);
    let start = Instant::now();
    let (mut sent, mut failed) = (0, 0);
    // Until nothing is queued or being sent: entries in retry backoff are
    // waited for, permanent failures end their entry (and are reported).
    loop {
        let s = ticketd::outbox::deliver_due(&d.pipeline.store, &transport, &SystemClock, &policy)
            .await
            .expect("deliver");
        sent += s.sent;
        failed += s.failed + s.suppressed;
        let left = d
            .pipeline
            .store
            .outbox_pending()
            .map(|v| v.len())
            .unwrap_or(0);
        if left == 0 || start.elapsed() > Duration::from_secs(600) {
            break;
        }
        if s.sent == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let ours = sent as f64 / secs;
    // Entries that did not go through at the first attempt, by outcome.
    let mut errors: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for e in d.pipeline.store.outbox_all().unwrap_or_default() {
        if e.attempts > 1 || e.last_error.is_some() {
            let error = e.last_error.as_deref().unwrap_or("-");
            let key = match e.state {
                ticketd::store::OutboxState::Sent => {
                    format!("sent after {} attempts", e.attempts)
                }
                ticketd::store::OutboxState::Failed => format!("failed for good: {error}"),
                other => format!("{other:?} after {} attempts: {error}", e.attempts),
            };
            *errors.entry(key.chars().take(110).collect()).or_default() += 1;
        }
    }
    for (e, n) in &errors {
        println!("  delivery not at the first attempt: {n} × {e}");
    }
    let m = sent.max(1000);
    let ceilings: Vec<(u32, Option<f64>)> = [1, 4, 8]
        .into_iter()
        .map(|s| (s, smtp_source(&stack, s, m, avg_bytes)))
        .collect();
    println!(
        "delivery: {sent} of {queued} mails ({avg_bytes} bytes average) in {secs:.2} s = {ours:.0} mails/s, {failed} failed; smtp-source ({m} mails of that size) ceiling: {} (target >= 80 % of the ceiling)",
        ceilings
            .iter()
            .map(|(s, v)| format!(
                "{s} session(s) {}",
                v.map(|v| format!("{v:.0}/s ({:.0} %)", 100.0 * ours / v))
                    .unwrap_or("n/a".into())
            ))
            .collect::<Vec<_>>()
            .join(", "),
    );
    if std::env::var("TICKETD_BENCH_NO_LATENCY").is_ok() {
        return;
    }
    drop(d);

    // Latency, from an idle Postfix (the ceiling runs leave a queue behind).
    wait_postfix_queue_empty(&stack);
    let data = tempfile::tempdir().expect("tempdir");
    let d = Arc::new(
        Daemon::open(config(&stack, data.path(), true), Arc::new(SystemClock)).expect("daemon"),
    );
    let tx = ticketd::shutdown::CancellationToken::new();
    let h = tokio::spawn(d.clone().run_until(tx.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lat = common::ack_latencies(&stack, 100, |_| "support@example.test".into()).await;
    tx.cancel();
    let _ = h.await;
    let p = |q: f64| common::quantile(&lat, q);
    println!("latency: APPEND → ack in mailbox over {} messages: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (target p99 < 1000 ms)", lat.len(), p(0.5), p(0.99), p(1.0));
}
