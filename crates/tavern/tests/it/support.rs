//! Test harness: the real `tavern` binary on a temp dir and a loopback port,
//! its output captured for later checks, stopped by pid when dropped.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_tavern");

/// A command of the binary with an environment that belongs to the test:
/// no inherited `TAVERN_*` variables, a private config directory.
pub fn tavern(home: &Path) -> Command {
    wrapped(home, &[])
}

/// Like [`tavern`], run through `wrapper` (a command that runs the rest of
/// its arguments, such as `prlimit`).
fn wrapped(home: &Path, wrapper: &[String]) -> Command {
    let mut c = match wrapper.split_first() {
        None => Command::new(BIN),
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(BIN);
            c
        }
    };
    for (k, _) in std::env::vars() {
        if k.starts_with("TAVERN_") || k.starts_with("FOUNDRY_") {
            c.env_remove(k);
        }
    }
    c.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"));
    c.stdin(Stdio::null());
    c
}

/// Sends SIGTERM to one process, by pid.
pub fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// Waits for a child, killing it after `limit`.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a child's output `stream` into a shared buffer until it closes,
/// and hands back the first line that contains `marker`.
fn capture_until(
    stream: impl std::io::Read + Send + 'static,
    marker: &'static str,
    sink: Arc<Mutex<String>>,
) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
            if line.contains(marker)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(line);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no line with {marker:?} within 30 s"))
}

/// A running `tavern serve`.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub admin_token: String,
    child: Option<Child>,
    stdout: Arc<Mutex<String>>,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    listen: String,
    wrapper: Vec<String>,
}

