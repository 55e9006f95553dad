//! `kefu intents …`: a shop's own intents (docs/intent.md) — upload labelled examples and
//! train, classify, evaluate, status, rollback, agents' labels, export.
use std::{
    io::{BufRead, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use kefu_proto::intent::v1::{
    AddExamplesRequest, BuiltinIntents, ClassifyBatchRequest, ClassifyRequestItem,
    DeleteExamplesRequest, EvaluateRequest, GetIntentStatusRequest, LabeledExample,
    ListExamplesRequest, RollbackIntentsRequest, Scores, TrainRequest,
    intent_classifier_service_client::IntentClassifierServiceClient,
};
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::{ShopKey, connect, print_refusal, refusal, status_error, time, with_credential};

/// The intent classifier, as a shop.
#[derive(Args, Clone)]
pub struct IntentsTarget {
    #[command(flatten)]
    key: ShopKey,
    /// The shop (optional: the API key names it; when given it must match).
    #[arg(long, global = true, env = "KEFU_SHOP", default_value = "")]
    shop: String,
    /// intent-classifier gRPC endpoint.
    #[arg(
        long,
        global = true,
        env = "KEFU_INTENT_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    url: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DataFormat {
    Csv,
    Jsonl,
}

#[derive(Subcommand)]
pub enum IntentsCommand {
    /// Upload labelled examples (CSV `sentence,label` or JSON lines `{"sentence","label"}`)
    /// and train a new version; it is activated unless it scores lower than the active
    /// model. Exits non-zero when nothing was activated.
    Train {
        /// The examples (`-`: none, train on what the shop already has).
        #[arg(long)]
        data: PathBuf,
        /// csv or jsonl (default: by the file's extension).
        #[arg(long, value_enum)]
        format: Option<DataFormat>,
        /// Delete the shop's earlier uploaded examples first (agents' labels stay).
        #[arg(long)]
        replace: bool,
        /// Built-in intents whose default examples to leave out: `all`, `none`, or a comma
        /// list (default: as the active version had it).
        #[arg(long)]
        disable_builtin: Option<String>,
        /// Do not add generic out-of-domain text as out-of-scope examples.
        #[arg(long)]
        no_generic_negatives: bool,
        /// Activate even when it scores lower than the active model.
        #[arg(long)]
        force: bool,
        /// Print the whole report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Classify JSON lines `{"id","text"}` from stdin with the shop's model; prints
    /// `{"id","intent","confidence","entities","model"}` per line (`kefu-intent classify`'s shape).
    Classify,
    /// Score the shop's active model on labelled examples (CSV or JSON lines as for train).
    Eval {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_enum)]
        format: Option<DataFormat>,
        /// Print the whole report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The shop's model versions and examples.
    Status,
    /// Make the version active before the current one active again.
    Rollback,
    /// Label one customer message (as an agent): it joins the shop's training data.
    Label {
        #[arg(long)]
        text: String,
        #[arg(long)]
        intent: String,
        /// The agent (an agent token names itself).
        #[arg(long, default_value = "")]
        agent: String,
    },
    /// Export the shop's examples as CSV (`sentence,label,source,labeled_by,id`).
    Examples {
        /// upload or agent (default: both).
        #[arg(long)]
        source: Option<String>,
    },
    /// Delete examples by id (from `kefu intents examples`).
    Delete {
        #[arg(required = true)]
        ids: Vec<i64>,
    },
}

type Client = IntentClassifierServiceClient<Channel>;

async fn open(t: &IntentsTarget) -> anyhow::Result<(String, Client)> {
    let client = IntentClassifierServiceClient::new(connect(&t.url).await?)
        .max_encoding_message_size(64 * 1024 * 1024)
        .max_decoding_message_size(64 * 1024 * 1024);
    Ok((t.key.key()?, client))
}

/// Reads `sentence,label` rows from CSV (header `sentence,label` or `text,label`) or JSON
/// lines (`sentence` or `text`, `label` or `intent`): [`kefu_intent::examples::read`].
pub fn read_examples(
    path: &Path,
    format: Option<DataFormat>,
) -> anyhow::Result<Vec<LabeledExample>> {
    use kefu_intent::examples::{Format, read};
    let format = format.unwrap_or_else(|| match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "json" | "ndjson") => DataFormat::Jsonl,
        _ => DataFormat::Csv,
    });
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let format = match format {
        DataFormat::Csv => Format::Csv,
        DataFormat::Jsonl => Format::Jsonl,
    };
    Ok(read(file, format, &path.display().to_string())?
        .into_iter()
        .map(|r| LabeledExample {
            text: r.text,
            label: r.label,
        })
        .collect())
}

