//! Signing the command-line client in through the browser (`tavern login
//! --sso`): the dashboard, where the person has signed in in any way, seals
//! a short-lived code for the client's loopback address, and only the
//! client that asked can redeem it, with the verifier whose hash the code
//! holds (as PKCE does, RFC 7636).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use sha2::{Digest as _, Sha256};
use tavern_store::User;
use tavern_types::UserId;

use crate::auth::Caller;
use crate::error::CoreError;
use crate::sealed;
use crate::tavern::Tavern;

/// How long a code may be redeemed after the person approved: the
/// client's one request's time, and some.
pub const CLI_CODE_SECONDS: i64 = 120;

const PURPOSE: &str = "tavern-cli/1";

/// The audit log's method for a sign-in approved in the browser.
pub const CLI_METHOD: &str = "cli, approved in the browser";

/// The challenge for `verifier`: its SHA-256, URL-safe base64 (PKCE's
/// `S256`).
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `text` can be a challenge: 43 characters of URL-safe base64.
pub fn is_challenge(text: &str) -> bool {
    text.len() == 43 && url_safe(text)
}

/// Whether `text` can be the client's `state`: 8 to 128 characters of
/// URL-safe base64.
pub fn is_state(text: &str) -> bool {
    (8..=128).contains(&text.len()) && url_safe(text)
}

fn url_safe(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Tavern {
    /// A code that signs the client that made `challenge` in as the
    /// caller.
    pub fn cli_code(&self, caller: &Caller, challenge: &str) -> Result<String, CoreError> {
        if !is_challenge(challenge) {
            return Err(CoreError::invalid(
                "invalid",
                "challenge",
                "the challenge must be 43 characters of URL-safe base64",
            ));
        }
        let id = caller.user.id.to_string();
        sealed::seal(&self.secrets, PURPOSE, CLI_CODE_SECONDS, &[&id, challenge])
    }

    /// A new token for the code's user, if the code is fresh and
    /// `verifier` is the one its challenge was made from; recorded as
    /// `auth.login` with [`CLI_METHOD`].
    pub async fn redeem_cli_code(
        &self,
        code: &str,
        verifier: &str,
    ) -> Result<(String, User), CoreError> {
        let refused = || {
            CoreError::invalid(
                "code_refused",
                "code",
                "that code is not valid: it expired, or it was made for another \
                 sign-in; run `tavern login --sso` again",
            )
        };
        let id = self
            .open_cli_code(code, verifier, Timestamp::now())
            .ok_or_else(refused)?;
        let user = self.store.user(id).await?.ok_or_else(refused)?;
        let token = self.sign_in_token(&user, CLI_METHOD).await?;
        Ok((token, user))
    }

    fn open_cli_code(&self, code: &str, verifier: &str, now: Timestamp) -> Option<UserId> {
        user_of(&sealed::open(&self.secrets, PURPOSE, code, now)?, verifier)
    }
}

/// The user an opened code names, if `verifier` is its challenge's.
fn user_of(fields: &[String], verifier: &str) -> Option<UserId> {
    let [id, challenge] = fields else {
        return None;
    };
    let right = challenge_of(verifier);
    bool::from(subtle::ConstantTimeEq::ct_eq(
        right.as_bytes(),
        challenge.as_bytes(),
    ))
    .then(|| id.parse().ok())
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_pkce_s256() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(is_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!is_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"));
        assert!(!is_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"));
        assert!(is_state("abcd-_09"));
        assert!(!is_state("abc"));
        assert!(!is_state("abcdefgh&x=1"));
        assert!(!is_state(&"a".repeat(129)));
    }

    #[test]
    fn a_code_opens_only_with_its_verifier() {
        let verifier = crate::auth::random_secret();
        let id = UserId::new();
        let fields = [id.to_string(), challenge_of(&verifier)];
        assert_eq!(user_of(&fields, &verifier), Some(id));
        assert_eq!(user_of(&fields, &crate::auth::random_secret()), None);
        assert_eq!(user_of(&fields, ""), None);
        assert_eq!(user_of(&fields[..1], &verifier), None);
        let not_an_id = ["7".to_owned(), challenge_of(&verifier)];
        assert_eq!(user_of(&not_an_id, &verifier), None);
    }
}
