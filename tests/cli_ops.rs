//! The operations side of the binary: which configuration it uses, exit
//! statuses of `run --once` on errors, `check-config` (every error in one
//! run, `--connect` against the real mail servers), completions and the
//! manual page, the brand in outgoing mail, and a command run while the
//! daemon is starting.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn ticketd(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticketd"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("TICKETD_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run ticketd")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The embedded default with `[outbound]` keys added (a file beside the
/// data directory).
fn config_with(dir: &Path, outbound_extra: &str, extra: &str) -> std::path::PathBuf {
    let text = ticketd::config::EMBEDDED_DEFAULT
        .replace("[outbound]\n", &format!("[outbound]\n{outbound_extra}\n"));
    let path = dir.join("ticketd.toml");
    std::fs::write(&path, format!("{text}\n{extra}\n")).expect("write config");
    path
}

#[test]
fn completions_and_man_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = ticketd(dir.path(), &["completions", "bash"], &[]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(
        out.contains("_ticketd") && out.contains("check-config"),
        "{out}"
    );
    let o = ticketd(dir.path(), &["completions", "zsh"], &[]);
    assert!(o.status.success() && text(&o).0.contains("#compdef ticketd"));
    let o = ticketd(dir.path(), &["man"], &[]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(
        out.contains(".TH ticketd") && out.contains("TICKETD_CONFIG"),
        "{out}"
    );
}

#[test]
fn embedded_demo_is_announced_and_ticketd_config_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    if Path::new(ticketd::cli::ops::DEFAULT_CONFIG).exists() {
        eprintln!(
            "skipped: this machine has {}",
            ticketd::cli::ops::DEFAULT_CONFIG
        );
        return;
    }
    // No configuration anywhere: the README's first command still works.
    let o = ticketd(dir.path(), &["run", "--once"], &[]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(err.contains("embedded demo configuration"), "{err}");
    assert!(out.contains("new cases"), "{out}");

    // TICKETD_CONFIG names the file; the brand signs the mail.
    let other = tempfile::tempdir().expect("tempdir");
    let cfg = config_with(other.path(), "brand = \"Acme Help\"", "");
    let cfg_s = cfg.display().to_string();
    let o = ticketd(
        dir.path(),
        &["run", "--once"],
        &[("TICKETD_CONFIG", cfg_s.as_str())],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(!err.contains("embedded demo"), "{err}");
    let mail_dir = other.path().join("ticketd-data/outbox-mail");
    let mut acks = 0;
    for e in std::fs::read_dir(&mail_dir).expect("outbox-mail") {
        let body = std::fs::read_to_string(e.expect("entry").path()).expect("mail");
        if body.contains("We have opened case") || body.contains("Acme Help Privacy") {
            assert!(body.contains("Acme Help"), "{body}");
            assert!(!body.contains("CaseHost support"), "{body}");
            acks += 1;
        }
    }
    assert!(
        acks > 0,
        "no acknowledgement written in {}",
        mail_dir.display()
    );
}

#[test]
fn run_once_and_check_config_fail_on_bad_mailboxes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mailbox = |name: &str, tls: &str, extra: &str| {
        format!(
            "[[mailboxes]]\nname = \"{name}\"\nrole = \"support\"\naddress = \"{name}@example.test\"\nsource = \"imap\"\nhost = \"127.0.0.1\"\nport = 9\ntls = \"{tls}\"\ntimeout = \"2s\"\n{extra}\n"
        )
    };
    let extra = format!(
        "{}{}",
        mailbox(
            "novar",
            "none",
            "password_env = \"TICKETD_TEST_SURELY_UNSET\""
        ),
        mailbox(
            "noca",
            "starttls",
            "password_file = \"pw\"\nca_file = \"missing-ca.pem\""
        )
    );
    std::fs::write(dir.path().join("pw"), "secret\n").expect("pw");
    let cfg = config_with(dir.path(), "", &extra);
    let cfg_s = cfg.display().to_string();
    let o = ticketd(dir.path(), &["--config", &cfg_s, "run", "--once"], &[]);
    let (out, err) = text(&o);
    // Nothing listens on port 9: reported, and the status says so.
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.contains("error: novar") && out.contains("error: noca"),
        "{out}"
    );
    assert!(err.contains("2 mailbox errors"), "{err}");

    // check-config lists both problems in one run.
    let o = ticketd(dir.path(), &["--config", &cfg_s, "check-config"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    assert!(err.contains("TICKETD_TEST_SURELY_UNSET"), "{err}");
    assert!(err.contains("missing-ca.pem"), "{err}");
}

#[test]
fn check_config_reports_every_error_and_weekday_numbers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_with(
        dir.path(),
        "",
        "[threading]\nsecret_env = \"TICKETD_TEST_NO_SECRET\"\n\n[schedule]\ndigest = \"0 0 8 * * 1-5\"\n",
    );
    // A numeric weekday, a missing templates dir, a missing variable.
    let text0 = std::fs::read_to_string(&cfg).expect("read");
    let text1 = format!("templates_dir = \"no-such-dir\"\n{text0}");
    std::fs::write(&cfg, &text1).expect("write");
    let cfg_s = cfg.display().to_string();
    let o = ticketd(dir.path(), &["--config", &cfg_s, "check-config"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    assert!(err.contains("TICKETD_TEST_NO_SECRET"), "{err}");
    assert!(err.contains("no-such-dir"), "{err}");
    assert!(err.contains("1 = Sunday"), "{err}");
    let errors = err.lines().filter(|l| l.starts_with("error: ")).count();
    assert!(errors >= 2, "every error in one run: {err}");

    // A good configuration: OK, the next runs and the next opening.
    let good = tempfile::tempdir().expect("tempdir");
    let cfg = config_with(good.path(), "", "");
    let cfg_s = cfg.display().to_string();
    let o = ticketd(
        good.path(),
        &["--config", &cfg_s, "check-config", "--connect"],
        &[],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("# configuration OK"), "{out}");
    assert!(out.contains("# job escalate"), "{out}");
    assert!(out.contains("# calendar: next opening 20"), "{out}");
    assert!(out.contains("# mailbox support (maildir"), "{out}");
}

#[test]
fn check_config_prints_every_error_of_the_fixture_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = include_str!("../fixtures/config/every_error.toml");
    let cfg = dir.path().join("every.toml");
    std::fs::write(&cfg, fixture).expect("write config");
    let cfg_s = cfg.display().to_string();
    let o = ticketd(dir.path(), &["--config", &cfg_s, "check-config"], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    let mut expected = 0;
    for (i, line) in fixture.lines().enumerate() {
        let Some((code, want)) = line.split_once("# expect: ") else {
            continue;
        };
        let key = code.split_once('=').map_or("", |(k, _)| k.trim());
        let at = format!("error: {cfg_s}:{}:", i + 1);
        for fragment in want.split("; ") {
            expected += 1;
            let hit = err.lines().any(|l| {
                l.starts_with(&at) && l.contains(&format!("key `{key}`")) && l.contains(fragment)
            });
            assert!(hit, "line {}: {fragment:?} not in {err}", i + 1);
        }
    }
    // And the checks besides validation (the unset variable, the model
    // file) in the same run.
    assert!(err.contains("TICKETD_TEST_PW"), "{err}");
    let errors = err.lines().filter(|l| l.starts_with("error: ")).count();
    assert!(errors > expected, "{errors} errors for {expected}: {err}");
    assert!(
        err.contains(&format!("{errors} errors (each listed above)")),
        "{err}"
    );
}

#[test]
fn a_command_during_daemon_start_never_takes_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_with(dir.path(), "", "");
    let cfg_s = cfg.display().to_string();
    let data = dir.path().join("ticketd-data");
    // Someone (here: this test) holds the store when the daemon starts.
    let held = ticketd::store::Store::open(&data).expect("open store");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .current_dir(dir.path())
        .args(["--config", &cfg_s, "run"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start daemon");
    // A command started now finds the store locked and no socket: it waits.
    let cli = Command::new(env!("CARGO_BIN_EXE_ticketd"))
        .current_dir(dir.path())
        .args(["--config", &cfg_s, "cases", "list", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start command");
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        daemon.try_wait().expect("try_wait").is_none(),
        "the daemon gave up on a held store"
    );
    drop(held);
    let out = cli.wait_with_output().expect("command");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let sock = data.join("control.sock");
    let start = Instant::now();
    while !sock.exists() {
        if let Ok(Some(st)) = daemon.try_wait() {
            let mut e = String::new();
            if let Some(mut s) = daemon.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut s, &mut e);
            }
            panic!("daemon exited {st}: {e}");
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let st = daemon.wait().expect("wait");
    let mut e = String::new();
    if let Some(mut s) = daemon.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut s, &mut e);
    }
    assert!(st.success(), "{e}");
    assert!(e.contains("waiting for it to finish"), "{e}");
}

#[test]
fn connect_checks_and_wrong_password_against_the_mail_servers() {
    let stack = common::MailStack::start();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("good.pw"), stack.get("PASSWORD")).expect("pw");
    std::fs::write(dir.path().join("bad.pw"), "not-the-password\n").expect("pw");
    let imap = |name: &str, user: &str, pw: &str| {
        format!(
            "[[mailboxes]]\nname = \"{name}\"\nrole = \"support\"\naddress = \"{user}\"\nsource = \"imap\"\nusername = \"{user}\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"5s\"\nauth = \"password\"\npassword_file = \"{pw}\"\n\n",
            stack.port("IMAP_PORT")
        )
    };
    let toml = format!(
        "data_dir = \"data\"\n{}{}[outbound]\nfrom_support = \"Help <support@example.test>\"\nfrom_privacy = \"Privacy <privacy@example.test>\"\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"5s\"\n",
        imap("good", "support@example.test", "good.pw"),
        imap("bad", "privacy@example.test", "bad.pw"),
        stack.port("SMTP_PORT")
    );
    let cfg = dir.path().join("ticketd.toml");
    std::fs::write(&cfg, toml).expect("config");
    let cfg_s = cfg.display().to_string();
    let o = ticketd(
        dir.path(),
        &["--config", &cfg_s, "check-config", "--connect"],
        &[],
    );
    let (out, err) = text(&o);
    println!("{out}");
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("# mailbox good (imap") && l.ends_with(": ok")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("# mailbox bad (imap") && l.contains("FAILED")),
        "{out}"
    );
    assert!(
        out.contains(&format!("# smtp 127.0.0.1:{}: ok", stack.port("SMTP_PORT"))),
        "{out}"
    );
    assert!(!out.contains("not-the-password"), "a secret was printed");

    // run --once: a wrong password, a missing variable and a missing CA
    // file are each reported, and the exit status is 1.
    let more = format!(
        "{}[[mailboxes]]\nname = \"novar\"\nrole = \"support\"\naddress = \"support@example.test\"\nsource = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\ntimeout = \"5s\"\npassword_env = \"TICKETD_TEST_SURELY_UNSET\"\n\n[[mailboxes]]\nname = \"noca\"\nrole = \"support\"\naddress = \"support@example.test\"\nsource = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"implicit\"\ntimeout = \"5s\"\npassword_file = \"good.pw\"\nca_file = \"missing-ca.pem\"\n\n",
        imap("bad", "privacy@example.test", "bad.pw"),
        stack.port("IMAP_PORT"),
        stack.port("IMAPS_PORT"),
    );
    let toml2 = std::fs::read_to_string(&cfg).expect("config").replacen(
        &imap("bad", "privacy@example.test", "bad.pw"),
        &more,
        1,
    );
    let cfg2 = dir.path().join("more.toml");
    std::fs::write(&cfg2, toml2).expect("config");
    let cfg2_s = cfg2.display().to_string();
    let o = ticketd(dir.path(), &["--config", &cfg2_s, "run", "--once"], &[]);
    let (out, err) = text(&o);
    println!("{out}");
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(out.contains("error: bad"), "{out}");
    assert!(out.contains("TICKETD_TEST_SURELY_UNSET"), "{out}");
    assert!(out.contains("missing-ca.pem"), "{out}");
    assert!(err.contains("3 mailbox errors"), "{err}");
}
