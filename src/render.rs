//! Acknowledgements: templates (minijinja; built in, overridable from the
//! configured directory) and the building of the outgoing RFC 5322 message
//! with lettre. Pure apart from reading override files when the renderer is
//! built.
//!
//! Every outgoing message gets a stable Message-ID that embeds the case
//! number (`<ack.SUP-000123.RANDOM@DOMAIN>`), `In-Reply-To`/`References` to
//! the message it answers, `Auto-Submitted: auto-replied`, and a subject
//! carrying the case tag `[SUP-000123]`.

use crate::mail::{Addr, ParsedMail};
use crate::policy;
use crate::store::{Case, CaseKind, NewMail, Purpose};
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use std::path::Path;

/// Built-in templates: (name, text). Acknowledgements come in English
/// (`ack_*.txt`) and in German, French and Spanish (`ack_*.LANG.txt`);
/// staff notifications start with a `Subject:` line.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "notify_forward_unacknowledged.txt",
        include_str!("../templates/notify_forward_unacknowledged.txt"),
    ),
    (
        "privacy_forward_agency.txt",
        include_str!("../templates/privacy_forward_agency.txt"),
    ),
    (
        "privacy_forwarded.txt",
        include_str!("../templates/privacy_forwarded.txt"),
    ),
    (
        "privacy_extended.txt",
        include_str!("../templates/privacy_extended.txt"),
    ),
    (
        "privacy_denied.txt",
        include_str!("../templates/privacy_denied.txt"),
    ),
    (
        "privacy_completed.txt",
        include_str!("../templates/privacy_completed.txt"),
    ),
    (
        "privacy_completed.de.txt",
        include_str!("../templates/privacy_completed.de.txt"),
    ),
    (
        "notify_follow_up.txt",
        include_str!("../templates/notify_follow_up.txt"),
    ),
    (
        "notify_reopened.txt",
        include_str!("../templates/notify_reopened.txt"),
    ),
    (
        "notify_command_error.txt",
        include_str!("../templates/notify_command_error.txt"),
    ),
    (
        "ack_support.txt",
        include_str!("../templates/ack_support.txt"),
    ),
    (
        "ack_support.de.txt",
        include_str!("../templates/ack_support.de.txt"),
    ),
    (
        "ack_support.fr.txt",
        include_str!("../templates/ack_support.fr.txt"),
    ),
    (
        "ack_support.es.txt",
        include_str!("../templates/ack_support.es.txt"),
    ),
    (
        "ack_privacy.txt",
        include_str!("../templates/ack_privacy.txt"),
    ),
    (
        "ack_privacy.de.txt",
        include_str!("../templates/ack_privacy.de.txt"),
    ),
    (
        "ack_privacy.fr.txt",
        include_str!("../templates/ack_privacy.fr.txt"),
    ),
    (
        "ack_privacy.es.txt",
        include_str!("../templates/ack_privacy.es.txt"),
    ),
    (
        "notify_new_case.txt",
        include_str!("../templates/notify_new_case.txt"),
    ),
    (
        "notify_agency.txt",
        include_str!("../templates/notify_agency.txt"),
    ),
    (
        "notify_page.txt",
        include_str!("../templates/notify_page.txt"),
    ),
    (
        "notify_on_call.txt",
        include_str!("../templates/notify_on_call.txt"),
    ),
    (
        "notify_warning.txt",
        include_str!("../templates/notify_warning.txt"),
    ),
    (
        "notify_breach.txt",
        include_str!("../templates/notify_breach.txt"),
    ),
    (
        "notify_review_missed.txt",
        include_str!("../templates/notify_review_missed.txt"),
    ),
    (
        "notify_privacy_new.txt",
        include_str!("../templates/notify_privacy_new.txt"),
    ),
    (
        "notify_privacy_reminder.txt",
        include_str!("../templates/notify_privacy_reminder.txt"),
    ),
    (
        "notify_privacy_overdue.txt",
        include_str!("../templates/notify_privacy_overdue.txt"),
    ),
    ("digest.txt", include_str!("../templates/digest.txt")),
];

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {name}: {source}")]
    Template {
        name: String,
        #[source]
        source: minijinja::Error,
    },
    #[error("cannot read template override {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Compiled templates.
pub struct Templates {
    env: minijinja::Environment<'static>,
}

