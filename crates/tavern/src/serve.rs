//! The composition root of `tavern serve`: loads the configuration, prepares
//! DATA_DIR, opens the store and the secret box, bootstraps the first admin,
//! builds the service and the HTTP API, and runs them until SIGTERM/SIGINT,
//! with one cancellation token for everything.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::drivers::Release;
use anyhow::Context as _;
use tavern_core::leadership::{Leadership, run_by_leadership};
use tavern_core::reconciler::{Reconciler, ReconcilerSettings};
use tavern_core::secrets::{SecretBox, create_private_dir, write_private};
use tavern_core::{Caller, NewInstance, NewLicense, NewUser, Settings, Tavern};
use tavern_http::HttpSettings;
use tavern_proxy::{ApiService, BoxError, Peer, Proxy, ProxyBody, ProxySettings, Routing, Site};
use tavern_runtime::process::ProcessRuntime;
use tavern_runtime::releases::Releases;
use tokio_util::sync::CancellationToken;

use crate::ServeArgs;
use crate::config::{AcmeChallenge, Config, DnsMode, LogFormat, Overrides, RoutingMode, TlsMode};
use crate::database::Database;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let server = build(args, &shutdown).await?;
    let work = server.spawn_work(&shutdown)?;
    server.serve(work, shutdown).await
}

/// What `tavern serve` builds before any work starts: the configuration,
/// the store, Tavern itself, and the listeners, already bound.
struct Server {
    config: Config,
    database: Database,
    secrets: SecretBox,
    tavern: Tavern,
    leadership: Leadership,
    /// Releases the lease at shutdown, when replicas elect a leader.
    election: Option<Release>,
    certificates: tavern_proxy::acme::Certificates,
    tls: Option<tavern_proxy::tls::TlsAcceptor>,
    listener: tokio::net::TcpListener,
    /// The plain-HTTP listener that redirects to HTTPS.
    redirect: Option<tokio::net::TcpListener>,
    addr: std::net::SocketAddr,
    /// `[dns] mode = "per-world"`: what the leader keeps worlds' names with.
    world_names: Option<tavern_core::dns::WorldNames>,
}

/// The background work, to wait for at shutdown.
type Work = Vec<tokio::task::JoinHandle<()>>;

/// The environment variable that may hold the sealing key itself, as 64
/// hex digits (where a platform's secret store gives secrets as variables,
/// such as ECS from Secrets Manager). It is read here, never as a setting.
pub(crate) const SEALING_KEY_VAR: &str = "TAVERN_SEALING_KEY";

/// Tavern's sealing key: from `TAVERN_SEALING_KEY` when it is set, else
/// where the configuration says (made in the data directory on first use
/// when it names none).
pub(crate) fn open_secrets(config: &Config) -> anyhow::Result<SecretBox> {
    if let Ok(hex_key) = std::env::var(SEALING_KEY_VAR) {
        let key: [u8; 32] = hex::decode(hex_key.trim())
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{SEALING_KEY_VAR} must be 64 hex digits (32 bytes: `head -c 32 /dev/urandom | xxd -p -c 64`)"
                )
            })?;
        anyhow::ensure!(
            config.server.secret_key_file.is_none(),
            "{SEALING_KEY_VAR} and server.secret_key_file both name a sealing key: keep one"
        );
        return Ok(SecretBox::from_key(key));
    }
    Ok(match &config.server.secret_key_file {
        Some(shared) => SecretBox::load(shared).with_context(|| {
            format!(
                "server.secret_key_file: make it once with `head -c 32 /dev/urandom > {}` and give every replica the same file",
                shared.display()
            )
        })?,
        None => SecretBox::load_or_create(&config.server.data_dir.join("secret.key"))?,
    })
}

