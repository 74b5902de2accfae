//! Features for the learned scorer: hashed word unigrams and bigrams,
//! character n-grams inside words (robust to inflection, typos and
//! languages nobody hand-tuned), negation-scoped words, a few structural
//! facts about the message, and the phrase rules' own signals. Pure: text
//! and facts in, sorted unique bucket numbers out.
//!
//! Every feature keeps a printable name on request ([`Extract::named`]) so
//! the scorer can say which features weighed most in `reasons`.

/// Text beyond this many bytes of the requester's own words is not scored.
pub const MAX_TEXT: usize = 4_000;

/// Structural facts about a message that are not in its words.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    /// `support` or `privacy`.
    pub role: &'a str,
    /// The sender's domain belongs to a configured agency.
    pub agency_sender: bool,
    /// Subject begins with `Re:`/`AW:`/… but the message names no earlier one.
    pub fake_reply: bool,
    pub html_only: bool,
    pub attachments: usize,
    /// Links in the body (`http://`, `https://`, `www.`).
    pub links: usize,
    /// Rule signals (category names) that fired, e.g. `level1`, `right:access`.
    pub rule_signals: Vec<String>,
}

/// Feature extraction with optional names (for explanations).
pub struct Extract<'w> {
    bits: u32,
    pub buckets: Vec<u32>,
    names: Option<Vec<(u32, String)>>,
    /// Name only these buckets (sorted); `None`: all of them.
    wanted: Option<&'w [u32]>,
}

impl<'w> Extract<'w> {
    pub fn new(bits: u32, keep_names: bool, wanted: Option<&'w [u32]>) -> Self {
        Extract {
            bits,
            buckets: Vec::with_capacity(2048),
            names: keep_names.then(Vec::new),
            wanted,
        }
    }

    fn add(&mut self, ns: &str, parts: &[&str]) {
        let mut h = fnv(0x811c_9dc5, ns.as_bytes());
        for p in parts {
            h = fnv(h ^ 0x1f, p.as_bytes());
        }
        let b = h & ((1u32 << self.bits) - 1);
        self.buckets.push(b);
        if let Some(n) = &mut self.names {
            if self.wanted.is_none_or(|w| w.binary_search(&b).is_ok()) {
                n.push((b, format!("{ns}:{}", parts.join(" "))));
            }
        }
    }

    /// Sort and de-duplicate the buckets (each feature counts once).
    pub fn finish(mut self) -> (Vec<u32>, Vec<(u32, String)>) {
        self.buckets.sort_unstable();
        self.buckets.dedup();
        let mut names = self.names.take().unwrap_or_default();
        names.sort();
        names.dedup_by(|a, b| a.0 == b.0);
        (self.buckets, names)
    }
}

fn fnv(mut h: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Lower case with the common Latin diacritics folded away, so "está",
/// "esta" and "ESTÁ" are one word.
pub fn fold(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ą' | 'ă' => 'a',
        'ç' | 'ć' | 'č' => 'c',
        'ď' => 'd',
        'è' | 'é' | 'ê' | 'ë' | 'ę' | 'ě' => 'e',
        'ì' | 'í' | 'î' | 'ï' => 'i',
        'ł' | 'ľ' | 'ĺ' => 'l',
        'ñ' | 'ń' | 'ň' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ő' => 'o',
        'ř' => 'r',
        'ś' | 'š' | 'ș' | 'ş' => 's',
        'ť' | 'ț' => 't',
        'ù' | 'ú' | 'û' | 'ü' | 'ů' | 'ű' => 'u',
        'ý' | 'ÿ' => 'y',
        'ź' | 'ż' | 'ž' => 'z',
        'ß' => 's',
        other => other,
    }
}

/// Words of a text: runs of letters and digits, lower-cased and folded.
/// CJK characters each count as a word (no spaces between them).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        for c in ch.to_lowercase() {
            if is_cjk(c) {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                out.push(c.to_string());
            } else if c.is_alphanumeric() {
                cur.push(fold(c));
            } else {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                if matches!(c, '.' | '!' | '?' | ';' | ':' | ',') {
                    out.push(c.to_string());
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30ff | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xac00..=0xd7af)
}

/// Words that turn the next few words negative, in the languages we see.
/// Grammar, not triage knowledge: the scorer learns what a negated word means.
const NEGATIONS: &[&str] = &[
    "not",
    "no",
    "never",
    "dont",
    "don",
    "doesnt",
    "didnt",
    "without",
    "nicht",
    "kein",
    "keine",
    "keinen",
    "keinesfalls",
    "nie",
    "niemals",
    "ohne",
    "pas",
    "jamais",
    "sans",
    "ne",
    "nunca",
    "sin",
    "nao",
    "nem",
    "non",
    "senza",
    "mai",
    "niet",
    "geen",
    "nooit",
    "zonder",
    "bez",
    "inte",
    "aldrig",
    "utan",
    "ikke",
    "nein",
];

const NEG_WINDOW: usize = 5;

