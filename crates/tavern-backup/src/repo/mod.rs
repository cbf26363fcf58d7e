//! Backups as snapshots in an encrypted, deduplicated repository in
//! restic's format (version 2), written with rustic_core: one repository
//! per world, made on first use, opened with one password Tavern keeps
//! sealed. Snapshots are taken, verified (the files the backup wrote read
//! back, the snapshot's trees complete), listed, forgotten, pruned and
//! restored here. Blocking code: callers run it on a blocking thread.

mod backend;
mod export;
mod keys;
mod source;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustic_core::repofile::{Node, NodeType, SnapshotFile, SnapshotId};
use rustic_core::{
    BackupOptions, CheckOptions, ConfigOptions, Credentials, FileType, IndexedFull,
    IndexedFullStatus, KeyOptions, LocalDestination, LsOptions, OpenStatus, ParentOptions,
    PruneOptions, Repository, RepositoryBackends, RepositoryOptions, RestoreOptions,
    SnapshotOptions,
};
use sha2::{Digest, Sha256};

use crate::archive::Limits;
use crate::target::Target;
use backend::{Backend, Place};
pub(crate) use source::ROOT;
use source::WorldSource;

/// What a repository's work can fail with. Messages never hold the
/// password or storage credentials.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// rustic's own error, as text (it names files, never secrets).
    #[error("the backup repository {repo}: {message}")]
    Rustic { repo: String, message: String },
    /// The data could not be read whole: the world changed meanwhile, or
    /// an entry is unreadable.
    #[error("{0}; try again, or stop the world first")]
    Unreadable(String),
    /// The snapshot did not verify.
    #[error("the backup did not verify: {0}")]
    Corrupt(String),
    #[error("snapshot {0} is not in the repository")]
    NoSnapshot(String),
    /// A snapshot holds what a restore refuses (see [`Repo::restore`]).
    #[error("the snapshot holds an entry that is refused, {path}: {why}")]
    Unsafe { path: String, why: String },
    #[error("cannot {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// A repository of one world's snapshots.
pub struct Repo {
    backend: Arc<Backend>,
    password: String,
    describe: String,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

/// A snapshot as Tavern records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFacts {
    /// Its id (hex): the SHA-256 of its file in the repository.
    pub id: String,
    pub time: jiff::Timestamp,
    pub tags: Vec<String>,
    /// Files in it (links aside), and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// Bytes the backup added to the repository (compressed and
    /// encrypted); what it cost to keep.
    pub added: u64,
}

impl SnapshotFacts {
    fn of(snap: &SnapshotFile) -> Self {
        let summary = snap.summary.as_ref();
        Self {
            id: snap.id.to_hex().to_string(),
            time: snap.time.timestamp(),
            tags: snap.tags.iter().cloned().collect(),
            files: summary.map_or(0, |s| s.total_files_processed),
            bytes: summary.map_or(0, |s| s.total_bytes_processed),
            added: summary.map_or(0, |s| s.data_added_packed),
        }
    }
}

/// What a prune did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneFacts {
    /// Pack files no snapshot needs, marked now to go at a later prune;
    /// those marked earlier and removed now; and those repacked.
    pub marked_packs: u64,
    pub removed_packs: u64,
    pub repacked_packs: u64,
}

/// The node of the data directory in a snapshot (`None`: it was empty).
fn data_node<S: IndexedFull + rustic_core::IndexedTree>(
    repo: &Repository<S>,
    snap: &SnapshotFile,
) -> rustic_core::RusticResult<Option<Node>> {
    let root = repo.get_tree(&snap.tree)?;
    let name = ROOT.trim_start_matches('/');
    Ok(root
        .nodes
        .into_iter()
        .find(|n| n.name() == std::ffi::OsStr::new(name)))
}

enum Checked {
    Rustic(Box<rustic_core::RusticError>),
    Refused(RepoError),
}

