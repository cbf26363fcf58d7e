//! A world's packages from the library, put where Foundry finds them at
//! each start: `Data/systems/<id>` and `Data/modules/<id>` become links to
//! the version's read-only folder (as Foundry sees it: a host path, or a
//! read-only mount in a container); links Tavern made that are no longer
//! wanted are removed; what the game master installed through Foundry is
//! never touched (a clash, reported). A world template is copied once into
//! `Data/worlds/<id>`, since a world must be writable.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tavern_foundry::manifest::PackageKind;

/// Where containers and pods see the library: each package a world uses
/// is mounted read-only at `<this>/<kind>/<id>/<version>`.
pub const CONTAINER_LIBRARY: &str = "/tavern/packages";

/// One library package a world uses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageLink {
    pub kind: PackageKind,
    pub id: String,
    pub version: String,
}

impl PackageLink {
    /// `<kind>/<id>/<version>` below the library's root; `None` when a name
    /// could climb out (never for what Tavern makes).
    pub fn rel_path(&self) -> Option<PathBuf> {
        let plain =
            |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0']);
        (plain(&self.id) && plain(&self.version)).then(|| {
            Path::new(self.kind.as_str())
                .join(&self.id)
                .join(&self.version)
        })
    }
}

/// What [`link_packages`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Linked {
    /// Links in place (made now or already right).
    pub linked: Vec<(PackageKind, String)>,
    /// World templates copied in now.
    pub copied: Vec<String>,
    /// Wanted packages whose place holds the game master's own.
    pub clashes: Vec<(PackageKind, String)>,
    /// Tavern's links removed because they are no longer wanted.
    pub removed: Vec<(PackageKind, String)>,
}

/// Links (and copies) `wanted` into the user-data folder `data`: each
/// link points at `seen_at/<kind>/<id>/<version>`, the library as Foundry
/// sees it; world templates are copied from `source_at`, the library as
/// this process sees it. A link is Tavern's when it points below
/// `seen_at`.
pub fn link_packages(
    data: &Path,
    wanted: &[PackageLink],
    seen_at: &Path,
    source_at: &Path,
) -> std::io::Result<Linked> {
    let mut out = Linked::default();
    for kind in [PackageKind::System, PackageKind::Module] {
        let dir = data.join("Data").join(kind.folder());
        std::fs::create_dir_all(&dir)?;
        let mine: Vec<&PackageLink> = wanted.iter().filter(|p| p.kind == kind).collect();
        // Tavern's links that are not wanted go first.
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            if target.starts_with(seen_at) && !mine.iter().any(|p| p.id == name) {
                std::fs::remove_file(entry.path())?;
                out.removed.push((kind, name));
            }
        }
        for p in mine {
            let Some(rel) = p.rel_path() else { continue };
            let at = dir.join(&p.id);
            let target = seen_at.join(rel);
            match std::fs::symlink_metadata(&at) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
                Ok(meta) if meta.file_type().is_symlink() => {
                    let now = std::fs::read_link(&at)?;
                    if now == target {
                        out.linked.push((kind, p.id.clone()));
                        continue;
                    }
                    if !now.starts_with(seen_at) {
                        out.clashes.push((kind, p.id.clone()));
                        continue;
                    }
                    // Another version of Tavern's: replaced.
                    std::fs::remove_file(&at)?;
                }
                Ok(_) => {
                    out.clashes.push((kind, p.id.clone()));
                    continue;
                }
            }
            std::os::unix::fs::symlink(&target, &at)?;
            out.linked.push((kind, p.id.clone()));
        }
    }
    let worlds = data.join("Data").join(PackageKind::World.folder());
    for p in wanted.iter().filter(|p| p.kind == PackageKind::World) {
        let Some(rel) = p.rel_path() else { continue };
        let at = worlds.join(&p.id);
        if std::fs::symlink_metadata(&at).is_ok() {
            continue;
        }
        std::fs::create_dir_all(&worlds)?;
        let partial = worlds.join(format!(".{}.copying", p.id));
        let _ = std::fs::remove_dir_all(&partial);
        copy_tree(&source_at.join(rel), &partial)?;
        std::fs::rename(&partial, &at)?;
        out.copied.push(p.id.clone());
    }
    Ok(out)
}

/// Says in the log which wanted packages the game master's own hide.
pub fn log_clashes(slug: &tavern_types::Slug, linked: &Linked) {
    for (kind, id) in &linked.clashes {
        tracing::warn!(
            world = %slug, %kind, package = %id,
            "the world has its own {kind} {id}, installed through Foundry; the library's is not used"
        );
    }
}

