//! A parsed, bounded view of one raw message, over mail-parser.
//!
//! [`parse`] never panics and never loses the message: it either returns a
//! [`ParsedMail`] (possibly with `warnings`) or a [`NotMail`] error that says
//! why the bytes are not a message, so the caller can still record them.
//! Only a prefix of the raw bytes (the triage parse limit) is handed to
//! mail-parser, because it decodes every part up front; the stored raw
//! message stays whole.
//!
//! Not for: deciding anything about the message (that is [`crate::triage`]).

use mail_parser::MimeHeaders;
use serde::{Deserialize, Serialize};

/// One address from a header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addr {
    pub name: Option<String>,
    /// Lower-cased `local@domain`.
    pub address: String,
}

impl Addr {
    pub fn domain(&self) -> &str {
        self.address.rsplit('@').next().unwrap_or("")
    }
    pub fn local(&self) -> &str {
        self.address.split('@').next().unwrap_or("")
    }
}

/// The parts of a message the rest of ticketd looks at.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ParsedMail {
    /// Message-ID without angle brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    /// In header order (oldest first, as RFC 5322 writes them).
    pub references: Vec<String>,
    pub subject: String,
    pub from: Option<Addr>,
    pub reply_to: Vec<Addr>,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    pub return_path: Option<String>,
    /// The sender's `Date` header (informational only: receipt time is the
    /// server's arrival time, never this).
    pub date: Option<String>,
    /// Every header as (lower-case name, decoded text value), in order.
    pub headers: Vec<(String, String)>,
    /// Top-level content type, lower case, e.g. `multipart/report`.
    pub content_type: String,
    /// `report-type` parameter of a multipart/report.
    pub report_type: Option<String>,
    /// Body text: text/plain preferred, else HTML converted to text.
    pub text: String,
    pub text_from_html: bool,
    pub attachment_count: usize,
    /// `method` of the first `text/calendar` part, lower case (`reply`,
    /// `request`, …): a calendar response is machine mail.
    pub calendar_method: Option<String>,
    /// Content types of the parts below the root (first 64), lower case.
    pub part_types: Vec<String>,
    /// The parse saw only a prefix of the message.
    pub truncated: bool,
    /// Things that were odd but not fatal.
    pub warnings: Vec<String>,
}

impl ParsedMail {
    /// First value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// Why some bytes are not a message at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotMail {
    #[error("empty input (0 bytes)")]
    Empty,
    #[error(
        "no header section: the bytes do not start with header fields (not an RFC 5322 message)"
    )]
    NoHeaders,
    #[error("none of the usual mail headers (From, To, Subject, Date, Message-ID, Received, ...) among the {count} header fields found (first: {first})")]
    NoMailHeaders { count: usize, first: String },
    #[error("header field names with 8-bit, control or space bytes, which RFC 5322 forbids (first bad name: {name}): binary data or a corrupted message")]
    BadHeaderName { name: String },
    #[error("the MIME parser failed on this message")]
    ParserFailed,
}

/// Headers that, when at least one is present, make bytes look like mail.
const MAIL_HEADERS: &[&str] = &[
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "received",
    "return-path",
    "mime-version",
    "sender",
    "reply-to",
    "delivered-to",
];

/// HTML bytes handed to the HTML-to-text converter, by default.
pub const DEFAULT_HTML_LIMIT: usize = 256 * 1024;
/// Body text kept for triage (the requester's words come first).
pub const TEXT_LIMIT: usize = 256 * 1024;
/// Subject bytes kept (RFC 5322's line limit): a 1 MB Subject is recorded
/// and quoted by its first 998 bytes only.
pub const SUBJECT_LIMIT: usize = 998;
/// Display-name bytes kept.
pub const NAME_LIMIT: usize = 200;

/// Parse at most `limit` bytes of `raw` (HTML capped at the default).
pub fn parse(raw: &[u8], limit: usize) -> Result<ParsedMail, NotMail> {
    parse_with(raw, limit, DEFAULT_HTML_LIMIT)
}

