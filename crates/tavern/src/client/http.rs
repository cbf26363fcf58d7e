//! A thin HTTP client for Tavern's API: bearer auth, JSON in and out, and
//! errors that carry the server's code and message to stderr.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where to reach the server, and as whom.
#[derive(clap::Args, Clone, Debug)]
pub struct Conn {
    /// The Tavern server, e.g. http://localhost:8080.
    #[arg(long, env = "TAVERN_SERVER", global = true)]
    pub server: Option<String>,
    /// An API token (default: the one `tavern login` stored).
    #[arg(long, env = "TAVERN_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// What `tavern login` stores.
#[derive(Serialize, Deserialize)]
pub struct Credentials {
    pub server: String,
    pub token: String,
}

pub fn credentials_path() -> anyhow::Result<PathBuf> {
    let dir = dirs::config_dir()
        .context("cannot find your config directory (set HOME or XDG_CONFIG_HOME)")?;
    Ok(dir.join("tavern").join("credentials.json"))
}

pub fn load_credentials() -> Option<Credentials> {
    let text = std::fs::read_to_string(credentials_path().ok()?).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn save_credentials(c: &Credentials) -> anyhow::Result<PathBuf> {
    let path = credentials_path()?;
    let dir = path.parent().context("credentials path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _ = std::fs::remove_file(&path);
    tavern_core::secrets::write_private(&path, serde_json::to_string_pretty(c)?.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

pub struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

pub fn normalise_server(server: &str) -> anyhow::Result<String> {
    let s = server.trim().trim_end_matches('/');
    if !(s.starts_with("http://") || s.starts_with("https://")) {
        bail!("the server {s:?} must start with http:// or https://");
    }
    Ok(s.to_owned())
}

/// A PEM certificate to trust besides the system's roots, for a Tavern
/// behind a private CA or a self-signed certificate.
pub const CA_FILE_VAR: &str = "TAVERN_CA_FILE";

impl Api {
    pub fn new(server: &str, token: Option<String>) -> anyhow::Result<Self> {
        let mut http = reqwest::Client::builder()
            .user_agent(concat!("tavern-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = std::env::var_os(CA_FILE_VAR).map(PathBuf::from) {
            let shown = path.display();
            let pem = std::fs::read(&path)
                .with_context(|| format!("cannot read {CA_FILE_VAR} {shown}"))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{CA_FILE_VAR} {shown} is not a PEM certificate"))?;
            http = http.add_root_certificate(cert);
        }
        Ok(Self {
            base: normalise_server(server)?,
            token,
            http: http.build()?,
        })
    }

    /// From flags, environment, or stored credentials, in that order.
    pub fn from_conn(conn: &Conn) -> anyhow::Result<Self> {
        let stored = load_credentials();
        let server = conn
            .server
            .clone()
            .or_else(|| stored.as_ref().map(|c| c.server.clone()))
            .context("no server: pass --server URL, set TAVERN_SERVER, or run `tavern login`")?;
        let token = conn
            .token
            .clone()
            .or_else(|| stored.map(|c| c.token))
            .context("not signed in: pass --token, set TAVERN_TOKEN, or run `tavern login`")?;
        Self::new(&server, Some(token))
    }

    /// A request to the server with the token.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends a request; answers the response when it succeeded, else the
    /// server's error (code and message).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut req = self.request(method.clone(), path);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.answer(req, &method, path).await
    }

    async fn answer(
        &self,
        req: reqwest::RequestBuilder,
        method: &Method,
        path: &str,
    ) -> anyhow::Result<reqwest::Response> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the Tavern server at {}", self.base))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let bytes = resp
            .bytes()
            .await
            .context("the server's answer was cut off")?;
        match serde_json::from_slice::<tavern_error::Body>(&bytes) {
            Ok(b) => bail!("{} ({})", b.error.message, b.error.code),
            Err(_) => bail!("{method} {path} failed: HTTP {status}"),
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        json_of(self.send(method, path, body).await?).await
    }

    /// Posts `body` (of `content_type`, e.g. a zip) as it is read; answers
    /// the server's JSON.
    pub async fn upload(
        &self,
        path: &str,
        content_type: &str,
        body: reqwest::Body,
    ) -> anyhow::Result<Value> {
        let req = self
            .request(Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        json_of(self.answer(req, &Method::POST, path).await?).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// GETs an answer as the API's type for it (`tavern_api`).
    pub async fn get_as<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        read(&self.get(path).await?)
    }

    /// POSTs one of the API's requests (`tavern_api`) as JSON.
    pub async fn post(&self, path: &str, body: &impl Serialize) -> anyhow::Result<Value> {
        let body = serde_json::to_value(body).context("cannot write the request")?;
        self.call(Method::POST, path, Some(&body)).await
    }

    /// POSTs one of the API's requests and reads the answer as the API's
    /// type for it.
    pub async fn post_for<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        read(&self.post(path, body).await?)
    }

    /// POSTs to an operation that takes no fields (`{}`).
    pub async fn post_empty(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(&Value::Object(Default::default())))
            .await
    }

    /// PATCHes with one of the API's requests (`tavern_api`) as JSON.
    pub async fn patch(&self, path: &str, body: &impl Serialize) -> anyhow::Result<Value> {
        let body = serde_json::to_value(body).context("cannot write the request")?;
        self.call(Method::PATCH, path, Some(&body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::DELETE, path, None).await
    }
}

/// An answer read as the API's type for it (`tavern_api`); the client
/// keeps the JSON itself for `--json`.
pub fn read<T: DeserializeOwned>(answer: &Value) -> anyhow::Result<T> {
    T::deserialize(answer).context("the server's answer is not what Tavern sends")
}

/// A successful answer's JSON (null for none).
async fn json_of(resp: reqwest::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .context("the server's answer was cut off")?;
    if bytes.is_empty() || status == StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).context("the server answered something that is not JSON")
}

mod tavern_error {
    #[derive(serde::Deserialize)]
    pub struct Body {
        pub error: Detail,
    }
    #[derive(serde::Deserialize)]
    pub struct Detail {
        pub code: String,
        pub message: String,
    }
}
