//! Tables owned by the ticket service.
pub mod ticket {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tickets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub ticket_id: String,
        #[sea_orm(indexed)]
        pub shop_id: String,
        /// One ticket per escalated message: the idempotency key.
        #[sea_orm(unique)]
        pub message_id: String,
        pub conversation_id: String,
        pub customer_id: String,
        pub status: String,
        pub reason: String,
        pub intent: String,
        #[sea_orm(column_type = "Text")]
        pub text: String,
        pub language: String,
        pub created_at: DateTimeUtc,
        pub sla_due_at: DateTimeUtc,
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
            vec![Box::new(CreateTickets)]
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
}
