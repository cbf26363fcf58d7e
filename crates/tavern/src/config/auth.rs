//! `[auth]`: how people sign in. `require_totp_for_admins` makes every
//! admin who signs in with a password set up a second factor before the
//! dashboard shows them anything else; `[auth.oidc]` adds signing in with
//! an OpenID Connect provider (Authentik, Keycloak, Zitadel, Google…).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::community::secret_value;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub require_totp_for_admins: bool,
    pub oidc: OidcConfig,
}

/// `[auth.oidc]`: on when `issuer` is set.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The provider's issuer URL, exactly as it names itself.
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    /// The button's words: "Sign in with LABEL".
    pub label: String,
    /// Scopes besides `openid`.
    pub scopes: Vec<String>,
    /// The ID token's claim that lists the user's groups.
    pub groups_claim: Option<String>,
    /// Members of these groups are admins, others game masters.
    pub admin_groups: Vec<String>,
    /// Only members of these groups may sign in.
    pub allowed_groups: Vec<String>,
    /// Someone without an account becomes a game master.
    pub sign_up: bool,
    /// Their tier.
    pub tier: Option<String>,
    /// Link an account to the user with its address, when the provider
    /// vouches for the address (`email_verified`).
    pub link_verified_email: bool,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            label: "your community's account".into(),
            scopes: vec!["email".into(), "profile".into()],
            groups_claim: None,
            admin_groups: Vec::new(),
            allowed_groups: Vec::new(),
            sign_up: false,
            tier: None,
            link_verified_email: false,
        }
    }
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("client_secret_file", &self.client_secret_file)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
    /// The core's view of it.
    pub fn settings(&self) -> tavern_core::AuthSettings {
        tavern_core::AuthSettings {
            require_totp_for_admins: self.require_totp_for_admins,
        }
    }

    /// The OpenID provider, when one is set; `site_url` is Tavern's own
    /// address (ending in `/`), where the provider sends people back.
    pub fn oidc(
        &self,
        site_url: &str,
    ) -> anyhow::Result<Option<std::sync::Arc<tavern_http::OidcEdge>>> {
        let o = &self.oidc;
        let Some(issuer) = o.issuer.clone() else {
            anyhow::ensure!(
                o.client_id.is_none(),
                "invalid configuration: auth.oidc.client_id is set but auth.oidc.issuer is not"
            );
            return Ok(None);
        };
        let client_id = o.client_id.clone().ok_or_else(|| {
            anyhow::anyhow!("invalid configuration: auth.oidc.issuer needs auth.oidc.client_id")
        })?;
        anyhow::ensure!(
            issuer.starts_with("https://") || issuer.starts_with("http://"),
            "invalid configuration: auth.oidc.issuer must be an http(s) URL, not {issuer:?}"
        );
        anyhow::ensure!(
            o.groups_claim.is_some() || (o.admin_groups.is_empty() && o.allowed_groups.is_empty()),
            "invalid configuration: auth.oidc.admin_groups and allowed_groups need auth.oidc.groups_claim"
        );
        let client_secret = secret_value(
            "auth.oidc.client_secret",
            &o.client_secret,
            &o.client_secret_file,
        )?;
        Ok(Some(std::sync::Arc::new(tavern_http::OidcEdge::new(
            tavern_sso::OidcSettings {
                issuer,
                client_id,
                client_secret,
                redirect_url: format!("{site_url}auth/sso/oidc/callback"),
                scopes: o.scopes.clone(),
                groups_claim: o.groups_claim.clone(),
            },
            o.label.clone(),
            tavern_core::OutsidePolicy {
                sign_up: o.sign_up,
                tier: o.tier.clone().filter(|t| !t.is_empty()),
                link_verified_email: o.link_verified_email,
                admin_groups: o.admin_groups.clone(),
                allowed_groups: o.allowed_groups.clone(),
            },
        ))))
    }
}
