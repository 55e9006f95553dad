//! order-sync's store against real databases (SQLite file and PostgreSQL): idempotent upserts,
//! newer-wins, carrier scans, customer-key scoping and the outbox.
use chrono::{Duration, Utc};
use kefu_order_sync::{
    entity::{commerce_event, migration::Migrator},
    model::{Buyer, CustomerKeys, Doc, OrderDoc, TrackingDoc},
    store::{self, Keys, Outcome},
};
use kefu_runtime::db;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};

/// The deployment's customer-key secret in these tests.
fn keys() -> CustomerKeys {
    CustomerKeys::new(b"order-sync store test secret, 32+ bytes").unwrap()
}

async fn sqlite() -> DatabaseConnection {
    let dir = std::env::temp_dir().join(format!("kefu-orders-{}", uuid::Uuid::new_v4().simple()));
    db::connect_and_migrate::<Migrator>(&format!("sqlite://{}/orders.db", dir.display()))
        .await
        .expect("sqlite")
}

async fn postgres() -> DatabaseConnection {
    let url = db::fresh_test_postgres("orders_store")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (make test starts it)");
    db::connect_and_migrate::<Migrator>(&url).await.expect("pg");
    // A restart re-runs migrations: nothing to do.
    db::connect_and_migrate::<Migrator>(&url)
        .await
        .expect("re-migrate")
}

fn doc(status: &str, updated: chrono::DateTime<Utc>) -> OrderDoc {
    let Doc::Order(d) = Doc::from_json(serde_json::json!({
        "format": "kefu.order.v1", "order_id": "20261124001", "status": status,
        "currency": "CNY", "total_minor": 1000, "placed_at": (updated - Duration::days(1)).to_rfc3339(),
        "updated_at": updated.to_rfc3339(),
        "items": [{"sku": "A", "title": "Tea", "quantity": 1, "price_minor": 1000}],
        "shipments": [{"carrier": "SF", "tracking_number": "SF1", "events": []}]
    }))
    .expect("doc") else {
        panic!("order")
    };
    let mut d = *d;
    d.buyer = Buyer {
        phone: "+86 139-0000-1111".into(),
        channel: "taobao".into(),
        channel_user_id: "tb_x".into(),
        ..Buyer::default()
    };
    d
}

async fn unpublished(db: &DatabaseConnection) -> u64 {
    commerce_event::Entity::find()
        .filter(commerce_event::Column::Published.eq(false))
        .count(db)
        .await
        .expect("count")
}

async fn scenario(db: &DatabaseConnection) {
    let t0 = Utc::now() - Duration::hours(5);
    let paid = doc("paid", t0);
    assert_eq!(
        store::upsert_order(db, &keys(), "s1", &paid, "test")
            .await
            .unwrap(),
        Outcome::Changed
    );
    assert_eq!(unpublished(db).await, 1, "one order event queued");
    // A replay, and an older version with other content, change nothing.
    assert_eq!(
        store::upsert_order(db, &keys(), "s1", &paid, "test")
            .await
            .unwrap(),
        Outcome::Unchanged
    );
    let stale = doc("cancelled", t0 - Duration::hours(1));
    assert_eq!(
        store::upsert_order(db, &keys(), "s1", &stale, "test")
            .await
            .unwrap(),
        Outcome::Unchanged
    );
    assert_eq!(unpublished(db).await, 1);

    // Scoping: the buyer's identity or phone hash finds the order; anything else does not.
    let by_identity = Keys {
        identities: vec!["taobao:tb_x".into()],
        ..Keys::default()
    };
    let by_phone = Keys {
        phones: vec![keys().hash("8613900001111")],
        ..Keys::default()
    };
    let stranger = Keys {
        identities: vec!["taobao:someone".into()],
        phones: vec![keys().hash("13900001111")],
        ..Keys::default()
    };
    assert!(
        store::belongs_to(db, "s1", "20261124001", &by_identity)
            .await
            .unwrap()
    );
    assert!(
        store::belongs_to(db, "s1", "20261124001", &by_phone)
            .await
            .unwrap()
    );
    assert!(
        !store::belongs_to(db, "s1", "20261124001", &stranger)
            .await
            .unwrap()
    );
    assert!(
        !store::belongs_to(db, "s2", "20261124001", &by_identity)
            .await
            .unwrap(),
        "other shop"
    );
    assert_eq!(
        store::customer_orders(db, "s1", &by_phone, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store::customer_orders(db, "s1", &stranger, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // A carrier scan: stored once, and it moves the paid order to shipped.
    let scan = TrackingDoc {
        format: "kefu.tracking.v1".into(),
        carrier: "SF".into(),
        tracking_number: "SF1".into(),
        order_id: String::new(),
        status: "in_transit".into(),
        location: "上海".into(),
        description: String::new(),
        at: Some(Utc::now() - Duration::hours(1)),
    };
    assert_eq!(
        store::add_tracking(db, "s1", &scan).await.unwrap(),
        Outcome::Changed
    );
    assert_eq!(
        store::add_tracking(db, "s1", &scan).await.unwrap(),
        Outcome::Unchanged
    );
    let o = store::load_order(db, "s1", "20261124001")
        .await
        .unwrap()
        .expect("order");
    assert_eq!(o.status, "shipped");
    assert_eq!(o.shipments[0].events[0].location, "上海");
    assert_eq!(o.items[0].title, "Tea");
    assert_eq!(unpublished(db).await, 3, "order, shipment, order again");

    // A newer version from the source wins.
    let delivered = doc("delivered", Utc::now());
    assert_eq!(
        store::upsert_order(db, &keys(), "s1", &delivered, "test")
            .await
            .unwrap(),
        Outcome::Changed
    );
    let o = store::load_order(db, "s1", "20261124001")
        .await
        .unwrap()
        .expect("order");
    assert_eq!(o.status, "delivered");
    assert_eq!(
        o.shipments[0].events.len(),
        1,
        "scans are kept across versions"
    );
}

#[tokio::test]
async fn store_on_sqlite() {
    scenario(&sqlite().await).await;
}

#[tokio::test]
async fn store_on_postgres() {
    scenario(&postgres().await).await;
}
