//! The reconciler: level-triggered. An activation takes no input: it reads
//! every instance's desired state from the store and everything the runtime
//! runs (`observe_all`), and acts on the difference: start what should run,
//! stop what should not (in the background: a stop takes up to the grace
//! period while Foundry flushes), restart crashed servers with exponential
//! backoff until too many crashes in a window mark them `failed`, stop
//! servers that belong to no instance, and destroy what was asked to be.
//! Failures are retried by the next activation, never by loops inside.
//! Activated by [`Tavern`]'s wake signal and a periodic resync; tests call
//! [`Reconciler::activate`] directly or wait on the state through the API.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tavern_runtime::{Disposal, FoundryStatus, Observed};
use tavern_store::{Instance, NewEvent, Observation, Outcome, now};
use tavern_types::{DesiredState, InstanceId, ObservedState, Slug};
use tokio_util::sync::CancellationToken;

use crate::error::CoreError;
use crate::readiness;
use crate::routes::{Route, RouteTable};
use crate::tavern::Tavern;

/// What went wrong while following one world: reported with the pass and
/// tried again on the next.
#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error(transparent)]
    Store(#[from] tavern_store::StoreError),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("start: {0}")]
    Start(tavern_runtime::RuntimeError),
}

/// Timings and limits of supervision.
#[derive(Clone, Debug)]
pub struct ReconcilerSettings {
    /// Between SIGTERM and SIGKILL (Foundry flushes its world meanwhile).
    pub stop_grace: Duration,
    /// How long a start may take to answer `/api/status`.
    pub start_timeout: Duration,
    /// This many crashes within `crash_window` mark a world `failed`.
    pub crash_limit: u32,
    pub crash_window: Duration,
    /// The first restart waits this long; each further one twice as long.
    pub restart_backoff: Duration,
    /// Activation period when nothing is in flux.
    pub resync: Duration,
}

impl Default for ReconcilerSettings {
    fn default() -> Self {
        Self {
            stop_grace: Duration::from_secs(30),
            start_timeout: Duration::from_secs(120),
            crash_limit: 5,
            crash_window: Duration::from_secs(10 * 60),
            restart_backoff: Duration::from_secs(1),
            resync: Duration::from_secs(5),
        }
    }
}

/// What an activation did, for operators and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActivationStatus {
    pub started: Vec<Slug>,
    pub stopping: Vec<Slug>,
    pub orphans_stopped: Vec<Slug>,
    pub errors: Vec<String>,
    /// Something is starting or stopping: activate again soon.
    pub busy: bool,
    /// The earliest moment a world waits for to be tried again (after a
    /// crash, or a start that failed for want of a resource).
    pub retry_at: Option<Instant>,
}

impl ActivationStatus {
    fn retry_at(&mut self, at: Instant) {
        self.retry_at = Some(self.retry_at.map_or(at, |r| r.min(at)));
    }
}

/// What the reconciler remembers of a world between activations.
#[derive(Default)]
struct Tracking {
    started_at: Option<Instant>,
    crashes: Vec<Instant>,
    retry_at: Option<Instant>,
    /// Starts that failed in a row for want of something (a free port,
    /// file descriptors, the container engine), and when to try again.
    start_failures: u32,
    start_retry_at: Option<Instant>,
    /// Ends the watch on the last start's `/api/status` ([`readiness`]).
    watch: Option<CancellationToken>,
}

impl Tracking {
    fn end_watch(&mut self) {
        if let Some(w) = self.watch.take() {
            w.cancel();
        }
    }
}

pub struct Reconciler {
    tavern: Tavern,
    settings: ReconcilerSettings,
    tracking: Mutex<HashMap<InstanceId, Tracking>>,
    /// Worlds with a stop or removal running in the background.
    in_flight: Arc<Mutex<HashSet<Slug>>>,
}

fn event(slug: &Slug, action: &str, outcome: Outcome, detail: impl Into<String>) -> NewEvent {
    let mut e = NewEvent::success("system", action, format!("instance:{slug}")).with_detail(detail);
    e.outcome = outcome;
    e
}

