//! Idle sleep, from outside: a running world without players goes to sleep
//! after its idle timeout, with a warning event first; a world inside its
//! session window does not.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_world_sleeps_but_not_inside_its_session() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "k1", &key_for("idlekeyone")).await;
    add_key(&admin, "k2", &key_for("idlekeytwo")).await;
    for slug in ["sleepy", "booked"] {
        let (s, b) = admin
            .post(
                "/api/v1/instances",
                &json!({"slug": slug, "release": "stub", "idle_timeout_minutes": 1}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    let (s, _) = admin
        .post("/api/v1/instances/sleepy/start", &json!({}))
        .await;
    assert_eq!(s, 202);
    // `booked` has a session now: the scheduler starts it.
    let start = (Timestamp::now() + SignedDuration::from_mins(5)).to_string();
    let (s, b) = admin
        .post(
            "/api/v1/sessions",
            &json!({"instance": "booked", "start": start, "duration_minutes": 60}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    wait_for_state(&admin, "sleepy", "running").await;
    wait_for_state(&admin, "booked", "running").await;

    // Nobody joins: after a minute `sleepy` is asked to stop, warned first.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, w) = admin.get("/api/v1/instances/sleepy").await;
        if w["desired_state"] == "stopped" {
            break;
        }
        assert!(Instant::now() < deadline, "sleepy never went to sleep: {w}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (sleepy, _) = wait_for_state(&admin, "sleepy", "stopped").await;
    // It says why it sleeps, in the API and on the dashboard.
    let why = sleepy["state_reason"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("asleep after ") && why.ends_with(" minutes without players"),
        "{sleepy}"
    );
    let (_, events) = admin.get("/api/v1/events?limit=1000").await;
    let for_world = |slug: &str| -> Vec<String> {
        let mut v: Vec<String> = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["target"] == format!("instance:{slug}"))
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect();
        v.reverse();
        v
    };
    let sleepy = for_world("sleepy");
    let warn = sleepy.iter().position(|a| a == "instance.idle_warning");
    let sleep = sleepy.iter().position(|a| a == "instance.idle_sleep");
    assert!(warn.is_some() && warn < sleep, "{sleepy:?}");
    // Inside its session window, `booked` stays up though nobody is there.
    let (_, booked) = admin.get("/api/v1/instances/booked").await;
    assert_eq!(
        (booked["state"].as_str(), booked["desired_state"].as_str()),
        (Some("running"), Some("running")),
        "{booked}"
    );
    assert!(!for_world("booked").contains(&"instance.idle_sleep".to_owned()));
}
