//! Uploads received into a private file before anything reads them: a
//! release's zip, or what is imported from another Foundry host.

use std::path::Path;

use crate::error::CoreError;

/// Copies `body` into a new file in `dir` (named `.upload-…<suffix>`, made
/// private), at most `limit` bytes; the file is removed when the answer is
/// dropped. A body that breaks off or is larger is refused with
/// `refused(why)`, and nothing is kept.
pub(crate) async fn receive(
    dir: &Path,
    suffix: &str,
    body: impl tokio::io::AsyncRead + Unpin + Send,
    limit: u64,
    refused: impl Fn(String) -> CoreError,
) -> Result<tempfile::TempPath, CoreError> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (dir, suffix) = (dir.to_owned(), suffix.to_owned());
    let file = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)?;
        tempfile::Builder::new()
            .prefix(".upload-")
            .suffix(&suffix)
            .tempfile_in(&dir)
    })
    .await
    .map_err(|e| CoreError::internal("make an upload file", e))?
    .map_err(|e| CoreError::internal("make an upload file", e))?;
    let (std_file, path) = file.into_parts();
    // Large writes: each is a trip to a blocking thread.
    let mut out =
        tokio::io::BufWriter::with_capacity(1024 * 1024, tokio::fs::File::from_std(std_file));
    let mut body = tokio::io::BufReader::with_capacity(256 * 1024, body.take(limit + 1));
    let copied = tokio::io::copy_buf(&mut body, &mut out)
        .await
        .map_err(|e| refused(format!("the upload broke off: {e}")))?;
    out.flush()
        .await
        .map_err(|e| CoreError::internal("write the upload", e))?;
    let out = out.into_inner();
    if copied > limit {
        return Err(refused(format!(
            "it is larger than {}, the most it may be",
            tavern_types::words::size(limit)
        )));
    }
    out.sync_all()
        .await
        .map_err(|e| CoreError::internal("write the upload", e))?;
    Ok(path)
}
