//! Archives round-trip byte for byte; damage, tampering and entries that
//! would land outside the directory are refused, and a refused restore
//! leaves nothing behind.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use tavern_backup::ArchiveError;
use tavern_backup::archive::{self, MANIFEST};

/// Every file, link and directory under `root`, with contents or targets,
/// and the mode and modification time (to the second) of files and
/// directories.
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn stamp(path: &Path) -> String {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).unwrap();
        format!("{:o} {}", m.mode() & 0o7777, m.mtime())
    }
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let t = e.file_type().unwrap();
            if t.is_symlink() {
                let target = std::fs::read_link(e.path()).unwrap();
                out.insert(rel, format!("link {}", target.display()));
            } else if t.is_dir() {
                out.insert(rel, format!("dir {}", stamp(&e.path())));
                walk(root, &e.path(), out);
            } else {
                let bytes = std::fs::read(e.path()).unwrap();
                out.insert(rel, format!("file {} {}", stamp(&e.path()), hex(&bytes)));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A small world: nested JSON, an empty file, an empty directory, binary
/// data, a link inside and one leading outside.
fn world(root: &Path) {
    let worlds = root.join("Data/worlds/dragon-heist");
    std::fs::create_dir_all(worlds.join("data")).unwrap();
    std::fs::create_dir_all(root.join("Config")).unwrap();
    std::fs::create_dir_all(root.join("Data/empty")).unwrap();
    std::fs::write(root.join("Config/options.json"), br#"{"port":30000}"#).unwrap();
    std::fs::write(worlds.join("world.json"), br#"{"title":"Dragon Heist"}"#).unwrap();
    std::fs::write(worlds.join("data/actors.db"), b"").unwrap();
    let noise: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(root.join("Data/map.webp"), &noise).unwrap();
    std::os::unix::fs::symlink("worlds/dragon-heist/world.json", root.join("Data/current"))
        .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("Data/escape")).unwrap();
    // Files and directories from other days, with modes of their own.
    use std::os::unix::fs::PermissionsExt;
    let day = |secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    let dated = |path: PathBuf, secs, mode| {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        std::fs::File::open(&path)
            .unwrap()
            .set_modified(day(secs))
            .unwrap();
    };
    dated(root.join("Data/map.webp"), 1_614_816_000, 0o640);
    dated(worlds.join("world.json"), 1_700_000_123, 0o600);
    dated(root.join("Data/empty"), 1_600_000_000, 0o750);
    dated(worlds.clone(), 1_650_000_000, 0o755);
}

#[test]
fn an_archive_restores_byte_for_byte_and_skips_links_that_leave() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    world(&src);
    let file = dir.path().join("w.tar.zst");
    let written = archive::write(&src, std::fs::File::create(&file).unwrap(), 2).unwrap();
    assert_eq!(written.size, std::fs::metadata(&file).unwrap().len());
    assert_eq!(written.manifest.files.len(), 4);
    assert_eq!(written.manifest.skipped, ["Data/escape"]);
    assert_eq!(written.manifest.total_bytes(), 300_000 + 14 + 24);

    let out = dir.path().join("out");
    let read = archive::read_file(&file, Some(&out), None).unwrap();
    assert_eq!(read, written, "what was read is what was written");
    let mut want = tree(&src);
    want.remove("Data/escape");
    assert_eq!(tree(&out), want);
}

#[test]
fn damage_is_detected_and_nothing_is_left_unpacked() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    world(&src);
    let file = dir.path().join("w.tar.zst");
    archive::write(&src, std::fs::File::create(&file).unwrap(), 1).unwrap();
    let good = std::fs::read(&file).unwrap();
    for at in [good.len() / 3, good.len() / 2, good.len() - 20] {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        let out = dir.path().join(format!("out-{at}"));
        let err = archive::read(bad.as_slice(), Some(&out), None).unwrap_err();
        assert!(
            matches!(err, ArchiveError::Corrupt { .. }),
            "byte {at}: {err:?}"
        );
        assert!(!out.exists(), "a damaged archive left files behind");
    }
    // Cut short.
    let err = archive::read(&good[..good.len() / 2], None, None).unwrap_err();
    assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err:?}");
}

