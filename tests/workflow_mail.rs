//! The support workflow by mail, against the real Dovecot and Postfix of
//! `tests/mailstack/`: staff replies that stop the clock, relays of staff
//! answers to our notifications, mail commands, statuses from arrival to
//! closed, and the threading attacks (forged ids, foreign subject tags)
//! with their outcomes. Time is a controlled clock where timers matter.

mod common;

use common::{header, mail, msgid, MailStack};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use ticketd::clock::ManualClock;
use ticketd::config::Config;
use ticketd::control::{self, CaseAction};
use ticketd::daemon::Daemon;
use ticketd::store::{CaseStatus, EventKind, OutboxState, Purpose};

const STAFF: &str = "sam@example.test";

fn config(stack: &MailStack, data: &Path, extra: &str) -> Config {
    let t = config_text(stack, data, extra);
    Config::from_toml(&t, "test.toml", data).unwrap_or_else(|e| panic!("config: {e}\n{t}"))
}

fn config_text(stack: &MailStack, data: &Path, extra: &str) -> String {
    format!(
        r#"data_dir = "{data}"
domain = "casehost.example.test"
{mailbox}{outbound}
[people]
alerts_to = ["admin@example.test"]
staff = ["{STAFF}"]
developers = ["dev@example.test"]
support_lead = ["lead@example.test"]

[triage]
trusted_authserv_id = "mx.example.test"
{extra}
"#,
        data = data.display(),
        mailbox = common::imap_mailbox(stack, "support"),
        outbound = common::smtp_outbound(stack),
    )
}

struct Env {
    stack: MailStack,
    data: tempfile::TempDir,
    clock: Arc<ManualClock>,
    d: Daemon,
    config_text: String,
    /// How far the controlled clock runs ahead of the real one (mail
    /// arrives on the server's real clock).
    ahead: std::sync::Mutex<chrono::Duration>,
}

impl Env {
    fn start(extra: &str) -> Env {
        let stack = MailStack::start();
        let data = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let d = Daemon::open(config(&stack, data.path(), extra), clock.clone()).expect("open");
        let config_text = config_text(&stack, data.path(), extra);
        Env {
            stack,
            data,
            clock,
            d,
            config_text,
            ahead: std::sync::Mutex::new(chrono::Duration::zero()),
        }
    }

    /// Move the controlled clock `by` ahead of real time.
    fn advance(&self, by: chrono::Duration) {
        if let Ok(mut a) = self.ahead.lock() {
            *a += by;
            self.clock.set(chrono::Utc::now() + *a);
        }
    }

    fn tick(&self) {
        if let Ok(a) = self.ahead.lock() {
            self.clock.set(chrono::Utc::now() + *a);
        }
    }

    /// `ticketd cases show ID` as an operator runs it, once this daemon
    /// has stopped.
    fn show(self, id: &str) -> String {
        let Env {
            stack: _stack,
            data,
            d,
            config_text,
            ..
        } = self;
        drop(d);
        let cfg = data.path().join("ticketd.toml");
        std::fs::write(&cfg, config_text).expect("config");
        let out = cli(&cfg, &["cases", "show", id], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Deliver `raw` into the support mailbox and run once.
    async fn arrive(&self, raw: String) -> ticketd::daemon::RunSummary {
        self.stack
            .append("support@example.test", "INBOX", raw.as_bytes())
            .await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        self.tick();
        self.d.run_once().await.expect("run once")
    }

    fn case(&self, id: &str) -> ticketd::store::Case {
        self.d.pipeline.store.case(id).expect("read").expect("case")
    }

    fn events(&self, id: &str) -> Vec<ticketd::store::Event> {
        self.d.pipeline.store.events(id).expect("events")
    }

    fn outbox(&self, id: &str) -> Vec<ticketd::store::OutboxEntry> {
        let c = self.case(id);
        c.outbox
            .iter()
            .filter_map(|o| self.d.pipeline.store.outbox_entry(*o).ok().flatten())
            .collect()
    }

    async fn inbox(&self, user: &str) -> Vec<String> {
        self.stack
            .messages(user, "INBOX")
            .await
            .into_iter()
            .map(|m| String::from_utf8_lossy(&m).into_owned())
            .collect()
    }

    async fn wait_inbox(&self, user: &str, n: usize) -> Vec<String> {
        self.stack
            .wait_messages(user, "INBOX", n, Duration::from_secs(20))
            .await
            .into_iter()
            .map(|m| String::from_utf8_lossy(&m).into_owned())
            .collect()
    }

    async fn act(&self, id: &str, a: CaseAction) -> Result<ticketd::store::Case, String> {
        control::act(&self.d.pipeline, id, &a, "cli:tester")
            .await
            .map_err(|e| e.to_string())
    }
}

fn kinds(events: &[ticketd::store::Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.name()).collect()
}

fn notices<'a>(
    o: &'a [ticketd::store::OutboxEntry],
    kind: &str,
) -> Vec<&'a ticketd::store::OutboxEntry> {
    o.iter()
        .filter(|e| e.notice.as_deref() == Some(kind))
        .collect()
}

