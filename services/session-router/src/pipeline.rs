//! session-router's consumers: the dialogue policy (`classified` → `assist.requests` or
//! `ticket.escalations`), delivery (`replies` → the reply store, subscribers, waiters) and the
//! conversation state machine (`ticket.updates` → bot / waiting_for_human / human / closed).
use async_trait::async_trait;
use chrono::Utc;
use kefu_proto::{
    events::v1::{MessageEvent, ReplyEvent, ReplySource, Route, TicketEvent, TicketEventKind},
    order::v1::{CustomerKey, GetOrderRequest},
};
use kefu_runtime::{
    event,
    kafka::{Delivery, HandleError, Handled, Handler, topics},
};
use sea_orm::ActiveValue::{NotSet, Set};

use crate::{core::Shared, entity::reply, policy, store};

pub struct Consumers {
    pub state: Shared,
    pub policy: policy::Policy,
}

#[async_trait]
impl Handler for Consumers {
    async fn handle(&self, d: &Delivery) -> Result<Handled, HandleError> {
        if d.topic == self.state.kafka.topic(topics::CLASSIFIED) {
            self.route(d.decode()?).await
        } else if d.topic == self.state.kafka.topic(topics::TICKET_UPDATES) {
            self.ticket_changed(d.decode()?).await
        } else {
            self.deliver(d.decode()?).await
        }
    }
}

impl Consumers {
    async fn route(&self, mut msg: MessageEvent) -> Result<Handled, HandleError> {
        let meta = event::check_meta(msg.meta.as_ref())
            .map_err(HandleError::Undecodable)?
            .clone();
        let db = &self.state.read;
        let stored = store::message(db, &meta.message_id)
            .await?
            .ok_or_else(|| HandleError::Rejected(format!("unknown message {}", meta.message_id)))?;
        if stored.shop_id != meta.shop_id {
            return Err(HandleError::Rejected(
                "shop_id does not match the message".into(),
            ));
        }
        // The keys go with the event so the assistant can find the customer's orders.
        let mut keys = store::customer_keys(db, &meta.shop_id, &stored.customer_id).await?;
        if self
            .link_on_order(&meta.shop_id, &stored.customer_id, &msg, &keys)
            .await?
        {
            keys = store::customer_keys(db, &meta.shop_id, &stored.customer_id).await?;
        }
        msg.customer_keys = keys
            .into_iter()
            .map(|(kind, value)| CustomerKey { kind, value })
            .collect();
        let conv = store::conversation(db, &stored.conversation_id).await?;
        let intent = msg
            .classification
            .as_ref()
            .map(|c| c.intent.clone())
            .unwrap_or_else(|| "other".into());
        let stored = if stored.route.is_empty() {
            let policy = store::shop_policy(db, &meta.shop_id)
                .await?
                .unwrap_or_else(|| self.policy.clone());
            let decision = policy.decide(msg.classification.as_ref(), conv.as_ref());
            store::decide_route(
                &self.state.db,
                &meta.message_id,
                decision.route.as_str(),
                decision.reason,
                &intent,
            )
            .await?
        } else {
            stored
        };
        let route = if stored.route == "human" {
            Route::Human
        } else {
            Route::Bot
        };
        msg.route = route as i32;
        msg.route_reason = stored.route_reason.clone();
        // Context as stored after the decision (this message's intent first), so a replay
        // carries the same context as long as no newer message arrived.
        let conv = store::conversation(db, &stored.conversation_id).await?;
        msg.recent_intents = conv
            .map(|c| c.intents().map(str::to_owned).collect())
            .unwrap_or_default();
        msg.meta = Some(event::derive_meta(&meta, "router.route"));
        let topic = match route {
            Route::Human => topics::ESCALATIONS,
            _ => topics::ASSIST_REQUESTS,
        };
        self.state
            .producer
            .send_event(&self.state.kafka.topic(topic), &meta.conversation_id, &msg)
            .await?;
        Ok(Handled::Done)
    }

