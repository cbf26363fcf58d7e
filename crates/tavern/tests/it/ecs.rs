//! The ecs runtime end to end: `tavern serve` with `runtime.kind = "ecs"`
//! against moto's server (ECS, EFS, ELBv2, Secrets Manager, CloudWatch
//! Logs), whose tasks a fake Fargate (`tavern_runtime::ecs::runner`) runs
//! for real on loopback: Tavern's init container writes Config/ from the
//! world's secret onto its access point's directory, the stand-in serves on
//! the task's address. A world is started, reached through the proxy, its
//! host switched on the ALB, adopted by a restarted Tavern, backed up and
//! restored through a data agent task, stopped and destroyed; a world whose
//! tasks keep failing ends `failed`; a service of no world is removed; the
//! AWS template passes cfn-lint.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use tavern_dns::testing::moto::Moto;
use tavern_runtime::ecs::EcsSettings;
use tavern_runtime::ecs::runner::{self, Fargate, Runner};

use crate::backups::{backup_now, contents, restore_and_wait, wait_backup};
use crate::support::*;

struct Aws {
    dir: tempfile::TempDir,
    moto: Moto,
    sdk: aws_config::SdkConfig,
    settings: EcsSettings,
    runner: Runner,
}

/// The library that gives Foundry its stable host name on Fargate, as the
/// workspace's build leaves it beside the binary.
fn hostname_library() -> PathBuf {
    let dir = std::path::Path::new(BIN).parent().unwrap();
    [dir.to_owned(), dir.join("deps")]
        .iter()
        .map(|d| d.join("libtavern_hostname.so"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "libtavern_hostname.so is not in {}: `cargo build -p tavern-hostname` (bash .ci/run builds the workspace)",
                dir.display()
            )
        })
}

impl Aws {
    /// moto with an account ready for Tavern, and a fake Fargate on it;
    /// `None` (the test skips) where moto is not installed.
    async fn start() -> Option<Self> {
        let moto = Moto::start_for_ecs()?;
        let dir = tempfile::tempdir().unwrap();
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url(&moto.endpoint)
            .credentials_provider(aws_sdk_ecs::config::SharedCredentialsProvider::new(
                aws_sdk_ecs::config::Credentials::new("fargate", "secret", None, None, "test"),
            ))
            .build();
        let settings = runner::moto_account(&moto.endpoint, &sdk, "it").await;
        let runner = Runner::start(
            Fargate {
                exe: BIN.into(),
                tavern_image: settings.tavern_image.clone(),
                stub_image: settings.stub_image.clone(),
                dir: dir.path().to_owned(),
                cluster: settings.cluster.clone(),
                log_group: settings.log_group.clone(),
                image_files: vec![(
                    tavern_runtime::ecs::objects::HOSTNAME_LIBRARY.into(),
                    hostname_library(),
                )],
            },
            &sdk,
        )
        .await;
        Some(Self {
            dir,
            moto,
            sdk,
            settings,
            runner,
        })
    }

    /// Tavern's configuration for this account.
    fn config(&self) -> String {
        let s = &self.settings;
        format!(
            r#"
[runtime]
kind = "ecs"

[ecs]
region = "{region}"
endpoint_url = "{endpoint}"
installation = "{installation}"
cluster = "{cluster}"
subnets = {subnets:?}
security_groups = {groups:?}
vpc_id = "{vpc}"
file_system_id = "{fs}"
listener_arn = "{listener}"
standby_target_group_arn = "{standby}"
execution_role_arn = "{role}"
stub_image = "{stub}"
tavern_image = "{tavern}"
log_group = "{logs}"
"#,
            region = s.region,
            endpoint = self.moto.endpoint,
            installation = s.installation,
            cluster = s.cluster,
            subnets = s.subnets,
            groups = s.security_groups,
            vpc = s.vpc_id,
            fs = s.file_system_id,
            listener = s.listener_arn.as_deref().unwrap(),
            standby = s.standby_target_group_arn.as_deref().unwrap(),
            role = s.execution_role_arn,
            stub = s.stub_image,
            tavern = s.tavern_image,
            logs = s.log_group,
        )
    }

    /// A Tavern whose worlds run on this account.
    fn tavern(&self) -> Server {
        self.tavern_with(&[])
    }

