//! Notifications: what happens to worlds, sessions, keys and backups, told
//! to the community's Discord webhook and to a user's own. The outbox is
//! filled from the audit log past a durable cursor (so the action that
//! raised a notice never waits for it) and delivered at least once by a
//! [`WebhookSender`], retried with backoff while the receiver is down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use tavern_store::{Delivery, NewEvent, NewNotification, Notification, now};
use tavern_types::{BackupId, Slug, UserId};
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;
use crate::checks;
use crate::error::CoreError;
use crate::policy::notifications::{backoff, message, notice_for};
use crate::tavern::Tavern;
use crate::words::minutes;

/// Events read from the audit log at a time.
const BATCH: u32 = 200;
/// Discord refuses longer messages.
const MAX_MESSAGE: usize = 2000;

/// Why a delivery failed; never holds the webhook's address.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub message: String,
    /// The receiver asked for this wait (HTTP 429).
    pub retry_after: Option<Duration>,
}

/// Posts a message to a webhook (Discord's `{"content": …}`).
#[async_trait::async_trait]
pub trait WebhookSender: Send + Sync + 'static {
    async fn post(&self, url: &str, message: &str) -> Result<(), SendError>;
}

/// Where a notification goes.
fn user_destination(id: UserId) -> String {
    format!("user:{id}")
}

/// Fills and delivers the outbox until `cancel`, every `period`.
pub async fn run_outbox(
    tavern: Tavern,
    sender: Arc<dyn WebhookSender>,
    period: Duration,
    cancel: CancellationToken,
) {
    loop {
        if let Err(e) = tavern.fill_outbox().await {
            tracing::warn!(error = %e, "reading the audit log for notifications failed; will retry");
        }
        if let Err(e) = tavern.deliver_due(sender.as_ref()).await {
            tracing::warn!(error = %e, "delivering notifications failed; will retry");
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(period) => {}
        }
    }
}

impl Tavern {
    /// Turns the audit events past the outbox's cursor into notifications
    /// (one for the community webhook, one for the owner's own), and moves
    /// the cursor, in one transaction. The first time, the cursor starts
    /// at the newest event: history is not told again.
    pub async fn fill_outbox(&self) -> Result<usize, CoreError> {
        let Some(cursor) = self.store.outbox_cursor().await? else {
            let last = self.store.last_event_seq().await?;
            self.store.enqueue_notifications(None, last, &[]).await?;
            return Ok(0);
        };
        let events = self.store.events_after(cursor, BATCH).await?;
        let Some((to, _)) = events.last() else {
            return Ok(0);
        };
        let community = self.settings.notify.community_webhook.is_some();
        let mut owners: HashMap<String, Option<(String, UserId)>> = HashMap::new();
        let mut hooks: HashMap<UserId, bool> = HashMap::new();
        let mut items = Vec::new();
        for (_, e) in &events {
            let Some(notice) = notice_for(e) else {
                continue;
            };
            if !owners.contains_key(&notice.target) {
                let found = self.subject(&notice.target).await?;
                owners.insert(notice.target.clone(), found);
            }
            let subject = owners[&notice.target].clone();
            let world = subject.as_ref().map_or_else(
                || {
                    notice
                        .target
                        .split_once(':')
                        .map_or("?", |(_, n)| n)
                        .to_owned()
                },
                |(slug, _)| slug.clone(),
            );
            let text: String = message(notice.kind, &world, e.detail.as_deref())
                .chars()
                .take(MAX_MESSAGE)
                .collect();
            let to_item = |destination: String| NewNotification {
                kind: notice.kind.to_owned(),
                destination,
                message: text.clone(),
                created_at: e.at,
            };
            if community {
                items.push(to_item("community".into()));
            }
            if let Some((_, owner)) = subject {
                let has = match hooks.get(&owner) {
                    Some(h) => *h,
                    None => {
                        let h = self.store.user_webhook(owner).await?.is_some();
                        hooks.insert(owner, h);
                        h
                    }
                };
                if has {
                    items.push(to_item(user_destination(owner)));
                }
            }
        }
        let n = items.len();
        if !self
            .store
            .enqueue_notifications(Some(cursor), *to, &items)
            .await?
        {
            // Another Tavern moved the cursor first; it took these.
            return Ok(0);
        }
        Ok(n)
    }

    /// The world an event's target is about, and its owner.
    async fn subject(&self, target: &str) -> Result<Option<(String, UserId)>, CoreError> {
        Ok(match target.split_once(':') {
            Some(("instance", slug)) => match Slug::parse(slug) {
                Ok(slug) => self
                    .store
                    .instance(&slug)
                    .await?
                    .map(|i| (i.slug.to_string(), i.owner)),
                Err(_) => None,
            },
            Some(("backup", id)) => match id.parse::<BackupId>() {
                Ok(id) => self
                    .store
                    .backup(id)
                    .await?
                    .map(|b| (b.slug.to_string(), b.owner)),
                Err(_) => None,
            },
            _ => None,
        })
    }

