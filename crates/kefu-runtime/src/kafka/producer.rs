//! The producer every service shares: idempotent, `acks=all`, and built to ride out the broker.
//!
//! * **No message ever times out** (`message.timeout.ms=0`): while the broker is away, events
//!   wait in the client and are delivered when it returns; a caller's `send` returns only
//!   once the broker acknowledged. An idempotent producer whose messages time out has to bump
//!   its epoch, and the local broker (tansu 0.6) dies on that bump (docs/performance.md,
//!   "Broker outages"); with real Kafka it only costs a round of retries.
//! * **Stuck sends are noticed**: when events have waited for an acknowledgement longer than
//!   [`STALL`], the `kafka-producer` readiness condition holds (NOT_SERVING, a log line) until
//!   the broker acknowledges again.
//! * **A fatal producer is replaced**: when librdkafka reports a fatal error (a fenced or
//!   out-of-sequence idempotent producer), the next send builds a new producer, with a new
//!   producer id, and the callers' retries go through it.
use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicI64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use prometheus_client::metrics::counter::Counter;
use rdkafka::{
    error::KafkaError,
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer as _},
    util::Timeout,
};
use tokio_util::sync::CancellationToken;

use super::KafkaConfig;
use crate::{
    metrics::{KafkaMetrics, TopicLabels},
    readiness::Readiness,
    telemetry,
};

/// How long events may wait for the broker's acknowledgement before the service reports
/// itself not ready.
pub const STALL: Duration = Duration::from_secs(10);
/// The readiness condition of stuck sends.
pub const CONDITION: &str = "kafka-producer";

struct Inner {
    cfg: KafkaConfig,
    current: RwLock<FutureProducer>,
    metrics: KafkaMetrics,
    /// Sends waiting for the broker.
    in_flight: AtomicUsize,
    /// When a send last finished (acknowledged or failed), in ms since the Unix epoch.
    last_progress_ms: AtomicI64,
    rebuilds: Counter,
}

/// Counts a send as waiting for the broker until it ends, also when the caller gives up on
/// it (a timeout drops the future): the event is still queued, but nobody waits for it.
struct InFlight<'a>(&'a Inner);

impl<'a> InFlight<'a> {
    fn new(inner: &'a Inner) -> Self {
        inner.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(inner)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An idempotent producer; cheap to clone.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn build(cfg: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    cfg.client()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        // Infinite: an event waits for the broker however long it is away (module docs).
        .set("message.timeout.ms", "0")
        .set("retry.backoff.ms", "100")
        .set("retry.backoff.max.ms", "1000")
        .create()
}

impl Producer {
    pub fn new(cfg: &KafkaConfig, metrics: KafkaMetrics) -> anyhow::Result<Self> {
        let rebuilds = Counter::default();
        Ok(Self {
            inner: Arc::new(Inner {
                current: RwLock::new(build(cfg)?),
                cfg: cfg.clone(),
                metrics,
                in_flight: AtomicUsize::new(0),
                last_progress_ms: AtomicI64::new(now_ms()),
                rebuilds,
            }),
        })
    }

    /// `kefu_kafka_producer_rebuilds_total`, to register.
    pub fn rebuilds(&self) -> Counter {
        self.inner.rebuilds.clone()
    }

    fn producer(&self) -> FutureProducer {
        self.inner
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces a producer that reported a fatal error (once, whoever notices first).
    fn replace_if_fatal(&self, failed: &FutureProducer) {
        let Some((code, reason)) = failed.client().fatal_error() else {
            return;
        };
        let mut current = self
            .inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if !std::ptr::eq(current.client().native_ptr(), failed.client().native_ptr()) {
            return; // someone replaced it already
        }
        match build(&self.inner.cfg) {
            Ok(fresh) => {
                *current = fresh;
                self.inner.rebuilds.inc();
                tracing::error!(?code, %reason, "the producer failed fatally; replaced it with a new one (new producer id); sends are retried through it");
            }
            Err(e) => {
                tracing::error!(error = %e, ?code, %reason, "the producer failed fatally and a new one cannot be built yet; retrying on the next send");
            }
        }
    }

    /// Sends raw bytes and waits for the broker's acknowledgement (however long the broker is
    /// away). `QueueFull` is waited out for up to 30 s, then returned.
    pub async fn send_raw(
        &self,
        topic: &str,
        key: Option<&str>,
        payload: &[u8],
        headers: &[(String, Vec<u8>)],
    ) -> Result<(), KafkaError> {
        let mut hs = OwnedHeaders::new_with_capacity(headers.len());
        for (k, v) in headers {
            hs = hs.insert(Header {
                key: k,
                value: Some(v.as_slice()),
            });
        }
        let mut record = FutureRecord::to(topic).payload(payload).headers(hs);
        if let Some(k) = key {
            record = record.key(k);
        }
        let labels = TopicLabels {
            topic: topic.to_owned(),
        };
        let producer = self.producer();
        let waiting = InFlight::new(&self.inner);
        let sent = producer
            .send(record, Timeout::After(Duration::from_secs(30)))
            .await;
        drop(waiting);
        self.inner
            .last_progress_ms
            .store(now_ms(), Ordering::Relaxed);
        match sent {
            Ok(_) => {
                self.inner.metrics.produced.get_or_create(&labels).inc();
                Ok(())
            }
            Err((e, _)) => {
                self.inner
                    .metrics
                    .produce_errors
                    .get_or_create(&labels)
                    .inc();
                self.replace_if_fatal(&producer);
                Err(e)
            }
        }
    }

    /// Encodes a protobuf event and sends it with the current trace context in its headers.
    /// No other header: the topic names the event type, and every header is one more row the
    /// broker writes and reads back per record (docs/performance.md).
    pub async fn send_event<M: prost::Message>(
        &self,
        topic: &str,
        key: &str,
        event: &M,
    ) -> Result<(), KafkaError> {
        let hs: Vec<(String, Vec<u8>)> = telemetry::current_trace_headers()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        self.send_raw(topic, Some(key), &event.encode_to_vec(), &hs)
            .await
    }

    /// Whether sends have waited for the broker longer than `stall`.
    pub fn stalled(&self, stall: Duration) -> Option<(usize, Duration)> {
        let waiting = self.inner.in_flight.load(Ordering::Relaxed);
        let idle = now_ms() - self.inner.last_progress_ms.load(Ordering::Relaxed);
        let idle = Duration::from_millis(idle.max(0) as u64);
        (waiting > 0 && idle > stall).then_some((waiting, idle))
    }

    /// Reports stuck sends as the `kafka-producer` readiness condition until `shutdown`.
    pub async fn watch(
        self,
        readiness: Readiness,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            match self.stalled(STALL) {
                Some((waiting, idle)) => readiness.degrade(
                    CONDITION,
                    format!(
                        "{waiting} event(s) waiting for the Kafka broker's acknowledgement for {} s ({}); they are delivered when it is back",
                        idle.as_secs(),
                        self.inner.cfg.brokers
                    ),
                ),
                None => readiness.restore(CONDITION),
            }
        }
    }

    /// Waits until every queued message is delivered (used on shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer().flush(Timeout::After(timeout)) {
            tracing::warn!(error = %e, "producer flush incomplete");
        }
    }
}
