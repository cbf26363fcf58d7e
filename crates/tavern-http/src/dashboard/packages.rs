//! The package library in the dashboard: the admins' page (the library's
//! versions and the worlds using them, adding from a manifest URL with the
//! fetches' progress, updating, removing), and the packages section of a
//! world's page (its game master picks and drops packages).

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use tavern_core::packages::{
    JobState, LibraryEntry, PackageJob, UpdateOutcome, WorldPackageState, WorldPackageView,
};
use tavern_foundry::manifest::PackageKind;
use tavern_types::words::size;

use super::{Chrome, NoFields, Posted, Session, redirect_with, render, say, when};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/packages", get(library).post(add))
        .route("/admin/packages/update", post(update))
        .route("/admin/packages/remove", post(remove))
        .route("/dashboard/worlds/{slug}/packages", post(choose))
        .route(
            "/dashboard/worlds/{slug}/packages/remove",
            post(drop_package),
        )
}

const LIBRARY: &str = "/admin/packages";

/// `kind:id` (or a bare id) as a form gives it.
fn kind_and_id(text: &str) -> Result<(Option<PackageKind>, String), String> {
    let text = text.trim();
    match text.split_once(':') {
        None if text.is_empty() => Err("Choose a package.".into()),
        None => Ok((None, text.to_owned())),
        Some((k, id)) => match PackageKind::parse(k) {
            Some(kind) => Ok((Some(kind), id.to_owned())),
            None => Err(format!(
                "{k:?} is not a kind of package (system, module or world)."
            )),
        },
    }
}

/// One version in the library, as the admins' page shows it.
pub(super) struct LibraryRow {
    kind: String,
    id: String,
    version: String,
    title: String,
    size: String,
    compatibility: String,
    requires: String,
    used_by: String,
    in_use: bool,
}

impl From<LibraryEntry> for LibraryRow {
    fn from(e: LibraryEntry) -> Self {
        let p = e.package;
        let c = &p.compatibility;
        let compatibility = [
            ("from", &c.minimum),
            ("verified", &c.verified),
            ("up to", &c.maximum),
        ]
        .iter()
        .filter_map(|(word, v)| v.as_ref().map(|v| format!("{word} {v}")))
        .collect::<Vec<_>>()
        .join(", ");
        Self {
            kind: p.kind.to_string(),
            title: p.title.unwrap_or_default(),
            size: size(p.bytes),
            compatibility,
            requires: p
                .requires
                .iter()
                .map(|r| format!("{} {}", r.kind, r.id))
                .collect::<Vec<_>>()
                .join(", "),
            in_use: !e.used_by.is_empty(),
            used_by: e
                .used_by
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            id: p.id,
            version: p.version,
        }
    }
}

/// A fetch, as the admins' page shows it.
pub(super) struct JobRow {
    id: u64,
    package: String,
    current: String,
    running: bool,
    /// Bytes received, and of how many when known.
    received: u64,
    total: u64,
    progress: String,
    outcome: String,
    started: String,
}

