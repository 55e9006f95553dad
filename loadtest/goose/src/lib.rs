//! Kefu's load test: the big-sale message [`mix`], the [`Ledger`] that accounts for every
//! message (accepted → answered, or lost), the [`Report`] and its thresholds, and the
//! [`Scenario`]s SREs size from a shop's daily volume. `src/main.rs` drives it with Goose.
#![forbid(unsafe_code)]

pub mod mix;

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::Serialize;

/// One million messages a day, averaged over the day.
pub const DAILY_RATE: f64 = 1_000_000.0 / 86_400.0;

/// A named load shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scenario {
    pub name: &'static str,
    /// Messages per second.
    pub rate: f64,
    /// Seconds at full rate.
    pub duration_s: u64,
    /// Seconds to ramp up to the full rate.
    pub ramp_up_s: u64,
}

/// `daily` (the average of 1M messages/day for 60 s), `peak-5x` and `peak-10x` (5 minutes at
/// 5× and 10× that), `soak` (the daily rate for 30 minutes).
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "daily",
        rate: 12.0,
        duration_s: 60,
        ramp_up_s: 5,
    },
    Scenario {
        name: "peak-5x",
        rate: 58.0,
        duration_s: 300,
        ramp_up_s: 20,
    },
    Scenario {
        name: "peak-10x",
        rate: 116.0,
        duration_s: 300,
        ramp_up_s: 30,
    },
    Scenario {
        name: "soak",
        rate: 12.0,
        duration_s: 1800,
        ramp_up_s: 10,
    },
];

/// Seconds after the start at which message `n` (0-based) is due: the rate rises linearly from
/// 0 to `rate` msg/s over `ramp_up` seconds (message `n` of the ramp is due at
/// √(2·ramp_up·n / rate)), then stays at `rate`. Continuous at the end of the ramp, so the
/// schedule never asks for a burst.
pub fn due_secs(n: u64, rate: f64, ramp_up: f64) -> f64 {
    let n = n as f64;
    let ramp_msgs = rate * ramp_up / 2.0;
    let secs = if ramp_up > 0.0 && n < ramp_msgs {
        (2.0 * ramp_up * n / rate).sqrt()
    } else {
        ramp_up.max(0.0) + (n - ramp_msgs.max(0.0)) / rate
    };
    secs.max(0.0)
}

pub fn scenario(name: &str) -> Option<Scenario> {
    SCENARIOS.iter().copied().find(|s| s.name == name)
}

#[derive(Default)]
struct Inner {
    /// message id → when it was sent (accepted by session-router).
    sent: HashMap<String, Instant>,
    /// message id → end-to-end latency.
    answered: HashMap<String, Duration>,
    /// Replies seen before their send was recorded (the reply raced the HTTP answer).
    early: HashMap<String, Instant>,
    errors: BTreeMap<String, u64>,
    attempts: u64,
    /// Replies to messages already answered (a duplicate delivery).
    duplicate_replies: u64,
}

/// Every message of a run and what became of it. Shared by the senders and the reply stream.
#[derive(Default)]
pub struct Ledger {
    inner: Mutex<Inner>,
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A send was attempted.
    pub fn attempt(&self) {
        self.lock().attempts += 1;
    }

    /// session-router accepted `message_id`, sent at `at`.
    pub fn accepted(&self, message_id: &str, at: Instant) {
        let mut i = self.lock();
        if let Some(replied) = i.early.remove(message_id) {
            i.answered
                .insert(message_id.to_owned(), replied.saturating_duration_since(at));
        }
        i.sent.insert(message_id.to_owned(), at);
    }

    /// A reply to `message_id` arrived at `at`. Replies to messages of other clients are ignored.
    pub fn reply(&self, message_id: &str, at: Instant) {
        let mut i = self.lock();
        if i.answered.contains_key(message_id) {
            i.duplicate_replies += 1;
            return;
        }
        match i.sent.get(message_id) {
            Some(sent) => {
                let latency = at.saturating_duration_since(*sent);
                i.answered.insert(message_id.to_owned(), latency);
            }
            None => {
                i.early.insert(message_id.to_owned(), at);
            }
        }
    }

