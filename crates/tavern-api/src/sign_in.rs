//! Signing in beyond a password: a password account's second factor
//! (TOTP, set up with an app, and its recovery codes).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user's second factor.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SecondFactorJson {
    /// A TOTP code is asked for at every password sign-in.
    pub enabled: bool,
    /// Unused recovery codes.
    #[schema(minimum = 0)]
    pub recovery_codes_left: u32,
    /// The community requires one of this account (`[auth]
    /// require_totp_for_admins`).
    pub required: bool,
    /// Only accounts with a password have one.
    pub has_password: bool,
}

/// A TOTP set-up awaiting its first code.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TotpEnrolmentJson {
    /// The secret in base 32, for apps that cannot scan.
    pub secret: String,
    /// The `otpauth://totp/…` address the QR code holds.
    pub otpauth_url: String,
}

/// A code from the authenticator app (six digits), or a recovery code.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    #[schema(max_length = 64)]
    pub code: String,
}

/// Recovery codes, shown this once: each signs in once in place of a
/// code.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodesJson {
    pub recovery_codes: Vec<String>,
}

/// An outside account that signs its user in.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AccountLinkJson {
    /// Tavern's name for the provider (`oidc`, `discord`).
    pub provider: String,
    /// The provider's id of the account.
    pub subject: String,
    /// When it was linked (not kept for Discord accounts, which the bot
    /// links too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_at: Option<String>,
}
