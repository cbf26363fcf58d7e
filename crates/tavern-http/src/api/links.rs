//! Outside accounts linked to users (made by signing in with them): one's
//! own listed and unlinked, anyone's unlinked by an admin.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tavern_api::*;

use super::ApiResult;
use crate::AppState;
use crate::extract::Authed;

/// The caller's linked outside accounts.
#[utoipa::path(get, path = "/api/v1/auth/links", extensions(("x-tavern-access" = json!("user"))),
    responses((status = 200, body = [AccountLinkJson]), (status = 401, body = ErrorBody)))]
pub(super) async fn list_links(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<AccountLinkJson>>> {
    let links = s.tavern.outside_accounts(&caller).await?;
    Ok(Json(
        links
            .into_iter()
            .map(|l| AccountLinkJson {
                provider: l.provider,
                subject: l.subject,
                linked_at: l.linked_at.map(|t| t.to_string()),
            })
            .collect(),
    ))
}

/// Unlinks the caller's account of a provider: it no longer signs them in.
#[utoipa::path(delete, path = "/api/v1/auth/links/{provider}", extensions(("x-tavern-access" = json!("user"))),
    params(("provider" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn unlink_account(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(provider): Path<String>,
) -> ApiResult<StatusCode> {
    s.tavern.unlink_outside(&caller, None, &provider).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unlinks a user's account of a provider (admins only).
#[utoipa::path(delete, path = "/api/v1/users/{username}/links/{provider}", extensions(("x-tavern-access" = json!("admin"))),
    params(("username" = String, Path), ("provider" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn unlink_users_account(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path((username, provider)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.tavern
        .unlink_outside(&caller, Some(&username), &provider)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
