//! `ApiError`: the one error type handlers return, and the one mapping from
//! `CoreError` to status and stable code. Internal causes are logged here,
//! once, and never sent to the client.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tavern_core::CoreError;
use tavern_types::words::error_chain;

use tavern_api::{ErrorBody, ErrorDetail};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds after which trying again may work (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut r = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            r.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        r
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let status = match &e {
            CoreError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            CoreError::Unauthenticated
            | CoreError::InvalidCredentials
            | CoreError::SecondFactorRequired
            | CoreError::WrongCode => StatusCode::UNAUTHORIZED,
            CoreError::RateLimited(seconds) => {
                return ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.code(), e.to_string())
                    .with_retry_after(*seconds);
            }
            CoreError::Forbidden(_) | CoreError::Quota(_) => StatusCode::FORBIDDEN,
            CoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            CoreError::Conflict { .. } | CoreError::NoLicenseFree(_) => StatusCode::CONFLICT,
            CoreError::NotConfigured(_) | CoreError::NotImplemented(_) => {
                StatusCode::NOT_IMPLEMENTED
            }
            CoreError::Unavailable { .. } => {
                tracing::warn!(error = %error_chain(&e), "request failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
            CoreError::Internal { .. } => {
                tracing::error!(error = %error_chain(&e), "request failed");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "something went wrong inside Tavern; the server log has the details",
                );
            }
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let (status, code) = match &r {
            JsonRejection::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            _ => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        let message = match code {
            "unsupported_media_type" => {
                "send the body as JSON with Content-Type: application/json".to_owned()
            }
            "payload_too_large" => "the request body is too large".to_owned(),
            _ => r.body_text(),
        };
        ApiError::new(status, code, message)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text())
    }
}
