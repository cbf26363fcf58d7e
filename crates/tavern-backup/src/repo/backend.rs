//! A restic repository's files where Tavern keeps backups, behind rustic's
//! blocking backend traits: a directory (each file written beside the
//! repository, synced, then renamed into place) or S3-compatible storage
//! through object_store. It remembers what it wrote, so a backup can read
//! its own files back before it is called complete.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};
use rustic_core::{ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend};

/// Where the files are.
#[derive(Clone)]
pub(crate) enum Place {
    Dir(PathBuf),
    Store {
        store: Arc<dyn ObjectStore>,
        /// Below the bucket, without a trailing `/`; may be empty.
        prefix: String,
        runtime: tokio::runtime::Handle,
    },
}

/// The kinds of files a repository holds, in restic's layout.
const DIRS: [FileType; 4] = [
    FileType::Key,
    FileType::Snapshot,
    FileType::Index,
    FileType::Pack,
];

pub(crate) struct Backend {
    place: Place,
    /// For messages: the directory or `s3://bucket/prefix`, no secrets.
    describe: String,
    written: Mutex<Vec<(FileType, Id)>>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

fn failed(
    op: &'static str,
    what: &str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Box<RusticError> {
    RusticError::with_source(ErrorKind::Backend, "cannot {op} {file}", e)
        .attach_context("op", op)
        .attach_context("file", what.to_owned())
}

/// The path of a file in restic's layout (`data/<2 hex>/<id>` for packs).
fn rel(tpe: FileType, id: &Id) -> String {
    let hex = id.to_hex();
    match tpe {
        FileType::Config => "config".to_owned(),
        FileType::Pack => format!("data/{}/{}", &hex[..2], hex.as_str()),
        other => format!("{}/{}", other.dirname(), hex.as_str()),
    }
}

impl Backend {
    pub(crate) fn new(place: Place, describe: String) -> Self {
        Self {
            place,
            describe,
            written: Mutex::new(Vec::new()),
        }
    }

    /// What was written since the last call, and forgets it.
    pub(crate) fn take_written(&self) -> Vec<(FileType, Id)> {
        std::mem::take(&mut *self.written.lock().expect("not poisoned"))
    }

    fn key(prefix: &str, rel: &str) -> Key {
        match prefix {
            "" => Key::from(rel),
            p => Key::from(format!("{p}/{rel}")),
        }
    }

    /// Removes what an interrupted write left in a directory's `tmp/`;
    /// nothing else writes to this repository meanwhile (the caller holds
    /// its world).
    pub(crate) fn clear_staging(&self) {
        if let Place::Dir(root) = &self.place
            && let Ok(entries) = std::fs::read_dir(root.join("tmp"))
        {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// The directory's file, written whole under another name, synced,
    /// then renamed into place.
    fn write_file(root: &Path, rel: &str, buf: &[u8]) -> std::io::Result<()> {
        let dest = root.join(rel);
        let staging = root.join("tmp");
        crate::create_private_dir(&staging)?;
        if let Some(parent) = dest.parent() {
            crate::create_private_dir(parent)?;
        }
        let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = staging.join(format!("{name}.{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(buf)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dest)
    }

    fn list_dir(root: &Path, tpe: FileType) -> std::io::Result<Vec<(Id, u32)>> {
        let mut dirs = vec![root.join(tpe.dirname())];
        if tpe == FileType::Pack {
            dirs = match std::fs::read_dir(&dirs[0]) {
                Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(e),
            };
        }
        let mut out = Vec::new();
        for dir in dirs {
            let entries = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for e in entries {
                let e = e?;
                let Some(id) = e.file_name().to_str().and_then(|n| n.parse::<Id>().ok()) else {
                    continue;
                };
                let size = e.metadata()?.len();
                out.push((id, u32::try_from(size).unwrap_or(u32::MAX)));
            }
        }
        Ok(out)
    }
}

impl ReadBackend for Backend {
    fn location(&self) -> String {
        self.describe.clone()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        let what = tpe.dirname();
        match &self.place {
            Place::Dir(root) if tpe == FileType::Config => match std::fs::metadata(root.join(what))
            {
                Ok(m) => Ok(vec![(
                    Id::default(),
                    u32::try_from(m.len()).unwrap_or(u32::MAX),
                )]),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(failed("read", what, e)),
            },
            Place::Dir(root) => Self::list_dir(root, tpe).map_err(|e| failed("list", what, e)),
            Place::Store {
                store,
                prefix,
                runtime,
            } if tpe == FileType::Config => {
                match runtime.block_on(store.head(&Self::key(prefix, what))) {
                    Ok(m) => Ok(vec![(
                        Id::default(),
                        u32::try_from(m.size).unwrap_or(u32::MAX),
                    )]),
                    Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
                    Err(e) => Err(failed("read", what, e)),
                }
            }
            Place::Store {
                store,
                prefix,
                runtime,
            } => {
                let under = Self::key(prefix, what);
                let listed: Vec<_> = runtime
                    .block_on(store.list(Some(&under)).try_collect::<Vec<_>>())
                    .map_err(|e| failed("list", what, e))?;
                Ok(listed
                    .into_iter()
                    .filter_map(|m| {
                        let id = m.location.filename()?.parse::<Id>().ok()?;
                        Some((id, u32::try_from(m.size).unwrap_or(u32::MAX)))
                    })
                    .collect())
            }
        }
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        let rel = rel(tpe, id);
        match &self.place {
            Place::Dir(root) => std::fs::read(root.join(&rel))
                .map(Bytes::from)
                .map_err(|e| failed("read", &rel, e)),
            Place::Store {
                store,
                prefix,
                runtime,
            } => runtime
                .block_on(async { store.get(&Self::key(prefix, &rel)).await?.bytes().await })
                .map_err(|e| failed("read", &rel, e)),
        }
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        let rel = rel(tpe, id);
        match &self.place {
            Place::Dir(root) => {
                let read = || -> std::io::Result<Vec<u8>> {
                    let mut f = std::fs::File::open(root.join(&rel))?;
                    f.seek(SeekFrom::Start(offset.into()))?;
                    let mut buf = vec![0; length as usize];
                    f.read_exact(&mut buf)?;
                    Ok(buf)
                };
                read().map(Bytes::from).map_err(|e| failed("read", &rel, e))
            }
            Place::Store {
                store,
                prefix,
                runtime,
            } => {
                let range = u64::from(offset)..u64::from(offset) + u64::from(length);
                runtime
                    .block_on(store.get_range(&Self::key(prefix, &rel), range))
                    .map_err(|e| failed("read", &rel, e))
            }
        }
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        rel(tpe, id)
    }
}

impl WriteBackend for Backend {
    fn create(&self) -> RusticResult<()> {
        let Place::Dir(root) = &self.place else {
            return Ok(());
        };
        // restic's own layout, as `restic init` makes it: every directory
        // there from the start, `data/` with its 256 subdirectories.
        let mut dirs: Vec<PathBuf> = DIRS.iter().map(|t| root.join(t.dirname())).collect();
        dirs.push(root.join("locks"));
        dirs.extend((0..=255u8).map(|b| root.join("data").join(hex::encode([b]))));
        for dir in dirs {
            crate::create_private_dir(&dir)
                .map_err(|e| failed("create", &dir.display().to_string(), e))?;
        }
        Ok(())
    }

    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        buf: Bytes,
    ) -> RusticResult<()> {
        let rel = rel(tpe, id);
        match &self.place {
            Place::Dir(root) => {
                Self::write_file(root, &rel, &buf).map_err(|e| failed("write", &rel, e))?;
            }
            Place::Store {
                store,
                prefix,
                runtime,
            } => {
                runtime
                    .block_on(store.put(&Self::key(prefix, &rel), buf.into()))
                    .map_err(|e| failed("write", &rel, e))?;
            }
        }
        self.written.lock().expect("not poisoned").push((tpe, *id));
        Ok(())
    }

    fn remove(&self, tpe: FileType, id: &Id, _cacheable: bool) -> RusticResult<()> {
        let rel = rel(tpe, id);
        match &self.place {
            Place::Dir(root) => match std::fs::remove_file(root.join(&rel)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(failed("remove", &rel, e)),
            },
            Place::Store {
                store,
                prefix,
                runtime,
            } => match runtime.block_on(store.delete(&Self::key(prefix, &rel))) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(failed("remove", &rel, e)),
            },
        }
    }
}
