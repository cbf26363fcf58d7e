//! Backups of worlds: taking one (archive to a staging file, verify, publish
//! to the target, record), retention after each, restoring into the same
//! or a new world, and short-lived signed download links. Archive work runs
//! on blocking threads; one backup or restore per world at a time.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use tavern_backup::archive::{self, Limits};
use tavern_backup::local;
use tavern_backup::retention::{self, Candidate, Policy};
use tavern_backup::target::Target;
use tavern_runtime::foundry_config;
use tavern_store::{ArchiveFacts, Backup, Instance, NewEvent, Outcome, now};
use tavern_types::{
    ArchiveRecord, BackupId, BackupKind, BackupStatus, DesiredState, ObservedState, Slug, Username,
};

use crate::CoreError;
use crate::service::{Caller, NewInstance, Tavern};

/// How backups are taken and kept.
#[derive(Clone, Debug)]
pub struct BackupSettings {
    /// Where archives go.
    pub target: Target,
    /// Where archives are written before they are verified and published
    /// (`DATA_DIR/tmp/backups`).
    pub staging: PathBuf,
    /// Threads that compress.
    pub threads: u32,
    /// Which backups of a world to keep (pre-destroy backups aside).
    pub retention: Policy,
    /// Back a world up each time it stops.
    pub after_stop: bool,
    /// How long a destroyed world's last backup is kept.
    pub keep_destroyed: SignedDuration,
    /// A game master's manual backups of one world are this far apart at
    /// least (admins are not throttled).
    pub manual_interval: SignedDuration,
    /// When every world is backed up (in the server's time zone).
    pub schedule: Option<croner::Cron>,
}

/// Backs every world up on the schedule, and removes destroyed worlds'
/// last backups past their time (then, or hourly without a schedule),
/// until `cancel`.
pub async fn run_schedule(tavern: Tavern, cancel: tokio_util::sync::CancellationToken) {
    let Some(settings) = tavern.settings.backups.clone() else {
        return;
    };
    loop {
        let now = jiff::Zoned::now();
        let next = match &settings.schedule {
            Some(cron) => match cron.find_next_occurrence(&now, false) {
                Ok(next) => Some(next),
                Err(e) => {
                    tracing::warn!(error = %e, "the backup schedule has no next time");
                    return;
                }
            },
            None => None,
        };
        let wait = match &next {
            Some(next) => now
                .timestamp()
                .duration_until(next.timestamp())
                .try_into()
                .unwrap_or(Duration::ZERO),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if next.is_some() {
            match tavern.scheduled_backups().await {
                Ok(n) => tracing::info!(worlds = n, "scheduled backups done"),
                Err(e) => tracing::warn!(error = %e, "scheduled backups failed"),
            }
        }
        if let Err(e) = tavern.expire_destroyed_backups().await {
            tracing::warn!(error = %e, "removing old backups of destroyed worlds failed");
        }
    }
}

/// How long a signed download link works.
const LINK_LIFETIME: SignedDuration = SignedDuration::from_mins(10);
/// How long a restore waits for its world to stop.
const STOP_WAIT: Duration = Duration::from_secs(180);

/// A backup as people see it.
#[derive(Clone, Debug)]
pub struct BackupView {
    pub backup: Backup,
    pub owner: Username,
    /// The latest restore from this backup since Tavern started.
    pub restore: Option<RestoreStatus>,
}

/// Where a restore is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreStatus {
    /// The world restored into.
    pub to: Slug,
    pub state: RestoreState,
    pub at: Timestamp,
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
}

/// Holds a world for one backup or restore; freed when dropped.
struct Busy {
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
    fn hold(self: &Arc<Self>, slug: &Slug) -> Result<Busy, CoreError> {
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

    fn set_restore(&self, id: BackupId, status: RestoreStatus) {
        self.restores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, status);
    }

    /// Whether a restore from this backup is under way.
    fn restoring(&self, id: BackupId) -> bool {
        self.restore(id)
            .is_some_and(|r| r.state == RestoreState::Running)
    }

    fn restore(&self, id: BackupId) -> Option<RestoreStatus> {
        self.restores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }
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

impl Tavern {
    fn backup_settings(&self) -> Result<&BackupSettings, CoreError> {
        self.settings
            .backups
            .as_ref()
            .ok_or(CoreError::NotImplemented("backups on this server"))
    }

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
            return Err(crate::service::being_destroyed(&i));
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
            .await?;
        let backup = job.backup.clone();
        let tavern = self.clone();
        tokio::spawn(async move {
            let _ = tavern.run_backup(job).await;
        });
        self.backup_view(backup).await
    }

