//! Cloudflare's DNS records API (v4), with an API token that may edit the
//! zone's DNS: records listed by name and type, created and deleted one
//! by one. Names Tavern writes are never proxied (players reach Tavern
//! itself, which holds the worlds' certificates).

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::api::{Api, Records, bare};
use crate::{DnsError, Record, RecordKind};

/// Cloudflare's API, as its documentation gives it.
pub const API_URL: &str = "https://api.cloudflare.com/client/v4";

/// How to reach the zone.
#[derive(Clone, Debug)]
pub struct CloudflareSettings {
    /// The API's root ([`API_URL`]; another for a test's stand-in).
    pub api_url: String,
    /// An API token with `Zone.DNS:Edit` on the zone (and `Zone:Read`
    /// when the zone's id is not given).
    pub token: String,
    /// The zone's name (`games.example.org`).
    pub zone: String,
    /// The zone's id; looked up by its name when not given.
    pub zone_id: Option<String>,
}

/// A zone at Cloudflare.
pub struct Cloudflare {
    api: Api,
    zone: String,
    zone_id: OnceCell<String>,
}

/// Cloudflare's reasons: `{"errors": [{"code": …, "message": …}]}`.
fn messages(body: &Value) -> Option<String> {
    let list: Vec<String> = body["errors"]
        .as_array()?
        .iter()
        .filter_map(|e| {
            let m = e["message"].as_str()?;
            Some(match e["code"].as_i64() {
                Some(code) => format!("{m} ({code})"),
                None => m.to_owned(),
            })
        })
        .collect();
    (!list.is_empty()).then(|| list.join("; "))
}

impl Cloudflare {
    /// Checks the settings; nothing is sent yet.
    pub fn new(s: &CloudflareSettings) -> Result<Self, DnsError> {
        let zone_id = OnceCell::new();
        if let Some(id) = s.zone_id.as_deref().filter(|id| !id.trim().is_empty()) {
            let id = id.trim();
            if !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(DnsError::Invalid(
                    "the Cloudflare zone id is letters and digits".into(),
                ));
            }
            let _ = zone_id.set(id.to_owned());
        }
        Ok(Self {
            api: Api::new("Cloudflare", &s.api_url, &s.token)?,
            zone: bare(&s.zone),
            zone_id,
        })
    }

    async fn zone_id(&self) -> Result<&str, DnsError> {
        self.zone_id
            .get_or_try_init(|| async {
                let url = self.api.url("zones", &[("name", &self.zone)]);
                let found = self.api.send(Method::GET, url, None, messages).await?;
                found["result"][0]["id"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        DnsError::Refused(format!(
                            "Cloudflare: the token sees no zone named {}",
                            self.zone
                        ))
                    })
            })
            .await
            .map(String::as_str)
    }
}

#[async_trait]
impl Records for Cloudflare {
    type Id = String;

    fn zone(&self) -> &str {
        &self.zone
    }

    async fn list(&self, name: &str, kind: RecordKind) -> Result<Vec<(String, Record)>, DnsError> {
        let zone = self.zone_id().await?;
        let url = self.api.url(
            &format!("zones/{zone}/dns_records"),
            &[("name", name), ("type", kind.as_str()), ("per_page", "100")],
        );
        let found = self.api.send(Method::GET, url, None, messages).await?;
        Ok(found["result"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|r| r["type"] == kind.as_str())
            .filter_map(|r| {
                let id = r["id"].as_str()?.to_owned();
                let record = Record::parse(kind, r["content"].as_str()?)?;
                Some((id, record))
            })
            .collect())
    }

    async fn delete(&self, id: &String) -> Result<(), DnsError> {
        let zone = self.zone_id().await?;
        let url = self.api.url(&format!("zones/{zone}/dns_records/{id}"), &[]);
        self.api.send(Method::DELETE, url, None, messages).await?;
        Ok(())
    }

    async fn create(&self, name: &str, record: &Record, ttl: u32) -> Result<(), DnsError> {
        let kind = record.kind();
        // Cloudflare takes 1 (automatic) or 60 and more.
        let mut body = json!({
            "type": kind.as_str(),
            "name": name,
            "content": record.text(),
            "ttl": ttl.max(60),
        });
        if kind != RecordKind::Txt {
            body["proxied"] = json!(false);
        }
        let zone = self.zone_id().await?;
        let url = self.api.url(&format!("zones/{zone}/dns_records"), &[]);
        self.api
            .send(Method::POST, url, Some(&body), messages)
            .await?;
        Ok(())
    }
}
