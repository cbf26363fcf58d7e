//! A world's own address in a real headless Chromium: the standby page
//! looks like the dashboard and tells a player what to do; its owner signs
//! in there (with the default domain, `localhost`, whose cookie browsers
//! keep to one host, and with a named domain, mapped to loopback, whose
//! cookie every world shares) and the visit wakes the world; a sign-in on
//! the dashboard carries over; the owner signs in with Discord from the
//! world's page; an address without a world says so; and a world's
//! backups on its address, for its owner and admins only.

use serde_json::json;
use tavern_sso::testing::discord::{Account, StandIn};

use crate::support::{Api, Server, add_key, create_world, wait_for_state, wait_until};
use crate::web::Browser;

/// A server (with `env`) where alice (password `alice-password-1`) owns
/// the sleeping world `delta`; its admin's API.
async fn delta(env: &[(&str, &str)]) -> (Server, Api) {
    let server = Server::start_with_env(&[], env);
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "main", "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF").await;
    admin.create_user("alice", "gm", "alice-password-1").await;
    create_world(
        &admin,
        &json!({"slug": "delta", "owner": "alice", "release": "stub"}),
    )
    .await;
    // The proxy knows the world once the reconciler has looked.
    let addr: std::net::SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let domain = env
        .iter()
        .find(|(k, _)| *k == "TAVERN_SERVER_DOMAIN")
        .map_or("localhost", |(_, v)| *v);
    let host = format!("delta.{domain}");
    let http = reqwest::Client::builder()
        .resolve(&host, addr)
        .build()
        .unwrap();
    let page = at(&server, &host);
    wait_until("delta has a standby page", || async {
        http.get(&page)
            .send()
            .await
            .is_ok_and(|r| r.status() == 503)
    })
    .await;
    (server, admin)
}

/// `http://HOST:PORT` for the server's port.
fn at(server: &Server, host: &str) -> String {
    let port = server.url.rsplit(':').next().unwrap();
    format!("http://{host}:{port}")
}

async fn sign_in_on_dashboard(b: &Browser, site: &str) {
    b.goto(&format!("{site}/auth/login")).await;
    b.fill("#username", "alice").await;
    b.fill("#password", "alice-password-1").await;
    b.click("form.card button[type=submit]").await;
    assert_eq!(b.path().await, "/dashboard", "signed in on the dashboard");
}

