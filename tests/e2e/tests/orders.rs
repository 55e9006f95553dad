//! Order-sync's connectors (Shopify signed and mis-signed, JSON lines and CSV through the
//! `kefu orders import` CLI, carrier scans through the tracking webhook) and the assistant's
//! answers from real orders, asked through session-router in Chinese and English. An order of
//! another customer or another shop is never revealed.
use std::{collections::HashSet, process::Command, time::Duration};

use base64::Engine;
use chrono::{Duration as Age, Utc};
use hmac::{Hmac, Mac};
use kefu_e2e::{Mesh, SHOP, SHOPIFY_SECRET, WEBHOOK_SECRET, bin_dir, brokers};
use kefu_proto::{
    events::v1::{OrderChanged, ShipmentChanged},
    order::v1::{GetOrderRequest, GetShipmentRequest},
    session::v1::GetCustomerRequest,
    ticket::v1::GetTicketRequest,
};
use prost::Message as _;
use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
};
use serde_json::{Value, json};
use sha2::Sha256;
use tonic::Code;

fn hmac(secret: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

fn ago(d: Age) -> String {
    (Utc::now() - d).to_rfc3339()
}

async fn shopify(mesh: &Mesh, topic: &str, body: &Value, secret: &str) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    let sig = base64::engine::general_purpose::STANDARD.encode(hmac(secret, &bytes));
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/connectors/shopify/{SHOP}",
            mesh.orders_url()
        ))
        .header("x-shopify-topic", topic)
        .header("x-shopify-hmac-sha256", sig)
        .header("content-type", "application/json")
        .body(bytes)
        .send()
        .await
        .expect("shopify post");
    (r.status().as_u16(), r.json().await.expect("json"))
}

async fn tracking(mesh: &Mesh, body: &Value) -> (u16, Value) {
    let bytes = body.to_string().into_bytes();
    let sig = format!("sha256={}", hex::encode(hmac(WEBHOOK_SECRET, &bytes)));
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/connectors/tracking/{SHOP}",
            mesh.orders_url()
        ))
        .header("x-kefu-signature", sig)
        .header("content-type", "application/json")
        .body(bytes)
        .send()
        .await
        .expect("tracking post");
    (r.status().as_u16(), r.json().await.expect("json"))
}

/// A customer message through session-router, waiting for the reply.
async fn ask(mesh: &Mesh, channel: &str, user: &str, phone: &str, id: &str, text: &str) -> Value {
    let body = json!({"shop_id": SHOP, "channel": channel, "channel_user_id": user,
        "channel_message_id": id, "text": text, "wait_ms": 30000, "verified_phone": phone});
    let (status, v) = mesh.post_message(&body).await;
    assert_eq!(status, 200, "{text}: {v}\n{}", mesh.log_tail("assistant"));
    v
}

fn text(v: &Value) -> String {
    v["reply"]["text"].as_str().unwrap_or_default().to_owned()
}

/// `kefu orders import FILE --shop SHOP` with the mesh's shop key (or `key`).
fn import(mesh: &Mesh, file: &std::path::Path, shop: &str) -> std::process::Output {
    import_with(mesh, file, shop, &mesh.api_key)
}

