//! What an import is given and what it answers (its source, its report),
//! and the uploads held between the dashboard's two steps (received and
//! surveyed, waiting for their sender's yes): the data, which the service
//! holds; the work is `imports`'.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tavern_backup::import::layout::Layout;
use tavern_types::{BackupId, UserId};

use crate::auth::Caller;
use crate::error::CoreError;

/// Where an import comes from.
pub enum ImportSource {
    /// A folder or an archive on this server (admins only).
    Path(PathBuf),
    /// An upload `Tavern::receive_import` kept; removed when dropped.
    Upload(tempfile::TempPath),
}

impl ImportSource {
    pub(crate) fn path(&self) -> &Path {
        match self {
            Self::Path(p) => p,
            Self::Upload(t) => t,
        }
    }
}

/// What an import found, and what it did.
#[derive(Clone)]
pub struct ImportReport {
    pub world: String,
    /// Whether the import made the world.
    pub created: bool,
    /// Whether anything was put in place (not for a check).
    pub done: bool,
    pub layout: Layout,
    /// The release the world runs.
    pub release: Option<String>,
    /// Worth knowing before or after: older worlds, manifests that do not
    /// read, a missing game system.
    pub warnings: Vec<String>,
    /// What became of the old server's `license.json`, in words.
    pub license: Option<String>,
    /// The backup of the world taken before the import changed it.
    pub backup: Option<BackupId>,
}

/// How long an upload waits for its yes.
pub const HOLD_FOR: Duration = Duration::from_secs(3600);

/// The uploads held, by their id.
#[derive(Default)]
pub(crate) struct HeldImports(Mutex<HashMap<String, Held>>);

pub(crate) struct Held {
    pub user: UserId,
    pub release: Option<String>,
    pub source: ImportSource,
    pub report: ImportReport,
    pub at: Instant,
}

impl HeldImports {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `held` under a new id, in place of what its sender held
    /// before and of whatever waited too long (their files removed).
    pub(crate) fn put(&self, held: Held) -> String {
        let user = held.user;
        drop(self.remove_where(|h| h.user == user || h.at.elapsed() > HOLD_FOR));
        let id = hex::encode(rand::random::<[u8; 16]>());
        self.lock().insert(id.clone(), held);
        id
    }

    /// Drops what waited longer than [`HOLD_FOR`] (its file removed).
    pub(crate) fn expire(&self) {
        drop(self.remove_where(|h| h.at.elapsed() > HOLD_FOR));
    }

    /// Takes out everything `gone` says, to be dropped outside the lock
    /// (dropping removes the files).
    fn remove_where(&self, gone: impl Fn(&Held) -> bool) -> Vec<Held> {
        let mut map = self.lock();
        let ids: Vec<String> = map
            .iter()
            .filter(|(_, h)| gone(h))
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter().filter_map(|id| map.remove(id)).collect()
    }

    /// Takes out what `caller` may have (their own; an admin's: any).
    pub(crate) fn take(&self, caller: &Caller, id: &str) -> Result<Held, CoreError> {
        let mut map = self.lock();
        match map.get(id) {
            Some(h) if h.at.elapsed() <= HOLD_FOR && mine(caller, h) => {
                Ok(map.remove(id).expect("just found"))
            }
            _ => Err(not_held(id)),
        }
    }
}

pub(crate) fn mine(caller: &Caller, h: &Held) -> bool {
    h.user == caller.user.id || caller.is_admin()
}

pub(crate) fn not_held(id: &str) -> CoreError {
    CoreError::NotFound {
        what: "upload waiting to be imported",
        key: id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(user: UserId, dir: &std::path::Path) -> (Held, std::path::PathBuf) {
        let file = tempfile::NamedTempFile::new_in(dir)
            .unwrap()
            .into_temp_path();
        let path = file.to_path_buf();
        let layout = tavern_backup::import::layout::plan(
            &[tavern_backup::import::layout::Entry {
                path: "Data/worlds/w/world.json".into(),
                kind: tavern_backup::import::layout::EntryKind::File { size: 1 },
            }],
            &Default::default(),
        )
        .unwrap();
        let report = ImportReport {
            world: "w".into(),
            created: true,
            done: false,
            layout,
            release: None,
            warnings: vec![],
            license: None,
            backup: None,
        };
        let h = Held {
            user,
            release: None,
            source: ImportSource::Upload(file),
            report,
            at: Instant::now(),
        };
        (h, path)
    }

    #[test]
    fn a_second_upload_of_one_user_replaces_the_first_and_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let held_imports = HeldImports::default();
        let (a, b) = (UserId::new(), UserId::new());
        let (first, first_file) = held(a, dir.path());
        let (theirs, theirs_file) = held(b, dir.path());
        held_imports.put(first);
        let kept = held_imports.put(theirs);
        assert!(first_file.exists() && theirs_file.exists());
        let (second, _) = held(a, dir.path());
        held_imports.put(second);
        assert!(!first_file.exists(), "the first upload's file is removed");
        assert!(theirs_file.exists(), "another user's upload stays");
        assert_eq!(held_imports.lock().len(), 2);
        assert!(held_imports.lock().contains_key(&kept));
    }

    #[test]
    fn an_upload_left_for_its_hour_goes_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let held_imports = HeldImports::default();
        let (fresh, fresh_file) = held(UserId::new(), dir.path());
        let (mut old, old_file) = held(UserId::new(), dir.path());
        old.at = Instant::now()
            .checked_sub(HOLD_FOR + Duration::from_secs(1))
            .unwrap();
        held_imports.put(fresh);
        held_imports.lock().insert("old".into(), old);
        held_imports.expire();
        assert!(!old_file.exists(), "the old upload's file is removed");
        assert!(fresh_file.exists());
        assert_eq!(held_imports.lock().len(), 1);
    }
}
