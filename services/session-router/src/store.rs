//! Persistence of identities, conversations, messages and replies.
use chrono::{Duration, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, sea_query::OnConflict,
};

use crate::{
    entity::{
        conversation, conversation_state, customer_key, identity, identity_change, message, reply,
        shop_policy,
    },
    policy::Policy,
};
use kefu_runtime::db;

/// A conversation stays open while messages keep coming within this window.
pub const CONVERSATION_IDLE: Duration = Duration::hours(24);
/// How many recent intents a conversation remembers.
const RECENT_INTENTS: usize = 5;

/// A customer message as accepted.
pub struct Accepted {
    pub message: message::Model,
    pub duplicate: bool,
}

/// Finds the message for an idempotency key: the channel's message id is only unique per
/// channel user.
pub async fn find_message<C: ConnectionTrait>(
    db: &C,
    shop_id: &str,
    channel: &str,
    channel_user_id: &str,
    channel_message_id: &str,
) -> Result<Option<message::Model>, DbErr> {
    message::Entity::find()
        .filter(message::Column::ShopId.eq(shop_id))
        .filter(message::Column::Channel.eq(channel))
        .filter(message::Column::ChannelUserId.eq(channel_user_id))
        .filter(message::Column::ChannelMessageId.eq(channel_message_id))
        .one(db)
        .await
}

