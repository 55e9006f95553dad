//! Assistant: answers the messages the dialogue policy routed to the bot.
//!
//! * consumes `kefu.assist.requests.v1` → produces `kefu.conversation.outbound.v1`;
//! * answers order questions (status, logistics, cancel / change eligibility, refunds) from
//!   the customer's real orders in order-sync, scoped by the customer's keys; hands over to a
//!   person, with the order attached, when it cannot act ([`orders`]);
//! * answers everything else from the shop's own knowledge (the knowledge service: FAQ,
//!   products, promotions); when it has no answer good enough, a person answers (the message
//!   goes to `kefu.ticket.escalations.v1`, a ticket opens) — the assistant never words a
//!   policy, price or date itself ([`templates`]);
//! * gRPC `kefu.assistant.v1.AssistantService/Answer`.
#![forbid(unsafe_code)]

pub mod orders;
pub mod templates;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use clap::Parser;
use kefu_proto::{
    assistant::v1::{
        AnswerRequest, AnswerResponse,
        assistant_service_server::{AssistantService, AssistantServiceServer},
    },
    events::v1::{MessageEvent, ReplyEvent, ReplySource, Route},
    knowledge::v1::{
        AnswerRequest as KnowledgeQuestion, knowledge_service_client::KnowledgeServiceClient,
    },
    order::v1::{
        GetOrderRequest, ListCustomerOrdersRequest,
        order_sync_service_client::OrderSyncServiceClient,
    },
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
    /// knowledge service gRPC endpoint: the shop's FAQ, products and promotions.
    #[arg(
        long,
        env = "KEFU_KNOWLEDGE_URL",
        default_value = "http://127.0.0.1:50058"
    )]
    pub knowledge_url: String,
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    let (grpc_addr, metrics_addr) = args.listen.resolve(50054, 9184);
    let channel = tonic::transport::Endpoint::from_shared(args.order_sync_url.clone())
        .unwrap_or_else(|e| kefu_runtime::config::config_error(format!("order-sync-url: {e}")))
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .connect_lazy();
    let knowledge = tonic::transport::Endpoint::from_shared(args.knowledge_url.clone())
        .unwrap_or_else(|e| kefu_runtime::config::config_error(format!("knowledge-url: {e}")))
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    let mut svc = Service::start(SERVICE, &args.runtime).await?;
    let orders = OrderSyncServiceClient::new(channel);
    let knowledge = KnowledgeServiceClient::new(knowledge);
    let handler = Arc::new(Pipeline {
        kafka: svc.kafka.clone(),
        producer: svc.producer.clone(),
        orders,
        knowledge: knowledge.clone(),
        keys: svc.keys.clone(),
    });
    svc.consume(&[topics::ASSIST_REQUESTS], handler);
    let api = Api {
        knowledge,
        keys: svc.keys.clone(),
    };
    let routes = Routes::new(kefu_runtime::auth::Guard::new(
        AssistantServiceServer::new(api).max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
        svc.remote_gate(),
        kefu_runtime::auth::shops_and_services,
    ));
    Ok(svc.serve(grpc_addr, metrics_addr, routes).await)
}

struct Pipeline {
    kafka: KafkaConfig,
    producer: Producer,
    orders: OrderSyncServiceClient<Channel>,
    knowledge: KnowledgeServiceClient<Channel>,
    keys: std::sync::Arc<kefu_runtime::auth::ServiceKeys>,
}

/// The shop's answer from its knowledge: `Ok(None)` when it has none good enough; an error
/// when the knowledge service cannot be asked (the event is retried, not answered without it).
/// Intents about one specific order: without a known order the customer is asked for its
/// number rather than answered from the shop's general rules. (Refund and delivery questions
/// are often about the rules — "退款多久能到账" — and go to the knowledge first.)
const ORDER_SPECIFIC: &[&str] = &[
    "order_status",
    "shipping_delay",
    "cancel_order",
    "change_address",
    "change_order",
];

