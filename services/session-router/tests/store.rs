//! session-router's persistence against real databases: SQLite (file) and PostgreSQL.
use chrono::Utc;
use kefu_runtime::db;
use kefu_session_router::{
    auth,
    entity::{migration::Migrator, reply},
    store,
};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ConnectionTrait, DatabaseConnection,
};

async fn sqlite() -> DatabaseConnection {
    let dir = std::env::temp_dir().join(format!("kefu-store-{}", uuid::Uuid::new_v4().simple()));
    let url = format!("sqlite://{}/router.db", dir.display());
    db::connect_and_migrate::<Migrator>(&url)
        .await
        .expect("sqlite")
}

async fn postgres() -> DatabaseConnection {
    let url = db::fresh_test_postgres("store")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (make test starts it)");
    let conn = db::connect_and_migrate::<Migrator>(&url)
        .await
        .expect("postgres");
    // Migrations are idempotent: a second run (a restart) changes nothing.
    db::connect_and_migrate::<Migrator>(&url)
        .await
        .expect("re-migrate");
    conn
}

fn reply_row(shop: &str, message_id: &str, reply_id: &str) -> reply::ActiveModel {
    reply::ActiveModel {
        cursor: NotSet,
        reply_id: Set(reply_id.into()),
        shop_id: Set(shop.into()),
        message_id: Set(message_id.into()),
        conversation_id: Set("conv".into()),
        customer_id: Set("cus".into()),
        channel: Set("web".into()),
        channel_user_id: Set("u".into()),
        text: Set("hi".into()),
        language: Set("en".into()),
        source: Set("bot".into()),
        intent: Set("greeting".into()),
        ticket_id: Set(String::new()),
        created_at: Set(Utc::now()),
    }
}

