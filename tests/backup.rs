//! `ticketd backup` / `ticketd restore` and the schema check, through the
//! real binary: a store with cases, events and queued outbox mail (imported
//! fixtures, file transport) backed up with the daemon stopped and while it
//! runs, restored into a fresh data directory, and compared.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ticketd");

struct Env {
    dir: tempfile::TempDir,
}

fn config(data_dir: &str) -> String {
    format!(
        r#"
data_dir = "{data_dir}"
domain = "casehost.example"

[[mailboxes]]
name = "support"
role = "support"
address = "support@casehost.example"
source = "maildir"
path = "../maildir"

[outbound]
from_support = "CaseHost Support <support@casehost.example>"
from_privacy = "CaseHost Privacy <privacy@casehost.example>"
transport = "file"

[daemon]
poll_interval = "100ms"
batch_size = 4
"#
    )
}

impl Env {
    /// `ticketd.toml` on `data/`, `restored.toml` on `restored/`.
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ticketd.toml"), config("data")).expect("config");
        std::fs::write(dir.path().join("restored.toml"), config("restored")).expect("config");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(dir.path().join("maildir").join(sub)).expect("maildir");
        }
        Env { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn run(&self, cfg: &str, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(self.path(cfg))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run ticketd")
    }

    fn deliver(&self, name: &str, fixture: &str) {
        let bytes = std::fs::read(repo().join("fixtures/demo").join(fixture)).expect("fixture");
        let tmp = self.path("maildir/tmp").join(name);
        std::fs::write(&tmp, bytes).expect("write tmp");
        std::fs::rename(&tmp, self.path("maildir/new").join(name)).expect("rename");
    }

    /// `cases list --json` and every case's `cases show --json`.
    fn state(&self, cfg: &str) -> Vec<serde_json::Value> {
        let list = ok(&self.run(cfg, &["cases", "list", "--json"]));
        let mut out = Vec::new();
        for line in list.lines() {
            let c: serde_json::Value = serde_json::from_str(line).expect("json line");
            let id = c["id"].as_str().expect("id").to_string();
            let show: serde_json::Value =
                serde_json::from_str(&ok(&self.run(cfg, &["cases", "show", &id, "--json"])))
                    .expect("show json");
            out.push(c);
            out.push(show);
        }
        out
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every outbox entry, read from the store itself (no daemon may run).
fn outbox(data_dir: &Path) -> Vec<serde_json::Value> {
    let store = ticketd::store::Store::open(data_dir).expect("open store");
    store
        .outbox_all()
        .expect("outbox")
        .iter()
        .map(|e| serde_json::to_value(e).expect("json"))
        .collect()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn a_stopped_store_round_trips_with_cases_events_and_queued_mail() {
    let env = Env::new();
    let demo = repo().join("fixtures/demo");
    let report = ok(&env.run(
        "ticketd.toml",
        &["import", "--json", demo.to_str().unwrap_or("")],
    ));
    let report: serde_json::Value = serde_json::from_str(&report).expect("json");
    let queued = report["acks_queued"].as_u64().unwrap_or(0);
    assert!(queued >= 3, "{report}");
    let before = env.state("ticketd.toml");
    assert!(before.len() >= 6);
    let mail_before = outbox(&env.path("data"));
    assert!(
        mail_before.iter().any(|e| e["state"] == "queued"),
        "queued mail to carry over"
    );

    let file = env.path("ticketd.backup");
    let out = ok(&env.run(
        "ticketd.toml",
        &["backup", "--json", file.to_str().unwrap_or("")],
    ));
    let manifest: serde_json::Value = serde_json::from_str(&out).expect("manifest");
    assert_eq!(manifest["schema_version"], ticketd::store::SCHEMA_VERSION);
    assert_eq!(manifest["trees"]["outbox"], mail_before.len());
    assert!(manifest["checksum"]
        .as_str()
        .is_some_and(|c| c.starts_with("blake3:")));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the backup holds mail: owner-only");
    }
    // No second file of the same name without --force.
    let again = env.run("ticketd.toml", &["backup", file.to_str().unwrap_or("")]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    ok(&env.run(
        "restored.toml",
        &["restore", "--verify", file.to_str().unwrap_or("")],
    ));
    let out = ok(&env.run("restored.toml", &["restore", file.to_str().unwrap_or("")]));
    assert!(out.starts_with("restored into "), "{out}");
    assert_eq!(env.state("restored.toml"), before);
    assert_eq!(outbox(&env.path("restored")), mail_before);
    assert_eq!(
        std::fs::read(env.path("restored/thread-key")).ok(),
        std::fs::read(env.path("data/thread-key")).ok(),
        "the thread key comes along (replies still thread)"
    );

    // A restore never overwrites: the directory now holds a store.
    let refused = env.run("restored.toml", &["restore", file.to_str().unwrap_or("")]);
    assert_eq!(refused.status.code(), Some(3));
    assert!(
        stderr(&refused).contains("is not empty"),
        "{}",
        stderr(&refused)
    );

    // The queued mail goes from the restored store.
    ok(&env.run("restored.toml", &["run", "--once"]));
    assert_eq!(files_in(&env.path("restored/outbox-mail")) as u64, queued);

    // A damaged file is refused and leaves the directory empty.
    let mut bytes = std::fs::read(&file).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let bad = env.path("bad.backup");
    std::fs::write(&bad, &bytes).expect("write");
    std::fs::write(env.path("third.toml"), config("third")).expect("config");
    let out = env.run("third.toml", &["restore", bad.to_str().unwrap_or("")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a usable ticketd backup"),
        "{}",
        stderr(&out)
    );
    assert!(!env.path("third/store").exists());
}

#[test]
fn a_running_daemon_writes_a_consistent_backup_itself() {
    let env = Env::new();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(env.path("ticketd.toml"))
        .arg("run")
        .current_dir(env.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn daemon");
    let sock = env.path("data/control.sock");
    wait_for("control socket", || sock.exists());
    env.deliver("1.a.test", "01-site-down.eml");
    env.deliver("2.b.test", "04-dsgvo-auskunft.eml");
    env.deliver("3.c.test", "03-report-error.eml");
    wait_for("three cases", || {
        ok(&env.run("ticketd.toml", &["cases", "list", "--json"]))
            .lines()
            .count()
            == 3
    });
    wait_for("acknowledgements", || {
        files_in(&env.path("data/outbox-mail")) >= 3
    });
    let before = env.state("ticketd.toml");

    let file = env.path("live.backup");
    let out = ok(&env.run("ticketd.toml", &["backup", file.to_str().unwrap_or("")]));
    assert!(out.starts_with("backup written: "), "{out}");
    assert!(out.contains("3 cases"), "{out}");
    // Mail after the backup is not in it.
    env.deliver("4.d.test", "07-feature-request-html.eml");
    wait_for("fourth case", || {
        ok(&env.run("ticketd.toml", &["cases", "list", "--json"]))
            .lines()
            .count()
            == 4
    });

    // While the daemon runs its data directory is not empty: refused.
    let out = env.run("ticketd.toml", &["restore", file.to_str().unwrap_or("")]);
    assert_eq!(out.status.code(), Some(3));

    #[cfg(unix)]
    {
        let st = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
    }
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    ok(&env.run("restored.toml", &["restore", file.to_str().unwrap_or("")]));
    assert_eq!(env.state("restored.toml"), before);
}

#[test]
fn a_store_of_a_newer_schema_is_refused_by_the_cli_and_the_daemon() {
    let env = Env::new();
    {
        let store = ticketd::store::Store::open(&env.path("data")).expect("open");
        assert_eq!(
            store.schema_version().ok(),
            Some(ticketd::store::SCHEMA_VERSION)
        );
    }
    // Rewrite the version as a future ticketd would have left it, with sled
    // directly (the store refuses to open it afterwards).
    {
        // sled's threads of the store just dropped hold its lock a moment.
        let start = Instant::now();
        let db = loop {
            match sled::open(env.path("data/store")) {
                Ok(db) => break db,
                Err(e) if start.elapsed() < Duration::from_secs(10) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("sled: {e}"),
            }
        };
        db.open_tree("meta")
            .and_then(|t| t.insert("schema_version", &7u64.to_be_bytes()))
            .expect("insert");
        db.flush().expect("flush");
    }
    let want = format!(
        "store schema 7 is newer than this ticketd ({}); upgrade ticketd",
        ticketd::store::SCHEMA_VERSION
    );
    for args in [
        &["cases", "list"][..],
        &["run", "--once"][..],
        &["backup", "b.backup"][..],
    ] {
        let out = env.run("ticketd.toml", args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(&want), "{args:?}: {}", stderr(&out));
    }
}

/// A restored store whose every case has its messages and events, whose
/// case numbering is ahead of every case, and whose outbox entries name
/// stored cases: what a backup cut in the middle of a transaction breaks.
fn check_whole(data_dir: &Path) -> usize {
    use ticketd::store::{CaseKind, Store};
    let s = Store::open(data_dir).expect("open restored");
    let cases = s.list_cases(&Default::default()).expect("cases");
    for c in &cases {
        assert!(!c.messages.is_empty(), "{}", c.id);
        for m in &c.messages {
            assert!(
                s.message(*m).expect("message").is_some(),
                "{} message {m}",
                c.id
            );
        }
        assert!(
            !s.events(&c.id).expect("events").is_empty(),
            "{} events",
            c.id
        );
        let kind = match c.kind {
            CaseKind::Support => "SUP",
            CaseKind::Privacy => "PRV",
        };
        let n: u64 = c.id[4..].parse().expect("number");
        assert!(
            s.seq(&format!("case:{kind}")).expect("seq") >= n,
            "{}",
            c.id
        );
    }
    for e in s.outbox_all().expect("outbox") {
        if let Some(case) = &e.case {
            assert!(
                s.case(case).expect("case").is_some(),
                "outbox {} → {case}",
                e.id
            );
        }
    }
    cases.len()
}

#[test]
fn backups_taken_while_mail_pours_in_are_each_whole() {
    let env = Env::new();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(env.path("ticketd.toml"))
        .arg("run")
        .current_dir(env.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn daemon");
    wait_for("control socket", || env.path("data/control.sock").exists());
    let corpus = repo().join("fixtures/corpus");
    let mut mails: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    mails.sort();
    mails.truncate(60);
    let n = mails.len();
    let feeder = std::thread::spawn({
        let new = env.path("maildir/new");
        let tmp = env.path("maildir/tmp");
        move || {
            for (i, m) in mails.iter().enumerate() {
                let bytes = std::fs::read(m).expect("read");
                let name = format!("{}.{i}.pour", 1_800_000_000 + i);
                std::fs::write(tmp.join(&name), bytes).expect("write");
                std::fs::rename(tmp.join(&name), new.join(&name)).expect("rename");
                std::thread::sleep(Duration::from_millis(15));
            }
        }
    });
    let mut files = Vec::new();
    for i in 0..4 {
        let f = env.path(&format!("pour-{i}.backup"));
        ok(&env.run("ticketd.toml", &["backup", f.to_str().unwrap_or("")]));
        files.push(f);
        std::thread::sleep(Duration::from_millis(150));
    }
    feeder.join().expect("feeder");
    wait_for("every message taken", || {
        files_in(&env.path("maildir/new")) == 0
    });
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    let _ = child.wait();
    let mut counts = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let name = format!("r{i}");
        std::fs::write(env.path(&format!("{name}.toml")), config(&name)).expect("config");
        ok(&env.run(
            &format!("{name}.toml"),
            &["restore", f.to_str().unwrap_or("")],
        ));
        counts.push(check_whole(&env.path(&name)));
    }
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert!(check_whole(&env.path("data")) >= *counts.last().unwrap_or(&0));
    eprintln!("backups: cases {counts:?} of {n} messages");
}
