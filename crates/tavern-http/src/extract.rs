//! Request extractors: JSON bodies whose rejections read as `ApiError`, the
//! authenticated caller from `Authorization: Bearer`, and the client address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tavern_core::{Caller, CoreError};

use crate::{ApiError, AppState};

/// `axum::Json`, but failing with our error body.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Query`, but failing with our error body.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// The signed-in user, from a bearer token.
pub struct Authed(pub Caller);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Authed(caller_from(&parts.headers, state).await?))
    }
}

/// The caller a request's bearer token names.
pub async fn caller_from(headers: &HeaderMap, state: &AppState) -> Result<Caller, ApiError> {
    Ok(state.tavern.authenticate(bearer(headers)?).await?)
}

/// A request's bearer token.
pub fn bearer(headers: &HeaderMap) -> Result<&str, CoreError> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(CoreError::Unauthenticated)
}

/// The peer's address, when the server was started with connect info.
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}
