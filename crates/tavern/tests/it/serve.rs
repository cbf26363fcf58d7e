//! A fresh server works end to end through the CLI and the API, and keeps
//! its state across a restart.

use serde_json::json;

use crate::support::*;

const KEY: &str = "ABCD-EFGH-JKLM-NPQR-STUV-WXYZ";

#[tokio::test(flavor = "multi_thread")]
async fn fresh_server_end_to_end_and_state_survives_restart_on_sqlite() {
    end_to_end(&[]).await;
}

#[tokio::test(flavor = "multi_thread")]
#[cfg(feature = "postgres")]
async fn fresh_server_end_to_end_and_state_survives_restart_on_postgres() {
    let Some(schema) = tavern_store_sql::testing::TestSchema::create().await else {
        return;
    };
    end_to_end(&[("TAVERN_STORE_URL", &schema.url())]).await;
}

/// The whole first-day story, on the store that `env` chooses (SQLite in
/// DATA_DIR when it chooses none).
async fn end_to_end(env: &[(&str, &str)]) {
    let on_sqlite = env.is_empty();
    let mut server = Server::start_with_env(&[], env);
    let data = server.data_dir();

    // First start: admin token printed once and kept, private.
    assert!(server.output().contains(&server.admin_token));
    assert!(server.admin_token.starts_with("tvn_"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("admin-token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(data.join("tavern.db").is_file(), on_sqlite);

    let (status, health) = server.api(None).get("/healthz").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, doc) = server.api(None).get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    for path in [
        "/api/v1/instances",
        "/api/v1/instances/{slug}",
        "/api/v1/licenses",
        "/api/v1/auth/login",
        "/api/v1/sessions",
        "/api/v1/sessions/{id}",
        "/api/v1/users/{username}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }

    // The admin signs in with the bootstrap token, stored with mode 0600.
    let admin_home = server.home().join("admin");
    let out = server.cli_in(
        &admin_home,
        None,
        &["login", "--server", &server.url, "--token-stdin"],
        Some(&server.admin_token),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Signed in as admin (admin)"));
    let creds = admin_home.join("config/tavern/credentials.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&creds).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Users, a license and an instance, through the CLI.
    let alice = ok_json(&server.cli_in(
        &admin_home,
        None,
        &[
            "user",
            "create",
            "alice",
            "--role",
            "gm",
            "--password-stdin",
            "--json",
        ],
        Some("alice-password\n"),
    ));
    assert_eq!(
        (alice["username"].as_str(), alice["role"].as_str()),
        (Some("alice"), Some("gm"))
    );
    let out = server.cli_in(
        &admin_home,
        None,
        &["user", "create", "bob", "--role", "gm"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bob_password = text(&out.stderr)
        .rsplit(' ')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        bob_password.len() >= 16,
        "generated password shown: {}",
        text(&out.stderr)
    );

    let key_file = server.home().join("key.txt");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let lic = ok_json(&server.cli_in(
        &admin_home,
        None,
        &[
            "license",
            "add",
            "--label",
            "main",
            "--key-file",
            key_file.to_str().unwrap(),
            "--json",
        ],
        None,
    ));
    assert_eq!(lic["last4"], "WXYZ");
    assert_eq!(lic["owner"], json!(null));
    let lic_id = lic["id"].as_str().unwrap().to_owned();
    let pinned = ok_json(&server.cli_in(
        &admin_home,
        None,
        &[
            "license",
            "add",
            "--label",
            "alices",
            "--key-stdin",
            "--owner",
            "alice",
            "--json",
        ],
        Some("ZYXW-VUTS-RQPN-MLKJ-HGFE-DCBA"),
    ));
    assert_eq!(pinned["owner"], "alice");

    let inst = ok_json(&server.cli_in(
        &admin_home,
        None,
        &[
            "instance",
            "create",
            "dragon-heist",
            "--owner",
            "alice",
            // A key by its label; no release: the newest installed.
            "--license",
            "main",
            "--idle-timeout",
            "45",
            "--json",
        ],
        None,
    ));
    assert_eq!(inst["slug"], "dragon-heist");
    assert_eq!(inst["owner"], "alice");
    assert_eq!(inst["state"], "stopped");
    assert_eq!(inst["desired_state"], "stopped");
    assert_eq!(inst["license"]["label"], "main");
    assert_eq!(inst["license"]["id"], lic_id.as_str());
    assert_eq!(inst["release"], "stub", "the newest (here, only) release");
    assert_eq!(inst["idle_timeout_minutes"], 45);
    assert_eq!(inst["players"], 0);
    let port = server.url.rsplit(':').next().unwrap();
    assert_eq!(
        inst["url"],
        format!("http://dragon-heist.localhost:{port}/")
    );

    // Tables for people.
    let out = server.cli_in(&admin_home, None, &["instance", "list"], None);
    let table = text(&out.stdout);
    assert!(
        table.contains("WORLD")
            && table.contains("dragon-heist")
            && table.contains("alice")
            && table.contains("sleeping"),
        "{table}"
    );
    let out = server.cli_in(&admin_home, None, &["license", "list"], None);
    let table = text(&out.stdout);
    assert!(table.contains("WXYZ"), "{table}");
    // Times to the second, in the computer's time zone.
    let added: jiff::Timestamp = lic["created_at"].as_str().unwrap().parse().unwrap();
    let shown = tavern_types::words::instant(added, &jiff::tz::TimeZone::system());
    assert!(table.contains(&shown), "{shown} in {table}");
    // The server's releases, not this directory's.
    let releases = ok_json(&server.cli_in(&admin_home, None, &["release", "list", "--json"], None));
    assert_eq!(releases, json!([{"version": "stub", "layout": "stub"}]));
    // A key is renamed and unpinned by its label.
    let moved = ok_json(&server.cli_in(
        &admin_home,
        None,
        &[
            "license", "set", "alices", "--label", "spare", "--pool", "--json",
        ],
        None,
    ));
    assert_eq!(
        (&moved["label"], &moved["owner"]),
        (&json!("spare"), &json!(null))
    );
    // A label that names no key says so.
    let out = server.cli_in(
        &admin_home,
        None,
        &["license", "activate", "nokey", "--instance", "dragon-heist"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no license key is labelled \"nokey\""),
        "{}",
        text(&out.stderr)
    );

    // Alice signs in with her password and sees her world.
    let alice_home = server.home().join("alice");
    let out = server.cli_in(
        &alice_home,
        None,
        &[
            "login",
            "--server",
            &server.url,
            "--username",
            "alice",
            "--password-stdin",
        ],
        Some("alice-password\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mine = ok_json(&server.cli_in(
        &alice_home,
        None,
        &["instance", "show", "dragon-heist", "--json"],
        None,
    ));
    assert_eq!(mine["slug"], "dragon-heist");

    // Alice starts her world; it runs, and keeps running across a restart
    // of Tavern.
    // `--wait` follows it until it runs, a line per state.
    let out = server.cli_in(
        &alice_home,
        None,
        &["instance", "start", "dragon-heist", "--wait"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(said.contains("dragon-heist: starting"), "{said}");
    assert!(said.ends_with("dragon-heist: running\n"), "{said}");
    assert_eq!(
        text(&out.stdout),
        format!("dragon-heist runs at http://dragon-heist.localhost:{port}/\n")
    );
    let alice_api = server.api(Some(&server.admin_token));
    let (running, _) = wait_for_state(&alice_api, "dragon-heist", "running").await;
    assert_eq!(running["world"], "stub-world");
    let pid_before = server_pid(&server, "dragon-heist");

    // Errors go to stderr with a non-zero exit.
    let out = server.cli_in(&alice_home, None, &["instance", "show", "nope"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not_found"),
        "{}",
        text(&out.stderr)
    );

    // Audit log for admins.
    let events = ok_json(&server.cli_in(&admin_home, None, &["events", "--json"], None));
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "user.create",
        "license.add",
        "instance.create",
        "token.create",
    ] {
        assert!(actions.contains(&a), "no {a} in {actions:?}");
    }
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["outcome"] == "success")
    );

    // Restart: everything is still there, tokens and passwords still work,
    // and the world's server is adopted, not started again.
    server.restart();
    assert_eq!(server_pid(&server, "dragon-heist"), pid_before);
    let list = ok_json(&server.cli_in(&alice_home, None, &["instance", "list", "--json"], None));
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["slug"], "dragon-heist");
    assert_eq!(list[0]["state"], "running");
    assert_eq!(
        server.output().matches("Created the admin user").count(),
        1,
        "bootstrap ran twice"
    );
    server.api(None).login("bob", &bob_password).await;

    // Destroy asks for confirmation unless --yes.
    let out = server.cli_in(
        &alice_home,
        None,
        &["instance", "destroy", "dragon-heist"],
        None,
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--yes"));
    let out = server.cli_in(
        &alice_home,
        None,
        &["instance", "destroy", "dragon-heist", "--yes"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_until("the destroyed instance is gone", || async {
        let list =
            ok_json(&server.cli_in(&alice_home, None, &["instance", "list", "--json"], None));
        list == json!([])
    })
    .await;
    assert!(
        !process_alive(pid_before),
        "the destroyed world's server still runs"
    );
    // Its data lives on in a last backup, which its owner still sees.
    assert!(!data.join("instances/dragon-heist").exists());
    let backups = ok_json(&server.cli_in(&alice_home, None, &["backup", "list", "--json"], None));
    let last = backups
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["kind"] == "pre_destroy")
        .unwrap_or_else(|| panic!("no last backup: {backups}"));
    assert_eq!(
        (last["instance"].as_str(), last["status"].as_str()),
        (Some("dragon-heist"), Some("complete"))
    );

    // Licenses can be removed once no instance uses them.
    let out = server.cli_in(&admin_home, None, &["license", "remove", &lic_id], None);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let status = server.stop();
    assert!(status.success(), "SIGTERM exit: {status}");
    assert!(server.output().contains("SIGTERM: shutting down"));
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_are_json_lines_with_log_format_json() {
    let mut server = Server::start();
    server.api(None).get("/healthz").await;
    server.stop();
    let log = std::fs::read_to_string(server.dir.path().join("server.log")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v.get("level").is_some() && v.get("fields").is_some(),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_sets_up_a_user_license_and_instance() {
    let server = Server::start_with(&["--demo"]);
    let demo = server.api(None).login("demo", "demo-password").await;
    let (status, list) = demo.get("/api/v1/instances").await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["slug"], "demo");
    assert_eq!(list[0]["release"], "stub");
    assert_eq!(list[0]["license"]["label"], "demo");
    // ... and the demo world is started.
    let (running, _) = wait_for_state(&demo, "demo", "running").await;
    assert_eq!(running["world"], "stub-world");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sealing_key_may_come_from_the_environment_and_is_never_shown() {
    let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let mut server = Server::start_with_env(&[], &[("TAVERN_SEALING_KEY", key)]);
    assert!(
        !server.data_dir().join("secret.key").exists(),
        "no key file is made beside the given key"
    );
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "sealed", &key_for("sealed")).await;
    create_world(&admin, &json!({"slug": "sealed", "release": "stub"})).await;
    // Restarted with the same key, the license key it sealed opens.
    server.kill();
    server.relaunch();
    let admin = server.api(Some(&server.admin_token));
    start_world(&admin, "sealed").await;
    let (s, lic) = via_proxy(&server, "sealed", "/_stub/license").await;
    assert_eq!(s, 200, "{lic}");
    assert_eq!(lic["license"], key_for("sealed"));

    // A key that is not 32 bytes of hex stops it, and is not printed.
    let dir = tempfile::tempdir().unwrap();
    for bad in ["not-hex-at-all", "0011", &format!("{key}00")] {
        let mut c = tavern(dir.path());
        c.args(["serve", "--data-dir"])
            .arg(dir.path().join("data"))
            .env("TAVERN_SEALING_KEY", bad);
        let out = run(c, None);
        assert!(!out.status.success(), "{bad} was taken");
        let err = text(&out.stderr);
        assert!(err.contains("TAVERN_SEALING_KEY"), "{err}");
        assert!(!err.contains(bad), "the value was printed: {err}");
    }
}

#[test]
fn a_wrong_config_key_or_value_is_named_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[server]\nlisten_address = \"127.0.0.1:0\"\n",
            "listen_address",
        ),
        ("[server]\nlisten = \"localhost\"\n", "listen"),
        ("[runtime]\nkind = \"lxc\"\n", "runtime.kind"),
        ("[idle]\ntimeout = 5\n", "timeout"),
        ("[tls]\nmode = \"acme\"\n", "tls"),
        ("[idle]\ntimeout_minutes = 0\n", "idle.timeout_minutes"),
        // ECS needs its network and file system (or a build with it).
        ("[runtime]\nkind = \"ecs\"\n", "ecs"),
    ];
    for (toml, named) in cases {
        let file = dir.path().join("tavern.toml");
        std::fs::write(&file, toml).unwrap();
        let mut c = tavern(dir.path());
        c.args(["serve", "--config"])
            .arg(&file)
            .arg("--data-dir")
            .arg(dir.path().join("data"));
        let out = run(c, None);
        assert!(!out.status.success(), "{toml} was accepted");
        let err = text(&out.stderr);
        assert!(
            err.contains(named),
            "error for {toml:?} does not name {named}: {err}"
        );
        assert!(
            !dir.path().join("data").exists(),
            "a bad config created DATA_DIR"
        );
    }
    let mut c = tavern(dir.path());
    c.args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("TAVERN_SERVER_DOMAIN", "bad domain!");
    let out = run(c, None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("server.domain"),
        "{}",
        text(&out.stderr)
    );
}
