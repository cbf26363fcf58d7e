//! The attacker's view of the dashboard: every page and form, asked for by
//! nobody, by another game master, by the owner of what it shows and by an
//! admin. Nobody is sent to sign in; another game master's world, backup
//! or session does not exist for a game master (404) and the admin's pages
//! are refused (403); a refused form changes nothing; no page a game
//! master sees names the other game master or their worlds. A route of
//! the dashboard without its place here fails the test.

use serde_json::json;

use crate::authz::{OTHER, OTHER_WORLD, OWNER, OWNER_WORLDS, Role, community};
use crate::support::*;

/// Who may have a page.
#[derive(Clone, Copy, Debug)]
enum Access {
    /// Anyone.
    Public,
    /// Anyone signed in (each sees their own).
    User,
    /// The owner of the world (backup, session) in it, and admins.
    Owner,
    /// Admins.
    Admin,
    /// Anyone, but only with the token of the form's own page (the
    /// double-submit cookie): posted from anywhere else, refused (403).
    SignInForm,
}

/// Every page and form of the dashboard, with `{slug}`, `{backup}`,
/// `{session}`, `{code}`, `{invite}` and `{user}` standing for the owner's.
const PAGES: &[(&str, &str, Access, &str)] = &[
    ("GET", "/", Access::User, ""),
    ("GET", "/static/dashboard.css", Access::Public, ""),
    ("GET", "/static/dashboard.js", Access::Public, ""),
    ("GET", "/auth/login", Access::Public, ""),
    ("GET", "/auth/invite/{code}", Access::Public, ""),
    // The second step of a sign-in (a standby page sends it here).
    ("GET", "/auth/login/code?ticket=x", Access::Public, ""),
    (
        "POST",
        "/auth/login/code",
        Access::SignInForm,
        "ticket=x&code=000000",
    ),
    ("GET", "/account", Access::User, ""),
    // On to the OpenID provider; back from it only with this browser's
    // flow (a cookie the provider's visitors do not have).
    ("GET", "/auth/sso/oidc?next=/dashboard", Access::Public, ""),
    (
        "GET",
        "/auth/sso/oidc/callback?code=x&state=y",
        Access::SignInForm,
        "",
    ),
    (
        "GET",
        "/auth/sso/discord?next=/dashboard",
        Access::Public,
        "",
    ),
    (
        "GET",
        "/auth/sso/discord/callback?code=x&state=y",
        Access::SignInForm,
        "",
    ),
    ("GET", "/auth/sso/discord?invite={code}", Access::Public, ""),
    (
        "POST",
        "/account/sso/unlink",
        Access::User,
        "provider=discord",
    ),
    ("POST", "/account/second-factor", Access::User, ""),
    (
        "POST",
        "/account/second-factor/confirm",
        Access::User,
        "code=000000",
    ),
    (
        "POST",
        "/account/second-factor/recovery-codes",
        Access::User,
        "code=000000",
    ),
    (
        "POST",
        "/account/second-factor/remove",
        Access::User,
        "code=000000",
    ),
    // `tavern login --sso`: approving sends the browser on to the
    // client's loopback port with a code for it.
    (
        "GET",
        "/auth/cli?port=9&state=abcdefgh&challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        Access::User,
        "",
    ),
    (
        "POST",
        "/auth/cli",
        Access::User,
        "port=9&state=abcdefgh&challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&decision=approve",
    ),
    // On to a world's address, signed in there too (any world's: it only
    // redirects, and the world's server never sees the cookie).
    ("GET", "/auth/handoff?world={slug}", Access::User, ""),
    ("GET", "/dashboard", Access::User, ""),
    ("GET", "/dashboard/worlds.json", Access::User, ""),
    ("GET", "/dashboard/new", Access::User, ""),
    ("GET", "/dashboard/welcome", Access::User, ""),
    ("GET", "/dashboard/backups", Access::User, ""),
    ("GET", "/dashboard/sessions", Access::User, ""),
    ("GET", "/dashboard/worlds/{slug}", Access::Owner, ""),
    ("GET", "/dashboard/worlds/{slug}/logs", Access::Owner, ""),
    (
        "GET",
        "/dashboard/worlds/{slug}/logs.txt",
        Access::Owner,
        "",
    ),
    (
        "GET",
        "/dashboard/backups/{backup}/download",
        Access::Owner,
        "",
    ),
    ("GET", "/admin", Access::Admin, ""),
    ("GET", "/admin/users", Access::Admin, ""),
    ("GET", "/admin/invites", Access::Admin, ""),
    ("GET", "/admin/usage", Access::Admin, ""),
    ("GET", "/admin/audit", Access::Admin, ""),
    ("GET", "/admin/releases", Access::Admin, ""),
    ("GET", "/admin/packages", Access::Admin, ""),
    (
        "POST",
        "/admin/packages",
        Access::Admin,
        "manifest_url=http://127.0.0.1:9/nowhere/module.json",
    ),
    ("POST", "/admin/packages/update", Access::Admin, ""),
    (
        "POST",
        "/admin/packages/remove",
        Access::Admin,
        "kind=module&id=nowhere&version=1",
    ),
    (
        "POST",
        "/dashboard/worlds/{slug}/packages",
        Access::Owner,
        "package=module:nowhere",
    ),
    (
        "POST",
        "/dashboard/worlds/{slug}/packages/remove",
        Access::Owner,
        "package=module:nowhere",
    ),
    ("POST", "/dashboard/worlds/{slug}/start", Access::Owner, ""),
    ("POST", "/dashboard/worlds/{slug}/stop", Access::Owner, ""),
    (
        "POST",
        "/dashboard/worlds/{slug}/settings",
        Access::Owner,
        "idle_timeout_minutes=45&wake_on_visit=owner&release=stub",
    ),
    ("POST", "/dashboard/worlds/{slug}/backup", Access::Owner, ""),
    (
        "POST",
        "/dashboard/worlds/{slug}/destroy",
        Access::Owner,
        "confirm={slug}",
    ),
    (
        "POST",
        "/dashboard/sessions",
        Access::Owner,
        "world={slug}&date={date}&time=19:00&zone=UTC&duration_minutes=120",
    ),
    (
        "POST",
        "/dashboard/sessions/{session}/cancel",
        Access::Owner,
        "",
    ),
    (
        "POST",
        "/dashboard/new",
        Access::User,
        "slug=new-{n}&release=stub",
    ),
    ("POST", "/admin/users/{user}/tier", Access::Admin, "tier="),
    (
        "POST",
        "/admin/users/{user}/second-factor/remove",
        Access::Admin,
        "",
    ),
    (
        "POST",
        "/admin/users/{user}/links/unlink",
        Access::Admin,
        "provider=discord",
    ),
    (
        "POST",
        "/admin/licenses",
        Access::Admin,
        "label=added-{n}&key={key}&owner=",
    ),
    (
        "POST",
        "/admin/licenses/{license}",
        Access::Admin,
        "label=renamed-{n}&owner={user}",
    ),
    (
        "POST",
        "/admin/licenses/{license}/remove",
        Access::Admin,
        "",
    ),
    (
        "GET",
        "/dashboard/backups/{backup}/delete",
        Access::Owner,
        "",
    ),
    (
        "POST",
        "/dashboard/backups/{backup}/delete",
        Access::Owner,
        "",
    ),
    (
        "POST",
        "/dashboard/backups/{backup}/lock",
        Access::Owner,
        "locked=true",
    ),
    (
        "POST",
        "/admin/invites",
        Access::Admin,
        "role=gm&tier=&uses=1&days=1",
    ),
    ("POST", "/admin/invites/{invite}/revoke", Access::Admin, ""),
    (
        "POST",
        "/auth/login",
        Access::SignInForm,
        "username=olive&password=olive-password",
    ),
    (
        "POST",
        "/auth/invite/{code}",
        Access::SignInForm,
        "username=new-{n}&password=joiner-password&password_again=joiner-password",
    ),
    ("POST", "/auth/logout", Access::User, ""),
    (
        "GET",
        "/dashboard/backups/{backup}/restore",
        Access::Owner,
        "",
    ),
    (
        "POST",
        "/dashboard/backups/{backup}/restore",
        Access::Owner,
        "",
    ),
    ("GET", "/dashboard/import?world={slug}", Access::User, ""),
    // Sent as multipart/form-data with a world's zip as its file.
    (
        "POST",
        "/dashboard/import",
        Access::Owner,
        "multipart:world={slug}&release=stub",
    ),
    ("GET", "/dashboard/imports/{held}", Access::Owner, ""),
    ("POST", "/dashboard/imports/{held}", Access::Owner, ""),
    (
        "POST",
        "/dashboard/imports/{held}/cancel",
        Access::Owner,
        "",
    ),
];

