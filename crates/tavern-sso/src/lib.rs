//! Signing in with outside accounts. [`oidc`] speaks OpenID Connect to any
//! provider by its issuer URL: discovery, the authorization-code flow with
//! PKCE, `state` and `nonce`, and the ID token's checks (signature, issuer,
//! audience, nonce, expiry), all by the `openidconnect` crate; [`discord`]
//! speaks Discord's OAuth2 (the `oauth2` crate) and asks its API who signed
//! in; both over Tavern's own HTTP client. What an identity may do in
//! Tavern is the core's business, not this crate's.

pub mod discord;
mod http;
pub mod oidc;
#[cfg(feature = "testing")]
pub mod testing;

pub use discord::{Discord, DiscordBegun, DiscordSettings, DiscordUser};
pub use oidc::{Begun, Identity, Oidc, OidcSettings};

/// Why an outside sign-in did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// A setting cannot be used (an issuer that is not a URL, say).
    #[error("{0}")]
    Config(String),
    /// The provider's discovery document could not be read or used.
    #[error("the identity provider at {issuer} cannot be used: {reason}")]
    Discovery { issuer: String, reason: String },
    /// The provider did not exchange the code for tokens.
    #[error("the identity provider refused the sign-in: {0}")]
    Exchange(String),
    /// The tokens do not prove who signed in (a wrong audience, issuer,
    /// nonce or signature, or an expired token).
    #[error("the identity provider's answer does not prove who signed in: {0}")]
    Token(String),
}

/// The whole chain of an error, for messages.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
