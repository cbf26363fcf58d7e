//! DNS-01: each pending authorization's TXT value written at
//! `_acme-challenge.<name>` through the DNS provider (a domain and its
//! wildcard share one name, so one record set holds both values), checked
//! on every authoritative server before the CA is told to look, and
//! removed once the order is done.

use std::collections::BTreeMap;

use instant_acme::{AuthorizationStatus, ChallengeType, Identifier};
use tavern_dns::propagation::{authoritative_servers, system_resolver, wait_until_held};
use tavern_dns::{Record, RecordKind};

use super::{AcmeError, Dns01};

/// Seconds resolvers may keep a challenge's record.
const TTL: u32 = 60;

/// The TXT record's name for an identifier (a wildcard's is its
/// domain's).
pub fn record_name(identifier: &str) -> String {
    format!("_acme-challenge.{}", identifier.trim_start_matches("*."))
}

/// Writes every pending authorization's answer and waits until each
/// authoritative server has it; `written` gets each name before it is
/// written (to remove afterwards, whatever happens).
pub(super) async fn publish(
    order: &mut instant_acme::Order,
    dns: &Dns01,
    host: &str,
    written: &mut Vec<String>,
    ca: &impl Fn(instant_acme::Error) -> AcmeError,
) -> Result<(), AcmeError> {
    let mut values: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(ca)?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        let Identifier::Dns(name) = authz.identifier().identifier.clone() else {
            continue;
        };
        let challenge =
            authz
                .challenge(ChallengeType::Dns01)
                .ok_or_else(|| AcmeError::NoChallenge {
                    host: host.to_owned(),
                    kind: "dns-01",
                })?;
        let value = challenge.key_authorization().dns_value();
        values
            .entry(record_name(&name))
            .or_default()
            .push(Record::Txt(value));
    }
    let failed = |detail: String| AcmeError::Dns {
        host: host.to_owned(),
        detail,
    };
    for (name, records) in &values {
        written.push(name.clone());
        if let Err(e) = dns.provider.set(name, records, TTL).await {
            return Err(failed(format!("writing {name}: {e}")));
        }
    }
    let servers = match dns.servers.is_empty() {
        false => dns.servers.clone(),
        true => {
            let resolver = system_resolver().ok_or_else(|| {
                failed(
                    "no resolver in /etc/resolv.conf to find the zone's authoritative servers with"
                        .into(),
                )
            })?;
            authoritative_servers(&dns.zone, resolver)
                .await
                .map_err(|e| failed(e.to_string()))?
        }
    };
    for (name, records) in &values {
        tracing::info!(%name, "dns-01: waiting until every authoritative server has the challenge");
        wait_until_held(&servers, name, records, dns.patience)
            .await
            .map_err(|e| failed(e.to_string()))?;
    }
    Ok(())
}

/// Removes the challenges' records; a failure is only logged (a stale TXT
/// record does no harm, and the next order replaces it).
pub(super) async fn clean(dns: &Dns01, names: &[String]) {
    for name in names {
        if let Err(e) = dns.provider.remove(name, RecordKind::Txt).await {
            tracing::warn!(%name, error = %e, "dns-01: the challenge's record was not removed");
        }
    }
}
