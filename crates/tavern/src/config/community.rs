//! The community's channels: `[discord]` (the bot and the community's
//! webhook), `[notifications]` and `[kofi]`; secrets given inline or in a
//! file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::*;

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DiscordConfig {
    /// The community's Discord webhook: notifications go there.
    pub webhook_url: Option<String>,
    /// The same, read from a file.
    pub webhook_url_file: Option<PathBuf>,
    /// The bot application's public key (hex, from Discord's developer
    /// portal): it signs every interaction. Set, the bot answers at
    /// `/discord/interactions`.
    #[serde(deserialize_with = "text_or_number")]
    pub public_key: Option<String>,
    /// The bot application's id.
    #[serde(deserialize_with = "text_or_number")]
    pub application_id: Option<String>,
    /// The bot's token, for `tavern discord register`.
    pub bot_token: Option<String>,
    pub bot_token_file: Option<PathBuf>,
    /// Discord's REST API.
    pub api_base: String,
}

impl Default for DiscordConfig {
    fn default() -> Self {
        Self {
            webhook_url: None,
            webhook_url_file: None,
            public_key: None,
            application_id: None,
            bot_token: None,
            bot_token_file: None,
            api_base: "https://discord.com/api/v10".into(),
        }
    }
}

impl DiscordConfig {
    /// The bot's settings, or `None` when no public key is configured.
    pub fn settings(&self) -> anyhow::Result<Option<DiscordSettings>> {
        let Some(key) = &self.public_key else {
            return Ok(None);
        };
        let public_key: [u8; 32] = hex::decode(key.trim())
            .ok()
            .and_then(|k| k.try_into().ok())
            .context("invalid configuration: discord.public_key must be 64 hex digits (the application's public key)")?;
        let application_id = self
            .application_id
            .clone()
            .filter(|a| !a.trim().is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
            .context(
                "invalid configuration: discord.public_key needs discord.application_id (digits)",
            )?;
        anyhow::ensure!(
            self.api_base.starts_with("https://") || self.api_base.starts_with("http://"),
            "invalid configuration: discord.api_base must be an http(s) address"
        );
        Ok(Some(DiscordSettings {
            public_key,
            application_id,
            bot_token: secret_value("discord.bot_token", &self.bot_token, &self.bot_token_file)?,
            api_base: self.api_base.trim_end_matches('/').to_owned(),
        }))
    }
}

/// Shows whether the webhook is set, not the address.
impl std::fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordConfig")
            .field(
                "webhook_url",
                &self.webhook_url.as_ref().map(|_| "<hidden>"),
            )
            .field("webhook_url_file", &self.webhook_url_file)
            .field("public_key", &self.public_key)
            .field("application_id", &self.application_id)
            .field("bot_token", &self.bot_token.as_ref().map(|_| "<hidden>"))
            .field("bot_token_file", &self.bot_token_file)
            .field("api_base", &self.api_base)
            .finish()
    }
}

/// An optional value people write as text that may look like a number
/// (Discord's ids are digits; environment variables read as numbers).
pub(super) fn text_or_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    Ok(Option::<TextOrNumber>::deserialize(d)?.map(String::from))
}

/// A list of such values.
pub(super) fn texts_or_numbers<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<String>, D::Error> {
    Ok(Vec::<TextOrNumber>::deserialize(d)?
        .into_iter()
        .map(String::from)
        .collect())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrNumber {
    Text(String),
    Whole(u64),
}

impl From<TextOrNumber> for String {
    fn from(r: TextOrNumber) -> String {
        match r {
            TextOrNumber::Text(s) => s,
            TextOrNumber::Whole(n) => n.to_string(),
        }
    }
}

/// A secret from the configuration itself or from a file it names.
pub(super) fn secret_value(
    key: &str,
    value: &Option<String>,
    file: &Option<PathBuf>,
) -> anyhow::Result<Option<String>> {
    let v = match (value, file) {
        (Some(v), None) => v.trim().to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| {
                format!(
                    "invalid configuration: cannot read {key}_file {}",
                    path.display()
                )
            })?
            .trim()
            .to_owned(),
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            anyhow::bail!("invalid configuration: set {key} or {key}_file, not both")
        }
    };
    anyhow::ensure!(!v.is_empty(), "invalid configuration: {key} is empty");
    Ok(Some(v))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// The first retry of a failed delivery waits this long, doubling up
    /// to `retry_max_seconds`.
    pub retry_initial_seconds: u64,
    pub retry_max_seconds: u64,
    /// A notification still undelivered this long after it was raised is
    /// given up.
    pub give_up_hours: u32,
    /// Owners are reminded this long before a session begins.
    pub reminder_minutes: u32,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            retry_initial_seconds: 5,
            retry_max_seconds: 600,
            give_up_hours: 48,
            reminder_minutes: 30,
        }
    }
}

