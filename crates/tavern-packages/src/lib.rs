//! The community's package library on disk: each version of a game system,
//! module or world unpacked once under `<root>/<kind>/<id>/<version>/`,
//! read-only, from a zip checked to be that package; in `fetch`, getting
//! manifests and zips from their URLs. Blocking file work.

pub mod fetch;

use std::path::{Path, PathBuf};

use tavern_backup::archive::Limits;
use tavern_backup::import::ImportError;
use tavern_foundry::manifest::{self, Package, PackageKind};

/// The most a package may hold unpacked.
pub const LIMITS: Limits = Limits {
    bytes: 8 * 1024 * 1024 * 1024,
    files: 200_000,
};

/// The longest version name taken.
const MAX_VERSION: usize = 64;

/// Whether `v` can name a version's folder: ASCII letters, digits, `.`,
/// `-`, `_` and `+`, not starting with `.`, at most 64 characters.
pub fn is_version_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= MAX_VERSION
        && !v.starts_with('.')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
}

/// One version of one package, its names checked.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackageRef {
    kind: PackageKind,
    id: String,
    version: String,
}

/// Why a name was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{0:?} is not a package id (letters, digits, '-', '_' and '.')")]
    Id(String),
    #[error(
        "{0:?} is not a version a folder can be named after (letters, digits, '.', '-', '_', '+')"
    )]
    Version(String),
}

impl PackageRef {
    pub fn new(kind: PackageKind, id: &str, version: &str) -> Result<Self, NameError> {
        if !manifest::is_package_id(id) {
            return Err(NameError::Id(id.to_owned()));
        }
        if !is_version_name(version) {
            return Err(NameError::Version(version.to_owned()));
        }
        Ok(Self {
            kind,
            id: id.to_owned(),
            version: version.to_owned(),
        })
    }

    pub fn kind(&self) -> PackageKind {
        self.kind
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// `<kind>/<id>/<version>`, below a library's root.
    pub fn rel_path(&self) -> PathBuf {
        Path::new(self.kind.as_str())
            .join(&self.id)
            .join(&self.version)
    }
}

impl std::fmt::Display for PackageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.kind, self.id, self.version)
    }
}

/// Why a package was not put in or taken out of the library.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("{0} is in the library already")]
    Exists(PackageRef),
    #[error("the zip is not {expected}: {why}")]
    NotThePackage { expected: PackageRef, why: String },
    #[error("the zip is refused: {0}")]
    Archive(#[from] ImportError),
    #[error("cannot {op}")]
    Io {
        op: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> LibraryError {
    let op = op.into();
    move |source| LibraryError::Io { op, source }
}

/// What [`Library::install`] put in place.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The manifest the zip holds (it names the same package and version).
    pub package: Package,
    pub files: u64,
    pub bytes: u64,
}

/// The library's folder.
#[derive(Debug, Clone)]
pub struct Library {
    root: PathBuf,
}

impl Library {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a version is (or would be).
    pub fn path(&self, r: &PackageRef) -> PathBuf {
        self.root.join(r.rel_path())
    }

    pub fn has(&self, r: &PackageRef) -> bool {
        self.path(r).join(r.kind.file_name()).is_file()
    }

    /// Where downloads and unpacking wait (inside the root, so that a
    /// finished package is renamed into place).
    pub fn incoming(&self) -> PathBuf {
        self.root.join(".incoming")
    }

    /// Removes what an interrupted install left in [`Self::incoming`].
    pub fn clear_incoming(&self) {
        let dir = self.incoming();
        writable(&dir);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Unpacks the zip at `zip` as `expected`: its manifest must name that
    /// package and version. The files are made read-only and put in place
    /// whole, or not at all.
    pub fn install(&self, zip: &Path, expected: &PackageRef) -> Result<Installed, LibraryError> {
        let dest = self.path(expected);
        if dest.exists() {
            return Err(LibraryError::Exists(expected.clone()));
        }
        let incoming = self.incoming();
        std::fs::create_dir_all(&incoming).map_err(io("create the library's folder"))?;
        let work = incoming.join(format!("unpack-{:016x}", rand::random::<u64>()));
        let unpacked =
            tavern_backup::import::package::unpack(zip, expected.kind.file_name(), &work, LIMITS)?;
        let result = check_and_place(&work, &dest, expected, &unpacked.manifest);
        if result.is_err() {
            writable(&work);
            let _ = std::fs::remove_dir_all(&work);
        }
        Ok(Installed {
            package: result?,
            files: unpacked.files,
            bytes: unpacked.bytes,
        })
    }

    /// Takes a version out of the library (nothing when it is not there).
    pub fn remove(&self, r: &PackageRef) -> Result<(), LibraryError> {
        let dir = self.path(r);
        if !dir.exists() {
            return Ok(());
        }
        writable(&dir);
        std::fs::remove_dir_all(&dir).map_err(io(format!("remove {}", dir.display())))?;
        // The package's folder goes with its last version.
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
        Ok(())
    }

    /// Every version on disk.
    pub fn installed(&self) -> Vec<PackageRef> {
        let mut out = Vec::new();
        for kind in PackageKind::ALL {
            for id in names(&self.root.join(kind.as_str())) {
                for version in names(&self.root.join(kind.as_str()).join(&id)) {
                    if let Ok(r) = PackageRef::new(kind, &id, &version)
                        && self.has(&r)
                    {
                        out.push(r);
                    }
                }
            }
        }
        out.sort();
        out
    }
}

/// The names in a folder, sorted (none when it cannot be read).
fn names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    out.sort();
    out
}

/// Checks the unpacked manifest against `expected`, makes the files
/// read-only and renames `work` to `dest`.
fn check_and_place(
    work: &Path,
    dest: &Path,
    expected: &PackageRef,
    manifest_bytes: &[u8],
) -> Result<Package, LibraryError> {
    let not = |why: String| LibraryError::NotThePackage {
        expected: expected.clone(),
        why,
    };
    let package = manifest::read(expected.kind, manifest_bytes).map_err(|e| {
        not(format!(
            "its {} does not read: {e}",
            expected.kind.file_name()
        ))
    })?;
    if package.id != expected.id {
        return Err(not(format!("its manifest names {:?}", package.id)));
    }
    if package.version.as_deref() != Some(expected.version.as_str()) {
        return Err(not(format!(
            "its manifest says version {}",
            package.version.as_deref().unwrap_or("(none)")
        )));
    }
    read_only(work);
    let parent = dest.parent().unwrap_or(dest);
    std::fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
    std::fs::rename(work, dest).map_err(io(format!("put {} in place", dest.display())))?;
    Ok(package)
}

/// Makes a tree read-only: files 0444, folders 0555. Worlds share it, and
/// a Foundry running as the same user cannot change it.
fn read_only(dir: &Path) {
    set_modes(dir, 0o444, 0o555);
}

/// Makes a tree writable again (its files 0644, folders 0755), to remove it.
pub fn writable(dir: &Path) {
    set_modes(dir, 0o644, 0o755);
}

fn set_modes(dir: &Path, file: u32, folder: u32) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    // A folder is opened before its entries are changed, and closed last.
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                set_modes(&e.path(), file, folder);
            } else if t.is_file() {
                let _ = std::fs::set_permissions(e.path(), std::fs::Permissions::from_mode(file));
            }
        }
    }
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(folder));
}

/// The bytes the files below `dir` take (links not followed), for usage
/// and the library's size.
pub fn disk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => disk_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests;
