//! A shop's own intent model: the n-gram softmax regression ([`crate::model`]) and, where an
//! embedding model is configured, a softmax head over sentence embeddings, mixed with a weight
//! and an out-of-scope rule both chosen by cross-validation on the shop's data.
//!
//! * [`training_set`]: the shop's examples, plus Kefu's defaults for the built-in intents it
//!   has not disabled, plus generic out-of-domain text as out-of-scope negatives;
//! * [`train`]: k-fold cross-validation (every example predicted by models that never saw it)
//!   gives the scores of the n-gram model, the embedding head and their mix, picks the mix
//!   weight, the out-of-scope signal and threshold (best MCC over every class) and the n-gram
//!   confidence above which the embedding would not change the answer; the final models are
//!   then fitted on everything;
//! * [`ShopModel`]: the artefact (checked against its length before anything is allocated).
use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{
    data,
    features::{self, normalize},
    model::{self, Model, OUT_OF_SCOPE, softmax},
    scores::{Scores, auroc},
    train::{FNV_OFFSET, Row, Settings, best_temperature, class_weights, fit, fnv},
};

/// Most labels in a shop's model.
pub const MAX_LABELS: usize = 500;
/// Most characters of a training sentence.
pub const MAX_TEXT_CHARS: usize = 500;
/// Fewest examples of a label of the shop's own.
pub const MIN_EXAMPLES_PER_LABEL: usize = 3;
/// Folds of the cross-validation.
pub const FOLDS: usize = 5;

const MAGIC: &[u8; 8] = b"KEFUSHP1";

/// Generic out-of-domain chat (weather, homework, jokes, …; Chinese, English and 11 other
/// languages), written for Kefu (`data/README.md`): out-of-scope negatives for every shop.
const GENERIC_OOS: &str = include_str!("../data/generic_oos.txt");

/// A label is lower-case ASCII: `[a-z][a-z0-9_]{0,47}`.
pub fn valid_label(l: &str) -> bool {
    let b = l.as_bytes();
    !b.is_empty()
        && b.len() <= 48
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// What a shop's training set is made of, besides its own examples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// Built-in intents whose default examples are left out (`*`: all of them).
    pub disabled_builtins: Vec<String>,
    /// Add generic out-of-domain text (and Kefu's out-of-scope examples) as negatives.
    pub generic_negatives: bool,
}

impl Default for Recipe {
    fn default() -> Self {
        Self {
            disabled_builtins: Vec::new(),
            generic_negatives: true,
        }
    }
}

impl Recipe {
    pub fn builtin_enabled(&self, intent: &str) -> bool {
        !self
            .disabled_builtins
            .iter()
            .any(|d| d == "*" || d == intent)
    }
}

/// One labelled sentence and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Labeled {
    pub text: String,
    pub label: String,
    /// `shop`, `builtin` or `generic`.
    pub origin: &'static str,
}

/// The shop's examples, then the defaults of its enabled built-in intents and the generic
/// negatives; a default whose text the shop labelled itself is left out (the shop's label wins).
pub fn training_set(recipe: &Recipe, shop: &[(String, String)]) -> Vec<Labeled> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for (t, l) in shop {
        if seen.insert(data::dedupe_key(t)) {
            out.push(Labeled {
                text: t.clone(),
                label: l.clone(),
                origin: "shop",
            });
        }
    }
    for e in data::ours() {
        let keep = if e.intent == OUT_OF_SCOPE {
            recipe.generic_negatives
        } else {
            recipe.builtin_enabled(&e.intent)
        };
        if keep && seen.insert(data::dedupe_key(&e.text)) {
            out.push(Labeled {
                text: e.text,
                label: e.intent,
                origin: "builtin",
            });
        }
    }
    if recipe.generic_negatives {
        for t in GENERIC_OOS.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if seen.insert(data::dedupe_key(t)) {
                out.push(Labeled {
                    text: t.to_owned(),
                    label: OUT_OF_SCOPE.into(),
                    origin: "generic",
                });
            }
        }
    }
    out
}

/// What decides out of scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// The mixed probability of the best label.
    MaxProbability,
    /// Best minus second-best probability.
    Margin,
    /// Cosine of the message to the best label's centroid of training embeddings.
    Prototype,
}

/// The softmax head over embeddings.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbedHead {
    pub dim: usize,
    /// Mean of the training embeddings (subtracted before the head; e5 vectors share a large
    /// common component).
    pub mean: Vec<f32>,
    /// `w[label * dim + j]`.
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    /// Per label: the unit centroid of its centred training embeddings.
    pub centroids: Vec<f32>,
}

impl EmbedHead {
    fn center(&self, x: &[f32]) -> Vec<f32> {
        center(x, &self.mean)
    }

    fn logits(&self, xc: &[f32], out: &mut [f32]) {
        for (k, o) in out.iter_mut().enumerate() {
            *o = self.b[k] + dot(&self.w[k * self.dim..(k + 1) * self.dim], xc);
        }
    }

