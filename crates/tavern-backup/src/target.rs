//! Where archives are kept: a local directory (by default
//! `DATA_DIR/backups`) or S3-compatible object storage (`s3://bucket/prefix`,
//! with the cargo feature `s3`). An archive appears under its key only when
//! it is whole: in a directory by renaming the staged file into place, on S3
//! by completing a multipart upload.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::create_private_dir;

/// What storing or fetching an archive can fail with. Messages never hold
/// credentials.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("invalid backup target {url:?}: {why}")]
    BadUrl { url: String, why: String },
    #[error("backup {key} is not in {target}")]
    NotFound { key: String, target: String },
    #[error("cannot {op} {key} in {target}")]
    Storage {
        op: &'static str,
        key: String,
        target: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// How to reach S3-compatible storage; unset values come from the usual
/// `AWS_*` environment variables. Its `Debug` hides the secret key.
#[derive(Clone, Default)]
pub struct S3Settings {
    /// e.g. `https://s3.eu-central-003.backblazeb2.com` or
    /// `http://127.0.0.1:9000`; AWS itself when unset.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<hidden>"),
            )
            .finish()
    }
}

/// A place archives are kept.
#[derive(Clone)]
pub struct Target {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// Set for a local directory: archives are files there.
    dir: Option<PathBuf>,
    describe: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

/// Bytes read from a staged archive at a time, and parts in flight, when
/// uploading.
const CHUNK: usize = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT: usize = 4;

impl Target {
    /// A local directory, created (0700) if missing.
    pub fn dir(path: &Path) -> Result<Self, TargetError> {
        let describe = path.display().to_string();
        let bad = |why: String| TargetError::BadUrl {
            url: describe.clone(),
            why,
        };
        create_private_dir(path).map_err(|e| bad(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(path).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: String::new(),
            dir: Some(path.to_path_buf()),
            describe,
        })
    }

    /// S3-compatible storage at `url` (`s3://bucket` or `s3://bucket/prefix`).
    pub fn s3(url: &str, settings: &S3Settings) -> Result<Self, TargetError> {
        let bad = |why: &str| TargetError::BadUrl {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("use s3://BUCKET/PREFIX"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("it names no bucket"));
        }
        let store = s3_store(bucket, settings).map_err(|why| bad(&why))?;
        Ok(Self {
            store,
            prefix: prefix.trim_matches('/').to_owned(),
            dir: None,
            describe: url.to_owned(),
        })
    }

    /// What a repository kept here is made of: the directory (for a
    /// local target), the store, and the prefix below the bucket.
    pub(crate) fn parts(&self) -> (Option<&Path>, Arc<dyn ObjectStore>, &str) {
        (self.dir.as_deref(), self.store.clone(), &self.prefix)
    }

    fn key(&self, key: &str) -> Key {
        if self.prefix.is_empty() {
            Key::from(key)
        } else {
            Key::from(format!("{}/{key}", self.prefix))
        }
    }

    fn failed(
        &self,
        op: &'static str,
        key: &str,
    ) -> impl FnOnce(object_store::Error) -> TargetError {
        let (key, target) = (key.to_owned(), self.describe.clone());
        move |e| match e {
            object_store::Error::NotFound { .. } => TargetError::NotFound { key, target },
            e => TargetError::Storage {
                op,
                key,
                target,
                source: Box::new(e),
            },
        }
    }

    /// Moves a whole, verified archive from `staged` (a local file, which is
    /// gone afterwards) to `key`.
    pub async fn publish(&self, staged: &Path, key: &str) -> Result<(), TargetError> {
        let io = |e: std::io::Error| TargetError::Storage {
            op: "store",
            key: key.to_owned(),
            target: self.describe.clone(),
            source: Box::new(e),
        };
        if let Some(dir) = &self.dir {
            let dest = dir.join(key);
            if let Some(parent) = dest.parent() {
                create_private_dir(parent).map_err(io)?;
            }
            return tokio::fs::rename(staged, &dest).await.map_err(io);
        }
        let upload = self
            .store
            .put_multipart(&self.key(key))
            .await
            .map_err(self.failed("store", key))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);
        let mut file = tokio::fs::File::open(staged).await.map_err(io)?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = file.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(self.failed("store", key))?;
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(self.failed("store", key))?;
        tokio::fs::remove_file(staged).await.map_err(io)?;
        Ok(())
    }

    /// The archive at `key`: its size and its bytes.
    pub async fn open(
        &self,
        key: &str,
    ) -> Result<(u64, BoxStream<'static, Result<Bytes, TargetError>>), TargetError> {
        let got = self
            .store
            .get(&self.key(key))
            .await
            .map_err(self.failed("read", key))?;
        let size = got.meta.size;
        let (key, target) = (key.to_owned(), self.describe.clone());
        let stream = got
            .into_stream()
            .map_err(move |e| TargetError::Storage {
                op: "read",
                key: key.clone(),
                target: target.clone(),
                source: Box::new(e),
            })
            .boxed();
        Ok((size, stream))
    }

