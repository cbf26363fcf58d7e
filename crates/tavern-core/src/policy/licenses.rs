//! Which license key a world starts with. A world that holds a key keeps it;
//! a world promised a key (a prepared session, a pre-emption) or configured
//! with one needs that key free; otherwise its own session's key, then its
//! owner's pinned keys, then the shared pool. Never a key another world
//! holds, never a key pinned to someone else, not a key another world is
//! waiting for, and not a key another world's session reserves within the
//! horizon. When nothing is free: which idle world to pre-empt, and when a
//! key is expected to free up. The store's compare-and-set makes the final
//! claim; this only chooses.

use jiff::{SignedDuration, Timestamp};
use tavern_store::{Instance, License, Session};
use tavern_types::{DesiredState, InstanceId, LicenseId, ObservedState};

/// Everything a choice depends on.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// Oldest first.
    pub licenses: &'a [License],
    /// Every world (the one choosing may be among them).
    pub instances: &'a [Instance],
    /// Sessions whose window has not ended.
    pub sessions: &'a [Session],
    pub now: Timestamp,
    /// How far ahead a reservation keeps a key from ad-hoc starts.
    pub horizon: SignedDuration,
}

impl Facts<'_> {
    /// Another world is waiting for this key: promised it, or configured
    /// with it and asked to run.
    pub fn awaited_by_other(&self, me: InstanceId, key: LicenseId) -> bool {
        self.instances.iter().any(|o| {
            o.id != me
                && (o.awaits == Some(key)
                    || (o.license == Some(key) && o.desired_state == DesiredState::Running))
        })
    }

    /// The first session of another world that reserves `key` within the
    /// horizon (or now).
    pub fn reserved_for_other(&self, me: InstanceId, key: LicenseId) -> Option<&Session> {
        let soon = self.now + self.horizon;
        self.sessions
            .iter()
            .filter(|s| {
                s.instance != me
                    && s.license == key
                    && s.window_start < soon
                    && s.window_end > self.now
            })
            .min_by_key(|s| s.window_start)
    }

    /// `me`'s own session whose window is open now or opens within the
    /// horizon.
    pub fn own_session_soon(&self, me: InstanceId) -> Option<&Session> {
        let soon = self.now + self.horizon;
        self.sessions
            .iter()
            .filter(|s| s.instance == me && s.window_start < soon && s.window_end > self.now)
            .min_by_key(|s| s.window_start)
    }
}

/// The session whose window is open now for `instance`, if any: inside it
/// the world is neither idle-stopped nor pre-empted.
pub fn open_session(
    instance: InstanceId,
    sessions: &[Session],
    now: Timestamp,
) -> Option<&Session> {
    sessions
        .iter()
        .find(|s| s.instance == instance && s.window_start <= now && now < s.window_end)
}

/// The keys `instance` may run with, most specific first: its configured
/// key alone; else its owner's pinned keys, then the pool.
pub fn eligible(instance: &Instance, licenses: &[License]) -> Vec<LicenseId> {
    if let Some(k) = instance.license {
        return licenses
            .iter()
            .filter(|l| l.id == k)
            .map(|l| l.id)
            .collect();
    }
    let pinned = licenses.iter().filter(|l| l.owner == Some(instance.owner));
    let pool = licenses.iter().filter(|l| l.owner.is_none());
    pinned.chain(pool).map(|l| l.id).collect()
}