impl Templates {
    /// Built-in templates, each replaced by `dir/NAME` when that file exists.
    pub fn load(dir: Option<&Path>) -> Result<Templates, RenderError> {
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        for (name, builtin) in BUILTIN {
            let text = match dir.map(|d| d.join(name)) {
                Some(p) if p.is_file() => {
                    std::fs::read_to_string(&p).map_err(|e| RenderError::Read {
                        path: p.display().to_string(),
                        source: e,
                    })?
                }
                _ => builtin.to_string(),
            };
            env.add_template_owned(*name, text)
                .map_err(|e| RenderError::Template {
                    name: name.to_string(),
                    source: e,
                })?;
        }
        env.add_global("brand", crate::config::DEFAULT_BRAND);
        Ok(Templates { env })
    }

    /// The templates a configuration names (`templates_dir`), signing with
    /// its `[outbound] brand`.
    pub fn for_config(config: &crate::config::Config) -> Result<Templates, RenderError> {
        let mut t = Templates::load(config.templates_dir.as_deref())?;
        t.set_brand(&config.outbound.brand);
        Ok(t)
    }

    /// The name every template sees as `brand` (a global, so it is in every
    /// template's context: acknowledgements, notices, the digest).
    pub fn set_brand(&mut self, brand: &str) {
        self.env.add_global("brand", brand.to_string());
    }

    /// Render the acknowledgement body for a new case, in `extras.language`
    /// when a template for it exists (English otherwise).
    pub fn ack_body(
        &self,
        case: &Case,
        requester_name: Option<&str>,
        extras: &AckExtras,
    ) -> Result<String, RenderError> {
        let base = match case.kind {
            CaseKind::Support => "ack_support",
            CaseKind::Privacy => "ack_privacy",
        };
        let lang = extras.language;
        let localized = format!("{base}.{lang}.txt");
        let name = if lang != "en" && self.env.get_template(&localized).is_ok() {
            localized
        } else {
            format!("{base}.txt")
        };
        let level = case.level.unwrap_or(4);
        let rights: Vec<_> = case
            .rights
            .iter()
            .map(|r| minijinja::context! { name => r.as_str(), description => crate::notify::text::right_description(lang, *r) })
            .collect();
        let ctx = minijinja::context! {
            case_id => case.id,
            kind => case.kind.as_str(),
            level => level,
            level_meaning => crate::notify::text::level_meaning(lang, level),
            target => extras.target.clone().unwrap_or_else(|| policy::target_phrase(level)),
            respond_by_text => extras.respond_by_text,
            overdue => extras.overdue,
            hours_text => extras.hours_text,
            due_text => extras.due_text,
            extended_text => extras.extended_text,
            extension_by => extras.extension_by,
            agency => extras.agency,
            site_admins => extras.site_admins,
            identity_code => extras.identity_code,
            inquiry => extras.inquiry,
            review_text => extras.review_text,
            rights => rights,
            jurisdiction => case.jurisdiction.map(|j| j.as_str()),
            answer_phrase => case.jurisdiction.unwrap_or(policy::Jurisdiction::Unknown).answer_phrase(),
            requester_name => requester_name.map(|n| header_safe(n, NAME_MAX)).filter(|n| !n.is_empty()),
            original_subject => if case.subject.trim().is_empty() { "(no subject)".to_string() } else { header_safe(&case.subject, SUBJECT_MAX) },
        };
        self.render_body(&name, ctx)
    }

    /// Render `name` (`x.txt`) as `x.LANG.txt` when that template exists.
    pub fn render_localized(
        &self,
        name: &str,
        lang: &str,
        ctx: minijinja::Value,
    ) -> Result<String, RenderError> {
        let local = name.replacen(".txt", &format!(".{lang}.txt"), 1);
        if lang != "en" && self.env.get_template(&local).is_ok() {
            return self.render_body(&local, ctx);
        }
        self.render_body(name, ctx)
    }

    fn render_body(&self, name: &str, ctx: minijinja::Value) -> Result<String, RenderError> {
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|e| RenderError::Template {
                name: name.into(),
                source: e,
            })?;
        tmpl.render(ctx).map_err(|e| RenderError::Template {
            name: name.into(),
            source: e,
        })
    }

    /// Render a notification template: its first line `Subject: ...` gives
    /// the subject, the rest (after one blank line) the body.
    pub fn render_notice(
        &self,
        name: &str,
        ctx: minijinja::Value,
    ) -> Result<(String, String), RenderError> {
        let text = self.render_body(name, ctx)?;
        let (first, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        match first.strip_prefix("Subject:") {
            Some(subj) => Ok((
                subj.trim().to_string(),
                rest.strip_prefix('\n').unwrap_or(rest).to_string(),
            )),
            None => Ok((format!("[ticketd] {name}"), text.clone())),
        }
    }
}

