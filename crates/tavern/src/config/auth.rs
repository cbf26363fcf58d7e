//! `[auth]`: how people sign in. `require_totp_for_admins` makes every
//! admin who signs in with a password set up a second factor before the
//! dashboard shows them anything else; `[auth.oidc]` adds signing in with
//! an OpenID Connect provider (Authentik, Keycloak, Zitadel, Google…),
//! `[auth.discord]` signing in with Discord.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::community::{secret_value, text_or_number, texts_or_numbers};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub require_totp_for_admins: bool,
    /// Off: only `break_glass_admins` sign in with a password; everyone
    /// else with `[auth.oidc]` or `[auth.discord]`.
    pub passwords: bool,
    pub break_glass_admins: Vec<String>,
    pub oidc: OidcConfig,
    pub discord: DiscordSignInConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            require_totp_for_admins: false,
            passwords: true,
            break_glass_admins: Vec::new(),
            oidc: OidcConfig::default(),
            discord: DiscordSignInConfig::default(),
        }
    }
}

/// `[auth.discord]`: on when `client_id` is set.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DiscordSignInConfig {
    /// The Discord application's id (its OAuth2 client id).
    #[serde(deserialize_with = "text_or_number")]
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<PathBuf>,
    /// Discord's address (a stand-in's, for tests).
    pub base_url: String,
    /// The community's Discord server: its members (with one of
    /// `sign_up_roles`, if any are set) may sign up.
    #[serde(deserialize_with = "text_or_number")]
    pub guild_id: Option<String>,
    /// Members of `guild_id` without a Tavern account become game masters.
    pub sign_up: bool,
    /// Only members with one of these roles (ids) may sign up.
    #[serde(deserialize_with = "texts_or_numbers")]
    pub sign_up_roles: Vec<String>,
    /// The tier of those who sign up.
    pub tier: Option<String>,
}

impl Default for DiscordSignInConfig {
    fn default() -> Self {
        Self {
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            base_url: tavern_sso::discord::DISCORD.into(),
            guild_id: None,
            sign_up: false,
            sign_up_roles: Vec::new(),
            tier: None,
        }
    }
}

impl std::fmt::Debug for DiscordSignInConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordSignInConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("client_secret_file", &self.client_secret_file)
            .field("base_url", &self.base_url)
            .field("guild_id", &self.guild_id)
            .finish_non_exhaustive()
    }
}

fn is_snowflake(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
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
            passwords_off: !self.passwords,
            break_glass_admins: self.break_glass_admins.clone(),
        }
    }

    /// The ways to sign in besides passwords; `site_url` is Tavern's own
    /// address (ending in `/`), where providers send people back.
    pub fn sign_in(&self, site_url: &str) -> anyhow::Result<tavern_http::SignInWays> {
        let ways = tavern_http::SignInWays {
            oidc: self.oidc(site_url)?,
            discord: self.discord(site_url)?,
            passwords: self.passwords,
        };
        anyhow::ensure!(
            self.passwords || !ways.offered().is_empty(),
            "invalid configuration: auth.passwords = false needs [auth.oidc] or [auth.discord], \
             or nobody could sign in"
        );
        anyhow::ensure!(
            self.break_glass_admins
                .iter()
                .all(|a| tavern_types::Username::parse(a).is_ok()),
            "invalid configuration: auth.break_glass_admins are usernames"
        );
        Ok(ways)
    }

    /// Discord, when `[auth.discord]` is set.
    fn discord(
        &self,
        site_url: &str,
    ) -> anyhow::Result<Option<std::sync::Arc<tavern_http::DiscordSignIn>>> {
        let d = &self.discord;
        let invalid = |why: &str| anyhow::anyhow!("invalid configuration: auth.discord.{why}");
        let Some(client_id) = d.client_id.clone() else {
            anyhow::ensure!(
                d.client_secret.is_none() && d.client_secret_file.is_none() && d.guild_id.is_none(),
                invalid("client_id is needed with its other keys (the application's id)")
            );
            return Ok(None);
        };
        anyhow::ensure!(
            is_snowflake(&client_id),
            invalid("client_id must be the application's id (digits)")
        );
        let client_secret = secret_value(
            "auth.discord.client_secret",
            &d.client_secret,
            &d.client_secret_file,
        )?
        .ok_or_else(|| invalid("client_id needs client_secret or client_secret_file"))?;
        anyhow::ensure!(
            d.base_url.starts_with("https://") || d.base_url.starts_with("http://"),
            invalid("base_url must be an http(s) URL")
        );
        let guild_id = d.guild_id.clone().filter(|g| !g.is_empty());
        if let Some(g) = &guild_id {
            anyhow::ensure!(
                is_snowflake(g),
                invalid("guild_id must be the server's id (digits)")
            );
        }
        anyhow::ensure!(
            !d.sign_up || guild_id.is_some(),
            invalid("sign_up needs guild_id: only the community's members may sign up")
        );
        anyhow::ensure!(
            d.sign_up_roles.iter().all(|r| is_snowflake(r)),
            invalid("sign_up_roles are role ids (digits)")
        );
        let sign_up_groups = match (&guild_id, d.sign_up_roles.is_empty()) {
            (Some(g), true) => vec![g.clone()],
            _ => d.sign_up_roles.clone(),
        };
        let sign_in = tavern_http::DiscordSignIn::new(
            &tavern_sso::DiscordSettings {
                base_url: d.base_url.clone(),
                client_id,
                client_secret,
                redirect_url: format!("{site_url}auth/sso/discord/callback"),
                guild_id,
            },
            tavern_core::OutsidePolicy {
                sign_up: d.sign_up,
                tier: d.tier.clone().filter(|t| !t.is_empty()),
                sign_up_groups,
                ..tavern_core::OutsidePolicy::default()
            },
        )
        .map_err(|e| invalid(&e.to_string()))?;
        Ok(Some(std::sync::Arc::new(sign_in)))
    }

    /// The OpenID provider, when one is set; `site_url` is Tavern's own
    /// address (ending in `/`), where the provider sends people back.
    fn oidc(
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
                sign_up_groups: Vec::new(),
            },
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_go_off_only_with_another_way_on() {
        let off = AuthConfig {
            passwords: false,
            ..AuthConfig::default()
        };
        let err = off.sign_in("http://localhost:8080/").err().unwrap();
        assert!(err.to_string().contains("auth.passwords"), "{err}");
        let with_discord = AuthConfig {
            discord: DiscordSignInConfig {
                client_id: Some("1234".into()),
                client_secret: Some("s".into()),
                ..DiscordSignInConfig::default()
            },
            ..off
        };
        let ways = with_discord.sign_in("http://localhost:8080/").unwrap();
        assert!(!ways.passwords);
        assert_eq!(
            ways.offered(),
            [("discord".to_owned(), "Discord".to_owned())]
        );
    }

    #[test]
    fn discord_sign_up_needs_the_communitys_server() {
        let mut c = AuthConfig::default();
        c.discord.client_id = Some("1234".into());
        c.discord.client_secret = Some("s".into());
        c.discord.sign_up = true;
        let err = c.sign_in("http://localhost:8080/").err().unwrap();
        assert!(err.to_string().contains("guild_id"), "{err}");
        c.discord.guild_id = Some("not digits".into());
        assert!(c.sign_in("http://localhost:8080/").is_err());
        c.discord.guild_id = Some("81384788765712384".into());
        assert!(c.sign_in("http://localhost:8080/").is_ok());
    }
}
