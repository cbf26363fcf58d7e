//! `tavern foundry-stub` (and the `foundry-stub` binary of its container
//! image): a stand-in for a Foundry VTT server, so that every
//! runtime, the proxy and the tests run on the real code paths without a
//! license. It takes Foundry's flags and felddy's container environment,
//! reads and writes `Config/` as they do, serves `[/prefix]/api/status`
//! (`users` = open sockets), a join page and an echoing WebSocket at
//! `[/prefix]/socket.io/`, holds a lock on its data directory (two servers
//! never share one, like LevelDB), writes a world file while it runs, and
//! flushes and exits 0 on SIGTERM. `GET /_stub/license` tells the key it
//! runs with (and its data directory, hostname and the machine's host
//! name, which Foundry signs its license for), `GET /_stub/config` the
//! options it read, `GET /_stub/packages` the packages it finds (by
//! Foundry's rule, in `packages`), `GET /_stub/storage` the S3 storage its `awsConfig`
//! gives it (as Foundry reads that file; never the secret key),
//! `/_stub/echo` what reached it (method, path, headers, body size),
//! `/_stub/blob/N` N bytes (a made-up asset, for benchmarks),
//! `/_stub/world-load` a page like Foundry's game page with its ~300 assets
//! (for `bench/world-load.sh`).

mod load;
pub mod packages;
pub mod signals;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get};
use serde_json::{Map, Value, json};

/// The version the stand-in reports in `/api/status`.
pub const STUB_FOUNDRY_VERSION: &str = tavern_foundry::version::STAND_IN;
const DEFAULT_PORT: u16 = 30000;
const DEFAULT_WORLD: &str = "stub-world";

/// Foundry's command-line flags (those felddy and Tavern use).
#[derive(clap::Args, Debug)]
pub struct StubArgs {
    #[arg(long)]
    port: Option<u16>,
    #[arg(long = "dataPath", env = "FOUNDRY_VTT_DATA_PATH")]
    data_path: Option<PathBuf>,
    #[arg(long)]
    world: Option<String>,
    #[arg(long)]
    noupnp: bool,
    #[arg(long)]
    noupdate: bool,
    #[arg(long)]
    headless: bool,
    #[arg(long)]
    noipdiscovery: bool,
    #[arg(long)]
    nobackups: bool,
    #[arg(long = "adminPassword")]
    admin_password: Option<String>,
    /// Address to bind (Foundry binds every interface; the stand-in binds
    /// loopback unless it runs in a container, i.e. with felddy's variables).
    #[arg(long, hide = true)]
    bind: Option<IpAddr>,
}

/// felddy's environment, as its entrypoint and launcher apply it.
#[derive(Debug, Default)]
struct Felddy {
    vars: BTreeMap<String, String>,
}

impl Felddy {
    fn from_env() -> Self {
        Self {
            vars: std::env::vars()
                .filter(|(k, _)| {
                    (k.starts_with("FOUNDRY_") && k != "FOUNDRY_VTT_DATA_PATH")
                        || k.starts_with("CONTAINER_")
                })
                .collect(),
        }
    }

    /// In felddy's image: any `FOUNDRY_*` setting (Foundry's own
    /// `FOUNDRY_VTT_DATA_PATH` aside) means the container entrypoint runs.
    fn active(&self) -> bool {
        self.vars.keys().any(|k| k.starts_with("FOUNDRY_"))
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.vars
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, k: &str) -> bool {
        self.get(k) == Some("true")
    }

    /// `set_options.ts`: the options.json felddy generates.
    fn options(&self) -> Value {
        let s = |k: &str| {
            self.get(k)
                .map_or(Value::Null, |v| Value::String(v.to_owned()))
        };
        let proxy_port = self
            .get("FOUNDRY_PROXY_PORT")
            .and_then(|p| p.parse::<i64>().ok())
            .map_or(Value::Null, |p| json!(p.clamp(1, 65535)));
        json!({
            "compressSocket": self.flag("FOUNDRY_COMPRESS_WEBSOCKET"),
            "compressStatic": self.flag("FOUNDRY_MINIFY_STATIC_FILES"),
            "cssTheme": self.get("FOUNDRY_CSS_THEME").unwrap_or("dark"),
            "dataPath": "/data",
            "fullscreen": false,
            "hostname": s("FOUNDRY_HOSTNAME"),
            "language": self.get("FOUNDRY_LANGUAGE").unwrap_or("en.core"),
            "localHostname": s("FOUNDRY_LOCAL_HOSTNAME"),
            "passwordSalt": s("FOUNDRY_PASSWORD_SALT"),
            "port": DEFAULT_PORT,
            "protocol": Value::Null,
            "proxyPort": proxy_port,
            "proxySSL": self.flag("FOUNDRY_PROXY_SSL"),
            "routePrefix": s("FOUNDRY_ROUTE_PREFIX"),
            "sslCert": s("FOUNDRY_SSL_CERT"),
            "sslKey": s("FOUNDRY_SSL_KEY"),
            "updateChannel": "stable",
            "upnp": self.flag("FOUNDRY_UPNP"),
            "world": s("FOUNDRY_WORLD"),
        })
    }

