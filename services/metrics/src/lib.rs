//! Metrics: counts every event on every topic (dead-letter topics included), per shop.
//!
//! * consumes every `kefu.*` topic and its `.dlq` twin; each event is counted once per topic
//!   (deduplicated on its event id — on topic/partition/offset when it has none — in the same
//!   transaction as the count), however often it was delivered;
//! * Prometheus `kefu_topic_events_total{topic}` on the metrics port;
//! * gRPC `kefu.metrics.v1.MetricsService/GetTopicCounts`: a shop's key sees its own counts,
//!   the operator every shop's.
#![forbid(unsafe_code)]

pub mod entity;
pub mod retention;

use std::sync::Arc;

use async_trait::async_trait;
use clap::Parser;
use entity::{migration::Migrator, seen_event, topic_count};
use kefu_proto::{
    events::v1::EventMeta,
    metrics::v1::{
        GetTopicCountsRequest, GetTopicCountsResponse, TopicCount,
        metrics_service_server::{MetricsService, MetricsServiceServer},
    },
};
use kefu_runtime::{
    Service,
    auth::{Allow, Caller, Guard, Principal},
    config::{DbArgs, ListenArgs, RuntimeArgs},
    db,
    grpc::{ApiError, MAX_DECODING_MESSAGE_SIZE},
    kafka::{Delivery, HandleError, Handled, Handler, topics},
    metrics::TopicLabels,
    validate::Violations,
};
use prometheus_client::metrics::{counter::Counter, family::Family};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use tonic::{Request, Response, Status, service::Routes};

pub const SERVICE: &str = "metrics";

/// `kefu-metrics` configuration.
#[derive(Debug, Parser)]
#[command(name = "kefu-metrics", version, about = "Kefu metrics service")]
pub struct Args {
    #[command(flatten)]
    pub listen: ListenArgs,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub retention: retention::RetentionFlags,
}

pub async fn run(args: Args) -> anyhow::Result<i32> {
    if let Some(done) =
        db::migrate_only::<Migrator>(&args.db, SERVICE, args.runtime.log_format).await
    {
        return done;
    }
    let (grpc_addr, metrics_addr) = args.listen.resolve(50057, 9187);
    let mut svc = Service::start(SERVICE, &args.runtime).await?;
    // Metrics only observes: its own failures are retried, never dead-lettered.
    svc.kafka.dead_letter = false;
    // It reads every topic and its dead letters; nobody waits on it, so it polls the broker
    // 10× less often than the pipeline's consumers.
    svc.kafka.fetch_wait_ms = Ord::max(svc.kafka.fetch_wait_ms, 1000);
    let db = db::open::<Migrator>(&args.db, SERVICE).await?;
    kefu_runtime::retention::Retention::new(
        db.clone(),
        retention::rules(&args.retention),
        &args.retention.common,
    )
    .spawn(&mut svc);
    let counter: Family<TopicLabels, Counter> = Family::default();
    svc.metrics.register(
        "topic_events",
        "Events seen on each topic (counted once per delivery)",
        counter.clone(),
    );
    let names: Vec<String> = topics::ALL
        .iter()
        .flat_map(|t| {
            let n = svc.kafka.topic(t);
            [n.clone(), format!("{n}{}", topics::DLQ_SUFFIX)]
        })
        .collect();
    let handler = Arc::new(Counting {
        db: db.clone(),
        prefix: svc.kafka.prefix.clone(),
        counter,
    });
    svc.consume_full_names(names, handler);
    let routes = Routes::new(Guard::new(
        MetricsServiceServer::new(Api { db }).max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
        svc.remote_gate(),
        policy,
    ));
    Ok(svc.serve(grpc_addr, metrics_addr, routes).await)
}

/// Every Kefu event has its `EventMeta` as field 1; metrics reads only that.
#[derive(Clone, PartialEq, prost::Message)]
struct MetaOnly {
    #[prost(message, optional, tag = "1")]
    meta: Option<EventMeta>,
}

pub struct Counting {
    db: DatabaseConnection,
    prefix: String,
    counter: Family<TopicLabels, Counter>,
}

#[async_trait]
impl Handler for Counting {
    async fn handle(&self, d: &Delivery) -> Result<Handled, HandleError> {
        let topic = d
            .topic
            .strip_prefix(&self.prefix)
            .unwrap_or(&d.topic)
            .to_owned();
        // Undecodable events are counted too (under shop ""), never dead-lettered here:
        // metrics only observes.
        let meta = <MetaOnly as prost::Message>::decode(d.payload.as_slice())
            .ok()
            .and_then(|m| m.meta)
            .unwrap_or_default();
        // An event counts once per topic whatever delivered it again (an outbox relay's
        // republish, a dead-letter replay); one without an id once per delivery.
        let delivery_id = if meta.event_id.is_empty() {
            format!("{}/{}/{}", d.topic, d.partition, d.offset)
        } else {
            format!("{}#{}", d.topic, meta.event_id)
        };
        let shop_id = meta.shop_id;
        let txn = kefu_runtime::db::begin_write(&self.db).await?;
        let inserted = seen_event::Entity::insert(seen_event::ActiveModel {
            delivery_id: Set(delivery_id),
            seen_at: Set(chrono::Utc::now()),
        })
        .exec(&txn)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if db::is_unique_violation(&e) => {
                txn.rollback().await?;
                return Ok(Handled::Duplicate);
            }
            Err(e) => return Err(e.into()),
        }
        topic_count::Entity::insert(topic_count::ActiveModel {
            topic: Set(topic.clone()),
            shop_id: Set(shop_id),
            events: Set(1),
        })
        .on_conflict(
            OnConflict::columns([topic_count::Column::Topic, topic_count::Column::ShopId])
                .value(
                    topic_count::Column::Events,
                    Expr::col((topic_count::Entity, topic_count::Column::Events)).add(1),
                )
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        self.counter.get_or_create(&TopicLabels { topic }).inc();
        Ok(Handled::Done)
    }
}

/// A shop reads its own counts; the operator reads every shop's (the counts name shops).
pub fn policy(_method: &str) -> Option<Allow> {
    Some(Allow::SHOP | Allow::OPERATOR)
}

/// gRPC API.
pub struct Api {
    pub db: DatabaseConnection,
}

#[tonic::async_trait]
impl MetricsService for Api {
    async fn get_topic_counts(
        &self,
        req: Request<GetTopicCountsRequest>,
    ) -> Result<Response<GetTopicCountsResponse>, Status> {
        let caller = Caller::of(&req)?;
        let req = req.into_inner();
        let mut q = topic_count::Entity::find()
            .order_by_asc(topic_count::Column::Topic)
            .order_by_asc(topic_count::Column::ShopId);
        // A shop sees only itself; the operator may filter by shop or see all.
        let shop = if caller.principal == Principal::Operator {
            if !req.shop_id.is_empty() {
                let mut v = Violations::new();
                v.ident("shop_id", &req.shop_id, 64);
                v.into_result().map_err(ApiError::from)?;
            }
            req.shop_id
        } else {
            caller.shop(&req.shop_id)?
        };
        if !shop.is_empty() {
            q = q.filter(topic_count::Column::ShopId.eq(shop));
        }
        let rows = q.all(&self.db).await.map_err(ApiError::from)?;
        Ok(Response::new(GetTopicCountsResponse {
            counts: rows
                .into_iter()
                .map(|r| TopicCount {
                    topic: r.topic,
                    shop_id: r.shop_id,
                    events: r.events,
                })
                .collect(),
        }))
    }
}