/// A tar header whose name is written as given, past the tar crate's own
/// checks (which would refuse `..` and absolute paths).
fn raw_header(name: &str, kind: tar::EntryType, size: u64, link: Option<&str>) -> tar::Header {
    let mut h = tar::Header::new_old();
    let bytes = name.as_bytes();
    h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
    if let Some(link) = link {
        let l = link.as_bytes();
        h.as_old_mut().linkname[..l.len()].copy_from_slice(l);
    }
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    h
}

/// One raw entry: name, kind, contents, link target.
type Raw<'a> = (&'a str, tar::EntryType, &'a [u8], Option<&'a str>);

/// An archive of these raw entries and a manifest that lists exactly its
/// regular files under `data/`.
fn crafted(entries: &[Raw]) -> Vec<u8> {
    let mut files = Vec::new();
    let mut body = Vec::new();
    for (name, kind, data, link) in entries {
        let h = raw_header(name, *kind, data.len() as u64, *link);
        body.extend_from_slice(h.as_bytes());
        body.extend_from_slice(data);
        body.resize(body.len().div_ceil(512) * 512, 0);
        if *kind == tar::EntryType::Regular {
            use sha2::Digest;
            files.push(serde_json::json!({
                "path": name.trim_start_matches("data/"),
                "size": data.len(),
                "sha256": hex(&sha2::Sha256::digest(data)),
            }));
        }
    }
    let manifest =
        serde_json::to_vec(&serde_json::json!({"files": files, "links": [], "skipped": []}))
            .unwrap();
    let h = raw_header(
        MANIFEST,
        tar::EntryType::Regular,
        manifest.len() as u64,
        None,
    );
    body.extend_from_slice(h.as_bytes());
    body.extend_from_slice(&manifest);
    body.resize(body.len().div_ceil(512) * 512 + 1024, 0);
    let mut z = zstd::Encoder::new(Vec::new(), 3).unwrap();
    z.write_all(&body).unwrap();
    z.finish().unwrap()
}

#[test]
fn entries_that_could_land_outside_are_refused() {
    use tar::EntryType::{Directory, Link, Regular, Symlink};
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<Raw>)> = vec![
        (
            "climbs with ..",
            vec![("data/../../evil", Regular, b"x", None)],
        ),
        ("absolute", vec![("/tmp/evil", Regular, b"x", None)]),
        ("outside data/", vec![("evil", Regular, b"x", None)]),
        (
            "link leaving",
            vec![("data/l", Symlink, b"", Some("../../etc"))],
        ),
        (
            "absolute link",
            vec![("data/l", Symlink, b"", Some("/etc"))],
        ),
        ("hard link", vec![("data/h", Link, b"", Some("data/x"))]),
        (
            "write through a link",
            vec![
                ("data/sub", Directory, b"", None),
                ("data/l", Symlink, b"", Some("sub")),
                ("data/l/f", Regular, b"x", None),
            ],
        ),
    ];
    for (what, entries) in cases {
        let bytes = crafted(&entries);
        let out = dir.path().join("out");
        let err = archive::read(bytes.as_slice(), Some(&out), None).unwrap_err();
        assert!(
            matches!(err, ArchiveError::Unsafe { .. }),
            "{what}: {err:?}"
        );
        assert!(!out.exists(), "{what}: a refused archive left files behind");
        assert!(!dir.path().join("evil").exists() && !Path::new("/tmp/evil").exists());
    }
    // The crafting itself is sound: a harmless archive made the same way
    // is read.
    let ok = crafted(&[("data/a.json", Regular, b"{}", None)]);
    let out: PathBuf = dir.path().join("fine");
    archive::read(ok.as_slice(), Some(&out), None).unwrap();
    assert_eq!(std::fs::read(out.join("a.json")).unwrap(), b"{}");
}

