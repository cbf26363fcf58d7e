//! The outside accounts people sign in with, as the HTTP edge holds them:
//! an OpenID provider (discovered at the first sign-in) and Discord, each
//! with the core's policy for its accounts, and [`Way`], what the
//! dashboard's one sign-in flow asks of either: where to send the browser,
//! and who came back.

use std::sync::Arc;

use tavern_core::{DISCORD, OutsideAccount, OutsidePolicy};

/// Tavern's name for the OpenID provider (what links are stored under).
pub(crate) const OIDC: &str = "oidc";

/// An OpenID provider people sign in with: its discovery document is read
/// at the first sign-in (and again after a failure), not at start, so a
/// provider that is down keeps nobody from starting Tavern.
pub struct OidcEdge {
    settings: tavern_sso::OidcSettings,
    /// The button's words: "Sign in with LABEL".
    pub label: String,
    policy: OutsidePolicy,
    client: tokio::sync::OnceCell<tavern_sso::Oidc>,
}

impl OidcEdge {
    pub fn new(settings: tavern_sso::OidcSettings, label: String, policy: OutsidePolicy) -> Self {
        Self {
            settings,
            label,
            policy,
            client: tokio::sync::OnceCell::new(),
        }
    }

    async fn client(&self) -> Result<&tavern_sso::Oidc, tavern_sso::SsoError> {
        self.client
            .get_or_try_init(|| tavern_sso::Oidc::discover(&self.settings))
            .await
    }
}

/// Signing in with Discord (`[auth.discord]`).
pub struct DiscordSignIn {
    discord: tavern_sso::Discord,
    guild_id: Option<String>,
    policy: OutsidePolicy,
}

impl DiscordSignIn {
    pub fn new(
        settings: &tavern_sso::DiscordSettings,
        policy: OutsidePolicy,
    ) -> Result<Self, tavern_sso::SsoError> {
        Ok(Self {
            discord: tavern_sso::Discord::new(settings)?,
            guild_id: settings.guild_id.clone(),
            policy,
        })
    }
}

/// The ways to sign in besides passwords that this Tavern offers, and
/// whether passwords are offered too (else only to break-glass admins).
#[derive(Clone)]
pub struct SignInWays {
    pub oidc: Option<Arc<OidcEdge>>,
    pub discord: Option<Arc<DiscordSignIn>>,
    pub passwords: bool,
}

impl Default for SignInWays {
    fn default() -> Self {
        Self {
            oidc: None,
            discord: None,
            passwords: true,
        }
    }
}

impl SignInWays {
    /// The way named `provider` (`oidc`, `discord`), if it is on.
    pub(crate) fn get(&self, provider: &str) -> Option<Way<'_>> {
        match provider {
            OIDC => self.oidc.as_deref().map(Way::Oidc),
            DISCORD => self.discord.as_deref().map(Way::Discord),
            _ => None,
        }
    }

    /// Every way that is on, as (provider, label), for buttons.
    pub fn offered(&self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        if let Some(o) = &self.oidc {
            all.push((OIDC.to_owned(), o.label.clone()));
        }
        if self.discord.is_some() {
            all.push((DISCORD.to_owned(), "Discord".to_owned()));
        }
        all
    }
}

/// One way of signing in, for the flow.
#[derive(Clone, Copy)]
pub(crate) enum Way<'a> {
    Oidc(&'a OidcEdge),
    Discord(&'a DiscordSignIn),
}

/// A sign-in sent on: the browser's next address, and what to keep
/// (sealed) until it comes back: state, nonce (empty for Discord), PKCE
/// verifier.
pub(crate) struct Sent {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

impl Way<'_> {
    pub(crate) fn label(&self) -> &str {
        match self {
            Way::Oidc(o) => &o.label,
            Way::Discord(_) => "Discord",
        }
    }

    pub(crate) fn policy(&self) -> &OutsidePolicy {
        match self {
            Way::Oidc(o) => &o.policy,
            Way::Discord(d) => &d.policy,
        }
    }

    /// A new sign-in.
    pub(crate) async fn begin(&self) -> Result<Sent, tavern_sso::SsoError> {
        Ok(match self {
            Way::Oidc(o) => {
                let b = o.client().await?.begin();
                Sent {
                    url: b.url,
                    state: b.state,
                    nonce: b.nonce,
                    verifier: b.pkce_verifier,
                }
            }
            Way::Discord(d) => {
                let b = d.discord.begin();
                Sent {
                    url: b.url,
                    state: b.state,
                    nonce: String::new(),
                    verifier: b.pkce_verifier,
                }
            }
        })
    }

    /// Who came back with `code`, checked.
    pub(crate) async fn finish(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
    ) -> Result<OutsideAccount, tavern_sso::SsoError> {
        Ok(match self {
            Way::Oidc(o) => {
                let who = o.client().await?.finish(code, verifier, nonce).await?;
                OutsideAccount {
                    provider: OIDC.to_owned(),
                    subject: who.subject,
                    email: who.email,
                    email_verified: who.email_verified,
                    name: who.name,
                    groups: who.groups,
                }
            }
            Way::Discord(d) => {
                let who = d.discord.finish(code, verifier).await?;
                OutsideAccount {
                    provider: DISCORD.to_owned(),
                    subject: who.id,
                    email: None,
                    email_verified: false,
                    name: Some(who.username),
                    groups: discord_groups(d.guild_id.as_deref(), who.guild_roles),
                }
            }
        })
    }
}

/// A Discord account's groups: in the guild, the guild's id (its
/// `@everyone` role has that id) and the member's roles; else none.
fn discord_groups(guild: Option<&str>, roles: Option<Vec<String>>) -> Vec<String> {
    match (guild, roles) {
        (Some(guild), Some(roles)) => std::iter::once(guild.to_owned()).chain(roles).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::discord_groups;

    #[test]
    fn a_member_is_in_the_guild_and_their_roles_and_others_in_nothing() {
        assert_eq!(
            discord_groups(Some("g"), Some(vec!["r1".into(), "r2".into()])),
            ["g", "r1", "r2"]
        );
        assert_eq!(discord_groups(Some("g"), Some(vec![])), ["g"]);
        assert!(discord_groups(Some("g"), None).is_empty());
        assert!(discord_groups(None, None).is_empty());
    }
}
