//! The community's package library: admins add packages from their
//! manifests' URLs (fetched in the background, with what they need),
//! update them on purpose and remove versions no world uses; everyone
//! signed in sees what is there. In `worlds`, what each world uses.

mod held;
mod worlds;

use jiff::Timestamp;
use tavern_foundry::manifest::{Package, PackageKind};
use tavern_packages::{LibraryError, PackageRef};
use tavern_store::{LibraryPackage, NewEvent, StoreError};
use tavern_types::Slug;

pub use crate::package_jobs::{JobState, PackageJob};
pub use crate::settings::PackageSettings;
pub use tavern_store::BackupPackage;
pub use worlds::{WorldPackageState, WorldPackageView};

use crate::auth::Caller;
use crate::error::CoreError;
use crate::policy::packages::{newest, version_order};
use crate::tavern::Tavern;

/// A version in the library and the worlds (of those the caller may see)
/// that use it.
#[derive(Clone, Debug)]
pub struct LibraryEntry {
    pub package: LibraryPackage,
    pub used_by: Vec<Slug>,
}

/// What an update found for one package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateView {
    pub kind: PackageKind,
    pub id: String,
    /// The newest version in the library before.
    pub current: String,
    /// What its manifest offers now, when it could be read.
    pub offered: Option<String>,
    pub outcome: UpdateOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateOutcome {
    UpToDate,
    /// Being fetched by this job.
    Fetching(u64),
    /// Not fetched, and why (it does not fit a release in use, or the
    /// manifest could not be read).
    Skipped(String),
}

/// How many packages one fetch may bring in, its requirements included.
const MAX_PER_FETCH: usize = 32;

fn library_error(e: LibraryError) -> CoreError {
    match e {
        LibraryError::Io { .. } => CoreError::internal("put a package in the library", e),
        other => CoreError::invalid("invalid_package", "manifest_url", other.to_string()),
    }
}

fn fetch_error(e: tavern_packages::fetch::FetchError) -> CoreError {
    CoreError::invalid("invalid_package", "manifest_url", e.to_string())
}

/// `<kind> <id> <version>` of a manifest Tavern read (it has a version).
fn package_ref(p: &Package) -> Result<PackageRef, CoreError> {
    PackageRef::new(p.kind, &p.id, p.version.as_deref().unwrap_or_default())
        .map_err(|e| CoreError::invalid("invalid_package", "manifest_url", e.to_string()))
}

impl Tavern {
    /// Every version in the library, with the worlds that use it among
    /// those the caller may see (a game master sees only their own).
    pub async fn library(&self, caller: &Caller) -> Result<Vec<LibraryEntry>, CoreError> {
        let mut library = self.store.list_library_packages().await?;
        library.sort_by(|a, b| {
            (a.kind, &a.id)
                .cmp(&(b.kind, &b.id))
                .then_with(|| version_order(&a.version, &b.version))
        });
        let owner = (!caller.is_admin()).then_some(caller.user.id);
        let worlds = self.store.list_instances(owner).await?;
        let uses = self.store.list_world_packages(None).await?;
        Ok(library
            .into_iter()
            .map(|package| {
                let used_by = uses
                    .iter()
                    .filter(|u| {
                        u.kind == package.kind && u.id == package.id && u.version == package.version
                    })
                    .filter_map(|u| worlds.iter().find(|w| w.id == u.instance))
                    .map(|w| w.slug.clone())
                    .collect();
                LibraryEntry { package, used_by }
            })
            .collect())
    }

