//! `kefu-intent`: train, evaluate and run Kefu's intent model.
//!
//! * `kefu-intent classify` — JSON lines `{"id":..,"text":..}` on stdin →
//!   `{"id":..,"intent":..,"confidence":..,"entities":[..]}` on stdout (one line per input line;
//!   a bad line gets `{"id":..,"error":".."}`).
//! * `kefu-intent train` — trains on `shared/data/intents` plus Kefu's own examples and writes
//!   the artefact (default: the bundled model, `crates/kefu-intent/models/kefu-intent.kim`).
//! * `kefu-intent eval` — accuracy, macro-F1, per-intent precision/recall, out-of-scope recall
//!   and false-accept rate, and confusion matrices on the held-out splits.
#![forbid(unsafe_code)]

use std::{
    io::{BufRead, Write},
    path::PathBuf,
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use kefu_intent::{Model, data, entities, eval, train};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "kefu-intent",
    version,
    about = "Kefu intent model: classify, train, eval"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

fn default_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/intents")
}

fn default_model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/kefu-intent.kim")
}

#[derive(Subcommand)]
enum Command {
    /// Classify JSON lines from stdin.
    Classify {
        /// Model artefact (default: the bundled model).
        #[arg(long, env = "KEFU_INTENT_MODEL")]
        model: Option<PathBuf>,
    },
    /// Train and write the model artefact.
    Train {
        #[arg(long, env = "KEFU_INTENT_DATA", default_value_os_t = default_data())]
        data: PathBuf,
        #[arg(long, default_value_os_t = default_model_path())]
        out: PathBuf,
        /// Hash buckets = 2^bits (default: the bundled model's settings, `train::Settings`).
        #[arg(long, value_parser = clap::value_parser!(u32).range(10..=22))]
        bits: Option<u32>,
        /// Passes over the training data.
        #[arg(long)]
        epochs: Option<u32>,
        /// Weight of Kefu's own examples relative to the public ones.
        #[arg(long)]
        ours_weight: Option<f32>,
    },
    /// Evaluate on the held-out splits.
    Eval {
        #[arg(long, env = "KEFU_INTENT_DATA", default_value_os_t = default_data())]
        data: PathBuf,
        #[arg(long, env = "KEFU_INTENT_MODEL")]
        model: Option<PathBuf>,
    },
}

fn load(model: Option<PathBuf>) -> anyhow::Result<Model> {
    match model {
        Some(p) => Model::load(&p).with_context(|| format!("loading {}", p.display())),
        None => kefu_intent::bundled().context("loading the bundled model"),
    }
}

fn classify(model: &Model) -> anyhow::Result<()> {
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Result<Value, _> = serde_json::from_str(&line);
        let reply = match v {
            Ok(v) => {
                let id = v.get("id").cloned().unwrap_or(Value::Null);
                match v.get("text").and_then(Value::as_str) {
                    Some(text) => {
                        let p = model.predict(text);
                        json!({
                            "id": id,
                            "intent": p.intent,
                            "confidence": (f64::from(p.confidence) * 10000.0).round() / 10000.0,
                            "entities": entities::extract(text),
                        })
                    }
                    None => json!({"id": id, "error": "missing string field `text`"}),
                }
            }
            Err(e) => json!({"id": null, "error": format!("invalid JSON: {e}")}),
        };
        serde_json::to_writer(&mut out, &reply)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn report(model: &Model, splits: &data::Splits) {
    println!(
        "model {} (buckets 2^{}, temperature {:.2}, out-of-scope threshold {:.2})",
        model.version, model.bits, model.temperature, model.threshold
    );
    println!(
        "train {} / dev {} examples\n",
        splits.train.len(),
        splits.dev.len()
    );
    println!(
        "{}",
        eval::evaluate(model, &splits.test_external)
            .render("external held-out: Bitext test (deduplicated) + CLINC150 test")
    );
    println!(
        "{}",
        eval::evaluate(model, &splits.test_oos)
            .render("CLINC150 oos_test (out-of-scope benchmark)")
    );
    println!(
        "{}",
        eval::evaluate(model, &splits.test_ours)
            .render("Kefu's own held-out examples (not external)")
    );
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Classify { model } => classify(&load(model)?),
        Command::Train {
            data: dir,
            out,
            bits,
            epochs,
            ours_weight,
        } => {
            let splits = data::load(&dir)?;
            let started = std::time::Instant::now();
            let d = train::Settings::default();
            let settings = train::Settings {
                bits: bits.unwrap_or(d.bits),
                epochs: epochs.unwrap_or(d.epochs),
                ours_weight: ours_weight.unwrap_or(d.ours_weight),
                ..d
            };
            let m = train::train(&splits, &settings);
            // Everything below is measured on the model as saved (int8 weights).
            let m = kefu_intent::Model::from_bytes(&m.to_bytes())?;
            let dev_ours: Vec<_> = splits
                .dev
                .iter()
                .filter(|e| e.source == "kefu")
                .cloned()
                .collect();
            let dev = eval::evaluate(&m, &splits.dev);
            let dev_k = eval::evaluate(&m, &dev_ours);
            eprintln!(
                "dev (used for model selection): accuracy {:.1}%, Kefu's own dev examples {:.1}%",
                dev.accuracy * 100.0,
                dev_k.accuracy * 100.0
            );
            eprintln!("trained in {:.1?}", started.elapsed());
            m.save(&out)?;
            eprintln!(
                "wrote {} ({} bytes)",
                out.display(),
                std::fs::metadata(&out)?.len()
            );
            report(&m, &splits);
            Ok(())
        }
        Command::Eval { data: dir, model } => {
            let splits = data::load(&dir)?;
            report(&load(model)?, &splits);
            Ok(())
        }
    }
}
