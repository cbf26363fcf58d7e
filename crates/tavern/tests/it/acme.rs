//! Certificates from a real ACME CA: Pebble (Debian's `pebble`) with its
//! challenge DNS server, both started here on loopback. The bare domain and
//! each world get a certificate by TLS-ALPN-01 or HTTP-01, new worlds
//! without a restart; certificates are cached (keys sealed), served again
//! after a restart, and renewed before they expire.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

const DOMAIN: &str = "tavern.test";

/// Every port of a test: Tavern's HTTPS and plain-HTTP listeners (where
/// Pebble validates) and Pebble's own.
struct Ports {
    tls: u16,
    http: u16,
    listen: u16,
    management: u16,
    dns: u16,
    dns_management: u16,
}

impl Ports {
    fn new() -> Self {
        let [tls, http, listen, management, dns, dns_management] = free_ports();
        Ports {
            tls,
            http,
            listen,
            management,
            dns,
            dns_management,
        }
    }
}

/// Pebble and pebble-challtestsrv, stopped by pid when dropped.
struct Pebble {
    dir: tempfile::TempDir,
    children: Vec<Child>,
    directory: String,
    management: String,
    /// Trusts Pebble's own HTTPS endpoints.
    client: reqwest::Client,
}

/// `N` distinct ports free right now (all held until all are chosen, so
/// none is handed out twice).
fn find(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{program} is not installed: `apt-get install pebble` (bash .ci/run does it)")
        })
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Pebble {
    /// A CA that validates hosts at 127.0.0.1 on `http_port` (HTTP-01) and
    /// `tls_port` (TLS-ALPN-01), issuing certificates valid for
    /// `validity_secs` (Pebble's default, years, when `None`).
    fn start(ports: Ports, validity_secs: Option<u64>) -> Self {
        Self::start_with_dns(ports, validity_secs, None)
    }

    /// As [`Pebble::start`], looking names up (DNS-01's TXT records among
    /// them) at the port `lookups` on loopback when given.
    fn start_with_dns(ports: Ports, validity_secs: Option<u64>, lookups: Option<u16>) -> Self {
        let Ports {
            http: http_port,
            tls: tls_port,
            listen,
            management,
            dns,
            dns_management,
        } = ports;
        let dir = tempfile::tempdir().unwrap();
        let own = rcgen::generate_simple_self_signed(vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ])
        .unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, own.cert.pem()).unwrap();
        std::fs::write(&key, own.signing_key.serialize_pem()).unwrap();
        let mut config = json!({
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": cert,
            "privateKey": key,
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        });
        if let Some(v) = validity_secs {
            config["certificateValidityPeriod"] = json!(v);
        }
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, json!({ "pebble": config }).to_string()).unwrap();
        let logs = dir.path().to_owned();
        let log = |name: &str| std::fs::File::create(logs.join(name)).unwrap();

        // Every name resolves to 127.0.0.1 (and has no IPv6 address).
        let dns_server = Command::new(find("pebble-challtestsrv"))
            .args([
                "-defaultIPv6",
                "",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .stdin(Stdio::null())
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .unwrap();
        let mut pebble = Pebble {
            children: vec![dns_server],
            directory: format!("https://127.0.0.1:{listen}/dir"),
            management: format!("https://127.0.0.1:{management}"),
            client: reqwest::Client::builder()
                .add_root_certificate(
                    reqwest::Certificate::from_pem(own.cert.pem().as_bytes()).unwrap(),
                )
                .build()
                .unwrap(),
            dir,
        };
        wait_for_port(dns_management, "pebble-challtestsrv");
        let ca = Command::new(find("pebble"))
            .arg("-config")
            .arg(&config_path)
            .args([
                "-dnsserver",
                &format!("127.0.0.1:{}", lookups.unwrap_or(dns)),
            ])
            // Validate at once, and never reject a nonce at random.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdin(Stdio::null())
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .unwrap();
        pebble.children.push(ca);
        wait_for_port(listen, "pebble");
        wait_for_port(management, "pebble's management interface");
        pebble
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The root Pebble issues under (random per run).
    async fn issuing_root(&self) -> reqwest::Certificate {
        let pem = self
            .client
            .get(format!("{}/roots/0", self.management))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .bytes()
            .await
            .unwrap();
        reqwest::Certificate::from_pem(&pem).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// Stops both servers, by pid.
    fn stop(&mut self) {
        for mut child in self.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reaches every test host at `addr`, trusting only Pebble's issuing root.
#[derive(Clone)]
struct Probe {
    root: reqwest::Certificate,
    addr: SocketAddr,
    /// The domain whose names (and `w1`, `w2` under it) reach `addr`.
    domain: String,
}

impl Probe {
    /// A fresh client each time (no pooled connection, no resumed TLS
    /// session), so it sees the certificate served now; redirects are
    /// shown, not followed.
    fn client(&self) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .tls_certs_only([self.root.clone()])
            .tls_info(true)
            .redirect(reqwest::redirect::Policy::none());
        let d = &self.domain;
        for h in [d.clone(), format!("w1.{d}"), format!("w2.{d}")] {
            b = b.resolve(&h, self.addr);
        }
        b.build().unwrap()
    }

    /// The certificate `url` is served with, once it verifies.
    async fn certificate(&self, url: &str, within: Duration) -> Vec<u8> {
        let deadline = Instant::now() + within;
        loop {
            match self.client().get(url).send().await {
                Ok(r) => {
                    return r
                        .extensions()
                        .get::<reqwest::tls::TlsInfo>()
                        .and_then(|i| i.peer_certificate())
                        .expect("a TLS response shows its certificate")
                        .to_vec();
                }
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "{url} was not served with a certificate from the CA within {within:?}: {e:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Tavern on `tls_port` ordering its certificates from `pebble` by
/// `challenge` (plus `extra` settings), its API addressed by the domain,
/// and a probe that trusts only what Pebble issues.
async fn start_tavern(
    pebble: &Pebble,
    tls_port: u16,
    challenge: &str,
    extra: &[(&str, &str)],
) -> (Server, Probe) {
    start_tavern_for(DOMAIN, pebble, tls_port, challenge, extra).await
}

/// As [`start_tavern`], for `domain`.
async fn start_tavern_for(
    domain: &str,
    pebble: &Pebble,
    tls_port: u16,
    challenge: &str,
    extra: &[(&str, &str)],
) -> (Server, Probe) {
    let ca_file = pebble.ca_file().to_string_lossy().into_owned();
    let mut env = vec![
        ("TAVERN_SERVER_DOMAIN", domain),
        ("TAVERN_TLS_MODE", "acme"),
        ("TAVERN_TLS_ACME_DIRECTORY", pebble.directory.as_str()),
        ("TAVERN_TLS_ACME_CA_FILE", ca_file.as_str()),
        ("TAVERN_TLS_ACME_EMAIL", "admin@tavern.test"),
        ("TAVERN_TLS_ACME_CHALLENGE", challenge),
    ];
    env.extend_from_slice(extra);
    let mut server = Server::start_on(&format!("127.0.0.1:{tls_port}"), &[], &env);
    server.url = format!("https://{domain}:{tls_port}");
    let probe = Probe {
        root: pebble.issuing_root().await,
        addr: format!("127.0.0.1:{tls_port}").parse().unwrap(),
        domain: domain.to_owned(),
    };
    (server, probe)
}

/// No file under DATA_DIR/acme holds a private key in clear.
fn assert_keys_sealed(server: &Server) {
    let mut stack = vec![server.data_dir().join("acme")];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                files += 1;
                let bytes = std::fs::read(e.path()).unwrap();
                assert!(
                    !bytes.windows(11).any(|w| w == b"PRIVATE KEY"),
                    "{} holds a private key in clear",
                    e.path().display()
                );
            }
        }
    }
    assert!(
        files >= 3,
        "the account and at least one certificate are cached"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_alpn_01_gives_the_domain_and_each_new_world_a_certificate_and_renews_it() {
    // Nobody answers HTTP-01 on `http`: the certificates come by TLS-ALPN-01.
    let ports = Ports::new();
    let tls_port = ports.tls;
    // Twenty-second certificates: renewed after about thirteen.
    let pebble = Pebble::start(ports, Some(20));
    let (mut server, probe) = start_tavern(&pebble, tls_port, "tls-alpn-01", &[]).await;
    let api_url = format!("https://{DOMAIN}:{tls_port}/healthz");
    let first = probe.certificate(&api_url, Duration::from_secs(30)).await;

    // A world created now gets its own certificate, no restart.
    let admin = server.api_with(Some(&server.admin_token), probe.client());
    let created = add_world(&admin, "w1", "stub").await;
    assert_eq!(
        created["url"],
        format!("https://w1.tavern.test:{tls_port}/")
    );
    let world_url = format!("https://w1.tavern.test:{tls_port}/");
    probe.certificate(&world_url, Duration::from_secs(30)).await;
    let standby = probe.client().get(&world_url).send().await.unwrap();
    assert_eq!(standby.status(), 503, "the sleeping world's standby page");
    assert!(standby.text().await.unwrap().contains("w1"));

    // Renewed before it expires: a new certificate, and never a gap.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let now = probe.certificate(&api_url, Duration::from_secs(1)).await;
        if now != first {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the certificate was not renewed; server output:\n{}\nPebble:\n{}",
            server.output(),
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_keys_sealed(&server);
    let out = server.output();
    assert!(!out.contains("PRIVATE KEY"), "{out}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn http_01_certificates_are_cached_and_served_again_after_a_restart() {
    // TLS-ALPN-01 is checked on a port nobody listens on.
    let ports = Ports::new();
    let (tls_port, http_port) = (ports.tls, ports.http);
    let mut pebble = Pebble::start(
        Ports {
            tls: free_ports::<1>()[0],
            ..ports
        },
        None,
    );
    let http_listen = format!("127.0.0.1:{http_port}");
    let (mut server, probe) = start_tavern(
        &pebble,
        tls_port,
        "http-01",
        &[("TAVERN_TLS_HTTP_LISTEN", &http_listen)],
    )
    .await;
    let api_url = format!("https://{DOMAIN}:{tls_port}/healthz");
    let domain_cert = probe.certificate(&api_url, Duration::from_secs(30)).await;

    let admin = server.api_with(Some(&server.admin_token), probe.client());
    add_world(&admin, "w2", "stub").await;
    let world_url = format!("https://w2.tavern.test:{tls_port}/");
    let world_cert = probe.certificate(&world_url, Duration::from_secs(30)).await;
    assert_ne!(world_cert, domain_cert, "one certificate per host");

    // Plain HTTP still sends browsers to HTTPS; unknown tokens are not answered.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(
            "w2.tavern.test",
            format!("127.0.0.1:{http_port}").parse().unwrap(),
        )
        .build()
        .unwrap();
    for path in ["/join", "/.well-known/acme-challenge/not-a-token"] {
        let r = plain
            .get(format!("http://w2.tavern.test:{http_port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 308, "{path}");
        assert_eq!(
            r.headers()["location"],
            format!("https://w2.tavern.test:{tls_port}{path}").as_str()
        );
    }
    assert_keys_sealed(&server);

    // After a restart the cached certificates are served at once.
    server.stop();
    pebble.stop();
    server.relaunch();
    assert_eq!(
        probe.certificate(&api_url, Duration::from_secs(5)).await,
        domain_cert
    );
    assert_eq!(
        probe.certificate(&world_url, Duration::from_secs(5)).await,
        world_cert
    );
    server.stop();
}

/// The DNS names a DER certificate is for.
fn names_in(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let mut names: Vec<String> = cert
        .subject_alternative_name()
        .unwrap()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|n| {
                    n.to_string()
                        .trim_start_matches("DNSName(")
                        .trim_end_matches(')')
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn dns_01_gives_the_domain_and_every_world_one_wildcard_certificate() {
    use tavern_dns::testing::{Bind, SECRET, ZONE};
    let Some(bind) = Bind::start("") else {
        return;
    };
    // Nobody answers HTTP-01 or TLS-ALPN-01 where Pebble looks: the
    // certificate comes by DNS-01, Pebble reading BIND.
    let ports = Ports::new();
    let tls_port = ports.tls;
    let pebble = Pebble::start_with_dns(
        Ports {
            tls: free_ports::<1>()[0],
            ..ports
        },
        None,
        Some(bind.port),
    );
    let dns_server = format!("127.0.0.1:{}", bind.port);
    let (mut server, probe) = start_tavern_for(
        ZONE,
        &pebble,
        tls_port,
        "dns-01",
        &[
            ("TAVERN_DNS_PROVIDER", "rfc2136"),
            ("TAVERN_DNS_ADDRESSES", "[\"127.0.0.1\"]"),
            ("TAVERN_DNS_SERVER", &dns_server),
            ("TAVERN_DNS_TSIG_KEY", "tavern-key"),
            ("TAVERN_DNS_TSIG_SECRET", SECRET),
        ],
    )
    .await;
    let api_url = format!("https://{ZONE}:{tls_port}/healthz");
    let cert = probe.certificate(&api_url, Duration::from_secs(60)).await;
    assert_eq!(names_in(&cert), [format!("*.{ZONE}"), ZONE.to_owned()]);

    // Worlds, new ones too, are served with it: no order of their own.
    let admin = server.api_with(Some(&server.admin_token), probe.client());
    add_world(&admin, "w1", "stub").await;
    add_world(&admin, "w2", "stub").await;
    for w in ["w1", "w2"] {
        let url = format!("https://{w}.{ZONE}:{tls_port}/");
        assert_eq!(probe.certificate(&url, Duration::from_secs(5)).await, cert);
    }
    let out = server.output();
    assert_eq!(
        out.matches("ordering a certificate").count(),
        1,
        "one order, for the domain and its wildcard:\n{out}"
    );
    assert!(out.contains("dns-01: waiting until every authoritative server has the challenge"));
    // The challenge's record is gone once the order is done.
    assert!(bind.dig("_acme-challenge", "TXT").is_empty());
    assert!(!out.contains(SECRET));
    assert_keys_sealed(&server);

    // After a restart the cached certificate serves the worlds at once.
    server.stop();
    server.relaunch();
    let url = format!("https://w1.{ZONE}:{tls_port}/");
    assert_eq!(probe.certificate(&url, Duration::from_secs(5)).await, cert);
    server.stop();
}

#[test]
fn acme_needs_a_public_domain_and_a_way_in() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("TAVERN_TLS_MODE", "acme")], "needs a public domain name"),
        (
            &[
                ("TAVERN_TLS_MODE", "acme"),
                ("TAVERN_SERVER_DOMAIN", DOMAIN),
                ("TAVERN_TLS_ACME_CHALLENGE", "http-01"),
            ],
            "needs tls.http_listen",
        ),
        (
            &[
                ("TAVERN_TLS_MODE", "acme"),
                ("TAVERN_SERVER_DOMAIN", DOMAIN),
                ("TAVERN_TLS_ACME_DIRECTORY", "http://ca.example/dir"),
            ],
            "must be an https:// URL",
        ),
        (
            &[
                ("TAVERN_TLS_MODE", "acme"),
                ("TAVERN_SERVER_DOMAIN", DOMAIN),
                ("TAVERN_TLS_ACME_EMAIL", "not an address"),
            ],
            "is not an email address",
        ),
        (
            &[
                ("TAVERN_TLS_MODE", "acme"),
                ("TAVERN_SERVER_DOMAIN", DOMAIN),
                ("TAVERN_TLS_ACME_CHALLENGE", "dns-01"),
            ],
            "writes its challenges through the DNS provider: set dns.provider",
        ),
    ];
    for (env, expected) in cases {
        let out = tavern(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} was accepted");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
        assert!(
            !dir.path().join("data").join("tavern.db").exists(),
            "a refused configuration created nothing"
        );
    }
}