    /// Adds the package whose manifest is at `manifest_url` (admins only):
    /// the manifest is read now, and a bad one refused; its zip (checked
    /// against `sha256` when given) and the packages it needs that the
    /// library lacks are fetched in the background. Answers the fetch.
    pub async fn add_package(
        &self,
        caller: &Caller,
        manifest_url: &str,
        kind: Option<PackageKind>,
        sha256: Option<String>,
    ) -> Result<PackageJob, CoreError> {
        caller.require_admin("add packages to the library")?;
        if let Some(s) = &sha256
            && !(s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(CoreError::invalid(
                "invalid_sha256",
                "sha256",
                "sha256 must be 64 hexadecimal digits",
            ));
        }
        let package = self
            .fetcher
            .manifest(manifest_url, kind)
            .await
            .map_err(fetch_error)?;
        let r = package_ref(&package)?;
        let library = self.store.list_library_packages().await?;
        if library
            .iter()
            .any(|p| p.kind == r.kind() && p.id == r.id() && p.version == r.version())
        {
            return Err(CoreError::Conflict {
                code: "package_exists",
                message: format!("{r} is in the library already"),
            });
        }
        Ok(self.start_fetch(caller, manifest_url, package, sha256))
    }

    fn start_fetch(
        &self,
        caller: &Caller,
        manifest_url: &str,
        package: Package,
        sha256: Option<String>,
    ) -> PackageJob {
        let label = format!(
            "{} {} {}",
            package.kind,
            package.id,
            package.version.as_deref().unwrap_or_default()
        );
        let job = self.package_jobs.start(label, manifest_url.to_owned());
        let (me, actor, url, id) = (self.clone(), caller.name(), manifest_url.to_owned(), job.id);
        tokio::spawn(async move {
            let state = match me.fetch_all(id, &actor, &url, package, sha256).await {
                Ok(()) => JobState::Done,
                Err(e) => JobState::Failed(e.to_string()),
            };
            if let JobState::Failed(why) = &state {
                tracing::warn!(job = id, "a package fetch failed: {why}");
            }
            me.package_jobs.update(id, |j| j.state = state);
        });
        job
    }

    /// Fetches `first` and then what it needs that the library lacks.
    async fn fetch_all(
        &self,
        job: u64,
        actor: &str,
        manifest_url: &str,
        first: Package,
        sha256: Option<String>,
    ) -> Result<(), CoreError> {
        let mut queue = vec![(manifest_url.to_owned(), first, sha256)];
        let mut done = 0;
        while let Some((url, package, sum)) = queue.pop() {
            done += 1;
            if done > MAX_PER_FETCH {
                self.package_jobs.update(job, |j| {
                    j.notes.push(format!(
                        "stopped after {MAX_PER_FETCH} packages; add the rest one by one"
                    ));
                });
                break;
            }
            self.fetch_one(job, actor, &url, &package, sum).await?;
            let library = self.store.list_library_packages().await?;
            for r in &package.requires {
                let queued = queue
                    .iter()
                    .any(|(_, p, _)| p.kind == r.kind && p.id == r.id);
                if queued || newest(&library, r.kind, &r.id).is_some() {
                    continue;
                }
                let Some(m) = &r.manifest else {
                    self.package_jobs.update(job, |j| {
                        j.notes.push(format!(
                            "{} needs the {} {}, which is not in the library and names no manifest; add it yourself",
                            package.id, r.kind, r.id
                        ));
                    });
                    continue;
                };
                match self.fetcher.manifest(m, Some(r.kind)).await {
                    Ok(p) if p.id == r.id => queue.push((m.clone(), p, None)),
                    Ok(p) => self.package_jobs.update(job, |j| {
                        j.notes.push(format!(
                            "{} names {m} for {}, but it describes {}",
                            package.id, r.id, p.id
                        ));
                    }),
                    Err(e) => self.package_jobs.update(job, |j| {
                        j.notes.push(format!(
                            "{} needs {}, which was not fetched: {e}",
                            package.id, r.id
                        ));
                    }),
                }
            }
        }
        Ok(())
    }

