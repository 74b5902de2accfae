//! The records kept in the store. Values are JSON so that later versions can
//! add fields (`#[serde(default)]`) without rewriting old records.

use crate::mail::Addr;
use crate::policy::{Jurisdiction, Level, Right};
use crate::triage::Decision;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Support ticket or privacy request; decides the case number prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseKind {
    Support,
    Privacy,
}

impl CaseKind {
    pub fn prefix(self) -> &'static str {
        match self {
            CaseKind::Support => "SUP",
            CaseKind::Privacy => "PRV",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            CaseKind::Support => "support",
            CaseKind::Privacy => "privacy",
        }
    }
    pub fn from_case_id(id: &str) -> Option<CaseKind> {
        if id.starts_with("SUP-") {
            Some(CaseKind::Support)
        } else if id.starts_with("PRV-") {
            Some(CaseKind::Privacy)
        } else {
            None
        }
    }
}

impl std::str::FromStr for CaseKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "support" | "sup" | "ticket" => Ok(CaseKind::Support),
            "privacy" | "prv" => Ok(CaseKind::Privacy),
            _ => Err(format!("unknown case kind {s:?} (support or privacy)")),
        }
    }
}

/// Where a case stands. Later workflow states fit in here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    New,
    Open,
    Waiting,
    Resolved,
    Closed,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::New => "new",
            CaseStatus::Open => "open",
            CaseStatus::Waiting => "waiting",
            CaseStatus::Resolved => "resolved",
            CaseStatus::Closed => "closed",
        }
    }
}

impl std::str::FromStr for CaseStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "new" => Ok(CaseStatus::New),
            "open" => Ok(CaseStatus::Open),
            "waiting" => Ok(CaseStatus::Waiting),
            "resolved" => Ok(CaseStatus::Resolved),
            "closed" => Ok(CaseStatus::Closed),
            _ => Err(format!(
                "unknown status {s:?} (new, open, waiting, resolved, closed)"
            )),
        }
    }
}

impl fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// `SUP-000001`, `PRV-000001`.
    pub id: String,
    pub kind: CaseKind,
    pub status: CaseStatus,
    pub level: Option<Level>,
    #[serde(default)]
    pub rights: Vec<Right>,
    pub jurisdiction: Option<Jurisdiction>,
    pub subject: String,
    /// The sender of the first message (From).
    pub requester: Option<Addr>,
    /// Where acknowledgements go (Reply-To, else From), when allowed.
    pub reply_address: Option<String>,
    /// Mailbox (source name) the first message came through.
    pub mailbox: String,
    /// Receipt time of the first message: the server's arrival time.
    pub received_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub messages: Vec<u64>,
    #[serde(default)]
    pub outbox: Vec<u64>,
    /// Sequence number of the next event in this case's log.
    pub next_event: u64,
    /// Notes the system attached (e.g. "original too large to store").
    #[serde(default)]
    pub notes: Vec<String>,
    /// Due dates and what stopped them.
    #[serde(default)]
    pub clocks: CaseClocks,
    /// The customer agency the requester belongs to (by mail domain).
    #[serde(default)]
    pub agency: Option<String>,
    /// Set when triage was not sure ("low confidence: level 1 or 4?"):
    /// the 30-minute review looks here first. Cleared by a relevel or a
    /// review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doubt: Option<String>,
    /// Everyone on From/To/Cc of the case's messages (lower case, not our
    /// own addresses), and senders who joined with a valid token: the
    /// people a subject tag lets in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<String>,
    /// Who works the case (`#assign`, `cases assign`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// Cases linked to this one (a stranger's mail naming it, a reply to
    /// it after it was closed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// Message-ID of the requester's latest message (what a staff reply
    /// answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_requester_message_id: Option<String>,
    /// When the requester last wrote after opening the case (the digest
    /// lists these when follow-up notices are digest-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_wrote_at: Option<DateTime<Utc>>,
    /// The language triage detected in the first message (`en`, `de`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// A privacy request's own life (privacy cases only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacyState>,
}

