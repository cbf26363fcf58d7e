//! `tavern invite`: admins invite people (a code and an address shown
//! once), list and withdraw invitations; `tavern invite accept URL` walks an
//! invitee through making their account, signing in, and creating a first
//! world.

use std::io::{IsTerminal as _, Write as _};

use anyhow::{Context as _, bail};
use tavern_api::{
    AcceptInviteRequest, CreateInstanceRequest, CreateInviteRequest, InstanceJson, InviteJson,
    LoginResponse,
};

use super::commands::{parse_minutes, path_part, stdin_line};
use super::http::{Api, Conn, Credentials, normalise_server, read, save_credentials};
use super::output::{Cell, Column, print, print_json};

const INVITE_COLUMNS: &[Column<InviteJson>] = &[
    Column::new("ID", |i| Cell::text(&i.id)),
    Column::new("ROLE", |i| Cell::text(&i.role)),
    Column::new("TIER", |i| Cell::maybe(i.tier.as_ref())),
    Column::new("USES", |i| Cell::text(i.uses)),
    Column::new("OF", |i| Cell::text(i.max_uses)),
    Column::new("EXPIRES", |i| Cell::at(&i.expires_at)),
    Column::new("STATE", |i| Cell::text(&i.state)),
    Column::new("BY", |i| Cell::text(&i.created_by)),
];

/// Where an invitation's code sits in its address.
const INVITE_PATH: &str = "/auth/invite/";

