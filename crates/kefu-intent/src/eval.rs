//! Evaluation: accuracy, macro-F1, per-intent precision/recall, out-of-scope recall and
//! false-accept rate, and a confusion matrix.
use std::fmt::Write;

use crate::{
    INTENTS,
    data::Example,
    model::{Model, OUT_OF_SCOPE},
};

#[derive(Debug, Default)]
pub struct Report {
    pub n: usize,
    pub accuracy: f64,
    pub in_scope_accuracy: f64,
    pub macro_f1: f64,
    pub oos_recall: f64,
    /// Out-of-scope messages answered with an in-scope intent.
    pub oos_false_accept: f64,
    /// In-scope messages rejected as out of scope.
    pub in_scope_false_reject: f64,
    /// Expected calibration error of the top probability (10 equal-width bins).
    pub ece: f64,
    pub per_intent: Vec<(String, f64, f64, usize)>,
    /// confusion[true][predicted], indices into INTENTS.
    pub confusion: Vec<Vec<usize>>,
}

fn idx(intent: &str) -> usize {
    INTENTS
        .iter()
        .position(|i| *i == intent)
        .unwrap_or(INTENTS.len() - 1)
}

pub fn evaluate(model: &Model, examples: &[Example]) -> Report {
    let k = INTENTS.len();
    let oos = idx(OUT_OF_SCOPE);
    let mut conf = vec![vec![0usize; k]; k];
    // (count, sum of confidence, correct) per bin of the top calibrated probability.
    let mut bins = [(0usize, 0f64, 0usize); 10];
    for e in examples {
        let probs = model.probabilities(&e.text);
        let (top, p_top) = crate::model::argmax(&probs);
        let b = ((p_top as f64 * 10.0) as usize).min(9);
        bins[b].0 += 1;
        bins[b].1 += p_top as f64;
        bins[b].2 += (model.labels[top] == e.intent) as usize;
        let p = model.decide(&probs);
        conf[idx(&e.intent)][idx(&p.intent)] += 1;
    }
    let total = examples.len().max(1) as f64;
    let ece = bins
        .iter()
        .filter(|b| b.0 > 0)
        .map(|&(n, c, ok)| (n as f64 / total) * (c / n as f64 - ok as f64 / n as f64).abs())
        .sum();
    let n: usize = conf.iter().flatten().sum();
    let correct: usize = (0..k).map(|i| conf[i][i]).sum();
    let ins_total: usize = (0..k)
        .filter(|&i| i != oos)
        .map(|i| conf[i].iter().sum::<usize>())
        .sum();
    let ins_correct: usize = (0..k).filter(|&i| i != oos).map(|i| conf[i][i]).sum();
    let ins_rejected: usize = (0..k).filter(|&i| i != oos).map(|i| conf[i][oos]).sum();
    let oos_total: usize = conf[oos].iter().sum();
    let mut per = Vec::new();
    let mut f1s = Vec::new();
    for (i, name) in INTENTS.iter().enumerate() {
        let support: usize = conf[i].iter().sum();
        let predicted: usize = (0..k).map(|t| conf[t][i]).sum();
        if support == 0 && predicted == 0 {
            continue;
        }
        let p = if predicted == 0 {
            0.0
        } else {
            conf[i][i] as f64 / predicted as f64
        };
        let r = if support == 0 {
            0.0
        } else {
            conf[i][i] as f64 / support as f64
        };
        if support > 0 {
            f1s.push(if p + r == 0.0 {
                0.0
            } else {
                2.0 * p * r / (p + r)
            });
        }
        per.push((name.to_string(), p, r, support));
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Report {
        n,
        accuracy: ratio(correct, n),
        in_scope_accuracy: ratio(ins_correct, ins_total),
        macro_f1: if f1s.is_empty() {
            0.0
        } else {
            f1s.iter().sum::<f64>() / f1s.len() as f64
        },
        oos_recall: ratio(conf[oos][oos], oos_total),
        oos_false_accept: ratio(oos_total - conf[oos][oos], oos_total),
        in_scope_false_reject: ratio(ins_rejected, ins_total),
        ece,
        per_intent: per,
        confusion: conf,
    }
}

impl Report {
    /// Human-readable report with the confusion matrix (rows: truth, columns: prediction).
    pub fn render(&self, title: &str) -> String {
        let mut s = String::new();
        let pct = |x: f64| format!("{:.1}%", x * 100.0);
        let _ = writeln!(s, "## {title} ({} examples)", self.n);
        let _ = writeln!(
            s,
            "accuracy {}  in-scope accuracy {}  macro-F1 {:.3}  out-of-scope recall {}  false-accept {}  in-scope false-reject {}  calibration error (ECE) {:.3}",
            pct(self.accuracy),
            pct(self.in_scope_accuracy),
            self.macro_f1,
            pct(self.oos_recall),
            pct(self.oos_false_accept),
            pct(self.in_scope_false_reject),
            self.ece,
        );
        let _ = writeln!(
            s,
            "{:<18} {:>9} {:>9} {:>7}",
            "intent", "precision", "recall", "support"
        );
        for (name, p, r, n) in &self.per_intent {
            let _ = writeln!(s, "{name:<18} {:>9} {:>9} {n:>7}", pct(*p), pct(*r));
        }
        let used: Vec<usize> = (0..INTENTS.len())
            .filter(|&i| {
                self.confusion[i].iter().sum::<usize>() > 0
                    || self.confusion.iter().any(|row| row[i] > 0)
            })
            .collect();
        let _ = write!(
            s,
            "confusion (rows = truth, columns = prediction, in the order of the rows)\n{:<18}",
            ""
        );
        for &j in &used {
            let _ = write!(s, "{:>5}", j);
        }
        let _ = writeln!(s);
        for &i in &used {
            let _ = write!(s, "{:>2} {:<15}", i, INTENTS[i]);
            for &j in &used {
                let _ = write!(s, "{:>5}", self.confusion[i][j]);
            }
            let _ = writeln!(s);
        }
        s
    }
}
