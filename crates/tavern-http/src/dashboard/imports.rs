//! Imports in the browser, in two steps: an upload (a multipart form; with
//! the page's script, sent with a progress bar) that is surveyed and held,
//! then a page that says what it holds and what importing would do, where
//! the game master imports it or throws it away.

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::HeaderMap;
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use futures_util::TryStreamExt as _;
use tavern_api::ImportJson;

use super::{Chrome, NoFields, Posted, Session, redirect_with, render, say};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/dashboard/import",
            get(page)
                .post(upload)
                // Held to the import's own limit as it is received.
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/dashboard/imports/{id}", get(survey).post(import))
        .route("/dashboard/imports/{id}/cancel", post(cancel))
}

#[derive(serde::Deserialize)]
struct PageQuery {
    #[serde(default)]
    world: String,
}

#[derive(Template)]
#[template(path = "import.html")]
struct ImportPage {
    chrome: Chrome,
    /// The world asked for (the one whose page linked here).
    world: String,
    /// The caller's worlds, for the name field's suggestions.
    worlds: Vec<String>,
    /// Newest first.
    releases: Vec<String>,
    hours: u64,
}

async fn page(State(s): State<AppState>, session: Session, Query(q): Query<PageQuery>) -> Response {
    let worlds: Vec<String> = match s.tavern.list_instances(&session.caller).await {
        Ok(v) => v.iter().map(|v| v.instance.slug.to_string()).collect(),
        Err(e) => return session.core_error(e),
    };
    // Filled in only with a world of the caller's (whose page linked here).
    let world = match worlds.contains(&q.world) {
        true => q.world,
        false => String::new(),
    };
    let mut releases: Vec<String> = s.tavern.releases().into_iter().map(|r| r.version).collect();
    releases.reverse();
    let page = ImportPage {
        chrome: session.chrome("Import a world", "worlds"),
        world,
        worlds,
        releases,
        hours: tavern_core::HOLD_FOR.as_secs() / 3600,
    };
    render(&page.chrome, &page)
}

/// The largest text field the upload form has.
const FIELD_LIMIT: usize = 1024;

/// A text field of the upload form, at most [`FIELD_LIMIT`] bytes.
async fn text(mut field: Field<'_>) -> Result<String, String> {
    let mut out = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| e.body_text())? {
        out.extend_from_slice(&chunk);
        if out.len() > FIELD_LIMIT {
            return Err("a field of the form was too long".into());
        }
    }
    String::from_utf8(out).map_err(|_| "a field of the form was not text".into())
}

/// The form's fields before its file, in the order the page sends them.
#[derive(Default)]
struct Fields {
    csrf: String,
    world: String,
    release: String,
}

/// Receives the upload, surveys it and holds it: on to the page that says
/// what it holds; a refusal goes back to the form with the reason.
async fn upload(
    State(s): State<AppState>,
    headers: HeaderMap,
    session: Session,
    form: Result<Multipart, MultipartRejection>,
) -> Response {
    if super::foreign_origin(&headers) {
        return super::error_page(
            StatusCode::FORBIDDEN,
            "That form was sent from another site.",
        );
    }
    let mut fields = Fields::default();
    let held = receive(&s, &session, form, &mut fields).await;
    let back = |why: String| {
        let to = format!(
            "/dashboard/import?world={}",
            form_urlencoded::byte_serialize(fields.world.as_bytes()).collect::<String>()
        );
        redirect_with(&s, &headers, &to, Err(why))
    };
    // The page's script asks for JSON: where to go, or why not.
    let script = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    match (held, script) {
        (Ok(id), false) => super::see_other(&format!("/dashboard/imports/{id}")),
        (Ok(id), true) => {
            Json(serde_json::json!({"next": format!("/dashboard/imports/{id}")})).into_response()
        }
        (Err(Refusal::Expired), false) => {
            back("That form had expired; the page is fresh now: send the upload again.".into())
        }
        (Err(Refusal::Said(why)), false) => back(why),
        (Err(refusal), true) => {
            let why = match refusal {
                Refusal::Expired => {
                    "That form has expired: reload the page and send the upload again.".into()
                }
                Refusal::Said(why) => why,
            };
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(serde_json::json!({"error": why})),
            )
                .into_response()
        }
    }
}

enum Refusal {
    /// The form's token is not this session's.
    Expired,
    Said(String),
}

