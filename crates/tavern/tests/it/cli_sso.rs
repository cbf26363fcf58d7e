//! `tavern login --sso` through the real binary: the client waits on a
//! loopback port, the person approves on the dashboard (after signing in
//! there in any way), and the browser hands the client a code that only it
//! can redeem; saying no, or another program knocking at the port, signs
//! nothing in.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::Path;
use std::process::{Child, ChildStderr, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tavern_sso::testing::query_param;

use crate::pages::csrf_at;
use crate::second_factor::logins_of;
use crate::support::*;

/// `tavern login --sso` waiting for the browser, stopped by its pid when
/// dropped.
pub(crate) struct SsoLogin {
    child: Child,
    stderr: BufReader<ChildStderr>,
    /// The address it asks the person to open.
    pub url: String,
}

impl SsoLogin {
    /// Started with its own `home` against `server`, opening no browser.
    pub fn start(home: &Path, server: &str) -> Self {
        let mut c = tavern(home);
        c.args(["login", "--sso", "--no-browser", "--server", server])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let url = loop {
            line.clear();
            assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "no address");
            if let Some(at) = line.find("http") {
                break line[at..].trim().to_owned();
            }
        };
        SsoLogin { child, stderr, url }
    }

    /// The query parameter `name` of the address.
    pub fn param(&self, name: &str) -> String {
        query_param(&self.url, name).unwrap()
    }

    /// Whether it is still waiting.
    pub fn waiting(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// How it ended: whether it succeeded, what it printed, and what it
    /// said on standard error.
    pub fn finish(mut self) -> (bool, String, String) {
        let status = wait_bounded(&mut self.child, Duration::from_secs(30));
        let (mut out, mut err) = (String::new(), String::new());
        let stdout = self.child.stdout.as_mut().unwrap();
        stdout.read_to_string(&mut out).unwrap();
        self.stderr.read_to_string(&mut err).unwrap();
        (status.success(), out, err)
    }
}

impl Drop for SsoLogin {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Approving (`decision` = `approve`) or refusing at `/auth/cli` of the
/// dashboard at `base`, as the session `token`, for a client's `port`,
/// `state` and `challenge`: the answer.
pub(crate) async fn decide_at(
    base: &str,
    token: &str,
    decision: &str,
    client: [(&str, String); 3],
) -> reqwest::Response {
    let csrf = csrf_at(base, token).await;
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("csrf", &csrf)
        .append_pair("decision", decision)
        .extend_pairs(client);
    no_redirects()
        .post(format!("{base}/auth/cli"))
        .header("cookie", format!("tavern_session={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.finish())
        .send()
        .await
        .unwrap()
}

/// The code approving a client that made `verifier` gives it, as the
/// session `token`.
pub(crate) async fn approved_code(base: &str, token: &str, verifier: &str) -> String {
    let challenge = tavern_core::cli_sign_in::challenge_of(verifier);
    let client = [
        ("port", "9".to_owned()),
        ("state", "state-of-a-test".to_owned()),
        ("challenge", challenge),
    ];
    let r = decide_at(base, token, "approve", client).await;
    assert_eq!(r.status(), 303);
    query_param(&location(&r), "code").expect("a code")
}

/// [`decide_at`] for `cli`, with its fields but those in `changed`.
async fn decide(
    server: &Server,
    token: &str,
    cli: &SsoLogin,
    decision: &str,
    changed: &[(&str, &str)],
) -> reqwest::Response {
    let field = |name: &str| {
        changed
            .iter()
            .find(|(k, _)| *k == name)
            .map_or_else(|| cli.param(name), |(_, v)| (*v).to_owned())
    };
    let client = [
        ("port", field("port")),
        ("state", field("state")),
        ("challenge", field("challenge")),
    ];
    decide_at(&server.url, token, decision, client).await
}

/// The token `tavern login` stored in `home`.
fn stored_token(home: &Path) -> Option<String> {
    let text = std::fs::read_to_string(home.join("config/tavern/credentials.json")).ok()?;
    let creds: Value = serde_json::from_str(&text).unwrap();
    Some(creds["token"].as_str()?.to_owned())
}

/// A server with the game master `name` (password `NAME-password`) signed
/// in on the dashboard, and `tavern login --sso` waiting for them against
/// `server` + `tail`.
struct Waiting {
    server: Server,
    admin: Api,
    /// The dashboard session's token.
    session: String,
    home: tempfile::TempDir,
    cli: SsoLogin,
}

async fn waiting(name: &str, tail: &str) -> Waiting {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    let password = format!("{name}-password");
    admin.create_user(name, "gm", &password).await;
    let session = server
        .api(None)
        .login(name, &password)
        .await
        .token()
        .to_owned();
    let home = tempfile::tempdir().unwrap();
    let cli = SsoLogin::start(home.path(), &format!("{}{tail}", server.url));
    Waiting {
        server,
        admin,
        session,
        home,
        cli,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_line_signs_in_through_the_browser_and_only_its_own_answer_counts() {
    let Waiting {
        server,
        admin,
        session,
        home,
        mut cli,
    } = waiting("gwen", "/").await;
    assert!(
        cli.url
            .starts_with(&format!("{}/auth/cli?port=", server.url)),
        "{}",
        cli.url
    );
    let path = &cli.url[server.url.len()..];

    // Not signed in on the dashboard: sign in first, then back here.
    let r = no_redirects().get(&cli.url).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
    assert_eq!(location(&r), format!("/auth/login?next={next}"));

    // Signed in: who the client would be, and the choice.
    let page = page_as(&server, &session, path).await;
    assert!(page.contains("<strong>gwen</strong>"), "{page}");
    assert!(page.contains("id=\"approve\"") && page.contains("id=\"deny\""));
    // An address the client did not print is refused, as is such a form.
    for bad in [
        "?port=0&state=abcdefgh",
        "?port=1234&state=x&challenge=y",
        "",
    ] {
        let r = no_redirects()
            .get(format!("{}/auth/cli{bad}", server.url))
            .header("cookie", format!("tavern_session={}", &session))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = decide(&server, &session, &cli, "approve", &[("port", "0")]).await;
    assert_eq!(r.status(), 400);

    // Another program at the client's port is not its answer.
    let port = cli.param("port");
    let forged = format!("http://127.0.0.1:{port}/callback?code=forged&state=wrong");
    let r = reqwest::get(&forged).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(cli.waiting());

    // Approved: on to the client's port with a code and its state.
    let r = decide(&server, &session, &cli, "approve", &[]).await;
    assert_eq!(r.status(), 303);
    let back = location(&r);
    assert!(
        back.starts_with(&format!("http://127.0.0.1:{port}/callback?code=")),
        "{back}"
    );
    assert_eq!(query_param(&back, "state"), Some(cli.param("state")));
    let code = query_param(&back, "code").unwrap();
    // The code alone (as a browser's history holds it) signs nobody in.
    for verifier in ["", "not-the-clients-verifier-not-the-clients-verif"] {
        let a = server
            .api(None)
            .post(
                "/api/v1/auth/cli-code",
                &json!({"code": code, "verifier": verifier}),
            )
            .await;
        assert_refused(&a, 422, "code_refused");
    }
    assert_refused(
        &server
            .api(None)
            .post(
                "/api/v1/auth/cli-code",
                &json!({"code": "not-sealed", "verifier": "v"}),
            )
            .await,
        422,
        "code_refused",
    );

    // The browser follows; the client redeems it and stores the token.
    let r = reqwest::get(&back).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Signed in."));
    let (ok, out, err) = cli.finish();
    assert!(ok, "{err}");
    assert!(out.contains("Signed in as gwen (gm)"), "{out}");
    let token = stored_token(home.path()).expect("a stored token");
    assert_eq!(whoami(&server, &token).await["username"], "gwen");
    assert!(
        logins_of(&admin, "gwen")
            .await
            .contains(&"cli, approved in the browser".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn saying_no_in_the_browser_signs_the_command_line_in_as_nobody() {
    let Waiting {
        server,
        admin,
        session,
        home,
        cli,
    } = waiting("hal", "").await;

    let r = decide(&server, &session, &cli, "deny", &[]).await;
    assert_eq!(r.status(), 303);
    let back = location(&r);
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&back, "code"), None);
    let r = reqwest::get(&back).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("cancelled"));
    let (ok, _, err) = cli.finish();
    assert!(!ok);
    assert!(err.contains("sign-in cancelled in the browser"), "{err}");
    assert_eq!(stored_token(home.path()), None);
    assert!(
        !logins_of(&admin, "hal")
            .await
            .contains(&"cli, approved in the browser".to_owned())
    );
}
