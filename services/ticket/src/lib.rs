//! Ticket: conversations handed to human agents.
//!
//! * consumes `kefu.ticket.escalations.v1`: the first escalated message of a conversation opens
//!   a ticket (idempotent on the message id) with a first-response SLA and tells the customer
//!   on `kefu.conversation.outbound.v1` that a person will answer; later messages of the
//!   conversation join that ticket while the bot stays silent;
//! * gRPC `kefu.ticket.v1.TicketService` (the shop's API key or an agent token; the shop and
//!   the agent come from the credential): agents read tickets and their threads, reply
//!   (`ReplyToTicket`, delivered to the customer through `kefu.conversation.outbound.v1`), hand
//!   the conversation back to the bot (`HandBackTicket`) or close it (`CloseTicket`);
//! * publishes each ticket change on `kefu.ticket.updates.v1` through a transactional outbox
//!   (see [`workflow`]), which session-router turns into conversation states.
#![forbid(unsafe_code)]

pub mod entity;
pub mod listing;
pub mod privacy;
pub mod retention;
pub mod workflow;

use std::sync::Arc;

use async_trait::async_trait;
use clap::Parser;
use entity::{migration::Migrator, status, ticket};
use kefu_proto::{
    events::v1::{EventMeta, MessageEvent, ReplyEvent, ReplySource},
    ticket::v1::{
        CloseTicketRequest, CloseTicketResponse, GetTicketRequest, GetTicketResponse,
        HandBackTicketRequest, HandBackTicketResponse, ListTicketMessagesRequest,
        ListTicketMessagesResponse, ListTicketsRequest, ListTicketsResponse, ReplyToTicketRequest,
        ReplyToTicketResponse, Ticket, TicketMessage,
        ticket_service_server::{TicketService, TicketServiceServer},
    },
};
use kefu_runtime::{
    Service,
    auth::{Allow, Caller, Guard},
    config::{DbArgs, ListenArgs, RuntimeArgs},
    db, event,
    grpc::{ApiError, MAX_DECODING_MESSAGE_SIZE},
    kafka::{Delivery, HandleError, Handled, Handler, KafkaConfig, Producer, topics},
    validate::Violations,
};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
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
    #[command(flatten)]
    pub retention: retention::RetentionFlags,
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    if let Some(done) =
        db::migrate_only::<Migrator>(&args.db, SERVICE, args.runtime.log_format).await
    {
        return done;
    }
    let (grpc_addr, metrics_addr) = args.listen.resolve(50055, 9185);
    let mut svc = Service::start(SERVICE, &args.runtime).await?;
    let db = db::open::<Migrator>(&args.db, SERVICE).await?;
    kefu_runtime::retention::Retention::new(
        db.clone(),
        retention::rules(&args.retention),
        &args.retention.common,
    )
    .spawn(&mut svc);
    let relay = kefu_runtime::outbox::Relay::new("ticket-events", db.clone());
    let nudge = relay.nudger();
    let handler = Arc::new(Escalations {
        kafka: svc.kafka.clone(),
        producer: svc.producer.clone(),
        db: db.clone(),
        sla: chrono::Duration::minutes(args.sla_minutes),
        nudge: nudge.clone(),
    });
    svc.consume(&[topics::ESCALATIONS], handler);
    let (rdb, producer, kafka) = (db.clone(), svc.producer.clone(), svc.kafka.clone());
    svc.lifecycle.spawn(
        "ticket-outbox",
        relay.run(svc.lifecycle.shutdown.clone(), move || {
            let (db, producer, kafka) = (rdb.clone(), producer.clone(), kafka.clone());
            async move { workflow::publish_pending(&db, &producer, &kafka).await }
        }),
    );
    let data = privacy::CustomerDataStore { db: db.clone() };
    let api = Api { db, nudge };
    let routes = Routes::new(Guard::new(
        TicketServiceServer::new(api).max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
        svc.remote_gate(),
        policy,
    ))
    .add_service(Guard::new(
        kefu_runtime::privacy::server(data),
        svc.remote_gate(),
        kefu_runtime::privacy::policy,
    ));
    Ok(svc.serve(grpc_addr, metrics_addr, routes).await)
}

