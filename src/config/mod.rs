//! Configuration: raw TOML → validated [`Config`].
//!
//! Two stages, as in ripgrep: serde reads the file into the raw structs below
//! (unknown keys are refused, typed values are checked as they are read), then
//! [`Config::from_toml`] checks what spans several keys and resolves paths.
//! Every error names the file, the line and the key. Each section's builder
//! pushes all of its errors into an [`Errors`] collector and the next one
//! runs regardless (`unknown.rs` does the same for unknown keys and bad
//! values while reading): [`Config::check`] gives them all, `from_toml` the
//! first. Secrets never live in
//! the file itself: they are named by `*_env` (an environment variable) or
//! `*_file` (a file holding the secret) and resolved with [`resolve_secret`].
//!
//! Not for: reading secrets at load time (sources resolve them when they
//! connect), or holding runtime state.

pub mod check;
pub mod clocks;
mod errors;
mod mail;
pub mod monitoring;
pub mod people;
pub mod privacy;
pub mod retention;
mod unknown;
pub mod workflow;

pub use clocks::{Clocks, Job, JobName};
pub use monitoring::{Alerts, Http, LogFormat};
pub use people::{agency_for, Agency, Notify, OnCall, People};
pub use privacy::{Disclosure, PrivacyWorkflow, Recipient};
pub use retention::Retention;
pub use workflow::{FollowUpNotice, Threading, Workflow};

pub use errors::Errors;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The configuration the binary uses when no `--config` is given: a demo
/// Maildir under `./ticketd-data`, acknowledgements written as files.
pub const EMBEDDED_DEFAULT: &str = include_str!("../default.toml");

/// The name our mail signs with when `[outbound] brand` is not set.
pub const DEFAULT_BRAND: &str = "CaseHost";

/// A configuration error that names where it happened.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: key `{key}`: {message}\n  {line} | {text}")]
    At {
        file: String,
        line: usize,
        column: usize,
        key: String,
        message: String,
        text: String,
    },
    #[error("{file}: {message}")]
    General { file: String, message: String },
}

/// Role of a mailbox: sets the acknowledgement template and which case kind a
/// borderline message leans to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Support,
    Privacy,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Support => "support",
            Role::Privacy => "privacy",
        })
    }
}

/// Which kind of source feeds a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A local Maildir (`new/`, `cur/`, `tmp/`).
    Maildir,
    /// An IMAP mailbox (IDLE where the server has it, else polling).
    Imap,
}

/// How a connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Implicit,
    /// Plain connection upgraded with STARTTLS before authenticating.
    Starttls,
    /// No TLS: refused unless the host is a loopback address.
    None,
}

/// How we authenticate to a mail server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// No authentication (SMTP only).
    None,
    /// Username and password (`password_env` / `password_file`).
    Password,
    /// OAuth 2.0 access token (Google Workspace, Microsoft 365):
    /// `token_command` or `token_file`.
    Xoauth2,
}

/// Outgoing mail transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// One `.eml` file per outbox entry in a directory.
    File,
    /// An SMTP server (lettre, pooled connections).
    Smtp,
}

/// An e-mail address checked when the config is read (`user@domain`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<lettre::Address>()
            .map(|a| EmailAddress(a.to_string().to_ascii_lowercase()))
            .map_err(|e| serde::de::Error::custom(format!("not an e-mail address {s:?}: {e}")))
    }
}

/// A display name plus address (`"CaseHost Support <support@casehost.example>"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedAddress {
    text: String,
    mailbox: lettre::message::Mailbox,
}

impl NamedAddress {
    pub fn mailbox(&self) -> &lettre::message::Mailbox {
        &self.mailbox
    }
    /// The bare address, lower-cased.
    pub fn address(&self) -> String {
        self.mailbox.email.to_string().to_ascii_lowercase()
    }
}

impl Serialize for NamedAddress {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for NamedAddress {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<lettre::message::Mailbox>()
            .map(|mailbox| NamedAddress {
                text: s.clone(),
                mailbox,
            })
            .map_err(|e| serde::de::Error::custom(format!("not a mailbox {s:?}: {e}")))
    }
}

