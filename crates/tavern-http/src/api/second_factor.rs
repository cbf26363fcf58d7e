//! A password account's second factor: setting up TOTP, its recovery
//! codes, removing it (one's own with a code; an admin, anyone's).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tavern_api::*;

use super::ApiResult;
use crate::AppState;
use crate::extract::{ApiJson, Authed};

/// The caller's second factor.
#[utoipa::path(get, path = "/api/v1/auth/second-factor", extensions(("x-tavern-access" = json!("user"))),
    responses((status = 200, body = SecondFactorJson), (status = 401, body = ErrorBody)))]
pub(super) async fn second_factor(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<SecondFactorJson>> {
    let f = s.tavern.second_factor(&caller).await?;
    Ok(Json(SecondFactorJson {
        enabled: f.enabled,
        recovery_codes_left: f.recovery_codes_left,
        required: f.required,
        has_password: f.has_password,
    }))
}

/// Starts setting up TOTP: a new secret for an authenticator app
/// (replacing a start never confirmed). The factor counts once a code
/// of it is confirmed.
#[utoipa::path(post, path = "/api/v1/auth/second-factor", extensions(("x-tavern-access" = json!("user"))),
    responses((status = 201, body = TotpEnrolmentJson), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn begin_second_factor(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<(StatusCode, Json<TotpEnrolmentJson>)> {
    let e = s.tavern.begin_totp(&caller).await?;
    Ok((
        StatusCode::CREATED,
        Json(TotpEnrolmentJson {
            secret: e.secret,
            otpauth_url: e.otpauth_url,
        }),
    ))
}

/// Confirms the set-up with the app's first code: from now on it is asked
/// for at every password sign-in. Answers the recovery codes, once.
#[utoipa::path(post, path = "/api/v1/auth/second-factor/confirm", extensions(("x-tavern-access" = json!("user"))), request_body = CodeRequest,
    responses((status = 200, body = RecoveryCodesJson), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(super) async fn confirm_second_factor(
    State(s): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<CodeRequest>,
) -> ApiResult<Json<RecoveryCodesJson>> {
    let recovery_codes = s.tavern.confirm_totp(&caller, &req.code).await?;
    Ok(Json(RecoveryCodesJson { recovery_codes }))
}

/// New recovery codes (the old ones stop working), given a current code.
#[utoipa::path(post, path = "/api/v1/auth/second-factor/recovery-codes", extensions(("x-tavern-access" = json!("user"))), request_body = CodeRequest,
    responses((status = 200, body = RecoveryCodesJson), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(super) async fn new_recovery_codes(
    State(s): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<CodeRequest>,
) -> ApiResult<Json<RecoveryCodesJson>> {
    let recovery_codes = s.tavern.new_recovery_codes(&caller, &req.code).await?;
    Ok(Json(RecoveryCodesJson { recovery_codes }))
}

/// Removes the caller's second factor, given a current code or a
/// recovery code.
#[utoipa::path(post, path = "/api/v1/auth/second-factor/remove", extensions(("x-tavern-access" = json!("user"))), request_body = CodeRequest,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(super) async fn remove_second_factor(
    State(s): State<AppState>,
    Authed(caller): Authed,
    ApiJson(req): ApiJson<CodeRequest>,
) -> ApiResult<StatusCode> {
    s.tavern.remove_totp(&caller, None, Some(&req.code)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a user's second factor, for someone who lost their app and
/// their recovery codes (admins only).
#[utoipa::path(delete, path = "/api/v1/users/{username}/second-factor", extensions(("x-tavern-access" = json!("admin"))),
    params(("username" = String, Path)),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn remove_users_second_factor(
    State(s): State<AppState>,
    Authed(caller): Authed,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    s.tavern.remove_totp(&caller, Some(&username), None).await?;
    Ok(StatusCode::NO_CONTENT)
}
