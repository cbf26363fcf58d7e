//! Imports through the real binary: a felddy volume (its Config/, Logs/
//! and cache left out, its signed license kept for the pool's key) sent
//! from a folder through the CLI into a new world that then runs its world
//! on the stand-in and backs up; a lone world's zip added to an existing
//! world after a backup; a path on the server for admins only; refusals
//! that change nothing; and the dashboard's two steps in Chromium.

use std::path::Path;

use serde_json::json;

use crate::authz::world_zip;
use crate::backups::backup_now;
use crate::support::*;

/// A felddy `/data` volume as a docker-compose droplet has it.
pub(crate) fn felddy_volume(root: &Path, key: &str) {
    let put = |rel: &str, body: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    put(
        "Config/options.json",
        br#"{"port":30000,"dataPath":"/data","proxySSL":true,"hostname":"old.example.org"}"#,
    );
    put("Config/admin.txt", b"0123abcd");
    let signed = json!({"license": key, "signature": "c2lnbmVk", "host": "old-droplet"});
    put("Config/license.json", signed.to_string().as_bytes());
    put(
        "Data/worlds/lost-mine/world.json",
        br#"{"id":"lost-mine","title":"Lost Mine","system":"dnd5e","coreVersion":"13.351","compatibility":{"minimum":"13","verified":"13.351"}}"#,
    );
    for f in ["CURRENT", "LOCK", "LOG", "MANIFEST-000002", "000005.ldb"] {
        put(
            &format!("Data/worlds/lost-mine/data/actors/{f}"),
            f.as_bytes(),
        );
    }
    put(
        "Data/systems/dnd5e/system.json",
        br#"{"id":"dnd5e","title":"Dungeons & Dragons Fifth Edition","version":"5.1.2"}"#,
    );
    put(
        "Data/modules/dice-so-nice/module.json",
        br#"{"id":"dice-so-nice","title":"Dice So Nice!","version":"5.2.1"}"#,
    );
    put("Data/assets/maps/cave.webp", &[9u8; 20_000]);
    put("Logs/debug.2026-11-30.log", b"old log");
    put("container_cache/foundryvtt-13.351.zip", b"PK not really");
}

