//! The credentials session-router owns — shops' API keys, agent tokens and the operator token —
//! and the verifier behind every Kefu API: used directly here, and by the other services
//! through `kefu.auth.v1.AuthService` ([`crate::access`]). Keys and tokens are generated here,
//! shown once, and stored only as SHA-256.
use std::path::Path;

use chrono::{DateTime, Utc};
use kefu_runtime::{
    auth::{
        AGENT_TOKEN_PREFIX, Caller, CredentialCache, Principal, SHOP_KEY_PREFIX, Verifier,
        constant_time_eq, generate, hash_hex,
    },
    grpc::ApiError,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};

use crate::entity::{agent_token, shop};

/// A new random shop API key: `kefu_` + 40 hex digits (160 bits).
pub fn generate_key() -> String {
    generate(SHOP_KEY_PREFIX)
}

/// Creates a shop with `key`. `Ok(false)` when the shop already exists (nothing changes).
pub async fn create_shop(db: &DatabaseConnection, shop_id: &str, key: &str) -> Result<bool, DbErr> {
    let inserted = shop::Entity::insert(shop::ActiveModel {
        shop_id: Set(shop_id.to_owned()),
        api_key_sha256: Set(hash_hex(key)),
        created_at: Set(Utc::now()),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(db)
    .await?;
    Ok(matches!(inserted, sea_orm::TryInsertResult::Inserted(1)))
}

/// Gives an existing shop a new key. `Ok(false)` when there is no such shop.
pub async fn set_key(db: &DatabaseConnection, shop_id: &str, key: &str) -> Result<bool, DbErr> {
    let r = shop::Entity::update_many()
        .col_expr(shop::Column::ApiKeySha256, Expr::value(hash_hex(key)))
        .filter(shop::Column::ShopId.eq(shop_id))
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// Shops by id, a page at a time.
pub async fn list_shops(
    db: &DatabaseConnection,
    limit: u64,
    offset: u64,
) -> Result<Vec<shop::Model>, DbErr> {
    shop::Entity::find()
        .order_by_asc(shop::Column::ShopId)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await
}

/// Creates `shop_id` with the key in `key_file`, generating the key (and the file, mode 0600)
/// on first use. A shop that exists is left as it is: a key rotated since (`RotateApiKey`,
/// `kefu shops reset-key`) stays the valid one across restarts, and a stale file is reported.
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
    if !create_shop(db, shop_id, &key).await? {
        let current = shop::Entity::find_by_id(shop_id.to_owned())
            .one(db)
            .await?
            .map(|s| s.api_key_sha256)
            .unwrap_or_default();
        if !constant_time_eq(current.as_bytes(), hash_hex(&key).as_bytes()) {
            tracing::warn!(
                shop = %shop_id, key_file = %key_file.display(),
                "the shop exists with another API key (rotated?): the key file is stale and its key is refused"
            );
        }
    }
    Ok(key)
}

/// Writes a secret to a file only its owner can read.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
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

/// Longest an agent token may live, in hours.
pub const MAX_AGENT_TOKEN_HOURS: i32 = 720;

/// Issues a token for `agent_id` of `shop_id`, valid `ttl_hours`. Returns the secret (shown
/// once) and the stored row.
pub async fn issue_agent_token(
    db: &DatabaseConnection,
    shop_id: &str,
    agent_id: &str,
    ttl_hours: i32,
) -> Result<(String, agent_token::Model), DbErr> {
    let token = generate(AGENT_TOKEN_PREFIX);
    let now = Utc::now();
    let model = agent_token::Model {
        token_id: format!("at_{}", uuid::Uuid::new_v4().simple()),
        shop_id: shop_id.to_owned(),
        agent_id: agent_id.to_owned(),
        token_sha256: hash_hex(&token),
        created_at: now,
        expires_at: now + chrono::Duration::hours(ttl_hours.into()),
        revoked_at: None,
    };
    agent_token::Entity::insert(agent_token::ActiveModel::from(model.clone()))
        .exec_without_returning(db)
        .await?;
    Ok((token, model))
}

/// A shop's agent tokens, newest first.
pub async fn list_agent_tokens(
    db: &DatabaseConnection,
    shop_id: &str,
    limit: u64,
    offset: u64,
) -> Result<Vec<agent_token::Model>, DbErr> {
    agent_token::Entity::find()
        .filter(agent_token::Column::ShopId.eq(shop_id))
        .order_by_desc(agent_token::Column::CreatedAt)
        .order_by_asc(agent_token::Column::TokenId)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await
}

/// Revokes one of the shop's tokens (idempotent); `None` when the shop has no such token.
pub async fn revoke_agent_token(
    db: &DatabaseConnection,
    shop_id: &str,
    token_id: &str,
) -> Result<Option<agent_token::Model>, DbErr> {
    agent_token::Entity::update_many()
        .col_expr(
            agent_token::Column::RevokedAt,
            Expr::value(Some(Utc::now())),
        )
        .filter(agent_token::Column::TokenId.eq(token_id))
        .filter(agent_token::Column::ShopId.eq(shop_id))
        .filter(agent_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    agent_token::Entity::find_by_id(token_id.to_owned())
        .filter(agent_token::Column::ShopId.eq(shop_id))
        .one(db)
        .await
}

/// Verifies shop keys and agent tokens against the database, and the operator token against
/// its hash. Answers are cached for [`kefu_runtime::auth::CACHE_TTL`]; a rotation or
/// revocation made here is forgotten at once.
pub struct LocalVerifier {
    db: DatabaseConnection,
    operator_sha256: Option<String>,
    cache: CredentialCache,
}

impl LocalVerifier {
    /// `operator_token`: the operator's token, or `None` to disable the operator API.
    pub fn new(db: DatabaseConnection, operator_token: Option<&str>) -> Self {
        Self {
            db,
            operator_sha256: operator_token.map(hash_hex),
            cache: CredentialCache::default(),
        }
    }

    /// Forgets a shop's cached key (after a rotation).
    pub fn forget_shop(&self, shop_id: &str) {
        self.cache
            .forget(|c| c.principal == Principal::Shop && c.shop_id() == Some(shop_id));
    }

    /// Forgets a shop's cached agent tokens (after a revocation).
    pub fn forget_agents(&self, shop_id: &str) {
        self.cache.forget(|c| {
            matches!(c.principal, Principal::Agent { .. }) && c.shop_id() == Some(shop_id)
        });
    }

    async fn lookup(&self, credential: &str) -> Result<Option<Caller>, DbErr> {
        let h = hash_hex(credential);
        if let Some(op) = &self.operator_sha256
            && constant_time_eq(op.as_bytes(), h.as_bytes())
        {
            return Ok(Some(Caller::new(Principal::Operator, "")));
        }
        if credential.starts_with(SHOP_KEY_PREFIX) {
            return Ok(shop::Entity::find()
                .filter(shop::Column::ApiKeySha256.eq(h))
                .one(&self.db)
                .await?
                .map(|s| Caller::new(Principal::Shop, s.shop_id)));
        }
        if credential.starts_with(AGENT_TOKEN_PREFIX) {
            let now: DateTime<Utc> = Utc::now();
            return Ok(agent_token::Entity::find()
                .filter(agent_token::Column::TokenSha256.eq(h))
                .filter(agent_token::Column::RevokedAt.is_null())
                .filter(agent_token::Column::ExpiresAt.gt(now))
                .one(&self.db)
                .await?
                .map(|t| {
                    Caller::new(
                        Principal::Agent {
                            agent_id: t.agent_id,
                        },
                        t.shop_id,
                    )
                }));
        }
        Ok(None)
    }
}

#[async_trait::async_trait]
impl Verifier for LocalVerifier {
    async fn verify(&self, credential: &str) -> Result<Option<Caller>, ApiError> {
        if let Some(c) = self.cache.get(credential) {
            return Ok(Some(c));
        }
        let found = self.lookup(credential).await?;
        if let Some(c) = &found {
            self.cache.put(credential, c.clone());
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_prefixed() {
        let (a, b) = (generate_key(), generate_key());
        assert_ne!(a, b);
        assert!(a.starts_with("kefu_") && a.len() == 45);
        assert_eq!(hash_hex(&a), hash_hex(&a));
    }
}
