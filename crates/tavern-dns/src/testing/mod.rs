//! A BIND 9 primary on a loopback port, with a zone of its own and a TSIG
//! key, for tests (here and Tavern's); stopped by its pid when dropped.
//! Stand-ins for the HTTP providers' APIs are in [`apis`]; moto's server
//! (AWS's APIs) in [`moto`].

pub mod apis;
pub mod moto;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::rfc2136::Rfc2136Settings;

/// The zone the server is primary for.
pub const ZONE: &str = "games.test";
/// The TSIG key `tavern-key`'s secret (hmac-sha256).
pub const SECRET: &str = "dGF2ZXJuLXRlc3Qta2V5LWZvci1iaW5kLTEyMzQ1Njc4OTA=";

fn find(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// A loopback port no one listens on now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A BIND primary for [`ZONE`], stopped (by its pid) when dropped.
pub struct Bind {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Bind {
    /// Started with `more` (zone file lines, e.g. `* IN A 127.0.0.1`);
    /// `None` (the test skips) without `named`, a failure under `CI=true`.
    pub fn start(more: &str) -> Option<Bind> {
        Self::start_on(free_port(), more)
    }

    /// As [`Bind::start`], on `port` (from [`free_port`]).
    pub fn start_on(port: u16, more: &str) -> Option<Bind> {
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
                "$TTL 60\n@ IN SOA ns.{ZONE}. admin.{ZONE}. 1 3600 600 86400 60\n@ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\n{more}\n"
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

    /// Settings for this server with the key `tavern-key` and `secret`.
    pub fn settings(&self, secret: &str) -> Rfc2136Settings {
        Rfc2136Settings {
            server: SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            zone: ZONE.into(),
            key_name: "tavern-key".into(),
            algorithm: "hmac-sha256".into(),
            secret: secret.into(),
        }
    }

    /// What `dig` finds for `label` in the zone, sorted.
    pub fn dig(&self, label: &str, kind: &str) -> Vec<String> {
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