async fn ask_knowledge(
    client: &KnowledgeServiceClient<Channel>,
    keys: &kefu_runtime::auth::ServiceKeys,
    shop_id: &str,
    text: &str,
    language: &str,
    intent: &str,
) -> Result<Option<(String, String)>, Status> {
    let req = keys.request(
        KnowledgeQuestion {
            shop_id: String::new(),
            text: text.to_owned(),
            language: language.to_owned(),
            intent: intent.to_owned(),
        },
        "knowledge",
        shop_id,
    );
    let a = client.clone().answer(req).await?.into_inner();
    Ok(a.found.then_some((a.text, a.language)))
}

impl Pipeline {
    /// The answer from the customer's orders, or `None` to fall back to the templates (no
    /// order data, or order-sync unreachable: it is not a reason to hold the answer).
    async fn order_plan(
        &self,
        shop_id: &str,
        msg: &MessageEvent,
        intent: &str,
        zh: bool,
    ) -> Option<orders::Plan> {
        if !orders::ORDER_INTENTS.contains(&intent) {
            return None;
        }
        let named = msg
            .classification
            .as_ref()?
            .entities
            .iter()
            .find(|e| e.kind == "order_id")
            .map(|e| e.value.clone());
        let keys = msg.customer_keys.clone();
        let mut client = self.orders.clone();
        let now = chrono::Utc::now();
        if let Some(order_id) = named {
            // Never look an order up without the customer's keys: order-sync only answers
            // for orders whose buyer matches them.
            if keys.is_empty() {
                return Some(orders::Plan::Reply(orders::not_found(&order_id, zh)));
            }
            let req = GetOrderRequest {
                shop_id: shop_id.to_owned(),
                order_id: order_id.clone(),
                customer_keys: keys,
            };
            let req = self.keys.request(req, "order-sync", shop_id);
            return match client.get_order(req).await {
                Ok(r) => r
                    .into_inner()
                    .order
                    .map(|o| orders::plan(intent, &o, zh, now)),
                Err(s) if s.code() == Code::NotFound => {
                    Some(orders::Plan::Reply(orders::not_found(&order_id, zh)))
                }
                Err(s) => {
                    tracing::warn!(error = %s, "order-sync lookup failed; answering from templates");
                    None
                }
            };
        }
        if keys.is_empty() {
            return None;
        }
        let req = ListCustomerOrdersRequest {
            shop_id: shop_id.to_owned(),
            customer_keys: keys,
            page_size: 10,
        };
        let req = self.keys.request(req, "order-sync", shop_id);
        let list = match client.list_customer_orders(req).await {
            Ok(r) => r.into_inner().orders,
            Err(s) => {
                tracing::warn!(error = %s, "order-sync lookup failed; answering from templates");
                return None;
            }
        };
        match orders::choose(intent, &list) {
            Ok(Some(o)) => Some(orders::plan(intent, o, zh, now)),
            Ok(None) => None,
            Err(several) => Some(orders::Plan::Reply(orders::ask_which(&several, zh))),
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
        let zh = msg.language == "zh";
        let key = meta.conversation_id.clone();
        // The classifier was unsure: only the shop's knowledge may answer (no order lookup or
        // action, no intent template), else a person.
        let knowledge_only = msg.route_reason == event::ROUTE_KNOWLEDGE_ONLY;
        let plan = if knowledge_only {
            None
        } else {
            self.order_plan(&meta.shop_id, &msg, intent, zh)
                .await
                .or_else(|| {
                    // About one of the customer's orders, but none is known yet: ask for its
                    // number (the shop's general rules do not answer "where is my parcel?").
                    ORDER_SPECIFIC
                        .contains(&intent)
                        .then(|| templates::answer(intent, &msg.language))
                        .flatten()
                        .map(|a| orders::Plan::Reply(a.text))
                })
        };
        let (text, language) = match plan {
            Some(orders::Plan::Reply(text)) => (text, if zh { "zh" } else { "en" }),
            Some(orders::Plan::Handover { reason, order_id }) => {
                // The bot cannot act on this order: a person takes over, with the order.
                let mut esc = msg.clone();
                esc.meta = Some(event::derive_meta(meta, "assistant.handover"));
                esc.route = Route::Human as i32;
                esc.route_reason = reason;
                esc.attached_order_id = order_id;
                self.producer
                    .send_event(&self.kafka.topic(topics::ESCALATIONS), &key, &esc)
                    .await?;
                return Ok(Handled::Done);
            }
            None => {
                let text = msg.text.chars().take(4000).collect::<String>();
                let known = ask_knowledge(
                    &self.knowledge,
                    &self.keys,
                    &meta.shop_id,
                    &text,
                    &msg.language,
                    intent,
                )
                .await
                .map_err(|s| HandleError::Transient(anyhow::anyhow!("knowledge service: {s}")))?;
                match known {
                    Some((text, language)) => (text, if language == "zh" { "zh" } else { "en" }),
                    None => {
                        match templates::answer(intent, &msg.language).filter(|_| !knowledge_only) {
                            Some(a) => (a.text, a.language),
                            None => {
                                // Not in the shop's knowledge: a person answers (a ticket opens and
                                // the customer is told so), never an invented policy.
                                let mut esc = msg.clone();
                                esc.meta = Some(event::derive_meta(meta, "assistant.handover"));
                                esc.route = Route::Human as i32;
                                esc.route_reason = if knowledge_only {
                                    "low confidence, not in shop knowledge"
                                } else {
                                    "not_in_shop_knowledge"
                                }
                                .into();
                                self.producer
                                    .send_event(&self.kafka.topic(topics::ESCALATIONS), &key, &esc)
                                    .await?;
                                return Ok(Handled::Done);
                            }
                        }
                    }
                }
            }
        };
        let reply = ReplyEvent {
            reply_id: event::derive_id(&meta.message_id, "reply"),
            text,
            language: language.into(),
            target_language: msg.language.clone(),
            source: ReplySource::Bot as i32,
            intent: intent.to_owned(),
            ticket_id: String::new(),
            channel: msg.channel.clone(),
            channel_user_id: msg.channel_user_id.clone(),
            customer_id: msg.customer_id.clone(),
            meta: Some(out_meta),
        };
        self.producer
            .send_event(&self.kafka.topic(topics::OUTBOUND), &key, &reply)
            .await?;
        Ok(Handled::Done)
    }
}

/// gRPC API.
pub struct Api {
    knowledge: KnowledgeServiceClient<Channel>,
    keys: std::sync::Arc<kefu_runtime::auth::ServiceKeys>,
}

#[tonic::async_trait]
impl AssistantService for Api {
    async fn answer(
        &self,
        req: Request<AnswerRequest>,
    ) -> Result<Response<AnswerResponse>, Status> {
        let caller = kefu_runtime::auth::Caller::of(&req)?;
        let req = req.into_inner();
        let shop = caller.shop(&req.shop_id)?;
        let mut v = Violations::new();
        v.text("text", &req.text, 4000, 16 * 1024);
        if req.intent.len() > 64 {
            v.add("intent", "must be at most 64 characters");
        }
        v.into_result().map_err(ApiError::from)?;
        if let Some((text, language)) = ask_knowledge(
            &self.knowledge,
            &self.keys,
            &shop,
            &req.text,
            &req.language,
            &req.intent,
        )
        .await
        .map_err(|s| ApiError::Unavailable(format!("knowledge service: {}", s.message())))?
        {
            return Ok(Response::new(AnswerResponse {
                text,
                language,
                escalate: false,
            }));
        }
        let zh = req.language == "zh";
        Ok(Response::new(
            match templates::answer(&req.intent, &req.language) {
                Some(a) => AnswerResponse {
                    text: a.text,
                    language: a.language.into(),
                    escalate: false,
                },
                None => AnswerResponse {
                    text: templates::handover(zh).into(),
                    language: if zh { "zh" } else { "en" }.into(),
                    escalate: true,
                },
            },
        ))
    }
}
