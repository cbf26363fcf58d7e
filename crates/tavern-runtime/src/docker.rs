//! The `docker` driver: one container per running world, from felddy's
//! image (or the stand-in's, for the `stub` release), configured through
//! felddy's environment, its data bind-mounted at `/data` and the shared
//! assets read-only beside it, on a private network the proxy reaches, with
//! memory and CPU limits. Containers carry the label `tavern.instance`, by
//! which a restarted Tavern adopts them and removes those of no world.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, InspectContainerOptions,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tavern_types::{InstanceId, Slug};

use crate::foundry_config::write_config;
use crate::{Disposal, InstanceSpec, Launch, Observed, Runtime, RuntimeError, dispose_data};

/// The port Foundry listens on inside its container.
pub const CONTAINER_PORT: u16 = crate::FOUNDRY_PORT;
/// The label that ties a container to its world.
pub const INSTANCE_LABEL: &str = "tavern.instance";
const INSTANCE_ID_LABEL: &str = "tavern.instance-id";
/// The label that ties a container to one Tavern (several may share an
/// engine; each sees and removes only its own containers).
pub const INSTALLATION_LABEL: &str = "tavern.installation";

/// How worlds' containers are made.
#[derive(Clone, Debug)]
pub struct DockerSettings {
    /// Which Tavern the containers belong to (labels and names).
    pub installation: String,
    /// The image of a release: `{version}` is replaced by the release
    /// (the configuration's default is `felddy/foundryvtt:{version}`).
    pub image: String,
    /// The image of the `stub` release (the stand-in).
    pub stub_image: String,
    /// The private network the containers and the proxy share.
    pub network: String,
    /// Mounted read-only at `/data/Data/shared` in every world.
    pub shared_dir: PathBuf,
    /// The package library (`DATA_DIR/packages`): each package a world
    /// uses is mounted read-only below `/tavern/packages`.
    pub packages_dir: PathBuf,
    pub memory_bytes: i64,
    /// CPUs, in billionths.
    pub nano_cpus: i64,
    /// Publish each container's port on the host's loopback (for a Tavern
    /// that cannot reach the private network, e.g. Docker Desktop).
    pub publish: bool,
}

/// The docker driver.
pub struct DockerRuntime {
    docker: Docker,
    settings: DockerSettings,
    /// `DATA_DIR/instances`: each world's `<slug>/data`.
    instances: PathBuf,
    /// Where removed worlds' data goes when no backup holds it.
    archive: PathBuf,
    /// The private network's id, once known.
    network: tokio::sync::OnceCell<String>,
    /// Images being pulled, or whose pull failed, by name.
    pulls: std::sync::Arc<std::sync::Mutex<HashMap<String, Pull>>>,
}

/// Where a pull is.
#[derive(Clone, Debug)]
enum Pull {
    Running(String),
    Failed(String),
}

/// Errors about the engine itself, not one world, name this slug.
fn placeholder_slug() -> Slug {
    Slug::parse("docker").expect("a valid slug")
}

fn refused(slug: &Slug, what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Refused {
        slug: slug.to_string(),
        message: format!("{what}: {e}"),
    }
}

fn unavailable(slug: &Slug, what: &'static str, e: bollard::errors::Error) -> RuntimeError {
    RuntimeError::io(what, slug, std::io::Error::other(e))
}

fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