/// A size in bytes: an integer, or a string such as `"25MB"`, `"2 MiB"`, `"512KB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("not a size {s:?} (write e.g. 25MB)"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" | "k" => 1_000,
            "kib" => 1 << 10,
            "mb" | "m" => 1_000_000,
            "mib" => 1 << 20,
            "gb" | "g" => 1_000_000_000,
            "gib" => 1 << 30,
            other => return Err(format!("unknown size unit {other:?} in {s:?}")),
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size {s:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// A duration written as `"2s"`, `"500ms"`, `"5m"`, `"3days"` (humantime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!("not a duration {s:?}: {e} (write e.g. \"2s\")"))
            })
    }
}

// ---------------------------------------------------------------- raw file

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: toml::Spanned<String>,
    domain: Option<String>,
    templates_dir: Option<String>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    mailboxes: Vec<mail::RawMailbox>,
    outbound: mail::RawOutbound,
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    triage: RawTriage,
    #[serde(default)]
    people: people::RawPeople,
    #[serde(default)]
    calendar: clocks::RawCalendar,
    #[serde(default)]
    targets: clocks::RawTargets,
    #[serde(default)]
    privacy: clocks::RawPrivacy,
    #[serde(default)]
    schedule: clocks::RawSchedule,
    #[serde(default)]
    notify: people::RawNotify,
    #[serde(default)]
    agencies: Vec<people::RawAgency>,
    #[serde(default)]
    workflow: workflow::RawWorkflow,
    #[serde(default)]
    threading: workflow::RawThreading,
    #[serde(default)]
    retention: retention::RawRetention,
    #[serde(default)]
    log_format: LogFormat,
    #[serde(default)]
    http: monitoring::RawHttp,
    #[serde(default)]
    alerts: monitoring::RawAlerts,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_stored_message_bytes: Option<ByteSize>,
    triage_parse_bytes: Option<toml::Spanned<ByteSize>>,
    quarantine_after: Option<u32>,
    late_parent_window: Option<HumanDuration>,
    in_flight_messages: Option<toml::Spanned<usize>>,
    in_flight_bytes: Option<toml::Spanned<ByteSize>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    cache_capacity: Option<toml::Spanned<ByteSize>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    poll_interval: Option<HumanDuration>,
    batch_size: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTriage {
    #[serde(default)]
    block_senders: Vec<String>,
    #[serde(default)]
    allow_automated: Vec<String>,
    #[serde(default)]
    receive_lists: Vec<String>,
    trusted_authserv_id: Option<String>,
    /// A triage model file written by `ticketd triage train` (default: the
    /// model compiled into the binary).
    model: Option<toml::Spanned<String>>,
    #[serde(default)]
    rules: crate::triage::rules::RuleFile,
}

// ---------------------------------------------------------- validated config

/// The validated configuration. Paths are absolute.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Where this configuration came from (a path, or `<embedded default>`).
    pub origin: String,
    pub data_dir: PathBuf,
    /// Domain used in the Message-IDs of outgoing mail.
    pub domain: String,
    pub templates_dir: Option<PathBuf>,
    pub limits: Limits,
    /// The store's own settings (`[store]`).
    pub store: StoreSettings,
    pub mailboxes: Vec<Mailbox>,
    pub outbound: Outbound,
    pub daemon: DaemonSettings,
    pub triage: TriageSettings,
    pub people: People,
    /// Business calendar, support targets, privacy clock settings.
    pub clocks: Clocks,
    /// Scheduled jobs (escalate, digest, privacy_reminders, retention).
    pub schedule: Vec<Job>,
    pub notify: Notify,
    pub agencies: Vec<Agency>,
    /// Statuses by mail: auto-close, replies to closed cases, follow-ups.
    pub workflow: Workflow,
    /// The secret that signs our Message-IDs (see `workflow::token`).
    pub threading: Threading,
    /// How privacy requests are worked (identity, pauses, forwarding, the
    /// access answer's disclosure).
    pub privacy: PrivacyWorkflow,
    /// How long personal data no longer needed is kept (`retention` job).
    pub retention: Retention,
    /// `log_format`: text or JSON lines.
    pub log_format: LogFormat,
    /// `[http]`: the health and metrics endpoint (none unless configured).
    pub http: Option<Http>,
    /// `[alerts]`: operator alert thresholds.
    pub alerts: Alerts,
}

#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    pub max_stored_message_bytes: u64,
    pub triage_parse_bytes: u64,
    /// A message that fails this many times in a row (a bug met in parse,
    /// triage, rendering or its transaction) is recorded as an error,
    /// alerted on and moved aside to the mailbox's quarantine.
    pub quarantine_after: u32,
    /// A message naming a parent not yet seen waits this long for it: a
    /// parent arriving within it is linked to the thread (mail servers
    /// redeliver out of order after an outage).
    pub late_parent_window: HumanDuration,
    /// Ingest holds at most this many messages taken from a source and not
    /// yet committed (a drain's batches together).
    pub in_flight_messages: usize,
    /// ... and at most this many bytes of their raw mail (a batch is cut
    /// short when the next message would pass it; one message always goes).
    pub in_flight_bytes: u64,
}

