//! Worlds (instances): creating, listing, changing and destroying them,
//! and asking them to run or stop; the reconciler does the running. Game
//! masters see only their own; another's world answers "not found".

use tavern_store::{DnsName, Instance, License, NewEvent, Observation, StoragePlace, User, now};
use tavern_types::{DesiredState, LicenseId, ObservedState, RuntimeKind, Slug, Username};

use crate::auth::{self, Caller};
use crate::checks;
use crate::dns::DnsStatus;
use crate::error::CoreError;
use crate::licenses::ClaimError;
use crate::policy::quotas::{self};
use crate::storage::StorageStatus;
use crate::tavern::Tavern;
use crate::words::being_destroyed;
use tavern_runtime::releases::ReleaseError;

pub struct NewInstance {
    pub slug: String,
    pub owner: Option<String>,
    pub release: Option<String>,
    pub license: Option<String>,
    pub runtime: Option<String>,
    pub idle_timeout_minutes: Option<u32>,
    pub wake_on_visit: Option<String>,
}

/// Changes to an instance's own settings: `None` leaves one as it is,
/// `Some(None)` returns it to the server's setting.
#[derive(Debug)]
pub struct InstanceUpdate {
    pub idle_timeout_minutes: Option<Option<u32>>,
    pub wake_on_visit: Option<Option<String>>,
    /// Another Foundry release: the world must be stopped; a pre-upgrade
    /// backup is taken first.
    pub release: Option<String>,
    /// Another runtime (`process` or `docker`): the world must be stopped;
    /// its data stays.
    pub runtime: Option<String>,
    /// Change the release even when some of the world's packages would
    /// not load on it.
    pub force: bool,
}

/// An instance as people see it.
#[derive(Clone, Debug)]
pub struct InstanceView {
    pub instance: Instance,
    pub owner: Username,
    pub url: String,
    pub license: Option<(LicenseId, String)>,
    /// The Foundry admin key: only in the answer that created the instance.
    pub admin_key: Option<String>,
    /// How its name fares in DNS, when Tavern keeps one per world.
    pub dns: Option<crate::dns::DnsStatus>,
    /// Its object storage, when worlds have some.
    pub storage: Option<StorageStatus>,
}

/// What views of many worlds share, read once.
pub(crate) struct Lists {
    pub users: Vec<User>,
    pub licenses: Vec<License>,
    pub names: Vec<DnsName>,
    pub places: Vec<StoragePlace>,
}

/// What the caller can do when no key is free: only admins add keys.
pub(crate) fn advise_on_keys(e: CoreError, caller: &Caller) -> CoreError {
    match e {
        CoreError::Conflict { code, message } => CoreError::Conflict {
            code,
            message: if caller.is_admin() {
                format!("{message}; stop a world, or add a key")
            } else {
                format!(
                    "{message}; stop one of your worlds, wait for the key, or ask an admin for another"
                )
            },
        },
        other => other,
    }
}