    /// Records a backup in progress and holds its world.
    async fn begin_backup(
        &self,
        i: &Instance,
        kind: BackupKind,
        by: &str,
    ) -> Result<Job, CoreError> {
        self.backup_settings()?;
        let busy = self.backup_work.hold(&i.slug)?;
        self.start_job(i, kind, by, Some(busy)).await
    }

    /// Records a backup in progress of a world the caller holds (`busy`,
    /// or `None` when it holds it already, as a restore does).
    async fn start_job(
        &self,
        i: &Instance,
        kind: BackupKind,
        by: &str,
        busy: Option<Busy>,
    ) -> Result<Job, CoreError> {
        let settings = self.backup_settings()?;
        let data = self.data_source(i).await?;
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
        Ok(Job {
            backup,
            data,
            _busy: busy,
        })
    }

    /// Where a world's data is read from for a backup: its directory here,
    /// or (on Kubernetes) its claim on the cluster. A world with none yet
    /// has nothing to back up.
    async fn data_source(&self, i: &Instance) -> Result<DataSource, CoreError> {
        let no_data = || CoreError::Conflict {
            code: "no_data",
            message: format!("{} has no data yet: start it once first", i.slug),
        };
        if crate::service::data_on_cluster(&i.runtime) {
            let has = self
                .runtime
                .has_data(&i.slug)
                .await
                .map_err(|e| CoreError::internal("look for the world's data", e))?;
            return if has {
                Ok(DataSource::Cluster)
            } else {
                Err(no_data())
            };
        }
        let data = self.local_data(i)?;
        if !data.is_dir() {
            return Err(no_data());
        }
        Ok(DataSource::Local(data))
    }

