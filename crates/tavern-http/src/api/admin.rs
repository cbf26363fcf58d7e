//! What admins read: the audit log, the overview, usage, supporters and
//! notifications.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use tavern_api::*;
use utoipa::IntoParams;

use super::{ApiResult, in_range};
use crate::AppState;
use crate::extract::{ApiQuery, Authed};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EventsQuery {
    /// How many of the newest events (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The audit log, newest first (admins only).
#[utoipa::path(get, path = "/api/v1/events", extensions(("x-tavern-access" = json!("admin"))), params(EventsQuery),
    responses((status = 200, body = [EventJson]), (status = 403, body = ErrorBody)))]
pub(super) async fn list_events(
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

/// Every key and the world on it, the worlds running and the failed ones
/// (admins only).
#[utoipa::path(get, path = "/api/v1/admin/overview", extensions(("x-tavern-access" = json!("admin"))),
    responses((status = 200, body = OverviewJson), (status = 403, body = ErrorBody)))]
pub(super) async fn admin_overview(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<OverviewJson>> {
    Ok(Json(s.tavern.admin_overview(&caller).await?.into()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UsageQuery {
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
pub(super) async fn usage(
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

/// Everyone who has paid through Ko-fi, latest first (admins only).
#[utoipa::path(get, path = "/api/v1/supporters", extensions(("x-tavern-access" = json!("admin"))),
    responses((status = 200, body = [SupporterJson]), (status = 403, body = ErrorBody)))]
pub(super) async fn list_supporters(
    State(s): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Json<Vec<SupporterJson>>> {
    let list = s.tavern.supporters(&caller).await?;
    Ok(Json(list.into_iter().map(SupporterJson::from).collect()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct NotificationsQuery {
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The notification outbox, newest first: what went out to the webhooks,
/// what waits for a retry, what was given up (admins only).
#[utoipa::path(get, path = "/api/v1/notifications", extensions(("x-tavern-access" = json!("admin"))), params(NotificationsQuery),
    responses((status = 200, body = [NotificationJson]), (status = 403, body = ErrorBody)))]
pub(super) async fn list_notifications(
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
