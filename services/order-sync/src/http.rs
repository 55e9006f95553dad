//! Connector endpoints (HTTP, default `127.0.0.1:8086`; docs/orders.md):
//!
//! * `POST /v1/connectors/shopify/{shop_id}` — Shopify webhooks (`orders/create`,
//!   `orders/updated`, `orders/cancelled`, `fulfillments/create`, `fulfillments/update`) in
//!   Shopify's own JSON, verified with `X-Shopify-Hmac-Sha256` (base64 HMAC-SHA256 of the raw
//!   body with the shop's Shopify secret);
//! * `POST /v1/connectors/webhook/{shop_id}` — `kefu.order.v1` / `kefu.tracking.v1` documents
//!   (one, or a JSON array of up to 500), signed `X-Kefu-Signature: sha256=<hex HMAC-SHA256>`
//!   with the shop's webhook secret;
//! * `POST /v1/connectors/tracking/{shop_id}` — the same for carrier scans only.
//!
//! A request with a missing or wrong signature is answered 401, counted
//! (`kefu_connector_unauthenticated_requests_total`), logged in aggregate, and stores nothing;
//! see [`crate::rejections`] for when it is recorded in `connector_rejections`. Errors are JSON like every Kefu HTTP API.
use std::{collections::HashMap, path::Path as FsPath, sync::Arc};

use axum::{
    Json, Router,
    body::{Body, to_bytes},
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::Engine;
use hmac::{Hmac, Mac};
use kefu_runtime::{grpc::ApiError, validate::Violations};
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::{
    model::{Doc, shopify},
    store::{self, Outcome},
};

/// Largest connector request body.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Most documents in one webhook request.
pub const MAX_DOCS: usize = 500;

/// Per-shop connector secrets: lines of `shop_id connector secret` (`#` starts a comment),
/// connector `shopify` or `webhook`.
#[derive(Clone, Debug, Default)]
pub struct Secrets(HashMap<(String, String), String>);

impl Secrets {
    pub fn parse(text: &str) -> Result<Secrets, String> {
        let mut map = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                [shop, connector @ ("shopify" | "webhook"), secret] if secret.len() >= 16 => {
                    map.insert(
                        ((*shop).to_owned(), (*connector).to_owned()),
                        (*secret).to_owned(),
                    );
                }
                _ => {
                    return Err(format!(
                        "line {}: expected `shop_id shopify|webhook secret` (secret of 16+ characters)",
                        i + 1
                    ));
                }
            }
        }
        Ok(Secrets(map))
    }

    pub fn load(path: &FsPath) -> Result<Secrets, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Secrets::parse(&text)
    }

    pub fn get(&self, shop_id: &str, connector: &str) -> Option<&str> {
        self.0
            .get(&(shop_id.to_owned(), connector.to_owned()))
            .map(String::as_str)
    }
}

/// The HMAC-SHA256 of `body` with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Whether `signature` is the HMAC-SHA256 of `body` with `secret` (constant time).
pub fn verify(secret: &str, body: &[u8], signature: &[u8]) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.verify_slice(signature).is_ok()
}

pub struct Connectors {
    pub db: DatabaseConnection,
    pub secrets: Secrets,
    /// The keyed hash of buyers' phone numbers and e-mail addresses (shared with
    /// session-router).
    pub customer_keys: kefu_runtime::customer_key::CustomerKeys,
    /// Requests refused at authentication: counted, logged in aggregate, rarely recorded.
    pub refusals: crate::rejections::Refusals,
    /// Wakes the commerce outbox relay (requests never wait for the broker).
    pub nudge: kefu_runtime::outbox::Nudge,
}

type Shared = Arc<Connectors>;

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn invalid(field: &str, description: impl Into<String>) -> ApiError {
    let mut v = Violations::new();
    v.add(field, description);
    v.into()
}