impl Tavern {
    pub async fn create_instance(
        &self,
        caller: &Caller,
        new: NewInstance,
    ) -> Result<InstanceView, CoreError> {
        let slug = checks::slug(&new.slug)?;
        let owner = match &new.owner {
            Some(name) if name != caller.user.username.as_str() => {
                caller.require_admin("create worlds for someone else")?;
                self.user_named("owner", name).await?
            }
            _ => caller.user.clone(),
        };
        let runtime = match &new.runtime {
            Some(r) => self.check_runtime(r)?,
            None => self.settings.default_runtime,
        };
        // Without a release named, the newest installed one: a world
        // without a release could not start.
        let release = match new.release.as_deref() {
            Some(r) => checks::release(r)?,
            None => self
                .releases
                .list()
                .pop()
                .map(|r| r.version)
                .ok_or_else(|| {
                    CoreError::invalid(
                        "no_release",
                        "release",
                        "no Foundry release is installed on this server yet: an admin installs \
                         one first (`tavern release add --zip FILE`, or the dashboard's \
                         Releases page), or name one for a docker or kubernetes world",
                    )
                })?,
        };
        self.check_release_for(runtime, &release)
            .map_err(|e| CoreError::invalid("unknown_release", "release", e.to_string()))?;
        let release = Some(release);
        let idle_timeout_minutes = new
            .idle_timeout_minutes
            .map(checks::idle_minutes)
            .transpose()?;
        let wake_on_visit = new.wake_on_visit.as_deref().map(checks::wake).transpose()?;
        let license = match &new.license {
            Some(id) => {
                let license = self
                    .usable_license(caller, &owner, checks::license_id(id)?)
                    .await?;
                Some(license)
            }
            None => None,
        };
        if let Some((name, tier)) = self.tier_of(&owner).await? {
            let owned = self.store.list_instances(Some(owner.id)).await?.len();
            quotas::check_create(&name, &tier, owned).map_err(CoreError::from)?;
        }
        if self.store.instance(&slug).await?.is_some() {
            return Err(CoreError::Conflict {
                code: "slug_taken",
                message: format!("a world named {slug} already exists"),
            });
        }
        let admin_key = auth::random_secret()[..24].to_owned();
        let admin_key_sealed = self
            .secrets
            .seal(admin_key.as_bytes())
            .map_err(|e| CoreError::internal("seal admin key", e))?;
        let at = now();
        let instance = Instance {
            id: tavern_types::InstanceId::new(),
            slug,
            owner: owner.id,
            release,
            runtime,
            license: license.as_ref().map(|l| l.id),
            desired_state: DesiredState::Stopped,
            state: ObservedState::Stopped,
            idle_timeout_minutes,
            created_at: at,
            updated_at: at,
            state_reason: None,
            players: 0,
            sockets: 0,
            wake_on_visit,
            world: None,
            foundry_version: None,
            admin_key_sealed: Some(admin_key_sealed),
            awaits: None,
            last_activity_at: None,
        };
        self.store
            .create_instance(
                &instance,
                &NewEvent::success(
                    caller.name(),
                    "instance.create",
                    format!("instance:{}", instance.slug),
                )
                .with_detail(format!("owner {}", owner.username)),
            )
            .await?;
        self.worlds_changed();
        self.apply_default_packages(caller, &instance).await?;
        let dns = self.settings.dns_per_world.then(|| {
            DnsStatus::of(
                self.settings.instance_host(&instance.slug),
                &instance.slug,
                None,
            )
        });
        let storage = self.uploads.as_ref().map(|up| {
            StorageStatus::of(
                &up.storage.layout().place(&instance.slug, instance.id),
                None,
            )
        });
        Ok(InstanceView {
            url: self.settings.instance_url(&instance.slug),
            dns,
            storage,
            license: license.map(|l| (l.id, l.label)),
            owner: owner.username,
            instance,
            admin_key: Some(admin_key),
        })
    }

    pub(crate) async fn view(
        &self,
        instance: Instance,
        lists: Option<&Lists>,
    ) -> Result<InstanceView, CoreError> {
        let owner = match lists.and_then(|l| l.users.iter().find(|u| u.id == instance.owner)) {
            Some(u) => u.username.clone(),
            None => self
                .store
                .user(instance.owner)
                .await?
                .map(|u| u.username)
                .ok_or_else(|| {
                    CoreError::internal(
                        "read instance owner",
                        format!("owner of {} is missing", instance.slug),
                    )
                })?,
        };
        // The key it holds now, else the key it is configured with.
        let licenses = match lists {
            Some(l) => std::borrow::Cow::Borrowed(l.licenses.as_slice()),
            None => std::borrow::Cow::Owned(self.store.list_licenses().await?),
        };
        let license = licenses
            .iter()
            .find(|l| l.bound_to == Some(instance.id))
            .or_else(|| licenses.iter().find(|l| Some(l.id) == instance.license))
            .map(|l| (l.id, l.label.clone()));
        let dns = match (self.settings.dns_per_world, lists) {
            (false, _) => None,
            (true, lists) => {
                let host = self.settings.instance_host(&instance.slug);
                let row = match lists {
                    Some(l) => l.names.iter().find(|n| n.host == host).cloned(),
                    None => self.store.dns_name(&host).await?,
                };
                Some(DnsStatus::of(host, &instance.slug, row.as_ref()))
            }
        };
        let storage = match (&self.uploads, lists) {
            (None, _) => None,
            (Some(up), lists) => {
                let row = match lists {
                    Some(l) => l.places.iter().find(|p| p.instance == instance.id).cloned(),
                    None => self.store.storage_place(instance.id).await?,
                };
                let place = up.storage.layout().place(&instance.slug, instance.id);
                Some(StorageStatus::of(&place, row.as_ref()))
            }
        };
        Ok(InstanceView {
            url: self.settings.instance_url(&instance.slug),
            dns,
            storage,
            owner,
            license,
            instance,
            admin_key: None,
        })
    }

