//! LLM phrasing against a local server speaking OpenAI's `/v1/chat/completions` wire format,
//! JSON and server-sent events: a good rewrite is used; a rewrite with a number the facts do
//! not have, a "cannot answer", an error, a malformed body or a slow server falls back to the
//! extractive answer (`None`), within the timeout.
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use kefu_knowledge_service::phrasing::{LlmArgs, Phraser};
use prometheus_client::metrics::{counter::Counter, family::Family};
use serde_json::{Value, json};

/// What the fake model answers next, and what it was asked.
#[derive(Default)]
struct Fake {
    reply: String,
    status: u16,
    delay_ms: u64,
    raw: Option<String>,
    asked: Vec<(Option<String>, Value)>,
}

type Shared = Arc<Mutex<Fake>>;

async fn completions(
    State(s): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let (reply, status, delay, raw) = {
        let mut f = s.lock().unwrap();
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        f.asked.push((auth, body.clone()));
        (f.reply.clone(), f.status, f.delay_ms, f.raw.clone())
    };
    tokio::time::sleep(Duration::from_millis(delay)).await;
    if status != 200 {
        let err = json!({"error": {"message": "model overloaded", "type": "server_error"}});
        return (StatusCode::from_u16(status).unwrap(), Json(err)).into_response();
    }
    if let Some(raw) = raw {
        return raw.into_response();
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    if body["stream"].as_bool() == Some(true) {
        // Split the reply into a few chunks, as a streaming server does.
        let chars: Vec<char> = reply.chars().collect();
        let mut events = format!(
            "data: {}\n\n",
            json!({"id": "c1", "object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]})
        );
        for part in chars.chunks(4) {
            let t: String = part.iter().collect();
            events.push_str(&format!(
                "data: {}\n\n",
                json!({"id": "c1", "object": "chat.completion.chunk", "model": model,
                       "choices": [{"index": 0, "delta": {"content": t}, "finish_reason": null}]})
            ));
        }
        events.push_str(&format!(
            "data: {}\n\ndata: [DONE]\n\n",
            json!({"id": "c1", "object": "chat.completion.chunk", "model": model,
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        ));
        return ([("content-type", "text/event-stream")], events).into_response();
    }
    Json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1764460800,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 80, "completion_tokens": 20, "total_tokens": 100}
    }))
    .into_response()
}

async fn fake() -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(Fake {
        status: 200,
        ..Default::default()
    }));
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), state)
}

fn phraser(
    url: &str,
    stream: bool,
    key_file: Option<std::path::PathBuf>,
) -> (Phraser, Family<Vec<(String, String)>, Counter>) {
    let outcomes = Family::default();
    let p = Phraser::from_args(
        &LlmArgs {
            url: url.into(),
            model: "qwen2.5-7b-instruct".into(),
            api_key_file: key_file,
            timeout_ms: 800,
            stream,
        },
        outcomes.clone(),
    )
    .expect("config")
    .expect("on");
    (p, outcomes)
}

fn count(f: &Family<Vec<(String, String)>, Counter>, outcome: &str) -> u64 {
    f.get_or_create(&vec![("outcome".into(), outcome.into())])
        .get()
}

const FACTS: &str = "收货后15天内可无理由退货，退货运费由买家承担。";

