//! session-router's retention rules against real databases (SQLite file and PostgreSQL): rows
//! aged past their rule are gone after one pass; young rows, unpublished messages, undelivered
//! webhook rows and the replies they still deliver are kept; the deletes and the hot queries
//! (due webhooks, unpublished messages) use the new indexes.
use chrono::{DateTime, Duration, Utc};
use kefu_runtime::{
    db,
    retention::{Retention, delete_plan, plan_problem, query_plan},
};
use kefu_session_router::{
    entity::{message, migration::Migrator, reply, webhook_delivery},
    retention::{self, MESSAGES_INDEX, REPLIES_INDEX, RetentionFlags, WEBHOOK_DELIVERIES_INDEX},
};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};

async fn sqlite() -> DatabaseConnection {
    db::test_sqlite::<Migrator>("retention_router")
        .await
        .expect("sqlite")
}

async fn postgres() -> DatabaseConnection {
    db::test_postgres::<Migrator>("retention_router")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (make test starts it)")
}

async fn add_message(db: &DatabaseConnection, id: &str, published: bool, at: DateTime<Utc>) {
    message::Entity::insert(message::ActiveModel {
        message_id: Set(id.into()),
        shop_id: Set("s1".into()),
        channel: Set("web".into()),
        channel_user_id: Set("u1".into()),
        channel_message_id: Set(id.into()),
        conversation_id: Set("conv".into()),
        customer_id: Set("cus".into()),
        text: Set("hi".into()),
        created_at: Set(at),
        published: Set(published),
        route: Set(String::new()),
        route_reason: Set(String::new()),
        intent: Set(String::new()),
        traceparent: Set(String::new()),
    })
    .exec_without_returning(db)
    .await
    .expect("message");
}

/// A reply; returns its cursor.
async fn add_reply(db: &DatabaseConnection, id: &str, at: DateTime<Utc>) -> i64 {
    reply::Entity::insert(reply::ActiveModel {
        cursor: NotSet,
        reply_id: Set(id.into()),
        shop_id: Set("s1".into()),
        message_id: Set(format!("m-{id}")),
        conversation_id: Set("conv".into()),
        customer_id: Set("cus".into()),
        channel: Set("web".into()),
        channel_user_id: Set("u1".into()),
        text: Set("hello".into()),
        language: Set("en".into()),
        source: Set("bot".into()),
        intent: Set(String::new()),
        ticket_id: Set(String::new()),
        created_at: Set(at),
    })
    .exec(db)
    .await
    .expect("reply")
    .last_insert_id
}

async fn add_delivery(db: &DatabaseConnection, cursor: i64, delivered: Option<DateTime<Utc>>) {
    webhook_delivery::Entity::insert(webhook_delivery::ActiveModel {
        id: NotSet,
        shop_id: Set("s1".into()),
        channel: Set("web".into()),
        reply_cursor: Set(cursor),
        attempts: Set(1),
        next_attempt_at: Set(Utc::now() - Duration::days(400)),
        delivered_at: Set(delivered),
        last_error: Set(String::new()),
    })
    .exec_without_returning(db)
    .await
    .expect("delivery");
}

async fn message_ids(db: &DatabaseConnection) -> Vec<String> {
    let mut ids: Vec<String> = message::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.message_id)
        .collect();
    ids.sort();
    ids
}

