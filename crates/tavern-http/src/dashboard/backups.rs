//! Backups in the browser: every backup of mine (an admin's: everyone's),
//! taking one now, downloading one, locking one against retention, and
//! restoring or deleting one after a confirmation page that says what it
//! does.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use tavern_core::{BackupView, RestoreState};
use tavern_types::BackupStatus;

use super::{Chrome, NoFields, Posted, Session, redirect_with, render, say, when};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard/backups", get(list))
        .route("/dashboard/worlds/{slug}/backup", post(create))
        .route("/dashboard/backups/{id}/download", get(download))
        .route(
            "/dashboard/backups/{id}/restore",
            get(confirm).post(restore),
        )
        .route("/dashboard/backups/{id}/lock", post(lock))
        .route(
            "/dashboard/backups/{id}/delete",
            get(confirm_delete).post(delete),
        )
}

/// A backup as the pages list it.
pub(crate) struct BackupRow {
    pub id: String,
    pub slug: String,
    pub owner: String,
    pub kind: String,
    pub status: String,
    pub taken: String,
    pub size: String,
    pub complete: bool,
    /// Taken while the world ran (a copy of files in use).
    pub live: bool,
    /// Kept whatever retention says.
    pub locked: bool,
    pub restore: String,
}

pub(crate) use tavern_types::words::size;

impl From<&BackupView> for BackupRow {
    fn from(v: &BackupView) -> Self {
        let b = &v.backup;
        BackupRow {
            id: b.id.to_string(),
            slug: b.slug.to_string(),
            owner: v.owner.to_string(),
            kind: b.kind.to_string().replace('_', " "),
            status: match b.status {
                BackupStatus::Failed => format!("failed: {}", b.error.clone().unwrap_or_default()),
                s => s.to_string().replace('_', " "),
            },
            taken: when(b.created_at),
            size: b.archive.as_ref().map(|a| size(a.size)).unwrap_or_default(),
            complete: b.status == BackupStatus::Complete,
            live: b.live,
            locked: b.locked,
            restore: match &v.restore {
                None => String::new(),
                Some(r) => match &r.state {
                    RestoreState::Running => format!("restoring into {}", r.to),
                    RestoreState::Done => {
                        let mut said = format!("restored into {} at {}", r.to, when(r.at));
                        for note in &r.notes {
                            said.push_str("; ");
                            said.push_str(note);
                        }
                        said
                    }
                    RestoreState::Failed(why) => format!("restore into {} failed: {why}", r.to),
                },
            },
        }
    }
}

#[derive(Template)]
#[template(path = "backups.html")]
struct ListPage {
    chrome: Chrome,
    backups: Vec<BackupRow>,
    enabled: bool,
}

async fn list(State(s): State<AppState>, session: Session) -> Response {
    let enabled = s.tavern.settings().backups.is_some();
    let backups = if enabled {
        match s.tavern.list_backups(&session.caller, None).await {
            Ok(list) => list,
            Err(e) => return session.core_error(e),
        }
    } else {
        Vec::new()
    };
    let page = ListPage {
        chrome: session.chrome("Backups", "backups"),
        backups: backups.iter().map(BackupRow::from).collect(),
        enabled,
    };
    render(&page.chrome, &page)
}

async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    posted: Posted<NoFields>,
) -> Response {
    let done = s
        .tavern
        .request_backup(&posted.session.caller, &slug)
        .await
        .map(|_| format!("A backup of {slug} is being taken; it shows below when complete."));
    redirect_with(
        &s,
        &headers,
        &format!("/dashboard/worlds/{slug}"),
        done.map_err(say),
    )
}

/// Streams the archive (`?format=zip`: a zip a plain Foundry takes;
/// `&packages=true`: with the library's packages), as the API does.
async fn download(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<crate::api::FormatQuery>,
) -> Response {
    let answer = match s
        .tavern
        .open_backup(&session.caller, &id, false, q.packages, q.format.into())
        .await
    {
        Ok(d) => crate::api::archive_download(d),
        Err(e) => Err(e.into()),
    };
    answer.unwrap_or_else(|e| session.error_page(e.status, &e.message))
}

#[derive(Template)]
#[template(path = "restore.html")]
struct ConfirmPage {
    chrome: Chrome,
    backup: BackupRow,
}

async fn confirm(State(s): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    match s.tavern.get_backup(&session.caller, &id).await {
        Ok(v) => {
            let page = ConfirmPage {
                chrome: session.chrome("Restore a backup", "backups"),
                backup: BackupRow::from(&v),
            };
            render(&page.chrome, &page)
        }
        Err(e) => session.core_error(e),
    }
}

async fn restore(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> Response {
    match s
        .tavern
        .restore_backup(&posted.session.caller, &id, None)
        .await
    {
        Ok(v) => redirect_with(
            &s,
            &headers,
            &format!("/dashboard/worlds/{}", v.backup.slug),
            Ok(format!(
                "Restoring {} from the backup of {}; the world's current data is backed up first.",
                v.backup.slug,
                when(v.backup.created_at)
            )),
        ),
        Err(e) => redirect_with(
            &s,
            &headers,
            &format!("/dashboard/backups/{id}/restore"),
            Err(say(e)),
        ),
    }
}

#[derive(serde::Deserialize)]
struct LockForm {
    /// `true` to lock, anything else to unlock.
    locked: String,
}

/// Where a backup's page sends back to: its world's page.
fn world_of(row: &tavern_core::BackupView) -> String {
    format!("/dashboard/worlds/{}", row.backup.slug)
}

async fn lock(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    posted: Posted<LockForm>,
) -> Response {
    let locked = posted.form.locked == "true";
    match s
        .tavern
        .lock_backup(&posted.session.caller, &id, locked)
        .await
    {
        Ok(v) => redirect_with(
            &s,
            &headers,
            &world_of(&v),
            Ok(if locked {
                format!(
                    "The backup of {} is locked: retention keeps it.",
                    when(v.backup.created_at)
                )
            } else {
                format!(
                    "The backup of {} is unlocked: retention may remove it.",
                    when(v.backup.created_at)
                )
            }),
        ),
        Err(e) => redirect_with(&s, &headers, "/dashboard/backups", Err(say(e))),
    }
}

#[derive(Template)]
#[template(path = "delete_backup.html")]
struct DeletePage {
    chrome: Chrome,
    backup: BackupRow,
}

async fn confirm_delete(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    match s.tavern.get_backup(&session.caller, &id).await {
        Ok(v) => {
            let page = DeletePage {
                chrome: session.chrome("Delete a backup", "backups"),
                backup: BackupRow::from(&v),
            };
            render(&page.chrome, &page)
        }
        Err(e) => session.core_error(e),
    }
}

async fn delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> Response {
    let caller = &posted.session.caller;
    let found = match s.tavern.get_backup(caller, &id).await {
        Ok(v) => v,
        Err(e) => return redirect_with(&s, &headers, "/dashboard/backups", Err(say(e))),
    };
    match s.tavern.delete_backup(caller, &id).await {
        Ok(()) => redirect_with(
            &s,
            &headers,
            &world_of(&found),
            Ok(format!(
                "The backup of {} from {} is deleted.",
                found.backup.slug,
                when(found.backup.created_at)
            )),
        ),
        Err(e) => redirect_with(&s, &headers, &world_of(&found), Err(say(e))),
    }
}
