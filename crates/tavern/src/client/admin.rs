//! `tavern usage`, `tavern events` and `tavern admin`: what admins look at.

use serde_json::Value;

use super::columns::{EVENT_COLUMNS, INSTANCE_COLUMNS, SESSION_COLUMNS, SUPPORTER_COLUMNS};
use super::commands::path_part;
use super::http::{Api, Conn};
use super::output::print;

#[derive(clap::Args)]
pub struct UsageArgs {
    /// The month, YYYY-MM (UTC) [default: this month].
    #[arg(long)]
    month: Option<String>,
    /// One user's usage (admins; game masters see only their own).
    #[arg(long)]
    user: Option<String>,
    #[command(flatten)]
    conn: Conn,
}

pub async fn usage(args: UsageArgs) -> anyhow::Result<()> {
    let mut query = Vec::new();
    if let Some(m) = &args.month {
        query.push(format!("month={}", path_part(m)?));
    }
    if let Some(u) = &args.user {
        query.push(format!("user={}", path_part(u)?));
    }
    let path = match query.is_empty() {
        true => "/api/v1/usage".to_owned(),
        false => format!("/api/v1/usage?{}", query.join("&")),
    };
    let report = Api::from_conn(&args.conn)?.get(&path).await?;
    if args.conn.json {
        print(true, &report, &[]);
        return Ok(());
    }
    let currency = report["currency"].as_str().unwrap_or_default();
    println!(
        "Usage in {}: {} hours, {} {currency} at {} {currency} an hour.",
        report["month"].as_str().unwrap_or("?"),
        report["hours"],
        report["cost"],
        report["rate_per_hour"]
    );
    let mut users = report["users"].clone();
    if let Some(list) = users.as_array_mut() {
        for u in list {
            let worlds: Vec<String> = u["worlds"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|w| format!("{} {}h", w["world"].as_str().unwrap_or("?"), w["hours"]))
                .collect();
            u["worlds"] = Value::String(worlds.join(", "));
        }
    }
    print(
        false,
        &users,
        &[
            ("USER", "user"),
            ("HOURS", "hours"),
            ("WORLDS", "worlds"),
            ("COST", "cost"),
            ("CREDIT", "credit"),
            ("DUE", "due"),
        ],
    );
    print(
        false,
        &report["licenses"],
        &[("LICENSE", "license"), ("HOURS", "hours")],
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct EventsArgs {
    /// How many of the newest events.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    #[command(flatten)]
    conn: Conn,
}

pub async fn events(args: EventsArgs) -> anyhow::Result<()> {
    let list = Api::from_conn(&args.conn)?
        .get(&format!("/api/v1/events?limit={}", args.limit))
        .await?;
    print(args.conn.json, &list, EVENT_COLUMNS);
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum AdminCommand {
    /// Every key and the world on it, sessions to come, running worlds
    /// and failed ones.
    Overview {
        #[command(flatten)]
        conn: Conn,
    },
    /// Everyone who has paid through Ko-fi, latest first.
    Supporters {
        #[command(flatten)]
        conn: Conn,
    },
    /// The notification outbox, newest first: delivered, waiting for a
    /// retry, or given up.
    Notifications {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        conn: Conn,
    },
}

pub async fn admin(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::Overview { conn } => {
            let o = Api::from_conn(&conn)?.get("/api/v1/admin/overview").await?;
            if conn.json {
                print(true, &o, &[]);
                return Ok(());
            }
            println!("License keys");
            print(
                false,
                &o["licenses"],
                &[
                    ("LABEL", "label"),
                    ("KEY", "last4"),
                    ("OWNER", "owner"),
                    ("WORLD", "instance"),
                    ("STATE", "instance_state"),
                    ("PLAYERS", "players"),
                ],
            );
            println!("Sessions");
            print(false, &o["sessions"], SESSION_COLUMNS);
            println!("Running worlds");
            print(false, &o["running"], INSTANCE_COLUMNS);
            println!("Failed worlds");
            print(
                false,
                &o["failed"],
                &[
                    ("SLUG", "slug"),
                    ("OWNER", "owner"),
                    ("REASON", "state_reason"),
                ],
            );
            let usage = &o["usage"];
            let currency = usage["currency"].as_str().unwrap_or_default();
            println!(
                "Usage in {}: {} hours, {} {currency}",
                usage["month"].as_str().unwrap_or("?"),
                usage["hours"],
                usage["cost"]
            );
            print(
                false,
                &usage["users"],
                &[
                    ("USER", "user"),
                    ("HOURS", "hours"),
                    ("COST", "cost"),
                    ("CREDIT", "credit"),
                    ("DUE", "due"),
                ],
            );
            println!("Supporters");
            print(false, &o["supporters"], SUPPORTER_COLUMNS);
        }
        AdminCommand::Supporters { conn } => {
            let list = Api::from_conn(&conn)?.get("/api/v1/supporters").await?;
            print(conn.json, &list, SUPPORTER_COLUMNS);
        }
        AdminCommand::Notifications { limit, conn } => {
            let list = Api::from_conn(&conn)?
                .get(&format!("/api/v1/notifications?limit={limit}"))
                .await?;
            print(
                conn.json,
                &list,
                &[
                    ("ID", "id"),
                    ("KIND", "kind"),
                    ("TO", "destination"),
                    ("STATUS", "status"),
                    ("TRIES", "attempts"),
                    ("RAISED", "created_at"),
                    ("MESSAGE", "message"),
                    ("ERROR", "last_error"),
                ],
            );
        }
    }
    Ok(())
}
