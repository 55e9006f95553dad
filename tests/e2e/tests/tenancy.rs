//! Tenant isolation and authentication on every service's gRPC and HTTP surface: shop B's
//! credential reads and changes nothing of shop A's, a missing or wrong credential is
//! refused, a service credential opens nothing outside the mesh, the operator manages shops
//! but reads no shop's data, and an agent acts only as itself (docs/security.md).
use std::time::Duration;

use kefu_e2e::{Bearer, Mesh, SHOP, SHOP_B_WEBHOOK_SECRET, WEBHOOK_SECRET, bin_dir};
use kefu_proto::{
    admin::v1::{ListShopsRequest, admin_service_client::AdminServiceClient},
    assistant::v1::{AnswerRequest, assistant_service_client::AssistantServiceClient},
    auth::v1::{
        AuthenticateRequest, IssueAgentTokenRequest, RevokeAgentTokenRequest,
        agent_token_service_client::AgentTokenServiceClient,
        auth_service_client::AuthServiceClient,
    },
    intent::v1::{
        ClassifyRequest, intent_classifier_service_client::IntentClassifierServiceClient,
    },
    metrics::v1::{GetTopicCountsRequest, metrics_service_client::MetricsServiceClient},
    order::v1::{
        Buyer, CustomerKey, GetOrderRequest, ImportOrdersRequest, ListCustomerOrdersRequest, Order,
        UpsertOrderRequest, order_sync_service_client::OrderSyncServiceClient,
    },
    session::v1::{
        GetConversationRequest, ListMessagesRequest, RotateApiKeyRequest, SendRequest,
        session_router_service_client::SessionRouterServiceClient,
    },
    ticket::v1::{
        CloseTicketRequest, GetTicketRequest, ListTicketsRequest, ReplyToTicketRequest,
        ticket_service_client::TicketServiceClient,
    },
    translation::v1::{
        DetectLanguageRequest, translation_service_client::TranslationServiceClient,
    },
};
use serde_json::json;
use tonic::{Code, Request, Status};

const B: &str = "shop-b";

/// `msg` with `authorization: Bearer <credential>` ("" for none).
fn as_<T>(credential: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    if !credential.is_empty() {
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {credential}").parse().expect("header"),
        );
    }
    r
}

#[track_caller]
fn refused<T: std::fmt::Debug>(r: Result<tonic::Response<T>, Status>, code: Code, what: &str) {
    match r {
        Ok(ok) => panic!("{what}: served {ok:?}"),
        Err(s) => assert_eq!(s.code(), code, "{what}: {s:?}"),
    }
}

