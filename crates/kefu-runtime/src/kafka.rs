//! Kafka plumbing in the Vector / rdkafka at-least-once style.
//!
//! * [`Producer`]: idempotent, `acks=all`; `send` returns once the broker acknowledged.
//! * [`run_consumer`]: `enable.auto.offset.store=false`; an event's offset is stored only after
//!   its [`Handler`] returned, i.e. after its effect is durable (DB commit or downstream produce
//!   acknowledged). Stored offsets are committed every second and on shutdown.
//! * Failing events are retried with exponential backoff; undecodable events, rejected events
//!   and events that still fail after the last attempt go to `<topic>.dlq` with failure
//!   headers, and the consumer moves on.
//! * W3C trace context travels in the `traceparent` / `tracestate` headers.
use std::{collections::HashMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use rdkafka::{
    ClientConfig, Message,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{CommitMode, Consumer, StreamConsumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, Headers, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer as _},
    util::Timeout,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{
    config::{RuntimeArgs, SecurityProtocol},
    metrics::{KafkaMetrics, OutcomeLabels, TopicLabels},
    telemetry,
};

/// Topic names (without the optional prefix). Rule: `kefu.<domain>.<event>.v<N>`.
pub mod topics {
    /// Customer messages accepted by session-router (key: conversation id).
    pub const INBOUND: &str = "kefu.conversation.inbound.v1";
    /// Messages with their language detected / translated.
    pub const NORMALIZED: &str = "kefu.conversation.normalized.v1";
    /// Messages with intent, confidence and entities.
    pub const CLASSIFIED: &str = "kefu.conversation.classified.v1";
    /// Messages the dialogue policy gave to the assistant.
    pub const ASSIST_REQUESTS: &str = "kefu.assist.requests.v1";
    /// Messages the dialogue policy gave to human agents.
    pub const ESCALATIONS: &str = "kefu.ticket.escalations.v1";
    /// Replies as written (bot, agent, system).
    pub const OUTBOUND: &str = "kefu.conversation.outbound.v1";
    /// Replies in the customer's language, ready for delivery.
    pub const REPLIES: &str = "kefu.conversation.replies.v1";
    /// Ticket state changes (opened, agent replied, handed back, closed).
    pub const TICKET_UPDATES: &str = "kefu.ticket.updates.v1";
    /// Order changes from connectors.
    pub const ORDERS: &str = "kefu.commerce.orders.v1";
    /// Shipment / logistics changes from connectors.
    pub const SHIPMENTS: &str = "kefu.commerce.shipments.v1";

    /// Every topic of the mesh (each also has a `.dlq` twin).
    pub const ALL: &[&str] = &[
        INBOUND,
        NORMALIZED,
        CLASSIFIED,
        ASSIST_REQUESTS,
        ESCALATIONS,
        OUTBOUND,
        REPLIES,
        TICKET_UPDATES,
        ORDERS,
        SHIPMENTS,
    ];

    /// Suffix of dead-letter topics.
    pub const DLQ_SUFFIX: &str = ".dlq";
}

/// Header names Kefu sets.
pub mod headers {
    pub const DLQ_TOPIC: &str = "kefu-dlq-original-topic";
    pub const DLQ_PARTITION: &str = "kefu-dlq-original-partition";
    pub const DLQ_OFFSET: &str = "kefu-dlq-original-offset";
    pub const DLQ_ERROR: &str = "kefu-dlq-error";
    pub const DLQ_ERROR_KIND: &str = "kefu-dlq-error-kind";
    pub const DLQ_ATTEMPTS: &str = "kefu-dlq-attempts";
    pub const DLQ_GROUP: &str = "kefu-dlq-consumer-group";
    pub const DLQ_FAILED_AT: &str = "kefu-dlq-failed-at";
}

/// librdkafka security properties (`security.protocol`, SASL, TLS). Debug output hides values,
/// which include the SASL password.
#[derive(Clone, Default)]
pub struct Security(pub Vec<(&'static str, String)>);

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| *k))
            .finish()
    }
}

