//! Calls from outside services, authenticated by their own means rather
//! than a bearer token: Ko-fi's payment notices (`POST /webhooks/kofi`, a
//! form whose `data` field is JSON holding the verification token) and
//! Discord's interactions (`POST /discord/interactions`, Ed25519-signed).

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tavern_core::{CoreError, KofiNotice, KofiReceipt};
use utoipa::ToSchema;

use crate::{ApiError, AppState};

/// Ko-fi's form: one field.
#[derive(Deserialize, ToSchema)]
pub(crate) struct KofiForm {
    /// The notice, as JSON (with the verification token in it).
    data: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct KofiAnswer {
    /// `recorded`, or `already_recorded` for a notice seen before.
    status: &'static str,
}

/// A body over the limit, on a route that reads it itself.
fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is too large",
    )
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
#[utoipa::path(post, path = "/webhooks/kofi", extensions(("x-tavern-access" = json!("public"))), security(()),
    request_body(content = KofiForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = KofiAnswer), (status = 400, body = tavern_api::ErrorBody),
        (status = 401, body = tavern_api::ErrorBody), (status = 404, body = tavern_api::ErrorBody),
        (status = 413, body = tavern_api::ErrorBody), (status = 415, body = tavern_api::ErrorBody)))]
pub(crate) async fn kofi(
    State(s): State<AppState>,
    form: Result<Form<KofiForm>, FormRejection>,
) -> Result<Json<KofiAnswer>, ApiError> {
    let Form(form) = form.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the notice as a form (application/x-www-form-urlencoded), as Ko-fi does",
        ),
        _ => malformed(format!("not a Ko-fi notice: {e}")),
    })?;
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

/// Discord's interactions, as configured: the key that signs them, and
/// the way to answer later.
#[derive(Clone)]
pub struct DiscordEdge {
    pub public_key: [u8; 32],
    pub api: std::sync::Arc<dyn crate::bot::DiscordApi>,
}

/// How far an interaction's timestamp may be from now.
const SIGNATURE_WINDOW_SECS: i64 = 300;

/// Checks Discord's Ed25519 signature over `timestamp || body`, and that
/// the timestamp is within five minutes of `now` (Unix seconds).
pub(crate) fn verify_signature(
    public_key: &[u8; 32],
    signature_hex: &str,
    timestamp: &str,
    body: &[u8],
    now: i64,
) -> Result<(), &'static str> {
    let signature = hex::decode(signature_hex.trim()).map_err(|_| "the signature is not hex")?;
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| "the timestamp is not a number")?;
    if (now - at).abs() > SIGNATURE_WINDOW_SECS {
        return Err("the timestamp is too old or in the future");
    }
    let mut signed = Vec::with_capacity(timestamp.len() + body.len());
    signed.extend_from_slice(timestamp.as_bytes());
    signed.extend_from_slice(body);
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, public_key)
        .verify(&signed, &signature)
        .map_err(|_| "the signature does not match")
}

/// The subcommand and its options of `/tavern`, from an interaction.
fn slash_command(v: &Value) -> Option<crate::bot::SlashCommand> {
    let user = v["member"]["user"]["id"]
        .as_str()
        .or_else(|| v["user"]["id"].as_str())?;
    let sub = v["data"]["options"].as_array()?.first()?;
    let text = |o: &Value| match &o["value"] {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    let options = sub["options"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| Some((o["name"].as_str()?.to_owned(), text(o)?)))
        .collect();
    Some(crate::bot::SlashCommand {
        discord_user: user.to_owned(),
        subcommand: sub["name"].as_str()?.to_owned(),
        options,
    })
}

fn unauthorized(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
        format!("not a Discord interaction: {why}"),
    )
}

