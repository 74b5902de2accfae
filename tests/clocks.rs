//! Clocks, schedules and escalation, driven by a controlled clock: messages
//! are ingested at chosen instants, and the scheduler's `run_due` is called
//! as simulated time advances (every minute, as the daemon's `escalate` job
//! runs). Each test asserts exactly which mails were queued, to whom and
//! when — the outbox is where every notification goes.
//!
//! Times are US Eastern (the default calendar): 2026-11-20 is a Friday,
//! 2026-11-26 Thanksgiving, 2026-11-01 the fall-back day.

use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;
use ticketd::clock::{Clock, ManualClock};
use ticketd::config::{Config, Role};
use ticketd::control::{self, CaseAction};
use ticketd::daemon::Daemon;
use ticketd::pipeline::{IngestOptions, Pipeline};
use ticketd::source::Envelope;
use ticketd::store::{OutboxEntry, Purpose};

const CONFIG: &str = r#"
data_dir = "data"
domain = "casehost.example"

[[mailboxes]]
name = "support"
role = "support"
address = "support@casehost.example"
source = "maildir"
path = "maildir"

[outbound]
from_support = "CaseHost Support <support@casehost.example>"
from_privacy = "CaseHost Privacy <privacy@casehost.example>"
transport = "file"

[triage]
trusted_authserv_id = "mx.casehost.example"

[people]
staff = ["staff@casehost.example"]
developers = ["dev1@casehost.example", "dev2@casehost.example"]
support_lead = ["lead@casehost.example"]
privacy_officer = ["dpo@casehost.example"]

[people.on_call]
rotation = ["ann@casehost.example", "bob@casehost.example"]
handover = "2026-11-16T07:30"
every = "7days"

[[agencies]]
name = "Legal Aid North"
domains = ["legalaid-north.example.org"]
site_admins = ["admin@legalaid-north.example.org"]
notify_on_new_ticket = true
"#;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test instant")
        .with_timezone(&Utc)
}

/// A mail the outbox holds, reduced to what the tests compare.
#[derive(Debug, Clone, PartialEq)]
struct Sent {
    at: DateTime<Utc>,
    kind: String,
    to: Vec<String>,
    subject: String,
}

struct Sim {
    _dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    p: Pipeline,
    n: u32,
}

impl Sim {
    fn new(start: &str) -> Sim {
        Sim::with_config(start, CONFIG)
    }

    fn with_config(start: &str, text: &str) -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::from_toml(text, "clocks-test.toml", dir.path()).expect("config");
        let clock = Arc::new(ManualClock::new(at(start)));
        // Wired as the daemon wires it, on the controlled clock.
        let p = Daemon::open(config, clock.clone())
            .expect("daemon")
            .pipeline;
        // First sight of the store: every job records "now" as its last run.
        ticketd::schedule::run_due(&p, at(start)).expect("jobs");
        Sim {
            _dir: dir,
            clock,
            p,
            n: 0,
        }
    }

    /// Deliver a message (a fixture file, with a fresh Message-ID) at `t`.
    fn receive_fixture(&mut self, fixture: &str, t: &str) -> String {
        let path = format!("{}/fixtures/demo/{fixture}", env!("CARGO_MANIFEST_DIR"));
        let raw = std::fs::read_to_string(&path).expect("fixture");
        self.receive(&raw, t)
    }

    fn receive(&mut self, raw: &str, t: &str) -> String {
        self.n += 1;
        let mid = format!("Message-ID: <sim-{}@test.example>", self.n);
        let raw = match raw
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
        {
            Some(line) => raw.replacen(line, &mid, 1),
            None => format!("{mid}\r\n{raw}"),
        };
        let now = at(t);
        self.clock.set(now);
        let env = Envelope {
            source: "support".into(),
            key: format!("sim-{}", self.n),
            received_at: now,
            raw: raw.into_bytes(),
            original_size: None,
        };
        let o = self
            .p
            .ingest(&env, Role::Support, IngestOptions::default())
            .expect("ingest");
        match o {
            ticketd::store::IngestOutcome::NewCase { case, .. } => case,
            other => panic!("expected a new case, got {other:?}"),
        }
    }

    /// Advance the clock to `until` in `step`s, running due jobs each time.
    fn run_until(&self, until: &str, step: Duration) {
        let end = at(until);
        let mut t = self.clock.now();
        while t < end {
            t = (t + step).min(end);
            self.clock.set(t);
            ticketd::schedule::run_due(&self.p, t).expect("jobs");
        }
    }

    fn act(&self, id: &str, action: CaseAction, t: &str) {
        self.clock.set(at(t));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(control::act(&self.p, id, &action, "cli:test"))
            .expect("action");
    }

    fn outbox(&self) -> Vec<OutboxEntry> {
        self.p.store.outbox_all().expect("outbox")
    }

    /// The most recent digest in the outbox.
    fn last_digest(&self) -> OutboxEntry {
        self.outbox()
            .into_iter()
            .rev()
            .find(|e| e.message_id.starts_with("note.ticketd."))
            .expect("digest")
    }

    /// Notifications (not acknowledgements), in order.
    fn notices(&self) -> Vec<Sent> {
        self.outbox()
            .into_iter()
            .filter(|e| e.purpose != Purpose::Ack)
            .map(|e| Sent {
                at: e.created_at,
                kind: match e.case {
                    None => "digest".to_string(),
                    Some(_) => e.notice.clone().unwrap_or_default(),
                },
                to: e.recipients.clone(),
                subject: e.subject.clone(),
            })
            .collect()
    }

    fn notices_of(&self, kind: &str) -> Vec<Sent> {
        self.notices()
            .into_iter()
            .filter(|s| s.kind == kind)
            .collect()
    }

    fn ack_text(&self, case: &str) -> String {
        let e = self
            .outbox()
            .into_iter()
            .find(|e| e.purpose == Purpose::Ack && e.case.as_deref() == Some(case))
            .expect("acknowledgement");
        decode_body(&e.mail)
    }
}

