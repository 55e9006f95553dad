//! Tables owned by session-router.
pub mod shop {
    use sea_orm::entity::prelude::*;

    /// A tenant and the SHA-256 of its API key (the key itself is never stored).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "shops")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        pub api_key_sha256: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod agent_token {
    use sea_orm::entity::prelude::*;

    /// A token a shop issued to one of its agents (stored as SHA-256 only).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "agent_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_id: String,
        #[sea_orm(indexed)]
        pub shop_id: String,
        pub agent_id: String,
        #[sea_orm(unique)]
        pub token_sha256: String,
        pub created_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
        pub revoked_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod identity {
    use sea_orm::entity::prelude::*;

    /// A customer's identity on one channel.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identities")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub channel: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub channel_user_id: String,
        #[sea_orm(indexed)]
        pub customer_id: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Items of a comma-separated list column (empty items skipped).
pub fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').filter(|x| !x.is_empty())
}

/// Conversation states. `closed` is also what a conversation idle past the timeout reads as.
pub mod conversation_state {
    pub const BOT: &str = "bot";
    pub const WAITING_FOR_HUMAN: &str = "waiting_for_human";
    pub const HUMAN: &str = "human";
    pub const CLOSED: &str = "closed";
    pub const ALL: &[&str] = &[BOT, WAITING_FOR_HUMAN, HUMAN, CLOSED];
}

pub mod conversation {
    use sea_orm::entity::prelude::*;

