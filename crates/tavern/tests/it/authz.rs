//! The attacker's view of the API, generated from the OpenAPI document:
//! every operation, called by nobody, by another game master, by the owner
//! of what it names and by an admin, answers as its `x-tavern-access` says
//! (401 without a token; another game master's things do not exist for a
//! game master, 404; an admin's operations are refused to game masters,
//! 403); a refusal changes nothing; and no answer a game master receives
//! names another game master, their worlds or any key's text. A new
//! operation without a recipe here fails the test.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use tavern_sso::testing::discord::StandIn;
use tavern_sso::testing::provider::Provider;

use crate::support::*;

/// The game master whose things every call names.
pub(crate) const OWNER: &str = "olive";
/// The other game master, who must not reach them.
pub(crate) const OTHER: &str = "mallory";
/// The other game master's own world: the owner must never read of it.
pub(crate) const OTHER_WORLD: &str = "tower";
/// Every world of the owner's is named `keep-N`.
pub(crate) const OWNER_WORLDS: &str = "keep-";

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Anonymous,
    Other,
    Owner,
    Admin,
}

struct World {
    _outside: Outside,
    server: Server,
    admin: Api,
    owner: Api,
    other: Api,
    pool: String,
    /// Every key's text, to look for in answers.
    keys: Vec<String>,
    made: u32,
}

impl World {
    fn next(&mut self) -> u32 {
        self.made += 1;
        self.made
    }

    fn api(&self, role: Role) -> Api {
        match role {
            Role::Anonymous => self.server.api(None),
            Role::Other => self.server.api(Some(self.other.token())),
            Role::Owner => self.server.api(Some(self.owner.token())),
            Role::Admin => self.server.api(Some(&self.server.admin_token)),
        }
    }

