//! Scheduled sessions: a game master books a time for a world; the session
//! reserves one concrete key for its window (start less the lead time, to
//! the end plus the grace time), chosen by the reservation planner and
//! written in one store transaction that re-checks the rule. The scheduler
//! step here starts the world when its window opens, stopping (with an
//! event) whatever world holds its key.

use jiff::{SignedDuration, Timestamp};
use tavern_store::{NewEvent, Session, StoreError, now};
use tavern_types::{DesiredState, SessionId, Slug};

use crate::auth::Caller;
use crate::error::CoreError;
use crate::licenses::Snapshot;
use crate::policy::licenses::{eligible, session_keys};
use crate::policy::reservations::{self, Booking, Request, Window};
use crate::tavern::Tavern;
use crate::words::{being_destroyed, minutes};

/// The shortest and longest session one may book.
const MIN_MINUTES: u32 = 15;
const MAX_MINUTES: u32 = 24 * 60;
/// How far ahead one may book.
const MAX_AHEAD_DAYS: i64 = 366;

pub struct NewSession {
    pub instance: String,
    /// RFC 3339 with an offset.
    pub start: String,
    pub duration_minutes: u32,
}

/// A session as people see it.
#[derive(Clone, Debug)]
pub struct SessionView {
    pub session: Session,
    pub instance: Slug,
    pub license_label: String,
}

fn view(snap: &Snapshot, session: Session) -> Option<SessionView> {
    let instance = snap.instances.iter().find(|i| i.id == session.instance)?;
    Some(SessionView {
        instance: instance.slug.clone(),
        license_label: snap.label(session.license),
        session,
    })
}

fn parse_start(start: &str, now: Timestamp) -> Result<Timestamp, CoreError> {
    let t: Timestamp = start.trim().parse().map_err(|_| {
        CoreError::invalid(
            "invalid_field",
            "start",
            format!("{start:?} is not a time; write it as RFC 3339 with an offset, like 2026-11-28T19:00:00Z or 2026-11-28T20:00:00+01:00"),
        )
    })?;
    if t <= now {
        return Err(CoreError::invalid(
            "invalid_field",
            "start",
            format!("{} is in the past", minutes(t)),
        ));
    }
    if t > now + SignedDuration::from_hours(24 * MAX_AHEAD_DAYS) {
        return Err(CoreError::invalid(
            "invalid_field",
            "start",
            format!("sessions can be booked at most {MAX_AHEAD_DAYS} days ahead"),
        ));
    }
    Ok(t)
}

