//! An undecodable event on any consumed topic goes to that topic's `.dlq` with the failure
//! recorded, and the consumer moves on.
use std::{collections::HashMap, time::Duration};

use kefu_e2e::{Mesh, SHOP, brokers};
use kefu_proto::session::v1::{SendRequest, SubscribeRequest};
use kefu_runtime::kafka::{headers, topics};
use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
    message::Headers,
    producer::{FutureProducer, FutureRecord},
};
use tokio_stream::StreamExt;

const CONSUMED: &[&str] = &[
    topics::INBOUND,
    topics::NORMALIZED,
    topics::CLASSIFIED,
    topics::ASSIST_REQUESTS,
    topics::ESCALATIONS,
    topics::OUTBOUND,
    topics::REPLIES,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_events_are_dead_lettered_and_consumers_move_on() {
    let mesh = Mesh::start("dlq").await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("producer");
    for t in CONSUMED {
        // 0xff is an invalid protobuf tag/wire type: undecodable for every event type.
        producer
            .send(
                FutureRecord::to(&mesh.topic(t))
                    .key("garbage")
                    .payload(&[0xffu8, 0xff, 0xff, 0x01][..]),
                Duration::from_secs(10),
            )
            .await
            .expect("produce garbage");
    }
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("{}dlq-reader", mesh.prefix))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let dlqs: Vec<String> = CONSUMED
        .iter()
        .map(|t| format!("{}{}", mesh.topic(t), topics::DLQ_SUFFIX))
        .collect();
    consumer
        .subscribe(&dlqs.iter().map(String::as_str).collect::<Vec<_>>())
        .expect("subscribe");
    let mut seen: HashMap<String, HashMap<String, String>> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while seen.len() < CONSUMED.len() {
        let m = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => panic!("consume: {e}"),
            Err(_) => panic!(
                "dead letters seen only for {:?}\n{}",
                seen.keys(),
                mesh.logs()
            ),
        };
        let hs: HashMap<String, String> = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x| {
                        (
                            x.key.to_owned(),
                            String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            m.payload(),
            Some(&[0xffu8, 0xff, 0xff, 0x01][..]),
            "original payload kept"
        );
        seen.insert(hs[headers::DLQ_TOPIC].clone(), hs);
    }
    for t in CONSUMED {
        let hs = &seen[&mesh.topic(t)];
        assert_eq!(hs[headers::DLQ_ERROR_KIND], "undecodable", "{t}: {hs:?}");
        assert!(!hs[headers::DLQ_ERROR].is_empty());
        assert!(hs[headers::DLQ_OFFSET].parse::<i64>().is_ok());
        assert!(hs[headers::DLQ_GROUP].starts_with(&mesh.prefix));
    }

    // Every consumer moved on: a real message still gets its reply.
    let mut client = mesh.session_client().await;
    let sent = client
        .send(mesh.authed(SendRequest {
            shop_id: SHOP.into(),
            channel: "web".into(),
            channel_user_id: "after-dlq".into(),
            channel_message_id: "after-dlq-1".into(),
            text: "hello".into(),
            ..Default::default()
        }))
        .await
        .expect("send")
        .into_inner();
    let mut stream = client
        .subscribe(mesh.authed(SubscribeRequest {
            shop_id: SHOP.into(),
            conversation_id: sent.conversation_id,
            after_cursor: 0,
            channel: String::new(),
        }))
        .await
        .expect("subscribe")
        .into_inner();
    let r = tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .unwrap_or_else(|_| panic!("no reply after dead-lettering\n{}", mesh.logs()))
        .expect("item")
        .expect("ok")
        .reply
        .expect("reply");
    assert_eq!(r.message_id, sent.message_id);
}
