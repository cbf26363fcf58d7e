//! Certificates from an ACME CA (Let's Encrypt unless told otherwise): one
//! per host — the bare domain and each world's host — proven with HTTP-01 or
//! TLS-ALPN-01; or, with DNS-01 through the community's DNS provider, one
//! for the domain and `*.<domain>` together. Cached in DATA_DIR (keys
//! sealed), renewed once a third of their lifetime is left, and handed to
//! the TLS listener by SNI (a world's host finds the wildcard).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use jiff::{SignedDuration, Timestamp};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tavern_core::routes::RouteTable;
use tavern_core::secrets::SecretBox;
use tavern_dns::DnsProvider;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::route::{Routing, Site};

mod cache;
mod dns01;
use cache::Cache;
pub use dns01::record_name;

/// The ALPN protocol of TLS-ALPN-01 validation (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// How Tavern proves to the CA that it answers for a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// A token served over plain HTTP on port 80 (`tls.http_listen`).
    Http01,
    /// A special certificate served over TLS on port 443.
    TlsAlpn01,
    /// A TXT record `_acme-challenge.<host>` through the DNS provider
    /// ([`AcmeSettings::dns`]): the only way to a wildcard certificate.
    Dns01,
}

impl Challenge {
    /// The name RFC 8555 and 8737 give it.
    pub fn name(self) -> &'static str {
        match self {
            Challenge::Http01 => "http-01",
            Challenge::TlsAlpn01 => "tls-alpn-01",
            Challenge::Dns01 => "dns-01",
        }
    }

    fn kind(self) -> ChallengeType {
        match self {
            Challenge::Http01 => ChallengeType::Http01,
            Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            Challenge::Dns01 => ChallengeType::Dns01,
        }
    }
}

#[derive(Clone, Debug)]
pub struct AcmeSettings {
    /// The CA's directory URL.
    pub directory: String,
    /// Where the CA may write about expiring certificates.
    pub email: Option<String>,
    /// A PEM root for the CA's own HTTPS (a private or test CA).
    pub ca_file: Option<PathBuf>,
    pub challenge: Challenge,
    /// DATA_DIR/acme.
    pub cache_dir: PathBuf,
    /// DNS-01: where challenges are written, and checked.
    pub dns: Option<Dns01>,
}

/// What DNS-01 needs: the provider that writes `_acme-challenge` records,
/// and the zone's authoritative servers that must all answer with them
/// before the CA is asked to look.
#[derive(Clone)]
pub struct Dns01 {
    pub provider: Arc<dyn DnsProvider>,
    /// The zone the records are in.
    pub zone: String,
    /// The servers to check; empty: the zone's authoritative servers,
    /// looked up through the system's resolver at each order.
    pub servers: Vec<std::net::SocketAddr>,
    /// How long a record may take to reach every server.
    pub patience: Duration,
}

impl fmt::Debug for Dns01 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dns01")
            .field("zone", &self.zone)
            .field("servers", &self.servers)
            .field("patience", &self.patience)
            .finish()
    }
}

/// The certificates the TLS listener serves, and the answers to the CA's
/// challenges in flight. Cheap to clone.
#[derive(Clone, Default)]
pub struct Certificates {
    inner: Arc<Shelves>,
}

#[derive(Default)]
struct Shelves {
    /// Host → its certificate (and when it was valid from and until).
    served: RwLock<HashMap<String, Held>>,
    /// Host → the TLS-ALPN-01 challenge certificate.
    alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// HTTP-01 token → key authorization.
    http: RwLock<HashMap<String, String>>,
}

#[derive(Clone)]
struct Held {
    key: Arc<CertifiedKey>,
    not_before: Timestamp,
    not_after: Timestamp,
    /// The names it is for (wildcards among them).
    names: Vec<String>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = read(&self.inner.served).keys().cloned().collect();
        f.debug_struct("Certificates")
            .field("hosts", &hosts)
            .finish()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let host = hello.server_name()?.to_ascii_lowercase();
        let validating = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
        if validating {
            return read(&self.inner.alpn).get(&host).cloned();
        }
        let served = read(&self.inner.served);
        let held = served.get(&host).or_else(|| {
            // A world's host under a wildcard certificate.
            let (_, parent) = host.split_once('.')?;
            served.get(&format!("*.{parent}"))
        });
        held.map(|h| h.key.clone())
    }
}

