//! Tavern on PostgreSQL through a database restart: while the server is
//! down, API calls answer 503 `store_unavailable` (Tavern keeps running and
//! so do the worlds); when it is back, Tavern carries on by itself.

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_database_restart_answers_503_and_tavern_recovers_by_itself() {
    let Some(db) = tavern_store_sql::testing::Cluster::start() else {
        return;
    };
    let server = Server::start_with_env(
        &[],
        &[
            ("TAVERN_STORE_URL", &db.url()),
            ("TAVERN_STORE_POOL_SIZE", "4"),
        ],
    );
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "main", &key_for("keep")).await;
    add_world(&admin, "keep", "stub").await;
    let (s, b) = admin.post("/api/v1/instances/keep/start", &json!({})).await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(&admin, "keep", "running").await;
    let world = server_pid(&server, "keep");

    db.stop();
    let down = admin.get("/api/v1/instances").await;
    assert_refused(&down, 503, "store_unavailable");
    let write = admin
        .post(
            "/api/v1/users",
            &json!({"username": "carol", "role": "gm", "password": "carol-password"}),
        )
        .await;
    assert_refused(&write, 503, "store_unavailable");
    let message = down.1["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("database"), "{message}");
    // Tavern itself still answers, and the world still runs.
    assert_eq!(server.api(None).get("/healthz").await.0, 200);
    assert!(process_alive(world), "the world died with the database");

    db.start_again();
    wait_until("the API answers again", || async {
        admin.get("/api/v1/instances").await.0 == 200
    })
    .await;
    admin.create_user("carol", "gm", "carol-password").await;
    let (body, _) = wait_for_state(&admin, "keep", "running").await;
    assert_eq!(body["desired_state"], "running", "{body}");
    assert_eq!(
        server_pid(&server, "keep"),
        world,
        "the world was not restarted"
    );
    let log = server.output();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tavern_reaches_postgres_over_verified_tls_only() {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let Some(db) = tavern_store_sql::testing::Cluster::start_tls(
        &made.cert.pem(),
        &made.signing_key.serialize_pem(),
    ) else {
        return;
    };
    let certs = tempfile::tempdir().unwrap();
    let ca = certs.path().join("db-ca.pem");
    std::fs::write(&ca, made.cert.pem()).unwrap();

    // The server refuses connections without TLS, and a certificate from
    // an unknown CA fails verification: either way Tavern stops at once and
    // says which database it could not open.
    for (params, why) in [
        ("sslmode=disable", "no TLS"),
        ("sslmode=verify-full", "an unknown CA"),
    ] {
        let mut c = tavern(certs.path());
        c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(certs.path().join("data"))
            .env("TAVERN_STORE_URL", format!("{}?{params}", db.url()));
        let out = run(c, None);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "Tavern started with {why}");
        assert!(
            err.contains("cannot open the database postgres://tavern@127.0.0.1"),
            "with {why}: {err}"
        );
    }

    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        db.url(),
        ca.display()
    );
    let server = Server::start_with_env(&[], &[("TAVERN_STORE_URL", &url)]);
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("dora", "gm", "dora-password").await;
    let (status, users) = admin.get("/api/v1/users").await;
    assert_eq!(status, 200, "{users}");
    assert!(users.to_string().contains("dora"), "{users}");
}
