//! One message from a source into the store: parse → triage → one store
//! transaction (case, events, outbox, dedupe, cursor). [`Pipeline::drain`]
//! does it for batches: prepare on all cores (parse, triage, and the plans
//! of the new cases it expects), store in group transactions, flush once,
//! and only then ack the batch to its source — with the batches before and
//! after in other stages meanwhile.
//!
//! **Invariant:** a message is taken from its source only after
//! `flush_async` has returned for the transaction that stored it.

use crate::clock::Clock;
use crate::config::{Config, Role};
use crate::mail;
use crate::notify::Notifier;
use crate::render::{self, AckParts, Templates};
use crate::source::{Envelope, Source, SourceError};
use crate::store::{
    self, AlertRenderer, Case, CaseKind, IngestInput, IngestOutcome, NewCasePlan, NewMail, Store,
    StoreError, ThreadHint,
};
use crate::triage::{self, Decision, Kind, TriageContext};
use serde::Serialize;
use std::borrow::Borrow;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Messages stored per store transaction in a drain (group commit).
const GROUP: usize = 100;

/// A message parsed and triaged, ready for the store transaction. `E` is
/// the envelope, owned (a drain hands batches between threads) or borrowed.
pub struct Prepared<E = Envelope> {
    pub env: E,
    hash: String,
    parsed: Option<mail::ParsedMail>,
    unparseable: Option<String>,
    pub decision: Option<Decision>,
    fallback: Option<Decision>,
    ack_to: Result<mail::Addr, String>,
    reply_address: Result<String, String>,
    /// How it may thread (the threading rule's inputs).
    thread: ThreadFacts,
    token: String,
    /// Historic import: no acknowledgement, notices or timers.
    quiet: bool,
    /// When it was prepared: the case's creation time.
    now: chrono::DateTime<chrono::Utc>,
    /// Its plan as a new case, made ahead of the store transaction.
    ahead: Option<PlannedAhead>,
    /// Preparing it failed (a panic caught in parse or triage): it is not
    /// stored this time, and is quarantined after its attempts.
    failure: Option<String>,
}

/// What preparing a message computes (see [`Pipeline::prepare`]).
struct Parts {
    hash: String,
    parsed: Option<mail::ParsedMail>,
    unparseable: Option<String>,
    decision: Option<Decision>,
    fallback: Option<Decision>,
    ack_to: Result<mail::Addr, String>,
    reply_address: Result<String, String>,
    thread: ThreadFacts,
    failure: Option<String>,
}

/// What the threading rule and the workflow need to know of a message,
/// computed while preparing it (ids verified against our key).
#[derive(Debug, Clone, Default)]
pub struct ThreadFacts {
    hint: ThreadHint,
    /// To and Cc, lower case.
    recipients: Vec<String>,
    /// Cases whose staff notifications this message answers.
    answers_notice_of: Vec<String>,
}

impl Default for Parts {
    fn default() -> Self {
        Parts {
            hash: String::new(),
            parsed: None,
            unparseable: None,
            decision: None,
            fallback: None,
            ack_to: Err("not prepared".into()),
            reply_address: Err("not prepared".into()),
            thread: ThreadFacts::default(),
            failure: None,
        }
    }
}

/// A new case's plan made before the store transaction, with the case and
/// the decision it was made for. The plan is a pure function of those (and
/// of the message), so the transaction uses it exactly when the case it
/// opens equals `case`; otherwise it plans afresh. A wrong guess costs
/// time, never correctness.
struct PlannedAhead {
    case: Case,
    /// Made for the decision as a new case (`fallback`), not the first one.
    fallback: bool,
    plan: NewCasePlan,
}

/// The store's sequences as a batch will leave them (`message`, and case
/// numbers per kind): the base from which the next batch's case numbers are
/// guessed while this one is still being stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forecast {
    pub message: u64,
    pub support: u64,
    pub privacy: u64,
}

impl Forecast {
    /// These sequences moved on by what a batch moves them: `to - from`.
    fn plus(self, from: &Forecast, to: &Forecast) -> Forecast {
        let d = |a: u64, b: u64| b.saturating_sub(a);
        Forecast {
            message: self.message + d(from.message, to.message),
            support: self.support + d(from.support, to.support),
            privacy: self.privacy + d(from.privacy, to.privacy),
        }
    }
}

/// Who an acknowledgement answers, and in which language.
pub struct AckTarget<'a> {
    pub to: &'a mail::Addr,
    /// Message-ID token.
    pub token: &'a str,
    /// Message-ID of the message answered, and its References.
    pub in_reply_to: Option<&'a str>,
    pub references: &'a [String],
    /// The language triage detected.
    pub language: Option<&'a str>,
    /// A privacy request's one-time identity code (see
    /// [`Pipeline::identity_code`]).
    pub identity_code: Option<&'a str>,
}

/// Options for one ingestion.
#[derive(Debug, Clone, Copy, Default)]
pub struct IngestOptions {
    /// Record cases but queue no acknowledgements (historic imports).
    pub no_ack: bool,
}

/// What a drain (or import) did.
#[derive(Debug, Default, Clone, Serialize, serde::Deserialize)]
pub struct Report {
    pub new_cases: usize,
    pub follow_ups: usize,
    pub ignored: usize,
    pub duplicates: usize,
    pub acks_queued: usize,
    /// Messages that could not be read or stored this time (left in source).
    pub errors: Vec<String>,
    /// Of those, messages that failed in parse, triage, rendering or their
    /// transaction (tried again soon, quarantined after their attempts).
    #[serde(default)]
    pub failed: usize,
    /// Messages recorded as errors and moved to quarantine.
    #[serde(default)]
    pub quarantined: usize,
    /// What happened to each message, by source key: the first
    /// [`MAX_OUTCOMES`] of a run (an import of a million messages does not
    /// keep a million outcomes in memory; the counts above are complete).
    pub outcomes: Vec<(String, IngestOutcome)>,
    /// Outcomes counted above but not listed in `outcomes`.
    #[serde(default)]
    pub outcomes_dropped: usize,
}

/// At most this many outcomes are listed in a [`Report`].
pub const MAX_OUTCOMES: usize = 10_000;

