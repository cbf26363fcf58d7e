//! HTTP/2 on the TLS listener: a browser's many requests over one
//! connection (Chromium loading a page like Foundry's whole), forwarded to
//! the worlds over HTTP/1.1 with everything an
//! HTTP/1.1 client's get (X-Forwarded-*, the upload limit, Tavern's
//! cookies taken off); HTTP/1.1 still offered; and the listener's
//! protections: an idle connection is closed, a flood of reset streams
//! ends its own connection and nobody else's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::support::*;

/// A Tavern serving HTTPS from a self-signed certificate for `localhost`
/// and `alpha.localhost`, with `env`.
pub(crate) struct Tls {
    pub server: Server,
    pub addr: SocketAddr,
    /// A client that trusts the certificate and finds both names at
    /// `addr` (HTTP/2 when the server offers it).
    pub http: reqwest::Client,
    pub cert: rcgen::CertifiedKey<rcgen::KeyPair>,
    dir: tempfile::TempDir,
}

impl Tls {
    pub fn start(env: &[(&str, &str)]) -> Tls {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "alpha.localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .unwrap();
        let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_file, cert.cert.pem()).unwrap();
        std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
        let mut all = vec![
            ("TAVERN_TLS_MODE", "files"),
            ("TAVERN_TLS_CERT_FILE", cert_file.to_str().unwrap()),
            ("TAVERN_TLS_KEY_FILE", key_file.to_str().unwrap()),
            ("TAVERN_TLS_HTTP_LISTEN", "127.0.0.1:0"),
        ];
        all.extend_from_slice(env);
        let server = Server::start_with_env(&[], &all);
        assert!(server.url.starts_with("https://"), "{}", server.url);
        let addr: SocketAddr = server.url.trim_start_matches("https://").parse().unwrap();
        let http = Self::client(&cert, addr, false);
        Tls {
            server,
            addr,
            http,
            cert,
            dir,
        }
    }

    /// A client of the test's, HTTP/1.1 only when `http1`.
    pub fn client(
        cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
        addr: SocketAddr,
        http1: bool,
    ) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap(),
            )
            .resolve("localhost", addr)
            .resolve("alpha.localhost", addr)
            .redirect(reqwest::redirect::Policy::none());
        if http1 {
            b = b.http1_only();
        }
        b.build().unwrap()
    }

    /// Starts the world `alpha` (with a key of its own) and waits until it
    /// runs.
    async fn start_alpha(&self) {
        let admin = self
            .server
            .api_with(Some(&self.server.admin_token), self.http.clone());
        add_key(&admin, "k1", &key_for("httptwokey")).await;
        add_world(&admin, "alpha", "stub").await;
        start_world(&admin, "alpha").await;
    }

    /// The certificate's PEM file.
    pub fn cert_file(&self) -> std::path::PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.addr.port())
    }

    /// An HTTP/2 connection of the h2 crate's client, and its driver.
    async fn h2(
        &self,
    ) -> (
        h2::client::SendRequest<Bytes>,
        tokio::task::JoinHandle<Result<(), h2::Error>>,
    ) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.cert.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (send, conn) = h2::client::handshake(tls).await.unwrap();
        (send, tokio::spawn(conn))
    }
}

