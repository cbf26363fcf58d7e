//! Bad input gets the documented 4xx code and leaves the store exactly as it
//! was: the whole database is dumped before and after and compared.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

struct Case {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    token: Tok,
    status: u16,
    code: &'static str,
}

#[derive(Clone, Copy)]
enum Tok {
    Admin,
    None,
    Bad,
}

fn case(
    what: &'static str,
    method: &'static str,
    path: &'static str,
    body: Value,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        what,
        method,
        path,
        content_type: Some("application/json"),
        body: body.to_string().into_bytes(),
        token: Tok::Admin,
        status,
        code,
    }
}

fn slug(what: &'static str, slug: &str, code: &'static str) -> Case {
    case(
        what,
        "POST",
        "/api/v1/instances",
        json!({ "slug": slug }),
        422,
        code,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("alice", "gm", "alice-password").await;
    let (s, _) = admin
        .post(
            "/api/v1/instances",
            &json!({"slug": "taken", "owner": "alice"}),
        )
        .await;
    assert_eq!(s, 201);

    let long = "a".repeat(64);
    let mut cases = vec![
        slug("uppercase", "Dragon", "invalid_slug"),
        slug("too long", &long, "invalid_slug"),
        slug("leading hyphen", "-dragon", "invalid_slug"),
        slug("trailing hyphen", "dragon-", "invalid_slug"),
        slug("dot", "dragon.heist", "invalid_slug"),
        slug("underscore", "dragon_heist", "invalid_slug"),
        slug("empty", "", "invalid_slug"),
        slug("reserved www", "www", "reserved_slug"),
        slug("reserved api", "api", "reserved_slug"),
        slug("reserved admin", "admin", "reserved_slug"),
        slug("reserved app", "app", "reserved_slug"),
        case(
            "duplicate slug",
            "POST",
            "/api/v1/instances",
            json!({"slug": "taken"}),
            409,
            "slug_taken",
        ),
        case(
            "missing slug",
            "POST",
            "/api/v1/instances",
            json!({"release": "12.331"}),
            422,
            "invalid_body",
        ),
        case(
            "slug of the wrong type",
            "POST",
            "/api/v1/instances",
            json!({"slug": 5}),
            422,
            "invalid_body",
        ),
        case(
            "misspelt field",
            "POST",
            "/api/v1/instances",
            json!({"slgu": "fine"}),
            422,
            "invalid_body",
        ),
        case(
            "idle timeout of the wrong type",
            "POST",
            "/api/v1/instances",
            json!({"slug": "fine", "idle_timeout_minutes": "soon"}),
            422,
            "invalid_body",
        ),
        case(
            "idle timeout out of range",
            "POST",
            "/api/v1/instances",
            json!({"slug": "fine", "idle_timeout_minutes": 0}),
            422,
            "invalid_field",
        ),
        case(
            "unknown runtime",
            "POST",
            "/api/v1/instances",
            json!({"slug": "fine", "runtime": "lxc"}),
            422,
            "invalid_runtime",
        ),
        case(
            "unknown owner",
            "POST",
            "/api/v1/instances",
            json!({"slug": "fine", "owner": "nobody"}),
            422,
            "unknown_user",
        ),
        case(
            "unknown license",
            "POST",
            "/api/v1/instances",
            json!({"slug": "fine", "license": "01900000-0000-7000-8000-000000000000"}),
            422,
            "unknown_license",
        ),
        case(
            "license not an id",
            "POST",
            "/api/v1/instances",
            json!({"slug": "fine", "license": "main"}),
            422,
            "invalid_field",
        ),
        case(
            "bad release name",
            "POST",
            "/api/v1/instances",
            json!({"slug": "fine", "release": "../../etc"}),
            422,
            "invalid_field",
        ),
        case(
            "body not an object",
            "POST",
            "/api/v1/instances",
            json!(["fine"]),
            422,
            "invalid_body",
        ),
        case(
            "short license key",
            "POST",
            "/api/v1/licenses",
            json!({"label": "x", "key": "ABCD-EFGH"}),
            422,
            "invalid_license_key",
        ),
        case(
            "license key with bad characters",
            "POST",
            "/api/v1/licenses",
            json!({"label": "x", "key": "ABCD-EFGH-JKLM-NPQR-STUV-WX$Z"}),
            422,
            "invalid_license_key",
        ),
        case(
            "license without label",
            "POST",
            "/api/v1/licenses",
            json!({"key": "ABCDEFGHJKLMNPQRSTUVWXYZ"}),
            422,
            "invalid_body",
        ),
        case(
            "blank label",
            "POST",
            "/api/v1/licenses",
            json!({"label": "  ", "key": "ABCDEFGHJKLMNPQRSTUVWXYZ"}),
            422,
            "invalid_field",
        ),
        case(
            "license for unknown owner",
            "POST",
            "/api/v1/licenses",
            json!({"label": "x", "key": "ABCDEFGHJKLMNPQRSTUVWXYZ", "owner": "nobody"}),
            422,
            "unknown_user",
        ),
        case(
            "bad role",
            "POST",
            "/api/v1/users",
            json!({"username": "carol", "role": "owner", "password": "carol-password"}),
            422,
            "invalid_role",
        ),
        case(
            "bad username",
            "POST",
            "/api/v1/users",
            json!({"username": "Carol!", "role": "gm", "password": "carol-password"}),
            422,
            "invalid_username",
        ),
        case(
            "short password",
            "POST",
            "/api/v1/users",
            json!({"username": "carol", "role": "gm", "password": "short"}),
            422,
            "weak_password",
        ),
        case(
            "duplicate username",
            "POST",
            "/api/v1/users",
            json!({"username": "alice", "role": "gm", "password": "another-password"}),
            409,
            "username_taken",
        ),
        case(
            "user with an unknown tier",
            "POST",
            "/api/v1/users",
            json!({"username": "carol", "role": "gm", "password": "carol-password", "tier": "gold"}),
            422,
            "unknown_tier",
        ),
        case(
            "tier of an unknown user",
            "PATCH",
            "/api/v1/users/nobody",
            json!({"tier": null}),
            422,
            "unknown_user",
        ),
        case(
            "tier field misspelt",
            "PATCH",
            "/api/v1/users/alice",
            json!({"teir": null}),
            422,
            "invalid_body",
        ),
        case(
            "session for an unknown world",
            "POST",
            "/api/v1/sessions",
            json!({"instance": "nowhere", "start": "2099-01-01T19:00:00Z", "duration_minutes": 60}),
            404,
            "not_found",
        ),
        case(
            "session with a start that is no time",
            "POST",
            "/api/v1/sessions",
            json!({"instance": "taken", "start": "friday evening", "duration_minutes": 60}),
            422,
            "invalid_field",
        ),
        case(
            "session with a negative duration",
            "POST",
            "/api/v1/sessions",
            json!({"instance": "taken", "start": "2099-01-01T19:00:00Z", "duration_minutes": -5}),
            422,
            "invalid_body",
        ),
        case(
            "cancel a session that is not an id",
            "DELETE",
            "/api/v1/sessions/tuesday",
            Value::Null,
            404,
            "not_found",
        ),
        case(
            "remove unknown license",
            "DELETE",
            "/api/v1/licenses/01900000-0000-7000-8000-000000000000",
            Value::Null,
            404,
            "not_found",
        ),
        case(
            "destroy unknown instance",
            "DELETE",
            "/api/v1/instances/nope",
            Value::Null,
            404,
            "not_found",
        ),
        case(
            "wrong password",
            "POST",
            "/api/v1/auth/login",
            json!({"username": "alice", "password": "wrong-password"}),
            401,
            "invalid_credentials",
        ),
        case(
            "unknown user login",
            "POST",
            "/api/v1/auth/login",
            json!({"username": "zed", "password": "whatever-it-is"}),
            401,
            "invalid_credentials",
        ),
        case(
            "token-only admin login",
            "POST",
            "/api/v1/auth/login",
            json!({"username": "admin", "password": ""}),
            401,
            "invalid_credentials",
        ),
        Case {
            content_type: None,
            ..case(
                "no content type",
                "POST",
                "/api/v1/instances",
                json!({"slug": "fine"}),
                415,
                "unsupported_media_type",
            )
        },
        Case {
            content_type: Some("text/plain"),
            ..case(
                "wrong content type",
                "POST",
                "/api/v1/instances",
                json!({"slug": "fine"}),
                415,
                "unsupported_media_type",
            )
        },
        Case {
            body: b"{\"slug\": ".to_vec(),
            ..case(
                "malformed JSON",
                "POST",
                "/api/v1/instances",
                Value::Null,
                400,
                "malformed_json",
            )
        },
        Case {
            body: format!(
                "{{\"slug\":\"fine\",\"release\":\"{}\"}}",
                "x".repeat(2 * 1024 * 1024)
            )
            .into_bytes(),
            ..case(
                "oversized body",
                "POST",
                "/api/v1/instances",
                Value::Null,
                413,
                "payload_too_large",
            )
        },
        Case {
            token: Tok::None,
            ..case(
                "missing token",
                "POST",
                "/api/v1/instances",
                json!({"slug": "fine"}),
                401,
                "unauthenticated",
            )
        },
        Case {
            token: Tok::Bad,
            ..case(
                "bad token",
                "POST",
                "/api/v1/instances",
                json!({"slug": "fine"}),
                401,
                "unauthenticated",
            )
        },
        Case {
            token: Tok::Bad,
            ..case(
                "bad token on a list",
                "GET",
                "/api/v1/instances",
                Value::Null,
                401,
                "unauthenticated",
            )
        },
        Case {
            token: Tok::None,
            ..case(
                "missing token on delete",
                "DELETE",
                "/api/v1/instances/taken",
                Value::Null,
                401,
                "unauthenticated",
            )
        },
        case(
            "bad query",
            "GET",
            "/api/v1/events?limit=lots",
            Value::Null,
            400,
            "invalid_query",
        ),
        case(
            "unknown endpoint",
            "GET",
            "/api/v1/nothing-here",
            Value::Null,
            404,
            "not_found",
        ),
        case(
            "wrong method",
            "PUT",
            "/api/v1/instances",
            json!({"slug": "fine"}),
            405,
            "method_not_allowed",
        ),
    ];
    for c in &mut cases {
        if c.method == "GET" || c.method == "DELETE" {
            c.body.clear();
            c.content_type = None;
        }
    }

    let before = server.dump().await;
    let mut failures = Vec::new();
    for c in &cases {
        let api = match c.token {
            Tok::Admin => server.api(Some(&server.admin_token)),
            Tok::None => server.api(None),
            Tok::Bad => server.api(Some("tvn_not-a-real-token")),
        };
        let answer = api
            .send(c.method, c.path, c.content_type, c.body.clone())
            .await;
        let msg = answer.1["error"]["message"].as_str().unwrap_or("");
        if answer.0 != c.status || code(&answer) != c.code || msg.is_empty() {
            failures.push(format!(
                "{}: want {} {}, got {} {}",
                c.what, c.status, c.code, answer.0, answer.1
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(server.dump().await, before, "bad input changed the store");

    // The CLI refuses a key on the command line and a missing key source.
    let out = server.cli(
        Some(&server.admin_token),
        &[
            "license",
            "add",
            "--label",
            "x",
            "--key",
            "ABCDEFGHJKLMNPQRSTUVWXYZ",
        ],
        None,
    );
    assert!(!out.status.success());
    let out = server.cli(
        Some(&server.admin_token),
        &["license", "add", "--label", "x"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--key-file"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(server.dump().await, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn login_attempts_are_rate_limited() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("alice", "gm", "alice-password").await;
    // A stranger guesses from 127.0.0.1; Alice signs in from 127.0.0.2.
    let from = |ip: &str| {
        server.api_with(
            None,
            reqwest::Client::builder()
                .local_address(ip.parse::<std::net::IpAddr>().ok())
                .build()
                .unwrap(),
        )
    };
    let stranger = from("127.0.0.1");
    let alice = from("127.0.0.2");
    async fn guess(api: &Api, username: &str, password: &str) -> Answer {
        let body = json!({"username": username, "password": password});
        api.post("/api/v1/auth/login", &body).await
    }
    for _ in 0..3 {
        let a = guess(&stranger, "alice", "guess-guess").await;
        assert_refused(&a, 401, "invalid_credentials");
    }
    // From the stranger's address, even the right password waits now,
    // and the wait is said.
    let a = guess(&stranger, "alice", "alice-password").await;
    assert_refused(&a, 429, "rate_limited");
    let message = a.1["error"]["message"].as_str().unwrap();
    assert!(message.contains("try again in"), "{message}");
    // Alice, from her own address, is not locked out.
    let a = guess(&alice, "alice", "alice-password").await;
    assert_eq!(a.0, 200, "{}", a.1);
    // Another account from the stranger's address has its own count.
    let a = guess(&stranger, "bob", "guess-guess").await;
    assert_refused(&a, 401, "invalid_credentials");

    // Each further failure doubles the wait (2 s, then 4 s).
    let retry_after = || async {
        let r = reqwest::Client::builder()
            .local_address("127.0.0.1".parse::<std::net::IpAddr>().ok())
            .build()
            .unwrap()
            .post(format!("{}/api/v1/auth/login", server.url))
            .json(&json!({"username": "alice", "password": "guess-guess"}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
        (status, after)
    };
    let (status, first) = retry_after().await;
    assert_eq!(status, 429);
    let first = first.expect("Retry-After");
    assert!((1..=2).contains(&first), "{first}");
    tokio::time::sleep(Duration::from_secs(first)).await;
    wait_until("the wait is over", || async {
        retry_after().await.0 == 401
    })
    .await;
    let (status, second) = retry_after().await;
    assert_eq!(status, 429);
    assert!(second.unwrap() >= 3, "{second:?}");
}
