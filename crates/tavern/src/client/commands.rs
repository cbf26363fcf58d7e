//! The client commands, one function per command group.

use std::io::{BufRead as _, IsTerminal as _, Read as _, Write as _};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::http::{Api, Conn, Credentials, normalise_server, save_credentials};
use super::output::{Column, print};

const INSTANCE_COLUMNS: &[Column] = &[
    ("SLUG", "slug"),
    ("OWNER", "owner"),
    ("STATE", "state"),
    ("DESIRED", "desired_state"),
    ("RELEASE", "release"),
    ("LICENSE", "license.label"),
    ("URL", "url"),
];
const LICENSE_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("LABEL", "label"),
    ("KEY", "last4"),
    ("OWNER", "owner"),
    ("ADDED", "created_at"),
];
const USER_COLUMNS: &[Column] = &[
    ("USERNAME", "username"),
    ("ROLE", "role"),
    ("CREATED", "created_at"),
];
const EVENT_COLUMNS: &[Column] = &[
    ("TIME", "at"),
    ("ACTOR", "actor"),
    ("ACTION", "action"),
    ("TARGET", "target"),
    ("OUTCOME", "outcome"),
    ("DETAIL", "detail"),
];

/// Reads one line from standard input, without its line ending.
fn stdin_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what} from standard input"))?;
    let line = line.trim_end_matches(['\r', '\n']).to_owned();
    if line.is_empty() {
        bail!("no {what} on standard input");
    }
    Ok(line)
}

#[derive(clap::Args)]
pub struct LoginArgs {
    /// The Tavern server, e.g. http://localhost:8080.
    #[arg(long, env = "TAVERN_SERVER")]
    server: String,
    /// Your username (asked for when missing).
    #[arg(long)]
    username: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long, conflicts_with = "token_stdin")]
    password_stdin: bool,
    /// Store an API token read from standard input instead of signing in
    /// with a password (e.g. the admin token `tavern serve` printed).
    #[arg(long)]
    token_stdin: bool,
}

pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let server = normalise_server(&args.server)?;
    let token = if args.token_stdin {
        stdin_line("token")?
    } else {
        let username = match args.username {
            Some(u) => u,
            None => {
                eprint!("Username: ");
                std::io::stderr().flush().ok();
                stdin_line("username")?
            }
        };
        let password = if args.password_stdin || !std::io::stdin().is_terminal() {
            stdin_line("password")?
        } else {
            rpassword::prompt_password("Password: ").context("cannot read the password")?
        };
        let api = Api::new(&server, None)?;
        let answer = api
            .post(
                "/api/v1/auth/login",
                &json!({ "username": username, "password": password }),
            )
            .await?;
        answer["token"]
            .as_str()
            .context("the server sent no token")?
            .to_owned()
    };
    let me = Api::new(&server, Some(token.clone()))?
        .get("/api/v1/auth/whoami")
        .await?;
    let path = save_credentials(&Credentials { server, token })?;
    println!(
        "Signed in as {} ({}). Token stored in {}.",
        me["username"].as_str().unwrap_or("?"),
        me["role"].as_str().unwrap_or("?"),
        path.display()
    );
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum InstanceCommand {
    /// Create an instance (it starts stopped).
    Create {
        slug: String,
        /// Owner's username (admins only; default: you).
        #[arg(long)]
        owner: Option<String>,
        /// Foundry release, e.g. 12.331 or stub.
        #[arg(long)]
        release: Option<String>,
        /// License id to pin this instance to.
        #[arg(long)]
        license: Option<String>,
        /// Runtime: process, docker or kubernetes.
        #[arg(long)]
        runtime: Option<String>,
        /// Minutes without players before the world sleeps.
        #[arg(long)]
        idle_timeout: Option<u32>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List your instances (all of them for an admin).
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show one instance.
    Show {
        slug: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Start an instance.
    Start {
        slug: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop an instance.
    Stop {
        slug: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Destroy an instance.
    Destroy {
        slug: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

fn path_part(s: &str) -> anyhow::Result<&str> {
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("{s:?} is not a valid name or id");
    }
    Ok(s)
}

pub async fn instance(cmd: InstanceCommand) -> anyhow::Result<()> {
    match cmd {
        InstanceCommand::Create {
            slug,
            owner,
            release,
            license,
            runtime,
            idle_timeout,
            conn,
        } => {
            let api = Api::from_conn(&conn)?;
            let mut body = json!({ "slug": slug });
            for (k, v) in [
                ("owner", owner),
                ("release", release),
                ("license", license),
                ("runtime", runtime),
            ] {
                if let Some(v) = v {
                    body[k] = Value::String(v);
                }
            }
            if let Some(m) = idle_timeout {
                body["idle_timeout_minutes"] = json!(m);
            }
            let created = api.post("/api/v1/instances", &body).await?;
            print(conn.json, &created, INSTANCE_COLUMNS);
        }
        InstanceCommand::List { conn } => {
            let list = Api::from_conn(&conn)?.get("/api/v1/instances").await?;
            print(conn.json, &list, INSTANCE_COLUMNS);
        }
        InstanceCommand::Show { slug, conn } => {
            let one = Api::from_conn(&conn)?
                .get(&format!("/api/v1/instances/{}", path_part(&slug)?))
                .await?;
            print(conn.json, &one, INSTANCE_COLUMNS);
        }
        InstanceCommand::Start { slug, conn } => {
            Api::from_conn(&conn)?
                .post(
                    &format!("/api/v1/instances/{}/start", path_part(&slug)?),
                    &json!({}),
                )
                .await?;
            println!("Starting {slug}.");
        }
        InstanceCommand::Stop { slug, conn } => {
            Api::from_conn(&conn)?
                .post(
                    &format!("/api/v1/instances/{}/stop", path_part(&slug)?),
                    &json!({}),
                )
                .await?;
            println!("Stopping {slug}.");
        }
        InstanceCommand::Destroy { slug, yes, conn } => {
            let api = Api::from_conn(&conn)?;
            let path = format!("/api/v1/instances/{}", path_part(&slug)?);
            if !yes {
                if !std::io::stdin().is_terminal() {
                    bail!("destroying {slug} cannot be undone: pass --yes to confirm");
                }
                eprint!("Destroy {slug}? Type its name to confirm: ");
                std::io::stderr().flush().ok();
                if stdin_line("confirmation")?.trim() != slug {
                    bail!("not confirmed; {slug} is untouched");
                }
            }
            let gone = api.delete(&path).await?;
            if conn.json {
                print(true, &gone, INSTANCE_COLUMNS);
            } else {
                println!("Destroyed {slug}.");
            }
        }
    }
    Ok(())
}

#[derive(clap::Subcommand)]
pub enum LicenseCommand {
    /// Add a Foundry license key. The key is read from a file or from
    /// standard input, never from the command line.
    Add {
        /// A name to tell keys apart.
        #[arg(long)]
        label: String,
        /// Read the key from this file.
        #[arg(
            long,
            conflicts_with = "key_stdin",
            required_unless_present = "key_stdin"
        )]
        key_file: Option<PathBuf>,
        /// Read the key from standard input.
        #[arg(long)]
        key_stdin: bool,
        /// Pin the key to this game master (default: the shared pool).
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List licenses (the key's last four characters only).
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove a license.
    Remove {
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

pub async fn license(cmd: LicenseCommand) -> anyhow::Result<()> {
    match cmd {
        LicenseCommand::Add {
            label,
            key_file,
            key_stdin: _,
            owner,
            conn,
        } => {
            let api = Api::from_conn(&conn)?;
            let key = match key_file {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read the key file {}", path.display()))?,
                None => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .context("cannot read the key from standard input")?;
                    s
                }
            };
            let mut body = json!({ "label": label, "key": key.trim() });
            if let Some(o) = owner {
                body["owner"] = Value::String(o);
            }
            let added = api.post("/api/v1/licenses", &body).await?;
            print(conn.json, &added, LICENSE_COLUMNS);
        }
        LicenseCommand::List { conn } => {
            let list = Api::from_conn(&conn)?.get("/api/v1/licenses").await?;
            print(conn.json, &list, LICENSE_COLUMNS);
        }
        LicenseCommand::Remove { id, conn } => {
            Api::from_conn(&conn)?
                .delete(&format!("/api/v1/licenses/{}", path_part(&id)?))
                .await?;
            if !conn.json {
                println!("Removed license {id}.");
            }
        }
    }
    Ok(())
}

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
        #[command(flatten)]
        conn: Conn,
    },
}

pub async fn user(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::List { conn } => {
            let list = Api::from_conn(&conn)?.get("/api/v1/users").await?;
            print(conn.json, &list, USER_COLUMNS);
        }
        UserCommand::Create {
            name,
            role,
            password_stdin,
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
                    &json!({ "username": name, "role": role, "password": password }),
                )
                .await?;
            print(conn.json, &created, USER_COLUMNS);
            if generated {
                eprintln!("Password for {name}, shown this once: {password}");
            }
        }
    }
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
