//! Customer keys shared by session-router (verified phone / e-mail of a channel identity) and
//! order-sync (an order's buyer). Both services store and compare only a keyed hash of the
//! normalised value, so the normalisation and the hash live here, in one place: if they
//! differed between the two services, no order would ever match its customer.
//!
//! The hash is HMAC-SHA256 keyed by a per-deployment secret ([`CustomerKeyArgs`]:
//! `--customer-key-secret-file` / `KEFU_CUSTOMER_KEY_SECRET`), shared by session-router and
//! order-sync. Plain SHA-256 of a phone number can be reversed by enumerating the (small) space
//! of phone numbers; an HMAC cannot without the secret. Rows written before the secret existed
//! hold [`legacy_hash`] (plain SHA-256): the services find them with [`CustomerKeys::candidates`]
//! and rewrite them to the HMAC when the plaintext passes by (docs/security.md, "Customer keys").
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Shortest accepted secret, in bytes (after trimming).
pub const MIN_SECRET_BYTES: usize = 32;

/// Digits of a phone number (`+86 139-0000-1111` → `8613900001111`).
pub fn normalize_phone(p: &str) -> String {
    p.chars().filter(char::is_ascii_digit).collect()
}

/// A trimmed, lower-cased e-mail address.
pub fn normalize_email(e: &str) -> String {
    e.trim().to_lowercase()
}

/// Hex SHA-256 of an already normalised key: what Kefu stored before customer keys were keyed.
/// Only for finding and migrating legacy rows; never store it.
pub fn legacy_hash(normalized: &str) -> String {
    hex::encode(Sha256::digest(normalized.as_bytes()))
}

/// Why a customer-key secret was refused.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "no customer-key secret: set --customer-key-secret-file or KEFU_CUSTOMER_KEY_SECRET (at least {MIN_SECRET_BYTES} bytes, the same for session-router and order-sync; e.g. `openssl rand -hex 32`)"
    )]
    Missing,
    #[error("customer-key secret {0}: {1}")]
    Unreadable(String, std::io::Error),
    #[error("customer-key secret must be at least {MIN_SECRET_BYTES} bytes")]
    TooShort,
}

/// The keyed hash of customer keys (HMAC-SHA256 with the deployment's secret).
#[derive(Clone)]
pub struct CustomerKeys {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for CustomerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomerKeys(<secret>)")
    }
}

impl CustomerKeys {
    /// Keys by `secret` (at least [`MIN_SECRET_BYTES`] bytes after trimming whitespace).
    pub fn new(secret: &[u8]) -> Result<CustomerKeys, SecretError> {
        let secret = secret.trim_ascii();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort);
        }
        Ok(CustomerKeys {
            mac: Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length"),
        })
    }

    /// Hex HMAC-SHA256 of an already normalised key: the value to store and compare.
    pub fn hash(&self, normalized: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(normalized.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The stored values that may stand for `normalized`: the HMAC first, then the legacy
    /// SHA-256 of rows not migrated yet.
    pub fn candidates(&self, normalized: &str) -> [String; 2] {
        [self.hash(normalized), legacy_hash(normalized)]
    }
}

/// Configuration of the customer-key secret (session-router and order-sync flatten this).
/// `Debug` never shows the secret.
#[derive(Clone, Default, clap::Args)]
pub struct CustomerKeyArgs {
    /// File holding the per-deployment secret (at least 32 bytes) that keys the hashes of
    /// customers' phone numbers and e-mail addresses; session-router and order-sync must share
    /// it. Required.
    #[arg(long, env = "KEFU_CUSTOMER_KEY_SECRET_FILE")]
    pub customer_key_secret_file: Option<PathBuf>,
    /// The secret itself, from the environment (a Kubernetes Secret as an environment
    /// variable); the file wins when both are set. The flag is hidden: a secret on the command
    /// line is visible to every user of the machine.
    #[arg(
        long,
        env = "KEFU_CUSTOMER_KEY_SECRET",
        hide = true,
        hide_env_values = true
    )]
    pub customer_key_secret: Option<String>,
}

impl std::fmt::Debug for CustomerKeyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerKeyArgs")
            .field("customer_key_secret_file", &self.customer_key_secret_file)
            .field(
                "customer_key_secret",
                &self.customer_key_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl CustomerKeyArgs {
    /// The configured keyed hash, or why there is none.
    pub fn load(&self) -> Result<CustomerKeys, SecretError> {
        if let Some(path) = &self.customer_key_secret_file {
            return CustomerKeys::new(&read(path)?);
        }
        match &self.customer_key_secret {
            Some(s) if !s.trim().is_empty() => CustomerKeys::new(s.as_bytes()),
            _ => Err(SecretError::Missing),
        }
    }

    /// The configured keyed hash, or exit 64 with the reason (a service's start).
    pub fn load_or_exit(&self) -> CustomerKeys {
        self.load()
            .unwrap_or_else(|e| crate::config::config_error(e))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, SecretError> {
    std::fs::read(path).map_err(|e| SecretError::Unreadable(path.display().to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret() {
        let a = CustomerKeyArgs {
            customer_key_secret_file: None,
            customer_key_secret: Some("do-not-print-this-secret-0123456789".into()),
        };
        let shown = format!("{a:?}");
        assert!(!shown.contains("do-not-print"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    fn keys() -> CustomerKeys {
        CustomerKeys::new(b"0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn the_same_person_hashes_the_same_whatever_the_formatting() {
        let k = keys();
        assert_eq!(
            k.hash(&normalize_phone("+86 139-0000-1111")),
            k.hash(&normalize_phone("8613900001111"))
        );
        assert_eq!(
            k.hash(&normalize_email(" Bob@Example.com ")),
            k.hash("bob@example.com")
        );
        assert_ne!(k.hash("1"), k.hash("2"));
    }

    #[test]
    fn the_hash_is_keyed_not_plain_sha256() {
        let phone = normalize_phone("+86 139-0000-1111");
        let a = keys().hash(&phone);
        assert_ne!(a, legacy_hash(&phone), "enumerable without the secret");
        let other = CustomerKeys::new(b"another secret of 32 bytes or more").unwrap();
        assert_ne!(a, other.hash(&phone), "another deployment, another hash");
        assert_eq!(keys().candidates(&phone), [a, legacy_hash(&phone)]);
    }

    #[test]
    fn short_or_missing_secrets_are_refused() {
        assert!(matches!(
            CustomerKeys::new(b"  short  "),
            Err(SecretError::TooShort)
        ));
        assert!(matches!(
            CustomerKeyArgs::default().load(),
            Err(SecretError::Missing)
        ));
        let args = CustomerKeyArgs {
            customer_key_secret_file: None,
            customer_key_secret: Some("x".repeat(40)),
        };
        assert_eq!(
            args.load().unwrap().hash("1"),
            CustomerKeys::new("x".repeat(40).as_bytes())
                .unwrap()
                .hash("1")
        );
    }
}
