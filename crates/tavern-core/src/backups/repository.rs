//! Backups kept as snapshots in each world's restic-format repository: the
//! one password of them all (made on first use, kept sealed in the store),
//! each world's repository, what a snapshot is tagged with, forgetting, the
//! scheduled prune (and what it tidies), and a repository removed with its
//! world's last backup.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use tavern_backup::repo::{PruneFacts, REPOSITORIES, Repo, RepoError, SnapshotFacts};
use tavern_store::{ArchiveFacts, Backup, NewEvent, Outcome, Store, now};
use tavern_types::words::error_chain;
use tavern_types::{BackupFormat, BackupStatus, Slug};

use crate::error::CoreError;
use crate::secrets::SecretBox;
use crate::tavern::Tavern;

/// The backup repositories' password: made (random, 256 bits) and kept
/// sealed on first use; the same for every world's repository, so that one
/// secret (`tavern backup repo-key`) opens them all without Tavern.
pub async fn repository_password(
    store: &dyn Store,
    secrets: &SecretBox,
) -> Result<String, CoreError> {
    let sealed = match store.repository_password().await? {
        Some(sealed) => sealed,
        None => {
            let fresh = hex::encode(rand::random::<[u8; 32]>());
            let sealed = secrets
                .seal(fresh.as_bytes())
                .map_err(|e| CoreError::internal("seal the backup repositories' password", e))?;
            let event = NewEvent {
                actor: "system".into(),
                action: "backup.repository_password".into(),
                target: "backups".into(),
                outcome: Outcome::Success,
                detail: Some("the backup repositories' password was made".into()),
                at: now(),
            };
            store.keep_repository_password(&sealed, &event).await?
        }
    };
    let plain = secrets
        .open(&sealed)
        .map_err(|e| CoreError::internal("open the backup repositories' password", e))?;
    String::from_utf8(plain)
        .map_err(|e| CoreError::internal("read the backup repositories' password", e))
}

/// A snapshot's tags: its world, the world's id, the backup's id and
/// kind, and `live` for a copy of a running world.
fn tags(b: &Backup) -> Vec<String> {
    let mut tags = vec![
        format!("world:{}", b.slug),
        format!("instance:{}", b.instance),
        format!("backup:{}", b.id),
        format!("kind:{}", b.kind),
    ];
    if b.live {
        tags.push("live".into());
    }
    tags
}

/// The key a world's repository is recorded under.
fn repository_key(slug: &Slug) -> String {
    format!("{REPOSITORIES}/{slug}")
}

/// What is recorded of a snapshot.
fn snapshot_facts(slug: &Slug, s: &SnapshotFacts) -> ArchiveFacts {
    ArchiveFacts {
        key: repository_key(slug),
        size: s.added,
        sha256: s.id.clone(),
        files: s.files,
        bytes: s.bytes,
    }
}

impl Tavern {
    /// The repository of the world `slug`.
    pub(super) async fn world_repo(&self, slug: &Slug) -> Result<Repo, CoreError> {
        let settings = self.backup_settings()?;
        let password = repository_password(&*self.store, &self.secrets).await?;
        Ok(Repo::new(
            &settings.target,
            slug.as_str(),
            &password,
            tokio::runtime::Handle::current(),
        ))
    }

    /// Takes backup `b` as a snapshot of `data` in its world's repository,
    /// verified before it answers; `copied`: `data` is a fresh copy.
    pub(super) async fn snapshot_into_repo(
        &self,
        b: &Backup,
        data: &Path,
        copied: bool,
    ) -> Result<ArchiveFacts, String> {
        let repo = self.world_repo(&b.slug).await.map_err(|e| e.to_string())?;
        let (data, tags, time) = (data.to_path_buf(), tags(b), b.created_at);
        let snapshot = tokio::task::spawn_blocking(move || repo.backup(&data, &tags, time, copied))
            .await
            .map_err(|e| format!("the backup stopped: {e}"))?
            .map_err(|e| error_chain(&e))?;
        Ok(snapshot_facts(&b.slug, &snapshot))
    }

