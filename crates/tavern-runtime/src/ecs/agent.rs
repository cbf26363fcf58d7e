//! The data agent on ECS: a short-lived Fargate task of Tavern's image
//! (`tavern data-agent`) on the installation's access point to `/worlds`,
//! through which backups, restores, the signed `license.json` and the
//! deletion of a destroyed world's data reach a world's directory. Its
//! token goes in the task's overrides; it is stopped after the work.

use std::time::Duration;

use aws_sdk_ecs::types as ecs;
use tavern_types::Slug;

use super::objects::{self, EcsSettings};
use super::world::Revision;
use super::{EcsRuntime, aws_error, refused, task_addr};
use crate::RuntimeError;

/// The port the agent listens on in its task.
pub const AGENT_PORT: u16 = 8081;
/// Where the installation's `/worlds` is mounted in the agent.
pub const AGENT_MOUNT: &str = "/worlds";
/// The agent's task size: the smallest Fargate has (it streams, it keeps
/// nothing).
pub const AGENT_CPU: &str = "256";
pub const AGENT_MEMORY: i32 = 512;
/// The environment variable the agent reads its token from.
pub const TOKEN_ENV: &str = "TAVERN_AGENT_TOKEN";

fn agent_tags(settings: &EcsSettings) -> Vec<(String, String)> {
    vec![
        (
            objects::TAG_INSTALLATION.to_owned(),
            settings.installation.clone(),
        ),
        (objects::TAG_AGENT.to_owned(), "true".to_owned()),
    ]
}

/// The agent's task: Tavern's image on the access point to `/worlds`.
pub fn agent_task(
    settings: &EcsSettings,
    access_point: &str,
) -> Result<(ecs::ContainerDefinition, ecs::Volume), String> {
    let container = ecs::ContainerDefinition::builder()
        .name("agent")
        .image(&settings.tavern_image)
        .essential(true)
        .command("data-agent")
        .command(format!("--claim={AGENT_MOUNT}"))
        .command(format!("--listen=0.0.0.0:{AGENT_PORT}"))
        .port_mappings(
            ecs::PortMapping::builder()
                .container_port(i32::from(AGENT_PORT))
                .protocol(ecs::TransportProtocol::Tcp)
                .build(),
        )
        .user(format!("{0}:{0}", objects::FOUNDRY_UID))
        .readonly_root_filesystem(true)
        .memory_reservation(AGENT_MEMORY)
        .mount_points(
            ecs::MountPoint::builder()
                .source_volume("worlds")
                .container_path(AGENT_MOUNT)
                .read_only(false)
                .build(),
        )
        .log_configuration(objects::logs(settings)?)
        .build();
    Ok((
        container,
        objects::efs_volume(settings, "worlds", access_point)?,
    ))
}

impl EcsRuntime {
    /// The installation's access point to `/worlds` (the agents'), made
    /// when it has none.
    async fn agents_access_point(&self, slug: &Slug) -> Result<String, RuntimeError> {
        let found = self.access_points(slug).await?.into_iter().find(|a| {
            let tags: std::collections::BTreeMap<String, String> = a
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect();
            tags.get(objects::TAG_INSTALLATION) == Some(&self.settings.installation)
                && tags.contains_key(objects::TAG_AGENT)
        });
        if let Some(id) = found.and_then(|a| a.access_point_id().map(str::to_owned)) {
            return Ok(id);
        }
        self.make_access_point(
            slug,
            &format!("tavern-{}-agents", self.settings.installation),
            objects::WORLDS_ROOT,
            agent_tags(&self.settings),
        )
        .await
    }

    /// The agents' task definition, registered when it changed.
    async fn agent_definition(&self, slug: &Slug) -> Result<String, RuntimeError> {
        let access_point = self.agents_access_point(slug).await?;
        let (container, volume) =
            agent_task(&self.settings, &access_point).map_err(|e| refused(slug, e))?;
        let task = objects::WorldTask {
            containers: vec![container],
            volumes: vec![volume],
            made_of: format!(
                "agent|{}|{access_point}|{}|{}",
                self.settings.tavern_image, self.settings.log_group, self.settings.region
            ),
        };
        let family = objects::agent_family(&self.settings);
        let revision = Revision {
            family: family.clone(),
            cpu: AGENT_CPU.to_owned(),
            memory: AGENT_MEMORY.to_string(),
            task,
            tags: agent_tags(&self.settings),
        };
        self.register_if_changed(slug, Some(&family), revision)
            .await
    }

