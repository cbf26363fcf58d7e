//! `tavern session`: booking, listing and cancelling sessions.

use tavern_api::CreateSessionRequest;

use super::columns::SESSION_COLUMNS;
use super::commands::{parse_minutes, path_part};
use super::http::{Api, Conn};
use super::output::print;

#[derive(clap::Subcommand)]
pub enum SessionCommand {
    /// Book a session: a license key is reserved for it, and the world
    /// starts by itself a little before.
    Schedule {
        slug: String,
        /// When play begins, in your time zone (or --tz's):
        /// "2026-11-28 19:00"; or with an offset: 2026-11-28T19:00:00Z.
        #[arg(long)]
        at: String,
        /// The time zone of --at, e.g. Europe/Berlin [default: this
        /// computer's].
        #[arg(long)]
        tz: Option<String>,
        /// How long it lasts: 4h, 90m, 3h30m.
        #[arg(long, value_parser = parse_minutes)]
        duration: u32,
        #[command(flatten)]
        conn: Conn,
    },
    /// Sessions to come and under way, with their keys.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Cancel a session; its key's window is free again.
    Cancel {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// When `at` is: an instant with its offset, or a wall-clock time in
/// `tz` (an IANA name; default: `system`, this computer's zone).
fn parse_at(
    at: &str,
    tz: Option<&str>,
    system: &jiff::tz::TimeZone,
) -> anyhow::Result<jiff::Timestamp> {
    let at = at.trim();
    if let Ok(t) = at.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let civil: jiff::civil::DateTime = at.parse().map_err(|_| {
        anyhow::anyhow!(
            "--at {at:?} is not a time like \"2026-11-28 19:00\" (or 2026-11-28T19:00:00+01:00)"
        )
    })?;
    let zone = match tz {
        Some(name) => jiff::tz::TimeZone::get(name).map_err(|_| {
            anyhow::anyhow!("--tz {name:?} is not a time zone like Europe/Berlin or UTC")
        })?,
        None => system.clone(),
    };
    Ok(civil
        .to_zoned(zone)
        .map_err(|e| anyhow::anyhow!("--at {at:?}: {e}"))?
        .timestamp())
}

pub async fn session(cmd: SessionCommand) -> anyhow::Result<()> {
    match cmd {
        SessionCommand::Schedule {
            slug,
            at,
            tz,
            duration,
            conn,
        } => {
            let start = parse_at(&at, tz.as_deref(), &jiff::tz::TimeZone::system())?;
            let booked = Api::from_conn(&conn)?
                .post(
                    "/api/v1/sessions",
                    &CreateSessionRequest {
                        instance: slug,
                        start: start.to_string(),
                        duration_minutes: duration,
                    },
                )
                .await?;
            print(conn.json, &booked, SESSION_COLUMNS)?;
        }
        SessionCommand::List { conn } => {
            let list = Api::from_conn(&conn)?.get("/api/v1/sessions").await?;
            print(conn.json, &list, SESSION_COLUMNS)?;
        }
        SessionCommand::Cancel { id, conn } => {
            Api::from_conn(&conn)?
                .delete(&format!("/api/v1/sessions/{}", path_part(&id)?))
                .await?;
            if !conn.json {
                println!("Cancelled session {id}.");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_at;

    #[test]
    fn session_times_are_local_unless_they_say_otherwise() {
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let utc = jiff::tz::TimeZone::UTC;
        let t = |at, tz, zone| parse_at(at, tz, zone).unwrap().to_string();
        assert_eq!(t("2026-11-28 19:00", None, &berlin), "2026-11-28T18:00:00Z");
        assert_eq!(t("2026-11-28T19:00", None, &utc), "2026-11-28T19:00:00Z");
        assert_eq!(
            t("2026-07-04 19:00", Some("America/New_York"), &utc),
            "2026-07-04T23:00:00Z"
        );
        assert_eq!(
            t("2026-11-28T20:00:00+01:00", Some("Asia/Tokyo"), &utc),
            "2026-11-28T19:00:00Z"
        );
        assert!(parse_at("tomorrow", None, &utc).is_err());
        assert!(parse_at("2026-11-28 19:00", Some("Mars/Olympus"), &utc).is_err());
    }
}
