//! `kefu-loadtest`: drives session-router's HTTP ingress with Goose at an open-loop arrival
//! rate and measures every message end to end through the reply stream (gRPC `Subscribe`).
//!
//! Arrivals follow a clock (message n is due at a fixed time: a linear ramp, then the rate),
//! and each Goose user POSTs `/v1/messages` without waiting for the reply (`wait_ms` 0), so a
//! slow mesh cannot slow the arrivals down (open loop). A message's latency counts from its
//! send, never from a queue in the load generator. A subscriber per shop records when each
//! reply arrives. After the run it waits `--drain` seconds for outstanding
//! replies; anything accepted and still unanswered then is **lost**.
#![forbid(unsafe_code)]

use std::{
    path::PathBuf,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use goose::{
    config::GooseConfiguration,
    goose::{GooseMethod, GooseRequest},
    prelude::*,
};
use kefu_loadtest::{Ledger, Thresholds, mix, scenario};
use kefu_proto::session::v1::{
    SubscribeRequest, session_router_service_client::SessionRouterServiceClient,
};
use tokio_stream::StreamExt;
use tonic::{Request, metadata::MetadataValue};

#[derive(Parser, Debug)]
#[command(
    name = "kefu-loadtest",
    version,
    about = "Kefu big-sale load test (Goose)"
)]
struct Args {
    /// daily, peak-5x, peak-10x or soak (see loadtest/README.md).
    #[arg(long, default_value = "daily")]
    scenario: String,
    /// Messages per second (overrides the scenario's).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds at full rate (overrides the scenario's).
    #[arg(long)]
    duration: Option<u64>,
    /// Seconds to ramp up (overrides the scenario's).
    #[arg(long)]
    ramp_up: Option<u64>,
    /// Seconds to wait for outstanding replies after sending stops; unanswered then = lost.
    #[arg(long, default_value_t = 30)]
    drain: u64,
    /// session-router HTTP ingress.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    host: String,
    /// session-router gRPC (for Subscribe).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    grpc: String,
    /// SHOP=API_KEY_FILE; repeat for several shops (messages are spread over them).
    #[arg(long, default_value = "demo=.kefu/demo-api-key")]
    shop: Vec<String>,
    /// Concurrent senders (default: enough for the rate).
    #[arg(long)]
    users: Option<usize>,
    /// Write the report as JSON here too.
    #[arg(long)]
    report_json: Option<PathBuf>,
    /// The intent classifier's Prometheus endpoint: the report gives the share of messages
    /// that asked for an embedding (shops with a trained model; docs/intent.md). Empty: none.
    #[arg(long, default_value = "http://127.0.0.1:9183/metrics")]
    intent_metrics: String,
    /// Fail when p99 end-to-end latency exceeds this (ms).
    #[arg(long, default_value_t = 300.0)]
    max_p99_ms: f64,
    /// Fail when more than this share of sends fail.
    #[arg(long, default_value_t = 0.01)]
    max_error_rate: f64,
    /// Fail when more messages than this are lost.
    #[arg(long, default_value_t = 0)]
    max_lost: u64,
}

struct Shared {
    ledger: Arc<Ledger>,
    shops: Vec<(String, String)>,
    run: String,
    next: AtomicU64,
    /// The arrival schedule: message n is due at [`Shared::due`].
    start: Instant,
    rate: f64,
    ramp_up: f64,
    until: Instant,
}

impl Shared {
    /// When message `n` is due: a linear ramp from 0 to `rate` over `ramp_up` seconds, then
    /// `rate` per second. Arrivals follow this clock whatever the latency (open loop).
    fn due(&self, n: u64) -> Instant {
        self.start + Duration::from_secs_f64(kefu_loadtest::due_secs(n, self.rate, self.ramp_up))
    }
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn shared() -> &'static Shared {
    SHARED.get().expect("initialised before the attack")
}

