//! The requester's own words: body text without quoted earlier mail (`>`
//! lines, "On … wrote:", Outlook's "From:/Sent:" blocks, "-----Original
//! Message-----") and without the signature, so neither decides triage.

/// Cut quotes and signature from a body text.
pub fn own_words(body: &str) -> String {
    words(body, true)
}

/// Cut quoted earlier mail but keep the closing and signature: what a
/// staff member wrote, to be relayed to the requester.
pub fn reply_words(body: &str) -> String {
    words(body, false)
}

fn words(body: &str, cut_signature: bool) -> String {
    let mut out = String::with_capacity(body.len().min(64 * 1024));
    let lines: Vec<&str> = body.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        if cut_signature && (t == "--" || line == "-- ") {
            break; // signature separator
        }
        let lower = t.to_lowercase();
        if cut_signature && (is_closing(&lower) || is_disclaimer(&lower)) {
            break;
        }
        if lower.starts_with("-----original message")
            || lower.starts_with("-----ursprüngliche nachricht")
            || lower.starts_with("-----message d'origine")
            || lower.starts_with("-----mensaje original")
            || lower.starts_with("________________________________")
        {
            break;
        }
        // "On Tue, 10 Nov 2026, Dana wrote:" possibly wrapped over two lines.
        let joined = match lines.get(i + 1) {
            Some(next) => format!("{lower} {}", next.trim().to_ascii_lowercase()),
            None => lower.clone(),
        };
        if is_attribution(&lower) || (is_attribution_start(&lower) && is_attribution(&joined)) {
            break;
        }
        // Outlook header block: "From: …" followed within 4 lines by "Sent:"/"Date:".
        if (lower.starts_with("from:")
            || lower.starts_with("von:")
            || lower.starts_with("de :")
            || lower.starts_with("de:"))
            && lines[i + 1..].iter().take(4).any(|l| {
                let l = l.trim().to_ascii_lowercase();
                l.starts_with("sent:")
                    || l.starts_with("gesendet:")
                    || l.starts_with("envoyé :")
                    || l.starts_with("enviado el:")
                    || l.starts_with("date:")
            })
        {
            break;
        }
        if !t.starts_with('>') {
            out.push_str(line);
            out.push('\n');
        }
        i += 1;
    }
    out
}

/// A line that is only a closing formula ("Thanks,", "Mit freundlichen
/// Grüßen"): what follows is the signature.
fn is_closing(lower: &str) -> bool {
    const CLOSINGS: &[&str] = &[
        "thanks",
        "thank you",
        "thanks so much",
        "thanks again",
        "many thanks",
        "regards",
        "best regards",
        "kind regards",
        "warm regards",
        "best",
        "cheers",
        "sincerely",
        "yours sincerely",
        "yours faithfully",
        "respectfully",
        "mit freundlichen grüßen",
        "mit freundlichen grüssen",
        "viele grüße",
        "beste grüße",
        "liebe grüße",
        "gruß",
        "grüße",
        "cordialement",
        "bien cordialement",
        "bien à vous",
        "merci",
        "merci d'avance",
        "salutations",
        "saludos",
        "un saludo",
        "atentamente",
        "cordiales saludos",
        "gracias",
        "muchas gracias",
        "よろしくお願いいたします。",
        "よろしくお願いします。",
    ];
    let t = lower.trim().trim_end_matches([',', '!', '.', ' ']);
    CLOSINGS.contains(&t)
}

/// The start of a legal footer ("CONFIDENTIALITY NOTICE: …").
fn is_disclaimer(lower: &str) -> bool {
    lower.starts_with("confidentiality notice")
        || lower.starts_with("disclaimer")
        || lower.starts_with("this e-mail and any attachments")
        || lower.starts_with("this email and any attachments")
        || lower.starts_with("this message and any attachments")
        || lower.starts_with("diese e-mail enthält vertrauliche")
}

fn is_attribution_start(lower: &str) -> bool {
    lower.starts_with("on ")
        || lower.starts_with("am ")
        || lower.starts_with("le ")
        || lower.starts_with("el ")
}

fn is_attribution(lower: &str) -> bool {
    is_attribution_start(lower)
        && (lower.ends_with("wrote:")
            || lower.ends_with("schrieb:")
            || lower.ends_with("a écrit :")
            || lower.ends_with("a écrit:")
            || lower.ends_with("escribió:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_quotes_attribution_and_signature() {
        let body = "Thanks, it works now.\n\nOn Tue, 10 Nov 2026 Dana wrote:\n> The site is down\n";
        assert_eq!(own_words(body).trim(), "Thanks, it works now.");
        let body = "New idea: CSV export.\n-- \nDana\nSite down hotline\n";
        assert_eq!(own_words(body).trim(), "New idea: CSV export.");
        let body = "Please add X.\n\nFrom: Support\nSent: Monday\nSubject: outage\nsite is down\n";
        assert_eq!(own_words(body).trim(), "Please add X.");
        let body = "a\n> quoted error\nb\n";
        assert_eq!(own_words(body), "a\nb\n");
    }
}
