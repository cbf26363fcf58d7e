//! `tavern instance`: creating, changing, starting, stopping, following and
//! destroying worlds.

use std::io::{IsTerminal as _, Write as _};

use anyhow::bail;
use serde_json::Value;
use tavern_api::{CreateInstanceRequest, InstanceJson, LogsJson, UpdateInstanceRequest};

use super::columns::{INSTANCE_COLUMNS, INSTANCE_FIELDS, state_word};
use super::commands::{path_part, spinner, stdin_line};
use super::http::{Api, Conn, read};
use super::licenses::license_id;
use super::output::{print, print_json, print_record};

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
        /// Change the release even though some of the world's library
        /// packages would not load on it (without it, the change is
        /// refused and names them).
        #[arg(long, requires = "release")]
        force: bool,
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
    /// The library packages a world uses: list, add, remove.
    Packages {
        slug: String,
        #[command(subcommand)]
        action: super::packages::WorldPackagesCommand,
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
    /// Bring a world or a whole Foundry user-data folder from another host
    /// (a felddy volume, a plain install, a Pterodactyl server, a world
    /// exported elsewhere): a folder or a zip, tar, tar.gz or tar.zst of
    /// one, here, at a URL, or on the server.
    Import(super::imports::ImportArgs),
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
        let answer = api.get(&path).await?;
        let i: InstanceJson = read(&answer)?;
        let word = state_word(&i).unwrap_or("?");
        let line = match i.state_reason.as_deref() {
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
            break Ok(answer);
        }
        if word == "failed" {
            break Err(anyhow::anyhow!(
                "{slug} failed: {}; `tavern instance logs {slug}` shows its server's output",
                i.state_reason.as_deref().unwrap_or("no reason given")
            ));
        }
        if i.desired_state != wanted {
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
            print(conn.json, &created, INSTANCE_COLUMNS)?;
            if let (false, Some(key)) = (conn.json, read::<InstanceJson>(&created)?.admin_key) {
                eprintln!("Foundry admin key for {slug}, shown this once: {key}");
            }
        }
        InstanceCommand::Set {
            slug,
            idle_timeout,
            wake_on_visit,
            release,
            runtime,
            force,
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
                force,
            };
            let one = Api::from_conn(&conn)?
                .patch(&format!("/api/v1/instances/{}", path_part(&slug)?), &body)
                .await?;
            print_record(conn.json, &one, INSTANCE_FIELDS)?;
        }
        InstanceCommand::List { conn } => {
            let list = Api::from_conn(&conn)?.get("/api/v1/instances").await?;
            print(conn.json, &list, INSTANCE_COLUMNS)?;
        }
        InstanceCommand::Show { slug, conn } => {
            let one = Api::from_conn(&conn)?
                .get(&format!("/api/v1/instances/{}", path_part(&slug)?))
                .await?;
            print_record(conn.json, &one, INSTANCE_FIELDS)?;
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
                print_json(&one);
            } else if waited {
                println!("{slug} runs at {}", read::<InstanceJson>(&one)?.url);
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
                print_json(&one);
            } else if waited {
                println!(
                    "{slug} has stopped; its world was saved. It sleeps until started or visited."
                );
            } else {
                println!("Stopping {slug}; its world is saved before the server exits.");
            }
        }
        InstanceCommand::Packages { slug, action } => {
            super::packages::world_packages(&slug, action).await?;
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
                let LogsJson { lines } = api.get_as(&format!("{path}?tail={n}")).await?;
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
        InstanceCommand::Import(args) => super::imports::import(args).await?,
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
                print_json(&gone);
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

#[cfg(test)]
mod tests {
    use super::new_lines;

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

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }
}
