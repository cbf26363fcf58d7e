//! `[tls]`: plain HTTP, certificates from files, or from an ACME CA.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    #[default]
    Off,
    Files,
    Acme,
}

/// How an ACME CA checks that Tavern answers for a host.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// Over TLS on the public listener (port 443): needs nothing else.
    #[default]
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// Over plain HTTP on `http_listen` (port 80).
    #[serde(rename = "http-01")]
    Http01,
    /// A TXT record through `[dns]`'s provider: one certificate for the
    /// domain and `*.<domain>`.
    #[serde(rename = "dns-01")]
    Dns01,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// `off`, `files` (cert_file and key_file) or `acme`.
    pub mode: TlsMode,
    /// PEM certificate chain (a wildcard for `*.<domain>` is common).
    pub cert_file: Option<PathBuf>,
    /// PEM private key.
    pub key_file: Option<PathBuf>,
    /// A plain-HTTP listener that redirects to HTTPS (e.g. `0.0.0.0:80`).
    pub http_listen: Option<SocketAddr>,
    /// The ACME CA's directory (Let's Encrypt by default).
    pub acme_directory: String,
    /// Contact address given to the CA (expiry warnings).
    pub acme_email: Option<String>,
    /// A PEM root certificate for the CA's own HTTPS, for a private CA.
    pub acme_ca_file: Option<PathBuf>,
    /// `tls-alpn-01` (port 443 only), `http-01` (needs http_listen) or
    /// `dns-01` (needs `[dns]`'s provider).
    pub acme_challenge: AcmeChallenge,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            mode: TlsMode::Off,
            cert_file: None,
            key_file: None,
            http_listen: None,
            acme_directory: tavern_proxy::acme::LETS_ENCRYPT.into(),
            acme_email: None,
            acme_ca_file: None,
            acme_challenge: AcmeChallenge::TlsAlpn01,
        }
    }
}

impl Config {
    /// Certificates from a CA need names the CA can reach, and a way in.
    pub(super) fn validate_acme(&self) -> anyhow::Result<()> {
        let tls = &self.tls;
        anyhow::ensure!(
            tls.cert_file.is_none() && tls.key_file.is_none(),
            "invalid configuration: tls.cert_file and tls.key_file are for tls.mode = \"files\", not \"acme\""
        );
        let names = std::iter::once(self.server.domain.clone()).chain(self.public_host());
        for name in names {
            let local = name == "localhost" || name.ends_with(".localhost");
            let ip = name.parse::<std::net::IpAddr>().is_ok();
            anyhow::ensure!(
                name.contains('.') && !local && !ip,
                "invalid configuration: tls.mode = \"acme\" needs a public domain name in server.domain (and server.public_url), not {name:?}"
            );
        }
        anyhow::ensure!(
            tls.acme_directory.starts_with("https://"),
            "invalid configuration: tls.acme_directory {:?} must be an https:// URL",
            tls.acme_directory
        );
        if let Some(email) = &tls.acme_email {
            anyhow::ensure!(
                email.split_once('@').is_some_and(|(a, b)| !a.is_empty()
                    && b.contains('.')
                    && !email.contains(char::is_whitespace)),
                "invalid configuration: tls.acme_email {email:?} is not an email address"
            );
        }
        if let Some(ca) = &tls.acme_ca_file {
            anyhow::ensure!(
                ca.is_file(),
                "invalid configuration: tls.acme_ca_file {} does not exist",
                ca.display()
            );
        }
        anyhow::ensure!(
            tls.acme_challenge != AcmeChallenge::Http01 || tls.http_listen.is_some(),
            "invalid configuration: tls.acme_challenge = \"http-01\" needs tls.http_listen (port 80)"
        );
        anyhow::ensure!(
            tls.acme_challenge != AcmeChallenge::Dns01
                || self.dns.provider != super::DnsProviderKind::None,
            "invalid configuration: tls.acme_challenge = \"dns-01\" writes its challenges through the DNS provider: set dns.provider (see [dns])"
        );
        Ok(())
    }
}

impl Config {
    /// `[tls]`: files need both halves; a CA needs public names.
    pub(super) fn check_tls(&self) -> anyhow::Result<()> {
        match self.tls.mode {
            TlsMode::Off => {}
            TlsMode::Files => anyhow::ensure!(
                self.tls.cert_file.is_some() && self.tls.key_file.is_some(),
                "invalid configuration: tls.mode = \"files\" needs tls.cert_file and tls.key_file"
            ),
            TlsMode::Acme => self.validate_acme()?,
        }
        Ok(())
    }
}
