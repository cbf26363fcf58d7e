//! Credentials and callers: Argon2id for passwords (slow on purpose, so run off the async
//! threads with a bound on how many run at once) and random API tokens whose
//! SHA-256 alone is stored (fast to check on every request).

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use tavern_store::User;
use tavern_types::Role;

use crate::error::CoreError;

/// Prefix of every Tavern API token, so that leaked tokens are recognisable.
pub const TOKEN_PREFIX: &str = "tvn_";

/// The browser session's cookie (the dashboard and the worlds' standby
/// pages): it holds an API token.
pub const SESSION_COOKIE: &str = "tavern_session";

/// A `Set-Cookie` value as every Tavern cookie is set: HttpOnly,
/// SameSite=Lax, Secure under TLS, for `domain` and its subdomains when
/// given (else the host only).
pub fn cookie_line(
    name: &str,
    value: &str,
    max_age: u32,
    secure: bool,
    domain: Option<&str>,
) -> String {
    let domain = domain.map(|d| format!("; Domain={d}")).unwrap_or_default();
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/{domain}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

/// The `Domain` a cookie meant for every world under `domain` may carry:
/// browsers refuse one for a single-label name (`localhost`) or an IP
/// address, so there the cookie stays with the host that set it (and a
/// sign-in is carried over by a handoff code instead).
pub fn shared_cookie_domain(domain: &str) -> Option<&str> {
    let shareable = domain.contains('.')
        && !domain.ends_with('.')
        && domain.parse::<std::net::IpAddr>().is_err();
    shareable.then_some(domain)
}

/// The value of cookie `name` among a request's `Cookie` header values.
pub fn cookie_value<'a>(headers: impl IntoIterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    headers
        .into_iter()
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub use tavern_types::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};

/// Hashes and checks passwords, at most `permits` at a time.
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
}

impl Passwords {
    pub fn new(permits: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
        }
    }

    pub async fn hash(&self, password: String) -> Result<String, CoreError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| CoreError::internal("hash password", e))?;
        tokio::task::spawn_blocking(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| CoreError::internal("hash password", e.to_string()))
        })
        .await
        .map_err(|e| CoreError::internal("hash password", e))?
    }

    /// True when `password` matches the PHC string `hash`.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, CoreError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| CoreError::internal("verify password", e))?;
        tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&hash)
                .map_err(|e| CoreError::internal("parse password hash", e.to_string()))?;
            Ok(Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await
        .map_err(|e| CoreError::internal("verify password", e))?
    }
}

/// Checks a password chosen by a person before it is hashed.
pub fn check_password(password: &str) -> Result<(), CoreError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(CoreError::invalid(
            "weak_password",
            "password",
            format!("a password needs at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if n > MAX_PASSWORD_LEN {
        return Err(CoreError::invalid(
            "invalid_field",
            "password",
            format!("a password may have at most {MAX_PASSWORD_LEN} characters"),
        ));
    }
    Ok(())
}

/// 32 random bytes, URL-safe base64.
pub fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// A new API token: the secret to show once, and the hash to store.
pub fn new_token() -> (String, String) {
    let secret = format!("{TOKEN_PREFIX}{}", random_secret());
    let hash = token_hash(&secret);
    (secret, hash)
}

/// Hex SHA-256 of a token's secret: what the store keeps and looks up by.
pub fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// An authenticated user on whose behalf the service acts.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    pub(crate) fn name(&self) -> String {
        self.user.username.to_string()
    }

    pub(crate) fn require_admin(&self, what: &str) -> Result<(), CoreError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(CoreError::Forbidden(format!("only an admin may {what}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_in_any_header() {
        let headers = ["a=1; tavern_session=tvn_x", "other=2"];
        assert_eq!(cookie_value(headers, "tavern_session"), Some("tvn_x"));
        assert_eq!(cookie_value(headers, "other"), Some("2"));
        assert_eq!(cookie_value(headers, "tavern"), None);
        assert_eq!(cookie_value([], "a"), None);
    }

    #[test]
    fn only_a_dotted_name_shares_its_cookie_with_its_worlds() {
        assert_eq!(shared_cookie_domain("games.example"), Some("games.example"));
        assert_eq!(shared_cookie_domain("localhost"), None);
        assert_eq!(shared_cookie_domain("127.0.0.1"), None);
        assert_eq!(shared_cookie_domain("example."), None);
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let p = Passwords::new(2);
        let h = p.hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(p.verify("correct horse".into(), h.clone()).await.unwrap());
        assert!(!p.verify("wrong horse".into(), h).await.unwrap());
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = new_token();
        let (b, hb) = new_token();
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(ha, token_hash(&a));
        assert_eq!(ha.len(), 64);
        assert!(!ha.contains(&a[4..]));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert_eq!(check_password("short").unwrap_err().code(), "weak_password");
        assert!(check_password("long enough").is_ok());
    }
}
