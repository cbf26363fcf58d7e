//! The community package library against a local HTTP server (started
//! here) that serves manifests and zips made here: a package is added
//! with what it needs, a bad checksum, a zip-slip, a zip of another
//! package and a download that 404s are refused and leave nothing; an
//! update fetches a newer version without moving any world; worlds see
//! exactly the packages they chose, through the stand-in, and never
//! another's; a world's own package of the same id is left alone.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support::*;

/// A local "package host": paths to bodies, changeable while it runs.
#[derive(Clone, Default)]
pub(crate) struct Host {
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    base: String,
}

impl Host {
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let host = Host {
            files: Arc::default(),
            base,
        };
        let files = host.files.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let files = files.clone();
            async move {
                match files.lock().unwrap().get(uri.path()) {
                    Some(b) => (axum::http::StatusCode::OK, b.clone()),
                    None => (axum::http::StatusCode::NOT_FOUND, Vec::new()),
                }
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        host
    }

    fn put(&self, path: &str, body: Vec<u8>) -> String {
        self.files.lock().unwrap().insert(path.to_owned(), body);
        format!("{}{path}", self.base)
    }

    /// Publishes a package: its manifest at `/<id>/<kind>.json` (the
    /// newest) and its zip at `/<id>/<version>.zip`; answers the
    /// manifest's URL.
    pub(crate) fn publish(&self, kind: &str, manifest: Value, extra: &[(&str, &[u8])]) -> String {
        let id = manifest["id"].as_str().unwrap().to_owned();
        let version = manifest["version"].as_str().unwrap().to_owned();
        let manifest_url = format!("{}/{id}/{kind}.json", self.base);
        let mut m = manifest.clone();
        m["manifest"] = json!(manifest_url);
        m["download"] = json!(format!("{}/{id}/{version}.zip", self.base));
        let mut files: Vec<(String, Vec<u8>)> =
            vec![(format!("{kind}.json"), m.to_string().into_bytes())];
        files.extend(extra.iter().map(|(n, b)| ((*n).to_owned(), b.to_vec())));
        self.put(&format!("/{id}/{version}.zip"), zip_of(&files));
        self.put(&format!("/{id}/{kind}.json"), m.to_string().into_bytes())
    }
}

