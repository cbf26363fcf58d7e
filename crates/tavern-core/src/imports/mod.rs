//! Worlds brought from other Foundry hosts: an upload, or a path on this
//! server, surveyed before anything changes (tavern-backup's `import`),
//! held to the Foundry release the world will run and to the key pool,
//! then put in place: into a new world, or into an existing one that is
//! stopped and backed up first.

use std::path::{Path, PathBuf};

use tavern_backup::archive::Limits;
use tavern_backup::import::{self, ImportError, layout::Layout, layout::Shape};
use tavern_runtime::foundry_config;
use tavern_store::{Instance, NewEvent};
use tavern_types::{DesiredState, LicenseKey};

use crate::auth::Caller;
use crate::error::CoreError;
use crate::instances::NewInstance;
use crate::tavern::Tavern;

mod cluster;
mod held;

pub use crate::imported::{ImportReport, ImportSource};

/// The most an import may hold.
pub const IMPORT_LIMITS: Limits = Limits {
    bytes: 200 * 1024 * 1024 * 1024,
    files: 2_000_000,
};

/// What is asked of an import.
pub struct ImportRequest {
    pub source: ImportSource,
    /// Survey only: say what would happen, change nothing.
    pub check_only: bool,
    /// For a new world: the release it runs (else the newest installed).
    pub release: Option<String>,
    /// For a new world: whose it is (admins; else the caller's).
    pub owner: Option<String>,
}

fn invalid(why: impl Into<String>) -> CoreError {
    CoreError::invalid("invalid_import", "source", why.into())
}

/// The world `slug` has a Foundry world `id` already.
fn world_exists(slug: &str, id: &str) -> CoreError {
    CoreError::Conflict {
        code: "world_exists",
        message: format!(
            "{slug} has a Foundry world {id} already: import into a new world, or remove that one first; nothing was imported"
        ),
    }
}

/// An import refused for what it holds, or failed on this server's side.
fn import_error(e: ImportError) -> CoreError {
    match e {
        ImportError::Io { .. } => CoreError::internal("import", e),
        other => invalid(format!("{other}; nothing was imported")),
    }
}

impl Tavern {
    /// Keeps an upload for an import (at most [`IMPORT_LIMITS`]' bytes) in
    /// Tavern's import folder until the import is done.
    pub async fn receive_import(
        &self,
        body: impl tokio::io::AsyncRead + Unpin + Send,
    ) -> Result<ImportSource, CoreError> {
        let path = crate::upload::receive(
            &self.settings.imports_dir,
            ".import",
            body,
            IMPORT_LIMITS.bytes,
            invalid,
        )
        .await?;
        Ok(ImportSource::Upload(path))
    }