impl Security {
    /// From the runtime flags; a SASL protocol without credentials is a configuration error.
    pub fn from_args(a: &RuntimeArgs) -> Result<Security, String> {
        let p = a.kafka_security_protocol;
        let mut props = vec![("security.protocol", p.as_str().to_owned())];
        if p.sasl() {
            let (Some(user), Some(pass)) = (&a.kafka_sasl_username, &a.kafka_sasl_password) else {
                return Err(format!(
                    "security protocol {} needs KEFU_KAFKA_SASL_USERNAME and KEFU_KAFKA_SASL_PASSWORD",
                    p.as_str()
                ));
            };
            props.push(("sasl.mechanism", a.kafka_sasl_mechanism.clone()));
            props.push(("sasl.username", user.clone()));
            props.push(("sasl.password", pass.clone()));
        }
        if let Some(ca) = &a.kafka_ssl_ca_location {
            if !matches!(p, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl) {
                return Err(
                    "KEFU_KAFKA_SSL_CA_LOCATION needs security protocol ssl or sasl_ssl".into(),
                );
            }
            props.push(("ssl.ca.location", ca.display().to_string()));
        }
        Ok(Security(props))
    }
}

/// Connection settings shared by producers, consumers and the admin client.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    pub brokers: String,
    pub prefix: String,
    pub partitions: i32,
    /// Replication factor of created topics.
    pub replication: i32,
    /// Events handled at once per consumer (different conversations; one conversation's
    /// events are always handled in order).
    pub concurrency: usize,
    /// `fetch.wait.max.ms` of consumers.
    pub fetch_wait_ms: u32,
    pub security: Security,
    pub session_timeout_ms: u32,
    pub max_attempts: u32,
    /// Whether failing events go to `<topic>.dlq`. Observers (metrics) turn this off and retry
    /// until the failure clears, so their own trouble never lands in the shared dead letters.
    pub dead_letter: bool,
}

impl From<&RuntimeArgs> for KafkaConfig {
    fn from(a: &RuntimeArgs) -> Self {
        Self {
            brokers: a.kafka_brokers.clone(),
            prefix: a.topic_prefix.clone(),
            partitions: a.topic_partitions,
            replication: a.topic_replication,
            concurrency: a.consumer_concurrency as usize,
            fetch_wait_ms: a.kafka_fetch_wait_ms,
            security: Security::from_args(a).unwrap_or_else(|e| crate::config::config_error(e)),
            session_timeout_ms: a.kafka_session_timeout_ms,
            max_attempts: a.handler_max_attempts,
            dead_letter: true,
        }
    }
}

impl KafkaConfig {
    /// Settings for tools and tests: plaintext, replication 1, the runtime's defaults for the
    /// rest (the services build theirs from [`RuntimeArgs`]).
    pub fn new(brokers: impl Into<String>, prefix: impl Into<String>, partitions: i32) -> Self {
        Self {
            brokers: brokers.into(),
            prefix: prefix.into(),
            partitions,
            replication: 1,
            security: Security::default(),
            concurrency: DEFAULT_LANES as usize,
            fetch_wait_ms: 100,
            session_timeout_ms: 10_000,
            max_attempts: 10,
            dead_letter: true,
        }
    }

    /// Full topic name with the configured prefix.
    pub fn topic(&self, base: &str) -> String {
        format!("{}{}", self.prefix, base)
    }

    /// Consumer group id for a service.
    pub fn group(&self, service: &str) -> String {
        format!("{}kefu-{service}", self.prefix)
    }

    fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("broker.address.family", "v4")
            .set("socket.keepalive.enable", "true");
        for (k, v) in &self.security.0 {
            c.set(*k, v);
        }
        c
    }
}

/// Creates every topic of the mesh and its `.dlq` twin when missing.
pub async fn ensure_topics(cfg: &KafkaConfig) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = cfg.client().create()?;
    let names: Vec<String> = topics::ALL
        .iter()
        .flat_map(|t| {
            [
                cfg.topic(t),
                format!("{}{}", cfg.topic(t), topics::DLQ_SUFFIX),
            ]
        })
        .collect();
    let new: Vec<NewTopic<'_>> = names
        .iter()
        .map(|n| NewTopic::new(n, cfg.partitions, TopicReplication::Fixed(cfg.replication)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let results = admin
        .create_topics(&new, &opts)
        .await
        .map_err(|e| anyhow::anyhow!("creating topics on {}: {e}", cfg.brokers))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}

/// An idempotent producer; cheap to clone.
#[derive(Clone)]
pub struct Producer {
    inner: FutureProducer,
    metrics: KafkaMetrics,
}

impl Producer {
    pub fn new(cfg: &KafkaConfig, metrics: KafkaMetrics) -> anyhow::Result<Self> {
        let inner: FutureProducer = cfg
            .client()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "30000")
            .create()?;
        Ok(Self { inner, metrics })
    }

    /// Sends raw bytes and waits for the broker's acknowledgement. `QueueFull` back-pressure
    /// is absorbed by waiting up to the message timeout.
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
        match self
            .inner
            .send(record, Timeout::After(Duration::from_secs(30)))
            .await
        {
            Ok(_) => {
                self.metrics.produced.get_or_create(&labels).inc();
                Ok(())
            }
            Err((e, _)) => {
                self.metrics.produce_errors.get_or_create(&labels).inc();
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

    /// Waits until every queued message is delivered (used on shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.inner.flush(Timeout::After(timeout)) {
            tracing::warn!(error = %e, "producer flush incomplete");
        }
    }
}

