//! What gRPC `Send` and HTTP `POST /v1/messages` share: validation, the caller's shop,
//! idempotent acceptance, and publishing to `kefu.conversation.inbound.v1`.
use std::{sync::Arc, time::Duration};

use kefu_proto::events::v1::{EventMeta, MessageEvent};
use kefu_runtime::{
    auth::{Caller, Gate},
    event,
    grpc::ApiError,
    kafka::{KafkaConfig, Producer, topics},
    validate::Violations,
};
use sea_orm::DatabaseConnection;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{auth::LocalVerifier, egress::EgressPolicy, entity::message, store};

/// Limits on a customer message.
pub const MAX_TEXT_CHARS: usize = 4000;
pub const MAX_TEXT_BYTES: usize = 16 * 1024;
pub const MAX_ID_CHARS: usize = 128;
/// How long `Send` waits for the broker before answering UNAVAILABLE (the relay takes over).
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a caller may wait for a reply.
pub const MAX_WAIT_MS: u64 = 30_000;

/// Shared state of the APIs and consumers.
pub struct State {
    /// Writes, and reads that must see the caller's own uncommitted work.
    pub db: DatabaseConnection,
    /// Reads of committed rows ([`kefu_runtime::db::reader`]: separate SQLite connections
    /// that never queue behind writes; the same pool as `db` on PostgreSQL).
    pub read: DatabaseConnection,
    /// Shop keys, agent tokens and the operator token (also answers `AuthService`).
    pub verifier: Arc<LocalVerifier>,
    /// Authenticates the HTTP ingress's callers (gRPC calls pass [`kefu_runtime::auth::Guard`]).
    pub gate: Arc<Gate>,
    /// Where webhooks may be delivered.
    pub egress: EgressPolicy,
    pub producer: Producer,
    pub kafka: KafkaConfig,
    /// Messages whose inbound event was acknowledged, for [`mark_published_loop`].
    pub published: tokio::sync::mpsc::UnboundedSender<String>,
    /// The highest reply cursor stored by this process (wakes subscribers and waiters).
    pub replies: watch::Sender<i64>,
    pub shutdown: CancellationToken,
    /// A conversation idle this long is closed; the next message opens a new, linked one.
    pub conversation_idle: chrono::Duration,
    /// Dialogue policy of shops that did not set their own.
    pub default_policy: crate::policy::Policy,
    /// The keyed hash of verified phone numbers and e-mail addresses (shared with order-sync).
    pub customer_keys: kefu_runtime::customer_key::CustomerKeys,
    /// order-sync, which confirms that an order belongs to a customer.
    pub orders: kefu_proto::order::v1::order_sync_service_client::OrderSyncServiceClient<
        tonic::transport::Channel,
    >,
}

pub type Shared = Arc<State>;

/// A message as the APIs receive it.
pub struct NewMessage {
    /// The request's shop: optional; when set it must be the credential's.
    pub shop_id: String,
    pub channel: String,
    pub channel_user_id: String,
    pub channel_message_id: String,
    pub text: String,
    /// Phone number the channel verified (optional, "" when none).
    pub verified_phone: String,
    /// E-mail address the channel verified (optional, "" when none).
    pub verified_email: String,
}

impl NewMessage {
    /// The verified keys, normalised as order-sync normalises buyers' (phone digits only,
    /// e-mail lower-cased).
    pub fn verified_keys(&self) -> Vec<(&'static str, String)> {
        use kefu_runtime::customer_key::{normalize_email, normalize_phone};
        let mut keys = Vec::new();
        if !self.verified_phone.is_empty() {
            keys.push(("phone", normalize_phone(&self.verified_phone)));
        }
        if !self.verified_email.is_empty() {
            keys.push(("email", normalize_email(&self.verified_email)));
        }
        keys
    }

