//! `tavern release`: Foundry releases installed on the server.

use std::path::PathBuf;

use anyhow::bail;
use tavern_api::ReleaseJson;

use super::commands::{download, upload_file};
use super::http::{Api, Conn, read};
use super::output::{Cell, Column, print, print_json};

const RELEASE_COLUMNS: &[Column<ReleaseJson>] = &[
    Column::new("VERSION", |r| Cell::text(&r.version)),
    Column::new("LAYOUT", |r| Cell::text(&r.layout)),
];

#[derive(clap::Subcommand)]
pub enum ReleaseCommand {
    /// Install a Foundry VTT release (the Linux or Node.js zip) on the
    /// server, beside the others (admins).
    Add {
        /// A Foundry zip on disk: sent to the server.
        #[arg(long, conflicts_with = "url", required_unless_present = "url")]
        zip: Option<PathBuf>,
        /// Download the zip here first (e.g. a timed URL from
        /// foundryvtt.com), then send it.
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// The releases the server can run (newest last: what a world made
    /// without `--release` gets).
    List {
        #[command(flatten)]
        conn: Conn,
    },
}

pub async fn release(cmd: ReleaseCommand) -> anyhow::Result<()> {
    match cmd {
        ReleaseCommand::List { conn } => {
            let list = Api::from_conn(&conn)?.get("/api/v1/releases").await?;
            print(conn.json, &list, RELEASE_COLUMNS)?;
        }
        ReleaseCommand::Add { zip, url, conn } => {
            let api = Api::from_conn(&conn)?;
            let (path, downloaded) = match (zip, url) {
                (Some(p), _) => (p, false),
                (None, Some(url)) => (
                    download(&url, &std::env::temp_dir(), "release").await?,
                    true,
                ),
                (None, None) => bail!("pass --zip FILE or --url URL"),
            };
            let installed = upload_file(&api, "/api/v1/releases", &path, "application/zip").await;
            if downloaded {
                let _ = std::fs::remove_file(&path);
            }
            let installed = installed?;
            if conn.json {
                print_json(&installed);
            } else {
                println!(
                    "Installed Foundry VTT {} on the server.",
                    read::<ReleaseJson>(&installed)?.version
                );
            }
        }
    }
    Ok(())
}
