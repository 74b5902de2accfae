//! Scale benchmark (not a test, no mail servers): `cargo bench --bench
//! scale`, `TICKETD_SCALE_N` messages (default 100,000).
//!
//! Generates N synthetic support messages of ≈ 2 KB (distinct senders,
//! subjects and bodies drawn from a word list, so they compress as mail
//! does), imports them with the release binary (`import --no-ack`), then
//! reports: the import rate and its peak RSS, bytes on disk per case, the
//! daemon's start-up time and idle RSS, and `cases list --json --all`
//! counted line by line (as `| wc -l`) with its time and the CLI's peak
//! RSS, without and with a running daemon, the daemon's RSS after that
//! list (and after `TICKETD_SCALE_IDLE` seconds idle, default 30), the
//! escalation tick's duration (every 5 s, from the daemon's log), and a
//! drain of `TICKETD_SCALE_DRAIN` new messages (default 10,000) with
//! `run --once`: its rate and peak RSS. Peak RSS is `/usr/bin/time -f %M`
//! of the child (VmHWM); the daemon's RSS is `VmRSS` / `VmHWM` from `/proc`. `TICKETD_SCALE_KEEP=DIR`
//! keeps the generated mail and store in DIR (reused when present);
//! `TICKETD_SCALE_CACHE` sets `[store] cache_capacity` (default the
//! built-in 32 MiB).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WORDS: &[&str] = &[
    "printer",
    "invoice",
    "login",
    "password",
    "export",
    "report",
    "error",
    "page",
    "server",
    "account",
    "billing",
    "upload",
    "download",
    "timeout",
    "slow",
    "dashboard",
    "customer",
    "order",
    "payment",
    "refund",
    "update",
    "version",
    "browser",
    "mobile",
    "app",
    "crash",
    "screen",
    "button",
    "setting",
    "email",
    "notification",
    "the",
    "a",
    "is",
    "not",
    "when",
    "after",
    "before",
    "our",
    "we",
    "since",
    "yesterday",
    "again",
    "please",
    "help",
    "cannot",
    "does",
    "work",
    "shows",
    "blank",
    "team",
    "office",
    "week",
    "monday",
    "file",
    "csv",
    "pdf",
    "chart",
    "data",
    "sync",
    "calendar",
    "user",
    "admin",
    "role",
    "seat",
    "invite",
];

/// A small deterministic generator (xorshift), so every run sees the same mail.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn word(&mut self) -> &'static str {
        WORDS[(self.next() % WORDS.len() as u64) as usize]
    }
}

fn message(i: usize, rng: &mut Rng) -> Vec<u8> {
    let mut subject = String::new();
    for _ in 0..5 {
        subject.push_str(rng.word());
        subject.push(' ');
    }
    let mut body = String::new();
    while body.len() < 1700 {
        let mut line = String::new();
        while line.len() < 70 {
            line.push_str(rng.word());
            line.push(' ');
        }
        body.push_str(line.trim_end());
        body.push_str(if rng.next().is_multiple_of(5) {
            ".\r\n\r\n"
        } else {
            "\r\n"
        });
    }
    format!(
        "From: Customer {u} <user{u}@customer{d}.example>\r\n\
         To: support@example.test\r\n\
         Subject: {subject}#{i}\r\n\
         Message-ID: <scale-{i}.{r}@customer{d}.example>\r\n\
         Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         Hello,\r\n\r\n{body}\r\nReference {i}, account {r}.\r\n\r\nThanks,\r\nCustomer {u}\r\n",
        u = i % 5000,
        d = i % 300,
        r = rng.next() % 1_000_000,
    )
    .into_bytes()
}

