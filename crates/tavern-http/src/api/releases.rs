//! Foundry releases installed on the server.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use tavern_api::*;

use super::ApiResult;
use crate::extract::Authed;
use crate::{ApiError, AppState};

/// The Foundry releases this server can run, oldest first (a world made
/// without naming one gets the last).
#[utoipa::path(get, path = "/api/v1/releases", extensions(("x-tavern-access" = json!("user"))), responses((status = 200, body = [ReleaseJson])))]
pub(super) async fn list_releases(
    State(s): State<AppState>,
    Authed(_caller): Authed,
) -> ApiResult<Json<Vec<ReleaseJson>>> {
    Ok(Json(
        s.tavern
            .releases()
            .into_iter()
            .map(|r| ReleaseJson {
                version: r.version,
                layout: r.layout,
            })
            .collect(),
    ))
}

/// The largest Foundry zip an admin may upload (they are about 200 MB).
const RELEASE_LIMIT: u64 = 2 * 1024 * 1024 * 1024;

/// Installs a Foundry release (admins only): the body is Foundry's zip
/// (the Linux or the Node.js build), at most 2 GiB, sent as it is read.
#[utoipa::path(post, path = "/api/v1/releases", extensions(("x-tavern-access" = json!("admin"))),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "Foundry's zip, as application/octet-stream (or application/zip)"),
    responses((status = 201, body = ReleaseJson), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn add_release(
    State(s): State<AppState>,
    Authed(caller): Authed,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> ApiResult<(StatusCode, Json<ReleaseJson>)> {
    let zip = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            let t = t.trim();
            t.eq_ignore_ascii_case("application/zip")
                || t.eq_ignore_ascii_case("application/octet-stream")
        });
    if !zip {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Foundry's zip as the body, with Content-Type: application/zip \
             (or application/octet-stream)",
        ));
    }
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > RELEASE_LIMIT) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "a release's zip may be at most 2 GiB",
        ));
    }
    use futures_util::TryStreamExt as _;
    let reader =
        tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    let info = s
        .tavern
        .install_release(&caller, reader, RELEASE_LIMIT)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ReleaseJson {
            version: info.version,
            layout: info.layout,
        }),
    ))
}
