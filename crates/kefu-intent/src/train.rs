//! Training: SGD on the softmax loss with class-balanced weights, then temperature scaling and
//! the out-of-scope threshold fitted on the dev split. Deterministic: the same data and
//! settings give the same model, byte for byte.
use crate::{
    INTENTS,
    data::{Example, Splits},
    features::{self, Features},
    model::{Model, argmax, softmax},
};

/// Training settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub bits: u32,
    pub epochs: u32,
    pub learning_rate: f32,
    pub l2: f32,
    /// Extra weight of Kefu's own (few, Chinese) examples.
    pub ours_weight: f32,
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bits: 15,
            epochs: 15,
            learning_rate: 0.8,
            l2: 1e-6,
            ours_weight: 5.0,
            seed: 7,
        }
    }
}

/// One training row: features, label index and weight.
pub struct Row {
    pub f: Features,
    pub y: usize,
    pub w: f32,
}

/// Features, label and weight per example. Kefu's own (Chinese, mixed) examples weigh as much
/// in calibration as the far more numerous English ones, so the threshold suits both.
fn rows(examples: &[Example], bits: u32) -> Vec<(Features, usize, f32)> {
    let ours = examples
        .iter()
        .filter(|e| e.source == "kefu")
        .count()
        .max(1) as f32;
    let theirs = examples
        .iter()
        .filter(|e| e.source != "kefu")
        .count()
        .max(1) as f32;
    examples
        .iter()
        .filter_map(|e| {
            let w = if e.source == "kefu" {
                theirs / ours
            } else {
                1.0
            };
            Some((
                features::extract(&e.text, bits),
                INTENTS.iter().position(|i| *i == e.intent)?,
                w,
            ))
        })
        .collect()
}

/// FNV-1a's offset basis: the start of every [`fnv`] chain.
pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a of `s`, continuing from `h`: model versions and deterministic splits.
pub(crate) fn fnv(s: impl AsRef<[u8]>, h: u64) -> u64 {
    s.as_ref()
        .iter()
        .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Class-balancing weights: `total / (classes · count)` clamped to [0.2, 5], 0 for a class
/// without examples.
pub(crate) fn class_weights(counts: &[usize]) -> Vec<f32> {
    let total = counts.iter().sum::<usize>() as f32;
    let n = counts.len() as f32;
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                (total / (n * c as f32)).clamp(0.2, 5.0)
            }
        })
        .collect()
}

/// The softmax temperature in 0.1..=3.0 (steps of 0.05) with the least (weighted) negative
/// log-likelihood of the labels `y`.
pub(crate) fn best_temperature(logits: &[Vec<f32>], y: &[usize], weights: Option<&[f32]>) -> f32 {
    let mut best = (f32::INFINITY, 1.0f32);
    for t in (2..=60).map(|i| i as f32 * 0.05) {
        let nll: f32 = logits
            .iter()
            .zip(y)
            .enumerate()
            .map(|(i, (l, &yi))| {
                let mut p = l.clone();
                softmax(&mut p, t);
                let nll = -(p[yi].max(1e-9)).ln();
                match weights {
                    Some(w) => nll * w[i],
                    None => nll,
                }
            })
            .sum();
        if nll < best.0 {
            best = (nll, t);
        }
    }
    best.1
}

/// Trains a model on `splits.train`, calibrated on `splits.dev`.
pub fn train(splits: &Splits, s: &Settings) -> Model {
    let mut h = FNV_OFFSET;
    for e in &splits.train {
        h = fnv(&e.intent, fnv(&e.text, h));
    }
    h = fnv(format!("{s:?}{}", features::FEATURES_VERSION), h);
    let version = format!("kefu-intent-v1-{:012x}", h & 0xffff_ffff_ffff);
    let labels = INTENTS.iter().map(|s| s.to_string()).collect();
    let mut m = Model::new(version, labels, s.bits).expect("INTENTS has out_of_scope");

    let data: Vec<Row> = splits
        .train
        .iter()
        .filter_map(|e| {
            Some(Row {
                y: INTENTS.iter().position(|i| *i == e.intent)?,
                f: features::extract(&e.text, s.bits),
                w: if e.source == "kefu" {
                    s.ours_weight
                } else {
                    1.0
                },
            })
        })
        .collect();
    fit(&mut m, &data, s);
    calibrate(&mut m, &rows(&splits.dev, s.bits));
    m
}

/// Fits `m`'s weights to `data` by SGD on the class-balanced softmax loss (deterministic: the
/// same rows in the same order and settings give the same weights).
pub fn fit(m: &mut Model, data: &[Row], s: &Settings) {
    let n = m.labels.len();
    let mut counts = vec![0usize; n];
    for r in data {
        counts[r.y] += 1;
    }
    let class_w = class_weights(&counts);

    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut rng = s.seed.max(1);
    let mut p = vec![0f32; n];
    for epoch in 0..s.epochs {
        // Fisher-Yates with xorshift: deterministic.
        for i in (1..order.len()).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            order.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        let lr = s.learning_rate / (1.0 + epoch as f32 * 0.3);
        for &k in &order {
            let r = &data[k];
            m.logits(&r.f, &mut p);
            softmax(&mut p, 1.0);
            let scale = lr * r.w * class_w[r.y];
            for (c, pc) in p.iter_mut().enumerate() {
                *pc = (*pc - if c == r.y { 1.0 } else { 0.0 }) * scale;
            }
            for (&i, &v) in r.f.idx.iter().zip(&r.f.val) {
                let row = &mut m.weights[i as usize * n..(i as usize + 1) * n];
                for (w, g) in row.iter_mut().zip(&p) {
                    *w -= g * v + s.l2 * *w;
                }
            }
            for (b, g) in m.bias.iter_mut().zip(&p) {
                *b -= g * 0.1;
            }
        }
    }
}

/// Fits the temperature (minimum dev NLL) and the out-of-scope threshold (best mean of dev
/// in-scope accuracy and dev out-of-scope recall).
fn calibrate(m: &mut Model, dev: &[(Features, usize, f32)]) {
    if dev.is_empty() {
        return;
    }
    let n = m.labels.len();
    let logits: Vec<Vec<f32>> = dev
        .iter()
        .map(|(f, _, _)| {
            let mut l = vec![0f32; n];
            m.logits(f, &mut l);
            l
        })
        .collect();
    let y: Vec<usize> = dev.iter().map(|(_, y, _)| *y).collect();
    let w: Vec<f32> = dev.iter().map(|(_, _, w)| *w).collect();
    m.temperature = best_temperature(&logits, &y, Some(&w));
    let probs: Vec<Vec<f32>> = logits
        .into_iter()
        .map(|mut l| {
            softmax(&mut l, m.temperature);
            l
        })
        .collect();
    let oos = m.oos_index();
    let mut best = (f32::NEG_INFINITY, 0.0f32);
    for th in (0..=90).map(|i| i as f32 * 0.01) {
        let (mut ins, mut ins_ok, mut out, mut out_ok) = (0f32, 0f32, 0f32, 0f32);
        for (p, (_, y, w)) in probs.iter().zip(dev) {
            let (b, c) = argmax(p);
            let pred = if b == oos || c < th { oos } else { b };
            if *y == oos {
                out += w;
                out_ok += w * (pred == oos) as u8 as f32;
            } else {
                ins += w;
                ins_ok += w * (pred == *y) as u8 as f32;
            }
        }
        let score = ins_ok / ins.max(1e-9) + out_ok / out.max(1e-9);
        if score > best.0 + 1e-6 {
            best = (score, th);
        }
    }
    m.threshold = best.1;
}