fn punctuation(w: &str) -> bool {
    matches!(w, "." | "!" | "?" | ";" | ":" | ",")
}

/// All features of one message; with `names`, the printable names of the
/// buckets in `names` (sorted), or of all when it is empty.
pub fn extract<'w>(
    bits: u32,
    subject: &str,
    body: &str,
    facts: &Facts<'_>,
    names: Option<&'w [u32]>,
) -> Extract<'w> {
    let keep = names.is_some();
    let wanted = names.filter(|w| !w.is_empty());
    let mut x = Extract::new(bits, keep, wanted);
    let body = clip(body, MAX_TEXT);
    for w in words(subject) {
        if !punctuation(&w) {
            x.add("s", &[&w]);
        }
    }
    let ws = words(body);
    let mut neg_left = 0usize;
    let mut prev: Option<&str> = None;
    for w in &ws {
        if punctuation(w) {
            neg_left = 0;
            prev = None;
            continue;
        }
        x.add("w", &[w]);
        if let Some(p) = prev {
            x.add("b", &[p, w]);
        }
        if neg_left > 0 {
            x.add("n", &[w]);
            neg_left -= 1;
        }
        if NEGATIONS.contains(&w.as_str()) {
            neg_left = NEG_WINDOW;
        }
        char_ngrams(&mut x, w);
        prev = Some(w);
    }
    facts_features(&mut x, facts, ws.len());
    x
}

fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Character 4-grams of a word padded with `<` `>` (whole short words too).
fn char_ngrams(x: &mut Extract<'_>, w: &str) {
    let n = w.chars().count() + 2;
    if n <= 4 || n > 40 {
        return;
    }
    // The padded word once, then every window as a slice of it (the hash
    // sees the same bytes as the characters joined).
    let mut padded = String::with_capacity(w.len() + 2);
    padded.push('<');
    padded.push_str(w);
    padded.push('>');
    let mut starts = [0usize; 41];
    for (k, (at, _)) in padded.char_indices().enumerate() {
        starts[k] = at;
    }
    starts[n] = padded.len();
    for k in 0..=n - 4 {
        x.add("c", &[&padded[starts[k]..starts[k + 4]]]);
    }
}

fn facts_features(x: &mut Extract<'_>, f: &Facts<'_>, nwords: usize) {
    x.add("role", &[f.role]);
    // The authentication verdict is not a feature: a deployment without a
    // trusted `Authentication-Results` server sees `none` on every message,
    // and the deterministic rules already act on it (a failure outside
    // every agency is spam; an agency that passes is never set aside).
    if f.agency_sender {
        x.add("sender", &["agency"]);
    }
    if f.fake_reply {
        x.add("meta", &["re-without-thread"]);
    }
    if f.html_only {
        x.add("meta", &["html-only"]);
    }
    if f.attachments > 0 {
        x.add("meta", &["attachment"]);
    }
    let links = match f.links {
        0 => "0",
        1 => "1",
        2..=4 => "2-4",
        _ => "5+",
    };
    x.add("links", &[links]);
    let len = match nwords {
        0..=15 => "tiny",
        16..=60 => "short",
        61..=250 => "medium",
        _ => "long",
    };
    x.add("len", &[len]);
    for s in &f.rule_signals {
        x.add("rule", &[s]);
        x.add("rule", &[s, f.role]);
    }
}

/// Links in a text.
pub fn count_links(text: &str) -> usize {
    let l = text.to_ascii_lowercase();
    l.matches("http://").count() + l.matches("https://").count() + l.matches("www.").count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_accents_and_split_cjk() {
        assert_eq!(words("Está CAÍDO, ¿no?"), ["esta", "caido", ",", "no", "?"]);
        assert_eq!(words("サイト表示"), ["サ", "イ", "ト", "表", "示"]);
        assert_eq!(words("Łódź żółć"), ["lodz", "zolc"]);
    }

    #[test]
    fn negation_scopes_the_next_words_up_to_punctuation() {
        let f = Facts::default();
        let (_, names) = extract(
            18,
            "",
            "please do not delete my account. delete the note",
            &f,
            Some(&[]),
        )
        .finish();
        let names: Vec<&str> = names.iter().map(|(_, n)| n.as_str()).collect();
        assert!(names.contains(&"n:delete"), "{names:?}");
        assert!(names.contains(&"n:account"));
        assert!(!names.contains(&"n:note"), "the full stop ends the scope");
    }

    #[test]
    fn buckets_are_sorted_unique_and_bounded() {
        let f = Facts::default();
        let (b, _) = extract(10, "x", "a a a b b", &f, None).finish();
        assert!(b.windows(2).all(|w| w[0] < w[1]));
        assert!(b.iter().all(|&v| v < 1024));
    }

    #[test]
    fn long_text_is_clipped_on_a_char_boundary() {
        let s = "é".repeat(MAX_TEXT);
        assert!(clip(&s, MAX_TEXT).len() <= MAX_TEXT);
    }
}
