//! HTTP ingress for webhooks and simple clients.
//!
//! `POST /v1/messages` (JSON, `authorization: Bearer <shop API key>`):
//! `{"shop_id"?,"channel","channel_user_id","channel_message_id","text","wait_ms"?}`.
//! Responses: `200` with the reply when it arrived within `wait_ms`, `202` when accepted and not
//! (yet) answered; errors are `{"error":{"code","message","details":[{"field","description"}]}}`
//! with 400 (invalid), 401 (missing/wrong key), 403 (a `shop_id` that is not the key's, or a
//! credential that may not send), 503 (broker down; the message is kept and processed later).
//! `GET /v1/conversations/{id}/messages` (shop key or agent token) returns the transcript.
//! `GET /healthz` answers `ok`. The shop is always the credential's.
use std::time::Duration;

use axum::{
    Json, Router,
    body::{Body, to_bytes},
    extract::{Path, Query, State as AxState},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use kefu_runtime::{auth::Allow, grpc::ApiError, validate::Violations};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::core::{self, MAX_WAIT_MS, NewMessage, Shared};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MessageBody {
    shop_id: String,
    channel: String,
    channel_user_id: String,
    channel_message_id: String,
    text: String,
    wait_ms: Option<u64>,
    verified_phone: String,
    verified_email: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PageQuery {
    shop_id: String,
    page_size: i32,
    page_token: String,
}

/// `GET /v1/conversations/{id}/messages?shop_id=..&page_size=..&page_token=..` — the
/// transcript (customer messages and replies, in time order).
async fn get_transcript(
    AxState(state): AxState<Shared>,
    Path(id): Path<String>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Query(q)) = q else {
        let mut v = Violations::new();
        v.add(
            "query",
            "expected shop_id, page_size (0-100) and page_token",
        );
        return ApiError::from(v).into_response();
    };
    let caller = match state
        .gate
        .authenticate(&headers, Allow::SHOP | Allow::AGENT)
        .await
    {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    match core::transcript(&state, &caller, &q.shop_id, &id, q.page_size, &q.page_token).await {
        Ok((lines, next)) => {
            let entries: Vec<serde_json::Value> = lines
                .into_iter()
                .map(crate::api::line_to_proto)
                .map(|e| {
                    json!({
                        "author": e.author, "message_id": e.message_id, "reply_id": e.reply_id,
                        "channel": e.channel, "text": e.text, "intent": e.intent,
                        "created_at": e.created_at.map(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos as u32).map(|d| d.to_rfc3339()).unwrap_or_default()),
                    })
                })
                .collect();
            Json(json!({"conversation_id": id, "entries": entries, "next_page_token": next}))
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/messages", post(post_message))
        .route("/v1/conversations/{id}/messages", get(get_transcript))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async {
            ApiError::NotFound("no such route; see POST /v1/messages".into()).into_response()
        })
        .layer(axum::middleware::from_fn(
            kefu_runtime::telemetry::http_span,
        ))
        .with_state(state)
}

async fn post_message(AxState(state): AxState<Shared>, headers: HeaderMap, body: Body) -> Response {
    match handle(&state, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn body_error(description: String) -> ApiError {
    let mut v = Violations::new();
    v.add("body", description);
    v.into()
}

/// Parses a `POST /v1/messages` body: the message, `wait_ms` (0 when absent), and the
/// violations found so far (`wait_ms` too large); [`NewMessage::validate`] checks the rest.
/// Undecodable JSON is an error. Pure, so the fuzz targets (docs/security.md) call it.
pub fn parse_message(bytes: &[u8]) -> Result<(NewMessage, u64, Violations), ApiError> {
    let b: MessageBody =
        serde_json::from_slice(bytes).map_err(|e| body_error(format!("invalid JSON: {e}")))?;
    let mut extra = Violations::new();
    let wait_ms = b.wait_ms.unwrap_or(0);
    if wait_ms > MAX_WAIT_MS {
        extra.add("wait_ms", format!("must be at most {MAX_WAIT_MS}"));
    }
    let msg = NewMessage {
        shop_id: b.shop_id,
        channel: b.channel,
        channel_user_id: b.channel_user_id,
        channel_message_id: b.channel_message_id,
        text: b.text,
        verified_phone: b.verified_phone,
        verified_email: b.verified_email,
    };
    Ok((msg, wait_ms, extra))
}

async fn handle(state: &Shared, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let caller = state.gate.authenticate(headers, Allow::SHOP).await?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(body_error("content-type must be application/json".into()));
    }
    let bytes = to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| body_error(format!("must be at most {MAX_BODY_BYTES} bytes")))?;
    let (msg, wait_ms, extra) = parse_message(&bytes)?;
    let accepted = core::send(state, &caller, msg, extra).await?;
    let m = &accepted.message;
    let reply = if wait_ms > 0 {
        core::wait_for_reply(state, &m.message_id, Duration::from_millis(wait_ms)).await?
    } else {
        crate::store::reply_for_message(&state.read, &m.message_id).await?
    };
    let status = if reply.is_some() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let reply_json = reply.map(|r| {
        json!({
            "reply_id": r.reply_id,
            "cursor": r.cursor,
            "text": r.text,
            "language": r.language,
            "source": r.source,
            "intent": r.intent,
            "ticket_id": r.ticket_id,
            "created_at": r.created_at.to_rfc3339(),
        })
    });
    let body = json!({
        "message_id": m.message_id,
        "conversation_id": m.conversation_id,
        "customer_id": m.customer_id,
        "duplicate": accepted.duplicate,
        "status": if status == StatusCode::OK { "answered" } else { "accepted" },
        "reply": reply_json,
    });
    Ok((status, Json(body)).into_response())
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Shared,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    tracing::info!(addr = ?listener.local_addr().ok(), "HTTP ingress listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    Ok(())
}
