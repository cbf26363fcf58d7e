//! The backup benchmark, run on demand (`bash bench/backup.sh` or `cargo
//! bench -p tavern-backup`): archives a generated world (thousands of small
//! JSON files and some large images) with Tavern's archiver (tar + zstd on
//! every core, with a manifest and a verifying read-back) and with
//! `tar czf`, and prints throughput, size and the Tavern / tar ratios.
//! `FILES`, `IMAGES` and `IMAGE_MB` size the world; `RUNS` repeats.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A world like a busy Foundry one: scenes, actors and journal entries as
/// small JSON files in many folders, and large images (already compressed,
/// so they do not shrink).
fn generate(root: &Path, files: usize, images: usize, image_mb: usize) -> u64 {
    let mut total = 0u64;
    for n in 0..files {
        let dir = root.join(format!("Data/worlds/campaign/data/pack-{:03}", n % 200));
        std::fs::create_dir_all(&dir).unwrap();
        let body = format!(
            r#"{{"_id":"{n:016x}","name":"Entry {n}","type":"npc","system":{{"hp":{{"value":{},"max":{}}},"notes":"{}"}},"flags":{{}},"sort":{n}}}"#,
            n % 97,
            n % 113,
            "the party rests at the inn and hears rumours of the dragon ".repeat(1 + n % 30)
        );
        total += body.len() as u64;
        std::fs::write(dir.join(format!("{n}.json")), body).unwrap();
    }
    let images_dir = root.join("Data/assets/maps");
    std::fs::create_dir_all(&images_dir).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for n in 0..images {
        let bytes: Vec<u8> = (0..image_mb * 1024 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        total += bytes.len() as u64;
        std::fs::write(images_dir.join(format!("map-{n}.webp")), bytes).unwrap();
    }
    total
}

fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut out = None;
    let mut fastest = Duration::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        fastest = fastest.min(t.elapsed());
        out = Some(r);
    }
    (fastest, out.expect("at least one run"))
}

fn main() {
    let (files, images, image_mb, runs) = (
        env("FILES", 5000),
        env("IMAGES", 20),
        env("IMAGE_MB", 4),
        env("RUNS", 3),
    );
    let work = tempfile::tempdir().unwrap();
    let world = work.path().join("world");
    let bytes = generate(&world, files, images, image_mb);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let mb = bytes as f64 / 1e6;
    println!(
        "world: {files} JSON files and {images} images of {image_mb} MiB, {mb:.1} MB; {threads} threads; best of {runs}"
    );

    let ours = work.path().join("ours.tar.zst");
    let (write_time, summary) = best(runs, || {
        let file = std::fs::File::create(&ours).unwrap();
        tavern_backup::archive::write(&world, std::io::BufWriter::new(file), threads).unwrap()
    });
    let (verify_time, _) = best(runs, || {
        tavern_backup::archive::read_file(&ours, None, None).unwrap()
    });
    let theirs = work.path().join("theirs.tar.gz");
    let (tar_time, ()) = best(runs, || {
        let status = Command::new("tar")
            .arg("czf")
            .arg(&theirs)
            .arg("-C")
            .arg(&world)
            .arg(".")
            .status()
            .expect("tar runs");
        assert!(status.success());
    });
    let tar_size = std::fs::metadata(&theirs).unwrap().len();
    let rate = |d: Duration| mb / d.as_secs_f64();
    println!("| archiver | seconds | MB/s | archive MB | of the data |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, d: Duration, size: u64| {
        println!(
            "| {name} | {:.2} | {:.0} | {:.1} | {:.0} % |",
            d.as_secs_f64(),
            rate(d),
            size as f64 / 1e6,
            100.0 * size as f64 / bytes as f64
        );
    };
    row("tavern (write)", write_time, summary.size);
    row(
        "tavern (write + verify)",
        write_time + verify_time,
        summary.size,
    );
    row("tar czf", tar_time, tar_size);
    println!(
        "tavern / tar czf: throughput {:.2}× (with verification {:.2}×), size {:.2}×",
        tar_time.as_secs_f64() / write_time.as_secs_f64(),
        tar_time.as_secs_f64() / (write_time + verify_time).as_secs_f64(),
        summary.size as f64 / tar_size as f64
    );
    repository(
        &world,
        work.path(),
        bytes,
        files,
        runs,
        write_time,
        tar_time,
    );
}