    /// The entrypoint's and launcher's writes into `Config/`.
    fn apply(&self, config: &Path) -> anyhow::Result<()> {
        let license = config.join("license.json");
        if let Some(key) = self.get("FOUNDRY_LICENSE_KEY") {
            let key: String = key.chars().filter(|c| *c != '-').collect();
            if key.len() >= 24 && !license.exists() {
                write(&license, &tavern_foundry::license_json(&key))?;
            }
        }
        let options = config.join("options.json");
        let preserve = self.flag("CONTAINER_PRESERVE_CONFIG");
        if !(preserve && options.exists()) {
            write(&options, &serde_json::to_string_pretty(&self.options())?)?;
        }
        let admin = config.join("admin.txt");
        if !(preserve && admin.exists()) {
            match self.get("FOUNDRY_ADMIN_KEY") {
                Some(key) => {
                    let salt = self
                        .get("FOUNDRY_PASSWORD_SALT")
                        .unwrap_or(tavern_foundry::DEFAULT_ADMIN_SALT);
                    write(&admin, &tavern_foundry::admin_key_hash(key, salt))?;
                }
                None => {
                    let _ = std::fs::remove_file(&admin);
                }
            }
        }
        Ok(())
    }
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// The parts of `Config/options.json` the stand-in acts on.
#[derive(Debug, Clone, PartialEq)]
struct Options {
    raw: Map<String, Value>,
    port: Option<u16>,
    route_prefix: Option<String>,
    world: Option<String>,
}

impl Options {
    fn read(path: &Path) -> anyhow::Result<Self> {
        let raw = match std::fs::read_to_string(path) {
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(m)) => m,
                Ok(_) | Err(_) => bail!(
                    "{} is not a JSON object; Foundry would not start",
                    path.display()
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let port = match raw.get("port") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .with_context(|| format!("options.json: port {v} is not a port number"))?,
            ),
        };
        let route_prefix = raw
            .get("routePrefix")
            .and_then(Value::as_str)
            .map(|p| p.trim_matches('/').to_owned())
            .filter(|p| !p.is_empty());
        let world = raw.get("world").and_then(Value::as_str).map(str::to_owned);
        Ok(Self {
            raw,
            port,
            route_prefix,
            world,
        })
    }
}

struct Stub {
    data_path: PathBuf,
    world: String,
    license: Option<String>,
    options: Options,
    /// What `awsConfig` gave it, as `/_stub/storage` tells.
    storage: Value,
    sockets: AtomicU64,
    sockets_total: AtomicU64,
    started: Instant,
    state_file: PathBuf,
}

impl Stub {
    fn prefix(&self) -> String {
        self.options
            .route_prefix
            .as_ref()
            .map(|p| format!("/{p}"))
            .unwrap_or_default()
    }

    fn write_state(&self, running: bool) -> anyhow::Result<()> {
        let state = json!({
            "world": self.world,
            "running": running,
            "pid": std::process::id(),
            "sockets_served": self.sockets_total.load(Ordering::Relaxed),
            "written_at_ms": now_ms() as u64,
        });
        let tmp = self.state_file.with_extension("json.tmp");
        write(&tmp, &serde_json::to_string_pretty(&state)?)?;
        File::open(&tmp).and_then(|f| f.sync_all()).ok();
        std::fs::rename(&tmp, &self.state_file)
            .with_context(|| format!("cannot write {}", self.state_file.display()))
    }
}

