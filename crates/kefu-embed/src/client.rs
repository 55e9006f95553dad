//! The batching client: one dispatcher task per kind (query, passage) gathers callers' texts
//! into requests; a semaphore bounds the requests in flight; a caller waits at most the
//! configured timeout.
use std::{
    num::NonZeroUsize,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use lru::LruCache;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::config::{Config, Prefix};

/// An embedding (L2-normalised by e5 servers), shared between the cache and its callers.
pub type Vector = Arc<[f32]>;

/// e5 embeds a question and a text to be found differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// What a customer asks (`query: `).
    Query,
    /// What is searched or learned from: FAQ entries, products, labelled examples
    /// (`passage: `).
    Passage,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Query => "query",
            Kind::Passage => "passage",
        }
    }
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EmbedError {
    /// The caller waited `0` and stopped: use the n-gram model.
    #[error("no embedding within {0:?}")]
    Timeout(Duration),
    /// Too many texts are already waiting: use the n-gram model.
    #[error("the embedding queue is full")]
    Overloaded,
    /// The server failed or answered something that is not `/v1/embeddings`' shape.
    #[error("embedding server: {0}")]
    Server(String),
}

/// Counters since the embedder started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Texts asked for.
    pub texts: u64,
    /// Of them, answered from the cache.
    pub cache_hits: u64,
    /// HTTP requests sent to the server.
    pub requests: u64,
    /// Texts those requests carried.
    pub texts_sent: u64,
    /// Calls that timed out or found the queue full.
    pub timeouts: u64,
    /// Requests that failed.
    pub failures: u64,
}

#[derive(Default)]
struct Counters {
    texts: AtomicU64,
    cache_hits: AtomicU64,
    requests: AtomicU64,
    texts_sent: AtomicU64,
    timeouts: AtomicU64,
    failures: AtomicU64,
}

type Reply = oneshot::Sender<Result<Vec<Vector>, EmbedError>>;

struct Job {
    texts: Vec<(u128, String)>,
    reply: Reply,
}

struct Shared {
    config: Config,
    http: reqwest::Client,
    cache: Option<Mutex<LruCache<u128, Vector>>>,
    counters: Counters,
    in_flight: Arc<Semaphore>,
}

/// The client. Cheap to clone; the dispatchers stop when the last clone is dropped.
#[derive(Clone)]
pub struct Embedder {
    shared: Arc<Shared>,
    query: mpsc::Sender<Job>,
    passage: mpsc::Sender<Job>,
}

