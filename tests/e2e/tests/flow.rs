//! The whole path through Kafka: gRPC Send → inbound → translation → intent-classifier →
//! session-router policy → assistant / ticket → translation → session-router → Subscribe.
use std::{collections::HashMap, time::Duration};

use kefu_e2e::{Mesh, SHOP};
use kefu_proto::session::v1::{Reply, SendRequest, SubscribeRequest};
use tokio_stream::StreamExt;

fn send(user: &str, id: &str, text: &str) -> SendRequest {
    SendRequest {
        shop_id: SHOP.into(),
        channel: "web".into(),
        channel_user_id: user.into(),
        channel_message_id: id.into(),
        text: text.into(),
        ..Default::default()
    }
}

/// Collects replies from cursor 0 until `want` distinct messages are answered (or timeout),
/// then keeps listening for `settle` to catch duplicates.
pub async fn collect(mesh: &Mesh, want: usize, timeout: Duration, settle: Duration) -> Vec<Reply> {
    let mut client = mesh.session_client().await;
    let mut stream = client
        .subscribe(mesh.authed(SubscribeRequest {
            shop_id: SHOP.into(),
            conversation_id: String::new(),
            after_cursor: 0,
            channel: String::new(),
        }))
        .await
        .expect("subscribe")
        .into_inner();
    let mut replies: Vec<Reply> = Vec::new();
    let mut answered = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while answered.len() < want {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(item))) => {
                let r = item.reply.expect("reply");
                answered.insert(r.message_id.clone());
                replies.push(r);
            }
            Ok(other) => panic!("stream ended: {other:?}\n{}", mesh.logs()),
            Err(_) => break,
        }
    }
    let settle_end = tokio::time::Instant::now() + settle;
    while let Ok(Some(Ok(item))) = tokio::time::timeout_at(settle_end, stream.next()).await {
        replies.push(item.reply.expect("reply"));
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_through_every_service_and_replies_arrive_on_subscribe() {
    let mesh = Mesh::start("flow").await;
    let mut client = mesh.session_client().await;
    let cases = [
        (
            "alice",
            "a-1",
            "Where is my parcel? The tracking has not moved for days",
        ),
        ("bob", "b-1", "我要退货退款"),
        ("carol", "c-1", "I want to talk to a real person please"),
        ("dave", "d-1", "hello"),
    ];
    let mut ids = HashMap::new();
    for (user, id, text) in cases {
        let r = client
            .send(mesh.authed(send(user, id, text)))
            .await
            .unwrap_or_else(|s| panic!("send: {s:?}\n{}", mesh.logs()))
            .into_inner();
        assert!(!r.duplicate);
        assert!(r.message_id.starts_with("msg_"));
        ids.insert(id, r.message_id);
    }
    // The same channel message again creates nothing new.
    let dup = client
        .send(mesh.authed(send(
            "alice",
            "a-1",
            "Where is my parcel? The tracking has not moved for days",
        )))
        .await
        .expect("resend")
        .into_inner();
    assert!(dup.duplicate);
    assert_eq!(dup.message_id, ids["a-1"]);

    let replies = collect(
        &mesh,
        cases.len(),
        Duration::from_secs(60),
        Duration::from_secs(3),
    )
    .await;
    let by_msg: HashMap<&str, &Reply> =
        replies.iter().map(|r| (r.message_id.as_str(), r)).collect();
    assert_eq!(
        replies.len(),
        cases.len(),
        "exactly one reply per message: {replies:#?}\n{}",
        mesh.logs()
    );
    let alice = by_msg[ids["a-1"].as_str()];
    assert_eq!(
        (alice.source.as_str(), alice.intent.as_str()),
        ("bot", "shipping_delay"),
        "{alice:?}"
    );
    let bob = by_msg[ids["b-1"].as_str()];
    assert_eq!(bob.intent, "return_exchange");
    assert_eq!(
        bob.language, "zh",
        "answered in the customer's language: {bob:?}"
    );
    let carol = by_msg[ids["c-1"].as_str()];
    assert_eq!(carol.source, "system");
    assert!(
        carol.ticket_id.starts_with("T-"),
        "escalated to a ticket: {carol:?}"
    );
    assert!(by_msg[ids["d-1"].as_str()].text.contains("Hello"));
    // Cursors strictly increase.
    assert!(replies.windows(2).all(|w| w[0].cursor < w[1].cursor));

    // Resuming after the last cursor yields nothing old.
    let last = replies.last().expect("replies").cursor;
    let mut stream = client
        .subscribe(mesh.authed(SubscribeRequest {
            shop_id: SHOP.into(),
            conversation_id: String::new(),
            after_cursor: last,
            channel: String::new(),
        }))
        .await
        .expect("subscribe")
        .into_inner();
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), stream.next())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    let mut mesh = Mesh::start("drain").await;
    for s in ["translation", "session-router"] {
        let status = mesh.terminate(s).await;
        assert!(
            status.success(),
            "{s} exit status {status:?}\n{}",
            mesh.log_tail(s)
        );
        assert!(mesh.log_tail(s).contains("drained"), "{}", mesh.log_tail(s));
    }
}