    /// Downloads, unpacks and records one version.
    async fn fetch_one(
        &self,
        job: u64,
        actor: &str,
        manifest_url: &str,
        package: &Package,
        sha256: Option<String>,
    ) -> Result<(), CoreError> {
        let r = package_ref(package)?;
        if self.library.has(&r) {
            // On disk, not recorded (an earlier fetch stopped in between).
            self.library.remove(&r).map_err(library_error)?;
        }
        let download = package.download.clone().unwrap_or_default();
        self.package_jobs.update(job, |j| {
            j.current = r.to_string();
            j.received = 0;
            j.total = None;
        });
        let incoming = self.library.incoming();
        tokio::fs::create_dir_all(&incoming)
            .await
            .map_err(|e| CoreError::internal("create the library's folder", e))?;
        let zip = incoming.join(format!("{:016x}.zip", rand::random::<u64>()));
        let jobs = self.package_jobs.clone();
        let progress = move |got: u64, total: Option<u64>| {
            jobs.update(job, |j| {
                j.received = got;
                j.total = total;
            });
        };
        let sum = self
            .fetcher
            .zip(&download, &zip, sha256.as_deref(), &progress)
            .await
            .map_err(fetch_error)?;
        let library = self.library.clone();
        let (zip2, r2) = (zip.clone(), r.clone());
        let installed = tokio::task::spawn_blocking(move || library.install(&zip2, &r2))
            .await
            .map_err(|e| CoreError::internal("unpack a package", e));
        let _ = tokio::fs::remove_file(&zip).await;
        let installed = installed?.map_err(library_error)?;
        let row = LibraryPackage {
            kind: r.kind(),
            id: r.id().to_owned(),
            version: r.version().to_owned(),
            title: installed.package.title.clone().or(package.title.clone()),
            manifest_url: manifest_url.to_owned(),
            download_url: download,
            sha256: sum,
            bytes: installed.bytes,
            compatibility: installed.package.compatibility.clone(),
            requires: installed.package.requires.clone(),
            added_by: actor.to_owned(),
            added_at: Timestamp::now(),
        };
        let event = NewEvent::success(actor, "package.add", format!("package:{r}"));
        match self.store.add_library_package(&row, &event).await {
            Ok(()) | Err(StoreError::Conflict { .. }) => {}
            Err(e) => {
                let _ = self.library.remove(&r);
                return Err(e.into());
            }
        }
        self.package_jobs
            .update(job, |j| j.added.push(r.to_string()));
        Ok(())
    }

    /// A fetch's progress (admins only). `id` is as the caller gave it:
    /// one that is not a job's number names no job.
    pub fn package_job(&self, caller: &Caller, id: &str) -> Result<PackageJob, CoreError> {
        caller.require_admin("follow package fetches")?;
        id.parse()
            .ok()
            .and_then(|id| self.package_jobs.get(id))
            .ok_or_else(|| CoreError::NotFound {
                what: "package fetch",
                key: id.to_owned(),
            })
    }

    /// The latest fetches, newest first, under way or ended (admins
    /// only).
    pub fn package_jobs(&self, caller: &Caller) -> Result<Vec<PackageJob>, CoreError> {
        caller.require_admin("follow package fetches")?;
        Ok(self.package_jobs.newest(10))
    }

