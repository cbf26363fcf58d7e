//! Which license key a world starts with. A world that holds a key keeps it;
//! a world configured with a key needs that key free; otherwise its owner's
//! pinned keys come first, then the shared pool. Never a key another world
//! holds, never a key pinned to someone else, and not a key another world
//! is waiting for (it was activated for that world, which wants to run).
//! The store's compare-and-set makes the final claim; this only chooses.

use tavern_store::{Instance, License};
use tavern_types::{InstanceId, LicenseId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allocation {
    /// The world holds this key already.
    Keep(LicenseId),
    /// Claim this free key.
    Take(LicenseId),
    /// The world's configured key is held by another world.
    Busy {
        license: LicenseId,
        holder: InstanceId,
    },
    /// The world's configured key does not exist (any more).
    Missing(LicenseId),
    /// No key the world may use is free.
    NoneFree,
}

/// Chooses a key for `instance` among `licenses` (in the order given,
/// oldest first); `others` are the other worlds.
pub fn choose_license(
    instance: &Instance,
    licenses: &[License],
    others: &[Instance],
) -> Allocation {
    if let Some(held) = licenses.iter().find(|l| l.bound_to == Some(instance.id)) {
        return Allocation::Keep(held.id);
    }
    if let Some(wanted) = instance.license {
        return match licenses.iter().find(|l| l.id == wanted) {
            None => Allocation::Missing(wanted),
            Some(l) => match l.bound_to {
                None => Allocation::Take(l.id),
                Some(holder) => Allocation::Busy {
                    license: l.id,
                    holder,
                },
            },
        };
    }
    let awaited = |l: &License| {
        others.iter().any(|o| {
            o.id != instance.id
                && o.license == Some(l.id)
                && o.desired_state == tavern_types::DesiredState::Running
        })
    };
    let free = |pinned_to_owner: bool| {
        licenses.iter().find(move |l| {
            l.bound_to.is_none()
                && !awaited(l)
                && if pinned_to_owner {
                    l.owner == Some(instance.owner)
                } else {
                    l.owner.is_none()
                }
        })
    };
    match free(true).or_else(|| free(false)) {
        Some(l) => Allocation::Take(l.id),
        None => Allocation::NoneFree,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tavern_store::now;
    use tavern_types::{DesiredState, ObservedState, UserId};

    use super::*;

    fn instance(id: InstanceId, owner: UserId, license: Option<LicenseId>) -> Instance {
        Instance {
            id,
            slug: "w".parse().unwrap(),
            owner,
            release: None,
            runtime: "process".into(),
            license,
            desired_state: DesiredState::Stopped,
            state: ObservedState::Stopped,
            idle_timeout_minutes: None,
            created_at: now(),
            updated_at: now(),
            state_reason: None,
            players: 0,
            world: None,
            foundry_version: None,
            admin_key_sealed: None,
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
            choose_license(&instance(w, alice, None), &ls, &[]),
            Allocation::Take(alices.id)
        );
        assert_eq!(
            choose_license(&instance(w, bob, None), &ls, &[]),
            Allocation::Take(bobs.id)
        );
        assert_eq!(
            choose_license(&instance(w, UserId::new(), None), &ls, &[]),
            Allocation::Take(pool.id)
        );
        let mut held = ls.clone();
        held[0].bound_to = Some(w);
        assert_eq!(
            choose_license(&instance(w, alice, None), &held, &[]),
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
            choose_license(&instance(w, alice, Some(busy.id)), &ls, &[]),
            Allocation::Busy {
                license: busy.id,
                holder: other
            }
        );
        assert_eq!(
            choose_license(&instance(w, alice, Some(free.id)), &ls, &[]),
            Allocation::Take(free.id)
        );
        let gone = LicenseId::new();
        assert_eq!(
            choose_license(&instance(w, alice, Some(gone)), &ls, &[]),
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
                std::slice::from_ref(&k),
                std::slice::from_ref(&waiting)
            ),
            Allocation::NoneFree
        );
        waiting.desired_state = DesiredState::Stopped;
        assert_eq!(
            choose_license(&me, std::slice::from_ref(&k), &[waiting]),
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
            match choose_license(&i, &ls, &[]) {
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
}
