//! OpenID Connect with one provider: its discovery document read once, an
//! authorization URL with fresh `state`, `nonce` and PKCE verifier for each
//! sign-in (the caller keeps them, sealed, until the provider sends the
//! browser back), and the code exchanged for an ID token that is checked
//! before anything in it is believed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse as _,
};

use crate::http::Http;
use crate::{SsoError, chain};

/// How Tavern is known to the provider.
#[derive(Clone)]
pub struct OidcSettings {
    /// The issuer, exactly as the provider names itself
    /// (`https://auth.example.org/application/o/tavern/`).
    pub issuer: String,
    pub client_id: String,
    /// `None` for a public client.
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back: Tavern's callback.
    pub redirect_url: String,
    /// Scopes asked for besides `openid`.
    pub scopes: Vec<String>,
    /// A claim that lists the user's groups (`groups`), if wanted.
    pub groups_claim: Option<String>,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("redirect_url", &self.redirect_url)
            .finish_non_exhaustive()
    }
}

/// A sign-in sent to the provider: the URL to send the browser to, and
/// what must come back with it (to keep until then, never in the clear).
#[derive(Clone, Debug)]
pub struct Begun {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// Who signed in, as the provider's checked ID token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The provider's stable id of the account (`sub`).
    pub subject: String,
    pub email: Option<String>,
    /// The provider vouches for the e-mail address.
    pub email_verified: bool,
    pub name: Option<String>,
    /// The groups claim's values (empty without one).
    pub groups: Vec<String>,
}

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// One provider, discovered.
pub struct Oidc {
    client: Client,
    http: Http,
    scopes: Vec<String>,
    groups_claim: Option<String>,
}

impl Oidc {
    /// Reads the provider's discovery document (and its keys).
    pub async fn discover(settings: &OidcSettings) -> Result<Self, SsoError> {
        let config = |what: &str, e: &dyn std::error::Error| {
            SsoError::Config(format!("{what} is not a URL: {}", chain(e)))
        };
        let issuer =
            IssuerUrl::new(settings.issuer.clone()).map_err(|e| config("the issuer", &e))?;
        let redirect = RedirectUrl::new(settings.redirect_url.clone())
            .map_err(|e| config("the redirect URL", &e))?;
        let http = Http::new()?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| SsoError::Discovery {
                issuer: settings.issuer.clone(),
                reason: chain(&e),
            })?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(settings.client_id.clone()),
            settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect);
        Ok(Self {
            client,
            http,
            scopes: settings.scopes.clone(),
            groups_claim: settings.groups_claim.clone(),
        })
    }

    /// A new sign-in: where to send the browser, and what to keep.
    pub fn begin(&self) -> Begun {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self.client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Begun {
            url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        }
    }

    /// Exchanges the code the browser came back with for the ID token and
    /// checks it against this sign-in's nonce.
    pub async fn finish(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<Identity, SsoError> {
        let answer = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| SsoError::Exchange(chain(&e)))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| SsoError::Exchange(chain(&e)))?;
        let token = answer
            .id_token()
            .ok_or_else(|| SsoError::Token("no ID token came with the answer".into()))?;
        self.identity(token, nonce)
    }

    /// Checks an ID token (as the provider's JWT text).
    pub fn verify(&self, id_token: &str, nonce: &str) -> Result<Identity, SsoError> {
        let token: CoreIdToken = id_token
            .parse()
            .map_err(|e: serde_json::Error| SsoError::Token(e.to_string()))?;
        self.identity(&token, nonce)
    }

    fn identity(&self, token: &CoreIdToken, nonce: &str) -> Result<Identity, SsoError> {
        let verifier = self.client.id_token_verifier();
        let claims = token
            .claims(&verifier, &Nonce::new(nonce.to_owned()))
            .map_err(|e| SsoError::Token(chain(&e)))?;
        let groups = match &self.groups_claim {
            Some(name) => groups_of(&token.to_string(), name),
            None => Vec::new(),
        };
        Ok(Identity {
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
            groups,
        })
    }
}

/// The values of claim `name` in a JWT's payload (read only after the
/// token was checked): a list of strings, or one string.
fn groups_of(jwt: &str, name: &str) -> Vec<String> {
    let payload = jwt
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p).ok());
    match payload.as_ref().and_then(|p| p.get(name)) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &serde_json::Value) -> String {
        format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(payload.to_string()))
    }

    #[test]
    fn groups_are_a_list_or_one_name_and_nothing_else() {
        let t = jwt(&serde_json::json!({"groups": ["gm", 7, "admins"], "role": "x"}));
        assert_eq!(groups_of(&t, "groups"), ["gm", "admins"]);
        assert_eq!(groups_of(&t, "role"), ["x"]);
        assert!(groups_of(&t, "missing").is_empty());
        assert!(groups_of("not a jwt", "groups").is_empty());
        assert!(groups_of("a.!!!.c", "groups").is_empty());
    }
}
