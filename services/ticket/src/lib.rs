//! Ticket: conversations handed to human agents.
//!
//! * consumes `kefu.ticket.escalations.v1`: opens one ticket per escalated message (idempotent
//!   on the message id) with a first-response SLA, then tells the customer on
//!   `kefu.conversation.outbound.v1` that a person will answer;
//! * gRPC `kefu.ticket.v1.TicketService/{GetTicket,ListTickets}`.
#![forbid(unsafe_code)]

pub mod entity;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use clap::Parser;
use entity::{migration::Migrator, ticket};
use kefu_proto::{
    events::v1::{MessageEvent, ReplyEvent, ReplySource},
    ticket::v1::{
        GetTicketRequest, GetTicketResponse, ListTicketsRequest, ListTicketsResponse, Ticket,
        ticket_service_server::{TicketService, TicketServiceServer},
    },
};
use kefu_runtime::{
    Service,
    config::{DbArgs, ListenArgs, RuntimeArgs},
    db, event,
    grpc::{ApiError, MAX_DECODING_MESSAGE_SIZE},
    kafka::{Delivery, HandleError, Handled, Handler, KafkaConfig, Producer, topics},
    validate::Violations,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tonic::{Request, Response, Status, service::Routes};

pub const SERVICE: &str = "ticket";

/// `kefu-ticket` configuration.
#[derive(Debug, Parser)]
#[command(name = "kefu-ticket", version, about = "Kefu ticket service")]
pub struct Args {
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// First-response SLA for new tickets, in minutes.
    #[arg(long, env = "KEFU_TICKET_SLA_MINUTES", default_value_t = 120, value_parser = clap::value_parser!(i64).range(1..=10080))]
    pub sla_minutes: i64,
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    let (grpc_addr, metrics_addr) = args.listen.resolve(50055, 9185);
    let mut svc = Service::start(SERVICE, &args.runtime).await?;
    let db = db::connect_and_migrate::<Migrator>(&args.db.url_or(SERVICE)).await?;
    let handler = Arc::new(Escalations {
        kafka: svc.kafka.clone(),
        producer: svc.producer.clone(),
        db: db.clone(),
        sla: chrono::Duration::minutes(args.sla_minutes),
    });
    svc.consume(&[topics::ESCALATIONS], handler);
    let routes = Routes::new(
        TicketServiceServer::new(Api { db }).max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
    );
    Ok(svc.serve(grpc_addr, metrics_addr, routes).await)
}

/// Ticket id for an escalated message (deterministic, so replays find the same ticket).
pub fn ticket_id_for(message_id: &str) -> String {
    let id = event::derive_id(message_id, "ticket");
    format!("T-{}", &id.replace('-', "")[..12].to_uppercase())
}

pub struct Escalations {
    kafka: KafkaConfig,
    producer: Producer,
    db: DatabaseConnection,
    sla: chrono::Duration,
}

impl Escalations {
    /// Opens the ticket unless it exists. Returns the ticket and whether it was new.
    async fn open(&self, msg: &MessageEvent) -> Result<(ticket::Model, bool), HandleError> {
        let meta = msg.meta.as_ref().expect("checked");
        let now = Utc::now();
        let model = ticket::ActiveModel {
            ticket_id: Set(ticket_id_for(&meta.message_id)),
            shop_id: Set(meta.shop_id.clone()),
            message_id: Set(meta.message_id.clone()),
            conversation_id: Set(meta.conversation_id.clone()),
            customer_id: Set(msg.customer_id.clone()),
            status: Set("open".into()),
            reason: Set(msg.route_reason.clone()),
            intent: Set(msg
                .classification
                .as_ref()
                .map(|c| c.intent.clone())
                .unwrap_or_default()),
            text: Set(msg.text.clone()),
            language: Set(msg.language.clone()),
            created_at: Set(now),
            sla_due_at: Set(now + self.sla),
        };
        let new = match ticket::Entity::insert(model).exec(&self.db).await {
            Ok(_) => true,
            Err(e) if db::is_unique_violation(&e) => false,
            Err(e) => return Err(e.into()),
        };
        let t = ticket::Entity::find()
            .filter(ticket::Column::MessageId.eq(meta.message_id.clone()))
            .one(&self.db)
            .await?
            .ok_or_else(|| HandleError::Transient(anyhow::anyhow!("ticket vanished")))?;
        Ok((t, new))
    }
}

#[async_trait]
impl Handler for Escalations {
    async fn handle(&self, d: &Delivery) -> Result<Handled, HandleError> {
        let msg: MessageEvent = d.decode()?;
        let meta = event::check_meta(msg.meta.as_ref()).map_err(HandleError::Undecodable)?;
        if meta.message_id.is_empty() {
            return Err(HandleError::Undecodable("missing meta.message_id".into()));
        }
        let (t, new) = self.open(&msg).await?;
        let zh = msg.language == "zh";
        let text = if zh {
            format!(
                "已为您转接人工客服（工单 {}），客服会尽快回复您。",
                t.ticket_id
            )
        } else {
            format!(
                "I've passed this to a human agent (ticket {}). They will reply here shortly.",
                t.ticket_id
            )
        };
        let reply = ReplyEvent {
            meta: Some(event::derive_meta(meta, "ticket.ack")),
            reply_id: event::derive_id(&meta.message_id, "reply"),
            text,
            language: if zh { "zh" } else { "en" }.into(),
            target_language: msg.language.clone(),
            source: ReplySource::System as i32,
            intent: t.intent.clone(),
            ticket_id: t.ticket_id.clone(),
            channel: msg.channel.clone(),
            channel_user_id: msg.channel_user_id.clone(),
            customer_id: msg.customer_id.clone(),
        };
        // Produced on replays too: the ticket may have been stored before a crash that
        // prevented this produce. Downstream dedupes on the reply's ids.
        self.producer
            .send_event(
                &self.kafka.topic(topics::OUTBOUND),
                &meta.conversation_id,
                &reply,
            )
            .await?;
        Ok(if new {
            Handled::Done
        } else {
            Handled::Duplicate
        })
    }
}

fn to_proto(t: ticket::Model) -> Ticket {
    Ticket {
        ticket_id: t.ticket_id,
        shop_id: t.shop_id,
        message_id: t.message_id,
        conversation_id: t.conversation_id,
        customer_id: t.customer_id,
        status: t.status,
        reason: t.reason,
        intent: t.intent,
        text: t.text,
        created_at: Some(event::timestamp(t.created_at)),
        sla_due_at: Some(event::timestamp(t.sla_due_at)),
    }
}

/// gRPC API.
pub struct Api {
    pub db: DatabaseConnection,
}

#[tonic::async_trait]
impl TicketService for Api {
    async fn get_ticket(
        &self,
        req: Request<GetTicketRequest>,
    ) -> Result<Response<GetTicketResponse>, Status> {
        let req = req.into_inner();
        let mut v = Violations::new();
        v.ident("shop_id", &req.shop_id, 64);
        v.ident("ticket_id", &req.ticket_id, 64);
        v.into_result().map_err(ApiError::from)?;
        let t = ticket::Entity::find_by_id(req.ticket_id.clone())
            .filter(ticket::Column::ShopId.eq(req.shop_id))
            .one(&self.db)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("ticket {} not found", req.ticket_id)))?;
        Ok(Response::new(GetTicketResponse {
            ticket: Some(to_proto(t)),
        }))
    }

    async fn list_tickets(
        &self,
        req: Request<ListTicketsRequest>,
    ) -> Result<Response<ListTicketsResponse>, Status> {
        let req = req.into_inner();
        let mut v = Violations::new();
        v.ident("shop_id", &req.shop_id, 64);
        if !(0..=100).contains(&req.page_size) {
            v.add("page_size", "must be between 0 and 100");
        }
        v.into_result().map_err(ApiError::from)?;
        let limit = if req.page_size == 0 {
            20
        } else {
            req.page_size as u64
        };
        let tickets = ticket::Entity::find()
            .filter(ticket::Column::ShopId.eq(req.shop_id))
            .order_by_desc(ticket::Column::CreatedAt)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ListTicketsResponse {
            tickets: tickets.into_iter().map(to_proto).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_ids_are_stable() {
        assert_eq!(ticket_id_for("m1"), ticket_id_for("m1"));
        assert_ne!(ticket_id_for("m1"), ticket_id_for("m2"));
        assert!(ticket_id_for("m1").starts_with("T-"));
        assert_eq!(ticket_id_for("m1").len(), 14);
    }
}
