//! `tavern`: one binary that is the server (`serve`), the command-line
//! client (`login`, `instance`, `license`, `user`, `events`, `manifests`…)
//! and, hidden, the stand-in for Foundry (`foundry-stub`) and the helpers a
//! world's pods run on Kubernetes (`foundry-config`, `data-agent`). This
//! file is only the command line; each part lives in its own module.

mod client;
mod config;
mod data_agent;
mod database;
mod discord;
mod dns;
mod drivers;
mod notify;
mod repo_key;
mod serve;
mod signals;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;

/// mimalloc in place of the system allocator: hyper allocates and frees an
/// 8 KB read buffer for nearly every request the proxy serves, which glibc
/// serves outside its per-thread cache (docs/performance.md). Built without
/// asking for transparent huge pages (the `no_thp` feature), which kept
/// about 12 MB of a barely used arena resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tavern",
    version,
    about = "Host Foundry VTT worlds for a community"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Tavern server.
    Serve(ServeArgs),
    /// Sign in to a Tavern server and remember the token.
    Login(client::LoginArgs),
    /// Create, list and manage instances (Foundry worlds).
    #[command(subcommand)]
    Instance(client::InstanceCommand),
    /// Manage Foundry license keys.
    #[command(subcommand)]
    License(client::LicenseCommand),
    /// Book, list and cancel play sessions.
    #[command(subcommand)]
    Session(client::SessionCommand),
    /// Take, list, download and restore backups of worlds.
    #[command(subcommand)]
    Backup(client::BackupCommand),
    /// Manage users.
    #[command(subcommand)]
    User(client::UserCommand),
    /// Invite people to make accounts, and accept an invitation.
    #[command(subcommand)]
    Invite(client::InviteCommand),
    /// Set up the Discord bot.
    #[command(subcommand)]
    Discord(discord::DiscordCommand),
    /// Install and list Foundry releases on this machine.
    #[command(subcommand)]
    Release(client::ReleaseCommand),
    /// The community's package library: game systems, modules and world
    /// templates stored once and shared by the worlds that pick them.
    #[command(subcommand)]
    Package(client::PackageCommand),
    /// What an admin needs at a glance.
    #[command(subcommand)]
    Admin(client::AdminCommand),
    /// Hours and cost per user, world and license key for a month.
    Usage(client::UsageArgs),
    /// Read the audit log (admins).
    Events(client::EventsArgs),
    /// Kubernetes YAML: a world's objects, or Tavern's own installation.
    #[command(subcommand)]
    Manifests(client::ManifestsCommand),
    /// A stand-in for a Foundry server, for tests and the demo.
    #[command(hide = true)]
    FoundryStub(tavern_stub::StubArgs),
    /// Write a world's Config/ from its seed (Tavern's init container in a
    /// world's pod on Kubernetes or its task on ECS).
    #[command(hide = true)]
    FoundryConfig(FoundryConfigArgs),
    /// Serve a world's data claim to Tavern, for a backup or a restore
    /// (a short-lived pod on Kubernetes).
    #[command(hide = true)]
    DataAgent(data_agent::DataAgentArgs),
}

#[derive(clap::Args)]
struct FoundryConfigArgs {
    /// The seed: the world's settings as Tavern wrote them into its Secret.
    /// Without it, the seed is the environment variable
    /// `TAVERN_FOUNDRY_SEED` (ECS puts the world's secret there).
    #[arg(long)]
    seed: Option<PathBuf>,
    /// The world's data directory (its volume).
    #[arg(long)]
    data: PathBuf,
    /// A library to copy to the world's `.tavern/` (on ECS: the one that
    /// gives Foundry its key's stable host name, preloaded from there).
    #[arg(long)]
    preload: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The configuration file (default: ./tavern.toml if it exists).
    #[arg(long, env = "TAVERN_CONFIG")]
    config: Option<PathBuf>,
    /// Where Tavern keeps its state [default: ./tavern-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Domain under which worlds live as <slug>.<domain> [default: localhost].
    #[arg(long)]
    domain: Option<String>,
    /// Log format [default: text].
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Set up a demo user, license and instance running the built-in stand-in.
    #[arg(long)]
    demo: bool,
}

/// The most I/O events a runtime worker takes from the kernel at once: when
/// it has nothing else to run, and when it looks in between its tasks.
/// With tokio's default (1 024 for both) one batch under load could wake
/// more tasks than a worker's run queue holds (256); the overflow waited in
/// the shared queue, and a few connections were served hundreds of
/// milliseconds late (docs/performance.md, small responses over 256
/// connections). Events left in the kernel are taken at the next look.
/// For `serve` only: the stand-in, which plays Foundry, keeps tokio's
/// defaults, under which it serves the benchmarks' load better (with these
/// limits, overloaded and taking a new connection for most proxied
/// requests, it left both nginx's and Tavern's p99 at 900 ms).
const IO_EVENTS_PER_TICK: usize = 64;
const IO_EVENTS_PER_BUSY_TICK: usize = 8;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if matches!(cli.command, Command::Serve(_)) {
        builder
            .max_io_events_per_tick(IO_EVENTS_PER_TICK)
            .max_io_events_per_busy_tick(IO_EVENTS_PER_BUSY_TICK);
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Login(args) => client::login(args).await,
            Command::Instance(cmd) => client::instance(cmd).await,
            Command::License(cmd) => client::license(cmd).await,
            Command::Session(cmd) => client::session(cmd).await,
            Command::Backup(cmd) => client::backup(cmd).await,
            Command::User(cmd) => client::user(cmd).await,
            Command::Invite(cmd) => client::invite(cmd).await,
            Command::Discord(cmd) => discord::discord(cmd).await,
            Command::Release(cmd) => client::release(cmd).await,
            Command::Package(cmd) => client::package(cmd).await,
            Command::Admin(cmd) => client::admin(cmd).await,
            Command::Usage(args) => client::usage(args).await,
            Command::Events(args) => client::events(args).await,
            Command::Manifests(cmd) => client::manifests(cmd).await,
            Command::FoundryStub(args) => tavern_stub::run(args).await,
            Command::DataAgent(args) => data_agent::run(args).await,
            Command::FoundryConfig(args) => {
                let seed = match &args.seed {
                    Some(file) => std::fs::read_to_string(file).map_err(|e| {
                        anyhow::anyhow!("cannot read the seed {}: {e}", file.display())
                    })?,
                    None => {
                        std::env::var(tavern_runtime::foundry_config::SEED_ENV).map_err(|_| {
                            anyhow::anyhow!(
                                "no seed: give --seed or set {}",
                                tavern_runtime::foundry_config::SEED_ENV
                            )
                        })?
                    }
                };
                tavern_runtime::foundry_config::write_from_seed(&seed, &args.data)
                    .map_err(anyhow::Error::msg)?;
                if let Some(library) = &args.preload {
                    tavern_runtime::foundry_config::place_preload(library, &args.data)
                        .map_err(anyhow::Error::msg)?;
                }
                println!("wrote {}", args.data.join("Config").display());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
