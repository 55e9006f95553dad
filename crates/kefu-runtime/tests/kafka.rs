//! The at-least-once consumer against the real broker (`KEFU_TEST_BROKERS`, default
//! 127.0.0.1:19092): retries, dead-lettering with failure headers, offsets committed on
//! shutdown, trace context in headers.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use kefu_runtime::{
    config::LogFormat,
    kafka::{
        self, Delivery, HandleError, Handled, Handler, KafkaConfig, Producer, headers, topics,
    },
    metrics::Metrics,
    telemetry,
};
use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
    message::Headers,
};
use tokio_util::sync::CancellationToken;

fn config() -> KafkaConfig {
    KafkaConfig {
        session_timeout_ms: 6000,
        max_attempts: 3,
        concurrency: 4,
        ..KafkaConfig::new(
            std::env::var("KEFU_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into()),
            format!("rt-{}.", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            1,
        )
    }
}

/// Fails according to the payload: `ok`, `flaky` (fails once), `reject`, `broken` (always).
#[derive(Default)]
struct Scripted {
    attempts: Mutex<HashMap<String, u32>>,
    done: Mutex<Vec<String>>,
    traceparents: Mutex<Vec<String>>,
}

#[async_trait]
impl Handler for Scripted {
    async fn handle(&self, d: &Delivery) -> Result<Handled, HandleError> {
        let body = String::from_utf8_lossy(&d.payload).into_owned();
        let n = {
            let mut a = self.attempts.lock().unwrap();
            let n = a.entry(body.clone()).or_default();
            *n += 1;
            *n
        };
        if let Some((_, v)) = d.headers.iter().find(|(k, _)| k == "traceparent") {
            self.traceparents
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(v).into_owned());
        }
        match body.split(':').next().unwrap_or_default() {
            "flaky" if n == 1 => Err(HandleError::Transient(anyhow::anyhow!("db busy"))),
            "reject" => Err(HandleError::Rejected("unknown shop".into())),
            "broken" => Err(HandleError::Transient(anyhow::anyhow!("still down"))),
            _ => {
                self.done.lock().unwrap().push(body);
                Ok(Handled::Done)
            }
        }
    }
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn start(
    cfg: &KafkaConfig,
    handler: Arc<Scripted>,
    producer: &Producer,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let token = CancellationToken::new();
    let task = tokio::spawn(kafka::run_consumer(
        cfg.clone(),
        cfg.group("rt-test"),
        vec![cfg.topic(topics::INBOUND)],
        handler,
        producer.clone(),
        Metrics::new("rt-test").kafka,
        token.clone(),
    ));
    (token, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_once_with_retries_dead_letters_and_committed_offsets() {
    let _telemetry = telemetry::init("rt-test", LogFormat::Text);
    let cfg = config();
    kafka::ensure_topics(&cfg).await.expect("topics");
    let metrics = Metrics::new("rt-test");
    let producer = Producer::new(&cfg, metrics.kafka.clone()).expect("producer");
    let topic = cfg.topic(topics::INBOUND);
    for body in ["ok:1", "flaky:2", "reject:3", "broken:4", "ok:5"] {
        let span = tracing::info_span!("produce");
        let _g = span.enter();
        let hs: Vec<(String, Vec<u8>)> = telemetry::current_trace_headers()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        // Only the trace context, and no empty `tracestate`: every header is a row the broker
        // stores and reads back per record.
        let names: Vec<&str> = hs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            ["traceparent"],
            "trace headers of a span with no trace state"
        );
        producer
            .send_raw(&topic, Some("k"), body.as_bytes(), &hs)
            .await
            .expect("produce");
    }

    let handler = Arc::new(Scripted::default());
    let (token, task) = start(&cfg, handler.clone(), &producer);
    wait_for("ok:5 handled", || {
        handler.done.lock().unwrap().contains(&"ok:5".to_string())
    })
    .await;
    // Order is kept within the partition; the flaky event succeeded on its second attempt.
    assert_eq!(*handler.done.lock().unwrap(), ["ok:1", "flaky:2", "ok:5"]);
    let attempts = handler.attempts.lock().unwrap().clone();
    assert_eq!(
        (
            attempts["flaky:2"],
            attempts["reject:3"],
            attempts["broken:4"]
        ),
        (2, 1, 3)
    );
    assert_eq!(
        handler.traceparents.lock().unwrap().len(),
        8,
        "traceparent travels with every event"
    );

    // Graceful stop commits the stored offsets.
    token.cancel();
    task.await.unwrap().expect("consumer ends cleanly");

    // The dead-letter topic has the two failures with their headers.
    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("group.id", format!("{}dlq-reader", cfg.prefix))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    reader
        .subscribe(&[&format!("{topic}{}", topics::DLQ_SUFFIX)])
        .unwrap();
    let mut dead = HashMap::new();
    while dead.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(30), reader.recv())
            .await
            .expect("dead letters arrive")
            .expect("recv");
        let hs: HashMap<String, String> = m
            .headers()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        dead.insert(
            String::from_utf8_lossy(m.payload().unwrap()).into_owned(),
            hs,
        );
    }
    assert_eq!(dead["reject:3"][headers::DLQ_ERROR_KIND], "rejected");
    assert_eq!(dead["reject:3"][headers::DLQ_ATTEMPTS], "1");
    assert_eq!(dead["broken:4"][headers::DLQ_ERROR_KIND], "transient");
    assert_eq!(dead["broken:4"][headers::DLQ_ATTEMPTS], "3");
    assert!(dead["broken:4"][headers::DLQ_ERROR].contains("still down"));
    assert_eq!(dead["broken:4"][headers::DLQ_TOPIC], topic);
    assert_eq!(dead["broken:4"][headers::DLQ_OFFSET], "3");

    // A restarted consumer in the same group resumes after the committed offsets.
    producer
        .send_raw(&topic, Some("k"), b"ok:6", &[])
        .await
        .expect("produce");
    let again = Arc::new(Scripted::default());
    let (token, task) = start(&cfg, again.clone(), &producer);
    wait_for("ok:6 handled", || {
        again.done.lock().unwrap().contains(&"ok:6".to_string())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        *again.done.lock().unwrap(),
        ["ok:6"],
        "nothing handled twice after a clean stop"
    );
    token.cancel();
    task.await.unwrap().unwrap();
}
