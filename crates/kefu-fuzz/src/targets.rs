//! The fuzz bodies, one per input Kefu takes from outside (see [`crate::TARGETS`]).
//!
//! Each calls the code the service runs on that input, then checks what must hold of any
//! accepted value (a validated message is within its limits, a decoded event re-encodes to
//! the same bytes, an entity's span lies inside the text, …). Errors are fine; panics are not.
use std::sync::LazyLock;

use kefu_intent::{
    Model, entities, examples, features,
    shop::{self, ShopModel},
};
use kefu_knowledge::Bundle;
use kefu_order_sync::{
    api::MAX_LINE_BYTES,
    http as connectors,
    model::{Doc, OrderDoc, csv_rows, shopify},
};
use kefu_proto::events::v1::{
    EventMeta, MessageEvent, OrderChanged, ReplyEvent, ShipmentChanged, TicketEvent,
    TicketEventKind,
};
use kefu_runtime::{
    customer_key::CustomerKeys, event, grpc::ApiError, kafka::Delivery, validate::Violations,
};
use kefu_session_router::{core as router, http as ingress};
use serde_json::Value;

/// Turns an API error into what a caller would see (gRPC status with its details).
fn answer(e: ApiError) {
    let status = tonic::Status::from(e);
    let _ = status.message().len();
}

/// Session-router `POST /v1/messages`: the JSON body → a message, validated as `Send` does.
pub fn http_ingress(data: &[u8]) {
    let (msg, wait_ms, mut v) = match ingress::parse_message(data) {
        Ok(parsed) => parsed,
        Err(e) => return answer(e),
    };
    msg.validate(&mut v);
    let _ = msg.verified_keys();
    if v.is_empty() {
        // What validation lets through is within every documented limit.
        assert!(wait_ms <= router::MAX_WAIT_MS, "wait_ms {wait_ms} accepted");
        assert!(msg.text.len() <= router::MAX_TEXT_BYTES);
        assert!(msg.text.chars().count() <= router::MAX_TEXT_CHARS);
        assert!(!msg.text.contains('\0'));
        assert!(!msg.channel.is_empty() && msg.channel.len() <= 32);
        for id in [&msg.channel_user_id, &msg.channel_message_id] {
            assert!(!id.trim().is_empty() && id.chars().count() <= router::MAX_ID_CHARS);
        }
    } else {
        answer(ApiError::from(v));
    }
}

fn roundtrip<M: prost::Message + Default>(d: &Delivery) -> Option<M> {
    let m: M = d.decode().ok()?;
    // Whatever decodes re-encodes to bytes that decode to the same encoding (unknown fields
    // are dropped once, then the encoding is stable).
    let once = m.encode_to_vec();
    let again = M::decode(once.as_slice()).expect("re-encoded event decodes");
    assert_eq!(again.encode_to_vec(), once, "event encoding is not stable");
    Some(m)
}

fn meta(m: Option<&EventMeta>) {
    if let Ok(meta) = event::check_meta(m) {
        assert!(!meta.event_id.is_empty() && !meta.shop_id.is_empty());
        let derived = event::derive_meta(meta, "fuzz");
        assert!(event::check_meta(Some(&derived)).is_ok());
    }
}

/// Every event type consumed from Kafka, decoded from one payload as the consumers do
/// ([`Delivery::decode`], then [`event::check_meta`]).
pub fn event_decoders(data: &[u8]) {
    let d = Delivery {
        topic: "kefu.fuzz.v1".into(),
        partition: 0,
        offset: 0,
        key: None,
        payload: data.to_vec(),
        headers: Vec::new(),
    };
    if let Some(m) = roundtrip::<MessageEvent>(&d) {
        meta(m.meta.as_ref());
    }
    if let Some(m) = roundtrip::<ReplyEvent>(&d) {
        meta(m.meta.as_ref());
    }
    if let Some(m) = roundtrip::<TicketEvent>(&d) {
        meta(m.meta.as_ref());
        let _ = TicketEventKind::try_from(m.kind);
    }
    if let Some(m) = roundtrip::<OrderChanged>(&d) {
        meta(m.meta.as_ref());
        if let Some(o) = &m.order {
            // order-sync's mapping of a gRPC / event order to its document.
            order_derived(&OrderDoc::from_proto(o));
        }
    }
    if let Some(m) = roundtrip::<ShipmentChanged>(&d) {
        meta(m.meta.as_ref());
    }
    let _ = roundtrip::<EventMeta>(&d);
}

