//! Switchover: an admin, or the owner of the world on a key, hands that
//! key to another world. The world on it now stops first (not while
//! players are connected, unless forced); the key moves once that server
//! is confirmed gone, and the new world starts with it.

use tavern_store::{Instance, NewEvent};
use tavern_types::{DesiredState, LicenseId};

use crate::auth::Caller;
use crate::error::CoreError;
use crate::instances::InstanceView;
use crate::licenses::reserved_error;
use crate::tavern::Tavern;
use crate::words::being_destroyed;

impl Tavern {
    /// Switchover: hands license `license` to the world `slug`. The world on
    /// the key now is stopped first (refused while players are connected,
    /// unless `force`); the key moves once that server is confirmed gone,
    /// and then `slug` starts with it. Only an admin, or the owner of the
    /// world that holds (or awaits) the key, may take it from that world;
    /// anyone else hears that another world has it, never which.
    pub async fn activate_license(
        &self,
        caller: &Caller,
        license: &str,
        slug: &str,
        force: bool,
    ) -> Result<InstanceView, CoreError> {
        let target = self.visible_instance(caller, slug).await?;
        let not_found = || CoreError::NotFound {
            what: "license",
            key: license.to_owned(),
        };
        let id: LicenseId = license.parse().map_err(|_| not_found())?;
        let key = self.store.license(id).await?.ok_or_else(not_found)?;
        if let Some(pinned) = key.owner
            && pinned != target.owner
        {
            return Err(if caller.is_admin() {
                CoreError::Conflict {
                    code: "license_pinned",
                    message: format!("license {id} is pinned to another user"),
                }
            } else {
                not_found()
            });
        }
        if target.desired_state == DesiredState::Destroyed {
            return Err(being_destroyed(&target));
        }
        self.check_startable(&target)?;
        if target.desired_state != DesiredState::Running {
            self.check_start_quota(&target).await?;
        }
        let snap = self.snapshot().await?;
        if let Some(s) = snap.facts().reserved_for_other(target.id, id) {
            return Err(reserved_error(&key.label, s.window_start));
        }
        let licenses = snap.licenses;
        if let Some(other) = licenses
            .iter()
            .find(|l| l.bound_to == Some(target.id) && l.id != id)
        {
            return Err(CoreError::Conflict {
                code: "instance_running",
                message: format!(
                    "{} runs with license {} now; stop it first",
                    target.slug, other.label
                ),
            });
        }
        let instances = snap.instances;
        let taken_from = |holder: &Instance| -> Result<(), CoreError> {
            if caller.is_admin() || holder.owner == caller.user.id {
                return Ok(());
            }
            Err(CoreError::Conflict {
                code: "license_in_use",
                message: format!(
                    "license {} is in use by another world; only an admin or that world's owner can take it away",
                    key.label
                ),
            })
        };
        if let Some(waiting) = instances
            .iter()
            .find(|o| o.id != target.id && o.awaits == Some(id))
        {
            taken_from(waiting)?;
        }
        if let Some(holder) = key.bound_to.filter(|h| *h != target.id) {
            let holder = instances
                .iter()
                .find(|o| o.id == holder)
                .ok_or_else(|| CoreError::internal("switchover", "the key's holder is missing"))?;
            taken_from(holder)?;
            if holder.players > 0 && !force {
                return Err(CoreError::Conflict {
                    code: "players_connected",
                    message: format!(
                        "{} players are connected to {}; pass force to stop it anyway",
                        holder.players, holder.slug
                    ),
                });
            }
            self.store
                .set_desired_state(
                    &holder.slug,
                    DesiredState::Stopped,
                    Some(&format!(
                        "stopped by {}: its key went to another world",
                        caller.name()
                    )),
                    &NewEvent::success(
                        caller.name(),
                        "instance.stop",
                        format!("instance:{}", holder.slug),
                    )
                    .with_detail(format!("switchover: its license goes to {}", target.slug)),
                )
                .await?;
        }
        self.store
            .set_instance_license(
                &target.slug,
                Some(id),
                &NewEvent::success(caller.name(), "license.activate", format!("license:{id}"))
                    .with_detail(format!("for world {}", target.slug)),
            )
            .await?;
        let target = self
            .store
            .set_desired_state(
                &target.slug,
                DesiredState::Running,
                None,
                &NewEvent::success(
                    caller.name(),
                    "instance.start",
                    format!("instance:{}", target.slug),
                ),
            )
            .await?;
        self.wake_reconciler();
        self.view(target, None).await
    }
}
