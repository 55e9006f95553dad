//! Dead letters: what `kefu dlq list|replay` reads and re-publishes.
//!
//! A dead letter is the original event (key, payload, headers) on `<topic>.dlq` with
//! `kefu-dlq-*` headers saying why it failed. [`replay`] re-publishes the letters that match a
//! filter to their original topic — the same bytes, so the same event ids, which every
//! handler dedupes — with a `kefu-replay-of` header, and records each in the replay ledger
//! (`kefu.dlq.replays.v1`) once the broker acknowledged it. A second replay skips what the
//! ledger holds; a crash between the two writes re-publishes a letter once more, which the
//! handlers' deduplication absorbs.
use std::{collections::HashSet, time::Duration};

use chrono::{DateTime, Utc};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    message::Headers,
};

use super::{KafkaConfig, Producer, headers, topics};

/// Every Kefu event has its `EventMeta` as field 1; the ledger and filters read only that.
#[derive(Clone, PartialEq, prost::Message)]
struct MetaOnly {
    #[prost(message, optional, tag = "1")]
    meta: Option<kefu_proto::events::v1::EventMeta>,
}

/// One dead letter.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    /// The dead-letter topic (`<topic>.dlq`), partition and offset.
    pub dlq: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    /// The original headers (without `kefu-dlq-*`).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Where it came from and why it failed.
    pub original_topic: String,
    pub kind: String,
    pub error: String,
    pub attempts: String,
    pub group: String,
    pub failed_at: Option<DateTime<Utc>>,
    /// From the event's metadata ("" when undecodable).
    pub shop_id: String,
    pub event_id: String,
    /// Already re-published by an earlier replay.
    pub replayed: bool,
}

impl DeadLetter {
    /// Its ledger key.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.dlq, self.partition, self.offset)
    }
}

/// Which dead letters a command acts on.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only letters that failed at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only letters of this shop.
    pub shop: Option<String>,
}

impl Filter {
    pub fn matches(&self, d: &DeadLetter) -> bool {
        self.since
            .is_none_or(|since| d.failed_at.is_some_and(|at| at >= since))
            && self.shop.as_deref().is_none_or(|s| d.shop_id == s)
    }
}

/// `--since`: an RFC 3339 time, or an age such as `90s`, `30m`, `2h`, `7d`.
pub fn parse_since(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n
        .parse()
        .map_err(|_| format!("'{s}' is neither an RFC 3339 time nor an age like 30m"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("'{s}': the unit must be s, m, h or d")),
    };
    Ok(now - chrono::Duration::seconds(secs))
}

/// The full name of the dead-letter topic of `topic` (a base name, with or without `.dlq`).
pub fn dlq_topic(cfg: &KafkaConfig, topic: &str) -> String {
    let base = topic.strip_suffix(topics::DLQ_SUFFIX).unwrap_or(topic);
    let full = if base.starts_with(&cfg.prefix) {
        base.to_owned()
    } else {
        cfg.topic(base)
    };
    format!("{full}{}", topics::DLQ_SUFFIX)
}

/// Reads every record of `topic` (all partitions, from the beginning up to the high
/// watermark at the time of the call).
fn read_all(cfg: &KafkaConfig, topic: &str) -> anyhow::Result<Vec<rdkafka::message::OwnedMessage>> {
    let consumer: BaseConsumer = cfg
        .client()
        .set(
            "group.id",
            format!("kefu-dlq-reader-{}", uuid::Uuid::new_v4().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let Some(t) = metadata.topics().first() else {
        return Ok(Vec::new());
    };
    if t.error().is_some() || t.partitions().is_empty() {
        anyhow::bail!("topic {topic} does not exist on {}", cfg.brokers);
    }
    let mut tpl = TopicPartitionList::new();
    let mut remaining = std::collections::HashMap::new();
    for p in t.partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
        if high > low {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            remaining.insert(p.id(), high);
        }
    }
    let mut out = Vec::new();
    if remaining.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !remaining.is_empty() {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("reading {topic} timed out");
        }
        let Some(m) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = m?;
        if let Some(&high) = remaining.get(&m.partition())
            && m.offset() >= high - 1
        {
            remaining.remove(&m.partition());
        }
        out.push(m.detach());
    }
    Ok(out)
}

