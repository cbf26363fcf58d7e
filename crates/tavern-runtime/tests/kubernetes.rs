//! The kubernetes driver against the fake API server: the exact objects it
//! applies for a create and start, a stop, an adoption by a restarted
//! Tavern, an orphan's cleanup and a destroy; Gateway API routes; crashes,
//! logs and the errors a cluster gives.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tavern_runtime::kubernetes::KubernetesRuntime;
use tavern_runtime::kubernetes::fake::{FakeApiServer, Recorded};
use tavern_runtime::kubernetes::objects::{GatewayRoutes, KubernetesSettings, Routes};
use tavern_runtime::{Disposal, FoundryConfig, InstanceSpec, Launch, Runtime, RuntimeError};
use tavern_types::{InstanceId, LicenseKey, Slug};

const NS: &str = "worlds";
const GRACE: Duration = Duration::from_secs(1);
const ID: &str = "01970000-0000-7000-8000-00000000a1b2";

fn settings(routes: Routes) -> KubernetesSettings {
    KubernetesSettings {
        namespace: NS.into(),
        installation: "test".into(),
        image: "felddy/foundryvtt:{version}".into(),
        stub_image: "tavern-foundry-stub:latest".into(),
        tavern_image: "ghcr.io/example/tavern:1.0".into(),
        storage_class: Some("fast".into()),
        storage_size: "5Gi".into(),
        shared_claim: Some("shared-assets".into()),
        packages_claim: None,
        cpu_request: "200m".into(),
        memory_request: "512Mi".into(),
        cpu_limit: "1".into(),
        memory_limit: "1Gi".into(),
        routes,
    }
}

fn gateway() -> Routes {
    Routes::Gateway(GatewayRoutes {
        gateway: "public".into(),
        gateway_namespace: Some("gateways".into()),
        section: Some("https".into()),
        standby_service: "tavern".into(),
        standby_port: 80,
    })
}

/// A world with a fixed id, so that snapshots are stable.
fn spec(slug: &str, id: &str, prefix: Option<&str>) -> InstanceSpec {
    InstanceSpec {
        id: id.parse::<InstanceId>().unwrap(),
        slug: Slug::parse(slug).unwrap(),
        launch: Launch::Pod {
            release: "13.351".into(),
        },
        config: FoundryConfig {
            hostname: if prefix.is_some() {
                "example.org".into()
            } else {
                format!("{slug}.example.org")
            },
            route_prefix: prefix.map(str::to_owned),
            proxy_ssl: true,
            proxy_port: Some(443),
            license_key: Some(LicenseKey::parse("ABCD-EFGH-JKLM-NPQR-STUV-WXYZ").unwrap()),
            signed_license: None,
            admin_hash: Some("ab".repeat(64)),
            aws_config: None,
            packages: Vec::new(),
        },
    }
}

fn driver(server: &FakeApiServer, routes: Routes) -> KubernetesRuntime {
    KubernetesRuntime::with_client(server.client(), settings(routes))
        .unwrap()
        .stop_margin(Duration::from_secs(2))
}

/// `METHOD path?query -> status`, one per request: a sequence's snapshot
/// (the bodies are snapshotted where they matter).
fn lines(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|r| {
            let q = if r.query.is_empty() {
                String::new()
            } else {
                format!("?{}", r.query)
            };
            format!("{} {}{q} -> {}", r.method, r.path, r.status)
        })
        .collect()
}

fn body_of<'a>(requests: &'a [Recorded], method: &str, path_end: &str) -> &'a Value {
    &requests
        .iter()
        .find(|r| r.method == method && r.path.ends_with(path_end))
        .unwrap_or_else(|| panic!("no {method} …{path_end} in {:#?}", lines(requests)))
        .body
}

