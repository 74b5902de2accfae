//! Triage rules as data: phrase → weight tables per signal, compiled in from
//! `rules.toml` and merged with the `[triage.rules]` section of the config
//! (same shape; a weight of 0 switches a built-in phrase off). All phrases
//! are compiled into one Aho-Corasick automaton, so a message is scanned
//! once whatever the number of rules.

use crate::policy::{Jurisdiction, Right};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Phrase → weight.
pub type Phrases = BTreeMap<String, f32>;

/// The rule file (built-in and config override share this shape).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuleFile {
    pub negation: Phrases,
    pub clause_break: Phrases,
    pub support: SupportRules,
    pub privacy: PrivacyRules,
    pub hygiene: HygieneRules,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SupportRules {
    pub level1: Phrases,
    pub not_level1: Phrases,
    pub no_error: Phrases,
    pub critical: Phrases,
    pub broken: Phrases,
    pub error: Phrases,
    pub wrong: Phrases,
    pub feature: Phrases,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyRules {
    pub context: Phrases,
    pub rights: BTreeMap<Right, Phrases>,
    pub jurisdiction: BTreeMap<Jurisdiction, Phrases>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HygieneRules {
    pub autoreply_subjects: Phrases,
}

/// The signal a phrase belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cat {
    Negation,
    ClauseBreak,
    Level1,
    NotLevel1,
    NoError,
    Critical,
    Broken,
    Error,
    Wrong,
    Feature,
    PrivacyContext,
    Right(Right),
    Jurisdiction(Jurisdiction),
    AutoreplySubject,
}

#[derive(Debug, Clone)]
struct Pattern {
    cat: Cat,
    weight: f32,
    phrase: String,
    prefix: bool,
}

/// One phrase found in a text.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'r> {
    pub cat: Cat,
    pub weight: f32,
    pub phrase: &'r str,
    pub start: usize,
    pub end: usize,
}

/// A part of the message (subject, body), lower-cased and scanned once.
#[derive(Debug)]
pub struct Scanned<'r> {
    pub part: &'static str,
    pub lower: String,
    pub hits: Vec<Hit<'r>>,
    /// The negation and clause-break hits only, for [`negated`].
    pub neg: Vec<Hit<'r>>,
}

/// Lower-case and scan each (part, text) once; every signal reads these.
pub fn scan_parts<'r>(rules: &'r Rules, texts: &[(&'static str, &str)]) -> Vec<Scanned<'r>> {
    texts
        .iter()
        .map(|(part, text)| {
            let lower = text.to_lowercase();
            let hits = rules.scan(&lower);
            let neg = hits
                .iter()
                .filter(|h| matches!(h.cat, Cat::Negation | Cat::ClauseBreak))
                .copied()
                .collect();
            Scanned {
                part,
                lower,
                hits,
                neg,
            }
        })
        .collect()
}

/// Compiled rules.
#[derive(Debug)]
pub struct Rules {
    ac: AhoCorasick,
    patterns: Vec<Pattern>,
}

const BUILTIN: &str = include_str!("rules.toml");

impl Rules {
    /// The built-in rules, compiled once.
    pub fn builtin() -> Result<Arc<Rules>, String> {
        static R: OnceLock<Result<Arc<Rules>, String>> = OnceLock::new();
        R.get_or_init(|| {
            builtin_file()
                .and_then(|f| Rules::compile(&f))
                .map(Arc::new)
        })
        .clone()
    }

    /// Built-in rules merged with `overrides`.
    pub fn with_overrides(overrides: &RuleFile) -> Result<Rules, String> {
        let mut file = builtin_file()?;
        merge(&mut file, overrides);
        Rules::compile(&file)
    }

    pub fn compile(file: &RuleFile) -> Result<Rules, String> {
        let mut patterns = Vec::new();
        let mut add = |cat: Cat, table: &Phrases| {
            for (phrase, weight) in table {
                if *weight <= 0.0 {
                    continue;
                }
                let lower = phrase.trim().to_lowercase();
                let (text, prefix) = match lower.strip_suffix('*') {
                    Some(t) => (t.to_string(), true),
                    None => (lower, false),
                };
                if text.is_empty() {
                    continue;
                }
                patterns.push(Pattern {
                    cat,
                    weight: *weight,
                    phrase: text,
                    prefix,
                });
            }
        };
        add(Cat::Negation, &file.negation);
        add(Cat::ClauseBreak, &file.clause_break);
        add(Cat::Level1, &file.support.level1);
        add(Cat::NotLevel1, &file.support.not_level1);
        add(Cat::NoError, &file.support.no_error);
        add(Cat::Critical, &file.support.critical);
        add(Cat::Broken, &file.support.broken);
        add(Cat::Error, &file.support.error);
        add(Cat::Wrong, &file.support.wrong);
        add(Cat::Feature, &file.support.feature);
        add(Cat::PrivacyContext, &file.privacy.context);
        for (r, t) in &file.privacy.rights {
            add(Cat::Right(*r), t);
        }
        for (j, t) in &file.privacy.jurisdiction {
            add(Cat::Jurisdiction(*j), t);
        }
        add(Cat::AutoreplySubject, &file.hygiene.autoreply_subjects);
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(patterns.iter().map(|p| p.phrase.as_str()))
            .map_err(|e| format!("cannot compile triage rules: {e}"))?;
        Ok(Rules { ac, patterns })
    }

    /// Every phrase occurrence in `lower` (already lower-cased), on word
    /// boundaries, in text order.
    pub fn scan<'r>(&'r self, lower: &str) -> Vec<Hit<'r>> {
        let mut hits = Vec::new();
        for m in self.ac.find_overlapping_iter(lower) {
            let Some(p) = self.patterns.get(m.pattern().as_usize()) else {
                continue;
            };
            let (s, e) = (m.start(), m.end());
            // Word boundaries apply to scripts that separate words with
            // spaces; CJK phrases match anywhere.
            let spaced = |c: char| c.is_alphanumeric() && c < '\u{2E80}';
            let before_ok = lower[..s]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric())
                || !p.phrase.chars().next().is_some_and(spaced);
            let after_ok = p.prefix
                || lower[e..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_alphanumeric())
                || !p.phrase.chars().next_back().is_some_and(spaced);
            if before_ok && after_ok {
                hits.push(Hit {
                    cat: p.cat,
                    weight: p.weight,
                    phrase: &p.phrase,
                    start: s,
                    end: e,
                });
            }
        }
        hits
    }

    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }
}