impl Report {
    pub(crate) fn add(&mut self, key: &str, o: &IngestOutcome) {
        match o {
            IngestOutcome::NewCase { outbox, .. } => {
                self.new_cases += 1;
                if outbox.is_some() {
                    self.acks_queued += 1;
                }
            }
            IngestOutcome::FollowUp { .. } => self.follow_ups += 1,
            IngestOutcome::Ignored { .. } => self.ignored += 1,
            IngestOutcome::Duplicate { .. } => self.duplicates += 1,
        }
        if self.outcomes.len() < MAX_OUTCOMES {
            self.outcomes.push((key.to_string(), o.clone()));
        } else {
            self.outcomes_dropped += 1;
        }
    }

    pub fn merge(&mut self, other: Report) {
        self.new_cases += other.new_cases;
        self.follow_ups += other.follow_ups;
        self.ignored += other.ignored;
        self.duplicates += other.duplicates;
        self.acks_queued += other.acks_queued;
        self.failed += other.failed;
        self.quarantined += other.quarantined;
        self.errors.extend(other.errors);
        let room = MAX_OUTCOMES.saturating_sub(self.outcomes.len());
        self.outcomes_dropped += other.outcomes_dropped + other.outcomes.len().saturating_sub(room);
        self.outcomes.extend(other.outcomes.into_iter().take(room));
    }
}

