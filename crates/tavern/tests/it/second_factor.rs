//! A password account's second factor through the real binary: set up
//! through the API with the secret an app would scan, then asked for at
//! every password sign-in (API, CLI, dashboard), never accepted twice,
//! rate limited as passwords are, recovery codes once each, removed by
//! its owner with a code or by an admin, recorded in the audit log with
//! the method; and required of admins by `[auth]`.

use serde_json::{Value, json};
use tavern_core::totp;

use crate::support::*;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The app's code `steps` steps from now.
fn code(secret: &[u8], steps: u64) -> String {
    totp::code_at(secret, now() + steps * totp::STEP_SECONDS, totp::DIGITS)
}

/// Sets up and confirms a second factor for the holder of `api`: its
/// secret.
async fn turn_on(api: &Api) -> Vec<u8> {
    let (_, e) = api.post("/api/v1/auth/second-factor", &json!({})).await;
    let secret = totp::secret_from_text(e["secret"].as_str().unwrap()).unwrap();
    let (s, b) = api
        .post(
            "/api/v1/auth/second-factor/confirm",
            &json!({"code": code(&secret, 0)}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    secret
}

async fn sign_in(anon: &Api, username: &str, password: &str, code: Option<&str>) -> Answer {
    let mut body = json!({"username": username, "password": password});
    if let Some(c) = code {
        body["code"] = json!(c);
    }
    anon.post("/api/v1/auth/login", &body).await
}

pub(crate) async fn logins_of(admin: &Api, username: &str) -> Vec<String> {
    let (_, events) = admin.get("/api/v1/events?limit=500").await;
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.login" && e["actor"] == username)
        .map(|e| e["detail"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_factor_is_asked_for_at_every_password_sign_in_and_each_code_works_once() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    let anon = server.api(None);
    admin.create_user("ann", "gm", "ann-password").await;
    admin.create_user("bob", "gm", "bob-password").await;
    let ann = anon.login("ann", "ann-password").await;
    let bob = anon.login("bob", "bob-password").await;

    let (s, f) = ann.get("/api/v1/auth/second-factor").await;
    assert_eq!(s, 200, "{f}");
    assert_eq!(
        f,
        json!({"enabled": false, "recovery_codes_left": 0, "required": false, "has_password": true})
    );

    // Set up: the secret an app scans, then its first code.
    let (s, e) = ann.post("/api/v1/auth/second-factor", &json!({})).await;
    assert_eq!(s, 201, "{e}");
    let url = e["otpauth_url"].as_str().unwrap();
    assert!(
        url.starts_with("otpauth://totp/Tavern:ann%40localhost?"),
        "{url}"
    );
    let secret = totp::secret_from_text(e["secret"].as_str().unwrap()).unwrap();
    assert!(url.contains(e["secret"].as_str().unwrap()), "{url}");
    // Not yet on: the password alone still signs in.
    assert_eq!(sign_in(&anon, "ann", "ann-password", None).await.0, 200);
    // Codes counted from one moment, so that the code that confirms is
    // the same code later, whenever the 30-second step turns.
    let set_up_at = now();
    let at = |steps: u64| {
        totp::code_at(
            &secret,
            set_up_at + steps * totp::STEP_SECONDS,
            totp::DIGITS,
        )
    };
    let wrong = format!(
        "{:06}",
        (at(0).parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    let a = ann
        .post(
            "/api/v1/auth/second-factor/confirm",
            &json!({"code": wrong}),
        )
        .await;
    assert_refused(&a, 401, "wrong_code");
    let (s, codes) = ann
        .post(
            "/api/v1/auth/second-factor/confirm",
            &json!({"code": at(0)}),
        )
        .await;
    assert_eq!(s, 200, "{codes}");
    let recovery: Vec<String> = codes["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    let (_, f) = ann.get("/api/v1/auth/second-factor").await;
    assert_eq!(
        (f["enabled"].as_bool(), f["recovery_codes_left"].as_u64()),
        (Some(true), Some(10))
    );
    // Once on, it cannot be set up over.
    assert_refused(
        &ann.post("/api/v1/auth/second-factor", &json!({})).await,
        409,
        "second_factor_exists",
    );
    // Tokens made before still work: bearer tokens are not asked for codes.
    assert_eq!(ann.get("/api/v1/auth/whoami").await.0, 200);

    // The password alone no longer signs in; a wrong code neither; the
    // code that confirmed (its step is used) neither. (Sign-ins from one
    // address are limited to 20 a minute: this test stays below.)
    assert_refused(
        &sign_in(&anon, "ann", "ann-password", None).await,
        401,
        "second_factor_required",
    );
    assert_refused(
        &sign_in(&anon, "ann", "ann-password", Some(&wrong)).await,
        401,
        "wrong_code",
    );
    assert_refused(
        &sign_in(&anon, "ann", "ann-password", Some(&at(0))).await,
        401,
        "wrong_code",
    );
    // The next step's code (the app's clock may run ahead) signs in, once.
    let next = at(1);
    let (s, b) = sign_in(&anon, "ann", "ann-password", Some(&next)).await;
    assert_eq!(s, 200, "{b}");
    assert_refused(
        &sign_in(&anon, "ann", "ann-password", Some(&next)).await,
        401,
        "wrong_code",
    );
    // A wrong password with a right code is a wrong password.
    assert_refused(
        &sign_in(&anon, "ann", "not-her-password", Some(&code(&secret, 2))).await,
        401,
        "invalid_credentials",
    );

    // A recovery code signs in once, however it is typed.
    let typed = recovery[0].to_uppercase().replace('-', " ");
    assert_eq!(
        sign_in(&anon, "ann", "ann-password", Some(&typed)).await.0,
        200
    );
    assert_refused(
        &sign_in(&anon, "ann", "ann-password", Some(&recovery[0])).await,
        401,
        "wrong_code",
    );

    // The CLI asks for the code (here on standard input, after the
    // password) and stores the token.
    let home = tempfile::tempdir().unwrap();
    let out = server.cli_in(
        home.path(),
        None,
        &[
            "login",
            "--server",
            &server.url,
            "--username",
            "ann",
            "--password-stdin",
        ],
        Some(&format!("ann-password\n{}\n", recovery[1])),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Signed in as ann"),
        "{}",
        text(&out.stdout)
    );

    // New recovery codes need a current code (or a recovery code); the
    // old ones stop working.
    assert_refused(
        &ann.post(
            "/api/v1/auth/second-factor/recovery-codes",
            &json!({"code": wrong}),
        )
        .await,
        401,
        "wrong_code",
    );
    let (s, fresh) = ann
        .post(
            "/api/v1/auth/second-factor/recovery-codes",
            &json!({"code": recovery[2]}),
        )
        .await;
    assert_eq!(s, 200, "{fresh}");
    let fresh = fresh["recovery_codes"][0].as_str().unwrap().to_owned();
    assert_refused(
        &sign_in(&anon, "ann", "ann-password", Some(&recovery[3])).await,
        401,
        "wrong_code",
    );
    assert_eq!(
        sign_in(&anon, "ann", "ann-password", Some(&fresh)).await.0,
        200
    );

    // Every sign-in is in the audit log with how it was made; no code is.
    let methods = logins_of(&admin, "ann").await;
    for m in [
        "password",
        "password and totp",
        "password and recovery code",
    ] {
        assert!(methods.iter().any(|d| d == m), "no {m:?} in {methods:?}");
    }
    let (_, events) = admin.get("/api/v1/events?limit=500").await;
    let log = events.to_string();
    assert!(log.contains("user.totp_on"), "{log}");
    for c in &recovery {
        assert!(!log.contains(c.as_str()), "a recovery code in the log");
    }

    // Wrong codes count as wrong passwords: after three, even a right one
    // waits.
    for _ in 0..3 {
        assert_refused(
            &sign_in(&anon, "ann", "ann-password", Some(&wrong)).await,
            401,
            "wrong_code",
        );
    }
    let (s, b) = sign_in(&anon, "ann", "ann-password", Some(&recovery[4])).await;
    assert_eq!(s, 429, "{b}");

    // Another game master cannot remove it; an admin can.
    assert_refused(
        &bob.delete("/api/v1/users/ann/second-factor").await,
        403,
        "forbidden",
    );
    assert_refused(
        &bob.post(
            "/api/v1/auth/second-factor/remove",
            &json!({"code": recovery[3]}),
        )
        .await,
        404,
        "not_found",
    );
    let (s, b) = admin.delete("/api/v1/users/ann/second-factor").await;
    assert_eq!(s, 204, "{b}");
    assert_refused(
        &admin.delete("/api/v1/users/ann/second-factor").await,
        404,
        "not_found",
    );
    let (_, f): (u16, Value) = ann.get("/api/v1/auth/second-factor").await;
    assert_eq!(f["enabled"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_asks_for_the_code_and_admins_are_made_to_set_one_up() {
    let server = Server::start_with_env(&[], &[("TAVERN_AUTH_REQUIRE_TOTP_FOR_ADMINS", "true")]);
    let admin = server.api(Some(&server.admin_token));
    let anon = server.api(None);
    admin.create_user("root", "admin", "root-password").await;
    let root = anon.login("root", "root-password").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let pre = "0123456789abcdef0123456789abcdef";

    // Signed in with the password alone, the admin sees only where to set
    // one up.
    let resp = http
        .get(format!("{}/dashboard", server.url))
        .header("cookie", format!("tavern_session={}", root.token()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/account");
    let page = http
        .get(format!("{}/account", server.url))
        .header("cookie", format!("tavern_session={}", root.token()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("requires admins to use a second factor"),
        "{page}"
    );
    let (_, f) = root.get("/api/v1/auth/second-factor").await;
    assert_eq!(f["required"], true);

    // Set up (through the API here), then the dashboard's sign-in asks for
    // the code on a second page that holds a ticket, not the password.
    let secret = turn_on(&root).await;
    let resp = http
        .get(format!("{}/dashboard", server.url))
        .header("cookie", format!("tavern_session={}", root.token()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let form = |body: String| {
        http.post(format!("{}/auth/login", server.url))
            .header("cookie", format!("tavern_pre={pre}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    };
    let resp = form(format!(
        "csrf={pre}&username=root&password=root-password&next=/admin"
    ))
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(set_cookie(&resp, "tavern_session").is_none());
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("authenticator app") && !page.contains("root-password"),
        "{page}"
    );
    let ticket = page
        .split("name=\"ticket\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let post_code = |code: String| {
        http.post(format!("{}/auth/login/code", server.url))
            .header("cookie", format!("tavern_pre={pre}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "csrf={pre}&ticket={ticket}&code={code}&next=/admin"
            ))
            .send()
    };
    let resp = post_code("000000".into()).await.unwrap();
    assert!(set_cookie(&resp, "tavern_session").is_none());
    assert!(resp.text().await.unwrap().contains("Wrong code"));
    let resp = post_code(code(&secret, 1)).await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/admin");
    let token = set_cookie(&resp, "tavern_session").expect("a session");
    let resp = http
        .get(format!("{}/admin", server.url))
        .header("cookie", format!("tavern_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // A forged ticket is refused, and back to the password.
    let resp = http
        .post(format!("{}/auth/login/code", server.url))
        .header("cookie", format!("tavern_pre={pre}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={pre}&ticket=forged&code={}",
            code(&secret, 1)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/auth/login")
    );
    assert!(set_cookie(&resp, "tavern_session").is_none());
    // A game master is not asked to set one up.
    admin.create_user("gail", "gm", "gail-password").await;
    let gail = anon.login("gail", "gail-password").await;
    let resp = http
        .get(format!("{}/dashboard", server.url))
        .header("cookie", format!("tavern_session={}", gail.token()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worlds_standby_page_sends_a_second_factor_account_to_the_dashboard_and_back() {
    use crate::proxy::{client, world_url};

    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "k1", &key_for("factorkeyone")).await;
    admin.create_user("alice", "gm", "alice-password-1").await;
    let alice = server.api(None).login("alice", "alice-password-1").await;
    let secret = turn_on(&alice).await;
    let (s, b) = admin
        .post(
            "/api/v1/instances",
            &json!({"slug": "delta", "owner": "alice", "release": "stub"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let http = client(&server, &["delta.localhost", "localhost"]);
    let page_url = world_url(&server, "delta.localhost", "/");
    wait_until("delta has a standby page", || async {
        http.get(&page_url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 503)
    })
    .await;

    // The right password on the world's page: on to the dashboard for the
    // code, with a ticket (not the password), signed in nowhere yet.
    let resp = http
        .post(world_url(&server, "delta.localhost", "/_tavern/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=alice&password=alice-password-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert!(set_cookie(&resp, "tavern_session").is_none());
    let to = resp.headers()["location"].to_str().unwrap().to_owned();
    let dashboard = world_url(&server, "localhost", "/");
    assert!(
        to.starts_with(&format!("{dashboard}auth/login/code?ticket=")),
        "{to}"
    );
    assert!(
        to.ends_with("&next=%2Fauth%2Fhandoff%3Fworld%3Ddelta"),
        "{to}"
    );
    assert!(!to.contains("alice-password-1"), "{to}");

    let resp = http.get(&to).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let pre = set_cookie(&resp, "tavern_pre").expect("the form's token");
    let page = resp.text().await.unwrap();
    let ticket = page
        .split("name=\"ticket\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let resp = http
        .post(format!("{dashboard}auth/login/code"))
        .header("cookie", format!("tavern_pre={pre}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={pre}&ticket={ticket}&code={}&next=%2Fauth%2Fhandoff%3Fworld%3Ddelta",
            code(&secret, 1)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/auth/handoff?world=delta");
    let session = set_cookie(&resp, "tavern_session").expect("signed in on the dashboard");

    // The dashboard hands the sign-in over to the world's address.
    let resp = http
        .get(format!("{dashboard}auth/handoff?world=delta"))
        .header("cookie", format!("tavern_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let handoff = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        handoff.starts_with(&world_url(
            &server,
            "delta.localhost",
            "/_tavern/handoff?code="
        )),
        "{handoff}"
    );
    let resp = http.get(&handoff).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let there = set_cookie(&resp, "tavern_session").expect("signed in on the world's address");
    // The owner's visit wakes the world.
    let page = http
        .get(&page_url)
        .header("cookie", format!("tavern_session={there}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(">starting<") && page.contains("Starting for"),
        "{page}"
    );
    wait_for_state(&admin, "delta", "running").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_game_master_sets_up_a_second_factor_in_the_browser_and_signs_in_with_it() {
    let Some(b) = crate::web::Browser::start(true, false).await else {
        return;
    };
    let server = Server::start();
    let base = server.url.replace("127.0.0.1", "localhost");
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("gina", "gm", "gina-password-1").await;
    let sign_in = || async {
        b.goto(&format!("{base}/auth/login")).await;
        b.fill("#username", "gina").await;
        b.fill("#password", "gina-password-1").await;
        b.click("form.card button[type=submit]").await;
    };
    sign_in().await;
    assert_eq!(b.path().await, "/dashboard");

    // Her name at the top leads to her account.
    b.click("header a[href='/account']").await;
    assert!(
        b.text("main").await.contains("Off."),
        "{}",
        b.text("main").await
    );
    b.assert_accessible().await;
    b.click("form[action='/account/second-factor'] button")
        .await;
    // A QR code, and the key to type in instead.
    b.el("figure.qr svg").await;
    let key = b.text("#secret").await;
    let secret = totp::secret_from_text(&key).expect("the key in base 32");
    b.assert_accessible().await;
    b.screenshot("account-second-factor").await;
    b.fill("#code", "000000").await;
    b.click("form[action='/account/second-factor/confirm'] button")
        .await;
    assert!(
        b.text(".flash").await.contains("Wrong code"),
        "{}",
        b.text("main").await
    );
    // Started again: a new key, and its code turns it on.
    b.click("form[action='/account/second-factor'] button")
        .await;
    let secret = totp::secret_from_text(&b.text("#secret").await).unwrap_or(secret);
    b.fill("#code", &code(&secret, 0)).await;
    b.click("form[action='/account/second-factor/confirm'] button")
        .await;
    let codes = b.texts("ul.codes code").await;
    assert_eq!(codes.len(), 10, "{codes:?}");
    b.click("main a[href='/account']").await;
    assert!(
        b.text("main").await.contains("10 recovery codes left"),
        "{}",
        b.text("main").await
    );

    // Signed out and in again: the password, then the code.
    b.click("form.signout button").await;
    sign_in().await;
    assert_eq!(b.path().await, "/auth/login");
    b.assert_accessible().await;
    b.fill("#code", &code(&secret, 1)).await;
    b.click("form.card button[type=submit]").await;
    assert_eq!(b.path().await, "/dashboard");
    b.close().await;
}