/// The same world as snapshots in a repository (`backups.format =
/// "repository"`): the first backup against the archiver and `tar czf`,
/// then the unchanged world again, then after 1 % of its files changed,
/// and a restore; with the issue's goals beside them.
fn repository(
    world: &Path,
    work: &Path,
    bytes: u64,
    files: usize,
    runs: usize,
    archive_time: Duration,
    tar_time: Duration,
) {
    use tavern_backup::archive::Limits;
    use tavern_backup::repo::Repo;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mb = bytes as f64 / 1e6;
    let now = jiff::Timestamp::now;
    let mut rows = Vec::new();
    let (mut first_t, mut second_t, mut changed_t, mut restore_t) =
        (Duration::MAX, Duration::MAX, Duration::MAX, Duration::MAX);
    let (mut first_a, mut second_a, mut changed_a) = (0, 0, 0);
    for run in 0..runs {
        // Each run from an empty repository and the world as generated.
        let target = tavern_backup::target::Target::dir(&work.join(format!("repo-{run}"))).unwrap();
        let repo = Repo::new(&target, "bench", "bench password", runtime.handle().clone());
        let t = Instant::now();
        let first = repo.backup(world, &[], now(), false).unwrap();
        first_t = first_t.min(t.elapsed());
        first_a = first.added;
        let t = Instant::now();
        let second = repo.backup(world, &[], now(), false).unwrap();
        second_t = second_t.min(t.elapsed());
        second_a = second.added;
        // 1 % of the files (the small JSON ones) rewritten.
        let changed: Vec<_> = (0..files.div_ceil(100)).collect();
        for n in &changed {
            let path = world.join(format!(
                "Data/worlds/campaign/data/pack-{:03}/{n}.json",
                n % 200
            ));
            let mut body = std::fs::read(&path).unwrap();
            body.extend_from_slice(format!(" edited in run {run}").as_bytes());
            std::fs::write(&path, body).unwrap();
        }
        let t = Instant::now();
        let third = repo.backup(world, &[], now(), false).unwrap();
        changed_t = changed_t.min(t.elapsed());
        changed_a = third.added;
        let dest = work.join(format!("restored-{run}"));
        let t = Instant::now();
        repo.restore(
            &third.id,
            &dest,
            Limits {
                bytes: third.bytes,
                files: third.files,
            },
        )
        .unwrap();
        restore_t = restore_t.min(t.elapsed());
        let _ = std::fs::remove_dir_all(&dest);
    }
    let pct = |a: u64| 100.0 * a as f64 / bytes as f64;
    rows.push(format!(
        "| first backup | {:.2} | {:.0} | {:.1} % stored | {:.2}× the archiver's time, {:.2}× tar czf's |",
        first_t.as_secs_f64(),
        mb / first_t.as_secs_f64(),
        pct(first_a),
        first_t.as_secs_f64() / archive_time.as_secs_f64(),
        first_t.as_secs_f64() / tar_time.as_secs_f64(),
    ));
    rows.push(format!(
        "| the unchanged world again | {:.2} | {:.0} | {:.3} % new (goal ≤ 1 %) | {:.0} % of the first's time (goal ≤ 20 %) |",
        second_t.as_secs_f64(),
        mb / second_t.as_secs_f64(),
        pct(second_a),
        100.0 * second_t.as_secs_f64() / first_t.as_secs_f64(),
    ));
    rows.push(format!(
        "| after 1 % of the files changed | {:.2} | {:.0} | {:.3} % new (goal ≤ 3 %) | {:.0} % of the first's time |",
        changed_t.as_secs_f64(),
        mb / changed_t.as_secs_f64(),
        pct(changed_a),
        100.0 * changed_t.as_secs_f64() / first_t.as_secs_f64(),
    ));
    rows.push(format!(
        "| restore | {:.2} | {:.0} | | |",
        restore_t.as_secs_f64(),
        mb / restore_t.as_secs_f64(),
    ));
    println!();
    println!("repository (snapshots, restic's format), best of {runs}:");
    println!("| step | seconds | MB/s | stored | against |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    shared_or_own(world, work, bytes, &runtime);
}

/// What one repository per world costs against one for all: a second
/// world holding the same files (restored into a new world, or imported
/// with the same assets) taken into the first world's repository, and
/// into a repository of its own.
fn shared_or_own(world: &Path, work: &Path, bytes: u64, runtime: &tokio::runtime::Runtime) {
    use tavern_backup::repo::Repo;
    let target = tavern_backup::target::Target::dir(&work.join("shared")).unwrap();
    let now = jiff::Timestamp::now;
    let repo = |name: &str| Repo::new(&target, name, "bench password", runtime.handle().clone());
    repo("first").backup(world, &[], now(), false).unwrap();
    let copy = work.join("copy");
    let status = std::process::Command::new("cp")
        .args(["-a", "--reflink=never"])
        .arg(world)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let shared = repo("first").backup(&copy, &[], now(), true).unwrap();
    let own = repo("second").backup(&copy, &[], now(), true).unwrap();
    let pct = |a: u64| 100.0 * a as f64 / bytes as f64;
    println!();
    println!(
        "a second world with the same files: {:.1} % of its bytes stored in the first world's repository, {:.1} % in its own",
        pct(shared.added),
        pct(own.added)
    );
    let _ = std::fs::remove_dir_all(&copy);
}
