//! Who gets what, and when (pure): the clocks a new case gets, the notices
//! it causes at once (staff, agency site administrators, pages, on call),
//! the timers it leaves in the due index, what a due timer does (auto-close
//! included), the notices the workflow's actions cause (see
//! [`crate::workflow`]) and the daily digest.
//!
//! Everything here is a function of the config, the case and `now`; the
//! store applies the result in one transaction and the scheduler
//! ([`crate::schedule`]) decides when to ask. Nothing here sends mail: every
//! notification becomes an outbox entry and an event on its case.
//!
//! Hours: level-1 pages go out at any hour; every other reminder or
//! escalation of a support case waits for support hours (a timer that comes
//! due outside them is moved to the next opening). Privacy clocks run in
//! calendar days, so their reminders go out on the day they are due.

pub mod text;

use crate::clock::deadline::{privacy_dates, support_fraction_by, support_respond_by};
use crate::clock::{BusinessCalendar, Regime};
use crate::config::{agency_for, Config, EmailAddress};
use crate::policy::{Jurisdiction, Level};
use crate::render::{self, AckExtras, Templates};
use crate::store::{
    Case, CaseChange, CaseClocks, CaseKind, CaseStatus, EventKind, NewCasePlan, NewMail, Notice,
    Purpose, Timer, TimerKind,
};
use crate::triage::{Auth, Decision};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::sync::Arc;

/// What the daily digest is built from (see [`Notifier::digest`]).
#[derive(Clone, Copy)]
pub struct DigestInput<'a> {
    pub cases: &'a [Case],
    pub problems: &'a [crate::store::OutboxEntry],
    /// Mail set aside since the last digest and not promoted.
    pub set_aside: &'a [crate::store::IgnoredRecord],
    pub now: DateTime<Utc>,
    pub since: Option<DateTime<Utc>>,
    pub token: &'a str,
}

/// The pure notification logic, built once from the config.
#[derive(Clone)]
pub struct Notifier {
    config: Arc<Config>,
    cal: BusinessCalendar,
    templates: Arc<Templates>,
    keys: Arc<crate::workflow::ThreadKeys>,
}

fn addrs(v: &[EmailAddress]) -> Vec<String> {
    let mut out: Vec<String> = v.iter().map(|a| a.as_str().to_string()).collect();
    out.sort();
    out.dedup();
    out
}

fn union(a: &[EmailAddress], b: &[EmailAddress]) -> Vec<String> {
    let mut v = addrs(a);
    v.extend(addrs(b));
    v.sort();
    v.dedup();
    v
}

impl Notifier {
    pub fn new(config: Arc<Config>, templates: Arc<Templates>) -> Notifier {
        let cal = BusinessCalendar::new(config.clocks.calendar.clone());
        Notifier {
            config,
            cal,
            templates,
            keys: Arc::new(crate::workflow::ThreadKeys::ephemeral()),
        }
    }

    /// The same notifier signing our Message-IDs with `keys`.
    pub fn with_keys(mut self, keys: Arc<crate::workflow::ThreadKeys>) -> Notifier {
        self.keys = keys;
        self
    }

