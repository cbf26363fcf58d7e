//! oidc-provider-mock: a real OpenID provider (authlib's) for tests. Any
//! client id is accepted; the user is chosen on its authorization form
//! (which [`Provider::authorize`] posts as a browser would), and a user's
//! claims are set with [`Provider::set_user`].

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A provider, stopped when dropped.
pub struct Provider {
    child: Child,
    /// Its issuer: `http://127.0.0.1:PORT`.
    pub issuer: String,
}

impl Provider {
    /// Started on a free port; `None` (the test skips) where it is not
    /// installed, except under `CI=true`, where that fails.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// Started with more of its options (`--token-max-age 1`, say).
    pub fn start_with(args: &[&str]) -> Option<Self> {
        let installed = Command::new("python3")
            .args(["-c", "import oidc_provider_mock"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but oidc-provider-mock is not installed: `pip install oidc-provider-mock` (bash .ci/run does it)"
            );
            eprintln!(
                "skipped: oidc-provider-mock is not installed (`pip install oidc-provider-mock`; bash .ci/run does it)"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new("python3")
            .args([
                "-m",
                "oidc_provider_mock",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start oidc-provider-mock");
        let provider = Provider {
            child,
            issuer: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "oidc-provider-mock did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(provider)
    }

    /// Sets the claims of user `sub` (`{"email": …, "email_verified": …,
    /// "groups": […]}`).
    pub async fn set_user(&self, sub: &str, claims: &serde_json::Value) {
        let status = reqwest::Client::new()
            .put(format!("{}/users/{sub}", self.issuer))
            .header("content-type", "application/json")
            .body(claims.to_string())
            .send()
            .await
            .expect("reach the provider")
            .status();
        assert_eq!(status.as_u16(), 204, "set user {sub}");
    }

    /// What a browser sent to `authorization_url` comes back with once
    /// `sub` signs in there: the redirect to the client's callback (with
    /// `code` and `state`).
    pub async fn authorize(&self, authorization_url: &str, sub: &str) -> String {
        let answer = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client")
            .post(authorization_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("sub={sub}"))
            .send()
            .await
            .expect("reach the provider");
        assert_eq!(answer.status().as_u16(), 302, "the provider's answer");
        answer
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .expect("a redirect")
            .to_owned()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
