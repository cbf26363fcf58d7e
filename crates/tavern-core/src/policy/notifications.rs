//! Which audit events people are told about, in what words, and how long
//! to wait before trying a failed delivery again. Pure: an event in, a
//! notice out; an attempt count in, a delay out.

use std::time::Duration;

use tavern_store::{Event, Outcome};

/// What a notice is about, as its audit event names it (`instance:SLUG`,
/// `backup:ID`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// `world_started`, `world_stopped`, `world_slept`, `world_crashed`,
    /// `world_failed`, `session_reminder`, `session_cancelled`,
    /// `license_preempted`, `backup_failed`.
    pub kind: &'static str,
    pub target: String,
}

/// The notice an event makes, if people are told about it.
pub fn notice_for(e: &Event) -> Option<Notice> {
    let kind = match (e.action.as_str(), e.outcome) {
        ("instance.running", _) => "world_started",
        ("instance.stopped", _) => "world_stopped",
        ("instance.idle_sleep", _) => "world_slept",
        ("instance.crashed", _) => "world_crashed",
        ("instance.failed", _) => "world_failed",
        ("session.reminder", _) => "session_reminder",
        ("session.cancel", _) => "session_cancelled",
        ("license.preempt" | "session.preempt", _) => "license_preempted",
        ("backup.complete", Outcome::Failure) => "backup_failed",
        _ => return None,
    };
    Some(Notice {
        kind,
        target: e.target.clone(),
    })
}

/// The words of a notice about the world `world`, with its event's detail.
pub fn message(kind: &str, world: &str, detail: Option<&str>) -> String {
    let detail = detail.filter(|d| !d.is_empty());
    let with = |head: String| match detail {
        Some(d) => format!("{head}: {d}"),
        None => head,
    };
    match kind {
        "world_started" => format!("{world} is up and running."),
        "world_stopped" => format!("{world} has stopped."),
        "world_slept" => with(format!("{world} went to sleep")),
        "world_crashed" => with(format!("{world} crashed")),
        "world_failed" => with(format!("{world} failed and will not restart by itself")),
        "session_reminder" => with(format!("Reminder: a session of {world} begins soon")),
        "session_cancelled" => with(format!("A session of {world} was cancelled")),
        "license_preempted" => with(format!("{world} was stopped to free its license")),
        "backup_failed" => with(format!("A backup of {world} failed")),
        other => with(format!("{world}: {other}")),
    }
}

/// The wait before attempt `attempts + 1` after `attempts` failures:
/// doubling from `initial`, at most `max`.
pub fn backoff(attempts: u32, initial: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(30));
    initial.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tavern_store::NewEvent;
    use tavern_types::EventId;

    use super::*;

    fn event(action: &str, outcome: Outcome) -> Event {
        let e = NewEvent::success("system", action, "instance:keep");
        Event {
            id: EventId::new(),
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome,
            detail: None,
            at: e.at,
        }
    }

    #[test]
    fn the_events_people_hear_of() {
        for (action, outcome, kind) in [
            ("instance.running", Outcome::Success, Some("world_started")),
            ("instance.stopped", Outcome::Success, Some("world_stopped")),
            ("instance.idle_sleep", Outcome::Success, Some("world_slept")),
            ("instance.crashed", Outcome::Failure, Some("world_crashed")),
            ("instance.failed", Outcome::Failure, Some("world_failed")),
            (
                "session.reminder",
                Outcome::Success,
                Some("session_reminder"),
            ),
            (
                "session.cancel",
                Outcome::Success,
                Some("session_cancelled"),
            ),
            (
                "license.preempt",
                Outcome::Success,
                Some("license_preempted"),
            ),
            (
                "session.preempt",
                Outcome::Success,
                Some("license_preempted"),
            ),
            ("backup.complete", Outcome::Failure, Some("backup_failed")),
            ("backup.complete", Outcome::Success, None),
            ("instance.start", Outcome::Success, None),
            ("user.create", Outcome::Success, None),
        ] {
            let got = notice_for(&event(action, outcome));
            assert_eq!(got.as_ref().map(|n| n.kind), kind, "{action}");
            if let Some(n) = got {
                assert_eq!(n.target, "instance:keep");
            }
        }
    }

    #[test]
    fn messages_name_the_world_and_say_why() {
        assert_eq!(
            message("world_started", "keep", None),
            "keep is up and running."
        );
        assert_eq!(
            message("world_crashed", "keep", Some("exit status 1")),
            "keep crashed: exit status 1"
        );
        assert_eq!(
            message("backup_failed", "keep", Some("")),
            "A backup of keep failed"
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let (i, m) = (Duration::from_secs(5), Duration::from_secs(600));
        let waits: Vec<u64> = (1..=9).map(|a| backoff(a, i, m).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 320, 600, 600]);
    }

    proptest! {
        #[test]
        fn backoff_never_shrinks_and_never_passes_its_cap(a in 0u32..100, i in 1u64..100, m in 1u64..10_000) {
            let (i, m) = (Duration::from_millis(i), Duration::from_millis(m));
            prop_assert!(backoff(a, i, m) <= m);
            prop_assert!(backoff(a, i, m) <= backoff(a + 1, i, m));
        }
    }
}
