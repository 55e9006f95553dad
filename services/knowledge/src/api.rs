//! gRPC `kefu.knowledge.v1.KnowledgeService`.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use kefu_knowledge::{
    Bundle,
    answer::{Answer, Kind, Knowledge},
    bundle::{MAX_BUNDLE_BYTES, MAX_FILES},
    scenario,
};
use kefu_proto::knowledge::v1::{
    ActivateRequest, ActivateResponse, AnswerRequest, AnswerResponse, AppliedPromotion,
    BundleChunk, EvaluateRequest, EvaluateResponse, GetStatusRequest, GetStatusResponse,
    ImportBundleResponse, NextThreshold, PresaleTerms, QuotePriceRequest, QuotePriceResponse,
    QuotedLine, RejectedPromotion, RollbackRequest, RollbackResponse, ScenarioResult, Summary,
    Version, knowledge_service_server::KnowledgeService,
};
use kefu_runtime::{
    auth::{Allow, Caller},
    event,
    grpc::ApiError,
    validate::Violations,
};
use prometheus_client::metrics::{counter::Counter, family::Family};
use sea_orm::DatabaseConnection;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::{phrasing::Phraser, store};

/// Who may call what: the shop manages its knowledge; the assistant (a service) and the shop
/// ask it questions.
pub fn policy(method: &str) -> Option<Allow> {
    match method {
        "ImportBundle" | "Evaluate" | "Activate" | "Rollback" | "GetStatus" => Some(Allow::SHOP),
        "Answer" | "QuotePrice" => Some(Allow::SHOP | Allow::SERVICE),
        _ => None,
    }
}

/// Parsed and indexed versions kept in memory (the active ones and the latest evaluated).
const CACHED: usize = 64;

/// How long `Answer` and `QuotePrice` reuse a shop's active version number before asking the
/// database again: an activation or rollback on this replica is seen at once, on the others
/// within this time.
const ACTIVE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

pub struct Api {
    pub db: DatabaseConnection,
    cache: Mutex<HashMap<(String, i64), Arc<Knowledge>>>,
    /// Shop → (active version, when read).
    active: Mutex<HashMap<String, (Option<i64>, std::time::Instant)>>,
    phraser: Option<Phraser>,
    meaning: Option<Meaning>,
}

/// FAQ entries found by meaning as well as by words: the deployment's embedding model
/// (docs/intent.md, "Embeddings"; docs/knowledge.md, "By meaning").
pub struct Meaning {
    pub embedder: kefu_embed::Embedder,
    /// Outcomes by label (`query`, `query_failed`, `faq`, `faq_failed`).
    pub outcomes: Family<Vec<(String, String)>, Counter>,
    /// Version → when its FAQ was last sent to be embedded.
    tried: Mutex<HashMap<(String, i64), std::time::Instant>>,
}

impl Meaning {
    pub fn new(
        embedder: kefu_embed::Embedder,
        outcomes: Family<Vec<(String, String)>, Counter>,
    ) -> Self {
        Meaning {
            embedder,
            outcomes,
            tried: Mutex::new(HashMap::new()),
        }
    }

    fn count(&self, outcome: &str) {
        self.outcomes
            .get_or_create(&vec![("outcome".to_owned(), outcome.to_owned())])
            .inc();
    }
}

/// How long one batch of a version's FAQ may take to embed (off the message path).
const FAQ_EMBED_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long after a failed attempt a version's FAQ is sent to be embedded again.
const EMBED_RETRY: std::time::Duration = std::time::Duration::from_secs(30);

