//! Customer keys shared by session-router (verified phone / e-mail of a channel identity) and
//! order-sync (an order's buyer). Both services store and compare only the hex SHA-256 of the
//! normalised value, so the normalisation and the hash live here, in one place: if they
//! differed between the two services, no order would ever match its customer.
use sha2::{Digest, Sha256};

/// Digits of a phone number (`+86 139-0000-1111` → `8613900001111`).
pub fn normalize_phone(p: &str) -> String {
    p.chars().filter(char::is_ascii_digit).collect()
}

/// A trimmed, lower-cased e-mail address.
pub fn normalize_email(e: &str) -> String {
    e.trim().to_lowercase()
}

/// Hex SHA-256 of an already normalised key.
pub fn hash(normalized: &str) -> String {
    hex::encode(Sha256::digest(normalized.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_person_hashes_the_same_whatever_the_formatting() {
        assert_eq!(
            hash(&normalize_phone("+86 139-0000-1111")),
            hash(&normalize_phone("8613900001111"))
        );
        assert_eq!(
            hash(&normalize_email(" Bob@Example.com ")),
            hash("bob@example.com")
        );
        assert_ne!(hash("1"), hash("2"));
    }
}
