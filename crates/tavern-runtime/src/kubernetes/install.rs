//! Tavern's own objects on a cluster, as `tavern manifests install` prints
//! them (in the `linkerd install | kubectl apply -f -` manner): its
//! namespace, a service account with the few rights it needs there, its
//! Deployment and Service, and with Gateway API routing the catch-all
//! HTTPRoute of its domain. Built without I/O, from [`InstallOptions`].

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, HTTPHeader, Namespace, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SecretKeySelector, SecretVolumeSource, SecurityContext, Service,
    ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::objects::{FIELD_MANAGER, claim_spec, env, http_route_resource, yaml_documents};

/// What `tavern manifests install` is asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct InstallOptions {
    /// Tavern's namespace; its worlds live there too.
    pub namespace: String,
    /// Tavern's image (the same one runs each world's init container).
    pub image: String,
    pub replicas: u32,
    /// Worlds live at `<slug>.<domain>`.
    pub domain: String,
    /// How players reach Tavern, e.g. `https://tavern.example.org`.
    pub public_url: Option<String>,
    /// A Secret whose key `url` is the PostgreSQL store's URL; without
    /// one, a single replica keeps SQLite on its data claim.
    pub store_url_secret: Option<String>,
    /// A Secret whose key `secret.key` is the 32-byte sealing key every
    /// replica shares; without one, a single replica makes its own on its
    /// data claim.
    pub secret_key_secret: Option<String>,
    /// Size of Tavern's own data claim (a single replica without both
    /// Secrets).
    pub data_size: String,
    /// Routes through the cluster's Gateway (its name and namespace) rather
    /// than Tavern's proxy.
    pub gateway: Option<(String, Option<String>)>,
    /// Offer the `stub` release (the stand-in), for a trial.
    pub stub_release: bool,
    /// A claim of this size for the package library (ReadWriteMany: Tavern
    /// writes it, worlds' pods mount their versions read-only).
    pub packages_size: Option<String>,
}

/// The package library's claim, when asked for.
const PACKAGES_CLAIM: &str = "tavern-packages";

/// The name of Tavern's objects.
pub const NAME: &str = "tavern";
/// The Lease the replicas elect their leader by.
pub const LEASE: &str = "tavern-leader";
const PORT: u16 = 8080;
const DATA_DIR: &str = "/var/lib/tavern";
const SECRET_KEY_DIR: &str = "/etc/tavern/secret-key";
/// The unprivileged user of distroless images.
const UID: i64 = 65532;

/// Why the options cannot make a working installation.
pub fn check(options: &InstallOptions) -> Result<(), String> {
    if options.replicas == 0 {
        return Err("--replicas must be at least 1".into());
    }
    if options.replicas > 1 {
        if options.store_url_secret.is_none() {
            return Err(format!(
                "{} replicas share one store: give --store-url-secret NAME, a Secret whose key `url` is a postgres:// URL (SQLite serves one replica only)",
                options.replicas
            ));
        }
        if options.secret_key_secret.is_none() {
            return Err(format!(
                "{} replicas seal secrets with one key: give --secret-key-secret NAME, a Secret whose key `secret.key` holds 32 random bytes",
                options.replicas
            ));
        }
    }
    Ok(())
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), NAME.to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            FIELD_MANAGER.to_owned(),
        ),
    ])
}

fn meta(options: &InstallOptions, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(options.namespace.clone()),
        labels: Some(labels()),
        ..Default::default()
    }
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..Default::default()
    }
}

fn probe(domain: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".into()),
            port: IntOrString::String("http".into()),
            // The bare domain is where Tavern answers its API.
            http_headers: Some(vec![HTTPHeader {
                name: "Host".into(),
                value: domain.to_owned(),
            }]),
            ..Default::default()
        }),
        period_seconds: Some(period),
        ..Default::default()
    }
}

/// Every object of Tavern's installation, as YAML documents ready for
/// `kubectl apply -f -`.
pub fn render(options: &InstallOptions) -> Result<String, String> {
    yaml_documents(
        &format!(
            "# Tavern on Kubernetes: {} replica(s) in the namespace {}, worlds at <slug>.{}.\n\
             # Apply with: tavern manifests install … | kubectl apply -f -\n",
            options.replicas, options.namespace, options.domain
        ),
        &objects(options)?,
    )
}

