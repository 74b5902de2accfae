//! Features for the learned scorer: hashed word unigrams and bigrams,
//! character n-grams inside words (robust to inflection, typos and
//! languages nobody hand-tuned), negation-scoped words, a few structural
//! facts about the message, and the phrase rules' own signals. Pure: text
//! and facts in, sorted unique bucket numbers out.
//!
//! Every feature keeps a printable name on request ([`Extract::named`]) so
//! the scorer can say which features weighed most in `reasons`.

use super::rules::floor;

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

/// Where a feature came from, packed in a u32 so naming it later needs no
/// second pass over the text: namespace in the top 3 bits, the token index
/// in the next 23, a position inside the token in the low 6.
const NS_SUBJECT: u32 = 0;
const NS_WORD: u32 = 1;
const NS_BIGRAM: u32 = 2;
const NS_NEG: u32 = 3;
const NS_CHAR: u32 = 4;
const NS_FACT: u32 = 5;

fn origin(ns: u32, idx: usize, k: usize) -> u32 {
    (ns << 29) | ((idx.min((1 << 23) - 1) as u32) << 6) | (k.min(63) as u32)
}

const fn fnv_const(mut h: u32, bytes: &[u8]) -> u32 {
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u32;
        h = h.wrapping_mul(0x0100_0193);
        i += 1;
    }
    h
}

const FNV_OFFSET: u32 = 0x811c_9dc5;
const SEED_S: u32 = fnv_const(FNV_OFFSET, b"s");
const SEED_W: u32 = fnv_const(FNV_OFFSET, b"w");
const SEED_B: u32 = fnv_const(FNV_OFFSET, b"b");
const SEED_N: u32 = fnv_const(FNV_OFFSET, b"n");
const SEED_C: u32 = fnv_const(FNV_OFFSET, b"c");

/// Words of a text in one buffer (no allocation per word): token `i` is
/// `buf[spans[i].0..spans[i].1]`. Punctuation that ends a negation scope
/// is a token of its own.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    buf: String,
    spans: Vec<(u32, u32)>,
}

impl Tokens {
    /// Runs of letters and digits, lower-cased and folded; each CJK
    /// character is a word (no spaces between them).
    pub fn of(text: &str) -> Tokens {
        let mut t = Tokens {
            buf: String::with_capacity(text.len()),
            spans: Vec::with_capacity(text.len() / 5 + 1),
        };
        let mut start = 0usize;
        for ch in text.chars() {
            if ch.is_ascii() {
                let c = ch.to_ascii_lowercase();
                if c.is_ascii_alphanumeric() {
                    t.buf.push(c);
                } else {
                    t.end(&mut start);
                    if matches!(c, '.' | '!' | '?' | ';' | ':' | ',') {
                        t.buf.push(c);
                        t.end(&mut start);
                    }
                }
                continue;
            }
            for c in ch.to_lowercase() {
                if is_cjk(c) {
                    t.end(&mut start);
                    t.buf.push(c);
                    t.end(&mut start);
                } else if c.is_alphanumeric() {
                    t.buf.push(fold(c));
                } else {
                    t.end(&mut start);
                }
            }
        }
        t.end(&mut start);
        t
    }

