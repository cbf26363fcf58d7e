//! Backups kept as snapshots in each world's restic-format repository
//! (`backups.format = "repository"`), through the real binary: taken,
//! deduplicated, downloaded as an archive and as a zip, restored in place
//! and into a new world, forgotten; read by restic itself with the
//! password `tavern backup repo-key` prints; a backup cut off by SIGKILL
//! leaves a repository restic accepts, and the next one completes; the
//! scheduled prune forgets the snapshots no backup records and removes a
//! gone world's repository.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tavern_backup::archive;

use crate::backups::{
    backup_now, contents, data_dir, download_cli, files_of, noise, quiet_server, restore_and_wait,
    stamps, world_with_data,
};
use crate::support::*;

/// restic is here (under `CI=true` it must be).
pub(crate) fn have_restic() -> bool {
    let found = Command::new("restic")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found || std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but restic is not installed (bash .ci/run installs it)"
    );
    if !found {
        eprintln!("skipped: restic is not installed");
    }
    found
}

/// The repositories' password, as an admin on the server reads it.
pub(crate) fn repo_key(server: &Server) -> String {
    let out = server.cli(
        None,
        &[
            "backup",
            "repo-key",
            "--data-dir",
            server.data_dir().to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = text(&out.stdout).trim().to_owned();
    assert_eq!(key.len(), 64, "{key}");
    key
}

/// Runs restic on a world's repository; answers what it printed.
pub(crate) fn restic(server: &Server, password: &str, slug: &str, args: &[&str]) -> String {
    let repo = server.data_dir().join("backups/repositories").join(slug);
    let out = Command::new("restic")
        .args(["--no-cache", "-r", repo.to_str().unwrap()])
        .args(args)
        .env("RESTIC_PASSWORD", password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restic {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

pub(crate) fn snapshots(server: &Server, password: &str, slug: &str) -> Vec<Value> {
    let listed = restic(server, password, slug, &["snapshots", "--json"]);
    serde_json::from_str::<Value>(&listed)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn repository_server() -> Server {
    quiet_server(&[("TAVERN_BACKUPS_FORMAT", "repository")])
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_restore_download_and_are_restic_s_own() {
    if !have_restic() {
        return;
    }
    let server = repository_server();
    let admin = server.api(Some(&server.admin_token));
    world_with_data(&server, &admin, "keep", None).await;
    let data = data_dir(&server, "keep");
    let before = contents(&data);
    let dates = stamps(&data);

    let first = backup_now(&admin, "keep").await;
    assert_eq!(first["format"], "repository", "{first}");
    assert_eq!(first["files"].as_u64(), Some(before.files.len() as u64));
    let bytes = first["bytes"].as_u64().unwrap();
    assert!(first["size"].as_u64().unwrap() > 3_000_000, "{first}");
    // The unchanged world again: next to nothing new is stored.
    let second = backup_now(&admin, "keep").await;
    assert!(
        second["size"].as_u64().unwrap() * 100 <= bytes,
        "the second backup stored more than 1 %: {second}"
    );

    // restic lists both, tagged, checks every byte, and restores the
    // world as it was.
    let password = repo_key(&server);
    let listed = snapshots(&server, &password, "keep");
    assert_eq!(listed.len(), 2, "{listed:?}");
    let first_id = first["sha256"].as_str().unwrap();
    let snap = listed.iter().find(|s| s["id"] == first_id).unwrap();
    let tags: Vec<&str> = snap["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags.contains(&"world:keep"), "{tags:?}");
    assert!(tags.contains(&"kind:manual"), "{tags:?}");
    assert!(
        tags.contains(&format!("backup:{}", first["id"].as_str().unwrap()).as_str()),
        "{tags:?}"
    );
    restic(&server, &password, "keep", &["check", "--read-data"]);
    let by_restic = server.home().join("by-restic");
    restic(
        &server,
        &password,
        "keep",
        &["restore", first_id, "--target", by_restic.to_str().unwrap()],
    );
    assert_eq!(contents(&by_restic.join("data")), before);
    assert_eq!(stamps(&by_restic.join("data")), dates);

    // Downloads: Tavern's archive and the zip, read from the repository.
    let id = first["id"].as_str().unwrap().to_owned();
    let file = server.home().join("keep.tar.zst");
    download_cli(&server, &server.admin_token, &id, &file, &[]);
    let read = archive::read_file(&file, None, None).unwrap();
    assert_eq!(files_of(read.manifest), before);
    let zipped = server.home().join("keep.zip");
    download_cli(&server, &server.admin_token, &id, &zipped, &["--zip"]);
    let zip = std::fs::read(&zipped).unwrap();
    assert!(zip.starts_with(b"PK"));
    assert!(
        zip.windows(b"Data/map.webp".len())
            .any(|w| w == b"Data/map.webp")
    );

    // Wiped, then restored in place: byte for byte, modes and dates.
    std::fs::remove_dir_all(data.join("Data/worlds")).unwrap();
    std::fs::write(data.join("Data/map.webp"), b"garbage").unwrap();
    restore_and_wait(&server, &id, None);
    assert_eq!(contents(&data), before, "the restore is byte for byte");
    assert_eq!(stamps(&data), dates);
    // And into a new world.
    restore_and_wait(&server, &id, Some("copy"));
    assert_eq!(contents(&data_dir(&server, "copy")), before);

    // A deleted backup's snapshot is forgotten.
    let before_delete = snapshots(&server, &password, "keep").len();
    let (s, b) = admin.delete(&format!("/api/v1/backups/{id}")).await;
    assert_eq!(s, 204, "{b}");
    let after = snapshots(&server, &password, "keep");
    assert_eq!(after.len(), before_delete - 1);
    assert!(after.iter().all(|s| s["id"] != first_id));
    // The key printed is the same each time, and its showing is audited.
    assert_eq!(repo_key(&server), password);
    let (_, events) = admin.get("/api/v1/events?limit=200").await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "backup.repository_key_shown"),
        "{events}"
    );
    assert!(
        !events.to_string().contains(&password),
        "the audit log never holds the password"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_cut_off_by_sigkill_leaves_a_repository_restic_accepts() {
    if !have_restic() {
        return;
    }
    let mut server = repository_server();
    let admin = server.api(Some(&server.admin_token));
    world_with_data(&server, &admin, "big", None).await;
    let data = data_dir(&server, "big");
    backup_now(&admin, "big").await;
    for n in 0..6 {
        std::fs::write(
            data.join(format!("Data/video-{n}.webm")),
            noise(40_000_000, n + 7),
        )
        .unwrap();
    }
    let packs = |root: &Path| -> usize {
        std::fs::read_dir(root.join("data"))
            .map(|d| {
                d.flatten()
                    .map(|sub| std::fs::read_dir(sub.path()).map_or(0, |f| f.count()))
                    .sum()
            })
            .unwrap_or(0)
    };
    let repo = server.data_dir().join("backups/repositories/big");
    let packed = packs(&repo);
    let (s, b) = admin
        .post("/api/v1/instances/big/backups", &serde_json::json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    wait_until("the snapshot is being written", || async {
        packs(&repo) > packed
    })
    .await;
    server.kill();
    let password = {
        // Read without the server: the key is in its database.
        repo_key(&server)
    };
    assert_eq!(snapshots(&server, &password, "big").len(), 1);
    restic(&server, &password, "big", &["check", "--read-data"]);

    server.relaunch();
    let admin = server.api(Some(&server.admin_token));
    let (_, b) = admin.get(&format!("/api/v1/backups/{id}")).await;
    assert_eq!(b["status"], "failed", "{b}");
    let done = backup_now(&admin, "big").await;
    assert_eq!(
        done["files"].as_u64(),
        Some(contents(&data).files.len() as u64)
    );
    assert_eq!(snapshots(&server, &password, "big").len(), 2);
    restic(&server, &password, "big", &["check", "--read-data"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn archives_move_into_the_repository_and_restore_from_there() {
    if !have_restic() {
        return;
    }
    let mut server = quiet_server(&[]);
    let admin = server.api(Some(&server.admin_token));
    world_with_data(&server, &admin, "old", None).await;
    let data = data_dir(&server, "old");
    let before = contents(&data);
    let first = backup_now(&admin, "old").await;
    let second = backup_now(&admin, "old").await;
    assert_eq!(first["format"], "archive");
    // Not while new backups would still be archives.
    let (s, b) = admin
        .post("/api/v1/admin/backup-migration", &serde_json::json!({}))
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("not_repository")),
        "{b}"
    );

    server.kill();
    server.set_env("TAVERN_BACKUPS_FORMAT", "repository");
    server.relaunch();
    let admin = server.api(Some(&server.admin_token));
    let out = server.cli(
        Some(&server.admin_token),
        &["backup", "migrate", "--wait", "--json"],
        None,
    );
    let done = ok_json(&out);
    assert_eq!(
        (
            done["state"].as_str(),
            done["total"].as_u64(),
            done["moved"].as_u64()
        ),
        (Some("done"), Some(2), Some(2)),
        "{done}"
    );
    let archives = server.data_dir().join("backups/old");
    assert_eq!(
        std::fs::read_dir(&archives).map_or(0, |d| d.count()),
        0,
        "the moved archives are removed"
    );
    for old in [&first, &second] {
        let id = old["id"].as_str().unwrap();
        let (_, now) = admin.get(&format!("/api/v1/backups/{id}")).await;
        assert_eq!(now["format"], "repository", "{now}");
        assert_eq!(now["created_at"], old["created_at"]);
        assert_eq!(now["files"], old["files"]);
        assert_eq!(now["bytes"], old["bytes"]);
    }
    let password = repo_key(&server);
    let listed = snapshots(&server, &password, "old");
    assert_eq!(listed.len(), 2, "{listed:?}");
    restic(&server, &password, "old", &["check", "--read-data"]);
    // Restored from its new home, as it was.
    std::fs::write(data.join("Data/map.webp"), b"garbage").unwrap();
    let (_, moved) = admin
        .get(&format!(
            "/api/v1/backups/{}",
            first["id"].as_str().unwrap()
        ))
        .await;
    restore_and_wait(&server, moved["id"].as_str().unwrap(), None);
    assert_eq!(contents(&data), before);
    // Nothing is left to move.
    let (s, again) = admin
        .post("/api/v1/admin/backup-migration", &serde_json::json!({}))
        .await;
    assert_eq!((s, again["total"].as_u64()), (202, Some(0)), "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_prune_forgets_snapshots_no_backup_records_and_removes_a_gone_world_s_repository() {
    if !have_restic() {
        return;
    }
    // Pruned every minute.
    let server = quiet_server(&[
        ("TAVERN_BACKUPS_FORMAT", "repository"),
        ("TAVERN_BACKUPS_PRUNE_SCHEDULE", "* * * * *"),
    ]);
    let admin = server.api(Some(&server.admin_token));
    world_with_data(&server, &admin, "kept", None).await;
    let backup = backup_now(&admin, "kept").await;
    let password = repo_key(&server);
    // Beside the backup's snapshot: one Tavern took for a backup it has no
    // record of (cut off between the two), and an admin's own.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("notes.txt"), "kept by hand").unwrap();
    let other = other.path().to_str().unwrap();
    let stray = "backup:0f0e0d0c-0b0a-4908-8706-050403020100";
    restic(
        &server,
        &password,
        "kept",
        &["backup", "--tag", stray, other],
    );
    restic(
        &server,
        &password,
        "kept",
        &["backup", "--tag", "by-hand", other],
    );
    // And the repository of a world that is gone and keeps no backup.
    restic(&server, &password, "ghost", &["init"]);
    let ghost = server.data_dir().join("backups/repositories/ghost");

    // A prune may run at any minute, also amid the lines above: the first
    // after the stray was made forgets it, and one after the ghost was
    // made removes it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
    loop {
        let (_, events) = admin.get("/api/v1/events?limit=200").await;
        let prunes: Vec<&Value> = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "backup.prune" && e["target"] == "repository:kept")
            .collect();
        assert!(
            prunes.iter().all(|e| e["outcome"] == "success"),
            "{prunes:?}"
        );
        let forgot = prunes.iter().any(|e| {
            e["detail"]
                .as_str()
                .unwrap()
                .starts_with("1 snapshots no backup records forgotten")
        });
        if forgot && !ghost.exists() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no prune forgot the stray and removed the ghost within 150 s: {prunes:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let left: Vec<Value> = snapshots(&server, &password, "kept");
    let tags: Vec<&Value> = left.iter().map(|s| &s["tags"]).collect();
    assert_eq!(left.len(), 2, "{tags:?}");
    assert!(left.iter().any(|s| s["id"] == backup["sha256"]), "{tags:?}");
    assert!(
        left.iter()
            .any(|s| s["tags"] == serde_json::json!(["by-hand"])),
        "{tags:?}"
    );
    restic(&server, &password, "kept", &["check", "--read-data"]);
}