/// Where a privacy request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrivacyStatus {
    Received,
    /// A one-time code went out; the requester's reply quoting it verifies.
    IdentityPending,
    Verified,
    InProgress,
    Extended,
    Completed,
    Denied,
    /// Sent on to the agency that controls the data.
    Forwarded,
}

impl PrivacyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PrivacyStatus::Received => "received",
            PrivacyStatus::IdentityPending => "identity_pending",
            PrivacyStatus::Verified => "verified",
            PrivacyStatus::InProgress => "in_progress",
            PrivacyStatus::Extended => "extended",
            PrivacyStatus::Completed => "completed",
            PrivacyStatus::Denied => "denied",
            PrivacyStatus::Forwarded => "forwarded",
        }
    }

    /// The request is answered one way or another.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            PrivacyStatus::Completed | PrivacyStatus::Denied | PrivacyStatus::Forwarded
        )
    }
}

impl fmt::Display for PrivacyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A privacy request's state beside the case status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivacyState {
    pub status: PrivacyStatus,
    /// A question that exercises no right: no statutory clock.
    #[serde(default)]
    pub inquiry: bool,
    /// Keyed hash of the one-time identity code (the code is never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_hash: Option<String>,
    /// Wrong codes, and right codes from another address, so far.
    #[serde(default)]
    pub code_attempts: u32,
    /// Since when identity is awaited (the clock may pause from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_since: Option<DateTime<Utc>>,
    /// How identity was established (or why it was not needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<DateTime<Utc>>,
    /// The statutory dates before a pause or an extension moved them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<crate::clock::PrivacyDates>,
    /// Days the clock stood still while identity was awaited.
    #[serde(default)]
    pub paused_days: i64,
    /// An agency the request names or points to (offered for forwarding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_agency: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_contact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency_acknowledged_at: Option<DateTime<Utc>>,
    /// The reasons given with an extension or a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The period was extended: the extended date is the one due.
    #[serde(default)]
    pub extended: bool,
}

impl PrivacyState {
    pub fn new(inquiry: bool) -> PrivacyState {
        PrivacyState {
            status: PrivacyStatus::Received,
            inquiry,
            code_hash: None,
            code_attempts: 0,
            identity_since: None,
            verified: None,
            verified_at: None,
            original: None,
            paused_days: 0,
            suggested_agency: None,
            forwarded_to: None,
            forward_contact: None,
            agency_acknowledged_at: None,
            reason: None,
            extended: false,
        }
    }
}

impl Case {
    /// Resolved or closed: no clock runs any more.
    pub fn is_done(&self) -> bool {
        matches!(self.status, CaseStatus::Resolved | CaseStatus::Closed)
    }

    /// Past its response target (support) or due date (privacy, a date in
    /// the calendar's zone: `today`) with no response, and not done.
    pub fn is_breached(&self, now: DateTime<Utc>, today: chrono::NaiveDate) -> bool {
        if self.is_done() || self.clocks.responded_at.is_some() {
            return false;
        }
        match (self.clocks.respond_by, &self.clocks.privacy) {
            (Some(t), _) => t < now,
            (None, Some(p)) => p.respond_by < today,
            _ => false,
        }
    }
}

/// A case's clocks: when things are due, and when staff acted. Timers in
/// the store's due index point here; a timer whose `plan` is older than
/// the case's (the case was re-levelled) is dropped when it comes due.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseClocks {
    /// Generation of the plan; bumped whenever the clocks are re-planned.
    #[serde(default)]
    pub plan: u32,
    /// Triage review due (support time after receipt).
    pub review_by: Option<DateTime<Utc>>,
    /// First response due (support cases).
    pub respond_by: Option<DateTime<Utc>>,
    /// When staff are warned that the target is near (levels 3–5).
    pub warn_at: Option<DateTime<Utc>>,
    /// The statutory clock that runs (privacy cases).
    pub regime: Option<crate::clock::Regime>,
    /// Statutory dates (privacy cases).
    pub privacy: Option<crate::clock::PrivacyDates>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub responded_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// When the response clock (re)started: the receipt time, or the
    /// arrival of the requester's reply that reopened the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
}