/// Reads the configuration, opens the store, binds the listeners and makes
/// Tavern (with its first admin, or the demo, on a fresh data directory);
/// a termination signal from here on cancels `shutdown`.
async fn build(args: ServeArgs, shutdown: &CancellationToken) -> anyhow::Result<Server> {
    let mut config = Config::load(
        args.config.as_deref(),
        Overrides {
            data_dir: args.data_dir,
            listen: args.listen,
            domain: args.domain,
            log_format: args.log_format,
            stub_release: args.demo,
        },
    )?;
    init_logging(&config);

    create_private_dir(&config.server.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.server.data_dir.display()
        )
    })?;
    // Children run in their own directories: every path must be absolute.
    config.server.data_dir = std::fs::canonicalize(&config.server.data_dir)
        .with_context(|| format!("cannot resolve {}", config.server.data_dir.display()))?;
    let data_dir = &config.server.data_dir;
    let secrets = open_secrets(&config)?;
    let database = Database::open(&config.store_target()).await?;
    let certificates = tavern_proxy::acme::Certificates::default();
    let tls = match config.tls.mode {
        TlsMode::Files => {
            let (cert, key) = (
                config.tls.cert_file.as_deref().unwrap_or(Path::new("")),
                config.tls.key_file.as_deref().unwrap_or(Path::new("")),
            );
            Some(tavern_proxy::tls::acceptor_from_files(cert, key)?)
        }
        TlsMode::Acme => Some(certificates.acceptor()),
        TlsMode::Off => None,
    };
    let stop_signal = crate::signals::termination()?;
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            tracing::info!("{}: shutting down", stop_signal.await);
            shutdown.cancel();
        }
    });
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    // Every listener is bound before Tavern says it is listening.
    let redirect = match (&tls, config.tls.http_listen) {
        (Some(_), Some(http)) => Some(
            tokio::net::TcpListener::bind(http)
                .await
                .with_context(|| format!("cannot listen on {http} (tls.http_listen)"))?,
        ),
        _ => None,
    };
    let (public_scheme, public_port) = config.public_scheme_and_port(addr);
    let process = ProcessRuntime::new(
        data_dir.join("instances"),
        data_dir.join("archive"),
        config.runtime.ports()?,
    )
    .with_packages(data_dir.join("packages"));
    let (runtime, leadership, election) = crate::drivers::drivers(&config, process).await?;
    tokio::spawn(leadership.clone().announce());
    let dns = config.dns.setup(&config.server.domain)?;
    let tavern = Tavern::new(
        database.store(),
        secrets.clone(),
        Settings {
            public_scheme,
            domain: config.server.domain.clone(),
            public_port,
            default_runtime: config.runtime.kind,
            runtimes: config.runtime.kinds(),
            license_vault: data_dir.join("licenses"),
            imports_dir: data_dir.join("imports"),
            economy: config.economy(),
            path_routing: config.server.routing == RoutingMode::Path,
            idle_timeout: jiff::SignedDuration::from_mins(
                i64::try_from(config.idle.timeout_minutes).unwrap_or(30),
            ),
            backups: Some(config.backup_settings()?),
            usage_rate: config.usage.rate_per_hour,
            usage_currency: config.usage.currency.clone(),
            kofi: config.kofi.settings()?,
            notify: config.notify_settings()?,
            dns_per_world: dns.as_ref().is_some_and(|d| d.mode == DnsMode::PerWorld),
            packages: config.packages.settings(data_dir)?,
            auth: config.auth.settings(),
        },
        Arc::new(runtime),
        Arc::new(releases(&config)?),
    );
    let tavern = match config.storage.uploads()? {
        Some(uploads) => {
            tracing::info!(
                "storage: each world's uploads go to object storage ({:?}), with a key that reaches only them",
                uploads.storage.layout()
            );
            tavern.with_uploads(uploads)
        }
        None => tavern,
    };

    if let Some(token) = tavern.bootstrap().await? {
        announce_first_admin(&tavern, &config, addr, &token).await?;
    }
    if args.demo {
        set_up_demo(&tavern).await?;
    }
    let world_names = dns.and_then(|d| crate::dns::start(d, config.server.domain.clone()));
    let stale = tavern.remove_stale_uploads();
    if stale > 0 {
        tracing::info!(stale, "removed uploads an earlier run left behind");
    }
    // Backups an earlier run left unfinished are failed, not listed as
    // whole: here when this Tavern is alone, by each new leader otherwise.
    if election.is_none() {
        tavern.tidy_backups().await?;
    }

    Ok(Server {
        config,
        database,
        secrets,
        tavern,
        leadership,
        election,
        certificates,
        tls,
        listener,
        redirect,
        addr,
        world_names,
    })
}