/// The customer behind a channel identity, created on first contact.
pub async fn customer_for<C: ConnectionTrait>(
    db: &C,
    shop_id: &str,
    channel: &str,
    channel_user_id: &str,
) -> Result<String, DbErr> {
    identity::Entity::insert(identity::ActiveModel {
        shop_id: Set(shop_id.to_owned()),
        channel: Set(channel.to_owned()),
        channel_user_id: Set(channel_user_id.to_owned()),
        customer_id: Set(format!("cus_{}", uuid::Uuid::new_v4().simple())),
        created_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::columns([
            identity::Column::ShopId,
            identity::Column::Channel,
            identity::Column::ChannelUserId,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    identity::Entity::find_by_id((
        shop_id.to_owned(),
        channel.to_owned(),
        channel_user_id.to_owned(),
    ))
    .one(db)
    .await?
    .map(|i| i.customer_id)
    .ok_or_else(|| DbErr::RecordNotFound("identity".into()))
}

/// The customer's open conversation, or a new one.
async fn conversation_for<C: ConnectionTrait>(
    db: &C,
    shop_id: &str,
    customer_id: &str,
    idle: Duration,
) -> Result<String, DbErr> {
    let now = Utc::now();
    let latest = conversation::Entity::find()
        .filter(conversation::Column::ShopId.eq(shop_id))
        .filter(conversation::Column::CustomerId.eq(customer_id))
        .order_by_desc(conversation::Column::LastMessageAt)
        .one(db)
        .await?;
    if let Some(c) = &latest
        && now - c.last_message_at < idle
        && c.state != conversation_state::CLOSED
    {
        return Ok(c.conversation_id.clone());
    }
    // The customer's previous conversation (closed by an agent or by idleness) is linked from
    // the new one.
    let previous = latest.map(|c| c.conversation_id).unwrap_or_default();
    let id = format!("conv_{}", uuid::Uuid::new_v4().simple());
    conversation::Entity::insert(conversation::ActiveModel {
        conversation_id: Set(id.clone()),
        shop_id: Set(shop_id.to_owned()),
        customer_id: Set(customer_id.to_owned()),
        recent_intents: Set(String::new()),
        open_ticket_id: Set(String::new()),
        previous_conversation_id: Set(previous),
        state: Set(conversation_state::BOT.into()),
        ticket_seq: Set(0),
        created_at: Set(now),
        last_message_at: Set(now),
    })
    .exec(db)
    .await?;
    Ok(id)
}

/// [`accept_with_idle`] with the default idle timeout.
pub async fn accept(
    db: &DatabaseConnection,
    shop_id: &str,
    channel: &str,
    channel_user_id: &str,
    channel_message_id: &str,
    text: &str,
) -> Result<Accepted, DbErr> {
    accept_with_idle(
        db,
        CONVERSATION_IDLE,
        shop_id,
        channel,
        channel_user_id,
        channel_message_id,
        text,
    )
    .await
}

/// Stores a new message, or finds the one with the same idempotency key. The message joins
/// the customer's conversation unless it has been idle for `idle`; then a new conversation
/// starts, linked to the old one. Customer, conversation and message are written in one
/// transaction (one commit instead of five) that holds the customer's lock
/// ([`db::lock_key`]), so two first messages of one customer cannot open two conversations.
pub async fn accept_with_idle(
    db: &DatabaseConnection,
    idle: Duration,
    shop_id: &str,
    channel: &str,
    channel_user_id: &str,
    channel_message_id: &str,
    text: &str,
) -> Result<Accepted, DbErr> {
    let duplicate = |message| Accepted {
        message,
        duplicate: true,
    };
    if let Some(m) = find_message(db, shop_id, channel, channel_user_id, channel_message_id).await?
    {
        return Ok(duplicate(m));
    }
    let txn = db::begin_write(db).await?;
    let customer_id = customer_for(&txn, shop_id, channel, channel_user_id).await?;
    // One customer's simultaneous first messages must find one conversation, not open one
    // each (PostgreSQL; SQLite serialises every write transaction already).
    db::lock_key(&txn, &format!("kefu.conversation/{shop_id}/{customer_id}")).await?;
    let conversation_id = conversation_for(&txn, shop_id, &customer_id, idle).await?;
    let now = Utc::now();
    let model = message::Model {
        message_id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
        shop_id: shop_id.to_owned(),
        channel: channel.to_owned(),
        channel_user_id: channel_user_id.to_owned(),
        channel_message_id: channel_message_id.to_owned(),
        conversation_id: conversation_id.clone(),
        customer_id,
        text: text.to_owned(),
        created_at: now,
        published: false,
        route: String::new(),
        route_reason: String::new(),
        intent: String::new(),
        traceparent: kefu_runtime::telemetry::current_trace_headers()
            .remove("traceparent")
            .unwrap_or_default(),
    };
    let active: message::ActiveModel = model.clone().into();
    match message::Entity::insert(active)
        .exec_without_returning(&txn)
        .await
    {
        Ok(_) => {}
        Err(e) if db::is_unique_violation(&e) => {
            // A concurrent Send with the same key won the race (PostgreSQL; SQLite serialises
            // writers at BEGIN). The failed transaction is void: read the winner outside it.
            txn.rollback().await?;
            let m = find_message(db, shop_id, channel, channel_user_id, channel_message_id)
                .await?
                .ok_or_else(|| DbErr::RecordNotFound("message".into()))?;
            return Ok(duplicate(m));
        }
        Err(e) => return Err(e),
    }
    conversation::Entity::update_many()
        .col_expr(
            conversation::Column::LastMessageAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(conversation::Column::ConversationId.eq(conversation_id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(Accepted {
        message: model,
        duplicate: false,
    })
}

/// Marks messages whose inbound event the broker acknowledged, in one statement.
pub async fn mark_published(db: &DatabaseConnection, message_ids: &[String]) -> Result<(), DbErr> {
    if message_ids.is_empty() {
        return Ok(());
    }
    message::Entity::update_many()
        .col_expr(
            message::Column::Published,
            sea_orm::sea_query::Expr::value(true),
        )
        .filter(message::Column::MessageId.is_in(message_ids.iter().cloned()))
        .exec(db)
        .await?;
    Ok(())
}

/// Messages whose inbound event was not acknowledged (crash or broker outage after commit).
pub async fn unpublished(
    db: &DatabaseConnection,
    older_than: Duration,
    limit: u64,
) -> Result<Vec<message::Model>, DbErr> {
    message::Entity::find()
        .filter(message::Column::Published.eq(false))
        .filter(message::Column::CreatedAt.lt(Utc::now() - older_than))
        .order_by_asc(message::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await
}

pub async fn message(
    db: &DatabaseConnection,
    message_id: &str,
) -> Result<Option<message::Model>, DbErr> {
    message::Entity::find_by_id(message_id.to_owned())
        .one(db)
        .await
}

pub async fn conversation(
    db: &DatabaseConnection,
    conversation_id: &str,
) -> Result<Option<conversation::Model>, DbErr> {
    conversation::Entity::find_by_id(conversation_id.to_owned())
        .one(db)
        .await
}

/// Records the policy's decision for a message once; later calls keep the first decision, so a
/// replayed event is routed the same way. Returns the stored message.
pub async fn decide_route(
    db: &DatabaseConnection,
    message_id: &str,
    route: &str,
    reason: &str,
    intent: &str,
) -> Result<message::Model, DbErr> {
    let txn = kefu_runtime::db::begin_write(db).await?;
    let res = message::Entity::update_many()
        .col_expr(
            message::Column::Route,
            sea_orm::sea_query::Expr::value(route),
        )
        .col_expr(
            message::Column::RouteReason,
            sea_orm::sea_query::Expr::value(reason),
        )
        .col_expr(
            message::Column::Intent,
            sea_orm::sea_query::Expr::value(intent),
        )
        .filter(message::Column::MessageId.eq(message_id))
        .filter(message::Column::Route.eq(""))
        .exec(&txn)
        .await?;
    let m = message::Entity::find_by_id(message_id.to_owned())
        .one(&txn)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("message {message_id}")))?;
    if res.rows_affected == 1 {
        remember_intent(&txn, &m.conversation_id, intent).await?;
        if route == "human" {
            // Handed over: the bot stays silent until an agent hands the conversation back.
            conversation::Entity::update_many()
                .col_expr(
                    conversation::Column::State,
                    sea_orm::sea_query::Expr::value(conversation_state::WAITING_FOR_HUMAN),
                )
                .filter(conversation::Column::ConversationId.eq(m.conversation_id.clone()))
                .filter(conversation::Column::State.eq(conversation_state::BOT))
                .exec(&txn)
                .await?;
        }
    }
    txn.commit().await?;
    Ok(m)
}

async fn remember_intent<C: ConnectionTrait>(
    db: &C,
    conversation_id: &str,
    intent: &str,
) -> Result<(), DbErr> {
    let Some(c) = conversation::Entity::find_by_id(conversation_id.to_owned())
        .one(db)
        .await?
    else {
        return Ok(());
    };
    let mut intents: Vec<&str> = vec![intent];
    intents.extend(c.intents());
    intents.truncate(RECENT_INTENTS);
    conversation::Entity::update_many()
        .col_expr(
            conversation::Column::RecentIntents,
            sea_orm::sea_query::Expr::value(intents.join(",")),
        )
        .filter(conversation::Column::ConversationId.eq(conversation_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Stores a reply once (unique on reply_id). Returns the stored row and whether it was new.
pub async fn store_reply(
    db: &DatabaseConnection,
    r: reply::ActiveModel,
) -> Result<Option<reply::Model>, DbErr> {
    let reply_id = match &r.reply_id {
        Set(id) => id.clone(),
        _ => return Err(DbErr::Custom("reply_id required".into())),
    };
    let shop_id = match &r.shop_id {
        Set(c) => c.clone(),
        _ => return Err(DbErr::Custom("shop_id required".into())),
    };
    let txn = kefu_runtime::db::begin_write(db).await?;
    // Cursors come from a sequence, which PostgreSQL hands out in insert order, not commit
    // order. Serialising a shop's reply inserts makes its cursors commit in order, so a
    // subscriber that has seen cursor N can never miss a later-committed N-1.
    kefu_runtime::db::lock_key(&txn, &format!("kefu.replies/{shop_id}")).await?;
    let inserted = reply::Entity::insert(r)
        .on_conflict(
            OnConflict::column(reply::Column::ReplyId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    if inserted == 0 {
        txn.rollback().await?;
        return Ok(None);
    }
    let row = reply::Entity::find()
        .filter(reply::Column::ReplyId.eq(reply_id))
        .one(&txn)
        .await?;
    if let Some(r) = &row {
        crate::webhook::enqueue(&txn, r).await?;
    }
    txn.commit().await?;
    Ok(row)
}

/// Replies of a shop after `cursor`, oldest first.
pub async fn replies_after(
    db: &DatabaseConnection,
    shop_id: &str,
    conversation_id: Option<&str>,
    channel: Option<&str>,
    cursor: i64,
    limit: u64,
) -> Result<Vec<reply::Model>, DbErr> {
    let mut q = reply::Entity::find()
        .filter(reply::Column::ShopId.eq(shop_id))
        .filter(reply::Column::Cursor.gt(cursor));
    if let Some(c) = conversation_id {
        q = q.filter(reply::Column::ConversationId.eq(c));
    }
    if let Some(c) = channel {
        q = q.filter(reply::Column::Channel.eq(c));
    }
    q.order_by_asc(reply::Column::Cursor)
        .limit(limit)
        .all(db)
        .await
}

/// The first reply to a message, if any.
pub async fn reply_for_message(
    db: &DatabaseConnection,
    message_id: &str,
) -> Result<Option<reply::Model>, DbErr> {
    reply::Entity::find()
        .filter(reply::Column::MessageId.eq(message_id))
        .order_by_asc(reply::Column::Cursor)
        .one(db)
        .await
}

/// A conversation of `shop_id` (never another shop's).
pub async fn shop_conversation(
    db: &DatabaseConnection,
    shop_id: &str,
    conversation_id: &str,
) -> Result<Option<conversation::Model>, DbErr> {
    conversation::Entity::find_by_id(conversation_id.to_owned())
        .filter(conversation::Column::ShopId.eq(shop_id))
        .one(db)
        .await
}

/// The state a conversation reads as: its stored state, or `closed` once idle past `idle`.
pub fn effective_state(c: &conversation::Model, idle: Duration) -> &str {
    if Utc::now() - c.last_message_at >= idle {
        conversation_state::CLOSED
    } else {
        &c.state
    }
}

/// Filters of [`list_conversations`].
#[derive(Default)]
pub struct ConversationFilter<'a> {
    pub customer_id: Option<&'a str>,
    /// One of [`conversation_state::ALL`], as [`effective_state`] reads it.
    pub state: Option<&'a str>,
    /// The idle timeout (for the `closed` state).
    pub idle: Duration,
}

/// A shop's conversations, most recently active first.
pub async fn list_conversations(
    db: &DatabaseConnection,
    shop_id: &str,
    filter: ConversationFilter<'_>,
    limit: u64,
    offset: u64,
) -> Result<Vec<conversation::Model>, DbErr> {
    use sea_orm::Condition;
    let mut q = conversation::Entity::find().filter(conversation::Column::ShopId.eq(shop_id));
    if let Some(c) = filter.customer_id {
        q = q.filter(conversation::Column::CustomerId.eq(c));
    }
    if let Some(state) = filter.state {
        let idle_since = Utc::now() - filter.idle;
        q = if state == conversation_state::CLOSED {
            q.filter(
                Condition::any()
                    .add(conversation::Column::State.eq(state))
                    .add(conversation::Column::LastMessageAt.lte(idle_since)),
            )
        } else {
            q.filter(conversation::Column::State.eq(state))
                .filter(conversation::Column::LastMessageAt.gt(idle_since))
        };
    }
    q.order_by_desc(conversation::Column::LastMessageAt)
        .order_by_asc(conversation::Column::ConversationId)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await
}

/// One line of a transcript.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Message(message::Model),
    Reply(reply::Model),
}

impl Line {
    pub fn at(&self) -> chrono::DateTime<Utc> {
        match self {
            Line::Message(m) => m.created_at,
            Line::Reply(r) => r.created_at,
        }
    }
}

/// A conversation's messages and replies in time order (a reply after the message it answers).
pub async fn transcript(
    db: &DatabaseConnection,
    shop_id: &str,
    conversation_id: &str,
    limit: u64,
    offset: u64,
) -> Result<Vec<Line>, DbErr> {
    let upto = offset.saturating_add(limit);
    let messages = message::Entity::find()
        .filter(message::Column::ShopId.eq(shop_id))
        .filter(message::Column::ConversationId.eq(conversation_id))
        .order_by_asc(message::Column::CreatedAt)
        .order_by_asc(message::Column::MessageId)
        .limit(upto)
        .all(db)
        .await?;
    let replies = reply::Entity::find()
        .filter(reply::Column::ShopId.eq(shop_id))
        .filter(reply::Column::ConversationId.eq(conversation_id))
        .order_by_asc(reply::Column::Cursor)
        .limit(upto)
        .all(db)
        .await?;
    let mut lines: Vec<Line> = messages
        .into_iter()
        .map(Line::Message)
        .chain(replies.into_iter().map(Line::Reply))
        .collect();
    // Stable: on equal times a message sorts before replies.
    lines.sort_by_key(|l| (l.at(), matches!(l, Line::Reply(_))));
    Ok(lines
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect())
}

/// A customer's identities (empty when the customer is not the shop's).
pub async fn identities(
    db: &DatabaseConnection,
    shop_id: &str,
    customer_id: &str,
) -> Result<Vec<identity::Model>, DbErr> {
    identity::Entity::find()
        .filter(identity::Column::ShopId.eq(shop_id))
        .filter(identity::Column::CustomerId.eq(customer_id))
        .order_by_asc(identity::Column::CreatedAt)
        .all(db)
        .await
}

/// Why a link or unlink was refused.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

async fn audit<C: ConnectionTrait>(
    db: &C,
    shop_id: &str,
    action: &str,
    ident: &(String, String),
    from: &str,
    to: &str,
    reason: &str,
) -> Result<(), DbErr> {
    identity_change::Entity::insert(identity_change::ActiveModel {
        id: sea_orm::ActiveValue::NotSet,
        shop_id: Set(shop_id.to_owned()),
        action: Set(action.to_owned()),
        channel: Set(ident.0.clone()),
        channel_user_id: Set(ident.1.clone()),
        from_customer_id: Set(from.to_owned()),
        to_customer_id: Set(to.to_owned()),
        reason: Set(reason.to_owned()),
        created_at: Set(Utc::now()),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Links `(channel, channel_user_id)` identities to `customer_id`, creating those not seen yet.
pub async fn link(
    db: &DatabaseConnection,
    shop_id: &str,
    customer_id: &str,
    idents: &[(String, String)],
    reason: &str,
) -> Result<(), GraphError> {
    if identities(db, shop_id, customer_id).await?.is_empty() {
        return Err(GraphError::NotFound(format!(
            "customer {customer_id} not found"
        )));
    }
    let txn = kefu_runtime::db::begin_write(db).await?;
    for ident in idents {
        let existing =
            identity::Entity::find_by_id((shop_id.to_owned(), ident.0.clone(), ident.1.clone()))
                .one(&txn)
                .await?;
        let from = match existing {
            Some(i) if i.customer_id == customer_id => continue,
            Some(i) => {
                identity::Entity::update_many()
                    .col_expr(
                        identity::Column::CustomerId,
                        sea_orm::sea_query::Expr::value(customer_id),
                    )
                    .filter(identity::Column::ShopId.eq(shop_id))
                    .filter(identity::Column::Channel.eq(ident.0.clone()))
                    .filter(identity::Column::ChannelUserId.eq(ident.1.clone()))
                    .exec(&txn)
                    .await?;
                i.customer_id
            }
            None => {
                identity::Entity::insert(identity::ActiveModel {
                    shop_id: Set(shop_id.to_owned()),
                    channel: Set(ident.0.clone()),
                    channel_user_id: Set(ident.1.clone()),
                    customer_id: Set(customer_id.to_owned()),
                    created_at: Set(Utc::now()),
                })
                .exec_without_returning(&txn)
                .await?;
                String::new()
            }
        };
        audit(&txn, shop_id, "link", ident, &from, customer_id, reason).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Undoes the link of one identity: it returns to the customer it had before its last link (a
/// new customer when it had none), and its messages in the old customer's conversations move
/// to a conversation of their own. Returns (customer, conversation or "").
pub async fn unlink(
    db: &DatabaseConnection,
    shop_id: &str,
    ident: &(String, String),
    reason: &str,
) -> Result<(String, String), GraphError> {
    let txn = kefu_runtime::db::begin_write(db).await?;
    let current =
        identity::Entity::find_by_id((shop_id.to_owned(), ident.0.clone(), ident.1.clone()))
            .one(&txn)
            .await?
            .ok_or_else(|| {
                GraphError::NotFound(format!("identity {}:{} not found", ident.0, ident.1))
            })?;
    let old = current.customer_id.clone();
    let last_link = identity_change::Entity::find()
        .filter(identity_change::Column::ShopId.eq(shop_id))
        .filter(identity_change::Column::Channel.eq(ident.0.clone()))
        .filter(identity_change::Column::ChannelUserId.eq(ident.1.clone()))
        .filter(identity_change::Column::Action.eq("link"))
        .filter(identity_change::Column::ToCustomerId.eq(old.clone()))
        .order_by_desc(identity_change::Column::Id)
        .one(&txn)
        .await?;
    let new_customer = match last_link {
        Some(l) if !l.from_customer_id.is_empty() => l.from_customer_id,
        _ => format!("cus_{}", uuid::Uuid::new_v4().simple()),
    };
    identity::Entity::update_many()
        .col_expr(
            identity::Column::CustomerId,
            sea_orm::sea_query::Expr::value(new_customer.clone()),
        )
        .filter(identity::Column::ShopId.eq(shop_id))
        .filter(identity::Column::Channel.eq(ident.0.clone()))
        .filter(identity::Column::ChannelUserId.eq(ident.1.clone()))
        .exec(&txn)
        .await?;
    let moved = message::Entity::find()
        .filter(message::Column::ShopId.eq(shop_id))
        .filter(message::Column::Channel.eq(ident.0.clone()))
        .filter(message::Column::ChannelUserId.eq(ident.1.clone()))
        .filter(message::Column::CustomerId.eq(old.clone()))
        .order_by_asc(message::Column::CreatedAt)
        .all(&txn)
        .await?;
    let mut conversation_id = String::new();
    if let (Some(first), Some(last)) = (moved.first(), moved.last()) {
        conversation_id = format!("conv_{}", uuid::Uuid::new_v4().simple());
        conversation::Entity::insert(conversation::ActiveModel {
            conversation_id: Set(conversation_id.clone()),
            shop_id: Set(shop_id.to_owned()),
            customer_id: Set(new_customer.clone()),
            recent_intents: Set(String::new()),
            open_ticket_id: Set(String::new()),
            previous_conversation_id: Set(String::new()),
            state: Set(conversation_state::BOT.into()),
            ticket_seq: Set(0),
            created_at: Set(first.created_at),
            last_message_at: Set(last.created_at),
        })
        .exec_without_returning(&txn)
        .await?;
        let ids: Vec<String> = moved.iter().map(|m| m.message_id.clone()).collect();
        message::Entity::update_many()
            .col_expr(
                message::Column::ConversationId,
                sea_orm::sea_query::Expr::value(conversation_id.clone()),
            )
            .col_expr(
                message::Column::CustomerId,
                sea_orm::sea_query::Expr::value(new_customer.clone()),
            )
            .filter(message::Column::MessageId.is_in(ids.clone()))
            .exec(&txn)
            .await?;
        reply::Entity::update_many()
            .col_expr(
                reply::Column::ConversationId,
                sea_orm::sea_query::Expr::value(conversation_id.clone()),
            )
            .col_expr(
                reply::Column::CustomerId,
                sea_orm::sea_query::Expr::value(new_customer.clone()),
            )
            .filter(reply::Column::ShopId.eq(shop_id))
            .filter(reply::Column::MessageId.is_in(ids))
            .exec(&txn)
            .await?;
    }
    audit(&txn, shop_id, "unlink", ident, &old, &new_customer, reason).await?;
    txn.commit().await?;
    Ok((new_customer, conversation_id))
}

/// The audit trail of a customer: changes that moved an identity to or from them.
pub async fn identity_history(
    db: &DatabaseConnection,
    shop_id: &str,
    customer_id: &str,
) -> Result<Vec<identity_change::Model>, DbErr> {
    identity_change::Entity::find()
        .filter(identity_change::Column::ShopId.eq(shop_id))
        .filter(
            sea_orm::Condition::any()
                .add(identity_change::Column::FromCustomerId.eq(customer_id))
                .add(identity_change::Column::ToCustomerId.eq(customer_id)),
        )
        .order_by_asc(identity_change::Column::Id)
        .all(db)
        .await
}

/// The shop's dialogue policy, if it set one.
pub async fn shop_policy(db: &DatabaseConnection, shop_id: &str) -> Result<Option<Policy>, DbErr> {
    Ok(shop_policy::Entity::find_by_id(shop_id.to_owned())
        .one(db)
        .await?
        .map(|p| Policy {
            min_confidence: p.min_confidence as f32,
            max_repeats: p.max_repeats.max(0) as usize,
            human_intents: crate::entity::split_list(&p.human_intents)
                .map(str::to_owned)
                .collect(),
        }))
}

/// Stores (replaces) the shop's dialogue policy.
pub async fn set_shop_policy(
    db: &DatabaseConnection,
    shop_id: &str,
    p: &Policy,
) -> Result<(), DbErr> {
    shop_policy::Entity::insert(shop_policy::ActiveModel {
        shop_id: Set(shop_id.to_owned()),
        min_confidence: Set(f64::from(p.min_confidence)),
        max_repeats: Set(p.max_repeats as i32),
        human_intents: Set(p.human_intents.join(",")),
        updated_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(shop_policy::Column::ShopId)
            .update_columns([
                shop_policy::Column::MinConfidence,
                shop_policy::Column::MaxRepeats,
                shop_policy::Column::HumanIntents,
                shop_policy::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Links an identity to the customer who already proved the same verified keys (`(kind,
/// normalised value)`), or records the keys for the identity's own customer. Returns the
/// identity's customer afterwards.
///
/// Keys are stored as `hashes`' keyed hash. A row still holding the legacy plain SHA-256 of the
/// same value is found too and rewritten to the keyed hash (the lazy migration of
/// docs/security.md).
pub async fn link_verified(
    db: &DatabaseConnection,
    hashes: &kefu_runtime::customer_key::CustomerKeys,
    shop_id: &str,
    channel: &str,
    channel_user_id: &str,
    keys: &[(&'static str, String)],
) -> Result<String, GraphError> {
    let mut customer = customer_for(db, shop_id, channel, channel_user_id).await?;
    for (kind, value) in keys {
        let [hash, legacy] = hashes.candidates(value);
        let known = find_key(db, shop_id, kind, &hash, &legacy).await?;
        match known {
            Some(k) if k.customer_id != customer => {
                // Only link to a customer that still exists in the shop.
                if !identities(db, shop_id, &k.customer_id).await?.is_empty() {
                    let ident = (channel.to_owned(), channel_user_id.to_owned());
                    link(
                        db,
                        shop_id,
                        &k.customer_id,
                        &[ident],
                        &format!("verified {kind} matched"),
                    )
                    .await?;
                    customer = k.customer_id;
                }
            }
            Some(_) => {}
            None => {
                customer_key::Entity::insert(customer_key::ActiveModel {
                    shop_id: Set(shop_id.to_owned()),
                    kind: Set(kind.to_string()),
                    value_sha256: Set(hash),
                    customer_id: Set(customer.clone()),
                    created_at: Set(Utc::now()),
                })
                .on_conflict(
                    OnConflict::columns([
                        customer_key::Column::ShopId,
                        customer_key::Column::Kind,
                        customer_key::Column::ValueSha256,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(db)
                .await?;
            }
        }
    }
    Ok(customer)
}

/// The stored key of `(kind, value)`: the keyed `hash`, or else a legacy row holding the plain
/// SHA-256, which is rewritten to `hash` in one transaction (and then returned as such).
async fn find_key(
    db: &DatabaseConnection,
    shop_id: &str,
    kind: &str,
    hash: &str,
    legacy: &str,
) -> Result<Option<customer_key::Model>, DbErr> {
    let by = |value: &str| {
        customer_key::Entity::find_by_id((shop_id.to_owned(), kind.to_owned(), value.to_owned()))
    };
    if let Some(k) = by(hash).one(db).await? {
        return Ok(Some(k));
    }
    let txn = kefu_runtime::db::begin_write(db).await?;
    let Some(old) = by(legacy).one(&txn).await? else {
        // Another replica may have migrated it between the two reads: its keyed row is
        // committed by now.
        return by(hash).one(&txn).await;
    };
    customer_key::Entity::delete_by_id((shop_id.to_owned(), kind.to_owned(), legacy.to_owned()))
        .exec(&txn)
        .await?;
    let migrated = customer_key::Model {
        value_sha256: hash.to_owned(),
        ..old
    };
    customer_key::Entity::insert(customer_key::ActiveModel::from(migrated.clone()))
        .on_conflict(
            OnConflict::columns([
                customer_key::Column::ShopId,
                customer_key::Column::Kind,
                customer_key::Column::ValueSha256,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    tracing::info!(
        shop_id,
        kind,
        "migrated a legacy customer key to the keyed hash"
    );
    Ok(Some(migrated))
}

/// What a ticket event does to its conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketChange {
    Opened,
    AgentReplied,
    HandedBack,
    Closed,
}

/// Applies a ticket change to the conversation unless a change with a higher or equal `seq` was
/// applied already. Returns whether it changed anything.
pub async fn apply_ticket_change(
    db: &DatabaseConnection,
    shop_id: &str,
    conversation_id: &str,
    ticket_id: &str,
    seq: i64,
    change: TicketChange,
) -> Result<bool, DbErr> {
    use sea_orm::sea_query::Expr;
    let (state, ticket) = match change {
        TicketChange::Opened => (conversation_state::WAITING_FOR_HUMAN, ticket_id),
        TicketChange::AgentReplied => (conversation_state::HUMAN, ticket_id),
        TicketChange::HandedBack => (conversation_state::BOT, ""),
        TicketChange::Closed => (conversation_state::CLOSED, ""),
    };
    let mut update = conversation::Entity::update_many()
        .col_expr(conversation::Column::State, Expr::value(state))
        .col_expr(conversation::Column::OpenTicketId, Expr::value(ticket))
        .col_expr(conversation::Column::TicketSeq, Expr::value(seq));
    if change == TicketChange::HandedBack {
        // A fresh start for the bot: earlier repeats must not hand it straight back.
        update = update.col_expr(conversation::Column::RecentIntents, Expr::value(""));
    }
    let res = update
        .filter(conversation::Column::ConversationId.eq(conversation_id))
        .filter(conversation::Column::ShopId.eq(shop_id))
        .filter(conversation::Column::TicketSeq.lt(seq))
        .exec(db)
        .await?;
    Ok(res.rows_affected == 1)
}

/// The keys order-sync matches buyers on: the customer's identities (`channel:user`) and the
/// keyed hashes (or, not migrated yet, legacy SHA-256) of their verified phone numbers and
/// e-mail addresses.
pub async fn customer_keys(
    db: &DatabaseConnection,
    shop_id: &str,
    customer_id: &str,
) -> Result<Vec<(String, String)>, DbErr> {
    let mut keys: Vec<(String, String)> = identities(db, shop_id, customer_id)
        .await?
        .into_iter()
        .map(|i| {
            (
                "identity".to_owned(),
                format!("{}:{}", i.channel, i.channel_user_id),
            )
        })
        .collect();
    keys.extend(
        customer_key::Entity::find()
            .filter(customer_key::Column::ShopId.eq(shop_id))
            .filter(customer_key::Column::CustomerId.eq(customer_id))
            .limit(10)
            .all(db)
            .await?
            .into_iter()
            .map(|k| (k.kind, k.value_sha256)),
    );
    keys.truncate(20);
    Ok(keys)
}
