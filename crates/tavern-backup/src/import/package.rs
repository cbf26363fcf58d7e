//! One package's archive, as Foundry's installer takes it: a zip of a game
//! system, module or world whose manifest is at the top or inside its one
//! top folder. Unpacked into a new folder by the same rules as an import
//! (no `..`, no absolute paths, within the limits), and no links at all.

use std::collections::BTreeSet;
use std::path::Path;

use super::{ImportError, io_err, scan, write_entries};
use crate::archive::Limits;

/// What [`unpack`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The manifest's bytes, as found in the archive.
    pub manifest: Vec<u8>,
    pub files: u64,
    pub bytes: u64,
}

/// Folders some zip tools add beside the content, never part of it.
const LITTER: &[&str] = &["__MACOSX"];

/// Where the package's files sit in the archive: `""` when its manifest
/// (`manifest_name`) is at the top, else its one top folder's name.
fn root_of(
    paths: &[&str],
    manifests: &std::collections::BTreeMap<String, Vec<u8>>,
    manifest_name: &str,
) -> Result<String, ImportError> {
    if manifests.contains_key(manifest_name) {
        return Ok(String::new());
    }
    let tops: BTreeSet<&str> = paths
        .iter()
        .filter_map(|p| p.split_once('/').map(|(top, _)| top))
        .filter(|top| !LITTER.contains(top))
        .collect();
    let loose = paths
        .iter()
        .any(|p| !p.contains('/') && !tops.contains(p) && !LITTER.contains(p));
    if let (Some(top), 1, false) = (tops.first(), tops.len(), loose)
        && manifests.contains_key(&format!("{top}/{manifest_name}"))
    {
        return Ok((*top).to_owned());
    }
    Err(ImportError::Refused {
        path: manifest_name.to_owned(),
        why: format!(
            "the archive holds no {manifest_name} at its top or in its one top folder, \
             so it is not that kind of package"
        ),
    })
}

/// Unpacks the package in `source` into `into`, a folder that must not
/// exist yet, its manifest (`manifest_name`, e.g. `module.json`) at the
/// top of `into`. On any error `into` is removed again.
pub fn unpack(
    source: &Path,
    manifest_name: &str,
    into: &Path,
    limits: Limits,
) -> Result<Unpacked, ImportError> {
    let found = scan(source, limits)?;
    let paths: Vec<&str> = found.entries.iter().map(|e| e.path.as_str()).collect();
    let root = root_of(&paths, &found.manifests, manifest_name)?;
    let manifest_at = match root.as_str() {
        "" => manifest_name.to_owned(),
        top => format!("{top}/{manifest_name}"),
    };
    let manifest = found
        .manifests
        .get(&manifest_at)
        .cloned()
        .unwrap_or_default();
    let inside = |path: &str| -> Option<String> {
        let rel = match root.as_str() {
            "" => path,
            top => path.strip_prefix(top)?.strip_prefix('/')?,
        };
        let first = rel.split('/').next().unwrap_or(rel);
        (!LITTER.contains(&first)).then(|| rel.to_owned())
    };
    let mut bytes = 0;
    for e in &found.entries {
        if let super::layout::EntryKind::File { size } = e.kind
            && inside(&e.path).is_some()
        {
            bytes += size;
        }
    }
    std::fs::create_dir(into).map_err(io_err(format!("create {}", into.display())))?;
    let files = write_entries(source, into, limits, &inside, false);
    match files {
        Ok(files) => Ok(Unpacked {
            manifest,
            files,
            bytes,
        }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(into);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use proptest::prelude::*;

    use super::*;

    fn zip_of(files: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut w = zip::ZipWriter::new(f.reopen().unwrap());
        for (name, body) in files {
            if name.ends_with('/') {
                w.add_directory(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
            } else {
                w.start_file(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                w.write_all(body).unwrap();
            }
        }
        w.finish().unwrap();
        f
    }

    const LIMITS: Limits = Limits {
        bytes: 1 << 20,
        files: 100,
    };

    #[test]
    fn a_package_at_the_top_or_in_one_folder_is_unpacked_with_its_manifest_at_the_top() {
        let dir = tempfile::tempdir().unwrap();
        for (n, files) in [
            vec![
                ("module.json", &b"{\"id\":\"m\"}"[..]),
                ("scripts/a.js", b"x"),
                ("__MACOSX/._a", b"junk"),
            ],
            vec![
                ("m-1.0/", &b""[..]),
                ("m-1.0/module.json", b"{\"id\":\"m\"}"),
                ("m-1.0/scripts/a.js", b"x"),
            ],
        ]
        .into_iter()
        .enumerate()
        {
            let zip = zip_of(&files);
            let into = dir.path().join(n.to_string());
            let got = unpack(zip.path(), "module.json", &into, LIMITS).unwrap();
            assert_eq!(got.manifest, b"{\"id\":\"m\"}");
            assert_eq!((got.files, got.bytes), (2, 11));
            assert_eq!(std::fs::read(into.join("scripts/a.js")).unwrap(), b"x");
            assert!(!into.join("__MACOSX").exists());
        }
    }

    #[test]
    fn archives_that_are_not_that_package_or_climb_out_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let into = dir.path().join("p");
        let cases: Vec<Vec<(&str, &[u8])>> = vec![
            vec![("system.json", b"{}")],
            vec![("a/module.json", b"{}"), ("b/x", b"")],
            vec![("module.json", b"{}"), ("../evil.js", b"x")],
            vec![("module.json", b"{}"), ("/etc/evil", b"x")],
        ];
        for files in cases {
            let zip = zip_of(&files);
            assert!(unpack(zip.path(), "module.json", &into, LIMITS).is_err());
            assert!(!into.exists(), "{files:?}");
        }
        let big = vec![0u8; 2 << 20];
        let zip = zip_of(&[("module.json", b"{}"), ("big.bin", &big)]);
        assert!(matches!(
            unpack(zip.path(), "module.json", &into, LIMITS),
            Err(ImportError::TooLarge(_))
        ));
        assert!(!into.exists());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_names_unpack_only_inside(names in proptest::collection::btree_set("[a-z./\\\\]{1,12}", 1..6)) {
            let dir = tempfile::tempdir().unwrap();
            // A zip cannot hold one name twice; the writer refuses that itself.
            let mut files: Vec<(&str, &[u8])> = vec![("module.json", b"{}")];
            files.extend(names.iter().filter(|n| *n != "module.json").map(|n| (n.as_str(), &b"x"[..])));
            let zip = zip_of(&files);
            let into = dir.path().join("in").join("p");
            std::fs::create_dir(dir.path().join("in")).unwrap();
            if unpack(zip.path(), "module.json", &into, LIMITS).is_ok() {
                for entry in walk_all(dir.path()) {
                    prop_assert!(entry.starts_with(&into) || entry == dir.path().join("in"), "{}", entry.display());
                }
            } else {
                prop_assert!(!into.exists());
            }
        }
    }

    fn walk_all(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                out.extend(walk_all(&e.path()));
            }
        }
        out
    }
}
