//! Worlds' names in DNS (`[dns] mode = "per-world"`): the leader keeps a
//! record for each world's host through the community's DNS provider,
//! removes it once the world is destroyed, corrects it when it drifts, and
//! retries failures with a backoff; each name's fate is kept in the store
//! and shown on its world. One name's failure never holds up the others.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tavern_dns::{DnsError, DnsProvider, Record, RecordKind, holds, words};
use tavern_store::{DnsName, NewEvent, Outcome, now};
use tavern_types::{DesiredState, Slug};
use tokio_util::sync::CancellationToken;

use crate::error::CoreError;
use crate::policy::kept::{Step, due, retry_after};
use crate::tavern::Tavern;

/// The kinds of record a world's name may hold that lead somewhere: what
/// Tavern looks at, and removes.
const ADDRESS_KINDS: [RecordKind; 3] = [RecordKind::A, RecordKind::Aaaa, RecordKind::Cname];

/// How often the leader looks for due names, at most (creations and
/// removals wake it sooner; names rechecked more often shorten it).
const TICK: Duration = Duration::from_secs(30);

/// What per-world names need: the provider and what each name holds.
#[derive(Clone)]
pub struct WorldNames {
    pub provider: Arc<dyn DnsProvider>,
    /// What every world's name should hold.
    pub records: Vec<Record>,
    /// Seconds resolvers may keep them.
    pub ttl: u32,
    /// How often a name that holds what it should is looked at again, to
    /// correct drift.
    pub recheck: SignedDuration,
}

/// How one name's step went: what to record.
struct Done {
    row: DnsName,
    event: Option<NewEvent>,
}

/// Keeps the worlds' names until `cancel`.
pub async fn run(tavern: Tavern, names: WorldNames, cancel: CancellationToken) {
    let tick = names
        .recheck
        .unsigned_abs()
        .clamp(Duration::from_secs(1), TICK);
    loop {
        if let Err(e) = tavern.keep_world_names(&names).await {
            tracing::warn!(error = %e, "dns: reading the worlds' names failed; will retry");
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(tick) => {}
            () = tavern.dns_wake.notified() => {}
        }
    }
}

fn event(host: &str, action: &str, outcome: Outcome, detail: String) -> NewEvent {
    let mut e = NewEvent::success("system", action, format!("dns:{host}")).with_detail(detail);
    e.outcome = outcome;
    e
}

impl Tavern {
    /// One pass: every due name looked at, one after the other.
    pub async fn keep_world_names(&self, names: &WorldNames) -> Result<(), CoreError> {
        let wanted: BTreeMap<String, Slug> = self
            .store
            .list_instances(None)
            .await?
            .into_iter()
            .filter(|i| i.desired_state != DesiredState::Destroyed)
            .map(|i| (self.settings.instance_host(&i.slug), i.slug))
            .collect();
        let known = self.store.list_dns_names().await?;
        for step in due(&wanted, &known, now()) {
            match step {
                Step::Ensure {
                    key: host,
                    world: slug,
                    known,
                } => {
                    let done = ensure(names, &host, slug, known).await;
                    self.store
                        .put_dns_name(&done.row, done.event.as_ref())
                        .await?;
                }
                Step::Remove(row) => match remove(names, &row.host).await {
                    Ok(()) => {
                        let e = event(
                            &row.host,
                            "dns.remove",
                            Outcome::Success,
                            format!("world {} is gone", row.slug),
                        );
                        self.store.delete_dns_name(&row.host, &e).await?;
                    }
                    Err(err) => {
                        let done = failed(row.clone(), "dns.remove", &err, names.recheck);
                        self.store
                            .put_dns_name(&done.row, done.event.as_ref())
                            .await?;
                    }
                },
            }
        }
        Ok(())
    }
}