/// Holds a snapshot's entries to the rules a restore keeps.
fn check_entries(
    entries: impl Iterator<Item = rustic_core::RusticResult<(PathBuf, Node)>>,
    expected: Limits,
) -> Result<(), Checked> {
    let (mut files, mut bytes) = (0u64, 0u64);
    for entry in entries {
        let (path, node) = entry.map_err(Checked::Rustic)?;
        let shown = path.display().to_string();
        let refuse = |why: String| {
            Checked::Refused(RepoError::Unsafe {
                path: shown.clone(),
                why,
            })
        };
        let name = node.name();
        let raw = name.as_encoded_bytes();
        if raw.is_empty() || raw == b"." || raw == b".." || raw.contains(&b'/') {
            return Err(refuse("its name is not a plain name".into()));
        }
        match &node.node_type {
            NodeType::Dir => {}
            NodeType::File => {
                files += 1;
                bytes = bytes.saturating_add(node.meta.size);
            }
            NodeType::Symlink { linktarget, .. } => {
                if !crate::archive::link_stays_inside(&shown, linktarget) {
                    return Err(refuse(format!(
                        "it links to {linktarget:?}, outside the directory"
                    )));
                }
            }
            other => {
                return Err(refuse(format!(
                    "it is a {other} entry, not a file, directory or link"
                )));
            }
        }
    }
    if (files, bytes) != (expected.files, expected.bytes) {
        return Err(Checked::Refused(RepoError::Corrupt(format!(
            "it holds {files} files and {bytes} bytes, not the {} and {} recorded",
            expected.files, expected.bytes
        ))));
    }
    Ok(())
}

/// The name of each world's repository below the backup target.
pub const REPOSITORIES: &str = "repositories";

impl Repo {
    /// The repository `name` (a world's) in `target`, under
    /// `repositories/`; `runtime` drives S3 storage from blocking threads.
    pub fn new(
        target: &Target,
        name: &str,
        password: &str,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        let (dir, store, prefix) = target.parts();
        let rel = format!("{REPOSITORIES}/{name}");
        let place = match dir {
            Some(dir) => Place::Dir(dir.join(&rel)),
            None => Place::Store {
                store,
                prefix: match prefix {
                    "" => rel.clone(),
                    p => format!("{p}/{rel}"),
                },
                runtime,
            },
        };
        let describe = format!("{}/{rel}", target.to_string().trim_end_matches('/'));
        Self {
            backend: Arc::new(Backend::new(place, describe.clone())),
            password: password.to_owned(),
            describe,
        }
    }

    /// Where it is (a directory or `s3://…`), for people.
    pub fn location(&self) -> &str {
        &self.describe
    }

    fn rustic(&self, e: impl std::fmt::Display) -> RepoError {
        RepoError::Rustic {
            repo: self.describe.clone(),
            message: e.to_string(),
        }
    }

    fn repository(&self) -> Result<Repository<()>, RepoError> {
        let backends = RepositoryBackends::new(self.backend.clone(), None);
        // No local cache: Tavern's own directory is the place of truth,
        // and each open reads the (small) index afresh.
        let opts = RepositoryOptions::default().no_cache(true);
        Repository::new(&opts, &backends).map_err(|e| self.rustic(e))
    }

    /// Opens the repository, made first when there is none yet (`None`:
    /// there is none and `create` is false). The master key is kept once
    /// found, so that the password's scrypt (128 MiB, a good part of a
    /// second) runs once per repository and process, not on every open.
    fn open(&self, create: bool) -> Result<Option<Repository<OpenStatus>>, RepoError> {
        let mut repo = self.repository()?;
        let exists = repo.config_id().map_err(|e| self.rustic(e))?.is_some();
        let credentials = Credentials::password(&self.password);
        if !exists {
            if !create {
                return Ok(None);
            }
            // Never made again over keys that are there: a repository
            // whose config is lost is repaired by hand, not replaced.
            let keys = rustic_core::ReadBackend::list(&*self.backend, FileType::Key)
                .map_err(|e| self.rustic(e))?;
            if !keys.is_empty() {
                return Err(RepoError::Corrupt(format!(
                    "{} has keys but no config file; it is not made again over them",
                    self.describe
                )));
            }
            let key = KeyOptions::default()
                .hostname("tavern".to_owned())
                .username("tavern".to_owned());
            let made = repo
                .init(&credentials, &key, &ConfigOptions::default())
                .map_err(|e| self.rustic(e))?;
            keys::keep(&self.describe, &self.password, made.key());
            return Ok(Some(made));
        }
        self.backend.clear_staging();
        if let Some(key) = keys::kept(&self.describe, &self.password) {
            // A repository made again since (or a key that no longer
            // opens it) falls back to the password.
            match repo.open(&Credentials::Masterkey(key)) {
                Ok(open) => return Ok(Some(open)),
                Err(_) => keys::forget(&self.describe, &self.password),
            }
            repo = self.repository()?;
        }
        let open = repo.open(&credentials).map_err(|e| self.rustic(e))?;
        keys::keep(&self.describe, &self.password, open.key());
        Ok(Some(open))
    }

