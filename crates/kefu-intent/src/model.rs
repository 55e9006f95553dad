//! The intent model: multinomial logistic regression over hashed features, temperature-scaled
//! probabilities, and an out-of-scope threshold. Stored as a small binary artefact with int8
//! weights.
use std::path::Path;

use crate::features;

/// Label every model must have; also the answer below the confidence threshold.
pub const OUT_OF_SCOPE: &str = "out_of_scope";

const MAGIC: &[u8; 8] = b"KEFUINT1";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("reading model: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a Kefu intent model (bad magic or truncated)")]
    Format,
    #[error("model has no `{OUT_OF_SCOPE}` label")]
    NoOutOfScope,
}

/// A trained model.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Name and version, e.g. `kefu-intent-2026.11-3f2a…` (hash of data and settings).
    pub version: String,
    pub labels: Vec<String>,
    pub bits: u32,
    /// `weights[bucket * labels.len() + label]`.
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    /// Softmax temperature fitted on the dev split (calibration).
    pub temperature: f32,
    /// Below this confidence the answer is `out_of_scope`.
    pub threshold: f32,
    oos: usize,
}

/// One prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub intent: String,
    pub confidence: f32,
    /// The most likely in-scope intent, even when the answer is `out_of_scope`.
    pub best_in_scope: String,
}

impl Model {
    pub fn new(version: String, labels: Vec<String>, bits: u32) -> Result<Self, ModelError> {
        let oos = labels
            .iter()
            .position(|l| l == OUT_OF_SCOPE)
            .ok_or(ModelError::NoOutOfScope)?;
        let n = labels.len();
        Ok(Self {
            version,
            bits,
            weights: vec![0.0; (1usize << bits) * n],
            bias: vec![0.0; n],
            labels,
            temperature: 1.0,
            threshold: 0.0,
            oos,
        })
    }

    /// Raw scores for a feature vector.
    pub fn logits(&self, f: &features::Features, out: &mut [f32]) {
        let n = self.labels.len();
        out.copy_from_slice(&self.bias);
        for (&i, &v) in f.idx.iter().zip(&f.val) {
            let row = &self.weights[i as usize * n..(i as usize + 1) * n];
            for (o, w) in out.iter_mut().zip(row) {
                *o += w * v;
            }
        }
    }

    /// Calibrated probabilities of every label.
    pub fn probabilities(&self, text: &str) -> Vec<f32> {
        let f = features::extract(text, self.bits);
        let mut p = vec![0.0; self.labels.len()];
        self.logits(&f, &mut p);
        softmax(&mut p, self.temperature);
        p
    }

    /// The intent of `text`, or `out_of_scope` when the model is not confident enough.
    pub fn predict(&self, text: &str) -> Prediction {
        let p = self.probabilities(text);
        self.decide(&p)
    }

