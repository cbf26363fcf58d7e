//! Worlds start and stop: the process runtime and the reconciler, with the
//! stand-in and with fake Node releases, seen through the API and the CLI.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

use crate::releases::{
    CRASHING_MAIN_JS, FAKE_MAIN_JS, SILENT_MAIN_JS, SLOW_STOP_MAIN_JS, install_fake,
};
use crate::support::*;

/// Creates worlds that name no key.
async fn add_worlds(admin: &Api, slugs: impl IntoIterator<Item = impl AsRef<str>>, release: &str) {
    for slug in slugs {
        add_world(admin, slug.as_ref(), release).await;
    }
}

/// Adds a pooled key for the world, then creates it (without naming a key:
/// a start takes a free one).
async fn create(admin: &Api, slug: &str, release: &str) -> Value {
    add_key(admin, &format!("for {slug}"), &key_for(slug)).await;
    add_world(admin, slug, release).await
}

async fn start(api: &Api, slug: &str) {
    let (s, b) = api
        .post(&format!("/api/v1/instances/{slug}/start"), &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["desired_state"], "running");
}

async fn stop(api: &Api, slug: &str) {
    let (s, b) = api
        .post(&format!("/api/v1/instances/{slug}/stop"), &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
}

async fn actions(api: &Api) -> Vec<String> {
    let (_, events) = api.get("/api/v1/events?limit=1000").await;
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

/// The stand-in processes running on this test's data directory.
fn stubs_of(server: &Server) -> Vec<u32> {
    let marker = server.data_dir().display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.contains("foundry-stub") && cmd.contains(&marker) && process_alive(*pid)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn start_and_stop_round_trip() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    let created = create(&admin, "round-trip", "stub").await;
    assert_eq!(created["state"], "stopped");
    // The Foundry admin key is shown once, at creation.
    let admin_key = created["admin_key"].as_str().unwrap().to_owned();
    assert_eq!(admin_key.len(), 24);
    let (_, shown) = admin.get("/api/v1/instances/round-trip").await;
    assert!(shown.get("admin_key").is_none(), "{shown}");
    let (_, listed) = admin.get("/api/v1/instances").await;
    assert!(!listed.to_string().contains(&admin_key));

    let out = server.cli(
        Some(&server.admin_token),
        &["instance", "start", "round-trip"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (running, seen) = wait_for_state(&admin, "round-trip", "running").await;
    assert!(
        ["stopped", "starting", "running"]
            .ends_with(&seen.iter().map(String::as_str).collect::<Vec<_>>()[..])
            || seen == ["stopped", "running"],
        "states went {seen:?}"
    );
    assert_eq!(running["world"], "stub-world");
    assert_eq!(running["foundry_version"], "13.351");
    assert_eq!(running["players"], 0);
    let shown = ok_json(&server.cli(
        Some(&server.admin_token),
        &["instance", "show", "round-trip", "--json"],
        None,
    ));
    assert_eq!(shown["state"], "running");

    // Tavern wrote Foundry's Config files; the key-less world has no license.
    let data = server.data_dir().join("instances/round-trip/data");
    let options: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("Config/options.json")).unwrap())
            .unwrap();
    let port = server
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    assert_eq!(options["hostname"], "round-trip.localhost");
    assert_eq!(options["proxyPort"], port);
    assert_eq!(options["proxySSL"], false);
    assert_eq!(options["upnp"], false);
    assert_eq!(
        std::fs::read_to_string(data.join("Config/admin.txt"))
            .unwrap()
            .len(),
        128
    );

    // Its output is in the logs, through the API and the CLI.
    let out = server.cli(
        Some(&server.admin_token),
        &["instance", "logs", "round-trip", "--tail", "5"],
        None,
    );
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("Server started and listening"),
        "{}",
        text(&out.stdout)
    );

    // Stop: SIGTERM, the world is flushed, the state goes stopped.
    // Through the CLI, which waits until it has stopped.
    let pid = server_pid(&server, "round-trip");
    let out = server.cli(
        Some(&server.admin_token),
        &["instance", "stop", "round-trip", "--wait"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).ends_with("round-trip: sleeping\n"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        admin.get("/api/v1/instances/round-trip").await.1["state"],
        "stopped"
    );
    let (stopped, seen) = wait_for_state(&admin, "round-trip", "stopped").await;
    assert_eq!(stopped["desired_state"], "stopped");
    assert!(!seen.iter().any(|s| s == "failed"), "{seen:?}");
    // It sleeps and says who stopped it, in the API and the CLI.
    assert_eq!(stopped["state_reason"], "stopped by admin", "{stopped}");
    let out = server.cli(
        Some(&server.admin_token),
        &["instance", "show", "round-trip"],
        None,
    );
    let shown = text(&out.stdout);
    assert!(
        shown
            .lines()
            .any(|l| l.contains("state") && l.contains("sleeping"))
            && shown
                .lines()
                .any(|l| l.contains("reason") && l.contains("stopped by admin")),
        "{shown}"
    );
    assert!(!process_alive(pid));
    let world: Value = serde_json::from_str(
        &std::fs::read_to_string(data.join("Data/worlds/stub-world/data/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        world["running"], false,
        "the world was flushed before the server exited"
    );
    let acts = actions(&admin).await;
    for a in [
        "instance.start",
        "instance.running",
        "instance.stop",
        "instance.stopped",
    ] {
        assert!(acts.contains(&a.to_owned()), "no {a} in {acts:?}");
    }

    // And start again on the same data.
    start(&admin, "round-trip").await;
    wait_for_state(&admin, "round-trip", "running").await;
    assert_eq!(stubs_of(&server).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_server_comes_back() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    create(&admin, "phoenix", "stub").await;
    start(&admin, "phoenix").await;
    wait_for_state(&admin, "phoenix", "running").await;
    let first = server_pid(&server, "phoenix");
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &first.to_string()])
            .status()
            .unwrap()
            .success()
    );
    wait_until("the server is back with a new process", || async {
        let (_, i) = admin.get("/api/v1/instances/phoenix").await;
        let pid = read_pid_file(&server.data_dir().join("instances/phoenix/server.json"));
        i["state"] == "running" && pid.is_some_and(|p| p != first && process_alive(p))
    })
    .await;
    let acts = actions(&admin).await;
    assert!(acts.contains(&"instance.crashed".to_owned()), "{acts:?}");
    assert_eq!(stubs_of(&server).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_loop_ends_in_failed() {
    let server = Server::start_with_env(
        &[],
        &[
            ("TAVERN_RUNTIME_CRASH_LIMIT", "3"),
            ("TAVERN_RUNTIME_RESTART_BACKOFF_MILLIS", "100"),
        ],
    );
    let admin = server.api(Some(&server.admin_token));
    let release = install_fake(&server, 13, 900, CRASHING_MAIN_JS, false);
    create(&admin, "crashy", &release).await;
    start(&admin, "crashy").await;
    let (failed, _) = wait_for_state(&admin, "crashy", "failed").await;
    let reason = failed["state_reason"].as_str().unwrap();
    assert!(reason.contains("crashed 3 times"), "{reason}");
    assert!(reason.contains("exited with code 3"), "{reason}");
    let acts = actions(&admin).await;
    assert!(acts.contains(&"instance.failed".to_owned()), "{acts:?}");
    // It stays failed: no more restarts.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, still) = admin.get("/api/v1/instances/crashy").await;
    assert_eq!(still["state"], "failed");
    let logs = admin.get("/api/v1/instances/crashy/logs?tail=50").await.1;
    let crashes = logs["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l.as_str().unwrap().contains("cannot start"))
        .count();
    assert_eq!(crashes, 3, "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_that_never_answers_fails() {
    let server = Server::start_with_env(&[], &[("TAVERN_RUNTIME_START_TIMEOUT_SECONDS", "2")]);
    let admin = server.api(Some(&server.admin_token));
    let release = install_fake(&server, 13, 901, SILENT_MAIN_JS, false);
    create(&admin, "silent", &release).await;
    start(&admin, "silent").await;
    let (failed, seen) = wait_for_state(&admin, "silent", "failed").await;
    assert!(seen.contains(&"starting".to_owned()), "{seen:?}");
    assert!(
        failed["state_reason"]
            .as_str()
            .unwrap()
            .contains("did not answer /api/status within 2 s"),
        "{failed}"
    );
    let pid = read_pid_file(&server.data_dir().join("instances/silent/server.json"));
    wait_until("the silent server is stopped", || async {
        read_pid_file(&server.data_dir().join("instances/silent/server.json")).is_none()
    })
    .await;
    assert!(pid.is_none_or(|p| !process_alive(p)));
    // Starting a failed world again is a fresh start.
    start(&admin, "silent").await;
    let (_, again) = wait_for_state(&admin, "silent", "failed").await;
    assert!(again.contains(&"starting".to_owned()), "{again:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_node_release_is_launched_with_a_clean_environment() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    for (release, slug) in [
        (
            install_fake(&server, 13, 351, FAKE_MAIN_JS, false),
            "node-build",
        ),
        (
            install_fake(&server, 12, 331, FAKE_MAIN_JS, true),
            "linux-build",
        ),
    ] {
        create(&admin, slug, &release).await;
        start(&admin, slug).await;
        let (running, _) = wait_for_state(&admin, slug, "running").await;
        assert_eq!(running["world"], "fake-world");
        assert_eq!(running["foundry_version"], "12.331");
        let data = server.data_dir().join("instances").join(slug).join("data");
        let launch: Value =
            serde_json::from_str(&std::fs::read_to_string(data.join("launch.json")).unwrap())
                .unwrap();
        let argv: Vec<&str> = launch["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(
            argv.contains(&format!("--dataPath={}", data.display()).as_str()),
            "{argv:?}"
        );
        assert!(argv.iter().any(|a| a.starts_with("--port=")), "{argv:?}");
        assert!(
            argv.contains(&"--noupnp") && argv.contains(&"--noupdate"),
            "{argv:?}"
        );
        let env: Vec<&str> = launch["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(
            env.iter().all(|k| ["PATH", "HOME"].contains(k)),
            "the child saw {env:?}"
        );
        stop(&admin, slug).await;
        wait_for_state(&admin, slug, "stopped").await;
        let logs = admin.get(&format!("/api/v1/instances/{slug}/logs")).await.1;
        assert!(
            logs.to_string().contains("fake foundry stopping"),
            "SIGTERM reached node: {logs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn worlds_are_adopted_after_tavern_is_killed() {
    let mut server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    let slugs = ["one", "two", "three"];
    for slug in slugs {
        create(&admin, slug, "stub").await;
        start(&admin, slug).await;
    }
    for slug in slugs {
        wait_for_state(&admin, slug, "running").await;
    }
    let pids: Vec<u32> = slugs.iter().map(|s| server_pid(&server, s)).collect();
    server.kill();
    for pid in &pids {
        assert!(process_alive(*pid), "a world died with Tavern");
    }
    server.relaunch();
    let admin = server.api(Some(&server.admin_token));
    // Several activations pass; nothing is started twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for (slug, pid) in slugs.iter().zip(&pids) {
        let (i, _) = wait_for_state(&admin, slug, "running").await;
        assert_eq!(i["state"], "running");
        assert_eq!(server_pid(&server, slug), *pid, "{slug} was started again");
        assert!(process_alive(*pid));
    }
    let mut running = stubs_of(&server);
    running.sort();
    let mut expected = pids.clone();
    expected.sort();
    assert_eq!(running, expected, "exactly the three adopted servers run");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stray_server_is_stopped_and_archived() {
    let server = Server::start();
    // A stand-in that no instance owns, left in the instances directory
    // with a pid file (as after a crash of an older Tavern).
    let dir = server.data_dir().join("instances/stray");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let mut stray = tavern(server.home())
        .args(["foundry-stub", "--port=0"])
        .arg(format!("--dataPath={}", dir.join("data").display()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = stray.id();
    wait_until("the stray stand-in runs", || async {
        dir.join("data/Data/worlds/stub-world/data/state.json")
            .exists()
    })
    .await;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start_time: u64 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    std::fs::write(
        dir.join("server.json"),
        json!({"instance_id": "01900000-0000-7000-8000-000000000001", "pid": pid, "start_time": start_time, "port": 1}).to_string(),
    )
    .unwrap();
    let status = wait_bounded(&mut stray, Duration::from_secs(20));
    assert!(
        status.success(),
        "the stray got SIGTERM and flushed: {status}"
    );
    wait_until("the stray's directory is archived", || async {
        !dir.exists()
    })
    .await;
    let archived: Vec<String> = std::fs::read_dir(server.data_dir().join("archive"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        archived.len() == 1 && archived[0].starts_with("stray-"),
        "{archived:?}"
    );
    let admin = server.api(Some(&server.admin_token));
    assert!(
        actions(&admin)
            .await
            .contains(&"runtime.orphan_stopped".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_world_gets_the_newest_release_or_is_not_made_without_one() {
    // With releases installed (here the stand-in): the newest.
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    let made = create_world(&admin, &json!({"slug": "bare"})).await;
    assert_eq!(made["release"], "stub");
    // With none: refused, with what to do, and nothing made.
    let server = Server::start_with_env(&[], &[("TAVERN_RUNTIME_STUB_RELEASE", "false")]);
    let admin = server.api(Some(&server.admin_token));
    let refused = admin
        .post("/api/v1/instances", &json!({"slug": "bare"}))
        .await;
    assert_refused(&refused, 422, "no_release");
    let said = refused.1["error"]["message"].as_str().unwrap();
    assert!(said.contains("tavern release add"), "{said}");
    let (s, _) = admin.get("/api/v1/instances/bare").await;
    assert_eq!(s, 404, "nothing was made");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_license_runs_one_server_at_a_time() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    let (s, lic) = admin
        .post(
            "/api/v1/licenses",
            &json!({"label": "shared", "key": "ABCDEFGHJKLMNPQRSTUVWXYZ"}),
        )
        .await;
    assert_eq!(s, 201);
    for slug in ["first", "second"] {
        create_world(
            &admin,
            &json!({"slug": slug, "release": "stub", "license": lic["id"]}),
        )
        .await;
    }
    start(&admin, "first").await;
    wait_for_state(&admin, "first", "running").await;
    let port = read_port(&server, "first");
    let key: Value = reqwest::get(format!("http://127.0.0.1:{port}/_stub/license"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(key["license"], "ABCDEFGHJKLMNPQRSTUVWXYZ");

    let a = admin
        .post("/api/v1/instances/second/start", &json!({}))
        .await;
    assert_eq!((a.0, code(&a)), (409, "license_in_use"));
    let (_, second) = admin.get("/api/v1/instances/second").await;
    assert_eq!(second["desired_state"], "stopped");

    stop(&admin, "first").await;
    wait_for_state(&admin, "first", "stopped").await;
    start(&admin, "second").await;
    wait_for_state(&admin, "second", "running").await;
    assert_eq!(stubs_of(&server).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_concurrent_starts_on_three_keys() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    for n in 0..3 {
        add_key(&admin, &format!("k{n}"), &key_for(&format!("pool{n}"))).await;
    }
    add_worlds(&admin, (0..10).map(|n| format!("w{n}")), "stub").await;
    let starts = (0..10).map(|n| {
        let api = server.api(Some(&server.admin_token));
        async move {
            api.post(&format!("/api/v1/instances/w{n}/start"), &json!({}))
                .await
        }
    });
    let answers = futures_util::future::join_all(starts).await;
    let accepted = answers.iter().filter(|a| a.0 == 202).count();
    let refused = answers
        .iter()
        .filter(|a| a.0 == 409 && code(a) == "no_license_available")
        .count();
    assert_eq!((accepted, refused), (3, 7), "{answers:?}");
    // The three run, each with its own key.
    let mut keys = Vec::new();
    for (n, a) in answers.iter().enumerate() {
        if a.0 == 202 {
            wait_for_state(&admin, &format!("w{n}"), "running").await;
            let port = read_port(&server, &format!("w{n}"));
            let key: Value = reqwest::get(format!("http://127.0.0.1:{port}/_stub/license"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            keys.push(key["license"].as_str().unwrap().to_owned());
        }
    }
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 3, "a key is served twice: {keys:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopping_world_keeps_its_key_until_it_is_gone() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    let release = install_fake(&server, 13, 902, SLOW_STOP_MAIN_JS, false);
    let lic_id = add_key(&admin, "only", &key_for("onlykey")).await;
    add_worlds(&admin, ["slow", "next"], &release).await;
    start(&admin, "slow").await;
    let (running, _) = wait_for_state(&admin, "slow", "running").await;
    assert_eq!(running["license"]["id"], lic_id.as_str());
    stop(&admin, "slow").await;
    wait_for_state(&admin, "slow", "stopping").await;
    // Its server is still saving the world: the key is not free yet.
    let a = admin.post("/api/v1/instances/next/start", &json!({})).await;
    assert_eq!((a.0, code(&a)), (409, "no_license_available"), "{}", a.1);
    wait_for_state(&admin, "slow", "stopped").await;
    start(&admin, "next").await;
    let (next, _) = wait_for_state(&admin, "next", "running").await;
    assert_eq!(next["license"]["id"], lic_id.as_str());
    let acts = actions(&admin).await;
    assert!(
        acts.contains(&"license.bind".to_owned()) && acts.contains(&"license.release".to_owned()),
        "{acts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn switchover_stops_the_old_world_before_the_new_one_takes_the_key() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    let master_id = add_key(&admin, "master", &key_for("masterkey")).await;
    add_worlds(&admin, ["tuesday", "friday"], "stub").await;
    start(&admin, "tuesday").await;
    wait_for_state(&admin, "tuesday", "running").await;

    // A player is connected to Tuesday's world: no switchover without force.
    let port = read_port(&server, "tuesday");
    let (player, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    ))
    .await
    .unwrap();
    wait_until("the player is seen", || async {
        admin.get("/api/v1/instances/tuesday").await.1["players"] == 1
    })
    .await;
    let out = server.cli(
        Some(&server.admin_token),
        &["license", "activate", &master_id, "--instance", "friday"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("players_connected"),
        "{}",
        text(&out.stderr)
    );
    let (_, friday) = admin.get("/api/v1/instances/friday").await;
    assert_eq!(
        friday["desired_state"], "stopped",
        "a refused switchover changes nothing"
    );

    let out = server.cli(
        Some(&server.admin_token),
        &[
            "license",
            "activate",
            &master_id,
            "--instance",
            "friday",
            "--force",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    drop(player);
    wait_for_state(&admin, "tuesday", "stopped").await;
    let (friday, _) = wait_for_state(&admin, "friday", "running").await;
    assert_eq!(friday["license"]["id"], master_id.as_str());
    let port = read_port(&server, "friday");
    let key: Value = reqwest::get(format!("http://127.0.0.1:{port}/_stub/license"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(key["license"], key_for("masterkey"));

    // The old world's server was gone before the key moved.
    let (_, events) = admin.get("/api/v1/events?limit=1000").await;
    let events = events.as_array().unwrap();
    let at = |action: &str, target_has: &str| {
        events
            .iter()
            .position(|e| {
                e["action"] == action
                    && (e["target"].as_str().unwrap().contains(target_has)
                        || e["detail"].as_str().unwrap_or("").contains(target_has))
            })
            .unwrap_or_else(|| panic!("no {action} for {target_has}"))
    };
    // Newest first: a smaller index is later.
    let released = at("license.release", "tuesday");
    let bound_to_friday = at("license.bind", "friday");
    assert!(
        bound_to_friday < released,
        "the key moved to friday before tuesday's server was gone"
    );
    assert_eq!(stubs_of(&server).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_license_travels_with_its_key() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    let key = key_for("signedkey");
    let lic_id = add_key(&admin, "signed", &key).await;
    add_worlds(&admin, ["first-world", "second-world"], "stub").await;
    start(&admin, "first-world").await;
    wait_for_state(&admin, "first-world", "running").await;
    // The EULA is accepted in the first world: Foundry signs license.json.
    let signed = json!({"license": key, "signature": "c2lnbmVkIGJ5IGZvdW5kcnk=", "host": "first"})
        .to_string();
    let first_cfg = server
        .data_dir()
        .join("instances/first-world/data/Config/license.json");
    std::fs::write(&first_cfg, &signed).unwrap();
    stop(&admin, "first-world").await;
    wait_for_state(&admin, "first-world", "stopped").await;

    // Kept per license, sealed: the key is not in it in clear.
    let kept = server
        .data_dir()
        .join("licenses")
        .join(&lic_id)
        .join("license.json.sealed");
    let bytes = std::fs::read(&kept).expect("the signed license.json is kept");
    assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()));

    // The next world with the key gets the signed file, not a fresh one.
    start(&admin, "second-world").await;
    wait_for_state(&admin, "second-world", "running").await;
    let second_cfg = server
        .data_dir()
        .join("instances/second-world/data/Config/license.json");
    assert_eq!(std::fs::read_to_string(second_cfg).unwrap(), signed);
    // And the first world's own signed file is left as Foundry wrote it.
    assert_eq!(std::fs::read_to_string(first_cfg).unwrap(), signed);
}

/// A storm of concurrent starts and stops over 10 worlds and 3 keys, while
/// every running stand-in is asked for its key many times a second: no key
/// is ever served by two worlds in one sampling round.
#[tokio::test(flavor = "multi_thread")]
async fn a_storm_of_starts_and_stops_never_serves_a_key_twice() {
    let server = Server::start_with_env(&[], &[("TAVERN_RUNTIME_STOP_GRACE_SECONDS", "5")]);
    let instances = server.data_dir().join("instances");
    // Each world's address, from its pid file.
    let addresses = || {
        (0..STORM_WORLDS)
            .filter_map(|n| {
                let slug = format!("s{n}");
                let v: Value = serde_json::from_str(
                    &std::fs::read_to_string(instances.join(&slug).join("server.json")).ok()?,
                )
                .ok()?;
                let port = u16::try_from(v["port"].as_u64()?).ok()?;
                Some((slug, SocketAddr::from(([127, 0, 0, 1], port))))
            })
            .collect()
    };
    storm(&server, "process", addresses).await;
    // At no point more than three servers: one per key.
    assert!(stubs_of(&server).len() <= 3);
}

pub const STORM_WORLDS: usize = 10;

/// The storm itself, on `server`'s worlds `s0`…`s9` of `runtime`, sampling
/// the servers at the addresses `addresses` finds each round.
pub async fn storm(
    server: &Server,
    runtime: &str,
    addresses: impl Fn() -> Vec<(String, SocketAddr)>,
) {
    const STORM: Duration = Duration::from_secs(25);
    let admin = server.api(Some(&server.admin_token));
    for n in 0..3 {
        add_key(&admin, &format!("k{n}"), &key_for(&format!("storm{n}"))).await;
    }
    for n in 0..STORM_WORLDS {
        let (s, b) = admin
            .post(
                "/api/v1/instances",
                &json!({"slug": format!("s{n}"), "release": "stub", "runtime": runtime}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let stop_at = std::time::Instant::now() + STORM;

    // Four clients start and stop worlds at random, concurrently.
    let storm = (0..4u64).map(|c| {
        let api = server.api(Some(&server.admin_token));
        async move {
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (c + 1);
            let mut accepted = 0u32;
            while std::time::Instant::now() < stop_at {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let slug = format!("s{}", x % STORM_WORLDS as u64);
                let verb = if (x >> 8).is_multiple_of(2) {
                    "start"
                } else {
                    "stop"
                };
                let (status, body) = api
                    .post(&format!("/api/v1/instances/{slug}/{verb}"), &json!({}))
                    .await;
                match status {
                    202 => accepted += 1,
                    409 => assert_eq!(body["error"]["code"], "no_license_available", "{body}"),
                    other => panic!("{verb} {slug}: {other} {body}"),
                }
                tokio::time::sleep(Duration::from_millis(20 + (x >> 16) % 80)).await;
            }
            accepted
        }
    });

    // The sampler: every world's server, all at once, in rounds.
    let sampler = async {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let (mut rounds, mut served) = (0u32, 0u32);
        while std::time::Instant::now() < stop_at {
            let asks = addresses().into_iter().map(|(slug, addr)| {
                let http = http.clone();
                async move {
                    let key = async {
                        let v: Value = http
                            .get(format!("http://{addr}/_stub/license"))
                            .send()
                            .await
                            .ok()?
                            .json()
                            .await
                            .ok()?;
                        // An address freed by one world may already serve
                        // another: count only the answer of the world asked.
                        let own = v["hostname"] == format!("{slug}.localhost").as_str();
                        own.then(|| v["license"].as_str().map(str::to_owned))
                            .flatten()
                    }
                    .await;
                    (slug, key)
                }
            });
            let answers = futures_util::future::join_all(asks).await;
            let mut keys: Vec<(String, String)> = answers
                .into_iter()
                .filter_map(|(slug, key)| key.map(|k| (k, slug)))
                .collect();
            served += u32::try_from(keys.len()).unwrap();
            keys.sort();
            for pair in keys.windows(2) {
                assert_ne!(
                    pair[0].0, pair[1].0,
                    "key served by {} and {} at once",
                    pair[0].1, pair[1].1
                );
            }
            rounds += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (rounds, served)
    };
    let (accepted, (rounds, served)) = tokio::join!(futures_util::future::join_all(storm), sampler);
    let accepted: u32 = accepted.into_iter().sum();
    assert!(accepted > 20, "the storm was a storm: {accepted} accepted");
    assert!(
        rounds > 50 && served > 50,
        "sampled {rounds} rounds, {served} answers"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_overview_shows_keys_worlds_and_failures() {
    let server = Server::start_with_env(&[], &[("TAVERN_RUNTIME_START_TIMEOUT_SECONDS", "2")]);
    let admin = server.api(Some(&server.admin_token));
    create(&admin, "busy", "stub").await;
    let silent = install_fake(&server, 13, 903, SILENT_MAIN_JS, false);
    create(&admin, "broken", &silent).await;
    create(&admin, "idle", "stub").await;
    start(&admin, "busy").await;
    start(&admin, "broken").await;
    wait_for_state(&admin, "busy", "running").await;
    wait_for_state(&admin, "broken", "failed").await;

    let (s, o) = admin.get("/api/v1/admin/overview").await;
    assert_eq!(s, 200, "{o}");
    let held: Vec<(String, String)> = o["licenses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| !l["instance"].is_null())
        .map(|l| {
            (
                l["label"].as_str().unwrap().to_owned(),
                l["instance"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        held.contains(&("for busy".to_owned(), "busy".to_owned())),
        "{o}"
    );
    assert_eq!(o["licenses"].as_array().unwrap().len(), 3);
    let slugs = |k: &str| -> Vec<String> {
        o[k].as_array()
            .unwrap()
            .iter()
            .map(|i| i["slug"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(slugs("running"), ["busy"]);
    assert_eq!(slugs("failed"), ["broken"]);

    let out = server.cli(Some(&server.admin_token), &["admin", "overview"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("busy") && table.contains("broken") && table.contains("did not answer"),
        "{table}"
    );

    admin.create_user("gm", "gm", "gm-password-1").await;
    let gm = server.api(None).login("gm", "gm-password-1").await;
    let a = gm.get("/api/v1/admin/overview").await;
    assert_eq!((a.0, code(&a)), (403, "forbidden"));
}
