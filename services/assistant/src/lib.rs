//! Assistant: answers the messages the dialogue policy routed to the bot.
//!
//! * consumes `kefu.assist.requests.v1` → produces `kefu.conversation.outbound.v1`;
//! * looks orders up in order-sync over gRPC when the message names an order number;
//! * gRPC `kefu.assistant.v1.AssistantService/Answer`.
#![forbid(unsafe_code)]

pub mod templates;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use clap::Parser;
use kefu_proto::{
    assistant::v1::{
        AnswerRequest, AnswerResponse,
        assistant_service_server::{AssistantService, AssistantServiceServer},
    },
    events::v1::{MessageEvent, ReplyEvent, ReplySource},
    order::v1::{GetOrderRequest, Order, order_sync_service_client::OrderSyncServiceClient},
};
use kefu_runtime::{
    Service,
    config::{ListenArgs, RuntimeArgs},
    event,
    grpc::{ApiError, MAX_DECODING_MESSAGE_SIZE},
    kafka::{Delivery, HandleError, Handled, Handler, KafkaConfig, Producer, topics},
    validate::Violations,
};
use tonic::{Code, Request, Response, Status, service::Routes, transport::Channel};

pub const SERVICE: &str = "assistant";

/// `kefu-assistant` configuration.
#[derive(Debug, Parser)]
#[command(name = "kefu-assistant", version, about = "Kefu answering assistant")]
pub struct Args {
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// order-sync gRPC endpoint used to answer order questions.
    #[arg(
        long,
        env = "KEFU_ORDER_SYNC_URL",
        default_value = "http://127.0.0.1:50056"
    )]
    pub order_sync_url: String,
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    let (grpc_addr, metrics_addr) = args.listen.resolve(50054, 9184);
    let channel = tonic::transport::Endpoint::from_shared(args.order_sync_url.clone())
        .unwrap_or_else(|e| kefu_runtime::config::config_error(format!("order-sync-url: {e}")))
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .connect_lazy();
    let mut svc = Service::start(SERVICE, &args.runtime).await?;
    let orders = OrderSyncServiceClient::new(channel);
    let handler = Arc::new(Pipeline {
        kafka: svc.kafka.clone(),
        producer: svc.producer.clone(),
        orders,
    });
    svc.consume(&[topics::ASSIST_REQUESTS], handler);
    let routes = Routes::new(
        AssistantServiceServer::new(Api).max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
    );
    Ok(svc.serve(grpc_addr, metrics_addr, routes).await)
}

struct Pipeline {
    kafka: KafkaConfig,
    producer: Producer,
    orders: OrderSyncServiceClient<Channel>,
}

impl Pipeline {
    /// The order named in the message, if order-sync knows it. Order-sync being down is not a
    /// reason to hold the customer's answer: the template answer is used instead.
    async fn lookup_order(&self, shop_id: &str, msg: &MessageEvent) -> Option<Order> {
        let order_id = msg
            .classification
            .as_ref()?
            .entities
            .iter()
            .find(|e| e.kind == "order_id")?
            .value
            .clone();
        let mut client = self.orders.clone();
        match client
            .get_order(GetOrderRequest {
                shop_id: shop_id.to_owned(),
                order_id,
            })
            .await
        {
            Ok(r) => r.into_inner().order,
            Err(s) if s.code() == Code::NotFound => None,
            Err(s) => {
                tracing::warn!(error = %s, "order-sync lookup failed; answering from templates");
                None
            }
        }
    }
}

#[async_trait]
impl Handler for Pipeline {
    async fn handle(&self, d: &Delivery) -> Result<Handled, HandleError> {
        let msg: MessageEvent = d.decode()?;
        let meta = event::check_meta(msg.meta.as_ref()).map_err(HandleError::Undecodable)?;
        let out_meta = event::derive_meta(meta, "assistant.answer");
        let intent = msg
            .classification
            .as_ref()
            .map(|c| c.intent.as_str())
            .unwrap_or("other");
        let order = self.lookup_order(&meta.shop_id, &msg).await;
        let answer = templates::answer(intent, &msg.language, order.as_ref());
        let reply = ReplyEvent {
            reply_id: event::derive_id(&meta.message_id, "reply"),
            text: answer.text,
            language: answer.language.into(),
            target_language: msg.language.clone(),
            source: ReplySource::Bot as i32,
            intent: intent.to_owned(),
            ticket_id: String::new(),
            channel: msg.channel.clone(),
            channel_user_id: msg.channel_user_id.clone(),
            customer_id: msg.customer_id.clone(),
            meta: Some(out_meta),
        };
        let key = meta.conversation_id.clone();
        self.producer
            .send_event(&self.kafka.topic(topics::OUTBOUND), &key, &reply)
            .await?;
        Ok(Handled::Done)
    }
}

/// gRPC API.
pub struct Api;

#[tonic::async_trait]
impl AssistantService for Api {
    async fn answer(
        &self,
        req: Request<AnswerRequest>,
    ) -> Result<Response<AnswerResponse>, Status> {
        let req = req.into_inner();
        let mut v = Violations::new();
        v.ident("shop_id", &req.shop_id, 64);
        v.text("text", &req.text, 4000, 16 * 1024);
        if req.intent.len() > 64 {
            v.add("intent", "must be at most 64 characters");
        }
        v.into_result().map_err(ApiError::from)?;
        let a = templates::answer(&req.intent, &req.language, None);
        Ok(Response::new(AnswerResponse {
            text: a.text,
            language: a.language.into(),
            escalate: a.escalate,
        }))
    }
}
