//! The relay of a transactional outbox: rows committed together with a change are published
//! by **one** publisher — one task per process, woken at once by [`Relay::nudge`] after a
//! commit and every second anyway, and one process per deployment, the holder of a lease in
//! the service's own database (`outbox_leases`), so replicas never publish the same rows at
//! the same time. Request handlers only commit and nudge: they never wait for the broker
//! (a webhook's sender has its own timeout and retries). If the holder dies, another replica
//! takes over when the lease expires ([`LEASE`]).
use std::{future::Future, sync::Arc, time::Duration};

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long a relay's lease lasts without renewal.
pub const LEASE: chrono::Duration = chrono::Duration::seconds(30);

/// The lease table each service with an outbox creates in its migrations.
pub mod lease {
    use sea_orm::entity::prelude::*;

    /// Who publishes an outbox, until when.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox_leases")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub holder: String,
        pub until: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Wakes a relay; cheap to clone.
#[derive(Clone, Default)]
pub struct Nudge(Arc<Notify>);

impl Nudge {
    /// Publish now (after a commit that wrote outbox rows).
    pub fn nudge(&self) {
        self.0.notify_one();
    }
}

/// One outbox's relay.
pub struct Relay {
    name: &'static str,
    holder: String,
    db: DatabaseConnection,
    nudge: Nudge,
}

impl Relay {
    pub fn new(name: &'static str, db: DatabaseConnection) -> Self {
        Self {
            name,
            holder: uuid::Uuid::new_v4().to_string(),
            db,
            nudge: Nudge::default(),
        }
    }

    pub fn nudger(&self) -> Nudge {
        self.nudge.clone()
    }

    /// Takes or renews the lease; false while another process holds it.
    pub async fn acquire(&self) -> Result<bool, DbErr> {
        let now = Utc::now();
        lease::Entity::insert(lease::ActiveModel {
            name: Set(self.name.to_owned()),
            holder: Set(String::new()),
            until: Set(now - LEASE),
        })
        .on_conflict(
            OnConflict::column(lease::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        let taken = lease::Entity::update_many()
            .col_expr(lease::Column::Holder, Expr::value(self.holder.clone()))
            .col_expr(lease::Column::Until, Expr::value(now + LEASE))
            .filter(lease::Column::Name.eq(self.name))
            .filter(
                lease::Column::Holder
                    .eq(self.holder.clone())
                    .or(lease::Column::Until.lt(now)),
            )
            .exec(&self.db)
            .await?;
        Ok(taken.rows_affected == 1)
    }

    async fn release(&self) {
        let _ = lease::Entity::update_many()
            .col_expr(lease::Column::Until, Expr::value(Utc::now() - LEASE))
            .filter(lease::Column::Name.eq(self.name))
            .filter(lease::Column::Holder.eq(self.holder.clone()))
            .exec(&self.db)
            .await;
    }

    /// Publishes with `publish` (which returns how many rows it published) until `shutdown`.
    pub async fn run<F, Fut>(
        self,
        shutdown: CancellationToken,
        mut publish: F,
    ) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<usize>>,
    {
        let mut leader = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.nudge.0.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            match self.acquire().await {
                Ok(true) => {
                    if !leader {
                        tracing::info!(outbox = self.name, "publishing this outbox (lease taken)");
                    }
                    leader = true;
                }
                Ok(false) => {
                    if leader {
                        tracing::info!(
                            outbox = self.name,
                            "another replica publishes this outbox now"
                        );
                    }
                    leader = false;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(outbox = self.name, error = %e, "outbox lease unavailable; retrying");
                    continue;
                }
            }
            // Publishing waits for the broker however long it is away; shutdown cuts it
            // short (the rows stay unpublished and go out next time).
            let published = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = publish() => r,
            };
            match published {
                Ok(0) => {}
                Ok(n) => {
                    tracing::debug!(outbox = self.name, events = n, "outbox published");
                    // More may be waiting: go again without the pause.
                    self.nudge.nudge();
                }
                Err(e) => {
                    tracing::warn!(outbox = self.name, error = %e, "outbox publish failed; retrying")
                }
            }
        }
        if leader {
            self.release().await;
        }
        Ok(())
    }
}

/// The migration that creates `outbox_leases`; add it to the migrator of each service with
/// an outbox.
pub struct LeaseTable;

impl sea_orm_migration::MigrationName for LeaseTable {
    fn name(&self) -> &str {
        "m20261130_000010_outbox_leases"
    }
}

#[async_trait::async_trait]
impl sea_orm_migration::MigrationTrait for LeaseTable {
    async fn up(&self, manager: &sea_orm_migration::SchemaManager) -> Result<(), DbErr> {
        crate::db::create_table(manager, lease::Entity).await
    }
}
