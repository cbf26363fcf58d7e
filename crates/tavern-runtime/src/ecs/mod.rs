//! The `ecs` driver: each world is an ECS service on Fargate (desired count
//! 1 running, 0 stopped; never two tasks: minimum healthy 0 %, maximum
//! 100 %) of its own task definition, with its data on an EFS access point
//! of its own, its `Config/` seed in Secrets Manager, and, behind an ALB,
//! a target group and a listener rule for its host ([`routing`]). Every
//! object carries the tags `tavern:instance` and `tavern:installation`.

mod agent;
pub mod install;
pub mod objects;
mod routing;
#[cfg(feature = "fake-ecs")]
pub mod runner;
mod world;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecs::types as ecs;
use tavern_types::{InstanceId, Slug};

use crate::{Disposal, FOUNDRY_PORT, InstanceSpec, Observed, Runtime, RuntimeError};
pub use objects::EcsSettings;

/// How often a stop looks whether the world's task has gone.
const STOP_POLL: Duration = Duration::from_millis(500);

/// The ecs driver.
pub struct EcsRuntime {
    settings: EcsSettings,
    ecs: aws_sdk_ecs::Client,
    efs: aws_sdk_efs::Client,
    elb: aws_sdk_elasticloadbalancingv2::Client,
    secrets: aws_sdk_secretsmanager::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    /// How long past its grace a stop waits for the task to go.
    stop_margin: Duration,
    /// For archives to and from data agents: no time limit on the whole.
    transfer: reqwest::Client,
    /// How long a data agent's task may take to answer (Fargate pulls
    /// Tavern's image first).
    agent_wait: Duration,
    /// The worlds whose rule already forwards to them, so that the
    /// readiness probes switch it once.
    routed: std::sync::Mutex<HashSet<Slug>>,
    /// The worlds it runs, as last seen.
    worlds: std::sync::Mutex<HashSet<Slug>>,
    /// When this Tavern last started each world: a task that failed
    /// before is an earlier run's.
    started: std::sync::Mutex<HashMap<Slug, SystemTime>>,
}

/// The code of an AWS error (`TargetGroupNotFound`, …), when it has one.
pub(crate) fn code_of<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// An AWS error as the reconciler takes it: refused (no retry helps) for
/// a request AWS will not take, transient otherwise.
pub(crate) fn aws_error<E, R>(slug: &Slug, what: &'static str, e: SdkError<E, R>) -> RuntimeError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::ServiceError(s) = &e {
        let err = s.err();
        let code = err.code().unwrap_or("error");
        let text = format!("{} ({code})", err.message().unwrap_or(code));
        let transient = code.contains("Throttl")
            || matches!(
                code,
                "ServiceUnavailable" | "InternalError" | "ServerException" | "InternalFailure"
            );
        if !transient {
            return RuntimeError::Refused {
                slug: slug.to_string(),
                message: format!("cannot {what}: {text}"),
            };
        }
        return RuntimeError::io(what, slug, std::io::Error::other(text));
    }
    let why = std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
    RuntimeError::io(what, slug, std::io::Error::other(why))
}

/// A request AWS would refuse, or an answer it should not have given:
/// trying again does not help.
pub(crate) fn refused(slug: &Slug, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Refused {
        slug: slug.to_string(),
        message: e.to_string(),
    }
}

/// Errors about the cluster itself, not one world, name this slug.
fn placeholder_slug() -> Slug {
    Slug::parse("ecs").expect("a valid slug")
}

/// A task's address in its VPC (its network interface's).
fn task_addr(task: &ecs::Task) -> Option<SocketAddr> {
    task.attachments()
        .iter()
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value()?.parse().ok())
        .map(|ip| SocketAddr::new(ip, FOUNDRY_PORT))
}

