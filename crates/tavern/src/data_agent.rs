//! `tavern data-agent`: the short-lived pod through which Tavern reads and
//! writes a Kubernetes world's data claim, for backups and restores.
//! `GET /archive` answers the world's data (the claim's `data/`) as a Tavern
//! archive; `PUT /archive?size=…&sha256=…&bytes=…&files=…` puts an
//! archive in its place, held to that record of it, verified, unpacked
//! beside it and swapped in; `GET /license` answers the `license.json`
//! Foundry signed. Every request but `/healthz` carries the
//! token of the agent's Secret.

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
    /// Where the world's claim is mounted (Foundry's data is its `data/`).
    #[arg(long)]
    claim: PathBuf,
    /// Where to listen.
    #[arg(long, default_value = "0.0.0.0:8081")]
    listen: SocketAddr,
    /// The file holding the token every request must carry.
    #[arg(long)]
    token_file: PathBuf,
}

struct Agent {
    claim: PathBuf,
    token: String,
}

impl Agent {
    fn data(&self) -> PathBuf {
        self.claim.join("data")
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
    let token = std::fs::read_to_string(&args.token_file)
        .with_context(|| format!("cannot read the token {}", args.token_file.display()))?
        .trim()
        .to_owned();
    anyhow::ensure!(!token.is_empty(), "the token file is empty");
    let agent = Arc::new(Agent {
        claim: args.claim,
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
        .route("/archive", get(export).put(import))
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
    let incoming = agent.claim.join(".tavern-incoming.tar.zst");
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

async fn receive(body: Body, to: &Path) -> std::io::Result<()> {
    let mut file = tokio::fs::File::create(to).await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        file.write_all(&chunk.map_err(std::io::Error::other)?)
            .await?;
    }
    file.sync_all().await
}