/// The text of a built mail (quoted-printable or base64 bodies decoded).
fn decode_body(mail: &str) -> String {
    let m = mail_parser::MessageParser::default()
        .parse(mail.as_bytes())
        .expect("built mail parses");
    m.body_text(0)
        .map(|t| t.replace("\r\n", "\n"))
        .unwrap_or_default()
}

fn times(v: &[Sent]) -> Vec<DateTime<Utc>> {
    v.iter().map(|s| s.at).collect()
}

#[test]
fn a_weekend_passes_quietly_for_a_level_3_case() {
    // Friday 19:00: 30 minutes of support time left today.
    let mut sim = Sim::new("2026-11-20T18:00:00-05:00");
    let id = sim.receive_fixture("03-report-error.eml", "2026-11-20T19:00:00-05:00");
    let case = sim.p.store.case(&id).expect("read").expect("case");
    assert_eq!(case.level, Some(3));
    // Review: 30 min of support time → exactly at closing on Friday.
    assert_eq!(case.clocks.review_by, Some(at("2026-11-20T19:30:00-05:00")));
    // 60 min: 30 on Friday + 30 on Monday; the 80 % warning at 48 min.
    assert_eq!(
        case.clocks.respond_by,
        Some(at("2026-11-23T08:00:00-05:00"))
    );
    assert_eq!(case.clocks.warn_at, Some(at("2026-11-23T07:48:00-05:00")));
    assert!(sim
        .ack_text(&id)
        .contains("respond by Monday, Nov 23, 8:00 a.m. ET"));

    sim.run_until("2026-11-23T09:00:00-05:00", Duration::minutes(1));
    let n = sim.notices();
    let summary: Vec<(String, DateTime<Utc>, Vec<String>)> = n
        .iter()
        .filter(|s| s.kind != "digest")
        .map(|s| (s.kind.clone(), s.at, s.to.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "new_case".into(),
                at("2026-11-20T19:00:00-05:00"),
                vec!["staff@casehost.example".into()]
            ),
            // The agency's administrators opted in (the sender is theirs).
            (
                "agency".into(),
                at("2026-11-20T19:00:00-05:00"),
                vec!["admin@legalaid-north.example.org".into()]
            ),
            // Due exactly at closing: escalated at closing, not Monday.
            (
                "review_missed".into(),
                at("2026-11-20T19:30:00-05:00"),
                vec!["lead@casehost.example".into()]
            ),
            // Nothing over the weekend; the warning and the breach on Monday.
            (
                "warning".into(),
                at("2026-11-23T07:48:00-05:00"),
                vec!["staff@casehost.example".into()]
            ),
            (
                "breach".into(),
                at("2026-11-23T08:00:00-05:00"),
                vec!["lead@casehost.example".into()]
            ),
        ]
    );
    // Every notification is also an event on the case.
    let events = sim.p.store.events(&id).expect("events");
    let queued = events
        .iter()
        .filter(|e| e.kind.name() == "notification_queued")
        .count();
    assert_eq!(queued, 5);
}