/// One consumed event, owned.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Delivery {
    /// Decodes the payload as `M`; a failure makes the event undecodable (dead-lettered).
    pub fn decode<M: prost::Message + Default>(&self) -> Result<M, HandleError> {
        M::decode(self.payload.as_slice()).map_err(|e| HandleError::Undecodable(e.to_string()))
    }

    fn trace_headers(&self) -> HashMap<String, String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "traceparent" || k == "tracestate")
            .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.clone()).ok()?)))
            .collect()
    }
}

/// What a handler did with an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// Its effect is durable.
    Done,
    /// It had been handled before (idempotent replay); nothing was changed.
    Duplicate,
}

/// Why an event could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Not a valid event for this topic; dead-lettered at once.
    #[error("undecodable: {0}")]
    Undecodable(String),
    /// Valid but unacceptable (e.g. fails validation); dead-lettered at once.
    #[error("rejected: {0}")]
    Rejected(String),
    /// May succeed later (database or broker unavailable); retried, then dead-lettered.
    #[error("transient: {0:#}")]
    Transient(#[from] anyhow::Error),
}

impl HandleError {
    fn kind(&self) -> &'static str {
        match self {
            HandleError::Undecodable(_) => "undecodable",
            HandleError::Rejected(_) => "rejected",
            HandleError::Transient(_) => "transient",
        }
    }
}

impl From<KafkaError> for HandleError {
    fn from(e: KafkaError) -> Self {
        HandleError::Transient(e.into())
    }
}

impl From<sea_orm::DbErr> for HandleError {
    fn from(e: sea_orm::DbErr) -> Self {
        HandleError::Transient(e.into())
    }
}

/// Handles one event. Return only once the event's effect is durable.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, delivery: &Delivery) -> Result<Handled, HandleError>;
}

/// Backoff before attempt `attempt + 1` (100 ms doubling, at most 5 s).
pub fn backoff(attempt: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << attempt.min(16));
    Duration::from_millis(ms.min(5_000))
}

