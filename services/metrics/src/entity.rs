//! Tables owned by the metrics service.
pub mod seen_event {
    use sea_orm::entity::prelude::*;

    /// Deliveries already counted, keyed by `topic/partition/offset` (exact dedupe).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "metrics_seen_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub delivery_id: String,
        pub seen_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod topic_count {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "metrics_topic_counts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub topic: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        pub events: i64,
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
                Box::new(CreateCounts),
                Box::new(
                    kefu_runtime::db::Indexes::new("m20261201_100001_retention_indexes").index(
                        crate::retention::SEEN_EVENTS_INDEX,
                        "metrics_seen_events",
                        &["seen_at"],
                    ),
                ),
            ]
        }
        fn migration_table_name() -> sea_orm::DynIden {
            "metrics_migrations".into_iden()
        }
    }

    struct CreateCounts;

    impl MigrationName for CreateCounts {
        fn name(&self) -> &str {
            "m20261124_000001_create_counts"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CreateCounts {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            kefu_runtime::db::create_table(manager, super::seen_event::Entity).await?;
            kefu_runtime::db::create_table(manager, super::topic_count::Entity).await
        }
    }
}
