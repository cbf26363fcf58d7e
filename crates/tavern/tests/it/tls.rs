//! TLS from certificate files: the API and the worlds over HTTPS, worlds
//! told they are behind HTTPS, plain HTTP redirected, bad files refused
//! before anything starts.

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn worlds_and_the_api_over_https_from_certificate_files() {
    let t = crate::http2::Tls::start(&[]);
    let (server, http, addr) = (&t.server, &t.http, t.addr);
    let cert = t.cert_file();
    let port = addr.port();
    let health = http
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // A world over HTTPS, told it sits behind HTTPS.
    let admin = server.api_with(Some(&server.admin_token), http.clone());
    add_key(&admin, "k1", &key_for("tlskeyone")).await;
    let created = add_world(&admin, "alpha", "stub").await;
    assert_eq!(created["url"], format!("https://alpha.localhost:{port}/"));
    let (s, _) = admin
        .post("/api/v1/instances/alpha/start", &json!({}))
        .await;
    assert_eq!(s, 202);
    wait_for_state(&admin, "alpha", "running").await;
    let status_url = format!("https://alpha.localhost:{port}/api/status");
    wait_until("alpha answers over HTTPS", || async {
        http.get(&status_url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let seen: Value = http
        .get(format!("https://alpha.localhost:{port}/_stub/echo"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["headers"]["x-forwarded-proto"], "https", "{seen}");
    let options: Value = http
        .get(format!("https://alpha.localhost:{port}/_stub/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(options["proxySSL"], true, "{options}");
    assert_eq!(options["proxyPort"], port, "{options}");

    // The CLI trusts the certificate only when told to.
    let ca = cert.to_str().unwrap();
    for (trust, ok) in [(None, false), (Some(ca), true)] {
        let mut c = tavern(server.home());
        c.args(["instance", "list", "--json"])
            .env("TAVERN_SERVER", &server.url)
            .env("TAVERN_TOKEN", &server.admin_token);
        if let Some(ca) = trust {
            c.env("TAVERN_CA_FILE", ca);
        }
        let out = run(c, None);
        assert_eq!(out.status.success(), ok, "{}", text(&out.stderr));
        if ok {
            assert!(text(&out.stdout).contains("alpha"), "{}", text(&out.stdout));
        } else {
            assert!(
                text(&out.stderr).contains("cannot reach"),
                "{}",
                text(&out.stderr)
            );
        }
    }
    let mut c = tavern(server.home());
    c.args(["instance", "list"])
        .env("TAVERN_SERVER", &server.url)
        .env("TAVERN_TOKEN", &server.admin_token)
        .env("TAVERN_CA_FILE", server.home().join("no-such-ca.pem"));
    let out = run(c, None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot read TAVERN_CA_FILE"),
        "{}",
        text(&out.stderr)
    );

    // Plain HTTP is sent to HTTPS, path and query kept.
    let out = server.output();
    let redirect: SocketAddr = out
        .lines()
        .find_map(|l| l.strip_prefix("Redirecting http://"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the redirect listener's address")
        .parse()
        .unwrap();
    let plain = reqwest::Client::builder()
        .resolve("alpha.localhost", redirect)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = plain
        .get(format!(
            "http://alpha.localhost:{}/join?x=1",
            redirect.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers()["location"],
        format!("https://alpha.localhost:{port}/join?x=1").as_str()
    );
}

#[test]
fn unreadable_certificate_files_stop_the_server_before_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-cert.pem");
    let mut c = tavern(dir.path());
    c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("TAVERN_TLS_MODE", "files")
        .env("TAVERN_TLS_CERT_FILE", &missing)
        .env("TAVERN_TLS_KEY_FILE", dir.path().join("key.pem"));
    let out = run(c, None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("no-such-cert.pem"), "{err}");
    assert!(
        !text(&out.stdout).contains("listening"),
        "{}",
        text(&out.stdout)
    );
    let mut c = tavern(dir.path());
    c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("TAVERN_TLS_MODE", "files");
    let out = run(c, None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("tls.cert_file"),
        "{}",
        text(&out.stderr)
    );
}
