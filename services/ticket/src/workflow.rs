//! A ticket's life: opened by an escalation, appended to while the conversation is with a
//! person, answered by agents, handed back or closed. Each change is one transaction that also
//! writes its event to the `ticket_events` outbox; [`publish_pending`] sends the outbox to
//! Kafka (after the commit, and from a relay for anything a crash or an outage left behind).

use chrono::Utc;
use kefu_proto::events::v1::{
    EventMeta, MessageEvent, ReplyEvent, ReplySource, TicketEvent, TicketEventKind,
};
use kefu_runtime::{
    event,
    grpc::ApiError,
    kafka::{KafkaConfig, Producer, topics},
};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};

use crate::entity::{status, ticket, ticket_event, ticket_message};

/// Ticket id for an escalated message (deterministic, so replays find the same ticket).
pub fn ticket_id_for(message_id: &str) -> String {
    let id = event::derive_id(message_id, "ticket");
    format!("T-{}", &id.replace('-', "")[..12].to_uppercase())
}

/// The id of the reply an agent's request produces (stable across retries of the request).
pub fn reply_id_for(ticket_id: &str, request_id: &str) -> String {
    event::derive_id(&format!("{ticket_id}/{request_id}"), "ticket.agent-reply")
}

/// What an escalated message did.
#[derive(Debug, PartialEq, Eq)]
pub enum Escalated {
    /// It opened this ticket (also on a replay of the opening message).
    Opened(ticket::Model),
    /// It joined the conversation's unfinished ticket; the bot stays silent.
    Appended(ticket::Model),
    /// It had joined a ticket before (a replay).
    AlreadyAppended,
}

fn event_row(t: &ticket::Model, kind: &str, agent_id: &str) -> ticket_event::ActiveModel {
    ticket_event::ActiveModel {
        seq: NotSet,
        ticket_id: Set(t.ticket_id.clone()),
        shop_id: Set(t.shop_id.clone()),
        conversation_id: Set(t.conversation_id.clone()),
        customer_id: Set(t.customer_id.clone()),
        message_id: Set(t.last_message_id.clone()),
        kind: Set(kind.into()),
        agent_id: Set(agent_id.into()),
        reply_id: Set(String::new()),
        reply_text: Set(String::new()),
        language: Set(t.language.clone()),
        channel: Set(t.channel.clone()),
        channel_user_id: Set(t.channel_user_id.clone()),
        published: Set(false),
        created_at: Set(Utc::now()),
    }
}

fn thread_row(
    ticket_id: &str,
    message_id: &str,
    author: &str,
    agent_id: &str,
    text: &str,
) -> ticket_message::ActiveModel {
    ticket_message::ActiveModel {
        id: NotSet,
        ticket_id: Set(ticket_id.into()),
        message_id: Set(message_id.into()),
        author: Set(author.into()),
        agent_id: Set(agent_id.into()),
        text: Set(text.into()),
        created_at: Set(Utc::now()),
    }
}

/// Locks a ticket's row for the rest of the transaction (PostgreSQL; SQLite serialises
/// writers anyway), so two agents acting at once produce events in commit order.
async fn locked(
    txn: &DatabaseTransaction,
    shop_id: &str,
    ticket_id: &str,
) -> Result<Option<ticket::Model>, DbErr> {
    let mut q =
        ticket::Entity::find_by_id(ticket_id.to_owned()).filter(ticket::Column::ShopId.eq(shop_id));
    if txn.get_database_backend() == DbBackend::Postgres {
        q = q.lock_exclusive();
    }
    q.one(txn).await
}

