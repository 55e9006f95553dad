//! gRPC `kefu.intent.v1.IntentClassifierService`: classification, and a shop's own intents
//! (examples, training with the release check, evaluation, status, rollback).
use std::{sync::Arc, time::Instant};

use kefu_intent::{
    OUT_OF_SCOPE,
    scores::Scores,
    shop::{self, Recipe, ShopModel},
};
use kefu_proto::intent::v1::{
    self as pb, AddExamplesRequest, AddExamplesResponse, ClassifyBatchRequest,
    ClassifyBatchResponse, ClassifyBatchResult, ClassifyRequest, ClassifyResponse,
    DeleteExamplesRequest, DeleteExamplesResponse, Entity, EvaluateRequest, EvaluateResponse,
    GetIntentStatusRequest, GetIntentStatusResponse, ListExamplesRequest, ListExamplesResponse,
    RollbackIntentsRequest, RollbackIntentsResponse, TrainRequest, TrainResponse,
    intent_classifier_service_server::IntentClassifierService,
};
use kefu_runtime::{
    auth::{Allow, Caller},
    grpc::ApiError,
    validate::Violations,
};
use serde::{Deserialize, Serialize};
use tonic::{Request, Response, Status};

use crate::{
    shops::{Active, Classified, Shops},
    store,
};

/// Most items in one `ClassifyBatch`.
pub const MAX_BATCH: usize = 256;
/// Most examples in one `AddExamples`.
pub const MAX_ADD: usize = 5_000;
/// Most examples in one `Evaluate`.
pub const MAX_EVALUATE: usize = 20_000;
/// How long training and evaluation wait for one chunk of embeddings.
const BULK_EMBED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
const BULK_EMBED_CHUNK: usize = 64;
/// Fewest unseen examples the release check scores both models on; below it the new
/// model's cross-validated MCC is compared with the active one's.
pub const MIN_COMPARABLE: usize = 20;

/// Who may call what: classification also for services (the pipeline's callers); an agent's
/// label with an agent token; the rest with the shop's API key.
pub fn policy(method: &str) -> Option<Allow> {
    match method {
        "Classify" | "ClassifyBatch" => Some(Allow::SHOP | Allow::SERVICE),
        "AddExamples" => Some(Allow::SHOP | Allow::AGENT | Allow::SERVICE),
        "ListExamples" | "DeleteExamples" | "Train" | "Evaluate" | "GetIntentStatus"
        | "RollbackIntents" => Some(Allow::SHOP),
        _ => None,
    }
}

pub struct Api {
    pub shops: Arc<Shops>,
    /// One training or evaluation at a time on a replica: they take every core they get.
    heavy: tokio::sync::Semaphore,
}

impl Api {
    pub fn new(shops: Arc<Shops>) -> Self {
        Self {
            shops,
            heavy: tokio::sync::Semaphore::new(1),
        }
    }
}

/// What is stored with a version besides its artefact.
#[derive(Serialize, Deserialize)]
struct StoredReport {
    labels: Vec<String>,
    recipe: Recipe,
    report: shop::Report,
    active_model: String,
    active: Scores,
    reason: String,
    duration_ms: u64,
    sure: f32,
}

fn entities_pb(c: &Classified) -> Vec<Entity> {
    c.entities
        .iter()
        .map(|e| Entity {
            kind: e.kind.into(),
            value: e.value.clone(),
            start: e.start as u32,
            end: e.end as u32,
            detail: e.detail.clone(),
        })
        .collect()
}

fn response(c: Classified) -> ClassifyResponse {
    ClassifyResponse {
        entities: entities_pb(&c),
        intent: c.intent,
        confidence: c.confidence,
        model: c.model,
    }
}

fn scores_pb(s: &Scores) -> pb::Scores {
    pb::Scores {
        examples: s.n as u32,
        accuracy: s.accuracy,
        in_scope_accuracy: s.in_scope_accuracy,
        oos_recall: s.oos_recall,
        in_scope_rejected: s.in_scope_rejected,
        macro_f1: s.macro_f1,
        mcc: s.mcc,
        per_label: s
            .per_label
            .iter()
            .map(|l| pb::LabelScores {
                label: l.label.clone(),
                precision: l.precision,
                recall: l.recall,
                f1: l.f1,
                support: l.support as u32,
            })
            .collect(),
    }
}