impl DockerRuntime {
    /// Connects to the local Docker engine (`DOCKER_HOST` or the default
    /// socket) and agrees on an API version with it.
    pub async fn connect(
        settings: DockerSettings,
        instances: PathBuf,
        archive: PathBuf,
    ) -> Result<Self, String> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| format!("cannot reach the Docker engine: {e}"))?
            .negotiate_version()
            .await
            .map_err(|e| format!("the Docker engine does not answer: {e}"))?;
        docker
            .ping()
            .await
            .map_err(|e| format!("the Docker engine does not answer: {e}"))?;
        Ok(Self {
            docker,
            settings,
            instances,
            archive,
            network: tokio::sync::OnceCell::new(),
            pulls: std::sync::Arc::default(),
        })
    }

    /// A world's container name, unique on the engine.
    fn container_name(&self, slug: &Slug) -> String {
        format!("tavern-{}-{slug}", self.settings.installation)
    }

    fn data_path(&self, slug: &Slug) -> PathBuf {
        self.instances.join(slug.as_str()).join("data")
    }

    fn image_for(&self, release: &str) -> String {
        if release == "stub" {
            self.settings.stub_image.clone()
        } else {
            self.settings.image.replace("{version}", release)
        }
    }

    /// Ready when the engine has the image. Otherwise a pull starts in the
    /// background (one per image; a felddy image is hundreds of MB, and the
    /// reconciler must not wait on it) and the answer is a transient error
    /// that tells how far it got; a failed pull is refused once.
    async fn ensure_image(&self, slug: &Slug, image: &str) -> Result<(), RuntimeError> {
        if self.docker.inspect_image(image).await.is_ok() {
            self.pulls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(image);
            return Ok(());
        }
        let mut pulls = self.pulls.lock().unwrap_or_else(|e| e.into_inner());
        match pulls.get(image).cloned() {
            Some(Pull::Running(progress)) => {
                return Err(RuntimeError::io(
                    "start until its image is pulled",
                    slug,
                    std::io::Error::other(format!("pulling {image}: {progress}")),
                ));
            }
            Some(Pull::Failed(why)) => {
                pulls.remove(image);
                return Err(refused(slug, &format!("cannot pull {image}"), why));
            }
            None => {}
        }
        pulls.insert(image.to_owned(), Pull::Running("starting".into()));
        drop(pulls);
        tracing::info!(%image, "pulling the image");
        let (docker, all, pulling) = (self.docker.clone(), self.pulls.clone(), image.to_owned());
        tokio::spawn(async move {
            let image = pulling;
            let options = CreateImageOptionsBuilder::default()
                .from_image(&image)
                .build();
            let mut pull = docker.create_image(Some(options), None, None);
            let mut last = String::new();
            let mut outcome = Pull::Running("done".into());
            while let Some(step) = pull.next().await {
                match step {
                    Ok(step) => {
                        let status = step.status.unwrap_or_default();
                        let detail = step
                            .progress_detail
                            .and_then(|d| Some(format!("{} of {} bytes", d.current?, d.total?)))
                            .unwrap_or_default();
                        let progress = format!("{status} {detail}").trim().to_owned();
                        if status != last {
                            tracing::info!(%image, %status, "pulling");
                            last = status;
                        }
                        all.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(image.clone(), Pull::Running(progress));
                    }
                    Err(e) => {
                        tracing::warn!(%image, error = %e, "pulling the image failed");
                        outcome = Pull::Failed(e.to_string());
                        break;
                    }
                }
            }
            let mut all = all.lock().unwrap_or_else(|e| e.into_inner());
            match outcome {
                Pull::Failed(_) => {
                    all.insert(image, outcome);
                }
                Pull::Running(_) => {
                    tracing::info!(%image, "pulled the image");
                    all.remove(&image);
                }
            }
        });
        Err(RuntimeError::io(
            "start until its image is pulled",
            slug,
            std::io::Error::other(format!("pulling {image}")),
        ))
    }

    /// The private network's id: the oldest network of that name (the
    /// engine allows several, and Taverns starting together may each make
    /// one: all agree on the same one, and the others are removed).
    async fn network_id(&self, slug: &Slug) -> Result<String, RuntimeError> {
        let id = self
            .network
            .get_or_try_init(|| async {
                if let Some(id) = self.find_network().await? {
                    return Ok(id);
                }
                let request = NetworkCreateRequest {
                    name: self.settings.network.clone(),
                    driver: Some("bridge".into()),
                    labels: Some(HashMap::from([("tavern.network".into(), "true".into())])),
                    ..Default::default()
                };
                let made = self
                    .docker
                    .create_network(request)
                    .await
                    .map_err(|e| unavailable(slug, "create the network", e))?;
                let chosen = self
                    .find_network()
                    .await?
                    .unwrap_or_else(|| made.id.clone());
                if chosen != made.id {
                    let _ = self.docker.remove_network(&made.id).await;
                }
                Ok(chosen)
            })
            .await?;
        Ok(id.clone())
    }

    /// The oldest network named as configured, if any.
    async fn find_network(&self) -> Result<Option<String>, RuntimeError> {
        let filters = HashMap::from([("name".to_owned(), vec![self.settings.network.clone()])]);
        let options = ListNetworksOptionsBuilder::default()
            .filters(&filters)
            .build();
        let mut found: Vec<_> = self
            .docker
            .list_networks(Some(options))
            .await
            .map_err(|e| unavailable(&placeholder_slug(), "list networks", e))?
            .into_iter()
            // The filter matches substrings; the name must match exactly.
            .filter(|n| n.name.as_deref() == Some(self.settings.network.as_str()))
            .filter_map(|n| Some((n.created.clone().unwrap_or_default(), n.id?)))
            .collect();
        found.sort();
        Ok(found.into_iter().next().map(|(_, id)| id))
    }

    /// The world's container as it is now, if there is one.
    async fn inspect(&self, slug: &Slug) -> Result<Option<Observed>, RuntimeError> {
        match self
            .docker
            .inspect_container(&self.container_name(slug), None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => Ok(self.observed_from(slug, &c)),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(unavailable(slug, "inspect the container", e)),
        }
    }

    fn observed_from(
        &self,
        slug: &Slug,
        c: &bollard::models::ContainerInspectResponse,
    ) -> Option<Observed> {
        let labels = c.config.as_ref()?.labels.as_ref()?;
        let id: InstanceId = labels.get(INSTANCE_ID_LABEL)?.parse().ok()?;
        let state = c.state.as_ref();
        let alive = state.and_then(|s| s.running).unwrap_or(false);
        let exit = (!alive).then(|| match state.and_then(|s| s.exit_code) {
            Some(code) if state.and_then(|s| s.oom_killed) == Some(true) => {
                format!("killed for lack of memory (exit {code})")
            }
            Some(code) => format!("exited with code {code}"),
            None => "exited".into(),
        });
        let settings = c.network_settings.as_ref();
        let addr = if self.settings.publish {
            settings
                .and_then(|n| n.ports.as_ref())
                .and_then(|p| p.get(&format!("{CONTAINER_PORT}/tcp")))
                .and_then(|b| b.as_ref())
                .and_then(|b| b.first())
                .and_then(|b| b.host_port.as_deref())
                .and_then(|p| p.parse().ok())
                .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
        } else {
            settings
                .and_then(|n| n.networks.as_ref())
                .and_then(|n| n.get(&self.settings.network))
                .and_then(|e| e.ip_address.as_deref())
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, CONTAINER_PORT))
        };
        Some(Observed {
            id,
            slug: slug.clone(),
            // A stopped container has no address; nothing is forwarded to it.
            addr: addr.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
            alive,
            exit,
            kept: false,
        })
    }

    /// Stops and removes the world's container; a missing one is fine.
    async fn stop_and_remove(&self, slug: &Slug, grace: Duration) -> Result<(), RuntimeError> {
        let name = self.container_name(slug);
        let secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let stop = StopContainerOptionsBuilder::default().t(secs).build();
        match self.docker.stop_container(&name, Some(stop)).await {
            Ok(()) => {}
            Err(e) if not_found(&e) => return Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => {}
            Err(e) => return Err(unavailable(slug, "stop the container", e)),
        }
        let remove = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(&name, Some(remove)).await {
            Ok(()) => Ok(()),
            Err(e) if not_found(&e) => Ok(()),
            Err(e) => Err(unavailable(slug, "remove the container", e)),
        }
    }
}

