//! Session-router's read APIs, tenant isolation, and two replicas serving waiting requests.
use std::time::Duration;

use kefu_e2e::{Mesh, SHOP};
use kefu_proto::session::v1::{
    DialoguePolicy, GetConversationRequest, GetCustomerRequest, GetDialoguePolicyRequest,
    IdentityRef, LinkIdentitiesRequest, ListConversationsRequest, ListMessagesRequest,
    RotateApiKeyRequest, SendRequest, SetDialoguePolicyRequest, SubscribeRequest,
    UnlinkIdentityRequest,
};
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tonic::{Code, Request, metadata::MetadataValue};

fn with_key<T>(msg: T, key: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {key}")).expect("key"),
    );
    r
}

async fn post(url: &str, key: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/messages"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .timeout(Duration::from_secs(40))
        .body(body.to_string())
        .send()
        .await
        .expect("http");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_conversations_customers_and_tenant_isolation() {
    let mesh = Mesh::start("sessions").await;
    let mut client = mesh.session_client().await;
    let body = |id: &str, text: &str| json!({"shop_id": SHOP, "channel": "wechat", "channel_user_id": "wx-1", "channel_message_id": id, "text": text, "wait_ms": 30000});
    let (s1, first) = post(&mesh.http_url(), &mesh.api_key, body("w1", "hello")).await;
    let (s2, second) = post(
        &mesh.http_url(),
        &mesh.api_key,
        body("w2", "我的订单到哪了"),
    )
    .await;
    assert_eq!((s1, s2), (200, 200), "{first} {second}\n{}", mesh.logs());
    let conv = first["conversation_id"].as_str().expect("conv").to_owned();
    assert_eq!(
        second["conversation_id"], first["conversation_id"],
        "one conversation"
    );
    let customer = first["customer_id"].as_str().expect("customer").to_owned();

    // Transcript over gRPC, paginated: message, reply, message, reply.
    let page1 = client
        .list_messages(mesh.authed(ListMessagesRequest {
            shop_id: SHOP.into(),
            conversation_id: conv.clone(),
            page_size: 3,
            page_token: String::new(),
        }))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(
        page1
            .entries
            .iter()
            .map(|e| e.author.as_str())
            .collect::<Vec<_>>(),
        ["customer", "bot", "customer"]
    );
    assert_eq!(page1.entries[0].text, "hello");
    let page2 = client
        .list_messages(mesh.authed(ListMessagesRequest {
            shop_id: SHOP.into(),
            conversation_id: conv.clone(),
            page_size: 3,
            page_token: page1.next_page_token.clone(),
        }))
        .await
        .expect("page 2")
        .into_inner();
    assert_eq!(page2.entries.len(), 1);
    assert_eq!(page2.entries[0].author, "bot", "{second}");
    assert!(page2.next_page_token.is_empty());

    // The same over HTTP.
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/v1/conversations/{conv}/messages?shop_id={SHOP}",
            mesh.http_url()
        ))
        .header("authorization", format!("Bearer {}", mesh.api_key))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["entries"].as_array().map(Vec::len), Some(4), "{v}");

    let c = client
        .get_conversation(mesh.authed(GetConversationRequest {
            shop_id: SHOP.into(),
            conversation_id: conv.clone(),
        }))
        .await
        .expect("conversation")
        .into_inner()
        .conversation
        .expect("conversation");
    assert_eq!(
        (c.customer_id.as_str(), c.state.as_str()),
        (customer.as_str(), "bot")
    );
    assert_eq!(
        c.recent_intents.first().map(String::as_str),
        Some("order_status")
    );
    let list = client
        .list_conversations(mesh.authed(ListConversationsRequest {
            shop_id: SHOP.into(),
            customer_id: customer.clone(),
            page_size: 0,
            page_token: String::new(),
            state: String::new(),
        }))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.conversations.len(), 1);
    let cust = client
        .get_customer(mesh.authed(GetCustomerRequest {
            shop_id: SHOP.into(),
            customer_id: customer.clone(),
        }))
        .await
        .expect("customer")
        .into_inner()
        .customer
        .expect("customer");
    assert_eq!(cust.identities.len(), 1);
    assert_eq!(
        (
            cust.identities[0].channel.as_str(),
            cust.identities[0].channel_user_id.as_str()
        ),
        ("wechat", "wx-1")
    );

    // Shop B sees nothing of shop A: with B's key every read of A's data fails, and reads
    // scoped to B do not find A's ids.
    let key_b = mesh.add_shop("shop-b").await;
    let st = client
        .get_conversation(with_key(
            GetConversationRequest {
                shop_id: SHOP.into(),
                conversation_id: conv.clone(),
            },
            &key_b,
        ))
        .await
        .expect_err("A's data with B's key");
    assert_eq!(st.code(), Code::PermissionDenied);
    let st = client
        .get_conversation(with_key(
            GetConversationRequest {
                shop_id: "shop-b".into(),
                conversation_id: conv.clone(),
            },
            &key_b,
        ))
        .await
        .expect_err("A's conversation under B");
    assert_eq!(st.code(), Code::NotFound);
    let st = client
        .get_customer(with_key(
            GetCustomerRequest {
                shop_id: "shop-b".into(),
                customer_id: customer.clone(),
            },
            &key_b,
        ))
        .await
        .expect_err("A's customer under B");
    assert_eq!(st.code(), Code::NotFound);
    let st = client
        .list_messages(with_key(
            ListMessagesRequest {
                shop_id: "shop-b".into(),
                conversation_id: conv.clone(),
                page_size: 0,
                page_token: String::new(),
            },
            &key_b,
        ))
        .await
        .expect_err("A's transcript under B");
    assert_eq!(st.code(), Code::NotFound);
    let list_b = client
        .list_conversations(with_key(
            ListConversationsRequest {
                shop_id: "shop-b".into(),
                customer_id: String::new(),
                page_size: 0,
                page_token: String::new(),
                state: String::new(),
            },
            &key_b,
        ))
        .await
        .expect("B's list")
        .into_inner();
    assert!(list_b.conversations.is_empty());
    let Err(st) = client
        .subscribe(with_key(
            SubscribeRequest {
                shop_id: SHOP.into(),
                conversation_id: String::new(),
                after_cursor: 0,
                channel: String::new(),
            },
            &key_b,
        ))
        .await
    else {
        panic!("B subscribed to A's replies");
    };
    assert_eq!(st.code(), Code::PermissionDenied);
    let mut b_stream = client
        .subscribe(with_key(
            SubscribeRequest {
                shop_id: "shop-b".into(),
                conversation_id: String::new(),
                after_cursor: 0,
                channel: String::new(),
            },
            &key_b,
        ))
        .await
        .expect("B's own stream")
        .into_inner();
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), b_stream.next())
            .await
            .is_err(),
        "B's stream carries none of A's replies"
    );

    // A shop rule: refunds always go to people.
    let default = client
        .get_dialogue_policy(mesh.authed(GetDialoguePolicyRequest {
            shop_id: SHOP.into(),
        }))
        .await
        .expect("policy")
        .into_inner()
        .policy
        .expect("policy");
    assert_eq!((default.max_repeats, default.human_intents.len()), (3, 0));
    let st = client
        .set_dialogue_policy(mesh.authed(SetDialoguePolicyRequest {
            shop_id: SHOP.into(),
            policy: Some(DialoguePolicy {
                min_confidence: 2.0,
                max_repeats: 3,
                human_intents: vec!["refunds".into()],
            }),
        }))
        .await
        .expect_err("invalid policy");
    assert_eq!(st.code(), Code::InvalidArgument);
    client
        .set_dialogue_policy(mesh.authed(SetDialoguePolicyRequest {
            shop_id: SHOP.into(),
            policy: Some(DialoguePolicy {
                min_confidence: 0.5,
                max_repeats: 3,
                human_intents: vec!["refund".into()],
            }),
        }))
        .await
        .expect("set policy");
    let (s, refund) = post(&mesh.http_url(), &mesh.api_key, json!({"shop_id": SHOP, "channel": "wechat", "channel_user_id": "rule-user", "channel_message_id": "rule-1", "text": "退款什么时候到账", "wait_ms": 30000})).await;
    assert_eq!(s, 200, "{refund}");
    assert_eq!(
        refund["reply"]["source"], "system",
        "the shop rule handed it to a person: {refund}"
    );
    assert!(
        refund["reply"]["ticket_id"]
            .as_str()
            .unwrap_or_default()
            .starts_with("T-")
    );

    // B rotates its key: the old one stops working, the new one works.
    let new_b = client
        .rotate_api_key(with_key(
            RotateApiKeyRequest {
                shop_id: "shop-b".into(),
            },
            &key_b,
        ))
        .await
        .expect("rotate")
        .into_inner()
        .api_key;
    assert_ne!(new_b, key_b);
    let list_b = |key: &str| {
        with_key(
            ListConversationsRequest {
                shop_id: "shop-b".into(),
                customer_id: String::new(),
                page_size: 0,
                page_token: String::new(),
                state: String::new(),
            },
            key,
        )
    };
    assert_eq!(
        client
            .list_conversations(list_b(&key_b))
            .await
            .expect_err("old key")
            .code(),
        Code::Unauthenticated
    );
    client
        .list_conversations(list_b(&new_b))
        .await
        .expect("new key");

    // Channel filter: A's replies on "web" only — none, since everything came on wechat.
    let mut web = client
        .subscribe(mesh.authed(SubscribeRequest {
            shop_id: SHOP.into(),
            conversation_id: String::new(),
            after_cursor: 0,
            channel: "web".into(),
        }))
        .await
        .expect("web stream")
        .into_inner();
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), web.next())
            .await
            .is_err()
    );
    let bad = client
        .list_messages(mesh.authed(ListMessagesRequest {
            shop_id: SHOP.into(),
            conversation_id: conv,
            page_size: 500,
            page_token: "zzz".into(),
        }))
        .await
        .expect_err("bad page");
    assert_eq!(bad.code(), Code::InvalidArgument);
    let _ = client
        .send(mesh.authed(SendRequest {
            shop_id: SHOP.into(),
            channel: "web".into(),
            channel_user_id: "x".into(),
            channel_message_id: "x".into(),
            text: "hi".into(),
            ..Default::default()
        }))
        .await
        .expect("still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_router_replicas_answer_waiting_requests_whichever_consumed_the_reply() {
    let mut mesh = Mesh::start("replicas").await;
    let second = mesh.start_second_router().await;
    // Let the replies topic's two partitions spread over both replicas.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let urls = [mesh.http_url(), second];
    let mut tasks = Vec::new();
    for i in 0..12 {
        let url = urls[i % 2].clone();
        let key = mesh.api_key.clone();
        tasks.push(tokio::spawn(async move {
            post(&url, &key, json!({"shop_id": SHOP, "channel": "web", "channel_user_id": format!("r-{i}"), "channel_message_id": format!("r-{i}"), "text": "hello", "wait_ms": 30000})).await
        }));
    }
    for t in tasks {
        let (status, body) = t.await.expect("task");
        assert_eq!(status, 200, "{body}\n{}", mesh.logs());
        assert_eq!(body["status"], "answered");
    }
    // Both replicas consumed replies, so some waits were answered through the other replica.
    for key in ["session-router", "session-router-2"] {
        let text = mesh.metrics_text(key).await;
        let consumed: f64 = text
            .lines()
            .filter(|l| {
                l.starts_with("kefu_events_consumed_total")
                    && l.contains("replies.v1")
                    && l.contains("outcome=\"ok\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(consumed > 0.0, "{key} consumed no replies:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_identities_share_one_conversation_and_unlinking_splits_them() {
    let mesh = Mesh::start("links").await;
    let mut client = mesh.session_client().await;
    let msg = |channel: &str, user: &str, id: &str, text: &str| json!({"shop_id": SHOP, "channel": channel, "channel_user_id": user, "channel_message_id": id, "text": text, "wait_ms": 30000});
    let (s, wx) = post(
        &mesh.http_url(),
        &mesh.api_key,
        msg("wechat", "wx-9", "l1", "hello"),
    )
    .await;
    assert_eq!(s, 200, "{wx}\n{}", mesh.logs());
    let (conv, customer) = (
        wx["conversation_id"].as_str().unwrap().to_owned(),
        wx["customer_id"].as_str().unwrap().to_owned(),
    );

    let linked = client
        .link_identities(mesh.authed(LinkIdentitiesRequest {
            shop_id: SHOP.into(),
            customer_id: customer.clone(),
            identities: vec![IdentityRef {
                channel: "taobao".into(),
                channel_user_id: "tb-9".into(),
            }],
            reason: "agent verified the phone number".into(),
        }))
        .await
        .expect("link")
        .into_inner()
        .customer
        .expect("customer");
    assert_eq!(linked.identities.len(), 2);

    // The customer continues on Taobao: same customer, same conversation, one transcript.
    let (s, tb) = post(
        &mesh.http_url(),
        &mesh.api_key,
        msg("taobao", "tb-9", "l2", "你好，还在吗"),
    )
    .await;
    assert_eq!(s, 200, "{tb}");
    assert_eq!(
        (tb["customer_id"].as_str(), tb["conversation_id"].as_str()),
        (Some(customer.as_str()), Some(conv.as_str()))
    );
    let transcript = |conversation_id: String| ListMessagesRequest {
        shop_id: SHOP.into(),
        conversation_id,
        page_size: 0,
        page_token: String::new(),
    };
    let all = client
        .list_messages(mesh.authed(transcript(conv.clone())))
        .await
        .expect("transcript")
        .into_inner()
        .entries;
    assert_eq!(
        all.iter()
            .map(|e| (e.author.as_str(), e.channel.as_str()))
            .collect::<Vec<_>>(),
        [
            ("customer", "wechat"),
            ("bot", "wechat"),
            ("customer", "taobao"),
            ("bot", "taobao")
        ]
    );

    // Unlinking splits them again: Taobao's messages and replies leave the conversation.
    let un = client
        .unlink_identity(mesh.authed(UnlinkIdentityRequest {
            shop_id: SHOP.into(),
            identity: Some(IdentityRef {
                channel: "taobao".into(),
                channel_user_id: "tb-9".into(),
            }),
            reason: "linked by mistake".into(),
        }))
        .await
        .expect("unlink")
        .into_inner();
    assert_ne!(un.customer_id, customer);
    let left = client
        .list_messages(mesh.authed(transcript(conv.clone())))
        .await
        .expect("left")
        .into_inner()
        .entries;
    assert!(
        left.iter().all(|e| e.channel == "wechat") && left.len() == 2,
        "{left:?}"
    );
    let split = client
        .list_messages(mesh.authed(transcript(un.conversation_id.clone())))
        .await
        .expect("split")
        .into_inner()
        .entries;
    assert!(
        split.iter().all(|e| e.channel == "taobao") && split.len() == 2,
        "{split:?}"
    );
    let after = client
        .get_customer(mesh.authed(GetCustomerRequest {
            shop_id: SHOP.into(),
            customer_id: customer.clone(),
        }))
        .await
        .expect("customer")
        .into_inner();
    assert_eq!(after.customer.expect("customer").identities.len(), 1);
    assert_eq!(
        after
            .history
            .iter()
            .map(|h| h.action.as_str())
            .collect::<Vec<_>>(),
        ["link", "unlink"]
    );
    assert_eq!(after.history[1].reason, "linked by mistake");
    // Taobao now continues its own conversation.
    let (_, next) = post(
        &mesh.http_url(),
        &mesh.api_key,
        msg("taobao", "tb-9", "l3", "谢谢"),
    )
    .await;
    assert_eq!(
        (
            next["customer_id"].as_str(),
            next["conversation_id"].as_str()
        ),
        (
            Some(un.customer_id.as_str()),
            Some(un.conversation_id.as_str())
        )
    );

    // Bad input and unknown ids get clear errors.
    let st = client
        .link_identities(mesh.authed(LinkIdentitiesRequest {
            shop_id: SHOP.into(),
            customer_id: "cus_nope".into(),
            identities: vec![IdentityRef {
                channel: "web".into(),
                channel_user_id: "x".into(),
            }],
            reason: "r".into(),
        }))
        .await
        .expect_err("unknown customer");
    assert_eq!(st.code(), Code::NotFound);
    let st = client
        .link_identities(mesh.authed(LinkIdentitiesRequest {
            shop_id: SHOP.into(),
            customer_id: customer,
            identities: vec![],
            reason: String::new(),
        }))
        .await
        .expect_err("empty");
    assert_eq!(st.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_with_the_same_verified_phone_are_linked_automatically() {
    let mesh = Mesh::start("autolink").await;
    let mut client = mesh.session_client().await;
    let msg = |channel: &str, user: &str, id: &str, phone: &str| json!({"shop_id": SHOP, "channel": channel, "channel_user_id": user, "channel_message_id": id, "text": "hello", "wait_ms": 30000, "verified_phone": phone});
    let (s, wx) = post(
        &mesh.http_url(),
        &mesh.api_key,
        msg("wechat", "wx-a", "a1", "+86 138-0013-8000"),
    )
    .await;
    assert_eq!(s, 200, "{wx}\n{}", mesh.logs());
    // Same phone written differently on another channel: the same customer and conversation.
    let (_, tb) = post(
        &mesh.http_url(),
        &mesh.api_key,
        msg("taobao", "tb-a", "a2", "8613800138000"),
    )
    .await;
    assert_eq!(
        (tb["customer_id"].as_str(), tb["conversation_id"].as_str()),
        (wx["customer_id"].as_str(), wx["conversation_id"].as_str()),
        "{tb}"
    );
    // Another phone: another customer.
    let (_, other) = post(
        &mesh.http_url(),
        &mesh.api_key,
        msg("taobao", "tb-b", "a3", "+86 139 0000 0000"),
    )
    .await;
    assert_ne!(other["customer_id"], wx["customer_id"]);
    let history = client
        .get_customer(mesh.authed(GetCustomerRequest {
            shop_id: SHOP.into(),
            customer_id: wx["customer_id"].as_str().unwrap().into(),
        }))
        .await
        .expect("customer")
        .into_inner()
        .history;
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].action.as_str(), history[0].reason.as_str()),
        ("link", "verified phone matched")
    );
    // Bad verified keys are rejected with field details.
    let (s, bad) = post(&mesh.http_url(), &mesh.api_key, json!({"shop_id": SHOP, "channel": "web", "channel_user_id": "x", "channel_message_id": "a4", "text": "hi", "verified_phone": "call me", "verified_email": "nope"})).await;
    assert_eq!(s, 400, "{bad}");
    let fields: Vec<&str> = bad["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert_eq!(fields, ["verified_phone", "verified_email"]);
}