    pub fn decide(&self, p: &[f32]) -> Prediction {
        let (best, conf) = argmax(p);
        let best_in_scope = p
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != self.oos)
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| self.labels[i].clone())
            .unwrap_or_default();
        if best == self.oos || conf < self.threshold {
            Prediction {
                intent: OUT_OF_SCOPE.into(),
                confidence: if best == self.oos { conf } else { 1.0 - conf },
                best_in_scope,
            }
        } else {
            Prediction {
                intent: self.labels[best].clone(),
                confidence: conf,
                best_in_scope,
            }
        }
    }

    pub fn oos_index(&self) -> usize {
        self.oos
    }

    /// Serialises with int8 weights (one scale per label).
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.labels.len();
        let mut out = Vec::with_capacity(self.weights.len() + 1024);
        out.extend_from_slice(MAGIC);
        put_str(&mut out, &self.version);
        out.extend_from_slice(&(n as u32).to_le_bytes());
        for l in &self.labels {
            put_str(&mut out, l);
        }
        out.extend_from_slice(&self.bits.to_le_bytes());
        out.extend_from_slice(&self.temperature.to_le_bytes());
        out.extend_from_slice(&self.threshold.to_le_bytes());
        for b in &self.bias {
            out.extend_from_slice(&b.to_le_bytes());
        }
        let mut scales = vec![0f32; n];
        for row in self.weights.chunks(n) {
            for (s, w) in scales.iter_mut().zip(row) {
                *s = s.max(w.abs());
            }
        }
        for s in &mut scales {
            *s = if *s > 0.0 { *s / 127.0 } else { 1.0 };
            out.extend_from_slice(&s.to_le_bytes());
        }
        for row in self.weights.chunks(n) {
            for (w, s) in row.iter().zip(&scales) {
                out.push((w / s).round().clamp(-127.0, 127.0) as i8 as u8);
            }
        }
        out
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self, ModelError> {
        let mut r = Reader { b, pos: 0 };
        if r.take(8)? != MAGIC {
            return Err(ModelError::Format);
        }
        let version = r.string()?;
        let n = r.u32()? as usize;
        if n == 0 || n > 1000 {
            return Err(ModelError::Format);
        }
        let labels = (0..n).map(|_| r.string()).collect::<Result<Vec<_>, _>>()?;
        let bits = r.u32()?;
        if !(8..=24).contains(&bits) {
            return Err(ModelError::Format);
        }
        // Everything left is fixed by n and bits: check it against the bytes there before
        // allocating the weights (a damaged header must not ask for gigabytes).
        let rest = 8 + 8 * n + (1usize << bits) * n;
        if b.len() - r.pos != rest {
            return Err(ModelError::Format);
        }
        let mut m = Model::new(version, labels, bits)?;
        m.temperature = r.f32()?;
        m.threshold = r.f32()?;
        for b in &mut m.bias {
            *b = r.f32()?;
        }
        let scales = (0..n).map(|_| r.f32()).collect::<Result<Vec<_>, _>>()?;
        let q = r.take(m.weights.len())?;
        for (i, (w, &q)) in m.weights.iter_mut().zip(q).enumerate() {
            *w = f32::from(q as i8) * scales[i % n];
        }
        if r.pos != b.len() {
            return Err(ModelError::Format);
        }
        Ok(m)
    }

    pub fn load(path: &Path) -> Result<Self, ModelError> {
        Self::from_bytes(&std::fs::read(path)?)
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        // Write then rename, so a reader never sees half a model.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.to_bytes())?;
        std::fs::rename(tmp, path)
    }
}

pub fn softmax(x: &mut [f32], temperature: f32) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = ((*v - max) / temperature).exp();
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

pub fn argmax(p: &[f32]) -> (usize, f32) {
    p.iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let end = self.pos.checked_add(n).ok_or(ModelError::Format)?;
        let s = self.b.get(self.pos..end).ok_or(ModelError::Format)?;
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| ModelError::Format)?,
        ))
    }
    fn f32(&mut self) -> Result<f32, ModelError> {
        Ok(f32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| ModelError::Format)?,
        ))
    }
    fn string(&mut self) -> Result<String, ModelError> {
        let n = self.u32()? as usize;
        if n > 4096 {
            return Err(ModelError::Format);
        }
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| ModelError::Format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let mut m = Model::new("t".into(), vec!["a".into(), OUT_OF_SCOPE.into()], 8).unwrap();
        m.weights[3] = 0.5;
        m.weights[4] = -1.0;
        m.temperature = 1.5;
        m.threshold = 0.4;
        let back = Model::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(back.labels, m.labels);
        assert_eq!((back.temperature, back.threshold), (1.5, 0.4));
        assert!((back.weights[4] + 1.0).abs() < 0.01 && (back.weights[3] - 0.5).abs() < 0.01);
        let bytes = m.to_bytes();
        assert!(Model::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(Model::from_bytes(b"nonsense").is_err());
        assert!(Model::from_bytes(&[]).is_err());
        // A header claiming 2^24 buckets × 2 labels is refused before 128 MiB are allocated.
        let mut big = bytes.clone();
        let at = 8 + 4 + 1 + 4 + (4 + 1) + (4 + 12);
        assert_eq!(&big[at..at + 4], &8u32.to_le_bytes());
        big[at..at + 4].copy_from_slice(&24u32.to_le_bytes());
        assert!(matches!(Model::from_bytes(&big), Err(ModelError::Format)));
    }
}
