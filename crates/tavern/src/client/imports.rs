//! `tavern instance import`: brings a world or a whole Foundry user-data
//! folder from another host (a folder here, sent as a tar made on the way;
//! a file here, sent as it is; one at a URL, downloaded first; or one on
//! the server, read there), with a progress bar, and prints what was found,
//! what was left out and why, and what was done.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::Value;
use tavern_api::{
    BatchImportJson, FelddyImportRequest, ImportJson, ImportPathRequest, LeftOutJson, PackageJson,
};

use super::commands::{bar, download, path_part, upload_file};
use super::http::{Api, Conn, read};
use super::output::{Cell, Column, print_json, print_rows};

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The Tavern world to import into; made for the import when there is
    /// none (an existing world is stopped and backed up first).
    #[arg(required_unless_present = "from_felddy")]
    slug: Option<String>,
    /// A folder, a zip, tar, tar.gz or tar.zst file, or an http(s) URL of
    /// one.
    #[arg(
        long,
        required_unless_present = "from_felddy",
        conflicts_with = "from_felddy"
    )]
    from: Option<String>,
    /// A folder on the server whose folders are felddy volumes (each a
    /// user-data folder or holding one as data/): each is imported into
    /// the world named after its folder (admins).
    #[arg(long, conflicts_with_all = ["slug", "on_server", "release", "owner"])]
    from_felddy: Option<String>,
    /// --from is a path on the server, read there (admins; nothing is
    /// sent).
    #[arg(long)]
    on_server: bool,
    /// Only say what would be taken and what would happen; change nothing.
    #[arg(long)]
    check: bool,
    /// For a new world: the Foundry release it runs [default: the newest].
    #[arg(long)]
    release: Option<String>,
    /// For a new world: whose it is (admins) [default: yours].
    #[arg(long)]
    owner: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let api = Api::from_conn(&args.conn)?;
    if let Some(root) = &args.from_felddy {
        return felddy(&api, root, args.check, args.conn.json).await;
    }
    let (Some(slug), Some(from)) = (&args.slug, &args.from) else {
        bail!("name the world and --from, or give --from-felddy");
    };
    let mut query = Vec::new();
    if args.check {
        query.push("check=true".to_owned());
    }
    if let Some(r) = &args.release {
        query.push(format!("release={}", path_part_dotted(r)?));
    }
    if let Some(o) = &args.owner {
        query.push(format!("owner={}", path_part(o)?));
    }
    let mut path = format!("/api/v1/instances/{}/import", path_part(slug)?);
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let answer = if args.on_server {
        let body = ImportPathRequest { path: from.clone() };
        api.post(&path, &body).await?
    } else if from.starts_with("http://") || from.starts_with("https://") {
        let file = download(from, &std::env::temp_dir(), "import").await?;
        let sent = upload_file(&api, &path, &file, "application/octet-stream").await;
        let _ = std::fs::remove_file(&file);
        sent?
    } else {
        let local = PathBuf::from(from);
        let meta = std::fs::metadata(&local)
            .with_context(|| format!("cannot read {}", local.display()))?;
        match meta.is_dir() {
            true => send_folder(&api, &path, &local).await?,
            false => upload_file(&api, &path, &local, "application/octet-stream").await?,
        }
    };
    if args.conn.json {
        print_json(&answer);
        return Ok(());
    }
    tell(&read::<ImportJson>(&answer)?);
    Ok(())
}

/// Imports (or checks) every felddy volume below `root` on the server, and
/// says how each went.
async fn felddy(api: &Api, root: &str, check: bool, json: bool) -> anyhow::Result<()> {
    let body = FelddyImportRequest {
        path: root.to_owned(),
        check,
    };
    let answer = api.post("/api/v1/imports/felddy", &body).await?;
    if json {
        print_json(&answer);
        return Ok(());
    }
    let items: Vec<BatchImportJson> = read(&answer)?;
    if items.is_empty() {
        println!(
            "No felddy volumes below {root} (folders with Data/ or Config/options.json, or with data/ holding them)."
        );
        return Ok(());
    }
    print_rows(&items, BATCH_COLUMNS);
    for item in &items {
        if let Some(r) = &item.import {
            println!();
            println!("{} (from {}):", item.world, item.from);
            tell(r);
        }
    }
    if items.iter().any(|i| i.error.is_some()) {
        bail!("some volumes were not imported; the table says why");
    }
    Ok(())
}

const BATCH_COLUMNS: &[Column<BatchImportJson>] = &[
    Column::new("FROM", |i| Cell::text(&i.from)),
    Column::new("WORLD", |i| Cell::text(&i.world)),
    Column::new("RESULT", |i| match (&i.import, &i.error) {
        (Some(r), _) if r.done && r.created => Cell::text("imported into a new world"),
        (Some(r), _) if r.done => Cell::text("imported"),
        (Some(_), _) => Cell::text("checked: would be imported"),
        (None, Some(e)) => Cell::text(&e.message),
        (None, None) => Cell::Missing,
    }),
];

