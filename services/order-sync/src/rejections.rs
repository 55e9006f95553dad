//! Connector requests refused at authentication (no secret for the shop, a missing or wrong
//! signature). Anyone can send them, so they must not cost a database write each: every one
//! is counted in `kefu_connector_unauthenticated_requests_total{connector,reason}` and logged
//! in aggregate (one line per [`LOG_EVERY`] with the number left out); a row in
//! `connector_rejections` (useful to the shop: "your secret is misconfigured") is written
//! only for a shop that has a secret configured, and at most once per shop, connector and
//! reason every [`ROW_EVERY`]. Requests for shops without a secret never write a row.
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
};

/// Least time between two aggregated log lines.
pub const LOG_EVERY: Duration = Duration::from_secs(60);
/// Least time between two rows for one (shop, connector, reason).
pub const ROW_EVERY: Duration = Duration::from_secs(60);

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No secret is configured for the shop and connector (an unknown shop).
    UnknownShop,
    /// The signature header is missing or malformed.
    MissingSignature,
    /// The signature does not match the body.
    BadSignature,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UnknownShop => "unknown_shop",
            Reason::MissingSignature => "missing_signature",
            Reason::BadSignature => "bad_signature",
        }
    }
}

/// Labels of the refused-request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub connector: String,
    /// `unknown_shop`, `missing_signature` or `bad_signature`.
    pub reason: String,
}

#[derive(Default)]
struct LogWindow {
    last: Option<Instant>,
    left_out: u64,
}

/// Counts, logs and rate-limits the recording of refused connector requests.
#[derive(Default)]
pub struct Refusals {
    counter: Family<RefusedLabels, Counter>,
    rows: Mutex<HashMap<(String, String, Reason), Instant>>,
    log: Mutex<LogWindow>,
}

impl Refusals {
    /// The counter (`kefu_connector_unauthenticated_requests_total`).
    pub fn counter(&self) -> Family<RefusedLabels, Counter> {
        self.counter.clone()
    }

    /// Registers the counter in `metrics`.
    pub fn register(&self, metrics: &kefu_runtime::metrics::Metrics) {
        metrics.register(
            "connector_unauthenticated_requests",
            "Connector requests refused at authentication, by connector and reason",
            self.counter.clone(),
        );
    }

    /// Counts and logs one refused request; true when it should be recorded as a row too.
    pub fn refuse(&self, shop_id: &str, connector: &str, topic: &str, reason: Reason) -> bool {
        self.counter
            .get_or_create(&RefusedLabels {
                connector: connector.to_owned(),
                reason: reason.as_str().to_owned(),
            })
            .inc();
        let now = Instant::now();
        {
            let mut log = self.log.lock().expect("refusal log poisoned");
            match log.last {
                Some(last) if now.duration_since(last) < LOG_EVERY => log.left_out += 1,
                _ => {
                    tracing::warn!(
                        shop = %shop_id.chars().take(64).collect::<String>(),
                        connector,
                        topic = %topic.chars().take(64).collect::<String>(),
                        reason = reason.as_str(),
                        similar_not_logged = log.left_out,
                        "connector request refused (one line per minute; \
                         kefu_connector_unauthenticated_requests_total counts them all)"
                    );
                    log.last = Some(now);
                    log.left_out = 0;
                }
            }
        }
        if reason == Reason::UnknownShop {
            return false;
        }
        let mut rows = self.rows.lock().expect("refusal rows poisoned");
        // Bounded: only shops with a configured secret get here.
        let key = (shop_id.to_owned(), connector.to_owned(), reason);
        match rows.get(&key) {
            Some(at) if now.duration_since(*at) < ROW_EVERY => false,
            _ => {
                rows.insert(key, now);
                true
            }
        }
    }
}
