//! The license economy seen from outside: sessions reserving keys, the
//! scheduler starting a session's world on its key, quotas from tiers, and
//! idle worlds pre-empted when that is switched on.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::support::*;

/// A whole hour some days ahead, so windows are easy to reason about.
fn days_ahead(days: i64) -> Timestamp {
    let t = Timestamp::now() + SignedDuration::from_hours(24 * days);
    Timestamp::from_second(t.as_second() - t.as_second() % 3600).unwrap()
}

fn at(t: Timestamp, plus_minutes: i64) -> String {
    (t + SignedDuration::from_mins(plus_minutes)).to_string()
}

async fn book(api: &Api, world: &str, start: &str, minutes: u32) -> (u16, Value) {
    api.post(
        "/api/v1/sessions",
        &json!({"instance": world, "start": start, "duration_minutes": minutes}),
    )
    .await
}

async fn booked(api: &Api, world: &str, start: &str, minutes: u32) -> Value {
    let (s, b) = book(api, world, start, minutes).await;
    assert_eq!(s, 201, "booking {world} at {start}: {b}");
    b
}

async fn actions(admin: &Api) -> Vec<String> {
    let (_, events) = admin.get("/api/v1/events?limit=1000").await;
    let mut all: Vec<String> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    all.reverse();
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_reserve_keys_without_overlap() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    for n in 1..=3 {
        add_key(
            &admin,
            &format!("k{n}"),
            &key_for(&format!("sessionkey{n}")),
        )
        .await;
    }
    for w in ["ann", "ben", "cat", "dan", "eve"] {
        add_world(&admin, w, "stub").await;
    }
    let t = days_ahead(2);
    // Three overlapping sessions fit three keys, each on its own.
    let a = booked(&admin, "ann", &at(t, 0), 180).await;
    let b = booked(&admin, "ben", &at(t, 30), 180).await;
    let c = booked(&admin, "cat", &at(t, 60), 120).await;
    let mut keys: Vec<&str> = [&a, &b, &c]
        .iter()
        .map(|s| s["license"]["id"].as_str().unwrap())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 3, "{a} {b} {c}");
    // The window is the session less 10 minutes lead, plus 30 minutes grace.
    assert_eq!(a["window_start"], at(t, -10));
    assert_eq!(a["window_end"], at(t, 210));

    // A fourth at the same time is refused, naming the windows in the way.
    let before = server.dump().await;
    let refused = book(&admin, "dan", &at(t, 60), 60).await;
    assert_eq!(
        (refused.0, code(&refused)),
        (409, "no_license_for_window"),
        "{}",
        refused.1
    );
    let message = refused.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("ann") && message.contains("ben") && message.contains("cat"),
        "{message}"
    );
    assert_eq!(
        server.dump().await,
        before,
        "a refused booking changed something"
    );

    // Back to back with ann's window (it ends at t+3h30) fits.
    booked(&admin, "eve", &at(t, 220), 60).await;

    // Cancelling frees the window: now dan fits.
    let (s, _) = admin
        .delete(&format!("/api/v1/sessions/{}", b["id"].as_str().unwrap()))
        .await;
    assert_eq!(s, 204);
    let d = booked(&admin, "dan", &at(t, 60), 60).await;
    assert_eq!(d["instance"], "dan");
    let again = admin
        .delete(&format!("/api/v1/sessions/{}", b["id"].as_str().unwrap()))
        .await;
    assert_eq!((again.0, code(&again)), (404, "not_found"));

    // The list and the overview show them with their keys, by start.
    let (_, list) = admin.get("/api/v1/sessions").await;
    let worlds: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["instance"].as_str().unwrap())
        .collect();
    assert_eq!(worlds, ["ann", "cat", "dan", "eve"]);
    let (_, overview) = admin.get("/api/v1/admin/overview").await;
    assert_eq!(overview["sessions"].as_array().unwrap().len(), 4);

    // A game master sees and cancels only their own, and a refusal does not
    // name other people's worlds.
    admin.create_user("bob", "gm", "bob-password-1").await;
    let bob = admin.login("bob", "bob-password-1").await;
    add_world(&bob, "bobs", "stub").await;
    let (s, e) = book(&bob, "bobs", &at(t, 90), 60).await;
    assert_eq!(s, 409, "{e}");
    let message = e["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("ann") && message.contains("another world"),
        "{message}"
    );
    let mine = booked(&bob, "bobs", &at(t, 24 * 60), 60).await;
    let (_, bobs_list) = bob.get("/api/v1/sessions").await;
    assert_eq!(bobs_list.as_array().unwrap().len(), 1, "{bobs_list}");
    let not_his = bob
        .delete(&format!("/api/v1/sessions/{}", a["id"].as_str().unwrap()))
        .await;
    assert_eq!((not_his.0, code(&not_his)), (404, "not_found"));
    let (s, _) = book(&bob, "ann", &at(t, 48 * 60), 60).await;
    assert_eq!(s, 404, "a game master cannot book someone else's world");

    // Bad bookings: clear errors, nothing changed.
    let before = server.dump().await;
    for (body, status, code_) in [
        (
            json!({"instance": "eve", "start": "tomorrow", "duration_minutes": 60}),
            422,
            "invalid_field",
        ),
        (
            json!({"instance": "eve", "start": "2020-01-01T19:00:00Z", "duration_minutes": 60}),
            422,
            "invalid_field",
        ),
        (
            json!({"instance": "eve", "start": at(t, 3000), "duration_minutes": 5}),
            422,
            "invalid_field",
        ),
        (
            json!({"instance": "eve", "start": at(t, 3000), "duration_minutes": 100_000}),
            422,
            "invalid_field",
        ),
        (
            json!({"instance": "nobody", "start": at(t, 3000), "duration_minutes": 60}),
            404,
            "not_found",
        ),
        (
            json!({"instance": "eve", "start": at(t, 230), "duration_minutes": 60}),
            409,
            "session_overlaps",
        ),
        (
            json!({"instance": "eve", "start": at(t, 3000)}),
            422,
            "invalid_body",
        ),
    ] {
        let a = admin.post("/api/v1/sessions", &body).await;
        assert_eq!((a.0, code(&a)), (status, code_), "{body}: {}", a.1);
    }
    assert_eq!(server.dump().await, before);

    // The CLI books, lists and cancels.
    let out = server.cli(
        Some(bob.token()),
        &[
            "session",
            "schedule",
            "bobs",
            "--at",
            &at(t, 72 * 60),
            "--duration",
            "2h30m",
            "--json",
        ],
        None,
    );
    let made = ok_json(&out);
    assert_eq!(made["end"], at(t, 72 * 60 + 150));
    let out = server.cli(Some(bob.token()), &["session", "list"], None);
    assert!(text(&out.stdout).contains("bobs"), "{}", text(&out.stdout));
    let out = server.cli(
        Some(bob.token()),
        &["session", "cancel", mine["id"].as_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = server.cli(
        Some(bob.token()),
        &[
            "session",
            "schedule",
            "bobs",
            "--at",
            "tonight",
            "--duration",
            "2h",
        ],
        None,
    );
    // Refused by the client, which says what it takes.
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is not a time like"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_starts_its_world_on_its_key_stopping_the_world_on_it() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    let key = add_key(&admin, "only", &key_for("sessiononly")).await;
    add_world(&admin, "adhoc", "stub").await;
    add_world(&admin, "booked", "stub").await;

    // A key reserved within the next four hours is not handed out ad hoc;
    // the refusal says when it frees up.
    let later = booked(&admin, "booked", &at(Timestamp::now(), 180), 60).await;
    let refused = admin
        .post("/api/v1/instances/adhoc/start", &json!({}))
        .await;
    assert_eq!(
        (refused.0, code(&refused)),
        (409, "no_license_available"),
        "{}",
        refused.1
    );
    assert!(
        refused.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("free up at"),
        "{}",
        refused.1
    );
    // Its window opens in 2 h 50: nothing starts yet.
    let (_, waiting) = admin.get("/api/v1/instances/booked").await;
    assert_eq!(waiting["desired_state"], "stopped", "{waiting}");
    let (_, list) = admin.get("/api/v1/sessions").await;
    assert_eq!(list[0]["prepared"], false, "{list}");
    let (s, _) = admin
        .delete(&format!(
            "/api/v1/sessions/{}",
            later["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 204);

    // Without the reservation the ad-hoc start takes the key.
    let (s, b) = admin
        .post("/api/v1/instances/adhoc/start", &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    let (adhoc, _) = wait_for_state(&admin, "adhoc", "running").await;
    assert_eq!(adhoc["license"]["id"], key.as_str());

    // A session whose window is open now: its world starts by itself, and
    // the world on its key is stopped first.
    let soon = booked(&admin, "booked", &at(Timestamp::now(), 5), 60).await;
    assert_eq!(soon["license"]["id"], key.as_str());
    let (world, _) = wait_for_state(&admin, "booked", "running").await;
    assert_eq!(world["license"]["id"], key.as_str());
    let (_, adhoc) = admin.get("/api/v1/instances/adhoc").await;
    assert_eq!(adhoc["state"], "stopped", "{adhoc}");
    assert_eq!(adhoc["desired_state"], "stopped");
    let acts = actions(&admin).await;
    let preempt = acts.iter().position(|a| a == "session.preempt");
    let start = acts.iter().position(|a| a == "session.start");
    let release = acts.iter().rposition(|a| a == "license.release");
    let bind = acts.iter().rposition(|a| a == "license.bind");
    assert!(
        preempt.is_some() && preempt < start && release < bind,
        "the old world is warned and stopped, its key released, then bound: {acts:?}"
    );
    let (_, list) = admin.get("/api/v1/sessions").await;
    assert_eq!(list[0]["prepared"], true, "{list}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tiers_set_quotas() {
    let server = Server::start_with_env(
        &[],
        &[
            ("TAVERN_TIERS_FREE_MAX_INSTANCES", "1"),
            ("TAVERN_TIERS_FREE_DEFAULT", "true"),
            ("TAVERN_TIERS_BIG_MAX_INSTANCES", "3"),
            ("TAVERN_TIERS_BIG_MAX_RUNNING", "1"),
            ("TAVERN_TIERS_CAPPED_MONTHLY_HOURS", "0"),
        ],
    );
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "k1", &key_for("tierkeyone")).await;
    add_key(&admin, "k2", &key_for("tierkeytwo")).await;
    admin.create_user("alice", "gm", "alice-password-1").await;
    let alice = admin.login("alice", "alice-password-1").await;

    // The default tier allows one world.
    add_world(&alice, "one", "stub").await;
    let before = server.dump().await;
    let over = alice
        .post(
            "/api/v1/instances",
            &json!({"slug": "two", "release": "stub"}),
        )
        .await;
    assert_eq!((over.0, code(&over)), (403, "quota_exceeded"), "{}", over.1);
    let message = over.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("max_instances") && message.contains("free"),
        "{message}"
    );
    assert_eq!(server.dump().await, before);

    // Only admins move users between tiers, and only to configured ones.
    let (s, e) = alice
        .patch("/api/v1/users/alice", &json!({"tier":"big"}))
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("forbidden")));
    let (s, e) = admin
        .patch("/api/v1/users/alice", &json!({"tier":"gold"}))
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("unknown_tier")),
        "{e}"
    );
    let out = server.cli(
        Some(&server.admin_token),
        &["user", "set-tier", "alice", "big", "--json"],
        None,
    );
    assert_eq!(ok_json(&out)["tier"], "big");

    // The big tier: more worlds, one running at a time.
    add_world(&alice, "two", "stub").await;
    let (s, _) = alice.post("/api/v1/instances/one/start", &json!({})).await;
    assert_eq!(s, 202);
    let over = alice.post("/api/v1/instances/two/start", &json!({})).await;
    assert_eq!((over.0, code(&over)), (403, "quota_exceeded"), "{}", over.1);
    assert!(
        over.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_running")
    );
    // Starting a world that is already asked to run is not a new start.
    let (s, _) = alice.post("/api/v1/instances/one/start", &json!({})).await;
    assert_eq!(s, 202);
    // Sessions at the same time count as running, too.
    let t = days_ahead(3);
    booked(&alice, "one", &at(t, 0), 120).await;
    let over = book(&alice, "two", &at(t, 60), 60).await;
    assert_eq!((over.0, code(&over)), (403, "quota_exceeded"), "{}", over.1);

    // No hours left this month: no start.
    let (s, _) = alice.post("/api/v1/instances/one/stop", &json!({})).await;
    assert_eq!(s, 202);
    wait_for_state(&alice, "one", "stopped").await;
    let (s, u) = admin
        .patch("/api/v1/users/alice", &json!({"tier":"capped"}))
        .await;
    assert_eq!((s, &u["tier"]), (200, &json!("capped")), "{u}");
    let over = alice.post("/api/v1/instances/one/start", &json!({})).await;
    assert_eq!((over.0, code(&over)), (403, "quota_exceeded"), "{}", over.1);
    assert!(
        over.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("monthly_hours")
    );

    // A tier given at creation; and admins' own worlds have no quota.
    let out = server.cli(
        Some(&server.admin_token),
        &[
            "user",
            "create",
            "carol",
            "--role",
            "gm",
            "--tier",
            "big",
            "--password-stdin",
            "--json",
        ],
        Some("carol-password-1\n"),
    );
    assert_eq!(ok_json(&out)["tier"], "big");
    for n in 0..3 {
        add_world(&admin, &format!("admins{n}"), "stub").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_world_is_preempted_when_switched_on() {
    let server = Server::start_with_env(
        &[],
        &[
            ("TAVERN_LICENSES_PREEMPT_IDLE", "true"),
            ("TAVERN_LICENSES_PREEMPT_GRACE_MINUTES", "0"),
        ],
    );
    let admin = server.api(Some(&server.admin_token));
    let key = add_key(&admin, "only", &key_for("preemptkey")).await;
    add_world(&admin, "idle", "stub").await;
    add_world(&admin, "wanted", "stub").await;
    let (s, _) = admin.post("/api/v1/instances/idle/start", &json!({})).await;
    assert_eq!(s, 202);
    wait_for_state(&admin, "idle", "running").await;

    // With a player connected, the world is not idle: no key for `wanted`.
    let port = read_port(&server, "idle");
    let (player, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    ))
    .await
    .unwrap();
    wait_until("the player is seen", || async {
        admin.get("/api/v1/instances/idle").await.1["players"] == 1
    })
    .await;
    let refused = admin
        .post("/api/v1/instances/wanted/start", &json!({}))
        .await;
    assert_eq!(
        (refused.0, code(&refused)),
        (409, "no_license_available"),
        "{}",
        refused.1
    );

    // The player leaves: the idle world is stopped and its key moves.
    drop(player);
    wait_until("the player is gone", || async {
        admin.get("/api/v1/instances/idle").await.1["players"] == 0
    })
    .await;
    let (s, b) = admin
        .post("/api/v1/instances/wanted/start", &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    // Asking again while the key moves is not an error.
    let (s, b) = admin
        .post("/api/v1/instances/wanted/start", &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    let (wanted, _) = wait_for_state(&admin, "wanted", "running").await;
    assert_eq!(wanted["license"]["id"], key.as_str());
    let (_, idle) = admin.get("/api/v1/instances/idle").await;
    assert_eq!(
        (idle["state"].as_str(), idle["desired_state"].as_str()),
        (Some("stopped"), Some("stopped"))
    );
    // It says why it sleeps, naming no other world (its owner reads it).
    let why = idle["state_reason"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("stopped after ")
            && why.ends_with("without players: another world needed its key"),
        "{idle}"
    );
    assert!(
        actions(&admin)
            .await
            .contains(&"license.preempt".to_owned())
    );
}