impl From<PackageJob> for JobRow {
    fn from(j: PackageJob) -> Self {
        let progress = match j.total {
            Some(t) => format!("{} of {}", size(j.received), size(t)),
            None => size(j.received),
        };
        let mut outcome = match &j.state {
            JobState::Running => "fetching".to_owned(),
            JobState::Done if j.added.is_empty() => "done".to_owned(),
            JobState::Done => format!("added {}", j.added.join(", ")),
            JobState::Failed(why) => format!("failed: {why}"),
        };
        for note in &j.notes {
            outcome.push_str("; ");
            outcome.push_str(note);
        }
        Self {
            id: j.id,
            package: j.package,
            current: j.current,
            running: j.state == JobState::Running,
            received: j.received,
            total: j.total.unwrap_or(0),
            progress,
            outcome,
            started: when(j.started_at),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_packages.html")]
struct LibraryPage {
    chrome: Chrome,
    packages: Vec<LibraryRow>,
    jobs: Vec<JobRow>,
    /// Some fetch is under way: the page looks again by itself.
    running: bool,
}

async fn library(State(s): State<AppState>, session: Session) -> Response {
    if !session.is_admin() {
        return session.error_page(StatusCode::NOT_FOUND, "There is no such page.");
    }
    // The fetches first, then the library: a fetch is marked ended only
    // after what it added is stored, so a page that shows it ended (and so
    // stops looking again) also lists what it added.
    let jobs = match s.tavern.package_jobs(&session.caller) {
        Ok(j) => j,
        Err(e) => return session.core_error(e),
    };
    let packages = match s.tavern.library(&session.caller).await {
        Ok(p) => p,
        Err(e) => return session.core_error(e),
    };
    let jobs: Vec<JobRow> = jobs.into_iter().map(JobRow::from).collect();
    let page = LibraryPage {
        chrome: session.chrome("Packages", "admin"),
        running: jobs.iter().any(|j| j.running),
        packages: packages.into_iter().map(LibraryRow::from).collect(),
        jobs,
    };
    render(&page.chrome, &page)
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    manifest_url: String,
    #[serde(default)]
    sha256: String,
}

async fn add(State(s): State<AppState>, headers: HeaderMap, posted: Posted<AddForm>) -> Response {
    let form = posted.form;
    let sha256 = Some(form.sha256.trim().to_owned()).filter(|s| !s.is_empty());
    let done = s
        .tavern
        .add_package(
            &posted.session.caller,
            form.manifest_url.trim(),
            None,
            sha256,
        )
        .await
        .map(|job| {
            format!(
                "Fetching {} (and what it needs); its progress is below.",
                job.package
            )
        });
    redirect_with(&s, &headers, LIBRARY, done.map_err(say))
}

async fn update(
    State(s): State<AppState>,
    headers: HeaderMap,
    posted: Posted<NoFields>,
) -> Response {
    let done = s
        .tavern
        .update_packages(&posted.session.caller, None)
        .await
        .map(|found| {
            let said: Vec<String> = found
                .iter()
                .map(|u| match &u.outcome {
                    UpdateOutcome::UpToDate => format!("{} is up to date", u.id),
                    UpdateOutcome::Fetching(_) => format!(
                        "{} {} is being fetched",
                        u.id,
                        u.offered.as_deref().unwrap_or_default()
                    ),
                    UpdateOutcome::Skipped(why) => format!("{}: {why}", u.id),
                })
                .collect();
            match said.is_empty() {
                true => "The library is empty.".to_owned(),
                false => format!("{}.", said.join("; ")),
            }
        });
    redirect_with(&s, &headers, LIBRARY, done.map_err(say))
}

#[derive(Deserialize)]
struct RemoveForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    version: String,
}

async fn remove(
    State(s): State<AppState>,
    headers: HeaderMap,
    posted: Posted<RemoveForm>,
) -> Response {
    let form = posted.form;
    let done = async {
        let kind = PackageKind::parse(&form.kind);
        s.tavern
            .remove_package(&posted.session.caller, kind, &form.id, &form.version)
            .await
            .map_err(say)
    }
    .await
    .map(|()| format!("{} {} is out of the library.", form.id, form.version));
    redirect_with(&s, &headers, LIBRARY, done)
}

/// A package a world uses, as its page shows it.
pub(super) struct WorldPackageRow {
    pub kind: String,
    pub id: String,
    pub version: String,
    pub title: String,
    /// Ready, or what is the matter.
    pub state: String,
    pub warning: String,
    pub newer: String,
}

impl From<WorldPackageView> for WorldPackageRow {
    fn from(v: WorldPackageView) -> Self {
        Self {
            kind: v.kind.to_string(),
            title: v.title.unwrap_or_default(),
            state: match v.state {
                WorldPackageState::Ready => "ready",
                WorldPackageState::Clash => {
                    "the world has its own package of this id, which Foundry loads instead"
                }
                WorldPackageState::Missing => "its files are missing from the library",
            }
            .to_owned(),
            warning: v.fit.as_ref().map(tavern_api::warning).unwrap_or_default(),
            newer: v.newer.unwrap_or_default(),
            id: v.id,
            version: v.version,
        }
    }
}

fn world_path(slug: &str) -> String {
    format!("/dashboard/worlds/{slug}#packages-h")
}

#[derive(Deserialize)]
struct ChooseForm {
    /// `kind:id`.
    #[serde(default)]
    package: String,
    #[serde(default)]
    version: String,
}

async fn choose(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    posted: Posted<ChooseForm>,
) -> Response {
    let form = posted.form;
    let version = Some(form.version.trim()).filter(|v| !v.is_empty());
    let done = async {
        let (kind, id) = kind_and_id(&form.package)?;
        s.tavern
            .add_world_package(&posted.session.caller, &slug, kind, &id, version)
            .await
            .map_err(say)?;
        Ok(format!(
            "{slug} uses {id} (with what it needs) from its next start."
        ))
    }
    .await;
    redirect_with(&s, &headers, &world_path(&slug), done)
}

async fn drop_package(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    posted: Posted<ChooseForm>,
) -> Response {
    let done = async {
        let (kind, id) = kind_and_id(&posted.form.package)?;
        s.tavern
            .remove_world_package(&posted.session.caller, &slug, kind, &id)
            .await
            .map_err(say)?;
        Ok(format!("{slug} no longer uses {id} from its next start."))
    }
    .await;
    redirect_with(&s, &headers, &world_path(&slug), done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_is_named_by_kind_and_id_or_id_alone() {
        assert_eq!(
            kind_and_id("module:dice"),
            Ok((Some(PackageKind::Module), "dice".to_owned()))
        );
        assert_eq!(kind_and_id(" pf2e "), Ok((None, "pf2e".to_owned())));
        assert!(kind_and_id("").is_err());
        assert!(kind_and_id("plugin:dice").is_err());
    }
}