    /// Runs `work` with a data agent on the world directory `dir` (its
    /// address and token): the agent's task is started and awaited first,
    /// and stopped afterwards, whatever happened.
    pub(super) async fn with_agent<T, F, Fut>(
        &self,
        slug: &Slug,
        dir: &str,
        work: F,
    ) -> Result<T, RuntimeError>
    where
        F: FnOnce(String, String) -> Fut,
        Fut: std::future::Future<Output = Result<T, RuntimeError>>,
    {
        self.stop_old_agents(slug).await?;
        let definition = self.agent_definition(slug).await?;
        let token = hex::encode(rand::random::<[u8; 32]>());
        let overrides = ecs::TaskOverride::builder()
            .container_overrides(
                ecs::ContainerOverride::builder()
                    .name("agent")
                    .command("data-agent")
                    .command(format!("--claim={AGENT_MOUNT}"))
                    .command(format!("--data={dir}"))
                    .command(format!("--listen=0.0.0.0:{AGENT_PORT}"))
                    .environment(
                        ecs::KeyValuePair::builder()
                            .name(TOKEN_ENV)
                            .value(&token)
                            .build(),
                    )
                    .build(),
            )
            .build();
        let started = self
            .ecs
            .run_task()
            .cluster(&self.settings.cluster)
            .task_definition(&definition)
            .launch_type(ecs::LaunchType::Fargate)
            .network_configuration(self.network(slug)?)
            .overrides(overrides)
            .started_by(objects::AGENT_STARTED_BY)
            .tags(
                ecs::Tag::builder()
                    .key(objects::TAG_INSTANCE)
                    .value(slug.as_str())
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_error(slug, "start a data agent", e))?;
        let Some(arn) = started
            .tasks()
            .first()
            .and_then(|t| t.task_arn())
            .map(str::to_owned)
        else {
            let why = started
                .failures()
                .first()
                .and_then(|f| f.reason())
                .unwrap_or("no task");
            return Err(RuntimeError::io(
                "start a data agent",
                slug,
                std::io::Error::other(why.to_owned()),
            ));
        };
        let result = async {
            let url = self.agent_ready(slug, &arn).await?;
            work(url, token).await
        }
        .await;
        if let Err(e) = self.stop_task(&arn, "the data agent's work is done").await {
            tracing::warn!(slug = %slug, task = %arn, error = %e, "the data agent was not stopped");
        }
        result
    }

    async fn stop_task(&self, arn: &str, reason: &str) -> Result<(), RuntimeError> {
        let placeholder = super::placeholder_slug();
        self.ecs
            .stop_task()
            .cluster(&self.settings.cluster)
            .task(arn)
            .reason(reason)
            .send()
            .await
            .map_err(|e| aws_error(&placeholder, "stop a task", e))?;
        Ok(())
    }

    /// Stops the agents a Tavern left an hour ago or more (it stopped
    /// midway); newer ones may be at work.
    async fn stop_old_agents(&self, slug: &Slug) -> Result<(), RuntimeError> {
        let listed = self
            .ecs
            .list_tasks()
            .cluster(&self.settings.cluster)
            .started_by(objects::AGENT_STARTED_BY)
            .send()
            .await
            .map_err(|e| aws_error(slug, "list data agents", e))?;
        if listed.task_arns().is_empty() {
            return Ok(());
        }
        let found = self
            .ecs
            .describe_tasks()
            .cluster(&self.settings.cluster)
            .set_tasks(Some(listed.task_arns().to_vec()))
            .send()
            .await
            .map_err(|e| aws_error(slug, "read data agents", e))?;
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        let hour_ago = hour_ago
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        for task in found.tasks() {
            let family = task
                .task_definition_arn()
                .and_then(|a| a.rsplit('/').next())
                .and_then(|f| f.rsplit_once(':'))
                .map(|(f, _)| f);
            let mine = family == Some(objects::agent_family(&self.settings).as_str());
            let old = task.created_at().is_some_and(|c| c.secs() < hour_ago);
            if mine
                && old
                && task.last_status() != Some("STOPPED")
                && let Some(arn) = task.task_arn()
            {
                self.stop_task(arn, "a data agent left behind").await?;
            }
        }
        Ok(())
    }

    /// Waits until the agent's task runs and answers; its address.
    async fn agent_ready(&self, slug: &Slug, arn: &str) -> Result<String, RuntimeError> {
        let deadline = tokio::time::Instant::now() + self.agent_wait;
        loop {
            let found = self
                .ecs
                .describe_tasks()
                .cluster(&self.settings.cluster)
                .tasks(arn)
                .send()
                .await
                .map_err(|e| aws_error(slug, "read the data agent", e))?;
            let task = found.tasks().first();
            if let Some(t) = task
                && t.last_status() == Some("STOPPED")
            {
                return Err(RuntimeError::io(
                    "reach its data",
                    slug,
                    std::io::Error::other(format!(
                        "the data agent stopped: {}",
                        t.stopped_reason().unwrap_or("no reason given")
                    )),
                ));
            }
            let addr = task
                .filter(|t| t.last_status() == Some("RUNNING"))
                .and_then(task_addr)
                .map(|a| std::net::SocketAddr::new(a.ip(), AGENT_PORT));
            if let Some(addr) = addr {
                let url = format!("http://{addr}");
                let healthy = self
                    .transfer
                    .get(format!("{url}/healthz"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if healthy {
                    return Ok(url);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::io(
                    "reach its data",
                    slug,
                    std::io::Error::other("the data agent's task did not answer in time"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
