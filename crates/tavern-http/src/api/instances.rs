//! Worlds: creating, changing, starting, stopping and destroying them, their
//! logs and their manifests.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tavern_api::*;
use tavern_core::{InstanceUpdate, NewInstance};
use tavern_types::DesiredState;
use utoipa::IntoParams;

use super::{ApiResult, accepted, in_range};
use crate::AppState;
use crate::extract::{ApiJson, ApiQuery, Authed};

/// Creates an instance (stopped).
#[utoipa::path(post, path = "/api/v1/instances", extensions(("x-tavern-access" = json!("user"))), request_body = CreateInstanceRequest,
    responses((status = 201, body = InstanceJson), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn create_instance(
    State(s): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<CreateInstanceRequest>,
) -> ApiResult<(StatusCode, Json<InstanceJson>)> {
    let view = s
        .tavern
        .create_instance(
            &caller,
            NewInstance {
                slug: req.slug,
                owner: req.owner,
                release: req.release,
                license: req.license,
                runtime: req.runtime,
                idle_timeout_minutes: req.idle_timeout_minutes,
                wake_on_visit: req.wake_on_visit,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

/// Instances the caller may see.
#[utoipa::path(get, path = "/api/v1/instances", extensions(("x-tavern-access" = json!("user"))), responses((status = 200, body = [InstanceJson])))]
pub(super) async fn list_instances(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<InstanceJson>>> {
    let views = s.tavern.list_instances(&caller).await?;
    Ok(Json(views.into_iter().map(InstanceJson::from).collect()))
}

/// One instance.
#[utoipa::path(get, path = "/api/v1/instances/{slug}", extensions(("x-tavern-access" = json!("owner"))), params(("slug" = String, Path)),
    responses((status = 200, body = InstanceJson), (status = 404, body = ErrorBody)))]
pub(super) async fn show_instance(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(slug): Path<String>,
) -> ApiResult<Json<InstanceJson>> {
    Ok(Json(s.tavern.get_instance(&caller, &slug).await?.into()))
}

/// Changes an instance's idle timeout or who wakes it by visiting.
#[utoipa::path(patch, path = "/api/v1/instances/{slug}", extensions(("x-tavern-access" = json!("owner"))), params(("slug" = String, Path)),
    request_body = UpdateInstanceRequest,
    responses((status = 200, body = InstanceJson), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn update_instance(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(slug): Path<String>,
    ApiJson(req): ApiJson<UpdateInstanceRequest>,
) -> ApiResult<Json<InstanceJson>> {
    let view = s
        .tavern
        .update_instance(
            &caller,
            &slug,
            InstanceUpdate {
                idle_timeout_minutes: req.idle_timeout_minutes,
                wake_on_visit: req.wake_on_visit,
                release: req.release,
                runtime: req.runtime,
                force: req.force,
            },
        )
        .await?;
    Ok(Json(view.into()))
}

/// Destroys an instance: its server stops, its data is archived, then it is gone.
#[utoipa::path(delete, path = "/api/v1/instances/{slug}", extensions(("x-tavern-access" = json!("owner"))), params(("slug" = String, Path)),
    responses((status = 202, body = InstanceJson), (status = 404, body = ErrorBody)))]
pub(super) async fn destroy_instance(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(slug): Path<String>,
) -> ApiResult<(StatusCode, Json<InstanceJson>)> {
    let view = s.tavern.destroy_instance(&caller, &slug).await?;
    Ok(accepted(view))
}

/// Asks for an instance to run; the state goes starting, then running.
#[utoipa::path(post, path = "/api/v1/instances/{slug}/start", extensions(("x-tavern-access" = json!("owner"))), params(("slug" = String, Path)),
    responses((status = 202, body = InstanceJson), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn start_instance(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(slug): Path<String>,
) -> ApiResult<(StatusCode, Json<InstanceJson>)> {
    let view = s
        .tavern
        .set_desired(&caller, &slug, DesiredState::Running)
        .await?;
    Ok(accepted(view))
}

/// Asks for an instance to stop; the state goes stopping, then stopped.
#[utoipa::path(post, path = "/api/v1/instances/{slug}/stop", extensions(("x-tavern-access" = json!("owner"))), params(("slug" = String, Path)),
    responses((status = 202, body = InstanceJson), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn stop_instance(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(slug): Path<String>,
) -> ApiResult<(StatusCode, Json<InstanceJson>)> {
    let view = s
        .tavern
        .set_desired(&caller, &slug, DesiredState::Stopped)
        .await?;
    Ok(accepted(view))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct LogsQuery {
    /// How many of the last lines (default 200, at most 10 000).
    #[param(minimum = 1, maximum = 10000)]
    tail: Option<usize>,
}

/// The last lines of the world's server output.
#[utoipa::path(get, path = "/api/v1/instances/{slug}/logs", extensions(("x-tavern-access" = json!("owner"))), params(("slug" = String, Path), LogsQuery),
    responses((status = 200, body = LogsJson), (status = 404, body = ErrorBody)))]
pub(super) async fn instance_logs(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(slug): Path<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> ApiResult<Json<LogsJson>> {
    let lines = s
        .tavern
        .instance_logs(&caller, &slug, in_range("tail", q.tail, 200, (1, 10_000))?)
        .await?;
    Ok(Json(LogsJson { lines }))
}

/// The Kubernetes objects of a world, as YAML (admins; worlds on the
/// kubernetes runtime). The Secret is shown without its data.
#[utoipa::path(get, path = "/api/v1/instances/{slug}/manifests", extensions(("x-tavern-access" = json!("admin"))), params(("slug" = String, Path)),
    responses((status = 200, body = String, content_type = "application/yaml"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn instance_manifests(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(slug): Path<String>,
) -> ApiResult<([(axum::http::header::HeaderName, &'static str); 1], String)> {
    let yaml = s.tavern.world_manifests(&caller, &slug).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/yaml")],
        yaml,
    ))
}