    /// The instance if the caller may see it; "not found" otherwise.
    pub(crate) async fn visible_instance(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<Instance, CoreError> {
        let not_found = || CoreError::NotFound {
            what: "instance",
            key: slug.to_owned(),
        };
        let Ok(parsed) = Slug::parse(slug) else {
            return Err(not_found());
        };
        match self.store.instance(&parsed).await? {
            Some(i) if caller.is_admin() || i.owner == caller.user.id => Ok(i),
            _ => Err(not_found()),
        }
    }

    pub async fn list_instances(&self, caller: &Caller) -> Result<Vec<InstanceView>, CoreError> {
        let owner = (!caller.is_admin()).then_some(caller.user.id);
        let instances = self.store.list_instances(owner).await?;
        let users = if caller.is_admin() {
            self.store.list_users().await?
        } else {
            vec![caller.user.clone()]
        };
        let lists = Lists {
            users,
            licenses: self.store.list_licenses().await?,
            names: match self.settings.dns_per_world {
                true => self.store.list_dns_names().await?,
                false => Vec::new(),
            },
            places: match self.uploads {
                Some(_) => self.store.list_storage_places().await?,
                None => Vec::new(),
            },
        };
        let mut out = Vec::with_capacity(instances.len());
        for i in instances {
            out.push(self.view(i, Some(&lists)).await?);
        }
        Ok(out)
    }

    pub async fn get_instance(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<InstanceView, CoreError> {
        let i = self.visible_instance(caller, slug).await?;
        self.view(i, None).await
    }

    /// Changes an instance's idle timeout or who wakes it by visiting.
    pub async fn update_instance(
        &self,
        caller: &Caller,
        slug: &str,
        update: InstanceUpdate,
    ) -> Result<InstanceView, CoreError> {
        let mut i = self.visible_instance(caller, slug).await?;
        if update.release.is_some() || update.runtime.is_some() {
            i = self
                .change_launch(
                    caller,
                    &i,
                    update.release.as_deref(),
                    update.runtime.as_deref(),
                    update.force,
                )
                .await?;
        }
        let idle = update
            .idle_timeout_minutes
            .map(|m| m.map(checks::idle_minutes).transpose())
            .transpose()?;
        let wake = update
            .wake_on_visit
            .map(|w| w.as_deref().map(checks::wake).transpose())
            .transpose()?;
        let mut detail = Vec::new();
        if let Some(m) = idle {
            detail.push(format!(
                "idle timeout {}",
                m.map_or_else(|| "default".to_owned(), |m| format!("{m} min"))
            ));
        }
        if let Some(w) = wake {
            detail.push(format!(
                "wake on visit {}",
                w.map_or("default", |w| w.as_str())
            ));
        }
        let i = self
            .store
            .update_instance_settings(
                &i.slug,
                idle,
                wake,
                &NewEvent::success(
                    caller.name(),
                    "instance.update",
                    format!("instance:{}", i.slug),
                )
                .with_detail(detail.join(", ")),
            )
            .await?;
        self.wake_reconciler();
        self.view(i, None).await
    }

    /// Moves a stopped world to another release or runtime (its data stays
    /// where it is); a new release comes after a pre-upgrade backup of its
    /// data (when backups are on and it has data).
    async fn change_launch(
        &self,
        caller: &Caller,
        i: &Instance,
        release: Option<&str>,
        runtime: Option<&str>,
        force: bool,
    ) -> Result<Instance, CoreError> {
        let runtime = match runtime {
            Some(r) => self.check_runtime(r)?,
            None => i.runtime,
        };
        let release = match release {
            Some(r) => checks::release(r)?,
            None => i.release.clone().unwrap_or_default(),
        };
        let new_release = i.release.as_deref() != Some(release.as_str());
        if !new_release && runtime == i.runtime {
            return Ok(i.clone());
        }
        // A world on Kubernetes keeps its data on the cluster, the others
        // on this machine: its data cannot follow it across.
        if runtime.data_on_cluster() != i.runtime.data_on_cluster() {
            return Err(CoreError::invalid(
                "invalid_runtime",
                "runtime",
                format!(
                    "{} cannot move between {} and {}: its data would stay behind (create a new world instead)",
                    i.slug, i.runtime, runtime
                ),
            ));
        }
        if release.is_empty() {
            return Err(CoreError::invalid(
                "invalid_field",
                "release",
                format!("{} has no release: name one with the runtime", i.slug),
            ));
        }
        self.check_release_for(runtime, &release)
            .map_err(|e| CoreError::invalid("unknown_release", "release", e.to_string()))?;
        if i.desired_state != DesiredState::Stopped || i.state != ObservedState::Stopped {
            return Err(CoreError::Conflict {
                code: "instance_running",
                message: format!("stop {} before changing its release or runtime", i.slug),
            });
        }
        if new_release && !force {
            self.check_packages_fit(i, &release).await?;
        }
        if new_release && self.settings.backups.is_some() {
            self.backup_now(i, tavern_types::BackupKind::PreUpgrade)
                .await?;
        }
        let from = format!(
            "{} on {}",
            i.release.as_deref().unwrap_or("none"),
            i.runtime
        );
        Ok(self
            .store
            .set_instance_launch(
                &i.slug,
                &release,
                runtime,
                &NewEvent::success(
                    caller.name(),
                    "instance.upgrade",
                    format!("instance:{}", i.slug),
                )
                .with_detail(format!("{from} → {release} on {runtime}")),
            )
            .await?)
    }

    /// A runtime this server runs worlds on.
    fn check_runtime(&self, runtime: &str) -> Result<RuntimeKind, CoreError> {
        let why = match runtime.parse::<RuntimeKind>() {
            Ok(kind) if self.settings.runtimes.contains(&kind) => return Ok(kind),
            Ok(kind) => format!("this server is not set up for the {kind} runtime"),
            Err(_) => format!("{runtime:?} is not a runtime"),
        };
        let offered: Vec<&str> = self.settings.runtimes.iter().map(|r| r.as_str()).collect();
        Err(CoreError::invalid(
            "invalid_runtime",
            "runtime",
            format!("{why}; it offers: {}", offered.join(", ")),
        ))
    }

    /// Whether a release can run on a runtime: installed here for
    /// processes; any version for containers and pods (its image is
    /// pulled at the first start).
    fn check_release_for(&self, runtime: RuntimeKind, release: &str) -> Result<(), ReleaseError> {
        if runtime.runs_images() {
            return Ok(());
        }
        self.releases.resolve(release).map(|_| ())
    }

    /// Asks for an instance to be destroyed: the reconciler stops its
    /// server, archives its data directory and removes the record.
    pub async fn destroy_instance(
        &self,
        caller: &Caller,
        slug: &str,
    ) -> Result<InstanceView, CoreError> {
        let i = self.visible_instance(caller, slug).await?;
        let i = self
            .store
            .set_desired_state(
                &i.slug,
                DesiredState::Destroyed,
                Some(&format!("being destroyed by {}", caller.name())),
                &NewEvent::success(
                    caller.name(),
                    "instance.destroy",
                    format!("instance:{}", i.slug),
                ),
            )
            .await?;
        self.wake_reconciler();
        self.worlds_changed();
        self.view(i, None).await
    }

    /// Asks for an instance to run or to stop; the reconciler does it.
    pub async fn set_desired(
        &self,
        caller: &Caller,
        slug: &str,
        desired: DesiredState,
    ) -> Result<InstanceView, CoreError> {
        let i = self.visible_instance(caller, slug).await?;
        if i.desired_state == DesiredState::Destroyed {
            return Err(being_destroyed(&i));
        }
        if desired == DesiredState::Running {
            self.check_startable(&i)?;
            if i.desired_state != DesiredState::Running {
                self.check_start_quota(&i).await?;
            }
            if i.state == ObservedState::Failed {
                // Asked to start again after a failure: a fresh start.
                let fresh = Observation {
                    state: ObservedState::Stopped,
                    state_reason: Some("start requested after a failure".into()),
                    players: 0,
                    sockets: 0,
                    world: i.world.clone(),
                    foundry_version: i.foundry_version.clone(),
                    at: now(),
                };
                self.store.record_observation(i.id, &fresh, None).await?;
            }
            // The key and the wish to run are written together.
            let start = NewEvent::success(
                caller.name(),
                "instance.start",
                format!("instance:{}", i.slug),
            );
            let promised = i.desired_state == DesiredState::Running && i.awaits.is_some();
            match self.claim_license(&i, caller.name(), Some(&start)).await {
                Ok(_) => {}
                // Already on its way: a key was promised to it and the world
                // holding that key is stopping.
                Err(ClaimError::InUse { .. }) if promised => {}
                Err(e @ ClaimError::NoneFree { .. }) => {
                    if !self.preempt_for(&i, caller.name(), &start).await? {
                        return Err(advise_on_keys(e.into(), caller));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            self.store
                .set_desired_state(
                    &i.slug,
                    desired,
                    Some(&format!("stopped by {}", caller.name())),
                    &NewEvent::success(
                        caller.name(),
                        "instance.stop",
                        format!("instance:{}", i.slug),
                    ),
                )
                .await?;
        }
        self.wake_reconciler();
        let i = self.visible_instance(caller, slug).await?;
        self.view(i, None).await
    }

    /// A visit wakes a sleeping world when anyone may wake worlds: it
    /// starts as "visitor", within its owner's quota and the license rules.
    /// A world already asked to run (or being destroyed) is left alone.
    pub async fn wake_for_visitor(&self, slug: &str) -> Result<(), CoreError> {
        let not_found = || CoreError::NotFound {
            what: "instance",
            key: slug.to_owned(),
        };
        let parsed = Slug::parse(slug).map_err(|_| not_found())?;
        let i = self.store.instance(&parsed).await?.ok_or_else(not_found)?;
        if i.desired_state != DesiredState::Stopped {
            return Ok(());
        }
        self.check_startable(&i)?;
        self.check_start_quota(&i).await?;
        let start = NewEvent::success("visitor", "instance.start", format!("instance:{}", i.slug))
            .with_detail("woken by a visit");
        self.claim_license(&i, "visitor".into(), Some(&start))
            .await?;
        self.wake_reconciler();
        Ok(())
    }

    /// A start needs an installed release.
    pub(crate) fn check_startable(&self, i: &Instance) -> Result<(), CoreError> {
        let release = i.release.as_deref().ok_or_else(|| CoreError::Conflict {
            code: "no_release",
            message: format!(
                "{0} has no Foundry release: give it one with `tavern instance set {0} \
                 --release VERSION` (or on its page in the dashboard)",
                i.slug
            ),
        })?;
        self.check_release_for(i.runtime, release)
            .map_err(|e| CoreError::Conflict {
                code: "release_missing",
                message: e.to_string(),
            })?;
        Ok(())
    }

    /// May `i`'s owner start one more world now?
    pub(crate) async fn check_start_quota(&self, i: &Instance) -> Result<(), CoreError> {
        let owner = self.store.user(i.owner).await?.ok_or_else(|| {
            CoreError::internal("check quota", format!("owner of {} is missing", i.slug))
        })?;
        let Some((name, tier)) = self.tier_of(&owner).await? else {
            return Ok(());
        };
        let running = self
            .store
            .list_instances(Some(owner.id))
            .await?
            .iter()
            .filter(|o| o.id != i.id && o.desired_state == DesiredState::Running)
            .count();
        let now = now();
        let (from, to) = quotas::month_of(now);
        let usage = self.store.list_usage(Some(owner.id), from, to).await?;
        let used = quotas::used_between(&usage, from, to, now);
        quotas::check_start(&name, &tier, running, used).map_err(CoreError::from)
    }
}
