//! The dashboard's two steps: an upload received, surveyed and held (in
//! `crate::imported`'s keeping), then imported when the one who sent it
//! says yes, or dropped when they say no, send another, or leave it for an
//! hour; and what an earlier run left in the import folder.

use std::time::Instant;

use super::{ImportReport, ImportRequest, ImportSource};
use crate::auth::Caller;
use crate::error::CoreError;
use crate::imported::{HOLD_FOR, Held, mine, not_held};
use crate::tavern::Tavern;

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
        // Its file goes when its hour is up, whatever else happens.
        let held = self.held_imports.clone();
        tokio::spawn(async move {
            tokio::time::sleep(HOLD_FOR + std::time::Duration::from_secs(1)).await;
            held.expire();
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
