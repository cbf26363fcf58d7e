//! Signing in and out, and accepting an invitation in the browser (which
//! leads into the onboarding wizard). Sign-in shares the API's rate limits;
//! the forms before sign-in carry a double-submit token.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use tavern_core::{CoreError, SignIn};
use tavern_types::Role;

use super::{
    Chrome, Flash, NoFields, PRE_COOKIE, Posted, SESSION_COOKIE, SESSION_SECONDS, Session, cookie,
    error_page, foreign_origin, read_form, redirect_with, render, same, say, see_other, set_cookie,
};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::ClientIp;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login_page).post(login))
        .route("/auth/login/code", get(code_page).post(login_code))
        .route("/auth/logout", post(logout))
        .route("/auth/invite/{code}", get(invite_page).post(accept))
        .route("/auth/handoff", get(handoff))
}

#[derive(Deserialize)]
struct HandoffQuery {
    world: String,
    /// Where on the world's address: `backups`, else its page.
    #[serde(default)]
    to: String,
}

/// `GET /auth/handoff?world=SLUG[&to=backups]`: on to that world's
/// address (its page, or its backups), signed in there as here (its standby page links here when the browser cannot
/// share the dashboard's cookie with it, as under `localhost`). Only ever
/// to a world's address, which keeps `/_tavern/` paths from its server.
async fn handoff(
    State(s): State<AppState>,
    session: Session,
    Query(q): Query<HandoffQuery>,
) -> Response {
    let code = tavern_types::Slug::parse(&q.world)
        .ok()
        .and_then(|slug| Some((s.tavern.handoff_code(&session.token, &slug)?, slug)));
    match code {
        Some((code, slug)) => see_other(&format!(
            "{}_tavern/handoff?code={code}{}",
            s.tavern.settings().instance_url(&slug),
            if q.to == "backups" { "&to=backups" } else { "" }
        )),
        None => error_page(StatusCode::NOT_FOUND, "There is no world at that address."),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    pre: String,
    next: String,
    /// "Sign in with LABEL" buttons: (provider, label, address).
    ways: Vec<(String, String, String)>,
    /// Passwords are for everyone (else tucked away for break-glass admins).
    passwords: bool,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Only a path of this site: a sign-in never sends people elsewhere.
pub(super) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/dashboard".to_owned(),
    }
}

/// The double-submit value the browser already holds, else a fresh one.
fn pre_token(headers: &HeaderMap) -> String {
    match cookie(headers, PRE_COOKIE) {
        Some(v) if v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()) => v.to_owned(),
        _ => tavern_core::auth::token_hash(&tavern_core::auth::random_secret())[..32].to_owned(),
    }
}

/// A page with a form before sign-in, and its double-submit cookie (set
/// again each time, so that it lasts an hour from the page).
fn with_pre(state: &AppState, headers: &HeaderMap, mut r: Response, pre: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&set_cookie(state, headers, PRE_COOKIE, pre, 3600)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn login_page(
    State(s): State<AppState>,
    session: Option<Session>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if session.is_some() {
        return see_other(&next);
    }
    let pre = pre_token(&headers);
    let back = form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>();
    let ways = s
        .sign_in
        .offered()
        .into_iter()
        .map(|(provider, label)| {
            let href = format!("/auth/sso/{provider}?next={back}");
            (provider, label, href)
        })
        .collect();
    let page = LoginPage {
        chrome: Chrome::anonymous("Sign in", Flash::read(&headers)),
        pre: pre.clone(),
        next,
        ways,
        passwords: s.sign_in.passwords,
    };
    with_pre(&s, &headers, render(&page.chrome, &page), &pre)
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// Checks a form posted before sign-in: same site, and its double-submit
/// value matches the cookie.
async fn anonymous_form<T: serde::de::DeserializeOwned>(
    req: axum::extract::Request,
) -> Result<T, Response> {
    if foreign_origin(req.headers()) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "That form was sent from another site.",
        ));
    }
    let expected = cookie(req.headers(), PRE_COOKIE).unwrap_or("").to_owned();
    let (form, csrf) = read_form::<T>(req).await?;
    if expected.is_empty() {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "Your browser did not send back Tavern's cookie, so it cannot keep you signed in. \
             Allow cookies for this site, then reload the page and try again.",
        ));
    }
    if !same(&csrf, &expected) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "That form has expired. Go back, reload the page and try again.",
        ));
    }
    Ok(form)
}