/// What an acknowledgement says besides the case itself: due dates in the
/// reader's words, the agency's site administrators (computed by `notify`).
#[derive(Debug, Clone, Default)]
pub struct AckExtras {
    /// `en`, `de`, `fr` or `es`.
    pub language: &'static str,
    /// The support target as a phrase ("1 hour").
    pub target: Option<String>,
    /// "Friday, Nov 27, 8:00 a.m. ET".
    pub respond_by_text: Option<String>,
    pub hours_text: Option<String>,
    /// Privacy due date in words.
    pub due_text: Option<String>,
    pub extended_text: Option<String>,
    /// "by two further months" (GDPR) or "by up to 45 further days" (CCPA).
    pub extension_by: Option<String>,
    pub agency: Option<String>,
    /// The first-response time has already passed (downtime, late mail):
    /// the acknowledgement says so instead of naming a past time.
    pub overdue: bool,
    /// Named when the requester is not one of them.
    pub site_admins: Vec<String>,
    /// A privacy request's one-time identity code (only ever in the
    /// acknowledgement; the case keeps its keyed hash).
    pub identity_code: Option<String>,
    /// A privacy question that exercises no right (no statutory clock).
    pub inquiry: bool,
    /// When staff will have looked at the case ("Friday, ... ET").
    pub review_text: Option<String>,
}

/// Where an acknowledgement may go: `Reply-To` if present, else `From`;
/// never `Return-Path`, never Cc'd people, never our own addresses.
pub fn ack_address(mail: &ParsedMail, own: &[String]) -> Result<Addr, String> {
    let candidate = mail
        .reply_to
        .first()
        .or(mail.from.as_ref())
        .ok_or_else(|| "no From or Reply-To address to answer".to_string())?;
    if own.iter().any(|o| o == &candidate.address) {
        return Err("the reply address is one of our own mailboxes".into());
    }
    candidate
        .address
        .parse::<lettre::Address>()
        .map_err(|e| format!("the reply address is not valid: {e}"))?;
    Ok(candidate.clone())
}

/// A fresh random token for a Message-ID (not secret; unique enough).
pub fn token() -> String {
    let mut s = String::with_capacity(12);
    for _ in 0..12 {
        s.push(fastrand::alphanumeric().to_ascii_lowercase());
    }
    s
}

/// Everything needed to build an acknowledgement except the case.
pub struct AckParts<'a> {
    pub from: &'a Mailbox,
    pub to: &'a Addr,
    pub domain: &'a str,
    pub token: &'a str,
    /// Signs the Message-ID, so replies to it thread safely.
    pub keys: &'a crate::workflow::ThreadKeys,
    pub now: DateTime<Utc>,
    /// Message-ID of the message we answer, without brackets.
    pub in_reply_to: Option<&'a str>,
    /// Its References, oldest first.
    pub references: &'a [String],
    pub extras: &'a AckExtras,
}

/// Build the complete acknowledgement mail for `case`.
pub fn build_ack(templates: &Templates, case: &Case, p: &AckParts<'_>) -> Result<NewMail, String> {
    let body = templates
        .ack_body(case, p.to.name.as_deref(), p.extras)
        .map_err(|e| e.to_string())?;
    let message_id = p.keys.message_id("ack", &case.id, p.token, p.domain);
    let subject = ack_subject(&case.id, &case.subject);
    let to_addr: lettre::Address =
        p.to.address
            .parse()
            .map_err(|e| format!("bad recipient: {e}"))?;
    // A display name is the requester's text: no control characters (a CR
    // or LF from an encoded word would make lettre panic), bounded.
    let name =
        p.to.name
            .as_deref()
            .map(|n| header_safe(n, NAME_MAX))
            .filter(|n| !n.is_empty());
    let to = Mailbox::new(name, to_addr);
    let mut b = lettre::Message::builder()
        .from(p.from.clone())
        .to(to)
        .subject(subject.clone())
        .message_id(Some(format!("<{message_id}>")))
        .date(std::time::SystemTime::from(p.now))
        .header(ContentType::TEXT_PLAIN)
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-replied".into(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"),
            "All".into(),
        ));
    // Threading headers only with ids that are safe to copy verbatim.
    let in_reply_to = p.in_reply_to.filter(|id| safe_msg_id(id));
    if let Some(irt) = in_reply_to {
        b = b.in_reply_to(format!("<{irt}>"));
        let mut refs: Vec<String> = p
            .references
            .iter()
            .filter(|r| safe_msg_id(r))
            .rev()
            .take(20)
            .map(|r| format!("<{r}>"))
            .collect();
        refs.reverse();
        refs.push(format!("<{irt}>"));
        b = b.references(refs.join(" "));
    }
    let msg = b
        .body(body)
        .map_err(|e| format!("cannot build mail: {e}"))?;
    let mail = String::from_utf8(msg.formatted()).map_err(|e| format!("mail is not UTF-8: {e}"))?;
    Ok(NewMail {
        purpose: Purpose::Ack,
        from: p.from.email.to_string(),
        recipients: vec![p.to.address.clone()],
        message_id,
        in_reply_to: in_reply_to.map(str::to_string),
        subject,
        mail,
    })
}