/// A release's name in a query: letters, digits, `.`, `-` and `_`.
fn path_part_dotted(s: &str) -> anyhow::Result<&str> {
    match !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        true => Ok(s),
        false => bail!("{s:?} is not a release's name"),
    }
}

/// Sends a folder as a tar made while it is sent (links kept as links),
/// with a progress bar over the files' bytes.
async fn send_folder(api: &Api, api_path: &str, dir: &Path) -> anyhow::Result<Value> {
    use futures_util::StreamExt as _;
    let total = folder_bytes(dir);
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .unwrap_or_else(|| "data".to_owned());
    let (writer, reader) = tokio::io::duplex(256 * 1024);
    let from = dir.to_owned();
    let packing = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut tar = tar::Builder::new(tokio_util::io::SyncIoBridge::new(writer));
        tar.follow_symlinks(false);
        tar.append_dir_all(&name, &from)
            .with_context(|| format!("cannot read {}", from.display()))?;
        tar.into_inner()
            .context("cannot finish the tar")?
            .shutdown()
            .context("cannot finish the tar")?;
        Ok(())
    });
    let pb = bar(Some(total), "sending");
    let counted = pb.clone();
    let stream =
        tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024).inspect(move |chunk| {
            if let Ok(bytes) = chunk {
                counted.inc(bytes.len() as u64);
            }
        });
    let sent = api
        .upload(
            api_path,
            "application/x-tar",
            reqwest::Body::wrap_stream(stream),
        )
        .await;
    pb.finish_and_clear();
    // A folder that could not be read says why, rather than the server's
    // word that the tar broke off.
    packing.await.context("packing the folder stopped")??;
    sent
}

/// The bytes of the files below `dir`, for the progress bar.
fn folder_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

const PACKAGE_COLUMNS: &[Column<PackageJson>] = &[
    Column::new("ID", |p| Cell::text(&p.id)),
    Column::new("TITLE", |p| Cell::maybe(p.title.as_ref())),
    Column::new("VERSION", |p| Cell::maybe(p.version.as_ref())),
];

const WORLD_COLUMNS: &[Column<PackageJson>] = &[
    Column::new("WORLD", |p| Cell::text(&p.id)),
    Column::new("TITLE", |p| Cell::maybe(p.title.as_ref())),
    Column::new("SYSTEM", |p| Cell::maybe(p.system.as_ref())),
    Column::new("FOUNDRY", |p| Cell::maybe(p.core_version.as_ref())),
];

const LEFT_OUT_COLUMNS: &[Column<LeftOutJson>] = &[
    Column::new("LEFT OUT", |o| Cell::text(&o.path)),
    Column::new("FILES", |o| Cell::text(o.files)),
    Column::new("SIZE", |o| Cell::size(Some(o.bytes))),
    Column::new("WHY", |o| Cell::text(&o.why)),
];

/// What was found, what was left out, and what was done, in words and
/// tables.
fn tell(r: &ImportJson) {
    let what = match r.kind.as_str() {
        "world" => "a world",
        _ => "a Foundry user-data folder",
    };
    let inside = match r.root.as_str() {
        "" => String::new(),
        root => format!(" (in {root}/)"),
    };
    println!(
        "Found {what}{inside}: {} files, {} ({} of assets).",
        r.files,
        tavern_types::words::size(r.bytes),
        tavern_types::words::size(r.assets_bytes)
    );
    print_rows(&r.worlds, WORLD_COLUMNS);
    if !r.systems.is_empty() {
        println!("Game systems");
        print_rows(&r.systems, PACKAGE_COLUMNS);
    }
    if !r.modules.is_empty() {
        println!("Modules");
        print_rows(&r.modules, PACKAGE_COLUMNS);
    }
    if !r.left_out.is_empty() {
        print_rows(&r.left_out, LEFT_OUT_COLUMNS);
    }
    for w in &r.warnings {
        println!("Note: {w}.");
    }
    if let Some(l) = &r.license {
        println!("License: {l}.");
    }
    let release = r.release.as_deref().unwrap_or("(none)");
    match (r.done, r.created) {
        (false, true) => println!(
            "Nothing was changed (a check). Importing makes the world {} on the release {release}.",
            r.world
        ),
        (false, false) => println!(
            "Nothing was changed (a check). Importing stops {} if it runs and backs it up first.",
            r.world
        ),
        (true, true) => println!(
            "Imported into the new world {} (Foundry {release}).",
            r.world
        ),
        (true, false) => {
            println!("Imported into {} (release {release}).", r.world);
            if let Some(b) = &r.backup {
                println!("What was there before is kept in backup {b}.");
            }
        }
    }
}
