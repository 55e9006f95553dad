//! The at-least-once consumer against the real broker (`KEFU_TEST_BROKERS`, default
//! 127.0.0.1:19092): poison dead-lettered at once with failure headers, transient failures
//! retried until they succeed (the service not ready meanwhile), offsets committed on
//! shutdown, trace context in headers, no head-of-line blocking between partitions,
//! rebalances that drain, and dead letters listed and replayed once.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use kefu_runtime::{
    config::LogFormat,
    kafka::{
        self, ConsumerSpec, Delivery, HandleError, Handled, Handler, KafkaConfig, Producer, dlq,
        headers, topics,
    },
    metrics::Metrics,
    readiness::Readiness,
    telemetry,
};
use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
    message::Headers,
};
use tokio_util::sync::CancellationToken;

/// A test's own topics (random prefix) on the test broker.
fn config_with(concurrency: usize, partitions: i32) -> KafkaConfig {
    KafkaConfig {
        session_timeout_ms: 6000,
        concurrency,
        ..KafkaConfig::new(
            std::env::var("KEFU_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into()),
            format!("rt-{}.", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            partitions,
        )
    }
}

fn config() -> KafkaConfig {
    config_with(4, 1)
}

/// Fails according to the payload: `ok`, `flaky` (fails once), `reject` (poison), `garbage`
/// (undecodable), `down` (transient failures for 30 s: more attempts than the consumer used
/// to allow before dead-lettering, 10).
#[derive(Default)]
struct Scripted {
    attempts: Mutex<HashMap<String, u32>>,
    first_seen: Mutex<HashMap<String, std::time::Instant>>,
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
        let since = *self
            .first_seen
            .lock()
            .unwrap()
            .entry(body.clone())
            .or_insert_with(std::time::Instant::now);
        match body.split(':').next().unwrap_or_default() {
            "flaky" if n == 1 => Err(HandleError::Transient(anyhow::anyhow!("db busy"))),
            "reject" => Err(HandleError::Rejected("unknown shop".into())),
            "garbage" => Err(HandleError::Undecodable("not an event".into())),
            "down" if since.elapsed() < Duration::from_secs(30) => Err(HandleError::Transient(
                anyhow::anyhow!("database unavailable"),
            )),
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
    handler: Arc<dyn Handler>,
    producer: &Producer,
    readiness: &Readiness,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let token = CancellationToken::new();
    let spec = ConsumerSpec::new(
        cfg.clone(),
        cfg.group("rt-test"),
        vec![cfg.topic(topics::INBOUND)],
        handler,
        producer.clone(),
        Metrics::new("rt-test").kafka,
        readiness.clone(),
    );
    let task = tokio::spawn(kafka::run_consumer(spec, token.clone()));
    (token, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_at_once_and_transient_failures_are_retried_until_they_clear() {
    let _telemetry = telemetry::init("rt-test", LogFormat::Text);
    let cfg = config();
    kafka::ensure_topics(&cfg).await.expect("topics");
    let metrics = Metrics::new("rt-test");
    let producer = Producer::new(&cfg, metrics.kafka.clone()).expect("producer");
    let topic = cfg.topic(topics::INBOUND);
    for body in ["ok:1", "flaky:2", "reject:3", "down:4", "garbage:5", "ok:6"] {
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
    let readiness = Readiness::new();
    let (token, task) = start(&cfg, handler.clone(), &producer, &readiness);
    // While an event fails for more than 10 s the consumer is not ready.
    wait_for("not ready while down:4 keeps failing", || {
        !readiness.is_ready()
    })
    .await;
    let reasons = readiness.reasons();
    assert!(
        reasons
            .iter()
            .any(|(c, r, _)| c.starts_with("handler") && r.contains("database unavailable")),
        "{reasons:?}"
    );
    wait_for("ok:6 handled", || {
        handler.done.lock().unwrap().contains(&"ok:6".to_string())
    })
    .await;
    assert!(readiness.is_ready(), "ready again once it succeeded");
    // Order is kept within a key; the flaky event succeeded on its second attempt, and the
    // event that failed for 30 s was never given up.
    assert_eq!(
        *handler.done.lock().unwrap(),
        ["ok:1", "flaky:2", "down:4", "ok:6"]
    );
    let attempts = handler.attempts.lock().unwrap().clone();
    assert_eq!(
        (
            attempts["flaky:2"],
            attempts["reject:3"],
            attempts["garbage:5"]
        ),
        (2, 1, 1),
        "poison is never retried"
    );
    assert!(attempts["down:4"] > 10, "{attempts:?}");
    assert_eq!(
        handler.traceparents.lock().unwrap().len(),
        attempts.values().sum::<u32>() as usize,
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
    assert!(dead["reject:3"][headers::DLQ_ERROR].contains("unknown shop"));
    assert_eq!(dead["reject:3"][headers::DLQ_TOPIC], topic);
    assert_eq!(dead["reject:3"][headers::DLQ_OFFSET], "2");
    assert_eq!(dead["garbage:5"][headers::DLQ_ERROR_KIND], "undecodable");
    assert!(
        !dead.contains_key("down:4"),
        "a transient failure is never dead-lettered"
    );

    // A restarted consumer in the same group resumes after the committed offsets.
    producer
        .send_raw(&topic, Some("k"), b"ok:7", &[])
        .await
        .expect("produce");
    let again = Arc::new(Scripted::default());
    let (token, task) = start(&cfg, again.clone(), &producer, &readiness);
    wait_for("ok:7 handled", || {
        again.done.lock().unwrap().contains(&"ok:7".to_string())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        *again.done.lock().unwrap(),
        ["ok:7"],
        "nothing handled twice after a clean stop"
    );
    token.cancel();
    task.await.unwrap().unwrap();

    // `kefu dlq list|replay`: the two dead letters are listed with why they failed; a replay
    // re-publishes them to the original topic once, a second replay skips them.
    let letters = dlq::list(&cfg, topics::INBOUND, &dlq::Filter::default())
        .await
        .expect("list");
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(
        letters
            .iter()
            .all(|l| l.original_topic == topic && !l.replayed)
    );
    let none = dlq::Filter {
        shop: Some("no-such-shop".into()),
        ..Default::default()
    };
    assert!(
        dlq::list(&cfg, topics::INBOUND, &none)
            .await
            .unwrap()
            .is_empty()
    );
    let first = dlq::replay(&cfg, &producer, topics::INBOUND, &dlq::Filter::default())
        .await
        .expect("replay");
    assert_eq!((first.replayed, first.skipped), (2, 0));
    let second = dlq::replay(&cfg, &producer, topics::INBOUND, &dlq::Filter::default())
        .await
        .expect("replay again");
    assert_eq!((second.replayed, second.skipped), (0, 2));
    let replayed = Arc::new(Scripted::default());
    let (token, task) = start(&cfg, replayed.clone(), &producer, &readiness);
    wait_for("the replayed events handled", || {
        let a = replayed.attempts.lock().unwrap();
        a.contains_key("reject:3") && a.contains_key("garbage:5")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        replayed.attempts.lock().unwrap().len(),
        2,
        "only the two replayed events"
    );
    token.cancel();
    task.await.unwrap().unwrap();
}

/// Blocks events whose payload starts with `block` until released; records the rest.
#[derive(Default)]
struct Gate {
    released: tokio::sync::Notify,
    open: std::sync::atomic::AtomicBool,
    done: Mutex<Vec<(i32, String)>>,
}

#[async_trait]
impl Handler for Gate {
    async fn handle(&self, d: &Delivery) -> Result<Handled, HandleError> {
        let body = String::from_utf8_lossy(&d.payload).into_owned();
        while body.starts_with("block") && !self.open.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::select! {
                _ = self.released.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        self.done.lock().unwrap().push((d.partition, body));
        Ok(Handled::Done)
    }
}

async fn produce_to(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    partition: i32,
    key: &str,
    body: &str,
) {
    producer
        .send(
            rdkafka::producer::FutureRecord::to(topic)
                .partition(partition)
                .key(key)
                .payload(body),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
}

/// One partition whose events cannot finish holds back neither another partition nor, once
/// it has `concurrency` events in flight, the client (it is paused at the broker instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_partition_does_not_hold_back_another() {
    let cfg = config_with(2, 2);
    kafka::ensure_topics(&cfg).await.expect("topics");
    let topic = cfg.topic(topics::INBOUND);
    let raw: rdkafka::producer::FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .create()
        .unwrap();
    // More stuck events than the consumer used to queue before it stopped reading at all.
    let sends = (0..120)
        .map(|i| (0, format!("c{}", i % 20), format!("block:{i}")))
        .chain((0..20).map(|i| (1, format!("d{i}"), format!("free:{i}"))))
        .collect::<Vec<_>>();
    for chunk in sends.chunks(20) {
        futures::future::join_all(
            chunk
                .iter()
                .map(|(p, k, b)| produce_to(&raw, &topic, *p, k, b)),
        )
        .await;
    }
    let gate = Arc::new(Gate::default());
    let metrics = Metrics::new("rt-test");
    let producer = Producer::new(&cfg, metrics.kafka.clone()).expect("producer");
    let (token, task) = start(&cfg, gate.clone(), &producer, &Readiness::new());
    wait_for("partition 1 handled while partition 0 is stuck", || {
        gate.done
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| *p == 1)
            .count()
            == 20
    })
    .await;
    assert!(gate.done.lock().unwrap().iter().all(|(p, _)| *p == 1));
    gate.open.store(true, std::sync::atomic::Ordering::SeqCst);
    gate.released.notify_waiters();
    wait_for("partition 0 drains once released", || {
        gate.done
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| *p == 0)
            .count()
            == 120
    })
    .await;
    // Within a key, offset order.
    let done = gate.done.lock().unwrap().clone();
    for key in 0..20 {
        let of_key: Vec<usize> = done
            .iter()
            .filter_map(|(_, b)| b.strip_prefix("block:")?.parse::<usize>().ok())
            .filter(|i| i % 20 == key)
            .collect();
        assert!(
            of_key.windows(2).all(|w| w[0] < w[1]),
            "key c{key}: {of_key:?}"
        );
    }
    token.cancel();
    task.await.unwrap().unwrap();
}

/// Who handled which event: (member, partition, offset).
type HandledBy = Arc<Mutex<Vec<(&'static str, i32, i64)>>>;

/// Records which member handled which event, slowly.
struct Member {
    name: &'static str,
    log: HandledBy,
}

#[async_trait]
impl Handler for Member {
    async fn handle(&self, d: &Delivery) -> Result<Handled, HandleError> {
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.log
            .lock()
            .unwrap()
            .push((self.name, d.partition, d.offset));
        Ok(Handled::Done)
    }
}

/// A second member joining takes partitions only after the first drained and committed them:
/// no event is handled by both, and every event is handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalances_drain_before_a_partition_changes_hands() {
    let cfg = config_with(2, 2);
    kafka::ensure_topics(&cfg).await.expect("topics");
    let topic = cfg.topic(topics::INBOUND);
    let raw: rdkafka::producer::FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .create()
        .unwrap();
    for i in 0..60 {
        produce_to(&raw, &topic, i % 2, &format!("k{i}"), &format!("e{i}")).await;
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let producer = Producer::new(&cfg, Metrics::new("rt-test").kafka).expect("producer");
    let a = Arc::new(Member {
        name: "a",
        log: log.clone(),
    });
    let (token_a, task_a) = start(&cfg, a, &producer, &Readiness::new());
    wait_for("a is consuming", || log.lock().unwrap().len() >= 6).await;
    let b = Arc::new(Member {
        name: "b",
        log: log.clone(),
    });
    let (token_b, task_b) = start(&cfg, b, &producer, &Readiness::new());
    wait_for("every event handled", || {
        let l = log.lock().unwrap();
        l.iter()
            .map(|(_, p, o)| (*p, *o))
            .collect::<std::collections::HashSet<_>>()
            .len()
            == 60
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let l = log.lock().unwrap().clone();
    let mut seen = std::collections::HashMap::new();
    for (member, p, o) in &l {
        if let Some(first) = seen.insert((*p, *o), *member) {
            panic!("{p}/{o} handled by {first} and again by {member}: {l:?}");
        }
    }
    token_a.cancel();
    token_b.cancel();
    task_a.await.unwrap().unwrap();
    task_b.await.unwrap().unwrap();
}
