//! Tables owned by order-sync.
pub mod order {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "orders")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: String,
        pub customer_id: String,
        pub status: String,
        pub carrier: String,
        pub tracking_number: String,
        pub total_minor: i64,
        pub currency: String,
        pub updated_at: DateTimeUtc,
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
            vec![Box::new(CreateOrders)]
        }
        fn migration_table_name() -> sea_orm::DynIden {
            "order_sync_migrations".into_iden()
        }
    }

    struct CreateOrders;

    impl MigrationName for CreateOrders {
        fn name(&self) -> &str {
            "m20261124_000001_create_orders"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CreateOrders {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            kefu_runtime::db::create_table(manager, super::order::Entity).await
        }
    }
}
