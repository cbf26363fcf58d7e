//! `tavern backup repo-key`: the backup repositories' password, printed for
//! an admin to keep for disaster recovery. A local command: it reads the
//! server's configuration, sealing key and database itself (never through
//! the API, whose answers never hold secrets), and records that it was
//! shown in the audit log.

use std::path::PathBuf;

use crate::config::{Config, Overrides};
use crate::database::Database;

#[derive(clap::Args)]
pub struct RepoKeyArgs {
    /// The server's configuration file (default: ./tavern.toml if it
    /// exists).
    #[arg(long, env = "TAVERN_CONFIG")]
    config: Option<PathBuf>,
    /// The server's data directory, as `tavern serve --data-dir` takes it.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub async fn run(args: RepoKeyArgs) -> anyhow::Result<()> {
    let config = Config::load(
        args.config.as_deref(),
        Overrides {
            data_dir: args.data_dir,
            ..Overrides::default()
        },
    )?;
    let secrets = crate::serve::open_secrets(&config)?;
    let database = Database::open(&config.store_target()).await?;
    let store = database.store();
    let password = tavern_core::backups::repository_password(&*store, &secrets).await;
    let shown = tavern_store::NewEvent {
        actor: "local admin".into(),
        action: "backup.repository_key_shown".into(),
        target: "backups".into(),
        outcome: tavern_store::Outcome::Success,
        detail: Some("printed by `tavern backup repo-key`".into()),
        at: tavern_store::now(),
    };
    let recorded = match &password {
        Ok(_) => store
            .append_event(&shown)
            .await
            .map_err(anyhow::Error::from),
        Err(_) => Ok(()),
    };
    database.close().await;
    let password = password?;
    recorded?;
    let target = config.backup_target()?;
    eprintln!(
        "The password of every world's backup repository under {target}/{}/.\n\
         Keep it somewhere safe: with it, restic reads the backups without Tavern:\n  \
         RESTIC_PASSWORD=… restic -r {target}/{}/WORLD snapshots",
        tavern_backup::repo::REPOSITORIES,
        tavern_backup::repo::REPOSITORIES,
    );
    println!("{password}");
    Ok(())
}
