//! `ticketd triage train` and `ticketd triage eval`: the I/O around the
//! pure training and evaluation in [`crate::triage::train`] and
//! [`crate::triage::eval`] — reading labelled corpora (`labels.jsonl` next
//! to `.eml` files), staff corrections from the store (through the running
//! daemon when there is one), writing the model file, and reporting
//! before/after figures on the holdouts.

use super::{ask, CliError, CliResult};
use crate::classify::Classifier;
use crate::config::{Config, Role};
use crate::control::{CorrectionExample, Request};
use crate::store::CaseKind;
use crate::triage::eval::Metrics;
use crate::triage::train::{self, Example, LabelLine, Options, Target};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, clap::Subcommand)]
pub enum TriageCommand {
    /// Train the scorer from labelled mail (and staff corrections) and
    /// write a model file; reports before/after on each holdout.
    Train {
        /// A directory with labels.jsonl and .eml files, or whose
        /// subdirectories have them (repeatable).
        #[arg(long, value_name = "DIR")]
        corpus: Vec<PathBuf>,
        /// Also learn from staff corrections recorded in the store
        /// (relevel, ignored promote).
        #[arg(long)]
        from_store: bool,
        /// How much one staff correction counts against one corpus message.
        #[arg(long, default_value_t = 3.0)]
        correction_weight: f32,
        /// Labelled sets to report on, never trained on (repeatable).
        #[arg(long, value_name = "DIR")]
        holdout: Vec<PathBuf>,
        /// Where to write the model (point `[triage] model` at it).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long, default_value_t = 20)]
        epochs: usize,
        /// Hash space: 2^bits buckets.
        #[arg(long, default_value_t = 18)]
        bits: u32,
        /// Also report 5-fold cross-validated figures of the whole triage
        /// (rules, hygiene and scorer) on the corpus: the figures to tune
        /// by, as the holdouts must never be.
        #[arg(long)]
        cv: bool,
    },
    /// Accuracy of the configured model and rules on labelled sets.
    Eval {
        #[arg(required = true, value_name = "DIR")]
        sets: Vec<PathBuf>,
        /// Also list every wrong decision.
        #[arg(long)]
        misses: bool,
    },
}

