//! Support level 1–5 from the requester's own words: the most urgent level
//! whose phrases match wins; negated error mentions ("no error") do not count;
//! `Importance: high` / `X-Priority: 1` raise by at most one level, never to 1.

use crate::mail::ParsedMail;
use crate::policy::Level;

/// Level 1: the site is unreachable or not responding.
const L1: &[&str] = &[
    "site is down",
    "site down",
    "is down for",
    "down for everyone",
    "whole site",
    "not loading",
    "won't load",
    "wont load",
    "doesn't load",
    "does not load",
    "nothing loads",
    "cannot reach",
    "can't reach",
    "cant reach",
    "unable to reach",
    "unreachable",
    "not responding",
    "times out",
    "timed out",
    "timing out",
    "gateway timeout",
    "bad gateway",
    "service unavailable",
    "seite ist nicht erreichbar",
    "nicht erreichbar",
    "site inaccessible",
    "ne répond pas",
    "no responde",
    "no carga",
    "sitio caído",
];
/// Critical features (level 2 when broken).
const CRITICAL: &[&str] = &[
    "intake",
    "case note",
    "case-note",
    "notes",
    "time entry",
    "time entries",
    "enter time",
    "entering time",
    "timesheet",
    "log time",
    "logging time",
    "fallnotiz",
    "zeiterfassung",
    "aufnahme",
    "notes de dossier",
    "notas del caso",
];
/// Words saying a feature cannot be used.
const BROKEN: &[&str] = &[
    "cannot",
    "can't",
    "cant ",
    "can not",
    "unable",
    "won't",
    "wont",
    "doesn't save",
    "does not save",
    "not saving",
    "fails",
    "failing",
    "broken",
    "does nothing",
    "stuck",
    "kann nicht",
    "können nicht",
    "impossible",
    "no podemos",
    "no puedo",
];
/// An error shown (level 3).
const ERROR: &[&str] = &[
    "error",
    "exception",
    "went wrong",
    "500",
    "stack trace",
    "fehler",
    "erreur",
    "crash",
    "fehlermeldung",
];
/// Negations that cancel a following error mention.
const NO_ERROR: &[&str] = &[
    "no error",
    "without an error",
    "without any error",
    "without error",
    "not an error",
    "no errors",
    "kein fehler",
    "keine fehlermeldung",
    "sans erreur",
    "sin error",
    "sin ningún error",
];
/// Wrong behaviour without an error (level 4).
const WRONG: &[&str] = &[
    "wrong",
    "incorrect",
    "not working",
    "doesn't work",
    "does not work",
    "doubled",
    "duplicate",
    "missing",
    "should be",
    "unexpected",
    "falsch",
    "incorrecte",
    "incorrecto",
];
/// A change or new-feature request (level 5).
const FEATURE: &[&str] = &[
    "feature request",
    "new feature",
    "would it be possible",
    "could you add",
    "can you add",
    "would be nice",
    "would be great",
    "suggestion",
    "enhancement",
    "request a change",
    "please add",
    "wish list",
    "wishlist",
    "möglich wäre",
    "wunsch",
    "serait-il possible",
    "sería posible",
    "nueva función",
];

/// The level the text asks for, or `None` when no signal fired.
pub fn level(
    mail: &ParsedMail,
    texts: &[(&str, &str)],
    reasons: &mut Vec<String>,
) -> Option<Level> {
    let mut found: Option<Level> = None;
    let fire = |lvl: Level, why: String, found: &mut Option<Level>, reasons: &mut Vec<String>| {
        reasons.push(why);
        *found = Some(found.map_or(lvl, |f: Level| f.min(lvl)));
    };
    for (part, text) in texts {
        let lower = text.to_lowercase();
        if let Some(p) = first(&lower, L1) {
            fire(
                1,
                format!("level 1: {part} says {p:?}"),
                &mut found,
                reasons,
            );
        }
        if let (Some(c), Some(b)) = (first(&lower, CRITICAL), first(&lower, BROKEN)) {
            fire(
                2,
                format!("level 2: {part} says {c:?} with {b:?}"),
                &mut found,
                reasons,
            );
        }
        let negated = first(&lower, NO_ERROR);
        let stripped = NO_ERROR
            .iter()
            .fold(lower.clone(), |acc, n| acc.replace(n, " "));
        if let Some(e) = first(&stripped, ERROR) {
            fire(
                3,
                format!("level 3: {part} says {e:?}"),
                &mut found,
                reasons,
            );
        }
        if let Some(n) = negated {
            reasons.push(format!("{part} says {n:?}: not an error"));
        }
        if let Some(w) = first(&lower, WRONG) {
            fire(
                4,
                format!("level 4: {part} says {w:?}"),
                &mut found,
                reasons,
            );
        }
        if let Some(f) = first(&lower, FEATURE) {
            fire(
                5,
                format!("level 5: {part} says {f:?}"),
                &mut found,
                reasons,
            );
        }
    }
    // A feature request that merely mentions wrong behaviour stays a request
    // only when nothing more urgent than 4 fired; the most urgent wins.
    let mut lvl = found?;
    let high = mail
        .header("importance")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("high"))
        || mail
            .header("x-priority")
            .is_some_and(|v| v.trim().starts_with('1'));
    if high && lvl > 2 {
        reasons.push(format!(
            "Importance/X-Priority high: raised from {lvl} to {}",
            lvl - 1
        ));
        lvl -= 1;
    } else if high {
        reasons.push("Importance/X-Priority high: not raised (never to level 1)".into());
    }
    Some(lvl)
}

fn first<'a>(hay: &str, needles: &[&'a str]) -> Option<&'a str> {
    needles.iter().find(|n| hay.contains(*n)).copied()
}
