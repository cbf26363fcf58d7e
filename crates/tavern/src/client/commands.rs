//! What the client's commands share: reading standard input, progress
//! spinners and bars, path segments, durations, and files downloaded and
//! sent.

use std::io::BufRead as _;

use anyhow::{Context as _, bail};

/// Reads one line from standard input, without its line ending.
pub(crate) fn stdin_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what} from standard input"))?;
    let line = line.trim_end_matches(['\r', '\n']).to_owned();
    if line.is_empty() {
        bail!("no {what} on standard input");
    }
    Ok(line)
}

/// A spinner on stderr with a message and the time so far (drawn only in
/// a terminal).
pub(crate) fn spinner() -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        pb.set_style(style);
    }
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

pub(crate) fn path_part(s: &str) -> anyhow::Result<&str> {
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("{s:?} is not a valid name or id");
    }
    Ok(s)
}

/// A duration like `4h`, `90m` or `3h30m`, in whole minutes.
pub(crate) fn parse_minutes(s: &str) -> Result<u32, String> {
    let bad = || format!("{s:?} is not a duration like 4h, 90m or 3h30m");
    let d: jiff::SignedDuration = s.trim().parse().map_err(|_| bad())?;
    if d.is_negative() || d.as_secs() % 60 != 0 {
        return Err(bad());
    }
    u32::try_from(d.as_secs() / 60).map_err(|_| bad())
}

pub(crate) fn bar(total: Option<u64>, what: &str) -> indicatif::ProgressBar {
    let pb =
        indicatif::ProgressBar::with_draw_target(total, indicatif::ProgressDrawTarget::stderr());
    // Without a size (a download copied as the server reads it): how much
    // has come, and how fast.
    let template = match total {
        Some(_) => "{msg:12} [{bar:40}] {bytes}/{total_bytes} {eta}",
        None => "{msg:12} {spinner} {bytes} {bytes_per_sec}",
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_owned());
    pb
}

/// Writes a response's body to `path` with a progress bar.
pub(crate) async fn save_body(
    mut resp: reqwest::Response,
    path: &std::path::Path,
    what: &str,
) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let pb = bar(resp.content_length(), what);
    let mut file = tokio::fs::File::create(path)
        .await
        .with_context(|| format!("cannot create {}", path.display()))?;
    while let Some(chunk) = resp.chunk().await.context("the download was cut off")? {
        file.write_all(&chunk).await?;
        pb.inc(chunk.len() as u64);
    }
    file.flush().await?;
    pb.finish_and_clear();
    Ok(())
}

/// Sends the file at `path` to the server as the body of a POST to
/// `api_path` (as `content_type`), with a progress bar; answers the
/// server's JSON.
pub(crate) async fn upload_file(
    api: &super::http::Api,
    api_path: &str,
    path: &std::path::Path,
    content_type: &str,
) -> anyhow::Result<serde_json::Value> {
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
        .upload(api_path, content_type, reqwest::Body::wrap_stream(stream))
        .await;
    pb.finish_and_clear();
    answer
}

/// Downloads `url` (a `what`: "release", "import") into a new file in
/// `dir` with a progress bar; a failed download leaves nothing behind.
pub(crate) async fn download(
    url: &str,
    dir: &std::path::Path,
    what: &str,
) -> anyhow::Result<std::path::PathBuf> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        anyhow::bail!("the URL {url:?} must start with http:// or https://");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!(".download-{}-{what}", std::process::id()));
    let result: anyhow::Result<()> = async {
        let resp = reqwest::get(url)
            .await
            .with_context(|| format!("cannot download the {what}"))?;
        if !resp.status().is_success() {
            anyhow::bail!("downloading the {what} failed: HTTP {}", resp.status());
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

#[cfg(test)]
mod tests {
    use super::parse_minutes;

    #[test]
    fn durations_are_whole_minutes() {
        assert_eq!(parse_minutes("4h"), Ok(240));
        assert_eq!(parse_minutes("90m"), Ok(90));
        assert_eq!(parse_minutes("3h30m"), Ok(210));
        for bad in ["", "soon", "-1h", "90s", "4"] {
            assert!(parse_minutes(bad).is_err(), "{bad}");
        }
    }
}
