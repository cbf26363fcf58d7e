//! Backups: taking, listing, locking, deleting, downloading and restoring.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tavern_api::*;
use utoipa::{IntoParams, ToSchema};

use super::ApiResult;
use crate::extract::{ApiJson, ApiQuery, Authed};
use crate::{ApiError, AppState};

/// Backs a world up now (a `live` copy when it runs); the backup is
/// `in_progress` until it is complete or failed.
#[utoipa::path(post, path = "/api/v1/instances/{slug}/backups", extensions(("x-tavern-access" = json!("owner"))), params(("slug" = String, Path)),
    responses((status = 202, body = BackupJson), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn create_backup(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(slug): Path<String>,
) -> ApiResult<(StatusCode, Json<BackupJson>)> {
    let view = s.tavern.request_backup(&caller, &slug).await?;
    Ok((StatusCode::ACCEPTED, Json(view.into())))
}

/// Starts moving every `.tar.zst` backup into its world's repository
/// (with `backups.format = "repository"`): each checked, taken as a
/// snapshot with its own time and tags, then its archive removed.
#[utoipa::path(post, path = "/api/v1/admin/backup-migration", extensions(("x-tavern-access" = json!("admin"))),
    responses((status = 202, body = MigrationJson), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn start_migration(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<(StatusCode, Json<MigrationJson>)> {
    let m = s.tavern.migrate_backups(&caller).await?;
    Ok((StatusCode::ACCEPTED, Json(m.into())))
}

/// How the latest move of backups into repositories goes.
#[utoipa::path(get, path = "/api/v1/admin/backup-migration", extensions(("x-tavern-access" = json!("admin"))),
    responses((status = 200, body = MigrationJson), (status = 403, body = ErrorBody)))]
pub(super) async fn show_migration(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<MigrationJson>> {
    Ok(Json(s.tavern.backup_migration(&caller)?.into()))
}

/// A world's backups, newest first.
#[utoipa::path(get, path = "/api/v1/instances/{slug}/backups", extensions(("x-tavern-access" = json!("owner"))), params(("slug" = String, Path)),
    responses((status = 200, body = Vec<BackupJson>), (status = 404, body = ErrorBody)))]
pub(super) async fn list_instance_backups(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(slug): Path<String>,
) -> ApiResult<Json<Vec<BackupJson>>> {
    let views = s.tavern.list_backups(&caller, Some(&slug)).await?;
    Ok(Json(views.into_iter().map(Into::into).collect()))
}

/// Every backup the caller may see (an admin all, a game master their own),
/// newest first.
#[utoipa::path(get, path = "/api/v1/backups", extensions(("x-tavern-access" = json!("user"))), responses((status = 200, body = Vec<BackupJson>)))]
pub(super) async fn list_backups(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<BackupJson>>> {
    let views = s.tavern.list_backups(&caller, None).await?;
    Ok(Json(views.into_iter().map(Into::into).collect()))
}

#[utoipa::path(get, path = "/api/v1/backups/{id}", extensions(("x-tavern-access" = json!("owner"))), params(("id" = String, Path)),
    responses((status = 200, body = BackupJson), (status = 404, body = ErrorBody)))]
pub(super) async fn show_backup(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<BackupJson>> {
    Ok(Json(s.tavern.get_backup(&caller, &id).await?.into()))
}

/// Locks a backup against retention, or unlocks it.
#[utoipa::path(patch, path = "/api/v1/backups/{id}", extensions(("x-tavern-access" = json!("owner"))), params(("id" = String, Path)), request_body = BackupUpdate,
    responses((status = 200, body = BackupJson), (status = 404, body = ErrorBody)))]
pub(super) async fn update_backup(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<BackupUpdate>,
) -> ApiResult<Json<BackupJson>> {
    Ok(Json(
        s.tavern.lock_backup(&caller, &id, req.locked).await?.into(),
    ))
}

/// Deletes a backup and its archive.
#[utoipa::path(delete, path = "/api/v1/backups/{id}", extensions(("x-tavern-access" = json!("owner"))), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn delete_backup(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.tavern.delete_backup(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How a backup is downloaded.
#[derive(Deserialize, ToSchema, Clone, Copy, Default)]
pub(crate) enum Format {
    /// Tavern's archive: tar + zstd, the world's files under `data/`.
    #[default]
    #[serde(rename = "tar.zst")]
    TarZst,
    /// A zip of `Data/` and `Backups/`, which a plain Foundry install or
    /// felddy takes as its user-data folder as it is.
    #[serde(rename = "zip")]
    Zip,
}

