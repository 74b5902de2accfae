//! Identity by a one-time code (GDPR Art. 12(6): ask only with reasonable
//! doubt; a reply from the requester's own mailbox quoting a code is the
//! usual low-friction proof). The acknowledgement carries the code; only a
//! keyed hash of it is stored. Pure but for [`new_code`], which draws from
//! the operating system's random source.

use super::ThreadKeys;

/// Letters and digits that cannot be misread (no 0/O, 1/I/L).
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// A fresh code, `XXXX-XXXX` (40 bits).
pub fn new_code() -> String {
    let mut raw = [0u8; 8];
    if getrandom::getrandom(&mut raw).is_err() {
        for b in &mut raw {
            *b = fastrand::u8(..);
        }
    }
    let mut s = String::with_capacity(9);
    for (i, b) in raw.iter().enumerate() {
        if i == 4 {
            s.push('-');
        }
        s.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
    }
    s
}

/// The stored form of `code` for `case` (keyed, so a store dump does not
/// give the code away).
pub fn code_hash(keys: &ThreadKeys, case: &str, code: &str) -> String {
    keys.keyed("identity code", &format!("{case}\0{}", normalise(code)))
}

fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Everything in `text` shaped like one of our codes (`XXXX-XXXX`, any
/// case, with or without the dash), normalised.
pub fn codes_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        let n = normalise(w);
        let shaped = n.len() == 8
            && (w.len() == 8 || (w.len() == 9 && w.as_bytes().get(4) == Some(&b'-')))
            && n.bytes().all(|b| ALPHABET.contains(&b));
        if shaped && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// Whether `text` quotes the code whose hash is `hash` for `case`.
pub fn quotes_code(keys: &ThreadKeys, case: &str, hash: &str, text: &str) -> bool {
    codes_in(text)
        .iter()
        .any(|c| code_hash(keys, case, c) == hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_found_in_a_reply_and_checked_against_its_hash() {
        let k = ThreadKeys::from_secret("identity tests, a secret long enough");
        let code = new_code();
        assert_eq!(code.len(), 9);
        let h = code_hash(&k, "PRV-000001", &code);
        assert!(!h.contains(&code.replace('-', "")), "only a hash is stored");
        let reply = format!(
            "Hello,\nmy code is {} – thanks.\n> quoted",
            code.to_lowercase()
        );
        assert!(quotes_code(&k, "PRV-000001", &h, &reply));
        assert!(
            !quotes_code(&k, "PRV-000002", &h, &reply),
            "a code belongs to one request"
        );
        assert!(!quotes_code(&k, "PRV-000001", &h, "my code is ABCD-EFGH"));
        assert_eq!(
            codes_in("ABCD-EFGH and abcdefgh, not ABCDEFGHJ or AB-CDEFGH"),
            vec!["ABCDEFGH".to_string()]
        );
    }
}