/// Opens a ticket for an escalated message, or appends the message to the conversation's
/// unfinished ticket. Idempotent on the message id.
pub async fn escalate(
    db: &DatabaseConnection,
    msg: &MessageEvent,
    meta: &EventMeta,
    sla: chrono::Duration,
) -> Result<Escalated, DbErr> {
    let txn = kefu_runtime::db::begin_write(db).await?;
    if let Some(t) = ticket::Entity::find()
        .filter(ticket::Column::MessageId.eq(meta.message_id.clone()))
        .one(&txn)
        .await?
    {
        return Ok(Escalated::Opened(t));
    }
    if ticket_message::Entity::find()
        .filter(ticket_message::Column::MessageId.eq(meta.message_id.clone()))
        .one(&txn)
        .await?
        .is_some()
    {
        return Ok(Escalated::AlreadyAppended);
    }
    let unfinished = ticket::Entity::find()
        .filter(ticket::Column::ShopId.eq(meta.shop_id.clone()))
        .filter(ticket::Column::ConversationId.eq(meta.conversation_id.clone()))
        .filter(ticket::Column::Status.is_in(status::UNFINISHED.iter().copied()))
        .order_by_desc(ticket::Column::CreatedAt)
        .one(&txn)
        .await?;
    let now = Utc::now();
    if let Some(t) = unfinished {
        let t = locked(&txn, &t.shop_id, &t.ticket_id)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(t.ticket_id.clone()))?;
        ticket_message::Entity::insert(thread_row(
            &t.ticket_id,
            &meta.message_id,
            "customer",
            "",
            &msg.text,
        ))
        .exec_without_returning(&txn)
        .await?;
        let mut active: ticket::ActiveModel = t.into();
        active.last_message_id = Set(meta.message_id.clone());
        active.updated_at = Set(now);
        let t = ticket::Entity::update(active).exec(&txn).await?;
        txn.commit().await?;
        return Ok(Escalated::Appended(t));
    }
    let t = ticket::Model {
        ticket_id: ticket_id_for(&meta.message_id),
        shop_id: meta.shop_id.clone(),
        message_id: meta.message_id.clone(),
        conversation_id: meta.conversation_id.clone(),
        customer_id: msg.customer_id.clone(),
        status: status::OPEN.into(),
        reason: msg.route_reason.clone(),
        intent: msg
            .classification
            .as_ref()
            .map(|c| c.intent.clone())
            .unwrap_or_default(),
        text: msg.text.clone(),
        language: msg.language.clone(),
        created_at: now,
        sla_due_at: now + sla,
        assignee: String::new(),
        first_response_at: None,
        updated_at: now,
        last_message_id: meta.message_id.clone(),
        channel: msg.channel.clone(),
        channel_user_id: msg.channel_user_id.clone(),
        order_id: msg.attached_order_id.clone(),
    };
    ticket::Entity::insert(ticket::ActiveModel::from(t.clone()))
        .exec_without_returning(&txn)
        .await?;
    ticket_message::Entity::insert(thread_row(
        &t.ticket_id,
        &meta.message_id,
        "customer",
        "",
        &msg.text,
    ))
    .exec_without_returning(&txn)
    .await?;
    ticket_event::Entity::insert(event_row(&t, "opened", ""))
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(Escalated::Opened(t))
}

fn ticket_not_found(ticket_id: &str) -> ApiError {
    ApiError::NotFound(format!("ticket {ticket_id} not found"))
}

/// An agent's reply: stored in the thread, the ticket becomes `active`, and the reply goes to
/// the customer through the outbox. A retry with the same `request_id` changes nothing.
pub async fn reply(
    db: &DatabaseConnection,
    shop_id: &str,
    ticket_id: &str,
    agent_id: &str,
    text: &str,
    request_id: &str,
) -> Result<(ticket::Model, String), ApiError> {
    let reply_id = reply_id_for(ticket_id, request_id);
    let txn = kefu_runtime::db::begin_write(db).await?;
    let t = locked(&txn, shop_id, ticket_id)
        .await?
        .ok_or_else(|| ticket_not_found(ticket_id))?;
    if ticket_message::Entity::find()
        .filter(ticket_message::Column::MessageId.eq(reply_id.clone()))
        .one(&txn)
        .await?
        .is_some()
    {
        return Ok((t, reply_id));
    }
    if !status::UNFINISHED.contains(&t.status.as_str()) {
        return Err(ApiError::FailedPrecondition(format!(
            "ticket {ticket_id} is {}; it takes no more replies",
            t.status
        )));
    }
    let now = Utc::now();
    ticket_message::Entity::insert(thread_row(ticket_id, &reply_id, "agent", agent_id, text))
        .exec_without_returning(&txn)
        .await?;
    let mut active: ticket::ActiveModel = t.clone().into();
    active.status = Set(status::ACTIVE.into());
    active.assignee = Set(agent_id.into());
    active.updated_at = Set(now);
    if t.first_response_at.is_none() {
        active.first_response_at = Set(Some(now));
    }
    let t = ticket::Entity::update(active).exec(&txn).await?;
    let mut ev = event_row(&t, "agent_replied", agent_id);
    ev.reply_id = Set(reply_id.clone());
    ev.reply_text = Set(text.into());
    ticket_event::Entity::insert(ev)
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok((t, reply_id))
}

