//! Examples, model versions and activations, on SQLite or PostgreSQL.
use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
    sea_query::Expr,
};
use sha2::{Digest, Sha256};

use crate::entity::{activation, example, version};

/// Most examples a shop keeps.
pub const MAX_EXAMPLES_PER_SHOP: u64 = 100_000;

/// The key two sentences share when they are the same example: their dedupe key (the same
/// words; digits, punctuation and case aside), hashed.
pub fn example_key(text: &str) -> String {
    hex::encode(Sha256::digest(
        kefu_intent::data::dedupe_key(text).as_bytes(),
    ))
}

#[derive(Debug, PartialEq, Eq)]
pub struct Added {
    pub added: u32,
    pub updated: u32,
    pub total: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error("the shop would hold {0} examples; at most {MAX_EXAMPLES_PER_SHOP}")]
    TooMany(u64),
}

/// Stores examples (a sentence the shop has gets the new label, source and labeller).
pub async fn add_examples(
    db: &DatabaseConnection,
    shop_id: &str,
    examples: &[(String, String)],
    source: &str,
    labeled_by: &str,
    replace: bool,
) -> Result<Added, StoreError> {
    let txn = kefu_runtime::db::begin_write(db).await?;
    kefu_runtime::db::lock_key(&txn, &format!("kefu.intents/{shop_id}")).await?;
    if replace {
        example::Entity::delete_many()
            .filter(example::Column::ShopId.eq(shop_id))
            .filter(example::Column::Source.eq(source))
            .exec(&txn)
            .await?;
    }
    // Last one wins within the call too.
    let mut by_key: HashMap<String, (&str, &str)> = HashMap::new();
    let mut order = Vec::new();
    for (t, l) in examples {
        let k = example_key(t);
        if by_key.insert(k.clone(), (t, l)).is_none() {
            order.push(k);
        }
    }
    let mut existing: HashMap<String, i64> = HashMap::new();
    for keys in order.chunks(500) {
        for (id, key) in example::Entity::find()
            .select_only()
            .column(example::Column::Id)
            .column(example::Column::Key)
            .filter(example::Column::ShopId.eq(shop_id))
            .filter(example::Column::Key.is_in(keys.iter().cloned()))
            .into_tuple::<(i64, String)>()
            .all(&txn)
            .await?
        {
            existing.insert(key, id);
        }
    }
    let now = Utc::now();
    let before = count(&txn, shop_id, None).await?;
    let new = order.iter().filter(|k| !existing.contains_key(*k)).count() as u64;
    if before + new > MAX_EXAMPLES_PER_SHOP {
        return Err(StoreError::TooMany(before + new));
    }
    let mut fresh = Vec::new();
    let mut updated = 0u32;
    for k in &order {
        let (text, label) = by_key[k];
        match existing.get(k) {
            Some(&id) => {
                example::Entity::update_many()
                    .col_expr(example::Column::Text, Expr::value(text))
                    .col_expr(example::Column::Label, Expr::value(label))
                    .col_expr(example::Column::Source, Expr::value(source))
                    .col_expr(example::Column::LabeledBy, Expr::value(labeled_by))
                    .col_expr(example::Column::UpdatedAt, Expr::value(now))
                    .filter(example::Column::Id.eq(id))
                    .exec(&txn)
                    .await?;
                updated += 1;
            }
            None => fresh.push(example::ActiveModel {
                id: NotSet,
                shop_id: Set(shop_id.to_owned()),
                key: Set(k.clone()),
                text: Set(text.to_owned()),
                label: Set(label.to_owned()),
                source: Set(source.to_owned()),
                labeled_by: Set(labeled_by.to_owned()),
                updated_at: Set(now),
            }),
        }
    }
    let added = fresh.len() as u32;
    for chunk in fresh.chunks(200) {
        example::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    let total = count(&txn, shop_id, None).await?;
    txn.commit().await?;
    Ok(Added {
        added,
        updated,
        total,
    })
}

/// How many examples the shop has (of one source).
pub async fn count(
    db: &impl ConnectionTrait,
    shop_id: &str,
    source: Option<&str>,
) -> Result<u64, DbErr> {
    let mut q = example::Entity::find().filter(example::Column::ShopId.eq(shop_id));
    if let Some(s) = source {
        q = q.filter(example::Column::Source.eq(s));
    }
    q.count(db).await
}

/// Every example of the shop, oldest first: `(text, label)`.
pub async fn all_examples(
    db: &DatabaseConnection,
    shop_id: &str,
) -> Result<Vec<(String, String)>, DbErr> {
    example::Entity::find()
        .select_only()
        .column(example::Column::Text)
        .column(example::Column::Label)
        .filter(example::Column::ShopId.eq(shop_id))
        .order_by_asc(example::Column::Id)
        .into_tuple()
        .all(db)
        .await
}

/// A page of the shop's examples, newest first, below `before_id` (when set).
pub async fn list_examples(
    db: &DatabaseConnection,
    shop_id: &str,
    source: Option<&str>,
    label: Option<&str>,
    before_id: Option<i64>,
    limit: u64,
) -> Result<Vec<example::Model>, DbErr> {
    let mut q = example::Entity::find().filter(example::Column::ShopId.eq(shop_id));
    if let Some(s) = source {
        q = q.filter(example::Column::Source.eq(s));
    }
    if let Some(l) = label {
        q = q.filter(example::Column::Label.eq(l));
    }
    if let Some(b) = before_id {
        q = q.filter(example::Column::Id.lt(b));
    }
    q.order_by_desc(example::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// Deletes the shop's examples with these ids (another shop's ids delete nothing).
pub async fn delete_examples(
    db: &DatabaseConnection,
    shop_id: &str,
    ids: &[i64],
) -> Result<u64, DbErr> {
    Ok(example::Entity::delete_many()
        .filter(example::Column::ShopId.eq(shop_id))
        .filter(example::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await?
        .rows_affected)
}

/// A trained version to store.
pub struct NewVersion<'a> {
    pub model: &'a str,
    pub artefact: Vec<u8>,
    pub seen: Vec<u8>,
    pub report: String,
    pub examples: i64,
    pub mcc: f64,
    pub active_mcc: f64,
}

/// Stores a version as the shop's next one, and activates it when `activate`; returns its
/// number.
pub async fn store_version(
    db: &DatabaseConnection,
    shop_id: &str,
    v: NewVersion<'_>,
    activate: bool,
) -> Result<i64, DbErr> {
    let txn = kefu_runtime::db::begin_write(db).await?;
    kefu_runtime::db::lock_key(&txn, &format!("kefu.intents/{shop_id}")).await?;
    let last = version::Entity::find()
        .filter(version::Column::ShopId.eq(shop_id))
        .order_by_desc(version::Column::Version)
        .one(&txn)
        .await?
        .map(|v| v.version)
        .unwrap_or(0);
    let next = last + 1;
    let now = Utc::now();
    version::Entity::insert(version::ActiveModel {
        shop_id: Set(shop_id.to_owned()),
        version: Set(next),
        created_at: Set(now),
        model: Set(v.model.to_owned()),
        artefact: Set(v.artefact),
        seen: Set(v.seen),
        report: Set(v.report),
        examples: Set(v.examples),
        mcc: Set(v.mcc),
        active_mcc: Set(v.active_mcc),
    })
    .exec_without_returning(&txn)
    .await?;
    if activate {
        insert_activation(&txn, shop_id, next).await?;
    }
    txn.commit().await?;
    Ok(next)
}

async fn insert_activation(txn: &impl ConnectionTrait, shop_id: &str, v: i64) -> Result<(), DbErr> {
    activation::Entity::insert(activation::ActiveModel {
        id: NotSet,
        shop_id: Set(shop_id.to_owned()),
        version: Set(v),
        at: Set(Utc::now()),
        rolled_back: Set(false),
    })
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// The active version (0 or `None`: the bundled model).
pub async fn active(db: &impl ConnectionTrait, shop_id: &str) -> Result<Option<i64>, DbErr> {
    Ok(activation::Entity::find()
        .filter(activation::Column::ShopId.eq(shop_id))
        .filter(activation::Column::RolledBack.eq(false))
        .order_by_desc(activation::Column::Id)
        .one(db)
        .await?
        .map(|a| a.version)
        .filter(|v| *v > 0))
}

/// A version's artefact.
pub async fn artefact(
    db: &DatabaseConnection,
    shop_id: &str,
    v: i64,
) -> Result<Option<Vec<u8>>, DbErr> {
    version::Entity::find()
        .select_only()
        .column(version::Column::Artefact)
        .filter(version::Column::ShopId.eq(shop_id))
        .filter(version::Column::Version.eq(v))
        .into_tuple::<Vec<u8>>()
        .one(db)
        .await
}

/// A version's seen keys and its cross-validated MCC.
pub async fn seen(
    db: &DatabaseConnection,
    shop_id: &str,
    v: i64,
) -> Result<Option<(Vec<u8>, f64)>, DbErr> {
    version::Entity::find()
        .select_only()
        .column(version::Column::Seen)
        .column(version::Column::Mcc)
        .filter(version::Column::ShopId.eq(shop_id))
        .filter(version::Column::Version.eq(v))
        .into_tuple::<(Vec<u8>, f64)>()
        .one(db)
        .await
}

/// Undoes the latest activation; returns the version active now (0: the bundled model).
pub async fn rollback(db: &DatabaseConnection, shop_id: &str) -> Result<i64, DbErr> {
    let txn = db.begin().await?;
    let live = activation::Entity::find()
        .filter(activation::Column::ShopId.eq(shop_id))
        .filter(activation::Column::RolledBack.eq(false))
        .order_by_desc(activation::Column::Id)
        .limit(2)
        .all(&txn)
        .await?;
    let now = match live.as_slice() {
        [] => return Ok(0),
        [latest, rest @ ..] => {
            activation::Entity::update_many()
                .col_expr(activation::Column::RolledBack, Expr::value(true))
                .filter(activation::Column::Id.eq(latest.id))
                .exec(&txn)
                .await?;
            rest.first().map_or(0, |a| a.version)
        }
    };
    txn.commit().await?;
    Ok(now)
}

/// The shop's versions without artefacts, newest first (at most 100), each with when it was
/// last activated.
pub async fn versions(
    db: &DatabaseConnection,
    shop_id: &str,
) -> Result<Vec<(VersionRow, Option<chrono::DateTime<Utc>>)>, DbErr> {
    let acts = activation::Entity::find()
        .filter(activation::Column::ShopId.eq(shop_id))
        .all(db)
        .await?;
    let rows: Vec<VersionRow> = version::Entity::find()
        .select_only()
        .column(version::Column::Version)
        .column(version::Column::CreatedAt)
        .column(version::Column::Model)
        .column(version::Column::Report)
        .column(version::Column::Examples)
        .column(version::Column::Mcc)
        .column(version::Column::ActiveMcc)
        .filter(version::Column::ShopId.eq(shop_id))
        .order_by_desc(version::Column::Version)
        .limit(100)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|v| {
            let at = acts.iter().filter(|a| a.version == v.0).map(|a| a.at).max();
            (v, at)
        })
        .collect())
}

/// `(version, created_at, model, report, examples, mcc, active_mcc)`.
pub type VersionRow = (i64, chrono::DateTime<Utc>, String, String, i64, f64, f64);
