//! `kefu.privacy.v1.CustomerDataService` on ticket (docs/privacy.md): the customer's tickets
//! (by customer id or by one of their conversations), each ticket's whole thread and its
//! outbox events. Erasure deletes them.
use kefu_proto::privacy::v1::Subject;
use kefu_runtime::{
    grpc::ApiError,
    json_row,
    privacy::{CustomerData, Erased, Export},
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder,
};

use crate::entity::{ticket, ticket_event, ticket_message};

use kefu_runtime::db::IN_LIST_CHUNK as CHUNK;

/// ticket's customer data.
pub struct CustomerDataStore {
    pub db: DatabaseConnection,
}

/// The subject's tickets in the shop, oldest first.
async fn tickets_of<C: ConnectionTrait>(
    db: &C,
    shop_id: &str,
    subject: &Subject,
) -> Result<Vec<ticket::Model>, DbErr> {
    let mut out = ticket::Entity::find()
        .filter(ticket::Column::ShopId.eq(shop_id))
        .filter(ticket::Column::CustomerId.eq(&subject.customer_id))
        .all(db)
        .await?;
    for ids in subject.conversation_ids.chunks(CHUNK) {
        out.extend(
            ticket::Entity::find()
                .filter(ticket::Column::ShopId.eq(shop_id))
                .filter(ticket::Column::ConversationId.is_in(ids.iter().cloned()))
                .all(db)
                .await?,
        );
    }
    out.sort_by(|a, b| (a.created_at, &a.ticket_id).cmp(&(b.created_at, &b.ticket_id)));
    out.dedup_by(|a, b| a.ticket_id == b.ticket_id);
    Ok(out)
}

fn ids(tickets: &[ticket::Model]) -> Vec<String> {
    tickets.iter().map(|t| t.ticket_id.clone()).collect()
}

/// Events of the shop about the customer or one of `ticket_ids`.
fn events_of(shop_id: &str, customer_id: &str, ticket_ids: &[String]) -> Condition {
    Condition::all()
        .add(ticket_event::Column::ShopId.eq(shop_id))
        .add(
            Condition::any()
                .add(ticket_event::Column::CustomerId.eq(customer_id))
                .add(ticket_event::Column::TicketId.is_in(ticket_ids.iter().cloned())),
        )
}

#[tonic::async_trait]
impl CustomerData for CustomerDataStore {
    fn service(&self) -> &'static str {
        crate::SERVICE
    }

    async fn export(&self, shop_id: &str, subject: &Subject) -> Result<Export, ApiError> {
        let db = &self.db;
        let tickets = tickets_of(db, shop_id, subject).await?;
        let ticket_ids = ids(&tickets);
        let (mut messages, mut events) = (Vec::new(), Vec::new());
        for chunk in ticket_ids.chunks(CHUNK) {
            messages.extend(
                ticket_message::Entity::find()
                    .filter(ticket_message::Column::TicketId.is_in(chunk.iter().cloned()))
                    .order_by_asc(ticket_message::Column::Id)
                    .all(db)
                    .await?,
            );
            events.extend(
                ticket_event::Entity::find()
                    .filter(events_of(shop_id, &subject.customer_id, chunk))
                    .order_by_asc(ticket_event::Column::Seq)
                    .all(db)
                    .await?,
            );
        }
        if ticket_ids.is_empty() {
            events = ticket_event::Entity::find()
                .filter(events_of(shop_id, &subject.customer_id, &[]))
                .order_by_asc(ticket_event::Column::Seq)
                .all(db)
                .await?;
        }
        events.sort_by_key(|e| e.seq);
        events.dedup_by_key(|e| e.seq);
        let mut e = Export::default();
        e.table(
            "tickets",
            tickets
                .iter()
                .map(|r| {
                    json_row!(r; ticket_id, message_id, conversation_id, customer_id, status,
                        reason, intent, text, language, created_at, sla_due_at, assignee,
                        first_response_at, updated_at, last_message_id, channel,
                        channel_user_id, order_id)
                })
                .collect(),
        )
        .table(
            "ticket_messages",
            messages
                .iter()
                .map(
                    |r| json_row!(r; id, ticket_id, message_id, author, agent_id, text, created_at),
                )
                .collect(),
        )
        .table(
            "ticket_events",
            events
                .iter()
                .map(|r| {
                    json_row!(r; seq, ticket_id, conversation_id, customer_id, message_id, kind,
                        agent_id, reply_id, reply_text, language, channel, channel_user_id,
                        published, created_at)
                })
                .collect(),
        );
        Ok(e)
    }

    async fn erase(&self, shop_id: &str, subject: &Subject) -> Result<Erased, ApiError> {
        let txn = kefu_runtime::db::begin_write(&self.db).await?;
        let tickets = tickets_of(&txn, shop_id, subject).await?;
        let ticket_ids = ids(&tickets);
        let mut erased = Erased::default();
        erased.add("tickets", 0).add("ticket_messages", 0);
        let n = ticket_event::Entity::delete_many()
            .filter(events_of(shop_id, &subject.customer_id, &[]))
            .exec(&txn)
            .await?
            .rows_affected;
        erased.add("ticket_events", n);
        for chunk in ticket_ids.chunks(CHUNK) {
            let n = ticket_event::Entity::delete_many()
                .filter(events_of(shop_id, &subject.customer_id, chunk))
                .exec(&txn)
                .await?
                .rows_affected;
            erased.add("ticket_events", n);
            let n = ticket_message::Entity::delete_many()
                .filter(ticket_message::Column::TicketId.is_in(chunk.iter().cloned()))
                .exec(&txn)
                .await?
                .rows_affected;
            erased.add("ticket_messages", n);
            let n = ticket::Entity::delete_many()
                .filter(ticket::Column::ShopId.eq(shop_id))
                .filter(ticket::Column::TicketId.is_in(chunk.iter().cloned()))
                .exec(&txn)
                .await?
                .rows_affected;
            erased.add("tickets", n);
        }
        txn.commit().await?;
        Ok(erased)
    }
}