/// Hands the conversation back to the bot (`handed_back`) or closes it (`closed`). Repeating
/// the same step is a no-op; a ticket finished the other way cannot change.
pub async fn finish(
    db: &DatabaseConnection,
    shop_id: &str,
    ticket_id: &str,
    agent_id: &str,
    to: &'static str,
) -> Result<ticket::Model, ApiError> {
    let txn = kefu_runtime::db::begin_write(db).await?;
    let t = locked(&txn, shop_id, ticket_id)
        .await?
        .ok_or_else(|| ticket_not_found(ticket_id))?;
    if t.status == to {
        return Ok(t);
    }
    if !status::UNFINISHED.contains(&t.status.as_str()) {
        return Err(ApiError::FailedPrecondition(format!(
            "ticket {ticket_id} is already {}",
            t.status
        )));
    }
    let mut active: ticket::ActiveModel = t.into();
    active.status = Set(to.into());
    if !agent_id.is_empty() {
        active.assignee = Set(agent_id.into());
    }
    active.updated_at = Set(Utc::now());
    let t = ticket::Entity::update(active).exec(&txn).await?;
    ticket_event::Entity::insert(event_row(&t, to, agent_id))
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(t)
}

fn kind_of(kind: &str) -> TicketEventKind {
    match kind {
        "opened" => TicketEventKind::Opened,
        "agent_replied" => TicketEventKind::AgentReplied,
        "handed_back" => TicketEventKind::HandedBack,
        "closed" => TicketEventKind::Closed,
        _ => TicketEventKind::Unspecified,
    }
}

/// The Kafka events of one outbox row: the agent's reply (if any), then the ticket change.
pub fn events_of(e: &ticket_event::Model) -> (Option<ReplyEvent>, TicketEvent) {
    let meta = |stage: &str| EventMeta {
        event_id: event::derive_id(&format!("{}/{}", e.ticket_id, e.seq), stage),
        shop_id: e.shop_id.clone(),
        occurred_at: Some(event::timestamp(e.created_at)),
        causation_id: String::new(),
        message_id: e.message_id.clone(),
        conversation_id: e.conversation_id.clone(),
    };
    let reply = (e.kind == "agent_replied").then(|| ReplyEvent {
        meta: Some(meta("ticket.agent-reply")),
        reply_id: e.reply_id.clone(),
        text: e.reply_text.clone(),
        // Agents answer in the customer's language (no translation engine is configured).
        language: e.language.clone(),
        target_language: e.language.clone(),
        source: ReplySource::Human as i32,
        intent: String::new(),
        ticket_id: e.ticket_id.clone(),
        channel: e.channel.clone(),
        channel_user_id: e.channel_user_id.clone(),
        customer_id: e.customer_id.clone(),
    });
    let change = TicketEvent {
        meta: Some(meta("ticket.update")),
        ticket_id: e.ticket_id.clone(),
        kind: kind_of(&e.kind) as i32,
        seq: e.seq,
        agent_id: e.agent_id.clone(),
        customer_id: e.customer_id.clone(),
    };
    (reply, change)
}

/// Publishes unpublished outbox rows in `seq` order and marks them published. Stops at the
/// first failure (the relay retries). Returns how many were published.
pub async fn publish_pending(
    db: &DatabaseConnection,
    producer: &Producer,
    kafka: &KafkaConfig,
) -> anyhow::Result<usize> {
    let pending = ticket_event::Entity::find()
        .filter(ticket_event::Column::Published.eq(false))
        .order_by_asc(ticket_event::Column::Seq)
        .limit(200)
        .all(db)
        .await?;
    let mut n = 0;
    for e in pending {
        let (reply, change) = events_of(&e);
        if let Some(r) = reply {
            producer
                .send_event(&kafka.topic(topics::OUTBOUND), &e.conversation_id, &r)
                .await?;
        }
        producer
            .send_event(
                &kafka.topic(topics::TICKET_UPDATES),
                &e.conversation_id,
                &change,
            )
            .await?;
        ticket_event::Entity::update_many()
            .col_expr(ticket_event::Column::Published, Expr::value(true))
            .filter(ticket_event::Column::Seq.eq(e.seq))
            .exec(db)
            .await?;
        n += 1;
    }
    Ok(n)
}
