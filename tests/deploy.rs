//! The systemd units in `deploy/` parse (`systemd-analyze verify`, with no
//! warning about them) and the service's hardening stays strong
//! (`systemd-analyze security --offline`); skipped where systemd-analyze
//! is not installed.
//!
//! The rest needs nothing installed: the unit is `Type=notify` with a
//! watchdog and credentials; the image's structure read from the
//! Dockerfile's text (multi-stage, non-root, HEALTHCHECK `ticketd health`,
//! data VOLUME; nothing is pulled); the try-out `compose.yaml` (its three
//! services and the data volume) and its ticketd config; and, through the
//! binary, `ticketd health` (exit 1 with no daemon, 0 against one) and the
//! `sd_notify` messages (READY=1, WATCHDOG=1, STOPPING=1) on a socket of
//! the test's own standing in for systemd's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const UNITS: &[&str] = &[
    "ticketd.service",
    "ticketd-backup.service",
    "ticketd-backup.timer",
];

fn analyze_available() -> bool {
    Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The units in a temp dir, with ExecStart pointing at the binary under
/// test (verify insists that the command exists).
fn units() -> (tempfile::TempDir, Vec<PathBuf>) {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut paths = Vec::new();
    for u in UNITS {
        let text = std::fs::read_to_string(repo.join("deploy").join(u)).expect("unit");
        let text = text.replace("/usr/local/bin/ticketd", env!("CARGO_BIN_EXE_ticketd"));
        let p = dir.path().join(u);
        std::fs::write(&p, text).expect("write unit");
        paths.push(p);
    }
    (dir, paths)
}

#[test]
fn the_systemd_units_parse_without_warnings() {
    if !analyze_available() {
        eprintln!("skipped: systemd-analyze not installed");
        return;
    }
    let (dir, paths) = units();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&paths)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Only what concerns our files (a container's own units may be noisy).
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| UNITS.iter().any(|u| l.contains(u)))
        .collect();
    assert!(out.status.success(), "{text}");
    assert!(ours.is_empty(), "{}", ours.join("\n"));
}

#[test]
fn the_service_is_hardened() {
    if !analyze_available() {
        eprintln!("skipped: systemd-analyze not installed");
        return;
    }
    let (dir, paths) = units();
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&paths[0])
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let Some(level) = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for ticketd.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f32>().ok())
    else {
        eprintln!(
            "skipped: this systemd-analyze has no offline security check: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    };
    assert!(level <= 2.0, "exposure {level}:\n{text}");
}

fn deploy_file(name: &str) -> String {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(repo.join("deploy").join(name)).expect("deploy file")
}

/// The Dockerfile's instructions: (keyword upper-cased, arguments), with
/// comments dropped and `\` continuations joined.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (kw, rest) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        out.push((kw.to_ascii_uppercase(), rest.trim().to_string()));
        current.clear();
    }
    out
}

#[test]
fn the_image_is_multi_stage_non_root_with_a_health_check_and_a_data_volume() {
    let ins = dockerfile_instructions(&deploy_file("Dockerfile"));
    let froms: Vec<usize> = ins
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| k == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(froms.len() >= 2, "not multi-stage: {} FROM", froms.len());
    let last_stage = &ins[*froms.last().expect("a FROM")..];
    // The final stage copies the binary from an earlier one.
    assert!(
        last_stage
            .iter()
            .any(|(k, a)| k == "COPY" && a.starts_with("--from=")),
        "final stage copies nothing from the build stage"
    );
    let user = last_stage
        .iter()
        .rev()
        .find(|(k, _)| k == "USER")
        .map(|(_, a)| a.clone())
        .expect("a USER in the final stage");
    let name = user.split(':').next().unwrap_or("").trim();
    assert!(
        !name.is_empty() && name != "root" && name != "0",
        "final stage runs as {user:?}"
    );
    let health = last_stage
        .iter()
        .find(|(k, _)| k == "HEALTHCHECK")
        .map(|(_, a)| a.clone())
        .expect("a HEALTHCHECK");
    let cmd = health
        .split_once("CMD")
        .map(|(_, c)| c.trim())
        .unwrap_or("");
    assert!(
        cmd.contains(r#"["ticketd", "health"]"#) || cmd.contains(r#"["ticketd","health"]"#),
        "HEALTHCHECK does not run `ticketd health`: {health}"
    );
    assert!(
        last_stage
            .iter()
            .any(|(k, a)| k == "VOLUME" && a.contains("/var/lib/ticketd")),
        "no VOLUME for the data dir"
    );
}

/// Top-level keys of a YAML mapping written in block style, and the keys
/// of each one's mapping (two-space indentation), comments skipped.
fn yaml_outline(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let Some((key, _)) = line.trim().split_once(':') else {
            continue;
        };
        if key.starts_with('-') || key.contains(' ') {
            continue;
        }
        match indent {
            0 => out.push((key.to_string(), Vec::new())),
            2 => {
                if let Some((_, children)) = out.last_mut() {
                    children.push(key.to_string());
                }
            }
            _ => {}
        }
    }
    out
}

