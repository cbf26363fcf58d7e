//! Which key a scheduled session reserves. Windows of one key never
//! overlap. A new session takes a key that is free for its whole window;
//! when none is, the sessions that have not begun are laid out again (by
//! window start, each keeping its key when it can), which fits every set of
//! sessions that any assignment to equal keys can fit. The store re-checks
//! the rule in the transaction that writes the result.

use std::collections::HashMap;

use jiff::Timestamp;
use tavern_types::{InstanceId, LicenseId, SessionId};

/// A half-open span of time `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Window {
    pub fn overlaps(&self, other: &Window) -> bool {
        self.start < other.end && other.start < self.end
    }

    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }
}

/// A reservation as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Booking {
    pub session: SessionId,
    pub instance: InstanceId,
    pub license: LicenseId,
    pub window: Window,
    /// The keys this session may use, most specific first.
    pub eligible: Vec<LicenseId>,
    /// Begun (or prepared): it keeps its key.
    pub fixed: bool,
}

/// A session asking for a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub window: Window,
    /// The keys it may use, most specific first.
    pub eligible: Vec<LicenseId>,
}

/// Where a new session goes, and which sessions move to make room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub license: LicenseId,
    pub moves: Vec<(SessionId, LicenseId)>,
}

/// No key fits: the sessions whose windows stand in the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoFit {
    pub conflicts: Vec<SessionId>,
}

fn free_on(taken: &HashMap<LicenseId, Vec<Window>>, key: LicenseId, w: &Window) -> bool {
    taken
        .get(&key)
        .is_none_or(|ws| !ws.iter().any(|t| t.overlaps(w)))
}

/// Finds a key for `request` among `bookings` (every reservation whose
/// window has not ended).
pub fn plan(request: &Request, bookings: &[Booking]) -> Result<Plan, NoFit> {
    let mut taken: HashMap<LicenseId, Vec<Window>> = HashMap::new();
    for b in bookings {
        taken.entry(b.license).or_default().push(b.window);
    }
    // Without moving anything.
    if let Some(&key) = request
        .eligible
        .iter()
        .find(|k| free_on(&taken, **k, &request.window))
    {
        return Ok(Plan {
            license: key,
            moves: vec![],
        });
    }
    // Lay out again everything that has not begun, by window start.
    let mut layout: HashMap<LicenseId, Vec<Window>> = HashMap::new();
    for b in bookings.iter().filter(|b| b.fixed) {
        layout.entry(b.license).or_default().push(b.window);
    }
    let mut pending: Vec<(Option<&Booking>, Window, &[LicenseId])> = bookings
        .iter()
        .filter(|b| !b.fixed)
        .map(|b| (Some(b), b.window, b.eligible.as_slice()))
        .chain(std::iter::once((
            None,
            request.window,
            request.eligible.as_slice(),
        )))
        .collect();
    pending.sort_by_key(|(b, w, _)| (w.start, std::cmp::Reverse(w.end), b.map(|b| b.session)));
    let mut moves = Vec::new();
    let mut chosen = None;
    for (booking, window, eligible) in pending {
        let keep = booking
            .map(|b| b.license)
            .filter(|k| eligible.contains(k) && free_on(&layout, *k, &window));
        let Some(key) = keep.or_else(|| {
            eligible
                .iter()
                .copied()
                .find(|k| free_on(&layout, *k, &window))
        }) else {
            return Err(no_fit(request, bookings));
        };
        layout.entry(key).or_default().push(window);
        match booking {
            Some(b) if b.license != key => moves.push((b.session, key)),
            Some(_) => {}
            None => chosen = Some(key),
        }
    }
    match chosen {
        Some(license) => Ok(Plan { license, moves }),
        None => Err(no_fit(request, bookings)),
    }
}

