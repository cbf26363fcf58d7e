//! How the core's views become the API's answers (the server's side only:
//! the `server` feature).

use tavern_core::{InstanceView, LicenseView};
use tavern_store::{Event, User};

use crate::dto::*;

impl From<&User> for UserJson {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username.to_string(),
            role: u.role.to_string(),
            tier: u.tier.clone(),
            email: u.email.clone(),
            created_at: u.created_at.to_string(),
        }
    }
}

impl From<InstanceView> for InstanceJson {
    fn from(v: InstanceView) -> Self {
        let i = v.instance;
        Self {
            slug: i.slug.to_string(),
            owner: v.owner.to_string(),
            url: v.url,
            release: i.release,
            runtime: i.runtime.to_string(),
            desired_state: i.desired_state.to_string(),
            state: i.state.to_string(),
            license: v.license.map(|(id, label)| LicenseRef {
                id: id.to_string(),
                label,
            }),
            state_reason: i.state_reason,
            players: i.players,
            sockets: i.sockets,
            world: i.world,
            foundry_version: i.foundry_version,
            last_activity_at: i.last_activity_at.map(|t| t.to_string()),
            idle_timeout_minutes: i.idle_timeout_minutes,
            wake_on_visit: i.wake_on_visit.map(|w| w.to_string()),
            created_at: i.created_at.to_string(),
            dns: v.dns.map(|d| DnsNameJson {
                host: d.host,
                state: d.state.as_str().to_owned(),
                error: d.error,
                checked_at: d.checked_at.map(|t| t.to_string()),
                next_attempt_at: d.next_attempt_at.map(|t| t.to_string()),
            }),
            storage: v.storage.map(|s| StorageJson {
                place: s.place,
                ready: s.ready,
                error: s.error,
                bytes: s.bytes,
                checked_at: s.checked_at.map(|t| t.to_string()),
            }),
            admin_key: v.admin_key,
        }
    }
}

impl From<LicenseView> for LicenseJson {
    fn from(v: LicenseView) -> Self {
        Self {
            id: v.license.id.to_string(),
            label: v.license.label,
            last4: v.license.key_last4,
            owner: v.owner.map(|o| o.to_string()),
            created_at: v.license.created_at.to_string(),
        }
    }
}

impl From<Event> for EventJson {
    fn from(e: Event) -> Self {
        Self {
            id: e.id.to_string(),
            at: e.at.to_string(),
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome.as_str().to_owned(),
            detail: e.detail,
        }
    }
}

impl From<tavern_core::SessionView> for SessionJson {
    fn from(v: tavern_core::SessionView) -> Self {
        let s = v.session;
        Self {
            id: s.id.to_string(),
            instance: v.instance.to_string(),
            start: s.starts_at.to_string(),
            end: s.ends_at.to_string(),
            license: LicenseRef {
                id: s.license.to_string(),
                label: v.license_label,
            },
            window_start: s.window_start.to_string(),
            window_end: s.window_end.to_string(),
            prepared: s.prepared_at.is_some(),
            created_by: s.created_by,
        }
    }
}

impl From<tavern_core::Overview> for OverviewJson {
    fn from(o: tavern_core::Overview) -> Self {
        Self {
            licenses: o
                .licenses
                .into_iter()
                .map(|(l, on)| OverviewLicense {
                    license: l.into(),
                    instance: on.as_ref().map(|i| i.slug.to_string()),
                    instance_state: on.as_ref().map(|i| i.state.to_string()),
                    players: on.as_ref().map(|i| i.players),
                })
                .collect(),
            sessions: o.sessions.into_iter().map(SessionJson::from).collect(),
            running: o.running.into_iter().map(InstanceJson::from).collect(),
            failed: o.failed.into_iter().map(InstanceJson::from).collect(),
            usage: o.usage.into(),
            supporters: o.supporters.into_iter().map(SupporterJson::from).collect(),
        }
    }
}

impl From<tavern_core::Migration> for MigrationJson {
    fn from(m: tavern_core::Migration) -> Self {
        let state = match (m.started_at, m.finished_at) {
            (None, _) => "none",
            (Some(_), None) => "running",
            (Some(_), Some(_)) => "done",
        };
        Self {
            state: state.into(),
            total: m.total,
            moved: m.moved,
            failed: m.failed,
            started_at: m.started_at.map(|t| t.to_string()),
            finished_at: m.finished_at.map(|t| t.to_string()),
        }
    }
}

impl From<tavern_core::BackupView> for BackupJson {
    fn from(v: tavern_core::BackupView) -> Self {
        let b = v.backup;
        let facts = b.archive.as_ref();
        Self {
            id: b.id.to_string(),
            instance: b.slug.to_string(),
            owner: v.owner.to_string(),
            kind: b.kind.to_string(),
            status: b.status.to_string(),
            live: b.live,
            locked: b.locked,
            created_by: b.created_by,
            created_at: b.created_at.to_string(),
            finished_at: b.finished_at.map(|t| t.to_string()),
            format: b.format.to_string(),
            size: facts.map(|f| f.size),
            sha256: facts.map(|f| f.sha256.clone()),
            files: facts.map(|f| f.files),
            bytes: facts.map(|f| f.bytes),
            error: b.error,
            restore: v.restore.map(|r| {
                let (state, error) = match r.state {
                    tavern_core::RestoreState::Running => ("running", None),
                    tavern_core::RestoreState::Done => ("done", None),
                    tavern_core::RestoreState::Failed(e) => ("failed", Some(e)),
                };
                RestoreJson {
                    to: r.to.to_string(),
                    state: state.into(),
                    error,
                    at: r.at.to_string(),
                    notes: r.notes,
                }
            }),
            packages: v.packages.map(|p| p.into_iter().map(Into::into).collect()),
        }
    }
}

