//! `tavern backup`: take, list, download (with a progress bar), restore,
//! lock and delete backups of worlds, and move archives into repositories.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::Method;
use serde_json::Value;
use tavern_api::{BackupJson, BackupUpdate, MigrationJson, RestoreRequest};

use super::commands::{path_part, save_body, spinner};
use super::http::{Api, Conn, read};
use super::output::{Cell, Column, print, print_json};

const BACKUP_COLUMNS: &[Column<BackupJson>] = &[
    Column::new("ID", |b| Cell::text(&b.id)),
    Column::new("WORLD", |b| Cell::text(&b.instance)),
    Column::new("KIND", |b| Cell::text(&b.kind)),
    Column::new("STATUS", |b| Cell::text(&b.status)),
    Column::new("LIVE", |b| Cell::YesNo(b.live)),
    Column::new("LOCKED", |b| Cell::YesNo(b.locked)),
    Column::new("CREATED", |b| Cell::at(&b.created_at)),
    Column::new("SIZE", |b| Cell::size(b.size)),
    Column::new("FILES", |b| Cell::maybe(b.files)),
    Column::new("ERROR", |b| Cell::maybe(b.error.as_ref())),
];

#[derive(clap::Subcommand)]
pub enum BackupCommand {
    /// Back a world up now (a copy marked live when it runs).
    Create {
        slug: String,
        /// Wait until the backup is complete (or failed).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Backups, newest first: all you may see, or one world's.
    List {
        slug: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// One backup.
    Show {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Download a backup's archive (tar + zstd).
    Download {
        id: String,
        /// Where to write it; an existing file is not overwritten.
        #[arg(short, long)]
        output: PathBuf,
        /// A zip of the world's Data/ that a plain Foundry install or
        /// felddy takes as its user-data folder (the way out of Tavern),
        /// instead of Tavern's own archive.
        #[arg(long)]
        zip: bool,
        /// Put in the library's packages the world used (its game system
        /// and modules), for use where there is no such library.
        #[arg(long)]
        packages: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Restore a backup into its own world (stopped first; its current
    /// data backed up first) or, with --to, into a new world.
    Restore {
        id: String,
        /// A new world to restore into.
        #[arg(long)]
        to: Option<String>,
        /// Wait until the restore is done (or failed).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Keep a backup whatever the retention policy says.
    Lock {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Let retention remove a backup again.
    Unlock {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Delete a backup and its archive (or forget its snapshot).
    Delete {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print the password of the backup repositories (`format =
    /// "repository"`), to keep for restoring with restic if Tavern is lost.
    /// Run on the server: it reads the server's configuration, key and
    /// database, not the API.
    RepoKey(crate::repo_key::RepoKeyArgs),
    /// Move every `.tar.zst` backup into its world's repository (admins;
    /// with backups.format = "repository"): each checked, kept as a
    /// snapshot with its own time and tags, then its archive removed.
    Migrate {
        /// Wait until every backup has been tried, with a progress bar.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

/// Moves archives into repositories; with `wait`, follows it to the end
/// (failing when any could not be moved).
async fn migrate(wait: bool, conn: Conn) -> anyhow::Result<()> {
    const PATH: &str = "/api/v1/admin/backup-migration";
    let api = Api::from_conn(&conn)?;
    let mut m = api.post_empty(PATH).await?;
    if wait {
        let started: MigrationJson = read(&m)?;
        let pb = indicatif::ProgressBar::with_draw_target(
            Some(started.total),
            indicatif::ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len}") {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_message("moving backups");
        loop {
            let now: MigrationJson = read(&m)?;
            pb.set_position(now.moved + now.failed.len() as u64);
            if now.state != "running" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            m = api.get(PATH).await?;
        }
        pb.finish_and_clear();
    }
    if conn.json {
        print_json(&m);
    }
    let done: MigrationJson = read(&m)?;
    if !conn.json {
        match done.state.as_str() {
            "running" => println!(
                "Moving {} backups into their repositories; `tavern backup migrate --wait` follows it.",
                done.total
            ),
            _ => println!(
                "Moved {} of {} backups into their repositories.",
                done.moved, done.total
            ),
        }
        for f in &done.failed {
            println!("  not moved: {f}");
        }
    }
    if !done.failed.is_empty() {
        bail!(
            "{} backups could not be moved; they stay archives (run it again to retry)",
            done.failed.len()
        );
    }
    Ok(())
}

/// Polls a backup until `done` says its JSON is final (at most an hour),
/// with a spinner saying `what` in a terminal.
async fn wait_for(
    api: &Api,
    id: &str,
    what: &str,
    done: impl Fn(&BackupJson) -> bool,
) -> anyhow::Result<Value> {
    let path = format!("/api/v1/backups/{}", path_part(id)?);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    let pb = spinner();
    pb.set_message(what.to_owned());
    let result = loop {
        let b = api.get(&path).await?;
        if done(&read(&b)?) {
            break Ok(b);
        }
        if tokio::time::Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "gave up waiting after an hour; `tavern backup show {id}` tells how it goes"
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    pb.finish_and_clear();
    result
}

pub async fn backup(cmd: BackupCommand) -> anyhow::Result<()> {
    match cmd {
        BackupCommand::RepoKey(args) => crate::repo_key::run(args).await?,
        BackupCommand::Migrate { wait, conn } => migrate(wait, conn).await?,
        BackupCommand::Create { slug, wait, conn } => {
            let api = Api::from_conn(&conn)?;
            let mut b = api
                .post_empty(&format!("/api/v1/instances/{}/backups", path_part(&slug)?))
                .await?;
            if wait {
                let id = read::<BackupJson>(&b)?.id;
                b = wait_for(&api, &id, &format!("backing up {slug}"), |b| {
                    b.status != "in_progress"
                })
                .await?;
                let done: BackupJson = read(&b)?;
                if done.status == "failed" {
                    bail!(
                        "the backup failed: {}",
                        done.error.as_deref().unwrap_or("no reason given")
                    );
                }
            }
            print(conn.json, &b, BACKUP_COLUMNS)?;
        }
        BackupCommand::List { slug, conn } => {
            let path = match slug {
                Some(s) => format!("/api/v1/instances/{}/backups", path_part(&s)?),
                None => "/api/v1/backups".to_owned(),
            };
            let list = Api::from_conn(&conn)?.get(&path).await?;
            print(conn.json, &list, BACKUP_COLUMNS)?;
        }
        BackupCommand::Show { id, conn } => {
            let b = Api::from_conn(&conn)?
                .get(&format!("/api/v1/backups/{}", path_part(&id)?))
                .await?;
            print(conn.json, &b, BACKUP_COLUMNS)?;
            let held = read::<BackupJson>(&b)?.packages.unwrap_or_default();
            if !conn.json && !held.is_empty() {
                let named: Vec<String> = held
                    .iter()
                    .map(|p| format!("{} {} {}", p.kind, p.id, p.version))
                    .collect();
                println!("Library packages its world used: {}.", named.join(", "));
            }
        }
        BackupCommand::Download {
            id,
            output,
            zip,
            packages,
            conn,
        } => {
            if output.exists() {
                bail!("{} exists already; choose another file", output.display());
            }
            let api = Api::from_conn(&conn)?;
            let resp = api
                .send(
                    Method::GET,
                    &format!(
                        "/api/v1/backups/{}/download?format={}&packages={packages}",
                        path_part(&id)?,
                        if zip { "zip" } else { "tar.zst" }
                    ),
                    None,
                )
                .await?;
            let partial = output.with_extension("partial");
            let saved = save_body(resp, &partial, "downloading").await;
            match saved {
                Ok(()) => std::fs::rename(&partial, &output)
                    .with_context(|| format!("cannot write {}", output.display()))?,
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e);
                }
            }
            if !conn.json {
                println!("Saved backup {id} to {}.", output.display());
            }
        }
        BackupCommand::Restore { id, to, wait, conn } => {
            let api = Api::from_conn(&conn)?;
            let mut b = api
                .post(
                    &format!("/api/v1/backups/{}/restore", path_part(&id)?),
                    &RestoreRequest { to },
                )
                .await?;
            if wait {
                b = wait_for(&api, &id, "restoring", |b| {
                    b.restore.as_ref().is_some_and(|r| r.state != "running")
                })
                .await?;
            }
            let restore = read::<BackupJson>(&b)?.restore;
            if let Some(r) = &restore
                && r.state == "failed"
                && wait
            {
                bail!(
                    "the restore failed: {}",
                    r.error.as_deref().unwrap_or("no reason given")
                );
            }
            if conn.json {
                print_json(&b);
            } else {
                let (into, state) = restore.as_ref().map_or(("its world", "running"), |r| {
                    (r.to.as_str(), r.state.as_str())
                });
                println!("Restoring backup {id} into {into}: {state}.");
                for note in restore.iter().flat_map(|r| &r.notes) {
                    println!("  {note}");
                }
            }
        }
        BackupCommand::Lock { id, conn } => set_locked(&id, true, &conn).await?,
        BackupCommand::Unlock { id, conn } => set_locked(&id, false, &conn).await?,
        BackupCommand::Delete { id, conn } => {
            Api::from_conn(&conn)?
                .delete(&format!("/api/v1/backups/{}", path_part(&id)?))
                .await?;
            if !conn.json {
                println!("Deleted backup {id}.");
            }
        }
    }
    Ok(())
}

async fn set_locked(id: &str, locked: bool, conn: &Conn) -> anyhow::Result<()> {
    let b = Api::from_conn(conn)?
        .patch(
            &format!("/api/v1/backups/{}", path_part(id)?),
            &BackupUpdate { locked },
        )
        .await?;
    print(conn.json, &b, BACKUP_COLUMNS)
}
