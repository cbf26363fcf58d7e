//! The RFC 2136 driver against a real BIND 9 (Debian's `bind9`), started
//! here on a loopback port with a zone of its own and a TSIG key, and
//! checked with `dig`: records set, replaced and removed; a wrong key and a
//! name outside the zone refused with nothing changed; a server that is
//! not there worth trying again. Without `named` the
//! tests skip; under `CI=true` they fail.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tavern_dns::rfc2136::{Rfc2136, Rfc2136Settings};
use tavern_dns::{DnsError, DnsProvider, Record, RecordKind};

const ZONE: &str = "games.test";
const SECRET: &str = "dGF2ZXJuLXRlc3Qta2V5LWZvci1iaW5kLTEyMzQ1Njc4OTA=";

fn find(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// A BIND primary for [`ZONE`], stopped (by its pid) when dropped.
struct Bind {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Bind {
    fn start() -> Option<Bind> {
        let Some(named) = find("named") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but BIND is not installed (bash .ci/run installs bind9)"
            );
            eprintln!("skipped: BIND is not installed (apt-get install bind9 bind9-dnsutils)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        std::fs::write(
            dir.path().join("named.conf"),
            format!(
                r#"options {{
  directory "{d}"; pid-file "{d}/named.pid";
  listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }};
  recursion no; allow-query {{ any; }}; dnssec-validation no;
}};
key "tavern-key" {{ algorithm hmac-sha256; secret "{SECRET}"; }};
zone "{ZONE}" {{ type primary; file "{d}/zone.db"; update-policy {{ grant tavern-key zonesub ANY; }}; }};
"#
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("zone.db"),
            format!(
                "$TTL 60\n@ IN SOA ns.{ZONE}. admin.{ZONE}. 1 3600 600 86400 60\n@ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\n"
            ),
        )
        .unwrap();
        let child = Command::new(named)
            .args(["-g", "-c"])
            .arg(dir.path().join("named.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("named.log")).unwrap(),
            ))
            .process_group(0)
            .spawn()
            .unwrap();
        let bind = Bind {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while bind.dig("ns", "A").is_empty() {
            assert!(Instant::now() < deadline, "named did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(bind)
    }

    fn settings(&self, secret: &str) -> Rfc2136Settings {
        Rfc2136Settings {
            server: SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            zone: ZONE.into(),
            key_name: "tavern-key".into(),
            algorithm: "hmac-sha256".into(),
            secret: secret.into(),
        }
    }

    /// What `dig` finds for `label` in the zone, sorted.
    fn dig(&self, label: &str, kind: &str) -> Vec<String> {
        let out = Command::new(find("dig").expect("dig (bind9-dnsutils)"))
            .args(["@127.0.0.1", "-p", &self.port.to_string(), "+short", "+tcp"])
            .arg(format!("{label}.{ZONE}"))
            .arg(kind)
            .output()
            .unwrap();
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with(';') && !l.is_empty())
            .map(str::to_owned)
            .collect();
        lines.sort();
        lines
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn records_are_set_replaced_and_removed_on_bind() {
    let Some(bind) = Bind::start() else { return };
    let dns = Rfc2136::new(&bind.settings(SECRET)).unwrap();
    let name = format!("dragon.{ZONE}");

    // Set: what dig sees, and what the driver reads back.
    let v4: Ipv4Addr = "203.0.113.7".parse().unwrap();
    let v6 = "2001:db8::7".parse().unwrap();
    dns.set(&name, &[Record::A(v4), Record::Aaaa(v6)], 60)
        .await
        .unwrap();
    assert_eq!(bind.dig("dragon", "A"), ["203.0.113.7"]);
    assert_eq!(bind.dig("dragon", "AAAA"), ["2001:db8::7"]);
    assert_eq!(
        dns.get(&name, RecordKind::A).await.unwrap(),
        [Record::A(v4)]
    );

    // Set again: replaced, not added to; other kinds untouched.
    let two = [
        Record::A("203.0.113.8".parse().unwrap()),
        Record::A("203.0.113.9".parse().unwrap()),
    ];
    dns.set(&name, &two, 60).await.unwrap();
    assert_eq!(bind.dig("dragon", "A"), ["203.0.113.8", "203.0.113.9"]);
    assert_eq!(bind.dig("dragon", "AAAA"), ["2001:db8::7"]);
    let mut read = dns.get(&name, RecordKind::A).await.unwrap();
    read.sort();
    assert_eq!(read, two);

    // A CNAME and an ACME challenge's TXT.
    dns.set(
        &format!("alias.{ZONE}"),
        &[Record::Cname("tavern.example.org".into())],
        60,
    )
    .await
    .unwrap();
    assert_eq!(bind.dig("alias", "CNAME"), ["tavern.example.org."]);
    let challenge = "Xo7V-Ws2FJ4pyX0i4RZ9WhbHbd1tLDQBU3TxXKE2ZEA";
    let txt_name = format!("_acme-challenge.{ZONE}");
    dns.set(&txt_name, &[Record::Txt(challenge.into())], 60)
        .await
        .unwrap();
    assert_eq!(
        bind.dig("_acme-challenge", "TXT"),
        [format!("\"{challenge}\"")]
    );
    assert_eq!(
        dns.get(&txt_name, RecordKind::Txt).await.unwrap(),
        [Record::Txt(challenge.into())]
    );

    // Removed, and removing again is no error.
    dns.remove(&name, RecordKind::A).await.unwrap();
    assert!(bind.dig("dragon", "A").is_empty());
    assert_eq!(bind.dig("dragon", "AAAA"), ["2001:db8::7"]);
    dns.remove(&name, RecordKind::A).await.unwrap();
    assert!(dns.get(&name, RecordKind::A).await.unwrap().is_empty());
    assert!(
        dns.get(&format!("nowhere.{ZONE}"), RecordKind::A)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_wrong_key_and_a_name_outside_the_zone_change_nothing() {
    let Some(bind) = Bind::start() else { return };
    let wrong = Rfc2136::new(&bind.settings("d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXkh")).unwrap();
    let e = wrong
        .set(
            &format!("dragon.{ZONE}"),
            &[Record::A("203.0.113.7".parse().unwrap())],
            60,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, DnsError::Refused(_)), "{e}");
    assert!(!e.is_transient());
    assert!(bind.dig("dragon", "A").is_empty());

    // A server that is not there: worth trying again later.
    let mut away = bind.settings(SECRET);
    away.server.set_port({
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let e = Rfc2136::new(&away)
        .unwrap()
        .get(&format!("dragon.{ZONE}"), RecordKind::A)
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");

    let dns = Rfc2136::new(&bind.settings(SECRET)).unwrap();
    let e = dns
        .set(
            "dragon.elsewhere.test",
            &[Record::A("203.0.113.7".parse().unwrap())],
            60,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, DnsError::Invalid(_)), "{e}");
    // A TXT value too long for one string is refused before anything is
    // sent, and the kinds before it are not half set.
    let e = dns
        .set(
            &format!("dragon.{ZONE}"),
            &[
                Record::A("203.0.113.7".parse().unwrap()),
                Record::Txt("x".repeat(256)),
            ],
            60,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, DnsError::Invalid(_)), "{e}");
    assert!(bind.dig("dragon", "A").is_empty());
}
