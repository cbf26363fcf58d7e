//! Discord's REST API, as far as Tavern uses it: answering an interaction
//! later (its follow-up), and `tavern discord register`, which installs the
//! `/tavern` command's definition with the bot's token.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tavern_core::notifications::SendError;
use tavern_http::bot::{DiscordApi, SUBCOMMANDS};

use crate::config::{Config, DiscordSettings, Overrides};

/// Calls Discord's REST API at the configured base.
pub struct DiscordRest {
    http: reqwest::Client,
    settings: DiscordSettings,
}

/// The bot's interactions endpoint, answering through this REST client.
pub fn edge(settings: DiscordSettings) -> anyhow::Result<tavern_http::DiscordEdge> {
    Ok(tavern_http::DiscordEdge {
        public_key: settings.public_key,
        api: std::sync::Arc::new(DiscordRest::new(settings)?),
    })
}

impl DiscordRest {
    pub fn new(settings: DiscordSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!(
                "DiscordBot (https://github.com/tavern, ",
                env!("CARGO_PKG_VERSION"),
                ")"
            ))
            .timeout(Duration::from_secs(15))
            .build()
            .context("cannot build the HTTP client for Discord")?;
        Ok(Self { http, settings })
    }

    /// Replaces the application's global commands with `/tavern`.
    async fn register(&self) -> anyhow::Result<Value> {
        let token = self
            .settings
            .bot_token
            .as_deref()
            .context("discord register needs discord.bot_token (or bot_token_file)")?;
        let url = format!(
            "{}/applications/{}/commands",
            self.settings.api_base, self.settings.application_id
        );
        let resp = self
            .http
            .put(&url)
            .header("authorization", format!("Bot {token}"))
            .json(&json!([command_definition()]))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach Discord: {}", e.without_url()))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!(
                "Discord refused the command definitions ({status}): {}",
                body["message"].as_str().unwrap_or("no reason given")
            );
        }
        Ok(body)
    }
}

#[async_trait::async_trait]
impl DiscordApi for DiscordRest {
    async fn edit_original(&self, token: &str, content: &str) -> Result<(), SendError> {
        let url = format!(
            "{}/webhooks/{}/{token}/messages/@original",
            self.settings.api_base, self.settings.application_id
        );
        let resp = self
            .http
            .patch(&url)
            .json(&json!({ "content": content, "allowed_mentions": { "parse": [] } }))
            .send()
            .await
            .map_err(|e| SendError {
                message: format!("cannot reach Discord: {}", e.without_url()),
                retry_after: None,
            })?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(SendError {
                message: format!("Discord answered {}", resp.status()),
                retry_after: None,
            })
        }
    }
}

/// Discord's option types.
const SUB_COMMAND: u8 = 1;
const STRING: u8 = 3;
const INTEGER: u8 = 4;

fn option(name: &str, kind: u8, description: &str, required: bool) -> Value {
    json!({ "name": name, "type": kind, "description": description, "required": required })
}

/// The `/tavern` command and its subcommands, as Discord takes them.
pub fn command_definition() -> Value {
    let world = |required| option("world", STRING, "the world's name (its slug)", required);
    let sub = |name: &str, description: &str, options: Vec<Value>| json!({ "name": name, "type": SUB_COMMAND, "description": description, "options": options });
    json!({
        "name": "tavern",
        "type": 1,
        "description": "Your Foundry worlds on Tavern",
        "options": [
            sub("status", "How your worlds are (or one of them)", vec![world(false)]),
            sub("start", "Start a world", vec![world(true)]),
            sub("stop", "Stop a world", vec![world(true)]),
            sub("schedule", "Book a session: the world starts by itself a little before", vec![
                world(true),
                option("when", STRING, "date, time and time zone: 2026-11-28 19:00 Europe/Paris", true),
                option("duration", STRING, "how long: 4h, 90m, 3h30m", true),
            ]),
            sub("sessions", "Sessions to come", vec![]),
            sub("cancel", "Cancel a session", vec![option("session", STRING, "the session's id (from /tavern sessions)", true)]),
            sub("backup", "Back a world up now", vec![world(true)]),
            sub("link", "Tie this Discord account to your Tavern account", vec![
                option("code", STRING, "from: tavern user link-code", true),
            ]),
            sub("invite", "Invite someone to make an account (admins)", vec![
                option("role", STRING, "gm (default) or admin", false),
                option("uses", INTEGER, "how many accounts it may make (default 1)", false),
                option("tier", STRING, "their quota tier", false),
            ]),
            sub("overview", "Keys, worlds, sessions, usage and supporters (admins)", vec![]),
        ],
    })
}

#[derive(clap::Subcommand)]
pub enum DiscordCommand {
    /// Install the /tavern command with Discord (needs discord.application_id
    /// and discord.bot_token in the server's configuration).
    Register {
        /// The server's configuration file (default: ./tavern.toml if it
        /// exists).
        #[arg(long, env = "TAVERN_CONFIG")]
        config: Option<PathBuf>,
    },
}

pub async fn discord(cmd: DiscordCommand) -> anyhow::Result<()> {
    match cmd {
        DiscordCommand::Register { config } => {
            let config = Config::load(config.as_deref(), Overrides::default())?;
            let settings = config
                .discord
                .settings()?
                .context("discord register needs discord.public_key and discord.application_id")?;
            let answer = DiscordRest::new(settings)?.register().await?;
            let n = answer
                .as_array()
                .and_then(|a| a.first())
                .and_then(|c| c["options"].as_array())
                .map_or(SUBCOMMANDS.len(), Vec::len);
            println!("Registered /tavern with {n} subcommands.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_subcommand_is_one_the_bot_answers() {
        let def = command_definition();
        let names: Vec<&str> = def["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, SUBCOMMANDS);
        for o in def["options"].as_array().unwrap() {
            let d = o["description"].as_str().unwrap();
            assert!(!d.is_empty() && d.len() <= 100, "{d}");
        }
    }
}
