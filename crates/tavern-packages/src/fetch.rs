//! Getting a package's manifest and zip from their URLs: `http` and
//! `https` only, each within a size and a time limit; the zip hashed
//! (SHA-256) while it is saved, with its progress told as it comes.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};
use tavern_foundry::manifest::{self, Package, PackageKind};
use tokio::io::AsyncWriteExt as _;

use crate::is_version_name;

/// The largest manifest read.
pub const MAX_MANIFEST: u64 = 1024 * 1024;
/// The largest zip downloaded.
pub const MAX_ZIP: u64 = 4 * 1024 * 1024 * 1024;
/// How long a manifest may take.
const MANIFEST_TIME: Duration = Duration::from_secs(30);

/// Why a manifest or zip was not fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0:?} is not an http:// or https:// URL")]
    BadUrl(String),
    #[error("cannot reach {url}: {why}")]
    Unreachable { url: String, why: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} holds more than {limit}")]
    TooLarge { url: String, limit: String },
    #[error("{url} is not a package manifest Tavern can use: {why}")]
    NotAManifest { url: String, why: String },
    #[error(
        "{url} does not say whether it is a system, a module or a world (no \"type\", and \
         its name is not system.json, module.json or world.json); say which"
    )]
    UnknownKind { url: String },
    #[error("the zip's SHA-256 is {got}, not the {expected} expected")]
    Checksum { expected: String, got: String },
    #[error("cannot {op}")]
    Io {
        op: String,
        #[source]
        source: std::io::Error,
    },
}

/// Whether `url` is one Tavern fetches.
pub fn check_url(url: &str) -> Result<reqwest::Url, FetchError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
        _ => Err(FetchError::BadUrl(url.to_owned())),
    }
}

/// The kind a manifest says it is (`"type"`, v11+), else what its URL's
/// file name says.
pub fn kind_of(json: &[u8], url: &reqwest::Url) -> Option<PackageKind> {
    let declared = serde_json::from_slice::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.get("type")?.as_str().and_then(PackageKind::parse));
    declared.or_else(|| {
        url.path_segments()
            .and_then(|mut s| s.next_back())
            .and_then(PackageKind::parse)
    })
}

/// Reads a fetched manifest: it must name an id, a version a folder can
/// be named after and an http(s) `download`, and not be a premium package.
pub fn read_manifest(
    url: &reqwest::Url,
    bytes: &[u8],
    kind: Option<PackageKind>,
) -> Result<Package, FetchError> {
    let not = |why: String| FetchError::NotAManifest {
        url: url.to_string(),
        why,
    };
    let kind = kind
        .or_else(|| kind_of(bytes, url))
        .ok_or_else(|| FetchError::UnknownKind {
            url: url.to_string(),
        })?;
    let p = manifest::read(kind, bytes).map_err(|e| not(e.to_string()))?;
    match p.version.as_deref() {
        None => return Err(not("it names no version".into())),
        Some(v) if !is_version_name(v) => {
            return Err(not(format!("its version {v:?} cannot name a folder")));
        }
        Some(_) => {}
    }
    match p.download.as_deref().map(check_url) {
        None => return Err(not("it names no download".into())),
        Some(Err(_)) => {
            return Err(not(format!(
                "its download {:?} is not an http(s) URL",
                p.download.as_deref().unwrap_or_default()
            )));
        }
        Some(Ok(_)) => {}
    }
    if p.protected {
        return Err(not(
            "it is a premium (protected) package: its files are signed for one Foundry \
             license and cannot be shared between worlds; install it in the world through \
             Foundry instead"
                .into(),
        ));
    }
    Ok(p)
}

/// Fetches manifests and zips.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    max_zip: u64,
}

impl Default for Fetcher {
    fn default() -> Self {
        Self::new(MAX_ZIP)
    }
}

impl Fetcher {
    /// Zips of at most `max_zip` bytes.
    pub fn new(max_zip: u64) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("tavern/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { client, max_zip }
    }