#[test]
fn a_file_that_does_not_match_the_manifest_is_refused() {
    use tar::EntryType::Regular;
    let mut bytes = crafted(&[("data/a.json", Regular, b"{}", None)]);
    // Same archive, but the manifest promises other contents: re-craft with
    // a file whose data differs from what the manifest of the first lists.
    let other = crafted(&[("data/a.json", Regular, b"[]", None)]);
    assert_ne!(bytes, other);
    // Splice: the first archive's entries with the second's manifest.
    let a = zstd::decode_all(bytes.as_slice()).unwrap();
    let b = zstd::decode_all(other.as_slice()).unwrap();
    let mut spliced = a[..1024].to_vec();
    spliced.extend_from_slice(&b[1024..]);
    bytes = zstd::encode_all(spliced.as_slice(), 3).unwrap();
    let err = archive::read(bytes.as_slice(), None, None).unwrap_err();
    assert!(
        matches!(&err, ArchiveError::Corrupt { detail } if detail.contains("a.json")),
        "{err:?}"
    );
}

/// The fake key the secrets below hold.
const KEY: &[u8] = b"SECRETKEY1234567890ABCDE";

/// A world's data with the files Tavern writes from its secrets.
fn world_with_secrets(root: &Path) {
    world(root);
    std::fs::write(
        root.join("Config/license.json"),
        [br#"{"license":""#, KEY, br#""}"#].concat(),
    )
    .unwrap();
    std::fs::write(
        root.join("Config/admin.txt"),
        b"pbkdf2-hash-of-the-admin-key",
    )
    .unwrap();
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn tavern_secrets_are_never_archived() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    world_with_secrets(&src);
    let file = dir.path().join("w.tar.zst");
    let written = archive::write(&src, std::fs::File::create(&file).unwrap(), 1).unwrap();
    assert_eq!(
        written.manifest.withheld,
        ["Config/admin.txt", "Config/license.json"]
    );
    let plain = zstd::decode_all(std::fs::read(&file).unwrap().as_slice()).unwrap();
    assert!(!holds(&plain, KEY), "the key is in the archive");
    assert!(
        !holds(&plain, b"pbkdf2-hash"),
        "the admin hash is in the archive"
    );
    let out = dir.path().join("out");
    let read = archive::read_file(&file, Some(&out), Some(written.limits())).unwrap();
    assert_eq!(read, written);
    assert!(!out.join("Config/license.json").exists());
    assert!(out.join("Config/options.json").exists());
}

/// An archive as Tavern wrote them before secrets were left out: the data
/// directory whole, with its manifest.
fn legacy_archive(src: &Path) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut files = Vec::new();
    for rel in [
        "Config/license.json",
        "Config/admin.txt",
        "Config/options.json",
    ] {
        let data = std::fs::read(src.join(rel)).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, format!("data/{rel}"), data.as_slice())
            .unwrap();
        use sha2::Digest;
        files.push(serde_json::json!({
            "path": rel, "size": data.len(), "sha256": hex(&sha2::Sha256::digest(&data)),
        }));
    }
    let manifest =
        serde_json::to_vec(&serde_json::json!({"files": files, "links": [], "skipped": []}))
            .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(manifest.len() as u64);
    h.set_mode(0o600);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, MANIFEST, manifest.as_slice())
        .unwrap();
    zstd::encode_all(tar.into_inner().unwrap().as_slice(), 3).unwrap()
}