    /// The archive at `key` as a local file: in place for a directory,
    /// else downloaded to `scratch`.
    pub async fn local_copy(&self, key: &str, scratch: &Path) -> Result<PathBuf, TargetError> {
        if let Some(dir) = &self.dir {
            let path = dir.join(key);
            return match tokio::fs::metadata(&path).await {
                Ok(_) => Ok(path),
                Err(_) => Err(TargetError::NotFound {
                    key: key.to_owned(),
                    target: self.describe.clone(),
                }),
            };
        }
        let io = |e: std::io::Error| TargetError::Storage {
            op: "download",
            key: key.to_owned(),
            target: self.describe.clone(),
            source: Box::new(e),
        };
        let (_, mut stream) = self.open(key).await?;
        let mut file = tokio::fs::File::create(scratch).await.map_err(io)?;
        while let Some(chunk) = stream.next().await {
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk?)
                .await
                .map_err(io)?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(io)?;
        Ok(scratch.to_path_buf())
    }

    /// Removes the archive at `key`; one that is already gone is fine.
    pub async fn delete(&self, key: &str) -> Result<(), TargetError> {
        match self.store.delete(&self.key(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed("delete", key)(e)),
        }
    }

    /// Removes everything under `rel` (a world's repository); nothing
    /// there is fine.
    pub async fn delete_under(&self, rel: &str) -> Result<(), TargetError> {
        if let Some(dir) = &self.dir {
            return match tokio::fs::remove_dir_all(dir.join(rel)).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(TargetError::Storage {
                    op: "delete",
                    key: rel.to_owned(),
                    target: self.describe.clone(),
                    source: Box::new(e),
                }),
            };
        }
        let under = self.key(rel);
        let keys: Vec<Key> = self
            .store
            .list(Some(&under))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(self.failed("list", rel))?;
        for key in keys {
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.failed("delete", rel)(e)),
            }
        }
        Ok(())
    }

    /// The names just below `rel` (the folders of a directory, the
    /// common prefixes of a bucket), sorted; none when it is not there.
    pub async fn children(&self, rel: &str) -> Result<Vec<String>, TargetError> {
        let mut names = Vec::new();
        if let Some(dir) = &self.dir {
            let failed = |e: std::io::Error| TargetError::Storage {
                op: "list",
                key: rel.to_owned(),
                target: self.describe.clone(),
                source: Box::new(e),
            };
            let mut entries = match tokio::fs::read_dir(dir.join(rel)).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
                Err(e) => return Err(failed(e)),
            };
            while let Some(entry) = entries.next_entry().await.map_err(failed)? {
                if entry.file_type().await.map_err(failed)?.is_dir() {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        } else {
            let listed = self
                .store
                .list_with_delimiter(Some(&self.key(rel)))
                .await
                .map_err(self.failed("list", rel))?;
            names = listed
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_owned))
                .collect();
        }
        names.sort();
        Ok(names)
    }

    /// Every key under this target, sorted.
    pub async fn keys(&self) -> Result<Vec<String>, TargetError> {
        let prefix = (!self.prefix.is_empty()).then(|| Key::from(self.prefix.as_str()));
        let mut keys: Vec<String> = self
            .store
            .list(prefix.as_ref())
            .map_ok(|m| {
                let full = m.location.to_string();
                match full.strip_prefix(&self.prefix) {
                    Some(rest) if !self.prefix.is_empty() => {
                        rest.trim_start_matches('/').to_owned()
                    }
                    _ => full,
                }
            })
            .try_collect()
            .await
            .map_err(self.failed("list", ""))?;
        keys.sort();
        Ok(keys)
    }
}

/// The S3 client of a bucket, or why there is none.
#[cfg(feature = "s3")]
fn s3_store(bucket: &str, settings: &S3Settings) -> Result<Arc<dyn ObjectStore>, String> {
    let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &settings.endpoint {
        b = b
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false);
    }
    if let Some(region) = &settings.region {
        b = b.with_region(region);
    }
    if let Some(id) = &settings.access_key_id {
        b = b.with_access_key_id(id);
    }
    if let Some(secret) = &settings.secret_access_key {
        b = b.with_secret_access_key(secret);
    }
    Ok(Arc::new(b.build().map_err(|e| e.to_string())?))
}

/// A build without the `s3` feature keeps backups in directories only.
#[cfg(not(feature = "s3"))]
fn s3_store(_bucket: &str, _settings: &S3Settings) -> Result<Arc<dyn ObjectStore>, String> {
    Err("this build of Tavern has no S3 storage (its cargo feature `s3`)".into())
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}