fn children<'a>(outline: &'a [(String, Vec<String>)], key: &str) -> &'a [String] {
    outline
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, c)| c.as_slice())
        .unwrap_or(&[])
}

#[test]
fn the_tryout_compose_has_ticketd_dovecot_postfix_and_the_data_volume() {
    let text = deploy_file("compose.yaml");
    let outline = yaml_outline(&text);
    let services = children(&outline, "services");
    for s in ["ticketd", "dovecot", "postfix"] {
        assert!(
            services.iter().any(|x| x == s),
            "no service {s}: {services:?}"
        );
    }
    assert!(
        children(&outline, "volumes")
            .iter()
            .any(|v| v == "ticketd-data"),
        "no ticketd-data volume"
    );
    assert!(
        text.contains("ticketd-data:/var/lib/ticketd"),
        "the data volume is not mounted at the data dir"
    );
    // Every file the compose file mounts or builds from is in deploy/.
    let deploy = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy");
    for rel in [
        "tryout/ticketd.toml",
        "tryout/dovecot.conf",
        "tryout/imap-password",
        "tryout/postfix/Dockerfile",
        "tryout/postfix/main.cf",
    ] {
        assert!(deploy.join(rel).is_file(), "deploy/{rel} missing");
        assert!(
            text.contains(&format!("./{rel}")) || rel.starts_with("tryout/postfix/"),
            "compose.yaml does not use ./{rel}"
        );
    }
}

#[test]
fn the_tryout_config_is_valid_and_reads_the_tryout_servers() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/tryout/ticketd.toml");
    let config = ticketd::config::Config::load(Some(&path)).expect("tryout config loads");
    assert_eq!(config.data_dir, Path::new("/var/lib/ticketd"));
    assert_eq!(config.mailboxes.len(), 2);
    let text = deploy_file("tryout/ticketd.toml");
    assert!(text.contains(r#"password_file = "/run/secrets/imap-password""#));
}

#[test]
fn the_service_is_type_notify_with_a_watchdog_and_credentials() {
    let unit = deploy_file("ticketd.service");
    let keys: Vec<(&str, &str)> = unit
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let has = |k: &str, v: &str| keys.iter().any(|(kk, vv)| *kk == k && vv.starts_with(v));
    assert!(has("Type", "notify"), "not Type=notify");
    assert!(has("NotifyAccess", "main"));
    assert!(has("WatchdogSec", "60s"));
    assert!(has(
        "LoadCredential",
        "imap-password:/etc/ticketd/credentials/"
    ));
    assert!(has("User", "ticketd"));
    assert!(has("RestartSec", ""));
    assert!(has("ProtectSystem", "strict"));
}

/// A data directory with the embedded default configuration in it.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("ticketd.toml");
    std::fs::write(&cfg, ticketd::config::EMBEDDED_DEFAULT).expect("write config");
    (dir, cfg)
}

