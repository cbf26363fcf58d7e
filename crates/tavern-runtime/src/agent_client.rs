//! Tavern's side of a data agent (`tavern data-agent`, on a Kubernetes
//! claim or an EFS access point): reading a world's `license.json`, its
//! data as an archive, putting an archive in its place, and deleting it.
//! The drivers start and stop the agent; these speak to it.

use std::path::Path;

use futures_util::StreamExt as _;
use tavern_types::Slug;
use tokio::io::AsyncWriteExt as _;

use crate::RuntimeError;

/// The world's `Config/license.json`, if it has one.
pub(crate) async fn license(
    http: &reqwest::Client,
    slug: &Slug,
    url: &str,
    token: &str,
) -> Result<Option<String>, RuntimeError> {
    let failed = |e: reqwest::Error| {
        RuntimeError::io("read its license.json", slug, std::io::Error::other(e))
    };
    let resp = http
        .get(format!("{url}/license"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(failed)?;
    if !resp.status().is_success() {
        return Ok(None);
    }
    resp.text().await.map(Some).map_err(failed)
}

/// Writes the world's data to `to` as an archive; `false` when it has none.
pub(crate) async fn export(
    http: &reqwest::Client,
    slug: &Slug,
    url: &str,
    token: &str,
    to: &Path,
) -> Result<bool, RuntimeError> {
    let failed =
        |e: reqwest::Error| RuntimeError::io("read its data", slug, std::io::Error::other(e));
    let resp = http
        .get(format!("{url}/archive"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(failed)?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(false);
    }
    if !resp.status().is_success() {
        let why = format!(
            "{}: {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
        return Err(RuntimeError::io(
            "read its data",
            slug,
            std::io::Error::other(why),
        ));
    }
    let mut file = tokio::fs::File::create(to)
        .await
        .map_err(|e| RuntimeError::io("write its archive", slug, e))?;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        file.write_all(&chunk.map_err(failed)?)
            .await
            .map_err(|e| RuntimeError::io("write its archive", slug, e))?;
    }
    file.sync_all()
        .await
        .map_err(|e| RuntimeError::io("write its archive", slug, e))?;
    Ok(true)
}

/// Puts the archive `from` in place of the world's data, held to `record`;
/// an archive the agent refuses changes nothing.
pub(crate) async fn import(
    http: &reqwest::Client,
    slug: &Slug,
    url: &str,
    token: &str,
    from: &Path,
    record: &tavern_types::ArchiveRecord,
) -> Result<(), RuntimeError> {
    let file = tokio::fs::File::open(from)
        .await
        .map_err(|e| RuntimeError::io("read the archive", slug, e))?;
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
    let resp = http
        // Numbers and a hex digest of Tavern's own record: nothing to escape.
        .put(format!(
            "{url}/archive?size={}&sha256={}&bytes={}&files={}",
            record.size, record.sha256, record.bytes, record.files
        ))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .map_err(|e| RuntimeError::io("restore its data", slug, std::io::Error::other(e)))?;
    answer(slug, "restore its data", resp).await
}

/// Deletes the world's data (a backup holds it).
pub(crate) async fn delete(
    http: &reqwest::Client,
    slug: &Slug,
    url: &str,
    token: &str,
) -> Result<(), RuntimeError> {
    let resp = http
        .delete(format!("{url}/archive"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| RuntimeError::io("delete its data", slug, std::io::Error::other(e)))?;
    answer(slug, "delete its data", resp).await
}

async fn answer(
    slug: &Slug,
    what: &'static str,
    resp: reqwest::Response,
) -> Result<(), RuntimeError> {
    let status = resp.status();
    let why = resp.text().await.unwrap_or_default();
    match status {
        s if s.is_success() => Ok(()),
        reqwest::StatusCode::UNPROCESSABLE_ENTITY => Err(RuntimeError::Refused {
            slug: slug.to_string(),
            message: format!("the archive was refused: {why}"),
        }),
        s => Err(RuntimeError::io(
            what,
            slug,
            std::io::Error::other(format!("{s}: {why}")),
        )),
    }
}