/// `[store]`: the embedded database.
#[derive(Debug, Clone, Serialize)]
pub struct StoreSettings {
    /// Bytes of sled's page cache (sled's own default is 1 GiB).
    pub cache_capacity: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mailbox {
    pub name: String,
    pub role: Role,
    pub address: EmailAddress,
    pub source: SourceKind,
    /// Maildir directory (Maildir sources only; empty otherwise).
    pub path: PathBuf,
    pub demo_seed: bool,
    /// Connection and behaviour of an IMAP source.
    pub imap: Option<ImapSettings>,
}

/// Where a secret or token comes from (never the config file itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credentials {
    None,
    Password {
        username: String,
        secret: SecretRef,
    },
    Xoauth2 {
        username: String,
        token_command: Option<String>,
        token_file: Option<PathBuf>,
    },
}

/// A server endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// Extra CA certificates (PEM) for a private CA; the public web roots
    /// are used when absent.
    pub ca_file: Option<PathBuf>,
    pub credentials: Credentials,
    pub timeout: HumanDuration,
}

/// What happens to a message on the server once it is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum AfterTake {
    /// Move it to this folder (created when missing).
    Move(String),
    /// Set \Seen and this keyword.
    Flag(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct ImapSettings {
    pub endpoint: Endpoint,
    pub folder: String,
    pub after: AfterTake,
    /// Where a message that keeps failing is moved (created when missing);
    /// flagged with `$TicketdQuarantine` (and taken) on servers without
    /// MOVE or UIDPLUS.
    pub quarantine: String,
    /// Use IDLE when the server offers it.
    pub idle: bool,
    /// Polling interval when there is no IDLE.
    pub poll_interval: HumanDuration,
    /// A reconciliation search runs at least this often, IDLE or not.
    pub reconcile_interval: HumanDuration,
    /// Larger messages are not fetched whole: their case records the size
    /// and an alert goes to `people.alerts_to`.
    pub max_message_bytes: u64,
    pub fetch_batch: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outbound {
    pub from_support: NamedAddress,
    pub from_privacy: NamedAddress,
    pub transport: TransportKind,
    pub dir: PathBuf,
    /// The SMTP server (transport = "smtp").
    pub smtp: Option<Endpoint>,
    pub pool_size: u32,
    /// Transient failures are retried until an entry is this old.
    pub max_age: HumanDuration,
    /// First wait after a transient failure; it doubles up to one hour.
    pub retry_initial: HumanDuration,
    /// Automatic mail to one requester address per hour (staff mail is
    /// never limited).
    pub rate_limit_per_hour: u32,
    /// The name our mail signs with (`brand` in every template).
    pub brand: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DaemonSettings {
    pub poll_interval: HumanDuration,
    pub batch_size: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TriageSettings {
    /// Senders (addresses, or `@domain`) whose mail is always set aside.
    pub block_senders: Vec<String>,
    /// Trusted automated senders never ignored for being automated.
    pub allow_automated: Vec<String>,
    /// List-Ids our own mailboxes receive through (not treated as list traffic).
    pub receive_lists: Vec<String>,
    /// authserv-id of the `Authentication-Results` header our own server adds.
    pub trusted_authserv_id: Option<String>,
    /// Rule overrides merged over the built-in triage rules.
    pub rules: crate::triage::rules::RuleFile,
    /// The built-in rules with `rules` merged, compiled once at load.
    #[serde(skip)]
    pub compiled: std::sync::Arc<crate::triage::Rules>,
    /// `[triage] model`: the model file in use (`None`: the built-in one).
    pub model_file: Option<PathBuf>,
    /// The learned scorer, loaded once.
    #[serde(skip)]
    pub model: std::sync::Arc<crate::triage::Model>,
    /// Every agency's mail domains, lower case (mail from them that passes
    /// authentication is never set aside as spam by content alone).
    pub agency_domains: Vec<String>,
}

impl Config {
    /// Load a config file, or the embedded default when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            None => {
                let cwd = std::env::current_dir().map_err(|e| ConfigError::Read {
                    file: "<embedded default>".into(),
                    source: e,
                })?;
                Config::from_toml(EMBEDDED_DEFAULT, "<embedded default>", &cwd)
            }
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                    file: p.display().to_string(),
                    source: e,
                })?;
                let base = p
                    .parent()
                    .map(|d| {
                        if d.as_os_str().is_empty() {
                            Path::new(".")
                        } else {
                            d
                        }
                    })
                    .unwrap_or(Path::new("."));
                let base = std::path::absolute(base).map_err(|e| ConfigError::Read {
                    file: p.display().to_string(),
                    source: e,
                })?;
                Config::from_toml(&text, &p.display().to_string(), &base)
            }
        }
    }

    /// Parse and validate TOML text. Relative paths are resolved against
    /// `base` (the config file's directory); a mailbox `path` and the outbound
    /// `dir` are resolved against `data_dir`. The first error is returned;
    /// [`Config::check`] gives them all.
    pub fn from_toml(text: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
        let mut errs = Errors::default();
        let config = Config::validate(text, file, base, &mut errs);
        errs.finish(config, file)
    }

    /// Every error of the text (`check-config`), and the config when there
    /// were none.
    pub fn check(text: &str, file: &str, base: &Path) -> (Option<Config>, Vec<ConfigError>) {
        let mut errs = Errors::default();
        let config = Config::validate(text, file, base, &mut errs);
        let errs = errs.into_vec();
        (config.filter(|_| errs.is_empty()), errs)
    }

    /// Every section built, each pushing all of its errors into `errs`.
    fn validate(text: &str, file: &str, base: &Path, errs: &mut Errors) -> Option<Config> {
        let raw = unknown::parse_raw(text, file, errs)?;
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, column, key, text_line) = locate(text, Some(span));
            ConfigError::At {
                file: file.to_string(),
                line,
                column,
                key,
                message,
                text: text_line,
            }
        };
        let data_dir = build_data_dir(&raw.data_dir, base, &at, errs);
        let domain = build_domain(raw.domain, &raw.outbound.from_support);
        let mailboxes = mail::build_mailboxes(raw.mailboxes, &data_dir, base, &at, errs);
        let limits = build_limits(raw.limits, &at, errs);
        let store = build_store(raw.store, &at, errs);
        let outbound = mail::build_outbound(raw.outbound, &data_dir, base, &at, errs);
        let daemon = build_daemon(raw.daemon);
        let privacy = errs.take(privacy::build_privacy(&raw.privacy));
        let clocks = errs.take(clocks::build_clocks(
            raw.calendar,
            raw.targets,
            raw.privacy,
            &at,
        ));
        let schedule = errs.take(clocks::build_schedule(raw.schedule, &at));
        let people = errs.take(people::build_people(raw.people, &at));
        let notify = errs.take(people::build_notify(raw.notify, &at));
        let agencies = errs.take(people::build_agencies(raw.agencies, &at));
        let workflow = errs.take(workflow::build_workflow(raw.workflow, &at));
        let threading = errs.take(workflow::build_threading(raw.threading, base, file, &at));
        let retention = errs.take(retention::build_retention(raw.retention, &at));
        let http = errs.take(monitoring::build_http(raw.http, &at));
        let alerts = errs.take(monitoring::build_alerts(raw.alerts, &at));
        let triage = build_triage(raw.triage, agencies.as_deref(), base, file, &at, errs);
        Some(Config {
            origin: file.to_string(),
            templates_dir: raw.templates_dir.map(|t| base.join(t)),
            limits,
            store,
            mailboxes,
            outbound: outbound?,
            people: people?,
            clocks: clocks?,
            schedule: schedule?,
            notify: notify?,
            agencies: agencies?,
            workflow: workflow?,
            threading: threading?,
            privacy: privacy?,
            retention: retention?,
            log_format: raw.log_format,
            http: http?,
            alerts: alerts?,
            daemon,
            triage: triage?,
            domain,
            data_dir,
        })
    }

    /// Every address that is ours: mailbox addresses and sender addresses.
    /// Mail is never acknowledged to these (no loops with ourselves).
    pub fn own_addresses(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .mailboxes
            .iter()
            .map(|m| m.address.as_str().to_string())
            .collect();
        v.push(self.outbound.from_support.address());
        v.push(self.outbound.from_privacy.address());
        v.sort();
        v.dedup();
        v
    }

    /// Settings that work but deserve the operator's attention (printed
    /// by `check-config` and logged at start).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let p = &self.people;
        let staff_known = !p.staff_senders.is_empty()
            || !p.staff.is_empty()
            || !p.developers.is_empty()
            || !p.support_lead.is_empty()
            || !p.privacy_officer.is_empty();
        if staff_known && self.triage.trusted_authserv_id.is_none() {
            w.push("staff mail cannot be authenticated: set triage.trusted_authserv_id to your receiving server's Authentication-Results id, or anyone can send mail commands in a staff member's name".to_string());
        }
        w
    }

    pub fn mailbox(&self, name: &str) -> Option<&Mailbox> {
        self.mailboxes.iter().find(|m| m.name == name)
    }

    /// The resolved settings as TOML, for `check-config`.
    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