/// Parse at most `limit` bytes of `raw`; convert at most `html_limit` bytes
/// of an HTML-only body to text.
pub fn parse_with(raw: &[u8], limit: usize, html_limit: usize) -> Result<ParsedMail, NotMail> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(NotMail::Empty);
    }
    let truncated = raw.len() > limit;
    let bytes = if truncated { &raw[..limit] } else { raw };
    // mail-parser is built never to panic on input, but its debug builds
    // carry assertions that crafted MIME can reach (found by our fuzzer:
    // fixtures/bad/mime-parser-debug-assert.eml). A parser failure must not
    // take the daemon down: it makes the message "not mail", which is
    // recorded like any other unparseable input.
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        mail_parser::MessageParser::default().parse(bytes)
    }));
    let msg = match parsed {
        Ok(Some(m)) => m,
        Ok(None) => return Err(NotMail::NoHeaders),
        Err(_) => return Err(NotMail::ParserFailed),
    };

    let mut headers = Vec::with_capacity(msg.headers().len());
    for h in msg.headers() {
        let name = h.name().to_ascii_lowercase();
        headers.push((name, header_text(h.value())));
    }
    // A header name must be printable ASCII; binary junk parsed as headers
    // means this is not mail.
    if let Some((n, _)) = headers
        .iter()
        .find(|(n, _)| n.is_empty() || n.bytes().any(|b| !(33..=126).contains(&b)))
    {
        return Err(NotMail::BadHeaderName { name: shown(n) });
    }
    if !headers
        .iter()
        .any(|(n, _)| MAIL_HEADERS.contains(&n.as_str()))
    {
        return Err(NotMail::NoMailHeaders {
            count: headers.len(),
            first: headers.first().map(|(n, _)| shown(n)).unwrap_or_default(),
        });
    }

    let mut warnings = Vec::new();
    if truncated {
        warnings.push(format!(
            "message is {} bytes; triage parsed only the first {limit}",
            raw.len()
        ));
    }
    let message_id = msg.message_id().map(clean_id).filter(|s| !s.is_empty());
    if message_id.is_none() {
        warnings.push("no Message-ID header".into());
    }
    let in_reply_to = id_list(msg.in_reply_to());
    let references = id_list(msg.references());

    let (content_type, report_type) = match msg.root_part().content_type() {
        Some(ct) => {
            let full = match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            }
            .to_ascii_lowercase();
            (
                full,
                ct.attribute("report-type").map(|s| s.to_ascii_lowercase()),
            )
        }
        None => ("text/plain".to_string(), None),
    };

    let mut calendar_method = None;
    let mut part_types = Vec::new();
    for part in msg.parts.iter().skip(1).take(64) {
        if let Some(ct) = part.content_type() {
            let full = match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_string(),
            }
            .to_ascii_lowercase();
            if full == "text/calendar" && calendar_method.is_none() {
                calendar_method = ct.attribute("method").map(|m| m.to_ascii_lowercase());
            }
            part_types.push(full);
        }
    }
    if content_type == "text/calendar" {
        calendar_method = msg
            .root_part()
            .content_type()
            .and_then(|ct| ct.attribute("method"))
            .map(|m| m.to_ascii_lowercase());
    }
    let has_plain = msg.text_bodies().any(|p| !p.is_text_html());
    let (mut text, text_from_html) = if has_plain {
        (
            msg.body_text(0).map(|c| c.into_owned()).unwrap_or_default(),
            false,
        )
    } else if let Some(html) = msg.body_html(0) {
        let html = html.as_ref();
        let cut = floor_boundary(html, html_limit);
        if cut < html.len() {
            warnings.push(format!(
                "HTML body is {} bytes; converted only the first {html_limit}",
                html.len()
            ));
        }
        (html_to_text(&html[..cut]), true)
    } else {
        (String::new(), false)
    };
    if text.len() > TEXT_LIMIT {
        let cut = floor_boundary(&text, TEXT_LIMIT);
        text.truncate(cut);
        warnings.push(format!("body text cut to {TEXT_LIMIT} bytes for triage"));
    }
    if text.trim().is_empty() {
        warnings.push("no readable body text".into());
    }
    if msg.from().is_none() {
        warnings.push("no From header".into());
    }

    let mut subject = msg
        .subject()
        .map(|s| s.replace(['\r', '\n'], " ").trim().to_string())
        .unwrap_or_default();
    if subject.len() > SUBJECT_LIMIT {
        let cut = floor_boundary(&subject, SUBJECT_LIMIT);
        warnings.push(format!(
            "Subject is {} bytes; kept the first {cut}",
            subject.len()
        ));
        subject.truncate(cut);
    }

    Ok(ParsedMail {
        message_id,
        in_reply_to,
        references,
        subject,
        from: msg.from().and_then(|a| addrs(a).into_iter().next()),
        reply_to: msg.reply_to().map(addrs).unwrap_or_default(),
        to: msg.to().map(addrs).unwrap_or_default(),
        cc: msg.cc().map(addrs).unwrap_or_default(),
        return_path: msg.return_address().map(|s| s.to_ascii_lowercase()),
        date: msg.date().map(|d| d.to_rfc3339()),
        headers,
        content_type,
        report_type,
        text,
        text_from_html,
        attachment_count: msg.attachment_count(),
        calendar_method,
        part_types,
        truncated,
        warnings,
    })
}

