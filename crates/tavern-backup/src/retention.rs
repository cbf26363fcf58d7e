//! Which backups a retention policy keeps: the newest `keep_last`, the
//! newest of each of the last `keep_daily` days that have one, the newest of
//! each of the last `keep_weekly` ISO weeks that have one, and every locked
//! backup. Pure: the caller deletes what this answers.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// How many backups of a world to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
}

/// One complete backup, as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<Id> {
    pub id: Id,
    pub created_at: Timestamp,
    pub locked: bool,
}

/// The backups to delete (of one world's complete backups), oldest first.
/// Days and weeks are counted in `tz`.
pub fn prune<Id: Clone + Eq>(policy: Policy, backups: &[Candidate<Id>], tz: &TimeZone) -> Vec<Id> {
    let mut newest_first: Vec<&Candidate<Id>> = backups.iter().collect();
    newest_first.sort_by_key(|b| std::cmp::Reverse(b.created_at));
    let mut keep = vec![false; newest_first.len()];
    for k in keep.iter_mut().take(policy.keep_last as usize) {
        *k = true;
    }
    keep_newest_per(&newest_first, &mut keep, policy.keep_daily, |t| {
        let d = t.to_zoned(tz.clone()).date();
        (d.year(), d.day_of_year(), 0)
    });
    keep_newest_per(&newest_first, &mut keep, policy.keep_weekly, |t| {
        let w = t.to_zoned(tz.clone()).date().iso_week_date();
        (w.year(), w.week().into(), 1)
    });
    let mut out: Vec<(Timestamp, Id)> = newest_first
        .iter()
        .zip(&keep)
        .filter(|(b, kept)| !**kept && !b.locked)
        .map(|(b, _)| (b.created_at, b.id.clone()))
        .collect();
    out.sort_by_key(|(t, _)| *t);
    out.into_iter().map(|(_, id)| id).collect()
}

/// Marks the newest backup of each of the `n` newest periods that have one.
fn keep_newest_per<Id>(
    newest_first: &[&Candidate<Id>],
    keep: &mut [bool],
    n: u32,
    period: impl Fn(Timestamp) -> (i16, i16, u8),
) {
    let mut seen = Vec::new();
    for (i, b) in newest_first.iter().enumerate() {
        if seen.len() >= n as usize {
            break;
        }
        let p = period(b.created_at);
        if !seen.contains(&p) {
            seen.push(p);
            keep[i] = true;
        }
    }
}
