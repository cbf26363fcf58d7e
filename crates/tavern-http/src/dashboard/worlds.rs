//! My worlds: the list (its states kept live by `worlds.json`), creating a
//! world (the onboarding wizard is the same form with a welcome), and one
//! world's page: start, stop, settings, release, backups, logs, destroy.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tavern_core::{BackupView, InstanceUpdate, InstanceView, NewInstance};
use tavern_types::DesiredState;

use super::backups::BackupRow;
use super::packages::WorldPackageRow;
use super::{
    Chrome, Flash, NoFields, Posted, Session, redirect_with, render, render_status, say, when,
};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(list))
        .route("/dashboard/worlds.json", get(live))
        .route("/dashboard/new", get(new_page).post(create))
        .route("/dashboard/welcome", get(welcome))
        .route("/dashboard/worlds/{slug}", get(world))
        .route("/dashboard/worlds/{slug}/start", post(start))
        .route("/dashboard/worlds/{slug}/stop", post(stop))
        .route("/dashboard/worlds/{slug}/settings", post(settings))
        .route("/dashboard/worlds/{slug}/destroy", post(destroy))
        .route("/dashboard/worlds/{slug}/logs", get(logs_page))
        .route("/dashboard/worlds/{slug}/logs.txt", get(logs_text))
}

/// A world's state as people say it: the observed state, or what it is
/// on its way to.
pub(crate) fn state_label(v: &InstanceView) -> &'static str {
    tavern_types::state_word(v.instance.state, v.instance.desired_state)
}

/// One world in a list (and in `worlds.json`).
#[derive(Serialize)]
pub(crate) struct WorldRow {
    pub slug: String,
    pub owner: String,
    pub url: String,
    pub state: &'static str,
    pub players: u32,
    pub release: String,
    pub license: String,
    pub reason: String,
    pub can_start: bool,
    pub can_stop: bool,
}

impl From<&InstanceView> for WorldRow {
    fn from(v: &InstanceView) -> Self {
        let i = &v.instance;
        let state = state_label(v);
        WorldRow {
            slug: i.slug.to_string(),
            owner: v.owner.to_string(),
            url: v.url.clone(),
            state,
            players: i.players,
            release: i.release.clone().unwrap_or_default(),
            license: v
                .license
                .as_ref()
                .map(|(_, l)| l.clone())
                .unwrap_or_default(),
            // Why it failed, sleeps or stops (who stopped it, or how long
            // it went without players), or what its start waits for; a
            // running world speaks for itself.
            reason: match state {
                "running" => String::new(),
                _ => i.state_reason.clone().unwrap_or_default(),
            },
            can_start: matches!(state, "sleeping" | "failed" | "stopping"),
            can_stop: matches!(state, "running" | "starting" | "failed"),
        }
    }
}

#[derive(Template)]
#[template(path = "worlds.html")]
struct ListPage {
    chrome: Chrome,
    worlds: Vec<WorldRow>,
}

async fn list(State(s): State<AppState>, session: Session) -> Response {
    match s.tavern.list_instances(&session.caller).await {
        Ok(views) => {
            let page = ListPage {
                chrome: session.chrome("My worlds", "worlds"),
                worlds: views.iter().map(WorldRow::from).collect(),
            };
            render(&page.chrome, &page)
        }
        Err(e) => session.core_error(e),
    }
}

/// `GET /dashboard/worlds.json`: the states of the worlds the user sees,
/// for the pages' script to keep them current.
async fn live(State(s): State<AppState>, session: Option<Session>) -> Response {
    let Some(session) = session else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match s.tavern.list_instances(&session.caller).await {
        Ok(views) => {
            let rows: Vec<WorldRow> = views.iter().map(WorldRow::from).collect();
            ([(header::CACHE_CONTROL, "no-store")], Json(rows)).into_response()
        }
        Err(e) => crate::ApiError::from(e).into_response(),
    }
}

#[derive(Template)]
#[template(path = "new.html")]
struct NewPage {
    chrome: Chrome,
    welcome: bool,
    /// Newest first: the one a new world gets unless another is chosen.
    releases: Vec<String>,
    default_idle: i64,
    /// What was typed, when the form comes back with an error.
    slug: String,
    release: String,
}

fn new_world_page(s: &AppState, session: &Session, welcome: bool) -> Response {
    new_world_form(s, session, welcome, None)
}

