//! The learned scorer: a linear model over hashed features
//! ([`super::features`]) with four heads — kind (ticket, privacy, spam,
//! machine), level (1–5), rights (one yes/no per GDPR right) and
//! jurisdiction. Weights are data: the shipped model is compiled into the
//! binary (`model.bin`, written by `ticketd triage train`) and a config may
//! point at another file. Pure: bytes in, scores out.
//!
//! A fifth head, `mention`, reads one right's mentions in a letter (the
//! words around each phrase the rules matched for it, [`features::mentions`])
//! and says whether that right is asked for or only named (negated, in
//! passing, asked later).
//!
//! File format (little endian): the magic line `TICKETD-TRIAGE-MODEL 1\n`,
//! a u32 length and that many bytes of JSON [`Meta`], a u32 row count, then
//! per row a u32 bucket and one i8 weight per output (scaled per output by
//! `Meta::scales`).

use super::features::{self, Facts};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};

const MAGIC: &[u8] = b"TICKETD-TRIAGE-MODEL 1\n";

pub const KINDS: [&str; 4] = ["ticket", "privacy", "spam", "machine"];
pub const LEVELS: [&str; 5] = ["1", "2", "3", "4", "5"];
pub const RIGHTS: [&str; 8] = [
    "access",
    "erasure",
    "rectification",
    "restriction",
    "portability",
    "objection",
    "automated_decision",
    "consent_withdrawal",
];
pub const JURISDICTIONS: [&str; 4] = ["gdpr", "uk_gdpr", "ccpa", "unknown"];

/// Offsets of the heads in the output vector.
pub const KIND_AT: usize = 0;
pub const LEVEL_AT: usize = KIND_AT + KINDS.len();
pub const RIGHTS_AT: usize = LEVEL_AT + LEVELS.len();
pub const JUR_AT: usize = RIGHTS_AT + RIGHTS.len();
pub const MENTION_AT: usize = JUR_AT + JURISDICTIONS.len();
pub const NOUT: usize = MENTION_AT + 1;

/// Which head an output belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    Kind,
    Level,
    Rights,
    Jurisdiction,
    Mention,
}

impl Head {
    pub fn range(self) -> std::ops::Range<usize> {
        match self {
            Head::Kind => KIND_AT..LEVEL_AT,
            Head::Level => LEVEL_AT..RIGHTS_AT,
            Head::Rights => RIGHTS_AT..JUR_AT,
            Head::Jurisdiction => JUR_AT..MENTION_AT,
            Head::Mention => MENTION_AT..NOUT,
        }
    }
}

/// Probability thresholds that make a decision `high` or `low` confidence,
/// chosen at training time from cross-validated predictions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Thresholds {
    pub high: f32,
    pub low: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            high: 0.99,
            low: 0.6,
        }
    }
}

/// Everything about a model except its rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub bits: u32,
    pub outputs: Vec<String>,
    pub scales: Vec<f32>,
    pub bias: Vec<f32>,
    #[serde(default)]
    pub kind: Thresholds,
    #[serde(default)]
    pub level: Thresholds,
    /// What it was trained on (sources, example counts, date), for humans.
    #[serde(default)]
    pub trained: serde_json::Value,
}

/// A loaded model.
#[derive(Debug)]
pub struct Model {
    pub meta: Meta,
    /// Bucket → row + 1 (0: no row).
    index: Vec<u32>,
    weights: Vec<i8>,
    /// The mention head has weights.
    mentions: bool,
}

/// Scores for one message.
#[derive(Debug, Clone)]
pub struct Scores {
    /// Probabilities per output: softmax within kind, level and
    /// jurisdiction; a sigmoid per right.
    pub p: [f32; NOUT],
    /// The message's features, for explanations.
    pub features: features::Features,
    /// (bucket, row) of every feature the model has weights for.
    pub hits: Vec<(u32, u32)>,
}

impl Scores {
    /// (index within head, probability) of the best and the runner-up.
    pub fn top2(&self, head: Head) -> ((usize, f32), (usize, f32)) {
        let r = head.range();
        let mut v: Vec<(usize, f32)> = self.p[r].iter().copied().enumerate().collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        (v[0], v.get(1).copied().unwrap_or((0, 0.0)))
    }
}

