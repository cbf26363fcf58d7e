//! The Kubernetes objects of one world, built without I/O from its spec and
//! the driver's settings: the data claim, the Secret Tavern's init container
//! writes `Config/` from, the Deployment, the Service and (with Gateway API
//! routing) the HTTPRoute. The driver applies them; `tavern manifests world`
//! prints them.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, HTTPGetAction, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, Secret, SecretVolumeSource, SecurityContext,
    Service, ServicePort, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ApiResource, DynamicObject};
use serde_json::json;
use sha2::{Digest, Sha256};
use tavern_types::{InstanceId, Slug};

use crate::foundry_config::SeedConfig;
use crate::{InstanceSpec, Launch};

pub use crate::FOUNDRY_PORT;
/// The label that ties an object to its world (the slug).
pub const INSTANCE_LABEL: &str = "tavern.io/instance";
/// The world's id: a new world of an old slug is another world.
pub const INSTANCE_ID_LABEL: &str = "tavern.io/instance-id";
/// Which Tavern the objects belong to.
pub const INSTALLATION_LABEL: &str = "tavern.io/installation";
/// On a data claim kept after its world was removed: the slug it had.
pub const ARCHIVED_LABEL: &str = "tavern.io/archived-from";
/// The field manager of every object Tavern applies.
pub const FIELD_MANAGER: &str = "tavern";
/// The Secret's key that holds what the init container writes.
pub const SEED_KEY: &str = "config.json";
/// felddy's images run Foundry as `node` (uid and gid 1000).
pub const FOUNDRY_UID: i64 = 1000;
/// Where Tavern's own containers (the init container, the data agent)
/// mount a world's claim; Foundry's data is its `data/` directory.
pub const CLAIM_MOUNT: &str = "/claim";
pub const CLAIM_DATA: &str = "data";

/// How worlds' objects are made.
#[derive(Clone, Debug, PartialEq)]
pub struct KubernetesSettings {
    /// Where worlds' objects live.
    pub namespace: String,
    /// Which Tavern the objects belong to (label `tavern.io/installation`).
    pub installation: String,
    /// A release's image; `{version}` is replaced by the release.
    pub image: String,
    /// The `stub` release's image (the stand-in).
    pub stub_image: String,
    /// Tavern's own image: its init container writes `Config/`.
    pub tavern_image: String,
    /// The data claim's storage class (`None`: the cluster's default).
    pub storage_class: Option<String>,
    /// The data claim's size, e.g. `10Gi`.
    pub storage_size: String,
    /// A claim mounted read-only at `/data/Data/shared` in every world.
    pub shared_claim: Option<String>,
    /// The package library's claim (ReadOnlyMany or ReadWriteMany, holding
    /// Tavern's `DATA_DIR/packages`): each package a world uses is mounted
    /// read-only from it below `/tavern/packages`.
    pub packages_claim: Option<String>,
    pub cpu_request: String,
    pub memory_request: String,
    pub cpu_limit: String,
    pub memory_limit: String,
    /// Where players' traffic goes: through Tavern's proxy, or through the
    /// cluster's Gateway by an HTTPRoute per world.
    pub routes: Routes,
}

/// Who carries players' traffic to a world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routes {
    /// Tavern's own proxy forwards to each world's Service.
    Proxy,
    /// One HTTPRoute per world on this Gateway.
    Gateway(GatewayRoutes),
}

/// Where HTTPRoutes attach and where they point while a world sleeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayRoutes {
    pub gateway: String,
    /// The Gateway's namespace, when not the worlds' own.
    pub gateway_namespace: Option<String>,
    /// The Gateway's listener, when routes attach to one only.
    pub section: Option<String>,
    /// Tavern's Service (the standby page) and its port.
    pub standby_service: String,
    pub standby_port: u16,
}

/// Every object of one world.
#[derive(Clone, Debug)]
pub struct WorldObjects {
    pub claim: PersistentVolumeClaim,
    pub secret: Secret,
    pub deployment: Deployment,
    pub service: Service,
    pub route: Option<DynamicObject>,
}

/// The name of a world's Deployment, Service and HTTPRoute: a DNS-1035
/// label (it starts with a letter) of at most 63 characters. Long slugs
/// are shortened and keep a digest of the whole slug, so names stay apart.
pub fn object_name(slug: &Slug) -> String {
    let name = format!("world-{slug}");
    if name.len() <= 63 {
        return name;
    }
    let digest = hex::encode(Sha256::digest(slug.as_str().as_bytes()));
    let head = slug.as_str()[..47].trim_end_matches('-');
    format!("world-{head}-{}", &digest[..8])
}

