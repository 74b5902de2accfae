//! Data-subject requests: which rights a letter asks for, and under which
//! law, from what it says (residence, articles, "DSGVO", "California
//! resident", …) — never from the language it is written in. A right
//! mentioned only in the negative ("please do not delete my account") is not
//! requested. GDPR names are used unless the law is CCPA.

use super::rules::{negated, Cat, Scanned};
use crate::config::Role;
use crate::policy::{Jurisdiction, Right};
use std::collections::BTreeMap;

/// How far before a right's phrase a negation in its clause still counts.
pub(crate) const NEGATION_WINDOW: usize = 40;

/// `Some((rights, jurisdiction))` when the texts make a privacy request.
pub fn detect(
    parts: &[Scanned<'_>],
    role: Role,
    reasons: &mut Vec<String>,
) -> Option<(Vec<Right>, Jurisdiction)> {
    let mut right_score: BTreeMap<Right, f32> = BTreeMap::new();
    let mut jur_score: BTreeMap<&'static str, (Jurisdiction, f32, String)> = BTreeMap::new();
    let mut context = 0.0f32;
    let mut counted: std::collections::HashSet<(Right, String)> = std::collections::HashSet::new();
    let mut local = Vec::new();
    for Scanned {
        part,
        lower,
        hits,
        neg,
    } in parts
    {
        let (lower, hits) = (lower.as_str(), hits.as_slice());
        for h in hits {
            match h.cat {
                Cat::PrivacyContext => {
                    if context < 1.0 {
                        local.push(format!("{part} mentions {:?}", h.phrase));
                    }
                    context += h.weight;
                }
                Cat::Right(r) => {
                    if !counted.insert((r, h.phrase.to_string())) {
                        continue;
                    }
                    if let Some(n) = negated(lower, neg, h.start, NEGATION_WINDOW) {
                        local.push(format!(
                            "{part}: {:?} negated by {n:?}; {} not requested",
                            h.phrase,
                            r.as_str()
                        ));
                        continue;
                    }
                    let e = right_score.entry(r).or_insert(0.0);
                    if *e < 1.0 {
                        local.push(format!(
                            "{}: {part} says {:?}",
                            r.to_gdpr().as_str(),
                            h.phrase
                        ));
                    }
                    *e += h.weight;
                }
                Cat::Jurisdiction(j) => {
                    let e = jur_score
                        .entry(j.as_str())
                        .or_insert((j, 0.0, String::new()));
                    e.1 += h.weight;
                    if e.2.is_empty() {
                        e.2 = format!("{part} says {:?}", h.phrase);
                    }
                }
                _ => {}
            }
        }
    }
    let mut rights: Vec<Right> = right_score
        .iter()
        .filter(|(_, s)| **s >= 1.0)
        .map(|(r, _)| r.to_gdpr())
        .collect();
    let any_jurisdiction = strongest(&jur_score).is_some();
    // Two full signals for rights make a request even without the words
    // "personal data" (e.g. "I withdraw that consent").
    let strong = right_score.values().sum::<f32>() >= 2.0;
    if rights.is_empty() || !(context >= 1.0 || role == Role::Privacy || any_jurisdiction || strong)
    {
        return None;
    }
    if role == Role::Privacy && context < 1.0 {
        local.push("arrived at the privacy mailbox".into());
    }
    reasons.extend(local);
    let mut jurisdiction = Jurisdiction::Unknown;
    if let Some((j, why)) = strongest(&jur_score) {
        reasons.push(format!("jurisdiction {}: {why}", j.as_str()));
        jurisdiction = j;
    }
    if jurisdiction == Jurisdiction::Unknown {
        reasons.push("jurisdiction unknown: no residence or law stated".into());
    }
    if jurisdiction == Jurisdiction::Ccpa {
        rights = rights.into_iter().map(Right::to_ccpa).collect();
    }
    rights.sort();
    rights.dedup();
    Some((rights, jurisdiction))
}

type JurScores = BTreeMap<&'static str, (Jurisdiction, f32, String)>;

/// The law a residence statement or citation names, by precedence CCPA >
/// UK GDPR > GDPR (a Californian citing the GDPR is still under the CCPA).
fn strongest(scores: &JurScores) -> Option<(Jurisdiction, String)> {
    [Jurisdiction::Ccpa, Jurisdiction::UkGdpr, Jurisdiction::Gdpr]
        .into_iter()
        .find_map(|j| {
            let (_, s, why) = scores.get(j.as_str())?;
            (*s >= 1.0).then(|| (j, why.clone()))
        })
}

/// The jurisdiction the texts state (residence, law named), whether or not
/// they make a request: `Some((jurisdiction, why))`.
pub fn stated_jurisdiction(parts: &[Scanned<'_>]) -> Option<(Jurisdiction, String)> {
    let mut scores: JurScores = BTreeMap::new();
    for p in parts {
        for h in &p.hits {
            if let Cat::Jurisdiction(j) = h.cat {
                let e = scores.entry(j.as_str()).or_insert((j, 0.0, String::new()));
                e.1 += h.weight;
                if e.2.is_empty() {
                    e.2 = format!("{} says {:?}", p.part, h.phrase);
                }
            }
        }
    }
    strongest(&scores)
}