fn order(id: &str, user: &str) -> Order {
    let now = kefu_proto::Timestamp {
        seconds: chrono::Utc::now().timestamp(),
        nanos: 0,
    };
    Order {
        order_id: id.into(),
        status: "paid".into(),
        total_minor: 9900,
        currency: "CNY".into(),
        placed_at: Some(now),
        updated_at: Some(now),
        buyer: Some(Buyer {
            channel: "web".into(),
            channel_user_id: user.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_authenticates_and_keeps_shops_apart() {
    let mut mesh = Mesh::start("tenancy").await;
    let a = mesh.api_key.clone();
    let b = mesh.add_shop(B).await;
    let op = mesh.operator_token.clone();

    // Shop A's data: a conversation handed to a person (a ticket) and an order.
    let (status, v) = mesh
        .post_message(
            &json!({"shop_id": SHOP, "channel": "web", "channel_user_id": "alice",
            "channel_message_id": "t1", "text": "我要转人工", "wait_ms": 30_000}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let conv = v["conversation_id"]
        .as_str()
        .expect("conversation")
        .to_owned();
    let ticket = v["reply"]["ticket_id"].as_str().expect("ticket").to_owned();
    assert!(!ticket.is_empty(), "{v}");

    // ---- session-router (gRPC and HTTP) ----
    let mut router = SessionRouterServiceClient::new(mesh.channel("session-router").await);
    let get_conv = |shop: &str| GetConversationRequest {
        shop_id: shop.into(),
        conversation_id: conv.clone(),
    };
    router
        .get_conversation(as_(&a, get_conv("")))
        .await
        .expect("A reads its own conversation, shop from the key");
    refused(
        router.get_conversation(as_("", get_conv(""))).await,
        Code::Unauthenticated,
        "no credential",
    );
    refused(
        router
            .get_conversation(as_("kefu_0000", get_conv("")))
            .await,
        Code::Unauthenticated,
        "unknown key",
    );
    refused(
        router.get_conversation(as_(&b, get_conv(SHOP))).await,
        Code::PermissionDenied,
        "B naming A",
    );
    refused(
        router.get_conversation(as_(&b, get_conv(""))).await,
        Code::NotFound,
        "A's id under B",
    );
    refused(
        router.get_conversation(as_(&op, get_conv(SHOP))).await,
        Code::PermissionDenied,
        "the operator reads no shop's data",
    );
    // A service credential is refused by every public method, even one minted for this service.
    let svc = mesh.service_token("assistant", "session-router", SHOP);
    refused(
        router.get_conversation(as_(&svc, get_conv(""))).await,
        Code::PermissionDenied,
        "service credential at a public method",
    );
    let send = |id: &str| SendRequest {
        channel: "web".into(),
        channel_user_id: "mallory".into(),
        channel_message_id: id.into(),
        text: "hi".into(),
        ..Default::default()
    };
    refused(
        router.send(as_(&svc, send("s1"))).await,
        Code::PermissionDenied,
        "service credential sends",
    );
    let for_orders = mesh.service_token("assistant", "order-sync", SHOP);
    refused(
        router.send(as_(&for_orders, send("s2"))).await,
        Code::Unauthenticated,
        "a credential meant for order-sync",
    );
    let http = reqwest::Client::new();
    for (cred, want) in [
        ("", 401),
        ("kefu_0000", 401),
        (svc.as_str(), 403),
        (op.as_str(), 403),
    ] {
        let mut req = http
            .post(format!("{}/v1/messages", mesh.http_url()))
            .json(&json!({"channel": "web", "channel_user_id": "m", "channel_message_id": "h", "text": "hi"}));
        if !cred.is_empty() {
            req = req.bearer_auth(cred);
        }
        let resp = req.send().await.expect("http");
        assert_eq!(
            resp.status().as_u16(),
            want,
            "POST /v1/messages with {cred:.12}"
        );
        let body: serde_json::Value = resp.json().await.expect("JSON error body");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    let transcript = |cred: &str| {
        let mut r = http.get(format!(
            "{}/v1/conversations/{conv}/messages",
            mesh.http_url()
        ));
        if !cred.is_empty() {
            r = r.bearer_auth(cred);
        }
        r.send()
    };
    assert_eq!(transcript(&a).await.unwrap().status(), 200);
    assert_eq!(transcript("").await.unwrap().status(), 401);
    assert_eq!(
        transcript(&b).await.unwrap().status(),
        404,
        "A's transcript under B"
    );

    // ---- agent tokens: an agent acts only as itself, only in its shop ----
    let mut tokens = AgentTokenServiceClient::new(mesh.channel("session-router").await);
    let issue = |agent: &str| IssueAgentTokenRequest {
        agent_id: agent.into(),
        ttl_hours: 1,
    };
    let alice = tokens
        .issue_agent_token(as_(&a, issue("agent-alice")))
        .await
        .expect("issue")
        .into_inner();
    let mallory = tokens
        .issue_agent_token(as_(&b, issue("agent-mallory")))
        .await
        .expect("issue")
        .into_inner();
    let alice_info = alice.info.clone().expect("info");
    refused(
        tokens
            .issue_agent_token(as_(&alice.token, issue("agent-eve")))
            .await,
        Code::PermissionDenied,
        "an agent mints tokens",
    );
    refused(
        tokens
            .revoke_agent_token(as_(
                &b,
                RevokeAgentTokenRequest {
                    token_id: alice_info.token_id.clone(),
                },
            ))
            .await,
        Code::NotFound,
        "B revokes A's agent token",
    );
    router
        .list_messages(as_(
            &alice.token,
            ListMessagesRequest {
                conversation_id: conv.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("A's agent reads A's transcript");
    refused(
        router
            .list_messages(as_(
                &mallory.token,
                ListMessagesRequest {
                    conversation_id: conv.clone(),
                    ..Default::default()
                },
            ))
            .await,
        Code::NotFound,
        "B's agent reads A's transcript",
    );
    refused(
        router.send(as_(&alice.token, send("s3"))).await,
        Code::PermissionDenied,
        "an agent sends as a customer",
    );
    refused(
        router
            .rotate_api_key(as_(&alice.token, RotateApiKeyRequest::default()))
            .await,
        Code::PermissionDenied,
        "an agent rotates the shop's key",
    );

    // ---- ticket ----
    let mut tickets = TicketServiceClient::new(mesh.channel("ticket").await);
    let get_ticket = |shop: &str| GetTicketRequest {
        shop_id: shop.into(),
        ticket_id: ticket.clone(),
    };
    tickets
        .get_ticket(as_(&a, get_ticket("")))
        .await
        .expect("A reads its ticket");
    refused(
        tickets.get_ticket(as_("", get_ticket(""))).await,
        Code::Unauthenticated,
        "ticket without credential",
    );
    refused(
        tickets.get_ticket(as_("kefa_0000", get_ticket(""))).await,
        Code::Unauthenticated,
        "unknown agent token",
    );
    refused(
        tickets.get_ticket(as_(&b, get_ticket(""))).await,
        Code::NotFound,
        "A's ticket under B",
    );
    refused(
        tickets.get_ticket(as_(&b, get_ticket(SHOP))).await,
        Code::PermissionDenied,
        "B naming A",
    );
    refused(
        tickets
            .get_ticket(as_(&mallory.token, get_ticket("")))
            .await,
        Code::NotFound,
        "B's agent",
    );
    refused(
        tickets.get_ticket(as_(&op, get_ticket(SHOP))).await,
        Code::PermissionDenied,
        "operator",
    );
    let for_ticket = mesh.service_token("assistant", "ticket", SHOP);
    refused(
        tickets.get_ticket(as_(&for_ticket, get_ticket(""))).await,
        Code::PermissionDenied,
        "service credential at the agents' API",
    );
    let listed = tickets
        .list_tickets(as_(&b, ListTicketsRequest::default()))
        .await
        .expect("B's list")
        .into_inner();
    assert!(
        listed.tickets.iter().all(|t| t.shop_id == B),
        "B lists A's tickets: {listed:?}"
    );
    let reply = |agent: &str, req: &str| ReplyToTicketRequest {
        ticket_id: ticket.clone(),
        agent_id: agent.into(),
        text: "hello from the shop".into(),
        request_id: req.into(),
        ..Default::default()
    };
    refused(
        tickets.reply_to_ticket(as_(&b, reply("x", "r1"))).await,
        Code::NotFound,
        "B replies to A's customer",
    );
    refused(
        tickets
            .reply_to_ticket(as_(&mallory.token, reply("", "r2")))
            .await,
        Code::NotFound,
        "B's agent replies to A's customer",
    );
    refused(
        tickets
            .close_ticket(as_(
                &b,
                CloseTicketRequest {
                    ticket_id: ticket.clone(),
                    agent_id: "x".into(),
                    ..Default::default()
                },
            ))
            .await,
        Code::NotFound,
        "B closes A's ticket",
    );
    refused(
        tickets
            .reply_to_ticket(as_(&alice.token, reply("agent-bob", "r3")))
            .await,
        Code::PermissionDenied,
        "an agent replies as another agent",
    );
    let replied = tickets
        .reply_to_ticket(as_(&alice.token, reply("", "r4")))
        .await
        .expect("A's agent replies")
        .into_inner()
        .ticket
        .expect("ticket");
    assert_eq!(
        replied.assignee, "agent-alice",
        "recorded under the token's agent"
    );
    assert_eq!(
        replied.status, "active",
        "B's attempts changed nothing before"
    );

    // ---- order-sync ----
    let mut orders = OrderSyncServiceClient::new(mesh.channel("order-sync").await);
    orders
        .upsert_order(as_(
            &a,
            UpsertOrderRequest {
                order: Some(order("A-100", "alice")),
            },
        ))
        .await
        .expect("A writes its order");
    let get = |shop: &str, keys: Vec<CustomerKey>| GetOrderRequest {
        shop_id: shop.into(),
        order_id: "A-100".into(),
        customer_keys: keys,
    };
    let alice_key = || {
        vec![CustomerKey {
            kind: "identity".into(),
            value: "web:alice".into(),
        }]
    };
    orders
        .get_order(as_(&a, get("", vec![])))
        .await
        .expect("A reads its order");
    refused(
        orders.get_order(as_("", get("", vec![]))).await,
        Code::Unauthenticated,
        "order without credential",
    );
    refused(
        orders.get_order(as_(&b, get("", vec![]))).await,
        Code::NotFound,
        "A's order under B",
    );
    refused(
        orders.get_order(as_(&b, get(SHOP, vec![]))).await,
        Code::PermissionDenied,
        "B naming A",
    );
    refused(
        orders.get_order(as_(&op, get(SHOP, vec![]))).await,
        Code::PermissionDenied,
        "operator",
    );
    // Services act for one customer: without their keys nothing is returned.
    let assistant_a = mesh.service_token("assistant", "order-sync", SHOP);
    refused(
        orders.get_order(as_(&assistant_a, get("", vec![]))).await,
        Code::InvalidArgument,
        "service without customer keys",
    );
    orders
        .get_order(as_(&assistant_a, get("", alice_key())))
        .await
        .expect("the assistant, for alice");
    let assistant_b = mesh.service_token("assistant", "order-sync", B);
    refused(
        orders
            .get_order(as_(&assistant_b, get("", alice_key())))
            .await,
        Code::NotFound,
        "a service acting for B",
    );
    refused(
        orders
            .get_order(as_(&assistant_b, get(SHOP, alice_key())))
            .await,
        Code::PermissionDenied,
        "a service for B naming A",
    );
    let other_audience = mesh.service_token("assistant", "ticket", SHOP);
    refused(
        orders
            .get_order(as_(&other_audience, get("", alice_key())))
            .await,
        Code::Unauthenticated,
        "a credential meant for ticket",
    );
    let forged = kefu_runtime::auth::ServiceKeys::new(
        "assistant",
        &["not-this-mesh-secret-0123456789abcdef".into()],
    )
    .unwrap()
    .token("order-sync", SHOP);
    refused(
        orders.get_order(as_(&forged, get("", alice_key()))).await,
        Code::Unauthenticated,
        "signed with another secret",
    );
    let listed_b = orders
        .list_customer_orders(as_(
            &b,
            ListCustomerOrdersRequest {
                customer_keys: alice_key(),
                ..Default::default()
            },
        ))
        .await
        .expect("B's own list")
        .into_inner();
    assert!(
        listed_b.orders.is_empty(),
        "B lists A's customer's orders: {listed_b:?}"
    );
    // Writes: only the shop's key, only into its own shop. B writing with A's id is refused;
    // B writing the same order number makes B's own order and leaves A's untouched.
    let mut hijack = order("A-100", "mallory");
    hijack.shop_id = SHOP.into();
    refused(
        orders
            .upsert_order(as_(
                &b,
                UpsertOrderRequest {
                    order: Some(hijack),
                },
            ))
            .await,
        Code::PermissionDenied,
        "B writes A's order",
    );
    refused(
        orders
            .upsert_order(as_(
                &assistant_a,
                UpsertOrderRequest {
                    order: Some(order("A-101", "mallory")),
                },
            ))
            .await,
        Code::PermissionDenied,
        "a service writes orders",
    );
    refused(
        orders
            .upsert_order(as_(
                &alice.token,
                UpsertOrderRequest {
                    order: Some(order("A-102", "mallory")),
                },
            ))
            .await,
        Code::PermissionDenied,
        "an agent writes orders",
    );
    refused(
        orders
            .upsert_order(as_(
                "",
                UpsertOrderRequest {
                    order: Some(order("A-103", "m")),
                },
            ))
            .await,
        Code::Unauthenticated,
        "anonymous write",
    );
    orders
        .upsert_order(as_(
            &b,
            UpsertOrderRequest {
                order: Some(order("A-100", "mallory")),
            },
        ))
        .await
        .expect("B's own order with the same number");
    let still = orders
        .get_order(as_(&a, get("", vec![])))
        .await
        .expect("A's order")
        .into_inner()
        .order
        .expect("order");
    assert_eq!(
        still.buyer.expect("buyer").channel_user_id,
        "alice",
        "A's order untouched"
    );
    let import = |shop: &str| {
        let first = ImportOrdersRequest {
            shop_id: shop.into(),
            format: "jsonl".into(),
            line: r#"{"format":"kefu.order.v1","order_id":"A-100","status":"paid","currency":"CNY","total_minor":1,"placed_at":"2026-11-01T00:00:00Z","updated_at":"2030-01-01T00:00:00Z","buyer":{"channel":"web","channel_user_id":"mallory"}}"#.into(),
        };
        tokio_stream::iter(vec![first])
    };
    refused(
        orders.import_orders(as_(&b, import(SHOP))).await,
        Code::PermissionDenied,
        "B imports into A",
    );
    refused(
        orders.import_orders(as_("", import(""))).await,
        Code::Unauthenticated,
        "anonymous import",
    );

    // Connectors (HTTP): each shop signs with its own secret; B's signature opens only B's URL.
    let scan = json!({"format": "kefu.tracking.v1", "carrier": "SF", "tracking_number": "SF9000000000001",
        "status": "in_transit", "location": "x", "at": "2026-11-20T10:00:00Z"});
    let post_scan = |shop: &str, secret: &str| {
        let body = scan.to_string();
        let sig = kefu_session_router::webhook::sign(secret, body.as_bytes());
        http.post(format!(
            "{}/v1/connectors/tracking/{shop}",
            mesh.orders_url()
        ))
        .header("x-kefu-signature", sig)
        .header("content-type", "application/json")
        .body(body)
        .send()
    };
    assert_eq!(
        post_scan(SHOP, SHOP_B_WEBHOOK_SECRET)
            .await
            .unwrap()
            .status(),
        401,
        "B's secret on A's connector"
    );
    assert_eq!(
        post_scan(B, WEBHOOK_SECRET).await.unwrap().status(),
        401,
        "A's secret on B's connector"
    );
    assert_eq!(
        post_scan(B, SHOP_B_WEBHOOK_SECRET).await.unwrap().status(),
        200,
        "B's own connector"
    );

    // ---- metrics ----
    let mut metrics = MetricsServiceClient::new(mesh.channel("metrics").await);
    let counts = |shop: &str| GetTopicCountsRequest {
        shop_id: shop.into(),
    };
    refused(
        metrics.get_topic_counts(as_("", counts(""))).await,
        Code::Unauthenticated,
        "metrics without credential",
    );
    refused(
        metrics.get_topic_counts(as_(&b, counts(SHOP))).await,
        Code::PermissionDenied,
        "B reads A's counts",
    );
    refused(
        metrics
            .get_topic_counts(as_(&alice.token, counts("")))
            .await,
        Code::PermissionDenied,
        "an agent reads counts",
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let all = metrics
            .get_topic_counts(as_(&op, counts("")))
            .await
            .expect("operator")
            .into_inner();
        if all.counts.iter().any(|c| c.shop_id == SHOP) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics never counted A's events"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let own = metrics
        .get_topic_counts(as_(&b, counts("")))
        .await
        .expect("B's counts")
        .into_inner();
    assert!(
        own.counts.iter().all(|c| c.shop_id == B),
        "B sees other shops: {own:?}"
    );
    let mine = metrics
        .get_topic_counts(as_(&a, counts("")))
        .await
        .expect("A's counts")
        .into_inner();
    assert!(!mine.counts.is_empty() && mine.counts.iter().all(|c| c.shop_id == SHOP));

    // ---- translation, intent-classifier, assistant: shops and services, each for itself ----
    let mut translation = TranslationServiceClient::new(mesh.channel("translation").await);
    let detect = |shop: &str| DetectLanguageRequest {
        shop_id: shop.into(),
        text: "你好".into(),
    };
    translation
        .detect_language(as_(&b, detect("")))
        .await
        .expect("B for itself");
    translation
        .detect_language(as_(
            &mesh.service_token("intent-classifier", "translation", SHOP),
            detect(""),
        ))
        .await
        .expect("a service");
    refused(
        translation.detect_language(as_("", detect(""))).await,
        Code::Unauthenticated,
        "translation anonymous",
    );
    refused(
        translation.detect_language(as_(&b, detect(SHOP))).await,
        Code::PermissionDenied,
        "translation: B naming A",
    );
    refused(
        translation.detect_language(as_(&op, detect(""))).await,
        Code::PermissionDenied,
        "translation: operator",
    );
    let mut intents = IntentClassifierServiceClient::new(mesh.channel("intent-classifier").await);
    let classify = |shop: &str| ClassifyRequest {
        shop_id: shop.into(),
        text: "我要退货".into(),
        ..Default::default()
    };
    intents
        .classify(as_(&b, classify("")))
        .await
        .expect("B for itself");
    refused(
        intents.classify(as_("", classify(""))).await,
        Code::Unauthenticated,
        "classifier anonymous",
    );
    refused(
        intents.classify(as_(&b, classify(SHOP))).await,
        Code::PermissionDenied,
        "classifier: B naming A",
    );
    refused(
        intents.classify(as_(&svc, classify(""))).await,
        Code::Unauthenticated,
        "classifier: a credential meant for session-router",
    );
    let mut assistant = AssistantServiceClient::new(mesh.channel("assistant").await);
    let answer = |shop: &str| AnswerRequest {
        shop_id: shop.into(),
        text: "hi".into(),
        intent: "greeting".into(),
        ..Default::default()
    };
    assistant
        .answer(as_(&b, answer("")))
        .await
        .expect("B for itself");
    refused(
        assistant.answer(as_("", answer(""))).await,
        Code::Unauthenticated,
        "assistant anonymous",
    );
    refused(
        assistant.answer(as_(&b, answer(SHOP))).await,
        Code::PermissionDenied,
        "assistant: B naming A",
    );

    // ---- the internal AuthService: services only ----
    let mut auth = AuthServiceClient::new(mesh.channel("session-router").await);
    let who = |c: &str| AuthenticateRequest {
        credential: c.into(),
    };
    refused(
        auth.authenticate(as_(&b, who(&a))).await,
        Code::PermissionDenied,
        "a shop asks who holds A's key",
    );
    refused(
        auth.authenticate(as_("", who(&a))).await,
        Code::Unauthenticated,
        "anonymous",
    );
    let svc_auth = mesh.service_token("ticket", "session-router", "");
    let found = auth
        .authenticate(as_(&svc_auth, who(&alice.token)))
        .await
        .expect("a service asks")
        .into_inner();
    assert_eq!(
        (
            found.kind.as_str(),
            found.shop_id.as_str(),
            found.agent_id.as_str()
        ),
        ("agent", SHOP, "agent-alice")
    );

    // ---- admin: the operator only; `kefu shops create|list` ----
    let mut admin =
        AdminServiceClient::with_interceptor(mesh.channel("session-router").await, Bearer::new(&a));
    refused(
        admin.list_shops(ListShopsRequest::default()).await,
        Code::PermissionDenied,
        "a shop lists shops",
    );
    let token_file = mesh.dir.join("operator-token");
    let cli = |args: &[&str]| {
        std::process::Command::new(bin_dir().join("kefu"))
            .args(args)
            .args(["--url", &mesh.grpc_url("session-router")])
            .arg("--operator-token-file")
            .arg(&token_file)
            .output()
            .expect("kefu")
    };
    let created = cli(&["shops", "create", "shop-c"]);
    let out = String::from_utf8_lossy(&created.stdout).to_string();
    assert!(
        created.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key_c = out
        .lines()
        .find_map(|l| l.strip_prefix("api key: "))
        .expect("key printed")
        .to_owned();
    let again = cli(&["shops", "create", "shop-c"]);
    assert!(
        !again.status.success()
            && String::from_utf8_lossy(&again.stderr).contains("already exists")
    );
    let listed = String::from_utf8_lossy(&cli(&["shops", "list"]).stdout).to_string();
    for shop in [SHOP, B, "shop-c"] {
        assert!(
            listed.lines().any(|l| l.starts_with(&format!("{shop}\t"))),
            "{listed}"
        );
    }
    router
        .get_conversation(as_(&key_c, get_conv("")))
        .await
        .expect_err("C's key works and finds nothing of A's");
    let wrong_op = mesh.dir.join("wrong-operator-token");
    std::fs::write(&wrong_op, "kefo_not_the_operator_0123456789abcdef").unwrap();
    let denied = std::process::Command::new(bin_dir().join("kefu"))
        .args([
            "shops",
            "list",
            "--url",
            &mesh.grpc_url("session-router"),
            "--operator-token-file",
        ])
        .arg(&wrong_op)
        .output()
        .expect("kefu");
    assert!(!denied.status.success());

    // ---- revocation and rotation: at once here, and a rotated key survives a restart ----
    tokens
        .revoke_agent_token(as_(
            &a,
            RevokeAgentTokenRequest {
                token_id: alice_info.token_id.clone(),
            },
        ))
        .await
        .expect("revoke");
    refused(
        router
            .list_messages(as_(
                &alice.token,
                ListMessagesRequest {
                    conversation_id: conv.clone(),
                    ..Default::default()
                },
            ))
            .await,
        Code::Unauthenticated,
        "a revoked agent token",
    );
    let new_a = router
        .rotate_api_key(as_(&a, RotateApiKeyRequest::default()))
        .await
        .expect("rotate")
        .into_inner()
        .api_key;
    refused(
        router.get_conversation(as_(&a, get_conv(""))).await,
        Code::Unauthenticated,
        "the old key after rotation",
    );
    mesh.kill("session-router").await;
    mesh.restart("session-router").await;
    let mut router = SessionRouterServiceClient::new(mesh.channel("session-router").await);
    router
        .get_conversation(as_(&new_a, get_conv("")))
        .await
        .expect("the rotated key after a restart (the seed must not undo the rotation)");
    refused(
        router.get_conversation(as_(&a, get_conv(""))).await,
        Code::Unauthenticated,
        "the old key after a restart",
    );
}
