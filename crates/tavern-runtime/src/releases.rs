//! Foundry releases installed side by side under `DATA_DIR/releases/<version>/`,
//! and how to launch one. Both zip layouts are understood: the v13+ "Node.js"
//! build (`package.json` and `main.js` at the root) and the older "Linux"
//! build (`resources/app/package.json` and `resources/app/main.js`). The
//! version is `package.json` → `release.generation`.`release.build`.
//! Installing unpacks into a temporary directory, checks it, and renames it
//! into place, so a bad zip leaves nothing behind. The release `stub` runs
//! Tavern's stand-in when it is enabled.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::Launch;

/// The name of the built-in stand-in release.
pub const STUB: &str = "stub";

/// The Foundry version a release runs: its name for an installed release
/// or an image tag such as `13.351`, the stand-in's for `stub`; `None`
/// when its name tells none (`release`, `latest`).
pub fn foundry_version(release: &str) -> Option<tavern_foundry::version::Version> {
    match release {
        STUB => tavern_foundry::version::Version::parse(tavern_foundry::version::STAND_IN),
        other => tavern_foundry::version::Version::parse(other),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("there is no release {0:?}; see `tavern release list`")]
    Unknown(String),
    #[error("release {0} is not complete: it has no main.js")]
    Broken(String),
    #[error("{0}")]
    NotFoundry(String),
    #[error("the zip holds an unsafe path {0:?}; refusing to unpack it")]
    UnsafePath(String),
    #[error("release {0} is already installed")]
    Exists(String),
    #[error("cannot {op}")]
    Io {
        op: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> ReleaseError {
    let op = op.into();
    move |source| ReleaseError::Io { op, source }
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReleaseInfo {
    pub version: String,
    /// `node` (v13+ Node.js build), `linux` (resources/app) or `stub`.
    pub layout: String,
}

/// The installed releases.
#[derive(Clone, Debug)]
pub struct Releases {
    root: PathBuf,
    node: PathBuf,
    stub_exe: Option<PathBuf>,
}

impl Releases {
    /// `node` is the Node.js binary releases run with; `stub_exe` (the
    /// tavern binary) enables the `stub` release.
    pub fn new(root: PathBuf, node: PathBuf, stub_exe: Option<PathBuf>) -> Self {
        Self {
            root,
            node,
            stub_exe,
        }
    }

    /// The directory releases are installed in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How to launch `name`.
    pub fn resolve(&self, name: &str) -> Result<Launch, ReleaseError> {
        if name == STUB {
            return match &self.stub_exe {
                Some(exe) => Ok(Launch::Stub { exe: exe.clone() }),
                None => Err(ReleaseError::Unknown(name.to_owned())),
            };
        }
        if name.is_empty() || name.starts_with('.') || name.contains('/') {
            return Err(ReleaseError::Unknown(name.to_owned()));
        }
        let dir = self.root.join(name);
        if !dir.is_dir() {
            return Err(ReleaseError::Unknown(name.to_owned()));
        }
        let main_js = main_js(&dir).ok_or_else(|| ReleaseError::Broken(name.to_owned()))?;
        Ok(Launch::Node {
            node: self.node.clone(),
            main_js,
        })
    }

    /// Installed releases, by version; `stub` first when enabled.
    pub fn list(&self) -> Vec<ReleaseInfo> {
        let mut out: Vec<ReleaseInfo> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let version = e.file_name().to_str()?.to_owned();
                if version.starts_with('.') {
                    return None;
                }
                let layout = if e.path().join("main.js").is_file() {
                    "node"
                } else if e.path().join("resources/app/main.js").is_file() {
                    "linux"
                } else {
                    return None;
                };
                Some(ReleaseInfo {
                    version,
                    layout: layout.to_owned(),
                })
            })
            .collect();
        out.sort_by_key(|r| version_key(&r.version));
        if self.stub_exe.is_some() {
            out.insert(
                0,
                ReleaseInfo {
                    version: STUB.to_owned(),
                    layout: STUB.to_owned(),
                },
            );
        }
        out
    }

    /// Installs a Foundry zip; answers its version. `progress(done, total)`
    /// is called as entries are unpacked.
    pub fn install_zip(
        &self,
        zip_path: &Path,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<String, ReleaseError> {
        let file =
            std::fs::File::open(zip_path).map_err(io(format!("open {}", zip_path.display())))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| {
            ReleaseError::NotFoundry(format!("{} is not a zip file: {e}", zip_path.display()))
        })?;
        let version = read_version(&mut archive)?;
        if version == STUB || version.starts_with('.') {
            return Err(ReleaseError::NotFoundry(format!(
                "{version:?} is not a release version"
            )));
        }
        let dest = self.root.join(&version);
        if dest.exists() {
            return Err(ReleaseError::Exists(version));
        }
        std::fs::create_dir_all(&self.root)
            .map_err(io(format!("create {}", self.root.display())))?;
        let tmp = self
            .root
            .join(format!(".installing-{version}-{}", std::process::id()));
        let result = unpack(&mut archive, &tmp, &mut progress).and_then(|()| {
            if main_js(&tmp).is_none() {
                return Err(ReleaseError::NotFoundry(
                    "the zip has a package.json but no main.js: it is not a Foundry server build"
                        .into(),
                ));
            }
            std::fs::rename(&tmp, &dest)
                .map_err(io(format!("move the release into {}", dest.display())))
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result.map(|()| version)
    }
}

/// `main.js` of a release directory, in either layout.
fn main_js(dir: &Path) -> Option<PathBuf> {
    [dir.join("main.js"), dir.join("resources/app/main.js")]
        .into_iter()
        .find(|p| p.is_file())
}

fn version_key(v: &str) -> (Vec<u64>, String) {
    (
        v.split('.').filter_map(|p| p.parse().ok()).collect(),
        v.to_owned(),
    )
}

fn read_version(archive: &mut zip::ZipArchive<std::fs::File>) -> Result<String, ReleaseError> {
    let name = ["package.json", "resources/app/package.json"]
        .into_iter()
        .find(|n| archive.index_for_name(n).is_some())
        .ok_or_else(|| {
            ReleaseError::NotFoundry(
                "this zip is not a Foundry VTT release: it has neither package.json nor resources/app/package.json".into(),
            )
        })?;
    let mut text = String::new();
    archive
        .by_name(name)
        .map_err(|e| ReleaseError::NotFoundry(format!("cannot read {name}: {e}")))?
        .take(1024 * 1024)
        .read_to_string(&mut text)
        .map_err(io(format!("read {name}")))?;
    let pkg: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| ReleaseError::NotFoundry(format!("{name} is not JSON: {e}")))?;
    let part = |k: &str| match &pkg["release"][k] {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => {
            Some(s.clone())
        }
        _ => None,
    };
    match (part("generation"), part("build")) {
        (Some(g), Some(b)) => Ok(format!("{g}.{b}")),
        _ => Err(ReleaseError::NotFoundry(format!(
            "{name} has no release.generation and release.build: not a Foundry VTT release"
        ))),
    }
}

fn unpack(
    archive: &mut zip::ZipArchive<std::fs::File>,
    dest: &Path,
    progress: &mut impl FnMut(u64, u64),
) -> Result<(), ReleaseError> {
    let total = archive.len() as u64;
    // Check every name before writing anything.
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| ReleaseError::NotFoundry(format!("damaged zip: {e}")))?;
        if entry.enclosed_name().is_none() {
            return Err(ReleaseError::UnsafePath(entry.name().to_owned()));
        }
    }
    std::fs::create_dir_all(dest).map_err(io(format!("create {}", dest.display())))?;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| ReleaseError::NotFoundry(format!("damaged zip: {e}")))?;
        let rel = entry
            .enclosed_name()
            .ok_or_else(|| ReleaseError::UnsafePath(entry.name().to_owned()))?;
        let path = dest.join(&rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&path).map_err(io(format!("create {}", path.display())))?;
        } else if entry.is_symlink() {
            return Err(ReleaseError::UnsafePath(entry.name().to_owned()));
        } else {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(io(format!("create {}", parent.display())))?;
            }
            let mut out =
                std::fs::File::create(&path).map_err(io(format!("create {}", path.display())))?;
            std::io::copy(&mut entry, &mut out).map_err(io(format!("unpack {}", rel.display())))?;
            #[cfg(unix)]
            if let Some(mode) = entry.unix_mode() {
                use std::os::unix::fs::PermissionsExt;
                let _ =
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o755));
            }
        }
        progress(i as u64 + 1, total);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    pub(crate) fn make_zip(path: &Path, files: &[(&str, &str)]) {
        let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        for (name, body) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        w.finish().unwrap();
    }

    const PKG: &str = r#"{"name":"foundryvtt","release":{"generation":13,"build":351}}"#;

    fn releases(dir: &Path) -> Releases {
        Releases::new(dir.join("releases"), "node".into(), None)
    }

    #[test]
    fn installs_both_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let r = releases(dir.path());
        let z = dir.path().join("node.zip");
        make_zip(
            &z,
            &[
                ("package.json", PKG),
                ("main.js", "//"),
                ("dist/x.js", "//"),
            ],
        );
        let mut calls = 0;
        assert_eq!(r.install_zip(&z, |_, _| calls += 1).unwrap(), "13.351");
        assert_eq!(calls, 3);
        let z = dir.path().join("linux.zip");
        make_zip(
            &z,
            &[
                (
                    "resources/app/package.json",
                    r#"{"release":{"generation":"12","build":"331"}}"#,
                ),
                ("resources/app/main.js", "//"),
            ],
        );
        assert_eq!(r.install_zip(&z, |_, _| {}).unwrap(), "12.331");
        assert_eq!(
            r.list(),
            [
                ReleaseInfo {
                    version: "12.331".into(),
                    layout: "linux".into()
                },
                ReleaseInfo {
                    version: "13.351".into(),
                    layout: "node".into()
                },
            ]
        );
        match r.resolve("12.331").unwrap() {
            Launch::Node { main_js, .. } => {
                assert!(main_js.ends_with("12.331/resources/app/main.js"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.install_zip(&z, |_, _| {}),
            Err(ReleaseError::Exists(_))
        ));
        assert!(matches!(r.resolve("14.1"), Err(ReleaseError::Unknown(_))));
        assert!(matches!(r.resolve("stub"), Err(ReleaseError::Unknown(_))));
    }

    #[test]
    fn refuses_bad_zips_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let r = releases(dir.path());
        let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("no-package", vec![("readme.txt", "hi")]),
            (
                "no-release",
                vec![("package.json", r#"{"name":"x"}"#), ("main.js", "")],
            ),
            ("no-main", vec![("package.json", PKG)]),
            (
                "slip",
                vec![
                    ("package.json", PKG),
                    ("main.js", ""),
                    ("../../evil.txt", "x"),
                ],
            ),
            (
                "absolute",
                vec![
                    ("package.json", PKG),
                    ("main.js", ""),
                    ("/tmp/evil.txt", "x"),
                ],
            ),
        ];
        for (name, files) in cases {
            let z = dir.path().join(format!("{name}.zip"));
            make_zip(&z, &files);
            assert!(r.install_zip(&z, |_, _| {}).is_err(), "{name} was accepted");
        }
        std::fs::write(dir.path().join("junk.zip"), "not a zip").unwrap();
        assert!(
            r.install_zip(&dir.path().join("junk.zip"), |_, _| {})
                .is_err()
        );
        let left: Vec<_> = std::fs::read_dir(dir.path().join("releases"))
            .map(|d| d.count())
            .into_iter()
            .collect();
        assert!(left.iter().all(|n| *n == 0), "something was left behind");
        assert!(!dir.path().join("evil.txt").exists());
        assert!(r.list().is_empty());
    }

    #[test]
    fn stub_resolves_when_enabled() {
        let r = Releases::new("/nowhere".into(), "node".into(), Some("/bin/tavern".into()));
        assert_eq!(
            r.resolve("stub").unwrap(),
            Launch::Stub {
                exe: "/bin/tavern".into()
            }
        );
        assert_eq!(r.list()[0].version, "stub");
    }
}
