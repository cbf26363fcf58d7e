//! Signing in with Discord through the real binary, against the stand-in
//! for Discord's OAuth2 and API (Discord's documented requests and
//! answers): members of the community's server with the right role sign
//! up, others are refused, an invitation is accepted with Discord, a
//! password user links their Discord account and signs in with it, and a
//! replayed callback signs nobody in. And in Chromium, the whole way, for
//! the dashboard and for `tavern login --sso`.

use serde_json::json;
use tavern_sso::testing::discord::{Account, StandIn};

use crate::support::*;

const APP: &str = "1234567890";
const SECRET: &str = "discord-app-secret";
const GUILD: &str = "81384788765712384";
const PLAYERS: &str = "41771983423143936";

struct Discord {
    server: Server,
    discord: StandIn,
    http: reqwest::Client,
    /// The dashboard's address as its pages name it (`http://localhost:PORT`).
    site: String,
}

impl Discord {
    /// With members of the guild holding `PLAYERS` signing up.
    async fn start() -> Discord {
        let roles = format!("[\"{PLAYERS}\"]");
        Self::start_with(&[
            ("TAVERN_AUTH_DISCORD_GUILD_ID", GUILD),
            ("TAVERN_AUTH_DISCORD_SIGN_UP", "true"),
            ("TAVERN_AUTH_DISCORD_SIGN_UP_ROLES", &roles),
        ])
        .await
    }

    /// Signing in with Discord on, and `more` settings.
    async fn start_with(more: &[(&str, &str)]) -> Discord {
        let discord = StandIn::start(APP, SECRET, "").await;
        let mut env = vec![
            ("TAVERN_AUTH_DISCORD_CLIENT_ID", APP),
            ("TAVERN_AUTH_DISCORD_CLIENT_SECRET", SECRET),
            ("TAVERN_AUTH_DISCORD_BASE_URL", discord.base_url.as_str()),
        ];
        env.extend_from_slice(more);
        let server = Server::start_with_env(&[], &env);
        let site = server.url.replace("127.0.0.1", "localhost");
        discord.allow_redirect(&format!("{site}/auth/sso/discord/callback"));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Discord {
            server,
            discord,
            http,
            site,
        }
    }

    /// Begins at `/auth/sso/discord{query}` (with `cookies`), allows it at
    /// "Discord", and comes back: the callback's answer, and the callback
    /// address with the flow's cookie, for replaying.
    async fn through(&self, query: &str, cookies: &str) -> (reqwest::Response, String, String) {
        let resp = self
            .http
            .get(format!("{}/auth/sso/discord{query}", self.site))
            .header("cookie", cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 303);
        let to = location(&resp);
        assert!(to.starts_with(&self.discord.base_url), "{to}");
        let flow = set_cookie(&resp, "tavern_sso").expect("the flow's cookie");
        let callback = self.discord.authorize(&to, true).await;
        assert!(callback.starts_with(&self.site), "{callback}");
        let cookies = format!("{cookies}; tavern_sso={flow}");
        (self.back(&callback, &cookies).await, callback, cookies)
    }

    /// Back from "Discord" at `callback`, carrying `cookies`.
    async fn back(&self, callback: &str, cookies: &str) -> reqwest::Response {
        self.http
            .get(callback)
            .header("cookie", cookies)
            .send()
            .await
            .unwrap()
    }

    /// A member of the guild with the role, `name`, is the one who signs
    /// in at "Discord".
    fn member_signing_in(&self, id: &str, name: &str) {
        let account = Account::new(id, name, None);
        self.discord.join_guild(GUILD, &account.id, &[PLAYERS]);
        self.discord.sign_in_as(&account);
    }