    impl Model {
        /// Intents of recent messages, most recent first.
        pub fn intents(&self) -> impl Iterator<Item = &str> {
            super::split_list(&self.recent_intents)
        }
    }

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "conversations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub conversation_id: String,
        pub shop_id: String,
        #[sea_orm(indexed)]
        pub customer_id: String,
        /// Intents of recent messages, most recent first, comma separated.
        pub recent_intents: String,
        /// Ticket a human agent holds for this conversation ("" when none).
        pub open_ticket_id: String,
        /// The conversation this one follows after an idle timeout ("" when none).
        pub previous_conversation_id: String,
        /// "bot", "waiting_for_human", "human" or "closed" (see [`super::conversation_state`]).
        pub state: String,
        /// `seq` of the last ticket event applied (replayed older events are ignored).
        pub ticket_seq: i64,
        pub created_at: DateTimeUtc,
        pub last_message_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod message {
    use sea_orm::entity::prelude::*;

    /// A customer message; unique on (shop_id, channel, channel_user_id, channel_message_id):
    /// a channel's message ids are only unique per user (two widgets may both send "m1").
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "messages")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_id: String,
        pub shop_id: String,
        pub channel: String,
        pub channel_user_id: String,
        pub channel_message_id: String,
        #[sea_orm(indexed)]
        pub conversation_id: String,
        #[sea_orm(indexed)]
        pub customer_id: String,
        #[sea_orm(column_type = "Text")]
        pub text: String,
        pub created_at: DateTimeUtc,
        /// The inbound event was acknowledged by the broker (transactional outbox flag).
        #[sea_orm(indexed)]
        pub published: bool,
        /// "bot" or "human" once the dialogue policy decided ("" before).
        pub route: String,
        pub route_reason: String,
        pub intent: String,
        /// W3C `traceparent` of the request that stored the message ("" when none), so the
        /// outbox relay re-publishes it in the message's own trace.
        pub traceparent: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod reply {
    use sea_orm::entity::prelude::*;

    /// A reply ready for delivery. `cursor` orders a shop's reply stream.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "replies")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub cursor: i64,
        #[sea_orm(unique)]
        pub reply_id: String,
        #[sea_orm(indexed)]
        pub shop_id: String,
        #[sea_orm(indexed)]
        pub message_id: String,
        #[sea_orm(indexed)]
        pub conversation_id: String,
        pub customer_id: String,
        pub channel: String,
        pub channel_user_id: String,
        #[sea_orm(column_type = "Text")]
        pub text: String,
        pub language: String,
        pub source: String,
        pub intent: String,
        pub ticket_id: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod identity_change {
    use sea_orm::entity::prelude::*;

    /// Audit trail of the identity graph: every link and unlink.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_changes")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(indexed)]
        pub shop_id: String,
        pub action: String,
        pub channel: String,
        pub channel_user_id: String,
        pub from_customer_id: String,
        pub to_customer_id: String,
        pub reason: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod webhook {
    use sea_orm::entity::prelude::*;

    /// Where a shop's replies on one channel are POSTed.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhooks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub channel: String,
        pub url: String,
        pub secret: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod webhook_delivery {
    use sea_orm::entity::prelude::*;

    /// One reply to POST to a webhook (an outbox row: written with the reply, retried until
    /// delivered).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_deliveries")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub shop_id: String,
        pub channel: String,
        /// The reply's cursor.
        #[sea_orm(unique)]
        pub reply_cursor: i64,
        pub attempts: i32,
        #[sea_orm(indexed)]
        pub next_attempt_at: DateTimeUtc,
        pub delivered_at: Option<DateTimeUtc>,
        pub last_error: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod shop_policy {
    use sea_orm::entity::prelude::*;

    /// A shop's dialogue policy (see `policy::Policy`).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "shop_policies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        pub min_confidence: f64,
        pub max_repeats: i32,
        /// Comma-separated intents.
        pub human_intents: String,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod customer_key {
    use sea_orm::entity::prelude::*;

    /// A verified key (phone, e-mail) of a customer, stored as a keyed hash only
    /// (HMAC-SHA256, `kefu_runtime::customer_key`; the column name predates the key: rows not
    /// migrated yet hold the legacy plain SHA-256).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "customer_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub value_sha256: String,
        #[sea_orm(indexed)]
        pub customer_id: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod migration {
    use sea_orm_migration::prelude::*;

    pub struct Migrator;

    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![
                Box::new(Initial),
                Box::new(IdentityChanges),
                Box::new(Webhooks),
                Box::new(PreviousConversation),
                Box::new(ShopPolicies),
                Box::new(CustomerKeys),
                Box::new(ConversationState),
                Box::new(
                    kefu_runtime::db::EntityIndexes::new("m20261124_000008_entity_indexes")
                        .of::<super::identity::Entity>()
                        .of::<super::conversation::Entity>()
                        .of::<super::message::Entity>()
                        .of::<super::reply::Entity>()
                        .of::<super::identity_change::Entity>()
                        .of::<super::webhook_delivery::Entity>()
                        .of::<super::customer_key::Entity>(),
                ),
                Box::new(Credentials),
                Box::new(
                    kefu_runtime::db::Indexes::new("m20261201_100001_retention_indexes")
                        .index(
                            crate::retention::WEBHOOK_DELIVERIES_INDEX,
                            "webhook_deliveries",
                            &["delivered_at", "next_attempt_at"],
                        )
                        .index(
                            crate::retention::MESSAGES_INDEX,
                            "messages",
                            &["published", "created_at"],
                        )
                        .index(crate::retention::REPLIES_INDEX, "replies", &["created_at"]),
                ),
                Box::new(MessageTrace),
            ]
        }
        fn migration_table_name() -> sea_orm::DynIden {
            "session_router_migrations".into_iden()
        }
    }

    struct Initial;

    struct Credentials;

    impl MigrationName for Credentials {
        fn name(&self) -> &str {
            "m20261130_000009_credentials"
        }
    }

    /// Agent tokens; shops found by their key's hash (the credential names the shop, not the
    /// request); message idempotency per channel user.
    #[async_trait::async_trait]
    impl MigrationTrait for Credentials {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            use super::*;
            kefu_runtime::db::create_table(manager, agent_token::Entity).await?;
            manager
                .create_index(
                    Index::create()
                        .name("ux_shops_api_key")
                        .table(shop::Entity)
                        .col(shop::Column::ApiKeySha256)
                        .unique()
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name(MESSAGE_KEY_INDEX)
                        .table(message::Entity)
                        .col(message::Column::ShopId)
                        .col(message::Column::Channel)
                        .col(message::Column::ChannelUserId)
                        .col(message::Column::ChannelMessageId)
                        .unique()
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
            manager
                .drop_index(
                    Index::drop()
                        .name("ux_messages_channel_message")
                        .table(message::Entity)
                        .if_exists()
                        .to_owned(),
                )
                .await
        }
    }

    /// The unique index behind message idempotency.
    pub const MESSAGE_KEY_INDEX: &str = "ux_messages_user_message";

    struct IdentityChanges;

    struct Webhooks;

    struct PreviousConversation;

    struct ShopPolicies;

    struct CustomerKeys;

    struct MessageTrace;

    impl MigrationName for MessageTrace {
        fn name(&self) -> &str {
            "m20261201_000011_message_traceparent"
        }
    }

    /// The trace context of the request that stored a message (for the outbox relay).
    #[async_trait::async_trait]
    impl MigrationTrait for MessageTrace {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            use super::message;
            if manager.has_column("messages", "traceparent").await? {
                return Ok(());
            }
            manager
                .alter_table(
                    Table::alter()
                        .table(message::Entity)
                        .add_column(
                            ColumnDef::new(message::Column::Traceparent)
                                .string()
                                .not_null()
                                .default(""),
                        )
                        .to_owned(),
                )
                .await
        }
    }

    struct ConversationState;

    impl MigrationName for ConversationState {
        fn name(&self) -> &str {
            "m20261124_000007_conversation_state"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for ConversationState {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            use super::conversation;
            if !manager.has_column("conversations", "state").await? {
                manager
                    .alter_table(
                        Table::alter()
                            .table(conversation::Entity)
                            .add_column(
                                ColumnDef::new(conversation::Column::State)
                                    .string()
                                    .not_null()
                                    .default("bot"),
                            )
                            .to_owned(),
                    )
                    .await?;
            }
            if !manager.has_column("conversations", "ticket_seq").await? {
                manager
                    .alter_table(
                        Table::alter()
                            .table(conversation::Entity)
                            .add_column(
                                ColumnDef::new(conversation::Column::TicketSeq)
                                    .big_integer()
                                    .not_null()
                                    .default(0),
                            )
                            .to_owned(),
                    )
                    .await?;
            }
            Ok(())
        }
    }

    impl MigrationName for CustomerKeys {
        fn name(&self) -> &str {
            "m20261124_000006_customer_keys"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CustomerKeys {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            kefu_runtime::db::create_table(manager, super::customer_key::Entity).await
        }
    }

    impl MigrationName for ShopPolicies {
        fn name(&self) -> &str {
            "m20261124_000005_shop_policies"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for ShopPolicies {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            kefu_runtime::db::create_table(manager, super::shop_policy::Entity).await
        }
    }

    impl MigrationName for PreviousConversation {
        fn name(&self) -> &str {
            "m20261124_000004_previous_conversation"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for PreviousConversation {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            use super::conversation;
            if manager
                .has_column("conversations", "previous_conversation_id")
                .await?
            {
                return Ok(());
            }
            manager
                .alter_table(
                    Table::alter()
                        .table(conversation::Entity)
                        .add_column(
                            ColumnDef::new(conversation::Column::PreviousConversationId)
                                .string()
                                .not_null()
                                .default(""),
                        )
                        .to_owned(),
                )
                .await
        }
    }

    impl MigrationName for Webhooks {
        fn name(&self) -> &str {
            "m20261124_000003_webhooks"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Webhooks {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            kefu_runtime::db::create_table(manager, super::webhook::Entity).await?;
            kefu_runtime::db::create_table(manager, super::webhook_delivery::Entity).await
        }
    }

    impl MigrationName for IdentityChanges {
        fn name(&self) -> &str {
            "m20261124_000002_identity_changes"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for IdentityChanges {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            kefu_runtime::db::create_table(manager, super::identity_change::Entity).await
        }
    }

    impl MigrationName for Initial {
        fn name(&self) -> &str {
            "m20261124_000001_initial"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Initial {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            use super::*;
            kefu_runtime::db::create_table(manager, shop::Entity).await?;
            kefu_runtime::db::create_table(manager, identity::Entity).await?;
            kefu_runtime::db::create_table(manager, conversation::Entity).await?;
            kefu_runtime::db::create_table(manager, message::Entity).await?;
            kefu_runtime::db::create_table(manager, reply::Entity).await?;
            manager
                .create_index(
                    Index::create()
                        .name("ux_messages_channel_message")
                        .table(message::Entity)
                        .col(message::Column::ShopId)
                        .col(message::Column::Channel)
                        .col(message::Column::ChannelMessageId)
                        .unique()
                        .if_not_exists()
                        .to_owned(),
                )
                .await
        }
    }
}
