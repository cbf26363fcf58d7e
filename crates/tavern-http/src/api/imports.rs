//! Imports into a world from other Foundry hosts: an archive sent as the
//! body, or (admins) a folder or archive on the server named in JSON.

use axum::Json;
use axum::extract::{FromRequest as _, Path, Request, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tavern_api::*;
use tavern_core::{IMPORT_LIMITS, ImportRequest, ImportSource};
use utoipa::IntoParams;

use super::ApiResult;
use crate::extract::{ApiJson, ApiQuery, Authed};
use crate::{ApiError, AppState};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ImportQuery {
    /// Only say what would be taken and what would happen; change nothing.
    #[serde(default)]
    check: bool,
    /// For a new world: the Foundry release it runs (else the newest
    /// installed).
    release: Option<String>,
    /// For a new world: whose it is (admins; else the caller's).
    owner: Option<String>,
}

/// The archive types an import takes as its body.
const ARCHIVES: [&str; 6] = [
    "application/octet-stream",
    "application/zip",
    "application/x-tar",
    "application/gzip",
    "application/x-gzip",
    "application/zstd",
];

/// Imports into the world `slug` (made for it when there is none): a
/// Foundry user-data folder (its `Data/`; not its `Config/`, `Logs/` or
/// felddy's cache) or one world (placed at `Data/worlds/<id>/`), sent as a
/// zip, tar, tar.gz or tar.zst (at most 200 GiB), or, for admins, a folder
/// or archive on the server named by `path`. What it holds is read and
/// checked before anything changes; an existing world is stopped and
/// backed up first, and started again if it ran. With `check`, only says
/// what would happen.
#[utoipa::path(post, path = "/api/v1/instances/{slug}/import", extensions(("x-tavern-access" = json!("owner"))),
    params(("slug" = String, Path), ImportQuery),
    request_body(description = "the archive (zip, tar, tar.gz or tar.zst; its type is told by its first bytes), or a path on the server as JSON (admins)",
        content((Vec<u8> = "application/octet-stream"), (Vec<u8> = "application/zip"), (Vec<u8> = "application/x-tar"),
            (Vec<u8> = "application/gzip"), (Vec<u8> = "application/zstd"), (ImportPathRequest = "application/json"))),
    responses((status = 200, body = ImportJson, description = "checked, or imported into an existing world"),
        (status = 201, body = ImportJson, description = "imported into a new world"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 501, body = ErrorBody)))]
pub(super) async fn import_world(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(slug): Path<String>,
    ApiQuery(q): ApiQuery<ImportQuery>,
    req: Request,
) -> ApiResult<(StatusCode, Json<ImportJson>)> {
    let content_type = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .unwrap_or_default();
    // Refused before an upload is taken in.
    s.tavern.check_import_target(&caller, &slug).await?;
    let source = if content_type == "application/json" {
        let ApiJson(body) = ApiJson::<ImportPathRequest>::from_request(req, &s).await?;
        ImportSource::Path(body.path.into())
    } else if ARCHIVES.contains(&content_type.as_str()) {
        let declared = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > IMPORT_LIMITS.bytes) {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "an import may be at most 200 GiB",
            ));
        }
        use futures_util::TryStreamExt as _;
        let body = tokio_util::io::StreamReader::new(
            req.into_body()
                .into_data_stream()
                .map_err(std::io::Error::other),
        );
        s.tavern.receive_import(body).await?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the archive as the body (Content-Type: application/zip, application/x-tar, \
             application/gzip, application/zstd or application/octet-stream), or a path on \
             the server as JSON",
        ));
    };
    let report = s
        .tavern
        .import_world(
            &caller,
            &slug,
            ImportRequest {
                source,
                check_only: q.check,
                release: q.release,
                owner: q.owner,
            },
        )
        .await?;
    let status = match report.created && report.done {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    Ok((status, Json(ImportJson::from(report))))
}

/// Imports every felddy data folder below `path`, a folder on the server
/// (admins): each folder that is a Foundry user-data folder, or holds one
/// as `data/` (a docker-compose volume), into the world named after the
/// folder (made for it, or an existing one of that name). One that fails
/// does not stop the others; with `check`, says what would happen.
#[utoipa::path(post, path = "/api/v1/imports/felddy", extensions(("x-tavern-access" = json!("admin"))),
    request_body = FelddyImportRequest,
    responses((status = 200, body = [BatchImportJson]), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn import_felddy(
    State(s): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<FelddyImportRequest>,
) -> ApiResult<Json<Vec<BatchImportJson>>> {
    let items = s
        .tavern
        .import_felddy(&caller, std::path::Path::new(&req.path), req.check)
        .await?;
    Ok(Json(
        items
            .into_iter()
            .map(|item| {
                let (import, error) = match item.result {
                    Ok(report) => (Some(ImportJson::from(report)), None),
                    Err(e) => {
                        let e = ApiError::from(e);
                        let detail = ErrorDetail {
                            code: e.code.to_owned(),
                            message: e.message,
                        };
                        (None, Some(detail))
                    }
                };
                BatchImportJson {
                    from: item.from.display().to_string(),
                    world: item.world,
                    import,
                    error,
                }
            })
            .collect(),
    ))
}
