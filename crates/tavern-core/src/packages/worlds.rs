//! The library packages each world uses: chosen by its game master (with
//! what they need, within the owner's tier), the community's defaults for
//! a new world, the links the runtime makes at a start, and which choices
//! a release change would break.

use tavern_foundry::manifest::{Fit, PackageKind};
use tavern_runtime::packages::{CONTAINER_LIBRARY, PackageLink};
use tavern_store::{Instance, LibraryPackage, NewEvent, WorldPackage};

use crate::auth::Caller;
use crate::error::CoreError;
use crate::policy::packages::{self as policy, Choice, ChoiceError};
use crate::tavern::Tavern;

/// Whether a chosen package reaches Foundry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorldPackageState {
    /// Linked at the next start (or already).
    Ready,
    /// The world has its own package of that id, installed through
    /// Foundry: it is what Foundry loads, not the library's.
    Clash,
    /// The version's files are missing from the library's folder.
    Missing,
}

/// One package a world uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorldPackageView {
    pub kind: PackageKind,
    pub id: String,
    pub version: String,
    pub title: Option<String>,
    pub state: WorldPackageState,
    /// How the world's Foundry release fits it, when it does not simply
    /// work.
    pub fit: Option<Fit>,
    /// A newer version in the library, when there is one.
    pub newer: Option<String>,
}

fn choice_error(e: ChoiceError) -> CoreError {
    match e {
        ChoiceError::NotInLibrary(id) => CoreError::NotFound {
            what: "package",
            key: id,
        },
        ChoiceError::NotInTier { .. } => CoreError::Quota(e.to_string()),
        ChoiceError::NotChosen(_) => CoreError::invalid("not_chosen", "package", e.to_string()),
        ChoiceError::Needed { .. } => CoreError::Conflict {
            code: "package_needed",
            message: e.to_string(),
        },
        other => CoreError::invalid("invalid_package", "package", other.to_string()),
    }
}

fn choices_of(uses: &[WorldPackage]) -> Vec<Choice> {
    uses.iter()
        .map(|u| Choice {
            kind: u.kind,
            id: u.id.clone(),
            version: u.version.clone(),
        })
        .collect()
}