    /// Forgets a backup's snapshot (its data goes at the next prune); when
    /// it was the last backup of a world that is gone, the world's whole
    /// repository goes with it.
    pub(super) async fn forget_snapshot(
        &self,
        b: &Backup,
        facts: &ArchiveFacts,
    ) -> Result<(), CoreError> {
        let repo = self.world_repo(&b.slug).await?;
        let id = facts.sha256.clone();
        tokio::task::spawn_blocking(move || repo.forget(&[&id]))
            .await
            .map_err(|e| CoreError::internal("forget a snapshot", e))?
            .map_err(|e| CoreError::internal("forget a snapshot", e))?;
        Ok(())
    }

    /// Removes the repository of a world that is gone once it keeps no
    /// backup (the data of a destroyed world leaves with its last backup).
    pub(super) async fn drop_repository_if_unused(&self, slug: &Slug) -> Result<(), CoreError> {
        if self.store.instance(slug).await?.is_some()
            || !self.store.list_backups(None, Some(slug)).await?.is_empty()
        {
            return Ok(());
        }
        let Ok(_held) = self.backup_work.hold(slug) else {
            return Ok(());
        };
        let settings = self.backup_settings()?;
        settings
            .target
            .delete_under(&repository_key(slug))
            .await
            .map_err(|e| CoreError::internal("remove a world's backup repository", e))?;
        tracing::info!(%slug, "the repository of a world that is gone was removed with its last backup");
        Ok(())
    }

    /// Drops from every world's repository the data no snapshot needs any
    /// more, each while its world is held (a world busy now waits for the
    /// next prune): first the snapshots no backup records (see
    /// [`unrecorded`]) are forgotten, and the repository of a world that
    /// is gone and keeps no backup is removed whole. Answers how many
    /// repositories were pruned.
    pub async fn prune_repositories(&self) -> Result<usize, CoreError> {
        let backups = self.store.list_backups(None, None).await?;
        let mut slugs: BTreeSet<Slug> = backups
            .iter()
            .filter(|b| b.format == BackupFormat::Repository)
            .map(|b| b.slug.clone())
            .collect();
        let settings = self.backup_settings()?;
        let found = settings
            .target
            .children(REPOSITORIES)
            .await
            .map_err(|e| CoreError::internal("list the backup repositories", e))?;
        slugs.extend(found.iter().filter_map(|name| Slug::parse(name).ok()));
        let mut pruned = 0;
        for slug in slugs {
            if !backups.iter().any(|b| b.slug == slug)
                && self.store.instance(&slug).await?.is_none()
            {
                self.drop_repository_if_unused(&slug).await?;
                continue;
            }
            let Ok(_held) = self.backup_work.hold(&slug) else {
                tracing::info!(%slug, "the world is busy; its repository is pruned next time");
                continue;
            };
            let done = self.tidy_and_prune(&slug).await?;
            let (outcome, detail) = match &done {
                Ok((facts, stray)) => {
                    pruned += 1;
                    (
                        Outcome::Success,
                        format!(
                            "{stray} snapshots no backup records forgotten; {} packs marked to go, {} removed, {} repacked",
                            facts.marked_packs, facts.removed_packs, facts.repacked_packs
                        ),
                    )
                }
                Err(e) => {
                    tracing::warn!(%slug, error = %e, "pruning a repository failed");
                    (Outcome::Failure, error_chain(e))
                }
            };
            let event = NewEvent {
                actor: "system".into(),
                action: "backup.prune".into(),
                target: format!("repository:{slug}"),
                outcome,
                detail: Some(detail),
                at: now(),
            };
            self.store.append_event(&event).await?;
        }
        Ok(pruned)
    }

    /// Forgets the snapshots of `slug`'s repository that no backup records,
    /// then prunes it; the world is held. The snapshots are read before the
    /// records, so that a backup's snapshot (always written after its
    /// record, on any replica) is never taken for a stray.
    async fn tidy_and_prune(
        &self,
        slug: &Slug,
    ) -> Result<Result<(PruneFacts, usize), RepoError>, CoreError> {
        let repo = Arc::new(self.world_repo(slug).await?);
        let r = repo.clone();
        let snapshots = match tokio::task::spawn_blocking(move || r.snapshots())
            .await
            .map_err(|e| CoreError::internal("list a repository's snapshots", e))?
        {
            Ok(snapshots) => snapshots,
            Err(e) => return Ok(Err(e)),
        };
        let records = self.store.list_backups(None, Some(slug)).await?;
        let stray = unrecorded(&snapshots, &records);
        tokio::task::spawn_blocking(move || {
            let ids: Vec<&str> = stray.iter().map(String::as_str).collect();
            repo.forget(&ids)?;
            repo.prune().map(|facts| (facts, stray.len()))
        })
        .await
        .map_err(|e| CoreError::internal("prune a repository", e))
    }
}

