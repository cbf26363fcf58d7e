//! RFC 2136 dynamic updates, signed with TSIG (RFC 8945), to a primary
//! server of the zone (BIND, Knot, PowerDNS…), and queries to it: through
//! hickory-client, over TCP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use hickory_client::client::{Client, ClientHandle};
use hickory_client::proto::dnssec::rdata::tsig::TsigAlgorithm;
use hickory_client::proto::dnssec::tsig::TSigner;
use hickory_client::proto::op::ResponseCode;
use hickory_client::proto::rr::rdata::{A, AAAA, CNAME, TXT};
use hickory_client::proto::rr::{DNSClass, Name, RData, RecordSet, RecordType};
use hickory_client::proto::runtime::TokioRuntimeProvider;
use hickory_client::proto::tcp::TcpClientStream;

use crate::{DnsError, DnsProvider, Record, RecordKind};

/// How long one exchange with the server may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The TSIG algorithms taken, by their names in BIND's configuration.
pub const ALGORITHMS: [&str; 3] = ["hmac-sha256", "hmac-sha384", "hmac-sha512"];

/// How to reach the zone's primary server.
#[derive(Clone, Debug)]
pub struct Rfc2136Settings {
    pub server: SocketAddr,
    /// The zone the names are in, e.g. `games.example.org`.
    pub zone: String,
    /// The TSIG key's name, as the server knows it.
    pub key_name: String,
    /// One of [`ALGORITHMS`].
    pub algorithm: String,
    /// The key's secret, base64 (as `tsig-keygen` prints it).
    pub secret: String,
}

/// A zone changed through RFC 2136.
pub struct Rfc2136 {
    server: SocketAddr,
    zone: Name,
    signer: Arc<TSigner>,
}

fn invalid(why: impl Into<String>) -> DnsError {
    DnsError::Invalid(why.into())
}

impl Rfc2136 {
    /// Checks the settings; nothing is sent yet.
    pub fn new(s: &Rfc2136Settings) -> Result<Self, DnsError> {
        let zone = Name::from_ascii(fqdn(&s.zone))
            .map_err(|e| invalid(format!("the zone {:?} is not a DNS name: {e}", s.zone)))?;
        let algorithm = match s.algorithm.to_ascii_lowercase().as_str() {
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha384" => TsigAlgorithm::HmacSha384,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            other => {
                return Err(invalid(format!(
                    "the TSIG algorithm {other:?} is not one of {}",
                    ALGORITHMS.join(", ")
                )));
            }
        };
        let secret = base64::engine::general_purpose::STANDARD
            .decode(s.secret.trim())
            .map_err(|_| invalid("the TSIG secret is not base64"))?;
        if secret.is_empty() {
            return Err(invalid("the TSIG secret is empty"));
        }
        let key_name = Name::from_ascii(fqdn(&s.key_name))
            .map_err(|e| invalid(format!("the TSIG key name is not a DNS name: {e}")))?;
        let signer = TSigner::new(secret, algorithm, key_name, 300)
            .map_err(|e| invalid(format!("the TSIG key cannot sign: {e}")))?;
        Ok(Self {
            server: s.server,
            zone,
            signer: Arc::new(signer),
        })
    }

    /// A name of the zone (refused when outside it).
    fn name(&self, name: &str) -> Result<Name, DnsError> {
        let n = Name::from_ascii(fqdn(name))
            .map_err(|e| invalid(format!("{name:?} is not a DNS name: {e}")))?;
        if !self.zone.zone_of(&n) {
            return Err(invalid(format!("{name} is not in the zone {}", self.zone)));
        }
        Ok(n)
    }

    async fn client(&self, signed: bool) -> Result<Client, DnsError> {
        connect(self.server, signed.then(|| self.signer.clone())).await
    }
}

/// A client of `server` over TCP, signing with `signer` when given.
async fn connect(server: SocketAddr, signer: Option<Arc<TSigner>>) -> Result<Client, DnsError> {
    let (stream, sender) =
        TcpClientStream::new(server, None, Some(TIMEOUT), TokioRuntimeProvider::new());
    let signer = signer.map(|s| s as _);
    let (client, background) = Client::new(stream, sender, signer)
        .await
        .map_err(|e| DnsError::Unreachable(format!("{server}: {e}")))?;
    tokio::spawn(background);
    Ok(client)
}

/// What `server` answers for `name`'s records of `kind`, sorted: a plain
/// query, over TCP (an authoritative server, or a resolver).
pub async fn ask(
    server: SocketAddr,
    name: &str,
    kind: RecordKind,
) -> Result<Vec<Record>, DnsError> {
    let n = Name::from_ascii(fqdn(name))
        .map_err(|e| invalid(format!("{name:?} is not a DNS name: {e}")))?;
    let mut client = connect(server, None).await?;
    let answer = client
        .query(n, DNSClass::IN, record_type(kind))
        .await
        .map_err(sent)?;
    if answer.response_code() != ResponseCode::NXDomain {
        answered(answer.response_code())?;
    }
    let mut found: Vec<Record> = answer
        .answers()
        .iter()
        .filter(|r| r.record_type() == record_type(kind))
        .filter_map(|r| record(r.data()))
        .collect();
    found.sort();
    Ok(found)
}

/// The names of `zone`'s authoritative servers, as `server` answers.
pub async fn name_servers(server: SocketAddr, zone: &str) -> Result<Vec<String>, DnsError> {
    let n = Name::from_ascii(fqdn(zone))
        .map_err(|e| invalid(format!("{zone:?} is not a DNS name: {e}")))?;
    let mut client = connect(server, None).await?;
    let answer = client
        .query(n, DNSClass::IN, RecordType::NS)
        .await
        .map_err(sent)?;
    answered(answer.response_code())?;
    Ok(answer
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::NS(ns) => Some(ns.0.to_ascii().trim_end_matches('.').to_owned()),
            _ => None,
        })
        .collect())
}

