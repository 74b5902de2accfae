//! Signals that cannot be lost, through the real binary: SIGTERM at random
//! moments from the first millisecond of `ticketd run` always ends in a
//! clean exit (status 0) within a few seconds, with the store unlocked
//! (a second open succeeds); a second signal during a slow shutdown ends
//! the process at once.
//!
//! "The first millisecond" is counted from the moment the process has its
//! SIGTERM handler (read from `/proc/PID/status`, `SigCgt`): before that a
//! signal takes the kernel's default action, which no program can change
//! from inside (the handler is the first thing `ticketd run` installs,
//! before reading its configuration or opening the store).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A data directory with the embedded default configuration in it.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("ticketd.toml");
    std::fs::write(&cfg, ticketd::config::EMBEDDED_DEFAULT).expect("write config");
    (dir, cfg)
}

fn start(cfg: &Path, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticketd"));
    cmd.args(["--config", &cfg.display().to_string(), "run"])
        .env_remove("TICKETD_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start ticketd")
}

/// Whether the process catches SIGTERM yet (bit 15 of `SigCgt`).
fn catches_term(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (15 - 1)) != 0)
}

fn wait_for_handler(child: &mut Child) {
    let start = Instant::now();
    while !catches_term(child.id()) {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("ticketd exited before installing its handler: {st}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no SIGTERM handler"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} failed");
}

/// Wait for the exit; `None` when it takes longer than `within`.
fn wait_exit(child: &mut Child, within: Duration) -> Option<(ExitStatus, Duration)> {
    let start = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some((st, start.elapsed()));
        }
        if start.elapsed() > within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn stderr_of(child: &mut Child) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut s);
    }
    s
}

/// One try: SIGTERM `delay` after the handler is in place (or, with
/// `after_socket`, once the control socket exists). Returns whether the
/// socket existed when the signal went and how long the exit took.
fn one_try(delay: Duration, after_socket: bool) -> (bool, Duration) {
    let (dir, cfg) = setup();
    let data = dir.path().join("ticketd-data");
    let sock = data.join("control.sock");
    let mut child = start(&cfg, &[]);
    wait_for_handler(&mut child);
    if after_socket {
        let start = Instant::now();
        while !sock.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no control socket"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    std::thread::sleep(delay);
    let had_socket = sock.exists();
    signal(&child, "-TERM");
    let Some((status, took)) = wait_exit(&mut child, Duration::from_secs(5)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "no exit within 5 s of SIGTERM (delay {delay:?}, socket {had_socket}): {}",
            stderr_of(&mut child)
        );
    };
    let err = stderr_of(&mut child);
    assert!(
        status.success(),
        "exit {status} after SIGTERM at {delay:?} (socket {had_socket}): {err}"
    );
    // The store is free: a second open succeeds (the lock and sled's files).
    if data.join("store").exists() {
        let store = ticketd::store::Store::open(&data)
            .unwrap_or_else(|e| panic!("store still held after exit: {e}"));
        drop(store);
    }
    assert!(!sock.exists(), "control socket left behind");
    (had_socket, took)
}

#[test]
fn sigterm_at_any_moment_exits_cleanly() {
    let mut before_socket = 0;
    let mut with_socket = 0;
    let mut slowest = Duration::ZERO;
    let tries = 30;
    for i in 0..tries {
        let delay = if i == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(fastrand::u64(0..=300))
        };
        let (had, took) = one_try(delay, false);
        if had {
            with_socket += 1;
        } else {
            before_socket += 1;
        }
        slowest = slowest.max(took);
    }
    for _ in 0..5 {
        let (had, took) = one_try(Duration::from_millis(fastrand::u64(0..=50)), true);
        assert!(had);
        with_socket += 1;
        slowest = slowest.max(took);
    }
    println!(
        "signals: {} tries, {before_socket} before the control socket existed, {with_socket} after; all exited 0, slowest exit {slowest:?}",
        tries + 5
    );
}

#[test]
fn a_second_signal_ends_a_slow_shutdown() {
    let (dir, cfg) = setup();
    let sock = dir.path().join("ticketd-data").join("control.sock");
    let mut child = start(&cfg, &[("TICKETD_DELAY", "shutdown:60000")]);
    let start = Instant::now();
    while !sock.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no control socket"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(&child, "-TERM");
    // The first signal starts the (artificially slow) shutdown.
    assert!(
        wait_exit(&mut child, Duration::from_millis(500)).is_none(),
        "the delay point did not hold the shutdown"
    );
    signal(&child, "-INT");
    let (status, took) = wait_exit(&mut child, Duration::from_secs(3)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("a second signal did not end the process")
    });
    println!("second signal: exit {status} after {took:?}");
    assert_eq!(status.code(), Some(130), "128 + SIGINT");
    let err = stderr_of(&mut child);
    assert!(err.contains("second signal"), "{err}");
}
