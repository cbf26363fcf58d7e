//! The handlers of `/api/v1` and `/healthz`: each turns a request into one
//! call of the core service and its answer into JSON. No decisions here.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tavern_core::{InstanceUpdate, NewInstance, NewLicense, NewSession, NewUser};
use tavern_types::DesiredState;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{ApiJson, ApiQuery, Authed, ClientIp};
use crate::{ApiError, AppState};
use tavern_api::*;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::document())
        .routes(routes!(healthz))
        .routes(routes!(login))
        .routes(routes!(whoami))
        .routes(routes!(logout))
        .routes(routes!(create_user, list_users))
        .routes(routes!(update_user))
        .routes(routes!(create_instance, list_instances))
        .routes(routes!(show_instance, destroy_instance, update_instance))
        .routes(routes!(start_instance))
        .routes(routes!(stop_instance))
        .routes(routes!(instance_logs))
        .routes(routes!(instance_manifests))
        .routes(routes!(add_license, list_licenses))
        .routes(routes!(remove_license, update_license))
        .routes(routes!(activate_license))
        .routes(routes!(create_session, list_sessions))
        .routes(routes!(cancel_session))
        .routes(routes!(list_events))
        .routes(routes!(list_releases, add_release))
        .routes(routes!(admin_overview))
        .routes(routes!(create_backup, list_instance_backups))
        .routes(routes!(list_backups))
        .routes(routes!(show_backup, update_backup, delete_backup))
        .routes(routes!(download_backup))
        .routes(routes!(backup_link))
        .routes(routes!(restore_backup))
        .routes(routes!(usage))
        .routes(routes!(link_code))
        .routes(routes!(list_supporters))
        .routes(routes!(crate::hooks::kofi))
        .routes(routes!(create_invite, list_invites))
        .routes(routes!(revoke_invite))
        .routes(routes!(accept_invite))
        .routes(routes!(list_notifications))
        .routes(routes!(crate::hooks::discord))
}

type ApiResult<T> = Result<T, ApiError>;

/// A number from the query string, checked against the range the document
/// gives it (`default` when absent).
fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    name: &str,
    value: Option<T>,
    default: T,
    (min, max): (T, T),
) -> ApiResult<T> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("{name} must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

/// `202 Accepted` with the instance: the work goes on in the background.
fn accepted(view: tavern_core::InstanceView) -> (StatusCode, Json<InstanceJson>) {
    (StatusCode::ACCEPTED, Json(view.into()))
}

/// Liveness: answers while the server runs.
#[utoipa::path(get, path = "/healthz", extensions(("x-tavern-access" = json!("public"))), security(()), responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Exchanges a username and password for an API token.
#[utoipa::path(post, path = "/api/v1/auth/login", extensions(("x-tavern-access" = json!("public"))), security(()), request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let (token, user) = s.tavern.sign_in(&req.username, &req.password, ip).await?;
    Ok(Json(LoginResponse {
        token,
        user: (&user).into(),
    }))
}

/// The user the token belongs to.
#[utoipa::path(get, path = "/api/v1/auth/whoami", extensions(("x-tavern-access" = json!("user"))), responses((status = 200, body = UserJson), (status = 401, body = ErrorBody)))]
async fn whoami(Authed(caller): Authed) -> Json<UserJson> {
    Json((&caller.user).into())
}