/// Run `bin args` under `/usr/bin/time`: (seconds, peak RSS in bytes,
/// stdout lines); the child's CPU seconds (user + system) are printed.
fn timed(bin: &Path, cfg: &Path, args: &[&str]) -> (f64, u64, u64) {
    let out = std::env::temp_dir().join(format!("ticketd-scale-time-{}", std::process::id()));
    let start = Instant::now();
    let mut child = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%U %S %M")
        .arg("-o")
        .arg(&out)
        .arg(bin)
        .arg("--config")
        .arg(cfg)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn /usr/bin/time");
    let mut lines = 0u64;
    if let Some(stdout) = child.stdout.take() {
        // As `| wc -l`: count and drop.
        let mut r = BufReader::with_capacity(1 << 16, stdout);
        let mut buf = Vec::new();
        while r
            .read_until(b'\n', &mut buf)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            lines += 1;
            buf.clear();
        }
    }
    let st = child.wait().expect("wait");
    let secs = start.elapsed().as_secs_f64();
    assert!(st.success(), "{args:?} failed: {st}");
    let last = std::fs::read_to_string(&out)
        .ok()
        .and_then(|s| s.lines().last().map(str::to_string))
        .unwrap_or_default();
    let f: Vec<f64> = last
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let (cpu, kb) = match f.as_slice() {
        [u, s, m] => (u + s, *m as u64),
        _ => (0.0, 0),
    };
    println!(
        "  ({} {}: {cpu:.1} s CPU)",
        args[0],
        args.get(1).unwrap_or(&"")
    );
    let _ = std::fs::remove_file(&out);
    (secs, kb * 1024, lines)
}

