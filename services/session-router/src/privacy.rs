//! `kefu.privacy.v1.CustomerDataService` on session-router (docs/privacy.md): the customer's
//! identities, conversations, messages, replies, verified keys, identity changes and the
//! webhook deliveries of their replies. The export also completes the [`Subject`] (keys,
//! message and conversation ids, message texts) the other services find their rows by.
use kefu_proto::privacy::v1::{Subject, SubjectKey};
use kefu_runtime::{
    grpc::ApiError,
    json_row,
    privacy::{CustomerData, Erased, Export},
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, sea_query::Query,
};

use crate::entity::{
    conversation, customer_key, identity, identity_change, message, reply, webhook_delivery,
};

/// session-router's customer data.
pub struct CustomerDataStore {
    pub db: DatabaseConnection,
}

/// Identity changes that name the customer, or one of their identities.
fn changes_of(shop_id: &str, customer_id: &str, identities: &[identity::Model]) -> Condition {
    let mut about = Condition::any()
        .add(identity_change::Column::FromCustomerId.eq(customer_id))
        .add(identity_change::Column::ToCustomerId.eq(customer_id));
    for i in identities {
        about = about.add(
            Condition::all()
                .add(identity_change::Column::Channel.eq(&i.channel))
                .add(identity_change::Column::ChannelUserId.eq(&i.channel_user_id)),
        );
    }
    Condition::all()
        .add(identity_change::Column::ShopId.eq(shop_id))
        .add(about)
}

/// Rows of the person: the customer's own, and those written by one of the customer's
/// identities before it was linked to them (a message sent anonymously, then the visitor
/// logged in: linking moves the identity, not its history, which keeps the old customer id).
fn of_person<Col: ColumnTrait>(
    customer: Col,
    channel: Col,
    user: Col,
    customer_id: &str,
    identities: &[identity::Model],
) -> Condition {
    let mut any = Condition::any().add(customer.eq(customer_id));
    for i in identities {
        any = any.add(
            Condition::all()
                .add(channel.eq(&i.channel))
                .add(user.eq(&i.channel_user_id)),
        );
    }
    any
}

fn messages_of(shop_id: &str, customer_id: &str, identities: &[identity::Model]) -> Condition {
    Condition::all()
        .add(message::Column::ShopId.eq(shop_id))
        .add(of_person(
            message::Column::CustomerId,
            message::Column::Channel,
            message::Column::ChannelUserId,
            customer_id,
            identities,
        ))
}

fn replies_of(shop_id: &str, customer_id: &str, identities: &[identity::Model]) -> Condition {
    Condition::all()
        .add(reply::Column::ShopId.eq(shop_id))
        .add(of_person(
            reply::Column::CustomerId,
            reply::Column::Channel,
            reply::Column::ChannelUserId,
            customer_id,
            identities,
        ))
}

/// The customer's conversations and those of the person's earlier messages.
fn conversations_of(shop_id: &str, customer_id: &str, identities: &[identity::Model]) -> Condition {
    Condition::all()
        .add(conversation::Column::ShopId.eq(shop_id))
        .add(
            Condition::any()
                .add(conversation::Column::CustomerId.eq(customer_id))
                .add(
                    conversation::Column::ConversationId.in_subquery(
                        Query::select()
                            .column(message::Column::ConversationId)
                            .from(message::Entity)
                            .cond_where(messages_of(shop_id, customer_id, identities))
                            .to_owned(),
                    ),
                ),
        )
}

/// Webhook deliveries of the person's replies.
fn deliveries_of(shop_id: &str, customer_id: &str, identities: &[identity::Model]) -> Condition {
    Condition::all()
        .add(webhook_delivery::Column::ShopId.eq(shop_id))
        .add(
            webhook_delivery::Column::ReplyCursor.in_subquery(
                Query::select()
                    .column(reply::Column::Cursor)
                    .from(reply::Entity)
                    .cond_where(replies_of(shop_id, customer_id, identities))
                    .to_owned(),
            ),
        )
}

async fn identities_of<C: ConnectionTrait>(
    db: &C,
    shop_id: &str,
    customer_id: &str,
) -> Result<Vec<identity::Model>, DbErr> {
    identity::Entity::find()
        .filter(identity::Column::ShopId.eq(shop_id))
        .filter(identity::Column::CustomerId.eq(customer_id))
        .all(db)
        .await
}

