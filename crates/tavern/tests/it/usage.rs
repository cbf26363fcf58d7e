//! The usage report through the real binary: hours per user, world and key
//! from the worlds that really ran, costed at the configured rate; a game
//! master sees only their own month.

use serde_json::{Value, json};

use crate::support::*;

fn user<'a>(report: &'a Value, name: &str) -> Option<&'a Value> {
    report["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == name)
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_counts_running_time_per_user_world_and_key() {
    let server = Server::start_with_env(
        &[],
        &[
            ("TAVERN_USAGE_RATE_PER_HOUR", "360"),
            ("TAVERN_USAGE_CURRENCY", "USD"),
            ("TAVERN_BACKUPS_AFTER_STOP", "false"),
        ],
    );
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("alice", "gm", "alice-password").await;
    admin.create_user("bob", "gm", "bob-password").await;
    add_key(&admin, "table", &key_for("table")).await;
    for (slug, owner) in [("keep", "alice"), ("crypt", "bob")] {
        create_world(
            &admin,
            &json!({"slug": slug, "release": "stub", "owner": owner}),
        )
        .await;
    }
    // Alice's world runs a while and stops; then Bob's runs and keeps on.
    let (s, _) = admin.post("/api/v1/instances/keep/start", &json!({})).await;
    assert_eq!(s, 202);
    wait_for_state(&admin, "keep", "running").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (s, _) = admin.post("/api/v1/instances/keep/stop", &json!({})).await;
    assert_eq!(s, 202);
    wait_for_state(&admin, "keep", "stopped").await;
    let (s, _) = admin
        .post("/api/v1/instances/crypt/start", &json!({}))
        .await;
    assert_eq!(s, 202);
    wait_for_state(&admin, "crypt", "running").await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    let (s, all) = admin.get("/api/v1/usage").await;
    assert_eq!(s, 200, "{all}");
    assert_eq!(
        (all["currency"].as_str(), all["rate_per_hour"].as_f64()),
        (Some("USD"), Some(360.0))
    );
    let alice = user(&all, "alice").unwrap_or_else(|| panic!("{all}"));
    let bob = user(&all, "bob").unwrap_or_else(|| panic!("{all}"));
    let alice_s = alice["seconds"].as_u64().unwrap();
    assert!((2..=10).contains(&alice_s), "{alice}");
    assert!(bob["seconds"].as_u64().unwrap() >= 1, "{bob}");
    assert_eq!(alice["worlds"][0]["world"], "keep");
    assert_eq!(bob["worlds"][0]["world"], "crypt");
    // 360 an hour is 0.10 a second; no credit yet.
    let cost = alice["cost"].as_f64().unwrap();
    assert!((cost - alice_s as f64 * 0.1).abs() <= 0.11, "{alice}");
    assert_eq!(alice["due"], alice["cost"]);
    // Both ran on the one key.
    assert_eq!(all["licenses"][0]["license"], "table", "{all}");
    let key_s = all["licenses"][0]["seconds"].as_u64().unwrap();
    let users_s = alice_s + bob["seconds"].as_u64().unwrap();
    assert!(key_s.abs_diff(users_s) <= 1, "{all}");

    // Alice sees herself only; not Bob, not by asking.
    let alice_api = server.api(None).login("alice", "alice-password").await;
    let (s, mine) = alice_api.get("/api/v1/usage").await;
    assert_eq!(s, 200, "{mine}");
    assert_eq!(mine["users"].as_array().unwrap().len(), 1, "{mine}");
    assert!(user(&mine, "alice").is_some());
    assert_refused(
        &alice_api.get("/api/v1/usage?user=bob").await,
        404,
        "not_found",
    );
    assert_refused(
        &alice_api.get("/api/v1/usage?month=2026-13").await,
        422,
        "invalid_month",
    );
    let (s, october) = admin.get("/api/v1/usage?month=2020-10").await;
    assert_eq!((s, october["users"].clone()), (200, json!([])));
    let (s, bobs) = admin.get("/api/v1/usage?user=bob").await;
    assert_eq!(s, 200);
    assert_eq!(bobs["users"].as_array().unwrap().len(), 1, "{bobs}");

    // The CLI shows the same.
    let out = server.cli(Some(alice_api.token()), &["usage"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("alice") && shown.contains("keep") && !shown.contains("bob"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interval_cut_off_by_sigkill_is_closed_after_the_restart() {
    let mut server = Server::start_with_env(&[], &[("TAVERN_BACKUPS_AFTER_STOP", "false")]);
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "k", &key_for("k")).await;
    add_world(&admin, "cut", "stub").await;
    let (s, _) = admin.post("/api/v1/instances/cut/start", &json!({})).await;
    assert_eq!(s, 202);
    wait_for_state(&admin, "cut", "running").await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    // Tavern and the world both die while the interval is open.
    let pid = server_pid(&server, "cut");
    server.kill();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    wait_until("the world is gone", || async { !process_alive(pid) }).await;
    server.relaunch();
    let admin = server.api(Some(&server.admin_token));
    // The next Tavern starts the world again; stopped, nothing stays open.
    wait_for_state(&admin, "cut", "running").await;
    let (s, _) = admin.post("/api/v1/instances/cut/stop", &json!({})).await;
    assert_eq!(s, 202);
    wait_for_state(&admin, "cut", "stopped").await;
    let seconds = |r: &Value| user(r, "admin").map(|u| u["seconds"].as_u64().unwrap());
    let (_, first) = admin.get("/api/v1/usage").await;
    assert!(seconds(&first).is_some_and(|s| s >= 1), "{first}");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (_, later) = admin.get("/api/v1/usage").await;
    assert_eq!(
        seconds(&first),
        seconds(&later),
        "an interval is still open: {later}"
    );
}