async fn open_case(env: &Env) -> (String, String) {
    let s = env
        .arrive(mail(
            "From: Dana <dana@example.test>\nTo: support@example.test\nSubject: Printer queue stuck\nMessage-ID: <dana-1@example.test>",
            "The print queue in our office is stuck since this morning; documents never come out.",
        ))
        .await;
    assert_eq!(s.report.new_cases, 1, "{:?}", s.report);
    let acks = env.wait_inbox("dana@example.test", 1).await;
    ("SUP-000001".to_string(), msgid(&acks[0]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_runs_from_arrival_to_closed_by_mail_alone() {
    let env = Env::start("");
    let (id, ack_id) = open_case(&env).await;
    assert!(ack_id.starts_with("ack.SUP-000001."), "{ack_id}");
    let notice = env.wait_inbox(STAFF, 1).await;
    let note_id = msgid(&notice[0]);

    // Staff answer the new-case notice: relayed to the requester once,
    // threaded, from support@, with the tag, quoted notice stripped.
    env.arrive(mail(
        &format!("From: Sam <{STAFF}>\nTo: support@example.test\nSubject: Re: new case\nMessage-ID: <sam-1@example.test>\nIn-Reply-To: <{note_id}>\nReferences: <{note_id}>"),
        "Hello Dana, please restart the print spooler and tell us if it helps.\n\nSam\n\nOn Thu, Dec 3, 2026 at 10:00 AM ticketd wrote:\n> New support case SUP-000001 (level 3)\n> From: dana@example.test",
    ))
    .await;
    let dana = env.wait_inbox("dana@example.test", 2).await;
    let relay = &dana[1];
    assert_eq!(
        header(relay, "In-Reply-To"),
        Some("<dana-1@example.test>"),
        "{relay}"
    );
    assert!(
        header(relay, "Subject").is_some_and(|s| s.contains("[SUP-000001]")),
        "{relay}"
    );
    assert!(
        header(relay, "From").is_some_and(|f| f.contains("support@example.test")),
        "{relay}"
    );
    assert!(relay.contains("restart the print spooler"), "{relay}");
    assert!(relay.contains("Sam"), "the signature is kept: {relay}");
    assert!(
        !relay.contains("New support case") && !relay.contains("wrote:"),
        "{relay}"
    );
    let c = env.case(&id);
    assert!(
        c.clocks.responded_at.is_some(),
        "the relay is the first response"
    );
    assert_eq!(c.status, CaseStatus::Open);
    let relay_id = msgid(relay);
    env.d.run_once().await.expect("run");
    assert_eq!(
        env.inbox("dana@example.test").await.len(),
        2,
        "the relay went once"
    );

    // The requester answers the relay: a follow-up, staff are told.
    env.arrive(mail(
        &format!("From: Dana <dana@example.test>\nTo: support@example.test\nSubject: Re: [SUP-000001] Printer queue stuck\nMessage-ID: <dana-2@example.test>\nIn-Reply-To: <{relay_id}>"),
        "Restarted it, still stuck.",
    ))
    .await;
    assert_eq!(notices(&env.outbox(&id), "follow_up").len(), 1);

    // Reply-all with commands: recorded, never sent again; resolved.
    env.arrive(mail(
        &format!("From: Sam <{STAFF}>\nTo: Dana <dana@example.test>\nCc: support@example.test\nSubject: Re: [SUP-000001] Printer queue stuck\nMessage-ID: <sam-2@example.test>\nIn-Reply-To: <dana-2@example.test>"),
        "#resolve\n\nWe cleared the queue on the server; it prints again.",
    ))
    .await;
    let c = env.case(&id);
    assert_eq!(c.status, CaseStatus::Resolved);
    assert_eq!(
        env.outbox(&id)
            .iter()
            .filter(|e| e.purpose == Purpose::Reply)
            .count(),
        1,
        "reply-all is not relayed"
    );

    // "Broken again, urgent": the resolved case reopens with a fresh target.
    let before = env.case(&id).clocks.respond_by;
    env.arrive(mail(
        "From: Dana <dana@example.test>\nTo: support@example.test\nSubject: Re: [SUP-000001] Printer queue stuck\nMessage-ID: <dana-3@example.test>\nIn-Reply-To: <sam-2@example.test>",
        "Broken again, urgent.",
    ))
    .await;
    let c = env.case(&id);
    assert_eq!(c.status, CaseStatus::Open);
    assert!(c.clocks.responded_at.is_none() && c.clocks.started_at.is_some());
    let reply_at = env
        .d
        .pipeline
        .store
        .message(*c.messages.last().expect("msg"))
        .expect("read")
        .expect("msg")
        .received_at;
    assert_eq!(
        c.clocks.started_at,
        Some(reply_at),
        "the new target runs from the reply's arrival"
    );
    assert!(c.clocks.respond_by >= before && c.clocks.respond_by > Some(reply_at));
    assert_eq!(notices(&env.outbox(&id), "reopened").len(), 1);

    // An internal note is never relayed; then resolve by mail.
    env.arrive(mail(
        &format!("From: Sam <{STAFF}>\nTo: support@example.test\nSubject: Re: reopened\nMessage-ID: <sam-3@example.test>\nIn-Reply-To: <{note_id}>"),
        "#note\nCalled Dana: the driver was replaced, works now.",
    ))
    .await;
    assert_eq!(
        env.outbox(&id)
            .iter()
            .filter(|e| e.purpose == Purpose::Reply)
            .count(),
        1,
        "#note is not relayed"
    );
    assert!(
        env.case(&id).clocks.responded_at.is_none(),
        "a note is not a response"
    );
    env.arrive(mail(
        &format!("From: Sam <{STAFF}>\nTo: support@example.test\nSubject: Re: reopened\nMessage-ID: <sam-4@example.test>\nIn-Reply-To: <{note_id}>"),
        "#resolve",
    ))
    .await;
    assert_eq!(env.case(&id).status, CaseStatus::Resolved);

    // Seven days later the scheduler closes it.
    env.advance(chrono::Duration::days(8));
    env.d.run_once().await.expect("run");
    let c = env.case(&id);
    assert_eq!(
        c.status,
        CaseStatus::Closed,
        "{:?}",
        kinds(&env.events(&id))
    );
    let k = kinds(&env.events(&id));
    for want in [
        "staff_message",
        "follow_up",
        "reopened",
        "note",
        "resolved",
        "closed",
    ] {
        assert!(k.contains(&want), "{want} in {k:?}");
    }
    // A reply after closing opens a new case linked to the old one.
    env.arrive(mail(
        "From: Dana <dana@example.test>\nTo: support@example.test\nSubject: Re: [SUP-000001] Printer queue stuck\nMessage-ID: <dana-4@example.test>\nIn-Reply-To: <sam-2@example.test>",
        "Another question about the same printer: can it print double-sided?",
    ))
    .await;
    let n = env.case("SUP-000002");
    assert_eq!(n.links, vec![id.clone()]);
    assert!(!n.subject.contains("[SUP-000001]"), "{}", n.subject);
    assert!(env.case(&id).links.contains(&"SUP-000002".to_string()));
    let show = env.show(&id);
    println!("{show}");
    for want in [
        "timeline:",
        "requester",
        "staff",
        "reply to requester",
        STAFF,
        "closed",
    ] {
        assert!(show.contains(want), "{want} in:\n{show}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_reply_all_stops_the_clock_and_no_breach_follows() {
    let env = Env::start("");
    let (id, _) = open_case(&env).await;
    env.arrive(mail(
        &format!("From: Sam <{STAFF}>\nTo: Dana <dana@example.test>\nCc: support@example.test\nSubject: Re: [SUP-000001] Printer queue stuck\nMessage-ID: <sam-1@example.test>\nIn-Reply-To: <dana-1@example.test>"),
        "Looking at it now.",
    ))
    .await;
    let c = env.case(&id);
    assert!(c.clocks.responded_at.is_some());
    assert!(env.events(&id).iter().any(|e| matches!(
        e.kind,
        EventKind::StaffMessage {
            response: true,
            relayed: false,
            ..
        }
    )));
    // A week on, well past the target, inside hours: no warning, no breach.
    env.advance(chrono::Duration::days(7));
    env.d.run_once().await.expect("run");
    let o = env.outbox(&id);
    assert!(
        notices(&o, "breach").is_empty() && notices(&o, "warning").is_empty(),
        "{:?}",
        o.iter().map(|e| &e.notice).collect::<Vec<_>>()
    );
    let lead = env.inbox("lead@example.test").await;
    assert!(
        lead.iter()
            .all(|m| !header(m, "Subject").is_some_and(|s| s.starts_with("BREACH"))),
        "{lead:?}"
    );
    // Only the acknowledgement reached Dana: the reply-all was not sent again.
    assert_eq!(env.inbox("dana@example.test").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_page_and_only_authenticated_staff_may_command() {
    let env = Env::start("");
    let (id, ack_id) = open_case(&env).await;
    let level = env.case(&id).level;
    // The requester writing "#resolve" changes nothing: plain text.
    env.arrive(mail(
        &format!("From: Dana <dana@example.test>\nTo: support@example.test\nSubject: Re: [SUP-000001] Printer\nMessage-ID: <dana-2@example.test>\nIn-Reply-To: <{ack_id}>"),
        "#resolve\n#level 5 whatever",
    ))
    .await;
    let c = env.case(&id);
    assert_eq!(
        (c.status, c.level),
        (CaseStatus::New, level),
        "{:?}",
        kinds(&env.events(&id))
    );
    // Staff mail whose authentication fails is a stranger's.
    env.arrive(mail(
        &format!("Authentication-Results: mx.example.test; spf=fail smtp.mailfrom=example.test; dkim=fail; dmarc=fail header.from=example.test\nFrom: Sam <{STAFF}>\nTo: support@example.test\nSubject: Re: [SUP-000001] Printer\nMessage-ID: <forged-1@example.test>"),
        "#resolve",
    ))
    .await;
    assert_eq!(env.case(&id).status, CaseStatus::New);
    // A refused command applies nothing and the sender is told why.
    env.arrive(mail(
        &format!("From: Sam <{STAFF}>\nTo: support@example.test\nSubject: Re: [SUP-000001] Printer\nMessage-ID: <sam-0@example.test>"),
        "#assign Sam\n#level 9 nonsense",
    ))
    .await;
    assert_eq!(env.case(&id).assignee, None);
    assert!(env
        .events(&id)
        .iter()
        .any(|e| matches!(e.kind, EventKind::CommandRefused { .. })));
    let err = env.wait_inbox(STAFF, 2).await;
    assert!(
        err.iter()
            .any(|m| m.contains("was not applied") && m.contains("level 9")),
        "{err:?}"
    );
    // #level 1 from staff pages developers and staff.
    env.arrive(mail(
        &format!("From: Sam <{STAFF}>\nTo: support@example.test\nSubject: Re: [SUP-000001] Printer\nMessage-ID: <sam-1@example.test>"),
        "#level 1 the whole office cannot print payroll\n#assign sam@example.test",
    ))
    .await;
    let c = env.case(&id);
    assert_eq!(c.level, Some(1));
    assert_eq!(c.assignee.as_deref(), Some(STAFF));
    let dev = env.wait_inbox("dev@example.test", 1).await;
    assert!(dev[0].contains("SUP-000001"), "{}", dev[0]);
    let ev = env.events(&id);
    let by_staff = ev
        .iter()
        .find(|e| matches!(e.kind, EventKind::Releveled { .. }))
        .expect("releveled");
    assert_eq!(by_staff.actor, STAFF, "the event names the staff address");

    // A page queued by relevel is dropped once the case is resolved.
    let (id2, _) = {
        env.arrive(mail(
            "From: Ann <ann@example.test>\nTo: support@example.test\nSubject: Typo on the contact page\nMessage-ID: <ann-1@example.test>",
            "There is a small typo on the contact page: 'adress'.",
        ))
        .await;
        ("SUP-000002".to_string(), ())
    };
    env.act(
        &id2,
        CaseAction::Relevel {
            level: 1,
            reason: "test".into(),
        },
    )
    .await
    .expect("relevel");
    env.act(&id2, CaseAction::Resolve).await.expect("resolve");
    env.d.run_once().await.expect("run");
    let o = env.outbox(&id2);
    let pages = notices(&o, "page");
    assert_eq!(pages.len(), 1);
    assert_eq!(
        pages[0].state,
        OutboxState::Suppressed,
        "{:?}",
        pages[0].last_error
    );
    assert!(env
        .events(&id2)
        .iter()
        .any(|e| matches!(e.kind, EventKind::NotificationDropped { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_ids_and_foreign_tags_never_let_a_stranger_in() {
    let env = Env::start("");
    let (id, ack_id) = open_case(&env).await;

    // A made-up id that contains the case number, from a stranger.
    env.arrive(mail(
        "From: Mallory <mallory@example.test>\nTo: support@example.test\nSubject: Re: [SUP-000001] blank pages\nMessage-ID: <m-1@example.test>\nIn-Reply-To: <made-up-SUP-000001@elsewhere.example.net>",
        "Our office printer prints blank pages since this morning. Can you help us?",
    ))
    .await;
    let c1 = env.case(&id);
    assert_eq!(c1.messages.len(), 1, "nothing joined {id}");
    let n = env.case("SUP-000002");
    assert_eq!(n.links, vec![id.clone()]);
    assert!(
        n.doubt
            .as_deref()
            .is_some_and(|d| d.contains("not a party")),
        "{:?}",
        n.doubt
    );
    assert!(!n.subject.contains("SUP-000001"), "{}", n.subject);
    let mallory = env.wait_inbox("mallory@example.test", 1).await;
    let ack = &mallory[0];
    for secret in [
        "SUP-000001",
        "Printer queue stuck",
        "dana@example.test",
        "print queue",
    ] {
        assert!(
            !ack.contains(secret),
            "the stranger's ack reveals {secret:?}:\n{ack}"
        );
    }
    assert!(c1.links.contains(&"SUP-000002".to_string()));

    // Our id with a wrong token, from a stranger: the same.
    let forged = ack_id.replace("ack.SUP-000001.", "ack.SUP-000001.x");
    env.arrive(mail(
        &format!("From: Eve <eve@example.test>\nTo: support@example.test\nSubject: hello\nMessage-ID: <e-1@example.test>\nIn-Reply-To: <{forged}>"),
        "Hello, the invoice export in our account fails with an error since yesterday.",
    ))
    .await;
    assert_eq!(env.case(&id).messages.len(), 1);
    assert_eq!(env.case("SUP-000003").links, vec![id.clone()]);

    // A valid token from a Cc'd colleague joins, as a new participant.
    env.arrive(mail(
        &format!("From: Lee <lee@example.test>\nTo: support@example.test\nSubject: Re: [SUP-000001] Printer queue stuck\nMessage-ID: <lee-1@example.test>\nIn-Reply-To: <{ack_id}>"),
        "Same problem on the second floor printer.",
    ))
    .await;
    assert_eq!(env.case(&id).messages.len(), 2);
    assert!(env.events(&id).iter().any(|e| matches!(&e.kind, EventKind::ParticipantAdded { address, .. } if address == "lee@example.test")));
    // A tag alone from the requester joins; from a stranger it does not.
    env.arrive(mail(
        "From: Dana <dana@example.test>\nTo: support@example.test\nSubject: [SUP-000001] one more thing\nMessage-ID: <dana-2@example.test>",
        "It is the HP in room 4.",
    ))
    .await;
    assert_eq!(env.case(&id).messages.len(), 3);
    env.arrive(mail(
        "From: Oscar <oscar@example.test>\nTo: support@example.test\nSubject: [SUP-000001] add me\nMessage-ID: <o-1@example.test>",
        "Our scanner does not connect to the network any more, please help.",
    ))
    .await;
    assert_eq!(env.case(&id).messages.len(), 3);
    assert_eq!(env.case("SUP-000004").links, vec![id.clone()]);
    // A tag naming no case: a clean new case.
    env.arrive(mail(
        "From: Pat <pat@example.test>\nTo: support@example.test\nSubject: Re: [SUP-000777] login page\nMessage-ID: <p-1@example.test>",
        "The login page shows an error for me.",
    ))
    .await;
    let p = env.case("SUP-000005");
    assert_eq!(p.subject, "Re: login page");
    assert!(p.links.is_empty());
    // A read receipt of our acknowledgement is set aside, naming the case.
    env.arrive(mail(
        &format!("From: Dana <dana@example.test>\nTo: support@example.test\nSubject: Read: [SUP-000001] Printer queue stuck\nMessage-ID: <mdn-1@example.test>\nIn-Reply-To: <{ack_id}>\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=disposition-notification; boundary=\"b\""),
        &format!("--b\nContent-Type: text/plain\n\nYour message was displayed.\n--b\nContent-Type: message/disposition-notification\n\nFinal-Recipient: rfc822; dana@example.test\nOriginal-Message-ID: <{ack_id}>\nDisposition: manual-action/MDN-sent-manually; displayed\n--b--"),
    ))
    .await;
    assert_eq!(env.case(&id).messages.len(), 3, "a receipt is no follow-up");
    let ignored = env.d.pipeline.store.list_ignored().expect("ignored");
    let r = ignored
        .iter()
        .find(|r| r.category == "read receipt")
        .expect("set aside");
    assert_eq!(r.case.as_deref(), Some("SUP-000001"));
}

/// A `ticketd` command as an operator runs it (`USER=tester`).
fn cli(cfg: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_ticketd"));
    c.arg("--config").arg(cfg).args(args).env("USER", "tester");
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("spawn ticketd");
    if let Some(mut i) = child.stdin.take() {
        if let Some(text) = stdin {
            i.write_all(text.as_bytes()).expect("stdin");
        }
    }
    child.wait_with_output().expect("ticketd")
}

fn ok(cfg: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = cli(cfg, args, stdin);
    assert!(
        out.status.success(),
        "ticketd {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_runs_from_arrival_to_closed_by_cli_alone() {
    let stack = MailStack::start();
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = data.path().join("ticketd.toml");
    std::fs::write(&cfg, config_text(&stack, data.path(), "")).expect("config");
    stack
        .append(
            "support@example.test",
            "INBOX",
            mail(
                "From: Dana <dana@example.test>\nTo: support@example.test\nSubject: Printer queue stuck\nMessage-ID: <dana-1@example.test>",
                "The print queue in our office is stuck since this morning; documents never come out.",
            )
            .as_bytes(),
        )
        .await;
    ok(&cfg, &["run", "--once"], None);
    let id = "SUP-000001";
    ok(&cfg, &["cases", "review", id], None);
    ok(&cfg, &["cases", "assign", id, STAFF], None);
    let out = ok(
        &cfg,
        &["cases", "reply", id, "--message-file", "-"],
        Some("Dana, which printer model is it?\n\nSam, CaseHost Support\n"),
    );
    assert!(out.contains("reply queued"), "{out}");
    ok(&cfg, &["cases", "waiting", id], None);
    ok(&cfg, &["run", "--once"], None);
    let dana = stack
        .wait_messages("dana@example.test", "INBOX", 2, Duration::from_secs(20))
        .await;
    let reply = String::from_utf8_lossy(&dana[1]).into_owned();
    assert!(reply.contains("which printer model"), "{reply}");
    assert_eq!(header(&reply, "In-Reply-To"), Some("<dana-1@example.test>"));
    assert!(header(&reply, "Subject").is_some_and(|s| s.contains("[SUP-000001]")));
    ok(
        &cfg,
        &["cases", "note", id, "Model HP 4000, driver outdated."],
        None,
    );
    ok(&cfg, &["cases", "resolve", id], None);
    let twice = cli(&cfg, &["cases", "resolve", id], None);
    assert!(!twice.status.success(), "resolving twice is refused");
    ok(&cfg, &["cases", "close", id], None);
    assert!(!cli(&cfg, &["cases", "waiting", id], None).status.success());
    ok(&cfg, &["cases", "reopen", id], None);
    ok(&cfg, &["cases", "close", id], None);
    let listed = ok(
        &cfg,
        &[
            "cases",
            "list",
            "--status",
            "closed",
            "--assignee",
            STAFF,
            "--json",
        ],
        None,
    );
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let open = ok(&cfg, &["cases", "list", "--status", "open", "--json"], None);
    assert_eq!(open.lines().count(), 0, "{open}");
    let csv = ok(&cfg, &["cases", "export", "--format", "csv"], None);
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .is_some_and(|h| h.starts_with("id,kind,status,level")),
        "{csv}"
    );
    assert!(
        lines
            .next()
            .is_some_and(|r| r.starts_with("SUP-000001,support,closed,")),
        "{csv}"
    );
    let show = ok(&cfg, &["cases", "show", id], None);
    println!("{show}");
    for want in [
        "timeline:",
        "requester",
        "reply to requester",
        "cli:tester",
        "assigned",
        "closed",
        "reopened",
    ] {
        assert!(show.contains(want), "{want} in:\n{show}");
    }
}

/// `ticketd run --once` as its own process, optionally ended at a failpoint
/// as kill -9 would.
fn run_binary(cfg: &Path, failpoint: Option<&str>) -> std::process::Output {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_ticketd"));
    c.args(["--config", cfg.to_str().unwrap_or(""), "run", "--once"]);
    if let Some(f) = failpoint {
        c.env("TICKETD_FAILPOINT", f);
    }
    c.output().expect("run ticketd")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_between_relay_and_mark_sends_it_at_most_once_more_and_records_it_once() {
    let stack = MailStack::start();
    let data = tempfile::tempdir().expect("tempdir");
    let cfg = data.path().join("ticketd.toml");
    std::fs::write(&cfg, config_text(&stack, data.path(), "")).expect("config");
    stack
        .append(
            "support@example.test",
            "INBOX",
            mail(
                "From: Dana <dana@example.test>\nTo: support@example.test\nSubject: Printer queue stuck\nMessage-ID: <dana-1@example.test>",
                "The print queue in our office is stuck since this morning.",
            )
            .as_bytes(),
        )
        .await;
    assert!(run_binary(&cfg, None).status.success());
    let notice = stack
        .wait_messages(STAFF, "INBOX", 1, Duration::from_secs(20))
        .await;
    let note_id = msgid(&String::from_utf8_lossy(&notice[0]));
    stack
        .append(
            "support@example.test",
            "INBOX",
            mail(
                &format!("From: Sam <{STAFF}>\nTo: support@example.test\nSubject: Re: new case\nMessage-ID: <sam-1@example.test>\nIn-Reply-To: <{note_id}>"),
                "Please restart the print spooler.",
            )
            .as_bytes(),
        )
        .await;
    // Killed right after the server accepted the relay, before the mark.
    let killed = run_binary(&cfg, Some("after_send_before_mark"));
    assert!(!killed.status.success(), "the failpoint ends the process");
    assert!(run_binary(&cfg, None).status.success());
    let dana = stack
        .wait_messages("dana@example.test", "INBOX", 2, Duration::from_secs(20))
        .await;
    let relays: Vec<String> = dana
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .filter(|m| m.contains("restart the print spooler"))
        .collect();
    assert!((1..=2).contains(&relays.len()), "{} copies", relays.len());
    assert!(
        relays.iter().all(|r| msgid(r) == msgid(&relays[0])),
        "a resend keeps its Message-ID"
    );
    let store = ticketd::store::Store::open(data.path()).expect("store");
    let staff_messages = store
        .events("SUP-000001")
        .expect("events")
        .iter()
        .filter(|e| matches!(e.kind, EventKind::StaffMessage { .. }))
        .count();
    assert_eq!(staff_messages, 1, "recorded once");
    let c = store.case("SUP-000001").expect("read").expect("case");
    let replies: Vec<_> = c
        .outbox
        .iter()
        .filter_map(|o| store.outbox_entry(*o).ok().flatten())
        .filter(|e| e.purpose == Purpose::Reply)
        .collect();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].state, OutboxState::Sent);
}
