//! Snapshots in restic-format repositories, held to restic itself
//! (Debian's `restic`, 0.14, which reads repository format 2): it lists
//! what Tavern wrote, `restic check --read-data` passes, and `restic
//! restore` gives back the files byte for byte with their modes and times;
//! and Tavern restores, forgets and prunes what it wrote; a prune cut off
//! by SIGKILL leaves a repository restic accepts; a kept key opens only
//! with its password.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use tavern_backup::archive::Limits;
use tavern_backup::repo::{REPOSITORIES, Repo, RepoError, SnapshotFacts};
use tavern_backup::target::Target;

const PASSWORD: &str = "correct horse battery staple";

/// Whether restic is here; under `CI=true` it must be.
fn have_restic() -> bool {
    let found = Command::new("restic")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but restic is not installed (`apt-get install restic`; bash .ci/run does it)"
        );
        eprintln!("skipped: restic is not installed (`apt-get install restic`)");
    }
    found
}

/// Runs restic on `repo` (a directory or `s3:` URL), failing the test
/// with what it said when it fails; answers its standard output.
fn restic(repo: &str, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = Command::new("restic")
        .args(["--no-cache", "-r", repo])
        .args(args)
        .env("RESTIC_PASSWORD", PASSWORD)
        .envs(env.iter().copied())
        .output()
        .expect("run restic");
    assert!(
        out.status.success(),
        "restic {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A small world: nested JSON, a larger binary asset, odd modes and old
/// times, a link inside, and what a snapshot leaves out (Tavern's
/// secrets, a link leading outside, a FIFO).
fn make_world(root: &Path) {
    let data = root.join("Data/worlds/campaign/data");
    std::fs::create_dir_all(&data).unwrap();
    for n in 0..40 {
        std::fs::write(
            data.join(format!("actor-{n}.json")),
            format!("{{\"name\":\"Actor {n}\",\"hp\":{}}}", n * 3),
        )
        .unwrap();
    }
    let assets = root.join("Data/assets");
    std::fs::create_dir_all(&assets).unwrap();
    std::fs::write(assets.join("map.webp"), noise(3 * 1024 * 1024, 7)).unwrap();
    std::fs::write(assets.join("script.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        assets.join("script.sh"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    std::fs::write(assets.join("private.txt"), "mine").unwrap();
    std::fs::set_permissions(
        assets.join("private.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink("map.webp", assets.join("current-map.webp")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", assets.join("outside")).unwrap();
    let config = root.join("Config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("options.json"), "{\"port\":30000}").unwrap();
    std::fs::write(config.join("license.json"), "{\"license\":\"SECRET\"}").unwrap();
    std::fs::write(config.join("admin.txt"), "hash").unwrap();
    nix_fifo(&root.join("Config/pipe"));
    let old = std::time::UNIX_EPOCH + std::time::Duration::new(1_600_000_000, 123_456_789);
    std::fs::File::options()
        .write(true)
        .open(data.join("actor-0.json"))
        .unwrap()
        .set_modified(old)
        .unwrap();
}

/// `len` bytes that do not compress, from `seed`.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn nix_fifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// Every entry below `root` a snapshot keeps: path → (kind, mode, mtime
/// in ns for files, contents or link target).
fn listing(root: &Path) -> BTreeMap<String, (char, u32, Option<i128>, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for e in walk(root) {
        let rel = e.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
        let m = std::fs::symlink_metadata(&e).unwrap();
        let mode = m.permissions().mode() & 0o7777;
        let entry = if m.file_type().is_symlink() {
            let target = std::fs::read_link(&e).unwrap();
            ('l', 0, None, target.to_str().unwrap().as_bytes().to_vec())
        } else if m.is_dir() {
            ('d', mode, None, Vec::new())
        } else if m.is_file() {
            let ns = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
            ('f', mode, Some(ns), std::fs::read(&e).unwrap())
        } else {
            continue;
        };
        out.insert(rel, entry);
    }
    out
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// What a snapshot of `make_world` should hold: all of it but what the
/// rules leave out.
fn expected(root: &Path) -> BTreeMap<String, (char, u32, Option<i128>, Vec<u8>)> {
    let mut want = listing(root);
    for gone in [
        "Config/license.json",
        "Config/admin.txt",
        "Data/assets/outside",
    ] {
        assert!(want.remove(gone).is_some(), "{gone} was made");
    }
    want
}

fn limits(f: &SnapshotFacts) -> Limits {
    Limits {
        files: f.files,
        bytes: f.bytes,
    }
}

fn repo_in(dir: &Path) -> Repo {
    let target = Target::dir(dir).unwrap();
    Repo::new(
        &target,
        "campaign",
        PASSWORD,
        tokio::runtime::Handle::current(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restic_lists_checks_and_restores_what_tavern_wrote() {
    if !have_restic() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let world = tmp.path().join("world");
    make_world(&world);
    let backups = tmp.path().join("backups");
    let repo = repo_in(&backups);
    // As restic keeps them: sorted.
    let tags = vec![
        "kind:manual".to_owned(),
        "live".to_owned(),
        "world:campaign".to_owned(),
    ];
    let when = jiff::Timestamp::from_second(1_700_000_000).unwrap();
    let (w, t) = (world.clone(), tags.clone());
    let facts = tokio::task::spawn_blocking(move || repo.backup(&w, &t, when, false))
        .await
        .unwrap()
        .expect("the backup completes");
    let want = expected(&world);
    let files = want.values().filter(|e| e.0 == 'f').count() as u64;
    assert_eq!(facts.files, files);
    assert_eq!(facts.tags, tags);
    assert_eq!(facts.time, when);

    let dir = backups.join(REPOSITORIES).join("campaign");
    let dir = dir.to_str().unwrap();
    let listed: serde_json::Value =
        serde_json::from_str(&restic(dir, &[], &["snapshots", "--json"])).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], facts.id.as_str());
    assert_eq!(listed[0]["tags"], serde_json::json!(tags));
    assert_eq!(listed[0]["paths"], serde_json::json!(["/data"]));
    assert_eq!(listed[0]["hostname"], "tavern");
    restic(dir, &[], &["check", "--read-data"]);

    let out = tmp.path().join("restic-restore");
    restic(
        dir,
        &[],
        &["restore", &facts.id, "--target", out.to_str().unwrap()],
    );
    assert_eq!(listing(&out.join("data")), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tavern_restores_what_it_wrote_and_refuses_another_record() {
    let tmp = tempfile::tempdir().unwrap();
    let world = tmp.path().join("world");
    make_world(&world);
    let repo = repo_in(&tmp.path().join("backups"));
    let when = jiff::Timestamp::now();
    let (w, dest, wrong) = (
        world.clone(),
        tmp.path().join("restored"),
        tmp.path().join("refused"),
    );
    let (facts, restored, refused, missing) = tokio::task::spawn_blocking(move || {
        let facts = repo.backup(&w, &[], when, false).unwrap();
        let restored = repo.restore(&facts.id, &dest, limits(&facts));
        let mut other = limits(&facts);
        other.bytes += 1;
        let refused = repo.restore(&facts.id, &wrong, other);
        let missing = repo.restore(&"0".repeat(64), &wrong, limits(&facts));
        (facts, restored, refused, missing)
    })
    .await
    .unwrap();
    restored.expect("the restore completes");
    assert_eq!(listing(&tmp.path().join("restored")), expected(&world));
    assert!(facts.files > 40);
    assert!(matches!(refused, Err(RepoError::Corrupt(_))), "{refused:?}");
    assert!(
        !tmp.path().join("refused").exists(),
        "a refused restore leaves nothing"
    );
    assert!(
        matches!(missing, Err(RepoError::NoSnapshot(_))),
        "{missing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_world_adds_little_and_prune_keeps_the_rest_whole() {
    if !have_restic() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let world = tmp.path().join("world");
    make_world(&world);
    let backups = tmp.path().join("backups");
    let repo = repo_in(&backups);
    let w = world.clone();
    let (first, second, third, kept) = tokio::task::spawn_blocking(move || {
        let first = repo.backup(&w, &[], jiff::Timestamp::now(), false).unwrap();
        let second = repo.backup(&w, &[], jiff::Timestamp::now(), false).unwrap();
        std::fs::write(
            w.join("Data/worlds/campaign/data/actor-3.json"),
            "{\"name\":\"Actor 3\",\"hp\":0}",
        )
        .unwrap();
        let third = repo.backup(&w, &[], jiff::Timestamp::now(), false).unwrap();
        repo.forget(&[&first.id, &second.id]).unwrap();
        repo.prune().unwrap();
        let kept = repo.snapshots().unwrap();
        (first, second, third, kept)
    })
    .await
    .unwrap();
    assert!(
        first.added > 3 * 1024 * 1024,
        "the first stores the world: {first:?}"
    );
    assert!(
        second.added * 100 <= first.bytes,
        "an unchanged world adds at most 1 %: {second:?}"
    );
    assert!(
        third.added * 100 <= 3 * first.bytes,
        "a small change adds little: {third:?}"
    );
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].id, third.id);
    let dir = backups.join(REPOSITORIES).join("campaign");
    restic(dir.to_str().unwrap(), &[], &["check", "--read-data"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_key_opens_only_with_its_password_and_a_remade_repository_opens_again() {
    if !have_restic() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let world = tmp.path().join("world");
    make_world(&world);
    let backups = tmp.path().join("backups");
    let dir = backups.join(REPOSITORIES).join("campaign");
    let (b, w, d) = (backups.clone(), world.clone(), dir.clone());
    tokio::task::spawn_blocking(move || {
        let repo = repo_in(&b);
        repo.backup(&w, &[], jiff::Timestamp::now(), false).unwrap();
        // Opened once with the password: its key is kept, and the same
        // repository with another password is still refused.
        let wrong = Repo::new(
            &Target::dir(&b).unwrap(),
            "campaign",
            "not the password",
            tokio::runtime::Handle::current(),
        );
        assert!(wrong.snapshots().is_err(), "a wrong password opens nothing");
        assert_eq!(repo.snapshots().unwrap().len(), 1);
        // Made again by restic with the same password (a new master key):
        // the kept key no longer opens it, the password does.
        std::fs::remove_dir_all(&d).unwrap();
        restic(d.to_str().unwrap(), &[], &["init"]);
        assert!(repo.snapshots().unwrap().is_empty());
        let again = repo.backup(&w, &[], jiff::Timestamp::now(), false).unwrap();
        assert_eq!(repo.snapshots().unwrap()[0].id, again.id);
    })
    .await
    .unwrap();
    restic(dir.to_str().unwrap(), &[], &["check", "--read-data"]);
    let target = Target::dir(&backups).unwrap();
    assert_eq!(target.children(REPOSITORIES).await.unwrap(), ["campaign"]);
    assert!(target.children("nothing-here").await.unwrap().is_empty());
}

/// Set for the child process the SIGKILL test below starts: the backup
/// target whose repository the child prunes.
const PRUNE_CHILD: &str = "TAVERN_TEST_PRUNE_TARGET";

/// Not a test of its own: the SIGKILL test runs it in a child process and
/// kills it mid-prune.
#[test]
#[ignore = "a child process of an_interrupted_prune_leaves_a_repository_restic_accepts"]
fn prune_in_a_child_process() {
    let dir = std::env::var(PRUNE_CHILD).expect("run by the SIGKILL test");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let target = Target::dir(Path::new(&dir)).unwrap();
    Repo::new(&target, "campaign", PASSWORD, runtime.handle().clone())
        .prune()
        .expect("the prune completes");
}

/// Copies the directory tree `from` to `to`.
fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_prune_leaves_a_repository_restic_accepts() {
    if !have_restic() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // A prune with work to do: the first snapshot forgotten, half of its
    // files gone from the one kept, so packs are marked and the index is
    // written again. (rustic repacks at most 10 % of a repository per
    // prune, more than this small one's partly used pack.)
    let world = tmp.path().join("world");
    let assets = world.join("Data/assets");
    std::fs::create_dir_all(&assets).unwrap();
    for n in 0..160 {
        std::fs::write(
            assets.join(format!("tile-{n}.webp")),
            noise(128 * 1024, n + 1),
        )
        .unwrap();
    }
    let template = tmp.path().join("template");
    let w = world.clone();
    let repo_dir = template.clone();
    let kept = tokio::task::spawn_blocking(move || {
        let repo = repo_in(&repo_dir);
        let first = repo.backup(&w, &[], jiff::Timestamp::now(), false).unwrap();
        for n in (0..160).step_by(2) {
            std::fs::remove_file(w.join(format!("Data/assets/tile-{n}.webp"))).unwrap();
        }
        let kept = repo.backup(&w, &[], jiff::Timestamp::now(), false).unwrap();
        repo.forget(&[&first.id]).unwrap();
        kept
    })
    .await
    .unwrap();
    let want = listing(&world);

    // The child's prune run whole first, to know how long one takes.
    let child = |target: &Path| {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "prune_in_a_child_process",
                "--nocapture",
            ])
            .env(PRUNE_CHILD, target)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let whole = tmp.path().join("whole");
    copy_tree(&template, &whole);
    let started = std::time::Instant::now();
    let status = child(&whole).wait().unwrap();
    assert!(status.success(), "the child's prune failed: {status}");
    let took = started.elapsed();
    assert_ne!(
        files_below(&whole),
        files_below(&template),
        "the prune changed nothing"
    );

    // Then cut off by SIGKILL: as soon as the prune is seen changing the
    // repository's files (a new index written or being written, an old
    // one removed), and at points through its time. A kill lands mid-prune
    // when the prune had changed the files and had not ended.
    let before = files_below(&template);
    let mut cut = 0;
    let points = [None, None, None, Some(0.5), Some(0.8), Some(0.95)];
    // The prune changes the files in a short window at its end; on a busy
    // machine a look may miss it, so more tries are taken (each checked
    // the same way) until one kill has landed inside it.
    let tries = points.into_iter().chain(std::iter::repeat_n(None, 14));
    for (n, share) in tries.enumerate() {
        if n >= points.len() && cut >= 1 {
            break;
        }
        let target = tmp.path().join(format!("cut-{n}"));
        copy_tree(&template, &target);
        let mut process = child(&target);
        let started = std::time::Instant::now();
        loop {
            if process.try_wait().unwrap().is_some() {
                break;
            }
            let changed = files_below(&target) != before;
            let due = share.map_or(changed, |s| started.elapsed() >= took.mul_f64(s));
            if due || started.elapsed() > took * 10 {
                process.kill().unwrap(); // SIGKILL
                cut += usize::from(changed);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        process.wait().unwrap();
        let dir = target.join(REPOSITORIES).join("campaign");
        restic(dir.to_str().unwrap(), &[], &["check", "--read-data"]);
        // The next prune completes, and the snapshot kept is whole.
        let (t, dest) = (target.clone(), tmp.path().join(format!("restored-{n}")));
        let kept = kept.clone();
        tokio::task::spawn_blocking(move || {
            let repo = repo_in(&t);
            repo.prune().expect("the next prune completes");
            repo.restore(&kept.id, &dest, limits(&kept))
                .expect("the kept snapshot restores");
        })
        .await
        .unwrap();
        restic(dir.to_str().unwrap(), &[], &["check", "--read-data"]);
        assert_eq!(listing(&tmp.path().join(format!("restored-{n}"))), want);
    }
    assert!(
        cut >= 1,
        "no kill landed while the prune was changing the repository (a whole prune took {took:?})"
    );
}

/// The files below `root`, by path relative to it.
fn files_below(root: &Path) -> std::collections::BTreeSet<std::path::PathBuf> {
    walk(root)
        .into_iter()
        .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
        .collect()
}

/// Makes `bucket` on the S3-compatible server at `endpoint` (moto, which
/// takes unsigned requests).
#[cfg(feature = "s3")]
fn make_bucket(endpoint: &str, bucket: &str) {
    use std::io::{Read, Write};
    let host = endpoint.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    write!(
        conn,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_on_s3_is_restic_s_too() {
    use tavern_backup::target::S3Settings;
    if !have_restic() {
        return;
    }
    let Some(moto) = tavern_dns::testing::moto::Moto::start() else {
        return;
    };
    make_bucket(&moto.endpoint, "tavern");
    let settings = S3Settings {
        endpoint: Some(moto.endpoint.clone()),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
    };
    let target = Target::s3("s3://tavern/community", &settings).unwrap();
    let repo = Repo::new(
        &target,
        "campaign",
        PASSWORD,
        tokio::runtime::Handle::current(),
    );
    assert_eq!(
        repo.location(),
        "s3://tavern/community/repositories/campaign"
    );
    let tmp = tempfile::tempdir().unwrap();
    let world = tmp.path().join("world");
    make_world(&world);
    let (w, dest) = (world.clone(), tmp.path().join("restored"));
    let (facts, restored) = tokio::task::spawn_blocking(move || {
        let facts = repo
            .backup(
                &w,
                &["kind:scheduled".into()],
                jiff::Timestamp::now(),
                false,
            )
            .expect("the backup completes");
        // The second opens the repository the first made.
        let again = repo
            .backup(&w, &[], jiff::Timestamp::now(), false)
            .expect("the second backup completes");
        assert!(again.added * 100 <= again.bytes, "{again:?}");
        let restored = repo.restore(&facts.id, &dest, limits(&facts));
        (facts, restored)
    })
    .await
    .unwrap();
    restored.expect("the restore completes");
    assert_eq!(listing(&tmp.path().join("restored")), expected(&world));
    // The worlds' repositories are found again by listing.
    assert_eq!(target.children(REPOSITORIES).await.unwrap(), ["campaign"]);
    assert!(target.children("nothing-here").await.unwrap().is_empty());

    let url = format!(
        "s3:{}/tavern/community/repositories/campaign",
        moto.endpoint
    );
    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ];
    let listed: serde_json::Value =
        serde_json::from_str(&restic(&url, &env, &["snapshots", "--json"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(listed[0]["id"] == facts.id.as_str() || listed[1]["id"] == facts.id.as_str());
    restic(&url, &env, &["check", "--read-data"]);
}
