//! Scores of a classifier over any label set: accuracy, in-scope accuracy, out-of-scope
//! recall, per-label precision/recall/F1, macro-F1 and the multiclass Matthews correlation
//! coefficient (Gorodkin's R_K) over every class, out-of-scope included.
use serde::{Deserialize, Serialize};

/// Precision, recall and F1 of one label.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelScore {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// Scores of predictions against the truth.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub n: usize,
    pub accuracy: f64,
    /// Accuracy on the in-scope examples (an in-scope example answered `out_of_scope` is wrong).
    pub in_scope_accuracy: f64,
    /// Share of the out-of-scope examples answered `out_of_scope`.
    pub oos_recall: f64,
    /// Share of the in-scope examples answered `out_of_scope`.
    pub in_scope_rejected: f64,
    pub macro_f1: f64,
    /// Matthews correlation coefficient over every class, `out_of_scope` included.
    pub mcc: f64,
    pub per_label: Vec<LabelScore>,
}

impl Scores {
    /// `truth[i]` and `pred[i]` index `labels`; `oos` is the out-of-scope label's index.
    pub fn compute(labels: &[String], oos: usize, truth: &[usize], pred: &[usize]) -> Self {
        let k = labels.len();
        let mut conf = vec![vec![0u64; k]; k];
        for (&t, &p) in truth.iter().zip(pred) {
            if t < k && p < k {
                conf[t][p] += 1;
            }
        }
        let n: u64 = conf.iter().flatten().sum();
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let correct: u64 = (0..k).map(|i| conf[i][i]).sum();
        let t_k: Vec<u64> = conf.iter().map(|r| r.iter().sum()).collect();
        let p_k: Vec<u64> = (0..k).map(|j| conf.iter().map(|r| r[j]).sum()).collect();
        let ins_total = n - t_k.get(oos).copied().unwrap_or(0);
        let ins_correct = correct - conf.get(oos).map_or(0, |r| r[oos]);
        let ins_rejected: u64 = (0..k).filter(|&i| i != oos).map(|i| conf[i][oos]).sum();
        let (s, c) = (n as f64, correct as f64);
        let sum_pt: f64 = (0..k).map(|i| p_k[i] as f64 * t_k[i] as f64).sum();
        let sum_pp: f64 = p_k.iter().map(|&p| (p as f64).powi(2)).sum();
        let sum_tt: f64 = t_k.iter().map(|&t| (t as f64).powi(2)).sum();
        let den = ((s * s - sum_pp) * (s * s - sum_tt)).sqrt();
        let mcc = if den > 0.0 {
            (c * s - sum_pt) / den
        } else {
            0.0
        };
        let mut per_label = Vec::new();
        let mut f1s = Vec::new();
        for (i, label) in labels.iter().enumerate() {
            if t_k[i] == 0 && p_k[i] == 0 {
                continue;
            }
            let precision = ratio(conf[i][i], p_k[i]);
            let recall = ratio(conf[i][i], t_k[i]);
            let f1 = if precision + recall == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            if t_k[i] > 0 {
                f1s.push(f1);
            }
            per_label.push(LabelScore {
                label: label.clone(),
                precision,
                recall,
                f1,
                support: t_k[i] as usize,
            });
        }
        Scores {
            n: n as usize,
            accuracy: ratio(correct, n),
            in_scope_accuracy: ratio(ins_correct, ins_total),
            oos_recall: ratio(
                conf.get(oos).map_or(0, |r| r[oos]),
                t_k.get(oos).copied().unwrap_or(0),
            ),
            in_scope_rejected: ratio(ins_rejected, ins_total),
            macro_f1: if f1s.is_empty() {
                0.0
            } else {
                f1s.iter().sum::<f64>() / f1s.len() as f64
            },
            mcc,
            per_label,
        }
    }

    /// One line: accuracy, in-scope accuracy, out-of-scope recall, macro-F1, MCC.
    pub fn summary(&self) -> String {
        format!(
            "accuracy {:.1}%  in-scope accuracy {:.1}%  out-of-scope recall {:.1}%  in-scope rejected {:.1}%  macro-F1 {:.3}  MCC {:.3}  ({} examples)",
            self.accuracy * 100.0,
            self.in_scope_accuracy * 100.0,
            self.oos_recall * 100.0,
            self.in_scope_rejected * 100.0,
            self.macro_f1,
            self.mcc,
            self.n
        )
    }
}

/// Area under the ROC curve of `score` separating `positive` from the rest (ties count half).
pub fn auroc(score: &[f32], positive: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..score.len()).collect();
    idx.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    let (mut rank_sum, mut i) = (0f64, 0usize);
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && score[idx[j + 1]] == score[idx[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += (i..=j).filter(|&k| positive[idx[k]]).count() as f64 * rank;
        i = j + 1;
    }
    let pos = positive.iter().filter(|p| **p).count() as f64;
    let neg = positive.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["a", "b", "out_of_scope"].map(String::from).to_vec()
    }

    #[test]
    fn perfect_predictions_score_one_and_chance_scores_zero() {
        let t = [0, 1, 2, 0, 1, 2];
        let s = Scores::compute(&labels(), 2, &t, &t);
        assert_eq!(
            (s.accuracy, s.in_scope_accuracy, s.oos_recall),
            (1.0, 1.0, 1.0)
        );
        assert!((s.mcc - 1.0).abs() < 1e-12 && (s.macro_f1 - 1.0).abs() < 1e-12);
        // Always one answer: MCC 0 whatever the accuracy.
        let s = Scores::compute(&labels(), 2, &t, &[0; 6]);
        assert_eq!(s.mcc, 0.0);
        assert!((s.accuracy - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn mcc_matches_the_binary_formula_and_counts_rejections() {
        // Two classes: MCC = (tp·tn − fp·fn) / sqrt(...).
        let l = ["x", "out_of_scope"].map(String::from).to_vec();
        let truth = [0, 0, 0, 1, 1, 1, 1, 0];
        let pred = [0, 0, 1, 1, 1, 0, 1, 0];
        let (tp, tn, fp, fn_) = (3.0, 3.0, 1.0, 1.0);
        let want =
            (tp * tn - fp * fn_) / f64::sqrt((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_));
        let s = Scores::compute(&l, 1, &truth, &pred);
        assert!((s.mcc - want).abs() < 1e-12, "{} vs {want}", s.mcc);
        assert!((s.in_scope_rejected - 0.25).abs() < 1e-12);
        assert!((s.oos_recall - 0.75).abs() < 1e-12);
    }

    #[test]
    fn auroc_orders_scores() {
        assert_eq!(
            auroc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            1.0
        );
        assert_eq!(
            auroc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            0.0
        );
        assert_eq!(auroc(&[0.5, 0.5], &[false, true]), 0.5);
    }
}