pub async fn run(config: &Config, cmd: TriageCommand) -> CliResult {
    match cmd {
        TriageCommand::Eval { sets, misses } => {
            for dir in &sets {
                let set = load_set(dir)?;
                let m = evaluate(config, &set);
                println!("== {} ({})", dir.display(), model_name(config));
                print!("{m}");
                if misses {
                    for (f, why) in &m.misses {
                        println!("  miss {f}: {why}");
                    }
                }
            }
            Ok(())
        }
        TriageCommand::Train {
            corpus,
            from_store,
            correction_weight,
            holdout,
            out,
            epochs,
            bits,
            cv,
        } => {
            if corpus.is_empty() && !from_store {
                return Err(CliError {
                    message: "nothing to train on: give --corpus DIR and/or --from-store".into(),
                    code: 2,
                });
            }
            let opts = Options {
                bits,
                epochs,
                ..Options::default()
            };
            let rules = config.triage.compiled.clone();
            let classifier = Classifier::new(config, &rules);
            let limit = usize::try_from(config.limits.triage_parse_bytes).unwrap_or(usize::MAX);
            let mut examples = Vec::new();
            let mut sources = Vec::new();
            // (index into examples, label, raw) of the corpus messages, for --cv.
            let mut labelled: Vec<(usize, LabelLine, Vec<u8>)> = Vec::new();
            for dir in &corpus {
                let set = load_set(dir)?;
                let before = examples.len();
                for (label, raw) in &set {
                    let Ok(mail) = crate::mail::parse(raw, limit) else {
                        continue;
                    };
                    let target = Target::from_label(label);
                    if target == Target::default() {
                        continue;
                    }
                    let ctx = classifier.context(role_of(label));
                    labelled.push((examples.len(), label.clone(), raw.clone()));
                    let (buckets, mentions) = train::features_of(&mail, &ctx, bits);
                    examples.push(Example {
                        buckets,
                        mentions,
                        weight: train::corpus_weight(&target),
                        target,
                    });
                }
                sources.push(serde_json::json!({"corpus": dir.display().to_string(), "examples": examples.len() - before}));
            }
            let mut corrections = 0usize;
            if from_store {
                let v: Vec<CorrectionExample> = ask(config, Request::Corrections).await?;
                for c in &v {
                    let Ok(mail) = crate::mail::parse(&c.raw, limit) else {
                        continue;
                    };
                    let role = config
                        .mailbox(&c.source)
                        .map(|m| m.role)
                        .unwrap_or(Role::Support);
                    let target = match c.correction.kind {
                        CaseKind::Support => Target {
                            kind: Some(0),
                            level: c.correction.level.map(|l| usize::from(l.clamp(1, 5)) - 1),
                            ..Target::default()
                        },
                        CaseKind::Privacy => Target {
                            kind: Some(1),
                            ..Target::default()
                        },
                    };
                    let ctx = classifier.context(role);
                    let (buckets, mentions) = train::features_of(&mail, &ctx, bits);
                    examples.push(Example {
                        buckets,
                        mentions,
                        target,
                        weight: correction_weight,
                    });
                    corrections += 1;
                }
                println!(
                    "{corrections} staff corrections from the store (weight {correction_weight})"
                );
                sources.push(serde_json::json!({"store_corrections": corrections}));
            }
            if examples.is_empty() {
                return Err(CliError {
                    message: "no labelled examples found".into(),
                    code: 1,
                });
            }
            if cv {
                let folds = 5;
                let mut m = Metrics::default();
                for f in 0..folds {
                    let held: std::collections::HashSet<usize> = labelled
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| i % folds == f)
                        .map(|(_, (e, _, _))| *e)
                        .collect();
                    let train_set: Vec<Example> = examples
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !held.contains(i))
                        .map(|(_, e)| e.clone())
                        .collect();
                    let mut c = config.clone();
                    c.triage.model =
                        Arc::new(train::calibrated(&train_set, &opts, serde_json::json!({})));
                    let rules = c.triage.compiled.clone();
                    let fold_classifier = Classifier::new(&c, &rules);
                    for (i, (_, label, raw)) in labelled.iter().enumerate() {
                        if i % folds == f {
                            m.add(
                                label,
                                &fold_classifier.classify(&label.file, raw, Some(role_of(label))),
                            );
                        }
                    }
                }
                println!("== 5-fold cross-validation of the whole triage on the corpus");
                print!("{m}");
                for (f, why) in &m.misses {
                    println!("  miss {f}: {why}");
                }
            }
            let started = std::time::Instant::now();
            let model = train::calibrated(
                &examples,
                &opts,
                serde_json::json!({
                    "sources": sources,
                    "examples": examples.len(),
                    "epochs": epochs,
                    "date": chrono::Utc::now().format("%Y-%m-%d").to_string(),
                }),
            );
            println!(
                "trained on {} examples in {:.1} s: {} weight rows, {} bytes; thresholds kind high {:.3} low {:.3}, level high {:.3} low {:.3}",
                examples.len(),
                started.elapsed().as_secs_f64(),
                model.rows(),
                model.to_bytes().len(),
                model.meta.kind.high,
                model.meta.kind.low,
                model.meta.level.high,
                model.meta.level.low
            );
            println!(
                "5-fold cross-validation on the training set (scorer alone): kind {:.1} %, level {:.1} %",
                model.meta.trained["cv_kind_accuracy"].as_f64().unwrap_or(0.0),
                model.meta.trained["cv_level_accuracy"].as_f64().unwrap_or(0.0)
            );
            let new_model = Arc::new(model);
            let mut after = config.clone();
            after.triage.model = new_model.clone();
            for dir in &holdout {
                let set = load_set(dir)?;
                println!("== holdout {}", dir.display());
                print!(
                    "before ({}): {}",
                    model_name(config),
                    evaluate(config, &set)
                );
                print!("after (new model): {}", evaluate(&after, &set));
            }
            std::fs::write(&out, new_model.to_bytes())
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            println!("model written to {}", out.display());
            Ok(())
        }
    }
}

fn model_name(config: &Config) -> String {
    match &config.triage.model_file {
        Some(p) => p.display().to_string(),
        None if config.triage.model.is_empty() => "rules only".into(),
        None => "built-in model".into(),
    }
}

fn role_of(label: &LabelLine) -> Role {
    if label.mailbox.as_deref() == Some("privacy") {
        Role::Privacy
    } else {
        Role::Support
    }
}

/// Figures for one labelled set under `config`'s rules and model.
pub fn evaluate(config: &Config, set: &[(LabelLine, Vec<u8>)]) -> Metrics {
    let rules = config.triage.compiled.clone();
    let classifier = Classifier::new(config, &rules);
    let mut m = Metrics::default();
    for (label, raw) in set {
        let got = classifier.classify(&label.file, raw, Some(role_of(label)));
        m.add(label, &got);
    }
    m
}

/// Every labelled message under `dir`: its own labels.jsonl, or those of
/// its subdirectories (sorted), with the raw files.
pub fn load_set(dir: &Path) -> Result<Vec<(LabelLine, Vec<u8>)>, CliError> {
    let mut dirs = Vec::new();
    if dir.join("labels.jsonl").is_file() {
        dirs.push(dir.to_path_buf());
    } else {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let mut subs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("labels.jsonl").is_file())
            .collect();
        subs.sort();
        dirs.extend(subs);
    }
    if dirs.is_empty() {
        return Err(CliError {
            message: format!("{}: no labels.jsonl here or one level below", dir.display()),
            code: 1,
        });
    }
    let mut out = Vec::new();
    for d in dirs {
        let path = d.join("labels.jsonl");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let label: LabelLine = serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
            let raw = std::fs::read(d.join(&label.file)).map_err(|e| {
                format!(
                    "{}:{}: cannot read {}: {e}",
                    path.display(),
                    n + 1,
                    label.file
                )
            })?;
            out.push((label, raw));
        }
    }
    Ok(out)
}