    /// A Tavern whose worlds run on this account, with `env` set too.
    fn tavern_with(&self, env: &[(&str, &str)]) -> Server {
        let file = self.dir.path().join("tavern.toml");
        std::fs::write(&file, self.config()).unwrap();
        let mut all = vec![
            ("AWS_ACCESS_KEY_ID", "tavern"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            // moto's IMDS is not there: no time is lost asking it.
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ];
        all.extend_from_slice(env);
        Server::start_with_env(&["--config", file.to_str().unwrap()], &all)
    }

    /// The one world's directory on the file system (its access point's
    /// root, `/worlds/<id>`).
    fn world_dir(&self) -> PathBuf {
        let worlds = self.dir.path().join("efs/worlds");
        let dirs: Vec<PathBuf> = std::fs::read_dir(&worlds)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        dirs[0].clone()
    }

    /// Where the world's host rule forwards: `world`, `standby`, or none.
    async fn host_goes_to(&self, host: &str) -> Option<&'static str> {
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&self.sdk);
        let rules = elb
            .describe_rules()
            .listener_arn(self.settings.listener_arn.as_deref().unwrap())
            .send()
            .await
            .unwrap();
        let rule = rules.rules().iter().find(|r| {
            r.conditions().iter().any(|c| {
                c.host_header_config()
                    .is_some_and(|h| h.values().iter().any(|v| v == host))
            })
        })?;
        let target = rule.actions().first()?.target_group_arn()?;
        Some(
            match Some(target) == self.settings.standby_target_group_arn.as_deref() {
                true => "standby",
                false => "world",
            },
        )
    }

    async fn desired_count(&self, slug: &str) -> Option<i32> {
        let ecs = aws_sdk_ecs::Client::new(&self.sdk);
        let found = ecs
            .describe_services()
            .cluster(&self.settings.cluster)
            .services(format!("tavern-{}-{slug}", self.settings.installation))
            .send()
            .await
            .unwrap();
        found
            .services()
            .iter()
            .find(|s| s.status() != Some("INACTIVE"))
            .map(|s| s.desired_count())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_runs_as_a_fargate_service_and_its_host_follows_it_on_the_alb() {
    let Some(aws) = Aws::start().await else {
        return;
    };
    let mut server = aws.tavern();
    let admin = server.api(Some(&server.admin_token));
    let slug = "ecs-world";
    let host = format!("{slug}.localhost");
    add_key(&admin, slug, &key_for(slug)).await;
    let created = create_world(&admin, &json!({"slug": slug, "release": "stub"})).await;
    assert_eq!(created["runtime"], "ecs", "{created}");
    let (s, b) = admin
        .post(&format!("/api/v1/instances/{slug}/start"), &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(&admin, slug, "running").await;
    assert_eq!(aws.desired_count(slug).await, Some(1));
    assert_eq!(
        aws.runner.services_running(),
        1,
        "{:?}",
        aws.runner.failures()
    );

    // Players reach it through Tavern's proxy, at the task's address. The
    // init container wrote Config/ from the secret: the stand-in runs with
    // the world's key and host, on the world's own directory.
    let (s, lic) = via_proxy(&server, slug, "/_stub/license").await;
    assert_eq!(s, 200, "{lic}");
    assert_eq!(lic["license"], key_for(slug));
    assert_eq!(lic["hostname"], host);
    // Fargate gives each task a host name of its own; Foundry sees the
    // key's stable one, through the library the init container placed.
    let key = tavern_types::LicenseKey::parse(&key_for(slug)).unwrap();
    let stable = tavern_runtime::hostname_for(Some(key.expose()));
    assert_eq!(lic["machine"], stable.as_str(), "{lic}");
    let data = aws.world_dir();
    assert_eq!(lic["dataPath"], data.display().to_string());
    assert!(data.join("Config/admin.txt").is_file(), "admin.txt");
    // It answered: the ALB's rule for its host now goes to it.
    wait_until("the host goes to the world", || async {
        aws.host_goes_to(&host).await == Some("world")
    })
    .await;
    // Its output is in CloudWatch Logs, read back by Tavern.
    wait_until("its log is read from CloudWatch", || async {
        let (s, logs) = admin
            .get(&format!("/api/v1/instances/{slug}/logs?tail=20"))
            .await;
        s == 200
            && logs
                .to_string()
                .contains("Server started and listening on port 30000")
    })
    .await;

    // Tavern dies; the task does not. The next Tavern adopts it: the same
    // task, never a second one.
    server.kill();
    server.relaunch();
    let admin = server.api(Some(&server.admin_token));
    wait_for_state(&admin, slug, "running").await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(aws.runner.services_running(), 1);
    }
    let (s, _) = via_proxy(&server, slug, "/api/status").await;
    assert_eq!(s, 200);

    // The EULA is accepted: Foundry signs license.json on its directory.
    let signed =
        json!({"license": key_for(slug), "signature": "c2lnbmVk", "host": "task"}).to_string();
    std::fs::write(data.join("Config/license.json"), &signed).unwrap();

    // Stopped: the host back to the standby page, the service at 0, the
    // task gone, its data kept.
    let (s, _) = admin
        .post(&format!("/api/v1/instances/{slug}/stop"), &json!({}))
        .await;
    assert_eq!(s, 202);
    wait_for_state(&admin, slug, "stopped").await;
    assert_eq!(aws.host_goes_to(&host).await, Some("standby"));
    assert_eq!(aws.desired_count(slug).await, Some(0));
    assert_eq!(aws.runner.services_running(), 0);
    assert!(data.join("Config/options.json").is_file());

    // Backed up after the stop through a data agent's task on the world's
    // directory, and by hand; a restore puts it back through another,
    // byte for byte.
    let (_, list) = admin
        .get(&format!("/api/v1/instances/{slug}/backups"))
        .await;
    assert_eq!(list[0]["kind"], "after_stop", "{list}");
    let after_stop = wait_backup(&admin, list[0]["id"].as_str().unwrap(), |b| {
        b["status"] != "in_progress"
    })
    .await;
    assert_eq!(after_stop["status"], "complete", "{after_stop}");
    let backup = backup_now(&admin, slug).await;
    let before = contents(&data);
    std::fs::write(data.join("Data/lost.txt"), b"not in the backup").unwrap();
    std::fs::remove_file(data.join("Config/admin.txt")).unwrap();
    restore_and_wait(&server, backup["id"].as_str().unwrap(), None);
    assert_eq!(contents(&data), before, "the restore is byte for byte");

    // The only key is free again: another world starts with it, with the
    // license Foundry signed in the first world (read from that world's
    // directory by a data agent and carried over), and the same host name.
    let other = "ecs-other";
    create_world(&admin, &json!({"slug": other, "release": "stub"})).await;
    let (s, b) = admin
        .post(&format!("/api/v1/instances/{other}/start"), &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(&admin, other, "running").await;
    let (_, lic) = via_proxy(&server, other, "/_stub/license").await;
    assert_eq!(lic["license"], key_for(slug));
    assert_eq!(lic["machine"], stable.as_str(), "{lic}");
    let other_data = std::path::PathBuf::from(lic["dataPath"].as_str().unwrap());
    assert_ne!(other_data, data, "a directory of its own");
    assert_eq!(
        std::fs::read_to_string(other_data.join("Config/license.json")).unwrap(),
        signed
    );
    let (s, _) = admin
        .post(&format!("/api/v1/instances/{other}/stop"), &json!({}))
        .await;
    assert_eq!(s, 202);
    wait_for_state(&admin, other, "stopped").await;

    // Destroyed: its objects go, and its data too once a last backup
    // holds it (deleted by a data agent).
    let (s, b) = admin.delete(&format!("/api/v1/instances/{slug}")).await;
    assert!(s == 200 || s == 202, "{s} {b}");
    wait_until("the world is gone", || async {
        admin.get(&format!("/api/v1/instances/{slug}")).await.0 == 404
    })
    .await;
    wait_until("its service is gone", || async {
        aws.desired_count(slug).await.is_none()
    })
    .await;
    wait_until("its data is deleted", || async { !data.exists() }).await;
    assert_eq!(aws.host_goes_to(&host).await, None, "its rule is gone");
    let (_, backups) = admin.get("/api/v1/backups").await;
    assert!(
        backups
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["instance"] == slug && b["kind"] == "pre_destroy"),
        "{backups}"
    );
    wait_until("no agent is left", || async { aws.runner.running() == 0 }).await;
}

/// `tavern manifests install --aws ARGS`, as a newcomer runs it.
fn install_aws(args: &[&str]) -> std::process::Output {
    let home = tempfile::tempdir().unwrap();
    let mut c = tavern(home.path());
    c.args(["manifests", "install", "--aws"]).args(args);
    run(c, None)
}

#[test]
fn the_aws_template_is_cloudformation_that_cfn_lint_accepts() {
    let ran = std::process::Command::new("cfn-lint")
        .arg("--version")
        .output()
        .is_ok();
    if !ran {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but cfn-lint is not installed (`bash .ci/run` installs it)"
        );
        eprintln!("skipped: cfn-lint is not installed (pip install cfn-lint)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("plain", &["--domain", "games.example.org"][..]),
        (
            "stub",
            &[
                "--domain",
                "games.example.org",
                "--stub-release",
                "--image",
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/tavern:1.0",
            ][..],
        ),
    ] {
        let out = install_aws(args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let template: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            template["Resources"]["TavernService"]["Type"],
            "AWS::ECS::Service"
        );
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, &out.stdout).unwrap();
        let lint = std::process::Command::new("cfn-lint")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            lint.status.success(),
            "{name}: {}{}",
            text(&lint.stdout),
            text(&lint.stderr)
        );
    }
    // Kubernetes' settings have no place in it.
    let out = install_aws(&["--domain", "games.example.org", "--replicas", "2"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--replicas"),
        "{}",
        text(&out.stderr)
    );
}

