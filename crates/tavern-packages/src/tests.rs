use std::io::Write as _;

use super::*;

fn zip_at(path: &Path, files: &[(&str, &str)]) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, body) in files {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(body.as_bytes()).unwrap();
    }
    w.finish().unwrap();
}

fn module(id: &str, version: &str) -> PackageRef {
    PackageRef::new(PackageKind::Module, id, version).unwrap()
}

#[test]
fn a_version_is_installed_read_only_once_and_removed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::new(dir.path().join("packages"));
    let zip = dir.path().join("m.zip");
    zip_at(
        &zip,
        &[
            (
                "module.json",
                r#"{"id":"dice","version":"1.2.0","title":"Dice"}"#,
            ),
            ("scripts/dice.js", "roll()"),
        ],
    );
    let r = module("dice", "1.2.0");
    let got = lib.install(&zip, &r).unwrap();
    assert_eq!(got.package.title.as_deref(), Some("Dice"));
    assert_eq!(got.files, 2);
    assert!(lib.has(&r));
    assert_eq!(lib.installed(), vec![r.clone()]);
    // Read-only by mode (root, as CI runs, is not held by modes; the
    // container runtimes mount the library read-only).
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(lib.path(&r).join("scripts/dice.js")), 0o444);
    assert_eq!(mode(lib.path(&r).join("scripts")), 0o555);
    assert_eq!(mode(lib.path(&r)), 0o555);
    assert!(matches!(
        lib.install(&zip, &r),
        Err(LibraryError::Exists(_))
    ));
    assert!(disk_bytes(lib.root()) >= 6);
    lib.remove(&r).unwrap();
    assert!(!lib.has(&r));
    assert!(!lib.root().join("module/dice").exists());
    assert!(lib.installed().is_empty());
}

#[test]
fn a_zip_of_another_package_or_version_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lib = Library::new(dir.path().join("packages"));
    let zip = dir.path().join("m.zip");
    for (files, why) in [
        (
            vec![("module.json", r#"{"id":"other","version":"1.2.0"}"#)],
            "names \"other\"",
        ),
        (
            vec![("module.json", r#"{"id":"dice","version":"1.1.0"}"#)],
            "version 1.1.0",
        ),
        (
            vec![("system.json", r#"{"id":"dice","version":"1.2.0"}"#)],
            "no module.json",
        ),
        (
            vec![
                ("module.json", r#"{"id":"dice","version":"1.2.0"}"#),
                ("../../escape.js", "x"),
            ],
            "climbs out",
        ),
    ] {
        zip_at(&zip, &files);
        let e = lib.install(&zip, &module("dice", "1.2.0")).unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
        assert!(lib.installed().is_empty());
        assert_eq!(names(&lib.incoming()), Vec::<String>::new());
    }
    assert!(!dir.path().join("escape.js").exists());
}

#[test]
fn names_that_cannot_be_folders_are_refused() {
    assert!(PackageRef::new(PackageKind::System, "dnd5e", "5.1.2+build.7").is_ok());
    for (id, v) in [
        ("../x", "1"),
        ("ok", "../1"),
        ("ok", ""),
        ("ok", ".1"),
        ("a b", "1"),
    ] {
        assert!(
            PackageRef::new(PackageKind::System, id, v).is_err(),
            "{id} {v}"
        );
    }
    assert_eq!(
        module("dice", "1.0").rel_path(),
        Path::new("module/dice/1.0")
    );
}