impl DockerRuntime {
    /// Links the world's packages to their mounts, and answers the mounts:
    /// each version read-only at the same path below `/tavern/packages`.
    fn package_binds(
        &self,
        spec: &InstanceSpec,
        data: &std::path::Path,
    ) -> Result<Vec<String>, RuntimeError> {
        use crate::packages::{CONTAINER_LIBRARY, link_packages, log_clashes};
        let slug = &spec.slug;
        let wanted = &spec.config.packages;
        let lib = std::path::absolute(&self.settings.packages_dir)
            .map_err(|e| RuntimeError::io("find the package library", slug, e))?;
        let seen = std::path::Path::new(CONTAINER_LIBRARY);
        let linked = link_packages(data, wanted, seen, &lib)
            .map_err(|e| RuntimeError::io("link the world's packages", slug, e))?;
        log_clashes(slug, &linked);
        Ok(wanted
            .iter()
            .filter(|p| p.kind != tavern_foundry::manifest::PackageKind::World)
            .filter_map(|p| p.rel_path())
            .map(|rel| {
                format!(
                    "{}:{}:ro",
                    lib.join(&rel).display(),
                    seen.join(&rel).display()
                )
            })
            .collect())
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn ensure(&self, spec: &InstanceSpec) -> Result<Observed, RuntimeError> {
        let slug = &spec.slug;
        let Launch::Container { release } = &spec.launch else {
            return Err(refused(
                slug,
                "not a container world",
                "it runs as a process",
            ));
        };
        if let Some(o) = self.inspect(slug).await?
            && o.alive
            && o.id == spec.id
        {
            return Ok(o);
        }
        // A container that has exited (or belongs to an older world of the
        // same name) is replaced: never two for one world.
        self.stop_and_remove(slug, Duration::from_secs(10)).await?;
        let image = self.image_for(release);
        self.ensure_image(slug, &image).await?;
        let network = self.network_id(slug).await?;
        let data = self.data_path(slug);
        std::fs::create_dir_all(&data)
            .map_err(|e| RuntimeError::io("create the data directory", slug, e))?;
        std::fs::create_dir_all(&self.settings.shared_dir)
            .map_err(|e| RuntimeError::io("create the shared directory", slug, e))?;
        // Tavern writes Config/ (options, admin.txt, the key or its signed
        // license.json); felddy keeps them (CONTAINER_PRESERVE_CONFIG). The
        // license and admin keys stay out of the environment: Docker keeps a
        // container's configuration in clear on disk and shows it to anyone
        // who may inspect containers.
        write_config(&data, CONTAINER_PORT, &spec.config)
            .map_err(|e| RuntimeError::io("write Foundry's Config files", slug, e))?;
        let cfg = &spec.config;
        let key = cfg.license_key.as_ref().map(|k| k.expose().to_owned());
        let mut env = vec![
            format!("FOUNDRY_HOSTNAME={}", cfg.hostname),
            format!("FOUNDRY_PROXY_SSL={}", cfg.proxy_ssl),
            "CONTAINER_PRESERVE_CONFIG=true".to_owned(),
        ];
        if let Some(port) = cfg.proxy_port {
            env.push(format!("FOUNDRY_PROXY_PORT={port}"));
        }
        if let Some(prefix) = &cfg.route_prefix {
            env.push(format!("FOUNDRY_ROUTE_PREFIX={prefix}"));
        }
        let shared = std::fs::canonicalize(&self.settings.shared_dir)
            .map_err(|e| RuntimeError::io("find the shared directory", slug, e))?;
        let mut binds = vec![
            format!("{}:/data", data.display()),
            format!("{}:/data/Data/shared:ro", shared.display()),
        ];
        binds.extend(self.package_binds(spec, &data)?);
        let mut host = HostConfig {
            binds: Some(binds),
            memory: Some(self.settings.memory_bytes),
            nano_cpus: Some(self.settings.nano_cpus),
            network_mode: Some(network),
            ..Default::default()
        };
        if self.settings.publish {
            host.port_bindings = Some(HashMap::from([(
                format!("{CONTAINER_PORT}/tcp"),
                Some(vec![bollard::models::PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                }]),
            )]));
        }
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            hostname: Some(crate::hostname_for(key.as_deref())),
            env: Some(env),
            labels: Some(HashMap::from([
                (INSTANCE_LABEL.to_owned(), slug.to_string()),
                (INSTANCE_ID_LABEL.to_owned(), spec.id.to_string()),
                (
                    INSTALLATION_LABEL.to_owned(),
                    self.settings.installation.clone(),
                ),
            ])),
            exposed_ports: Some(vec![format!("{CONTAINER_PORT}/tcp")]),
            // Foundry flushes its worlds on SIGTERM.
            stop_timeout: Some(30),
            host_config: Some(host),
            ..Default::default()
        };
        let name = self.container_name(slug);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| unavailable(slug, "create the container", e))?;
        self.docker
            .start_container(&name, None)
            .await
            .map_err(|e| unavailable(slug, "start the container", e))?;
        tracing::info!(slug = %slug, %image, "started container");
        self.inspect(slug).await?.ok_or_else(|| {
            refused(
                slug,
                "the container vanished",
                "it was removed right after its start",
            )
        })
    }

    async fn stop(&self, slug: &Slug, grace: Duration) -> Result<(), RuntimeError> {
        self.stop_and_remove(slug, grace).await
    }

    async fn remove(
        &self,
        slug: &Slug,
        grace: Duration,
        data: Disposal,
    ) -> Result<(), RuntimeError> {
        self.stop_and_remove(slug, grace).await?;
        dispose_data(
            &self.instances.join(slug.as_str()),
            &self.archive,
            slug,
            data,
        )
    }

    fn data_dir(&self, slug: &Slug) -> Option<PathBuf> {
        Some(self.data_path(slug))
    }

    async fn observe_all(&self) -> Result<Vec<Observed>, RuntimeError> {
        let mine = format!("{INSTALLATION_LABEL}={}", self.settings.installation);
        let filters = HashMap::from([("label".to_owned(), vec![INSTANCE_LABEL.to_owned(), mine])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| {
                RuntimeError::io(
                    "list containers",
                    &Slug::parse("docker").expect("a slug"),
                    std::io::Error::other(e),
                )
            })?;
        let mut out = Vec::with_capacity(list.len());
        for c in list {
            let Some(slug) = c
                .labels
                .as_ref()
                .and_then(|l| l.get(INSTANCE_LABEL))
                .and_then(|s| Slug::parse(s).ok())
            else {
                continue;
            };
            if let Some(o) = self.inspect(&slug).await? {
                out.push(o);
            }
        }
        Ok(out)
    }

    async fn logs(&self, slug: &Slug, tail: usize) -> Result<Vec<String>, RuntimeError> {
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&tail.to_string())
            .build();
        let mut stream = self.docker.logs(&self.container_name(slug), Some(options));
        let mut lines = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(out) => {
                    let text = String::from_utf8_lossy(&out.into_bytes()).into_owned();
                    lines.extend(text.lines().map(str::to_owned));
                }
                Err(e) if not_found(&e) => break,
                Err(e) => return Err(unavailable(slug, "read the container's log", e)),
            }
        }
        let skip = lines.len().saturating_sub(tail);
        Ok(lines.split_off(skip))
    }
}
