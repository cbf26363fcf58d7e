//! Configuration of `tavern serve`: defaults, then `tavern.toml` (the file
//! named by `--config`/`TAVERN_CONFIG`, else `./tavern.toml` if present),
//! then `TAVERN_<SECTION>_<KEY>` variables, then flags. Unknown keys and bad
//! values are errors that name the key and where it came from.

mod auth;
mod backups;
mod community;
mod dns;
mod economy;
mod ecs;
mod kubernetes;
mod log;
mod packages;
mod runtime;
mod server;
mod storage;
pub(crate) mod store;
mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use tavern_types::RuntimeKind;

pub use auth::AuthConfig;
pub use backups::BackupsConfig;
pub use community::{DiscordConfig, DiscordSettings, KofiConfig, NotificationsConfig};
pub use dns::{DnsConfig, DnsMode, DnsProviderKind, DnsSetup};
pub use economy::{IdleConfig, LicensesConfig, SessionsConfig, TierConfig, UsageConfig};
pub use ecs::EcsConfig;
pub use kubernetes::KubernetesConfig;
pub use log::{LogConfig, LogFormat};
pub use packages::{PackagesConfig, parse_named};
pub use runtime::RuntimeConfig;
use runtime::check_installation;
pub use server::{RoutingMode, ServerConfig};
pub use storage::{StorageConfig, StorageProvider};
use store::is_postgres;
pub use store::{StoreConfig, StoreTarget};
pub use tls::{AcmeChallenge, TlsConfig, TlsMode};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub runtime: RuntimeConfig,
    pub kubernetes: KubernetesConfig,
    pub ecs: EcsConfig,
    pub licenses: LicensesConfig,
    pub sessions: SessionsConfig,
    pub idle: IdleConfig,
    pub tls: TlsConfig,
    pub backups: BackupsConfig,
    pub usage: UsageConfig,
    pub kofi: KofiConfig,
    pub discord: DiscordConfig,
    pub notifications: NotificationsConfig,
    pub dns: DnsConfig,
    pub storage: StorageConfig,
    pub packages: PackagesConfig,
    pub auth: AuthConfig,
    /// Quota tiers by name (`[tiers.NAME]`).
    pub tiers: BTreeMap<String, TierConfig>,
    pub log: LogConfig,
}

/// Why a setting cannot be used by this build, and how to get a build
/// that can: each driver and adapter beyond processes, SQLite and local
/// backups is a cargo feature, all of them in `full` (the container
/// image's build).
pub fn not_built_in(setting: &str, feature: &str) -> String {
    format!(
        "invalid configuration: {setting} needs Tavern's `{feature}` feature, which this build was made without; build Tavern with `--features {feature}` or `--features full` (e.g. `cargo install --path crates/tavern --profile dist --features full`), or run its container image, which has them all"
    )
}

/// Values given on the command line; `None` leaves lower layers alone.
#[derive(Debug, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub domain: Option<String>,
    pub log_format: Option<LogFormat>,
    pub stub_release: bool,
}

/// `TAVERN_*` variables that are not settings of `serve`: the client
/// commands', and the sealing key itself (`TAVERN_SEALING_KEY`, read by
/// `serve` alone and never kept in its configuration).
const CLIENT_VARS: &[&str] = &["server", "token", "config", "ca_file", "sealing_key"];

