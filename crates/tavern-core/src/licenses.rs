//! License keys: the pool, pinning, and who holds which key. Claims go
//! through the allocation policy and the store's compare-and-set, so no
//! key ever runs two servers; pre-emption hands an idle world's key on
//! (switchover, an asked-for hand-over, has a file of its own).

use jiff::{SignedDuration, Timestamp};
use tavern_store::{Instance, License, NewEvent, Session, User, now};
use tavern_types::{DesiredState, LicenseId, LicenseKey, Username};

use crate::auth::Caller;
use crate::checks;
use crate::error::CoreError;
use crate::policy::licenses::{Allocation, Facts, choose_license, choose_preemption, next_free_at};
use crate::tavern::Tavern;
use crate::words::{minutes, world_name_for};

pub struct NewLicense {
    pub label: String,
    pub key: String,
    pub owner: Option<String>,
}

/// A license as people see it: never the key, only its last four characters.
#[derive(Clone, Debug)]
pub struct LicenseView {
    pub license: License,
    pub owner: Option<Username>,
}

/// What license decisions are made from: read once, decided on purely.
pub(crate) struct Snapshot {
    pub licenses: Vec<License>,
    pub instances: Vec<Instance>,
    /// Sessions whose window has not ended.
    pub sessions: Vec<Session>,
    pub now: Timestamp,
    pub horizon: SignedDuration,
}

impl Snapshot {
    pub fn facts(&self) -> Facts<'_> {
        Facts {
            licenses: &self.licenses,
            instances: &self.instances,
            sessions: &self.sessions,
            now: self.now,
            horizon: self.horizon,
        }
    }

    /// A key's label, for messages (never the key).
    pub fn label(&self, id: LicenseId) -> String {
        self.licenses
            .iter()
            .find(|l| l.id == id)
            .map_or_else(|| id.to_string(), |l| l.label.clone())
    }
}

pub(crate) fn reserved_error(label: &str, from: Timestamp) -> CoreError {
    CoreError::Conflict {
        code: "license_reserved",
        message: format!(
            "its license {label} is reserved for another world's session from {}",
            minutes(from)
        ),
    }
}

/// Why a world could not have a key now: told to its owner, and to the
/// start that asked, which may act on it (wait for a promised key, or
/// pre-empt an idle world when none is free).
#[derive(Debug)]
pub(crate) enum ClaimError {
    /// Its own key runs another world (named as the world's owner may see
    /// it).
    InUse { label: String, holder: String },
    /// Its key is reserved for another world's session from `from`.
    Reserved { label: String, from: Timestamp },
    /// Its key no longer exists.
    Missing(LicenseId),
    /// Every key it may use runs another world or is reserved soon; `next`
    /// is when one is expected to be free.
    NoneFree { next: Option<Timestamp> },
    /// Reading or writing the store failed.
    Failed(CoreError),
}

impl From<CoreError> for ClaimError {
    fn from(e: CoreError) -> Self {
        ClaimError::Failed(e)
    }
}

impl From<tavern_store::StoreError> for ClaimError {
    fn from(e: tavern_store::StoreError) -> Self {
        ClaimError::Failed(e.into())
    }
}

impl From<ClaimError> for CoreError {
    fn from(e: ClaimError) -> Self {
        match e {
            ClaimError::InUse { label, holder } => CoreError::Conflict {
                code: "license_in_use",
                message: format!(
                    "its license {label} runs {holder} now; one license runs one server at a time"
                ),
            },
            ClaimError::Reserved { label, from } => reserved_error(&label, from),
            ClaimError::Missing(license) => CoreError::Conflict {
                code: "license_missing",
                message: format!("its license {license} no longer exists"),
            },
            ClaimError::NoneFree { next } => {
                let when = next
                    .map(|t| {
                        if t <= now() {
                            "; one is being freed now, try again shortly".to_owned()
                        } else {
                            format!("; the next one is expected to free up at {}", minutes(t))
                        }
                    })
                    .unwrap_or_default();
                CoreError::NoLicenseFree(format!(
                    "every license key this world may use runs another world now or is reserved for a session soon{when}"
                ))
            }
            ClaimError::Failed(e) => e,
        }
    }
}

impl Tavern {
    /// Everything a license decision depends on, read now.
    pub(crate) async fn snapshot(&self) -> Result<Snapshot, CoreError> {
        let now = now();
        Ok(Snapshot {
            licenses: self.store.list_licenses().await?,
            instances: self.store.list_instances(None).await?,
            sessions: self.store.list_sessions(now).await?,
            now,
            horizon: self.settings.economy.horizon,
        })
    }

