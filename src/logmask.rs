//! Masking for log lines: addresses inside text we did not write (a
//! server's reply, an error from a library) are shortened to their first
//! character and domain (`p***@example.org`), so info and warn logs never
//! carry a full address. Pure.

/// `text` with every `local@domain` shortened to `l***@domain`.
pub fn mask_addresses(text: &str) -> String {
    let b = text.as_bytes();
    let is_local = |c: u8| c.is_ascii_alphanumeric() || b"._%+-=~!#$&'*/?^`{|}".contains(&c);
    let is_domain = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'-';
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'@' && i > 0 && b.get(i + 1).is_some_and(|c| is_domain(*c)) {
            let mut start = i;
            while start > copied && is_local(b[start - 1]) {
                start -= 1;
            }
            if start < i {
                // Keep one character of the local part (a char boundary:
                // local-part bytes here are ASCII).
                out.push_str(&text[copied..start + 1]);
                out.push_str("***@");
                copied = i + 1;
            }
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// An error text as a sentence for the log: addresses masked, and the
/// Debug form some libraries print for a refused IMAP command (`no
/// response: code: None, info: Some("[AUTHENTICATIONFAILED] ...")`)
/// turned into what the server said.
pub fn readable_error(text: &str) -> String {
    let masked = mask_addresses(text);
    let Some(at) = masked.find("info: Some(\"") else {
        return masked;
    };
    let head = masked[..at]
        .trim_end()
        .trim_end_matches(',')
        .replace("no response: code: None", "the server refused")
        .replace(
            "bad response: code: None",
            "the server rejected the command",
        )
        .replace("no response: code: Some(", "the server refused (")
        .replace(
            "bad response: code: Some(",
            "the server rejected the command (",
        );
    let rest = &masked[at + "info: Some(\"".len()..];
    let info = rest
        .rfind("\")")
        .map(|end| &rest[..end])
        .unwrap_or(rest)
        .replace("\\\"", "\"");
    format!("{head}: {}", info.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_addresses_in_server_replies() {
        assert_eq!(
            mask_addresses("550 5.1.1 <person@example.org>: Recipient address rejected"),
            "550 5.1.1 <p***@example.org>: Recipient address rejected"
        );
        assert_eq!(
            mask_addresses("to a.b+c@x.example and z@y.example"),
            "to a***@x.example and z***@y.example"
        );
        assert_eq!(mask_addresses("no address @ all"), "no address @ all");
        assert_eq!(mask_addresses("ünï <é@x.example>"), "ünï <é@x.example>");
        assert_eq!(mask_addresses(""), "");
    }

    #[test]
    fn refused_logins_read_as_sentences() {
        assert_eq!(
            readable_error(
                "support: login rejected: no response: code: None, info: Some(\"[AUTHENTICATIONFAILED] Authentication failed for x@y.example.\")"
            ),
            "support: login rejected: the server refused: [AUTHENTICATIONFAILED] Authentication failed for x***@y.example."
        );
        assert_eq!(
            readable_error(
                "no response: code: Some(AuthenticationFailed), info: Some(\"Bad password\")"
            ),
            "the server refused (AuthenticationFailed): Bad password"
        );
        assert_eq!(readable_error("connection refused"), "connection refused");
    }
}