pub fn output_names() -> Vec<String> {
    KINDS
        .iter()
        .map(|k| format!("kind:{k}"))
        .chain(LEVELS.iter().map(|l| format!("level:{l}")))
        .chain(RIGHTS.iter().map(|r| format!("right:{r}")))
        .chain(JURISDICTIONS.iter().map(|j| format!("jurisdiction:{j}")))
        .chain(std::iter::once("mention".to_string()))
        .collect()
}

const BUILTIN: &[u8] = include_bytes!("model.bin");

impl Model {
    /// The model compiled into the binary.
    pub fn builtin() -> Result<Arc<Model>, String> {
        static M: OnceLock<Result<Arc<Model>, String>> = OnceLock::new();
        M.get_or_init(|| {
            Model::from_bytes(BUILTIN)
                .map(Arc::new)
                .map_err(|e| format!("built-in triage model: {e}"))
        })
        .clone()
    }

    /// A model with no weights: every score is uniform, and triage falls
    /// back to the phrase rules alone.
    pub fn empty(bits: u32) -> Model {
        Model {
            meta: Meta {
                bits,
                outputs: output_names(),
                scales: vec![1.0; NOUT],
                bias: vec![0.0; NOUT],
                kind: Thresholds::default(),
                level: Thresholds::default(),
                trained: serde_json::Value::Null,
            },
            index: Vec::new(),
            weights: Vec::new(),
            mentions: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    pub fn rows(&self) -> usize {
        self.weights.len() / NOUT
    }

    /// Build from float weights (bucket, weights per output), quantising
    /// each output to i8; rows whose weights all round to zero are dropped.
    pub fn from_rows(mut meta: Meta, rows: &[(u32, [f32; NOUT])]) -> Model {
        let mut scales = [0f32; NOUT];
        for (_, w) in rows {
            for o in 0..NOUT {
                scales[o] = scales[o].max(w[o].abs());
            }
        }
        for s in &mut scales {
            *s = if *s > 0.0 { *s / 127.0 } else { 1.0 };
        }
        let mut kept: Vec<(u32, [i8; NOUT])> = Vec::new();
        for (b, w) in rows {
            let mut q = [0i8; NOUT];
            for o in 0..NOUT {
                q[o] = (w[o] / scales[o]).round().clamp(-127.0, 127.0) as i8;
            }
            if q.iter().any(|&v| v != 0) {
                kept.push((*b, q));
            }
        }
        meta.scales = scales.to_vec();
        meta.outputs = output_names();
        Model::assemble(meta, kept)
    }

    fn assemble(meta: Meta, rows: Vec<(u32, [i8; NOUT])>) -> Model {
        let mentions = rows.iter().any(|(_, q)| q[MENTION_AT] != 0);
        let size = 1usize << meta.bits;
        let mut index = vec![0u32; if rows.is_empty() { 0 } else { size }];
        let mut weights = Vec::with_capacity(rows.len() * NOUT);
        for (i, (b, q)) in rows.iter().enumerate() {
            if let Some(slot) = index.get_mut(*b as usize) {
                *slot = (i + 1) as u32;
            }
            weights.extend_from_slice(q);
        }
        Model {
            meta,
            index,
            weights,
            mentions,
        }
    }

    /// Whether the mention head was trained (a model from before it was
    /// added has none).
    pub fn reads_mentions(&self) -> bool {
        self.mentions
    }

    /// The probability that the right whose mentions have these features is
    /// asked for.
    pub fn mention_probability(&self, buckets: &[u32]) -> f32 {
        sigmoid(self.logits(buckets)[MENTION_AT])
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let meta = serde_json::to_vec(&self.meta).unwrap_or_default();
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + meta.len() + self.weights.len() * 2);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        out.extend_from_slice(&meta);
        let rows: Vec<(u32, usize)> = self
            .index
            .iter()
            .enumerate()
            .filter(|(_, r)| **r > 0)
            .map(|(b, r)| (b as u32, (*r - 1) as usize))
            .collect();
        out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
        for (b, r) in rows {
            out.extend_from_slice(&b.to_le_bytes());
            out.extend(
                self.weights[r * NOUT..(r + 1) * NOUT]
                    .iter()
                    .map(|&w| w as u8),
            );
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Model, String> {
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or("not a ticketd triage model (bad magic line)")?;
        let (len, rest) = take_u32(rest)?;
        let len = len as usize;
        if rest.len() < len {
            return Err("truncated model header".into());
        }
        let mut meta: Meta = serde_json::from_slice(&rest[..len])
            .map_err(|e| format!("model header is not valid: {e}"))?;
        let names = output_names();
        // A model written before the mention head: read it with that head
        // empty (rights then come from the phrase rules as they did).
        let width = if meta.outputs == names[..NOUT - 1] {
            NOUT - 1
        } else {
            NOUT
        };
        if meta.outputs[..] != names[..width] {
            return Err(format!(
                "model outputs {:?} do not match this ticketd ({:?})",
                meta.outputs, names
            ));
        }
        if meta.scales.len() != width || meta.bias.len() != width {
            return Err("model scales or bias have the wrong length".into());
        }
        meta.scales.resize(NOUT, 1.0);
        meta.bias.resize(NOUT, 0.0);
        meta.outputs = names;
        if !(8..=24).contains(&meta.bits) {
            return Err(format!("model hash bits {} outside 8..=24", meta.bits));
        }
        let (n, mut rest) = take_u32(&rest[len..])?;
        let row_len = 4 + width;
        if rest.len() != n as usize * row_len {
            return Err(format!(
                "model has {} bytes of rows, expected {}",
                rest.len(),
                n as usize * row_len
            ));
        }
        let mut rows = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let (b, r) = take_u32(rest)?;
            if b >> meta.bits != 0 {
                return Err(format!("bucket {b} out of range"));
            }
            let mut q = [0i8; NOUT];
            for (o, v) in r[..width].iter().enumerate() {
                q[o] = *v as i8;
            }
            rows.push((b, q));
            rest = &r[width..];
        }
        Ok(Model::assemble(meta, rows))
    }

    /// Raw logits for a sorted, unique bucket list.
    pub fn logits(&self, buckets: &[u32]) -> [f32; NOUT] {
        self.logits_and_hits(buckets, &mut Vec::new())
    }

    /// Raw logits, and the (bucket, row) pairs that contributed.
    fn logits_and_hits(&self, buckets: &[u32], hits: &mut Vec<(u32, u32)>) -> [f32; NOUT] {
        let mut acc = [0i32; NOUT];
        for &b in buckets {
            let r = self.index.get(b as usize).copied().unwrap_or(0);
            if r == 0 {
                continue;
            }
            let at = (r as usize - 1) * NOUT;
            if let Some(row) = self.weights.get(at..at + NOUT) {
                for (a, w) in acc.iter_mut().zip(row) {
                    *a += i32::from(*w);
                }
                hits.push((b, r - 1));
            }
        }
        let norm = 1.0 / (buckets.len().max(1) as f32).sqrt();
        let mut out = [0f32; NOUT];
        for o in 0..NOUT {
            out[o] = acc[o] as f32 * self.meta.scales[o] * norm + self.meta.bias[o];
        }
        out
    }

    /// Probabilities for a message's features.
    pub fn score(&self, subject: &str, body: &str, facts: &Facts<'_>) -> Scores {
        let features = features::extract(self.meta.bits, subject, body, facts);
        let mut hits = Vec::with_capacity(features.buckets.len() / 2);
        let p = probabilities(&self.logits_and_hits(&features.buckets, &mut hits));
        Scores { p, features, hits }
    }

    /// The features that pushed output `o` above output `against` the most
    /// (bucket, contribution), strongest first.
    pub fn top_features(
        &self,
        s: &Scores,
        o: usize,
        against: Option<usize>,
        n: usize,
    ) -> Vec<(u32, f32)> {
        let norm = 1.0 / (s.features.buckets.len().max(1) as f32).sqrt();
        let (so, sa) = (
            self.meta.scales[o],
            against.map(|a| self.meta.scales[a]).unwrap_or(0.0),
        );
        // The n best, kept sorted in a small vector: no sort of every hit.
        let mut best: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
        for &(b, r) in &s.hits {
            let at = r as usize * NOUT;
            let Some(row) = self.weights.get(at..at + NOUT) else {
                continue;
            };
            let mut c = f32::from(row[o]) * so;
            if let Some(a) = against {
                c -= f32::from(row[a]) * sa;
            }
            let c = c * norm;
            if c <= 0.0 || (best.len() == n && best.last().is_some_and(|l| l.1 >= c)) {
                continue;
            }
            let pos = best.partition_point(|x| x.1 >= c);
            best.insert(pos, (b, c));
            best.truncate(n);
        }
        best
    }
}

/// The model a config names, or the built-in one.
pub fn load(file: Option<&std::path::Path>) -> Result<Arc<Model>, String> {
    match file {
        None => Model::builtin(),
        Some(p) => {
            let bytes =
                std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            Model::from_bytes(&bytes)
                .map(Arc::new)
                .map_err(|e| format!("{}: {e}", p.display()))
        }
    }
}

fn take_u32(b: &[u8]) -> Result<(u32, &[u8]), String> {
    if b.len() < 4 {
        return Err("truncated model".into());
    }
    Ok((u32::from_le_bytes([b[0], b[1], b[2], b[3]]), &b[4..]))
}

/// Softmax within the kind, level and jurisdiction heads, sigmoid per right
/// and for the mention head.
pub fn probabilities(logits: &[f32; NOUT]) -> [f32; NOUT] {
    let mut p = [0f32; NOUT];
    for head in [Head::Kind, Head::Level, Head::Jurisdiction] {
        let r = head.range();
        let max = logits[r.clone()].iter().copied().fold(f32::MIN, f32::max);
        let sum: f32 = logits[r.clone()].iter().map(|l| (l - max).exp()).sum();
        for o in r {
            p[o] = (logits[o] - max).exp() / sum;
        }
    }
    for o in Head::Rights.range().chain(Head::Mention.range()) {
        p[o] = sigmoid(logits[o]);
    }
    p
}

pub fn sigmoid(l: f32) -> f32 {
    1.0 / (1.0 + (-l).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_bytes() {
        let mut w = [0f32; NOUT];
        w[KIND_AT + 1] = 2.5;
        w[JUR_AT] = -1.0;
        let m = Model::from_rows(Model::empty(12).meta, &[(7, w), (9, [0.0; NOUT])]);
        assert_eq!(m.rows(), 1, "an all-zero row is dropped");
        let back = Model::from_bytes(&m.to_bytes()).expect("reads back");
        assert_eq!(back.meta, m.meta);
        assert_eq!(back.logits(&[7]), m.logits(&[7]));
        assert!(back.logits(&[7])[KIND_AT + 1] > 2.4);
    }

    #[test]
    fn a_model_from_before_the_mention_head_still_loads() {
        let names = output_names();
        let meta = serde_json::json!({
            "bits": 10,
            "outputs": names[..NOUT - 1],
            "scales": vec![1.0; NOUT - 1],
            "bias": vec![0.0; NOUT - 1],
        });
        let meta = serde_json::to_vec(&meta).expect("json");
        let mut b = b"TICKETD-TRIAGE-MODEL 1\n".to_vec();
        b.extend_from_slice(&(meta.len() as u32).to_le_bytes());
        b.extend_from_slice(&meta);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&5u32.to_le_bytes());
        b.extend((0..NOUT - 1).map(|o| o as u8 + 1));
        let m = Model::from_bytes(&b).expect("old model");
        assert_eq!(m.rows(), 1);
        assert!(!m.reads_mentions());
        assert_eq!(m.meta.outputs, names);
        let l = m.logits(&[5]);
        assert_eq!(l[KIND_AT], 1.0);
        assert_eq!(l[MENTION_AT], 0.0);
        // Written again, it has the new width and reads back the same.
        let again = Model::from_bytes(&m.to_bytes()).expect("rewritten");
        assert_eq!(again.logits(&[5]), l);
    }

    #[test]
    fn the_builtin_model_reads_mentions() {
        assert!(Model::builtin().expect("builtin").reads_mentions());
    }

    #[test]
    fn damaged_files_are_refused_with_a_reason() {
        assert!(Model::from_bytes(b"hello").unwrap_err().contains("magic"));
        let m = Model::from_rows(Model::empty(12).meta, &[(7, [1.0; NOUT])]);
        let mut b = m.to_bytes();
        b.pop();
        assert!(Model::from_bytes(&b).is_err());
    }

    #[test]
    fn builtin_model_loads() {
        let m = Model::builtin().expect("built-in model");
        assert_eq!(m.meta.outputs, output_names());
    }

    #[test]
    fn probabilities_sum_to_one_per_head() {
        let mut l = [0f32; NOUT];
        l[KIND_AT] = 3.0;
        let p = probabilities(&l);
        let s: f32 = p[Head::Kind.range()].iter().sum();
        assert!((s - 1.0).abs() < 1e-5);
        assert!((p[RIGHTS_AT] - 0.5).abs() < 1e-6);
    }
}