    pub fn validate(&self, v: &mut Violations) {
        if self.channel.is_empty() {
            v.add("channel", "must not be empty");
        } else if self.channel.len() > 32
            || !self
                .channel
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            v.add("channel", "must be 1-32 characters of a-z, 0-9, _ and -");
        }
        v.text(
            "channel_user_id",
            &self.channel_user_id,
            MAX_ID_CHARS,
            4 * MAX_ID_CHARS,
        );
        v.text(
            "channel_message_id",
            &self.channel_message_id,
            MAX_ID_CHARS,
            4 * MAX_ID_CHARS,
        );
        v.text("text", &self.text, MAX_TEXT_CHARS, MAX_TEXT_BYTES);
        if !self.verified_phone.is_empty() {
            let digits = self
                .verified_phone
                .chars()
                .filter(char::is_ascii_digit)
                .count();
            let allowed = self
                .verified_phone
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')'));
            if !allowed || !(6..=20).contains(&digits) || self.verified_phone.len() > 32 {
                v.add(
                    "verified_phone",
                    "must be 6-20 digits (spaces, +, - and parentheses allowed)",
                );
            }
        }
        if !self.verified_email.is_empty() {
            let e = self.verified_email.trim();
            let ok = e.len() <= 254
                && e.split_once('@').is_some_and(|(user, host)| {
                    !user.is_empty()
                        && host.contains('.')
                        && !host.starts_with('.')
                        && !host.ends_with('.')
                })
                && !e.chars().any(char::is_whitespace);
            if !ok {
                v.add("verified_email", "must be an e-mail address");
            }
        }
    }
}

/// The inbound event for a stored message. Deterministic, so republishing is harmless.
pub fn inbound_event(m: &message::Model) -> MessageEvent {
    MessageEvent {
        meta: Some(EventMeta {
            event_id: event::derive_id(&m.message_id, "inbound"),
            shop_id: m.shop_id.clone(),
            occurred_at: Some(event::timestamp(m.created_at)),
            causation_id: String::new(),
            message_id: m.message_id.clone(),
            conversation_id: m.conversation_id.clone(),
        }),
        customer_id: m.customer_id.clone(),
        channel: m.channel.clone(),
        channel_user_id: m.channel_user_id.clone(),
        channel_message_id: m.channel_message_id.clone(),
        text: m.text.clone(),
        ..Default::default()
    }
}

/// Publishes a stored message and marks it published (the outbox step).
pub async fn publish(state: &State, m: &message::Model) -> Result<(), ApiError> {
    let sent = tokio::time::timeout(
        PUBLISH_TIMEOUT,
        state.producer.send_event(
            &state.kafka.topic(topics::INBOUND),
            &m.conversation_id,
            &inbound_event(m),
        ),
    )
    .await;
    let failure = match sent {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no acknowledgement within {PUBLISH_TIMEOUT:?}")),
    };
    if let Some(error) = failure {
        tracing::warn!(%error, message_id = %m.message_id, "publishing inbound failed; the outbox relay retries");
        return Err(ApiError::Unavailable(
            "message stored but the broker is unavailable; it will be processed when the broker is back".into(),
        ));
    }
    // Marked in batches: a message not yet marked when the process dies is published again
    // by the relay, and consumers dedupe the repeat on its deterministic event id.
    let _ = state.published.send(m.message_id.clone());
    Ok(())
}

/// Most messages one `UPDATE` marks published.
const MARK_BATCH: usize = 500;

