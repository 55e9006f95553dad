//! The conversation state machine: bot → waiting_for_human → human → bot (hand-back), and
//! → closed (a new message then opens a new, linked conversation). While a person has the
//! conversation the bot stays silent and the customer's messages go to the ticket.
use std::time::Duration;

use kefu_e2e::{Mesh, SHOP};
use kefu_proto::{
    session::v1::{
        Conversation, GetConversationRequest, ListConversationsRequest, ListMessagesRequest,
    },
    ticket::v1::{
        CloseTicketRequest, HandBackTicketRequest, ListTicketMessagesRequest, ReplyToTicketRequest,
    },
};
use serde_json::{Value, json};
use tonic::Code;

async fn post(mesh: &Mesh, id: &str, text: &str, wait_ms: u64) -> Value {
    let body = json!({"shop_id": SHOP, "channel": "wechat", "channel_user_id": "hand-1",
        "channel_message_id": id, "text": text, "wait_ms": wait_ms});
    let (status, v) = mesh.post_message(&body).await;
    assert!((200..300).contains(&status), "{status}");
    v
}

async fn conversation(mesh: &Mesh, id: &str) -> Conversation {
    mesh.session_client()
        .await
        .get_conversation(mesh.authed(GetConversationRequest {
            shop_id: SHOP.into(),
            conversation_id: id.into(),
        }))
        .await
        .expect("conversation")
        .into_inner()
        .conversation
        .expect("conversation")
}

