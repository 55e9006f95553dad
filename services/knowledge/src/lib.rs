//! Knowledge: each shop's FAQ and policies, product catalogue, promotions and test scenarios.
//!
//! * gRPC `kefu.knowledge.v1.KnowledgeService` ([`api`]): a shop imports its bundle
//!   (docs/knowledge.md) as a new version, evaluates the bundle's scenarios against it and
//!   against the active version, activates it (refused when it scores lower, unless forced),
//!   rolls back; the assistant asks it for answers (`Answer`), which come only from the
//!   active version of the caller's shop ([`kefu_knowledge::answer`]).
//! * Versions are stored as the files imported ([`store`]); a version is parsed and indexed
//!   (tantivy) when first needed and kept in memory.
#![forbid(unsafe_code)]

pub mod api;
pub mod entity;
pub mod phrasing;
pub mod store;

use clap::Parser;
use entity::migration::Migrator;
use kefu_proto::knowledge::v1::knowledge_service_server::KnowledgeServiceServer;
use kefu_runtime::{
    Service,
    auth::Guard,
    config::{DbArgs, ListenArgs, RuntimeArgs},
    db,
};
use prometheus_client::metrics::{counter::Counter, family::Family};
use tonic::service::Routes;

pub const SERVICE: &str = "knowledge";

/// Largest gRPC message: bundle chunks are up to 1 MiB.
const MAX_MESSAGE: usize = 2 * 1024 * 1024;

/// `kefu-knowledge` configuration.
#[derive(Debug, Parser)]
#[command(name = "kefu-knowledge", version, about = "Kefu knowledge service")]
pub struct Args {
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub llm: phrasing::LlmArgs,
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    if let Some(done) =
        db::migrate_only::<Migrator>(&args.db, SERVICE, args.runtime.log_format).await
    {
        return done;
    }
    let (grpc_addr, metrics_addr) = args.listen.resolve(50058, 9188);
    let svc = Service::start(SERVICE, &args.runtime).await?;
    let db = db::open::<Migrator>(&args.db, SERVICE).await?;
    let outcomes: Family<Vec<(String, String)>, Counter> = Family::default();
    svc.metrics.register(
        "knowledge_phrasing",
        "LLM phrasing attempts by outcome (phrased, invented_number, unusable, timeout, failed)",
        outcomes.clone(),
    );
    let phraser = phrasing::Phraser::from_args(&args.llm, outcomes)
        .unwrap_or_else(|e| kefu_runtime::config::config_error(format!("{e:#}")));
    if phraser.is_some() {
        tracing::info!(url = %args.llm.url, model = %args.llm.model, "LLM phrasing on");
    }
    let meaning = kefu_embed::Config::from_env()
        .unwrap_or_else(|e| kefu_runtime::config::config_error(format!("{e}")))
        .map(|c| {
            tracing::info!(url = %c.url, model = %c.model, "FAQ entries found by meaning too");
            let embeddings: Family<Vec<(String, String)>, Counter> = Family::default();
            svc.metrics.register(
                "knowledge_embeddings",
                "Embedding outcomes (query, query_failed: a question; faq, faq_failed: a version's FAQ)",
                embeddings.clone(),
            );
            api::Meaning::new(kefu_embed::Embedder::new(c), embeddings)
        });
    let api = api::Api::new(db)
        .with_phraser(phraser)
        .with_meaning(meaning);
    let routes = Routes::new(Guard::new(
        KnowledgeServiceServer::new(api).max_decoding_message_size(MAX_MESSAGE),
        svc.remote_gate(),
        api::policy,
    ));
    Ok(svc.serve(grpc_addr, metrics_addr, routes).await)
}
