//! Many-mailboxes benchmark (not a test): `cargo bench --bench mailboxes`.
//!
//! Starts its own Dovecot + Postfix (tests/mailstack/mailstack.sh) with
//! room for the sessions (`MAILSTACK_PROCESS_LIMIT`: one `imap` process
//! per session in IDLE, where Dovecot's default is 100), raises the
//! kernel's `fs.inotify.max_user_instances` to 1024 when it is lower (it is
//! root's to change; with the default 128 Dovecot falls back to polling
//! and IDLE answers in seconds), then runs the release `ticketd run` with
//! `TICKETD_BENCH_MAILBOXES` IMAP mailboxes (default 500), each its own
//! user, and reports:
//! - connect: from start until every mailbox has logged "IMAP connected";
//! - idle: the daemon's RSS and CPU over 30 s with every session in IDLE;
//! - latency: APPEND → acknowledgement in the requester's mailbox, for 100
//!   messages each to another of the mailboxes: p50 / p99 / max.

#[path = "../tests/common/mod.rs"]
mod common;

use common::MailStack;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `VmRSS` of `pid` in bytes, and its CPU seconds (user + system) so far.
fn usage(pid: u32) -> (u64, f64) {
    let rss = common::proc_status_kb(&pid.to_string(), "VmRSS:") * 1024;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the
    // 14th field of the line, stime the 15th, in clock ticks (100 a second
    // on Linux).
    let ticks: f64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|t| t.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(0.0);
    (rss, ticks / 100.0)
}

/// Mailboxes that have logged "IMAP connected" so far.
fn connected(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut names: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("IMAP connected"))
        .filter_map(|l| {
            let at = l.find("mailbox=")? + "mailbox=".len();
            l[at..].split_whitespace().next()
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names.len()
}

fn inotify_instances() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("TICKETD_BENCH_MAILBOXES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    match inotify_instances() {
        Some(v) if v < 1024 => {
            let ok = std::fs::write("/proc/sys/fs/inotify/max_user_instances", "1024").is_ok();
            println!(
                "fs.inotify.max_user_instances was {v}: {}",
                if ok {
                    "raised to 1024 for this run"
                } else {
                    "could not raise it (not root?): expect polling latency"
                }
            );
        }
        v => println!("fs.inotify.max_user_instances: {v:?}"),
    }
    let limit = (n * 2 + 100).to_string();
    let stack = MailStack::start_with(&[("MAILSTACK_PROCESS_LIMIT", limit.as_str())]);
    let data = tempfile::tempdir().expect("tempdir");
    let pw = data.path().join("password");
    std::fs::write(&pw, format!("{}\n", stack.get("PASSWORD"))).expect("password");
    let mut cfg = format!(
        "data_dir = \"{}\"\ndomain = \"casehost.example.test\"\n{}rate_limit_per_hour = 0\n",
        data.path().display(),
        common::smtp_outbound(&stack)
    );
    for i in 0..n {
        cfg.push_str(&format!(
            r#"[[mailboxes]]
name = "box{i:03}"
role = "support"
address = "box{i:03}@example.test"
source = "imap"
host = "127.0.0.1"
port = {imap}
tls = "none"
username = "box{i:03}@example.test"
auth = "password"
password_file = "{pw}"
idle = true
poll_interval = "1h"
reconcile_interval = "1h"
"#,
            imap = stack.port("IMAP_PORT"),
            pw = pw.display(),
        ));
    }
    let cfg_path = data.path().join("mailboxes.toml");
    std::fs::write(&cfg_path, cfg).expect("config");
    let log = data.path().join("daemon.log");
    let bin = env!("CARGO_BIN_EXE_ticketd");
    let start = Instant::now();
    let mut d = Command::new(bin)
        .arg("--config")
        .arg(&cfg_path)
        .arg("run")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start ticketd");
    let mut last = (0, Instant::now());
    loop {
        let c = connected(&log);
        if c >= n {
            break;
        }
        if c > last.0 {
            last = (c, Instant::now());
        }
        if last.1.elapsed() > Duration::from_secs(60) {
            println!("connect: only {c} of {n} mailboxes connected (none more for 60 s); see the daemon log lines below");
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            for l in text
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .take(5)
            {
                println!("  {l}");
            }
            let _ = d.kill();
            let _ = d.wait();
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "connect: {n} mailboxes connected in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    // Settle into IDLE, then 30 s of nothing happening.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, cpu0) = usage(d.id());
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (rss, cpu1) = usage(d.id());
    println!(
        "idle: RSS {:.1} MB, CPU {:.2} % of a core over {:.0} s (target RSS <= 40 MB)",
        rss as f64 / 1e6,
        100.0 * (cpu1 - cpu0) / t0.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );

    let lat = common::ack_latencies(&stack, 100, |i| {
        format!("box{:03}@example.test", (i * 7) % n)
    })
    .await;
    let (rss_after, _) = usage(d.id());
    let _ = Command::new("kill")
        .args(["-TERM", &d.id().to_string()])
        .status();
    let _ = d.wait();
    let p = |q: f64| common::quantile(&lat, q);
    println!(
        "latency: APPEND → ack over {} messages to {} different mailboxes: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (target p99 < 1000 ms); RSS after {:.1} MB",
        lat.len(),
        n.min(100),
        p(0.5),
        p(0.99),
        p(1.0),
        rss_after as f64 / 1e6
    );
}
