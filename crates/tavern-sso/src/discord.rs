//! Signing in with Discord: OAuth2's authorization-code flow with PKCE and
//! `state` (the `oauth2` crate), scope `identify` (and, when a guild is
//! set, `guilds.members.read`), then who that is from Discord's API:
//! `GET /users/@me`, and the member's roles in the guild from
//! `GET /users/@me/guilds/{guild}/member`. Discord's addresses are under a
//! base URL, so tests can point it at a stand-in.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _, TokenUrl,
};
use serde::Deserialize;

use crate::http::Http;
use crate::{SsoError, chain};

/// Discord's own address.
pub const DISCORD: &str = "https://discord.com";

/// How Tavern is known to Discord (an application's OAuth2 settings).
#[derive(Clone)]
pub struct DiscordSettings {
    /// `https://discord.com`, or a stand-in's address.
    pub base_url: String,
    /// The application's id.
    pub client_id: String,
    pub client_secret: String,
    /// Tavern's callback, as registered with the application.
    pub redirect_url: String,
    /// A guild whose membership (and roles) sign-in reads.
    pub guild_id: Option<String>,
}

impl std::fmt::Debug for DiscordSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordSettings")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"…")
            .field("redirect_url", &self.redirect_url)
            .field("guild_id", &self.guild_id)
            .finish()
    }
}

/// A sign-in sent to Discord: where to send the browser, and what must
/// come back with it (to keep until then, never in the clear).
#[derive(Clone, Debug)]
pub struct DiscordBegun {
    pub url: String,
    pub state: String,
    pub pkce_verifier: String,
}

/// Who signed in, as Discord's API says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscordUser {
    /// The account's id (a snowflake), what links are kept by.
    pub id: String,
    /// The account's unique handle (`nelly`).
    pub username: String,
    /// The name it shows (`Nelly`), if set.
    pub global_name: Option<String>,
    /// With a guild set: the member's role ids, or `None` when the account
    /// is not in the guild.
    pub guild_roles: Option<Vec<String>>,
}

type Client = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Discord, for one application.
pub struct Discord {
    client: Client,
    http: Http,
    api: String,
    guild_id: Option<String>,
}

/// `GET /users/@me`'s answer, the parts Tavern reads.
#[derive(Deserialize)]
struct UserObject {
    id: String,
    username: String,
    #[serde(default)]
    global_name: Option<String>,
}

/// A guild member object, the part Tavern reads.
#[derive(Deserialize)]
struct MemberObject {
    #[serde(default)]
    roles: Vec<String>,
}

impl Discord {
    pub fn new(settings: &DiscordSettings) -> Result<Self, SsoError> {
        let base = settings.base_url.trim_end_matches('/');
        let url = |what: &str, e: &dyn std::error::Error| {
            SsoError::Config(format!("{what} is not a URL: {}", chain(e)))
        };
        let client = BasicClient::new(ClientId::new(settings.client_id.clone()))
            .set_client_secret(ClientSecret::new(settings.client_secret.clone()))
            .set_auth_uri(
                AuthUrl::new(format!("{base}/oauth2/authorize"))
                    .map_err(|e| url("Discord's address", &e))?,
            )
            .set_token_uri(
                TokenUrl::new(format!("{base}/api/oauth2/token"))
                    .map_err(|e| url("Discord's address", &e))?,
            )
            .set_redirect_uri(
                RedirectUrl::new(settings.redirect_url.clone())
                    .map_err(|e| url("the redirect URL", &e))?,
            );
        Ok(Self {
            client,
            http: Http::new()?,
            api: format!("{base}/api/v10"),
            guild_id: settings.guild_id.clone(),
        })
    }

    /// A new sign-in: where to send the browser, and what to keep.
    pub fn begin(&self) -> DiscordBegun {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("identify".into()))
            // Someone who allowed Tavern before is not asked again.
            .add_extra_param("prompt", "none");
        if self.guild_id.is_some() {
            request = request.add_scope(Scope::new("guilds.members.read".into()));
        }
        let (url, state) = request.set_pkce_challenge(challenge).url();
        DiscordBegun {
            url: url.to_string(),
            state: state.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        }
    }

    /// Exchanges the code the browser came back with for an access token,
    /// and asks Discord who that is (and, with a guild, their roles).
    pub async fn finish(&self, code: &str, pkce_verifier: &str) -> Result<DiscordUser, SsoError> {
        let answer = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| SsoError::Exchange(chain(&e)))?;
        let token = answer.access_token().secret();
        let me: UserObject = self
            .read(&format!("{}/users/@me", self.api), token)
            .await?
            .ok_or_else(|| SsoError::Token("Discord did not say who signed in".into()))?;
        let guild_roles = match &self.guild_id {
            Some(guild) => self
                .read::<MemberObject>(
                    &format!("{}/users/@me/guilds/{guild}/member", self.api),
                    token,
                )
                .await?
                .map(|m| m.roles),
            None => None,
        };
        Ok(DiscordUser {
            id: me.id,
            username: me.username,
            global_name: me.global_name.filter(|n| !n.is_empty()),
            guild_roles,
        })
    }

    /// A JSON answer of Discord's API; `None` for 404 (not a member).
    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        token: &str,
    ) -> Result<Option<T>, SsoError> {
        let (status, body) = self
            .http
            .get_bearer(url, token)
            .await
            .map_err(|e| SsoError::Exchange(chain(&e)))?;
        if status == http::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(SsoError::Exchange(format!(
                "Discord answered {status}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )));
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| SsoError::Token(format!("Discord's answer cannot be read: {e}")))
    }
}