fn operating_point(m: &ShopModel, aurocs: &[(String, f64)]) -> pb::OperatingPoint {
    let h = &m.header;
    pb::OperatingPoint {
        alpha: h.alpha,
        signal: if h.alpha > 0.0 {
            shop::signal_name(h.signal).into()
        } else {
            shop::signal_name(shop::Signal::MaxProbability).into()
        },
        threshold: if h.alpha > 0.0 {
            h.threshold
        } else {
            h.ngram_threshold
        },
        auroc: aurocs.iter().cloned().collect(),
        sure: h.sure.min(1.0),
    }
}

fn check_examples(v: &mut Violations, examples: &[pb::LabeledExample], max: usize) {
    if examples.is_empty() || examples.len() > max {
        v.add("examples", format!("must hold 1 to {max} examples"));
    }
    for (i, e) in examples.iter().enumerate().take(max) {
        v.text(
            &format!("examples[{i}].text"),
            &e.text,
            shop::MAX_TEXT_CHARS,
            shop::MAX_TEXT_CHARS * 4,
        );
        if !shop::valid_label(&e.label) {
            v.add(
                &format!("examples[{i}].label"),
                "must match [a-z][a-z0-9_]{0,47}",
            );
        }
    }
}

/// Embeddings of many texts (training, evaluation), in chunks that may wait longer than a
/// customer's message would.
async fn embed_all(
    shops: &Shops,
    texts: &[&str],
) -> (Option<Vec<Vec<f32>>>, Option<String>, String) {
    let Some(meaning) = &shops.meaning else {
        return (
            None,
            None,
            "no embedding server configured (KEFU_EMBEDDINGS_URL)".into(),
        );
    };
    let masked: Vec<String> = texts.iter().map(|t| shop::embedding_text(t)).collect();
    let mut out = Vec::with_capacity(texts.len());
    for chunk in masked.chunks(BULK_EMBED_CHUNK) {
        match meaning
            .embedder
            .embed_within(kefu_embed::Kind::Query, chunk, BULK_EMBED_TIMEOUT)
            .await
        {
            Ok(vs) => out.extend(vs.iter().map(|v| v.to_vec())),
            Err(e) => {
                tracing::warn!(error = %e, "embedding examples failed; the n-gram model alone");
                return (None, None, format!("the embedding server failed: {e}"));
            }
        }
    }
    (
        Some(out),
        Some(meaning.embedder.config().model.clone()),
        String::new(),
    )
}

