//! moto's server mode (PyPI), AWS's APIs played on a loopback port: Route53
//! for the driver's tests here, S3 for Tavern's backup tests, ECS, EFS,
//! ELBv2, Secrets Manager and CloudWatch Logs for the ecs driver's (with
//! tasks' addresses on loopback, and its recorder of requests). Stopped by
//! its pid when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto server, stopped when dropped.
pub struct Moto {
    child: Child,
    /// Its address, as an SDK's endpoint URL.
    pub endpoint: String,
    port: u16,
    /// Where its recorder writes (a file of its own).
    recording: Option<tempfile::TempPath>,
}

/// moto's server, started with ECS tasks' network interfaces given
/// addresses in `$TAVERN_MOTO_TASK_NET.0.0/16` (on loopback, where a fake
/// Fargate can bind them) instead of random ones in 10.0.0.0/8; and a
/// task's containers' `cpu` and `memory` answered as strings, as ECS's API
/// has them (moto answers numbers, which the AWS SDK for Rust refuses).
const TASKS_ON_LOOPBACK: &str = r#"
import itertools, os, sys
import moto.ecs.models as ecs_models
net = os.environ["TAVERN_MOTO_TASK_NET"]
count = itertools.count(1)
def loopback_ip(*_args, **_kwargs):
    i = next(count)
    return f"{net}.{i // 250}.{i % 250 + 1}"
ecs_models.random_private_ip = loopback_ip
made = ecs_models.Container.__init__
def container(self, *args, **kwargs):
    made(self, *args, **kwargs)
    for field in ("cpu", "memory"):
        value = getattr(self, field, None)
        if value is not None:
            setattr(self, field, str(value))
ecs_models.Container.__init__ = container
# What ECS says of a stopped task and moto leaves out: when it stopped and
# its stop code, from the reason the fake Fargate or Tavern gave.
from moto.core.utils import utcnow
stop_task = ecs_models.EC2ContainerServiceBackend.stop_task
def stopped(self, cluster_str, task_str, reason):
    task = stop_task(self, cluster_str, task_str, reason)
    task.stopped_at = utcnow()
    if reason.startswith("Essential container in task exited"):
        task.stop_code = "EssentialContainerExited"
    elif reason.startswith(("CannotPullContainerError", "ResourceInitializationError")):
        task.stop_code = "TaskFailedToStart"
    elif reason.startswith("Task stopped by the scheduler"):
        task.stop_code = "ServiceSchedulerInitiated"
    else:
        task.stop_code = "UserInitiated"
    return task
ecs_models.EC2ContainerServiceBackend.stop_task = stopped
from moto.server import main
main(sys.argv[1:])
"#;

impl Moto {
    /// Started on a free port; `None` (the test skips) where moto is not
    /// installed, except under `CI=true`, where that fails.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// Started as [`Moto::start`], with `env` set for it (moto's own
    /// switches, such as `INITIAL_NO_AUTH_ACTION_COUNT`).
    pub fn start_with(env: &[(&str, &str)]) -> Option<Self> {
        Self::launch(&["-m", "moto.server"], env)
    }

    /// Started for ECS: its tasks' addresses are on loopback, in a range
    /// of this port's own; a stopped task has its `stoppedAt` and
    /// `stopCode` (from its reason); a task stays RUNNING until it is
    /// stopped (moto would move it on at each describe); its recorder is
    /// ready.
    pub fn start_for_ecs() -> Option<Self> {
        let port = super::free_port();
        let net = format!("127.{}", 100 + port % 100);
        let recording = tempfile::NamedTempFile::new()
            .expect("a temporary file")
            .into_temp_path();
        let file = recording.to_string_lossy().into_owned();
        let mut moto = Self::launch_on(
            port,
            &["-c", TASKS_ON_LOOPBACK],
            &[
                ("TAVERN_MOTO_TASK_NET", net.as_str()),
                ("MOTO_RECORDER_FILEPATH", file.as_str()),
            ],
        )?;
        moto.recording = Some(recording);
        moto.post(
            "/moto-api/state-manager/set-transition",
            r#"{"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1000000000}}"#,
        );
        Some(moto)
    }

    /// Records every request from now on (moto's recorder), forgetting
    /// those recorded before.
    pub fn start_recording(&self) {
        self.post("/moto-api/recorder/reset-recording", "");
        self.post("/moto-api/recorder/start-recording", "");
    }

    /// The requests recorded since [`Moto::start_recording`], as moto
    /// wrote them (method, url, headers, body).
    pub fn recorded(&self) -> Vec<serde_json::Value> {
        let file = self.recording.as_ref().expect("started for ECS");
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// A POST to moto's own API; panics unless it answers 2xx.
    fn post(&self, path: &str, body: &str) {
        use std::io::{Read as _, Write as _};
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("reach moto");
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("ask moto");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let status = answer.split(' ').nth(1).unwrap_or_default();
        assert!(status.starts_with('2'), "moto's {path}: {answer}");
    }

    fn launch(args: &[&str], env: &[(&str, &str)]) -> Option<Self> {
        Self::launch_on(super::free_port(), args, env)
    }

    fn launch_on(port: u16, args: &[&str], env: &[(&str, &str)]) -> Option<Self> {
        let installed = Command::new("python3")
            .args(["-c", "import moto.server"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but moto is not installed: `pip install 'moto[server]'` (bash .ci/run does it)"
            );
            eprintln!(
                "skipped: moto is not installed (`pip install 'moto[server]'`; bash .ci/run does it)"
            );
            return None;
        }
        let child = Command::new("python3")
            .args(args)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            recording: None,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
