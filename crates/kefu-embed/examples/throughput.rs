//! How many short chat messages an embedding server takes per second through the client, and
//! what a caller waits: `cargo run --release -p kefu-embed --example throughput -- URL
//! [CALLERS] [SECONDS]` (docs/intent.md, "Measured"). Each caller embeds distinct messages
//! one at a time (no cache hits), as the knowledge service does for customers' questions;
//! the client batches what arrives together.
use std::time::{Duration, Instant};

use kefu_embed::{Config, Embedder, Kind};

const SAMPLES: &[&str] = &[
    "我的快递到哪了",
    "退货运费谁出",
    "能开发票吗",
    "where is my parcel",
    "can I return this hoodie",
    "满300减多少",
    "do you ship to the UK",
    "尺码偏大还是偏小",
];

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8089".into());
    let callers: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(16);
    let seconds: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
    let mut config = Config::new(url.parse().expect("a URL"));
    config.timeout = Duration::from_secs(30);
    config.cache_entries = 0;
    let e = Embedder::new(config);
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let e = e.clone();
            tokio::spawn(async move {
                let mut waits = Vec::new();
                let mut n = 0usize;
                while Instant::now() < until {
                    let text = format!("{} #{c}-{n}", SAMPLES[n % SAMPLES.len()]);
                    let t = Instant::now();
                    if e.embed_one(Kind::Query, &text).await.is_ok() {
                        waits.push(t.elapsed());
                    }
                    n += 1;
                }
                waits
            })
        })
        .collect();
    let mut waits = Vec::new();
    for t in tasks {
        waits.extend(t.await.expect("caller"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    waits.sort();
    let q = |p: f64| waits[((waits.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0;
    let s = e.stats();
    println!(
        "{} messages in {elapsed:.1} s: {:.1}/s with {callers} callers; wait p50 {:.1} ms, p99 {:.1} ms; {} requests ({:.1} texts each), {} failures",
        waits.len(),
        waits.len() as f64 / elapsed,
        q(0.5),
        q(0.99),
        s.requests,
        s.texts_sent as f64 / s.requests.max(1) as f64,
        s.failures + s.timeouts,
    );
}
