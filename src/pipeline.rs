//! One message from a source into the store: parse → triage → one store
//! transaction (case, events, outbox, dedupe, cursor). [`Pipeline::drain`]
//! does it for batches: ingest each message, flush once (group commit), and
//! only then ack the batch to its source.
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
    AlertRenderer, Case, IngestInput, IngestOutcome, NewCasePlan, NewMail, Store, StoreError,
    ThreadHint,
};
use crate::triage::{self, Decision, Kind, TriageContext};
use serde::Serialize;
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

/// A message parsed and triaged, ready for the store transaction.
pub struct Prepared<'e> {
    pub env: &'e Envelope,
    hash: String,
    parsed: Option<mail::ParsedMail>,
    unparseable: Option<String>,
    pub decision: Option<Decision>,
    fallback: Option<Decision>,
    ack_to: Result<mail::Addr, String>,
    reply_address: Result<String, String>,
    header_ids: Vec<String>,
    case_ref_from_header: bool,
    token: String,
    /// Historic import: no acknowledgement, notices or timers.
    quiet: bool,
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
    pub outcomes: Vec<(String, IngestOutcome)>,
}

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
        self.outcomes.push((key.to_string(), o.clone()));
    }

    pub fn merge(&mut self, other: Report) {
        self.new_cases += other.new_cases;
        self.follow_ups += other.follow_ups;
        self.ignored += other.ignored;
        self.duplicates += other.duplicates;
        self.acks_queued += other.acks_queued;
        self.errors.extend(other.errors);
        self.outcomes.extend(other.outcomes);
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
}

impl Pipeline {
    pub fn new(
        store: Arc<Store>,
        config: Arc<Config>,
        templates: Arc<Templates>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let own = Arc::new(config.own_addresses());
        // The overrides were checked when the config was validated.
        let rules = config.triage.compiled.clone();
        let notifier = Notifier::new(config.clone(), templates.clone());
        Pipeline {
            notifier,
            store,
            config,
            templates,
            clock,
            own,
            rules,
        }
    }

    pub fn rules(&self) -> &triage::Rules {
        &self.rules
    }

