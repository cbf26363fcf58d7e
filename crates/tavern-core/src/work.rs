//! Work under way: the worlds being backed up or restored (one at a time
//! each), the latest restore of each backup and the latest move of
//! archives into repositories, in memory since Tavern started.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use tavern_types::{BackupId, Slug};

use crate::error::CoreError;

/// Where a restore is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreStatus {
    /// The world restored into.
    pub to: Slug,
    pub state: RestoreState,
    pub at: Timestamp,
    /// What a restore that went through could not do as the backup held
    /// it (a package it could not fetch again).
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreState {
    Running,
    Done,
    Failed(String),
}

/// The work in flight: worlds being backed up or restored, and the latest
/// restore of each backup.
#[derive(Default)]
pub(crate) struct BackupWork {
    busy: Mutex<HashSet<Slug>>,
    restores: Mutex<HashMap<BackupId, RestoreStatus>>,
    /// The latest move of archives into repositories.
    migration: Mutex<Option<Migration>>,
}

/// Archives moved into their worlds' repositories, as it goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Migration {
    /// Archives to move, moved, and those that could not be (with why).
    pub total: u64,
    pub moved: u64,
    pub failed: Vec<String>,
    pub started_at: Option<Timestamp>,
    /// Set once it is over.
    pub finished_at: Option<Timestamp>,
}

/// Holds a world for one backup or restore; freed when dropped.
pub(crate) struct Busy {
    work: Arc<BackupWork>,
    slug: Slug,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.work
            .busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.slug);
    }
}

impl BackupWork {
    pub(crate) fn hold(self: &Arc<Self>, slug: &Slug) -> Result<Busy, CoreError> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if !busy.insert(slug.clone()) {
            return Err(CoreError::Conflict {
                code: "backup_in_progress",
                message: format!(
                    "{slug} is being backed up or restored; try again when that is done"
                ),
            });
        }
        Ok(Busy {
            work: self.clone(),
            slug: slug.clone(),
        })
    }

    /// Whether a backup or restore holds the world now.
    pub(crate) fn holds(&self, slug: &Slug) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(slug)
    }

    pub(crate) fn set_restore(&self, id: BackupId, status: RestoreStatus) {
        self.restores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, status);
    }

    /// Whether a restore from this backup is under way.
    pub(crate) fn restoring(&self, id: BackupId) -> bool {
        self.restore(id)
            .is_some_and(|r| r.state == RestoreState::Running)
    }

    pub(crate) fn migration(&self) -> Option<Migration> {
        self.migration
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the migration's state with `f`.
    pub(crate) fn update_migration(&self, f: impl FnOnce(&mut Option<Migration>)) {
        f(&mut self.migration.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub(crate) fn restore(&self, id: BackupId) -> Option<RestoreStatus> {
        self.restores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }
}
