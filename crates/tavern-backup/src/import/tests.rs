//! The reader on real folders and archives of each kind: what it takes,
//! what it refuses, and that a refusal leaves nothing behind.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

const LIMITS: Limits = Limits {
    bytes: 1 << 30,
    files: 10_000,
};

/// A felddy volume: its data, its config, its logs and its cache.
fn felddy(root: &Path) {
    let put = |rel: &str, body: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    put(
        "Config/options.json",
        br#"{"port":30000,"dataPath":"/data"}"#,
    );
    put("Config/admin.txt", b"hash");
    put(
        "Config/license.json",
        br#"{"license":"ABCDABCDABCDABCDABCDABCD","signature":"s"}"#,
    );
    put(
        "Data/worlds/keep/world.json",
        br#"{"id":"keep","title":"Keep","system":"dnd5e","coreVersion":"12.331"}"#,
    );
    put("Data/worlds/keep/data/actors/000005.ldb", &[7u8; 3000]);
    put("Data/worlds/keep/data/actors/LOCK", b"");
    put(
        "Data/systems/dnd5e/system.json",
        br#"{"id":"dnd5e","version":"4.0.0"}"#,
    );
    put("Data/maps/cave.webp", &[1u8; 5000]);
    put("Logs/debug.log", b"old");
    put("container_cache/foundryvtt-12.331.zip", b"zip");
    std::os::unix::fs::symlink("cave.webp", root.join("Data/maps/alias.webp")).unwrap();
}

