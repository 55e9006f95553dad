//! Customer-data export / erasure of ticket: the customer's tickets (by customer id or one of
//! their conversations), their threads and outbox events, on SQLite and PostgreSQL.
use chrono::Utc;
use kefu_proto::privacy::v1::Subject;
use kefu_runtime::{db, privacy::CustomerData};
use kefu_ticket::{
    entity::{migration::Migrator, ticket, ticket_event, ticket_message},
    privacy::CustomerDataStore,
};
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait, PaginatorTrait};

async fn open(db: &DatabaseConnection, shop: &str, id: &str, conv: &str, customer: &str) {
    let now = Utc::now();
    ticket::Entity::insert(ticket::ActiveModel {
        ticket_id: Set(id.into()),
        shop_id: Set(shop.into()),
        message_id: Set(format!("msg-{id}")),
        conversation_id: Set(conv.into()),
        customer_id: Set(customer.into()),
        status: Set("open".into()),
        reason: Set("asked".into()),
        intent: Set("human".into()),
        text: Set("a person please".into()),
        language: Set("en".into()),
        created_at: Set(now),
        sla_due_at: Set(now),
        assignee: Set(String::new()),
        first_response_at: Set(None),
        updated_at: Set(now),
        last_message_id: Set(format!("msg-{id}")),
        channel: Set("web".into()),
        channel_user_id: Set("u".into()),
        order_id: Set(String::new()),
    })
    .exec_without_returning(db)
    .await
    .unwrap();
    ticket_message::Entity::insert(ticket_message::ActiveModel {
        ticket_id: Set(id.into()),
        message_id: Set(format!("msg-{id}")),
        author: Set("customer".into()),
        agent_id: Set(String::new()),
        text: Set("a person please".into()),
        created_at: Set(now),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await
    .unwrap();
    ticket_event::Entity::insert(ticket_event::ActiveModel {
        ticket_id: Set(id.into()),
        shop_id: Set(shop.into()),
        conversation_id: Set(conv.into()),
        customer_id: Set(customer.into()),
        message_id: Set(format!("msg-{id}")),
        kind: Set("opened".into()),
        agent_id: Set(String::new()),
        reply_id: Set(String::new()),
        reply_text: Set(String::new()),
        language: Set("en".into()),
        channel: Set("web".into()),
        channel_user_id: Set("u".into()),
        published: Set(true),
        created_at: Set(now),
        ..Default::default()
    })
    .exec_without_returning(db)
    .await
    .unwrap();
}

async fn scenario(db: &DatabaseConnection) {
    open(db, "a", "t1", "conv-1", "cus_1").await;
    // Opened before the customer was linked: found by the conversation.
    open(db, "a", "t2", "conv-2", "cus_old").await;
    open(db, "b", "t3", "conv-3", "cus_1").await;
    let data = CustomerDataStore { db: db.clone() };
    let subject = Subject {
        customer_id: "cus_1".into(),
        conversation_ids: vec!["conv-1".into(), "conv-2".into()],
        ..Subject::default()
    };
    let e = data.export("a", &subject).await.unwrap();
    assert!(!e.is_empty());
    let erased = data.erase("a", &subject).await.unwrap();
    let n = |t: &str| erased.0.iter().find(|(x, _)| x == t).map(|(_, n)| *n);
    assert_eq!(n("tickets"), Some(2));
    assert_eq!(n("ticket_messages"), Some(2));
    assert_eq!(n("ticket_events"), Some(2));
    assert!(data.export("a", &subject).await.unwrap().is_empty());
    let again = data.erase("a", &subject).await.unwrap();
    assert!(
        again.0.iter().all(|(_, n)| *n == 0),
        "idempotent: {again:?}"
    );
    // Shop b's ticket of a customer with the same id is untouched.
    assert_eq!(ticket::Entity::find().count(db).await.unwrap(), 1);
    assert_eq!(ticket_message::Entity::find().count(db).await.unwrap(), 1);
    assert_eq!(ticket_event::Entity::find().count(db).await.unwrap(), 1);
}

#[tokio::test]
async fn sqlite_export_and_erase() {
    let db = db::test_sqlite::<Migrator>("ticket_privacy")
        .await
        .expect("sqlite");
    scenario(&db).await;
}

#[tokio::test]
async fn postgres_export_and_erase() {
    let db = db::test_postgres::<Migrator>("ticket_privacy")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (make test starts it)");
    scenario(&db).await;
}