/// A `GET` of `path` on `localhost`, over HTTP/2.
fn get(t: &Tls, path: &str) -> http::Request<()> {
    http::Request::get(t.url("localhost", path))
        .body(())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn browsers_reach_worlds_and_the_api_over_http2() {
    let t = Tls::start(&[("TAVERN_SERVER_WORLD_BODY_LIMIT", "1000000")]);
    let health = t
        .http
        .get(t.url("localhost", "/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (health.status().as_u16(), health.version()),
        (200, http::Version::HTTP_2)
    );

    t.start_alpha().await;
    let echo = t.url("alpha.localhost", "/_stub/echo");
    wait_until("alpha answers over HTTPS", || async {
        t.http
            .get(&echo)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;

    // The world sees an HTTP/1.1 request with its host and the client's
    // address, told it came over HTTPS, without Tavern's cookie.
    let r = t
        .http
        .get(&echo)
        .header("cookie", "tavern_session=secret; foundry=kept")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), http::Version::HTTP_2);
    let seen: Value = r.json().await.unwrap();
    let headers = &seen["headers"];
    assert_eq!(headers["x-forwarded-proto"], "https", "{seen}");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1", "{seen}");
    assert_eq!(
        headers["host"],
        format!("alpha.localhost:{}", t.addr.port()),
        "{seen}"
    );
    assert_eq!(headers["cookie"], "foundry=kept", "{seen}");

    // Many requests at once, one connection's streams, all answered.
    let asks = (0..200).map(|i| {
        let http = t.http.clone();
        let url = format!("{}?n={i}", t.url("alpha.localhost", "/_stub/blob/20000"));
        async move {
            let r = http.get(url).send().await.unwrap();
            (
                r.status().as_u16(),
                r.version(),
                r.bytes().await.unwrap().len(),
            )
        }
    });
    for answer in futures_util::future::join_all(asks).await {
        assert_eq!(answer, (200, http::Version::HTTP_2, 20_000));
    }

    // An upload within the limit reaches the world; one over it does not.
    let upload = |bytes: usize| t.http.post(&echo).body(vec![7u8; bytes]).send();
    let seen: Value = upload(500_000).await.unwrap().json().await.unwrap();
    assert_eq!(seen["bytes"], 500_000, "{seen}");
    assert_eq!(upload(2_000_000).await.unwrap().status(), 413);
    // Sent without a length (streamed), it is cut off at the limit too.
    let chunks = futures_util::stream::iter(
        (0..20).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 100_000]))),
    );
    let r = t
        .http
        .post(&echo)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // HTTP/1.1 is still offered (WebSockets go that way, as browsers send
    // them).
    let old = Tls::client(&t.cert, t.addr, true);
    let r = old.get(&echo).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.version()),
        (200, http::Version::HTTP_11)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_http2_connection_is_closed_after_the_header_timeout() {
    let t = Tls::start(&[("TAVERN_SERVER_HEADER_TIMEOUT_SECONDS", "1")]);
    let (send, driver) = t.h2().await;
    let mut send = send.ready().await.unwrap();
    let (answer, _) = send.send_request(get(&t, "/healthz"), true).unwrap();
    assert_eq!(answer.await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!driver.is_finished(), "closed too early");
    let ended = tokio::time::timeout(Duration::from_secs(5), driver).await;
    assert!(
        ended.is_ok(),
        "an idle HTTP/2 connection outlived the timeout"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_reset_streams_ends_only_its_own_connection() {
    let t = Tls::start(&[]);
    let (send, driver) = t.h2().await;
    // Each stream opened and at once cancelled (RST_STREAM), faster than
    // the server can answer: HTTP/2's "rapid reset" (CVE-2023-44487).
    let flood = async {
        let mut send = send;
        for n in 0..100_000 {
            send = match send.ready().await {
                Ok(s) => s,
                Err(e) => return (n, e),
            };
            match send.send_request(get(&t, "/healthz"), true) {
                Ok((answer, _)) => drop(answer),
                Err(e) => return (n, e),
            }
        }
        panic!("100 000 streams reset and the connection still open");
    };
    let (n, stopped) = tokio::time::timeout(Duration::from_secs(30), flood)
        .await
        .expect("the flood was never stopped");
    let ended = tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("the flooding connection was not closed")
        .unwrap();
    // The server sent GOAWAY and closed it (the client, still writing,
    // may see only the closed socket), long before the flood's end.
    let closed = |e: &h2::Error| e.is_go_away() || e.is_io();
    assert!(closed(&stopped), "after {n} streams: {stopped:?}");
    assert!(ended.as_ref().err().is_none_or(closed), "{ended:?}");
    assert!(n < 50_000, "{n} streams reset before the connection closed");
    // Everyone else is served.
    let health = t
        .http
        .get(t.url("localhost", "/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// Chromium loads a page like Foundry's game page (the stand-in's
/// `/_stub/world-load`: scripts, style sheets, tokens and maps) from a
/// world's address over HTTP/2, whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_browser_loads_a_worlds_page_over_http2() {
    let t = Tls::start(&[]);
    let Some(b) =
        crate::web::Browser::start_with(true, false, &["--ignore-certificate-errors"]).await
    else {
        return;
    };
    t.start_alpha().await;

    b.goto(&t.url("alpha.localhost", "/_stub/world-load")).await;
    // Every resource the page's timing kept (its buffer holds 250) came
    // over HTTP/2, whole (each asset's size is in its address), and every
    // image was fetched to its end and drawn.
    let seen = b
        .client
        .execute(
            "const nav = performance.getEntriesByType('navigation')[0];
             const res = performance.getEntriesByType('resource');
             const whole = res.filter(r => r.nextHopProtocol === 'h2'
                 && r.encodedBodySize === Number(r.name.split('/asset/')[1].split('/')[0]));
             const images = [...document.images];
             return [nav.nextHopProtocol, res.length, whole.length, images.length,
                     images.filter(i => i.complete && i.naturalWidth === 1).length];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(seen, json!(["h2", 250, 250, 243, 243]));
    b.close().await;
}