    /// A sign-in as `account`: where it ended, and the session if any.
    async fn sign_in(&self, account: &Account) -> (String, Option<String>) {
        self.discord.sign_in_as(account);
        let (back, _, _) = self.through("?next=%2Fdashboard%2Fsessions", "").await;
        assert_eq!(back.status(), 303);
        (location(&back), set_cookie(&back, "tavern_session"))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn members_with_the_role_sign_up_others_are_refused_and_invitations_are_accepted() {
    let d = Discord::start().await;
    let admin = d.server.api(Some(&d.server.admin_token));
    let page = page_at(&format!("{}/auth/login?next=%2Fdashboard", d.site)).await;
    assert!(page.contains("Sign in with Discord"), "{page}");
    assert!(
        page.contains("/auth/sso/discord?next=%2Fdashboard"),
        "{page}"
    );

    // A member with the role: a new game master, named after the account.
    let nelly = Account::new("80351110224678912", "nelly", Some("Nelly"));
    d.discord.join_guild(GUILD, &nelly.id, &[PLAYERS]);
    let (to, token) = d.sign_in(&nelly).await;
    assert_eq!(to, "/dashboard/sessions");
    let token = token.expect("signed in");
    let me = whoami(&d.server, &token).await;
    assert_eq!(
        (me["username"].as_str(), me["role"].as_str()),
        (Some("nelly"), Some("gm"))
    );
    let (_, links) = d.server.api(Some(&token)).get("/api/v1/auth/links").await;
    assert_eq!(
        (links[0]["provider"].as_str(), links[0]["subject"].as_str()),
        (Some("discord"), Some(nelly.id.as_str()))
    );
    // Again: the same user.
    let (_, again) = d.sign_in(&nelly).await;
    assert_eq!(
        whoami(&d.server, &again.unwrap()).await["username"],
        "nelly"
    );
    let (_, events) = admin.get("/api/v1/events?limit=200").await;
    let logins = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.login" && e["actor"] == "nelly")
        .count();
    assert_eq!(logins, 2, "{events}");
    let users_before = admin.get("/api/v1/users").await.1;

    // A member without the role, and someone outside the server: refused,
    // back at the sign-in page with why, and no account made.
    let mason = Account::new("175928847299117063", "mason", None);
    d.discord.join_guild(GUILD, &mason.id, &[]);
    let stranger = Account::new("222222222222222222", "stranger", None);
    for who in [&mason, &stranger] {
        let (to, token) = d.sign_in(who).await;
        assert_eq!(
            (to.as_str(), token),
            ("/auth/login", None),
            "{}",
            who.username
        );
    }
    // A replayed callback: its cookie and code are spent.
    d.discord.sign_in_as(&nelly);
    let (first, callback, cookies) = d.through("", "").await;
    assert!(set_cookie(&first, "tavern_session").is_some());
    assert_eq!(set_cookie(&first, "tavern_sso").as_deref(), Some(""));
    // Sent again with the flow's cookie, Discord refuses the spent code.
    let replay = d.back(&callback, &cookies).await;
    assert_eq!(replay.status(), 303);
    assert_eq!(location(&replay), "/auth/login");
    assert!(set_cookie(&replay, "tavern_session").is_none());
    assert!(d.discord.refused().iter().any(|r| r.contains("\"code\"")));
    assert_eq!(admin.get("/api/v1/users").await.1, users_before);

    // An invitation, accepted with Discord by someone outside the server.
    let (s, invite) = admin.post("/api/v1/invites", &json!({})).await;
    assert_eq!(s, 201, "{invite}");
    let code = invite["code"].as_str().unwrap();
    let page = page_at(&format!("{}/auth/invite/{code}", d.server.url)).await;
    assert!(page.contains("Accept with your Discord account"), "{page}");
    // An account that signs in already cannot take it.
    let (taken, _, _) = d.through(&format!("?invite={code}"), "").await;
    assert_eq!(location(&taken), format!("/auth/invite/{code}"));
    assert!(set_cookie(&taken, "tavern_session").is_none());
    d.discord.sign_in_as(&stranger);
    let (accepted, _, _) = d.through(&format!("?invite={code}"), "").await;
    assert_eq!(location(&accepted), "/dashboard/welcome");
    let token = set_cookie(&accepted, "tavern_session").expect("signed in");
    let me = whoami(&d.server, &token).await;
    assert_eq!(
        (me["username"].as_str(), me["role"].as_str()),
        (Some("stranger"), Some("gm"))
    );
    // Used up (one use): the next invitee is told before going to Discord.
    let gone = d
        .http
        .get(format!("{}/auth/sso/discord?invite={code}", d.site))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    assert!(set_cookie(&gone, "tavern_sso").is_none());
    // And the account signs in from now on.
    let (_, again) = d.sign_in(&stranger).await;
    assert_eq!(
        whoami(&d.server, &again.unwrap()).await["username"],
        "stranger"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_user_links_discord_signs_in_with_it_and_unlinks_it() {
    let d = Discord::start().await;
    let admin = d.server.api(Some(&d.server.admin_token));
    admin.create_user("carl", "gm", "carl-password-1").await;
    let carl = d.server.api(None).login("carl", "carl-password-1").await;
    let account = Account::new("333333333333333333", "carl-on-discord", None);
    d.discord.sign_in_as(&account);
    let (linked, _, _) = d
        .through(
            "?link=true&next=%2Faccount",
            &format!("tavern_session={}", carl.token()),
        )
        .await;
    assert_eq!(location(&linked), "/account");
    // Not in the server, yet linked: Discord signs Carl in as Carl.
    let (_, token) = d.sign_in(&account).await;
    assert_eq!(whoami(&d.server, &token.unwrap()).await["username"], "carl");
    let page = page_as(&d.server, carl.token(), "/account").await;
    assert!(
        page.contains("Your Discord account signs you in here."),
        "{page}"
    );
    let (s, b) = carl.delete("/api/v1/auth/links/discord").await;
    assert_eq!(s, 204, "{b}");
    let (to, token) = d.sign_in(&account).await;
    assert_eq!((to.as_str(), token), ("/auth/login", None));

    // Linked again, an admin unlinks it from the users page.
    d.through(
        "?link=true&next=%2Faccount",
        &format!("tavern_session={}", carl.token()),
    )
    .await;
    assert!(d.sign_in(&account).await.1.is_some());
    admin.create_user("root", "admin", "root-password-1").await;
    let root = d.server.api(None).login("root", "root-password-1").await;
    let cookie = format!("tavern_session={}", root.token());
    let page = page_as(&d.server, root.token(), "/admin/users").await;
    assert!(page.contains("Unlink Discord"), "{page}");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let done = d
        .http
        .post(format!("{}/admin/users/carl/links/unlink", d.site))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&provider=discord"))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    assert!(
        set_cookie(&done, "tavern_flash").is_some_and(|f| f.starts_with("ok.")),
        "{:?}",
        done.headers()
    );
    let (to, token) = d.sign_in(&account).await;
    assert_eq!((to.as_str(), token), ("/auth/login", None));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_game_master_signs_in_with_discord_in_the_browser() {
    let Some(b) = crate::web::Browser::start(true, false).await else {
        return;
    };
    let d = Discord::start().await;
    d.member_signing_in("444444444444444444", "erin");
    b.goto(&format!(
        "{}/auth/login?next=%2Fdashboard%2Fsessions",
        d.site
    ))
    .await;
    assert!(
        b.text("#sso-discord")
            .await
            .contains("Sign in with Discord")
    );
    b.assert_accessible().await;
    b.click("#sso-discord").await;
    // "Discord"'s consent page.
    b.click("#authorize").await;
    assert_eq!(b.path().await, "/dashboard/sessions");
    assert!(
        b.text("header").await.contains("erin"),
        "{}",
        b.text("header").await
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_line_signs_in_with_discord_through_the_browser() {
    let Some(b) = crate::web::Browser::start(true, false).await else {
        return;
    };
    let d = Discord::start().await;
    d.member_signing_in("555555555555555555", "erin");
    let home = tempfile::tempdir().unwrap();
    let cli = crate::cli_sso::SsoLogin::start(home.path(), &d.site);
    // The address it printed leads through the sign-in page, "Discord"'s
    // consent, and back to the question.
    b.goto(&cli.url).await;
    assert_eq!(b.path().await, "/auth/login");
    b.click("#sso-discord").await;
    b.click("#authorize").await;
    assert_eq!(b.path().await, "/auth/cli");
    assert!(b.text("main").await.contains("erin"));
    b.assert_accessible().await;
    b.click("#approve").await;
    // On to the client's loopback port, which says it is done.
    assert_eq!(b.path().await, "/callback");
    assert!(b.text("#message").await.contains("Signed in."));
    let (ok, out, err) = cli.finish();
    assert!(ok, "{err}");
    assert!(out.contains("Signed in as erin (gm)"), "{out}");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_passwords_off_only_break_glass_admins_use_one() {
    let d = Discord::start_with(&[
        ("TAVERN_AUTH_PASSWORDS", "false"),
        ("TAVERN_AUTH_BREAK_GLASS_ADMINS", "[\"keeper\"]"),
    ])
    .await;
    let server = &d.server;
    let admin = server.api(Some(&server.admin_token));
    admin
        .create_user("keeper", "admin", "keeper-password-1")
        .await;
    admin.create_user("boss", "admin", "boss-password-1").await;
    admin.create_user("gina", "gm", "gina-password-1").await;
    let anon = server.api(None);
    let login = |name: &str, password: &str| {
        let body = json!({"username": name, "password": password});
        let anon = &anon;
        async move { anon.post("/api/v1/auth/login", &body).await }
    };
    // A game master, an admin not named, a stranger: told why, whatever
    // the password.
    for (name, password) in [
        ("gina", "gina-password-1"),
        ("boss", "boss-password-1"),
        ("nobody", "x"),
    ] {
        let (s, b) = login(name, password).await;
        assert_eq!(s, 403, "{name}: {b}");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("passwords are off"),
            "{b}"
        );
    }
    // The break-glass admin signs in with hers.
    let (s, b) = login("keeper", "keeper-password-1").await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = login("keeper", "wrong-password").await;
    assert_eq!(s, 401, "{b}");

    // Invitations are accepted with Discord, not a password.
    let (_, invite) = admin.post("/api/v1/invites", &json!({})).await;
    let code = invite["code"].as_str().unwrap();
    let (s, b) = anon
        .post(
            &format!("/api/v1/invites/{code}/accept"),
            &json!({"username": "newbie", "password": "a-long-password"}),
        )
        .await;
    assert_eq!(s, 403, "{b}");
    let page = page_at(&format!("{}/auth/invite/{code}", server.url)).await;
    assert!(page.contains("Accept with your Discord account"), "{page}");
    assert!(!page.contains(r#"id="password""#), "{page}");
    // The sign-in page leads with Discord; the password is for admins.
    let page = page_at(&format!("{}/auth/login", server.url)).await;
    assert!(page.contains("Sign in with Discord"), "{page}");
    assert!(
        page.contains("<details") && page.contains("Admins: sign in with your password"),
        "{page}"
    );
}
