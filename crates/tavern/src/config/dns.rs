//! `[dns]`: the community's DNS provider and what Tavern does with it.
//! `mode = "wildcard"`: a record `*.<domain>` sends every world's name to
//! Tavern, and Tavern checks it at start; `mode = "per-world"`: Tavern
//! keeps a record for each world's host; the provider's settings (for
//! `rfc2136`: the zone's primary server and a TSIG key, its secret inline
//! or in a file; for `cloudflare` and `digitalocean`: an API token; for
//! `route53`: an access key, or the AWS SDK's default credentials).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tavern_dns::cloudflare::{self, Cloudflare, CloudflareSettings};
use tavern_dns::digitalocean::{self, DigitalOcean, DigitalOceanSettings};
use tavern_dns::rfc2136::{ALGORITHMS, Rfc2136, Rfc2136Settings};
use tavern_dns::{DnsProvider, Record};

use super::community::secret_value;

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DnsProviderKind {
    /// Tavern leaves DNS alone.
    #[default]
    None,
    /// RFC 2136 dynamic updates signed with TSIG (BIND, Knot, PowerDNS…).
    Rfc2136,
    /// Cloudflare's DNS API, with an API token.
    Cloudflare,
    /// DigitalOcean's domain records API, with an API token.
    Digitalocean,
    /// AWS Route53, through the AWS SDK.
    Route53,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DnsMode {
    /// One record `*.<domain>` for every world, made by the community;
    /// Tavern checks it.
    #[default]
    Wildcard,
    /// A record for each world's host, written by Tavern with the world
    /// and removed after it is destroyed.
    PerWorld,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    pub provider: DnsProviderKind,
    pub mode: DnsMode,
    /// Where worlds' names lead: Tavern's public addresses (A and AAAA
    /// records)…
    pub addresses: Vec<IpAddr>,
    /// …or a host name they are an alias of (a CNAME).
    pub cname: Option<String>,
    /// Seconds resolvers may keep a record Tavern writes.
    pub ttl: u32,
    /// `per-world`: how often Tavern looks again at a name that holds
    /// what it should, and corrects it if it changed.
    pub recheck_seconds: u32,
    /// The zone the names are in (default: `server.domain`).
    pub zone: Option<String>,
    /// `rfc2136`: the zone's primary server, `HOST:PORT` (port 53 when
    /// left out).
    pub server: Option<String>,
    /// DNS-01: the servers that must all hold a challenge's record before
    /// the CA looks (`HOST:PORT`); by default `dns.server` for `rfc2136`,
    /// else the zone's authoritative servers, looked up.
    pub check_servers: Vec<String>,
    /// DNS-01: how long a challenge's record may take to reach them.
    pub propagation_seconds: u32,
    /// `rfc2136`: the TSIG key's name, as the server knows it.
    pub tsig_key: Option<String>,
    pub tsig_algorithm: String,
    pub tsig_secret: Option<String>,
    pub tsig_secret_file: Option<PathBuf>,
    /// `cloudflare`, `digitalocean`: the API token (inline or in a file).
    pub api_token: Option<String>,
    pub api_token_file: Option<PathBuf>,
    /// `cloudflare`, `digitalocean`: the API's root, when not the
    /// provider's own (a proxy, or a test's stand-in).
    pub api_url: Option<String>,
    /// `cloudflare`: the zone's id; `route53`: the hosted zone's id (each
    /// looked up by the zone's name when left out).
    pub zone_id: Option<String>,
    /// `route53`: an access key; the AWS SDK's default chain (environment,
    /// profile, the instance's or task's role) when left out.
    pub aws_access_key_id: Option<String>,
    pub aws_secret_access_key: Option<String>,
    pub aws_secret_access_key_file: Option<PathBuf>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            provider: DnsProviderKind::None,
            mode: DnsMode::Wildcard,
            addresses: Vec::new(),
            cname: None,
            ttl: 300,
            recheck_seconds: 600,
            zone: None,
            server: None,
            check_servers: Vec::new(),
            propagation_seconds: 300,
            tsig_key: None,
            tsig_algorithm: "hmac-sha256".into(),
            tsig_secret: None,
            tsig_secret_file: None,
            api_token: None,
            api_token_file: None,
            api_url: None,
            zone_id: None,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            aws_secret_access_key_file: None,
        }
    }
}