type AtFn<'a> = dyn Fn(std::ops::Range<usize>, String) -> ConfigError + 'a;

/// `data_dir`, resolved against `base` (an empty one is an error).
fn build_data_dir(
    raw: &toml::Spanned<String>,
    base: &Path,
    at: &AtFn<'_>,
    errs: &mut Errors,
) -> PathBuf {
    if raw.get_ref().trim().is_empty() {
        errs.push(at(raw.span(), "data_dir must not be empty".into()));
    }
    base.join(raw.get_ref())
}

/// `domain`, or the domain of `[outbound] from_support`.
fn build_domain(raw: Option<String>, from_support: &NamedAddress) -> String {
    match raw {
        Some(d) if !d.trim().is_empty() => d.trim().to_ascii_lowercase(),
        _ => from_support
            .address()
            .rsplit('@')
            .next()
            .unwrap_or("localhost")
            .to_string(),
    }
}

/// `[limits]`, with its defaults; every limit out of range is an error.
fn build_limits(raw: RawLimits, at: &AtFn<'_>, errs: &mut Errors) -> Limits {
    if let Some(b) = &raw.triage_parse_bytes {
        if b.get_ref().0 < 4096 {
            errs.push(at(
                b.span(),
                "limits.triage_parse_bytes must be at least 4096".into(),
            ));
        }
    }
    Limits {
        max_stored_message_bytes: raw
            .max_stored_message_bytes
            .map(|b| b.0)
            .unwrap_or(25 * 1024 * 1024),
        triage_parse_bytes: raw
            .triage_parse_bytes
            .map(|b| b.into_inner().0)
            .unwrap_or(2 * 1024 * 1024),
        quarantine_after: raw.quarantine_after.unwrap_or(3).max(1),
        late_parent_window: raw
            .late_parent_window
            .unwrap_or(HumanDuration(Duration::from_secs(7 * 24 * 3600))),
        in_flight_messages: at_least_one(
            raw.in_flight_messages,
            "limits.in_flight_messages",
            at,
            errs,
        )
        .unwrap_or(1000),
        in_flight_bytes: at_least_one(
            raw.in_flight_bytes
                .map(|b| toml::Spanned::new(b.span(), b.into_inner().0)),
            "limits.in_flight_bytes",
            at,
            errs,
        )
        .unwrap_or(64 * 1024 * 1024),
    }
}

