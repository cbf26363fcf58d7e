//! `tavern package`: the community's package library (adding with a
//! progress bar, listing, updating, removing), and `tavern instance
//! packages`: the library packages one world uses.

use anyhow::bail;
use tavern_api::{
    AddPackageRequest, AddWorldPackageRequest, LibraryPackageJson, PackageJobJson,
    PackageUpdateJson, UpdatePackagesRequest, WorldPackageJson,
};

use super::commands::{bar, path_part};
use super::http::{Api, Conn, read};
use super::output::{Cell, Column, print, print_json};
use crate::config::parse_named;

const LIBRARY_COLUMNS: &[Column<LibraryPackageJson>] = &[
    Column::new("KIND", |p| Cell::text(&p.kind)),
    Column::new("ID", |p| Cell::text(&p.id)),
    Column::new("VERSION", |p| Cell::text(&p.version)),
    Column::new("TITLE", |p| Cell::maybe(p.title.as_ref())),
    Column::new("SIZE", |p| Cell::size(Some(p.bytes))),
    Column::new("FOUNDRY", |p| {
        let c = &p.compatibility;
        Cell::text(format!(
            "{}–{}",
            c.minimum.as_deref().unwrap_or("?"),
            c.maximum
                .as_deref()
                .or(c.verified.as_deref())
                .unwrap_or("?")
        ))
    }),
    Column::new("USED BY", |p| Cell::text(p.used_by.join(", "))),
];

const UPDATE_COLUMNS: &[Column<PackageUpdateJson>] = &[
    Column::new("ID", |u| Cell::text(&u.id)),
    Column::new("CURRENT", |u| Cell::text(&u.current)),
    Column::new("OFFERED", |u| Cell::maybe(u.offered.as_ref())),
    Column::new("OUTCOME", |u| {
        Cell::text(match (&u.reason, u.job) {
            (Some(why), _) => format!("skipped: {why}"),
            (None, Some(job)) => format!("fetching (job {job})"),
            _ => u.outcome.replace('_', " "),
        })
    }),
];

const WORLD_COLUMNS: &[Column<WorldPackageJson>] = &[
    Column::new("KIND", |p| Cell::text(&p.kind)),
    Column::new("ID", |p| Cell::text(&p.id)),
    Column::new("VERSION", |p| Cell::text(&p.version)),
    Column::new("STATE", |p| Cell::text(&p.state)),
    Column::new("NOTE", |p| {
        let newer = p.newer.as_ref().map(|v| format!("{v} in the library"));
        Cell::maybe(p.warning.clone().or(newer))
    }),
];