#[tokio::test]
async fn a_world_is_created_started_stopped_and_started_again() {
    let server = FakeApiServer::start(NS).await;
    let k8s = driver(&server, Routes::Proxy);
    let world = spec("dragon", ID, None);

    let o = k8s.ensure(&world).await.unwrap();
    assert!(o.alive);
    assert_eq!(o.id, world.id);
    assert_eq!(o.addr.to_string(), "10.96.0.1:30000");
    let created = server.take_requests();
    insta::assert_json_snapshot!("create_requests", lines(&created));
    // Every object is applied by the field manager tavern, forced.
    for r in created.iter().filter(|r| r.method == "PATCH") {
        assert_eq!(r.query, "fieldManager=tavern&force=true", "{}", r.path);
        assert_eq!(r.content_type, "application/apply-patch+yaml");
    }
    insta::assert_json_snapshot!(
        "create_claim",
        body_of(
            &created,
            "PATCH",
            "/persistentvolumeclaims/world-dragon-data-00000000a1b2"
        )
    );
    insta::assert_json_snapshot!(
        "create_deployment",
        body_of(&created, "PATCH", "/deployments/world-dragon")
    );
    insta::assert_json_snapshot!(
        "create_service",
        body_of(&created, "PATCH", "/services/world-dragon")
    );
    // The Secret holds what the init container writes Config/ from, the
    // license key among it; the snapshot shows it decoded.
    let secret = body_of(&created, "PATCH", "/secrets/world-dragon-config");
    let seed = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["config.json"].as_str().unwrap())
        .unwrap();
    let seed: Value = serde_json::from_slice(&seed).unwrap();
    insta::assert_json_snapshot!("create_secret_seed", seed);
    assert_eq!(secret["metadata"]["labels"]["tavern.io/instance"], "dragon");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(server.pod_count(), 1);

    let observed = k8s.observe_all().await.unwrap();
    assert_eq!(observed.len(), 1);
    assert!(observed[0].alive, "{observed:?}");
    assert_eq!(observed[0].slug.as_str(), "dragon");
    assert_eq!(observed[0].addr.to_string(), "10.96.0.1:30000");
    server.take_requests();

    // Stop: replicas 0, then it waits until the pod has gone.
    server.set_linger(2);
    k8s.stop(&world.slug, GRACE).await.unwrap();
    let stopped = server.take_requests();
    insta::assert_json_snapshot!("stop_requests", lines(&stopped));
    assert_eq!(
        body_of(&stopped, "PATCH", "/deployments/world-dragon"),
        &json!({"spec": {"replicas": 0}})
    );
    assert_eq!(server.pod_count(), 0);
    assert!(
        server
            .object("persistentvolumeclaims", "world-dragon-data-00000000a1b2")
            .is_some(),
        "the data is kept"
    );
    let observed = k8s.observe_all().await.unwrap();
    assert!(!observed[0].alive);
    assert!(
        observed[0].kept,
        "stopped on purpose, kept for its next start"
    );
    assert_eq!(observed[0].exit.as_deref(), Some("scaled to 0"));
    // A stop of a stopped world, and of a world never made, asks nothing more.
    server.take_requests();
    k8s.stop(&world.slug, GRACE).await.unwrap();
    k8s.stop(&Slug::parse("never").unwrap(), GRACE)
        .await
        .unwrap();
    assert_eq!(
        lines(&server.take_requests()),
        [
            "GET /apis/apps/v1/namespaces/worlds/deployments/world-dragon -> 200",
            "GET /api/v1/namespaces/worlds/pods?labelSelector=tavern.io/instance=dragon,tavern.io/installation=test -> 200",
            "GET /apis/apps/v1/namespaces/worlds/deployments/world-never -> 404",
        ]
    );

    // Started again: the claim is not applied twice; the rest is, whole.
    k8s.ensure(&world).await.unwrap();
    let again = server.take_requests();
    assert_eq!(
        lines(&again)[..2],
        [
            "GET /api/v1/namespaces/worlds/persistentvolumeclaims/world-dragon-data-00000000a1b2 -> 200",
            "PATCH /api/v1/namespaces/worlds/secrets/world-dragon-config?fieldManager=tavern&force=true -> 200",
        ]
    );
    assert_eq!(
        body_of(&again, "PATCH", "/deployments/world-dragon"),
        body_of(&created, "PATCH", "/deployments/world-dragon")
    );
    assert_eq!(server.pod_count(), 1);
}