/// Longest display name copied into a header.
pub const NAME_MAX: usize = 100;
/// Longest original subject quoted in a subject or an acknowledgement.
pub const SUBJECT_MAX: usize = 200;

/// Text from a message made safe for a header we write: every control
/// character (CR, LF, NUL, tab, ...) becomes a space, runs of spaces one,
/// at most `max` characters, trimmed. Pure; the one rule for every value
/// we copy from incoming mail into outgoing headers.
pub fn header_safe(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut n = 0;
    let mut space = false;
    for c in text.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if space || out.is_empty() {
                continue;
            }
            space = true;
        } else {
            space = false;
        }
        if n == max {
            break;
        }
        out.push(c);
        n += 1;
    }
    // An encoded word in the text (`=?charset?b?...?=`, kept literally by
    // the parser when it was invalid) would be decoded again by the reader
    // of our header, into bytes we never checked: defuse it.
    out.trim_end().replace("=?", "= ?")
}

/// A Message-ID we may copy into In-Reply-To/References as it is:
/// printable ASCII without spaces or angle brackets, with an `@`, at most
/// 250 bytes.
pub fn safe_msg_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id.contains('@')
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
}

/// A mail to our own people (alerts, notifications) with the Message-ID
/// `message_id` (fixed by the caller: signed `note.CASE.…` for a case),
/// `Auto-Submitted: auto-generated`.
pub fn build_notice(
    from: &Mailbox,
    to: &[String],
    subject: &str,
    body: &str,
    message_id: &str,
    now: DateTime<Utc>,
) -> Result<NewMail, String> {
    let message_id = message_id.to_string();
    let subject = header_safe(subject, 400);
    let mut b = lettre::Message::builder()
        .from(from.clone())
        .subject(subject.clone())
        .message_id(Some(format!("<{message_id}>")))
        .date(std::time::SystemTime::from(now))
        .header(ContentType::TEXT_PLAIN)
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".into(),
        ));
    if to.is_empty() {
        return Err("no recipients".into());
    }
    for r in to {
        let a: lettre::Address = r.parse().map_err(|e| format!("bad recipient {r}: {e}"))?;
        b = b.to(Mailbox::new(None, a));
    }
    let msg = b
        .body(body.to_string())
        .map_err(|e| format!("cannot build mail: {e}"))?;
    let mail = String::from_utf8(msg.formatted()).map_err(|e| format!("mail is not UTF-8: {e}"))?;
    Ok(NewMail {
        purpose: Purpose::StaffNotice,
        from: from.email.to_string(),
        recipients: to.to_vec(),
        message_id,
        in_reply_to: None,
        subject,
        mail,
    })
}

