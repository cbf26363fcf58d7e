//! `[storage]` against moto's S3 and IAM with IAM's checks on: a world gets
//! a bucket and a key that reaches only it, written into its `awsConfig`
//! as Foundry reads it (the stand-in tells what it read); the key is never
//! in an answer, a log or a backup; what the bucket holds is counted in
//! usage; a destroyed world's key is deleted and its uploads kept or
//! removed by setting.

use serde_json::{Value, json};
use tavern_backup::archive;
use tavern_storage::testing::{Provider, put};

use crate::support::*;

/// A Tavern whose worlds get storage at `p`, with `more` lines of
/// `[storage]`.
fn tavern_storing_at(p: &Provider, more: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tavern.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nprovider = \"s3\"\nendpoint = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nrecount_seconds = 1\n{more}",
            p.endpoint(),
            p.tavern.0,
            p.tavern.1
        ),
    )
    .unwrap();
    let server = Server::start_with_env(
        &["--config", config.to_str().unwrap()],
        &[("TAVERN_BACKUPS_AFTER_STOP", "false")],
    );
    (server, dir)
}

async fn storage_of(api: &Api, slug: &str) -> Value {
    let (s, b) = api.get(&format!("/api/v1/instances/{slug}")).await;
    assert_eq!(s, 200, "{b}");
    b["storage"].clone()
}

fn aws_config(server: &Server, slug: &str) -> Value {
    let file = server
        .data_dir()
        .join("instances")
        .join(slug)
        .join("data/Config/awsConfig.json");
    serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
}