/// Which scheduled job works a timer queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Queue {
    /// Support escalations (the `escalate` job, every minute).
    Escalate,
    /// Privacy reminders and overdue escalations (`privacy_reminders`).
    Privacy,
}

impl Queue {
    pub fn byte(self) -> u8 {
        match self {
            Queue::Escalate => b'e',
            Queue::Privacy => b'p',
        }
    }
}

/// What a timer does when it comes due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum TimerKind {
    /// The triage review is overdue: tell the support lead (in hours).
    ReviewMissed,
    /// Level 1: page developers and staff again (any hour) until resolved.
    Page { n: u32 },
    /// Level 2: escalate to whoever is on call (in hours).
    OnCall,
    /// Levels 3–5: warn staff that the target is near (in hours).
    Warn,
    /// The first-response target passed: tell the support lead (in hours).
    Breach,
    /// Remind the privacy officer of a due date `days_before` days ahead.
    PrivacyReminder {
        date: chrono::NaiveDate,
        days_before: u32,
    },
    /// A privacy due date has passed: escalate daily until resolved.
    PrivacyOverdue { date: chrono::NaiveDate },
    /// A case resolved this long ago is closed.
    AutoClose,
    /// A forwarded privacy request the agency has not acknowledged.
    ForwardUnacknowledged,
}

impl TimerKind {
    pub fn name(&self) -> &'static str {
        match self {
            TimerKind::ReviewMissed => "review_missed",
            TimerKind::Page { .. } => "page",
            TimerKind::OnCall => "on_call",
            TimerKind::Warn => "warning",
            TimerKind::Breach => "breach",
            TimerKind::PrivacyReminder { .. } => "privacy_reminder",
            TimerKind::PrivacyOverdue { .. } => "privacy_overdue",
            TimerKind::AutoClose => "auto_close",
            TimerKind::ForwardUnacknowledged => "forward_unacknowledged",
        }
    }

    pub fn queue(&self) -> Queue {
        match self {
            TimerKind::PrivacyReminder { .. }
            | TimerKind::PrivacyOverdue { .. }
            | TimerKind::ForwardUnacknowledged => Queue::Privacy,
            _ => Queue::Escalate,
        }
    }
}

/// An entry of the due index: at `due`, do `kind` for `case`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    pub case: String,
    pub due: DateTime<Utc>,
    /// The case's clock plan this timer belongs to.
    pub plan: u32,
    #[serde(flatten)]
    pub kind: TimerKind,
}

impl Timer {
    /// The index key: queue byte, due time (ms, big-endian, so keys sort by
    /// time), case id, kind — unique per case and kind at one instant.
    pub fn key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(1 + 8 + self.case.len() + 20);
        k.push(self.kind.queue().byte());
        let ms = u64::try_from(self.due.timestamp_millis().max(0)).unwrap_or(0);
        k.extend_from_slice(&ms.to_be_bytes());
        k.extend_from_slice(self.case.as_bytes());
        k.push(0);
        k.extend_from_slice(self.kind.name().as_bytes());
        k
    }
}

/// How a stored message relates to cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Disposition {
    /// Opened this case.
    NewCase { case: String },
    /// Joined this existing case as a follow-up.
    FollowUp { case: String },
    /// Joined this existing case as a staff message.
    Staff { case: String },
    /// Set aside by triage or unparseable; see the ignored record.
    Ignored { ignored: u64 },
}

