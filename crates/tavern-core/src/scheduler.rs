//! The scheduler: time-driven work. It prepares sessions whose window has
//! opened ([`Tavern::prepare_due_sessions`]), reminds owners of sessions
//! about to begin ([`Tavern::remind_sessions`]) and puts idle worlds to sleep
//! (with a warning event first); it runs on a period and whenever sessions
//! change. Scheduled backups keep their own cron loop
//! ([`crate::backups::run_schedule`]).

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use tavern_store::{NewEvent, now};
use tavern_types::{DesiredState, InstanceId, Slug};
use tokio_util::sync::CancellationToken;

use crate::error::CoreError;
use crate::policy::idle::{Idle, idle};
use crate::tavern::Tavern;
use crate::words::minutes;

/// Runs the scheduler until `cancel`.
pub async fn run(tavern: Tavern, period: Duration, cancel: CancellationToken) {
    let wake = tavern.schedule_wake.clone();
    let mut warned = HashMap::new();
    loop {
        match tavern.prepare_due_sessions().await {
            Ok(started) if !started.is_empty() => {
                tracing::info!(worlds = ?started, "sessions begin: worlds started");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "preparing sessions failed; will retry"),
        }
        match tavern.remind_sessions().await {
            Ok(n) if n > 0 => tracing::info!(sessions = n, "owners reminded of sessions"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "session reminders failed; will retry"),
        }
        match put_idle_worlds_to_sleep(&tavern, &mut warned).await {
            Ok(slept) if !slept.is_empty() => {
                tracing::info!(worlds = ?slept, "idle worlds put to sleep");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "idle sleep failed; will retry"),
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = wake.notified() => {}
            () = tokio::time::sleep(period) => {}
        }
    }
}

/// Warns about worlds that will sleep soon (once per idle spell, kept in
/// `warned`) and stops those idle for their whole timeout; answers those
/// stopped.
pub async fn put_idle_worlds_to_sleep(
    tavern: &Tavern,
    warned: &mut HashMap<InstanceId, Timestamp>,
) -> Result<Vec<Slug>, CoreError> {
    let store = tavern.store();
    let now = now();
    let instances = store.list_instances(None).await?;
    let sessions = store.list_sessions(now).await?;
    let timeout = tavern.settings().idle_timeout;
    let mut slept = Vec::new();
    warned.retain(|id, _| instances.iter().any(|i| i.id == *id));
    for i in &instances {
        let target = format!("instance:{}", i.slug);
        match idle(i, &sessions, timeout, now) {
            Idle::Awake => {
                warned.remove(&i.id);
            }
            Idle::Warn { since, stop_at } => {
                if warned.get(&i.id) != Some(&since) {
                    warned.insert(i.id, since);
                    store
                        .append_event(
                            &NewEvent::success("system", "instance.idle_warning", target)
                                .with_detail(format!(
                                    "no players since {}; it goes to sleep at {} unless someone joins",
                                    minutes(since),
                                    minutes(stop_at)
                                )),
                        )
                        .await?;
                }
            }
            Idle::Sleep { since } => {
                let idle_for = now.duration_since(since).as_secs() / 60;
                store
                    .set_desired_state(
                        &i.slug,
                        DesiredState::Stopped,
                        Some(&format!("asleep after {idle_for} minutes without players")),
                        &NewEvent::success("system", "instance.idle_sleep", target).with_detail(
                            format!("asleep after {idle_for} minutes without players"),
                        ),
                    )
                    .await?;
                warned.remove(&i.id);
                slept.push(i.slug.clone());
            }
        }
    }
    if !slept.is_empty() {
        tavern.wake.notify_one();
    }
    Ok(slept)
}