impl From<tavern_core::UsageView> for UsageJson {
    fn from(v: tavern_core::UsageView) -> Self {
        let stored = v.stored;
        Self {
            stored_bytes: stored.as_ref().map(|m| m.values().sum()),
            month: v.month,
            from: v.from.to_string(),
            to: v.to.to_string(),
            rate_per_hour: v.rate_per_hour,
            currency: v.currency,
            users: v
                .users
                .into_iter()
                .map(|(name, u)| UserUsageJson {
                    user: name.to_string(),
                    hours: round2(u.hours),
                    seconds: seconds(u.hours),
                    worlds: u
                        .worlds
                        .into_iter()
                        .map(|(world, hours)| WorldHoursJson {
                            world,
                            hours: round2(hours),
                            seconds: seconds(hours),
                        })
                        .collect(),
                    cost: round2(u.cost),
                    credit: round2(u.credit),
                    due: round2(u.due),
                    stored_bytes: stored
                        .as_ref()
                        .map(|m| m.get(&u.user).copied().unwrap_or(0)),
                })
                .collect(),
            licenses: v
                .licenses
                .into_iter()
                .map(|(license, hours)| LicenseHoursJson {
                    license,
                    hours: round2(hours),
                    seconds: seconds(hours),
                })
                .collect(),
            hours: round2(v.hours),
            cost: round2(v.cost),
        }
    }
}

impl From<tavern_core::SupporterView> for SupporterJson {
    fn from(v: tavern_core::SupporterView) -> Self {
        Self {
            user: v.user.map(|u| u.to_string()),
            from_name: v.from_name,
            email: v.email,
            payments: v.payments,
            totals: v
                .totals
                .into_iter()
                .map(|(c, cents)| (c, cents as f64 / 100.0))
                .collect(),
            last_paid_at: v.last_paid_at.to_string(),
            tier_until: v.tier.as_ref().map(|(_, until)| until.to_string()),
            tier: v.tier.map(|(t, _)| t),
            credit: round2(v.credit),
        }
    }
}

impl From<tavern_core::InviteView> for InviteJson {
    fn from(v: tavern_core::InviteView) -> Self {
        let state = if v.spent(tavern_store::now()) {
            "spent"
        } else {
            "open"
        };
        let i = v.invite;
        Self {
            id: i.id.to_string(),
            role: i.role.to_string(),
            tier: i.tier,
            max_uses: i.max_uses,
            uses: i.uses,
            expires_at: i.expires_at.to_string(),
            state: state.to_owned(),
            created_by: i.created_by,
            created_at: i.created_at.to_string(),
            code: v.code,
            url: v.url,
        }
    }
}

impl From<tavern_store::Notification> for NotificationJson {
    fn from(n: tavern_store::Notification) -> Self {
        let status = match (n.delivered_at, n.gave_up_at) {
            (Some(_), _) => "delivered",
            (None, Some(_)) => "given_up",
            (None, None) => "pending",
        };
        Self {
            id: n.id,
            kind: n.kind,
            destination: n.destination,
            message: n.message,
            created_at: n.created_at.to_string(),
            attempts: n.attempts,
            status: status.to_owned(),
            next_attempt_at: n.next_attempt_at.to_string(),
            delivered_at: n.delivered_at.map(|t| t.to_string()),
            last_error: n.last_error,
        }
    }
}

/// Hours and money to two decimals, as people read them.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Hours as whole seconds.
fn seconds(hours: f64) -> u64 {
    (hours * 3600.0).round() as u64
}

impl From<&tavern_foundry::manifest::Package> for PackageJson {
    fn from(p: &tavern_foundry::manifest::Package) -> Self {
        Self {
            id: p.id.clone(),
            title: p.title.clone(),
            version: p.version.clone(),
            system: p.system.clone(),
            core_version: p.core_version.clone(),
        }
    }
}

impl From<tavern_core::ImportReport> for ImportJson {
    fn from(r: tavern_core::ImportReport) -> Self {
        use tavern_backup::import::layout::Shape;
        let l = r.layout;
        let (kind, root) = match l.shape {
            Shape::UserData { root } => ("user_data", root),
            Shape::World { root, .. } => ("world", root),
        };
        let packages = |list: &[tavern_foundry::manifest::Package]| {
            list.iter().map(PackageJson::from).collect()
        };
        Self {
            world: r.world,
            created: r.created,
            done: r.done,
            kind: kind.to_owned(),
            root,
            worlds: packages(&l.worlds),
            systems: packages(&l.systems),
            modules: packages(&l.modules),
            files: l.files,
            bytes: l.bytes,
            assets_bytes: l.assets_bytes,
            left_out: l
                .left_out
                .into_iter()
                .map(|o| LeftOutJson {
                    path: o.path,
                    files: o.files,
                    bytes: o.bytes,
                    why: o.why.to_owned(),
                })
                .collect(),
            warnings: r.warnings,
            license: r.license,
            release: r.release,
            backup: r.backup.map(|b| b.to_string()),
        }
    }
}
