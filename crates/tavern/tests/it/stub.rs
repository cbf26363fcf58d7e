//! The stand-in for Foundry: flags, felddy's environment, Config files,
//! status with users = open sockets, join page, WebSocket echo, the data
//! directory lock, the world file, and a clean exit on SIGTERM.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

struct Stub {
    child: Option<Child>,
    base: String,
    _out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Stub {
    fn start(home: &Path, data: &Path, env: &[(&str, &str)]) -> Stub {
        let mut c = tavern(home);
        c.args([
            "foundry-stub",
            "--port=0",
            "--noupnp",
            "--noupdate",
            "--bind",
            "127.0.0.1",
        ])
        .arg(format!("--dataPath={}", data.display()))
        .env_remove("CONTAINER_PRESERVE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = out.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push_str(&line);
                if let Some(port) = line.split("listening on port ").nth(1) {
                    let _ = tx.send(port.trim().to_owned());
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("stub did not start");
        Stub {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            _out: out,
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        sigterm(child.id());
        wait_bounded(&mut child, Duration::from_secs(20))
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stub_plays_foundry_under_a_route_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("Config")).unwrap();
    std::fs::write(
        data.join("Config/options.json"),
        json!({"port": 30000, "routePrefix": "dragon", "hostname": "dragon.example.org", "proxySSL": true, "keep": "me"}).to_string(),
    )
    .unwrap();
    std::fs::write(
        data.join("Config/license.json"),
        json!({"license": "ABCDEFGHJKLMNPQRSTUVWXYZ"}).to_string(),
    )
    .unwrap();
    let mut stub = Stub::start(dir.path(), &data, &[]);

    let status = stub.json("/dragon/api/status").await;
    assert_eq!(status["active"], true);
    assert_eq!(status["world"], "stub-world");
    assert_eq!(status["users"], 0);
    assert!(status["version"].as_str().unwrap().contains('.'));
    // The prefix is honoured: unprefixed Foundry paths do not exist.
    assert_eq!(stub.get("/api/status").await.0, 404);
    let (s, join) = stub.get("/dragon/join").await;
    assert_eq!(s, 200);
    assert!(
        join.contains("stub-world") && join.contains("Current Players 0"),
        "{join}"
    );
    assert_eq!(
        stub.json("/_stub/license").await,
        json!({
            "license": "ABCDEFGHJKLMNPQRSTUVWXYZ",
            "dataPath": data.display().to_string(),
            "hostname": "dragon.example.org",
            // The machine's host name, as Foundry would sign for it.
            "machine": std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(),
        })
    );
    let config = stub.json("/_stub/config").await;
    assert_eq!(config["keep"], "me");
    assert_eq!(config["hostname"], "dragon.example.org");

    // Sockets count as users while open, and echo.
    let ws_url = format!(
        "{}/dragon/socket.io/?EIO=4&transport=websocket",
        stub.base.replace("http", "ws")
    );
    let (mut a, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    a.send(Message::text("40")).await.unwrap();
    let echoed = a.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "40");
    assert_eq!(stub.json("/dragon/api/status").await["users"], 2);
    assert!(
        stub.get("/dragon/join")
            .await
            .1
            .contains("Current Players 2")
    );
    b.close(None).await.unwrap();
    drop(b);
    let mut users = Value::Null;
    for _ in 0..100 {
        users = stub.json("/dragon/api/status").await["users"].clone();
        if users == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(users, 1);

    // The world file exists while running; SIGTERM flushes and exits 0.
    let state_file = data.join("Data/worlds/stub-world/data/state.json");
    let running: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert_eq!(running["running"], true);
    assert!(data.join("Data/worlds/stub-world/world.json").is_file());
    let status = stub.stop();
    assert!(status.success(), "stub exit on SIGTERM: {status}");
    let flushed: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert_eq!(flushed["running"], false);
    assert_eq!(flushed["sockets_served"], 2);
    drop(a);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_data_directory_is_never_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut first = Stub::start(dir.path(), &data, &[]);
    let mut c = tavern(dir.path());
    c.args(["foundry-stub", "--port=0", "--bind", "127.0.0.1"])
        .arg(format!("--dataPath={}", data.display()));
    let out = run(c, None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("LEVEL_LOCKED"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(first.json("/api/status").await["active"], true);
    assert!(first.stop().success());
    // Released on exit: a new server may open it.
    let mut again = Stub::start(dir.path(), &data, &[]);
    assert!(again.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn stub_applies_felddys_environment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [
        ("FOUNDRY_LICENSE_KEY", "ABCD-EFGH-JKLM-NPQR-STUV-WXYZ"),
        ("FOUNDRY_ADMIN_KEY", "let-me-in"),
        ("FOUNDRY_HOSTNAME", "w.example.org"),
        ("FOUNDRY_PROXY_SSL", "true"),
        ("FOUNDRY_PROXY_PORT", "443"),
        ("FOUNDRY_ROUTE_PREFIX", "w"),
        ("FOUNDRY_WORLD", "campaign"),
    ];
    let mut stub = Stub::start(dir.path(), &data, &env);
    let config = stub.json("/_stub/config").await;
    assert_eq!(config["hostname"], "w.example.org");
    assert_eq!(config["proxySSL"], true);
    assert_eq!(config["proxyPort"], 443);
    assert_eq!(config["routePrefix"], "w");
    assert_eq!(config["upnp"], false);
    assert_eq!(stub.json("/w/api/status").await["world"], "campaign");
    assert_eq!(
        stub.json("/_stub/license").await["license"],
        "ABCDEFGHJKLMNPQRSTUVWXYZ"
    );
    let admin = std::fs::read_to_string(data.join("Config/admin.txt")).unwrap();
    assert_eq!(admin, tavern_core_admin_hash("let-me-in"));
    assert!(stub.stop().success());

    // A license.json that exists is kept; options and admin.txt are
    // regenerated unless CONTAINER_PRESERVE_CONFIG=true.
    std::fs::write(
        data.join("Config/license.json"),
        r#"{"license":"SIGNEDKEYKEPTXXXXXXXXXXX","signature":"s"}"#,
    )
    .unwrap();
    let mut stub = Stub::start(
        dir.path(),
        &data,
        &[("FOUNDRY_HOSTNAME", "other.example.org")],
    );
    assert_eq!(
        stub.json("/_stub/license").await["license"],
        "SIGNEDKEYKEPTXXXXXXXXXXX"
    );
    assert_eq!(
        stub.json("/_stub/config").await["hostname"],
        "other.example.org"
    );
    assert!(
        !data.join("Config/admin.txt").exists(),
        "no FOUNDRY_ADMIN_KEY clears admin.txt"
    );
    assert!(stub.stop().success());

    std::fs::write(
        data.join("Config/options.json"),
        r#"{"hostname":"hand-edited","port":30000}"#,
    )
    .unwrap();
    let mut stub = Stub::start(
        dir.path(),
        &data,
        &[
            ("FOUNDRY_HOSTNAME", "ignored"),
            ("CONTAINER_PRESERVE_CONFIG", "true"),
        ],
    );
    assert_eq!(stub.json("/_stub/config").await["hostname"], "hand-edited");
    assert!(stub.stop().success());
}

/// felddy's admin.txt for `key`, computed independently with Node's crypto
/// when Node is present, else the known vector for the test's key.
fn tavern_core_admin_hash(key: &str) -> String {
    let out = std::process::Command::new("node")
        .arg("-e")
        .arg(format!(
            "process.stdout.write(require('crypto').pbkdf2Sync({key:?}.trim(),'17c4f39053ac5a50d5797c665ad1f4e6',1000,64,'sha512').toString('hex'))"
        ))
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap(),
        _ => panic!("node is needed to check felddy's admin.txt format"),
    }
}