fn tag_map(tags: &[ecs::Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
        .collect()
}

/// Why a world's task ended, when it failed by itself: its essential
/// container exited, or it never started (an image not pulled, a volume
/// not mounted). A task stopped by Tavern or by ECS's scheduler did not
/// fail, nor did one that stopped before `since` (the world's last start,
/// when this Tavern made it).
fn crash_of(task: &ecs::Task, since: Option<SystemTime>) -> Option<String> {
    if task.last_status() != Some("STOPPED") {
        return None;
    }
    if !matches!(
        task.stop_code(),
        Some(ecs::TaskStopCode::EssentialContainerExited | ecs::TaskStopCode::TaskFailedToStart)
    ) {
        return None;
    }
    if let (Some(since), Some(stopped)) = (since, task.stopped_at())
        && *stopped < aws_sdk_ecs::primitives::DateTime::from(since)
    {
        return None;
    }
    let container = task.containers().iter().find_map(|c| {
        let code = c.exit_code()?;
        // The init container's success is how Foundry's starts.
        if c.name() == Some("config") && code == 0 {
            return None;
        }
        let reason = c.reason().map(|r| format!(": {r}")).unwrap_or_default();
        Some(format!(
            "{} exited with code {code}{reason}",
            c.name().unwrap_or("a container")
        ))
    });
    Some(
        container
            .or_else(|| task.stopped_reason().map(str::to_owned))
            .unwrap_or_else(|| "its task stopped".to_owned()),
    )
}

impl EcsRuntime {
    /// Connects as the AWS SDK finds its credentials (the task's role on
    /// ECS, else the environment or `~/.aws`), in `region`, at `endpoint`
    /// when set (a stand-in for tests).
    pub async fn connect(settings: EcsSettings, endpoint: Option<&str>) -> Self {
        let mut conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(settings.region.clone()));
        if let Some(url) = endpoint {
            conf = conf.endpoint_url(url);
        }
        Self::with_config(&conf.load().await, settings)
    }

    /// A driver on an SDK configuration made elsewhere.
    pub fn with_config(sdk: &aws_config::SdkConfig, settings: EcsSettings) -> Self {
        Self {
            settings,
            ecs: aws_sdk_ecs::Client::new(sdk),
            efs: aws_sdk_efs::Client::new(sdk),
            elb: aws_sdk_elasticloadbalancingv2::Client::new(sdk),
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
            stop_margin: Duration::from_secs(60),
            transfer: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            agent_wait: Duration::from_secs(300),
            routed: std::sync::Mutex::new(HashSet::new()),
            worlds: std::sync::Mutex::new(HashSet::new()),
            started: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// How long past its grace a stop waits for the task to go (60 s).
    pub fn stop_margin(mut self, margin: Duration) -> Self {
        self.stop_margin = margin;
        self
    }

    pub fn settings(&self) -> &EcsSettings {
        &self.settings
    }

    /// The world's directory under `/worlds` (its id), when it has an
    /// access point.
    async fn world_dir(&self, slug: &Slug) -> Result<Option<String>, RuntimeError> {
        Ok(self.access_point(slug).await?.and_then(|a| {
            a.tags()
                .iter()
                .find(|t| t.key() == objects::TAG_INSTANCE_ID)
                .map(|t| t.value().to_owned())
        }))
    }

    /// Whether the world is one of this driver's (as last seen).
    pub fn runs(&self, slug: &Slug) -> bool {
        self.worlds
            .lock()
            .map(|w| w.contains(slug))
            .unwrap_or(false)
    }

    fn is_routed(&self, slug: &Slug) -> bool {
        self.routed
            .lock()
            .map(|r| r.contains(slug))
            .unwrap_or(false)
    }

    fn set_routed(&self, slug: &Slug, routed: bool) {
        if let Ok(mut set) = self.routed.lock() {
            match routed {
                true => set.insert(slug.clone()),
                false => set.remove(slug),
            };
        }
    }

    /// The world's service, if it has an active one.
    async fn service(&self, slug: &Slug) -> Result<Option<ecs::Service>, RuntimeError> {
        let found = self
            .ecs
            .describe_services()
            .cluster(&self.settings.cluster)
            .services(objects::service_name(&self.settings, slug))
            .include(ecs::ServiceField::Tags)
            .send()
            .await
            .map_err(|e| aws_error(slug, "read the service", e))?;
        Ok(found
            .services()
            .iter()
            .find(|s| s.status() != Some("INACTIVE"))
            .cloned())
    }

    /// The tasks of one world's family (its Foundry, not its agents), or
    /// of every family when `slug` is `None`, whose task ECS still wants
    /// running or which have not stopped yet.
    async fn tasks(&self, slug: Option<&Slug>) -> Result<Vec<ecs::Task>, RuntimeError> {
        let placeholder = placeholder_slug();
        let who = slug.unwrap_or(&placeholder);
        let mut arns = Vec::new();
        for desired in [ecs::DesiredStatus::Running, ecs::DesiredStatus::Stopped] {
            let mut token = None;
            loop {
                let page = self
                    .ecs
                    .list_tasks()
                    .cluster(&self.settings.cluster)
                    .set_family(slug.map(|s| objects::service_name(&self.settings, s)))
                    .desired_status(desired.clone())
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| aws_error(who, "list the tasks", e))?;
                arns.extend(page.task_arns().iter().cloned());
                token = page.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
        }
        let mut tasks = Vec::with_capacity(arns.len());
        // ECS describes at most 100 tasks at once.
        for chunk in arns.chunks(100) {
            let found = self
                .ecs
                .describe_tasks()
                .cluster(&self.settings.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| aws_error(who, "read the tasks", e))?;
            tasks.extend(found.tasks().iter().cloned());
        }
        Ok(tasks)
    }

    /// Sets the world's service's desired count to 0 (its rule to the
    /// standby page) and waits until its task has stopped.
    async fn scale_down(&self, slug: &Slug, grace: Duration) -> Result<(), RuntimeError> {
        self.set_routed(slug, false);
        if let Some(standby) = &self.settings.standby_target_group_arn {
            self.point(slug, standby).await?;
        }
        let Some(service) = self.service(slug).await? else {
            return Ok(());
        };
        if service.desired_count() != 0 {
            self.ecs
                .update_service()
                .cluster(&self.settings.cluster)
                .service(objects::service_name(&self.settings, slug))
                .desired_count(0)
                .send()
                .await
                .map_err(|e| aws_error(slug, "set the service's desired count to 0", e))?;
        }
        let deadline = tokio::time::Instant::now() + grace + self.stop_margin;
        loop {
            let tasks = self.tasks(Some(slug)).await?;
            if tasks.iter().all(|t| t.last_status() == Some("STOPPED")) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::io(
                    "stop",
                    slug,
                    std::io::Error::other("its task is still stopping"),
                ));
            }
            tokio::time::sleep(STOP_POLL).await;
        }
    }

    fn observed(
        &self,
        slug: Slug,
        service: &ecs::Service,
        tasks: &[&ecs::Task],
    ) -> Option<Observed> {
        let tags = tag_map(service.tags());
        let id: InstanceId = tags.get(objects::TAG_INSTANCE_ID)?.parse().ok()?;
        let desired = service.desired_count();
        let live: Vec<&&ecs::Task> = tasks
            .iter()
            .filter(|t| t.last_status() != Some("STOPPED"))
            .collect();
        let addr = live.iter().find_map(|t| task_addr(t));
        // A world whose task ended by itself and has no other is down
        // until ECS starts the next.
        let since = self.started.lock().ok().and_then(|s| s.get(&slug).copied());
        let crashed = match live.is_empty() {
            true => tasks.iter().find_map(|t| crash_of(t, since)),
            false => None,
        };
        let alive = desired > 0 && crashed.is_none();
        let exit = match desired {
            0 => Some("desired count 0".to_owned()),
            _ => crashed,
        };
        Some(Observed {
            id,
            slug,
            // A task without an address yet is not forwarded to.
            addr: addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            alive,
            exit,
            kept: desired == 0 && live.is_empty(),
        })
    }
}

