//! Order-sync: real order and logistics data behind every "where is my order?".
//!
//! * connectors over HTTP ([`http`]): Shopify webhooks, a generic signed JSON webhook, and
//!   carrier tracking scans; bulk import over gRPC (`ImportOrders`, used by
//!   `kefu orders import FILE`) from JSON lines or CSV;
//! * the canonical model ([`entity`], [`model`]; docs/orders.md) stored idempotently: a replay
//!   changes nothing and publishes nothing;
//! * order and shipment changes on `kefu.commerce.orders.v1` / `kefu.commerce.shipments.v1`
//!   through an outbox;
//! * gRPC `kefu.order.v1.OrderSyncService`: `GetOrder`, `ListCustomerOrders` and
//!   `GetShipment` for the assistant and session-router (service credentials, always scoped to
//!   the customer's keys), the shop's back office and agents; `UpsertOrder` and
//!   `ImportOrders` with the shop's API key only ([`api::policy`]).
#![forbid(unsafe_code)]

pub mod api;
pub mod entity;
pub mod http;
pub mod model;
pub mod privacy;
pub mod rejections;
pub mod retention;
pub mod store;

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use clap::Parser;
use entity::migration::Migrator;
use kefu_proto::order::v1::order_sync_service_server::OrderSyncServiceServer;
use kefu_runtime::{
    Service,
    config::{DbArgs, ListenArgs, RuntimeArgs},
    db,
    grpc::MAX_DECODING_MESSAGE_SIZE,
};
use tonic::service::Routes;

pub const SERVICE: &str = "order-sync";

/// `kefu-order-sync` configuration.
#[derive(Debug, Parser)]
#[command(name = "kefu-order-sync", version, about = "Kefu order-sync service")]
pub struct Args {
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub db: DbArgs,
    /// Connector HTTP listen address (Shopify and generic webhooks, tracking scans).
    #[arg(long, env = "KEFU_HTTP_ADDR", default_value = "127.0.0.1:8086")]
    pub http_addr: SocketAddr,
    /// File of per-shop connector secrets: lines `shop_id shopify|webhook secret`. Without it
    /// every connector request is refused (and counted); gRPC imports still work.
    #[arg(long, env = "KEFU_CONNECTOR_SECRETS_FILE")]
    pub connector_secrets_file: Option<PathBuf>,
    #[command(flatten)]
    pub retention: retention::RetentionFlags,
    #[command(flatten)]
    pub customer_keys: kefu_runtime::customer_key::CustomerKeyArgs,
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    if let Some(done) =
        db::migrate_only::<Migrator>(&args.db, SERVICE, args.runtime.log_format).await
    {
        return done;
    }
    let (grpc_addr, metrics_addr) = args.listen.resolve(50056, 9186);
    let secrets = match &args.connector_secrets_file {
        Some(path) => http::Secrets::load(path).unwrap_or_else(|e| {
            kefu_runtime::config::config_error(format!("connector secrets: {e}"))
        }),
        None => http::Secrets::default(),
    };
    let customer_keys = args.customer_keys.load_or_exit();
    let mut svc = Service::start(SERVICE, &args.runtime).await?;
    let db = db::open::<Migrator>(&args.db, SERVICE).await?;
    let relay = kefu_runtime::outbox::Relay::new("commerce-events", db.clone());
    let connectors = Arc::new(http::Connectors {
        db: db.clone(),
        secrets,
        customer_keys,
        refusals: rejections::Refusals::default(),
        nudge: relay.nudger(),
    });
    connectors.refusals.register(&svc.metrics);
    kefu_runtime::retention::Retention::new(
        db.clone(),
        retention::rules(&args.retention),
        &args.retention.common,
    )
    .spawn(&mut svc);
    let shutdown = svc.lifecycle.shutdown.clone();
    let (producer, kafka) = (svc.producer.clone(), svc.kafka.clone());
    svc.lifecycle.spawn(
        "commerce-outbox",
        relay.run(shutdown.clone(), move || {
            let (db, producer, kafka) = (db.clone(), producer.clone(), kafka.clone());
            async move { store::publish_pending(&db, &producer, &kafka).await }
        }),
    );
    let http_listener = kefu_runtime::grpc::bind(args.http_addr, "HTTP").await?;
    svc.lifecycle.spawn(
        "http",
        http::serve(http_listener, connectors.clone(), shutdown),
    );
    let data = privacy::CustomerDataStore {
        db: connectors.db.clone(),
    };
    let routes = Routes::new(kefu_runtime::auth::Guard::new(
        OrderSyncServiceServer::new(api::Api { c: connectors })
            .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
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