fn zip_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files {
        w.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(body).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Waits up to 30 s for a fetch to end; answers it.
async fn job_end(admin: &Api, id: u64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (s, j) = admin.get(&format!("/api/v1/packages/jobs/{id}")).await;
        assert_eq!(s, 200, "{j}");
        if j["state"] != "running" {
            return j;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the fetch never ended: {j}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Adds a package and waits for its fetch; answers the finished job.
pub(crate) async fn add(admin: &Api, body: Value) -> Value {
    let (s, job) = admin.post("/api/v1/packages", &body).await;
    assert_eq!(s, 202, "{job}");
    job_end(admin, job["id"].as_u64().unwrap()).await
}

async fn library(api: &Api) -> Vec<String> {
    let (s, b) = api.get("/api/v1/packages").await;
    assert_eq!(s, 200, "{b}");
    b.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {} {}",
                p["kind"].as_str().unwrap(),
                p["id"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect()
}

async fn seen_by_foundry(server: &Server, slug: &str) -> Value {
    let port = read_port(server, slug);
    reqwest::get(format!("http://127.0.0.1:{port}/_stub/packages"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `id@version` of each package in the stand-in's `folder` list.
pub(crate) fn ids(found: &Value, folder: &str) -> Vec<String> {
    chosen(&found[folder])
}

/// `id@version` of each package in a list of them.
fn chosen(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}@{}",
                p["id"].as_str().unwrap(),
                p["version"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn worlds_see_exactly_the_library_packages_they_chose() {
    let host = Host::start().await;
    let server = Server::start_with_env(&[], &[("TAVERN_BACKUPS_AFTER_STOP", "false")]);
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "one", &key_for("one")).await;
    add_key(&admin, "two", &key_for("two")).await;
    admin.create_user("gina", "gm", "gina-password").await;
    admin.create_user("otto", "gm", "otto-password").await;
    let gina = admin.login("gina", "gina-password").await;
    let otto = admin.login("otto", "otto-password").await;

    // A chain: combat needs socket (named by its manifest), which needs
    // the system pf2e, already in the library.
    let pf2e = host.publish(
        "system",
        json!({"id": "pf2e", "title": "Pathfinder", "version": "6.0.1",
               "compatibility": {"minimum": "12", "verified": "13.351"}}),
        &[("pf2e.mjs", b"export {}")],
    );
    let socket = host.publish(
        "module",
        json!({"id": "socket", "version": "1.0.0",
               "relationships": {"requires": [{"id": "pf2e", "type": "system"}]}}),
        &[],
    );
    let combat = host.publish(
        "module",
        json!({"id": "combat", "title": "Combat", "version": "2.0.0",
               "compatibility": {"minimum": "12", "maximum": "13"},
               "relationships": {"requires": [{"id": "socket", "type": "module", "manifest": socket}]}}),
        &[("scripts/combat.js", b"roll()")],
    );
    let job = add(&admin, json!({"manifest_url": pf2e})).await;
    assert_eq!(job["state"], "done", "{job}");
    let job = add(&admin, json!({"manifest_url": combat})).await;
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(
        job["added"],
        json!(["module combat 2.0.0", "module socket 1.0.0"]),
        "{job}"
    );
    assert_eq!(
        library(&gina).await,
        [
            "system pf2e 6.0.1",
            "module combat 2.0.0",
            "module socket 1.0.0"
        ]
    );

    // Refused, each leaving nothing behind.
    let (s, b) = admin
        .post("/api/v1/packages", &json!({"manifest_url": combat}))
        .await;
    assert_refused(&(s, b), 409, "package_exists");
    let slip = host.publish(
        "module",
        json!({"id": "slip", "version": "1"}),
        &[("../../escape.js", b"x")],
    );
    let bad = add(&admin, json!({"manifest_url": slip})).await;
    assert_eq!(bad["state"], "failed");
    assert!(
        bad["error"].as_str().unwrap().contains("climbs out"),
        "{bad}"
    );
    let dice = host.publish("module", json!({"id": "dice", "version": "3.0"}), &[]);
    let wrong = add(
        &admin,
        json!({"manifest_url": dice, "sha256": "ab".repeat(32)}),
    )
    .await;
    assert!(
        wrong["error"].as_str().unwrap().contains("SHA-256"),
        "{wrong}"
    );
    host.files.lock().unwrap().remove("/dice/3.0.zip");
    let gone = add(&admin, json!({"manifest_url": dice})).await;
    assert!(gone["error"].as_str().unwrap().contains("404"), "{gone}");
    let other = host.put(
        "/liar/module.json",
        json!({"id": "liar", "version": "1", "download": format!("{}/dice-zip", host.base)})
            .to_string()
            .into_bytes(),
    );
    host.put(
        "/dice-zip",
        zip_of(&[(
            "module.json".into(),
            br#"{"id":"dice","version":"1"}"#.to_vec(),
        )]),
    );
    let liar = add(&admin, json!({"manifest_url": other})).await;
    assert!(
        liar["error"]
            .as_str()
            .unwrap()
            .contains("not module liar 1"),
        "{liar}"
    );
    let (s, b) = admin
        .post(
            "/api/v1/packages",
            &json!({"manifest_url": format!("{}/nothing/module.json", host.base)}),
        )
        .await;
    assert_refused(&(s, b), 422, "invalid_package");
    let (s, b) = gina
        .post("/api/v1/packages", &json!({"manifest_url": dice}))
        .await;
    assert_refused(&(s, b), 403, "forbidden");
    assert_eq!(library(&admin).await.len(), 3);
    let root = server.data_dir().join("packages");
    assert!(!root.join("module/slip").exists() && !root.join("module/liar").exists());
    assert_eq!(
        std::fs::read_dir(root.join(".incoming")).map_or(0, |d| d.count()),
        0
    );

    // Gina's world uses combat (and so socket and pf2e); Otto's nothing.
    create_world(&gina, &json!({"slug": "keep", "release": "stub"})).await;
    create_world(&otto, &json!({"slug": "ruin", "release": "stub"})).await;
    let (s, chosen) = gina
        .post("/api/v1/instances/keep/packages", &json!({"id": "combat"}))
        .await;
    assert_eq!(s, 200, "{chosen}");
    let names: Vec<&str> = chosen
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pf2e", "combat", "socket"]);
    // Another game master can neither see nor change it.
    let (s, _) = otto.get("/api/v1/instances/keep/packages").await;
    assert_eq!(s, 404);
    let (s, _) = otto
        .post("/api/v1/instances/keep/packages", &json!({"id": "pf2e"}))
        .await;
    assert_eq!(s, 404);
    let (_, lib) = otto.get("/api/v1/packages").await;
    assert!(
        !lib.to_string().contains("keep"),
        "another's world named: {lib}"
    );
    let (_, lib) = gina.get("/api/v1/packages").await;
    assert!(lib.to_string().contains("keep"));
    // socket is needed by combat; a package in use stays in the library.
    let (s, b) = gina.delete("/api/v1/instances/keep/packages/socket").await;
    assert_refused(&(s, b), 409, "package_needed");
    let (s, b) = admin.delete("/api/v1/packages/module/combat/2.0.0").await;
    assert_refused(&(s, b), 409, "in_use");

    for (api, slug) in [(&gina, "keep"), (&otto, "ruin")] {
        let (s, b) = api
            .post(&format!("/api/v1/instances/{slug}/start"), &json!({}))
            .await;
        assert_eq!(s, 202, "{b}");
        wait_for_state(api, slug, "running").await;
    }
    let found = seen_by_foundry(&server, "keep").await;
    assert_eq!(ids(&found, "systems"), ["pf2e@6.0.1"], "{found}");
    assert_eq!(
        ids(&found, "modules"),
        ["combat@2.0.0", "socket@1.0.0"],
        "{found}"
    );
    assert_eq!(found["skipped"], json!([]), "{found}");
    let theirs = seen_by_foundry(&server, "ruin").await;
    assert_eq!(ids(&theirs, "modules"), Vec::<String>::new(), "{theirs}");
    // Stored once: the world holds links, not copies.
    let data = server
        .data_dir()
        .join("instances/keep/data/Data/modules/combat");
    assert!(
        std::fs::symlink_metadata(&data)
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // An update fetches combat 2.1.0; keep stays on 2.0.0 until Gina moves.
    host.publish(
        "module",
        json!({"id": "combat", "version": "2.1.0", "compatibility": {"minimum": "12", "maximum": "13"},
               "relationships": {"requires": [{"id": "socket", "type": "module"}]}}),
        &[],
    );
    let (s, found) = admin
        .post("/api/v1/packages/update", &json!({"id": "combat"}))
        .await;
    assert_eq!(s, 200, "{found}");
    assert_eq!(found[0]["outcome"], "fetching", "{found}");
    let job = job_end(&admin, found[0]["job"].as_u64().unwrap()).await;
    assert_eq!(job["state"], "done", "{job}");
    let (_, mine) = gina.get("/api/v1/instances/keep/packages").await;
    let combat_now = mine
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "combat")
        .unwrap()
        .clone();
    assert_eq!(combat_now["version"], "2.0.0");
    assert_eq!(combat_now["newer"], "2.1.0");

    // A game master's own module of the same id is theirs: reported, and
    // left as it is at the next start.
    let own = server
        .data_dir()
        .join("instances/ruin/data/Data/modules/socket");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::write(
        own.join("module.json"),
        r#"{"id":"socket","version":"0.9"}"#,
    )
    .unwrap();
    let (s, b) = otto
        .post("/api/v1/instances/ruin/packages", &json!({"id": "socket"}))
        .await;
    assert_eq!(s, 200, "{b}");
    let socket = b
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "socket")
        .unwrap();
    assert_eq!(socket["state"], "clash", "{b}");
    for (api, slug) in [(&gina, "keep"), (&otto, "ruin")] {
        let (s, b) = api
            .post(&format!("/api/v1/instances/{slug}/stop"), &json!({}))
            .await;
        assert_eq!(s, 202, "{b}");
        wait_for_state(api, slug, "stopped").await;
    }
    let (s, b) = otto.post("/api/v1/instances/ruin/start", &json!({})).await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(&otto, "ruin", "running").await;
    let theirs = seen_by_foundry(&server, "ruin").await;
    assert_eq!(ids(&theirs, "modules"), ["socket@0.9"], "{theirs}");
    assert_eq!(ids(&theirs, "systems"), ["pf2e@6.0.1"], "{theirs}");
}

/// A backup holds what its world used of the library, not the files: a
/// download may carry them (for a Foundry without the library); a restore
/// puts the choices back, fetching again from where it came (checked
/// against its checksum) a version the library has lost, and says so when
/// it cannot.
#[tokio::test(flavor = "multi_thread")]
async fn backups_hold_package_choices_and_restores_put_them_back() {
    use crate::backups::{backup_now, wait_backup};
    let host = Host::start().await;
    let server = Server::start_with_env(&[], &[("TAVERN_BACKUPS_AFTER_STOP", "false")]);
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "one", &key_for("one")).await;
    admin.create_user("gina", "gm", "gina-password").await;
    let gina = admin.login("gina", "gina-password").await;
    let ose = host.publish(
        "system",
        json!({"id": "ose", "version": "2.0"}),
        &[("ose.mjs", b"export {}")],
    );
    let maps = host.publish(
        "module",
        json!({"id": "maps", "version": "1.0",
               "relationships": {"requires": [{"id": "ose", "type": "system", "manifest": ose}]}}),
        &[("maps.js", b"draw()")],
    );
    let job = add(&admin, json!({"manifest_url": maps})).await;
    assert_eq!(job["state"], "done", "{job}");
    create_world(&gina, &json!({"slug": "hold", "release": "stub"})).await;
    let (s, b) = gina
        .post("/api/v1/instances/hold/packages", &json!({"id": "maps"}))
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = gina.post("/api/v1/instances/hold/start", &json!({})).await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(&gina, "hold", "running").await;
    let (s, b) = gina.post("/api/v1/instances/hold/stop", &json!({})).await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(&gina, "hold", "stopped").await;

    let b = backup_now(&gina, "hold").await;
    let id = b["id"].as_str().unwrap().to_owned();
    let (_, b) = gina.get(&format!("/api/v1/backups/{id}")).await;
    assert_eq!(
        b["packages"],
        json!([{"kind": "system", "id": "ose", "version": "2.0"},
               {"kind": "module", "id": "maps", "version": "1.0"}]),
        "{b}"
    );
    // The archive holds the world's links' places empty, never the files.
    let (_, list) = gina.get("/api/v1/instances/hold/backups").await;
    assert!(list[0].get("packages").is_none(), "{list}");

    // Downloaded with them (the CLI), the Foundry zip has them where
    // Foundry looks; without, it does not.
    for (with, expected) in [(true, true), (false, false)] {
        let file = server.home().join(format!("hold-{with}.zip"));
        let mut args = vec!["backup", "download", &id, "--zip", "-o"];
        args.push(file.to_str().unwrap());
        if with {
            args.push("--packages");
        }
        let out = server.cli(Some(gina.token()), &args, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let zip = zip::ZipArchive::new(std::fs::File::open(&file).unwrap()).unwrap();
        let names: Vec<&str> = zip.file_names().collect();
        for wanted in ["Data/systems/ose/system.json", "Data/modules/maps/maps.js"] {
            assert_eq!(names.contains(&wanted), expected, "{with}: {names:?}");
        }
    }

    // The world stops using them and the library loses maps; restored
    // into a new world, the backup's choices come back and maps is
    // fetched again.
    for p in ["maps", "ose"] {
        let (s, b) = gina
            .delete(&format!("/api/v1/instances/hold/packages/{p}"))
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let (s, b) = admin.delete("/api/v1/packages/module/maps/1.0").await;
    assert_eq!(s, 204, "{b}");
    let (s, r) = gina
        .post(
            &format!("/api/v1/backups/{id}/restore"),
            &json!({"to": "again"}),
        )
        .await;
    assert_eq!(s, 202, "{r}");
    let r = wait_backup(&gina, &id, |b| b["restore"]["state"] != "running").await;
    assert_eq!(r["restore"]["state"], "done", "{r}");
    let notes = r["restore"]["notes"].to_string();
    assert!(
        notes.contains("module maps 1.0") && notes.contains("fetched again"),
        "{r}"
    );
    let (_, now) = gina.get("/api/v1/instances/again/packages").await;
    assert_eq!(chosen(&now), ["ose@2.0", "maps@1.0"], "{now}");
    assert!(
        library(&admin)
            .await
            .contains(&"module maps 1.0".to_owned())
    );

    // Lost again and no longer served: the restore into its own world
    // goes through, and says what it could not put back.
    let (s, b) = gina.delete("/api/v1/instances/again/packages/maps").await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = admin.delete("/api/v1/packages/module/maps/1.0").await;
    assert_eq!(s, 204, "{b}");
    host.files.lock().unwrap().remove("/maps/1.0.zip");
    let (s, r) = gina
        .post(&format!("/api/v1/backups/{id}/restore"), &json!({}))
        .await;
    assert_eq!(s, 202, "{r}");
    let r = wait_backup(&gina, &id, |b| {
        b["restore"]["state"] != "running" && b["restore"]["to"] == "hold"
    })
    .await;
    assert_eq!(r["restore"]["state"], "done", "{r}");
    let notes = r["restore"]["notes"].to_string();
    assert!(notes.contains("could not be fetched again"), "{r}");
    let (_, now) = gina.get("/api/v1/instances/hold/packages").await;
    assert_eq!(chosen(&now), ["ose@2.0"], "{now}");
}

/// In Chromium: an admin adds a package (and what it needs) from the
/// library page and watches the fetch end; a game master picks it on the
/// world's page, sees it and what came with it, moves to a newer version;
/// a release change the packages do not fit is refused on the settings
/// form, naming them, until forced; a package another needs cannot be
/// dropped, the other can.
#[tokio::test(flavor = "multi_thread")]
async fn the_library_and_a_worlds_packages_in_the_browser() {
    let Some(b) = crate::web::Browser::start(true, false).await else {
        return;
    };
    let host = Host::start().await;
    let server = Server::start_with_env(&[], &[("TAVERN_BACKUPS_AFTER_STOP", "false")]);
    let base = server.url.replace("127.0.0.1", "localhost");
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "one", &key_for("one")).await;
    admin
        .create_user("warden", "admin", "warden-password-1")
        .await;
    admin.create_user("gina", "gm", "gina-password-1").await;
    let gina = admin.login("gina", "gina-password-1").await;
    let old = crate::releases::install_fake(&server, 13, 351, crate::releases::FAKE_MAIN_JS, false);
    let new = crate::releases::install_fake(&server, 14, 360, crate::releases::FAKE_MAIN_JS, false);
    create_world(&gina, &json!({"slug": "lamp", "release": old})).await;
    let ose = host.publish(
        "system",
        json!({"id": "ose", "title": "Old-School Essentials", "version": "2.0"}),
        &[],
    );
    let torch = host.publish(
        "module",
        json!({"id": "torch", "title": "Torch", "version": "1.0",
               "compatibility": {"minimum": "12", "maximum": "13"},
               "relationships": {"requires": [{"id": "ose", "type": "system", "manifest": ose}]}}),
        &[],
    );
    let sign_in = |user: &'static str, password: &'static str| {
        let (b, base) = (&b, &base);
        async move {
            b.goto(&format!("{base}/auth/login")).await;
            b.fill("#username", user).await;
            b.fill("#password", password).await;
            b.click("form.card button[type=submit]").await;
        }
    };

    sign_in("warden", "warden-password-1").await;
    b.goto(&format!("{base}/admin/packages")).await;
    assert!(b.text("main").await.contains("The library is empty."));
    b.fill("#manifest-url", &torch).await;
    b.click("#add-package").await;
    assert!(
        b.text(".flash.ok")
            .await
            .contains("Fetching module torch 1.0"),
        "{}",
        b.text("main").await
    );
    b.wait_text("[data-job] [data-field=outcome]", "the fetch ends", |t| {
        t.starts_with("added")
    })
    .await;
    b.wait_text("main", "the library lists both", |t| {
        t.contains("Torch") && t.contains("Old-School Essentials")
    })
    .await;
    b.assert_accessible().await;
    b.screenshot("admin-packages").await;
    b.click("form.signout button").await;

    sign_in("gina", "gina-password-1").await;
    b.goto(&format!("{base}/dashboard/worlds/lamp")).await;
    assert!(
        b.text("#packages-h + p + p")
            .await
            .contains("uses none of the library's packages")
    );
    b.set("#package", "module:torch").await;
    b.click("#use-package").await;
    assert!(b.text(".flash.ok").await.contains("lamp uses torch"));
    assert_eq!(
        b.texts("tr[data-package] td[data-label=Package]").await,
        ["ose\nOld-School Essentials", "torch\nTorch"]
    );
    assert_eq!(
        b.texts("tr[data-package] [data-field=state]").await,
        ["ready", "ready"]
    );
    b.assert_accessible().await;
    b.screenshot("world-packages").await;

    // A newer torch in the library: the world offers it, and moves.
    host.publish(
        "module",
        json!({"id": "torch", "title": "Torch", "version": "1.1",
               "compatibility": {"minimum": "12", "maximum": "13"},
               "relationships": {"requires": [{"id": "ose", "type": "system"}]}}),
        &[],
    );
    let (s, found) = admin
        .post("/api/v1/packages/update", &json!({"id": "torch"}))
        .await;
    assert_eq!(s, 200, "{found}");
    job_end(&admin, found[0]["job"].as_u64().unwrap()).await;
    b.goto(&format!("{base}/dashboard/worlds/lamp")).await;
    b.click("tr[data-package='module:torch'] form[action$='/packages'] button")
        .await;
    assert!(
        b.text("tr[data-package='module:torch'] td[data-label=Version]")
            .await
            .starts_with("1.1")
    );
    // Foundry 14 would not load torch: the release change is refused,
    // naming it, and changes nothing, unless forced.
    b.set("#release", &new).await;
    b.click("form[action$='/settings'] button[type=submit]")
        .await;
    let refused = b.text(".flash.err").await;
    assert!(refused.contains("torch"), "{refused}");
    let (_, w) = gina.get("/api/v1/instances/lamp").await;
    assert_eq!(w["release"], old.as_str(), "{w}");
    b.set("#release", &new).await;
    b.el("#force").await.click().await.unwrap();
    b.click("form[action$='/settings'] button[type=submit]")
        .await;
    assert_eq!(b.text(".flash.ok").await, "Settings saved.");
    let (_, w) = gina.get("/api/v1/instances/lamp").await;
    assert_eq!(w["release"], new.as_str(), "{w}");
    assert!(
        b.text("tr[data-package='module:torch'] [data-field=state]")
            .await
            .contains("will not load"),
        "{}",
        b.text("main").await
    );

    // What another package needs cannot go; torch can.
    b.click("tr[data-package='system:ose'] form[action$='/remove'] button")
        .await;
    assert!(
        b.text(".flash.err").await.contains("torch"),
        "{}",
        b.text("main").await
    );
    b.click("tr[data-package='module:torch'] form[action$='/remove'] button")
        .await;
    assert!(b.text(".flash.ok").await.contains("no longer uses torch"));
    assert_eq!(b.texts("tr[data-package]").await.len(), 1);
    b.close().await;
}
