//! Uploads held between the dashboard's two steps: received and surveyed
//! first, then imported when the one who sent it says yes, or dropped when
//! they say no, send another, or leave it for an hour.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tavern_types::UserId;

use super::{ImportReport, ImportRequest, ImportSource};
use crate::auth::Caller;
use crate::error::CoreError;
use crate::tavern::Tavern;

/// How long an upload waits for its yes.
pub const HOLD_FOR: Duration = Duration::from_secs(3600);

/// The uploads held, by their id.
#[derive(Default)]
pub(crate) struct HeldImports(Mutex<HashMap<String, Held>>);

struct Held {
    user: UserId,
    release: Option<String>,
    source: ImportSource,
    report: ImportReport,
    at: Instant,
}

impl HeldImports {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `held` under a new id, in place of what its sender held
    /// before and of whatever waited too long (their files removed).
    fn put(&self, held: Held) -> String {
        let id = hex::encode(rand::random::<[u8; 16]>());
        let gone: Vec<Held> = {
            let mut map = self.lock();
            let stale: Vec<String> = map
                .iter()
                .filter(|(_, h)| h.user == held.user || h.at.elapsed() > HOLD_FOR)
                .map(|(id, _)| id.clone())
                .collect();
            let gone = stale.iter().filter_map(|id| map.remove(id)).collect();
            map.insert(id.clone(), held);
            gone
        };
        drop(gone);
        id
    }

    /// Takes out what `caller` may have (their own; an admin's: any).
    fn take(&self, caller: &Caller, id: &str) -> Result<Held, CoreError> {
        let mut map = self.lock();
        match map.get(id) {
            Some(h) if h.at.elapsed() <= HOLD_FOR && mine(caller, h) => {
                Ok(map.remove(id).expect("just found"))
            }
            _ => Err(not_held(id)),
        }
    }
}

fn mine(caller: &Caller, h: &Held) -> bool {
    h.user == caller.user.id || caller.is_admin()
}

fn not_held(id: &str) -> CoreError {
    CoreError::NotFound {
        what: "upload waiting to be imported",
        key: id.to_owned(),
    }
}

impl Tavern {
    /// Surveys an upload for an import into `slug` and holds it, unchanged,
    /// for [`Tavern::import_held`]: answers its id and what it would do. A
    /// refused import is not held. One upload is held per user: this one
    /// replaces what they held before.
    pub async fn hold_import(
        &self,
        caller: &Caller,
        slug: &str,
        source: ImportSource,
        release: Option<String>,
    ) -> Result<(String, ImportReport), CoreError> {
        let planned = self
            .plan_import(caller, slug, &source, release.as_deref())
            .await?;
        let report = planned.report;
        let id = self.held_imports.put(Held {
            user: caller.user.id,
            release,
            source,
            report: report.clone(),
            at: Instant::now(),
        });
        Ok((id, report))
    }

    /// What a held upload would do, as it was found when it was received.
    pub fn held_import(&self, caller: &Caller, id: &str) -> Result<ImportReport, CoreError> {
        let map = self.held_imports.lock();
        match map.get(id) {
            Some(h) if h.at.elapsed() <= HOLD_FOR && mine(caller, h) => Ok(h.report.clone()),
            _ => Err(not_held(id)),
        }
    }

    /// Imports a held upload into the world it was surveyed for, checked
    /// again as it is now; the upload is gone afterwards either way.
    pub async fn import_held(&self, caller: &Caller, id: &str) -> Result<ImportReport, CoreError> {
        let held = self.held_imports.take(caller, id)?;
        self.import_world(
            caller,
            &held.report.world,
            ImportRequest {
                source: held.source,
                check_only: false,
                release: held.release,
                owner: None,
            },
        )
        .await
    }

    /// Removes what an earlier run left in the import folder: uploads, and
    /// imports being put together for a cluster, not written to for longer
    /// than an upload is held (so never one under way or held by a Tavern
    /// sharing the folder). Answers how many.
    pub fn remove_stale_uploads(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.settings.imports_dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta
                .modified()
                .is_ok_and(|t| t.elapsed().unwrap_or_default() > 2 * HOLD_FOR);
            let gone = match (name.starts_with(".upload-"), name.starts_with(".cluster-")) {
                (true, _) if old && meta.is_file() => std::fs::remove_file(entry.path()).is_ok(),
                (_, true) if old && meta.is_dir() => std::fs::remove_dir_all(entry.path()).is_ok(),
                _ => false,
            };
            removed += usize::from(gone);
        }
        removed
    }

    /// Drops a held upload: its file is removed, nothing else changes.
    /// Answers the world it was for.
    pub fn drop_held_import(&self, caller: &Caller, id: &str) -> Result<String, CoreError> {
        Ok(self.held_imports.take(caller, id)?.report.world)
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
}