    pub fn keys(&self) -> &crate::workflow::ThreadKeys {
        &self.keys
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Our signed Message-ID (no brackets) for mail of `kind` about `case`.
    pub fn message_id(&self, kind: &str, case: &str, nonce: &str) -> String {
        self.keys.message_id(kind, case, nonce, &self.config.domain)
    }

    pub fn calendar(&self) -> &BusinessCalendar {
        &self.cal
    }

    /// The sender for mail about a case of `kind`.
    pub fn sender(&self, kind: CaseKind) -> &lettre::message::Mailbox {
        match kind {
            CaseKind::Support => self.config.outbound.from_support.mailbox(),
            CaseKind::Privacy => self.config.outbound.from_privacy.mailbox(),
        }
    }

    fn regime(&self, case: &Case) -> Regime {
        Regime::for_jurisdiction(
            case.jurisdiction.unwrap_or(Jurisdiction::Unknown),
            self.config.clocks.unknown_jurisdiction,
        )
    }

    /// The clocks of `case` computed from its receipt time and level or
    /// rights, keeping what staff already did (and the plan generation).
    pub fn clocks_for(&self, case: &Case) -> CaseClocks {
        let t = &self.config.clocks.targets;
        // The response clock runs from the receipt, or from the reply
        // that reopened the case.
        let received = case.clocks.started_at.unwrap_or(case.received_at);
        let mut c = CaseClocks {
            plan: case.clocks.plan,
            reviewed_at: case.clocks.reviewed_at,
            responded_at: case.clocks.responded_at,
            resolved_at: case.clocks.resolved_at,
            started_at: case.clocks.started_at,
            closed_at: case.clocks.closed_at,
            review_by: self.cal.add_support_time(case.received_at, t.review()),
            ..CaseClocks::default()
        };
        match case.kind {
            CaseKind::Support => {
                let level = case.level.unwrap_or(4);
                c.respond_by = support_respond_by(&self.cal, t, level, received);
                if level >= 3 {
                    c.warn_at = support_fraction_by(
                        &self.cal,
                        t.of(level),
                        self.config.notify.warn_at_percent,
                        received,
                    );
                }
            }
            CaseKind::Privacy => {
                let regime = self.regime(case);
                c.regime = Some(regime);
                let state = case.privacy.as_ref();
                // An inquiry exercises no right: no statutory clock.
                if !state.is_some_and(|p| p.inquiry) {
                    // Days the clock stood still while identity was awaited
                    // (UK GDPR, DUAA 2025 Art. 12A) move every date.
                    let paused = state.map(|p| p.paused_days).unwrap_or(0);
                    let start = case.received_at + Duration::days(paused);
                    c.privacy =
                        privacy_dates(&self.cal, regime, &case.rights, start).map(|mut d| {
                            if state.is_some_and(|p| p.extended) {
                                if let Some(e) = d.extended_respond_by {
                                    d.respond_by = e;
                                    d.extension_notice_by = None;
                                }
                            }
                            d
                        });
                }
            }
        }
        c
    }

    /// The agency of the requester: matched by mail domain, and only when
    /// the sender's authentication did not fail (a forged From must not
    /// reach an agency's administrators or be told who they are).
    pub fn agency_of(&self, case: &Case, auth: Auth) -> Option<&crate::config::Agency> {
        if auth == Auth::Fail {
            return None;
        }
        let from = case.requester.as_ref()?;
        agency_for(&self.config.agencies, &from.address)
    }

    /// What the acknowledgement says besides the case: due dates in the
    /// requester's words, and their site administrators when the requester
    /// is not one.
    pub fn ack_extras(&self, case: &Case, language: Option<&str>, now: DateTime<Utc>) -> AckExtras {
        let lang = text::pick_language(language);
        let tz = self.cal.tz();
        let mut x = AckExtras {
            language: lang,
            hours_text: Some(text::hours_text(lang, self.cal.settings())),
            ..AckExtras::default()
        };
        if let Some(level) = case.level {
            let secs = self.config.clocks.targets.seconds[usize::from(level.clamp(1, 5)) - 1];
            x.target = Some(text::duration_phrase(lang, secs));
        }
        x.respond_by_text = case
            .clocks
            .respond_by
            .map(|t| text::human_instant(lang, tz, t));
        // After downtime, or for mail that arrived late: never promise a
        // time already past.
        x.overdue = case.clocks.respond_by.is_some_and(|t| t <= now);
        x.inquiry = case.privacy.as_ref().is_some_and(|p| p.inquiry);
        x.review_text = case
            .clocks
            .review_by
            .map(|t| text::human_instant(lang, tz, t));
        if let Some(p) = &case.clocks.privacy {
            x.due_text = Some(text::human_date(lang, p.respond_by));
            x.extended_text = p.extended_respond_by.map(|d| text::human_date(lang, d));
            x.extension_by =
                Some(text::extension_by(lang, case.clocks.regime == Some(Regime::Ccpa)).into());
        }
        if let Some(name) = &case.agency {
            if let Some(a) = self.config.agencies.iter().find(|a| &a.name == name) {
                let sender = case.requester.as_ref().map(|r| r.address.as_str());
                if !sender.is_some_and(|s| a.is_site_admin(s)) && case.kind == CaseKind::Support {
                    x.agency = Some(a.name.clone());
                    x.site_admins = addrs(&a.site_admins);
                }
            }
        }
        x
    }

    /// Everything a new case gets. `quiet` (historic imports): clocks only,
    /// no notices and no timers. `ack` builds the acknowledgement for the
    /// case as planned (with its clocks).
    pub fn plan_new_case(
        &self,
        case: &Case,
        decision: &Decision,
        now: DateTime<Utc>,
        token: &str,
        quiet: bool,
        ack: &dyn Fn(&Case) -> Result<NewMail, String>,
    ) -> NewCasePlan {
        let mut c = case.clone();
        c.clocks = self.clocks_for(case);
        c.agency = self.agency_of(case, decision.auth).map(|a| a.name.clone());
        let agency = c.agency.clone();
        if let Some(pv) = c.privacy.as_mut() {
            // The acknowledgement carries a one-time code (its hash was
            // set by the caller, who holds the code): identity is awaited.
            if pv.code_hash.is_some() && !pv.inquiry {
                pv.status = crate::store::PrivacyStatus::IdentityPending;
                pv.identity_since = Some(case.received_at);
            }
            // The agency a request points to is offered for forwarding.
            pv.suggested_agency = agency.clone().or_else(|| {
                crate::workflow::privacy::agency_named(&self.config.agencies, &case.subject)
                    .map(|a| a.name.clone())
            });
        }
        // A quiet (historic) import sends nothing: no acknowledgement is
        // rendered only to be skipped.
        let ack_mail = (!quiet).then(|| ack(&c));
        let mut change = CaseChange::default();
        if !quiet {
            let mut tok = Tokens::new(token);
            change.notices = self.new_case_notices(&c, decision, now, &mut tok);
            change.timers = self.timers_for(&c, now);
        }
        NewCasePlan {
            clocks: c.clocks,
            agency: c.agency,
            privacy: c.privacy,
            status: None,
            ack: ack_mail,
            change,
        }
    }

    fn new_case_notices(
        &self,
        c: &Case,
        decision: &Decision,
        now: DateTime<Utc>,
        tok: &mut Tokens,
    ) -> Vec<Notice> {
        let people = &self.config.people;
        let mut out = Vec::new();
        match c.kind {
            CaseKind::Support => {
                let level = c.level.unwrap_or(4);
                // A doubtful level might be a more urgent one: staff hear of
                // it at once even when the level is digest-only.
                if c.doubt.is_some()
                    || !self.config.notify.staff_digest_only_levels.contains(&level)
                {
                    out.extend(self.notice(
                        "new_case",
                        c,
                        addrs(&people.staff),
                        "notify_new_case.txt",
                        minijinja::context! { reasons => decision.reasons },
                        now,
                        tok,
                    ));
                }
                if level == 1 {
                    out.extend(self.page(c, 1, now, tok));
                }
                if level == 2 && self.cal.in_hours(now) {
                    out.extend(self.on_call(c, now, tok));
                }
                if let Some(a) = c
                    .agency
                    .as_ref()
                    .and_then(|n| self.config.agencies.iter().find(|a| &a.name == n))
                {
                    if a.notify_on_new_ticket {
                        let sender = c.requester.as_ref().map(|r| r.address.to_ascii_lowercase());
                        let to: Vec<String> = addrs(&a.site_admins)
                            .into_iter()
                            .filter(|x| Some(x) != sender.as_ref())
                            .collect();
                        if !to.is_empty() {
                            let mut n = self.notice(
                                "agency",
                                c,
                                to,
                                "notify_agency.txt",
                                minijinja::context! {},
                                now,
                                tok,
                            );
                            if let Some(Ok(m)) = n.as_mut().map(|n| &mut n.mail) {
                                m.purpose = Purpose::AgencyNotice;
                            }
                            out.extend(n);
                        }
                    }
                }
            }
            CaseKind::Privacy => {
                out.extend(self.notice(
                    "privacy_new",
                    c,
                    addrs(&people.privacy_officer),
                    "notify_privacy_new.txt",
                    minijinja::context! {},
                    now,
                    tok,
                ));
            }
        }
        out
    }

    /// The timers a case's clocks need from `now` on.
    pub fn timers_for(&self, c: &Case, now: DateTime<Utc>) -> Vec<Timer> {
        let mut v = Vec::new();
        let plan = c.clocks.plan;
        let timer = |kind: TimerKind, due: DateTime<Utc>| Timer {
            case: c.id.clone(),
            due,
            plan,
            kind,
        };
        if c.clocks.reviewed_at.is_none() && c.clocks.responded_at.is_none() {
            if let Some(t) = c.clocks.review_by {
                v.push(timer(TimerKind::ReviewMissed, t));
            }
        }
        match c.kind {
            CaseKind::Support => {
                let level = c.level.unwrap_or(4);
                if level == 1 {
                    v.push(timer(TimerKind::Page { n: 2 }, now + self.page_every()));
                }
                if level == 2 && !self.cal.in_hours(now) && c.clocks.responded_at.is_none() {
                    if let Some(open) = self.cal.next_opening(now) {
                        v.push(timer(TimerKind::OnCall, open));
                    }
                }
                if level >= 2 && c.clocks.responded_at.is_none() {
                    if let Some(t) = c.clocks.respond_by {
                        v.push(timer(TimerKind::Breach, t));
                    }
                }
                if level >= 3 && c.clocks.responded_at.is_none() {
                    if let Some(t) = c.clocks.warn_at {
                        v.push(timer(TimerKind::Warn, t));
                    }
                }
            }
            CaseKind::Privacy => {
                if let Some(p) = &c.clocks.privacy {
                    let mut dates = vec![p.respond_by];
                    if let Some(n) = p.extension_notice_by {
                        if n != p.respond_by {
                            dates.push(n);
                        }
                    }
                    for date in dates {
                        for days in &self.config.notify.privacy_reminder_days {
                            let day = date - Duration::days(i64::from(*days));
                            let due = self.cal.start_of_day(day);
                            if due > now {
                                v.push(timer(
                                    TimerKind::PrivacyReminder {
                                        date,
                                        days_before: *days,
                                    },
                                    due,
                                ));
                            }
                        }
                    }
                    if let Some(after) = p.respond_by.succ_opt() {
                        v.push(timer(
                            TimerKind::PrivacyOverdue { date: p.respond_by },
                            self.cal.start_of_day(after),
                        ));
                    }
                }
            }
        }
        v
    }

    fn page_every(&self) -> Duration {
        Duration::from_std(self.config.notify.page_every.0).unwrap_or(Duration::minutes(30))
    }

    /// What a due timer does to `case` at `now` (the store removes the
    /// timer first; a follow-up timer is in the returned change).
    pub fn fire(
        &self,
        t: &Timer,
        case: Option<&Case>,
        now: DateTime<Utc>,
        token: &str,
    ) -> CaseChange {
        let mut out = CaseChange::default();
        let Some(c) = case else { return out };
        if t.kind == TimerKind::AutoClose {
            if c.status == CaseStatus::Resolved && t.plan == c.clocks.plan {
                out.set_status = Some(CaseStatus::Closed);
                out.events.push(EventKind::Closed {
                    why: format!(
                        "resolved {} ago",
                        humantime::format_duration(self.config.workflow.close_after.0)
                    ),
                });
                out.events.push(EventKind::StatusChanged {
                    from: CaseStatus::Resolved,
                    to: CaseStatus::Closed,
                });
            }
            return out;
        }
        if t.kind == TimerKind::ForwardUnacknowledged {
            let waiting = c.privacy.as_ref().is_some_and(|p| {
                p.status == crate::store::PrivacyStatus::Forwarded
                    && p.agency_acknowledged_at.is_none()
            });
            if waiting {
                let mut tok = Tokens::new(token);
                out.notices.extend(self.notice(
                    "forward_unacknowledged",
                    c,
                    addrs(&self.config.people.privacy_officer),
                    "notify_forward_unacknowledged.txt",
                    minijinja::context! {
                        forwarded_to => c.privacy.as_ref().and_then(|p| p.forwarded_to.clone()),
                        contact => c.privacy.as_ref().and_then(|p| p.forward_contact.clone()),
                    },
                    now,
                    &mut tok,
                ));
            }
            return out;
        }
        if c.is_done() || t.plan != c.clocks.plan {
            return out;
        }
        let mut tok = Tokens::new(token);
        let responded = c.clocks.responded_at.is_some();
        // While identity is awaited under a regime that stops the clock
        // (UK GDPR), its reminders wait: verification re-plans them.
        let paused = c
            .privacy
            .as_ref()
            .is_some_and(|p| p.status == crate::store::PrivacyStatus::IdentityPending)
            && c.clocks
                .regime
                .is_some_and(|r| self.config.privacy.identity_pauses.contains(&r));
        let people = &self.config.people;
        // Inside support hours, or exactly at a closing time (a target that
        // ends at closing is escalated then, not the next morning).
        let in_hours = self.cal.in_hours(now) || self.cal.in_hours(now - Duration::seconds(1));
        // Support reminders stop with the clock they belong to, and wait
        // for support hours (the timer moves to the next opening).
        let support_timer = match &t.kind {
            TimerKind::ReviewMissed => Some(c.clocks.reviewed_at.is_some() || responded),
            TimerKind::OnCall | TimerKind::Warn | TimerKind::Breach => Some(responded),
            _ => None,
        };
        match support_timer {
            Some(true) => return out,
            Some(false) if !in_hours => {
                if let Some(open) = self.cal.next_opening(now) {
                    out.timers.push(Timer {
                        due: open,
                        ..t.clone()
                    });
                }
                return out;
            }
            _ => {}
        }
        match &t.kind {
            TimerKind::ReviewMissed => {
                out.notices.extend(self.notice(
                    "review_missed",
                    c,
                    addrs(&people.support_lead),
                    "notify_review_missed.txt",
                    minijinja::context! {},
                    now,
                    &mut tok,
                ));
            }
            TimerKind::Page { n } => {
                out.notices.extend(self.page(c, *n, now, &mut tok));
                let every = self.page_every();
                let mut next = t.due + every;
                while next <= now {
                    next += every;
                }
                out.timers.push(Timer {
                    due: next,
                    kind: TimerKind::Page { n: n + 1 },
                    ..t.clone()
                });
            }
            TimerKind::OnCall => out.notices.extend(self.on_call(c, now, &mut tok)),
            TimerKind::Warn => {
                out.notices.extend(self.notice(
                    "warning",
                    c,
                    addrs(&people.staff),
                    "notify_warning.txt",
                    minijinja::context! { percent => self.config.notify.warn_at_percent },
                    now,
                    &mut tok,
                ));
            }
            TimerKind::Breach => {
                out.notices.extend(self.notice(
                    "breach",
                    c,
                    addrs(&people.support_lead),
                    "notify_breach.txt",
                    minijinja::context! {},
                    now,
                    &mut tok,
                ));
            }
            TimerKind::PrivacyReminder { date, days_before } => {
                if !responded && !paused {
                    out.notices.extend(self.notice(
                        "privacy_reminder",
                        c,
                        addrs(&people.privacy_officer),
                        "notify_privacy_reminder.txt",
                        minijinja::context! {
                            date => date.to_string(),
                            days_before => days_before,
                            extension_possible => c.clocks.privacy.and_then(|p| p.extension_notice_by) == Some(*date),
                        },
                        now,
                        &mut tok,
                    ));
                }
            }
            TimerKind::AutoClose => {}
            TimerKind::ForwardUnacknowledged => {}
            TimerKind::PrivacyOverdue { date } => {
                if !responded && !paused {
                    let today = self.cal.local_date(now);
                    out.notices.extend(self.notice(
                        "privacy_overdue",
                        c,
                        union(&people.privacy_officer, &people.support_lead),
                        "notify_privacy_overdue.txt",
                        minijinja::context! {
                            date => date.to_string(),
                            days_overdue => (today - *date).num_days().max(1),
                        },
                        now,
                        &mut tok,
                    ));
                    let next_day = today.succ_opt().unwrap_or(today);
                    out.timers.push(Timer {
                        due: self.cal.start_of_day(next_day),
                        ..t.clone()
                    });
                }
            }
        }
        out
    }

    fn page(&self, c: &Case, n: u32, now: DateTime<Utc>, tok: &mut Tokens) -> Option<Notice> {
        let people = &self.config.people;
        let age = now - c.received_at;
        self.notice(
            "page",
            c,
            union(&people.developers, &people.staff),
            "notify_page.txt",
            minijinja::context! {
                n => n,
                age => format!("{}h {:02}m", age.num_hours(), age.num_minutes() % 60),
                page_every => humantime::format_duration(self.config.notify.page_every.0).to_string(),
            },
            now,
            tok,
        )
    }

    fn on_call(&self, c: &Case, now: DateTime<Utc>, tok: &mut Tokens) -> Option<Notice> {
        let to = self
            .config
            .people
            .on_call
            .as_ref()
            .and_then(|o| o.at(&self.cal, now))
            .map(|a| vec![a.as_str().to_string()])
            .unwrap_or_default();
        self.notice(
            "on_call",
            c,
            to,
            "notify_on_call.txt",
            minijinja::context! {},
            now,
            tok,
        )
    }

    /// One notification mail for case `c` from `template`, or why it could
    /// not be built. `None` when nobody is configured for it (the daemon
    /// warns about such gaps once, at start, rather than on every case).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn notice(
        &self,
        kind: &str,
        c: &Case,
        to: Vec<String>,
        template: &str,
        extra: minijinja::Value,
        now: DateTime<Utc>,
        tok: &mut Tokens,
    ) -> Option<Notice> {
        if to.is_empty() {
            return None;
        }
        let mail = {
            let ctx = minijinja::context! { ..extra, ..self.case_context(c) };
            self.templates
                .render_notice(template, ctx)
                .map_err(|e| e.to_string())
                .and_then(|(subject, body)| {
                    render::build_notice(
                        self.sender(c.kind),
                        &to,
                        &subject,
                        &body,
                        &self.message_id("note", &c.id, &tok.next(kind)),
                        now,
                    )
                })
        };
        Some(Notice {
            kind: kind.to_string(),
            mail,
        })
    }