#[tonic::async_trait]
impl IntentClassifierService for Api {
    async fn classify(
        &self,
        req: Request<ClassifyRequest>,
    ) -> Result<Response<ClassifyResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let shop_id = caller.shop(&req.shop_id)?;
        let mut v = Violations::new();
        v.text("text", &req.text, 4000, 16 * 1024);
        if req.language.len() > 8 {
            v.add("language", "must be an ISO 639-1 code");
        }
        v.into_result().map_err(ApiError::from)?;
        let mut c = self.shops.classify(&shop_id, &[&req.text]).await;
        Ok(Response::new(response(c.remove(0))))
    }

    async fn classify_batch(
        &self,
        req: Request<ClassifyBatchRequest>,
    ) -> Result<Response<ClassifyBatchResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let shop_id = caller.shop(&req.shop_id)?;
        let mut v = Violations::new();
        if req.items.is_empty() || req.items.len() > MAX_BATCH {
            v.add("items", format!("must hold 1 to {MAX_BATCH} items"));
        }
        for (i, item) in req.items.iter().enumerate().take(MAX_BATCH) {
            v.text(&format!("items[{i}].text"), &item.text, 4000, 16 * 1024);
        }
        v.into_result().map_err(ApiError::from)?;
        let texts: Vec<&str> = req.items.iter().map(|i| i.text.as_str()).collect();
        let results = self.shops.classify(&shop_id, &texts).await;
        Ok(Response::new(ClassifyBatchResponse {
            results: req
                .items
                .iter()
                .zip(results)
                .map(|(item, c)| ClassifyBatchResult {
                    id: item.id.clone(),
                    result: Some(response(c)),
                })
                .collect(),
        }))
    }

    async fn add_examples(
        &self,
        req: Request<AddExamplesRequest>,
    ) -> Result<Response<AddExamplesResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let shop_id = caller.shop(&req.shop_id)?;
        let mut v = Violations::new();
        check_examples(&mut v, &req.examples, MAX_ADD);
        let source = match req.source.as_str() {
            "" | "upload" => "upload",
            "agent" => "agent",
            _ => {
                v.add("source", "must be upload or agent");
                "upload"
            }
        };
        if req.labeled_by.chars().count() > 128 {
            v.add("labeled_by", "must be at most 128 characters");
        }
        v.into_result().map_err(ApiError::from)?;
        // An agent's token names the agent; nobody else can sign as one.
        let labeled_by = match &caller.principal {
            kefu_runtime::auth::Principal::Agent { agent_id } => agent_id.clone(),
            _ => req.labeled_by.clone(),
        };
        let rows: Vec<(String, String)> = req
            .examples
            .into_iter()
            .map(|e| (e.text.trim().to_owned(), e.label))
            .collect();
        let added = store::add_examples(
            &self.shops.db,
            &shop_id,
            &rows,
            source,
            &labeled_by,
            req.replace,
        )
        .await
        .map_err(|e| match e {
            store::StoreError::TooMany(_) => {
                let mut v = Violations::new();
                v.add("examples", e.to_string());
                ApiError::from(v)
            }
            store::StoreError::Db(e) => ApiError::from(e),
        })?;
        Ok(Response::new(AddExamplesResponse {
            added: added.added,
            updated: added.updated,
            total: added.total as u32,
        }))
    }

    async fn list_examples(
        &self,
        req: Request<ListExamplesRequest>,
    ) -> Result<Response<ListExamplesResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let shop_id = caller.shop(&req.shop_id)?;
        let mut v = Violations::new();
        if !matches!(req.source.as_str(), "" | "upload" | "agent") {
            v.add("source", "must be upload, agent or empty");
        }
        if !req.label.is_empty() && !shop::valid_label(&req.label) {
            v.add("label", "must match [a-z][a-z0-9_]{0,47}");
        }
        if req.page_size > 1000 {
            v.add("page_size", "must be at most 1000");
        }
        let before = if req.page_token.is_empty() {
            None
        } else {
            match req.page_token.parse::<i64>() {
                Ok(b) if b > 0 => Some(b),
                _ => {
                    v.add("page_token", "not a token from ListExamples");
                    None
                }
            }
        };
        v.into_result().map_err(ApiError::from)?;
        let size = if req.page_size == 0 {
            100
        } else {
            u64::from(req.page_size)
        };
        let rows = store::list_examples(
            &self.shops.db,
            &shop_id,
            (!req.source.is_empty()).then_some(req.source.as_str()),
            (!req.label.is_empty()).then_some(req.label.as_str()),
            before,
            size + 1,
        )
        .await
        .map_err(ApiError::from)?;
        let more = rows.len() as u64 > size;
        let rows: Vec<_> = rows.into_iter().take(size as usize).collect();
        let next_page_token = if more {
            rows.last().map(|r| r.id.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListExamplesResponse {
            examples: rows
                .into_iter()
                .map(|r| pb::StoredExample {
                    id: r.id,
                    text: r.text,
                    label: r.label,
                    source: r.source,
                    labeled_by: r.labeled_by,
                    updated_at: Some(kefu_runtime::event::timestamp(r.updated_at)),
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn delete_examples(
        &self,
        req: Request<DeleteExamplesRequest>,
    ) -> Result<Response<DeleteExamplesResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let shop_id = caller.shop(&req.shop_id)?;
        if req.ids.is_empty() || req.ids.len() > 1000 {
            let mut v = Violations::new();
            v.add("ids", "must hold 1 to 1000 ids");
            return Err(ApiError::from(v).into());
        }
        let deleted = store::delete_examples(&self.shops.db, &shop_id, &req.ids)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(DeleteExamplesResponse {
            deleted: deleted as u32,
        }))
    }

    async fn train(&self, req: Request<TrainRequest>) -> Result<Response<TrainResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let shop_id = caller.shop(&req.shop_id)?;
        let mut v = Violations::new();
        if let Some(b) = &req.builtins {
            for (i, d) in b.disabled.iter().enumerate() {
                if d != "*" && !kefu_intent::INTENTS.contains(&d.as_str()) || d == OUT_OF_SCOPE {
                    v.add(
                        &format!("builtins.disabled[{i}]"),
                        "must be * or a built-in intent (out_of_scope cannot be disabled; see generic_negatives)",
                    );
                }
            }
        }
        v.into_result().map_err(ApiError::from)?;
        let _one = self
            .heavy
            .acquire()
            .await
            .map_err(|_| ApiError::Unavailable("the service is stopping".into()))?;
        let started = Instant::now();
        self.shops.invalidate(&shop_id);
        let active = self.shops.active(&shop_id).await;
        let before = match &active {
            Active::Shop { model, .. } => model.header.recipe.clone(),
            Active::Bundled(_) => Recipe::default(),
        };
        let recipe = Recipe {
            disabled_builtins: req
                .builtins
                .map(|b| b.disabled)
                .unwrap_or(before.disabled_builtins),
            generic_negatives: req.generic_negatives.unwrap_or(before.generic_negatives),
        };
        let own = store::all_examples(&self.shops.db, &shop_id)
            .await
            .map_err(ApiError::from)?;
        let set = shop::training_set(&recipe, &own);
        let texts: Vec<&str> = set.iter().map(|e| e.text.as_str()).collect();
        let (embeddings, embedding_model, note) = embed_all(&self.shops, &texts).await;
        let trained = {
            let set = set.clone();
            let recipe = recipe.clone();
            let embeddings = embeddings.clone();
            tokio::task::spawn_blocking(move || {
                shop::train(&shop::Input {
                    examples: &set,
                    embeddings: embeddings.as_deref(),
                    embedding_model,
                    recipe,
                    embedding_note: note,
                })
            })
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
            .map_err(|e| {
                let mut v = Violations::new();
                v.add("examples", e.to_string());
                ApiError::from(v)
            })?
        };

        // The release check, on examples the active model never saw: the shop's own for the
        // bundled model; for a trained one, those not in its training set.
        let labels = trained.model.labels().to_vec();
        let (comparable, prior_mcc): (Vec<usize>, Option<f64>) = match &active {
            Active::Bundled(_) => (
                (0..set.len())
                    .filter(|&i| set[i].origin == "shop")
                    .collect(),
                None,
            ),
            Active::Shop { version, .. } => {
                let (keys, mcc) = store::seen(&self.shops.db, &shop_id, *version)
                    .await
                    .map_err(ApiError::from)?
                    .unwrap_or_default();
                (
                    (0..set.len())
                        .filter(|&i| !shop::was_seen(&keys, &set[i].text))
                        .collect(),
                    Some(mcc),
                )
            }
        };
        let candidate = &trained.report.ensemble;
        let (active_scores, candidate_mcc, active_mcc, basis) = if comparable.len()
            >= MIN_COMPARABLE
        {
            let truth: Vec<&str> = comparable
                .iter()
                .map(|&i| labels[trained.truth[i]].as_str())
                .collect();
            let ours: Vec<&str> = comparable
                .iter()
                .map(|&i| labels[trained.predicted[i]].as_str())
                .collect();
            let theirs: Vec<String> = match &active {
                Active::Bundled(m) => comparable
                    .iter()
                    .map(|&i| m.predict(&set[i].text).intent)
                    .collect(),
                Active::Shop { model, .. } => comparable
                    .iter()
                    .map(|&i| {
                        let p = model.ngram_probabilities(&set[i].text);
                        let e = embeddings.as_ref().map(|e| &e[i][..]);
                        model.decide_with(&p, e).intent
                    })
                    .collect(),
            };
            let ours = shop::score_names(&labels, &truth, &ours);
            let theirs = shop::score_names(&labels, &truth, &theirs);
            let basis = format!(
                "on the {} examples the active model never saw (the new one cross-validated)",
                comparable.len()
            );
            (Some(theirs.clone()), ours.mcc, theirs.mcc, basis)
        } else if let Some(mcc) = prior_mcc {
            (
                None,
                candidate.mcc,
                mcc,
                format!(
                    "cross-validated, against the active version's own cross-validated MCC (only {} examples it never saw)",
                    comparable.len()
                ),
            )
        } else {
            (
                None,
                candidate.mcc,
                f64::NEG_INFINITY,
                format!(
                    "only {} examples of the shop's own to score the bundled model on (fewer than {MIN_COMPARABLE}): nothing to compare",
                    comparable.len()
                ),
            )
        };
        let better = candidate_mcc + 1e-9 >= active_mcc;
        let activate = better || req.force;
        let reason = if active_mcc == f64::NEG_INFINITY {
            format!("activated: {basis}")
        } else {
            let (c, a) = (candidate_mcc, active_mcc);
            match (better, req.force) {
                (true, _) => format!("activated: MCC {c:.3} ≥ the active model's {a:.3} {basis}"),
                (false, true) => format!(
                    "activated (forced) although its MCC {c:.3} < the active model's {a:.3} {basis}"
                ),
                (false, false) => format!(
                    "not activated: MCC {c:.3} < the active model's {a:.3} {basis}; --force to override"
                ),
            }
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let stored = StoredReport {
            labels: labels.clone(),
            recipe,
            report: trained.report.clone(),
            active_model: active.name(),
            active: active_scores.clone().unwrap_or_default(),
            reason: reason.clone(),
            duration_ms,
            sure: trained.model.header.sure,
        };
        let model = trained.model;
        let version = store::store_version(
            &self.shops.db,
            &shop_id,
            store::NewVersion {
                model: model.version(),
                artefact: model.to_bytes(),
                seen: shop::seen_keys(&set),
                report: serde_json::to_string(&stored).map_err(|e| ApiError::Internal(e.into()))?,
                examples: set.len() as i64,
                mcc: candidate.mcc,
                active_mcc: if active_mcc.is_finite() {
                    active_mcc
                } else {
                    0.0
                },
            },
            activate,
        )
        .await
        .map_err(ApiError::from)?;
        self.shops.invalidate(&shop_id);
        let r = &stored.report;
        tracing::info!(
            shop_id,
            version,
            activated = activate,
            examples = r.examples,
            mcc = candidate.mcc,
            active_mcc,
            duration_ms,
            "intent model trained"
        );
        Ok(Response::new(TrainResponse {
            version,
            model: model.version().to_owned(),
            activated: activate,
            reason,
            examples: r.examples as u32,
            from_shop: r.from_shop as u32,
            from_builtin: r.from_builtin as u32,
            from_generic: r.from_generic as u32,
            labels,
            ngram: Some(scores_pb(&r.ngram)),
            embedding: r.embedding.as_ref().map(scores_pb),
            candidate: Some(scores_pb(&r.ensemble)),
            active: active_scores.as_ref().map(scores_pb),
            active_model: stored.active_model.clone(),
            operating_point: Some(operating_point(&model, &r.operating_point.auroc)),
            embedding_share: r.embedding_share,
            embedding_note: r.embedding_note.clone(),
            duration_ms,
        }))
    }

    async fn evaluate(
        &self,
        req: Request<EvaluateRequest>,
    ) -> Result<Response<EvaluateResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let shop_id = caller.shop(&req.shop_id)?;
        let mut v = Violations::new();
        check_examples(&mut v, &req.examples, MAX_EVALUATE);
        v.into_result().map_err(ApiError::from)?;
        let _one = self
            .heavy
            .acquire()
            .await
            .map_err(|_| ApiError::Unavailable("the service is stopping".into()))?;
        let active = self.shops.active(&shop_id).await;
        let texts: Vec<&str> = req.examples.iter().map(|e| e.text.as_str()).collect();
        let truth_names: Vec<&str> = req.examples.iter().map(|e| e.label.as_str()).collect();
        let mut resp = EvaluateResponse {
            model: active.name(),
            ..Default::default()
        };
        match &active {
            Active::Bundled(m) => {
                let predicted: Vec<String> = texts.iter().map(|t| m.predict(t).intent).collect();
                let s = shop::score_names(&m.labels, &truth_names, &predicted);
                resp.running = Some(scores_pb(&s));
                resp.ngram = Some(scores_pb(&s));
                resp.operating_point = Some(pb::OperatingPoint {
                    signal: "max_probability".into(),
                    threshold: m.threshold,
                    ..Default::default()
                });
            }
            Active::Shop { model, .. } => {
                let embeddings = if model.head.is_some() {
                    embed_all(&self.shops, &texts).await.0
                } else {
                    None
                };
                let labels = model.labels().to_vec();
                let ngram: Vec<Vec<f32>> =
                    texts.iter().map(|t| model.ngram_probabilities(t)).collect();
                let score = |predicted: Vec<String>| {
                    Some(scores_pb(&shop::score_names(
                        &labels,
                        &truth_names,
                        &predicted,
                    )))
                };
                resp.ngram = score(ngram.iter().map(|p| model.decide_ngram(p).intent).collect());
                resp.running = score(
                    ngram
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let e = embeddings.as_ref().map(|e| &e[i][..]);
                            model.decide_with(p, e).intent
                        })
                        .collect(),
                );
                let asked = ngram.iter().filter(|p| model.wants_embedding(p)).count() as u32;
                match &embeddings {
                    Some(e) => {
                        resp.embedding =
                            score(e.iter().map(|v| model.decide_embedding(v).intent).collect());
                    }
                    None if model.head.is_some() => resp.embedding_failed = asked,
                    None => {}
                }
                resp.embedded = asked;
                resp.operating_point = Some(operating_point(model, &[]));
            }
        }
        Ok(Response::new(resp))
    }

    async fn get_intent_status(
        &self,
        req: Request<GetIntentStatusRequest>,
    ) -> Result<Response<GetIntentStatusResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let shop_id = caller.shop(&req.shop_id)?;
        let db = &self.shops.db;
        let active = store::active(db, &shop_id)
            .await
            .map_err(ApiError::from)?
            .unwrap_or(0);
        let versions = store::versions(db, &shop_id)
            .await
            .map_err(ApiError::from)?;
        let active_model = versions
            .iter()
            .find(|(v, _)| v.0 == active)
            .map(|(v, _)| v.2.clone())
            .unwrap_or_else(|| self.shops.bundled.current().version.clone());
        Ok(Response::new(GetIntentStatusResponse {
            active_version: active,
            active_model,
            versions: versions
                .into_iter()
                .map(
                    |((version, created, model, report, examples, mcc, active_mcc), at)| {
                        let labels = serde_json::from_str::<StoredReport>(&report)
                            .map(|r| r.labels)
                            .unwrap_or_default();
                        pb::IntentVersion {
                            version,
                            model,
                            created_at: Some(kefu_runtime::event::timestamp(created)),
                            active: version == active,
                            activated_at: at.map(kefu_runtime::event::timestamp),
                            examples: examples as u32,
                            labels,
                            mcc,
                            active_mcc,
                        }
                    },
                )
                .collect(),
            upload_examples: store::count(db, &shop_id, Some("upload"))
                .await
                .map_err(ApiError::from)? as u32,
            agent_examples: store::count(db, &shop_id, Some("agent"))
                .await
                .map_err(ApiError::from)? as u32,
        }))
    }

    async fn rollback_intents(
        &self,
        req: Request<RollbackIntentsRequest>,
    ) -> Result<Response<RollbackIntentsResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let shop_id = caller.shop(&req.shop_id)?;
        let now = store::rollback(&self.shops.db, &shop_id)
            .await
            .map_err(ApiError::from)?;
        self.shops.invalidate(&shop_id);
        let active = self.shops.active(&shop_id).await;
        Ok(Response::new(RollbackIntentsResponse {
            active_version: now,
            active_model: active.name(),
        }))
    }
}