async fn messages_are_idempotent_and_identities_link(db: &DatabaseConnection) {
    let a = store::accept(db, "s1", "web", "u1", "m1", "hello")
        .await
        .unwrap();
    assert!(!a.duplicate && !a.message.published);
    let again = store::accept(db, "s1", "web", "u1", "m1", "hello")
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message.message_id, a.message.message_id);
    // Same channel user, next message: same customer, same open conversation.
    let b = store::accept(db, "s1", "web", "u1", "m2", "where is my order")
        .await
        .unwrap();
    assert!(!b.duplicate);
    assert_eq!(b.message.customer_id, a.message.customer_id);
    assert_eq!(b.message.conversation_id, a.message.conversation_id);
    // The same channel message id in another shop or channel is a different message.
    let other_shop = store::accept(db, "s2", "web", "u1", "m1", "hello")
        .await
        .unwrap();
    assert!(!other_shop.duplicate);
    assert_ne!(other_shop.message.customer_id, a.message.customer_id);
    let other_channel = store::accept(db, "s1", "wechat", "u1", "m1", "hello")
        .await
        .unwrap();
    assert!(!other_channel.duplicate);

    // Outbox: nothing is older than an hour; everything is pending right now.
    assert!(
        store::unpublished(db, chrono::Duration::hours(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let pending = store::unpublished(db, chrono::Duration::seconds(-5), 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 4);
    store::mark_published(db, std::slice::from_ref(&a.message.message_id))
        .await
        .unwrap();
    let pending = store::unpublished(db, chrono::Duration::seconds(-5), 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 3);
}

async fn routing_decisions_stick(db: &DatabaseConnection) {
    let m = store::accept(db, "s1", "web", "route-user", "r1", "退货")
        .await
        .unwrap()
        .message;
    let first = store::decide_route(
        db,
        &m.message_id,
        "bot",
        "bot can answer",
        "return_exchange",
    )
    .await
    .unwrap();
    assert_eq!(first.route, "bot");
    // A replay with a different opinion keeps the first decision and does not re-count the intent.
    let replay = store::decide_route(db, &m.message_id, "human", "low confidence", "other")
        .await
        .unwrap();
    assert_eq!(
        (replay.route.as_str(), replay.intent.as_str()),
        ("bot", "return_exchange")
    );
    let conv = store::conversation(db, &m.conversation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conv.recent_intents, "return_exchange");
}

async fn ticket_changes_move_state_in_seq_order(db: &DatabaseConnection) {
    use store::TicketChange::*;
    let m = store::accept(db, "s1", "web", "state-user", "st1", "转人工")
        .await
        .unwrap()
        .message;
    let conv = m.conversation_id.clone();
    let state = |c: Option<kefu_session_router::entity::conversation::Model>| {
        let c = c.unwrap();
        (c.state, c.open_ticket_id)
    };
    store::decide_route(
        db,
        &m.message_id,
        "human",
        "customer asked for a person",
        "human_agent",
    )
    .await
    .unwrap();
    assert_eq!(
        state(store::conversation(db, &conv).await.unwrap()),
        ("waiting_for_human".into(), String::new())
    );
    let apply = |seq, change| store::apply_ticket_change(db, "s1", &conv, "T-1", seq, change);
    assert!(apply(1, Opened).await.unwrap());
    assert!(apply(2, AgentReplied).await.unwrap());
    assert_eq!(
        state(store::conversation(db, &conv).await.unwrap()),
        ("human".into(), "T-1".into())
    );
    assert!(apply(3, HandedBack).await.unwrap());
    // Redelivered older events cannot move the conversation backwards.
    assert!(!apply(2, AgentReplied).await.unwrap());
    assert!(!apply(1, Opened).await.unwrap());
    assert!(!apply(3, HandedBack).await.unwrap());
    let c = store::conversation(db, &conv).await.unwrap().unwrap();
    assert_eq!((c.state.as_str(), c.open_ticket_id.as_str()), ("bot", ""));
    assert_eq!(c.recent_intents, "", "hand-back forgets the repeats");
    // Another shop cannot touch the conversation.
    assert!(
        !store::apply_ticket_change(db, "s2", &conv, "T-1", 9, Closed)
            .await
            .unwrap()
    );
    assert!(apply(4, Closed).await.unwrap());
    // A closed conversation takes no new message: the next one opens a linked conversation.
    let next = store::accept(db, "s1", "web", "state-user", "st2", "你好")
        .await
        .unwrap()
        .message;
    assert_ne!(next.conversation_id, conv);
    let c = store::conversation(db, &next.conversation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.previous_conversation_id.as_str(), c.state.as_str()),
        (conv.as_str(), "bot")
    );
}

async fn replies_are_stored_once_and_stay_in_their_shop(db: &DatabaseConnection) {
    let r1 = store::store_reply(db, reply_row("s1", "m-a", "r-a"))
        .await
        .unwrap()
        .expect("new");
    assert!(
        store::store_reply(db, reply_row("s1", "m-a", "r-a"))
            .await
            .unwrap()
            .is_none()
    );
    let r2 = store::store_reply(db, reply_row("s1", "m-b", "r-b"))
        .await
        .unwrap()
        .expect("new");
    store::store_reply(db, reply_row("s2", "m-c", "r-c"))
        .await
        .unwrap()
        .expect("new");
    assert!(r2.cursor > r1.cursor);
    let s1 = store::replies_after(db, "s1", None, None, 0, 100)
        .await
        .unwrap();
    assert_eq!(
        s1.iter().map(|r| r.reply_id.as_str()).collect::<Vec<_>>(),
        ["r-a", "r-b"]
    );
    let after = store::replies_after(db, "s1", None, None, r1.cursor, 100)
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(
        store::reply_for_message(db, "m-b")
            .await
            .unwrap()
            .unwrap()
            .reply_id,
        "r-b"
    );
}

async fn idle_conversations_close_and_link(db: &DatabaseConnection) {
    let idle = chrono::Duration::milliseconds(300);
    let first = store::accept_with_idle(db, idle, "s1", "web", "idle-user", "i1", "hello")
        .await
        .unwrap()
        .message;
    let soon = store::accept_with_idle(db, idle, "s1", "web", "idle-user", "i2", "still here")
        .await
        .unwrap()
        .message;
    assert_eq!(soon.conversation_id, first.conversation_id);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let later = store::accept_with_idle(db, idle, "s1", "web", "idle-user", "i3", "back again")
        .await
        .unwrap()
        .message;
    assert_ne!(
        later.conversation_id, first.conversation_id,
        "a new conversation after the idle timeout"
    );
    let conv = store::conversation(db, &later.conversation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        conv.previous_conversation_id, first.conversation_id,
        "linked to the old one"
    );
    assert_eq!(later.customer_id, first.customer_id);
}

/// A channel's message ids are unique per user only: a second customer whose widget also
/// sends "m1" is a new message of their own, never the first customer's (with its reply).
async fn message_ids_are_per_user(db: &DatabaseConnection) {
    let first = store::accept(db, "s9", "web", "alice", "m1", "hello")
        .await
        .unwrap();
    let second = store::accept(db, "s9", "web", "bob", "m1", "hello")
        .await
        .unwrap();
    assert!(!second.duplicate, "bob's m1 is not alice's");
    assert_ne!(second.message.message_id, first.message.message_id);
    assert_ne!(second.message.customer_id, first.message.customer_id);
    let again = store::accept(db, "s9", "web", "bob", "m1", "hello")
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message.message_id, second.message.message_id);
}

