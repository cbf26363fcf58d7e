//! Taking a backup: a world's data archived to a staging file, verified,
//! published to the target and recorded, then retention applied. One
//! backup or restore per world at a time; the archive work runs on
//! blocking threads.

use std::path::Path;

use tavern_backup::local;
use tavern_store::{ArchiveFacts, Backup, Instance, Outcome, now};
use tavern_types::words::error_chain;
use tavern_types::{
    BackupFormat, BackupId, BackupKind, BackupStatus, DesiredState, ObservedState, Slug,
};

use super::{BackupView, DataSource, Job, archive_key, backup_event};
use crate::auth::Caller;
use crate::error::CoreError;
use crate::settings::BackupSettings;
use crate::tavern::Tavern;
use crate::work::Busy;

/// Archives `data` into `staged` and verifies it, on a blocking thread.
async fn write_verified(
    data: &Path,
    staged: &Path,
    threads: u32,
) -> Result<tavern_backup::archive::Summary, String> {
    let (data, staged) = (data.to_path_buf(), staged.to_path_buf());
    tokio::task::spawn_blocking(move || local::write_verified(&data, &staged, threads))
        .await
        .map_err(|e| format!("the archiver stopped: {e}"))?
}

/// Asked to back up a world that has never run.
fn no_data(i: &Instance) -> CoreError {
    CoreError::Conflict {
        code: "no_data",
        message: format!("{} has no data yet: start it once first", i.slug),
    }
}

