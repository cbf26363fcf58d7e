//! Backups on a schedule, and keeping only what retention says: every
//! world backed up at the configured times, old backups removed, and
//! destroyed worlds' last backups expired.

use std::time::Duration;

use jiff::tz::TimeZone;
use tavern_backup::local;
use tavern_backup::retention::{self, Candidate};
use tavern_store::{Backup, Outcome, now};
use tavern_types::{BackupFormat, BackupId, BackupKind, BackupStatus, DesiredState, Slug};

use super::backup_event;
use crate::error::CoreError;
use crate::tavern::Tavern;

/// Backs every world up on the schedule, and removes destroyed worlds'
/// last backups past their time (then, or hourly without a schedule); and
/// prunes the repositories on theirs; until `cancel`.
pub async fn run_schedule(tavern: Tavern, cancel: tokio_util::sync::CancellationToken) {
    let Some(settings) = tavern.settings.backups.clone() else {
        return;
    };
    let backing_up = async {
        loop {
            let due = match &settings.schedule {
                Some(cron) => {
                    if !wait_for(cron, &cancel).await {
                        return;
                    }
                    true
                }
                None => {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(3600)) => false,
                    }
                }
            };
            if due {
                match tavern.scheduled_backups().await {
                    Ok(n) => tracing::info!(worlds = n, "scheduled backups done"),
                    Err(e) => tracing::warn!(error = %e, "scheduled backups failed"),
                }
            }
            if let Err(e) = tavern.expire_destroyed_backups().await {
                tracing::warn!(error = %e, "removing old backups of destroyed worlds failed");
            }
        }
    };
    let pruning = async {
        let Some(cron) = &settings.prune_schedule else {
            return;
        };
        while wait_for(cron, &cancel).await {
            match tavern.prune_repositories().await {
                Ok(n) => tracing::info!(repositories = n, "backup repositories pruned"),
                Err(e) => tracing::warn!(error = %e, "pruning the backup repositories failed"),
            }
        }
    };
    tokio::join!(backing_up, pruning);
}

/// Sleeps until `cron`'s next time: `true` then, `false` when cancelled
/// or when it has no next time.
async fn wait_for(cron: &croner::Cron, cancel: &tokio_util::sync::CancellationToken) -> bool {
    let now = jiff::Zoned::now();
    let next = match cron.find_next_occurrence(&now, false) {
        Ok(next) => next,
        Err(e) => {
            tracing::warn!(error = %e, "a backup schedule has no next time");
            return false;
        }
    };
    let wait = now
        .timestamp()
        .duration_until(next.timestamp())
        .try_into()
        .unwrap_or(Duration::ZERO);
    tokio::select! {
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}

impl Tavern {
    /// Backs up every world that has data, one after another (a `live`
    /// copy of those that run); answers how many were backed up.
    pub async fn scheduled_backups(&self) -> Result<usize, CoreError> {
        let mut done = 0;
        for i in self.store.list_instances(None).await? {
            if i.desired_state == DesiredState::Destroyed {
                continue;
            }
            let job = match self.begin_backup(&i, BackupKind::Scheduled, "system").await {
                Ok(Some(job)) => job,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(slug = %i.slug, error = %e, "the scheduled backup did not start");
                    continue;
                }
            };
            if self.run_backup(job).await.is_ok() {
                done += 1;
            }
        }
        Ok(done)
    }

    /// Deletes the backups of a world that retention does not keep (locked
    /// and pre-destroy backups are never touched here).
    pub(crate) async fn apply_retention(&self, slug: &Slug) -> Result<(), CoreError> {
        let settings = self.backup_settings()?.clone();
        let backups: Vec<Backup> = self
            .store
            .list_backups(None, Some(slug))
            .await?
            .into_iter()
            .filter(|b| b.status == BackupStatus::Complete && b.kind != BackupKind::PreDestroy)
            .collect();
        // A backup being restored from is kept like a locked one.
        let candidates: Vec<Candidate<BackupId>> = backups
            .iter()
            .map(|b| Candidate {
                id: b.id,
                created_at: b.created_at,
                locked: b.locked || self.backup_work.restoring(b.id),
            })
            .collect();
        let tz = TimeZone::system();
        for id in retention::prune(settings.retention, &candidates, &tz) {
            if let Some(b) = backups.iter().find(|b| b.id == id) {
                self.remove_backup(b, "system", "retention").await?;
            }
        }
        Ok(())
    }

    /// Removes a backup's archive, then its row.
    pub(super) async fn remove_backup(
        &self,
        b: &Backup,
        actor: &str,
        why: &str,
    ) -> Result<(), CoreError> {
        let settings = self.backup_settings()?;
        if let Some(facts) = &b.archive {
            if b.target != settings.target.to_string() {
                tracing::warn!(id = %b.id, target = %b.target, "the backup is in another target; only its record is removed");
            } else if b.format == BackupFormat::Repository {
                self.forget_snapshot(b, facts).await?;
            } else {
                settings
                    .target
                    .delete(&facts.key)
                    .await
                    .map_err(|e| CoreError::internal("delete a backup", e))?;
            }
        }
        self.store
            .delete_backup(
                b.id,
                &backup_event(
                    actor,
                    "backup.delete",
                    b,
                    Outcome::Success,
                    Some(why.to_owned()),
                ),
            )
            .await?;
        if b.format == BackupFormat::Repository {
            self.drop_repository_if_unused(&b.slug).await?;
        }
        Ok(())
    }

    /// At start-up: backups left in progress by an earlier run are failed
    /// and their staging files removed; destroyed worlds' last backups past
    /// their time are removed.
    pub async fn tidy_backups(&self) -> Result<(), CoreError> {
        let Ok(settings) = self.backup_settings() else {
            return Ok(());
        };
        for b in self.store.list_backups(None, None).await? {
            if b.status == BackupStatus::InProgress {
                let why = "Tavern stopped while it was being written";
                self.fail_backup(&b, why).await?;
                tracing::warn!(slug = %b.slug, id = %b.id, "a backup left unfinished is marked failed");
            }
        }
        if let Ok(mut entries) = tokio::fs::read_dir(&settings.staging).await {
            while let Ok(Some(e)) = entries.next_entry().await {
                // Staged archives, and Kubernetes worlds' data unpacked for
                // a snapshot.
                let _ = match e.file_type().await {
                    Ok(t) if t.is_dir() => tokio::fs::remove_dir_all(e.path()).await,
                    _ => tokio::fs::remove_file(e.path()).await,
                };
            }
        }
        // A restore cut off between its two renames: the world's data is
        // put back where it was.
        for i in self.store.list_instances(None).await? {
            let Some(data) = self.runtime.data_dir(&i.slug) else {
                continue;
            };
            let put_back = local::undo_interrupted_restore(&data)
                .map_err(|e| CoreError::internal("put a world's data back", e))?;
            if put_back {
                tracing::warn!(slug = %i.slug, "a restore was cut off; the world's data was put back");
            }
        }
        self.expire_destroyed_backups().await
    }

    /// Removes pre-destroy backups older than their keeping time.
    pub async fn expire_destroyed_backups(&self) -> Result<(), CoreError> {
        let keep = self.backup_settings()?.keep_destroyed;
        for b in self.store.list_backups(None, None).await? {
            if b.kind == BackupKind::PreDestroy && !b.locked && b.created_at + keep < now() {
                self.remove_backup(
                    &b,
                    "system",
                    "kept for its time after the world was destroyed",
                )
                .await?;
            }
        }
        Ok(())
    }
}
