//! SIGKILL any one service while messages flow, restart it: no message is lost and every
//! message gets exactly one reply.
use std::time::Duration;

use kefu_e2e::{Mesh, SHOP};
use kefu_proto::session::v1::SendRequest;

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

    let expected = sent.iter().cloned().collect();
    let counts = mesh
        .replies_per_message(&expected, Duration::from_secs(150))
        .await;
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