impl Disposition {
    /// The case this message opened or joined.
    pub fn case(&self) -> Option<&str> {
        match self {
            Disposition::NewCase { case }
            | Disposition::FollowUp { case }
            | Disposition::Staff { case } => Some(case),
            Disposition::Ignored { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: u64,
    /// Source (mailbox name, or `import`).
    pub source: String,
    /// Where the original is in its source (Maildir file name, path, UID).
    pub source_key: String,
    pub received_at: DateTime<Utc>,
    pub size: u64,
    /// The raw bytes are in the `raw` tree (false when over the size limit).
    pub raw_stored: bool,
    pub message_id: Option<String>,
    pub content_hash: String,
    pub subject: String,
    pub from: Option<Addr>,
    pub disposition: Disposition,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One entry in a case's append-only event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// `ticketd` for the system, `cli:<user>` or a staff address later.
    pub actor: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    Received {
        message: u64,
        source: String,
    },
    Triaged {
        decision: Decision,
        /// The clocks the new case was given (one event, not two, per case).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clocks: Option<CaseClocks>,
    },
    FollowUp {
        message: u64,
        matched_by: String,
    },
    AckQueued {
        outbox: u64,
    },
    AckSkipped {
        reason: String,
    },
    MailSent {
        outbox: u64,
        delivered_as: String,
    },
    MailFailed {
        outbox: u64,
        error: String,
        permanent: bool,
    },
    StatusChanged {
        from: CaseStatus,
        to: CaseStatus,
    },
    Promoted {
        ignored: u64,
    },
    AlertQueued {
        outbox: u64,
        reason: String,
    },
    RateLimited {
        outbox: u64,
        recipient: String,
    },
    Note {
        text: String,
    },
    /// Due dates set or re-planned.
    ClocksSet {
        clocks: CaseClocks,
    },
    /// A notification, page, reminder or escalation went to the outbox.
    NotificationQueued {
        outbox: u64,
        kind: String,
        recipients: usize,
    },
    /// A notification that could not be sent (nobody configured, ...).
    NotificationSkipped {
        kind: String,
        reason: String,
    },
    /// Staff finished the triage review.
    Reviewed,
    /// Staff gave the first response (by other means than ticketd's mail).
    Responded {
        note: Option<String>,
    },
    Resolved,
    /// Level changed by staff; the clocks were re-planned.
    Releveled {
        from: Option<Level>,
        to: Level,
        reason: String,
    },
    /// A message from staff joined the case. `response`: it reached the
    /// requester (the first response when none was given yet); `relayed`:
    /// ticketd sends it on to the requester (a `reply` notification).
    StaffMessage {
        message: u64,
        response: bool,
        #[serde(default)]
        relayed: bool,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        commands: Vec<String>,
    },
    /// A sender who was not a party joined with one of our valid tokens.
    ParticipantAdded {
        address: String,
        message: u64,
    },
    /// Linked to another case (both get the event).
    Linked {
        case: String,
        why: String,
    },
    /// A resolved case came back to life.
    Reopened {
        why: String,
    },
    Assigned {
        from: Option<String>,
        to: String,
    },
    Closed {
        why: String,
    },
    /// A mail command from staff refused: nothing of that message applied.
    CommandRefused {
        message: u64,
        error: String,
    },
    /// A privacy request moved on (`received` → `identity_pending` → …).
    PrivacyStatusChanged {
        from: PrivacyStatus,
        to: PrivacyStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Identity established: by the code, another method, or not needed.
    IdentityVerified {
        method: String,
    },
    /// A code that did not verify (wrong, or from another address).
    CodeRejected {
        attempts: u32,
        why: String,
    },
    /// The statutory dates moved (pause while identity was awaited, an
    /// extension).
    DatesMoved {
        why: String,
        respond_by: chrono::NaiveDate,
    },
    /// Forwarded to the agency that controls the data.
    Forwarded {
        agency: String,
        contact: String,
    },
    /// The agency acknowledged a forwarded request.
    AgencyAcknowledged {
        message: u64,
    },
    /// A queued notification no longer wanted (the case was resolved or
    /// answered before it went): not sent.
    NotificationDropped {
        outbox: u64,
        kind: String,
        reason: String,
    },
    /// Personal data removed (an erasure, or the retention job): how many
    /// messages lost their raw mail and outbox entries their bodies.
    DataRemoved {
        why: String,
        messages: usize,
        outbox: usize,
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Received { .. } => "received",
            EventKind::Triaged { .. } => "triaged",
            EventKind::FollowUp { .. } => "follow_up",
            EventKind::AckQueued { .. } => "ack_queued",
            EventKind::AckSkipped { .. } => "ack_skipped",
            EventKind::MailSent { .. } => "mail_sent",
            EventKind::MailFailed { .. } => "mail_failed",
            EventKind::StatusChanged { .. } => "status_changed",
            EventKind::Promoted { .. } => "promoted",
            EventKind::AlertQueued { .. } => "alert_queued",
            EventKind::RateLimited { .. } => "rate_limited",
            EventKind::Note { .. } => "note",
            EventKind::ClocksSet { .. } => "clocks_set",
            EventKind::NotificationQueued { .. } => "notification_queued",
            EventKind::NotificationSkipped { .. } => "notification_skipped",
            EventKind::Reviewed => "reviewed",
            EventKind::Responded { .. } => "responded",
            EventKind::Resolved => "resolved",
            EventKind::Releveled { .. } => "releveled",
            EventKind::StaffMessage { .. } => "staff_message",
            EventKind::ParticipantAdded { .. } => "participant_added",
            EventKind::Linked { .. } => "linked",
            EventKind::Reopened { .. } => "reopened",
            EventKind::Assigned { .. } => "assigned",
            EventKind::Closed { .. } => "closed",
            EventKind::CommandRefused { .. } => "command_refused",
            EventKind::NotificationDropped { .. } => "notification_dropped",
            EventKind::PrivacyStatusChanged { .. } => "privacy_status",
            EventKind::IdentityVerified { .. } => "identity_verified",
            EventKind::CodeRejected { .. } => "code_rejected",
            EventKind::DatesMoved { .. } => "dates_moved",
            EventKind::Forwarded { .. } => "forwarded",
            EventKind::AgencyAcknowledged { .. } => "agency_acknowledged",
            EventKind::DataRemoved { .. } => "data_removed",
        }
    }
}

/// A message triage set aside (or that could not be parsed). Listed for
/// staff, who can promote it to a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IgnoredRecord {
    pub id: u64,
    pub message: u64,
    pub source: String,
    pub received_at: DateTime<Utc>,
    pub from: Option<Addr>,
    pub subject: String,
    /// Short category: "auto-reply", "bounce", "unparseable", ...
    pub category: String,
    pub reasons: Vec<String>,
    pub promoted_to: Option<String>,
    /// The case the message names (a read receipt of our mail, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
}

/// Why a mail is in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Acknowledgement to a requester (rate-limited per recipient later).
    Ack,
    /// Mail to our own staff (never rate-limited).
    StaffNotice,
    /// Notice to an agency's site administrators who opted in (not
    /// rate-limited: they asked for every case).
    AgencyNotice,
    /// Staff's answer to the requester (`cases reply`, or a staff mail
    /// relayed): written by a person, never rate-limited or suppressed.
    Reply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    Queued,
    Sending,
    Sent,
    Failed,
    /// Not sent: the per-recipient rate limit for automatic mail was hit.
    Suppressed,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Queued => "queued",
            OutboxState::Sending => "sending",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
            OutboxState::Suppressed => "suppressed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: u64,
    pub case: Option<String>,
    pub purpose: Purpose,
    pub from: String,
    pub recipients: Vec<String>,
    /// Fixed when queued, so a resend after a crash is recognisable.
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub subject: String,
    pub state: OutboxState,
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    /// Where the transport put it (file path, SMTP queue id).
    pub delivered_as: Option<String>,
    /// The complete RFC 5322 message, built once at queue time.
    pub mail: String,
    /// The notification kind (`page`, `breach`, ...), checked against the
    /// case just before sending: a notice no longer wanted is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// A new outgoing mail, before it has an outbox id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMail {
    pub purpose: Purpose,
    pub from: String,
    pub recipients: Vec<String>,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub subject: String,
    pub mail: String,
}

/// A staff correction of triage, kept as a labelled example
/// ([`crate::store::Store::corrections`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correction {
    pub case: String,
    /// The case's first message (its raw mail is the example).
    pub message: u64,
    pub kind: CaseKind,
    /// The level staff settled on (support cases).
    pub level: Option<Level>,
    /// What staff did, for the training report.
    pub what: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}
