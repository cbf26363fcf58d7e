//! `tavern manifests`: Kubernetes YAML for GitOps users and for installing
//! Tavern itself. `world` asks a Tavern server for a world's objects;
//! `install` is printed here, with no server, for `kubectl apply -f -`
//! (by a build with the `kubernetes` feature), or with `--aws` as a
//! CloudFormation template (by a build with the `ecs` feature).

use anyhow::Context as _;
use reqwest::Method;

use super::commands::path_part;
use super::http::{Api, Conn};

#[derive(clap::Subcommand)]
pub enum ManifestsCommand {
    /// Print every Kubernetes object of a world, as Tavern applies them
    /// (admins; worlds on the kubernetes runtime). The Secret is shown
    /// without its data.
    World {
        slug: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print Tavern's own deployment on a cluster (namespace, service
    /// account and its rights, Deployment, Service, leader election):
    /// `tavern manifests install --domain games.example.org | kubectl apply -f -`.
    /// With --aws, a CloudFormation template of Tavern on ECS Fargate with
    /// everything its worlds need there.
    Install(InstallArgs),
}

#[derive(clap::Args)]
pub struct InstallArgs {
    /// Worlds live at <slug>.<domain>.
    #[arg(long)]
    domain: String,
    /// Print a CloudFormation template for AWS instead (Tavern and its
    /// worlds on ECS Fargate, their data on EFS, an ALB): `aws
    /// cloudformation deploy --template-file tavern.json …`.
    #[arg(long, conflicts_with_all = ["namespace", "replicas", "store_url_secret", "secret_key_secret", "public_url", "data_size", "gateway", "packages_size"])]
    aws: bool,
    /// The namespace of Tavern and its worlds.
    #[arg(long, default_value = "tavern")]
    namespace: String,
    /// Tavern's image (`scripts/tavern-image.sh` builds it).
    #[arg(long, default_value = concat!("tavern:", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// Replicas of Tavern; with more than one, they elect a leader and need
    /// --store-url-secret and --secret-key-secret.
    #[arg(long, default_value_t = 1)]
    replicas: u32,
    /// A Secret whose key `url` is a postgres:// URL (default: SQLite on a
    /// claim of Tavern's own, one replica).
    #[arg(long)]
    store_url_secret: Option<String>,
    /// A Secret whose key `secret.key` holds 32 random bytes, the key
    /// every replica seals secrets with.
    #[arg(long)]
    secret_key_secret: Option<String>,
    /// How players reach Tavern, e.g. https://games.example.org.
    #[arg(long)]
    public_url: Option<String>,
    /// The size of Tavern's own data claim (one replica).
    #[arg(long, default_value = "1Gi")]
    data_size: String,
    /// Route players through this Gateway (Gateway API HTTPRoutes) rather
    /// than Tavern's proxy.
    #[arg(long)]
    gateway: Option<String>,
    /// The Gateway's namespace, when not Tavern's.
    #[arg(long, requires = "gateway")]
    gateway_namespace: Option<String>,
    /// Offer the `stub` release (Tavern's stand-in for Foundry), to try
    /// Tavern out without a Foundry license.
    #[arg(long)]
    stub_release: bool,
    /// A claim of this size (ReadWriteMany) for the package library,
    /// mounted at Tavern's DATA_DIR/packages; worlds mount from it the
    /// versions they use, read-only.
    #[arg(long)]
    packages_size: Option<String>,
}

pub async fn manifests(cmd: ManifestsCommand) -> anyhow::Result<()> {
    match cmd {
        ManifestsCommand::World { slug, conn } => {
            let api = Api::from_conn(&conn)?;
            let path = format!("/api/v1/instances/{}/manifests", path_part(&slug)?);
            let yaml = api
                .send(Method::GET, &path, None)
                .await?
                .text()
                .await
                .context("the server's answer was cut off")?;
            print!("{yaml}");
        }
        ManifestsCommand::Install(args) if args.aws => print!("{}", install_aws(args)?),
        ManifestsCommand::Install(args) => print!("{}", install(args)?),
    }
    Ok(())
}

#[cfg(feature = "kubernetes")]
fn install(args: InstallArgs) -> anyhow::Result<String> {
    use tavern_runtime::kubernetes::install::{InstallOptions, render};
    let options = InstallOptions {
        namespace: args.namespace,
        image: args.image,
        replicas: args.replicas,
        domain: args.domain,
        public_url: args.public_url,
        store_url_secret: args.store_url_secret,
        secret_key_secret: args.secret_key_secret,
        data_size: args.data_size,
        gateway: args.gateway.map(|g| (g, args.gateway_namespace)),
        stub_release: args.stub_release,
        packages_size: args.packages_size,
    };
    render(&options).map_err(anyhow::Error::msg)
}

#[cfg(not(feature = "kubernetes"))]
fn install(_: InstallArgs) -> anyhow::Result<String> {
    anyhow::bail!(
        "this build of Tavern has no Kubernetes support: build it with `--features kubernetes` or `--features full`, or run `tavern manifests install` from Tavern's container image"
    )
}

#[cfg(feature = "ecs")]
fn install_aws(args: InstallArgs) -> anyhow::Result<String> {
    use tavern_runtime::ecs::install::{AwsInstallOptions, render};
    render(&AwsInstallOptions {
        domain: args.domain,
        image: args.image,
        stub_release: args.stub_release,
    })
    .map_err(anyhow::Error::msg)
}

#[cfg(not(feature = "ecs"))]
fn install_aws(_: InstallArgs) -> anyhow::Result<String> {
    anyhow::bail!(
        "this build of Tavern has no ECS support: build it with `--features ecs` or `--features full`, or run `tavern manifests install --aws` from Tavern's container image"
    )
}