/// Shows whether the TSIG secret is set, not the secret.
impl std::fmt::Debug for DnsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsConfig")
            .field("provider", &self.provider)
            .field("mode", &self.mode)
            .field("addresses", &self.addresses)
            .field("cname", &self.cname)
            .field("ttl", &self.ttl)
            .field("recheck_seconds", &self.recheck_seconds)
            .field("zone", &self.zone)
            .field("server", &self.server)
            .field("check_servers", &self.check_servers)
            .field("propagation_seconds", &self.propagation_seconds)
            .field("tsig_key", &self.tsig_key)
            .field("tsig_algorithm", &self.tsig_algorithm)
            .field(
                "tsig_secret",
                &self.tsig_secret.as_ref().map(|_| "<hidden>"),
            )
            .field("tsig_secret_file", &self.tsig_secret_file)
            .field("api_token", &self.api_token.as_ref().map(|_| "<hidden>"))
            .field("api_token_file", &self.api_token_file)
            .field("api_url", &self.api_url)
            .field("zone_id", &self.zone_id)
            .field("aws_access_key_id", &self.aws_access_key_id)
            .field(
                "aws_secret_access_key",
                &self.aws_secret_access_key.as_ref().map(|_| "<hidden>"),
            )
            .field(
                "aws_secret_access_key_file",
                &self.aws_secret_access_key_file,
            )
            .finish()
    }
}

/// What `[dns]` asks for, ready to use.
pub struct DnsSetup {
    pub provider: Arc<dyn DnsProvider>,
    pub mode: DnsMode,
    /// What every world's name should hold.
    pub records: Vec<Record>,
    pub ttl: u32,
    /// `per-world`: how often a name that holds what it should is looked
    /// at again.
    pub recheck: jiff::SignedDuration,
    /// The zone the names are in.
    pub zone: String,
    /// DNS-01: the servers to check a challenge on (empty: look them up).
    pub check_servers: Vec<std::net::SocketAddr>,
    /// DNS-01: how long to wait for them.
    pub propagation: std::time::Duration,
}

fn invalid(why: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("invalid configuration: {why}")
}

impl DnsConfig {
    /// The provider and what names should hold; `None` without a
    /// provider. Checks everything; nothing is sent.
    pub fn setup(&self, domain: &str) -> anyhow::Result<Option<DnsSetup>> {
        if self.provider == DnsProviderKind::None {
            return Ok(None);
        }
        let records = match (&self.cname, self.addresses.is_empty()) {
            (Some(name), true) => vec![Record::Cname(name.trim_end_matches('.').to_owned())],
            (None, false) => self
                .addresses
                .iter()
                .map(|ip| match ip {
                    IpAddr::V4(v4) => Record::A(*v4),
                    IpAddr::V6(v6) => Record::Aaaa(*v6),
                })
                .collect(),
            (Some(_), false) => {
                return Err(invalid("set dns.addresses or dns.cname, not both"));
            }
            (None, true) => {
                return Err(invalid(
                    "dns.provider needs where worlds' names lead: dns.addresses (Tavern's public IP addresses) or dns.cname",
                ));
            }
        };
        let provider: Arc<dyn DnsProvider> = match self.provider {
            DnsProviderKind::None => return Ok(None),
            DnsProviderKind::Rfc2136 => Arc::new(self.rfc2136(domain)?),
            DnsProviderKind::Cloudflare => {
                let (api_url, token) = self.api("cloudflare", cloudflare::API_URL)?;
                Arc::new(
                    Cloudflare::new(&CloudflareSettings {
                        api_url,
                        token,
                        zone: self.zone(domain),
                        zone_id: self.zone_id.clone(),
                    })
                    .map_err(|e| invalid(format!("dns: {e}")))?,
                )
            }
            DnsProviderKind::Route53 => self.route53(domain)?,
            DnsProviderKind::Digitalocean => {
                let (api_url, token) = self.api("digitalocean", digitalocean::API_URL)?;
                Arc::new(
                    DigitalOcean::new(&DigitalOceanSettings {
                        api_url,
                        token,
                        zone: self.zone(domain),
                    })
                    .map_err(|e| invalid(format!("dns: {e}")))?,
                )
            }
        };
        anyhow::ensure!(
            self.ttl > 0 && self.recheck_seconds > 0,
            "invalid configuration: dns.ttl and dns.recheck_seconds must be above 0"
        );
        let mut check_servers = self
            .check_servers
            .iter()
            .map(|s| server_addr(s))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if check_servers.is_empty()
            && self.provider == DnsProviderKind::Rfc2136
            && let Some(server) = &self.server
        {
            check_servers.push(server_addr(server)?);
        }
        anyhow::ensure!(
            self.propagation_seconds > 0,
            "invalid configuration: dns.propagation_seconds must be above 0"
        );
        Ok(Some(DnsSetup {
            provider,
            mode: self.mode,
            records,
            zone: self.zone(domain),
            check_servers,
            propagation: std::time::Duration::from_secs(u64::from(self.propagation_seconds)),
            ttl: self.ttl,
            recheck: jiff::SignedDuration::from_secs(i64::from(self.recheck_seconds)),
        }))
    }

