//! Buyers' phone numbers and e-mail addresses as keyed hashes: the same person matches the
//! verified keys session-router stores, legacy SHA-256 rows are re-keyed when the order comes
//! again; and the customer-data export / erasure of order-sync (buyer rows deleted, orders
//! kept with the buyer redacted), on SQLite and PostgreSQL.
use chrono::{Duration, Utc};
use kefu_order_sync::{
    entity::{customer, migration::Migrator, order},
    model::{Buyer, CustomerKeys, Doc, OrderDoc},
    privacy::CustomerDataStore,
    store::{self, Keys, Outcome},
};
use kefu_proto::privacy::v1::{Subject, SubjectKey};
use kefu_runtime::{
    customer_key::{legacy_hash, normalize_email, normalize_phone},
    db,
    privacy::CustomerData,
};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr};

async fn sqlite() -> DatabaseConnection {
    db::test_sqlite::<Migrator>("orders_privacy")
        .await
        .expect("sqlite")
}

async fn postgres() -> DatabaseConnection {
    db::test_postgres::<Migrator>("orders_privacy")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (make test starts it)")
}

fn hashes() -> CustomerKeys {
    CustomerKeys::new(b"a deployment secret shared by both").unwrap()
}

fn doc(order_id: &str, buyer_id: &str, name: &str, phone: &str, email: &str) -> OrderDoc {
    let now = Utc::now();
    let Doc::Order(d) = Doc::from_json(serde_json::json!({
        "format": "kefu.order.v1", "order_id": order_id, "status": "paid",
        "currency": "CNY", "total_minor": 1000, "placed_at": (now - Duration::days(1)).to_rfc3339(),
        "updated_at": now.to_rfc3339(),
        "items": [{"sku": "A", "title": "Tea", "quantity": 1, "price_minor": 1000}]
    }))
    .expect("doc") else {
        panic!("order")
    };
    let mut d = *d;
    d.buyer = Buyer {
        buyer_id: buyer_id.into(),
        name: name.into(),
        phone: phone.into(),
        email: email.into(),
        ..Buyer::default()
    };
    d
}

async fn buyers(db: &DatabaseConnection, shop: &str) -> Vec<customer::Model> {
    customer::Entity::find()
        .filter(customer::Column::ShopId.eq(shop))
        .all(db)
        .await
        .unwrap()
}

async fn keyed_and_migrated(db: &DatabaseConnection) {
    let k = hashes();
    let d = doc("o1", "b1", "Bob", "+86 139-0000-1111", " Bob@Example.com");
    store::upsert_order(db, &k, "s1", &d, "test").await.unwrap();
    let b = &buyers(db, "s1").await[0];
    assert_ne!(
        b.phone_sha256,
        legacy_hash("8613900001111"),
        "not plain SHA-256"
    );
    assert_ne!(b.email_sha256, legacy_hash("bob@example.com"));
    // What session-router stores for the same verified phone, formatted otherwise, matches.
    let verified = k.hash(&normalize_phone("8613900001111"));
    let by_phone = Keys {
        phones: vec![verified.clone()],
        ..Keys::default()
    };
    assert!(store::belongs_to(db, "s1", "o1", &by_phone).await.unwrap());

    // A buyer row from before the keyed hash holds plain SHA-256: the session-router key does
    // not match it, until the order comes again (re-import, next webhook): then it is re-keyed.
    customer::Entity::update_many()
        .col_expr(
            customer::Column::PhoneSha256,
            Expr::value(legacy_hash("8613900001111")),
        )
        .col_expr(
            customer::Column::EmailSha256,
            Expr::value(legacy_hash("bob@example.com")),
        )
        .filter(customer::Column::ShopId.eq("s1"))
        .exec(db)
        .await
        .unwrap();
    assert!(!store::belongs_to(db, "s1", "o1", &by_phone).await.unwrap());
    assert_eq!(
        store::upsert_order(db, &k, "s1", &d, "test").await.unwrap(),
        Outcome::Changed,
        "an identical replay re-keys a legacy buyer"
    );
    assert!(store::belongs_to(db, "s1", "o1", &by_phone).await.unwrap());
    let b = &buyers(db, "s1").await[0];
    assert_eq!(b.email_sha256, k.hash(&normalize_email("bob@example.com")));
    assert_eq!(
        store::upsert_order(db, &k, "s1", &d, "test").await.unwrap(),
        Outcome::Unchanged,
        "and then it is a replay again"
    );

    // A buyer known only by phone was filed under `phone:<legacy SHA-256>`: re-keyed and
    // re-filed, the legacy row gone.
    let d2 = doc("o2", "", "Cat", "13900002222", "");
    store::upsert_order(db, &k, "s2", &d2, "test")
        .await
        .unwrap();
    let legacy_ref = format!("phone:{}", legacy_hash("13900002222"));
    for (table, col) in [
        ("commerce_customers", "customer_ref"),
        ("commerce_orders", "customer_ref"),
    ] {
        use sea_orm::ConnectionTrait;
        db.execute_raw(sea_orm::Statement::from_sql_and_values(
            db.get_database_backend(),
            format!("UPDATE {table} SET {col} = $1 WHERE shop_id = 's2'"),
            [legacy_ref.clone().into()],
        ))
        .await
        .unwrap();
    }
    customer::Entity::update_many()
        .col_expr(
            customer::Column::PhoneSha256,
            Expr::value(legacy_hash("13900002222")),
        )
        .filter(customer::Column::ShopId.eq("s2"))
        .exec(db)
        .await
        .unwrap();
    assert_eq!(
        store::upsert_order(db, &k, "s2", &d2, "test")
            .await
            .unwrap(),
        Outcome::Changed
    );
    let rows = buyers(db, "s2").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0].customer_ref,
        format!("phone:{}", k.hash("13900002222"))
    );
    assert_eq!(rows[0].phone_sha256, k.hash("13900002222"));
    let by_phone = Keys {
        phones: vec![k.hash("13900002222")],
        ..Keys::default()
    };
    assert!(store::belongs_to(db, "s2", "o2", &by_phone).await.unwrap());
}