async fn start(api: &Api, slug: &str) {
    let (s, b) = api
        .post(&format!("/api/v1/instances/{slug}/start"), &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(api, slug, "running").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_world_gets_a_bucket_and_a_key_that_reaches_only_it() {
    let Some(p) = Provider::start().await else {
        return;
    };
    let (server, _dir) = tavern_storing_at(&p, "");
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "one", &key_for("one")).await;
    add_key(&admin, "two", &key_for("two")).await;
    admin.create_user("gina", "gm", "gina-password").await;
    admin.create_user("otto", "gm", "otto-password").await;
    let gina = admin.login("gina", "gina-password").await;
    let otto = admin.login("otto", "otto-password").await;
    let made = create_world(&gina, &json!({"slug": "vault", "release": "stub"})).await;
    let place = made["storage"]["place"].as_str().unwrap().to_owned();
    assert!(place.starts_with("tavern-vault-"), "{made}");
    create_world(&otto, &json!({"slug": "keep", "release": "stub"})).await;
    start(&gina, "vault").await;
    start(&otto, "keep").await;

    // Foundry is given the bucket and the key, in the file it reads.
    let cfg = aws_config(&server, "vault");
    assert_eq!(cfg["buckets"], json!([place]));
    assert_eq!(cfg["endpoint"], p.endpoint());
    assert_eq!(cfg["forcePathStyle"], true);
    let id = cfg["credentials"]["accessKeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret = cfg["credentials"]["secretAccessKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let port = read_port(&server, "vault");
    let told: Value = reqwest::get(format!("http://127.0.0.1:{port}/_stub/storage"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(told["file"], "awsConfig.json", "{told}");
    assert_eq!(told["buckets"], json!([place]));
    assert_eq!(told["accessKeyId"], id.as_str());
    assert_eq!(told["hasSecret"], true);

    // The key reaches its world's bucket and no other.
    let theirs = aws_config(&server, "keep")["buckets"][0]
        .as_str()
        .unwrap()
        .to_owned();
    put(
        p.endpoint(),
        (&id, &secret),
        &place,
        "maps/cave.webp",
        &[7; 1000],
    )
    .await
    .unwrap();
    assert_eq!(
        put(p.endpoint(), (&id, &secret), &theirs, "x.webp", b"1").await,
        Err("AccessDenied".into())
    );

    // Shown to its owner, counted, and never with the secret.
    wait_until("the upload is counted", || async {
        storage_of(&gina, "vault").await["bytes"] == 1000
    })
    .await;
    let st = storage_of(&gina, "vault").await;
    assert_eq!(
        (st["place"].as_str(), st["ready"].as_bool()),
        (Some(place.as_str()), Some(true))
    );
    let (_, usage) = gina.get("/api/v1/usage").await;
    assert_eq!(usage["stored_bytes"], 1000, "{usage}");
    assert_eq!(usage["users"][0]["stored_bytes"], 1000, "{usage}");
    let out = server.cli(Some(gina.token()), &["usage"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("STORED") && table.contains("in object storage"),
        "{table}"
    );
    let usage_page = page_as(&server, &server.admin_token, "/admin/usage").await;
    assert!(usage_page.contains("data-label=\"Stored\""), "{usage_page}");
    let (_, theirs_usage) = otto.get("/api/v1/usage").await;
    assert_eq!(theirs_usage["stored_bytes"], 0, "{theirs_usage}");
    let (_, all) = admin.get("/api/v1/instances").await;
    let (_, events) = admin.get("/api/v1/events?limit=1000").await;
    for answer in [all.to_string(), events.to_string(), server.output()] {
        assert!(
            !answer.contains(&secret),
            "the world's secret key was shown"
        );
    }
    let page = page_as(&server, gina.token(), "/dashboard/worlds/vault").await;
    assert!(
        page.contains(&format!("Uploads go to the bucket {place}")),
        "{page}"
    );

    // Not in a backup, nor in its owner's download.
    let (s, b) = gina
        .post("/api/v1/instances/vault/backups", &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    let backup = b["id"].as_str().unwrap().to_owned();
    wait_until("the backup is made", || async {
        let (_, b) = gina.get(&format!("/api/v1/backups/{backup}")).await;
        b["status"] == "complete"
    })
    .await;
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/backups/{backup}/download", server.url))
        .bearer_auth(gina.token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    let tar = zstd::decode_all(bytes.as_ref()).unwrap();
    assert!(!tar.windows(secret.len()).any(|w| w == secret.as_bytes()));
    let unpacked = server.home().join("vault-download");
    let read = archive::read(bytes.as_ref(), Some(&unpacked), None).unwrap();
    assert!(
        read.manifest
            .withheld
            .contains(&"Config/awsConfig.json".to_owned()),
        "{:?}",
        read.manifest.withheld
    );
    assert!(!unpacked.join("Config/awsConfig.json").exists());

    // Destroyed: its key is gone, its uploads are kept (the default).
    let (s, b) = gina.delete("/api/v1/instances/vault").await;
    assert!(s == 200 || s == 202, "{s} {b}");
    wait_until("the world's key is deleted", || async {
        !p.users().await.contains(&place)
    })
    .await;
    assert!(p.buckets().await.contains(&place));
    assert_eq!(
        put(p.endpoint(), (&id, &secret), &place, "late.webp", b"1").await,
        Err("InvalidAccessKeyId".into())
    );
    let (_, events) = admin.get("/api/v1/events?limit=1000").await;
    let removed: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "storage.remove")
        .collect();
    assert_eq!(removed.len(), 1, "{events}");
    assert!(removed[0]["detail"].as_str().unwrap().contains("kept"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destroyed_worlds_uploads_are_removed_when_asked() {
    let Some(p) = Provider::start().await else {
        return;
    };
    let (server, _dir) = tavern_storing_at(&p, "on_destroy = \"remove\"\n");
    let admin = server.api(Some(&server.admin_token));
    let made = add_world(&admin, "brief", "stub").await;
    let place = made["storage"]["place"].as_str().unwrap().to_owned();
    wait_until("the world's bucket is made", || async {
        storage_of(&admin, "brief").await["ready"] == true
    })
    .await;
    assert!(p.buckets().await.contains(&place));
    let admin_s3 = (p.tavern.0.as_str(), p.tavern.1.as_str());
    put(p.endpoint(), admin_s3, &place, "token.png", b"12345")
        .await
        .unwrap();
    let (s, b) = admin.delete("/api/v1/instances/brief").await;
    assert!(s == 200 || s == 202, "{s} {b}");
    wait_until("the world's bucket is removed", || async {
        !p.buckets().await.contains(&place)
    })
    .await;
    assert!(p.users().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_world_whose_storage_fails_starts_without_it_and_says_why() {
    // A provider that does not listen: every attempt fails.
    let [port] = free_ports::<1>();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tavern.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nprovider = \"s3\"\nendpoint = \"http://127.0.0.1:{port}\"\naccess_key_id = \"AKIDTAVERN\"\nsecret_access_key = \"not-a-real-secret\"\n"
        ),
    )
    .unwrap();
    let server = Server::start_with_env(&["--config", config.to_str().unwrap()], &[]);
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "one", &key_for("one")).await;
    add_world(&admin, "dry", "stub").await;
    start(&admin, "dry").await;
    let st = storage_of(&admin, "dry").await;
    assert_eq!(st["ready"], false, "{st}");
    assert!(st["error"].as_str().is_some_and(|e| !e.is_empty()), "{st}");
    let told: Value = reqwest::get(format!(
        "http://127.0.0.1:{}/_stub/storage",
        read_port(&server, "dry")
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(told, Value::Null, "the world was given storage: {told}");
    let page = page_as(&server, &server.admin_token, "/dashboard/worlds/dry").await;
    assert!(page.contains("Uploads cannot go to"), "{page}");
    let (_, events) = admin.get("/api/v1/events?limit=1000").await;
    let failures: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "storage.make" && e["outcome"] == "failure")
        .collect();
    assert_eq!(failures.len(), 1, "{events}");
    assert!(!server.output().contains("not-a-real-secret"));
}