    /// The operator alert for a message over the per-message size limit.
    fn oversize_alert(
        &self,
        env: &Envelope,
        case: Option<&Case>,
        token: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<NewMail, String> {
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
        render::build_notice(
            self.config.outbound.from_support.mailbox(),
            &to,
            &subject,
            &body,
            &self.config.domain,
            token,
            case_id,
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
        let extras = self.notifier.ack_extras(case, a.language);
        let from = self.notifier.sender(case.kind);
        render::build_ack(
            &self.templates,
            case,
            &AckParts {
                from,
                to: a.to,
                domain: &self.config.domain,
                token: a.token,
                now,
                in_reply_to: a.in_reply_to,
                references: a.references,
                extras: &extras,
            },
        )
    }

    /// The plan for a new case from prepared message `p` (pure; runs inside
    /// the store transaction).
    fn plan_for(
        &self,
        p: &Prepared<'_>,
        case: &Case,
        d: &Decision,
        now: chrono::DateTime<chrono::Utc>,
    ) -> NewCasePlan {
        let ack = |c: &Case| -> Result<NewMail, String> {
            let to = p.ack_to.as_ref().map_err(Clone::clone)?;
            let m = p.parsed.as_ref().ok_or("not mail")?;
            let target = AckTarget {
                to,
                token: &p.token,
                in_reply_to: m.message_id.as_deref(),
                references: &m.references,
                language: d.language.as_deref(),
            };
            self.build_ack(c, &target, now)
        };
        self.notifier
            .plan_new_case(case, d, now, &p.token, p.quiet, &ack)
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
        }
    }

    /// Parse and triage one message: everything the store transaction
    /// needs, computed without touching the store (runs in parallel).
    pub fn prepare<'e>(&self, env: &'e Envelope, role: Role, opts: IngestOptions) -> Prepared<'e> {
        let limit = usize::try_from(self.config.limits.triage_parse_bytes).unwrap_or(usize::MAX);
        let parsed = mail::parse(&env.raw, limit);
        let (decision, fallback, ack_to) = match &parsed {
            Ok(m) => {
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
        let (header_ids, case_ref_from_header) = match &parsed {
            Ok(m) => {
                let mut ids = m.in_reply_to.clone();
                ids.extend(m.references.iter().rev().cloned());
                let from_header = ids.iter().any(|id| triage::find_case_number(id).is_some());
                (ids, from_header)
            }
            Err(_) => (Vec::new(), false),
        };
        Prepared {
            env,
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
            header_ids,
            case_ref_from_header,
            token: render::token(),
            quiet: opts.no_ack,
        }
    }

    /// Store prepared messages in one transaction (not yet durable: flush
    /// after). Should the group fail, each message is tried on its own, so
    /// one bad message never holds up the others.
    pub fn commit(&self, prepared: &[Prepared<'_>]) -> Vec<Result<IngestOutcome, StoreError>> {
        let now = self.clock.now();
        let plans: Vec<_> = prepared
            .iter()
            .map(|p| move |case: &Case, d: &Decision| self.plan_for(p, case, d, now))
            .collect();
        let alerts: Vec<_> = prepared
            .iter()
            .map(|p| {
                move |case: Option<&Case>| -> Result<NewMail, String> {
                    self.oversize_alert(p.env, case, &p.token, now)
                }
            })
            .collect();
        let inputs: Vec<IngestInput<'_>> = prepared
            .iter()
            .zip(plans.iter().zip(alerts.iter()))
            .map(|(p, (plan, alert))| {
                let m = p.parsed.as_ref();
                IngestInput {
                    source: &p.env.source,
                    source_key: &p.env.key,
                    received_at: p.env.received_at,
                    now,
                    actor: "ticketd",
                    raw: &p.env.raw,
                    max_stored_bytes: self.config.limits.max_stored_message_bytes,
                    original_size: p.env.original_size,
                    render_alert: p
                        .env
                        .original_size
                        .is_some()
                        .then_some(alert as &AlertRenderer<'_>),
                    message_id: m.and_then(|m| m.message_id.as_deref()),
                    content_hash: &p.hash,
                    subject: m.map(|m| m.subject.as_str()).unwrap_or(""),
                    from: m.and_then(|m| m.from.as_ref()),
                    warnings: m.map(|m| m.warnings.as_slice()).unwrap_or(&[]),
                    thread: ThreadHint {
                        header_ids: p.header_ids.clone(),
                        case_ref: p.decision.as_ref().and_then(|d| d.case_ref.clone()),
                        case_ref_from_header: p.case_ref_from_header,
                    },
                    decision: p.decision.as_ref(),
                    fallback: p.fallback.as_ref(),
                    unparseable: p.unparseable.as_deref(),
                    reply_address: p.reply_address.clone(),
                    plan,
                    cursor: None,
                }
            })
            .collect();
        let results = match self.store.ingest_many(&inputs) {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(_) if inputs.len() > 1 => inputs.iter().map(|i| self.store.ingest(i)).collect(),
            Err(e) => vec![Err(e)],
        };
        for (p, r) in prepared.iter().zip(&results) {
            if let Ok(o) = r {
                log_outcome(p.env, o);
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

    /// Prepare many messages on all cores.
    pub fn prepare_all<'e>(
        &self,
        envs: &'e [Envelope],
        role: Role,
        opts: IngestOptions,
    ) -> Vec<Prepared<'e>> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8);
        if envs.len() < 32 || threads < 2 {
            return envs.iter().map(|e| self.prepare(e, role, opts)).collect();
        }
        let chunk = envs.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = envs
                .chunks(chunk)
                .map(|c| {
                    scope.spawn(move || {
                        c.iter()
                            .map(|e| self.prepare(e, role, opts))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    }

    /// Drain a source: batches of up to `batch` messages, one flush per
    /// batch, ack after the flush. Stops early (after the message in hand)
    /// when `stop()` turns true.
    pub async fn drain<S: Source>(
        &self,
        src: &mut S,
        batch: usize,
        opts: IngestOptions,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<Report, PipelineError> {
        // Stages overlap: while batch N is parsed, triaged and committed on
        // worker threads, the source takes batch N-1 (already flushed) and
        // fetches batch N+1. A batch is acked only after its flush.
        let mut report = Report::default();
        let role = self.role_of(src.name());
        let mut flushed: Vec<Envelope> = Vec::new();
        let mut next = if stop() {
            None
        } else {
            Some(src.fetch(batch).await?)
        };
        while let Some(fetched) = next.take() {
            for (key, err) in &fetched.errors {
                tracing::warn!(source = src.name(), key = %key, error = %err, "cannot read message; left in source");
                report.errors.push(format!("{}: {key}: {err}", src.name()));
            }
            if fetched.envelopes.is_empty() {
                break;
            }
            let p = self.clone();
            let work = tokio::task::spawn_blocking(move || {
                let envs = fetched.envelopes;
                let prepared = p.prepare_all(&envs, role, opts);
                let results: Vec<Result<IngestOutcome, StoreError>> =
                    prepared.chunks(GROUP).flat_map(|g| p.commit(g)).collect();
                drop(prepared);
                (envs, results)
            });
            // Meanwhile: take the previous batch, then look for the next.
            if !flushed.is_empty() {
                src.ack(&flushed).await?;
                flushed.clear();
            }
            let fetch_next = if stop() {
                None
            } else {
                Some(src.fetch(batch).await)
            };
            let (envs, results) = work
                .await
                .map_err(|e| StoreError::Invalid(format!("ingest worker failed: {e}")))?;
            let mut taken = Vec::with_capacity(envs.len());
            for (env, r) in envs.into_iter().zip(results) {
                match r {
                    Ok(o) => {
                        report.add(&env.key, &o);
                        taken.push(env);
                    }
                    Err(e) => {
                        tracing::error!(source = src.name(), key = %env.key, error = %e, "cannot store message; left in source");
                        report
                            .errors
                            .push(format!("{}: {}: {e}", src.name(), env.key));
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
            flushed = taken;
            next = match fetch_next {
                Some(Ok(f)) => Some(f),
                Some(Err(e)) => {
                    // The committed batch is durable; it is taken next time.
                    return Err(e.into());
                }
                None => None,
            };
        }
        if !flushed.is_empty() {
            src.ack(&flushed).await?;
        }
        Ok(report)
    }
}

fn log_outcome(env: &Envelope, o: &IngestOutcome) {
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
