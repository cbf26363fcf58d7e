//! Retention keeps exactly what its policy says: checked against a plain
//! model of the rule over random histories, plus the properties any policy
//! must have (locked backups stay, pruning again prunes nothing).

use std::collections::BTreeSet;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use tavern_backup::retention::{Candidate, Policy, prune};

/// The rule as a person would check it by hand, one backup at a time.
fn kept_by_model(policy: Policy, backups: &[Candidate<u32>], tz: &TimeZone) -> BTreeSet<u32> {
    let mut newest_first = backups.to_vec();
    newest_first.sort_by_key(|b| std::cmp::Reverse(b.created_at));
    let day = |t: Timestamp| t.to_zoned(tz.clone()).date();
    let week = |t: Timestamp| {
        let w = t.to_zoned(tz.clone()).date().iso_week_date();
        (w.year(), w.week())
    };
    let days: Vec<_> = newest_first.iter().map(|b| day(b.created_at)).collect();
    let weeks: Vec<_> = newest_first.iter().map(|b| week(b.created_at)).collect();
    let mut distinct_days: Vec<_> = days.clone();
    distinct_days.dedup();
    let mut distinct_weeks: Vec<_> = weeks.clone();
    distinct_weeks.dedup();
    let recent_days = &distinct_days[..distinct_days.len().min(policy.keep_daily as usize)];
    let recent_weeks = &distinct_weeks[..distinct_weeks.len().min(policy.keep_weekly as usize)];
    newest_first
        .iter()
        .enumerate()
        .filter(|(i, b)| {
            let newest_of_day = days.iter().position(|d| *d == days[*i]) == Some(*i);
            let newest_of_week = weeks.iter().position(|w| *w == weeks[*i]) == Some(*i);
            b.locked
                || *i < policy.keep_last as usize
                || (newest_of_day && recent_days.contains(&days[*i]))
                || (newest_of_week && recent_weeks.contains(&weeks[*i]))
        })
        .map(|(_, b)| b.id)
        .collect()
}

fn history() -> impl Strategy<Value = Vec<Candidate<u32>>> {
    // Up to 60 backups over about ten weeks, some hours apart, some days.
    prop::collection::vec((0i64..70 * 24 * 60, any::<bool>()), 0..60).prop_map(|v| {
        let base: Timestamp = "2026-09-01T00:00:00Z".parse().unwrap();
        v.into_iter()
            .enumerate()
            .map(|(i, (minutes, lock))| Candidate {
                id: i as u32,
                // Distinct times: ties would make "newest" ambiguous.
                created_at: base
                    + SignedDuration::from_mins(minutes)
                    + SignedDuration::from_secs(i as i64),
                locked: lock && i % 5 == 0,
            })
            .collect()
    })
}

fn policies() -> impl Strategy<Value = Policy> {
    (0u32..6, 0u32..10, 0u32..6).prop_map(|(keep_last, keep_daily, keep_weekly)| Policy {
        keep_last,
        keep_daily,
        keep_weekly,
    })
}

fn zones() -> impl Strategy<Value = TimeZone> {
    prop_oneof![
        Just(TimeZone::UTC),
        Just(TimeZone::get("Europe/Berlin").unwrap()),
        Just(TimeZone::get("America/Los_Angeles").unwrap()),
    ]
}

proptest! {
    #[test]
    fn prunes_exactly_what_the_policy_does_not_keep(
        backups in history(), policy in policies(), tz in zones()
    ) {
        let pruned: BTreeSet<u32> = prune(policy, &backups, &tz).into_iter().collect();
        let kept = kept_by_model(policy, &backups, &tz);
        let all: BTreeSet<u32> = backups.iter().map(|b| b.id).collect();
        let want: BTreeSet<u32> = all.difference(&kept).copied().collect();
        prop_assert_eq!(pruned, want);
    }

    #[test]
    fn locked_backups_stay_and_pruning_twice_prunes_nothing_more(
        backups in history(), policy in policies(), tz in zones()
    ) {
        let pruned = prune(policy, &backups, &tz);
        for b in &backups {
            prop_assert!(!(b.locked && pruned.contains(&b.id)), "a locked backup was pruned");
        }
        let rest: Vec<_> = backups.iter().filter(|b| !pruned.contains(&b.id)).cloned().collect();
        prop_assert_eq!(prune(policy, &rest, &tz), Vec::<u32>::new());
        // Oldest first.
        let times: Vec<_> = pruned
            .iter()
            .map(|id| backups.iter().find(|b| b.id == *id).unwrap().created_at)
            .collect();
        prop_assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }
}

#[test]
fn a_worked_example() {
    let at = |s: &str| s.parse::<Timestamp>().unwrap();
    let b = |id, t: &str, locked| Candidate {
        id,
        created_at: at(t),
        locked,
    };
    let backups = [
        b(1, "2026-11-02T10:00:00Z", false), // week 45, Monday
        b(2, "2026-11-09T10:00:00Z", true),  // week 46, locked
        b(3, "2026-11-16T09:00:00Z", false), // week 47
        b(4, "2026-11-16T21:00:00Z", false), // week 47, same day, newer
        b(5, "2026-11-20T08:00:00Z", false), // week 47, Friday
        b(6, "2026-11-23T07:00:00Z", false), // week 48, Monday
        b(7, "2026-11-23T08:00:00Z", false), // week 48, Monday, newest
    ];
    let policy = Policy {
        keep_last: 1,
        keep_daily: 3,
        keep_weekly: 3,
    };
    // Last: 7. Daily (Nov 23, 20, 16): 7, 5, 4. Weekly (48, 47, 46): 7, 5, 2.
    // Locked: 2. So 1, 3 and 6 go.
    assert_eq!(prune(policy, &backups, &TimeZone::UTC), vec![1, 3, 6]);
}
