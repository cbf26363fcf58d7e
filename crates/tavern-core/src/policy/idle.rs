//! When a running world with nobody in it goes to sleep: after its idle
//! timeout without players or open tabs (its own timeout, else the
//! server's default), with a warning a few minutes before; never inside its
//! session window.

use jiff::{SignedDuration, Timestamp};
use tavern_store::{Instance, Session};
use tavern_types::{DesiredState, ObservedState};

use crate::policy::licenses::open_session;

/// How long before the stop the warning comes.
pub const WARNING: SignedDuration = SignedDuration::from_mins(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idle {
    /// In use, starting, in its session window, or not idle long enough.
    Awake,
    /// Idle since `since`; it will be stopped at `stop_at`.
    Warn {
        since: Timestamp,
        stop_at: Timestamp,
    },
    /// Idle since `since` for its whole timeout: stop it.
    Sleep { since: Timestamp },
}

/// What to do about `instance` now.
pub fn idle(
    instance: &Instance,
    sessions: &[Session],
    default_timeout: SignedDuration,
    now: Timestamp,
) -> Idle {
    let running =
        instance.desired_state == DesiredState::Running && instance.state == ObservedState::Running;
    let in_use = instance.players > 0 || instance.sockets > 0;
    if !running || in_use || open_session(instance.id, sessions, now).is_some() {
        return Idle::Awake;
    }
    let timeout = instance
        .idle_timeout_minutes
        .map_or(default_timeout, |m| SignedDuration::from_mins(i64::from(m)));
    let since = instance.last_activity_at.unwrap_or(instance.updated_at);
    let stop_at = since + timeout;
    if now >= stop_at {
        Idle::Sleep { since }
    } else if now >= stop_at - WARNING {
        Idle::Warn { since, stop_at }
    } else {
        Idle::Awake
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tavern_store::now;
    use tavern_types::{InstanceId, LicenseId, SessionId, UserId};

    use super::*;

    fn world(players: u32, idle_for: i64, timeout: Option<u32>) -> Instance {
        let t = now();
        Instance {
            id: InstanceId::new(),
            slug: "w".parse().unwrap(),
            owner: UserId::new(),
            release: None,
            runtime: tavern_types::RuntimeKind::Process,
            license: None,
            desired_state: DesiredState::Running,
            state: ObservedState::Running,
            idle_timeout_minutes: timeout,
            created_at: t,
            updated_at: t,
            state_reason: None,
            players,
            sockets: 0,
            wake_on_visit: None,
            world: None,
            foundry_version: None,
            admin_key_sealed: None,
            awaits: None,
            last_activity_at: Some(t - SignedDuration::from_mins(idle_for)),
        }
    }

    fn session_now(i: &Instance) -> Session {
        let t = now();
        Session {
            id: SessionId::new(),
            instance: i.id,
            license: LicenseId::new(),
            starts_at: t,
            ends_at: t + SignedDuration::from_hours(1),
            window_start: t - SignedDuration::from_mins(10),
            window_end: t + SignedDuration::from_hours(2),
            created_by: "t".into(),
            created_at: t,
            prepared_at: Some(t),
            reminded_at: None,
        }
    }

    const THIRTY: SignedDuration = SignedDuration::from_mins(30);

    #[test]
    fn sleeps_after_the_timeout_with_a_warning_before() {
        let t = now();
        assert_eq!(idle(&world(0, 10, None), &[], THIRTY, t), Idle::Awake);
        assert!(matches!(
            idle(&world(0, 26, None), &[], THIRTY, t),
            Idle::Warn { .. }
        ));
        assert!(matches!(
            idle(&world(0, 31, None), &[], THIRTY, t),
            Idle::Sleep { .. }
        ));
        // Its own timeout wins over the default.
        assert!(matches!(
            idle(&world(0, 11, Some(10)), &[], THIRTY, t),
            Idle::Sleep { .. }
        ));
        assert_eq!(idle(&world(0, 31, Some(60)), &[], THIRTY, t), Idle::Awake);
        // Players keep it awake, and so do open tabs and its session window.
        assert_eq!(idle(&world(1, 300, None), &[], THIRTY, t), Idle::Awake);
        let mut tab = world(0, 300, None);
        tab.sockets = 1;
        assert_eq!(idle(&tab, &[], THIRTY, t), Idle::Awake);
        let w = world(0, 300, None);
        assert_eq!(idle(&w, &[session_now(&w)], THIRTY, t), Idle::Awake);
        // Only running worlds that should run go to sleep.
        let mut stopping = world(0, 300, None);
        stopping.desired_state = DesiredState::Stopped;
        assert_eq!(idle(&stopping, &[], THIRTY, t), Idle::Awake);
    }

    proptest! {
        /// A world inside its session window or with players is never put
        /// to sleep; one asleep has been idle for at least its timeout.
        #[test]
        fn never_asleep_in_a_session_or_with_players(
            players in 0u32..3, idle_for in 0i64..600, timeout in proptest::option::of(1u32..120), in_session in any::<bool>(),
        ) {
            let w = world(players, idle_for, timeout);
            let sessions = if in_session { vec![session_now(&w)] } else { vec![] };
            let t = now();
            if let Idle::Sleep { since } = idle(&w, &sessions, THIRTY, t) {
                prop_assert!(players == 0 && !in_session);
                let limit = timeout.map_or(THIRTY, |m| SignedDuration::from_mins(i64::from(m)));
                prop_assert!(since + limit <= t);
            }
        }
    }
}
