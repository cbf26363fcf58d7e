//! Packages being fetched into the library, in memory since Tavern
//! started: what each fetch is getting, how far it is, and how it ended.
//! The newest 100 are kept.

use std::collections::BTreeMap;
use std::sync::Mutex;

use jiff::Timestamp;

/// How a fetch is going.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    Running,
    Done,
    Failed(String),
}

/// One fetch into the library: a package and what it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageJob {
    pub id: u64,
    /// What was asked for: `<kind> <id> <version>`.
    pub package: String,
    pub manifest_url: String,
    /// What the zip being downloaded now is, and how far.
    pub current: String,
    pub received: u64,
    pub total: Option<u64>,
    /// Versions put in the library so far, `<kind> <id> <version>`.
    pub added: Vec<String>,
    /// Things worth knowing: requirements that could not be fetched.
    pub notes: Vec<String>,
    pub state: JobState,
    pub started_at: Timestamp,
}

/// The fetches, by id.
#[derive(Default)]
pub(crate) struct PackageJobs {
    jobs: Mutex<BTreeMap<u64, PackageJob>>,
}

const KEPT: usize = 100;

impl PackageJobs {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<u64, PackageJob>) -> T) -> T {
        f(&mut self.jobs.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Starts a record for a fetch of `package`.
    pub(crate) fn start(&self, package: String, manifest_url: String) -> PackageJob {
        self.with(|jobs| {
            let id = jobs.keys().next_back().map_or(1, |n| n + 1);
            let job = PackageJob {
                id,
                current: package.clone(),
                package,
                manifest_url,
                received: 0,
                total: None,
                added: Vec::new(),
                notes: Vec::new(),
                state: JobState::Running,
                started_at: Timestamp::now(),
            };
            jobs.insert(id, job.clone());
            while jobs.len() > KEPT {
                jobs.pop_first();
            }
            job
        })
    }

    pub(crate) fn get(&self, id: u64) -> Option<PackageJob> {
        self.with(|jobs| jobs.get(&id).cloned())
    }

    pub(crate) fn update(&self, id: u64, f: impl FnOnce(&mut PackageJob)) {
        self.with(|jobs| {
            if let Some(j) = jobs.get_mut(&id) {
                f(j);
            }
        });
    }

    /// The newest `n` fetches, newest first, under way or ended.
    pub(crate) fn newest(&self, n: usize) -> Vec<PackageJob> {
        self.with(|jobs| jobs.values().rev().take(n).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_numbered_updated_and_only_the_newest_kept() {
        let jobs = PackageJobs::default();
        let first = jobs.start("module dice 1".into(), "https://x/module.json".into());
        assert_eq!(first.id, 1);
        jobs.update(1, |j| {
            j.received = 10;
            j.state = JobState::Done;
        });
        assert_eq!(jobs.get(1).unwrap().received, 10);
        jobs.start("module dice 2".into(), "https://x/module.json".into());
        let newest: Vec<u64> = jobs.newest(5).iter().map(|j| j.id).collect();
        assert_eq!(newest, [2, 1]);
        for _ in 0..KEPT + 5 {
            jobs.start("p".into(), "u".into());
        }
        assert!(jobs.get(1).is_none());
        assert_eq!(jobs.start("p".into(), "u".into()).id, KEPT as u64 + 8);
    }
}
