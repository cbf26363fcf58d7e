//! Tavern's own image (the Dockerfile, built by `scripts/tavern-image.sh`;
//! `.ci/run` builds it as `tavern:test` before the tests): the static binary
//! runs from an empty base, as a world's init container runs it on
//! Kubernetes (another user, a read-only root) and as Tavern's server.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::docker::{docker, image_ready};
use crate::support::*;

const IMAGE: &str = "tavern:test";
const BUILD: &str = "PROFILE=stub-image IMAGE=tavern:test bash scripts/tavern-image.sh";

/// A container of the image, detached, removed (by its id) when dropped.
struct Running {
    id: String,
    /// Where its port is published on loopback.
    url: String,
    /// What its `/healthz` first answered.
    healthz_status: u16,
}

impl Running {
    /// `docker run -d ARGS`; answers once `/healthz` answers on `port`.
    async fn start(args: &[&str], port: u16) -> Self {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        let id = docker(&all);
        let published = docker(&["port", &id, &format!("{port}/tcp")]);
        let mut running = Running {
            url: format!("http://{}", published.lines().next().unwrap_or_default()),
            id,
            healthz_status: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match reqwest::get(format!("{}/healthz", running.url)).await {
                Ok(r) => {
                    running.healthz_status = r.status().as_u16();
                    return running;
                }
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "{e}: {}",
                        docker(&["logs", &running.id])
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.id])
            .output();
    }
}

#[test]
fn the_image_writes_a_worlds_config_as_its_init_container() {
    if !image_ready(IMAGE, BUILD) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (seed, data) = (dir.path().join("seed"), dir.path().join("data"));
    std::fs::create_dir_all(&seed).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    // On the cluster the claim is the pod's group's (fsGroup); here anyone's.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let key = key_for("image");
    std::fs::write(
        seed.join("config.json"),
        json!({
            "hostname": "image.example.org",
            "routePrefix": null,
            "proxySSL": true,
            "proxyPort": 443,
            "licenseKey": key,
            "signedLicense": null,
            "adminHash": "ab".repeat(64),
        })
        .to_string(),
    )
    .unwrap();
    let out = docker(&[
        "run",
        "--rm",
        "--network=none",
        "--user=1000:1000",
        "--read-only",
        "-v",
        &format!("{}:/seed:ro", seed.display()),
        "-v",
        &format!("{}:/data", data.display()),
        IMAGE,
        "foundry-config",
        "--seed=/seed/config.json",
        "--data=/data",
    ]);
    assert!(out.contains("/data/Config"), "{out}");
    let options: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("Config/options.json")).unwrap())
            .unwrap();
    assert_eq!(options["port"], 30000);
    assert_eq!(options["hostname"], "image.example.org");
    assert_eq!(options["proxySSL"], true);
    assert_eq!(
        std::fs::read_to_string(data.join("Config/license.json")).unwrap(),
        format!("{{\"license\":\"{key}\"}}")
    );
    assert_eq!(
        std::fs::read_to_string(data.join("Config/admin.txt")).unwrap(),
        "ab".repeat(64)
    );
    // As on ECS: the seed from its variable (the world's secret), and the
    // host name library copied for Foundry's container, which loads it.
    let ecs_data = dir.path().join("ecs");
    std::fs::create_dir_all(&ecs_data).unwrap();
    std::fs::set_permissions(&ecs_data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let seed_text = std::fs::read_to_string(seed.join("config.json")).unwrap();
    let out = docker(&[
        "run",
        "--rm",
        "--network=none",
        "--user=1000:1000",
        "--read-only",
        "-e",
        &format!("TAVERN_FOUNDRY_SEED={seed_text}"),
        "-v",
        &format!("{}:/data", ecs_data.display()),
        IMAGE,
        "foundry-config",
        "--data=/data",
        "--preload=/usr/local/lib/tavern/libtavern_hostname.so",
    ]);
    assert!(out.contains("/data/Config"), "{out}");
    assert!(ecs_data.join("Config/options.json").is_file());
    let library = ecs_data.join(".tavern/libtavern_hostname.so");
    let hostname = std::process::Command::new("uname")
        .arg("-n")
        .env("LD_PRELOAD", &library)
        .env("TAVERN_HOSTNAME", "foundry-0123456789ab")
        .output()
        .unwrap();
    assert_eq!(text(&hostname.stdout).trim(), "foundry-0123456789ab");
    let version = docker(&["run", "--rm", "--network=none", IMAGE, "--version"]);
    assert!(version.starts_with("tavern "), "{version}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_serves_tavern_as_an_unprivileged_user() {
    if !image_ready(IMAGE, BUILD) {
        return;
    }
    // Its default command, with its data on a scratch volume.
    let container = Running::start(
        &[
            "--read-only",
            "--tmpfs=/var/lib/tavern:uid=65532,gid=65532",
            "--tmpfs=/tmp:uid=65532,gid=65532",
            "-p",
            "127.0.0.1::8080",
            IMAGE,
        ],
        8080,
    )
    .await;
    assert_eq!(container.healthz_status, 200);
    let user = docker(&["inspect", "-f", "{{.Config.User}}", &container.id]);
    assert_eq!(user, "65532:65532");
    let logs = docker(&["logs", &container.id]);
    assert!(logs.contains("Created the admin user"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_serves_a_claim_to_backups_as_a_data_agent() {
    if !image_ready(IMAGE, BUILD) {
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let (claim, token) = (dir.path().join("claim"), dir.path().join("token"));
    std::fs::create_dir_all(claim.join("data/Data/worlds/w")).unwrap();
    std::fs::write(
        claim.join("data/Data/worlds/w/world.json"),
        b"{\"id\":\"w\"}",
    )
    .unwrap();
    std::fs::create_dir_all(&token).unwrap();
    std::fs::write(token.join("token"), "the-agents-token\n").unwrap();
    for d in [
        &claim,
        &claim.join("data"),
        &claim.join("data/Data"),
        &claim.join("data/Data/worlds"),
        &claim.join("data/Data/worlds/w"),
    ] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    // As the pod runs it: Foundry's user, a read-only root.
    let (claim_mount, token_mount) = (
        format!("{}:/claim", claim.display()),
        format!("{}:/agent:ro", token.display()),
    );
    let container = Running::start(
        &[
            "--user=1000:1000",
            "--read-only",
            "-v",
            &claim_mount,
            "-v",
            &token_mount,
            "-p",
            "127.0.0.1::8081",
            IMAGE,
            "data-agent",
            "--claim=/claim",
            "--listen=0.0.0.0:8081",
            "--token-file=/agent/token",
        ],
        8081,
    )
    .await;
    let url = &container.url;
    let http = reqwest::Client::new();
    let anonymous = http.get(format!("{url}/archive")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = http
        .get(format!("{url}/archive"))
        .bearer_auth("another-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let archive = http
        .get(format!("{url}/archive"))
        .bearer_auth("the-agents-token")
        .send()
        .await
        .unwrap();
    assert_eq!(archive.status(), 200);
    let bytes = archive.bytes().await.unwrap();
    let summary = tavern_backup::archive::read(&bytes[..], None, None).unwrap();
    let files: Vec<String> = summary
        .manifest
        .files
        .iter()
        .map(|f| f.path.clone())
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with("worlds/w/world.json")),
        "{files:?}"
    );
}
