//! Kafka plumbing in the Vector / rdkafka at-least-once style.
//!
//! * [`Producer`] ([`producer`]): idempotent, `acks=all`; `send` returns once the broker
//!   acknowledged, however long it was away; a fatally failed producer is replaced.
//! * [`run_consumer`] ([`consumer`]): a task per assigned partition; an event's offset is
//!   stored only after its [`Handler`] returned, i.e. after its effect is durable (DB commit or
//!   downstream produce acknowledged); rebalances drain before a partition is given up.
//! * Poison events (undecodable, rejected) go to `<topic>.dlq` at once with failure headers;
//!   transient failures are retried without limit while the service reports itself not ready.
//!   `kefu dlq list|replay` brings dead letters back ([`dlq`]).
//! * W3C trace context travels in the `traceparent` / `tracestate` headers.
use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use rdkafka::{
    ClientConfig, Message,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    error::{KafkaError, RDKafkaErrorCode},
    message::{BorrowedMessage, Headers},
};
use tokio_util::sync::CancellationToken;

use crate::config::{RuntimeArgs, SecurityProtocol};

pub mod consumer;
pub mod dlq;
pub mod producer;

pub use consumer::{ConsumerSpec, run_consumer};
pub use producer::Producer;

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

    /// The replay ledger: one record per dead letter `kefu dlq replay` re-published (key:
    /// `<dlq topic>/<partition>/<offset>`), so a second replay skips it.
    pub const DLQ_REPLAYS: &str = "kefu.dlq.replays.v1";
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
    /// On a replayed event: the dead letter it came from (`<dlq topic>/<partition>/<offset>`).
    pub const REPLAY_OF: &str = "kefu-replay-of";
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
    /// Whether poison events go to `<topic>.dlq`. Observers (metrics) turn this off and retry
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

    pub(crate) fn client(&self) -> ClientConfig {
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
        .chain([cfg.topic(topics::DLQ_REPLAYS)])
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
    /// An owned copy of a consumed message.
    pub(crate) fn from_message(msg: &BorrowedMessage<'_>) -> Self {
        Self {
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
        }
    }

    /// Decodes the payload as `M`; a failure makes the event undecodable (dead-lettered).
    pub fn decode<M: prost::Message + Default>(&self) -> Result<M, HandleError> {
        M::decode(self.payload.as_slice()).map_err(|e| HandleError::Undecodable(e.to_string()))
    }

    pub(crate) fn trace_headers(&self) -> HashMap<String, String> {
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
    /// May succeed later (database or broker unavailable); retried until it does.
    #[error("transient: {0:#}")]
    Transient(#[from] anyhow::Error),
}

impl HandleError {
    pub fn kind(&self) -> &'static str {
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

/// Events in flight per partition unless `KEFU_CONSUMER_CONCURRENCY` says otherwise. A stage
/// handles about this ÷ (time per event) events/s; 16 could not drain a burst at 100 msg/s
/// (docs/performance.md, bottleneck 10).
pub const DEFAULT_LANES: u16 = 64;

/// Sends the original event to `<topic>.dlq` with failure headers, retrying until the broker
/// acknowledges (or shutdown). Returns whether it was written.
pub(crate) async fn dead_letter(
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