impl Connectors {
    /// Checks the signature. A failure is counted and logged in aggregate; it writes a row
    /// to `connector_rejections` only for a shop with a configured secret, at most once a
    /// minute per shop, connector and reason ([`crate::rejections`]), and nothing else happens.
    pub async fn authenticate(
        &self,
        shop_id: &str,
        connector: &str,
        topic: &str,
        body: &[u8],
        signature: Option<Vec<u8>>,
    ) -> Result<(), ApiError> {
        use crate::rejections::Reason;
        let (kind, reason) = match (self.secrets.get(shop_id, connector), signature) {
            (None, _) => (
                Reason::UnknownShop,
                format!("no {connector} secret is configured for shop {shop_id}"),
            ),
            (Some(_), None) => (
                Reason::MissingSignature,
                "missing or malformed signature header".to_owned(),
            ),
            (Some(secret), Some(sig)) if verify(secret, body, &sig) => return Ok(()),
            (Some(_), Some(_)) => (Reason::BadSignature, "signature does not match".to_owned()),
        };
        if self.refusals.refuse(shop_id, connector, topic, kind) {
            store::record_rejection(&self.db, shop_id, connector, topic, &reason, body).await?;
        }
        Err(ApiError::Unauthenticated(reason))
    }

    /// Has the relay publish what a change put in the outbox; returns at once.
    pub fn publish(&self) {
        self.nudge.nudge();
    }

    async fn store(&self, shop_id: &str, doc: Doc, source: &str) -> Result<Value, ApiError> {
        let mut v = Violations::new();
        match doc {
            Doc::Order(o) => {
                o.validate(&mut v);
                v.into_result()?;
                let out =
                    store::upsert_order(&self.db, &self.customer_keys, shop_id, &o, source).await?;
                Ok(
                    json!({"kind": "order", "order_id": o.order_id, "changed": out == Outcome::Changed}),
                )
            }
            Doc::Tracking(t) => {
                t.validate(&mut v);
                v.into_result()?;
                let out = store::add_tracking(&self.db, shop_id, &t).await?;
                Ok(
                    json!({"kind": "tracking", "tracking_number": t.tracking_number, "changed": out == Outcome::Changed}),
                )
            }
        }
    }
}

async fn read_body(body: Body) -> Result<Vec<u8>, ApiError> {
    to_bytes(body, MAX_BODY_BYTES)
        .await
        .map(|b| b.to_vec())
        .map_err(|_| invalid("body", format!("must be at most {MAX_BODY_BYTES} bytes")))
}

fn check_shop(shop_id: &str) -> Result<(), ApiError> {
    let mut v = Violations::new();
    v.ident("shop_id", shop_id, 64);
    Ok(v.into_result()?)
}

