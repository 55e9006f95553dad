//! Intent classifier: intent, confidence and entities for every normalized message.
//!
//! * consumes `kefu.conversation.normalized.v1` → produces `kefu.conversation.classified.v1`;
//! * gRPC `kefu.intent.v1.IntentClassifierService/{Classify,ClassifyBatch}`.
//!
//! The model is `kefu-intent`'s (hashed n-gram softmax regression, see `crates/kefu-intent`):
//! the bundled artefact, or the file named by `--model`, which is reloaded on SIGHUP without
//! dropping traffic (a bad file is refused and the running model kept).
#![forbid(unsafe_code)]

use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
};

use async_trait::async_trait;
use clap::Parser;
use kefu_intent::{Model, entities};
use kefu_proto::{
    events::v1::{self as ev, MessageEvent},
    intent::v1::{
        ClassifyBatchRequest, ClassifyBatchResponse, ClassifyBatchResult, ClassifyRequest,
        ClassifyResponse, Entity,
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
use tonic::{Request, Response, Status, service::Routes};

pub const SERVICE: &str = "intent-classifier";
/// Most items in one `ClassifyBatch`.
pub const MAX_BATCH: usize = 256;

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
    /// Model artefact from `kefu-intent train` (default: the bundled model). Reloaded on SIGHUP.
    #[arg(long, env = "KEFU_INTENT_MODEL")]
    pub model: Option<PathBuf>,
}

/// The model in use; swapped atomically on reload.
#[derive(Clone)]
pub struct Models(Arc<RwLock<Arc<Model>>>);

impl Models {
    pub fn new(m: Model) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(m))))
    }

    pub fn current(&self) -> Arc<Model> {
        self.0.read().expect("model lock").clone()
    }

    pub fn replace(&self, m: Model) {
        *self.0.write().expect("model lock") = Arc::new(m);
    }
}

/// A classification in the shape both the API and the events use.
pub struct Classified {
    pub intent: String,
    pub confidence: f32,
    pub entities: Vec<entities::Entity>,
    pub model: String,
}

pub fn classify(model: &Model, text: &str) -> Classified {
    let p = model.predict(text);
    Classified {
        intent: p.intent,
        confidence: p.confidence,
        entities: entities::extract(text),
        model: model.version.clone(),
    }
}

fn load(path: Option<&PathBuf>) -> anyhow::Result<Model> {
    Ok(match path {
        Some(p) => Model::load(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => kefu_intent::bundled()?,
    })
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    let (grpc_addr, metrics_addr) = args.listen.resolve(50053, 9183);
    let mut svc = Service::start(SERVICE, &args.runtime).await?;
    let started = std::time::Instant::now();
    let models = Models::new(load(args.model.as_ref())?);
    tracing::info!(model = %models.current().version, load = ?started.elapsed(), "intent model loaded");
    if let Some(path) = args.model.clone() {
        svc.lifecycle.spawn(
            "model-reload",
            reload_on_sighup(models.clone(), path, svc.lifecycle.shutdown.clone()),
        );
    }
    let handler = Arc::new(Pipeline {
        kafka: svc.kafka.clone(),
        producer: svc.producer.clone(),
        models: models.clone(),
    });
    svc.consume(&[topics::NORMALIZED], handler);
    let routes = Routes::new(kefu_runtime::auth::Guard::new(
        IntentClassifierServiceServer::new(Api { models })
            .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE * 8),
        svc.remote_gate(),
        kefu_runtime::auth::shops_and_services,
    ));
    Ok(svc.serve(grpc_addr, metrics_addr, routes).await)
}

async fn reload_on_sighup(
    models: Models,
    path: PathBuf,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = hup.recv() => {}
        }
        let p = path.clone();
        match tokio::task::spawn_blocking(move || Model::load(&p)).await? {
            Ok(m) => {
                tracing::info!(model = %m.version, "intent model reloaded");
                models.replace(m);
            }
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "model reload refused; keeping the running model")
            }
        }
    }
}

struct Pipeline {
    kafka: KafkaConfig,
    producer: Producer,
    models: Models,
}

fn event_entities(es: &[entities::Entity]) -> Vec<ev::Entity> {
    es.iter()
        .map(|e| ev::Entity {
            kind: e.kind.into(),
            value: e.value.clone(),
            start: e.start as u32,
            end: e.end as u32,
            detail: e.detail.clone(),
        })
        .collect()
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
        let c = classify(&self.models.current(), text);
        msg.classification = Some(ev::Classification {
            intent: c.intent,
            confidence: c.confidence,
            entities: event_entities(&c.entities),
            model: c.model,
        });
        let key = out_meta.conversation_id.clone();
        msg.meta = Some(out_meta);
        self.producer
            .send_event(&self.kafka.topic(topics::CLASSIFIED), &key, &msg)
            .await?;
        Ok(Handled::Done)
    }
}

fn response(c: Classified) -> ClassifyResponse {
    ClassifyResponse {
        intent: c.intent,
        confidence: c.confidence,
        entities: c
            .entities
            .into_iter()
            .map(|e| Entity {
                kind: e.kind.into(),
                value: e.value,
                start: e.start as u32,
                end: e.end as u32,
                detail: e.detail,
            })
            .collect(),
        model: c.model,
    }
}

/// gRPC API.
pub struct Api {
    pub models: Models,
}

#[tonic::async_trait]
impl IntentClassifierService for Api {
    async fn classify(
        &self,
        req: Request<ClassifyRequest>,
    ) -> Result<Response<ClassifyResponse>, Status> {
        let caller = kefu_runtime::auth::Caller::of(&req)?;
        let req = req.into_inner();
        caller.shop(&req.shop_id)?;
        let mut v = Violations::new();
        v.text("text", &req.text, 4000, 16 * 1024);
        if req.language.len() > 8 {
            v.add("language", "must be an ISO 639-1 code");
        }
        v.into_result().map_err(ApiError::from)?;
        Ok(Response::new(response(classify(
            &self.models.current(),
            &req.text,
        ))))
    }

    async fn classify_batch(
        &self,
        req: Request<ClassifyBatchRequest>,
    ) -> Result<Response<ClassifyBatchResponse>, Status> {
        let caller = kefu_runtime::auth::Caller::of(&req)?;
        let req = req.into_inner();
        caller.shop(&req.shop_id)?;
        let mut v = Violations::new();
        if req.items.is_empty() || req.items.len() > MAX_BATCH {
            v.add("items", format!("must hold 1 to {MAX_BATCH} items"));
        }
        for (i, item) in req.items.iter().enumerate().take(MAX_BATCH) {
            v.text(&format!("items[{i}].text"), &item.text, 4000, 16 * 1024);
        }
        v.into_result().map_err(ApiError::from)?;
        let model = self.models.current();
        let results = req
            .items
            .into_iter()
            .map(|item| ClassifyBatchResult {
                result: Some(response(classify(&model, &item.text))),
                id: item.id,
            })
            .collect();
        Ok(Response::new(ClassifyBatchResponse { results }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_model_classifies_and_finds_entities() {
        let m = kefu_intent::bundled().expect("bundled model");
        assert_eq!(classify(&m, "我要退货").intent, "return_exchange");
        let c = classify(&m, "where is my order 202611110001");
        assert_eq!(c.intent, "order_status");
        assert!(
            c.entities
                .iter()
                .any(|e| e.kind == "order_id" && e.value == "202611110001")
        );
        assert_eq!(
            classify(&m, "what's the weather in Paris tomorrow").intent,
            "out_of_scope"
        );
    }
}
