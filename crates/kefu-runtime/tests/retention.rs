//! The retention mechanism against real databases (a SQLite file and PostgreSQL): rows aged
//! past their rule are deleted in bounded batches and counted; young rows and rows the
//! rule's condition keeps stay; the delete's plan uses the timestamp index; the task stops
//! on shutdown.
use chrono::{Duration, Utc};
use kefu_runtime::{
    db,
    retention::{Retention, RetentionArgs, Rule, TableLabels, days, delete_plan, plan_problem},
};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, Schema,
    sea_query::Index,
};
use tokio_util::sync::CancellationToken;

mod row {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "retention_rows")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub done: bool,
        pub at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

async fn setup(db: &DatabaseConnection) {
    let backend = db.get_database_backend();
    let schema = Schema::new(backend);
    db.execute(&schema.create_table_from_entity(row::Entity))
        .await
        .expect("table");
    db.execute(
        &Index::create()
            .name("idx_retention_rows_done_at")
            .table(row::Entity)
            .col(row::Column::Done)
            .col(row::Column::At)
            .to_owned(),
    )
    .await
    .expect("index");
}

async fn insert(db: &DatabaseConnection, n: usize, done: bool, at: chrono::DateTime<Utc>) {
    let rows = (0..n).map(|_| row::ActiveModel {
        done: Set(done),
        at: Set(at),
        ..Default::default()
    });
    row::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await
        .expect("insert");
}

fn rule() -> Rule {
    Rule::new("retention_rows", "id", "at")
        .only_if("retention_rows.done = TRUE")
        .max_age(days(7))
}

async fn scenario(db: DatabaseConnection) {
    setup(&db).await;
    let now = Utc::now();
    // 25 finished rows 8 days old (expired), 3 unfinished ones as old (kept by the
    // condition), 4 finished rows 6 days old (young).
    insert(&db, 25, true, now - Duration::days(8)).await;
    insert(&db, 3, false, now - Duration::days(8)).await;
    insert(&db, 4, true, now - Duration::days(6)).await;

    let plan = delete_plan(&db, &rule()).await.expect("plan");
    eprintln!("{plan}");
    if let Some(problem) = plan_problem(&plan, "idx_retention_rows_done_at") {
        panic!("{problem}");
    }

    let args = RetentionArgs {
        retention_interval_secs: 1,
        retention_batch: 10,
    };
    let retention = Retention::new(db.clone(), vec![rule()], &args);
    let done = retention.run_once_at(now).await.expect("pass");
    assert_eq!(
        done,
        vec![("retention_rows", 25)],
        "25 expired rows, in 3 batches"
    );
    assert_eq!(row::Entity::find().count(&db).await.unwrap(), 7);
    let left = row::Entity::find().all(&db).await.unwrap();
    assert!(
        left.iter()
            .all(|r| !r.done || r.at > now - Duration::days(7)),
        "only unfinished or young rows are left: {left:?}"
    );
    let counted = retention
        .deleted_rows()
        .get_or_create(&TableLabels {
            table: "retention_rows".into(),
        })
        .get();
    assert_eq!(counted, 25, "kefu_retention_deleted_rows_total counts them");

    // Another pass (another replica) finds nothing: deletes are idempotent.
    assert_eq!(
        retention.run_once_at(now).await.expect("pass"),
        vec![("retention_rows", 0)]
    );
    // A rule that is off deletes nothing, however old.
    let off = Retention::new(db.clone(), vec![rule().max_age(days(0))], &args);
    assert!(
        off.run_once_at(now + Duration::days(3650))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(row::Entity::find().count(&db).await.unwrap(), 7);

    // The background task deletes what ages meanwhile, and stops on shutdown.
    insert(&db, 2, true, now - Duration::days(30)).await;
    let task = Retention::new(db.clone(), vec![rule()], &args);
    let deleted = task.deleted_rows();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(task.run(shutdown.clone()));
    let labels = TableLabels {
        table: "retention_rows".into(),
    };
    while deleted.get_or_create(&labels).get() < 2 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    handle.await.expect("join").expect("task");
    assert_eq!(row::Entity::find().count(&db).await.unwrap(), 7);
}

#[tokio::test]
async fn retention_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("kefu-ret-{}", uuid::Uuid::new_v4().simple()));
    let db = db::connect(&format!("sqlite://{}/r.db", dir.display()))
        .await
        .expect("sqlite");
    scenario(db).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn retention_on_postgres() {
    let url = db::fresh_test_postgres("retention")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (KEFU_TEST_PG)");
    scenario(db::connect(&url).await.expect("pg")).await;
}