/// The form, empty, or (`failed`) as it was sent with why it was refused.
fn new_world_form(
    s: &AppState,
    session: &Session,
    welcome: bool,
    failed: Option<(&CreateForm, String)>,
) -> Response {
    let mut releases: Vec<String> = s.tavern.releases().into_iter().map(|r| r.version).collect();
    releases.reverse();
    let title = if welcome {
        "Welcome to Tavern"
    } else {
        "A new world"
    };
    let mut chrome = session.chrome(title, "new");
    if let Some((_, why)) = &failed {
        chrome.flash = Some(Flash {
            ok: false,
            text: why.clone(),
        });
    }
    let (slug, release) = failed
        .map(|(form, _)| (form.slug.clone(), form.release.clone()))
        .unwrap_or_default();
    let page = NewPage {
        chrome,
        welcome,
        releases,
        default_idle: s.tavern.settings().idle_timeout.as_mins(),
        slug,
        release,
    };
    let status = if page.chrome.flash.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    render_status(status, &page.chrome, &page)
}

async fn new_page(State(s): State<AppState>, session: Session) -> Response {
    new_world_page(&s, &session, false)
}

/// The onboarding wizard's first step: what a world is, and the form that
/// makes one.
async fn welcome(State(s): State<AppState>, session: Session) -> Response {
    new_world_page(&s, &session, true)
}

#[derive(Deserialize)]
struct CreateForm {
    slug: String,
    #[serde(default)]
    release: String,
    #[serde(default)]
    welcome: Option<String>,
}

#[derive(Template)]
#[template(path = "created.html")]
struct CreatedPage {
    chrome: Chrome,
    world: WorldRow,
    admin_key: String,
    welcome: bool,
}

/// Creates a world and shows its Foundry admin key, this once.
async fn create(State(s): State<AppState>, posted: Posted<CreateForm>) -> Response {
    let Posted { session, form } = posted;
    let release = Some(form.release.trim().to_owned()).filter(|r| !r.is_empty());
    let welcome = form.welcome.is_some();
    let made = s
        .tavern
        .create_instance(
            &session.caller,
            NewInstance {
                slug: form.slug.trim().to_owned(),
                owner: None,
                release,
                license: None,
                runtime: None,
                idle_timeout_minutes: None,
                wake_on_visit: None,
            },
        )
        .await;
    match made {
        Ok(view) => {
            let page = CreatedPage {
                chrome: session.chrome(format!("{} is ready", view.instance.slug), "new"),
                world: WorldRow::from(&view),
                admin_key: view.admin_key.clone().unwrap_or_default(),
                welcome,
            };
            render(&page.chrome, &page)
        }
        // The form again, as it was typed, with what to change.
        Err(e) => new_world_form(&s, &session, welcome, Some((&form, say(e)))),
    }
}

#[derive(Template)]
#[template(path = "world.html")]
struct WorldPage {
    chrome: Chrome,
    world: WorldRow,
    idle: String,
    server_idle: i64,
    wake: String,
    releases: Vec<String>,
    /// The world's release is among those installed.
    release_listed: bool,
    runtime: String,
    foundry_version: String,
    last_activity: String,
    backups: Vec<BackupRow>,
    backups_on: bool,
    /// What is the matter with its address in DNS, if anything.
    dns_note: String,
    /// Where its uploads go, when worlds have object storage.
    storage_note: String,
    /// The library's packages it uses, and what it may pick (`kind:id`).
    packages: Vec<WorldPackageRow>,
    library: Vec<String>,
}

/// A sentence on where a world's uploads go, when worlds have object
/// storage: never its key.
fn storage_note(storage: Option<&tavern_core::storage::StorageStatus>) -> String {
    let Some(st) = storage else {
        return String::new();
    };
    let held = st
        .bytes
        .map(|b| format!(", holding {}", super::backups::size(b)))
        .unwrap_or_default();
    match (st.ready, &st.error) {
        (true, _) => format!(
            "Uploads go to the bucket {}{held}: in Foundry's file browser, choose Amazon S3.",
            st.place
        ),
        (false, None) => format!("Uploads will go to {}: Tavern is making it.", st.place),
        (false, Some(e)) => format!(
            "Uploads cannot go to {} yet ({e}); the world keeps them in its own folder until Tavern manages, and tries again.",
            st.place
        ),
    }
}

