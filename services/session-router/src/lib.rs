//! Session router: where customer messages enter the mesh and replies leave it.
//!
//! * gRPC `kefu.session.v1.SessionRouterService/{Send,Subscribe}` and HTTP `POST /v1/messages`
//!   accept messages idempotently (on shop, channel and channel message id), link the channel
//!   identity to a customer and a conversation, store the message, and publish it to
//!   `kefu.conversation.inbound.v1` (transactional outbox: a relay republishes anything stored
//!   but not acknowledged);
//! * consumes `kefu.conversation.classified.v1` and applies the dialogue [`policy`], producing to
//!   `kefu.assist.requests.v1` or `kefu.ticket.escalations.v1`;
//! * consumes `kefu.conversation.replies.v1`, stores each reply once, and delivers it to
//!   `Subscribe` streams and waiting HTTP requests;
//! * consumes `kefu.ticket.updates.v1` and moves each conversation through its states: bot →
//!   waiting_for_human (the policy handed over) → human (an agent replied) → bot (handed back)
//!   or closed;
//! * owns the mesh's external credentials ([`auth`], [`access`]): shops and their API keys
//!   (`kefu.admin.v1.AdminService`, operator token), agent tokens
//!   (`kefu.auth.v1.AgentTokenService`), and tells the other services who holds a credential
//!   (`kefu.auth.v1.AuthService`).
#![forbid(unsafe_code)]

pub mod access;
pub mod api;
pub mod auth;
pub mod core;
pub mod egress;
pub mod entity;
pub mod http;
pub mod pipeline;
pub mod policy;
pub mod privacy;
pub mod retention;
pub mod store;
pub mod webhook;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use clap::Parser;
use kefu_proto::{
    admin::v1::admin_service_server::AdminServiceServer,
    auth::v1::{
        agent_token_service_server::AgentTokenServiceServer, auth_service_server::AuthServiceServer,
    },
    session::v1::session_router_service_server::SessionRouterServiceServer,
};
use kefu_runtime::{
    Service,
    auth::{Gate, Guard, OPERATOR_TOKEN_PREFIX},
    config::{DbArgs, ListenArgs, RuntimeArgs},
    db,
    grpc::MAX_DECODING_MESSAGE_SIZE,
    kafka::topics,
};
use tonic::service::Routes;

pub const SERVICE: &str = "session-router";

/// `kefu-session-router` configuration.
#[derive(Debug, Parser)]
#[command(name = "kefu-session-router", version, about = "Kefu session router")]
pub struct Args {
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// HTTP ingress listen address (`POST /v1/messages`).
    #[arg(long, env = "KEFU_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Below this classifier confidence a person answers instead of the bot.
    #[arg(long, env = "KEFU_MIN_CONFIDENCE", default_value_t = 0.5, value_parser = parse_unit)]
    pub min_confidence: f32,
    /// Seconds of silence after which a conversation is closed; the next message opens a new
    /// conversation linked to the old one.
    #[arg(long, env = "KEFU_CONVERSATION_IDLE_SECS", default_value_t = 86_400, value_parser = clap::value_parser!(i64).range(1..=2_592_000))]
    pub conversation_idle_secs: i64,
    /// order-sync gRPC endpoint: confirms that an order number a customer gives belongs to them
    /// (then the order's buyer identity is linked to the customer).
    #[arg(
        long,
        env = "KEFU_ORDER_SYNC_URL",
        default_value = "http://127.0.0.1:50056"
    )]
    pub order_sync_url: String,
    /// Create this shop at start (with the key in --seed-api-key-file).
    #[arg(long, env = "KEFU_SEED_SHOP", requires = "seed_api_key_file")]
    pub seed_shop: Option<String>,
    /// File holding the seeded shop's API key; generated (mode 0600) when missing.
    #[arg(long, env = "KEFU_SEED_API_KEY_FILE")]
    pub seed_api_key_file: Option<PathBuf>,
    /// File with the operator token (at least 32 characters) that authenticates
    /// `kefu.admin.v1.AdminService` (`kefu shops …`). Without it the admin API refuses
    /// everyone.
    #[arg(long, env = "KEFU_OPERATOR_TOKEN_FILE")]
    pub operator_token_file: Option<PathBuf>,
    /// Networks (comma-separated, `10.1.0.0/16` or single addresses) webhooks may reach beside
    /// the public internet. Private, loopback, link-local and metadata addresses are refused
    /// unless listed here.
    #[arg(long, env = "KEFU_WEBHOOK_ALLOW_NETWORKS", default_value = "", value_parser = parse_egress)]
    pub webhook_allow_networks: egress::EgressPolicy,
    #[command(flatten)]
    pub retention: retention::RetentionFlags,
    #[command(flatten)]
    pub customer_keys: kefu_runtime::customer_key::CustomerKeyArgs,
}

fn parse_egress(s: &str) -> Result<egress::EgressPolicy, String> {
    egress::EgressPolicy::parse(s)
}