impl Config {
    /// Where notifications go and how they are retried.
    pub fn notify_settings(&self) -> anyhow::Result<tavern_core::NotifySettings> {
        let n = &self.notifications;
        Ok(tavern_core::NotifySettings {
            community_webhook: secret_value(
                "discord.webhook_url",
                &self.discord.webhook_url,
                &self.discord.webhook_url_file,
            )?,
            retry_initial: Duration::from_secs(n.retry_initial_seconds),
            retry_max: Duration::from_secs(n.retry_max_seconds),
            give_up_after: jiff::SignedDuration::from_hours(i64::from(n.give_up_hours)),
            reminder_before: jiff::SignedDuration::from_mins(i64::from(n.reminder_minutes)),
        })
    }
}

#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KofiConfig {
    /// The token Ko-fi sends with each payment notice (its webhooks page);
    /// unset: `POST /webhooks/kofi` takes nothing.
    pub verification_token: Option<String>,
    /// The same, read from a file.
    pub verification_token_file: Option<PathBuf>,
    /// Ko-fi membership tier names to quota tiers (`[tiers.NAME]`).
    pub tiers: BTreeMap<String, String>,
}

/// Shows everything but the token.
impl std::fmt::Debug for KofiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KofiConfig")
            .field(
                "verification_token",
                &self.verification_token.as_ref().map(|_| "<hidden>"),
            )
            .field("verification_token_file", &self.verification_token_file)
            .field("tiers", &self.tiers)
            .finish()
    }
}

impl KofiConfig {
    /// The webhook's settings, or `None` when no token is configured.
    pub fn settings(&self) -> anyhow::Result<Option<tavern_core::KofiSettings>> {
        let Some(token) = secret_value(
            "kofi.verification_token",
            &self.verification_token,
            &self.verification_token_file,
        )?
        else {
            return Ok(None);
        };
        Ok(Some(tavern_core::KofiSettings {
            verification_token: token,
            tiers: self.tiers.clone(),
        }))
    }
}

impl Config {
    /// `[kofi]` (its tiers among `[tiers.NAME]`), `[discord]` and
    /// `[notifications]`.
    pub(super) fn check_community(&self) -> anyhow::Result<()> {
        self.kofi.settings()?;
        self.discord.settings()?;
        let n = self.notify_settings()?;
        if let Some(url) = &n.community_webhook {
            anyhow::ensure!(
                url.starts_with("https://") || url.starts_with("http://"),
                "invalid configuration: discord.webhook_url must be an https:// address"
            );
        }
        anyhow::ensure!(
            self.notifications.retry_initial_seconds >= 1
                && self.notifications.retry_max_seconds >= self.notifications.retry_initial_seconds
                && self.notifications.give_up_hours >= 1,
            "invalid configuration: notifications.retry_initial_seconds and give_up_hours must be at least 1, retry_max_seconds at least retry_initial_seconds"
        );
        for (kofi, tier) in &self.kofi.tiers {
            anyhow::ensure!(
                self.tiers.contains_key(tier),
                "invalid configuration: kofi.tiers maps {kofi:?} to {tier:?}, which is no [tiers.NAME]"
            );
        }
        Ok(())
    }
}

/// The bot, as configured.
#[derive(Clone)]
pub struct DiscordSettings {
    /// The application's Ed25519 public key (it signs every interaction).
    pub public_key: [u8; 32],
    pub application_id: String,
    /// For `tavern discord register` (a secret).
    pub bot_token: Option<String>,
    /// Discord's REST API, e.g. `https://discord.com/api/v10`.
    pub api_base: String,
}

impl std::fmt::Debug for DiscordSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordSettings")
            .field("application_id", &self.application_id)
            .field("bot_token", &self.bot_token.as_ref().map(|_| "***"))
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}