#[test]
fn level_1_pages_every_30_minutes_at_any_hour_until_resolved() {
    let mut sim = Sim::new("2026-11-21T02:00:00-05:00");
    // Saturday 03:00: outside support hours; pages go out anyway.
    let id = sim.receive_fixture("01-site-down.eml", "2026-11-21T03:00:00-05:00");
    sim.run_until("2026-11-21T05:10:00-05:00", Duration::minutes(1));
    sim.act(&id, CaseAction::Resolve, "2026-11-21T05:10:00-05:00");
    sim.run_until("2026-11-21T09:00:00-05:00", Duration::minutes(1));
    let pages = sim.notices_of("page");
    assert_eq!(
        times(&pages),
        vec![
            at("2026-11-21T03:00:00-05:00"),
            at("2026-11-21T03:30:00-05:00"),
            at("2026-11-21T04:00:00-05:00"),
            at("2026-11-21T04:30:00-05:00"),
            at("2026-11-21T05:00:00-05:00"),
        ]
    );
    for p in &pages {
        assert_eq!(
            p.to,
            vec![
                "dev1@casehost.example",
                "dev2@casehost.example",
                "staff@casehost.example"
            ]
        );
    }
    assert!(
        pages[0].subject.starts_with("PAGE [SUP-000001]"),
        "{:?}",
        pages[0]
    );
    assert!(
        pages[4].subject.starts_with("PAGE #5 [SUP-000001]"),
        "{:?}",
        pages[4]
    );
    // Resolved before Monday: no review escalation either.
    assert!(sim.notices_of("review_missed").is_empty());
}

#[test]
fn pages_keep_real_30_minute_intervals_through_the_fall_back_hour() {
    let mut sim = Sim::new("2026-11-01T00:00:00-04:00");
    // 00:50 EDT; clocks fall back from 02:00 EDT to 01:00 EST.
    sim.receive_fixture("01-site-down.eml", "2026-11-01T00:50:00-04:00");
    sim.run_until("2026-11-01T02:00:00-05:00", Duration::minutes(1));
    assert_eq!(
        times(&sim.notices_of("page")),
        vec![
            at("2026-11-01T04:50:00Z"),
            at("2026-11-01T05:20:00Z"),
            at("2026-11-01T05:50:00Z"),
            at("2026-11-01T06:20:00Z"),
            at("2026-11-01T06:50:00Z"),
        ]
    );
}

#[test]
fn level_4_warns_at_80_percent_and_escalates_at_breach_only_inside_hours() {
    let mut sim = Sim::new("2026-11-20T14:00:00-05:00");
    // Friday 15:00, 12 h of support time: 4.5 h Friday + 7.5 h Monday.
    let a = sim.receive_fixture("08-no-message-id.eml", "2026-11-20T15:00:00-05:00");
    sim.run_until("2026-11-25T14:59:00-05:00", Duration::minutes(1));
    // The day before Thanksgiving: Wednesday 4.5 h, Thursday off, Friday 7.5 h.
    let b = sim.receive_fixture("08-no-message-id.eml", "2026-11-25T15:00:00-05:00");
    // A third one gets its first response in time: no warning, no breach.
    let c = sim.receive_fixture("08-no-message-id.eml", "2026-11-25T15:01:00-05:00");
    for id in [&a, &b, &c] {
        let k = sim.p.store.case(id).expect("read").expect("case");
        assert_eq!(k.level, Some(4), "{id}");
    }
    sim.act(&c, CaseAction::Review, "2026-11-25T15:10:00-05:00");
    sim.run_until("2026-11-25T16:00:00-05:00", Duration::minutes(1));
    sim.act(
        &c,
        CaseAction::Respond {
            note: Some("answered by phone".into()),
        },
        "2026-11-25T16:00:00-05:00",
    );
    sim.run_until("2026-11-27T19:30:00-05:00", Duration::minutes(1));

    let warn = sim.notices_of("warning");
    let breach = sim.notices_of("breach");
    let case_of = |s: &Sent| {
        s.subject
            .split_once('[')
            .and_then(|(_, r)| r.split_once(']'))
            .map(|(id, _)| id.to_string())
            .unwrap_or_default()
    };
    // 80 % of 12 h = 9 h 36 min of support time.
    assert_eq!(
        warn.iter().map(|s| (case_of(s), s.at)).collect::<Vec<_>>(),
        vec![
            (a.clone(), at("2026-11-23T12:36:00-05:00")),
            (b.clone(), at("2026-11-27T12:36:00-05:00")),
        ]
    );
    assert_eq!(
        breach
            .iter()
            .map(|s| (case_of(s), s.at))
            .collect::<Vec<_>>(),
        vec![
            (a.clone(), at("2026-11-23T15:00:00-05:00")),
            (b.clone(), at("2026-11-27T15:00:00-05:00")),
        ]
    );
    // Every reminder and escalation of levels 2-5 is inside support hours.
    let cal = sim.p.notifier.calendar();
    for s in sim.notices() {
        if s.kind != "new_case" && s.kind != "agency" {
            assert!(
                cal.in_hours(s.at) || cal.in_hours(s.at - Duration::seconds(1)),
                "{s:?} outside support hours"
            );
        }
    }
    // The responded case sent nothing after its new-case notices.
    assert!(sim
        .notices()
        .iter()
        .all(|s| !s.subject.contains(&c) || s.kind == "new_case" || s.kind == "agency"));
}

