//! What only admins see: the overview of keys, sessions, running and
//! failed worlds, usage and supporters; and the audit log.

use tavern_store::{Event, Instance};
use tavern_types::ObservedState;

use crate::auth::Caller;
use crate::error::CoreError;
use crate::instances::InstanceView;
use crate::licenses::LicenseView;
use crate::tavern::Tavern;

/// What an admin sees at a glance: every key and the world on it, the
/// reservations to come, and the worlds that run or have failed.
#[derive(Clone, Debug)]
pub struct Overview {
    pub licenses: Vec<(LicenseView, Option<Instance>)>,
    /// Sessions whose window has not ended, by start.
    pub sessions: Vec<crate::sessions::SessionView>,
    pub running: Vec<InstanceView>,
    pub failed: Vec<InstanceView>,
    /// This month's usage, everyone's.
    pub usage: crate::usage::UsageView,
    /// Everyone who has paid through Ko-fi, latest first.
    pub supporters: Vec<crate::supporters::SupporterView>,
}

impl Tavern {
    /// Every key with the world on it, the worlds running or failed, this
    /// month's usage and the supporters.
    pub async fn admin_overview(&self, caller: &Caller) -> Result<Overview, CoreError> {
        caller.require_admin("see the overview")?;
        let instances = self.list_instances(caller).await?;
        let licenses = self
            .list_licenses(caller)
            .await?
            .into_iter()
            .map(|l| {
                let on = l
                    .license
                    .bound_to
                    .and_then(|id| instances.iter().find(|v| v.instance.id == id))
                    .map(|v| v.instance.clone());
                (l, on)
            })
            .collect();
        let (mut running, mut failed) = (Vec::new(), Vec::new());
        for v in instances {
            match v.instance.state {
                ObservedState::Failed => failed.push(v),
                ObservedState::Stopped => {}
                _ => running.push(v),
            }
        }
        Ok(Overview {
            licenses,
            sessions: self.list_sessions(caller).await?,
            running,
            failed,
            usage: self.usage_report(caller, None, None).await?,
            supporters: self.supporters(caller).await?,
        })
    }

    pub async fn list_events(&self, caller: &Caller, limit: u32) -> Result<Vec<Event>, CoreError> {
        caller.require_admin("read the audit log")?;
        Ok(self.store.list_events(limit.clamp(1, 1000)).await?)
    }
}
