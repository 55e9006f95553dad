//! The metrics service's retention rule against real databases (SQLite file and PostgreSQL):
//! dedupe rows older than the rule are gone after one pass, younger ones stay, and the
//! delete uses the `seen_at` index.
use chrono::{DateTime, Duration, Utc};
use kefu_metrics::{
    entity::{migration::Migrator, seen_event},
    retention::{self, RetentionFlags, SEEN_EVENTS_INDEX},
};
use kefu_runtime::{
    db,
    retention::{Retention, delete_plan, plan_problem},
};
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};

async fn seen(db: &DatabaseConnection, id: &str, at: DateTime<Utc>) {
    seen_event::Entity::insert(seen_event::ActiveModel {
        delivery_id: Set(id.into()),
        seen_at: Set(at),
    })
    .exec_without_returning(db)
    .await
    .expect("insert");
}

async fn scenario(db: DatabaseConnection) {
    let flags = RetentionFlags::default();
    let rules = retention::rules(&flags);
    let plan = delete_plan(&db, &rules[0]).await.expect("plan");
    if let Some(problem) = plan_problem(&plan, SEEN_EVENTS_INDEX) {
        panic!("{problem}");
    }
    let now = Utc::now();
    // Past the default 30 days (beyond any topic's retention), and within it.
    seen(&db, "t#old", now - Duration::days(31)).await;
    seen(&db, "t#recent", now - Duration::days(15)).await;
    seen(&db, "t#today", now).await;
    let pass = Retention::new(db.clone(), rules, &flags.common);
    assert_eq!(
        pass.run_once_at(now).await.expect("pass"),
        vec![("metrics_seen_events", 1)]
    );
    let mut left: Vec<String> = seen_event::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.delivery_id)
        .collect();
    left.sort();
    assert_eq!(left, vec!["t#recent", "t#today"]);
}

#[tokio::test]
async fn retention_on_sqlite() {
    let db = db::test_sqlite::<Migrator>("retention_metrics")
        .await
        .expect("sqlite");
    scenario(db).await;
}

#[tokio::test]
async fn retention_on_postgres() {
    let db = db::test_postgres::<Migrator>("retention_metrics")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (KEFU_TEST_PG)");
    scenario(db).await;
}