fn observation(
    state: ObservedState,
    reason: Option<String>,
    status: Option<&FoundryStatus>,
    prev: &Instance,
) -> Observation {
    Observation {
        state,
        state_reason: reason,
        players: status.map_or(0, |s| s.users),
        // Filled in from the proxy's counts where the server answers.
        sockets: 0,
        world: status.map_or_else(|| prev.world.clone(), |s| s.world.clone()),
        foundry_version: status.map_or_else(|| prev.foundry_version.clone(), |s| s.version.clone()),
        at: now(),
    }
}

/// True when writing `o` would change what is stored.
fn changes(i: &Instance, o: &Observation) -> bool {
    i.state != o.state
        || i.state_reason != o.state_reason
        || i.players != o.players
        || i.sockets != o.sockets
        || i.world != o.world
        || i.foundry_version != o.foundry_version
}

impl Reconciler {
    pub fn new(tavern: Tavern, settings: ReconcilerSettings) -> Arc<Self> {
        Arc::new(Self {
            tavern,
            settings,
            tracking: Mutex::default(),
            in_flight: Arc::default(),
        })
    }

    /// Runs activations until `cancel`: on every wake, and periodically.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let wake = self.tavern.wake_handle();
        loop {
            let status = self.activate().await;
            for e in &status.errors {
                tracing::warn!(error = %e, "reconciler");
            }
            if !(status.started.is_empty()
                && status.stopping.is_empty()
                && status.orphans_stopped.is_empty())
            {
                tracing::info!(
                    started = ?status.started,
                    stopping = ?status.stopping,
                    orphans = ?status.orphans_stopped,
                    "reconciler acted"
                );
            }
            let mut pause = if status.busy {
                readiness::LONGEST
            } else {
                self.settings.resync
            };
            if let Some(at) = status.retry_at {
                pause = pause.min(at.saturating_duration_since(Instant::now()));
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
        for t in self
            .tracking
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values_mut()
        {
            t.end_watch();
        }
    }

    /// While another replica leads: where each world answers, for this
    /// replica's proxy, from the store and the runtime, without acting on
    /// anything.
    pub async fn follow(self: Arc<Self>, cancel: CancellationToken) {
        let wake = self.tavern.wake_handle();
        loop {
            match self.tavern.runtime().observe_all().await {
                Ok(observed) => {
                    if let Err(e) = self.publish_routes(&observed).await {
                        tracing::warn!(error = %e, "following: publish routes");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "following: observe servers"),
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(self.settings.resync) => {}
            }
        }
    }

    /// The path prefix a world's server answers under (path routing).
    fn route_prefix(&self, i: &Instance) -> Option<String> {
        self.tavern
            .settings()
            .path_routing
            .then(|| i.slug.to_string())
    }

    fn in_flight(&self, slug: &Slug) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(slug)
    }

    /// One pass over every instance and every server.
    pub async fn activate(&self) -> ActivationStatus {
        let mut status = ActivationStatus::default();
        let store = self.tavern.store().clone();
        let instances = match store.list_instances(None).await {
            Ok(i) => i,
            Err(e) => {
                status.errors.push(format!("list worlds: {e}"));
                return status;
            }
        };
        let observed = match self.tavern.runtime().observe_all().await {
            Ok(o) => o,
            Err(e) => {
                status.errors.push(format!("observe servers: {e}"));
                return status;
            }
        };
        let by_slug: HashMap<&Slug, &Observed> = observed.iter().map(|o| (&o.slug, o)).collect();

        // Servers that belong to no instance (or to an older one of the
        // same name) are stopped.
        for o in &observed {
            let known = instances.iter().any(|i| i.slug == o.slug && i.id == o.id);
            if !known && !self.in_flight(&o.slug) {
                status.orphans_stopped.push(o.slug.clone());
                // A directory whose name a current instance uses stays; any
                // other orphan's is archived.
                let name_in_use = instances.iter().any(|i| i.slug == o.slug);
                self.background_stop(o.slug.clone(), None, !name_in_use);
            }
        }

        for i in &instances {
            let seen = by_slug.get(&i.slug).copied().filter(|o| o.id == i.id);
            if let Err(e) = self.reconcile_one(i, seen, &mut status).await {
                status.errors.push(format!("{}: {e}", i.slug));
            }
        }
        status.busy |= !self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        match self.publish_routes(&observed).await {
            // The followers' proxies follow at once.
            Ok(true) => self.tavern.announce(),
            Ok(false) => {}
            Err(e) => status.errors.push(format!("publish routes: {e}")),
        }
        status
    }

    /// Publishes where each world answers, as things stand after this
    /// activation: a world's server is reachable once it is running.
    /// Answers whether anything changed.
    async fn publish_routes(&self, observed: &[Observed]) -> Result<bool, ReconcileError> {
        let store = self.tavern.store();
        let instances = store.list_instances(None).await?;
        let sessions = store.list_sessions(now()).await?;
        let routes = instances
            .into_iter()
            .map(|i| {
                let upstream = observed
                    .iter()
                    .find(|o| o.id == i.id && o.alive)
                    .filter(|_| i.state == ObservedState::Running)
                    .map(|o| o.addr);
                let route = Route {
                    slug: i.slug.clone(),
                    upstream,
                    state: i.state,
                    since: i.updated_at,
                    desired: i.desired_state,
                    reason: i.state_reason,
                    next_session: sessions
                        .iter()
                        .filter(|s| s.instance == i.id)
                        .map(|s| s.starts_at)
                        .min(),
                    wake_on_visit: i.wake_on_visit,
                };
                (i.slug, route)
            })
            .collect();
        let table = RouteTable { routes };
        Ok(self.tavern.routes.send_if_modified(|current| {
            let changed = **current != table;
            if changed {
                *current = Arc::new(table);
            }
            changed
        }))
    }

    async fn record(
        &self,
        i: &Instance,
        o: Observation,
        event: Option<NewEvent>,
    ) -> Result<(), ReconcileError> {
        if changes(i, &o) || event.is_some() {
            self.tavern
                .store()
                .record_observation(i.id, &o, event.as_ref())
                .await?;
        }
        Ok(())
    }

    async fn fail(&self, i: &Instance, reason: String) -> Result<(), ReconcileError> {
        // A failed start is asked no more.
        if let Some(t) = self
            .tracking
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&i.id)
        {
            t.end_watch();
        }
        let o = observation(ObservedState::Failed, Some(reason.clone()), None, i);
        let e = event(&i.slug, "instance.failed", Outcome::Failure, reason);
        self.record(i, o, Some(e)).await
    }