pub async fn run(args: StubArgs) -> anyhow::Result<()> {
    let felddy = Felddy::from_env();
    let data = match &args.data_path {
        Some(p) => p.clone(),
        None if felddy.active() => PathBuf::from("/data"),
        None => bail!("pass --dataPath=DIR (Foundry's user data directory)"),
    };
    let config = data.join("Config");
    for dir in [&config, &data.join("Data/worlds"), &data.join("Logs")] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }

    // Like LevelDB's LOCK: one server per data directory, released on exit.
    let lock_path = data.join("Config/.stub-lock");
    let lock =
        File::create(&lock_path).with_context(|| format!("cannot open {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        bail!(
            "LEVEL_LOCKED: the data directory {} is in use by another server",
            data.display()
        );
    }

    if felddy.active() {
        felddy.apply(&config)?;
    }
    let options = Options::read(&config.join("options.json"))?;
    let license = match std::fs::read_to_string(config.join("license.json")) {
        Ok(text) => serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("license").and_then(Value::as_str).map(str::to_owned)),
        Err(_) => None,
    };
    let world = args
        .world
        .clone()
        .or_else(|| options.world.clone())
        .or_else(|| only_world(&data))
        .unwrap_or_else(|| DEFAULT_WORLD.to_owned());
    if world.is_empty()
        || !world
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("the world id {world:?} is not a directory name");
    }
    let world_dir = data.join("Data/worlds").join(&world);
    std::fs::create_dir_all(world_dir.join("data"))?;
    let world_json = world_dir.join("world.json");
    if !world_json.exists() {
        write(
            &world_json,
            &serde_json::to_string_pretty(
                &json!({"id": world, "title": world, "system": "stub", "coreVersion": STUB_FOUNDRY_VERSION}),
            )?,
        )?;
    }

    let port = args.port.or(options.port).unwrap_or(DEFAULT_PORT);
    let bind = args.bind.unwrap_or(if felddy.active() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    });
    let stub = Arc::new(Stub {
        data_path: data.clone(),
        world,
        license,
        storage: storage_of(&config, &options.raw),
        options,
        sockets: AtomicU64::new(0),
        sockets_total: AtomicU64::new(0),
        started: Instant::now(),
        state_file: world_dir.join("data/state.json"),
    });
    stub.write_state(true)?;

    let stop_signal = signals::termination()?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(bind, port))
        .await
        .with_context(|| format!("cannot listen on port {port}"))?;
    let port = listener.local_addr()?.port();
    println!(
        "FoundryVTT | stand-in {STUB_FOUNDRY_VERSION} | world {} | Server started and listening on port {port}",
        stub.world
    );

    let app = app(stub.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await
    });
    stop_signal.await;
    println!("FoundryVTT | stand-in | shutting down: flushing world data");
    let _ = stop_tx.send(());
    // Open WebSockets do not hold the shutdown up for long.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    stub.write_state(false)?;
    drop(lock);
    Ok(())
}

fn app(stub: Arc<Stub>) -> Router {
    let inner = Router::new()
        .route("/api/status", get(status))
        .route("/join", get(join))
        .route("/socket.io/", get(socket))
        .route("/", get(root))
        .route("/_stub/license", get(license))
        .route("/_stub/config", get(config))
        .route("/_stub/storage", get(storage))
        .route("/_stub/packages", get(packages))
        .route("/_stub/echo", any(echo_request))
        .route("/_stub/blob/{bytes}", get(blob))
        .route("/_stub/world-load", get(load::page))
        .route("/_stub/asset/{bytes}/{name}", get(load::asset));
    let routed = match &stub.options.route_prefix {
        Some(p) => Router::new()
            .route(&format!("/{p}/"), get(root))
            .nest(&format!("/{p}"), inner)
            .route("/_stub/license", get(license))
            .route("/_stub/config", get(config))
            .route("/_stub/storage", get(storage))
            .route("/_stub/packages", get(packages)),
        None => inner,
    };
    routed.with_state(stub)
}

async fn status(State(s): State<Arc<Stub>>) -> axum::Json<Value> {
    axum::Json(json!({
        "active": true,
        "version": STUB_FOUNDRY_VERSION,
        "world": s.world,
        "system": "stub",
        "systemVersion": "1.0.0",
        "users": s.sockets.load(Ordering::Relaxed),
        "uptime": s.started.elapsed().as_millis() as u64,
    }))
}

async fn root(State(s): State<Arc<Stub>>) -> Redirect {
    Redirect::to(&format!("{}/join", s.prefix()))
}

async fn join(State(s): State<Arc<Stub>>) -> Html<String> {
    let world = &s.world;
    let players = s.sockets.load(Ordering::Relaxed);
    Html(format!(
        "<!DOCTYPE html><html><head><title>{world}</title></head><body>\
         <h1>{world}</h1><p>Foundry VTT stand-in {STUB_FOUNDRY_VERSION}</p>\
         <p>Current Players {players}</p></body></html>"
    ))
}

/// The key this server runs with, which data directory it serves and the
/// host it believes it is (so that a test can tell servers apart even when
/// a port or an address is reused).
async fn license(State(s): State<Arc<Stub>>) -> axum::Json<Value> {
    axum::Json(json!({
        "license": s.license,
        "dataPath": s.data_path.display().to_string(),
        "hostname": s.options.raw.get("hostname"),
        // The machine's host name as Foundry sees it (and signs its
        // license for): the C library's gethostname.
        "machine": nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()),
    }))
}

