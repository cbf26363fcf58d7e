//! The web dashboard on the bare domain: server-rendered pages (askama
//! templates) over the core service, for game masters and admins. Owns the
//! browser session (the `tavern_session` cookie, shared with the standby
//! pages), CSRF checks on every form, flash messages and the page chrome.
//! Every action is a plain form; `static/dashboard.js` only improves.

mod account;
mod admin;
mod auth;
mod backups;
mod charts;
mod cli;
mod imports;
mod packages;
mod sessions;
mod sso;
mod worlds;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use tavern_core::auth::{SESSION_COOKIE, cookie_line, cookie_value, shared_cookie_domain};
use tavern_core::{Caller, CoreError};

use crate::AppState;

/// Before sign-in: the double-submit value the sign-in forms carry.
const PRE_COOKIE: &str = "tavern_pre";
/// A message for the next page (after a form's redirect).
const FLASH_COOKIE: &str = "tavern_flash";
/// How long a sign-in lasts.
const SESSION_SECONDS: u32 = 30 * 24 * 3600;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/static/dashboard.css", get(css))
        .route("/static/dashboard.js", get(js))
        .merge(auth::routes())
        .merge(account::routes())
        .merge(sso::routes())
        .merge(cli::routes())
        .merge(worlds::routes())
        .merge(sessions::routes())
        .merge(backups::routes())
        .merge(imports::routes())
        .merge(packages::routes())
        .merge(admin::routes())
}

async fn home(session: Option<Session>) -> Response {
    see_other(match session {
        Some(_) => "/dashboard",
        None => "/auth/login",
    })
}

/// `303 See Other` to a path of this site. A path that cannot be a header
/// (a control character decoded from the address) goes to the dashboard's
/// start instead: a redirect never fails.
pub(crate) fn see_other(to: &str) -> Response {
    let location =
        HeaderValue::from_str(to).unwrap_or_else(|_| HeaderValue::from_static("/dashboard"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response()
}

async fn css() -> impl IntoResponse {
    static_file(
        "text/css; charset=utf-8",
        include_str!("../../static/dashboard.css"),
    )
}

async fn js() -> impl IntoResponse {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("../../static/dashboard.js"),
    )
}

fn static_file(kind: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
}

// ---- cookies --------------------------------------------------------------

/// The value of one cookie of a request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let values = headers.get_all(header::COOKIE);
    cookie_value(values.iter().filter_map(|v| v.to_str().ok()), name)
}

/// A `Set-Cookie` value with the attributes every Tavern cookie has:
/// HttpOnly, SameSite=Lax, Secure under TLS; the session cookie is scoped
/// to the parent domain (so the worlds' standby pages share it) when the
/// page is served from that domain and browsers allow it (a dotted name;
/// under `localhost` the standby page asks `/auth/handoff` instead).
fn set_cookie(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age: u32,
) -> String {
    let settings = state.tavern.settings();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let shared = name == SESSION_COOKIE && on_domain(host, &settings.domain);
    cookie_line(
        name,
        value,
        max_age,
        settings.public_scheme.is_secure(),
        shared
            .then(|| shared_cookie_domain(&settings.domain))
            .flatten(),
    )
}

/// Whether a request's `Host` is the bare domain itself (any port).
fn on_domain(host: Option<&str>, domain: &str) -> bool {
    let Some(host) = host else { return false };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    name.eq_ignore_ascii_case(domain)
}

/// The CSRF token of a session: derived from its secret, so a page from
/// another site (which cannot read the HttpOnly cookie) cannot know it.
fn csrf_for(secret: &str) -> String {
    let digest = Sha256::digest(format!("tavern-csrf\0{secret}").as_bytes());
    hex::encode(&digest[..16])
}

fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

// ---- the session ------------------------------------------------------------

/// The signed-in user of a page, from the session cookie.
#[derive(Clone)]
pub(crate) struct Session {
    pub caller: Caller,
    pub token: String,
    pub csrf: String,
    flash: Option<Flash>,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.caller.is_admin()
    }

    /// What every page around its content shows.
    pub fn chrome(&self, title: impl Into<String>, section: &'static str) -> Chrome {
        Chrome {
            title: title.into(),
            section,
            user: Some(self.caller.user.username.to_string()),
            admin: self.is_admin(),
            csrf: self.csrf.clone(),
            flash: self.flash.clone(),
        }
    }
}

