//! A world's own objects on ECS, made, changed and removed: its EFS access
//! point (uid/gid 1000, root `/worlds/<id>`), its seed secret, its task
//! definition (registered again only when what it runs changes) and its
//! service.

use aws_sdk_ecs::types as ecs;
use aws_sdk_efs::types as efs;
use tavern_types::Slug;

use super::objects;
use super::{EcsRuntime, aws_error, code_of, refused, tag_map};
use crate::{Disposal, FOUNDRY_PORT, InstanceSpec, RuntimeError};

/// A task definition to register: its family, size, what it runs and
/// its tags.
pub(super) struct Revision {
    pub family: String,
    pub cpu: String,
    pub memory: String,
    pub task: objects::WorldTask,
    pub tags: Vec<(String, String)>,
}

/// Tags as ECS takes them.
fn to_ecs_tags(tags: impl IntoIterator<Item = (String, String)>) -> Vec<ecs::Tag> {
    tags.into_iter()
        .map(|(k, v)| ecs::Tag::builder().key(k).value(v).build())
        .collect()
}

impl EcsRuntime {
    /// Every access point of the file system with its tags.
    pub(super) async fn access_points(
        &self,
        slug: &Slug,
    ) -> Result<Vec<efs::AccessPointDescription>, RuntimeError> {
        let mut all = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .efs
                .describe_access_points()
                .file_system_id(&self.settings.file_system_id)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| aws_error(slug, "list the access points", e))?;
            all.extend(page.access_points().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(all);
            }
        }
    }

    /// The world's current access point (of its slug, this installation).
    pub(super) async fn access_point(
        &self,
        slug: &Slug,
    ) -> Result<Option<efs::AccessPointDescription>, RuntimeError> {
        Ok(self.access_points(slug).await?.into_iter().find(|a| {
            let tags = a
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect();
            objects::owner(&self.settings, &tags).as_ref() == Some(slug)
        }))
    }

    /// Makes the world's access point when it has none; answers its id.
    pub(super) async fn ensure_access_point(
        &self,
        spec: &InstanceSpec,
    ) -> Result<String, RuntimeError> {
        let slug = &spec.slug;
        if let Some(id) = self
            .access_point(slug)
            .await?
            .and_then(|a| a.access_point_id().map(str::to_owned))
        {
            return Ok(id);
        }
        // The world's id: a make cut off and asked again is the same.
        self.make_access_point(
            slug,
            &spec.id.to_string(),
            &objects::data_root(spec),
            objects::tags(&self.settings, spec).into_iter().collect(),
        )
        .await
    }

    /// Makes an access point of Foundry's uid and gid rooted at `root`
    /// (made with them on first use), tagged; answers its id.
    pub(super) async fn make_access_point(
        &self,
        slug: &Slug,
        client_token: &str,
        root: &str,
        tags: Vec<(String, String)>,
    ) -> Result<String, RuntimeError> {
        let uid = objects::FOUNDRY_UID;
        let posix = efs::PosixUser::builder()
            .uid(uid)
            .gid(uid)
            .build()
            .map_err(|e| refused(slug, e))?;
        let root = efs::RootDirectory::builder()
            .path(root)
            .creation_info(
                efs::CreationInfo::builder()
                    .owner_uid(uid)
                    .owner_gid(uid)
                    .permissions("0750")
                    .build()
                    .map_err(|e| refused(slug, e))?,
            )
            .build();
        let tags = tags
            .into_iter()
            .map(|(k, v)| efs::Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| refused(slug, e))?;
        let made = self
            .efs
            .create_access_point()
            .client_token(client_token)
            .file_system_id(&self.settings.file_system_id)
            .posix_user(posix)
            .root_directory(root)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| aws_error(slug, "make an access point", e))?;
        made.access_point_id()
            .map(str::to_owned)
            .ok_or_else(|| refused(slug, "EFS made no access point"))
    }

    /// Writes the world's seed into its secret when it changed (a new
    /// version each time would be a change); answers the secret's ARN.
    async fn put_seed(&self, spec: &InstanceSpec) -> Result<String, RuntimeError> {
        let slug = &spec.slug;
        let seed = objects::seed(spec).map_err(|e| refused(slug, e))?;
        let name = objects::seed_secret_name(&self.settings, slug);
        let current = self
            .secrets
            .get_secret_value()
            .secret_id(&name)
            .send()
            .await;
        let arn = match current {
            Ok(found) if found.secret_string() == Some(seed.as_str()) => {
                found.arn().map(str::to_owned)
            }
            Ok(_) => self
                .secrets
                .put_secret_value()
                .secret_id(&name)
                .secret_string(&seed)
                .send()
                .await
                .map_err(|e| aws_error(slug, "write the seed secret", e))?
                .arn()
                .map(str::to_owned),
            Err(e) if code_of(&e) == Some("ResourceNotFoundException") => {
                let tags = objects::tags(&self.settings, spec)
                    .into_iter()
                    .map(|(k, v)| {
                        aws_sdk_secretsmanager::types::Tag::builder()
                            .key(k)
                            .value(v)
                            .build()
                    });
                self.secrets
                    .create_secret()
                    .name(&name)
                    .description("Tavern: the settings a world's Config/ is written from")
                    .secret_string(&seed)
                    .set_tags(Some(tags.collect()))
                    .send()
                    .await
                    .map_err(|e| aws_error(slug, "make the seed secret", e))?
                    .arn()
                    .map(str::to_owned)
            }
            Err(e) => return Err(aws_error(slug, "read the seed secret", e)),
        };
        arn.ok_or_else(|| refused(slug, "Secrets Manager answered no ARN"))
    }

    /// The task definition the world's service should run: its current
    /// one when nothing changed, else a new revision.
    async fn task_definition(
        &self,
        spec: &InstanceSpec,
        current: Option<&str>,
        access_point: &str,
        seed_arn: &str,
    ) -> Result<String, RuntimeError> {
        let slug = &spec.slug;
        let task = objects::world_task(&self.settings, spec, access_point, seed_arn)
            .map_err(|e| refused(slug, e))?;
        let revision = Revision {
            family: objects::service_name(&self.settings, slug),
            cpu: self.settings.cpu.clone(),
            memory: self.settings.memory.clone(),
            task,
            tags: objects::tags(&self.settings, spec).into_iter().collect(),
        };
        self.register_if_changed(slug, current, revision).await
    }

    /// `current` when it carries the digest of `revision` (nothing it runs
    /// changed), else `revision` registered as a new revision of its
    /// family: Fargate, awsvpc, the installation's execution and task
    /// roles, and its tags with the digest. A `current` ECS does not know
    /// (no revision of the family yet) is a change.
    pub(super) async fn register_if_changed(
        &self,
        slug: &Slug,
        current: Option<&str>,
        revision: Revision,
    ) -> Result<String, RuntimeError> {
        let digest = objects::task_digest(&revision.task, &self.settings);
        if let Some(current) = current {
            match self
                .ecs
                .describe_task_definition()
                .task_definition(current)
                .include(ecs::TaskDefinitionField::Tags)
                .send()
                .await
            {
                Ok(found) => {
                    if tag_map(found.tags()).get(objects::TAG_TASK_DIGEST) == Some(&digest)
                        && let Some(arn) = found
                            .task_definition()
                            .and_then(|t| t.task_definition_arn())
                    {
                        return Ok(arn.to_owned());
                    }
                }
                Err(e) if code_of(&e) == Some("ClientException") => {}
                Err(e) => return Err(aws_error(slug, "read the task definition", e)),
            }
        }
        let mut tags = revision.tags;
        tags.push((objects::TAG_TASK_DIGEST.to_owned(), digest));
        let made = self
            .ecs
            .register_task_definition()
            .family(revision.family)
            .requires_compatibilities(ecs::Compatibility::Fargate)
            .network_mode(ecs::NetworkMode::Awsvpc)
            .cpu(revision.cpu)
            .memory(revision.memory)
            .execution_role_arn(&self.settings.execution_role_arn)
            // EFS's IAM authorization asks the task's own role.
            .set_task_role_arn(self.settings.task_role_arn.clone())
            .set_container_definitions(Some(revision.task.containers))
            .set_volumes(Some(revision.task.volumes))
            .set_tags(Some(to_ecs_tags(tags)))
            .send()
            .await
            .map_err(|e| aws_error(slug, "register the task definition", e))?;
        made.task_definition()
            .and_then(|t| t.task_definition_arn())
            .map(str::to_owned)
            .ok_or_else(|| refused(slug, "ECS registered no task definition"))
    }

    pub(super) fn network(&self, slug: &Slug) -> Result<ecs::NetworkConfiguration, RuntimeError> {
        let vpc = ecs::AwsVpcConfiguration::builder()
            .set_subnets(Some(self.settings.subnets.clone()))
            .set_security_groups(Some(self.settings.security_groups.clone()))
            .assign_public_ip(match self.settings.assign_public_ip {
                true => ecs::AssignPublicIp::Enabled,
                false => ecs::AssignPublicIp::Disabled,
            })
            .build()
            .map_err(|e| refused(slug, e))?;
        Ok(ecs::NetworkConfiguration::builder()
            .awsvpc_configuration(vpc)
            .build())
    }

    /// Notes that the world starts now: a task of it that failed before
    /// is not this run's crash.
    fn mark_started(&self, slug: &Slug) {
        if let Ok(mut started) = self.started.lock() {
            started.insert(slug.clone(), std::time::SystemTime::now());
        }
    }

    /// Makes or updates every object of the world so that its service
    /// wants one task; answers the service.
    pub(super) async fn ensure_world(
        &self,
        spec: &InstanceSpec,
    ) -> Result<ecs::Service, RuntimeError> {
        let slug = &spec.slug;
        let access_point = self.ensure_access_point(spec).await?;
        let seed_arn = self.put_seed(spec).await?;
        let service = self.service(slug).await?;
        let task_definition = self
            .task_definition(
                spec,
                service.as_ref().and_then(|s| s.task_definition()),
                &access_point,
                &seed_arn,
            )
            .await?;
        let target_group = match &self.settings.listener_arn {
            Some(_) => Some(self.ensure_target_group(spec).await?),
            None => None,
        };
        let name = objects::service_name(&self.settings, slug);
        let answer = match service {
            Some(current) => {
                if current.desired_count() == 1
                    && current.task_definition() == Some(task_definition.as_str())
                {
                    return Ok(current);
                }
                self.mark_started(slug);
                // A new task definition replaces the task: the old one
                // stops before the new one starts (maximum 100 %).
                self.ecs
                    .update_service()
                    .cluster(&self.settings.cluster)
                    .service(&name)
                    .task_definition(&task_definition)
                    .desired_count(1)
                    .send()
                    .await
                    .map_err(|e| aws_error(slug, "update the service", e))?
                    .service
            }
            None => {
                self.mark_started(slug);
                let mut make = self
                    .ecs
                    .create_service()
                    .cluster(&self.settings.cluster)
                    .service_name(&name)
                    .task_definition(&task_definition)
                    .desired_count(1)
                    .launch_type(ecs::LaunchType::Fargate)
                    .network_configuration(self.network(slug)?)
                    // Never two tasks of one world: one license, one volume.
                    .deployment_configuration(
                        ecs::DeploymentConfiguration::builder()
                            .minimum_healthy_percent(0)
                            .maximum_percent(100)
                            .build(),
                    )
                    .propagate_tags(ecs::PropagateTags::Service)
                    .set_tags(Some(to_ecs_tags(objects::tags(&self.settings, spec))));
                if let Some(tg) = &target_group {
                    make = make
                        .load_balancers(
                            ecs::LoadBalancer::builder()
                                .target_group_arn(tg)
                                .container_name("foundry")
                                .container_port(i32::from(FOUNDRY_PORT))
                                .build(),
                        )
                        // Foundry's first start (an image pull, a world
                        // loaded) is not a failed health check.
                        .health_check_grace_period_seconds(600);
                }
                make.send()
                    .await
                    .map_err(|e| aws_error(slug, "make the service", e))?
                    .service
            }
        };
        // Until the world answers, its host shows the standby page (or,
        // without one, the ALB's 503 while the task starts).
        if let Some(tg) = &target_group {
            let first = self
                .settings
                .standby_target_group_arn
                .as_ref()
                .unwrap_or(tg);
            self.route(spec, first).await?;
        }
        answer.ok_or_else(|| refused(slug, "ECS answered no service"))
    }

    /// Points the world's host at the world once it answers; once per
    /// start, as the readiness probes ask.
    pub(super) async fn route_when_ready(&self, slug: &Slug) {
        if self.settings.listener_arn.is_none() || self.is_routed(slug) {
            return;
        }
        let switched = async {
            match self.target_group(slug).await? {
                Some(tg) => self.point(slug, &tg).await,
                None => Ok(false),
            }
        };
        match switched.await {
            Ok(true) => {
                self.set_routed(slug, true);
                tracing::info!(slug = %slug, "the world's host now goes to its task");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(slug = %slug, error = %e, "cannot point the world's host at it");
            }
        }
    }

    /// Removes the world's objects: its rule, target group, service, task
    /// definitions and seed; its access point is deleted with its data
    /// (`Delete`, a backup holds it) or kept, tagged as archived.
    pub(super) async fn remove_world(
        &self,
        slug: &Slug,
        data: Disposal,
    ) -> Result<(), RuntimeError> {
        let name = objects::service_name(&self.settings, slug);
        if self.service(slug).await?.is_some() {
            self.ecs
                .delete_service()
                .cluster(&self.settings.cluster)
                .service(&name)
                .force(true)
                .send()
                .await
                .map_err(|e| aws_error(slug, "delete the service", e))?;
        }
        let defs = self
            .ecs
            .list_task_definitions()
            .family_prefix(&name)
            .status(ecs::TaskDefinitionStatus::Active)
            .send()
            .await
            .map_err(|e| aws_error(slug, "list the task definitions", e))?;
        for arn in defs.task_definition_arns() {
            // Only this family: another world's slug may begin with this one.
            let family = arn.rsplit('/').next().and_then(|f| f.rsplit_once(':'));
            if family.map(|(f, _)| f) != Some(name.as_str()) {
                continue;
            }
            self.ecs
                .deregister_task_definition()
                .task_definition(arn)
                .send()
                .await
                .map_err(|e| aws_error(slug, "deregister the task definition", e))?;
        }
        // Its target group goes once no service and no rule uses it.
        self.unroute(slug).await?;
        let deleted = self
            .secrets
            .delete_secret()
            .secret_id(objects::seed_secret_name(&self.settings, slug))
            .force_delete_without_recovery(true)
            .send()
            .await;
        match deleted {
            Ok(_) => {}
            Err(e) if code_of(&e) == Some("ResourceNotFoundException") => {}
            Err(e) => return Err(aws_error(slug, "delete the seed secret", e)),
        }
        let Some(point) = self.access_point(slug).await? else {
            return Ok(());
        };
        let id = point.access_point_id().unwrap_or_default().to_owned();
        match data {
            Disposal::Delete => {
                let dir = point
                    .tags()
                    .iter()
                    .find(|t| t.key() == objects::TAG_INSTANCE_ID)
                    .map(|t| t.value().to_owned())
                    .ok_or_else(|| refused(slug, "its access point names no world"))?;
                self.with_agent(slug, &dir, |url, token| async move {
                    crate::agent_client::delete(&self.transfer, slug, &url, &token).await
                })
                .await?;
                self.efs
                    .delete_access_point()
                    .access_point_id(&id)
                    .send()
                    .await
                    .map_err(|e| aws_error(slug, "delete the access point", e))?;
                tracing::info!(slug = %slug, access_point = %id, "deleted the world's data and access point (a backup holds it)");
            }
            Disposal::Archive => {
                // Kept, and no longer the world's: a new world of this slug
                // gets an access point (and a directory) of its own.
                self.efs
                    .untag_resource()
                    .resource_id(&id)
                    .tag_keys(objects::TAG_INSTANCE)
                    .send()
                    .await
                    .map_err(|e| aws_error(slug, "archive the access point", e))?;
                self.efs
                    .tag_resource()
                    .resource_id(&id)
                    .tags(
                        efs::Tag::builder()
                            .key(objects::TAG_ARCHIVED)
                            .value(slug.as_str())
                            .build()
                            .map_err(|e| refused(slug, e))?,
                    )
                    .send()
                    .await
                    .map_err(|e| aws_error(slug, "archive the access point", e))?;
                tracing::info!(slug = %slug, access_point = %id, "kept the world's access point, tagged {}", objects::TAG_ARCHIVED);
            }
        }
        Ok(())
    }
}
