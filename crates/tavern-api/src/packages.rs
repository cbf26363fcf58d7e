//! The package library's requests and answers: the library's versions,
//! fetches into it, updates, and the packages each world uses.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One version in the community's library.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct LibraryPackageJson {
    /// `system`, `module` or `world`.
    #[schema(value_type = crate::shapes::PackageKind)]
    pub kind: String,
    pub id: String,
    pub version: String,
    pub title: Option<String>,
    pub manifest_url: String,
    /// The zip's SHA-256, hex.
    pub sha256: String,
    /// Its files' bytes, stored once however many worlds use it.
    #[schema(minimum = 0)]
    pub bytes: u64,
    pub compatibility: CompatibilityJson,
    /// What it needs, `<kind>:<id>`.
    pub requires: Vec<String>,
    #[schema(value_type = crate::shapes::DateTime)]
    pub added_at: String,
    /// The worlds using it, of those you may see.
    pub used_by: Vec<String>,
}

/// The Foundry versions a package says it works with.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CompatibilityJson {
    pub minimum: Option<String>,
    pub verified: Option<String>,
    pub maximum: Option<String>,
}

/// Adds a package to the library from its manifest.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddPackageRequest {
    /// Its `system.json`, `module.json` or `world.json`, as published.
    #[schema(value_type = crate::shapes::ManifestUrl)]
    pub manifest_url: String,
    /// Needed only when the manifest says no `type` and its name is not
    /// `system.json`, `module.json` or `world.json`.
    #[serde(default)]
    #[schema(value_type = Option<crate::shapes::PackageKind>)]
    pub kind: Option<String>,
    /// The zip's SHA-256 (hex) when you know it: a zip that differs is
    /// refused.
    #[serde(default)]
    #[schema(pattern = "^[0-9A-Fa-f]{64}$")]
    pub sha256: Option<String>,
}

/// A fetch into the library, and how far it is.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PackageJobJson {
    #[schema(minimum = 1)]
    pub id: u64,
    /// What was asked for: `<kind> <id> <version>`.
    pub package: String,
    pub manifest_url: String,
    /// `running`, `done` or `failed`.
    #[schema(pattern = "^(running|done|failed)$")]
    pub state: String,
    /// Why it failed.
    pub error: Option<String>,
    /// The zip being downloaded now, and how far.
    pub current: String,
    #[schema(minimum = 0)]
    pub received: u64,
    #[schema(minimum = 0)]
    pub total: Option<u64>,
    /// What was put in the library, `<kind> <id> <version>` (what it
    /// needs included).
    pub added: Vec<String>,
    /// Requirements that were not fetched, and why.
    pub notes: Vec<String>,
}

/// Which packages an update reads again.
#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdatePackagesRequest {
    /// Only this package (all when left out).
    #[serde(default)]
    #[schema(value_type = Option<crate::shapes::PackageId>)]
    pub id: Option<String>,
}

/// What an update found for one package.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PackageUpdateJson {
    #[schema(value_type = crate::shapes::PackageKind)]
    pub kind: String,
    pub id: String,
    /// The newest version in the library before.
    pub current: String,
    /// What its manifest offers now.
    pub offered: Option<String>,
    /// `up_to_date`, `fetching` (see `job`) or `skipped` (see `reason`).
    #[schema(pattern = "^(up_to_date|fetching|skipped)$")]
    pub outcome: String,
    pub job: Option<u64>,
    pub reason: Option<String>,
}

/// A package one world uses.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct WorldPackageJson {
    #[schema(value_type = crate::shapes::PackageKind)]
    pub kind: String,
    pub id: String,
    pub version: String,
    pub title: Option<String>,
    /// `ready` (linked at each start), `clash` (the world has its own
    /// package of that id, installed through Foundry, and that is what
    /// Foundry loads) or `missing` (its files are gone from the library).
    #[schema(pattern = "^(ready|clash|missing)$")]
    pub state: String,
    /// When the world's Foundry release is outside what the package says
    /// it works with: why.
    pub warning: Option<String>,
    /// A newer version in the library.
    pub newer: Option<String>,
}