/// Embeds a version's FAQ entries (`passage:`), 8 at a time so that a customer's question
/// never waits long behind them, each batch waiting up to [`FAQ_EMBED_TIMEOUT`].
async fn embed_faq(embedder: kefu_embed::Embedder, k: Arc<Knowledge>) -> bool {
    let mut vectors = Vec::with_capacity(k.bundle.faq.len());
    for chunk in k.faq_passages().chunks(8) {
        match embedder
            .embed_within(kefu_embed::Kind::Passage, chunk, FAQ_EMBED_TIMEOUT)
            .await
        {
            Ok(v) => vectors.extend(v.iter().map(|x| x.to_vec())),
            Err(e) => {
                tracing::warn!(error = %e, "embedding the FAQ failed: answering by words only");
                return false;
            }
        }
    }
    k.set_faq_vectors(vectors);
    true
}

fn summary(b: &Bundle) -> Summary {
    Summary {
        faq_entries: b.faq.len() as i32,
        products: b.products.len() as i32,
        product_facts: b.products.iter().map(|p| p.facts.len()).sum::<usize>() as i32,
        promotions: b.promotions.as_ref().map_or(0, |p| p.promotions.len()) as i32,
        scenarios: b.scenarios.len() as i32,
    }
}

fn summary_json(s: &Summary) -> String {
    serde_json::json!({
        "faq_entries": s.faq_entries, "products": s.products, "product_facts": s.product_facts,
        "promotions": s.promotions, "scenarios": s.scenarios,
    })
    .to_string()
}

fn summary_of(json: &str) -> Summary {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let n = |k: &str| v[k].as_i64().unwrap_or(0) as i32;
    Summary {
        faq_entries: n("faq_entries"),
        products: n("products"),
        product_facts: n("product_facts"),
        promotions: n("promotions"),
        scenarios: n("scenarios"),
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Faq => "faq",
        Kind::Product => "product",
        Kind::Stock => "stock",
        Kind::Price => "price",
        Kind::Recommendation => "recommendation",
        Kind::Which => "which",
    }
}