/// The objects, in the order they are applied.
pub fn objects(options: &InstallOptions) -> Result<Vec<serde_json::Value>, String> {
    check(options)?;
    let to_json = |v: serde_json::Result<serde_json::Value>| v.map_err(|e| e.to_string());
    let mut docs = vec![
        to_json(serde_json::to_value(Namespace {
            metadata: ObjectMeta {
                name: Some(options.namespace.clone()),
                labels: Some(labels()),
                ..Default::default()
            },
            ..Default::default()
        }))?,
        to_json(serde_json::to_value(ServiceAccount {
            metadata: meta(options, NAME),
            ..Default::default()
        }))?,
    ];
    let mut rules = vec![
        // Each world's objects.
        rule(
            "",
            &["persistentvolumeclaims", "secrets", "services"],
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        rule(
            "apps",
            &["deployments"],
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        // Worlds' pods (whether they run, their logs) and the data
        // agents' pods that backups and restores read and write claims by.
        rule(
            "",
            &["pods"],
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        rule("", &["pods/log"], &["get"]),
        // The leader election.
        rule(
            "coordination.k8s.io",
            &["leases"],
            &["get", "create", "update", "patch"],
        ),
    ];
    if options.gateway.is_some() {
        rules.push(rule(
            "gateway.networking.k8s.io",
            &["httproutes"],
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ));
    }
    docs.push(to_json(serde_json::to_value(Role {
        metadata: meta(options, NAME),
        rules: Some(rules),
    }))?);
    docs.push(to_json(serde_json::to_value(RoleBinding {
        metadata: meta(options, NAME),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: NAME.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: NAME.into(),
            namespace: Some(options.namespace.clone()),
            ..Default::default()
        }]),
    }))?);

    // Tavern's data: a claim of its own where a replica keeps SQLite or its
    // sealing key; scratch space where the cluster's Secrets hold both.
    let shared_state = options.store_url_secret.is_some() && options.secret_key_secret.is_some();
    let data_volume = if shared_state {
        Volume {
            name: "data".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }
    } else {
        docs.push(to_json(serde_json::to_value(PersistentVolumeClaim {
            metadata: meta(options, "tavern-data"),
            spec: Some(claim_spec(&options.data_size, None)),
            ..Default::default()
        }))?);
        Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: "tavern-data".into(),
                read_only: None,
            }),
            ..Default::default()
        }
    };

    let mut environment = vec![
        env("TAVERN_SERVER_DOMAIN", options.domain.clone()),
        env("TAVERN_RUNTIME_KIND", "kubernetes"),
        env("TAVERN_KUBERNETES_NAMESPACE", options.namespace.clone()),
        env("TAVERN_KUBERNETES_TAVERN_IMAGE", options.image.clone()),
        env("TAVERN_KUBERNETES_LEASE", LEASE),
        env("TAVERN_LOG_FORMAT", "json"),
        EnvVar {
            name: "TAVERN_KUBERNETES_IDENTITY".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    if let Some(url) = &options.public_url {
        environment.push(env("TAVERN_SERVER_PUBLIC_URL", url.clone()));
    }
    if options.stub_release {
        environment.push(env("TAVERN_RUNTIME_STUB_RELEASE", "true"));
    }
    if let Some(secret) = &options.store_url_secret {
        environment.push(EnvVar {
            name: "TAVERN_STORE_URL".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.clone(),
                    key: "url".into(),
                    optional: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if let Some((gateway, gateway_namespace)) = &options.gateway {
        environment.push(env("TAVERN_KUBERNETES_ROUTES", "gateway"));
        environment.push(env("TAVERN_KUBERNETES_GATEWAY", gateway.clone()));
        if let Some(ns) = gateway_namespace {
            environment.push(env("TAVERN_KUBERNETES_GATEWAY_NAMESPACE", ns.clone()));
        }
        environment.push(env("TAVERN_KUBERNETES_STANDBY_SERVICE", NAME));
        environment.push(env("TAVERN_KUBERNETES_STANDBY_PORT", "80"));
    }
    let mut mounts = vec![
        VolumeMount {
            name: "data".into(),
            mount_path: DATA_DIR.into(),
            ..Default::default()
        },
        VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        },
    ];
    let mut volumes = vec![
        data_volume,
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        },
    ];
    if let Some(size) = &options.packages_size {
        let mut spec = claim_spec(size, None);
        spec.access_modes = Some(vec!["ReadWriteMany".into()]);
        docs.push(to_json(serde_json::to_value(PersistentVolumeClaim {
            metadata: meta(options, PACKAGES_CLAIM),
            spec: Some(spec),
            ..Default::default()
        }))?);
        environment.push(env("TAVERN_KUBERNETES_PACKAGES_CLAIM", PACKAGES_CLAIM));
        mounts.push(VolumeMount {
            name: "packages".into(),
            mount_path: format!("{DATA_DIR}/packages"),
            ..Default::default()
        });
        volumes.push(Volume {
            name: "packages".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: PACKAGES_CLAIM.into(),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    if let Some(secret) = &options.secret_key_secret {
        environment.push(env(
            "TAVERN_SERVER_SECRET_KEY_FILE",
            format!("{SECRET_KEY_DIR}/secret.key"),
        ));
        mounts.push(VolumeMount {
            name: "secret-key".into(),
            mount_path: SECRET_KEY_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
        volumes.push(Volume {
            name: "secret-key".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                default_mode: Some(0o400),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let container = Container {
        name: NAME.into(),
        image: Some(options.image.clone()),
        args: Some(vec![
            "serve".into(),
            format!("--listen=0.0.0.0:{PORT}"),
            format!("--data-dir={DATA_DIR}"),
        ]),
        env: Some(environment),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: i32::from(PORT),
            ..Default::default()
        }]),
        readiness_probe: Some(probe(&options.domain, 10)),
        liveness_probe: Some(probe(&options.domain, 30)),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity("100m".into())),
                ("memory".to_owned(), Quantity("128Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity("512Mi".into()),
            )])),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let selector = BTreeMap::from([("app.kubernetes.io/name".to_owned(), NAME.to_owned())]);
    docs.push(to_json(serde_json::to_value(Deployment {
        metadata: meta(options, NAME),
        spec: Some(DeploymentSpec {
            replicas: Some(i32::try_from(options.replicas).unwrap_or(i32::MAX)),
            // One replica on its own claim is replaced, never doubled.
            strategy: (!shared_state).then(|| DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..Default::default()
            }),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(NAME.into()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(UID),
                        run_as_group: Some(UID),
                        fs_group: Some(UID),
                        ..Default::default()
                    }),
                    // Worlds outlive a stop of Tavern; it only needs to
                    // finish its requests.
                    termination_grace_period_seconds: Some(30),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }))?);
    docs.push(to_json(serde_json::to_value(Service {
        metadata: meta(options, NAME),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }))?);
    if let Some((gateway, gateway_namespace)) = &options.gateway {
        // Tavern's domain and every world's host come to Tavern (the API,
        // the dashboard, standby pages); a running world's own HTTPRoute
        // names its exact host, which the Gateway prefers.
        let resource = http_route_resource();
        let mut parent = json!({
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": gateway,
        });
        if let Some(ns) = gateway_namespace {
            parent["namespace"] = json!(ns);
        }
        docs.push(json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": meta(options, NAME),
            "spec": {
                "parentRefs": [parent],
                "hostnames": [options.domain, format!("*.{}", options.domain)],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"kind": "Service", "name": NAME, "port": 80}],
                }],
            },
        }));
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn options() -> InstallOptions {
        InstallOptions {
            namespace: "tavern".into(),
            image: "ghcr.io/example/tavern:0.1.0".into(),
            replicas: 1,
            domain: "games.example.org".into(),
            public_url: None,
            store_url_secret: None,
            secret_key_secret: None,
            data_size: "1Gi".into(),
            gateway: None,
            stub_release: false,
            packages_size: None,
        }
    }

    #[test]
    fn several_replicas_need_a_shared_store_and_key() {
        let mut o = options();
        o.replicas = 3;
        assert!(check(&o).unwrap_err().contains("--store-url-secret"));
        o.store_url_secret = Some("tavern-store".into());
        assert!(check(&o).unwrap_err().contains("--secret-key-secret"));
        o.secret_key_secret = Some("tavern-key".into());
        assert!(check(&o).is_ok());
        o.replicas = 0;
        assert!(check(&o).is_err());
    }

    #[test]
    fn one_replica_keeps_its_data_on_a_claim_and_several_share_secrets() {
        let kinds = |o: &InstallOptions| -> Vec<String> {
            objects(o)
                .unwrap()
                .iter()
                .map(|d| d["kind"].as_str().unwrap().to_owned())
                .collect()
        };
        let one = options();
        assert_eq!(
            kinds(&one),
            [
                "Namespace",
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "PersistentVolumeClaim",
                "Deployment",
                "Service"
            ]
        );
        let mut many = options();
        many.replicas = 2;
        many.store_url_secret = Some("tavern-store".into());
        many.secret_key_secret = Some("tavern-key".into());
        many.gateway = Some(("public".into(), Some("gateways".into())));
        let docs = objects(&many).unwrap();
        assert_eq!(
            kinds(&many),
            [
                "Namespace",
                "ServiceAccount",
                "Role",
                "RoleBinding",
                "Deployment",
                "Service",
                "HTTPRoute"
            ]
        );
        let deployment = &docs[4];
        assert_eq!(deployment["spec"]["replicas"], 2);
        assert!(deployment["spec"].get("strategy").is_none());
        let text = deployment.to_string();
        for needed in [
            "TAVERN_STORE_URL",
            "TAVERN_SERVER_SECRET_KEY_FILE",
            "TAVERN_KUBERNETES_LEASE",
            "TAVERN_KUBERNETES_ROUTES",
            "metadata.name",
        ] {
            assert!(text.contains(needed), "{needed}");
        }
        let role = docs[2].to_string();
        assert!(role.contains("httproutes") && role.contains("leases"));
    }
}