impl Certificates {
    /// A TLS acceptor that picks the certificate by SNI and answers
    /// TLS-ALPN-01 validation.
    pub fn acceptor(&self) -> TlsAcceptor {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the default provider supports the default versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(self.clone()));
        config.alpn_protocols = crate::admission::http_alpn();
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
        TlsAcceptor::from(Arc::new(config))
    }

    /// The key authorization for an HTTP-01 token in flight.
    pub fn http01_answer(&self, token: &str) -> Option<String> {
        read(&self.inner.http).get(token).cloned()
    }

    /// Serves `held` for `host`, and for the wildcards it names.
    fn install(&self, host: &str, held: Held) {
        let mut served = write(&self.inner.served);
        for wildcard in held.names.iter().filter(|n| n.starts_with("*.")) {
            served.insert(wildcard.clone(), held.clone());
        }
        served.insert(host.to_owned(), held);
    }

    fn renewal_at(&self, host: &str) -> Option<Timestamp> {
        read(&self.inner.served)
            .get(host)
            .map(|h| renew_at(h.not_before, h.not_after))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("the ACME CA at {directory}: {source}")]
    Ca {
        directory: String,
        #[source]
        source: instant_acme::Error,
    },
    #[error("the CA did not validate {host}: {detail}")]
    Refused { host: String, detail: String },
    #[error("the CA offers no {kind} challenge for {host}")]
    NoChallenge { host: String, kind: &'static str },
    #[error("a certificate for {host} cannot be used: {detail}")]
    BadCertificate { host: String, detail: String },
    #[error("cannot read or write the certificate cache {path}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the certificate cache {path} is damaged or was sealed with another key")]
    Sealed { path: PathBuf },
    #[error("dns-01 for {host}: {detail}")]
    Dns { host: String, detail: String },
}

/// A certificate chain and its private key, both PEM.
struct CertPem {
    host: String,
    chain: String,
    key: String,
}

