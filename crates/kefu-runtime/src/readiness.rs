//! Readiness: the conditions that keep a service from doing its work (the broker unreachable,
//! the database failing every event, a consumer restarting). While any holds, the service's
//! named gRPC health reports NOT_SERVING (Kubernetes takes the pod out of its Service) and
//! `kefu_unready{condition}` is 1; each change is logged once, in words an operator can act
//! on. Liveness (the overall health, `""`) is not affected: a process waiting for its
//! database is alive and must not be restarted for it.
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
};
use tokio::sync::watch;

/// Labels of the readiness gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    pub condition: String,
}

struct Condition {
    since: Instant,
    reason: String,
}

struct Inner {
    conditions: Mutex<BTreeMap<String, Condition>>,
    ready: watch::Sender<bool>,
    gauge: Family<ConditionLabels, Gauge>,
}

/// The set of conditions that hold now; cheap to clone.
#[derive(Clone)]
pub struct Readiness {
    inner: Arc<Inner>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

impl Readiness {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                conditions: Mutex::new(BTreeMap::new()),
                ready: watch::channel(true).0,
                gauge: Family::default(),
            }),
        }
    }

    /// The gauge to register (`kefu_unready{condition}`).
    pub fn gauge(&self) -> Family<ConditionLabels, Gauge> {
        self.inner.gauge.clone()
    }

    fn conditions(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Condition>> {
        self.inner
            .conditions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// `condition` holds, because of `reason`. Logged when it starts to hold.
    pub fn degrade(&self, condition: &str, reason: impl std::fmt::Display) {
        let reason = reason.to_string();
        let mut map = self.conditions();
        match map.get_mut(condition) {
            Some(c) => c.reason = reason,
            None => {
                tracing::error!(%condition, %reason, "not ready: reporting NOT_SERVING until this clears");
                map.insert(
                    condition.to_owned(),
                    Condition {
                        since: Instant::now(),
                        reason,
                    },
                );
                self.inner
                    .gauge
                    .get_or_create(&ConditionLabels {
                        condition: condition.to_owned(),
                    })
                    .set(1);
            }
        }
        self.inner.ready.send_replace(false);
    }

    /// `condition` no longer holds. Logged when it held.
    pub fn restore(&self, condition: &str) {
        let mut map = self.conditions();
        if let Some(c) = map.remove(condition) {
            tracing::info!(%condition, after = ?c.since.elapsed(), "recovered");
            self.inner
                .gauge
                .get_or_create(&ConditionLabels {
                    condition: condition.to_owned(),
                })
                .set(0);
        }
        self.inner.ready.send_replace(map.is_empty());
    }

    /// Whether no condition holds.
    pub fn is_ready(&self) -> bool {
        self.conditions().is_empty()
    }

    /// The conditions that hold, with their reason and how long they have held.
    pub fn reasons(&self) -> Vec<(String, String, Duration)> {
        self.conditions()
            .iter()
            .map(|(k, c)| (k.clone(), c.reason.clone(), c.since.elapsed()))
            .collect()
    }

    /// Changes of "ready".
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.inner.ready.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_no_condition_holds() {
        let r = Readiness::new();
        let mut w = r.watch();
        assert!(r.is_ready());
        r.degrade("kafka-broker", "no broker reachable for 12 s");
        r.degrade("database", "connection refused");
        assert!(!r.is_ready() && !*w.borrow_and_update());
        r.restore("kafka-broker");
        assert!(!r.is_ready(), "the database still fails");
        r.degrade("database", "still refused");
        assert_eq!(r.reasons()[0].1, "still refused");
        r.restore("database");
        assert!(r.is_ready() && *w.borrow_and_update());
        r.restore("never-held");
        assert!(r.is_ready());
    }
}
