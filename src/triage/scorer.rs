//! The decision for mail that passed hygiene and is not a follow-up: the
//! learned scorer ([`super::model`]) weighs the words, the structure and the
//! phrase rules' own signals; a few high-precision rules stay in charge
//! (a residence statement or a cited law decides the jurisdiction, an
//! agency that passes authentication is never set aside by content alone).
//! With an empty model the phrase rules decide alone, as before the scorer.
//! Pure.

use super::features::{self, Facts};
use super::model::{self, Head, Model, Scores};
use super::rules::{negated, Cat, Scanned};
use super::{privacy, support, Auth, Confidence, Decision, Kind, TriageContext};
use crate::config::Role;
use crate::mail::ParsedMail;
use crate::policy::{Jurisdiction, Level, Right};

/// A right the phrase rules did not find is asked for when the scorer gives
/// it at least this probability (chosen by 5-fold cross-validation).
const RIGHT_THRESHOLD: f32 = 0.6;

/// A right the phrase rules found named is asked for when the mention head
/// gives it at least this probability (5-fold cross-validation: 0.5 gave
/// rights F1 0.854, 0.65 0.862, 0.75 0.863, 0.85 0.851; the phrase rules'
/// own negation check as a veto on top lowered it to 0.847).
const MENTION_THRESHOLD: f32 = 0.65;

/// Everything the rules and the model say about one message.
pub struct Verdict<'a> {
    model: &'a Model,
    role: Role,
    agency_pass: bool,
    rule_level: Option<Level>,
    rule_level_reasons: Vec<String>,
    rule_privacy: Option<(Vec<Right>, Jurisdiction)>,
    rule_privacy_reasons: Vec<String>,
    stated: Option<(Jurisdiction, String)>,
    scores: Option<Scores>,
    facts_signals: Vec<String>,
    /// Each right the phrase rules found named (asked for or not), with the
    /// features of its mentions, for the model's mention head.
    mentions: Vec<(Right, Vec<u32>)>,
    subject: String,
    body: String,
    facts: FactsOwned,
}

struct FactsOwned {
    agency: bool,
    fake_reply: bool,
    html_only: bool,
    attachments: usize,
    links: usize,
}

impl<'a> Verdict<'a> {
    pub fn new(
        mail: &ParsedMail,
        own: &str,
        parts: &[Scanned<'_>],
        ctx: &TriageContext<'a>,
        agency: bool,
        auth: Auth,
    ) -> Verdict<'a> {
        let mut rule_level_reasons = Vec::new();
        let rule_level = support::level(mail, parts, &mut rule_level_reasons);
        let mut rule_privacy_reasons = Vec::new();
        let rule_privacy = privacy::detect(parts, ctx.role, &mut rule_privacy_reasons);
        let stated = privacy::stated_jurisdiction(parts);
        let signals = rule_signals(parts, rule_level, rule_privacy.as_ref(), stated.as_ref());
        let facts = FactsOwned {
            agency,
            fake_reply: support::is_reply_subject(&mail.subject)
                && mail.in_reply_to.is_empty()
                && mail.references.is_empty(),
            html_only: mail.text_from_html,
            attachments: mail.attachment_count,
            links: features::count_links(&mail.text),
        };
        let mut v = Verdict {
            model: ctx.model,
            role: ctx.role,
            agency_pass: agency && auth == Auth::Pass,
            rule_level,
            rule_level_reasons,
            rule_privacy,
            rule_privacy_reasons,
            stated,
            scores: None,
            facts_signals: signals,
            mentions: mention_groups(parts, ctx.model.meta.bits),
            subject: mail.subject.clone(),
            body: own.to_string(),
            facts,
        };
        if !ctx.model.is_empty() {
            let f = v.facts();
            v.scores = Some(ctx.model.score(&v.subject, &v.body, &f));
        }
        v
    }

