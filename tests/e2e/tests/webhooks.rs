//! Webhook delivery: an endpoint that fails three times still gets the reply, signed; a shop
//! cannot aim a webhook at private or metadata addresses, and redirects are not followed.
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use kefu_e2e::{Mesh, SHOP, free_port};
use kefu_proto::session::v1::{RegisterWebhookRequest, SendRequest};
use kefu_session_router::webhook::{SIGNATURE_HEADER, sign};
use tonic::Code;
use tonic_types::StatusExt;

#[derive(Default)]
struct Seen {
    calls: Vec<(u16, String, String)>,
    redirects: usize,
    redirected_to: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_still_gets_every_reply_signed() {
    let mesh = Mesh::start("webhooks").await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let port = free_port();
    let app = Router::new()
        .route(
            "/hook",
            post(
                |State(seen): State<Arc<Mutex<Seen>>>, headers: HeaderMap, body: Bytes| async move {
                    let mut s = seen.lock().unwrap();
                    // Fail the first three calls, as a flaky endpoint would.
                    let status = if s.calls.len() < 3 { 500 } else { 200 };
                    let sig = headers
                        .get(SIGNATURE_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    s.calls
                        .push((status, String::from_utf8_lossy(&body).into_owned(), sig));
                    StatusCode::from_u16(status).unwrap()
                },
            ),
        )
        .route(
            "/moved",
            post(|State(seen): State<Arc<Mutex<Seen>>>| async move {
                seen.lock().unwrap().redirects += 1;
                (StatusCode::TEMPORARY_REDIRECT, [("location", "/elsewhere")])
            }),
        )
        .route(
            "/elsewhere",
            post(|State(seen): State<Arc<Mutex<Seen>>>| async move {
                seen.lock().unwrap().redirected_to += 1;
                StatusCode::OK
            }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut client = mesh.session_client().await;
    let secret = client
        .register_webhook(mesh.authed(RegisterWebhookRequest {
            shop_id: SHOP.into(),
            channel: "wechat".into(),
            url: format!("http://127.0.0.1:{port}/hook"),
        }))
        .await
        .expect("register")
        .into_inner()
        .secret;
    let sent = client
        .send(mesh.authed(SendRequest {
            shop_id: SHOP.into(),
            channel: "wechat".into(),
            channel_user_id: "wx-hook".into(),
            channel_message_id: "hook-1".into(),
            text: "hello".into(),
            ..Default::default()
        }))
        .await
        .expect("send")
        .into_inner();

    // 1 s + 2 s + 4 s of backoff after three failures.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if seen.lock().unwrap().calls.iter().any(|c| c.0 == 200) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never delivered: {:?}\n{}",
            seen.lock().unwrap().calls,
            mesh.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = seen.lock().unwrap().calls.clone();
    assert_eq!(
        calls.iter().map(|c| c.0).collect::<Vec<_>>(),
        [500, 500, 500, 200],
        "retried, then delivered once"
    );
    for (_, body, sig) in &calls {
        assert_eq!(
            sig,
            &sign(&secret, body.as_bytes()),
            "every attempt is signed with the shop's secret"
        );
        assert_ne!(sig, &sign("another secret", body.as_bytes()));
    }
    let v: serde_json::Value = serde_json::from_str(&calls[3].1).unwrap();
    assert_eq!(v["reply"]["message_id"], sent.message_id.as_str());
    assert!(
        v["reply"]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Hello")
    );

    let st = client
        .register_webhook(mesh.authed(RegisterWebhookRequest {
            shop_id: SHOP.into(),
            channel: "wechat".into(),
            url: "ftp://x".into(),
        }))
        .await
        .expect_err("bad url");
    assert_eq!(st.code(), Code::InvalidArgument);

    // Server-side request forgery: this mesh allows only 127.0.0.1 (test receivers); the
    // metadata endpoint, private networks, IPv6 loopback and names that resolve to them are
    // refused at registration, with the field and the reason.
    for url in [
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/hook".to_owned(),
        format!("http://[::1]:{port}/hook"),
        "http://[::ffff:169.254.169.254]/".to_owned(),
    ] {
        let st = client
            .register_webhook(mesh.authed(RegisterWebhookRequest {
                shop_id: SHOP.into(),
                channel: "web".into(),
                url: url.clone(),
            }))
            .await
            .expect_err("private address");
        assert_eq!(st.code(), Code::InvalidArgument, "{url}: {st:?}");
        let details = st.get_error_details();
        let v = &details
            .bad_request()
            .expect("field details")
            .field_violations[0];
        assert_eq!(v.field, "url");
        assert!(
            v.description.contains("KEFU_WEBHOOK_ALLOW_NETWORKS"),
            "{}",
            v.description
        );
    }

    // A redirect is a failed attempt, never followed to where it points.
    client
        .register_webhook(mesh.authed(RegisterWebhookRequest {
            shop_id: SHOP.into(),
            channel: "web".into(),
            url: format!("http://127.0.0.1:{port}/moved"),
        }))
        .await
        .expect("register the redirecting endpoint");
    client
        .send(mesh.authed(SendRequest {
            shop_id: SHOP.into(),
            channel: "web".into(),
            channel_user_id: "web-hook".into(),
            channel_message_id: "hook-2".into(),
            text: "hello".into(),
            ..Default::default()
        }))
        .await
        .expect("send");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().redirects < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the redirecting endpoint was not called twice\n{}",
            mesh.log_tail("session-router")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        seen.lock().unwrap().redirected_to,
        0,
        "a redirect was followed"
    );
}