/// Every file below `root`, `/`-separated, with its contents.
fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, Vec<u8>)>) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let p = dir.join(&n);
            let r = format!("{rel}{}", n.to_str().unwrap());
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                walk(&p, &format!("{r}/"), out);
            } else if m.file_type().is_symlink() {
                out.push((
                    r,
                    std::fs::read_link(&p)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .as_bytes()
                        .to_vec(),
                ));
            } else {
                out.push((r, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out
}

fn tar_of(dir: &Path, prefix: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(prefix, dir).unwrap();
    b.into_inner().unwrap()
}

fn zip_of(dir: &Path, prefix: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for (rel, body) in files(dir) {
        let name = format!("{prefix}{rel}");
        if std::fs::symlink_metadata(dir.join(&rel))
            .unwrap()
            .file_type()
            .is_symlink()
        {
            w.add_symlink(name, std::str::from_utf8(&body).unwrap(), opts)
                .unwrap();
        } else {
            w.start_file(name, opts).unwrap();
            w.write_all(&body).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn a_volume_reads_the_same_as_a_folder_and_as_each_kind_of_archive() {
    let t = tempfile::tempdir().unwrap();
    let vol = t.path().join("vol");
    felddy(&vol);
    let tar = tar_of(&vol, "data");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let sources = [
        (vol.clone(), Format::Folder),
        (
            write(t.path(), "v.zip", &zip_of(&vol, "foundrydata/")),
            Format::Zip,
        ),
        (write(t.path(), "v.tar", &tar), Format::Tar),
        (
            write(t.path(), "v.tgz", &gz.finish().unwrap()),
            Format::TarGz,
        ),
        (
            write(t.path(), "v.tzst", &zstd::encode_all(&tar[..], 3).unwrap()),
            Format::TarZst,
        ),
    ];
    let mut expected = None;
    for (i, (source, format)) in sources.iter().enumerate() {
        assert_eq!(format_of(source).unwrap(), *format);
        let layout = survey(source, LIMITS).unwrap();
        assert_eq!(layout.worlds[0].id, "keep");
        assert_eq!(layout.systems[0].id, "dnd5e");
        assert!(
            layout
                .license
                .as_deref()
                .unwrap()
                .starts_with(br#"{"license""#)
        );
        assert_eq!(layout.assets_bytes, 5000, "{format:?}");
        let into = t.path().join(format!("into{i}"));
        assert_eq!(
            extract(source, &layout, &into, LIMITS).unwrap(),
            5,
            "{format:?}"
        );
        let got = files(&into);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"Data/maps/cave.webp"), "{names:?}");
        assert!(names.contains(&"Data/maps/alias.webp"), "{names:?}");
        assert!(
            !names.iter().any(|n| n.starts_with("Config")
                || n.starts_with("Logs")
                || n.starts_with("container_cache")),
            "{names:?}"
        );
        match &expected {
            None => expected = Some(got),
            Some(e) => assert_eq!(&got, e, "{format:?}"),
        }
    }
}

/// A tar whose one entry has `name` as it is written, unchecked.
fn raw_tar(name: &str, kind: tar::EntryType, link: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            old.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(kind);
    h.set_size(body.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(body);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[test]
fn unsafe_entries_are_refused_with_their_reason_and_leave_nothing() {
    let t = tempfile::tempdir().unwrap();
    let world = |extra: Vec<u8>| {
        let mut base = raw_tar(
            "w/world.json",
            tar::EntryType::Regular,
            None,
            br#"{"id":"w"}"#,
        );
        base.truncate(base.len() - 1024);
        base.extend(extra);
        base
    };
    let cases = [
        (
            "climb",
            raw_tar("../etc/passwd", tar::EntryType::Regular, None, b"x"),
            "climbs out",
        ),
        (
            "abs",
            raw_tar("/etc/passwd", tar::EntryType::Regular, None, b"x"),
            "absolute",
        ),
        (
            "link",
            raw_tar("w/out", tar::EntryType::Symlink, Some("../../../etc"), b""),
            "leads out",
        ),
        (
            "hard",
            raw_tar("w/h", tar::EntryType::Link, Some("w/world.json"), b""),
            "hard link",
        ),
        (
            "dev",
            raw_tar("w/null", tar::EntryType::Char, None, b""),
            "not a file",
        ),
        (
            "twice",
            world(raw_tar(
                "w/world.json",
                tar::EntryType::Regular,
                None,
                b"{}",
            )),
            "twice",
        ),
    ];
    for (name, bytes, why) in cases {
        let source = write(t.path(), &format!("{name}.tar"), &bytes);
        let err = scan(&source, LIMITS).unwrap_err().to_string();
        assert!(err.contains(why), "{name}: {err}");
        let into = t.path().join(format!("{name}-into"));
        let layout = layout::Layout {
            shape: layout::Shape::World {
                root: "w".into(),
                id: "w".into(),
            },
            worlds: vec![],
            systems: vec![],
            modules: vec![],
            assets_bytes: 0,
            files: 0,
            bytes: 0,
            left_out: vec![],
            license: None,
            notes: vec![],
        };
        assert!(extract(&source, &layout, &into, LIMITS).is_err(), "{name}");
        assert!(!into.exists(), "{name} left {into:?} behind");
    }
}

#[test]
fn archives_that_unpack_to_more_than_declared_or_allowed_are_refused() {
    let t = tempfile::tempdir().unwrap();
    // A zip whose entry says it is 10 bytes and holds 100 000.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("w/world.json", zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(br#"{"id":"w"}"#).unwrap();
    w.start_file("w/big", zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(&vec![0u8; 100_000]).unwrap();
    let mut bytes = w.finish().unwrap().into_inner();
    for sig in [&b"PK\x03\x04"[..], &b"PK\x01\x02"[..]] {
        let offset = if sig[2] == 3 { 22 } else { 24 };
        let at: Vec<usize> = bytes
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == sig)
            .map(|(i, _)| i)
            .collect();
        let last = *at.last().unwrap();
        bytes[last + offset..last + offset + 4].copy_from_slice(&10u32.to_le_bytes());
    }
    let bomb = write(t.path(), "bomb.zip", &bytes);
    let layout = survey(&bomb, LIMITS).unwrap();
    let into = t.path().join("into");
    assert!(extract(&bomb, &layout, &into, LIMITS).is_err());
    assert!(!into.exists());

    // A tar.zst of more than the limit, and more files than allowed.
    let tar = raw_tar(
        "w/world.json",
        tar::EntryType::Regular,
        None,
        &vec![b' '; 50_000],
    );
    let big = write(
        t.path(),
        "big.tzst",
        &zstd::encode_all(&tar[..], 19).unwrap(),
    );
    let small = Limits {
        bytes: 10_000,
        files: 10,
    };
    assert!(matches!(scan(&big, small), Err(ImportError::TooLarge(_))));
    let few = Limits {
        bytes: 1 << 20,
        files: 0,
    };
    assert!(matches!(scan(&big, few), Err(ImportError::TooLarge(_))));

    let junk = write(t.path(), "junk.bin", b"not an archive at all");
    assert!(matches!(format_of(&junk), Err(ImportError::NotAnArchive)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever bytes come, reading them answers an error or a scan, and
    /// never panics.
    #[test]
    fn any_bytes_are_scanned_or_refused(prefix in prop_oneof![
        Just(b"PK\x03\x04".to_vec()), Just(vec![0x1f, 0x8b]), Just(vec![0x28, 0xb5, 0x2f, 0xfd]), Just(Vec::new()),
    ], rest in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let t = tempfile::tempdir().unwrap();
        let mut bytes = prefix;
        bytes.extend(rest);
        let p = write(t.path(), "x", &bytes);
        let _ = scan(&p, LIMITS);
    }

    /// Any path in a tar is taken only as a plain relative path.
    #[test]
    fn tar_paths_are_plain_or_refused(name in "[a-z./\\\\]{1,40}") {
        let t = tempfile::tempdir().unwrap();
        let p = write(t.path(), "x.tar", &raw_tar(&name, tar::EntryType::Regular, None, b"x"));
        if let Ok(found) = scan(&p, LIMITS) {
            for e in found.entries {
                prop_assert!(!e.path.starts_with('/'));
                prop_assert!(!e.path.split('/').any(|c| c == ".." || c == "." || c.is_empty()), "{}", e.path);
            }
        }
    }
}