/// A `multipart/form-data` body of text fields and then one file: its
/// content type and bytes.
pub(crate) fn multipart(fields: &[(&str, &str)], file: (&str, &[u8])) -> (String, Vec<u8>) {
    let boundary = "tavern-test-boundary-7b9c";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n",
            file.0
        )
        .as_bytes(),
    );
    body.extend_from_slice(file.1);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// An upload of `slug`'s owner held for import into it: its id.
async fn held_import(site: &Site, slug: &str, n: u32) -> String {
    let to = hold_import(
        &site.server.url,
        site.owner.token(),
        slug,
        &format!("held-{n}"),
    )
    .await;
    to.strip_prefix("/dashboard/imports/")
        .unwrap_or_else(|| panic!("the upload was not held: {to}"))
        .to_owned()
}

/// Uploads the zip of the world `id` for import into `slug` as the
/// dashboard's form does, signed in with `token`: where it leads (the page
/// that says what it holds).
pub(crate) async fn hold_import(base: &str, token: &str, slug: &str, id: &str) -> String {
    let csrf = csrf_at(base, token).await;
    let zip = crate::authz::world_zip(id);
    let (kind, body) = multipart(&[("csrf", &csrf), ("world", slug)], ("w.zip", &zip));
    let resp = browser()
        .post(format!("{base}/dashboard/import"))
        .header("cookie", format!("tavern_session={token}"))
        .header("content-type", kind)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    resp.headers()["location"].to_str().unwrap().to_owned()
}

