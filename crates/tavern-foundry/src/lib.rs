//! Foundry's own file formats. Here, the secret-bearing ones, shared by
//! the runtimes that write them and the stand-in that reads them:
//! `Config/license.json` as tools write it, and `Config/admin.txt`
//! (felddy's PBKDF2 hash of the admin key); in `manifest`, the packages'
//! manifests (`world.json`, `system.json`, `module.json`); in `version`,
//! Foundry's version numbers. No I/O.

pub mod manifest;
pub mod version;

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
