//! Shop API keys: generated once, shown to the operator, stored only as SHA-256.
use std::{
    collections::HashMap,
    path::Path,
    sync::RwLock,
    time::{Duration, Instant},
};

use chrono::Utc;
use rand::RngCore;
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait, sea_query::OnConflict};
use sha2::{Digest, Sha256};

use crate::entity::shop;
use kefu_runtime::{grpc::ApiError, validate::Violations};

/// A new random API key: `kefu_` + 40 hex digits (160 bits).
pub fn generate_key() -> String {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    format!("kefu_{}", hex::encode(bytes))
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Creates or re-keys a shop.
pub async fn upsert_shop(db: &DatabaseConnection, shop_id: &str, key: &str) -> anyhow::Result<()> {
    shop::Entity::insert(shop::ActiveModel {
        shop_id: Set(shop_id.to_owned()),
        api_key_sha256: Set(hash_key(key)),
        created_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(shop::Column::ShopId)
            .update_column(shop::Column::ApiKeySha256)
            .to_owned(),
    )
    .exec(db)
    .await?;
    Ok(())
}

/// Seeds `shop_id` with the key in `key_file`, generating the key (and the file, mode 0600)
/// on first use. A second run reuses the file, so the key stays valid.
pub async fn seed_shop(
    db: &DatabaseConnection,
    shop_id: &str,
    key_file: &Path,
) -> anyhow::Result<String> {
    let key = match std::fs::read_to_string(key_file) {
        Ok(k) if !k.trim().is_empty() => k.trim().to_owned(),
        _ => {
            let k = generate_key();
            if let Some(dir) = key_file.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)?;
            }
            write_private(key_file, &k)?;
            k
        }
    };
    upsert_shop(db, shop_id, &key).await?;
    Ok(key)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    writeln!(f, "{contents}")
}

/// How long a shop's key hash is cached (a re-keyed shop's old key stops working within it).
const CACHE_TTL: Duration = Duration::from_secs(30);

/// Checks `authorization: Bearer <key>` against a shop. Known shops' key hashes are cached
/// for [`CACHE_TTL`].
pub struct Authenticator {
    db: DatabaseConnection,
    cache: RwLock<HashMap<String, (String, Instant)>>,
}

impl Authenticator {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            cache: RwLock::new(HashMap::new()),
        }
    }

    async fn key_hash(&self, shop_id: &str) -> Result<Option<String>, ApiError> {
        if let Some((h, at)) = self.cache.read().expect("auth cache").get(shop_id)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(Some(h.clone()));
        }
        let found = shop::Entity::find_by_id(shop_id.to_owned())
            .one(&self.db)
            .await?
            .map(|s| s.api_key_sha256);
        if let Some(h) = &found {
            self.cache
                .write()
                .expect("auth cache")
                .insert(shop_id.to_owned(), (h.clone(), Instant::now()));
        }
        Ok(found)
    }

    /// Drops a shop's cached key hash (after a rotation).
    pub fn forget(&self, shop_id: &str) {
        self.cache.write().expect("auth cache").remove(shop_id);
    }

    /// `authorization` is the raw header value. Unknown shop → InvalidArgument on `shop_id`;
    /// missing or wrong key → Unauthenticated.
    pub async fn check(&self, shop_id: &str, authorization: Option<&str>) -> Result<(), ApiError> {
        let Some(expected) = self.key_hash(shop_id).await? else {
            let mut v = Violations::new();
            v.add("shop_id", format!("unknown shop '{shop_id}'"));
            return Err(v.into());
        };
        let Some(value) = authorization else {
            return Err(ApiError::Unauthenticated(
                "missing authorization header: send 'authorization: Bearer <shop API key>'".into(),
            ));
        };
        let key = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .unwrap_or("");
        if key.is_empty() {
            return Err(ApiError::Unauthenticated(
                "authorization must be 'Bearer <shop API key>'".into(),
            ));
        }
        if !constant_time_eq(hash_key(key).as_bytes(), expected.as_bytes()) {
            return Err(ApiError::Unauthenticated(format!(
                "invalid API key for shop '{shop_id}'"
            )));
        }
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hash_stably() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        assert!(a.starts_with("kefu_") && a.len() == 45);
        assert_eq!(hash_key(&a), hash_key(&a));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
