//! The signed-in user's own account: their second factor (set up with a
//! QR code, recovery codes shown once, turned off with a code), and the
//! outside accounts linked to it.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::header::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use tavern_core::SecondFactor;

use super::auth::refusal;
use super::{Chrome, NoFields, Posted, Session, redirect_with, render};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/account", get(account))
        .route("/account/second-factor", post(begin))
        .route("/account/second-factor/confirm", post(confirm))
        .route(
            "/account/second-factor/recovery-codes",
            post(recovery_codes),
        )
        .route("/account/second-factor/remove", post(remove))
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    chrome: Chrome,
    factor: SecondFactor,
    /// The outside accounts this Tavern signs in with, and whether the
    /// caller has one of each linked.
    links: Vec<LinkRow>,
}

struct LinkRow {
    provider: String,
    label: String,
    linked: bool,
}

async fn account(State(s): State<AppState>, session: Session) -> Response {
    let found = async {
        let factor = s.tavern.second_factor(&session.caller).await?;
        let linked = s.tavern.outside_accounts(&session.caller).await?;
        Ok::<_, tavern_core::CoreError>((factor, linked))
    };
    match found.await {
        Ok((factor, linked)) => {
            let page = AccountPage {
                chrome: session.chrome("Your account", "account"),
                factor,
                links: s
                    .sign_in
                    .offered()
                    .into_iter()
                    .map(|(provider, label)| LinkRow {
                        linked: linked.iter().any(|i| i.provider == provider),
                        provider,
                        label,
                    })
                    .collect(),
            };
            render(&page.chrome, &page)
        }
        Err(e) => super::core_error_page(e),
    }
}

#[derive(Template)]
#[template(path = "account_enrol.html")]
struct EnrolPage {
    chrome: Chrome,
    qr: String,
    secret: String,
}

/// The QR code of `text`, as an inline SVG element.
fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(220, 220)
                .build();
            // Inline in the page: without the XML declaration.
            match svg.find("<svg") {
                Some(at) => svg[at..].to_owned(),
                None => svg,
            }
        }
        Err(_) => String::new(),
    }
}

async fn begin(
    State(s): State<AppState>,
    headers: HeaderMap,
    posted: Posted<NoFields>,
) -> Response {
    let session = posted.session;
    match s.tavern.begin_totp(&session.caller).await {
        Ok(e) => {
            let page = EnrolPage {
                chrome: session.chrome("Set up a second factor", "account"),
                qr: qr_svg(&e.otpauth_url),
                secret: e.secret,
            };
            render(&page.chrome, &page)
        }
        Err(e) => redirect_with(&s, &headers, "/account", Err(refusal(e))),
    }
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
}

#[derive(Template)]
#[template(path = "account_codes.html")]
struct CodesPage {
    chrome: Chrome,
    codes: Vec<String>,
}

/// The recovery codes a change of the factor gave, shown this once; or
/// back to the account page with why there are none.
fn codes_page(
    s: &AppState,
    headers: &HeaderMap,
    session: &Session,
    codes: Result<Vec<String>, tavern_core::CoreError>,
) -> Response {
    match codes {
        Ok(codes) => {
            let page = CodesPage {
                chrome: session.chrome("Your recovery codes", "account"),
                codes,
            };
            render(&page.chrome, &page)
        }
        Err(e) => redirect_with(s, headers, "/account", Err(refusal(e))),
    }
}

async fn confirm(
    State(s): State<AppState>,
    headers: HeaderMap,
    posted: Posted<CodeForm>,
) -> Response {
    let codes = s
        .tavern
        .confirm_totp(&posted.session.caller, &posted.form.code)
        .await;
    codes_page(&s, &headers, &posted.session, codes)
}

async fn recovery_codes(
    State(s): State<AppState>,
    headers: HeaderMap,
    posted: Posted<CodeForm>,
) -> Response {
    let codes = s
        .tavern
        .new_recovery_codes(&posted.session.caller, &posted.form.code)
        .await;
    codes_page(&s, &headers, &posted.session, codes)
}

async fn remove(
    State(s): State<AppState>,
    headers: HeaderMap,
    posted: Posted<CodeForm>,
) -> Response {
    let said = s
        .tavern
        .remove_totp(&posted.session.caller, None, Some(&posted.form.code))
        .await
        .map(|()| "Your second factor is off: your password alone signs you in.".to_owned())
        .map_err(refusal);
    redirect_with(&s, &headers, "/account", said)
}