/// The keys a session of `instance` whose window opens at `start` may
/// reserve, in the order to try them: the key the world runs with now first
/// (it need not change keys); then, for a window that opens within the
/// horizon, keys no other world runs now, so that nobody need be stopped.
pub fn session_keys(instance: &Instance, facts: &Facts<'_>, start: Timestamp) -> Vec<LicenseId> {
    let soon = start < facts.now + facts.horizon;
    let mut keys = eligible(instance, facts.licenses);
    keys.sort_by_key(|k| {
        let bound = facts
            .licenses
            .iter()
            .find(|l| l.id == *k)
            .and_then(|l| l.bound_to);
        (
            bound != Some(instance.id),
            soon && bound.is_some_and(|b| b != instance.id),
        )
    });
    keys
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allocation {
    /// The world holds this key already.
    Keep(LicenseId),
    /// Claim this free key.
    Take(LicenseId),
    /// The world's configured (or promised) key is held by another world.
    Busy {
        license: LicenseId,
        holder: InstanceId,
    },
    /// The world's configured key is reserved for another world's session
    /// whose window opens at `from`.
    Reserved { license: LicenseId, from: Timestamp },
    /// The world's configured key does not exist (any more).
    Missing(LicenseId),
    /// No key the world may use is free.
    NoneFree,
}

/// Chooses a key for `instance`.
pub fn choose_license(instance: &Instance, facts: &Facts<'_>) -> Allocation {
    let me = instance.id;
    let licenses = facts.licenses;
    if let Some(held) = licenses.iter().find(|l| l.bound_to == Some(me)) {
        return Allocation::Keep(held.id);
    }
    let needed = |key: LicenseId, check_reserved: bool| match licenses.iter().find(|l| l.id == key)
    {
        None => Allocation::Missing(key),
        Some(l) => match (
            l.bound_to,
            check_reserved
                .then(|| facts.reserved_for_other(me, key))
                .flatten(),
        ) {
            (Some(holder), _) => Allocation::Busy {
                license: l.id,
                holder,
            },
            (None, Some(s)) => Allocation::Reserved {
                license: l.id,
                from: s.window_start,
            },
            (None, None) => Allocation::Take(l.id),
        },
    };
    // A promise was checked when it was made (a session's own key, or a
    // pre-empted one).
    if let Some(promised) = instance.awaits {
        return needed(promised, false);
    }
    if let Some(wanted) = instance.license {
        return needed(wanted, true);
    }
    let free = |key: LicenseId| {
        licenses.iter().any(|l| l.id == key && l.bound_to.is_none())
            && !facts.awaited_by_other(me, key)
            && facts.reserved_for_other(me, key).is_none()
    };
    if let Some(own) = facts.own_session_soon(me)
        && free(own.license)
    {
        return Allocation::Take(own.license);
    }
    match eligible(instance, licenses).into_iter().find(|k| free(*k)) {
        Some(k) => Allocation::Take(k),
        None => Allocation::NoneFree,
    }
}

/// A world to stop so that another may have its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preemption {
    pub license: LicenseId,
    pub holder: InstanceId,
}

/// When no key is free: the key of the world that has had no players for
/// longest, at least `grace`, among the keys `instance` may use; never a
/// world inside its session window, never a key another world awaits or
/// another world's session reserves within the horizon.
pub fn choose_preemption(
    instance: &Instance,
    facts: &Facts<'_>,
    grace: SignedDuration,
) -> Option<Preemption> {
    if instance.license.is_some() || instance.awaits.is_some() {
        return None;
    }
    let me = instance.id;
    eligible(instance, facts.licenses)
        .into_iter()
        .filter(|k| !facts.awaited_by_other(me, *k) && facts.reserved_for_other(me, *k).is_none())
        .filter_map(|k| {
            let holder_id = facts.licenses.iter().find(|l| l.id == k)?.bound_to?;
            let holder = facts.instances.iter().find(|i| i.id == holder_id)?;
            let idle_since = holder.last_activity_at.unwrap_or(holder.updated_at);
            let idle = holder.id != me
                && holder.desired_state == DesiredState::Running
                && holder.state == ObservedState::Running
                && holder.players == 0
                && holder.sockets == 0
                && idle_since + grace <= facts.now
                && open_session(holder.id, facts.sessions, facts.now).is_none();
            idle.then_some((
                idle_since,
                Preemption {
                    license: k,
                    holder: holder.id,
                },
            ))
        })
        .min_by_key(|(since, p)| (*since, p.license))
        .map(|(_, p)| p)
}

