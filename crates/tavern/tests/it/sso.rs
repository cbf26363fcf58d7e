//! Signing in with an OpenID provider through the real binary, against a
//! real provider (oidc-provider-mock, started here): the sign-in page's
//! button, the provider and back, a new game master signed up (an admin
//! by their groups), an account linked to an existing user and unlinked,
//! and refusals: a replayed or forged callback, another browser's, a
//! provider's "no", nothing changed by any of them.

use serde_json::{Value, json};
use tavern_sso::testing::provider::Provider;

use crate::support::*;

struct Sso {
    server: Server,
    provider: Provider,
    http: reqwest::Client,
    /// The dashboard's address as its pages name it (`http://localhost:PORT`).
    site: String,
}

impl Sso {
    async fn start() -> Option<Sso> {
        let provider = Provider::start()?;
        let server = Server::start_with_env(
            &[],
            &[
                ("TAVERN_AUTH_OIDC_ISSUER", &provider.issuer),
                ("TAVERN_AUTH_OIDC_CLIENT_ID", "tavern"),
                ("TAVERN_AUTH_OIDC_CLIENT_SECRET", "tavern-client-secret"),
                ("TAVERN_AUTH_OIDC_LABEL", "Keycloak"),
                ("TAVERN_AUTH_OIDC_SIGN_UP", "true"),
                ("TAVERN_AUTH_OIDC_GROUPS_CLAIM", "groups"),
                ("TAVERN_AUTH_OIDC_ADMIN_GROUPS", "[\"tavern-admins\"]"),
            ],
        );
        let site = server.url.replace("127.0.0.1", "localhost");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Some(Sso {
            server,
            provider,
            http,
            site,
        })
    }

    /// Starts a sign-in (with `session` signed in, if any): the provider's
    /// URL and the flow's cookie.
    async fn begin(&self, query: &str, session: Option<&str>) -> (String, String) {
        let mut r = self.http.get(format!("{}/auth/sso/oidc{query}", self.site));
        if let Some(t) = session {
            r = r.header("cookie", format!("tavern_session={t}"));
        }
        let resp = r.send().await.unwrap();
        assert_eq!(resp.status(), 303);
        let to = location(&resp);
        assert!(to.starts_with(&self.provider.issuer), "{to}");
        let flow = set_cookie(&resp, "tavern_sso").expect("the flow's cookie");
        (to, flow)
    }

    /// Back from the provider at `callback`, carrying `cookies`.
    async fn back(&self, callback: &str, cookies: &str) -> reqwest::Response {
        self.http
            .get(callback)
            .header("cookie", cookies)
            .send()
            .await
            .unwrap()
    }