/// Parses and indexes a bundle off the async workers (5,000 product pages take seconds).
async fn build(files: Vec<(String, Vec<u8>)>) -> Result<Knowledge, ApiError> {
    tokio::task::spawn_blocking(move || {
        let bundle = Bundle::from_files(&files).map_err(|e| {
            let mut v = Violations::new();
            for p in e.0.iter().take(100) {
                let field = match p.line {
                    Some(l) => format!("{}:{l}", p.file),
                    None => p.file.clone(),
                };
                v.add(&field, p.message.clone());
            }
            if e.0.len() > 100 {
                v.add("bundle", format!("{} more problems", e.0.len() - 100));
            }
            ApiError::from(v)
        })?;
        Knowledge::new(bundle).map_err(|e| ApiError::Internal(anyhow::anyhow!("indexing: {e}")))
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?
}

impl Api {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            cache: Mutex::new(HashMap::new()),
            active: Mutex::new(HashMap::new()),
            phraser: None,
            meaning: None,
        }
    }

    /// FAQ entries found by meaning too, with this embedding model.
    pub fn with_meaning(mut self, meaning: Option<Meaning>) -> Self {
        self.meaning = meaning;
        self
    }

    /// Makes sure version `v`'s FAQ gets embedded: at once when `wait` (evaluating a version:
    /// its score must be the score it will answer with), else in the background (answering
    /// never waits for it; until then, by words).
    async fn embed_version(&self, shop: &str, v: i64, k: &Arc<Knowledge>, wait: bool) {
        let Some(m) = &self.meaning else {
            return;
        };
        if k.has_faq_vectors() || k.bundle.faq.is_empty() {
            return;
        }
        {
            let mut tried = m.tried.lock().unwrap_or_else(|e| e.into_inner());
            let key = (shop.to_owned(), v);
            if !wait && tried.get(&key).is_some_and(|t| t.elapsed() < EMBED_RETRY) {
                return;
            }
            if tried.len() > 10_000 {
                tried.clear();
            }
            tried.insert(key, std::time::Instant::now());
        }
        let job = embed_faq(m.embedder.clone(), k.clone());
        if wait {
            m.count(if job.await { "faq" } else { "faq_failed" });
        } else {
            let outcomes = m.outcomes.clone();
            tokio::spawn(async move {
                let ok = job.await;
                outcomes
                    .get_or_create(&vec![(
                        "outcome".to_owned(),
                        if ok { "faq" } else { "faq_failed" }.to_owned(),
                    )])
                    .inc();
            });
        }
    }

    /// Answers phrased by an LLM (`phrasing`), checked, with the extractive answer as fallback.
    pub fn with_phraser(mut self, phraser: Option<Phraser>) -> Self {
        self.phraser = phraser;
        self
    }

    /// The reply to `question` from `k` as a customer gets it: the answer (phrased when an LLM
    /// is configured and its reply passes the checks) or `None`.
    async fn respond(
        &self,
        k: &Knowledge,
        question: &str,
        language: &str,
    ) -> Option<(Answer, bool)> {
        let now = chrono::Utc::now().fixed_offset();
        let mut first = k.answer_with(question, language, now, None);
        // The question's embedding only where it could change the answer (the FAQ); on any
        // failure, the answer by words stands.
        if let Some(m) = &self.meaning
            && k.meaning_may_change(first.as_ref())
        {
            match m
                .embedder
                .embed_one(kefu_embed::Kind::Query, question)
                .await
            {
                Ok(v) => {
                    m.count("query");
                    first = k.answer_with(question, language, now, Some(&v));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "no question embedding: by words only");
                    m.count("query_failed");
                }
            }
        }
        let mut a = first?;
        let mut phrased = false;
        if let Some(p) = &self.phraser
            && let Some(t) = p.phrase(question, &a.text, &a.language).await
        {
            a.text = t;
            phrased = true;
        }
        Some((a, phrased))
    }

    /// What a scenario is scored on: the reply, or the hand-over.
    async fn scenario_reply(&self, k: &Knowledge, question: &str) -> String {
        let lang = kefu_knowledge::text::language(question);
        match self.respond(k, question, lang).await {
            Some((a, _)) => a.text,
            None => kefu_knowledge::answer::handover(lang).to_owned(),
        }
    }

    /// A version, parsed and indexed (cached).
    async fn knowledge(&self, shop: &str, v: i64) -> Result<Arc<Knowledge>, ApiError> {
        if let Some(k) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(shop.to_owned(), v))
        {
            return Ok(k.clone());
        }
        let files = store::files(&self.db, shop, v)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("version {v} not found")))?;
        let k = Arc::new(build(files).await?);
        self.remember(shop, v, k.clone());
        Ok(k)
    }

    fn remember(&self, shop: &str, v: i64, k: Arc<Knowledge>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHED
            && let Some(old) = cache.keys().next().cloned()
        {
            cache.remove(&old);
        }
        cache.insert((shop.to_owned(), v), k);
    }

    /// The shop's active version for answering (read at most every [`ACTIVE_TTL`]).
    async fn active_version(&self, shop: &str) -> Result<Option<i64>, ApiError> {
        if let Some((v, at)) = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(shop)
            && at.elapsed() < ACTIVE_TTL
        {
            return Ok(*v);
        }
        let v = store::active(&self.db, shop).await?;
        let mut cached = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if cached.len() > 100_000 {
            cached.clear();
        }
        cached.insert(shop.to_owned(), (v, std::time::Instant::now()));
        Ok(v)
    }

    fn forget_active(&self, shop: &str) {
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(shop);
    }

    /// Scores of `v`'s scenarios on `v` and on the active version.
    async fn evaluate_version(&self, shop: &str, v: i64) -> Result<EvaluateResponse, ApiError> {
        let new = self.knowledge(shop, v).await?;
        self.embed_version(shop, v, &new, true).await;
        let active = store::active(&self.db, shop).await?;
        let old = match active {
            Some(a) => {
                let old = self.knowledge(shop, a).await?;
                self.embed_version(shop, a, &old, true).await;
                Some(old)
            }
            None => None,
        };
        let mut out = EvaluateResponse {
            version: v,
            active_version: active.unwrap_or(0),
            ..Default::default()
        };
        for s in &new.bundle.scenarios {
            let r = self.scenario_reply(&new, &s.text).await;
            let why = scenario::check(s, &r);
            let mut res = ScenarioResult {
                text: s.text.clone(),
                passed: why.is_empty(),
                reply: r,
                why,
                ..Default::default()
            };
            if let Some(old) = &old {
                let r = self.scenario_reply(old, &s.text).await;
                res.active_why = scenario::check(s, &r);
                res.active_passed = res.active_why.is_empty();
                res.active_reply = r;
            }
            out.passed += res.passed as i32;
            out.active_passed += res.active_passed as i32;
            out.scenarios.push(res);
        }
        Ok(out)
    }
}