#[derive(Clone)]
pub struct Pipeline {
    pub store: Arc<Store>,
    pub config: Arc<Config>,
    pub templates: Arc<Templates>,
    pub clock: Arc<dyn Clock>,
    /// Clocks, notices and escalations (pure).
    pub notifier: Notifier,
    own: Arc<Vec<String>>,
    rules: Arc<triage::Rules>,
    /// New-case plans made ahead of the store transaction: used, discarded.
    ahead: Arc<[std::sync::atomic::AtomicU64; 2]>,
    /// Messages (`source\0key`) that failed in this process: their
    /// attempts are counted in the store, and forgotten when they succeed.
    failures: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Pipeline {
    /// A pipeline over `store`; reads (or creates, on first start) the
    /// key that signs our Message-IDs.
    pub fn new(
        store: Arc<Store>,
        config: Arc<Config>,
        templates: Arc<Templates>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let own = Arc::new(config.own_addresses());
        // The overrides were checked when the config was validated.
        let rules = config.triage.compiled.clone();
        let keys = crate::workflow::ThreadKeys::load(&config.threading, store.data_dir())
            .map_err(StoreError::Invalid)?;
        let notifier = Notifier::new(config.clone(), templates.clone()).with_keys(Arc::new(keys));
        Ok(Pipeline {
            notifier,
            store,
            config,
            templates,
            clock,
            own,
            rules,
            ahead: Arc::default(),
            failures: Arc::default(),
        })
    }

    pub fn rules(&self) -> &triage::Rules {
        &self.rules
    }

    /// Where operator alerts go (`people.alerts_to`), or why nowhere.
    fn alerts_to(&self) -> Result<Vec<String>, String> {
        let to: Vec<String> = self
            .config
            .people
            .alerts_to
            .iter()
            .map(|a| a.as_str().to_string())
            .collect();
        if to.is_empty() {
            return Err("no people.alerts_to configured".into());
        }
        Ok(to)
    }

    /// The operator alert for a message over the per-message size limit.
    fn oversize_alert(
        &self,
        env: &Envelope,
        case: Option<&Case>,
        token: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<NewMail, String> {
        let to = self.alerts_to()?;
        let case_id = case.map(|c| c.id.as_str());
        let subject = format!(
            "[ticketd] oversize message in mailbox {}{}",
            env.source,
            case_id.map(|c| format!(" ({c})")).unwrap_or_default()
        );
        let body = format!(
            "A message of {} bytes arrived in mailbox {} (key {}), over the per-message limit.\n\
             Only its header was fetched and triaged; the original stays on the server.\n\
             Case: {}\n",
            env.original_size.unwrap_or(0),
            env.source,
            env.key,
            case_id.unwrap_or("none (set aside)")
        );
        self.alert(&to, &subject, &body, token, case_id, now)
    }

    fn failure_key(env: &Envelope) -> String {
        format!("{}\0{}", env.source, env.key)
    }

    /// Count one failed attempt of `env`; returns the attempts so far.
    fn count_failure(&self, env: &Envelope) -> u32 {
        let key = Self::failure_key(env);
        if let Ok(mut m) = self.failures.lock() {
            m.insert(key.clone());
        }
        self.store.count_failure(&key).unwrap_or(1)
    }

    /// A message stored or quarantined: its failed attempts are forgotten.
    fn forget_failures(&self, env: &Envelope) {
        let key = Self::failure_key(env);
        let known = match self.failures.lock() {
            Ok(mut m) => !m.is_empty() && m.remove(&key),
            Err(_) => false,
        };
        if known {
            let _ = self.store.forget_failure(&key);
        }
    }

    /// Record a message that keeps failing as an error record with an
    /// operator alert (not yet durable: flush after).
    pub fn record_failed(
        &self,
        env: &Envelope,
        reason: &str,
        attempts: u32,
    ) -> Result<u64, StoreError> {
        let limit = usize::try_from(self.config.limits.triage_parse_bytes).unwrap_or(usize::MAX);
        // What can be read of it, safely: the failure may have been here.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            mail::parse(&env.raw, limit).ok()
        }))
        .ok()
        .flatten();
        let now = self.clock.now();
        let subject = parsed.as_ref().map(|m| m.subject.as_str()).unwrap_or("");
        let alert = self.failure_alert(env, reason, attempts, now).ok();
        self.store.record_failed(&store::FailedInput {
            source: &env.source,
            source_key: &env.key,
            received_at: env.received_at,
            now,
            raw: &env.raw,
            max_stored_bytes: self.config.limits.max_stored_message_bytes,
            message_id: parsed.as_ref().and_then(|m| m.message_id.as_deref()),
            content_hash: &mail::content_hash(&env.raw),
            subject,
            from: parsed.as_ref().and_then(|m| m.from.as_ref()),
            reason,
            attempts,
            alert,
        })
    }

    /// The operator alert for a message moved to quarantine (names no
    /// sender or subject: those are in the error record).
    fn failure_alert(
        &self,
        env: &Envelope,
        reason: &str,
        attempts: u32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<NewMail, String> {
        let to = self.alerts_to()?;
        let subject = format!("[ticketd] message quarantined in mailbox {}", env.source);
        let body = format!(
            "A message in mailbox {} (key {}, {} bytes) failed {attempts} times and was moved to the mailbox's quarantine,\n\
             so that the mail behind it is not held up. It is recorded as an error: see `ticketd ignored list`\n\
             (category \"error\"); promote it with `ticketd ignored promote ID` once the cause is fixed.\n\n\
             Reason: {reason}\n",
            env.source,
            env.key,
            env.raw.len(),
        );
        self.alert(&to, &subject, &body, &render::token(), None, now)
    }

    /// An operator alert from the support sender (pure).
    fn alert(
        &self,
        to: &[String],
        subject: &str,
        body: &str,
        token: &str,
        case: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<NewMail, String> {
        let id = match case {
            Some(c) => self.notifier.message_id("note", c, token),
            None => format!("note.ticketd.{token}@{}", self.config.domain),
        };
        render::build_notice(
            self.config.outbound.from_support.mailbox(),
            to,
            subject,
            body,
            &id,
            now,
        )
    }

    /// The acknowledgement for `case`, from the sender that matches its kind
    /// (pure; used inside the store transaction).
    pub fn build_ack(
        &self,
        case: &Case,
        a: &AckTarget<'_>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<NewMail, String> {
        let mut extras = self.notifier.ack_extras(case, a.language, now);
        extras.identity_code = a.identity_code.map(str::to_string);
        let from = self.notifier.sender(case.kind);
        render::build_ack(
            &self.templates,
            case,
            &AckParts {
                from,
                to: a.to,
                domain: &self.config.domain,
                token: a.token,
                keys: self.notifier.keys(),
                now,
                in_reply_to: a.in_reply_to,
                references: a.references,
                extras: &extras,
            },
        )
    }

    /// A privacy request that will be acknowledged gets a one-time identity
    /// code: the case keeps its keyed hash, the acknowledgement the code.
    /// Inquiries, requests that cannot be acknowledged and quiet imports
    /// get none, and so does a request whose acknowledgement goes to a
    /// Reply-To other than the sender: the code proves a mailbox, and it
    /// must be the requester's own (the only impure step of planning: a
    /// random draw).
    pub fn identity_code(&self, case: &Case, ack_possible: bool) -> (Case, Option<String>) {
        let mut c = case.clone();
        let own_mailbox = match (&c.requester, &c.reply_address) {
            (Some(from), Some(to)) => from.address.eq_ignore_ascii_case(to),
            (Some(_), None) => true,
            (None, _) => false,
        };
        let wanted = ack_possible
            && own_mailbox
            && c.privacy
                .as_ref()
                .is_some_and(|p| !p.inquiry && p.code_hash.is_none());
        if !wanted {
            return (c, None);
        }
        let code = crate::workflow::identity::new_code();
        if let Some(p) = c.privacy.as_mut() {
            p.code_hash = Some(crate::workflow::identity::code_hash(
                self.notifier.keys(),
                &c.id,
                &code,
            ));
        }
        (c, Some(code))
    }

    /// The text of `case`'s first message, what a forward sends the agency
    /// (None when its raw mail is gone or does not parse). Never inside a
    /// store transaction (the ingest reads it through the transaction).
    pub fn request_text(&self, case: &Case) -> Option<String> {
        let first = case.messages.first()?;
        let raw = self.store.raw(*first).ok()??;
        self.text_of(&raw)
    }

    /// The text of raw mail, parsed within the triage limit.
    fn text_of(&self, raw: &[u8]) -> Option<String> {
        let limit = usize::try_from(self.config.limits.triage_parse_bytes).unwrap_or(usize::MAX);
        mail::parse(raw, limit).ok().map(|m| m.text)
    }

    /// The plan for a new case from prepared message `p` (pure but for the
    /// identity code's draw; runs inside the store transaction).
    fn plan_for<E>(
        &self,
        p: &Prepared<E>,
        case: &Case,
        d: &Decision,
        now: chrono::DateTime<chrono::Utc>,
    ) -> NewCasePlan {
        let (case, code) = self.identity_code(case, p.ack_to.is_ok() && !p.quiet && d.ack);
        let ack = |c: &Case| -> Result<NewMail, String> {
            let to = p.ack_to.as_ref().map_err(Clone::clone)?;
            let m = p.parsed.as_ref().ok_or("not mail")?;
            crate::failpoint::panic_point("render", &m.subject);
            // A case linked to another (a stranger named it) carries
            // nothing of the other case: no References copied.
            let refs: &[String] = if c.links.is_empty() {
                &m.references
            } else {
                &[]
            };
            let target = AckTarget {
                to,
                token: &p.token,
                in_reply_to: m.message_id.as_deref(),
                references: refs,
                language: d.language.as_deref(),
                identity_code: code.as_deref(),
            };
            self.build_ack(c, &target, now)
        };
        let mut plan = self
            .notifier
            .plan_new_case(&case, d, now, &p.token, p.quiet, &ack);
        if let (Some(m), false) = (p.parsed.as_ref(), p.quiet) {
            self.route_to_agency(&case, m, &mut plan, &p.token, now);
        }
        plan
    }

    /// Processor routing at arrival (pure): a request that names an agency
    /// in its words is offered for forwarding to it; with
    /// `privacy.auto_forward` (and a `privacy_contact`) it is forwarded at
    /// once. A match by the sender's domain alone is only offered: an
    /// agency's own staff writing about their user account are the
    /// vendor's business.
    fn route_to_agency(
        &self,
        case: &Case,
        m: &mail::ParsedMail,
        plan: &mut NewCasePlan,
        token: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        let Some(pv) = plan.privacy.as_mut() else {
            return;
        };
        if pv.inquiry {
            return;
        }
        let Some(named) = crate::workflow::privacy::agency_named(
            &self.config.agencies,
            &format!("{}\n{}", m.subject, m.text),
        ) else {
            return;
        };
        pv.suggested_agency = Some(named.name.clone());
        let text = format!("{}\n{}", m.subject, m.text);
        if !self.config.privacy.auto_forward
            || named.privacy_contact.is_none()
            || crate::workflow::privacy::about_vendor_data(&text)
        {
            return;
        }
        let mut c = case.clone();
        c.clocks = plan.clocks.clone();
        c.agency = plan.agency.clone();
        c.privacy = plan.privacy.clone();
        let ctx = crate::workflow::Ctx {
            notifier: &self.notifier,
            now,
            actor: "ticketd",
            token,
            request_text: Some(&m.text),
        };
        let forward = crate::workflow::Action::Forward {
            agency: named.name.clone(),
        };
        if let Ok((n, change)) = crate::workflow::apply(&ctx, &c, &forward) {
            plan.clocks = n.clocks;
            plan.privacy = n.privacy;
            plan.status = Some(n.status);
            plan.change.merge(change);
        }
    }

    /// The threading rule's inputs for message `m` (pure): our ids checked
    /// against the key, the subject tag, the sender's standing.
    fn thread_facts(&self, m: &mail::ParsedMail, d: &Decision) -> ThreadFacts {
        use crate::workflow::{HeaderRef, OurId};
        let keys = self.notifier.keys();
        let now = self.clock.now();
        let mut ids = m.in_reply_to.clone();
        ids.extend(m.references.iter().rev().cloned());
        let mut answers_notice_of = Vec::new();
        let refs = ids
            .iter()
            .map(|id| match keys.verify(id, &self.config.domain, now) {
                OurId::Verified { kind, case } => {
                    if kind == "note" && !answers_notice_of.contains(&case) {
                        answers_notice_of.push(case.clone());
                    }
                    HeaderRef::Ours {
                        case,
                        verified: true,
                    }
                }
                OurId::Unverified { case } => HeaderRef::Ours {
                    case,
                    verified: false,
                },
                OurId::NotOurs => HeaderRef::Other {
                    id: id.clone(),
                    case: triage::find_case_number(id),
                },
            })
            .collect();
        let sender = m.from.as_ref().map(|a| a.address.to_ascii_lowercase());
        let staff = d.auth != triage::Auth::Fail
            && sender
                .as_deref()
                .is_some_and(|s| self.config.people.is_staff_sender(s));
        let site_admin_of = sender.as_deref().and_then(|s| {
            self.config
                .agencies
                .iter()
                .find(|a| d.auth != triage::Auth::Fail && a.is_site_admin(s))
                .map(|a| a.name.clone())
        });
        let lower = |v: &[mail::Addr]| -> Vec<String> {
            v.iter().map(|a| a.address.to_ascii_lowercase()).collect()
        };
        let mut recipients = lower(&m.to);
        recipients.extend(lower(&m.cc));
        let mut parties: Vec<String> = Vec::new();
        for a in sender.iter().chain(recipients.iter()) {
            if !a.is_empty() && !self.own.contains(a) && !parties.contains(a) {
                parties.push(a.clone());
            }
        }
        ThreadFacts {
            hint: ThreadHint {
                header_ids: ids,
                refs,
                subject_tag: triage::subject_tag(&m.subject),
                sender,
                staff,
                site_admin_of,
                parties,
                link_closed_within: chrono::Duration::from_std(
                    self.config.workflow.closed_reply_link_within.0,
                )
                .unwrap_or_else(|_| chrono::Duration::days(180)),
            },
            recipients,
            answers_notice_of,
        }
    }

    /// What prepared message `p` does to the case it joins (pure; runs
    /// inside the store transaction).
    fn arrival<E: Borrow<Envelope>>(
        &self,
        p: &Prepared<E>,
        case: &Case,
        f: &store::JoinFacts,
    ) -> crate::workflow::ArrivalPlan {
        let m = p.parsed.as_ref();
        // A privacy officer's `#forward` sends the agency the request.
        let request_text = f.first_raw.as_deref().and_then(|raw| self.text_of(raw));
        let ctx = crate::workflow::Ctx {
            notifier: &self.notifier,
            now: p.now,
            actor: "ticketd",
            token: &p.token,
            request_text: request_text.as_deref(),
        };
        let env: &Envelope = p.env.borrow();
        let h = &p.thread.hint;
        let mut plan = crate::workflow::on_message(
            &ctx,
            case,
            &crate::workflow::Arrival {
                message: f.message,
                message_id: m.and_then(|m| m.message_id.as_deref()),
                received_at: env.received_at,
                sender: h.sender.as_deref(),
                staff: h.staff,
                recipients: &p.thread.recipients,
                parties: &h.parties,
                answers_notice_of: &p.thread.answers_notice_of,
                text: m.map(|m| m.text.as_str()).unwrap_or(""),
                matched_by: &f.matched_by,
                new_participant: f.new_participant,
            },
        );
        if p.quiet {
            // Historic import: the record, never mail.
            plan.change.notices.clear();
        }
        plan
    }

    /// The plan made ahead for this case and decision, else a fresh one.
    fn plan_or_use_ahead<E>(&self, p: &Prepared<E>, case: &Case, d: &Decision) -> NewCasePlan {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(a) = &p.ahead {
            let made_for = if a.fallback {
                p.fallback.as_ref()
            } else {
                p.decision.as_ref()
            };
            if made_for.is_some_and(|m| std::ptr::eq(m, d)) && a.case == *case {
                self.ahead[0].fetch_add(1, Relaxed);
                return a.plan.clone();
            }
            self.ahead[1].fetch_add(1, Relaxed);
        }
        self.plan_for(p, case, d, p.now)
    }

    /// New-case plans made ahead so far: (used, discarded because the
    /// transaction opened a different case).
    pub fn plans_made_ahead(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.ahead[0].load(Relaxed), self.ahead[1].load(Relaxed))
    }

    /// The store's sequences now (see [`Forecast`]).
    pub fn forecast_now(&self) -> Forecast {
        let seq = |n: &str| self.store.seq(n).unwrap_or(0);
        Forecast {
            message: seq("message"),
            support: seq("case:SUP"),
            privacy: seq("case:PRV"),
        }
    }

    /// Guess what each prepared message will become in the store, starting
    /// from `base` (duplicates, follow-ups and set-aside messages open no
    /// case), and plan the guessed new cases on all cores, so that the
    /// store transaction (one at a time, under sled's lock) does not render
    /// acknowledgements and notices itself. Returns the sequences as the
    /// batch will leave them.
    fn plan_ahead(
        &self,
        prepared: &mut [Prepared],
        base: Forecast,
        earlier: &std::collections::HashSet<String>,
    ) -> Forecast {
        use std::collections::{HashMap, HashSet};
        let mut f = base;
        // The batch being stored meanwhile counts as stored: its content
        // keys (`earlier`) are duplicates here, whether or not the store
        // shows them yet.
        let mut seen: HashSet<String> = earlier.clone();
        // Cases this batch opens, as the threading rule will find them.
        let mut new_cases: HashMap<String, Case> = HashMap::new();
        let mut new_msgids: HashMap<String, String> = HashMap::new();
        let mut todo: Vec<(usize, Case, bool)> = Vec::new();
        for (i, p) in prepared.iter().enumerate() {
            if p.failure.is_some() {
                continue;
            }
            let m = p.parsed.as_ref();
            let mid = m.and_then(|m| m.message_id.as_deref());
            let key = store::dedupe_key(mid, &p.hash);
            let verdict = self.store.dedupe_now(&store::DedupeQuery {
                source: &p.env.source,
                key: &p.env.key,
                message_id: mid,
                hash: &p.hash,
                raw: &p.env.raw,
            });
            match verdict {
                Ok(store::Seen::Reread { .. }) => continue,
                // Recorded as a duplicate: a message, no case.
                Ok(store::Seen::Duplicate { .. }) => {
                    f.message += 1;
                    continue;
                }
                _ if !seen.insert(key) => {
                    f.message += 1;
                    continue;
                }
                _ => {}
            }
            f.message += 1;
            let Some(d) = p.decision.as_ref().filter(|d| d.kind != Kind::Ignore) else {
                continue;
            };
            // The transaction's own rule, over the store and this batch.
            let h = &p.thread.hint;
            let lookup = AheadLookup {
                store: &self.store,
                new_cases: &new_cases,
                new_msgids: &new_msgids,
                site_admin_of: h.site_admin_of.as_deref(),
            };
            let thread = match crate::workflow::thread::decide(
                &crate::workflow::ThreadQuery {
                    refs: &h.refs,
                    subject_tag: h.subject_tag.as_deref(),
                    sender: h.sender.as_deref(),
                    staff: h.staff,
                    now: p.now,
                    link_closed_within: h.link_closed_within,
                },
                &lookup,
            ) {
                Ok(t) => t,
                Err(e) => match e {},
            };
            if matches!(thread, crate::workflow::Thread::Join { .. }) {
                continue;
            }
            let (d, fallback) = match (&p.fallback, d.kind) {
                (Some(fb), Kind::Reply) => (fb, true),
                _ => (d, false),
            };
            if d.kind == Kind::Ignore || d.kind == Kind::Reply {
                continue;
            }
            let kind = store::case_kind(d);
            let n = match kind {
                CaseKind::Support => {
                    f.support += 1;
                    f.support
                }
                CaseKind::Privacy => {
                    f.privacy += 1;
                    f.privacy
                }
            };
            let env = &p.env;
            let mut case = store::planned_case(
                &store::case_id(kind, n),
                d,
                f.message,
                m.map(|m| m.subject.as_str()).unwrap_or(""),
                m.and_then(|m| m.from.as_ref()),
                &p.reply_address,
                &env.source,
                env.received_at,
                p.now,
                Vec::new(),
            );
            crate::workflow::thread::shape_new_case(&mut case, &thread, &h.parties);
            if let Some(mid) = mid {
                new_msgids.insert(mid.to_string(), case.id.clone());
            }
            new_cases.insert(case.id.clone(), case.clone());
            todo.push((i, case, fallback));
        }
        let shared: &[Prepared] = prepared;
        let planned = par_map(todo, |(i, case, fallback)| {
            let p = &shared[i];
            let d = if fallback {
                p.fallback.as_ref()
            } else {
                p.decision.as_ref()
            };
            let d = d?;
            // A panic here is met again, and recorded, in the transaction.
            let plan = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.plan_for(p, &case, d, p.now)
            }))
            .ok()?;
            Some((
                i,
                PlannedAhead {
                    case,
                    fallback,
                    plan,
                },
            ))
        });
        for (i, a) in planned.into_iter().flatten() {
            if let Some(p) = prepared.get_mut(i) {
                p.ahead = Some(a);
            }
        }
        f
    }

    /// Prepare a batch on all cores and plan its new cases ahead (see
    /// [`Pipeline::plan_ahead`]) from `base`, or from the store's sequences
    /// now. Returns the batch, the base and the sequences as it will leave
    /// them.
    pub fn prepare_batch(
        &self,
        envs: Vec<Envelope>,
        role: Role,
        opts: IngestOptions,
        base: Option<Forecast>,
    ) -> (Vec<Prepared>, Forecast, Forecast) {
        self.prepare_batch_after(envs, role, opts, base, &Default::default())
    }

    /// [`Pipeline::prepare_batch`] while the batch whose content keys are
    /// `earlier` is being stored.
    pub fn prepare_batch_after(
        &self,
        envs: Vec<Envelope>,
        role: Role,
        opts: IngestOptions,
        base: Option<Forecast>,
        earlier: &std::collections::HashSet<String>,
    ) -> (Vec<Prepared>, Forecast, Forecast) {
        let mut prepared = self.prepare_all(envs, role, opts);
        let base = base.unwrap_or_else(|| self.forecast_now());
        let end = self.plan_ahead(&mut prepared, base, earlier);
        (prepared, base, end)
    }

    /// The content keys of a prepared batch (see [`store::dedupe_key`]).
    fn content_keys(prepared: &[Prepared]) -> std::collections::HashSet<String> {
        prepared
            .iter()
            .filter(|p| p.failure.is_none())
            .map(|p| {
                let mid = p.parsed.as_ref().and_then(|m| m.message_id.as_deref());
                store::dedupe_key(mid, &p.hash)
            })
            .collect()
    }

    /// The role of the mailbox a source name belongs to (imports: support).
    pub fn role_of(&self, source: &str) -> Role {
        self.config
            .mailbox(source)
            .map(|m| m.role)
            .unwrap_or(Role::Support)
    }

    pub fn triage_context(&self, role: Role) -> TriageContext<'_> {
        TriageContext {
            role,
            own_addresses: &self.own,
            own_domain: &self.config.domain,
            block_senders: &self.config.triage.block_senders,
            allow_automated: &self.config.triage.allow_automated,
            receive_lists: &self.config.triage.receive_lists,
            trusted_authserv_id: self.config.triage.trusted_authserv_id.as_deref(),
            rules: &self.rules,
            agency_domains: &self.config.triage.agency_domains,
            model: &self.config.triage.model,
        }
    }

    /// Parse and triage one message: everything the store transaction
    /// needs, computed without touching the store (runs in parallel).
    pub fn prepare<E: Borrow<Envelope>>(
        &self,
        e: E,
        role: Role,
        opts: IngestOptions,
    ) -> Prepared<E> {
        let env = e.borrow();
        let now = self.clock.now();
        // One message's failure stays its own: a panic anywhere in parsing
        // or triage (a bug the fuzzer has not found yet) fails this
        // message alone.
        let work = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.prepare_parts(env, role, opts)
        }));
        let parts = match work {
            Ok(parts) => parts,
            Err(p) => {
                let why = crate::failpoint::panic_text(p.as_ref());
                tracing::error!(source = %env.source, key = %env.key, error = %why, "preparing a message failed");
                Parts {
                    failure: Some(format!("parse or triage failed: {why}")),
                    hash: mail::content_hash(&env.raw),
                    ..Parts::default()
                }
            }
        };
        Prepared {
            env: e,
            hash: parts.hash,
            unparseable: parts.unparseable,
            parsed: parts.parsed,
            decision: parts.decision,
            fallback: parts.fallback,
            ack_to: parts.ack_to,
            reply_address: parts.reply_address,
            thread: parts.thread,
            token: render::token(),
            quiet: opts.no_ack,
            now,
            ahead: None,
            failure: parts.failure,
        }
    }

    fn prepare_parts(&self, env: &Envelope, role: Role, opts: IngestOptions) -> Parts {
        let limit = usize::try_from(self.config.limits.triage_parse_bytes).unwrap_or(usize::MAX);
        let parsed = mail::parse(&env.raw, limit);
        let (decision, fallback, ack_to) = match &parsed {
            Ok(m) => {
                crate::failpoint::panic_point("triage", &m.subject);
                let ctx = self.triage_context(role);
                let decision = triage::triage(m, &ctx);
                let fallback =
                    (decision.kind == Kind::Reply).then(|| triage::triage_as_new(m, &ctx));
                (Some(decision), fallback, render::ack_address(m, &self.own))
            }
            Err(_) => (None, None, Err("not mail".to_string())),
        };
        let reply_address = if opts.no_ack {
            Err("imported with --no-ack".to_string())
        } else {
            ack_to
                .as_ref()
                .map(|a| a.address.clone())
                .map_err(Clone::clone)
        };
        let thread = match (&parsed, &decision) {
            (Ok(m), Some(d)) => self.thread_facts(m, d),
            _ => ThreadFacts::default(),
        };
        Parts {
            hash: mail::content_hash(&env.raw),
            unparseable: parsed
                .as_ref()
                .err()
                .map(|e| format!("not a mail message: {e}")),
            parsed: parsed.ok(),
            decision,
            fallback,
            ack_to,
            reply_address,
            thread,
            failure: None,
        }
    }

    /// Store prepared messages in one transaction (not yet durable: flush
    /// after). Should the group fail, each message is tried on its own, so
    /// one bad message never holds up the others.
    pub fn commit<E: Borrow<Envelope> + Sync>(
        &self,
        prepared: &[Prepared<E>],
    ) -> Vec<Result<IngestOutcome, StoreError>> {
        // Messages whose preparation failed are not stored this time.
        let ok: Vec<&Prepared<E>> = prepared.iter().filter(|p| p.failure.is_none()).collect();
        let mut stored = self.commit_prepared(&ok).into_iter();
        prepared
            .iter()
            .map(|p| match &p.failure {
                Some(f) => Err(StoreError::Invalid(f.clone())),
                None => stored
                    .next()
                    .unwrap_or_else(|| Err(StoreError::Invalid("nothing committed".into()))),
            })
            .collect()
    }

    fn commit_prepared<E: Borrow<Envelope> + Sync>(
        &self,
        prepared: &[&Prepared<E>],
    ) -> Vec<Result<IngestOutcome, StoreError>> {
        if prepared.is_empty() {
            return Vec::new();
        }
        let plans: Vec<_> = prepared
            .iter()
            .map(|p| move |case: &Case, d: &Decision| self.plan_or_use_ahead(p, case, d))
            .collect();
        let follow_ups: Vec<_> = prepared
            .iter()
            .map(|p| move |case: &Case, f: &store::JoinFacts| self.arrival(p, case, f))
            .collect();
        let alerts: Vec<_> = prepared
            .iter()
            .map(|p| {
                move |case: Option<&Case>| -> Result<NewMail, String> {
                    self.oversize_alert(p.env.borrow(), case, &p.token, p.now)
                }
            })
            .collect();
        let inputs: Vec<IngestInput<'_>> = prepared
            .iter()
            .zip(plans.iter().zip(alerts.iter()).zip(follow_ups.iter()))
            .map(|(p, ((plan, alert), follow_up))| {
                let m = p.parsed.as_ref();
                let env: &Envelope = p.env.borrow();
                IngestInput {
                    source: &env.source,
                    source_key: &env.key,
                    received_at: env.received_at,
                    now: p.now,
                    actor: "ticketd",
                    raw: &env.raw,
                    max_stored_bytes: self.config.limits.max_stored_message_bytes,
                    original_size: env.original_size,
                    render_alert: env
                        .original_size
                        .is_some()
                        .then_some(alert as &AlertRenderer<'_>),
                    message_id: m.and_then(|m| m.message_id.as_deref()),
                    content_hash: &p.hash,
                    subject: m.map(|m| m.subject.as_str()).unwrap_or(""),
                    from: m.and_then(|m| m.from.as_ref()),
                    warnings: m.map(|m| m.warnings.as_slice()).unwrap_or(&[]),
                    thread: p.thread.hint.clone(),
                    decision: p.decision.as_ref(),
                    fallback: p.fallback.as_ref(),
                    unparseable: p.unparseable.as_deref(),
                    reply_address: p.reply_address.clone(),
                    plan,
                    follow_up,
                    late_parent_window: chrono::Duration::from_std(
                        self.config.limits.late_parent_window.0,
                    )
                    .unwrap_or_else(|_| chrono::Duration::days(7)),
                    cursor: None,
                }
            })
            .collect();
        let results: Vec<_> = match self.store.ingest_many(&inputs) {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(_) if inputs.len() > 1 => inputs.iter().map(|i| self.store.ingest(i)).collect(),
            Err(e) => vec![Err(e)],
        };
        for (p, r) in prepared.iter().zip(&results) {
            if let Ok(o) = r {
                log_outcome(p.env.borrow(), o);
            }
        }
        results
    }

    /// Parse, triage and store one message (not yet durable: flush after).
    pub fn ingest(
        &self,
        env: &Envelope,
        role: Role,
        opts: IngestOptions,
    ) -> Result<IngestOutcome, StoreError> {
        let p = self.prepare(env, role, opts);
        self.commit(std::slice::from_ref(&p))
            .pop()
            .unwrap_or_else(|| Err(StoreError::Invalid("nothing committed".into())))
    }

    /// Prepare many messages on all cores, in order (no planning ahead).
    pub fn prepare_all(
        &self,
        envs: Vec<Envelope>,
        role: Role,
        opts: IngestOptions,
    ) -> Vec<Prepared> {
        par_map(envs, |e| {
            // Internal ids only: the mailbox name and its key for the message.
            let _span = tracing::info_span!("message", mailbox = %e.source, key = %e.key).entered();
            self.prepare(e, role, opts)
        })
    }

    /// Drain a source: batches of up to `batch` messages, each stored in
    /// group transactions and flushed once, and acked to the source only
    /// after that flush. Stops early (finishing the batches in hand) when
    /// `stop()` turns true. A fetch error ends the drain after the batches
    /// already fetched are stored and taken.
    ///
    /// Three stages overlap: while batch k is committed (one thread) and
    /// batch k+1 is parsed, triaged and planned (all cores), the source takes
    /// batch k-1 (already flushed) and fetches batch k+2 — at once, where it
    /// can ([`Source::ack_and_fetch`]: IMAP moves on a second session).
    ///
    /// Memory is bounded by `[limits]`: up to four batches are in flight
    /// (taken, committing, preparing, being fetched), so a batch is at most
    /// a quarter of `in_flight_messages`; the three that hold raw mail (a
    /// committed batch keeps only its keys until it is taken) are fetched
    /// with at most a third of `in_flight_bytes` each.
    pub async fn drain<S: Source>(
        &self,
        src: &mut S,
        batch: usize,
        opts: IngestOptions,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Report, PipelineError> {
        type Stored = (Vec<Envelope>, Vec<Result<IngestOutcome, StoreError>>);
        let worker_failed = |e: tokio::task::JoinError| {
            PipelineError::Store(StoreError::Invalid(format!("ingest worker failed: {e}")))
        };
        let mut report = Report::default();
        let role = self.role_of(src.name());
        let limits = &self.config.limits;
        let batch = batch.min((limits.in_flight_messages / 4).max(1)).max(1);
        src.set_fetch_bytes((limits.in_flight_bytes / 3).max(1));
        let mut fetched: Option<Vec<Envelope>> = None;
        type Planned = (Vec<Prepared>, Forecast, Forecast);
        let mut preparing: Option<tokio::task::JoinHandle<Planned>> = None;
        // Where the sequences will stand once the batch being committed is
        // stored: the base for planning the next batch ahead.
        let mut next_base: Option<Forecast> = None;
        // Content keys of the batch handed to the committer last.
        let mut committing_keys: Arc<std::collections::HashSet<String>> = Arc::default();
        let mut committing: Option<tokio::task::JoinHandle<Stored>> = None;
        let mut flushed: Vec<Envelope> = Vec::new();
        let mut source_done = false;
        let mut fetch_error = None;
        loop {
            if stop() {
                // Not started yet: left in the source for next time.
                fetched = None;
                source_done = true;
            }
            // Hand work on: the prepared batch to the committer, the
            // fetched batch to the preparers.
            if committing.is_none() {
                if let Some(h) = preparing.take() {
                    let (prepared, base, end) = h.await.map_err(worker_failed)?;
                    // The store is at rest between commits: count on from
                    // its real sequences, so one wrong guess stays in one
                    // batch.
                    next_base = Some(self.forecast_now().plus(&base, &end));
                    committing_keys = Arc::new(Self::content_keys(&prepared));
                    let p = self.clone();
                    committing = Some(tokio::task::spawn_blocking(move || {
                        let results: Vec<_> = prepared
                            .chunks(GROUP)
                            .flat_map(|g| {
                                let t = std::time::Instant::now();
                                let r = p.commit(g);
                                crate::observe::record(crate::observe::Event::Committed {
                                    took: t.elapsed(),
                                });
                                r
                            })
                            .collect();
                        let envs = prepared.into_iter().map(|p| p.env).collect();
                        (envs, results)
                    }));
                }
            }
            if preparing.is_none() {
                if let Some(envs) = fetched.take() {
                    let p = self.clone();
                    let base = next_base.take();
                    let earlier = committing_keys.clone();
                    preparing = Some(tokio::task::spawn_blocking(move || {
                        p.prepare_batch_after(envs, role, opts, base, &earlier)
                    }));
                }
            }
            // Meanwhile the source takes the flushed batch and fetches on.
            if fetched.is_none() && !source_done {
                let t = std::time::Instant::now();
                let (acked, f) = src.ack_and_fetch(&flushed, batch).await;
                crate::observe::record(crate::observe::Event::Fetched {
                    mailbox: src.name(),
                    took: t.elapsed(),
                });
                acked?;
                flushed.clear();
                match f {
                    Ok(f) => {
                        for (key, err) in &f.errors {
                            tracing::warn!(source = src.name(), key = %key, error = %err, "cannot read message; left in source");
                            report.errors.push(format!("{}: {key}: {err}", src.name()));
                        }
                        if f.envelopes.is_empty() {
                            source_done = true;
                        } else {
                            fetched = Some(f.envelopes);
                        }
                    }
                    Err(e) => {
                        // What is in hand is still stored and taken.
                        fetch_error = Some(e);
                        source_done = true;
                    }
                }
            }
            if !flushed.is_empty() {
                src.ack(&flushed).await?;
                flushed.clear();
            }
            // The committed batch becomes durable; the source takes it next
            // time round.
            let Some(h) = committing.take() else {
                if preparing.is_none() && fetched.is_none() {
                    break;
                }
                continue;
            };
            let (envs, results) = h.await.map_err(worker_failed)?;
            let mut taken = Vec::with_capacity(envs.len());
            let mut poison = Vec::new();
            for (env, r) in envs.into_iter().zip(results) {
                match r {
                    Ok(o) => {
                        self.forget_failures(&env);
                        report.add(&env.key, &o);
                        crate::observe::record(crate::observe::Event::Taken {
                            mailbox: src.name(),
                            decision: o.decision(),
                        });
                        // Durable once flushed: only its key is needed
                        // until the source takes it.
                        let mut env = env;
                        env.raw = Vec::new();
                        taken.push(env);
                    }
                    Err(e) => {
                        let attempts = self.count_failure(&env);
                        report.failed += 1;
                        report
                            .errors
                            .push(format!("{}: {}: {e}", src.name(), env.key));
                        if attempts < self.config.limits.quarantine_after {
                            tracing::error!(source = src.name(), key = %env.key, attempts, error = %e, "cannot store message; left in source, tried again soon");
                            continue;
                        }
                        match self.record_failed(&env, &e.to_string(), attempts) {
                            Ok(ignored) => {
                                tracing::error!(source = src.name(), key = %env.key, attempts, ignored, error = %e, "message keeps failing: recorded as an error and quarantined");
                                self.forget_failures(&env);
                                report.quarantined += 1;
                                crate::observe::record(crate::observe::Event::Taken {
                                    mailbox: src.name(),
                                    decision: "quarantined",
                                });
                                poison.push(env);
                            }
                            Err(e2) => {
                                tracing::error!(source = src.name(), key = %env.key, error = %e2, "cannot record a failing message; left in source");
                            }
                        }
                    }
                }
            }
            if let Some(last) = taken.last() {
                // Where this source got to (IMAP: UIDVALIDITY:UID).
                let cursor = serde_json::json!({ "last_key": last.key, "at": self.clock.now() });
                self.store
                    .set_cursor(src.name(), cursor.to_string().as_bytes())?;
            }
            self.store.flush().await?;
            crate::failpoint::hit("after_flush_before_ack");
            if !poison.is_empty() {
                // Recorded and flushed: now out of the way.
                if let Err(e) = src.quarantine(&poison).await {
                    tracing::error!(source = src.name(), error = %e, "cannot move failing messages to quarantine; they stay in the source and are recognised when read again");
                }
            }
            flushed = taken;
        }
        if !flushed.is_empty() {
            src.ack(&flushed).await?;
        }
        match fetch_error {
            Some(e) => Err(e.into()),
            None => Ok(report),
        }
    }
}

/// The store and the batch planned so far, as the threading rule reads
/// them while planning ahead (a guess: a read error counts as absent).
struct AheadLookup<'a> {
    store: &'a Store,
    new_cases: &'a std::collections::HashMap<String, Case>,
    new_msgids: &'a std::collections::HashMap<String, String>,
    site_admin_of: Option<&'a str>,
}