/// Consumes `topics` as `group` until `shutdown` is cancelled. At-least-once: offsets are stored
/// only after the handler (or the dead-letter produce) succeeded.
pub async fn run_consumer(
    cfg: KafkaConfig,
    group: String,
    topic_names: Vec<String>,
    handler: Arc<dyn Handler>,
    producer: Producer,
    metrics: KafkaMetrics,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let consumer: StreamConsumer = cfg
        .client()
        .set("group.id", &group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", cfg.session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (cfg.session_timeout_ms / 4).max(250).to_string(),
        )
        .set("topic.metadata.refresh.interval.ms", "5000")
        // Also the rebalance timeout: how long the group waits for a member that died without
        // leaving (SIGKILL) before reassigning its partitions. librdkafka's default (300 s)
        // stalls a restarted consumer for minutes; 60 s still covers a handler's retries.
        .set("max.poll.interval.ms", "60000")
        // tansu answers every fetch only when this expires (it sleeps out the wait even when
        // data is there), so it is the per-hop latency and the broker's polling load.
        .set("fetch.wait.max.ms", cfg.fetch_wait_ms.to_string())
        .create()?;
    let names: Vec<&str> = topic_names.iter().map(String::as_str).collect();
    consumer.subscribe(&names)?;
    let lanes_n = cfg.concurrency.max(1);
    tracing::info!(%group, topics = ?topic_names, lanes = lanes_n, "consuming");

    // Events are handled by `lanes_n` lanes; the lane is chosen by (topic, partition, key), so
    // one conversation's events stay in order while different conversations run concurrently.
    // An offset is stored only when every earlier event of its partition is settled.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Settled>();
    let handler_stop = shutdown.child_token();
    let mut lanes = Vec::with_capacity(lanes_n);
    let mut lane_tasks = tokio::task::JoinSet::new();
    for _ in 0..lanes_n {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Delivery>(LANE_QUEUE);
        lanes.push(tx);
        let (cfg, group, handler, producer, metrics, done_tx, stop) = (
            cfg.clone(),
            group.clone(),
            handler.clone(),
            producer.clone(),
            metrics.clone(),
            done_tx.clone(),
            handler_stop.clone(),
        );
        lane_tasks.spawn(async move {
            while let Some(delivery) = rx.recv().await {
                if stop.is_cancelled() {
                    break; // left unsettled: delivered again after restart
                }
                let span = tracing::info_span!(
                    "consume",
                    topic = %delivery.topic,
                    partition = delivery.partition,
                    offset = delivery.offset
                );
                telemetry::set_parent_from(&span, &delivery.trace_headers());
                let settled = process(
                    &cfg, &group, &delivery, &*handler, &producer, &metrics, &stop,
                )
                .instrument(span)
                .await;
                if !settled {
                    break;
                }
                let _ = done_tx.send(Settled {
                    topic: delivery.topic,
                    partition: delivery.partition,
                    offset: delivery.offset,
                });
            }
        });
    }
    drop(done_tx);
    let mut pending: HashMap<(String, i32), std::collections::BTreeMap<i64, bool>> = HashMap::new();

    loop {
        let msg = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(s) = done_rx.recv() => {
                settle(&consumer, &mut pending, s);
                continue;
            }
            m = consumer.recv() => m,
        };
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, %group, "consumer error");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let delivery = Delivery {
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
            key: msg.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: msg.payload().unwrap_or_default().to_vec(),
            headers: msg
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                })
                .unwrap_or_default(),
        };
        drop(msg);
        pending
            .entry((delivery.topic.clone(), delivery.partition))
            .or_default()
            .insert(delivery.offset, false);
        let lane = &lanes[lane_of(&delivery, lanes_n)];
        // A full lane applies back-pressure: settle what finished while waiting for room.
        let mut item = Some(delivery);
        while let Some(d) = item.take() {
            match lane.try_send(d) {
                Ok(()) => {}
                Err(tokio::sync::mpsc::error::TrySendError::Full(d)) => {
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => break,
                        Some(s) = done_rx.recv() => settle(&consumer, &mut pending, s),
                        permit = lane.reserve() => {
                            if let Ok(p) = permit {
                                p.send(d);
                                continue;
                            }
                        }
                    }
                    item = Some(d);
                    if shutdown.is_cancelled() {
                        break;
                    }
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
    }
    // Drain: lanes finish the event in hand (retries are cut short by the shutdown token),
    // queued events are left for redelivery, and the settled prefix of each partition is stored.
    drop(lanes);
    let drained = async { while lane_tasks.join_next().await.is_some() {} };
    tokio::pin!(drained);
    loop {
        tokio::select! {
            _ = &mut drained => break,
            Some(s) = done_rx.recv() => settle(&consumer, &mut pending, s),
        }
    }
    while let Ok(s) = done_rx.try_recv() {
        settle(&consumer, &mut pending, s);
    }
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!(error = %e, %group, "final offset commit failed"),
    }
    producer.flush(Duration::from_secs(5));
    tracing::info!(%group, "consumer stopped");
    Ok(())
}

/// Lanes per consumer unless `KEFU_CONSUMER_CONCURRENCY` says otherwise. A stage handles about
/// lanes ÷ (time per event) events/s; 16 could not drain a burst at 100 msg/s
/// (docs/performance.md, bottleneck 10).
pub const DEFAULT_LANES: u16 = 64;

/// Events a lane may hold before the consumer waits for room.
const LANE_QUEUE: usize = 32;

/// An event whose handling finished (handled, duplicate or dead-lettered).
struct Settled {
    topic: String,
    partition: i32,
    offset: i64,
}

/// The lane of an event: by topic, partition and key (the conversation), so one key's events
/// are handled one after another in offset order.
fn lane_of(d: &Delivery, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    d.topic.hash(&mut h);
    d.partition.hash(&mut h);
    d.key.hash(&mut h);
    (h.finish() % lanes as u64) as usize
}

/// Marks an event settled and stores the offset after the longest settled prefix of its
/// partition (at-least-once: nothing after an unsettled event is committed).
fn settle(
    consumer: &StreamConsumer,
    pending: &mut HashMap<(String, i32), std::collections::BTreeMap<i64, bool>>,
    s: Settled,
) {
    let Some(offsets) = pending.get_mut(&(s.topic.clone(), s.partition)) else {
        return;
    };
    if let Some(done) = offsets.get_mut(&s.offset) {
        *done = true;
    }
    let mut last = None;
    while let Some((&offset, &done)) = offsets.first_key_value() {
        if !done {
            break;
        }
        offsets.pop_first();
        last = Some(offset);
    }
    if let Some(offset) = last
        && let Err(e) = consumer.store_offset(&s.topic, s.partition, offset)
    {
        tracing::debug!(error = %e, topic = %s.topic, partition = s.partition, "storing offset failed (partition revoked?); the event may be redelivered");
    }
}