/// Copies a folder's files and folders (writable: the copy is the
/// world's own); links are not followed.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let t = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if t.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if t.is_file() {
            std::fs::copy(entry.path(), &dest)?;
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o644))?;
        }
    }
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(kind: PackageKind, id: &str, version: &str) -> PackageLink {
        PackageLink {
            kind,
            id: id.into(),
            version: version.into(),
        }
    }

    fn package(lib: &Path, p: &PackageLink) {
        let dir = lib.join(p.rel_path().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        let json = format!(r#"{{"id":"{}","version":"{}"}}"#, p.id, p.version);
        std::fs::write(dir.join(p.kind.file_name()), json).unwrap();
    }

    #[test]
    fn wanted_packages_are_linked_old_links_go_and_the_game_masters_own_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let lib = tmp.path().join("lib");
        let data = tmp.path().join("data");
        let dnd = link(PackageKind::System, "dnd5e", "5.1.2");
        let dice = link(PackageKind::Module, "dice", "1.0");
        let mine = link(PackageKind::Module, "mine", "2.0");
        let world = link(PackageKind::World, "starter", "1");
        for p in [&dnd, &dice, &mine, &world] {
            package(&lib, p);
        }
        // The game master installed their own `mine` through Foundry.
        std::fs::create_dir_all(data.join("Data/modules/mine")).unwrap();
        let got = link_packages(
            &data,
            &[dnd.clone(), dice.clone(), mine.clone(), world.clone()],
            &lib,
            &lib,
        )
        .unwrap();
        assert_eq!(
            got.linked,
            [
                (PackageKind::System, "dnd5e".into()),
                (PackageKind::Module, "dice".into())
            ]
        );
        assert_eq!(got.clashes, [(PackageKind::Module, "mine".into())]);
        assert_eq!(got.copied, ["starter"]);
        assert_eq!(
            std::fs::read_link(data.join("Data/systems/dnd5e")).unwrap(),
            lib.join("system/dnd5e/5.1.2")
        );
        assert!(data.join("Data/modules/dice/module.json").is_file());
        assert!(!data.join("Data/modules/mine/module.json").exists());
        let copied = data.join("Data/worlds/starter");
        assert!(copied.join("world.json").is_file());
        assert!(
            !std::fs::symlink_metadata(&copied)
                .unwrap()
                .file_type()
                .is_symlink()
        );

        // Next start: dice moves to a new version, dnd5e is dropped; the
        // world's copy is its own and stays as it was changed.
        std::fs::write(copied.join("world.json"), "changed").unwrap();
        let dice2 = link(PackageKind::Module, "dice", "1.1");
        package(&lib, &dice2);
        let again = link_packages(&data, &[dice2, world], &lib, &lib).unwrap();
        assert_eq!(again.removed, [(PackageKind::System, "dnd5e".into())]);
        assert!(again.copied.is_empty());
        assert!(!data.join("Data/systems/dnd5e").exists());
        assert_eq!(
            std::fs::read_link(data.join("Data/modules/dice")).unwrap(),
            lib.join("module/dice/1.1")
        );
        assert_eq!(
            std::fs::read_to_string(copied.join("world.json")).unwrap(),
            "changed"
        );
        assert!(
            data.join("Data/modules/mine").is_dir(),
            "never Tavern's to remove"
        );
    }

    #[test]
    fn links_point_where_foundry_sees_the_library() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let p = link(PackageKind::Module, "dice", "1.0");
        let seen = Path::new("/tavern/packages");
        link_packages(&data, std::slice::from_ref(&p), seen, tmp.path()).unwrap();
        assert_eq!(
            std::fs::read_link(data.join("Data/modules/dice")).unwrap(),
            seen.join("module/dice/1.0")
        );
        // A link of the game master's own pointing elsewhere is a clash.
        let other = link(PackageKind::Module, "theirs", "1");
        std::os::unix::fs::symlink("/elsewhere", data.join("Data/modules/theirs")).unwrap();
        let got = link_packages(&data, &[other], seen, tmp.path()).unwrap();
        assert_eq!(got.clashes, [(PackageKind::Module, "theirs".into())]);
        assert_eq!(got.removed, [(PackageKind::Module, "dice".into())]);
        assert!(
            link(PackageKind::Module, "..", "1").rel_path().is_none()
                && link(PackageKind::Module, "a", "../b").rel_path().is_none()
        );
    }
}
