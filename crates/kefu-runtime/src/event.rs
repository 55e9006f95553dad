//! Event metadata and deterministic ids.
//!
//! A stage derives the id of the event it produces from the id of the event it consumed
//! ([`derive_id`]), so redelivering an input after a crash produces a byte-identical output
//! event and every downstream consumer can dedupe on `event_id`.
use kefu_proto::events::v1::EventMeta;
use uuid::Uuid;

const NAMESPACE: Uuid = Uuid::from_u128(0x6b65_6675_2d65_7665_6e74_2d69_6473_0001);

/// A fresh random id (for events that start a flow).
/// `MessageEvent.route_reason` of a message the bot may answer only from the shop's knowledge:
/// the classifier was not confident, so no order is looked up or acted on and no intent
/// template is used; the knowledge service answers, or a person does.
pub const ROUTE_KNOWLEDGE_ONLY: &str = "low confidence: shop knowledge only";

pub fn new_id() -> String {
    Uuid::new_v4().to_string()
}

/// The id of the event that `stage` derives from `cause`; stable across retries.
pub fn derive_id(cause: &str, stage: &str) -> String {
    Uuid::new_v5(&NAMESPACE, format!("{cause}/{stage}").as_bytes()).to_string()
}

/// Current time as a protobuf timestamp.
pub fn now() -> prost_types::Timestamp {
    timestamp(chrono::Utc::now())
}

pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// Metadata for the event `stage` produces in response to `cause` (same shop, message and
/// conversation; deterministic id; the cause's time, so the output is identical on replay).
pub fn derive_meta(cause: &EventMeta, stage: &str) -> EventMeta {
    EventMeta {
        event_id: derive_id(&cause.event_id, stage),
        shop_id: cause.shop_id.clone(),
        occurred_at: cause.occurred_at,
        causation_id: cause.event_id.clone(),
        message_id: cause.message_id.clone(),
        conversation_id: cause.conversation_id.clone(),
    }
}

/// Checks the fields every event must have; a violation makes the event undecodable.
pub fn check_meta(meta: Option<&EventMeta>) -> Result<&EventMeta, String> {
    let meta = meta.ok_or("missing meta")?;
    if meta.event_id.is_empty() {
        return Err("missing meta.event_id".into());
    }
    if meta.shop_id.is_empty() {
        return Err("missing meta.shop_id".into());
    }
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        assert_eq!(derive_id("a", "translate"), derive_id("a", "translate"));
        assert_ne!(derive_id("a", "translate"), derive_id("a", "classify"));
        assert_ne!(derive_id("a", "translate"), derive_id("b", "translate"));
    }

    #[test]
    fn derive_meta_keeps_correlation() {
        let cause = EventMeta {
            event_id: "e1".into(),
            shop_id: "s".into(),
            occurred_at: Some(now()),
            causation_id: String::new(),
            message_id: "m".into(),
            conversation_id: "c".into(),
        };
        let d = derive_meta(&cause, "x");
        assert_eq!(d.causation_id, "e1");
        assert_eq!((d.shop_id.as_str(), d.message_id.as_str()), ("s", "m"));
        assert!(check_meta(Some(&d)).is_ok());
        assert!(check_meta(None).is_err());
        assert!(check_meta(Some(&EventMeta::default())).is_err());
    }
}
