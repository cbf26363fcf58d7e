//! What backups hold of the library: the packages a world used when its
//! backup was taken (never their files), and putting those choices back
//! when the backup is restored, fetching again a version the library has
//! lost since.

use tavern_foundry::manifest::Package;
use tavern_store::{Backup, BackupPackage, Instance, NewEvent, Outcome, WorldPackage};

use crate::error::CoreError;
use crate::tavern::Tavern;

/// `<kind> <id> <version>`, as people read it.
fn named(p: &BackupPackage) -> String {
    format!("{} {} {}", p.kind, p.id, p.version)
}

impl Tavern {
    /// The packages `i` uses now, with where each version came from.
    pub(crate) async fn held_packages(
        &self,
        i: &Instance,
    ) -> Result<Vec<BackupPackage>, CoreError> {
        let uses = self.store.list_world_packages(Some(i.id)).await?;
        if uses.is_empty() {
            return Ok(Vec::new());
        }
        let library = self.store.list_library_packages().await?;
        Ok(uses
            .iter()
            .filter_map(|u| {
                library
                    .iter()
                    .find(|l| l.kind == u.kind && l.id == u.id && l.version == u.version)
            })
            .map(|l| BackupPackage {
                kind: l.kind,
                id: l.id.clone(),
                version: l.version.clone(),
                manifest_url: l.manifest_url.clone(),
                download_url: l.download_url.clone(),
                sha256: l.sha256.clone(),
            })
            .collect())
    }

    /// After backup `b` was restored into `i`: `i` uses again each package
    /// the backup's world used, in the version it used (others it chose
    /// since stay). A version the library no longer has is fetched again
    /// from where it came, checked against its SHA-256, before the world
    /// starts. Never fails the restore: answers what could not be done.
    pub(crate) async fn restore_packages(
        &self,
        actor: &str,
        b: &Backup,
        i: &Instance,
    ) -> Vec<String> {
        match self.put_back_packages(actor, b, i).await {
            Ok(notes) => notes,
            Err(e) => {
                tracing::warn!(slug = %i.slug, error = %e, "putting a backup's packages back failed");
                vec![format!(
                    "the packages the backup's world used were not put back: {e}"
                )]
            }
        }
    }

    async fn put_back_packages(
        &self,
        actor: &str,
        b: &Backup,
        i: &Instance,
    ) -> Result<Vec<String>, CoreError> {
        let mut held = self.store.list_backup_packages(b.id).await?;
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let mut notes = Vec::new();
        // The owner's tier as it is now decides, as when they pick.
        if let Some((tier, allowed)) = self.package_limit(i).await? {
            held.retain(|p| {
                let ok = crate::policy::packages::allowed(Some(&allowed), &p.id);
                if !ok {
                    notes.push(format!(
                        "{} is not among the packages the tier {tier} allows; the world does not use it",
                        named(p)
                    ));
                }
                ok
            });
        }
        let mut library = self.store.list_library_packages().await?;
        for p in &held {
            let there = library
                .iter()
                .any(|l| l.kind == p.kind && l.id == p.id && l.version == p.version);
            if there {
                continue;
            }
            match self.fetch_again(actor, p).await {
                Ok(()) => notes.push(format!(
                    "{} was no longer in the library; it was fetched again from {}",
                    named(p),
                    p.download_url
                )),
                Err(e) => {
                    notes.push(format!(
                        "{} is no longer in the library and could not be fetched again ({e}); \
                         the world does not use it until an admin adds it",
                        named(p)
                    ));
                    let event = NewEvent {
                        outcome: Outcome::Failure,
                        ..NewEvent::success(actor, "package.add", format!("package:{}", named(p)))
                    }
                    .with_detail(format!("fetching it again for backup {} failed: {e}", b.id));
                    self.store.append_event(&event).await?;
                }
            }
        }
        library = self.store.list_library_packages().await?;
        let mut uses: Vec<WorldPackage> = self
            .store
            .list_world_packages(Some(i.id))
            .await?
            .into_iter()
            .filter(|u| !held.iter().any(|p| p.kind == u.kind && p.id == u.id))
            .collect();
        uses.extend(
            held.iter()
                .filter(|p| {
                    library
                        .iter()
                        .any(|l| l.kind == p.kind && l.id == p.id && l.version == p.version)
                })
                .map(|p| WorldPackage {
                    instance: i.id,
                    kind: p.kind,
                    id: p.id.clone(),
                    version: p.version.clone(),
                }),
        );
        uses.sort();
        let detail = format!("as backup {} held them", b.id);
        self.store
            .set_world_packages(
                i.id,
                &uses,
                &NewEvent::success(actor, "instance.packages", format!("instance:{}", i.slug))
                    .with_detail(detail),
            )
            .await?;
        Ok(notes)
    }

    /// Fetches one version again from where it first came, the zip held
    /// to the checksum recorded then; followed like any fetch.
    async fn fetch_again(&self, actor: &str, p: &BackupPackage) -> Result<(), CoreError> {
        let package = Package {
            kind: p.kind,
            id: p.id.clone(),
            title: None,
            version: Some(p.version.clone()),
            system: None,
            core_version: None,
            compatibility: Default::default(),
            manifest: Some(p.manifest_url.clone()),
            download: Some(p.download_url.clone()),
            requires: Vec::new(),
            protected: false,
        };
        let job = self.package_jobs.start(named(p), p.manifest_url.clone());
        let result = self
            .fetch_one(
                job.id,
                actor,
                &p.manifest_url,
                &package,
                Some(p.sha256.clone()),
            )
            .await;
        let state = match &result {
            Ok(()) => crate::package_jobs::JobState::Done,
            Err(e) => crate::package_jobs::JobState::Failed(e.to_string()),
        };
        self.package_jobs.update(job.id, |j| j.state = state);
        result
    }
}