    /// Makes `i` hold a license key (its own if it has one already), by
    /// the allocation policy and the store's compare-and-set; answers it.
    /// With `start`, the same store transaction asks the world to run.
    pub(crate) async fn claim_license(
        &self,
        i: &Instance,
        actor: String,
        start: Option<&NewEvent>,
    ) -> Result<LicenseId, ClaimError> {
        // A lost race for one key means trying the next free one.
        let mut last = None;
        for _ in 0..8 {
            let snap = self.snapshot().await?;
            let id = match choose_license(i, &snap.facts()) {
                Allocation::Keep(id) | Allocation::Take(id) => id,
                Allocation::Busy { license, holder } => {
                    // Told to `i`'s owner (also as the world's state later).
                    let holder = world_name_for(
                        snap.instances.iter().find(|o| o.id == holder),
                        i.owner,
                        false,
                    );
                    return Err(ClaimError::InUse {
                        label: snap.label(license),
                        holder,
                    });
                }
                Allocation::Reserved { license, from } => {
                    return Err(ClaimError::Reserved {
                        label: snap.label(license),
                        from,
                    });
                }
                Allocation::Missing(license) => return Err(ClaimError::Missing(license)),
                Allocation::NoneFree => {
                    last = Some(snap);
                    break;
                }
            };
            let event = NewEvent::success(actor.clone(), "license.bind", format!("license:{id}"))
                .with_detail(format!("to world {}", i.slug));
            if self.store.bind_license(id, i.id, &event, start).await? {
                return Ok(id);
            }
        }
        Err(ClaimError::NoneFree {
            next: last.and_then(|snap| next_free_at(i, &snap.facts())),
        })
    }

    /// With pre-emption on: stops the world that has been idle longest on
    /// a key `i` may use and promises that key to `i`, which starts once
    /// the old server is confirmed gone. False when no world qualifies.
    pub(crate) async fn preempt_for(
        &self,
        i: &Instance,
        actor: String,
        start: &NewEvent,
    ) -> Result<bool, CoreError> {
        let Some(grace) = self.settings.economy.preempt_grace else {
            return Ok(false);
        };
        let snap = self.snapshot().await?;
        let Some(p) = choose_preemption(i, &snap.facts(), grace) else {
            return Ok(false);
        };
        let Some(holder) = snap.instances.iter().find(|h| h.id == p.holder) else {
            return Ok(false);
        };
        let idle = holder
            .last_activity_at
            .map(|t| snap.now.duration_since(t).as_secs() / 60)
            .unwrap_or_default();
        self.store
            .set_desired_state(
                &holder.slug,
                DesiredState::Stopped,
                Some(&format!(
                    "stopped after {idle} minutes without players: another world needed its key"
                )),
                &NewEvent::success(
                    actor.clone(),
                    "license.preempt",
                    format!("instance:{}", holder.slug),
                )
                .with_detail(format!(
                    "stopped after {idle} minutes without players: its license {} goes to {}",
                    snap.label(p.license),
                    i.slug
                )),
            )
            .await?;
        let start = start
            .clone()
            .with_detail(format!("with the license of {}", holder.slug));
        self.store
            .promise_license(i.id, p.license, None, &start)
            .await?;
        self.wake_reconciler();
        Ok(true)
    }

    /// A license `owner` may run: pooled, or pinned to them. Game masters
    /// cannot tell other people's pinned keys from missing ones.
    pub(crate) async fn usable_license(
        &self,
        caller: &Caller,
        owner: &User,
        id: LicenseId,
    ) -> Result<License, CoreError> {
        let not_found = || {
            CoreError::invalid(
                "unknown_license",
                "license",
                format!("there is no license {id}"),
            )
        };
        let license = self.store.license(id).await?.ok_or_else(not_found)?;
        match license.owner {
            Some(pinned) if pinned != owner.id => {
                if caller.is_admin() {
                    Err(CoreError::invalid(
                        "license_pinned",
                        "license",
                        format!("license {id} is pinned to another user"),
                    ))
                } else {
                    Err(not_found())
                }
            }
            _ => Ok(license),
        }
    }

    /// The key `i` holds now, if any.
    pub(crate) async fn held_license(
        &self,
        i: &Instance,
    ) -> Result<Option<License>, tavern_store::StoreError> {
        let licenses = self.store.list_licenses().await?;
        Ok(licenses.into_iter().find(|l| l.bound_to == Some(i.id)))
    }

    /// Frees the key `i` holds, once its server is confirmed gone; first
    /// keeps what Foundry signed for it.
    pub(crate) async fn release_license(&self, i: &Instance) -> Result<(), CoreError> {
        let held = self.held_license(i).await?;
        let Some(held) = held else { return Ok(()) };
        if let Err(e) = self.keep_signed_license(i, &held).await {
            tracing::warn!(slug = %i.slug, error = %e, "could not keep the signed license.json");
        }
        let event = NewEvent::success("system", "license.release", format!("instance:{}", i.slug))
            .with_detail("the server is confirmed stopped");
        self.store.release_license(i.id, &event).await?;
        Ok(())
    }

