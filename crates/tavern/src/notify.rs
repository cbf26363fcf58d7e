//! Delivers notifications over HTTP: Discord's webhook format
//! (`{"content": …}`, mentions off), 429's `retry_after` honoured, and
//! errors that never repeat the webhook's address (it holds a token).

use std::time::Duration;

use anyhow::Context as _;
use tavern_core::notifications::{SendError, WebhookSender};

pub struct HttpWebhooks {
    http: reqwest::Client,
}

impl HttpWebhooks {
    pub fn new() -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("tavern/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(15))
            .build()
            .context("cannot build the HTTP client for notifications")?;
        Ok(Self { http })
    }
}

fn failed(message: impl Into<String>) -> SendError {
    SendError {
        message: message.into(),
        retry_after: None,
    }
}

#[async_trait::async_trait]
impl WebhookSender for HttpWebhooks {
    async fn post(&self, url: &str, message: &str) -> Result<(), SendError> {
        let body = serde_json::json!({
            "content": message,
            "allowed_mentions": { "parse": [] },
        });
        let resp = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .map_err(|e| failed(format!("cannot reach the webhook: {}", e.without_url())))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let header_wait = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<f64>().ok());
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let wait = body["retry_after"].as_f64().or(header_wait);
        Err(SendError {
            message: format!("the webhook answered {status}"),
            retry_after: (status.as_u16() == 429)
                .then(|| wait.map(|s| Duration::from_secs_f64(s.clamp(0.0, 3600.0))))
                .flatten(),
        })
    }
}