    fn end(&mut self, start: &mut usize) {
        if self.buf.len() > *start {
            self.spans.push((*start as u32, self.buf.len() as u32));
        }
        *start = self.buf.len();
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn get(&self, i: usize) -> &str {
        self.spans
            .get(i)
            .and_then(|&(a, b)| self.buf.get(a as usize..b as usize))
            .unwrap_or("")
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// A message's features: sorted unique buckets, and for each the place it
/// came from, so the few that weighed most can be named on demand.
#[derive(Debug, Clone, Default)]
pub struct Features {
    pub buckets: Vec<u32>,
    origins: Vec<u32>,
    subject: Tokens,
    body: Tokens,
}

impl Features {
    /// The printable name of a bucket (`w:delete`, `b:not delete`,
    /// `c:<del`, `rule:level1`), or `None` when the message has no such
    /// feature. `facts` must be the ones the features were extracted with.
    pub fn name(&self, bucket: u32, facts: &Facts<'_>) -> Option<String> {
        let at = self.buckets.binary_search(&bucket).ok()?;
        let o = *self.origins.get(at)?;
        let idx = ((o >> 6) & ((1 << 23) - 1)) as usize;
        let k = (o & 63) as usize;
        Some(match o >> 29 {
            NS_SUBJECT => format!("s:{}", self.subject.get(idx)),
            NS_WORD => format!("w:{}", self.body.get(idx)),
            NS_BIGRAM => format!(
                "b:{} {}",
                self.body.get(idx.saturating_sub(1)),
                self.body.get(idx)
            ),
            NS_NEG => format!("n:{}", self.body.get(idx)),
            NS_CHAR => {
                let padded = format!("<{}>", self.body.get(idx));
                let gram: String = padded.chars().skip(k).take(4).collect();
                format!("c:{gram}")
            }
            _ => {
                let mut name = None;
                let mut i = 0usize;
                facts_features(facts, self.body.len(), &mut |ns, parts| {
                    if i == idx {
                        name = Some(format!("{ns}:{}", parts.join(" ")));
                    }
                    i += 1;
                });
                name?
            }
        })
    }
}

/// Hashes features into buckets, each with its origin.
struct Extract {
    mask: u32,
    items: Vec<u64>,
}

impl Extract {
    fn add(&mut self, origin: u32, seed: u32, parts: &[&str]) {
        let mut h = seed;
        for p in parts {
            h = fnv(h ^ 0x1f, p.as_bytes());
        }
        self.items
            .push((u64::from(h & self.mask) << 32) | u64::from(origin));
    }

    /// Sort and de-duplicate (each feature counts once; a bucket keeps the
    /// first origin that reached it).
    fn finish(mut self, subject: Tokens, body: Tokens) -> Features {
        self.items.sort_unstable();
        let mut buckets = Vec::with_capacity(self.items.len());
        let mut origins = Vec::with_capacity(self.items.len());
        for it in self.items {
            let b = (it >> 32) as u32;
            if buckets.last() != Some(&b) {
                buckets.push(b);
                origins.push(it as u32);
            }
        }
        Features {
            buckets,
            origins,
            subject,
            body,
        }
    }
}

#[inline]
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

/// All features of one message.
pub fn extract(bits: u32, subject: &str, body: &str, facts: &Facts<'_>) -> Features {
    let mut x = Extract {
        mask: (1u32 << bits) - 1,
        items: Vec::with_capacity(2048),
    };
    let st = Tokens::of(subject);
    for (i, w) in st.iter().enumerate() {
        if !punctuation(w) {
            x.add(origin(NS_SUBJECT, i, 0), SEED_S, &[w]);
        }
    }
    let ws = Tokens::of(clip(body, MAX_TEXT));
    let mut neg_left = 0usize;
    let mut prev: Option<&str> = None;
    for (i, w) in ws.iter().enumerate() {
        if punctuation(w) {
            neg_left = 0;
            prev = None;
            continue;
        }
        x.add(origin(NS_WORD, i, 0), SEED_W, &[w]);
        if let Some(p) = prev {
            x.add(origin(NS_BIGRAM, i, 0), SEED_B, &[p, w]);
        }
        if neg_left > 0 {
            x.add(origin(NS_NEG, i, 0), SEED_N, &[w]);
            neg_left -= 1;
        }
        if NEGATIONS.contains(&w) {
            neg_left = NEG_WINDOW;
        }
        char_ngrams(&mut x, i, w);
        prev = Some(w);
    }
    let mut k = 0usize;
    facts_features(facts, ws.len(), &mut |ns, parts| {
        x.add(origin(NS_FACT, k, 0), fnv(FNV_OFFSET, ns.as_bytes()), parts);
        k += 1;
    });
    x.finish(st, ws)
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
fn char_ngrams(x: &mut Extract, idx: usize, w: &str) {
    let n = w.chars().count() + 2;
    if n <= 4 || n > 40 {
        return;
    }
    // The padded word once, then every window as a slice of it (the hash
    // sees the same bytes as the characters joined).
    let mut padded = [0u8; 40 * 4 + 2];
    let bytes = w.as_bytes();
    padded[0] = b'<';
    padded[1..=bytes.len()].copy_from_slice(bytes);
    padded[bytes.len() + 1] = b'>';
    let padded = std::str::from_utf8(&padded[..bytes.len() + 2]).unwrap_or("");
    let mut starts = [0usize; 41];
    for (k, (at, _)) in padded.char_indices().enumerate() {
        starts[k] = at;
    }
    starts[n] = padded.len();
    for k in 0..=n - 4 {
        x.add(
            origin(NS_CHAR, idx, k),
            SEED_C,
            &[&padded[starts[k]..starts[k + 4]]],
        );
    }
}

/// The structural features, in a fixed order (their index names them).
fn facts_features(f: &Facts<'_>, nwords: usize, emit: &mut dyn FnMut(&str, &[&str])) {
    emit("role", &[f.role]);
    // The authentication verdict is not a feature: a deployment without a
    // trusted `Authentication-Results` server sees `none` on every message,
    // and the deterministic rules already act on it (a failure outside
    // every agency is spam; an agency that passes is never set aside).
    if f.agency_sender {
        emit("sender", &["agency"]);
    }
    if f.fake_reply {
        emit("meta", &["re-without-thread"]);
    }
    if f.html_only {
        emit("meta", &["html-only"]);
    }
    if f.attachments > 0 {
        emit("meta", &["attachment"]);
    }
    let links = match f.links {
        0 => "0",
        1 => "1",
        2..=4 => "2-4",
        _ => "5+",
    };
    emit("links", &[links]);
    let len = match nwords {
        0..=15 => "tiny",
        16..=60 => "short",
        61..=250 => "medium",
        _ => "long",
    };
    emit("len", &[len]);
    for s in &f.rule_signals {
        emit("rule", &[s]);
        emit("rule", &[s, f.role]);
    }
}

/// One place where the phrase rules found a right named.
pub struct Mention<'a> {
    /// `subject` or `body`.
    pub part: &'a str,
    /// The part's lower-cased text, as the rules scanned it.
    pub lower: &'a str,
    pub start: usize,
    pub end: usize,
    /// The rules saw a negation earlier in its clause.
    pub negated: bool,
}

const MENTION_BEFORE: usize = 80;
const MENTION_AFTER: usize = 48;

/// The features of every place a letter names one right, for the model's
/// mention head: the words just before and after each mention in its
/// sentence (by themselves, and with the right's name), whether the rules saw a
/// negation, whether the sentence is a question, where it was, how often
/// the right is named and how many rights the letter names. Grammar and
/// position, no triage knowledge: the head learns which contexts ask
/// ("please delete"), which only name ("not asking you to delete", "may
/// ask for deletion later", "profiling, which I object to").
pub fn mentions(bits: u32, right: &str, at: &[Mention<'_>], rights_named: usize) -> Vec<u32> {
    let mask = (1u32 << bits) - 1;
    let seed = fnv(FNV_OFFSET, b"mention");
    let mut out: Vec<u32> = Vec::with_capacity(at.len() * 40 + 4);
    let mut add = |parts: &[&str]| {
        let mut h = seed;
        for p in parts {
            h = fnv(h ^ 0x1f, p.as_bytes());
        }
        out.push(h & mask);
    };
    add(&["right", right]);
    let times = match at.len() {
        0 | 1 => "1",
        2 => "2",
        _ => "3+",
    };
    add(&["times", times]);
    add(&["right-times", right, times]);
    let named = match rights_named {
        0 | 1 => "1",
        2 => "2",
        3 => "3",
        _ => "4+",
    };
    add(&["rights-named", named]);
    for m in at {
        let start = floor(m.lower, m.start.min(m.lower.len()));
        let end = floor(m.lower, m.end.clamp(start, m.lower.len()));
        let from = floor(m.lower, start.saturating_sub(MENTION_BEFORE));
        let to = floor(m.lower, (end + MENTION_AFTER).min(m.lower.len()));
        let mut before = &m.lower[from..start];
        if let Some(i) = before.rfind(['.', '!', '?', ';']) {
            before = &before[i + 1..];
        }
        let mut after = &m.lower[end..to];
        let question = match after.find(['.', '!', '?', ';']) {
            Some(i) => {
                let q = after[i..].starts_with('?');
                after = &after[..i];
                q
            }
            None => false,
        };
        add(&["part", m.part]);
        if m.negated {
            add(&["negated"]);
            add(&["right-negated", right]);
        }
        if question {
            add(&["question"]);
        }
        let bt = Tokens::of(before);
        let words: Vec<&str> = bt.iter().filter(|w| !punctuation(w)).collect();
        for (d, w) in words.iter().rev().take(8).enumerate() {
            add(&["b", w]);
            add(&["rb", right, w]);
            if d < 2 {
                add(&["b-near", w]);
            }
        }
        let at_ = Tokens::of(after);
        for (d, w) in at_.iter().filter(|w| !punctuation(w)).take(5).enumerate() {
            add(&["a", w]);
            add(&["ra", right, w]);
            if d < 2 {
                add(&["a-near", w]);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
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
        let words = |s: &str| Tokens::of(s).iter().map(String::from).collect::<Vec<_>>();
        assert_eq!(words("Está CAÍDO, ¿no?"), ["esta", "caido", ",", "no", "?"]);
        assert_eq!(words("サイト表示"), ["サ", "イ", "ト", "表", "示"]);
        assert_eq!(words("Łódź żółć"), ["lodz", "zolc"]);
    }

    #[test]
    fn negation_scopes_the_next_words_up_to_punctuation() {
        let f = Facts::default();
        let x = extract(
            18,
            "",
            "please do not delete my account. delete the note",
            &f,
        );
        let names: Vec<String> = x.buckets.iter().filter_map(|&b| x.name(b, &f)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert!(names.contains(&"n:delete"), "{names:?}");
        assert!(names.contains(&"n:account"));
        assert!(!names.contains(&"n:note"), "the full stop ends the scope");
    }

    #[test]
    fn mentions_see_the_words_around_and_the_negation() {
        let text = "please delete my account. i do not want you to delete the notes";
        let at = |start: usize, negated: bool| Mention {
            part: "body",
            lower: text,
            start,
            end: start + 6,
            negated,
        };
        let asked = mentions(12, "erasure", &[at(7, false)], 1);
        let named = mentions(
            12,
            "erasure",
            &[at(text.rfind("delete").unwrap_or(0), true)],
            1,
        );
        assert!(asked.windows(2).all(|w| w[0] < w[1]));
        assert!(asked.iter().chain(&named).all(|&b| b < 4096));
        assert_ne!(asked, named);
        // The sentence ends at the full stop: the second mention does not
        // see "please".
        let please = mentions(12, "erasure", &[at(7, false)], 1);
        let both = mentions(
            12,
            "erasure",
            &[at(7, false), at(text.rfind("delete").unwrap_or(0), true)],
            1,
        );
        assert!(please.len() < both.len());
        // Out-of-range offsets from a damaged hit do not panic.
        let _ = mentions(12, "erasure", &[at(text.len() + 10, false)], 1);
    }

    #[test]
    fn buckets_are_sorted_unique_and_bounded() {
        let f = Facts::default();
        let b = extract(10, "x", "a a a b b", &f).buckets;
        assert!(b.windows(2).all(|w| w[0] < w[1]));
        assert!(b.iter().all(|&v| v < 1024));
    }

    #[test]
    fn long_text_is_clipped_on_a_char_boundary() {
        let s = "é".repeat(MAX_TEXT);
        assert!(clip(&s, MAX_TEXT).len() <= MAX_TEXT);
    }
}