#[test]
fn an_escalation_due_during_downtime_waits_for_the_next_opening() {
    let mut sim = Sim::new("2026-11-20T17:00:00-05:00");
    // Friday 18:00, level 3: warning at 18:48, breach at 19:00.
    let id = sim.receive_fixture("03-report-error.eml", "2026-11-20T18:00:00-05:00");
    sim.run_until("2026-11-20T18:10:00-05:00", Duration::minutes(1));
    // Down from 18:10 Friday until Saturday 10:00.
    sim.clock.set(at("2026-11-21T10:00:00-05:00"));
    let ran = ticketd::schedule::run_due(&sim.p, at("2026-11-21T10:00:00-05:00")).expect("jobs");
    assert_eq!(
        ran.iter().filter(|r| r.job == "escalate").count(),
        1,
        "the missed escalate ticks run once"
    );
    assert!(sim.notices_of("warning").is_empty() && sim.notices_of("breach").is_empty());
    sim.run_until("2026-11-23T07:45:00-05:00", Duration::minutes(1));
    let monday = at("2026-11-23T07:30:00-05:00");
    assert_eq!(times(&sim.notices_of("warning")), vec![monday]);
    assert_eq!(times(&sim.notices_of("breach")), vec![monday]);
    assert!(sim.notices().iter().all(|s| s.subject.contains(&id)));
}

#[test]
fn a_missed_digest_runs_once_after_downtime() {
    let mut sim = Sim::new("2026-11-20T07:00:00-05:00");
    sim.receive_fixture("03-report-error.eml", "2026-11-20T07:10:00-05:00");
    sim.receive_fixture("07-feature-request-html.eml", "2026-11-20T07:20:00-05:00");
    // Friday's digest at 08:00.
    sim.run_until("2026-11-20T08:30:00-05:00", Duration::minutes(1));
    assert_eq!(
        times(&sim.notices_of("digest")),
        vec![at("2026-11-20T08:00:00-05:00")]
    );
    // Down from Friday 08:30 to Tuesday 10:00: Monday's and Tuesday's
    // 08:00 digests were missed; one runs at restart.
    sim.run_until("2026-11-24T10:00:00-05:00", Duration::hours(100));
    sim.run_until("2026-11-25T08:30:00-05:00", Duration::minutes(1));
    assert_eq!(
        times(&sim.notices_of("digest")),
        vec![
            at("2026-11-20T08:00:00-05:00"),
            at("2026-11-24T10:00:00-05:00"),
            at("2026-11-25T08:00:00-05:00"),
        ]
    );
    let digest = sim.last_digest();
    assert_eq!(digest.recipients, vec!["lead@casehost.example"]);
    let body = decode_body(&digest.mail);
    assert!(body.contains("support level 3: 1 new"), "{body}");
    assert!(body.contains("support level 5: 1 new"), "{body}");
    assert!(body.contains("Breached (1):\n  SUP-000001"), "{body}");
    // Thanksgiving has no digest: the next one is Friday.
    sim.run_until("2026-11-27T08:30:00-05:00", Duration::minutes(5));
    assert_eq!(
        sim.notices_of("digest").last().map(|s| s.at),
        Some(at("2026-11-27T08:00:00-05:00"))
    );
    assert_eq!(sim.notices_of("digest").len(), 4);
}

