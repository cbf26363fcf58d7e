//! Invitations, and accepting one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tavern_api::*;

use super::ApiResult;
use crate::AppState;
use crate::extract::{ApiJson, Authed};

/// Invites someone to make an account (admins only); the answer holds the
/// code and the address to give them, this once.
#[utoipa::path(post, path = "/api/v1/invites", extensions(("x-tavern-access" = json!("admin"))), request_body = CreateInviteRequest,
    responses((status = 201, body = InviteJson), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn create_invite(
    State(s): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<CreateInviteRequest>,
) -> ApiResult<(StatusCode, Json<InviteJson>)> {
    let view = s
        .tavern
        .create_invite(
            &caller,
            tavern_core::NewInvite {
                role: req.role,
                tier: req.tier,
                uses: req.uses,
                expires_in_hours: req.expires_in_hours,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

/// Every invitation, spent ones too, without their codes (admins only).
#[utoipa::path(get, path = "/api/v1/invites", extensions(("x-tavern-access" = json!("admin"))),
    responses((status = 200, body = [InviteJson]), (status = 403, body = ErrorBody)))]
pub(super) async fn list_invites(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<InviteJson>>> {
    let list = s.tavern.list_invites(&caller).await?;
    Ok(Json(list.into_iter().map(InviteJson::from).collect()))
}

/// Withdraws an invitation, by its id (admins only).
#[utoipa::path(delete, path = "/api/v1/invites/{id}", extensions(("x-tavern-access" = json!("admin"))), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn revoke_invite(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.tavern.revoke_invite(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates the invitee's account and signs them in; no token needed, the
/// code is the proof. Not found once the invitation is used up, expired
/// or withdrawn.
#[utoipa::path(post, path = "/api/v1/invites/{code}/accept", extensions(("x-tavern-access" = json!("public"))), params(("code" = String, Path)),
    security(()), request_body = AcceptInviteRequest,
    responses((status = 201, body = LoginResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn accept_invite(
    State(s): State<AppState>,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<AcceptInviteRequest>,
) -> ApiResult<(StatusCode, Json<LoginResponse>)> {
    let (token, user) = s
        .tavern
        .accept_invite(&code, &req.username, &req.password)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(LoginResponse {
            token,
            user: (&user).into(),
        }),
    ))
}
