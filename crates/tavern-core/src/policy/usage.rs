//! Usage and cost for a month: hours per user and per world, hours per
//! license key, and what each user owes at a rate per hour less their
//! credit. Pure: intervals, a window and a clock in, a summary out.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use tavern_store::UsageInterval;
use tavern_types::{LicenseId, UserId};

use super::quotas::used_between;

/// One user's month.
#[derive(Clone, Debug, PartialEq)]
pub struct UserUsage {
    pub user: UserId,
    pub hours: f64,
    /// Hours by world (slug), largest first.
    pub worlds: Vec<(String, f64)>,
    /// `hours × rate`, before credit.
    pub cost: f64,
    /// Credit that reduces what is due (supporters' payments).
    pub credit: f64,
    /// What is left to pay: `cost − credit`, never below zero.
    pub due: f64,
}

/// A month for everyone asked about.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub users: Vec<UserUsage>,
    /// Hours each key ran a world (`None`: intervals of no known key).
    pub licenses: Vec<(Option<LicenseId>, f64)>,
    pub hours: f64,
    pub cost: f64,
}

fn hours(d: SignedDuration) -> f64 {
    d.as_secs_f64() / 3600.0
}

/// Sums `intervals` inside `[from, to)`, open ones up to `now`, costed at
/// `rate` per hour; `credit` gives each user's credit.
pub fn summarize(
    intervals: &[UsageInterval],
    from: Timestamp,
    to: Timestamp,
    now: Timestamp,
    rate: f64,
    credit: impl Fn(UserId) -> f64,
) -> Summary {
    let mut by_user: BTreeMap<UserId, BTreeMap<String, SignedDuration>> = BTreeMap::new();
    let mut by_license: BTreeMap<Option<LicenseId>, SignedDuration> = BTreeMap::new();
    for i in intervals {
        let d = used_between(std::slice::from_ref(i), from, to, now);
        if d.is_zero() {
            continue;
        }
        let world = by_user
            .entry(i.owner)
            .or_default()
            .entry(i.slug.clone())
            .or_default();
        *world = world.saturating_add(d);
        let key = by_license.entry(i.license).or_default();
        *key = key.saturating_add(d);
    }
    let users: Vec<UserUsage> = by_user
        .into_iter()
        .map(|(user, worlds)| {
            let mut worlds: Vec<(String, f64)> =
                worlds.into_iter().map(|(w, d)| (w, hours(d))).collect();
            worlds.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let h: f64 = worlds.iter().map(|(_, h)| h).sum();
            let cost = h * rate;
            let credit = credit(user);
            UserUsage {
                user,
                hours: h,
                worlds,
                cost,
                credit,
                due: (cost - credit).max(0.0),
            }
        })
        .collect();
    let licenses: Vec<(Option<LicenseId>, f64)> =
        by_license.into_iter().map(|(l, d)| (l, hours(d))).collect();
    let total: f64 = users.iter().map(|u| u.hours).sum();
    Summary {
        hours: total,
        cost: total * rate,
        users,
        licenses,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tavern_types::InstanceId;

    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn interval(
        owner: UserId,
        slug: &str,
        license: Option<LicenseId>,
        from: &str,
        to: Option<&str>,
    ) -> UsageInterval {
        UsageInterval {
            instance: InstanceId::new(),
            slug: slug.into(),
            owner,
            license,
            started_at: at(from),
            stopped_at: to.map(at),
            reason: None,
        }
    }

    #[test]
    fn a_worked_month() {
        let (alice, bob) = (UserId::new(), UserId::new());
        let key = LicenseId::new();
        let intervals = [
            // Starts in October: only November's part counts.
            interval(
                alice,
                "keep",
                Some(key),
                "2026-10-31T22:00:00Z",
                Some("2026-11-01T02:00:00Z"),
            ),
            interval(
                alice,
                "keep",
                Some(key),
                "2026-11-10T18:00:00Z",
                Some("2026-11-10T21:00:00Z"),
            ),
            interval(
                alice,
                "tower",
                None,
                "2026-11-12T18:00:00Z",
                Some("2026-11-12T19:30:00Z"),
            ),
            // Still running: counted up to now.
            interval(bob, "crypt", Some(key), "2026-11-23T10:00:00Z", None),
            // December: not counted.
            interval(
                bob,
                "crypt",
                Some(key),
                "2026-12-01T00:00:00Z",
                Some("2026-12-01T05:00:00Z"),
            ),
        ];
        let s = summarize(
            &intervals,
            at("2026-11-01T00:00:00Z"),
            at("2026-12-01T00:00:00Z"),
            at("2026-11-23T12:00:00Z"),
            0.5,
            |u| if u == alice { 1.0 } else { 0.0 },
        );
        let a = s.users.iter().find(|u| u.user == alice).unwrap();
        assert_eq!(
            a.worlds,
            [("keep".to_owned(), 5.0), ("tower".to_owned(), 1.5)]
        );
        assert_eq!((a.hours, a.cost, a.credit, a.due), (6.5, 3.25, 1.0, 2.25));
        let b = s.users.iter().find(|u| u.user == bob).unwrap();
        assert_eq!((b.hours, b.due), (2.0, 1.0));
        assert_eq!(s.hours, 8.5);
        assert_eq!(
            s.licenses.iter().find(|(l, _)| *l == Some(key)).unwrap().1,
            7.0
        );
        assert_eq!(s.licenses.iter().find(|(l, _)| l.is_none()).unwrap().1, 1.5);
    }

    proptest! {
        /// Every way of adding up agrees: by user, by world, by key, and
        /// the total; nobody owes less than nothing.
        #[test]
        fn the_sums_agree(
            spans in prop::collection::vec((0u8..3, 0u8..3, 0i64..2000, 0i64..300, any::<bool>()), 0..40),
            rate in 0.0f64..5.0,
            credit in 0.0f64..50.0,
        ) {
            let users = [UserId::new(), UserId::new(), UserId::new()];
            let keys = [Some(LicenseId::new()), Some(LicenseId::new()), None];
            let base = at("2026-11-01T00:00:00Z");
            let intervals: Vec<UsageInterval> = spans
                .iter()
                .map(|&(u, k, start, len, open)| {
                    let s = base + SignedDuration::from_mins(start * 20 - 600);
                    UsageInterval {
                        instance: InstanceId::new(),
                        slug: format!("w{u}{k}"),
                        owner: users[u as usize],
                        license: keys[k as usize],
                        started_at: s,
                        stopped_at: (!open).then(|| s + SignedDuration::from_mins(len)),
                        reason: None,
                    }
                })
                .collect();
            let (from, to) = (base, base + SignedDuration::from_hours(24 * 30));
            let now = base + SignedDuration::from_hours(24 * 20);
            let s = summarize(&intervals, from, to, now, rate, |_| credit);
            let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
            let by_users: f64 = s.users.iter().map(|u| u.hours).sum();
            let by_worlds: f64 = s.users.iter().flat_map(|u| &u.worlds).map(|w| w.1).sum();
            let by_keys: f64 = s.licenses.iter().map(|l| l.1).sum();
            let direct = super::hours(used_between(&intervals, from, to, now));
            prop_assert!(close(by_users, s.hours) && close(by_worlds, s.hours));
            prop_assert!(close(by_keys, s.hours) && close(direct, s.hours));
            prop_assert!(close(s.cost, s.hours * rate));
            for u in &s.users {
                prop_assert!(u.due >= 0.0 && close(u.due, (u.cost - u.credit).max(0.0)));
            }
        }
    }
}
