//! Customer-data export / erasure of intent-classifier: labelled examples with the words of a
//! customer's messages, on SQLite and PostgreSQL.
use kefu_intent_classifier::{entity::migration::Migrator, privacy::CustomerDataStore, store};
use kefu_proto::privacy::v1::Subject;
use kefu_runtime::{db, privacy::CustomerData};
use sea_orm::DatabaseConnection;

async fn scenario(db: &DatabaseConnection) {
    let rows = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(t, l)| (t.to_string(), l.to_string()))
            .collect::<Vec<_>>()
    };
    for shop in ["a", "b"] {
        store::add_examples(
            db,
            shop,
            &rows(&[
                ("my parcel 7 never came", "where_is_my_order"),
                ("do you sell tea", "product"),
            ]),
            "agent",
            "agent-1",
            false,
        )
        .await
        .expect("add");
    }
    let data = CustomerDataStore { db: db.clone() };
    let subject = Subject {
        customer_id: "cus_1".into(),
        // As session-router stores it: digits and case differ, the example key does not.
        texts: vec!["My parcel 8 never came!".into()],
        ..Subject::default()
    };
    let e = data.export("a", &subject).await.unwrap();
    assert!(!e.is_empty());
    let erased = data.erase("a", &subject).await.unwrap();
    assert_eq!(erased.0, vec![("intent_examples".to_owned(), 1)]);
    assert!(data.export("a", &subject).await.unwrap().is_empty());
    let again = data.erase("a", &subject).await.unwrap();
    assert_eq!(
        again.0,
        vec![("intent_examples".to_owned(), 0)],
        "idempotent"
    );
    // The shop's other example, and shop b's copy, stay.
    assert_eq!(store::count(db, "a", None).await.unwrap(), 1);
    assert!(!data.export("b", &subject).await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_export_and_erase() {
    let db = db::test_sqlite::<Migrator>("intents_privacy")
        .await
        .expect("sqlite");
    scenario(&db).await;
}

#[tokio::test]
async fn postgres_export_and_erase() {
    let db = db::test_postgres::<Migrator>("intents_privacy")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (make test starts it)");
    scenario(&db).await;
}
