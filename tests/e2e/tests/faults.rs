//! The fault suite: under a steady load of a few messages per second, (a) PostgreSQL restarts,
//! (b) the broker crashes and stays down for 60 s, (c) each service is SIGKILLed in turn.
//! Afterwards every accepted message has exactly one reply, nothing is in any dead-letter
//! topic, and no reply was delivered twice. While the broker is down the services say so:
//! their readiness is NOT_SERVING, and SERVING again once it is back.
//!
//! The broker and PostgreSQL are the test's own (`backends`): the other tests keep theirs.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use kefu_e2e::{
    Mesh, SERVICES, SHOP,
    backends::{PrivateBroker, PrivatePostgres},
};
use kefu_runtime::kafka::{KafkaConfig, dlq, topics};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const TEXTS: &[&str] = &[
    "Where is my parcel? tracking please",
    "转人工",
    "我要退货",
    "hello",
    "I was charged twice for my payment",
];

/// Accepted messages: channel message id → (Kefu message id, seconds into the load when the
/// first attempt was made).
type Accepted = Arc<Mutex<HashMap<String, (String, u64)>>>;

/// Sends `rate` messages per second, each from a new customer, each retried with the same
/// idempotency key until the mesh accepts it (2xx), whatever is down meanwhile.
fn load(
    mesh: &Mesh,
    rate: u64,
    stop: CancellationToken,
) -> (Accepted, tokio::task::JoinHandle<u64>) {
    let accepted: Accepted = Arc::default();
    let (url, key, acc) = (mesh.http_url(), mesh.api_key.clone(), accepted.clone());
    let task = tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("client");
        let mut tasks = tokio::task::JoinSet::new();
        let mut n = 0u64;
        let started = std::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / rate));
        while !stop.is_cancelled() {
            tick.tick().await;
            n += 1;
            let (client, url, key, acc) = (client.clone(), url.clone(), key.clone(), acc.clone());
            let at = started.elapsed().as_secs();
            tasks.spawn(async move {
                let id = format!("f-{n}");
                let body = json!({"shop_id": SHOP, "channel": "web", "channel_user_id": format!("fault-user-{n}"),
                    "channel_message_id": id, "text": TEXTS[n as usize % TEXTS.len()]});
                loop {
                    let r = client
                        .post(format!("{url}/v1/messages"))
                        .bearer_auth(&key)
                        .json(&body)
                        .send()
                        .await;
                    if let Ok(r) = r
                        && r.status().is_success()
                        && let Ok(v) = r.json::<serde_json::Value>().await
                        && let Some(m) = v["message_id"].as_str()
                    {
                        acc.lock().unwrap().insert(id, (m.to_owned(), at));
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        n
    });
    (accepted, task)
}

async fn all_ready(mesh: &Mesh, ready: bool, within: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut states = Vec::new();
        for s in SERVICES {
            states.push((*s, mesh.ready(s).await));
        }
        if states
            .iter()
            // order-sync answers webhooks through its outbox and knowledge never touches
            // the broker: neither has a consumer whose readiness follows the broker.
            .filter(|(s, _)| !matches!(*s, "order-sync" | "knowledge"))
            .all(|(_, r)| *r == Some(ready))
        {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("readiness never became {ready}: {states:?}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_restarts_and_crashes_lose_nothing_and_answer_once() {
    let t0 = std::time::Instant::now();
    let phase = |what: &str| eprintln!("[faults +{:>4}s] {what}", t0.elapsed().as_secs());
    let pg = PrivatePostgres::start("faults");
    let mut broker = PrivateBroker::start("faults");
    let mut mesh = Mesh::start_on("faults", Some(&broker), Some(&pg)).await;
    let stop = CancellationToken::new();
    let (accepted, generator) = load(&mesh, 3, stop.clone());
    phase("load running");
    tokio::time::sleep(Duration::from_secs(8)).await;

    // (a) PostgreSQL restarts (session-router's and order-sync's database).
    let pg = tokio::task::spawn_blocking(move || {
        pg.restart();
        pg
    })
    .await
    .expect("restart PostgreSQL");
    phase("PostgreSQL restarted");
    tokio::time::sleep(Duration::from_secs(10)).await;

    // (b) The broker crashes and stays away for 60 s; the services notice and say so.
    broker.kill();
    phase("broker killed");
    let down = tokio::time::Instant::now();
    all_ready(&mesh, false, Duration::from_secs(45))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", mesh.logs()));
    phase("every service NOT_SERVING");
    // A connector's webhook is answered at once while the broker is away (the outbox
    // publishes later); Shopify and the like retry requests that take seconds.
    let scan =
        json!({"format": "kefu.tracking.v1", "carrier": "SF", "tracking_number": "SF7000000000001",
        "status": "in_transit", "location": "杭州", "at": chrono::Utc::now().to_rfc3339()})
        .to_string();
    let asked = std::time::Instant::now();
    let r = reqwest::Client::new()
        .post(format!(
            "{}/v1/connectors/tracking/{SHOP}",
            mesh.orders_url()
        ))
        .header(
            "x-kefu-signature",
            kefu_session_router::webhook::sign(kefu_e2e::WEBHOOK_SECRET, scan.as_bytes()),
        )
        .header("content-type", "application/json")
        .body(scan)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("webhook answered");
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "the webhook waited {:?} for the broker",
        asked.elapsed()
    );
    tokio::time::sleep_until(down + Duration::from_secs(60)).await;
    broker.restart();
    phase("broker restarted");
    all_ready(&mesh, true, Duration::from_secs(90))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", mesh.logs()));
    phase("every service SERVING again");

    // (c) Each service SIGKILLed in turn, restarted after a moment.
    for victim in SERVICES {
        mesh.kill(victim).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        mesh.restart(victim).await;
        phase(&format!("{victim} killed and restarted"));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop.cancel();
    let generated = generator.await.expect("load");
    phase(&format!("load stopped: {generated} messages, all accepted"));
    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(
        accepted.len() as u64,
        generated,
        "every message accepted in the end"
    );
    assert!(generated > 150, "steady load: only {generated} messages");

    // Every accepted message: exactly one reply.
    let expected = accepted.values().map(|(m, _)| m.clone()).collect();
    let counts = mesh
        .replies_per_message(&expected, Duration::from_secs(240))
        .await;
    let missing: Vec<(&String, u64)> = accepted
        .values()
        .filter(|(m, _)| !counts.contains_key(m))
        .map(|(m, at)| (m, *at))
        .collect();
    if !missing.is_empty() {
        // When in the run they were sent, and where they stopped.
        let mut buckets: std::collections::BTreeMap<u64, usize> = Default::default();
        for (_, at) in &missing {
            *buckets.entry(at / 10 * 10).or_default() += 1;
        }
        let db = kefu_runtime::db::connect(mesh.session_db_url())
            .await
            .expect("db");
        let mut rows = Vec::new();
        for (m, _) in missing.iter().take(5) {
            use sea_orm::EntityTrait;
            let row = kefu_session_router::entity::message::Entity::find_by_id(m.to_string())
                .one(&db)
                .await
                .expect("row");
            rows.push(format!("{row:?}"));
        }
        panic!(
            "{} of {} accepted messages never answered; by second sent: {buckets:?}\n{}\n{}",
            missing.len(),
            accepted.len(),
            rows.join("\n"),
            mesh.logs()
        );
    }
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");

    // Nothing in any dead-letter topic.
    let cfg = KafkaConfig::new(broker.brokers(), mesh.prefix.clone(), 1);
    for t in topics::ALL {
        let letters = dlq::list(&cfg, t, &dlq::Filter::default())
            .await
            .expect("read dead letters");
        assert!(letters.is_empty(), "{t}: {letters:#?}");
    }
    assert!(!broker.panicked(), "the broker panicked");
    // The scan accepted while the broker was away was published once it was back.
    let orders = kefu_runtime::db::connect(mesh.order_db_url())
        .await
        .expect("order-sync db");
    use sea_orm::ConnectionTrait;
    let row = orders
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "select count(*) as n from commerce_events where not published",
        ))
        .await
        .expect("count")
        .expect("row");
    assert_eq!(
        row.try_get::<i64>("", "n").expect("n"),
        0,
        "order-sync's outbox drained"
    );
    // What the supervisors did (for the record; the assertions above are what matters).
    for s in SERVICES {
        let log = std::fs::read_to_string(mesh.dir.join(format!("{s}.log"))).unwrap_or_default();
        for line in log
            .lines()
            .filter(|l| l.contains("restarting the Kafka consumer"))
        {
            phase(&format!(
                "{s}: {}",
                line.split("reason=").nth(1).unwrap_or(line)
            ));
        }
    }
    drop(mesh);
    drop(pg);
}
