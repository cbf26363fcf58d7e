//! `tavern user`: accounts, their tiers, addresses and webhooks, and link
//! codes for Discord and Ko-fi.

use tavern_api::{CreateUserRequest, LinkCodeJson, UpdateUserRequest, UserJson};

use super::columns::USER_COLUMNS;
use super::commands::{path_part, stdin_line};
use super::http::{Api, Conn, read};
use super::output::{print, print_json};

#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// List users.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Create a user. Without --password-stdin a password is generated and
    /// shown once.
    Create {
        name: String,
        #[arg(long, value_parser = ["gm", "admin"])]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// The quota tier (a configured `[tiers.NAME]`; default: the
        /// default tier).
        #[arg(long)]
        tier: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Put a user on a quota tier.
    SetTier {
        name: String,
        /// A configured tier.
        #[arg(required_unless_present = "default")]
        tier: Option<String>,
        /// Back to the default tier.
        #[arg(long, conflicts_with = "tier")]
        default: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Set the e-mail address a user's Ko-fi payments come from; those
    /// already received from it count for them too.
    SetEmail {
        name: String,
        #[arg(required_unless_present = "none")]
        email: Option<String>,
        /// Clear it.
        #[arg(long, conflicts_with = "email")]
        none: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Send notifications about your worlds to your own Discord webhook
    /// too (kept sealed; never shown again).
    SetWebhook {
        #[arg(required_unless_present = "none")]
        url: Option<String>,
        /// Stop sending them there.
        #[arg(long, conflicts_with = "url")]
        none: bool,
        /// Another user's (admins).
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// A one-time code, valid for an hour, that ties you to your Ko-fi
    /// payments (write it in a Ko-fi message) or your Discord account.
    LinkCode {
        #[command(flatten)]
        conn: Conn,
    },
}

pub async fn user(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::List { conn } => {
            let list = Api::from_conn(&conn)?.get("/api/v1/users").await?;
            print(conn.json, &list, USER_COLUMNS)?;
        }
        UserCommand::Create {
            name,
            role,
            password_stdin,
            tier,
            conn,
        } => {
            let api = Api::from_conn(&conn)?;
            let (password, generated) = if password_stdin {
                (stdin_line("password")?, false)
            } else {
                (tavern_core::auth::random_secret()[..20].to_owned(), true)
            };
            let created = api
                .post(
                    "/api/v1/users",
                    &CreateUserRequest {
                        username: name.clone(),
                        role,
                        password: password.clone(),
                        tier,
                    },
                )
                .await?;
            print(conn.json, &created, USER_COLUMNS)?;
            if generated {
                eprintln!("Password for {name}, shown this once: {password}");
            }
        }
        UserCommand::SetTier {
            name,
            tier,
            default: _,
            conn,
        } => {
            let change = UpdateUserRequest {
                tier: Some(tier),
                ..UpdateUserRequest::default()
            };
            update_user(&Api::from_conn(&conn)?, &name, &change, &conn).await?;
        }
        UserCommand::SetEmail {
            name,
            email,
            none: _,
            conn,
        } => {
            let change = UpdateUserRequest {
                email: Some(email),
                ..UpdateUserRequest::default()
            };
            update_user(&Api::from_conn(&conn)?, &name, &change, &conn).await?;
        }
        UserCommand::SetWebhook {
            url,
            none: _,
            user,
            conn,
        } => {
            let api = Api::from_conn(&conn)?;
            let name = match user {
                Some(u) => u,
                None => {
                    api.get_as::<UserJson>("/api/v1/auth/whoami")
                        .await?
                        .username
                }
            };
            api.patch(
                &format!("/api/v1/users/{}", path_part(&name)?),
                &UpdateUserRequest {
                    webhook_url: Some(url.clone()),
                    ..UpdateUserRequest::default()
                },
            )
            .await?;
            eprintln!(
                "{}",
                match url {
                    Some(_) =>
                        format!("Notifications about {name}'s worlds now also go to that webhook."),
                    None => format!("{name} has no webhook of their own any more."),
                }
            );
        }
        UserCommand::LinkCode { conn } => {
            let code = Api::from_conn(&conn)?
                .post_empty("/api/v1/auth/link-code")
                .await?;
            if conn.json {
                print_json(&code);
            } else {
                let code: LinkCodeJson = read(&code)?;
                println!("{}", code.code);
                eprintln!(
                    "Valid once, until {}. Write it in a Ko-fi message, or give it to the Discord bot: /tavern link.",
                    code.expires_at.parse::<jiff::Timestamp>().ok().map_or_else(
                        || "?".to_owned(),
                        |t| tavern_types::words::instant(t, &jiff::tz::TimeZone::system())
                    )
                );
            }
        }
    }
    Ok(())
}

/// Changes one of a user's settings and shows the user as they are now.
async fn update_user(
    api: &Api,
    name: &str,
    change: &UpdateUserRequest,
    conn: &Conn,
) -> anyhow::Result<()> {
    let user = api
        .patch(&format!("/api/v1/users/{}", path_part(name)?), change)
        .await?;
    print(conn.json, &user, USER_COLUMNS)
}
