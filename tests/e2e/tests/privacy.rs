//! Customer data rights (docs/privacy.md): `kefu customers export` returns everything the mesh
//! holds about a customer as one JSON document, `kefu customers erase` erases it everywhere —
//! proven by searching every table of every service database afterwards — and another shop
//! can neither export nor erase the customer. Also: phone numbers and e-mail addresses are
//! stored as keyed hashes only (docs/security.md).
use std::time::Duration;

use kefu_e2e::{CUSTOMER_KEY_SECRET, Mesh, SHOP};
use kefu_proto::{
    intent::v1::{
        AddExamplesRequest, LabeledExample,
        intent_classifier_service_client::IntentClassifierServiceClient,
    },
    order::v1::{
        Buyer, Order, UpsertOrderRequest, order_sync_service_client::OrderSyncServiceClient,
    },
    privacy::v1::{
        EraseCustomerRequest, ExportCustomerRequest, Subject, SubjectKey,
        customer_data_service_client::CustomerDataServiceClient,
    },
    session::v1::{SendRequest, session_router_service_client::SessionRouterServiceClient},
};
use kefu_runtime::customer_key::{CustomerKeys, legacy_hash, normalize_email, normalize_phone};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use serde_json::{Value, json};
use tonic::Request;

const B: &str = "shop-b";
const USER: &str = "privacy-user-7xq";
const PHONE: &str = "+86 139-5555-0173";
const EMAIL: &str = "Privacy.Person.7xq@Example.com";
const NAME: &str = "Zhang Privacy-7xq";
const TEXT: &str = "我要转人工";
const LABELLED: &str = "my parcel 7xq never came";
const ORDER: &str = "PRIV-7XQ-1";

fn as_<T>(credential: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {credential}").parse().expect("header"),
    );
    r
}

fn order(id: &str, shop: &str, user: &str, name: &str, phone: &str, email: &str) -> Order {
    let now = chrono::Utc::now();
    let ts = |t: chrono::DateTime<chrono::Utc>| kefu_proto::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    };
    Order {
        shop_id: shop.into(),
        order_id: id.into(),
        status: "paid".into(),
        total_minor: 4200,
        currency: "CNY".into(),
        placed_at: Some(ts(now - chrono::Duration::days(1))),
        updated_at: Some(ts(now)),
        buyer: Some(Buyer {
            buyer_id: String::new(),
            name: name.into(),
            phone: phone.into(),
            email: email.into(),
            channel: "web".into(),
            channel_user_id: user.into(),
        }),
        ..Order::default()
    }
}

/// `kefu customers …` against the mesh with `key`.
fn customers(mesh: &Mesh, key: &str, args: &[&str]) -> (bool, String, String) {
    let urls = [
        ("--url", mesh.grpc_url("session-router")),
        ("--ticket-url", mesh.grpc_url("ticket")),
        ("--order-sync-url", mesh.grpc_url("order-sync")),
        ("--intent-url", mesh.grpc_url("intent-classifier")),
    ];
    let mut all: Vec<String> = vec!["customers".into()];
    all.extend(args.iter().map(|s| s.to_string()));
    all.extend(["--api-key".to_owned(), key.to_owned()]);
    for (flag, url) in urls {
        all.extend([flag.to_owned(), url]);
    }
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    mesh.kefu(&refs)
}

fn rows(doc: &Value, service: &str, table: &str) -> Vec<Value> {
    doc["services"][service][table]
        .as_array()
        .unwrap_or_else(|| panic!("{service}.{table} in {doc:#}"))
        .clone()
}