/// The service a task belongs to: ECS names it in the task's group.
fn service_of(task: &ecs::Task) -> Option<&str> {
    task.group()?.strip_prefix("service:")
}

#[async_trait]
impl Runtime for EcsRuntime {
    async fn ensure(&self, spec: &InstanceSpec) -> Result<Observed, RuntimeError> {
        self.ensure_world(spec).await?;
        if let Ok(mut worlds) = self.worlds.lock() {
            worlds.insert(spec.slug.clone());
        }
        tracing::info!(slug = %spec.slug, cluster = %self.settings.cluster, "the world's service wants its task");
        let tasks = self.tasks(Some(&spec.slug)).await?;
        let addr = tasks
            .iter()
            .filter(|t| t.last_status() != Some("STOPPED"))
            .find_map(task_addr);
        Ok(Observed {
            id: spec.id,
            slug: spec.slug.clone(),
            addr: addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            alive: true,
            exit: None,
            kept: false,
        })
    }

    async fn stop(&self, slug: &Slug, grace: Duration) -> Result<(), RuntimeError> {
        self.scale_down(slug, grace).await
    }

    async fn remove(
        &self,
        slug: &Slug,
        grace: Duration,
        data: Disposal,
    ) -> Result<(), RuntimeError> {
        self.scale_down(slug, grace).await?;
        self.remove_world(slug, data).await?;
        if let Ok(mut worlds) = self.worlds.lock() {
            worlds.remove(slug);
        }
        if let Ok(mut started) = self.started.lock() {
            started.remove(slug);
        }
        Ok(())
    }

