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

#[path = "../tests/faults/hostile_inputs.rs"]
mod hostile_inputs;
use hostile_inputs::inputs;

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
