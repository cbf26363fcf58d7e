//! `tavern manifests`: Tavern's own installation and a world's objects as
//! YAML. Every document is validated against the real Kubernetes 1.33
//! schemas by `kubernetes-validate` (PyPI; `.ci/run` installs it), strictly
//! (no field Kubernetes does not know), and kept as a snapshot.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::support::*;

/// The Kubernetes version whose schemas the manifests must satisfy (the
/// oldest one `k8s-openapi` is built for here).
const KUBERNETES: &str = "1.33.0";

/// `kubernetes-validate --strict` on `yaml`; `None` (the check is skipped)
/// where it is not installed, except under `CI=true`.
fn validate(yaml: &str, dir: &Path) -> Option<String> {
    if Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but kubernetes-validate is not installed (`bash .ci/run` installs it)"
        );
        eprintln!(
            "skipped: kubernetes-validate is not installed (pip install kubernetes-validate)"
        );
        return None;
    }
    let file = dir.join("manifests.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "-k", KUBERNETES])
        .arg(&file)
        .output()
        .unwrap();
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{report}\n{yaml}");
    Some(report)
}

/// The kinds `report` says passed, in order.
fn passed(report: &str) -> Vec<String> {
    report
        .lines()
        .filter_map(|l| l.split(" passed for resource ").nth(1))
        .filter_map(|r| r.split('/').next().map(str::to_owned))
        .collect()
}

fn install(args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    let mut c = tavern(home.path());
    c.args(["manifests", "install"]).args(args);
    run(c, None)
}

#[test]
fn the_installation_validates_against_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 2] = [
        ("install_single", &["--domain", "games.example.org"]),
        (
            "install_replicas_gateway",
            &[
                "--domain",
                "games.example.org",
                "--image",
                "registry.example.org/tavern:0.1.0",
                "--replicas",
                "3",
                "--store-url-secret",
                "tavern-store",
                "--secret-key-secret",
                "tavern-key",
                "--public-url",
                "https://games.example.org",
                "--gateway",
                "public",
                "--gateway-namespace",
                "gateways",
                "--packages-size",
                "20Gi",
            ],
        ),
    ];
    for (name, args) in cases {
        let out = install(args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let yaml = text(&out.stdout);
        if let Some(report) = validate(&yaml, dir.path()) {
            let checked = passed(&report);
            for kind in [
                "namespace",
                "serviceaccount",
                "role",
                "rolebinding",
                "deployment",
                "service",
            ] {
                assert!(
                    checked.iter().any(|k| k == kind),
                    "{kind} not validated: {report}"
                );
            }
            if name == "install_replicas_gateway" {
                // No schema of Kubernetes' own covers Gateway API: the
                // HTTPRoute is held by its snapshot only.
                assert!(report.contains("kind HTTPRoute"), "{report}");
            }
        }
        insta::assert_snapshot!(name, yaml);
    }

    // What cannot work is refused, and nothing is printed.
    for (args, says) in [
        (
            &["--domain", "games.example.org", "--replicas", "2"][..],
            "--store-url-secret",
        ),
        (
            &[
                "--domain",
                "games.example.org",
                "--replicas",
                "2",
                "--store-url-secret",
                "s",
            ][..],
            "--secret-key-secret",
        ),
        (
            &["--domain", "games.example.org", "--replicas", "0"][..],
            "--replicas",
        ),
    ] {
        let out = install(args);
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worlds_objects_are_printed_without_its_secret() {
    use tavern_runtime::kubernetes::fake::FakeApiServer;
    let api = FakeApiServer::start("worlds").await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    let server = Server::start_with_env(
        &[],
        &[
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
            ("TAVERN_RUNTIME_KIND", "kubernetes"),
            ("TAVERN_KUBERNETES_NAMESPACE", "worlds"),
            ("TAVERN_KUBERNETES_INSTALLATION", "it"),
            ("TAVERN_KUBERNETES_ROUTES", "gateway"),
            ("TAVERN_KUBERNETES_GATEWAY", "public"),
        ],
    );
    let admin = server.api(Some(&server.admin_token));
    let key = key_for("scroll");
    add_key(&admin, "scroll", &key).await;
    let world = create_world(&admin, &json!({"slug": "scroll", "release": "13.351"})).await;
    let id = world["id"].as_str().map(str::to_owned);

    let out = server.cli(
        Some(&server.admin_token),
        &["manifests", "world", "scroll"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(!yaml.contains(&key), "the license key was printed");
    assert!(yaml.contains("replicas: 0"), "a stopped world: {yaml}");
    if let Some(report) = validate(&yaml, dir.path()) {
        assert_eq!(
            passed(&report),
            ["persistentvolumeclaim", "secret", "service", "deployment"],
            "{report}"
        );
    }
    // The world's id and its admin key's digest differ at each run.
    let mut stable = yaml.clone();
    for line in yaml.lines() {
        for (label, keep) in [
            ("tavern.io/instance-id: ", "tavern.io/instance-id: ID"),
            (
                "tavern.io/config-digest: ",
                "tavern.io/config-digest: DIGEST",
            ),
            (
                "claimName: world-scroll-data-",
                "claimName: world-scroll-data-ID",
            ),
            ("name: world-scroll-data-", "name: world-scroll-data-ID"),
        ] {
            if let Some(at) = line.find(label) {
                stable = stable.replace(line, &format!("{}{keep}", &line[..at]));
            }
        }
    }
    // And the port players use is this test server's.
    let port = server.url.rsplit(':').next().unwrap().trim_end_matches('/');
    let stable = stable.replace(&format!("\"{port}\""), "\"PORT\"");
    if let Some(id) = id {
        assert!(!stable.contains(&id));
    }
    insta::assert_snapshot!("world_manifests", stable);

    // Admins only; worlds of another runtime have none.
    let gm = {
        admin.create_user("gm", "gm", "gm-password-1").await;
        admin.login("gm", "gm-password-1").await
    };
    assert_refused(
        &gm.get("/api/v1/instances/scroll/manifests").await,
        403,
        "forbidden",
    );
    create_world(
        &admin,
        &json!({"slug": "boxed", "release": "stub", "runtime": "process"}),
    )
    .await;
    assert_refused(
        &admin.get("/api/v1/instances/boxed/manifests").await,
        409,
        "no_manifests",
    );
    let out = server.cli(
        Some(&server.admin_token),
        &["manifests", "world", "boxed"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no_manifests"),
        "{}",
        text(&out.stderr)
    );
}
