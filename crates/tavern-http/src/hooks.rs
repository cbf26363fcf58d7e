//! Webhooks from outside services, authenticated by their own means rather
//! than a bearer token: Ko-fi's payment notices (`POST /webhooks/kofi`, a
//! form whose `data` field is JSON holding the verification token).

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tavern_core::{CoreError, KofiNotice, KofiReceipt};
use utoipa::ToSchema;

use crate::{ApiError, AppState};

#[derive(Deserialize)]
pub(crate) struct KofiForm {
    data: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct KofiAnswer {
    /// `recorded`, or `already_recorded` for a notice seen before.
    status: &'static str,
}

fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "malformed_payment", message)
}

/// A notice's fields, read leniently (the core checks them): absent
/// strings are empty, numbers are taken as written.
fn notice_of(data: &Value) -> KofiNotice {
    let text = |k: &str| match data.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let flag = |k: &str| data.get(k).and_then(Value::as_bool).unwrap_or(false);
    KofiNotice {
        verification_token: text("verification_token").unwrap_or_default(),
        message_id: text("message_id").unwrap_or_default(),
        kofi_transaction_id: text("kofi_transaction_id").unwrap_or_default(),
        timestamp: text("timestamp").unwrap_or_default(),
        kind: text("type").unwrap_or_default(),
        from_name: text("from_name").unwrap_or_default(),
        email: text("email"),
        amount: text("amount").unwrap_or_default(),
        currency: text("currency").unwrap_or_default(),
        is_subscription_payment: flag("is_subscription_payment"),
        is_first_subscription_payment: flag("is_first_subscription_payment"),
        tier_name: text("tier_name"),
        message: text("message"),
    }
}

/// Ko-fi's payment notice: recorded once per transaction. A wrong
/// verification token is 401 and nothing is recorded; a notice that is not
/// Ko-fi's shape is 400.
#[utoipa::path(post, path = "/webhooks/kofi", security(()),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`data`: the notice as JSON"),
    responses((status = 200, body = KofiAnswer), (status = 400, body = crate::dto::ErrorBody),
        (status = 401, body = crate::dto::ErrorBody), (status = 404, body = crate::dto::ErrorBody)))]
pub(crate) async fn kofi(
    State(s): State<AppState>,
    form: Result<Form<KofiForm>, FormRejection>,
) -> Result<Json<KofiAnswer>, ApiError> {
    let Form(form) = form.map_err(|e| malformed(format!("not a Ko-fi notice: {e}")))?;
    let data: Value = serde_json::from_str(&form.data)
        .map_err(|e| malformed(format!("the data field is not JSON: {e}")))?;
    if !data.is_object() {
        return Err(malformed("the data field is not a JSON object"));
    }
    match s.tavern.kofi_payment(&notice_of(&data)).await {
        Ok(KofiReceipt::Recorded { .. }) => Ok(Json(KofiAnswer { status: "recorded" })),
        Ok(KofiReceipt::Replayed) => Ok(Json(KofiAnswer {
            status: "already_recorded",
        })),
        Err(CoreError::Unauthenticated) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_verification_token",
            "the verification token is not this server's",
        )),
        Err(e @ CoreError::Invalid { .. }) => Err(malformed(e.to_string())),
        Err(e) => Err(e.into()),
    }
}