    fn prototype(&self, xc: &[f32], k: usize) -> f32 {
        dot(&self.centroids[k * self.dim..(k + 1) * self.dim], xc)
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn center(x: &[f32], mean: &[f32]) -> Vec<f32> {
    let mut v: Vec<f32> = x.iter().zip(mean).map(|(a, m)| a - m).collect();
    let n = dot(&v, &v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|a| *a /= n);
    }
    v
}

/// Everything about a shop model except its weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub version: String,
    pub labels: Vec<String>,
    pub recipe: Recipe,
    /// The embedding model the head was fitted on (`None`: n-gram only).
    pub embedding_model: Option<String>,
    pub dim: usize,
    /// Weight of the embedding head in the mix (0: n-gram only).
    pub alpha: f32,
    /// Temperatures of the two models, fitted on the cross-validated predictions.
    pub ngram_temperature: f32,
    pub embed_temperature: f32,
    pub signal: Signal,
    /// Below this value of `signal` the answer is out of scope.
    pub threshold: f32,
    /// The same for the n-gram model alone (no embedding in time), and for the embedding
    /// head alone (evaluation only), both on the maximum probability.
    pub ngram_threshold: f32,
    pub embed_threshold: f32,
    /// At or above this n-gram probability the embedding is not asked for: in the
    /// cross-validation, it did not change the answer there.
    pub sure: f32,
}

/// A shop's trained model.
#[derive(Clone, Debug)]
pub struct ShopModel {
    pub header: Header,
    pub ngram: Model,
    pub head: Option<EmbedHead>,
    oos: usize,
}

/// One decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub intent: String,
    pub confidence: f32,
    pub best_in_scope: String,
    /// The embedding was part of the decision.
    pub embedded: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ShopModelError {
    #[error("not a Kefu shop intent model (bad magic, lengths or truncated)")]
    Format,
    #[error("shop model header: {0}")]
    Header(String),
    #[error(transparent)]
    Ngram(#[from] model::ModelError),
}

impl ShopModel {
    pub fn labels(&self) -> &[String] {
        &self.header.labels
    }

    pub fn version(&self) -> &str {
        &self.header.version
    }

    /// The n-gram model's calibrated probabilities.
    pub fn ngram_probabilities(&self, text: &str) -> Vec<f32> {
        let f = features::extract(text, self.ngram.bits);
        let mut p = vec![0.0; self.header.labels.len()];
        self.ngram.logits(&f, &mut p);
        softmax(&mut p, self.header.ngram_temperature);
        p
    }

    /// Whether an embedding of the message could change the answer the n-gram gives.
    pub fn wants_embedding(&self, ngram: &[f32]) -> bool {
        self.head.is_some() && self.header.alpha > 0.0 && model::argmax(ngram).1 < self.header.sure
    }

    /// The decision as the classifier makes it: the mix where the n-gram model is unsure and
    /// an embedding of the message is at hand, else the n-gram model alone.
    pub fn decide_with(&self, ngram: &[f32], embedding: Option<&[f32]>) -> Decision {
        match embedding {
            Some(e) if self.wants_embedding(ngram) => self.decide(ngram, e),
            _ => self.decide_ngram(ngram),
        }
    }

    /// The n-gram model alone.
    pub fn decide_ngram(&self, ngram: &[f32]) -> Decision {
        self.finish(ngram, max_prob(ngram), self.header.ngram_threshold, false)
    }

    /// The embedding head alone (to compare the models; not used to classify).
    pub fn decide_embedding(&self, embedding: &[f32]) -> Decision {
        let Some(head) = self.head.as_ref().filter(|h| h.dim == embedding.len()) else {
            let k = self.header.labels.len();
            return self.finish(&vec![1.0 / k as f32; k], 0.0, 1.0, false);
        };
        let xc = head.center(embedding);
        let mut pe = vec![0.0; self.header.labels.len()];
        head.logits(&xc, &mut pe);
        softmax(&mut pe, self.header.embed_temperature);
        self.finish(&pe, max_prob(&pe), self.header.embed_threshold, true)
    }

    /// The mix of both models (`embedding` as the server returned it, unit length).
    pub fn decide(&self, ngram: &[f32], embedding: &[f32]) -> Decision {
        let Some(head) = self
            .head
            .as_ref()
            .filter(|h| h.dim == embedding.len() && self.header.alpha > 0.0)
        else {
            return self.decide_ngram(ngram);
        };
        let xc = head.center(embedding);
        let mut pe = vec![0.0; ngram.len()];
        head.logits(&xc, &mut pe);
        softmax(&mut pe, self.header.embed_temperature);
        let p = mix(ngram, &pe, self.header.alpha);
        let s = signal(self.header.signal, &p, || {
            head.prototype(&xc, model::argmax(&p).0)
        });
        self.finish(&p, s, self.header.threshold, true)
    }

    fn finish(&self, p: &[f32], s: f32, threshold: f32, embedded: bool) -> Decision {
        let (best, conf) = model::argmax(p);
        let best_in_scope = p
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.oos)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| self.header.labels[i].clone())
            .unwrap_or_default();
        if best == self.oos || s < threshold {
            Decision {
                intent: OUT_OF_SCOPE.into(),
                confidence: if best == self.oos { conf } else { 1.0 - conf },
                best_in_scope,
                embedded,
            }
        } else {
            Decision {
                intent: self.header.labels[best].clone(),
                confidence: conf,
                best_in_scope,
                embedded,
            }
        }
    }

    /// Serialises: magic, header (JSON), the n-gram artefact, then the head's floats.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).expect("header serialises");
        let ngram = self.ngram.to_bytes();
        let mut out = Vec::with_capacity(16 + header.len() + ngram.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(ngram.len() as u32).to_le_bytes());
        out.extend_from_slice(&ngram);
        if let Some(h) = &self.head {
            for v in [&h.mean, &h.w, &h.b, &h.centroids] {
                for f in v.iter() {
                    out.extend_from_slice(&f.to_le_bytes());
                }
            }
        }
        out
    }

    /// Reads an artefact; every length is checked against the bytes there before it is used.
    pub fn from_bytes(b: &[u8]) -> Result<Self, ShopModelError> {
        let take = |pos: &mut usize, n: usize| -> Result<&[u8], ShopModelError> {
            let end = pos.checked_add(n).ok_or(ShopModelError::Format)?;
            let s = b.get(*pos..end).ok_or(ShopModelError::Format)?;
            *pos = end;
            Ok(s)
        };
        let mut pos = 0usize;
        if take(&mut pos, 8)? != MAGIC {
            return Err(ShopModelError::Format);
        }
        let len = |pos: &mut usize| -> Result<usize, ShopModelError> {
            Ok(u32::from_le_bytes(
                take(pos, 4)?
                    .try_into()
                    .map_err(|_| ShopModelError::Format)?,
            ) as usize)
        };
        let n = len(&mut pos)?;
        let header: Header = serde_json::from_slice(take(&mut pos, n)?)
            .map_err(|e| ShopModelError::Header(e.to_string()))?;
        // JSON numbers beyond f32 read as infinity: every probability would be NaN.
        let h = &header;
        let numbers = [
            h.alpha,
            h.threshold,
            h.ngram_threshold,
            h.embed_threshold,
            h.sure,
        ];
        let positive = |t: f32| t.is_finite() && t > 0.0;
        let sound = numbers.iter().all(|x| x.is_finite())
            && positive(h.ngram_temperature)
            && positive(h.embed_temperature);
        if !sound {
            return Err(ShopModelError::Header(
                "weights, thresholds and temperatures must be finite (temperatures positive)"
                    .into(),
            ));
        }
        let n = len(&mut pos)?;
        let ngram = Model::from_bytes(take(&mut pos, n)?)?;
        if ngram.labels != header.labels || header.labels.len() > MAX_LABELS {
            return Err(ShopModelError::Header(
                "labels differ from the n-gram model's".into(),
            ));
        }
        let k = header.labels.len();
        let rest = &b[pos..];
        let head = if rest.is_empty() {
            None
        } else {
            let d = header.dim;
            let floats = d
                .checked_mul(1 + 2 * k)
                .and_then(|x| x.checked_add(k))
                .ok_or(ShopModelError::Format)?;
            if d == 0 || d > 8192 || rest.len() != floats * 4 {
                return Err(ShopModelError::Format);
            }
            let mut f = rest
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            let mut next = |n: usize| -> Vec<f32> { f.by_ref().take(n).collect() };
            Some(EmbedHead {
                dim: d,
                mean: next(d),
                w: next(d * k),
                b: next(k),
                centroids: next(d * k),
            })
        };
        let oos = header
            .labels
            .iter()
            .position(|l| l == OUT_OF_SCOPE)
            .ok_or(model::ModelError::NoOutOfScope)?;
        Ok(Self {
            header,
            ngram,
            head,
            oos,
        })
    }
}

