//! The Discord bot's one command, `/tavern`, and its subcommands: who asks
//! (a Discord account linked to a Tavern user acts with exactly that
//! user's rights, through the same core operations as the API; an
//! unlinked one can only link), what they asked, and the answer in words.
//! Work that takes a while (starting a world, a backup) is acknowledged at
//! once and answered in a follow-up.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};
use tavern_core::notifications::SendError;
use tavern_core::words::minutes;
use tavern_core::{Caller, CoreError, DiscordLink, NewInvite, NewSession, Tavern};
use tavern_types::{BackupStatus, DesiredState, ObservedState};

/// The subcommands of `/tavern`, as registered with Discord.
pub const SUBCOMMANDS: &[&str] = &[
    "status", "start", "stop", "schedule", "sessions", "cancel", "backup", "link", "invite",
    "overview",
];

/// Discord refuses longer messages.
const MAX_MESSAGE: usize = 2000;
/// How long a follow-up waits for a world to run, or a backup to end.
const START_WAIT: Duration = Duration::from_secs(300);
const BACKUP_WAIT: Duration = Duration::from_secs(1800);

/// Answers an interaction later (its follow-up).
#[async_trait::async_trait]
pub trait DiscordApi: Send + Sync + 'static {
    /// Replaces the deferred answer of the interaction `token`.
    async fn edit_original(&self, token: &str, content: &str) -> Result<(), SendError>;
}

/// `/tavern <subcommand> <options…>` from a Discord account.
#[derive(Clone, Debug, Default)]
pub(crate) struct SlashCommand {
    pub discord_user: String,
    pub subcommand: String,
    /// Option values as text.
    pub options: BTreeMap<String, String>,
}

/// A follow-up's text, once the work is done.
pub(crate) type FollowUp = Pin<Box<dyn Future<Output = String> + Send>>;

/// What the bot answers.
pub(crate) enum BotReply {
    Now(String),
    /// "Thinking…" now; the text when the work is done.
    Later(FollowUp),
}

fn cut(mut s: String) -> String {
    if s.chars().count() > MAX_MESSAGE {
        s = s.chars().take(MAX_MESSAGE - 1).collect();
        s.push('…');
    }
    s
}

/// An error as the person who asked reads it.
fn said(e: &CoreError) -> String {
    match e {
        CoreError::NotFound { what, key } => {
            format!(
                "There is no {} {key} that you can see.",
                tavern_core::noun(what)
            )
        }
        CoreError::Internal { .. } => {
            "Something went wrong on the server; the admins can see what in its log.".into()
        }
        e => format!("Not done: {e}"),
    }
}

/// `2026-11-28T19:00:00+01:00`, `2026-11-28T19:00[Europe/Paris]` or
/// `2026-11-28 19:00 Europe/Paris`, as an instant.
pub(crate) fn parse_when(s: &str) -> Result<Timestamp, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(z) = s.parse::<Zoned>() {
        return Ok(z.timestamp());
    }
    let bad = || {
        format!("{s:?} is not a date and time with a time zone, like 2026-11-28 19:00 Europe/Paris")
    };
    let (at, zone) = s.rsplit_once(' ').ok_or_else(bad)?;
    let at: DateTime = at.trim().parse().map_err(|_| bad())?;
    let tz = TimeZone::get(zone)
        .map_err(|_| format!("{zone:?} is not a time zone like Europe/Paris or UTC"))?;
    at.to_zoned(tz).map(|z| z.timestamp()).map_err(|_| bad())
}

/// `4h`, `90m`, `3h30m` in minutes.
pub(crate) fn parse_duration(s: &str) -> Result<u32, String> {
    let bad = || format!("{s:?} is not a duration like 4h, 90m or 3h30m");
    let d: SignedDuration = s.trim().parse().map_err(|_| bad())?;
    if d.is_negative() || d.is_zero() || d.as_secs() % 60 != 0 {
        return Err(bad());
    }
    u32::try_from(d.as_secs() / 60).map_err(|_| bad())
}