impl crate::workflow::ThreadLookup for AheadLookup<'_> {
    type Error = std::convert::Infallible;
    fn case_of_message_id(&self, id: &str) -> Result<Option<String>, Self::Error> {
        Ok(match self.new_msgids.get(id) {
            Some(c) => Some(c.clone()),
            None => self.store.msgid_case(id).ok().flatten(),
        })
    }
    fn case(&self, id: &str) -> Result<Option<Case>, Self::Error> {
        Ok(match self.new_cases.get(id) {
            Some(c) => Some(c.clone()),
            None => self.store.case(id).ok().flatten(),
        })
    }
    fn site_admin(&self, case: &Case, _address: &str) -> bool {
        self.site_admin_of.is_some() && case.agency.as_deref() == self.site_admin_of
    }
}

/// `f` over `items` on all cores (at most 8 threads), results in order.
fn par_map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    if items.len() < 32 || threads < 2 {
        return items.into_iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut rest = items.into_iter();
    loop {
        let c: Vec<T> = rest.by_ref().take(per).collect();
        if c.is_empty() {
            break;
        }
        chunks.push(c);
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|c| scope.spawn(move || c.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

fn log_outcome(env: &Envelope, o: &IngestOutcome) {
    let _span = tracing::info_span!("message", mailbox = %env.source, key = %env.key).entered();
    match o {
        IngestOutcome::NewCase { case, outbox, .. } => {
            tracing::info!(source = %env.source, case = %case, ack = outbox.is_some(), "new case")
        }
        IngestOutcome::FollowUp { case, .. } => {
            tracing::info!(source = %env.source, case = %case, "follow-up joined case")
        }
        IngestOutcome::Ignored { ignored, .. } => {
            tracing::info!(source = %env.source, ignored = ignored, "message set aside")
        }
        IngestOutcome::Duplicate { message } => {
            tracing::debug!(source = %env.source, message = message, "duplicate skipped")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_lists_at_most_max_outcomes_and_counts_the_rest() {
        let dup = IngestOutcome::Duplicate { message: 1 };
        let mut a = Report::default();
        for i in 0..MAX_OUTCOMES + 5 {
            a.add(&format!("k{i}"), &dup);
        }
        assert_eq!(a.duplicates, MAX_OUTCOMES + 5);
        assert_eq!(a.outcomes.len(), MAX_OUTCOMES);
        assert_eq!(a.outcomes_dropped, 5);
        let mut b = Report::default();
        b.add("first", &dup);
        let mut c = Report::default();
        c.add("second", &dup);
        b.merge(c);
        assert_eq!(b.outcomes.len(), 2);
        assert_eq!(b.outcomes_dropped, 0);
        b.merge(a);
        assert_eq!(b.duplicates, MAX_OUTCOMES + 7);
        assert_eq!(b.outcomes.len(), MAX_OUTCOMES);
        assert_eq!(b.outcomes_dropped, 7);
    }
}