impl Tavern {
    /// Asks for a backup of a world now (a copy marked `live` when it
    /// runs). Answers at once with the backup in progress; the work goes on
    /// in the background.
    pub async fn request_backup(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<BackupView, CoreError> {
        let settings = self.backup_settings()?;
        let i = self.visible_instance(caller, slug).await?;
        if i.desired_state == DesiredState::Destroyed {
            return Err(crate::words::being_destroyed(&i));
        }
        // A game master's own manual backups are spaced out (an admin's
        // neither are nor count against the owner's next one).
        if !caller.is_admin() {
            let me = caller.name();
            let last = self
                .store
                .list_backups(None, Some(&i.slug))
                .await?
                .into_iter()
                .find(|b| b.kind == BackupKind::Manual && b.created_by == me);
            if let Some(last) = last {
                let next = last.created_at + settings.manual_interval;
                if next > now() {
                    let at = |t| tavern_types::words::instant(t, &jiff::tz::TimeZone::UTC);
                    return Err(CoreError::Conflict {
                        code: "backup_throttled",
                        message: format!(
                            "you backed {} up by hand at {}; your next manual backup may start at {}",
                            i.slug,
                            at(last.created_at),
                            at(next)
                        ),
                    });
                }
            }
        }
        let job = self
            .begin_backup(&i, BackupKind::Manual, &caller.name())
            .await?
            .ok_or_else(|| no_data(&i))?;
        let backup = job.backup.clone();
        let tavern = self.clone();
        tokio::spawn(async move {
            let _ = tavern.run_backup(job).await;
        });
        self.backup_view(backup).await
    }

    /// Records a backup in progress and holds its world; `None` when the
    /// world has no data yet.
    pub(super) async fn begin_backup(
        &self,
        i: &Instance,
        kind: BackupKind,
        by: &str,
    ) -> Result<Option<Job>, CoreError> {
        self.backup_settings()?;
        let busy = self.backup_work.hold(&i.slug)?;
        self.start_job(i, kind, by, Some(busy)).await
    }

    /// Records a backup in progress of a world the caller holds (`busy`,
    /// or `None` when it holds it already, as a restore does); `None` when
    /// the world has no data yet.
    pub(super) async fn start_job(
        &self,
        i: &Instance,
        kind: BackupKind,
        by: &str,
        busy: Option<Busy>,
    ) -> Result<Option<Job>, CoreError> {
        let settings = self.backup_settings()?;
        let Some(data) = self.data_source(i).await? else {
            return Ok(None);
        };
        let packages = self.held_packages(i).await?;
        let backup = Backup {
            id: BackupId::new(),
            instance: i.id,
            slug: i.slug.clone(),
            owner: i.owner,
            kind,
            status: BackupStatus::InProgress,
            live: i.state != ObservedState::Stopped && i.state != ObservedState::Failed,
            locked: false,
            created_by: by.to_owned(),
            created_at: now(),
            finished_at: None,
            target: settings.target.to_string(),
            format: settings.format,
            archive: None,
            error: None,
        };
        self.store
            .create_backup(
                &backup,
                &backup_event(
                    by,
                    "backup.start",
                    &backup,
                    Outcome::Success,
                    Some(kind.to_string()),
                ),
            )
            .await?;
        // What the world uses of the library, not the files: a restore
        // puts the choices back.
        if !packages.is_empty() {
            self.store.set_backup_packages(backup.id, &packages).await?;
        }
        Ok(Some(Job {
            backup,
            data,
            _busy: busy,
        }))
    }

    /// Where a world's data is read from for a backup: its directory here,
    /// or (on Kubernetes) its claim on the cluster. A world with none yet
    /// has nothing to back up (`None`).
    async fn data_source(&self, i: &Instance) -> Result<Option<DataSource>, CoreError> {
        if i.runtime.data_on_cluster() {
            let has = self
                .runtime
                .has_data(&i.slug)
                .await
                .map_err(|e| CoreError::internal("look for the world's data", e))?;
            return Ok(has.then_some(DataSource::Cluster));
        }
        let data = self.local_data(i)?;
        Ok(data.is_dir().then_some(DataSource::Local(data)))
    }

    /// Writes and verifies a backup (an archive, published to the target,
    /// or a snapshot in its world's repository), and records how it ended.
    pub(super) async fn run_backup(&self, job: Job) -> Result<Backup, CoreError> {
        let settings = self.backup_settings()?.clone();
        let b = job.backup.clone();
        let recorded = match b.format {
            BackupFormat::Archive => self.write_archive(&settings, &b, &job.data).await,
            BackupFormat::Repository => self.write_snapshot(&settings, &b, &job.data).await,
        };
        drop(job);
        match recorded {
            Ok(facts) => {
                let detail = match b.format {
                    BackupFormat::Archive => {
                        format!("{} files, {} bytes compressed", facts.files, facts.size)
                    }
                    BackupFormat::Repository => format!(
                        "{} files, snapshot {} in {}, {} bytes added",
                        facts.files,
                        facts.sha256.get(..8).unwrap_or_default(),
                        facts.key,
                        facts.size
                    ),
                };
                let done = self
                    .store
                    .finish_backup(
                        b.id,
                        now(),
                        Ok(&facts),
                        &backup_event(
                            "system",
                            "backup.complete",
                            &b,
                            Outcome::Success,
                            Some(detail),
                        ),
                    )
                    .await?;
                tracing::info!(slug = %b.slug, id = %b.id, size = facts.size, "backup complete");
                // A restore's own backup waits for the restore: one that
                // fails must not push older backups out.
                if b.kind != BackupKind::PreRestore
                    && let Err(e) = self.apply_retention(&b.slug).await
                {
                    tracing::warn!(slug = %b.slug, error = %e, "applying backup retention failed");
                }
                Ok(done)
            }
            Err(why) => {
                tracing::warn!(slug = %b.slug, id = %b.id, error = %why, "backup failed");
                self.fail_backup(&b, &why).await?;
                Err(CoreError::Conflict {
                    code: "backup_failed",
                    message: format!("the backup of {} failed: {why}", b.slug),
                })
            }
        }
    }

    /// A backup as an archive: written to a staging file and verified,
    /// then published to the target.
    async fn write_archive(
        &self,
        settings: &BackupSettings,
        b: &Backup,
        data: &DataSource,
    ) -> Result<ArchiveFacts, String> {
        let key = archive_key(b);
        let staged = settings.staging.join(format!("{}.tar.zst.partial", b.id));
        let made = match data {
            DataSource::Local(data) => write_verified(data, &staged, settings.threads).await,
            DataSource::Cluster => self.export_verified(&b.slug, &staged).await,
        };
        let published = match made {
            Ok(summary) => settings
                .target
                .publish(&staged, &key)
                .await
                .map(|()| summary)
                .map_err(|e| error_chain(&e)),
            Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_file(&staged).await;
        published.map(|summary| ArchiveFacts {
            key,
            size: summary.size,
            sha256: summary.sha256,
            files: summary.manifest.files.len() as u64,
            bytes: summary.manifest.total_bytes(),
        })
    }

    /// A backup as a snapshot in its world's repository: of the data
    /// directory here, or of a Kubernetes world's data as its data agent
    /// exports it (verified, then unpacked in staging).
    async fn write_snapshot(
        &self,
        settings: &BackupSettings,
        b: &Backup,
        data: &DataSource,
    ) -> Result<ArchiveFacts, String> {
        if let DataSource::Local(dir) = data {
            return self.snapshot_into_repo(b, dir, false).await;
        }
        let staged = settings.staging.join(format!("{}.tar.zst.partial", b.id));
        let unpacked = settings.staging.join(format!("{}.data", b.id));
        let result = async {
            let summary = self.export_verified(&b.slug, &staged).await?;
            let (from, to) = (staged.clone(), unpacked.clone());
            tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_dir_all(&to);
                tavern_backup::archive::read_file(&from, Some(&to), Some(summary.limits()))
            })
            .await
            .map_err(|e| format!("the archiver stopped: {e}"))?
            .map_err(|e| format!("the exported data did not unpack: {e}"))?;
            self.snapshot_into_repo(b, &unpacked, true).await
        }
        .await;
        let _ = tokio::fs::remove_file(&staged).await;
        let _ = tokio::fs::remove_dir_all(&unpacked).await;
        result
    }

