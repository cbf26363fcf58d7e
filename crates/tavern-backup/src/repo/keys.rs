//! The master keys of repositories opened before in this process, by
//! place and password: a repository's password goes through scrypt
//! (restic's recommended cost, 128 MiB of memory) once, not on every open.
//! A key is found only with the password that found it.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use rustic_core::repofile::MasterKey;
use sha2::{Digest, Sha256};

type Slot = (String, [u8; 32]);

static KEPT: LazyLock<Mutex<HashMap<Slot, MasterKey>>> = LazyLock::new(Mutex::default);

fn slot(place: &str, password: &str) -> Slot {
    (place.to_owned(), Sha256::digest(password.as_bytes()).into())
}

/// The key kept for the repository at `place` opened with `password`.
pub(super) fn kept(place: &str, password: &str) -> Option<MasterKey> {
    KEPT.lock()
        .expect("not poisoned")
        .get(&slot(place, password))
        .cloned()
}

pub(super) fn keep(place: &str, password: &str, key: MasterKey) {
    KEPT.lock()
        .expect("not poisoned")
        .insert(slot(place, password), key);
}

/// Forgets a key that no longer opens its repository.
pub(super) fn forget(place: &str, password: &str) {
    KEPT.lock()
        .expect("not poisoned")
        .remove(&slot(place, password));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_found_only_with_its_place_and_password() {
        let key = MasterKey::new();
        keep("/a/repositories/w", "right", key.clone());
        assert!(kept("/a/repositories/w", "right").is_some());
        assert!(kept("/a/repositories/w", "wrong").is_none());
        assert!(kept("/b/repositories/w", "right").is_none());
        forget("/a/repositories/w", "right");
        assert!(kept("/a/repositories/w", "right").is_none());
    }
}
