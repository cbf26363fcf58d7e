//! The Discord bot through the real binary: interactions signed with an
//! Ed25519 key as Discord signs them (and refused when they are not), each
//! `/tavern` subcommand against a running server with the stand-in, follow-
//! ups to a local stand-in for Discord's REST API, a game master unable to
//! touch another's world, and `tavern discord register` against that API.

use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

const APP: &str = "112233445566";
const BOT_TOKEN: &str = "bot-s3cr3t-token";

/// What the stand-in for Discord's API received: (method and path,
/// authorization header, body).
type Calls = Arc<Mutex<Vec<(String, String, Value)>>>;

/// Discord's REST API on a loopback port: it records each call; a
/// commands upload with a wrong bot token is refused (401).
async fn fake_discord() -> (String, Calls, tokio::task::JoinHandle<()>) {
    let calls: Calls = Arc::default();
    let record = |what: String, headers: &HeaderMap, body: &str, calls: &Calls| {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = serde_json::from_str(body).unwrap_or_default();
        calls.lock().unwrap().push((what, auth, body));
    };
    let app = axum::Router::new()
        .route(
            "/api/v10/applications/{app}/commands",
            axum::routing::put(
                move |State(calls): State<Calls>,
                      Path(app): Path<String>,
                      headers: HeaderMap,
                      body: String| async move {
                    record(format!("PUT commands {app}"), &headers, &body, &calls);
                    if headers.get("authorization").and_then(|v| v.to_str().ok())
                        != Some(&format!("Bot {BOT_TOKEN}"))
                    {
                        return (
                            StatusCode::UNAUTHORIZED,
                            axum::Json(json!({"message": "401: Unauthorized", "code": 0})),
                        );
                    }
                    let v: Value = serde_json::from_str(&body).unwrap();
                    (StatusCode::OK, axum::Json(v))
                },
            ),
        )
        .route(
            "/api/v10/webhooks/{app}/{token}/messages/@original",
            axum::routing::patch(
                move |State(calls): State<Calls>,
                      Path((app, token)): Path<(String, String)>,
                      headers: HeaderMap,
                      body: String| async move {
                    record(format!("PATCH {app} {token}"), &headers, &body, &calls);
                    axum::Json(json!({"id": "1"}))
                },
            ),
        )
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/v10", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, calls, handle)
}

struct Bot {
    url: String,
    keys: Ed25519KeyPair,
    http: reqwest::Client,
}

impl Bot {
    /// Posts `body` signed with `keys` at `timestamp` (Unix seconds).
    async fn post_signed(&self, keys: &Ed25519KeyPair, timestamp: i64, body: &str) -> (u16, Value) {
        let ts = timestamp.to_string();
        let mut signed = ts.as_bytes().to_vec();
        signed.extend_from_slice(body.as_bytes());
        let sig = hex::encode(keys.sign(&signed).as_ref());
        self.send(Some((&sig, &ts)), body).await
    }

    async fn send(&self, headers: Option<(&str, &str)>, body: &str) -> (u16, Value) {
        let mut r = self
            .http
            .post(format!("{}/discord/interactions", self.url))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some((sig, ts)) = headers {
            r = r
                .header("x-signature-ed25519", sig)
                .header("x-signature-timestamp", ts);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or_default())
    }

    /// `/tavern <sub> <options>` from the Discord account `user`.
    async fn command(&self, user: &str, sub: &str, options: &[(&str, Value)]) -> Value {
        let body = json!({
            "type": 2,
            "id": "9001",
            "application_id": APP,
            "token": format!("interaction-{user}-{sub}"),
            "member": { "user": { "id": user, "username": user } },
            "data": {
                "id": "77",
                "name": "tavern",
                "type": 1,
                "options": [{
                    "name": sub,
                    "type": 1,
                    "options": options.iter().map(|(k, v)| json!({"name": k, "type": 3, "value": v})).collect::<Vec<_>>(),
                }],
            },
        })
        .to_string();
        let (status, answer) = self
            .post_signed(&self.keys, jiff::Timestamp::now().as_second(), &body)
            .await;
        assert_eq!(status, 200, "{sub}: {answer}");
        answer
    }

    /// The text of an immediate answer (seen only by who asked).
    async fn says(&self, user: &str, sub: &str, options: &[(&str, Value)]) -> String {
        let a = self.command(user, sub, options).await;
        assert_eq!(a["type"], 4, "{sub}: {a}");
        assert_eq!(a["data"]["flags"], 64, "{a}");
        a["data"]["content"].as_str().unwrap().to_owned()
    }
}

/// Waits for the follow-up of interaction `token` and answers its text.
async fn follow_up(calls: &Calls, token: &str) -> String {
    let want = format!("PATCH {APP} {token}");
    wait_until("the follow-up", || async {
        calls.lock().unwrap().iter().any(|(w, _, _)| *w == want)
    })
    .await;
    let calls = calls.lock().unwrap();
    let (_, _, body) = calls.iter().find(|(w, _, _)| *w == want).unwrap();
    body["content"].as_str().unwrap().to_owned()
}

