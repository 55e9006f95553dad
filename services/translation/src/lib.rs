//! Translation: detects the language of every inbound message and carries replies back into
//! the customer's language.
//!
//! * consumes `kefu.conversation.inbound.v1` → produces `kefu.conversation.normalized.v1`
//!   (language, confidence, working text);
//! * consumes `kefu.conversation.outbound.v1` → produces `kefu.conversation.replies.v1`;
//! * gRPC `kefu.translation.v1.TranslationService/DetectLanguage`.
//!
//! There is no machine-translation engine yet: the working text is the original text and a
//! reply whose language differs from the customer's is delivered as written (and counted).
#![forbid(unsafe_code)]

pub mod detect;

use std::sync::Arc;

use async_trait::async_trait;
use clap::Parser;
use kefu_proto::{
    events::v1::{MessageEvent, ReplyEvent},
    translation::v1::{
        DetectLanguageRequest, DetectLanguageResponse,
        translation_service_server::{TranslationService, TranslationServiceServer},
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
use prometheus_client::metrics::{counter::Counter, family::Family};
use tonic::{Request, Response, Status, service::Routes};

pub const SERVICE: &str = "translation";

/// `kefu-translation` configuration.
#[derive(Debug, Parser)]
#[command(name = "kefu-translation", version, about = "Kefu translation service")]
pub struct Args {
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    let (grpc_addr, metrics_addr) = args.listen.resolve(50052, 9182);
    let mut svc = Service::start(SERVICE, &args.runtime).await?;
    let languages: Family<Vec<(String, String)>, Counter> = Family::default();
    svc.metrics.register(
        "translation_languages",
        "Messages by detected language",
        languages.clone(),
    );
    let handler = Arc::new(Pipeline {
        kafka: svc.kafka.clone(),
        producer: svc.producer.clone(),
        languages,
    });
    svc.consume(&[topics::INBOUND, topics::OUTBOUND], handler);
    let routes = Routes::new(kefu_runtime::auth::Guard::new(
        TranslationServiceServer::new(Api).max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
        svc.remote_gate(),
        kefu_runtime::auth::shops_and_services,
    ));
    Ok(svc.serve(grpc_addr, metrics_addr, routes).await)
}

struct Pipeline {
    kafka: KafkaConfig,
    producer: Producer,
    languages: Family<Vec<(String, String)>, Counter>,
}

#[async_trait]
impl Handler for Pipeline {
    async fn handle(&self, d: &Delivery) -> Result<Handled, HandleError> {
        if d.topic == self.kafka.topic(topics::INBOUND) {
            let mut ev: MessageEvent = d.decode()?;
            let meta = event::check_meta(ev.meta.as_ref()).map_err(HandleError::Undecodable)?;
            let detected = detect::detect(&ev.text);
            let out_meta = event::derive_meta(meta, "translation.normalize");
            self.languages
                .get_or_create(&vec![("language".into(), detected.language.clone())])
                .inc();
            ev.meta = Some(out_meta);
            ev.language = detected.language;
            ev.language_confidence = detected.confidence;
            ev.working_text = ev.text.clone();
            let key = ev
                .meta
                .as_ref()
                .map(|m| m.conversation_id.clone())
                .unwrap_or_default();
            self.producer
                .send_event(&self.kafka.topic(topics::NORMALIZED), &key, &ev)
                .await?;
        } else {
            let mut ev: ReplyEvent = d.decode()?;
            let meta = event::check_meta(ev.meta.as_ref()).map_err(HandleError::Undecodable)?;
            let out_meta = event::derive_meta(meta, "translation.deliver");
            if !ev.target_language.is_empty() && ev.language != ev.target_language {
                tracing::warn!(
                    from = %ev.language, to = %ev.target_language,
                    "no translation engine configured; reply delivered as written"
                );
            }
            let key = out_meta.conversation_id.clone();
            ev.meta = Some(out_meta);
            self.producer
                .send_event(&self.kafka.topic(topics::REPLIES), &key, &ev)
                .await?;
        }
        Ok(Handled::Done)
    }
}

/// gRPC API.
pub struct Api;

#[tonic::async_trait]
impl TranslationService for Api {
    async fn detect_language(
        &self,
        req: Request<DetectLanguageRequest>,
    ) -> Result<Response<DetectLanguageResponse>, Status> {
        let caller = kefu_runtime::auth::Caller::of(&req)?;
        let req = req.into_inner();
        caller.shop(&req.shop_id)?;
        let mut v = Violations::new();
        v.text("text", &req.text, 4000, 16 * 1024);
        v.into_result().map_err(ApiError::from)?;
        let d = detect::detect(&req.text);
        Ok(Response::new(DetectLanguageResponse {
            language: d.language,
            confidence: d.confidence,
            reliable: d.reliable,
        }))
    }
}
