//! What Tavern does with the community's DNS provider (`[dns]`): with
//! `mode = "wildcard"`, it says at start whether `*.<domain>` leads to
//! Tavern, as the provider's server has it; with `mode = "per-world"`, the
//! core keeps each world's name (this hands it the provider).

use tavern_core::dns::WorldNames;
use tavern_dns::{holds, words};

use crate::config::{DnsMode, DnsSetup};

/// Starts what `[dns]` asks for at start: the wildcard's check (in the
/// background: a world's address that does not reach Tavern is the first
/// thing a newcomer meets), or what the leader needs to keep each world's
/// name.
pub fn start(setup: DnsSetup, domain: String) -> Option<WorldNames> {
    match setup.mode {
        DnsMode::Wildcard => {
            tokio::spawn(async move { check_wildcard(&setup, &domain).await });
            None
        }
        DnsMode::PerWorld => {
            tracing::info!(
                "dns: Tavern keeps a record for each world's name under {domain} ({})",
                words(&setup.records)
            );
            Some(WorldNames {
                provider: setup.provider,
                records: setup.records,
                ttl: setup.ttl,
                recheck: setup.recheck,
            })
        }
    }
}

async fn check_wildcard(setup: &DnsSetup, domain: &str) {
    // A name no one made: what the wildcard gives it.
    let nonce = tavern_core::auth::token_hash(&tavern_core::auth::random_secret());
    let probe = format!("tavern-check-{}.{domain}", &nonce[..8]);
    let mut kinds: Vec<_> = setup.records.iter().map(|r| r.kind()).collect();
    kinds.dedup();
    let mut found = Vec::new();
    for kind in kinds {
        match setup.provider.get(&probe, kind).await {
            Ok(records) => found.extend(records),
            Err(e) => {
                tracing::warn!(
                    "dns: cannot read *.{domain} from the DNS provider ({e}); worlds' addresses may not reach Tavern"
                );
                return;
            }
        }
    }
    let wanted = words(&setup.records);
    match holds(&setup.records, &found) {
        Ok(()) => tracing::info!("dns: *.{domain} leads to Tavern ({wanted})"),
        Err(held) => tracing::warn!(
            "dns: *.{domain} does not lead to Tavern: it holds {held}, not {wanted}; worlds' addresses will not reach Tavern until a record *.{domain} holds that"
        ),
    }
}