    /// Opens the repository that must be there.
    fn open_existing(&self) -> Result<Repository<OpenStatus>, RepoError> {
        self.open(false)?
            .ok_or_else(|| self.rustic("there is no repository here"))
    }

    /// Takes a snapshot of `data` tagged with `tags`, at `time`, and
    /// verifies it before answering: every file the backup wrote is read
    /// back and hashed, and the snapshot's trees are checked complete
    /// against the index. A file that changes while it is read fails the
    /// backup (what was written is unreferenced and goes at the next
    /// prune). Files unchanged since the last snapshot (same size and
    /// times, and same inode unless `copied`: the data is a fresh copy,
    /// unpacked from an archive) are not read again.
    pub fn backup(
        &self,
        data: &Path,
        tags: &[String],
        time: jiff::Timestamp,
        copied: bool,
    ) -> Result<SnapshotFacts, RepoError> {
        let repo = self
            .open(true)?
            .expect("made when missing")
            .to_indexed_ids()
            .map_err(|e| self.rustic(e))?;
        let mut options = SnapshotOptions::default()
            .host("tavern".to_owned())
            .time(time.to_zoned(jiff::tz::TimeZone::UTC));
        if !tags.is_empty() {
            options = options
                .add_tags(&tags.join(","))
                .map_err(|e| self.rustic(e))?;
        }
        let snap = options.to_snapshot().map_err(|e| self.rustic(e))?;
        let source = WorldSource::new(data);
        let notes = source.notes();
        self.backend.take_written();
        let snap = repo
            .archive(
                &BackupOptions::default().parent_opts(
                    ParentOptions::default()
                        .ignore_ctime(copied)
                        .ignore_inode(copied),
                ),
                &source,
                snap,
                &[PathBuf::from(ROOT)],
            )
            .map_err(|e| self.rustic(e))?;
        let notes = std::mem::take(&mut *notes.lock().expect("not poisoned"));
        let mut facts = SnapshotFacts::of(&snap);
        if let Some(first) = notes.failed.first() {
            // Not kept: the snapshot lacks what could not be read.
            let _ = repo.delete_snapshots(&[snap.id]);
            return Err(RepoError::Unreadable(first.clone()));
        }
        // rustic counts links among the files.
        if facts.files != notes.files + notes.links || facts.bytes != notes.bytes {
            let _ = repo.delete_snapshots(&[snap.id]);
            return Err(RepoError::Unreadable(format!(
                "{} files and links ({} bytes) were listed but {} ({} bytes) were copied",
                notes.files + notes.links,
                notes.bytes,
                facts.files,
                facts.bytes
            )));
        }
        facts.files = notes.files;
        if let Err(e) = self.verify(&repo, &snap) {
            let _ = repo.delete_snapshots(&[snap.id]);
            return Err(e);
        }
        Ok(facts)
    }

    /// Reads back every file the backup wrote (each must hash to its
    /// name), then checks the snapshot's trees against the index.
    fn verify<S: rustic_core::Open>(
        &self,
        repo: &Repository<S>,
        snap: &SnapshotFile,
    ) -> Result<(), RepoError> {
        for (tpe, id) in self.backend.take_written() {
            if tpe == FileType::Config || tpe == FileType::Key {
                continue;
            }
            let bytes = rustic_core::ReadBackend::read_full(&*self.backend, tpe, &id)
                .map_err(|e| RepoError::Corrupt(e.to_string()))?;
            if hex::encode(Sha256::digest(&bytes)) != id.to_hex().as_str() {
                return Err(RepoError::Corrupt(format!(
                    "{} {} does not hash to its name",
                    tpe.dirname(),
                    id.to_hex().as_str()
                )));
            }
        }
        let checked = repo
            .check_with_trees(CheckOptions::default(), vec![snap.tree])
            .map_err(|e| RepoError::Corrupt(e.to_string()))?;
        checked
            .is_ok()
            .map_err(|e| RepoError::Corrupt(e.to_string()))
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotFacts>, RepoError> {
        let Some(repo) = self.open(false)? else {
            return Ok(Vec::new());
        };
        let mut all: Vec<SnapshotFacts> = repo
            .get_all_snapshots()
            .map_err(|e| self.rustic(e))?
            .iter()
            .map(SnapshotFacts::of)
            .collect();
        all.sort_by_key(|s| s.time);
        Ok(all)
    }

    fn snapshot_id(id: &str) -> Result<SnapshotId, RepoError> {
        let parsed: rustic_core::Id = id
            .parse()
            .map_err(|_| RepoError::NoSnapshot(id.to_owned()))?;
        Ok(SnapshotId::from(parsed))
    }

    /// Forgets snapshots (their data stays until a prune); one already
    /// gone is fine.
    pub fn forget(&self, ids: &[&str]) -> Result<(), RepoError> {
        let ids = ids
            .iter()
            .map(|id| Self::snapshot_id(id))
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Ok(());
        }
        let Some(repo) = self.open(false)? else {
            return Ok(());
        };
        repo.delete_snapshots(&ids).map_err(|e| self.rustic(e))
    }