/// A sentence on a world's name in DNS when it does not lead here yet.
fn dns_note(dns: Option<&tavern_core::dns::DnsStatus>) -> String {
    use tavern_core::dns::DnsState;
    let Some(d) = dns else {
        return String::new();
    };
    match d.state {
        DnsState::Held => String::new(),
        DnsState::Pending => {
            format!("{} is not in DNS yet: Tavern is writing it.", d.host)
        }
        DnsState::Failing => format!(
            "{} could not be written in DNS ({}); players cannot reach it yet. Tavern tries again{}.",
            d.host,
            d.error.as_deref().unwrap_or("no reason given"),
            d.next_attempt_at
                .map(|t| format!(" at {}", when(t)))
                .unwrap_or_default()
        ),
    }
}

async fn world(State(s): State<AppState>, session: Session, Path(slug): Path<String>) -> Response {
    let view = match s.tavern.get_instance(&session.caller, &slug).await {
        Ok(v) => v,
        Err(e) => return session.core_error(e),
    };
    let backups_on = s.tavern.settings().backups.is_some();
    let backups: Vec<BackupView> = if backups_on {
        match s.tavern.list_backups(&session.caller, Some(&slug)).await {
            Ok(list) => list,
            Err(e) => return session.core_error(e),
        }
    } else {
        Vec::new()
    };
    let (packages, library) = match (
        s.tavern.world_packages(&session.caller, &slug).await,
        s.tavern.library(&session.caller).await,
    ) {
        (Ok(p), Ok(l)) => (p, l),
        (Err(e), _) | (_, Err(e)) => return session.core_error(e),
    };
    let mut library: Vec<String> = library
        .into_iter()
        .map(|e| format!("{}:{}", e.package.kind, e.package.id))
        .collect();
    library.dedup();
    let i = &view.instance;
    let releases: Vec<String> = s.tavern.releases().into_iter().map(|r| r.version).collect();
    let page = WorldPage {
        release_listed: i.release.as_ref().is_none_or(|r| releases.contains(r)),
        releases,
        chrome: session.chrome(i.slug.to_string(), "worlds"),
        idle: i
            .idle_timeout_minutes
            .map(|m| m.to_string())
            .unwrap_or_default(),
        server_idle: s.tavern.settings().idle_timeout.as_mins(),
        wake: i.wake_on_visit.map(|w| w.to_string()).unwrap_or_default(),
        runtime: i.runtime.to_string(),
        foundry_version: i.foundry_version.clone().unwrap_or_default(),
        last_activity: i.last_activity_at.map(when).unwrap_or_default(),
        backups: backups.iter().map(BackupRow::from).collect(),
        backups_on,
        dns_note: dns_note(view.dns.as_ref()),
        storage_note: storage_note(view.storage.as_ref()),
        packages: packages.into_iter().map(WorldPackageRow::from).collect(),
        library,
        world: WorldRow::from(&view),
    };
    render(&page.chrome, &page)
}

fn world_path(slug: &str) -> String {
    format!("/dashboard/worlds/{slug}")
}

async fn start(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    posted: Posted<NoFields>,
) -> Response {
    let said = format!("{slug} is starting.");
    desire(
        &s,
        &headers,
        &slug,
        &posted.session,
        DesiredState::Running,
        said,
    )
    .await
}

async fn stop(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    posted: Posted<NoFields>,
) -> Response {
    let said = format!("{slug} is going to sleep.");
    desire(
        &s,
        &headers,
        &slug,
        &posted.session,
        DesiredState::Stopped,
        said,
    )
    .await
}

/// Asks for a world to run or stop; back to its page with what happened.
async fn desire(
    s: &AppState,
    headers: &HeaderMap,
    slug: &str,
    session: &Session,
    desired: DesiredState,
    said: String,
) -> Response {
    let done = s
        .tavern
        .set_desired(&session.caller, slug, desired)
        .await
        .map(|_| said);
    redirect_with(s, headers, &world_path(slug), done.map_err(say))
}

#[derive(Deserialize)]
struct SettingsForm {
    #[serde(default)]
    idle_timeout_minutes: String,
    #[serde(default)]
    wake_on_visit: String,
    #[serde(default)]
    release: String,
    /// Change the release though some packages would not load on it.
    #[serde(default)]
    force: Option<String>,
}