/// A count that must be at least 1 (an error otherwise, then the default).
fn at_least_one<T: PartialOrd + From<u8> + Copy>(
    v: Option<toml::Spanned<T>>,
    key: &str,
    at: &AtFn<'_>,
    errs: &mut Errors,
) -> Option<T> {
    let v = v?;
    if *v.get_ref() < T::from(1) {
        errs.push(at(v.span(), format!("{key} must be at least 1")));
        return None;
    }
    Some(*v.get_ref())
}

/// `[store]`: sled's page cache, at least 1 MiB.
fn build_store(raw: RawStore, at: &AtFn<'_>, errs: &mut Errors) -> StoreSettings {
    let cache_capacity = match &raw.cache_capacity {
        Some(c) if c.get_ref().0 < 1024 * 1024 => {
            errs.push(at(
                c.span(),
                "store.cache_capacity must be at least 1MiB".into(),
            ));
            crate::store::DEFAULT_CACHE_CAPACITY
        }
        Some(c) => c.get_ref().0,
        None => crate::store::DEFAULT_CACHE_CAPACITY,
    };
    StoreSettings { cache_capacity }
}

/// `[daemon]`, with its defaults (nothing here can be wrong).
fn build_daemon(raw: RawDaemon) -> DaemonSettings {
    DaemonSettings {
        poll_interval: raw
            .poll_interval
            .unwrap_or(HumanDuration(Duration::from_secs(2))),
        batch_size: raw.batch_size.unwrap_or(200).clamp(1, 10_000),
    }
}