/// The world's data claim: its own per world id, so that a new world of
/// an old slug never opens the data of the one that had it before.
pub fn claim_name(slug: &Slug, id: InstanceId) -> String {
    let id = id.to_string().replace('-', "");
    format!("{}-data-{}", object_name(slug), &id[id.len() - 12..])
}

/// The Secret the init container reads.
pub fn secret_name(slug: &Slug) -> String {
    format!("{}-config", object_name(slug))
}

/// The labels that find a world's objects.
pub fn selector_labels(settings: &KubernetesSettings, slug: &Slug) -> BTreeMap<String, String> {
    BTreeMap::from([
        (INSTANCE_LABEL.to_owned(), slug.to_string()),
        (INSTALLATION_LABEL.to_owned(), settings.installation.clone()),
    ])
}

/// The label selector of every world of this Tavern.
pub fn installation_selector(settings: &KubernetesSettings) -> String {
    format!(
        "{INSTANCE_LABEL},{INSTALLATION_LABEL}={}",
        settings.installation
    )
}

/// The label selector of one world's objects.
pub fn world_selector(settings: &KubernetesSettings, slug: &Slug) -> String {
    format!(
        "{INSTANCE_LABEL}={slug},{INSTALLATION_LABEL}={}",
        settings.installation
    )
}

fn labels(settings: &KubernetesSettings, spec: &InstanceSpec) -> BTreeMap<String, String> {
    let mut labels = selector_labels(settings, &spec.slug);
    labels.insert(INSTANCE_ID_LABEL.to_owned(), spec.id.to_string());
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        FIELD_MANAGER.to_owned(),
    );
    labels.insert("app.kubernetes.io/name".to_owned(), "foundryvtt".to_owned());
    labels
}

fn meta(name: String, settings: &KubernetesSettings, spec: &InstanceSpec) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(settings.namespace.clone()),
        labels: Some(labels(settings, spec)),
        ..Default::default()
    }
}

/// The image a world runs.
pub fn image_for(settings: &KubernetesSettings, launch: &Launch) -> Result<String, String> {
    match launch {
        Launch::Pod { release } if release == "stub" => Ok(settings.stub_image.clone()),
        Launch::Pod { release } => Ok(settings.image.replace("{version}", release)),
        _ => Err("it does not run in a pod".into()),
    }
}

/// `[/prefix]/api/status`, where Foundry answers its probes.
fn status_path(route_prefix: Option<&str>) -> String {
    match route_prefix {
        Some(p) => format!("/{}/api/status", p.trim_matches('/')),
        None => "/api/status".into(),
    }
}

fn probe(path: &str, period: i32, failures: Option<i32>) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: failures,
        ..Default::default()
    }
}