async fn session_of(parts: &Parts, state: &AppState) -> Option<Session> {
    let token = cookie(&parts.headers, SESSION_COOKIE)?;
    let caller = state.tavern.authenticate(token).await.ok()?;
    Some(Session {
        caller,
        csrf: csrf_for(token),
        token: token.to_owned(),
        flash: Flash::read(&parts.headers),
    })
}

/// Not signed in: the sign-in page, which comes back here afterwards.
pub(crate) struct SignIn(String);

impl IntoResponse for SignIn {
    fn into_response(self) -> Response {
        let next: String = form_urlencoded::byte_serialize(self.0.as_bytes()).collect();
        see_other(&format!("/auth/login?next={next}"))
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let here = parts
            .uri
            .path_and_query()
            .map_or("/dashboard", |p| p.as_str())
            .to_owned();
        let here = if parts.method == Method::GET {
            here
        } else {
            "/dashboard".into()
        };
        let session = session_of(parts, state)
            .await
            .ok_or(SignIn(here).into_response())?;
        // An admin the community requires a second factor of sees only
        // where to set it up (and may sign out).
        let path = parts.uri.path();
        if !path.starts_with("/account") && !path.starts_with("/auth/") {
            let must = state
                .tavern
                .must_set_up_second_factor(&session.caller)
                .await
                .unwrap_or(false);
            if must {
                return Err(see_other("/account"));
            }
        }
        Ok(session)
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(session_of(parts, state).await)
    }
}

/// A form posted by a signed-in user: the session, the CSRF token checked,
/// the form's fields.
pub(crate) struct Posted<T> {
    pub session: Session,
    pub form: T,
}

/// A form that is only its button (and its CSRF token).
#[derive(serde::Deserialize)]
pub(crate) struct NoFields {}

/// The largest form the dashboard takes.
const FORM_LIMIT: usize = 64 * 1024;

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// Refuses a form posted from another site's page.
fn foreign_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
    match (origin, host) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, h)| h) != Some(host),
        _ => false,
    }
}

/// Reads a posted form's body: its fields and its `csrf` field.
async fn read_form<T: DeserializeOwned>(req: Request) -> Result<(T, String), Response> {
    let Ok(bytes) = axum::body::to_bytes(req.into_body(), FORM_LIMIT).await else {
        return Err(error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "That form was too large.",
        ));
    };
    let csrf = serde_urlencoded::from_bytes::<CsrfField>(&bytes)
        .map(|c| c.csrf)
        .unwrap_or_default();
    let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
        error_page(
            StatusCode::BAD_REQUEST,
            &format!("That form was not filled in as expected: {e}."),
        )
    })?;
    Ok((form, csrf))
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        if foreign_origin(req.headers()) {
            return Err(error_page(
                StatusCode::FORBIDDEN,
                "That form was sent from another site.",
            ));
        }
        let (mut parts, body) = req.into_parts();
        let session =
            <Session as FromRequestParts<AppState>>::from_request_parts(&mut parts, state)
                .await
                .map_err(IntoResponse::into_response)?;
        let (form, csrf) = read_form(Request::from_parts(parts, body)).await?;
        if !same(&csrf, &session.csrf) {
            return Err(error_page(
                StatusCode::FORBIDDEN,
                "That form has expired. Go back, reload the page and try again.",
            ));
        }
        Ok(Posted { session, form })
    }
}

// ---- flash messages -----------------------------------------------------

/// A message for the next page: what a form did, or why it did nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Flash {
    pub ok: bool,
    pub text: String,
}

