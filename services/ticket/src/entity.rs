//! Tables owned by the ticket service.

/// Ticket statuses.
pub mod status {
    /// Waiting for an agent.
    pub const OPEN: &str = "open";
    /// An agent replied and owns the conversation.
    pub const ACTIVE: &str = "active";
    /// Handed back to the bot.
    pub const HANDED_BACK: &str = "handed_back";
    /// Closed with its conversation.
    pub const CLOSED: &str = "closed";
    pub const ALL: &[&str] = &[OPEN, ACTIVE, HANDED_BACK, CLOSED];
    /// Statuses in which the ticket holds its conversation.
    pub const UNFINISHED: &[&str] = &[OPEN, ACTIVE];
}

pub mod ticket {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tickets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub ticket_id: String,
        #[sea_orm(indexed)]
        pub shop_id: String,
        /// The message that opened the ticket: the idempotency key of opening.
        #[sea_orm(unique)]
        pub message_id: String,
        #[sea_orm(indexed)]
        pub conversation_id: String,
        pub customer_id: String,
        /// One of [`super::status::ALL`].
        pub status: String,
        pub reason: String,
        pub intent: String,
        #[sea_orm(column_type = "Text")]
        pub text: String,
        pub language: String,
        pub created_at: DateTimeUtc,
        pub sla_due_at: DateTimeUtc,
        /// The agent who replied last ("" before the first reply).
        pub assignee: String,
        pub first_response_at: Option<DateTimeUtc>,
        pub updated_at: DateTimeUtc,
        /// The customer's latest message in the ticket (agent replies answer it).
        pub last_message_id: String,
        pub channel: String,
        pub channel_user_id: String,
        /// The order the conversation was handed over about ("" when none).
        pub order_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod ticket_message {
    use sea_orm::entity::prelude::*;

    /// One line of a ticket's thread.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ticket_messages")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(indexed)]
        pub ticket_id: String,
        /// session-router's message id, or the agent reply's id: the idempotency key.
        #[sea_orm(unique)]
        pub message_id: String,
        /// "customer" or "agent".
        pub author: String,
        pub agent_id: String,
        #[sea_orm(column_type = "Text")]
        pub text: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod ticket_event {
    use sea_orm::entity::prelude::*;

    /// Transactional outbox of ticket changes: written with the change, published after the
    /// commit, republished by a relay until the broker acknowledges. `seq` orders a
    /// conversation's changes for session-router.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ticket_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        pub ticket_id: String,
        pub shop_id: String,
        pub conversation_id: String,
        pub customer_id: String,
        /// The customer message the event relates to (correlation id).
        pub message_id: String,
        /// "opened", "agent_replied", "handed_back", "closed".
        pub kind: String,
        pub agent_id: String,
        /// For "agent_replied": the reply to deliver.
        pub reply_id: String,
        #[sea_orm(column_type = "Text")]
        pub reply_text: String,
        pub language: String,
        pub channel: String,
        pub channel_user_id: String,
        #[sea_orm(indexed)]
        pub published: bool,
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
                Box::new(CreateTickets),
                Box::new(AgentWorkflow),
                Box::new(
                    kefu_runtime::db::EntityIndexes::new("m20261124_000003_entity_indexes")
                        .of::<super::ticket::Entity>()
                        .of::<super::ticket_message::Entity>()
                        .of::<super::ticket_event::Entity>(),
                ),
                Box::new(kefu_runtime::outbox::LeaseTable),
                Box::new(
                    kefu_runtime::db::Indexes::new("m20261201_100001_retention_indexes")
                        .index(
                            crate::retention::TICKET_EVENTS_INDEX,
                            "ticket_events",
                            &["published", "created_at"],
                        )
                        .index(
                            crate::retention::TICKETS_INDEX,
                            "tickets",
                            &["status", "updated_at"],
                        )
                        .index(
                            crate::retention::TICKET_MESSAGES_INDEX,
                            "ticket_messages",
                            &["created_at"],
                        ),
                ),
            ]
        }
        fn migration_table_name() -> sea_orm::DynIden {
            "ticket_migrations".into_iden()
        }
    }

    struct CreateTickets;

    impl MigrationName for CreateTickets {
        fn name(&self) -> &str {
            "m20261124_000001_create_tickets"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CreateTickets {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            kefu_runtime::db::create_table(manager, super::ticket::Entity).await
        }
    }

    /// Agent replies, hand-back and close: the columns tickets gained, the thread, the outbox.
    struct AgentWorkflow;

    impl MigrationName for AgentWorkflow {
        fn name(&self) -> &str {
            "m20261124_000002_agent_workflow"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for AgentWorkflow {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            use super::ticket::Column as C;
            let text = |c: C| ColumnDef::new(c).string().not_null().default("").to_owned();
            let columns = [
                ("assignee", text(C::Assignee)),
                (
                    "first_response_at",
                    ColumnDef::new(C::FirstResponseAt)
                        .timestamp_with_time_zone()
                        .null()
                        .to_owned(),
                ),
                (
                    "updated_at",
                    ColumnDef::new(C::UpdatedAt)
                        .timestamp_with_time_zone()
                        .not_null()
                        // SQLite only adds columns with constant defaults; backfilled below.
                        .default("1970-01-01 00:00:00+00:00")
                        .to_owned(),
                ),
                ("last_message_id", text(C::LastMessageId)),
                ("channel", text(C::Channel)),
                ("channel_user_id", text(C::ChannelUserId)),
                ("order_id", text(C::OrderId)),
            ];
            for (name, mut def) in columns {
                if !manager.has_column("tickets", name).await? {
                    manager
                        .alter_table(
                            Table::alter()
                                .table(super::ticket::Entity)
                                .add_column(&mut def)
                                .to_owned(),
                        )
                        .await?;
                }
            }
            manager
                .exec_stmt(
                    Query::update()
                        .table(super::ticket::Entity)
                        .value(C::UpdatedAt, Expr::col(C::CreatedAt))
                        .and_where(Expr::col(C::UpdatedAt).lt(Expr::col(C::CreatedAt)))
                        .to_owned(),
                )
                .await?;
            kefu_runtime::db::create_table(manager, super::ticket_message::Entity).await?;
            kefu_runtime::db::create_table(manager, super::ticket_event::Entity).await
        }
    }
}