    fn data_dir(&self, _slug: &Slug) -> Option<PathBuf> {
        // The data lives on the world's access point on EFS.
        None
    }

    async fn observe_all(&self) -> Result<Vec<Observed>, RuntimeError> {
        let placeholder = placeholder_slug();
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .ecs
                .list_services()
                .cluster(&self.settings.cluster)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| aws_error(&placeholder, "list the services", e))?;
            names.extend(page.service_arns().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        let mut services = Vec::new();
        // ECS describes at most 10 services at once.
        for chunk in names.chunks(10) {
            let found = self
                .ecs
                .describe_services()
                .cluster(&self.settings.cluster)
                .set_services(Some(chunk.to_vec()))
                .include(ecs::ServiceField::Tags)
                .send()
                .await
                .map_err(|e| aws_error(&placeholder, "read the services", e))?;
            services.extend(
                found
                    .services()
                    .iter()
                    .filter(|s| s.status() != Some("INACTIVE"))
                    .filter_map(|s| {
                        let slug = objects::owner(&self.settings, &tag_map(s.tags()))?;
                        Some((slug, s.clone()))
                    }),
            );
        }
        if let Ok(mut worlds) = self.worlds.lock() {
            *worlds = services.iter().map(|(slug, _)| slug.clone()).collect();
        }
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let tasks = self.tasks(None).await?;
        Ok(services
            .into_iter()
            .filter_map(|(slug, service)| {
                let name = service.service_name().unwrap_or_default();
                let mine: Vec<&ecs::Task> = tasks
                    .iter()
                    .filter(|t| service_of(t) == Some(name))
                    .collect();
                self.observed(slug, &service, &mine)
            })
            .collect())
    }

    async fn status(
        &self,
        observed: &Observed,
        route_prefix: Option<&str>,
    ) -> Option<crate::FoundryStatus> {
        let status = crate::probe_status(observed.addr, route_prefix).await?;
        // The world answers: its host now goes to it, not the standby page.
        self.route_when_ready(&observed.slug).await;
        Some(status)
    }

    async fn license_file(&self, slug: &Slug) -> Option<String> {
        let read = async {
            let Some(dir) = self.world_dir(slug).await? else {
                return Ok(None);
            };
            self.with_agent(slug, &dir, |url, token| async move {
                crate::agent_client::license(&self.transfer, slug, &url, &token).await
            })
            .await
        };
        read.await.unwrap_or_else(|e| {
            tracing::warn!(slug = %slug, error = %e, "cannot read the world's license.json");
            None
        })
    }

    async fn has_data(&self, slug: &Slug) -> Result<bool, RuntimeError> {
        Ok(self.world_dir(slug).await?.is_some())
    }

    async fn export_archive(
        &self,
        slug: &Slug,
        to: &std::path::Path,
    ) -> Result<bool, RuntimeError> {
        let Some(dir) = self.world_dir(slug).await? else {
            return Ok(false);
        };
        self.with_agent(slug, &dir, |url, token| async move {
            crate::agent_client::export(&self.transfer, slug, &url, &token, to).await
        })
        .await
    }