/// The keyed hash of buyers' phones and e-mails (any secret will do here).
static CUSTOMER_KEYS: LazyLock<CustomerKeys> =
    LazyLock::new(|| CustomerKeys::new(&[7; 32]).expect("a long enough secret"));

fn order_derived(o: &OrderDoc) {
    let mut v = Violations::new();
    o.validate(&mut v);
    let _ = o.content_hash();
    let _ = o.customer_ref(&CUSTOMER_KEYS);
    let (identity, phone, email) = o.buyer_keys(&CUSTOMER_KEYS);
    assert_eq!(identity.is_empty(), o.buyer.channel.is_empty());
    assert_eq!(phone.is_empty(), o.buyer.phone.is_empty());
    assert_eq!(email.is_empty(), o.buyer.email.is_empty());
}

/// order-sync's Shopify connector: an `orders/*` or `fulfillments/*` webhook body.
pub fn shopify_order(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(o) = shopify::order(&v) {
        assert_eq!(o.format, kefu_order_sync::model::ORDER_FORMAT);
        assert!(!o.order_id.is_empty());
        order_derived(&o);
    }
    if let Some(s) = shopify::fulfillment(&v) {
        assert!(!s.tracking_number.is_empty());
        for e in &s.events {
            assert!(kefu_order_sync::model::TRACKING_STATUSES.contains(&e.status.as_str()));
        }
    }
}

/// order-sync's generic signed webhook (`webhook` and `tracking` connectors) and the JSON
/// lines import: `kefu.order.v1` / `kefu.tracking.v1` documents.
pub fn order_webhook(data: &[u8]) {
    for connector in ["webhook", "tracking"] {
        match connectors::parse_documents(connector, data) {
            Ok(docs) => {
                assert!(!docs.is_empty() && docs.len() <= connectors::MAX_DOCS);
                for d in &docs {
                    match d {
                        Doc::Order(o) => {
                            assert_eq!(connector, "webhook", "order accepted by tracking");
                            order_derived(o);
                        }
                        Doc::Tracking(t) => {
                            let mut v = Violations::new();
                            t.validate(&mut v);
                            assert!(v.is_empty(), "accepted an invalid tracking document");
                        }
                    }
                }
            }
            Err(e) => answer(e),
        }
    }
    // One JSON lines import line.
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(v) = serde_json::from_str::<Value>(text)
        && let Ok(Doc::Order(o)) = Doc::from_json(v)
    {
        order_derived(&o);
    }
}

/// The connectors' signature headers (first line of the input) over a body (the rest):
/// `X-Kefu-Signature: sha256=<hex>` and `X-Shopify-Hmac-Sha256: <base64>`.
pub fn webhook_signature(data: &[u8]) {
    const SECRET: &str = "fuzz-secret-0123456789";
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let header = String::from_utf8_lossy(header);
    let good = connectors::sign(SECRET, body);
    assert!(connectors::verify(SECRET, body, &good));
    for sig in [
        connectors::kefu_signature(&header),
        connectors::shopify_signature(&header),
    ]
    .into_iter()
    .flatten()
    {
        assert_eq!(
            connectors::verify(SECRET, body, &sig),
            sig == good,
            "verify disagrees with the signature"
        );
    }
}

/// order-sync's CSV import (`kefu orders import FILE.csv`): a header line, then rows grouped
/// into orders as `ImportOrders` does; every finished order is validated.
pub fn order_csv(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut header: Option<Vec<String>> = None;
    let mut pending: Option<OrderDoc> = None;
    let finish = |doc: OrderDoc| {
        let mut v = Violations::new();
        doc.validate(&mut v);
        if v.is_empty() {
            order_derived(&doc);
        }
    };
    for line in text.lines() {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() || line.len() > MAX_LINE_BYTES {
            continue;
        }
        let Some(h) = &header else {
            match csv_rows::header(line) {
                Ok(h) => {
                    assert!(h.iter().any(|c| c == "order_id"));
                    header = Some(h);
                    continue;
                }
                Err(_) => return,
            }
        };
        let Ok(order_id) = csv_rows::order_id(h, line) else {
            continue;
        };
        if pending.as_ref().is_some_and(|d| d.order_id != order_id)
            && let Some(done) = pending.take()
        {
            finish(done);
        }
        let mut doc = pending.take().unwrap_or_default();
        if csv_rows::apply(h, line, &mut doc).is_ok() {
            assert_eq!(doc.order_id, order_id);
            pending = Some(doc);
        }
    }
    if let Some(done) = pending {
        finish(done);
    }
}