/// `VmRSS` and `VmHWM` of `pid`, bytes.
fn rss(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn du(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += du(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn mb(b: u64) -> String {
    format!("{:.0} MB", b as f64 / 1e6)
}

fn start_daemon(bin: &Path, cfg: &Path, data: &Path, log: &Path) -> (Child, f64) {
    let start = Instant::now();
    let log = std::fs::File::create(log).expect("daemon log");
    let child = Command::new(bin)
        .arg("--config")
        .arg(cfg)
        .arg("run")
        // The scheduler's "job ran" lines carry each job's duration.
        .env("RUST_LOG", "warn,ticketd::schedule=debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start daemon");
    let sock = data.join("control.sock");
    while !sock.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, start.elapsed().as_secs_f64())
}

/// The `took_ms` of every escalation tick in a daemon log, in order.
fn tick_times(log: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| l.contains("job ran") && l.contains("escalate"))
        .filter_map(|l| {
            let rest = &l[l.find("took_ms")? + "took_ms".len()..];
            let num: String = rest
                .trim_start_matches(['=', '"', ':', ' '])
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            num.parse().ok()
        })
        .collect()
}

fn main() {
    let n: usize = std::env::var("TICKETD_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_ticketd"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = std::env::var_os("TICKETD_SCALE_KEEP")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let mail = root.join("mail");
    let data = root.join("data");
    std::fs::create_dir_all(root.join("inbox/new")).expect("inbox");
    let cfg = root.join("scale.toml");
    let mut f = std::fs::File::create(&cfg).expect("config");
    write!(
        f,
        r#"data_dir = "{data}"
domain = "example.test"
[[mailboxes]]
name = "support"
role = "support"
address = "support@example.test"
source = "maildir"
path = "{inbox}"
[outbound]
from_support = "Support <support@example.test>"
from_privacy = "Privacy <privacy@example.test>"
transport = "file"
rate_limit_per_hour = 0
[daemon]
batch_size = 1000
[schedule]
escalate = "*/5 * * * * *"
{store}"#,
        data = data.display(),
        inbox = root.join("inbox").display(),
        store = std::env::var("TICKETD_SCALE_CACHE")
            .map(|c| format!("[store]\ncache_capacity = \"{c}\"\n"))
            .unwrap_or_default(),
    )
    .expect("write config");
    drop(f);

    let fresh = !data.join("store").exists();
    if fresh {
        let t = Instant::now();
        std::fs::create_dir_all(&mail).expect("mail dir");
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut bytes = 0;
        for i in 0..n {
            let m = message(i, &mut rng);
            bytes += m.len();
            std::fs::write(mail.join(format!("{i:07}.eml")), m).expect("write message");
        }
        println!(
            "generated {n} messages, {:.0} bytes on average, in {:.1} s (not timed below)",
            bytes as f64 / n as f64,
            t.elapsed().as_secs_f64()
        );
        let mail_s = mail.display().to_string();
        let (secs, peak, _) = timed(&bin, &cfg, &["import", "--no-ack", "--json", &mail_s]);
        println!(
            "import --no-ack: {n} in {secs:.1} s = {:.0} messages/s, peak RSS {}",
            n as f64 / secs,
            mb(peak)
        );
    }

    let (secs, peak, lines) = timed(&bin, &cfg, &["cases", "list", "--limit", "1", "--json"]);
    println!("no daemon: cases list --limit 1 (open + first case): {secs:.2} s, peak RSS {}, {lines} line", mb(peak));
    let (secs, peak, lines) = timed(&bin, &cfg, &["cases", "list", "--json", "--all"]);
    println!(
        "no daemon: cases list --json --all | wc -l = {lines}: {secs:.2} s, peak RSS {}",
        mb(peak)
    );
    let disk = du(&data.join("store"));
    println!(
        "store on disk: {} = {:.0} bytes per case ({lines} cases)",
        mb(disk),
        disk as f64 / lines.max(1) as f64
    );

    let idle_secs: u64 = std::env::var("TICKETD_SCALE_IDLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let log = root.join("daemon.log");
    let (mut d, startup) = start_daemon(&bin, &cfg, &data, &log);
    std::thread::sleep(Duration::from_secs(idle_secs));
    let (idle, _) = rss(d.id());
    println!(
        "daemon: start-up {startup:.2} s (to its control socket), idle RSS after {idle_secs} s {}",
        mb(idle)
    );
    let ticks = tick_times(&log);
    println!(
        "escalation tick (every 5 s, idle): {} ticks, max {:.1} ms",
        ticks.len(),
        ticks.iter().cloned().fold(0.0, f64::max)
    );
    let idle_ticks = ticks.len();
    let (secs, peak, lines) = timed(&bin, &cfg, &["cases", "list", "--json", "--all"]);
    let (after, hwm) = rss(d.id());
    println!(
        "through the daemon: cases list --json --all | wc -l = {lines}: {secs:.2} s, CLI peak RSS {}; daemon RSS after {} (peak {})",
        mb(peak),
        mb(after),
        mb(hwm)
    );
    let (secs, _, lines) = timed(&bin, &cfg, &["cases", "list", "--json", "--all"]);
    let (after2, _) = rss(d.id());
    println!(
        "through the daemon, again: {lines} lines in {secs:.2} s; daemon RSS after {}",
        mb(after2)
    );
    // Ticks while the lists were answered (every 5 s, so a stalled
    // scheduler shows as a long one or as missing ones).
    std::thread::sleep(Duration::from_secs(6));
    let ticks = tick_times(&log);
    let during = ticks.get(idle_ticks..).unwrap_or_default();
    println!(
        "escalation tick during and after the lists: {} ticks, max {:.1} ms",
        during.len(),
        during.iter().cloned().fold(0.0, f64::max)
    );
    let _ = Command::new("kill")
        .args(["-TERM", &d.id().to_string()])
        .status();
    let _ = d.wait();

    // A drain of new mail into this store: the daemon's own ingest path
    // (Maildir source, acknowledgements rendered and queued), then the
    // acknowledgements delivered by the file transport, in one `run --once`.
    let drain: usize = std::env::var("TICKETD_SCALE_DRAIN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    if drain > 0 {
        let new = root.join("inbox/new");
        // Seeded by the clock: new Message-IDs on every run, also into a
        // kept store.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut rng = Rng((0xD1B5_4A32_D192_ED03 ^ seed) | 1);
        for i in 0..drain {
            let m = message(n + i, &mut rng);
            std::fs::write(new.join(format!("drain{i:07}.eml")), m).expect("write message");
        }
        let (secs, peak, _) = timed(&bin, &cfg, &["run", "--once"]);
        println!(
            "drain: {drain} messages (run --once: ingest, then {drain} acknowledgements written) in {secs:.1} s = {:.0} messages/s, peak RSS {}",
            drain as f64 / secs,
            mb(peak)
        );
    }
}