    fn zone(&self, domain: &str) -> String {
        self.zone.clone().unwrap_or_else(|| domain.to_owned())
    }

    /// An HTTP provider's root and token.
    fn api(&self, provider: &str, default_url: &str) -> anyhow::Result<(String, String)> {
        let token = secret_value("dns.api_token", &self.api_token, &self.api_token_file)?
            .ok_or_else(|| {
                invalid(format!(
                    "dns.provider = \"{provider}\" needs dns.api_token or dns.api_token_file"
                ))
            })?;
        let url = self
            .api_url
            .clone()
            .unwrap_or_else(|| default_url.to_owned());
        Ok((url, token))
    }

    #[cfg(not(feature = "route53"))]
    fn route53(&self, _domain: &str) -> anyhow::Result<Arc<dyn DnsProvider>> {
        // Refused before this by `check_features`, with how to get it.
        Err(invalid(
            "dns.provider = \"route53\" needs a build with --features route53",
        ))
    }

    #[cfg(feature = "route53")]
    fn route53(&self, domain: &str) -> anyhow::Result<Arc<dyn DnsProvider>> {
        use tavern_dns_route53::{Route53, Route53Settings};
        let secret = secret_value(
            "dns.aws_secret_access_key",
            &self.aws_secret_access_key,
            &self.aws_secret_access_key_file,
        )?;
        let access_key = match (&self.aws_access_key_id, secret) {
            (Some(id), Some(secret)) => Some((id.clone(), secret)),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "dns.aws_access_key_id and dns.aws_secret_access_key go together (or leave both out for the AWS SDK's default credentials)",
                ));
            }
        };
        let provider = Route53::new(Route53Settings {
            zone: self.zone(domain),
            hosted_zone_id: self.zone_id.clone(),
            access_key,
            endpoint_url: self.api_url.clone(),
        })
        .map_err(|e| invalid(format!("dns: {e}")))?;
        Ok(Arc::new(provider))
    }

    fn rfc2136(&self, domain: &str) -> anyhow::Result<Rfc2136> {
        let server = self.server.as_deref().ok_or_else(|| {
            invalid("dns.provider = \"rfc2136\" needs dns.server (the zone's primary, HOST:PORT)")
        })?;
        let with_port = server_addr(server)?;
        let key = self.tsig_key.clone().ok_or_else(|| {
            invalid("dns.provider = \"rfc2136\" needs dns.tsig_key (the TSIG key's name)")
        })?;
        let secret = secret_value("dns.tsig_secret", &self.tsig_secret, &self.tsig_secret_file)?
            .ok_or_else(|| {
                invalid("dns.provider = \"rfc2136\" needs dns.tsig_secret or dns.tsig_secret_file")
            })?;
        anyhow::ensure!(
            ALGORITHMS.contains(&self.tsig_algorithm.to_ascii_lowercase().as_str()),
            "invalid configuration: dns.tsig_algorithm must be one of {}",
            ALGORITHMS.join(", ")
        );
        Rfc2136::new(&Rfc2136Settings {
            server: with_port,
            zone: self.zone(domain),
            key_name: key,
            algorithm: self.tsig_algorithm.clone(),
            secret,
        })
        .map_err(|e| invalid(format!("dns: {e}")))
    }
}

/// `HOST:PORT`, `IP` or `HOST` (port 53) as one address.
fn server_addr(server: &str) -> anyhow::Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs as _;
    if let Ok(a) = server.parse() {
        return Ok(a);
    }
    if let Ok(ip) = server.parse::<IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, 53));
    }
    let with_port = match server.contains(':') {
        true => server.to_owned(),
        false => format!("{server}:53"),
    };
    with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            invalid(format!(
                "the DNS server {server:?} is neither an address nor a name that resolves"
            ))
        })
}
