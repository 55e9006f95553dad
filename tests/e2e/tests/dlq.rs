//! An undecodable event on any consumed topic goes to that topic's `.dlq` with the failure
//! recorded, and the consumer moves on. A rejected event is dead-lettered at once; once the
//! data it needed is repaired, `kefu dlq replay` brings it back and the customer gets exactly
//! one reply, however often the replay is run.
use std::{collections::HashMap, time::Duration};

use kefu_e2e::{Mesh, SHOP, brokers};
use kefu_proto::{
    events::v1::{Classification, EventMeta, MessageEvent},
    session::v1::{SendRequest, SubscribeRequest},
};
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
            conversation_id: sent.conversation_id.clone(),
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

    // A poison event: classified, for a message session-router does not have (its row was
    // lost, say, in a restore). It is rejected and dead-lettered at once, not retried.
    let lost = "msg_restored_0001";
    let event = MessageEvent {
        meta: Some(EventMeta {
            event_id: uuid::Uuid::new_v4().to_string(),
            shop_id: SHOP.into(),
            occurred_at: Some(kefu_runtime::event::timestamp(chrono::Utc::now())),
            causation_id: String::new(),
            message_id: lost.into(),
            conversation_id: sent.conversation_id.clone(),
        }),
        customer_id: sent.customer_id.clone(),
        channel: "web".into(),
        channel_user_id: "after-dlq".into(),
        channel_message_id: "after-dlq-2".into(),
        text: "hello again".into(),
        language: "en".into(),
        language_confidence: 0.9,
        working_text: "hello again".into(),
        classification: Some(Classification {
            intent: "greeting".into(),
            confidence: 0.95,
            entities: vec![],
            model: "test".into(),
        }),
        ..Default::default()
    };
    let produced_at = std::time::Instant::now();
    producer
        .send(
            FutureRecord::to(&mesh.topic(topics::CLASSIFIED))
                .key(&sent.conversation_id)
                .payload(&prost::Message::encode_to_vec(&event)),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
    let letter = loop {
        let (ok, out, err) =
            mesh.kefu(&["dlq", "list", "--topic", topics::CLASSIFIED, "--shop", SHOP]);
        assert!(ok, "{out}{err}");
        if let Some(line) = out.lines().find(|l| l.contains("unknown message")) {
            break line.to_owned();
        }
        assert!(
            produced_at.elapsed() < Duration::from_secs(30),
            "not dead-lettered: {out}\n{}",
            mesh.log_tail("session-router")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        produced_at.elapsed() < Duration::from_secs(15),
        "dead-lettered at once, not after retries"
    );
    assert!(
        letter.contains("rejected") && letter.contains("pending"),
        "{letter}"
    );
    // Filters: another shop's, and letters older than the future, list none of them.
    let (_, other, _) = mesh.kefu(&[
        "dlq",
        "list",
        "--topic",
        topics::CLASSIFIED,
        "--shop",
        "shop-x",
    ]);
    assert!(other.contains("0 dead letter(s)"), "{other}");

    // The data is repaired: the message row is restored.
    let db = kefu_runtime::db::connect(mesh.session_db_url())
        .await
        .expect("db");
    {
        use kefu_session_router::entity::message;
        use sea_orm::{ActiveValue::Set, EntityTrait};
        message::Entity::insert(message::ActiveModel {
            message_id: Set(lost.into()),
            shop_id: Set(SHOP.into()),
            channel: Set("web".into()),
            channel_user_id: Set("after-dlq".into()),
            channel_message_id: Set("after-dlq-2".into()),
            conversation_id: Set(sent.conversation_id.clone()),
            customer_id: Set(sent.customer_id.clone()),
            text: Set("hello again".into()),
            created_at: Set(chrono::Utc::now()),
            published: Set(true),
            route: Set(String::new()),
            route_reason: Set(String::new()),
            intent: Set(String::new()),
            traceparent: Set(String::new()),
        })
        .exec_without_returning(&db)
        .await
        .expect("restore the row");
    }
    let (ok, dry, err) = mesh.kefu(&[
        "dlq",
        "replay",
        "--topic",
        topics::CLASSIFIED,
        "--shop",
        SHOP,
        "--dry-run",
    ]);
    assert!(ok && dry.contains("1 to replay"), "{dry}{err}");
    let (ok, out, err) = mesh.kefu(&[
        "dlq",
        "replay",
        "--topic",
        topics::CLASSIFIED,
        "--shop",
        SHOP,
    ]);
    assert!(ok && out.contains("replayed 1, skipped 0"), "{out}{err}");
    // The customer gets the reply, exactly once, however often the replay runs.
    let reply = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let r = stream
                .next()
                .await
                .expect("stream")
                .expect("ok")
                .reply
                .expect("reply");
            if r.message_id == lost {
                return r;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no reply after the replay\n{}", mesh.logs()));
    assert_eq!(reply.conversation_id, sent.conversation_id);
    let (ok, again, err) = mesh.kefu(&[
        "dlq",
        "replay",
        "--topic",
        topics::CLASSIFIED,
        "--shop",
        SHOP,
    ]);
    assert!(
        ok && again.contains("replayed 0, skipped 1"),
        "{again}{err}"
    );
    let (_, listed, _) = mesh.kefu(&["dlq", "list", "--topic", topics::CLASSIFIED, "--shop", SHOP]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains("unknown message") && l.contains("replayed")),
        "{listed}"
    );
    let more = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    assert!(more.is_err(), "a second reply arrived: {more:?}");
    let mut fresh = client
        .subscribe(mesh.authed(SubscribeRequest {
            shop_id: SHOP.into(),
            conversation_id: sent.conversation_id.clone(),
            after_cursor: 0,
            channel: String::new(),
        }))
        .await
        .expect("subscribe")
        .into_inner();
    let mut replies_to_lost = 0;
    while let Ok(Some(Ok(item))) = tokio::time::timeout(Duration::from_secs(2), fresh.next()).await
    {
        if item.reply.is_some_and(|r| r.message_id == lost) {
            replies_to_lost += 1;
        }
    }
    assert_eq!(
        replies_to_lost, 1,
        "exactly one reply to the replayed message"
    );
}