#[test]
fn level_2_goes_to_whoever_is_on_call_inside_hours() {
    // ann from 2026-11-16 07:30, bob from 2026-11-23 07:30.
    let mut sim = Sim::new("2026-11-20T09:00:00-05:00");
    sim.receive_fixture("02-case-notes-broken.eml", "2026-11-20T10:00:00-05:00");
    // Sunday night: held until Monday's opening, when bob has taken over.
    sim.receive_fixture("02-case-notes-broken.eml", "2026-11-22T23:00:00-05:00");
    sim.run_until("2026-11-23T07:45:00-05:00", Duration::minutes(1));
    let oc = sim.notices_of("on_call");
    assert_eq!(
        oc.iter().map(|s| (s.at, s.to.clone())).collect::<Vec<_>>(),
        vec![
            (
                at("2026-11-20T10:00:00-05:00"),
                vec!["ann@casehost.example".to_string()]
            ),
            (
                at("2026-11-23T07:30:00-05:00"),
                vec!["bob@casehost.example".to_string()]
            ),
        ]
    );
}

#[test]
fn privacy_reminders_before_the_due_date_and_daily_once_overdue() {
    let mut sim = Sim::new("2026-11-24T09:00:00-05:00");
    let id = sim.receive_fixture("04-dsgvo-auskunft.eml", "2026-11-24T09:30:00-05:00");
    sim.run_until("2026-11-24T10:00:00-05:00", Duration::minutes(1));
    let case = sim.p.store.case(&id).expect("read").expect("case");
    let p = case.clocks.privacy.expect("privacy dates");
    assert_eq!(p.respond_by.to_string(), "2026-12-24");
    assert_eq!(
        p.extended_respond_by.map(|d| d.to_string()).as_deref(),
        Some("2027-02-24")
    );
    // The acknowledgement is in German with the due date in German words.
    let ack = sim.ack_text(&id);
    assert!(ack.contains("Donnerstag, 24. Dezember 2026"), "{ack}");
    assert!(
        ack.contains("Auskunft über Ihre personenbezogenen Daten"),
        "{ack}"
    );

    sim.run_until("2026-12-27T07:00:00-05:00", Duration::hours(1));
    sim.act(
        &id,
        CaseAction::Respond { note: None },
        "2026-12-27T07:00:00-05:00",
    );
    sim.run_until("2026-12-30T09:00:00-05:00", Duration::hours(1));
    let rem = sim.notices_of("privacy_reminder");
    assert_eq!(
        rem.iter().map(|s| (s.at, s.to.clone())).collect::<Vec<_>>(),
        vec![
            (
                at("2026-12-17T08:00:00-05:00"),
                vec!["dpo@casehost.example".to_string()]
            ),
            (
                at("2026-12-22T08:00:00-05:00"),
                vec!["dpo@casehost.example".to_string()]
            ),
        ]
    );
    let overdue = sim.notices_of("privacy_overdue");
    assert_eq!(
        times(&overdue),
        vec![
            at("2026-12-25T08:00:00-05:00"),
            at("2026-12-26T08:00:00-05:00")
        ]
    );
    assert_eq!(
        overdue[0].to,
        vec!["dpo@casehost.example", "lead@casehost.example"]
    );
    assert_eq!(
        times(&sim.notices_of("privacy_new")),
        vec![at("2026-11-24T09:30:00-05:00")]
    );
}

#[test]
fn agency_administrators_and_the_requesters_language() {
    let mut sim = Sim::new("2026-11-24T09:00:00-05:00");
    let de = "From: Petra Vogel <petra.vogel@legalaid-north.example.org>\r\n\
              To: support@casehost.example\r\n\
              Subject: Fehlermeldung beim Export des Monatsberichts\r\n\
              Message-ID: <x@y>\r\n\r\n\
              Guten Tag,\r\n\r\nwenn ich den Monatsbericht exportieren will, erscheint die \
              Fehlermeldung \"Error 500\". Das passiert bei jedem Versuch seit heute Morgen. \
              Andere Teile der Anwendung funktionieren normal.\r\n\r\nViele Grüße\r\nPetra Vogel\r\n";
    let id = sim.receive(de, "2026-11-24T10:00:00-05:00");
    let ack = sim.ack_text(&id);
    assert!(
        ack.contains("Dienstag, 24. November 11:00 Uhr (ET)"),
        "respond_by in German: {ack}"
    );
    assert!(
        ack.contains("admin@legalaid-north.example.org"),
        "a user who is not an administrator is told who is: {ack}"
    );
    assert_eq!(sim.notices_of("agency").len(), 1);

    // The administrator writing in is not pointed at themselves, and is not
    // notified of their own case.
    let admin = de.replace("Petra Vogel <petra.vogel@", "Site Admin <admin@");
    let id2 = sim.receive(&admin, "2026-11-24T10:05:00-05:00");
    assert!(!sim.ack_text(&id2).contains("admin@legalaid-north"));
    assert_eq!(sim.notices_of("agency").len(), 1);

    // A forged sender (authentication failed) is not matched to the agency.
    let forged = format!(
        "Authentication-Results: mx.casehost.example; dmarc=fail header.from=legalaid-north.example.org\r\n{}",
        de.replace("petra.vogel@", "someone@")
    );
    let id3 = sim.receive(&forged, "2026-11-24T10:10:00-05:00");
    let c3 = sim.p.store.case(&id3).expect("read").expect("case");
    assert_eq!(c3.agency, None);
    assert_eq!(sim.notices_of("agency").len(), 1);
}