impl CertPem {
    fn load(&self) -> Result<Held, AcmeError> {
        let bad = |detail: String| AcmeError::BadCertificate {
            host: self.host.clone(),
            detail,
        };
        let chain = CertificateDer::pem_slice_iter(self.chain.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        let leaf = chain.first().ok_or_else(|| bad("no certificate".into()))?;
        let (not_before, not_after, names) = validity(leaf).map_err(bad)?;
        let key =
            PrivateKeyDer::from_pem_slice(self.key.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Held {
            key: Arc::new(CertifiedKey::new(chain, signing)),
            not_before,
            not_after,
            names,
        })
    }
}

/// When a certificate was valid from and until, and the DNS names it is
/// for.
fn validity(der: &CertificateDer<'_>) -> Result<(Timestamp, Timestamp, Vec<String>), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let v = cert.validity();
    let at = |t: x509_parser::time::ASN1Time| {
        Timestamp::from_second(t.timestamp()).map_err(|e| e.to_string())
    };
    let names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok((at(v.not_before)?, at(v.not_after)?, names))
}

// ---- pure decisions -------------------------------------------------------

/// When to renew a certificate: once a third of its lifetime is left
/// (30 days before expiry for Let's Encrypt's 90-day certificates).
pub fn renew_at(not_before: Timestamp, not_after: Timestamp) -> Timestamp {
    let life = not_after.duration_since(not_before);
    not_after
        .checked_sub(life / 3)
        .unwrap_or(not_before)
        .max(not_before)
}

/// Every host Tavern answers for under `site`: the bare domain, the API's
/// other names and, with host routing, each world's host.
pub fn wanted_hosts(site: &Site, table: &RouteTable) -> BTreeSet<String> {
    let mut hosts: BTreeSet<String> = std::iter::once(site.domain.to_ascii_lowercase())
        .chain(site.api_hosts.iter().map(|h| h.to_ascii_lowercase()))
        .collect();
    if site.routing == Routing::Host {
        hosts.extend(
            table
                .routes
                .keys()
                .map(|slug| format!("{}.{}", slug.as_str(), site.domain.to_ascii_lowercase())),
        );
    }
    hosts
}

/// The certificates to keep with DNS-01: the domain's (with `*.<domain>`,
/// which covers every world), and the API's other names that it does not
/// cover.
pub fn wanted_with_wildcard(site: &Site) -> BTreeSet<String> {
    let domain = site.domain.to_ascii_lowercase();
    std::iter::once(domain.clone())
        .chain(
            site.api_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .filter(|h| !under_wildcard(h, &domain)),
        )
        .collect()
}

/// `host` is one label under `domain` (a name `*.<domain>` covers).
pub fn under_wildcard(host: &str, domain: &str) -> bool {
    host.strip_suffix(domain)
        .and_then(|rest| rest.strip_suffix('.'))
        .is_some_and(|label| !label.is_empty() && !label.contains('.'))
}

/// How long to wait after the `failures`-th failure in a row for one host:
/// a minute, doubling, at most six hours (well inside Let's Encrypt's limit
/// of five failed validations per host an hour).
pub fn retry_after(failures: u32) -> SignedDuration {
    let minutes = 1i64 << failures.saturating_sub(1).min(9);
    SignedDuration::from_mins(minutes.min(6 * 60))
}

/// A directory URL as a folder name: its host, port and path with
/// everything else replaced, so certificates of different CAs (staging and
/// production, say) never mix.
pub fn cache_folder(directory: &str) -> String {
    let rest = directory
        .split_once("://")
        .map_or(directory, |(_, rest)| rest);
    rest.trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A host name that can name a file: lowercase letters, digits, dots and
/// dashes, no leading dot.
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && !host.starts_with('.')
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

// ---- ordering -------------------------------------------------------------

/// Keeps a certificate for every wanted host until `cancel`: loads the
/// cache, then orders what is missing or due, waking at each route change,
/// renewal time or retry.
pub async fn run(
    certs: Certificates,
    settings: AcmeSettings,
    secrets: SecretBox,
    site: Site,
    mut routes: watch::Receiver<Arc<RouteTable>>,
    cancel: CancellationToken,
) {
    let cache = Cache::new(&settings.cache_dir, &settings.directory, secrets);
    let wildcard = settings.challenge == Challenge::Dns01;
    let domain = site.domain.to_ascii_lowercase();
    for pem in cache.load_all() {
        // A world's own certificate from before DNS-01: the wildcard
        // serves it now, and this one would not be renewed.
        if wildcard && under_wildcard(&pem.host, &domain) {
            continue;
        }
        match pem.load() {
            Ok(held) => {
                certs.install(&pem.host, held);
                tracing::info!(host = %pem.host, "certificate loaded from the cache");
            }
            Err(e) => tracing::warn!(error = %e, "cached certificate ignored"),
        }
    }
    let mut account: Option<Account> = None;
    let mut failures: HashMap<String, (u32, Timestamp)> = HashMap::new();
    loop {
        let wanted = match wildcard {
            true => {
                routes.borrow_and_update();
                wanted_with_wildcard(&site)
            }
            false => wanted_hosts(&site, &routes.borrow_and_update()),
        };
        for host in &wanted {
            if cancel.is_cancelled() {
                return;
            }
            let now = Timestamp::now();
            let due = certs.renewal_at(host).is_none_or(|at| at <= now);
            let waiting = failures.get(host).is_some_and(|(_, next)| *next > now);
            if !due || waiting {
                continue;
            }
            let ordered = tokio::select! {
                () = cancel.cancelled() => return,
                r = obtain(&mut account, &settings, &cache, &certs, host, wildcard && *host == domain) => r,
            };
            match ordered {
                Ok(()) => {
                    failures.remove(host);
                }
                Err(e) => {
                    let n = failures.get(host).map_or(1, |(n, _)| n + 1);
                    let next = Timestamp::now() + retry_after(n);
                    tracing::warn!(%host, error = %e, retry_at = %next, "no certificate yet");
                    failures.insert(host.clone(), (n, next));
                }
            }
        }
        let now = Timestamp::now();
        let next = wanted
            .iter()
            .filter_map(|h| {
                let renew = certs.renewal_at(h);
                let retry = failures.get(h).map(|(_, t)| *t);
                match (renew, retry) {
                    (Some(r), Some(t)) => Some(r.max(t)),
                    (r, t) => r.or(t),
                }
            })
            .min()
            .unwrap_or(now + SignedDuration::from_hours(1));
        let wait = next
            .duration_since(now)
            .clamp(SignedDuration::from_secs(1), SignedDuration::from_hours(1));
        let wait = Duration::try_from(wait).unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = routes.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Orders, caches and installs a certificate for `host` (and for
/// `*.<host>` too, when `with_wildcard`).
async fn obtain(
    account: &mut Option<Account>,
    settings: &AcmeSettings,
    cache: &Cache,
    certs: &Certificates,
    host: &str,
    with_wildcard: bool,
) -> Result<(), AcmeError> {
    let ca = |source| AcmeError::Ca {
        directory: settings.directory.clone(),
        source,
    };
    let acct = match account {
        Some(a) => a.clone(),
        None => {
            let a = open_account(settings, cache).await?;
            *account = Some(a.clone());
            a
        }
    };
    let mut identifiers = vec![Identifier::Dns(host.to_owned())];
    if with_wildcard {
        identifiers.push(Identifier::Dns(format!("*.{host}")));
    }
    tracing::info!(%host, wildcard = with_wildcard, "ordering a certificate");
    let mut order = acct
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(ca)?;
    let mut tokens = Vec::new();
    let mut txt_names = Vec::new();
    let published = match (&settings.dns, settings.challenge) {
        (Some(dns), Challenge::Dns01) => {
            dns01::publish(&mut order, dns, host, &mut txt_names, &ca).await
        }
        (None, Challenge::Dns01) => Err(AcmeError::Dns {
            host: host.to_owned(),
            detail: "no DNS provider is set".into(),
        }),
        _ => Ok(()),
    };
    let answered = match published {
        Ok(()) => {
            answer_challenges(
                &mut order,
                settings.challenge,
                certs,
                host,
                &mut tokens,
                &ca,
            )
            .await
        }
        Err(e) => Err(e),
    };
    let result = match answered {
        Ok(()) => finish(&mut order, host, &ca).await,
        Err(e) => Err(e),
    };
    if let Some(dns) = &settings.dns {
        dns01::clean(dns, &txt_names).await;
    }
    // The challenge answers are needed only while the CA validates.
    write(&certs.inner.alpn).remove(host);
    let mut http = write(&certs.inner.http);
    for t in tokens {
        http.remove(&t);
    }
    drop(http);
    let (chain, key) = result?;
    let pem = CertPem {
        host: host.to_owned(),
        chain,
        key,
    };
    let held = pem.load()?;
    cache.store(host, &pem.chain, &pem.key)?;
    tracing::info!(%host, valid_until = %held.not_after, "certificate issued");
    certs.install(host, held);
    Ok(())
}

/// Publishes the answer to each pending authorization and tells the CA.
async fn answer_challenges(
    order: &mut instant_acme::Order,
    kind: Challenge,
    certs: &Certificates,
    host: &str,
    tokens: &mut Vec<String>,
    ca: &impl Fn(instant_acme::Error) -> AcmeError,
) -> Result<(), AcmeError> {
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(ca)?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        let mut challenge = authz
            .challenge(kind.kind())
            .ok_or_else(|| AcmeError::NoChallenge {
                host: host.to_owned(),
                kind: kind.name(),
            })?;
        let key_auth = challenge.key_authorization();
        match kind {
            Challenge::Http01 => {
                write(&certs.inner.http).insert(challenge.token.clone(), key_auth.as_str().into());
                tokens.push(challenge.token.clone());
            }
            Challenge::TlsAlpn01 => {
                let cert = alpn_certificate(host, key_auth.digest().as_ref())?;
                write(&certs.inner.alpn).insert(host.to_owned(), cert);
            }
            // Written and checked before (`dns01::publish`).
            Challenge::Dns01 => {}
        }
        challenge
            .set_ready()
            .await
            .map_err(|e| AcmeError::Refused {
                host: host.to_owned(),
                detail: e.to_string(),
            })?;
    }
    Ok(())
}

/// Waits for validation, then finalizes: the chain and key, PEM.
async fn finish(
    order: &mut instant_acme::Order,
    host: &str,
    ca: &impl Fn(instant_acme::Error) -> AcmeError,
) -> Result<(String, String), AcmeError> {
    let patience = RetryPolicy::new()
        .initial_delay(Duration::from_millis(500))
        .timeout(Duration::from_secs(120));
    let status = order.poll_ready(&patience).await;
    match status {
        Ok(OrderStatus::Ready) => {}
        Ok(_) | Err(instant_acme::Error::Api(_)) => {
            return Err(AcmeError::Refused {
                host: host.to_owned(),
                detail: why_invalid(order).await,
            });
        }
        Err(e) => return Err(ca(e)),
    }
    let key = order.finalize().await.map_err(ca)?;
    let chain = order.poll_certificate(&patience).await.map_err(ca)?;
    Ok((chain, key))
}

/// The CA's reason for refusing an order, from its challenges.
async fn why_invalid(order: &mut instant_acme::Order) -> String {
    let mut reasons = Vec::new();
    if let Some(problem) = &order.state().error {
        reasons.push(problem.to_string());
    }
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        for c in &authz.challenges {
            if let Some(problem) = &c.error {
                reasons.push(problem.to_string());
            }
        }
    }
    if reasons.is_empty() {
        "the order became invalid".into()
    } else {
        reasons.join("; ")
    }
}

/// The self-signed certificate that answers a TLS-ALPN-01 challenge.
fn alpn_certificate(host: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, AcmeError> {
    let bad = |e: &dyn fmt::Display| AcmeError::BadCertificate {
        host: host.to_owned(),
        detail: e.to_string(),
    };
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).map_err(|e| bad(&e))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| bad(&e))?;
    let cert = params.self_signed(&key).map_err(|e| bad(&e))?;
    let key_der = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| bad(&e))?;
    let signing =
        rustls::crypto::aws_lc_rs::sign::any_supported_type(&key_der).map_err(|e| bad(&e))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

/// The cached ACME account, or a new one (the CA's terms agreed to by
/// choosing `tls.mode = "acme"`).
async fn open_account(settings: &AcmeSettings, cache: &Cache) -> Result<Account, AcmeError> {
    let ca = |source| AcmeError::Ca {
        directory: settings.directory.clone(),
        source,
    };
    let builder = || match &settings.ca_file {
        Some(root) => Account::builder_with_root(root),
        None => Account::builder(),
    };
    let path = cache.account_path();
    if let Some(json) = cache.get_sealed(&path)? {
        let credentials: AccountCredentials =
            serde_json::from_slice(&json).map_err(|_| AcmeError::Sealed { path: path.clone() })?;
        return builder()
            .map_err(ca)?
            .from_credentials(credentials)
            .await
            .map_err(ca);
    }
    let contact = settings.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder()
        .map_err(ca)?
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            None,
        )
        .await
        .map_err(ca)?;
    let json = serde_json::to_vec(&credentials).map_err(|e| AcmeError::Cache {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    cache.put_sealed(&path, &json)?;
    tracing::info!(directory = %settings.directory, "ACME account created");
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use tavern_types::Slug;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn renews_when_a_third_of_the_lifetime_is_left() {
        // Let's Encrypt: 90 days → 30 days before expiry.
        assert_eq!(
            renew_at(ts("2026-01-01T00:00:00Z"), ts("2026-04-01T00:00:00Z")),
            ts("2026-03-02T00:00:00Z")
        );
        // A 30-second certificate renews after 20 seconds.
        assert_eq!(
            renew_at(ts("2026-01-01T00:00:00Z"), ts("2026-01-01T00:00:30Z")),
            ts("2026-01-01T00:00:20Z")
        );
        // Nonsense validity renews at once.
        assert_eq!(
            renew_at(ts("2026-01-01T00:00:00Z"), ts("2025-01-01T00:00:00Z")),
            ts("2026-01-01T00:00:00Z")
        );
    }

    #[test]
    fn wants_the_domain_the_api_names_and_each_world_under_host_routing() {
        let mut table = RouteTable::default();
        for slug in ["alpha", "beta"] {
            let slug = Slug::parse(slug).unwrap();
            table.routes.insert(
                slug.clone(),
                tavern_core::routes::Route {
                    slug,
                    upstream: None,
                    state: tavern_types::ObservedState::Stopped,
                    since: Timestamp::UNIX_EPOCH,
                    desired: tavern_types::DesiredState::Stopped,
                    reason: None,
                    next_session: None,
                    wake_on_visit: None,
                },
            );
        }
        let mut site = Site {
            domain: "Games.Example.org".into(),
            api_hosts: vec!["tavern.example.org".into()],
            routing: Routing::Host,
        };
        let hosts: Vec<String> = wanted_hosts(&site, &table).into_iter().collect();
        assert_eq!(
            hosts,
            [
                "alpha.games.example.org",
                "beta.games.example.org",
                "games.example.org",
                "tavern.example.org"
            ]
        );
        site.routing = Routing::Path;
        let hosts: Vec<String> = wanted_hosts(&site, &table).into_iter().collect();
        assert_eq!(hosts, ["games.example.org", "tavern.example.org"]);
    }

    #[test]
    fn with_a_wildcard_only_names_it_does_not_cover_are_ordered_apart() {
        let site = Site {
            domain: "Games.Example.org".into(),
            api_hosts: vec![
                "api.games.example.org".into(),
                "tavern.example.org".into(),
                "deep.api.games.example.org".into(),
            ],
            routing: Routing::Host,
        };
        let hosts: Vec<String> = wanted_with_wildcard(&site).into_iter().collect();
        assert_eq!(
            hosts,
            [
                "deep.api.games.example.org",
                "games.example.org",
                "tavern.example.org"
            ]
        );
        assert!(under_wildcard("w1.games.example.org", "games.example.org"));
        for not in [
            "games.example.org",
            ".games.example.org",
            "a.b.games.example.org",
            "xgames.example.org",
        ] {
            assert!(!under_wildcard(not, "games.example.org"), "{not}");
        }
        assert_eq!(
            record_name("*.games.example.org"),
            "_acme-challenge.games.example.org"
        );
        assert_eq!(
            record_name("games.example.org"),
            "_acme-challenge.games.example.org"
        );
    }

    #[test]
    fn retries_back_off_from_a_minute_to_six_hours() {
        assert_eq!(retry_after(0), SignedDuration::from_mins(1));
        assert_eq!(retry_after(1), SignedDuration::from_mins(1));
        assert_eq!(retry_after(2), SignedDuration::from_mins(2));
        assert_eq!(retry_after(5), SignedDuration::from_mins(16));
        assert_eq!(retry_after(50), SignedDuration::from_hours(6));
        let steps: Vec<_> = (1..20).map(retry_after).collect();
        assert!(steps.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn cache_folders_keep_cas_apart_and_stay_inside_the_cache() {
        assert_eq!(
            cache_folder(LETS_ENCRYPT),
            "acme-v02.api.letsencrypt.org_directory"
        );
        assert_ne!(
            cache_folder("https://acme-staging-v02.api.letsencrypt.org/directory"),
            cache_folder(LETS_ENCRYPT)
        );
        assert_eq!(
            cache_folder("https://127.0.0.1:14000/dir"),
            "127.0.0.1_14000_dir"
        );
        let odd = cache_folder("https://x/../../etc");
        assert!(!odd.contains('/'), "{odd}");
        assert!(is_host_name("alpha.games.example.org"));
        for bad in ["", ".hidden", "a/b", "A.example", "..", "x_y"] {
            assert!(!is_host_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_cache_seals_keys_and_gives_back_what_it_stored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path(), LETS_ENCRYPT, SecretBox::from_key([3; 32]));
        let made = rcgen::generate_simple_self_signed(vec!["w.example.org".into()]).unwrap();
        let key_pem = made.signing_key.serialize_pem();
        cache
            .store("w.example.org", &made.cert.pem(), &key_pem)
            .unwrap();
        for entry in walk(dir.path()) {
            let bytes = std::fs::read(&entry).unwrap();
            assert!(
                !bytes.windows(11).any(|w| w == b"PRIVATE KEY"),
                "{} holds a key in clear",
                entry.display()
            );
        }
        let all = cache.load_all();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].host, "w.example.org");
        assert_eq!(all[0].key, key_pem);
        let certs = Certificates::default();
        certs.install("w.example.org", all[0].load().unwrap());
        assert!(certs.renewal_at("w.example.org").unwrap() > Timestamp::now());
        assert_eq!(certs.renewal_at("other.example.org"), None);

        // Another DATA_DIR key cannot open it: skipped, not served.
        let other = Cache::new(dir.path(), LETS_ENCRYPT, SecretBox::from_key([4; 32]));
        assert!(other.load_all().is_empty());
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }
}