struct Site {
    server: Server,
    admin: Api,
    owner: Api,
    other: Api,
    made: u32,
    /// The OpenID provider the server signs people in with.
    _outside: crate::authz::Outside,
}

impl Site {
    async fn new() -> Self {
        let (server, admin, owner, other, provider) = community().await;
        add_key(&admin, "pool", &key_for("pagespool")).await;
        create_world(&other, &json!({"slug": OTHER_WORLD, "release": "stub"})).await;
        Site {
            server,
            admin,
            owner,
            other,
            made: 0,
            _outside: provider,
        }
    }

    fn next(&mut self) -> u32 {
        self.made += 1;
        self.made
    }

    /// A world of the owner's with data, a backup and a session.
    async fn target(&mut self) -> Target {
        let n = self.next();
        let body = json!({"slug": format!("{OWNER_WORLDS}{n}"), "release": "stub"});
        owners_target(&self.server, &self.owner, &body, 2 + i64::from(n)).await
    }

    fn token(&self, role: Role) -> Option<String> {
        match role {
            Role::Anonymous => None,
            Role::Other => Some(self.other.token().to_owned()),
            Role::Owner => Some(self.owner.token().to_owned()),
            Role::Admin => Some(self.server.admin_token.clone()),
        }
    }
}

/// A fresh token of `name`'s (password `<name>-password`).
async fn signed_in(site: &Site, name: &str) -> String {
    site.server
        .api(None)
        .login(name, &format!("{name}-password"))
        .await
        .token()
        .to_owned()
}