/// `[triage]`: the rule overrides compiled and the model loaded (both
/// checked, each error kept). `agencies` is `None` when `[[agencies]]` was
/// wrong (then no agency domain is known).
fn build_triage(
    raw: RawTriage,
    agencies: Option<&[Agency]>,
    base: &Path,
    file: &str,
    at: &AtFn<'_>,
    errs: &mut Errors,
) -> Option<TriageSettings> {
    let general = |message: String| ConfigError::General {
        file: file.into(),
        message,
    };
    let compiled = crate::triage::Rules::with_overrides(&raw.rules)
        .map(std::sync::Arc::new)
        .map_err(|e| general(format!("[triage.rules]: {e}")));
    let compiled = errs.take(compiled);
    let model_file = raw.model.as_ref().map(|m| base.join(m.get_ref()));
    let model = crate::triage::model::load(model_file.as_deref()).map_err(|e| {
        let message = format!("[triage] model: {e}");
        match &raw.model {
            Some(m) => at(m.span(), message),
            None => general(message),
        }
    });
    let model = errs.take(model);
    let agency_domains = agencies
        .unwrap_or_default()
        .iter()
        .flat_map(|a| a.domains.iter().cloned())
        .collect();
    Some(TriageSettings {
        block_senders: lower(raw.block_senders),
        allow_automated: lower(raw.allow_automated),
        receive_lists: lower(raw.receive_lists),
        trusted_authserv_id: raw
            .trusted_authserv_id
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty()),
        rules: raw.rules,
        compiled: compiled?,
        model_file,
        model: model?,
        agency_domains,
    })
}