fn max_prob(p: &[f32]) -> f32 {
    model::argmax(p).1
}

fn mix(a: &[f32], b: &[f32], alpha: f32) -> Vec<f32> {
    a.iter()
        .zip(b)
        .map(|(x, y)| (1.0 - alpha) * x + alpha * y)
        .collect()
}

fn signal(s: Signal, p: &[f32], prototype: impl FnOnce() -> f32) -> f32 {
    match s {
        Signal::MaxProbability => max_prob(p),
        Signal::Margin => {
            let (mut a, mut b) = (0f32, 0f32);
            for &x in p {
                if x > a {
                    b = a;
                    a = x;
                } else if x > b {
                    b = x;
                }
            }
            a - b
        }
        Signal::Prototype => prototype(),
    }
}

/// What training measured, by cross-validation on the training set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub examples: usize,
    /// Of them: the shop's own, built-in defaults, generic negatives.
    pub from_shop: usize,
    pub from_builtin: usize,
    pub from_generic: usize,
    pub labels: usize,
    pub folds: usize,
    /// The n-gram model alone, at its own threshold.
    pub ngram: Scores,
    /// The embedding head alone (at its best max-probability threshold), when embeddings were
    /// available.
    pub embedding: Option<Scores>,
    /// The model as it will run: the mix at the chosen operating point.
    pub ensemble: Scores,
    pub operating_point: OperatingPoint,
    /// Share of the cross-validated examples that would have asked for an embedding.
    pub embedding_share: f64,
    /// Why there is no embedding head, when there is none.
    pub embedding_note: String,
}

/// How out of scope is decided, and how well each candidate signal separated in-scope from
/// out-of-scope examples in the cross-validation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    pub alpha: f32,
    pub signal: String,
    pub threshold: f32,
    pub in_scope_accuracy: f64,
    pub oos_recall: f64,
    /// AUROC of every signal tried (in scope = positive).
    pub auroc: Vec<(String, f64)>,
}

/// A trained model, its report and the cross-validated predictions (for the release check).
pub struct Trained {
    pub model: ShopModel,
    pub report: Report,
    /// Label index of each training example, and the cross-validated prediction of the model
    /// as it will run (an index into the labels).
    pub truth: Vec<usize>,
    pub predicted: Vec<usize>,
}

