//! The web dashboard in a real headless Chromium against the real binary
//! and the stand-in: sign in, create, start, watch and stop a world, open
//! it, schedule a session and find it in the calendar, download a backup,
//! the admins' licenses timeline, invitations into the onboarding wizard,
//! other people's worlds that do not exist, and every action without
//! JavaScript. Screenshots of the main pages are saved as artifacts.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;

use crate::support::{Api, Server, add_key, create_world, set_cookie, wait_for_state, wait_until};
use crate::web::Browser;

/// The dashboard's address on the bare domain (`localhost`).
fn site(server: &Server) -> String {
    server.url.replace("127.0.0.1", "localhost")
}

/// A server with a key and the game master alice (password
/// `alice-password-1`): itself, the dashboard's address, the admin's API.
async fn community() -> (Server, String, Api) {
    let server = Server::start();
    let base = site(&server);
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "main", "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF").await;
    admin.create_user("alice", "gm", "alice-password-1").await;
    (server, base, admin)
}

async fn sign_in(b: &Browser, base: &str, username: &str, password: &str) {
    b.goto(&format!("{base}/")).await;
    assert_eq!(b.path().await, "/auth/login");
    b.fill("#username", username).await;
    b.fill("#password", password).await;
    b.click("form.card button[type=submit]").await;
}

