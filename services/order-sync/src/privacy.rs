//! `kefu.privacy.v1.CustomerDataService` on order-sync (docs/privacy.md).
//!
//! order-sync does not know session-router's customer ids: it finds the customer's buyer rows
//! (`commerce_customers`) by the keys session-router's export puts in the subject, exactly as
//! it matches orders to customers (`identity` = `channel:channel_user_id`, `phone` / `email` =
//! the keyed hashes). Erasure deletes those buyer rows and redacts the buyer of their orders
//! (`buyer_name` emptied, `customer_ref` replaced by the order's own `order:<id>`): the orders,
//! their items, payments and shipments stay for the shop's accounts, no longer tied to a person.
use kefu_proto::privacy::v1::Subject;
use kefu_runtime::{
    grpc::ApiError,
    json_row,
    privacy::{CustomerData, Erased, Export},
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder,
};

use crate::entity::{customer, line_item, order, payment, shipment};

use kefu_runtime::db::IN_LIST_CHUNK as CHUNK;

/// order-sync's customer data.
pub struct CustomerDataStore {
    pub db: DatabaseConnection,
}

/// The shop's buyer rows matching one of the subject's keys.
async fn buyers_of<C: ConnectionTrait>(
    db: &C,
    shop_id: &str,
    subject: &Subject,
) -> Result<Vec<customer::Model>, DbErr> {
    let mut out: Vec<customer::Model> = Vec::new();
    for keys in subject.keys.chunks(CHUNK) {
        let mut any = Condition::any();
        for k in keys.iter().filter(|k| !k.value.trim().is_empty()) {
            any = match k.kind.as_str() {
                "identity" => any.add(customer::Column::Identity.eq(&k.value)),
                "phone" => any.add(customer::Column::PhoneSha256.eq(k.value.to_lowercase())),
                "email" => any.add(customer::Column::EmailSha256.eq(k.value.to_lowercase())),
                _ => any,
            };
        }
        if any.is_empty() {
            continue;
        }
        out.extend(
            customer::Entity::find()
                .filter(customer::Column::ShopId.eq(shop_id))
                .filter(any)
                .all(db)
                .await?,
        );
    }
    out.sort_by(|a, b| a.customer_ref.cmp(&b.customer_ref));
    out.dedup_by(|a, b| a.customer_ref == b.customer_ref);
    Ok(out)
}

/// The orders of `buyers`, oldest first.
async fn orders_of<C: ConnectionTrait>(
    db: &C,
    shop_id: &str,
    buyers: &[customer::Model],
) -> Result<Vec<order::Model>, DbErr> {
    let mut out = Vec::new();
    for chunk in buyers.chunks(CHUNK) {
        out.extend(
            order::Entity::find()
                .filter(order::Column::ShopId.eq(shop_id))
                .filter(
                    order::Column::CustomerRef.is_in(chunk.iter().map(|b| b.customer_ref.clone())),
                )
                .order_by_asc(order::Column::PlacedAt)
                .all(db)
                .await?,
        );
    }
    Ok(out)
}

#[tonic::async_trait]
impl CustomerData for CustomerDataStore {
    fn service(&self) -> &'static str {
        crate::SERVICE
    }

    async fn export(&self, shop_id: &str, subject: &Subject) -> Result<Export, ApiError> {
        let db = &self.db;
        let buyers = buyers_of(db, shop_id, subject).await?;
        let orders = orders_of(db, shop_id, &buyers).await?;
        let (mut items, mut payments, mut shipments) = (Vec::new(), Vec::new(), Vec::new());
        for chunk in orders.chunks(CHUNK) {
            let ids = || chunk.iter().map(|o| o.order_id.clone());
            items.extend(
                line_item::Entity::find()
                    .filter(line_item::Column::ShopId.eq(shop_id))
                    .filter(line_item::Column::OrderId.is_in(ids()))
                    .all(db)
                    .await?,
            );
            payments.extend(
                payment::Entity::find()
                    .filter(payment::Column::ShopId.eq(shop_id))
                    .filter(payment::Column::OrderId.is_in(ids()))
                    .all(db)
                    .await?,
            );
            shipments.extend(
                shipment::Entity::find()
                    .filter(shipment::Column::ShopId.eq(shop_id))
                    .filter(shipment::Column::OrderId.is_in(ids()))
                    .all(db)
                    .await?,
            );
        }
        let mut e = Export::default();
        e.table(
            "commerce_customers",
            buyers
                .iter()
                .map(|r| {
                    json_row!(r; customer_ref, name, phone_sha256, email_sha256, identity,
                        updated_at)
                })
                .collect(),
        )
        .table(
            "commerce_orders",
            orders
                .iter()
                .map(|r| {
                    json_row!(r; order_id, customer_ref, buyer_name, status, total_minor,
                        currency, placed_at, updated_at, source, source_ref)
                })
                .collect(),
        )
        .table(
            "order_line_items",
            items
                .iter()
                .map(|r| json_row!(r; order_id, line_no, sku, title, quantity, price_minor))
                .collect(),
        )
        .table(
            "order_payments",
            payments
                .iter()
                .map(|r| json_row!(r; order_id, payment_id, method, status, amount_minor, at))
                .collect(),
        )
        .table(
            "shipments",
            shipments
                .iter()
                .map(|r| {
                    json_row!(r; tracking_number, order_id, carrier, estimated_delivery,
                        updated_at)
                })
                .collect(),
        );
        Ok(e)
    }

    async fn erase(&self, shop_id: &str, subject: &Subject) -> Result<Erased, ApiError> {
        let txn = kefu_runtime::db::begin_write(&self.db).await?;
        let buyers = buyers_of(&txn, shop_id, subject).await?;
        let orders = orders_of(&txn, shop_id, &buyers).await?;
        let mut erased = Erased::default();
        erased.add("commerce_orders", 0);
        for o in orders {
            let redacted = order::ActiveModel {
                shop_id: Set(o.shop_id),
                order_id: Set(o.order_id.clone()),
                customer_ref: Set(format!("order:{}", o.order_id)),
                buyer_name: Set(String::new()),
                // The content hash covered the buyer: the next version from the source is
                // stored again (and its buyer with it: erase at the source too).
                content_sha256: Set(String::new()),
                ..Default::default()
            };
            order::Entity::update(redacted).exec(&txn).await?;
            erased.add("commerce_orders", 1);
        }
        let mut n = 0;
        for chunk in buyers.chunks(CHUNK) {
            n += customer::Entity::delete_many()
                .filter(customer::Column::ShopId.eq(shop_id))
                .filter(
                    customer::Column::CustomerRef
                        .is_in(chunk.iter().map(|b| b.customer_ref.clone())),
                )
                .exec(&txn)
                .await?
                .rows_affected;
        }
        erased.add("commerce_customers", n);
        txn.commit().await?;
        Ok(erased)
    }
}
