//! `[auth]`: how people sign in. `require_totp_for_admins` makes every
//! admin who signs in with a password set up a second factor before the
//! dashboard shows them anything else.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub require_totp_for_admins: bool,
}

impl AuthConfig {
    /// The core's view of it.
    pub fn settings(&self) -> tavern_core::AuthSettings {
        tavern_core::AuthSettings {
            require_totp_for_admins: self.require_totp_for_admins,
        }
    }
}