/// The operator token in `path`, or exit 64.
fn operator_token(path: &std::path::Path) -> String {
    let token = std::fs::read_to_string(path)
        .unwrap_or_else(|e| {
            kefu_runtime::config::config_error(format!("operator token {}: {e}", path.display()))
        })
        .trim()
        .to_owned();
    if token.len() < 32 || token.contains('.') {
        kefu_runtime::config::config_error(format!(
            "operator token {}: must be at least 32 characters without '.' (e.g. {OPERATOR_TOKEN_PREFIX} and 40 hex digits)",
            path.display()
        ));
    }
    token
}

fn parse_unit(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be between 0 and 1".into())
    }
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    if let Some(done) =
        db::migrate_only::<entity::migration::Migrator>(&args.db, SERVICE, args.runtime.log_format)
            .await
    {
        return done;
    }
    let (grpc_addr, metrics_addr) = args.listen.resolve(50051, 9181);
    let orders = tonic::transport::Endpoint::from_shared(args.order_sync_url.clone())
        .unwrap_or_else(|e| kefu_runtime::config::config_error(format!("order-sync-url: {e}")))
        .connect_timeout(std::time::Duration::from_secs(1))
        .timeout(std::time::Duration::from_secs(2))
        .connect_lazy();
    let operator = args.operator_token_file.as_deref().map(operator_token);
    let customer_keys = args.customer_keys.load_or_exit();
    let mut svc = Service::start(SERVICE, &args.runtime).await?;
    let db = db::open::<entity::migration::Migrator>(&args.db, SERVICE).await?;
    let read = db::reader(&args.db.url_or(SERVICE), &db).await?;
    if let (Some(shop), Some(file)) = (&args.seed_shop, &args.seed_api_key_file) {
        let mut v = kefu_runtime::validate::Violations::new();
        v.ident("seed_shop", shop, 64);
        if let Err(e) = v.into_result() {
            kefu_runtime::config::config_error(e);
        }
        auth::seed_shop(&db, shop, file).await?;
        tracing::info!(shop = %shop, key_file = %file.display(), "seeded shop");
    }
    let (replies, _) = tokio::sync::watch::channel(0i64);
    let (published, acked) = tokio::sync::mpsc::unbounded_channel();
    let verifier = Arc::new(auth::LocalVerifier::new(read.clone(), operator.as_deref()));
    let gate = Arc::new(Gate::new(svc.keys.clone(), verifier.clone()));
    let state = Arc::new(core::State {
        verifier,
        gate: gate.clone(),
        egress: args.webhook_allow_networks.clone(),
        db,
        read,
        published,
        producer: svc.producer.clone(),
        kafka: svc.kafka.clone(),
        replies,
        shutdown: svc.lifecycle.shutdown.clone(),
        conversation_idle: chrono::Duration::seconds(args.conversation_idle_secs),
        customer_keys,
        orders: kefu_proto::order::v1::order_sync_service_client::OrderSyncServiceClient::new(
            orders,
        ),
        default_policy: policy::Policy {
            min_confidence: args.min_confidence,
            ..policy::Policy::default()
        },
    });
    svc.consume(
        &[topics::CLASSIFIED, topics::REPLIES, topics::TICKET_UPDATES],
        Arc::new(pipeline::Consumers {
            state: state.clone(),
            policy: state.default_policy.clone(),
        }),
    );
    svc.lifecycle
        .spawn("outbox-relay", core::outbox_relay(state.clone()));
    svc.lifecycle.spawn(
        "outbox-marks",
        core::mark_published_loop(state.clone(), acked),
    );
    svc.lifecycle
        .spawn("webhooks", webhook::deliver_loop(state.clone()));
    kefu_runtime::retention::Retention::new(
        state.db.clone(),
        retention::rules(&args.retention),
        &args.retention.common,
    )
    .spawn(&mut svc);
    let http_listener = kefu_runtime::grpc::bind(args.http_addr, "HTTP").await?;
    svc.lifecycle.spawn(
        "http",
        http::serve(http_listener, state.clone(), state.shutdown.clone()),
    );
    let routes = Routes::new(Guard::new(
        SessionRouterServiceServer::new(api::Api {
            state: state.clone(),
        })
        .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
        gate.clone(),
        access::policy,
    ))
    .add_service(Guard::new(
        AuthServiceServer::new(access::Access {
            state: state.clone(),
        }),
        gate.clone(),
        access::auth_policy,
    ))
    .add_service(Guard::new(
        AgentTokenServiceServer::new(access::Access {
            state: state.clone(),
        }),
        gate.clone(),
        access::agent_token_policy,
    ))
    .add_service(Guard::new(
        kefu_runtime::privacy::server(privacy::CustomerDataStore {
            db: state.db.clone(),
        }),
        gate.clone(),
        kefu_runtime::privacy::policy,
    ))
    .add_service(Guard::new(
        AdminServiceServer::new(access::Access { state }),
        gate,
        access::admin_policy,
    ));
    Ok(svc.serve(grpc_addr, metrics_addr, routes).await)
}
