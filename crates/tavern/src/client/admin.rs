//! `tavern usage`, `tavern events` and `tavern admin`: what admins look at.

use tavern_api::{
    InstanceJson, LicenseHoursJson, NotificationJson, OverviewJson, OverviewLicense, UsageJson,
    UserUsageJson,
};

use super::columns::{EVENT_COLUMNS, INSTANCE_COLUMNS, SESSION_COLUMNS, SUPPORTER_COLUMNS};
use super::commands::path_part;
use super::http::{Api, Conn, read};
use super::output::{Cell, Column, number, print, print_json, print_rows};

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
    let answer = Api::from_conn(&args.conn)?.get(&path).await?;
    if args.conn.json {
        print_json(&answer);
        return Ok(());
    }
    let report: UsageJson = read(&answer)?;
    let currency = &report.currency;
    println!(
        "Usage in {}: {} hours, {} {currency} at {} {currency} an hour.",
        report.month,
        number(report.hours),
        number(report.cost),
        number(report.rate_per_hour)
    );
    // What worlds hold in object storage, when they have some.
    let mut columns = USER_USAGE_COLUMNS.to_vec();
    if let Some(total) = report.stored_bytes {
        columns.push(Column::new("STORED", |u| Cell::size(u.stored_bytes)));
        println!(
            "Their worlds hold {} in object storage.",
            tavern_types::words::size(total)
        );
    }
    print_rows(&report.users, &columns);
    print_rows(&report.licenses, LICENSE_HOURS_COLUMNS);
    Ok(())
}

/// Each user's hours, with their worlds' (`usage`).
const USER_USAGE_COLUMNS: &[Column<UserUsageJson>] = &[
    Column::new("USER", |u| Cell::text(&u.user)),
    Column::new("HOURS", |u| Cell::Number(u.hours)),
    Column::new("WORLDS", |u| {
        let worlds: Vec<String> = u
            .worlds
            .iter()
            .map(|w| format!("{} {}h", w.world, number(w.hours)))
            .collect();
        Cell::Text(worlds.join(", "))
    }),
    Column::new("COST", |u| Cell::Number(u.cost)),
    Column::new("CREDIT", |u| Cell::Number(u.credit)),
    Column::new("DUE", |u| Cell::Number(u.due)),
];

/// Each user's hours, without their worlds' (the overview).
const USER_COST_COLUMNS: &[Column<UserUsageJson>] = &[
    Column::new("USER", |u| Cell::text(&u.user)),
    Column::new("HOURS", |u| Cell::Number(u.hours)),
    Column::new("COST", |u| Cell::Number(u.cost)),
    Column::new("CREDIT", |u| Cell::Number(u.credit)),
    Column::new("DUE", |u| Cell::Number(u.due)),
];

const LICENSE_HOURS_COLUMNS: &[Column<LicenseHoursJson>] = &[
    Column::new("LICENSE", |l| Cell::maybe(l.license.as_ref())),
    Column::new("HOURS", |l| Cell::Number(l.hours)),
];

/// Every key and the world on it (the overview).
const KEY_COLUMNS: &[Column<OverviewLicense>] = &[
    Column::new("LABEL", |l| Cell::text(&l.license.label)),
    Column::new("KEY", |l| Cell::text(&l.license.last4)),
    Column::new("OWNER", |l| Cell::maybe(l.license.owner.as_ref())),
    Column::new("WORLD", |l| Cell::maybe(l.instance.as_ref())),
    Column::new("STATE", |l| Cell::maybe(l.instance_state.as_ref())),
    Column::new("PLAYERS", |l| Cell::maybe(l.players)),
];

const FAILED_COLUMNS: &[Column<InstanceJson>] = &[
    Column::new("SLUG", |i| Cell::text(&i.slug)),
    Column::new("OWNER", |i| Cell::text(&i.owner)),
    Column::new("REASON", |i| Cell::maybe(i.state_reason.as_ref())),
];

const NOTIFICATION_COLUMNS: &[Column<NotificationJson>] = &[
    Column::new("ID", |n| Cell::text(n.id)),
    Column::new("KIND", |n| Cell::text(&n.kind)),
    Column::new("TO", |n| Cell::text(&n.destination)),
    Column::new("STATUS", |n| Cell::text(&n.status)),
    Column::new("TRIES", |n| Cell::text(n.attempts)),
    Column::new("RAISED", |n| Cell::at(&n.created_at)),
    Column::new("MESSAGE", |n| Cell::text(&n.message)),
    Column::new("ERROR", |n| Cell::maybe(n.last_error.as_ref())),
];

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
    print(args.conn.json, &list, EVENT_COLUMNS)
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
            let answer = Api::from_conn(&conn)?.get("/api/v1/admin/overview").await?;
            if conn.json {
                print_json(&answer);
                return Ok(());
            }
            let o: OverviewJson = read(&answer)?;
            println!("License keys");
            print_rows(&o.licenses, KEY_COLUMNS);
            println!("Sessions");
            print_rows(&o.sessions, SESSION_COLUMNS);
            println!("Running worlds");
            print_rows(&o.running, INSTANCE_COLUMNS);
            println!("Failed worlds");
            print_rows(&o.failed, FAILED_COLUMNS);
            let currency = &o.usage.currency;
            println!(
                "Usage in {}: {} hours, {} {currency}",
                o.usage.month,
                number(o.usage.hours),
                number(o.usage.cost)
            );
            print_rows(&o.usage.users, USER_COST_COLUMNS);
            println!("Supporters");
            print_rows(&o.supporters, SUPPORTER_COLUMNS);
        }
        AdminCommand::Supporters { conn } => {
            let list = Api::from_conn(&conn)?.get("/api/v1/supporters").await?;
            print(conn.json, &list, SUPPORTER_COLUMNS)?;
        }
        AdminCommand::Notifications { limit, conn } => {
            let list = Api::from_conn(&conn)?
                .get(&format!("/api/v1/notifications?limit={limit}"))
                .await?;
            print(conn.json, &list, NOTIFICATION_COLUMNS)?;
        }
    }
    Ok(())
}
