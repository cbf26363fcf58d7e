//! The package library's benchmark, run on demand (`bash bench/packages.sh`
//! or `cargo bench -p tavern-runtime --bench packages`): disk used by 30
//! worlds that each use the same 20 library packages (links into the
//! library, against a copy in each world), and the time linking a world's
//! 50 packages adds to its start (the first start, and every later one).
//! `WORLDS`, `PACKAGES`, `PACKAGE_MB`, `LINKED` and `RUNS` change the sizes.

use std::path::Path;
use std::time::{Duration, Instant};

use tavern_foundry::manifest::PackageKind;
use tavern_runtime::packages::{PackageLink, link_packages};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Bytes on disk below `dir` (allocated blocks; links count as links,
/// never as what they point at).
fn disk_used(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        total += meta.blocks() * 512;
        if meta.is_dir() {
            total += disk_used(&e.path());
        }
    }
    total
}

/// A library of `count` modules (`mb` MiB each, in files of 256 KiB and a
/// manifest) laid out as Tavern keeps it; answers the links to them.
fn library(root: &Path, count: usize, mb: usize) -> Vec<PackageLink> {
    let mut out = Vec::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for n in 0..count {
        let p = PackageLink {
            kind: if n == 0 {
                PackageKind::System
            } else {
                PackageKind::Module
            },
            id: format!("package-{n:02}"),
            version: "1.0.0".into(),
        };
        let dir = root.join(p.rel_path().unwrap());
        std::fs::create_dir_all(dir.join("assets")).unwrap();
        std::fs::write(
            dir.join(p.kind.file_name()),
            format!(r#"{{"id":"{}","version":"1.0.0"}}"#, p.id),
        )
        .unwrap();
        for f in 0..mb * 4 {
            let bytes: Vec<u8> = (0..256 * 1024)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            std::fs::write(dir.join(format!("assets/{f}.webp")), bytes).unwrap();
        }
        out.push(p);
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let worlds = env("WORLDS", 30);
    let packages = env("PACKAGES", 20);
    let package_mb = env("PACKAGE_MB", 5);
    let linked = env("LINKED", 50);
    let runs = env("RUNS", 21);
    let tmp = tempfile::tempdir().unwrap();

    // Disk: every world uses every package of the library.
    let lib = tmp.path().join("library");
    let wanted = library(&lib, packages, package_mb);
    let library_bytes = disk_used(&lib);
    let all = tmp.path().join("worlds");
    for w in 0..worlds {
        let data = all.join(format!("world-{w:02}"));
        std::fs::create_dir_all(&data).unwrap();
        let done = link_packages(&data, &wanted, &lib, &lib).unwrap();
        assert_eq!(done.linked.len(), packages);
    }
    let worlds_bytes = disk_used(&all);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("{worlds} worlds, each using the same {packages} packages of {package_mb} MiB:");
    println!("| | MiB on disk |");
    println!("|---|---|");
    println!("| the library | {:.1} |", mib(library_bytes));
    println!("| the {worlds} worlds' links | {:.2} |", mib(worlds_bytes));
    println!(
        "| library + worlds | {:.1} ({:.3}× the library) |",
        mib(library_bytes + worlds_bytes),
        (library_bytes + worlds_bytes) as f64 / library_bytes as f64
    );
    println!(
        "| a copy in each world (what the links spare) | {:.1} ({worlds}× the library) |",
        mib(library_bytes * worlds as u64)
    );

    // Time: linking `linked` packages, as a start does.
    let lib50 = tmp.path().join("library-50");
    let wanted50 = library(&lib50, linked, 0);
    let mut first = Vec::new();
    let mut again = Vec::new();
    for r in 0..runs {
        let data = tmp.path().join(format!("start-{r}"));
        std::fs::create_dir_all(&data).unwrap();
        let t = Instant::now();
        link_packages(&data, &wanted50, &lib50, &lib50).unwrap();
        first.push(t.elapsed());
        let t = Instant::now();
        link_packages(&data, &wanted50, &lib50, &lib50).unwrap();
        again.push(t.elapsed());
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!();
    println!("Linking {linked} packages into a world's Data/ (median of {runs}):");
    println!("| start | ms | of the 100 ms budget |");
    println!("|---|---|---|");
    for (what, d) in [
        ("the first (links made)", median(first)),
        ("every later one (links checked)", median(again)),
    ] {
        println!("| {what} | {:.2} | {:.1} % |", ms(d), ms(d));
    }
}