/// When a key `instance` may use is expected to free up: at once for a
/// world already stopping, at the end of the holder's session window, or
/// at the end of another world's reservation. `None` when nobody knows
/// (worlds run until they are stopped or go idle).
pub fn next_free_at(instance: &Instance, facts: &Facts<'_>) -> Option<Timestamp> {
    let me = instance.id;
    eligible(instance, facts.licenses)
        .into_iter()
        .filter_map(|k| {
            let l = facts.licenses.iter().find(|l| l.id == k)?;
            match l.bound_to {
                Some(h) => {
                    let holder = facts.instances.iter().find(|i| i.id == h)?;
                    if holder.desired_state != DesiredState::Running {
                        Some(facts.now)
                    } else {
                        open_session(h, facts.sessions, facts.now).map(|s| s.window_end)
                    }
                }
                None => facts.reserved_for_other(me, k).map(|s| s.window_end),
            }
        })
        .min()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tavern_store::now;
    use tavern_types::{SessionId, UserId};

    use super::*;

    fn instance(id: InstanceId, owner: UserId, license: Option<LicenseId>) -> Instance {
        Instance {
            id,
            slug: "w".parse().unwrap(),
            owner,
            release: None,
            runtime: tavern_types::RuntimeKind::Process,
            license,
            desired_state: DesiredState::Stopped,
            state: ObservedState::Stopped,
            idle_timeout_minutes: None,
            created_at: now(),
            updated_at: now(),
            state_reason: None,
            players: 0,
            sockets: 0,
            wake_on_visit: None,
            world: None,
            foundry_version: None,
            admin_key_sealed: None,
            awaits: None,
            last_activity_at: None,
        }
    }

    fn f<'a>(licenses: &'a [License], instances: &'a [Instance]) -> Facts<'a> {
        Facts {
            licenses,
            instances,
            sessions: &[],
            now: now(),
            horizon: SignedDuration::from_hours(4),
        }
    }

    fn license(owner: Option<UserId>, bound_to: Option<InstanceId>) -> License {
        License {
            id: LicenseId::new(),
            label: "k".into(),
            key_sealed: vec![],
            key_last4: "0000".into(),
            owner,
            created_at: now(),
            bound_to,
        }
    }

    #[test]
    fn pinned_before_pool_and_held_key_kept() {
        let (alice, bob) = (UserId::new(), UserId::new());
        let w = InstanceId::new();
        let pool = license(None, None);
        let bobs = license(Some(bob), None);
        let alices = license(Some(alice), None);
        let ls = vec![pool.clone(), bobs.clone(), alices.clone()];
        assert_eq!(
            choose_license(&instance(w, alice, None), &f(&ls, &[])),
            Allocation::Take(alices.id)
        );
        assert_eq!(
            choose_license(&instance(w, bob, None), &f(&ls, &[])),
            Allocation::Take(bobs.id)
        );
        assert_eq!(
            choose_license(&instance(w, UserId::new(), None), &f(&ls, &[])),
            Allocation::Take(pool.id)
        );
        let mut held = ls.clone();
        held[0].bound_to = Some(w);
        assert_eq!(
            choose_license(&instance(w, alice, None), &f(&held, &[])),
            Allocation::Keep(pool.id)
        );
    }

    #[test]
    fn configured_key_must_be_free() {
        let alice = UserId::new();
        let (w, other) = (InstanceId::new(), InstanceId::new());
        let busy = license(None, Some(other));
        let free = license(None, None);
        let ls = vec![busy.clone(), free.clone()];
        assert_eq!(
            choose_license(&instance(w, alice, Some(busy.id)), &f(&ls, &[])),
            Allocation::Busy {
                license: busy.id,
                holder: other
            }
        );
        assert_eq!(
            choose_license(&instance(w, alice, Some(free.id)), &f(&ls, &[])),
            Allocation::Take(free.id)
        );
        let gone = LicenseId::new();
        assert_eq!(
            choose_license(&instance(w, alice, Some(gone)), &f(&ls, &[])),
            Allocation::Missing(gone)
        );
    }

    #[test]
    fn a_key_activated_for_another_world_is_left_for_it() {
        let alice = UserId::new();
        let k = license(None, None);
        let mut waiting = instance(InstanceId::new(), alice, Some(k.id));
        waiting.desired_state = DesiredState::Running;
        let me = instance(InstanceId::new(), alice, None);
        assert_eq!(
            choose_license(
                &me,
                &f(std::slice::from_ref(&k), std::slice::from_ref(&waiting))
            ),
            Allocation::NoneFree
        );
        waiting.desired_state = DesiredState::Stopped;
        assert_eq!(
            choose_license(&me, &f(std::slice::from_ref(&k), &[waiting])),
            Allocation::Take(k.id)
        );
    }

    proptest! {
        /// An allocation never picks a key another world holds or a key
        /// pinned to someone else, and says "none free" only when no key
        /// the world may use is free.
        #[test]
        fn never_a_busy_or_foreign_key(
            owners in proptest::collection::vec(0usize..4, 0..12),
            bound in proptest::collection::vec(proptest::option::of(0usize..6), 0..12),
            me in 0usize..3,
        ) {
            let users: Vec<UserId> = (0..3).map(|_| UserId::new()).collect();
            let worlds: Vec<InstanceId> = (0..6).map(|_| InstanceId::new()).collect();
            let ls: Vec<License> = owners
                .iter()
                .zip(bound.iter().chain(std::iter::repeat(&None)))
                .map(|(o, b)| license(users.get(*o).copied(), b.map(|b| worlds[b])))
                .collect();
            let me_world = worlds[0];
            let i = instance(me_world, users[me], None);
            let may_use = |l: &License| l.owner.is_none() || l.owner == Some(users[me]);
            match choose_license(&i, &f(&ls, &[])) {
                Allocation::Keep(id) => {
                    let l = ls.iter().find(|l| l.id == id).unwrap();
                    prop_assert_eq!(l.bound_to, Some(me_world));
                }
                Allocation::Take(id) => {
                    let l = ls.iter().find(|l| l.id == id).unwrap();
                    prop_assert!(l.bound_to.is_none());
                    prop_assert!(may_use(l));
                    prop_assert!(!ls.iter().any(|l| l.bound_to == Some(me_world)));
                    // Pinned keys come first.
                    if l.owner.is_none() {
                        prop_assert!(!ls.iter().any(|k| k.bound_to.is_none() && k.owner == Some(users[me])));
                    }
                }
                Allocation::NoneFree => {
                    prop_assert!(!ls.iter().any(|l| l.bound_to.is_none() && may_use(l)));
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }

    fn session(instance: InstanceId, license: LicenseId, from_h: i64, to_h: i64) -> Session {
        let t = now();
        Session {
            id: SessionId::new(),
            instance,
            license,
            starts_at: t + SignedDuration::from_hours(from_h),
            ends_at: t + SignedDuration::from_hours(to_h),
            window_start: t + SignedDuration::from_hours(from_h),
            window_end: t + SignedDuration::from_hours(to_h),
            created_by: "t".into(),
            created_at: t,
            prepared_at: None,
            reminded_at: None,
        }
    }

    #[test]
    fn reserved_keys_are_left_for_their_sessions() {
        let alice = UserId::new();
        let (k1, k2) = (license(None, None), license(None, None));
        let ls = vec![k1.clone(), k2.clone()];
        let me = instance(InstanceId::new(), alice, None);
        let other = InstanceId::new();
        // k1 is reserved in 2 hours (within the 4-hour horizon).
        let sessions = vec![session(other, k1.id, 2, 5)];
        let facts = Facts {
            sessions: &sessions,
            ..f(&ls, &[])
        };
        assert_eq!(choose_license(&me, &facts), Allocation::Take(k2.id));
        // Reserved in 6 hours: outside the horizon, fine to take.
        let later = vec![session(other, k1.id, 6, 9), session(other, k2.id, 1, 3)];
        let facts = Facts {
            sessions: &later,
            ..f(&ls, &[])
        };
        assert_eq!(choose_license(&me, &facts), Allocation::Take(k1.id));
        // A world's own session key is its first choice.
        let own = vec![session(me.id, k2.id, 1, 3)];
        let facts = Facts {
            sessions: &own,
            ..f(&ls, &[])
        };
        assert_eq!(choose_license(&me, &facts), Allocation::Take(k2.id));
        // A configured key reserved for another world is refused.
        let configured = instance(me.id, alice, Some(k1.id));
        let facts = Facts {
            sessions: &sessions,
            ..f(&ls, &[])
        };
        assert!(matches!(
            choose_license(&configured, &facts),
            Allocation::Reserved { license, .. } if license == k1.id
        ));
        // A promised key is taken even if reserved (the promise came from
        // that very reservation).
        let mut promised = me.clone();
        promised.awaits = Some(k1.id);
        assert_eq!(choose_license(&promised, &facts), Allocation::Take(k1.id));
    }

    fn running(owner: UserId, idle_minutes: i64) -> Instance {
        let mut i = instance(InstanceId::new(), owner, None);
        i.desired_state = DesiredState::Running;
        i.state = ObservedState::Running;
        i.last_activity_at = Some(now() - SignedDuration::from_mins(idle_minutes));
        i
    }

    #[test]
    fn the_longest_idle_world_past_grace_is_preempted() {
        let alice = UserId::new();
        let grace = SignedDuration::from_mins(10);
        let a = running(UserId::new(), 30);
        let b = running(UserId::new(), 60);
        let mut c = running(UserId::new(), 90);
        c.players = 2;
        let d = running(UserId::new(), 5);
        let worlds = vec![a.clone(), b.clone(), c.clone(), d.clone()];
        let ls: Vec<License> = worlds.iter().map(|w| license(None, Some(w.id))).collect();
        let me = instance(InstanceId::new(), alice, None);
        let facts = f(&ls, &worlds);
        assert_eq!(choose_license(&me, &facts), Allocation::NoneFree);
        // c has players, d is idle for less than the grace: b it is.
        assert_eq!(
            choose_preemption(&me, &facts, grace),
            Some(Preemption {
                license: ls[1].id,
                holder: b.id
            })
        );
        // Not a world inside its session window.
        let sessions = vec![session(b.id, ls[1].id, -1, 2)];
        let facts = Facts {
            sessions: &sessions,
            ..f(&ls, &worlds)
        };
        assert_eq!(
            choose_preemption(&me, &facts, grace).map(|p| p.holder),
            Some(a.id)
        );
        // The holder's session window ends in 2 hours: that is when a key
        // frees up.
        assert_eq!(next_free_at(&me, &facts), Some(sessions[0].window_end));
        // Nobody idle long enough: nothing to pre-empt, nothing known.
        let busy = vec![c.clone(), d.clone()];
        let ls2: Vec<License> = busy.iter().map(|w| license(None, Some(w.id))).collect();
        assert_eq!(choose_preemption(&me, &f(&ls2, &busy), grace), None);
        assert_eq!(next_free_at(&me, &f(&ls2, &busy)), None);
        // A world on its way down frees its key at once.
        let mut stopping = c.clone();
        stopping.desired_state = DesiredState::Stopped;
        let facts = f(&ls2, std::slice::from_ref(&stopping));
        assert!(next_free_at(&me, &facts).is_some_and(|t| t <= now()));
    }

    proptest! {
        /// With sessions in play: an allocation never picks a key another
        /// world holds, awaits, or has reserved within the horizon, nor a
        /// key pinned to someone else; and a pre-emption only ever picks an
        /// idle world outside its session window.
        #[test]
        fn never_a_reserved_or_busy_key(
            keys in proptest::collection::vec((proptest::option::of(0usize..3), proptest::option::of(0usize..6)), 0..10),
            reservations in proptest::collection::vec((0usize..10, 0usize..6, -3i64..8, 1i64..5), 0..10),
            idle in proptest::collection::vec((0i64..60, 0u32..3), 6),
            awaits in proptest::option::of(0usize..10),
        ) {
            let users: Vec<UserId> = (0..3).map(|_| UserId::new()).collect();
            let mut worlds: Vec<Instance> = idle
                .iter()
                .enumerate()
                .map(|(n, (mins, players))| {
                    let mut w = running(users[n % 3], *mins);
                    w.players = *players;
                    w
                })
                .collect();
            let ls: Vec<License> = keys
                .iter()
                .enumerate()
                .map(|(n, (o, b))| {
                    // Each world holds at most one key.
                    let bound = b.filter(|b| keys[..n].iter().all(|(_, x)| x != &Some(*b)));
                    license(o.map(|o| users[o]), bound.map(|b| worlds[b].id))
                })
                .collect();
            if let Some(a) = awaits
                && let Some(l) = ls.get(a)
            {
                worlds[5].awaits = Some(l.id);
            }
            let sessions: Vec<Session> = reservations
                .iter()
                .filter_map(|(k, w, from, len)| {
                    ls.get(*k).map(|l| session(worlds[*w].id, l.id, *from, from + len))
                })
                .collect();
            let me = instance(InstanceId::new(), users[0], None);
            let facts = Facts { sessions: &sessions, ..f(&ls, &worlds) };
            let soon = facts.now + facts.horizon;
            let reserved_by_other = |k: LicenseId| sessions.iter().any(|s| {
                s.license == k && s.instance != me.id && s.window_start < soon && s.window_end > facts.now
            });
            match choose_license(&me, &facts) {
                Allocation::Take(id) => {
                    let l = ls.iter().find(|l| l.id == id).unwrap();
                    prop_assert!(l.bound_to.is_none());
                    prop_assert!(l.owner.is_none() || l.owner == Some(users[0]));
                    prop_assert!(!reserved_by_other(id));
                    prop_assert!(worlds.iter().all(|w| w.awaits != Some(id)));
                }
                Allocation::NoneFree => {
                    prop_assert!(!ls.iter().any(|l| l.bound_to.is_none()
                        && (l.owner.is_none() || l.owner == Some(users[0]))
                        && !reserved_by_other(l.id)
                        && worlds.iter().all(|w| w.awaits != Some(l.id))));
                    if let Some(p) = choose_preemption(&me, &facts, SignedDuration::from_mins(10)) {
                        let h = worlds.iter().find(|w| w.id == p.holder).unwrap();
                        prop_assert_eq!(h.players, 0);
                        prop_assert!(h.last_activity_at.unwrap() + SignedDuration::from_mins(10) <= facts.now);
                        prop_assert!(open_session(h.id, &sessions, facts.now).is_none());
                        prop_assert!(!reserved_by_other(p.license));
                        prop_assert_eq!(ls.iter().find(|l| l.id == p.license).unwrap().bound_to, Some(h.id));
                    }
                }
                other => prop_assert!(false, "unexpected {:?}", other),
            }
        }
    }

    #[test]
    fn a_session_prefers_the_key_its_world_runs_then_keys_nobody_runs() {
        let alice = UserId::new();
        let me = instance(InstanceId::new(), alice, None);
        let other = InstanceId::new();
        let pinned_busy = license(Some(alice), Some(other));
        let pool_busy = license(None, Some(other));
        let pool_free = license(None, None);
        let pool_mine = license(None, Some(me.id));
        let ls = vec![
            pinned_busy.clone(),
            pool_busy.clone(),
            pool_free.clone(),
            pool_mine.clone(),
        ];
        let facts = f(&ls, &[]);
        let soon = facts.now + SignedDuration::from_hours(1);
        let later = facts.now + SignedDuration::from_hours(48);
        assert_eq!(
            session_keys(&me, &facts, soon),
            vec![pool_mine.id, pool_free.id, pinned_busy.id, pool_busy.id]
        );
        // Far ahead, who runs what now does not matter (beyond its own key).
        assert_eq!(
            session_keys(&me, &facts, later),
            vec![pool_mine.id, pinned_busy.id, pool_busy.id, pool_free.id]
        );
    }
}
