//! Customer keys as keyed hashes (with the lazy migration of legacy SHA-256 rows) and the
//! customer-data export / erasure of session-router, on SQLite and PostgreSQL.
use chrono::Utc;
use kefu_proto::privacy::v1::Subject;
use kefu_runtime::{
    customer_key::{CustomerKeys, legacy_hash, normalize_phone},
    db,
    privacy::CustomerData,
};
use kefu_session_router::{
    entity::{customer_key, migration::Migrator, reply},
    privacy::CustomerDataStore,
    store,
};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
};

async fn sqlite() -> DatabaseConnection {
    db::test_sqlite::<Migrator>("router_privacy")
        .await
        .expect("sqlite")
}

async fn postgres() -> DatabaseConnection {
    db::test_postgres::<Migrator>("router_privacy")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (make test starts it)")
}

fn hashes() -> CustomerKeys {
    CustomerKeys::new(b"session-router test secret: 32 bytes+").unwrap()
}

async fn keys_of(db: &DatabaseConnection, shop: &str) -> Vec<customer_key::Model> {
    customer_key::Entity::find()
        .filter(customer_key::Column::ShopId.eq(shop))
        .all(db)
        .await
        .unwrap()
}

async fn keyed_hashes_and_legacy_migration(db: &DatabaseConnection) {
    let phone = normalize_phone("+86 139-0000-1111");
    let k = hashes();
    let c1 = store::link_verified(db, &k, "s1", "web", "u1", &[("phone", phone.clone())])
        .await
        .unwrap();
    let stored = keys_of(db, "s1").await;
    assert_eq!(stored.len(), 1);
    assert_ne!(
        stored[0].value_sha256,
        legacy_hash(&phone),
        "plain SHA-256 is reversible by enumerating phone numbers"
    );
    assert_eq!(stored[0].value_sha256, k.hash(&phone));
    // The same verified phone from another channel finds the same customer.
    let c2 = store::link_verified(db, &k, "s1", "app", "u2", &[("phone", phone.clone())])
        .await
        .unwrap();
    assert_eq!(c1, c2);

    // A row from before the keyed hash: found by the plain SHA-256, then rewritten.
    let legacy_customer = store::accept(db, "s2", "web", "old", "m1", "hi")
        .await
        .unwrap()
        .message
        .customer_id;
    customer_key::Entity::insert(customer_key::ActiveModel {
        shop_id: Set("s2".into()),
        kind: Set("phone".into()),
        value_sha256: Set(legacy_hash(&phone)),
        customer_id: Set(legacy_customer.clone()),
        created_at: Set(Utc::now()),
    })
    .exec_without_returning(db)
    .await
    .unwrap();
    let linked = store::link_verified(db, &k, "s2", "app", "new", &[("phone", phone.clone())])
        .await
        .unwrap();
    assert_eq!(linked, legacy_customer, "the legacy row still matches");
    let rows = keys_of(db, "s2").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].value_sha256, k.hash(&phone), "migrated to the HMAC");
    assert_eq!(rows[0].customer_id, legacy_customer);
}

fn reply_row(shop: &str, message_id: &str, customer: &str, text: &str) -> reply::ActiveModel {
    reply::ActiveModel {
        cursor: NotSet,
        reply_id: Set(format!("r-{message_id}")),
        shop_id: Set(shop.into()),
        message_id: Set(message_id.into()),
        conversation_id: Set("conv".into()),
        customer_id: Set(customer.into()),
        channel: Set("web".into()),
        channel_user_id: Set("u".into()),
        text: Set(text.into()),
        language: Set("en".into()),
        source: Set("bot".into()),
        intent: Set("greeting".into()),
        ticket_id: Set(String::new()),
        created_at: Set(Utc::now()),
    }
}