/// The settings form: blank fields return to the server's settings; a new
/// release needs the world stopped (and takes a backup first).
fn settings_update(
    form: &SettingsForm,
    current_release: Option<&str>,
) -> Result<InstanceUpdate, String> {
    let idle = match form.idle_timeout_minutes.trim() {
        "" => None,
        m => Some(
            m.parse::<u32>()
                .map_err(|_| format!("{m:?} is not a number of minutes."))?,
        ),
    };
    let wake = match form.wake_on_visit.trim() {
        "" => None,
        w => Some(w.to_owned()),
    };
    let release = match form.release.trim() {
        "" => None,
        r if Some(r) == current_release => None,
        r => Some(r.to_owned()),
    };
    Ok(InstanceUpdate {
        idle_timeout_minutes: Some(idle),
        wake_on_visit: Some(wake),
        release,
        runtime: None,
        force: form.force.is_some(),
    })
}

async fn settings(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    posted: Posted<SettingsForm>,
) -> Response {
    let Posted { session, form } = posted;
    let current = match s.tavern.get_instance(&session.caller, &slug).await {
        Ok(v) => v,
        Err(e) => return session.core_error(e),
    };
    let update = match settings_update(&form, current.instance.release.as_deref()) {
        Ok(u) => u,
        Err(why) => return redirect_with(&s, &headers, &world_path(&slug), Err(why)),
    };
    let done = s
        .tavern
        .update_instance(&session.caller, &slug, update)
        .await
        .map(|_| "Settings saved.".to_owned());
    redirect_with(&s, &headers, &world_path(&slug), done.map_err(say))
}

#[derive(Deserialize)]
struct DestroyForm {
    #[serde(default)]
    confirm: String,
}

async fn destroy(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    posted: Posted<DestroyForm>,
) -> Response {
    if posted.form.confirm.trim() != slug {
        return redirect_with(
            &s,
            &headers,
            &world_path(&slug),
            Err(format!(
                "To destroy this world, type its name, {slug}, in the box."
            )),
        );
    }
    match s
        .tavern
        .destroy_instance(&posted.session.caller, &slug)
        .await
    {
        Ok(_) => redirect_with(
            &s,
            &headers,
            "/dashboard",
            Ok(format!(
                "{slug} is being destroyed; a last backup of it is kept."
            )),
        ),
        Err(e) => redirect_with(&s, &headers, &world_path(&slug), Err(say(e))),
    }
}

#[derive(Deserialize)]
struct LogsQuery {
    lines: Option<usize>,
}

const LOG_LINES: usize = 200;

#[derive(Template)]
#[template(path = "logs.html")]
struct LogsPage {
    chrome: Chrome,
    slug: String,
    lines: String,
}

async fn logs_page(
    State(s): State<AppState>,
    session: Session,
    Path(slug): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Response {
    match s
        .tavern
        .instance_logs(&session.caller, &slug, q.lines.unwrap_or(LOG_LINES))
        .await
    {
        Ok(lines) => {
            let page = LogsPage {
                chrome: session.chrome(format!("{slug}: log"), "worlds"),
                slug,
                lines: lines.join("\n"),
            };
            render(&page.chrome, &page)
        }
        Err(e) => session.core_error(e),
    }
}

/// The log's tail as text, for following it.
async fn logs_text(
    State(s): State<AppState>,
    session: Option<Session>,
    Path(slug): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Response {
    let Some(session) = session else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    match s
        .tavern
        .instance_logs(&session.caller, &slug, q.lines.unwrap_or(LOG_LINES))
        .await
    {
        Ok(lines) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            lines.join("\n"),
        )
            .into_response(),
        Err(e) => crate::ApiError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(idle: &str, wake: &str, release: &str) -> SettingsForm {
        SettingsForm {
            idle_timeout_minutes: idle.into(),
            wake_on_visit: wake.into(),
            release: release.into(),
            force: None,
        }
    }

    #[test]
    fn blank_settings_return_to_the_servers_and_the_same_release_is_no_change() {
        let u = settings_update(&form("", "", "12.331"), Some("12.331")).unwrap();
        assert_eq!(u.idle_timeout_minutes, Some(None));
        assert_eq!(u.wake_on_visit, Some(None));
        assert_eq!(u.release, None);
        let u = settings_update(&form(" 45 ", "anyone", "13.345"), Some("12.331")).unwrap();
        assert_eq!(u.idle_timeout_minutes, Some(Some(45)));
        assert_eq!(u.wake_on_visit, Some(Some("anyone".into())));
        assert_eq!(u.release.as_deref(), Some("13.345"));
        assert!(
            settings_update(&form("soon", "", ""), None)
                .unwrap_err()
                .contains("minutes")
        );
    }
}