pub(crate) fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// A claim of one node's disk (ReadWriteOnce) of `size`.
pub(crate) fn claim_spec(size: &str, class: Option<String>) -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(vec!["ReadWriteOnce".into()]),
        storage_class_name: class,
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([(
                "storage".to_owned(),
                Quantity(size.to_owned()),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// YAML documents for `kubectl apply -f -`, after a comment.
pub(crate) fn yaml_documents(comment: &str, docs: &[serde_json::Value]) -> Result<String, String> {
    let mut out = comment.to_owned();
    for doc in docs {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(doc).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

fn quantities(cpu: &str, memory: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_owned(), Quantity(cpu.to_owned())),
        ("memory".to_owned(), Quantity(memory.to_owned())),
    ])
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

/// The library's packages a world uses, each version mounted read-only at
/// `/tavern/packages/<kind>/<id>/<version>` from the packages claim: game
/// systems and modules in Foundry's container (the init container links
/// them into `Data/`), world templates in the init container (it copies
/// them once).
fn package_mounts(
    settings: &KubernetesSettings,
    spec: &InstanceSpec,
    volumes: &mut Vec<Volume>,
) -> Result<(Vec<VolumeMount>, Vec<VolumeMount>), String> {
    use crate::packages::CONTAINER_LIBRARY;
    use tavern_foundry::manifest::PackageKind;
    let wanted = &spec.config.packages;
    if wanted.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let claim = settings.packages_claim.clone().ok_or_else(|| {
        "the world uses library packages and kubernetes.packages_claim is not set".to_owned()
    })?;
    volumes.push(Volume {
        name: "packages".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim,
            read_only: Some(true),
        }),
        ..Default::default()
    });
    let (mut foundry, mut init) = (Vec::new(), Vec::new());
    for p in wanted {
        let rel = p
            .rel_path()
            .ok_or_else(|| format!("the package name {} {} is not a folder", p.id, p.version))?;
        let rel = rel.to_string_lossy().into_owned();
        let m = VolumeMount {
            sub_path: Some(rel.clone()),
            ..mount("packages", &format!("{CONTAINER_LIBRARY}/{rel}"), true)
        };
        match p.kind {
            PackageKind::World => init.push(m),
            _ => foundry.push(m),
        }
    }
    Ok((foundry, init))
}

/// Every object of a world; `running` sets the Deployment's replicas.
pub fn world_objects(
    settings: &KubernetesSettings,
    spec: &InstanceSpec,
    running: bool,
) -> Result<WorldObjects, String> {
    let image = image_for(settings, &spec.launch)?;
    let name = object_name(&spec.slug);
    let cfg = &spec.config;
    let seed = serde_json::to_vec_pretty(&SeedConfig::from(cfg)).map_err(|e| e.to_string())?;
    // The pod is replaced when what it starts with changes.
    let seed_digest = hex::encode(Sha256::digest(&seed));

    let claim = PersistentVolumeClaim {
        metadata: meta(claim_name(&spec.slug, spec.id), settings, spec),
        spec: Some(claim_spec(
            &settings.storage_size,
            settings.storage_class.clone(),
        )),
        ..Default::default()
    };

    let secret = Secret {
        metadata: meta(secret_name(&spec.slug), settings, spec),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(SEED_KEY.to_owned(), ByteString(seed))])),
        ..Default::default()
    };

    let mut foundry_env = vec![
        env("FOUNDRY_HOSTNAME", cfg.hostname.clone()),
        env("FOUNDRY_PROXY_SSL", cfg.proxy_ssl.to_string()),
        // Tavern's init container wrote Config/; felddy keeps it.
        env("CONTAINER_PRESERVE_CONFIG", "true"),
    ];
    if let Some(port) = cfg.proxy_port {
        foundry_env.push(env("FOUNDRY_PROXY_PORT", port.to_string()));
    }
    if let Some(prefix) = &cfg.route_prefix {
        foundry_env.push(env("FOUNDRY_ROUTE_PREFIX", prefix.clone()));
    }
    let status = status_path(cfg.route_prefix.as_deref());
    // Foundry's data is the claim's `data/`, so that a restore can put a
    // new one beside it and swap (see `data-agent`).
    let mut foundry_mounts = vec![VolumeMount {
        sub_path: Some(CLAIM_DATA.into()),
        ..mount("data", "/data", false)
    }];
    let mut volumes = vec![
        Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&spec.slug, spec.id),
                read_only: None,
            }),
            ..Default::default()
        },
        Volume {
            name: "seed".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret_name(&spec.slug)),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    if let Some(shared) = &settings.shared_claim {
        foundry_mounts.push(mount("shared", "/data/Data/shared", true));
        volumes.push(Volume {
            name: "shared".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: shared.clone(),
                read_only: Some(true),
            }),
            ..Default::default()
        });
    }
    let (foundry_packages, init_packages) = package_mounts(settings, spec, &mut volumes)?;
    foundry_mounts.extend(foundry_packages);
    let mut init_mounts = vec![
        mount("data", CLAIM_MOUNT, false),
        mount("seed", "/seed", true),
    ];
    init_mounts.extend(init_packages);
    let init = Container {
        name: "config".into(),
        image: Some(settings.tavern_image.clone()),
        args: Some(vec![
            "foundry-config".into(),
            format!("--seed=/seed/{SEED_KEY}"),
            format!("--data={CLAIM_MOUNT}/{CLAIM_DATA}"),
        ]),
        volume_mounts: Some(init_mounts),
        security_context: Some(SecurityContext {
            run_as_user: Some(FOUNDRY_UID),
            run_as_group: Some(FOUNDRY_UID),
            run_as_non_root: Some(true),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let foundry = Container {
        name: "foundry".into(),
        image: Some(image),
        env: Some(foundry_env),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: i32::from(FOUNDRY_PORT),
            ..Default::default()
        }]),
        volume_mounts: Some(foundry_mounts),
        startup_probe: Some(probe(&status, 10, Some(60))),
        readiness_probe: Some(probe(&status, 10, None)),
        liveness_probe: Some(probe(&status, 30, None)),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&settings.cpu_request, &settings.memory_request)),
            limits: Some(quantities(&settings.cpu_limit, &settings.memory_limit)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let key = cfg.license_key.as_ref().map(|k| k.expose().to_owned());
    let pod_labels = labels(settings, spec);
    let deployment = Deployment {
        metadata: meta(name.clone(), settings, spec),
        spec: Some(DeploymentSpec {
            replicas: Some(i32::from(running)),
            // Never two pods on one volume or one license key.
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..Default::default()
            }),
            selector: LabelSelector {
                match_labels: Some(selector_labels(settings, &spec.slug)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(
                        "tavern.io/config-digest".to_owned(),
                        seed_digest[..16].to_owned(),
                    )])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    // Foundry signs its license for the host it runs on:
                    // one stable host per license key, wherever it goes.
                    hostname: Some(crate::hostname_for(key.as_deref())),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    // Foundry flushes its worlds on SIGTERM.
                    termination_grace_period_seconds: Some(30),
                    security_context: Some(PodSecurityContext {
                        fs_group: Some(FOUNDRY_UID),
                        ..Default::default()
                    }),
                    init_containers: Some(vec![init]),
                    containers: vec![foundry],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };

    let service = Service {
        metadata: meta(name.clone(), settings, spec),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(settings, &spec.slug)),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(FOUNDRY_PORT),
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };

    let route = match &settings.routes {
        Routes::Proxy => None,
        Routes::Gateway(gateway) => Some(http_route(settings, gateway, spec, running)),
    };
    Ok(WorldObjects {
        claim,
        secret,
        deployment,
        service,
        route,
    })
}

