//! `tavern data-agent`: the short-lived pod (Kubernetes) or task (ECS)
//! through which Tavern reads and writes a world's data, for backups,
//! restores and a destroy. `GET /archive` answers the world's data (the
//! claim's `data/`, or on EFS `/worlds/<id>`) as a Tavern archive;
//! `PUT /archive?size=…&sha256=…&bytes=…&files=…` puts an archive in its
//! place, held to that record of it, verified, unpacked beside it and
//! swapped in; `DELETE /archive` deletes it; `GET /license` answers the
//! `license.json` Foundry signed. Every request but `/healthz` carries the
//! agent's token (its Secret's file, or on ECS its environment).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt as _;
use tavern_backup::local::{self, RestoreError};
use tokio::io::AsyncWriteExt as _;

#[derive(clap::Args)]
pub struct DataAgentArgs {
    /// Where the world's claim is mounted (or, on ECS, every world's
    /// directory).
    #[arg(long)]
    claim: PathBuf,
    /// The world's data: this directory of the claim.
    #[arg(long, default_value = "data", value_parser = dir_name)]
    data: String,
    /// Where to listen.
    #[arg(long, default_value = "0.0.0.0:8081")]
    listen: SocketAddr,
    /// The file holding the token every request must carry.
    #[arg(long, conflicts_with = "token_env")]
    token_file: Option<PathBuf>,
    /// Or an environment variable holding it (ECS's overrides).
    #[arg(long, default_value = "TAVERN_AGENT_TOKEN")]
    token_env: String,
}

/// One directory's name: no way out of the claim.
fn dir_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s != "."
        && s != ".."
        && !s.starts_with(".tavern")
        && !s.contains('/')
        && !s.contains('\0');
    match ok {
        true => Ok(s.to_owned()),
        false => Err(format!("{s:?} is not the name of a directory of the claim")),
    }
}

struct Agent {
    claim: PathBuf,
    data: String,
    token: String,
}

impl Agent {
    fn data(&self) -> PathBuf {
        self.claim.join(&self.data)
    }

    fn allowed(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        subtle::ConstantTimeEq::ct_eq(given.as_bytes(), self.token.as_bytes()).into()
    }
}

pub async fn run(args: DataAgentArgs) -> anyhow::Result<()> {
    let token = match &args.token_file {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the token {}", file.display()))?,
        None => std::env::var(&args.token_env).with_context(|| {
            format!("neither --token-file nor ${} gives a token", args.token_env)
        })?,
    }
    .trim()
    .to_owned();
    anyhow::ensure!(!token.is_empty(), "the token file is empty");
    let agent = Arc::new(Agent {
        claim: args.claim,
        data: args.data,
        token,
    });
    // A restore cut off between its two renames is put back first.
    if local::undo_interrupted_restore(&agent.data())
        .with_context(|| format!("cannot check {}", agent.data().display()))?
    {
        eprintln!("a restore was cut off; the world's data was put back");
    }
    let stop = crate::signals::termination()?;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/archive", get(export).put(import).delete(delete))
        .route("/license", get(license))
        // Archives are as large as worlds.
        .layer(DefaultBodyLimit::disable())
        .with_state(agent);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("data agent listening on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop.await;
        })
        .await?;
    Ok(())
}

fn refused(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

/// The world's `Config/license.json`, as Foundry left it.
async fn license(State(agent): State<Arc<Agent>>, headers: HeaderMap) -> Response {
    if !agent.allowed(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "a token is needed");
    }
    match tokio::fs::read_to_string(agent.data().join("Config/license.json")).await {
        Ok(text) => text.into_response(),
        Err(_) => refused(StatusCode::NOT_FOUND, "the world has no license.json"),
    }
}

/// The world's data as an archive, streamed while it is written.
async fn export(State(agent): State<Arc<Agent>>, headers: HeaderMap) -> Response {
    if !agent.allowed(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "a token is needed");
    }
    let data = agent.data();
    if !data.is_dir() {
        return refused(StatusCode::NOT_FOUND, "the world has no data yet");
    }
    let stream = tavern_backup::stream::blocking_stream(move |out| {
        tavern_backup::archive::write(&data, out, 0).map(|_| ())
    });
    Response::new(Body::from_stream(stream))
}

/// An archive in place of the world's data: kept on the claim while it
/// arrives, then verified, unpacked beside the data and swapped in.
async fn import(
    State(agent): State<Arc<Agent>>,
    headers: HeaderMap,
    Query(record): Query<tavern_types::ArchiveRecord>,
    body: Body,
) -> Response {
    if !agent.allowed(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "a token is needed");
    }
    // Named for the world: agents of other worlds may share the claim.
    let incoming = agent
        .claim
        .join(format!(".tavern-incoming-{}.tar.zst", agent.data));
    let received = receive(body, &incoming).await;
    let outcome = match received {
        Ok(()) => {
            let (file, data) = (incoming.clone(), agent.data());
            tokio::task::spawn_blocking(move || {
                let expected = local::Expected {
                    size: record.size,
                    sha256: &record.sha256,
                    limits: tavern_backup::archive::Limits {
                        bytes: record.bytes,
                        files: record.files,
                    },
                };
                local::restore_into(&file, &data, expected)
            })
            .await
            .map_err(|e| RestoreError::Io {
                what: "restore",
                source: std::io::Error::other(e),
            })
            .and_then(|r| r)
        }
        Err(e) => Err(RestoreError::Io {
            what: "receive the archive",
            source: e,
        }),
    };
    let _ = tokio::fs::remove_file(&incoming).await;
    match outcome {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(RestoreError::Refused(why)) => refused(StatusCode::UNPROCESSABLE_ENTITY, why),
        Err(e) => refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "{e}: {}",
                std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            ),
        ),
    }
}

/// Deletes the world's data (its world is destroyed, a backup holds it).
async fn delete(State(agent): State<Arc<Agent>>, headers: HeaderMap) -> Response {
    if !agent.allowed(&headers) {
        return refused(StatusCode::UNAUTHORIZED, "a token is needed");
    }
    match tokio::fs::remove_dir_all(agent.data()).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot delete the world's data: {e}"),
        ),
    }
}

async fn receive(body: Body, to: &Path) -> std::io::Result<()> {
    let mut file = tokio::fs::File::create(to).await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        file.write_all(&chunk.map_err(std::io::Error::other)?)
            .await?;
    }
    file.sync_all().await
}