#[derive(clap::Subcommand)]
pub enum PackageCommand {
    /// Add a game system, module or world template to the library from
    /// its manifest's URL (admins); what it needs comes with it.
    Add {
        /// The package's system.json, module.json or world.json URL.
        manifest_url: String,
        /// system, module or world, when the manifest does not say.
        #[arg(long)]
        kind: Option<String>,
        /// The zip's SHA-256: a zip that differs is refused.
        #[arg(long)]
        sha256: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Every version in the library, and the worlds that use it.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Fetch newer versions from the manifests (admins); no world changes
    /// until its game master picks the new version.
    Update {
        /// Only this package.
        id: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove a version no world uses (admins).
    Remove {
        /// The package: `id`, or `system:id` / `module:id` / `world:id`.
        package: String,
        version: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(clap::Subcommand)]
pub enum WorldPackagesCommand {
    /// The library packages the world uses.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Use a package from the library (with what it needs), from the
    /// world's next start.
    Add {
        /// `id`, or `system:id` / `module:id` / `world:id`.
        package: String,
        /// A version in the library (its newest when left out).
        #[arg(long)]
        version: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop using a package, from the world's next start.
    Remove {
        /// `id`, or `system:id` / `module:id` / `world:id`.
        package: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// Follows a fetch until it ends, with a progress bar per zip.
async fn follow(api: &Api, mut job: PackageJobJson, json: bool) -> anyhow::Result<()> {
    let mut pb: Option<(String, indicatif::ProgressBar)> = None;
    loop {
        if !json {
            if pb.as_ref().is_none_or(|(name, _)| *name != job.current) {
                if let Some((_, old)) = pb.take() {
                    old.finish_and_clear();
                }
                pb = Some((job.current.clone(), bar(job.total, &job.current)));
            }
            if let Some((_, b)) = &pb {
                if let Some(t) = job.total {
                    b.set_length(t);
                }
                b.set_position(job.received);
            }
        }
        if job.state != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let answer = api
            .get(&format!("/api/v1/packages/jobs/{}", job.id))
            .await?;
        job = read(&answer)?;
    }
    if let Some((_, b)) = pb {
        b.finish_and_clear();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&job)?);
    } else {
        for added in &job.added {
            println!("Added {added} to the library.");
        }
        for note in &job.notes {
            println!("Note: {note}");
        }
    }
    match (job.state.as_str(), job.error) {
        ("failed", Some(why)) => bail!("fetching {} failed: {why}", job.package),
        ("failed", None) => bail!("fetching {} failed", job.package),
        _ => Ok(()),
    }
}

pub async fn package(cmd: PackageCommand) -> anyhow::Result<()> {
    match cmd {
        PackageCommand::Add {
            manifest_url,
            kind,
            sha256,
            conn,
        } => {
            let api = Api::from_conn(&conn)?;
            let body = AddPackageRequest {
                manifest_url,
                kind,
                sha256,
            };
            let job: PackageJobJson = read(&api.post("/api/v1/packages", &body).await?)?;
            follow(&api, job, conn.json).await?;
        }
        PackageCommand::List { conn } => {
            let list = Api::from_conn(&conn)?.get("/api/v1/packages").await?;
            print(conn.json, &list, LIBRARY_COLUMNS)?;
        }
        PackageCommand::Update { id, conn } => {
            let api = Api::from_conn(&conn)?;
            let answer = api
                .post("/api/v1/packages/update", &UpdatePackagesRequest { id })
                .await?;
            print(conn.json, &answer, UPDATE_COLUMNS)?;
            let found: Vec<PackageUpdateJson> = read(&answer)?;
            for job in found.iter().filter_map(|u| u.job) {
                let j = read(&api.get(&format!("/api/v1/packages/jobs/{job}")).await?)?;
                follow(&api, j, conn.json).await?;
            }
        }
        PackageCommand::Remove {
            package,
            version,
            conn,
        } => {
            let (kind, id) = parse_named(&package).map_err(anyhow::Error::msg)?;
            let api = Api::from_conn(&conn)?;
            let kind = match kind {
                Some(k) => k,
                None => {
                    let list: Vec<LibraryPackageJson> = read(&api.get("/api/v1/packages").await?)?;
                    let mut kinds: Vec<&str> = list
                        .iter()
                        .filter(|p| p.id == id)
                        .map(|p| p.kind.as_str())
                        .collect();
                    kinds.dedup();
                    match kinds.as_slice() {
                        [one] => tavern_foundry::manifest::PackageKind::parse(one)
                            .ok_or_else(|| anyhow::anyhow!("unknown kind {one}"))?,
                        [] => bail!("{id} is not in the library"),
                        _ => bail!("{id} names several kinds: say system:{id} or module:{id}"),
                    }
                }
            };
            api.delete(&format!(
                "/api/v1/packages/{kind}/{}/{}",
                id_part(&id)?,
                version_part(&version)?
            ))
            .await?;
            println!("Removed {kind} {id} {version} from the library.");
        }
    }
    Ok(())
}

/// A version as a path segment: what a version may hold, `+` escaped.
fn version_part(v: &str) -> anyhow::Result<String> {
    if !tavern_packages::is_version_name(v) {
        bail!("{v:?} is not a package version");
    }
    Ok(v.replace('+', "%2B"))
}

/// A package id as a path segment (an id holds nothing to escape).
fn id_part(id: &str) -> anyhow::Result<&str> {
    if !tavern_foundry::manifest::is_package_id(id) {
        bail!("{id:?} is not a package id");
    }
    Ok(id)
}

pub async fn world_packages(slug: &str, cmd: WorldPackagesCommand) -> anyhow::Result<()> {
    let (WorldPackagesCommand::List { conn }
    | WorldPackagesCommand::Add { conn, .. }
    | WorldPackagesCommand::Remove { conn, .. }) = &cmd;
    let api = Api::from_conn(conn)?;
    let json = conn.json;
    let base = format!("/api/v1/instances/{}/packages", path_part(slug)?);
    let answer = match cmd {
        WorldPackagesCommand::List { .. } => api.get(&base).await?,
        WorldPackagesCommand::Add {
            package, version, ..
        } => {
            let (kind, id) = parse_named(&package).map_err(anyhow::Error::msg)?;
            let body = AddWorldPackageRequest {
                id,
                kind: kind.map(|k| k.to_string()),
                version,
            };
            api.post(&base, &body).await?
        }
        WorldPackagesCommand::Remove { package, .. } => {
            let (kind, id) = parse_named(&package).map_err(anyhow::Error::msg)?;
            let query = kind.map(|k| format!("?kind={k}")).unwrap_or_default();
            api.delete(&format!("{base}/{}{query}", id_part(&id)?))
                .await?
        }
    };
    if json {
        print_json(&answer);
    } else {
        print(false, &answer, WORLD_COLUMNS)?;
        let list: Vec<WorldPackageJson> = read(&answer)?;
        if list.iter().any(|p| p.state == "clash") {
            println!(
                "A package marked clash is one the world installed itself through Foundry: that is what Foundry loads, not the library's."
            );
        }
    }
    Ok(())
}
