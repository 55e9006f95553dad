//! Tables owned by the knowledge service: each shop's bundle versions (their files as
//! imported), and the history of which version was active.

pub mod version {
    use sea_orm::entity::prelude::*;

    /// One imported bundle.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "knowledge_versions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: i64,
        pub created_at: DateTimeUtc,
        /// `proto Summary` as JSON: what the bundle holds.
        #[sea_orm(column_type = "Text")]
        pub summary: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod file {
    use sea_orm::entity::prelude::*;

    /// A file of a bundle version, as imported (the bundle is parsed again from these, so a
    /// newer parser reads old versions the same way a fresh import would).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "knowledge_files")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub path: String,
        #[sea_orm(column_type = "Blob")]
        pub data: Vec<u8>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod activation {
    use sea_orm::entity::prelude::*;

    /// A version made active. The active version is the latest activation not rolled back;
    /// a rollback marks the latest one rolled back.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "knowledge_activations")]
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
            "knowledge_migrations".into_iden()
        }
    }

    struct Initial;

    impl MigrationName for Initial {
        fn name(&self) -> &str {
            "m20261130_000001_knowledge"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for Initial {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            kefu_runtime::db::create_table(manager, super::version::Entity).await?;
            kefu_runtime::db::create_table(manager, super::file::Entity).await?;
            kefu_runtime::db::create_table(manager, super::activation::Entity).await
        }
    }
}