impl Server {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_with_env(extra, &[])
    }

    /// A server with extra flags and `TAVERN_*` settings. Every test server
    /// offers the `stub` release, supervises briskly, and takes its worlds'
    /// ports from a range of its own.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on("127.0.0.1:0", extra, env)
    }

    /// Like `start_with_env`, listening on `listen`.
    pub fn start_on(listen: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_full(listen, &[], extra, env)
    }

    /// Like `start_on`, run through `wrapper` (e.g. `prlimit
    /// --nofile=256:256 --`).
    pub fn start_wrapped(listen: &str, wrapper: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_full(listen, wrapper, &[], env)
    }

    fn start_full(listen: &str, wrapper: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut s = Self::launch_new(listen, wrapper, extra, env);
        s.admin_token = std::fs::read_to_string(s.data_dir().join("admin-token"))
            .unwrap()
            .trim()
            .to_owned();
        s
    }

    /// A second replica on a store another server set up: it makes no
    /// admin, so it has no token of its own (use the first one's).
    #[cfg(feature = "kubernetes")]
    pub fn start_replica(env: &[(&str, &str)]) -> Self {
        Self::launch_new("127.0.0.1:0", &[], &[], env)
    }

    fn launch_new(listen: &str, wrapper: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let base = 20_000 + (nanos ^ std::process::id()) % 400 * 100;
        let mut all: Vec<(String, String)> = vec![
            ("TAVERN_RUNTIME_STUB_RELEASE".into(), "true".into()),
            ("TAVERN_RUNTIME_RESYNC_SECONDS".into(), "1".into()),
            ("TAVERN_RUNTIME_STOP_GRACE_SECONDS".into(), "10".into()),
            ("TAVERN_RUNTIME_RESTART_BACKOFF_MILLIS".into(), "200".into()),
            (
                "TAVERN_RUNTIME_PORT_RANGE".into(),
                format!("{base}-{}", base + 99),
            ),
        ];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut s = Server {
            dir,
            url: String::new(),
            admin_token: String::new(),
            child: None,
            stdout: Arc::default(),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            env: all,
            listen: listen.to_owned(),
            wrapper: wrapper.iter().map(|s| s.to_string()).collect(),
        };
        s.launch();
        s
    }

    fn launch(&mut self) {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let mut child = wrapped(self.home(), &self.wrapper)
            .args([
                "serve",
                "--listen",
                &self.listen,
                "--log-format",
                "json",
                "--data-dir",
            ])
            .arg(self.data_dir())
            .args(&self.extra_args)
            .env("TAVERN_LOG_LEVEL", "debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let line = capture_until(
            child.stdout.take().unwrap(),
            "Tavern is listening on ",
            self.stdout.clone(),
        );
        self.url = line.rsplit(' ').next().unwrap().to_owned();
        self.child = Some(child);
    }

    /// The pid of Tavern's process.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// SIGKILL: Tavern dies at once, its worlds do not.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("server is running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server again on the same data directory.
    /// Sets a variable for the next launch (after `kill`, before
    /// `relaunch`).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    pub fn relaunch(&mut self) {
        assert!(self.child.is_none(), "stop or kill it first");
        self.launch();
    }

    /// SIGTERM, then start again on the same data directory.
    pub fn restart(&mut self) {
        let status = self.stop();
        assert!(status.success(), "tavern exited with {status} on SIGTERM");
        self.launch();
    }

    /// SIGTERM and wait; answers the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("server is running");
        sigterm(child.id());
        wait_bounded(&mut child, Duration::from_secs(20))
    }

    /// Everything the server printed (stdout and the log on stderr).
    pub fn output(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        format!("{}\n{log}", self.stdout.lock().unwrap())
    }

    /// A client command against this server, as `token` (or none).
    pub fn cli(&self, token: Option<&str>, args: &[&str], stdin: Option<&str>) -> Output {
        self.cli_in(self.home(), token, args, stdin)
    }

    /// Like `cli`, with its own home (so stored credentials are separate).
    pub fn cli_in(
        &self,
        home: &Path,
        token: Option<&str>,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Output {
        let mut c = tavern(home);
        c.args(args).env("TAVERN_SERVER", &self.url);
        if let Some(t) = token {
            c.env("TAVERN_TOKEN", t);
        }
        run(c, stdin)
    }

    pub fn api(&self, token: Option<&str>) -> Api {
        self.api_with(token, reqwest::Client::new())
    }

    /// An API client on a client of the test's own (trusting a test
    /// certificate, say).
    pub fn api_with(&self, token: Option<&str>, http: reqwest::Client) -> Api {
        Api {
            base: self.url.clone(),
            token: token.map(str::to_owned),
            http,
        }
    }

    /// Every row of every table of the database, as text (but the
    /// outbox's cursor).
    pub async fn dump(&self) -> String {
        use sqlx::Row;
        use sqlx::sqlite::SqliteConnectOptions;
        let opts = SqliteConnectOptions::new()
            .filename(self.data_dir().join("tavern.db"))
            .read_only(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            // The outbox's cursor is the notification loop's bookmark in the
            // audit log: it moves on its own whenever the loop catches up.
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name != 'outbox_cursor' ORDER BY name",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut out = String::new();
        for t in tables {
            let cols: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT name FROM pragma_table_info('{t}') ORDER BY cid"
            )))
            .fetch_all(&pool)
            .await
            .unwrap();
            let expr = cols
                .iter()
                .map(|c| format!("quote(\"{c}\")"))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {expr} AS r FROM \"{t}\" ORDER BY rowid"
            )))
            .fetch_all(&pool)
            .await
            .unwrap();
            out.push_str(&format!("== {t}\n"));
            for r in rows {
                out.push_str(&r.get::<String, _>("r"));
                out.push('\n');
            }
        }
        pool.close().await;
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Tavern first, so it starts nothing more; then every world it
        // started (worlds outlive Tavern by design), by the pids in their
        // pid files.
        if let Some(mut child) = self.child.take() {
            sigterm(child.id());
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Ok(entries) = std::fs::read_dir(self.data_dir().join("instances")) {
            for e in entries.flatten() {
                if let Some(pid) = read_pid_file(&e.path().join("server.json")).filter(|p| *p > 1) {
                    let _ = Command::new("kill")
                        .args(["-s", "KILL", "--"])
                        .arg(format!("-{pid}"))
                        .status();
                }
            }
        }
    }
}

/// Runs a command to completion, with `stdin` fed to it.
pub fn run(mut c: Command, stdin: Option<&str>) -> Output {
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        c.stdin(Stdio::piped());
    }
    let mut child = c.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let status = wait_bounded(&mut child, Duration::from_secs(60));
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts success and parses stdout as JSON.
#[track_caller]
pub fn ok_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "command failed: {}\nstderr: {}",
        out.status,
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out.stdout)))
}