async fn export_and_erase(db: &DatabaseConnection) {
    let k = hashes();
    let data = CustomerDataStore { db: db.clone() };
    let a = store::accept(db, "shop-a", "web", "alice", "m1", "where is my tea")
        .await
        .unwrap()
        .message;
    store::link_verified(
        db,
        &k,
        "shop-a",
        "web",
        "alice",
        &[("email", "a@x.cn".into())],
    )
    .await
    .unwrap();
    store::store_reply(
        db,
        reply_row("shop-a", &a.message_id, &a.customer_id, "on its way"),
    )
    .await
    .unwrap();
    // Shop B: a customer with the same channel user id.
    let b = store::accept(db, "shop-b", "web", "alice", "m1", "hello b")
        .await
        .unwrap()
        .message;
    let subject = |c: &str| Subject {
        customer_id: c.to_owned(),
        ..Subject::default()
    };

    let e = data
        .export("shop-a", &subject(&a.customer_id))
        .await
        .unwrap();
    let s = e.subject.clone().expect("completed subject");
    assert_eq!(s.texts, vec!["where is my tea".to_owned()]);
    assert_eq!(s.message_ids, vec![a.message_id.clone()]);
    assert!(
        s.keys
            .iter()
            .any(|k| k.kind == "identity" && k.value == "web:alice")
    );
    assert!(
        s.keys
            .iter()
            .any(|k| k.kind == "email" && k.value == hashes().hash("a@x.cn"))
    );

    // Another shop does not see the customer, and erases nothing of it.
    assert!(
        data.export("shop-b", &subject(&a.customer_id))
            .await
            .is_err()
    );
    let none = data
        .erase("shop-b", &subject(&a.customer_id))
        .await
        .unwrap();
    assert!(none.0.iter().all(|(_, n)| *n == 0), "{none:?}");

    let erased = data
        .erase("shop-a", &subject(&a.customer_id))
        .await
        .unwrap();
    let count = |t: &str| erased.0.iter().find(|(n, _)| n == t).map(|(_, n)| *n);
    assert_eq!(count("messages"), Some(1));
    assert_eq!(count("replies"), Some(1));
    assert_eq!(count("identities"), Some(1));
    assert_eq!(count("customer_keys"), Some(1));
    assert_eq!(count("conversations"), Some(1));
    assert!(
        data.export("shop-a", &subject(&a.customer_id))
            .await
            .is_err()
    );
    let again = data
        .erase("shop-a", &subject(&a.customer_id))
        .await
        .unwrap();
    assert!(
        again.0.iter().all(|(_, n)| *n == 0),
        "idempotent: {again:?}"
    );
    assert_eq!(keys_of(db, "shop-a").await.len(), 0);

    // B's customer is untouched.
    let kept = data
        .export("shop-b", &subject(&b.customer_id))
        .await
        .unwrap();
    assert_eq!(kept.subject.unwrap().texts, vec!["hello b".to_owned()]);
    assert_eq!(
        kefu_session_router::entity::message::Entity::find()
            .count(db)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn sqlite_keyed_hashes_and_legacy_migration() {
    keyed_hashes_and_legacy_migration(&sqlite().await).await;
}

#[tokio::test]
async fn postgres_keyed_hashes_and_legacy_migration() {
    keyed_hashes_and_legacy_migration(&postgres().await).await;
}

#[tokio::test]
async fn sqlite_export_and_erase() {
    export_and_erase(&sqlite().await).await;
}

#[tokio::test]
async fn postgres_export_and_erase() {
    export_and_erase(&postgres().await).await;
}

/// A visitor writes anonymously (a customer of its own), then their web identity is linked to
/// their WeChat customer: linking moves the identity, not its history. The person's export
/// holds the anonymous message, and erasing the person leaves none of it behind.
async fn history_from_before_a_link(db: &DatabaseConnection) {
    use kefu_session_router::entity::{conversation, message};
    let data = CustomerDataStore { db: db.clone() };
    let before = store::accept(db, "s1", "web", "visitor-7", "w1", "is the tent waterproof")
        .await
        .unwrap()
        .message;
    let person = store::accept(db, "s1", "wechat", "wx-7", "x1", "hello again")
        .await
        .unwrap()
        .message;
    assert_ne!(before.customer_id, person.customer_id);
    store::link(
        db,
        "s1",
        &person.customer_id,
        &[("web".to_owned(), "visitor-7".to_owned())],
        "logged in",
    )
    .await
    .unwrap();
    let subject = Subject {
        customer_id: person.customer_id.clone(),
        ..Subject::default()
    };
    let e = data.export("s1", &subject).await.unwrap();
    let s = e.subject.expect("subject");
    assert!(
        s.texts.contains(&"is the tent waterproof".to_owned()),
        "{s:?}"
    );
    assert!(s.conversation_ids.contains(&before.conversation_id));
    data.erase("s1", &subject).await.unwrap();
    assert_eq!(message::Entity::find().count(db).await.unwrap(), 0);
    assert_eq!(
        conversation::Entity::find()
            .filter(conversation::Column::ConversationId.eq(&before.conversation_id))
            .count(db)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn sqlite_history_from_before_a_link() {
    history_from_before_a_link(&sqlite().await).await;
}

#[tokio::test]
async fn postgres_history_from_before_a_link() {
    history_from_before_a_link(&postgres().await).await;
}