/// Every (database, table, column, needle) where a needle occurs, in every database of the
/// mesh: session-router's and order-sync's PostgreSQL databases and the SQLite files of the
/// other services. Every column is compared as text.
async fn find_everywhere(mesh: &Mesh, needles: &[String]) -> Vec<String> {
    let mut urls = vec![
        mesh.session_db_url().to_owned(),
        mesh.order_db_url().to_owned(),
    ];
    for entry in std::fs::read_dir(&mesh.dir).expect("mesh dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "db") {
            urls.push(format!("sqlite://{}?mode=ro", path.display()));
        }
    }
    assert!(urls.len() >= 4, "the SQLite databases are found: {urls:?}");
    let mut found = Vec::new();
    for url in urls {
        let db = Database::connect(&url).await.expect("database");
        let backend = db.get_database_backend();
        let columns: Vec<(String, String)> = match backend {
            DbBackend::Postgres => db
                .query_all_raw(Statement::from_string(
                    backend,
                    "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
                     WHERE table_schema = 'public'",
                ))
                .await
                .expect("columns")
                .into_iter()
                .map(|r| (r.try_get("", "t").unwrap(), r.try_get("", "c").unwrap()))
                .collect(),
            _ => {
                let tables: Vec<String> = db
                    .query_all_raw(Statement::from_string(
                        backend,
                        "SELECT name AS t FROM sqlite_master WHERE type = 'table'",
                    ))
                    .await
                    .expect("tables")
                    .into_iter()
                    .map(|r| r.try_get("", "t").unwrap())
                    .collect();
                let mut cols = Vec::new();
                for t in tables {
                    for r in db
                        .query_all_raw(Statement::from_string(
                            backend,
                            format!("SELECT name AS c FROM pragma_table_info('{t}')"),
                        ))
                        .await
                        .expect("table info")
                    {
                        cols.push((t.clone(), r.try_get("", "c").unwrap()));
                    }
                }
                cols
            }
        };
        assert!(!columns.is_empty(), "{url}: no tables?");
        for (t, c) in &columns {
            for needle in needles {
                let sql = match backend {
                    DbBackend::Postgres => format!(
                        "SELECT count(*) AS n FROM \"{t}\" WHERE strpos(\"{c}\"::text, $1) > 0"
                    ),
                    _ => format!(
                        "SELECT count(*) AS n FROM \"{t}\" WHERE instr(CAST(\"{c}\" AS TEXT), $1) > 0"
                    ),
                };
                let r = db
                    .query_one_raw(Statement::from_sql_and_values(
                        backend,
                        sql,
                        [needle.clone().into()],
                    ))
                    .await
                    .expect("search")
                    .expect("a count");
                let n: i64 = r.try_get("", "n").unwrap();
                if n > 0 {
                    found.push(format!("{url} {t}.{c} holds {needle:?} ({n} rows)"));
                }
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_is_exported_then_erased_everywhere_and_other_shops_are_untouched() {
    let mesh = Mesh::start("privacy").await;
    let a = mesh.api_key.clone();
    let b = mesh.add_shop(B).await;

    // Shop A's customer: a verified phone and e-mail, a conversation handed to a person (a
    // ticket and its acknowledgement reply), an order with the buyer's name and contacts, a
    // message an agent labelled as an intent example.
    let (status, first) = mesh
        .post_message(
            &json!({"shop_id": SHOP, "channel": "web", "channel_user_id": USER,
            "channel_message_id": "p1", "text": LABELLED, "wait_ms": 30_000,
            "verified_phone": PHONE, "verified_email": EMAIL}),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let customer = first["customer_id"].as_str().expect("customer").to_owned();
    assert!(customer.starts_with("cus_"), "{first}");
    let (status, v) = mesh
        .post_message(
            &json!({"shop_id": SHOP, "channel": "web", "channel_user_id": USER,
            "channel_message_id": "p2", "text": TEXT, "wait_ms": 30_000}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let ticket = v["reply"]["ticket_id"].as_str().expect("ticket").to_owned();
    assert!(!ticket.is_empty(), "{v}");
    let mut orders = OrderSyncServiceClient::new(mesh.channel("order-sync").await);
    orders
        .upsert_order(as_(
            &a,
            UpsertOrderRequest {
                order: Some(order(ORDER, "", USER, NAME, PHONE, EMAIL)),
            },
        ))
        .await
        .expect("A's order");
    let mut intents = IntentClassifierServiceClient::new(mesh.channel("intent-classifier").await);
    intents
        .add_examples(as_(
            &a,
            AddExamplesRequest {
                shop_id: String::new(),
                examples: vec![LabeledExample {
                    text: LABELLED.into(),
                    label: "where_is_my_order".into(),
                }],
                source: "agent".into(),
                labeled_by: "agent-alice".into(),
                replace: false,
            },
        ))
        .await
        .expect("labelled example");

    // Shop B's customer, with data of its own in every service.
    let mut router = SessionRouterServiceClient::new(mesh.channel("session-router").await);
    let sent = router
        .send(as_(
            &b,
            SendRequest {
                shop_id: String::new(),
                channel: "web".into(),
                channel_user_id: "b-user-9kd".into(),
                channel_message_id: "b1".into(),
                text: "人工客服 9kd".into(),
                verified_phone: "+86 139-5555-0999".into(),
                verified_email: String::new(),
            },
        ))
        .await
        .expect("B's message")
        .into_inner();
    orders
        .upsert_order(as_(
            &b,
            UpsertOrderRequest {
                order: Some(order(
                    "B-9KD-1",
                    "",
                    "b-user-9kd",
                    "Li B-9kd",
                    "+86 139-5555-0999",
                    "b9kd@example.com",
                )),
            },
        ))
        .await
        .expect("B's order");
    // Let the conversations settle (late replies and ticket events land before the erase).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let b_customer = {
        let mut found = None;
        for _ in 0..50 {
            let r = router
                .get_conversation(as_(
                    &b,
                    kefu_proto::session::v1::GetConversationRequest {
                        shop_id: String::new(),
                        conversation_id: sent.conversation_id.clone(),
                    },
                ))
                .await;
            if let Ok(r) = r {
                found = r.into_inner().conversation.map(|c| c.customer_id);
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        found.expect("B's customer")
    };

    // Keys are keyed hashes, not SHA-256 of the phone number (enumerable).
    let keys = CustomerKeys::new(CUSTOMER_KEY_SECRET.as_bytes()).expect("secret");
    let phone_hmac = keys.hash(&normalize_phone(PHONE));
    let email_hmac = keys.hash(&normalize_email(EMAIL));
    let legacy = [
        legacy_hash(&normalize_phone(PHONE)),
        legacy_hash(&normalize_email(EMAIL)),
    ];
    assert!(
        find_everywhere(&mesh, &legacy).await.is_empty(),
        "plain SHA-256 keys stored"
    );

    // ---- export ----
    let out = mesh.dir.join("export.json");
    let (ok, _, err) = customers(
        &mesh,
        &a,
        &[
            "export",
            "--customer",
            &customer,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).expect("JSON");
    assert_eq!(doc["shop_id"], SHOP);
    assert_eq!(doc["customer_id"], customer.as_str());
    assert!(doc["exported_at"].as_str().is_some(), "{doc}");
    let texts: Vec<String> = rows(&doc, "session-router", "messages")
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, vec![LABELLED.to_owned(), TEXT.to_owned()]);
    assert!(
        rows(&doc, "session-router", "replies").len() >= 2,
        "{doc:#}"
    );
    assert!(
        rows(&doc, "session-router", "identities")
            .iter()
            .any(|i| i["channel_user_id"] == USER)
    );
    let mut stored_keys: Vec<String> = rows(&doc, "session-router", "customer_keys")
        .iter()
        .map(|k| k["value_sha256"].as_str().unwrap().to_owned())
        .collect();
    stored_keys.sort();
    let mut expected = vec![phone_hmac.clone(), email_hmac.clone()];
    expected.sort();
    assert_eq!(stored_keys, expected, "verified keys, keyed");
    assert!(
        rows(&doc, "ticket", "tickets")
            .iter()
            .any(|t| t["ticket_id"] == ticket.as_str() && t["text"] == TEXT),
        "{doc:#}"
    );
    let order_rows = rows(&doc, "order-sync", "commerce_orders");
    assert!(
        order_rows
            .iter()
            .any(|o| o["order_id"] == ORDER && o["buyer_name"] == NAME),
        "{doc:#}"
    );
    assert!(
        rows(&doc, "order-sync", "commerce_customers")
            .iter()
            .any(|c| c["phone_sha256"] == phone_hmac.as_str()
                && c["email_sha256"] == email_hmac.as_str()),
        "the order's buyer matches the customer's verified keys: {doc:#}"
    );
    assert!(
        rows(&doc, "intent-classifier", "intent_examples")
            .iter()
            .any(|e| e["text"] == LABELLED),
        "{doc:#}"
    );
    assert!(
        !doc.to_string().contains("B-9KD-1") && !doc.to_string().contains("9kd"),
        "B's data in A's export"
    );

    // ---- another shop: nothing found, nothing erased ----
    // What B holds that no late event changes: its customer's messages, identities, keys
    // and order.
    let b_export = |mesh: &Mesh| {
        let (ok, out, err) = customers(mesh, &b, &["export", "--customer", &b_customer]);
        assert!(ok, "{err}");
        let d: Value = serde_json::from_str(&out).expect("B's export");
        [
            ("session-router", "messages"),
            ("session-router", "identities"),
            ("session-router", "customer_keys"),
            ("order-sync", "commerce_customers"),
            ("order-sync", "commerce_orders"),
        ]
        .map(|(s, t)| rows(&d, s, t))
    };
    let b_before = b_export(&mesh);
    assert_eq!(b_before[4].len(), 1, "B's order: {b_before:?}");
    assert_eq!(b_before[2].len(), 1, "B's verified phone: {b_before:?}");
    let (ok, _, err) = customers(&mesh, &b, &["export", "--customer", &customer]);
    assert!(!ok && err.contains("no customer"), "{err}");
    let (ok, out, err) = customers(&mesh, &b, &["erase", "--customer", &customer, "--yes"]);
    assert!(ok && out.contains("nothing to erase"), "{out}{err}");
    // Even given A's customer keys directly, B's key finds and erases nothing in order-sync.
    let subject = Subject {
        customer_id: customer.clone(),
        keys: vec![
            SubjectKey {
                kind: "identity".into(),
                value: format!("web:{USER}"),
            },
            SubjectKey {
                kind: "phone".into(),
                value: phone_hmac.clone(),
            },
        ],
        ..Subject::default()
    };
    let mut data = CustomerDataServiceClient::new(mesh.channel("order-sync").await);
    let r = data
        .export_customer(as_(
            &b,
            ExportCustomerRequest {
                shop_id: String::new(),
                subject: Some(subject.clone()),
            },
        ))
        .await
        .expect("B's export")
        .into_inner();
    assert!(r.tables.iter().all(|t| t.rows == 0), "{r:?}");
    assert!(
        data.export_customer(as_(
            &b,
            ExportCustomerRequest {
                shop_id: SHOP.into(),
                subject: Some(subject.clone()),
            },
        ))
        .await
        .is_err(),
        "B naming shop A"
    );
    let r = data
        .erase_customer(as_(
            &b,
            EraseCustomerRequest {
                shop_id: String::new(),
                subject: Some(subject.clone()),
            },
        ))
        .await
        .expect("B's erase")
        .into_inner();
    assert!(r.erased.iter().all(|t| t.rows == 0), "{r:?}");

    // The search finds the customer where the export says it is (it can fail).
    let before = find_everywhere(
        &mesh,
        &[
            customer.clone(),
            NAME.into(),
            LABELLED.into(),
            phone_hmac.clone(),
        ],
    )
    .await;
    for place in [
        "messages.text",
        "tickets.customer_id",
        "commerce_orders.buyer_name",
        "intent_examples.text",
        "customer_keys.value_sha256",
        "commerce_customers.phone_sha256",
    ] {
        assert!(
            before.iter().any(|f| f.contains(place)),
            "{place} not found before the erase:\n{}",
            before.join("\n")
        );
    }

    // ---- erase ----
    let (ok, out, _) = customers(&mesh, &a, &["erase", "--customer", &customer]);
    assert!(!ok && out.contains("would erase"), "{out}");
    let (ok, _, err) = customers(&mesh, &a, &["export", "--customer", &customer]);
    assert!(ok, "without --yes nothing was erased: {err}");
    let (ok, out, err) = customers(&mesh, &a, &["erase", "--customer", &customer, "--yes"]);
    assert!(ok, "{out}{err}");
    for line in [
        "session-router",
        "messages",
        "tickets",
        "commerce_orders",
        "intent_examples",
    ] {
        assert!(out.contains(line), "{line} in {out}");
    }
    let (ok, out, err) = customers(&mesh, &a, &["erase", "--customer", &customer, "--yes"]);
    assert!(
        ok && out.contains("nothing to erase"),
        "erase is idempotent: {out}{err}"
    );
    let (ok, _, err) = customers(&mesh, &a, &["export", "--customer", &customer]);
    assert!(!ok && err.contains("no customer"), "{err}");

    // Nothing about the customer is left in any database.
    let needles: Vec<String> = [
        customer.as_str(),
        USER,
        PHONE,
        &normalize_phone(PHONE),
        EMAIL,
        &normalize_email(EMAIL),
        NAME,
        TEXT,
        LABELLED,
        &phone_hmac,
        &email_hmac,
        &ticket,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let left = find_everywhere(&mesh, &needles).await;
    assert!(left.is_empty(), "left after erase:\n{}", left.join("\n"));
    // The order stays for the shop's accounts, without its buyer.
    let kept = orders
        .get_order(as_(
            &a,
            kefu_proto::order::v1::GetOrderRequest {
                shop_id: String::new(),
                order_id: ORDER.into(),
                customer_keys: vec![],
            },
        ))
        .await
        .expect("the order is kept")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(kept.total_minor, 4200);
    assert_eq!(kept.buyer.unwrap_or_default().name, "");

    // B's customer is untouched.
    assert_eq!(b_export(&mesh), b_before);
}