async fn shopify_webhook(
    State(c): State<Shared>,
    Path(shop_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match shopify_inner(&c, &shop_id, &headers, body).await {
        Ok(v) => (StatusCode::OK, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn shopify_inner(
    c: &Connectors,
    shop_id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, ApiError> {
    check_shop(shop_id)?;
    let body = read_body(body).await?;
    let topic = header(headers, "x-shopify-topic").to_owned();
    let signature = shopify_signature(header(headers, "x-shopify-hmac-sha256"));
    c.authenticate(shop_id, "shopify", &topic, &body, signature)
        .await?;
    let payload: Value =
        serde_json::from_slice(&body).map_err(|e| invalid("body", format!("invalid JSON: {e}")))?;
    let result = match topic.as_str() {
        "orders/create" | "orders/updated" | "orders/cancelled" | "orders/paid"
        | "orders/fulfilled" => {
            let doc = shopify::order(&payload).map_err(|e| invalid("body", e))?;
            c.store(shop_id, Doc::Order(Box::new(doc)), "shopify")
                .await?
        }
        "fulfillments/create" | "fulfillments/update" => {
            let shopify_order = match payload.get("order_id") {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(s)) => s.clone(),
                _ => return Err(invalid("body.order_id", "is required")),
            };
            let Some(order_id) =
                store::order_by_source_ref(&c.db, shop_id, &format!("shopify:{shopify_order}"))
                    .await?
            else {
                // Shopify retries non-2xx answers, so the fulfillment is stored once the order
                // has arrived.
                return Err(ApiError::NotFound(format!(
                    "order {shopify_order} is not known yet; retry after orders/create"
                )));
            };
            let Some(s) = shopify::fulfillment(&payload) else {
                return Ok(
                    json!({"status": "ignored", "reason": "fulfillment has no tracking number"}),
                );
            };
            let mut changed = false;
            for scan in &s.events {
                let doc = crate::model::TrackingDoc {
                    format: crate::model::TRACKING_FORMAT.into(),
                    carrier: s.carrier.clone(),
                    tracking_number: s.tracking_number.clone(),
                    order_id: order_id.clone(),
                    status: scan.status.clone(),
                    location: scan.location.clone(),
                    description: scan.description.clone(),
                    at: scan.at,
                };
                let r = c.store(shop_id, Doc::Tracking(doc), "shopify").await?;
                changed |= r["changed"].as_bool().unwrap_or(false);
            }
            json!({"kind": "tracking", "order_id": order_id, "tracking_number": s.tracking_number, "changed": changed})
        }
        // Shopify retries anything but 2xx; topics we do not use are acknowledged and ignored.
        other => return Ok(json!({"status": "ignored", "topic": other})),
    };
    c.publish();
    Ok(json!({"status": "ok", "result": result}))
}

async fn kefu_webhook(
    State(c): State<Shared>,
    Path((connector, shop_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match webhook_inner(&c, &connector, &shop_id, &headers, body).await {
        Ok(v) => (StatusCode::OK, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn webhook_inner(
    c: &Connectors,
    connector: &str,
    shop_id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, ApiError> {
    if connector != "webhook" && connector != "tracking" {
        return Err(ApiError::NotFound(format!(
            "no connector {connector:?}; use shopify, webhook or tracking"
        )));
    }
    check_shop(shop_id)?;
    let body = read_body(body).await?;
    let signature = kefu_signature(header(headers, "x-kefu-signature"));
    c.authenticate(shop_id, "webhook", connector, &body, signature)
        .await?;
    let parsed = parse_documents(connector, &body)?;
    let mut results = Vec::with_capacity(parsed.len());
    for doc in parsed {
        results.push(c.store(shop_id, doc, "webhook").await?);
    }
    c.publish();
    Ok(json!({"status": "ok", "results": results}))
}

/// The signature of `X-Shopify-Hmac-Sha256` (base64); `None` when missing or malformed.
pub fn shopify_signature(header: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(header)
        .ok()
        .filter(|s| !s.is_empty())
}

/// The signature of `X-Kefu-Signature: sha256=<hex>`; `None` when missing or malformed.
pub fn kefu_signature(header: &str) -> Option<Vec<u8>> {
    header
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
}

/// Parses and validates the body of a `webhook` or `tracking` connector request: one
/// document or an array of 1-[`MAX_DOCS`]; every problem of every document is reported, by
/// `body[i].field`. Pure, so the fuzz targets (docs/security.md) call it.
pub fn parse_documents(connector: &str, body: &[u8]) -> Result<Vec<Doc>, ApiError> {
    let payload: Value =
        serde_json::from_slice(body).map_err(|e| invalid("body", format!("invalid JSON: {e}")))?;
    let docs = match payload {
        Value::Array(a) => a,
        one => vec![one],
    };
    if docs.is_empty() || docs.len() > MAX_DOCS {
        return Err(invalid("body", format!("1-{MAX_DOCS} documents")));
    }
    // Everything is parsed and validated before anything is stored.
    let mut parsed = Vec::with_capacity(docs.len());
    let mut v = Violations::new();
    for (i, d) in docs.into_iter().enumerate() {
        match Doc::from_json(d) {
            Ok(Doc::Order(_)) if connector == "tracking" => v.add(
                &format!("body[{i}]"),
                "only kefu.tracking.v1 documents here",
            ),
            Ok(doc) => {
                let mut dv = Violations::new();
                match &doc {
                    Doc::Order(o) => o.validate(&mut dv),
                    Doc::Tracking(t) => t.validate(&mut dv),
                }
                for f in dv.0 {
                    v.add(&format!("body[{i}].{}", f.field), f.description);
                }
                parsed.push(doc);
            }
            Err(e) => v.add(&format!("body[{i}]"), e),
        }
    }
    v.into_result()?;
    Ok(parsed)
}

pub fn router(c: Shared) -> Router {
    Router::new()
        .route("/v1/connectors/shopify/{shop_id}", post(shopify_webhook))
        .route("/v1/connectors/{connector}/{shop_id}", post(kefu_webhook))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(|| async {
            ApiError::NotFound(
                "no such route; see POST /v1/connectors/{shopify,webhook,tracking}/{shop_id}"
                    .into(),
            )
            .into_response()
        })
        .layer(axum::middleware::from_fn(
            kefu_runtime::telemetry::http_span,
        ))
        .with_state(c)
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    c: Shared,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), "connector HTTP listening");
    axum::serve(listener, router(c))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}
