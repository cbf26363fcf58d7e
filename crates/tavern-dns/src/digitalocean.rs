//! DigitalOcean's domain records API (v2), with a personal access token
//! that may write the domain's records: records listed by full name and
//! type, created (by their name within the domain) and deleted one by one.

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value, json};

use crate::api::{Api, Records, bare};
use crate::{DnsError, Record, RecordKind};

/// DigitalOcean's API, as its documentation gives it.
pub const API_URL: &str = "https://api.digitalocean.com/v2";

/// How to reach the domain.
#[derive(Clone, Debug)]
pub struct DigitalOceanSettings {
    /// The API's root ([`API_URL`]; another for a test's stand-in).
    pub api_url: String,
    /// A token with write access to the domain's records.
    pub token: String,
    /// The domain as DigitalOcean holds it (`games.example.org`).
    pub zone: String,
}

/// A domain at DigitalOcean.
pub struct DigitalOcean {
    api: Api,
    zone: String,
}

/// DigitalOcean's reason: `{"id": "unauthorized", "message": …}`.
fn messages(body: &Value) -> Option<String> {
    let m = body["message"].as_str()?;
    Some(match body["id"].as_str() {
        Some(id) => format!("{m} ({id})"),
        None => m.to_owned(),
    })
}

impl DigitalOcean {
    /// Checks the settings; nothing is sent yet.
    pub fn new(s: &DigitalOceanSettings) -> Result<Self, DnsError> {
        Ok(Self {
            api: Api::new("DigitalOcean", &s.api_url, &s.token)?,
            zone: bare(&s.zone),
        })
    }

    fn records_path(&self) -> String {
        format!("domains/{}/records", self.zone)
    }
}

#[async_trait]
impl Records for DigitalOcean {
    type Id = u64;

    fn zone(&self) -> &str {
        &self.zone
    }

    async fn list(&self, name: &str, kind: RecordKind) -> Result<Vec<(u64, Record)>, DnsError> {
        let url = self.api.url(
            &self.records_path(),
            &[("name", name), ("type", kind.as_str()), ("per_page", "200")],
        );
        let found = self.api.send(Method::GET, url, None, messages).await?;
        Ok(found["domain_records"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|r| r["type"] == kind.as_str())
            .filter_map(|r| Some((r["id"].as_u64()?, Record::parse(kind, r["data"].as_str()?)?)))
            .collect())
    }

    async fn delete(&self, id: &u64) -> Result<(), DnsError> {
        let url = self.api.url(&format!("{}/{id}", self.records_path()), &[]);
        self.api.send(Method::DELETE, url, None, messages).await?;
        Ok(())
    }

    async fn create(&self, name: &str, record: &Record, ttl: u32) -> Result<(), DnsError> {
        // Within the domain, as DigitalOcean names records: `@` for itself.
        let label = name.strip_suffix(&format!(".{}", self.zone)).unwrap_or("@");
        // A host name with its final dot, or DigitalOcean reads it as a
        // name within the domain.
        let data = match record {
            Record::Cname(host) => format!("{host}."),
            other => other.text(),
        };
        // DigitalOcean takes 30 seconds and more.
        let body = json!({
            "type": record.kind().as_str(),
            "name": label,
            "data": data,
            "ttl": ttl.max(30),
        });
        let url = self.api.url(&self.records_path(), &[]);
        self.api
            .send(Method::POST, url, Some(&body), messages)
            .await?;
        Ok(())
    }
}