fn positive(v: &mut Violations, field: &str, n: i64) {
    if n <= 0 {
        v.add(field, "must be a version number (1 or more)");
    }
}

#[tonic::async_trait]
impl KnowledgeService for Api {
    async fn import_bundle(
        &self,
        req: Request<Streaming<BundleChunk>>,
    ) -> Result<Response<ImportBundleResponse>, Status> {
        let caller = Caller::of(&req)?;
        let shop = caller.shop("")?;
        let mut stream = req.into_inner();
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut total = 0usize;
        while let Some(chunk) = stream.next().await {
            let c = chunk?;
            caller.shop(&c.shop_id)?;
            total += c.data.len();
            let mut v = Violations::new();
            if c.path.is_empty()
                || c.path.len() > 512
                || c.path.contains("..")
                || c.path.starts_with('/')
            {
                v.add("path", "must be a relative path inside the bundle");
            }
            if total > MAX_BUNDLE_BYTES {
                v.add(
                    "data",
                    format!("a bundle is at most {MAX_BUNDLE_BYTES} bytes"),
                );
            }
            v.into_result().map_err(ApiError::from)?;
            match files.last_mut() {
                Some((p, data)) if *p == c.path => data.extend_from_slice(&c.data),
                _ => {
                    if files.iter().any(|(p, _)| *p == c.path) {
                        let mut v = Violations::new();
                        v.add(
                            "path",
                            format!("{}: the chunks of a file must be consecutive", c.path),
                        );
                        return Err(ApiError::from(v).into());
                    }
                    if files.len() == MAX_FILES {
                        let mut v = Violations::new();
                        v.add("path", format!("a bundle has at most {MAX_FILES} files"));
                        return Err(ApiError::from(v).into());
                    }
                    files.push((c.path, c.data));
                }
            }
        }
        let k = Arc::new(build(files.clone()).await?);
        let sum = summary(&k.bundle);
        let version = store::store_version(&self.db, &shop, &files, &summary_json(&sum))
            .await
            .map_err(ApiError::from)?;
        self.remember(&shop, version, k);
        tracing::info!(shop = %shop, version, ?sum, "knowledge bundle imported");
        Ok(Response::new(ImportBundleResponse {
            version,
            summary: Some(sum),
        }))
    }

