//! Backups of worlds: what one is as people see it, and who may see it.
//! Taking one, the schedule and retention, restoring, downloads,
//! snapshots in each world's repository, and archives moved into them each
//! have a file of their own.

mod download;
mod migrate;
mod repository;
mod restore;
mod schedule;
mod take;

use std::collections::HashMap;
use std::path::PathBuf;

use tavern_store::{ArchiveFacts, Backup, NewEvent, Outcome, now};
use tavern_types::{BackupId, BackupStatus, Username};

use crate::auth::Caller;
use crate::error::CoreError;
use crate::settings::BackupSettings;
use crate::tavern::Tavern;

use crate::work::Busy;
pub use crate::work::{Migration, RestoreState, RestoreStatus};
pub use download::{BackupDownload, DownloadFormat};
pub use repository::repository_password;
pub use schedule::run_schedule;

/// A backup as people see it.
#[derive(Clone, Debug)]
pub struct BackupView {
    pub backup: Backup,
    pub owner: Username,
    /// The latest restore from this backup since Tavern started.
    pub restore: Option<RestoreStatus>,
    /// The library's packages its world used, when one backup was asked
    /// for (`None` in lists).
    pub packages: Option<Vec<tavern_store::BackupPackage>>,
}

/// A backup in progress and the world it holds.
struct Job {
    backup: Backup,
    data: DataSource,
    _busy: Option<Busy>,
}

/// Where a backup reads a world's data.
enum DataSource {
    /// Its directory on this machine.
    Local(PathBuf),
    /// Its claim on the cluster, through the runtime.
    Cluster,
}

fn backup_event(
    actor: &str,
    action: &str,
    b: &Backup,
    outcome: Outcome,
    detail: Option<String>,
) -> NewEvent {
    NewEvent {
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: format!("backup:{}", b.id),
        outcome,
        detail,
        at: now(),
    }
}

fn not_found(id: &str) -> CoreError {
    CoreError::NotFound {
        what: "backup",
        key: id.to_owned(),
    }
}

/// The key of a backup's archive in its target.
fn archive_key(b: &Backup) -> String {
    format!("{}/{}.tar.zst", b.slug, b.id)
}

fn complete(b: &Backup) -> Result<&ArchiveFacts, CoreError> {
    match (&b.status, &b.archive) {
        (BackupStatus::Complete, Some(facts)) => Ok(facts),
        _ => Err(CoreError::Conflict {
            code: "backup_not_ready",
            message: format!("backup {} is {}, not complete", b.id, b.status),
        }),
    }
}

impl Tavern {
    fn backup_settings(&self) -> Result<&BackupSettings, CoreError> {
        self.settings
            .backups
            .as_ref()
            .ok_or(CoreError::NotConfigured("backups"))
    }

    /// A backup the caller may see: an admin any, a game master their own.
    async fn visible_backup(&self, caller: &Caller, id: &str) -> Result<Backup, CoreError> {
        let parsed: BackupId = id.parse().map_err(|_| not_found(id))?;
        match self.store.backup(parsed).await? {
            Some(b) if caller.is_admin() || b.owner == caller.user.id => Ok(b),
            _ => Err(not_found(id)),
        }
    }

    async fn backup_view(&self, backup: Backup) -> Result<BackupView, CoreError> {
        let owner = self.store.user(backup.owner).await?.map(|u| u.username);
        Ok(self.view_with_owner(backup, owner))
    }

    /// A backup as people see it, its owner's name known (`None`: the
    /// owner is gone).
    fn view_with_owner(&self, backup: Backup, owner: Option<Username>) -> BackupView {
        let restore = self.backup_work.restore(backup.id);
        BackupView {
            backup,
            owner: owner.unwrap_or_else(|| Username::parse("deleted").expect("a valid name")),
            restore,
            packages: None,
        }
    }

    /// Backups the caller may see, newest first; only `slug`'s when given
    /// (a world the caller cannot see is not found).
    pub async fn list_backups(
        &self,
        caller: &Caller,
        slug: Option<&str>,
    ) -> Result<Vec<BackupView>, CoreError> {
        let slug = match slug {
            Some(s) => Some(self.visible_instance(caller, s).await?.slug),
            None => None,
        };
        let owner = (!caller.is_admin()).then_some(caller.user.id);
        let backups = self.store.list_backups(owner, slug.as_ref()).await?;
        // Owners' names read once, not once per backup.
        let names: HashMap<_, _> = match owner {
            Some(_) => HashMap::from([(caller.user.id, caller.user.username.clone())]),
            None => self
                .store
                .list_users()
                .await?
                .into_iter()
                .map(|u| (u.id, u.username))
                .collect(),
        };
        Ok(backups
            .into_iter()
            .map(|b| {
                let name = names.get(&b.owner).cloned();
                self.view_with_owner(b, name)
            })
            .collect())
    }

    pub async fn get_backup(&self, caller: &Caller, id: &str) -> Result<BackupView, CoreError> {
        let b = self.visible_backup(caller, id).await?;
        let mut packages = self.store.list_backup_packages(b.id).await?;
        packages.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        Ok(BackupView {
            packages: Some(packages),
            ..self.backup_view(b).await?
        })
    }

    /// Locks a backup against retention, or unlocks it.
    pub async fn lock_backup(
        &self,
        caller: &Caller,
        id: &str,
        locked: bool,
    ) -> Result<BackupView, CoreError> {
        let b = self.visible_backup(caller, id).await?;
        let action = if locked {
            "backup.lock"
        } else {
            "backup.unlock"
        };
        let b = self
            .store
            .set_backup_locked(
                b.id,
                locked,
                &backup_event(&caller.name(), action, &b, Outcome::Success, None),
            )
            .await?;
        self.backup_view(b).await
    }

    /// Deletes a backup and its archive.
    pub async fn delete_backup(&self, caller: &Caller, id: &str) -> Result<(), CoreError> {
        let b = self.visible_backup(caller, id).await?;
        if b.status == BackupStatus::InProgress || self.backup_work.restoring(b.id) {
            return Err(CoreError::Conflict {
                code: "backup_in_progress",
                message: format!("backup {} is still being written or restored from", b.id),
            });
        }
        self.remove_backup(&b, &caller.name(), "asked for").await
    }
}