/// Tells whoever started a fresh Tavern the first admin's token (once,
/// and in `admin-token`) and a one-use invitation to make their own
/// account for the dashboard.
async fn announce_first_admin(
    tavern: &Tavern,
    config: &Config,
    addr: std::net::SocketAddr,
    token: &str,
) -> anyhow::Result<()> {
    let data_dir = &config.server.data_dir;
    let path = data_dir.join("admin-token");
    let _ = std::fs::remove_file(&path);
    write_private(&path, format!("{token}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("Created the admin user `admin`. Its API token, shown this once:");
    println!();
    println!("    {token}");
    println!();
    println!("It is also in {} (readable by you only).", path.display());
    println!(
        "Sign in with: tavern login --server {} --token-stdin < {}",
        config.api_url(addr),
        path.display()
    );
    // The dashboard takes a password: the first admin makes their own
    // account through a one-use admin invitation.
    let admin = first_admin(tavern).await?;
    let invite = tavern
        .create_invite(
            &admin,
            tavern_core::NewInvite {
                role: Some("admin".into()),
                tier: None,
                uses: Some(1),
                expires_in_hours: None,
            },
        )
        .await?;
    if let Some(url) = invite.url {
        println!();
        println!("To use the web dashboard, make your own admin account (once, within 7 days):");
        println!();
        println!("    {url}");
        println!();
    }
    Ok(())
}

impl Server {
    /// Spawns the work every replica runs by leadership: the leader
    /// reconciles worlds, keeps the schedules and backups and sends
    /// notifications; the others follow the routes for their proxy.
    fn spawn_work(&self, shutdown: &CancellationToken) -> anyhow::Result<Work> {
        let Server {
            config,
            tavern,
            leadership,
            election,
            world_names,
            ..
        } = self;
        let rc = &config.runtime;
        let reconciler = Reconciler::new(
            tavern.clone(),
            ReconcilerSettings {
                stop_grace: Duration::from_secs(rc.stop_grace_seconds),
                start_timeout: Duration::from_secs(rc.start_timeout_seconds),
                crash_limit: rc.crash_limit,
                crash_window: Duration::from_secs(rc.crash_window_minutes * 60),
                restart_backoff: Duration::from_millis(rc.restart_backoff_millis),
                resync: Duration::from_secs(rc.resync_seconds),
            },
        );
        let reconciling = tokio::spawn(run_by_leadership(
            leadership.clone(),
            shutdown.clone(),
            {
                let reconciler = reconciler.clone();
                move |token| reconciler.clone().run(token)
            },
            move |token| reconciler.clone().follow(token),
        ));
        let resync = Duration::from_secs(rc.resync_seconds);
        let scheduling = tokio::spawn(run_by_leadership(
            leadership.clone(),
            shutdown.clone(),
            {
                let tavern = tavern.clone();
                move |token| tavern_core::scheduler::run(tavern.clone(), resync, token)
            },
            |_| async {},
        ));
        let tidy_on_lead = election.is_some();
        let backing_up = tokio::spawn(run_by_leadership(
            leadership.clone(),
            shutdown.clone(),
            {
                let tavern = tavern.clone();
                move |token| {
                    let tavern = tavern.clone();
                    async move {
                        if tidy_on_lead && let Err(e) = tavern.tidy_backups().await {
                            tracing::warn!(error = %e, "tidying unfinished backups");
                        }
                        tavern_core::backups::run_schedule(tavern, token).await;
                    }
                }
            },
            |_| async {},
        ));
        let webhooks = Arc::new(crate::notify::HttpWebhooks::new()?);
        let notifying = tokio::spawn(run_by_leadership(
            leadership.clone(),
            shutdown.clone(),
            {
                let tavern = tavern.clone();
                move |token| {
                    tavern_core::notifications::run_outbox(
                        tavern.clone(),
                        webhooks.clone(),
                        Duration::from_secs(1),
                        token,
                    )
                }
            },
            |_| async {},
        ));
        let mut work = vec![reconciling, scheduling, backing_up, notifying];
        if election.is_some() {
            // Replicas pass word of changes through the store.
            work.push(tokio::spawn(tavern_core::leadership::hear_notices(
                tavern.clone(),
                shutdown.clone(),
            )));
        }
        if tavern.uploads().is_some() {
            let tavern = tavern.clone();
            work.push(tokio::spawn(run_by_leadership(
                leadership.clone(),
                shutdown.clone(),
                move |token| tavern_core::storage::run(tavern.clone(), token),
                |_| async {},
            )));
        }
        if let Some(names) = world_names {
            let (tavern, names) = (tavern.clone(), names.clone());
            work.push(tokio::spawn(run_by_leadership(
                leadership.clone(),
                shutdown.clone(),
                move |token| tavern_core::dns::run(tavern.clone(), names.clone(), token),
                |_| async {},
            )));
        }
        Ok(work)
    }

    /// Serves the API, the dashboard and the worlds until `shutdown`, then
    /// waits for the background work and closes the store.
    async fn serve(self, work: Work, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Server {
            config,
            database,
            secrets,
            tavern,
            election,
            certificates,
            tls,
            listener,
            redirect,
            addr,
            ..
        } = self;
        let data_dir = &config.server.data_dir;
        tracing::info!(%addr, domain = %config.server.domain, data_dir = %data_dir.display(), "tavern is listening");
        println!("Tavern is listening on {}", config.api_url(addr));

        let sign_in = config.auth.sign_in(&tavern.settings().site_url())?;
        let api = tavern_http::router(
            tavern.clone(),
            HttpSettings {
                body_limit: config.server.body_limit,
                discord: match config.discord.settings()? {
                    Some(d) => Some(crate::discord::edge(d)?),
                    None => None,
                },
                sign_in: sign_in.clone(),
            },
        );
        let site = Site {
            domain: config.server.domain.clone(),
            api_hosts: config.public_host().into_iter().collect(),
            routing: match config.server.routing {
                RoutingMode::Host => Routing::Host,
                RoutingMode::Path => Routing::Path,
            },
        };
        let acme = config.tls.mode == TlsMode::Acme;
        if acme {
            let t = &config.tls;
            let challenge = match t.acme_challenge {
                AcmeChallenge::Http01 => tavern_proxy::acme::Challenge::Http01,
                AcmeChallenge::TlsAlpn01 => tavern_proxy::acme::Challenge::TlsAlpn01,
                AcmeChallenge::Dns01 => tavern_proxy::acme::Challenge::Dns01,
            };
            println!(
                "HTTPS certificates come from {} ({}), cached in {}",
                t.acme_directory,
                challenge.name(),
                data_dir.join("acme").display()
            );
            tokio::spawn(tavern_proxy::acme::run(
                certificates.clone(),
                tavern_proxy::acme::AcmeSettings {
                    directory: t.acme_directory.clone(),
                    email: t.acme_email.clone(),
                    ca_file: t.acme_ca_file.clone(),
                    challenge,
                    cache_dir: data_dir.join("acme"),
                    dns: match challenge {
                        tavern_proxy::acme::Challenge::Dns01 => config
                            .dns
                            .setup(&config.server.domain)?
                            .map(|d| tavern_proxy::acme::Dns01 {
                                provider: d.provider,
                                zone: d.zone,
                                servers: d.check_servers,
                                patience: d.propagation,
                            }),
                        _ => None,
                    },
                },
                secrets,
                site.clone(),
                tavern.routes(),
                shutdown.clone(),
            ));
        }
        let connections = connection_limits(&config.server);
        let proxy = Proxy::new(
            ProxySettings {
                site,
                scheme: tavern.settings().public_scheme,
                body_limit: config.server.world_body_limit,
                wake_on_visit: config.idle.wake_on_visit,
                connections: connections.clone(),
                sign_in_ways: sign_in.offered(),
                passwords: sign_in.passwords,
            },
            Arc::new(tavern.clone()),
            api_service(api),
        );
        if let Some(redirect) = redirect {
            let bound = redirect.local_addr()?;
            println!("Redirecting http://{bound} to HTTPS");
            tokio::spawn(tavern_proxy::tls::redirect_to_https(
                redirect,
                (addr.port() != 443).then_some(addr.port()),
                acme.then(|| certificates.clone()),
                connections,
                shutdown.clone(),
            ));
        }
        proxy
            .serve(listener, tls, shutdown.clone(), tavern_http::SHUTDOWN_GRACE)
            .await;
        // Worlds keep running while Tavern is away; the next start adopts them.
        for task in work {
            let _ = task.await;
        }
        if let Some(release) = election {
            release.await;
        }
        database.close().await;
        tracing::info!("tavern stopped");
        Ok(())
    }
}

/// File descriptors kept for everything but clients' connections: the
/// store, logs, worlds' processes and their pipes, backups.
const RESERVED_FILES: u64 = 256;

/// Connections the listener keeps when `server.max_connections` is not set.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// The listener's connection limits: as configured, but never more
/// connections than this process may open files for (each may hold a
/// connection to a world too). The process's open-file limit is raised to
/// its hard limit first.
fn connection_limits(server: &crate::config::ServerConfig) -> tavern_proxy::ConnectionLimits {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let files = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard))
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() =>
        {
            hard
        }
        Ok((soft, _)) => soft,
        Err(_) => u64::MAX,
    };
    let afford = usize::try_from(files.saturating_sub(RESERVED_FILES) / 3)
        .unwrap_or(usize::MAX)
        .max(16);
    let wanted = server.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    let max_connections = wanted.min(afford);
    if server.max_connections.is_some_and(|n| n > afford) {
        tracing::warn!(
            configured = wanted,
            kept = max_connections,
            open_files = files,
            "this process may open too few files for server.max_connections; raise its limit (ulimit -n, LimitNOFILE= in systemd) to keep more"
        );
    }
    tracing::debug!(max_connections, open_files = files, "connection limits");
    tavern_proxy::ConnectionLimits {
        max_connections,
        max_per_client: server.max_connections_per_client.min(max_connections),
        header_timeout: Duration::from_secs(server.header_timeout_seconds),
    }
}