fn no_fit(request: &Request, bookings: &[Booking]) -> NoFit {
    NoFit {
        conflicts: bookings
            .iter()
            .filter(|b| request.eligible.contains(&b.license) && b.window.overlaps(&request.window))
            .map(|b| b.session)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;
    use proptest::prelude::*;

    use super::*;

    fn t(minutes: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + SignedDuration::from_mins(minutes)
    }

    fn w(from: i64, to: i64) -> Window {
        Window {
            start: t(from),
            end: t(to),
        }
    }

    /// Applies `plan` to `bookings`, as the store would.
    fn apply(bookings: &mut Vec<Booking>, request: &Request, p: &Plan) -> SessionId {
        for (s, k) in &p.moves {
            let b = bookings.iter_mut().find(|b| b.session == *s).unwrap();
            assert!(!b.fixed, "a begun session moved");
            b.license = *k;
        }
        let id = SessionId::new();
        bookings.push(Booking {
            session: id,
            instance: InstanceId::new(),
            license: p.license,
            window: request.window,
            eligible: request.eligible.clone(),
            fixed: false,
        });
        id
    }

    fn no_overlaps(bookings: &[Booking]) -> bool {
        bookings.iter().enumerate().all(|(i, a)| {
            bookings[i + 1..]
                .iter()
                .all(|b| a.license != b.license || !a.window.overlaps(&b.window))
        })
    }

    /// The most windows open at one instant: with equal keys, a set of
    /// sessions fits `k` keys exactly when this is at most `k`.
    fn max_overlap(windows: &[Window]) -> usize {
        let mut points: Vec<(Timestamp, i32)> = windows
            .iter()
            .flat_map(|w| [(w.start, 1), (w.end, -1)])
            .collect();
        // Ends before starts at the same instant: back to back is fine.
        points.sort();
        let (mut now, mut max) = (0i32, 0i32);
        for (_, d) in points {
            now += d;
            max = max.max(now);
        }
        usize::try_from(max).unwrap_or(0)
    }

    #[test]
    fn back_to_back_fits_and_overlap_takes_another_key() {
        let (k1, k2) = (LicenseId::new(), LicenseId::new());
        let keys = vec![k1, k2];
        let mut bs = Vec::new();
        for (win, key) in [(w(0, 60), k1), (w(60, 120), k1), (w(30, 90), k2)] {
            let r = Request {
                window: win,
                eligible: keys.clone(),
            };
            let p = plan(&r, &bs).unwrap();
            assert_eq!(
                p,
                Plan {
                    license: key,
                    moves: vec![]
                }
            );
            apply(&mut bs, &r, &p);
        }
        let r = Request {
            window: w(45, 75),
            eligible: keys.clone(),
        };
        let err = plan(&r, &bs).unwrap_err();
        assert_eq!(err.conflicts.len(), 3);
    }

    #[test]
    fn sessions_not_begun_move_to_make_room() {
        // k1: [0,40) [60,100); k2: [50,70). A new [30,55) fits only if the
        // layout changes: [0,40) k1, [30,55) k2, [50,70)... k1? [60,100) k2.
        let (k1, k2) = (LicenseId::new(), LicenseId::new());
        let keys = vec![k1, k2];
        let mk = |win, key| Booking {
            session: SessionId::new(),
            instance: InstanceId::new(),
            license: key,
            window: win,
            eligible: keys.clone(),
            fixed: false,
        };
        let mut bs = vec![mk(w(0, 40), k1), mk(w(60, 100), k1), mk(w(50, 70), k2)];
        let r = Request {
            window: w(30, 55),
            eligible: keys.clone(),
        };
        let p = plan(&r, &bs).unwrap();
        assert!(!p.moves.is_empty());
        apply(&mut bs, &r, &p);
        assert!(no_overlaps(&bs));
        // A begun session never moves: with [0,40) begun on k1 the request
        // still fits, the others moving around it.
        let mut bs = vec![mk(w(0, 40), k1), mk(w(60, 100), k1), mk(w(50, 70), k2)];
        bs[0].fixed = true;
        let p = plan(&r, &bs).unwrap();
        assert_eq!(p.license, k2);
        apply(&mut bs, &r, &p);
        assert!(no_overlaps(&bs));
        assert_eq!(bs[0].license, k1);
        // With [50,70) begun on k2 as well, nothing can move out of the way.
        let mut bs = vec![mk(w(0, 40), k1), mk(w(60, 100), k1), mk(w(50, 70), k2)];
        bs[0].fixed = true;
        bs[2].fixed = true;
        assert!(plan(&r, &bs).is_err());
    }

    #[test]
    fn a_session_stays_on_its_own_keys() {
        let (pinned, pool) = (LicenseId::new(), LicenseId::new());
        let mine = Request {
            window: w(0, 60),
            eligible: vec![pinned, pool],
        };
        let only_pool = Request {
            window: w(0, 60),
            eligible: vec![pool],
        };
        let mut bs = Vec::new();
        let p = plan(&mine, &bs).unwrap();
        assert_eq!(p.license, pinned);
        apply(&mut bs, &mine, &p);
        let p = plan(&only_pool, &bs).unwrap();
        assert_eq!(p.license, pool);
        apply(&mut bs, &only_pool, &p);
        assert!(plan(&only_pool, &bs).is_err());
    }

    /// A realistic week: 30 worlds, 5 equal keys, sessions on evenings
    /// (starts between 17:00 and 22:00, 2 to 5 hours, 10 minutes lead and
    /// 30 grace), asked for in random order. Every session is accepted
    /// exactly when the accepted ones plus it can fit on 5 keys at all, so
    /// no session an optimal assignment could serve is refused.
    #[test]
    fn simulated_week_serves_what_an_optimal_assignment_can() {
        use rand::{Rng, SeedableRng, seq::SliceRandom};
        let (mut total_accepted, mut total_refused) = (0, 0);
        for seed in 0..20u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let keys: Vec<LicenseId> = (0..5).map(|_| LicenseId::new()).collect();
            let mut asks = Vec::new();
            for _world in 0..30 {
                // Each world plays one to three evenings this week.
                let n = rng.random_range(1..=3);
                for _ in 0..n {
                    let day = rng.random_range(0..7i64);
                    let start = day * 24 * 60 + 17 * 60 + rng.random_range(0..=10i64) * 30;
                    let length = rng.random_range(4..=10i64) * 30;
                    asks.push(w(start - 10, start + length + 30));
                }
            }
            asks.shuffle(&mut rng);
            let mut bs: Vec<Booking> = Vec::new();
            let mut accepted = 0;
            for win in asks {
                let r = Request {
                    window: win,
                    eligible: keys.clone(),
                };
                let mut with: Vec<Window> = bs.iter().map(|b| b.window).collect();
                with.push(win);
                let feasible = max_overlap(&with) <= keys.len();
                match plan(&r, &bs) {
                    Ok(p) => {
                        assert!(feasible, "seed {seed}: accepted an impossible session");
                        apply(&mut bs, &r, &p);
                        accepted += 1;
                    }
                    Err(_) => {
                        assert!(!feasible, "seed {seed}: refused a session that fits");
                        total_refused += 1;
                    }
                }
                assert!(no_overlaps(&bs), "seed {seed}");
            }
            assert!(accepted >= 25, "seed {seed}: only {accepted} accepted");
            total_accepted += accepted;
        }
        // The weeks are busy enough that keys run out: both answers occur.
        assert!(total_accepted > 0 && total_refused > 0);
    }

    proptest! {
        /// Random schedules with pinned and pooled keys and begun sessions:
        /// no two windows on one key ever overlap, every session sits on a
        /// key it may use, begun sessions never move.
        #[test]
        fn random_schedules_never_overlap_on_a_key(
            asks in proptest::collection::vec((0i64..2000, 10i64..400, 0usize..4, any::<bool>()), 1..40),
        ) {
            let pool: Vec<LicenseId> = (0..3).map(|_| LicenseId::new()).collect();
            let pinned: Vec<LicenseId> = (0..3).map(|_| LicenseId::new()).collect();
            let mut bs: Vec<Booking> = Vec::new();
            for (start, len, who, begun) in asks {
                // who 0..3: a gm with one pinned key plus the pool; 3: a world
                // configured with one pool key.
                let eligible = if who < 3 {
                    std::iter::once(pinned[who]).chain(pool.iter().copied()).collect()
                } else {
                    vec![pool[0]]
                };
                let r = Request { window: w(start, start + len), eligible };
                if let Ok(p) = plan(&r, &bs) {
                    prop_assert!(r.eligible.contains(&p.license));
                    let before: Vec<(SessionId, LicenseId)> =
                        bs.iter().filter(|b| b.fixed).map(|b| (b.session, b.license)).collect();
                    let id = apply(&mut bs, &r, &p);
                    for (s, k) in before {
                        prop_assert_eq!(bs.iter().find(|b| b.session == s).unwrap().license, k);
                    }
                    bs.iter_mut().find(|b| b.session == id).unwrap().fixed = begun;
                } else {
                    // Refused: then no key it may use is free as things stand.
                    prop_assert!(r.eligible.iter().all(|k| bs.iter().any(|b| b.license == *k && b.window.overlaps(&r.window))));
                }
                prop_assert!(no_overlaps(&bs));
                for b in &bs {
                    prop_assert!(b.eligible.contains(&b.license));
                }
            }
        }
    }
}