#[tokio::test]
async fn a_restarted_tavern_adopts_its_worlds_and_an_orphan_is_archived() {
    let server = FakeApiServer::start(NS).await;
    let first = driver(&server, Routes::Proxy);
    first.ensure(&spec("kept", ID, None)).await.unwrap();
    let orphan_id = "01970000-0000-7000-8000-0000000000ff";
    first
        .ensure(&spec("orphan", orphan_id, None))
        .await
        .unwrap();
    drop(first);
    server.take_requests();

    // A new Tavern (same installation) finds both by label, with their ids.
    let restarted = driver(&server, Routes::Proxy);
    let mut found = restarted.observe_all().await.unwrap();
    found.sort_by(|a, b| a.slug.as_str().cmp(b.slug.as_str()));
    assert_eq!(
        found
            .iter()
            .map(|o| (o.slug.as_str(), o.id.to_string(), o.alive))
            .collect::<Vec<_>>(),
        [
            ("kept", ID.to_owned(), true),
            ("orphan", orphan_id.to_owned(), true)
        ]
    );
    insta::assert_json_snapshot!("observe_requests", lines(&server.take_requests()));
    // Adopting the running world applies the same objects: nothing
    // changes, the pod is the same.
    let pods_before = server.names("pods");
    restarted.ensure(&spec("kept", ID, None)).await.unwrap();
    assert_eq!(server.names("pods"), pods_before);
    server.take_requests();

    // Another installation sharing the namespace sees none of them.
    let mut other = settings(Routes::Proxy);
    other.installation = "other".into();
    let stranger = KubernetesRuntime::with_client(server.client(), other).unwrap();
    assert!(stranger.observe_all().await.unwrap().is_empty());
    server.take_requests();

    // The orphan (no instance has it) is removed; its data claim is kept,
    // labelled archived, so no new world of that slug opens it.
    restarted
        .remove(&Slug::parse("orphan").unwrap(), GRACE, Disposal::Archive)
        .await
        .unwrap();
    let removed = server.take_requests();
    insta::assert_json_snapshot!("orphan_requests", lines(&removed));
    assert_eq!(
        body_of(
            &removed,
            "PATCH",
            "/persistentvolumeclaims/world-orphan-data-0000000000ff"
        ),
        &json!({"metadata": {"labels": {"tavern.io/instance": null, "tavern.io/archived-from": "orphan"}}})
    );
    let claim = server
        .object("persistentvolumeclaims", "world-orphan-data-0000000000ff")
        .unwrap();
    assert_eq!(
        claim["metadata"]["labels"]["tavern.io/archived-from"],
        "orphan"
    );
    assert!(
        claim["metadata"]["labels"]
            .get("tavern.io/instance")
            .is_none()
    );
    for (plural, name) in [
        ("deployments", "world-orphan"),
        ("services", "world-orphan"),
        ("secrets", "world-orphan-config"),
    ] {
        assert!(server.object(plural, name).is_none(), "{plural}/{name}");
    }
    let left = restarted.observe_all().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].slug.as_str(), "kept");
    // A new world of the orphan's slug gets a claim of its own.
    let reborn = spec("orphan", "01970000-0000-7000-8000-0000000000aa", None);
    restarted.ensure(&reborn).await.unwrap();
    assert!(
        server
            .object("persistentvolumeclaims", "world-orphan-data-0000000000aa")
            .is_some()
    );
}

#[tokio::test]
async fn a_destroy_after_a_backup_deletes_the_data_claim() {
    let server = FakeApiServer::start(NS).await;
    let k8s = driver(&server, Routes::Proxy);
    let world = spec("gone", ID, None);
    k8s.ensure(&world).await.unwrap();
    server.take_requests();
    k8s.remove(&world.slug, GRACE, Disposal::Delete)
        .await
        .unwrap();
    insta::assert_json_snapshot!("destroy_requests", lines(&server.take_requests()));
    for plural in [
        "persistentvolumeclaims",
        "deployments",
        "services",
        "secrets",
    ] {
        assert!(
            server.names(plural).is_empty(),
            "{plural}: {:?}",
            server.names(plural)
        );
    }
    assert_eq!(server.pod_count(), 0);
    // Removing what is gone is fine.
    k8s.remove(&world.slug, GRACE, Disposal::Delete)
        .await
        .unwrap();
}