pub struct Escalations {
    kafka: KafkaConfig,
    producer: Producer,
    db: DatabaseConnection,
    sla: chrono::Duration,
    nudge: kefu_runtime::outbox::Nudge,
}

impl Escalations {
    /// The acknowledgement a customer gets when their conversation is handed to a person.
    fn ack(&self, msg: &MessageEvent, meta: &EventMeta, t: &ticket::Model) -> ReplyEvent {
        let zh = msg.language == "zh";
        let text = match (zh, t.order_id.is_empty()) {
            (true, true) => format!(
                "已为您转接人工客服（工单 {}），客服会尽快回复您。",
                t.ticket_id
            ),
            (true, false) => format!(
                "这个需要人工处理：已为您转接人工客服（工单 {}，订单 {}），客服会尽快回复您。",
                t.ticket_id, t.order_id
            ),
            (false, true) => format!(
                "I've passed this to a human agent (ticket {}). They will reply here shortly.",
                t.ticket_id
            ),
            (false, false) => format!(
                "This needs a person: I've passed it to a human agent (ticket {}, order {}). They will reply here shortly.",
                t.ticket_id, t.order_id
            ),
        };
        ReplyEvent {
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
        }
    }
}

#[async_trait]
impl Handler for Escalations {
    async fn handle(&self, d: &Delivery) -> Result<Handled, HandleError> {
        let msg: MessageEvent = d.decode()?;
        let meta = event::check_meta(msg.meta.as_ref()).map_err(HandleError::Undecodable)?;
        if meta.message_id.is_empty() || meta.conversation_id.is_empty() {
            return Err(HandleError::Undecodable(
                "missing meta.message_id or meta.conversation_id".into(),
            ));
        }
        let escalated = match workflow::escalate(&self.db, &msg, meta, self.sla).await {
            Ok(e) => e,
            // A concurrent escalation of the same conversation won; the retry sees its ticket.
            Err(e) if db::is_unique_violation(&e) => {
                return Err(HandleError::Transient(anyhow::anyhow!(e)));
            }
            Err(e) => return Err(e.into()),
        };
        // The OPENED event is in the outbox: the relay publishes it now.
        self.nudge.nudge();
        match escalated {
            workflow::Escalated::Opened(t) => {
                // Produced on replays too: the ticket may have been stored before a crash that
                // prevented this produce. Downstream dedupes on the reply's ids.
                self.producer
                    .send_event(
                        &self.kafka.topic(topics::OUTBOUND),
                        &meta.conversation_id,
                        &self.ack(&msg, meta, &t),
                    )
                    .await?;
                Ok(Handled::Done)
            }
            // The conversation is with a person: the message joins the ticket, nobody else
            // answers.
            workflow::Escalated::Appended(_) => Ok(Handled::Done),
            workflow::Escalated::AlreadyAppended => Ok(Handled::Duplicate),
        }
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
        assignee: t.assignee,
        language: t.language,
        first_response_at: t.first_response_at.map(event::timestamp),
        updated_at: Some(event::timestamp(t.updated_at)),
        order_id: t.order_id,
    }
}

/// gRPC API.
pub struct Api {
    pub db: DatabaseConnection,
    /// Wakes the outbox relay after a change (the API never waits for the broker).
    pub nudge: kefu_runtime::outbox::Nudge,
}

/// The agents' API: the shop's key (its back office) or an agent token; never a service or
/// the operator.
pub fn policy(_method: &str) -> Option<Allow> {
    Some(Allow::SHOP | Allow::AGENT)
}

fn check_ticket(v: &mut Violations, ticket_id: &str) {
    v.ident("ticket_id", ticket_id, 64);
}

impl Api {
    /// Hands back or closes (validated), then publishes the change.
    async fn finish(
        &self,
        caller: &Caller,
        shop_id: &str,
        ticket_id: &str,
        agent_id: &str,
        to: &'static str,
    ) -> Result<Ticket, ApiError> {
        let mut v = Violations::new();
        check_ticket(&mut v, ticket_id);
        v.into_result()?;
        let shop_id = caller.shop(shop_id)?;
        let agent_id = caller.agent(agent_id, "agent_id")?;
        let t = workflow::finish(&self.db, &shop_id, ticket_id, &agent_id, to).await?;
        self.nudge.nudge();
        Ok(to_proto(t))
    }
}

