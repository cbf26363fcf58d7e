//! Backups through the real binary: backup, wipe and restore give the same
//! bytes; downloads (CLI with a progress bar, signed links) are the
//! archive; damage is caught before anything is replaced; nobody else sees a
//! game master's backups; retention keeps what its policy says; destroy
//! leaves a last backup; a SIGKILL mid-backup leaves nothing half-written.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tavern_backup::archive::{self, Manifest};

use crate::support::*;

/// What a directory holds, file by file (paths, sizes, SHA-256) and link
/// by link, but the files Tavern writes from its secrets when a world
/// starts (`archive::WITHHELD`): equal manifests mean byte-identical trees
/// but for those.
pub(crate) fn contents(dir: &Path) -> Manifest {
    files_of(archive::write(dir, std::io::sink(), 1).unwrap().manifest)
}

/// The mode and modification time (to the second) of every file and
/// directory below `dir`, but the secrets Tavern writes itself.
pub(crate) fn stamps(dir: &Path) -> std::collections::BTreeMap<String, (u32, i64)> {
    use std::os::unix::fs::MetadataExt;
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, (u32, i64)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if m.file_type().is_symlink() || archive::WITHHELD.contains(&rel.as_str()) {
                continue;
            }
            out.insert(rel, (m.mode() & 0o7777, m.mtime()));
            if m.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A manifest without its list of withheld secrets.
pub(crate) fn files_of(manifest: Manifest) -> Manifest {
    Manifest {
        withheld: Vec::new(),
        ..manifest
    }
}

/// A server that takes no backup when a world stops (the tests count
/// backups), with more settings from `env`.
pub(crate) fn quiet_server(env: &[(&str, &str)]) -> Server {
    let mut all = vec![("TAVERN_BACKUPS_AFTER_STOP", "false")];
    all.extend_from_slice(env);
    Server::start_with_env(&[], &all)
}

pub(crate) fn data_dir(server: &Server, slug: &str) -> PathBuf {
    server.data_dir().join("instances").join(slug).join("data")
}

/// Bytes that do not compress (xorshift), so archives have real size.
pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A world of `owner`'s (made by the admin) that has run once, so it has
/// data, and is stopped again; some files of our own are added.
pub(crate) async fn world_with_data(server: &Server, admin: &Api, slug: &str, owner: Option<&str>) {
    add_key(admin, slug, &key_for(slug)).await;
    create_world(
        admin,
        &json!({"slug": slug, "release": "stub", "owner": owner}),
    )
    .await;
    let (s, b) = admin
        .post(&format!("/api/v1/instances/{slug}/start"), &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(admin, slug, "running").await;
    let (s, b) = admin
        .post(&format!("/api/v1/instances/{slug}/stop"), &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(admin, slug, "stopped").await;
    let data = data_dir(server, slug);
    let scenes = data.join("Data/worlds/campaign/data");
    std::fs::create_dir_all(&scenes).unwrap();
    for n in 0..40 {
        std::fs::write(
            scenes.join(format!("scene-{n}.json")),
            format!(r#"{{"name":"Scene {n}","walls":[{n},{n}]}}"#),
        )
        .unwrap();
    }
    std::fs::write(
        data.join("Data/map.webp"),
        noise(3_000_000, slug.len() as u64),
    )
    .unwrap();
}

/// Waits until the backup a stop makes (`backups.after_stop`, on unless a
/// test turns it off), which begins once the world is stopped, is done: a
/// backup asked for before then is refused as one in progress.
pub(crate) async fn wait_after_stop_backup(api: &Api, slug: &str) {
    wait_until("the backup after the stop is done", || async {
        let (_, list) = api.get(&format!("/api/v1/instances/{slug}/backups")).await;
        kinds(&list)
            .iter()
            .any(|(kind, status)| kind == "after_stop" && status != "in_progress")
    })
    .await;
}

/// Polls a backup until `done` says its JSON is final (at most 60 s).
pub(crate) async fn wait_backup(api: &Api, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (s, b) = api.get(&format!("/api/v1/backups/{id}")).await;
        assert_eq!(s, 200, "{b}");
        if done(&b) {
            return b;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backup {id} never got done: {b}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Restores a backup through the CLI (into `to`, or its own world) and
/// waits until the restore is done.
pub(crate) fn restore_and_wait(server: &Server, id: &str, to: Option<&str>) {
    let mut args = vec!["backup", "restore", id, "--wait"];
    if let Some(to) = to {
        args.extend(["--to", to]);
    }
    let out = server.cli(Some(&server.admin_token), &args, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Downloads backup `id` through the CLI as `token` into `file` (with
/// `extra` options, such as `--zip`), which must work.
pub(crate) fn download_cli(server: &Server, token: &str, id: &str, file: &Path, extra: &[&str]) {
    let mut args = vec!["backup", "download", id, "-o", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = server.cli(Some(token), &args, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Backs a world up by hand and waits until it is complete.
pub(crate) async fn backup_now(api: &Api, slug: &str) -> Value {
    let (s, b) = api
        .post(&format!("/api/v1/instances/{slug}/backups"), &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["status"], "in_progress");
    let id = b["id"].as_str().unwrap().to_owned();
    let b = wait_backup(api, &id, |b| b["status"] != "in_progress").await;
    assert_eq!(b["status"], "complete", "{b}");
    b
}

fn kinds(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["kind"].as_str().unwrap().to_owned(),
                b["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_wipe_and_restore_give_back_the_same_bytes() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    world_with_data(&server, &admin, "keep", None).await;
    // Stopping it made an after-stop backup.
    wait_after_stop_backup(&admin, "keep").await;
    let (_, list) = admin.get("/api/v1/instances/keep/backups").await;
    assert_eq!(kinds(&list), [("after_stop".into(), "complete".into())]);

    // A file from another day, with a mode of its own.
    let dated = data_dir(&server, "keep").join("Data/map.webp");
    std::fs::set_permissions(&dated, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    std::fs::File::open(&dated)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_614_816_000))
        .unwrap();
    let before = contents(&data_dir(&server, "keep"));
    let dates = stamps(&data_dir(&server, "keep"));
    assert!(before.files.len() > 40, "{before:?}");
    // Through the CLI, waiting for it.
    let out = server.cli(
        Some(&server.admin_token),
        &["backup", "create", "keep", "--wait", "--json"],
        None,
    );
    let made = ok_json(&out);
    assert_eq!(
        (made["status"].as_str(), made["live"].as_bool()),
        (Some("complete"), Some(false))
    );
    assert_eq!(made["files"].as_u64(), Some(before.files.len() as u64));
    let id = made["id"].as_str().unwrap().to_owned();

    // The download is a whole archive of the world's data (a copy made as
    // the stored one is read, verified on the way).
    let file = server.home().join("keep.tar.zst");
    download_cli(&server, &server.admin_token, &id, &file, &[]);
    let read = archive::read_file(&file, None, None).unwrap();
    assert_eq!(files_of(read.manifest), before);
    // Not over an existing file.
    let again = server.cli(
        Some(&server.admin_token),
        &["backup", "download", &id, "-o", file.to_str().unwrap()],
        None,
    );
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("exists"),
        "{}",
        text(&again.stderr)
    );

    // Wipe: the world's data is gone or garbage.
    let data = data_dir(&server, "keep");
    std::fs::remove_dir_all(data.join("Data/worlds")).unwrap();
    std::fs::write(data.join("Data/map.webp"), b"garbage").unwrap();
    assert_ne!(contents(&data), before);

    restore_and_wait(&server, &id, None);
    assert_eq!(contents(&data), before, "the restore is byte for byte");
    assert_eq!(stamps(&data), dates, "every file keeps its mode and date");
    // What was there before the restore was kept.
    let (_, list) = admin.get("/api/v1/instances/keep/backups").await;
    assert_eq!(list[0]["kind"], "pre_restore", "{list}");
    assert_eq!(list[0]["status"], "complete", "{list}");
    assert!(
        !server
            .data_dir()
            .join("instances/keep/data.restoring")
            .exists()
    );
    assert!(
        !server
            .data_dir()
            .join("instances/keep/data.replaced")
            .exists()
    );
    // No staging file stays behind.
    let staging = server.data_dir().join("tmp/backups");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_links_download_for_a_while_and_nothing_else() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    world_with_data(&server, &admin, "linked", None).await;
    // A manual backup waits for the one the stop made.
    wait_after_stop_backup(&admin, "linked").await;
    let b = backup_now(&admin, "linked").await;
    let id = b["id"].as_str().unwrap();
    let (s, link) = admin
        .post(&format!("/api/v1/backups/{id}/link"), &json!({}))
        .await;
    assert_eq!(s, 200, "{link}");
    let url = format!("{}{}", server.url, link["url"].as_str().unwrap());
    let http = reqwest::Client::new();
    let got = http.get(&url).send().await.unwrap();
    assert_eq!(got.status(), 200);
    assert!(
        got.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("linked-")
    );
    let bytes = got.bytes().await.unwrap();
    let read = archive::read(bytes.as_ref(), None, None).unwrap();
    assert_eq!(Some(read.manifest.files.len() as u64), b["files"].as_u64());
    // A token for another backup, a changed token, or none at all: refused.
    let other = backup_now(&admin, "linked").await;
    let wrong_id = url.replace(id, other["id"].as_str().unwrap());
    let token = url.rsplit('=').next().unwrap();
    let mut changed = token.as_bytes().to_vec();
    changed[10] = if changed[10] == b'A' { b'B' } else { b'A' };
    let changed = url.replace(token, std::str::from_utf8(&changed).unwrap());
    let bare = format!("{}/api/v1/backups/{id}/download", server.url);
    for u in [wrong_id, changed, bare] {
        let status = http.get(&u).send().await.unwrap().status();
        assert_eq!(status, 401, "{u}");
    }
    // The token is a credential: it is in no log line.
    let log = server.output();
    assert!(log.contains("/download"), "requests are logged");
    assert!(!log.contains(token), "the link's token was logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_archive_is_refused_and_the_world_is_left_as_it_was() {
    let server = quiet_server(&[]);
    let admin = server.api(Some(&server.admin_token));
    world_with_data(&server, &admin, "fragile", None).await;
    let b = backup_now(&admin, "fragile").await;
    let id = b["id"].as_str().unwrap();
    let archive_file = server
        .data_dir()
        .join("backups/fragile")
        .join(format!("{id}.tar.zst"));
    let mut bytes = std::fs::read(&archive_file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&archive_file, bytes).unwrap();
    let data = data_dir(&server, "fragile");
    std::fs::write(data.join("Data/notes.json"), b"{\"after\":true}").unwrap();
    let now = contents(&data);

    let (s, r) = admin
        .post(&format!("/api/v1/backups/{id}/restore"), &json!({}))
        .await;
    assert_eq!(s, 202, "{r}");
    let r = wait_backup(&admin, id, |b| b["restore"]["state"] != "running").await;
    assert_eq!(r["restore"]["state"], "failed", "{r}");
    let why = r["restore"]["error"].as_str().unwrap();
    assert!(why.contains("not the one recorded"), "{why}");
    assert_eq!(contents(&data), now, "a refused restore changed the world");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_game_master_cannot_see_or_touch_a_backup() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("alice", "gm", "alice-password").await;
    admin.create_user("bob", "gm", "bob-password").await;
    world_with_data(&server, &admin, "alices", Some("alice")).await;
    wait_after_stop_backup(&admin, "alices").await;
    let alice = server.api(None).login("alice", "alice-password").await;
    let bob = server.api(None).login("bob", "bob-password").await;
    let b = backup_now(&alice, "alices").await;
    let id = b["id"].as_str().unwrap();

    let (s, mine) = alice.get("/api/v1/backups").await;
    assert_eq!(s, 200);
    assert!(mine.as_array().unwrap().iter().any(|x| x["id"] == *id));
    let (s, theirs) = bob.get("/api/v1/backups").await;
    assert_eq!((s, theirs), (200, json!([])));
    for (method, path) in [
        ("GET", format!("/api/v1/backups/{id}")),
        ("GET", format!("/api/v1/backups/{id}/download")),
        ("POST", format!("/api/v1/backups/{id}/link")),
        ("POST", format!("/api/v1/backups/{id}/restore")),
        ("PATCH", format!("/api/v1/backups/{id}")),
        ("DELETE", format!("/api/v1/backups/{id}")),
        ("GET", "/api/v1/instances/alices/backups".to_owned()),
        ("POST", "/api/v1/instances/alices/backups".to_owned()),
    ] {
        let body = match method {
            "PATCH" => br#"{"locked":true}"#.to_vec(),
            "POST" => b"{}".to_vec(),
            _ => Vec::new(),
        };
        let answer = bob
            .send(method, &path, Some("application/json"), body)
            .await;
        assert_eq!(
            (answer.0, code(&answer)),
            (404, "not_found"),
            "{method} {path}: {}",
            answer.1
        );
    }
    // And the CLI says so too.
    let out = server.cli(
        Some(bob.token()),
        &["backup", "download", id, "-o", "x"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not_found"),
        "{}",
        text(&out.stderr)
    );
    // Alice is throttled; the admin is not.
    let again = alice
        .post("/api/v1/instances/alices/backups", &json!({}))
        .await;
    assert_refused(&again, 409, "backup_throttled");
    backup_now(&admin, "alices").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admins_manual_backup_does_not_hold_up_the_owners_next() {
    let server = quiet_server(&[]);
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("alice", "gm", "alice-password").await;
    world_with_data(&server, &admin, "hers", Some("alice")).await;
    let alice = server.api(None).login("alice", "alice-password").await;
    backup_now(&admin, "hers").await;
    // Her own is taken all the same; then she waits for her next.
    backup_now(&alice, "hers").await;
    let again = alice
        .post("/api/v1/instances/hers/backups", &json!({}))
        .await;
    assert_refused(&again, 409, "backup_throttled");
    let said = again.1["error"]["message"].as_str().unwrap();
    assert!(said.starts_with("you backed hers up by hand at "), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_keeps_the_newest_and_the_locked() {
    let server = quiet_server(&[
        ("TAVERN_BACKUPS_KEEP_LAST", "2"),
        ("TAVERN_BACKUPS_KEEP_DAILY", "0"),
        ("TAVERN_BACKUPS_KEEP_WEEKLY", "0"),
    ]);
    let admin = server.api(Some(&server.admin_token));
    world_with_data(&server, &admin, "kept", None).await;
    let first = backup_now(&admin, "kept").await;
    let first_id = first["id"].as_str().unwrap();
    let out = server.cli(
        Some(&server.admin_token),
        &["backup", "lock", first_id],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut ids = vec![first_id.to_owned()];
    for _ in 0..3 {
        ids.push(
            backup_now(&admin, "kept").await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let (_, list) = admin.get("/api/v1/instances/kept/backups").await;
    let left: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(left, [ids[3].as_str(), ids[2].as_str(), ids[0].as_str()]);
    let files: Vec<_> = std::fs::read_dir(server.data_dir().join("backups/kept"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(!files.contains(&format!("{}.tar.zst", ids[1])));
}

#[tokio::test(flavor = "multi_thread")]
async fn destroying_a_world_keeps_a_last_backup_in_place_of_its_data() {
    let server = quiet_server(&[]);
    let admin = server.api(Some(&server.admin_token));
    world_with_data(&server, &admin, "doomed", None).await;
    let before = contents(&data_dir(&server, "doomed"));
    let (s, b) = admin.delete("/api/v1/instances/doomed").await;
    assert_eq!(s, 202, "{b}");
    wait_until("the world is gone", || async {
        admin.get("/api/v1/instances/doomed").await.0 == 404
    })
    .await;
    assert!(!server.data_dir().join("instances/doomed").exists());
    let archived = std::fs::read_dir(server.data_dir().join("archive"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(archived, 0, "the raw data was archived as well");
    let (_, list) = admin.get("/api/v1/backups").await;
    assert_eq!(kinds(&list), [("pre_destroy".into(), "complete".into())]);
    // It restores into a new world.
    let id = list[0]["id"].as_str().unwrap();
    restore_and_wait(&server, id, Some("reborn"));
    assert_eq!(contents(&data_dir(&server, "reborn")), before);
    let (s, reborn) = admin.get("/api/v1/instances/reborn").await;
    assert_eq!((s, reborn["state"].as_str()), (200, Some("stopped")));
    // The destroyed world's release is not known: the new world gets the
    // newest installed, as any new world does.
    assert_eq!(reborn["release"], "stub", "{reborn}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_cut_off_by_sigkill_is_never_listed_whole() {
    let mut server = quiet_server(&[]);
    let admin = server.api(Some(&server.admin_token));
    world_with_data(&server, &admin, "big", None).await;
    // Enough incompressible data that the backup takes a while.
    let data = data_dir(&server, "big");
    for n in 0..6 {
        std::fs::write(
            data.join(format!("Data/video-{n}.webm")),
            noise(40_000_000, n),
        )
        .unwrap();
    }
    let (s, b) = admin
        .post("/api/v1/instances/big/backups", &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    let staging = server.data_dir().join("tmp/backups");
    wait_until("the archive is being written", || async {
        std::fs::read_dir(&staging)
            .map(|mut d| d.any(|e| e.is_ok_and(|e| e.metadata().is_ok_and(|m| m.len() > 0))))
            .unwrap_or(false)
    })
    .await;
    server.kill();
    let published = server
        .data_dir()
        .join("backups/big")
        .join(format!("{id}.tar.zst"));
    assert!(!published.exists(), "a half-written archive was published");

    server.relaunch();
    let admin = server.api(Some(&server.admin_token));
    let (s, b) = admin.get(&format!("/api/v1/backups/{id}")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "failed", "{b}");
    assert!(
        b["error"].as_str().unwrap().contains("Tavern stopped"),
        "{b}"
    );
    assert_eq!(b["size"], Value::Null);
    assert_eq!(
        std::fs::read_dir(&staging).unwrap().count(),
        0,
        "staging files remain"
    );
    let (s, _) = admin.get(&format!("/api/v1/backups/{id}/download")).await;
    assert_eq!(s, 409);
    // Nor on the world's own address.
    let addr: std::net::SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let http = reqwest::Client::builder()
        .resolve("big.localhost", addr)
        .build()
        .unwrap();
    let r = http
        .get(format!(
            "http://big.localhost:{}/_tavern/backups/{id}",
            addr.port()
        ))
        .header("cookie", format!("tavern_session={}", server.admin_token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("may not be complete yet"));
    // The next backup works.
    backup_now(&admin, "big").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_backup_settings_are_named_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, named) in [
        ("TAVERN_BACKUPS_SCHEDULE", "every night", "backups.schedule"),
        ("TAVERN_BACKUPS_TARGET", "relative/dir", "backups.target"),
        ("TAVERN_BACKUPS_TARGET", "s3://", "backups.target"),
        ("TAVERN_BACKUPS_KEEP_LAST", "0", "backups.keep_last"),
    ] {
        let mut c = tavern(dir.path());
        c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .env(var, value);
        let out = run(c, None);
        assert!(!out.status.success(), "{var}={value} was accepted");
        let err = text(&out.stderr);
        assert!(err.contains(named), "{var}={value}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
#[cfg(feature = "s3")]
async fn backups_round_trip_through_s3_compatible_storage() {
    let Some(s3) = S3Server::start() else {
        return;
    };
    let http = reqwest::Client::new();
    let made = http
        .put(format!("{}/tavern-test", s3.endpoint))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success(), "{made:?}");
    let server = quiet_server(&[
        (
            "TAVERN_BACKUPS_TARGET",
            "s3://tavern-test/community/backups",
        ),
        ("TAVERN_BACKUPS_S3_ENDPOINT", &s3.endpoint),
        ("TAVERN_BACKUPS_S3_REGION", "us-east-1"),
        ("TAVERN_BACKUPS_S3_ACCESS_KEY_ID", "tavern"),
        ("TAVERN_BACKUPS_S3_SECRET_ACCESS_KEY", "tavern-secret-key"),
    ]);
    let admin = server.api(Some(&server.admin_token));
    world_with_data(&server, &admin, "cloudy", None).await;
    // Big enough for an upload in several parts.
    let data = data_dir(&server, "cloudy");
    std::fs::write(data.join("Data/battlemap.webp"), noise(20_000_000, 7)).unwrap();
    let before = contents(&data);
    let b = backup_now(&admin, "cloudy").await;
    let id = b["id"].as_str().unwrap();
    assert!(b["size"].as_u64().unwrap() > 16_000_000, "{b}");

    // It is in the bucket, under the prefix, and nothing else is.
    let listing = s3.list("tavern-test").await;
    let key = format!("<Key>community/backups/cloudy/{id}.tar.zst</Key>");
    assert!(listing.contains(&key), "{listing}");
    assert_eq!(listing.matches("<Key>").count(), 1, "{listing}");
    assert!(!server.data_dir().join("backups").exists());

    // Downloaded through Tavern, it is a whole archive of the world.
    let (s, bytes) = {
        let r = http
            .get(format!("{}/api/v1/backups/{id}/download", server.url))
            .bearer_auth(&server.admin_token)
            .send()
            .await
            .unwrap();
        (r.status(), r.bytes().await.unwrap())
    };
    assert_eq!(s, 200);
    let read = archive::read(bytes.as_ref(), None, None).unwrap();
    assert_eq!(files_of(read.manifest), before);

    // Restored into a new world from the bucket.
    restore_and_wait(&server, id, Some("cloudy-copy"));
    assert_eq!(contents(&data_dir(&server, "cloudy-copy")), before);
    // It runs what the original runs.
    let (_, copy) = admin.get("/api/v1/instances/cloudy-copy").await;
    assert_eq!(copy["release"], "stub", "{copy}");

    // Deleting removes the object too; the secret key is in no log.
    let (s, _) = admin.delete(&format!("/api/v1/backups/{id}")).await;
    assert_eq!(s, 204);
    let listing = s3.list("tavern-test").await;
    assert_eq!(listing.matches("<Key>").count(), 0, "{listing}");
    assert!(!server.output().contains("tavern-secret-key"));
}

#[tokio::test(flavor = "multi_thread")]
async fn changing_a_release_backs_the_world_up_first() {
    let server = quiet_server(&[]);
    let admin = server.api(Some(&server.admin_token));
    world_with_data(&server, &admin, "upgraded", None).await;
    let release =
        crate::releases::install_fake(&server, 13, 345, crate::releases::FAKE_MAIN_JS, false);
    let before = contents(&data_dir(&server, "upgraded"));
    let out = server.cli(
        Some(&server.admin_token),
        &[
            "instance",
            "set",
            "upgraded",
            "--release",
            &release,
            "--json",
        ],
        None,
    );
    let world = ok_json(&out);
    assert_eq!(world["release"], "13.345");
    let (_, list) = admin.get("/api/v1/instances/upgraded/backups").await;
    assert_eq!(kinds(&list), [("pre_upgrade".into(), "complete".into())]);
    let b = &list[0];
    let file = server
        .data_dir()
        .join("backups/upgraded")
        .join(format!("{}.tar.zst", b["id"].as_str().unwrap()));
    assert_eq!(
        files_of(archive::read_file(&file, None, None).unwrap().manifest),
        before
    );

    // Not while it runs, and not to a release that is not installed.
    let (s, _) = admin
        .post("/api/v1/instances/upgraded/start", &json!({}))
        .await;
    assert_eq!(s, 202);
    let running = admin
        .patch("/api/v1/instances/upgraded", &json!({"release":"stub"}))
        .await;
    assert_refused(&running, 409, "instance_running");
    let unknown = admin
        .patch("/api/v1/instances/upgraded", &json!({"release":"99.1"}))
        .await;
    assert_refused(&unknown, 422, "unknown_release");
    let (_, list) = admin.get("/api/v1/instances/upgraded/backups").await;
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "a refused change made a backup"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_schedule_backs_up_every_world_and_a_running_one_live() {
    // Cron with an optional seconds field: every two seconds.
    let server = quiet_server(&[("TAVERN_BACKUPS_SCHEDULE", "*/2 * * * * *")]);
    let admin = server.api(Some(&server.admin_token));
    world_with_data(&server, &admin, "night", None).await;
    world_with_data(&server, &admin, "day", None).await;
    let (s, _) = admin.post("/api/v1/instances/day/start", &json!({})).await;
    assert_eq!(s, 202);
    wait_for_state(&admin, "day", "running").await;
    let scheduled = |list: &Value, slug: &str, live: bool| {
        list.as_array().unwrap().iter().any(|b| {
            b["instance"] == slug
                && b["kind"] == "scheduled"
                && b["status"] == "complete"
                && b["live"] == live
        })
    };
    wait_until("both worlds have a scheduled backup", || async {
        let (_, list) = admin.get("/api/v1/backups").await;
        scheduled(&list, "night", false) && scheduled(&list, "day", true)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destroyed_worlds_last_backup_goes_after_its_time() {
    let mut server = quiet_server(&[("TAVERN_BACKUPS_KEEP_DESTROYED_DAYS", "0")]);
    let admin = server.api(Some(&server.admin_token));
    world_with_data(&server, &admin, "brief", None).await;
    let (s, _) = admin.delete("/api/v1/instances/brief").await;
    assert_eq!(s, 202);
    wait_until("the world is gone", || async {
        admin.get("/api/v1/instances/brief").await.0 == 404
    })
    .await;
    let (_, list) = admin.get("/api/v1/backups").await;
    assert_eq!(kinds(&list), [("pre_destroy".into(), "complete".into())]);
    // Its time (zero days) is up: the next start removes it, archive and all.
    server.restart();
    let admin = server.api(Some(&server.admin_token));
    let (_, list) = admin.get("/api/v1/backups").await;
    assert_eq!(list, json!([]));
    let left = std::fs::read_dir(server.data_dir().join("backups/brief"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_cut_off_between_its_renames_is_undone_at_the_next_start() {
    let mut server = quiet_server(&[]);
    let admin = server.api(Some(&server.admin_token));
    world_with_data(&server, &admin, "halfway", None).await;
    let data = data_dir(&server, "halfway");
    let before = contents(&data);
    // As if Tavern died after moving the data aside and before moving the
    // restored data in.
    server.kill();
    let aside = data.with_file_name("data.replaced");
    std::fs::rename(&data, &aside).unwrap();
    let incoming = data.with_file_name("data.restoring");
    std::fs::create_dir_all(incoming.join("Data")).unwrap();
    server.relaunch();
    assert_eq!(contents(&data), before);
    assert!(!aside.exists() && !incoming.exists());
}

/// Decompresses an archive's bytes (the tar stream inside).
fn tar_of(bytes: &[u8]) -> Vec<u8> {
    zstd::decode_all(bytes).unwrap()
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Keys of the pool never reach a game master: not in the backups Tavern
/// keeps, not in a download; an admin gets them only by asking; a restore
/// writes them again, so the world starts licensed.
#[tokio::test(flavor = "multi_thread")]
async fn a_game_masters_download_never_holds_the_pooled_key() {
    let server = quiet_server(&[]);
    let admin = server.api(Some(&server.admin_token));
    let key = key_for("poolsecretkey");
    add_key(&admin, "pool", &key).await;
    admin.create_user("gina", "gm", "gina-password").await;
    let gina = admin.login("gina", "gina-password").await;
    create_world(&gina, &json!({"slug": "vault", "release": "stub"})).await;
    let (s, b) = gina.post("/api/v1/instances/vault/start", &json!({})).await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(&gina, "vault", "running").await;
    let data = data_dir(&server, "vault");
    let license = std::fs::read_to_string(data.join("Config/license.json")).unwrap();
    assert!(
        license.contains(&key),
        "the world runs with the key: {license}"
    );
    assert!(data.join("Config/admin.txt").exists());

    let made = backup_now(&gina, "vault").await;
    let id = made["id"].as_str().unwrap();
    let stored = std::fs::read(
        server
            .data_dir()
            .join("backups/vault")
            .join(format!("{id}.tar.zst")),
    )
    .unwrap();
    assert!(
        !holds(&tar_of(&stored), &key),
        "the kept archive holds the key"
    );

    let download = |api_token: String, query: &'static str| {
        let url = format!("{}/api/v1/backups/{id}/download{query}", server.url);
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(api_token)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
        }
    };
    let (s, bytes) = download(gina.token().to_owned(), "").await;
    assert_eq!(s, 200);
    let plain = tar_of(&bytes);
    assert!(
        !holds(&plain, &key),
        "a game master's download holds the key"
    );
    let unpacked = server.home().join("gina-download");
    let read = archive::read(bytes.as_slice(), Some(&unpacked), None).unwrap();
    assert!(!unpacked.join("Config/admin.txt").exists());
    assert!(unpacked.join("Config/options.json").exists());
    assert_eq!(
        read.manifest.withheld,
        ["Config/admin.txt", "Config/license.json"]
    );
    // Through the CLI too.
    let file = server.home().join("vault.tar.zst");
    download_cli(&server, gina.token(), id, &file, &[]);
    assert!(!holds(&tar_of(&std::fs::read(&file).unwrap()), &key));
    // Only an admin may ask for the secrets, and gets them.
    let (s, body) = download(gina.token().to_owned(), "?secrets=true").await;
    assert_eq!(s, 403, "{}", String::from_utf8_lossy(&body));
    let (s, bytes) = download(server.admin_token.clone(), "?secrets=true").await;
    assert_eq!(s, 200);
    let with = server.home().join("with-secrets");
    archive::read(bytes.as_slice(), Some(&with), None).unwrap();
    let given = std::fs::read_to_string(with.join("Config/license.json")).unwrap();
    assert!(given.contains(&key), "{given}");
    assert!(with.join("Config/admin.txt").exists());

    // Restored into its running world: it starts again, licensed.
    let (s, r) = gina
        .post(&format!("/api/v1/backups/{id}/restore"), &json!({}))
        .await;
    assert_eq!(s, 202, "{r}");
    let r = wait_backup(&gina, id, |b| b["restore"]["state"] != "running").await;
    assert_eq!(r["restore"]["state"], "done", "{r}");
    wait_for_state(&gina, "vault", "running").await;
    let port = read_port(&server, "vault");
    let running: Value = reqwest::get(format!("http://127.0.0.1:{port}/_stub/license"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(running["license"], key);
}

/// A restore refused for a bad archive: the world that ran runs again,
/// the backup taken of it first is not kept (it repeats the data still in
/// place) and pushes no older backup out; an archive swapped for a
/// decompression bomb is refused before anything is unpacked.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_restore_starts_the_world_again_and_keeps_older_backups() {
    let server = quiet_server(&[
        ("TAVERN_BACKUPS_KEEP_LAST", "2"),
        ("TAVERN_BACKUPS_KEEP_DAILY", "0"),
        ("TAVERN_BACKUPS_KEEP_WEEKLY", "0"),
    ]);
    let admin = server.api(Some(&server.admin_token));
    world_with_data(&server, &admin, "phoenix", None).await;
    let older = backup_now(&admin, "phoenix").await;
    let newer = backup_now(&admin, "phoenix").await;
    let older_id = older["id"].as_str().unwrap();
    // The older archive is swapped for 2 GB of zeros, a few KB compressed.
    let bomb = {
        let mut z = zstd::Encoder::new(Vec::new(), 19).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..2048 {
            std::io::Write::write_all(&mut z, &zeros).unwrap();
        }
        z.finish().unwrap()
    };
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    std::fs::write(
        server
            .data_dir()
            .join("backups/phoenix")
            .join(format!("{older_id}.tar.zst")),
        &bomb,
    )
    .unwrap();
    let (s, b) = admin
        .post("/api/v1/instances/phoenix/start", &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(&admin, "phoenix", "running").await;

    let (s, r) = admin
        .post(&format!("/api/v1/backups/{older_id}/restore"), &json!({}))
        .await;
    assert_eq!(s, 202, "{r}");
    let r = wait_backup(&admin, older_id, |b| b["restore"]["state"] != "running").await;
    assert_eq!(r["restore"]["state"], "failed", "{r}");
    let why = r["restore"]["error"].as_str().unwrap();
    assert!(why.contains("not the one recorded"), "{why}");
    let (world, _) = wait_for_state(&admin, "phoenix", "running").await;
    assert_eq!(world["desired_state"], "running");
    let (_, list) = admin.get("/api/v1/instances/phoenix/backups").await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [newer["id"].as_str().unwrap(), older_id], "{list}");
    // Nothing was unpacked beside the world.
    assert!(
        !server
            .data_dir()
            .join("instances/phoenix/data.restoring")
            .exists()
    );
}