/// Polls until the conversation reaches `state` (state changes travel over Kafka).
async fn wait_state(mesh: &Mesh, id: &str, state: &str) -> Conversation {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let c = conversation(mesh, id).await;
        if c.state == state {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "conversation stayed {} (wanted {state})\n{}",
            c.state,
            mesh.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Replies (source, text) in the conversation's transcript.
async fn replies(mesh: &Mesh, conv: &str) -> Vec<(String, String)> {
    let page = mesh
        .session_client()
        .await
        .list_messages(mesh.authed(ListMessagesRequest {
            shop_id: SHOP.into(),
            conversation_id: conv.into(),
            page_size: 100,
            page_token: String::new(),
        }))
        .await
        .expect("transcript")
        .into_inner();
    page.entries
        .into_iter()
        .filter(|e| e.author != "customer")
        .map(|e| (e.author, e.text))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_human_hand_back_and_close() {
    let mesh = Mesh::start("handover").await;
    let mut tickets = mesh.ticket_client().await;

    // The customer asks for a person: a ticket opens and the conversation waits for an agent.
    let first = post(&mesh, "h1", "我要转人工", 30_000).await;
    assert_eq!(first["reply"]["source"], "system", "{first}");
    let ticket_id = first["reply"]["ticket_id"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let conv = first["conversation_id"].as_str().expect("conv").to_owned();
    let c = wait_state(&mesh, &conv, "waiting_for_human").await;
    // OPENED arrives on kefu.ticket.updates.v1 right after the ack.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut c = c;
    while c.open_ticket_id != ticket_id {
        assert!(tokio::time::Instant::now() < deadline, "{c:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        c = conversation(&mesh, &conv).await;
    }

    // While waiting, the bot stays silent: a question it could answer goes to the ticket.
    let silent = post(&mesh, "h2", "我的订单到哪了", 3_000).await;
    assert_eq!(
        silent["status"], "accepted",
        "no reply while with a person: {silent}"
    );
    assert_eq!(silent["conversation_id"], conv.as_str());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let thread = loop {
        let t = tickets
            .list_ticket_messages(ListTicketMessagesRequest {
                shop_id: SHOP.into(),
                ticket_id: ticket_id.clone(),
                ..Default::default()
            })
            .await
            .expect("thread")
            .into_inner()
            .messages;
        if t.len() >= 2 || tokio::time::Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let texts: Vec<&str> = thread.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["我要转人工", "我的订单到哪了"], "{thread:?}");
    assert!(thread.iter().all(|m| m.author == "customer"));

    // The customer's CLI says why no reply comes, and who has the conversation.
    let out = std::process::Command::new(kefu_e2e::bin_dir().join("kefu"))
        .args([
            "send",
            "--channel",
            "wechat",
            "--user",
            "hand-1",
            "--wait-secs",
            "2",
        ])
        .args([
            "--text",
            "还在吗",
            "--url",
            &mesh.grpc_url("session-router"),
        ])
        .args(["--api-key", &mesh.api_key])
        .output()
        .expect("kefu send");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("waiting for a person") && err.contains(&ticket_id),
        "{err}"
    );

    // An agent answers (and retries the same request): the customer gets it once, from a human.
    let reply = |request_id: &str, text: &str| ReplyToTicketRequest {
        shop_id: SHOP.into(),
        ticket_id: ticket_id.clone(),
        agent_id: "agent.alice".into(),
        text: text.into(),
        request_id: request_id.into(),
    };
    let r1 = tickets
        .reply_to_ticket(reply("req-1", "您好，我是小李，马上帮您查询。"))
        .await
        .expect("agent reply")
        .into_inner();
    let r1_again = tickets
        .reply_to_ticket(reply("req-1", "您好，我是小李，马上帮您查询。"))
        .await
        .expect("retried agent reply")
        .into_inner();
    assert_eq!(r1.reply_id, r1_again.reply_id);
    let t = r1.ticket.expect("ticket");
    assert_eq!(
        (t.status.as_str(), t.assignee.as_str()),
        ("active", "agent.alice")
    );
    assert!(t.first_response_at.is_some());
    wait_state(&mesh, &conv, "human").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let human: Vec<_> = replies(&mesh, &conv)
            .await
            .into_iter()
            .filter(|(source, _)| source == "human")
            .collect();
        if !human.is_empty() {
            assert_eq!(
                human,
                [(
                    "human".to_owned(),
                    "您好，我是小李，马上帮您查询。".to_owned()
                )]
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "agent reply never arrived\n{}",
            mesh.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Bad agent requests get field-level errors; another shop's id is refused.
    let bad = tickets
        .reply_to_ticket(reply("req 2", ""))
        .await
        .expect_err("invalid");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("text") && bad.message().contains("request_id"),
        "{bad:?}"
    );
    let mut other_shop = reply("req-3", "hi");
    other_shop.shop_id = "shop-b".into();
    assert_eq!(
        tickets
            .reply_to_ticket(other_shop)
            .await
            .expect_err("other shop")
            .code(),
        Code::PermissionDenied
    );

    // Hand-back: the bot answers again.
    let back = tickets
        .hand_back_ticket(HandBackTicketRequest {
            shop_id: SHOP.into(),
            ticket_id: ticket_id.clone(),
            agent_id: "agent.alice".into(),
        })
        .await
        .expect("hand back")
        .into_inner()
        .ticket
        .expect("ticket");
    assert_eq!(back.status, "handed_back");
    let c = wait_state(&mesh, &conv, "bot").await;
    assert_eq!(c.open_ticket_id, "");
    let answered = post(&mesh, "h3", "我的订单到哪了", 30_000).await;
    assert_eq!(answered["reply"]["source"], "bot", "{answered}");
    assert_eq!(answered["conversation_id"], conv.as_str());
    assert_eq!(
        tickets
            .reply_to_ticket(reply("req-4", "still there?"))
            .await
            .expect_err("handed back")
            .code(),
        Code::FailedPrecondition
    );

    // A second hand-over, then the agent closes: the next message opens a new conversation
    // linked to this one.
    let again = post(&mesh, "h4", "转人工客服", 30_000).await;
    assert_eq!(again["reply"]["source"], "system", "{again}");
    let ticket2 = again["reply"]["ticket_id"]
        .as_str()
        .expect("ticket")
        .to_owned();
    assert_ne!(ticket2, ticket_id, "a new ticket for the new hand-over");
    wait_state(&mesh, &conv, "waiting_for_human").await;
    let close = CloseTicketRequest {
        shop_id: SHOP.into(),
        ticket_id: ticket2.clone(),
        agent_id: "agent.bob".into(),
    };
    tickets.close_ticket(close.clone()).await.expect("close");
    let closed = tickets
        .close_ticket(close)
        .await
        .expect("close is idempotent");
    assert_eq!(closed.into_inner().ticket.expect("t").status, "closed");
    wait_state(&mesh, &conv, "closed").await;
    let next = post(&mesh, "h5", "你好", 30_000).await;
    let new_conv = next["conversation_id"].as_str().expect("conv").to_owned();
    assert_ne!(
        new_conv, conv,
        "a closed conversation takes no new messages"
    );
    let c = conversation(&mesh, &new_conv).await;
    assert_eq!(
        (c.previous_conversation_id.as_str(), c.state.as_str()),
        (conv.as_str(), "bot")
    );

    // State filter of ListConversations.
    let list = |state: &str| ListConversationsRequest {
        shop_id: SHOP.into(),
        customer_id: String::new(),
        page_size: 100,
        page_token: String::new(),
        state: state.into(),
    };
    let mut client = mesh.session_client().await;
    let closed: Vec<String> = client
        .list_conversations(mesh.authed(list("closed")))
        .await
        .expect("closed")
        .into_inner()
        .conversations
        .into_iter()
        .map(|c| c.conversation_id)
        .collect();
    assert_eq!(closed, std::slice::from_ref(&conv));
    let bots: Vec<String> = client
        .list_conversations(mesh.authed(list("bot")))
        .await
        .expect("bot")
        .into_inner()
        .conversations
        .into_iter()
        .map(|c| c.conversation_id)
        .collect();
    assert_eq!(bots, [new_conv]);
    let bad = client
        .list_conversations(mesh.authed(list("sleeping")))
        .await
        .expect_err("bad state");
    assert_eq!(bad.code(), Code::InvalidArgument);
}
