//! Paged reads of tickets and of a ticket's thread (keyset paging: a page token names the last
//! row of the previous page, so rows written while an agent pages never shift or repeat one).
use chrono::{DateTime, SecondsFormat, Utc};
use kefu_runtime::validate::Violations;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::entity::{status, ticket, ticket_message};

/// Largest `ListTickets` page.
pub const MAX_TICKETS_PAGE: i32 = 100;
/// `ListTickets` page when `page_size` is 0.
pub const DEFAULT_TICKETS_PAGE: i32 = 20;
/// Largest `ListTicketMessages` page.
pub const MAX_MESSAGES_PAGE: i32 = 500;
/// `ListTicketMessages` page when `page_size` is 0.
pub const DEFAULT_MESSAGES_PAGE: i32 = 100;

/// A validated `ListTickets` query.
#[derive(Debug, Clone)]
pub struct TicketQuery {
    pub limit: u64,
    pub status: Option<String>,
    pub conversation_id: Option<String>,
    /// Position after which the page starts (newest first): (created_at, ticket_id).
    pub after: Option<(DateTime<Utc>, String)>,
}

/// A validated `ListTicketMessages` query.
#[derive(Debug, Clone)]
pub struct MessageQuery {
    pub limit: u64,
    pub newest_first: bool,
    /// The id of the last message of the previous page.
    pub after: Option<i64>,
}

fn page_size(v: &mut Violations, page_size: i32, default: i32, max: i32) -> u64 {
    if !(0..=max).contains(&page_size) {
        v.add("page_size", format!("must be between 0 and {max}"));
    }
    if page_size == 0 {
        default as u64
    } else {
        page_size.clamp(1, max) as u64
    }
}

const TOKEN_SEPARATOR: char = '~';

fn ticket_token(t: &ticket::Model) -> String {
    format!(
        "{}{TOKEN_SEPARATOR}{}",
        t.created_at.to_rfc3339_opts(SecondsFormat::Nanos, true),
        t.ticket_id
    )
}

fn parse_ticket_token(token: &str) -> Option<(DateTime<Utc>, String)> {
    let (at, id) = token.split_once(TOKEN_SEPARATOR)?;
    let at = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
    let id_ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    id_ok.then(|| (at, id.to_owned()))
}

impl TicketQuery {
    /// Checks a request's paging and filter fields, adding what is wrong to `v`.
    pub fn parse(
        v: &mut Violations,
        size: i32,
        page_token: &str,
        status_filter: &str,
        conversation_id: &str,
    ) -> Self {
        let limit = page_size(v, size, DEFAULT_TICKETS_PAGE, MAX_TICKETS_PAGE);
        if !status_filter.is_empty() && !status::ALL.contains(&status_filter) {
            v.add(
                "status",
                format!("must be one of {}", status::ALL.join(", ")),
            );
        }
        if !conversation_id.is_empty() {
            v.ident("conversation_id", conversation_id, 64);
        }
        let after = if page_token.is_empty() {
            None
        } else {
            let parsed = parse_ticket_token(page_token);
            if parsed.is_none() {
                v.add(
                    "page_token",
                    "not a token from a previous ListTickets response",
                );
            }
            parsed
        };
        Self {
            limit,
            status: (!status_filter.is_empty()).then(|| status_filter.to_owned()),
            conversation_id: (!conversation_id.is_empty()).then(|| conversation_id.to_owned()),
            after,
        }
    }
}

impl MessageQuery {
    /// Checks a request's paging fields, adding what is wrong to `v`.
    pub fn parse(v: &mut Violations, size: i32, page_token: &str, newest_first: bool) -> Self {
        let limit = page_size(v, size, DEFAULT_MESSAGES_PAGE, MAX_MESSAGES_PAGE);
        let after = if page_token.is_empty() {
            None
        } else {
            match page_token.parse::<i64>() {
                Ok(id) if id > 0 => Some(id),
                _ => {
                    v.add(
                        "page_token",
                        "not a token from a previous ListTicketMessages response",
                    );
                    None
                }
            }
        };
        Self {
            limit,
            newest_first,
            after,
        }
    }
}