    /// A whole sign-in as `sub`: the session token.
    async fn sign_in(&self, sub: &str) -> String {
        let (to, flow) = self.begin("?next=%2Fdashboard%2Fsessions", None).await;
        let callback = self.provider.authorize(&to, sub).await;
        let resp = self.back(&callback, &format!("tavern_sso={flow}")).await;
        assert_eq!(resp.status(), 303);
        assert_eq!(location(&resp), "/dashboard/sessions");
        set_cookie(&resp, "tavern_session").expect("signed in")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn people_sign_in_with_the_provider_and_nothing_else_gets_through() {
    let Some(sso) = Sso::start().await else {
        return;
    };
    let admin = sso.server.api(Some(&sso.server.admin_token));
    sso.provider
        .set_user(
            "ann-sub",
            &json!({"name": "Ann Smith", "email": "ann@example.org", "email_verified": true,
                    "groups": ["players"]}),
        )
        .await;
    sso.provider
        .set_user(
            "boss-sub",
            &json!({"name": "Boss", "groups": ["tavern-admins"]}),
        )
        .await;

    // The sign-in page offers the provider.
    let page = page_at(&format!("{}/auth/login?next=%2Fdashboard", sso.site)).await;
    assert!(page.contains("Sign in with Keycloak"), "{page}");
    assert!(page.contains("/auth/sso/oidc?next=%2Fdashboard"), "{page}");

    // Someone new: a game master, named after what the provider says.
    let ann = sso.sign_in("ann-sub").await;
    let me = whoami(&sso.server, &ann).await;
    assert_eq!(
        (me["username"].as_str(), me["role"].as_str()),
        (Some("ann-smith"), Some("gm"))
    );
    // Again: the same user, not a new one.
    let again = sso.sign_in("ann-sub").await;
    assert_eq!(whoami(&sso.server, &again).await["username"], "ann-smith");
    let (_, links) = sso.server.api(Some(&ann)).get("/api/v1/auth/links").await;
    assert_eq!(links[0]["provider"], "oidc");
    assert_eq!(links[0]["subject"], "ann-sub");
    // Groups make admins.
    let boss = sso.sign_in("boss-sub").await;
    assert_eq!(whoami(&sso.server, &boss).await["role"], "admin");

    // The audit log says how each signed in.
    let (_, events) = admin.get("/api/v1/events?limit=200").await;
    let logins: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.login" && e["actor"] == "ann-smith")
        .collect();
    assert_eq!(logins.len(), 2, "{events}");
    assert!(logins.iter().all(|e| e["detail"] == "oidc"));
    let users_before = admin.get("/api/v1/users").await.1;

    // A callback replayed with its cookie: the code is spent at the
    // provider; without the cookie, or from another browser's flow, or
    // with a forged state, refused before the provider is asked.
    let (to, flow) = sso.begin("", None).await;
    let callback = sso.provider.authorize(&to, "ann-sub").await;
    let first = sso.back(&callback, &format!("tavern_sso={flow}")).await;
    assert_eq!(first.status(), 303);
    assert!(set_cookie(&first, "tavern_session").is_some());
    // The flow's cookie is spent by the answer.
    assert_eq!(set_cookie(&first, "tavern_sso").as_deref(), Some(""));
    let replay = sso.back(&callback, &format!("tavern_sso={flow}")).await;
    assert_eq!(replay.status(), 303);
    assert!(location(&replay).starts_with("/auth/login"));
    assert!(set_cookie(&replay, "tavern_session").is_none());
    let no_cookie = sso.back(&callback, "").await;
    assert_eq!(no_cookie.status(), 403);
    assert!(set_cookie(&no_cookie, "tavern_session").is_none());
    let (to, flow) = sso.begin("", None).await;
    let (_, other_flow) = sso.begin("", None).await;
    let callback = sso.provider.authorize(&to, "ann-sub").await;
    let crossed = sso
        .back(&callback, &format!("tavern_sso={other_flow}"))
        .await;
    assert_eq!(crossed.status(), 403);
    let forged = callback.replace("state=", "state=x");
    let resp = sso.back(&forged, &format!("tavern_sso={flow}")).await;
    assert_eq!(resp.status(), 403);
    assert!(set_cookie(&resp, "tavern_session").is_none());
    // A sealed cookie that is not Tavern's.
    let resp = sso.back(&callback, "tavern_sso=bm90IHNlYWxlZA").await;
    assert_eq!(resp.status(), 403);
    // The provider's "no".
    let (to, flow) = sso.begin("", None).await;
    let state = url::Url::parse(&to)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let resp = sso
        .back(
            &format!(
                "{}/auth/sso/oidc/callback?error=access_denied&state={state}",
                sso.site
            ),
            &format!("tavern_sso={flow}"),
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert!(set_cookie(&resp, "tavern_session").is_none());
    // Nothing was made by any of them.
    assert_eq!(admin.get("/api/v1/users").await.1, users_before);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_user_links_their_account_and_an_admin_unlinks_it() {
    let Some(sso) = Sso::start().await else {
        return;
    };
    let admin = sso.server.api(Some(&sso.server.admin_token));
    admin.create_user("carl", "gm", "carl-password-1").await;
    let carl = sso.server.api(None).login("carl", "carl-password-1").await;
    sso.provider
        .set_user("carl-sub", &json!({"name": "Carl Somebody"}))
        .await;

    // Linking needs a signed-in user coming back.
    let (to, flow) = sso
        .begin("?link=true&next=%2Faccount", Some(carl.token()))
        .await;
    let callback = sso.provider.authorize(&to, "carl-sub").await;
    let resp = sso
        .back(
            &callback,
            &format!("tavern_sso={flow}; tavern_session={}", carl.token()),
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/account");
    // Now the provider signs Carl in, as Carl (no new user).
    let token = sso.sign_in("carl-sub").await;
    assert_eq!(whoami(&sso.server, &token).await["username"], "carl");
    // His account page says so.
    let page = page_as(&sso.server, &token, "/account").await;
    assert!(
        page.contains("Your Keycloak account signs you in here."),
        "{page}"
    );

    // Another game master cannot unlink it; an admin can.
    admin.create_user("dora", "gm", "dora-password-1").await;
    let dora = sso.server.api(None).login("dora", "dora-password-1").await;
    assert_refused(
        &dora.delete("/api/v1/users/carl/links/oidc").await,
        403,
        "forbidden",
    );
    let (s, b) = admin.delete("/api/v1/users/carl/links/oidc").await;
    assert_eq!(s, 204, "{b}");
    assert_refused(
        &carl.delete("/api/v1/auth/links/oidc").await,
        404,
        "not_found",
    );
    // Unlinked, the provider's account is someone new again.
    let token = sso.sign_in("carl-sub").await;
    assert_eq!(
        whoami(&sso.server, &token).await["username"],
        "carl-somebody"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_game_master_signs_in_with_the_provider_in_the_browser() {
    let Some(b) = crate::web::Browser::start(true, false).await else {
        return;
    };
    let Some(sso) = Sso::start().await else {
        return;
    };
    sso.provider
        .set_user("erin-sub", &json!({"name": "Erin", "groups": ["players"]}))
        .await;
    b.goto(&format!(
        "{}/auth/login?next=%2Fdashboard%2Fsessions",
        sso.site
    ))
    .await;
    assert!(b.text("#sso-oidc").await.contains("Sign in with Keycloak"));
    b.assert_accessible().await;
    b.click("#sso-oidc").await;
    // The provider's own page: who signs in.
    b.fill("input[name=sub]", "erin-sub").await;
    b.click("form button[type=submit]").await;
    // Back at Tavern, signed in, where the sign-in began.
    assert_eq!(b.path().await, "/dashboard/sessions");
    assert!(
        b.text("header").await.contains("erin"),
        "{}",
        b.text("header").await
    );
    // Her account page says how she signs in.
    b.goto(&format!("{}/account", sso.site)).await;
    assert!(
        b.text("main")
            .await
            .contains("Your Keycloak account signs you in here."),
        "{}",
        b.text("main").await
    );
    assert!(b.text("main").await.contains("no second factor to set up"));
    b.close().await;
}
