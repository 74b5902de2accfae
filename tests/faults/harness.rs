//! The fault suite's harness: the ticketd binary as a separate process
//! (so it can be killed with SIGKILL and its logs scanned), its config
//! for a mail stack, an SMTP client for delivering through Postfix, the
//! message mix, and reading the store once the daemon has stopped.
#![allow(dead_code)]

use crate::common::MailStack;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The daemon binary under test (`TICKETD_BIN` overrides it, e.g. to
/// measure an older build with the same suite).
pub fn bin() -> PathBuf {
    std::env::var_os("TICKETD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ticketd")))
}

/// A number from the environment (the long forms), else `default`.
pub fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A config file for the binary: `support@` and `privacy@` over IMAP on
/// `stack`, SMTP out through its Postfix, alerts to `admin@example.test`.
pub fn write_config(stack: &MailStack, data: &Path, extra: &str) -> PathBuf {
    let password = stack.path().join("password");
    std::fs::write(&password, format!("{}\n", stack.get("PASSWORD"))).expect("password file");
    let imap = |name: &str, role: &str| {
        format!(
            "[[mailboxes]]\nname = \"{name}\"\nrole = \"{role}\"\naddress = \"{name}@example.test\"\nsource = \"imap\"\n\
             host = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = \"{name}@example.test\"\nauth = \"password\"\n\
             password_file = \"{}\"\ntimeout = \"5s\"\n\n",
            stack.port("IMAP_PORT"),
            password.display()
        )
    };
    let (limits, outbound, rest) = split_extra(extra);
    let text = format!(
        "data_dir = \"{}\"\ndomain = \"casehost.example.test\"\n\n[limits]\n{limits}\n\n{}{}\
         [outbound]\nfrom_support = \"CaseHost Support <support@example.test>\"\n\
         from_privacy = \"CaseHost Privacy <privacy@example.test>\"\ntransport = \"smtp\"\nhost = \"127.0.0.1\"\n\
         port = {}\ntls = \"none\"\nretry_initial = \"1s\"\ntimeout = \"5s\"\n{outbound}\n\n\
         [people]\nalerts_to = [\"admin@example.test\"]\n{rest}\n",
        data.display(),
        imap("support", "support"),
        imap("privacy", "privacy"),
        stack.port("SMTP_PORT"),
    );
    let path = data.join("ticketd.toml");
    std::fs::create_dir_all(data).expect("data dir");
    std::fs::write(&path, text).expect("config file");
    path
}

/// `extra` is `limits-lines ||| outbound-lines ||| other tables`.
fn split_extra(extra: &str) -> (String, String, String) {
    let mut it = extra.split("|||").map(|s| s.trim().to_string());
    (
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
    )
}

/// A running `ticketd run` process, its log in `DATA/daemon.log`.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Proc {
        let dir = config.parent().expect("config dir");
        let log = dir.join("daemon.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let child = Command::new(bin())
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("spawn ticketd");
        Proc { child, log }
    }

    /// SIGKILL, as `kill -9`.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait (at most 30 s) for a clean exit.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    assert!(status.success(), "ticketd exited with {status}");
                    return;
                }
                Ok(None) if start.elapsed() < Duration::from_secs(30) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = self.child.kill();
                    panic!("ticketd did not stop within 30 s of SIGTERM");
                }
            }
        }
    }
}

/// Deliver `raw` through the stack's Postfix (SMTP, envelope `from` → `to`).
pub async fn smtp_send(stack: &MailStack, from: &str, to: &[&str], raw: &[u8]) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", stack.port("SMTP_PORT")))
        .await
        .expect("connect smtp");
    let (r, mut w) = tcp.into_split();
    let mut r = BufReader::new(r);
    async fn reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).await.expect("smtp read");
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }
    let greet = reply(&mut r).await;
    assert!(greet.starts_with("220"), "{greet}");
    for c in [
        String::from("EHLO test\r\n"),
        format!("MAIL FROM:<{from}>\r\n"),
    ]
    .into_iter()
    .chain(to.iter().map(|t| format!("RCPT TO:<{t}>\r\n")))
    .chain([String::from("DATA\r\n")])
    {
        w.write_all(c.as_bytes()).await.expect("smtp write");
        let rep = reply(&mut r).await;
        assert!(
            rep.starts_with('2') || rep.starts_with('3'),
            "SMTP {c:?} -> {rep}"
        );
    }
    // Dot-stuffing and CRLF line ends.
    let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    let mut data = String::with_capacity(text.len() + 64);
    for line in text.split('\n') {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
    data.push_str(".\r\n");
    w.write_all(data.as_bytes()).await.expect("smtp data");
    let rep = reply(&mut r).await;
    assert!(rep.starts_with("250"), "end of DATA -> {rep}");
    w.write_all(b"QUIT\r\n").await.ok();
}

