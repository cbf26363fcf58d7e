//! `[log]`: the level filter and the format of Tavern's own log.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `tavern=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl LogConfig {
    /// The level is an `EnvFilter` directive.
    pub(super) fn check(&self) -> anyhow::Result<()> {
        tracing_subscriber::EnvFilter::try_new(&self.level)
            .with_context(|| format!("invalid configuration: log.level {:?}", self.level))?;
        Ok(())
    }
}