async fn export_and_erase(db: &DatabaseConnection) {
    let k = hashes();
    let data = CustomerDataStore { db: db.clone() };
    store::upsert_order(
        db,
        &k,
        "a",
        &doc("o1", "", "Ann Buyer", "13900001111", ""),
        "test",
    )
    .await
    .unwrap();
    store::upsert_order(
        db,
        &k,
        "a",
        &doc("o2", "", "Other", "13900002222", ""),
        "test",
    )
    .await
    .unwrap();
    store::upsert_order(
        db,
        &k,
        "b",
        &doc("o1", "", "Ann in B", "13900001111", ""),
        "test",
    )
    .await
    .unwrap();
    let subject = Subject {
        customer_id: "cus_x".into(),
        keys: vec![SubjectKey {
            kind: "phone".into(),
            value: k.hash("13900001111"),
        }],
        ..Subject::default()
    };
    let e = data.export("a", &subject).await.unwrap();
    assert!(!e.is_empty());
    let erased = data.erase("a", &subject).await.unwrap();
    assert_eq!(
        erased.0,
        vec![
            ("commerce_orders".to_owned(), 1),
            ("commerce_customers".to_owned(), 1)
        ]
    );
    let o1 = order::Entity::find_by_id(("a".to_owned(), "o1".to_owned()))
        .one(db)
        .await
        .unwrap()
        .expect("the order is kept");
    assert_eq!((o1.buyer_name.as_str(), o1.total_minor), ("", 1000));
    assert_eq!(o1.customer_ref, "order:o1");
    assert!(
        buyers(db, "a")
            .await
            .iter()
            .all(|b| b.phone_sha256 != k.hash("13900001111") && b.name != "Ann Buyer")
    );
    assert!(data.export("a", &subject).await.unwrap().is_empty());
    let again = data.erase("a", &subject).await.unwrap();
    assert!(
        again.0.iter().all(|(_, n)| *n == 0),
        "idempotent: {again:?}"
    );
    // The other buyer of shop a, and the same person in shop b, are untouched.
    assert_eq!(buyers(db, "a").await.len(), 1);
    assert_eq!(buyers(db, "b").await[0].name, "Ann in B");
}

#[tokio::test]
async fn sqlite_keyed_and_migrated() {
    keyed_and_migrated(&sqlite().await).await;
}

#[tokio::test]
async fn postgres_keyed_and_migrated() {
    keyed_and_migrated(&postgres().await).await;
}

#[tokio::test]
async fn sqlite_export_and_erase() {
    export_and_erase(&sqlite().await).await;
}

#[tokio::test]
async fn postgres_export_and_erase() {
    export_and_erase(&postgres().await).await;
}