/// A world whose task never starts (its release's image cannot be
/// pulled): ECS starts task after task, Tavern counts each failure as a
/// crash and, at the limit, marks the world `failed` with ECS's reason and
/// scales its service to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_whose_tasks_keep_failing_ends_failed() {
    let Some(aws) = Aws::start().await else {
        return;
    };
    let server = aws.tavern_with(&[
        ("TAVERN_RUNTIME_CRASH_LIMIT", "3"),
        ("TAVERN_RUNTIME_RESTART_BACKOFF_MILLIS", "100"),
    ]);
    let admin = server.api(Some(&server.admin_token));
    let slug = "ecs-crashy";
    add_key(&admin, slug, &key_for(slug)).await;
    create_world(&admin, &json!({"slug": slug, "release": "13.351"})).await;
    let (s, b) = admin
        .post(&format!("/api/v1/instances/{slug}/start"), &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    let (failed, _) = wait_for_state(&admin, slug, "failed").await;
    let reason = failed["state_reason"].as_str().unwrap();
    assert!(reason.contains("crashed 3 times"), "{reason}");
    assert!(reason.contains("CannotPullContainerError"), "{reason}");
    wait_until("its service wants no task", || async {
        aws.desired_count(slug).await == Some(0)
    })
    .await;
    let (_, events) = admin.get("/api/v1/events?limit=100").await;
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"instance.crashed"), "{actions:?}");
    assert!(actions.contains(&"instance.failed"), "{actions:?}");
    // It stays failed: ECS is not asked for another task.
    let tried = aws.runner.failures().len();
    assert!(tried >= 3, "{:?}", aws.runner.failures());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, still) = admin.get(&format!("/api/v1/instances/{slug}")).await;
    assert_eq!(still["state"], "failed", "{still}");
    assert_eq!(aws.desired_count(slug).await, Some(0));
    assert_eq!(
        aws.runner.failures().len(),
        tried,
        "no task was tried since"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_of_no_world_is_removed_and_its_data_kept() {
    let Some(aws) = Aws::start().await else {
        return;
    };
    // A world this installation left behind (its instance is gone): its
    // service runs, with its access point and rule.
    let driver = tavern_runtime::ecs::EcsRuntime::with_config(&aws.sdk, aws.settings.clone());
    let ghost = tavern_runtime::InstanceSpec {
        id: tavern_types::InstanceId::new(),
        slug: tavern_types::Slug::parse("ghost").unwrap(),
        launch: tavern_runtime::Launch::Task {
            release: "stub".into(),
        },
        config: tavern_runtime::FoundryConfig {
            hostname: "ghost.localhost".into(),
            route_prefix: None,
            proxy_ssl: false,
            proxy_port: None,
            license_key: None,
            signed_license: None,
            admin_hash: None,
            aws_config: None,
            packages: Vec::new(),
        },
    };
    tavern_runtime::Runtime::ensure(&driver, &ghost)
        .await
        .unwrap();
    wait_until("the ghost's task runs", || async {
        aws.runner.services_running() == 1
    })
    .await;
    let data = aws.world_dir();

    let server = aws.tavern();
    wait_until("the orphan's service is gone", || async {
        aws.desired_count("ghost").await.is_none()
    })
    .await;
    assert_eq!(aws.runner.services_running(), 0);
    wait_until("its rule is gone", || async {
        aws.host_goes_to("ghost.localhost").await.is_none()
    })
    .await;
    // No backup holds its data: it is kept, its access point archived.
    let efs = aws_sdk_efs::Client::new(&aws.sdk);
    wait_until("its access point is archived", || async {
        let points = efs
            .describe_access_points()
            .file_system_id(&aws.settings.file_system_id)
            .send()
            .await
            .unwrap();
        points.access_points().iter().any(|a| {
            a.tags()
                .iter()
                .any(|t| t.key() == "tavern:archived" && t.value() == "ghost")
        })
    })
    .await;
    assert!(data.is_dir(), "its data is kept");
    let admin = server.api(Some(&server.admin_token));
    let (_, events) = admin.get("/api/v1/events?limit=50").await;
    assert!(
        events.to_string().contains("runtime.orphan_stopped"),
        "{events}"
    );
}