    /// Reads each package's manifest again (or `only`'s) and fetches a
    /// newer version when it offers one that loads on every Foundry
    /// release the package's worlds run (admins only). No world changes:
    /// each moves to the new version when its game master picks it.
    pub async fn update_packages(
        &self,
        caller: &Caller,
        only: Option<&str>,
    ) -> Result<Vec<UpdateView>, CoreError> {
        caller.require_admin("update the library")?;
        let library = self.store.list_library_packages().await?;
        let mut heads: Vec<&LibraryPackage> = Vec::new();
        for p in &library {
            if only.is_some_and(|id| id != p.id) {
                continue;
            }
            if let Some(n) = newest(&library, p.kind, &p.id)
                && !heads.iter().any(|h| h.kind == n.kind && h.id == n.id)
            {
                heads.push(n);
            }
        }
        if let Some(id) = only
            && heads.is_empty()
        {
            return Err(CoreError::NotFound {
                what: "package",
                key: id.to_owned(),
            });
        }
        let releases = self.releases_using(&library).await?;
        let mut out = Vec::new();
        for head in heads {
            let mut view = UpdateView {
                kind: head.kind,
                id: head.id.clone(),
                current: head.version.clone(),
                offered: None,
                outcome: UpdateOutcome::UpToDate,
            };
            match self
                .fetcher
                .manifest(&head.manifest_url, Some(head.kind))
                .await
            {
                Err(e) => view.outcome = UpdateOutcome::Skipped(e.to_string()),
                Ok(p) if p.id != head.id => {
                    view.outcome = UpdateOutcome::Skipped(format!(
                        "its manifest now describes {}, not {}",
                        p.id, head.id
                    ));
                }
                Ok(p) => {
                    let offered = p.version.clone().unwrap_or_default();
                    view.offered = Some(offered.clone());
                    let newer = version_order(&offered, &head.version).is_gt()
                        && !library
                            .iter()
                            .any(|l| l.kind == p.kind && l.id == p.id && l.version == offered);
                    let misfit = releases
                        .iter()
                        .filter(|(k, id, _)| *k == head.kind && *id == head.id)
                        .find_map(|(_, _, release)| match p.compatibility.fit(release) {
                            f if f.loads() => None,
                            _ => Some(release.to_string()),
                        });
                    view.outcome = match (newer, misfit) {
                        (false, _) => UpdateOutcome::UpToDate,
                        (true, Some(release)) => UpdateOutcome::Skipped(format!(
                            "{offered} does not load on Foundry {release}, which a world using {} runs",
                            head.id
                        )),
                        (true, None) => UpdateOutcome::Fetching(
                            self.start_fetch(caller, &head.manifest_url, p, None).id,
                        ),
                    };
                }
            }
            out.push(view);
        }
        Ok(out)
    }

    /// The Foundry releases worlds run, by the package (kind and id) they
    /// use.
    async fn releases_using(
        &self,
        library: &[LibraryPackage],
    ) -> Result<Vec<(PackageKind, String, tavern_foundry::version::Version)>, CoreError> {
        let worlds = self.store.list_instances(None).await?;
        let uses = self.store.list_world_packages(None).await?;
        Ok(uses
            .iter()
            .filter(|u| library.iter().any(|l| l.kind == u.kind && l.id == u.id))
            .filter_map(|u| {
                let w = worlds.iter().find(|w| w.id == u.instance)?;
                let v = tavern_runtime::releases::foundry_version(w.release.as_deref()?)?;
                Some((u.kind, u.id.clone(), v))
            })
            .collect())
    }

    /// Takes a version out of the library (admins only); refused while a
    /// world uses it. `kind` is needed only when the id names two kinds.
    pub async fn remove_package(
        &self,
        caller: &Caller,
        kind: Option<PackageKind>,
        id: &str,
        version: &str,
    ) -> Result<(), CoreError> {
        caller.require_admin("remove packages from the library")?;
        let library = self.store.list_library_packages().await?;
        let kind = match kind {
            Some(k) => k,
            None => {
                crate::policy::packages::kind_of(&library, id).map_err(|e| CoreError::NotFound {
                    what: "package",
                    key: e.to_string(),
                })?
            }
        };
        let r = PackageRef::new(kind, id, version)
            .map_err(|e| CoreError::invalid("invalid_package", "version", e.to_string()))?;
        self.store
            .delete_library_package(
                kind,
                id,
                version,
                &NewEvent::success(caller.name(), "package.remove", format!("package:{r}")),
            )
            .await?;
        let library = self.library.clone();
        tokio::task::spawn_blocking(move || library.remove(&r))
            .await
            .map_err(|e| CoreError::internal("remove a package", e))?
            .map_err(library_error)
    }
}