/// The snapshots Tavern took that no backup records: those tagged with a
/// backup that is gone or failed (cut off between its snapshot and its
/// record), or whose record names another snapshot (a move into the
/// repository cut off, then done again). Kept: snapshots of backups in
/// progress; of backups still recorded as archives, since a move may be
/// under way on another replica (one cut off goes with its backup); and
/// any Tavern did not take (no `backup:` tag: an admin's own).
fn unrecorded(snapshots: &[SnapshotFacts], records: &[Backup]) -> Vec<String> {
    snapshots
        .iter()
        .filter(|s| {
            let Some(id) = s.tags.iter().find_map(|t| t.strip_prefix("backup:")) else {
                return false;
            };
            match records.iter().find(|b| b.id.to_string() == id) {
                None => true,
                Some(b) => match b.status {
                    BackupStatus::InProgress => false,
                    BackupStatus::Failed => true,
                    BackupStatus::Complete => {
                        b.format == BackupFormat::Repository
                            && b.archive.as_ref().is_none_or(|a| a.sha256 != s.id)
                    }
                },
            }
        })
        .map(|s| s.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tavern_types::{BackupId, BackupKind, InstanceId, UserId};

    fn record(status: BackupStatus, format: BackupFormat, snapshot: Option<&str>) -> Backup {
        Backup {
            id: BackupId::new(),
            instance: InstanceId::new(),
            slug: Slug::parse("ravenloft").unwrap(),
            owner: UserId::new(),
            kind: BackupKind::Manual,
            status,
            live: false,
            locked: false,
            created_by: "gm".into(),
            created_at: now(),
            finished_at: None,
            target: "/backups".into(),
            format,
            archive: snapshot.map(|id| ArchiveFacts {
                key: "repositories/ravenloft".into(),
                size: 1,
                sha256: id.into(),
                files: 1,
                bytes: 1,
            }),
            error: None,
        }
    }

    fn snapshot(id: &str, tags: &[String]) -> SnapshotFacts {
        SnapshotFacts {
            id: id.into(),
            time: now(),
            tags: tags.to_vec(),
            files: 1,
            bytes: 1,
            added: 1,
        }
    }

    #[test]
    fn only_snapshots_tavern_took_and_no_backup_records_are_unrecorded() {
        use BackupFormat::{Archive, Repository};
        use BackupStatus::{Complete, Failed, InProgress};
        let kept = record(Complete, Repository, Some("s-kept"));
        let running = record(InProgress, Repository, None);
        let failed = record(Failed, Repository, None);
        // Moved into the repository again after a first move was cut off.
        let moved = record(Complete, Repository, Some("s-moved-again"));
        // Still an archive: its move is under way, or was cut off after
        // the snapshot (that snapshot goes once the backup is gone).
        let archive = record(Complete, Archive, Some("sha-of-the-archive"));
        let tag = |b: &Backup| vec![format!("backup:{}", b.id), "kind:manual".to_owned()];
        let snapshots = [
            snapshot("s-kept", &tag(&kept)),
            snapshot("s-running", &tag(&running)),
            snapshot("s-failed", &tag(&failed)),
            snapshot("s-moved-first", &tag(&moved)),
            snapshot("s-moved-again", &tag(&moved)),
            snapshot("s-archive", &tag(&archive)),
            snapshot("s-gone", &[format!("backup:{}", BackupId::new())]),
            snapshot("s-admins-own", &["mine".to_owned()]),
        ];
        let records = [kept, running, failed, moved, archive];
        assert_eq!(
            unrecorded(&snapshots, &records),
            ["s-failed", "s-moved-first", "s-gone"]
        );
    }
}
