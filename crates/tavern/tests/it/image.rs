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
    let version = docker(&["run", "--rm", "--network=none", IMAGE, "--version"]);
    assert!(version.starts_with("tavern "), "{version}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_serves_tavern_as_an_unprivileged_user() {
    if !image_ready(IMAGE, BUILD) {
        return;
    }
    // Its default command, with its data on a scratch volume.
    let id = docker(&[
        "run",
        "-d",
        "--read-only",
        "--tmpfs=/var/lib/tavern:uid=65532,gid=65532",
        "--tmpfs=/tmp:uid=65532,gid=65532",
        "-p",
        "127.0.0.1::8080",
        IMAGE,
    ]);
    struct Removed(String);
    impl Drop for Removed {
        fn drop(&mut self) {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", &self.0])
                .output();
        }
    }
    let container = Removed(id);
    let port = docker(&["port", &container.0, "8080/tcp"]);
    let url = format!("http://{}", port.lines().next().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let health = loop {
        match reqwest::get(format!("{url}/healthz")).await {
            Ok(r) => break r,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "{e}: {}",
                    docker(&["logs", &container.0])
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(health.status(), 200);
    let user = docker(&["inspect", "-f", "{{.Config.User}}", &container.0]);
    assert_eq!(user, "65532:65532");
    let logs = docker(&["logs", &container.0]);
    assert!(logs.contains("Created the admin user"), "{logs}");
}