/// What a message of the mix is, and what ticketd must make of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A new support ticket (acknowledged).
    Ticket,
    /// A new privacy request (acknowledged).
    Privacy,
    /// A follow-up of an earlier message in the mix (joins its case).
    FollowUp,
    /// An auto-reply (recorded, never answered).
    AutoReply,
}

/// One message of the mix.
pub struct Mixed {
    pub raw: Vec<u8>,
    pub expect: Expect,
    /// The requester (acks go here) or the auto-replier.
    pub from: String,
    pub to: String,
    pub message_id: String,
}

/// The `i`-th message of a run tagged `tag`: mostly support, some privacy,
/// auto-replies and follow-ups to the requester's message three before.
/// Requesters are spread so that none gets more acknowledgements than the
/// default rate limit (5 an hour).
pub fn mixed(tag: &str, i: usize, requesters: usize) -> Mixed {
    let r = i % requesters;
    let from = format!("r{r}.{tag}@example.test");
    let mid = format!("m{i}.{tag}@sender.example.test");
    let (expect, to, subject, body, extra) = match i % 10 {
        3 => (
            Expect::Privacy,
            "privacy@example.test",
            format!("Access request {i}"),
            "Under Article 15 GDPR I request access to all personal data you hold about me, and a copy of it.".to_string(),
            String::new(),
        ),
        6 => (
            Expect::AutoReply,
            "support@example.test",
            format!("Automatic reply: out of office {i}"),
            "I am out of the office until Monday.".to_string(),
            "Auto-Submitted: auto-replied\r\n".to_string(),
        ),
        9 if i >= 10 => {
            // A follow-up to this requester's ticket of the same round.
            let parent = format!("m{}.{tag}@sender.example.test", i - 9);
            (
                Expect::FollowUp,
                "support@example.test",
                format!("Re: Report error {}", i - 9),
                "One more detail: it also happens in Firefox.".to_string(),
                format!("In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"),
            )
        }
        _ => (
            Expect::Ticket,
            "support@example.test",
            format!("Report error {i}"),
            "When I open the monthly report I get an error message and the page stays empty.".to_string(),
            String::new(),
        ),
    };
    let from = if expect == Expect::AutoReply {
        format!("ooo{r}.{tag}@example.test")
    } else if expect == Expect::FollowUp {
        // The parent's requester.
        format!("r{}.{tag}@example.test", (i - 9) % requesters)
    } else {
        from
    };
    let raw = format!(
        "From: Requester {r} <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n{extra}Date: Tue, 01 Dec 2026 10:00:00 -0500\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    );
    Mixed {
        raw: raw.into_bytes(),
        expect,
        from,
        to: to.to_string(),
        message_id: mid,
    }
}

/// A support ticket `i` of run `tag` from `from` (acknowledged).
pub fn ticket(tag: &str, i: usize, from: &str) -> Mixed {
    let mid = format!("t{i}.{tag}@sender.example.test");
    let raw = format!(
        "From: Requester {i} <{from}>\r\nTo: support@example.test\r\nSubject: Report error {i}\r\nMessage-ID: <{mid}>\r\nDate: Tue, 01 Dec 2026 10:00:00 -0500\r\n\r\nWhen I open the monthly report I get an error message.\r\n"
    );
    Mixed {
        raw: raw.into_bytes(),
        expect: Expect::Ticket,
        from: from.to_string(),
        to: "support@example.test".into(),
        message_id: mid,
    }
}

/// The store as the daemon left it (the daemon must have stopped).
pub struct Seen {
    pub cases: Vec<ticketd::store::Case>,
    pub ignored: Vec<ticketd::store::IgnoredRecord>,
    pub outbox: Vec<ticketd::store::OutboxEntry>,
}

pub fn read_store(data: &Path) -> Seen {
    let s = ticketd::store::Store::open(data).expect("open store after the daemon stopped");
    Seen {
        cases: s.list_cases(&Default::default()).expect("cases"),
        ignored: s.list_ignored().expect("ignored"),
        outbox: s.outbox_all().expect("outbox"),
    }
}

/// The Message-IDs of the mail in `user`'s INBOX.
pub async fn message_ids(stack: &MailStack, user: &str) -> Vec<String> {
    message_submissions(stack, user)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

/// (Message-ID, the queue id Postfix gave it when it was submitted) of
/// every message in a user's INBOX. The submission is the earliest
/// `Received: ... (Postfix) with ...SMTP... id QUEUEID` (the last in the
/// header): two copies with one queue id were submitted once and delivered
/// twice by the mail stack (an LMTP delivery cut off by a Dovecot stop
/// after the message was written), not sent twice by ticketd.
pub async fn message_submissions(stack: &MailStack, user: &str) -> Vec<(String, Option<String>)> {
    stack
        .messages(user, "INBOX")
        .await
        .iter()
        .filter_map(|m| {
            let text = String::from_utf8_lossy(m);
            let head = text.split("\r\n\r\n").next().unwrap_or("");
            // Unfold: a line starting with white space continues the field.
            let mut fields: Vec<String> = Vec::new();
            for l in head.lines() {
                match fields.last_mut() {
                    Some(f) if l.starts_with([' ', '\t']) => {
                        f.push(' ');
                        f.push_str(l.trim());
                    }
                    _ => fields.push(l.to_string()),
                }
            }
            let id = fields.iter().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("message-id")
                    .then(|| v.trim().trim_matches(['<', '>']).to_string())
            })?;
            let queue = fields
                .iter()
                .rfind(|l| {
                    l.split_once(':')
                        .is_some_and(|(n, _)| n.eq_ignore_ascii_case("received"))
                        && l.contains("(Postfix) with ")
                        && l.contains("SMTP")
                })
                .and_then(|l| {
                    let at = l.find(" id ")?;
                    l[at + 4..]
                        .split_whitespace()
                        .next()
                        .map(|q| q.trim_end_matches(';').to_string())
                });
            Some((id, queue))
        })
        .collect()
}