    /// A send failed; `kind` groups it in the report (`http_503`, `timeout`, `connect`, …).
    pub fn error(&self, kind: &str) {
        *self.lock().errors.entry(kind.to_owned()).or_default() += 1;
    }

    /// Accepted messages without a reply yet.
    pub fn outstanding(&self) -> usize {
        let i = self.lock();
        i.sent.len() - i.answered.len()
    }

    pub fn accepted_count(&self) -> usize {
        self.lock().sent.len()
    }

    /// The report of the run: `elapsed` is the sending time (for throughput).
    pub fn report(
        &self,
        scenario: &str,
        target_rate: f64,
        elapsed: Duration,
        t: &Thresholds,
    ) -> Report {
        let i = self.lock();
        let mut lat: Vec<Duration> = i.answered.values().copied().collect();
        lat.sort();
        let pct = |p: f64| -> f64 {
            if lat.is_empty() {
                return 0.0;
            }
            let idx = ((p / 100.0) * lat.len() as f64).ceil() as usize;
            ms(lat[idx.clamp(1, lat.len()) - 1])
        };
        let accepted = i.sent.len() as u64;
        let answered = i.answered.len() as u64;
        let errors: u64 = i.errors.values().sum();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let error_rate = if i.attempts == 0 {
            0.0
        } else {
            errors as f64 / i.attempts as f64
        };
        let aborted = i.attempts.saturating_sub(accepted + errors);
        let mut r = Report {
            scenario: scenario.to_owned(),
            target_rate,
            duration_s: round(secs, 1),
            attempted: i.attempts,
            aborted,
            accepted,
            answered,
            lost: accepted - answered,
            duplicate_replies: i.duplicate_replies,
            errors: i.errors.clone(),
            error_rate: round(error_rate, 5),
            sent_per_s: round(accepted as f64 / secs, 1),
            answered_per_s: round(answered as f64 / secs, 1),
            latency_ms: Latency {
                p50: pct(50.0),
                p90: pct(90.0),
                p99: pct(99.0),
                max: lat.last().map(|d| ms(*d)).unwrap_or(0.0),
                mean: if lat.is_empty() {
                    0.0
                } else {
                    round(
                        lat.iter().map(|d| ms(*d)).sum::<f64>() / lat.len() as f64,
                        1,
                    )
                },
            },
            thresholds: t.clone(),
            failures: Vec::new(),
            passed: true,
            embeddings: None,
        };
        r.failures = t.check(&r);
        r.passed = r.failures.is_empty();
        r
    }
}

fn ms(d: Duration) -> f64 {
    round(d.as_secs_f64() * 1000.0, 1)
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// When a run fails.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Thresholds {
    pub max_p99_ms: f64,
    pub max_error_rate: f64,
    pub max_lost: u64,
}

