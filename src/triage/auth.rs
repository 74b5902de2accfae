//! The sender-authentication verdict (DMARC, DKIM, SPF) from
//! `Authentication-Results` headers (RFC 8601) — only those added by our own
//! trusted server, named by its authserv-id in the config; anything else in
//! the message could have been written by the sender.

use super::Auth;
use crate::mail::ParsedMail;

/// `pass` when DMARC passes (or, without DMARC, DKIM or SPF passes); `fail`
/// when DMARC fails (or, without DMARC, both DKIM and SPF fail); else
/// `none`, also when no trusted header is present.
pub fn verdict(mail: &ParsedMail, trusted: Option<&str>, reasons: &mut Vec<String>) -> Auth {
    let Some(trusted) = trusted.map(str::to_ascii_lowercase) else {
        return Auth::None;
    };
    for (name, value) in &mail.headers {
        if name != "authentication-results" {
            continue;
        }
        let lower = value.to_ascii_lowercase();
        let id = lower
            .split(|c: char| c == ';' || c.is_whitespace())
            .find(|s| !s.is_empty())
            .unwrap_or("");
        if id != trusted {
            continue;
        }
        let result = |method: &str| -> Option<&str> {
            lower.split(';').find_map(|clause| {
                let c = clause.trim();
                let rest = c.strip_prefix(method)?.trim_start();
                let rest = rest.strip_prefix('=')?;
                rest.split(|ch: char| ch.is_whitespace() || ch == '(')
                    .next()
            })
        };
        let (dmarc, dkim, spf) = (result("dmarc"), result("dkim"), result("spf"));
        let v = match dmarc {
            Some("pass") => Auth::Pass,
            Some("fail") => Auth::Fail,
            _ => match (dkim, spf) {
                (Some("pass"), _) | (_, Some("pass")) => Auth::Pass,
                (Some("fail"), Some("fail" | "softfail")) => Auth::Fail,
                _ => Auth::None,
            },
        };
        reasons.push(format!(
            "Authentication-Results from {trusted}: dmarc={} dkim={} spf={} → {}",
            dmarc.unwrap_or("-"),
            dkim.unwrap_or("-"),
            spf.unwrap_or("-"),
            match v {
                Auth::Pass => "pass",
                Auth::Fail => "fail",
                Auth::None => "none",
            }
        ));
        return v;
    }
    Auth::None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(h: &str) -> ParsedMail {
        let raw = format!("{h}From: a@x.example\r\nSubject: s\r\n\r\nbody\r\n");
        crate::mail::parse(raw.as_bytes(), 1 << 20).expect("mail")
    }

    #[test]
    fn only_the_trusted_server_counts() {
        let m = mail("Authentication-Results: evil.example; dmarc=pass\r\nAuthentication-Results: mx.casehost.example; dkim=fail; spf=fail; dmarc=fail header.from=x.example\r\n");
        let mut r = Vec::new();
        assert_eq!(verdict(&m, Some("mx.casehost.example"), &mut r), Auth::Fail);
        assert_eq!(verdict(&m, None, &mut r), Auth::None);
        let m = mail("Authentication-Results: mx.casehost.example; spf=pass smtp.mailfrom=x.example; dkim=none\r\n");
        assert_eq!(verdict(&m, Some("mx.casehost.example"), &mut r), Auth::Pass);
        let m = mail("Authentication-Results: evil.example; dmarc=pass\r\n");
        assert_eq!(verdict(&m, Some("mx.casehost.example"), &mut r), Auth::None);
    }
}
