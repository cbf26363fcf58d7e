//! `[server]`: where Tavern listens, the domain worlds live under, its
//! public address, and the listener's limits.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tavern_types::Scheme;

use super::*;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the one public listener: the dashboard, the API and
    /// every world.
    pub listen: SocketAddr,
    /// Worlds live at `<slug>.<domain>`.
    pub domain: String,
    pub data_dir: PathBuf,
    /// How people reach Tavern from outside, e.g. `https://tavern.example.org`;
    /// sets the scheme and port of the URLs Tavern shows.
    pub public_url: Option<String>,
    /// Largest API request body in bytes.
    pub body_limit: usize,
    /// Worlds at `<slug>.<domain>` (`host`) or at `<domain>/<slug>/` (`path`).
    pub routing: RoutingMode,
    /// Largest request body to a world in bytes (Foundry's uploads).
    pub world_body_limit: u64,
    /// Connections the public listener keeps at once; default: 10 000, or
    /// fewer if the process may not open files for so many.
    pub max_connections: Option<usize>,
    /// Connections from one client (an IPv4 address, an IPv6 /64).
    pub max_connections_per_client: usize,
    /// Seconds a new connection may stay silent, and then take to send a
    /// complete request head (also after each response, kept alive).
    pub header_timeout_seconds: u64,
    /// The key secrets are sealed with (32 random bytes), when replicas
    /// share it; default: `DATA_DIR/secret.key`, made on first start.
    pub secret_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RoutingMode {
    Host,
    Path,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            domain: "localhost".into(),
            data_dir: PathBuf::from("tavern-data"),
            public_url: None,
            body_limit: 1024 * 1024,
            routing: RoutingMode::Host,
            world_body_limit: 300 * 1024 * 1024,
            max_connections: None,
            max_connections_per_client: 256,
            header_timeout_seconds: 30,
            secret_key_file: None,
        }
    }
}

impl Config {
    /// Scheme and port people use to reach Tavern; without `public_url`,
    /// plain HTTP on the port actually bound (`bound`).
    pub fn public_scheme_and_port(&self, bound: SocketAddr) -> (Scheme, Option<u16>) {
        let scheme = match &self.server.public_url {
            Some(url) => return public_parts(url).unwrap_or((Scheme::Http, None)),
            None if self.tls.mode != TlsMode::Off => Scheme::Https,
            None => Scheme::Http,
        };
        let port = bound.port();
        (scheme, (port != scheme.default_port()).then_some(port))
    }
}

impl Config {
    /// The host name of `public_url`, if set (it serves the API too).
    pub fn public_host(&self) -> Option<String> {
        let url = self.server.public_url.as_deref()?;
        let (_, rest) = url.split_once("://")?;
        let host = rest.trim_end_matches('/');
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        Some(name.to_ascii_lowercase())
    }

    /// Where the API answers: `public_url`, else the bound address with a
    /// wildcard shown as `localhost`.
    pub fn api_url(&self, bound: SocketAddr) -> String {
        if let Some(url) = &self.server.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let host = match bound.ip() {
            ip if ip.is_unspecified() => "localhost".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let scheme = if self.tls.mode == TlsMode::Off {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}:{}", bound.port())
    }
}

/// `https://host[:port][/]` → ("https", port unless default).
pub(super) fn public_parts(url: &str) -> anyhow::Result<(Scheme, Option<u16>)> {
    let bad = || {
        anyhow::anyhow!(
            "invalid configuration: server.public_url {url:?} must look like https://tavern.example.org[:port]"
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let scheme: Scheme = scheme.parse().map_err(|_| bad())?;
    let host = rest.trim_end_matches('/');
    anyhow::ensure!(!host.is_empty() && !host.contains('/'), bad());
    let port = match host.rsplit_once(':') {
        Some((_, p)) => Some(p.parse::<u16>().map_err(|_| bad())?),
        None => None,
    };
    Ok((scheme, port.filter(|p| *p != scheme.default_port())))
}

impl ServerConfig {
    /// The domain, the listener's limits and the public address.
    pub(super) fn check(&self) -> anyhow::Result<()> {
        let d = &self.domain;
        anyhow::ensure!(
            !d.is_empty()
                && d.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }),
            "invalid configuration: server.domain {d:?} is not a domain name"
        );
        anyhow::ensure!(
            self.max_connections.is_none_or(|n| n >= 16)
                && self.max_connections_per_client >= 1
                && (1..=3600).contains(&self.header_timeout_seconds),
            "invalid configuration: server.max_connections must be at least 16, server.max_connections_per_client at least 1, and server.header_timeout_seconds between 1 and 3600"
        );
        if let Some(url) = &self.public_url {
            public_parts(url)?;
        }
        Ok(())
    }
}