/// HTML to plain text with html2text (links kept inline, no wrapping).
pub fn html_to_text(html: &str) -> String {
    html2text::config::plain()
        .no_link_wrapping()
        .link_footnotes(false)
        .string_from_read(html.as_bytes(), 10_000)
        .unwrap_or_default()
}

/// A header name as a reason may show it: escaped, at most 40 characters.
fn shown(name: &str) -> String {
    let e: String = name
        .chars()
        .flat_map(char::escape_default)
        .take(40)
        .collect();
    format!("\"{e}\"")
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn addrs(a: &mail_parser::Address<'_>) -> Vec<Addr> {
    a.iter()
        .filter_map(|x| {
            let address = x.address()?.trim().to_ascii_lowercase();
            if address.is_empty() {
                return None;
            }
            Some(Addr {
                name: x
                    .name()
                    .map(|n| {
                        let n = n.trim();
                        n[..floor_boundary(n, NAME_LIMIT)].to_string()
                    })
                    .filter(|n| !n.is_empty()),
                address,
            })
        })
        .collect()
}

/// Strip angle brackets and whitespace from a message id.
pub fn clean_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_string()
}

fn id_list(v: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    match v {
        mail_parser::HeaderValue::Text(t) => vec![clean_id(t)],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| clean_id(t)).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect()
}