/// Prints a refusal of examples, `examples[i]` of the chunk starting at `offset` named as the
/// data row.
fn print_rows_refusal(s: &tonic::Status, offset: usize) {
    print_refusal(s, 50, |field| {
        field
            .strip_prefix("examples[")
            .and_then(|r| r.split_once(']'))
            .and_then(|(i, rest)| {
                Some(format!(
                    "row {}{rest}",
                    i.parse::<usize>().ok()? + offset + 1
                ))
            })
            .unwrap_or_else(|| field.to_owned())
    });
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn scores_line(name: &str, s: &Option<Scores>) {
    match s {
        Some(s) => println!(
            "{name:<22} accuracy {:>6}  in-scope {:>6}  out-of-scope recall {:>6}  macro-F1 {:.3}  MCC {:.3}  ({} examples)",
            pct(s.accuracy),
            pct(s.in_scope_accuracy),
            pct(s.oos_recall),
            s.macro_f1,
            s.mcc,
            s.examples
        ),
        None => println!("{name:<22} —"),
    }
}

fn per_label(s: &Option<Scores>) {
    let Some(s) = s else { return };
    println!(
        "{:<28} {:>9} {:>7} {:>6} {:>7}",
        "label", "precision", "recall", "F1", "support"
    );
    for l in &s.per_label {
        println!(
            "{:<28} {:>9} {:>7} {:>6.3} {:>7}",
            l.label,
            pct(l.precision),
            pct(l.recall),
            l.f1,
            l.support
        );
    }
}

fn scores_json(s: &Option<Scores>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => json!({
            "examples": s.examples, "accuracy": s.accuracy, "in_scope_accuracy": s.in_scope_accuracy,
            "oos_recall": s.oos_recall, "in_scope_rejected": s.in_scope_rejected,
            "macro_f1": s.macro_f1, "mcc": s.mcc,
            "per_label": s.per_label.iter().map(|l| json!({
                "label": l.label, "precision": l.precision, "recall": l.recall, "f1": l.f1, "support": l.support
            })).collect::<Vec<_>>(),
        }),
    }
}