/// Makes `host` hold what it should, unless it does.
async fn ensure(names: &WorldNames, host: &str, slug: Slug, known: Option<DnsName>) -> Done {
    let at = now();
    let was_held = known.as_ref().is_some_and(|n| n.held && n.slug == slug);
    let row = known.unwrap_or_else(|| DnsName {
        host: host.to_owned(),
        slug: slug.clone(),
        held: false,
        error: None,
        attempts: 0,
        checked_at: at,
        next_attempt_at: at,
    });
    let row = DnsName { slug, ..row };
    let wanted = words(&names.records);
    let result = async {
        let mut found = Vec::new();
        for kind in ADDRESS_KINDS {
            found.extend(names.provider.get(host, kind).await?);
        }
        let Err(held) = holds(&names.records, &found) else {
            return Ok(None);
        };
        // An alias may not stand beside addresses, nor addresses beside
        // an alias: what is not wanted goes first.
        for kind in ADDRESS_KINDS {
            let unwanted = !names.records.iter().any(|r| r.kind() == kind);
            if unwanted && found.iter().any(|r| r.kind() == kind) {
                names.provider.remove(host, kind).await?;
            }
        }
        names.provider.set(host, &names.records, names.ttl).await?;
        Ok::<_, DnsError>(Some(held))
    }
    .await;
    match result {
        Ok(changed) => {
            let event = match (&changed, was_held) {
                (None, true) => None,
                (None, false) => Some(event(
                    host,
                    "dns.set",
                    Outcome::Success,
                    format!("{} already held {wanted}", row.slug),
                )),
                (Some(held), true) => Some(event(
                    host,
                    "dns.correct",
                    Outcome::Success,
                    format!("it held {held}; now {wanted} again"),
                )),
                (Some(_), false) => Some(event(
                    host,
                    "dns.set",
                    Outcome::Success,
                    format!("{} now holds {wanted}", row.slug),
                )),
            };
            Done {
                row: DnsName {
                    held: true,
                    error: None,
                    attempts: 0,
                    checked_at: at,
                    next_attempt_at: at + names.recheck,
                    ..row
                },
                event,
            }
        }
        Err(err) => failed(row, "dns.set", &err, names.recheck),
    }
}

/// Removes what `host` holds that leads anywhere.
async fn remove(names: &WorldNames, host: &str) -> Result<(), DnsError> {
    for kind in ADDRESS_KINDS {
        names.provider.remove(host, kind).await?;
    }
    Ok(())
}

/// A failed attempt: recorded, retried later, news only the first time.
fn failed(row: DnsName, action: &str, err: &DnsError, recheck: SignedDuration) -> Done {
    let at = now();
    let attempts = row.attempts.saturating_add(1);
    let error = err.to_string();
    tracing::warn!(host = %row.host, attempts, error = %error, "dns: {action} failed; will retry");
    let event = (attempts == 1).then(|| event(&row.host, action, Outcome::Failure, error.clone()));
    Done {
        row: DnsName {
            held: false,
            error: Some(error),
            attempts,
            checked_at: at,
            next_attempt_at: at + retry_after(attempts, recheck),
            ..row
        },
        event,
    }
}

/// How a world's name fares, for its page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsStatus {
    pub host: String,
    pub state: DnsState,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// When it was last looked at, and when next.
    pub checked_at: Option<Timestamp>,
    pub next_attempt_at: Option<Timestamp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsState {
    /// Not written yet.
    Pending,
    /// Leads to Tavern.
    Held,
    /// The last attempt failed; it is retried.
    Failing,
}

impl DnsState {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsState::Pending => "pending",
            DnsState::Held => "held",
            DnsState::Failing => "failing",
        }
    }
}

impl DnsStatus {
    /// A world's name as its row (if any) has it.
    pub fn of(host: String, slug: &Slug, row: Option<&DnsName>) -> Self {
        match row.filter(|n| n.slug == *slug) {
            None => DnsStatus {
                host,
                state: DnsState::Pending,
                error: None,
                checked_at: None,
                next_attempt_at: None,
            },
            Some(n) => DnsStatus {
                host,
                state: match (n.held, &n.error) {
                    (true, _) => DnsState::Held,
                    (false, Some(_)) => DnsState::Failing,
                    (false, None) => DnsState::Pending,
                },
                error: n.error.clone(),
                checked_at: Some(n.checked_at),
                next_attempt_at: Some(n.next_attempt_at),
            },
        }
    }
}
