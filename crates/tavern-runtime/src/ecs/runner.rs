//! A fake Fargate for tests (feature `fake-ecs`): moto plays ECS's API but
//! runs nothing, so this runner watches moto's cluster and plays what
//! Fargate would do. A service that wants a task gets one (`RunTask`, group
//! `service:NAME`), a task Tavern runs itself (a data agent) is started,
//! and each runs as processes of the `tavern` binary on the loopback
//! address moto gave its network interface: Tavern's image as `tavern
//! COMMAND`, the stand-in's image as `tavern foundry-stub`, any other image
//! fails to pull. EFS access points are directories under `efs/`, secrets
//! are read from moto's Secrets Manager, and every container's output goes
//! to moto's CloudWatch Logs as the `awslogs` driver would send it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ecs::types as ecs;

use super::EcsSettings;

/// What the fake Fargate runs, and where.
#[derive(Clone, Debug)]
pub struct Fargate {
    /// The `tavern` binary (Tavern's image and the stand-in's).
    pub exe: PathBuf,
    pub tavern_image: String,
    pub stub_image: String,
    /// The file system's root (`efs/`) and the tasks' own files (`tasks/`).
    pub dir: PathBuf,
    pub cluster: String,
    pub log_group: String,
    /// Files of Tavern's image, by their path there (the library that
    /// gives Foundry its stable host name).
    pub image_files: Vec<(String, PathBuf)>,
}

/// One task the runner runs.
struct Running {
    arn: String,
    /// The service it belongs to (`None`: run by Tavern itself).
    service: Option<String>,
    definition: String,
    child: Child,
    /// Its essential container's log file, how much of it CloudWatch has,
    /// and its stream there.
    log: PathBuf,
    sent: u64,
    stream: String,
    /// When it was sent SIGTERM (ECS's stop).
    stopping: Option<Instant>,
}

#[derive(Default)]
struct State {
    running: Vec<Running>,
    /// Tasks that failed to start, by ARN (never started again).
    failed: HashMap<String, String>,
}

/// The runner; stops its loop and every process it started when dropped.
pub struct Runner {
    state: Arc<Mutex<State>>,
    loop_task: tokio::task::JoinHandle<()>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.loop_task.abort();
        if let Ok(mut state) = self.state.lock() {
            for r in &mut state.running {
                let _ = r.child.kill();
                let _ = r.child.wait();
            }
        }
    }
}