/// The knowledge bundle import (`kefu knowledge import DIR`): FAQ markdown, product pages,
/// Shopify product JSON lines, promotions YAML and scenarios JSON lines.
///
/// Input: sections starting with a line `>>> <path>` (the file's path in the bundle), or, when
/// the input does not start with `>>> `, one file whose kind the first byte chooses.
pub fn knowledge_bundle(data: &[u8]) {
    const PATHS: [&str; 5] = [
        "faq.md",
        "products/item.html",
        "products/shop.jsonl",
        "promotions.yaml",
        "scenarios.jsonl",
    ];
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(rest) = data.strip_prefix(b">>> ") {
        let mut rest = rest;
        loop {
            let (line, body) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            let path = String::from_utf8_lossy(line).trim().to_owned();
            match find(body, b"\n>>> ") {
                Some(i) => {
                    files.push((path, body[..i + 1].to_vec()));
                    rest = &body[i + 5..];
                }
                None => {
                    files.push((path, body.to_vec()));
                    break;
                }
            }
        }
    } else if let Some((&kind, body)) = data.split_first() {
        files.push((
            PATHS[usize::from(kind) % PATHS.len()].to_owned(),
            body.to_vec(),
        ));
    }
    match Bundle::from_files(&files) {
        Ok(b) => {
            let mut ids = std::collections::HashSet::new();
            for p in &b.products {
                assert!(ids.insert(p.id.clone()), "duplicate product id accepted");
            }
        }
        Err(e) => {
            assert!(!e.0.is_empty());
            let _ = e.to_string();
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The intents training file reader (`kefu intents train --data FILE`), CSV and JSON lines.
pub fn intent_examples(data: &[u8]) {
    for format in [examples::Format::Csv, examples::Format::Jsonl] {
        if let Ok(rows) = examples::read(data, format, "fuzz") {
            assert!(!rows.is_empty());
            for r in &rows {
                let _ = shop::valid_label(&r.label);
                let _ = shop::seen_key(&r.text);
            }
        }
    }
}

/// Entity extraction and text features (intent-classifier), on any text.
pub fn entities(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let chars = text.chars().count();
    let found = entities::extract(&text);
    let mut last = 0;
    for e in &found {
        assert!(
            e.start <= e.end && e.end <= chars,
            "span {}..{} outside the text ({chars} characters)",
            e.start,
            e.end
        );
        assert!(e.start >= last, "entities out of order");
        last = e.start;
        assert!(!e.value.is_empty(), "empty {} entity", e.kind);
    }
    let f = features::extract(&text, 12);
    assert!(f.idx.iter().all(|&i| (i as usize) < 1 << 12));
    assert_eq!(f.idx.len(), f.val.len());
    let _ = features::normalize(&text);
    let _ = shop::embedding_text(&text);
    let _ = kefu_intent::data::dedupe_key(&text);
}

/// The intent model artefact loader ([`Model::from_bytes`]); a loaded model predicts and
/// round-trips.
pub fn intent_model(data: &[u8]) {
    if let Ok(m) = Model::from_bytes(data) {
        let p = m.predict("我的订单 SF1234567890123 到哪了? where is my order");
        assert!(m.labels.contains(&p.intent));
        let again = Model::from_bytes(&m.to_bytes()).expect("a loaded model re-loads");
        assert_eq!(again.labels, m.labels);
    }
}

/// A shop's model artefact ([`ShopModel::from_bytes`]); a loaded model decides.
pub fn shop_model(data: &[u8]) {
    if let Ok(m) = ShopModel::from_bytes(data) {
        let p = m.ngram_probabilities("退货 refund please");
        assert_eq!(p.len(), m.labels().len());
        let d = m.decide_ngram(&p);
        assert!(m.labels().contains(&d.intent));
        if let Some(h) = &m.head {
            let e = vec![0.5f32; h.dim];
            let d = m.decide_with(&p, Some(&e));
            assert!(m.labels().contains(&d.intent));
            let _ = m.decide_embedding(&e);
        }
        let again = ShopModel::from_bytes(&m.to_bytes()).expect("a loaded model re-loads");
        assert_eq!(again.labels(), m.labels());
    }
}