/// Signs out: the token stops working at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", extensions(("x-tavern-access" = json!("user"))), responses((status = 204), (status = 401, body = ErrorBody)))]
async fn logout(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
) -> ApiResult<StatusCode> {
    let token = crate::extract::bearer(&headers)?;
    s.tavern.logout(token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates a user (admins only).
#[utoipa::path(post, path = "/api/v1/users", extensions(("x-tavern-access" = json!("admin"))), request_body = CreateUserRequest,
    responses((status = 201, body = UserJson), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_user(
    State(s): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<UserJson>)> {
    let user = s
        .tavern
        .create_user(
            &caller,
            NewUser {
                username: req.username,
                role: req.role,
                password: req.password,
                tier: req.tier,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json((&user).into())))
}

/// Users: all of them for an admin, oneself for a game master.
#[utoipa::path(get, path = "/api/v1/users", extensions(("x-tavern-access" = json!("user"))), responses((status = 200, body = [UserJson])))]
async fn list_users(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<UserJson>>> {
    let users = s.tavern.list_users(&caller).await?;
    Ok(Json(users.iter().map(UserJson::from).collect()))
}

/// Changes a user's quota tier or e-mail address (admins only), or their
/// notification webhook (themselves, or an admin); absent fields stay as
/// they are.
#[utoipa::path(patch, path = "/api/v1/users/{username}", extensions(("x-tavern-access" = json!("self"))), params(("username" = String, Path)),
    request_body = UpdateUserRequest,
    responses((status = 200, body = UserJson), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_user(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(username): Path<String>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> ApiResult<Json<UserJson>> {
    let user = s
        .tavern
        .update_user(&caller, &username, req.tier, req.email, req.webhook_url)
        .await?;
    Ok(Json((&user).into()))
}

/// Creates an instance (stopped).
#[utoipa::path(post, path = "/api/v1/instances", extensions(("x-tavern-access" = json!("user"))), request_body = CreateInstanceRequest,
    responses((status = 201, body = InstanceJson), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_instance(
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
async fn list_instances(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<InstanceJson>>> {
    let views = s.tavern.list_instances(&caller).await?;
    Ok(Json(views.into_iter().map(InstanceJson::from).collect()))
}

/// One instance.
#[utoipa::path(get, path = "/api/v1/instances/{slug}", extensions(("x-tavern-access" = json!("owner"))), params(("slug" = String, Path)),
    responses((status = 200, body = InstanceJson), (status = 404, body = ErrorBody)))]
async fn show_instance(
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
async fn update_instance(
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
            },
        )
        .await?;
    Ok(Json(view.into()))
}

/// Destroys an instance: its server stops, its data is archived, then it is gone.
#[utoipa::path(delete, path = "/api/v1/instances/{slug}", extensions(("x-tavern-access" = json!("owner"))), params(("slug" = String, Path)),
    responses((status = 202, body = InstanceJson), (status = 404, body = ErrorBody)))]
async fn destroy_instance(
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
async fn start_instance(
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
async fn stop_instance(
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

/// Adds a Foundry license key (admins only). The key is never shown again.
#[utoipa::path(post, path = "/api/v1/licenses", extensions(("x-tavern-access" = json!("admin"))), request_body = CreateLicenseRequest,
    responses((status = 201, body = LicenseJson), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_license(
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
async fn list_licenses(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<LicenseJson>>> {
    let views = s.tavern.list_licenses(&caller).await?;
    Ok(Json(views.into_iter().map(LicenseJson::from).collect()))
}

/// The Foundry releases this server can run, oldest first (a world made
/// without naming one gets the last).
#[utoipa::path(get, path = "/api/v1/releases", extensions(("x-tavern-access" = json!("user"))), responses((status = 200, body = [ReleaseJson])))]
async fn list_releases(
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

/// Renames a license key, or pins it to a game master (null: back to the
/// pool); admins only. Pinning is refused while another's world uses it.
#[utoipa::path(patch, path = "/api/v1/licenses/{id}", extensions(("x-tavern-access" = json!("admin"))), params(("id" = String, Path)),
    request_body = UpdateLicenseRequest,
    responses((status = 200, body = LicenseJson), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn update_license(
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

/// The largest Foundry zip an admin may upload (they are about 200 MB).
const RELEASE_LIMIT: u64 = 2 * 1024 * 1024 * 1024;

/// Installs a Foundry release (admins only): the body is Foundry's zip
/// (the Linux or the Node.js build), at most 2 GiB, sent as it is read.
#[utoipa::path(post, path = "/api/v1/releases", extensions(("x-tavern-access" = json!("admin"))),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "Foundry's zip, as application/octet-stream (or application/zip)"),
    responses((status = 201, body = ReleaseJson), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn add_release(
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

/// Removes a license (admins only); refused while an instance uses it.
#[utoipa::path(delete, path = "/api/v1/licenses/{id}", extensions(("x-tavern-access" = json!("admin"))), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn remove_license(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.tavern.remove_license(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// How many of the newest events (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The audit log, newest first (admins only).
#[utoipa::path(get, path = "/api/v1/events", extensions(("x-tavern-access" = json!("admin"))), params(EventsQuery),
    responses((status = 200, body = [EventJson]), (status = 403, body = ErrorBody)))]
async fn list_events(
    State(s): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Json<Vec<EventJson>>> {
    let events = s
        .tavern
        .list_events(&caller, in_range("limit", q.limit, 100, (1, 1000))?)
        .await?;
    Ok(Json(events.into_iter().map(EventJson::from).collect()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LogsQuery {
    /// How many of the last lines (default 200, at most 10 000).
    #[param(minimum = 1, maximum = 10000)]
    tail: Option<usize>,
}

/// The last lines of the world's server output.
#[utoipa::path(get, path = "/api/v1/instances/{slug}/logs", extensions(("x-tavern-access" = json!("owner"))), params(("slug" = String, Path), LogsQuery),
    responses((status = 200, body = LogsJson), (status = 404, body = ErrorBody)))]
async fn instance_logs(
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
async fn instance_manifests(
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

/// Switchover: the world now on this key stops (refused while players are
/// connected, unless `force`), then `instance` starts with the key.
#[utoipa::path(post, path = "/api/v1/licenses/{id}/activate", extensions(("x-tavern-access" = json!("owner"))), params(("id" = String, Path)),
    request_body = ActivateLicenseRequest,
    responses((status = 202, body = InstanceJson), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn activate_license(
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

/// Every key and the world on it, the worlds running and the failed ones
/// (admins only).
#[utoipa::path(get, path = "/api/v1/admin/overview", extensions(("x-tavern-access" = json!("admin"))),
    responses((status = 200, body = OverviewJson), (status = 403, body = ErrorBody)))]
async fn admin_overview(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<OverviewJson>> {
    Ok(Json(s.tavern.admin_overview(&caller).await?.into()))
}

/// Books a session: reserves a license key for its window; the world starts
/// by itself shortly before.
#[utoipa::path(post, path = "/api/v1/sessions", extensions(("x-tavern-access" = json!("owner"))), request_body = CreateSessionRequest,
    responses((status = 201, body = SessionJson), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_session(
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
async fn list_sessions(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<SessionJson>>> {
    let views = s.tavern.list_sessions(&caller).await?;
    Ok(Json(views.into_iter().map(SessionJson::from).collect()))
}

/// Cancels a session and frees its key's window.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", extensions(("x-tavern-access" = json!("owner"))), params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn cancel_session(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.tavern.cancel_session(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Backs a world up now (a `live` copy when it runs); the backup is
/// `in_progress` until it is complete or failed.
#[utoipa::path(post, path = "/api/v1/instances/{slug}/backups", extensions(("x-tavern-access" = json!("owner"))), params(("slug" = String, Path)),
    responses((status = 202, body = BackupJson), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_backup(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(slug): Path<String>,
) -> ApiResult<(StatusCode, Json<BackupJson>)> {
    let view = s.tavern.request_backup(&caller, &slug).await?;
    Ok((StatusCode::ACCEPTED, Json(view.into())))
}

/// A world's backups, newest first.
#[utoipa::path(get, path = "/api/v1/instances/{slug}/backups", extensions(("x-tavern-access" = json!("owner"))), params(("slug" = String, Path)),
    responses((status = 200, body = Vec<BackupJson>), (status = 404, body = ErrorBody)))]
async fn list_instance_backups(
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
async fn list_backups(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<BackupJson>>> {
    let views = s.tavern.list_backups(&caller, None).await?;
    Ok(Json(views.into_iter().map(Into::into).collect()))
}

#[utoipa::path(get, path = "/api/v1/backups/{id}", extensions(("x-tavern-access" = json!("owner"))), params(("id" = String, Path)),
    responses((status = 200, body = BackupJson), (status = 404, body = ErrorBody)))]
async fn show_backup(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<BackupJson>> {
    Ok(Json(s.tavern.get_backup(&caller, &id).await?.into()))
}

/// Locks a backup against retention, or unlocks it.
#[utoipa::path(patch, path = "/api/v1/backups/{id}", extensions(("x-tavern-access" = json!("owner"))), params(("id" = String, Path)), request_body = BackupUpdate,
    responses((status = 200, body = BackupJson), (status = 404, body = ErrorBody)))]
async fn update_backup(
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
async fn delete_backup(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.tavern.delete_backup(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DownloadQuery {
    /// A signed link's token, in place of a bearer token.
    token: Option<String>,
    /// Admins only: put the world's `license.json` and `admin.txt` (as
    /// Tavern would write them now) into the archive.
    #[serde(default)]
    secrets: bool,
}

/// Streams a complete backup's archive (tar + zstd), without the files
/// Tavern writes from its secrets (`Config/license.json`,
/// `Config/admin.txt`) unless an admin asks for them: with a bearer
/// token, or with a signed link's `token`.
#[utoipa::path(get, path = "/api/v1/backups/{id}/download", extensions(("x-tavern-access" = json!("owner"))), params(("id" = String, Path), DownloadQuery),
    security(("bearer" = []), ()),
    responses((status = 200, content_type = "application/zstd"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn download_backup(
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
        (Some(token), false) => s.tavern.open_backup_by_link(&id, &token).await?,
        (None, secrets) => {
            let caller = crate::extract::caller_from(&headers, &s).await?;
            s.tavern.open_backup(&caller, &id, secrets).await?
        }
    };
    archive_download(download)
}

/// A backup's archive as the answer: streamed as it is written, with a
/// file name (the API's download and the dashboard's).
pub(crate) fn archive_download(
    download: tavern_core::BackupDownload,
) -> ApiResult<axum::response::Response> {
    let disposition = format!("attachment; filename=\"{}\"", download.file_name);
    axum::response::Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "application/zstd")
        .header(axum::http::header::CONTENT_DISPOSITION, disposition)
        .body(axum::body::Body::from_stream(download.stream))
        .map_err(|e| ApiError::from(tavern_core::CoreError::internal("answer a download", e)))
}

/// A link that downloads the backup without a token, for a few minutes.
#[utoipa::path(post, path = "/api/v1/backups/{id}/link", extensions(("x-tavern-access" = json!("owner"))), params(("id" = String, Path)),
    responses((status = 200, body = LinkJson), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn backup_link(
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
async fn restore_backup(
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UsageQuery {
    /// `YYYY-MM` (UTC); this month when absent.
    #[param(value_type = Option<tavern_api::shapes::Month>)]
    month: Option<String>,
    /// One user's usage (admins; a game master sees only their own).
    #[param(value_type = Option<tavern_api::shapes::Username>)]
    user: Option<String>,
}

/// Hours per user and per world, hours per license key, and the cost at the
/// configured rate less credit, for a month.
#[utoipa::path(get, path = "/api/v1/usage", extensions(("x-tavern-access" = json!("user"))), params(UsageQuery),
    responses((status = 200, body = UsageJson), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn usage(
    State(s): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Json<UsageJson>> {
    let view = s
        .tavern
        .usage_report(&caller, q.month.as_deref(), q.user.as_deref())
        .await?;
    Ok(Json(view.into()))
}

/// A one-time code, valid for an hour, that ties the caller to a Ko-fi
/// supporter (written in a Ko-fi message) or a Discord account.
#[utoipa::path(post, path = "/api/v1/auth/link-code", extensions(("x-tavern-access" = json!("user"))),
    responses((status = 201, body = LinkCodeJson), (status = 401, body = ErrorBody)))]
async fn link_code(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<(StatusCode, Json<LinkCodeJson>)> {
    let (code, expires_at) = s.tavern.new_link_code(&caller).await?;
    Ok((
        StatusCode::CREATED,
        Json(LinkCodeJson {
            code,
            expires_at: expires_at.to_string(),
        }),
    ))
}

/// Everyone who has paid through Ko-fi, latest first (admins only).
#[utoipa::path(get, path = "/api/v1/supporters", extensions(("x-tavern-access" = json!("admin"))),
    responses((status = 200, body = [SupporterJson]), (status = 403, body = ErrorBody)))]
async fn list_supporters(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<SupporterJson>>> {
    let list = s.tavern.supporters(&caller).await?;
    Ok(Json(list.into_iter().map(SupporterJson::from).collect()))
}

/// Invites someone to make an account (admins only); the answer holds the
/// code and the address to give them, this once.
#[utoipa::path(post, path = "/api/v1/invites", extensions(("x-tavern-access" = json!("admin"))), request_body = CreateInviteRequest,
    responses((status = 201, body = InviteJson), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_invite(
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
async fn list_invites(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<InviteJson>>> {
    let list = s.tavern.list_invites(&caller).await?;
    Ok(Json(list.into_iter().map(InviteJson::from).collect()))
}

/// Withdraws an invitation, by its id (admins only).
#[utoipa::path(delete, path = "/api/v1/invites/{id}", extensions(("x-tavern-access" = json!("admin"))), params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_invite(
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
    responses((status = 201, body = LoginResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn accept_invite(
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct NotificationsQuery {
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The notification outbox, newest first: what went out to the webhooks,
/// what waits for a retry, what was given up (admins only).
#[utoipa::path(get, path = "/api/v1/notifications", extensions(("x-tavern-access" = json!("admin"))), params(NotificationsQuery),
    responses((status = 200, body = [NotificationJson]), (status = 403, body = ErrorBody)))]
async fn list_notifications(
    State(s): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(q): ApiQuery<NotificationsQuery>,
) -> ApiResult<Json<Vec<NotificationJson>>> {
    let list = s
        .tavern
        .list_notifications(&caller, in_range("limit", q.limit, 100, (1, 1000))?)
        .await?;
    Ok(Json(list.into_iter().map(NotificationJson::from).collect()))
}
