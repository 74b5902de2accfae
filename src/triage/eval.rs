//! Accuracy of triage on a labelled set: kind, level, rights F1,
//! jurisdiction, acknowledgements to mail that must never be answered,
//! the share of low-confidence decisions and how often `high` ones are
//! right, per class. Pure: (label, decision) pairs in, figures out. Used by
//! `ticketd triage train` (before/after on holdouts) and `triage eval`.

use super::train::LabelLine;
use crate::classify::Classified;
use crate::triage::Confidence;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub total: usize,
    pub kind_ok: usize,
    pub tickets: usize,
    pub level_ok: usize,
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub privacy: usize,
    pub jurisdiction_ok: usize,
    /// Files of ignore-class mail that would have been acknowledged.
    pub ignore_acks: Vec<String>,
    /// Files of customer mail (a ticket or a request) whose acknowledgement
    /// was held for review: the price of caution about spam and machines.
    pub held_acks: Vec<String>,
    pub low: usize,
    pub high: usize,
    pub high_ok: usize,
    /// class → (messages, decisions fully right).
    pub per_class: BTreeMap<String, (usize, usize)>,
    /// Every wrong decision: file and what went wrong.
    pub misses: Vec<(String, String)>,
    /// Privacy inquiries (privacy, no right asked), and of those the ones
    /// labelled `ticket` (the labelled sets predate the inquiry kind: their
    /// class descriptions filed questions about processing as tickets, so
    /// an inquiry counts as that label's kind, and has no level to match).
    pub inquiries: usize,
    pub inquiries_labelled_ticket: usize,
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        100.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

impl Metrics {
    pub fn kind(&self) -> f64 {
        pct(self.kind_ok, self.total)
    }
    pub fn level(&self) -> f64 {
        pct(self.level_ok, self.tickets)
    }
    pub fn jurisdiction(&self) -> f64 {
        pct(self.jurisdiction_ok, self.privacy)
    }
    pub fn rights_f1(&self) -> f64 {
        let denom = 2 * self.tp + self.fp + self.fn_;
        if denom == 0 {
            1.0
        } else {
            2.0 * self.tp as f64 / denom as f64
        }
    }
    pub fn low_share(&self) -> f64 {
        pct(self.low, self.total)
    }
    pub fn high_accuracy(&self) -> f64 {
        pct(self.high_ok, self.high)
    }

