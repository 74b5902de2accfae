//! Privacy requests from receipt to answer, against the real Dovecot and
//! Postfix of `tests/mailstack/`: the one-time identity code (the right
//! code from the requester verifies; from another address, or a wrong
//! code, it does not), the UK GDPR pause, forwarding to the agency that
//! controls the data, extension inside and after the notice deadline,
//! refusal with the right to complain, the access answer with the
//! sub-processors, inquiries without a statutory clock, and the privacy
//! officer's commands by mail. Time is a controlled clock.

mod common;

use common::{header, mail, msgid, MailStack};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use ticketd::clock::ManualClock;
use ticketd::config::Config;
use ticketd::control::{self, CaseAction};
use ticketd::daemon::Daemon;
use ticketd::store::{CaseStatus, EventKind, PrivacyStatus};

const OFFICER: &str = "olga@example.test";
const STAFF: &str = "sam@example.test";
const AGENCY_DPO: &str = "dpo-legalaid@example.test";

fn config_text(stack: &MailStack, data: &Path, extra: &str) -> String {
    format!(
        r#"data_dir = "{data}"
domain = "casehost.example.test"
{mailbox}{outbound}
[people]
alerts_to = ["admin@example.test"]
staff = ["{STAFF}"]
support_lead = ["lead@example.test"]
privacy_officer = ["{OFFICER}"]

[triage]
trusted_authserv_id = "mx.example.test"

[[agencies]]
name = "Legal Aid North"
domains = ["legalaid-north.test"]
site_admins = ["it@legalaid-north.test"]
privacy_contact = "{AGENCY_DPO}"
{extra}
"#,
        data = data.display(),
        mailbox = common::imap_mailbox(stack, "privacy"),
        outbound = common::smtp_outbound(stack),
    )
}

struct Env {
    stack: MailStack,
    data: tempfile::TempDir,
    clock: Arc<ManualClock>,
    d: Daemon,
    config_text: String,
    ahead: std::sync::Mutex<chrono::Duration>,
}

impl Env {
    fn start() -> Env {
        Env::start_with("")
    }

    fn start_with(extra: &str) -> Env {
        let stack = MailStack::start();
        let data = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let text = config_text(&stack, data.path(), extra);
        let config = Config::from_toml(&text, "test.toml", data.path())
            .unwrap_or_else(|e| panic!("config: {e}\n{text}"));
        let d = Daemon::open(config, clock.clone()).expect("open");
        Env {
            stack,
            data,
            clock,
            d,
            config_text: text,
            ahead: std::sync::Mutex::new(chrono::Duration::zero()),
        }
    }

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