/// `name` with its final dot.
fn fqdn(name: &str) -> String {
    match name.ends_with('.') {
        true => name.to_owned(),
        false => format!("{name}."),
    }
}

fn record_type(kind: RecordKind) -> RecordType {
    match kind {
        RecordKind::A => RecordType::A,
        RecordKind::Aaaa => RecordType::AAAA,
        RecordKind::Cname => RecordType::CNAME,
        RecordKind::Txt => RecordType::TXT,
    }
}

fn rdata(r: &Record) -> Result<RData, DnsError> {
    Ok(match r {
        Record::A(ip) => RData::A(A(*ip)),
        Record::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        Record::Cname(to) => RData::CNAME(CNAME(
            Name::from_ascii(fqdn(to)).map_err(|e| invalid(format!("{to:?}: {e}")))?,
        )),
        Record::Txt(text) => {
            if text.len() > 255 {
                return Err(invalid("a TXT value is at most 255 bytes"));
            }
            RData::TXT(TXT::new(vec![text.clone()]))
        }
    })
}

fn record(data: &RData) -> Option<Record> {
    Some(match data {
        RData::A(a) => Record::A(a.0),
        RData::AAAA(a) => Record::Aaaa(a.0),
        RData::CNAME(c) => Record::Cname(c.0.to_ascii().trim_end_matches('.').to_owned()),
        RData::TXT(t) => Record::Txt(
            t.iter()
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect(),
        ),
        _ => return None,
    })
}

/// An answer's code as an error, unless it is NOERROR.
fn answered(code: ResponseCode) -> Result<(), DnsError> {
    match code {
        ResponseCode::NoError => Ok(()),
        ResponseCode::ServFail => Err(DnsError::Unreachable(code.to_string())),
        other => Err(DnsError::Refused(other.to_string())),
    }
}

/// An exchange that did not complete. A server that refuses the key
/// answers with a TSIG error whose own signature is empty, which hickory
/// cannot check (it says so in its message): that is a refusal, not the
/// server being away.
fn sent(e: hickory_client::ClientError) -> DnsError {
    let detail = format!("{e:?}");
    if detail.contains("TSIG") {
        return DnsError::Refused(
            "it did not take the TSIG key (check its name, algorithm and secret)".into(),
        );
    }
    DnsError::Unreachable(match e.kind() {
        hickory_client::ClientErrorKind::Proto(p) => p.to_string(),
        _ => e.to_string(),
    })
}

#[async_trait]
impl DnsProvider for Rfc2136 {
    async fn get(&self, name: &str, kind: RecordKind) -> Result<Vec<Record>, DnsError> {
        self.name(name)?;
        ask(self.server, name, kind).await
    }

    async fn set(&self, name: &str, records: &[Record], ttl: u32) -> Result<(), DnsError> {
        let n = self.name(name)?;
        let mut kinds: Vec<RecordKind> = records.iter().map(Record::kind).collect();
        kinds.sort();
        kinds.dedup();
        // Every value is checked before anything is sent.
        let mut sets = Vec::new();
        for kind in kinds {
            let mut set = RecordSet::with_ttl(n.clone(), record_type(kind), ttl);
            for r in records.iter().filter(|r| r.kind() == kind) {
                set.add_rdata(rdata(r)?);
            }
            sets.push((kind, set));
        }
        let mut client = self.client(true).await?;
        for (kind, set) in sets {
            let gone = client
                .delete_rrset(
                    hickory_client::proto::rr::Record::update0(n.clone(), 0, record_type(kind)),
                    self.zone.clone(),
                )
                .await
                .map_err(sent)?;
            answered(gone.response_code())?;
            let added = client
                .append(set, self.zone.clone(), false)
                .await
                .map_err(sent)?;
            answered(added.response_code())?;
        }
        Ok(())
    }

    async fn remove(&self, name: &str, kind: RecordKind) -> Result<(), DnsError> {
        let n = self.name(name)?;
        let mut client = self.client(true).await?;
        let gone = client
            .delete_rrset(
                hickory_client::proto::rr::Record::update0(n, 0, record_type(kind)),
                self.zone.clone(),
            )
            .await
            .map_err(sent)?;
        answered(gone.response_code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Rfc2136Settings {
        Rfc2136Settings {
            server: "127.0.0.1:53".parse().unwrap(),
            zone: "games.test".into(),
            key_name: "tavern-key".into(),
            algorithm: "hmac-sha256".into(),
            secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTA=".into(),
        }
    }

    #[test]
    fn bad_settings_are_refused_before_anything_is_sent() {
        assert!(Rfc2136::new(&settings()).is_ok());
        let mut s = settings();
        s.algorithm = "hmac-md5".into();
        assert!(matches!(Rfc2136::new(&s), Err(DnsError::Invalid(_))));
        let mut s = settings();
        s.secret = "not base64!".into();
        assert!(matches!(Rfc2136::new(&s), Err(DnsError::Invalid(_))));
        let mut s = settings();
        s.zone = "bad..zone".into();
        assert!(matches!(Rfc2136::new(&s), Err(DnsError::Invalid(_))));
    }

    #[test]
    fn names_outside_the_zone_are_refused() {
        let dns = Rfc2136::new(&settings()).unwrap();
        assert!(dns.name("w1.games.test").is_ok());
        assert!(dns.name("games.test.").is_ok());
        assert!(dns.name("w1.other.test").is_err());
        assert!(dns.name("evilgames.test").is_err());
    }
}