    pub async fn add_license(
        &self,
        caller: &Caller,
        new: NewLicense,
    ) -> Result<LicenseView, CoreError> {
        caller.require_admin("add licenses")?;
        let label = checks::label(&new.label)?;
        let key = LicenseKey::parse(&new.key)
            .map_err(|e| CoreError::invalid("invalid_license_key", "key", e.to_string()))?;
        let owner = match &new.owner {
            Some(name) => Some(self.user_named("owner", name).await?),
            None => None,
        };
        let sealed = self
            .secrets
            .seal(key.expose().as_bytes())
            .map_err(|e| CoreError::internal("seal license key", e))?;
        let license = License {
            id: LicenseId::new(),
            label,
            key_sealed: sealed,
            key_last4: key.last4(),
            owner: owner.as_ref().map(|u| u.id),
            created_at: now(),
            bound_to: None,
        };
        self.store
            .create_license(
                &license,
                &NewEvent::success(
                    caller.name(),
                    "license.add",
                    format!("license:{}", license.id),
                )
                .with_detail(format!("label {}", license.label)),
            )
            .await?;
        Ok(LicenseView {
            license,
            owner: owner.map(|u| u.username),
        })
    }

    /// Admins see every license; a game master sees the pool and their own.
    pub async fn list_licenses(&self, caller: &Caller) -> Result<Vec<LicenseView>, CoreError> {
        let users = self.store.list_users().await?;
        Ok(self
            .store
            .list_licenses()
            .await?
            .into_iter()
            .filter(|l| caller.is_admin() || l.owner.is_none() || l.owner == Some(caller.user.id))
            .map(|license| LicenseView {
                owner: license
                    .owner
                    .and_then(|o| users.iter().find(|u| u.id == o).map(|u| u.username.clone())),
                license,
            })
            .collect())
    }

    pub async fn remove_license(&self, caller: &Caller, id: &str) -> Result<(), CoreError> {
        caller.require_admin("remove licenses")?;
        let id: LicenseId = id.parse().map_err(|_| CoreError::NotFound {
            what: "license",
            key: id.to_owned(),
        })?;
        self.store
            .delete_license(
                id,
                &NewEvent::success(caller.name(), "license.remove", format!("license:{id}")),
            )
            .await?;
        Ok(())
    }

    /// Renames a license key and pins it to a game master or returns it
    /// to the pool (`owner`: `Some(None)`); absent fields stay as they
    /// are. Pinning it is refused while someone else's world uses it.
    pub async fn update_license(
        &self,
        caller: &Caller,
        id: &str,
        label: Option<String>,
        owner: Option<Option<String>>,
    ) -> Result<LicenseView, CoreError> {
        caller.require_admin("change licenses")?;
        let not_found = || CoreError::NotFound {
            what: "license",
            key: id.to_owned(),
        };
        let lid: LicenseId = id.parse().map_err(|_| not_found())?;
        let current = self.store.license(lid).await?.ok_or_else(not_found)?;
        let label = match label {
            Some(l) => checks::label(&l)?,
            None => current.label.clone(),
        };
        let owner = match owner {
            Some(Some(name)) => Some(self.user_named("owner", &name).await?),
            Some(None) => None,
            None => match current.owner {
                Some(o) => self.store.user(o).await?,
                None => None,
            },
        };
        let detail = format!(
            "label {label}, {}",
            owner.as_ref().map_or("the pool".to_owned(), |u| format!(
                "pinned to {}",
                u.username
            ))
        );
        let license = self
            .store
            .update_license(
                lid,
                &label,
                owner.as_ref().map(|u| u.id),
                &NewEvent::success(caller.name(), "license.update", format!("license:{lid}"))
                    .with_detail(detail),
            )
            .await?;
        Ok(LicenseView {
            license,
            owner: owner.map(|u| u.username),
        })
    }

    /// The clear key of a license, for the runtime to hand to Foundry.
    pub async fn license_key(&self, id: LicenseId) -> Result<LicenseKey, CoreError> {
        let license = self.store.license(id).await?.ok_or(CoreError::NotFound {
            what: "license",
            key: id.to_string(),
        })?;
        let clear = self
            .secrets
            .open(&license.key_sealed)
            .map_err(|e| CoreError::internal("open license key", e))?;
        let clear =
            String::from_utf8(clear).map_err(|e| CoreError::internal("open license key", e))?;
        LicenseKey::parse(&clear).map_err(|e| CoreError::internal("open license key", e))
    }
}
