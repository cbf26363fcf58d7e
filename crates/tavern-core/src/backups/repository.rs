//! Backups kept as snapshots in each world's restic-format repository: the
//! one password of them all (made on first use, kept sealed in the store),
//! each world's repository, what a snapshot is tagged with, forgetting, the
//! scheduled prune, and a repository removed with its world's last backup.

use std::path::Path;

use tavern_backup::repo::{REPOSITORIES, Repo, SnapshotFacts};
use tavern_store::{ArchiveFacts, Backup, NewEvent, Outcome, Store, now};
use tavern_types::Slug;
use tavern_types::words::error_chain;

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
    /// next prune); answers how many repositories were pruned.
    pub async fn prune_repositories(&self) -> Result<usize, CoreError> {
        let mut slugs: Vec<Slug> = self
            .store
            .list_backups(None, None)
            .await?
            .into_iter()
            .filter(|b| b.format == tavern_types::BackupFormat::Repository)
            .map(|b| b.slug)
            .collect();
        slugs.sort();
        slugs.dedup();
        let mut pruned = 0;
        for slug in slugs {
            let Ok(_held) = self.backup_work.hold(&slug) else {
                tracing::info!(%slug, "the world is busy; its repository is pruned next time");
                continue;
            };
            let repo = self.world_repo(&slug).await?;
            let done = tokio::task::spawn_blocking(move || repo.prune())
                .await
                .map_err(|e| CoreError::internal("prune a repository", e))?;
            let (outcome, detail) = match &done {
                Ok(facts) => {
                    pruned += 1;
                    (
                        Outcome::Success,
                        format!(
                            "{} packs marked to go, {} removed, {} repacked",
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
}
