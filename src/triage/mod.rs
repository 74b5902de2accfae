//! Triage: a parsed message plus context in, a [`Decision`] with its reasons
//! out. Pure: no I/O, no clock, no store.
//!
//! Precedence when several decisions apply: ignore (machine-generated or our
//! own mail) > reply > privacy > ticket. Every decision carries the signals
//! that fired, so staff can see why and correct the rules.
//!
//! Layout: [`hygiene`] finds mail that must never be answered; [`text`]
//! isolates the requester's own words (no quotes, no signatures);
//! [`support`] picks a level; [`privacy`] finds rights and jurisdiction;
//! [`rules`] holds the phrase tables (data, overridable from config);
//! [`language`] and [`auth`] fill in the language and the sender
//! authentication verdict.

pub mod auth;
pub mod hygiene;
pub mod language;
pub mod privacy;
pub mod rules;
pub mod support;
pub mod text;

pub use rules::Rules;

use crate::config::Role;
use crate::mail::ParsedMail;
use crate::policy::{Jurisdiction, Level, Right};
use serde::{Deserialize, Serialize};

/// What triage decided the message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Ticket,
    Privacy,
    Reply,
    Ignore,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ticket => "ticket",
            Kind::Privacy => "privacy",
            Kind::Reply => "reply",
            Kind::Ignore => "ignore",
        }
    }
}

/// Verdict of the sender authentication (DMARC/DKIM/SPF) added by our
/// trusted server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    Pass,
    Fail,
    None,
}

/// The outcome of triage. Serialises as the `ticketd classify` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub kind: Kind,
    /// Set only for `ticket`.
    pub level: Option<Level>,
    /// Set only for `privacy`.
    pub rights: Option<Vec<Right>>,
    /// Set only for `privacy`.
    pub jurisdiction: Option<Jurisdiction>,
    /// Set only for `reply`: the case our ids or the subject tag name.
    pub case_ref: Option<String>,
    pub language: Option<String>,
    pub auth: Auth,
    /// True exactly when a new case would be acknowledged.
    pub ack: bool,
    pub reasons: Vec<String>,
}

/// What triage may know besides the message itself.
#[derive(Debug, Clone)]
pub struct TriageContext<'a> {
    /// Role of the mailbox the message arrived in.
    pub role: Role,
    /// Our own addresses (mailboxes and senders), lower case.
    pub own_addresses: &'a [String],
    /// Domain of our outgoing Message-IDs.
    pub own_domain: &'a str,
    pub block_senders: &'a [String],
    pub allow_automated: &'a [String],
    pub receive_lists: &'a [String],
    /// authserv-id of our own server's `Authentication-Results` header.
    pub trusted_authserv_id: Option<&'a str>,
    pub rules: &'a Rules,
}

/// Decide what a message is. See the module docs for the precedence.
pub fn triage(mail: &ParsedMail, ctx: &TriageContext<'_>) -> Decision {
    decide(mail, ctx, true)
}

/// Decide as if the message opened a new case, ignoring reply signals (used
/// when a reply names no case we can join). Hygiene still applies.
pub fn triage_as_new(mail: &ParsedMail, ctx: &TriageContext<'_>) -> Decision {
    decide(mail, ctx, false)
}

fn decide(mail: &ParsedMail, ctx: &TriageContext<'_>, replies: bool) -> Decision {
    let mut reasons = Vec::new();
    let mut d = Decision {
        kind: Kind::Ignore,
        level: None,
        rights: None,
        jurisdiction: None,
        case_ref: None,
        language: None,
        auth: Auth::None,
        ack: false,
        reasons: Vec::new(),
    };
    if let Some(ignore) = hygiene::check(mail, ctx, &mut reasons) {
        reasons.push(format!("ignored: {ignore}"));
        d.reasons = reasons;
        return d;
    }
    d.auth = auth::verdict(mail, ctx.trusted_authserv_id, &mut reasons);
    let own = text::own_words(&mail.text);
    d.language = if own.trim().len() >= 60 {
        language::detect(&own)
    } else {
        language::detect(&format!("{}\n{}", mail.subject, own))
    };
    if replies {
        if let Some(case_ref) = reply_ref(mail, &mut reasons) {
            d.kind = Kind::Reply;
            d.case_ref = Some(case_ref);
            d.reasons = reasons;
            return d;
        }
    }
    let parts = rules::scan_parts(
        ctx.rules,
        &[("subject", mail.subject.as_str()), ("body", own.as_str())],
    );
    if let Some((rights, jurisdiction)) = privacy::detect(&parts, ctx.role, &mut reasons) {
        // A privacy letter that also reports a problem stays privacy.
        let mut support_reasons = Vec::new();
        if let Some(l) = support::level(mail, &parts, &mut support_reasons) {
            if l <= 3 {
                reasons.push(format!("also reports a support concern (level {l})"));
            }
        }
        d.kind = Kind::Privacy;
        d.rights = Some(rights);
        d.jurisdiction = Some(jurisdiction);
    } else {
        let level = support::level(mail, &parts, &mut reasons).unwrap_or_else(|| {
            reasons.push("no level signal; default level 4".into());
            4
        });
        d.kind = Kind::Ticket;
        d.level = Some(level);
    }
    d.ack = d.auth != Auth::Fail;
    if d.auth == Auth::Fail {
        reasons.push("sender authentication failed: no acknowledgement".into());
    }
    d.reasons = reasons;
    d
}

