//! Prometheus metrics: a registry per process and the HTTP endpoint that serves it.
use std::sync::{Arc, Mutex};

use axum::{Router, http::header, response::IntoResponse, routing::get};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::{Metric, Registry},
};
use tokio_util::sync::CancellationToken;

/// A process-wide registry; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    pub kafka: KafkaMetrics,
}

/// Labels of per-topic Kafka metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

/// Labels of consumed-event outcomes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub topic: String,
    /// `ok`, `duplicate`, `retried`, `dead_lettered`.
    pub outcome: String,
}

/// Labels of per-consumer-group metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub group: String,
}

/// Metrics the Kafka plumbing records for every service.
#[derive(Clone)]
pub struct KafkaMetrics {
    pub consumed: Family<OutcomeLabels, Counter>,
    pub produced: Family<TopicLabels, Counter>,
    pub produce_errors: Family<TopicLabels, Counter>,
    pub handle_seconds: Family<TopicLabels, Histogram>,
    /// Consumer clients restarted (stalled partition, dead task, unsettled group).
    pub consumer_restarts: Family<GroupLabels, Counter>,
}

fn handle_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0005, 2.0, 16,
    ))
}

impl Metrics {
    pub fn new(service: &str) -> Self {
        let mut registry = Registry::with_prefix("kefu");
        let kafka = KafkaMetrics {
            consumed: Family::default(),
            produced: Family::default(),
            produce_errors: Family::default(),
            handle_seconds: Family::new_with_constructor(handle_histogram as fn() -> Histogram),
            consumer_restarts: Family::default(),
        };
        registry.register(
            "events_consumed",
            "Events consumed, by topic and outcome",
            kafka.consumed.clone(),
        );
        registry.register(
            "events_produced",
            "Events produced and acknowledged, by topic",
            kafka.produced.clone(),
        );
        registry.register(
            "produce_errors",
            "Produce attempts that failed, by topic",
            kafka.produce_errors.clone(),
        );
        registry.register(
            "event_handle_seconds",
            "Time to handle one event until its effect is durable",
            kafka.handle_seconds.clone(),
        );
        registry.register(
            "kafka_consumer_restarts",
            "Kafka consumer clients restarted by their supervisor, by group",
            kafka.consumer_restarts.clone(),
        );
        let info: Family<Vec<(String, String)>, Counter> = Family::default();
        info.get_or_create(&vec![
            ("service".into(), service.into()),
            ("version".into(), env!("CARGO_PKG_VERSION").into()),
        ])
        .inc();
        registry.register("build_info", "Service name and version", info);
        Self {
            registry: Arc::new(Mutex::new(registry)),
            kafka,
        }
    }

    /// Registers a service-specific metric (name gets the `kefu_` prefix).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry
            .lock()
            .expect("metrics registry poisoned")
            .register(name, help, metric);
    }

    /// Text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics registry poisoned");
        if let Err(e) = encode(&mut out, &registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }

    /// Serves `/metrics` and `/healthz` on a bound listener until `shutdown` is cancelled.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let app = Router::new()
            .route(
                "/metrics",
                get(move || {
                    let m = self.clone();
                    async move {
                        (
                            [(
                                header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            m.render(),
                        )
                            .into_response()
                    }
                }),
            )
            .route("/healthz", get(|| async { "ok" }));
        tracing::info!(addr = ?listener.local_addr().ok(), "metrics endpoint listening");
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_registered_metrics() {
        let m = Metrics::new("unit");
        m.kafka
            .produced
            .get_or_create(&TopicLabels { topic: "t".into() })
            .inc();
        let text = m.render();
        assert!(
            text.contains("kefu_events_produced_total{topic=\"t\"} 1"),
            "{text}"
        );
        assert!(text.contains("service=\"unit\""), "{text}");
    }
}
