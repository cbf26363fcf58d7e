//! Signing in and out, and users.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use tavern_api::*;
use tavern_core::NewUser;

use super::ApiResult;
use crate::AppState;
use crate::extract::{ApiJson, Authed, ClientIp};

/// Exchanges a username and password for an API token.
#[utoipa::path(post, path = "/api/v1/auth/login", extensions(("x-tavern-access" = json!("public"))), security(()), request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(super) async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let signed = s
        .tavern
        .sign_in(&req.username, &req.password, req.code.as_deref(), ip)
        .await?;
    let tavern_core::SignIn::Done(token, user) = signed else {
        return Err(tavern_core::CoreError::SecondFactorRequired.into());
    };
    Ok(Json(LoginResponse {
        token,
        user: (&user).into(),
    }))
}

/// Exchanges the code that approving `tavern login --sso` in the browser
/// sent to the client's loopback address (with the verifier of its
/// challenge) for an API token.
#[utoipa::path(post, path = "/api/v1/auth/cli-code", extensions(("x-tavern-access" = json!("public"))), security(()), request_body = CliCodeRequest,
    responses((status = 200, body = LoginResponse), (status = 422, body = ErrorBody)))]
pub(super) async fn cli_code(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<CliCodeRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let (token, user) = s.tavern.redeem_cli_code(&req.code, &req.verifier).await?;
    Ok(Json(LoginResponse {
        token,
        user: (&user).into(),
    }))
}

/// The user the token belongs to.
#[utoipa::path(get, path = "/api/v1/auth/whoami", extensions(("x-tavern-access" = json!("user"))), responses((status = 200, body = UserJson), (status = 401, body = ErrorBody)))]
pub(super) async fn whoami(Authed(caller): Authed) -> Json<UserJson> {
    Json((&caller.user).into())
}

/// Signs out: the token stops working at once.
#[utoipa::path(post, path = "/api/v1/auth/logout", extensions(("x-tavern-access" = json!("user"))), responses((status = 204), (status = 401, body = ErrorBody)))]
pub(super) async fn logout(
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
pub(super) async fn create_user(
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
pub(super) async fn list_users(
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
pub(super) async fn update_user(
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

/// A one-time code, valid for an hour, that ties the caller to a Ko-fi
/// supporter (written in a Ko-fi message) or a Discord account.
#[utoipa::path(post, path = "/api/v1/auth/link-code", extensions(("x-tavern-access" = json!("user"))),
    responses((status = 201, body = LinkCodeJson), (status = 401, body = ErrorBody)))]
pub(super) async fn link_code(
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
