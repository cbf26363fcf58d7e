//! Archives moved into their worlds' repositories (`tavern backup
//! migrate`): each complete archive in this server's target, oldest first,
//! checked against its record and unpacked, taken as a snapshot with its
//! own time and tags, recorded as moved, and only then its archive removed.
//! One move at a time; a world busy with a backup or restore is left for
//! the next run, as is anything that fails (the archive stays as it was).

use tavern_backup::archive::{self, Limits};
use tavern_store::{Backup, Outcome, now};
use tavern_types::words::error_chain;
use tavern_types::{BackupFormat, BackupStatus};

use super::{backup_event, complete};
use crate::auth::Caller;
use crate::error::CoreError;
use crate::tavern::Tavern;
use crate::work::Migration;

impl Tavern {
    /// Starts moving every archive into its world's repository (admins
    /// only, with `backups.format = "repository"`); answers at once with
    /// how many there are.
    pub async fn migrate_backups(&self, caller: &Caller) -> Result<Migration, CoreError> {
        caller.require_admin("move backups into repositories")?;
        let settings = self.backup_settings()?;
        if settings.format != BackupFormat::Repository {
            return Err(CoreError::Conflict {
                code: "not_repository",
                message: "backups.format is \"archive\": set it to \"repository\" first, so that new backups go there too".into(),
            });
        }
        if self
            .backup_work
            .migration()
            .is_some_and(|m| m.finished_at.is_none())
        {
            return Err(CoreError::Conflict {
                code: "migration_running",
                message: "backups are being moved into repositories already".into(),
            });
        }
        let here = settings.target.to_string();
        let mut todo: Vec<Backup> = self
            .store
            .list_backups(None, None)
            .await?
            .into_iter()
            .filter(|b| {
                b.format == BackupFormat::Archive
                    && b.status == BackupStatus::Complete
                    && b.target == here
            })
            .collect();
        todo.reverse();
        let started = Migration {
            total: todo.len() as u64,
            started_at: Some(now()),
            ..Migration::default()
        };
        self.backup_work
            .update_migration(|m| *m = Some(started.clone()));
        let tavern = self.clone();
        let actor = caller.name();
        tokio::spawn(async move {
            for b in todo {
                let result = tavern.migrate_one(&b, &actor).await;
                if let Err(e) = &result {
                    tracing::warn!(id = %b.id, slug = %b.slug, error = %e, "moving a backup into its repository failed");
                }
                tavern.backup_work.update_migration(|m| {
                    if let Some(m) = m {
                        match result {
                            Ok(()) => m.moved += 1,
                            Err(e) => m.failed.push(format!("{} ({}): {e}", b.id, b.slug)),
                        }
                    }
                });
            }
            tavern.backup_work.update_migration(|m| {
                if let Some(m) = m {
                    m.finished_at = Some(now());
                }
            });
        });
        Ok(started)
    }

    /// The latest move of archives into repositories since Tavern started
    /// (admins only).
    pub fn backup_migration(&self, caller: &Caller) -> Result<Migration, CoreError> {
        caller.require_admin("see the move of backups into repositories")?;
        Ok(self.backup_work.migration().unwrap_or_default())
    }

    /// Moves one archive into its world's repository.
    async fn migrate_one(&self, b: &Backup, actor: &str) -> Result<(), CoreError> {
        let _held = self.backup_work.hold(&b.slug)?;
        let settings = self.backup_settings()?.clone();
        let facts = complete(b)?.clone();
        tokio::fs::create_dir_all(&settings.staging)
            .await
            .map_err(|e| CoreError::internal("make the staging directory", e))?;
        let scratch = settings.staging.join(format!("{}.migrate", b.id));
        let unpacked = settings.staging.join(format!("{}.data", b.id));
        let local = settings
            .target
            .local_copy(&facts.key, &scratch)
            .await
            .map_err(|e| CoreError::internal("fetch a backup", e))?;
        let (file, dir, record) = (local.clone(), unpacked.clone(), facts.clone());
        let checked = tokio::task::spawn_blocking(move || {
            let limits = Limits {
                bytes: record.bytes,
                files: record.files,
            };
            let _ = std::fs::remove_dir_all(&dir);
            let read =
                archive::read_file(&file, Some(&dir), Some(limits)).map_err(|e| error_chain(&e))?;
            if (read.size, read.sha256.as_str()) != (record.size, record.sha256.as_str()) {
                let _ = std::fs::remove_dir_all(&dir);
                return Err("the archive is not the one recorded when it was made".to_owned());
            }
            Ok(())
        })
        .await
        .map_err(|e| CoreError::internal("move a backup", e))?;
        let snapshot = match checked {
            Ok(()) => self.snapshot_into_repo(b, &unpacked, true).await,
            Err(e) => Err(e),
        };
        if local == scratch {
            let _ = tokio::fs::remove_file(&scratch).await;
        }
        let _ = tokio::fs::remove_dir_all(&unpacked).await;
        let moved = snapshot.map_err(|why| CoreError::Conflict {
            code: "backup_corrupt",
            message: why,
        })?;
        if (moved.files, moved.bytes) != (facts.files, facts.bytes) {
            let repo = self.world_repo(&b.slug).await?;
            let id = moved.sha256.clone();
            let _ = tokio::task::spawn_blocking(move || repo.forget(&[&id])).await;
            return Err(CoreError::Conflict {
                code: "backup_corrupt",
                message: format!(
                    "the snapshot holds {} files and {} bytes, not the {} and {} recorded",
                    moved.files, moved.bytes, facts.files, facts.bytes
                ),
            });
        }
        let detail = format!(
            "{} moved into {} as snapshot {}",
            facts.key,
            moved.key,
            moved.sha256.get(..8).unwrap_or_default()
        );
        self.store
            .move_backup(
                b.id,
                BackupFormat::Repository,
                &settings.target.to_string(),
                &moved,
                &backup_event(actor, "backup.migrate", b, Outcome::Success, Some(detail)),
            )
            .await?;
        if let Err(e) = settings.target.delete(&facts.key).await {
            tracing::warn!(id = %b.id, error = %e, "a moved backup's archive could not be removed");
        }
        Ok(())
    }
}