impl Runner {
    /// Starts watching moto's cluster (through `sdk`, moto's endpoint).
    pub async fn start(fargate: Fargate, sdk: &aws_config::SdkConfig) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let clients = Clients {
            ecs: aws_sdk_ecs::Client::new(sdk),
            efs: aws_sdk_efs::Client::new(sdk),
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(sdk),
            fargate,
        };
        let shared = state.clone();
        let loop_task = tokio::spawn(async move {
            loop {
                if let Err(e) = clients.tick(&shared).await {
                    eprintln!("fake Fargate: {e}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { state, loop_task }
    }

    /// How many tasks run now: services' (worlds) and others (agents).
    pub fn running(&self) -> usize {
        self.state.lock().map(|s| s.running.len()).unwrap_or(0)
    }

    /// How many services' tasks (worlds) run now.
    pub fn services_running(&self) -> usize {
        self.state
            .lock()
            .map(|s| s.running.iter().filter(|r| r.service.is_some()).count())
            .unwrap_or(0)
    }

    /// Why tasks failed to start, by task ARN.
    pub fn failures(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|s| s.failed.values().cloned().collect())
            .unwrap_or_default()
    }
}

struct Clients {
    ecs: aws_sdk_ecs::Client,
    efs: aws_sdk_efs::Client,
    secrets: aws_sdk_secretsmanager::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    fargate: Fargate,
}

fn text(e: impl std::error::Error) -> String {
    aws_sdk_ecs::error::DisplayErrorContext(e).to_string()
}

fn terminate(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

impl Clients {
    async fn tick(&self, state: &Mutex<State>) -> Result<(), String> {
        let cluster = &self.fargate.cluster;
        let services = self.services().await?;
        let tasks = self.tasks().await?;
        let wanted: HashMap<&str, &ecs::Task> = tasks
            .iter()
            .filter(|t| t.desired_status() == Some("RUNNING"))
            .filter_map(|t| Some((t.task_arn()?, t)))
            .collect();
        // Stop what ECS no longer wants: a service scaled to 0 or moved to
        // another task definition, a task Tavern stopped.
        let mut ended = Vec::new();
        {
            let mut state = state.lock().map_err(|e| e.to_string())?;
            for r in &mut state.running {
                let service = r
                    .service
                    .as_ref()
                    .and_then(|name| services.iter().find(|s| s.service_name() == Some(name)));
                let unwanted = match &r.service {
                    Some(_) => service.is_none_or(|s| {
                        s.desired_count() == 0 || s.task_definition() != Some(r.definition.as_str())
                    }),
                    None => !wanted.contains_key(r.arn.as_str()),
                };
                if unwanted && r.stopping.is_none() {
                    terminate(&r.child);
                    r.stopping = Some(Instant::now());
                }
                if r.stopping
                    .is_some_and(|t| t.elapsed() > Duration::from_secs(30))
                {
                    let _ = r.child.kill();
                }
            }
            let mut i = 0;
            while i < state.running.len() {
                let exited = state.running[i].child.try_wait().ok().flatten();
                match exited {
                    Some(_) => ended.push(state.running.remove(i)),
                    None => i += 1,
                }
            }
        }
        for mut r in ended {
            self.send_logs(&mut r).await;
            let reason = match r.stopping {
                Some(_) => "Task stopped by the scheduler".to_owned(),
                // What ECS says of the task; moto keeps no container's
                // exit code.
                None => "Essential container in task exited".to_owned(),
            };
            self.stop(&r.arn, &reason).await;
        }
        // Start what ECS wants: a task for each service that has none, and
        // the tasks Tavern ran itself.
        let (busy, failed): (Vec<(Option<String>, String)>, Vec<String>) = {
            let state = state.lock().map_err(|e| e.to_string())?;
            (
                state
                    .running
                    .iter()
                    .map(|r| (r.service.clone(), r.arn.clone()))
                    .collect(),
                state.failed.keys().cloned().collect(),
            )
        };
        for s in &services {
            let name = s.service_name().unwrap_or_default();
            if s.desired_count() < 1 || busy.iter().any(|(svc, _)| svc.as_deref() == Some(name)) {
                continue;
            }
            let network = s
                .network_configuration()
                .cloned()
                .or_else(|| s.deployments().first()?.network_configuration().cloned());
            let run = self
                .ecs
                .run_task()
                .cluster(cluster)
                .set_task_definition(s.task_definition().map(str::to_owned))
                .launch_type(ecs::LaunchType::Fargate)
                .set_network_configuration(network)
                .group(format!("service:{name}"))
                .started_by("ecs-svc/fake-fargate")
                .send()
                .await
                .map_err(text)?;
            if let Some(task) = run.tasks().first() {
                self.start(state, task, Some(name.to_owned())).await;
            }
        }
        for t in wanted.values() {
            let arn = t.task_arn().unwrap_or_default();
            let ours = busy.iter().any(|(_, a)| a == arn) || failed.iter().any(|a| a == arn);
            let a_service_s = t.group().is_some_and(|g| g.starts_with("service:"));
            if !ours && !a_service_s {
                self.start(state, t, None).await;
            }
        }
        // What the running tasks wrote since the last look.
        let logs: Vec<(String, PathBuf, u64, String)> = {
            let state = state.lock().map_err(|e| e.to_string())?;
            state
                .running
                .iter()
                .map(|r| (r.arn.clone(), r.log.clone(), r.sent, r.stream.clone()))
                .collect()
        };
        for (arn, log, mut sent, stream) in logs {
            self.ship(&log, &mut sent, &stream).await;
            let mut state = state.lock().map_err(|e| e.to_string())?;
            if let Some(r) = state.running.iter_mut().find(|r| r.arn == arn) {
                r.sent = sent;
            }
        }
        Ok(())
    }

    async fn services(&self) -> Result<Vec<ecs::Service>, String> {
        let listed = self
            .ecs
            .list_services()
            .cluster(&self.fargate.cluster)
            .send()
            .await
            .map_err(text)?;
        let mut services = Vec::new();
        for chunk in listed.service_arns().chunks(10) {
            let found = self
                .ecs
                .describe_services()
                .cluster(&self.fargate.cluster)
                .set_services(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(text)?;
            services.extend(
                found
                    .services()
                    .iter()
                    .filter(|s| s.status() != Some("INACTIVE"))
                    .cloned(),
            );
        }
        Ok(services)
    }

    async fn tasks(&self) -> Result<Vec<ecs::Task>, String> {
        let listed = self
            .ecs
            .list_tasks()
            .cluster(&self.fargate.cluster)
            .send()
            .await
            .map_err(text)?;
        if listed.task_arns().is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .ecs
            .describe_tasks()
            .cluster(&self.fargate.cluster)
            .set_tasks(Some(listed.task_arns().to_vec()))
            .send()
            .await
            .map_err(text)?;
        Ok(found.tasks().to_vec())
    }

    async fn stop(&self, arn: &str, reason: &str) {
        let _ = self
            .ecs
            .stop_task()
            .cluster(&self.fargate.cluster)
            .task(arn)
            .reason(reason)
            .send()
            .await;
    }

    /// Starts a task's containers; a task that cannot start is stopped
    /// with the reason ECS would give.
    async fn start(&self, state: &Mutex<State>, task: &ecs::Task, service: Option<String>) {
        let arn = task.task_arn().unwrap_or_default().to_owned();
        match self.launch(task).await {
            Ok((child, log, stream)) => {
                if let Ok(mut state) = state.lock() {
                    state.running.push(Running {
                        arn,
                        service,
                        definition: task.task_definition_arn().unwrap_or_default().to_owned(),
                        child,
                        log,
                        sent: 0,
                        stream,
                        stopping: None,
                    });
                }
            }
            Err(why) => {
                self.stop(&arn, &why).await;
                if let Ok(mut state) = state.lock() {
                    state.failed.insert(arn, why);
                }
            }
        }
    }

    /// Runs a task's containers in order: those not essential first, to
    /// their end (Foundry's depends on their success), then the essential
    /// one, left running. Answers it, its log file and its log stream.
    async fn launch(&self, task: &ecs::Task) -> Result<(Child, PathBuf, String), String> {
        let ip = super::task_addr(task)
            .map(|a| a.ip())
            .ok_or("ResourceInitializationError: the task has no address")?;
        let definition = self
            .ecs
            .describe_task_definition()
            .set_task_definition(task.task_definition_arn().map(str::to_owned))
            .send()
            .await
            .map_err(text)?;
        let definition = definition
            .task_definition()
            .ok_or("the task definition is gone")?;
        let id = task
            .task_arn()
            .and_then(|a| a.rsplit('/').next())
            .unwrap_or("task")
            .to_owned();
        let dir = self.fargate.dir.join("tasks").join(&id);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let overrides = task
            .overrides()
            .map(|o| o.container_overrides())
            .unwrap_or_default();
        let mut containers: Vec<&ecs::ContainerDefinition> =
            definition.container_definitions().iter().collect();
        containers.sort_by_key(|c| c.essential() != Some(false));
        for c in containers {
            let name = c.name().unwrap_or("container");
            let over = overrides.iter().find(|o| o.name() == Some(name));
            let mounts = self.mounts(definition, c).await?;
            let mut env: Vec<(String, String)> = c
                .environment()
                .iter()
                .filter_map(|kv| Some((kv.name()?.to_owned(), kv.value()?.to_owned())))
                .collect();
            for secret in c.secrets() {
                let value = self
                    .secrets
                    .get_secret_value()
                    .secret_id(secret.value_from())
                    .send()
                    .await
                    .map_err(|e| format!("ResourceInitializationError: {}", text(e)))?;
                env.push((
                    secret.name().to_owned(),
                    value.secret_string().unwrap_or_default().to_owned(),
                ));
            }
            if let Some(o) = over {
                env.extend(
                    o.environment()
                        .iter()
                        .filter_map(|kv| Some((kv.name()?.to_owned(), kv.value()?.to_owned()))),
                );
            }
            let command: Vec<String> = match over.map(|o| o.command()).filter(|c| !c.is_empty()) {
                Some(command) => command.to_vec(),
                None => c.command().to_vec(),
            };
            let image = c.image().unwrap_or_default();
            let args: Vec<String> = if image == self.fargate.tavern_image {
                let mut paths = mounts.clone();
                paths.extend(self.fargate.image_files.iter().cloned());
                command
                    .iter()
                    .map(|a| match a.strip_prefix("--listen=0.0.0.0:") {
                        Some(port) => format!("--listen={ip}:{port}"),
                        None => map_arg(a, &paths),
                    })
                    .collect()
            } else if image == self.fargate.stub_image {
                // Paths in its environment (LD_PRELOAD) are the mounts'.
                for (_, value) in env.iter_mut() {
                    if let Some(mapped) = map_path(value, &mounts) {
                        *value = mapped;
                    }
                }
                let data = mounts
                    .iter()
                    .find(|(path, _)| path == "/data")
                    .map(|(_, local)| local.clone())
                    .ok_or("the stand-in has no /data")?;
                vec![
                    "foundry-stub".into(),
                    format!("--dataPath={}", data.display()),
                    format!("--port={}", crate::FOUNDRY_PORT),
                    format!("--bind={ip}"),
                ]
            } else {
                return Err(format!(
                    "CannotPullContainerError: pull image manifest has been retried 1 time(s): {image} not found"
                ));
            };
            let log = dir.join(format!("{name}.log"));
            let stream = format!("tavern/{name}/{id}");
            let mut child = self.spawn(&args, &env, &log)?;
            if c.essential() == Some(false) {
                let status = tokio::task::spawn_blocking(move || child.wait())
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                let mut sent = 0;
                self.ship(&log, &mut sent, &stream).await;
                if !status.success() {
                    return Err(format!(
                        "Essential container in task exited: {name} exited with {status}"
                    ));
                }
                continue;
            }
            return Ok((child, log, stream));
        }
        Err("the task has no essential container".into())
    }

    fn spawn(
        &self,
        args: &[String],
        env: &[(String, String)],
        log: &Path,
    ) -> Result<Child, String> {
        let out = std::fs::File::create(log).map_err(|e| e.to_string())?;
        std::process::Command::new(&self.fargate.exe)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().map_err(|e| e.to_string())?)
            .stderr(out)
            .spawn()
            .map_err(|e| e.to_string())
    }

    /// A container's mounts as directories on this machine, longest path
    /// first: an access point is its root directory under `efs/`.
    async fn mounts(
        &self,
        definition: &ecs::TaskDefinition,
        container: &ecs::ContainerDefinition,
    ) -> Result<Vec<(String, PathBuf)>, String> {
        let mut mounts = Vec::new();
        for m in container.mount_points() {
            let volume = definition
                .volumes()
                .iter()
                .find(|v| v.name() == m.source_volume())
                .ok_or("ClientException: a mount point names no volume")?;
            let point = volume
                .efs_volume_configuration()
                .and_then(|e| e.authorization_config())
                .and_then(|a| a.access_point_id())
                .ok_or("only EFS volumes through an access point are played here")?;
            let found = self
                .efs
                .describe_access_points()
                .access_point_id(point)
                .send()
                .await
                .map_err(|e| format!("ResourceInitializationError: {}", text(e)))?;
            let root = found
                .access_points()
                .first()
                .and_then(|a| a.root_directory())
                .and_then(|r| r.path())
                .unwrap_or("/");
            let local = self
                .fargate
                .dir
                .join("efs")
                .join(root.trim_start_matches('/'));
            std::fs::create_dir_all(&local).map_err(|e| e.to_string())?;
            mounts.push((m.container_path().unwrap_or_default().to_owned(), local));
        }
        mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        Ok(mounts)
    }

    async fn send_logs(&self, r: &mut Running) {
        let (log, stream) = (r.log.clone(), r.stream.clone());
        self.ship(&log, &mut r.sent, &stream).await;
    }

    /// Sends the lines of `log` past `sent` to CloudWatch Logs.
    async fn ship(&self, log: &Path, sent: &mut u64, stream: &str) {
        let Ok(bytes) = std::fs::read(log) else {
            return;
        };
        let Some(new) = bytes.get(usize::try_from(*sent).unwrap_or(usize::MAX)..) else {
            return;
        };
        let Some(end) = new.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let events: Vec<_> = String::from_utf8_lossy(&new[..end])
            .lines()
            .map(|line| {
                aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                    .timestamp(now)
                    .message(line)
                    .build()
            })
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        let _ = self
            .logs
            .create_log_stream()
            .log_group_name(&self.fargate.log_group)
            .log_stream_name(stream)
            .send()
            .await;
        let put = self
            .logs
            .put_log_events()
            .log_group_name(&self.fargate.log_group)
            .log_stream_name(stream)
            .set_log_events(Some(events))
            .send()
            .await;
        if put.is_ok() {
            *sent += end as u64 + 1;
        }
    }
}

/// An argument (`--flag=PATH`) with the paths of its mounts made local.
fn map_arg(arg: &str, mounts: &[(String, PathBuf)]) -> String {
    if let Some((flag, value)) = arg.split_once('=')
        && let Some(mapped) = map_path(value, mounts)
    {
        return format!("{flag}={mapped}");
    }
    arg.to_owned()
}

/// A path in a container as the local path of its mount, if it is in one.
fn map_path(value: &str, mounts: &[(String, PathBuf)]) -> Option<String> {
    mounts.iter().find_map(|(path, local)| {
        let rest = value.strip_prefix(path.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then(|| format!("{}{rest}", local.display()))
    })
}

/// An AWS account in moto made ready for the ecs driver, as an admin
/// would make it (or `tavern manifests install --aws`): a cluster, a VPC
/// with a subnet and a security group, an EFS file system, an ALB with a
/// listener and Tavern's own target group, and a log group. Answers the
/// driver's settings for it.
pub async fn moto_account(
    endpoint: &str,
    sdk: &aws_config::SdkConfig,
    installation: &str,
) -> EcsSettings {
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    let ec2 = |query: String| {
        let region = region.clone();
        async move {
            // EC2's query API, which the SDKs used here have no client for.
            let auth = format!(
                "AWS4-HMAC-SHA256 Credential=test/20260101/{region}/ec2/aws4_request, SignedHeaders=host, Signature=0"
            );
            let body = format!("{query}&Version=2016-11-15");
            reqwest::Client::new()
                .post(endpoint)
                .header("Authorization", auth)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .expect("moto's EC2")
                .text()
                .await
                .expect("moto's EC2 answer")
        }
    };
    let tag = |xml: &str, name: &str| -> String {
        let open = format!("<{name}>");
        let start = xml.find(&open).map(|i| i + open.len()).expect(name);
        let end = xml[start..].find('<').expect(name) + start;
        xml[start..end].to_owned()
    };
    let vpc = tag(
        &ec2("Action=CreateVpc&CidrBlock=10.0.0.0%2F16".into()).await,
        "vpcId",
    );
    // Fargate's tasks need DNS host names in their VPC (moto too).
    ec2(format!(
        "Action=ModifyVpcAttribute&VpcId={vpc}&EnableDnsHostnames.Value=true"
    ))
    .await;
    let subnet = tag(
        &ec2(format!(
            "Action=CreateSubnet&VpcId={vpc}&CidrBlock=10.0.1.0%2F24&AvailabilityZone={region}a"
        ))
        .await,
        "subnetId",
    );
    let group = tag(
        &ec2(format!(
            "Action=CreateSecurityGroup&VpcId={vpc}&GroupName=tavern-worlds&GroupDescription=worlds"
        ))
        .await,
        "groupId",
    );
    let ecs = aws_sdk_ecs::Client::new(sdk);
    ecs.create_cluster()
        .cluster_name("tavern")
        .send()
        .await
        .expect("a cluster");
    let efs = aws_sdk_efs::Client::new(sdk)
        .create_file_system()
        .creation_token("tavern")
        .send()
        .await
        .expect("a file system");
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(sdk);
    let alb = elb
        .create_load_balancer()
        .name("tavern")
        .subnets(&subnet)
        .security_groups(&group)
        .send()
        .await
        .expect("an ALB");
    let alb = alb.load_balancers()[0]
        .load_balancer_arn()
        .expect("its ARN")
        .to_owned();
    let standby = elb
        .create_target_group()
        .name("tavern-standby")
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(8080)
        .vpc_id(&vpc)
        .target_type(aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum::Ip)
        .send()
        .await
        .expect("Tavern's target group");
    let standby = standby.target_groups()[0]
        .target_group_arn()
        .expect("its ARN")
        .to_owned();
    let listener = elb
        .create_listener()
        .load_balancer_arn(&alb)
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(80)
        .default_actions(
            aws_sdk_elasticloadbalancingv2::types::Action::builder()
                .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::Forward)
                .target_group_arn(&standby)
                .build(),
        )
        .send()
        .await
        .expect("a listener");
    let listener = listener.listeners()[0]
        .listener_arn()
        .expect("its ARN")
        .to_owned();
    aws_sdk_cloudwatchlogs::Client::new(sdk)
        .create_log_group()
        .log_group_name("/tavern/worlds")
        .send()
        .await
        .expect("a log group");
    EcsSettings {
        installation: installation.to_owned(),
        cluster: "tavern".into(),
        subnets: vec![subnet],
        security_groups: vec![group],
        assign_public_ip: false,
        vpc_id: vpc,
        file_system_id: efs.file_system_id().to_owned(),
        shared_access_point: None,
        listener_arn: Some(listener),
        standby_target_group_arn: Some(standby),
        rule_priority_from: 1000,
        execution_role_arn: "arn:aws:iam::123456789012:role/tavern-execution".into(),
        task_role_arn: None,
        image: "felddy/foundryvtt:{version}".into(),
        stub_image: "tavern-foundry-stub:latest".into(),
        tavern_image: "tavern:latest".into(),
        cpu: "1024".into(),
        memory: "2048".into(),
        log_group: "/tavern/worlds".into(),
        region,
    }
}
