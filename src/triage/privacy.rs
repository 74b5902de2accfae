//! Data-subject requests: which rights a letter asks for, and under which
//! law, from what it says (residence, articles, "DSGVO", "California
//! resident", …) and never from the language it is written in. A right
//! mentioned only in the negative ("do not delete my account") is not asked.

use crate::config::Role;
use crate::policy::{Jurisdiction, Right};

/// Phrases per right (GDPR names; mapped to CCPA names when the law is CCPA).
const RIGHTS: &[(Right, &[&str])] = &[
    (
        Right::Access,
        &[
            "access to my",
            "access to the personal",
            "copy of my",
            "copy of the data",
            "what personal data",
            "what data you",
            "what personal information",
            "right to know",
            "request to know",
            "subject access",
            "art. 15",
            "article 15",
            "auskunft",
            "accès à mes",
            "droit d'accès",
            "acceso a mis",
            "derecho de acceso",
        ],
    ),
    (
        Right::Erasure,
        &[
            "delete my",
            "deletion of my",
            "erase my",
            "erasure",
            "remove my data",
            "remove my personal",
            "right to be forgotten",
            "art. 17",
            "article 17",
            "löschung",
            "löschen",
            "effacement",
            "supprimer mes",
            "suppression de mes",
            "supresión",
            "borrar mis",
            "eliminar mis",
            "to delete it",
            "delete it",
            "delete all",
        ],
    ),
    (
        Right::Rectification,
        &[
            "rectif",
            "correct my",
            "correction of my",
            "update my personal",
            "is wrong in your records",
            "art. 16",
            "article 16",
            "berichtigung",
            "rectificación",
            "corriger mes",
        ],
    ),
    (
        Right::Restriction,
        &[
            "restrict",
            "art. 18",
            "article 18",
            "einschränkung",
            "limitation du traitement",
            "limitación del tratamiento",
            "limit the use",
            "limit use",
        ],
    ),
    (
        Right::Portability,
        &[
            "portab",
            "machine-readable",
            "machine readable",
            "art. 20",
            "article 20",
            "übertragbarkeit",
            "portabilité",
            "portabilidad",
        ],
    ),
    (
        Right::Objection,
        &[
            "object to",
            "objection",
            "art. 21",
            "article 21",
            "widerspruch",
            "widerspreche",
            "opposition",
            "m'oppose",
            "oposición",
            "me opongo",
            "opt out",
            "opt-out",
            "do not sell",
            "do not share",
        ],
    ),
    (
        Right::AutomatedDecision,
        &[
            "automated decision",
            "automated individual decision",
            "profiling",
            "art. 22",
            "article 22",
            "automatisierte entscheidung",
            "décision automatisée",
            "decisión automatizada",
        ],
    ),
    (
        Right::ConsentWithdrawal,
        &[
            "withdraw my consent",
            "withdraw consent",
            "revoke my consent",
            "art. 7(3)",
            "einwilligung widerrufe",
            "widerruf meiner einwilligung",
            "retire mon consentement",
            "retirer mon consentement",
            "retiro mi consentimiento",
            "revoco mi consentimiento",
        ],
    ),
];

/// Words that make a letter about personal data at all.
const CONTEXT: &[&str] = &[
    "personal data",
    "personal information",
    "my data",
    "my information",
    "gdpr",
    "dsgvo",
    "rgpd",
    "ccpa",
    "cpra",
    "data protection",
    "datenschutz",
    "données personnelles",
    "datos personales",
    "privacy",
    "data subject",
    "personenbezogene",
];

const NEGATIONS: &[&str] = &[
    "do not ",
    "don't ",
    "dont ",
    "please not ",
    "not to ",
    "nicht ",
    "ne pas ",
    "no quiero ",
    "no ",
];

/// `Some((rights, jurisdiction))` when the texts make a privacy request.
pub fn detect(
    texts: &[(&str, &str)],
    role: Role,
    reasons: &mut Vec<String>,
) -> Option<(Vec<Right>, Jurisdiction)> {
    let mut rights: Vec<Right> = Vec::new();
    let mut context = false;
    let mut local = Vec::new();
    let mut all = String::new();
    for (part, text) in texts {
        let lower = text.to_lowercase();
        all.push_str(&lower);
        all.push('\n');
        if let Some(c) = CONTEXT.iter().find(|c| lower.contains(*c)) {
            context = true;
            local.push(format!("{part} mentions {c:?}"));
        }
        for (right, phrases) in RIGHTS {
            for p in *phrases {
                if let Some(pos) = lower.find(p) {
                    let start = pos.saturating_sub(24);
                    let window = &lower[floor(&lower, start)..pos];
                    if NEGATIONS.iter().any(|n| window.contains(n)) {
                        local.push(format!(
                            "{part}: {p:?} is negated; {} not requested",
                            right.as_str()
                        ));
                        continue;
                    }
                    if !rights.contains(right) {
                        rights.push(*right);
                        local.push(format!("{}: {part} says {p:?}", right.as_str()));
                    }
                    break;
                }
            }
        }
    }
    if rights.is_empty() || !(context || role == Role::Privacy) {
        return None;
    }
    reasons.extend(local);
    let jurisdiction = jurisdiction(&all, reasons);
    let mut rights: Vec<Right> = if jurisdiction == Jurisdiction::Ccpa {
        rights.into_iter().map(Right::to_ccpa).collect()
    } else {
        rights
    };
    rights.sort();
    rights.dedup();
    Some((rights, jurisdiction))
}

fn jurisdiction(all: &str, reasons: &mut Vec<String>) -> Jurisdiction {
    const CCPA: &[&str] = &["california", "ccpa", "cpra"];
    const UK: &[&str] = &[
        "uk gdpr",
        "united kingdom",
        "ico",
        "information commissioner",
        "data protection act 2018",
        "i live in the uk",
        "uk resident",
    ];
    const EU: &[&str] = &[
        "gdpr",
        "dsgvo",
        "rgpd",
        "eu resident",
        "european union",
        "art. 15",
        "article 15",
        "art. 17",
        "article 17",
    ];
    for (set, j) in [
        (CCPA, Jurisdiction::Ccpa),
        (UK, Jurisdiction::UkGdpr),
        (EU, Jurisdiction::Gdpr),
    ] {
        if let Some(w) = set.iter().find(|w| contains_word(all, w)) {
            reasons.push(format!("jurisdiction {}: letter says {w:?}", j.as_str()));
            return j;
        }
    }
    reasons.push("jurisdiction unknown: no residence or law stated".into());
    Jurisdiction::Unknown
}

fn contains_word(hay: &str, word: &str) -> bool {
    hay.match_indices(word).any(|(i, _)| {
        let before = hay[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let after = hay[i + word.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric());
        before && after
    })
}

fn floor(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