    async fn import_archive(
        &self,
        spec: &InstanceSpec,
        from: &std::path::Path,
        record: &tavern_types::ArchiveRecord,
    ) -> Result<(), RuntimeError> {
        let slug = &spec.slug;
        // A world restored before its first start gets its access point now.
        self.ensure_access_point(spec).await?;
        let dir = spec.id.to_string();
        self.with_agent(slug, &dir, |url, token| async move {
            crate::agent_client::import(&self.transfer, slug, &url, &token, from, record).await
        })
        .await
    }

    async fn logs(&self, slug: &Slug, tail: usize) -> Result<Vec<String>, RuntimeError> {
        let tasks = self.tasks(Some(slug)).await?;
        // The newest task's Foundry: a running one, else the last to stop.
        let newest = tasks
            .iter()
            .max_by_key(|t| t.created_at().map(|c| (c.secs(), c.subsec_nanos())));
        let Some(id) = newest
            .and_then(|t| t.task_arn())
            .and_then(|arn| arn.rsplit('/').next())
        else {
            return Ok(Vec::new());
        };
        let read = self
            .logs
            .get_log_events()
            .log_group_name(&self.settings.log_group)
            .log_stream_name(format!("tavern/foundry/{id}"))
            .limit(i32::try_from(tail.min(10_000)).unwrap_or(10_000))
            .start_from_head(false)
            .send()
            .await;
        match read {
            Ok(out) => Ok(out
                .events()
                .iter()
                .filter_map(|e| e.message().map(str::to_owned))
                .collect()),
            Err(e) if code_of(&e) == Some("ResourceNotFoundException") => Ok(Vec::new()),
            Err(e) => Err(aws_error(slug, "read the task's log", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use aws_sdk_ecs::primitives::DateTime;
    use aws_sdk_ecs::types as ecs;

    use super::crash_of;

    fn stopped(code: ecs::TaskStopCode, at: SystemTime, containers: &[(&str, i32)]) -> ecs::Task {
        ecs::Task::builder()
            .last_status("STOPPED")
            .stop_code(code)
            .stopped_reason("Essential container in task exited")
            .stopped_at(DateTime::from(at))
            .set_containers(Some(
                containers
                    .iter()
                    .map(|(name, code)| {
                        ecs::Container::builder()
                            .name(*name)
                            .exit_code(*code)
                            .build()
                    })
                    .collect(),
            ))
            .build()
    }

    #[test]
    fn a_task_that_failed_by_itself_is_a_crash_named_by_its_container() {
        let now = SystemTime::now();
        let exited = stopped(
            ecs::TaskStopCode::EssentialContainerExited,
            now,
            &[("config", 0), ("foundry", 3)],
        );
        assert_eq!(
            crash_of(&exited, None).as_deref(),
            Some("foundry exited with code 3")
        );
        // The init container that failed is named; with no container's
        // code, ECS's reason.
        let init = stopped(
            ecs::TaskStopCode::EssentialContainerExited,
            now,
            &[("config", 1)],
        );
        assert_eq!(
            crash_of(&init, None).as_deref(),
            Some("config exited with code 1")
        );
        let never = stopped(ecs::TaskStopCode::TaskFailedToStart, now, &[("config", 0)]);
        assert_eq!(
            crash_of(&never, None).as_deref(),
            Some("Essential container in task exited")
        );
    }

    #[test]
    fn a_task_stopped_on_purpose_or_before_the_start_is_no_crash() {
        let now = SystemTime::now();
        for code in [
            ecs::TaskStopCode::UserInitiated,
            ecs::TaskStopCode::ServiceSchedulerInitiated,
        ] {
            let task = stopped(code, now, &[("foundry", 143)]);
            assert_eq!(crash_of(&task, None), None);
        }
        // An earlier run's crash, seen while the new task is not there yet.
        let old = stopped(
            ecs::TaskStopCode::EssentialContainerExited,
            now - Duration::from_secs(600),
            &[("foundry", 1)],
        );
        assert_eq!(crash_of(&old, Some(now)), None);
        assert!(crash_of(&old, Some(now - Duration::from_secs(3600))).is_some());
        // A task still running has not crashed.
        let running = ecs::Task::builder().last_status("RUNNING").build();
        assert_eq!(crash_of(&running, None), None);
    }
}