/// One customer message: a new customer each time, so every accepted message must get exactly
/// one reply (a conversation handed to a person would silence that customer's next messages).
async fn send_message(user: &mut GooseUser) -> TransactionResult {
    let s = shared();
    let n = s.next.fetch_add(1, Ordering::Relaxed);
    let due = s.due(n);
    if due >= s.until {
        // Past the end of the run: idle until Goose stops the users.
        tokio::time::sleep(Duration::from_millis(200)).await;
        return Ok(());
    }
    tokio::time::sleep_until(due.into()).await;
    let (shop, key) = &s.shops[n as usize % s.shops.len()];
    let m = mix::message(&mut rand::rng());
    let body = serde_json::json!({
        "shop_id": shop,
        "channel": m.channel,
        "channel_user_id": format!("lt-{}-{n}", s.run),
        "channel_message_id": format!("lt-{}-{n}", s.run),
        "text": m.text,
    });
    let rb = user
        .get_request_builder(&GooseMethod::Post, "/v1/messages")?
        .header("authorization", format!("Bearer {key}"))
        .json(&body);
    let request = GooseRequest::builder().set_request_builder(rb).build();
    s.ledger.attempt();
    let started = Instant::now();
    let goose = user.request(request).await?;
    match goose.response {
        Ok(r) if r.status().is_success() => match r.json::<serde_json::Value>().await {
            Ok(v) => match v["message_id"].as_str() {
                Some(id) => s.ledger.accepted(id, started),
                None => s.ledger.error("bad_response"),
            },
            Err(_) => s.ledger.error("bad_response"),
        },
        Ok(r) => s.ledger.error(&format!("http_{}", r.status().as_u16())),
        Err(e) if e.is_timeout() => s.ledger.error("timeout"),
        Err(e) if e.is_connect() => s.ledger.error("connect"),
        Err(_) => s.ledger.error("transport"),
    }
    Ok(())
}

/// One message with `wait_ms`, to learn the reply stream's current cursor (and that the mesh
/// answers at all).
async fn warm_up(host: &str, shop: &str, key: &str, run: &str) -> anyhow::Result<i64> {
    let body = serde_json::json!({
        "shop_id": shop, "channel": "web", "channel_user_id": format!("lt-{run}-warmup"),
        "channel_message_id": format!("lt-{run}-warmup-{shop}"), "text": "hello", "wait_ms": 20000,
    });
    let r = reqwest::Client::new()
        .post(format!("{host}/v1/messages"))
        .header("authorization", format!("Bearer {key}"))
        .json(&body)
        .timeout(Duration::from_secs(25))
        .send()
        .await
        .with_context(|| format!("POST {host}/v1/messages (is `make run` up?)"))?;
    let status = r.status();
    let v: serde_json::Value = r.json().await.context("warm-up answer")?;
    match v["reply"]["cursor"].as_i64() {
        Some(c) => Ok(c),
        None => {
            bail!("warm-up message for shop {shop} was not answered within 20 s ({status}): {v}")
        }
    }
}