#[test]
fn a_rewritten_archive_leaves_the_secrets_of_an_old_one_out() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    world_with_secrets(&src);
    let old = legacy_archive(&src);
    assert!(holds(&zstd::decode_all(old.as_slice()).unwrap(), KEY));

    let mut out = Vec::new();
    let written = archive::rewrite(old.as_slice(), &mut out, 1, None, &[], &[]).unwrap();
    assert!(!holds(&zstd::decode_all(out.as_slice()).unwrap(), KEY));
    assert_eq!(
        written.manifest.withheld,
        ["Config/license.json", "Config/admin.txt"]
    );
    let paths: Vec<&str> = written
        .manifest
        .files
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(paths, ["Config/options.json"]);
    // What was written is a whole archive of its own.
    assert_eq!(archive::read(out.as_slice(), None, None).unwrap(), written);

    // Asked for, the secrets Tavern holds now are put in.
    let mut with = Vec::new();
    let license = br#"{"license":"NEWKEY"}"#;
    let given = archive::rewrite(
        old.as_slice(),
        &mut with,
        2,
        None,
        &[("Config/license.json", license)],
        &[],
    )
    .unwrap();
    assert_eq!(given.manifest.withheld, ["Config/admin.txt"]);
    let unpacked = dir.path().join("with");
    archive::read(with.as_slice(), Some(&unpacked), Some(given.limits())).unwrap();
    assert_eq!(
        std::fs::read(unpacked.join("Config/license.json")).unwrap(),
        license
    );
    assert!(!unpacked.join("Config/admin.txt").exists());

    // A damaged input is not copied as if it were whole.
    let mut bad = old.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x5a;
    assert!(archive::rewrite(bad.as_slice(), &mut Vec::new(), 1, None, &[], &[]).is_err());
}

#[test]
fn an_archive_never_unpacks_more_than_recorded() {
    use tar::EntryType::{Directory, Regular};
    let dir = tempfile::tempdir().unwrap();
    let small = archive::Limits {
        bytes: 10,
        files: 1,
    };
    // A file larger than all the bytes recorded: refused by its header.
    let big = vec![0u8; 1_000_000];
    let bytes = crafted(&[("data/big", Regular, &big, None)]);
    let out = dir.path().join("big");
    let err = archive::read(bytes.as_slice(), Some(&out), Some(small)).unwrap_err();
    assert!(
        matches!(&err, ArchiveError::Corrupt { detail } if detail.contains("recorded")),
        "{err:?}"
    );
    assert!(!out.exists());
    // More files than recorded.
    let bytes = crafted(&[
        ("data/a", Regular, b"1", None),
        ("data/b", Regular, b"2", None),
    ]);
    let err = archive::read(bytes.as_slice(), None, Some(small)).unwrap_err();
    assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err:?}");
    // A bomb: 200 MB of zeros hidden in a directory entry, a few hundred
    // kilobytes compressed, refused once its framing allowance is spent.
    let zeros = vec![0u8; 200 * 1024 * 1024];
    let bomb = crafted(&[("data/d", Directory, &zeros, None)]);
    assert!(bomb.len() < 1024 * 1024, "{}", bomb.len());
    let err = archive::read(bomb.as_slice(), None, Some(small)).unwrap_err();
    assert!(
        matches!(&err, ArchiveError::Corrupt { detail } if detail.contains("unpacks to more")),
        "{err:?}"
    );
    // Within its record, the same kind of archive reads.
    let fine = crafted(&[("data/a", Regular, b"1", None)]);
    archive::read(fine.as_slice(), None, Some(small)).unwrap();
}