fn header_text(v: &mail_parser::HeaderValue<'_>) -> String {
    use mail_parser::HeaderValue as H;
    match v {
        H::Text(t) => t.to_string(),
        H::TextList(l) => l.join(", "),
        H::Address(a) => a
            .iter()
            .map(|x| match (x.name(), x.address()) {
                (Some(n), Some(ad)) => format!("{n} <{ad}>"),
                (None, Some(ad)) => ad.to_string(),
                (Some(n), None) => n.to_string(),
                (None, None) => String::new(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        H::DateTime(d) => d.to_rfc3339(),
        H::ContentType(ct) => match ct.subtype() {
            Some(s) => format!("{}/{}", ct.ctype(), s),
            None => ct.ctype().to_string(),
        },
        H::Received(_) => "(received)".to_string(),
        H::Empty => String::new(),
    }
}

/// Header fields that the servers on the way in add or rewrite (trace,
/// delivery and filter headers, mbox and IMAP artefacts): two deliveries
/// of the same message differ only in these, so the content hash skips
/// them.
const TRACE_HEADERS: &[&str] = &[
    "return-path",
    "received",
    "delivered-to",
    "x-original-to",
    "x-delivered-to",
    "envelope-to",
    "x-envelope-to",
    "x-envelope-from",
    "authentication-results",
    "arc-authentication-results",
    "arc-seal",
    "arc-message-signature",
    "received-spf",
    "x-received",
    "x-uid",
    "status",
    "x-status",
    "x-keywords",
    "lines",
    "content-length",
];
const TRACE_PREFIXES: &[&str] = &[
    "x-spam-",
    "x-virus-",
    "x-rspamd-",
    "x-ms-exchange-organization-",
    "x-ms-exchange-transport-",
    "x-google-smtp-",
];

/// Whether a header field (by lower-case name) is one a receiving server
/// adds (see [`TRACE_HEADERS`]).
pub fn is_trace_header(name: &str) -> bool {
    TRACE_HEADERS.contains(&name) || TRACE_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Blake3 hash, hex, of a message as its sender wrote it: trace headers
/// the receiving servers add (Return-Path, Received, Delivered-To, ...)
/// are left out and line ends are normalised (CRLF and LF hash the same),
/// so the same message delivered twice, or read from IMAP and from a
/// Maildir, has one hash. The dedupe key of mail without a Message-ID,
/// and the content check of mail with one.
pub fn content_hash(raw: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    let mut in_header = true;
    let mut skipping = false;
    for line in raw.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if in_header {
            if line.is_empty() {
                in_header = false;
            } else if line[0] == b' ' || line[0] == b'\t' {
                // A continuation belongs to the field before it.
                if skipping {
                    continue;
                }
            } else {
                skipping = match line.iter().position(|b| *b == b':') {
                    Some(i) => {
                        let name = String::from_utf8_lossy(&line[..i])
                            .trim()
                            .to_ascii_lowercase();
                        is_trace_header(&name)
                    }
                    None => false,
                };
                if skipping {
                    continue;
                }
            }
        }
        h.update(line);
        h.update(b"\n");
    }
    h.finalize().to_hex().to_string()
}

/// The hash older versions stored (of the raw bytes as delivered): still
/// recognised, so a store written by them dedupes the same as before.
pub fn legacy_content_hash(raw: &[u8]) -> String {
    blake3::hash(raw).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIMPLE: &[u8] = b"From: Dana <Dana.Ruiz@Example.org>\r\nTo: support@casehost.example\r\nSubject: Help\r\nMessage-ID: <abc@x>\r\nIn-Reply-To: <p1@x>\r\nReferences: <p0@x> <p1@x>\r\n\r\nHello\r\n";

    #[test]
    fn parses_ids_and_addresses() {
        let m = parse(SIMPLE, 1 << 20).expect("mail");
        assert_eq!(m.message_id.as_deref(), Some("abc@x"));
        assert_eq!(m.in_reply_to, vec!["p1@x"]);
        assert_eq!(m.references, vec!["p0@x", "p1@x"]);
        assert_eq!(
            m.from.as_ref().map(|a| a.address.as_str()),
            Some("dana.ruiz@example.org")
        );
        assert_eq!(m.text.trim(), "Hello");
    }

    #[test]
    fn content_hash_ignores_trace_headers_and_line_ends() {
        let sent = b"From: a@x.example\r\nSubject: s\r\n\r\nbody\r\n";
        let first = b"Return-Path: <a@x.example>\r\nDelivered-To: support@y.example\r\nReceived: from mx1\r\n\tby mx2; Mon, 1 Dec 2026 10:00:00 +0000\r\nX-Spam-Status: No, score=0.1\r\nFrom: a@x.example\r\nSubject: s\r\n\r\nbody\r\n";
        let second = b"Received: from mx3 by mx4; Mon, 1 Dec 2026 10:05:00 +0000\nFrom: a@x.example\nX-Original-To: support@y.example\nSubject: s\n\nbody\n";
        assert_eq!(content_hash(sent), content_hash(first));
        assert_eq!(content_hash(sent), content_hash(second));
        // Anything the sender wrote counts: header or body.
        assert_ne!(
            content_hash(sent),
            content_hash(b"From: a@x.example\r\nSubject: t\r\n\r\nbody\r\n")
        );
        assert_ne!(
            content_hash(sent),
            content_hash(b"From: a@x.example\r\nSubject: s\r\n\r\nbody!\r\n")
        );
        // A "Received:" line in the body is body text.
        assert_ne!(
            content_hash(b"From: a@x.example\n\nReceived: x\n"),
            content_hash(b"From: a@x.example\n\n")
        );
    }

    #[test]
    fn garbage_headers_say_what_was_wrong() {
        let e = parse(b"Fr\xffom: x\r\nSub\x01ject: y\r\n\r\nbody", 1000).err();
        assert!(matches!(&e, Some(NotMail::BadHeaderName { .. })), "{e:?}");
        let e = parse(b"X-Foo: 1\r\nX-Bar: 2\r\n\r\nbody", 1000).err();
        assert!(
            matches!(&e, Some(NotMail::NoMailHeaders { count: 2, .. })),
            "{e:?}"
        );
        let big = format!(
            "From: a@x.example\r\nSubject: {}\r\n\r\nbody",
            "x".repeat(1 << 20)
        );
        let m = parse(big.as_bytes(), 4 << 20).expect("mail");
        assert_eq!(m.subject.len(), SUBJECT_LIMIT);
        assert!(m.warnings.iter().any(|w| w.starts_with("Subject is")));
    }

    #[test]
    fn empty_and_binary_are_not_mail() {
        assert_eq!(parse(b"", 100).err(), Some(NotMail::Empty));
        assert_eq!(parse(b"\r\n  \n", 100).err(), Some(NotMail::Empty));
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x02\x80\0\0\x01\xe0\x08\x06\0\0\0";
        assert!(parse(png, 100).is_err());
        assert!(parse(b"just some words, no headers at all", 100).is_err());
    }

    #[test]
    fn mime_that_trips_the_parser_is_handled() {
        let raw = include_bytes!("../fixtures/bad/mime-parser-debug-assert.eml");
        // Debug builds reach mail-parser's assertion (caught); release
        // builds parse it. Either way: no panic escapes, and a result.
        match parse(raw, 1 << 20) {
            Ok(m) => assert!(m.subject.contains("Undeliverable")),
            Err(e) => assert_eq!(e, NotMail::ParserFailed),
        }
    }

    #[test]
    fn prefix_limit_is_respected_and_reported() {
        let mut big = b"From: a@b.example\r\nSubject: big\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 100_000));
        let m = parse(&big, 4096).expect("mail");
        assert!(m.truncated);
        assert!(m.text.len() <= 4096);
        assert!(m.warnings.iter().any(|w| w.contains("first 4096")));
    }
}
