//! Worlds in containers, against this machine's real Docker engine and the
//! stand-in's image (`scripts/stub-image.sh`; `.ci/run` builds it). Where no
//! engine answers these tests skip with a message; under `CI=true` they fail.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;

const IMAGE: &str = "tavern-foundry-stub:latest";

/// Whether the engine answers and has the stand-in's image.
fn docker_ready() -> bool {
    image_ready(IMAGE, "bash scripts/stub-image.sh")
}

/// Whether the engine answers and has `image` (which `build` makes).
pub(crate) fn image_ready(image: &str, build: &str) -> bool {
    let ok = |args: &[&str]| {
        Command::new("docker")
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let why = if !ok(&["info"]) {
        "no Docker engine answers"
    } else if !ok(&["image", "inspect", image]) {
        return missing(&format!("the image {image} is missing ({build} builds it)"));
    } else {
        return true;
    };
    missing(why)
}

/// Fails under `CI=true`, else says why the test skips.
fn missing(why: &str) -> bool {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {why}"
    );
    eprintln!("skipped: {why}");
    false
}

pub(crate) fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A Tavern whose worlds run in containers of its own installation; every
/// container it made is removed when this is dropped (after Tavern).
struct DockerTavern {
    server: Option<Server>,
    installation: String,
}

impl DockerTavern {
    fn start() -> Self {
        Self::start_with(&[])
    }

    fn start_with(env: &[(&str, &str)]) -> Self {
        let installation = format!("t{}", std::process::id());
        let mut all = vec![
            ("TAVERN_RUNTIME_KIND", "docker"),
            ("TAVERN_RUNTIME_DOCKER_INSTALLATION", installation.as_str()),
            ("TAVERN_RUNTIME_DOCKER_NETWORK", "tavern-tests"),
            ("TAVERN_BACKUPS_AFTER_STOP", "false"),
        ];
        all.extend_from_slice(env);
        let server = Server::start_with_env(&[], &all);
        Self {
            server: Some(server),
            installation,
        }
    }

    fn server(&mut self) -> &mut Server {
        self.server.as_mut().expect("running")
    }