fn world_data(server: &Server, slug: &str) -> std::path::PathBuf {
    server.data_dir().join("instances").join(slug).join("data")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_felddy_volume_comes_in_through_the_cli_and_runs() {
    let server = Server::start_with_env(&[], &[("TAVERN_BACKUPS_AFTER_STOP", "false")]);
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("gm", "gm", "gm-password-1").await;
    admin.create_user("eve", "gm", "eve-password-1").await;
    let gm = server.api(None).login("gm", "gm-password-1").await;
    let eve = server.api(None).login("eve", "eve-password-1").await;
    let key = key_for("droplet");
    let key_id = add_key(&admin, "droplet", &key).await;
    let t = tempfile::tempdir().unwrap();
    let vol = t.path().join("foundry-one/data");
    felddy_volume(&vol, &key);
    let from = vol.to_str().unwrap();

    // A check says what it found and changes nothing.
    let before = server.dump().await;
    let out = server.cli(
        Some(gm.token()),
        &["instance", "import", "one", "--from", from, "--check"],
        None,
    );
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for word in [
        "lost-mine",
        "dnd5e",
        "dice-so-nice",
        "container_cache/",
        "Logs/",
        "Config/options.json",
        "Config/admin.txt",
        "the key droplet",
        "Nothing was changed",
    ] {
        assert!(shown.contains(word), "no {word:?} in:\n{shown}");
    }
    assert_eq!(server.dump().await, before);

    // The import makes the world; only Data/ comes in.
    let out = server.cli(
        Some(gm.token()),
        &["instance", "import", "one", "--from", from, "--json"],
        None,
    );
    let report = ok_json(&out);
    assert_eq!(
        (report["created"].clone(), report["done"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(report["kind"], "user_data");
    assert_eq!(report["worlds"][0]["id"], "lost-mine");
    let data = world_data(&server, "one");
    assert!(
        data.join("Data/worlds/lost-mine/data/actors/000005.ldb")
            .is_file()
    );
    assert!(data.join("Data/assets/maps/cave.webp").is_file());
    for gone in [
        "Logs",
        "container_cache",
        "Config/options.json",
        "Config/license.json",
    ] {
        assert!(!data.join(gone).exists(), "{gone} came in");
    }
    // The signed license is kept, sealed, for the pool's key.
    let vault = server
        .data_dir()
        .join("licenses")
        .join(&key_id)
        .join("license.json.sealed");
    let sealed = std::fs::read(&vault).unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains(&key));

    // Another game master cannot see or import into it.
    let zip = world_zip("sneaky");
    let a = eve
        .send(
            "POST",
            "/api/v1/instances/one/import",
            Some("application/zip"),
            zip.clone(),
        )
        .await;
    assert_eq!((a.0, code(&a)), (404, "not_found"), "{}", a.1);

    // It runs the world it brought, and backs up.
    let out = server.cli(
        Some(gm.token()),
        &["instance", "start", "one", "--wait"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_, one) = gm.get("/api/v1/instances/one").await;
    assert_eq!(one["world"], "lost-mine", "{one}");
    let backup = backup_now(&gm, "one").await;

    // The way out: a zip a plain Foundry takes as its user-data folder,
    // without Tavern's secrets; it comes back in as it went.
    let out_zip = t.path().join("way-out.zip");
    let id = backup["id"].as_str().unwrap();
    let out = server.cli(
        Some(gm.token()),
        &[
            "backup",
            "download",
            id,
            "-o",
            out_zip.to_str().unwrap(),
            "--zip",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut exported = zip::ZipArchive::new(std::fs::File::open(&out_zip).unwrap()).unwrap();
    let names: Vec<String> = exported.file_names().map(str::to_owned).collect();
    assert!(
        names
            .iter()
            .any(|n| n == "Data/worlds/lost-mine/world.json"),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("Config") || n.starts_with("data/") || n == "manifest.json"),
        "{names:?}"
    );
    let mut map = Vec::new();
    std::io::Read::read_to_end(
        &mut exported.by_name("Data/assets/maps/cave.webp").unwrap(),
        &mut map,
    )
    .unwrap();
    assert_eq!(map, vec![9u8; 20_000]);
    let out = server.cli(
        Some(gm.token()),
        &[
            "instance",
            "import",
            "back",
            "--from",
            out_zip.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        world_data(&server, "back")
            .join("Data/worlds/lost-mine/data/actors/000005.ldb")
            .is_file()
    );

    // A lone world's zip joins the running world, after a backup.
    let out = server.cli(
        Some(gm.token()),
        &[
            "instance",
            "import",
            "one",
            "--from",
            &write(t.path(), "side.zip", &zip),
            "--json",
        ],
        None,
    );
    let report = ok_json(&out);
    assert_eq!(
        (report["kind"].clone(), report["created"].clone()),
        (json!("world"), json!(false))
    );
    let pre = report["backup"].as_str().unwrap().to_owned();
    let (_, b) = gm.get(&format!("/api/v1/backups/{pre}")).await;
    assert_eq!(b["kind"], "pre_restore", "{b}");
    assert!(data.join("Data/worlds/sneaky/world.json").is_file());
    assert!(data.join("Data/worlds/lost-mine/world.json").is_file());
    wait_for_state(&gm, "one", "running").await;

    // The same world again is refused, and changes nothing.
    let before = server.dump().await;
    let a = gm
        .send(
            "POST",
            "/api/v1/instances/one/import",
            Some("application/zip"),
            zip,
        )
        .await;
    assert_eq!((a.0, code(&a)), (409, "world_exists"), "{}", a.1);
    assert_eq!(server.dump().await, before);

    // A zip that holds more than it declares is found out only while it is
    // written: the world keeps what it had and runs again.
    let a = gm
        .send(
            "POST",
            "/api/v1/instances/one/import",
            Some("application/zip"),
            lying_zip(),
        )
        .await;
    assert_eq!((a.0, code(&a)), (422, "invalid_import"), "{}", a.1);
    assert!(!data.join("Data/worlds/liar").exists());
    assert!(data.join("Data/worlds/sneaky/world.json").is_file());
    wait_for_state(&gm, "one", "running").await;
}

/// A world's zip whose big file says it is 10 bytes and holds 100 000.
fn lying_zip() -> Vec<u8> {
    use std::io::Write as _;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    w.start_file("liar/world.json", opts).unwrap();
    w.write_all(br#"{"id":"liar","coreVersion":"13.351"}"#)
        .unwrap();
    w.start_file("liar/big", opts).unwrap();
    w.write_all(&vec![0u8; 100_000]).unwrap();
    let mut bytes = w.finish().unwrap().into_inner();
    // The uncompressed size, in the last local header and in the last
    // central directory entry.
    for (sig, offset) in [(&b"PK\x03\x04"[..], 22), (&b"PK\x01\x02"[..], 24)] {
        let at = (0..bytes.len() - 4)
            .rev()
            .find(|i| &bytes[*i..i + 4] == sig)
            .unwrap();
        bytes[at + offset..at + offset + 4].copy_from_slice(&10u32.to_le_bytes());
    }
    bytes
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_imports_change_nothing_and_say_why() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("gm", "gm", "gm-password-1").await;
    let gm = server.api(None).login("gm", "gm-password-1").await;
    let t = tempfile::tempdir().unwrap();
    let before = server.dump().await;

    // A world saved by a newer Foundry than the release.
    let mut newer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    newer
        .start_file(
            "future/world.json",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
    std::io::Write::write_all(
        &mut newer,
        br#"{"id":"future","system":"dnd5e","coreVersion":"14.360"}"#,
    )
    .unwrap();
    let newer = newer.finish().unwrap().into_inner();
    let cases: Vec<(Vec<u8>, u16, &str, &str)> = vec![
        (newer, 422, "import_too_new", "install Foundry 14.360"),
        (
            b"just some text".to_vec(),
            422,
            "invalid_import",
            "neither a folder nor",
        ),
        (traversal_tar(), 422, "invalid_import", "climbs out"),
        (world_zip("../x"), 422, "invalid_import", "refused"),
    ];
    for (body, status, code_, says) in cases {
        let a = gm
            .send(
                "POST",
                "/api/v1/instances/fresh/import",
                Some("application/octet-stream"),
                body,
            )
            .await;
        assert_eq!((a.0, code(&a)), (status, code_), "{}", a.1);
        assert!(a.1.to_string().contains(says), "{}", a.1);
    }
    // A path on the server is for admins, and never Tavern's own data.
    let vol = t.path().join("vol");
    felddy_volume(&vol, &key_for("none"));
    let path = json!({"path": vol});
    let a = gm.post("/api/v1/instances/fresh/import", &path).await;
    assert_eq!((a.0, code(&a)), (403, "forbidden"), "{}", a.1);
    let own = json!({"path": server.data_dir().join("licenses")});
    let a = admin.post("/api/v1/instances/fresh/import", &own).await;
    assert_eq!((a.0, code(&a)), (422, "invalid_import"), "{}", a.1);
    let a = gm
        .send(
            "POST",
            "/api/v1/instances/fresh/import",
            Some("text/plain"),
            b"x".to_vec(),
        )
        .await;
    assert_eq!((a.0, code(&a)), (415, "unsupported_media_type"), "{}", a.1);
    assert_eq!(server.dump().await, before);
    assert!(!world_data(&server, "fresh").exists());
    let leftovers: Vec<_> = std::fs::read_dir(server.data_dir().join("imports"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // An admin imports from the server's disk; an unknown key is named.
    let (s, report) = admin.post("/api/v1/instances/fresh/import", &path).await;
    assert_eq!(s, 201, "{report}");
    let license = report["license"].as_str().unwrap();
    assert!(license.contains("not in this Tavern's pool"), "{license}");
    assert!(!license.contains(&key_for("none")[..20]), "{license}");
}

/// A tar whose one entry climbs out with `..`.
fn traversal_tar() -> Vec<u8> {
    let mut h = tar::Header::new_old();
    let name = b"../../etc/cron.d/x";
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_size(1);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.push(b'x');
    out.resize(1024 + 1024, 0);
    out
}

/// A plain install's user-data folder (a Foundry 11 world), a Pterodactyl
/// server's files (the program beside the data, a Foundry 12 world) and a
/// hosted service's world zip each come in, run on the stand-in and back
/// up.
#[tokio::test(flavor = "multi_thread")]
async fn a_plain_install_a_pterodactyl_server_and_an_exported_world_come_in() {
    let server = Server::start_with_env(&[], &[("TAVERN_BACKUPS_AFTER_STOP", "false")]);
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("gm", "gm", "gm-password-1").await;
    let gm = server.api(None).login("gm", "gm-password-1").await;
    for k in ["plain", "ptero", "hosted"] {
        add_key(&admin, k, &key_for(k)).await;
    }
    let t = tempfile::tempdir().unwrap();
    let put = |rel: &str, body: &[u8]| {
        let p = t.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };

    // ~/.local/share/FoundryVTT, as `tar czf` makes it.
    put("home/FoundryVTT/Config/options.json", br#"{"port":30000}"#);
    put(
        "home/FoundryVTT/Data/worlds/old-road/world.json",
        br#"{"id":"old-road","title":"Old Road","system":"pf2e","compatibility":{"minimum":"11","verified":"11.315"}}"#,
    );
    put(
        "home/FoundryVTT/Data/worlds/old-road/data/scenes/000003.log",
        b"scenes",
    );
    put("home/FoundryVTT/Logs/debug.log", b"log");
    let tgz = t.path().join("foundry.tgz");
    let made = std::process::Command::new("tar")
        .args(["czf", tgz.to_str().unwrap(), "-C"])
        .arg(t.path().join("home"))
        .arg("FoundryVTT")
        .status()
        .unwrap();
    assert!(made.success());

    // A Pterodactyl server's folder: the program and the data side by side.
    put(
        "ptero/foundry/resources/app/package.json",
        br#"{"release":{"generation":12,"build":331}}"#,
    );
    put(
        "ptero/foundrydata/Config/options.json",
        br#"{"dataPath":"/home/container/foundrydata"}"#,
    );
    put(
        "ptero/foundrydata/Data/worlds/sky-isles/world.json",
        br#"{"id":"sky-isles","title":"Sky Isles","system":"dnd5e","coreVersion":"12.331"}"#,
    );
    put(
        "ptero/foundrydata/Data/systems/dnd5e/system.json",
        br#"{"id":"dnd5e","version":"4.4.0"}"#,
    );

    let ptero = t.path().join("ptero");
    let cases = [
        (
            "plain",
            vec!["--from", tgz.to_str().unwrap()],
            "old-road",
            gm.token().to_owned(),
        ),
        (
            "ptero",
            vec![
                "--from",
                ptero.to_str().unwrap(),
                "--on-server",
                "--owner",
                "gm",
            ],
            "sky-isles",
            server.admin_token.clone(),
        ),
    ];
    let zip = t.path().join("export.zip");
    std::fs::write(&zip, world_zip("harbour")).unwrap();
    let exported = (
        "hosted",
        vec!["--from", zip.to_str().unwrap()],
        "harbour",
        gm.token().to_owned(),
    );
    for (slug, from, world, token) in cases.into_iter().chain([exported]) {
        let mut args = vec!["instance", "import", slug];
        args.extend(from.iter().copied());
        let out = server.cli(Some(&token), &args, None);
        let shown = text(&out.stdout);
        assert!(out.status.success(), "{slug}: {}", text(&out.stderr));
        assert!(
            shown.contains(world) && shown.contains("Imported into the new world"),
            "{shown}"
        );
        if slug == "plain" {
            assert!(shown.contains("migrates"), "{shown}");
        }
        if slug == "ptero" {
            assert!(
                shown.contains("foundry/") && shown.contains("outside the user-data folder"),
                "{shown}"
            );
        }
        let out = server.cli(
            Some(gm.token()),
            &["instance", "start", slug, "--wait"],
            None,
        );
        assert!(out.status.success(), "{slug}: {}", text(&out.stderr));
        let (_, i) = gm.get(&format!("/api/v1/instances/{slug}")).await;
        assert_eq!(i["world"], world, "{i}");
        let out = server.cli(
            Some(gm.token()),
            &["instance", "stop", slug, "--wait"],
            None,
        );
        assert!(out.status.success(), "{slug}: {}", text(&out.stderr));
        backup_now(&gm, slug).await;
    }
}

/// A droplet's docker-compose folder of felddy volumes comes in at once:
/// a dry run first, then each volume into the world named after its
/// folder; one that cannot come in is named with its reason and stops no
/// other.
#[tokio::test(flavor = "multi_thread")]
async fn a_folder_of_felddy_volumes_comes_in_at_once() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("gm", "gm", "gm-password-1").await;
    let gm = server.api(None).login("gm", "gm-password-1").await;
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("srv/foundry");
    felddy_volume(&root.join("foundry-one/data"), &key_for("one"));
    felddy_volume(&root.join("Foundry_Two/data"), &key_for("two"));
    let future = root.join("future/data/Data/worlds/far");
    std::fs::create_dir_all(&future).unwrap();
    std::fs::write(
        future.join("world.json"),
        br#"{"id":"far","coreVersion":"99.1"}"#,
    )
    .unwrap();
    std::fs::create_dir_all(root.join("nginx/conf.d")).unwrap();
    let from = root.to_str().unwrap();

    let out = server.cli(
        Some(gm.token()),
        &["instance", "import", "--from-felddy", from, "--check"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("forbidden"),
        "{}",
        text(&out.stderr)
    );

    let before = server.dump().await;
    let out = server.cli(
        Some(&server.admin_token),
        &["instance", "import", "--from-felddy", from, "--check"],
        None,
    );
    let shown = text(&out.stdout);
    assert!(
        !out.status.success(),
        "the future world fails the batch:\n{shown}"
    );
    for word in [
        "foundry-one",
        "foundry-two",
        "would be imported",
        "install Foundry 99.1",
    ] {
        assert!(shown.contains(word), "no {word:?} in:\n{shown}");
    }
    assert!(!shown.contains("nginx"), "{shown}");
    assert_eq!(server.dump().await, before);

    let out = server.cli(
        Some(&server.admin_token),
        &["instance", "import", "--from-felddy", from, "--json"],
        None,
    );
    let items: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut worlds: Vec<(&str, bool)> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["world"].as_str().unwrap(), i["import"]["done"] == true))
        .collect();
    worlds.sort();
    assert_eq!(
        worlds,
        [
            ("foundry-one", true),
            ("foundry-two", true),
            ("future", false)
        ]
    );
    for slug in ["foundry-one", "foundry-two"] {
        assert!(
            world_data(&server, slug)
                .join("Data/worlds/lost-mine/world.json")
                .is_file()
        );
    }
    let (s, _) = admin.get("/api/v1/instances/future").await;
    assert_eq!(s, 404);
}

/// A folder as a zip, every file under its path below `root`.
pub(crate) fn zip_folder(root: &Path) -> Vec<u8> {
    use std::io::Write as _;
    fn add(w: &mut zip::ZipWriter<std::io::Cursor<Vec<u8>>>, root: &Path, dir: &Path) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                add(w, root, &p);
            } else {
                let name = p.strip_prefix(root).unwrap().to_str().unwrap();
                w.start_file(name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                w.write_all(&std::fs::read(&p).unwrap()).unwrap();
            }
        }
    }
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    add(&mut w, root, root);
    w.finish().unwrap().into_inner()
}

/// The uploads Tavern holds in its import folder.
fn uploads(server: &Server) -> Vec<String> {
    match std::fs::read_dir(server.data_dir().join("imports")) {
        Ok(d) => d
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Chooses `file` in the import form and sends it; waits for the next
/// page unless it is to be refused where it is.
async fn send_upload(b: &crate::web::Browser, world: &str, file: &Path, leads_on: bool) {
    b.fill("#world", world).await;
    b.el("#file")
        .await
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    match leads_on {
        true => b.click("#send").await,
        false => b.el("#send").await.click().await.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_game_master_imports_from_the_browser_after_seeing_what_it_holds() {
    let Some(b) = crate::web::Browser::start(true, false).await else {
        return;
    };
    let server = Server::start_with_env(&[], &[("TAVERN_BACKUPS_AFTER_STOP", "false")]);
    let base = server.url.replace("127.0.0.1", "localhost");
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("alice", "gm", "alice-password-1").await;
    let alice = server.api(None).login("alice", "alice-password-1").await;
    let key = key_for("browser");
    add_key(&admin, "main", &key).await;
    let t = tempfile::tempdir().unwrap();
    let vol = t.path().join("volume");
    felddy_volume(&vol, &key);
    // Large enough for the upload to take a moment.
    // (xorshift: bytes a zip cannot make smaller)
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..6_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(vol.join("Data/assets/maps/big.webp"), &noise).unwrap();
    let volume_zip = t.path().join("volume.zip");
    std::fs::write(&volume_zip, zip_folder(&vol)).unwrap();

    b.goto(&format!("{base}/")).await;
    b.fill("#username", "alice").await;
    b.fill("#password", "alice-password-1").await;
    b.click("form.card button[type=submit]").await;
    b.goto(&format!("{base}/dashboard/new")).await;
    b.click("#import-link").await;
    assert_eq!(b.path().await, "/dashboard/import");
    b.assert_accessible().await;
    // What the progress line says is written down as it changes, across
    // the page's change.
    b.client
        .execute(
            "const s = document.getElementById('upload-status');\
             new MutationObserver(() => {\
               const seen = JSON.parse(sessionStorage.seen || '[]');\
               seen.push(s.textContent);\
               sessionStorage.seen = JSON.stringify(seen);\
             }).observe(s, {childList: true, characterData: true, subtree: true});",
            vec![],
        )
        .await
        .unwrap();
    send_upload(&b, "harbour", &volume_zip, true).await;

    // What it holds, before anything changes.
    assert!(b.path().await.starts_with("/dashboard/imports/"));
    let seen = b
        .client
        .execute("return JSON.parse(sessionStorage.seen || '[]')", vec![])
        .await
        .unwrap();
    let seen: Vec<String> = serde_json::from_value(seen).unwrap();
    assert!(
        seen.iter()
            .any(|s| s.contains(" sent (") && s.contains("MB")),
        "the upload's progress was shown: {seen:?}"
    );
    assert!(
        seen.iter().any(|s| s == "Sent. Reading what it holds…"),
        "{seen:?}"
    );
    assert_eq!(b.text("h1").await, "Import into harbour?");
    let what = b.text("#what").await;
    assert!(what.contains("user-data folder"), "{what}");
    assert!(what.contains("new world harbour"), "{what}");
    let worlds = b.text("#found-worlds").await;
    for word in ["lost-mine", "Lost Mine", "dnd5e", "13.351"] {
        assert!(worlds.contains(word), "{word} in {worlds}");
    }
    let main = b.text("main").await;
    assert!(
        main.contains("dice-so-nice") && main.contains("5.2.1"),
        "{main}"
    );
    let left_out = b.text("#left-out").await;
    for path in ["Config/", "Logs/", "container_cache/"] {
        assert!(left_out.contains(path), "{path} in {left_out}");
    }
    assert!(b.text("#notes").await.contains("signature"), "{main}");
    b.assert_accessible().await;
    let (status, _) = alice.get("/api/v1/instances/harbour").await;
    assert_eq!(status, 404, "nothing is made before the yes");
    assert_eq!(uploads(&server).len(), 1, "the upload is held");

    // Yes: the world is made with it.
    b.click("#import").await;
    assert_eq!(b.path().await, "/dashboard/worlds/harbour");
    let said = b.text(".flash.ok").await;
    assert!(
        said.starts_with("Imported ") && said.contains("into harbour"),
        "{said}"
    );
    let data = world_data(&server, "harbour");
    assert!(data.join("Data/worlds/lost-mine/world.json").is_file());
    assert_eq!(
        std::fs::read(data.join("Data/assets/maps/big.webp")).unwrap(),
        noise
    );
    assert!(!data.join("Logs/debug.2026-11-30.log").exists());
    assert!(
        uploads(&server).is_empty(),
        "the upload is gone once imported"
    );
    // It runs the world it brought, and backs up.
    let (s, _) = alice
        .post("/api/v1/instances/harbour/start", &json!({}))
        .await;
    assert_eq!(s, 202);
    wait_for_state(&alice, "harbour", "running").await;
    let (_, world) = alice.get("/api/v1/instances/harbour").await;
    assert_eq!(world["world"], "lost-mine", "{world}");
    backup_now(&alice, "harbour").await;
    alice
        .post("/api/v1/instances/harbour/stop", &json!({}))
        .await;
    wait_for_state(&alice, "harbour", "stopped").await;

    // Into the world from its page; no: nothing changes.
    b.click("#import-into").await;
    assert_eq!(
        b.el("#world").await.prop("value").await.unwrap().as_deref(),
        Some("harbour")
    );
    let lone = t.path().join("second.zip");
    std::fs::write(&lone, world_zip("second")).unwrap();
    send_upload(&b, "harbour", &lone, true).await;
    let what = b.text("#what").await;
    assert!(what.contains("one Foundry world"), "{what}");
    assert!(what.contains("backed up first"), "{what}");
    let before = server.dump().await;
    b.click("#cancel").await;
    assert_eq!(b.path().await, "/dashboard/import");
    assert!(b.text(".flash.ok").await.contains("thrown away"));
    assert!(uploads(&server).is_empty(), "the upload is removed");
    assert!(!data.join("Data/worlds/second").exists());
    assert_eq!(server.dump().await, before, "a no changes nothing");

    // A refused upload says why beside the bar, and is not kept.
    let bad = t.path().join("bad.zip");
    std::fs::write(&bad, world_zip("../x")).unwrap();
    send_upload(&b, "harbour", &bad, false).await;
    b.wait_text("#upload-status", "the refusal is shown", |t| {
        t.contains("nothing was imported")
    })
    .await;
    assert_eq!(b.path().await, "/dashboard/import");
    assert!(uploads(&server).is_empty());
    b.close().await;

    // The same without JavaScript: a plain form, then the same page.
    let Some(plain) = crate::web::Browser::start(false, false).await else {
        return;
    };
    plain.goto(&format!("{base}/")).await;
    plain.fill("#username", "alice").await;
    plain.fill("#password", "alice-password-1").await;
    plain.click("form.card button[type=submit]").await;
    plain
        .goto(&format!("{base}/dashboard/import?world=harbour"))
        .await;
    // Refused: back to the form, with the reason.
    send_upload(&plain, "harbour", &bad, true).await;
    assert_eq!(plain.path().await, "/dashboard/import");
    let why = plain.text(".flash.err").await;
    assert!(why.contains("nothing was imported"), "{why}");
    assert!(uploads(&server).is_empty());
    let third = t.path().join("third.zip");
    std::fs::write(&third, world_zip("third")).unwrap();
    send_upload(&plain, "harbour", &third, true).await;
    assert_eq!(plain.text("h1").await, "Import into harbour?");
    plain.click("#import").await;
    assert_eq!(plain.path().await, "/dashboard/worlds/harbour");
    let said = plain.text(".flash.ok").await;
    assert!(said.contains("kept in a backup"), "{said}");
    assert!(data.join("Data/worlds/third/world.json").is_file());
    assert!(data.join("Data/worlds/lost-mine/world.json").is_file());

    // A backup of it goes out as a zip a plain Foundry takes, from the
    // link beside it.
    let link = plain
        .el("a[href$='download?format=zip']")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let zip = reqwest::Client::new()
        .get(format!("{base}{link}"))
        .header("cookie", plain.session_cookie().await)
        .send()
        .await
        .unwrap();
    assert_eq!(zip.status(), 200);
    let bytes = zip.bytes().await.unwrap().to_vec();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    assert!(zip.by_name("Data/worlds/lost-mine/world.json").is_ok());
    assert!(
        zip.by_name("Data/worlds/third/world.json").is_err(),
        "taken before"
    );
    plain.close().await;

    // A release asked for an existing world is said to be unused.
    let (status, check) = alice
        .send(
            "POST",
            "/api/v1/instances/harbour/import?check=true&release=12.331",
            Some("application/zip"),
            world_zip("fourth"),
        )
        .await;
    assert_eq!(status, 200, "{check}");
    let warnings = check["warnings"].to_string();
    assert!(
        warnings.contains("keeps its release") && warnings.contains("only for a new world"),
        "{warnings}"
    );
}