impl Tavern {
    /// The packages `slug` uses, and how each fares.
    pub async fn world_packages(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<Vec<WorldPackageView>, CoreError> {
        let i = self.visible_instance(caller, slug).await?;
        let library = self.store.list_library_packages().await?;
        let uses = self.store.list_world_packages(Some(i.id)).await?;
        Ok(self.package_views(&i, &choices_of(&uses), &library))
    }

    fn package_views(
        &self,
        i: &Instance,
        choices: &[Choice],
        library: &[LibraryPackage],
    ) -> Vec<WorldPackageView> {
        let release = i
            .release
            .as_deref()
            .and_then(tavern_runtime::releases::foundry_version);
        let data = self.runtime.data_dir(&i.slug);
        let mut choices: Vec<&Choice> = choices.iter().collect();
        // Worlds, systems, then modules: what a world needs first.
        choices.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
        choices
            .into_iter()
            .map(|c| {
                let p = library
                    .iter()
                    .find(|p| p.kind == c.kind && p.id == c.id && p.version == c.version);
                let on_disk = tavern_packages::PackageRef::new(c.kind, &c.id, &c.version)
                    .is_ok_and(|r| self.library.has(&r));
                let state = match (on_disk, data.as_deref()) {
                    (false, _) => WorldPackageState::Missing,
                    (true, Some(data)) if self.clashes(data, c) => WorldPackageState::Clash,
                    (true, _) => WorldPackageState::Ready,
                };
                let newer = policy::newest(library, c.kind, &c.id)
                    .filter(|n| policy::version_order(&n.version, &c.version).is_gt())
                    .map(|n| n.version.clone());
                WorldPackageView {
                    kind: c.kind,
                    id: c.id.clone(),
                    version: c.version.clone(),
                    title: p.and_then(|p| p.title.clone()),
                    state,
                    fit: match (p, &release) {
                        (Some(p), Some(r)) => Some(p.compatibility.fit(r)),
                        _ => None,
                    }
                    .filter(|f| *f != Fit::Works),
                    newer,
                }
            })
            .collect()
    }

    /// Whether the world's data holds its own package where `c` would be
    /// linked: anything but a link into the library. (A world template is
    /// the world's own once copied.)
    fn clashes(&self, data: &std::path::Path, c: &Choice) -> bool {
        if c.kind == PackageKind::World {
            return false;
        }
        let at = data.join("Data").join(c.kind.folder()).join(&c.id);
        match std::fs::read_link(&at) {
            Ok(target) => {
                !(target.starts_with(self.library.root()) || target.starts_with(CONTAINER_LIBRARY))
            }
            Err(_) => std::fs::symlink_metadata(&at).is_ok(),
        }
    }

    /// The owner's tier's `packages`, and its name, when it limits them.
    pub(super) async fn package_limit(
        &self,
        i: &Instance,
    ) -> Result<Option<(String, Vec<String>)>, CoreError> {
        let Some(owner) = self.store.user(i.owner).await? else {
            return Ok(None);
        };
        Ok(self
            .tier_of(&owner)
            .await?
            .and_then(|(name, tier)| tier.packages.map(|p| (name, p))))
    }

    /// Chooses `id` (its `version`, else the library's newest) for `slug`,
    /// with the packages it needs. Takes effect at the world's next start.
    pub async fn add_world_package(
        &self,
        caller: &Caller,
        slug: &str,
        kind: Option<PackageKind>,
        id: &str,
        version: Option<&str>,
    ) -> Result<Vec<WorldPackageView>, CoreError> {
        let i = self.visible_instance(caller, slug).await?;
        let library = self.store.list_library_packages().await?;
        let kind = match kind {
            Some(k) => k,
            None => policy::kind_of(&library, id).map_err(choice_error)?,
        };
        let version = match version {
            Some(v) => v.to_owned(),
            None => policy::newest(&library, kind, id)
                .ok_or_else(|| choice_error(ChoiceError::NotInLibrary(id.to_owned())))?
                .version
                .clone(),
        };
        let current = choices_of(&self.store.list_world_packages(Some(i.id)).await?);
        let add = Choice {
            kind,
            id: id.to_owned(),
            version: version.clone(),
        };
        let next = policy::with_choice(&current, add, &library).map_err(choice_error)?;
        if let Some((tier, allowed)) = self.package_limit(&i).await? {
            let added = next.iter().filter(|c| !current.contains(c));
            for c in added {
                if !policy::allowed(Some(&allowed), &c.id) {
                    return Err(choice_error(ChoiceError::NotInTier {
                        id: c.id.clone(),
                        tier,
                    }));
                }
            }
        }
        let detail = format!("add {kind} {id} {version}");
        self.save_choices(caller, &i, &next, detail).await?;
        Ok(self.package_views(&i, &next, &library))
    }

    /// Stops using `id` in `slug` (refused while another choice needs it).
    pub async fn remove_world_package(
        &self,
        caller: &Caller,
        slug: &str,
        kind: Option<PackageKind>,
        id: &str,
    ) -> Result<Vec<WorldPackageView>, CoreError> {
        let i = self.visible_instance(caller, slug).await?;
        let library = self.store.list_library_packages().await?;
        let current = choices_of(&self.store.list_world_packages(Some(i.id)).await?);
        let kind = match kind {
            Some(k) => k,
            None => {
                let kinds: Vec<PackageKind> = current
                    .iter()
                    .filter(|c| c.id == id)
                    .map(|c| c.kind)
                    .collect();
                match kinds.as_slice() {
                    [one] => *one,
                    [] => return Err(choice_error(ChoiceError::NotChosen(id.to_owned()))),
                    _ => return Err(choice_error(ChoiceError::Ambiguous(id.to_owned()))),
                }
            }
        };
        let next = policy::without(&current, kind, id, &library).map_err(choice_error)?;
        self.save_choices(caller, &i, &next, format!("remove {kind} {id}"))
            .await?;
        Ok(self.package_views(&i, &next, &library))
    }

    async fn save_choices(
        &self,
        caller: &Caller,
        i: &Instance,
        choices: &[Choice],
        detail: String,
    ) -> Result<(), CoreError> {
        let rows: Vec<WorldPackage> = choices
            .iter()
            .map(|c| WorldPackage {
                instance: i.id,
                kind: c.kind,
                id: c.id.clone(),
                version: c.version.clone(),
            })
            .collect();
        self.store
            .set_world_packages(
                i.id,
                &rows,
                &NewEvent::success(
                    caller.name(),
                    "instance.packages",
                    format!("instance:{}", i.slug),
                )
                .with_detail(detail),
            )
            .await?;
        Ok(())
    }

    /// Gives a new world the community's default packages (the newest
    /// version of each, and what it needs). A default the library lacks
    /// or the owner's tier leaves out is skipped and logged: the world is
    /// made either way.
    pub(crate) async fn apply_default_packages(
        &self,
        caller: &Caller,
        i: &Instance,
    ) -> Result<(), CoreError> {
        let defaults = &self.settings.packages.defaults;
        if defaults.is_empty() {
            return Ok(());
        }
        let library = self.store.list_library_packages().await?;
        let limit = self.package_limit(i).await?;
        let mut choices: Vec<Choice> = Vec::new();
        for (kind, id) in defaults {
            let picked = kind
                .map(Ok)
                .unwrap_or_else(|| policy::kind_of(&library, id))
                .and_then(|k| {
                    let n = policy::newest(&library, k, id)
                        .ok_or_else(|| ChoiceError::NotInLibrary(id.clone()))?;
                    policy::with_choice(&choices, Choice::of(n), &library)
                })
                .and_then(|next| match &limit {
                    Some((tier, allowed)) => {
                        match next.iter().find(|c| !policy::allowed(Some(allowed), &c.id)) {
                            Some(c) => Err(ChoiceError::NotInTier {
                                id: c.id.clone(),
                                tier: tier.clone(),
                            }),
                            None => Ok(next),
                        }
                    }
                    None => Ok(next),
                });
            match picked {
                Ok(next) => choices = next,
                Err(e) => tracing::warn!(world = %i.slug, "default package {id} is left out: {e}"),
            }
        }
        if choices.is_empty() {
            return Ok(());
        }
        self.save_choices(caller, i, &choices, "the community's defaults".into())
            .await
    }

    /// What the runtime links into `i`'s data at a start.
    pub(crate) async fn package_links(&self, i: &Instance) -> Result<Vec<PackageLink>, CoreError> {
        Ok(self
            .store
            .list_world_packages(Some(i.id))
            .await?
            .into_iter()
            .map(|u| PackageLink {
                kind: u.kind,
                id: u.id,
                version: u.version,
            })
            .collect())
    }

    /// Refuses a move of `i` to Foundry `release` that would stop any of
    /// its packages from loading, naming them all; nothing changes.
    pub(crate) async fn check_packages_fit(
        &self,
        i: &Instance,
        release: &str,
    ) -> Result<(), CoreError> {
        let Some(version) = tavern_runtime::releases::foundry_version(release) else {
            return Ok(());
        };
        let uses = self.store.list_world_packages(Some(i.id)).await?;
        if uses.is_empty() {
            return Ok(());
        }
        let library = self.store.list_library_packages().await?;
        let broken: Vec<String> = policy::misfits(&choices_of(&uses), &library, &version)
            .into_iter()
            .filter(|(_, fit)| !fit.loads())
            .map(|(c, fit)| match fit {
                Fit::TooOld { minimum } => {
                    format!("{} {} (needs Foundry {minimum} or newer)", c.id, c.version)
                }
                Fit::TooNew { maximum } => {
                    format!("{} {} (works up to Foundry {maximum})", c.id, c.version)
                }
                _ => c.id,
            })
            .collect();
        if broken.is_empty() {
            return Ok(());
        }
        Err(CoreError::Conflict {
            code: "packages_incompatible",
            message: format!(
                "on Foundry {release}, {} would stop working: {}. Choose versions that fit (or remove them), or pass force to change the release anyway",
                i.slug,
                broken.join("; ")
            ),
        })
    }
}
