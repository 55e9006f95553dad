//! A shop's own intents through the whole mesh (docs/intent.md): `kefu intents train` teaches
//! a new intent, the next customer message with it is routed by the shop's dialogue policy,
//! another shop is unaffected and sees none of it, a worse model is not activated, and an
//! agent's label joins the shop's data. Real broker, real embedding server when `make test`
//! started one (`KEFU_TEST_EMBEDDINGS`).
use kefu_e2e::{Mesh, SHOP};
use kefu_proto::{
    intent::v1::{
        AddExamplesRequest, ClassifyRequest, GetIntentStatusRequest, LabeledExample,
        ListExamplesRequest, TrainRequest,
        intent_classifier_service_client::IntentClassifierServiceClient,
    },
    session::v1::{DialoguePolicy, SetDialoguePolicyRequest},
};
use serde_json::json;
use tonic::{Code, Request, transport::Channel};

const WHOLESALE: &[&str] = &[
    "我们公司想批量采购200件，有批发价吗",
    "大量拿货有优惠吗",
    "批发价怎么算",
    "采购500个能便宜多少",
    "企业团购怎么下单，需要开专票",
    "do you offer wholesale prices",
    "bulk order of 300 units, any discount?",
    "我是做代理的，想长期拿货",
    "公司年会要订一百份礼盒，能批发吗",
    "we are a retailer and want to stock your products",
    "团购一百件以上什么价格",
    "能不能给个渠道价，我们开店用",
];

/// Questions of built-in intents the first model never saw (the release check scores on
/// them).
const UNSEEN: &[(&str, &str)] = &[
    ("包裹显示签收了但我没收到", "order_status"),
    ("帮我看看货发出去没有", "order_status"),
    ("where is my package", "order_status"),
    ("快递三天没动静了", "shipping_delay"),
    ("物流一直卡在中转站", "shipping_delay"),
    ("说好昨天到的 今天还没到", "shipping_delay"),
    ("东西坏了能换个新的吗", "return_exchange"),
    ("尺码不合适想换大一号", "return_exchange"),
    ("收到的颜色不对 要退", "return_exchange"),
    ("钱什么时候退回来", "refund"),
    ("退款申请了五天还没到账", "refund"),
    ("i want my money back", "refund"),
    ("下错单了帮我取消", "cancel_order"),
    ("刚拍的不想要了，取消吧", "cancel_order"),
    ("cancel my order please", "cancel_order"),
    ("收货地址写错了要改", "change_address"),
    ("地址改成公司那边", "change_address"),
    ("换个收件地址可以吗", "change_address"),
    ("店铺券和平台券能一起用吗", "coupon_promotion"),
    ("满减活动还有吗", "coupon_promotion"),
    ("有没有优惠券可以领", "coupon_promotion"),
    ("发票抬头写错了能重开吗", "invoice"),
    ("电子发票在哪里下载", "invoice"),
    ("公司报销要专票，怎么弄", "invoice"),
    ("货到哪儿了呀亲", "order_status"),
];

fn authed<T>(key: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("header"),
    );
    r
}