#[tonic::async_trait]
impl CustomerData for CustomerDataStore {
    fn service(&self) -> &'static str {
        crate::SERVICE
    }

    async fn export(&self, shop_id: &str, subject: &Subject) -> Result<Export, ApiError> {
        let db = &self.db;
        let c = subject.customer_id.as_str();
        let identities = identities_of(db, shop_id, c).await?;
        let conversations = conversation::Entity::find()
            .filter(conversations_of(shop_id, c, &identities))
            .order_by_asc(conversation::Column::CreatedAt)
            .all(db)
            .await?;
        let messages = message::Entity::find()
            .filter(messages_of(shop_id, c, &identities))
            .order_by_asc(message::Column::CreatedAt)
            .all(db)
            .await?;
        let replies = reply::Entity::find()
            .filter(replies_of(shop_id, c, &identities))
            .order_by_asc(reply::Column::Cursor)
            .all(db)
            .await?;
        let keys = customer_key::Entity::find()
            .filter(customer_key::Column::ShopId.eq(shop_id))
            .filter(customer_key::Column::CustomerId.eq(c))
            .all(db)
            .await?;
        let changes = identity_change::Entity::find()
            .filter(changes_of(shop_id, c, &identities))
            .order_by_asc(identity_change::Column::Id)
            .all(db)
            .await?;
        let deliveries = webhook_delivery::Entity::find()
            .filter(deliveries_of(shop_id, c, &identities))
            .order_by_asc(webhook_delivery::Column::Id)
            .all(db)
            .await?;
        if identities.is_empty() && conversations.is_empty() && messages.is_empty() {
            return Err(ApiError::NotFound(format!("no customer {c} in this shop")));
        }
        let mut subject_out = Subject {
            customer_id: c.to_owned(),
            keys: identities
                .iter()
                .map(|i| SubjectKey {
                    kind: "identity".into(),
                    value: format!("{}:{}", i.channel, i.channel_user_id),
                })
                .chain(keys.iter().map(|k| SubjectKey {
                    kind: k.kind.clone(),
                    value: k.value_sha256.clone(),
                }))
                .collect(),
            message_ids: messages.iter().map(|m| m.message_id.clone()).collect(),
            conversation_ids: conversations
                .iter()
                .map(|c| c.conversation_id.clone())
                .collect(),
            texts: messages.iter().map(|m| m.text.clone()).collect(),
        };
        subject_out.texts.sort();
        subject_out.texts.dedup();
        let mut e = Export::default();
        e.subject = Some(subject_out);
        e.table(
            "identities",
            identities
                .iter()
                .map(|r| json_row!(r; shop_id, channel, channel_user_id, customer_id, created_at))
                .collect(),
        )
        .table(
            "conversations",
            conversations
                .iter()
                .map(|r| {
                    json_row!(r; conversation_id, customer_id, state, recent_intents,
                        open_ticket_id, previous_conversation_id, created_at, last_message_at)
                })
                .collect(),
        )
        .table(
            "messages",
            messages
                .iter()
                .map(|r| {
                    json_row!(r; message_id, channel, channel_user_id, channel_message_id,
                        conversation_id, customer_id, text, created_at, route, route_reason,
                        intent)
                })
                .collect(),
        )
        .table(
            "replies",
            replies
                .iter()
                .map(|r| {
                    json_row!(r; reply_id, message_id, conversation_id, customer_id, channel,
                        channel_user_id, text, language, source, intent, ticket_id, created_at)
                })
                .collect(),
        )
        .table(
            "customer_keys",
            keys.iter()
                .map(|r| json_row!(r; kind, value_sha256, customer_id, created_at))
                .collect(),
        )
        .table(
            "identity_changes",
            changes
                .iter()
                .map(|r| {
                    json_row!(r; id, action, channel, channel_user_id, from_customer_id,
                        to_customer_id, reason, created_at)
                })
                .collect(),
        )
        .table(
            "webhook_deliveries",
            deliveries
                .iter()
                .map(|r| {
                    json_row!(r; id, channel, reply_cursor, attempts, next_attempt_at,
                        delivered_at, last_error)
                })
                .collect(),
        );
        Ok(e)
    }

    async fn erase(&self, shop_id: &str, subject: &Subject) -> Result<Erased, ApiError> {
        let c = subject.customer_id.as_str();
        let txn = kefu_runtime::db::begin_write(&self.db).await?;
        let identities = identities_of(&txn, shop_id, c).await?;
        let mut erased = Erased::default();
        // Deliveries first: they are found through the replies; conversations before
        // messages: the person's earlier conversations are found through them.
        let n = webhook_delivery::Entity::delete_many()
            .filter(deliveries_of(shop_id, c, &identities))
            .exec(&txn)
            .await?
            .rows_affected;
        erased.add("webhook_deliveries", n);
        let n = reply::Entity::delete_many()
            .filter(replies_of(shop_id, c, &identities))
            .exec(&txn)
            .await?
            .rows_affected;
        erased.add("replies", n);
        let n = conversation::Entity::delete_many()
            .filter(conversations_of(shop_id, c, &identities))
            .exec(&txn)
            .await?
            .rows_affected;
        erased.add("conversations", n);
        let n = message::Entity::delete_many()
            .filter(messages_of(shop_id, c, &identities))
            .exec(&txn)
            .await?
            .rows_affected;
        erased.add("messages", n);
        let n = customer_key::Entity::delete_many()
            .filter(customer_key::Column::ShopId.eq(shop_id))
            .filter(customer_key::Column::CustomerId.eq(c))
            .exec(&txn)
            .await?
            .rows_affected;
        erased.add("customer_keys", n);
        let n = identity_change::Entity::delete_many()
            .filter(changes_of(shop_id, c, &identities))
            .exec(&txn)
            .await?
            .rows_affected;
        erased.add("identity_changes", n);
        let n = identity::Entity::delete_many()
            .filter(identity::Column::ShopId.eq(shop_id))
            .filter(identity::Column::CustomerId.eq(c))
            .exec(&txn)
            .await?
            .rows_affected;
        erased.add("identities", n);
        txn.commit().await?;
        Ok(erased)
    }
}