    fn facts(&self) -> Facts<'_> {
        Facts {
            role: match self.role {
                Role::Support => "support",
                Role::Privacy => "privacy",
            },
            agency_sender: self.facts.agency,
            fake_reply: self.facts.fake_reply,
            html_only: self.facts.html_only,
            attachments: self.facts.attachments,
            links: self.facts.links,
            rule_signals: self.facts_signals.clone(),
        }
    }

    /// The hashed features, as training sees them.
    pub fn buckets(&self, bits: u32) -> Vec<u32> {
        let f = self.facts();
        features::extract(bits, &self.subject, &self.body, &f).buckets
    }

    /// The rights named and their mention features, as training sees them
    /// (hashed with the bits of the context's model).
    pub fn mentions(&self) -> &[(Right, Vec<u32>)] {
        &self.mentions
    }

    /// The rights the mention head reads as asked for; `None` when the
    /// model has no mention head (then every right the phrase rules found,
    /// not negated, counts). Each named right's probability goes to the
    /// reasons.
    fn asked_by_mentions(&self, reasons: &mut Vec<String>) -> Option<Vec<Right>> {
        if !self.model.reads_mentions() {
            return None;
        }
        let mut asked = Vec::new();
        let mut read = Vec::new();
        for (r, b) in &self.mentions {
            let p = self.model.mention_probability(b);
            read.push(format!("{} {p:.2}", r.as_str()));
            if p >= MENTION_THRESHOLD {
                asked.push(*r);
            }
        }
        if !read.is_empty() {
            reasons.push(format!(
                "scorer: rights named, read as asked for: {}",
                read.join(", ")
            ));
        }
        Some(asked)
    }

    /// Fill in kind, level, rights, jurisdiction, confidence and reasons.
    pub fn apply(self, d: &mut Decision, reasons: &mut Vec<String>) {
        let inquiry = self.inquiry();
        let stated = self.stated.as_ref().map(|s| s.0);
        match &self.scores {
            None => self.apply_rules(d, reasons),
            Some(s) => self.apply_model(s, d, reasons),
        }
        // A question to privacy@ about processing that asks for no right is
        // an inquiry: a privacy case with no rights and no statutory clock.
        if let Some(why) = inquiry {
            if matches!(d.kind, Kind::Ticket | Kind::Privacy) {
                reasons.push(why);
                d.kind = Kind::Privacy;
                d.level = None;
                d.rights = Some(Vec::new());
                d.jurisdiction
                    .get_or_insert(stated.unwrap_or(Jurisdiction::Unknown));
            }
        }
    }

    /// Why this message is a privacy inquiry: on the privacy mailbox, no
    /// right found by the phrase rules or asked for with confidence by the
    /// scorer, and a question about processing.
    fn inquiry(&self) -> Option<String> {
        if self.role != Role::Privacy || self.rule_privacy.is_some() {
            return None;
        }
        if let Some(s) = &self.scores {
            let asked =
                (0..model::RIGHTS.len()).any(|i| s.p[model::RIGHTS_AT + i] >= RIGHT_THRESHOLD);
            let privacy_kind = s.p[Head::Kind.range()].get(1).copied().unwrap_or(0.0);
            if asked && privacy_kind >= 0.5 {
                return None;
            }
        }
        super::inquiry::reason(&self.subject, &self.body)
    }

    /// The phrase rules alone (an empty model).
    fn apply_rules(self, d: &mut Decision, reasons: &mut Vec<String>) {
        d.ack = true;
        d.confidence = Confidence::Medium;
        if let Some((rights, jurisdiction)) = self.rule_privacy {
            reasons.extend(self.rule_privacy_reasons);
            if let Some(l) = self.rule_level.filter(|l| *l <= 3) {
                reasons.push(format!("also reports a support concern (level {l})"));
            }
            d.kind = Kind::Privacy;
            d.rights = Some(rights);
            d.jurisdiction = Some(jurisdiction);
        } else {
            reasons.extend(self.rule_level_reasons);
            let level = self.rule_level.unwrap_or_else(|| {
                reasons.push("no level signal; default level 4".into());
                4
            });
            d.kind = Kind::Ticket;
            d.level = Some(level);
        }
    }

    fn apply_model(&self, s: &Scores, d: &mut Decision, reasons: &mut Vec<String>) {
        let m = self.model;
        let mut kind_p: Vec<(usize, f32)> = s.p[Head::Kind.range()]
            .iter()
            .copied()
            .enumerate()
            .collect();
        let no_body = self.body.trim().is_empty();
        if no_body {
            reasons.push(
                "no body to judge (empty, or only the header fetched): not set aside by content"
                    .into(),
            );
        }
        // What the content alone says, before the rules that protect
        // customers: kept to withhold the acknowledgement below.
        let (raw_top, raw_p) = kind_p
            .iter()
            .copied()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 0.0));
        let agency_machine = self.agency_pass && !no_body && raw_top >= 2;
        if self.agency_pass || no_body {
            // Never set aside by content alone: an agency that passes
            // authentication is a customer, and a message with no words has
            // no content to judge.
            for (k, p) in kind_p.iter_mut() {
                if *k >= 2 {
                    *p = 0.0;
                }
            }
            let sum: f32 = kind_p.iter().map(|(_, p)| p).sum::<f32>().max(1e-6);
            for (_, p) in kind_p.iter_mut() {
                *p /= sum;
            }
        }
        kind_p.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (k, pk) = kind_p[0];
        let (k2, _) = kind_p[1];
        let kind_conf = grade(pk, &m.meta.kind);
        // Explanations name the features from their recorded origins: no
        // second pass over the text.
        let ((l, _), (l2, _)) = s.top2(Head::Level);
        let kind_top = m.top_features(s, model::KIND_AT + k, Some(model::KIND_AT + k2), 4);
        let level_top = m.top_features(s, model::LEVEL_AT + l, Some(model::LEVEL_AT + l2), 4);
        let f = self.facts();
        let explain = |top: &[(u32, f32)]| -> String {
            top.iter()
                .filter_map(|(b, _)| s.features.name(*b, &f))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let kind_name = model::KINDS[k];
        reasons.push(format!(
            "scorer: {kind_name} {pk:.2} over {} ({})",
            model::KINDS[k2],
            explain(&kind_top)
        ));
        d.confidence_score = Some(pk);
        d.confidence = kind_conf;
        if kind_conf != Confidence::High {
            d.runner_up = Some(model::KINDS[k2].to_string());
        }
        let mut chosen = k;
        d.ack = true;
        if agency_machine {
            // An agency's own system (a backup report, a scanner): the case
            // opens, but an answer to a machine could loop, so staff decide.
            let name = model::KINDS[raw_top];
            d.ack = false;
            d.confidence = d.confidence.min(Confidence::Medium);
            d.runner_up = Some(name.to_string());
            reasons.push(format!(
                "reads like {name} ({raw_p:.2}) but the sender is an authenticated agency: opened without acknowledgement for review"
            ));
        }
        if k >= 2 {
            if kind_conf != Confidence::Low {
                d.kind = Kind::Ignore;
                d.hygiene = Some(kind_name.to_string());
                reasons.push(format!("ignored: {kind_name} (content)"));
                return;
            }
            // A doubtful spam or machine verdict is never acted on silently:
            // the case opens without an acknowledgement and is flagged.
            chosen = kind_p
                .iter()
                .find(|(c, _)| *c < 2)
                .map(|(c, _)| *c)
                .unwrap_or(0);
            d.ack = false;
            d.runner_up = Some(kind_name.to_string());
            reasons.push(format!(
                "possibly {kind_name} ({pk:.2}): opened without acknowledgement for review"
            ));
        }
        if chosen == 1 {
            self.privacy(s, d, reasons);
        } else {
            self.ticket(s, d, reasons, &explain(&level_top));
        }
    }

    fn ticket(&self, s: &Scores, d: &mut Decision, reasons: &mut Vec<String>, why: &str) {
        let ((l, pl), (l2, _)) = s.top2(Head::Level);
        let level = (l + 1) as Level;
        reasons.extend(self.rule_level_reasons.iter().cloned());
        reasons.push(format!(
            "scorer: level {level} {pl:.2} over {} ({})",
            l2 + 1,
            why
        ));
        d.kind = Kind::Ticket;
        d.level = Some(level);
        let lc = grade(pl, &self.model.meta.level);
        if lc < d.confidence {
            d.confidence = lc;
        }
        d.confidence_score = Some(d.confidence_score.unwrap_or(1.0) * pl);
        if lc != Confidence::High && d.runner_up.is_none() {
            d.runner_up = Some(format!("level {}", l2 + 1));
        }
    }

    fn privacy(&self, s: &Scores, d: &mut Decision, reasons: &mut Vec<String>) {
        reasons.extend(self.rule_privacy_reasons.iter().cloned());
        let ruled: Vec<Right> = match self.asked_by_mentions(reasons) {
            Some(asked) => asked,
            None => self
                .rule_privacy
                .as_ref()
                .map(|(rr, _)| rr.iter().map(|r| r.to_gdpr()).collect())
                .unwrap_or_default(),
        };
        let mut rights: Vec<Right> = model::RIGHTS
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                let p = s.p[model::RIGHTS_AT + i];
                // The scorer's own confident rights, and every right the
                // phrase rules found named that its mentions read as asked
                // for: the rules know each language's legal names, the
                // mention head tells asking from naming, the scorer the rest.
                p >= RIGHT_THRESHOLD
                    || Right::parse(r).is_some_and(|r| ruled.contains(&r.to_gdpr()))
            })
            .filter_map(|(_, r)| Right::parse(r))
            .collect();
        if rights.is_empty() {
            if let Some((rr, _)) = &self.rule_privacy {
                rights = rr.iter().map(|r| r.to_gdpr()).collect();
            }
        }
        if rights.is_empty() {
            let best = (0..model::RIGHTS.len())
                .max_by(|a, b| s.p[model::RIGHTS_AT + a].total_cmp(&s.p[model::RIGHTS_AT + b]))
                .unwrap_or(0);
            rights.extend(Right::parse(model::RIGHTS[best]));
        }
        let listed: Vec<String> = rights
            .iter()
            .map(|r| {
                let i = model::RIGHTS
                    .iter()
                    .position(|n| *n == r.as_str())
                    .unwrap_or(0);
                format!("{} {:.2}", r.as_str(), s.p[model::RIGHTS_AT + i])
            })
            .collect();
        reasons.push(format!("scorer: rights {}", listed.join(", ")));
        let jurisdiction = match &self.stated {
            Some((j, why)) => {
                reasons.push(format!("jurisdiction {}: {why}", j.as_str()));
                *j
            }
            None => {
                let ((j, pj), _) = s.top2(Head::Jurisdiction);
                let j =
                    Jurisdiction::parse(model::JURISDICTIONS[j]).unwrap_or(Jurisdiction::Unknown);
                reasons.push(format!("scorer: jurisdiction {} {pj:.2}", j.as_str()));
                j
            }
        };
        if let Some(l) = self.rule_level.filter(|l| *l <= 3) {
            reasons.push(format!("also reports a support concern (level {l})"));
        }
        // A request is only as certain as its rights and its law: `high`
        // needs the scorer and the phrase rules to name the same rights, and
        // a stated (or near-certain) jurisdiction.
        let confident: Vec<Right> = model::RIGHTS
            .iter()
            .enumerate()
            .filter(|(i, _)| s.p[model::RIGHTS_AT + i] >= 0.5)
            .filter_map(|(_, r)| Right::parse(r))
            .collect();
        let law_sure = self.stated.is_some() || s.top2(Head::Jurisdiction).0 .1 >= 0.9;
        let same_rights = {
            let mut a: Vec<&str> = confident.iter().map(|r| r.as_str()).collect();
            let mut b: Vec<&str> = ruled.iter().map(|r| r.as_str()).collect();
            a.sort_unstable();
            b.sort_unstable();
            !a.is_empty() && a == b
        };
        if d.confidence == Confidence::High && (!same_rights || !law_sure) {
            d.confidence = Confidence::Medium;
            d.runner_up = Some(if law_sure {
                "other rights".into()
            } else {
                "another jurisdiction".into()
            });
            reasons.push("rights or jurisdiction not certain: confidence medium".into());
        }
        if jurisdiction == Jurisdiction::Ccpa {
            rights = rights.into_iter().map(Right::to_ccpa).collect();
        }
        rights.sort();
        rights.dedup();
        d.kind = Kind::Privacy;
        d.rights = Some(rights);
        d.jurisdiction = Some(jurisdiction);
    }
}