/// Discord's interactions: every request's signature checked (401
/// otherwise); PING answered PONG; `/tavern …` answered at once, or
/// acknowledged and answered by a follow-up when the work takes a while.
/// Answers are seen only by who asked.
#[utoipa::path(post, path = "/discord/interactions", extensions(("x-tavern-access" = json!("public"))), security(()),
    params(("X-Signature-Ed25519" = String, Header, description = "Discord's signature of the timestamp and the body, hex"),
        ("X-Signature-Timestamp" = String, Header, description = "When Discord signed it")),
    request_body(content = Object, content_type = "application/json", description = "a Discord interaction"),
    responses((status = 200, description = "the interaction's answer"),
        (status = 400, body = tavern_api::ErrorBody), (status = 401, body = tavern_api::ErrorBody),
        (status = 404, body = tavern_api::ErrorBody)))]
pub(crate) async fn discord(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Result<bytes::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        _ => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()),
    })?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(signature), Some(timestamp)) = (
        header("x-signature-ed25519"),
        header("x-signature-timestamp"),
    ) else {
        return Err(unauthorized("the signature headers are missing"));
    };
    let Some(edge) = s.discord.clone() else {
        return Err(ApiError::not_found(
            "this server has no Discord bot ([discord] public_key is not configured)",
        ));
    };
    verify_signature(
        &edge.public_key,
        signature,
        timestamp,
        &body,
        jiff::Timestamp::now().as_second(),
    )
    .map_err(|why| {
        tracing::warn!(
            why,
            "a Discord interaction with a bad signature was refused"
        );
        unauthorized(why)
    })?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", e.to_string()))?;
    const EPHEMERAL: u64 = 1 << 6;
    match v["type"].as_u64() {
        Some(1) => Ok(Json(serde_json::json!({ "type": 1 }))),
        Some(2) if v["data"]["name"] == "tavern" => {
            let cmd = slash_command(&v).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_interaction",
                    "no user or subcommand in the interaction",
                )
            })?;
            match crate::bot::answer(&s.tavern, cmd).await {
                crate::bot::BotReply::Now(text) => Ok(Json(serde_json::json!({
                    "type": 4,
                    "data": { "content": text, "flags": EPHEMERAL, "allowed_mentions": { "parse": [] } },
                }))),
                crate::bot::BotReply::Later(work) => {
                    let token = v["token"].as_str().unwrap_or_default().to_owned();
                    tokio::spawn(async move {
                        let text = work.await;
                        for attempt in 1..=3u64 {
                            match edge.api.edit_original(&token, &text).await {
                                Ok(()) => return,
                                Err(e) => {
                                    tracing::warn!(error = %e, attempt, "a Discord follow-up failed");
                                    tokio::time::sleep(std::time::Duration::from_secs(attempt * 2))
                                        .await;
                                }
                            }
                        }
                    });
                    Ok(Json(
                        serde_json::json!({ "type": 5, "data": { "flags": EPHEMERAL } }),
                    ))
                }
            }
        }
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_interaction",
            "an interaction this server does not take",
        )),
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};

    use super::verify_signature;

    fn keys(seed: u8) -> (Ed25519KeyPair, [u8; 32]) {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
        (pair, public)
    }

    #[test]
    fn signatures_are_checked_over_timestamp_and_body() {
        let (pair, public) = keys(7);
        let (_, other) = keys(8);
        let body = br#"{"type":1}"#;
        let now = 1_800_000_000;
        let ts = now.to_string();
        let sign = |ts: &str, body: &[u8]| {
            let mut m = ts.as_bytes().to_vec();
            m.extend_from_slice(body);
            hex::encode(pair.sign(&m).as_ref())
        };
        let sig = sign(&ts, body);
        assert_eq!(verify_signature(&public, &sig, &ts, body, now), Ok(()));
        assert!(
            verify_signature(&public, &sig, &ts, br#"{"type":2}"#, now).is_err(),
            "tampered body"
        );
        assert!(
            verify_signature(&other, &sig, &ts, body, now).is_err(),
            "wrong key"
        );
        let old = (now - 301).to_string();
        let old_sig = sign(&old, body);
        assert!(
            verify_signature(&public, &old_sig, &old, body, now).is_err(),
            "stale"
        );
        assert!(
            verify_signature(&public, "zz", &ts, body, now).is_err(),
            "not hex"
        );
        assert!(
            verify_signature(&public, &sig, "soon", body, now).is_err(),
            "no timestamp"
        );
    }
}