#[tokio::test]
async fn gateway_routes_follow_the_world_and_the_standby_page() {
    let server = FakeApiServer::start(NS).await;
    let k8s = driver(&server, gateway());
    let world = spec("tomb", ID, None);
    k8s.ensure(&world).await.unwrap();
    let created = server.take_requests();
    insta::assert_json_snapshot!(
        "gateway_route_running",
        body_of(&created, "PATCH", "/httproutes/world-tomb")
    );

    k8s.stop(&world.slug, GRACE).await.unwrap();
    let stopped = server.take_requests();
    let patch = body_of(&stopped, "PATCH", "/httproutes/world-tomb");
    assert_eq!(
        patch["spec"]["rules"][0]["backendRefs"],
        json!([{"kind": "Service", "name": "tavern", "port": 80}])
    );
    let route = server.object("httproutes", "world-tomb").unwrap();
    assert_eq!(route["spec"]["hostnames"], json!(["tomb.example.org"]));
    assert_eq!(
        route["spec"]["rules"][0]["matches"],
        json!([{"path": {"type": "PathPrefix", "value": "/"}}])
    );
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"][0]["name"],
        "tavern"
    );

    k8s.ensure(&world).await.unwrap();
    let route = server.object("httproutes", "world-tomb").unwrap();
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"],
        json!([{"kind": "Service", "name": "world-tomb", "port": 30000}])
    );
    k8s.remove(&world.slug, GRACE, Disposal::Archive)
        .await
        .unwrap();
    assert!(server.object("httproutes", "world-tomb").is_none());

    // With path routing the route matches the world's prefix on the bare
    // domain, and the probes ask under it.
    let prefixed = spec(
        "crypt",
        "01970000-0000-7000-8000-0000000000cc",
        Some("crypt"),
    );
    server.take_requests();
    k8s.ensure(&prefixed).await.unwrap();
    let made = server.take_requests();
    let route = body_of(&made, "PATCH", "/httproutes/world-crypt");
    assert_eq!(route["spec"]["hostnames"], json!(["example.org"]));
    assert_eq!(
        route["spec"]["rules"][0]["matches"][0]["path"]["value"],
        "/crypt"
    );
    let deployment = body_of(&made, "PATCH", "/deployments/world-crypt");
    let foundry = &deployment["spec"]["template"]["spec"]["containers"][0];
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(
            foundry[probe]["httpGet"]["path"], "/crypt/api/status",
            "{probe}"
        );
    }
    assert!(
        foundry["env"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "FOUNDRY_ROUTE_PREFIX", "value": "crypt"}))
    );
}

