//! What the ecs driver asks AWS for, decided without asking: the names and
//! tags of a world's task definition, service, access point, seed secret,
//! target group and listener rule, and the containers of its task.
//! Everything here is pure; `super` sends it.

use std::collections::BTreeMap;

use aws_sdk_ecs::types as ecs;
use sha2::Digest as _;
use tavern_types::Slug;

use crate::foundry_config::SeedConfig;
use crate::{FOUNDRY_PORT, InstanceSpec, Launch};

/// The tag naming a world's slug on every object Tavern makes for it.
pub const TAG_INSTANCE: &str = "tavern:instance";
/// The tag naming the Tavern that made an object (several may share an
/// account and a cluster).
pub const TAG_INSTALLATION: &str = "tavern:installation";
/// The tag naming the world's id (a new world of an old slug is another).
pub const TAG_INSTANCE_ID: &str = "tavern:instance-id";
/// The tag marking the data agents' access point and task definition
/// (they are not a world's).
pub const TAG_AGENT: &str = "tavern:agent";
/// The tag a destroyed world's kept access point carries instead of
/// `tavern:instance` (its data was not deleted: no backup held it).
pub const TAG_ARCHIVED: &str = "tavern:archived";
/// Who started a data agent's task (ECS's `startedBy`).
pub const AGENT_STARTED_BY: &str = "tavern-data-agent";
/// Where every world's directory is on the file system.
pub const WORLDS_ROOT: &str = "/worlds";
/// Where the world's access point is mounted in its init container.
pub const INIT_DATA: &str = "/data";
/// The uid and gid Foundry runs as in felddy's images (v13: `node`), and
/// the owner of every file on a world's access point.
pub const FOUNDRY_UID: i64 = 1000;
/// Where Tavern's image keeps the library that gives Foundry a stable host
/// name (`tavern-hostname`); the init container copies it onto the world's
/// data, where Foundry's container preloads it.
pub const HOSTNAME_LIBRARY: &str = "/usr/local/lib/tavern/libtavern_hostname.so";
/// Where the copy is, in Foundry's container.
pub const PRELOADED: &str = "/data/.tavern/libtavern_hostname.so";
/// The memory the init container may count on (MiB, a soft limit); the
/// rest of the task's is Foundry's.
pub const INIT_MEMORY: i32 = 64;
/// The environment variable the init container reads the seed from
/// (a Secrets Manager secret, never in the task definition).
pub use crate::foundry_config::SEED_ENV;

/// How the ecs driver makes worlds: where (cluster, network, file system)
/// and with what (images, roles, sizes, routing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcsSettings {
    /// Names this Tavern's objects (tag `tavern:installation`).
    pub installation: String,
    /// The ECS cluster's name or ARN.
    pub cluster: String,
    /// The subnets and security groups of the worlds' tasks (awsvpc).
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
    /// The VPC of the subnets: the worlds' target groups are made there.
    pub vpc_id: String,
    /// The EFS file system holding every world's data under `/worlds`.
    pub file_system_id: String,
    /// An access point of shared assets, mounted read-only at
    /// `/data/Data/shared` in every world.
    pub shared_access_point: Option<String>,
    /// The ALB's listener the worlds' host rules go on; unset, Tavern's
    /// proxy carries the players (it reaches the tasks in the VPC).
    pub listener_arn: Option<String>,
    /// Tavern's own target group: a sleeping world's rule forwards there
    /// (the standby page).
    pub standby_target_group_arn: Option<String>,
    /// The first priority a world's rule may take on the listener.
    pub rule_priority_from: i32,
    /// The role ECS pulls images, writes logs and reads the seed with.
    pub execution_role_arn: String,
    /// The role of the world's task itself (none: it needs no AWS rights).
    pub task_role_arn: Option<String>,
    /// A release's image; `{version}` is replaced by the release.
    pub image: String,
    /// The `stub` release's image.
    pub stub_image: String,
    /// Tavern's own image: the init container and the data agent.
    pub tavern_image: String,
    /// Fargate's task size: CPU units and MiB.
    pub cpu: String,
    pub memory: String,
    /// The CloudWatch Logs group the tasks write to (stream prefix
    /// `tavern`); its region is the clients'.
    pub log_group: String,
    pub region: String,
}