pub(super) fn signed_in(state: &AppState, headers: &HeaderMap, to: &str, token: &str) -> Response {
    let mut r = see_other(to);
    if let Ok(v) = HeaderValue::from_str(&set_cookie(
        state,
        headers,
        SESSION_COOKIE,
        token,
        SESSION_SECONDS,
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    req: axum::extract::Request,
) -> Response {
    let headers = req.headers().clone();
    let form: LoginForm = match anonymous_form(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let next = safe_next(form.next.as_deref());
    let back = format!(
        "/auth/login?next={}",
        form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
    );
    match s
        .tavern
        .sign_in(&form.username, &form.password, None, ip)
        .await
    {
        Ok(SignIn::Done(token, _)) => signed_in(&s, &headers, &next, &token),
        Ok(SignIn::NeedsCode(ticket)) => code_form(&s, &headers, ticket, next, None),
        Err(e) => redirect_with(&s, &headers, &back, Err(refusal(e))),
    }
}

/// Why a sign-in (or a code) was refused, for the page.
pub(super) fn refusal(e: CoreError) -> String {
    match e {
        CoreError::InvalidCredentials => "Wrong username or password.".to_owned(),
        CoreError::WrongCode => {
            "Wrong code, or one used already: wait for the next one.".to_owned()
        }
        CoreError::RateLimited(_) => {
            "Too many sign-in attempts; wait a minute and try again.".to_owned()
        }
        other => ApiError::from(other).message,
    }
}

#[derive(Template)]
#[template(path = "login_code.html")]
struct CodePage {
    chrome: Chrome,
    pre: String,
    next: String,
    ticket: String,
}

/// The second step of a sign-in: the code, with the ticket the right
/// password got (never the password itself).
fn code_form(
    s: &AppState,
    headers: &HeaderMap,
    ticket: String,
    next: String,
    said: Option<String>,
) -> Response {
    let pre = pre_token(headers);
    let flash = said.map(|text| Flash { ok: false, text });
    let page = CodePage {
        chrome: Chrome::anonymous("Your second factor", flash),
        pre: pre.clone(),
        next,
        ticket,
    };
    with_pre(s, headers, render(&page.chrome, &page), &pre)
}

#[derive(Deserialize)]
struct CodeQuery {
    #[serde(default)]
    ticket: String,
    next: Option<String>,
}

/// `GET /auth/login/code?ticket=…`: where a world's standby page sends a
/// right password of an account with a second factor.
async fn code_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CodeQuery>,
) -> Response {
    code_form(&s, &headers, q.ticket, safe_next(q.next.as_deref()), None)
}

#[derive(Deserialize)]
struct CodeForm {
    ticket: String,
    code: String,
    #[serde(default)]
    next: Option<String>,
}

async fn login_code(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    req: axum::extract::Request,
) -> Response {
    let headers = req.headers().clone();
    let form: CodeForm = match anonymous_form(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let next = safe_next(form.next.as_deref());
    match s
        .tavern
        .sign_in_with_ticket(&form.ticket, &form.code, ip)
        .await
    {
        Ok((token, _)) => signed_in(&s, &headers, &next, &token),
        // A stale ticket starts again from the password.
        Err(e @ CoreError::Invalid { .. }) => {
            let back = format!(
                "/auth/login?next={}",
                form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
            );
            redirect_with(&s, &headers, &back, Err(say(e)))
        }
        Err(e) => code_form(&s, &headers, form.ticket, next, Some(refusal(e))),
    }
}

async fn logout(
    State(s): State<AppState>,
    headers: HeaderMap,
    posted: Posted<NoFields>,
) -> Response {
    if let Err(e) = s.tavern.logout(&posted.session.token).await {
        tracing::warn!(error = %e, "signing out failed");
    }
    let mut r = redirect_with(
        &s,
        &headers,
        "/auth/login",
        Ok("You are signed out.".into()),
    );
    if let Ok(v) = HeaderValue::from_str(&set_cookie(&s, &headers, SESSION_COOKIE, "", 0)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Template)]
#[template(path = "invite.html")]
struct InvitePage {
    chrome: Chrome,
    pre: String,
    role: &'static str,
    until: String,
    code: String,
    /// Outside accounts the invitation can be accepted with.
    ways: Vec<(String, String)>,
    /// It can be accepted with a password.
    passwords: bool,
}

/// `GET /auth/invite/{code}`: what the invitation offers, a form that
/// accepts it, and the command that does the same; 404 once it is used up,
/// expired or withdrawn.
async fn invite_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Response {
    let invite = match s.tavern.invite_by_code(&code).await {
        Ok(i) => i,
        Err(CoreError::NotFound { .. }) => {
            return error_page(
                StatusCode::NOT_FOUND,
                "This invitation is used up, has expired or was withdrawn. Ask your community's admin for a new one.",
            );
        }
        Err(e) => return super::core_error_page(e),
    };
    let pre = pre_token(&headers);
    let page = InvitePage {
        chrome: Chrome::anonymous("You are invited", Flash::read(&headers)),
        pre: pre.clone(),
        role: if invite.role == Role::Admin {
            "an admin"
        } else {
            "a game master"
        },
        until: super::when(invite.expires_at),
        code,
        ways: s.sign_in.offered(),
        passwords: s.sign_in.passwords,
    };
    with_pre(&s, &headers, render(&page.chrome, &page), &pre)
}

#[derive(Deserialize)]
struct AcceptForm {
    username: String,
    password: String,
    password_again: String,
}

async fn accept(
    State(s): State<AppState>,
    Path(code): Path<String>,
    req: axum::extract::Request,
) -> Response {
    let headers = req.headers().clone();
    let form: AcceptForm = match anonymous_form(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let back = format!("/auth/invite/{code}");
    if form.password != form.password_again {
        return redirect_with(&s, &headers, &back, Err("The two passwords differ.".into()));
    }
    match s
        .tavern
        .accept_invite(&code, &form.username, &form.password)
        .await
    {
        Ok((token, _)) => signed_in(&s, &headers, "/dashboard/welcome", &token),
        Err(e @ CoreError::NotFound { .. }) => super::core_error_page(e),
        Err(e) => redirect_with(&s, &headers, &back, Err(say(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn sign_in_only_returns_to_this_site() {
        assert_eq!(
            safe_next(Some("/dashboard/worlds/x")),
            "/dashboard/worlds/x"
        );
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "dashboard",
        ] {
            assert_eq!(safe_next(Some(bad)), "/dashboard", "{bad}");
        }
        assert_eq!(safe_next(None), "/dashboard");
    }
}
