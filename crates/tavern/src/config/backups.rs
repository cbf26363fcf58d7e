//! `[backups]`: where backups go, when they are taken, and which are
//! kept.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackupsConfig {
    /// Where backups go: a directory (default `DATA_DIR/backups`) or
    /// `s3://BUCKET/PREFIX`.
    pub target: Option<String>,
    /// How new backups are kept there: `archive` (a `.tar.zst` each) or
    /// `repository` (snapshots in each world's encrypted, deduplicated
    /// repository, in restic's format, under `repositories/`).
    pub format: String,
    /// When the repositories drop the data no snapshot needs any more
    /// (cron, as `schedule`); empty: never.
    pub prune_schedule: String,
    /// S3-compatible storage: endpoint URL (AWS itself when unset), region,
    /// and credentials (else the usual `AWS_*` variables).
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    /// When every world is backed up (cron: minute hour day month weekday,
    /// in the server's time zone); empty: never on a schedule.
    pub schedule: String,
    /// Retention of each world's backups.
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    /// Back a world up each time it stops.
    pub after_stop: bool,
    /// Days a destroyed world's last backup is kept.
    pub keep_destroyed_days: u32,
    /// A game master's manual backups of one world are this far apart.
    pub manual_interval_minutes: u32,
    /// Threads that compress (0: one per core).
    pub threads: u32,
}

/// Shows everything but the S3 secret key.
impl std::fmt::Debug for BackupsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupsConfig")
            .field("target", &self.target)
            .field("format", &self.format)
            .field("prune_schedule", &self.prune_schedule)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key_id", &self.s3_access_key_id)
            .field(
                "s3_secret_access_key",
                &self.s3_secret_access_key.as_ref().map(|_| "<hidden>"),
            )
            .field("schedule", &self.schedule)
            .field("keep_last", &self.keep_last)
            .field("keep_daily", &self.keep_daily)
            .field("keep_weekly", &self.keep_weekly)
            .field("after_stop", &self.after_stop)
            .field("keep_destroyed_days", &self.keep_destroyed_days)
            .field("manual_interval_minutes", &self.manual_interval_minutes)
            .field("threads", &self.threads)
            .finish()
    }
}

impl Default for BackupsConfig {
    fn default() -> Self {
        Self {
            target: None,
            format: "archive".into(),
            prune_schedule: "30 5 * * *".into(),
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            schedule: "0 4 * * *".into(),
            keep_last: 7,
            keep_daily: 7,
            keep_weekly: 4,
            after_stop: true,
            keep_destroyed_days: 30,
            manual_interval_minutes: 10,
            threads: 0,
        }
    }
}

/// `backups.<key>`'s cron pattern, if any.
fn cron(key: &str, pattern: &str) -> anyhow::Result<Option<croner::Cron>> {
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return Ok(None);
    }
    pattern.parse::<croner::Cron>().map(Some).map_err(|e| {
        anyhow::anyhow!(
            "invalid configuration: backups.{key} {pattern:?} is not a cron pattern (minute hour day month weekday): {e}"
        )
    })
}

impl Config {
    /// Where backups go: the directory or bucket named by
    /// `backups.target`, else `DATA_DIR/backups`.
    pub fn backup_target(&self) -> anyhow::Result<tavern_backup::target::Target> {
        let b = &self.backups;
        let target = match b.target.as_deref() {
            Some(url) if url.starts_with("s3://") => {
                let settings = tavern_backup::target::S3Settings {
                    endpoint: b.s3_endpoint.clone(),
                    region: b.s3_region.clone(),
                    access_key_id: b.s3_access_key_id.clone(),
                    secret_access_key: b.s3_secret_access_key.clone(),
                };
                tavern_backup::target::Target::s3(url, &settings)
            }
            Some(dir) => tavern_backup::target::Target::dir(Path::new(dir)),
            None => tavern_backup::target::Target::dir(&self.server.data_dir.join("backups")),
        };
        target.map_err(|e| anyhow::anyhow!("invalid configuration: backups.target: {e}"))
    }

    /// The backup schedule, if any.
    pub fn backup_schedule(&self) -> anyhow::Result<Option<croner::Cron>> {
        cron("schedule", &self.backups.schedule)
    }

    /// How new backups are kept.
    pub fn backup_format(&self) -> anyhow::Result<tavern_types::BackupFormat> {
        self.backups.format.parse().map_err(|_| {
            anyhow::anyhow!(
                "invalid configuration: backups.format {:?}: use \"archive\" or \"repository\"",
                self.backups.format
            )
        })
    }

    /// How backups are taken and kept, for the core.
    pub fn backup_settings(&self) -> anyhow::Result<tavern_core::BackupSettings> {
        let b = &self.backups;
        let threads = match b.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            n => n,
        };
        Ok(tavern_core::BackupSettings {
            target: self.backup_target()?,
            format: self.backup_format()?,
            prune_schedule: cron("prune_schedule", &b.prune_schedule)?,
            staging: self.server.data_dir.join("tmp").join("backups"),
            threads,
            retention: tavern_backup::retention::Policy {
                keep_last: b.keep_last,
                keep_daily: b.keep_daily,
                keep_weekly: b.keep_weekly,
            },
            after_stop: b.after_stop,
            keep_destroyed: jiff::SignedDuration::from_hours(i64::from(b.keep_destroyed_days) * 24),
            manual_interval: jiff::SignedDuration::from_mins(i64::from(b.manual_interval_minutes)),
            schedule: self.backup_schedule()?,
        })
    }
}

impl Config {
    /// `[backups]`: the schedule, the target, what is kept.
    pub(super) fn check_backups(&self) -> anyhow::Result<()> {
        self.backup_schedule()?;
        self.backup_format()?;
        cron("prune_schedule", &self.backups.prune_schedule)?;
        if let Some(t) = &self.backups.target {
            anyhow::ensure!(
                !t.trim().is_empty() && (t.starts_with("s3://") || Path::new(t).is_absolute()),
                "invalid configuration: backups.target {t:?}: use an absolute directory or s3://BUCKET/PREFIX"
            );
            if t.starts_with("s3://") {
                self.backup_target()?;
            }
        }
        anyhow::ensure!(
            self.backups.keep_last >= 1,
            "invalid configuration: backups.keep_last must be at least 1 (the newest backup is always kept)"
        );
        Ok(())
    }
}
