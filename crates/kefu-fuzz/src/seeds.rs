//! Seed inputs: the small hand-written files in `fuzz/seeds/<target>/` (committed; cargo-fuzz
//! reads them as a second corpus directory, `make test` starts from them) and the binary
//! model artefacts written by [`intent_model`] and [`shop_model`].
use std::path::PathBuf;

use kefu_intent::{
    Model, OUT_OF_SCOPE,
    shop::{Header, Recipe, Signal},
};

/// `fuzz/seeds/` of this checkout.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds")
}

/// The seed files of `target`, by name.
pub fn load(target: &str) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir().join(target)) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            Some((name, std::fs::read(e.path()).ok()?))
        })
        .collect();
    out.sort();
    out
}

/// A small valid intent model (3 labels, 2^8 buckets): `fuzz/seeds/intent_model/small.kim`.
pub fn intent_model() -> Vec<u8> {
    small_model().to_bytes()
}

fn small_model() -> Model {
    let labels = vec![
        "order_status".to_owned(),
        "refund".to_owned(),
        OUT_OF_SCOPE.to_owned(),
    ];
    let mut m = Model::new("fuzz-seed".into(), labels, 8).expect("has out_of_scope");
    for (i, w) in m.weights.iter_mut().enumerate() {
        *w = ((i * 37 % 19) as f32 - 9.0) / 10.0;
    }
    m.bias = vec![0.1, -0.2, 0.0];
    m.temperature = 1.3;
    m.threshold = 0.4;
    m
}

/// A small valid shop model, with an embedding head of `dim` dimensions when `dim > 0`:
/// `fuzz/seeds/shop_model/{ngram,head}.ksm`.
pub fn shop_model(dim: usize) -> Vec<u8> {
    let m = small_model();
    let k = m.labels.len();
    let header = Header {
        version: "fuzz-seed".into(),
        labels: m.labels.clone(),
        recipe: Recipe::default(),
        embedding_model: (dim > 0).then(|| "e5-small".to_owned()),
        dim,
        alpha: if dim > 0 { 0.5 } else { 0.0 },
        ngram_temperature: 1.0,
        embed_temperature: 0.5,
        signal: Signal::Margin,
        threshold: 0.2,
        ngram_threshold: 0.3,
        embed_threshold: 0.3,
        sure: 0.9,
    };
    let header = serde_json::to_vec(&header).expect("header serialises");
    let ngram = m.to_bytes();
    let mut out = b"KEFUSHP1".to_vec();
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&(ngram.len() as u32).to_le_bytes());
    out.extend_from_slice(&ngram);
    if dim > 0 {
        for i in 0..dim * (1 + 2 * k) + k {
            out.extend_from_slice(&((i % 7) as f32 / 7.0).to_le_bytes());
        }
    }
    out
}

/// One event of each kind consumed from Kafka, encoded: `fuzz/seeds/event_decoders/*.pb`.
pub fn events() -> Vec<(&'static str, Vec<u8>)> {
    use kefu_proto::{
        events::v1::{
            Classification, Entity, EventMeta, MessageEvent, ReplyEvent, ShipmentChanged,
            TicketEvent,
        },
        order::v1 as order,
    };
    use prost::Message;
    let meta = Some(EventMeta {
        event_id: "0b9d7c1e-4f5a-4c1e-9a59-3a2f7c0d1e2f".into(),
        shop_id: "shop-1".into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: 1_794_355_200,
            nanos: 5,
        }),
        causation_id: "c".into(),
        message_id: "m-1".into(),
        conversation_id: "conv-1".into(),
    });
    let message = MessageEvent {
        meta: meta.clone(),
        customer_id: "cust-1".into(),
        channel: "web".into(),
        channel_user_id: "u-1".into(),
        text: "我的订单 SF1234567890123 到哪了".into(),
        language: "zh".into(),
        language_confidence: 0.98,
        classification: Some(Classification {
            intent: "order_status".into(),
            confidence: 0.91,
            entities: vec![Entity {
                kind: "tracking_number".into(),
                value: "SF1234567890123".into(),
                start: 5,
                end: 20,
                detail: "SF".into(),
            }],
            model: "kefu-intent".into(),
        }),
        route: 1,
        recent_intents: vec!["greeting".into()],
        customer_keys: vec![order::CustomerKey {
            kind: "phone".into(),
            value: "13800138000".into(),
        }],
        ..Default::default()
    };
    let reply = ReplyEvent {
        meta: meta.clone(),
        reply_id: "r-1".into(),
        text: "您的包裹正在派送".into(),
        source: 1,
        intent: "order_status".into(),
        ..Default::default()
    };
    let ticket = TicketEvent {
        meta: meta.clone(),
        ticket_id: "t-1".into(),
        kind: 2,
        seq: 3,
        agent_id: "agent-7".into(),
        customer_id: "cust-1".into(),
    };
    let shipment = ShipmentChanged {
        meta,
        shipment: Some(order::Shipment {
            order_id: "A-1".into(),
            carrier: "SF".into(),
            tracking_number: "SF1234567890123".into(),
            status: "in_transit".into(),
            ..Default::default()
        }),
    };
    vec![
        ("message.pb", message.encode_to_vec()),
        ("reply.pb", reply.encode_to_vec()),
        ("ticket.pb", ticket.encode_to_vec()),
        ("shipment.pb", shipment.encode_to_vec()),
    ]
}
