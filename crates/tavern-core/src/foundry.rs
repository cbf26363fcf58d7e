//! Facts about Foundry's own files that Tavern writes or checks, kept in one
//! place: the admin key hash of `Config/admin.txt` (felddy's format) and the
//! shape of `Config/license.json`.

use sha2::Sha512;

/// The salt felddy uses when `FOUNDRY_PASSWORD_SALT` is not set.
pub const DEFAULT_ADMIN_SALT: &str = "17c4f39053ac5a50d5797c665ad1f4e6";

/// `Config/admin.txt`: PBKDF2-HMAC-SHA512 of the trimmed key, 1000
/// iterations, 64 bytes, lower-case hex, no newline.
pub fn admin_key_hash(admin_key: &str, salt: &str) -> String {
    let mut out = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(admin_key.trim().as_bytes(), salt.as_bytes(), 1000, &mut out);
    hex::encode(out)
}

/// The `Config/license.json` that tools write before Foundry signs it.
pub fn license_json(key_without_dashes: &str) -> String {
    serde_json::json!({ "license": key_without_dashes }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_hash_is_pbkdf2_sha512_hex() {
        let h = admin_key_hash(" secret \n", DEFAULT_ADMIN_SALT);
        assert_eq!(h.len(), 128);
        assert!(
            h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(h, admin_key_hash("secret", DEFAULT_ADMIN_SALT));
        assert_ne!(h, admin_key_hash("secret", "other-salt"));
    }

    #[test]
    fn admin_hash_matches_a_known_vector() {
        // node -e 'console.log(require("crypto").pbkdf2Sync("secret",
        //   "17c4f39053ac5a50d5797c665ad1f4e6",1000,64,"sha512").toString("hex"))'
        assert_eq!(
            admin_key_hash("secret", DEFAULT_ADMIN_SALT),
            KNOWN_SECRET_HASH
        );
    }

    const KNOWN_SECRET_HASH: &str = "2beaee9d322dbb19b86f191599fe132860bd6ec7275218ab3d39fce57b63a454364811cc07d8852ce802a168953a9aae488d1470a70a0924374c03e24d77aa6c";
}