/// Names [`embedding_text`]'s rule in model versions: a model is only mixed with embeddings
/// of texts prepared the same way.
pub const EMBEDDING_TEXT_VERSION: &str = "mask-digits-4";

/// The text that is embedded for a sentence: runs of four or more digits (order, tracking and
/// phone numbers, dates) become `0000`. They say nothing about the intent, and masked, the
/// many messages that differ only in their number share one cached embedding.
pub fn embedding_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 4 {
            out.push_str("0000");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// A sentence's identity for "has this model seen it?": the hash of its dedupe key.
pub fn seen_key(text: &str) -> u64 {
    fnv(data::dedupe_key(text), FNV_OFFSET)
}

/// The sorted, unique [`seen_key`]s of a training set, as bytes (stored with a version).
pub fn seen_keys(examples: &[Labeled]) -> Vec<u8> {
    let mut k: Vec<u64> = examples.iter().map(|e| seen_key(&e.text)).collect();
    k.sort_unstable();
    k.dedup();
    k.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Whether `text` is among the stored keys.
pub fn was_seen(keys: &[u8], text: &str) -> bool {
    let want = seen_key(text);
    let n = keys.len() / 8;
    let at = |i: usize| u64::from_le_bytes(keys[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match at(mid).cmp(&want) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TrainError {
    #[error("no examples to train on")]
    Empty,
    #[error("{0} labels; at most {MAX_LABELS}")]
    TooManyLabels(usize),
    #[error(
        "label `{label}` has {count} example(s); a label needs at least {MIN_EXAMPLES_PER_LABEL}"
    )]
    TooFewExamples { label: String, count: usize },
    #[error("embeddings: {0}")]
    Embeddings(String),
}

/// Input to [`train`].
pub struct Input<'a> {
    pub examples: &'a [Labeled],
    /// One unit-length embedding per example, or `None`.
    pub embeddings: Option<&'a [Vec<f32>]>,
    pub embedding_model: Option<String>,
    pub recipe: Recipe,
    /// Why there are no embeddings, when there are none.
    pub embedding_note: String,
}

fn ngram_settings(labels: usize) -> Settings {
    Settings {
        bits: if labels > 64 { 16 } else { 15 },
        epochs: 12,
        ..Settings::default()
    }
}

/// Trains, cross-validates and calibrates a shop model.
pub fn train(input: &Input) -> Result<Trained, TrainError> {
    let ex = input.examples;
    if ex.is_empty() {
        return Err(TrainError::Empty);
    }
    if let Some(e) = input.embeddings
        && e.len() != ex.len()
    {
        return Err(TrainError::Embeddings(format!(
            "{} vectors for {} examples",
            e.len(),
            ex.len()
        )));
    }
    // Labels: sorted, out_of_scope always present.
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for e in ex {
        *counts.entry(e.label.as_str()).or_default() += 1;
    }
    let mut labels: Vec<String> = counts.keys().map(|s| s.to_string()).collect();
    if !counts.contains_key(OUT_OF_SCOPE) {
        labels.push(OUT_OF_SCOPE.into());
    }
    labels.sort();
    if labels.len() > MAX_LABELS {
        return Err(TrainError::TooManyLabels(labels.len()));
    }
    for l in &labels {
        let c = counts.get(l.as_str()).copied().unwrap_or(0);
        if l != OUT_OF_SCOPE && c < MIN_EXAMPLES_PER_LABEL {
            return Err(TrainError::TooFewExamples {
                label: l.clone(),
                count: c,
            });
        }
    }
    let k = labels.len();
    let oos = labels
        .iter()
        .position(|l| l == OUT_OF_SCOPE)
        .expect("pushed");
    let index: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let y: Vec<usize> = ex.iter().map(|e| index[e.label.as_str()]).collect();
    let settings = ngram_settings(k);
    let feats: Vec<features::Features> = ex
        .iter()
        .map(|e| features::extract(&e.text, settings.bits))
        .collect();
    let emb: Option<Vec<Vec<f32>>> = input.embeddings.map(|e| e.to_vec());
    let dim = emb.as_ref().and_then(|e| e.first()).map_or(0, Vec::len);
    if let Some(e) = &emb
        && (dim == 0
            || e.iter()
                .any(|v| v.len() != dim || v.iter().any(|x| !x.is_finite())))
    {
        return Err(TrainError::Embeddings(
            "vectors of unequal length or not finite".into(),
        ));
    }

    // Stratified folds: within each label, examples in a fixed pseudo-random order (by text
    // hash) are dealt to the folds in turn.
    let folds = FOLDS.min(ex.len()).max(2);
    let mut fold = vec![0usize; ex.len()];
    let mut by_label: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (i, &l) in y.iter().enumerate() {
        by_label[l].push(i);
    }
    for members in &mut by_label {
        members.sort_by_key(|&i| (fnv(normalize(&ex[i].text), FNV_OFFSET), i));
        for (rank, &i) in members.iter().enumerate() {
            fold[i] = rank % folds;
        }
    }

    // Out-of-fold logits of both models.
    let mut ng_logits = vec![vec![0f32; k]; ex.len()];
    let mut em_logits: Option<Vec<Vec<f32>>> = emb.as_ref().map(|_| vec![vec![0f32; k]; ex.len()]);
    let mut proto = vec![vec![0f32; k]; if emb.is_some() { ex.len() } else { 0 }];
    for f in 0..folds {
        let train_idx: Vec<usize> = (0..ex.len()).filter(|&i| fold[i] != f).collect();
        let test_idx: Vec<usize> = (0..ex.len()).filter(|&i| fold[i] == f).collect();
        if test_idx.is_empty() {
            continue;
        }
        let m = fit_ngram(&labels, &feats, &y, &train_idx, &settings);
        for &i in &test_idx {
            m.logits(&feats[i], &mut ng_logits[i]);
        }
        if let (Some(e), Some(out)) = (&emb, em_logits.as_mut()) {
            let h = fit_head(e, &y, k, &train_idx);
            for &i in &test_idx {
                let xc = h.center(&e[i]);
                h.logits(&xc, &mut out[i]);
                for (c, p) in proto[i].iter_mut().enumerate() {
                    *p = h.prototype(&xc, c);
                }
            }
        }
    }
    let t_ng = best_temperature(&ng_logits, &y, None);
    let p_ng = probs(&ng_logits, t_ng);
    let (t_em, p_em) = match &em_logits {
        Some(l) => {
            let t = best_temperature(l, &y, None);
            (t, Some(probs(l, t)))
        }
        None => (1.0, None),
    };

    // The n-gram model alone: best threshold on max probability.
    let ng_point = best_point(&labels, oos, &y, &p_ng, |p, _| max_prob(p));
    let ngram_scores = scores_at(&labels, oos, &y, &p_ng, ng_point.1, |p, _| max_prob(p));

    // The mix: weight, signal and threshold with the best MCC.
    let mut best: (f64, f32, Signal, f32) = (ng_point.0, 0.0, Signal::MaxProbability, ng_point.1);
    let mut embedding_scores = None;
    let mut embed_threshold = 1.0f32;
    let mut aurocs = Vec::new();
    let positive: Vec<bool> = y.iter().map(|&l| l != oos).collect();
    if let Some(pe) = &p_em {
        let (_, th) = best_point(&labels, oos, &y, pe, |p, _| max_prob(p));
        embed_threshold = th;
        embedding_scores = Some(scores_at(&labels, oos, &y, pe, th, |p, _| max_prob(p)));
        for alpha in [0.2f32, 0.35, 0.5, 0.65, 0.8, 1.0] {
            let p: Vec<Vec<f32>> = p_ng.iter().zip(pe).map(|(a, b)| mix(a, b, alpha)).collect();
            for sig in [Signal::MaxProbability, Signal::Margin, Signal::Prototype] {
                let f = |p: &[f32], i: usize| signal(sig, p, || proto[i][model::argmax(p).0]);
                let (mcc, th) = best_point(&labels, oos, &y, &p, f);
                if mcc > best.0 + 1e-9 {
                    best = (mcc, alpha, sig, th);
                }
            }
        }
        let p: Vec<Vec<f32>> = p_ng
            .iter()
            .zip(pe)
            .map(|(a, b)| mix(a, b, best.1))
            .collect();
        for sig in [Signal::MaxProbability, Signal::Margin, Signal::Prototype] {
            let s: Vec<f32> = p
                .iter()
                .enumerate()
                .map(|(i, p)| signal(sig, p, || proto[i][model::argmax(p).0]))
                .collect();
            aurocs.push((signal_name(sig).to_owned(), auroc(&s, &positive)));
        }
    } else {
        let s: Vec<f32> = p_ng.iter().map(|p| max_prob(p)).collect();
        aurocs.push((
            signal_name(Signal::MaxProbability).to_owned(),
            auroc(&s, &positive),
        ));
    }
    let (_, alpha, sig, threshold) = best;
    let mixed: Vec<Vec<f32>> = match &p_em {
        Some(pe) if alpha > 0.0 => p_ng.iter().zip(pe).map(|(a, b)| mix(a, b, alpha)).collect(),
        _ => p_ng.clone(),
    };
    let sig_at = |p: &[f32], i: usize| signal(sig, p, || proto[i][model::argmax(p).0]);
    let ensemble_pred: Vec<usize> = mixed
        .iter()
        .enumerate()
        .map(|(i, p)| decide_idx(p, oos, sig_at(p, i), threshold))
        .collect();
    let ensemble = Scores::compute(&labels, oos, &y, &ensemble_pred);

    // Where the n-gram model is this sure, the embedding did not change the answer.
    let ng_pred: Vec<usize> = p_ng
        .iter()
        .map(|p| decide_idx(p, oos, max_prob(p), ng_point.1))
        .collect();
    let sure = if alpha > 0.0 {
        sure_threshold(&p_ng, &ng_pred, &ensemble_pred, &y)
    } else {
        f32::INFINITY
    };
    let predicted: Vec<usize> = (0..ex.len())
        .map(|i| {
            if max_prob(&p_ng[i]) >= sure {
                ng_pred[i]
            } else {
                ensemble_pred[i]
            }
        })
        .collect();
    let embedding_share = if alpha > 0.0 {
        p_ng.iter().filter(|p| max_prob(p) < sure).count() as f64 / ex.len() as f64
    } else {
        0.0
    };
    let ensemble = if alpha > 0.0 {
        Scores::compute(&labels, oos, &y, &predicted)
    } else {
        ensemble
    };

    // Final models on everything.
    let all: Vec<usize> = (0..ex.len()).collect();
    let mut h = FNV_OFFSET;
    for e in ex {
        h = fnv(&e.label, fnv(&e.text, h));
    }
    let recipe_json = serde_json::to_string(&input.recipe).unwrap_or_default();
    h = fnv(
        format!(
            "{settings:?}{}{recipe_json}{:?}{EMBEDDING_TEXT_VERSION}",
            features::FEATURES_VERSION,
            input.embedding_model
        )
        .as_bytes(),
        h,
    );
    let version = format!("shop-intent-v1-{:012x}", h & 0xffff_ffff_ffff);
    let mut ngram = fit_ngram(&labels, &feats, &y, &all, &settings);
    ngram.version = version.clone();
    ngram.temperature = t_ng;
    ngram.threshold = ng_point.1;
    let head = emb.as_ref().map(|e| fit_head(e, &y, k, &all));
    let header = Header {
        version,
        labels: labels.clone(),
        recipe: input.recipe.clone(),
        embedding_model: head.as_ref().and(input.embedding_model.clone()),
        dim,
        alpha,
        ngram_temperature: t_ng,
        embed_temperature: t_em,
        signal: sig,
        threshold,
        ngram_threshold: ng_point.1,
        embed_threshold,
        sure: if sure.is_finite() { sure } else { 2.0 },
    };
    let count = |o: &str| ex.iter().filter(|e| e.origin == o).count();
    let report = Report {
        examples: ex.len(),
        from_shop: count("shop"),
        from_builtin: count("builtin"),
        from_generic: count("generic"),
        labels: k,
        folds,
        ngram: ngram_scores,
        embedding: embedding_scores,
        operating_point: OperatingPoint {
            alpha,
            signal: signal_name(sig).into(),
            threshold,
            in_scope_accuracy: ensemble.in_scope_accuracy,
            oos_recall: ensemble.oos_recall,
            auroc: aurocs,
        },
        ensemble,
        embedding_share,
        embedding_note: input.embedding_note.clone(),
    };
    Ok(Trained {
        model: ShopModel {
            header,
            ngram,
            head,
            oos,
        },
        report,
        truth: y,
        predicted,
    })
}

pub fn signal_name(s: Signal) -> &'static str {
    match s {
        Signal::MaxProbability => "max_probability",
        Signal::Margin => "margin",
        Signal::Prototype => "prototype",
    }
}

fn decide_idx(p: &[f32], oos: usize, s: f32, threshold: f32) -> usize {
    let (best, _) = model::argmax(p);
    if best == oos || s < threshold {
        oos
    } else {
        best
    }
}

/// The threshold (on `score`) with the best MCC, and that MCC.
fn best_point(
    labels: &[String],
    oos: usize,
    y: &[usize],
    p: &[Vec<f32>],
    score: impl Fn(&[f32], usize) -> f32,
) -> (f64, f32) {
    let s: Vec<f32> = p.iter().enumerate().map(|(i, p)| score(p, i)).collect();
    let top: Vec<usize> = p.iter().map(|p| model::argmax(p).0).collect();
    let mut best = (f64::NEG_INFINITY, 0.0f32);
    for step in 0..=98 {
        let th = step as f32 * 0.01;
        let pred: Vec<usize> = top
            .iter()
            .zip(&s)
            .map(|(&b, &v)| if b == oos || v < th { oos } else { b })
            .collect();
        let mcc = Scores::compute(labels, oos, y, &pred).mcc;
        if mcc > best.0 + 1e-9 {
            best = (mcc, th);
        }
    }
    best
}

fn scores_at(
    labels: &[String],
    oos: usize,
    y: &[usize],
    p: &[Vec<f32>],
    th: f32,
    score: impl Fn(&[f32], usize) -> f32,
) -> Scores {
    let pred: Vec<usize> = p
        .iter()
        .enumerate()
        .map(|(i, p)| decide_idx(p, oos, score(p, i), th))
        .collect();
    Scores::compute(labels, oos, y, &pred)
}

/// Lowest n-gram probability above which the mix gets no more answers right than the n-gram
/// model alone (within 0.5% of those examples); `INFINITY` when there is none.
fn sure_threshold(p_ng: &[Vec<f32>], ng: &[usize], mixed: &[usize], y: &[usize]) -> f32 {
    for step in 30..=99 {
        let t = step as f32 * 0.01;
        let (mut n, mut gain) = (0i64, 0i64);
        for i in 0..y.len() {
            if max_prob(&p_ng[i]) >= t {
                n += 1;
                gain += i64::from(mixed[i] == y[i]) - i64::from(ng[i] == y[i]);
            }
        }
        if n == 0 || (gain as f64) <= 0.005 * n as f64 {
            return t;
        }
    }
    f32::INFINITY
}

fn fit_ngram(
    labels: &[String],
    feats: &[features::Features],
    y: &[usize],
    idx: &[usize],
    s: &Settings,
) -> Model {
    let mut m = Model::new(String::new(), labels.to_vec(), s.bits).expect("has out_of_scope");
    let rows: Vec<Row> = idx
        .iter()
        .map(|&i| Row {
            f: feats[i].clone(),
            y: y[i],
            w: 1.0,
        })
        .collect();
    fit(&mut m, &rows, s);
    m
}

/// Softmax regression over centred unit embeddings, by SGD with class-balanced weights;
/// deterministic.
fn fit_head(e: &[Vec<f32>], y: &[usize], k: usize, idx: &[usize]) -> EmbedHead {
    let d = e[0].len();
    let mut mean = vec![0f32; d];
    for &i in idx {
        for (m, x) in mean.iter_mut().zip(&e[i]) {
            *m += x;
        }
    }
    mean.iter_mut().for_each(|m| *m /= idx.len().max(1) as f32);
    let xs: Vec<Vec<f32>> = idx.iter().map(|&i| center(&e[i], &mean)).collect();
    let ys: Vec<usize> = idx.iter().map(|&i| y[i]).collect();
    let mut counts = vec![0usize; k];
    for &l in &ys {
        counts[l] += 1;
    }
    let class_w = class_weights(&counts);
    let mut centroids = vec![0f32; k * d];
    for (x, &l) in xs.iter().zip(&ys) {
        for (c, v) in centroids[l * d..(l + 1) * d].iter_mut().zip(x) {
            *c += v;
        }
    }
    for c in centroids.chunks_mut(d) {
        let n = dot(c, c).sqrt();
        if n > 0.0 {
            c.iter_mut().for_each(|v| *v /= n);
        }
    }
    let mut head = EmbedHead {
        dim: d,
        mean,
        w: vec![0f32; k * d],
        b: vec![0f32; k],
        centroids,
    };
    let epochs = (300_000 / xs.len().max(1)).clamp(6, 40);
    let mut order: Vec<usize> = (0..xs.len()).collect();
    let mut rng = 7u64;
    let mut p = vec![0f32; k];
    for epoch in 0..epochs {
        for i in (1..order.len()).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        let lr = 2.0 / (1.0 + epoch as f32 * 0.2);
        for &j in &order {
            let x = &xs[j];
            head.logits(x, &mut p);
            softmax(&mut p, 1.0);
            let scale = lr * class_w[ys[j]];
            for (c, pc) in p.iter().enumerate() {
                let g = (pc - if c == ys[j] { 1.0 } else { 0.0 }) * scale;
                if g.abs() < 1e-7 {
                    continue;
                }
                for (w, v) in head.w[c * d..(c + 1) * d].iter_mut().zip(x) {
                    *w -= g * v;
                }
                head.b[c] -= g * 0.1;
            }
        }
    }
    head
}

fn probs(logits: &[Vec<f32>], t: f32) -> Vec<Vec<f32>> {
    logits
        .iter()
        .map(|l| {
            let mut p = l.clone();
            softmax(&mut p, t);
            p
        })
        .collect()
}

/// Scores predicted label names against true ones over a model's `labels`; a name outside
/// them (a label one side does not know) is one more class, so it is always wrong.
pub fn score_names<T: AsRef<str>, P: AsRef<str>>(
    labels: &[String],
    truth: &[T],
    predicted: &[P],
) -> Scores {
    let mut all = labels.to_vec();
    all.push("(not a label of this model)".into());
    let idx = |n: &str| labels.iter().position(|l| l == n).unwrap_or(labels.len());
    let truth: Vec<usize> = truth.iter().map(|t| idx(t.as_ref())).collect();
    let pred: Vec<usize> = predicted.iter().map(|p| idx(p.as_ref())).collect();
    Scores::compute(&all, idx(OUT_OF_SCOPE), &truth, &pred)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(rows: &[(&str, &str)]) -> Vec<Labeled> {
        rows.iter()
            .map(|(t, l)| Labeled {
                text: t.to_string(),
                label: l.to_string(),
                origin: "shop",
            })
            .collect()
    }

    #[test]
    fn labels_are_checked() {
        assert!(valid_label("wholesale_inquiry") && valid_label("a1"));
        for bad in ["", "Wholesale", "1abc", "a-b", "批发", &"a".repeat(49)] {
            assert!(!valid_label(bad), "{bad}");
        }
    }

    #[test]
    fn the_shop_label_wins_over_a_default_and_disabled_builtins_are_left_out() {
        let shop = vec![("我的订单到哪了".to_string(), "where_is_it".to_string())];
        let set = training_set(&Recipe::default(), &shop);
        assert!(set.iter().any(|e| e.label == "where_is_it"));
        assert!(
            !set.iter()
                .any(|e| e.text == "我的订单到哪了" && e.label == "order_status")
        );
        assert!(
            set.iter()
                .any(|e| e.origin == "generic" && e.label == OUT_OF_SCOPE)
        );
        let none = Recipe {
            disabled_builtins: vec!["*".into()],
            generic_negatives: false,
        };
        let set = training_set(&none, &shop);
        assert_eq!(set.len(), 1);
        let some = Recipe {
            disabled_builtins: vec!["invoice".into()],
            generic_negatives: true,
        };
        let set = training_set(&some, &[]);
        assert!(!set.iter().any(|e| e.label == "invoice"));
        assert!(set.iter().any(|e| e.label == "refund"));
    }

    #[test]
    fn too_few_examples_of_a_label_is_refused() {
        let e = ex(&[("a", "x"), ("b", "x"), ("c", "y"), ("d", "y"), ("e", "y")]);
        let err = train(&Input {
            examples: &e,
            embeddings: None,
            embedding_model: None,
            recipe: Recipe::default(),
            embedding_note: String::new(),
        })
        .err()
        .unwrap();
        assert_eq!(
            err,
            TrainError::TooFewExamples {
                label: "x".into(),
                count: 2
            }
        );
    }

    #[test]
    fn a_shop_teaches_a_new_intent_and_the_artefact_round_trips() {
        let mut shop: Vec<(String, String)> = [
            "我们公司想批量采购200件，有批发价吗",
            "大量拿货有优惠吗",
            "批发价怎么算",
            "采购500个能便宜多少",
            "企业团购怎么下单",
            "do you offer wholesale prices",
            "bulk order of 300 units, discount?",
            "我是做代理的，想拿货",
            "公司采购需要对公转账",
            "团购一百件什么价",
        ]
        .iter()
        .map(|t| (t.to_string(), "wholesale".to_string()))
        .collect();
        shop.push(("代发货怎么合作".into(), "wholesale".into()));
        let set = training_set(&Recipe::default(), &shop);
        let t = train(&Input {
            examples: &set,
            embeddings: None,
            embedding_model: None,
            recipe: Recipe::default(),
            embedding_note: "no embedding server".into(),
        })
        .unwrap();
        assert!(t.model.labels().contains(&"wholesale".to_string()));
        assert!(t.model.labels().contains(&"order_status".to_string()));
        assert_eq!(t.truth.len(), set.len());
        let d = t
            .model
            .decide_ngram(&t.model.ngram_probabilities("想批发一批货，200件起什么价"));
        assert_eq!(d.intent, "wholesale", "{d:?}");
        let d = t
            .model
            .decide_ngram(&t.model.ngram_probabilities("我要退货"));
        assert_eq!(d.intent, "return_exchange", "{d:?}");
        assert!(t.report.ngram.mcc > 0.5, "{:?}", t.report.ngram.summary());
        assert!(t.report.embedding.is_none());

        let bytes = t.model.to_bytes();
        let back = ShopModel::from_bytes(&bytes).unwrap();
        assert_eq!(back.header, t.model.header);
        assert!(back.head.is_none());
        for cut in [0, 7, 12, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                ShopModel::from_bytes(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    /// Embeddings that carry the label (a toy space): the head learns it and the mix uses it;
    /// lengths are checked when the artefact is read.
    #[test]
    fn the_embedding_head_is_fitted_mixed_and_stored() {
        let mut rows = Vec::new();
        let mut vecs = Vec::new();
        for i in 0..12 {
            for (l, axis) in [
                ("alpha_label", 0usize),
                ("beta_label", 1),
                (OUT_OF_SCOPE, 2),
            ] {
                // Texts share nothing with their label: only the embedding tells.
                rows.push(Labeled {
                    text: format!("item {i} {}", ["x", "y", "z"][(i + axis) % 3]),
                    label: l.into(),
                    origin: "shop",
                });
                let mut v = vec![0.05f32; 8];
                v[axis] = 1.0;
                v[3 + i % 5] += 0.2;
                let n = dot(&v, &v).sqrt();
                vecs.push(v.iter().map(|x| x / n).collect::<Vec<f32>>());
            }
        }
        let t = train(&Input {
            examples: &rows,
            embeddings: Some(&vecs),
            embedding_model: Some("toy".into()),
            recipe: Recipe {
                disabled_builtins: vec!["*".into()],
                generic_negatives: false,
            },
            embedding_note: String::new(),
        })
        .unwrap();
        let emb = t.report.embedding.as_ref().unwrap();
        assert!(emb.accuracy > 0.9, "{}", emb.summary());
        assert!(t.report.ensemble.accuracy > t.report.ngram.accuracy);
        assert!(t.model.header.alpha > 0.0);
        let mut q = vec![0.05f32; 8];
        q[1] = 1.0;
        let p = t.model.ngram_probabilities("item 3 x");
        assert!(t.model.wants_embedding(&p));
        assert_eq!(t.model.decide(&p, &q).intent, "beta_label");
        let bytes = t.model.to_bytes();
        let back = ShopModel::from_bytes(&bytes).unwrap();
        assert_eq!(back.head, t.model.head);
        assert_eq!(back.decide(&p, &q), t.model.decide(&p, &q));
        // A head one float short is refused, not read.
        assert!(ShopModel::from_bytes(&bytes[..bytes.len() - 4]).is_err());
    }

    #[test]
    fn seen_keys_find_the_training_sentences_digits_aside() {
        let e = ex(&[
            ("where is order 123", "a"),
            ("我要退货", "b"),
            ("hello", "c"),
        ]);
        let k = seen_keys(&e);
        assert_eq!(k.len(), 24);
        assert!(was_seen(&k, "Where is order 456?"));
        assert!(was_seen(&k, "我要退货"));
        assert!(!was_seen(&k, "我要退款"));
        assert!(!was_seen(&[], "hello"));
    }

    #[test]
    fn long_numbers_are_masked_for_the_embedding() {
        assert_eq!(embedding_text("订单20261111001到哪了"), "订单0000到哪了");
        assert_eq!(embedding_text("SF1234567890 x 12, 7"), "SF0000 x 12, 7");
        assert_eq!(embedding_text("1234"), "0000");
        assert_eq!(embedding_text(""), "");
    }

    #[test]
    fn names_outside_the_labels_count_as_wrong() {
        let labels = ["a", OUT_OF_SCOPE].map(String::from).to_vec();
        let s = score_names(&labels, &["a", OUT_OF_SCOPE], &["zzz", OUT_OF_SCOPE]);
        assert_eq!(s.accuracy, 0.5);
    }
}