    /// Removes the data no snapshot needs any more. Packs are marked first
    /// and removed by a later prune a day on, so that a download reading
    /// the repository meanwhile is not cut off.
    pub fn prune(&self) -> Result<PruneFacts, RepoError> {
        let Some(repo) = self.open(false)? else {
            return Ok(PruneFacts::default());
        };
        let opts = PruneOptions::default();
        let plan = repo.prune_plan(&opts).map_err(|e| self.rustic(e))?;
        let facts = PruneFacts {
            marked_packs: plan.stats.packs.unused,
            removed_packs: plan.stats.packs_to_delete.remove,
            repacked_packs: plan.stats.packs.repack,
        };
        repo.prune(&opts, plan).map_err(|e| self.rustic(e))?;
        Ok(facts)
    }

    /// The snapshot `id`, opened with its whole index (to read files).
    fn snapshot(
        &self,
        id: &str,
    ) -> Result<(Repository<IndexedFullStatus>, SnapshotFile), RepoError> {
        let wanted = Self::snapshot_id(id)?;
        let repo = self
            .open(false)?
            .ok_or_else(|| RepoError::NoSnapshot(id.to_owned()))?
            .to_indexed()
            .map_err(|e| self.rustic(e))?;
        let snap = repo
            .get_all_snapshots()
            .map_err(|e| self.rustic(e))?
            .into_iter()
            .find(|s| s.id == wanted)
            .ok_or_else(|| RepoError::NoSnapshot(id.to_owned()))?;
        Ok((repo, snap))
    }

    /// Puts snapshot `id` into `dest`, a directory that does not exist
    /// yet, with the files' modes and times (owned by this user). Its
    /// entries are checked first: nothing but files, directories and links
    /// that stay inside, no name that could climb out, and exactly the
    /// files and bytes recorded for it (`expected`). On an error `dest` is
    /// removed.
    pub fn restore(&self, id: &str, dest: &Path, expected: Limits) -> Result<(), RepoError> {
        let (repo, snap) = self.snapshot(id)?;
        let io = |what: &str| {
            let what = format!("{what} {}", dest.display());
            move |source| RepoError::Io { what, source }
        };
        std::fs::create_dir(dest).map_err(io("create"))?;
        let Some(node) = data_node(&repo, &snap).map_err(|e| self.rustic(e))? else {
            // Nothing was in the data directory.
            return match expected.files {
                0 => Ok(()),
                n => Err(RepoError::Corrupt(format!(
                    "it holds no files, not the {n} recorded"
                ))),
            };
        };
        let result = (|| {
            let ls = repo
                .ls(&node, &LsOptions::default())
                .map_err(|e| self.rustic(e))?;
            check_entries(ls.clone(), expected).map_err(|e| match e {
                Checked::Rustic(e) => self.rustic(e),
                Checked::Refused(e) => e,
            })?;
            let target = LocalDestination::new(&dest.to_string_lossy(), false, false)
                .map_err(|e| self.rustic(e))?;
            let opts = RestoreOptions::default().no_ownership(true);
            let plan = repo
                .prepare_restore(&opts, ls.clone(), &target, false)
                .map_err(|e| self.rustic(e))?;
            repo.restore(plan, &opts, ls, &target)
                .map_err(|e| self.rustic(e))
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(dest);
        }
        result
    }

    /// Checks the whole repository as `restic check` does; with
    /// `read_data`, every pack is read and its blobs verified too.
    pub fn check(&self, read_data: bool) -> Result<(), RepoError> {
        let repo = self.open_existing()?;
        let checked = repo
            .check(CheckOptions::default().read_data(read_data))
            .map_err(|e| self.rustic(e))?;
        checked
            .is_ok()
            .map_err(|e| RepoError::Corrupt(e.to_string()))
    }
}