impl Config {
    pub fn load(file: Option<&Path>, overrides: Overrides) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                anyhow::ensure!(
                    path.is_file(),
                    "the config file {} does not exist",
                    path.display()
                );
                fig = fig.merge(Toml::file_exact(path));
            }
            None if Path::new("tavern.toml").is_file() => {
                fig = fig.merge(Toml::file_exact("tavern.toml"));
            }
            None => {}
        }
        fig = fig.merge(Env::prefixed("TAVERN_").filter_map(|key| {
            let key = key.as_str().to_ascii_lowercase();
            if CLIENT_VARS.contains(&key.as_str()) {
                None
            } else if let Some(rest) = key.strip_prefix("auth_oidc_") {
                // TAVERN_AUTH_OIDC_<KEY>: [auth.oidc]'s keys.
                Some(format!("auth.oidc.{rest}").into())
            } else if let Some(rest) = key.strip_prefix("auth_discord_") {
                // TAVERN_AUTH_DISCORD_<KEY>: [auth.discord]'s keys.
                Some(format!("auth.discord.{rest}").into())
            } else if let Some(rest) = key.strip_prefix("tiers_") {
                // TAVERN_TIERS_<NAME>_<KEY>: tier names have no underscore.
                Some(format!("tiers.{}", rest.replacen('_', ".", 1)).into())
            } else {
                Some(key.replacen('_', ".", 1).into())
            }
        }));
        if let Some(v) = overrides.data_dir {
            fig = fig.merge(Serialized::default("server.data_dir", v));
        }
        if let Some(v) = overrides.listen {
            fig = fig.merge(Serialized::default("server.listen", v));
        }
        if let Some(v) = overrides.domain {
            fig = fig.merge(Serialized::default("server.domain", v));
        }
        if let Some(v) = overrides.log_format {
            fig = fig.merge(Serialized::default("log.format", v));
        }
        if overrides.stub_release {
            fig = fig.merge(Serialized::default("runtime.stub_release", true));
        }
        let config: Config = fig.extract().map_err(|e| {
            let all: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            anyhow::anyhow!("invalid configuration: {}", all.join("; "))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// A setting that needs a driver or adapter this build was made
    /// without (its cargo feature) is refused, saying how to get it.
    fn check_features(&self) -> anyhow::Result<()> {
        let wanted = [
            (
                "runtime.kind = \"docker\" (or runtime.docker_enabled)",
                "docker",
                self.runtime.docker(),
                cfg!(feature = "docker"),
            ),
            (
                "runtime.kind = \"kubernetes\"",
                "kubernetes",
                self.runtime.kind == RuntimeKind::Kubernetes,
                cfg!(feature = "kubernetes"),
            ),
            (
                "runtime.kind = \"ecs\"",
                "ecs",
                self.runtime.kind == RuntimeKind::Ecs,
                cfg!(feature = "ecs"),
            ),
            (
                "store.url = \"postgres://…\"",
                "postgres",
                self.store.url.as_deref().is_some_and(is_postgres),
                cfg!(feature = "postgres"),
            ),
            (
                "backups.target = \"s3://…\"",
                "s3",
                (self.backups.target.as_deref()).is_some_and(|t| t.starts_with("s3://")),
                cfg!(feature = "s3"),
            ),
            (
                "dns.provider = \"route53\"",
                "route53",
                self.dns.provider == DnsProviderKind::Route53,
                cfg!(feature = "route53"),
            ),
            (
                "storage.provider = \"s3\"",
                "object-storage",
                self.storage.provider == StorageProvider::S3,
                cfg!(feature = "object-storage"),
            ),
        ];
        for (setting, feature, used, built) in wanted {
            anyhow::ensure!(!used || built, not_built_in(setting, feature));
        }
        Ok(())
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.server.check()?;
        self.check_features()?;
        self.runtime.check()?;
        self.kubernetes.check()?;
        if self.runtime.kind == RuntimeKind::Ecs {
            self.ecs.check()?;
        }
        anyhow::ensure!(
            self.kubernetes.lease.is_none() || self.runtime.kind == RuntimeKind::Kubernetes,
            "invalid configuration: kubernetes.lease elects a leader among Taverns on a cluster: set runtime.kind = \"kubernetes\""
        );
        self.store.check()?;
        self.check_backups()?;
        self.check_economy()?;
        self.check_community()?;
        self.check_tls()?;
        self.dns.setup(&self.server.domain)?;
        self.storage.uploads()?;
        self.packages.defaults()?;
        anyhow::ensure!(
            !(self.dns.provider != DnsProviderKind::None
                && self.dns.mode == DnsMode::PerWorld
                && self.server.routing == RoutingMode::Path),
            "invalid configuration: dns.mode = \"per-world\" writes a name for each world, but server.routing = \"path\" puts every world on the one domain: use routing = \"host\", or leave dns.mode out"
        );
        self.log.check()
    }
}

#[cfg(test)]
// figment's Jail returns its large error type by design.
#[allow(clippy::result_large_err)]
mod tests {
    use tavern_types::Scheme;

    use super::kubernetes::is_quantity;
    use super::server::public_parts;
    use super::store::redact_url;
    use super::*;

    /// The keys the settings tables of the docs name (their first column;
    /// `.key` continues the key before it; `tiers.NAME.…` stands for any
    /// tier).
    fn documented() -> std::collections::BTreeSet<String> {
        let docs = [
            include_str!("../../../../docs/configuration.md"),
            include_str!("../../../../docs/kubernetes.md"),
            include_str!("../../../../docs/aws.md"),
        ];
        let mut out = std::collections::BTreeSet::new();
        for line in docs.iter().flat_map(|d| d.lines()) {
            let Some(first) = line.strip_prefix("| `").and_then(|l| l.split(" |").next()) else {
                continue;
            };
            let mut section = String::new();
            for name in first.split(", ") {
                let name = name.trim_matches('`');
                let full = match name.strip_prefix('.') {
                    Some(key) => format!("{section}.{key}"),
                    None => name.to_owned(),
                };
                section = full
                    .rsplit_once('.')
                    .map_or(String::new(), |(s, _)| s.to_owned());
                out.insert(full);
            }
        }
        out
    }

    /// Every key of the configuration, as `section.key`.
    fn keys(prefix: &str, v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
        match v.as_object() {
            Some(map) if !map.is_empty() => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    keys(&path, v, out);
                }
            }
            _ => {
                out.insert(prefix.to_owned());
            }
        }
    }

    #[test]
    fn the_docs_name_every_setting_and_only_real_ones() {
        let mut real = std::collections::BTreeSet::new();
        keys(
            "",
            &serde_json::to_value(Config::default()).unwrap(),
            &mut real,
        );
        let tier = serde_json::to_value(TierConfig::default()).unwrap();
        let docs = documented();
        let missing: Vec<&String> = real
            .iter()
            .filter(|k| *k != "tiers" && !docs.contains(*k))
            .collect();
        assert!(
            missing.is_empty(),
            "settings the docs do not name: {missing:?}"
        );
        let unknown: Vec<&String> = docs
            .iter()
            .filter(|k| match k.strip_prefix("tiers.NAME.") {
                Some(field) => tier.get(field).is_none(),
                // A whole section, documented elsewhere.
                None if k.ends_with(".*") => !real.iter().any(|r| r.starts_with(&k[..k.len() - 1])),
                None => !real.contains(*k),
            })
            .collect();
        assert!(
            unknown.is_empty(),
            "the docs name settings that do not exist: {unknown:?}"
        );
    }

    fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
        let mut out = None;
        figment::Jail::expect_with(|jail| {
            for (k, v) in vars {
                jail.set_env(k, v);
            }
            out = Some(f());
            Ok(())
        });
        out.expect("the jail ran the closure")
    }

    #[test]
    fn runs_with_no_file_at_all() {
        let c = with_env(&[], || Config::load(None, Overrides::default()).unwrap());
        assert_eq!(c, Config::default());
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.store_target(),
            StoreTarget::Sqlite(PathBuf::from("tavern-data/tavern.db"))
        );
    }

    #[test]
    fn layers_file_then_env_then_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "t.toml",
                "[server]\ndomain = \"file.example\"\nlisten = \"127.0.0.1:9000\"\n[log]\nformat = \"json\"\n",
            )?;
            jail.set_env("TAVERN_SERVER_DOMAIN", "env.example");
            jail.set_env("TAVERN_RUNTIME_STUB_RELEASE", "true");
            jail.set_env("TAVERN_SERVER", "http://ignored-client-var");
            let c = Config::load(
                Some(Path::new("t.toml")),
                Overrides {
                    listen: Some("127.0.0.1:9001".parse().unwrap()),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(c.server.domain, "env.example");
            assert_eq!(c.server.listen.port(), 9001);
            assert_eq!(c.log.format, LogFormat::Json);
            assert!(c.runtime.stub_release);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("a.toml", "[server]\nlisten_on = \"x\"\n")?;
            let e = Config::load(Some(Path::new("a.toml")), Overrides::default()).unwrap_err();
            assert!(e.to_string().contains("listen_on"), "{e}");

            jail.create_file("b.toml", "[server]\nlisten = \"not an address\"\n")?;
            let e = Config::load(Some(Path::new("b.toml")), Overrides::default()).unwrap_err();
            assert!(e.to_string().contains("listen"), "{e}");

            jail.create_file("c.toml", "[nonsense]\nx = 1\n")?;
            let e = Config::load(Some(Path::new("c.toml")), Overrides::default()).unwrap_err();
            assert!(e.to_string().contains("nonsense"), "{e}");
            Ok(())
        });
        let e = with_env(&[("TAVERN_RUNTIME_KIND", "lxc")], || {
            Config::load(None, Overrides::default()).unwrap_err()
        });
        let e = e.to_string().to_lowercase();
        assert!(
            e.contains("runtime.kind") && e.contains("lxc") && e.contains("kubernetes"),
            "{e}"
        );
        let e = with_env(&[("TAVERN_SERVER_BODY_LIMIT", "lots")], || {
            Config::load(None, Overrides::default()).unwrap_err()
        });
        assert!(
            e.to_string().to_lowercase().contains("server.body_limit"),
            "{e}"
        );
        let e = with_env(&[("TAVERN_STORE_URL", "mysql://x")], || {
            Config::load(None, Overrides::default()).unwrap_err()
        });
        assert!(e.to_string().contains("store.url"), "{e}");
        let e = with_env(&[("TAVERN_STORE_POOL_SIZE", "0")], || {
            Config::load(None, Overrides::default()).unwrap_err()
        });
        assert!(e.to_string().contains("store.pool_size"), "{e}");
        let e = with_env(&[("TAVERN_USAGE_RATE_PER_HOUR", "-1")], || {
            Config::load(None, Overrides::default()).unwrap_err()
        });
        assert!(e.to_string().contains("usage.rate_per_hour"), "{e}");
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn postgres_urls_are_checked_and_named_without_their_password() {
        let e = with_env(
            &[(
                "TAVERN_STORE_URL",
                "postgres://tavern:hunter2@db:notaport/tavern",
            )],
            || Config::load(None, Overrides::default()).unwrap_err(),
        );
        let e = e.to_string();
        assert!(
            e.contains("store.url") && e.contains("tavern:***@db"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        let c = with_env(
            &[
                ("TAVERN_STORE_URL", "postgresql://tavern@127.0.0.1/tavern"),
                ("TAVERN_STORE_POOL_SIZE", "3"),
            ],
            || Config::load(None, Overrides::default()).unwrap(),
        );
        assert_eq!(
            c.store_target(),
            StoreTarget::Postgres {
                url: "postgresql://tavern@127.0.0.1/tavern".into(),
                pool_size: 3
            }
        );
    }

    /// Each driver and adapter beyond processes, SQLite and directories is
    /// a cargo feature: a build with it takes the setting, a build without
    /// it refuses the setting and says which feature brings it.
    #[test]
    fn settings_need_the_features_this_build_has() {
        for (env, named, feature, built) in [
            (
                [("TAVERN_RUNTIME_KIND", "docker")].as_slice(),
                "runtime.kind",
                "docker",
                cfg!(feature = "docker"),
            ),
            (
                &[("TAVERN_RUNTIME_DOCKER_ENABLED", "true")],
                "runtime.docker_enabled",
                "docker",
                cfg!(feature = "docker"),
            ),
            (
                &[("TAVERN_RUNTIME_KIND", "kubernetes")],
                "runtime.kind",
                "kubernetes",
                cfg!(feature = "kubernetes"),
            ),
            (
                &[("TAVERN_STORE_URL", "postgres://tavern@db/tavern")],
                "store.url",
                "postgres",
                cfg!(feature = "postgres"),
            ),
            (
                &[
                    ("TAVERN_BACKUPS_TARGET", "s3://bucket/tavern"),
                    ("TAVERN_BACKUPS_S3_ENDPOINT", "http://127.0.0.1:9"),
                    ("TAVERN_BACKUPS_S3_REGION", "here"),
                ],
                "backups.target",
                "s3",
                cfg!(feature = "s3"),
            ),
            (
                &[
                    ("TAVERN_DNS_PROVIDER", "route53"),
                    ("TAVERN_DNS_ADDRESSES", "[\"203.0.113.7\"]"),
                ],
                "dns.provider",
                "route53",
                cfg!(feature = "route53"),
            ),
            (
                &[("TAVERN_STORAGE_PROVIDER", "s3")],
                "storage.provider",
                "object-storage",
                cfg!(feature = "object-storage"),
            ),
        ] {
            let loaded = with_env(env, || Config::load(None, Overrides::default()));
            match (built, loaded) {
                (true, Ok(_)) => {}
                (false, Err(e)) => {
                    let e = e.to_string();
                    assert!(
                        e.contains(named) && e.contains(&format!("--features {feature}")),
                        "{env:?}: {e}"
                    );
                }
                (true, Err(e)) => panic!("{env:?} refused by a build with `{feature}`: {e}"),
                (false, Ok(_)) => panic!("{env:?} taken by a build without `{feature}`"),
            }
        }
    }

    #[test]
    fn the_ecs_section_from_the_environment_as_the_aws_template_sets_it() {
        let env = [
            ("TAVERN_RUNTIME_KIND", "ecs"),
            ("TAVERN_ECS_REGION", "eu-west-1"),
            ("TAVERN_ECS_SUBNETS", r#"["subnet-0a1", "subnet-0b2"]"#),
            ("TAVERN_ECS_SECURITY_GROUPS", r#"["sg-0c3"]"#),
            ("TAVERN_ECS_ASSIGN_PUBLIC_IP", "true"),
            ("TAVERN_ECS_VPC_ID", "vpc-0d4"),
            ("TAVERN_ECS_FILE_SYSTEM_ID", "fs-0e5"),
            (
                "TAVERN_ECS_LISTENER_ARN",
                "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/t/1/2",
            ),
            (
                "TAVERN_ECS_EXECUTION_ROLE_ARN",
                "arn:aws:iam::123456789012:role/exec",
            ),
            // The sealing key is read by serve alone, never a setting.
            ("TAVERN_SEALING_KEY", "00"),
        ];
        let loaded = with_env(&env, || Config::load(None, Overrides::default()));
        #[cfg(not(feature = "ecs"))]
        assert!(loaded.is_err(), "a build without the driver refuses it");
        #[cfg(feature = "ecs")]
        {
            let c = loaded.unwrap();
            assert_eq!(c.ecs.subnets, ["subnet-0a1", "subnet-0b2"]);
            assert_eq!(c.ecs.security_groups, ["sg-0c3"]);
            assert!(c.ecs.assign_public_ip);
            assert_eq!(c.runtime.kinds(), [RuntimeKind::Process, RuntimeKind::Ecs]);
        }
        // A subnet that is not one is named.
        let mut bad = env.to_vec();
        bad[2] = ("TAVERN_ECS_SUBNETS", r#"["10.0.1.0/24"]"#);
        let e = with_env(&bad, || Config::load(None, Overrides::default()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("ecs"), "{e}");
    }

    #[test]
    fn the_kubernetes_section_from_file_and_env_and_its_bad_values_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "k.toml",
                "[runtime]\nkind = \"kubernetes\"\n[kubernetes]\nnamespace = \"worlds\"\nroutes = \"gateway\"\ngateway = \"public\"\nstorage_class = \"ebs.csi.aws.com\"\n",
            )?;
            jail.set_env("TAVERN_KUBERNETES_STORAGE_SIZE", "20Gi");
            jail.set_env("TAVERN_KUBERNETES_INSTALLATION", "prod");
            let loaded = Config::load(Some(Path::new("k.toml")), Overrides::default());
            #[cfg(not(feature = "kubernetes"))]
            assert!(loaded.is_err(), "a build without the driver refuses it");
            #[cfg(feature = "kubernetes")]
            {
                let c = loaded.unwrap();
                assert_eq!(
                    c.runtime.kinds(),
                    [RuntimeKind::Process, RuntimeKind::Kubernetes]
                );
                let s = c.kubernetes.settings(Path::new("/data"));
                assert_eq!(s.namespace, "worlds");
                assert_eq!(s.storage_size, "20Gi");
                assert_eq!(s.installation, "prod");
                assert_eq!(s.storage_class.as_deref(), Some("ebs.csi.aws.com"));
                let tavern_runtime::kubernetes::objects::Routes::Gateway(g) = s.routes else {
                    panic!("gateway routes")
                };
                assert_eq!(g.gateway, "public");
                assert_eq!(g.standby_service, "tavern");
            }
            Ok(())
        });
        for (var, value, named) in [
            (
                "TAVERN_KUBERNETES_NAMESPACE",
                "Worlds",
                "kubernetes.namespace",
            ),
            ("TAVERN_KUBERNETES_NAMESPACE", "a.b", "kubernetes.namespace"),
            (
                "TAVERN_KUBERNETES_MEMORY_LIMIT",
                "1GB",
                "kubernetes.memory_limit",
            ),
            (
                "TAVERN_KUBERNETES_CPU_REQUEST",
                "m",
                "kubernetes.cpu_request",
            ),
            (
                "TAVERN_KUBERNETES_IMAGE",
                "felddy/foundryvtt:13",
                "kubernetes.image",
            ),
            ("TAVERN_KUBERNETES_ROUTES", "ingress", "KUBERNETES.ROUTES"),
            (
                "TAVERN_KUBERNETES_INSTALLATION",
                "a b",
                "kubernetes.installation",
            ),
            (
                "TAVERN_KUBERNETES_SHARED_CLAIM",
                "-x",
                "kubernetes.shared_claim",
            ),
        ] {
            let e = with_env(&[(var, value)], || {
                Config::load(None, Overrides::default()).unwrap_err()
            });
            assert!(e.to_string().contains(named), "{var}={value}: {e}");
        }
        for good in ["500m", "2", "0.5", "512Mi", "10Gi", "1e3", "5E-1"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "1.2.3", "Gi", "1gi", "1e", "1 Gi", "-1"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn database_urls_lose_their_passwords_in_messages() {
        for (url, shown) in [
            (
                "postgres://tavern:s3cret@db.example:5432/tavern?sslmode=require",
                "postgres://tavern:***@db.example:5432/tavern?sslmode=require",
            ),
            (
                "postgresql://tavern@db/tavern",
                "postgresql://tavern@db/tavern",
            ),
            ("postgres://a:p@ss@db/x", "postgres://a:***@db/x"),
            ("sqlite:///var/lib/tavern.db", "sqlite:///var/lib/tavern.db"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
    }

    #[test]
    fn dns_needs_its_provider_s_settings_and_hides_its_secret() {
        figment::Jail::expect_with(|jail| {
            let load = |text: &str| -> anyhow::Result<Config> {
                std::fs::write("d.toml", text).unwrap();
                Config::load(Some(Path::new("d.toml")), Overrides::default())
            };
            let c = load("").unwrap();
            assert!(
                c.dns.setup("games.example").unwrap().is_none(),
                "none by default"
            );
            let good = "[server]\ndomain = \"games.example\"\n[dns]\nprovider = \"rfc2136\"\n\
                        addresses = [\"203.0.113.7\", \"2001:db8::7\"]\nserver = \"127.0.0.1:5353\"\n\
                        tsig_key = \"tavern\"\ntsig_secret = \"c2VjcmV0LXNlY3JldA==\"\n";
            let c = load(good).unwrap();
            let setup = c.dns.setup("games.example").unwrap().unwrap();
            assert_eq!(setup.records.len(), 2);
            assert!(!format!("{c:?}").contains("c2VjcmV0LXNlY3JldA=="));
            for (change, says) in [
                (
                    "addresses = [\"203.0.113.7\", \"2001:db8::7\"]",
                    "dns.addresses",
                ),
                ("server = \"127.0.0.1:5353\"", "dns.server"),
                ("tsig_key = \"tavern\"", "dns.tsig_key"),
                ("tsig_secret = \"c2VjcmV0LXNlY3JldA==\"", "dns.tsig_secret"),
            ] {
                let err = load(&good.replace(change, "")).unwrap_err().to_string();
                assert!(err.contains(says), "without {change}: {err}");
            }
            let err = load(&format!("{good}cname = \"tavern.example\"\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("not both"), "{err}");
            let err = load(&format!("{good}tsig_algorithm = \"hmac-md5\"\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("hmac-sha256"), "{err}");
            let err = load(&good.replace("c2VjcmV0LXNlY3JldA==", "not base64!"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("base64") && !err.contains("not base64!"),
                "{err}"
            );
            let per_world = format!("{good}mode = \"per-world\"\nrecheck_seconds = 300\n");
            let setup = load(&per_world)
                .unwrap()
                .dns
                .setup("games.example")
                .unwrap()
                .unwrap();
            assert_eq!(setup.mode, DnsMode::PerWorld);
            assert_eq!(setup.recheck, jiff::SignedDuration::from_mins(5));
            let err = load(&per_world.replace("[server]\n", "[server]\nrouting = \"path\"\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("routing"), "{err}");
            let err = load(&format!("{good}recheck_seconds = 0\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("recheck_seconds"), "{err}");
            // The HTTP providers take an API token, never shown.
            for provider in ["cloudflare", "digitalocean"] {
                let http =
                    format!("[dns]\nprovider = \"{provider}\"\ncname = \"tavern.example.org\"\n");
                let err = load(&http).unwrap_err().to_string();
                assert!(err.contains("dns.api_token"), "{provider}: {err}");
                let c = load(&format!("{http}api_token = \"tok-secret-42\"\n")).unwrap();
                assert!(c.dns.setup("games.example").unwrap().is_some());
                assert!(!format!("{c:?}").contains("tok-secret-42"));
                let err = load(&format!(
                    "{http}api_token = \"tok-secret-42\"\napi_url = \"ftp://x\"\n"
                ))
                .unwrap_err()
                .to_string();
                assert!(err.contains("https://"), "{err}");
            }
            // Route53: an access key whole, or the SDK's default chain.
            #[cfg(feature = "route53")]
            {
                let r53 = "[dns]\nprovider = \"route53\"\naddresses = [\"203.0.113.7\"]\n";
                assert!(
                    load(r53)
                        .unwrap()
                        .dns
                        .setup("games.example")
                        .unwrap()
                        .is_some()
                );
                let err = load(&format!("{r53}aws_access_key_id = \"AKID\"\n"))
                    .unwrap_err()
                    .to_string();
                assert!(err.contains("go together"), "{err}");
                let c = load(&format!(
                    "{r53}aws_access_key_id = \"AKID\"\naws_secret_access_key = \"aws-secret-77\"\n"
                ))
                .unwrap();
                assert!(c.dns.setup("games.example").unwrap().is_some());
                assert!(!format!("{c:?}").contains("aws-secret-77"));
            }
            jail.set_env("TAVERN_DNS_PROVIDER", "route66");
            assert!(load("").is_err(), "an unknown provider is refused");
            Ok(())
        });
    }

    #[test]
    fn kofi_token_from_file_env_or_a_secret_file_and_tiers_that_exist() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "k.toml",
                "[tiers.supporter]\nmax_running = 2\n[kofi.tiers]\nBronze = \"supporter\"\n",
            )?;
            let c = Config::load(Some(Path::new("k.toml")), Overrides::default()).unwrap();
            assert!(c.kofi.settings().unwrap().is_none(), "no token: no webhook");

            jail.set_env("TAVERN_KOFI_VERIFICATION_TOKEN", "tok-from-env");
            let c = Config::load(Some(Path::new("k.toml")), Overrides::default()).unwrap();
            let k = c.kofi.settings().unwrap().unwrap();
            assert_eq!(k.verification_token, "tok-from-env");
            assert_eq!(k.tiers["Bronze"], "supporter");
            assert!(!format!("{:?}", c.kofi).contains("tok-from-env"));
            assert!(!format!("{k:?}").contains("tok-from-env"));

            jail.create_file("token", "tok-from-file\n")?;
            jail.set_env("TAVERN_KOFI_VERIFICATION_TOKEN_FILE", "token");
            let err = Config::load(Some(Path::new("k.toml")), Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("not both"), "{err}");
            jail.set_env("TAVERN_KOFI_VERIFICATION_TOKEN", "");
            // An empty variable still counts as set; a file alone works.
            let err = Config::load(Some(Path::new("k.toml")), Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("not both"), "{err}");
            jail.clear_env();
            jail.set_env("TAVERN_KOFI_VERIFICATION_TOKEN_FILE", "token");
            let c = Config::load(Some(Path::new("k.toml")), Overrides::default()).unwrap();
            assert_eq!(
                c.kofi.settings().unwrap().unwrap().verification_token,
                "tok-from-file"
            );

            jail.create_file("unmapped.toml", "[kofi.tiers]\nBronze = \"gold\"\n")?;
            let err =
                Config::load(Some(Path::new("unmapped.toml")), Overrides::default()).unwrap_err();
            assert!(
                err.to_string()
                    .contains("\"gold\", which is no [tiers.NAME]"),
                "{err}"
            );
            jail.set_env("TAVERN_KOFI_VERIFICATION_TOKEN_FILE", "missing");
            let err = Config::load(Some(Path::new("k.toml")), Overrides::default()).unwrap_err();
            assert!(
                err.to_string()
                    .contains("cannot read kofi.verification_token_file"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn tiers_sessions_and_licenses_from_file_and_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "t.toml",
                "[licenses]\npreempt_idle = true\n[sessions]\nlead_minutes = 15\n\
                 [tiers.free]\nmax_instances = 1\ndefault = true\n[tiers.supporter]\nmax_running = 2\n",
            )?;
            jail.set_env("TAVERN_TIERS_SUPPORTER_MONTHLY_HOURS", "40");
            jail.set_env("TAVERN_SESSIONS_GRACE_MINUTES", "45");
            let c = Config::load(Some(Path::new("t.toml")), Overrides::default()).unwrap();
            let e = c.economy();
            assert_eq!(e.default_tier.as_deref(), Some("free"));
            assert_eq!(e.tiers["free"].max_instances, Some(1));
            assert_eq!(e.tiers["supporter"].max_running, Some(2));
            assert_eq!(e.tiers["supporter"].monthly_hours, Some(40));
            assert_eq!(e.session_lead, jiff::SignedDuration::from_mins(15));
            assert_eq!(e.session_grace, jiff::SignedDuration::from_mins(45));
            assert_eq!(e.preempt_grace, Some(jiff::SignedDuration::from_mins(10)));
            assert_eq!(e.horizon, jiff::SignedDuration::from_hours(4));

            jail.create_file(
                "two.toml",
                "[tiers.a]\ndefault = true\n[tiers.b]\ndefault = true\n",
            )?;
            let err = Config::load(Some(Path::new("two.toml")), Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("only one tier"), "{err}");
            jail.create_file("bad.toml", "[tiers.free]\nstorage_gb = 5\n")?;
            let err = Config::load(Some(Path::new("bad.toml")), Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("storage_gb"), "{err}");
            jail.create_file("name.toml", "[tiers.\"Gold Plus\"]\nmax_running = 1\n")?;
            let err = Config::load(Some(Path::new("name.toml")), Overrides::default()).unwrap_err();
            assert!(err.to_string().contains("Gold Plus"), "{err}");
            Ok(())
        });
        let c = with_env(&[], || Config::load(None, Overrides::default()).unwrap());
        let e = c.economy();
        assert_eq!((e.preempt_grace, e.default_tier), (None, None));
        assert!(e.tiers.is_empty());
    }

    #[test]
    fn api_url_is_public_url_or_a_reachable_address() {
        let mut c = Config::default();
        assert_eq!(
            c.api_url("0.0.0.0:8080".parse().unwrap()),
            "http://localhost:8080"
        );
        assert_eq!(c.api_url("[::1]:81".parse().unwrap()), "http://[::1]:81");
        c.server.public_url = Some("https://t.example.org/".into());
        assert_eq!(
            c.api_url("0.0.0.0:8080".parse().unwrap()),
            "https://t.example.org"
        );
    }

    #[test]
    fn public_url_sets_scheme_and_port() {
        assert_eq!(
            public_parts("https://t.example.org").unwrap(),
            (Scheme::Https, None)
        );
        assert_eq!(
            public_parts("https://t.example.org:8443/").unwrap(),
            (Scheme::Https, Some(8443))
        );
        assert_eq!(
            public_parts("http://t.example.org:80").unwrap(),
            (Scheme::Http, None)
        );
        assert!(public_parts("ftp://x").is_err());
        assert!(public_parts("https://x/path").is_err());
    }
}
