//! The proxy in front of the worlds, from outside: routing by host and by
//! path, what the world's server sees, WebSockets passed through, upload
//! limits decided before the body arrives, spoofed hosts, standby pages,
//! and route changes applied at once.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use crate::support::*;

pub(crate) fn addr(server: &Server) -> SocketAddr {
    server.url.trim_start_matches("http://").parse().unwrap()
}

/// An HTTP client that finds `<name>.localhost` (any name given) at the
/// server's address.
pub(crate) fn client(server: &Server, hosts: &[&str]) -> reqwest::Client {
    let mut b = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    for h in hosts {
        b = b.resolve(h, addr(server));
    }
    b.build().unwrap()
}

pub(crate) fn world_url(server: &Server, host: &str, path: &str) -> String {
    format!("http://{host}:{}{path}", addr(server).port())
}

/// Sends raw bytes and answers the status line of the reply.
pub(crate) async fn raw(server: &Server, request: &[u8], body_chunks: &[Vec<u8>]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr(server)).await.unwrap();
    s.write_all(request).await.unwrap();
    for chunk in body_chunks {
        // The proxy may answer and close before all is sent.
        if s.write_all(chunk).await.is_err() {
            break;
        }
    }
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("the proxy answers")
        .unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn worlds_are_reached_by_host_and_nothing_else() {
    let server = Server::start_with_env(&[], &[("TAVERN_SERVER_WORLD_BODY_LIMIT", "1000000")]);
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "k1", &key_for("proxykeyone")).await;
    add_world(&admin, "alpha", "stub").await;
    add_world(&admin, "beta", "stub").await;
    start_world(&admin, "alpha").await;
    let http = client(
        &server,
        &[
            "alpha.localhost",
            "beta.localhost",
            "nobody.localhost",
            "alpha.localhost.evil",
            "localhost",
        ],
    );

    // The world answers at its host (as soon as the route is published).
    let status_url = world_url(&server, "alpha.localhost", "/api/status");
    wait_until("alpha answers through the proxy", || async {
        http.get(&status_url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let status: Value = http
        .get(&status_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["active"], true, "{status}");

    // What the world's server sees: our X-Forwarded-*, never the client's.
    let seen: Value = http
        .post(world_url(&server, "alpha.localhost", "/_stub/echo?x=1"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil.example")
        .body(vec![7u8; 900_000])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let h = &seen["headers"];
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{seen}");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(
        h["x-forwarded-host"],
        format!("alpha.localhost:{}", addr(&server).port())
    );
    assert_eq!(seen["path"], "/_stub/echo");
    assert_eq!(seen["bytes"], 900_000, "the body arrives whole, streamed");

    // A world that is not running: its standby page. Unknown and spoofed
    // hosts: a plain 404.
    let beta = http
        .get(world_url(&server, "beta.localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(beta.status(), 503);
    let page = beta.text().await.unwrap();
    assert!(
        page.contains("beta") && page.contains(">sleeping<"),
        "{page}"
    );
    for host in ["nobody.localhost", "alpha.localhost.evil"] {
        let r = http
            .get(world_url(&server, host, "/api/status"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{host}");
        assert!(!r.text().await.unwrap().contains("active"), "{host}");
    }
    // The bare domain serves the API.
    let r = http
        .get(world_url(&server, "localhost", "/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Uploads beyond the limit: 413, decided from Content-Length before
    // the body is sent; a chunked body that grows too large is cut off too.
    let head =
        b"POST /_stub/echo HTTP/1.1\r\nHost: alpha.localhost\r\nContent-Length: 5000000\r\n\r\n";
    let line = raw(&server, head, &[]).await;
    assert!(line.starts_with("HTTP/1.1 413"), "{line}");
    let head =
        b"POST /_stub/echo HTTP/1.1\r\nHost: alpha.localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunk = {
        let mut c = format!("{:x}\r\n", 100_000).into_bytes();
        c.extend(vec![b'x'; 100_000]);
        c.extend(b"\r\n");
        c
    };
    let mut chunks = vec![chunk; 15];
    chunks.push(b"0\r\n\r\n".to_vec());
    let line = raw(&server, head, &chunks).await;
    assert!(line.starts_with("HTTP/1.1 413"), "{line}");

    // WebSockets pass through: the stand-in echoes and counts the player.
    let port = addr(&server).port();
    let req = format!("ws://alpha.localhost:{port}/socket.io/?EIO=4&transport=websocket")
        .into_client_request()
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr(&server)).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    ws.send(Message::text("hello through the proxy"))
        .await
        .unwrap();
    let back = loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Text(t) if t.as_str() == "hello through the proxy" => break t,
            _ => {}
        }
    };
    assert_eq!(back.as_str(), "hello through the proxy");
    wait_until("the player and the open tab are seen", || async {
        let w = admin.get("/api/v1/instances/alpha").await.1;
        w["players"] == 1 && w["sockets"] == 1
    })
    .await;
    // The same counts for Prometheus, for admins only.
    let scrape = |token: Option<String>| {
        let mut r = reqwest::Client::new().get(format!("{}/metrics", server.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let resp = r.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let (status, text) = scrape(Some(server.admin_token.clone())).await;
    assert_eq!(status, 200, "{text}");
    for line in [
        "tavern_world_players{world=\"alpha\"} 1",
        "tavern_world_sockets{world=\"alpha\"} 1",
        "tavern_world_up{world=\"alpha\"} 1",
        "tavern_world_up{world=\"beta\"} 0",
        "tavern_licenses{state=\"in_use\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert_eq!(scrape(None).await.0, 401);
    admin.create_user("gina", "gm", "gina-password-1").await;
    let gina = admin.login("gina", "gina-password-1").await;
    assert_eq!(scrape(Some(gina.token().to_owned())).await.0, 403);
    drop(ws);
    wait_until("the tab is closed", || async {
        admin.get("/api/v1/instances/alpha").await.1["sockets"] == 0
    })
    .await;

    // Route changes apply at once: stopped, the host shows the standby page.
    let (s, _) = admin.post("/api/v1/instances/alpha/stop", &json!({})).await;
    assert_eq!(s, 202);
    wait_for_state(&admin, "alpha", "stopped").await;
    wait_until("alpha's host shows its standby page", || async {
        http.get(&status_url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 503)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn worlds_are_reached_by_path_with_their_route_prefix() {
    let server = Server::start_with_env(&[], &[("TAVERN_SERVER_ROUTING", "path")]);
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "k1", &key_for("pathkeyone")).await;
    let created = add_world(&admin, "gamma", "stub").await;
    assert_eq!(
        created["url"],
        format!("http://localhost:{}/gamma/", addr(&server).port())
    );
    start_world(&admin, "gamma").await;
    let http = client(&server, &[]);
    let url = format!("{}/gamma/api/status", server.url);
    wait_until("gamma answers under its path", || async {
        http.get(&url).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    let options: Value = http
        .get(format!("{}/gamma/_stub/config", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(options["routePrefix"], "gamma", "{options}");
    // The API keeps its paths.
    let (s, _) = admin.get("/api/v1/instances").await;
    assert_eq!(s, 200);
}

/// The `tavern_session=…` pair of a Set-Cookie answer.
fn session_cookie(resp: &reqwest::Response) -> String {
    let set = resp
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    // Browsers refuse `Domain=localhost`: the cookie is the host's own.
    assert!(
        !set.contains("Domain=") && set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_owner_signs_in_on_the_standby_page_and_the_visit_wakes_the_world() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "k1", &key_for("wakekeyone")).await;
    admin.create_user("alice", "gm", "alice-password-1").await;
    admin.create_user("bob", "gm", "bob-password-1").await;
    let (s, b) = admin
        .post(
            "/api/v1/instances",
            &json!({"slug": "delta", "owner": "alice", "release": "stub"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let http = client(&server, &["delta.localhost"]);
    let page_url = world_url(&server, "delta.localhost", "/");
    // The route table knows the world once the reconciler has looked.
    wait_until("delta has a standby page", || async {
        http.get(&page_url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 503)
    })
    .await;

    // Nobody signed in: the page, a sign-in form, no Start button.
    let page = http
        .get(&page_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("delta") && page.contains(">sleeping<"),
        "{page}"
    );
    assert!(
        page.contains("/_tavern/login") && !page.contains("/_tavern/start"),
        "{page}"
    );

    let login = |user: &'static str, password: &'static str| {
        let http = http.clone();
        let url = world_url(&server, "delta.localhost", "/_tavern/login");
        async move {
            http.post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("username={user}&password={password}"))
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = login("alice", "not-her-password").await;
    assert_eq!(wrong.status(), 303);
    let back = wrong.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(back, "/?note=signin_failed");
    let page = http
        .get(world_url(&server, "delta.localhost", &back))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Wrong username or password"), "{page}");

    // The world's sign-in has the API's limits: a name guessed at again
    // and again from one address has to wait.
    let mut back = String::new();
    for _ in 0..5 {
        let guess = login("nobody", "a-guess").await;
        back = guess.headers()["location"].to_str().unwrap().to_owned();
    }
    assert_eq!(back, "/?note=rate_limited");

    // Another game master's visit neither shows a Start button nor wakes it.
    let bob = session_cookie(&login("bob", "bob-password-1").await);
    let page = http
        .get(&page_url)
        .header("cookie", &bob)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("/_tavern/start") && !page.contains("/_tavern/login"),
        "{page}"
    );
    assert_eq!(
        admin.get("/api/v1/instances/delta").await.1["desired_state"],
        "stopped"
    );

    // The owner's visit wakes it; the same address then serves the world.
    let ok = login("alice", "alice-password-1").await;
    assert_eq!(ok.status(), 303);
    let alice = session_cookie(&ok);
    let page = http
        .get(&page_url)
        .header("cookie", &alice)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(">starting<") && page.contains("refresh") && page.contains("Starting for"),
        "{page}"
    );
    wait_for_state(&admin, "delta", "running").await;
    let status_url = world_url(&server, "delta.localhost", "/api/status");
    wait_until("the world answers at its address", || async {
        http.get(&status_url)
            .header("cookie", &alice)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    // Stopped again, the Start button starts it; a foreign form is refused.
    let (s, _) = admin.post("/api/v1/instances/delta/stop", &json!({})).await;
    assert_eq!(s, 202);
    wait_for_state(&admin, "delta", "stopped").await;
    let start_url = world_url(&server, "delta.localhost", "/_tavern/start");
    let foreign = http
        .post(&start_url)
        .header("cookie", &alice)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    assert_eq!(
        admin.get("/api/v1/instances/delta").await.1["desired_state"],
        "stopped"
    );
    let started = http
        .post(&start_url)
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 303);
    wait_for_state(&admin, "delta", "running").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_wake_on_visit_anyone_a_visit_wakes_the_world() {
    let server = Server::start_with_env(&[], &[("TAVERN_IDLE_WAKE_ON_VISIT", "anyone")]);
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "k1", &key_for("anyonekey")).await;
    add_world(&admin, "open", "stub").await;
    let http = client(&server, &["open.localhost"]);
    let page_url = world_url(&server, "open.localhost", "/");
    wait_until("the visit wakes it", || async {
        let _ = http.get(&page_url).send().await;
        admin.get("/api/v1/instances/open").await.1["desired_state"] == "running"
    })
    .await;
    wait_for_state(&admin, "open", "running").await;
    let (_, events) = admin.get("/api/v1/events?limit=100").await;
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "visitor" && e["action"] == "instance.start"),
        "{events}"
    );

    // A world's own setting wins: `off` is not woken by visits...
    add_key(&admin, "k2", &key_for("anyonekeytwo")).await;
    let (s, b) = admin
        .post(
            "/api/v1/instances",
            &json!({"slug": "closed", "release": "stub", "wake_on_visit": "off"}),
        )
        .await;
    assert_eq!((s, &b["wake_on_visit"]), (201, &json!("off")), "{b}");
    let http = client(&server, &["closed.localhost"]);
    let closed_url = world_url(&server, "closed.localhost", "/");
    wait_until("closed has a standby page", || async {
        http.get(&closed_url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 503)
    })
    .await;
    for _ in 0..3 {
        let page = http
            .get(&closed_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains(">sleeping<"), "{page}");
    }
    assert_eq!(
        admin.get("/api/v1/instances/closed").await.1["desired_state"],
        "stopped"
    );
    let bad = admin
        .patch(
            "/api/v1/instances/closed",
            &json!({"wake_on_visit":"sometimes"}),
        )
        .await;
    assert_eq!((bad.0, code(&bad)), (422, "invalid_field"), "{}", bad.1);
    // ...until it is set back to the server's setting.
    let out = server.cli(
        Some(&server.admin_token),
        &[
            "instance",
            "set",
            "closed",
            "--wake-on-visit",
            "default",
            "--json",
        ],
        None,
    );
    assert_eq!(ok_json(&out)["wake_on_visit"], Value::Null);
    wait_until("a visit wakes it now", || async {
        let _ = http.get(&closed_url).send().await;
        admin.get("/api/v1/instances/closed").await.1["desired_state"] == "running"
    })
    .await;
}

/// A world's server is not trusted with Tavern's credentials: Tavern's
/// cookies and a bearer token are taken off every request and upgrade the
/// proxy forwards to it; the world's own cookies arrive.
#[tokio::test(flavor = "multi_thread")]
async fn tavern_credentials_never_reach_a_world() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "k1", &key_for("cookiekey")).await;
    admin.create_user("gina", "gm", "gina-password-1").await;
    let gina = admin.login("gina", "gina-password-1").await;
    create_world(&gina, &json!({"slug": "cookies", "release": "stub"})).await;
    start_world(&gina, "cookies").await;
    let http = client(&server, &["cookies.localhost"]);
    let echo = world_url(&server, "cookies.localhost", "/_stub/echo");
    wait_until("the world answers through the proxy", || async {
        http.get(&echo)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let cookie = format!(
        "session=foundry-own; tavern_session={}; tavern_pre=x; theme=dark",
        gina.token()
    );
    let seen: Value = http
        .get(&echo)
        .header("cookie", &cookie)
        .bearer_auth(gina.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["headers"]["cookie"], "session=foundry-own; theme=dark");
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");
    assert!(!seen.to_string().contains(gina.token()), "{seen}");

    // An upgrade request goes to the world on a path of its own: the
    // stand-in answers it as an ordinary request, showing what arrived.
    let head = format!(
        "GET /_stub/echo HTTP/1.1\r\nHost: cookies.localhost\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\nCookie: {cookie}\r\nAuthorization: Bearer {}\r\n\r\n",
        gina.token()
    );
    let mut s = tokio::net::TcpStream::connect(addr(&server)).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("session=foundry-own; theme=dark"), "{reply}");
    assert!(!reply.contains(gina.token()), "{reply}");
}

/// RFC 9112 at the proxy: a request names one host, and a client's broken
/// body is the client's fault (400), not the world's (502).
#[tokio::test(flavor = "multi_thread")]
async fn ambiguous_hosts_and_broken_bodies_are_refused() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "k1", &key_for("hostkey")).await;
    add_world(&admin, "alpha", "stub").await;
    add_world(&admin, "beta", "stub").await;
    start_world(&admin, "alpha").await;
    let ok = b"GET /api/status HTTP/1.1\r\nHost: alpha.localhost\r\n\r\n";
    wait_until("alpha answers through the proxy", || async {
        raw(&server, ok, &[]).await.starts_with("HTTP/1.1 200")
    })
    .await;
    for (request, expected) in [
        (
            &b"GET /api/status HTTP/1.1\r\nHost: alpha.localhost\r\nHost: beta.localhost\r\n\r\n"[..],
            "HTTP/1.1 400",
        ),
        (
            b"GET /api/status HTTP/1.1\r\nHost: beta.localhost\r\nHost: alpha.localhost\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            b"GET http://alpha.localhost/api/status HTTP/1.1\r\nHost: beta.localhost\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            b"GET http://alpha.localhost/api/status HTTP/1.1\r\nHost: ALPHA.localhost\r\n\r\n",
            "HTTP/1.1 200",
        ),
        (
            b"GET http://alpha.localhost/api/status HTTP/1.1\r\n\r\n",
            "HTTP/1.1 200",
        ),
        (
            b"POST /_stub/echo HTTP/1.1\r\nHost: alpha.localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n\r\n",
            "HTTP/1.1 400",
        ),
    ] {
        let line = raw(&server, request, &[]).await;
        assert!(
            line.starts_with(expected),
            "{}: {line}",
            String::from_utf8_lossy(request)
        );
    }
    assert!(
        !server.output().contains("proxying failed"),
        "a client's mistake was blamed on the world"
    );
}

/// A sleeping world's standby page tells its game master why it sleeps
/// (who stopped it), and a stranger nothing of that.
#[tokio::test(flavor = "multi_thread")]
async fn the_standby_page_tells_the_owner_why_the_world_sleeps() {
    let server = Server::start();
    let admin = server.api(Some(&server.admin_token));
    add_key(&admin, "k", &key_for("whykey")).await;
    admin.create_user("alice", "gm", "alice-password").await;
    let alice = admin.login("alice", "alice-password").await;
    // Visits do not wake it: its owner sees it sleeping too.
    create_world(
        &alice,
        &json!({"slug": "why", "release": "stub", "wake_on_visit": "off"}),
    )
    .await;
    for (verb, state) in [("start", "running"), ("stop", "stopped")] {
        let (s, b) = alice
            .post(&format!("/api/v1/instances/why/{verb}"), &json!({}))
            .await;
        assert_eq!(s, 202, "{b}");
        wait_for_state(&alice, "why", state).await;
    }
    let http = client(&server, &["why.localhost"]);
    let url = world_url(&server, "why.localhost", "/");
    let owners_page = || async {
        http.get(&url)
            .header("cookie", format!("tavern_session={}", alice.token()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // The proxy's routes follow the store a moment later.
    wait_until("the standby page says the world sleeps", || async {
        owners_page().await.contains(">sleeping<")
    })
    .await;
    let owners = owners_page().await;
    assert!(owners.contains("stopped by alice"), "{owners}");
    let strangers = http.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(
        strangers.contains(">sleeping<") && !strangers.contains("stopped by alice"),
        "{strangers}"
    );
}
