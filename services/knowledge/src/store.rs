//! Versions, their files and activations, on SQLite or PostgreSQL.
use chrono::Utc;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
    sea_query::Expr,
};

use crate::entity::{activation, file, version};

/// Stores a bundle's files as the shop's next version; returns its number.
pub async fn store_version(
    db: &DatabaseConnection,
    shop_id: &str,
    files: &[(String, Vec<u8>)],
    summary: &str,
) -> Result<i64, DbErr> {
    let txn = kefu_runtime::db::begin_write(db).await?;
    kefu_runtime::db::lock_key(&txn, &format!("kefu.knowledge/{shop_id}")).await?;
    let last = version::Entity::find()
        .filter(version::Column::ShopId.eq(shop_id))
        .order_by_desc(version::Column::Version)
        .one(&txn)
        .await?
        .map(|v| v.version)
        .unwrap_or(0);
    let next = last + 1;
    version::Entity::insert(version::ActiveModel {
        shop_id: Set(shop_id.to_owned()),
        version: Set(next),
        created_at: Set(Utc::now()),
        summary: Set(summary.to_owned()),
    })
    .exec_without_returning(&txn)
    .await?;
    for chunk in files.chunks(100) {
        file::Entity::insert_many(chunk.iter().map(|(path, data)| file::ActiveModel {
            shop_id: Set(shop_id.to_owned()),
            version: Set(next),
            path: Set(path.clone()),
            data: Set(data.clone()),
        }))
        .exec_without_returning(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(next)
}

/// A version's files; `None` when the shop has no such version.
pub async fn files(
    db: &DatabaseConnection,
    shop_id: &str,
    v: i64,
) -> Result<Option<Vec<(String, Vec<u8>)>>, DbErr> {
    if version::Entity::find_by_id((shop_id.to_owned(), v))
        .one(db)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    Ok(Some(
        file::Entity::find()
            .filter(file::Column::ShopId.eq(shop_id))
            .filter(file::Column::Version.eq(v))
            .all(db)
            .await?
            .into_iter()
            .map(|f| (f.path, f.data))
            .collect(),
    ))
}

/// The active version: the latest activation not rolled back.
pub async fn active(
    db: &impl sea_orm::ConnectionTrait,
    shop_id: &str,
) -> Result<Option<i64>, DbErr> {
    Ok(activation::Entity::find()
        .filter(activation::Column::ShopId.eq(shop_id))
        .filter(activation::Column::RolledBack.eq(false))
        .order_by_desc(activation::Column::Id)
        .one(db)
        .await?
        .map(|a| a.version))
}

/// Makes `v` active; returns the version active before (if any).
pub async fn activate(
    db: &DatabaseConnection,
    shop_id: &str,
    v: i64,
) -> Result<Option<i64>, DbErr> {
    let txn = db.begin().await?;
    let before = active(&txn, shop_id).await?;
    activation::Entity::insert(activation::ActiveModel {
        id: NotSet,
        shop_id: Set(shop_id.to_owned()),
        version: Set(v),
        at: Set(Utc::now()),
        rolled_back: Set(false),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(before)
}

/// Undoes the latest activation; returns the version active now (`None`: nothing to roll
/// back to, nothing changed).
pub async fn rollback(db: &DatabaseConnection, shop_id: &str) -> Result<Option<i64>, DbErr> {
    let txn = db.begin().await?;
    let live = activation::Entity::find()
        .filter(activation::Column::ShopId.eq(shop_id))
        .filter(activation::Column::RolledBack.eq(false))
        .order_by_desc(activation::Column::Id)
        .limit(2)
        .all(&txn)
        .await?;
    let [latest, previous] = live.as_slice() else {
        return Ok(None);
    };
    activation::Entity::update_many()
        .col_expr(activation::Column::RolledBack, Expr::value(true))
        .filter(activation::Column::Id.eq(latest.id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(Some(previous.version))
}

/// The shop's versions, newest first, each with when it was last activated.
pub async fn versions(
    db: &DatabaseConnection,
    shop_id: &str,
) -> Result<Vec<(version::Model, Option<chrono::DateTime<Utc>>)>, DbErr> {
    let acts = activation::Entity::find()
        .filter(activation::Column::ShopId.eq(shop_id))
        .all(db)
        .await?;
    Ok(version::Entity::find()
        .filter(version::Column::ShopId.eq(shop_id))
        .order_by_desc(version::Column::Version)
        .limit(100)
        .all(db)
        .await?
        .into_iter()
        .map(|v| {
            let at = acts
                .iter()
                .filter(|a| a.version == v.version)
                .map(|a| a.at)
                .max();
            (v, at)
        })
        .collect())
}
