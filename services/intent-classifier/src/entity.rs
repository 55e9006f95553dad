//! Tables owned by the intent classifier: each shop's labelled examples, its trained model
//! versions (artefact and training report), and the history of which version was active.

pub mod example {
    use sea_orm::entity::prelude::*;

    /// A labelled sentence of a shop: uploaded, or labelled by an agent.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "intent_examples")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub shop_id: String,
        /// SHA-256 (hex) of the sentence's dedupe key: the same words, digits and punctuation
        /// aside, are the same example.
        pub key: String,
        #[sea_orm(column_type = "Text")]
        pub text: String,
        pub label: String,
        /// `upload` or `agent`.
        pub source: String,
        pub labeled_by: String,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod version {
    use sea_orm::entity::prelude::*;

    /// A trained model of a shop.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "intent_versions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: i64,
        pub created_at: DateTimeUtc,
        /// The model's name (`shop-intent-v1-…`).
        pub model: String,
        /// `kefu_intent::shop::ShopModel::to_bytes`.
        #[sea_orm(column_type = "Blob")]
        pub artefact: Vec<u8>,
        /// `kefu_intent::shop::seen_keys` of its training set: what it cannot be fairly
        /// scored on.
        #[sea_orm(column_type = "Blob")]
        pub seen: Vec<u8>,
        /// `TrainResponse` as JSON (what training measured).
        #[sea_orm(column_type = "Text")]
        pub report: String,
        pub examples: i64,
        pub mcc: f64,
        pub active_mcc: f64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod activation {
    use sea_orm::entity::prelude::*;

    /// A version made active (`version` 0: the bundled model). The active version is the
    /// latest activation not rolled back.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "intent_activations")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(indexed)]
        pub shop_id: String,
        pub version: i64,
        pub at: DateTimeUtc,
        pub rolled_back: bool,
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
            vec![Box::new(Initial)]
        }
        fn migration_table_name() -> sea_orm::DynIden {
            "intent_migrations".into_iden()
        }
    }

    struct Initial;

    impl MigrationName for Initial {
        fn name(&self) -> &str {
            "m20261201_000001_intents"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Initial {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            use super::example;
            kefu_runtime::db::create_table(manager, example::Entity).await?;
            manager
                .create_index(
                    Index::create()
                        .name("ux_intent_examples_shop_key")
                        .table(example::Entity)
                        .col(example::Column::ShopId)
                        .col(example::Column::Key)
                        .unique()
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
            kefu_runtime::db::create_table(manager, super::version::Entity).await?;
            kefu_runtime::db::create_table(manager, super::activation::Entity).await
        }
    }
}