    /// Add one labelled decision.
    pub fn add(&mut self, label: &LabelLine, got: &Classified) {
        self.total += 1;
        let mut got_kind = got.kind.map(|k| k.as_str()).unwrap_or("none");
        let inquiry = got_kind == "privacy" && got.rights.as_ref().is_some_and(Vec::is_empty);
        if inquiry {
            self.inquiries += 1;
            if label.kind == "ticket" {
                self.inquiries_labelled_ticket += 1;
                got_kind = "ticket";
            }
        }
        let mut wrong = Vec::new();
        if got_kind == label.kind {
            self.kind_ok += 1;
        } else {
            wrong.push(format!("kind {} → {got_kind}", label.kind));
        }
        if label.kind == "ticket" {
            self.tickets += 1;
            if inquiry {
                // No level: not counted either way.
                self.tickets -= 1;
            } else if got_kind == "ticket" && got.level == label.level {
                self.level_ok += 1;
            } else if got_kind == "ticket" {
                wrong.push(format!(
                    "level {} → {}",
                    label.level.unwrap_or(0),
                    got.level.unwrap_or(0)
                ));
            }
        }
        let want: BTreeSet<String> = label.rights.iter().flatten().cloned().collect();
        let have: BTreeSet<String> = got
            .rights
            .iter()
            .flatten()
            .map(|r| r.as_str().to_string())
            .collect();
        self.tp += want.intersection(&have).count();
        self.fp += have.difference(&want).count();
        self.fn_ += want.difference(&have).count();
        if label.kind == "privacy" && got_kind == "privacy" && want != have {
            wrong.push(format!("rights {want:?} → {have:?}"));
        }
        if label.kind == "privacy" {
            self.privacy += 1;
            let j = got.jurisdiction.map(|j| j.as_str());
            if j == label.jurisdiction.as_deref() {
                self.jurisdiction_ok += 1;
            } else if got_kind == "privacy" {
                wrong.push(format!(
                    "jurisdiction {} → {}",
                    label.jurisdiction.as_deref().unwrap_or("-"),
                    j.unwrap_or("-")
                ));
            }
        }
        if label.kind == "ignore" && got.ack {
            self.ignore_acks.push(label.file.clone());
        }
        if matches!(label.kind.as_str(), "ticket" | "privacy") && !got.ack {
            self.held_acks.push(label.file.clone());
        }
        let right = wrong.is_empty();
        match got.confidence {
            Confidence::Low => self.low += 1,
            Confidence::High => {
                self.high += 1;
                self.high_ok += usize::from(right);
            }
            Confidence::Medium => {}
        }
        let class = label.class.clone().unwrap_or_else(|| "-".into());
        let e = self.per_class.entry(class).or_default();
        e.0 += 1;
        e.1 += usize::from(right);
        if !right {
            if got.confidence == Confidence::High {
                wrong.push("(high confidence)".into());
            }
            self.misses.push((label.file.clone(), wrong.join("; ")));
        }
    }
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} messages: kind {:.1} %, level exact {:.1} % ({} tickets), rights F1 {:.3}, jurisdiction {:.1} % ({} requests), acknowledgements to ignore-class mail {}, low confidence {:.1} %, high-confidence right {:.1} % ({} of {})",
            self.total,
            self.kind(),
            self.level(),
            self.tickets,
            self.rights_f1(),
            self.jurisdiction(),
            self.privacy,
            self.ignore_acks.len(),
            self.low_share(),
            self.high_accuracy(),
            self.high_ok,
            self.high
        )?;
        if !self.held_acks.is_empty() {
            writeln!(
                f,
                "  customer mail opened with its acknowledgement held for review: {}",
                self.held_acks.len()
            )?;
        }
        if self.inquiries > 0 {
            writeln!(
                f,
                "  privacy inquiries: {} ({} labelled ticket)",
                self.inquiries, self.inquiries_labelled_ticket
            )?;
        }
        for (c, (n, ok)) in &self.per_class {
            writeln!(f, "  {c:<26} {ok:>4} / {n:<4} {:5.1} %", pct(*ok, *n))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triage::{Auth, Kind};

    fn got(kind: Kind, level: Option<u8>, ack: bool, confidence: Confidence) -> Classified {
        Classified {
            file: "f".into(),
            kind: Some(kind),
            level,
            rights: None,
            jurisdiction: None,
            case_ref: None,
            language: None,
            auth: Auth::None,
            ack,
            reasons: vec![],
            error: None,
            hygiene: None,
            confidence,
            confidence_score: None,
            runner_up: None,
            mailbox: None,
        }
    }

    #[test]
    fn counts_kinds_levels_acks_and_confidence() {
        let mut m = Metrics::default();
        let t = LabelLine {
            file: "a".into(),
            kind: "ticket".into(),
            level: Some(2),
            class: Some("critical_broken".into()),
            ..LabelLine::default()
        };
        m.add(&t, &got(Kind::Ticket, Some(2), true, Confidence::High));
        m.add(&t, &got(Kind::Ticket, Some(5), true, Confidence::High));
        let spam = LabelLine {
            file: "s".into(),
            kind: "ignore".into(),
            class: Some("spam_noheaders".into()),
            ..LabelLine::default()
        };
        m.add(&spam, &got(Kind::Ticket, Some(4), true, Confidence::Low));
        assert_eq!(m.kind(), 200.0 / 3.0);
        assert_eq!(m.level(), 50.0);
        assert_eq!(m.ignore_acks, vec!["s".to_string()]);
        assert_eq!((m.high, m.high_ok, m.low), (2, 1, 1));
        assert_eq!(m.per_class["critical_broken"], (2, 1));
        assert_eq!(m.misses.len(), 2);
        assert!(m.held_acks.is_empty());
        m.add(&t, &got(Kind::Ticket, Some(2), false, Confidence::Low));
        assert_eq!(m.held_acks, vec!["a".to_string()]);
        assert!(m.to_string().contains("acknowledgement held for review: 1"));
    }
}
