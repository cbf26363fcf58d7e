//! The conformance suite: the behaviour every [`Store`] adapter must show,
//! written once. An adapter's tests call [`conformance_tests!`] with an
//! async expression that yields a fresh, empty store.

use jiff::{SignedDuration, Timestamp};
use tavern_types::{
    BackupFormat, BackupId, BackupKind, BackupStatus, DesiredState, InstanceId, InviteId,
    LicenseId, ObservedState, Role, RuntimeKind, SessionId, Slug, TokenId, UserId, Username,
    WakeOnVisit,
};

use crate::{
    ApiToken, ArchiveFacts, Backup, Instance, Invite, License, NewEvent, Observation, Outcome,
    Payment, PaymentKind, Session, Store, StoreError, User, now,
};
use crate::{
    BackupPackage, Compatibility, Delivery, DnsName, Identity, LibraryPackage, NewNotification,
    PackageKind, Requirement, StoragePlace, TotpFactor, WorldPackage,
};

/// Expands to one `#[tokio::test]` per conformance check, each on a fresh
/// store made by `$make`: an async expression yielding `Some` value that
/// derefs to a `Store` (a guard that also keeps, say, its temp dir alive),
/// or `None` when the engine is not there to test (the test then skips;
/// `$make` says why). Tests run on several threads, so that concurrent
/// calls really are concurrent.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            users_round_trip, duplicate_username_conflicts, tokens_find_their_user,
            instances_round_trip, duplicate_slug_conflicts_and_changes_nothing,
            instance_needs_existing_owner_and_license, list_instances_filters_by_owner,
            delete_instance, licenses_round_trip, license_in_use_cannot_be_deleted,
            licenses_are_relabelled_and_pinned_only_where_free,
            changes_and_their_events_are_written_together, events_newest_first,
            desired_and_observed_state_round_trip, a_key_binds_to_one_instance,
            concurrent_binds_never_share_a_key, instance_license_can_change,
            binding_can_start_and_a_running_world_keeps_its_key,
            user_tier_round_trip, session_windows_never_overlap_on_one_key,
            moving_sessions_is_all_or_nothing, a_promised_key_is_awaited_until_bound,
            running_intervals_are_counted, a_reserved_key_cannot_be_removed,
            instance_settings_change_one_at_a_time, concurrent_creates_never_share_a_slug,
            concurrent_sessions_never_overlap_on_one_key, backups_finish_once_and_outlive_their_world,
            backups_move_into_a_repository_and_its_password_is_kept_once,
            backups_fail_with_a_reason_lock_and_go, instance_release_and_runtime_can_change,
            emails_are_unique_and_find_their_user, link_codes_work_once_and_expire,
            payments_are_recorded_once_and_assigned_later, invites_create_users_until_used_up,
            the_outbox_follows_the_audit_log_and_records_deliveries, webhooks_and_reminders_round_trip,
            a_discord_account_acts_as_one_user, dns_names_are_kept_replaced_and_forgotten,
            storage_places_keep_their_sealed_keys_and_are_forgotten,
            library_packages_are_kept_and_never_removed_while_a_world_uses_them_and_backups_hold_what_was_used,
            second_factors_take_each_step_and_recovery_code_once,
            outside_accounts_link_to_one_user);
    };
    (@each $make:expr; $($name:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(store) = ($make) else { return };
                $crate::conformance::$name(&*store).await;
            }
        )+
    };
}

fn user(name: &str, role: Role) -> User {
    User {
        id: UserId::new(),
        username: Username::parse(name).unwrap(),
        role,
        password_hash: Some(format!("$argon2id$fake${name}")),
        created_at: now(),
        tier: None,
        email: None,
    }
}

fn instance(slug: &str, owner: UserId, license: Option<LicenseId>) -> Instance {
    Instance {
        id: InstanceId::new(),
        slug: Slug::parse(slug).unwrap(),
        owner,
        release: Some("12.331".into()),
        runtime: RuntimeKind::Process,
        license,
        desired_state: DesiredState::Stopped,
        state: ObservedState::Stopped,
        idle_timeout_minutes: Some(45),
        created_at: now(),
        updated_at: now(),
        state_reason: None,
        players: 0,
        sockets: 0,
        wake_on_visit: Some(WakeOnVisit::Anyone),
        world: None,
        foundry_version: None,
        admin_key_sealed: Some(vec![9, 8, 7]),
        awaits: None,
        last_activity_at: None,
    }
}

fn license(label: &str, owner: Option<UserId>) -> License {
    License {
        id: LicenseId::new(),
        label: label.into(),
        key_sealed: vec![1, 2, 3, 0, 255],
        key_last4: "WXYZ".into(),
        owner,
        created_at: now(),
        bound_to: None,
    }
}

fn ev(action: &str, target: &str) -> NewEvent {
    NewEvent::success("tester", action, target)
}

async fn add_user(store: &dyn Store, name: &str, role: Role) -> User {
    let u = user(name, role);
    store
        .create_user(&u, &ev("user.create", &format!("user:{name}")))
        .await
        .unwrap();
    u
}

async fn add_license(store: &dyn Store, label: &str, owner: Option<UserId>) -> License {
    let l = license(label, owner);
    store
        .create_license(&l, &ev("license.create", &format!("license:{label}")))
        .await
        .unwrap();
    l
}

async fn add_instance(store: &dyn Store, i: Instance) -> Instance {
    store
        .create_instance(&i, &ev("instance.create", &format!("instance:{}", i.slug)))
        .await
        .unwrap();
    i
}

