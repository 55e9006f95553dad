//! Which model classifies a shop's messages, and classification with it: the shop's active
//! trained model (with the embedding model where the n-gram model is unsure), else the
//! bundled model.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kefu_intent::{
    Model, entities,
    shop::{Decision, ShopModel},
};
use prometheus_client::metrics::{counter::Counter, family::Family};
use sea_orm::DatabaseConnection;

use crate::{Models, store};

/// How long a shop's active version number is reused before the database is asked again: a
/// training or rollback on this replica is seen at once, on the others within this time.
pub const ACTIVE_TTL: Duration = Duration::from_secs(2);
/// Memory the cached shop models may take (their weights as floats): a shop with 25 intents
/// takes about 3 MiB, CLINC150's 151 intents about 40 MiB.
pub const CACHE_BYTES: usize = 128 << 20;

/// A classification in the shape both the API and the events use.
#[derive(Clone, Debug)]
pub struct Classified {
    pub intent: String,
    pub confidence: f32,
    pub entities: Vec<entities::Entity>,
    pub model: String,
}

struct Entry {
    version: i64,
    model: Option<Arc<ShopModel>>,
    checked: Instant,
    used: Instant,
}

fn weight_bytes(m: &Option<Arc<ShopModel>>) -> usize {
    m.as_ref().map_or(64, |m| {
        4 * (m.ngram.weights.len()
            + m.head
                .as_ref()
                .map_or(0, |h| h.w.len() + h.centroids.len() + h.mean.len()))
    })
}

/// The embedding model, where the deployment has one.
#[derive(Clone)]
pub struct Meaning {
    pub embedder: kefu_embed::Embedder,
    /// `intent_embeddings_total{outcome}`: used, failed, not_needed.
    pub outcomes: Family<Vec<(String, String)>, Counter>,
}

impl Meaning {
    fn count(&self, outcome: &str, n: u64) {
        self.outcomes
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc_by(n);
    }
}

/// Per-shop models over the bundled one.
pub struct Shops {
    pub db: DatabaseConnection,
    pub bundled: Models,
    pub meaning: Option<Meaning>,
    cache: Mutex<HashMap<String, Entry>>,
}

/// The model a shop's messages are classified with.
#[derive(Clone)]
pub enum Active {
    Bundled(Arc<Model>),
    Shop { version: i64, model: Arc<ShopModel> },
}

impl Active {
    pub fn name(&self) -> String {
        match self {
            Active::Bundled(m) => m.version.clone(),
            Active::Shop { version, model } => {
                format!("{} (shop version {version})", model.version())
            }
        }
    }
}

impl Shops {
    pub fn new(db: DatabaseConnection, bundled: Models, meaning: Option<Meaning>) -> Self {
        Self {
            db,
            bundled,
            meaning,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets what is cached for a shop (after a training or a rollback here).
    pub fn invalidate(&self, shop_id: &str) {
        self.cache.lock().expect("cache").remove(shop_id);
    }

    /// The shop's model. A database that cannot be read keeps what was cached (or the
    /// bundled model): classification never waits on training's tables.
    pub async fn active(&self, shop_id: &str) -> Active {
        let bundled = || Active::Bundled(self.bundled.current());
        let now = Instant::now();
        let cached = {
            let mut c = self.cache.lock().expect("cache");
            c.get_mut(shop_id).map(|e| {
                e.used = now;
                (
                    e.version,
                    e.model.clone(),
                    now.duration_since(e.checked) < ACTIVE_TTL,
                )
            })
        };
        let wrap = |version: i64, m: Option<Arc<ShopModel>>| match m {
            Some(model) => Active::Shop { version, model },
            None => bundled(),
        };
        if let Some((v, m, true)) = &cached {
            return wrap(*v, m.clone());
        }
        let version = match store::active(&self.db, shop_id).await {
            Ok(v) => v.unwrap_or(0),
            Err(e) => {
                tracing::warn!(shop_id, error = %e, "reading the active intent model; keeping the cached one");
                return cached.map_or_else(bundled, |(v, m, _)| wrap(v, m));
            }
        };
        if let Some((v, m, _)) = &cached
            && *v == version
        {
            if let Some(e) = self.cache.lock().expect("cache").get_mut(shop_id) {
                e.checked = now;
            }
            return wrap(*v, m.clone());
        }
        let model = if version == 0 {
            None
        } else {
            match self.load(shop_id, version).await {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::error!(shop_id, version, error = %e, "the shop's intent model cannot be read; using the bundled model");
                    None
                }
            }
        };
        let mut c = self.cache.lock().expect("cache");
        c.remove(shop_id);
        // Least recently used out until this one fits.
        let need = weight_bytes(&model);
        while !c.is_empty()
            && c.values().map(|e| weight_bytes(&e.model)).sum::<usize>() + need > CACHE_BYTES
        {
            if let Some(k) = c.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone()) {
                c.remove(&k);
            }
        }
        c.insert(
            shop_id.to_owned(),
            Entry {
                version,
                model: model.clone(),
                checked: now,
                used: now,
            },
        );
        wrap(version, model)
    }

    /// Reads and parses a stored version.
    pub async fn load(&self, shop_id: &str, version: i64) -> anyhow::Result<Arc<ShopModel>> {
        let bytes = store::artefact(&self.db, shop_id, version)
            .await?
            .ok_or_else(|| anyhow::anyhow!("version {version} is not stored"))?;
        let m = tokio::task::spawn_blocking(move || ShopModel::from_bytes(&bytes)).await??;
        Ok(Arc::new(m))
    }

    /// Classifies messages of one shop: the n-gram model first, the embedding model for the
    /// messages where it could change the answer (one request for all of them).
    pub async fn classify(&self, shop_id: &str, texts: &[&str]) -> Vec<Classified> {
        let active = self.active(shop_id).await;
        match &active {
            Active::Bundled(m) => texts.iter().map(|t| crate::classify(m, t)).collect(),
            Active::Shop { model, .. } => {
                let name = active.name();
                texts
                    .iter()
                    .zip(self.decide(model, texts).await)
                    .map(|(t, d)| Classified {
                        intent: d.intent,
                        confidence: d.confidence,
                        entities: entities::extract(t),
                        model: name.clone(),
                    })
                    .collect()
            }
        }
    }

    /// The shop model's decisions.
    pub async fn decide(&self, model: &ShopModel, texts: &[&str]) -> Vec<Decision> {
        let ngram: Vec<Vec<f32>> = texts.iter().map(|t| model.ngram_probabilities(t)).collect();
        let want: Vec<usize> = (0..texts.len())
            .filter(|&i| model.wants_embedding(&ngram[i]))
            .collect();
        let mut vectors: HashMap<usize, kefu_embed::Vector> = HashMap::new();
        if let Some(meaning) = &self.meaning {
            meaning.count("not_needed", (texts.len() - want.len()) as u64);
            if !want.is_empty() {
                let asked: Vec<String> = want
                    .iter()
                    .map(|&i| kefu_intent::shop::embedding_text(texts[i]))
                    .collect();
                match meaning
                    .embedder
                    .embed(kefu_embed::Kind::Query, &asked)
                    .await
                {
                    Ok(vs) => {
                        meaning.count("used", vs.len() as u64);
                        vectors.extend(want.iter().copied().zip(vs));
                    }
                    Err(e) => {
                        meaning.count("failed", want.len() as u64);
                        tracing::debug!(error = %e, "no embedding in time; the n-gram model decides");
                    }
                }
            }
        }
        (0..texts.len())
            .map(|i| model.decide_with(&ngram[i], vectors.get(&i).map(|v| &v[..])))
            .collect()
    }
}