impl Embedder {
    /// Starts the dispatchers (needs a Tokio runtime).
    pub fn new(config: Config) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout.min(Duration::from_secs(2)))
            // A stuck request must give its slot back; passages may be waited for longer than
            // questions (`embed_within`), so at least a minute.
            .timeout((config.timeout * 4).max(Duration::from_secs(60)))
            .build()
            .expect("reqwest client");
        let shared = Arc::new(Shared {
            cache: NonZeroUsize::new(config.cache_entries).map(|n| Mutex::new(LruCache::new(n))),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            config,
            http,
            counters: Counters::default(),
        });
        let queue = (shared.config.max_batch * 16).max(256);
        let (query, rq) = mpsc::channel(queue);
        let (passage, rp) = mpsc::channel(queue);
        tokio::spawn(dispatch(shared.clone(), Kind::Query, rq));
        tokio::spawn(dispatch(shared.clone(), Kind::Passage, rp));
        Embedder {
            shared,
            query,
            passage,
        }
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The vectors of `texts`, in order, or why not within the timeout (then use the n-gram
    /// model: this never waits longer).
    pub async fn embed<S: AsRef<str>>(
        &self,
        kind: Kind,
        texts: &[S],
    ) -> Result<Vec<Vector>, EmbedError> {
        self.embed_within(kind, texts, self.shared.config.timeout)
            .await
    }

    /// [`Embedder::embed`] waiting at most `timeout` (texts embedded off the message path,
    /// such as a knowledge version's FAQ, may wait longer than a customer's question).
    pub async fn embed_within<S: AsRef<str>>(
        &self,
        kind: Kind,
        texts: &[S],
        timeout: Duration,
    ) -> Result<Vec<Vector>, EmbedError> {
        let c = &self.shared.counters;
        c.texts.fetch_add(texts.len() as u64, Ordering::Relaxed);
        let cut: Vec<String> = texts
            .iter()
            .map(|t| {
                let t = t.as_ref().trim();
                match t.char_indices().nth(self.shared.config.max_chars) {
                    Some((i, _)) => t[..i].to_owned(),
                    None => t.to_owned(),
                }
            })
            .collect();
        let keys: Vec<u128> = cut
            .iter()
            .map(|t| key(kind, &self.shared.config.model, t))
            .collect();
        let mut out: Vec<Option<Vector>> = vec![None; texts.len()];
        if let Some(cache) = &self.shared.cache {
            let mut cache = cache.lock().expect("cache lock");
            for (i, k) in keys.iter().enumerate() {
                out[i] = cache.get(k).cloned();
            }
        }
        let hits = out.iter().filter(|v| v.is_some()).count();
        c.cache_hits.fetch_add(hits as u64, Ordering::Relaxed);
        let mut missing: Vec<(u128, String)> = Vec::new();
        for (i, v) in out.iter().enumerate() {
            if v.is_none() && !missing.iter().any(|(k, _)| *k == keys[i]) {
                missing.push((keys[i], cut[i].clone()));
            }
        }
        if missing.is_empty() {
            return Ok(out.into_iter().flatten().collect());
        }
        let (tx, rx) = oneshot::channel();
        let job = Job {
            texts: missing.clone(),
            reply: tx,
        };
        let queue = match kind {
            Kind::Query => &self.query,
            Kind::Passage => &self.passage,
        };
        if queue.try_send(job).is_err() {
            c.timeouts.fetch_add(1, Ordering::Relaxed);
            return Err(EmbedError::Overloaded);
        }
        let got = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r?,
            Ok(Err(_)) => return Err(EmbedError::Server("the dispatcher stopped".into())),
            Err(_) => {
                c.timeouts.fetch_add(1, Ordering::Relaxed);
                return Err(EmbedError::Timeout(timeout));
            }
        };
        for (i, v) in out.iter_mut().enumerate() {
            if v.is_none() {
                let j = missing
                    .iter()
                    .position(|(k, _)| *k == keys[i])
                    .expect("asked for");
                *v = Some(got[j].clone());
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// One text.
    pub async fn embed_one(&self, kind: Kind, text: &str) -> Result<Vector, EmbedError> {
        Ok(self.embed(kind, &[text]).await?.remove(0))
    }

    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        Stats {
            texts: c.texts.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            requests: c.requests.load(Ordering::Relaxed),
            texts_sent: c.texts_sent.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
        }
    }
}

/// The cache key: the kind, the model and the text, hashed (SHA-256, first 128 bits).
fn key(kind: Kind, model: &str, text: &str) -> u128 {
    let mut h = Sha256::new();
    h.update(kind.word());
    h.update([0]);
    h.update(model);
    h.update([0]);
    h.update(text);
    let d = h.finalize();
    u128::from_be_bytes(d[..16].try_into().expect("16 bytes"))
}

/// Gathers jobs into batches of at most `max_batch` texts (waiting at most `linger` after
/// the first), waits for a request slot — more jobs join while it waits — and sends.
async fn dispatch(shared: Arc<Shared>, kind: Kind, mut rx: mpsc::Receiver<Job>) {
    let max = shared.config.max_batch.max(1);
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => return,
            },
        };
        let mut batch = vec![first];
        let mut n = batch[0].texts.len();
        let deadline = tokio::time::Instant::now() + shared.config.linger;
        while n < max {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(j)) => {
                    n += j.texts.len();
                    batch.push(j);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let permit = match shared.in_flight.clone().acquire_owned().await {
            Ok(p) => p,
            Err(_) => return,
        };
        // Jobs that arrived while every slot was busy ride along.
        while n < max {
            match rx.try_recv() {
                Ok(j) if n + j.texts.len() <= max => {
                    n += j.texts.len();
                    batch.push(j);
                }
                Ok(j) => {
                    carry = Some(j);
                    break;
                }
                Err(_) => break,
            }
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            send(&shared, kind, batch).await;
            drop(permit);
        });
    }
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Datum>,
}

#[derive(Deserialize)]
struct Datum {
    index: usize,
    embedding: Vec<f32>,
}