impl From<Format> for tavern_core::DownloadFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::TarZst => Self::TarZst,
            Format::Zip => Self::Zip,
        }
    }
}

/// The dashboard's download's query.
#[derive(Deserialize)]
pub(crate) struct FormatQuery {
    #[serde(default)]
    pub(crate) format: Format,
    /// With the library's packages the world used.
    #[serde(default)]
    pub(crate) packages: bool,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DownloadQuery {
    /// A signed link's token, in place of a bearer token.
    token: Option<String>,
    /// `tar.zst` (Tavern's archive, the default) or `zip` (a zip of
    /// `Data/` a plain Foundry takes as it is).
    #[serde(default)]
    #[param(inline)]
    format: Format,
    /// Admins only: put the world's `license.json` and `admin.txt` (as
    /// Tavern would write them now) into the archive.
    #[serde(default)]
    secrets: bool,
    /// Put the library's packages the world used (its game system,
    /// modules) in `Data/systems|modules/<id>`, for use elsewhere; a
    /// version the library no longer has is left out.
    #[serde(default)]
    packages: bool,
}

/// Streams a complete backup's archive (tar + zstd; or with `format=zip`, a
/// zip of its `Data/` and `Backups/` that a plain Foundry install or felddy
/// takes as its user-data folder), without the files
/// Tavern writes from its secrets (`Config/license.json`,
/// `Config/admin.txt`) unless an admin asks for them, and with the
/// library's packages the world used when asked (`packages=true`): with a
/// bearer token, or with a signed link's `token`.
#[utoipa::path(get, path = "/api/v1/backups/{id}/download", extensions(("x-tavern-access" = json!("owner"))), params(("id" = String, Path), DownloadQuery),
    security(("bearer" = []), ()),
    responses((status = 200, content(("application/zstd"), ("application/zip"))), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn download_backup(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DownloadQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult<axum::response::Response> {
    let download = match (q.token, q.secrets) {
        (Some(_), true) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "a download link never carries a world's secrets; download as an admin",
            ));
        }
        (Some(token), false) => {
            s.tavern
                .open_backup_by_link(&id, &token, q.packages, q.format.into())
                .await?
        }
        (None, secrets) => {
            let caller = crate::extract::caller_from(&headers, &s).await?;
            s.tavern
                .open_backup(&caller, &id, secrets, q.packages, q.format.into())
                .await?
        }
    };
    archive_download(download)
}

/// A backup's archive as the answer: streamed as it is written, with a
/// file name (the API's download and the dashboard's).
pub(crate) fn archive_download(
    download: tavern_core::BackupDownload,
) -> ApiResult<axum::response::Response> {
    axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, download.content_type())
        .header(
            axum::http::header::CONTENT_DISPOSITION,
            download.disposition(),
        )
        .body(axum::body::Body::from_stream(download.stream))
        .map_err(|e| ApiError::from(tavern_core::CoreError::internal("answer a download", e)))
}

/// A link that downloads the backup without a token, for a few minutes.
#[utoipa::path(post, path = "/api/v1/backups/{id}/link", extensions(("x-tavern-access" = json!("owner"))), params(("id" = String, Path)),
    responses((status = 200, body = LinkJson), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn backup_link(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<LinkJson>> {
    let (token, expires) = s.tavern.backup_link(&caller, &id).await?;
    Ok(Json(LinkJson {
        url: format!("/api/v1/backups/{id}/download?token={token}"),
        expires_at: expires.to_string(),
    }))
}

/// Restores a backup, into its own world or (with `to`) a new one; the
/// backup's `restore` tells how it goes.
#[utoipa::path(post, path = "/api/v1/backups/{id}/restore", extensions(("x-tavern-access" = json!("owner"))), params(("id" = String, Path)), request_body = RestoreRequest,
    responses((status = 202, body = BackupJson), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn restore_backup(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RestoreRequest>,
) -> ApiResult<(StatusCode, Json<BackupJson>)> {
    let view = s
        .tavern
        .restore_backup(&caller, &id, req.to.as_deref())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(view.into())))
}
