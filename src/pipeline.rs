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
use crate::render::{self, AckParts, Templates};
use crate::source::{Envelope, Source, SourceError};
use crate::store::{
    AlertRenderer, Case, CaseKind, IngestInput, IngestOutcome, NewMail, Store, StoreError,
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
    fn add(&mut self, key: &str, o: &IngestOutcome) {
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
        let rules = triage::Rules::with_overrides(&config.triage.rules)
            .map(Arc::new)
            .or_else(|_| triage::Rules::builtin())
            .unwrap_or_else(|_| Arc::new(triage::Rules::none()));
        Pipeline {
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
        to: &crate::mail::Addr,
        token: &str,
        now: chrono::DateTime<chrono::Utc>,
        in_reply_to: Option<&str>,
        references: &[String],
    ) -> Result<NewMail, String> {
        let from = match case.kind {
            CaseKind::Support => self.config.outbound.from_support.mailbox(),
            CaseKind::Privacy => self.config.outbound.from_privacy.mailbox(),
        };
        render::build_ack(
            &self.templates,
            case,
            &AckParts {
                from,
                to,
                domain: &self.config.domain,
                token,
                now,
                in_reply_to,
                references,
            },
        )
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

    /// Parse, triage and store one message (not yet durable: flush after).
    pub fn ingest(
        &self,
        env: &Envelope,
        role: Role,
        opts: IngestOptions,
    ) -> Result<IngestOutcome, StoreError> {
        let now = self.clock.now();
        let limit = usize::try_from(self.config.limits.triage_parse_bytes).unwrap_or(usize::MAX);
        let hash = mail::content_hash(&env.raw);
        let parsed = mail::parse(&env.raw, limit);
        let no_render = |_: &Case| -> Result<NewMail, String> { Err("not mail".into()) };
        let alert_token = render::token();
        let render_alert = |case: Option<&Case>| -> Result<NewMail, String> {
            self.oversize_alert(env, case, &alert_token, now)
        };
        let alert: Option<&AlertRenderer<'_>> =
            env.original_size.is_some().then_some(&render_alert);

        let outcome = match &parsed {
            Err(not_mail) => {
                let reason = format!("not a mail message: {not_mail}");
                let input = IngestInput {
                    source: &env.source,
                    source_key: &env.key,
                    received_at: env.received_at,
                    now,
                    actor: "ticketd",
                    raw: &env.raw,
                    max_stored_bytes: self.config.limits.max_stored_message_bytes,
                    original_size: env.original_size,
                    render_alert: alert,
                    message_id: None,
                    content_hash: &hash,
                    subject: "",
                    from: None,
                    warnings: &[],
                    thread: ThreadHint::default(),
                    decision: None,
                    fallback: None,
                    unparseable: Some(&reason),
                    reply_address: Err("not mail".into()),
                    render_ack: &no_render,
                    cursor: None,
                };
                self.store.ingest(&input)?
            }
            Ok(m) => {
                let ctx = self.triage_context(role);
                let decision = triage::triage(m, &ctx);
                let fallback: Option<Decision> =
                    (decision.kind == Kind::Reply).then(|| triage::triage_as_new(m, &ctx));
                let ack_to = render::ack_address(m, &self.own);
                let reply_address = if opts.no_ack {
                    Err("imported with --no-ack".to_string())
                } else {
                    ack_to
                        .as_ref()
                        .map(|a| a.address.clone())
                        .map_err(Clone::clone)
                };
                let token = render::token();
                let render_ack = |case: &Case| -> Result<NewMail, String> {
                    let to = ack_to.as_ref().map_err(Clone::clone)?;
                    self.build_ack(
                        case,
                        to,
                        &token,
                        now,
                        m.message_id.as_deref(),
                        &m.references,
                    )
                };
                let mut header_ids = m.in_reply_to.clone();
                header_ids.extend(m.references.iter().rev().cloned());
                let case_ref_from_header = header_ids
                    .iter()
                    .any(|id| triage::find_case_number(id).is_some());
                let input = IngestInput {
                    source: &env.source,
                    source_key: &env.key,
                    received_at: env.received_at,
                    now,
                    actor: "ticketd",
                    raw: &env.raw,
                    max_stored_bytes: self.config.limits.max_stored_message_bytes,
                    original_size: env.original_size,
                    render_alert: alert,
                    message_id: m.message_id.as_deref(),
                    content_hash: &hash,
                    subject: &m.subject,
                    from: m.from.as_ref(),
                    warnings: &m.warnings,
                    thread: ThreadHint {
                        header_ids,
                        case_ref: decision.case_ref.clone(),
                        case_ref_from_header,
                    },
                    decision: Some(&decision),
                    fallback: fallback.as_ref(),
                    unparseable: None,
                    reply_address,
                    render_ack: &render_ack,
                    cursor: None,
                };
                self.store.ingest(&input)?
            }
        };
        log_outcome(env, &outcome);
        Ok(outcome)
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
        let mut report = Report::default();
        let role = self.role_of(src.name());
        loop {
            if stop() {
                break;
            }
            let fetched = src.fetch(batch).await?;
            for (key, err) in &fetched.errors {
                tracing::warn!(source = src.name(), key = %key, error = %err, "cannot read message; left in source");
                report.errors.push(format!("{}: {key}: {err}", src.name()));
            }
            if fetched.envelopes.is_empty() {
                break;
            }
            let mut taken = Vec::with_capacity(fetched.envelopes.len());
            for env in fetched.envelopes {
                if stop() {
                    break;
                }
                match self.ingest(&env, role, opts) {
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
                // Where this source got to (IMAP will keep UIDVALIDITY/UID here).
                let cursor = serde_json::json!({ "last_key": last.key, "at": self.clock.now() });
                self.store
                    .set_cursor(src.name(), cursor.to_string().as_bytes())?;
            }
            self.store.flush().await?;
            crate::failpoint::hit("after_flush_before_ack");
            src.ack(&taken).await?;
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
