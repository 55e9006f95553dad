//! Versions, files and activations against real databases: SQLite (file) and PostgreSQL.
use kefu_knowledge_service::{entity::migration::Migrator, store};
use kefu_runtime::db;
use sea_orm::DatabaseConnection;

async fn versions_activate_and_roll_back(db: &DatabaseConnection) {
    let files = vec![
        (
            "faq.md".to_owned(),
            b"## Returns\n\nWithin 15 days.\n".to_vec(),
        ),
        ("products/a.html".to_owned(), vec![0u8, 159, 146, 150]),
    ];
    assert_eq!(store::active(db, "s1").await.unwrap(), None);
    let v1 = store::store_version(db, "s1", &files, "{}").await.unwrap();
    let v2 = store::store_version(db, "s1", &files[..1], "{}")
        .await
        .unwrap();
    let other = store::store_version(db, "s2", &files, "{}").await.unwrap();
    assert_eq!((v1, v2, other), (1, 2, 1), "numbered per shop");
    let mut got = store::files(db, "s1", v1).await.unwrap().expect("files");
    got.sort();
    assert_eq!(got, files, "bytes kept exactly");
    assert!(store::files(db, "s1", 9).await.unwrap().is_none());
    assert!(
        store::files(db, "s3", 1).await.unwrap().is_none(),
        "another shop's version"
    );
    assert_eq!(store::activate(db, "s1", v1).await.unwrap(), None);
    assert_eq!(store::activate(db, "s1", v2).await.unwrap(), Some(v1));
    assert_eq!(store::active(db, "s1").await.unwrap(), Some(v2));
    assert_eq!(store::active(db, "s2").await.unwrap(), None);
    assert_eq!(store::rollback(db, "s1").await.unwrap(), Some(v1));
    assert_eq!(store::active(db, "s1").await.unwrap(), Some(v1));
    assert_eq!(
        store::rollback(db, "s1").await.unwrap(),
        None,
        "nothing before v1"
    );
    assert_eq!(store::active(db, "s1").await.unwrap(), Some(v1));
    let listed = store::versions(db, "s1").await.unwrap();
    assert_eq!(
        listed.iter().map(|(v, _)| v.version).collect::<Vec<_>>(),
        [2, 1]
    );
    assert!(listed.iter().all(|(_, at)| at.is_some()));
}

#[tokio::test]
async fn store_on_sqlite() {
    let dir =
        std::env::temp_dir().join(format!("kefu-knowledge-{}", uuid::Uuid::new_v4().simple()));
    let db = db::connect_and_migrate::<Migrator>(&format!("sqlite://{}/k.db", dir.display()))
        .await
        .expect("sqlite");
    versions_activate_and_roll_back(&db).await;
}

#[tokio::test]
async fn store_on_postgres() {
    let url = db::fresh_test_postgres("knowledge")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (make test starts it)");
    let db = db::connect_and_migrate::<Migrator>(&url)
        .await
        .expect("postgres");
    db::connect_and_migrate::<Migrator>(&url)
        .await
        .expect("re-migrate");
    versions_activate_and_roll_back(&db).await;
}
