//! Test harness for real mail servers: starts Dovecot (IMAP, LMTP) and
//! Postfix (SMTP) on loopback with `tests/mailstack/mailstack.sh` (which
//! installs them when missing), and a few IMAP client helpers to append
//! and read mail as a requester would.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mailstack/mailstack.sh")
}

fn run(args: &[&str]) {
    run_with(args, &[]);
}

fn run_with(args: &[&str], env: &[(&str, &str)]) {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run mailstack.sh");
    assert!(
        out.status.success(),
        "mailstack.sh {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

static INSTALL: Once = Once::new();

/// A Dovecot + Postfix pair for one test.
pub struct MailStack {
    pub dir: tempfile::TempDir,
    pub env: HashMap<String, String>,
}

impl MailStack {
    pub fn start() -> MailStack {
        MailStack::start_with(&[])
    }

    /// Start with settings for `mailstack.sh start` in its environment
    /// (`MAILSTACK_MAX_USERIP_CONNECTIONS`, see tests/mailstack/README.md).
    pub fn start_with(env: &[(&str, &str)]) -> MailStack {
        INSTALL.call_once(|| run(&["install"]));
        let dir = tempfile::Builder::new()
            .prefix("ms")
            .tempdir()
            .expect("tempdir");
        run_with(&["start", dir.path().to_str().expect("utf-8 path")], env);
        let env = std::fs::read_to_string(dir.path().join("env"))
            .expect("env file")
            .lines()
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            })
            .collect();
        MailStack { dir, env }
    }

    pub fn get(&self, key: &str) -> String {
        self.env
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("mailstack env has no {key}"))
    }

    pub fn port(&self, key: &str) -> u16 {
        self.get(key).parse().expect("port")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn stop_dovecot(&self) {
        run(&["stop-dovecot", self.path().to_str().unwrap_or("")]);
    }
    pub fn start_dovecot(&self) {
        run(&["start-dovecot", self.path().to_str().unwrap_or("")]);
    }
    pub fn stop_postfix(&self) {
        run(&["stop-postfix", self.path().to_str().unwrap_or("")]);
    }
    pub fn start_postfix(&self) {
        run(&["start-postfix", self.path().to_str().unwrap_or("")]);
    }

    /// A plaintext IMAP session on loopback for `user`. A login refused by
    /// a connection limit (a stack started with a low
    /// `MAILSTACK_MAX_USERIP_CONNECTIONS`) is retried for a few seconds,
    /// while sessions just closed are still counted.
    pub async fn imap(&self, user: &str) -> async_imap::Session<tokio::net::TcpStream> {
        let mut tries = 0;
        loop {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port("IMAP_PORT")))
                .await
                .expect("connect imap");
            let mut client = async_imap::Client::new(tcp);
            client.read_response().await.expect("greeting");
            match client.login(user, self.get("PASSWORD")).await {
                Ok(s) => return s,
                Err((e, _)) if e.to_string().contains("connections") && tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err((e, _)) => panic!("login: {e}"),
            }
        }
    }

    /// APPEND a message to `user`'s `folder` (created when missing).
    pub async fn append(&self, user: &str, folder: &str, raw: &[u8]) {
        let mut s = self.imap(user).await;
        let _ = s.create(folder).await;
        s.append(folder, None, None, raw).await.expect("append");
        let _ = s.logout().await;
    }

    /// APPEND with an INTERNALDATE (the arrival time ticketd records), for
    /// tests whose controlled clock runs ahead of the server's.
    pub async fn append_at(
        &self,
        user: &str,
        folder: &str,
        raw: &[u8],
        at: chrono::DateTime<chrono::Utc>,
    ) {
        let mut s = self.imap(user).await;
        let _ = s.create(folder).await;
        let date = format!("\"{}\"", at.format("%d-%b-%Y %H:%M:%S +0000"));
        s.append(folder, None, Some(&date), raw)
            .await
            .expect("append");
        let _ = s.logout().await;
    }

    /// All messages in `user`'s `folder` (empty when the folder is missing).
    pub async fn messages(&self, user: &str, folder: &str) -> Vec<Vec<u8>> {
        use futures::TryStreamExt;
        let mut s = self.imap(user).await;
        let out = match s.examine(folder).await {
            Ok(mb) if mb.exists > 0 => {
                let stream = s.fetch("1:*", "BODY.PEEK[]").await.expect("fetch");
                let v: Vec<_> = stream.try_collect().await.expect("fetch collect");
                v.iter()
                    .filter_map(|f| f.body().map(|b| b.to_vec()))
                    .collect()
            }
            _ => Vec::new(),
        };
        let _ = s.logout().await;
        out
    }

    /// Every message of `user`'s INBOX was taken: the INBOX is empty and
    /// `n` messages are in `Processed` (moved, never deleted).
    pub async fn assert_taken(&self, user: &str, n: usize) {
        let left = self.messages(user, "INBOX").await.len();
        let moved = self.messages(user, "Processed").await.len();
        assert_eq!(
            (left, moved),
            (0, n),
            "{user}: (left in INBOX, in Processed)"
        );
    }

    /// Wait until `user`'s `folder` holds at least `n` messages.
    pub async fn wait_messages(
        &self,
        user: &str,
        folder: &str,
        n: usize,
        within: Duration,
    ) -> Vec<Vec<u8>> {
        let start = std::time::Instant::now();
        loop {
            let m = self.messages(user, folder).await;
            if m.len() >= n {
                return m;
            }
            assert!(
                start.elapsed() < within,
                "timed out: {user} {folder} has {} of {n} messages",
                m.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Put `user` (`name` or `name@example.test`) on vacation: Pigeonhole
    /// answers each message delivered to them with "Out of office"
    /// (`Auto-Submitted: auto-replied (vacation)`, envelope sender and From
    /// the user), except where RFC 3834 says not to (Auto-Submitted other
    /// than `no`, Precedence bulk/list/junk, List-*, a `<>` return path,
    /// MAILER-DAEMON and the like). No minimum period: every such message is
    /// answered. The reply arrives about 0.1 s after the message.
    pub fn set_vacation(&self, user: &str) {
        run(&["vacation", self.path().to_str().unwrap_or(""), user]);
    }

    /// [`MailStack::set_vacation`] with the reply's subject and the Sieve
    /// period: a sender gets at most one reply per `secs` seconds (0: every
    /// message).
    pub fn set_vacation_with(&self, user: &str, subject: &str, secs: u64) {
        let secs = secs.to_string();
        run(&[
            "vacation",
            self.path().to_str().unwrap_or(""),
            user,
            subject,
            &secs,
        ]);
    }

    /// Start `tests/mailstack/naive_responder.py` for `user` for `secs`
    /// seconds: a badly written auto-responder that answers every message
    /// arriving in the INBOX from now on (also Auto-Submitted ones), once
    /// each, with a fresh subject and no In-Reply-To, References or
    /// automatic-mail headers. Returns once it is logged in. Collect its
    /// reply count with [`naive_responder_replies`] (waits until `secs` are
    /// over) or [`stop_naive_responder`] (stops it now).
    pub fn spawn_naive_responder(&self, user: &str, secs: u64) -> std::process::Child {
        let python = std::env::var("PYTHON").unwrap_or_else(|_| {
            if Path::new("/usr/bin/python3").exists() {
                "/usr/bin/python3".to_string()
            } else {
                "python3".to_string()
            }
        });
        let mut child = Command::new(python)
            .arg(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/mailstack/naive_responder.py"),
            )
            .arg(self.path().join("env"))
            .arg(user)
            .arg(secs.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn naive_responder.py");
        // The first line is "ready ...". Read it byte by byte: a buffered
        // reader would swallow later lines that wait_with_output needs.
        let mut line = Vec::new();
        {
            let stdout = child.stdout.as_mut().expect("responder stdout");
            let mut b = [0u8; 1];
            loop {
                match std::io::Read::read(stdout, &mut b) {
                    Ok(1) if b[0] == b'\n' => break,
                    Ok(1) => line.push(b[0]),
                    Ok(_) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => panic!("reading naive_responder.py output: {e}"),
                }
            }
        }
        if !line.starts_with(b"ready ") {
            let out = child.wait_with_output().expect("naive_responder.py output");
            panic!(
                "naive_responder.py for {user} did not start ({}):\nstdout: {}{}\nstderr: {}",
                out.status,
                String::from_utf8_lossy(&line),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        child
    }
}

impl Drop for MailStack {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", self.dir.path().to_str().unwrap_or("")])
            .output();
    }
}

/// A simple request from `from` to `to`.
pub fn request(from: &str, to: &str, subject: &str, body: &str, id: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Tue, 24 Nov 2026 10:00:00 -0500\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// Wait for a responder from [`MailStack::spawn_naive_responder`] to end
/// (its `secs` are over) and return how many replies it sent (its last line,
/// `replies=N`). Panics, with its output, if it failed.
pub fn naive_responder_replies(child: std::process::Child) -> usize {
    let out = child
        .wait_with_output()
        .expect("wait for naive_responder.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let n = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("replies="))
        .and_then(|n| n.trim().parse().ok());
    match n {
        Some(n) if out.status.success() => n,
        _ => panic!(
            "naive_responder.py failed ({}):\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Stop a responder from [`MailStack::spawn_naive_responder`] now (SIGTERM:
/// it finishes the reply it is sending) and return how many replies it sent.
pub fn stop_naive_responder(child: std::process::Child) -> usize {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    naive_responder_replies(child)
}

/// The `[[mailboxes]]` section for `NAME@example.test` on this stack's
/// Dovecot (role = name: `support` or `privacy`), its password written to
/// the stack's `password` file.
pub fn imap_mailbox(stack: &MailStack, name: &str) -> String {
    let pw = stack.path().join("password");
    std::fs::write(&pw, format!("{}\n", stack.get("PASSWORD"))).expect("password file");
    format!(
        r#"
[[mailboxes]]
name = "{name}"
role = "{name}"
address = "{name}@example.test"
source = "imap"
username = "{name}@example.test"
host = "127.0.0.1"
port = {imap}
tls = "none"
auth = "password"
password_file = "{pw}"
timeout = "5s"
"#,
        imap = stack.port("IMAP_PORT"),
        pw = pw.display(),
    )
}

/// The `[outbound]` section: this stack's Postfix, retried after 1 s.
pub fn smtp_outbound(stack: &MailStack) -> String {
    format!(
        r#"
[outbound]
from_support = "CaseHost Support <support@example.test>"
from_privacy = "CaseHost Privacy <privacy@example.test>"
transport = "smtp"
host = "127.0.0.1"
port = {smtp}
tls = "none"
retry_initial = "1s"
timeout = "5s"
"#,
        smtp = stack.port("SMTP_PORT"),
    )
}

/// A mail with the given headers (one per line, no CRs) and body, dated.
pub fn mail(headers: &str, body: &str) -> String {
    let mut h = headers.replace('\n', "\r\n");
    if !h.ends_with("\r\n") {
        h.push_str("\r\n");
    }
    format!(
        "{h}Date: Thu, 03 Dec 2026 10:00:00 -0500\r\n\r\n{}\r\n",
        body.replace('\n', "\r\n")
    )
}

/// A header's value in a delivered mail (the first of that name).
pub fn header<'a>(mail: &'a str, name: &str) -> Option<&'a str> {
    mail.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

/// A delivered mail's Message-ID, without brackets.
pub fn msgid(mail: &str) -> String {
    header(mail, "Message-ID")
        .map(|v| v.trim().trim_matches(['<', '>']).to_string())
        .unwrap_or_default()
}

/// Delivery-to-acknowledgement latency, as the benchmarks measure it: `n`
/// requests from `lat@example.test`, the i-th APPENDed to `to(i)`'s INBOX
/// once the acknowledgement of the one before has arrived in
/// `lat@example.test`'s INBOX. Milliseconds from APPEND to arrival, sorted.
pub async fn ack_latencies(stack: &MailStack, n: usize, to: impl Fn(usize) -> String) -> Vec<f64> {
    let mut watcher = stack.imap("lat@example.test").await;
    let base = watcher
        .status("INBOX", "(MESSAGES)")
        .await
        .map(|s| s.exists as usize)
        .unwrap_or(0);
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let to = to(i);
        let raw = request(
            "Lat <lat@example.test>",
            &to,
            "Error in report",
            "The report shows an error.",
            &format!("lat{i}.{}@example.test", std::process::id()),
        );
        let t = std::time::Instant::now();
        stack.append(&to, "INBOX", &raw).await;
        loop {
            let st = watcher.status("INBOX", "(MESSAGES)").await.expect("status");
            if st.exists as usize > base + i {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "acknowledgement {i} did not arrive"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    lat
}

/// The `q` quantile of sorted values (nearest rank), 0 when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return 0.0;
    };
    sorted[((sorted.len() as f64 * q).ceil() as usize)
        .saturating_sub(1)
        .min(last)]
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`); `pid` may be
/// `self`. 0 when it cannot be read.
pub fn proc_status_kb(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