fn ticketd(cfg: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticketd"));
    cmd.arg("--config")
        .arg(cfg)
        .env_remove("TICKETD_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "warn");
    cmd
}

fn health(cfg: &Path) -> (i32, String) {
    let out = ticketd(cfg).arg("health").output().expect("ticketd health");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn health_without_a_daemon_says_not_running_and_exits_1() {
    let (_dir, cfg) = setup();
    let (code, text) = health(&cfg);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not running"), "{text}");
}

/// The next datagram whose text satisfies `want`, within `within`.
fn wait_for(sock: &std::os::unix::net::UnixDatagram, want: &str, within: Duration) -> bool {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < within {
        if let Ok(n) = sock.recv(&mut buf) {
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == want)
            {
                return true;
            }
        }
    }
    false
}

#[test]
fn the_daemon_notifies_ready_watchdog_stopping_and_answers_health() {
    let (dir, cfg) = setup();
    let notify = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&notify).expect("notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let mut child = ticketd(&cfg)
        .arg("run")
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "200000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ticketd");
    let ready = wait_for(&sock, "READY=1", Duration::from_secs(30));
    let checked = ready.then(|| health(&cfg));
    // Pings every 100 ms (half of WATCHDOG_USEC).
    let pinged = ready && wait_for(&sock, "WATCHDOG=1", Duration::from_secs(5));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stopping = wait_for(&sock, "STOPPING=1", Duration::from_secs(10));
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(ready, "no READY=1");
    let (code, text) = checked.unwrap_or_default();
    assert_eq!(code, 0, "ticketd health against the daemon: {text}");
    assert!(text.lines().any(|l| l == "healthy"), "{text}");
    assert!(pinged, "no WATCHDOG=1");
    assert!(stopping, "no STOPPING=1");
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
    let (code, text) = health(&cfg);
    assert_eq!(code, 1, "after the daemon stopped: {text}");
    assert!(text.contains("not running"), "{text}");
}

#[test]
fn health_names_a_failing_mailbox_and_exits_1() {
    let (dir, cfg) = setup();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let broken = format!(
        "\n[[mailboxes]]\nname = \"broken\"\nrole = \"privacy\"\naddress = \"privacy@casehost.example\"\nsource = \"imap\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nauth = \"password\"\npassword_env = \"TICKETD_TEST_UNSET_PASSWORD\"\n"
    );
    let text = format!("{}{broken}", ticketd::config::EMBEDDED_DEFAULT);
    std::fs::write(&cfg, text).expect("write config");
    let mut child = ticketd(&cfg)
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ticketd");
    let start = Instant::now();
    let mut last = (0, String::new());
    while start.elapsed() < Duration::from_secs(30) {
        last = health(&cfg);
        if last.1.contains("mailbox:broken") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    drop(dir);
    let (code, text) = last;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("mailbox:broken: not connected"), "{text}");
    assert!(text.contains("unhealthy"), "{text}");
}

/// Whether `tool` runs at all (mail server tools are optional here).
fn installed(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

#[test]
fn the_tryout_mail_server_configs_parse() {
    let tryout = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/tryout");
    if installed("doveconf", "--version") {
        let out = Command::new("doveconf")
            .arg("-n")
            .arg("-c")
            .arg(tryout.join("dovecot.conf"))
            .output()
            .expect("doveconf");
        assert!(
            out.status.success(),
            "doveconf: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("skipped: doveconf not installed");
    }
    if installed("postconf", "-d") {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(tryout.join("postfix/main.cf"), dir.path().join("main.cf"))
            .expect("copy main.cf");
        // An empty master.cf: only main.cf is checked (unknown or misspelt
        // parameters are warned about as "unused").
        std::fs::write(dir.path().join("master.cf"), "").expect("master.cf");
        let out = Command::new("postconf")
            .arg("-c")
            .arg(dir.path())
            .arg("-n")
            .output()
            .expect("postconf");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.trim().is_empty(),
            "postconf: {err}"
        );
    } else {
        eprintln!("skipped: postconf not installed");
    }
}