    /// When the message names an order that order-sync confirms belongs to this customer (one
    /// of the customer's keys matches the order's buyer), links the identity the order was
    /// placed with to the customer: their next message from that channel continues here.
    /// order-sync being unreachable only skips the link. Returns whether it linked.
    async fn link_on_order(
        &self,
        shop_id: &str,
        customer_id: &str,
        msg: &MessageEvent,
        keys: &[(String, String)],
    ) -> Result<bool, HandleError> {
        let Some(order_id) = msg.classification.as_ref().and_then(|c| {
            c.entities
                .iter()
                .find(|e| e.kind == "order_id")
                .map(|e| e.value.clone())
        }) else {
            return Ok(false);
        };
        let request = GetOrderRequest {
            shop_id: shop_id.to_owned(),
            order_id: order_id.clone(),
            customer_keys: keys
                .iter()
                .map(|(kind, value)| CustomerKey {
                    kind: kind.clone(),
                    value: value.clone(),
                })
                .collect(),
        };
        let request = self
            .state
            .gate
            .keys()
            .request(request, "order-sync", shop_id);
        let order = match self.state.orders.clone().get_order(request).await {
            Ok(r) => r.into_inner().order,
            Err(s) if s.code() == tonic::Code::NotFound => None,
            Err(s) => {
                tracing::warn!(error = %s, "order-sync unavailable; no order-based link");
                None
            }
        };
        let Some(buyer) = order.and_then(|o| o.buyer) else {
            return Ok(false);
        };
        if buyer.channel.is_empty() || buyer.channel_user_id.is_empty() {
            return Ok(false);
        }
        let identity = format!("{}:{}", buyer.channel, buyer.channel_user_id);
        if keys.iter().any(|(k, v)| k == "identity" && *v == identity) {
            return Ok(false);
        }
        match store::link(
            &self.state.db,
            shop_id,
            customer_id,
            &[(buyer.channel, buyer.channel_user_id)],
            &format!("order {order_id} confirmed by order-sync"),
        )
        .await
        {
            Ok(()) => Ok(true),
            Err(store::GraphError::NotFound(_)) => Ok(false),
            Err(store::GraphError::Db(e)) => Err(e.into()),
        }
    }

    /// Moves the conversation's state as its ticket changes (ordered by the event's `seq`).
    async fn ticket_changed(&self, e: TicketEvent) -> Result<Handled, HandleError> {
        let meta = event::check_meta(e.meta.as_ref()).map_err(HandleError::Undecodable)?;
        if meta.conversation_id.is_empty() || e.ticket_id.is_empty() || e.seq <= 0 {
            return Err(HandleError::Rejected(
                "conversation_id, ticket_id and a positive seq are required".into(),
            ));
        }
        let change = match TicketEventKind::try_from(e.kind) {
            Ok(TicketEventKind::Opened) => store::TicketChange::Opened,
            Ok(TicketEventKind::AgentReplied) => store::TicketChange::AgentReplied,
            Ok(TicketEventKind::HandedBack) => store::TicketChange::HandedBack,
            Ok(TicketEventKind::Closed) => store::TicketChange::Closed,
            _ => return Err(HandleError::Rejected(format!("unknown kind {}", e.kind))),
        };
        let applied = store::apply_ticket_change(
            &self.state.db,
            &meta.shop_id,
            &meta.conversation_id,
            &e.ticket_id,
            e.seq,
            change,
        )
        .await?;
        Ok(if applied {
            Handled::Done
        } else {
            Handled::Duplicate
        })
    }

    async fn deliver(&self, r: ReplyEvent) -> Result<Handled, HandleError> {
        let meta = event::check_meta(r.meta.as_ref()).map_err(HandleError::Undecodable)?;
        if r.reply_id.is_empty() || meta.message_id.is_empty() {
            return Err(HandleError::Rejected(
                "reply_id and meta.message_id are required".into(),
            ));
        }
        // The stored message is the authority on tenant and conversation: a reply event that
        // names another shop is rejected rather than streamed to the wrong subscribers.
        let m = store::message(&self.state.read, &meta.message_id)
            .await?
            .ok_or_else(|| HandleError::Rejected(format!("unknown message {}", meta.message_id)))?;
        if m.shop_id != meta.shop_id {
            return Err(HandleError::Rejected(
                "shop_id does not match the message".into(),
            ));
        }
        let source = match ReplySource::try_from(r.source).unwrap_or(ReplySource::Unspecified) {
            ReplySource::Bot => "bot",
            ReplySource::Human => "human",
            ReplySource::System => "system",
            ReplySource::Unspecified => "unknown",
        };
        let row = reply::ActiveModel {
            cursor: NotSet,
            reply_id: Set(r.reply_id.clone()),
            shop_id: Set(m.shop_id),
            message_id: Set(m.message_id),
            conversation_id: Set(m.conversation_id),
            customer_id: Set(m.customer_id),
            channel: Set(m.channel),
            channel_user_id: Set(m.channel_user_id),
            text: Set(r.text.clone()),
            language: Set(r.language.clone()),
            source: Set(source.into()),
            intent: Set(r.intent.clone()),
            ticket_id: Set(r.ticket_id.clone()),
            created_at: Set(Utc::now()),
        };
        match store::store_reply(&self.state.db, row).await? {
            Some(stored) => {
                self.state.replies.send_if_modified(|c| {
                    if stored.cursor > *c {
                        *c = stored.cursor;
                        true
                    } else {
                        false
                    }
                });
                Ok(Handled::Done)
            }
            None => Ok(Handled::Duplicate),
        }
    }
}