/// What reached the server: method, path, headers and how many body bytes
/// (read as a stream, never held whole), so tests can see what a proxy
/// passed on.
async fn echo_request(
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> axum::Json<Value> {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let mut bytes = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            bytes += data.len() as u64;
        }
    }
    let headers: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                Value::String(v.to_str().unwrap_or("").to_owned()),
            )
        })
        .collect();
    axum::Json(json!({
        "method": method.as_str(),
        "path": uri.path(),
        "headers": headers,
        "bytes": bytes,
    }))
}

/// `bytes` bytes of a made-up asset (at most 64 MiB), for benchmarks of
/// large responses.
async fn blob(axum::extract::Path(bytes): axum::extract::Path<usize>) -> Response {
    let bytes = bytes.min(64 * 1024 * 1024);
    (
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        vec![b'x'; bytes],
    )
        .into_response()
}

/// The S3 storage `options.json`'s `awsConfig` gives: `true` (the AWS
/// SDK's own credentials), or a file named relative to `Config/` (or
/// absolute) holding the buckets, region, endpoint and key. What it read,
/// without the secret; `null` without storage.
fn storage_of(config: &Path, options: &Map<String, Value>) -> Value {
    match options.get("awsConfig") {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Bool(true)) => json!({"ambient": true}),
        Some(Value::String(file)) => {
            let read = std::fs::read_to_string(config.join(file))
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()));
            match read {
                Ok(v) => json!({
                    "file": file,
                    "buckets": v.get("buckets"),
                    "region": v.get("region"),
                    "endpoint": v.get("endpoint"),
                    "forcePathStyle": v.get("forcePathStyle"),
                    "accessKeyId": v.pointer("/credentials/accessKeyId"),
                    "hasSecret": v.pointer("/credentials/secretAccessKey").is_some_and(Value::is_string),
                }),
                Err(e) => json!({"file": file, "error": e}),
            }
        }
        Some(other) => json!({"error": format!("awsConfig is {other}, not a path or true")}),
    }
}

async fn storage(State(s): State<Arc<Stub>>) -> axum::Json<Value> {
    axum::Json(s.storage.clone())
}

async fn packages(State(s): State<Arc<Stub>>) -> axum::Json<Value> {
    let data = s.data_path.clone();
    axum::Json(
        tokio::task::spawn_blocking(move || packages::discover(&data))
            .await
            .unwrap_or_default(),
    )
}

async fn config(State(s): State<Arc<Stub>>) -> axum::Json<Value> {
    axum::Json(Value::Object(s.options.raw.clone()))
}

async fn socket(State(s): State<Arc<Stub>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| echo(s, socket)).into_response()
}

/// Counts the socket while it is open and echoes what it receives.
async fn echo(s: Arc<Stub>, mut socket: WebSocket) {
    s.sockets.fetch_add(1, Ordering::Relaxed);
    s.sockets_total.fetch_add(1, Ordering::Relaxed);
    while let Some(Ok(msg)) = socket.recv().await {
        let reply = match msg {
            Message::Text(_) | Message::Binary(_) => msg,
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
    s.sockets.fetch_sub(1, Ordering::Relaxed);
}

/// The one world in `Data/worlds/` (a folder with a `world.json`), if
/// there is exactly one: what the stand-in launches when none is named (a
/// real Foundry shows its setup page instead).
fn only_world(data: &std::path::Path) -> Option<String> {
    let worlds: Vec<String> = std::fs::read_dir(data.join("Data/worlds"))
        .ok()?
        .flatten()
        .filter(|e| e.path().join("world.json").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    match worlds.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn felddy_options_follow_the_environment() {
        let f = Felddy {
            vars: [
                ("FOUNDRY_HOSTNAME", "w.example.org"),
                ("FOUNDRY_PROXY_SSL", "true"),
                ("FOUNDRY_PROXY_PORT", "99999"),
                ("FOUNDRY_ROUTE_PREFIX", "w"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        };
        let o = f.options();
        assert_eq!(o["hostname"], "w.example.org");
        assert_eq!(o["proxySSL"], true);
        assert_eq!(o["proxyPort"], 65535);
        assert_eq!(o["routePrefix"], "w");
        assert_eq!(o["port"], 30000);
        assert_eq!(o["upnp"], false);
    }

    #[test]
    fn options_are_read_with_their_prefix_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("options.json");
        std::fs::write(
            &p,
            r#"{"port": 31000, "routePrefix": "/games/", "other": 1}"#,
        )
        .unwrap();
        let o = Options::read(&p).unwrap();
        assert_eq!(o.port, Some(31000));
        assert_eq!(o.route_prefix.as_deref(), Some("games"));
        std::fs::write(&p, "not json").unwrap();
        assert!(Options::read(&p).is_err());
        std::fs::write(&p, r#"{"port": 70000}"#).unwrap();
        assert!(Options::read(&p).is_err());
    }
}