impl Flash {
    fn read(headers: &HeaderMap) -> Option<Flash> {
        let raw = cookie(headers, FLASH_COOKIE)?;
        let (kind, text) = raw.split_once('.')?;
        let text: String = form_urlencoded::parse(format!("t={text}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())?;
        Some(Flash {
            ok: kind == "ok",
            text,
        })
    }
}

/// A redirect that leaves a message for the page it goes to.
pub(crate) fn redirect_with(
    state: &AppState,
    headers: &HeaderMap,
    to: &str,
    flash: Result<String, String>,
) -> Response {
    let (kind, text) = match &flash {
        Ok(t) => ("ok", t),
        Err(t) => ("err", t),
    };
    let value: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
    let mut r = see_other(to);
    if let Ok(v) = HeaderValue::from_str(&set_cookie(
        state,
        headers,
        FLASH_COOKIE,
        &format!("{kind}.{value}"),
        60,
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// What a core error tells the person who filled in the form.
pub(crate) fn say(e: CoreError) -> String {
    crate::ApiError::from(e).message
}

// ---- pages -----------------------------------------------------------------

/// What every page shows around its content.
#[derive(Clone, Debug)]
pub(crate) struct Chrome {
    pub title: String,
    /// Which menu entry is this page's.
    pub section: &'static str,
    pub user: Option<String>,
    pub admin: bool,
    pub csrf: String,
    pub flash: Option<Flash>,
}

impl Chrome {
    /// For pages before sign-in.
    pub fn anonymous(title: impl Into<String>, flash: Option<Flash>) -> Self {
        Chrome {
            title: title.into(),
            section: "",
            user: None,
            admin: false,
            csrf: String::new(),
            flash,
        }
    }
}

/// Renders a page: HTML, never cached, the flash message it showed cleared.
pub(crate) fn render(chrome: &Chrome, page: &impl Template) -> Response {
    render_status(StatusCode::OK, chrome, page)
}

pub(crate) fn render_status(status: StatusCode, chrome: &Chrome, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => {
            let mut r = (
                status,
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                html,
            )
                .into_response();
            if chrome.flash.is_some() {
                r.headers_mut().append(
                    header::SET_COOKIE,
                    HeaderValue::from_str(&format!("{FLASH_COOKIE}=; Path=/; Max-Age=0"))
                        .expect("a plain header value"),
                );
            }
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering a page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be drawn.",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Chrome,
    status: u16,
    message: &'a str,
}

/// A page that says what went wrong (a missing world: 404, never a hint
/// that it exists).
fn error_with(chrome: Chrome, status: StatusCode, message: &str) -> Response {
    render_status(
        status,
        &chrome.clone(),
        &ErrorPage {
            chrome,
            status: status.as_u16(),
            message,
        },
    )
}

/// An error page for someone not signed in.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    error_with(Chrome::anonymous(title, None), status, message)
}

/// A core error as a page, with the status the API would answer.
pub(crate) fn core_error_page(e: CoreError) -> Response {
    let e = crate::ApiError::from(e);
    error_page(e.status, &e.message)
}

impl Session {
    /// An error page with the signed-in user's menus.
    pub fn error_page(&self, status: StatusCode, message: &str) -> Response {
        let title = status.canonical_reason().unwrap_or("Error");
        error_with(self.chrome(title, ""), status, message)
    }

    /// A core error as a page, with the status the API would answer.
    pub fn core_error(&self, e: CoreError) -> Response {
        let e = crate::ApiError::from(e);
        self.error_page(e.status, &e.message)
    }
}

/// Times as pages show them.
pub(crate) fn when(t: jiff::Timestamp) -> String {
    tavern_types::words::instant(t, &jiff::tz::TimeZone::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_per_session_and_compared_whole() {
        let a = csrf_for("tvn_a");
        assert_eq!(a, csrf_for("tvn_a"));
        assert_ne!(a, csrf_for("tvn_b"));
        assert_eq!(a.len(), 32);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &a[..31]));
        assert!(!same("", &a));
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_under_tls() {
        assert_eq!(
            cookie_line("tavern_session", "tvn_x", 60, true, Some("games.example")),
            "tavern_session=tvn_x; Path=/; Domain=games.example; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(
            cookie_line("tavern_flash", "ok.x", 60, false, None),
            "tavern_flash=ok.x; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
        );
        // Shared with the worlds only when served from the bare domain.
        assert!(on_domain(Some("Games.Example:8443"), "games.example"));
        assert!(on_domain(Some("games.example"), "games.example"));
        assert!(!on_domain(Some("127.0.0.1:8080"), "games.example"));
        assert!(!on_domain(Some("evil.games.example"), "games.example"));
        assert!(!on_domain(None, "games.example"));
    }

    #[test]
    fn a_redirect_to_a_path_with_control_characters_still_answers() {
        let r = see_other("/dashboard/worlds/a\nb");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[header::LOCATION], "/dashboard");
        assert_eq!(
            see_other("/dashboard/worlds/ok").headers()[header::LOCATION],
            "/dashboard/worlds/ok"
        );
    }

    #[test]
    fn forms_from_other_sites_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("games.example:8080"));
        assert!(!foreign_origin(&h), "no Origin: a plain form post");
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://games.example:8080"),
        );
        assert!(!foreign_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(foreign_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(foreign_origin(&h));
    }

    #[test]
    fn flash_messages_survive_their_cookie() {
        let text = "World \"dragon\" started; 100% ok";
        let value: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {FLASH_COOKIE}=err.{value}")).unwrap(),
        );
        assert_eq!(
            Flash::read(&h),
            Some(Flash {
                ok: false,
                text: text.into()
            })
        );
    }
}