#[tokio::test]
async fn a_game_master_runs_a_world_from_the_browser() {
    let Some(b) = Browser::start(true, false).await else {
        return;
    };
    let (_server, base, admin) = community().await;

    // A wrong password says so and signs nobody in.
    sign_in(&b, &base, "alice", "not-her-password").await;
    assert_eq!(b.path().await, "/auth/login");
    assert_eq!(b.text(".flash.err").await, "Wrong username or password.");

    sign_in(&b, &base, "alice", "alice-password-1").await;
    assert_eq!(b.path().await, "/dashboard");
    assert!(b.text("main").await.contains("You have no world yet"));

    // Create a world: its admin key is shown once.
    b.click("a[href='/dashboard/new']").await;
    b.fill("#slug", "dragon").await;
    b.click("form.card button[type=submit]").await;
    assert_eq!(b.text("h1").await, "dragon is ready");
    let key = b.text("#admin-key").await;
    assert!(key.len() >= 16, "an admin key: {key:?}");
    b.screenshot("world-created").await;

    // Start it, and watch it become running without reloading.
    b.click("form[action='/dashboard/worlds/dragon/start'] button")
        .await;
    assert_eq!(b.path().await, "/dashboard/worlds/dragon");
    assert_eq!(b.text(".flash.ok").await, "dragon is starting.");
    b.wait_text("[data-field=state]", "dragon runs", |t| t == "running")
        .await;
    b.wait_text("#stop", "the Stop button shows", |t| t == "Stop")
        .await;
    b.assert_accessible().await;
    b.screenshot("world").await;

    // The page's address opens the world itself.
    let url = b
        .client
        .find(Locator::Css("#world-url"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(url.starts_with("http://dragon.localhost:"), "{url}");
    b.goto(&url).await;
    assert!(
        b.text("body").await.contains("Foundry VTT stand-in"),
        "the world answers through the proxy"
    );

    // The list shows it running, then Stop puts it to sleep.
    b.goto(&format!("{base}/dashboard")).await;
    assert_eq!(
        b.text("[data-world=dragon] [data-field=state]").await,
        "running"
    );
    b.assert_accessible().await;
    b.screenshot("worlds").await;
    b.goto(&format!("{base}/dashboard/worlds/dragon")).await;
    b.click("#stop").await;
    b.wait_text("[data-field=state]", "dragon sleeps", |t| t == "sleeping")
        .await;
    // It says why it sleeps, as it changes and in the list.
    b.wait_text("[data-field=reason]", "it says who stopped it", |t| {
        t == "stopped by alice"
    })
    .await;
    let api = admin.login("alice", "alice-password-1").await;
    wait_for_state(&api, "dragon", "stopped").await;
    b.goto(&format!("{base}/dashboard")).await;
    assert_eq!(
        b.text("[data-world=dragon] [data-field=reason]").await,
        "stopped by alice"
    );

    // Its log is there to read.
    b.goto(&format!("{base}/dashboard/worlds/dragon/logs"))
        .await;
    assert!(!b.text("#log").await.is_empty(), "the log has lines");
    // Following it fetches the tail again and again.
    b.client
        .execute("document.getElementById('log').textContent = '';", vec![])
        .await
        .unwrap();
    b.el("#follow").await.click().await.unwrap();
    b.wait_text("#log", "the followed log fills", |t| !t.is_empty())
        .await;

    // Signing out ends the session: the token no longer works.
    let cookie = b.session_cookie().await;
    b.goto(&format!("{base}/dashboard")).await;
    b.click(".signout button").await;
    assert_eq!(b.path().await, "/auth/login");
    let after = reqwest::Client::new()
        .get(format!("{base}/dashboard"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.url().path(), "/auth/login", "signed out for good");
    b.close().await;
}

#[tokio::test]
async fn sessions_calendar_backups_and_the_admins_board() {
    let Some(b) = Browser::start(true, false).await else {
        return;
    };
    let (server, base, admin) = community().await;
    let alice = admin.login("alice", "alice-password-1").await;
    let (status, body) = alice
        .post(
            "/api/v1/instances",
            &json!({"slug": "dragon", "release": "stub"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    alice
        .post("/api/v1/instances/dragon/start", &json!({}))
        .await;
    wait_for_state(&alice, "dragon", "running").await;

    sign_in(&b, &base, "alice", "alice-password-1").await;

    // Schedule a session in Paris time, the day after tomorrow at 19:00.
    let day = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::get("Europe/Paris").unwrap())
        .date()
        .checked_add(jiff::Span::new().days(2))
        .unwrap();
    b.goto(&format!("{base}/dashboard/sessions?tz=Europe/Paris"))
        .await;
    b.set("#date", &day.to_string()).await;
    b.set("#time", "19:00").await;
    b.fill("#zone", "Europe/Paris").await;
    b.fill("#duration", "180").await;
    b.click("form[action='/dashboard/sessions'] button").await;
    assert!(
        b.text(".flash.ok").await.contains("scheduled"),
        "{}",
        b.text("main").await
    );
    let entry = b.text(&format!("li.day[data-date='{day}'] .session")).await;
    assert!(
        entry.contains("19:00–22:00") && entry.contains("dragon") && entry.contains("main"),
        "{entry}"
    );
    b.assert_accessible().await;
    b.screenshot("sessions").await;

    // Another session, cancelled from the calendar.
    let later = day.checked_add(jiff::Span::new().days(1)).unwrap();
    b.set("#date", &later.to_string()).await;
    b.set("#time", "20:30").await;
    b.fill("#zone", "Europe/Paris").await;
    b.click("form[action='/dashboard/sessions'] button").await;
    let cancel = format!("li.day[data-date='{later}'] .session button");
    b.click(&cancel).await;
    assert_eq!(b.text(".flash.ok").await, "Session cancelled.");
    assert!(
        b.texts(&format!("li.day[data-date='{later}'] .session"))
            .await
            .is_empty(),
        "the cancelled session is gone"
    );
    let (_, sessions) = alice.get("/api/v1/sessions").await;
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");

    // Back up the world, then download the backup through its link.
    b.goto(&format!("{base}/dashboard/worlds/dragon")).await;
    b.click("#backup-now").await;
    assert!(b.text(".flash.ok").await.contains("being taken"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let href = loop {
        b.client.refresh().await.unwrap();
        if let Ok(link) = b.client.find(Locator::Css("a[download]")).await {
            break link.attr("href").await.unwrap().unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "the backup completes");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let got = reqwest::Client::new()
        .get(format!("{base}{href}"))
        .header("cookie", b.session_cookie().await)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert!(
        got.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"dragon-"),
    );
    let bytes = got.bytes().await.unwrap();
    assert_eq!(&bytes[..4], b"\x28\xb5\x2f\xfd", "a zstd archive");
    // Without the session, no download.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{base}{href}"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 303);
    // Restore it, after a page that says what that does.
    b.click("a[href$='/restore']").await;
    assert_eq!(b.text("h1").await, "Restore dragon?");
    b.assert_accessible().await;
    b.click("form[action$='/restore'] button").await;
    assert_eq!(b.path().await, "/dashboard/worlds/dragon");
    assert!(b.text(".flash.ok").await.starts_with("Restoring dragon"));
    b.goto(&format!("{base}/dashboard/backups")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !b.text("main").await.contains("restored into dragon") {
        assert!(std::time::Instant::now() < deadline, "the restore ends");
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.client.refresh().await.unwrap();
    }
    wait_for_state(&alice, "dragon", "running").await;
    b.screenshot("backups").await;

    // The backup taken while the world ran is marked live, to the second.
    let first = b.text("tr[data-backup] td[data-label=Taken]").await;
    assert_eq!(first.len(), "2026-12-02 09:15:03 UTC".len(), "{first}");
    assert!(
        b.texts("tr[data-backup] .badge")
            .await
            .iter()
            .any(|t| t == "live"),
        "{}",
        b.text("main").await
    );
    // Lock one; delete another after a page that says what that does.
    let rows = b.texts("tr[data-backup]").await.len();
    b.click("tr[data-backup] form[action$='/lock'] button")
        .await;
    assert!(b.text(".flash.ok").await.contains("is locked"));
    assert_eq!(b.texts("[data-field=locked]").await.len(), 1);
    b.click("tr[data-backup]:not(:has([data-field=locked])) a[href$='/delete']")
        .await;
    assert_eq!(b.text("h1").await, "Delete this backup of dragon?");
    b.click("form[action$='/delete'] button").await;
    assert!(b.text(".flash.ok").await.contains("is deleted"));
    assert_eq!(b.texts("tr[data-backup]").await.len(), rows - 1);

    // A game master has no admin pages.
    b.goto(&format!("{base}/admin")).await;
    assert_eq!(b.text("h1").await, "Not Found");

    // The first start printed a one-use invitation for the admin's own
    // account (the bootstrap admin has a token, not a password).
    b.click(".signout button").await;
    let printed = server.output();
    let invitation = printed
        .lines()
        .map(str::trim)
        .find(|l| l.contains("/auth/invite/"))
        .unwrap_or_else(|| panic!("an invitation address in:\n{printed}"))
        .replace("127.0.0.1", "localhost");
    b.goto(&invitation).await;
    assert!(b.text("main").await.contains("as an admin"));
    b.fill("#username", "root").await;
    b.fill("#password", "root-password-1").await;
    b.fill("#password_again", "root-password-1").await;
    b.click("form.card button[type=submit]").await;
    assert_eq!(b.path().await, "/dashboard/welcome");

    // An admin sees which world held which key on the timeline.
    b.click("nav a[href='/admin']").await;
    let titles = b.text_contents("#license-timeline .held title").await;
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with("dragon on main") && t.ends_with("now")),
        "{titles:?}"
    );
    assert!(b.text("main").await.contains("Reservations ahead"));
    assert!(
        b.texts("section[aria-labelledby=ahead-h] td")
            .await
            .iter()
            .any(|t| t == "dragon"),
        "the session's reservation is listed"
    );
    b.assert_accessible().await;
    b.screenshot("admin-licenses").await;

    // Keys from the web: add one pinned to alice, rename it and return it
    // to the pool, retire it.
    b.fill("#new-label", "spare").await;
    b.fill("#new-key", "GGGG-HHHH-JJJJ-KKKK-LLLL-MMMM").await;
    b.set("#new-owner", "alice").await;
    b.click("#add-key button[type=submit]").await;
    assert_eq!(
        b.text(".flash.ok").await,
        "The key spare (ending in MMMM) is added."
    );
    assert_eq!(
        b.text("tr[data-key=spare] td[data-label='Pinned to']")
            .await,
        "alice"
    );
    assert!(
        !b.text("main").await.contains("GGGG"),
        "the key is not shown"
    );
    b.el("tr[data-key=spare] summary")
        .await
        .click()
        .await
        .unwrap();
    b.fill("tr[data-key=spare] input[name=label]", "spare-2")
        .await;
    b.set("tr[data-key=spare] select[name=owner]", "").await;
    b.click("tr[data-key=spare] form.key-form button").await;
    assert_eq!(
        b.text(".flash.ok").await,
        "The key spare-2 is in the shared pool."
    );
    b.el("tr[data-key=spare-2] summary")
        .await
        .click()
        .await
        .unwrap();
    b.click("tr[data-key=spare-2] form[action$='/remove'] button")
        .await;
    assert!(b.text(".flash.ok").await.contains("retired"));
    let (_, keys) = admin.get("/api/v1/licenses").await;
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .all(|k| k["label"] != "spare-2"),
        "{keys}"
    );

    // An invitation made in the browser shows its address once.
    b.click("nav.sub a[href='/admin/invites']").await;
    b.fill("#uses", "2").await;
    b.fill("#days", "3").await;
    b.click("form[action='/admin/invites'] button").await;
    let address = b.text("#invite-url").await;
    assert!(address.contains("/auth/invite/"), "{address}");
    assert!(b.texts("td").await.iter().any(|t| t == "0 of 2"));
    b.assert_accessible().await;
    b.goto(&format!("{base}/admin/invites")).await;
    assert!(
        !b.text("main").await.contains(&address),
        "the address is not shown again"
    );
    b.click("form[action$='/revoke'] button").await;
    assert_eq!(b.text(".flash.ok").await, "Invitation withdrawn.");
    let gone = reqwest::get(address.replace("127.0.0.1", "localhost"))
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    // Usage: a bar of alice's hours this month.
    b.goto(&format!("{base}/admin/usage")).await;
    let month = jiff::Timestamp::now().strftime("%Y-%m").to_string();
    let bars = b.text_contents("#usage-chart title").await;
    assert!(
        bars.iter()
            .any(|t| t.starts_with(&format!("alice, {month}: "))),
        "{bars:?}"
    );
    b.screenshot("admin-usage").await;

    // The audit log, filtered: only what was done to instances, alice's
    // start among it.
    b.goto(&format!("{base}/admin/audit?action=instance")).await;
    let actions = b.texts("table.audit tbody td:nth-child(3)").await;
    assert!(
        !actions.is_empty() && actions.iter().all(|a| a.contains("instance")),
        "{actions:?}"
    );
    assert!(actions.iter().any(|a| a == "instance.start"), "{actions:?}");
    b.screenshot("admin-audit").await;

    // Releases: the stand-in's, with the world on it.
    b.goto(&format!("{base}/admin/releases")).await;
    let row = b.texts("tbody tr").await;
    assert!(
        row.iter()
            .any(|r| r.starts_with("stub") && r.contains("dragon")),
        "{row:?}"
    );

    b.goto(&format!("{base}/admin/users")).await;
    b.screenshot("admin-users").await;
    assert!(
        b.texts("td").await.iter().any(|t| t == "alice"),
        "the users page lists alice"
    );
    b.close().await;
}

#[tokio::test]
async fn an_invitation_leads_into_the_wizard_and_other_worlds_stay_hidden() {
    let Some(b) = Browser::start(true, true).await else {
        return;
    };
    let (_server, base, admin) = community().await;
    let alice = admin.login("alice", "alice-password-1").await;
    alice
        .post(
            "/api/v1/instances",
            &json!({"slug": "secret-lair", "release": "stub"}),
        )
        .await;
    let (status, invite) = admin.post("/api/v1/invites", &json!({"role": "gm"})).await;
    assert_eq!(status, 201, "{invite}");
    let url = invite["url"]
        .as_str()
        .unwrap()
        .replace("127.0.0.1", "localhost");

    // On a phone: accept the invitation, make a first world.
    b.goto(&url).await;
    assert!(b.text("main").await.contains("a game master"));
    b.screenshot("invitation").await;
    b.fill("#username", "bob").await;
    b.fill("#password", "bob-password-1").await;
    b.fill("#password_again", "bob-password-2").await;
    b.click("form.card button[type=submit]").await;
    assert_eq!(b.text(".flash.err").await, "The two passwords differ.");
    b.fill("#username", "bob").await;
    b.fill("#password", "bob-password-1").await;
    b.fill("#password_again", "bob-password-1").await;
    b.click("form.card button[type=submit]").await;
    assert_eq!(b.path().await, "/dashboard/welcome");
    assert_eq!(b.text("h1").await, "Welcome to Tavern");
    // The wizard can be left for later.
    let skip = b.el("#skip-wizard").await.attr("href").await.unwrap();
    assert_eq!(skip.as_deref(), Some("/dashboard"));
    b.assert_accessible().await;
    b.screenshot("welcome").await;
    b.fill("#slug", "bobs-keep").await;
    b.click("form.card button[type=submit]").await;
    assert_eq!(b.text("h1").await, "bobs-keep is ready");
    assert!(
        b.text(".steps [aria-current=step]")
            .await
            .contains("admin key")
    );

    // A taken name is refused with the reason, and nothing is made.
    b.goto(&format!("{base}/dashboard/new")).await;
    b.fill("#slug", "secret-lair").await;
    b.click("form.card button[type=submit]").await;
    assert_eq!(b.path().await, "/dashboard/new");
    assert!(
        b.text(".flash.err").await.contains("secret-lair"),
        "says why"
    );
    let kept = b.el("#slug").await.prop("value").await.unwrap();
    assert_eq!(kept.as_deref(), Some("secret-lair"), "the form keeps it");

    // Alice's world does not exist for Bob: 404, nothing about it.
    b.goto(&format!("{base}/dashboard/worlds/secret-lair"))
        .await;
    assert_eq!(b.text("h1").await, "Not Found");
    let cookie = b.session_cookie().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        "/dashboard/worlds/secret-lair",
        "/dashboard/worlds/secret-lair/logs",
        "/dashboard/worlds/secret-lair/logs.txt",
    ] {
        let r = http
            .get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let names: Vec<String> = b.texts("body").await;
    assert!(
        !names.concat().contains("alice"),
        "nothing of alice's shows"
    );
    // And a form posted to it changes nothing.
    b.goto(&format!("{base}/dashboard")).await;
    let csrf: String = b
        .client
        .execute(
            "return document.querySelector('input[name=csrf]').value",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let r = http
        .post(format!("{base}/dashboard/worlds/secret-lair/start"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (_, lair) = alice.get("/api/v1/instances/secret-lair").await;
    assert_eq!(lair["desired_state"], "stopped");
    // A name that cannot be an address (a line break) is not found, and
    // the answer still goes somewhere.
    let r = http
        .post(format!("{base}/dashboard/worlds/a%0Ab/start"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/dashboard");
    // A form without the page's token is refused.
    let r = http
        .post(format!("{base}/dashboard/worlds/bobs-keep/start"))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}", "0".repeat(32)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    b.close().await;
}

#[tokio::test]
async fn every_action_works_without_javascript() {
    let Some(b) = Browser::start(false, false).await else {
        return;
    };
    let (_server, base, _admin) = community().await;
    sign_in(&b, &base, "alice", "alice-password-1").await;
    b.goto(&format!("{base}/dashboard/new")).await;
    b.fill("#slug", "plain").await;
    b.click("form.card button[type=submit]").await;
    b.click("form[action='/dashboard/worlds/plain/start'] button")
        .await;
    // No script: the state changes only when the page is loaded again.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        b.client.refresh().await.unwrap();
        if b.text("[data-field=state]").await == "running" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "plain runs");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.fill("#idle", "45").await;
    b.click("form[action='/dashboard/worlds/plain/settings'] button")
        .await;
    assert_eq!(b.text(".flash.ok").await, "Settings saved.");
    assert_eq!(
        b.client
            .find(Locator::Css("#idle"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("45")
    );
    b.click("#stop").await;
    // Destroying asks for the name first.
    b.fill("#confirm", "wrong").await;
    b.click("form[action='/dashboard/worlds/plain/destroy'] button")
        .await;
    assert!(b.text(".flash.err").await.contains("type its name"));
    b.fill("#confirm", "plain").await;
    b.click("form[action='/dashboard/worlds/plain/destroy'] button")
        .await;
    assert_eq!(b.path().await, "/dashboard");
    assert!(b.text(".flash.ok").await.contains("being destroyed"));
    b.close().await;
}

#[tokio::test]
async fn sign_in_forms_are_rate_limited_and_need_their_token() {
    let server = Server::start();
    let base = site(&server);
    let admin = server.api(Some(&server.admin_token));
    admin.create_user("alice", "gm", "alice-password-1").await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(format!("{base}/auth/login")).send().await.unwrap();
    let pre = set_cookie(&page, "tavern_pre").expect("a sign-in token cookie");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("name=\"csrf\" value=\"{pre}\"")),
        "{html}"
    );
    let post = |csrf: String, cookie: Option<String>, password: &str| {
        let mut r = http
            .post(format!("{base}/auth/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&username=alice&password={password}"));
        if let Some(c) = cookie {
            r = r.header("cookie", format!("tavern_pre={c}"));
        }
        r.send()
    };

    // Without the token, or with another, nothing is checked: 403.
    let r = post(pre.clone(), None, "alice-password-1").await.unwrap();
    assert_eq!(r.status(), 403);
    let r = post("f".repeat(32), Some(pre.clone()), "alice-password-1")
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(set_cookie(&r, "tavern_session"), None);

    // Three wrong passwords, then even the right one waits (from this
    // address).
    for _ in 0..3 {
        let r = post(pre.clone(), Some(pre.clone()), "wrong-password")
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert!(set_cookie(&r, "tavern_flash").unwrap().contains("Wrong"));
    }
    let r = post(pre.clone(), Some(pre.clone()), "alice-password-1")
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        set_cookie(&r, "tavern_flash")
            .unwrap()
            .contains("Too%20many")
            || set_cookie(&r, "tavern_flash").unwrap().contains("Too+many"),
        "{:?}",
        set_cookie(&r, "tavern_flash")
    );
    assert_eq!(set_cookie(&r, "tavern_session"), None, "not signed in");
    // The answers never name the password.
    assert!(!server.output().contains("alice-password-1"));
}

/// Every page of the dashboard, and a world's standby and 404 pages, on a
/// phone (390 px) and a desktop: nothing makes the page scroll sideways
/// (wide charts scroll in their own box), and each is photographed
/// (`phone-NAME`, `desktop-NAME`).
#[tokio::test(flavor = "multi_thread")]
async fn every_page_fits_a_phone_and_a_desktop() {
    let (server, base, admin) = community().await;
    admin
        .create_user("warden", "admin", "warden-password-1")
        .await;
    let alice = admin.login("alice", "alice-password-1").await;
    create_world(&alice, &json!({"slug": "dragon", "release": "stub"})).await;
    create_world(&alice, &json!({"slug": "sleepy", "release": "stub"})).await;
    alice
        .post("/api/v1/instances/dragon/start", &json!({}))
        .await;
    wait_for_state(&alice, "dragon", "running").await;
    let (s, backup) = alice
        .post("/api/v1/instances/dragon/backups", &json!({}))
        .await;
    assert_eq!(s, 202, "{backup}");
    let id = backup["id"].as_str().unwrap().to_owned();
    wait_until("the backup completes", || async {
        alice.get(&format!("/api/v1/backups/{id}")).await.1["status"] == "complete"
    })
    .await;
    let held = crate::pages::hold_import(&base, alice.token(), "dragon", "surveyed").await;
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    let pages = [
        (
            "import",
            format!("{base}/dashboard/import?world=dragon"),
            true,
        ),
        ("import-survey", format!("{base}{held}"), true),
        ("sign-in", format!("{base}/auth/login"), false),
        ("worlds", format!("{base}/dashboard"), true),
        ("world", format!("{base}/dashboard/worlds/dragon"), true),
        ("logs", format!("{base}/dashboard/worlds/dragon/logs"), true),
        ("new-world", format!("{base}/dashboard/new"), true),
        ("welcome", format!("{base}/dashboard/welcome"), true),
        ("sessions", format!("{base}/dashboard/sessions"), true),
        ("backups", format!("{base}/dashboard/backups"), true),
        (
            "restore",
            format!("{base}/dashboard/backups/{id}/restore"),
            true,
        ),
        (
            "delete-backup",
            format!("{base}/dashboard/backups/{id}/delete"),
            true,
        ),
        ("admin-licenses", format!("{base}/admin"), true),
        ("admin-users", format!("{base}/admin/users"), true),
        ("admin-invites", format!("{base}/admin/invites"), true),
        ("admin-usage", format!("{base}/admin/usage"), true),
        ("admin-audit", format!("{base}/admin/audit"), true),
        ("admin-releases", format!("{base}/admin/releases"), true),
        ("admin-packages", format!("{base}/admin/packages"), true),
        ("standby", format!("http://sleepy.localhost:{port}/"), false),
        (
            "not-found",
            format!("http://nowhere.localhost:{port}/"),
            false,
        ),
    ];
    for (size, phone) in [("phone", true), ("desktop", false)] {
        let Some(b) = Browser::start(true, phone).await else {
            return;
        };
        let mut wide = Vec::new();
        for (name, url, signed_in) in &pages {
            if *signed_in && b.client.get_named_cookie("tavern_session").await.is_err() {
                sign_in(&b, &base, "warden", "warden-password-1").await;
            }
            b.goto(url).await;
            b.el("main").await;
            let (scroll, client) = {
                let v = b
                    .client
                    .execute(
                        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]",
                        vec![],
                    )
                    .await
                    .unwrap();
                (v[0].as_i64().unwrap(), v[1].as_i64().unwrap())
            };
            if scroll > client {
                wide.push(format!("{name}: {scroll} px wide in {client}"));
            }
            b.screenshot(&format!("{size}-{name}")).await;
        }
        assert!(
            wide.is_empty(),
            "pages that scroll sideways on a {size}: {wide:?}"
        );
        b.close().await;
    }
}
