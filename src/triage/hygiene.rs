//! Mail that must never be answered (RFC 3834 and the helpdesks' lessons):
//! auto-replies, bounces, list traffic, our own mail, no-reply senders, spam,
//! blocked senders. Returns the reason to set the message aside, or `None`.
//! A sender on the allow list is never set aside for being automated.

use super::TriageContext;
use crate::mail::ParsedMail;

/// `Some((class, reason))` when the message must be set aside; the class
/// is one of `own`, `blocked`, `spam`, `bounce`, `receipt`, `calendar`,
/// `autoreply`, `list`, `machine`. `reasons` collects every signal that fired.
pub fn check(
    mail: &ParsedMail,
    ctx: &TriageContext<'_>,
    reasons: &mut Vec<String>,
) -> Option<(&'static str, String)> {
    let from = mail.from.as_ref().map(|a| a.address.as_str()).unwrap_or("");
    let domain = from.rsplit('@').next().unwrap_or("");
    let local = from.split('@').next().unwrap_or("");

    if ctx.own_addresses.iter().any(|a| a == from) {
        reasons.push("From is one of our own addresses".into());
        return Some(("own", "our own mail".into()));
    }
    if let Some(id) = &mail.message_id {
        let suffix = format!("@{}", ctx.own_domain);
        if (id.starts_with("ack.") || id.starts_with("note.") || id.starts_with("reply."))
            && id.ends_with(&suffix)
        {
            reasons.push(format!("Message-ID has our own form ({id})"));
            return Some(("own", "our own mail".into()));
        }
    }
    if matches_any(from, domain, ctx.block_senders) {
        reasons.push("sender is on the configured block list".into());
        return Some(("blocked", "blocked sender".into()));
    }
    if let Some(why) = spam_verdict(mail) {
        reasons.push(why);
        return Some(("spam", "spam (receiving server's verdict)".into()));
    }

    // Bounces are set aside even for allow-listed senders: a bounce is never a request.
    if mail.content_type == "multipart/report"
        && mail
            .report_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("delivery-status"))
    {
        reasons.push("Content-Type multipart/report; report-type=delivery-status".into());
        return Some(("bounce", "delivery-status report (bounce)".into()));
    }
    if (mail.content_type == "multipart/report"
        && mail
            .report_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("disposition-notification")))
        || mail
            .part_types
            .iter()
            .any(|t| t == "message/disposition-notification")
    {
        reasons.push("a disposition notification (read receipt, RFC 8098)".into());
        return Some(("receipt", "read receipt".into()));
    }
    if let Some(why) = plain_read_receipt(&mail.subject, &mail.text) {
        reasons.push(why);
        return Some(("receipt", "read receipt".into()));
    }
    if let Some(m) = mail.calendar_method.as_deref() {
        if matches!(m, "reply" | "counter" | "declinecounter" | "refresh") {
            reasons.push(format!(
                "text/calendar part with METHOD:{}",
                m.to_ascii_uppercase()
            ));
            return Some(("calendar", "calendar response".into()));
        }
    }
    let lower_local = local.to_ascii_lowercase();
    if lower_local == "mailer-daemon" || lower_local == "postmaster" {
        reasons.push(format!("sender local part is {local}"));
        return Some(("bounce", "bounce (MAILER-DAEMON/postmaster sender)".into()));
    }

    let allowed = matches_any(from, domain, ctx.allow_automated);
    if allowed {
        reasons.push("sender is on the allow list of trusted automated senders".into());
    }

    let mut note_plain: Vec<String> = Vec::new();
    let mut automated: Option<(&'static str, String)> = None;
    let mut fired: Vec<String> = Vec::new();
    let mut note = |reason: String, what: &str| {
        fired.push(reason);
        if automated.is_none() {
            let class = match what {
                "mailing list" | "bulk or auto-reply" => "list",
                "no-reply sender" => "machine",
                _ => "autoreply",
            };
            automated = Some((class, what.to_string()));
        }
    };
    if let Some(v) = mail.header("auto-submitted") {
        if !v.trim().eq_ignore_ascii_case("no") {
            note(format!("header Auto-Submitted: {}", v.trim()), "auto-reply");
        }
    }
    if mail.has_header("x-autoreply") {
        note("header X-Autoreply".into(), "auto-reply");
    }
    if mail.has_header("x-autorespond") {
        note("header X-Autorespond".into(), "auto-reply");
    }
    if let Some(v) = mail.header("precedence") {
        let p = v.trim().to_ascii_lowercase();
        if matches!(p.as_str(), "bulk" | "junk" | "list" | "auto_reply") {
            note(format!("header Precedence: {p}"), "bulk or auto-reply");
        }
    }
    if mail.has_header("x-auto-response-suppress") {
        note("header X-Auto-Response-Suppress".into(), "auto-reply");
    }
    let subject = mail.subject.to_lowercase();
    if let Some(h) = ctx
        .rules
        .scan(&subject)
        .into_iter()
        .find(|h| h.cat == super::rules::Cat::AutoreplySubject && h.start == 0)
    {
        note(format!("subject starts with {:?}", h.phrase), "auto-reply");
    }
    let list_id = mail.header("list-id").map(|v| v.to_ascii_lowercase());
    let received_list = list_id
        .as_deref()
        .is_some_and(|l| ctx.receive_lists.iter().any(|r| l.contains(r.as_str())));
    if received_list {
        note_plain.push("List-Id is one our mailbox receives through".to_string());
    } else {
        if let Some(l) = &list_id {
            note(format!("header List-Id: {l}"), "mailing list");
        }
        if mail.has_header("list-unsubscribe") {
            note("header List-Unsubscribe".into(), "mailing list");
        }
    }
    if [
        "noreply",
        "no-reply",
        "no_reply",
        "donotreply",
        "do-not-reply",
    ]
    .iter()
    .any(|n| {
        lower_local == *n
            || lower_local.starts_with(&format!("{n}+"))
            || lower_local.starts_with(&format!("{n}-"))
    }) {
        note(
            format!("sender is a no-reply address ({local}@…)"),
            "no-reply sender",
        );
    }
    reasons.extend(fired);
    reasons.extend(note_plain);
    if allowed {
        return None;
    }
    automated
}