    async fn get(
        &self,
        url: &reqwest::Url,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, FetchError> {
        let mut req = self.client.get(url.clone());
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let resp = req.send().await.map_err(|e| FetchError::Unreachable {
            url: url.to_string(),
            why: without_url(&e),
        })?;
        if !resp.status().is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: resp.status().as_u16(),
            });
        }
        Ok(resp)
    }

    /// The package the manifest at `url` describes; `kind` when the
    /// manifest does not say.
    pub async fn manifest(
        &self,
        url: &str,
        kind: Option<PackageKind>,
    ) -> Result<Package, FetchError> {
        let url = check_url(url)?;
        let mut resp = self.get(&url, Some(MANIFEST_TIME)).await?;
        let mut bytes = Vec::new();
        loop {
            let chunk = resp.chunk().await.map_err(|e| FetchError::Unreachable {
                url: url.to_string(),
                why: without_url(&e),
            })?;
            let Some(chunk) = chunk else { break };
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > MAX_MANIFEST {
                return Err(FetchError::TooLarge {
                    url: url.to_string(),
                    limit: tavern_types::words::size(MAX_MANIFEST),
                });
            }
        }
        read_manifest(&url, &bytes, kind)
    }

    /// Saves the zip at `url` to `to` (removed again on failure), telling
    /// `progress` the bytes so far and the total when known; answers its
    /// SHA-256 in hex, checked against `expected` when given.
    pub async fn zip(
        &self,
        url: &str,
        to: &Path,
        expected: Option<&str>,
        progress: &(dyn Fn(u64, Option<u64>) + Send + Sync),
    ) -> Result<String, FetchError> {
        let result = self.zip_into(url, to, expected, progress).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(to).await;
        }
        result
    }

    async fn zip_into(
        &self,
        url: &str,
        to: &Path,
        expected: Option<&str>,
        progress: &(dyn Fn(u64, Option<u64>) + Send + Sync),
    ) -> Result<String, FetchError> {
        let url = check_url(url)?;
        let too_large = || FetchError::TooLarge {
            url: url.to_string(),
            limit: tavern_types::words::size(self.max_zip),
        };
        let resp = self.get(&url, None).await?;
        let total = resp.content_length();
        if total.is_some_and(|n| n > self.max_zip) {
            return Err(too_large());
        }
        let io = |op: &str| {
            let op = format!("{op} {}", to.display());
            move |source| FetchError::Io { op, source }
        };
        let mut file = tokio::fs::File::create(to).await.map_err(io("create"))?;
        let mut hash = Sha256::new();
        let mut got: u64 = 0;
        let mut body = resp.bytes_stream();
        progress(0, total);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| FetchError::Unreachable {
                url: url.to_string(),
                why: without_url(&e),
            })?;
            got += chunk.len() as u64;
            if got > self.max_zip {
                return Err(too_large());
            }
            hash.update(&chunk);
            file.write_all(&chunk).await.map_err(io("write"))?;
            progress(got, total);
        }
        file.flush().await.map_err(io("write"))?;
        let sum = hex::encode(hash.finalize());
        if let Some(want) = expected
            && !want.trim().eq_ignore_ascii_case(&sum)
        {
            return Err(FetchError::Checksum {
                expected: want.trim().to_ascii_lowercase(),
                got: sum,
            });
        }
        Ok(sum)
    }
}

/// reqwest's error without the URL it names (the caller names it once).
fn without_url(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut out = match e.url() {
        Some(u) => e
            .to_string()
            .replace(&format!(" ({u})"), "")
            .replace(u.as_str(), "…"),
        None => e.to_string(),
    };
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).unwrap()
    }

    #[test]
    fn urls_and_kinds_are_read_from_what_is_given() {
        assert!(check_url("https://example.com/module.json").is_ok());
        for bad in ["file:///etc/passwd", "ftp://x/y", "not a url", "http://"] {
            assert!(
                matches!(check_url(bad), Err(FetchError::BadUrl(_))),
                "{bad}"
            );
        }
        let u = url("https://example.com/releases/latest/download/system.json");
        assert_eq!(kind_of(b"{}", &u), Some(PackageKind::System));
        assert_eq!(
            kind_of(br#"{"type":"module"}"#, &url("https://x/manifest")),
            Some(PackageKind::Module)
        );
        assert_eq!(kind_of(b"{}", &url("https://x/manifest")), None);
    }

    #[test]
    fn manifests_tavern_cannot_use_are_refused_with_the_reason() {
        let u = url("https://example.com/module.json");
        let ok = br#"{"id":"m","version":"1.0.0","download":"https://example.com/m.zip"}"#;
        assert_eq!(read_manifest(&u, ok, None).unwrap().id, "m");
        for (bytes, why) in [
            (
                &br#"{"id":"m","download":"https://x/m.zip"}"#[..],
                "no version",
            ),
            (
                br#"{"id":"m","version":"1 0","download":"https://x/m.zip"}"#,
                "cannot name a folder",
            ),
            (br#"{"id":"m","version":"1"}"#, "no download"),
            (
                br#"{"id":"m","version":"1","download":"file:///m.zip"}"#,
                "not an http(s) URL",
            ),
            (
                br#"{"id":"m","version":"1","download":"https://x/m.zip","protected":true}"#,
                "premium",
            ),
            (br#"{"title":"m"}"#, "no id"),
        ] {
            let e = read_manifest(&u, bytes, None).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
        }
        assert!(matches!(
            read_manifest(&url("https://x/manifest"), ok, None),
            Err(FetchError::UnknownKind { .. })
        ));
    }
}
