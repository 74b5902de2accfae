//! Triage benchmark (not a test): `cargo bench --bench classify`.
//!
//! 1. Throughput: every message of `fixtures/corpus` and `fixtures/demo`
//!    classified in a loop on one thread for about 3 s → messages/s.
//! 2. Worst cases, each the slowest of 5 runs: a 50 MB plain-text message,
//!    a 50 MB message with a base64 attachment, and an HTML-only message
//!    with 100,000 links.
//!
//! Targets (issue 3): ≥ 20,000 messages/s on one core for typical mail;
//! every worst case under 200 ms.

use std::path::PathBuf;
use std::time::{Duration, Instant};
use ticketd::classify::Classifier;
use ticketd::config::{Config, Role};
use ticketd::triage::Rules;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = match Config::from_toml(ticketd::config::EMBEDDED_DEFAULT, "default", &root) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("config: {e}");
            std::process::exit(1);
        }
    };
    let rules = config.triage.compiled.clone();
    let classifier = Classifier::new(&config, &rules);
    let classify = |name: &str, raw: &[u8], _c: &Config, _r: &Rules, role| {
        classifier.classify(name, raw, role)
    };
    let mut corpus: Vec<(String, Vec<u8>)> = Vec::new();
    for dir in ["fixtures/corpus", "fixtures/demo"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        for f in files
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "eml"))
        {
            if let Ok(b) = std::fs::read(&f) {
                corpus.push((f.display().to_string(), b));
            }
        }
    }
    let bytes: usize = corpus.iter().map(|(_, b)| b.len()).sum();
    println!(
        "corpus: {} messages, {:.1} KB average",
        corpus.len(),
        bytes as f64 / corpus.len() as f64 / 1024.0
    );

    // Warm up (rule automaton, language model, allocator).
    for (name, raw) in &corpus {
        std::hint::black_box(classify(name, raw, &config, &rules, Some(Role::Support)));
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        for (name, raw) in &corpus {
            std::hint::black_box(classify(name, raw, &config, &rules, Some(Role::Support)));
            n += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "throughput: {:.0} messages/s on one thread ({n} messages in {secs:.2} s; target >= 20000)",
        n as f64 / secs
    );

    let header = "From: Big Sender <big@legalaid-north.example.org>\r\nTo: support@casehost.example\r\nSubject: Export gives an error\r\nMessage-ID: <big@x>\r\n";
    let mut plain =
        format!("{header}Content-Type: text/plain\r\n\r\nThe export shows an error.\r\n")
            .into_bytes();
    while plain.len() < 50 * 1024 * 1024 {
        plain.extend_from_slice(
            b"Lorem ipsum dolor sit amet, the totals are wrong and nothing loads at all.\r\n",
        );
    }
    let mut attach = format!("{header}MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSee the attached log, the export shows an error.\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n").into_bytes();
    while attach.len() < 50 * 1024 * 1024 {
        attach.extend_from_slice(
            b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n",
        );
    }
    attach.extend_from_slice(b"--b--\r\n");
    let mut html = format!("{header}MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Would it be possible to add a links page?</p>").into_bytes();
    for i in 0..100_000 {
        html.extend_from_slice(
            format!("<a href=\"https://example.org/page/{i}\">link {i}</a><br>\r\n").as_bytes(),
        );
    }
    html.extend_from_slice(b"</body></html>\r\n");

    for (label, raw) in [
        ("50 MB plain text", &plain),
        ("50 MB with base64 attachment", &attach),
        ("HTML with 100,000 links", &html),
    ] {
        let mut worst = Duration::ZERO;
        let mut kind = None;
        for _ in 0..5 {
            let t = Instant::now();
            let c = classify(label, raw, &config, &rules, Some(Role::Support));
            worst = worst.max(t.elapsed());
            kind = c.kind;
        }
        println!(
            "worst case: {label} ({:.1} MB): {:.1} ms (kind {:?}; target < 200 ms)",
            raw.len() as f64 / 1_048_576.0,
            worst.as_secs_f64() * 1000.0,
            kind
        );
    }
}