fn grade(p: f32, t: &model::Thresholds) -> Confidence {
    if p >= t.high {
        Confidence::High
    } else if p < t.low {
        Confidence::Low
    } else {
        Confidence::Medium
    }
}

/// The phrase rules' findings as features: every category that fired (a
/// right once more when negated in its clause), and the rules' own verdicts.
fn rule_signals(
    parts: &[Scanned<'_>],
    level: Option<Level>,
    privacy: Option<&(Vec<Right>, Jurisdiction)>,
    stated: Option<&(Jurisdiction, String)>,
) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for p in parts {
        for h in &p.hits {
            let name = match h.cat {
                Cat::Negation | Cat::ClauseBreak | Cat::AutoreplySubject => continue,
                Cat::Level1 => "level1".to_string(),
                Cat::NotLevel1 => "not-level1".into(),
                Cat::NoError => "no-error".into(),
                Cat::Critical => "critical".into(),
                Cat::Broken => "broken".into(),
                Cat::Error => "error".into(),
                Cat::Wrong => "wrong".into(),
                Cat::Feature => "feature".into(),
                Cat::PrivacyContext => "privacy-context".into(),
                Cat::Right(r) => {
                    if negated(&p.lower, &p.neg, h.start, privacy::NEGATION_WINDOW).is_some() {
                        format!("negated-right:{}", r.to_gdpr().as_str())
                    } else {
                        format!("right:{}", r.to_gdpr().as_str())
                    }
                }
                Cat::Jurisdiction(j) => format!("law:{}", j.as_str()),
            };
            v.push(format!("{}:{name}", p.part));
        }
    }
    if let Some(l) = level {
        v.push(format!("rules-level:{l}"));
    }
    if let Some((rights, j)) = privacy {
        v.push("rules-privacy".into());
        for r in rights {
            v.push(format!("rules-right:{}", r.to_gdpr().as_str()));
        }
        v.push(format!("rules-jurisdiction:{}", j.as_str()));
    }
    if let Some((j, _)) = stated {
        v.push(format!("stated-jurisdiction:{}", j.as_str()));
    }
    v.sort();
    v.dedup();
    v
}

/// Every right the phrase rules found named, with the mention features of
/// all the places it is named.
fn mention_groups(parts: &[Scanned<'_>], bits: u32) -> Vec<(Right, Vec<u32>)> {
    let mut by: std::collections::BTreeMap<Right, Vec<features::Mention<'_>>> =
        std::collections::BTreeMap::new();
    for p in parts {
        for h in &p.hits {
            if let Cat::Right(r) = h.cat {
                by.entry(r.to_gdpr()).or_default().push(features::Mention {
                    part: p.part,
                    lower: &p.lower,
                    start: h.start,
                    end: h.end,
                    negated: negated(&p.lower, &p.neg, h.start, privacy::NEGATION_WINDOW).is_some(),
                });
            }
        }
    }
    let n = by.len();
    by.into_iter()
        .map(|(r, at)| (r, features::mentions(bits, r.as_str(), &at, n)))
        .collect()
}
