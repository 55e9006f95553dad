//! SIGKILL any one service while messages flow, restart it: no message is lost and every
//! message gets exactly one reply.
use std::{collections::HashMap, time::Duration};

use kefu_e2e::{Mesh, SHOP};
use kefu_proto::session::v1::{SendRequest, SubscribeRequest};
use tokio_stream::StreamExt;

const TEXTS: &[&str] = &[
    "Where is my parcel? tracking please",
    "转人工",
    "我要退货",
    "Do you have a coupon for the presale?",
    "I was charged twice for my payment",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_any_service_loses_nothing_and_answers_each_message_once() {
    let mut mesh = Mesh::start("crash").await;
    let mut sent: Vec<String> = Vec::new();
    let mut n = 0usize;
    let victims = [
        "translation",
        "intent-classifier",
        "session-router",
        "assistant",
        "ticket",
        "order-sync",
        "metrics",
    ];
    for victim in victims {
        let mut client = mesh.session_client().await;
        for _ in 0..4 {
            n += 1;
            let r = client
                .send(mesh.authed(SendRequest {
                    shop_id: SHOP.into(),
                    channel: "web".into(),
                    channel_user_id: format!("user-{n}"),
                    channel_message_id: format!("m-{n}"),
                    text: TEXTS[n % TEXTS.len()].into(),
                    ..Default::default()
                }))
                .await
                .unwrap_or_else(|s| panic!("send: {s:?}\n{}", mesh.logs()))
                .into_inner();
            sent.push(r.message_id);
        }
        // Kill while those messages are in flight somewhere in the pipeline.
        mesh.kill(victim).await;
        if victim != "session-router" {
            for _ in 0..3 {
                n += 1;
                let r = client
                    .send(mesh.authed(SendRequest {
                        shop_id: SHOP.into(),
                        channel: "wechat".into(),
                        channel_user_id: format!("user-{n}"),
                        channel_message_id: format!("m-{n}"),
                        text: TEXTS[n % TEXTS.len()].into(),
                        ..Default::default()
                    }))
                    .await
                    .expect("send while a downstream service is down")
                    .into_inner();
                sent.push(r.message_id);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        mesh.restart(victim).await;
    }

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
    let mut counts: HashMap<String, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    while counts.len() < sent.len() {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(item))) => {
                *counts
                    .entry(item.reply.expect("reply").message_id)
                    .or_default() += 1;
            }
            _ => break,
        }
    }
    // Listen a little longer: late duplicates would show up here.
    let settle = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(Ok(item))) = tokio::time::timeout_at(settle, stream.next()).await {
        *counts
            .entry(item.reply.expect("reply").message_id)
            .or_default() += 1;
    }
    let missing: Vec<&String> = sent.iter().filter(|m| !counts.contains_key(*m)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} messages never answered: {missing:?}\n{}",
        missing.len(),
        sent.len(),
        mesh.logs()
    );
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "answered more than once: {twice:?}");
    assert_eq!(
        counts.len(),
        sent.len(),
        "replies for unknown messages: {counts:?}"
    );
}