fn lower(v: Vec<String>) -> Vec<String> {
    v.into_iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

/// Line (1-based), column (1-based), key name and line text for a byte span.
fn locate(text: &str, span: Option<std::ops::Range<usize>>) -> (usize, usize, String, String) {
    let start = span.map(|s| s.start).unwrap_or(0).min(text.len());
    let before = &text[..floor_char_boundary(text, start)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before.len() - line_start + 1;
    let line_text = text[line_start..].lines().next().unwrap_or("").to_string();
    let key = line_text
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| line_text.trim().to_string());
    (line, column, key, line_text)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Where a secret comes from: an environment variable or a file. The value
/// itself never appears in the config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SecretRef {
    pub env: Option<String>,
    pub file: Option<PathBuf>,
}

/// Resolve a secret named by `*_env` / `*_file`. Exactly one must be given.
/// A trailing newline in a secret file is not part of the secret.
pub fn resolve_secret(what: &str, secret: &SecretRef) -> Result<String, String> {
    match (&secret.env, &secret.file) {
        (Some(_), Some(_)) => Err(format!("{what}: give either *_env or *_file, not both")),
        (None, None) => Err(format!("{what}: no secret configured (*_env or *_file)")),
        (Some(var), None) => {
            std::env::var(var).map_err(|_| format!("{what}: environment variable {var} is not set"))
        }
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| format!("{what}: cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, "test.toml", Path::new("/base"))
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = parse(EMBEDDED_DEFAULT).expect("embedded default parses");
        assert_eq!(c.mailboxes.len(), 1);
        assert_eq!(c.limits.max_stored_message_bytes, 25 * 1024 * 1024);
        assert!(c
            .own_addresses()
            .contains(&"support@casehost.example".to_string()));
    }

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../../config.example.toml");
        let c = parse(text).expect("config.example.toml parses");
        assert!(!c.mailboxes.is_empty());
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = EMBEDDED_DEFAULT.replace("batch_size", "bacth_size");
        let err = parse(&text).expect_err("typo is an error").to_string();
        assert!(err.starts_with("test.toml:"), "{err}");
        assert!(err.contains("bacth_size"), "{err}");
        let line = text
            .lines()
            .position(|l| l.contains("bacth_size"))
            .map(|i| i + 1)
            .unwrap_or(0);
        assert!(err.contains(&format!("test.toml:{line}:")), "{err}");
    }

    #[test]
    fn bad_value_names_the_key() {
        let text = EMBEDDED_DEFAULT.replace(
            "address = \"support@casehost.example\"",
            "address = \"support-at-casehost\"",
        );
        let err = parse(&text).expect_err("bad address").to_string();
        assert!(err.contains("key `address`"), "{err}");
        let text = EMBEDDED_DEFAULT.replace("role = \"support\"", "role = \"suport\"");
        let err = parse(&text).expect_err("bad role").to_string();
        assert!(
            err.contains("key `role`") && err.contains("suport"),
            "{err}"
        );
    }

    #[test]
    fn plain_password_is_refused() {
        let text = format!("{EMBEDDED_DEFAULT}\n[extra]\npassword = \"hunter2\"\n");
        assert!(parse(&text).is_err());
    }

    fn imap_config(extra: &str) -> String {
        format!(
            "data_dir = \"d\"\n[[mailboxes]]\nname = \"support\"\nrole = \"support\"\naddress = \"support@casehost.example\"\nsource = \"imap\"\nhost = \"imap.casehost.example\"\n{extra}\n[outbound]\nfrom_support = \"S <support@casehost.example>\"\nfrom_privacy = \"P <privacy@casehost.example>\"\ntransport = \"file\"\n"
        )
    }

    #[test]
    fn imap_mailbox_defaults_and_checks() {
        let c = parse(&imap_config("password_env = \"PW\"")).expect("valid");
        let imap = c.mailboxes[0].imap.as_ref().expect("imap settings");
        assert_eq!(
            (imap.endpoint.port, imap.endpoint.tls),
            (993, TlsMode::Implicit)
        );
        assert_eq!(imap.folder, "INBOX");
        assert_eq!(imap.after, AfterTake::Move("Processed".into()));
        let err = parse(&imap_config("password_env = \"PW\"\ntls = \"none\""))
            .expect_err("plaintext to a remote host");
        assert!(err.to_string().contains("loopback"), "{err}");
        assert!(parse(&imap_config(
            "password_env = \"PW\"\ntls = \"none\"\nport = 143"
        ))
        .is_err());
        let loopback = imap_config("password_env = \"PW\"\ntls = \"none\"")
            .replace("imap.casehost.example", "127.0.0.1");
        assert!(parse(&loopback).is_ok());
        let err = parse(&imap_config("password = \"hunter2\"")).expect_err("secrets never inline");
        assert!(err.to_string().contains("password"), "{err}");
        assert!(
            parse(&imap_config("")).is_err(),
            "a password source is required"
        );
        assert!(
            parse(&imap_config("auth = \"xoauth2\"")).is_err(),
            "a token source is required"
        );
        let c = parse(&imap_config(
            "auth = \"xoauth2\"\ntoken_command = \"get-token\"\nflag = true",
        ))
        .expect("valid");
        let imap = c.mailboxes[0].imap.as_ref().expect("imap");
        assert_eq!(imap.after, AfterTake::Flag("$TicketdTaken".into()));
        assert!(parse(&imap_config(
            "password_env = \"PW\"\nflag = true\nmove = \"Done\""
        ))
        .is_err());
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(ByteSize::parse("25MB"), Ok(ByteSize(25_000_000)));
        assert_eq!(ByteSize::parse("2 MiB"), Ok(ByteSize(2 << 20)));
        assert_eq!(ByteSize::parse("100"), Ok(ByteSize(100)));
        assert!(ByteSize::parse("12 parsecs").is_err());
        assert!(ByteSize::parse("").is_err());
    }

    #[test]
    fn secrets_from_env_or_file_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("s");
        std::fs::write(&f, "s3cret\n").expect("write");
        let r = resolve_secret(
            "smtp",
            &SecretRef {
                env: None,
                file: Some(f.clone()),
            },
        );
        assert_eq!(r, Ok("s3cret".to_string()));
        assert!(resolve_secret(
            "smtp",
            &SecretRef {
                env: Some("X".into()),
                file: Some(f)
            }
        )
        .is_err());
        assert!(resolve_secret("smtp", &SecretRef::default()).is_err());
    }

    #[test]
    fn clock_sections_are_checked_with_file_line_and_key() {
        let cases = [
            (
                "[calendar]\ntime_zone = \"Mars/Olympus\"\n",
                "time_zone",
                "unknown time zone",
            ),
            (
                "[calendar]\nopens = \"19:30\"\ncloses = \"07:30\"\n",
                "closes",
                "must be after",
            ),
            (
                "[calendar]\nworking_days = []\n",
                "working_days",
                "at least one working day",
            ),
            (
                "[targets]\nlevel_3 = \"soon\"\n",
                "level_3",
                "not a duration",
            ),
            (
                "[schedule]\ndigest = \"0 8 * * *\"\n",
                "digest",
                "not a cron expression",
            ),
            (
                "[notify]\nwarn_at_percent = 100\n",
                "warn_at_percent",
                "between 1 and 99",
            ),
            (
                "[people.on_call]\nrotation = []\nhandover = \"2026-01-05T07:30\"\n",
                "rotation",
                "at least one person",
            ),
            (
                "[[agencies]]\nname = \"A\"\ndomains = []\n",
                "name",
                "at least one mail domain",
            ),
        ];
        for (section, key, message) in cases {
            let text = format!(
                "data_dir = \"d\"\n[outbound]\nfrom_support = \"s@x.example\"\nfrom_privacy = \"p@x.example\"\ntransport = \"file\"\n{section}"
            );
            let err = match parse(&text) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{section} should be refused"),
            };
            assert!(
                err.contains(&format!("key `{key}`")) && err.contains(message),
                "{section}: {err}"
            );
        }
        let c = parse(EMBEDDED_DEFAULT).expect("default");
        assert_eq!(c.schedule.len(), 4);
        assert_eq!(c.clocks.targets.seconds[4], 60 * 3600);
        assert!(c.people.on_call.is_some());
    }
}

