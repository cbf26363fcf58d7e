//! moto's server mode (PyPI), AWS's APIs played on a loopback port: Route53
//! for the driver's tests here, S3 for Tavern's backup tests. Stopped by
//! its pid when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto server, stopped when dropped.
pub struct Moto {
    child: Child,
    /// Its address, as an SDK's endpoint URL.
    pub endpoint: String,
}

impl Moto {
    /// Started on a free port; `None` (the test skips) where moto is not
    /// installed, except under `CI=true`, where that fails.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// Started as [`Moto::start`], with `env` set for it (moto's own
    /// switches, such as `INITIAL_NO_AUTH_ACTION_COUNT`).
    pub fn start_with(env: &[(&str, &str)]) -> Option<Self> {
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
        let port = super::free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
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