pub async fn users_round_trip(store: &dyn Store) {
    assert_eq!(store.count_users().await.unwrap(), 0);
    let a = user("alice", Role::Admin);
    let mut b = user("bob", Role::Gm);
    b.password_hash = None;
    store
        .create_user(&a, &ev("user.create", "user:alice"))
        .await
        .unwrap();
    store
        .create_user(&b, &ev("user.create", "user:bob"))
        .await
        .unwrap();
    assert_eq!(store.count_users().await.unwrap(), 2);
    assert_eq!(store.user(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.user_by_name(&b.username).await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(store.user(UserId::new()).await.unwrap(), None);
    assert_eq!(store.list_users().await.unwrap(), vec![a, b]);
}

pub async fn duplicate_username_conflicts(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Admin).await;
    let again = user("alice", Role::Gm);
    let err = store
        .create_user(&again, &ev("user.create", "user:alice"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { what: "user", .. }),
        "{err:?}"
    );
    assert_eq!(store.list_users().await.unwrap(), vec![a]);
    assert_eq!(
        store.list_events(10).await.unwrap().len(),
        1,
        "failed change left an event"
    );
}

pub async fn tokens_find_their_user(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Admin).await;
    let t = ApiToken {
        id: TokenId::new(),
        user_id: a.id,
        token_hash: "ab".repeat(32),
        label: "cli".into(),
        created_at: now(),
    };
    store
        .create_token(&t, &ev("token.create", "user:alice"))
        .await
        .unwrap();
    assert_eq!(
        store.token_by_hash(&t.token_hash).await.unwrap(),
        Some((t.clone(), a))
    );
    assert_eq!(store.token_by_hash(&"cd".repeat(32)).await.unwrap(), None);
    let dup = ApiToken {
        id: TokenId::new(),
        ..t.clone()
    };
    assert!(
        store
            .create_token(&dup, &ev("token.create", "user:alice"))
            .await
            .is_err()
    );
    // Signing out forgets the token, once.
    store
        .delete_token(&t.token_hash, &ev("auth.logout", "user:alice"))
        .await
        .unwrap();
    assert_eq!(store.token_by_hash(&t.token_hash).await.unwrap(), None);
    assert!(matches!(
        store
            .delete_token(&t.token_hash, &ev("auth.logout", "user:alice"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn instances_round_trip(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let l = add_license(store, "main", None).await;
    let i = add_instance(store, instance("dragon-heist", a.id, Some(l.id))).await;
    let mut j = instance("curse", a.id, None);
    j.release = None;
    j.idle_timeout_minutes = None;
    let j = add_instance(store, j).await;
    assert_eq!(store.instance(&i.slug).await.unwrap(), Some(i.clone()));
    assert_eq!(
        store.instance(&Slug::parse("nope").unwrap()).await.unwrap(),
        None
    );
    assert_eq!(store.list_instances(None).await.unwrap(), vec![i, j]);
}

pub async fn duplicate_slug_conflicts_and_changes_nothing(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let i = add_instance(store, instance("dragon-heist", a.id, None)).await;
    let again = instance("dragon-heist", a.id, None);
    let err = store
        .create_instance(&again, &ev("instance.create", "instance:dragon-heist"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                what: "instance",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.list_instances(None).await.unwrap(), vec![i]);
    assert_eq!(store.list_events(10).await.unwrap().len(), 2);
}

pub async fn instance_needs_existing_owner_and_license(store: &dyn Store) {
    let orphan = instance("orphan", UserId::new(), None);
    let err = store
        .create_instance(&orphan, &ev("instance.create", "instance:orphan"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let a = add_user(store, "alice", Role::Gm).await;
    let dangling = instance("dangling", a.id, Some(LicenseId::new()));
    let err = store
        .create_instance(&dangling, &ev("instance.create", "instance:dangling"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    assert!(store.list_instances(None).await.unwrap().is_empty());
}

pub async fn list_instances_filters_by_owner(store: &dyn Store) {
    let a = user("alice", Role::Gm);
    let b = user("bob", Role::Gm);
    store
        .create_user(&a, &ev("user.create", "user:alice"))
        .await
        .unwrap();
    store
        .create_user(&b, &ev("user.create", "user:bob"))
        .await
        .unwrap();
    let ia = instance("alices", a.id, None);
    let ib = instance("bobs", b.id, None);
    store
        .create_instance(&ia, &ev("instance.create", "instance:alices"))
        .await
        .unwrap();
    store
        .create_instance(&ib, &ev("instance.create", "instance:bobs"))
        .await
        .unwrap();
    assert_eq!(store.list_instances(Some(a.id)).await.unwrap(), vec![ia]);
    assert_eq!(store.list_instances(Some(b.id)).await.unwrap(), vec![ib]);
    assert!(
        store
            .list_instances(Some(UserId::new()))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn delete_instance(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let i = add_instance(store, instance("gone", a.id, None)).await;
    store
        .delete_instance(&i.slug, &ev("instance.destroy", "instance:gone"))
        .await
        .unwrap();
    assert_eq!(store.instance(&i.slug).await.unwrap(), None);
    let err = store
        .delete_instance(&i.slug, &ev("instance.destroy", "instance:gone"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "instance",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.list_events(10).await.unwrap().len(), 3);
}

pub async fn licenses_round_trip(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let pooled = license("pool-1", None);
    let pinned = license("alices", Some(a.id));
    store
        .create_license(&pooled, &ev("license.create", "license:pool-1"))
        .await
        .unwrap();
    store
        .create_license(&pinned, &ev("license.create", "license:alices"))
        .await
        .unwrap();
    assert_eq!(
        store.license(pinned.id).await.unwrap(),
        Some(pinned.clone())
    );
    assert_eq!(store.license(LicenseId::new()).await.unwrap(), None);
    assert_eq!(
        store.list_licenses().await.unwrap(),
        vec![pooled.clone(), pinned]
    );
    store
        .delete_license(pooled.id, &ev("license.remove", "license:pool-1"))
        .await
        .unwrap();
    assert_eq!(store.list_licenses().await.unwrap().len(), 1);
    let err = store
        .delete_license(pooled.id, &ev("license.remove", "license:pool-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "license",
                ..
            }
        ),
        "{err:?}"
    );
}

pub async fn licenses_are_relabelled_and_pinned_only_where_free(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let b = add_user(store, "bob", Role::Gm).await;
    let l = add_license(store, "main", None).await;
    let e = ev("license.update", "license:main");
    // Renamed and pinned to alice, then back to the pool.
    let got = store
        .update_license(l.id, "alices", Some(a.id), &e)
        .await
        .unwrap();
    assert_eq!((got.label.as_str(), got.owner), ("alices", Some(a.id)));
    assert_eq!(store.license(l.id).await.unwrap(), Some(got));
    let got = store.update_license(l.id, "pool", None, &e).await.unwrap();
    assert_eq!((got.label.as_str(), got.owner), ("pool", None));
    // A world of bob's names it: it cannot be pinned to alice, only to bob.
    add_instance(store, instance("bobs", b.id, Some(l.id))).await;
    let err = store
        .update_license(l.id, "alices", Some(a.id), &e)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InUse {
                what: "license",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        store.license(l.id).await.unwrap().unwrap().label,
        "pool",
        "nothing changed"
    );
    store
        .update_license(l.id, "bobs", Some(b.id), &e)
        .await
        .unwrap();
    // Nobody, and a license that does not exist.
    let err = store
        .update_license(l.id, "x", Some(UserId::new()), &e)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let err = store
        .update_license(LicenseId::new(), "x", None, &e)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "license",
                ..
            }
        ),
        "{err:?}"
    );
    // Each change wrote its event (2 users, 1 license, 1 instance, 3 updates).
    assert_eq!(store.list_events(20).await.unwrap().len(), 7);
}

pub async fn license_in_use_cannot_be_deleted(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let l = add_license(store, "main", None).await;
    add_instance(store, instance("uses-it", a.id, Some(l.id))).await;
    let err = store
        .delete_license(l.id, &ev("license.remove", "license:main"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InUse {
                what: "license",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.list_licenses().await.unwrap(), vec![l]);
    assert_eq!(store.list_events(10).await.unwrap().len(), 3);
}

pub async fn changes_and_their_events_are_written_together(store: &dyn Store) {
    let a = user("alice", Role::Admin);
    let e = NewEvent::success("system", "user.create", "user:alice").with_detail("bootstrap");
    store.create_user(&a, &e).await.unwrap();
    let got = store.list_events(10).await.unwrap();
    assert_eq!(got.len(), 1);
    let g = &got[0];
    assert_eq!(
        (&g.actor, &g.action, &g.target, g.outcome, &g.detail, g.at),
        (
            &e.actor,
            &e.action,
            &e.target,
            Outcome::Success,
            &e.detail,
            e.at
        )
    );
}

pub async fn events_newest_first(store: &dyn Store) {
    for n in 0..5 {
        let mut e = ev("note", &format!("thing:{n}"));
        e.outcome = if n % 2 == 0 {
            Outcome::Denied
        } else {
            Outcome::Failure
        };
        store.append_event(&e).await.unwrap();
    }
    let got = store.list_events(3).await.unwrap();
    let targets: Vec<_> = got.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(targets, ["thing:4", "thing:3", "thing:2"]);
    assert_eq!(got[0].outcome, Outcome::Denied);
    assert_eq!(got[1].outcome, Outcome::Failure);
}

pub async fn desired_and_observed_state_round_trip(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let i = add_instance(store, instance("world", a.id, None)).await;
    let got = store
        .set_desired_state(
            &i.slug,
            DesiredState::Running,
            None,
            &ev("instance.start", "instance:world"),
        )
        .await
        .unwrap();
    assert_eq!(got.desired_state, DesiredState::Running);
    assert_eq!(got.state, ObservedState::Stopped);
    let o = crate::Observation {
        state: ObservedState::Running,
        state_reason: Some("healthy".into()),
        players: 3,
        sockets: 2,
        world: Some("lost-mine".into()),
        foundry_version: Some("13.351".into()),
        at: now(),
    };
    store.record_observation(i.id, &o, None).await.unwrap();
    let got = store.instance(&i.slug).await.unwrap().unwrap();
    assert_eq!(
        (
            got.state,
            got.state_reason.as_deref(),
            got.players,
            got.sockets,
            got.world.as_deref(),
            got.foundry_version.as_deref()
        ),
        (
            ObservedState::Running,
            Some("healthy"),
            3,
            2,
            Some("lost-mine"),
            Some("13.351")
        )
    );
    assert_eq!(got.updated_at, o.at);
    assert_eq!(got.desired_state, DesiredState::Running);
    store
        .record_observation(i.id, &o, Some(&ev("instance.failed", "instance:world")))
        .await
        .unwrap();
    assert_eq!(
        store.list_events(10).await.unwrap()[0].action,
        "instance.failed"
    );
    // Asked to stop, it keeps why as its reason; asked to run again, the
    // reason stays until the next observation.
    let got = store
        .set_desired_state(
            &i.slug,
            DesiredState::Stopped,
            Some("asleep after 30 minutes without players"),
            &ev("instance.idle_sleep", "instance:world"),
        )
        .await
        .unwrap();
    assert_eq!(
        (got.desired_state, got.state_reason.as_deref()),
        (
            DesiredState::Stopped,
            Some("asleep after 30 minutes without players")
        )
    );
    let got = store
        .set_desired_state(
            &i.slug,
            DesiredState::Running,
            Some("by hand"),
            &ev("instance.start", "instance:world"),
        )
        .await
        .unwrap();
    assert_eq!(
        got.state_reason.as_deref(),
        Some("asleep after 30 minutes without players")
    );
    let missing = Slug::parse("missing").unwrap();
    assert!(matches!(
        store
            .set_desired_state(&missing, DesiredState::Running, None, &ev("x", "y"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.record_observation(InstanceId::new(), &o, None).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn a_key_binds_to_one_instance(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let k1 = add_license(store, "k1", None).await;
    let k2 = add_license(store, "k2", None).await;
    let i = add_instance(store, instance("one", a.id, None)).await;
    let j = add_instance(store, instance("two", a.id, None)).await;
    let e = || ev("license.bind", "license:k");
    assert!(store.bind_license(k1.id, i.id, &e(), None).await.unwrap());
    assert!(
        store.bind_license(k1.id, i.id, &e(), None).await.unwrap(),
        "binding again is fine"
    );
    assert!(
        !store.bind_license(k1.id, j.id, &e(), None).await.unwrap(),
        "k1 is taken"
    );
    assert!(
        !store.bind_license(k2.id, i.id, &e(), None).await.unwrap(),
        "one already holds a key"
    );
    assert_eq!(
        store.license(k1.id).await.unwrap().unwrap().bound_to,
        Some(i.id)
    );
    assert!(matches!(
        store.delete_license(k1.id, &e()).await,
        Err(StoreError::InUse { .. })
    ));
    assert_eq!(
        store.release_license(i.id, &e()).await.unwrap(),
        Some(k1.id)
    );
    assert_eq!(store.release_license(i.id, &e()).await.unwrap(), None);
    assert!(store.bind_license(k1.id, j.id, &e(), None).await.unwrap());
    // Deleting the instance frees its key.
    store.delete_instance(&j.slug, &e()).await.unwrap();
    assert_eq!(store.license(k1.id).await.unwrap().unwrap().bound_to, None);
    assert!(matches!(
        store.bind_license(LicenseId::new(), i.id, &e(), None).await,
        Err(StoreError::NotFound { .. })
    ));
}

pub async fn concurrent_binds_never_share_a_key(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let mut keys = Vec::new();
    for n in 0..3 {
        keys.push(add_license(store, &format!("k{n}"), None).await);
    }
    let mut worlds = Vec::new();
    for n in 0..10 {
        worlds.push(add_instance(store, instance(&format!("w{n}"), a.id, None)).await);
    }
    // Every world tries every key, all at once.
    let keys = &keys;
    let attempts = worlds.iter().map(|w| async move {
        for k in keys {
            if store
                .bind_license(k.id, w.id, &ev("license.bind", "x"), None)
                .await
                .unwrap()
            {
                return Some(k.id);
            }
        }
        None
    });
    let got: Vec<Option<LicenseId>> = futures_util::future::join_all(attempts).await;
    let mut won: Vec<LicenseId> = got.into_iter().flatten().collect();
    assert_eq!(won.len(), 3, "exactly one world per key");
    won.sort();
    won.dedup();
    assert_eq!(won.len(), 3, "no key went to two worlds");
}

pub async fn concurrent_creates_never_share_a_slug(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    // Ten different worlds want one slug, all at once.
    let attempts = (0..10).map(|_| {
        let i = instance("dragon-heist", a.id, None);
        async move {
            store
                .create_instance(&i, &ev("instance.create", "instance:dragon-heist"))
                .await
                .map(|()| i)
        }
    });
    let results = futures_util::future::join_all(attempts).await;
    let mut created = Vec::new();
    for r in results {
        match r {
            Ok(i) => created.push(i),
            Err(StoreError::Conflict {
                what: "instance", ..
            }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one world got the slug");
    assert_eq!(store.list_instances(None).await.unwrap(), created);
}

pub async fn concurrent_sessions_never_overlap_on_one_key(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let k = add_license(store, "k", None).await;
    let i = add_instance(store, instance("world", a.id, None)).await;
    let base = now();
    // Ten sessions on one key, each overlapping the next, all at once.
    let sessions: Vec<Session> = (0..10).map(|n| session(&i, k.id, base, n, 2)).collect();
    let attempts = sessions
        .iter()
        .map(|s| async move { book(store, s, &[]).await.map(|()| s) });
    let results = futures_util::future::join_all(attempts).await;
    let mut booked: Vec<&Session> = Vec::new();
    for r in results {
        match r {
            Ok(s) => booked.push(s),
            Err(StoreError::Conflict {
                what: "reservation",
                ..
            }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(!booked.is_empty(), "some session was booked");
    let stored = store.list_sessions(base).await.unwrap();
    assert_eq!(stored.len(), booked.len());
    for (n, x) in stored.iter().enumerate() {
        for y in &stored[n + 1..] {
            assert!(
                x.window_end <= y.window_start || y.window_end <= x.window_start,
                "overlapping reservations of one key: {x:?} and {y:?}"
            );
        }
    }
}

pub async fn instance_license_can_change(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let k = add_license(store, "k", None).await;
    let i = add_instance(store, instance("w", a.id, None)).await;
    let got = store
        .set_instance_license(&i.slug, Some(k.id), &ev("license.activate", "license:k"))
        .await
        .unwrap();
    assert_eq!(got.license, Some(k.id));
    assert_eq!(
        store.instance(&i.slug).await.unwrap().unwrap().license,
        Some(k.id)
    );
    let got = store
        .set_instance_license(&i.slug, None, &ev("x", "y"))
        .await
        .unwrap();
    assert_eq!(got.license, None);
    assert!(matches!(
        store
            .set_instance_license(&i.slug, Some(LicenseId::new()), &ev("x", "y"))
            .await,
        Err(StoreError::NotFound {
            what: "license",
            ..
        })
    ));
    assert!(matches!(
        store
            .set_instance_license(&Slug::parse("nope").unwrap(), None, &ev("x", "y"))
            .await,
        Err(StoreError::NotFound {
            what: "instance",
            ..
        })
    ));
}

pub async fn binding_can_start_and_a_running_world_keeps_its_key(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let k = add_license(store, "k", None).await;
    let i = add_instance(store, instance("w", a.id, None)).await;
    let events_before = store.list_events(100).await.unwrap().len();
    assert!(
        store
            .bind_license(
                k.id,
                i.id,
                &ev("license.bind", "license:k"),
                Some(&ev("instance.start", "instance:w"))
            )
            .await
            .unwrap()
    );
    let got = store.instance(&i.slug).await.unwrap().unwrap();
    assert_eq!(got.desired_state, DesiredState::Running);
    let actions: Vec<String> = store
        .list_events(2)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["instance.start", "license.bind"]);
    assert_eq!(
        store.list_events(100).await.unwrap().len(),
        events_before + 2
    );
    // Asked to run and not failed: the key stays, whatever the caller thought.
    assert_eq!(
        store
            .release_license(i.id, &ev("license.release", "x"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.license(k.id).await.unwrap().unwrap().bound_to,
        Some(i.id)
    );
    // Failed: it may go.
    let failed = crate::Observation {
        state: ObservedState::Failed,
        state_reason: Some("crashed".into()),
        players: 0,
        sockets: 0,
        world: None,
        foundry_version: None,
        at: now(),
    };
    store.record_observation(i.id, &failed, None).await.unwrap();
    assert_eq!(
        store
            .release_license(i.id, &ev("license.release", "x"))
            .await
            .unwrap(),
        Some(k.id)
    );
    // Stopped as asked: it may go too.
    assert!(
        store
            .bind_license(k.id, i.id, &ev("license.bind", "x"), None)
            .await
            .unwrap()
    );
    store
        .set_desired_state(
            &i.slug,
            DesiredState::Stopped,
            None,
            &ev("instance.stop", "x"),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .release_license(i.id, &ev("license.release", "x"))
            .await
            .unwrap(),
        Some(k.id)
    );
    // A refused bind starts nothing.
    let j = add_instance(store, instance("v", a.id, None)).await;
    assert!(
        store
            .bind_license(k.id, i.id, &ev("license.bind", "x"), None)
            .await
            .unwrap()
    );
    assert!(
        !store
            .bind_license(
                k.id,
                j.id,
                &ev("license.bind", "x"),
                Some(&ev("instance.start", "instance:v"))
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .instance(&j.slug)
            .await
            .unwrap()
            .unwrap()
            .desired_state,
        DesiredState::Stopped
    );
}

pub async fn user_tier_round_trip(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let got = store
        .set_user_tier(a.id, Some("supporter"), &ev("user.tier", "user:alice"))
        .await
        .unwrap();
    assert_eq!(got.tier.as_deref(), Some("supporter"));
    assert_eq!(
        store.user(a.id).await.unwrap().unwrap().tier.as_deref(),
        Some("supporter")
    );
    let got = store
        .set_user_tier(a.id, None, &ev("user.tier", "user:alice"))
        .await
        .unwrap();
    assert_eq!(got.tier, None);
    assert!(matches!(
        store
            .set_user_tier(UserId::new(), None, &ev("user.tier", "user:x"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Writes a session (and moves), as a scheduling would.
async fn book(
    store: &dyn Store,
    s: &Session,
    moves: &[(SessionId, LicenseId)],
) -> Result<(), StoreError> {
    store
        .create_session(s, moves, &ev("session.schedule", "instance:test"))
        .await
}

/// A session of `i` on `license` starting `from` hours after `base` for
/// `hours`, its window exactly the session (tests choose the numbers).
fn session(i: &Instance, license: LicenseId, base: Timestamp, from: i64, hours: i64) -> Session {
    let start = base + SignedDuration::from_hours(from);
    let end = start + SignedDuration::from_hours(hours);
    Session {
        id: SessionId::new(),
        instance: i.id,
        license,
        starts_at: start,
        ends_at: end,
        window_start: start,
        window_end: end,
        created_by: "tester".into(),
        created_at: base,
        prepared_at: None,
        reminded_at: None,
    }
}

pub async fn session_windows_never_overlap_on_one_key(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let (k1, k2) = (
        add_license(store, "k1", None).await,
        add_license(store, "k2", None).await,
    );
    let i = add_instance(store, instance("world", a.id, None)).await;
    let base = now();
    let s1 = session(&i, k1.id, base, 1, 3);
    book(store, &s1, &[]).await.unwrap();
    // Back to back is fine.
    let s2 = session(&i, k1.id, base, 4, 2);
    book(store, &s2, &[]).await.unwrap();
    // Overlapping on the same key is refused and changes nothing.
    let events = store.list_events(100).await.unwrap().len();
    let s3 = session(&i, k1.id, base, 3, 2);
    let err = book(store, &s3, &[]).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                what: "reservation",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.list_events(100).await.unwrap().len(), events);
    assert_eq!(store.session(s3.id).await.unwrap(), None);
    // On another key it fits.
    let s3 = Session {
        license: k2.id,
        ..s3
    };
    book(store, &s3, &[]).await.unwrap();
    assert_eq!(store.session(s1.id).await.unwrap(), Some(s1.clone()));
    assert_eq!(
        store.list_sessions(base).await.unwrap(),
        vec![s1.clone(), s3.clone(), s2.clone()]
    );
    // Only sessions whose window ends later are listed.
    let later = base + SignedDuration::from_hours(5);
    assert_eq!(store.list_sessions(later).await.unwrap(), vec![s2.clone()]);
    store
        .delete_session(s1.id, &ev("session.cancel", "instance:world"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .delete_session(s1.id, &ev("session.cancel", "instance:world"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    // The cancelled window is free again.
    let s4 = session(&i, k1.id, base, 2, 1);
    book(store, &s4, &[]).await.unwrap();
}

pub async fn moving_sessions_is_all_or_nothing(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let (k1, k2) = (
        add_license(store, "k1", None).await,
        add_license(store, "k2", None).await,
    );
    let i = add_instance(store, instance("world", a.id, None)).await;
    let base = now();
    let s1 = session(&i, k1.id, base, 1, 3);
    let s2 = session(&i, k2.id, base, 3, 3);
    for s in [&s1, &s2] {
        book(store, s, &[]).await.unwrap();
    }
    // s3 overlaps s1 only; moving s1 onto k2 would overlap s2: refused,
    // and s1 stays where it was.
    let s3 = session(&i, k1.id, base, 0, 2);
    let err = book(store, &s3, &[(s1.id, k2.id)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(store.session(s1.id).await.unwrap().unwrap().license, k1.id);
    assert_eq!(store.session(s3.id).await.unwrap(), None);
    // A late session fits on k1.
    let s4 = session(&i, k1.id, base, 6, 1);
    book(store, &s4, &[]).await.unwrap();
    // A new session and a move in one go: s4 goes to k2 after s2.
    let s5 = session(&i, k2.id, base, 0, 1);
    book(store, &s5, &[(s4.id, k2.id)]).await.unwrap();
    assert_eq!(store.session(s4.id).await.unwrap().unwrap().license, k2.id);
    // A prepared session does not move.
    let w = add_instance(store, instance("other", a.id, None)).await;
    store
        .promise_license(w.id, k1.id, None, &ev("instance.start", "instance:other"))
        .await
        .unwrap();
    let s6 = session(&w, k1.id, base, 10, 1);
    book(store, &s6, &[]).await.unwrap();
    store
        .promise_license(
            w.id,
            k1.id,
            Some(s6.id),
            &ev("session.prepare", "instance:other"),
        )
        .await
        .unwrap();
    assert!(
        store
            .session(s6.id)
            .await
            .unwrap()
            .unwrap()
            .prepared_at
            .is_some()
    );
    let s7 = session(&w, k1.id, base, 20, 1);
    let err = book(store, &s7, &[(s6.id, k2.id)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(store.session(s6.id).await.unwrap().unwrap().license, k1.id);
}

pub async fn a_promised_key_is_awaited_until_bound(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let (k1, k2) = (
        add_license(store, "k1", None).await,
        add_license(store, "k2", None).await,
    );
    let i = add_instance(store, instance("world", a.id, None)).await;
    store
        .promise_license(i.id, k1.id, None, &ev("instance.start", "instance:world"))
        .await
        .unwrap();
    let got = store.instance(&i.slug).await.unwrap().unwrap();
    assert_eq!(
        (got.awaits, got.desired_state),
        (Some(k1.id), DesiredState::Running)
    );
    // A key in use cannot be removed while awaited.
    assert!(matches!(
        store
            .delete_license(k1.id, &ev("license.remove", "license:k1"))
            .await,
        Err(StoreError::InUse { .. })
    ));
    // Binding fulfils the promise.
    assert!(
        store
            .bind_license(k1.id, i.id, &ev("license.bind", "license:k1"), None)
            .await
            .unwrap()
    );
    assert_eq!(store.instance(&i.slug).await.unwrap().unwrap().awaits, None);
    // A world that holds a key is not promised another.
    store
        .promise_license(i.id, k2.id, None, &ev("instance.start", "instance:world"))
        .await
        .unwrap();
    assert_eq!(store.instance(&i.slug).await.unwrap().unwrap().awaits, None);
    // Asking to stop withdraws a promise.
    let j = add_instance(store, instance("other", a.id, None)).await;
    store
        .promise_license(j.id, k2.id, None, &ev("instance.start", "instance:other"))
        .await
        .unwrap();
    let got = store
        .set_desired_state(
            &j.slug,
            DesiredState::Stopped,
            None,
            &ev("instance.stop", "instance:other"),
        )
        .await
        .unwrap();
    assert_eq!(got.awaits, None);
    // Not for a world being destroyed, nor for a missing one or key.
    store
        .set_desired_state(
            &j.slug,
            DesiredState::Destroyed,
            None,
            &ev("instance.destroy", "instance:other"),
        )
        .await
        .unwrap();
    for (inst, key) in [
        (j.id, k2.id),
        (InstanceId::new(), k2.id),
        (i.id, LicenseId::new()),
    ] {
        assert!(matches!(
            store
                .promise_license(inst, key, None, &ev("instance.start", "x"))
                .await,
            Err(StoreError::NotFound { .. })
        ));
    }
    assert_eq!(store.instance(&j.slug).await.unwrap().unwrap().awaits, None);
}

pub async fn running_intervals_are_counted(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let b = add_user(store, "bob", Role::Gm).await;
    let k = add_license(store, "k", None).await;
    let i = add_instance(store, instance("world", a.id, None)).await;
    let j = add_instance(store, instance("bobs", b.id, None)).await;
    assert!(
        store
            .bind_license(k.id, i.id, &ev("license.bind", "license:k"), None)
            .await
            .unwrap()
    );
    let t0 = now();
    let at = |mins: i64| t0 + SignedDuration::from_mins(mins);
    let seen = |state, players, mins| Observation {
        state,
        state_reason: None,
        players,
        sockets: 0,
        world: None,
        foundry_version: None,
        at: at(mins),
    };
    store
        .record_observation(i.id, &seen(ObservedState::Starting, 0, 0), None)
        .await
        .unwrap();
    assert_eq!(
        store
            .instance(&i.slug)
            .await
            .unwrap()
            .unwrap()
            .last_activity_at,
        None
    );
    store
        .record_observation(i.id, &seen(ObservedState::Running, 0, 1), None)
        .await
        .unwrap();
    // Running again (a poll) keeps the one open interval.
    store
        .record_observation(i.id, &seen(ObservedState::Running, 0, 2), None)
        .await
        .unwrap();
    assert_eq!(
        store
            .instance(&i.slug)
            .await
            .unwrap()
            .unwrap()
            .last_activity_at,
        Some(at(1))
    );
    store
        .record_observation(i.id, &seen(ObservedState::Running, 2, 30), None)
        .await
        .unwrap();
    // The last player leaves at 40: active until then, not after.
    let last_activity = || async {
        store
            .instance(&i.slug)
            .await
            .unwrap()
            .unwrap()
            .last_activity_at
    };
    store
        .record_observation(i.id, &seen(ObservedState::Running, 0, 40), None)
        .await
        .unwrap();
    assert_eq!(last_activity().await, Some(at(40)));
    store
        .record_observation(i.id, &seen(ObservedState::Running, 0, 50), None)
        .await
        .unwrap();
    assert_eq!(last_activity().await, Some(at(40)));
    // An open tab through the proxy counts too.
    let tab = Observation {
        sockets: 1,
        ..seen(ObservedState::Running, 0, 55)
    };
    store.record_observation(i.id, &tab, None).await.unwrap();
    assert_eq!(last_activity().await, Some(at(55)));
    store
        .record_observation(i.id, &seen(ObservedState::Stopped, 0, 61), None)
        .await
        .unwrap();
    store
        .record_observation(j.id, &seen(ObservedState::Running, 0, 5), None)
        .await
        .unwrap();
    let all = store.list_usage(None, at(-10), at(100)).await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    let mine = store
        .list_usage(Some(a.id), at(-10), at(100))
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(
        (
            mine[0].instance,
            mine[0].license,
            mine[0].started_at,
            mine[0].stopped_at
        ),
        (i.id, Some(k.id), at(1), Some(at(61)))
    );
    // Outside the range: nothing; an open interval overlaps everything after.
    assert!(
        store
            .list_usage(Some(a.id), at(70), at(100))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .list_usage(Some(b.id), at(1000), at(2000))
            .await
            .unwrap()
            .len(),
        1
    );
    // Deleting a world closes its interval and keeps it.
    store
        .delete_instance(&j.slug, &ev("instance.destroyed", "instance:bobs"))
        .await
        .unwrap();
    let bobs = store
        .list_usage(Some(b.id), at(0), at(1_000_000))
        .await
        .unwrap();
    assert_eq!(bobs.len(), 1);
    assert!(bobs[0].stopped_at.is_some());
}

pub async fn a_reserved_key_cannot_be_removed(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let k = add_license(store, "k", None).await;
    let i = add_instance(store, instance("world", a.id, None)).await;
    let past = now() - SignedDuration::from_hours(10);
    let ended = session(&i, k.id, past, 0, 1);
    book(store, &ended, &[]).await.unwrap();
    let coming = session(&i, k.id, now(), 1, 1);
    book(store, &coming, &[]).await.unwrap();
    let err = store
        .delete_license(k.id, &ev("license.remove", "license:k"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
    store
        .delete_session(coming.id, &ev("session.cancel", "instance:world"))
        .await
        .unwrap();
    // Ended sessions go with the key.
    store
        .delete_license(k.id, &ev("license.remove", "license:k"))
        .await
        .unwrap();
    assert_eq!(store.session(ended.id).await.unwrap(), None);
}

pub async fn instance_settings_change_one_at_a_time(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let i = add_instance(store, instance("world", a.id, None)).await;
    assert_eq!(
        (i.idle_timeout_minutes, i.wake_on_visit),
        (Some(45), Some(WakeOnVisit::Anyone))
    );
    let ev = || ev("instance.update", "instance:world");
    let got = store
        .update_instance_settings(&i.slug, None, Some(Some(WakeOnVisit::Off)), &ev())
        .await
        .unwrap();
    assert_eq!(
        (got.idle_timeout_minutes, got.wake_on_visit),
        (Some(45), Some(WakeOnVisit::Off))
    );
    let got = store
        .update_instance_settings(&i.slug, Some(Some(90)), Some(None), &ev())
        .await
        .unwrap();
    assert_eq!(
        (got.idle_timeout_minutes, got.wake_on_visit),
        (Some(90), None)
    );
    let got = store
        .update_instance_settings(&i.slug, Some(None), None, &ev())
        .await
        .unwrap();
    assert_eq!((got.idle_timeout_minutes, got.wake_on_visit), (None, None));
    assert_eq!(store.instance(&i.slug).await.unwrap(), Some(got));
    assert!(matches!(
        store
            .update_instance_settings(&Slug::parse("nope").unwrap(), None, None, &ev())
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

fn backup_of(i: &Instance, kind: BackupKind, at: jiff::Timestamp) -> Backup {
    Backup {
        id: BackupId::new(),
        instance: i.id,
        slug: i.slug.clone(),
        owner: i.owner,
        kind,
        status: BackupStatus::InProgress,
        live: kind == BackupKind::Manual,
        locked: false,
        created_by: "tester".into(),
        created_at: at,
        finished_at: None,
        target: "/var/lib/tavern/backups".into(),
        format: BackupFormat::Archive,
        archive: None,
        error: None,
    }
}

pub async fn backups_move_into_a_repository_and_its_password_is_kept_once(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let w = add_instance(store, instance("alpha", a.id, None)).await;
    let b = backup_of(&w, BackupKind::Scheduled, now());
    store
        .create_backup(&b, &ev("backup.create", "x"))
        .await
        .unwrap();
    let archive = ArchiveFacts {
        key: format!("alpha/{}.tar.zst", b.id),
        size: 10,
        sha256: "ab".repeat(32),
        files: 3,
        bytes: 30,
    };
    let snapshot = ArchiveFacts {
        key: "repositories/alpha".into(),
        size: 7,
        sha256: "cd".repeat(32),
        files: 3,
        bytes: 30,
    };
    // Only a complete backup moves.
    let early = store
        .move_backup(
            b.id,
            BackupFormat::Repository,
            "s3://b",
            &snapshot,
            &ev("backup.move", "x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(early, StoreError::NotFound { .. }), "{early:?}");
    store
        .finish_backup(b.id, now(), Ok(&archive), &ev("backup.complete", "x"))
        .await
        .unwrap();
    let moved = store
        .move_backup(
            b.id,
            BackupFormat::Repository,
            "s3://b",
            &snapshot,
            &ev("backup.move", "x"),
        )
        .await
        .unwrap();
    assert_eq!(moved.format, BackupFormat::Repository);
    assert_eq!(moved.target, "s3://b");
    assert_eq!(moved.archive.as_ref(), Some(&snapshot));
    assert_eq!(store.backup(b.id).await.unwrap(), Some(moved));

    assert_eq!(store.repository_password().await.unwrap(), None);
    let events = store.list_events(100).await.unwrap().len();
    let first = store
        .keep_repository_password(b"sealed-one", &ev("backup.repository_password", "x"))
        .await
        .unwrap();
    assert_eq!(first, b"sealed-one");
    // A second replica's is not kept: the first stays.
    let second = store
        .keep_repository_password(b"sealed-two", &ev("backup.repository_password", "x"))
        .await
        .unwrap();
    assert_eq!(second, b"sealed-one");
    assert_eq!(
        store.repository_password().await.unwrap().as_deref(),
        Some(&b"sealed-one"[..])
    );
    assert_eq!(store.list_events(100).await.unwrap().len(), events + 1);
}

pub async fn backups_finish_once_and_outlive_their_world(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let b = add_user(store, "bob", Role::Gm).await;
    let wa = add_instance(store, instance("alpha", a.id, None)).await;
    let wb = add_instance(store, instance("beta", b.id, None)).await;
    let base = now();
    let first = backup_of(&wa, BackupKind::Manual, base);
    let second = backup_of(
        &wa,
        BackupKind::AfterStop,
        base + SignedDuration::from_mins(5),
    );
    let bobs = backup_of(
        &wb,
        BackupKind::Scheduled,
        base + SignedDuration::from_mins(1),
    );
    for x in [&first, &second, &bobs] {
        store
            .create_backup(x, &ev("backup.create", "instance:x"))
            .await
            .unwrap();
    }
    let facts = ArchiveFacts {
        key: format!("alpha/{}.tar.zst", first.id),
        size: 5_000_000_000,
        sha256: "ab".repeat(32),
        files: 12_345,
        bytes: 9_000_000_000,
    };
    let done_at = base + SignedDuration::from_mins(2);
    let done = store
        .finish_backup(first.id, done_at, Ok(&facts), &ev("backup.complete", "x"))
        .await
        .unwrap();
    assert_eq!(done.status, BackupStatus::Complete);
    assert_eq!(done.archive.as_ref(), Some(&facts));
    assert_eq!(done.finished_at, Some(done_at));
    // Once ended, it stays ended.
    let again = store
        .finish_backup(first.id, done_at, Err("late"), &ev("backup.fail", "x"))
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::NotFound { .. }), "{again:?}");
    assert_eq!(store.backup(first.id).await.unwrap(), Some(done.clone()));

    // Newest first; by owner; by world.
    let ids = |v: Vec<Backup>| v.into_iter().map(|b| b.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_backups(None, None).await.unwrap()),
        [second.id, bobs.id, first.id]
    );
    assert_eq!(
        ids(store.list_backups(Some(b.id), None).await.unwrap()),
        [bobs.id]
    );
    assert_eq!(
        ids(store.list_backups(None, Some(&wa.slug)).await.unwrap()),
        [second.id, first.id]
    );
    assert!(
        store
            .list_backups(Some(b.id), Some(&wa.slug))
            .await
            .unwrap()
            .is_empty()
    );
    // The world goes; its backups stay.
    store
        .delete_instance(&wa.slug, &ev("instance.destroy", "instance:alpha"))
        .await
        .unwrap();
    assert_eq!(store.backup(first.id).await.unwrap(), Some(done));
}

pub async fn backups_fail_with_a_reason_lock_and_go(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let w = add_instance(store, instance("alpha", a.id, None)).await;
    let b = backup_of(&w, BackupKind::PreDestroy, now());
    store
        .create_backup(&b, &ev("backup.create", "instance:alpha"))
        .await
        .unwrap();
    let failed = store
        .finish_backup(
            b.id,
            now(),
            Err("tavern stopped during it"),
            &ev("backup.fail", "x"),
        )
        .await
        .unwrap();
    assert_eq!(failed.status, BackupStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("tavern stopped during it"));
    assert_eq!(failed.archive, None);
    let locked = store
        .set_backup_locked(b.id, true, &ev("backup.lock", "x"))
        .await
        .unwrap();
    assert!(locked.locked);
    let events = store.list_events(100).await.unwrap().len();
    store
        .delete_backup(b.id, &ev("backup.delete", "x"))
        .await
        .unwrap();
    assert_eq!(store.backup(b.id).await.unwrap(), None);
    assert_eq!(store.list_events(100).await.unwrap().len(), events + 1);
    for err in [
        store
            .delete_backup(b.id, &ev("backup.delete", "x"))
            .await
            .unwrap_err(),
        store
            .set_backup_locked(b.id, false, &ev("backup.lock", "x"))
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    }
}

pub async fn instance_release_and_runtime_can_change(store: &dyn Store) {
    let a = add_user(store, "alice", Role::Gm).await;
    let i = add_instance(store, instance("w", a.id, None)).await;
    let got = store
        .set_instance_launch(
            &i.slug,
            "13.345",
            RuntimeKind::Docker,
            &ev("instance.upgrade", "instance:w"),
        )
        .await
        .unwrap();
    assert_eq!(got.release.as_deref(), Some("13.345"));
    assert_eq!(got.runtime, RuntimeKind::Docker);
    assert_eq!(store.instance(&i.slug).await.unwrap(), Some(got));
    let missing = Slug::parse("nope").unwrap();
    let err = store
        .set_instance_launch(
            &missing,
            "13.345",
            RuntimeKind::Process,
            &ev("instance.upgrade", "instance:nope"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

pub async fn emails_are_unique_and_find_their_user(store: &dyn Store) {
    let ann = add_user(store, "ann", Role::Gm).await;
    let bob = add_user(store, "bob", Role::Gm).await;
    let set = store
        .set_user_email(
            ann.id,
            Some("ann@example.org"),
            &ev("user.email", "user:ann"),
        )
        .await
        .unwrap();
    assert_eq!(set.email.as_deref(), Some("ann@example.org"));
    let found = store
        .user_by_email("ann@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, ann.id);
    assert_eq!(found.email.as_deref(), Some("ann@example.org"));

    let events = store.list_events(100).await.unwrap().len();
    let err = store
        .set_user_email(
            bob.id,
            Some("ann@example.org"),
            &ev("user.email", "user:bob"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(store.list_events(100).await.unwrap().len(), events);
    assert_eq!(store.user(bob.id).await.unwrap().unwrap().email, None);

    store
        .set_user_email(ann.id, None, &ev("user.email", "user:ann"))
        .await
        .unwrap();
    assert!(
        store
            .user_by_email("ann@example.org")
            .await
            .unwrap()
            .is_none()
    );
    let err = store
        .set_user_email(
            UserId::new(),
            Some("x@example.org"),
            &ev("user.email", "user:x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

pub async fn link_codes_work_once_and_expire(store: &dyn Store) {
    let ann = add_user(store, "ann", Role::Gm).await;
    let at = now();
    let later = at + SignedDuration::from_mins(10);
    store
        .create_link_code("hash-a", ann.id, later, &ev("user.link_code", "user:ann"))
        .await
        .unwrap();
    store
        .create_link_code("hash-b", ann.id, later, &ev("user.link_code", "user:ann"))
        .await
        .unwrap();
    assert_eq!(
        store.take_link_code("hash-a", at).await.unwrap(),
        Some(ann.id)
    );
    assert_eq!(store.take_link_code("hash-a", at).await.unwrap(), None);
    assert_eq!(store.take_link_code("nothing", at).await.unwrap(), None);
    // Expired: refused, and gone.
    assert_eq!(store.take_link_code("hash-b", later).await.unwrap(), None);
    assert_eq!(store.take_link_code("hash-b", at).await.unwrap(), None);
    let err = store
        .create_link_code(
            "hash-c",
            UserId::new(),
            later,
            &ev("user.link_code", "user:x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

fn payment(transaction: &str, email: Option<&str>, kind: PaymentKind) -> Payment {
    Payment {
        transaction: transaction.into(),
        message_id: format!("msg-{transaction}"),
        kind,
        from_name: "Jo Example".into(),
        email: email.map(str::to_owned),
        amount_cents: 350,
        currency: "USD".into(),
        tier_name: (kind == PaymentKind::Subscription).then(|| "Bronze".into()),
        first_subscription: kind == PaymentKind::Subscription,
        paid_at: now() - SignedDuration::from_hours(1),
        recorded_at: now(),
        user: None,
    }
}

pub async fn payments_are_recorded_once_and_assigned_later(store: &dyn Store) {
    let ann = add_user(store, "ann", Role::Gm).await;
    let p1 = payment("t1", Some("jo@example.org"), PaymentKind::Donation);
    let p2 = payment("t2", Some("jo@example.org"), PaymentKind::Subscription);
    let p3 = payment("t3", None, PaymentKind::Donation);
    let e = ev("payment.record", "payment:x");
    assert!(store.record_payment(&p1, &e).await.unwrap());
    let events = store.list_events(100).await.unwrap().len();
    // A replay changes nothing and writes no event.
    let mut replay = p1.clone();
    replay.amount_cents = 99_999;
    assert!(!store.record_payment(&replay, &e).await.unwrap());
    assert_eq!(store.list_events(100).await.unwrap().len(), events);
    assert!(store.record_payment(&p2, &e).await.unwrap());
    assert!(store.record_payment(&p3, &e).await.unwrap());

    let all = store.list_payments(None).await.unwrap();
    assert_eq!(all.len(), 3);
    let t1 = all.iter().find(|p| p.transaction == "t1").unwrap();
    assert_eq!(t1, &p1, "read back as written");
    assert_eq!(store.payment("t1").await.unwrap().as_ref(), Some(&p1));
    assert_eq!(store.payment("no-such").await.unwrap(), None);
    assert!(store.list_payments(Some(ann.id)).await.unwrap().is_empty());
    assert_eq!(store.payer("jo@example.org").await.unwrap(), None);

    // Assigning by e-mail takes every unassigned payment from it.
    let e = ev("payment.assign", "user:ann");
    let n = store
        .assign_payments(ann.id, None, Some("jo@example.org"), &e)
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(store.payer("jo@example.org").await.unwrap(), Some(ann.id));
    let mine = store.list_payments(Some(ann.id)).await.unwrap();
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|p| p.user == Some(ann.id)));
    // By transaction, one without an e-mail; again: nothing left to take.
    let n = store
        .assign_payments(ann.id, Some("t3"), None, &e)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let n = store
        .assign_payments(ann.id, Some("t3"), Some("jo@example.org"), &e)
        .await
        .unwrap();
    assert_eq!(n, 0);
    // A payment recorded with its user already known.
    let mut p4 = payment("t4", Some("other@example.org"), PaymentKind::Donation);
    p4.user = Some(ann.id);
    assert!(
        store
            .record_payment(&p4, &ev("payment.record", "payment:t4"))
            .await
            .unwrap()
    );
    assert_eq!(store.list_payments(Some(ann.id)).await.unwrap().len(), 4);
    let mut p5 = payment("t5", None, PaymentKind::Donation);
    p5.user = Some(UserId::new());
    let err = store
        .record_payment(&p5, &ev("payment.record", "payment:t5"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

pub async fn invites_create_users_until_used_up(store: &dyn Store) {
    let at = now();
    let invite = Invite {
        id: InviteId::new(),
        code_hash: "invite-hash".into(),
        role: Role::Gm,
        tier: Some("bronze".into()),
        max_uses: 2,
        uses: 0,
        expires_at: at + SignedDuration::from_hours(1),
        created_by: "admin".into(),
        created_at: at,
    };
    store
        .create_invite(&invite, &ev("invite.create", "invite:x"))
        .await
        .unwrap();
    assert_eq!(store.list_invites().await.unwrap(), vec![invite.clone()]);
    assert_eq!(
        store.invite_by_code("invite-hash").await.unwrap(),
        Some(invite.clone())
    );

    let accept = |name: &str| {
        let u = user(name, Role::Gm);
        async move {
            store
                .accept_invite("invite-hash", &u, &ev("invite.accept", "invite:x"))
                .await
        }
    };
    let after = accept("ann").await.unwrap();
    assert_eq!(after.uses, 1);
    assert!(
        store
            .user_by_name(&Username::parse("ann").unwrap())
            .await
            .unwrap()
            .is_some()
    );
    // A taken name spends no use.
    let err = accept("ann").await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(
        store
            .invite_by_code("invite-hash")
            .await
            .unwrap()
            .unwrap()
            .uses,
        1
    );
    assert_eq!(accept("bob").await.unwrap().uses, 2);
    // Used up: no more accounts.
    let err = accept("cy").await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    assert!(
        store
            .user_by_name(&Username::parse("cy").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let err = store
        .accept_invite(
            "no-such",
            &user("dee", Role::Gm),
            &ev("invite.accept", "invite:y"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");

    // Expired.
    let old = Invite {
        id: InviteId::new(),
        code_hash: "old-hash".into(),
        expires_at: at - SignedDuration::from_secs(1),
        uses: 0,
        ..invite.clone()
    };
    store
        .create_invite(&old, &ev("invite.create", "invite:old"))
        .await
        .unwrap();
    let err = store
        .accept_invite(
            "old-hash",
            &user("eve", Role::Gm),
            &ev("invite.accept", "invite:old"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");

    store
        .delete_invite(invite.id, &ev("invite.delete", "invite:x"))
        .await
        .unwrap();
    assert_eq!(store.list_invites().await.unwrap().len(), 1);
    let err = store
        .delete_invite(invite.id, &ev("invite.delete", "invite:x"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

fn note(kind: &str, destination: &str) -> NewNotification {
    NewNotification {
        kind: kind.into(),
        destination: destination.into(),
        message: format!("{kind} happened"),
        created_at: now(),
    }
}

pub async fn the_outbox_follows_the_audit_log_and_records_deliveries(store: &dyn Store) {
    assert_eq!(store.last_event_seq().await.unwrap(), 0);
    assert_eq!(store.outbox_cursor().await.unwrap(), None);
    add_user(store, "ann", Role::Gm).await;
    add_user(store, "bob", Role::Gm).await;
    let last = store.last_event_seq().await.unwrap();
    let all = store.events_after(0, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[0].0 < all[1].0 && all[1].0 == last, "{all:?}");
    assert_eq!(all[1].1.target, "user:bob");
    assert_eq!(store.events_after(all[0].0, 10).await.unwrap().len(), 1);
    assert!(store.events_after(last, 10).await.unwrap().is_empty());

    // The cursor starts once, then moves only from where it is.
    assert!(
        store
            .enqueue_notifications(None, all[0].0, &[])
            .await
            .unwrap()
    );
    assert!(
        !store
            .enqueue_notifications(None, last, &[note("x", "community")])
            .await
            .unwrap()
    );
    assert_eq!(store.outbox_cursor().await.unwrap(), Some(all[0].0));
    let items = [
        note("world_started", "community"),
        note("world_started", "user:1"),
    ];
    assert!(
        !store
            .enqueue_notifications(Some(last + 5), last, &items)
            .await
            .unwrap()
    );
    assert!(
        store.list_notifications(10).await.unwrap().is_empty(),
        "nothing added"
    );
    assert!(
        store
            .enqueue_notifications(Some(all[0].0), last, &items)
            .await
            .unwrap()
    );
    assert_eq!(store.outbox_cursor().await.unwrap(), Some(last));

    let at = now();
    let due = store.due_notifications(at, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!((due[0].attempts, due[0].delivered_at), (0, None));
    assert_eq!(due[1].destination, "user:1");
    let later = at + SignedDuration::from_secs(60);
    store
        .finish_notification(
            due[0].id,
            &Delivery::Retry {
                next_attempt_at: later,
                error: "connection refused".into(),
            },
        )
        .await
        .unwrap();
    store
        .finish_notification(due[1].id, &Delivery::Delivered { at })
        .await
        .unwrap();
    assert!(store.due_notifications(at, 10).await.unwrap().is_empty());
    let again = store.due_notifications(later, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].attempts, again[0].last_error.as_deref()),
        (1, Some("connection refused"))
    );
    store
        .finish_notification(
            again[0].id,
            &Delivery::GaveUp {
                at: later,
                error: "still refused".into(),
            },
        )
        .await
        .unwrap();
    assert!(store.due_notifications(later, 10).await.unwrap().is_empty());
    let listed = store.list_notifications(10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].delivered_at, Some(at), "newest first");
    assert_eq!((listed[1].gave_up_at, listed[1].attempts), (Some(later), 2));
    let err = store
        .finish_notification(9999, &Delivery::Delivered { at })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

pub async fn webhooks_and_reminders_round_trip(store: &dyn Store) {
    let ann = add_user(store, "ann", Role::Gm).await;
    assert_eq!(store.user_webhook(ann.id).await.unwrap(), None);
    store
        .set_user_webhook(ann.id, Some(b"sealed"), &ev("user.webhook", "user:ann"))
        .await
        .unwrap();
    assert_eq!(
        store.user_webhook(ann.id).await.unwrap().as_deref(),
        Some(&b"sealed"[..])
    );
    store
        .set_user_webhook(ann.id, None, &ev("user.webhook", "user:ann"))
        .await
        .unwrap();
    assert_eq!(store.user_webhook(ann.id).await.unwrap(), None);
    assert_eq!(store.user_webhook(UserId::new()).await.unwrap(), None);

    let key = add_license(store, "k", None).await;
    let world = add_instance(store, instance("keep", ann.id, None)).await;
    let s = session(&world, key.id, now(), 1, 2);
    book(store, &s, &[]).await.unwrap();
    let e = ev("session.reminder", "instance:keep");
    assert!(store.mark_session_reminded(s.id, &e).await.unwrap());
    assert!(!store.mark_session_reminded(s.id, &e).await.unwrap());
    let got = store.session(s.id).await.unwrap().unwrap();
    assert!(got.reminded_at.is_some());
    let events = store.list_events(100).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == "session.reminder")
            .count(),
        1
    );
}

pub async fn a_discord_account_acts_as_one_user(store: &dyn Store) {
    let ann = add_user(store, "ann", Role::Gm).await;
    let bob = add_user(store, "bob", Role::Gm).await;
    let e = ev("user.discord", "user:x");
    assert!(store.user_by_discord("1234").await.unwrap().is_none());
    assert_eq!(store.discord_of(ann.id).await.unwrap(), None);
    store.link_discord(ann.id, Some("1234"), &e).await.unwrap();
    assert_eq!(
        store.user_by_discord("1234").await.unwrap().unwrap().id,
        ann.id
    );
    assert_eq!(
        store.discord_of(ann.id).await.unwrap().as_deref(),
        Some("1234")
    );
    // The same Discord account linked to Bob is Bob's now, not Ann's.
    store.link_discord(bob.id, Some("1234"), &e).await.unwrap();
    assert_eq!(
        store.user_by_discord("1234").await.unwrap().unwrap().id,
        bob.id
    );
    assert_eq!(store.discord_of(ann.id).await.unwrap(), None);
    // A user has one Discord account: linking another replaces it.
    store.link_discord(bob.id, Some("5678"), &e).await.unwrap();
    assert!(store.user_by_discord("1234").await.unwrap().is_none());
    store.link_discord(bob.id, None, &e).await.unwrap();
    assert!(store.user_by_discord("5678").await.unwrap().is_none());
    assert_eq!(store.discord_of(bob.id).await.unwrap(), None);
    let err = store
        .link_discord(UserId::new(), Some("9"), &e)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

pub async fn second_factors_take_each_step_and_recovery_code_once(store: &dyn Store) {
    let ann = add_user(store, "ann", Role::Admin).await;
    let bob = add_user(store, "bob", Role::Gm).await;
    let e = ev("user.totp", "user:ann");
    let at = Timestamp::from_second(1_800_000_000).unwrap();
    let factor = |user, secret: &[u8]| TotpFactor {
        user,
        secret_sealed: secret.to_vec(),
        created_at: at,
        confirmed_at: None,
        last_step: None,
    };
    assert!(store.totp(ann.id).await.unwrap().is_none());
    store.begin_totp(&factor(ann.id, b"one"), &e).await.unwrap();
    // An enrolment not confirmed yet is not a factor: no step is taken.
    assert!(!store.use_totp_step(ann.id, 10).await.unwrap());
    // Starting again replaces it.
    store.begin_totp(&factor(ann.id, b"two"), &e).await.unwrap();
    assert_eq!(
        store.totp(ann.id).await.unwrap().unwrap().secret_sealed,
        b"two"
    );
    let codes = vec!["h1".to_owned(), "h2".to_owned()];
    assert!(
        store
            .confirm_totp(ann.id, 10, at, &codes, &e)
            .await
            .unwrap()
    );
    // Confirmed once only, and then it cannot be replaced by a new enrolment.
    assert!(
        !store
            .confirm_totp(ann.id, 11, at, &codes, &e)
            .await
            .unwrap()
    );
    let err = store
        .begin_totp(&factor(ann.id, b"three"), &e)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    let held = store.totp(ann.id).await.unwrap().unwrap();
    assert_eq!((held.confirmed_at, held.last_step), (Some(at), Some(10)));
    assert_eq!(held.secret_sealed, b"two");
    // The confirming step, and any earlier one, is not taken again.
    assert!(!store.use_totp_step(ann.id, 10).await.unwrap());
    assert!(!store.use_totp_step(ann.id, 9).await.unwrap());
    // Two replicas taking the same new step at once: one of them wins.
    let (a, b) = futures_util::future::join(
        store.use_totp_step(ann.id, 12),
        store.use_totp_step(ann.id, 12),
    )
    .await;
    assert!(a.unwrap() ^ b.unwrap());
    assert!(!store.use_totp_step(ann.id, 11).await.unwrap());
    assert!(store.use_totp_step(ann.id, 13).await.unwrap());
    // Recovery codes: each once, and only the user's own.
    assert_eq!(store.recovery_codes_left(ann.id).await.unwrap(), 2);
    assert!(!store.use_recovery_code(bob.id, "h1", &e).await.unwrap());
    assert!(store.use_recovery_code(ann.id, "h1", &e).await.unwrap());
    assert!(!store.use_recovery_code(ann.id, "h1", &e).await.unwrap());
    assert_eq!(store.recovery_codes_left(ann.id).await.unwrap(), 1);
    store
        .replace_recovery_codes(ann.id, &["h3".to_owned()], &e)
        .await
        .unwrap();
    assert!(!store.use_recovery_code(ann.id, "h2", &e).await.unwrap());
    assert_eq!(store.recovery_codes_left(ann.id).await.unwrap(), 1);
    // Bob's are his own.
    assert!(store.totp(bob.id).await.unwrap().is_none());
    assert!(!store.remove_totp(bob.id, &e).await.unwrap());
    // Removing takes the codes with it.
    assert!(store.remove_totp(ann.id, &e).await.unwrap());
    assert!(store.totp(ann.id).await.unwrap().is_none());
    assert_eq!(store.recovery_codes_left(ann.id).await.unwrap(), 0);
    let err = store
        .begin_totp(&factor(UserId::new(), b"x"), &e)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

pub async fn outside_accounts_link_to_one_user(store: &dyn Store) {
    let ann = add_user(store, "ann", Role::Gm).await;
    let bob = add_user(store, "bob", Role::Gm).await;
    let e = ev("user.link", "user:x");
    let at = Timestamp::from_second(1_800_000_000).unwrap();
    let link = |user, subject: &str| Identity {
        provider: "oidc".into(),
        subject: subject.into(),
        user,
        linked_at: at,
    };
    assert!(
        store
            .user_by_identity("oidc", "s1")
            .await
            .unwrap()
            .is_none()
    );
    store.link_identity(&link(ann.id, "s1"), &e).await.unwrap();
    assert_eq!(
        store
            .user_by_identity("oidc", "s1")
            .await
            .unwrap()
            .unwrap()
            .id,
        ann.id
    );
    // The same subject of another provider is someone else.
    assert!(
        store
            .user_by_identity("other", "s1")
            .await
            .unwrap()
            .is_none()
    );
    // One account acts as one user: Bob cannot take Ann's.
    let err = store
        .link_identity(&link(bob.id, "s1"), &e)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(
        store.identities(ann.id).await.unwrap(),
        vec![link(ann.id, "s1")]
    );
    assert!(store.identities(bob.id).await.unwrap().is_empty());
    assert!(!store.unlink_identity(bob.id, "oidc", &e).await.unwrap());
    assert!(store.unlink_identity(ann.id, "oidc", &e).await.unwrap());
    assert!(
        store
            .user_by_identity("oidc", "s1")
            .await
            .unwrap()
            .is_none()
    );
    store.link_identity(&link(bob.id, "s1"), &e).await.unwrap();
    let err = store
        .link_identity(&link(UserId::new(), "s2"), &e)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

pub async fn dns_names_are_kept_replaced_and_forgotten(store: &dyn Store) {
    assert!(store.list_dns_names().await.unwrap().is_empty());
    let at = Timestamp::from_second(1_800_000_000).unwrap();
    let failing = DnsName {
        host: "beta.games.test".into(),
        slug: Slug::parse("beta").unwrap(),
        held: false,
        error: Some("the DNS provider could not be reached: timed out".into()),
        attempts: 2,
        checked_at: at,
        next_attempt_at: at + SignedDuration::from_mins(2),
    };
    let held = DnsName {
        host: "alpha.games.test".into(),
        slug: Slug::parse("alpha").unwrap(),
        held: true,
        error: None,
        attempts: 0,
        checked_at: at,
        next_attempt_at: at + SignedDuration::from_mins(10),
    };
    store.put_dns_name(&failing, None).await.unwrap();
    store
        .put_dns_name(&held, Some(&ev("dns.set", "dns:alpha.games.test")))
        .await
        .unwrap();
    assert_eq!(
        store.list_dns_names().await.unwrap(),
        vec![held.clone(), failing.clone()]
    );
    // Only news is in the audit log.
    let events = store.list_events(10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "dns.set");

    // A later attempt replaces the row.
    let fixed = DnsName {
        held: true,
        error: None,
        attempts: 0,
        ..failing.clone()
    };
    store.put_dns_name(&fixed, None).await.unwrap();
    assert_eq!(
        store.dns_name("beta.games.test").await.unwrap(),
        Some(fixed)
    );
    assert_eq!(store.dns_name("gamma.games.test").await.unwrap(), None);

    store
        .delete_dns_name(
            "alpha.games.test",
            &ev("dns.remove", "dns:alpha.games.test"),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .delete_dns_name(
                "alpha.games.test",
                &ev("dns.remove", "dns:alpha.games.test")
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));
    let left: Vec<_> = store
        .list_dns_names()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.host)
        .collect();
    assert_eq!(left, ["beta.games.test"]);
    assert_eq!(store.list_events(10).await.unwrap().len(), 2);
}

pub async fn storage_places_keep_their_sealed_keys_and_are_forgotten(store: &dyn Store) {
    assert!(store.list_storage_places().await.unwrap().is_empty());
    let at = Timestamp::from_second(1_800_000_000).unwrap();
    let pending = StoragePlace {
        instance: InstanceId::new(),
        slug: Slug::parse("alpha").unwrap(),
        bucket: "tavern-alpha-0123456789ab".into(),
        folder: None,
        user: "tavern-alpha-0123456789ab".into(),
        access_key_id: None,
        secret_sealed: None,
        ready: false,
        error: Some("IAM could not be reached".into()),
        attempts: 1,
        bytes: None,
        checked_at: at,
        next_attempt_at: at + SignedDuration::from_secs(30),
    };
    let ready = StoragePlace {
        instance: InstanceId::new(),
        slug: Slug::parse("beta").unwrap(),
        bucket: "shared".into(),
        folder: Some("tavern-beta-ba9876543210".into()),
        user: "tavern-beta-ba9876543210".into(),
        access_key_id: Some("AKIDBETA".into()),
        secret_sealed: Some(vec![1, 0, 255, 7]),
        ready: true,
        error: None,
        attempts: 0,
        bytes: Some(5_000_000_000),
        checked_at: at,
        next_attempt_at: at + SignedDuration::from_hours(1),
    };
    store.put_storage_place(&pending, None).await.unwrap();
    store
        .put_storage_place(&ready, Some(&ev("storage.make", "storage:beta")))
        .await
        .unwrap();
    assert_eq!(
        store.list_storage_places().await.unwrap(),
        vec![pending.clone(), ready.clone()]
    );
    let events = store.list_events(10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "storage.make");

    let made = StoragePlace {
        access_key_id: Some("AKIDALPHA".into()),
        secret_sealed: Some(vec![9; 64]),
        ready: true,
        error: None,
        attempts: 0,
        bytes: Some(0),
        ..pending.clone()
    };
    store.put_storage_place(&made, None).await.unwrap();
    assert_eq!(
        store.storage_place(pending.instance).await.unwrap(),
        Some(made)
    );
    assert_eq!(store.storage_place(InstanceId::new()).await.unwrap(), None);

    store
        .delete_storage_place(ready.instance, &ev("storage.remove", "storage:beta"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .delete_storage_place(ready.instance, &ev("storage.remove", "storage:beta"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.list_storage_places().await.unwrap().len(), 1);
}

pub async fn library_packages_are_kept_and_never_removed_while_a_world_uses_them_and_backups_hold_what_was_used(
    store: &dyn Store,
) {
    let at = Timestamp::from_second(1_800_000_000).unwrap();
    let package = |kind: PackageKind, id: &str, version: &str| LibraryPackage {
        kind,
        id: id.into(),
        version: version.into(),
        title: Some(format!("The {id}")),
        manifest_url: format!("https://example.test/{id}/{}", kind.file_name()),
        download_url: format!("https://example.test/{id}/{version}.zip"),
        sha256: "ab".repeat(32),
        bytes: 5_000_000_000,
        compatibility: Compatibility {
            minimum: Some("12".into()),
            verified: Some("13.351".into()),
            maximum: None,
        },
        requires: vec![Requirement {
            kind: PackageKind::System,
            id: "dnd5e".into(),
            manifest: None,
            compatibility: Compatibility::default(),
        }],
        added_by: "admin".into(),
        added_at: at,
    };
    let dnd = package(PackageKind::System, "dnd5e", "5.1.2");
    let dice = package(PackageKind::Module, "dice", "1.0");
    let dice2 = package(PackageKind::Module, "dice", "1.1");
    for p in [&dnd, &dice, &dice2] {
        store
            .add_library_package(p, &ev("package.add", &p.id))
            .await
            .unwrap();
    }
    assert!(matches!(
        store
            .add_library_package(&dice, &ev("package.add", "dice"))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store.list_library_packages().await.unwrap(),
        vec![dice.clone(), dice2.clone(), dnd.clone()]
    );

    let owner = add_user(store, "gm", Role::Gm).await;
    let world = add_instance(store, instance("keep", owner.id, None)).await;
    let uses = |p: &LibraryPackage| WorldPackage {
        instance: world.id,
        kind: p.kind,
        id: p.id.clone(),
        version: p.version.clone(),
    };
    store
        .set_world_packages(
            world.id,
            &[uses(&dnd), uses(&dice)],
            &ev("world.packages", "keep"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.list_world_packages(Some(world.id)).await.unwrap(),
        vec![uses(&dice), uses(&dnd)]
    );
    let gone = WorldPackage {
        id: "nowhere".into(),
        ..uses(&dice)
    };
    assert!(matches!(
        store
            .set_world_packages(world.id, &[uses(&dnd), gone], &ev("world.packages", "keep"))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store.list_world_packages(None).await.unwrap().len(),
        2,
        "a refused change changes nothing"
    );
    match store
        .delete_library_package(
            PackageKind::Module,
            "dice",
            "1.0",
            &ev("package.remove", "dice"),
        )
        .await
    {
        Err(StoreError::InUse { by, .. }) => assert!(by.contains("keep"), "{by}"),
        other => panic!("{other:?}"),
    }
    store
        .delete_library_package(
            PackageKind::Module,
            "dice",
            "1.1",
            &ev("package.remove", "dice"),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .delete_library_package(
                PackageKind::Module,
                "dice",
                "1.1",
                &ev("package.remove", "dice")
            )
            .await,
        Err(StoreError::NotFound { .. })
    ));
    // A backup holds what its world used, past the world and the library.
    let backup = backup_of(&world, BackupKind::Manual, at);
    store
        .create_backup(&backup, &ev("backup.create", "keep"))
        .await
        .unwrap();
    let held = |p: &LibraryPackage| BackupPackage {
        kind: p.kind,
        id: p.id.clone(),
        version: p.version.clone(),
        manifest_url: p.manifest_url.clone(),
        download_url: p.download_url.clone(),
        sha256: p.sha256.clone(),
    };
    store
        .set_backup_packages(backup.id, &[held(&dnd), held(&dice)])
        .await
        .unwrap();
    assert!(matches!(
        store
            .set_backup_packages(BackupId::new(), &[held(&dnd)])
            .await,
        Err(StoreError::NotFound { .. })
    ));
    store
        .delete_instance(&world.slug, &ev("instance.delete", "keep"))
        .await
        .unwrap();
    assert!(store.list_world_packages(None).await.unwrap().is_empty());
    store
        .delete_library_package(
            PackageKind::Module,
            "dice",
            "1.0",
            &ev("package.remove", "dice"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.list_library_packages().await.unwrap(),
        vec![dnd.clone()]
    );
    assert_eq!(
        store.list_backup_packages(backup.id).await.unwrap(),
        vec![held(&dice), held(&dnd)]
    );
    store
        .delete_backup(backup.id, &ev("backup.delete", "keep"))
        .await
        .unwrap();
    assert!(
        store
            .list_backup_packages(backup.id)
            .await
            .unwrap()
            .is_empty()
    );
}