async fn receive(
    s: &AppState,
    session: &Session,
    form: Result<Multipart, MultipartRejection>,
    fields: &mut Fields,
) -> Result<String, Refusal> {
    let mut form = form.map_err(|e| Refusal::Said(e.body_text()))?;
    let said = |e: axum::extract::multipart::MultipartError| Refusal::Said(e.body_text());
    while let Some(field) = form.next_field().await.map_err(said)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name != "file" {
            let value = text(field).await.map_err(Refusal::Said)?;
            match name.as_str() {
                "csrf" => fields.csrf = value,
                "world" => fields.world = value.trim().to_owned(),
                "release" => fields.release = value,
                _ => {}
            }
            continue;
        }
        if !super::same(&fields.csrf, &session.csrf) {
            return Err(Refusal::Expired);
        }
        let caller = &session.caller;
        // Refused before the upload is taken in.
        s.tavern
            .check_import_target(caller, &fields.world)
            .await
            .map_err(|e| Refusal::Said(say(e)))?;
        if field.file_name().is_none_or(str::is_empty) {
            return Err(Refusal::Said(
                "Choose the archive to import (a .zip, .tar, .tar.gz or .tar.zst).".into(),
            ));
        }
        let body = tokio_util::io::StreamReader::new(field.map_err(std::io::Error::other));
        let source = s
            .tavern
            .receive_import(body)
            .await
            .map_err(|e| Refusal::Said(say(e)))?;
        let release = Some(fields.release.clone()).filter(|r| !r.is_empty());
        let (id, _) = s
            .tavern
            .hold_import(caller, &fields.world, source, release)
            .await
            .map_err(|e| Refusal::Said(say(e)))?;
        return Ok(id);
    }
    Err(Refusal::Said(
        "Choose the archive to import (a .zip, .tar, .tar.gz or .tar.zst).".into(),
    ))
}

#[derive(Template)]
#[template(path = "import_survey.html")]
struct SurveyPage {
    chrome: Chrome,
    id: String,
    import: ImportJson,
    /// A user-data folder (else one world).
    user_data: bool,
}

impl SurveyPage {
    /// Sizes as the page shows them.
    fn size(&self, bytes: &u64) -> String {
        super::backups::size(*bytes)
    }

    /// The game systems and modules, under their headings.
    fn packages(&self) -> [(&'static str, &[tavern_api::PackageJson]); 2] {
        [
            ("Game systems", &self.import.systems),
            ("Modules", &self.import.modules),
        ]
    }
}

async fn survey(State(s): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    match s.tavern.held_import(&session.caller, &id) {
        Ok(report) => {
            let import = ImportJson::from(report);
            let page = SurveyPage {
                chrome: session.chrome(format!("Import into {}", import.world), "worlds"),
                user_data: import.kind == "user_data",
                id,
                import,
            };
            render(&page.chrome, &page)
        }
        Err(e) => session.core_error(e),
    }
}

async fn import(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> Response {
    let caller = &posted.session.caller;
    let world = match s.tavern.held_import(caller, &id) {
        Ok(r) => r.world,
        Err(e) => return redirect_with(&s, &headers, "/dashboard/import", Err(say(e))),
    };
    let to = format!("/dashboard/worlds/{world}");
    match s.tavern.import_held(caller, &id).await {
        Ok(r) => {
            let mut said = format!(
                "Imported {} files ({}) into {}.",
                r.layout.files,
                super::backups::size(r.layout.bytes),
                r.world
            );
            if r.backup.is_some() {
                said.push_str(" What was there before is kept in a backup, listed below.");
            }
            redirect_with(&s, &headers, &to, Ok(said))
        }
        // A world made for the import is gone with it: back to the form.
        Err(e) => redirect_with(
            &s,
            &headers,
            &format!("/dashboard/import?world={world}"),
            Err(say(e)),
        ),
    }
}

async fn cancel(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    posted: Posted<NoFields>,
) -> Response {
    match s.tavern.drop_held_import(&posted.session.caller, &id) {
        Ok(world) => redirect_with(
            &s,
            &headers,
            &format!("/dashboard/import?world={world}"),
            Ok("The upload was thrown away; nothing was imported.".into()),
        ),
        Err(e) => redirect_with(&s, &headers, "/dashboard/import", Err(say(e))),
    }
}
