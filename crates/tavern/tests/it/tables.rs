//! The client's tables through the real binary: every command that prints
//! a table reads the server's answer as the API's types (a field the client
//! expects and the server does not send fails here), says states in
//! people's words, and `--json` prints the answer exactly as it came.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::backups::backup_now;
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn every_table_reads_the_servers_answers() {
    let server = Server::start_with_env(&[], &[("TAVERN_BACKUPS_AFTER_STOP", "false")]);
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("gm", "gm", "gm-password-1").await;
    let gm = server.api(None).login("gm", "gm-password-1").await;
    add_key(&admin, "table key", &key_for("table")).await;
    create_world(&gm, &json!({"slug": "tables", "release": "stub"})).await;

    let out = server.cli(
        Some(gm.token()),
        &["instance", "start", "tables", "--wait"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("tables runs at "));
    let start = (Timestamp::now() + SignedDuration::from_hours(48)).to_string();
    let (s, b) = gm
        .post(
            "/api/v1/sessions",
            &json!({"instance": "tables", "start": start, "duration_minutes": 60}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    backup_now(&gm, "tables").await;
    let (s, b) = admin.post("/api/v1/invites", &json!({"tier": null})).await;
    assert_eq!(s, 201, "{b}");

    let gm_token = gm.token();
    let admin_token = server.admin_token.as_str();
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            gm_token,
            &["instance", "list"],
            &["WORLD", "tables", "running", "table key"],
        ),
        (
            gm_token,
            &["instance", "show", "tables"],
            &["foundry world", "running", "stub"],
        ),
        (
            admin_token,
            &["license", "list"],
            &["LABEL", "table key", "7777"],
        ),
        (admin_token, &["user", "list"], &["USERNAME", "gm"]),
        (
            gm_token,
            &["session", "list"],
            &["START", "tables", "table key", "no"],
        ),
        (
            gm_token,
            &["backup", "list"],
            &["SIZE", "tables", "manual", "complete"],
        ),
        (admin_token, &["invite", "list"], &["EXPIRES", "gm", "open"]),
        (admin_token, &["release", "list"], &["VERSION", "stub"]),
        (
            admin_token,
            &["events"],
            &["ACTION", "instance.start", "gm"],
        ),
        (gm_token, &["usage"], &["Usage in ", "gm", "tables"]),
        (
            admin_token,
            &["admin", "overview"],
            &[
                "License keys",
                "table key",
                "Running worlds",
                "running",
                "Supporters",
            ],
        ),
        (admin_token, &["admin", "supporters"], &["(none)"]),
        (admin_token, &["admin", "notifications"], &[]),
    ];
    for (token, args, shows) in cases {
        let out = server.cli(Some(token), args, None);
        let shown = text(&out.stdout);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        for word in *shows {
            assert!(shown.contains(word), "{args:?} shows no {word:?}:\n{shown}");
        }
        assert!(!shown.contains("state_word"), "{shown}");
    }

    // `--json` is the server's answer, as it came.
    for (path, args) in [
        ("/api/v1/licenses", &["license", "list", "--json"][..]),
        ("/api/v1/users", &["user", "list", "--json"]),
        ("/api/v1/releases", &["release", "list", "--json"]),
    ] {
        let (s, answer) = admin.get(path).await;
        assert_eq!(s, 200, "{answer}");
        assert_eq!(ok_json(&server.cli(Some(admin_token), args, None)), answer);
    }
    let shown: Value = ok_json(&server.cli(
        Some(gm_token),
        &["instance", "show", "tables", "--json"],
        None,
    ));
    assert_eq!(shown["slug"], "tables");
    assert!(shown.get("state_word").is_none(), "{shown}");
}