/// A short digest of this installation and a slug, for the names AWS
/// limits to 32 characters (target groups).
fn digest(settings: &EcsSettings, slug: &Slug) -> String {
    let d = sha2::Sha256::digest(format!("{}/{slug}", settings.installation));
    hex::encode(d)[..20].to_owned()
}

/// The world's task definition family and service name.
pub fn service_name(settings: &EcsSettings, slug: &Slug) -> String {
    format!("tavern-{}-{slug}", settings.installation)
}

/// The family of the data agents' task definition (one per installation:
/// a world's directory is named at each run).
pub fn agent_family(settings: &EcsSettings) -> String {
    format!("tavern-{}_data-agent", settings.installation)
}

/// The world's target group (at most 32 characters, letters, digits and
/// hyphens): found again by its tags, named by a digest.
pub fn target_group_name(settings: &EcsSettings, slug: &Slug) -> String {
    format!("tavern-{}", digest(settings, slug))
}

/// The Secrets Manager secret the world's init container reads its seed
/// from.
pub fn seed_secret_name(settings: &EcsSettings, slug: &Slug) -> String {
    format!("tavern/{}/{slug}/seed", settings.installation)
}

/// Where the world's data lives on the file system: its own directory,
/// so that a new world of an old slug starts empty.
pub fn data_root(spec: &InstanceSpec) -> String {
    format!("{WORLDS_ROOT}/{}", spec.id)
}

/// The tags of every object of a world.
pub fn tags(settings: &EcsSettings, spec: &InstanceSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TAG_INSTANCE.to_owned(), spec.slug.to_string()),
        (TAG_INSTALLATION.to_owned(), settings.installation.clone()),
        (TAG_INSTANCE_ID.to_owned(), spec.id.to_string()),
    ])
}

/// Whether `tags` are this installation's, and which world's: the slug.
pub fn owner(settings: &EcsSettings, tags: &BTreeMap<String, String>) -> Option<Slug> {
    if tags.get(TAG_INSTALLATION) != Some(&settings.installation) || tags.contains_key(TAG_AGENT) {
        return None;
    }
    Slug::parse(tags.get(TAG_INSTANCE)?).ok()
}

/// The image a world's task runs.
pub fn image_for(settings: &EcsSettings, launch: &Launch) -> Result<String, String> {
    match launch {
        Launch::Task { release } if release == "stub" => Ok(settings.stub_image.clone()),
        Launch::Task { release } => Ok(settings.image.replace("{version}", release)),
        _ => Err("it does not run as an ECS task".into()),
    }
}

/// The health check path of a world's target group.
pub fn status_path(route_prefix: Option<&str>) -> String {
    match route_prefix {
        Some(p) => format!("/{}/api/status", p.trim_matches('/')),
        None => "/api/status".into(),
    }
}

/// The seed the init container writes `Config/` from: the same document
/// as Kubernetes' Secret holds.
pub fn seed(spec: &InstanceSpec) -> Result<String, String> {
    serde_json::to_string(&SeedConfig::from(&spec.config)).map_err(|e| e.to_string())
}

fn env(name: &str, value: impl Into<String>) -> ecs::KeyValuePair {
    ecs::KeyValuePair::builder()
        .name(name)
        .value(value.into())
        .build()
}

fn mount(volume: &str, path: &str, read_only: bool) -> ecs::MountPoint {
    ecs::MountPoint::builder()
        .source_volume(volume)
        .container_path(path)
        .read_only(read_only)
        .build()
}

pub(crate) fn logs(settings: &EcsSettings) -> Result<ecs::LogConfiguration, String> {
    ecs::LogConfiguration::builder()
        .log_driver(ecs::LogDriver::Awslogs)
        .options("awslogs-group", &settings.log_group)
        .options("awslogs-region", &settings.region)
        .options("awslogs-stream-prefix", "tavern")
        .build()
        .map_err(|e| e.to_string())
}

/// An EFS volume through an access point, encrypted in transit.
pub fn efs_volume(
    settings: &EcsSettings,
    name: &str,
    access_point: &str,
) -> Result<ecs::Volume, String> {
    let efs = ecs::EfsVolumeConfiguration::builder()
        .file_system_id(&settings.file_system_id)
        .transit_encryption(ecs::EfsTransitEncryption::Enabled)
        .authorization_config(
            ecs::EfsAuthorizationConfig::builder()
                .access_point_id(access_point)
                .iam(ecs::EfsAuthorizationConfigIam::Enabled)
                .build(),
        )
        .build()
        .map_err(|e| e.to_string())?;
    Ok(ecs::Volume::builder()
        .name(name)
        .efs_volume_configuration(efs)
        .build())
}