/// A client that does not follow redirects.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The CSRF token the dashboard's forms carry for this session.
async fn csrf(site: &Site, token: &str) -> String {
    csrf_at(&site.server.url, token).await
}

/// The CSRF token the dashboard at `base` gives the session `token`.
pub(crate) async fn csrf_at(base: &str, token: &str) -> String {
    let page = browser()
        .get(format!("{base}/dashboard/new"))
        .header("cookie", format!("tavern_session={token}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf field");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_answers_each_caller_as_it_should_and_leaks_nothing() {
    let mut site = Site::new().await;
    let shared = site.target().await;
    let mut failures = Vec::new();
    for (method, template, access, form) in PAGES {
        for role in [Role::Anonymous, Role::Other, Role::Owner, Role::Admin] {
            let fresh;
            let t = if *method == "GET" {
                &shared
            } else {
                fresh = site.target().await;
                &fresh
            };
            let n = site.next();
            let (s, invite) = site
                .admin
                .post("/api/v1/invites", &json!({"role": "gm"}))
                .await;
            assert_eq!(s, 201, "{invite}");
            let date = (jiff::Timestamp::now()
                + jiff::SignedDuration::from_hours(24 * 50 + 24 * i64::from(n)))
            .strftime("%Y-%m-%d")
            .to_string();
            // A key of its own for what changes or retires one.
            let license = if template.contains("{license}") {
                add_key(
                    &site.admin,
                    &format!("k{n}"),
                    &key_for(&format!("pagekey{n}")),
                )
                .await
            } else {
                String::new()
            };
            let key = key_for(&format!("addedkey{n}"));
            // One upload is held per user: a fresh one for each call.
            let held = if template.contains("{held}") {
                held_import(&site, &t.slug, n).await
            } else {
                String::new()
            };
            let fill = |s: &str| {
                s.replace("{slug}", &t.slug)
                    .replace("{license}", &license)
                    .replace("{key}", &key)
                    .replace("{backup}", &t.backup)
                    .replace("{session}", &t.session)
                    .replace("{code}", invite["code"].as_str().unwrap())
                    .replace("{invite}", invite["id"].as_str().unwrap())
                    .replace("{user}", OWNER)
                    .replace("{n}", &n.to_string())
                    .replace("{date}", &date)
                    .replace("{held}", &held)
            };
            let path = fill(template);
            // Signing out ends the session it is sent with: a fresh one.
            let token = match (*template, role) {
                ("/auth/logout", Role::Owner) => Some(signed_in(&site, OWNER).await),
                ("/auth/logout", Role::Other) => Some(signed_in(&site, OTHER).await),
                ("/auth/logout", Role::Admin) => Some(signed_in(&site, "warden").await),
                _ => site.token(role),
            };
            let mut request = browser().request(
                method.parse().unwrap(),
                format!("{}{path}", site.server.url),
            );
            if let Some(t) = &token {
                request = request.header("cookie", format!("tavern_session={t}"));
            }
            if *method == "POST"
                && let Some(fields) = form.strip_prefix("multipart:")
            {
                let csrf = match &token {
                    Some(t) => csrf(&site, t).await,
                    None => "0".repeat(64),
                };
                let fields = fill(fields);
                let mut all = vec![("csrf", csrf.as_str())];
                all.extend(fields.split('&').filter_map(|f| f.split_once('=')));
                let zip = crate::authz::world_zip(&format!("sent-{n}"));
                let (kind, body) = multipart(&all, ("w.zip", &zip));
                request = request.header("content-type", kind).body(body);
            } else if *method == "POST" {
                let csrf = match &token {
                    Some(t) => csrf(&site, t).await,
                    None => "0".repeat(64),
                };
                let mut body = format!("csrf={csrf}");
                if !form.is_empty() {
                    body.push('&');
                    body.push_str(&fill(form));
                }
                request = request
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body);
            }
            let actor = match role {
                Role::Other => Some(OTHER),
                Role::Owner => Some(OWNER),
                _ => None,
            };
            let before = match actor {
                Some(a) => acts_of(&site.admin, a).await,
                None => 0,
            };
            let resp = request.send().await.unwrap();
            let status = resp.status().as_u16();
            let location = resp
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let flash = resp
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join("\n");
            let text = format!("{}\n{flash}", resp.text().await.unwrap());
            // What each caller must get: a page (or a form's redirect), a
            // redirect to sign in, 404 or 403.
            // Refused: nobody is sent to sign in (401 for what a script
            // fetches); a game master finds neither another's world nor the
            // admins' pages (404); a refused form goes back with its flash
            // message and does nothing.
            let refused = match (access, role) {
                (Access::Public, _) => false,
                (Access::SignInForm, _) => true,
                (_, Role::Anonymous) => true,
                (Access::Admin, Role::Admin) => false,
                (Access::Admin, _) => true,
                (Access::Owner, Role::Other) => true,
                _ => false,
            };
            let ok = match (refused, role, *method) {
                (true, _, _) if matches!(access, Access::SignInForm) => status == 403,
                // (Signing out ends on the sign-in page.)
                (false, _, _) => {
                    (200..400).contains(&status)
                        && (!location.starts_with("/auth/login") || *template == "/auth/logout")
                }
                (true, Role::Anonymous, _) => {
                    (status == 303 && location.starts_with("/auth/login")) || status == 401
                }
                (true, _, "GET") => status == 404,
                (true, _, _) => matches!(status, 303 | 403 | 404),
            };
            if !ok {
                failures.push(format!(
                    "{method} {template} ({access:?}) as {role:?}: {status} {location}"
                ));
                continue;
            }
            if let (true, Some(a)) = (refused, actor)
                && acts_of(&site.admin, a).await != before
            {
                failures.push(format!(
                    "{method} {template} as {role:?} was refused but did something"
                ));
            }
            let forbidden: &[&str] = match role {
                Role::Owner => &[OTHER, OTHER_WORLD],
                Role::Other => &[OWNER, OWNER_WORLDS],
                _ => &[],
            };
            for word in forbidden {
                // A refusal may repeat what was asked for, never whose it is.
                let shown = !refused || *word == OWNER || *word == OTHER;
                if shown && text.contains(word) {
                    failures.push(format!("{method} {template} as {role:?} shows {word:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every route the dashboard's source declares has its place in `PAGES`.
#[test]
fn every_route_of_the_dashboard_is_in_the_list() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tavern-http/src/dashboard");
    let mut declared = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        // Each `.route("PATH", METHODS)`, however rustfmt wrapped it.
        let flat: String = source.chars().filter(|c| !c.is_whitespace()).collect();
        for piece in flat.split(".route(\"").skip(1) {
            let path = &piece[..piece.find('"').unwrap()];
            let end = [piece.find("))"), piece.find(",)")]
                .into_iter()
                .flatten()
                .min()
                .unwrap();
            let methods = &piece[..end];
            for (call, method) in [("get(", "GET"), ("post(", "POST")] {
                if methods.contains(call) {
                    declared.push((method, path.to_owned()));
                }
            }
        }
    }
    assert!(declared.len() >= 30, "{declared:?}");
    for (method, path) in &declared {
        let listed = PAGES.iter().any(|(m, p, _, _)| {
            m == method
                && p.split('?')
                    .next()
                    .unwrap_or(p)
                    .replace("{backup}", "{id}")
                    .replace("{session}", "{id}")
                    .replace("{invite}", "{id}")
                    .replace("{license}", "{id}")
                    .replace("{held}", "{id}")
                    .replace("{user}", "{name}")
                    .replace("/sso/oidc", "/sso/{provider}")
                    .replace("/sso/discord", "/sso/{provider}")
                    == *path
        });
        assert!(listed, "{method} {path} is not in PAGES");
    }
}
