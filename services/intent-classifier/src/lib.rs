//! Intent classifier: intent, confidence and entities for every normalized message.
//!
//! * consumes `kefu.conversation.normalized.v1` → produces `kefu.conversation.classified.v1`;
//! * gRPC `kefu.intent.v1.IntentClassifierService` ([`api`]): classification, and each shop's
//!   own intents — examples (uploads and agents' labels), training with a release check,
//!   evaluation, status, rollback — stored in its database ([`store`]).
//!
//! A shop with a trained model is classified with it ([`shops`]: `kefu_intent::shop`, the
//! n-gram model plus, where `KEFU_EMBEDDINGS_URL` names an embedding server, an embedding
//! head asked only where the n-gram model is unsure). Every other shop gets `kefu-intent`'s
//! bundled model, or the file named by `--model`, which is reloaded on SIGHUP without
//! dropping traffic (a bad file is refused and the running model kept).
#![forbid(unsafe_code)]

pub mod api;
pub mod entity;
pub mod privacy;
pub mod shops;
pub mod store;

use std::{
    path::PathBuf,
    sync::{Arc, RwLock},
};

use async_trait::async_trait;
use clap::Parser;
use entity::migration::Migrator;
use kefu_intent::{Model, entities};
use kefu_proto::{
    events::v1::{self as ev, MessageEvent},
    intent::v1::intent_classifier_service_server::IntentClassifierServiceServer,
};
use kefu_runtime::{
    Service,
    config::{DbArgs, ListenArgs, RuntimeArgs},
    db, event,
    grpc::MAX_DECODING_MESSAGE_SIZE,
    kafka::{Delivery, HandleError, Handled, Handler, KafkaConfig, Producer, topics},
};
use prometheus_client::metrics::{counter::Counter, family::Family};
use tonic::service::Routes;

pub use api::MAX_BATCH;
pub use shops::{Classified, Shops};

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
    #[command(flatten)]
    pub db: DbArgs,
    /// Model artefact from `kefu-intent train` (default: the bundled model). Reloaded on SIGHUP.
    #[arg(long, env = "KEFU_INTENT_MODEL")]
    pub model: Option<PathBuf>,
}

/// The bundled (or `--model`) model; swapped atomically on reload.
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

/// Classification with the bundled model (no shop model, no I/O).
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
    if let Some(done) =
        db::migrate_only::<Migrator>(&args.db, SERVICE, args.runtime.log_format).await
    {
        return done;
    }
    let (grpc_addr, metrics_addr) = args.listen.resolve(50053, 9183);
    let mut svc = Service::start(SERVICE, &args.runtime).await?;
    let db = db::open::<Migrator>(&args.db, SERVICE).await?;
    let started = std::time::Instant::now();
    let models = Models::new(load(args.model.as_ref())?);
    tracing::info!(model = %models.current().version, load = ?started.elapsed(), "intent model loaded");
    if let Some(path) = args.model.clone() {
        svc.lifecycle.spawn(
            "model-reload",
            reload_on_sighup(models.clone(), path, svc.lifecycle.shutdown.clone()),
        );
    }
    let meaning = kefu_embed::Config::from_env()
        .unwrap_or_else(|e| kefu_runtime::config::config_error(format!("{e}")))
        .map(|c| {
            tracing::info!(url = %c.url, model = %c.model, "shop models use the embedding model where the n-gram model is unsure");
            let outcomes: Family<Vec<(String, String)>, Counter> = Family::default();
            svc.metrics.register(
                "intent_embeddings",
                "Messages of shops with a trained model, by outcome: used (embedded in time), failed (not in time: the n-gram model decided), not_needed (the n-gram model was sure)",
                outcomes.clone(),
            );
            shops::Meaning {
                embedder: kefu_embed::Embedder::new(c),
                outcomes,
            }
        });
    let data = privacy::CustomerDataStore { db: db.clone() };
    let shops = Arc::new(Shops::new(db, models.clone(), meaning));
    let handler = Arc::new(Pipeline {
        kafka: svc.kafka.clone(),
        producer: svc.producer.clone(),
        shops: shops.clone(),
    });
    svc.consume(&[topics::NORMALIZED], handler);
    let routes = Routes::new(kefu_runtime::auth::Guard::new(
        IntentClassifierServiceServer::new(api::Api::new(shops))
            .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE * 8),
        svc.remote_gate(),
        api::policy,
    ))
    .add_service(kefu_runtime::auth::Guard::new(
        kefu_runtime::privacy::server(data),
        svc.remote_gate(),
        kefu_runtime::privacy::policy,
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
        reload(&models, &path, |p| Ok(Model::load(p)?)).await;
    }
}

/// One reload: the file's model replaces the running one, or (unreadable, refused, or the
/// loader panicked) the running model stays and the service carries on.
pub async fn reload(
    models: &Models,
    path: &std::path::Path,
    loader: fn(&std::path::Path) -> anyhow::Result<Model>,
) -> bool {
    let p = path.to_owned();
    match kefu_runtime::lifecycle::blocking(move || loader(&p)).await {
        Ok(m) => {
            tracing::info!(model = %m.version, "intent model reloaded");
            models.replace(m);
            true
        }
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "model reload refused; keeping the running model");
            false
        }
    }
}

struct Pipeline {
    kafka: KafkaConfig,
    producer: Producer,
    shops: Arc<Shops>,
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
        let c = self
            .shops
            .classify(&out_meta.shop_id, &[text.as_str()])
            .await
            .remove(0);
        msg.classification = Some(ev::Classification {
            entities: event_entities(&c.entities),
            intent: c.intent,
            confidence: c.confidence,
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

    /// A reload whose loader panics (a model file that trips a parser bug) keeps the running
    /// model and returns: before, the panic ended the reload task and with it the service.
    #[tokio::test]
    async fn a_panicking_reload_keeps_the_running_model() {
        let models = Models::new(kefu_intent::bundled().expect("bundled model"));
        let before = models.current().version.clone();
        let path = std::path::Path::new("/nonexistent/model.bin");
        assert!(!reload(&models, path, |_| panic!("index out of bounds")).await);
        assert_eq!(models.current().version, before);
        assert!(!reload(&models, path, |p| Ok(Model::load(p)?)).await);
        assert!(reload(&models, path, |_| Ok(kefu_intent::bundled()?)).await);
    }
}
