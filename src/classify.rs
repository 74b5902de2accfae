//! `ticketd classify`: triage of raw message files with no store, in the
//! stable JSON shape other tools depend on (one object per file, in input
//! order). Pure apart from what the caller reads.

use crate::config::{Config, Role};
use crate::mail::{self, ParsedMail};
use crate::policy::{Jurisdiction, Level, Right};
use crate::triage::{self, Auth, Confidence, Kind, Rules, TriageContext};
use serde::{Deserialize, Serialize};

/// One line of `ticketd classify --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classified {
    pub file: String,
    pub kind: Option<Kind>,
    pub level: Option<Level>,
    pub rights: Option<Vec<Right>>,
    pub jurisdiction: Option<Jurisdiction>,
    pub case_ref: Option<String>,
    pub language: Option<String>,
    pub auth: Auth,
    pub ack: bool,
    pub reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Set only for `ignore`: which kind of mail was set aside (`spam`,
    /// `bounce`, `receipt`, `calendar`, `autoreply`, `list`, `machine`,
    /// `own`, `blocked`).
    #[serde(default)]
    pub hygiene: Option<String>,
    /// `high`, `medium` or `low` (see `triage::Confidence`).
    #[serde(default)]
    pub confidence: Confidence,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence_score: Option<f32>,
    /// When confidence is not high: the next most likely decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_up: Option<String>,
    /// The mailbox role triage assumed (`support` or `privacy`); absent
    /// when the file is not a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<String>,
}

/// The role a message arrived under: `--mailbox` if given, else the role of
/// the configured mailbox whose address is among the recipients (To, Cc,
/// Delivered-To, X-Original-To), else support.
pub fn role_for(mail: &ParsedMail, config: &Config, forced: Option<Role>) -> Role {
    if let Some(r) = forced {
        return r;
    }
    let mut recipients: Vec<String> = mail
        .to
        .iter()
        .chain(mail.cc.iter())
        .map(|a| a.address.clone())
        .collect();
    for (n, v) in &mail.headers {
        if n == "delivered-to" || n == "x-original-to" {
            recipients.push(mail::clean_id(v).to_ascii_lowercase());
        }
    }
    // Delivered-To names the mailbox that really received it; prefer it.
    for r in recipients.iter().rev() {
        if let Some(m) = config.mailboxes.iter().find(|m| m.address.as_str() == r) {
            return m.role;
        }
    }
    Role::Support
}

/// Classifies many messages with one configuration (own addresses and
/// rules prepared once).
pub struct Classifier<'c> {
    config: &'c Config,
    rules: &'c Rules,
    own: Vec<String>,
}

impl<'c> Classifier<'c> {
    pub fn new(config: &'c Config, rules: &'c Rules) -> Self {
        Classifier {
            config,
            rules,
            own: config.own_addresses(),
        }
    }

    /// The triage context for mail that arrived under `role`.
    pub fn context(&self, role: Role) -> TriageContext<'_> {
        let config = self.config;
        TriageContext {
            role,
            own_addresses: &self.own,
            own_domain: &config.domain,
            block_senders: &config.triage.block_senders,
            allow_automated: &config.triage.allow_automated,
            receive_lists: &config.triage.receive_lists,
            trusted_authserv_id: config.triage.trusted_authserv_id.as_deref(),
            rules: self.rules,
            agency_domains: &config.triage.agency_domains,
            model: &config.triage.model,
        }
    }

    /// Classify one raw message.
    pub fn classify(&self, file: &str, raw: &[u8], forced: Option<Role>) -> Classified {
        let config = self.config;
        let limit = usize::try_from(config.limits.triage_parse_bytes).unwrap_or(usize::MAX);
        match mail::parse(raw, limit) {
            Err(e) => Classified {
                file: file.to_string(),
                kind: None,
                level: None,
                rights: None,
                jurisdiction: None,
                case_ref: None,
                language: None,
                auth: Auth::None,
                ack: false,
                reasons: Vec::new(),
                error: Some(format!("not a mail message: {e}")),
                hygiene: None,
                confidence: Confidence::High,
                confidence_score: None,
                runner_up: None,
                mailbox: None,
            },
            Ok(m) => {
                let role = role_for(&m, config, forced);
                let ctx = self.context(role);
                let d = triage::triage(&m, &ctx);
                Classified {
                    file: file.to_string(),
                    kind: Some(d.kind),
                    level: d.level,
                    rights: d.rights,
                    jurisdiction: d.jurisdiction,
                    case_ref: d.case_ref,
                    language: d.language,
                    auth: d.auth,
                    ack: d.ack && matches!(d.kind, Kind::Ticket | Kind::Privacy),
                    reasons: d.reasons,
                    error: None,
                    hygiene: d.hygiene,
                    confidence: d.confidence,
                    confidence_score: d.confidence_score,
                    runner_up: d.runner_up,
                    mailbox: Some(
                        match role {
                            Role::Support => "support",
                            Role::Privacy => "privacy",
                        }
                        .to_string(),
                    ),
                }
            }
        }
    }
}

/// Classify one raw message (see [`Classifier`] for many).
pub fn classify(
    file: &str,
    raw: &[u8],
    config: &Config,
    rules: &Rules,
    forced: Option<Role>,
) -> Classified {
    Classifier::new(config, rules).classify(file, raw, forced)
}
