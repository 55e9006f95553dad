//! Webhook delivery: a channel registers a URL and every reply to a message from that channel
//! is POSTed to it, signed with HMAC-SHA256. Deliveries are outbox rows written in the same
//! transaction as the reply, claimed with a lease (so two replicas never send the same one at
//! once) and retried with exponential backoff until the endpoint answers 2xx: never lost.
use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, OnConflict},
};
use sha2::Sha256;

use crate::{
    core::Shared,
    entity::{reply, webhook, webhook_delivery},
};

/// Signature header: `sha256=<hex HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "x-kefu-signature";
/// How long a claimed delivery is reserved for the replica that claimed it.
const LEASE: chrono::Duration = chrono::Duration::seconds(30);

/// `sha256=<hex>` signature of `body` with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Registers (or replaces) the webhook of a shop's channel; returns the new secret.
pub async fn register(
    db: &DatabaseConnection,
    shop_id: &str,
    channel: &str,
    url: &str,
) -> Result<String, DbErr> {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("whsec_{}", hex::encode(bytes));
    webhook::Entity::insert(webhook::ActiveModel {
        shop_id: Set(shop_id.to_owned()),
        channel: Set(channel.to_owned()),
        url: Set(url.to_owned()),
        secret: Set(secret.clone()),
        created_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::columns([webhook::Column::ShopId, webhook::Column::Channel])
            .update_columns([webhook::Column::Url, webhook::Column::Secret])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(secret)
}

/// Queues the delivery of a newly stored reply when its channel has a webhook (called inside
/// the reply's transaction).
pub async fn enqueue<C: ConnectionTrait>(db: &C, r: &reply::Model) -> Result<(), DbErr> {
    let hook = webhook::Entity::find_by_id((r.shop_id.clone(), r.channel.clone()))
        .one(db)
        .await?;
    if hook.is_none() {
        return Ok(());
    }
    webhook_delivery::Entity::insert(webhook_delivery::ActiveModel {
        id: sea_orm::ActiveValue::NotSet,
        shop_id: Set(r.shop_id.clone()),
        channel: Set(r.channel.clone()),
        reply_cursor: Set(r.cursor),
        attempts: Set(0),
        next_attempt_at: Set(Utc::now()),
        delivered_at: Set(None),
        last_error: Set(String::new()),
    })
    .on_conflict(
        OnConflict::column(webhook_delivery::Column::ReplyCursor)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Backoff after `attempts` failures: 1 s doubling, at most 5 minutes.
pub fn backoff(attempts: i32) -> chrono::Duration {
    let secs = 1i64 << attempts.clamp(1, 20).saturating_sub(1);
    chrono::Duration::seconds(secs.min(300))
}

/// Delivers due webhooks until shutdown. The client reaches only the addresses the egress
/// policy permits and never follows a redirect (a redirect is a failed attempt).
pub async fn deliver_loop(state: Shared) -> anyhow::Result<()> {
    let client = state.egress.client(Duration::from_secs(10))?;
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let due = match webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::DeliveredAt.is_null())
            .filter(webhook_delivery::Column::NextAttemptAt.lte(Utc::now()))
            .order_by_asc(webhook_delivery::Column::NextAttemptAt)
            .limit(20)
            .all(&state.read)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "scanning webhook deliveries failed");
                continue;
            }
        };
        for d in due {
            if state.shutdown.is_cancelled() {
                return Ok(());
            }
            if let Err(e) = attempt(&state, &client, d).await {
                tracing::warn!(error = %e, "webhook bookkeeping failed; the delivery is retried");
            }
        }
    }
}

async fn attempt(
    state: &Shared,
    client: &reqwest::Client,
    d: webhook_delivery::Model,
) -> Result<(), DbErr> {
    // Claim: only the replica whose conditional update wins sends this attempt.
    let claimed = webhook_delivery::Entity::update_many()
        .col_expr(
            webhook_delivery::Column::NextAttemptAt,
            Expr::value(Utc::now() + LEASE),
        )
        .filter(webhook_delivery::Column::Id.eq(d.id))
        .filter(webhook_delivery::Column::NextAttemptAt.eq(d.next_attempt_at))
        .filter(webhook_delivery::Column::DeliveredAt.is_null())
        .exec(&state.db)
        .await?;
    if claimed.rows_affected != 1 {
        return Ok(());
    }
    let hook = webhook::Entity::find_by_id((d.shop_id.clone(), d.channel.clone()))
        .one(&state.db)
        .await?;
    let r = reply::Entity::find_by_id(d.reply_cursor)
        .one(&state.db)
        .await?;
    let (Some(hook), Some(r)) = (hook, r) else {
        // Webhook removed: nothing to deliver to.
        return finish(state, &d, Ok(())).await;
    };
    let body = serde_json::json!({
        "delivery_id": d.id,
        "shop_id": r.shop_id,
        "reply": {
            "cursor": r.cursor, "reply_id": r.reply_id, "message_id": r.message_id,
            "conversation_id": r.conversation_id, "customer_id": r.customer_id,
            "channel": r.channel, "channel_user_id": r.channel_user_id, "text": r.text,
            "language": r.language, "source": r.source, "intent": r.intent,
            "ticket_id": r.ticket_id, "created_at": r.created_at.to_rfc3339(),
        }
    })
    .to_string();
    if let Err(why) = state.egress.check_literal(&hook.url) {
        return finish(state, &d, Err(why)).await;
    }
    let result = client
        .post(&hook.url)
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, sign(&hook.secret, body.as_bytes()))
        .header("x-kefu-delivery", d.id.to_string())
        .body(body)
        .send()
        .await;
    let outcome = match result {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) if resp.status().is_redirection() => Err(format!(
            "HTTP {}: redirects are not followed (register the final URL)",
            resp.status()
        )),
        Ok(resp) => Err(format!("HTTP {}", resp.status())),
        Err(e) => Err(error_chain(&e)),
    };
    finish(state, &d, outcome).await
}

/// An error with its causes (reqwest's own message hides why a connection failed, e.g. that
/// the egress policy refused the address).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

async fn finish(
    state: &Shared,
    d: &webhook_delivery::Model,
    outcome: Result<(), String>,
) -> Result<(), DbErr> {
    let attempts = d.attempts + 1;
    let mut update = webhook_delivery::Entity::update_many()
        .col_expr(webhook_delivery::Column::Attempts, Expr::value(attempts))
        .filter(webhook_delivery::Column::Id.eq(d.id));
    match outcome {
        Ok(()) => {
            update = update.col_expr(
                webhook_delivery::Column::DeliveredAt,
                Expr::value(Some(Utc::now())),
            );
            tracing::info!(delivery = d.id, attempts, "webhook delivered");
        }
        Err(error) => {
            tracing::warn!(delivery = d.id, attempts, %error, "webhook delivery failed; retrying with backoff");
            update = update
                .col_expr(
                    webhook_delivery::Column::NextAttemptAt,
                    Expr::value(Utc::now() + backoff(attempts)),
                )
                .col_expr(
                    webhook_delivery::Column::LastError,
                    Expr::value(error.chars().take(500).collect::<String>()),
                );
        }
    }
    update.exec(&state.db).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_reference() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(backoff(1), chrono::Duration::seconds(1));
        assert_eq!(backoff(3), chrono::Duration::seconds(4));
        assert_eq!(backoff(30), chrono::Duration::seconds(300));
    }
}