    /// A text template about case `c` (mail bodies to requesters), in the
    /// case's language when a template for it exists.
    pub fn render_text(
        &self,
        template: &str,
        c: &Case,
        extra: minijinja::Value,
    ) -> Result<String, String> {
        let ctx = minijinja::context! { ..extra, ..self.case_context(c) };
        let lang = text::pick_language(c.language.as_deref());
        self.templates
            .render_localized(template, lang, ctx)
            .map_err(|e| e.to_string())
    }

    /// The people lists that are empty, so some notices go to nobody.
    pub fn unconfigured(&self) -> Vec<&'static str> {
        let p = &self.config.people;
        let mut v = Vec::new();
        for (name, list) in [
            ("people.staff", &p.staff),
            ("people.developers", &p.developers),
            ("people.support_lead", &p.support_lead),
            ("people.privacy_officer", &p.privacy_officer),
        ] {
            if list.is_empty() {
                v.push(name);
            }
        }
        if p.on_call.is_none() {
            v.push("people.on_call");
        }
        v
    }

    /// What every notification template may use about a case.
    pub(crate) fn case_context(&self, c: &Case) -> minijinja::Value {
        let tz = self.cal.tz();
        let when = |t: Option<DateTime<Utc>>| t.map(|t| text::human_instant("en", tz, t));
        let level = c.level;
        let day = |d: Option<NaiveDate>| d.map(|d| d.to_string());
        let p = c.clocks.privacy;
        minijinja::context! {
            case_id => c.id,
            kind => c.kind.as_str(),
            subject => if c.subject.trim().is_empty() { "(no subject)".to_string() } else { render::header_safe(&c.subject, render::SUBJECT_MAX) },
            level => level,
            level_meaning => level.map(crate::policy::level_meaning),
            target => level.map(|l| text::duration_phrase("en", self.config.clocks.targets.seconds[usize::from(l.clamp(1, 5)) - 1])),
            requester => c.requester.as_ref().map(|r| r.address.clone()).unwrap_or_else(|| "(unknown sender)".into()),
            agency => c.agency,
            doubt => c.doubt,
            received_text => text::human_instant("en", tz, c.received_at),
            review_by_text => when(c.clocks.review_by),
            respond_by_text => when(c.clocks.respond_by),
            regime => c.clocks.regime.map(|r| r.as_str()),
            rights => c.rights.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            acknowledge_by => day(p.and_then(|p| p.acknowledge_by)),
            respond_by => day(p.map(|p| p.respond_by)),
            extended_respond_by => day(p.and_then(|p| p.extended_respond_by)),
            extension_notice_by => day(p.and_then(|p| p.extension_notice_by)),
            privacy_status => c.privacy.as_ref().map(|p| p.status.as_str()),
            inquiry => c.privacy.as_ref().is_some_and(|p| p.inquiry),
            suggested_agency => c.privacy.as_ref().and_then(|p| p.suggested_agency.clone()),
            assignee => c.assignee,
        }
    }

    // ------------------------------------------------- workflow notices

    /// The notices a level change causes at once: raising to 1 pages,
    /// level 2 in hours escalates to on call.
    pub fn raised_notices(
        &self,
        n: &Case,
        old: Option<Level>,
        now: DateTime<Utc>,
        token: &str,
    ) -> Vec<Notice> {
        let mut tok = Tokens::new(token);
        let mut out = Vec::new();
        if n.level == Some(1) && old != Some(1) {
            out.extend(self.page(n, 1, now, &mut tok));
        }
        if n.level == Some(2) && self.cal.in_hours(now) && n.clocks.responded_at.is_none() {
            out.extend(self.on_call(n, now, &mut tok));
        }
        out
    }

    /// Who hears of a requester's mail on a case: the assignee when it is
    /// an address, else staff.
    /// Who hears of a case's follow-ups: its assignee (an address), else
    /// `staff` — and for a privacy request the privacy officer (support
    /// staff do not read privacy requests' mail).
    fn case_watchers(&self, c: &Case) -> Vec<String> {
        match c.assignee.as_deref().filter(|a| a.contains('@')) {
            Some(a) => vec![a.to_string()],
            None if c.kind == CaseKind::Privacy => addrs(&self.config.people.privacy_officer),
            None => addrs(&self.config.people.staff),
        }
    }

    /// Staff are told that the requester wrote again on an open case.
    pub fn follow_up_notice(
        &self,
        c: &Case,
        sender: &str,
        now: DateTime<Utc>,
        token: &str,
    ) -> Option<Notice> {
        let mut tok = Tokens::new(token);
        self.notice(
            "follow_up",
            c,
            self.case_watchers(c),
            "notify_follow_up.txt",
            minijinja::context! { sender => sender, status => c.status.as_str() },
            now,
            &mut tok,
        )
    }

    /// Staff are told that the requester reopened a resolved case.
    pub fn reopened_notice(&self, c: &Case, now: DateTime<Utc>, token: &str) -> Option<Notice> {
        let mut tok = Tokens::new(token);
        self.notice(
            "reopened",
            c,
            self.case_watchers(c),
            "notify_reopened.txt",
            minijinja::context! {},
            now,
            &mut tok,
        )
    }

    /// The short error mail to a staff member whose mail commands were refused.
    pub fn command_error(
        &self,
        c: &Case,
        to: &str,
        error: &str,
        now: DateTime<Utc>,
        token: &str,
    ) -> Option<Notice> {
        let mut tok = Tokens::new(token);
        self.notice(
            "command_error",
            c,
            vec![to.to_ascii_lowercase()],
            "notify_command_error.txt",
            minijinja::context! { error => error },
            now,
            &mut tok,
        )
    }

    // -------------------------------------------------------------- digest

    /// The daily digest for the support lead (and for staff when some
    /// levels reach them only here): open cases by level and status, what
    /// is due today, what is breached, and new cases since `since` of the
    /// digest-only levels, and the mails that will not be delivered
    /// (`problems`: suppressed by the rate limit or failed for good since
    /// the last digest), and the mail triage set aside since then, spam
    /// first, so staff can rescue a false positive (`ticketd ignored
    /// promote`). `None` when nobody is configured to receive it.
    pub fn digest(&self, input: &DigestInput<'_>) -> Option<Result<NewMail, String>> {
        let DigestInput {
            cases,
            problems,
            set_aside,
            now,
            since,
            token,
        } = *input;
        let people = &self.config.people;
        let digest_levels = &self.config.notify.staff_digest_only_levels;
        let mut to = addrs(&people.support_lead);
        if !digest_levels.is_empty() {
            to.extend(addrs(&people.staff));
            to.sort();
            to.dedup();
        }
        if to.is_empty() {
            return None;
        }
        let tz = self.cal.tz();
        let today = self.cal.local_date(now);
        let open: Vec<&Case> = cases.iter().filter(|c| !c.is_done()).collect();
        // Counts by level (support) or regime (privacy), then status.
        let mut rows: std::collections::BTreeMap<
            String,
            std::collections::BTreeMap<&'static str, usize>,
        > = Default::default();
        for c in &open {
            let label = match c.kind {
                CaseKind::Support => format!("support level {}", c.level.unwrap_or(4)),
                CaseKind::Privacy => format!(
                    "privacy {}",
                    c.clocks.regime.map(|r| r.as_str()).unwrap_or("request")
                ),
            };
            *rows
                .entry(label)
                .or_default()
                .entry(c.status.as_str())
                .or_default() += 1;
        }
        let by_level: Vec<_> = rows
            .iter()
            .map(|(label, m)| {
                let counts = m
                    .iter()
                    .map(|(s, n)| format!("{n} {s}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                minijinja::context! { label => label, counts => counts }
            })
            .collect();
        let mut due_today = Vec::new();
        let mut breached = Vec::new();
        for c in &open {
            if c.clocks.responded_at.is_some() {
                continue;
            }
            let what = match c.kind {
                CaseKind::Support => format!("level {}", c.level.unwrap_or(4)),
                CaseKind::Privacy => format!(
                    "privacy {}",
                    c.rights
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            };
            let subject = render::header_safe(&c.subject, render::SUBJECT_MAX);
            match (c.clocks.respond_by, c.clocks.privacy) {
                (Some(t), _) => {
                    let row = minijinja::context! { id => c.id, what => what, due => text::human_instant("en", tz, t), subject => subject };
                    if t < now {
                        breached.push(row);
                    } else if self.cal.local_date(t) == today {
                        due_today.push(row);
                    }
                }
                (None, Some(p)) => {
                    let row = minijinja::context! { id => c.id, what => what, due => p.respond_by.to_string(), subject => subject };
                    if p.respond_by < today {
                        breached.push(row);
                    } else if p.respond_by == today {
                        due_today.push(row);
                    }
                }
                _ => {}
            }
        }
        let new_cases: Vec<_> = open
            .iter()
            .filter(|c| c.kind == CaseKind::Support)
            .filter(|c| c.level.is_some_and(|l| digest_levels.contains(&l)))
            .filter(|c| since.is_none_or(|s| c.created_at > s))
            .map(|c| minijinja::context! { id => c.id, what => format!("level {}", c.level.unwrap_or(4)), subject => render::header_safe(&c.subject, render::SUBJECT_MAX) })
            .collect();
        let follow_ups: Vec<_> = if self.config.workflow.follow_up_notice
            == crate::config::FollowUpNotice::Digest
        {
            open.iter()
                .filter(|c| {
                    c.requester_wrote_at
                        .is_some_and(|t| since.is_none_or(|s| t > s))
                })
                .map(|c| minijinja::context! { id => c.id, status => c.status.as_str(), subject => render::header_safe(&c.subject, render::SUBJECT_MAX) })
                .collect()
        } else {
            Vec::new()
        };
        let ctx = minijinja::context! {
            follow_ups => follow_ups,
            today => today.to_string(),
            today_text => text::human_date("en", today),
            open_count => open.len(),
            by_level => by_level,
            due_today => due_today,
            breached => breached,
            new_cases => new_cases,
            digest_levels => digest_levels,
            set_aside_counts => {
                let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
                for r in set_aside {
                    let c = if r.category.contains("spam") { "spam" } else { r.category.as_str() };
                    *by.entry(c).or_default() += 1;
                }
                by.iter().map(|(c, n)| format!("{n} {c}")).collect::<Vec<_>>().join(", ")
            },
            spam => set_aside
                .iter()
                .filter(|r| r.category.contains("spam"))
                .take(50)
                .map(|r| minijinja::context! {
                    id => r.id,
                    subject => render::header_safe(&r.subject, render::SUBJECT_MAX),
                    why => r.reasons.iter().rev().find(|x| !x.starts_with("ignored:")).cloned().unwrap_or_default(),
                })
                .collect::<Vec<_>>(),
            undelivered => problems.iter().map(|e| minijinja::context! {
                id => e.id,
                case => e.case.as_deref().unwrap_or("-"),
                state => e.state.as_str(),
                why => e.last_error.as_deref().unwrap_or("-"),
            }).collect::<Vec<_>>(),
        };
        let from = self.config.outbound.from_support.mailbox();
        Some(
            self.templates
                .render_notice("digest.txt", ctx)
                .map_err(|e| e.to_string())
                .and_then(|(subject, body)| {
                    render::build_notice(
                        from,
                        &to,
                        &subject,
                        &body,
                        &format!("note.ticketd.{token}@{}", self.config.domain),
                        now,
                    )
                }),
        )
    }
}

/// Distinct Message-ID tokens for the several mails of one change.
pub(crate) struct Tokens {
    base: String,
    n: u32,
}

impl Tokens {
    pub(crate) fn new(base: &str) -> Tokens {
        Tokens {
            base: base.to_string(),
            n: 0,
        }
    }
    pub(crate) fn next(&mut self, kind: &str) -> String {
        self.n += 1;
        format!("{kind}.{}{}", self.base, self.n)
    }
}
