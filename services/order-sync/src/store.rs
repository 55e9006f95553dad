//! Storing canonical documents idempotently, reading orders back for customers, and the
//! `commerce_events` outbox.
use chrono::Utc;
use kefu_proto::{
    events::v1::{EventMeta, OrderChanged, ShipmentChanged},
    order::v1 as pb,
};
use kefu_runtime::{
    event,
    kafka::{KafkaConfig, Producer, topics},
};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, OnConflict},
};

use crate::{
    entity::{
        commerce_event, customer, line_item, order, order_return, payment, rejection, shipment,
        shop, tracking_event,
    },
    model::{CustomerKeys, OrderDoc, Scan, TrackingDoc},
};

/// What storing a document did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Something changed; events were queued.
    Changed,
    /// Identical to, or older than, what is stored: nothing changed.
    Unchanged,
}

async fn ensure_shop<C: ConnectionTrait>(db: &C, shop_id: &str) -> Result<(), DbErr> {
    shop::Entity::insert(shop::ActiveModel {
        shop_id: Set(shop_id.to_owned()),
        created_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(shop::Column::ShopId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

async fn queue<C: ConnectionTrait>(
    db: &C,
    kind: &str,
    shop_id: &str,
    key: &str,
) -> Result<(), DbErr> {
    commerce_event::Entity::insert(commerce_event::ActiveModel {
        seq: NotSet,
        kind: Set(kind.into()),
        shop_id: Set(shop_id.into()),
        key: Set(key.into()),
        published: Set(false),
        created_at: Set(Utc::now()),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Adds scans to a parcel (creating it if needed). Returns how many scans were new.
async fn add_scans<C: ConnectionTrait>(
    db: &C,
    shop_id: &str,
    order_id: &str,
    carrier: &str,
    tracking_number: &str,
    estimated_delivery: Option<chrono::DateTime<Utc>>,
    scans: &[Scan],
) -> Result<u64, DbErr> {
    let existing = shipment::Entity::find_by_id((shop_id.to_owned(), tracking_number.to_owned()))
        .one(db)
        .await?;
    let now = Utc::now();
    match existing {
        None => {
            shipment::Entity::insert(shipment::ActiveModel {
                shop_id: Set(shop_id.into()),
                tracking_number: Set(tracking_number.into()),
                order_id: Set(order_id.into()),
                carrier: Set(carrier.into()),
                estimated_delivery: Set(estimated_delivery),
                updated_at: Set(now),
            })
            .exec_without_returning(db)
            .await?;
        }
        Some(s) => {
            let mut a: shipment::ActiveModel = s.clone().into();
            if !order_id.is_empty() {
                a.order_id = Set(order_id.into());
            }
            if !carrier.is_empty() {
                a.carrier = Set(carrier.into());
            }
            if estimated_delivery.is_some() {
                a.estimated_delivery = Set(estimated_delivery);
            }
            a.updated_at = Set(now);
            shipment::Entity::update(a).exec(db).await?;
        }
    }
    let mut added = 0;
    for e in scans {
        let Some(at) = e.at else { continue };
        added += tracking_event::Entity::insert(tracking_event::ActiveModel {
            shop_id: Set(shop_id.into()),
            tracking_number: Set(tracking_number.into()),
            at: Set(at),
            status: Set(e.status.clone()),
            location: Set(e.location.clone()),
            description: Set(e.description.clone()),
        })
        .on_conflict(
            OnConflict::columns([
                tracking_event::Column::ShopId,
                tracking_event::Column::TrackingNumber,
                tracking_event::Column::At,
                tracking_event::Column::Status,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    }
    Ok(added)
}

/// Stores an order document (already validated). Identical content or an older `updated_at`
/// than the stored version changes nothing.
///
/// The buyer's phone and e-mail are stored as `hashes`' keyed hash. An identical replay of an
/// order whose buyer row still holds legacy SHA-256 keys (written before the keyed hash) is
/// written again, re-keying the buyer: re-importing orders migrates them (docs/security.md).
pub async fn upsert_order(
    db: &DatabaseConnection,
    hashes: &CustomerKeys,
    shop_id: &str,
    doc: &OrderDoc,
    source: &str,
) -> Result<Outcome, DbErr> {
    let hash = doc.content_hash();
    let updated_at = doc.updated_at.unwrap_or_else(Utc::now);
    let customer_ref = doc.customer_ref(hashes);
    let (identity, phone, email) = doc.buyer_keys(hashes);
    let txn = kefu_runtime::db::begin_write(db).await?;
    let stored = order::Entity::find_by_id((shop_id.to_owned(), doc.order_id.clone()))
        .one(&txn)
        .await?;
    if let Some(s) = &stored
        && (s.updated_at > updated_at
            || (s.content_sha256 == hash
                && !keyed_by_legacy(&txn, shop_id, s, doc, &customer_ref).await?))
    {
        return Ok(Outcome::Unchanged);
    }
    ensure_shop(&txn, shop_id).await?;
    let now = Utc::now();
    customer::Entity::insert(customer::ActiveModel {
        shop_id: Set(shop_id.into()),
        customer_ref: Set(customer_ref.clone()),
        name: Set(doc.buyer.name.clone()),
        phone_sha256: Set(phone),
        email_sha256: Set(email),
        identity: Set(identity),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([customer::Column::ShopId, customer::Column::CustomerRef])
            .update_columns([
                customer::Column::Name,
                customer::Column::PhoneSha256,
                customer::Column::EmailSha256,
                customer::Column::Identity,
                customer::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    let row = order::ActiveModel {
        shop_id: Set(shop_id.into()),
        order_id: Set(doc.order_id.clone()),
        customer_ref: Set(customer_ref.clone()),
        status: Set(doc.status.clone()),
        total_minor: Set(doc.total_minor),
        currency: Set(doc.currency.clone()),
        placed_at: Set(doc.placed_at.unwrap_or(updated_at)),
        updated_at: Set(updated_at),
        source: Set(source.into()),
        source_ref: Set(doc.source_ref.clone()),
        buyer_name: Set(doc.buyer.name.clone()),
        content_sha256: Set(hash),
        stored_at: Set(now),
    };
    if let Some(s) = &stored {
        order::Entity::update(row).exec(&txn).await?;
        if s.customer_ref != customer_ref {
            forget_unused_customer(&txn, shop_id, &s.customer_ref).await?;
        }
    } else {
        order::Entity::insert(row)
            .exec_without_returning(&txn)
            .await?;
    }
    line_item::Entity::delete_many()
        .filter(line_item::Column::ShopId.eq(shop_id))
        .filter(line_item::Column::OrderId.eq(doc.order_id.clone()))
        .exec(&txn)
        .await?;
    for (i, it) in doc.items.iter().enumerate() {
        line_item::Entity::insert(line_item::ActiveModel {
            shop_id: Set(shop_id.into()),
            order_id: Set(doc.order_id.clone()),
            line_no: Set(i as i32 + 1),
            sku: Set(it.sku.clone()),
            title: Set(it.title.clone()),
            quantity: Set(it.quantity),
            price_minor: Set(it.price_minor),
        })
        .exec_without_returning(&txn)
        .await?;
    }
    payment::Entity::delete_many()
        .filter(payment::Column::ShopId.eq(shop_id))
        .filter(payment::Column::OrderId.eq(doc.order_id.clone()))
        .exec(&txn)
        .await?;
    for p in &doc.payments {
        payment::Entity::insert(payment::ActiveModel {
            shop_id: Set(shop_id.into()),
            order_id: Set(doc.order_id.clone()),
            payment_id: Set(p.payment_id.clone()),
            method: Set(p.method.clone()),
            status: Set(p.status.clone()),
            amount_minor: Set(p.amount_minor),
            at: Set(p.at),
        })
        .on_conflict(
            OnConflict::columns([
                payment::Column::ShopId,
                payment::Column::OrderId,
                payment::Column::PaymentId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    }
    order_return::Entity::delete_many()
        .filter(order_return::Column::ShopId.eq(shop_id))
        .filter(order_return::Column::OrderId.eq(doc.order_id.clone()))
        .exec(&txn)
        .await?;
    for r in &doc.returns {
        order_return::Entity::insert(order_return::ActiveModel {
            shop_id: Set(shop_id.into()),
            order_id: Set(doc.order_id.clone()),
            return_id: Set(r.return_id.clone()),
            status: Set(r.status.clone()),
            reason: Set(r.reason.clone()),
            refund_minor: Set(r.refund_minor),
            updated_at: Set(r.updated_at),
        })
        .on_conflict(
            OnConflict::columns([
                order_return::Column::ShopId,
                order_return::Column::OrderId,
                order_return::Column::ReturnId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    }
    for s in &doc.shipments {
        let added = add_scans(
            &txn,
            shop_id,
            &doc.order_id,
            &s.carrier,
            &s.tracking_number,
            s.estimated_delivery,
            &s.events,
        )
        .await?;
        if added > 0 {
            queue(&txn, "shipment", shop_id, &s.tracking_number).await?;
        }
    }
    queue(&txn, "order", shop_id, &doc.order_id).await?;
    txn.commit().await?;
    Ok(Outcome::Changed)
}

/// Stores one carrier scan (already validated). A scan seen before changes nothing.
pub async fn add_tracking(
    db: &DatabaseConnection,
    shop_id: &str,
    doc: &TrackingDoc,
) -> Result<Outcome, DbErr> {
    let txn = kefu_runtime::db::begin_write(db).await?;
    ensure_shop(&txn, shop_id).await?;
    let scan = Scan {
        status: doc.status.clone(),
        location: doc.location.clone(),
        description: doc.description.clone(),
        at: doc.at,
    };
    let added = add_scans(
        &txn,
        shop_id,
        &doc.order_id,
        &doc.carrier,
        &doc.tracking_number,
        None,
        &[scan],
    )
    .await?;
    if added == 0 {
        return Ok(Outcome::Unchanged);
    }
    queue(&txn, "shipment", shop_id, &doc.tracking_number).await?;
    // The carrier is the authority on movement: a scan moves the order along (never back).
    let order_id = shipment::Entity::find_by_id((shop_id.to_owned(), doc.tracking_number.clone()))
        .one(&txn)
        .await?
        .map(|s| s.order_id)
        .unwrap_or_default();
    if let Some(next) = status_after_scan(&doc.status)
        && !order_id.is_empty()
    {
        let from: &[&str] = if next == "delivered" {
            &["pending_payment", "paid", "shipped"]
        } else {
            &["pending_payment", "paid"]
        };
        let moved = order::Entity::update_many()
            .col_expr(order::Column::Status, Expr::value(next))
            .filter(order::Column::ShopId.eq(shop_id))
            .filter(order::Column::OrderId.eq(order_id.clone()))
            .filter(order::Column::Status.is_in(from.iter().copied()))
            .exec(&txn)
            .await?;
        if moved.rows_affected > 0 {
            queue(&txn, "order", shop_id, &order_id).await?;
        }
    }
    txn.commit().await?;
    Ok(Outcome::Changed)
}

/// The order status a carrier scan implies, if any.
fn status_after_scan(scan: &str) -> Option<&'static str> {
    match scan {
        "picked_up" | "in_transit" | "out_for_delivery" => Some("shipped"),
        "delivered" => Some("delivered"),
        _ => None,
    }
}

/// The order id a source knows by its own id (`shopify:450789469`).
pub async fn order_by_source_ref(
    db: &DatabaseConnection,
    shop_id: &str,
    source_ref: &str,
) -> Result<Option<String>, DbErr> {
    Ok(order::Entity::find()
        .filter(order::Column::ShopId.eq(shop_id))
        .filter(order::Column::SourceRef.eq(source_ref))
        .one(db)
        .await?
        .map(|o| o.order_id))
}

/// Records a refused connector request.
pub async fn record_rejection(
    db: &DatabaseConnection,
    shop_id: &str,
    connector: &str,
    topic: &str,
    reason: &str,
    body: &[u8],
) -> Result<(), DbErr> {
    rejection::Entity::insert(rejection::ActiveModel {
        id: NotSet,
        shop_id: Set(shop_id.chars().take(64).collect()),
        connector: Set(connector.into()),
        topic: Set(topic.chars().take(64).collect()),
        reason: Set(reason.chars().take(500).collect()),
        body_sha256: Set(kefu_runtime::customer_key::legacy_hash(
            &String::from_utf8_lossy(body),
        )),
        body_bytes: Set(body.len() as i64),
        received_at: Set(Utc::now()),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Refused connector requests of a shop, newest first.
pub async fn rejections(
    db: &DatabaseConnection,
    shop_id: &str,
) -> Result<Vec<rejection::Model>, DbErr> {
    rejection::Entity::find()
        .filter(rejection::Column::ShopId.eq(shop_id))
        .order_by_desc(rejection::Column::Id)
        .limit(100)
        .all(db)
        .await
}

fn ts(t: chrono::DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(event::timestamp(t))
}

async fn load_shipment<C: ConnectionTrait>(
    db: &C,
    s: shipment::Model,
) -> Result<pb::Shipment, DbErr> {
    let events = tracking_event::Entity::find()
        .filter(tracking_event::Column::ShopId.eq(s.shop_id.clone()))
        .filter(tracking_event::Column::TrackingNumber.eq(s.tracking_number.clone()))
        .order_by_desc(tracking_event::Column::At)
        .limit(200)
        .all(db)
        .await?;
    Ok(pb::Shipment {
        status: events
            .first()
            .map(|e| e.status.clone())
            .unwrap_or_else(|| "label_created".into()),
        events: events
            .into_iter()
            .map(|e| pb::TrackingEvent {
                status: e.status,
                location: e.location,
                description: e.description,
                at: ts(e.at),
            })
            .collect(),
        shop_id: s.shop_id,
        order_id: s.order_id,
        carrier: s.carrier,
        tracking_number: s.tracking_number,
        estimated_delivery: s.estimated_delivery.and_then(ts),
    })
}

/// An order with everything hanging off it.
pub async fn load_order<C: ConnectionTrait>(
    db: &C,
    shop_id: &str,
    order_id: &str,
) -> Result<Option<pb::Order>, DbErr> {
    let Some(o) = order::Entity::find_by_id((shop_id.to_owned(), order_id.to_owned()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let c = customer::Entity::find_by_id((shop_id.to_owned(), o.customer_ref.clone()))
        .one(db)
        .await?;
    let items = line_item::Entity::find()
        .filter(line_item::Column::ShopId.eq(shop_id))
        .filter(line_item::Column::OrderId.eq(order_id))
        .order_by_asc(line_item::Column::LineNo)
        .all(db)
        .await?;
    let payments = payment::Entity::find()
        .filter(payment::Column::ShopId.eq(shop_id))
        .filter(payment::Column::OrderId.eq(order_id))
        .all(db)
        .await?;
    let returns = order_return::Entity::find()
        .filter(order_return::Column::ShopId.eq(shop_id))
        .filter(order_return::Column::OrderId.eq(order_id))
        .all(db)
        .await?;
    let mut shipments = Vec::new();
    for s in shipment::Entity::find()
        .filter(shipment::Column::ShopId.eq(shop_id))
        .filter(shipment::Column::OrderId.eq(order_id))
        .order_by_asc(shipment::Column::TrackingNumber)
        .all(db)
        .await?
    {
        shipments.push(load_shipment(db, s).await?);
    }
    let (channel, channel_user_id) = c
        .as_ref()
        .and_then(|c| c.identity.split_once(':'))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .unwrap_or_default();
    Ok(Some(pb::Order {
        shop_id: o.shop_id,
        order_id: o.order_id,
        status: o.status,
        total_minor: o.total_minor,
        currency: o.currency,
        placed_at: ts(o.placed_at),
        updated_at: ts(o.updated_at),
        // Contact data is kept only as hashes; the reader gets the name and the identity.
        buyer: Some(pb::Buyer {
            buyer_id: o
                .customer_ref
                .strip_prefix("id:")
                .unwrap_or_default()
                .to_owned(),
            name: o.buyer_name,
            phone: String::new(),
            email: String::new(),
            channel,
            channel_user_id,
        }),
        items: items
            .into_iter()
            .map(|i| pb::LineItem {
                sku: i.sku,
                title: i.title,
                quantity: i.quantity,
                price_minor: i.price_minor,
            })
            .collect(),
        payments: payments
            .into_iter()
            .map(|p| pb::Payment {
                payment_id: p.payment_id,
                method: p.method,
                status: p.status,
                amount_minor: p.amount_minor,
                at: p.at.and_then(ts),
            })
            .collect(),
        shipments,
        returns: returns
            .into_iter()
            .map(|r| pb::Return {
                return_id: r.return_id,
                status: r.status,
                reason: r.reason,
                refund_minor: r.refund_minor,
                updated_at: r.updated_at.and_then(ts),
            })
            .collect(),
        source: o.source,
    }))
}

/// True when the stored order `s` of `doc` still refers to its buyer by the legacy plain
/// SHA-256 of the buyer's phone or e-mail (its `customer_ref`, or the buyer row's keys);
/// `customer_ref` is the keyed one.
async fn keyed_by_legacy<C: ConnectionTrait>(
    db: &C,
    shop_id: &str,
    s: &order::Model,
    doc: &OrderDoc,
    customer_ref: &str,
) -> Result<bool, DbErr> {
    use kefu_runtime::customer_key::legacy_hash;
    let (_, phone, email) = doc.buyer_keys_with(legacy_hash);
    if phone.is_empty() && email.is_empty() {
        return Ok(false);
    }
    let legacy_ref = doc.customer_ref_with(legacy_hash);
    if legacy_ref != customer_ref && s.customer_ref == legacy_ref {
        return Ok(true);
    }
    Ok(
        customer::Entity::find_by_id((shop_id.to_owned(), s.customer_ref.clone()))
            .one(db)
            .await?
            .is_some_and(|c| {
                (!phone.is_empty() && c.phone_sha256 == phone)
                    || (!email.is_empty() && c.email_sha256 == email)
            }),
    )
}

/// Deletes the buyer row `customer_ref` when no order of the shop refers to it any more.
async fn forget_unused_customer<C: sea_orm::ConnectionTrait>(
    db: &C,
    shop_id: &str,
    customer_ref: &str,
) -> Result<(), DbErr> {
    let used = order::Entity::find()
        .filter(order::Column::ShopId.eq(shop_id))
        .filter(order::Column::CustomerRef.eq(customer_ref))
        .count(db)
        .await?;
    if used == 0 {
        customer::Entity::delete_by_id((shop_id.to_owned(), customer_ref.to_owned()))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// A customer key as matched against stored buyers.
#[derive(Clone, Debug, Default)]
pub struct Keys {
    pub identities: Vec<String>,
    pub phones: Vec<String>,
    pub emails: Vec<String>,
}

impl Keys {
    pub fn from_proto(keys: &[pb::CustomerKey]) -> Keys {
        let mut k = Keys::default();
        for key in keys {
            match key.kind.as_str() {
                "identity" => k.identities.push(key.value.clone()),
                "phone" => k.phones.push(key.value.to_lowercase()),
                "email" => k.emails.push(key.value.to_lowercase()),
                _ => {}
            }
        }
        k
    }

    fn condition(&self) -> Option<Condition> {
        let mut any = Condition::any();
        let mut used = false;
        if !self.identities.is_empty() {
            any = any.add(customer::Column::Identity.is_in(self.identities.clone()));
            used = true;
        }
        if !self.phones.is_empty() {
            any = any.add(customer::Column::PhoneSha256.is_in(self.phones.clone()));
            used = true;
        }
        if !self.emails.is_empty() {
            any = any.add(customer::Column::EmailSha256.is_in(self.emails.clone()));
            used = true;
        }
        used.then_some(any)
    }
}

/// The customer records of a shop that match any of `keys`.
async fn matching_customers(
    db: &DatabaseConnection,
    shop_id: &str,
    keys: &Keys,
) -> Result<Vec<String>, DbErr> {
    let Some(cond) = keys.condition() else {
        return Ok(Vec::new());
    };
    Ok(customer::Entity::find()
        .filter(customer::Column::ShopId.eq(shop_id))
        .filter(cond)
        .limit(100)
        .all(db)
        .await?
        .into_iter()
        .map(|c| c.customer_ref)
        .collect())
}

/// True when the order's buyer matches one of `keys`.
pub async fn belongs_to(
    db: &DatabaseConnection,
    shop_id: &str,
    order_id: &str,
    keys: &Keys,
) -> Result<bool, DbErr> {
    let Some(o) = order::Entity::find_by_id((shop_id.to_owned(), order_id.to_owned()))
        .one(db)
        .await?
    else {
        return Ok(false);
    };
    Ok(matching_customers(db, shop_id, keys)
        .await?
        .contains(&o.customer_ref))
}

/// The orders of the customers matching `keys`, most recently placed first.
pub async fn customer_orders(
    db: &DatabaseConnection,
    shop_id: &str,
    keys: &Keys,
    limit: u64,
) -> Result<Vec<pb::Order>, DbErr> {
    let refs = matching_customers(db, shop_id, keys).await?;
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = order::Entity::find()
        .filter(order::Column::ShopId.eq(shop_id))
        .filter(order::Column::CustomerRef.is_in(refs))
        .order_by_desc(order::Column::PlacedAt)
        .order_by_asc(order::Column::OrderId)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|o| o.order_id)
        .collect();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(o) = load_order(db, shop_id, &id).await? {
            out.push(o);
        }
    }
    Ok(out)
}

/// A parcel by tracking number.
pub async fn get_shipment(
    db: &DatabaseConnection,
    shop_id: &str,
    tracking_number: &str,
) -> Result<Option<pb::Shipment>, DbErr> {
    match shipment::Entity::find_by_id((shop_id.to_owned(), tracking_number.to_owned()))
        .one(db)
        .await?
    {
        Some(s) => Ok(Some(load_shipment(db, s).await?)),
        None => Ok(None),
    }
}

/// Publishes unpublished outbox rows (the current state of each order / parcel) in order and
/// marks them published. Stops at the first failure; the relay retries.
pub async fn publish_pending(
    db: &DatabaseConnection,
    producer: &Producer,
    kafka: &KafkaConfig,
) -> anyhow::Result<usize> {
    let pending = commerce_event::Entity::find()
        .filter(commerce_event::Column::Published.eq(false))
        .order_by_asc(commerce_event::Column::Seq)
        .limit(200)
        .all(db)
        .await?;
    let mut n = 0;
    for e in pending {
        let meta = EventMeta {
            event_id: event::derive_id(&format!("commerce/{}", e.seq), &e.kind),
            shop_id: e.shop_id.clone(),
            occurred_at: ts(e.created_at),
            causation_id: String::new(),
            message_id: String::new(),
            conversation_id: String::new(),
        };
        if e.kind == "order" {
            if let Some(order) = load_order(db, &e.shop_id, &e.key).await? {
                let ev = OrderChanged {
                    meta: Some(meta),
                    order: Some(order),
                };
                producer
                    .send_event(&kafka.topic(topics::ORDERS), &e.key, &ev)
                    .await?;
            }
        } else if let Some(shipment) = get_shipment(db, &e.shop_id, &e.key).await? {
            let ev = ShipmentChanged {
                meta: Some(meta),
                shipment: Some(shipment),
            };
            producer
                .send_event(&kafka.topic(topics::SHIPMENTS), &e.key, &ev)
                .await?;
        }
        commerce_event::Entity::update_many()
            .col_expr(commerce_event::Column::Published, Expr::value(true))
            .filter(commerce_event::Column::Seq.eq(e.seq))
            .exec(db)
            .await?;
        n += 1;
    }
    Ok(n)
}