    /// Refuses, before an upload is received, an import the caller may not
    /// make into `slug`: into a world that is not theirs, or one being
    /// destroyed. Answers the world, when it exists.
    pub async fn check_import_target(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<Option<Instance>, CoreError> {
        if self
            .store
            .instance(&crate::checks::slug(slug)?)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let i = self.visible_instance(caller, slug).await?;
        if i.desired_state == DesiredState::Destroyed {
            return Err(crate::words::being_destroyed(&i));
        }
        Ok(Some(i))
    }

    /// Imports into the world `slug`: an existing world the caller may
    /// change, or a new one made for it. Surveys first and refuses, with
    /// nothing changed, what is not Foundry's, what is unsafe, and worlds
    /// newer than the release; then (unless only checking) stops and backs
    /// up an existing world, puts the import in place, and starts the world
    /// again if it ran.
    pub async fn import_world(
        &self,
        caller: &Caller,
        slug: &str,
        req: ImportRequest,
    ) -> Result<ImportReport, CoreError> {
        if let ImportSource::Path(p) = &req.source {
            caller.require_admin("import from a path on the server")?;
            self.check_import_path(p)?;
        }
        let Planned {
            existing,
            mut report,
            found_key,
        } = self
            .plan_import(caller, slug, &req.source, req.release.as_deref())
            .await?;
        if req.check_only {
            return Ok(report);
        }
        let i = match existing {
            Some(i) => i,
            None => {
                self.create_instance(
                    caller,
                    NewInstance {
                        slug: slug.to_owned(),
                        owner: req.owner.clone(),
                        release: report.release.clone(),
                        license: None,
                        runtime: None,
                        idle_timeout_minutes: None,
                        wake_on_visit: None,
                    },
                )
                .await?
                .instance
            }
        };
        let result = self
            .put_in_place(caller, &i, &req.source, &mut report)
            .await;
        if result.is_err() && report.created {
            // The world made for the import goes again with it.
            let gone = NewEvent::success(
                "system",
                "instance.destroyed",
                format!("instance:{}", i.slug),
            )
            .with_detail("the import it was made for failed");
            if let Err(e) = self.store.delete_instance(&i.slug, &gone).await {
                tracing::warn!(slug = %i.slug, error = %e, "removing the world made for a failed import failed");
            }
            self.worlds_changed();
        }
        result?;
        if let Some(found) = found_key
            && let Some((id, signed)) = found.keep
            && self.signed_license(id).is_none()
        {
            self.keep_signed(id, &signed)?;
        }
        let event = NewEvent::success(
            caller.name(),
            "instance.import",
            format!("instance:{}", i.slug),
        )
        .with_detail(summary(&report.layout));
        self.store.append_event(&event).await?;
        report.done = true;
        Ok(report)
    }

    /// Surveys an import into `slug` and holds it to the world's release,
    /// to a world of the same id there, and to the key pool: what it would
    /// do, with nothing changed.
    async fn plan_import(
        &self,
        caller: &Caller,
        slug: &str,
        source: &ImportSource,
        release: Option<&str>,
    ) -> Result<Planned, CoreError> {
        let existing = self.check_import_target(caller, slug).await?;
        let path = source.path().to_owned();
        let layout = tokio::task::spawn_blocking(move || import::survey(&path, IMPORT_LIMITS))
            .await
            .map_err(|e| CoreError::internal("import", e))?
            .map_err(import_error)?;
        let mut warnings = Vec::new();
        let release = match &existing {
            Some(i) => {
                if let Some(asked) = release
                    && i.release.as_deref() != Some(asked)
                {
                    warnings.push(format!(
                        "{slug} exists and keeps its release ({}); the release {asked} is only for a new world",
                        i.release.as_deref().unwrap_or("none")
                    ));
                }
                i.release.clone()
            }
            None => match release {
                Some(r) => Some(r.to_owned()),
                None => self.releases.list().pop().map(|r| r.version),
            },
        };
        warnings.extend(versions(&layout, release.as_deref())?);
        warnings.extend(layout.notes.iter().cloned());
        if let (Some(i), Shape::World { id, .. }) = (&existing, &layout.shape) {
            // (On a cluster, found when its data is put together.)
            let there = !i.runtime.data_on_cluster()
                && self
                    .runtime
                    .data_dir(&i.slug)
                    .is_some_and(|d| d.join("Data/worlds").join(id).exists());
            if there {
                return Err(world_exists(slug, id));
            }
        }
        let found_key = self.license_found(caller, &layout).await?;
        let report = ImportReport {
            world: slug.to_owned(),
            created: existing.is_none(),
            done: false,
            license: found_key.as_ref().map(|f| f.words.clone()),
            layout,
            release,
            warnings,
            backup: None,
        };
        Ok(Planned {
            existing,
            report,
            found_key,
        })
    }

    /// Stops and backs up an existing world, puts the import in place, and
    /// starts the world again if it ran.
    async fn put_in_place(
        &self,
        caller: &Caller,
        i: &Instance,
        source: &ImportSource,
        report: &mut ImportReport,
    ) -> Result<(), CoreError> {
        let _busy = self.backup_work.hold(&i.slug)?;
        let was_running = i.desired_state == DesiredState::Running;
        let placed = self.stop_back_up_and_place(caller, i, source, report).await;
        if was_running {
            // With the import, or (when it failed) with what it had.
            let again = self
                .set_desired(caller, i.slug.as_str(), DesiredState::Running)
                .await;
            match (&placed, again) {
                (Ok(()), Err(e)) => return Err(e),
                (Err(_), Err(e)) => {
                    tracing::warn!(slug = %i.slug, error = %e, "starting the world again after a failed import failed");
                }
                _ => {}
            }
        }
        placed
    }

    /// Stops and backs up an existing world, then puts the import in
    /// place.
    async fn stop_back_up_and_place(
        &self,
        caller: &Caller,
        i: &Instance,
        source: &ImportSource,
        report: &mut ImportReport,
    ) -> Result<(), CoreError> {
        if !report.created {
            report.backup = self
                .stop_and_back_up(caller, i, "imported")
                .await?
                .map(|b| b.id);
        }
        if i.runtime.data_on_cluster() {
            return self.place_on_cluster(i, source, &report.layout).await;
        }
        let data = self
            .runtime
            .data_dir(&i.slug)
            .ok_or(CoreError::NotImplemented(
                "imports into worlds whose data is elsewhere",
            ))?;
        let (source, layout) = (source.path().to_owned(), report.layout.clone());
        tokio::task::spawn_blocking(move || {
            tavern_backup::local::import_into(&source, &layout, &data, IMPORT_LIMITS)
        })
        .await
        .map_err(|e| CoreError::internal("import", e))?
        .map_err(import_error)
    }

    /// A path on this server to import from: one that exists, and not
    /// inside Tavern's own data (its worlds, keys and backups).
    fn check_import_path(&self, path: &Path) -> Result<(), CoreError> {
        if !path.is_absolute() {
            return Err(invalid(format!(
                "{} is not an absolute path on the server",
                path.display()
            )));
        }
        let real = path
            .canonicalize()
            .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
        let own = [
            Some(self.settings.imports_dir.as_path()),
            self.settings.license_vault.parent(),
        ];
        for dir in own.into_iter().flatten() {
            if let Ok(dir) = dir.canonicalize()
                && real.starts_with(&dir)
            {
                return Err(invalid(format!(
                    "{} is inside Tavern's own data; import from where the old server kept its files",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// What the old server's `license.json` is to this Tavern: the key of
    /// the pool it names (its signed form kept for that key when it is
    /// signed and none is kept yet), or none.
    async fn license_found(
        &self,
        caller: &Caller,
        layout: &Layout,
    ) -> Result<Option<LicenseFound>, CoreError> {
        let Some(bytes) = &layout.license else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(bytes).into_owned();
        let Some(key) = tavern_foundry::manifest::license_key_in(bytes)
            .and_then(|k| LicenseKey::parse(&k).ok())
        else {
            return Ok(Some(LicenseFound {
                words: "Config/license.json names no license key; it was left out".into(),
                keep: None,
            }));
        };
        let visible = self.list_licenses(caller).await?;
        for l in self.store.list_licenses().await? {
            if self.license_key(l.id).await?.expose() != key.expose() {
                continue;
            }
            let label = match visible.iter().any(|v| v.license.id == l.id) {
                true => format!("the key {}", l.label),
                false => "a key of this Tavern".to_owned(),
            };
            let signed = foundry_config::is_signed_for(&text, key.expose());
            let words = match (signed, self.signed_license(l.id).is_some()) {
                (true, false) => format!(
                    "Config/license.json is {label}: Foundry's signature of it is kept, so the key need not be signed again"
                ),
                (true, true) => {
                    format!("Config/license.json is {label}, whose signature Tavern keeps already")
                }
                (false, _) => format!("Config/license.json is {label}, not yet signed by Foundry"),
            };
            return Ok(Some(LicenseFound {
                words,
                keep: signed.then(|| (l.id, text.clone())),
            }));
        }
        Ok(Some(LicenseFound {
            words: format!(
                "Config/license.json holds a key ending in {} that is not in this Tavern's pool: an admin may add it (`tavern license add`)",
                key.last4()
            ),
            keep: None,
        }))
    }
}

/// One folder of a batch: where it was, the world it goes into, and what
/// its import answered.
pub struct BatchItem {
    pub from: PathBuf,
    pub world: String,
    pub result: Result<ImportReport, CoreError>,
}

/// A Tavern slug for a container's folder name: lower case, anything but
/// letters and digits a `-`, at most 63 characters; `None` when nothing is
/// left or the name is reserved.
pub fn slug_for(name: &str) -> Option<tavern_types::Slug> {
    let mut out = String::new();
    for c in name.chars() {
        match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => out.push(c),
            _ if !out.ends_with('-') => out.push('-'),
            _ => {}
        }
    }
    let cut: String = out.chars().take(tavern_types::Slug::MAX_LEN).collect();
    tavern_types::Slug::parse(cut.trim_matches('-')).ok()
}

/// The felddy data folders below `root`: each folder that is a Foundry
/// user-data folder itself or holds one as `data/` (a docker-compose
/// volume), with the folder's name, sorted.
fn felddy_folders(root: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let is_user_data =
        |d: &Path| d.join("Data").is_dir() || d.join("Config/options.json").is_file();
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let dir = entry.path();
        if is_user_data(&dir) {
            found.push((name, dir));
        } else if is_user_data(&dir.join("data")) {
            found.push((name, dir.join("data")));
        }
    }
    found.sort();
    Ok(found)
}

impl Tavern {
    /// Imports every felddy data folder below `root`, a folder on this
    /// server (admins), each into the world named after its folder (made
    /// for it, or an existing one of that name). One that fails does not
    /// stop the others; with `check_only`, says what would happen.
    pub async fn import_felddy(
        &self,
        caller: &Caller,
        root: &Path,
        check_only: bool,
    ) -> Result<Vec<BatchItem>, CoreError> {
        caller.require_admin("import from a path on the server")?;
        self.check_import_path(root)?;
        let dir = root.to_owned();
        let folders = tokio::task::spawn_blocking(move || felddy_folders(&dir))
            .await
            .map_err(|e| CoreError::internal("import", e))?
            .map_err(|e| invalid(format!("cannot read {}: {e}", root.display())))?;
        let mut items = Vec::new();
        for (name, from) in folders {
            let Some(slug) = slug_for(&name) else {
                items.push(BatchItem {
                    world: String::new(),
                    result: Err(invalid(format!(
                        "{name} makes no world name: import it on its own with a name"
                    ))),
                    from,
                });
                continue;
            };
            let result = self
                .import_world(
                    caller,
                    slug.as_str(),
                    ImportRequest {
                        source: ImportSource::Path(from.clone()),
                        check_only,
                        release: None,
                        owner: None,
                    },
                )
                .await;
            items.push(BatchItem {
                from,
                world: slug.to_string(),
                result,
            });
        }
        Ok(items)
    }
}

/// An import surveyed and held to this Tavern, not yet done.
struct Planned {
    existing: Option<Instance>,
    report: ImportReport,
    found_key: Option<LicenseFound>,
}

/// The old server's license, as this Tavern sees it.
struct LicenseFound {
    words: String,
    /// The key's id and the signed `license.json` to keep for it.
    keep: Option<(tavern_types::LicenseId, String)>,
}

/// Holds the worlds' Foundry versions to the release's: a world saved by a
/// newer Foundry is refused; an older one is a warning (Foundry migrates it
/// when it is launched).
fn versions(layout: &Layout, release: Option<&str>) -> Result<Vec<String>, CoreError> {
    let mut warnings = Vec::new();
    let runs = release.and_then(tavern_runtime::releases::foundry_version);
    for w in &layout.worlds {
        let Some(needs) = w.needs() else {
            warnings.push(format!(
                "the world {} does not say which Foundry version saved it",
                w.id
            ));
            continue;
        };
        match &runs {
            Some(runs) if needs > *runs => {
                return Err(CoreError::invalid(
                    "import_too_new",
                    "source",
                    format!(
                        "the world {} was saved by Foundry {needs}, newer than {} (the release {} runs): install Foundry {needs} or newer first; nothing was imported",
                        w.id,
                        runs,
                        release.unwrap_or_default()
                    ),
                ));
            }
            Some(runs) if needs.generation() < runs.generation() => warnings.push(format!(
                "the world {} was saved by Foundry {needs}; Foundry {runs} migrates it when it is first launched (the world's backups keep it as it was)",
                w.id
            )),
            Some(_) => {}
            None => warnings.push(format!(
                "the world {} was saved by Foundry {needs}; Tavern cannot tell which Foundry version the release {} is",
                w.id,
                release.unwrap_or("(none)")
            )),
        }
    }
    Ok(warnings)
}

/// One line of what was imported, for the audit log.
fn summary(layout: &Layout) -> String {
    let ids: Vec<&str> = layout.worlds.iter().map(|w| w.id.as_str()).collect();
    format!(
        "{} files, {}; worlds: {}; {} systems, {} modules",
        layout.files,
        tavern_types::words::size(layout.bytes),
        if ids.is_empty() {
            "none".to_owned()
        } else {
            ids.join(", ")
        },
        layout.systems.len(),
        layout.modules.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tavern_backup::import::layout::{Entry, EntryKind, plan};

    fn layout_of(core: &str) -> Layout {
        let entries = vec![Entry {
            path: "w/world.json".into(),
            kind: EntryKind::File { size: 1 },
        }];
        let mut m = std::collections::BTreeMap::new();
        m.insert(
            "w/world.json".to_owned(),
            format!(r#"{{"id": "w", "coreVersion": "{core}"}}"#).into_bytes(),
        );
        plan(&entries, &m).unwrap()
    }

    #[test]
    fn container_names_become_slugs() {
        let s = |n: &str| slug_for(n).map(|s| s.to_string());
        assert_eq!(s("foundry-one").as_deref(), Some("foundry-one"));
        assert_eq!(s("Foundry_Two ").as_deref(), Some("foundry-two"));
        assert_eq!(s("__x__").as_deref(), Some("x"));
        assert_eq!(s("www"), None);
        assert_eq!(s("___"), None);
    }

    proptest::proptest! {
        #[test]
        fn any_name_becomes_a_valid_slug_or_none(name in "\\PC{0,80}") {
            if let Some(slug) = slug_for(&name) {
                proptest::prop_assert!(tavern_types::Slug::parse(slug.as_str()).is_ok());
            }
        }
    }

    #[test]
    fn felddy_volumes_are_found_as_folders_or_their_data() {
        let t = tempfile::tempdir().unwrap();
        for d in ["one/data/Data/worlds", "two/Data/systems", "three/notes"] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        std::fs::write(t.path().join("stray.txt"), "x").unwrap();
        let found = felddy_folders(t.path()).unwrap();
        assert_eq!(
            found,
            vec![
                ("one".to_owned(), t.path().join("one/data")),
                ("two".to_owned(), t.path().join("two")),
            ]
        );
    }

    #[test]
    fn newer_worlds_are_refused_and_older_ones_warned_of() {
        let e = versions(&layout_of("13.351"), Some("12.331")).unwrap_err();
        assert_eq!(e.code(), "import_too_new");
        assert!(e.to_string().contains("install Foundry 13.351"), "{e}");
        assert!(
            versions(&layout_of("13.351"), Some("stub"))
                .unwrap()
                .is_empty()
        );
        let older = versions(&layout_of("11.315"), Some("13.351")).unwrap();
        assert!(older[0].contains("migrates"), "{older:?}");
        let unknown = versions(&layout_of("12.331"), Some("release")).unwrap();
        assert!(unknown[0].contains("cannot tell"), "{unknown:?}");
        assert!(
            versions(&layout_of("12.331"), Some("12.343"))
                .unwrap()
                .is_empty()
        );
    }
}
