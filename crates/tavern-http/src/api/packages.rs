//! The package library (listing it; admins add, update and remove) and the
//! packages each world uses.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tavern_api::*;
use tavern_foundry::manifest::PackageKind;
use utoipa::IntoParams;

use super::ApiResult;
use crate::extract::{ApiJson, ApiQuery, Authed};
use crate::{ApiError, AppState};

/// Reads a kind exactly as the document gives it.
fn kind(s: Option<&str>) -> ApiResult<Option<PackageKind>> {
    match s {
        None => Ok(None),
        Some(k) => PackageKind::ALL
            .into_iter()
            .find(|p| p.as_str() == k)
            .map(Some)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_kind",
                    format!("{k:?} is not a kind of package: system, module or world"),
                )
            }),
    }
}

/// The community's library: every version, with the worlds (of yours)
/// that use it.
#[utoipa::path(get, path = "/api/v1/packages", extensions(("x-tavern-access" = json!("user"))),
    responses((status = 200, body = [LibraryPackageJson])))]
pub(super) async fn list_packages(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<LibraryPackageJson>>> {
    let library = s.tavern.library(&caller).await?;
    Ok(Json(library.into_iter().map(Into::into).collect()))
}

/// Adds a package from its manifest (admins only): the manifest is read
/// at once; the zip, and the packages it needs that the library lacks,
/// are fetched in the background (follow the answer's job).
#[utoipa::path(post, path = "/api/v1/packages", extensions(("x-tavern-access" = json!("admin"))),
    request_body = AddPackageRequest,
    responses((status = 202, body = PackageJobJson), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn add_package(
    State(s): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<AddPackageRequest>,
) -> ApiResult<(StatusCode, Json<PackageJobJson>)> {
    let kind = kind(req.kind.as_deref())?;
    let job = s
        .tavern
        .add_package(&caller, &req.manifest_url, kind, req.sha256)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

/// How a fetch into the library goes (admins only).
#[utoipa::path(get, path = "/api/v1/packages/jobs/{id}", extensions(("x-tavern-access" = json!("admin"))),
    params(("id" = String, Path, description = "the job's number, as `POST /api/v1/packages` answered it")),
    responses((status = 200, body = PackageJobJson), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn package_job(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<PackageJobJson>> {
    Ok(Json(s.tavern.package_job(&caller, &id)?.into()))
}

/// Reads the packages' manifests again and fetches newer versions that
/// load on the Foundry releases their worlds run (admins only). No world
/// changes until its game master picks the new version.
#[utoipa::path(post, path = "/api/v1/packages/update", extensions(("x-tavern-access" = json!("admin"))),
    request_body = UpdatePackagesRequest,
    responses((status = 200, body = [PackageUpdateJson]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn update_packages(
    State(s): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<UpdatePackagesRequest>,
) -> ApiResult<Json<Vec<PackageUpdateJson>>> {
    let found = s.tavern.update_packages(&caller, req.id.as_deref()).await?;
    Ok(Json(found.into_iter().map(Into::into).collect()))
}

/// Removes a version from the library (admins only); refused while a
/// world uses it.
#[utoipa::path(delete, path = "/api/v1/packages/{kind}/{id}/{version}", extensions(("x-tavern-access" = json!("admin"))),
    params(("kind" = tavern_api::shapes::PackageKind, Path), ("id" = String, Path), ("version" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn remove_package(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path((k, id, version)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let kind = kind(Some(&k))?;
    s.tavern
        .remove_package(&caller, kind, &id, &version)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The library packages a world uses, and how each fares.
#[utoipa::path(get, path = "/api/v1/instances/{slug}/packages", extensions(("x-tavern-access" = json!("owner"))),
    params(("slug" = String, Path)),
    responses((status = 200, body = [WorldPackageJson]), (status = 404, body = ErrorBody)))]
pub(super) async fn world_packages(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(slug): Path<String>,
) -> ApiResult<Json<Vec<WorldPackageJson>>> {
    let list = s.tavern.world_packages(&caller, &slug).await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

/// Chooses a package for a world, with the packages it needs; the world
/// sees it from its next start. Answers all the world's packages.
#[utoipa::path(post, path = "/api/v1/instances/{slug}/packages", extensions(("x-tavern-access" = json!("owner"))),
    params(("slug" = String, Path)), request_body = AddWorldPackageRequest,
    responses((status = 200, body = [WorldPackageJson]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn add_world_package(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(slug): Path<String>,
    ApiJson(req): ApiJson<AddWorldPackageRequest>,
) -> ApiResult<Json<Vec<WorldPackageJson>>> {
    let kind = kind(req.kind.as_deref())?;
    let list = s
        .tavern
        .add_world_package(&caller, &slug, kind, &req.id, req.version.as_deref())
        .await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct KindQuery {
    /// Needed only when the world uses a system and a module of that id.
    #[param(value_type = Option<tavern_api::shapes::PackageKind>)]
    kind: Option<String>,
}

/// Stops using a package in a world (refused while another of its
/// packages needs it); from its next start. Answers what it still uses.
#[utoipa::path(delete, path = "/api/v1/instances/{slug}/packages/{id}", extensions(("x-tavern-access" = json!("owner"))),
    params(("slug" = String, Path), ("id" = String, Path), KindQuery),
    responses((status = 200, body = [WorldPackageJson]), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn remove_world_package(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path((slug, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<KindQuery>,
) -> ApiResult<Json<Vec<WorldPackageJson>>> {
    let kind = kind(q.kind.as_deref())?;
    let list = s
        .tavern
        .remove_world_package(&caller, &slug, kind, &id)
        .await?;
    Ok(Json(list.into_iter().map(Into::into).collect()))
}
