//! Restoring a backup into its own world (stopped first, with a
//! pre-restore backup) or into a new one: the archive is checked against
//! its record before anything changes, and a failure says whether the
//! world's data had changed by then.

use std::path::Path;
use std::time::Duration;

use tavern_backup::archive::{self, Limits};
use tavern_backup::local;
use tavern_store::{Backup, Instance, Outcome, now};
use tavern_types::{ArchiveRecord, BackupFormat, BackupKind, DesiredState, ObservedState, Slug};

use super::{BackupView, backup_event, complete, not_found};
use crate::auth::Caller;
use crate::error::CoreError;
use crate::instances::NewInstance;
use crate::tavern::Tavern;
use crate::work::{Busy, RestoreState, RestoreStatus};

/// How long a restore waits for its world to stop.
const STOP_WAIT: Duration = Duration::from_secs(180);

/// Why a restore failed, and whether the world's data had changed by then.
struct RestoreFailure {
    error: CoreError,
    changed: bool,
}

impl RestoreFailure {
    fn after_change(error: CoreError) -> Self {
        Self {
            error,
            changed: true,
        }
    }
}

impl From<tavern_store::StoreError> for RestoreFailure {
    fn from(error: tavern_store::StoreError) -> Self {
        CoreError::from(error).into()
    }
}

impl From<CoreError> for RestoreFailure {
    /// A failure before anything changed (a refused archive changes
    /// nothing either).
    fn from(error: CoreError) -> Self {
        Self {
            error,
            changed: false,
        }
    }
}

/// An archive that is not the one recorded.
fn not_as_recorded() -> CoreError {
    CoreError::Conflict {
        code: "backup_corrupt",
        message: "the archive is not the one recorded when it was made (its size or checksum differs); nothing was restored".into(),
    }
}

/// Puts a verified archive in place of `data`, on a blocking thread. A
/// damaged or refused archive changes nothing.
async fn unpack_verified(
    archive_file: &Path,
    data: &Path,
    record: &ArchiveRecord,
) -> Result<(), RestoreFailure> {
    let (archive_file, data, record) = (
        archive_file.to_path_buf(),
        data.to_path_buf(),
        record.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let expected = local::Expected {
            size: record.size,
            sha256: &record.sha256,
            limits: Limits {
                bytes: record.bytes,
                files: record.files,
            },
        };
        local::restore_into(&archive_file, &data, expected)
    })
    .await
    .map_err(|e| CoreError::internal("restore", e))?
    .map_err(|e| match e {
        local::RestoreError::Refused(message) => CoreError::Conflict {
            code: "backup_corrupt",
            message,
        }
        .into(),
        // Perhaps between moving the data aside and putting the new in.
        e => RestoreFailure::after_change(CoreError::internal("restore", e)),
    })
}

/// What a snapshot that will not restore is: refused (not the one
/// recorded, or holding what the rules refuse), or not reachable.
fn snapshot_refused(e: tavern_backup::repo::RepoError) -> CoreError {
    use tavern_backup::repo::RepoError;
    match e {
        RepoError::Corrupt(_) | RepoError::Unsafe { .. } | RepoError::NoSnapshot(_) => {
            CoreError::Conflict {
                code: "backup_corrupt",
                message: format!("{e}; nothing was restored"),
            }
        }
        e => CoreError::internal("restore a snapshot", e),
    }
}

impl Tavern {
    /// Puts a backup's snapshot in place of `data`: restored beside it
    /// (checked against its record first), then swapped in.
    async fn restore_snapshot(
        &self,
        b: &Backup,
        data: &Path,
        record: &ArchiveRecord,
    ) -> Result<(), RestoreFailure> {
        let repo = self.world_repo(&b.slug).await?;
        let (id, data, limits) = (
            record.sha256.clone(),
            data.to_path_buf(),
            Limits {
                bytes: record.bytes,
                files: record.files,
            },
        );
        tokio::task::spawn_blocking(move || {
            let incoming = local::incoming_for(&data)
                .map_err(|e| RestoreFailure::from(CoreError::internal("restore", e)))?;
            repo.restore(&id, &incoming, limits)
                .map_err(|e| RestoreFailure::from(snapshot_refused(e)))?;
            local::swap_in(&incoming, &data)
                .map_err(|e| RestoreFailure::after_change(CoreError::internal("restore", e)))
        })
        .await
        .map_err(|e| CoreError::internal("restore", e))?
    }