/// Marks acknowledged messages published, in batches of what arrived meanwhile: one write for
/// many messages instead of one each (the write connection is session-router's busiest queue
/// under load). Flushes what is queued when the service stops.
pub async fn mark_published_loop(
    state: Shared,
    mut acked: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> anyhow::Result<()> {
    let mut batch = Vec::with_capacity(MARK_BATCH);
    loop {
        let stopping = tokio::select! {
            biased;
            n = acked.recv_many(&mut batch, MARK_BATCH) => n == 0,
            _ = state.shutdown.cancelled() => true,
        };
        if stopping {
            while let Ok(id) = acked.try_recv() {
                batch.push(id);
            }
        }
        for ids in batch.chunks(MARK_BATCH) {
            if let Err(e) = store::mark_published(&state.db, ids).await {
                // Left unmarked: the relay publishes them again (harmless duplicates).
                tracing::warn!(error = %e, messages = ids.len(), "marking messages published failed");
            }
        }
        batch.clear();
        if stopping {
            return Ok(());
        }
    }
}

/// Validates, stores (idempotently) and publishes a message of the caller's shop.
pub async fn send(
    state: &State,
    caller: &Caller,
    mut msg: NewMessage,
    extra: Violations,
) -> Result<store::Accepted, ApiError> {
    let mut v = extra;
    msg.validate(&mut v);
    v.into_result()?;
    msg.shop_id = caller.shop(&msg.shop_id)?;
    let keys = msg.verified_keys();
    if !keys.is_empty() {
        store::link_verified(
            &state.db,
            &state.customer_keys,
            &msg.shop_id,
            &msg.channel,
            &msg.channel_user_id,
            &keys,
        )
        .await
        .map_err(|e| match e {
            store::GraphError::NotFound(m) => ApiError::NotFound(m),
            store::GraphError::Db(e) => ApiError::from(e),
        })?;
    }
    let accepted = store::accept_with_idle(
        &state.db,
        state.conversation_idle,
        &msg.shop_id,
        &msg.channel,
        &msg.channel_user_id,
        &msg.channel_message_id,
        &msg.text,
    )
    .await?;
    if !accepted.message.published {
        publish(state, &accepted.message).await?;
    }
    Ok(accepted)
}

/// Waits up to `wait` for the reply to `message_id`.
pub async fn wait_for_reply(
    state: &State,
    message_id: &str,
    wait: Duration,
) -> Result<Option<crate::entity::reply::Model>, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut rx = state.replies.subscribe();
    loop {
        if let Some(r) = store::reply_for_message(&state.read, message_id).await? {
            return Ok(Some(r));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        // Woken by a reply stored in this process, or polls (another replica may store it).
        tokio::select! {
            _ = rx.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = state.shutdown.cancelled() => return Ok(None),
        }
    }
}

/// Re-publishes messages whose inbound event was never acknowledged (crash between commit and
/// produce, or a broker outage during `Send`).
pub async fn outbox_relay(state: Shared) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        let pending = match store::unpublished(&state.db, chrono::Duration::seconds(3), 200).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "outbox scan failed");
                continue;
            }
        };
        for m in pending {
            // In the trace of the request that stored it, not a new one.
            let span = tracing::info_span!("outbox.republish", message_id = %m.message_id);
            if !m.traceparent.is_empty() {
                let parent = std::collections::HashMap::from([(
                    "traceparent".to_owned(),
                    m.traceparent.clone(),
                )]);
                kefu_runtime::telemetry::set_parent_from(&span, &parent);
            }
            let published = tokio::select! {
                _ = state.shutdown.cancelled() => return Ok(()),
                r = publish(&state, &m).instrument(span) => r.is_ok(),
            };
            if !published {
                break; // the broker is still down; try the batch again later
            }
            tracing::info!(message_id = %m.message_id, "outbox relay published a pending message");
        }
    }
}

/// Largest page of any list API.
pub const MAX_PAGE: i32 = 100;
const MAX_OFFSET: u64 = 100_000;

/// Validates a page size (0 → `default`) and an opaque page token (an offset).
pub fn page(v: &mut Violations, page_size: i32, token: &str, default: u64) -> (u64, u64) {
    if !(0..=MAX_PAGE).contains(&page_size) {
        v.add("page_size", format!("must be between 0 and {MAX_PAGE}"));
    }
    let limit = if page_size <= 0 {
        default
    } else {
        page_size as u64
    };
    let offset = if token.is_empty() {
        0
    } else {
        match token.strip_prefix("o").and_then(|n| n.parse::<u64>().ok()) {
            Some(n) if n <= MAX_OFFSET => n,
            _ => {
                v.add("page_token", "not a token from a previous response");
                0
            }
        }
    };
    (limit, offset)
}

/// The token of the page after one that returned `got` of `limit` items at `offset`.
pub fn next_token(offset: u64, limit: u64, got: usize) -> String {
    if (got as u64) < limit || offset + limit > MAX_OFFSET {
        String::new()
    } else {
        format!("o{}", offset + limit)
    }
}

/// A conversation's transcript page, if the conversation is the caller's shop's.
pub async fn transcript(
    state: &State,
    caller: &Caller,
    shop_id: &str,
    conversation_id: &str,
    page_size: i32,
    page_token: &str,
) -> Result<(Vec<store::Line>, String), ApiError> {
    let mut v = Violations::new();
    v.ident("conversation_id", conversation_id, 64);
    let (limit, offset) = page(&mut v, page_size, page_token, 50);
    v.into_result()?;
    let shop_id = &caller.shop(shop_id)?;
    if store::shop_conversation(&state.db, shop_id, conversation_id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound(format!(
            "conversation {conversation_id} not found"
        )));
    }
    let lines = store::transcript(&state.db, shop_id, conversation_id, limit, offset).await?;
    let next = next_token(offset, limit, lines.len());
    Ok((lines, next))
}
