//! `reply`: mail from staff to the requester, through the outbox, threaded
//! (our signed Message-ID, In-Reply-To/References to the requester's latest
//! message, the case tag in the subject), from the case's sender address.
//! It counts as the response. Also used to relay a staff member's mail
//! answer to one of our notifications.

use super::{not_closed, responded, Ctx, Outcome, Refusal};
use crate::render::{self, header_safe, safe_msg_id};
use crate::store::{Case, CaseChange, NewMail, Notice, Purpose};
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;

/// A file sent with an answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// Everything a reply to the requester is built from.
pub struct ReplyParts<'a> {
    pub from: &'a Mailbox,
    pub to: &'a str,
    pub case: &'a Case,
    pub body: &'a str,
    /// Our Message-ID for it (signed), without brackets.
    pub message_id: String,
    pub now: DateTime<Utc>,
    pub attachments: &'a [Attachment],
}

/// The complete reply mail (pure).
pub fn build_reply(p: &ReplyParts<'_>) -> Result<NewMail, String> {
    let subject = render::ack_subject(&p.case.id, &p.case.subject);
    let to: lettre::Address = p.to.parse().map_err(|e| format!("bad recipient: {e}"))?;
    let mut b = lettre::Message::builder()
        .from(p.from.clone())
        .to(Mailbox::new(None, to))
        .subject(header_safe(&subject, 400))
        .message_id(Some(format!("<{}>", p.message_id)))
        .date(std::time::SystemTime::from(p.now))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"),
            "All".into(),
        ));
    let parent = p
        .case
        .last_requester_message_id
        .as_deref()
        .filter(|id| safe_msg_id(id));
    if let Some(irt) = parent {
        b = b
            .in_reply_to(format!("<{irt}>"))
            .references(format!("<{irt}>"));
    }
    let body = if p.body.ends_with('\n') {
        p.body.to_string()
    } else {
        format!("{}\n", p.body)
    };
    let msg = if p.attachments.is_empty() {
        b.header(ContentType::TEXT_PLAIN).body(body)
    } else {
        use lettre::message::{Attachment as Part, MultiPart, SinglePart};
        let mut mp = MultiPart::mixed().singlepart(SinglePart::plain(body));
        for a in p.attachments {
            let ct = ContentType::parse(&a.content_type).unwrap_or(
                ContentType::parse("application/octet-stream").map_err(|e| e.to_string())?,
            );
            let name = header_safe(&a.name, 100).replace(['/', '\\', '"'], "_");
            mp = mp.singlepart(Part::new(name).body(a.data.clone(), ct));
        }
        b.multipart(mp)
    }
    .map_err(|e| format!("cannot build mail: {e}"))?;
    let mail = String::from_utf8(msg.formatted()).map_err(|e| format!("mail is not UTF-8: {e}"))?;
    Ok(NewMail {
        purpose: Purpose::Reply,
        from: p.from.email.to_string(),
        recipients: vec![p.to.to_string()],
        message_id: p.message_id.clone(),
        in_reply_to: parent.map(str::to_string),
        subject,
        mail,
    })
}

/// The reply notice for `case` with `body` (pure).
pub(crate) fn reply_notice(ctx: &Ctx<'_>, c: &Case, body: &str) -> Result<Notice, Refusal> {
    to_requester(ctx, c, "reply", body, &[])
}

/// Mail of `kind` to the requester of `c` (pure): threaded, from the
/// case's address, our signed Message-ID.
pub(crate) fn to_requester(
    ctx: &Ctx<'_>,
    c: &Case,
    kind: &str,
    body: &str,
    attachments: &[Attachment],
) -> Result<Notice, Refusal> {
    let to = c
        .reply_address
        .clone()
        .or_else(|| c.requester.as_ref().map(|a| a.address.clone()))
        .ok_or_else(|| Refusal::NoRequester { case: c.id.clone() })?;
    let n = ctx.notifier;
    let mail = build_reply(&ReplyParts {
        from: n.sender(c.kind),
        to: &to,
        case: c,
        body,
        message_id: n.message_id("reply", &c.id, &format!("{kind}.{}", ctx.token)),
        now: ctx.now,
        attachments,
    })
    .map_err(Refusal::Render)?;
    Ok(Notice {
        kind: kind.into(),
        mail: Ok(mail),
    })
}

pub(super) fn run(ctx: &Ctx<'_>, c: &Case, body: &str, _message: Option<u64>) -> Outcome {
    not_closed(c)?;
    if body.trim().is_empty() {
        return Err(Refusal::Empty("a reply"));
    }
    let mut n = c.clone();
    let mut change = CaseChange::default();
    change.notices.push(reply_notice(ctx, c, body)?);
    responded(&mut n, ctx.now, &mut change);
    change.events.push(crate::store::EventKind::Responded {
        note: Some(format!("reply sent by {}", ctx.actor)),
    });
    Ok((n, change))
}