    /// Writes, verifies and publishes a backup, and records how it ended.
    async fn run_backup(&self, job: Job) -> Result<Backup, CoreError> {
        let settings = self.backup_settings()?.clone();
        let b = job.backup.clone();
        let key = archive_key(&b);
        let staged = settings.staging.join(format!("{}.tar.zst.partial", b.id));
        let made = match &job.data {
            DataSource::Local(data) => write_verified(data, &staged, settings.threads).await,
            DataSource::Cluster => self.export_verified(&b.slug, &staged).await,
        };
        let published = match made {
            Ok(summary) => settings
                .target
                .publish(&staged, &key)
                .await
                .map(|()| summary)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_file(&staged).await;
        drop(job);
        match published {
            Ok(summary) => {
                let facts = ArchiveFacts {
                    key,
                    size: summary.size,
                    sha256: summary.sha256,
                    files: summary.manifest.files.len() as u64,
                    bytes: summary.manifest.total_bytes(),
                };
                let detail = format!("{} files, {} bytes compressed", facts.files, facts.size);
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

    /// Backs up every world that has data, one after another (a `live`
    /// copy of those that run); answers how many were backed up.
    pub async fn scheduled_backups(&self) -> Result<usize, CoreError> {
        let mut done = 0;
        for i in self.store.list_instances(None).await? {
            if i.desired_state == DesiredState::Destroyed {
                continue;
            }
            let job = match self.begin_backup(&i, BackupKind::Scheduled, "system").await {
                Ok(job) => job,
                Err(e) if e.code() == "no_data" => continue,
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

    /// Whether a backup or restore holds the world now.
    pub(crate) fn backup_holds(&self, slug: &Slug) -> bool {
        self.backup_work
            .busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(slug)
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
    fn local_data(&self, i: &Instance) -> Result<std::path::PathBuf, CoreError> {
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
    async fn fail_backup(&self, b: &Backup, why: &str) -> Result<Backup, CoreError> {
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
        match self.begin_backup(i, kind, "system").await {
            Ok(job) => self.run_backup(job).await.map(Some),
            Err(e) if e.code() == "no_data" => Ok(None),
            Err(e) => Err(e),
        }
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
    async fn remove_backup(&self, b: &Backup, actor: &str, why: &str) -> Result<(), CoreError> {
        let settings = self.backup_settings()?;
        if let Some(facts) = &b.archive {
            if b.target == settings.target.to_string() {
                settings
                    .target
                    .delete(&facts.key)
                    .await
                    .map_err(|e| CoreError::internal("delete a backup", e))?;
            } else {
                tracing::warn!(id = %b.id, target = %b.target, "the backup is in another target; only its record is removed");
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
                let _ = tokio::fs::remove_file(e.path()).await;
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
        self.backup_view(b).await
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

    /// The archive of a complete backup the caller may see, to stream:
    /// its name for the download and its bytes. Tavern's secrets are never
    /// in it, unless an admin asks for them (`with_secrets`): then the
    /// world's `license.json` and `admin.txt` as Tavern would write them
    /// now are put in.
    pub async fn open_backup(
        &self,
        caller: &Caller,
        id: &str,
        with_secrets: bool,
    ) -> Result<BackupDownload, CoreError> {
        if with_secrets {
            caller.require_admin("download a backup with its world's license and admin key")?;
        }
        let b = self.visible_backup(caller, id).await?;
        let secrets = match with_secrets {
            true => self.world_secrets(&b).await?,
            false => Vec::new(),
        };
        if with_secrets {
            let event = backup_event(
                &caller.name(),
                "backup.download_secrets",
                &b,
                Outcome::Success,
                Some("with the world's license and admin key".into()),
            );
            self.store.append_event(&event).await?;
        }
        self.open_archive(&b, secrets).await
    }

    /// The files Tavern writes from its sealed secrets into the world a
    /// backup was taken of, as it would write them now (none once that
    /// world is gone): `license.json` for the key it holds or is set to
    /// use (signed, when Foundry signed it), and `admin.txt`.
    async fn world_secrets(&self, b: &Backup) -> Result<Vec<(&'static str, Vec<u8>)>, CoreError> {
        let Some(i) = self
            .store
            .instance(&b.slug)
            .await?
            .filter(|i| i.id == b.instance)
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let held = self
            .store
            .list_licenses()
            .await?
            .into_iter()
            .find(|l| l.bound_to == Some(i.id))
            .map(|l| l.id)
            .or(i.license);
        if let Some(id) = held {
            let key = self.license_key(id).await?;
            let text = self
                .signed_license(id)
                .filter(|t| foundry_config::is_signed_for(t, key.expose()))
                .unwrap_or_else(|| foundry_config::license_json(key.expose()));
            out.push((archive::WITHHELD[0], text.into_bytes()));
        }
        if let Some(hash) = self.admin_hash(&i)? {
            out.push((archive::WITHHELD[1], hash.into_bytes()));
        }
        Ok(out)
    }

    async fn open_archive(
        &self,
        b: &Backup,
        secrets: Vec<(&'static str, Vec<u8>)>,
    ) -> Result<BackupDownload, CoreError> {
        let settings = self.backup_settings()?;
        let facts = complete(b)?;
        if b.target != settings.target.to_string() {
            return Err(CoreError::Conflict {
                code: "backup_elsewhere",
                message: format!(
                    "backup {} is kept in {}, not in this server's backup target",
                    b.id, b.target
                ),
            });
        }
        let (_, stream) = settings
            .target
            .open(&facts.key)
            .await
            .map_err(|e| CoreError::internal("read a backup", e))?;
        // Copied as it is read, verified on the way, without the secrets
        // (archives made before they were left out held them).
        let input = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(
            futures_util::StreamExt::map(stream, |r| r.map_err(std::io::Error::other)),
        ));
        let limits = Limits {
            bytes: facts.bytes,
            files: facts.files,
        };
        let threads = settings.threads;
        let stream = tavern_backup::stream::blocking_stream(move |out| {
            let given: Vec<(&str, &[u8])> =
                secrets.iter().map(|(p, c)| (*p, c.as_slice())).collect();
            archive::rewrite(input, out, threads, Some(limits), &given).map(|_| ())
        });
        Ok(BackupDownload {
            file_name: format!(
                "{}-{}.tar.zst",
                b.slug,
                b.created_at.strftime("%Y%m%dT%H%M%SZ")
            ),
            stream: Box::pin(stream),
        })
    }

    /// A link that downloads the backup without a token for a few minutes
    /// (for browsers): `token` goes into `?token=`.
    pub async fn backup_link(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(String, Timestamp), CoreError> {
        let b = self.visible_backup(caller, id).await?;
        complete(&b)?;
        let expires = now() + LINK_LIFETIME;
        let sealed = self
            .secrets
            .seal(format!("{}:{}", b.id, expires.as_second()).as_bytes())
            .map_err(|e| CoreError::internal("sign a link", e))?;
        Ok((
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed),
            expires,
        ))
    }

    /// The archive behind a signed link, while the link is valid.
    pub async fn open_backup_by_link(
        &self,
        id: &str,
        token: &str,
    ) -> Result<BackupDownload, CoreError> {
        let refused = || CoreError::Unauthenticated;
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| refused())?;
        let opened = self.secrets.open(&sealed).map_err(|_| refused())?;
        let text = String::from_utf8(opened).map_err(|_| refused())?;
        let (linked, expires) = text.split_once(':').ok_or_else(refused)?;
        let expires: i64 = expires.parse().map_err(|_| refused())?;
        if linked != id || expires < now().as_second() {
            return Err(refused());
        }
        let parsed: BackupId = id.parse().map_err(|_| not_found(id))?;
        let b = self
            .store
            .backup(parsed)
            .await?
            .ok_or_else(|| not_found(id))?;
        self.open_archive(&b, Vec::new()).await
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
                            runtime: original.map(|i| i.runtime),
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
                    return Err(crate::service::being_destroyed(&i));
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
            },
        );
        let tavern = self.clone();
        let caller = caller.clone();
        let backup = b.clone();
        tokio::spawn(async move {
            let result = tavern
                .run_restore(&caller, &backup, &target, fresh, busy)
                .await;
            let (state, outcome, detail) = match result {
                Ok(()) => (
                    RestoreState::Done,
                    Outcome::Success,
                    format!("into {}", target.slug),
                ),
                Err(e) => {
                    let why = e.to_string();
                    tracing::warn!(id = %backup.id, to = %target.slug, error = %why, "restore failed");
                    (RestoreState::Failed(why.clone()), Outcome::Failure, why)
                }
            };
            tavern.backup_work.set_restore(
                backup.id,
                RestoreStatus {
                    to: target.slug.clone(),
                    state,
                    at: now(),
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
    async fn run_restore(
        &self,
        caller: &Caller,
        b: &Backup,
        i: &Instance,
        fresh: bool,
        _busy: Busy,
    ) -> Result<(), CoreError> {
        let was_running = !fresh && i.desired_state == DesiredState::Running;
        let mut taken = None;
        let result = self.restore_steps(caller, b, i, fresh, &mut taken).await;
        match &result {
            Ok(()) => {
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
    /// backup's archive in place of its data, and starts it again if it
    /// ran. `taken` is the backup of the world taken first.
    async fn restore_steps(
        &self,
        caller: &Caller,
        b: &Backup,
        i: &Instance,
        fresh: bool,
        taken: &mut Option<Backup>,
    ) -> Result<(), RestoreFailure> {
        let settings = self.backup_settings()?.clone();
        let data = if crate::service::data_on_cluster(&i.runtime) {
            None
        } else {
            Some(self.local_data(i)?)
        };
        let was_running = !fresh && i.desired_state == DesiredState::Running;
        if !fresh {
            if i.desired_state == DesiredState::Running {
                self.set_desired(caller, i.slug.as_str(), DesiredState::Stopped)
                    .await?;
            }
            self.wait_stopped(&i.slug).await?;
            // What is there now is kept first, under this restore's hold.
            let current = self
                .store
                .instance(&i.slug)
                .await?
                .ok_or_else(|| not_found(i.slug.as_str()))?;
            match self
                .start_job(&current, BackupKind::PreRestore, "system", None)
                .await
            {
                Ok(job) => {
                    let done = self
                        .run_backup(job)
                        .await
                        .map_err(|_| CoreError::Conflict {
                            code: "backup_failed",
                            message: format!(
                                "{}'s current data could not be backed up, so nothing was restored",
                                i.slug
                            ),
                        })?;
                    *taken = Some(done);
                }
                Err(e) if e.code() == "no_data" => {}
                Err(e) => return Err(e.into()),
            }
        }
        let facts = complete(b)?.clone();
        let record = ArchiveRecord {
            size: facts.size,
            sha256: facts.sha256.clone(),
            bytes: facts.bytes,
            files: facts.files,
        };
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
        if was_running {
            self.set_desired(caller, i.slug.as_str(), DesiredState::Running)
                .await
                .map_err(RestoreFailure::after_change)?;
        }
        Ok(())
    }

    /// Waits until a world asked to stop has stopped.
    async fn wait_stopped(&self, slug: &Slug) -> Result<(), CoreError> {
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
                    message: format!("{slug} did not stop in time; nothing was restored"),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

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

/// A backup's archive, to stream out (its size is known once written).
pub struct BackupDownload {
    pub file_name: String,
    pub stream: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>,
    >,
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

fn complete(b: &Backup) -> Result<&ArchiveFacts, CoreError> {
    match (&b.status, &b.archive) {
        (BackupStatus::Complete, Some(facts)) => Ok(facts),
        _ => Err(CoreError::Conflict {
            code: "backup_not_ready",
            message: format!("backup {} is {}, not complete", b.id, b.status),
        }),
    }
}

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

impl Tavern {
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