/// The receiving server's spam verdict, parsed exactly: SpamAssassin's
/// `X-Spam-Flag: YES` and `X-Spam-Status: Yes, …` (the first word, so
/// `No, … tests=BAYES_00` is not spam), rspamd's `X-Spam: Yes`,
/// `X-Rspamd-Action` (`reject`, `add header`, `rewrite subject`) and
/// `X-Spamd-Result: default: True [...]`.
pub fn spam_verdict(mail: &ParsedMail) -> Option<String> {
    let first_word = |v: &str| -> String {
        v.trim()
            .split(|c: char| c == ',' || c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    for (name, value) in &mail.headers {
        let v = value.trim();
        let hit = match name.as_str() {
            "x-spam-flag" | "x-spam" => {
                v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true")
            }
            "x-spam-status" => first_word(v) == "yes",
            "x-rspamd-action" | "x-spamd-action" => matches!(
                v.to_ascii_lowercase().as_str(),
                "reject" | "add header" | "rewrite subject"
            ),
            "x-spamd-result" => {
                let l = v.to_ascii_lowercase();
                l.strip_prefix("default:")
                    .map(|r| first_word(r) == "true")
                    .unwrap_or(false)
            }
            _ => false,
        };
        if hit {
            let shown: String = v.chars().take(40).collect();
            return Some(format!("header {}: {}", header_title(name), shown));
        }
    }
    None
}

/// Subject prefixes mail clients put on read receipts, lower case.
const RECEIPT_SUBJECTS: &[&str] = &[
    "read:",
    "gelesen:",
    "lu :",
    "lu:",
    "leído:",
    "leido:",
    "letto:",
    "lida:",
    "lido:",
    "gelezen:",
    "läst:",
    "læst:",
    "przeczytano:",
    "odczytano:",
    "odczytane:",
    "przeczytane:",
    "přečteno:",
    "citit:",
    "luettu:",
    "lest:",
    "既読:",
    "開封済み:",
    "read receipt:",
    "return receipt",
    "receipt:",
    "confirmación de lectura",
    "accusé de lecture",
    "lesebestätigung",
];

/// Words a receipt's body uses to say the message was displayed, lower case.
const RECEIPT_BODIES: &[&str] = &[
    "was read",
    "has been read",
    "were read",
    "was displayed",
    "wurde gelesen",
    "wurde am",
    "gelesen am",
    "a été lu",
    "a ete lu",
    "été lu le",
    "fue leído",
    "fue leido",
    "ha sido leído",
    "è stato letto",
    "e stato letto",
    "foi lida",
    "foi lido",
    "is gelezen",
    "werd gelezen",
    "har lästs",
    "lästes",
    "er blevet læst",
    "została przeczytana",
    "zostala przeczytana",
    "odczytana",
    "przeczytan",
    "se leyó",
    "se leyo",
    "fue leída",
    "fue leida",
    "byla přečtena",
    "byla prectena",
    "a fost citit",
    "on luettu",
    "luettiin",
    "ble lest",
    "開封",
    "read receipt",
    "return receipt",
];

/// A read receipt sent as plain text (no RFC 8098 report): a receipt subject
/// prefix and a short body that says the message was read.
fn plain_read_receipt(subject: &str, text: &str) -> Option<String> {
    let subject = subject.trim_start().to_lowercase();
    let prefix = RECEIPT_SUBJECTS.iter().find(|p| subject.starts_with(**p))?;
    let body = text.to_lowercase();
    if body.chars().count() > 1200 {
        return None;
    }
    let phrase = RECEIPT_BODIES.iter().find(|p| body.contains(**p))?;
    Some(format!(
        "read receipt in plain text: subject starts {prefix:?}, body says {phrase:?}"
    ))
}

fn header_title(name: &str) -> &str {
    match name {
        "x-spam-flag" => "X-Spam-Flag",
        "x-spam" => "X-Spam",
        "x-spam-status" => "X-Spam-Status",
        "x-rspamd-action" => "X-Rspamd-Action",
        "x-spamd-action" => "X-Spamd-Action",
        "x-spamd-result" => "X-Spamd-Result",
        other => other,
    }
}

fn matches_any(from: &str, domain: &str, list: &[String]) -> bool {
    list.iter().any(|entry| {
        if let Some(d) = entry.strip_prefix('@') {
            domain == d
        } else {
            from == entry
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;
    use crate::triage::Rules;

    fn check_with(
        raw: &str,
        allow: &[String],
        block: &[String],
        lists: &[String],
    ) -> Option<String> {
        let rules = Rules::builtin().expect("rules");
        let model = crate::triage::Model::empty(10);
        let own = vec!["support@casehost.example".to_string()];
        let ctx = TriageContext {
            role: Role::Support,
            own_addresses: &own,
            own_domain: "casehost.example",
            block_senders: block,
            allow_automated: allow,
            receive_lists: lists,
            trusted_authserv_id: None,
            rules: &rules,
            agency_domains: &[],
            model: &model,
        };
        let m = crate::mail::parse(raw.as_bytes(), 1 << 20).expect("mail");
        check(&m, &ctx, &mut Vec::new()).map(|(_, r)| r)
    }

    const MONITOR: &str = "From: monitor@status.casehost.example\r\nAuto-Submitted: auto-generated\r\nSubject: site down\r\n\r\nThe site is down\r\n";

    #[test]
    fn allow_list_overrides_automation_but_not_bounces() {
        assert_eq!(
            check_with(MONITOR, &[], &[], &[]).as_deref(),
            Some("auto-reply")
        );
        let allow = vec!["monitor@status.casehost.example".to_string()];
        assert_eq!(check_with(MONITOR, &allow, &[], &[]), None);
        let allow = vec!["@status.casehost.example".to_string()];
        assert_eq!(check_with(MONITOR, &allow, &[], &[]), None);
        let bounce = "From: MAILER-DAEMON@status.casehost.example\r\nSubject: failure\r\n\r\nx\r\n";
        let allow = vec!["@status.casehost.example".to_string()];
        assert!(check_with(bounce, &allow, &[], &[]).is_some());
    }

    #[test]
    fn block_list_own_mail_and_lists() {
        let m = "From: x@spam.example\r\nSubject: hi\r\n\r\nhello\r\n";
        assert_eq!(
            check_with(m, &[], &["@spam.example".into()], &[]).as_deref(),
            Some("blocked sender")
        );
        let own = "From: support@casehost.example\r\nSubject: [SUP-000001]\r\n\r\nx\r\n";
        assert_eq!(
            check_with(own, &[], &[], &[]).as_deref(),
            Some("our own mail")
        );
        let list = "From: a@x.example\r\nList-Id: Support group <support.casehost.example>\r\nSubject: help\r\n\r\nx\r\n";
        assert_eq!(
            check_with(list, &[], &[], &[]).as_deref(),
            Some("mailing list")
        );
        assert_eq!(
            check_with(list, &[], &[], &["support.casehost.example".into()]),
            None
        );
        let no = "From: a@x.example\r\nAuto-Submitted: no\r\nSubject: help\r\n\r\nx\r\n";
        assert_eq!(
            check_with(no, &[], &[], &[]),
            None,
            "Auto-Submitted: no is a person"
        );
    }

    fn verdict(headers: &str) -> Option<String> {
        let raw = format!("From: a@x.example\r\n{headers}Subject: hi\r\n\r\nhello\r\n");
        spam_verdict(&crate::mail::parse(raw.as_bytes(), 1 << 20).expect("mail"))
    }

    #[test]
    fn spam_verdicts_are_parsed_exactly() {
        assert!(verdict("X-Spam-Flag: YES\r\n").is_some());
        assert!(verdict("X-Spam-Flag: NO\r\n").is_none());
        assert!(verdict("X-Spam-Status: Yes, score=9.1 required=5.0 tests=BAYES_99\r\n").is_some());
        assert!(
            verdict("X-Spam-Status: No, score=-0.1 required=5.0 tests=BAYES_00,DKIM_SIGNED\r\n")
                .is_none(),
            "BAYES in the test list is not a yes"
        );
        assert!(
            verdict("X-Spamd-Result: default: True [14.20 / 15.00]; BAYES_SPAM(5.1)\r\n").is_some()
        );
        assert!(
            verdict("X-Spamd-Result: default: False [1.20 / 15.00]; BAYES_HAM(-3)\r\n").is_none()
        );
        assert!(verdict("X-Rspamd-Action: add header\r\n").is_some());
        assert!(verdict("X-Rspamd-Action: no action\r\n").is_none());
        assert!(verdict("X-Spam: Yes\r\n").is_some());
        assert!(verdict("X-Spam-Checker-Version: SpamAssassin 4.0.0 (yes)\r\n").is_none());
    }

    #[test]
    fn read_receipts_and_calendar_replies_are_machine_mail() {
        let mdn = "From: Ann <ann@x.example>\r\nSubject: Read: your case\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n--b\r\nContent-Type: message/disposition-notification\r\n\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n--b--\r\n";
        assert_eq!(
            check_with(mdn, &[], &[], &[]).as_deref(),
            Some("read receipt")
        );
        let plain = "From: Ann <ann@x.example>\r\nSubject: Gelesen: Ihr Fall [SUP-000004]\r\n\r\nIhre Nachricht wurde am 03.12.2026 um 10:14 gelesen.\r\n";
        assert_eq!(
            check_with(plain, &[], &[], &[]).as_deref(),
            Some("read receipt")
        );
        // A person who read the answer and writes back is not a receipt.
        let human = "From: Ann <ann@x.example>\r\nSubject: Re: Read: your case\r\n\r\nI read your answer but the export still fails.\r\n";
        assert_eq!(check_with(human, &[], &[], &[]), None);
        let cal = "From: Ann <ann@x.example>\r\nSubject: Accepted: call\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nAccepted\r\n--b\r\nContent-Type: text/calendar; method=REPLY; charset=utf-8\r\n\r\nBEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nEND:VCALENDAR\r\n--b--\r\n";
        assert_eq!(
            check_with(cal, &[], &[], &[]).as_deref(),
            Some("calendar response")
        );
    }
}