    async fn evaluate(
        &self,
        req: Request<EvaluateRequest>,
    ) -> Result<Response<EvaluateResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let shop = caller.shop(&r.shop_id)?;
        let mut v = Violations::new();
        positive(&mut v, "version", r.version);
        v.into_result().map_err(ApiError::from)?;
        Ok(Response::new(
            self.evaluate_version(&shop, r.version).await?,
        ))
    }

    async fn activate(
        &self,
        req: Request<ActivateRequest>,
    ) -> Result<Response<ActivateResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let shop = caller.shop(&r.shop_id)?;
        let mut v = Violations::new();
        positive(&mut v, "version", r.version);
        v.into_result().map_err(ApiError::from)?;
        let e = self.evaluate_version(&shop, r.version).await?;
        if !r.force && e.active_version != 0 && e.passed < e.active_passed {
            return Err(ApiError::FailedPrecondition(format!(
                "version {} passes {}/{} of its scenarios, the active version {} passes {}: not activated (force to override)",
                r.version,
                e.passed,
                e.scenarios.len(),
                e.active_version,
                e.active_passed
            ))
            .into());
        }
        let previous = store::activate(&self.db, &shop, r.version)
            .await
            .map_err(ApiError::from)?;
        self.forget_active(&shop);
        tracing::info!(shop = %shop, version = r.version, ?previous, force = r.force, "knowledge version activated");
        Ok(Response::new(ActivateResponse {
            active_version: r.version,
            previous_version: previous.unwrap_or(0),
        }))
    }

    async fn rollback(
        &self,
        req: Request<RollbackRequest>,
    ) -> Result<Response<RollbackResponse>, Status> {
        let caller = Caller::of(&req)?;
        let shop = caller.shop(&req.into_inner().shop_id)?;
        let now = store::rollback(&self.db, &shop)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| {
                ApiError::FailedPrecondition("no earlier active version to roll back to".into())
            })?;
        self.forget_active(&shop);
        tracing::info!(shop = %shop, version = now, "knowledge rolled back");
        Ok(Response::new(RollbackResponse {
            active_version: now,
        }))
    }

    async fn get_status(
        &self,
        req: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        let caller = Caller::of(&req)?;
        let shop = caller.shop(&req.into_inner().shop_id)?;
        let active = store::active(&self.db, &shop)
            .await
            .map_err(ApiError::from)?;
        let versions = store::versions(&self.db, &shop)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|(v, at)| Version {
                active: Some(v.version) == active,
                version: v.version,
                created_at: Some(event::timestamp(v.created_at)),
                summary: Some(summary_of(&v.summary)),
                activated_at: at.map(event::timestamp),
            })
            .collect();
        Ok(Response::new(GetStatusResponse {
            active_version: active.unwrap_or(0),
            versions,
        }))
    }

    async fn quote_price(
        &self,
        req: Request<QuotePriceRequest>,
    ) -> Result<Response<QuotePriceResponse>, Status> {
        use kefu_knowledge::pricing::{self, Reason, Stage};
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let shop = caller.shop(&r.shop_id)?;
        let mut v = Violations::new();
        if r.lines.is_empty() || r.lines.len() > 100 {
            v.add("lines", "a cart has 1-100 lines");
        }
        for (i, l) in r.lines.iter().enumerate() {
            if l.sku.trim().is_empty() || l.sku.len() > 128 {
                v.add(&format!("lines[{i}].sku"), "a SKU of 1-128 bytes");
            }
            if !(1..=999).contains(&l.quantity) {
                v.add(&format!("lines[{i}].quantity"), "must be 1-999");
            }
        }
        if r.held_coupons.len() > 50 || r.held_coupons.iter().any(|c| c.len() > 128) {
            v.add("held_coupons", "at most 50 coupon ids of up to 128 bytes");
        }
        v.into_result().map_err(ApiError::from)?;
        let Some(active) = self.active_version(&shop).await? else {
            return Err(ApiError::FailedPrecondition(
                "the shop has no active knowledge version (kefu knowledge import)".into(),
            )
            .into());
        };
        let k = self.knowledge(&shop, active).await?;
        let at = match r.at {
            Some(t) => chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)
                .ok_or_else(|| {
                    let mut v = Violations::new();
                    v.add("at", "not a valid time");
                    ApiError::from(v.into_result().unwrap_err())
                })?,
            None => chrono::Utc::now(),
        }
        .fixed_offset();
        let cart: Vec<(String, u32)> = r
            .lines
            .iter()
            .map(|l| (l.sku.trim().to_owned(), l.quantity as u32))
            .collect();
        let (q, lines) =
            pricing::quote_cart(&k, &cart, &r.held_coupons, at).map_err(|unknown| {
                let mut v = Violations::new();
                for (i, sku) in unknown {
                    v.add(
                        &format!("lines[{i}].sku"),
                        format!("\"{sku}\" is not in the shop's catalogue"),
                    );
                }
                ApiError::from(v.into_result().unwrap_err())
            })?;
        let money = |d: rust_decimal::Decimal| d.round_dp(2).normalize().to_string();
        let ts = |t: Option<chrono::DateTime<chrono::FixedOffset>>| {
            t.map(|t| event::timestamp(t.with_timezone(&chrono::Utc)))
        };
        Ok(Response::new(QuotePriceResponse {
            currency: q.currency.clone(),
            subtotal: money(q.subtotal),
            lines: lines
                .iter()
                .map(|(l, title)| QuotedLine {
                    sku: l.sku.clone(),
                    title: title.clone(),
                    quantity: l.quantity as i32,
                    unit_price: money(l.unit_price),
                })
                .collect(),
            applied: q
                .applied
                .iter()
                .map(|a| AppliedPromotion {
                    id: a.id.clone(),
                    name: a.name.clone(),
                    stage: match a.stage {
                        Stage::Item => "item",
                        Stage::Presale => "presale",
                        Stage::Shop => "shop",
                        Stage::CrossStore => "cross_store",
                        Stage::Platform => "platform",
                    }
                    .into(),
                    base: money(a.base),
                    off: money(a.off),
                })
                .collect(),
            rejected: q
                .rejected
                .iter()
                .map(|x| {
                    let (reason, threshold, short) = match &x.reason {
                        Reason::NotActive => ("not_active", String::new(), String::new()),
                        Reason::NotInCart => ("not_in_cart", String::new(), String::new()),
                        Reason::NotHeld => ("not_held", String::new(), String::new()),
                        Reason::Short { threshold, short } => {
                            ("short", money(*threshold), money(*short))
                        }
                        Reason::BetterCombination => {
                            ("better_combination", String::new(), String::new())
                        }
                    };
                    RejectedPromotion {
                        id: x.id.clone(),
                        name: x.name.clone(),
                        reason: reason.into(),
                        threshold,
                        short,
                    }
                })
                .collect(),
            total: money(q.total),
            deposit_now: money(q.deposit_now),
            balance: money(q.balance),
            presales: q
                .presales
                .iter()
                .map(|p| PresaleTerms {
                    id: p.id.clone(),
                    deposit: money(p.deposit),
                    balance_starts: ts(p.balance_starts),
                    balance_ends: ts(p.balance_ends),
                    deposit_refundable: p.deposit_refundable,
                })
                .collect(),
            next_threshold: q.next_threshold.as_ref().map(|n| NextThreshold {
                id: n.id.clone(),
                needed: money(n.needed),
                off: money(n.off),
            }),
            assumed_claimed: q.assumed_claimed.clone(),
            version: active,
        }))
    }

    async fn answer(
        &self,
        req: Request<AnswerRequest>,
    ) -> Result<Response<AnswerResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let shop = caller.shop(&r.shop_id)?;
        let mut v = Violations::new();
        v.text("text", &r.text, 4000, 16 * 1024);
        if r.language.len() > 8 {
            v.add("language", "must be an ISO 639-1 code");
        }
        v.into_result().map_err(ApiError::from)?;
        let Some(active) = self.active_version(&shop).await? else {
            return Ok(Response::new(AnswerResponse::default()));
        };
        let k = self.knowledge(&shop, active).await?;
        self.embed_version(&shop, active, &k, false).await;
        let lang = if r.language.is_empty() {
            kefu_knowledge::text::language(&r.text).to_owned()
        } else {
            r.language.clone()
        };
        Ok(Response::new(
            match self.respond(&k, &r.text, &lang).await {
                Some((a, phrased)) => AnswerResponse {
                    found: true,
                    text: a.text,
                    language: a.language,
                    confidence: a.confidence,
                    kind: kind_name(a.kind).into(),
                    sources: a.sources,
                    version: active,
                    phrased,
                },
                None => AnswerResponse {
                    version: active,
                    ..Default::default()
                },
            },
        ))
    }
}