/// Parse the built-in rule file.
pub fn builtin_file() -> Result<RuleFile, String> {
    toml::from_str(BUILTIN).map_err(|e| format!("built-in triage rules: {e}"))
}

fn merge_table(base: &mut Phrases, over: &Phrases) {
    for (k, v) in over {
        base.insert(k.clone(), *v);
    }
}

/// Apply `over` on top of `base`: entries are added or re-weighted.
pub fn merge(base: &mut RuleFile, over: &RuleFile) {
    merge_table(&mut base.negation, &over.negation);
    merge_table(&mut base.clause_break, &over.clause_break);
    merge_table(&mut base.support.level1, &over.support.level1);
    merge_table(&mut base.support.not_level1, &over.support.not_level1);
    merge_table(&mut base.support.no_error, &over.support.no_error);
    merge_table(&mut base.support.critical, &over.support.critical);
    merge_table(&mut base.support.broken, &over.support.broken);
    merge_table(&mut base.support.error, &over.support.error);
    merge_table(&mut base.support.wrong, &over.support.wrong);
    merge_table(&mut base.support.feature, &over.support.feature);
    merge_table(&mut base.privacy.context, &over.privacy.context);
    for (r, t) in &over.privacy.rights {
        merge_table(base.privacy.rights.entry(*r).or_default(), t);
    }
    for (j, t) in &over.privacy.jurisdiction {
        merge_table(base.privacy.jurisdiction.entry(*j).or_default(), t);
    }
    merge_table(
        &mut base.hygiene.autoreply_subjects,
        &over.hygiene.autoreply_subjects,
    );
}

/// Is the hit at `start` negated by a negation word earlier in its clause
/// (within `window` bytes, not across a clause break or punctuation)?
pub fn negated(lower: &str, hits: &[Hit<'_>], start: usize, window: usize) -> Option<String> {
    let from = start.saturating_sub(window);
    // The clause starts after the last punctuation or clause-break word.
    let mut clause_start = from;
    for (i, c) in lower[floor(lower, from)..start].char_indices() {
        if matches!(c, '.' | '!' | '?' | ';' | ',' | '\n' | ':' | '(' | ')') {
            clause_start = floor(lower, from) + i + c.len_utf8();
        }
    }
    for h in hits {
        if h.cat == Cat::ClauseBreak && h.start >= clause_start && h.end <= start {
            clause_start = h.end;
        }
    }
    hits.iter()
        .rfind(|h| h.cat == Cat::Negation && h.start >= clause_start && h.end <= start)
        .map(|h| h.phrase.to_string())
}

/// `i`, moved back to a char boundary of `s`.
pub(crate) fn floor(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_parse_and_compile() {
        let f = builtin_file().expect("built-in rules parse");
        assert!(f.privacy.rights.len() >= 10);
        let r = Rules::compile(&f).expect("compile");
        assert!(r.pattern_count() > 300, "{}", r.pattern_count());
    }

    #[test]
    fn word_boundaries_and_prefixes() {
        let r = Rules::builtin().expect("rules");
        let hits =
            |t: &str| -> Vec<String> { r.scan(t).iter().map(|h| h.phrase.to_string()).collect() };
        assert!(hits("the ico said").contains(&"ico".to_string()));
        assert!(!hits("the medico said").contains(&"ico".to_string()));
        assert!(hits("please rectify it").contains(&"rectif".to_string()));
    }

    #[test]
    fn overrides_add_and_switch_off() {
        let mut over = RuleFile::default();
        over.support.level1.insert("portal is dead".into(), 1.0);
        over.support.level1.insert("times out".into(), 0.0);
        let r = Rules::with_overrides(&over).expect("compile");
        let cats = |t: &str| r.scan(t).iter().filter(|h| h.cat == Cat::Level1).count();
        assert_eq!(cats("the portal is dead"), 1);
        assert_eq!(cats("it times out"), 0);
    }

    #[test]
    fn negation_stays_in_its_clause() {
        let r = Rules::builtin().expect("rules");
        let t = "please do not delete my account";
        let hits = r.scan(t);
        let del = hits.iter().find(|h| h.phrase == "delete my").expect("hit");
        assert!(negated(t, &hits, del.start, 40).is_some());
        let t = "i am not sure, but please delete my account";
        let hits = r.scan(t);
        let del = hits.iter().find(|h| h.phrase == "delete my").expect("hit");
        assert_eq!(negated(t, &hits, del.start, 40), None);
    }
}