    /// Writes a backup's snapshot to `staged` as an archive of Tavern's
    /// own (checked against its record on the way); answers the archive's
    /// record.
    async fn snapshot_archive(
        &self,
        b: &Backup,
        record: &ArchiveRecord,
        staged: &Path,
    ) -> Result<ArchiveRecord, CoreError> {
        let settings = self.backup_settings()?;
        tokio::fs::create_dir_all(&settings.staging)
            .await
            .map_err(|e| CoreError::internal("make the staging directory", e))?;
        let repo = self.world_repo(&b.slug).await?;
        let (id, staged, threads) = (
            record.sha256.clone(),
            staged.to_path_buf(),
            settings.threads,
        );
        let limits = Limits {
            bytes: record.bytes,
            files: record.files,
        };
        let summary = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::create(&staged)?;
            let mut out = std::io::BufWriter::new(file);
            let summary = repo
                .write_archive(&id, limits, &mut out, threads, &[], &[])
                .map_err(std::io::Error::other)?;
            std::io::Write::flush(&mut out)?;
            Ok::<_, std::io::Error>(summary)
        })
        .await
        .map_err(|e| CoreError::internal("restore", e))?
        .map_err(|e| CoreError::Conflict {
            code: "backup_corrupt",
            message: format!("the snapshot did not read back whole ({e}); nothing was restored"),
        })?;
        Ok(ArchiveRecord {
            size: summary.size,
            sha256: summary.sha256,
            bytes: summary.manifest.total_bytes(),
            files: summary.manifest.files.len() as u64,
        })
    }

    /// Restores a backup: into its own world (`to` = `None`: stopped first,
    /// its current data backed up first, started again if it ran), or into
    /// a new world named `to`. Answers at once; the backup's `restore` tells
    /// how it goes.
    pub async fn restore_backup(
        &self,
        caller: &Caller,
        id: &str,
        to: Option<&str>,
    ) -> Result<BackupView, CoreError> {
        let b = self.visible_backup(caller, id).await?;
        complete(&b)?;
        let (target, fresh) = match to {
            Some(slug) => {
                // An admin restores a game master's backup into a world of
                // theirs; a game master into their own.
                let owner = match caller.is_admin() {
                    true => self
                        .store
                        .user(b.owner)
                        .await?
                        .map(|u| u.username.to_string()),
                    false => None,
                };
                // The new world runs what the backup's world runs, if that
                // world is still there (else the newest release).
                let original = self.store.instance(&b.slug).await?;
                let created = self
                    .create_instance(
                        caller,
                        NewInstance {
                            slug: slug.to_owned(),
                            owner,
                            release: original.as_ref().and_then(|i| i.release.clone()),
                            license: None,
                            runtime: original.map(|i| i.runtime.to_string()),
                            idle_timeout_minutes: None,
                            wake_on_visit: None,
                        },
                    )
                    .await?;
                (created.instance, true)
            }
            None => {
                let i = self
                    .visible_instance(caller, b.slug.as_str())
                    .await
                    .map_err(|_| CoreError::Conflict {
                        code: "world_gone",
                        message: format!(
                            "{} no longer exists: restore into a new world with `to`",
                            b.slug
                        ),
                    })?;
                if i.desired_state == DesiredState::Destroyed {
                    return Err(crate::words::being_destroyed(&i));
                }
                (i, false)
            }
        };
        let busy = self.backup_work.hold(&target.slug)?;
        self.backup_work.set_restore(
            b.id,
            RestoreStatus {
                to: target.slug.clone(),
                state: RestoreState::Running,
                at: now(),
                notes: Vec::new(),
            },
        );
        let tavern = self.clone();
        let caller = caller.clone();
        let backup = b.clone();
        tokio::spawn(async move {
            let result = tavern
                .run_restore(&caller, &backup, &target, fresh, busy)
                .await;
            let (state, outcome, detail, notes) = match result {
                Ok(notes) => {
                    let mut detail = format!("into {}", target.slug);
                    for n in &notes {
                        detail.push_str("; ");
                        detail.push_str(n);
                    }
                    (RestoreState::Done, Outcome::Success, detail, notes)
                }
                Err(e) => {
                    let why = e.to_string();
                    tracing::warn!(id = %backup.id, to = %target.slug, error = %why, "restore failed");
                    (
                        RestoreState::Failed(why.clone()),
                        Outcome::Failure,
                        why,
                        Vec::new(),
                    )
                }
            };
            tavern.backup_work.set_restore(
                backup.id,
                RestoreStatus {
                    to: target.slug.clone(),
                    state,
                    at: now(),
                    notes,
                },
            );
            let e = backup_event(
                &caller.name(),
                "backup.restore",
                &backup,
                outcome,
                Some(detail),
            );
            if let Err(err) = tavern.store.append_event(&e).await {
                tracing::warn!(error = %err, "recording the restore failed");
            }
        });
        self.backup_view(b).await
    }

    /// A restore, start to end. When it fails, a world that ran is asked
    /// to run again, and the backup it took of the world first is removed
    /// if nothing was changed (it only repeats the data still in place, and
    /// would push an older backup out); after a restore, retention applies.
    /// Answers what the restore could not put back as the backup held it.
    async fn run_restore(
        &self,
        caller: &Caller,
        b: &Backup,
        i: &Instance,
        fresh: bool,
        _busy: Busy,
    ) -> Result<Vec<String>, CoreError> {
        let was_running = !fresh && i.desired_state == DesiredState::Running;
        let mut taken = None;
        let result = self.restore_steps(caller, b, i, fresh, &mut taken).await;
        match &result {
            Ok(_) => {
                if let Err(e) = self.apply_retention(&i.slug).await {
                    tracing::warn!(slug = %i.slug, error = %e, "applying backup retention failed");
                }
            }
            Err(failure) => {
                if let (Some(pre), false) = (&taken, failure.changed) {
                    let why = "the restore it was taken for failed before changing anything";
                    if let Err(e) = self.remove_backup(pre, "system", why).await {
                        tracing::warn!(id = %pre.id, error = %e, "removing a restore's own backup failed");
                    }
                }
                if was_running
                    && let Err(e) = self
                        .set_desired(caller, i.slug.as_str(), DesiredState::Running)
                        .await
                {
                    tracing::warn!(slug = %i.slug, error = %e, "starting the world again after a failed restore failed");
                }
            }
        }
        result.map_err(|failure| failure.error)
    }

    /// Stops the world and backs it up (unless it is new), then puts the
    /// backup's archive in place of its data and the packages it used back
    /// in its choices, and starts it again if it ran. `taken` is the backup
    /// of the world taken first.
    async fn restore_steps(
        &self,
        caller: &Caller,
        b: &Backup,
        i: &Instance,
        fresh: bool,
        taken: &mut Option<Backup>,
    ) -> Result<Vec<String>, RestoreFailure> {
        let settings = self.backup_settings()?.clone();
        let data = if i.runtime.data_on_cluster() {
            None
        } else {
            Some(self.local_data(i)?)
        };
        let was_running = !fresh && i.desired_state == DesiredState::Running;
        if !fresh {
            *taken = self.stop_and_back_up(caller, i, "restored").await?;
        }
        let facts = complete(b)?.clone();
        let record = ArchiveRecord {
            size: facts.size,
            sha256: facts.sha256.clone(),
            bytes: facts.bytes,
            files: facts.files,
        };
        match b.format {
            BackupFormat::Archive => {
                let scratch = settings.staging.join(format!("{}.restore", b.id));
                let local = settings
                    .target
                    .local_copy(&facts.key, &scratch)
                    .await
                    .map_err(|e| CoreError::internal("fetch a backup", e))?;
                let unpacked = match &data {
                    Some(data) => unpack_verified(&local, data, &record).await,
                    None => self.import_verified(i, &local, &record).await,
                };
                if local == scratch {
                    let _ = tokio::fs::remove_file(&scratch).await;
                }
                unpacked?;
            }
            BackupFormat::Repository => match &data {
                Some(data) => self.restore_snapshot(b, data, &record).await?,
                None => {
                    // A Kubernetes world takes an archive through its data
                    // agent: the snapshot is written as one first.
                    let staged = settings.staging.join(format!("{}.restore", b.id));
                    let made = self.snapshot_archive(b, &record, &staged).await;
                    let imported = match made {
                        Ok(made) => self.import_verified(i, &staged, &made).await,
                        Err(e) => Err(e.into()),
                    };
                    let _ = tokio::fs::remove_file(&staged).await;
                    imported?;
                }
            },
        }
        let notes = self.restore_packages(&caller.name(), b, i).await;
        if was_running {
            self.set_desired(caller, i.slug.as_str(), DesiredState::Running)
                .await
                .map_err(RestoreFailure::after_change)?;
        }
        Ok(notes)
    }

    /// Stops `i` if it runs, waits until it has, then backs up what is
    /// there (a pre-restore backup), under the caller's hold of the world:
    /// before a restore or an import changes its data. Answers the backup,
    /// if there was data; when it cannot be taken, nothing is `changed`
    /// ("restored", "imported").
    pub(crate) async fn stop_and_back_up(
        &self,
        caller: &Caller,
        i: &Instance,
        changed: &str,
    ) -> Result<Option<Backup>, CoreError> {
        if i.desired_state == DesiredState::Running {
            self.set_desired(caller, i.slug.as_str(), DesiredState::Stopped)
                .await?;
        }
        self.wait_stopped(&i.slug, changed).await?;
        let current = self
            .store
            .instance(&i.slug)
            .await?
            .ok_or_else(|| not_found(i.slug.as_str()))?;
        let Some(job) = self
            .start_job(&current, BackupKind::PreRestore, "system", None)
            .await?
        else {
            return Ok(None);
        };
        self.run_backup(job)
            .await
            .map(Some)
            .map_err(|_| CoreError::Conflict {
                code: "backup_failed",
                message: format!(
                    "{}'s current data could not be backed up, so nothing was {changed}",
                    i.slug
                ),
            })
    }

    /// Waits until a world asked to stop has stopped.
    async fn wait_stopped(&self, slug: &Slug, changed: &str) -> Result<(), CoreError> {
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        loop {
            let i = self
                .store
                .instance(slug)
                .await?
                .ok_or_else(|| not_found(slug.as_str()))?;
            if matches!(i.state, ObservedState::Stopped | ObservedState::Failed) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(CoreError::Conflict {
                    code: "instance_running",
                    message: format!("{slug} did not stop in time; nothing was {changed}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Puts an archive in place of a Kubernetes world's data, through the
    /// runtime (verified there before anything changes).
    async fn import_verified(
        &self,
        i: &Instance,
        archive_file: &Path,
        record: &ArchiveRecord,
    ) -> Result<(), RestoreFailure> {
        let spec = self
            .spec_with(i, false)
            .await
            .map_err(|e| CoreError::internal("describe the world", e))?;
        // Checked here first, so that a wrong archive never leaves Tavern.
        let file = archive_file.to_path_buf();
        let digest = tokio::task::spawn_blocking(move || archive::file_digest(&file))
            .await
            .map_err(|e| CoreError::internal("restore", e))?
            .map_err(|e| CoreError::internal("restore", e))?;
        if digest != (record.size, record.sha256.clone()) {
            return Err(not_as_recorded().into());
        }
        match self
            .runtime
            .import_archive(&spec, archive_file, record)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if !e.is_transient() => Err(CoreError::Conflict {
                code: "backup_corrupt",
                message: e.to_string(),
            }
            .into()),
            // Perhaps cut off while the data was being swapped.
            Err(e) => Err(RestoreFailure::after_change(CoreError::internal(
                "restore", e,
            ))),
        }
    }
}