#[cfg(test)]
mod every_error_tests {
    use super::*;

    /// `(line, key, fragment)` for every `# expect: A; B` of a fixture.
    fn expected(text: &str) -> Vec<(usize, String, String)> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let Some((code, want)) = line.split_once("# expect: ") else {
                continue;
            };
            let key = code.split_once('=').map_or("", |(k, _)| k.trim());
            for fragment in want.split("; ") {
                out.push((i + 1, key.to_string(), fragment.trim().to_string()));
            }
        }
        out
    }

    #[test]
    fn every_error_of_a_file_is_reported_with_its_line_and_key() {
        let text = include_str!("../../fixtures/config/every_error.toml");
        let want = expected(text);
        assert!(want.len() >= 10, "{want:#?}");
        let (config, errs) = Config::check(text, "t.toml", Path::new("/base"));
        assert!(config.is_none());
        let got: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        for (line, key, fragment) in &want {
            let hit = got.iter().any(|e| {
                e.starts_with(&format!("t.toml:{line}:"))
                    && e.contains(&format!("key `{key}`"))
                    && e.contains(fragment.as_str())
            });
            assert!(hit, "line {line} key {key}: {fragment:?} not in {got:#?}");
        }
        assert_eq!(got.len(), want.len(), "{got:#?}");
        // The daemon's one Result: the first of them.
        let first = match Config::from_toml(text, "t.toml", Path::new("/base")) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("the fixture is refused"),
        };
        assert_eq!(Some(&first), got.first());
    }

    #[test]
    fn bad_values_are_all_reported_and_then_nothing_else() {
        let text = EMBEDDED_DEFAULT
            .replace("role = \"support\"", "role = \"suport\"")
            .replace("batch_size", "bacth_size")
            .replace("[outbound]\n", "[outbound]\npool_size = \"four\"\n")
            .replace("[limits]\n", "[limits]\nlate_parent_window = \"soon\"\n");
        let text = format!("{text}\n[calendar]\nworking_days = []\n");
        let keys = |text: &str| -> Vec<String> {
            let (config, errs) = Config::check(text, "t.toml", Path::new("/base"));
            assert!(config.is_none());
            errs.iter()
                .map(|e| match e {
                    ConfigError::At { key, .. } => key.clone(),
                    other => other.to_string(),
                })
                .collect()
        };
        // `role` is required: once it is cut out, nothing after it can be
        // read. The rest of the file is read with a good role; no
        // validation error (the empty working days) after a bad value.
        assert_eq!(keys(&text), ["late_parent_window", "role"]);
        let text = text.replace("role = \"suport\"", "role = \"support\"");
        assert_eq!(
            keys(&text),
            ["late_parent_window", "pool_size", "bacth_size"]
        );
    }

    #[test]
    fn unknown_tables_and_keys_after_them_are_all_reported() {
        let text = format!(
            "{EMBEDDED_DEFAULT}\n[extra]\npassword = \"hunter2\"\nlist = [\n  1,\n  2,\n]\n\n[retention]\nkeep = 1\n"
        );
        let (_, errs) = Config::check(&text, "t.toml", Path::new("/base"));
        let got: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].contains("extra"), "{got:#?}");
        assert!(got[1].contains("key `keep`"), "{got:#?}");
    }
}