impl Thresholds {
    pub fn check(&self, r: &Report) -> Vec<String> {
        let mut f = Vec::new();
        if r.latency_ms.p99 > self.max_p99_ms {
            f.push(format!(
                "p99 {} ms > {} ms",
                r.latency_ms.p99, self.max_p99_ms
            ));
        }
        if r.error_rate > self.max_error_rate {
            f.push(format!(
                "error rate {:.4} > {:.4}",
                r.error_rate, self.max_error_rate
            ));
        }
        if r.lost > self.max_lost {
            f.push(format!("{} lost messages > {}", r.lost, self.max_lost));
        }
        if r.accepted == 0 {
            f.push("no message was accepted".into());
        }
        f
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// What `--report-json` writes and the console shows.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    pub scenario: String,
    /// Messages per second asked for.
    pub target_rate: f64,
    pub duration_s: f64,
    pub attempted: u64,
    /// Sends still in flight when the run stopped (neither accepted nor failed).
    pub aborted: u64,
    /// Accepted by session-router (HTTP 200/202).
    pub accepted: u64,
    /// Accepted and answered before the deadline.
    pub answered: u64,
    /// Accepted but never answered before the deadline.
    pub lost: u64,
    pub duplicate_replies: u64,
    /// Failed sends by kind.
    pub errors: BTreeMap<String, u64>,
    pub error_rate: f64,
    pub sent_per_s: f64,
    pub answered_per_s: f64,
    /// End to end: sent → reply received, over answered messages.
    pub latency_ms: Latency,
    pub thresholds: Thresholds,
    pub failures: Vec<String>,
    pub passed: bool,
    /// The intent classifier's embedding outcomes over the run (`--intent-metrics`); absent
    /// when its metrics could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<Embeddings>,
}

/// `kefu_intent_embeddings_total{outcome}` over a run: messages of shops with a trained model
/// that used an embedding, got none in time, or did not need one.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Embeddings {
    pub used: u64,
    pub failed: u64,
    pub not_needed: u64,
    /// (used + failed) / all classified messages of trained shops.
    pub share_asked: f64,
}

/// Reads `kefu_intent_embeddings_total{outcome="…"}` counters from Prometheus text.
pub fn embedding_counters(text: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("kefu_intent_embeddings_total{outcome=\"") else {
            continue;
        };
        let Some((outcome, value)) = rest.split_once("\"}") else {
            continue;
        };
        if let Ok(v) = value.trim().parse::<f64>() {
            out.insert(outcome.to_owned(), v as u64);
        }
    }
    out
}

