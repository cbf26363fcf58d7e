//! What Tavern keeps for each world at an outside provider (its name in
//! DNS, its place in object storage): which to look at now, and how long to
//! wait after a failure; a function of the worlds there are, the rows
//! Tavern keeps, and the time.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use tavern_store::{DnsName, StoragePlace};
use tavern_types::{InstanceId, Slug};

/// A row Tavern keeps for one world's thing at a provider.
pub trait Kept: Clone {
    /// What the thing is known by.
    type Key: Ord + Clone;
    fn key(&self) -> Self::Key;
    /// The world it is for.
    fn world(&self) -> &Slug;
    /// Failed attempts in a row.
    fn attempts(&self) -> u32;
    /// When it is next due.
    fn next_attempt_at(&self) -> Timestamp;
}

impl Kept for DnsName {
    type Key = String;
    fn key(&self) -> String {
        self.host.clone()
    }
    fn world(&self) -> &Slug {
        &self.slug
    }
    fn attempts(&self) -> u32 {
        self.attempts
    }
    fn next_attempt_at(&self) -> Timestamp {
        self.next_attempt_at
    }
}

impl Kept for StoragePlace {
    type Key = InstanceId;
    fn key(&self) -> InstanceId {
        self.instance
    }
    fn world(&self) -> &Slug {
        &self.slug
    }
    fn attempts(&self) -> u32 {
        self.attempts
    }
    fn next_attempt_at(&self) -> Timestamp {
        self.next_attempt_at
    }
}

/// One thing to do about one world's thing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step<R: Kept> {
    /// Make sure `key` is as it should be for `world` (`known`: its row,
    /// if Tavern has one).
    Ensure {
        key: R::Key,
        world: Slug,
        known: Option<R>,
    },
    /// Its world is gone: remove it.
    Remove(R),
}

/// The steps due at `now`. `wanted` maps each thing's key to its world.
/// A world without a row, or whose row now names another world, is looked
/// at at once; one with a row, when it is due (a recheck, or a retry). A
/// row without a world goes at once the first time, then on its retries.
pub fn due<R: Kept>(wanted: &BTreeMap<R::Key, Slug>, known: &[R], now: Timestamp) -> Vec<Step<R>> {
    let rows: BTreeMap<R::Key, &R> = known.iter().map(|n| (n.key(), n)).collect();
    let mut steps = Vec::new();
    for (key, slug) in wanted {
        let row = rows.get(key);
        let due = match row {
            None => true,
            Some(n) => n.world() != slug || n.next_attempt_at() <= now,
        };
        if due {
            steps.push(Step::Ensure {
                key: key.clone(),
                world: slug.clone(),
                known: row.map(|n| (*n).clone()),
            });
        }
    }
    for n in known {
        if !wanted.contains_key(&n.key()) && (n.attempts() == 0 || n.next_attempt_at() <= now) {
            steps.push(Step::Remove(n.clone()));
        }
    }
    steps
}

