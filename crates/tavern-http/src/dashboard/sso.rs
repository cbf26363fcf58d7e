//! Signing in with an outside account (the OpenID provider of
//! `[auth.oidc]`, or Discord with `[auth.discord]`): `/auth/sso/{provider}`
//! sends the browser there with a fresh state (and nonce) and PKCE
//! challenge, kept sealed in a cookie of their own so any replica can
//! finish; `/auth/sso/{provider}/callback` checks the state, has the code
//! exchanged and the answer checked (tavern-sso), and signs in, links the
//! account to the signed-in user, or accepts an invitation with it, as the
//! core decides. The cookie is spent on the way back: a callback replayed
//! finds none.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;

use super::auth::{safe_next, signed_in};
use super::{Posted, Session, cookie, error_page, redirect_with, same, say, see_other, set_cookie};
use crate::AppState;
use crate::extract::ClientIp;
use crate::outside::Way;

/// The sign-in under way, sealed.
const FLOW_COOKIE: &str = "tavern_sso";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/sso/{provider}", get(begin))
        .route("/auth/sso/{provider}/callback", get(callback))
        .route("/account/sso/unlink", post(unlink))
}

#[derive(Deserialize)]
struct BeginQuery {
    next: Option<String>,
    /// Link the account to the signed-in user instead of signing in.
    #[serde(default)]
    link: bool,
    /// Accept this invitation with the account.
    invite: Option<String>,
}

fn not_on() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "This Tavern does not sign in that way.",
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

/// `GET /auth/sso/{provider}[?next=PATH][&link=true][&invite=CODE]`: on to
/// the provider.
async fn begin(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(provider): Path<String>,
    Query(q): Query<BeginQuery>,
) -> Response {
    let Some(way) = s.sign_in.get(&provider) else {
        return not_on();
    };
    // An invitation used up or withdrawn says so now, not after the
    // provider.
    if let Some(code) = &q.invite
        && let Err(e) = s.tavern.invite_by_code(code).await
    {
        return super::core_error_page(e);
    }
    let sent = match way.begin().await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, %provider, "the sign-in provider cannot be used");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "{} cannot be reached just now. Try again in a minute, or sign in with your password.",
                    way.label()
                ),
            );
        }
    };
    let next = safe_next(q.next.as_deref());
    let (mode, invite) = match (&q.invite, q.link) {
        (Some(code), _) => ("invite", code.as_str()),
        (None, true) => ("link", ""),
        (None, false) => ("sign-in", ""),
    };
    let sealed = match s.tavern.seal_sign_in_flow(&[
        &sent.state,
        &sent.nonce,
        &sent.verifier,
        &next,
        mode,
        &provider,
        invite,
    ]) {
        Ok(v) => v,
        Err(e) => return super::core_error_page(e),
    };
    let mut r = see_other(&sent.url);
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

/// `GET /auth/sso/{provider}/callback?code=…&state=…`: back from the
/// provider.
async fn callback(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    session: Option<Session>,
    Path(provider): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let mut r = match s.sign_in.get(&provider) {
        Some(way) => finish(&s, way, &provider, ip, &headers, session, q).await,
        None => not_on(),
    };
    // Spent either way.
    if let Some(v) = flow_cookie(&s, &headers, "", 0) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// The sealed flow's fields.
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
    mode: String,
    invite: String,
}

/// This browser's sign-in under way with `provider`, if any.
fn flow(s: &AppState, headers: &HeaderMap, provider: &str) -> Option<Flow> {
    let fields = s.tavern.open_sign_in_flow(cookie(headers, FLOW_COOKIE)?)?;
    let [state, nonce, verifier, next, mode, for_provider, invite] =
        <[String; 7]>::try_from(fields).ok()?;
    (for_provider == provider).then_some(Flow {
        state,
        nonce,
        verifier,
        next,
        mode,
        invite,
    })
}

async fn finish(
    s: &AppState,
    way: Way<'_>,
    provider: &str,
    ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    session: Option<Session>,
    q: CallbackQuery,
) -> Response {
    let Some(flow) = flow(s, headers, provider) else {
        return error_page(
            StatusCode::FORBIDDEN,
            "This sign-in was finished already, took too long, or was started in another browser. \
             Start again from the sign-in page.",
        );
    };
    if q.state.is_empty() || !same(&q.state, &flow.state) {
        tracing::warn!(
            ?ip,
            %provider,
            "outside sign-in: the state does not match this browser's"
        );
        return error_page(
            StatusCode::FORBIDDEN,
            "This sign-in is not the one this browser started. Start again from the sign-in page.",
        );
    }
    let invite_page = format!(
        "/auth/invite/{}",
        form_urlencoded::byte_serialize(flow.invite.as_bytes()).collect::<String>()
    );
    let back = match flow.mode.as_str() {
        "link" => "/account",
        "invite" => &invite_page,
        _ => "/auth/login",
    };
    let label = way.label();
    if let Some(error) = q.error {
        tracing::info!(%error, %provider, "outside sign-in refused at the provider");
        return redirect_with(
            s,
            headers,
            back,
            Err(format!("{label} did not sign you in.")),
        );
    }
    let account = match way.finish(&q.code, &flow.verifier, &flow.nonce).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, ?ip, %provider, "outside sign-in refused");
            return redirect_with(
                s,
                headers,
                back,
                Err(format!(
                    "The answer from {label} could not be used, so nobody was signed in. Try again in a minute."
                )),
            );
        }
    };
    match flow.mode.as_str() {
        "link" => {
            let Some(session) = session else {
                return see_other("/auth/login?next=%2Faccount");
            };
            let done = s
                .tavern
                .link_outside(&session.caller, &account)
                .await
                .map(|()| format!("Your {label} account is linked: it signs you in here now."))
                .map_err(say);
            redirect_with(s, headers, "/account", done)
        }
        "invite" => match s
            .tavern
            .accept_invite_outside(&flow.invite, &account, way.policy())
            .await
        {
            Ok((token, _)) => signed_in(s, headers, "/dashboard/welcome", &token),
            Err(e @ tavern_core::CoreError::NotFound { .. }) => super::core_error_page(e),
            Err(e) => redirect_with(s, headers, back, Err(say(e))),
        },
        _ => match s.tavern.sign_in_outside(&account, way.policy(), ip).await {
            Ok((token, _)) => signed_in(s, headers, &flow.next, &token),
            Err(e) => redirect_with(s, headers, "/auth/login", Err(say(e))),
        },
    }
}

#[derive(Deserialize)]
struct UnlinkForm {
    /// `oidc` or `discord`.
    provider: String,
}

/// `POST /account/sso/unlink`: the caller's account of the provider no
/// longer signs them in.
async fn unlink(
    State(s): State<AppState>,
    headers: HeaderMap,
    posted: Posted<UnlinkForm>,
) -> Response {
    let done = s
        .tavern
        .unlink_outside(&posted.session.caller, None, &posted.form.provider)
        .await
        .map(|()| "The account is unlinked.".to_owned())
        .map_err(say);
    redirect_with(&s, &headers, "/account", done)
}
