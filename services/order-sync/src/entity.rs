//! Tables owned by order-sync: the canonical commerce model (docs/orders.md).
//!
//! Phone numbers and e-mail addresses of buyers are kept as SHA-256 of their normalised form
//! (the same hash session-router keeps for verified keys), so the two services can match a
//! customer without either storing the other's raw contact data.

macro_rules! no_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    };
}

pub mod shop {
    use sea_orm::entity::prelude::*;

    /// A shop order-sync has received data for.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "commerce_shops")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        pub created_at: DateTimeUtc,
    }

    no_relations!();
}

pub mod customer {
    use sea_orm::entity::prelude::*;

    /// A buyer as the sources know them, with the keys that tie them to Kefu customers.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "commerce_customers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        /// The source's buyer id, or a key derived from the buyer's identity / phone / e-mail.
        #[sea_orm(primary_key, auto_increment = false)]
        pub customer_ref: String,
        pub name: String,
        #[sea_orm(indexed)]
        pub phone_sha256: String,
        #[sea_orm(indexed)]
        pub email_sha256: String,
        /// `channel:channel_user_id` of the identity the buyer ordered with ("" if unknown).
        #[sea_orm(indexed)]
        pub identity: String,
        pub updated_at: DateTimeUtc,
    }

    no_relations!();
}

pub mod order {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "commerce_orders")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: String,
        #[sea_orm(indexed)]
        pub customer_ref: String,
        pub status: String,
        pub total_minor: i64,
        pub currency: String,
        pub placed_at: DateTimeUtc,
        /// The source's last change (newer versions win, older ones are ignored).
        pub updated_at: DateTimeUtc,
        /// "shopify", "webhook", "import", "grpc".
        pub source: String,
        /// The source's internal id ("shopify:450789469"), to find the order from later events.
        #[sea_orm(indexed)]
        pub source_ref: String,
        pub buyer_name: String,
        /// SHA-256 of the canonical content: an identical replay changes nothing.
        pub content_sha256: String,
        pub stored_at: DateTimeUtc,
    }

    no_relations!();
}

pub mod line_item {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "order_line_items")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub line_no: i32,
        pub sku: String,
        pub title: String,
        pub quantity: i32,
        pub price_minor: i64,
    }

    no_relations!();
}

pub mod payment {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "order_payments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub payment_id: String,
        pub method: String,
        pub status: String,
        pub amount_minor: i64,
        pub at: Option<DateTimeUtc>,
    }

    no_relations!();
}

pub mod order_return {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "order_returns")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub order_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub return_id: String,
        pub status: String,
        pub reason: String,
        pub refund_minor: i64,
        pub updated_at: Option<DateTimeUtc>,
    }

    no_relations!();
}

pub mod shipment {
    use sea_orm::entity::prelude::*;

    /// A parcel. Carrier events may arrive before the order names the parcel, so `order_id` can
    /// be empty until it does.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "shipments")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tracking_number: String,
        #[sea_orm(indexed)]
        pub order_id: String,
        pub carrier: String,
        pub estimated_delivery: Option<DateTimeUtc>,
        pub updated_at: DateTimeUtc,
    }

    no_relations!();
}

pub mod tracking_event {
    use sea_orm::entity::prelude::*;

    /// One carrier scan. Unique on (shop, tracking number, time, status): a replay adds nothing.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tracking_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub shop_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub tracking_number: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub at: DateTimeUtc,
        #[sea_orm(primary_key, auto_increment = false)]
        pub status: String,
        pub location: String,
        pub description: String,
    }

    no_relations!();
}

pub mod rejection {
    use sea_orm::entity::prelude::*;

    /// A connector request that was refused (bad signature, unknown shop, bad payload). The
    /// body is not kept, only its hash and size.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "connector_rejections")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub shop_id: String,
        pub connector: String,
        pub topic: String,
        pub reason: String,
        pub body_sha256: String,
        pub body_bytes: i64,
        pub received_at: DateTimeUtc,
    }

    no_relations!();
}

pub mod commerce_event {
    use sea_orm::entity::prelude::*;

    /// Outbox of order and shipment changes, published to `kefu.commerce.*` after the commit.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "commerce_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        /// "order" or "shipment".
        pub kind: String,
        pub shop_id: String,
        /// Order id or tracking number.
        pub key: String,
        #[sea_orm(indexed)]
        pub published: bool,
        pub created_at: DateTimeUtc,
    }

    no_relations!();
}

pub mod migration {
    use sea_orm_migration::prelude::*;

    pub struct Migrator;

    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![
                Box::new(CreateOrders),
                Box::new(CommerceModel),
                Box::new(
                    kefu_runtime::db::EntityIndexes::new("m20261124_000003_entity_indexes")
                        .of::<super::customer::Entity>()
                        .of::<super::order::Entity>()
                        .of::<super::shipment::Entity>()
                        .of::<super::commerce_event::Entity>(),
                ),
                Box::new(kefu_runtime::outbox::LeaseTable),
                Box::new(
                    kefu_runtime::db::Indexes::new("m20261201_100001_retention_indexes")
                        .index(
                            crate::retention::COMMERCE_EVENTS_INDEX,
                            "commerce_events",
                            &["published", "created_at"],
                        )
                        .index(
                            crate::retention::REJECTIONS_INDEX,
                            "connector_rejections",
                            &["received_at"],
                        )
                        .index(
                            crate::retention::REJECTIONS_SHOP_INDEX,
                            "connector_rejections",
                            &["shop_id", "id"],
                        ),
                ),
            ]
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
        async fn up(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
            // Superseded by the commerce model below. Databases that ran it keep their old
            // `orders` table untouched (unused); new databases skip it.
            Ok(())
        }
    }

    /// The canonical model: shops, customers, orders with items, payments and returns,
    /// shipments with tracking events, rejections and the event outbox.
    struct CommerceModel;

    impl MigrationName for CommerceModel {
        fn name(&self) -> &str {
            "m20261124_000002_commerce_model"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for CommerceModel {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            use super::*;
            use kefu_runtime::db::create_table;
            create_table(manager, shop::Entity).await?;
            create_table(manager, customer::Entity).await?;
            create_table(manager, order::Entity).await?;
            create_table(manager, line_item::Entity).await?;
            create_table(manager, payment::Entity).await?;
            create_table(manager, order_return::Entity).await?;
            create_table(manager, shipment::Entity).await?;
            create_table(manager, tracking_event::Entity).await?;
            create_table(manager, rejection::Entity).await?;
            create_table(manager, commerce_event::Entity).await
        }
    }
}
