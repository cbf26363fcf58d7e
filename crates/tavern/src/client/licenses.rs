//! `tavern license`: the pool of Foundry license keys.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use tavern_api::{ActivateLicenseRequest, CreateLicenseRequest, LicenseJson, UpdateLicenseRequest};

use super::columns::LICENSE_COLUMNS;
use super::commands::path_part;
use super::http::{Api, Conn};
use super::output::{print, print_json};

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
pub(crate) async fn license_id(api: &Api, key: &str) -> anyhow::Result<String> {
    if uuid::Uuid::parse_str(key).is_ok() {
        return Ok(key.to_owned());
    }
    let list: Vec<LicenseJson> = api.get_as("/api/v1/licenses").await?;
    let found: Vec<LicenseJson> = list.into_iter().filter(|l| l.label == key).collect();
    match found.as_slice() {
        [one] => Ok(one.id.clone()),
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
            print(conn.json, &added, LICENSE_COLUMNS)?;
        }
        LicenseCommand::List { conn } => {
            let list = Api::from_conn(&conn)?.get("/api/v1/licenses").await?;
            print(conn.json, &list, LICENSE_COLUMNS)?;
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
                print_json(&one);
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
            print(conn.json, &one, LICENSE_COLUMNS)?;
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