    async fn arrive(&self, raw: String) -> ticketd::daemon::RunSummary {
        // Arrival on the controlled clock (the server records it; it keeps
        // the real time for dates in the future).
        self.tick();
        self.stack
            .append_at(
                "privacy@example.test",
                "INBOX",
                raw.as_bytes(),
                ticketd::clock::Clock::now(&*self.clock),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        self.tick();
        self.d.run_once().await.expect("run once")
    }

    fn case(&self, id: &str) -> ticketd::store::Case {
        self.d.pipeline.store.case(id).expect("read").expect("case")
    }

    fn request(&self, id: &str) -> ticketd::store::PrivacyState {
        self.case(id).privacy.expect("privacy state")
    }

    fn events(&self, id: &str) -> Vec<ticketd::store::Event> {
        self.d.pipeline.store.events(id).expect("events")
    }

    async fn wait_inbox(&self, user: &str, n: usize) -> Vec<String> {
        self.stack
            .wait_messages(user, "INBOX", n, Duration::from_secs(20))
            .await
            .into_iter()
            .map(|m| readable(&m))
            .collect()
    }

    async fn inbox(&self, user: &str) -> Vec<String> {
        self.stack
            .messages(user, "INBOX")
            .await
            .into_iter()
            .map(|m| readable(&m))
            .collect()
    }

    /// A CLI action, then one run (the outbox sends what it queued).
    async fn act(&self, id: &str, a: CaseAction) -> Result<ticketd::store::Case, String> {
        let r = control::act(&self.d.pipeline, id, &a, "cli:tester")
            .await
            .map_err(|e| e.to_string());
        self.d.run_once().await.expect("run once");
        r
    }

    /// `ticketd ARGS` as an operator runs it, once this daemon has stopped.
    fn cli_after(self, args: &[&str]) -> String {
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
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ticketd"))
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .env("USER", "tester")
            .output()
            .expect("ticketd");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A delivered mail as its header lines, then its decoded text (bodies
/// travel quoted-printable).
fn readable(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let head = s
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .replace("\r\n", "\n");
    let text = ticketd::mail::parse(raw, 1 << 20)
        .map(|m| m.text)
        .unwrap_or_default();
    format!("{head}\n\n{text}")
}

/// The one-time code in an acknowledgement (the indented `XXXX-XXXX`).
fn code_in(ack: &str) -> String {
    ack.lines()
        .map(str::trim)
        .find(|l| {
            l.len() == 9
                && l.as_bytes()[4] == b'-'
                && l.chars()
                    .all(|c| c == '-' || c.is_ascii_uppercase() || c.is_ascii_digit())
        })
        .unwrap_or_else(|| panic!("no code in the acknowledgement:\n{ack}"))
        .to_string()
}

/// A request from `who`; returns its case id and our acknowledgement.
async fn request(env: &Env, who: &str, n: usize, subject: &str, body: &str) -> (String, String) {
    let s = env
        .arrive(mail(
            &format!("From: {who}\nTo: privacy@example.test\nSubject: {subject}\nMessage-ID: <req-{n}@example.test>"),
            body,
        ))
        .await;
    assert_eq!(s.report.new_cases, 1, "{:?}", s.report);
    let addr = who
        .rsplit_once('<')
        .map(|(_, a)| a.trim_end_matches('>'))
        .unwrap_or(who);
    // The acknowledgement of this very request (it answers its
    // Message-ID): the inbox may already hold mail of earlier requests.
    let want = format!("req-{n}@example.test");
    let started = std::time::Instant::now();
    let ack = loop {
        let found = env
            .inbox(addr)
            .await
            .into_iter()
            .find(|m| header(m, "In-Reply-To").is_some_and(|h| h.contains(&want)));
        if let Some(m) = found {
            break m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no acknowledgement of <{want}> in {addr}'s inbox"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id = ticketd::triage::find_case_number(header(&ack, "Subject").unwrap_or(""))
        .expect("case number in the ack subject");
    (id, ack)
}

const ACCESS: &str = "Hello,\n\nI live in Lyon, France. Under Article 15 GDPR I ask for a copy of all personal data you hold about me, and for the purposes of the processing.\n\nEve Martin";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_request_runs_from_arrival_to_completed_by_mail() {
    let env = Env::start();
    let (id, ack) = request(
        &env,
        "Eve Martin <eve@example.test>",
        1,
        "Access request",
        ACCESS,
    )
    .await;
    let code = code_in(&ack);
    let r = env.request(&id);
    assert_eq!(r.status, PrivacyStatus::IdentityPending);
    let stored = serde_json::to_string(&env.case(&id)).expect("json");
    assert!(
        !stored.contains(&code) && !stored.contains(&code.replace('-', "")),
        "only the code's hash is stored"
    );
    let ack_id = msgid(&ack);
    let reply = |from: &str, n: u32, body: &str| {
        mail(
            &format!("From: {from}\nTo: privacy@example.test\nSubject: Re: [{id}] Access request\nMessage-ID: <code-{n}@example.test>\nIn-Reply-To: <{ack_id}>"),
            body,
        )
    };
    // The right code from another address (it holds our token) does not
    // verify; a wrong code from the requester does not either.
    env.arrive(reply(
        "mallory@example.test",
        1,
        &format!("Here is the code: {code}"),
    ))
    .await;
    assert_eq!(env.request(&id).status, PrivacyStatus::IdentityPending);
    assert_eq!(env.request(&id).code_attempts, 1);
    env.arrive(reply("eve@example.test", 2, "My code is ABCD-EFGH"))
        .await;
    assert_eq!(env.request(&id).status, PrivacyStatus::IdentityPending);
    assert_eq!(env.request(&id).code_attempts, 2);
    // The right code from the requester's own mailbox verifies.
    env.arrive(reply(
        "Eve Martin <eve@example.test>",
        3,
        &format!("Hello, the code is {}.\n\nEve", code.to_lowercase()),
    ))
    .await;
    let r = env.request(&id);
    assert_eq!(r.status, PrivacyStatus::Verified, "{r:?}");
    assert!(r
        .verified
        .as_deref()
        .is_some_and(|v| v.contains("own mailbox")));
    // Follow-ups on a privacy request reach the privacy officer, never
    // support staff.
    let outbox: Vec<_> = env
        .case(&id)
        .outbox
        .iter()
        .filter_map(|o| env.d.pipeline.store.outbox_entry(*o).ok().flatten())
        .collect();
    assert!(
        outbox
            .iter()
            .any(|e| e.notice.as_deref() == Some("follow_up")
                && e.recipients.iter().any(|r| r == OFFICER)),
        "the officer hears of the replies"
    );
    assert!(
        outbox
            .iter()
            .all(|e| !e.recipients.iter().any(|r| r == STAFF)),
        "support staff saw a privacy request"
    );
    let rejected = env
        .events(&id)
        .iter()
        .filter(|e| matches!(e.kind, EventKind::CodeRejected { .. }))
        .count();
    assert_eq!(rejected, 2);

    // The privacy officer answers the new-request notice with #complete:
    // the answer goes to the requester, threaded, with the disclosure.
    let notes = env.wait_inbox(OFFICER, 1).await;
    let note_id = msgid(&notes[0]);
    env.arrive(mail(
        &format!("From: Olga <{OFFICER}>\nTo: privacy@example.test\nSubject: Re: new privacy request\nMessage-ID: <olga-1@example.test>\nIn-Reply-To: <{note_id}>"),
        "#complete\n\nThe attached export is everything we hold about you.",
    ))
    .await;
    let c = env.case(&id);
    assert_eq!(
        c.privacy.as_ref().map(|p| p.status),
        Some(PrivacyStatus::Completed)
    );
    assert_eq!(c.status, CaseStatus::Resolved);
    assert!(c.clocks.responded_at.is_some());
    let eve = env.wait_inbox("eve@example.test", 2).await;
    let answer = eve.last().expect("answer");
    assert_eq!(header(answer, "In-Reply-To"), Some("<code-3@example.test>"));
    for want in [
        "Google",
        "Amazon Web Services",
        "US Postal Service",
        "hosting",
        "address validation",
        "United States",
    ] {
        assert!(answer.contains(want), "{want} missing:\n{answer}");
    }
    let show = env.cli_after(&["privacy", "show", &id]);
    println!("{show}");
    assert!(show.contains("request completed"), "{show}");
    assert!(show.contains("verified"), "{show}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uk_gdpr_pauses_for_identity_and_shows_both_dates() {
    let env = Env::start();
    // The request arrives four days ago (the server takes no future
    // arrival dates), the code today.
    env.advance(chrono::Duration::days(-4));
    let (id, ack) = request(
        &env,
        "Uma <uma@example.test>",
        1,
        "Erase my data",
        "Dear CaseHost,\n\nI live in Manchester, United Kingdom. Under Article 17 of the UK GDPR please erase all personal data you hold about me.\n\nUma",
    )
    .await;
    let code = code_in(&ack);
    let c = env.case(&id);
    assert_eq!(
        c.clocks.regime,
        Some(ticketd::clock::Regime::UkGdpr),
        "{c:?}"
    );
    let before = c.clocks.privacy.expect("dates").respond_by;
    env.advance(chrono::Duration::days(4));
    env.arrive(mail(
        &format!("From: uma@example.test\nTo: privacy@example.test\nSubject: Re: [{id}] Erase my data\nMessage-ID: <uma-2@example.test>\nIn-Reply-To: <{}>", msgid(&ack)),
        &format!("Code: {code}"),
    ))
    .await;
    let c = env.case(&id);
    let p = c.privacy.clone().expect("state");
    assert_eq!(p.status, PrivacyStatus::Verified);
    let after = c.clocks.privacy.expect("dates").respond_by;
    assert!(p.paused_days >= 3, "{p:?}");
    assert_eq!(p.original.map(|d| d.respond_by), Some(before));
    // The clock stopped for the days the code took: the month from
    // arrival, plus those days, then moved to a working day (a weekend or a
    // holiday can absorb part of the difference between the two adjusted
    // dates, so it is checked against the unadjusted month).
    let month = c
        .received_at
        .date_naive()
        .checked_add_months(chrono::Months::new(1))
        .expect("a month on");
    let floor = month + chrono::Duration::days(p.paused_days - 1);
    assert!(
        after >= floor && after <= floor + chrono::Duration::days(7) && after >= before,
        "{before} → {after} (month from arrival {month}, paused {} days)",
        p.paused_days
    );
    assert!(env
        .events(&id)
        .iter()
        .any(|e| matches!(e.kind, EventKind::DatesMoved { .. })));
    let list = env.cli_after(&["privacy", "list"]);
    println!("{list}");
    assert!(
        list.contains(&format!("{after} (was {before})")),
        "both dates: {list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdpr_does_not_pause_and_a_duplicate_request_is_not_verified() {
    let env = Env::start();
    env.advance(chrono::Duration::days(-3));
    let (id, ack) = request(&env, "eve@example.test", 1, "Access request", ACCESS).await;
    let code = code_in(&ack);
    let before = env.case(&id).clocks.privacy.expect("dates").respond_by;
    env.advance(chrono::Duration::days(3));
    env.arrive(mail(
        &format!("From: eve@example.test\nTo: privacy@example.test\nSubject: Re: [{id}] Access request\nMessage-ID: <eve-2@example.test>\nIn-Reply-To: <{}>", msgid(&ack)),
        &code,
    ))
    .await;
    assert_eq!(env.request(&id).status, PrivacyStatus::Verified);
    assert_eq!(
        env.case(&id).clocks.privacy.map(|d| d.respond_by),
        Some(before),
        "GDPR's clock does not stop"
    );
    // The same person asks again, in a new message: a new request that
    // waits for its own code.
    let (id2, ack2) = request(&env, "eve@example.test", 2, "Access request again", ACCESS).await;
    assert_ne!(id, id2);
    assert_eq!(env.request(&id2).status, PrivacyStatus::IdentityPending);
    assert_ne!(code_in(&ack2), code);
    // The first request's code does not verify the second.
    env.arrive(mail(
        &format!("From: eve@example.test\nTo: privacy@example.test\nSubject: Re: [{id2}] Access request again\nMessage-ID: <eve-3@example.test>\nIn-Reply-To: <{}>", msgid(&ack2)),
        &code,
    ))
    .await;
    assert_eq!(env.request(&id2).status, PrivacyStatus::IdentityPending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_extend_and_deny_by_cli() {
    let env = Env::start();
    // A client of an agency: the request names the agency.
    let (fid, _) = request(
        &env,
        "Carl <carl@example.test>",
        1,
        "My file at Legal Aid North",
        "Hello,\n\nI live in Vienna, Austria. Legal Aid North keeps my case file in its CaseHost site. Under Article 15 GDPR I want a copy of the personal data in that file.\n\nCarl",
    )
    .await;
    assert_eq!(
        env.request(&fid).suggested_agency.as_deref(),
        Some("Legal Aid North")
    );
    env.act(
        &fid,
        CaseAction::Forward {
            agency: "Legal Aid North".into(),
        },
    )
    .await
    .expect("forward");
    let dpo = env.wait_inbox(AGENCY_DPO, 1).await;
    assert!(
        dpo[0].contains("keeps my case file"),
        "the request's text: {}",
        dpo[0]
    );
    let carl = env.wait_inbox("carl@example.test", 2).await;
    let told = carl.last().expect("forwarded notice");
    assert!(
        told.contains("Legal Aid North") && told.contains(AGENCY_DPO),
        "{told}"
    );
    let p = env.request(&fid);
    assert_eq!(p.status, PrivacyStatus::Forwarded);
    // The agency does not acknowledge: the officer is reminded.
    env.advance(chrono::Duration::days(8));
    env.d.run_once().await.expect("run");
    let olga = env.wait_inbox(OFFICER, 2).await;
    assert!(
        olga.iter()
            .any(|m| m.contains("not acknowledged") || m.contains("no acknowledgement")),
        "{olga:?}"
    );

    // Extension inside the first period: the requester hears why and when.
    let (eid, _) = request(&env, "Eve <eve@example.test>", 2, "Access request", ACCESS).await;
    let c = env
        .act(
            &eid,
            CaseAction::Extend {
                reason: "Your data is spread over three archived systems.".into(),
            },
        )
        .await
        .expect("extend");
    let new_date = c.clocks.privacy.expect("dates").respond_by;
    assert_eq!(
        c.privacy.as_ref().map(|p| p.status),
        Some(PrivacyStatus::Extended)
    );
    let eve = env.wait_inbox("eve@example.test", 2).await;
    let ext = eve.last().expect("extension notice");
    assert!(ext.contains("three archived systems"), "{ext}");
    assert!(ext.contains(&new_date.to_string()), "{new_date}: {ext}");

    // Refusal: reasons and the right to complain and to a judicial remedy.
    let (did, _) = request(&env, "Rex <rex@example.test>", 3, "Access request", ACCESS).await;
    env.act(
        &did,
        CaseAction::Deny {
            reason: "This is the fortieth identical request this month.".into(),
        },
    )
    .await
    .expect("deny");
    let rex = env.wait_inbox("rex@example.test", 2).await;
    let no = rex.last().expect("refusal");
    for want in [
        "fortieth identical",
        "complaint",
        "supervisory authority",
        "judicial remedy",
    ] {
        assert!(no.contains(want), "{want}: {no}");
    }
    assert_eq!(env.request(&did).status, PrivacyStatus::Denied);

    // After the notice deadline an extension is refused with a clear error.
    let (lid, _) = request(&env, "Lou <lou@example.test>", 4, "Access request", ACCESS).await;
    env.advance(chrono::Duration::days(40));
    let err = env
        .act(
            &lid,
            CaseAction::Extend {
                reason: "late".into(),
            },
        )
        .await
        .expect_err("too late");
    assert!(err.contains("too late") || err.contains("after"), "{err}");
    let list = env.cli_after(&["privacy", "list", "--all"]);
    println!("{list}");
    assert!(list.contains(&fid) && list.contains("forwarded"), "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inquiry_has_no_statutory_clock_and_complete_answers_it() {
    let env = Env::start();
    let (id, ack) = request(
        &env,
        "Ines <ines@example.test>",
        1,
        "Hosting question",
        "Hello,\n\nbefore we sign: where is the data of our site hosted, and who are your sub-processors?\n\nInes",
    )
    .await;
    let c = env.case(&id);
    let p = c.privacy.clone().expect("state");
    assert!(p.inquiry, "{c:?}");
    assert!(c.rights.is_empty());
    assert!(c.clocks.privacy.is_none(), "no statutory clock");
    assert!(c.clocks.review_by.is_some(), "the review clock applies");
    assert!(ack.contains("question"), "{ack}");
    assert!(
        !ack.lines()
            .any(|l| l.trim().len() == 9 && l.trim().as_bytes()[4] == b'-'),
        "no identity code for a question: {ack}"
    );
    env.act(
        &id,
        CaseAction::Complete {
            text: Some("We host on Amazon Web Services in the United States.".into()),
            attachments: vec![],
        },
    )
    .await
    .expect("complete");
    let ines = env.wait_inbox("ines@example.test", 2).await;
    let answer = ines.last().expect("answer");
    assert!(
        answer.contains("Amazon Web Services") && answer.contains("Google"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_by_mail_works_from_the_privacy_officer_only() {
    let env = Env::start();
    let (id, _) = request(&env, "eve@example.test", 1, "Access request", ACCESS).await;
    let notes = env.wait_inbox(OFFICER, 1).await;
    let note_id = msgid(&notes[0]);
    let cmd = |from: &str, n: u32| {
        mail(
            &format!("From: {from}\nTo: privacy@example.test\nSubject: Re: [{id}] Access request\nMessage-ID: <ext-{n}@example.test>\nIn-Reply-To: <{note_id}>"),
            "#extend Three archived systems hold the data.\n",
        )
    };
    // Support staff: a command by mail on a privacy request is refused.
    env.arrive(cmd(STAFF, 1)).await;
    assert!(!env.request(&id).extended);
    assert!(env
        .events(&id)
        .iter()
        .any(|e| matches!(e.kind, EventKind::CommandRefused { .. })));
    let sam = env.wait_inbox(STAFF, 1).await;
    assert!(
        sam.iter().any(|m| m.contains("privacy officer")),
        "the error says why: {sam:?}"
    );
    // A stranger holding the notice's id: nothing is applied.
    env.arrive(cmd("mallory@example.test", 2)).await;
    assert!(!env.request(&id).extended);
    // The officer, but authentication failed: not a command.
    env.arrive(format!("Authentication-Results: mx.example.test; spf=fail smtp.mailfrom=example.test; dkim=fail; dmarc=fail header.from=example.test\r\n{}", cmd(OFFICER, 3)))
        .await;
    assert!(!env.request(&id).extended);
    // The officer: extended, the requester told.
    env.arrive(cmd(&format!("Olga <{OFFICER}>"), 4)).await;
    let p = env.request(&id);
    assert!(p.extended, "{p:?}");
    assert_eq!(p.status, PrivacyStatus::Extended);
    let eve = env.wait_inbox("eve@example.test", 2).await;
    assert!(eve
        .last()
        .is_some_and(|m| m.contains("Three archived systems")));
    assert_eq!(env.inbox("mallory@example.test").await.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_privacy_officer_verifies_forwards_denies_and_answers_by_mail() {
    let env = Env::start();
    let officer = |id: &str, note_id: &str, n: u32, body: &str| {
        mail(
            &format!("From: Olga <{OFFICER}>\nTo: privacy@example.test\nSubject: Re: [{id}] new request\nMessage-ID: <olga-{n}@example.test>\nIn-Reply-To: <{note_id}>"),
            body,
        )
    };
    // Forward by mail.
    let (fid, _) = request(
        &env,
        "carl@example.test",
        1,
        "Data held by Legal Aid North",
        "I live in Graz, Austria. Under Article 17 GDPR please erase my client file that Legal Aid North keeps in CaseHost.",
    )
    .await;
    let notes = env.wait_inbox(OFFICER, 1).await;
    env.arrive(officer(
        &fid,
        &msgid(&notes[0]),
        1,
        "#forward Legal Aid North\n",
    ))
    .await;
    assert_eq!(env.request(&fid).status, PrivacyStatus::Forwarded);
    let dpo = env.wait_inbox(AGENCY_DPO, 1).await;
    assert!(dpo[0].contains("client file"), "{}", dpo[0]);
    // The agency acknowledges by replying to the forward.
    env.arrive(mail(
        &format!("From: {AGENCY_DPO}\nTo: privacy@example.test\nSubject: Re: [{fid}] privacy request\nMessage-ID: <dpo-1@example.test>\nIn-Reply-To: <{}>", msgid(&dpo[0])),
        "Received, we take it from here.",
    ))
    .await;
    assert!(env.request(&fid).agency_acknowledged_at.is_some());

    // Verify by other means, then a relay of the officer's words, threaded.
    let (vid, _) = request(&env, "vic@example.test", 2, "Access request", ACCESS).await;
    let notes = env.wait_inbox(OFFICER, 2).await;
    let note_id = msgid(notes.last().expect("notice"));
    env.arrive(officer(
        &vid,
        &note_id,
        2,
        "#verify called back on the number in her contract\n",
    ))
    .await;
    let r = env.request(&vid);
    assert_eq!(r.status, PrivacyStatus::Verified);
    assert!(r
        .verified
        .as_deref()
        .is_some_and(|v| v.contains("called back")));
    env.arrive(officer(
        &vid,
        &note_id,
        3,
        "Dear Vic, we are collecting your data and will send it within a week.\n\nOlga",
    ))
    .await;
    let vic = env.wait_inbox("vic@example.test", 2).await;
    let relay = vic.last().expect("relay");
    assert_eq!(header(relay, "In-Reply-To"), Some("<req-2@example.test>"));
    assert!(relay.contains("collecting your data"), "{relay}");
    assert_eq!(
        env.request(&vid).status,
        PrivacyStatus::InProgress,
        "answered: being worked on"
    );
    assert!(header(relay, "From").is_some_and(|f| f.contains("privacy@example.test")));

    // Deny by mail.
    let (did, _) = request(&env, "rex@example.test", 3, "Access request", ACCESS).await;
    let notes = env.wait_inbox(OFFICER, 3).await;
    env.arrive(officer(
        &did,
        &msgid(notes.last().expect("notice")),
        4,
        "#deny The same request was answered in full on 1 December.\n",
    ))
    .await;
    assert_eq!(env.request(&did).status, PrivacyStatus::Denied);
    let rex = env.wait_inbox("rex@example.test", 2).await;
    assert!(rex
        .last()
        .is_some_and(|m| m.contains("answered in full") && m.contains("judicial remedy")));
    for id in [&fid, &vid, &did] {
        let tl: Vec<String> = env
            .events(id)
            .iter()
            .map(|e| format!("{} {} {}", e.at.format("%H:%M:%S"), e.actor, e.kind.name()))
            .collect();
        println!("{id}:\n  {}", tl.join("\n  "));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_forward_sends_a_request_that_names_an_agency_at_once() {
    let env = Env::start_with("\n[privacy]\nauto_forward = true\n");
    let (id, _) = request(
        &env,
        "carl@example.test",
        1,
        "My file",
        "I live in Graz, Austria. Under Article 15 GDPR I want a copy of the file Legal Aid North keeps about me.",
    )
    .await;
    let p = env.request(&id);
    assert_eq!(p.status, PrivacyStatus::Forwarded, "{p:?}");
    assert_eq!(p.forwarded_to.as_deref(), Some("Legal Aid North"));
    let dpo = env.wait_inbox(AGENCY_DPO, 1).await;
    assert!(dpo[0].contains("keeps about me"), "{}", dpo[0]);
    // One that names no agency stays with us.
    let (own, _) = request(&env, "eve@example.test", 2, "Access request", ACCESS).await;
    assert_eq!(env.request(&own).status, PrivacyStatus::IdentityPending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_verifies_and_completes_with_an_attachment() {
    let env = Env::start();
    let (id, _) = request(&env, "eve@example.test", 1, "Access request", ACCESS).await;
    let Env {
        stack,
        data,
        d,
        config_text,
        ..
    } = env;
    drop(d);
    let cfg = data.path().join("ticketd.toml");
    std::fs::write(&cfg, config_text).expect("config");
    let run = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ticketd"))
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .env("USER", "tester")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        if let (Some(mut i), Some(t)) = (child.stdin.take(), stdin) {
            i.write_all(t.as_bytes()).expect("stdin");
        }
        child.wait_with_output().expect("ticketd")
    };
    // --method and --not-needed are exclusive; --not-needed needs a reason.
    assert!(!run(&["privacy", "verify", &id, "--not-needed"], None)
        .status
        .success());
    let out = run(
        &[
            "privacy",
            "verify",
            &id,
            "--not-needed",
            "--reason",
            "long-standing customer, known address",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("request verified"));
    let export = data.path().join("eve-export.csv");
    std::fs::write(&export, "case,subject\nSUP-000009,Printer\n").expect("export");
    let out = run(
        &[
            "privacy",
            "complete",
            &id,
            "--message-file",
            "-",
            "--attach",
            export.to_str().expect("path"),
        ],
        Some("Attached is everything we hold about you."),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A completed request cannot be completed again.
    assert!(!run(&["privacy", "complete", &id], None).status.success());
    let out = run(&["run", "--once"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let eve = stack
        .wait_messages("eve@example.test", "INBOX", 2, Duration::from_secs(20))
        .await;
    let raw = eve.last().expect("answer");
    let m = ticketd::mail::parse(raw, 1 << 20).expect("mail");
    assert!(
        m.text.contains("everything we hold about you"),
        "{}",
        m.text
    );
    assert!(m.text.contains("Amazon Web Services"), "{}", m.text);
    assert_eq!(m.attachment_count, 1, "the export is attached");
    let s = String::from_utf8_lossy(raw);
    assert!(s.contains("eve-export.csv"), "{s}");
    let show = run(&["privacy", "show", &id], None);
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.contains("not needed: long-standing customer"),
        "{show}"
    );
    assert!(show.contains("request completed"), "{show}");
}
