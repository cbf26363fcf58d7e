//! Plain pages for people who follow a link in a browser: an invitation's
//! address says what it offers and how to accept it. (The dashboard will
//! take these over.)

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::AppState;

/// `GET /auth/invite/{code}`: what the invitation offers and the command that
/// accepts it; 404 once it is used up, expired or withdrawn.
pub(crate) async fn invite(
    State(s): State<AppState>,
    Path(code): Path<String>,
) -> impl IntoResponse {
    let text = |status, body: String| {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
    };
    match s.tavern.invite_by_code(&code).await {
        Ok(invite) => text(
            StatusCode::OK,
            format!(
                "You are invited to Tavern as {} (until {}).\n\n\
                 To accept, install the tavern command and run, with this page's address:\n\n    \
                 tavern invite accept <this address>\n\n\
                 It asks for a username and a password, signs you in, and helps you create your first world.\n",
                if invite.role == tavern_types::Role::Admin {
                    "an admin"
                } else {
                    "a game master"
                },
                invite.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
            ),
        ),
        Err(tavern_core::CoreError::NotFound { .. }) => text(
            StatusCode::NOT_FOUND,
            "This invitation is used up, has expired or was withdrawn. Ask your community's admin for a new one.\n"
                .into(),
        ),
        Err(e) => {
            let e = crate::ApiError::from(e);
            text(e.status, format!("{}\n", e.message))
        }
    }
}