/// Streams the shop's replies from `cursor` into the ledger until `stop`; reconnects and
/// resumes from the last cursor when the stream breaks.
async fn subscribe(
    grpc: String,
    shop: String,
    key: String,
    mut cursor: i64,
    ledger: Arc<Ledger>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let attempt = async {
            let mut client = SessionRouterServiceClient::connect(grpc.clone()).await?;
            let mut req = Request::new(SubscribeRequest {
                shop_id: shop.clone(),
                conversation_id: String::new(),
                after_cursor: cursor,
                channel: String::new(),
            });
            req.metadata_mut().insert(
                "authorization",
                MetadataValue::try_from(format!("Bearer {key}"))?,
            );
            let mut stream = client.subscribe(req).await?.into_inner();
            let mut stop = stop.clone();
            loop {
                tokio::select! {
                    _ = stop.changed() => return anyhow::Ok(()),
                    item = stream.next() => match item {
                        Some(Ok(r)) => {
                            if let Some(reply) = r.reply {
                                ledger.reply(&reply.message_id, Instant::now());
                                cursor = reply.cursor;
                            }
                        }
                        Some(Err(e)) => return Err(e.into()),
                        None => return Ok(()),
                    }
                }
            }
        };
        if let Err(e) = attempt.await {
            eprintln!("reply stream of {shop} broke ({e}); resuming after cursor {cursor}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let sc = scenario(&args.scenario).with_context(|| {
        format!(
            "unknown scenario {:?}; use daily, peak-5x, peak-10x or soak",
            args.scenario
        )
    })?;
    let rate = args.rate.unwrap_or(sc.rate);
    let duration = args.duration.unwrap_or(sc.duration_s);
    let ramp_up = args.ramp_up.unwrap_or(sc.ramp_up_s);
    if !(rate > 0.0 && rate <= 100_000.0) || duration == 0 {
        bail!("--rate must be in (0, 100000] and --duration at least 1");
    }
    let mut shops = Vec::new();
    for s in &args.shop {
        let (shop, file) = s
            .split_once('=')
            .with_context(|| format!("--shop {s:?}: expected SHOP=API_KEY_FILE"))?;
        let key = std::fs::read_to_string(file)
            .with_context(|| format!("reading the API key of {shop} from {file}"))?;
        shops.push((shop.to_owned(), key.trim().to_owned()));
    }
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis()
    );
    let ledger = Arc::new(Ledger::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut subscribers = Vec::new();
    for (shop, key) in &shops {
        let cursor = warm_up(&args.host, shop, key, &run).await?;
        subscribers.push(tokio::spawn(subscribe(
            args.grpc.clone(),
            shop.clone(),
            key.clone(),
            cursor,
            ledger.clone(),
            stop_rx.clone(),
        )));
    }
    // Enough senders that a slow accept never delays the next arrival: one per message a
    // second, so each sender may take up to a second per send.
    let users = args
        .users
        .unwrap_or_else(|| (rate.ceil() as usize).clamp(8, 2048));
    let start = Instant::now() + Duration::from_secs(1);
    let _ = SHARED.set(Shared {
        ledger: ledger.clone(),
        shops,
        run,
        next: AtomicU64::new(0),
        start,
        rate,
        ramp_up: ramp_up as f64,
        until: start + Duration::from_secs(ramp_up + duration),
    });
    eprintln!(
        "scenario {}: {rate} msg/s for {duration} s (ramp-up {ramp_up} s), {users} senders, drain {} s",
        sc.name, args.drain
    );
    let config = GooseConfiguration::parse_args_default(&[
        "--host",
        &args.host,
        "--users",
        &users.to_string(),
        "--increase-time",
        "1s",
        "--run-time",
        &format!("{}s", duration + ramp_up + 2),
        "--no-telnet",
        "--no-print-metrics",
        "--no-error-summary",
        "--quiet",
    ])
    .map_err(|e| anyhow::anyhow!("goose configuration: {e:?}"))?;
    let embeddings_before = intent_counters(&args.intent_metrics).await;
    let started = Instant::now();
    GooseAttack::initialize_with_config(config)
        .map_err(|e| anyhow::anyhow!("goose: {e:?}"))?
        .register_scenario(
            scenario!("BigSaleCustomers").register_transaction(transaction!(send_message)),
        )
        .execute()
        .await
        .map_err(|e| anyhow::anyhow!("goose: {e:?}"))?;
    let elapsed = started.elapsed();
    eprintln!(
        "sending done: {} accepted, {} awaiting replies (draining up to {} s)",
        ledger.accepted_count(),
        ledger.outstanding(),
        args.drain
    );
    let deadline = Instant::now() + Duration::from_secs(args.drain);
    while ledger.outstanding() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(true);
    for s in subscribers {
        let _ = s.await;
    }
    let thresholds = Thresholds {
        max_p99_ms: args.max_p99_ms,
        max_error_rate: args.max_error_rate,
        max_lost: args.max_lost,
    };
    let mut report = ledger.report(sc.name, rate, elapsed, &thresholds);
    if let (Some(b), Some(a)) = (
        embeddings_before,
        intent_counters(&args.intent_metrics).await,
    ) {
        report.embeddings = Some(kefu_loadtest::Embeddings::between(&b, &a));
    }
    println!("{report}");
    if let Some(path) = &args.report_json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report.passed)
}

/// The classifier's embedding counters, or `None` when its metrics cannot be read.
async fn intent_counters(url: &str) -> Option<std::collections::BTreeMap<String, u64>> {
    if url.is_empty() {
        return None;
    }
    let text = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(kefu_loadtest::embedding_counters(&text))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