/// Tavern's own Service, which shows the standby page of a sleeping world.
pub fn standby_backend(gateway: &GatewayRoutes) -> serde_json::Value {
    json!({"kind": "Service", "name": gateway.standby_service, "port": gateway.standby_port})
}

/// The port Tavern's data agent listens on in its pod.
pub const AGENT_PORT: u16 = 8081;
/// On a data agent's pod and Secret: the world whose claim it serves.
pub const AGENT_LABEL: &str = "tavern.io/data-agent";

/// The name of a world's data agent (its pod and its token's Secret).
pub fn agent_name(slug: &Slug) -> String {
    format!("{}-agent", object_name(slug))
}

/// The short-lived pod through which Tavern reads and writes a world's
/// claim (`tavern data-agent`, Tavern's image), and the Secret of the token
/// it asks for. `node`: where the world's pod runs, so that a claim of one
/// node is mounted there.
pub fn agent_objects(
    settings: &KubernetesSettings,
    slug: &Slug,
    claim: &str,
    token: &str,
    node: Option<String>,
) -> (Secret, Pod) {
    let name = agent_name(slug);
    // Not the world's own labels: its pods are not the world's.
    let labels = BTreeMap::from([
        (AGENT_LABEL.to_owned(), slug.to_string()),
        (INSTALLATION_LABEL.to_owned(), settings.installation.clone()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            FIELD_MANAGER.to_owned(),
        ),
    ]);
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(settings.namespace.clone()),
        labels: Some(labels),
        ..Default::default()
    };
    let secret = Secret {
        metadata: meta.clone(),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            "token".to_owned(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    let agent = Container {
        name: "agent".into(),
        image: Some(settings.tavern_image.clone()),
        args: Some(vec![
            "data-agent".into(),
            format!("--claim={CLAIM_MOUNT}"),
            format!("--listen=0.0.0.0:{AGENT_PORT}"),
            "--token-file=/agent/token".into(),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("agent".into()),
            container_port: i32::from(AGENT_PORT),
            ..Default::default()
        }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz".into()),
                port: IntOrString::String("agent".into()),
                ..Default::default()
            }),
            period_seconds: Some(1),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount("data", CLAIM_MOUNT, false),
            mount("token", "/agent", true),
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = Pod {
        metadata: meta,
        spec: Some(PodSpec {
            node_name: node,
            restart_policy: Some("Never".into()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_user: Some(FOUNDRY_UID),
                run_as_group: Some(FOUNDRY_UID),
                run_as_non_root: Some(true),
                fs_group: Some(FOUNDRY_UID),
                ..Default::default()
            }),
            containers: vec![agent],
            volumes: Some(vec![
                Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: claim.to_owned(),
                        read_only: None,
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "token".into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(name),
                        default_mode: Some(0o440),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    };
    (secret, pod)
}

/// A world's objects as YAML documents, for review or a GitOps
/// repository (`tavern manifests world`). The Secret is shown without its
/// data: it holds the license key, which never leaves Tavern; Tavern writes
/// it at each start.
pub fn render_world(
    settings: &KubernetesSettings,
    spec: &InstanceSpec,
    running: bool,
) -> Result<String, String> {
    let o = world_objects(settings, spec, running)?;
    let mut secret = o.secret;
    secret.data = None;
    secret.metadata.annotations = Some(BTreeMap::from([(
        "tavern.io/note".to_owned(),
        format!(
            "Tavern writes {SEED_KEY} (the world's settings, its license key, admin key hash and storage key) at each start; it is not shown"
        ),
    )]));
    let docs = [
        serde_json::to_value(&o.claim),
        serde_json::to_value(&secret),
        serde_json::to_value(&o.service),
        serde_json::to_value(&o.deployment),
    ]
    .into_iter()
    .chain(o.route.as_ref().map(serde_json::to_value))
    .collect::<Result<Vec<_>, _>>()
    .map_err(|e| e.to_string())?;
    yaml_documents(
        &format!(
            "# The Kubernetes objects of the world {}, as Tavern applies them (field manager {FIELD_MANAGER}).\n",
            spec.slug
        ),
        &docs,
    )
}

/// Gateway API's HTTPRoute (`gateway.networking.k8s.io/v1`).
pub fn http_route_resource() -> ApiResource {
    ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    }
}

/// The world's HTTPRoute: its host (or, with path routing, its prefix on
/// the bare domain) to its own Service while it runs, to Tavern's standby
/// Service otherwise.
fn http_route(
    settings: &KubernetesSettings,
    gateway: &GatewayRoutes,
    spec: &InstanceSpec,
    running: bool,
) -> DynamicObject {
    let name = object_name(&spec.slug);
    let mut parent = json!({
        "group": "gateway.networking.k8s.io",
        "kind": "Gateway",
        "name": gateway.gateway,
    });
    if let Some(ns) = &gateway.gateway_namespace {
        parent["namespace"] = json!(ns);
    }
    if let Some(section) = &gateway.section {
        parent["sectionName"] = json!(section);
    }
    // Gateway API matches prefixes by whole path segments: `/crypt` is
    // `/crypt` and `/crypt/…`, never `/cryptic`.
    let path = match &spec.config.route_prefix {
        Some(p) => format!("/{}", p.trim_matches('/')),
        None => "/".into(),
    };
    let backend = if running {
        json!({"kind": "Service", "name": name, "port": FOUNDRY_PORT})
    } else {
        standby_backend(gateway)
    };
    let mut route = DynamicObject::new(&name, &http_route_resource()).within(&settings.namespace);
    route.metadata.labels = Some(labels(settings, spec));
    route.data = json!({
        "spec": {
            "parentRefs": [parent],
            "hostnames": [spec.config.hostname],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": path}}],
                "backendRefs": [backend],
            }],
        }
    });
    route
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_1035_labels_and_stay_apart() {
        let short = Slug::parse("9lives").unwrap();
        assert_eq!(object_name(&short), "world-9lives");
        let long_a = Slug::parse(&format!("{}a", "x".repeat(62))).unwrap();
        let long_b = Slug::parse(&format!("{}b", "x".repeat(62))).unwrap();
        for slug in [&long_a, &long_b] {
            let name = object_name(slug);
            assert!(name.len() <= 63, "{name}");
            assert!(name.starts_with("world-"));
        }
        assert_ne!(object_name(&long_a), object_name(&long_b));
        let dashed = Slug::parse(&format!("{}-{}", "x".repeat(46), "y".repeat(16))).unwrap();
        assert!(
            !object_name(&dashed).contains("--"),
            "{}",
            object_name(&dashed)
        );
    }

    #[test]
    fn a_new_world_of_an_old_slug_gets_its_own_claim() {
        let slug = Slug::parse("dragon").unwrap();
        let (a, b) = (InstanceId::new(), InstanceId::new());
        assert_ne!(claim_name(&slug, a), claim_name(&slug, b));
        assert!(claim_name(&slug, a).starts_with("world-dragon-data-"));
    }
}