/// A small JSON client for the API.
pub struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// Status, and the body as JSON (`Null` when empty or not JSON).
pub type Answer = (u16, Value);

impl Api {
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut r = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .body(body);
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None, Vec::new()).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send(
            "POST",
            path,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Answer {
        self.send(
            "PATCH",
            path,
            Some("application/json"),
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send("DELETE", path, None, Vec::new()).await
    }

    /// Creates a user (as an admin) and asserts it worked.
    pub async fn create_user(&self, username: &str, role: &str, password: &str) -> Value {
        let (status, body) = self
            .post(
                "/api/v1/users",
                &serde_json::json!({"username": username, "role": role, "password": password}),
            )
            .await;
        assert_eq!(status, 201, "create user {username}: {body}");
        body
    }

    /// Signs in and answers an API client with the new token.
    pub async fn login(&self, username: &str, password: &str) -> Api {
        let (status, body) = self
            .post(
                "/api/v1/auth/login",
                &serde_json::json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(status, 200, "login as {username}: {body}");
        Api {
            base: self.base.clone(),
            token: Some(body["token"].as_str().unwrap().to_owned()),
            http: self.http.clone(),
        }
    }

    pub fn token(&self) -> &str {
        self.token.as_deref().unwrap()
    }
}

/// The cookie `name`'s value among an answer's `Set-Cookie` headers.
pub fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
}

/// The error code of an error answer.
pub fn code(a: &Answer) -> &str {
    a.1["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// Asserts that an answer is the error `status` with `code`.
pub fn assert_refused(a: &Answer, status: u16, error_code: &str) {
    assert_eq!((a.0, code(a)), (status, error_code), "{}", a.1);
}

/// The pid in a world's pid file.
pub fn read_pid_file(path: &Path) -> Option<u32> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    v["pid"].as_u64().and_then(|p| u32::try_from(p).ok())
}

/// The pid of a world's server now.
pub fn server_pid(server: &Server, slug: &str) -> u32 {
    read_pid_file(
        &server
            .data_dir()
            .join("instances")
            .join(slug)
            .join("server.json"),
    )
    .unwrap_or_else(|| panic!("{slug} has no pid file"))
}

/// Whether a process runs (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            !matches!(state, Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

/// Polls `check` every 50 ms for up to 30 s.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the world `slug` and waits until it runs.
/// GET through Tavern's proxy, by the world's host, as JSON.
pub(crate) async fn via_proxy(server: &Server, slug: &str, path: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", server.url))
        .header("host", format!("{slug}.localhost"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn start_world(admin: &Api, slug: &str) {
    let (s, b) = admin
        .post(&format!("/api/v1/instances/{slug}/start"), &json!({}))
        .await;
    assert_eq!(s, 202, "{b}");
    wait_for_state(admin, slug, "running").await;
}

/// Polls an instance until its state is `state`; answers it and every
/// state seen on the way, in order, without repeats.
pub async fn wait_for_state(api: &Api, slug: &str, state: &str) -> (Value, Vec<String>) {
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = api.get(&format!("/api/v1/instances/{slug}")).await;
        assert_eq!(status, 200, "{body}");
        let now = body["state"].as_str().unwrap_or("?").to_owned();
        if seen.last() != Some(&now) {
            seen.push(now.clone());
        }
        if now == state {
            return (body, seen);
        }
        assert!(
            Instant::now() < deadline,
            "{slug} never became {state}; states seen: {seen:?}; last: {body}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A made-up license key of its own for each world (24 letters and digits).
pub fn key_for(slug: &str) -> String {
    let mut k: String = slug
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_uppercase();
    k.extend(std::iter::repeat_n('7', 24));
    k.truncate(24);
    k
}

/// Adds a pooled key; answers its id.
pub async fn add_key(admin: &Api, label: &str, key: &str) -> String {
    let (s, b) = admin
        .post("/api/v1/licenses", &json!({"label": label, "key": key}))
        .await;
    assert_eq!(s, 201, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

/// Creates a world that names no key; answers it.
pub async fn add_world(admin: &Api, slug: &str, release: &str) -> Value {
    create_world(admin, &json!({"slug": slug, "release": release})).await
}

/// Creates a world as `body` describes it (slug, release, owner, runtime…);
/// answers it.
pub async fn create_world(api: &Api, body: &Value) -> Value {
    let (s, b) = api.post("/api/v1/instances", body).await;
    assert_eq!(s, 201, "{b}");
    b
}

/// The port a world's server listens on (from its pid file).
pub fn read_port(server: &Server, slug: &str) -> u16 {
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(
            server
                .data_dir()
                .join("instances")
                .join(slug)
                .join("server.json"),
        )
        .unwrap(),
    )
    .unwrap();
    u16::try_from(v["port"].as_u64().unwrap()).unwrap()
}

/// `N` distinct loopback ports free a moment ago.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// An S3-compatible server (moto's server mode, from PyPI) on a loopback
/// port, stopped by its pid when dropped; `None` (the test skips) where
/// moto is not installed, except under `CI=true`, where that fails.
#[cfg(feature = "s3")]
pub struct S3Server {
    moto: tavern_dns::testing::moto::Moto,
    pub endpoint: String,
}

#[cfg(feature = "s3")]
impl S3Server {
    pub fn start() -> Option<Self> {
        let moto = tavern_dns::testing::moto::Moto::start()?;
        Some(S3Server {
            endpoint: moto.endpoint.clone(),
            moto,
        })
    }

    /// The bucket's listing (S3's XML, `<Key>` per object).
    pub async fn list(&self, bucket: &str) -> String {
        reqwest::get(format!("{}/{bucket}?list-type=2", self.moto.endpoint))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// What the authorization tests call operations on: a world of the
/// owner's with data in it, a backup of it and a session of it.
pub struct Target {
    pub slug: String,
    pub backup: String,
    pub session: String,
}

/// Makes a [`Target`] as `owner`: the world `body` describes (stopped,
/// with a file of data), a backup, and a session `day` days and some hours
/// from now.
pub async fn owners_target(server: &Server, owner: &Api, body: &Value, day: i64) -> Target {
    create_world(owner, body).await;
    let slug = body["slug"].as_str().unwrap().to_owned();
    let data = server
        .data_dir()
        .join("instances")
        .join(&slug)
        .join("data/Data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("notes.json"), format!("{{\"day\":{day}}}")).unwrap();
    let backup = crate::backups::backup_now(owner, &slug).await;
    let start = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 10 + day))
        .strftime("%Y-%m-%dT%H:00:00Z")
        .to_string();
    let (s, session) = owner
        .post(
            "/api/v1/sessions",
            &json!({"instance": slug, "start": start, "duration_minutes": 60}),
        )
        .await;
    assert_eq!(s, 201, "{session}");
    Target {
        slug,
        backup: backup["id"].as_str().unwrap().to_owned(),
        session: session["id"].as_str().unwrap().to_owned(),
    }
}

/// How many events of the audit log name `actor` (as an admin reads it).
pub async fn acts_of(admin: &Api, actor: &str) -> usize {
    let (s, events) = admin.get("/api/v1/events?limit=1000").await;
    assert_eq!(s, 200, "{events}");
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == actor)
        .count()
}

/// A page as anyone sees it, signed in nowhere (its status must be 200).
pub async fn page_at(url: &str) -> String {
    let r = reqwest::get(url).await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.text().await.unwrap()
}

/// A dashboard page as the session `token` sees it (its status must be 200).
pub async fn page_as(server: &Server, token: &str, path: &str) -> String {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", server.url))
        .header("cookie", format!("tavern_session={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.text().await.unwrap()
}

/// Where a redirect points.
pub fn location(resp: &reqwest::Response) -> String {
    resp.headers()["location"].to_str().unwrap().to_owned()
}

/// Who the session or API token `token` is (`/api/v1/auth/whoami`).
pub async fn whoami(server: &Server, token: &str) -> Value {
    let (s, me) = server.api(Some(token)).get("/api/v1/auth/whoami").await;
    assert_eq!(s, 200, "{me}");
    me
}