    /// Whether a backup or restore holds the world now.
    pub(crate) fn backup_holds(&self, slug: &Slug) -> bool {
        self.backup_work.holds(slug)
    }

    /// Before a world that has stopped is destroyed: its last backup.
    /// Answers whether a backup now holds its data.
    pub(crate) async fn last_backup(&self, i: &Instance) -> bool {
        if self.settings.backups.is_none() {
            return false;
        }
        let mut stopped = i.clone();
        stopped.state = ObservedState::Stopped;
        match self.backup_now(&stopped, BackupKind::PreDestroy).await {
            Ok(Some(_)) => true,
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(slug = %i.slug, error = %e, "the last backup before destroying failed; the data directory is archived instead");
                false
            }
        }
    }

    /// Where a world's data is on this machine.
    pub(super) fn local_data(&self, i: &Instance) -> Result<std::path::PathBuf, CoreError> {
        self.runtime
            .data_dir(&i.slug)
            .ok_or(CoreError::NotImplemented(
                "backups of worlds whose data is elsewhere",
            ))
    }

    /// A Kubernetes world's data, as the runtime exports it into `staged`,
    /// then read back and verified like any archive.
    async fn export_verified(
        &self,
        slug: &tavern_types::Slug,
        staged: &Path,
    ) -> Result<tavern_backup::archive::Summary, String> {
        let settings = self.backup_settings().map_err(|e| e.to_string())?;
        tokio::fs::create_dir_all(&settings.staging)
            .await
            .map_err(|e| format!("cannot create {}: {e}", settings.staging.display()))?;
        match self.runtime.export_archive(slug, staged).await {
            Ok(true) => {}
            Ok(false) => return Err("its data claim is gone".into()),
            Err(e) => return Err(e.to_string()),
        }
        let staged = staged.to_path_buf();
        tokio::task::spawn_blocking(move || local::verify(&staged, None))
            .await
            .map_err(|e| format!("the archiver stopped: {e}"))?
    }

    /// After a world stopped: a backup of it, when the settings ask for one
    /// (not when a restore stopped it: that takes its own backup first).
    pub(crate) async fn after_stop(&self, i: &Instance) {
        if !self.settings.backups.as_ref().is_some_and(|b| b.after_stop)
            || self.backup_holds(&i.slug)
        {
            return;
        }
        let mut stopped = i.clone();
        stopped.state = ObservedState::Stopped;
        if let Err(e) = self.backup_now(&stopped, BackupKind::AfterStop).await {
            tracing::warn!(slug = %i.slug, error = %e, "the backup after stopping failed");
        }
    }

    /// Records that a backup in progress failed, and why.
    pub(super) async fn fail_backup(&self, b: &Backup, why: &str) -> Result<Backup, CoreError> {
        let event = backup_event(
            "system",
            "backup.complete",
            b,
            Outcome::Failure,
            Some(why.to_owned()),
        );
        Ok(self
            .store
            .finish_backup(b.id, now(), Err(why), &event)
            .await?)
    }

    /// Takes a backup of a stopped world and waits for it (before it is
    /// destroyed or restored over). `Ok(None)`: the world has no data.
    pub(crate) async fn backup_now(
        &self,
        i: &Instance,
        kind: BackupKind,
    ) -> Result<Option<Backup>, CoreError> {
        match self.begin_backup(i, kind, "system").await? {
            Some(job) => self.run_backup(job).await.map(Some),
            None => Ok(None),
        }
    }
}
