//! Invitations through the real binary: an admin invites, the invitee
//! accepts with `tavern invite accept URL` (an account with the invited
//! role and tier, signed in, a first world created), uses run out, and a
//! withdrawn invitation, bad input or a game master make nothing.

use serde_json::json;

use crate::support::*;

async fn user_names(admin: &Api) -> Vec<String> {
    let (_, users) = admin.get("/api/v1/users").await;
    users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invitation_makes_accounts_until_used_up_and_starts_a_first_world() {
    let server = Server::start_with_env(&[], &[("TAVERN_TIERS_FRIENDS_MAX_INSTANCES", "2")]);
    let admin = server.api(Some(&server.admin_token));
    let anon = server.api(None);

    let out = server.cli(
        Some(&server.admin_token),
        &[
            "invite",
            "create",
            "--uses",
            "2",
            "--tier",
            "friends",
            "--expires",
            "48h",
            "--json",
        ],
        None,
    );
    let created = ok_json(&out);
    let url = created["url"].as_str().unwrap().to_owned();
    let code = created["code"].as_str().unwrap().to_owned();
    assert!(url.ends_with(&format!("/auth/invite/{code}")), "{url}");
    assert_eq!(
        (created["role"].as_str(), created["tier"].as_str()),
        (Some("gm"), Some("friends"))
    );
    assert_eq!(
        (created["max_uses"].as_u64(), created["uses"].as_u64()),
        (Some(2), Some(0))
    );

    // The address itself says what it offers.
    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("a game master") && page.contains("tavern invite accept"),
        "{page}"
    );

    // The invitee accepts from their own machine (a home of their own):
    // account, sign-in and first world in one go.
    let carol_home = tempfile::tempdir().unwrap();
    let mut accept = tavern(carol_home.path());
    accept.args([
        "invite",
        "accept",
        &url,
        "--username",
        "carol",
        "--password-stdin",
        "--world",
        "carols-keep",
        "--release",
        "stub",
    ]);
    let out = run(accept, Some("carol-password\n"));
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", text(&out.stderr));
    assert!(said.contains("Welcome, carol!"), "{said}");
    assert!(
        said.contains("carols-keep") && said.contains("admin key"),
        "{said}"
    );
    // Signed in: the stored credentials work without flags.
    let mut list = tavern(carol_home.path());
    list.args(["instance", "list", "--json"]);
    let mine = ok_json(&run(list, None));
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(
        (mine[0]["slug"].as_str(), mine[0]["owner"].as_str()),
        (Some("carols-keep"), Some("carol"))
    );
    let (_, users) = admin.get("/api/v1/users").await;
    let carol = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "carol")
        .unwrap();
    assert_eq!(
        (carol["role"].as_str(), carol["tier"].as_str()),
        (Some("gm"), Some("friends"))
    );

    // A taken name spends no use; the second use works; then it is spent.
    let accept_as = |name: &str| {
        let body = json!({"username": name, "password": "a-long-password"});
        let path = format!("/api/v1/invites/{code}/accept");
        let anon = &anon;
        async move { anon.post(&path, &body).await }
    };
    assert_refused(&accept_as("carol").await, 409, "username_taken");
    assert_refused(&accept_as("Not Valid!").await, 422, "invalid_username");
    let (s, body) = accept_as("dave").await;
    assert_eq!(s, 201, "{body}");
    assert!(
        body["token"].as_str().unwrap().starts_with("tvn_"),
        "{body}"
    );
    assert_refused(&accept_as("erin").await, 404, "not_found");
    assert!(!user_names(&admin).await.contains(&"erin".to_owned()));
    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.status(), 404);
    let out = server.cli(
        Some(&server.admin_token),
        &["invite", "list", "--json"],
        None,
    );
    let listed = ok_json(&out);
    // Beside the first start's invitation for the admin's own account.
    let ours = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == created["id"])
        .unwrap_or_else(|| panic!("listed: {listed}"));
    assert_eq!(ours["state"], "spent", "{listed}");
    assert_eq!(ours["uses"], 2, "{listed}");
    assert!(
        ours.get("code").is_none() && !listed.to_string().contains(&code),
        "{listed}"
    );

    // A withdrawn invitation makes nothing.
    let (s, other) = admin.post("/api/v1/invites", &json!({})).await;
    assert_eq!(s, 201, "{other}");
    let other_code = other["code"].as_str().unwrap().to_owned();
    let out = server.cli(
        Some(&server.admin_token),
        &["invite", "revoke", other["id"].as_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (s, _) = anon
        .post(
            &format!("/api/v1/invites/{other_code}/accept"),
            &json!({"username": "frank", "password": "a-long-password"}),
        )
        .await;
    assert_eq!(s, 404);

    // Bad input and game masters are refused, and nothing is created.
    let before = admin
        .get("/api/v1/invites")
        .await
        .1
        .as_array()
        .unwrap()
        .len();
    for (body, code) in [
        (json!({"uses": 0}), "invalid_field"),
        (json!({"expires_in_hours": 24 * 91}), "invalid_field"),
        (json!({"role": "king"}), "invalid_role"),
        (json!({"tier": "nonesuch"}), "unknown_tier"),
        (json!({"uses": 1, "extra": true}), "invalid_body"),
    ] {
        let answer = admin.post("/api/v1/invites", &body).await;
        assert_eq!(answer.0 / 100, 4, "{body}: {answer:?}");
        assert_eq!(super::support::code(&answer), code, "{body}");
    }
    let carol_api = admin.login("carol", "carol-password").await;
    assert_refused(
        &carol_api.post("/api/v1/invites", &json!({})).await,
        403,
        "forbidden",
    );
    assert_refused(&carol_api.get("/api/v1/invites").await, 403, "forbidden");
    assert_eq!(
        admin
            .get("/api/v1/invites")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        before
    );

    // Accepting a malformed address fails before anything is sent.
    let mut bad = tavern(carol_home.path());
    bad.args([
        "invite",
        "accept",
        "https://example.org/join/abc",
        "--username",
        "g",
    ]);
    let out = run(bad, None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not an invitation address"),
        "{}",
        text(&out.stderr)
    );

    // Codes never reach the log.
    let log = std::fs::read_to_string(server.home().join("server.log")).unwrap();
    assert!(
        !log.contains(&code) && !log.contains(&other_code),
        "an invitation code is in the log"
    );
}