/// Chooses a package for a world, with what it needs.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddWorldPackageRequest {
    #[schema(value_type = crate::shapes::PackageId)]
    pub id: String,
    /// Needed only when the id names both a system and a module.
    #[serde(default)]
    #[schema(value_type = Option<crate::shapes::PackageKind>)]
    pub kind: Option<String>,
    /// The library's newest when left out.
    #[serde(default)]
    #[schema(value_type = Option<crate::shapes::PackageVersion>)]
    pub version: Option<String>,
}

#[cfg(feature = "server")]
mod from_core {
    use tavern_core::packages::{
        BackupPackage, JobState, LibraryEntry, PackageJob, UpdateOutcome, UpdateView,
        WorldPackageState, WorldPackageView,
    };
    use tavern_foundry::manifest::Fit;

    use super::*;

    impl From<BackupPackage> for PackageRefJson {
        fn from(p: BackupPackage) -> Self {
            Self {
                kind: p.kind.to_string(),
                id: p.id,
                version: p.version,
            }
        }
    }

    impl From<LibraryEntry> for LibraryPackageJson {
        fn from(e: LibraryEntry) -> Self {
            let p = e.package;
            Self {
                kind: p.kind.to_string(),
                id: p.id,
                version: p.version,
                title: p.title,
                manifest_url: p.manifest_url,
                sha256: p.sha256,
                bytes: p.bytes,
                compatibility: CompatibilityJson {
                    minimum: p.compatibility.minimum,
                    verified: p.compatibility.verified,
                    maximum: p.compatibility.maximum,
                },
                requires: p
                    .requires
                    .iter()
                    .map(|r| format!("{}:{}", r.kind, r.id))
                    .collect(),
                added_at: p.added_at.to_string(),
                used_by: e.used_by.iter().map(ToString::to_string).collect(),
            }
        }
    }

    impl From<PackageJob> for PackageJobJson {
        fn from(j: PackageJob) -> Self {
            let (state, error) = match j.state {
                JobState::Running => ("running", None),
                JobState::Done => ("done", None),
                JobState::Failed(why) => ("failed", Some(why)),
            };
            Self {
                id: j.id,
                package: j.package,
                manifest_url: j.manifest_url,
                state: state.into(),
                error,
                current: j.current,
                received: j.received,
                total: j.total,
                added: j.added,
                notes: j.notes,
            }
        }
    }

    impl From<UpdateView> for PackageUpdateJson {
        fn from(u: UpdateView) -> Self {
            let (outcome, job, reason) = match u.outcome {
                UpdateOutcome::UpToDate => ("up_to_date", None, None),
                UpdateOutcome::Fetching(id) => ("fetching", Some(id), None),
                UpdateOutcome::Skipped(why) => ("skipped", None, Some(why)),
            };
            Self {
                kind: u.kind.to_string(),
                id: u.id,
                current: u.current,
                offered: u.offered,
                outcome: outcome.into(),
                job,
                reason,
            }
        }
    }

    /// Why a fit is worth a warning.
    pub fn warning(fit: &Fit) -> String {
        match fit {
            Fit::Works => String::new(),
            Fit::Unverified { verified } => {
                format!("verified only up to Foundry {verified}: it loads, and may misbehave")
            }
            Fit::TooOld { minimum } => {
                format!("needs Foundry {minimum} or newer: Foundry will not load it")
            }
            Fit::TooNew { maximum } => {
                format!("works only up to Foundry {maximum}: Foundry will not load it")
            }
        }
    }

    impl From<WorldPackageView> for WorldPackageJson {
        fn from(v: WorldPackageView) -> Self {
            Self {
                kind: v.kind.to_string(),
                id: v.id,
                version: v.version,
                title: v.title,
                state: match v.state {
                    WorldPackageState::Ready => "ready",
                    WorldPackageState::Clash => "clash",
                    WorldPackageState::Missing => "missing",
                }
                .into(),
                warning: v.fit.as_ref().map(warning),
                newer: v.newer,
            }
        }
    }
}

#[cfg(feature = "server")]
pub use from_core::warning;

/// One version of a library package, as a backup holds it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PackageRefJson {
    /// `system`, `module` or `world`.
    #[schema(value_type = crate::shapes::PackageKind)]
    pub kind: String,
    pub id: String,
    pub version: String,
}