async fn plans_use_indexes(db: &DatabaseConnection) {
    let flags = RetentionFlags::default();
    let rules = retention::rules(&flags);
    for (rule, index) in rules
        .iter()
        .zip([WEBHOOK_DELIVERIES_INDEX, MESSAGES_INDEX, REPLIES_INDEX])
    {
        let plan = delete_plan(db, rule).await.expect("plan");
        if let Some(problem) = plan_problem(&plan, index) {
            panic!("retention delete of {}: {problem}", rule.table);
        }
    }
    let backend = db.get_database_backend();
    // The delivery loop's scan for due webhooks (webhook::deliver_loop).
    let due = webhook_delivery::Entity::find()
        .filter(webhook_delivery::Column::DeliveredAt.is_null())
        .filter(webhook_delivery::Column::NextAttemptAt.lte(Utc::now()))
        .order_by_asc(webhook_delivery::Column::NextAttemptAt)
        .limit(20)
        .build(backend);
    let plan = query_plan(db, due).await.expect("plan");
    if let Some(problem) = plan_problem(&plan, WEBHOOK_DELIVERIES_INDEX) {
        panic!("due webhooks: {problem}");
    }
    // The outbox relay's scan for unpublished messages (store::unpublished).
    let unpublished = message::Entity::find()
        .filter(message::Column::Published.eq(false))
        .filter(message::Column::CreatedAt.lt(Utc::now()))
        .order_by_asc(message::Column::CreatedAt)
        .limit(100)
        .build(backend);
    let plan = query_plan(db, unpublished).await.expect("plan");
    if let Some(problem) = plan_problem(&plan, MESSAGES_INDEX) {
        panic!("unpublished messages: {problem}");
    }
}

async fn scenario(db: DatabaseConnection) {
    plans_use_indexes(&db).await;
    let now = Utc::now();
    let old = now - Duration::days(181);
    let young = now - Duration::days(10);
    add_message(&db, "old-published", true, old).await;
    add_message(&db, "old-unpublished", false, old).await;
    add_message(&db, "young-published", true, young).await;

    let old_delivered = add_reply(&db, "old-delivered", old).await;
    add_delivery(&db, old_delivered, Some(old)).await;
    let old_pending = add_reply(&db, "old-pending", old).await;
    add_delivery(&db, old_pending, None).await;
    let old_plain = add_reply(&db, "old-plain", old).await;
    let young_reply = add_reply(&db, "young", young).await;
    // Delivered 8 days ago (past the 7 days), delivered yesterday (kept).
    add_delivery(&db, young_reply, Some(now - Duration::days(8))).await;
    let yesterday = add_reply(&db, "yesterday", now - Duration::days(1)).await;
    add_delivery(&db, yesterday, Some(now - Duration::days(1))).await;

    let flags = RetentionFlags::default();
    let retention = Retention::new(db.clone(), retention::rules(&flags), &flags.common);
    let done = retention.run_once_at(now).await.expect("pass");
    assert_eq!(
        done,
        vec![("webhook_deliveries", 2), ("messages", 1), ("replies", 2)],
        "old delivered rows; the old published message; old replies nobody still delivers"
    );

    assert_eq!(
        message_ids(&db).await,
        vec!["old-unpublished", "young-published"],
        "an unpublished message is kept whatever its age"
    );
    let mut replies: Vec<i64> = reply::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.cursor)
        .collect();
    replies.sort();
    assert_eq!(replies, vec![old_pending, young_reply, yesterday]);
    assert!(!replies.contains(&old_plain) && !replies.contains(&old_delivered));
    let deliveries: Vec<(i64, bool)> = webhook_delivery::Entity::find()
        .order_by_asc(webhook_delivery::Column::ReplyCursor)
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.reply_cursor, d.delivered_at.is_some()))
        .collect();
    assert_eq!(
        deliveries,
        vec![(old_pending, false), (yesterday, true)],
        "the undelivered row stays (with its reply), the recent delivered one too"
    );

    // Retention off (0 days) keeps everything however old.
    let off = RetentionFlags {
        retention_messages_days: 0,
        retention_webhook_deliveries_days: 0,
        ..RetentionFlags::default()
    };
    let none = Retention::new(db.clone(), retention::rules(&off), &off.common);
    assert!(
        none.run_once_at(now + Duration::days(3650))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(message_ids(&db).await.len(), 2);
}

#[tokio::test]
async fn retention_on_sqlite() {
    scenario(sqlite().await).await;
}

#[tokio::test]
async fn retention_on_postgres() {
    scenario(postgres().await).await;
}