fn header(m: &rdkafka::message::OwnedMessage, name: &str) -> String {
    m.headers()
        .and_then(|hs| {
            hs.iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
        .unwrap_or_default()
}

/// The ledger's keys: dead letters re-published before.
fn replayed(cfg: &KafkaConfig) -> anyhow::Result<HashSet<String>> {
    Ok(read_all(cfg, &cfg.topic(topics::DLQ_REPLAYS))?
        .into_iter()
        .filter_map(|m| m.key().map(|k| String::from_utf8_lossy(k).into_owned()))
        .collect())
}

/// The dead letters of `topic` matching `filter`, oldest first per partition.
pub async fn list(
    cfg: &KafkaConfig,
    topic: &str,
    filter: &Filter,
) -> anyhow::Result<Vec<DeadLetter>> {
    let cfg = cfg.clone();
    let dlq = dlq_topic(&cfg, topic);
    let filter = filter.clone();
    tokio::task::spawn_blocking(move || {
        let done = replayed(&cfg)?;
        let letters = read_all(&cfg, &dlq)?
            .into_iter()
            .map(|m| {
                let meta = m
                    .payload()
                    .and_then(|p| <MetaOnly as prost::Message>::decode(p).ok())
                    .and_then(|m| m.meta)
                    .unwrap_or_default();
                let mut d = DeadLetter {
                    dlq: dlq.clone(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers: m
                        .headers()
                        .map(|hs| {
                            hs.iter()
                                .filter(|h| !h.key.starts_with("kefu-dlq-"))
                                .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    original_topic: header(&m, headers::DLQ_TOPIC),
                    kind: header(&m, headers::DLQ_ERROR_KIND),
                    error: header(&m, headers::DLQ_ERROR),
                    attempts: header(&m, headers::DLQ_ATTEMPTS),
                    group: header(&m, headers::DLQ_GROUP),
                    failed_at: DateTime::parse_from_rfc3339(&header(&m, headers::DLQ_FAILED_AT))
                        .ok()
                        .map(|t| t.with_timezone(&Utc)),
                    shop_id: meta.shop_id,
                    event_id: meta.event_id,
                    replayed: false,
                };
                d.replayed = done.contains(&d.id());
                d
            })
            .filter(|d| filter.matches(d))
            .collect();
        Ok(letters)
    })
    .await?
}

/// What a replay did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Re-published now.
    pub replayed: usize,
    /// Matched but re-published by an earlier replay.
    pub skipped: usize,
}

/// Re-publishes the matching dead letters of `topic` to their original topic (module docs).
pub async fn replay(
    cfg: &KafkaConfig,
    producer: &Producer,
    topic: &str,
    filter: &Filter,
) -> anyhow::Result<Replayed> {
    let mut report = Replayed::default();
    let ledger = cfg.topic(topics::DLQ_REPLAYS);
    for d in list(cfg, topic, filter).await? {
        if d.replayed {
            report.skipped += 1;
            continue;
        }
        if d.original_topic.is_empty() {
            anyhow::bail!("{} has no {} header", d.id(), headers::DLQ_TOPIC);
        }
        let mut hs = d.headers.clone();
        hs.retain(|(k, _)| k != headers::REPLAY_OF);
        hs.push((headers::REPLAY_OF.into(), d.id().into_bytes()));
        producer
            .send_raw(&d.original_topic, d.key.as_deref(), &d.payload, &hs)
            .await?;
        let record = serde_json::json!({
            "replayed_at": Utc::now().to_rfc3339(),
            "to": d.original_topic,
            "event_id": d.event_id,
            "shop_id": d.shop_id,
        })
        .to_string();
        producer
            .send_raw(&ledger, Some(&d.id()), record.as_bytes(), &[])
            .await?;
        report.replayed += 1;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_and_ages() {
        let now = DateTime::parse_from_rfc3339("2026-11-30T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_since("2026-11-30T10:00:00+00:00", now).unwrap(),
            now - chrono::Duration::hours(2)
        );
        assert_eq!(
            parse_since("30m", now).unwrap(),
            now - chrono::Duration::minutes(30)
        );
        assert_eq!(
            parse_since("2d", now).unwrap(),
            now - chrono::Duration::days(2)
        );
        assert!(parse_since("soon", now).is_err());
        assert!(parse_since("5y", now).is_err());
    }

    #[test]
    fn dlq_names_take_base_or_full_names() {
        let cfg = KafkaConfig::new("x:1", "p.", 1);
        let want = "p.kefu.conversation.inbound.v1.dlq";
        assert_eq!(dlq_topic(&cfg, topics::INBOUND), want);
        assert_eq!(dlq_topic(&cfg, "kefu.conversation.inbound.v1.dlq"), want);
        assert_eq!(dlq_topic(&cfg, "p.kefu.conversation.inbound.v1"), want);
    }
}
