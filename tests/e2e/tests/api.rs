//! The public APIs: HTTP `POST /v1/messages` with `wait_ms`, idempotency, and clear errors on
//! bad input (HTTP 4xx JSON bodies, gRPC statuses with field violations).
use std::time::Duration;

use kefu_e2e::{Mesh, SHOP};
use kefu_proto::session::v1::{SendRequest, SubscribeRequest};
use serde_json::{Value, json};
use tonic::{Code, Request, metadata::MetadataValue};
use tonic_types::StatusExt;

async fn post(mesh: &Mesh, key: Option<&str>, body: String) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/messages", mesh.http_url()))
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(40))
        .body(body);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let resp = req.send().await.expect("http");
    let status = resp.status().as_u16();
    let json = resp.json::<Value>().await.expect("JSON body");
    (status, json)
}

fn fields(v: &Value) -> Vec<String> {
    v["error"]["details"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_waits_for_the_reply_and_is_idempotent() {
    let mesh = Mesh::start("http").await;
    let body = json!({
        "shop_id": SHOP, "channel": "web", "channel_user_id": "u1",
        "channel_message_id": "m1", "text": "hello", "wait_ms": 30000
    })
    .to_string();
    let (status, first) = post(&mesh, Some(&mesh.api_key), body.clone()).await;
    assert_eq!(status, 200, "{first}\n{}", mesh.logs());
    assert_eq!(first["status"], "answered");
    assert_eq!(first["duplicate"], false);
    assert!(
        first["reply"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Hello"),
        "{first}"
    );

    let (status, again) = post(&mesh, Some(&mesh.api_key), body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["message_id"], first["message_id"]);
    assert_eq!(again["reply"]["reply_id"], first["reply"]["reply_id"]);

    // No second reply was produced for the duplicate.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut client = mesh.session_client().await;
    let mut stream = client
        .subscribe(mesh.authed(SubscribeRequest {
            shop_id: SHOP.into(),
            conversation_id: first["conversation_id"].as_str().expect("conv").into(),
            after_cursor: 0,
            channel: String::new(),
        }))
        .await
        .expect("subscribe")
        .into_inner();
    let mut n = 0;
    while let Ok(Some(Ok(_))) = tokio::time::timeout(
        Duration::from_millis(1500),
        tokio_stream::StreamExt::next(&mut stream),
    )
    .await
    {
        n += 1;
    }
    assert_eq!(n, 1, "one message, one reply");

    // Another customer whose widget also numbers its first message "m1" is not a duplicate:
    // a message of their own, in their own conversation, with their own reply.
    let (status, other) = post(
        &mesh,
        Some(&mesh.api_key),
        json!({"shop_id": SHOP, "channel": "web", "channel_user_id": "u9",
               "channel_message_id": "m1", "text": "where is my order?", "wait_ms": 30000})
        .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{other}");
    assert_eq!(other["duplicate"], false, "{other}");
    assert_ne!(other["message_id"], first["message_id"]);
    assert_ne!(other["conversation_id"], first["conversation_id"]);
    assert_ne!(other["reply"]["reply_id"], first["reply"]["reply_id"]);
    assert_ne!(other["reply"]["text"], first["reply"]["text"], "{other}");

    // Without wait_ms the message is accepted and answered later.
    let (status, v) = post(
        &mesh,
        Some(&mesh.api_key),
        json!({"shop_id": SHOP, "channel": "web", "channel_user_id": "u2",
               "channel_message_id": "m2", "text": "我要退货"})
        .to_string(),
    )
    .await;
    assert!(status == 202 || status == 200, "{status} {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let mesh = Mesh::start("errors").await;
    let key = mesh.api_key.clone();
    let ok = |text: &str| json!({"shop_id": SHOP, "channel": "web", "channel_user_id": "u", "channel_message_id": "x", "text": text});

    let (s, v) = post(&mesh, Some(&key), ok("").to_string()).await;
    assert_eq!((s, fields(&v)), (400, vec!["text".to_string()]), "{v}");
    assert_eq!(v["error"]["code"], "invalid_argument");

    let (s, v) = post(&mesh, Some(&key), ok(&"长".repeat(5000)).to_string()).await;
    assert_eq!((s, fields(&v)), (400, vec!["text".to_string()]), "{v}");

    // The shop is the key's: naming another one is refused, never served.
    let mut unknown = ok("hi");
    unknown["shop_id"] = json!("no-such-shop");
    let (s, v) = post(&mesh, Some(&key), unknown.to_string()).await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "permission_denied");

    let (s, v) = post(&mesh, Some("kefu_wrong"), ok("hi").to_string()).await;
    assert_eq!(s, 401, "{v}");
    assert_eq!(v["error"]["code"], "unauthenticated");
    let (s, _) = post(&mesh, None, ok("hi").to_string()).await;
    assert_eq!(s, 401);

    let (s, v) = post(&mesh, Some(&key), "{not json".into()).await;
    assert_eq!((s, fields(&v)), (400, vec!["body".to_string()]), "{v}");
    let (s, v) = post(&mesh, Some(&key), json!({"text": 5}).to_string()).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = post(&mesh, Some(&key), "x".repeat(200_000)).await;
    assert_eq!((s, fields(&v)), (400, vec!["body".to_string()]), "{v}");
    let mut long_wait = ok("hi");
    long_wait["wait_ms"] = json!(3_600_000);
    let (s, v) = post(&mesh, Some(&key), long_wait.to_string()).await;
    assert_eq!((s, fields(&v)), (400, vec!["wait_ms".to_string()]), "{v}");
    let (s, v) = post(&mesh, Some(&key), json!({}).to_string()).await;
    assert_eq!(s, 400);
    assert!(fields(&v).len() >= 4, "every missing field is named: {v}");

    // gRPC: the same rules with status codes and BadRequest details.
    let mut client = mesh.session_client().await;
    let req = |text: &str, shop: &str| SendRequest {
        shop_id: shop.into(),
        channel: "web".into(),
        channel_user_id: "u".into(),
        channel_message_id: "g".into(),
        text: text.into(),
        ..Default::default()
    };
    let st = client
        .send(mesh.authed(req("", SHOP)))
        .await
        .expect_err("empty");
    assert_eq!(st.code(), Code::InvalidArgument);
    let br = st
        .get_error_details()
        .bad_request()
        .cloned()
        .expect("field violations");
    assert_eq!(br.field_violations[0].field, "text");
    let st = client
        .send(mesh.authed(req(&"a".repeat(20_000), SHOP)))
        .await
        .expect_err("long");
    assert_eq!(st.code(), Code::InvalidArgument);
    let st = client
        .send(mesh.authed(req("hi", "nope")))
        .await
        .expect_err("shop");
    assert_eq!(
        st.code(),
        Code::PermissionDenied,
        "another shop's id: {st:?}"
    );
    let mut wrong = Request::new(req("hi", SHOP));
    wrong.metadata_mut().insert(
        "authorization",
        MetadataValue::from_static("Bearer kefu_nope"),
    );
    assert_eq!(
        client.send(wrong).await.expect_err("key").code(),
        Code::Unauthenticated
    );
    assert_eq!(
        client
            .send(Request::new(req("hi", SHOP)))
            .await
            .expect_err("no key")
            .code(),
        Code::Unauthenticated
    );
    let Err(st) = client
        .subscribe(mesh.authed(SubscribeRequest {
            shop_id: SHOP.into(),
            conversation_id: String::new(),
            after_cursor: -1,
            channel: String::new(),
        }))
        .await
    else {
        panic!("negative cursor accepted");
    };
    assert_eq!(st.code(), Code::InvalidArgument);
    // A message over the server's decoding limit is refused, not processed.
    let st = client
        .send(mesh.authed(req(&"a".repeat(100_000), SHOP)))
        .await
        .expect_err("huge");
    assert_eq!(st.code(), Code::OutOfRange, "{st:?}");

    // Nothing above crashed the service.
    let (s, v) = post(&mesh, Some(&key), ok("hello").to_string()).await;
    assert!(s == 200 || s == 202, "{v}");
}
