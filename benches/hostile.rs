//! The hostile-input table: each input is imported by the release binary
//! (`ticketd import`, which parses, triages, renders the acknowledgement
//! and stores the message) in a fresh store, and the table gives the wall
//! time, the peak RSS (the process's `VmHWM`, read from /proc while it
//! runs) and what became of the message.
//!
//! `cargo bench --bench hostile` (about a minute). The assertions that
//! each input is handled live in the tests (`tests/faults.rs`,
//! `tests/spine.rs`); this only measures.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn inputs() -> Vec<(&'static str, Vec<u8>)> {
    let head = |extra: &str| {
        format!(
            "From: Dana Ruiz <dana@legalaid-north.example.org>\r\nTo: support@casehost.example\r\nSubject: Reports fail\r\nMessage-ID: <{}@x.example>\r\nDate: Tue, 01 Dec 2026 10:00:00 -0500\r\nMIME-Version: 1.0\r\n{extra}",
            fastrand::u64(..)
        )
    };
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    // 30 MB of text.
    let mut big = head("Content-Type: text/plain\r\n\r\n").into_bytes();
    let line = b"The monthly report shows an error when I open it in the browser.\r\n";
    while big.len() < 30 << 20 {
        big.extend_from_slice(line);
    }
    out.push(("30 MB mail", big));
    // 10,000 MIME parts.
    let mut parts = head("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n");
    for i in 0..10_000 {
        parts.push_str(&format!(
            "--b\r\nContent-Type: text/plain\r\n\r\npart {i}: the report shows an error\r\n"
        ));
    }
    parts.push_str("--b--\r\n");
    out.push(("10,000 MIME parts", parts.into_bytes()));
    // 1,000-deep nesting.
    let mut nest = head("Content-Type: multipart/mixed; boundary=\"n0\"\r\n\r\n");
    for i in 1..1000 {
        nest.push_str(&format!(
            "--n{}\r\nContent-Type: multipart/mixed; boundary=\"n{i}\"\r\n\r\n",
            i - 1
        ));
    }
    nest.push_str("--n999\r\nContent-Type: text/plain\r\n\r\nThe site is down.\r\n");
    for i in (0..1000).rev() {
        nest.push_str(&format!("--n{i}--\r\n"));
    }
    out.push(("1,000-deep nesting", nest.into_bytes()));
    // 100,000 links in an HTML-only body.
    let mut html = head("Content-Type: text/html\r\n\r\n<html><body><p>Error in reports</p>");
    for i in 0..100_000 {
        html.push_str(&format!("<a href=\"https://x.example/{i}\">link {i}</a> "));
    }
    html.push_str("</body></html>\r\n");
    out.push(("100,000-link HTML", html.into_bytes()));
    // Header injection and control characters in every value we copy.
    out.push((
        "CR/LF/NUL in names, subject, ids",
        "From: =?utf-8?q?Eve=0D=0ABcc=3A_x=40evil.example=00?= <eve@legalaid-north.example.org>\r\nReply-To: =?utf-8?b?TWFsbG9yeQ0KQmNjOiB5QGV2aWwuZXhhbXBsZQ==?= <mallory@legalaid-north.example.org>\r\nTo: support@casehost.example\r\nSubject: =?utf-8?q?Help=0D=0ABcc=3A_z=40evil.example=00?=\r\nMessage-ID: <inj@x.example>\r\nIn-Reply-To: <bad\u{0} id@x>\r\nReferences: <a@x>\r\n\tBcc: w@evil.example\r\n\r\nThe report shows an error.\r\n"
            .as_bytes()
            .to_vec(),
    ));
    // A 1 MB Subject.
    out.push((
        "1 MB Subject",
        format!(
            "From: Dana <dana@legalaid-north.example.org>\r\nTo: support@casehost.example\r\nSubject: {}\r\nMessage-ID: <bigsubj@x.example>\r\n\r\nThe report shows an error.\r\n",
            "S".repeat(1 << 20)
        )
        .into_bytes(),
    ));
    // 8-bit garbage header names.
    let mut garbage =
        b"Fr\xffom: x\r\n\x01\x02\x03: \xfe\xfd\r\nSub\x80ject: y\r\n\r\nbody\r\n".to_vec();
    for _ in 0..10_000 {
        garbage.push(fastrand::u8(..));
    }
    out.push(("8-bit garbage headers", garbage));
    // 10,000 ids in References.
    let mut refs = String::from("References:");
    for i in 0..10_000 {
        refs.push_str(&format!(" <r{i}@x.example>"));
    }
    out.push((
        "10,000 References",
        head(&format!(
            "{refs}\r\nContent-Type: text/plain\r\n\r\nStill an error.\r\n"
        ))
        .into_bytes(),
    ));
    out
}

/// Run `bin args`, sampling its VmHWM; returns (wall time, peak KiB, stdout).
fn measure(bin: &Path, args: &[&str]) -> (Duration, u64, String) {
    let start = Instant::now();
    let child = Command::new(bin)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ticketd");
    let status = format!("/proc/{}/status", child.id());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(s) = std::fs::read_to_string(&status) {
                    if let Some(kb) = s
                        .lines()
                        .find_map(|l| l.strip_prefix("VmHWM:"))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    {
                        peak = peak.max(kb);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    let out = child.wait_with_output().expect("wait ticketd");
    let took = start.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.join().unwrap_or(0);
    (
        took,
        peak,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn main() {
    let bin = Path::new(env!("CARGO_BIN_EXE_ticketd"));
    let default = include_str!("../src/default.toml");
    println!("| input | bytes | time | peak RSS | outcome |");
    println!("|---|---|---|---|---|");
    for (name, raw) in inputs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("ticketd.toml");
        std::fs::write(
            &cfg,
            default.replace(
                "data_dir = \"ticketd-data\"",
                &format!("data_dir = \"{}\"", dir.path().join("data").display()),
            ),
        )
        .expect("config");
        let file = dir.path().join("input.eml");
        std::fs::File::create(&file)
            .and_then(|mut f| f.write_all(&raw))
            .expect("input");
        let cfg_s = cfg.to_string_lossy().to_string();
        let file_s = file.to_string_lossy().to_string();
        let (took, peak, out) = measure(bin, &["import", "--config", &cfg_s, "--json", &file_s]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
        let outcome = match v["outcomes"][0][1]["outcome"].as_str() {
            Some("new_case") => format!(
                "case {} ({})",
                v["outcomes"][0][1]["case"].as_str().unwrap_or("?"),
                if v["outcomes"][0][1]["outbox"].is_null() {
                    "no ack"
                } else {
                    "ack queued"
                }
            ),
            Some("ignored") => {
                let (_, _, list) = measure(bin, &["ignored", "list", "--config", &cfg_s, "--json"]);
                let r: serde_json::Value =
                    serde_json::from_str(list.lines().next().unwrap_or("{}")).unwrap_or_default();
                format!(
                    "set aside: {} — {}",
                    r["category"].as_str().unwrap_or("?"),
                    r["reasons"][0].as_str().unwrap_or("?")
                )
            }
            Some(o) => o.to_string(),
            None => format!("error: {}", out.trim()),
        };
        println!(
            "| {name} | {} | {:.0} ms | {:.1} MB | {outcome} |",
            raw.len(),
            took.as_secs_f64() * 1000.0,
            peak as f64 / 1024.0
        );
    }
}