#[derive(clap::Subcommand)]
pub enum InviteCommand {
    /// Invite someone: prints the address to give them (shown this once).
    Create {
        /// The role of the accounts it makes.
        #[arg(long, value_parser = ["gm", "admin"], default_value = "gm")]
        role: String,
        /// Their quota tier (default: the default tier).
        #[arg(long)]
        tier: Option<String>,
        /// How many accounts it may make.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// How long it lasts: 7d, 48h, 90m (at most 90 days).
        #[arg(long, default_value = "7d", value_parser = parse_lifetime)]
        expires: u32,
        #[command(flatten)]
        conn: Conn,
    },
    /// Invitations, spent ones too.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Withdraw an invitation.
    Revoke {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Accept an invitation: make your account, sign in, and create your
    /// first world. Asks what it needs; flags answer ahead (for scripts).
    Accept {
        /// The address you were given (…/auth/invite/CODE).
        url: String,
        #[arg(long)]
        username: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Create this world (a slug: a-z, 0-9 and -).
        #[arg(long, conflicts_with = "no_world")]
        world: Option<String>,
        /// The Foundry release it runs, e.g. 13.345.
        #[arg(long, requires = "world")]
        release: Option<String>,
        /// Create no world now.
        #[arg(long)]
        no_world: bool,
    },
}

/// `7d`, or a duration `parse_minutes` reads (`48h`, `90m`), in minutes.
fn parse_lifetime(s: &str) -> Result<u32, String> {
    match s.trim().strip_suffix('d').map(str::parse::<u32>) {
        Some(Ok(days)) => days
            .checked_mul(24 * 60)
            .ok_or_else(|| format!("{s:?} is too long")),
        Some(Err(_)) => Err(format!("{s:?} is not a duration like 7d, 48h or 90m")),
        None => parse_minutes(s),
    }
}

/// The server and the code of an invitation's address.
fn split_invite_url(url: &str) -> anyhow::Result<(String, String)> {
    let url = url.trim();
    let Some((server, code)) = url.split_once(INVITE_PATH) else {
        bail!("{url:?} is not an invitation address (…{INVITE_PATH}CODE)");
    };
    let code = code.trim_end_matches('/');
    if code.is_empty() || code.contains(['/', '?', '#']) {
        bail!("{url:?} is not an invitation address (…{INVITE_PATH}CODE)");
    }
    Ok((normalise_server(server)?, code.to_owned()))
}

/// A line typed at the terminal, after a question on standard error.
fn ask(question: &str) -> anyhow::Result<String> {
    eprint!("{question}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the answer")?;
    Ok(line.trim().to_owned())
}

pub async fn invite(cmd: InviteCommand) -> anyhow::Result<()> {
    match cmd {
        InviteCommand::Create {
            role,
            tier,
            uses,
            expires,
            conn,
        } => {
            let hours = expires.div_ceil(60);
            let created = Api::from_conn(&conn)?
                .post(
                    "/api/v1/invites",
                    &CreateInviteRequest {
                        role: Some(role.clone()),
                        tier,
                        uses: Some(uses),
                        expires_in_hours: Some(hours),
                    },
                )
                .await?;
            if conn.json {
                print_json(&created);
            } else {
                let created: InviteJson = read(&created)?;
                println!("{}", created.url.unwrap_or_default());
                eprintln!(
                    "Give this address to whom you invite (shown this once). It makes {uses} {role} account(s) until {}; they accept it with: tavern invite accept ADDRESS",
                    created.expires_at
                );
            }
        }
        InviteCommand::List { conn } => {
            let list = Api::from_conn(&conn)?.get("/api/v1/invites").await?;
            print(conn.json, &list, INVITE_COLUMNS)?;
        }
        InviteCommand::Revoke { id, conn } => {
            Api::from_conn(&conn)?
                .delete(&format!("/api/v1/invites/{}", path_part(&id)?))
                .await?;
            eprintln!("Invitation {id} withdrawn.");
        }
        InviteCommand::Accept {
            url,
            username,
            password_stdin,
            world,
            release,
            no_world,
        } => accept(url, username, password_stdin, world, release, no_world).await?,
    }
    Ok(())
}

async fn accept(
    url: String,
    username: Option<String>,
    password_stdin: bool,
    world: Option<String>,
    release: Option<String>,
    no_world: bool,
) -> anyhow::Result<()> {
    let (server, code) = split_invite_url(&url)?;
    let interactive = std::io::stdin().is_terminal();
    let username = match username {
        Some(u) => u,
        None if interactive => ask("Choose a username (lowercase letters, digits, - and _): ")?,
        None => bail!("pass --username (standard input is not a terminal)"),
    };
    let password = if password_stdin {
        stdin_line("password")?
    } else if interactive {
        let first = rpassword::prompt_password("Choose a password (at least 8 characters): ")
            .context("cannot read the password")?;
        let again =
            rpassword::prompt_password("The same again: ").context("cannot read the password")?;
        if first != again {
            bail!("the two passwords differ; nothing was created, run the command again");
        }
        first
    } else {
        bail!("pass --password-stdin (standard input is not a terminal)");
    };
    let LoginResponse { token, user } = Api::new(&server, None)?
        .post_for(
            &format!("/api/v1/invites/{}/accept", path_part(&code)?),
            &AcceptInviteRequest { username, password },
        )
        .await?;
    let path = save_credentials(&Credentials {
        server: server.clone(),
        token: token.clone(),
    })?;
    println!(
        "Welcome, {}! Your account is made and you are signed in to {server} (token stored in {}).",
        user.username,
        path.display()
    );

    let slug = match (world, no_world) {
        (_, true) => None,
        (Some(w), false) => Some(w),
        (None, false) if interactive => Some(ask(
            "Name your first world (a-z, 0-9 and -; Enter to skip): ",
        )?)
        .filter(|s| !s.is_empty()),
        (None, false) => None,
    };
    let Some(slug) = slug else {
        println!("When you want a world: tavern instance create NAME --release VERSION");
        return Ok(());
    };
    let release = match release {
        Some(r) => Some(r),
        None if interactive => Some(ask(
            "Which Foundry release should it run, e.g. 13.345 (Enter to choose later)? ",
        )?)
        .filter(|s| !s.is_empty()),
        None => None,
    };
    let body = CreateInstanceRequest {
        slug: slug.clone(),
        owner: None,
        release: release.clone(),
        license: None,
        runtime: None,
        idle_timeout_minutes: None,
        wake_on_visit: None,
    };
    let created: InstanceJson = Api::new(&server, Some(token))?
        .post_for("/api/v1/instances", &body)
        .await
        .with_context(|| {
            format!("your account is ready, but the world {slug} was not created; try again with: tavern instance create {slug}")
        })?;
    println!(
        "Your world {slug} is ready at {}. Start it with: tavern instance start {slug}",
        created.url
    );
    if release.is_none() {
        println!(
            "Before it can start, choose its release: tavern instance set {slug} --release VERSION"
        );
    }
    if let Some(key) = created.admin_key {
        println!("Its Foundry admin key, shown this once (keep it safe): {key}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{parse_lifetime, split_invite_url};

    #[test]
    fn lifetimes_in_days_hours_or_minutes() {
        assert_eq!(parse_lifetime("7d"), Ok(7 * 24 * 60));
        assert_eq!(parse_lifetime("48h"), Ok(48 * 60));
        assert_eq!(parse_lifetime("90m"), Ok(90));
        assert!(parse_lifetime("xd").is_err());
        assert!(parse_lifetime("soon").is_err());
    }

    #[test]
    fn invitation_addresses_split_into_server_and_code() {
        let (server, code) =
            split_invite_url("https://tavern.example.org/auth/invite/abc-DEF_123").unwrap();
        assert_eq!(
            (server.as_str(), code.as_str()),
            ("https://tavern.example.org", "abc-DEF_123")
        );
        let (server, _) = split_invite_url("http://localhost:8080/auth/invite/x/").unwrap();
        assert_eq!(server, "http://localhost:8080");
        for bad in [
            "https://tavern.example.org/invite/abc",
            "https://tavern.example.org/auth/invite/",
            "tavern.example.org/auth/invite/abc",
            "https://tavern.example.org/auth/invite/a/b",
        ] {
            assert!(split_invite_url(bad).is_err(), "{bad}");
        }
    }
}