#[tokio::test]
async fn a_crash_loop_shows_as_not_alive_and_logs_come_from_the_pod() {
    let server = FakeApiServer::start(NS).await;
    let k8s = driver(&server, Routes::Proxy);
    let world = spec("ember", ID, None);
    k8s.ensure(&world).await.unwrap();
    server.take_requests();
    assert_eq!(
        k8s.logs(&world.slug, 2).await.unwrap(),
        [
            "world-ember-5d8f7c9b4-x2x7q log line 4",
            "world-ember-5d8f7c9b4-x2x7q log line 5"
        ]
    );
    let asked = server.take_requests();
    assert!(
        asked.iter().any(
            |r| r.path.ends_with("/pods/world-ember-5d8f7c9b4-x2x7q/log")
                && r.query == "container=foundry&tailLines=2"
        ),
        "{:#?}",
        lines(&asked)
    );
    server.set_waiting("ember", "CrashLoopBackOff");
    let o = k8s.observe_all().await.unwrap();
    assert!(!o[0].alive);
    assert!(!o[0].kept, "a crash is not a stop");
    assert_eq!(o[0].exit.as_deref(), Some("CrashLoopBackOff (exit code 1)"));
    // A world with no pod has no log lines.
    assert!(
        k8s.logs(&Slug::parse("none").unwrap(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_clusters_refusals_are_final_and_its_failures_transient() {
    let server = FakeApiServer::start(NS).await;
    let k8s = driver(&server, Routes::Proxy);
    let world = spec("storm", ID, None);
    server.fail_next("PATCH", "deployments", 422);
    let e = k8s.ensure(&world).await.unwrap_err();
    assert!(matches!(e, RuntimeError::Refused { .. }), "{e:?}");
    assert!(e.to_string().contains("apply the deployment"), "{e}");
    server.fail_next("PATCH", "deployments", 403);
    assert!(!k8s.ensure(&world).await.unwrap_err().is_transient());
    server.fail_next("GET", "persistentvolumeclaims", 500);
    assert!(k8s.ensure(&world).await.unwrap_err().is_transient());
    server.fail_next("GET", "deployments", 500);
    assert!(k8s.observe_all().await.unwrap_err().is_transient());
    // The Secret's content (the license key) is never in an error.
    server.fail_next("PATCH", "secrets", 422);
    let e = k8s.ensure(&world).await.unwrap_err();
    assert!(!format!("{e} {e:?}").contains("ABCDEFGH"), "{e:?}");
    // A world that is not a pod world is refused.
    let mut container = world.clone();
    container.launch = Launch::Container {
        release: "13.351".into(),
    };
    assert!(!k8s.ensure(&container).await.unwrap_err().is_transient());
    // A world with no claim has no data to export; without a kubelet the
    // data agent's pod fails, and the export says so.
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("a.tar.zst");
    assert!(
        !k8s.export_archive(&Slug::parse("nothing").unwrap(), &archive)
            .await
            .unwrap()
    );
    k8s.ensure(&world).await.unwrap();
    let e = k8s.export_archive(&world.slug, &archive).await.unwrap_err();
    assert!(e.to_string().contains("data agent"), "{e}");
    assert!(
        server.names("pods").iter().all(|p| !p.contains("-agent-"))
            && server
                .names("secrets")
                .iter()
                .all(|s| !s.contains("-agent-")),
        "the failed agent was removed"
    );
    // A stop whose pod does not go says so, and is tried again later.
    k8s.ensure(&world).await.unwrap();
    server.set_linger(u32::MAX);
    let e = k8s.stop(&world.slug, Duration::ZERO).await.unwrap_err();
    assert!(e.is_transient());
    assert!(e.to_string().contains("stop"), "{e}");
}

/// A world's library packages: each version a read-only `subPath` of the
/// packages claim at `/tavern/packages/<kind>/<id>/<version>` (systems and
/// modules in Foundry's container, where the init container's links
/// point; world templates in the init container, which copies them once),
/// and the seed names them. Without a packages claim the world is refused.
#[tokio::test]
async fn a_worlds_library_packages_are_mounted_read_only_by_version() {
    use tavern_foundry::manifest::PackageKind;
    use tavern_runtime::packages::PackageLink;
    let server = FakeApiServer::start(NS).await;
    let mut world = spec("library", ID, None);
    world.config.packages = vec![
        PackageLink {
            kind: PackageKind::System,
            id: "pf2e".into(),
            version: "6.0.1".into(),
        },
        PackageLink {
            kind: PackageKind::Module,
            id: "combat".into(),
            version: "2.0.0".into(),
        },
        PackageLink {
            kind: PackageKind::World,
            id: "starter".into(),
            version: "1.0".into(),
        },
    ];
    let bare = driver(&server, Routes::Proxy);
    let e = bare.ensure(&world).await.unwrap_err();
    assert!(e.to_string().contains("packages_claim"), "{e}");
    assert!(!e.is_transient());

    let mut with = settings(Routes::Proxy);
    with.packages_claim = Some("tavern-packages".into());
    let k8s = KubernetesRuntime::with_client(server.client(), with)
        .unwrap()
        .stop_margin(Duration::from_secs(2));
    server.take_requests();
    k8s.ensure(&world).await.unwrap();
    let created = server.take_requests();
    let pod = &body_of(&created, "PATCH", "/deployments/world-library")["spec"]["template"]["spec"];
    insta::assert_json_snapshot!(
        "packages_mounts",
        json!({
            "volumes": pod["volumes"],
            "foundry": pod["containers"][0]["volumeMounts"],
            "init": pod["initContainers"][0]["volumeMounts"],
        })
    );
    let secret = body_of(&created, "PATCH", "/secrets/world-library-config");
    let seed = base64::engine::general_purpose::STANDARD
        .decode(secret["data"]["config.json"].as_str().unwrap())
        .unwrap();
    let seed: Value = serde_json::from_slice(&seed).unwrap();
    assert_eq!(seed["packages"].as_array().map(Vec::len), Some(3), "{seed}");
}
