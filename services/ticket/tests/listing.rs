//! Paging of tickets and of a long thread against real databases (SQLite file and PostgreSQL):
//! every row is seen exactly once, in order, and the newest messages of a thread longer than
//! the old fixed cut (1,000) are reachable.
use chrono::{Duration, TimeZone, Utc};
use kefu_runtime::{db, validate::Violations};
use kefu_ticket::{
    entity::{migration::Migrator, ticket, ticket_message},
    listing::{self, MessageQuery, TicketQuery},
};
use sea_orm::{ActiveValue::NotSet, DatabaseConnection, EntityTrait, Set};

const THREAD: usize = 1_050;

fn ticket_row(shop: &str, i: usize, at: chrono::DateTime<Utc>) -> ticket::ActiveModel {
    ticket::ActiveModel {
        ticket_id: Set(format!("T-{shop}-{i:04}")),
        shop_id: Set(shop.into()),
        message_id: Set(format!("{shop}-m{i}")),
        conversation_id: Set(format!("c{}", i % 3)),
        customer_id: Set("u".into()),
        status: Set(if i.is_multiple_of(2) {
            "open"
        } else {
            "closed"
        }
        .into()),
        reason: Set(String::new()),
        intent: Set(String::new()),
        text: Set(format!("ticket {i}")),
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
    }
}

async fn seed(db: &DatabaseConnection) {
    let t0 = Utc.with_ymd_and_hms(2026, 11, 11, 0, 0, 0).unwrap();
    // 45 tickets of shop a, several opened in the same microsecond (the tie the token breaks by
    // ticket id), and 5 of shop b that a's pages never show.
    let mut rows: Vec<_> = (0..45)
        .map(|i| ticket_row("a", i, t0 + Duration::seconds((i / 4) as i64)))
        .collect();
    rows.extend((0..5).map(|i| ticket_row("b", i, t0)));
    ticket::Entity::insert_many(rows).exec(db).await.unwrap();
    for chunk in (0..THREAD).collect::<Vec<_>>().chunks(200) {
        let msgs = chunk.iter().map(|&i| ticket_message::ActiveModel {
            id: NotSet,
            ticket_id: Set("T-a-0000".into()),
            message_id: Set(format!("tm{i}")),
            author: Set("customer".into()),
            agent_id: Set(String::new()),
            text: Set(format!("line {i}")),
            created_at: Set(t0 + Duration::seconds(i as i64)),
        });
        ticket_message::Entity::insert_many(msgs)
            .exec(db)
            .await
            .unwrap();
    }
}

async fn all_tickets(db: &DatabaseConnection, size: i32, status: &str) -> Vec<String> {
    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let mut v = Violations::new();
        let q = TicketQuery::parse(&mut v, size, &token, status, "");
        assert!(v.is_empty(), "{v:?}");
        let (rows, next) = listing::tickets(db, "a", &q).await.unwrap();
        assert!(rows.len() <= size as usize);
        seen.extend(rows.into_iter().map(|t| {
            assert_eq!(t.shop_id, "a");
            t.ticket_id
        }));
        if next.is_empty() {
            return seen;
        }
        token = next;
    }
}

async fn all_messages(db: &DatabaseConnection, size: i32, newest_first: bool) -> Vec<String> {
    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let mut v = Violations::new();
        let q = MessageQuery::parse(&mut v, size, &token, newest_first);
        assert!(v.is_empty(), "{v:?}");
        let (rows, next) = listing::messages(db, "T-a-0000", &q).await.unwrap();
        seen.extend(rows.into_iter().map(|m| m.text));
        if next.is_empty() {
            return seen;
        }
        token = next;
    }
}

async fn pages(db: &DatabaseConnection) {
    seed(db).await;
    // Tickets: newest first, each exactly once, whatever the page size.
    let mut expected: Vec<String> = (0..45).map(|i| format!("T-a-{i:04}")).collect();
    expected.reverse();
    for size in [1, 7, 20, 100] {
        assert_eq!(
            all_tickets(db, size, "").await,
            expected,
            "page size {size}"
        );
    }
    let open: Vec<String> = expected
        .iter()
        .filter(|id| id[4..].parse::<usize>().unwrap().is_multiple_of(2))
        .cloned()
        .collect();
    assert_eq!(all_tickets(db, 6, "open").await, open);

    // The thread: in order both ways; the newest line is on the first newest-first page.
    let oldest_first: Vec<String> = (0..THREAD).map(|i| format!("line {i}")).collect();
    assert_eq!(all_messages(db, 0, false).await, oldest_first);
    let mut newest_first = oldest_first.clone();
    newest_first.reverse();
    assert_eq!(all_messages(db, 500, true).await, newest_first);
    let mut v = Violations::new();
    let q = MessageQuery::parse(&mut v, 10, "", true);
    let (latest, next) = listing::messages(db, "T-a-0000", &q).await.unwrap();
    assert_eq!(latest[0].text, format!("line {}", THREAD - 1));
    assert_eq!(latest.len(), 10);
    assert!(!next.is_empty());
}

#[tokio::test]
async fn paging_on_sqlite() {
    let db = db::test_sqlite::<Migrator>("ticket_paging")
        .await
        .expect("sqlite");
    pages(&db).await;
}

#[tokio::test]
async fn paging_on_postgres() {
    let db = db::test_postgres::<Migrator>("ticket_paging")
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (make test starts it)");
    pages(&db).await;
}