/// `[SUP-000123] Re: original subject` (no duplicate "Re:"; no line breaks).
pub fn ack_subject(case_id: &str, original: &str) -> String {
    let clean = header_safe(original, SUBJECT_MAX);
    if clean.is_empty() {
        format!("[{case_id}] Your request")
    } else if clean.to_ascii_lowercase().starts_with("re:") {
        format!("[{case_id}] {clean}")
    } else {
        format!("[{case_id}] Re: {clean}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_never_promises_a_time_already_past() {
        let t = Templates::load(None).expect("templates");
        let d = crate::triage::Decision::test_ticket(3);
        let now = DateTime::<Utc>::default();
        let case = crate::store::planned_case(
            "SUP-000001",
            &d,
            1,
            "s",
            None,
            &Err("x".into()),
            "support",
            now,
            now,
            vec![],
        );
        for lang in ["en", "de", "fr", "es"] {
            let mut x = AckExtras {
                language: lang,
                respond_by_text: Some("PAST-TIME".into()),
                target: Some("1 day".into()),
                hours_text: Some("hours".into()),
                ..AckExtras::default()
            };
            let on_time = t.ack_body(&case, None, &x).expect("render");
            assert!(on_time.contains("PAST-TIME"), "{lang}: {on_time}");
            x.overdue = true;
            let late = t.ack_body(&case, None, &x).expect("render");
            assert!(!late.contains("PAST-TIME"), "{lang}: {late}");
            assert!(
                [
                    "as soon as possible",
                    "so bald wie",
                    "dès que possible",
                    "lo antes posible"
                ]
                .iter()
                .any(|p| late.contains(p)),
                "{lang}: {late}"
            );
        }
    }

    #[test]
    fn ack_goes_to_reply_to_never_to_own_or_cc() {
        let raw = b"From: Sam <sam@r.example>\r\nReply-To: Intake <intake@r.example>\r\nCc: boss@r.example\r\nReturn-Path: <bounce@r.example>\r\nSubject: x\r\n\r\nbody\r\n";
        let m = crate::mail::parse(raw, 1 << 20).expect("mail");
        assert_eq!(
            ack_address(&m, &[]).map(|a| a.address),
            Ok("intake@r.example".to_string())
        );
        let own = vec!["intake@r.example".to_string()];
        assert!(ack_address(&m, &own).is_err());
    }

    #[test]
    fn templates_dir_overrides_a_builtin() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("ack_support.txt"),
            "Custom {{ case_id }} L{{ level }}",
        )
        .expect("write");
        let t = Templates::load(Some(dir.path())).expect("load");
        let case = Case {
            id: "SUP-000007".into(),
            kind: CaseKind::Support,
            status: crate::store::CaseStatus::New,
            level: Some(3),
            rights: vec![],
            jurisdiction: None,
            subject: "s".into(),
            requester: None,
            reply_address: None,
            mailbox: "support".into(),
            received_at: DateTime::<Utc>::default(),
            created_at: DateTime::<Utc>::default(),
            updated_at: DateTime::<Utc>::default(),
            messages: vec![],
            outbox: vec![],
            next_event: 1,
            notes: vec![],
            clocks: Default::default(),
            agency: None,
            doubt: None,
            participants: vec![],
            assignee: None,
            links: vec![],
            last_requester_message_id: None,
            requester_wrote_at: None,
            language: None,
            privacy: None,
        };
        let extras = AckExtras {
            language: "en",
            respond_by_text: Some("Friday, Nov 27, 8:00 a.m. ET".into()),
            target: Some("1 hour".into()),
            ..AckExtras::default()
        };
        assert_eq!(
            t.ack_body(&case, None, &extras).expect("render"),
            "Custom SUP-000007 L3"
        );
        let builtin = Templates::load(None).expect("load");
        let body = builtin
            .ack_body(&case, Some("Dana"), &extras)
            .expect("render");
        assert!(
            body.contains("Hello Dana")
                && body
                    .contains("respond by Friday, Nov 27, 8:00 a.m. ET\n(1 hour of support time"),
            "{body}"
        );
        std::fs::write(dir.path().join("ack_support.txt"), "{% if %}").expect("write");
        assert!(
            Templates::load(Some(dir.path())).is_err(),
            "a broken override is an error at load"
        );
    }

    #[test]
    fn header_values_are_safe_bounded_and_never_re_decoded() {
        assert_eq!(header_safe("a\r\nBcc: x\0y\tz", 100), "a Bcc: x y z");
        assert_eq!(header_safe("  lots   of   space  ", 100), "lots of space");
        assert_eq!(header_safe(&"é".repeat(300), 100).chars().count(), 100);
        assert_eq!(
            header_safe("=?utf-8?b?QmNjOg==?=", 100),
            "= ?utf-8?b?QmNjOg== ?="
        );
        assert!(safe_msg_id("abc.123@x.example"));
        for bad in [
            "",
            "no-at",
            "a b@x",
            "a<b@x",
            &format!("{}@x", "a".repeat(300)),
            "a\0@x",
        ] {
            assert!(!safe_msg_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn subject_carries_tag_once() {
        assert_eq!(
            ack_subject("SUP-000001", "Re: down"),
            "[SUP-000001] Re: down"
        );
        assert_eq!(
            ack_subject("SUP-000001", "down\r\nBcc: x"),
            "[SUP-000001] Re: down Bcc: x"
        );
        assert_eq!(ack_subject("PRV-000002", ""), "[PRV-000002] Your request");
    }
}