#[tokio::test]
async fn a_checked_rewrite_is_used_streamed_or_not() {
    let (url, state) = fake().await;
    let dir = std::env::temp_dir().join(format!("kefu-llm-key-{}", std::process::id()));
    std::fs::write(&dir, "sk-test-123\n").unwrap();
    for stream in [false, true] {
        let (p, outcomes) = phraser(&url, stream, Some(dir.clone()));
        state.lock().unwrap().reply =
            "亲，收货后十五天内都可以无理由退货哦，退货运费需要您承担~".into();
        let got = p.phrase("可以退货吗", FACTS, "zh").await;
        assert_eq!(
            got.as_deref(),
            Some("亲，收货后十五天内都可以无理由退货哦，退货运费需要您承担~"),
            "stream={stream}"
        );
        assert_eq!(count(&outcomes, "phrased"), 1);
    }
    let asked = state.lock().unwrap().asked.clone();
    assert_eq!(asked.len(), 2);
    for (auth, body) in &asked {
        assert_eq!(auth.as_deref(), Some("Bearer sk-test-123"));
        assert_eq!(body["model"], "qwen2.5-7b-instruct");
        let user = body["messages"][1]["content"].as_str().unwrap();
        assert!(
            user.contains("可以退货吗") && user.contains(FACTS),
            "{user}"
        );
        let system = body["messages"][0]["content"].as_str().unwrap();
        assert!(
            system.contains("Chinese") && system.contains("never add a number"),
            "{system}"
        );
    }
    assert_eq!(asked[0].1["stream"], false);
    assert_eq!(asked[1].1["stream"], true);
    let _ = std::fs::remove_file(dir);
}

#[tokio::test]
async fn a_rewrite_with_an_invented_number_is_discarded() {
    let (url, state) = fake().await;
    for stream in [false, true] {
        let (p, outcomes) = phraser(&url, stream, None);
        state.lock().unwrap().reply = "亲，30天内都可以退货，运费我们包了！".into();
        assert_eq!(p.phrase("可以退货吗", FACTS, "zh").await, None);
        state.lock().unwrap().reply = "Sure! Returns are free within thirty days.".into();
        assert_eq!(
            p.phrase(
                "can I return it?",
                "Returns within 15 days of delivery.",
                "en"
            )
            .await,
            None
        );
        assert_eq!(count(&outcomes, "invented_number"), 2, "stream={stream}");
    }
    assert!(
        state.lock().unwrap().asked[0].0.is_none(),
        "no key: no Authorization"
    );
}

#[tokio::test]
async fn failures_and_slow_servers_fall_back_within_the_timeout() {
    let (url, state) = fake().await;
    let (p, outcomes) = phraser(&url, false, None);

    state.lock().unwrap().reply = "NO_ANSWER".into();
    assert_eq!(p.phrase("可以退货吗", FACTS, "zh").await, None);
    assert_eq!(count(&outcomes, "unusable"), 1);

    state.lock().unwrap().status = 503;
    assert_eq!(p.phrase("可以退货吗", FACTS, "zh").await, None);
    state.lock().unwrap().status = 200;
    state.lock().unwrap().raw = Some("{\"choices\": []}".into());
    assert_eq!(p.phrase("可以退货吗", FACTS, "zh").await, None);
    assert_eq!(count(&outcomes, "failed"), 2);
    state.lock().unwrap().raw = None;

    state.lock().unwrap().reply = "亲，收货后十五天内可以退货。".into();
    state.lock().unwrap().delay_ms = 5_000;
    let t = Instant::now();
    assert_eq!(p.phrase("可以退货吗", FACTS, "zh").await, None);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "waited {:?}",
        t.elapsed()
    );
    assert_eq!(count(&outcomes, "timeout"), 1);

    // Nothing listens: fails fast.
    let (p, outcomes) = phraser("http://127.0.0.1:9/v1", true, None);
    assert_eq!(p.phrase("可以退货吗", FACTS, "zh").await, None);
    assert_eq!(count(&outcomes, "failed") + count(&outcomes, "timeout"), 1);
}

#[test]
fn phrasing_is_off_without_a_url_and_refuses_half_a_configuration() {
    let args = |url: &str, model: &str| LlmArgs {
        url: url.into(),
        model: model.into(),
        api_key_file: None,
        timeout_ms: 100,
        stream: false,
    };
    assert!(
        Phraser::from_args(&args("", ""), Family::default())
            .unwrap()
            .is_none()
    );
    assert!(Phraser::from_args(&args("http://llm:8000/v1", ""), Family::default()).is_err());
    assert!(Phraser::from_args(&args("ftp://llm/v1", "m"), Family::default()).is_err());
}