async fn seeded_keys_authenticate(db: &DatabaseConnection) {
    use kefu_runtime::auth::{Principal, Verifier};
    let file = std::env::temp_dir().join(format!("kefu-key-{}", uuid::Uuid::new_v4().simple()));
    let key = auth::seed_shop(db, "demo", &file).await.unwrap();
    // Seeding again reuses the key file.
    assert_eq!(auth::seed_shop(db, "demo", &file).await.unwrap(), key);
    let v = auth::LocalVerifier::new(db.clone(), Some("kefo_operator_token_for_the_store_test"));
    let caller = v.verify(&key).await.unwrap().expect("valid key");
    assert_eq!(caller.principal, Principal::Shop);
    assert_eq!(caller.shop_id(), Some("demo"));
    assert!(v.verify("kefu_wrong").await.unwrap().is_none());
    assert!(v.verify("").await.unwrap().is_none());
    let op = v
        .verify("kefo_operator_token_for_the_store_test")
        .await
        .unwrap()
        .expect("operator");
    assert_eq!((&op.principal, op.shop_id()), (&Principal::Operator, None));

    // A rotated key survives a restart: seeding with the old file leaves the shop's new key.
    let rotated = auth::generate_key();
    assert!(auth::set_key(db, "demo", &rotated).await.unwrap());
    v.forget_shop("demo");
    auth::seed_shop(db, "demo", &file).await.unwrap();
    let fresh = auth::LocalVerifier::new(db.clone(), None);
    assert!(
        fresh.verify(&key).await.unwrap().is_none(),
        "old key refused"
    );
    assert_eq!(
        fresh
            .verify(&rotated)
            .await
            .unwrap()
            .expect("new key")
            .shop_id(),
        Some("demo")
    );
    assert!(
        !auth::create_shop(db, "demo", &auth::generate_key())
            .await
            .unwrap()
    );

    // Agent tokens: valid until revoked, and only for their own shop's id.
    let (token, info) = auth::issue_agent_token(db, "demo", "alice", 1)
        .await
        .unwrap();
    let agent = fresh.verify(&token).await.unwrap().expect("agent token");
    assert_eq!(
        agent.principal,
        Principal::Agent {
            agent_id: "alice".into()
        }
    );
    assert!(
        auth::revoke_agent_token(db, "other", &info.token_id)
            .await
            .unwrap()
            .is_none(),
        "another shop cannot revoke it"
    );
    let revoked = auth::revoke_agent_token(db, "demo", &info.token_id)
        .await
        .unwrap()
        .expect("revoked");
    assert!(revoked.revoked_at.is_some());
    let after = auth::LocalVerifier::new(db.clone(), None);
    assert!(after.verify(&token).await.unwrap().is_none());
    assert_eq!(
        auth::list_agent_tokens(db, "demo", 10, 0)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        auth::list_agent_tokens(db, "other", 10, 0)
            .await
            .unwrap()
            .is_empty()
    );
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn store_on_sqlite() {
    let db = sqlite().await;
    messages_are_idempotent_and_identities_link(&db).await;
    routing_decisions_stick(&db).await;
    ticket_changes_move_state_in_seq_order(&db).await;
    replies_are_stored_once_and_stay_in_their_shop(&db).await;
    idle_conversations_close_and_link(&db).await;
    seeded_keys_authenticate(&db).await;
    message_ids_are_per_user(&db).await;
    lookups_have_indexes(&db).await;
}

#[tokio::test]
async fn store_on_postgres() {
    let db = postgres().await;
    messages_are_idempotent_and_identities_link(&db).await;
    routing_decisions_stick(&db).await;
    ticket_changes_move_state_in_seq_order(&db).await;
    replies_are_stored_once_and_stay_in_their_shop(&db).await;
    idle_conversations_close_and_link(&db).await;
    seeded_keys_authenticate(&db).await;
    message_ids_are_per_user(&db).await;
    lookups_have_indexes(&db).await;
}

/// The columns the message path looks rows up by are indexed (without, each lookup scans its
/// table and every message costs more than the one before).
async fn lookups_have_indexes(db: &DatabaseConnection) {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Sqlite => "select name from sqlite_master where type = 'index'",
        _ => "select indexname as name from pg_indexes where schemaname = current_schema()",
    };
    let names: Vec<String> = db
        .query_all_raw(sea_orm::Statement::from_string(backend, sql))
        .await
        .expect("indexes")
        .iter()
        .map(|r| r.try_get::<String>("", "name").expect("name"))
        .collect();
    for wanted in [
        "idx-identities-customer_id",
        "idx-conversations-customer_id",
        "idx-messages-conversation_id",
        "idx-messages-customer_id",
        "idx-messages-published",
        "idx-replies-conversation_id",
        "idx-customer_keys-customer_id",
        "idx-webhook_deliveries-next_attempt_at",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "index {wanted} missing: {names:?}"
        );
    }
}

