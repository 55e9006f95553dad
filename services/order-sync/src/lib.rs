//! Order-sync: the orders and shipments other services answer from.
//!
//! * gRPC `kefu.order.v1.OrderSyncService/{GetOrder,UpsertOrder}`.
//!
//! Marketplace connectors (webhooks, imports, polling) and the `kefu.commerce.*` topics come
//! with the order-sync issue; the store and its API are here so the assistant can use them.
#![forbid(unsafe_code)]

pub mod entity;

use chrono::Utc;
use clap::Parser;
use entity::{migration::Migrator, order};
use kefu_proto::order::v1::{
    GetOrderRequest, GetOrderResponse, Order, UpsertOrderRequest, UpsertOrderResponse,
    order_sync_service_server::{OrderSyncService, OrderSyncServiceServer},
};
use kefu_runtime::{
    Service,
    config::{DbArgs, ListenArgs, RuntimeArgs},
    db, event,
    grpc::{ApiError, MAX_DECODING_MESSAGE_SIZE},
    validate::Violations,
};
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait, sea_query::OnConflict};
use tonic::{Request, Response, Status, service::Routes};

pub const SERVICE: &str = "order-sync";

/// Order states order-sync accepts.
pub const STATUSES: &[&str] = &[
    "pending_payment",
    "paid",
    "shipped",
    "delivered",
    "cancelled",
    "refunded",
];

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
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    let (grpc_addr, metrics_addr) = args.listen.resolve(50056, 9186);
    let svc = Service::start(SERVICE, &args.runtime).await?;
    let db = db::connect_and_migrate::<Migrator>(&args.db.url_or(SERVICE)).await?;
    let routes = Routes::new(
        OrderSyncServiceServer::new(Api { db })
            .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
    );
    Ok(svc.serve(grpc_addr, metrics_addr, routes).await)
}

fn to_proto(o: order::Model) -> Order {
    Order {
        shop_id: o.shop_id,
        order_id: o.order_id,
        customer_id: o.customer_id,
        status: o.status,
        carrier: o.carrier,
        tracking_number: o.tracking_number,
        total_minor: o.total_minor,
        currency: o.currency,
        updated_at: Some(event::timestamp(o.updated_at)),
    }
}

/// gRPC API.
pub struct Api {
    pub db: DatabaseConnection,
}

#[tonic::async_trait]
impl OrderSyncService for Api {
    async fn get_order(
        &self,
        req: Request<GetOrderRequest>,
    ) -> Result<Response<GetOrderResponse>, Status> {
        let req = req.into_inner();
        let mut v = Violations::new();
        v.ident("shop_id", &req.shop_id, 64);
        v.ident("order_id", &req.order_id, 64);
        v.into_result().map_err(ApiError::from)?;
        let o = order::Entity::find_by_id((req.shop_id, req.order_id.clone()))
            .one(&self.db)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("order {} not found", req.order_id)))?;
        Ok(Response::new(GetOrderResponse {
            order: Some(to_proto(o)),
        }))
    }

    async fn upsert_order(
        &self,
        req: Request<UpsertOrderRequest>,
    ) -> Result<Response<UpsertOrderResponse>, Status> {
        let o = req.into_inner().order.unwrap_or_default();
        let mut v = Violations::new();
        v.ident("order.shop_id", &o.shop_id, 64);
        v.ident("order.order_id", &o.order_id, 64);
        if !STATUSES.contains(&o.status.as_str()) {
            v.add(
                "order.status",
                format!("must be one of {}", STATUSES.join(", ")),
            );
        }
        if o.total_minor < 0 {
            v.add("order.total_minor", "must not be negative");
        }
        if !(o.currency.len() == 3 && o.currency.chars().all(|c| c.is_ascii_uppercase())) {
            v.add("order.currency", "must be an ISO 4217 code such as CNY");
        }
        for (field, value) in [
            ("order.customer_id", &o.customer_id),
            ("order.carrier", &o.carrier),
            ("order.tracking_number", &o.tracking_number),
        ] {
            if value.len() > 128 {
                v.add(field, "must be at most 128 characters");
            }
        }
        v.into_result().map_err(ApiError::from)?;
        let model = order::ActiveModel {
            shop_id: Set(o.shop_id.clone()),
            order_id: Set(o.order_id.clone()),
            customer_id: Set(o.customer_id.clone()),
            status: Set(o.status.clone()),
            carrier: Set(o.carrier.clone()),
            tracking_number: Set(o.tracking_number.clone()),
            total_minor: Set(o.total_minor),
            currency: Set(o.currency.clone()),
            updated_at: Set(Utc::now()),
        };
        order::Entity::insert(model)
            .on_conflict(
                OnConflict::columns([order::Column::ShopId, order::Column::OrderId])
                    .update_columns([
                        order::Column::CustomerId,
                        order::Column::Status,
                        order::Column::Carrier,
                        order::Column::TrackingNumber,
                        order::Column::TotalMinor,
                        order::Column::Currency,
                        order::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec(&self.db)
            .await
            .map_err(ApiError::from)?;
        let stored = order::Entity::find_by_id((o.shop_id, o.order_id))
            .one(&self.db)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("upserted order missing")))?;
        Ok(Response::new(UpsertOrderResponse {
            order: Some(to_proto(stored)),
        }))
    }
}