    /// A key of its own (made by the admin; pinned to `owner` if given).
    async fn key(&mut self, owner: Option<&str>) -> String {
        let n = self.next();
        let text = key_for(&format!("authzkey{n}"));
        let (s, b) = self
            .admin
            .post(
                "/api/v1/licenses",
                &json!({"label": format!("key {n}"), "key": text, "owner": owner}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        self.keys.push(text);
        b["id"].as_str().unwrap().to_owned()
    }

    /// A fresh world of the owner's, with data, a backup and a session.
    async fn target(&mut self) -> Target {
        let key = self.key(Some(OWNER)).await;
        let n = self.next();
        let slug = format!("{OWNER_WORLDS}{n}");
        let body = json!({"slug": slug, "release": "stub", "license": key});
        owners_target(&self.server, &self.owner, &body, i64::from(n)).await
    }

    async fn invite(&self) -> Value {
        let (s, b) = self
            .admin
            .post("/api/v1/invites", &json!({"role": "gm"}))
            .await;
        assert_eq!(s, 201, "{b}");
        b
    }
}

/// A server with the two game masters and an admin who signs in with a
/// password (`warden`), and clients for the admin and each game master.
/// Manual backups are not spaced out: every target takes one.
/// A community: its server (signing in with an OpenID provider too, which
/// is the last of what it answers), an admin and the two game masters.
/// The outside sign-in providers a community's server uses, stopped when
/// dropped.
pub(crate) struct Outside {
    _provider: Provider,
    _discord: StandIn,
}

pub(crate) async fn community() -> (Server, Api, Api, Api, Outside) {
    let provider =
        Provider::start().expect("oidc-provider-mock is installed (bash .ci/run installs it)");
    let discord = StandIn::start("1234567890", "discord-secret", "").await;
    let server = Server::start_with_env(
        &[],
        &[
            ("TAVERN_BACKUPS_MANUAL_INTERVAL_MINUTES", "0"),
            // Backups as snapshots: what an attacker meets is read out of
            // repositories, and moving archives there is an operation too.
            ("TAVERN_BACKUPS_FORMAT", "repository"),
            ("TAVERN_AUTH_OIDC_ISSUER", &provider.issuer),
            ("TAVERN_AUTH_OIDC_CLIENT_ID", "tavern"),
            ("TAVERN_AUTH_DISCORD_CLIENT_ID", "1234567890"),
            ("TAVERN_AUTH_DISCORD_CLIENT_SECRET", "discord-secret"),
            ("TAVERN_AUTH_DISCORD_BASE_URL", &discord.base_url),
        ],
    );
    let provider = Outside {
        _provider: provider,
        _discord: discord,
    };
    let admin = server.api(Some(&server.admin_token));
    for name in [OWNER, OTHER] {
        admin
            .create_user(name, "gm", &format!("{name}-password"))
            .await;
    }
    // An admin who signs in (and out) with a password.
    admin
        .create_user("warden", "admin", "warden-password")
        .await;
    let owner = admin.login(OWNER, "olive-password").await;
    let other = admin.login(OTHER, "mallory-password").await;
    (server, admin, owner, other, provider)
}

async fn world() -> World {
    let (server, admin, owner, other, provider) = community().await;
    let mut w = World {
        _outside: provider,
        server,
        admin,
        owner,
        other,
        pool: String::new(),
        keys: Vec::new(),
        made: 0,
    };
    w.pool = w.key(None).await;
    let own = w.key(Some(OTHER)).await;
    create_world(
        &w.other,
        &json!({"slug": OTHER_WORLD, "release": "stub", "license": own}),
    )
    .await;
    w
}

/// One call: method, path, body (JSON, a form for Ko-fi, or bytes of a
/// content type: a release's zip, an import's archive).
struct Call {
    method: String,
    path: String,
    body: Option<Value>,
    form: bool,
    raw: Option<(&'static str, Vec<u8>)>,
}

/// A zip of one Foundry world, `id`, as worlds are exported.
pub(crate) fn world_zip(id: &str) -> Vec<u8> {
    use std::io::Write as _;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    w.start_file(format!("{id}/world.json"), opts).unwrap();
    let manifest = json!({"id": id, "title": id, "system": "dnd5e", "coreVersion": "13.351"});
    w.write_all(manifest.to_string().as_bytes()).unwrap();
    w.start_file(format!("{id}/data/actors/000005.ldb"), opts)
        .unwrap();
    w.write_all(&[5u8; 64]).unwrap();
    w.finish().unwrap().into_inner()
}

/// How to call `op` on `t` (a fresh target when it changes things).
async fn recipe(
    w: &mut World,
    op: &str,
    method: &str,
    template: &str,
    t: &Target,
    role: Role,
) -> Call {
    let n = w.next();
    let mut path = template
        .replace("{slug}", &t.slug)
        .replace("{username}", OWNER)
        .replace("{kind}", "module")
        .replace("{version}", "1.0")
        .replace("{provider}", "oidc");
    if path.contains("{id}") {
        let id = match op {
            "show_backup" | "delete_backup" | "update_backup" | "download_backup"
            | "backup_link" | "restore_backup" => t.backup.clone(),
            "cancel_session" => t.session.clone(),
            "activate_license" => w.pool.clone(),
            "remove_license" | "update_license" => w.key(None).await,
            "revoke_invite" => w.invite().await["id"].as_str().unwrap().to_owned(),
            // Nothing of that number or name exists on this server.
            "package_job" => "1".to_owned(),
            "remove_package" | "remove_world_package" => "none".to_owned(),
            other => panic!("no id for {other}: add it to authz.rs"),
        };
        path = path.replace("{id}", &id);
    }
    if path.contains("{code}") {
        let code = w.invite().await["code"].as_str().unwrap().to_owned();
        path = path.replace("{code}", &code);
    }
    let start = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 40 + i64::from(n)))
        .strftime("%Y-%m-%dT%H:00:00Z")
        .to_string();
    let body = match op {
        // Each signs in as themselves (nobody: as the owner).
        "login" if role == Role::Other => {
            Some(json!({"username": OTHER, "password": "mallory-password"}))
        }
        "login" => Some(json!({"username": OWNER, "password": "olive-password"})),
        "create_user" => {
            Some(json!({"username": format!("new-{n}"), "role": "gm", "password": "new-password"}))
        }
        "update_user" => Some(json!({"webhook_url": "https://discord.example/api/webhooks/1/x"})),
        "create_instance" => Some(json!({"slug": format!("new-{n}"), "release": "stub"})),
        "update_instance" => Some(json!({"idle_timeout_minutes": 45})),
        "add_license" => {
            Some(json!({"label": format!("added {n}"), "key": key_for(&format!("addedkey{n}"))}))
        }
        "activate_license" => Some(json!({"instance": t.slug, "force": true})),
        "update_license" => Some(json!({"label": format!("renamed {n}"), "owner": OWNER})),
        "create_session" => {
            Some(json!({"instance": t.slug, "start": start, "duration_minutes": 60}))
        }
        "update_backup" => Some(json!({"locked": true})),
        "restore_backup" => Some(json!({})),
        "create_invite" => Some(json!({"role": "gm"})),
        "accept_invite" => {
            Some(json!({"username": format!("joiner-{n}"), "password": "joiner-password"}))
        }
        "discord" => Some(json!({"type": 1})),
        // Each redeems a code approved in their own session (nobody: the
        // owner's).
        "cli_code" => {
            let token = match role {
                Role::Anonymous | Role::Owner => w.owner.token().to_owned(),
                Role::Other => w.other.token().to_owned(),
                Role::Admin => w.server.admin_token.clone(),
            };
            let verifier = tavern_core::auth::random_secret();
            let code = crate::cli_sso::approved_code(&w.server.url, &token, &verifier).await;
            Some(json!({"code": code, "verifier": verifier}))
        }
        "add_release" => Some(json!({})),
        "import_world" => Some(json!({})),
        // A folder with no volumes in it: an empty batch.
        "import_felddy" => {
            let empty = w.server.home().join(format!("felddy-{n}"));
            std::fs::create_dir_all(&empty).unwrap();
            Some(json!({"path": empty, "check": true}))
        }
        "kofi" => Some(json!({"data": "{}"})),
        // A manifest nobody serves (loopback's discard port).
        "add_package" => Some(json!({"manifest_url": "http://127.0.0.1:9/module.json"})),
        "update_packages" => Some(json!({})),
        "add_world_package" => Some(json!({"id": "none"})),
        _ if method == "GET" || method == "DELETE" => None,
        "logout" | "link_code" | "create_backup" | "backup_link" | "start_instance"
        | "stop_instance" | "start_migration" => None,
        "begin_second_factor" => Some(json!({})),
        // A code that is not the app's (a one-in-a-million guess).
        "confirm_second_factor" | "new_recovery_codes" | "remove_second_factor" => {
            Some(json!({"code": "000000"}))
        }
        other => panic!("no body for {other}: add it to authz.rs"),
    };
    Call {
        method: method.to_owned(),
        path,
        form: op == "kofi",
        raw: match op {
            "add_release" => Some(("application/zip", b"not a zip".to_vec())),
            "import_world" => Some(("application/zip", world_zip(&format!("imported-{n}")))),
            _ => None,
        },
        body,
    }
}

/// The status an allowed caller gets where it is not a success (nothing
/// to succeed with on this server).
fn allowed_status(op: &str, role: Role) -> Option<u16> {
    match (op, role) {
        // The bootstrap admin signs in without a password: no second
        // factor to set up, none started.
        ("begin_second_factor" | "confirm_second_factor", Role::Admin) => Some(409),
        // Started (by begin_second_factor, just before), but not its code.
        ("confirm_second_factor", _) => Some(401),
        // Nobody has a confirmed second factor, or a linked account.
        (
            "new_recovery_codes"
            | "remove_second_factor"
            | "unlink_account"
            | "unlink_users_account",
            _,
        ) => Some(404),
        _ => allowed_status_of(op),
    }
}

fn allowed_status_of(op: &str) -> Option<u16> {
    match op {
        // Not a Kubernetes world.
        "instance_manifests" => Some(409),
        // No Ko-fi token, no Discord bot configured.
        "kofi" => Some(404),
        // No signature.
        "discord" => Some(401),
        // Not a zip.
        "add_release" => Some(422),
        // No such manifest, fetch, package, or choice: the library is empty.
        "add_package" | "remove_world_package" => Some(422),
        "package_job" | "remove_package" | "add_world_package" => Some(404),
        _ => None,
    }
}

/// What `role` must get from an operation of this access.
fn expected(access: &str, op: &str, role: Role) -> Result<(), u16> {
    let success = || allowed_status(op, role).map_or(Ok(()), Err);
    match (access, role) {
        ("public", _) => success(),
        (_, Role::Anonymous) => Err(401),
        ("admin", Role::Admin) => success(),
        ("admin", _) => Err(403),
        ("owner", Role::Other) => Err(404),
        ("self", Role::Other) => Err(403),
        _ => success(),
    }
}

async fn send(api: &Api, call: &Call) -> Answer {
    if let Some((content_type, bytes)) = &call.raw {
        return api
            .send(&call.method, &call.path, Some(content_type), bytes.clone())
            .await;
    }
    match (&call.body, call.form) {
        (Some(v), true) => {
            let data = v["data"].as_str().unwrap();
            api.send(
                &call.method,
                &call.path,
                Some("application/x-www-form-urlencoded"),
                format!("data={data}").into_bytes(),
            )
            .await
        }
        (Some(v), false) => {
            api.send(
                &call.method,
                &call.path,
                Some("application/json"),
                v.to_string().into_bytes(),
            )
            .await
        }
        (None, _) => api.send(&call.method, &call.path, None, Vec::new()).await,
    }
}

/// What a game master must never read in an answer: the other game
/// master's name and worlds, and any key's text (or most of it).
fn forbidden_words(w: &World, role: Role) -> Vec<String> {
    let mut words: Vec<String> = match role {
        Role::Owner => vec![OTHER.into(), OTHER_WORLD.into()],
        Role::Other => vec![OWNER.into(), OWNER_WORLDS.into()],
        _ => return Vec::new(),
    };
    for k in &w.keys {
        words.push(k.clone());
        words.push(k[..12].to_owned());
        words.push(k[12..].to_owned());
    }
    words
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_answers_each_caller_as_documented_and_leaks_nothing() {
    let mut w = world().await;
    let (s, doc) = w.server.api(None).get("/api/v1/openapi.json").await;
    assert_eq!(s, 200);
    let mut ops: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap().to_owned();
            let access = op["x-tavern-access"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} has no x-tavern-access"))
                .to_owned();
            ops.insert(id, (method.to_uppercase(), path.clone(), access));
        }
    }
    assert!(ops.len() >= 40, "{} operations", ops.len());
    let shared = w.target().await;
    let mut failures = Vec::new();
    for (id, (method, path, access)) in &ops {
        for role in [Role::Anonymous, Role::Other, Role::Owner, Role::Admin] {
            // A call that may change things gets a target of its own.
            let fresh;
            let t = if method == "GET" {
                &shared
            } else {
                fresh = w.target().await;
                &fresh
            };
            let call = recipe(&mut w, id, method, path, t, role).await;
            // Signing out ends the token it is sent with: a fresh one.
            let api = match (id.as_str(), role) {
                ("logout", Role::Owner) => w.server.api(None).login(OWNER, "olive-password").await,
                ("logout", Role::Other) => {
                    w.server.api(None).login(OTHER, "mallory-password").await
                }
                ("logout", Role::Admin) => {
                    w.server.api(None).login("warden", "warden-password").await
                }
                _ => w.api(role),
            };
            let actor = match role {
                Role::Other => Some(OTHER),
                Role::Owner => Some(OWNER),
                _ => None,
            };
            let before = match actor {
                Some(name) => acts_of(&w.admin, name).await,
                None => 0,
            };
            let (status, body) = send(&api, &call).await;
            let want = expected(access, id, role);
            let ok = match want {
                Ok(()) => (200..300).contains(&status),
                Err(code) => status == code,
            };
            if !ok {
                failures.push(format!(
                    "{id} ({access}) as {role:?}: {status}, wanted {want:?}: {body}"
                ));
                continue;
            }
            // A refusal does nothing in the caller's name (every change
            // is recorded with its actor in the audit log).
            if let (Err(_), Some(name)) = (want, actor)
                && acts_of(&w.admin, name).await != before
            {
                failures.push(format!("{id} as {role:?} was refused but did something"));
            }
            let text = body.to_string();
            for word in forbidden_words(&w, role) {
                // A refusal may repeat what was asked for, never whose it is.
                let shown = (200..300).contains(&status) || word == OWNER || word == OTHER;
                if shown && text.contains(&word) {
                    failures.push(format!("{id} as {role:?} answered with {word:?}: {text}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every operation that takes a body answers one too large (413) or
/// malformed (4xx) with the JSON error shape, whoever sends it.
#[tokio::test(flavor = "multi_thread")]
async fn every_bad_body_gets_the_json_error_shape() {
    let server = Server::start();
    let (s, doc) = server.api(None).get("/api/v1/openapi.json").await;
    assert_eq!(s, 200);
    let admin = server.api(Some(&server.admin_token));
    let too_large = vec![b'a'; 2 * 1024 * 1024];
    let mut failures = Vec::new();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(content) = op["requestBody"]["content"].as_object() else {
                continue;
            };
            let path = path
                .replace("{slug}", "some-world")
                .replace("{username}", "someone")
                .replace("{id}", "01a23566-d7a7-7063-b1e1-f7ecce226d29")
                .replace("{code}", "no-such-code");
            for content_type in content.keys() {
                let malformed: &[u8] = if content_type.contains("json") {
                    b"{\"unclosed"
                } else {
                    b"data=%zz%"
                };
                for (what, body) in [
                    ("too large", too_large.clone()),
                    ("malformed", malformed.to_vec()),
                ] {
                    // A release's zip may be 2 GiB and an import 200 GiB:
                    // too large is what they declare
                    // (releases::release_add_installs_…); a malformed
                    // archive is still a clear 4xx.
                    let archive = !content_type.contains("json") && !content_type.contains("form");
                    if what == "too large" && archive {
                        continue;
                    }
                    checked += 1;
                    let (status, answer) = admin
                        .send(&method.to_uppercase(), &path, Some(content_type), body)
                        .await;
                    let shaped = answer["error"]["code"].is_string()
                        && answer["error"]["message"].is_string();
                    let right = match what {
                        "too large" => status == 413,
                        _ => (400..500).contains(&status),
                    };
                    if !(shaped && right) {
                        failures.push(format!("{method} {path} {what}: {status} {answer}"));
                    }
                }
            }
        }
    }
    assert!(checked >= 28, "only {checked} bodies checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
