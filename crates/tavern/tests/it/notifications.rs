//! Notifications through the real binary: a world's start and stop, and a
//! session's reminder, reach the community webhook and the owner's own,
//! from the durable outbox, retried while the receiver is down and
//! delivered once when it is back; webhook addresses never reach the log.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A webhook receiver on `port` (Discord's answer: 204), recording each
/// message by hook name; stops when the handle is aborted.
async fn receiver(port: u16, got: Received) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new()
        .route(
            "/hooks/{name}",
            axum::routing::post(
                |State(got): State<Received>, Path(name): Path<String>, body: String| async move {
                    let v: Value = serde_json::from_str(&body).unwrap_or_default();
                    let text = v["content"].as_str().unwrap_or("?").to_owned();
                    got.lock().unwrap().push((name, text));
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(got);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

async fn outbox(admin: &Api) -> Vec<Value> {
    let (s, list) = admin.get("/api/v1/notifications").await;
    assert_eq!(s, 200, "{list}");
    list.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_outbox_retries_while_the_webhook_is_down_and_delivers_once_it_is_back() {
    let [port] = free_ports::<1>();
    let community = format!("http://127.0.0.1:{port}/hooks/community-s3cr3t");
    let server = Server::start_with_env(
        &[],
        &[
            ("TAVERN_DISCORD_WEBHOOK_URL", community.as_str()),
            ("TAVERN_NOTIFICATIONS_RETRY_INITIAL_SECONDS", "1"),
            ("TAVERN_NOTIFICATIONS_RETRY_MAX_SECONDS", "2"),
            ("TAVERN_BACKUPS_AFTER_STOP", "false"),
        ],
    );
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("alice", "gm", "alice-password").await;
    admin.create_user("bob", "gm", "bob-password").await;
    let alice = admin.login("alice", "alice-password").await;
    let bob = admin.login("bob", "bob-password").await;
    let own = format!("http://127.0.0.1:{port}/hooks/alice-s3cr3t");
    let out = server.cli(Some(alice.token()), &["user", "set-webhook", &own], None);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Who may set which webhook, and what a webhook is.
    assert_refused(
        &bob.patch(
            "/api/v1/users/alice",
            &json!({"webhook_url": "https://x.example/h"}),
        )
        .await,
        403,
        "forbidden",
    );
    assert_refused(
        &bob.patch(
            "/api/v1/users/bob",
            &json!({"webhook_url": "discord please"}),
        )
        .await,
        422,
        "invalid_webhook",
    );
    assert_refused(&bob.get("/api/v1/notifications").await, 403, "forbidden");

    // With the receiver down, the world starts and stops: notices wait.
    add_key(&admin, "table", &key_for("table")).await;
    create_world(&alice, &json!({"slug": "keep", "release": "stub"})).await;
    let (s, _) = alice.post("/api/v1/instances/keep/start", &json!({})).await;
    assert_eq!(s, 202);
    wait_for_state(&alice, "keep", "running").await;
    let (s, _) = alice.post("/api/v1/instances/keep/stop", &json!({})).await;
    assert_eq!(s, 202);
    wait_for_state(&alice, "keep", "stopped").await;
    // And a session 20 minutes from now: its owner is reminded at once
    // (30 minutes ahead), before its window opens.
    let start = (jiff::Timestamp::now() + jiff::SignedDuration::from_mins(20))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (s, body) = alice
        .post(
            "/api/v1/sessions",
            &json!({"instance": "keep", "start": start, "duration_minutes": 60}),
        )
        .await;
    assert_eq!(s, 201, "{body}");

    wait_until("failed deliveries retried", || async {
        let list = outbox(&admin).await;
        list.len() == 6
            && list
                .iter()
                .all(|n| n["status"] == "pending" && n["attempts"].as_u64() >= Some(2))
    })
    .await;
    for n in outbox(&admin).await {
        let err = n["last_error"].as_str().unwrap_or_default();
        assert!(err.contains("cannot reach"), "{n}");
        assert!(
            !err.contains("s3cr3t") && !err.contains(&port.to_string()),
            "{n}"
        );
    }

    // The receiver comes back: each notice arrives, once, at each hook.
    let got: Received = Arc::default();
    let handle = receiver(port, got.clone()).await;
    wait_until("every notification delivered", || async {
        outbox(&admin)
            .await
            .iter()
            .all(|n| n["status"] == "delivered")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut seen = got.lock().unwrap().clone();
    seen.sort();
    let reminder = seen
        .iter()
        .find(|(_, t)| t.starts_with("Reminder: a session of keep begins soon: from "))
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| panic!("no reminder in {seen:?}"));
    let mut want = Vec::new();
    for hook in ["alice-s3cr3t", "community-s3cr3t"] {
        for t in [
            "keep has stopped.",
            "keep is up and running.",
            reminder.as_str(),
        ] {
            want.push((hook.to_owned(), t.to_owned()));
        }
    }
    want.sort();
    assert_eq!(seen, want);
    // A reminder is sent once, whatever the scheduler's pace.
    assert_eq!(outbox(&admin).await.len(), 6);

    // Alice stops hers: later notices go to the community only.
    let out = server.cli(
        Some(alice.token()),
        &["user", "set-webhook", "--none"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (s, _) = alice.post("/api/v1/instances/keep/start", &json!({})).await;
    assert_eq!(s, 202);
    wait_for_state(&alice, "keep", "running").await;
    wait_until("the start delivered", || async {
        got.lock().unwrap().len() == 7
    })
    .await;
    assert_eq!(
        got.lock().unwrap()[6],
        (
            "community-s3cr3t".to_owned(),
            "keep is up and running.".to_owned()
        )
    );
    let (s, _) = alice.post("/api/v1/instances/keep/stop", &json!({})).await;
    assert_eq!(s, 202);
    wait_for_state(&alice, "keep", "stopped").await;
    handle.abort();

    // The webhooks' addresses (with their tokens) never reach the log.
    let log = std::fs::read_to_string(server.home().join("server.log")).unwrap();
    assert!(!log.contains("s3cr3t"), "a webhook address is in the log");
}