/// The stand-in answers at the world's address: the page went there by
/// itself once the world ran.
async fn the_world_opens(b: &Browser) {
    b.wait_body("Foundry VTT stand-in").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_localhost_the_owner_signs_in_on_the_worlds_address_and_it_wakes() {
    let Some(b) = Browser::start(true, false).await else {
        return;
    };
    let (server, admin) = delta(&[]).await;
    let world = at(&server, "delta.localhost");

    // A visitor sees the dashboard's look, who can wake it, and what a
    // player does.
    b.goto(&format!("{world}/")).await;
    assert_eq!(b.text("h1").await, "delta");
    assert_eq!(b.text("[data-field=state]").await, "sleeping");
    assert_eq!(
        b.style("header.top", "backgroundColor").await,
        "rgb(29, 27, 25)",
        "the dashboard's stylesheet applies"
    );
    let main = b.text("main").await;
    assert!(main.contains("Ask your game master to start it"), "{main}");
    assert!(main.contains("Its game master"), "{main}");
    assert!(!main.contains("Sign in to start your world"), "{main}");
    let home = b.el("a.brand").await.attr("href").await.unwrap().unwrap();
    assert_eq!(home, format!("{}/dashboard", at(&server, "localhost")));
    b.assert_accessible().await;
    b.screenshot("standby").await;

    // A wrong password says so.
    b.fill("#username", "alice").await;
    b.fill("#password", "not-her-password").await;
    b.click("form.card button[type=submit]").await;
    assert_eq!(b.text(".flash.err").await, "Wrong username or password.");

    // Her sign-in takes (the browser keeps the cookie for this address)
    // and her visit wakes the world, which the page follows.
    b.fill("#username", "alice").await;
    b.fill("#password", "alice-password-1").await;
    b.click("form.card button[type=submit]").await;
    assert!(
        b.client.get_named_cookie("tavern_session").await.is_ok(),
        "Chromium kept the session cookie on delta.localhost"
    );
    let state = b.text("[data-field=state]").await;
    assert_eq!(state, "starting", "{}", b.text("main").await);
    assert!(b.texts(".flash.err").await.is_empty(), "no complaint");
    b.screenshot("standby-starting").await;
    the_world_opens(&b).await;
    wait_for_state(&admin, "delta", "running").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_localhost_the_dashboards_sign_in_carries_over_to_the_world() {
    let Some(b) = Browser::start(true, false).await else {
        return;
    };
    let (server, admin) = delta(&[]).await;
    sign_in_on_dashboard(&b, &at(&server, "localhost")).await;

    // A made-up link signs nobody in, and says so.
    let world = at(&server, "delta.localhost");
    b.goto(&format!("{world}/_tavern/handoff?code=not-a-code"))
        .await;
    assert!(
        b.text(".flash.err").await.contains("expired"),
        "{}",
        b.text("main").await
    );
    assert_eq!(b.text("[data-field=state]").await, "sleeping");

    // Chromium does not send the dashboard's cookie to delta.localhost:
    // the page offers to carry the sign-in over, and that wakes it.
    b.goto(&format!("{world}/")).await;
    assert_eq!(b.text("[data-field=state]").await, "sleeping");
    b.click("#handoff").await;
    assert_eq!(b.text("[data-field=state]").await, "starting");
    the_world_opens(&b).await;
    wait_for_state(&admin, "delta", "running").await;

    // Asleep again and signed out there, the dashboard's own button opens
    // it signed in, which wakes it.
    let (s, _) = admin.post("/api/v1/instances/delta/stop", &json!({})).await;
    assert_eq!(s, 202);
    wait_for_state(&admin, "delta", "stopped").await;
    b.client.delete_cookie("tavern_session").await.unwrap();
    b.goto(&format!(
        "{}/dashboard/worlds/delta",
        at(&server, "localhost")
    ))
    .await;
    b.click("#open-world").await;
    assert_eq!(b.text("[data-field=state]").await, "starting");
    the_world_opens(&b).await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_named_domain_one_sign_in_serves_the_dashboard_and_every_world() {
    let Some(b) = Browser::start_with(
        true,
        false,
        &["--host-resolver-rules=MAP games.test 127.0.0.1, MAP *.games.test 127.0.0.1"],
    )
    .await
    else {
        return;
    };
    let (server, admin) = delta(&[("TAVERN_SERVER_DOMAIN", "games.test")]).await;
    sign_in_on_dashboard(&b, &at(&server, "games.test")).await;

    // The cookie is the parent domain's: the world's address knows her,
    // and her visit wakes it straight away.
    b.goto(&format!("{}/", at(&server, "delta.games.test")))
        .await;
    let main = b.text("main").await;
    assert!(!main.contains("Sign in"), "already signed in: {main}");
    assert_eq!(b.text("[data-field=state]").await, "starting", "{main}");
    the_world_opens(&b).await;
    wait_for_state(&admin, "delta", "running").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_address_without_a_world_says_so_and_leads_to_the_dashboard() {
    let Some(b) = Browser::start(true, true).await else {
        return;
    };
    let (server, _admin) = delta(&[]).await;
    b.goto(&format!("{}/", at(&server, "nowhere.localhost")))
        .await;
    assert_eq!(b.text("h1").await, "No world here");
    let home = b.el("main a").await.attr("href").await.unwrap().unwrap();
    assert_eq!(home, format!("{}/dashboard", at(&server, "localhost")));
    b.screenshot("not-found-phone").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worlds_backups_are_on_its_address_for_its_owner_and_admins_only() {
    let (server, admin) = delta(&[]).await;
    add_key(&admin, "second", "BBBB-BBBB-CCCC-DDDD-EEEE-FFFF").await;
    admin.create_user("bob", "gm", "bob-password-1").await;
    let alice = server.api(None).login("alice", "alice-password-1").await;
    let bob = server.api(None).login("bob", "bob-password-1").await;
    create_world(&alice, &json!({"slug": "echo", "release": "stub"})).await;
    let mut ids = Vec::new();
    for slug in ["delta", "echo"] {
        alice
            .post(&format!("/api/v1/instances/{slug}/start"), &json!({}))
            .await;
        wait_for_state(&alice, slug, "running").await;
        let b = crate::backups::backup_now(&alice, slug).await;
        ids.push(b["id"].as_str().unwrap().to_owned());
    }
    let (delta_backup, echo_backup) = (&ids[0], &ids[1]);

    let addr: std::net::SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let http = reqwest::Client::builder()
        .resolve("delta.localhost", addr)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let world = at(&server, "delta.localhost");
    let get = |path: String, token: Option<String>| {
        let mut r = http.get(format!("{world}{path}"));
        if let Some(t) = token {
            r = r.header("cookie", format!("tavern_session={t}"));
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            let kind = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (status, kind, r.bytes().await.unwrap().to_vec())
        }
    };
    let list = "/_tavern/backups/".to_owned();
    let one = format!("/_tavern/backups/{delta_backup}");

    // Nobody signed in: where to sign in, and nothing else.
    let (s, _, page) = get(list.clone(), None).await;
    let page = String::from_utf8(page).unwrap();
    assert_eq!(s, 401, "{page}");
    assert!(
        page.contains("auth/handoff?world=delta&amp;to=backups"),
        "{page}"
    );
    assert!(!page.contains(delta_backup.as_str()), "{page}");
    assert_eq!(get(one.clone(), None).await.0, 401);
    // Another game master: as if there were nothing.
    let bob_token = Some(bob.token().to_owned());
    let (s, _, page) = get(list.clone(), bob_token.clone()).await;
    assert_eq!(s, 404);
    assert!(
        !String::from_utf8(page)
            .unwrap()
            .contains(delta_backup.as_str())
    );
    assert_eq!(get(one.clone(), bob_token).await.0, 404);

    // Its owner and admins: the world's backups, and only this world's.
    for token in [alice.token().to_owned(), server.admin_token.clone()] {
        let (s, _, page) = get(list.clone(), Some(token.clone())).await;
        let page = String::from_utf8(page).unwrap();
        assert_eq!(s, 200, "{page}");
        assert!(page.contains(delta_backup.as_str()), "{page}");
        assert!(!page.contains(echo_backup.as_str()), "{page}");
        let (s, kind, archive) = get(one.clone(), Some(token.clone())).await;
        assert_eq!((s, kind.as_str()), (200, "application/zstd"));
        assert!(
            archive.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
            "a zstd frame"
        );
        let (s, kind, zip) = get(format!("{one}?format=zip"), Some(token.clone())).await;
        assert_eq!((s, kind.as_str()), (200, "application/zip"));
        let zip = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        assert!(
            zip.file_names().any(|n| n.starts_with("Data/worlds/")),
            "Foundry's data"
        );
        assert!(
            zip.file_names().all(|n| !n.starts_with("Config/")),
            "none of Tavern's secrets"
        );
        // HEAD: the same answer's head, no body.
        let head = http
            .head(format!("{world}{one}"))
            .header("cookie", format!("tavern_session={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["content-type"], "application/zstd");
        assert!(
            head.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .contains("attachment"),
        );
        assert!(head.bytes().await.unwrap().is_empty());
        // Another world's backup is not here, even for its owner.
        let other = format!("/_tavern/backups/{echo_backup}");
        assert_eq!(get(other, Some(token.clone())).await.0, 404);
        assert_eq!(
            get("/_tavern/backups/nonsense".into(), Some(token)).await.0,
            404
        );
    }
    let (s, _, _) = get("/_tavern/backups".into(), None).await;
    assert_eq!(s, 303, "to the address with its slash");
    let posted = http
        .post(format!("{world}{list}"))
        .header("cookie", format!("tavern_session={}", alice.token()))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 405);

    // From the dashboard's world page, signed in on the world's address on
    // the way (under localhost the cookie is not shared).
    let site = server.url.replace("127.0.0.1", "localhost");
    let page = reqwest::Client::new()
        .get(format!("{site}/dashboard/worlds/delta"))
        .header("cookie", format!("tavern_session={}", alice.token()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("/auth/handoff?world=delta&amp;to=backups"),
        "{page}"
    );
    let handoff = http
        .get(format!("{site}/auth/handoff?world=delta&to=backups"))
        .header("cookie", format!("tavern_session={}", alice.token()))
        .send()
        .await
        .unwrap();
    assert_eq!(handoff.status(), 303);
    let there = handoff.headers()["location"].to_str().unwrap().to_owned();
    assert!(there.ends_with("&to=backups"), "{there}");
    let landed = http.get(&there).send().await.unwrap();
    assert_eq!(landed.status(), 303);
    let location = landed.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("/_tavern/backups/?"), "{location}");
    let cookie = landed.headers()["set-cookie"].to_str().unwrap();
    let token = cookie
        .strip_prefix("tavern_session=")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let (s, _, page) = get(list, Some(token)).await;
    assert_eq!(s, 200);
    assert!(
        String::from_utf8(page)
            .unwrap()
            .contains(delta_backup.as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_owner_signs_in_with_discord_on_the_worlds_address_and_it_wakes() {
    let Some(b) = Browser::start(true, false).await else {
        return;
    };
    let discord = StandIn::start("1234567890", "discord-secret", "").await;
    let (server, admin) = delta(&[
        ("TAVERN_AUTH_DISCORD_CLIENT_ID", "1234567890"),
        ("TAVERN_AUTH_DISCORD_CLIENT_SECRET", "discord-secret"),
        ("TAVERN_AUTH_DISCORD_BASE_URL", &discord.base_url),
    ])
    .await;
    let site = at(&server, "localhost");
    discord.allow_redirect(&format!("{site}/auth/sso/discord/callback"));
    discord.sign_in_as(&Account::new("80351110224678912", "alice-d", None));

    // Alice links her Discord account on her account page.
    sign_in_on_dashboard(&b, &site).await;
    b.goto(&format!("{site}/account")).await;
    b.click("#sso-link-discord").await;
    b.click("#authorize").await;
    assert_eq!(b.path().await, "/account");
    let main = b.text("main").await;
    assert!(
        main.contains("Your Discord account signs you in here."),
        "{main}"
    );

    // Signed out, she comes to her world's address and signs in with
    // Discord there (allowed once, Discord does not ask again): back at
    // her world, which wakes.
    b.client.delete_all_cookies().await.unwrap();
    b.goto(&format!("{}/", at(&server, "delta.localhost")))
        .await;
    assert_eq!(b.text("[data-field=state]").await, "sleeping");
    assert!(
        b.text("#sso-discord")
            .await
            .contains("Sign in with Discord")
    );
    b.click("#sso-discord").await;
    the_world_opens(&b).await;
    wait_for_state(&admin, "delta", "running").await;
    b.close().await;
}
