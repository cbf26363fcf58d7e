//! Scheduled sessions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tavern_api::*;
use tavern_core::NewSession;

use super::ApiResult;
use crate::AppState;
use crate::extract::{ApiJson, Authed};

/// Books a session: reserves a license key for its window; the world starts
/// by itself shortly before.
#[utoipa::path(post, path = "/api/v1/sessions", extensions(("x-tavern-access" = json!("owner"))), request_body = CreateSessionRequest,
    responses((status = 201, body = SessionJson), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn create_session(
    State(s): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<CreateSessionRequest>,
) -> ApiResult<(StatusCode, Json<SessionJson>)> {
    let view = s
        .tavern
        .schedule_session(
            &caller,
            NewSession {
                instance: req.instance,
                start: req.start,
                duration_minutes: req.duration_minutes,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

/// Sessions to come and under way: all for an admin, one's own for a game
/// master.
#[utoipa::path(get, path = "/api/v1/sessions", extensions(("x-tavern-access" = json!("user"))), responses((status = 200, body = [SessionJson])))]
pub(super) async fn list_sessions(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<SessionJson>>> {
    let views = s.tavern.list_sessions(&caller).await?;
    Ok(Json(views.into_iter().map(SessionJson::from).collect()))
}

/// Cancels a session and frees its key's window.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", extensions(("x-tavern-access" = json!("owner"))), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(super) async fn cancel_session(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.tavern.cancel_session(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
