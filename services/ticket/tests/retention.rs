//! The ticket service's retention rules against real databases (SQLite file and PostgreSQL):
//! published events past their age, and finished tickets past theirs with their messages, are
//! gone after one pass; unpublished events, open tickets and young ones stay; the deletes and
//! the outbox relay's scan use indexes.
use chrono::{DateTime, Duration, Utc};
use kefu_runtime::{
    db,
    retention::{Retention, delete_plan, plan_problem},
};
use kefu_ticket::{
    entity::{migration::Migrator, ticket, ticket_event, ticket_message},
    retention::{self, RetentionFlags, TICKET_EVENTS_INDEX, TICKET_MESSAGES_INDEX, TICKETS_INDEX},
};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    DatabaseConnection, EntityTrait,
};

async fn add_ticket(db: &DatabaseConnection, id: &str, status: &str, at: DateTime<Utc>) {
    ticket::Entity::insert(ticket::ActiveModel {
        ticket_id: Set(id.into()),
        shop_id: Set("s1".into()),
        message_id: Set(format!("{id}-m0")),
        conversation_id: Set(format!("c-{id}")),
        customer_id: Set("u".into()),
        status: Set(status.into()),
        reason: Set(String::new()),
        intent: Set(String::new()),
        text: Set("help".into()),
        language: Set("en".into()),
        created_at: Set(at),
        sla_due_at: Set(at),
        assignee: Set(String::new()),
        first_response_at: Set(None),
        updated_at: Set(at),
        last_message_id: Set(String::new()),
        channel: Set("web".into()),
        channel_user_id: Set("u".into()),
        order_id: Set(String::new()),
    })
    .exec_without_returning(db)
    .await
    .expect("ticket");
    ticket_message::Entity::insert(ticket_message::ActiveModel {
        id: NotSet,
        ticket_id: Set(id.into()),
        message_id: Set(format!("{id}-m0")),
        author: Set("customer".into()),
        agent_id: Set(String::new()),
        text: Set("help".into()),
        created_at: Set(at),
    })
    .exec_without_returning(db)
    .await
    .expect("message");
}

async fn add_event(db: &DatabaseConnection, ticket: &str, published: bool, at: DateTime<Utc>) {
    ticket_event::Entity::insert(ticket_event::ActiveModel {
        seq: NotSet,
        ticket_id: Set(ticket.into()),
        shop_id: Set("s1".into()),
        conversation_id: Set("c".into()),
        customer_id: Set("u".into()),
        message_id: Set(String::new()),
        kind: Set("opened".into()),
        agent_id: Set(String::new()),
        reply_id: Set(String::new()),
        reply_text: Set(String::new()),
        language: Set("en".into()),
        channel: Set("web".into()),
        channel_user_id: Set("u".into()),
        published: Set(published),
        created_at: Set(at),
    })
    .exec_without_returning(db)
    .await
    .expect("event");
}

async fn scenario(db: DatabaseConnection) {
    let flags = RetentionFlags::default();
    let rules = retention::rules(&flags);
    for (rule, index) in
        rules
            .iter()
            .zip([TICKET_EVENTS_INDEX, TICKETS_INDEX, TICKET_MESSAGES_INDEX])
    {
        let plan = delete_plan(&db, rule).await.expect("plan");
        if let Some(problem) = plan_problem(&plan, index) {
            panic!("retention delete of {}: {problem}", rule.table);
        }
    }
    let now = Utc::now();
    let old = now - Duration::days(366);
    add_ticket(&db, "old-closed", "closed", old).await;
    add_ticket(&db, "old-handed-back", "handed_back", old).await;
    add_ticket(&db, "old-open", "open", old).await;
    add_ticket(&db, "old-active", "active", old).await;
    add_ticket(&db, "young-closed", "closed", now - Duration::days(30)).await;
    add_event(&db, "e-old-published", true, now - Duration::days(8)).await;
    add_event(&db, "e-old-unpublished", false, now - Duration::days(8)).await;
    add_event(&db, "e-young-published", true, now - Duration::days(6)).await;

    let pass = Retention::new(db.clone(), rules, &flags.common);
    assert_eq!(
        pass.run_once_at(now).await.expect("pass"),
        vec![("ticket_events", 1), ("tickets", 2), ("ticket_messages", 2)]
    );
    let mut tickets: Vec<String> = ticket::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.ticket_id)
        .collect();
    tickets.sort();
    assert_eq!(tickets, vec!["old-active", "old-open", "young-closed"]);
    let mut threads: Vec<String> = ticket_message::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.ticket_id)
        .collect();
    threads.sort();
    assert_eq!(
        threads, tickets,
        "messages go with their tickets, and only then"
    );
    let mut events: Vec<String> = ticket_event::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.ticket_id)
        .collect();
    events.sort();
    assert_eq!(events, vec!["e-old-unpublished", "e-young-published"]);
}

#[tokio::test]
async fn retention_on_sqlite() {
    let db = db::test_sqlite::<Migrator>("retention_ticket")
        .await
        .expect("sqlite");
    scenario(db).await;
}

#[tokio::test]
async fn retention_on_postgres() {
    let db = db::test_postgres::<Migrator>("retention_ticket")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (KEFU_TEST_PG)");
    scenario(db).await;
}
