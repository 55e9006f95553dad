//! A customer message's trace starts where it enters Kefu — gRPC `Send` or `POST
//! /v1/messages` — as a child of the caller's W3C `traceparent` when there is one, and the same
//! trace id travels with the message's events through the mesh to its reply.
use std::{collections::HashMap, time::Duration};

use kefu_e2e::{Mesh, SHOP, backends::PrivateBroker, brokers};
use kefu_proto::session::v1::SendRequest;
use kefu_runtime::kafka::topics;
use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
    message::Headers,
};
use tonic::metadata::MetadataValue;

const GRPC_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const HTTP_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const RELAY_TRACE: &str = "5cf92f3577b34da6a3ce929d0e0e4799";

/// The trace id of a `traceparent` (`00-<trace id>-<span id>-<flags>`).
fn trace_id(traceparent: &str) -> &str {
    traceparent.split('-').nth(1).unwrap_or("")
}

#[tokio::test]
async fn a_message_trace_starts_at_the_ingress_and_reaches_the_reply() {
    let mesh = Mesh::start("traces").await;
    let mut client = mesh.session_client().await;

    // gRPC Send with the caller's trace context in metadata.
    let mut req = mesh.authed(SendRequest {
        shop_id: SHOP.into(),
        channel: "web".into(),
        channel_user_id: "tracy".into(),
        channel_message_id: "t-1".into(),
        text: "where is my order 202611110001".into(),
        ..Default::default()
    });
    req.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(format!("00-{GRPC_TRACE}-00f067aa0ba902b7-01")).unwrap(),
    );
    let with_parent = client.send(req).await.expect("send").into_inner();

    // gRPC Send without one: Kefu starts the trace.
    let without_parent = client
        .send(mesh.authed(SendRequest {
            shop_id: SHOP.into(),
            channel: "web".into(),
            channel_user_id: "rooty".into(),
            channel_message_id: "t-2".into(),
            text: "hello".into(),
            ..Default::default()
        }))
        .await
        .expect("send")
        .into_inner();

    // HTTP POST with a traceparent header.
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/messages", mesh.http_url()))
        .header("authorization", format!("Bearer {}", mesh.api_key))
        .header(
            "traceparent",
            format!("00-{HTTP_TRACE}-b7ad6b7169203331-01"),
        )
        .json(&serde_json::json!({
            "shop_id": SHOP, "channel": "web", "channel_user_id": "posty",
            "channel_message_id": "t-3", "text": "hi", "wait_ms": 0
        }))
        .timeout(Duration::from_secs(40))
        .send()
        .await
        .expect("POST /v1/messages");
    assert!(resp.status().is_success(), "{}", resp.status());
    let posted: serde_json::Value = resp.json().await.expect("JSON");
    let posted_conversation = posted["conversation_id"]
        .as_str()
        .unwrap_or_else(|| panic!("conversation_id in {posted}"))
        .to_owned();

    // Read the inbound topic and the replies topic: (topic, conversation) → traceparent.
    let inbound = mesh.topic(topics::INBOUND);
    let replies = mesh.topic(topics::REPLIES);
    let want = [
        (inbound.clone(), with_parent.conversation_id.clone()),
        (inbound.clone(), without_parent.conversation_id.clone()),
        (inbound.clone(), posted_conversation.clone()),
        (replies.clone(), with_parent.conversation_id.clone()),
    ];
    let seen = traceparents(&mesh, &brokers(), &want).await;
    let tp = |topic: &str, conversation: &str| {
        seen[&(topic.to_owned(), conversation.to_owned())].clone()
    };
    assert_eq!(
        trace_id(&tp(&inbound, &with_parent.conversation_id)),
        GRPC_TRACE,
        "Send continues the caller's trace"
    );
    assert_eq!(
        trace_id(&tp(&replies, &with_parent.conversation_id)),
        GRPC_TRACE,
        "the reply belongs to the message's trace"
    );
    assert_eq!(
        trace_id(&tp(&inbound, &posted_conversation)),
        HTTP_TRACE,
        "POST continues the caller's trace"
    );
    let own = tp(&inbound, &without_parent.conversation_id);
    let own_id = trace_id(&own);
    assert_eq!(own_id.len(), 32, "Kefu starts a trace at Send: {own:?}");
    assert!(own_id != GRPC_TRACE && own_id != HTTP_TRACE && own_id != "0".repeat(32));
}

/// The first `traceparent` header of each (topic, key) in `want`, read from the start of the
/// topics.
async fn traceparents(
    mesh: &Mesh,
    brokers: &str,
    want: &[(String, String)],
) -> HashMap<(String, String), String> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("{}trace-reader-{}", mesh.prefix, want.len()),
        )
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let mut topics: Vec<&str> = want.iter().map(|(t, _)| t.as_str()).collect();
    topics.sort();
    topics.dedup();
    consumer.subscribe(&topics).expect("subscribe");
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !want.iter().all(|k| seen.contains_key(k)) {
        let m = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => panic!("consume: {e}"),
            Err(_) => panic!("seen only {seen:?}\n{}", mesh.logs()),
        };
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        let traceparent = m
            .headers()
            .and_then(|h| {
                h.iter()
                    .find(|x| x.key == "traceparent")
                    .and_then(|x| x.value.map(|v| String::from_utf8_lossy(v).into_owned()))
            })
            .unwrap_or_default();
        seen.entry((m.topic().to_owned(), key))
            .or_insert(traceparent);
    }
    seen
}

/// A message stored while the broker is down, by a session-router that then dies (so nothing
/// of it waits in librdkafka's queue), is published by the next one's outbox relay, still in
/// the trace of the `Send` that stored it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_relay_publishes_keeps_its_trace() {
    let mut broker = PrivateBroker::start("traces-relay");
    let mut mesh = Mesh::start_on("traces-relay", Some(&broker), None).await;
    let mut client = mesh.session_client().await;
    broker.kill();
    let mut req = mesh.authed(SendRequest {
        shop_id: SHOP.into(),
        channel: "web".into(),
        channel_user_id: "later".into(),
        channel_message_id: "r-1".into(),
        text: "hello".into(),
        ..Default::default()
    });
    req.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(format!("00-{RELAY_TRACE}-00f067aa0ba902b7-01")).unwrap(),
    );
    let status = client.send(req).await.expect_err("the broker is down");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    mesh.kill("session-router").await;
    broker.restart();
    mesh.restart("session-router").await;
    // The broker is the test's own: the one event on its inbound topic is the stored message.
    let tp = first_traceparent(&mesh, &broker.brokers(), &mesh.topic(topics::INBOUND)).await;
    assert_eq!(
        trace_id(&tp),
        RELAY_TRACE,
        "re-published in the Send's trace: {tp}"
    );
}

/// The `traceparent` of the first event on `topic`.
async fn first_traceparent(mesh: &Mesh, brokers: &str, topic: &str) -> String {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{}first-reader", mesh.prefix))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let m = tokio::time::timeout(Duration::from_secs(90), consumer.recv())
        .await
        .unwrap_or_else(|_| panic!("nothing on {topic}\n{}", mesh.logs()))
        .expect("consume");
    m.headers()
        .and_then(|h| {
            h.iter()
                .find(|x| x.key == "traceparent")
                .and_then(|x| x.value.map(|v| String::from_utf8_lossy(v).into_owned()))
        })
        .unwrap_or_default()
}