fn csv(rows: &[(&str, &str)]) -> String {
    let mut s = String::from("sentence,label\n");
    for (t, l) in rows {
        s.push_str(&format!("\"{}\",{l}\n", t.replace('"', "\"\"")));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_trains_its_own_intent_and_the_next_message_is_routed_by_it() {
    let mesh = Mesh::start("intents").await;
    let shop_b_key = mesh.add_shop("shop-b").await;
    let url = mesh.grpc_url("intent-classifier");
    let ch: Channel = mesh.channel("intent-classifier").await;
    let mut intents = IntentClassifierServiceClient::new(ch);
    let probe = "你好，我们单位想批量订300件做员工福利，能给批发价吗";
    let classify = |key: &str| {
        authed(
            key,
            ClassifyRequest {
                text: probe.into(),
                ..Default::default()
            },
        )
    };
    let before = intents
        .classify(classify(&mesh.api_key))
        .await
        .expect("classify")
        .into_inner();
    assert_ne!(before.intent, "wholesale");

    // Train through the CLI.
    let dir = std::env::temp_dir().join(format!("kefu-intents-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let data = dir.join("wholesale.csv");
    let rows: Vec<(&str, &str)> = WHOLESALE.iter().map(|t| (*t, "wholesale")).collect();
    std::fs::write(&data, csv(&rows)).expect("csv");
    let (ok, out, err) = mesh.kefu(&[
        "intents",
        "train",
        "--data",
        data.to_str().expect("path"),
        "--api-key",
        &mesh.api_key,
        "--url",
        &url,
    ]);
    assert!(
        ok,
        "train failed\n{out}\n{err}\n{}",
        mesh.log_tail("intent-classifier")
    );
    eprintln!("{out}");
    assert!(out.contains("\nactivated: "), "{out}");
    assert!(out.contains("12 the shop's"), "{out}");

    // The shop's next message with that intent is classified by its model …
    let after = intents
        .classify(classify(&mesh.api_key))
        .await
        .expect("classify")
        .into_inner();
    assert_eq!(after.intent, "wholesale", "{after:?}");
    assert!(after.model.contains("shop version 1"), "{}", after.model);
    // … built-in intents still work …
    let refund = intents
        .classify(authed(
            &mesh.api_key,
            ClassifyRequest {
                text: "我要退货".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("classify")
        .into_inner();
    assert_eq!(refund.intent, "return_exchange");
    // … and another shop is not affected.
    let other = intents
        .classify(classify(&shop_b_key))
        .await
        .expect("classify")
        .into_inner();
    assert_ne!(other.intent, "wholesale");
    assert!(!other.model.contains("shop version"), "{}", other.model);

    // The shop hands its new intent to people; the next customer message is routed by it.
    let mut sessions = mesh.session_client().await;
    sessions
        .set_dialogue_policy(mesh.authed(SetDialoguePolicyRequest {
            shop_id: SHOP.into(),
            policy: Some(DialoguePolicy {
                min_confidence: 0.5,
                max_repeats: 3,
                human_intents: vec!["wholesale".into()],
            }),
        }))
        .await
        .expect("policy with the shop's own intent");
    let (s, reply) = mesh
        .post_message(&json!({"shop_id": SHOP, "channel": "web", "channel_user_id": "buyer-1", "channel_message_id": "w-1", "text": probe, "wait_ms": 30000}))
        .await;
    assert_eq!(s, 200, "{reply}\n{}", mesh.logs());
    assert_eq!(reply["reply"]["intent"], "wholesale", "{reply}");
    assert_eq!(reply["reply"]["source"], "system", "{reply}");
    assert!(
        reply["reply"]["ticket_id"]
            .as_str()
            .unwrap_or_default()
            .starts_with("T-"),
        "{reply}"
    );

    // Shop B sees none of shop A's examples or versions, and cannot act for shop A.
    let listed = intents
        .list_examples(authed(&shop_b_key, ListExamplesRequest::default()))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.examples.is_empty());
    let st = intents
        .get_intent_status(authed(&shop_b_key, GetIntentStatusRequest::default()))
        .await
        .expect("status")
        .into_inner();
    assert!(st.versions.is_empty() && st.active_version == 0);
    let denied = intents
        .train(authed(
            &shop_b_key,
            TrainRequest {
                shop_id: SHOP.into(),
                ..Default::default()
            },
        ))
        .await
        .expect_err("shop B trains for shop A");
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Bad input: a field per problem.
    let bad = intents
        .add_examples(authed(
            &mesh.api_key,
            AddExamplesRequest {
                examples: vec![
                    LabeledExample {
                        text: "".into(),
                        label: "ok".into(),
                    },
                    LabeledExample {
                        text: "fine".into(),
                        label: "Not A Label".into(),
                    },
                ],
                ..Default::default()
            },
        ))
        .await
        .expect_err("bad examples");
    assert_eq!(bad.code(), Code::InvalidArgument);
    let (ok, _, err) = {
        let f = dir.join("few.csv");
        std::fs::write(&f, csv(&[("只有一句", "lonely_label")])).expect("csv");
        mesh.kefu(&[
            "intents",
            "train",
            "--data",
            f.to_str().expect("path"),
            "--api-key",
            &mesh.api_key,
            "--url",
            &url,
        ])
    };
    assert!(!ok);
    assert!(
        err.contains("lonely_label") && err.contains("at least 3"),
        "{err}"
    );
    let lonely: Vec<i64> = intents
        .list_examples(authed(
            &mesh.api_key,
            ListExamplesRequest {
                label: "lonely_label".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("list")
        .into_inner()
        .examples
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(lonely.len(), 1);
    intents
        .delete_examples(authed(
            &mesh.api_key,
            kefu_proto::intent::v1::DeleteExamplesRequest {
                ids: lonely,
                ..Default::default()
            },
        ))
        .await
        .expect("delete");

    // A worse model is not activated: only the shop's own examples (no built-in defaults)
    // against the active model on questions it never saw.
    let worse = dir.join("worse.csv");
    let mut rows = rows.clone();
    rows.extend(UNSEEN.iter().copied());
    std::fs::write(&worse, csv(&rows)).expect("csv");
    let (ok, out, err) = mesh.kefu(&[
        "intents",
        "train",
        "--data",
        worse.to_str().expect("path"),
        "--disable-builtin",
        "all",
        "--no-generic-negatives",
        "--api-key",
        &mesh.api_key,
        "--url",
        &url,
    ]);
    eprintln!("{out}");
    assert!(!ok, "a worse model was activated\n{out}\n{err}");
    assert!(out.contains("not activated"), "{out}\n{err}");
    let st = intents
        .get_intent_status(authed(&mesh.api_key, GetIntentStatusRequest::default()))
        .await
        .expect("status")
        .into_inner();
    assert_eq!((st.active_version, st.versions.len()), (1, 2), "{st:?}");

    // An agent labels a message; it joins the shop's data, marked as the agent's.
    let (ok, out, err) = mesh.kefu(&[
        "intents",
        "label",
        "--text",
        "你们支持一件代发吗",
        "--intent",
        "wholesale",
        "--agent",
        "agent-7",
        "--api-key",
        &mesh.api_key,
        "--url",
        &url,
    ]);
    assert!(ok, "{out}{err}");
    let (ok, exported, err) = mesh.kefu(&[
        "intents",
        "examples",
        "--source",
        "agent",
        "--api-key",
        &mesh.api_key,
        "--url",
        &url,
    ]);
    assert!(ok, "{err}");
    assert!(
        exported.contains("你们支持一件代发吗,wholesale,agent,agent-7"),
        "{exported}"
    );

    // Evaluate and classify through the CLI.
    let held = dir.join("held.csv");
    std::fs::write(
        &held,
        csv(&[
            ("我们想批量进货五百件", "wholesale"),
            ("wholesale price for 1000 pcs?", "wholesale"),
            ("我的快递到哪了", "order_status"),
            ("明天天气怎么样", "out_of_scope"),
        ]),
    )
    .expect("csv");
    let (ok, out, err) = mesh.kefu(&[
        "intents",
        "eval",
        "--data",
        held.to_str().expect("path"),
        "--json",
        "--api-key",
        &mesh.api_key,
        "--url",
        &url,
    ]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
    assert_eq!(report["running"]["examples"], 4, "{report}");
    assert!(report["running"]["mcc"].as_f64().is_some(), "{report}");
}
