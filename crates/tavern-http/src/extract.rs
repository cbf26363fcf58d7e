//! Request extractors: JSON bodies whose rejections read as `ApiError`, the
//! authenticated caller from `Authorization: Bearer`, and the client address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use tavern_core::{Caller, CoreError};

use crate::{ApiError, AppState};

/// A JSON object body, failing with our error body: not JSON is 400, not
/// an object (or fields that do not fit) 422. Numbers without a fraction
/// (`620.0`, `1e2`) count as integers, as JSON Schema reads them.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(mut value) =
            axum::Json::<serde_json::Value>::from_request(req, state).await?;
        let invalid = |message: String| {
            ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                message,
            )
        };
        if !value.is_object() {
            return Err(invalid("the body must be a JSON object".into()));
        }
        whole_numbers(&mut value);
        serde_json::from_value(value)
            .map(ApiJson)
            .map_err(|e| invalid(format!("the body does not fit: {e}")))
    }
}

/// Turns every number without a fraction into an integer, in place.
fn whole_numbers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9_007_199_254_740_992.0
            {
                // Exact: below 2^53 a whole f64 is an integer.
                #[allow(clippy::cast_possible_truncation)]
                let i = f as i64;
                *v = Value::from(i);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(fields) => fields.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_numbers_count_as_integers_and_nothing_else_changes() {
        let mut v = json!({"a": 620.0, "b": [1e2, 2.5, -3.0], "c": "7.0", "d": 1e300});
        whole_numbers(&mut v);
        assert_eq!(v["a"], json!(620));
        assert!(v["a"].is_u64());
        assert_eq!(v["b"], json!([100, 2.5, -3]));
        assert_eq!(v["c"], json!("7.0"));
        assert!(v["d"].is_f64(), "beyond 2^53 it stays a float");
    }
}
