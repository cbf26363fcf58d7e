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