fn import_with(mesh: &Mesh, file: &std::path::Path, shop: &str, key: &str) -> std::process::Output {
    Command::new(bin_dir().join("kefu"))
        .args(["orders", "import"])
        .arg(file)
        .args(["--shop", shop, "--url", &mesh.grpc_url("order-sync")])
        .args(["--api-key", key])
        .output()
        .expect("kefu orders import")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_import_and_answers_from_real_orders() {
    let mesh = Mesh::start("orders").await;
    let mut orders = mesh.order_client().await;
    let events: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("{}commerce-reader", mesh.prefix))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let (orders_topic, shipments_topic) = (
        mesh.topic("kefu.commerce.orders.v1"),
        mesh.topic("kefu.commerce.shipments.v1"),
    );
    events
        .subscribe(&[&orders_topic, &shipments_topic])
        .expect("subscribe");

    // 1. Shopify: a correctly signed orders/create is stored once; a replay changes nothing;
    //    a mis-signed one is refused, recorded, and stores nothing.
    let alice_phone = "+86 137 0000 2222";
    let shopify_order = json!({
        "id": 820982911946154508u64, "order_number": 20261120001u64, "name": "#20261120001",
        "email": "alice@example.com", "phone": alice_phone,
        "created_at": ago(Age::days(3)), "updated_at": ago(Age::days(2)),
        "cancelled_at": null, "financial_status": "paid", "fulfillment_status": null,
        "currency": "CNY", "total_price": "299.00",
        "customer": {"id": 7001, "first_name": "Alice", "last_name": "Wang"},
        "line_items": [{"sku": "TEA-01", "title": "Longjing tea", "quantity": 1, "price": "299.00"}],
        "payment_gateway_names": ["alipay"]
    });
    let (s, r) = shopify(&mesh, "orders/create", &shopify_order, SHOPIFY_SECRET).await;
    assert_eq!(s, 200, "{r}\n{}", mesh.log_tail("order-sync"));
    assert_eq!(r["result"]["changed"], true, "{r}");
    let (s, r) = shopify(&mesh, "orders/create", &shopify_order, SHOPIFY_SECRET).await;
    assert_eq!(
        (s, r["result"]["changed"].clone()),
        (200, json!(false)),
        "replay: {r}"
    );
    let mut forged = shopify_order.clone();
    forged["order_number"] = json!(20261120999u64);
    let (s, r) = shopify(&mesh, "orders/create", &forged, "wrong-secret-0123456789").await;
    assert_eq!(s, 401, "{r}");
    assert_eq!(r["error"]["code"], "unauthenticated");
    // Refused requests are counted (not written to the database each); the retention task
    // runs and exports its counter (docs/operations.md).
    let m = mesh.metrics_text("order-sync").await;
    assert!(
        m.contains(
            r#"kefu_connector_unauthenticated_requests_total{connector="shopify",reason="bad_signature"} 1"#
        ),
        "{m}"
    );
    assert!(
        m.contains(r#"kefu_retention_deleted_rows_total{table="connector_rejections"}"#),
        "{m}"
    );
    let missing = orders
        .get_order(GetOrderRequest {
            shop_id: SHOP.into(),
            order_id: "20261120999".into(),
            customer_keys: vec![],
        })
        .await
        .expect_err("mis-signed order must not be stored");
    assert_eq!(missing.code(), Code::NotFound);
    // The fulfillment arrives later and names the order by Shopify's id.
    let fulfillment = json!({
        "id": 4111, "order_id": 820982911946154508u64, "status": "success",
        "tracking_company": "SF", "tracking_number": "SF1400000000001",
        "shipment_status": "in_transit", "created_at": ago(Age::hours(5)), "updated_at": ago(Age::hours(4))
    });
    let (s, r) = shopify(&mesh, "fulfillments/create", &fulfillment, SHOPIFY_SECRET).await;
    assert_eq!(s, 200, "{r}");

    // 2. JSON lines and CSV through the CLI, for this shop and for another shop.
    let order = |id: &str, status: &str, buyer: Value, shipments: Value| {
        json!({"format": "kefu.order.v1", "order_id": id, "status": status, "currency": "CNY",
            "total_minor": 15900, "placed_at": ago(Age::days(8)), "updated_at": ago(Age::days(1)),
            "buyer": buyer, "items": [{"sku": "MUG", "title": "Ceramic mug", "quantity": 1, "price_minor": 15900}],
            "shipments": shipments})
    };
    let bob = json!({"buyer_id": "tb-881", "name": "Bob", "phone": "13900001111",
        "channel": "taobao", "channel_user_id": "tb_bob"});
    let late = json!([{"carrier": "YTO", "tracking_number": "YT1500000000001",
        "estimated_delivery": ago(Age::days(2)),
        "events": [{"status": "picked_up", "location": "义乌", "at": ago(Age::days(6))},
                   {"status": "in_transit", "location": "金华转运中心", "at": ago(Age::days(5))}]}]);
    let moving = json!([{"carrier": "SF", "tracking_number": "SF1500000000003",
        "events": [{"status": "in_transit", "location": "上海转运中心", "at": ago(Age::hours(20))}]}]);
    let lines = [
        order("20261101001", "shipped", bob.clone(), late),
        order("20261101002", "paid", bob.clone(), json!([])),
        order("20261101003", "shipped", bob.clone(), moving),
        order(
            "20261101009",
            "delivered",
            json!({"name": "Carol", "channel": "wechat", "channel_user_id": "wx-carol"}),
            json!([]),
        ),
        json!({"format": "kefu.order.v1", "order_id": "bad"}),
    ];
    let jsonl = mesh_file(
        &mesh,
        "orders.jsonl",
        &lines
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let out = import(&mesh, &jsonl, SHOP);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "one bad line makes the import exit 1: {stdout}"
    );
    assert!(
        stdout.contains("5 records read, 4 changed, 1 rejected"),
        "{stdout}"
    );
    assert!(stdout.contains("line 5"), "{stdout}");
    let again = import(&mesh, &jsonl, SHOP);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 changed"),
        "re-import changes nothing"
    );
    let other_shop = mesh_file(
        &mesh,
        "other.jsonl",
        &order("20261101077", "shipped", bob.clone(), json!([])).to_string(),
    );
    // Shop A's key cannot import into shop B; B's own key can.
    let refused = import(&mesh, &other_shop, "shop-b");
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("not the shop of this credential"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let key_b = mesh.add_shop("shop-b").await;
    assert!(
        import_with(&mesh, &other_shop, "shop-b", &key_b)
            .status
            .success()
    );
    let csv = mesh_file(&mesh, "orders.csv", &[
        "order_id,status,currency,total_minor,placed_at,updated_at,channel,channel_user_id,sku,title,quantity,price_minor,carrier,tracking_number",
        &format!("20261102001,delivered,CNY,9800,{},{},web,web-dave,A1,\"Scarf, red\",1,4900,ZTO,ZT1600000000001", ago(Age::days(9)), ago(Age::days(4))),
        &format!("20261102001,delivered,CNY,9800,{},{},web,web-dave,A2,Gloves,1,4900,ZTO,ZT1600000000001", ago(Age::days(9)), ago(Age::days(4))),
    ].join("\n"));
    let out = import(&mesh, &csv, SHOP);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let dave = orders
        .get_order(GetOrderRequest {
            shop_id: SHOP.into(),
            order_id: "20261102001".into(),
            customer_keys: vec![],
        })
        .await
        .expect("csv order")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(
        dave.items.len(),
        2,
        "two CSV rows, one order with two items"
    );
    assert_eq!(dave.items[0].title, "Scarf, red");

    // 3. A carrier scan through the tracking webhook (signed), and a mis-signed one.
    let scan = json!({"format": "kefu.tracking.v1", "carrier": "SF", "tracking_number": "SF1500000000003",
        "status": "out_for_delivery", "location": "杭州西湖区", "at": ago(Age::minutes(30))});
    let (s, r) = tracking(&mesh, &scan).await;
    assert_eq!(
        (s, r["results"][0]["changed"].clone()),
        (200, json!(true)),
        "{r}"
    );
    let shipment = orders
        .get_shipment(GetShipmentRequest {
            shop_id: SHOP.into(),
            tracking_number: "SF1500000000003".into(),
        })
        .await
        .expect("shipment")
        .into_inner()
        .shipment
        .expect("shipment");
    assert_eq!(
        (shipment.status.as_str(), shipment.events.len()),
        ("out_for_delivery", 2)
    );
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/connectors/tracking/{SHOP}",
            mesh.orders_url()
        ))
        .header("x-kefu-signature", "sha256=00")
        .body(scan.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 401);

    // 4. Questions through session-router. Bob writes on WeChat with his verified phone.
    let bob_phone = "139 0000 1111";
    let zh = ask(
        &mesh,
        "wechat",
        "wx-bob",
        bob_phone,
        "b1",
        "我的订单20261101003到哪了",
    )
    .await;
    let t = text(&zh);
    assert!(
        t.contains("已发货") && t.contains("派送中") && t.contains("杭州西湖区"),
        "{zh}"
    );
    let en = ask(
        &mesh,
        "wechat",
        "wx-bob",
        bob_phone,
        "b2",
        "where is my order 20261101003?",
    )
    .await;
    let t = text(&en);
    assert!(
        t.contains("shipped") && t.contains("out for delivery") && t.contains("杭州西湖区"),
        "{en}"
    );
    // A late parcel: status, the last scan, and an apology.
    let late = ask(
        &mesh,
        "wechat",
        "wx-bob",
        bob_phone,
        "b3",
        "my parcel 20261101001 is late, it still hasn't arrived",
    )
    .await;
    let t = text(&late);
    assert_eq!(late["reply"]["intent"], "shipping_delay", "{late}");
    assert!(
        t.contains("shipped") && t.contains("金华转运中心") && t.contains("late"),
        "{late}"
    );
    let late_zh = ask(
        &mesh,
        "wechat",
        "wx-bob",
        bob_phone,
        "b3zh",
        "我的包裹20261101001怎么还没到，太慢了",
    )
    .await;
    let t = text(&late_zh);
    assert!(
        t.contains("已发货") && t.contains("金华转运中心") && t.contains("抱歉"),
        "{late_zh}"
    );
    // "My order" with several open ones: which one?
    let which = ask(&mesh, "wechat", "wx-bob", bob_phone, "b4", "我的订单到哪了").await;
    let t = text(&which);
    assert!(
        t.contains("哪一个") && t.contains("20261101002") && t.contains("20261101003"),
        "{which}"
    );
    // Carol's order and another shop's order reveal nothing.
    // (Different questions, so the policy's repeat rule does not hand Bob to a person.)
    for (id, question) in [
        ("b5", "我的订单20261101009到哪了"),
        ("b6", "订单20261101077可以取消吗"),
    ] {
        let r = ask(&mesh, "wechat", "wx-bob", bob_phone, id, question).await;
        let t = text(&r);
        assert!(t.contains("没有在您的账户下找到"), "{r}");
        assert!(
            !t.contains("已签收") && !t.contains("已发货") && !t.contains("Carol"),
            "{r}"
        );
    }
    // Naming the Taobao order linked Bob's Taobao identity (order-sync confirmed it by phone):
    // his next message on Taobao continues the same conversation.
    let customer = zh["customer_id"].as_str().expect("customer").to_owned();
    let c = mesh
        .session_client()
        .await
        .get_customer(mesh.authed(GetCustomerRequest {
            shop_id: SHOP.into(),
            customer_id: customer.clone(),
        }))
        .await
        .expect("customer")
        .into_inner();
    let channels: HashSet<String> = c
        .customer
        .expect("customer")
        .identities
        .into_iter()
        .map(|i| format!("{}:{}", i.channel, i.channel_user_id))
        .collect();
    assert!(channels.contains("taobao:tb_bob"), "{channels:?}");
    let tb = ask(
        &mesh,
        "taobao",
        "tb_bob",
        "",
        "t1",
        "订单20261101002能改收货地址吗",
    )
    .await;
    assert_eq!(tb["customer_id"], customer.as_str());
    assert_eq!(tb["conversation_id"], zh["conversation_id"]);
    assert!(text(&tb).contains("尚未发货"), "paid, not shipped: {tb}");

    // Alice: one open order, asked without a number, in English, from the web with her phone.
    let alice = ask(
        &mesh,
        "web",
        "alice-web",
        alice_phone,
        "a1",
        "Where is my order?",
    )
    .await;
    let t = text(&alice);
    assert!(
        t.contains("20261120001") && t.contains("shipped") && t.contains("SF1400000000001"),
        "{alice}"
    );

    // Dave (CSV) asks in Chinese about his delivered order without a number.
    let dave_reply = ask(&mesh, "web", "web-dave", "", "d1", "我的订单到哪了").await;
    let t = text(&dave_reply);
    assert!(
        t.contains("已签收") && t.contains("ZT1600000000001"),
        "{dave_reply}"
    );

    // Cancelling a shipped order: the bot cannot, a person takes over with the order attached.
    let cancel = ask(
        &mesh,
        "wechat",
        "wx-bob",
        bob_phone,
        "b7",
        "please cancel order 20261101003",
    )
    .await;
    assert_eq!(cancel["reply"]["source"], "system", "{cancel}");
    assert!(text(&cancel).contains("20261101003"), "{cancel}");
    let ticket = mesh
        .ticket_client()
        .await
        .get_ticket(GetTicketRequest {
            shop_id: SHOP.into(),
            ticket_id: cancel["reply"]["ticket_id"]
                .as_str()
                .expect("ticket")
                .into(),
        })
        .await
        .expect("ticket")
        .into_inner()
        .ticket
        .expect("ticket");
    assert_eq!(
        ticket.order_id, "20261101003",
        "the order is attached to the ticket"
    );

    // 5. Changes were published on the commerce topics.
    let mut seen_orders = HashSet::new();
    let mut seen_parcels = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(seen_orders.contains("20261120001")
        && seen_orders.contains("20261102001")
        && seen_parcels.contains("SF1500000000003"))
    {
        let m = match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(m)) => m,
            other => panic!("commerce events: {other:?}; saw {seen_orders:?} {seen_parcels:?}"),
        };
        let payload = m.payload().unwrap_or_default();
        if m.topic() == orders_topic {
            let e = OrderChanged::decode(payload).expect("OrderChanged");
            seen_orders.insert(e.order.expect("order").order_id);
        } else {
            let e = ShipmentChanged::decode(payload).expect("ShipmentChanged");
            seen_parcels.insert(e.shipment.expect("shipment").tracking_number);
        }
    }
    assert!(
        !seen_orders.contains("20261120999"),
        "the mis-signed order was never published"
    );
}

fn mesh_file(mesh: &Mesh, name: &str, content: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("{}{name}", mesh.prefix));
    std::fs::write(&p, content).expect("write");
    p
}
