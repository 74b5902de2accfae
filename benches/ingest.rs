//! Store-side ingest benchmark (not a test, no mail servers):
//! `cargo bench --bench ingest`.
//!
//! The same 10,000 messages as the mail I/O benchmark (`TICKETD_BENCH_N`),
//! taken through the pipeline's prepare (parse + triage, all cores) and
//! commit (group transactions of 100, a flush per 1,000) exactly as a drain
//! does, with the stages timed apart — the part of ingest that is ours,
//! without Dovecot's FETCH and MOVE. `TICKETD_BENCH_TREES=1` also prints
//! the entries and bytes of every sled tree afterwards.

#[path = "corpus.rs"]
mod bench_corpus;

use bench_corpus::{corpus, cpu_seconds, variant};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ticketd::clock::SystemClock;
use ticketd::config::Config;
use ticketd::daemon::Daemon;
use ticketd::pipeline::IngestOptions;
use ticketd::source::Envelope;

fn main() {
    let n: usize = std::env::var("TICKETD_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let data = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        r#"data_dir = "{}"
domain = "casehost.example.test"
[[mailboxes]]
name = "support"
role = "support"
address = "support@example.test"
source = "maildir"
path = "unused"
[outbound]
from_support = "CaseHost Support <support@example.test>"
from_privacy = "CaseHost Privacy <privacy@example.test>"
transport = "file"
rate_limit_per_hour = 0
"#,
        data.path().display()
    );
    let cfg = Config::from_toml(&toml, "bench.toml", data.path()).expect("config");
    let d = Arc::new(Daemon::open(cfg, Arc::new(SystemClock)).expect("daemon"));
    let p = &d.pipeline;
    let templates = corpus();
    let now = chrono::Utc::now();
    let envs: Vec<Envelope> = (0..n)
        .map(|i| Envelope {
            source: "support".into(),
            key: format!("1:{}", i + 1),
            received_at: now,
            raw: variant(&templates[i % templates.len()], i),
            original_size: None,
        })
        .collect();
    let role = p.role_of("support");
    let (mut t_prep, mut t_commit, mut t_flush) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut taken = 0;
    let cpu0 = cpu_seconds(&[]).0;
    let start = Instant::now();
    for batch in envs.chunks(1000) {
        let t = Instant::now();
        let (prepared, _, _) =
            p.prepare_batch(batch.to_vec(), role, IngestOptions::default(), None);
        t_prep += t.elapsed();
        let t = Instant::now();
        for g in prepared.chunks(100) {
            taken += p.commit(g).iter().filter(|r| r.is_ok()).count();
        }
        t_commit += t.elapsed();
        let t = Instant::now();
        p.store.flush_blocking().expect("flush");
        t_flush += t.elapsed();
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(&[]).0 - cpu0;
    let per_k = |d: Duration| d.as_secs_f64() * 1000.0 * 1000.0 / n as f64;
    println!(
        "store ingest: {taken} of {n} messages in {secs:.2} s = {:.0} messages/s; per 1,000: prepare {:.0} ms, commit {:.0} ms, flush {:.0} ms; CPU {:.0} µs per message; store on disk {:.1} MB",
        taken as f64 / secs,
        per_k(t_prep),
        per_k(t_commit),
        per_k(t_flush),
        1e6 * cpu / n as f64,
        dir_size(data.path()) as f64 / 1e6,
    );
    let (used, discarded) = p.plans_made_ahead();
    println!("  new-case plans made ahead: {used} used, {discarded} discarded");
    drop(d);
    if std::env::var("TICKETD_BENCH_TREES").is_ok() {
        let db = sled::open(data.path().join("store")).expect("reopen");
        for name in db.tree_names() {
            let t = db.open_tree(&name).expect("tree");
            let (mut n, mut k, mut v) = (0usize, 0usize, 0usize);
            for (key, val) in t.iter().flatten() {
                n += 1;
                k += key.len();
                v += val.len();
            }
            println!(
                "  tree {:<16} {n:>7} entries, keys {:>6.1} MB, values {:>6.1} MB",
                String::from_utf8_lossy(&name),
                k as f64 / 1e6,
                v as f64 / 1e6
            );
        }
    }
}

fn dir_size(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