impl Embeddings {
    /// The counters' growth between two readings.
    pub fn between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Self {
        let d = |k: &str| {
            after
                .get(k)
                .copied()
                .unwrap_or(0)
                .saturating_sub(before.get(k).copied().unwrap_or(0))
        };
        let (used, failed, not_needed) = (d("used"), d("failed"), d("not_needed"));
        let all = used + failed + not_needed;
        Self {
            used,
            failed,
            not_needed,
            share_asked: if all == 0 {
                0.0
            } else {
                round((used + failed) as f64 / all as f64, 4)
            },
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Kefu load test — scenario {}", self.scenario)?;
        writeln!(
            f,
            "  rate        target {:.1} msg/s, sent {:.1} msg/s, answered {:.1} msg/s over {:.1} s",
            self.target_rate, self.sent_per_s, self.answered_per_s, self.duration_s
        )?;
        writeln!(
            f,
            "  messages    attempted {}, accepted {}, answered {}, LOST {}, duplicate replies {}, in flight at stop {}",
            self.attempted,
            self.accepted,
            self.answered,
            self.lost,
            self.duplicate_replies,
            self.aborted
        )?;
        let l = &self.latency_ms;
        writeln!(
            f,
            "  latency     p50 {} ms, p90 {} ms, p99 {} ms, max {} ms, mean {} ms (sent → reply)",
            l.p50, l.p90, l.p99, l.max, l.mean
        )?;
        if let Some(e) = &self.embeddings {
            writeln!(
                f,
                "  embeddings  {:.1}% of trained shops' messages asked for one ({} used, {} not in time, {} not needed)",
                e.share_asked * 100.0,
                e.used,
                e.failed,
                e.not_needed
            )?;
        }
        if self.errors.is_empty() {
            writeln!(f, "  errors      none")?;
        } else {
            let e: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            writeln!(
                f,
                "  errors      {} (rate {:.4})",
                e.join(", "),
                self.error_rate
            )?;
        }
        if self.passed {
            write!(
                f,
                "  PASSED      p99 ≤ {} ms, error rate ≤ {}, lost ≤ {}",
                self.thresholds.max_p99_ms,
                self.thresholds.max_error_rate,
                self.thresholds.max_lost
            )
        } else {
            write!(f, "  FAILED      {}", self.failures.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_counters_are_read_and_differenced() {
        let before = embedding_counters(
            "# HELP x\nkefu_intent_embeddings_total{outcome=\"used\"} 10\nkefu_intent_embeddings_total{outcome=\"not_needed\"} 90\nother 5\n",
        );
        let after = embedding_counters(
            "kefu_intent_embeddings_total{outcome=\"used\"} 30\nkefu_intent_embeddings_total{outcome=\"failed\"} 5\nkefu_intent_embeddings_total{outcome=\"not_needed\"} 155\n",
        );
        let e = Embeddings::between(&before, &after);
        assert_eq!((e.used, e.failed, e.not_needed), (20, 5, 65));
        assert_eq!(e.share_asked, 0.2778);
        assert_eq!(Embeddings::between(&after, &after).share_asked, 0.0);
    }

    fn t() -> Thresholds {
        Thresholds {
            max_p99_ms: 300.0,
            max_error_rate: 0.01,
            max_lost: 0,
        }
    }

    #[test]
    fn accounting_counts_answered_lost_and_early_replies() {
        let l = Ledger::default();
        let t0 = Instant::now();
        for i in 0..100 {
            l.attempt();
            l.accepted(&format!("m{i}"), t0);
        }
        // 97 answered at 10..=106 ms, one of them twice; one reply races its HTTP answer.
        for i in 0..97 {
            l.reply(&format!("m{i}"), t0 + Duration::from_millis(10 + i));
        }
        l.reply("m5", t0 + Duration::from_millis(500));
        l.attempt();
        l.reply("m100", t0 + Duration::from_millis(50));
        l.accepted("m100", t0);
        l.attempt();
        l.error("http_503");
        let r = l.report("test", 10.0, Duration::from_secs(10), &t());
        assert_eq!((r.accepted, r.answered, r.lost), (101, 98, 3));
        assert_eq!(r.duplicate_replies, 1);
        assert_eq!(r.latency_ms.max, 106.0);
        // 98 latencies: 10..=106 ms and one more 50 ms; the 49th smallest is 57 ms.
        assert_eq!(r.latency_ms.p50, 57.0);
        assert!(!r.passed);
        assert!(
            r.failures.iter().any(|f| f.contains("3 lost")),
            "{:?}",
            r.failures
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["lost"], 3);
        assert_eq!(json["errors"]["http_503"], 1);
    }

    /// No one-second window asks for more than the rate (+1 for rounding), and the run sends
    /// what the ramp and the rate say. The first version resumed the rate at ramp_up / 2
    /// after the ramp, so rate × ramp_up / 2 messages were due at once when the ramp ended.
    #[test]
    fn arrivals_ramp_up_then_hold_the_rate_without_a_burst() {
        for (rate, ramp) in [(100.0, 5.0), (100.0, 20.0), (12.0, 0.0), (1000.0, 30.0)] {
            let run = ramp + 60.0;
            let times: Vec<f64> = (0u64..)
                .map(|n| due_secs(n, rate, ramp))
                .take_while(|&s| s < run)
                .collect();
            assert!(times.windows(2).all(|w| w[0] <= w[1]), "non-decreasing");
            let expected = rate * ramp / 2.0 + rate * 60.0;
            assert!(
                (times.len() as f64 - expected).abs() <= 1.0,
                "rate {rate}, ramp {ramp}: {} messages, expected {expected}",
                times.len()
            );
            let mut start = 0;
            for (end, &s) in times.iter().enumerate() {
                while times[start] <= s - 1.0 {
                    start += 1;
                }
                let in_window = end - start + 1;
                assert!(
                    in_window as f64 <= rate + 1.0,
                    "rate {rate}, ramp {ramp}: {in_window} messages due in the second before {s:.3} s"
                );
            }
        }
    }

    #[test]
    fn scenarios_scale_the_daily_rate() {
        let daily = scenario("daily").unwrap();
        assert!((daily.rate - DAILY_RATE).abs() < 0.5);
        assert!((scenario("peak-10x").unwrap().rate / daily.rate - 10.0).abs() < 0.5);
        assert!(scenario("peak-100x").is_none());
    }
}