#[test]
fn relevel_replans_the_clocks_and_pages_at_once() {
    let mut sim = Sim::new("2026-11-24T09:00:00-05:00");
    let id = sim.receive_fixture("07-feature-request-html.eml", "2026-11-24T10:00:00-05:00");
    let before = sim.p.store.case(&id).expect("read").expect("case");
    assert_eq!(before.level, Some(5));
    // 60 h of support time, Thanksgiving skipped.
    assert_eq!(
        before.clocks.respond_by,
        Some(at("2026-12-02T10:00:00-05:00"))
    );
    sim.act(
        &id,
        CaseAction::Relevel {
            level: 1,
            reason: "the export outage takes the site down".into(),
        },
        "2026-11-24T10:20:00-05:00",
    );
    let after = sim.p.store.case(&id).expect("read").expect("case");
    assert_eq!(after.level, Some(1));
    assert_eq!(after.clocks.plan, before.clocks.plan + 1);
    // Re-planned from receipt: 30 minutes after 10:00.
    assert_eq!(
        after.clocks.respond_by,
        Some(at("2026-11-24T10:30:00-05:00"))
    );
    sim.run_until("2026-11-24T11:00:00-05:00", Duration::minutes(1));
    assert_eq!(
        times(&sim.notices_of("page")),
        vec![
            at("2026-11-24T10:20:00-05:00"),
            at("2026-11-24T10:50:00-05:00")
        ]
    );
    // The old level-5 timers were dropped: no warning for level 5 later.
    sim.run_until("2026-12-02T10:00:00-05:00", Duration::hours(1));
    assert!(sim.notices_of("warning").is_empty());
    // A reason is required.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let err = rt
        .block_on(control::act(
            &sim.p,
            &id,
            &CaseAction::Relevel {
                level: 2,
                reason: " ".into(),
            },
            "cli:test",
        ))
        .expect_err("no reason");
    assert!(err.to_string().contains("reason"), "{err}");
}

#[test]
fn the_digest_counts_spam_set_aside_so_staff_can_rescue_it() {
    let mut sim = Sim::new("2026-11-20T07:00:00-05:00");
    sim.receive_fixture("03-report-error.eml", "2026-11-20T07:10:00-05:00");
    let spam = "From: Deals <deals@bulk.example.net>\r\nTo: support@casehost.example\r\nSubject: Cheap watches\r\nMessage-ID: <spam-1@bulk.example.net>\r\nX-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=12.1\r\n\r\nBuy now.\r\n";
    sim.clock.set(at("2026-11-20T07:20:00-05:00"));
    let o = sim
        .p
        .ingest(
            &Envelope {
                source: "support".into(),
                key: "spam-1".into(),
                received_at: at("2026-11-20T07:20:00-05:00"),
                raw: spam.as_bytes().to_vec(),
                original_size: None,
            },
            Role::Support,
            IngestOptions::default(),
        )
        .expect("ingest");
    assert!(
        matches!(o, ticketd::store::IngestOutcome::Ignored { .. }),
        "{o:?}"
    );
    sim.run_until("2026-11-20T08:30:00-05:00", Duration::minutes(1));
    let digest = sim.last_digest();
    let body = decode_body(&digest.mail);
    assert!(
        body.contains("Set aside by triage since the last digest: 1 spam."),
        "{body}"
    );
    assert!(body.contains("Cheap watches"), "{body}");
    assert!(body.contains("ignored promote"), "{body}");
}