impl Tavern {
    /// Books a session for a world and reserves a key for its window.
    pub async fn schedule_session(
        &self,
        caller: &Caller,
        new: NewSession,
    ) -> Result<SessionView, CoreError> {
        let i = self.visible_instance(caller, &new.instance).await?;
        if i.desired_state == DesiredState::Destroyed {
            return Err(being_destroyed(&i));
        }
        let start = parse_start(&new.start, now())?;
        if !(MIN_MINUTES..=MAX_MINUTES).contains(&new.duration_minutes) {
            return Err(CoreError::invalid(
                "invalid_field",
                "duration_minutes",
                format!("duration_minutes must be between {MIN_MINUTES} and {MAX_MINUTES}"),
            ));
        }
        self.check_startable(&i)?;
        let economy = &self.settings.economy;
        let end = start + SignedDuration::from_mins(i64::from(new.duration_minutes));
        let window = Window {
            start: start - economy.session_lead,
            end: end + economy.session_grace,
        };
        for _attempt in 0..5 {
            let snap = self.snapshot().await?;
            if let Some(other) = snap
                .sessions
                .iter()
                .find(|s| s.instance == i.id && s.starts_at < end && start < s.ends_at)
            {
                return Err(CoreError::Conflict {
                    code: "session_overlaps",
                    message: format!(
                        "{} has a session from {} to {} already",
                        i.slug,
                        minutes(other.starts_at),
                        minutes(other.ends_at)
                    ),
                });
            }
            self.check_session_quota(&i, &window, &snap).await?;
            let keys = session_keys(&i, &snap.facts(), window.start);
            let request = Request {
                window,
                eligible: keys,
            };
            if request.eligible.is_empty() {
                return Err(CoreError::Conflict {
                    code: "no_license_for_window",
                    message: format!("there is no license key {} may use", i.slug),
                });
            }
            let bookings: Vec<Booking> = snap
                .sessions
                .iter()
                .filter_map(|s| {
                    let owner = snap.instances.iter().find(|o| o.id == s.instance)?;
                    Some(Booking {
                        session: s.id,
                        instance: s.instance,
                        license: s.license,
                        window: Window {
                            start: s.window_start,
                            end: s.window_end,
                        },
                        eligible: eligible(owner, &snap.licenses),
                        fixed: s.prepared_at.is_some() || s.window_start <= snap.now,
                    })
                })
                .collect();
            let plan = match reservations::plan(&request, &bookings) {
                Ok(plan) => plan,
                Err(no_fit) => {
                    return Err(self.no_fit_error(caller, &snap, &window, &no_fit.conflicts));
                }
            };
            let session = Session {
                id: SessionId::new(),
                instance: i.id,
                license: plan.license,
                starts_at: start,
                ends_at: end,
                window_start: window.start,
                window_end: window.end,
                created_by: caller.name(),
                created_at: snap.now,
                prepared_at: None,
                reminded_at: None,
            };
            let mut detail = format!(
                "from {} for {} minutes, license {}",
                minutes(start),
                new.duration_minutes,
                snap.label(plan.license)
            );
            if !plan.moves.is_empty() {
                detail.push_str(&format!(
                    "; {} later sessions moved to other keys",
                    plan.moves.len()
                ));
            }
            let event = NewEvent::success(
                caller.name(),
                "session.schedule",
                format!("instance:{}", i.slug),
            )
            .with_detail(detail);
            match self
                .store
                .create_session(&session, &plan.moves, &event)
                .await
            {
                Ok(()) => {
                    self.schedule_wake.notify_one();
                    return Ok(SessionView {
                        instance: i.slug.clone(),
                        license_label: snap.label(plan.license),
                        session,
                    });
                }
                // Someone booked meanwhile: plan again on fresh facts.
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Conflict {
            code: "no_license_for_window",
            message: "sessions were being booked at the same moment; try again".into(),
        })
    }

    /// The windows that stand in the way, named only as far as the caller
    /// may see them.
    fn no_fit_error(
        &self,
        caller: &Caller,
        snap: &Snapshot,
        window: &Window,
        conflicts: &[SessionId],
    ) -> CoreError {
        let named: Vec<String> = snap
            .sessions
            .iter()
            .filter(|s| conflicts.contains(&s.id))
            .map(|s| {
                let whose = crate::words::world_name_for(
                    snap.instances.iter().find(|i| i.id == s.instance),
                    caller.user.id,
                    caller.is_admin(),
                );
                format!(
                    "{} holds {} from {} to {}",
                    whose,
                    snap.label(s.license),
                    minutes(s.window_start),
                    minutes(s.window_end)
                )
            })
            .collect();
        CoreError::Conflict {
            code: "no_license_for_window",
            message: format!(
                "no license key this world may use is free from {} to {} (the session with its lead and grace time): {}",
                minutes(window.start),
                minutes(window.end),
                named.join("; ")
            ),
        }
    }

    /// A tier's `max_running` also bounds sessions at the same time.
    async fn check_session_quota(
        &self,
        i: &tavern_store::Instance,
        window: &Window,
        snap: &Snapshot,
    ) -> Result<(), CoreError> {
        let Some(owner) = self.store.user(i.owner).await? else {
            return Ok(());
        };
        let Some((name, tier)) = self.tier_of(&owner).await? else {
            return Ok(());
        };
        let Some(max) = tier.max_running else {
            return Ok(());
        };
        let mut worlds: Vec<_> = snap
            .sessions
            .iter()
            .filter(|s| {
                s.instance != i.id && s.window_start < window.end && window.start < s.window_end
            })
            .filter(|s| {
                snap.instances
                    .iter()
                    .any(|o| o.id == s.instance && o.owner == owner.id)
            })
            .map(|s| s.instance)
            .collect();
        worlds.sort();
        worlds.dedup();
        if worlds.len() >= max as usize {
            return Err(CoreError::Quota(format!(
                "{} of your other worlds have sessions then and you may run {max} at once (limit max_running of tier {name})",
                worlds.len()
            )));
        }
        Ok(())
    }

    /// Upcoming and current sessions: all for admins, a game master's own.
    pub async fn list_sessions(&self, caller: &Caller) -> Result<Vec<SessionView>, CoreError> {
        let snap = self.snapshot().await?;
        let visible: Vec<_> = snap
            .instances
            .iter()
            .filter(|i| caller.is_admin() || i.owner == caller.user.id)
            .map(|i| i.id)
            .collect();
        Ok(snap
            .sessions
            .iter()
            .filter(|s| visible.contains(&s.instance))
            .filter_map(|s| view(&snap, s.clone()))
            .collect())
    }

    /// Cancels a session and frees its window. A world already started
    /// for it keeps running.
    pub async fn cancel_session(&self, caller: &Caller, id: &str) -> Result<(), CoreError> {
        let not_found = || CoreError::NotFound {
            what: "session",
            key: id.to_owned(),
        };
        let sid: SessionId = id.trim().parse().map_err(|_| not_found())?;
        let session = self.store.session(sid).await?.ok_or_else(not_found)?;
        let instance = self
            .store
            .list_instances((!caller.is_admin()).then_some(caller.user.id))
            .await?
            .into_iter()
            .find(|i| i.id == session.instance)
            .ok_or_else(not_found)?;
        self.store
            .delete_session(
                sid,
                &NewEvent::success(
                    caller.name(),
                    "session.cancel",
                    format!("instance:{}", instance.slug),
                )
                .with_detail(format!("the session from {}", minutes(session.starts_at))),
            )
            .await?;
        self.schedule_wake.notify_one();
        Ok(())
    }

    /// The scheduler's step: starts the world of every session whose window
    /// has opened, once. If another world holds the session's key, that
    /// world is warned (an event) and stopped first; the session's world
    /// takes the key as soon as the old server is confirmed gone. Answers
    /// the worlds started.
    pub async fn prepare_due_sessions(&self) -> Result<Vec<Slug>, CoreError> {
        let snap = self.snapshot().await?;
        let mut started = Vec::new();
        let due = snap.sessions.iter().filter(|s| {
            s.prepared_at.is_none() && s.window_start <= snap.now && snap.now < s.window_end
        });
        for s in due {
            let Some(i) = snap.instances.iter().find(|i| i.id == s.instance) else {
                continue;
            };
            if i.desired_state == DesiredState::Destroyed {
                continue;
            }
            let label = snap.label(s.license);
            let holds_a_key = snap.licenses.iter().any(|l| l.bound_to == Some(i.id));
            let holder = snap
                .licenses
                .iter()
                .find(|l| l.id == s.license)
                .and_then(|l| l.bound_to)
                .filter(|h| *h != i.id && !holds_a_key)
                .and_then(|h| snap.instances.iter().find(|o| o.id == h));
            if let Some(h) = holder
                && h.desired_state == DesiredState::Running
            {
                self.store
                    .set_desired_state(
                        &h.slug,
                        DesiredState::Stopped,
                        Some("stopped: its key is reserved for another world's session"),
                        &NewEvent::success(
                            "system",
                            "session.preempt",
                            format!("instance:{}", h.slug),
                        )
                        .with_detail(format!(
                            "stopped: its license {label} is reserved for the session of {} from {}",
                            i.slug,
                            minutes(s.starts_at)
                        )),
                    )
                    .await?;
            }
            let event =
                NewEvent::success("system", "session.start", format!("instance:{}", i.slug))
                    .with_detail(format!(
                        "the session from {} begins; license {label}",
                        minutes(s.starts_at)
                    ));
            match self
                .store
                .promise_license(i.id, s.license, Some(s.id), &event)
                .await
            {
                Ok(()) => started.push(i.slug.clone()),
                // Cancelled or destroyed meanwhile.
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !started.is_empty() {
            self.wake_reconciler();
        }
        Ok(started)
    }
}