/// Eight first messages of one customer accepted at once join one conversation, on both
/// databases. SQLite's accept transaction takes the write lock at its start; on PostgreSQL
/// the transaction takes the customer's advisory lock (read-committed alone let several find
/// no conversation and each open one).
async fn simultaneous_first_messages_share_a_conversation(db: DatabaseConnection) {
    use kefu_session_router::entity::{conversation, conversation_state};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    // Rounds of 16 at once, each for a known customer whose conversation was closed: the
    // identity exists, so nothing but the customer's lock serialises the next messages.
    for round in 0..5 {
        let user = format!("burst-{round}");
        let first = store::accept(&db, "s1", "web", &user, "m-first", "hi")
            .await
            .expect("accept");
        conversation::Entity::update_many()
            .col_expr(
                conversation::Column::State,
                Expr::value(conversation_state::CLOSED),
            )
            .filter(conversation::Column::ConversationId.eq(first.message.conversation_id.clone()))
            .exec(&db)
            .await
            .expect("close");
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (db, user) = (db.clone(), user.clone());
                tokio::spawn(async move {
                    store::accept(&db, "s1", "web", &user, &format!("m{i}"), "hi")
                        .await
                        .expect("accept")
                        .message
                        .conversation_id
                })
            })
            .collect();
        let mut conversations = Vec::new();
        for t in tasks {
            conversations.push(t.await.expect("task"));
        }
        conversations.sort();
        conversations.dedup();
        assert_eq!(conversations.len(), 1, "round {round}: {conversations:?}");
        assert_ne!(
            conversations[0], first.message.conversation_id,
            "a new one after the closed one"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_first_messages_share_a_conversation_on_sqlite() {
    simultaneous_first_messages_share_a_conversation(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_first_messages_share_a_conversation_on_postgres() {
    simultaneous_first_messages_share_a_conversation(postgres().await).await;
}
