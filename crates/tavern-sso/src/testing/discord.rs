//! A stand-in for Discord's OAuth2 and the parts of its API Tavern reads,
//! on loopback, following Discord's documented requests and answers:
//! `GET /oauth2/authorize` (the consent page, skipped with `prompt=none`
//! once allowed), `POST /api/oauth2/token` (client by Basic auth or form,
//! one-time codes bound to their `redirect_uri` and PKCE S256 challenge),
//! `GET /api/v10/users/@me` and `GET /api/v10/users/@me/guilds/{id}/member`
//! (404 "Unknown Guild" for non-members, 403 without the scope). Who is
//! signed in at "Discord" and who is in which guild is set by the test.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Form, Path, Query, State};
use axum::http::header::{AUTHORIZATION, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// A Discord account of the stand-in.
#[derive(Clone, Debug)]
pub struct Account {
    pub id: String,
    pub username: String,
    pub global_name: Option<String>,
}

impl Account {
    pub fn new(id: &str, username: &str, global_name: Option<&str>) -> Self {
        Self {
            id: id.to_owned(),
            username: username.to_owned(),
            global_name: global_name.map(str::to_owned),
        }
    }
}

struct Grant {
    user: String,
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    challenge: Option<String>,
}

#[derive(Default)]
struct Inner {
    /// The application: client id, secret, registered redirect URIs.
    client_id: String,
    client_secret: String,
    redirect_uris: Vec<String>,
    accounts: HashMap<String, Account>,
    /// Who is signed in at Discord in "the browser".
    signed_in: Option<String>,
    /// (user, scopes) already allowed: `prompt=none` skips the page.
    allowed: HashSet<(String, String)>,
    codes: HashMap<String, Grant>,
    /// Access token → (user, scopes).
    tokens: HashMap<String, (String, Vec<String>)>,
    /// Guild → member → roles.
    guilds: HashMap<String, HashMap<String, Vec<String>>>,
    /// Requests the token endpoint refused, for tests to read.
    refused: Vec<String>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The stand-in, stopped when dropped.
pub struct StandIn {
    /// Its address, to use as Discord's base URL: `http://127.0.0.1:PORT`.
    pub base_url: String,
    inner: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn random() -> String {
    let bytes: [u8; 24] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

impl StandIn {
    /// An application `client_id`/`client_secret` that may send people
    /// back to `redirect_uri`.
    pub async fn start(client_id: &str, client_secret: &str, redirect_uri: &str) -> Self {
        let inner: Shared = Arc::new(Mutex::new(Inner {
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            redirect_uris: vec![redirect_uri.to_owned()],
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/oauth2/authorize", get(authorize_page).post(decide))
            .route("/api/oauth2/token", axum::routing::post(token))
            .route("/api/v10/oauth2/token", axum::routing::post(token))
            .route("/api/v10/users/@me", get(me))
            .route("/api/v10/users/@me/guilds/{guild}/member", get(member))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Discord stand-in");
        let base_url = format!("http://{}", listener.local_addr().expect("its address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base_url,
            inner,
            task,
        }
    }

    /// Another redirect URI the application may send people back to.
    pub fn allow_redirect(&self, uri: &str) {
        lock(&self.inner).redirect_uris.push(uri.to_owned());
    }

    /// `account` is signed in at Discord (in every browser: one user at a
    /// time is enough for tests).
    pub fn sign_in_as(&self, account: &Account) {
        let mut inner = lock(&self.inner);
        inner.accounts.insert(account.id.clone(), account.clone());
        inner.signed_in = Some(account.id.clone());
    }

    /// `account` is a member of `guild` with `roles`.
    pub fn join_guild(&self, guild: &str, account: &str, roles: &[&str]) {
        lock(&self.inner)
            .guilds
            .entry(guild.to_owned())
            .or_default()
            .insert(
                account.to_owned(),
                roles.iter().map(|r| (*r).to_owned()).collect(),
            );
    }

    /// What the token endpoint refused so far (its error descriptions).
    pub fn refused(&self) -> Vec<String> {
        lock(&self.inner).refused.clone()
    }

    /// Goes to an authorization URL as a browser would and answers the
    /// consent page (`allow` or not): where Discord sends the browser.
    pub async fn authorize(&self, url: &str, allow: bool) -> String {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client");
        let page = http.get(url).send().await.expect("the authorize page");
        if page.status().is_redirection() {
            return location(&page);
        }
        assert_eq!(page.status(), 200, "the authorize page");
        let query = url::Url::parse(url).expect("a URL");
        let mut form: Vec<(String, String)> = query.query_pairs().into_owned().collect();
        form.push((
            "decision".into(),
            if allow { "allow" } else { "deny" }.into(),
        ));
        let back = http
            .post(format!("{}/oauth2/authorize", self.base_url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&form)
                    .finish(),
            )
            .send()
            .await
            .expect("the decision");
        assert!(back.status().is_redirection(), "{}", back.status());
        location(&back)
    }
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("a Location")
        .to_owned()
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    response_type: String,
    #[serde(default)]
    scope: String,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    decision: Option<String>,
}

/// Discord's own error page for a request it will not send anywhere.
fn bad(why: &str) -> Response {
    (StatusCode::BAD_REQUEST, Html(format!("<p>{why}</p>"))).into_response()
}

/// Checks the request: the signed-in user, or why not (for the page).
fn check(inner: &Inner, q: &AuthorizeQuery) -> Result<String, &'static str> {
    if q.client_id != inner.client_id {
        return Err("Unknown application");
    }
    if !inner.redirect_uris.contains(&q.redirect_uri) {
        return Err("Invalid OAuth2 redirect_uri");
    }
    if q.response_type != "code" {
        return Err("Invalid response_type");
    }
    if q.code_challenge.is_some() && q.code_challenge_method.as_deref() != Some("S256") {
        return Err("Invalid code_challenge_method");
    }
    let scopes: Vec<&str> = q.scope.split(' ').collect();
    if !scopes.contains(&"identify")
        || scopes
            .iter()
            .any(|s| !["identify", "guilds.members.read"].contains(s))
    {
        return Err("Invalid scope");
    }
    inner.signed_in.clone().ok_or("Sign in to Discord first")
}

fn send_back(inner: &mut Inner, user: String, q: &AuthorizeQuery) -> Response {
    let code = random();
    inner.codes.insert(
        code.clone(),
        Grant {
            user,
            client_id: q.client_id.clone(),
            redirect_uri: q.redirect_uri.clone(),
            scopes: q.scope.split(' ').map(str::to_owned).collect(),
            challenge: q.code_challenge.clone(),
        },
    );
    let mut to = url::Url::parse(&q.redirect_uri).expect("a checked redirect URI");
    to.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = &q.state {
        to.query_pairs_mut().append_pair("state", state);
    }
    found(to.as_str())
}

fn found(to: &str) -> Response {
    (StatusCode::FOUND, [(LOCATION, to.to_owned())]).into_response()
}

async fn authorize_page(State(s): State<Shared>, Query(q): Query<AuthorizeQuery>) -> Response {
    let mut inner = lock(&s);
    let user = match check(&inner, &q) {
        Ok(u) => u,
        Err(why) => return bad(why),
    };
    if q.prompt.as_deref() == Some("none")
        && inner.allowed.contains(&(user.clone(), q.scope.clone()))
    {
        return send_back(&mut inner, user, &q);
    }
    let name = inner
        .accounts
        .get(&user)
        .map(|a| a.username.clone())
        .unwrap_or_default();
    let hidden: String = [
        ("client_id", Some(&q.client_id)),
        ("redirect_uri", Some(&q.redirect_uri)),
        ("response_type", Some(&q.response_type)),
        ("scope", Some(&q.scope)),
        ("state", q.state.as_ref()),
        ("code_challenge", q.code_challenge.as_ref()),
        ("code_challenge_method", q.code_challenge_method.as_ref()),
    ]
    .iter()
    .filter_map(|(k, v)| {
        v.map(|v| {
            format!(
                r#"<input type="hidden" name="{k}" value="{}">"#,
                v.replace('&', "&amp;").replace('"', "&quot;")
            )
        })
    })
    .collect();
    Html(format!(
        r#"<!doctype html><title>Discord</title><h1>An external application wants to access your Discord account</h1>
<p>Signed in as {name}. It asks for: {scope}</p>
<form method="post" action="/oauth2/authorize">{hidden}<button id="authorize" name="decision" value="allow">Authorize</button>
<button id="cancel" name="decision" value="deny">Cancel</button></form>"#,
        scope = q.scope
    ))
    .into_response()
}

async fn decide(State(s): State<Shared>, Form(q): Form<AuthorizeQuery>) -> Response {
    let mut inner = lock(&s);
    let user = match check(&inner, &q) {
        Ok(u) => u,
        Err(why) => return bad(why),
    };
    if q.decision.as_deref() != Some("allow") {
        let mut to = url::Url::parse(&q.redirect_uri).expect("a checked redirect URI");
        to.query_pairs_mut()
            .append_pair("error", "access_denied")
            .append_pair(
                "error_description",
                "The resource owner or authorization server denied the request",
            );
        if let Some(state) = &q.state {
            to.query_pairs_mut().append_pair("state", state);
        }
        return found(to.as_str());
    }
    inner.allowed.insert((user.clone(), q.scope.clone()));
    send_back(&mut inner, user, &q)
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    grant_type: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    redirect_uri: String,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn oauth_error(inner: &mut Inner, status: StatusCode, error: &str, description: &str) -> Response {
    inner.refused.push(format!("{error}: {description}"));
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// The client's id and secret: HTTP Basic (each part form-encoded, as
/// RFC 6749 says) or the form's fields.
fn client_of(headers: &HeaderMap, form: &TokenForm) -> Option<(String, String)> {
    if let Some(basic) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let text = String::from_utf8(STANDARD.decode(basic).ok()?).ok()?;
        let (id, secret) = text.split_once(':')?;
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        return Some((decode(id)?, decode(secret)?));
    }
    Some((form.client_id.clone()?, form.client_secret.clone()?))
}

async fn token(State(s): State<Shared>, headers: HeaderMap, Form(f): Form<TokenForm>) -> Response {
    let mut inner = lock(&s);
    let client = client_of(&headers, &f);
    if client != Some((inner.client_id.clone(), inner.client_secret.clone())) {
        return oauth_error(&mut inner, StatusCode::UNAUTHORIZED, "invalid_client", "");
    }
    if f.grant_type != "authorization_code" {
        return oauth_error(
            &mut inner,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Unsupported grant type",
        );
    }
    // A code is spent by its first use, right or wrong.
    let Some(grant) = inner.codes.remove(&f.code) else {
        return oauth_error(
            &mut inner,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid \"code\" in request.",
        );
    };
    if grant.client_id != inner.client_id || grant.redirect_uri != f.redirect_uri {
        return oauth_error(
            &mut inner,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid \"redirect_uri\" in request.",
        );
    }
    if let Some(challenge) = &grant.challenge {
        let proven = f
            .code_verifier
            .as_ref()
            .is_some_and(|v| URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())) == *challenge);
        if !proven {
            return oauth_error(
                &mut inner,
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Invalid \"code_verifier\" in request.",
            );
        }
    }
    let access = random();
    let scope = grant.scopes.join(" ");
    inner
        .tokens
        .insert(access.clone(), (grant.user, grant.scopes));
    Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 604800,
        "refresh_token": random(),
        "scope": scope,
    }))
    .into_response()
}

/// The bearer token's user and scopes.
fn bearer(inner: &Inner, headers: &HeaderMap) -> Option<(Account, Vec<String>)> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))?;
    let (user, scopes) = inner.tokens.get(token)?;
    Some((inner.accounts.get(user)?.clone(), scopes.clone()))
}