/// Poll `f` until it is true or `within` has passed; returns the time it took.
pub async fn wait_for(what: &str, within: Duration, mut f: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// [`wait_for`] without the panic: whether `f` turned true within `within`.
pub async fn wait_or(within: Duration, mut f: impl AsyncFnMut() -> bool) -> (bool, Duration) {
    let start = Instant::now();
    loop {
        if f().await {
            return (true, start.elapsed());
        }
        if start.elapsed() >= within {
            return (false, start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How many messages are in `user`'s `folder`.
pub async fn count(stack: &MailStack, user: &str, folder: &str) -> usize {
    stack.messages(user, folder).await.len()
}

/// Lines of a daemon log at info level or above that carry something
/// personal: a full address (`local@domain` not masked as `x***@`), or any
/// of `secrets` (display names, subjects, body text of the test mail).
pub fn pii_lines(log: &str, secrets: &[&str]) -> Vec<String> {
    let addr = |line: &str| -> bool {
        let b = line.as_bytes();
        (1..b.len()).any(|i| {
            b[i] == b'@'
                && (b[i - 1].is_ascii_alphanumeric()
                    || b[i - 1] == b'.'
                    || b[i - 1] == b'-'
                    || b[i - 1] == b'_')
                && !line[..i].ends_with("***")
                && b.get(i + 1).is_some_and(|c| c.is_ascii_alphanumeric())
        })
    };
    log.lines()
        .filter(|l| !l.contains(" DEBUG ") && !l.contains(" TRACE "))
        .filter(|l| addr(l) || secrets.iter().any(|s| l.contains(s)))
        .map(str::to_string)
        .collect()
}

/// `ticketd import FILE` (as `--json` when asked) in a fresh store on the
/// embedded default configuration; returns the output, the store's data
/// directory and the temporary directory that holds both.
pub fn import_fresh(file: &Path, json: bool) -> (std::process::Output, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let cfg = dir.path().join("ticketd.toml");
    std::fs::write(
        &cfg,
        include_str!("../../src/default.toml").replace(
            "data_dir = \"ticketd-data\"",
            &format!("data_dir = \"{}\"", data.display()),
        ),
    )
    .expect("config");
    let mut cmd = Command::new(bin());
    cmd.args(["import", "--config"]).arg(&cfg);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.arg(file).output().expect("run import");
    (out, data, dir)
}