/// How long after the `attempts`th failure in a row to try again: 30
/// seconds (or `recheck`, when names are looked at more often than that),
/// doubling, at most 30 minutes.
pub fn retry_after(attempts: u32, recheck: SignedDuration) -> SignedDuration {
    let first = recheck.clamp(SignedDuration::from_secs(1), SignedDuration::from_secs(30));
    let doublings = attempts.saturating_sub(1).min(11);
    (first * (1_i32 << doublings)).min(SignedDuration::from_mins(30))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn row(host: &str, slug: &str, attempts: u32, next: i64) -> DnsName {
        DnsName {
            host: host.into(),
            slug: Slug::parse(slug).unwrap(),
            held: attempts == 0,
            error: (attempts > 0).then(|| "refused".into()),
            attempts,
            checked_at: at(0),
            next_attempt_at: at(next),
        }
    }

    fn hosts(steps: &[Step<DnsName>]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Ensure { key, .. } => format!("ensure {key}"),
                Step::Remove(n) => format!("remove {}", n.host),
            })
            .collect()
    }

    #[test]
    fn new_worlds_at_once_held_names_when_due_gone_worlds_at_once_then_on_retries() {
        let wanted: BTreeMap<String, Slug> = [
            ("new.d".to_owned(), Slug::parse("new").unwrap()),
            ("held.d".to_owned(), Slug::parse("held").unwrap()),
            ("due.d".to_owned(), Slug::parse("due").unwrap()),
            ("reused.d".to_owned(), Slug::parse("reused").unwrap()),
        ]
        .into();
        let known = [
            row("held.d", "held", 0, 600),
            row("due.d", "due", 3, 10),
            row("reused.d", "other", 0, 600),
            row("gone.d", "gone", 0, 600),
            row("failing-gone.d", "failing-gone", 2, 600),
            row("retry-gone.d", "retry-gone", 2, 5),
        ];
        assert_eq!(
            hosts(&due(&wanted, &known, at(60))),
            [
                "ensure due.d",
                "ensure new.d",
                "ensure reused.d",
                "remove gone.d",
                "remove retry-gone.d"
            ]
        );
    }

    #[test]
    fn retries_back_off_to_half_an_hour() {
        let ten_minutes = SignedDuration::from_mins(10);
        assert_eq!(retry_after(1, ten_minutes), SignedDuration::from_secs(30));
        assert_eq!(retry_after(2, ten_minutes), SignedDuration::from_secs(60));
        assert_eq!(retry_after(6, ten_minutes), SignedDuration::from_mins(16));
        assert_eq!(retry_after(7, ten_minutes), SignedDuration::from_mins(30));
        assert_eq!(
            retry_after(u32::MAX, ten_minutes),
            SignedDuration::from_mins(30)
        );
        // Names looked at every 2 seconds are retried as often at first.
        let two = SignedDuration::from_secs(2);
        assert_eq!(retry_after(1, two), SignedDuration::from_secs(2));
        assert_eq!(retry_after(3, two), SignedDuration::from_secs(8));
        assert_eq!(retry_after(40, two), SignedDuration::from_mins(30));
        assert_eq!(
            retry_after(1, SignedDuration::ZERO),
            SignedDuration::from_secs(1)
        );
    }

    proptest! {
        /// Every world is looked at when its row is due, and no name is
        /// both kept and removed.
        #[test]
        fn each_name_at_most_once_and_every_due_world_looked_at(
            worlds in proptest::collection::btree_set("[a-e]", 0..5),
            rows in proptest::collection::vec(("[a-g]", 0u32..3, -100i64..100), 0..8),
        ) {
            let wanted: BTreeMap<String, Slug> = worlds
                .iter()
                .map(|s| (format!("{s}.d"), Slug::parse(&format!("{s}{s}{s}")).unwrap()))
                .collect();
            let mut known: Vec<DnsName> = Vec::new();
            for (h, attempts, next) in rows {
                let host = format!("{h}.d");
                if known.iter().all(|n| n.host != host) {
                    known.push(row(&host, &format!("{h}{h}{h}"), attempts, next));
                }
            }
            let steps = due(&wanted, &known, at(0));
            let named = hosts(&steps);
            let mut names: Vec<_> = named.iter().map(|s| s.split(' ').nth(1).unwrap()).collect();
            let all = names.len();
            names.sort();
            names.dedup();
            prop_assert_eq!(names.len(), all);
            for host in wanted.keys() {
                let row = known.iter().find(|n| &n.host == host);
                let should = row.is_none_or(|n| n.next_attempt_at <= at(0));
                prop_assert_eq!(named.contains(&format!("ensure {host}")), should);
            }
            for n in &known {
                prop_assert_eq!(
                    named.contains(&format!("remove {}", n.host)),
                    !wanted.contains_key(&n.host) && (n.attempts == 0 || n.next_attempt_at <= at(0))
                );
            }
        }
    }
}