#[tonic::async_trait]
impl TicketService for Api {
    async fn get_ticket(
        &self,
        req: Request<GetTicketRequest>,
    ) -> Result<Response<GetTicketResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        check_ticket(&mut v, &req.ticket_id);
        v.into_result().map_err(ApiError::from)?;
        let shop_id = caller.shop(&req.shop_id)?;
        let t = ticket::Entity::find_by_id(req.ticket_id.clone())
            .filter(ticket::Column::ShopId.eq(shop_id))
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
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        let q = listing::TicketQuery::parse(
            &mut v,
            req.page_size,
            &req.page_token,
            &req.status,
            &req.conversation_id,
        );
        v.into_result().map_err(ApiError::from)?;
        let shop_id = caller.shop(&req.shop_id)?;
        let (tickets, next_page_token) = listing::tickets(&self.db, &shop_id, &q)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ListTicketsResponse {
            tickets: tickets.into_iter().map(to_proto).collect(),
            next_page_token,
        }))
    }

    async fn list_ticket_messages(
        &self,
        req: Request<ListTicketMessagesRequest>,
    ) -> Result<Response<ListTicketMessagesResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        check_ticket(&mut v, &req.ticket_id);
        let q =
            listing::MessageQuery::parse(&mut v, req.page_size, &req.page_token, req.newest_first);
        v.into_result().map_err(ApiError::from)?;
        let shop_id = caller.shop(&req.shop_id)?;
        // The ticket must belong to the caller's shop before its thread is read.
        ticket::Entity::find_by_id(req.ticket_id.clone())
            .filter(ticket::Column::ShopId.eq(shop_id))
            .one(&self.db)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("ticket {} not found", req.ticket_id)))?;
        let (rows, next_page_token) = listing::messages(&self.db, &req.ticket_id, &q)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(ListTicketMessagesResponse {
            messages: rows
                .into_iter()
                .map(|m| TicketMessage {
                    author: m.author,
                    agent_id: m.agent_id,
                    text: m.text,
                    message_id: m.message_id,
                    created_at: Some(event::timestamp(m.created_at)),
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn reply_to_ticket(
        &self,
        req: Request<ReplyToTicketRequest>,
    ) -> Result<Response<ReplyToTicketResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let mut v = Violations::new();
        check_ticket(&mut v, &req.ticket_id);
        v.ident("request_id", &req.request_id, 64);
        v.text("text", &req.text, 4000, 16 * 1024);
        v.into_result().map_err(ApiError::from)?;
        let shop_id = caller.shop(&req.shop_id)?;
        let agent_id = caller.agent(&req.agent_id, "agent_id")?;
        let (t, reply_id) = workflow::reply(
            &self.db,
            &shop_id,
            &req.ticket_id,
            &agent_id,
            &req.text,
            &req.request_id,
        )
        .await?;
        self.nudge.nudge();
        Ok(Response::new(ReplyToTicketResponse {
            ticket: Some(to_proto(t)),
            reply_id,
        }))
    }

    async fn hand_back_ticket(
        &self,
        req: Request<HandBackTicketRequest>,
    ) -> Result<Response<HandBackTicketResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let ticket = self
            .finish(
                &caller,
                &r.shop_id,
                &r.ticket_id,
                &r.agent_id,
                status::HANDED_BACK,
            )
            .await?;
        Ok(Response::new(HandBackTicketResponse {
            ticket: Some(ticket),
        }))
    }

    async fn close_ticket(
        &self,
        req: Request<CloseTicketRequest>,
    ) -> Result<Response<CloseTicketResponse>, Status> {
        let caller = Caller::of(&req)?;
        let r = req.into_inner();
        let ticket = self
            .finish(
                &caller,
                &r.shop_id,
                &r.ticket_id,
                &r.agent_id,
                status::CLOSED,
            )
            .await?;
        Ok(Response::new(CloseTicketResponse {
            ticket: Some(ticket),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::workflow::*;

    #[test]
    fn ticket_ids_are_stable() {
        assert_eq!(ticket_id_for("m1"), ticket_id_for("m1"));
        assert_ne!(ticket_id_for("m1"), ticket_id_for("m2"));
        assert!(ticket_id_for("m1").starts_with("T-"));
        assert_eq!(ticket_id_for("m1").len(), 14);
    }
}