/// Discord's 401.
fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "401: Unauthorized", "code": 0})),
    )
        .into_response()
}

fn user_object(a: &Account) -> serde_json::Value {
    json!({
        "id": a.id,
        "username": a.username,
        "discriminator": "0",
        "global_name": a.global_name,
        "avatar": null,
        "public_flags": 0,
        "flags": 0,
        "mfa_enabled": false,
    })
}

async fn me(State(s): State<Shared>, headers: HeaderMap) -> Response {
    match bearer(&lock(&s), &headers) {
        Some((account, _)) => Json(user_object(&account)).into_response(),
        None => unauthorized(),
    }
}

async fn member(
    State(s): State<Shared>,
    headers: HeaderMap,
    Path(guild): Path<String>,
) -> Response {
    let inner = lock(&s);
    let Some((account, scopes)) = bearer(&inner, &headers) else {
        return unauthorized();
    };
    if !scopes.iter().any(|s| s == "guilds.members.read") {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"message": "Missing Access", "code": 50001})),
        )
            .into_response();
    }
    match inner.guilds.get(&guild).and_then(|g| g.get(&account.id)) {
        Some(roles) => Json(json!({
            "user": user_object(&account),
            "nick": null,
            "avatar": null,
            "roles": roles,
            "joined_at": "2026-01-01T00:00:00.000000+00:00",
            "premium_since": null,
            "deaf": false,
            "mute": false,
            "flags": 0,
            "pending": false,
            "communication_disabled_until": null,
        }))
        .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "Unknown Guild", "code": 10004})),
        )
            .into_response(),
    }
}
