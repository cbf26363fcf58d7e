//! Tenants see only their own: a game master cannot read, list, change or
//! destroy another's instance, nor add or remove licenses; and such attempts
//! change nothing.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_gm_cannot_touch_another_gms_things() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    for name in ["alice", "bob"] {
        admin
            .create_user(name, "gm", &format!("{name}-password"))
            .await;
    }
    let (s, lic) = admin
        .post(
            "/api/v1/licenses",
            &json!({"label": "alices", "key": "AAAABBBBCCCCDDDDEEEEFFFF", "owner": "alice"}),
        )
        .await;
    assert_eq!(s, 201, "{lic}");
    let lic_id = lic["id"].as_str().unwrap().to_owned();
    let (s, pool) = admin
        .post(
            "/api/v1/licenses",
            &json!({"label": "pool", "key": "GGGGHHHHJJJJKKKKLLLLMMMM"}),
        )
        .await;
    assert_eq!(s, 201, "{pool}");

    let alice = server.api(None).login("alice", "alice-password").await;
    let bob = server.api(None).login("bob", "bob-password").await;
    let (s, b) = alice
        .post(
            "/api/v1/instances",
            &json!({"slug": "alices-world", "license": lic_id}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["owner"], "alice");

    let before = server.dump().await;

    // Reading and listing.
    assert_eq!(bob.get("/api/v1/instances/alices-world").await.0, 404);
    let (s, list) = bob.get("/api/v1/instances").await;
    assert_eq!((s, list), (200, json!([])));
    let (s, users) = bob.get("/api/v1/users").await;
    assert_eq!(s, 200);
    assert_eq!(users.as_array().unwrap().len(), 1);
    assert_eq!(users[0]["username"], "bob");
    // Bob sees the pool but not Alice's pinned key.
    let (_, lics) = bob.get("/api/v1/licenses").await;
    let labels: Vec<&str> = lics
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["pool"]);
    assert_eq!(code(&bob.get("/api/v1/events").await), "forbidden");

    // Changing and destroying.
    let a = bob.delete("/api/v1/instances/alices-world").await;
    assert_eq!((a.0, code(&a)), (404, "not_found"));
    let a = bob
        .post("/api/v1/instances/alices-world/start", &json!({}))
        .await;
    assert_eq!((a.0, code(&a)), (404, "not_found"));
    let a = bob
        .post("/api/v1/instances/alices-world/stop", &json!({}))
        .await;
    assert_eq!((a.0, code(&a)), (404, "not_found"));
    // Bob cannot create in Alice's name, nor take her slug or her key.
    let a = bob
        .post(
            "/api/v1/instances",
            &json!({"slug": "sneaky", "owner": "alice"}),
        )
        .await;
    assert_eq!((a.0, code(&a)), (403, "forbidden"));
    let a = bob
        .post(
            "/api/v1/instances",
            &json!({"slug": "bobs", "license": lic_id}),
        )
        .await;
    assert_eq!((a.0, code(&a)), (422, "unknown_license"));
    // Licenses are the admins' to manage.
    let a = bob
        .post(
            "/api/v1/licenses",
            &json!({"label": "mine", "key": "NNNNPPPPQQQQRRRRSSSSTTTT"}),
        )
        .await;
    assert_eq!((a.0, code(&a)), (403, "forbidden"));
    let a = bob.delete(&format!("/api/v1/licenses/{lic_id}")).await;
    assert_eq!((a.0, code(&a)), (403, "forbidden"));
    let a = alice.delete(&format!("/api/v1/licenses/{lic_id}")).await;
    assert_eq!((a.0, code(&a)), (403, "forbidden"));
    let a = bob
        .post(
            "/api/v1/users",
            &json!({"username": "mallory", "role": "admin", "password": "mallory-password"}),
        )
        .await;
    assert_eq!((a.0, code(&a)), (403, "forbidden"));

    assert_eq!(
        server.dump().await,
        before,
        "a refused request changed the store"
    );

    // The same through the CLI: non-zero exit and the reason on stderr.
    let out = server.cli(
        Some(bob.token()),
        &["instance", "destroy", "alices-world", "--yes"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not_found"),
        "{}",
        text(&out.stderr)
    );
    let out = server.cli(
        Some(bob.token()),
        &["license", "add", "--label", "x", "--key-stdin"],
        Some("NNNNPPPPQQQQRRRRSSSSTTTT"),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("forbidden"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(server.dump().await, before);

    // Alice still has her world; the admin sees both users' things.
    assert_eq!(alice.get("/api/v1/instances/alices-world").await.0, 200);
    assert_eq!(admin.get("/api/v1/instances/alices-world").await.0, 200);
}

/// A game master cannot take a key away from another's running world, by
/// a switchover (forced or not) or by a start, and the refusals never name
/// that world or its owner; the world's owner and admins can.
#[tokio::test(flavor = "multi_thread")]
async fn a_gm_cannot_take_a_key_from_another_gms_world() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    for name in ["alice", "mallory"] {
        admin
            .create_user(name, "gm", &format!("{name}-password"))
            .await;
    }
    let pool = add_key(&admin, "pool", &key_for("poolkey")).await;
    let alice = server.api(None).login("alice", "alice-password").await;
    let mallory = server.api(None).login("mallory", "mallory-password").await;
    create_world(&alice, &json!({"slug": "alices-table", "release": "stub"})).await;
    create_world(&alice, &json!({"slug": "alices-other", "release": "stub"})).await;
    create_world(
        &mallory,
        &json!({"slug": "mine2", "release": "stub", "license": pool}),
    )
    .await;
    let (s, b) = alice
        .post("/api/v1/instances/alices-table/start", &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    let (running, _) = wait_for_state(&alice, "alices-table", "running").await;
    assert_eq!(running["license"]["id"], pool.as_str());
    // A player is at Alice's table.
    let port = read_port(&server, "alices-table");
    let (player, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    ))
    .await
    .unwrap();
    wait_until("the player is seen", || async {
        alice.get("/api/v1/instances/alices-table").await.1["players"] == 1
    })
    .await;

    let events = || async { admin.get("/api/v1/events?limit=1000").await.1 };
    let before = events().await;
    let never_named = |a: &Answer| {
        let message = a.1["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("alice") && message.contains("another world"),
            "{message}"
        );
    };
    for force in [false, true] {
        let a = mallory
            .post(
                &format!("/api/v1/licenses/{pool}/activate"),
                &json!({"instance": "mine2", "force": force}),
            )
            .await;
        assert_refused(&a, 409, "license_in_use");
        never_named(&a);
    }
    let a = mallory
        .post("/api/v1/instances/mine2/start", &json!({}))
        .await;
    assert_refused(&a, 409, "license_in_use");
    never_named(&a);
    let out = server.cli(
        Some(mallory.token()),
        &[
            "license",
            "activate",
            &pool,
            "--instance",
            "mine2",
            "--force",
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        !text(&out.stderr).contains("alice"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(events().await, before, "a refused switchover did something");
    assert_eq!(
        mallory.get("/api/v1/instances/mine2").await.1["desired_state"],
        "stopped"
    );
    let (_, table) = alice.get("/api/v1/instances/alices-table").await;
    assert_eq!(
        (&table["state"], &table["desired_state"], &table["players"]),
        (&json!("running"), &json!("running"), &json!(1))
    );

    // Alice may move her key between her own worlds (with force, as a
    // player is connected); an admin may give it to Mallory's world.
    let (s, b) = alice
        .post(
            &format!("/api/v1/licenses/{pool}/activate"),
            &json!({"instance": "alices-other", "force": true}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    drop(player);
    let (other, _) = wait_for_state(&alice, "alices-other", "running").await;
    assert_eq!(other["license"]["id"], pool.as_str());
    let (s, b) = admin
        .post(
            &format!("/api/v1/licenses/{pool}/activate"),
            &json!({"instance": "mine2", "force": true}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(&mallory, "mine2", "running").await;
    wait_for_state(&alice, "alices-other", "stopped").await;
}