fn link_code(server: &Server, token: &str) -> String {
    let out = server.cli(Some(token), &["user", "link-code", "--json"], None);
    ok_json(&out)["code"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bot_checks_signatures_and_acts_with_the_linked_users_rights() {
    let (api_base, calls, fake) = fake_discord().await;
    let keys = Ed25519KeyPair::from_seed_unchecked(&[42; 32]).unwrap();
    let public = hex::encode(keys.public_key().as_ref());
    let server = Server::start_with_env(
        &[],
        &[
            ("TAVERN_DISCORD_PUBLIC_KEY", public.as_str()),
            ("TAVERN_DISCORD_APPLICATION_ID", APP),
            ("TAVERN_DISCORD_BOT_TOKEN", BOT_TOKEN),
            ("TAVERN_DISCORD_API_BASE", api_base.as_str()),
            ("TAVERN_BACKUPS_AFTER_STOP", "false"),
        ],
    );
    let bot = Bot {
        url: server.url.clone(),
        keys,
        http: reqwest::Client::new(),
    };
    let now = jiff::Timestamp::now().as_second();

    // Signatures: PING is answered PONG only when Discord signed it.
    let ping = r#"{"type":1,"id":"1","application_id":"112233445566","token":"t"}"#;
    assert_eq!(
        bot.post_signed(&bot.keys, now, ping).await,
        (200, json!({"type": 1}))
    );
    let (s, body) = bot.send(None, ping).await;
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("invalid_signature"))
    );
    let stranger = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
    assert_eq!(
        bot.post_signed(&stranger, now, ping).await.0,
        401,
        "wrong key"
    );
    assert_eq!(
        bot.post_signed(&bot.keys, now - 600, ping).await.0,
        401,
        "stale"
    );
    assert_eq!(
        bot.post_signed(&bot.keys, now + 600, ping).await.0,
        401,
        "from the future"
    );
    let ts = now.to_string();
    let mut signed = ts.as_bytes().to_vec();
    signed.extend_from_slice(ping.as_bytes());
    let sig = hex::encode(bot.keys.sign(&signed).as_ref());
    let tampered = ping.replace("\"t\"", "\"u\"");
    assert_eq!(
        bot.send(Some((&sig, &ts)), &tampered).await.0,
        401,
        "tampered body"
    );
    assert_eq!(
        bot.send(Some(("", &ts)), ping).await.0,
        401,
        "empty signature"
    );

    // An unlinked account can only link.
    let said = bot.says("d-alice", "status", &[]).await;
    assert!(said.contains("not linked"), "{said}");
    let said = bot
        .says("d-alice", "link", &[("code", json!("TAV-AAAAA-AAAAA"))])
        .await;
    assert!(said.contains("unknown, used or expired"), "{said}");

    let admin = server.api(Some(&server.admin_token));
    admin.create_user("alice", "gm", "alice-password").await;
    admin.create_user("bob", "gm", "bob-password").await;
    let alice = admin.login("alice", "alice-password").await;
    let bob = admin.login("bob", "bob-password").await;
    for (who, token) in [
        ("d-alice", alice.token().to_owned()),
        ("d-bob", bob.token().to_owned()),
        ("d-admin", server.admin_token.clone()),
    ] {
        let code = link_code(&server, &token);
        let said = bot.says(who, "link", &[("code", json!(code))]).await;
        assert!(said.starts_with("Linked: here you act as "), "{said}");
        // A code works once.
        let said = bot.says("d-other", "link", &[("code", json!(code))]).await;
        assert!(said.contains("unknown, used or expired"), "{said}");
    }

    add_key(&admin, "table", &key_for("table")).await;
    create_world(&alice, &json!({"slug": "keep", "release": "stub"})).await;
    create_world(&bob, &json!({"slug": "crypt", "release": "stub"})).await;

    // start: acknowledged at once, answered when the world runs.
    let a = bot
        .command("d-alice", "start", &[("world", json!("keep"))])
        .await;
    assert_eq!(a, json!({"type": 5, "data": {"flags": 64}}));
    let done = follow_up(&calls, "interaction-d-alice-start").await;
    assert!(done.starts_with("keep is running: http"), "{done}");
    let said = bot.says("d-alice", "status", &[]).await;
    assert!(said.contains("**keep** — running"), "{said}");
    assert!(
        !said.contains("crypt"),
        "a gm sees only their worlds: {said}"
    );

    // Bob cannot stop (or even see) Alice's world through Discord.
    let said = bot.says("d-bob", "stop", &[("world", json!("keep"))]).await;
    assert!(said.contains("no world keep"), "{said}");
    let said = bot
        .says("d-bob", "status", &[("world", json!("keep"))])
        .await;
    assert!(said.contains("no world keep"), "{said}");
    let (_, keep) = alice.get("/api/v1/instances/keep").await;
    assert_eq!(keep["desired_state"], "running", "{keep}");

    // schedule, sessions, cancel.
    let day = (jiff::Zoned::now().date() + jiff::Span::new().days(3)).to_string();
    let said = bot
        .says(
            "d-alice",
            "schedule",
            &[
                ("world", json!("keep")),
                ("when", json!(format!("{day} 19:00 Europe/Paris"))),
                ("duration", json!("3h")),
            ],
        )
        .await;
    assert!(said.starts_with("Booked: keep from "), "{said}");
    let id = said
        .rsplit("Session id: ")
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let said = bot.says("d-alice", "sessions", &[]).await;
    assert!(said.contains(&id) && said.contains("**keep**"), "{said}");
    let said = bot
        .says(
            "d-alice",
            "schedule",
            &[
                ("world", json!("keep")),
                ("when", json!("someday")),
                ("duration", json!("3h")),
            ],
        )
        .await;
    assert!(
        said.contains("not a date and time with a time zone"),
        "{said}"
    );
    let said = bot
        .says("d-bob", "cancel", &[("session", json!(id.clone()))])
        .await;
    assert!(said.starts_with("There is no"), "{said}");
    let said = bot
        .says("d-alice", "cancel", &[("session", json!(id))])
        .await;
    assert!(said.contains("cancelled"), "{said}");
    assert!(
        bot.says("d-alice", "sessions", &[])
            .await
            .contains("No sessions")
    );

    // backup: answered when the archive is complete.
    let a = bot
        .command("d-alice", "backup", &[("world", json!("keep"))])
        .await;
    assert_eq!(a["type"], 5, "{a}");
    let done = follow_up(&calls, "interaction-d-alice-backup").await;
    assert!(done.starts_with("The backup of keep is complete"), "{done}");

    // invite and overview are for admins.
    let said = bot.says("d-alice", "invite", &[]).await;
    assert!(said.starts_with("Not done:"), "{said}");
    let said = bot.says("d-alice", "overview", &[]).await;
    assert!(said.starts_with("Not done:"), "{said}");
    let said = bot.says("d-admin", "invite", &[("uses", json!(2))]).await;
    assert!(
        said.contains("2 gm account(s)") && said.contains("/auth/invite/"),
        "{said}"
    );
    let said = bot.says("d-admin", "overview", &[]).await;
    assert!(
        said.contains("**Keys:** table → keep") && said.contains("keep (0 players)"),
        "{said}"
    );
    let said = bot.says("d-admin", "status", &[]).await;
    assert!(
        said.contains("keep") && said.contains("crypt"),
        "an admin sees all: {said}"
    );

    // stop.
    let said = bot
        .says("d-alice", "stop", &[("world", json!("keep"))])
        .await;
    assert_eq!(said, "keep is stopping.");
    wait_for_state(&alice, "keep", "stopped").await;
    fake.abort();

    // The bot's token never reaches the log.
    let log = std::fs::read_to_string(server.home().join("server.log")).unwrap();
    assert!(!log.contains(BOT_TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn discord_register_installs_the_command_through_the_rest_api() {
    let (api_base, calls, fake) = fake_discord().await;
    let home = tempfile::tempdir().unwrap();
    let register = |token: &str| {
        let mut c = tavern(home.path());
        c.args(["discord", "register"])
            .env("TAVERN_DISCORD_PUBLIC_KEY", "ab".repeat(32))
            .env("TAVERN_DISCORD_APPLICATION_ID", APP)
            .env("TAVERN_DISCORD_BOT_TOKEN", token)
            .env("TAVERN_DISCORD_API_BASE", &api_base);
        run(c, None)
    };
    let out = register(BOT_TOKEN);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Registered /tavern with 10 subcommands"),
        "{}",
        text(&out.stdout)
    );
    {
        let calls = calls.lock().unwrap();
        let (what, auth, body) = &calls[0];
        assert_eq!(what, &format!("PUT commands {APP}"));
        assert_eq!(auth, &format!("Bot {BOT_TOKEN}"));
        assert_eq!(body[0]["name"], "tavern");
        let subs: Vec<&str> = body[0]["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        assert_eq!(subs, tavern_http::bot::SUBCOMMANDS);
    }
    // A refused token is a clear error that does not repeat the token.
    let out = register("not-the-token");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("Discord refused") && err.contains("401"),
        "{err}"
    );
    assert!(!err.contains("not-the-token"), "{err}");
    // Without the settings it needs, it says which.
    let mut c = tavern(home.path());
    c.args(["discord", "register"]);
    let out = run(c, None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("discord.public_key"),
        "{}",
        text(&out.stderr)
    );
    fake.abort();
}