/// A world's task: its containers and volumes, and what they are made
/// from, written out in a fixed order (the SDK's types hold maps whose
/// order changes from one value to the next).
#[derive(Clone, Debug)]
pub struct WorldTask {
    pub containers: Vec<ecs::ContainerDefinition>,
    pub volumes: Vec<ecs::Volume>,
    pub made_of: String,
}

/// The world's task: Tavern's init container writes `Config/` onto the
/// world's access point from the seed secret, then Foundry (felddy's image,
/// or the stand-in's) starts on the same access point.
pub fn world_task(
    settings: &EcsSettings,
    spec: &InstanceSpec,
    access_point: &str,
    seed_secret_arn: &str,
) -> Result<WorldTask, String> {
    let image = image_for(settings, &spec.launch)?;
    let cfg = &spec.config;
    let init = ecs::ContainerDefinition::builder()
        .name("config")
        .image(&settings.tavern_image)
        .essential(false)
        .command("foundry-config")
        .command(format!("--data={INIT_DATA}"))
        .command(format!("--preload={HOSTNAME_LIBRARY}"))
        .secrets(
            ecs::Secret::builder()
                .name(SEED_ENV)
                .value_from(seed_secret_arn)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .user(format!("{FOUNDRY_UID}:{FOUNDRY_UID}"))
        .readonly_root_filesystem(true)
        .memory_reservation(INIT_MEMORY)
        .mount_points(mount("data", INIT_DATA, false))
        .log_configuration(logs(settings)?)
        .build();
    // Fargate sets no host name (awsvpc): each task has its own, and
    // Foundry would ask for its license to be signed again at every start.
    // The preloaded library answers the key's stable one instead.
    let key = cfg.license_key.as_ref().map(|k| k.expose().to_owned());
    let mut foundry = ecs::ContainerDefinition::builder()
        .name("foundry")
        .image(image)
        .essential(true)
        .environment(env("LD_PRELOAD", PRELOADED))
        .environment(env("TAVERN_HOSTNAME", crate::hostname_for(key.as_deref())))
        .environment(env("FOUNDRY_HOSTNAME", cfg.hostname.clone()))
        .environment(env("FOUNDRY_PROXY_SSL", cfg.proxy_ssl.to_string()))
        // Tavern's init container wrote Config/; felddy keeps it.
        .environment(env("CONTAINER_PRESERVE_CONFIG", "true"))
        .port_mappings(
            ecs::PortMapping::builder()
                .container_port(i32::from(FOUNDRY_PORT))
                .protocol(ecs::TransportProtocol::Tcp)
                .build(),
        )
        .mount_points(mount("data", "/data", false))
        .depends_on(
            ecs::ContainerDependency::builder()
                .container_name("config")
                .condition(ecs::ContainerCondition::Success)
                .build()
                .map_err(|e| e.to_string())?,
        )
        // Foundry flushes its worlds on SIGTERM.
        .stop_timeout(30)
        .memory_reservation(
            settings
                .memory
                .parse::<i32>()
                .map_err(|_| format!("{:?} is not a memory size in MiB", settings.memory))?
                - INIT_MEMORY,
        )
        .log_configuration(logs(settings)?);
    if let Some(port) = cfg.proxy_port {
        foundry = foundry.environment(env("FOUNDRY_PROXY_PORT", port.to_string()));
    }
    if let Some(prefix) = &cfg.route_prefix {
        foundry = foundry.environment(env("FOUNDRY_ROUTE_PREFIX", prefix.clone()));
    }
    let mut volumes = vec![efs_volume(settings, "data", access_point)?];
    if let Some(shared) = &settings.shared_access_point {
        foundry = foundry.mount_points(mount("shared", "/data/Data/shared", true));
        volumes.push(efs_volume(settings, "shared", shared)?);
    }
    if !cfg.packages.is_empty() {
        return Err("the package library is not available to worlds on ECS yet".into());
    }
    let foundry = foundry.build();
    let made_of = format!(
        "{:?}|{:?}|{:?}|{access_point}|{seed_secret_arn}|{:?}|{}|{}|{}",
        foundry.image(),
        foundry.environment(),
        foundry.mount_points(),
        settings.shared_access_point,
        settings.tavern_image,
        settings.log_group,
        settings.region,
    );
    Ok(WorldTask {
        containers: vec![init, foundry],
        volumes,
        made_of,
    })
}

/// A digest of what the world's task is made of: a task definition is
/// registered again (and the service moved to it) only when it changes.
pub fn task_digest(task: &WorldTask, settings: &EcsSettings) -> String {
    let text = format!(
        "{}|{}|{}|{:?}|{}",
        task.made_of,
        settings.cpu,
        settings.memory,
        settings.task_role_arn,
        settings.execution_role_arn
    );
    hex::encode(sha2::Sha256::digest(text))[..16].to_owned()
}

/// The tag carrying [`task_digest`] on a task definition.
pub const TAG_TASK_DIGEST: &str = "tavern:task-digest";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FoundryConfig;

    pub(crate) fn settings() -> EcsSettings {
        EcsSettings {
            installation: "a1b2c3d4".into(),
            cluster: "tavern".into(),
            subnets: vec!["subnet-1".into()],
            security_groups: vec!["sg-1".into()],
            assign_public_ip: false,
            vpc_id: "vpc-1".into(),
            file_system_id: "fs-1".into(),
            shared_access_point: None,
            listener_arn: None,
            standby_target_group_arn: None,
            rule_priority_from: 1000,
            execution_role_arn: "arn:aws:iam::123456789012:role/exec".into(),
            task_role_arn: None,
            image: "felddy/foundryvtt:{version}".into(),
            stub_image: "tavern-foundry-stub:latest".into(),
            tavern_image: "tavern:latest".into(),
            cpu: "1024".into(),
            memory: "2048".into(),
            log_group: "/tavern/worlds".into(),
            region: "eu-west-1".into(),
        }
    }

    fn spec(slug: &str, release: &str) -> InstanceSpec {
        InstanceSpec {
            id: tavern_types::InstanceId::new(),
            slug: Slug::parse(slug).unwrap(),
            launch: Launch::Task {
                release: release.into(),
            },
            config: FoundryConfig {
                hostname: format!("{slug}.example.org"),
                route_prefix: Some("game".into()),
                proxy_ssl: true,
                proxy_port: Some(443),
                license_key: None,
                signed_license: None,
                admin_hash: None,
                aws_config: None,
                packages: Vec::new(),
            },
        }
    }

    #[test]
    fn a_world_with_library_packages_is_refused_saying_why() {
        let mut w = spec("lib", "stub");
        w.config.packages = vec![crate::packages::PackageLink {
            kind: tavern_foundry::manifest::PackageKind::Module,
            id: "lantern".into(),
            version: "1.0".into(),
        }];
        let e = world_task(&settings(), &w, "fsap-1", "arn:secret").unwrap_err();
        assert!(e.contains("package library") && e.contains("ECS"), "{e}");
    }

    #[test]
    fn names_fit_aws_limits_and_stay_apart() {
        let s = settings();
        let long = "a".repeat(Slug::MAX_LEN);
        let long = Slug::parse(&long).unwrap();
        let tg = target_group_name(&s, &long);
        assert!(tg.len() <= 32, "{tg}");
        assert!(tg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        let other = EcsSettings {
            installation: "ffff0000".into(),
            ..settings()
        };
        assert_ne!(tg, target_group_name(&other, &long));
        // Services: up to 255 letters, digits, hyphens and underscores.
        let svc = service_name(&s, &long);
        assert!(svc.len() <= 255);
        assert!(
            svc.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn the_task_seeds_from_its_secret_and_runs_the_release_on_the_access_point() {
        let s = settings();
        let w = spec("alpha", "13.351");
        let task = world_task(&s, &w, "fsap-1", "arn:secret").unwrap();
        let [init, foundry] = &task.containers[..] else {
            panic!("two containers")
        };
        assert_eq!(init.image(), Some("tavern:latest"));
        assert_eq!(init.essential(), Some(false));
        assert_eq!(init.secrets()[0].name(), SEED_ENV);
        assert_eq!(init.secrets()[0].value_from(), "arn:secret");
        // No secret is in the task definition's plain environment.
        assert!(init.environment().is_empty());
        assert_eq!(foundry.image(), Some("felddy/foundryvtt:13.351"));
        let env: BTreeMap<_, _> = foundry
            .environment()
            .iter()
            .map(|kv| (kv.name().unwrap(), kv.value().unwrap()))
            .collect();
        assert_eq!(env["FOUNDRY_HOSTNAME"], "alpha.example.org");
        assert_eq!(env["FOUNDRY_ROUTE_PREFIX"], "game");
        assert_eq!(env["FOUNDRY_PROXY_PORT"], "443");
        assert_eq!(
            foundry.depends_on()[0].condition(),
            &ecs::ContainerCondition::Success
        );
        let efs = task.volumes[0].efs_volume_configuration().unwrap();
        assert_eq!(
            efs.authorization_config().and_then(|a| a.access_point_id()),
            Some("fsap-1")
        );
        assert_eq!(
            image_for(&s, &spec("beta", "stub").launch).unwrap(),
            "tavern-foundry-stub:latest"
        );
    }

    #[test]
    fn the_health_check_asks_the_status_under_the_route_prefix() {
        assert_eq!(status_path(None), "/api/status");
        assert_eq!(status_path(Some("game")), "/game/api/status");
        assert_eq!(status_path(Some("/game/")), "/game/api/status");
    }

    #[test]
    fn shared_assets_are_mounted_read_only_in_foundry_alone() {
        let s = EcsSettings {
            shared_access_point: Some("fsap-shared".into()),
            ..settings()
        };
        let w = spec("alpha", "13.351");
        let task = world_task(&s, &w, "fsap-1", "arn:secret").unwrap();
        let [init, foundry] = &task.containers[..] else {
            panic!("two containers")
        };
        let shared: Vec<_> = foundry
            .mount_points()
            .iter()
            .filter(|m| m.source_volume() == Some("shared"))
            .collect();
        assert_eq!(shared.len(), 1);
        assert_eq!(shared[0].container_path(), Some("/data/Data/shared"));
        assert_eq!(shared[0].read_only(), Some(true));
        assert!(
            init.mount_points()
                .iter()
                .all(|m| m.source_volume() == Some("data"))
        );
        let volume = task
            .volumes
            .iter()
            .find(|v| v.name() == Some("shared"))
            .unwrap();
        let efs = volume.efs_volume_configuration().unwrap();
        assert_eq!(
            efs.authorization_config().and_then(|a| a.access_point_id()),
            Some("fsap-shared")
        );
        assert_eq!(
            efs.transit_encryption(),
            Some(&ecs::EfsTransitEncryption::Enabled)
        );
        // Without it, no such volume; and the task is another one.
        let plain = world_task(&settings(), &w, "fsap-1", "arn:secret").unwrap();
        assert!(plain.volumes.iter().all(|v| v.name() != Some("shared")));
        assert_ne!(task_digest(&task, &s), task_digest(&plain, &settings()));
    }

    #[test]
    fn the_digest_changes_with_what_the_task_runs_and_only_then() {
        let s = settings();
        let w = spec("alpha", "13.351");
        let digest = |w: &InstanceSpec, s: &EcsSettings| {
            task_digest(&world_task(s, w, "fsap-1", "arn:secret").unwrap(), s)
        };
        // Made again (the SDK's maps in another order), the same.
        for _ in 0..20 {
            assert_eq!(digest(&w, &s), digest(&w, &s));
        }
        let mut newer = w.clone();
        newer.launch = Launch::Task {
            release: "13.352".into(),
        };
        assert_ne!(digest(&w, &s), digest(&newer, &s));
        let bigger = EcsSettings {
            memory: "4096".into(),
            ..settings()
        };
        assert_ne!(digest(&w, &s), digest(&w, &bigger));
    }

    #[test]
    fn another_installation_s_objects_and_agents_are_not_a_world() {
        let s = settings();
        let w = spec("alpha", "stub");
        let mut t = tags(&s, &w);
        assert_eq!(owner(&s, &t).unwrap().as_str(), "alpha");
        t.insert(TAG_AGENT.into(), "true".into());
        assert!(owner(&s, &t).is_none());
        let other = EcsSettings {
            installation: "ffff0000".into(),
            ..settings()
        };
        assert!(owner(&other, &tags(&s, &w)).is_none());
    }
}