/// The API as the proxy calls it: the client's address handed on as axum's
/// `ConnectInfo`, the body boxed.
fn api_service(router: axum::Router) -> ApiService {
    use axum::extract::ConnectInfo;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let service = router
        .map_request(|mut req: axum::http::Request<ProxyBody>| {
            if let Some(Peer(addr)) = req.extensions().get::<Peer>().copied() {
                req.extensions_mut().insert(ConnectInfo(addr));
            }
            req
        })
        .map_response(|r: axum::response::Response| {
            r.map(|b| b.map_err(BoxError::from).boxed_unsync())
        });
    tower::util::BoxCloneSyncService::new(service)
}

/// The releases of DATA_DIR, with `stub` when enabled.
pub fn releases(config: &Config) -> anyhow::Result<Releases> {
    let stub = if config.runtime.stub_release {
        Some(
            std::env::current_exe()
                .context("cannot find the tavern binary for the stub release")?,
        )
    } else {
        None
    };
    Ok(Releases::new(
        config.server.data_dir.join("releases"),
        find_in_path(&config.runtime.node),
        stub,
    ))
}

/// `name` as found in PATH, or as given (the start then fails with a clear
/// reason if it does not exist).
fn find_in_path(name: &str) -> std::path::PathBuf {
    let given = std::path::PathBuf::from(name);
    if given.components().count() > 1 {
        return given;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or(given)
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The demo's fixed names. The key is a made-up one: it works only with the
/// stand-in, never with Foundry.
const DEMO_USER: &str = "demo";
const DEMO_PASSWORD: &str = "demo-password";
const DEMO_KEY: &str = "DEMO-DEMO-DEMO-DEMO-DEMO-0000";

/// Creates what `--demo` promises, skipping what already exists.
/// The first admin, to act as on the server's own behalf.
async fn first_admin(tavern: &Tavern) -> anyhow::Result<Caller> {
    let admin = tavern
        .store()
        .list_users()
        .await?
        .into_iter()
        .find(|u| u.role == tavern_types::Role::Admin)
        .context("there is no admin user")?;
    Ok(Caller { user: admin })
}

async fn set_up_demo(tavern: &Tavern) -> anyhow::Result<()> {
    let store = tavern.store();
    let caller = first_admin(tavern).await?;
    let demo_name: tavern_types::Username = DEMO_USER.parse()?;
    if store.user_by_name(&demo_name).await?.is_none() {
        tavern
            .create_user(
                &caller,
                NewUser {
                    username: DEMO_USER.into(),
                    role: "gm".into(),
                    password: DEMO_PASSWORD.into(),
                    tier: None,
                },
            )
            .await?;
    }
    let license = match tavern
        .list_licenses(&caller)
        .await?
        .into_iter()
        .find(|l| l.license.label == "demo")
    {
        Some(l) => l.license.id,
        None => {
            tavern
                .add_license(
                    &caller,
                    NewLicense {
                        label: "demo".into(),
                        key: DEMO_KEY.into(),
                        owner: None,
                    },
                )
                .await?
                .license
                .id
        }
    };
    let slug: tavern_types::Slug = "demo".parse()?;
    if store.instance(&slug).await?.is_none() {
        tavern
            .create_instance(
                &caller,
                NewInstance {
                    slug: "demo".into(),
                    owner: Some(DEMO_USER.into()),
                    release: Some("stub".into()),
                    license: Some(license.to_string()),
                    runtime: None,
                    idle_timeout_minutes: None,
                    wake_on_visit: None,
                },
            )
            .await?;
    }
    // The demo world runs (a start of a running world changes nothing).
    tavern
        .set_desired(&caller, "demo", tavern_types::DesiredState::Running)
        .await?;
    println!(
        "Demo ready: sign in as `{DEMO_USER}` with password `{DEMO_PASSWORD}`; its world is `demo`."
    );
    Ok(())
}
