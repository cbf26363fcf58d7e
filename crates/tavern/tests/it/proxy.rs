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

fn addr(server: &Server) -> SocketAddr {
    server.url.trim_start_matches("http://").parse().unwrap()
}

/// An HTTP client that finds `<name>.localhost` (any name given) at the
/// server's address.
fn client(server: &Server, hosts: &[&str]) -> reqwest::Client {
    let mut b = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    for h in hosts {
        b = b.resolve(h, addr(server));
    }
    b.build().unwrap()
}

fn world_url(server: &Server, host: &str, path: &str) -> String {
    format!("http://{host}:{}{path}", addr(server).port())
}

/// Sends raw bytes and answers the status line of the reply.
async fn raw(server: &Server, request: &[u8], body_chunks: &[Vec<u8>]) -> String {
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

async fn start_world(admin: &Api, slug: &str) {
    let (s, b) = admin
        .post(&format!("/api/v1/instances/{slug}/start"), &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(admin, slug, "running").await;
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
        page.contains("beta") && page.contains("is sleeping"),
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
