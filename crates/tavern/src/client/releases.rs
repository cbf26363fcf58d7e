//! `tavern release`: Foundry releases installed on the server.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde_json::Value;
use tavern_api::ReleaseJson;

use super::commands::{bar, save_body};
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
                (None, Some(url)) => (download(&url, &std::env::temp_dir()).await?, true),
                (None, None) => bail!("pass --zip FILE or --url URL"),
            };
            let installed = upload_release(&api, &path).await;
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

/// Sends a Foundry zip to the server, with a progress bar.
async fn upload_release(api: &Api, path: &std::path::Path) -> anyhow::Result<Value> {
    use futures_util::StreamExt as _;
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    let size = file.metadata().await.map(|m| m.len()).ok();
    let pb = bar(size, "sending");
    let counted = pb.clone();
    let stream = tokio_util::io::ReaderStream::new(file).inspect(move |chunk| {
        if let Ok(bytes) = chunk {
            counted.inc(bytes.len() as u64);
        }
    });
    let answer = api
        .upload(
            "/api/v1/releases",
            "application/zip",
            reqwest::Body::wrap_stream(stream),
        )
        .await;
    pb.finish_and_clear();
    answer
}

/// Downloads `url` into `dir` with a progress bar; a failed download
/// leaves nothing behind.
async fn download(url: &str, dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("the URL {url:?} must start with http:// or https://");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!(".download-{}.zip", std::process::id()));
    let result: anyhow::Result<()> = async {
        let resp = reqwest::get(url)
            .await
            .context("cannot download the release")?;
        if !resp.status().is_success() {
            bail!("downloading the release failed: HTTP {}", resp.status());
        }
        save_body(resp, &path, "downloading").await
    }
    .await;
    match result {
        Ok(()) => Ok(path),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}
