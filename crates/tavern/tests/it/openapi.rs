//! The OpenAPI document says exactly what the server does, and outside
//! tools hold it to that: openapi-spec-validator finds the document valid,
//! and schemathesis, with every check, finds no failure against a live
//! server, as an admin and as a game master (on resources made for it, and
//! statefully on those it makes). Both tools come from PyPI; `.ci/run`
//! installs them; elsewhere the tests skip without them.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;

/// Whether a command of a Python tool is on the PATH; under `CI=true` its
/// absence fails the test.
fn installed(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but {tool} is not installed (`pip install {tool}`; bash .ci/run does it)"
        );
        eprintln!("skipped: {tool} is not installed (`pip install {tool}`)");
    }
    found
}

/// The document as the server serves it.
async fn document(server: &Server) -> Value {
    let (s, doc) = server.api(None).get("/api/v1/openapi.json").await;
    assert_eq!(s, 200);
    doc
}

#[tokio::test(flavor = "multi_thread")]
async fn the_document_is_valid_openapi() {
    if !installed("openapi-spec-validator") {
        return;
    }
    let server = Server::start();
    let file = server.home().join("openapi.json");
    std::fs::write(&file, document(&server).await.to_string()).unwrap();
    let out = Command::new("openapi-spec-validator")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// What schemathesis's first run works on: a game master's world that has
/// run once, a backup of it, a session, a pooled key, an invitation.
struct Fixtures {
    gm_token: String,
    env: Vec<(&'static str, String)>,
}

async fn fixtures(server: &Server) -> Fixtures {
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("gina", "gm", "gina-password").await;
    let gina = admin.login("gina", "gina-password").await;
    let license = add_key(&admin, "pool", &key_for("schemakey")).await;
    create_world(&gina, &json!({"slug": "ginas", "release": "stub"})).await;
    for (verb, state) in [("start", "running"), ("stop", "stopped")] {
        let (s, b) = gina
            .post(&format!("/api/v1/instances/ginas/{verb}"), &json!({}))
            .await;
        assert_eq!(s, 202, "{b}");
        wait_for_state(&gina, "ginas", state).await;
    }
    crate::backups::wait_after_stop_backup(&gina, "ginas").await;
    let backup = crate::backups::backup_now(&gina, "ginas").await;
    let start = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 20))
        .strftime("%Y-%m-%dT19:00:00Z")
        .to_string();
    let (s, session) = gina
        .post(
            "/api/v1/sessions",
            &json!({"instance": "ginas", "start": start, "duration_minutes": 120}),
        )
        .await;
    assert_eq!(s, 201, "{session}");
    let (s, invite) = admin.post("/api/v1/invites", &json!({"role": "gm"})).await;
    assert_eq!(s, 201, "{invite}");
    let id = |v: &Value, k: &str| v[k].as_str().unwrap().to_owned();
    Fixtures {
        gm_token: gina.token().to_owned(),
        env: vec![
            ("TAVERN_ST_SLUG", "ginas".into()),
            ("TAVERN_ST_USERNAME", "gina".into()),
            ("TAVERN_ST_BACKUP", id(&backup, "id")),
            ("TAVERN_ST_LICENSE", license),
            ("TAVERN_ST_SESSION", id(&session, "id")),
            ("TAVERN_ST_INVITE", id(&invite, "id")),
            ("TAVERN_ST_INVITE_CODE", id(&invite, "code")),
        ],
    }
}

/// Runs schemathesis against `server` with `token`: every phase but the
/// stateful one on the fixtures (no DELETE, which would take them away),
/// then the stateful phase on what it makes itself. Fails with its report.
fn schemathesis(server: &Server, token: &str, env: &[(&'static str, String)]) {
    let configs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis");
    let runs: [(&str, &[&str]); 2] = [
        (
            "fixtures.toml",
            &[
                "--phases",
                "examples,coverage,fuzzing",
                "--exclude-method",
                "DELETE",
            ],
        ),
        ("stateful.toml", &["--phases", "stateful"]),
    ];
    for (config, phases) in runs {
        let out = Command::new("schemathesis")
            .arg("--config-file")
            .arg(configs.join(config))
            .arg("run")
            .arg(format!("{}/api/v1/openapi.json", server.url))
            .args(["-H", &format!("Authorization: Bearer {token}")])
            // Signing out would end the run's own token.
            .args(["--exclude-operation-id", "logout"])
            .args(["--max-examples", "30", "--workers", "1", "--seed", "1"])
            .args(["--request-timeout", "20", "--no-color"])
            .args(phases)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(server.home())
            .output()
            .unwrap();
        let report = text(&out.stdout);
        let tail: Vec<&str> = report.lines().rev().take(250).collect();
        assert!(
            out.status.success(),
            "schemathesis ({config}) found failures:\n{}\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            text(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_as_an_admin() {
    if !installed("schemathesis") {
        return;
    }
    let server = Server::start();
    let f = fixtures(&server).await;
    schemathesis(&server, &server.admin_token, &f.env);
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_nothing_as_a_game_master() {
    if !installed("schemathesis") {
        return;
    }
    let server = Server::start();
    let f = fixtures(&server).await;
    schemathesis(&server, &f.gm_token, &f.env);
}
