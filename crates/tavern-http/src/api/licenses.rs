//! The license pool.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tavern_api::*;
use tavern_core::NewLicense;

use super::{ApiResult, accepted};
use crate::AppState;
use crate::extract::{ApiJson, Authed};

/// Adds a Foundry license key (admins only). The key is never shown again.
#[utoipa::path(post, path = "/api/v1/licenses", extensions(("x-tavern-access" = json!("admin"))), request_body = CreateLicenseRequest,
    responses((status = 201, body = LicenseJson), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn add_license(
    State(s): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<CreateLicenseRequest>,
) -> ApiResult<(StatusCode, Json<LicenseJson>)> {
    let view = s
        .tavern
        .add_license(
            &caller,
            NewLicense {
                label: req.label,
                key: req.key,
                owner: req.owner,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view.into())))
}

/// Licenses: all for an admin; the pool and one's own for a game master.
#[utoipa::path(get, path = "/api/v1/licenses", extensions(("x-tavern-access" = json!("user"))), responses((status = 200, body = [LicenseJson])))]
pub(super) async fn list_licenses(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<LicenseJson>>> {
    let views = s.tavern.list_licenses(&caller).await?;
    Ok(Json(views.into_iter().map(LicenseJson::from).collect()))
}

/// Renames a license key, or pins it to a game master (null: back to the
/// pool); admins only. Pinning is refused while another's world uses it.
#[utoipa::path(patch, path = "/api/v1/licenses/{id}", extensions(("x-tavern-access" = json!("admin"))), params(("id" = String, Path)),
    request_body = UpdateLicenseRequest,
    responses((status = 200, body = LicenseJson), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn update_license(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateLicenseRequest>,
) -> ApiResult<Json<LicenseJson>> {
    let view = s
        .tavern
        .update_license(&caller, &id, req.label, req.owner)
        .await?;
    Ok(Json(view.into()))
}

/// Removes a license (admins only); refused while an instance uses it.
#[utoipa::path(delete, path = "/api/v1/licenses/{id}", extensions(("x-tavern-access" = json!("admin"))), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn remove_license(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.tavern.remove_license(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Switchover: the world now on this key stops (refused while players are
/// connected, unless `force`), then `instance` starts with the key.
#[utoipa::path(post, path = "/api/v1/licenses/{id}/activate", extensions(("x-tavern-access" = json!("owner"))), params(("id" = String, Path)),
    request_body = ActivateLicenseRequest,
    responses((status = 202, body = InstanceJson), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn activate_license(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ActivateLicenseRequest>,
) -> ApiResult<(StatusCode, Json<InstanceJson>)> {
    let view = s
        .tavern
        .activate_license(&caller, &id, &req.instance, req.force)
        .await?;
    Ok(accepted(view))
}