    /// Tries every notification that is due; answers how many went out.
    pub async fn deliver_due(&self, sender: &dyn WebhookSender) -> Result<usize, CoreError> {
        let due = self.store.due_notifications(now(), 50).await?;
        let mut delivered = 0;
        for n in due {
            let outcome = match self.webhook_of(&n).await? {
                Err(why) => Delivery::GaveUp {
                    at: now(),
                    error: why,
                },
                Ok(url) => match sender.post(&url, &n.message).await {
                    Ok(()) => {
                        delivered += 1;
                        Delivery::Delivered { at: now() }
                    }
                    Err(e) => self.after_failure(&n, e),
                },
            };
            if let Delivery::GaveUp { error, .. } = &outcome {
                tracing::warn!(id = n.id, kind = %n.kind, destination = %n.destination, error = %error, "a notification was given up");
            }
            self.store.finish_notification(n.id, &outcome).await?;
        }
        Ok(delivered)
    }

    /// The next try after a failed one, or giving up when it is too old.
    fn after_failure(&self, n: &Notification, e: SendError) -> Delivery {
        let s = &self.settings.notify;
        let at = now();
        if at.duration_since(n.created_at) >= s.give_up_after {
            return Delivery::GaveUp {
                at,
                error: e.message,
            };
        }
        let wait = backoff(n.attempts + 1, s.retry_initial, s.retry_max)
            .max(e.retry_after.unwrap_or_default());
        tracing::debug!(id = n.id, error = %e.message, ?wait, "a notification will be tried again");
        Delivery::Retry {
            next_attempt_at: at + SignedDuration::try_from(wait).unwrap_or(SignedDuration::MAX),
            error: e.message,
        }
    }

    /// The address a notification goes to, or why it has none.
    async fn webhook_of(&self, n: &Notification) -> Result<Result<String, String>, CoreError> {
        if n.destination == "community" {
            return Ok(self
                .settings
                .notify
                .community_webhook
                .clone()
                .ok_or_else(|| "no community webhook is configured".into()));
        }
        let Some(id) = n
            .destination
            .strip_prefix("user:")
            .and_then(|id| id.parse::<UserId>().ok())
        else {
            return Ok(Err(format!("unknown destination {}", n.destination)));
        };
        let Some(sealed) = self.store.user_webhook(id).await? else {
            return Ok(Err("the user has no webhook any more".into()));
        };
        let clear = self
            .secrets
            .open(&sealed)
            .map_err(|e| CoreError::internal("open webhook", e))?;
        Ok(String::from_utf8(clear).map_err(|_| "the stored webhook is not text".to_owned()))
    }

    /// Sets or clears `username`'s own webhook: themselves, or an admin.
    /// The address is kept sealed and never shown again.
    pub async fn set_user_webhook(
        &self,
        caller: &Caller,
        username: &str,
        url: Option<&str>,
    ) -> Result<(), CoreError> {
        let target = self.user_named("username", username).await?;
        if target.id != caller.user.id {
            caller.require_admin("set another user's webhook")?;
        }
        let sealed = match url.map(checks::webhook).transpose()? {
            Some(u) => Some(
                self.secrets
                    .seal(u.as_bytes())
                    .map_err(|e| CoreError::internal("seal webhook", e))?,
            ),
            None => None,
        };
        self.store
            .set_user_webhook(
                target.id,
                sealed.as_deref(),
                &NewEvent::success(
                    caller.name(),
                    "user.webhook",
                    format!("user:{}", target.username),
                )
                .with_detail(if sealed.is_some() { "set" } else { "cleared" }),
            )
            .await?;
        Ok(())
    }

    /// Reminds owners of sessions that begin within the reminder lead
    /// (once per session: the store marks it); answers how many.
    pub async fn remind_sessions(&self) -> Result<usize, CoreError> {
        let at = now();
        let lead = self.settings.notify.reminder_before;
        let sessions = self.store.list_sessions(at).await?;
        let soon: Vec<_> = sessions
            .iter()
            .filter(|s| s.reminded_at.is_none() && at < s.starts_at && s.starts_at - lead <= at)
            .collect();
        if soon.is_empty() {
            return Ok(0);
        }
        let instances = self.store.list_instances(None).await?;
        let mut reminded = 0;
        for s in soon {
            let Some(i) = instances.iter().find(|i| i.id == s.instance) else {
                continue;
            };
            let event =
                NewEvent::success("system", "session.reminder", format!("instance:{}", i.slug))
                    .with_detail(format!(
                        "from {} to {} (UTC)",
                        minutes(s.starts_at),
                        minutes(s.ends_at)
                    ));
            if self.store.mark_session_reminded(s.id, &event).await? {
                reminded += 1;
            }
        }
        Ok(reminded)
    }

    /// The newest notifications, for admins.
    pub async fn list_notifications(
        &self,
        caller: &Caller,
        limit: u32,
    ) -> Result<Vec<Notification>, CoreError> {
        caller.require_admin("read notifications")?;
        Ok(self.store.list_notifications(limit.clamp(1, 1000)).await?)
    }
}