/// Checks every second, for at most `limit`, until `check` has an answer;
/// else answers `timed_out`.
async fn poll<F, Fut>(limit: Duration, timed_out: String, mut check: F) -> String
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(answer) = check().await {
            return answer;
        }
        if tokio::time::Instant::now() > deadline {
            return timed_out;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Answers `/tavern …` from a Discord account.
pub(crate) async fn answer(t: &Tavern, cmd: SlashCommand) -> BotReply {
    let caller = match t.discord_caller(&cmd.discord_user).await {
        Ok(caller) => caller,
        Err(e) => return BotReply::Now(said(&e)),
    };
    let opt = |k: &str| cmd.options.get(k).map(String::as_str).unwrap_or_default();
    let answer = match (cmd.subcommand.as_str(), &caller) {
        ("link", _) => link(t, &cmd.discord_user, opt("code")).await,
        (_, None) => Ok(BotReply::Now(
            "This Discord account is not linked to a Tavern account yet. Run `tavern user link-code`, then `/tavern link code:<the code>`.".into(),
        )),
        ("status", Some(c)) => status(t, c, opt("world")).await,
        ("start", Some(c)) => start(t, c, opt("world")).await,
        ("stop", Some(c)) => t
            .set_desired(c, opt("world"), DesiredState::Stopped)
            .await
            .map(|v| BotReply::Now(format!("{} is stopping.", v.instance.slug))),
        ("schedule", Some(c)) => {
            schedule(t, c, opt("world"), opt("when"), opt("duration"))
                .await
        }
        ("sessions", Some(c)) => sessions(t, c).await,
        ("cancel", Some(c)) => t
            .cancel_session(c, opt("session"))
            .await
            .map(|()| BotReply::Now("The session is cancelled; its key is free again.".into())),
        ("backup", Some(c)) => backup(t, c, opt("world")).await,
        ("invite", Some(c)) => invite(t, c, &cmd.options).await,
        ("overview", Some(c)) => overview(t, c).await,
        (other, Some(_)) => Ok(BotReply::Now(format!(
            "There is no /tavern {other}; try one of: {}.",
            SUBCOMMANDS.join(", ")
        ))),
    };
    match answer {
        Ok(BotReply::Now(text)) => BotReply::Now(cut(text)),
        Ok(BotReply::Later(work)) => BotReply::Later(Box::pin(async move { cut(work.await) })),
        Err(e) => BotReply::Now(said(&e)),
    }
}

async fn link(t: &Tavern, discord_user: &str, code: &str) -> Result<BotReply, CoreError> {
    Ok(BotReply::Now(match t.link_discord(discord_user, code).await? {
        DiscordLink::NotACode => {
            "That is not a link code. Run `tavern user link-code` and paste what it prints (TAV-…).".into()
        }
        DiscordLink::UnknownCode => {
            "That link code is unknown, used or expired. Run `tavern user link-code` for a new one.".into()
        }
        DiscordLink::Linked(username) => {
            format!("Linked: here you act as {username}, with their rights.")
        }
    }))
}

async fn status(t: &Tavern, c: &Caller, world: &str) -> Result<BotReply, CoreError> {
    let views = match world {
        "" => t.list_instances(c).await?,
        slug => vec![t.get_instance(c, slug).await?],
    };
    if views.is_empty() {
        return Ok(BotReply::Now("You have no worlds yet.".into()));
    }
    let lines: Vec<String> = views
        .iter()
        .map(|v| {
            let i = &v.instance;
            let players = match (i.state, i.players) {
                (ObservedState::Running, 1) => " (1 player)".to_owned(),
                (ObservedState::Running, n) => format!(" ({n} players)"),
                _ => String::new(),
            };
            let why = i
                .state_reason
                .as_deref()
                .filter(|_| i.state == ObservedState::Failed)
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            format!("**{}** — {}{players}{why} {}", i.slug, i.state, v.url)
        })
        .collect();
    Ok(BotReply::Now(lines.join("\n")))
}

async fn start(t: &Tavern, c: &Caller, world: &str) -> Result<BotReply, CoreError> {
    let v = t.set_desired(c, world, DesiredState::Running).await?;
    let (tavern, caller, slug) = (t.clone(), c.clone(), v.instance.slug.to_string());
    let late =
        format!("{slug} is still starting; `/tavern status world:{slug}` tells when it runs.");
    Ok(BotReply::Later(Box::pin(async move {
        poll(START_WAIT, late, || async {
            match tavern.get_instance(&caller, &slug).await {
                Ok(v) if v.instance.state == ObservedState::Running => {
                    Some(format!("{slug} is running: {}", v.url))
                }
                Ok(v) if v.instance.state == ObservedState::Failed => Some(format!(
                    "{slug} failed to start: {}",
                    v.instance
                        .state_reason
                        .as_deref()
                        .unwrap_or("no reason given")
                )),
                Ok(v) if v.instance.desired_state != DesiredState::Running => {
                    Some(format!("{slug} was asked to stop before it was running."))
                }
                Ok(_) => None,
                Err(e) => Some(said(&e)),
            }
        })
        .await
    })))
}

async fn schedule(
    t: &Tavern,
    c: &Caller,
    world: &str,
    when: &str,
    duration: &str,
) -> Result<BotReply, CoreError> {
    let start = parse_when(when).map_err(|m| CoreError::invalid("invalid_field", "when", m))?;
    let minutes_long =
        parse_duration(duration).map_err(|m| CoreError::invalid("invalid_field", "duration", m))?;
    let s = t
        .schedule_session(
            c,
            NewSession {
                instance: world.to_owned(),
                start: start.to_string(),
                duration_minutes: minutes_long,
            },
        )
        .await?;
    Ok(BotReply::Now(format!(
        "Booked: {} from {} to {} (UTC), on the key {}. The world starts by itself a little before. Session id: {}",
        s.instance,
        minutes(s.session.starts_at),
        minutes(s.session.ends_at),
        s.license_label,
        s.session.id
    )))
}

async fn sessions(t: &Tavern, c: &Caller) -> Result<BotReply, CoreError> {
    let list = t.list_sessions(c).await?;
    if list.is_empty() {
        return Ok(BotReply::Now("No sessions to come.".into()));
    }
    let lines: Vec<String> = list
        .iter()
        .map(|s| {
            format!(
                "**{}** {} – {} (UTC), key {} — id {}",
                s.instance,
                minutes(s.session.starts_at),
                minutes(s.session.ends_at),
                s.license_label,
                s.session.id
            )
        })
        .collect();
    Ok(BotReply::Now(lines.join("\n")))
}

async fn backup(t: &Tavern, c: &Caller, world: &str) -> Result<BotReply, CoreError> {
    let b = t.request_backup(c, world).await?;
    let (tavern, caller, id, slug) = (
        t.clone(),
        c.clone(),
        b.backup.id.to_string(),
        b.backup.slug.to_string(),
    );
    let late = format!("The backup of {slug} is still running (id {id}).");
    Ok(BotReply::Later(Box::pin(async move {
        poll(BACKUP_WAIT, late, || async {
            match tavern.get_backup(&caller, &id).await {
                Ok(v) if v.backup.status == BackupStatus::Complete => {
                    let size = v.backup.archive.as_ref().map_or(0, |a| a.size);
                    Some(format!(
                        "The backup of {slug} is complete ({:.1} MB). Id: {id}",
                        size as f64 / 1e6
                    ))
                }
                Ok(v) if v.backup.status == BackupStatus::Failed => Some(format!(
                    "The backup of {slug} failed: {}",
                    v.backup.error.as_deref().unwrap_or("no reason given")
                )),
                Ok(_) => None,
                Err(e) => Some(said(&e)),
            }
        })
        .await
    })))
}

async fn invite(
    t: &Tavern,
    c: &Caller,
    options: &BTreeMap<String, String>,
) -> Result<BotReply, CoreError> {
    let uses = match options.get("uses") {
        Some(u) => Some(u.parse::<u32>().map_err(|_| {
            CoreError::invalid("invalid_field", "uses", format!("{u:?} is not a number"))
        })?),
        None => None,
    };
    let v = t
        .create_invite(
            c,
            NewInvite {
                role: options.get("role").cloned(),
                tier: options.get("tier").cloned(),
                uses,
                expires_in_hours: None,
            },
        )
        .await?;
    Ok(BotReply::Now(format!(
        "Invitation for {} {} account(s), until {} (UTC). Give them this address (shown once): {}",
        v.invite.max_uses,
        v.invite.role,
        minutes(v.invite.expires_at),
        v.url.unwrap_or_default()
    )))
}

async fn overview(t: &Tavern, c: &Caller) -> Result<BotReply, CoreError> {
    let o = t.admin_overview(c).await?;
    let keys: Vec<String> = o
        .licenses
        .iter()
        .map(|(l, on)| match on {
            Some(i) => format!("{} → {} ({})", l.license.label, i.slug, i.state),
            None => format!("{} free", l.license.label),
        })
        .collect();
    let running: Vec<String> = o
        .running
        .iter()
        .map(|v| format!("{} ({} players)", v.instance.slug, v.instance.players))
        .collect();
    let failed: Vec<String> = o
        .failed
        .iter()
        .map(|v| v.instance.slug.to_string())
        .collect();
    let none = |v: &[String]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    Ok(BotReply::Now(format!(
        "**Keys:** {}\n**Running:** {}\n**Failed:** {}\n**Sessions to come:** {}\n**Usage in {}:** {:.1} h, {:.2} {}\n**Supporters:** {}",
        none(&keys),
        none(&running),
        none(&failed),
        o.sessions.len(),
        o.usage.month,
        o.usage.hours,
        o.usage.cost,
        o.usage.currency,
        o.supporters.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_with_a_zone_in_three_spellings() {
        let want: Timestamp = "2026-11-28T18:00:00Z".parse().unwrap();
        for s in [
            "2026-11-28T19:00:00+01:00",
            "2026-11-28T19:00[Europe/Paris]",
            "2026-11-28 19:00 Europe/Paris",
            "2026-11-28T18:00 UTC",
        ] {
            assert_eq!(parse_when(s), Ok(want), "{s}");
        }
        for bad in [
            "tomorrow",
            "2026-11-28 19:00",
            "2026-11-28 19:00 Mars/Olympus",
        ] {
            assert!(parse_when(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_in_minutes() {
        assert_eq!(parse_duration("4h"), Ok(240));
        assert_eq!(parse_duration("3h30m"), Ok(210));
        for bad in ["0m", "-1h", "30s", "long"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn long_answers_are_cut_to_what_discord_takes() {
        let s = cut("x".repeat(5000));
        assert_eq!(s.chars().count(), MAX_MESSAGE);
        assert!(s.ends_with('…'));
    }
}