    fn containers(&self) -> Vec<String> {
        let filter = format!("label=tavern.installation={}", self.installation);
        docker(&["ps", "-aq", "--filter", &filter])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn inspect(&self, slug: &str) -> Value {
        self.try_inspect(slug)
            .unwrap_or_else(|| panic!("{slug} has no container"))
    }

    /// The world's container, if it has one now.
    fn try_inspect(&self, slug: &str) -> Option<Value> {
        let name = format!("tavern-{}-{slug}", self.installation);
        let out = Command::new("docker")
            .args(["inspect", &name])
            .output()
            .ok()?;
        let list: Value = serde_json::from_slice(&out.stdout).ok()?;
        list.get(0).cloned()
    }
}

impl Drop for DockerTavern {
    fn drop(&mut self) {
        drop(self.server.take());
        for id in self.containers() {
            let _ = Command::new("docker").args(["rm", "-f", &id]).output();
        }
    }
}

/// A docker world of the admin's with its own key, started and running.
async fn running_world(api: &Api, slug: &str) -> Value {
    add_key(api, slug, &key_for(slug)).await;
    let b = create_world(
        api,
        &json!({"slug": slug, "release": "stub", "runtime": "docker"}),
    )
    .await;
    assert_eq!(b["runtime"], "docker");
    let (s, b) = api
        .post(&format!("/api/v1/instances/{slug}/start"), &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(api, slug, "running").await.0
}

#[tokio::test(flavor = "multi_thread")]
async fn a_world_runs_in_a_container_configured_the_felddy_way() {
    if !docker_ready() {
        return;
    }
    let mut t = DockerTavern::start();
    let server = t.server();
    let admin = server.api(Some(&server.admin_token));
    running_world(&admin, "dock-env").await;
    let server = t.server.as_ref().unwrap();

    // Through the proxy, as players reach it; the stand-in reads the key
    // and the options Tavern wrote, under felddy's layout.
    let (s, lic) = via_proxy(server, "dock-env", "/_stub/license").await;
    assert_eq!(s, 200, "{lic}");
    assert_eq!(lic["license"], key_for("dock-env"));
    assert_eq!(lic["dataPath"], "/data");
    let (s, cfg) = via_proxy(server, "dock-env", "/_stub/config").await;
    assert_eq!(s, 200, "{cfg}");
    assert_eq!(cfg["hostname"], "dock-env.localhost");
    assert_eq!(cfg["port"], 30000);

    let c = t.inspect("dock-env");
    let env: Vec<&str> = c["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in [
        "FOUNDRY_HOSTNAME=dock-env.localhost",
        "CONTAINER_PRESERVE_CONFIG=true",
        "FOUNDRY_PROXY_SSL=false",
    ] {
        assert!(env.contains(&want), "{want} not in {env:?}");
    }
    assert!(
        env.iter().any(|e| e.starts_with("FOUNDRY_PROXY_PORT=")),
        "{env:?}"
    );
    assert_eq!(c["Config"]["Labels"]["tavern.instance"], "dock-env");
    assert!(
        c["Config"]["Hostname"]
            .as_str()
            .unwrap()
            .starts_with("foundry-")
    );
    assert!(
        !c["Config"]["Hostname"]
            .as_str()
            .unwrap()
            .contains(&key_for("dock-env").to_lowercase()),
        "the hostname gives the key away"
    );
    // Limits, mounts, no published port.
    assert_eq!(c["HostConfig"]["Memory"], 1 << 30);
    assert_eq!(c["HostConfig"]["NanoCpus"], 1_000_000_000i64);
    let networks = c["NetworkSettings"]["Networks"].as_object().unwrap();
    assert_eq!(networks.keys().collect::<Vec<_>>(), ["tavern-tests"]);
    let ports = &c["HostConfig"]["PortBindings"];
    assert!(
        ports.is_null() || ports.as_object().unwrap().is_empty(),
        "{ports}"
    );
    let binds: Vec<&str> = c["HostConfig"]["Binds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let data = server.data_dir().join("instances/dock-env/data");
    assert!(
        binds.contains(&format!("{}:/data", data.display()).as_str()),
        "{binds:?}"
    );
    assert!(
        binds.iter().any(|b| b.ends_with(":/data/Data/shared:ro")),
        "{binds:?}"
    );
    // The world's files are on the host, where backups find them.
    assert!(data.join("Config/options.json").is_file());

    // The shared assets are read-only inside.
    let file = server.home().join("token.txt");
    std::fs::write(&file, "x").unwrap();
    let name = format!("tavern-{}-dock-env", t.installation);
    let copied = Command::new("docker")
        .args([
            "cp",
            file.to_str().unwrap(),
            &format!("{name}:/data/Data/shared/token.txt"),
        ])
        .output()
        .unwrap();
    assert!(
        !copied.status.success(),
        "a write into the read-only mount worked"
    );

    // Stopping removes the container; the data stays.
    let (s, _) = admin
        .post("/api/v1/instances/dock-env/stop", &json!({}))
        .await;
    assert_eq!(s, 202);
    wait_for_state(&admin, "dock-env", "stopped").await;
    wait_until("the container is gone", || async {
        t.containers().is_empty()
    })
    .await;
    assert!(data.join("Config/options.json").is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_container_comes_back_and_a_restarted_tavern_adopts_it() {
    if !docker_ready() {
        return;
    }
    let mut t = DockerTavern::start();
    let server = t.server();
    let admin = server.api(Some(&server.admin_token));
    running_world(&admin, "dock-crash").await;
    let first = t.inspect("dock-crash")["Id"].as_str().unwrap().to_owned();

    // Killed from outside: the reconciler starts it again.
    docker(&["kill", &first]);
    wait_until("a new container runs", || async {
        t.try_inspect("dock-crash")
            .is_some_and(|c| c["Id"] != first.as_str() && c["State"]["Running"] == true)
    })
    .await;
    wait_for_state(&admin, "dock-crash", "running").await;
    let second = t.inspect("dock-crash")["Id"].as_str().unwrap().to_owned();

    // Tavern dies; the container does not. The next Tavern adopts it:
    // the same container, never a second one.
    t.server().kill();
    assert_eq!(t.inspect("dock-crash")["State"]["Running"], true);
    t.server().relaunch();
    let server = t.server();
    let admin = server.api(Some(&server.admin_token));
    wait_for_state(&admin, "dock-crash", "running").await;
    for _ in 0..10 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(t.containers(), vec![second[..12].to_owned()]);
    }
    let (s, _) = via_proxy(t.server.as_ref().unwrap(), "dock-crash", "/api/status").await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_world_moves_between_process_and_docker_with_its_data() {
    if !docker_ready() {
        return;
    }
    let mut t = DockerTavern::start();
    let server = t.server();
    let admin = server.api(Some(&server.admin_token));
    running_world(&admin, "dock-move").await;
    let (s, _) = admin
        .post("/api/v1/instances/dock-move/stop", &json!({}))
        .await;
    assert_eq!(s, 202);
    wait_for_state(&admin, "dock-move", "stopped").await;
    let server = t.server.as_ref().unwrap();
    let data = server.data_dir().join("instances/dock-move/data");
    std::fs::create_dir_all(data.join("Data/worlds/kept")).unwrap();
    std::fs::write(data.join("Data/worlds/kept/world.json"), b"{\"kept\":1}").unwrap();

    let (s, b) = admin
        .patch(
            "/api/v1/instances/dock-move",
            &json!({"runtime": "process"}),
        )
        .await;
    assert_eq!((s, b["runtime"].as_str()), (200, Some("process")), "{b}");
    let (s, _) = admin
        .post("/api/v1/instances/dock-move/start", &json!({}))
        .await;
    assert_eq!(s, 202);
    wait_for_state(&admin, "dock-move", "running").await;
    assert!(
        t.containers().is_empty(),
        "a container runs for a process world"
    );
    let pid = server_pid(server, "dock-move");
    assert!(process_alive(pid));
    assert_eq!(
        std::fs::read(data.join("Data/worlds/kept/world.json")).unwrap(),
        b"{\"kept\":1}"
    );
    // Not while it runs; not to a runtime that does not exist.
    let running = admin
        .patch("/api/v1/instances/dock-move", &json!({"runtime": "docker"}))
        .await;
    assert_refused(&running, 409, "instance_running");
    let unknown = admin
        .patch("/api/v1/instances/dock-move", &json!({"runtime": "lxc"}))
        .await;
    assert_refused(&unknown, 422, "invalid_runtime");
}

/// The license storm of the process runtime, on containers: no key is ever
/// served by two containers at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_storm_on_containers_never_serves_a_key_twice() {
    if !docker_ready() {
        return;
    }
    let t = DockerTavern::start();
    let server = t.server.as_ref().unwrap();
    // Each running container's address on the private network.
    let addresses = || {
        let ids = t.containers();
        if ids.is_empty() {
            return Vec::new();
        }
        let out = Command::new("docker")
            .arg("inspect")
            .args(&ids)
            .output()
            .unwrap();
        let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let slug = c["Config"]["Labels"]["tavern.instance"]
                    .as_str()?
                    .to_owned();
                let ip = c["NetworkSettings"]["Networks"]["tavern-tests"]["IPAddress"].as_str()?;
                let addr = format!("{ip}:30000").parse().ok()?;
                Some((slug, addr))
            })
            .collect()
    };
    crate::runtime::storm(server, "docker", addresses).await;
    let filter = format!("label=tavern.installation={}", t.installation);
    let running = docker(&[
        "ps",
        "-q",
        "--filter",
        &filter,
        "--filter",
        "status=running",
    ]);
    let running = running.lines().count();
    assert!(running <= 3, "{running} containers run on 3 keys");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_of_no_world_is_removed_and_logs_come_from_the_container() {
    if !docker_ready() {
        return;
    }
    let mut t = DockerTavern::start();
    let server = t.server();
    let admin = server.api(Some(&server.admin_token));
    running_world(&admin, "dock-logs").await;
    let out = server.cli(
        Some(&server.admin_token),
        &["instance", "logs", "dock-logs", "--tail", "50"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Server started and listening on port 30000"),
        "{}",
        text(&out.stdout)
    );

    // A container of ours that belongs to no world: removed.
    let ghost = format!("tavern-{}-ghost", t.installation);
    docker(&[
        "run",
        "-d",
        "--name",
        &ghost,
        "--label",
        "tavern.instance=ghost",
        "--label",
        &format!("tavern.installation={}", t.installation),
        "--label",
        "tavern.instance-id=01a20000-0000-7000-8000-000000000000",
        "--network",
        "tavern-tests",
        "-e",
        "FOUNDRY_HOSTNAME=ghost.localhost",
        IMAGE,
    ]);
    wait_until("the ghost container is removed", || async {
        t.try_inspect("ghost").is_none()
    })
    .await;
    // And one of another Tavern on the same engine is left alone.
    let stranger = format!("tavern-other{}-stranger", std::process::id());
    docker(&[
        "run",
        "-d",
        "--name",
        &stranger,
        "--label",
        "tavern.instance=stranger",
        "--label",
        &format!("tavern.installation=other{}", std::process::id()),
        "--label",
        "tavern.instance-id=01a20000-0000-7000-8000-000000000001",
        IMAGE,
    ]);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let still = docker(&["inspect", "-f", "{{.State.Running}}", &stranger]);
    docker(&["rm", "-f", &stranger]);
    assert_eq!(still, "true", "another Tavern's container was touched");
}

/// A container registry (Debian's `docker-registry`, the reference
/// implementation) on a loopback port, stopped by its pid when dropped.
struct Registry {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Option<Self> {
        let program = std::path::Path::new("/usr/bin/docker-registry");
        if !program.is_file() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but docker-registry is not installed (bash .ci/run installs it)"
            );
            eprintln!(
                "skipped: docker-registry is not installed (apt-get install docker-registry)"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let [port] = free_ports::<1>();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("store").display()
            ),
        )
        .unwrap();
        let child = Command::new(program)
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let registry = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the registry did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Some(registry)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_image_is_pulled_before_the_world_starts() {
    if !docker_ready() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    // The stand-in's image, as release 13.351 of a registry's repository,
    // present in the registry and not in the engine.
    let repo = format!("127.0.0.1:{}/foundry-{}", registry.port, std::process::id());
    let tagged = format!("{repo}:13.351");
    docker(&["tag", IMAGE, &tagged]);
    docker(&["push", &tagged]);
    docker(&["rmi", &tagged]);
    let template = format!("{repo}:{{version}}");
    let mut t = DockerTavern::start_with(&[("TAVERN_RUNTIME_DOCKER_IMAGE", &template)]);
    let server = t.server();
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "pulled", &key_for("pulled")).await;
    create_world(
        &admin,
        &json!({"slug": "pulled", "release": "13.351", "runtime": "docker"}),
    )
    .await;
    let (s, _) = admin
        .post("/api/v1/instances/pulled/start", &json!({}))
        .await;
    assert_eq!(s, 202);
    wait_for_state(&admin, "pulled", "running").await;
    assert_eq!(t.inspect("pulled")["Config"]["Image"], tagged.as_str());
    let log = t.server().output();
    assert!(log.contains("pulling the image"), "{log}");
    // A release the registry does not have: the world fails and says why.
    let server = t.server();
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "unpulled", &key_for("unpulled")).await;
    create_world(
        &admin,
        &json!({"slug": "unpulled", "release": "99.9", "runtime": "docker"}),
    )
    .await;
    let (s, _) = admin
        .post("/api/v1/instances/unpulled/start", &json!({}))
        .await;
    assert_eq!(s, 202);
    let (failed, _) = wait_for_state(&admin, "unpulled", "failed").await;
    let why = failed["state_reason"].as_str().unwrap_or_default();
    assert!(
        why.contains("cannot pull") && why.contains(":99.9"),
        "{failed}"
    );
    drop(t);
    let _ = Command::new("docker").args(["rmi", &tagged]).output();
}

/// Where the engine's private network is out of Tavern's reach: the port
/// is published on the host's loopback, and players still get through.
#[tokio::test(flavor = "multi_thread")]
async fn a_published_port_on_loopback_carries_the_players() {
    if !docker_ready() {
        return;
    }
    let mut t = DockerTavern::start_with(&[("TAVERN_RUNTIME_DOCKER_PUBLISH", "true")]);
    let server = t.server();
    let admin = server.api(Some(&server.admin_token));
    running_world(&admin, "dock-pub").await;
    let c = t.inspect("dock-pub");
    let binding = &c["HostConfig"]["PortBindings"]["30000/tcp"][0];
    assert_eq!(binding["HostIp"], "127.0.0.1", "{c}");
    let (s, lic) = via_proxy(t.server.as_ref().unwrap(), "dock-pub", "/_stub/license").await;
    assert_eq!(
        (s, lic["hostname"].as_str()),
        (200, Some("dock-pub.localhost")),
        "{lic}"
    );
}

/// Worlds in containers see exactly the library packages they chose, as
/// Foundry would (the stand-in's `/_stub/packages` follows the links the
/// init step made): each version bound read-only at the path the links
/// name, nothing of it in a world that chose nothing.
#[tokio::test(flavor = "multi_thread")]
async fn worlds_in_containers_see_exactly_their_library_packages() {
    use crate::packages::{Host, add, ids};
    if !docker_ready() {
        return;
    }
    let host = Host::start().await;
    let mut t = DockerTavern::start();
    let server = t.server();
    let admin = server.api(Some(&server.admin_token));
    let ose = host.publish(
        "system",
        json!({"id": "ose", "version": "2.0"}),
        &[("ose.mjs", b"export {}")],
    );
    let lantern = host.publish(
        "module",
        json!({"id": "lantern", "version": "1.0",
               "relationships": {"requires": [{"id": "ose", "type": "system", "manifest": ose}]}}),
        &[("lantern.js", b"light()")],
    );
    let job = add(&admin, json!({"manifest_url": lantern})).await;
    assert_eq!(job["state"], "done", "{job}");
    for slug in ["dock-lib", "dock-bare"] {
        add_key(&admin, slug, &key_for(slug)).await;
        create_world(
            &admin,
            &json!({"slug": slug, "release": "stub", "runtime": "docker"}),
        )
        .await;
    }
    let (s, b) = admin
        .post(
            "/api/v1/instances/dock-lib/packages",
            &json!({"id": "lantern"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    for slug in ["dock-lib", "dock-bare"] {
        let (s, b) = admin
            .post(&format!("/api/v1/instances/{slug}/start"), &json!({}))
            .await;
        assert_eq!(s, 202, "{b}");
        wait_for_state(&admin, slug, "running").await;
    }
    let server = t.server.as_ref().unwrap();
    let (s, seen) = via_proxy(server, "dock-lib", "/_stub/packages").await;
    assert_eq!(s, 200, "{seen}");
    assert_eq!(ids(&seen, "systems"), ["ose@2.0"], "{seen}");
    assert_eq!(ids(&seen, "modules"), ["lantern@1.0"], "{seen}");
    assert_eq!(seen["skipped"], json!([]), "{seen}");
    let (_, bare) = via_proxy(server, "dock-bare", "/_stub/packages").await;
    assert_eq!(ids(&bare, "systems"), Vec::<String>::new(), "{bare}");
    assert_eq!(ids(&bare, "modules"), Vec::<String>::new(), "{bare}");

    // Each version is bound read-only, at the path its link names.
    let mounts = |slug: &str| -> Vec<(String, bool)> {
        t.inspect(slug)["Mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| {
                m["Destination"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("/tavern/packages"))
            })
            .map(|m| {
                (
                    m["Destination"].as_str().unwrap().to_owned(),
                    m["RW"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let mut bound = mounts("dock-lib");
    bound.sort();
    assert_eq!(
        bound,
        [
            ("/tavern/packages/module/lantern/1.0".to_owned(), false),
            ("/tavern/packages/system/ose/2.0".to_owned(), false),
        ]
    );
    assert!(mounts("dock-bare").is_empty());
    let link = server
        .data_dir()
        .join("instances/dock-lib/data/Data/modules/lantern");
    assert_eq!(
        std::fs::read_link(link).unwrap(),
        std::path::Path::new("/tavern/packages/module/lantern/1.0")
    );
}
