//! What the HTTP providers' drivers share: a JSON client with a bearer
//! token and a deadline, whose failures become [`DnsError`]s that never
//! hold the token.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use crate::{DnsError, DnsProvider, Record, RecordKind};

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A provider's HTTP API.
pub(crate) struct Api {
    http: reqwest::Client,
    base: Url,
    token: String,
    /// The provider's name, for errors.
    provider: &'static str,
}

impl Api {
    /// `base` is the API's root (`https://api.cloudflare.com/client/v4`).
    pub(crate) fn new(provider: &'static str, base: &str, token: &str) -> Result<Self, DnsError> {
        let mut base = Url::parse(base).map_err(|e| {
            DnsError::Invalid(format!(
                "the {provider} API's address {base:?} is not a URL: {e}"
            ))
        })?;
        if !matches!(base.scheme(), "https" | "http") {
            return Err(DnsError::Invalid(format!(
                "the {provider} API's address must be https://"
            )));
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        if token.trim().is_empty() {
            return Err(DnsError::Invalid(format!(
                "the {provider} API token is empty"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| DnsError::Invalid(format!("cannot make an HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            token: token.trim().to_owned(),
            provider,
        })
    }

    /// The URL of `path` (relative to the base) with `query`.
    pub(crate) fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.join(path).unwrap_or_else(|_| self.base.clone());
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends a request; the answer's JSON (`Null` for an empty one).
    /// `messages` reads the provider's reasons out of an error's body.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        messages: fn(&Value) -> Option<String>,
    ) -> Result<Value, DnsError> {
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(&self.token)
            .header("accept", "application/json");
        if let Some(body) = body {
            req = req.json(body);
        }
        let provider = self.provider;
        let resp = req.send().await.map_err(|e| {
            // Without the URL: it may name the zone, never the token, but
            // reqwest's text repeats it at length.
            DnsError::Unreachable(format!("{provider}: {}", e.without_url()))
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| DnsError::Unreachable(format!("{provider}: {}", e.without_url())))?;
        let json: Value = match bytes.is_empty() {
            true => Value::Null,
            false => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        };
        if status.is_success() {
            return Ok(json);
        }
        let why = messages(&json).unwrap_or_else(|| status.to_string());
        Err(match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT => {
                DnsError::Unreachable(format!("{provider}: {why}"))
            }
            s if s.is_server_error() => DnsError::Unreachable(format!("{provider}: {why}")),
            _ => DnsError::Refused(format!("{provider}: {why}")),
        })
    }
}

/// A full host name without its final dot, in lower case.
pub(crate) fn bare(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// `name` is `zone` or a name under it.
pub(crate) fn in_zone(name: &str, zone: &str) -> bool {
    let (name, zone) = (bare(name), bare(zone));
    name == zone || name.ends_with(&format!(".{zone}"))
}

/// What an HTTP provider offers on one zone: records listed by name and
/// kind with their ids, deleted by id, created one by one; that makes a
/// [`DnsProvider`] of it.
#[async_trait::async_trait]
pub(crate) trait Records: Send + Sync {
    type Id: Send + Sync;
    /// The zone's name, without its final dot.
    fn zone(&self) -> &str;
    async fn list(&self, name: &str, kind: RecordKind)
    -> Result<Vec<(Self::Id, Record)>, DnsError>;
    async fn delete(&self, id: &Self::Id) -> Result<(), DnsError>;
    /// Adds one record to `name` (a full name in the zone).
    async fn create(&self, name: &str, record: &Record, ttl: u32) -> Result<(), DnsError>;
}

fn checked<R: Records>(api: &R, name: &str) -> Result<String, DnsError> {
    match in_zone(name, api.zone()) {
        true => Ok(bare(name)),
        false => Err(DnsError::Invalid(format!(
            "{name} is not in the zone {}",
            api.zone()
        ))),
    }
}

/// Every provider of [`Records`] is a [`DnsProvider`].
#[async_trait::async_trait]
impl<R: Records + 'static> DnsProvider for R {
    async fn get(&self, name: &str, kind: RecordKind) -> Result<Vec<Record>, DnsError> {
        let name = checked(self, name)?;
        let found = self.list(&name, kind).await?;
        Ok(found.into_iter().map(|(_, r)| r).collect())
    }

    /// Each kind in `records`: what is there and not wanted deleted, what
    /// is wanted and not there created.
    async fn set(&self, name: &str, records: &[Record], ttl: u32) -> Result<(), DnsError> {
        let name = checked(self, name)?;
        let mut kinds: Vec<RecordKind> = records.iter().map(Record::kind).collect();
        kinds.sort();
        kinds.dedup();
        for kind in kinds {
            let wanted: Vec<&Record> = records.iter().filter(|r| r.kind() == kind).collect();
            let there = self.list(&name, kind).await?;
            for (id, r) in &there {
                if !wanted.contains(&r) {
                    self.delete(id).await?;
                }
            }
            for r in wanted {
                if !there.iter().any(|(_, t)| t == r) {
                    self.create(&name, r, ttl).await?;
                }
            }
        }
        Ok(())
    }

    async fn remove(&self, name: &str, kind: RecordKind) -> Result<(), DnsError> {
        let name = checked(self, name)?;
        for (id, _) in self.list(&name, kind).await? {
            self.delete(&id).await?;
        }
        Ok(())
    }
}