/// One request for the batch's texts (callers that gave up are left out), in chunks of
/// `max_batch` when one caller brought more.
async fn send(shared: &Shared, kind: Kind, batch: Vec<Job>) {
    let batch: Vec<Job> = batch.into_iter().filter(|j| !j.reply.is_closed()).collect();
    if batch.is_empty() {
        return;
    }
    let mut texts: Vec<(u128, String)> = Vec::new();
    for j in &batch {
        for (k, t) in &j.texts {
            if !texts.iter().any(|(x, _)| x == k) {
                texts.push((*k, t.clone()));
            }
        }
    }
    let mut vectors: Vec<Vector> = Vec::with_capacity(texts.len());
    let mut failed = None;
    for chunk in texts.chunks(shared.config.max_batch.max(1)) {
        match request(shared, kind, chunk).await {
            Ok(v) => vectors.extend(v),
            Err(e) => {
                shared.counters.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "embedding request failed");
                failed = Some(e);
                break;
            }
        }
    }
    if let Some(e) = failed {
        for j in batch {
            let _ = j.reply.send(Err(e.clone()));
        }
        return;
    }
    if let Some(cache) = &shared.cache {
        let mut cache = cache.lock().expect("cache lock");
        for ((k, _), v) in texts.iter().zip(&vectors) {
            cache.put(*k, v.clone());
        }
    }
    for j in batch {
        let mine = j
            .texts
            .iter()
            .map(|(k, _)| {
                let i = texts.iter().position(|(x, _)| x == k).expect("sent");
                vectors[i].clone()
            })
            .collect();
        let _ = j.reply.send(Ok(mine));
    }
}

async fn request(
    shared: &Shared,
    kind: Kind,
    texts: &[(u128, String)],
) -> Result<Vec<Vector>, EmbedError> {
    let c = &shared.config;
    let input: Vec<String> = texts
        .iter()
        .map(|(_, t)| match c.prefix {
            Prefix::Text => format!("{}: {t}", kind.word()),
            Prefix::InputType | Prefix::None => t.clone(),
        })
        .collect();
    let mut body = serde_json::json!({
        "model": c.model,
        "input": input,
        "encoding_format": "float",
    });
    if c.prefix == Prefix::InputType {
        body["input_type"] = kind.word().into();
    }
    let url = c
        .url
        .join("v1/embeddings")
        .map_err(|e| EmbedError::Server(e.to_string()))?;
    let mut req = shared.http.post(url).json(&body);
    if let Some(k) = &c.api_key {
        req = req.bearer_auth(k);
    }
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    shared
        .counters
        .texts_sent
        .fetch_add(texts.len() as u64, Ordering::Relaxed);
    let resp = req
        .send()
        .await
        .map_err(|e| EmbedError::Server(e.to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(EmbedError::Server(format!(
            "HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        )));
    }
    let mut r: Response = resp
        .json()
        .await
        .map_err(|e| EmbedError::Server(format!("not an embeddings response: {e}")))?;
    if r.data.len() != texts.len() {
        return Err(EmbedError::Server(format!(
            "{} embeddings for {} texts",
            r.data.len(),
            texts.len()
        )));
    }
    r.data.sort_by_key(|d| d.index);
    let dim = r.data[0].embedding.len();
    if dim == 0
        || r.data
            .iter()
            .enumerate()
            .any(|(i, d)| d.index != i || d.embedding.len() != dim)
        || r.data
            .iter()
            .any(|d| d.embedding.iter().any(|x| !x.is_finite()))
    {
        return Err(EmbedError::Server(
            "embeddings with missing indexes, unequal dimensions or non-finite values".into(),
        ));
    }
    Ok(r.data
        .into_iter()
        .map(|d| Vector::from(d.embedding))
        .collect())
}

/// Cosine similarity (1 for the same direction); 0 when either is all zeros.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut ab, mut aa, mut bb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_tell_kind_model_and_text_apart() {
        let a = key(Kind::Query, "m", "退货");
        assert_eq!(a, key(Kind::Query, "m", "退货"));
        assert_ne!(a, key(Kind::Passage, "m", "退货"));
        assert_ne!(a, key(Kind::Query, "n", "退货"));
        assert_ne!(key(Kind::Query, "m", "ab"), key(Kind::Query, "ma", "b"));
    }

    #[test]
    fn cosine_of_vectors() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
