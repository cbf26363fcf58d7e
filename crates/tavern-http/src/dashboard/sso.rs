//! Signing in with the OpenID provider of `[auth.oidc]`: `/auth/sso/oidc`
//! sends the browser to the provider with a fresh state, nonce and PKCE
//! challenge (kept sealed in a cookie of their own, so any replica can
//! finish); `/auth/sso/oidc/callback` checks the state, has the code
//! exchanged and the ID token checked (tavern-sso), and signs in (or links
//! the account to the signed-in user) as the core decides. The cookie is
//! spent on the way back: a callback replayed finds none.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use tavern_core::OutsideAccount;

use super::auth::{safe_next, signed_in};
use super::{Posted, Session, cookie, error_page, redirect_with, same, say, see_other, set_cookie};
use crate::AppState;
use crate::extract::ClientIp;

/// The sign-in under way, sealed.
const FLOW_COOKIE: &str = "tavern_sso";
/// Tavern's name for the provider (what links are stored under).
pub(crate) const PROVIDER: &str = "oidc";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/sso/oidc", get(begin))
        .route("/auth/sso/oidc/callback", get(callback))
        .route("/account/sso/unlink", post(unlink))
}

#[derive(Deserialize)]
struct BeginQuery {
    next: Option<String>,
    /// Link the account to the signed-in user instead of signing in.
    #[serde(default)]
    link: bool,
}

fn not_on() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "This Tavern signs in with passwords only.",
    )
}

fn flow_cookie(
    s: &AppState,
    headers: &HeaderMap,
    value: &str,
    max_age: u32,
) -> Option<HeaderValue> {
    HeaderValue::from_str(&set_cookie(s, headers, FLOW_COOKIE, value, max_age)).ok()
}

/// `GET /auth/sso/oidc[?next=PATH][&link=true]`: on to the provider.
async fn begin(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<BeginQuery>,
) -> Response {
    let Some(edge) = s.oidc.clone() else {
        return not_on();
    };
    let client = match edge.client().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "the OpenID provider cannot be used");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "{} cannot be reached just now. Try again in a minute, or sign in with your password.",
                    edge.label
                ),
            );
        }
    };
    let begun = client.begin();
    let next = safe_next(q.next.as_deref());
    let mode = if q.link { "link" } else { "sign-in" };
    let sealed = match s.tavern.seal_sign_in_flow(&[
        &begun.state,
        &begun.nonce,
        &begun.pkce_verifier,
        &next,
        mode,
    ]) {
        Ok(v) => v,
        Err(e) => return super::core_error_page(e),
    };
    let mut r = see_other(&begun.url);
    if let Some(v) = flow_cookie(&s, &headers, &sealed, tavern_core::SIGN_IN_FLOW_SECONDS) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct CallbackQuery {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    /// The provider's refusal (`access_denied` when the person said no).
    error: Option<String>,
}

/// `GET /auth/sso/oidc/callback?code=…&state=…`: back from the provider.
async fn callback(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    session: Option<Session>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let mut r = finish(&s, ip, &headers, session, q).await;
    // Spent either way.
    if let Some(v) = flow_cookie(&s, &headers, "", 0) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn finish(
    s: &AppState,
    ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    session: Option<Session>,
    q: CallbackQuery,
) -> Response {
    let Some(edge) = s.oidc.clone() else {
        return not_on();
    };
    let flow = cookie(headers, FLOW_COOKIE).and_then(|c| s.tavern.open_sign_in_flow(c));
    let Some([state, nonce, verifier, next, mode]) =
        flow.and_then(|f| <[String; 5]>::try_from(f).ok())
    else {
        return error_page(
            StatusCode::FORBIDDEN,
            "This sign-in was finished already, took too long, or was started in another browser. \
             Start again from the sign-in page.",
        );
    };
    if q.state.is_empty() || !same(&q.state, &state) {
        tracing::warn!(
            ?ip,
            "outside sign-in: the state does not match this browser's"
        );
        return error_page(
            StatusCode::FORBIDDEN,
            "This sign-in is not the one this browser started. Start again from the sign-in page.",
        );
    }
    let back = if mode == "link" {
        "/account"
    } else {
        "/auth/login"
    };
    if let Some(error) = q.error {
        tracing::info!(%error, "outside sign-in refused at the provider");
        return redirect_with(
            s,
            headers,
            back,
            Err(format!("{} did not sign you in.", edge.label)),
        );
    }
    let client = match edge.client().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "the OpenID provider cannot be used");
            return redirect_with(
                s,
                headers,
                back,
                Err(format!(
                    "{} cannot be reached just now; try again in a minute.",
                    edge.label
                )),
            );
        }
    };
    let who = match client.finish(&q.code, &verifier, &nonce).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, ?ip, "outside sign-in refused");
            return redirect_with(
                s,
                headers,
                back,
                Err(format!(
                    "The answer from {} could not be trusted, so nobody was signed in.",
                    edge.label
                )),
            );
        }
    };
    let account = OutsideAccount {
        provider: PROVIDER.to_owned(),
        subject: who.subject,
        email: who.email,
        email_verified: who.email_verified,
        name: who.name,
        groups: who.groups,
    };
    if mode == "link" {
        let Some(session) = session else {
            return see_other("/auth/login?next=%2Faccount");
        };
        let done = s
            .tavern
            .link_outside(&session.caller, &account)
            .await
            .map(|()| {
                format!(
                    "Your {} account is linked: it signs you in here now.",
                    edge.label
                )
            })
            .map_err(say);
        return redirect_with(s, headers, "/account", done);
    }
    match s.tavern.sign_in_outside(&account, &edge.policy, ip).await {
        Ok((token, _)) => signed_in(s, headers, &next, &token),
        Err(e) => redirect_with(s, headers, "/auth/login", Err(say(e))),
    }
}

#[derive(Deserialize)]
struct UnlinkForm {}

/// `POST /account/sso/unlink`: the caller's account of the provider no
/// longer signs them in.
async fn unlink(
    State(s): State<AppState>,
    headers: HeaderMap,
    posted: Posted<UnlinkForm>,
) -> Response {
    let done = s
        .tavern
        .unlink_outside(&posted.session.caller, None, PROVIDER)
        .await
        .map(|()| "The account is unlinked.".to_owned())
        .map_err(say);
    redirect_with(&s, &headers, "/account", done)
}