/// Handles one delivery with retries and dead-lettering. Returns false only when shutdown
/// interrupted it before the event was settled.
async fn process(
    cfg: &KafkaConfig,
    group: &str,
    delivery: &Delivery,
    handler: &dyn Handler,
    producer: &Producer,
    metrics: &KafkaMetrics,
    shutdown: &CancellationToken,
) -> bool {
    let started = std::time::Instant::now();
    let mut attempt = 0u32;
    let outcome = loop {
        attempt += 1;
        match handler.handle(delivery).await {
            Ok(Handled::Done) => break "ok",
            Ok(Handled::Duplicate) => break "duplicate",
            // Events on a dead-letter topic are never dead-lettered again (there is no
            // `.dlq.dlq`), nor are those of consumers that opted out: retry until it clears.
            Err(e) if !cfg.dead_letter || delivery.topic.ends_with(topics::DLQ_SUFFIX) => {
                tracing::warn!(error = %e, attempt, "handling a dead letter failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(backoff(attempt)) => {}
                }
            }
            Err(e @ HandleError::Transient(_)) if attempt < cfg.max_attempts => {
                metrics
                    .consumed
                    .get_or_create(&OutcomeLabels {
                        topic: delivery.topic.clone(),
                        outcome: "retried".into(),
                    })
                    .inc();
                tracing::warn!(error = %e, attempt, "handling failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(backoff(attempt)) => {}
                }
            }
            Err(e) => {
                if !dead_letter(group, delivery, &e, attempt, producer, shutdown).await {
                    return false;
                }
                break "dead_lettered";
            }
        }
    };
    metrics
        .handle_seconds
        .get_or_create(&TopicLabels {
            topic: delivery.topic.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .consumed
        .get_or_create(&OutcomeLabels {
            topic: delivery.topic.clone(),
            outcome: outcome.into(),
        })
        .inc();
    true
}

/// Sends the original event to `<topic>.dlq` with failure headers, retrying until the broker
/// acknowledges (or shutdown). Returns whether it was written.
async fn dead_letter(
    group: &str,
    d: &Delivery,
    err: &HandleError,
    attempts: u32,
    producer: &Producer,
    shutdown: &CancellationToken,
) -> bool {
    let dlq = format!("{}{}", d.topic, topics::DLQ_SUFFIX);
    let mut hs: Vec<(String, Vec<u8>)> = d
        .headers
        .iter()
        .filter(|(k, _)| !k.starts_with("kefu-dlq-"))
        .cloned()
        .collect();
    let error_text: String = err.to_string().chars().take(2000).collect();
    hs.extend([
        (headers::DLQ_TOPIC.into(), d.topic.clone().into_bytes()),
        (
            headers::DLQ_PARTITION.into(),
            d.partition.to_string().into_bytes(),
        ),
        (
            headers::DLQ_OFFSET.into(),
            d.offset.to_string().into_bytes(),
        ),
        (headers::DLQ_ERROR.into(), error_text.clone().into_bytes()),
        (
            headers::DLQ_ERROR_KIND.into(),
            err.kind().as_bytes().to_vec(),
        ),
        (
            headers::DLQ_ATTEMPTS.into(),
            attempts.to_string().into_bytes(),
        ),
        (headers::DLQ_GROUP.into(), group.as_bytes().to_vec()),
        (
            headers::DLQ_FAILED_AT.into(),
            chrono::Utc::now().to_rfc3339().into_bytes(),
        ),
    ]);
    let mut tries = 0;
    loop {
        match producer
            .send_raw(&dlq, d.key.as_deref(), &d.payload, &hs)
            .await
        {
            Ok(()) => {
                tracing::error!(
                    topic = %d.topic, partition = d.partition, offset = d.offset,
                    kind = err.kind(), error = %error_text, attempts, dlq = %dlq,
                    "event dead-lettered"
                );
                return true;
            }
            Err(e) => {
                tries += 1;
                tracing::error!(error = %e, dlq = %dlq, "writing to dead-letter topic failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return false,
                    _ = tokio::time::sleep(backoff(tries)) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }

    #[test]
    fn names_use_prefix() {
        let cfg = KafkaConfig::new("127.0.0.1:1", "t1.", 1);
        assert_eq!(
            cfg.topic(topics::INBOUND),
            "t1.kefu.conversation.inbound.v1"
        );
        assert_eq!(cfg.group("ticket"), "t1.kefu-ticket");
    }
}