/// A case number (`SUP-000123`, `PRV-000042`) embedded in a string.
pub fn find_case_number(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 10 <= b.len() {
        let p = &b[i..i + 4];
        if (p.eq_ignore_ascii_case(b"SUP-") || p.eq_ignore_ascii_case(b"PRV-"))
            && b[i + 4..i + 10].iter().all(u8::is_ascii_digit)
            && (i + 10 == b.len() || !b[i + 10].is_ascii_digit())
        {
            let prefix = std::str::from_utf8(p)
                .unwrap_or("SUP-")
                .to_ascii_uppercase();
            let digits = std::str::from_utf8(&b[i + 4..i + 10]).unwrap_or("000000");
            return Some(format!("{prefix}{digits}"));
        }
        i += 1;
    }
    None
}

/// The case a follow-up names: our ids in In-Reply-To, then References
/// (newest first), then a `[SUP-000123]` tag in the subject.
fn reply_ref(mail: &ParsedMail, reasons: &mut Vec<String>) -> Option<String> {
    for id in &mail.in_reply_to {
        if let Some(c) = find_case_number(id) {
            reasons.push(format!("In-Reply-To names our message for {c}"));
            return Some(c);
        }
    }
    for id in mail.references.iter().rev() {
        if let Some(c) = find_case_number(id) {
            reasons.push(format!("References names our message for {c}"));
            return Some(c);
        }
    }
    if let Some(c) = subject_tag(&mail.subject) {
        reasons.push(format!("subject carries case tag [{c}]"));
        return Some(c);
    }
    None
}

/// A bracketed case tag in a subject: `[SUP-000123]`.
pub fn subject_tag(subject: &str) -> Option<String> {
    let mut rest = subject;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        if let Some(close) = after.find(']') {
            let inner = after[..close].trim();
            if inner.len() == 10 {
                if let Some(c) = find_case_number(inner) {
                    return Some(c);
                }
            }
            rest = &after[close..];
        } else {
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn ctx() -> TriageContext<'static> {
        static OWN: &[String] = &[];
        static RULES: std::sync::OnceLock<std::sync::Arc<Rules>> = std::sync::OnceLock::new();
        TriageContext {
            role: Role::Support,
            own_addresses: OWN,
            own_domain: "casehost.example",
            block_senders: OWN,
            allow_automated: OWN,
            receive_lists: OWN,
            trusted_authserv_id: None,
            rules: RULES.get_or_init(|| Rules::builtin().expect("built-in rules")),
        }
    }

    fn mail(raw: &str) -> ParsedMail {
        crate::mail::parse(raw.as_bytes(), 1 << 20).expect("test mail parses")
    }

    #[test]
    fn case_numbers_in_ids_and_tags() {
        assert_eq!(
            find_case_number("ack.SUP-000123.k3j4@casehost.example").as_deref(),
            Some("SUP-000123")
        );
        assert_eq!(find_case_number("SUP-0001234"), None);
        assert_eq!(
            subject_tag("Re: [PRV-000042] my data").as_deref(),
            Some("PRV-000042")
        );
        assert_eq!(subject_tag("Re: [SUP-12] x"), None);
    }

    #[test]
    fn precedence_ignore_over_reply() {
        let m = mail("From: a@x.example\r\nAuto-Submitted: auto-replied\r\nIn-Reply-To: <ack.SUP-000001.x@casehost.example>\r\nSubject: Re: [SUP-000001]\r\n\r\nAway\r\n");
        let d = triage(&m, &ctx());
        assert_eq!(d.kind, Kind::Ignore);
        assert!(!d.ack);
    }

    #[test]
    fn reply_prefers_in_reply_to_then_newest_reference() {
        let m = mail("From: a@x.example\r\nReferences: <ack.SUP-000001.a@c> <ack.SUP-000002.b@c>\r\nSubject: Re: [SUP-000003]\r\n\r\nthanks\r\n");
        let d = triage(&m, &ctx());
        assert_eq!(d.kind, Kind::Reply);
        assert_eq!(d.case_ref.as_deref(), Some("SUP-000002"));
    }

    #[test]
    fn privacy_beats_ticket_and_keeps_support_reason() {
        let m = mail("From: a@x.example\r\nSubject: data\r\n\r\nUnder GDPR I request access to my personal data. Also the site is down.\r\n");
        let d = triage(&m, &ctx());
        assert_eq!(d.kind, Kind::Privacy);
        assert_eq!(d.rights, Some(vec![Right::Access]));
        assert!(
            d.reasons.iter().any(|r| r.contains("support concern")),
            "{:?}",
            d.reasons
        );
    }

    #[test]
    fn plain_problem_is_a_ticket_with_reasons() {
        let m = mail("From: a@x.example\r\nSubject: report\r\n\r\nWhen I export the report I get Error 500.\r\n");
        let d = triage(&m, &ctx());
        assert_eq!(d.kind, Kind::Ticket);
        assert_eq!(d.level, Some(3));
        assert!(d.ack);
        assert!(!d.reasons.is_empty());
    }
}
