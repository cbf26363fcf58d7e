//! The client commands, one function per command group.

use std::io::{BufRead as _, IsTerminal as _, Read as _, Write as _};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde_json::Value;
use tavern_api::{
    ActivateLicenseRequest, CreateInstanceRequest, CreateLicenseRequest, CreateSessionRequest,
    CreateUserRequest, LoginRequest, LoginResponse, UpdateInstanceRequest, UpdateLicenseRequest,
    UpdateUserRequest,
};

use super::http::{Api, Conn, Credentials, normalise_server, save_credentials};
use super::output::{Column, print, print_record};

const INSTANCE_COLUMNS: &[Column] = &[
    ("WORLD", "slug"),
    ("OWNER", "owner"),
    ("STATE", "state_word"),
    ("PLAYERS", "players"),
    ("RELEASE", "release"),
    ("LICENSE", "license.label"),
    ("URL", "url"),
];
/// Every field of one instance, for `instance show`.
const INSTANCE_FIELDS: &[Column] = &[
    ("world", "slug"),
    ("owner", "owner"),
    ("url", "url"),
    ("state", "state_word"),
    ("reason", "state_reason"),
    ("players", "players"),
    ("foundry world", "world"),
    ("foundry", "foundry_version"),
    ("release", "release"),
    ("runtime", "runtime"),
    ("license key", "license.label"),
    ("idle timeout (min)", "idle_timeout_minutes"),
    ("wake on visit", "wake_on_visit"),
    ("created", "created_at"),
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
    ("TIER", "tier"),
    ("EMAIL", "email"),
    ("CREATED", "created_at"),
];
const SUPPORTER_COLUMNS: &[Column] = &[
    ("USER", "user"),
    ("NAME", "from_name"),
    ("EMAIL", "email"),
    ("PAYMENTS", "payments"),
    ("LAST PAID", "last_paid_at"),
    ("TIER", "tier"),
    ("UNTIL", "tier_until"),
    ("CREDIT", "credit"),
];
const SESSION_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("WORLD", "instance"),
    ("START", "start"),
    ("END", "end"),
    ("LICENSE", "license.label"),
    ("STARTED", "prepared"),
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
pub(crate) fn stdin_line(what: &str) -> anyhow::Result<String> {
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
        let answer: LoginResponse = api
            .post_for("/api/v1/auth/login", &LoginRequest { username, password })
            .await?;
        answer.token
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
        /// The license key (label or id) this world always uses.
        #[arg(long)]
        license: Option<String>,
        /// Runtime: process, docker or kubernetes.
        #[arg(long)]
        runtime: Option<String>,
        /// Minutes without players before the world sleeps.
        #[arg(long)]
        idle_timeout: Option<u32>,
        /// Who wakes it by visiting: owner, anyone or off.
        #[arg(long)]
        wake_on_visit: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Change an instance's idle timeout or who wakes it by visiting
    /// (`default`: back to the server's setting).
    Set {
        slug: String,
        /// Minutes without players before the world sleeps, or `default`.
        #[arg(long)]
        idle_timeout: Option<String>,
        /// owner, anyone, off, or `default`.
        #[arg(long)]
        wake_on_visit: Option<String>,
        /// Another Foundry release (stop the world first; its data is
        /// backed up before the change).
        #[arg(long)]
        release: Option<String>,
        /// Another runtime: process or docker (stop the world first; its
        /// data stays; a world cannot move to or from kubernetes).
        #[arg(long)]
        runtime: Option<String>,
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
    /// Start a world; in a terminal, wait until it runs, showing its
    /// state as it changes.
    Start {
        slug: String,
        #[command(flatten)]
        wait: Wait,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop a world (it sleeps until started or visited); in a terminal,
    /// wait until it has stopped.
    Stop {
        slug: String,
        #[command(flatten)]
        wait: Wait,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show the world server's output.
    Logs {
        slug: String,
        /// How many of the last lines.
        #[arg(long, default_value_t = 100)]
        tail: usize,
        /// Keep printing new lines as they come (Ctrl-C to stop).
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Destroy an instance: its server stops and its data is archived.
    Destroy {
        slug: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        conn: Conn,
    },
}

/// Whether a command waits for what it asked for.
#[derive(clap::Args)]
pub struct Wait {
    /// Wait until it is done, showing the state as it changes [default
    /// in a terminal].
    #[arg(long, conflicts_with = "no_wait")]
    wait: bool,
    /// Return as soon as the server has the request.
    #[arg(long)]
    no_wait: bool,
}

impl Wait {
    fn wanted(&self, json: bool) -> bool {
        self.wait || (!self.no_wait && !json && std::io::stderr().is_terminal())
    }
}

/// Adds `state_word`, the state as people say it (the dashboard's words),
/// to an instance or to each of a list, for tables.
fn with_state_words(mut v: Value) -> Value {
    fn one(i: &mut Value) {
        let word = match (
            i["state"].as_str().and_then(|s| s.parse().ok()),
            i["desired_state"].as_str().and_then(|s| s.parse().ok()),
        ) {
            (Some(state), Some(desired)) => tavern_types::state_word(state, desired),
            _ => return,
        };
        i["state_word"] = Value::String(word.to_owned());
    }
    match &mut v {
        Value::Array(list) => list.iter_mut().for_each(one),
        other => one(other),
    }
    v
}

/// What a command prints: the server's answer as it is for `--json`,
/// with the state in people's words for a table.
fn shown(json: bool, v: Value) -> Value {
    if json { v } else { with_state_words(v) }
}

/// A spinner on stderr with a message and the time so far (drawn only in
/// a terminal).
pub(crate) fn spinner() -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        pb.set_style(style);
    }
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// Follows a world until its state is `goal` (`running` or `sleeping`),
/// with a spinner in a terminal and a line per change elsewhere; fails
/// when it fails, or when someone else changes what it is asked to do.
async fn follow_state(api: &Api, slug: &str, goal: &str) -> anyhow::Result<Value> {
    let path = format!("/api/v1/instances/{}", path_part(slug)?);
    let terminal = std::io::stderr().is_terminal();
    let pb = spinner();
    let wanted = if goal == "running" {
        "running"
    } else {
        "stopped"
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(900);
    let mut last = String::new();
    let result = loop {
        let i = with_state_words(api.get(&path).await?);
        let word = i["state_word"].as_str().unwrap_or("?").to_owned();
        let line = match i["state_reason"].as_str() {
            Some(why) if word != goal => format!("{slug}: {word} ({why})"),
            _ => format!("{slug}: {word}"),
        };
        if line != last {
            if terminal {
                pb.println(&line);
            } else {
                eprintln!("{line}");
            }
            pb.set_message(line.clone());
            last = line;
        }
        if word == goal {
            break Ok(i);
        }
        if word == "failed" {
            break Err(anyhow::anyhow!(
                "{slug} failed: {}; `tavern instance logs {slug}` shows its server's output",
                i["state_reason"].as_str().unwrap_or("no reason given")
            ));
        }
        if i["desired_state"].as_str() != Some(wanted) {
            break Err(anyhow::anyhow!(
                "{slug} was asked to do something else meanwhile (it is {word})"
            ));
        }
        if tokio::time::Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "gave up waiting after 15 minutes; `tavern instance show {slug}` tells how it goes"
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    pb.finish_and_clear();
    result
}

pub(crate) fn path_part(s: &str) -> anyhow::Result<&str> {
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
            wake_on_visit,
            conn,
        } => {
            let api = Api::from_conn(&conn)?;
            let license = match license {
                Some(key) => Some(license_id(&api, &key).await?),
                None => None,
            };
            let body = CreateInstanceRequest {
                slug: slug.clone(),
                owner,
                release,
                license,
                runtime,
                idle_timeout_minutes: idle_timeout,
                wake_on_visit,
            };
            let created = api.post("/api/v1/instances", &body).await?;
            print(
                conn.json,
                &shown(conn.json, created.clone()),
                INSTANCE_COLUMNS,
            );
            if let (false, Some(key)) = (conn.json, created["admin_key"].as_str()) {
                eprintln!("Foundry admin key for {slug}, shown this once: {key}");
            }
        }
        InstanceCommand::Set {
            slug,
            idle_timeout,
            wake_on_visit,
            release,
            runtime,
            conn,
        } => {
            let idle_timeout_minutes = match idle_timeout.as_deref() {
                None => None,
                Some("default") => Some(None),
                Some(m) => Some(Some(m.parse::<u32>().map_err(|_| {
                    anyhow::anyhow!("--idle-timeout takes minutes or `default`")
                })?)),
            };
            let body = UpdateInstanceRequest {
                idle_timeout_minutes,
                wake_on_visit: wake_on_visit.map(|w| (w != "default").then_some(w)),
                release,
                runtime,
            };
            let one = Api::from_conn(&conn)?
                .patch(&format!("/api/v1/instances/{}", path_part(&slug)?), &body)
                .await?;
            print_record(conn.json, &shown(conn.json, one), INSTANCE_FIELDS);
        }
        InstanceCommand::List { conn } => {
            let list = Api::from_conn(&conn)?.get("/api/v1/instances").await?;
            print(conn.json, &shown(conn.json, list), INSTANCE_COLUMNS);
        }
        InstanceCommand::Show { slug, conn } => {
            let one = Api::from_conn(&conn)?
                .get(&format!("/api/v1/instances/{}", path_part(&slug)?))
                .await?;
            print_record(conn.json, &shown(conn.json, one), INSTANCE_FIELDS);
        }
        InstanceCommand::Start { slug, wait, conn } => {
            let api = Api::from_conn(&conn)?;
            let mut one = api
                .post_empty(&format!("/api/v1/instances/{}/start", path_part(&slug)?))
                .await?;
            let waited = wait.wanted(conn.json);
            if waited {
                one = follow_state(&api, &slug, "running").await?;
            }
            if conn.json {
                print(true, &one, INSTANCE_COLUMNS);
            } else if waited {
                println!("{slug} runs at {}", one["url"].as_str().unwrap_or("?"));
            } else {
                println!("Starting {slug}; `tavern instance show {slug}` tells when it runs.");
            }
        }
        InstanceCommand::Stop { slug, wait, conn } => {
            let api = Api::from_conn(&conn)?;
            let mut one = api
                .post_empty(&format!("/api/v1/instances/{}/stop", path_part(&slug)?))
                .await?;
            let waited = wait.wanted(conn.json);
            if waited {
                one = follow_state(&api, &slug, "sleeping").await?;
            }
            if conn.json {
                print(true, &one, INSTANCE_COLUMNS);
            } else if waited {
                println!(
                    "{slug} has stopped; its world was saved. It sleeps until started or visited."
                );
            } else {
                println!("Stopping {slug}; its world is saved before the server exits.");
            }
        }
        InstanceCommand::Logs {
            slug,
            tail,
            follow,
            conn,
        } => {
            let api = Api::from_conn(&conn)?;
            let path = format!("/api/v1/instances/{}/logs", path_part(&slug)?);
            let mut printed: Vec<String> = Vec::new();
            loop {
                let n = if printed.is_empty() { tail } else { 1000 };
                let answer = api.get(&format!("{path}?tail={n}")).await?;
                let lines: Vec<String> = answer["lines"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|l| l.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                for line in new_lines(&printed, &lines) {
                    println!("{line}");
                }
                if !lines.is_empty() {
                    printed = lines;
                }
                if !follow {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
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

/// The lines of `now` that come after what `before` ended with.
fn new_lines<'a>(before: &[String], now: &'a [String]) -> &'a [String] {
    if before.is_empty() {
        return now;
    }
    // Find the longest end of `before` that `now` starts a run with.
    for take in (1..=before.len().min(now.len())).rev() {
        let tail = &before[before.len() - take..];
        if let Some(pos) = now.windows(take).rposition(|w| w == tail) {
            return &now[pos + take..];
        }
    }
    now
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
    /// Hand a key to a world: the world now on it stops first, then SLUG
    /// starts with it.
    Activate {
        /// The key's label or id.
        id: String,
        /// The world that gets the key.
        #[arg(long)]
        instance: String,
        /// Stop the world now on the key even while players are connected.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Rename a license key, or pin it to a game master (or back to the
    /// pool).
    Set {
        /// The key's label or id.
        id: String,
        /// A new label.
        #[arg(long)]
        label: Option<String>,
        /// Pin it to this game master.
        #[arg(long, conflicts_with = "pool")]
        owner: Option<String>,
        /// Back to the shared pool.
        #[arg(long)]
        pool: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove a license key.
    Remove {
        /// The key's label or id.
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

/// The id of the license key `key` names: its id, or its label.
async fn license_id(api: &Api, key: &str) -> anyhow::Result<String> {
    if uuid::Uuid::parse_str(key).is_ok() {
        return Ok(key.to_owned());
    }
    let list = api.get("/api/v1/licenses").await?;
    let found: Vec<&Value> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["label"].as_str() == Some(key))
        .collect();
    match found.as_slice() {
        [one] => Ok(one["id"].as_str().unwrap_or_default().to_owned()),
        [] => bail!("no license key is labelled {key:?}; `tavern license list` shows them"),
        _ => bail!("more than one license key is labelled {key:?}: name it by its id"),
    }
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
            let body = CreateLicenseRequest {
                label,
                key: key.trim().to_owned(),
                owner,
            };
            let added = api.post("/api/v1/licenses", &body).await?;
            print(conn.json, &added, LICENSE_COLUMNS);
        }
        LicenseCommand::List { conn } => {
            let list = Api::from_conn(&conn)?.get("/api/v1/licenses").await?;
            print(conn.json, &list, LICENSE_COLUMNS);
        }
        LicenseCommand::Activate {
            id,
            instance,
            force,
            conn,
        } => {
            let api = Api::from_conn(&conn)?;
            let id = license_id(&api, &id).await?;
            let one = api
                .post(
                    &format!("/api/v1/licenses/{}/activate", path_part(&id)?),
                    &ActivateLicenseRequest {
                        instance: instance.clone(),
                        force,
                    },
                )
                .await?;
            if conn.json {
                print(true, &one, INSTANCE_COLUMNS);
            } else {
                println!("The key goes to {instance} once the world now on it has stopped.");
            }
        }
        LicenseCommand::Set {
            id,
            label,
            owner,
            pool,
            conn,
        } => {
            let api = Api::from_conn(&conn)?;
            let id = license_id(&api, &id).await?;
            let body = UpdateLicenseRequest {
                label,
                owner: match owner {
                    Some(o) => Some(Some(o)),
                    None => pool.then_some(None),
                },
            };
            let one = api
                .patch(&format!("/api/v1/licenses/{}", path_part(&id)?), &body)
                .await?;
            print(conn.json, &one, LICENSE_COLUMNS);
        }
        LicenseCommand::Remove { id, conn } => {
            let api = Api::from_conn(&conn)?;
            let named = id;
            let id = license_id(&api, &named).await?;
            api.delete(&format!("/api/v1/licenses/{}", path_part(&id)?))
                .await?;
            if !conn.json {
                println!("Removed the license key {named}.");
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
            print(conn.json, &list, USER_COLUMNS);
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
            print(conn.json, &created, USER_COLUMNS);
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
            let user = Api::from_conn(&conn)?
                .patch(
                    &format!("/api/v1/users/{}", path_part(&name)?),
                    &UpdateUserRequest {
                        tier: Some(tier),
                        ..UpdateUserRequest::default()
                    },
                )
                .await?;
            print(conn.json, &user, USER_COLUMNS);
        }
        UserCommand::SetEmail {
            name,
            email,
            none: _,
            conn,
        } => {
            let user = Api::from_conn(&conn)?
                .patch(
                    &format!("/api/v1/users/{}", path_part(&name)?),
                    &UpdateUserRequest {
                        email: Some(email),
                        ..UpdateUserRequest::default()
                    },
                )
                .await?;
            print(conn.json, &user, USER_COLUMNS);
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
                None => api.get("/api/v1/auth/whoami").await?["username"]
                    .as_str()
                    .context("the server did not say who you are")?
                    .to_owned(),
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
                print(true, &code, &[]);
            } else {
                println!("{}", code["code"].as_str().unwrap_or_default());
                eprintln!(
                    "Valid once, until {}. Write it in a Ko-fi message, or give it to the Discord bot: /tavern link.",
                    code["expires_at"]
                        .as_str()
                        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                        .map_or_else(
                            || "?".to_owned(),
                            |t| tavern_types::words::instant(t, &jiff::tz::TimeZone::system())
                        )
                );
            }
        }
    }
    Ok(())
}

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

/// A duration like `4h`, `90m` or `3h30m`, in whole minutes.
pub(crate) fn parse_minutes(s: &str) -> Result<u32, String> {
    let bad = || format!("{s:?} is not a duration like 4h, 90m or 3h30m");
    let d: jiff::SignedDuration = s.trim().parse().map_err(|_| bad())?;
    if d.is_negative() || d.as_secs() % 60 != 0 {
        return Err(bad());
    }
    u32::try_from(d.as_secs() / 60).map_err(|_| bad())
}

/// When `at` is: an instant with its offset, or a wall-clock time in
/// `tz` (an IANA name; default: `system`, this computer's zone).
pub(crate) fn parse_at(
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
            print(conn.json, &booked, SESSION_COLUMNS);
        }
        SessionCommand::List { conn } => {
            let list = Api::from_conn(&conn)?.get("/api/v1/sessions").await?;
            print(conn.json, &list, SESSION_COLUMNS);
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
pub enum ReleaseCommand {
    /// Install a Foundry VTT release (the Linux or Node.js zip) on the
    /// server, beside the others (admins).
    Add {
        /// A Foundry zip on disk: sent to the server.
        #[arg(long, conflicts_with = "url", required_unless_present = "url")]
        zip: Option<PathBuf>,
        /// Download the zip here first (e.g. a timed URL from
        /// foundryvtt.com), then send it.
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// The releases the server can run (newest last: what a world made
    /// without `--release` gets).
    List {
        #[command(flatten)]
        conn: Conn,
    },
}

fn bar(total: Option<u64>, what: &str) -> indicatif::ProgressBar {
    let pb =
        indicatif::ProgressBar::with_draw_target(total, indicatif::ProgressDrawTarget::stderr());
    // Without a size (a download copied as the server reads it): how much
    // has come, and how fast.
    let template = match total {
        Some(_) => "{msg:12} [{bar:40}] {bytes}/{total_bytes} {eta}",
        None => "{msg:12} {spinner} {bytes} {bytes_per_sec}",
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_owned());
    pb
}

pub async fn release(cmd: ReleaseCommand) -> anyhow::Result<()> {
    match cmd {
        ReleaseCommand::List { conn } => {
            let list = Api::from_conn(&conn)?.get("/api/v1/releases").await?;
            print(
                conn.json,
                &list,
                &[("VERSION", "version"), ("LAYOUT", "layout")],
            );
        }
        ReleaseCommand::Add { zip, url, conn } => {
            let api = Api::from_conn(&conn)?;
            let (path, downloaded) = match (zip, url) {
                (Some(p), _) => (p, false),
                (None, Some(url)) => (download(&url, &std::env::temp_dir()).await?, true),
                (None, None) => bail!("pass --zip FILE or --url URL"),
            };
            let installed = upload_release(&api, &path).await;
            if downloaded {
                let _ = std::fs::remove_file(&path);
            }
            let installed = installed?;
            if conn.json {
                print(true, &installed, &[]);
            } else {
                println!(
                    "Installed Foundry VTT {} on the server.",
                    installed["version"].as_str().unwrap_or("?")
                );
            }
        }
    }
    Ok(())
}

/// Sends a Foundry zip to the server, with a progress bar.
async fn upload_release(api: &Api, path: &std::path::Path) -> anyhow::Result<Value> {
    use futures_util::StreamExt as _;
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    let size = file.metadata().await.map(|m| m.len()).ok();
    let pb = bar(size, "sending");
    let counted = pb.clone();
    let stream = tokio_util::io::ReaderStream::new(file).inspect(move |chunk| {
        if let Ok(bytes) = chunk {
            counted.inc(bytes.len() as u64);
        }
    });
    let answer = api
        .upload(
            "/api/v1/releases",
            "application/zip",
            reqwest::Body::wrap_stream(stream),
        )
        .await;
    pb.finish_and_clear();
    answer
}

/// Writes a response's body to `path` with a progress bar.
pub(crate) async fn save_body(
    mut resp: reqwest::Response,
    path: &std::path::Path,
    what: &str,
) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let pb = bar(resp.content_length(), what);
    let mut file = tokio::fs::File::create(path)
        .await
        .with_context(|| format!("cannot create {}", path.display()))?;
    while let Some(chunk) = resp.chunk().await.context("the download was cut off")? {
        file.write_all(&chunk).await?;
        pb.inc(chunk.len() as u64);
    }
    file.flush().await?;
    pb.finish_and_clear();
    Ok(())
}

/// Downloads `url` into `dir` with a progress bar; a failed download
/// leaves nothing behind.
async fn download(url: &str, dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("the URL {url:?} must start with http:// or https://");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!(".download-{}.zip", std::process::id()));
    let result: anyhow::Result<()> = async {
        let resp = reqwest::get(url)
            .await
            .context("cannot download the release")?;
        if !resp.status().is_success() {
            bail!("downloading the release failed: HTTP {}", resp.status());
        }
        save_body(resp, &path, "downloading").await
    }
    .await;
    match result {
        Ok(()) => Ok(path),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{new_lines, parse_at, parse_minutes};

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn durations_are_whole_minutes() {
        assert_eq!(parse_minutes("4h"), Ok(240));
        assert_eq!(parse_minutes("90m"), Ok(90));
        assert_eq!(parse_minutes("3h30m"), Ok(210));
        for bad in ["", "soon", "-1h", "90s", "4"] {
            assert!(parse_minutes(bad).is_err(), "{bad}");
        }
    }

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

    #[test]
    fn follow_prints_only_what_is_new() {
        assert_eq!(new_lines(&[], &v(&["a", "b"])), v(&["a", "b"]));
        assert_eq!(new_lines(&v(&["a", "b"]), &v(&["a", "b", "c"])), v(&["c"]));
        assert_eq!(
            new_lines(&v(&["a", "b"]), &v(&["b", "c", "d"])),
            v(&["c", "d"])
        );
        assert_eq!(new_lines(&v(&["x", "y"]), &v(&["p", "q"])), v(&["p", "q"]));
        assert!(new_lines(&v(&["a", "b"]), &v(&["a", "b"])).is_empty());
    }
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
