//! Intent classifier: intent, confidence and entities for every normalized message.
//!
//! * consumes `kefu.conversation.normalized.v1` → produces `kefu.conversation.classified.v1`;
//! * gRPC `kefu.intent.v1.IntentClassifierService/Classify`.
//!
//! The model behind [`model::Classifier`] is a first bilingual (English/Chinese) keyword model;
//! the seam is the trait so a trained model can replace it without touching the plumbing.
#![forbid(unsafe_code)]

pub mod entities;
pub mod model;

use std::sync::Arc;

use async_trait::async_trait;
use clap::Parser;
use kefu_proto::{
    events::v1::{self as ev, MessageEvent},
    intent::v1::{
        ClassifyRequest, ClassifyResponse, Entity,
        intent_classifier_service_server::{
            IntentClassifierService, IntentClassifierServiceServer,
        },
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
use model::{Classifier, KeywordModel};
use tonic::{Request, Response, Status, service::Routes};

pub const SERVICE: &str = "intent-classifier";

/// `kefu-intent-classifier` configuration.
#[derive(Debug, Parser)]
#[command(
    name = "kefu-intent-classifier",
    version,
    about = "Kefu intent classifier"
)]
pub struct Args {
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    let (grpc_addr, metrics_addr) = args.listen.resolve(50053, 9183);
    let mut svc = Service::start(SERVICE, &args.runtime).await?;
    let model: Arc<dyn Classifier> = Arc::new(KeywordModel::new());
    let handler = Arc::new(Pipeline {
        kafka: svc.kafka.clone(),
        producer: svc.producer.clone(),
        model: model.clone(),
    });
    svc.consume(&[topics::NORMALIZED], handler);
    let routes = Routes::new(
        IntentClassifierServiceServer::new(Api { model })
            .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
    );
    Ok(svc.serve(grpc_addr, metrics_addr, routes).await)
}

struct Pipeline {
    kafka: KafkaConfig,
    producer: Producer,
    model: Arc<dyn Classifier>,
}

#[async_trait]
impl Handler for Pipeline {
    async fn handle(&self, d: &Delivery) -> Result<Handled, HandleError> {
        let mut msg: MessageEvent = d.decode()?;
        let meta = event::check_meta(msg.meta.as_ref()).map_err(HandleError::Undecodable)?;
        let out_meta = event::derive_meta(meta, "intent.classify");
        let text = if msg.working_text.is_empty() {
            &msg.text
        } else {
            &msg.working_text
        };
        let p = self.model.classify(text, &msg.language);
        msg.classification = Some(ev::Classification {
            intent: p.intent.to_string(),
            confidence: p.confidence,
            entities: p
                .entities
                .into_iter()
                .map(|e| ev::Entity {
                    kind: e.kind.into(),
                    value: e.value,
                })
                .collect(),
            model: self.model.name().into(),
        });
        let key = out_meta.conversation_id.clone();
        msg.meta = Some(out_meta);
        self.producer
            .send_event(&self.kafka.topic(topics::CLASSIFIED), &key, &msg)
            .await?;
        Ok(Handled::Done)
    }
}

/// gRPC API.
pub struct Api {
    model: Arc<dyn Classifier>,
}

#[tonic::async_trait]
impl IntentClassifierService for Api {
    async fn classify(
        &self,
        req: Request<ClassifyRequest>,
    ) -> Result<Response<ClassifyResponse>, Status> {
        let req = req.into_inner();
        let mut v = Violations::new();
        v.ident("shop_id", &req.shop_id, 64);
        v.text("text", &req.text, 4000, 16 * 1024);
        if req.language.len() > 8 {
            v.add("language", "must be an ISO 639-1 code");
        }
        v.into_result().map_err(ApiError::from)?;
        let p = self.model.classify(&req.text, &req.language);
        Ok(Response::new(ClassifyResponse {
            intent: p.intent.into(),
            confidence: p.confidence,
            entities: p
                .entities
                .into_iter()
                .map(|e| Entity {
                    kind: e.kind.into(),
                    value: e.value,
                })
                .collect(),
            model: self.model.name().into(),
        }))
    }
}
