//! Support level 1–5 from the requester's own words (subject and body
//! without quotes or signature), with the phrase tables of [`super::rules`]:
//!
//! - 1: level-1 phrases add up to 1.0 (site unreachable, timeouts for all);
//! - 2: a critical feature (intake, case notes, time entry) close to a
//!   breakage phrase ("cannot", "does nothing");
//! - 3: an error shown; 4: wrong behaviour; 5: a change request.
//!
//! A phrase negated in its clause ("no error", "without an error") does not
//! count. The most urgent level that fires wins. `Importance: high` or
//! `X-Priority: 1`/`2` raises by one level at most, never to level 1.

use super::rules::{negated, Cat, Hit, Scanned};
use crate::mail::ParsedMail;
use crate::policy::Level;
use std::collections::HashSet;

/// How far (bytes) a critical feature and a breakage phrase may be apart.
const PAIR_DISTANCE: usize = 90;
/// How far back (bytes) a negation word reaches.
const NEGATION_WINDOW: usize = 28;

#[derive(Default)]
struct Scores {
    l1: f32,
    l2: bool,
    error: f32,
    wrong: f32,
    feature: f32,
}

/// The level the texts ask for, or `None` when no signal fired.
pub fn level(mail: &ParsedMail, parts: &[Scanned<'_>], reasons: &mut Vec<String>) -> Option<Level> {
    let mut s = Scores::default();
    let mut counted: HashSet<(u8, String)> = HashSet::new();
    let mut not_l1 = None;
    let mut no_error = None;
    for Scanned {
        part,
        lower,
        hits,
        neg,
    } in parts
    {
        if *part == "subject" && is_reply_subject(lower) {
            // A "Re:" subject is the old thread's, not this message's concern.
            continue;
        }
        let (lower, hits) = (lower.as_str(), hits.as_slice());
        for h in hits {
            match h.cat {
                Cat::NotLevel1 if h.weight >= 1.0 && not_l1.is_none() => {
                    not_l1 = Some(format!("{part} says {:?}", h.phrase));
                }
                Cat::NoError if h.weight >= 1.0 && no_error.is_none() => {
                    no_error = Some(format!("{part} says {:?}", h.phrase));
                }
                _ => {}
            }
        }
        let live: Vec<&Hit<'_>> = hits
            .iter()
            .filter(|h| {
                matches!(
                    h.cat,
                    Cat::Level1
                        | Cat::Error
                        | Cat::Wrong
                        | Cat::Feature
                        | Cat::Critical
                        | Cat::Broken
                )
            })
            .filter(|h| {
                if matches!(h.cat, Cat::Critical | Cat::Feature) {
                    // A feature named is not negated ("no podemos añadir notas": the
                    // negation belongs to the breakage); requests are not negated.
                    return true;
                }
                match negated(lower, neg, h.start, NEGATION_WINDOW) {
                    Some(n) => {
                        reasons.push(format!("{part}: {:?} negated by {n:?}", h.phrase));
                        false
                    }
                    None => true,
                }
            })
            .collect();
        let mut fired: Vec<String> = Vec::new();
        for h in &live {
            let (score, lvl) = match h.cat {
                Cat::Level1 => (&mut s.l1, 1u8),
                Cat::Error => (&mut s.error, 3),
                Cat::Wrong => (&mut s.wrong, 4),
                Cat::Feature => (&mut s.feature, 5),
                _ => continue,
            };
            // Each phrase counts once, however often it is repeated.
            if counted.insert((lvl, h.phrase.to_string())) {
                *score += h.weight;
                fired.push(format!("level {lvl}: {part} says {:?}", h.phrase));
            }
        }
        for c in live.iter().filter(|h| h.cat == Cat::Critical) {
            for b in live.iter().filter(|h| h.cat == Cat::Broken) {
                let dist = if b.start >= c.end {
                    b.start - c.end
                } else {
                    c.start.saturating_sub(b.end)
                };
                if dist <= PAIR_DISTANCE
                    && c.weight >= 0.5
                    && b.weight >= 0.5
                    && c.weight + b.weight >= 1.5
                    && !s.l2
                {
                    s.l2 = true;
                    fired.push(format!(
                        "level 2: {part} says {:?} with {:?}",
                        c.phrase, b.phrase
                    ));
                }
            }
        }
        reasons.extend(fired);
    }
    if let Some(why) = &not_l1 {
        if s.l1 > 0.0 {
            reasons.push(format!("not level 1: {why}"));
        }
        s.l1 = 0.0;
    }
    if let Some(why) = &no_error {
        if s.error > 0.0 {
            reasons.push(format!("not level 3: {why}"));
        }
        s.error = 0.0;
    }
    let mut lvl = if s.l1 >= 1.0 {
        1
    } else if s.l2 {
        2
    } else if s.error >= 1.0 {
        3
    } else if s.wrong >= 1.0 {
        4
    } else if s.feature >= 1.0 {
        5
    } else if s.error > 0.0 && s.error >= s.wrong && s.error >= s.feature {
        3
    } else if s.wrong > 0.0 && s.wrong >= s.feature {
        4
    } else if s.feature > 0.0 {
        5
    } else {
        return None;
    };
    if lvl == 4 && s.feature >= 1.0 && s.wrong < 1.5 && s.error < 1.0 {
        // A change request that mentions what is "missing" or "should be"
        // is still a change request.
        reasons.push("level 5: a change request; its wrong-behaviour words are weak".into());
        lvl = 5;
    }
    let high = mail
        .header("importance")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("high"))
        || mail.header("x-priority").is_some_and(|v| {
            let t = v.trim();
            t.starts_with('1') || t.starts_with('2')
        })
        || mail
            .header("priority")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("urgent"));
    if high && lvl > 2 {
        reasons.push(format!(
            "header Importance/X-Priority high: raised from level {lvl} to {}",
            lvl - 1
        ));
        lvl -= 1;
    } else if high {
        reasons.push(format!(
            "header Importance/X-Priority high: stays level {lvl} (never raised to 1)"
        ));
    }
    Some(lvl)
}

/// `Re:`, `AW:`, `Fwd:` … subjects.
pub fn is_reply_subject(subject: &str) -> bool {
    let l = subject.trim_start().to_lowercase();
    [
        "re:", "re :", "aw:", "fw:", "fwd:", "wg:", "tr:", "rv:", "sv:", "antw:", "réf:",
    ]
    .iter()
    .any(|p| l.starts_with(p))
}