/// One page of a shop's tickets, newest first, and the next page's token ("" on the last).
pub async fn tickets<C: ConnectionTrait>(
    db: &C,
    shop_id: &str,
    q: &TicketQuery,
) -> Result<(Vec<ticket::Model>, String), DbErr> {
    let mut find = ticket::Entity::find().filter(ticket::Column::ShopId.eq(shop_id));
    if let Some(s) = &q.status {
        find = find.filter(ticket::Column::Status.eq(s.as_str()));
    }
    if let Some(c) = &q.conversation_id {
        find = find.filter(ticket::Column::ConversationId.eq(c.as_str()));
    }
    if let Some((at, id)) = &q.after {
        find = find.filter(
            Condition::any().add(ticket::Column::CreatedAt.lt(*at)).add(
                Condition::all()
                    .add(ticket::Column::CreatedAt.eq(*at))
                    .add(ticket::Column::TicketId.lt(id.as_str())),
            ),
        );
    }
    let mut rows = find
        .order_by_desc(ticket::Column::CreatedAt)
        .order_by_desc(ticket::Column::TicketId)
        .limit(q.limit + 1)
        .all(db)
        .await?;
    let next = next_page(&mut rows, q.limit, ticket_token);
    Ok((rows, next))
}

/// One page of a ticket's thread and the next page's token ("" on the last). The caller checks
/// that the ticket belongs to the shop.
pub async fn messages<C: ConnectionTrait>(
    db: &C,
    ticket_id: &str,
    q: &MessageQuery,
) -> Result<(Vec<ticket_message::Model>, String), DbErr> {
    let mut find =
        ticket_message::Entity::find().filter(ticket_message::Column::TicketId.eq(ticket_id));
    find = match (q.after, q.newest_first) {
        (Some(id), true) => find.filter(ticket_message::Column::Id.lt(id)),
        (Some(id), false) => find.filter(ticket_message::Column::Id.gt(id)),
        (None, _) => find,
    };
    find = if q.newest_first {
        find.order_by_desc(ticket_message::Column::Id)
    } else {
        find.order_by_asc(ticket_message::Column::Id)
    };
    let mut rows = find.limit(q.limit + 1).all(db).await?;
    let next = next_page(&mut rows, q.limit, |m| m.id.to_string());
    Ok((rows, next))
}

/// Cuts `rows` (fetched with one extra) to `limit` and returns the token of the last one kept
/// when there was more.
fn next_page<T>(rows: &mut Vec<T>, limit: u64, token: impl Fn(&T) -> String) -> String {
    if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(token).unwrap_or_default()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_tokens_round_trip_and_junk_is_refused() {
        let at = DateTime::parse_from_rfc3339("2026-11-11T00:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        let t = ticket::Model {
            ticket_id: "T-abc".into(),
            shop_id: "s".into(),
            message_id: "m".into(),
            conversation_id: "c".into(),
            customer_id: "u".into(),
            status: "open".into(),
            reason: String::new(),
            intent: String::new(),
            text: String::new(),
            language: String::new(),
            created_at: at,
            sla_due_at: at,
            assignee: String::new(),
            first_response_at: None,
            updated_at: at,
            last_message_id: String::new(),
            channel: String::new(),
            channel_user_id: String::new(),
            order_id: String::new(),
        };
        assert_eq!(
            parse_ticket_token(&ticket_token(&t)),
            Some((at, "T-abc".to_owned()))
        );
        for junk in [
            "",
            "~",
            "x~T-1",
            "2026-11-11T00:00:00Z~",
            "2026-11-11T00:00:00Z~a b",
        ] {
            assert_eq!(parse_ticket_token(junk), None, "{junk:?}");
        }
        let mut v = Violations::new();
        MessageQuery::parse(&mut v, 501, "-3", false);
        assert_eq!(v.0.len(), 2, "{v:?}");
    }
}