pub async fn intents(target: IntentsTarget, command: IntentsCommand) -> anyhow::Result<()> {
    let shop = target.shop.clone();
    let (key, mut client) = open(&target).await?;
    match command {
        IntentsCommand::Train {
            data,
            format,
            replace,
            disable_builtin,
            no_generic_negatives,
            force,
            json,
        } => {
            if data.as_os_str() != "-" {
                let examples = read_examples(&data, format)?;
                let n = examples.len();
                let (mut added, mut updated, mut total) = (0, 0, 0);
                for (i, chunk) in examples.chunks(5_000).enumerate() {
                    let r = client
                        .add_examples(with_credential(
                            &key,
                            AddExamplesRequest {
                                shop_id: shop.clone(),
                                examples: chunk.to_vec(),
                                source: "upload".into(),
                                labeled_by: String::new(),
                                replace: replace && i == 0,
                            },
                        )?)
                        .await;
                    match r {
                        Ok(r) => {
                            let r = r.into_inner();
                            added += r.added;
                            updated += r.updated;
                            total = r.total;
                        }
                        Err(s) => {
                            eprintln!("{}: refused; nothing trained:", data.display());
                            print_rows_refusal(&s, i * 5_000);
                            bail!("examples refused");
                        }
                    }
                }
                eprintln!(
                    "{n} examples read: {added} new, {updated} relabelled; the shop has {total}"
                );
            }
            let builtins = disable_builtin.map(|d| BuiltinIntents {
                disabled: match d.as_str() {
                    "all" => vec!["*".into()],
                    "none" | "" => vec![],
                    list => list.split(',').map(|s| s.trim().to_owned()).collect(),
                },
            });
            eprintln!(
                "training (every example is embedded first when there is an embedding server)…"
            );
            let mut req = with_credential(
                &key,
                TrainRequest {
                    shop_id: shop.clone(),
                    builtins,
                    generic_negatives: no_generic_negatives.then_some(false),
                    force,
                },
            )?;
            req.set_timeout(std::time::Duration::from_secs(3600));
            let r = match client.train(req).await {
                Ok(r) => r.into_inner(),
                Err(s) => {
                    eprintln!("training refused:");
                    print_rows_refusal(&s, 0);
                    bail!("nothing trained");
                }
            };
            if json {
                let op = r.operating_point.clone().unwrap_or_default();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "version": r.version, "model": r.model, "activated": r.activated, "reason": r.reason,
                        "examples": r.examples, "from_shop": r.from_shop, "from_builtin": r.from_builtin,
                        "from_generic": r.from_generic, "labels": r.labels,
                        "ngram": scores_json(&r.ngram), "embedding": scores_json(&r.embedding),
                        "candidate": scores_json(&r.candidate), "active": scores_json(&r.active),
                        "active_model": r.active_model,
                        "operating_point": {"alpha": op.alpha, "signal": op.signal, "threshold": op.threshold, "sure": op.sure, "auroc": op.auroc},
                        "embedding_share": r.embedding_share, "embedding_note": r.embedding_note,
                        "duration_ms": r.duration_ms,
                    }))?
                );
            } else {
                println!(
                    "version {} ({}): {} examples ({} the shop's, {} built-in defaults, {} generic out-of-scope), {} labels, {:.1} s",
                    r.version,
                    r.model,
                    r.examples,
                    r.from_shop,
                    r.from_builtin,
                    r.from_generic,
                    r.labels.len(),
                    r.duration_ms as f64 / 1000.0
                );
                println!("cross-validated (every example predicted by models that never saw it):");
                scores_line("  n-gram", &r.ngram);
                scores_line("  embedding", &r.embedding);
                scores_line("  as it will run", &r.candidate);
                scores_line(&format!("  active ({})", short(&r.active_model)), &r.active);
                if let Some(op) = &r.operating_point {
                    println!(
                        "operating point: mix weight {:.2}, out of scope below {} {:.2}; embedding asked below n-gram {:.2} ({} of examples)",
                        op.alpha,
                        op.signal,
                        op.threshold,
                        op.sure,
                        pct(r.embedding_share)
                    );
                }
                if !r.embedding_note.is_empty() {
                    println!("embedding model: {}", r.embedding_note);
                }
                println!("{}", r.reason);
            }
            if !r.activated {
                bail!("not activated");
            }
        }
        IntentsCommand::Classify => {
            let stdin = std::io::stdin().lock();
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut batch: Vec<(Value, String)> = Vec::new();
            let mut lines = stdin.lines();
            loop {
                let line = lines.next().transpose()?;
                let done = line.is_none();
                if let Some(line) = line {
                    if line.trim().is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<Value>(&line) {
                        Ok(v) => {
                            let id = v.get("id").cloned().unwrap_or(Value::Null);
                            match v.get("text").and_then(Value::as_str) {
                                Some(t) if t.trim().is_empty() || t.chars().count() > 4000 => {
                                    flush(&mut client, &key, &shop, &mut batch, &mut out).await?;
                                    writeln!(
                                        out,
                                        "{}",
                                        json!({"id": id, "error": "`text` must hold 1 to 4000 characters"})
                                    )?;
                                }
                                Some(t) => batch.push((id, t.to_owned())),
                                None => {
                                    flush(&mut client, &key, &shop, &mut batch, &mut out).await?;
                                    writeln!(
                                        out,
                                        "{}",
                                        json!({"id": id, "error": "missing string field `text`"})
                                    )?;
                                }
                            }
                        }
                        Err(e) => {
                            flush(&mut client, &key, &shop, &mut batch, &mut out).await?;
                            writeln!(
                                out,
                                "{}",
                                json!({"id": null, "error": format!("invalid JSON: {e}")})
                            )?;
                        }
                    }
                }
                if batch.len() >= 256 || (done && !batch.is_empty()) {
                    flush(&mut client, &key, &shop, &mut batch, &mut out).await?;
                }
                if done {
                    break;
                }
            }
            out.flush()?;
        }
        IntentsCommand::Eval { data, format, json } => {
            let examples = read_examples(&data, format)?;
            let mut req = with_credential(
                &key,
                EvaluateRequest {
                    shop_id: shop.clone(),
                    examples,
                },
            )?;
            req.set_timeout(std::time::Duration::from_secs(3600));
            let r = match client.evaluate(req).await {
                Ok(r) => r.into_inner(),
                Err(s) => {
                    eprintln!("evaluation refused:");
                    print_rows_refusal(&s, 0);
                    bail!("nothing evaluated");
                }
            };
            if json {
                let op = r.operating_point.clone().unwrap_or_default();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "model": r.model, "running": scores_json(&r.running), "ngram": scores_json(&r.ngram),
                        "embedding": scores_json(&r.embedding), "embedded": r.embedded,
                        "embedding_failed": r.embedding_failed,
                        "operating_point": {"alpha": op.alpha, "signal": op.signal, "threshold": op.threshold, "sure": op.sure},
                    }))?
                );
            } else {
                println!("model {}", r.model);
                scores_line("as it runs", &r.running);
                scores_line("n-gram alone", &r.ngram);
                scores_line("embedding alone", &r.embedding);
                if let Some(op) = &r.operating_point {
                    println!(
                        "operating point: mix weight {:.2}, out of scope below {} {:.2}; {} of {} examples asked for an embedding ({} not in time)",
                        op.alpha,
                        op.signal,
                        op.threshold,
                        r.embedded,
                        r.running.as_ref().map_or(0, |s| s.examples),
                        r.embedding_failed
                    );
                }
                per_label(&r.running);
            }
        }
        IntentsCommand::Status => {
            let st = client
                .get_intent_status(with_credential(
                    &key,
                    GetIntentStatusRequest { shop_id: shop },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            for v in &st.versions {
                println!(
                    "{} v{}\t{}\t{}\t{} examples, {} labels, MCC {:.3} (the model active then: {:.3})",
                    if v.active { "*" } else { " " },
                    v.version,
                    time(v.created_at),
                    v.model,
                    v.examples,
                    v.labels.len(),
                    v.mcc,
                    v.active_mcc
                );
            }
            if st.active_version == 0 {
                println!("active: the bundled model ({})", st.active_model);
            }
            println!(
                "examples: {} uploaded, {} labelled by agents",
                st.upload_examples, st.agent_examples
            );
        }
        IntentsCommand::Rollback => {
            let r = client
                .rollback_intents(with_credential(
                    &key,
                    RollbackIntentsRequest { shop_id: shop },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            if r.active_version == 0 {
                println!("active: the bundled model ({})", r.active_model);
            } else {
                println!(
                    "version {} is active ({})",
                    r.active_version, r.active_model
                );
            }
        }
        IntentsCommand::Label {
            text,
            intent,
            agent,
        } => {
            let r = client
                .add_examples(with_credential(
                    &key,
                    AddExamplesRequest {
                        shop_id: shop,
                        examples: vec![LabeledExample {
                            text,
                            label: intent,
                        }],
                        source: "agent".into(),
                        labeled_by: agent,
                        replace: false,
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "{}; the shop has {} examples (train to use it)",
                if r.added > 0 { "added" } else { "relabelled" },
                r.total
            );
        }
        IntentsCommand::Examples { source } => {
            let mut w = csv::Writer::from_writer(std::io::stdout().lock());
            w.write_record(["sentence", "label", "source", "labeled_by", "id"])?;
            let mut token = String::new();
            loop {
                let page = client
                    .list_examples(with_credential(
                        &key,
                        ListExamplesRequest {
                            shop_id: shop.clone(),
                            source: source.clone().unwrap_or_default(),
                            label: String::new(),
                            page_size: 1000,
                            page_token: token.clone(),
                        },
                    )?)
                    .await
                    .map_err(status_error)?
                    .into_inner();
                for e in &page.examples {
                    w.write_record([
                        &e.text,
                        &e.label,
                        &e.source,
                        &e.labeled_by,
                        &e.id.to_string(),
                    ])?;
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                token = page.next_page_token;
            }
            w.flush()?;
        }
        IntentsCommand::Delete { ids } => {
            let r = client
                .delete_examples(with_credential(
                    &key,
                    DeleteExamplesRequest { shop_id: shop, ids },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!("{} deleted", r.deleted);
        }
    }
    Ok(())
}

fn short(model: &str) -> &str {
    model.split(" (").next().unwrap_or(model)
}

async fn flush(
    client: &mut Client,
    key: &str,
    shop: &str,
    batch: &mut Vec<(Value, String)>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let items: Vec<ClassifyRequestItem> = batch
        .iter()
        .enumerate()
        .map(|(i, (_, t))| ClassifyRequestItem {
            id: i.to_string(),
            text: t.clone(),
        })
        .collect();
    match client
        .classify_batch(with_credential(
            key,
            ClassifyBatchRequest {
                shop_id: shop.to_owned(),
                items,
            },
        )?)
        .await
    {
        Ok(r) => {
            for (res, (id, _)) in r.into_inner().results.into_iter().zip(batch.iter()) {
                let c = res.result.unwrap_or_default();
                let entities: Vec<Value> = c
                    .entities
                    .iter()
                    .map(|e| {
                        let mut v = json!({"kind": e.kind, "value": e.value, "start": e.start, "end": e.end});
                        if !e.detail.is_empty() {
                            v["detail"] = json!(e.detail);
                        }
                        v
                    })
                    .collect();
                writeln!(
                    out,
                    "{}",
                    json!({
                        "id": id,
                        "intent": c.intent,
                        "confidence": (f64::from(c.confidence) * 10000.0).round() / 10000.0,
                        "entities": entities,
                        "model": c.model,
                    })
                )?;
            }
        }
        Err(s) => {
            if s.code() != tonic::Code::InvalidArgument {
                bail!("{}: {}", s.code(), s.message());
            }
            let why = refusal(&s)
                .iter()
                .map(|(f, d)| {
                    if f.is_empty() {
                        d.clone()
                    } else {
                        format!("{f}: {d}")
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            for (id, _) in batch.iter() {
                writeln!(out, "{}", json!({"id": id, "error": why}))?;
            }
        }
    }
    batch.clear();
    Ok(())
}
