//! The handlers of `/api/v1` and `/healthz`, one file per resource: each
//! turns a request into one call of the core service and its answer into
//! JSON. No decisions here.

mod admin;
mod backups;
mod imports;
mod instances;
mod invites;
mod licenses;
mod links;
mod packages;
mod releases;
mod second_factor;
mod sessions;
mod users;

use axum::Json;
use axum::http::StatusCode;
use tavern_api::{Health, InstanceJson};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{ApiError, AppState};

pub(crate) use backups::{FormatQuery, archive_download};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::document())
        .routes(routes!(healthz))
        .routes(routes!(users::login))
        .routes(routes!(users::cli_code))
        .routes(routes!(users::whoami))
        .routes(routes!(users::logout))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(users::update_user))
        .routes(routes!(
            instances::create_instance,
            instances::list_instances
        ))
        .routes(routes!(
            instances::show_instance,
            instances::destroy_instance,
            instances::update_instance
        ))
        .routes(routes!(instances::start_instance))
        .routes(routes!(instances::stop_instance))
        .routes(routes!(instances::instance_logs))
        .routes(routes!(instances::instance_manifests))
        .routes(routes!(imports::import_world))
        .routes(routes!(imports::import_felddy))
        .routes(routes!(licenses::add_license, licenses::list_licenses))
        .routes(routes!(licenses::remove_license, licenses::update_license))
        .routes(routes!(licenses::activate_license))
        .routes(routes!(sessions::create_session, sessions::list_sessions))
        .routes(routes!(sessions::cancel_session))
        .routes(routes!(admin::list_events))
        .routes(routes!(releases::list_releases, releases::add_release))
        .routes(routes!(admin::admin_overview))
        .routes(routes!(
            backups::create_backup,
            backups::list_instance_backups
        ))
        .routes(routes!(backups::list_backups))
        .routes(routes!(backups::start_migration, backups::show_migration))
        .routes(routes!(
            backups::show_backup,
            backups::update_backup,
            backups::delete_backup
        ))
        .routes(routes!(backups::download_backup))
        .routes(routes!(backups::backup_link))
        .routes(routes!(backups::restore_backup))
        .routes(routes!(admin::usage))
        .routes(routes!(users::link_code))
        .routes(routes!(
            second_factor::second_factor,
            second_factor::begin_second_factor
        ))
        .routes(routes!(second_factor::confirm_second_factor))
        .routes(routes!(second_factor::new_recovery_codes))
        .routes(routes!(second_factor::remove_second_factor))
        .routes(routes!(second_factor::remove_users_second_factor))
        .routes(routes!(links::list_links))
        .routes(routes!(links::unlink_account))
        .routes(routes!(links::unlink_users_account))
        .routes(routes!(admin::list_supporters))
        .routes(routes!(crate::hooks::kofi))
        .routes(routes!(invites::create_invite, invites::list_invites))
        .routes(routes!(invites::revoke_invite))
        .routes(routes!(invites::accept_invite))
        .routes(routes!(admin::list_notifications))
        .routes(routes!(crate::hooks::discord))
        .routes(routes!(packages::list_packages, packages::add_package))
        .routes(routes!(packages::package_job))
        .routes(routes!(packages::update_packages))
        .routes(routes!(packages::remove_package))
        .routes(routes!(
            packages::world_packages,
            packages::add_world_package
        ))
        .routes(routes!(packages::remove_world_package))
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