#[test]
fn a_restore_checks_the_archive_against_its_record_before_unpacking() {
    use tavern_backup::local::{self, Expected, RestoreError};
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    world(&src);
    let file = dir.path().join("w.tar.zst");
    let written = archive::write(&src, std::fs::File::create(&file).unwrap(), 1).unwrap();
    let data = dir.path().join("world/data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("mine"), b"as it was").unwrap();
    // Another archive in its place (same name, other bytes): refused, and
    // nothing was unpacked beside the data.
    let swapped = crafted(&[("data/a", tar::EntryType::Regular, b"x", None)]);
    let other = dir.path().join("other.tar.zst");
    std::fs::write(&other, &swapped).unwrap();
    let expected = Expected {
        size: written.size,
        sha256: &written.sha256,
        limits: written.limits(),
    };
    let err = local::restore_into(&other, &data, expected).unwrap_err();
    assert!(matches!(err, RestoreError::Refused(_)), "{err:?}");
    assert_eq!(std::fs::read(data.join("mine")).unwrap(), b"as it was");
    assert!(!dir.path().join("world/data.restoring").exists());
    // The recorded one is restored.
    local::restore_into(&file, &data, expected).unwrap();
    assert!(data.join("Config/options.json").exists());
    assert!(!data.join("mine").exists());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Whatever an archive's bytes are made into, reading it never panics,
    /// never writes outside its directory, and leaves nothing behind when
    /// it refuses it.
    #[test]
    fn damaged_archives_are_refused_cleanly(
        flips in proptest::collection::vec((0.0f64..1.0, 1u8..=255), 1..4),
        cut in 0.0f64..1.0,
        truncate in proptest::bool::ANY,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        world(&src);
        let mut good = Vec::new();
        let written = archive::write(&src, &mut good, 1).unwrap();
        let mut bytes = good.clone();
        for (at, x) in flips {
            let i = ((bytes.len() - 1) as f64 * at) as usize;
            bytes[i] ^= x;
        }
        if truncate {
            bytes.truncate((bytes.len() as f64 * cut) as usize);
        }
        let out = dir.path().join("sub/out");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        match archive::read(bytes.as_slice(), Some(&out), Some(written.limits())) {
            Ok(read) => proptest::prop_assert_eq!(read.manifest, written.manifest),
            Err(_) => proptest::prop_assert!(!out.exists()),
        }
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        proptest::prop_assert!(names.iter().all(|n| n == "out"), "{names:?}");
    }
}

/// A download may carry the library's packages a world uses: each goes in
/// where the world's link to it was (left out of the archive, as it leads
/// outside), writable, unless the world holds a folder of its own there.
#[test]
fn a_copy_takes_the_library_folders_the_world_links_to() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let library = dir.path().join("library/system/dnd5e/5.1.2");
    std::fs::create_dir_all(library.join("packs")).unwrap();
    std::fs::write(library.join("system.json"), br#"{"id":"dnd5e"}"#).unwrap();
    std::fs::write(library.join("packs/spells.db"), [9u8; 5000]).unwrap();
    for p in [library.join("system.json"), library.join("packs/spells.db")] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
    let other = dir.path().join("library/module/own/1.0");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("module.json"), b"the library's").unwrap();

    let world = dir.path().join("world");
    std::fs::create_dir_all(world.join("Data/systems")).unwrap();
    std::fs::create_dir_all(world.join("Data/modules/own")).unwrap();
    std::fs::write(world.join("Data/modules/own/module.json"), b"the world's").unwrap();
    std::os::unix::fs::symlink(&library, world.join("Data/systems/dnd5e")).unwrap();
    let mut old = Vec::new();
    let made = archive::write(&world, &mut old, 1).unwrap();
    assert_eq!(made.manifest.skipped, ["Data/systems/dnd5e"]);

    let added = [
        archive::Added {
            at: "Data/systems/dnd5e".into(),
            from: library.clone(),
        },
        archive::Added {
            at: "Data/modules/own".into(),
            from: other.clone(),
        },
    ];
    let mut out = Vec::new();
    let copy = archive::rewrite(old.as_slice(), &mut out, 1, None, &[], &added).unwrap();
    assert!(
        copy.manifest.skipped.is_empty(),
        "{:?}",
        copy.manifest.skipped
    );
    let unpacked = dir.path().join("out");
    archive::read(out.as_slice(), Some(&unpacked), Some(copy.limits())).unwrap();
    let spells = unpacked.join("Data/systems/dnd5e/packs/spells.db");
    assert_eq!(std::fs::read(&spells).unwrap(), [9u8; 5000]);
    let mode = std::fs::metadata(&spells).unwrap().permissions().mode();
    assert_eq!(mode & 0o200, 0o200, "{mode:o}");
    assert_eq!(
        std::fs::read(unpacked.join("Data/modules/own/module.json")).unwrap(),
        b"the world's"
    );
}