    async fn reconcile_one(
        &self,
        i: &Instance,
        seen: Option<&Observed>,
        status: &mut ActivationStatus,
    ) -> Result<(), ReconcileError> {
        if self.in_flight(&i.slug) {
            status.busy = true;
            return Ok(());
        }
        let alive = seen.is_some_and(|o| o.alive);
        // A server kept stopped on purpose is no leftover and no crash.
        let seen = seen.filter(|o| !o.kept);
        match i.desired_state {
            DesiredState::Destroyed => {
                status.busy = true;
                self.background_stop(i.slug.clone(), Some(i.clone()), true);
                Ok(())
            }
            DesiredState::Stopped if alive => {
                status.stopping.push(i.slug.clone());
                status.busy = true;
                // Why it stops (set with the wish) stays with it.
                let why = i.state_reason.clone();
                self.record(i, observation(ObservedState::Stopping, why, None, i), None)
                    .await?;
                self.background_stop(i.slug.clone(), Some(i.clone()), false);
                Ok(())
            }
            DesiredState::Stopped => {
                if seen.is_some() {
                    // A dead server's leftovers (pid file).
                    self.background_stop(i.slug.clone(), None, false);
                }
                if let Some(mut t) = self
                    .tracking
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&i.id)
                {
                    t.end_watch();
                }
                // Stopped as asked, and confirmed gone: its key is free now.
                // (A leftover pid file is cleared first, in the background.)
                if seen.is_none() {
                    self.tavern.release_license(i).await?;
                }
                let o = observation(ObservedState::Stopped, i.state_reason.clone(), None, i);
                let news = (!matches!(i.state, ObservedState::Stopped | ObservedState::Failed))
                    .then(|| {
                        event(
                            &i.slug,
                            "instance.stopped",
                            Outcome::Success,
                            "the server is stopped",
                        )
                    });
                self.record(i, o, news).await
            }
            DesiredState::Running if alive => self.check_running(i, seen, status).await,
            DesiredState::Running => self.start_or_restart(i, seen, status).await,
        }
    }

    async fn check_running(
        &self,
        i: &Instance,
        seen: Option<&Observed>,
        status: &mut ActivationStatus,
    ) -> Result<(), ReconcileError> {
        let Some(o) = seen else { return Ok(()) };
        let prefix = self.route_prefix(i);
        let answer = self.tavern.runtime().status(o, prefix.as_deref()).await;
        if let Some(s) = answer {
            let news = (i.state != ObservedState::Running).then(|| {
                event(
                    &i.slug,
                    "instance.running",
                    Outcome::Success,
                    "the server answers /api/status",
                )
            });
            let mut o = observation(ObservedState::Running, None, Some(&s), i);
            o.sockets = self.tavern.activity.sockets(&i.slug);
            return self.record(i, o, news).await;
        }
        if i.state == ObservedState::Running {
            // A hiccup: the process lives; keep the state, try again later.
            return Ok(());
        }
        if i.state == ObservedState::Failed {
            // Failed while still alive (start timeout): make sure it stops.
            self.background_stop(i.slug.clone(), None, false);
            return Ok(());
        }
        status.busy = true;
        let started = {
            let mut t = self.tracking.lock().unwrap_or_else(|e| e.into_inner());
            *t.entry(i.id)
                .or_default()
                .started_at
                .get_or_insert_with(Instant::now)
        };
        if started.elapsed() > self.settings.start_timeout {
            let reason = format!(
                "the server did not answer /api/status within {} s",
                self.settings.start_timeout.as_secs()
            );
            self.fail(i, reason).await?;
            self.background_stop(i.slug.clone(), None, false);
            return Ok(());
        }
        if i.state != ObservedState::Starting {
            self.record(i, observation(ObservedState::Starting, None, None, i), None)
                .await?;
        }
        Ok(())
    }

    async fn start_or_restart(
        &self,
        i: &Instance,
        seen: Option<&Observed>,
        status: &mut ActivationStatus,
    ) -> Result<(), ReconcileError> {
        if i.state == ObservedState::Failed {
            // Failed and confirmed gone: the key is free for others.
            if seen.is_none() {
                self.tavern.release_license(i).await?;
            } else {
                self.background_stop(i.slug.clone(), None, false);
            }
            return Ok(());
        }
        let crashed =
            matches!(i.state, ObservedState::Running | ObservedState::Starting) && seen.is_some();
        let now_i = Instant::now();
        let mut restart_reason = None;
        if crashed {
            let how = seen
                .and_then(|o| o.exit.clone())
                .unwrap_or_else(|| "exited".into());
            restart_reason = Some(format!("restarted after a crash ({how})"));
            let (count, retry_at, new_crash) = {
                let mut t = self.tracking.lock().unwrap_or_else(|e| e.into_inner());
                let t = t.entry(i.id).or_default();
                let new_crash = t.retry_at.is_none();
                if new_crash {
                    t.crashes
                        .retain(|c| now_i.duration_since(*c) < self.settings.crash_window);
                    t.crashes.push(now_i);
                    let n = u32::try_from(t.crashes.len()).unwrap_or(u32::MAX);
                    let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
                    let wait = self
                        .settings
                        .restart_backoff
                        .saturating_mul(factor)
                        .min(Duration::from_secs(300));
                    t.retry_at = Some(now_i + wait);
                }
                let n = u32::try_from(t.crashes.len()).unwrap_or(u32::MAX);
                (n, t.retry_at, new_crash)
            };
            if count >= self.settings.crash_limit {
                let reason = format!(
                    "crashed {count} times within {} minutes (last: {how})",
                    self.settings.crash_window.as_secs() / 60
                );
                self.background_stop(i.slug.clone(), None, false);
                return self.fail(i, reason).await;
            }
            if new_crash {
                let reason = format!("restarting after a crash ({how})");
                let o = observation(ObservedState::Starting, Some(reason), None, i);
                let e = event(&i.slug, "instance.crashed", Outcome::Failure, how);
                self.record(i, o, Some(e)).await?;
            }
            if let Some(r) = retry_at.filter(|r| *r > now_i) {
                status.retry_at(r);
                return Ok(());
            }
            status.busy = true;
        } else if i.state == ObservedState::Stopped {
            // A fresh start (also after `failed`): forget old crashes.
            let mut t = self.tracking.lock().unwrap_or_else(|e| e.into_inner());
            let t = t.entry(i.id).or_default();
            t.crashes.clear();
            t.retry_at = None;
            t.started_at = None;
        }
        // A start that failed for want of something is tried again later,
        // not at every pass.
        let start_retry = self
            .tracking
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&i.id)
            .and_then(|t| t.start_retry_at);
        if let Some(r) = start_retry.filter(|r| *r > now_i) {
            status.retry_at(r);
            return Ok(());
        }

        // A world whose data is being backed up or restored starts once
        // that is done (a later pass), never over it.
        if self.tavern.backup_holds(&i.slug) {
            status.busy = true;
            return Ok(());
        }
        // One license, one server: the world must hold a key (the store
        // hands a key to one world at a time, and takes it back only once
        // that world's server is confirmed gone).
        if let Err(e) = self.tavern.claim_license(i, "system".into(), None).await {
            status.busy = true;
            let reason = format!("waiting for a license key: {}", CoreError::from(e));
            let o = observation(ObservedState::Stopped, Some(reason), None, i);
            return self.record(i, o, None).await;
        }
        let spec = match self.tavern.spec_for(i).await {
            Ok(spec) => spec,
            Err(reason) => {
                return self.fail(i, reason.to_string()).await;
            }
        };
        status.busy = true;
        match self.tavern.runtime().ensure(&spec).await {
            Ok(observed) => {
                let watch = CancellationToken::new();
                {
                    let mut t = self.tracking.lock().unwrap_or_else(|e| e.into_inner());
                    let t = t.entry(i.id).or_default();
                    t.started_at = Some(Instant::now());
                    t.retry_at = None;
                    t.start_failures = 0;
                    t.start_retry_at = None;
                    t.end_watch();
                    t.watch = Some(watch.clone());
                }
                // The route is handed over the moment the world answers.
                let (runtime, prefix) = (self.tavern.runtime().clone(), self.route_prefix(i));
                let ask = move || {
                    let (runtime, observed, prefix) =
                        (runtime.clone(), observed.clone(), prefix.clone());
                    async move { runtime.status(&observed, prefix.as_deref()).await.is_some() }
                };
                readiness::watch(
                    ask,
                    self.tavern.wake_handle(),
                    self.settings.start_timeout,
                    watch,
                );
                status.started.push(i.slug.clone());
                let o = observation(ObservedState::Starting, restart_reason, None, i);
                self.record(i, o, None).await
            }
            Err(e) if e.is_transient() => {
                let wait = self.start_failed(i.id);
                status.retry_at(Instant::now() + wait);
                let reason = format!(
                    "could not start ({e}); trying again in {} s",
                    wait.as_secs().max(1)
                );
                self.record(i, observation(i.state, Some(reason), None, i), None)
                    .await?;
                Err(ReconcileError::Start(e))
            }
            Err(e) => {
                let reason = e.to_string();
                self.fail(i, reason).await
            }
        }
    }

    /// Counts a start that failed for want of something and answers how
    /// long to wait before the next try: the restart backoff, doubled with
    /// each failure in a row, at most a minute.
    fn start_failed(&self, id: InstanceId) -> Duration {
        let mut t = self.tracking.lock().unwrap_or_else(|e| e.into_inner());
        let t = t.entry(id).or_default();
        t.start_failures = t.start_failures.saturating_add(1);
        let factor = 2u32.saturating_pow(t.start_failures.saturating_sub(1).min(16));
        let wait = self
            .settings
            .restart_backoff
            .saturating_mul(factor)
            .min(Duration::from_secs(60));
        t.start_retry_at = Some(Instant::now() + wait);
        wait
    }

    /// Stops (and with `remove`, removes) a server in the background;
    /// with `instance`, records the outcome on it (or, being destroyed,
    /// deletes it).
    fn background_stop(&self, slug: Slug, instance: Option<Instance>, remove: bool) {
        {
            let mut busy = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if !busy.insert(slug.clone()) {
                return;
            }
        }
        let tavern = self.tavern.clone();
        let in_flight = self.in_flight.clone();
        let grace = self.settings.stop_grace;
        tokio::spawn(async move {
            let runtime = tavern.runtime().clone();
            let destroying = instance
                .as_ref()
                .is_some_and(|i| i.desired_state == DesiredState::Destroyed);
            let result = if destroying {
                // Stopped first, then a last backup takes the place of the
                // raw archive; without one (no backups, no data, a failed
                // backup) the data directory is archived as before.
                match runtime.stop(&slug, grace).await {
                    Ok(()) => {
                        let kept = match instance.as_ref() {
                            Some(i) => tavern.last_backup(i).await,
                            None => false,
                        };
                        let disposal = if kept {
                            Disposal::Delete
                        } else {
                            Disposal::Archive
                        };
                        runtime.remove(&slug, grace, disposal).await
                    }
                    Err(e) => Err(e),
                }
            } else if remove {
                runtime.remove(&slug, grace, Disposal::Archive).await
            } else {
                runtime.stop(&slug, grace).await
            };
            match (&result, instance) {
                (Err(e), _) => {
                    tracing::warn!(slug = %slug, error = %e, "stopping the server failed; will retry");
                }
                (Ok(()), Some(i)) if i.desired_state == DesiredState::Destroyed => {
                    let e = event(
                        &slug,
                        "instance.destroyed",
                        Outcome::Success,
                        "server stopped, data kept (a last backup, or the archive)",
                    );
                    if let Err(err) = tavern.store().delete_instance(&slug, &e).await {
                        tracing::warn!(slug = %slug, error = %err, "removing the destroyed instance failed");
                    }
                    tavern.worlds_changed();
                }
                (Ok(()), Some(i)) => {
                    if let Err(err) = tavern.release_license(&i).await {
                        tracing::warn!(slug = %slug, error = %err, "releasing the license failed; will retry");
                    }
                    let e = event(
                        &slug,
                        "instance.stopped",
                        Outcome::Success,
                        "the server is stopped",
                    );
                    let o = observation(ObservedState::Stopped, i.state_reason.clone(), None, &i);
                    if let Err(err) = tavern.store().record_observation(i.id, &o, Some(&e)).await {
                        tracing::warn!(slug = %slug, error = %err, "recording the stop failed");
                    }
                    // The routes say so now (the standby page), not only
                    // once the backup after the stop is done.
                    tavern.wake_handle().notify_one();
                    tavern.after_stop(&i).await;
                }
                (Ok(()), None) if remove => {
                    tavern
                        .store()
                        .append_event(&event(
                            &slug,
                            "runtime.orphan_stopped",
                            Outcome::Success,
                            "a server that belongs to no world",
                        ))
                        .await
                        .ok();
                }
                (Ok(()), None) => {}
            }
            in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&slug);
            tavern.wake_handle().notify_one();
        });
    }
}
