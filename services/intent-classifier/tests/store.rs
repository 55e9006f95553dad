//! Examples, versions and activations against real databases: SQLite (file) and PostgreSQL.
use kefu_intent_classifier::{entity::migration::Migrator, store};
use kefu_runtime::db;
use sea_orm::DatabaseConnection;

fn rows(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(t, l)| (t.to_string(), l.to_string()))
        .collect()
}

async fn examples_versions_and_rollback(db: &DatabaseConnection) {
    let a = store::add_examples(
        db,
        "shop-a",
        &rows(&[
            ("批发价怎么算", "wholesale"),
            ("order 123 where", "order_status"),
        ]),
        "upload",
        "",
        false,
    )
    .await
    .expect("add");
    assert_eq!((a.added, a.updated, a.total), (2, 0, 2));
    // The same sentence (digits and case aside) gets the new label; another shop is apart.
    let b = store::add_examples(
        db,
        "shop-a",
        &rows(&[("Order 456 where?", "shipping_delay")]),
        "agent",
        "agent-1",
        false,
    )
    .await
    .expect("relabel");
    assert_eq!((b.added, b.updated, b.total), (0, 1, 2));
    store::add_examples(
        db,
        "shop-b",
        &rows(&[("批发价怎么算", "other")]),
        "upload",
        "",
        false,
    )
    .await
    .expect("shop b");
    let all = store::all_examples(db, "shop-a").await.expect("all");
    assert_eq!(
        all,
        rows(&[
            ("批发价怎么算", "wholesale"),
            ("Order 456 where?", "shipping_delay")
        ])
    );
    assert_eq!(store::count(db, "shop-a", Some("agent")).await.unwrap(), 1);
    // Replacing uploads keeps agents' labels.
    let r = store::add_examples(
        db,
        "shop-a",
        &rows(&[("新的一句", "x_label")]),
        "upload",
        "",
        true,
    )
    .await
    .expect("replace");
    assert_eq!(r.total, 2);
    let page = store::list_examples(db, "shop-a", None, None, None, 1)
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    let older = store::list_examples(db, "shop-a", None, None, Some(page[0].id), 10)
        .await
        .unwrap();
    assert_eq!(older.len(), 1);
    assert!(older[0].id < page[0].id);
    // Another shop's ids delete nothing.
    assert_eq!(
        store::delete_examples(db, "shop-b", &[page[0].id])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store::delete_examples(db, "shop-a", &[page[0].id])
            .await
            .unwrap(),
        1
    );

    let v = |m: &'static str, mcc: f64| store::NewVersion {
        model: m,
        artefact: vec![1, 2, 3],
        seen: vec![0; 8],
        report: "{}".into(),
        examples: 10,
        mcc,
        active_mcc: 0.0,
    };
    assert_eq!(store::active(db, "shop-a").await.unwrap(), None);
    assert_eq!(
        store::store_version(db, "shop-a", v("m1", 0.8), true)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store::store_version(db, "shop-a", v("m2", 0.7), false)
            .await
            .unwrap(),
        2
    );
    assert_eq!(store::active(db, "shop-a").await.unwrap(), Some(1));
    assert_eq!(
        store::store_version(db, "shop-a", v("m3", 0.9), true)
            .await
            .unwrap(),
        3
    );
    assert_eq!(store::active(db, "shop-a").await.unwrap(), Some(3));
    assert_eq!(
        store::artefact(db, "shop-a", 3).await.unwrap(),
        Some(vec![1, 2, 3])
    );
    assert_eq!(store::artefact(db, "shop-b", 3).await.unwrap(), None);
    assert_eq!(
        store::seen(db, "shop-a", 1).await.unwrap(),
        Some((vec![0; 8], 0.8))
    );
    assert_eq!(store::rollback(db, "shop-a").await.unwrap(), 1);
    assert_eq!(store::active(db, "shop-a").await.unwrap(), Some(1));
    // Rolling back the first activation goes back to the bundled model (0).
    assert_eq!(store::rollback(db, "shop-a").await.unwrap(), 0);
    assert_eq!(store::active(db, "shop-a").await.unwrap(), None);
    assert_eq!(store::rollback(db, "shop-a").await.unwrap(), 0);
    let listed = store::versions(db, "shop-a").await.unwrap();
    assert_eq!(
        listed.iter().map(|(v, _)| v.0).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
    assert!(listed[1].1.is_none() && listed[0].1.is_some());
    assert!(store::versions(db, "shop-b").await.unwrap().is_empty());
}

#[tokio::test]
async fn store_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("kefu-intents-{}", uuid::Uuid::new_v4().simple()));
    let db = db::connect_and_migrate::<Migrator>(&format!("sqlite://{}/i.db", dir.display()))
        .await
        .expect("sqlite");
    examples_versions_and_rollback(&db).await;
}

#[tokio::test]
async fn store_on_postgres() {
    let url = db::fresh_test_postgres("intents")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (make test starts it)");
    let db = db::connect_and_migrate::<Migrator>(&url)
        .await
        .expect("postgres");
    db::connect_and_migrate::<Migrator>(&url)
        .await
        .expect("re-migrate");
    examples_versions_and_rollback(&db).await;
}
