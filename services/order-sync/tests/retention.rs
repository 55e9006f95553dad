//! order-sync's retention rules and refused connector requests against real databases (SQLite
//! file and PostgreSQL): aged published events and old rejections are gone after one pass,
//! unpublished events stay; the deletes and the hot queries use indexes; requests that fail
//! authentication are counted, and write no row each.
use chrono::{DateTime, Duration, Utc};
use kefu_order_sync::{
    entity::{commerce_event, migration::Migrator, rejection},
    http::{Connectors, Secrets, sign},
    rejections::{Refusals, RefusedLabels},
    retention::{
        self, COMMERCE_EVENTS_INDEX, REJECTIONS_INDEX, REJECTIONS_SHOP_INDEX, RetentionFlags,
    },
};
use kefu_runtime::{
    db,
    retention::{Retention, delete_plan, plan_problem, query_plan},
};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait,
};

async fn sqlite() -> DatabaseConnection {
    db::test_sqlite::<Migrator>("retention_orders")
        .await
        .expect("sqlite")
}

async fn postgres() -> DatabaseConnection {
    db::test_postgres::<Migrator>("retention_orders")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (make test starts it)")
}

async fn add_event(db: &DatabaseConnection, key: &str, published: bool, at: DateTime<Utc>) {
    commerce_event::Entity::insert(commerce_event::ActiveModel {
        seq: NotSet,
        kind: Set("order".into()),
        shop_id: Set("s1".into()),
        key: Set(key.into()),
        published: Set(published),
        created_at: Set(at),
    })
    .exec_without_returning(db)
    .await
    .expect("event");
}

async fn add_rejection(db: &DatabaseConnection, reason: &str, at: DateTime<Utc>) {
    rejection::Entity::insert(rejection::ActiveModel {
        id: NotSet,
        shop_id: Set("s1".into()),
        connector: Set("webhook".into()),
        topic: Set("webhook".into()),
        reason: Set(reason.into()),
        body_sha256: Set(String::new()),
        body_bytes: Set(0),
        received_at: Set(at),
    })
    .exec_without_returning(db)
    .await
    .expect("rejection");
}

async fn retention_scenario(db: &DatabaseConnection) {
    let rules = retention::rules(&RetentionFlags::default());
    for (rule, index) in rules.iter().zip([COMMERCE_EVENTS_INDEX, REJECTIONS_INDEX]) {
        let plan = delete_plan(db, rule).await.expect("plan");
        if let Some(problem) = plan_problem(&plan, index) {
            panic!("retention delete of {}: {problem}", rule.table);
        }
    }
    let backend = db.get_database_backend();
    // A shop's rejections, newest first (store::rejections).
    let by_shop = rejection::Entity::find()
        .filter(rejection::Column::ShopId.eq("s1"))
        .order_by_desc(rejection::Column::Id)
        .limit(100)
        .build(backend);
    let plan = query_plan(db, by_shop).await.expect("plan");
    if let Some(problem) = plan_problem(&plan, REJECTIONS_SHOP_INDEX) {
        panic!("rejections by shop: {problem}");
    }
    // The outbox relay's scan (store::publish_pending) uses the published index.
    let pending = commerce_event::Entity::find()
        .filter(commerce_event::Column::Published.eq(false))
        .order_by_asc(commerce_event::Column::Seq)
        .limit(200)
        .build(backend);
    let plan = query_plan(db, pending).await.expect("plan");
    assert!(
        plan.contains("published"),
        "pending events by index: {plan}"
    );

    let now = Utc::now();
    add_event(db, "old-published", true, now - Duration::days(8)).await;
    add_event(db, "old-unpublished", false, now - Duration::days(8)).await;
    add_event(db, "young-published", true, now - Duration::days(6)).await;
    add_rejection(db, "old", now - Duration::days(31)).await;
    add_rejection(db, "young", now - Duration::days(29)).await;

    let flags = RetentionFlags::default();
    let pass = Retention::new(db.clone(), retention::rules(&flags), &flags.common);
    assert_eq!(
        pass.run_once_at(now).await.expect("pass"),
        vec![("commerce_events", 1), ("connector_rejections", 1)]
    );
    let mut keys: Vec<String> = commerce_event::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    keys.sort();
    assert_eq!(keys, vec!["old-unpublished", "young-published"]);
    let reasons: Vec<String> = rejection::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.reason)
        .collect();
    assert_eq!(reasons, vec!["young"]);
}

async fn refusal_scenario(db: DatabaseConnection) {
    rejection::Entity::delete_many().exec(&db).await.unwrap();
    let secret = "s1-webhook-secret-0123456789";
    let c = Connectors {
        db: db.clone(),
        secrets: Secrets::parse(&format!("s1 webhook {secret}")).expect("secrets"),
        customer_keys: kefu_runtime::customer_key::CustomerKeys::new(&[7u8; 32]).expect("key"),
        refusals: Refusals::default(),
        nudge: Default::default(),
    };
    let body = br#"{"format":"kefu.order.v1"}"#;
    // Anonymous: shops without a secret, no signature, a wrong one.
    for i in 0..40 {
        let shop = format!("nobody{i}");
        let err = c
            .authenticate(&shop, "webhook", "webhook", body, Some(sign(secret, body)))
            .await
            .expect_err("no secret for this shop");
        assert!(matches!(
            err,
            kefu_runtime::grpc::ApiError::Unauthenticated(_)
        ));
    }
    for _ in 0..25 {
        c.authenticate("s1", "webhook", "webhook", body, None)
            .await
            .expect_err("no signature");
        c.authenticate("s1", "webhook", "webhook", body, Some(sign("wrong", body)))
            .await
            .expect_err("wrong signature");
    }
    let rows = rejection::Entity::find().count(&db).await.unwrap();
    assert!(
        rows <= 2,
        "90 refused requests wrote {rows} rows; at most one per shop, connector and reason a minute"
    );
    assert_eq!(
        rejection::Entity::find()
            .filter(rejection::Column::ShopId.starts_with("nobody"))
            .count(&db)
            .await
            .unwrap(),
        0,
        "requests for unknown shops write nothing"
    );
    let counted = |reason: &str| {
        c.refusals
            .counter()
            .get_or_create(&RefusedLabels {
                connector: "webhook".into(),
                reason: reason.into(),
            })
            .get()
    };
    assert_eq!(counted("unknown_shop"), 40);
    assert_eq!(counted("missing_signature"), 25);
    assert_eq!(counted("bad_signature"), 25);
    // A correctly signed request passes.
    c.authenticate("s1", "webhook", "webhook", body, Some(sign(secret, body)))
        .await
        .expect("signed");
}

#[tokio::test]
async fn retention_on_sqlite() {
    let db = sqlite().await;
    retention_scenario(&db).await;
    refusal_scenario(db).await;
}

#[tokio::test]
async fn retention_on_postgres() {
    let db = postgres().await;
    retention_scenario(&db).await;
    refusal_scenario(db).await;
}
