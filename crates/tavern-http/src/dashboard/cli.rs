//! `tavern login --sso` in the browser: the signed-in person approves (or
//! refuses) signing the command-line client in, and is sent on to the
//! client's loopback address with a code only that client can redeem.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use tavern_core::cli_sign_in::{is_challenge, is_state};

use super::{Chrome, Posted, Session, render, see_other};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/auth/cli", get(page).post(decide))
}

/// What the client put in the address it printed.
#[derive(Deserialize)]
struct Client {
    #[serde(default)]
    port: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    challenge: String,
}

impl Client {
    /// The client's loopback port, if the rest is well-formed too.
    fn port(&self) -> Option<u16> {
        let port = self.port.parse::<u16>().ok().filter(|p| *p != 0)?;
        (is_state(&self.state) && is_challenge(&self.challenge)).then_some(port)
    }
}

const NOT_FROM_THE_CLIENT: &str = "This address is not one that `tavern login --sso` printed: \
     run it again and open the address it prints.";

#[derive(Template)]
#[template(path = "cli.html")]
struct ApprovePage {
    chrome: Chrome,
    port: u16,
    state: String,
    challenge: String,
}

/// `GET /auth/cli?port=P&state=S&challenge=C`: "Sign the command-line
/// client in as you?" (sign-in first, then back here).
async fn page(session: Session, Query(client): Query<Client>) -> Response {
    let Some(port) = client.port() else {
        return session.error_page(StatusCode::BAD_REQUEST, NOT_FROM_THE_CLIENT);
    };
    let page = ApprovePage {
        chrome: session.chrome("Sign in the command line", ""),
        port,
        state: client.state,
        challenge: client.challenge,
    };
    render(&page.chrome, &page)
}

#[derive(Deserialize)]
struct Decision {
    #[serde(flatten)]
    client: Client,
    /// `approve`, else refused.
    #[serde(default)]
    decision: String,
}

/// `POST /auth/cli`: on to the client's loopback address, with a code for
/// it or with `error=access_denied`.
async fn decide(State(s): State<AppState>, posted: Posted<Decision>) -> Response {
    let Posted { session, form } = posted;
    let Some(port) = form.client.port() else {
        return session.error_page(StatusCode::BAD_REQUEST, NOT_FROM_THE_CLIENT);
    };
    let state = &form.client.state;
    let answer = if form.decision == "approve" {
        match s.tavern.cli_code(&session.caller, &form.client.challenge) {
            Ok(code) => format!("code={code}"),
            Err(e) => return session.core_error(e),
        }
    } else {
        "error=access_denied".to_owned()
    };
    see_other(&format!(
        "http://127.0.0.1:{port}/callback?{answer}&state={state}"
    ))
}
