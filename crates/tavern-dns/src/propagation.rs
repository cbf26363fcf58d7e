//! Whether a change has reached the zone's authoritative servers: before
//! an ACME CA is told to look at a challenge's TXT record, each of them
//! must answer with it, or the CA may ask one that does not have it yet.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::rfc2136::{ask, name_servers};
use crate::{DnsError, Record, RecordKind, words};

/// How often to ask again.
const EVERY: Duration = Duration::from_secs(2);

/// The first resolver in `/etc/resolv.conf`.
pub fn system_resolver() -> Option<SocketAddr> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    conf.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("nameserver")?;
        let ip: IpAddr = rest.trim().parse().ok()?;
        Some(SocketAddr::new(ip, 53))
    })
}

/// `zone`'s authoritative servers (port 53), as `resolver` knows them:
/// their names, then each name's addresses.
pub async fn authoritative_servers(
    zone: &str,
    resolver: SocketAddr,
) -> Result<Vec<SocketAddr>, DnsError> {
    let mut servers = Vec::new();
    for ns in name_servers(resolver, zone).await? {
        for kind in [RecordKind::A, RecordKind::Aaaa] {
            for r in ask(resolver, &ns, kind).await? {
                match r {
                    Record::A(ip) => servers.push(SocketAddr::new(ip.into(), 53)),
                    Record::Aaaa(ip) => servers.push(SocketAddr::new(ip.into(), 53)),
                    _ => {}
                }
            }
        }
    }
    if servers.is_empty() {
        return Err(DnsError::Unreachable(format!(
            "no authoritative server of {zone} found through {resolver}"
        )));
    }
    Ok(servers)
}

/// Waits until every one of `servers` answers `name` with all of `wanted`
/// (of one kind), asking every 2 seconds; after `patience`, says which
/// server did not, and what it held.
pub async fn wait_until_held(
    servers: &[SocketAddr],
    name: &str,
    wanted: &[Record],
    patience: Duration,
) -> Result<(), DnsError> {
    let Some(kind) = wanted.first().map(Record::kind) else {
        return Ok(());
    };
    let deadline = Instant::now() + patience;
    let mut waiting: Vec<SocketAddr> = servers.to_vec();
    loop {
        let mut still = Vec::new();
        let mut last = String::new();
        for server in waiting {
            let held = match ask(server, name, kind).await {
                Ok(found) => wanted
                    .iter()
                    .all(|w| found.contains(w))
                    .then_some(())
                    .ok_or_else(|| match found.is_empty() {
                        true => "nothing".to_owned(),
                        false => words(&found),
                    }),
                Err(e) => Err(e.to_string()),
            };
            if let Err(why) = held {
                last = format!("{server} answers {why}");
                still.push(server);
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(DnsError::Unreachable(format!(
                "{name} did not reach every authoritative server within {}s: {last}",
                patience.as_secs()
            )));
        }
        waiting = still;
        tokio::time::sleep(EVERY.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}
