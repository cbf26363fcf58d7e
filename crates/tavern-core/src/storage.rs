//! Worlds' object storage for Foundry's uploads (`[storage]`): each world's
//! place (a bucket, or a folder of a shared one) and a key that reaches
//! only it are made when it is made (or first started), what it holds is
//! counted, and once it is destroyed its key is deleted and its uploads
//! removed or kept by setting. Failures are retried with a backoff and
//! shown on the world, never holding it up. The key's secret is sealed in
//! the store and only ever written into the world's `Config/awsConfig.json`.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use tavern_storage::{Key, Place, StorageError, foundry_config};
use tavern_store::{Instance, NewEvent, Outcome, StoragePlace, now};
use tavern_types::{DesiredState, InstanceId, Slug};
use tokio_util::sync::CancellationToken;

use crate::error::CoreError;
use crate::policy::kept::{Step, due, retry_after};
use crate::tavern::Tavern;

/// How often the leader looks for due places, at most (worlds made or
/// destroyed wake it sooner).
const TICK: Duration = Duration::from_secs(30);

pub use crate::uploads::WorldUploads;

/// Keeps the worlds' storage until `cancel`.
pub async fn run(tavern: Tavern, cancel: CancellationToken) {
    let Some(uploads) = tavern.uploads.clone() else {
        return;
    };
    let tick = uploads
        .recount
        .unsigned_abs()
        .clamp(Duration::from_secs(1), TICK);
    loop {
        if let Err(e) = tavern.keep_world_storage().await {
            tracing::warn!(error = %e, "storage: reading the worlds' places failed; will retry");
        }
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(tick) => {}
            () = tavern.storage_wake.notified() => {}
        }
    }
}

fn event(slug: &Slug, action: &str, outcome: Outcome, detail: String) -> NewEvent {
    let mut e = NewEvent::success("system", action, format!("storage:{slug}")).with_detail(detail);
    e.outcome = outcome;
    e
}

fn place_of(row: &StoragePlace) -> Place {
    Place {
        bucket: row.bucket.clone(),
        folder: row.folder.clone(),
        user: row.user.clone(),
    }
}

impl Tavern {
    /// One pass: every due place looked at, one after the other.
    pub async fn keep_world_storage(&self) -> Result<(), CoreError> {
        let Some(up) = self.uploads.clone() else {
            return Ok(());
        };
        let wanted: BTreeMap<InstanceId, Slug> = self
            .store
            .list_instances(None)
            .await?
            .into_iter()
            .filter(|i| i.desired_state != DesiredState::Destroyed)
            .map(|i| (i.id, i.slug))
            .collect();
        let known = self.store.list_storage_places().await?;
        for step in due(&wanted, &known, now()) {
            match step {
                Step::Ensure { key, world, .. } => {
                    let _making = up.making.lock().await;
                    // Read again: a world's start may have made it meanwhile
                    // (making it again would delete the key it started with).
                    let known = self.store.storage_place(key).await?;
                    self.ensure_place(&up, key, &world, known).await?;
                }
                Step::Remove(row) => self.remove_place(&up, row).await?,
            }
        }
        Ok(())
    }

    /// Makes `id`'s place (when it is not ready) or counts what it holds.
    async fn ensure_place(
        &self,
        up: &WorldUploads,
        id: InstanceId,
        slug: &Slug,
        known: Option<StoragePlace>,
    ) -> Result<StoragePlace, CoreError> {
        let at = now();
        let row = known.unwrap_or_else(|| {
            let place = up.storage.layout().place(slug, id);
            StoragePlace {
                instance: id,
                slug: slug.clone(),
                bucket: place.bucket,
                folder: place.folder,
                user: place.user,
                access_key_id: None,
                secret_sealed: None,
                ready: false,
                error: None,
                attempts: 0,
                bytes: None,
                checked_at: at,
                next_attempt_at: at,
            }
        });
        let place = place_of(&row);
        let (row, event) = if row.ready {
            match up.storage.usage(&place).await {
                Ok(bytes) => (
                    StoragePlace {
                        bytes: Some(bytes),
                        error: None,
                        attempts: 0,
                        checked_at: at,
                        next_attempt_at: at + up.recount,
                        ..row
                    },
                    None,
                ),
                Err(err) => failed(row, "storage.count", &err, up.recount),
            }
        } else {
            let origin = match place.folder {
                Some(_) => self.settings.every_world_origin(),
                None => self.settings.world_origin(slug),
            };
            match self.provision(up, &place, &origin).await {
                Ok((key, sealed)) => {
                    let bytes = up.storage.usage(&place).await.ok();
                    let e = event(
                        slug,
                        "storage.make",
                        Outcome::Success,
                        format!(
                            "{slug}'s uploads go to {} with a key of their own ({})",
                            place.words(),
                            key.access_key_id
                        ),
                    );
                    (
                        StoragePlace {
                            access_key_id: Some(key.access_key_id),
                            secret_sealed: Some(sealed),
                            ready: true,
                            error: None,
                            attempts: 0,
                            bytes,
                            checked_at: at,
                            next_attempt_at: at + up.recount,
                            ..row
                        },
                        Some(e),
                    )
                }
                Err(err) => failed(row, "storage.make", &err, up.recount),
            }
        };
        self.store.put_storage_place(&row, event.as_ref()).await?;
        Ok(row)
    }

    /// The place made ready and its key, with the key's secret sealed.
    async fn provision(
        &self,
        up: &WorldUploads,
        place: &Place,
        origin: &str,
    ) -> Result<(Key, Vec<u8>), StorageError> {
        let key = up.storage.provision(place, origin).await?;
        let sealed = self
            .secrets
            .seal(key.secret.expose_secret().as_bytes())
            .map_err(|e| StorageError::Invalid(format!("sealing the world's key: {e}")))?;
        Ok((key, sealed))
    }

    /// Deletes a destroyed world's key, and its uploads unless they are kept.
    async fn remove_place(&self, up: &WorldUploads, row: StoragePlace) -> Result<(), CoreError> {
        let place = place_of(&row);
        match up.storage.remove(&place, !up.keep_on_destroy).await {
            Ok(()) => {
                let detail = match up.keep_on_destroy {
                    true => format!(
                        "{} is gone; its uploads are kept in {}, its key is deleted",
                        row.slug,
                        place.words()
                    ),
                    false => format!(
                        "{} is gone; so are its uploads in {}",
                        row.slug,
                        place.words()
                    ),
                };
                let e = event(&row.slug, "storage.remove", Outcome::Success, detail);
                self.store.delete_storage_place(row.instance, &e).await?;
            }
            Err(err) => {
                let (row, e) = failed(row, "storage.remove", &err, up.recount);
                self.store.put_storage_place(&row, e.as_ref()).await?;
            }
        }
        Ok(())
    }

    /// The world's `awsConfig` file, when worlds have storage. With `make`
    /// (a start) its place is made first if it is not ready yet (one
    /// attempt; a world whose place fails starts without it, and the
    /// leader tries again).
    pub(crate) async fn aws_config(
        &self,
        i: &Instance,
        make: bool,
    ) -> Result<Option<SecretString>, CoreError> {
        let Some(up) = self.uploads.clone() else {
            return Ok(None);
        };
        let mut row = self.store.storage_place(i.id).await?;
        if make && !row.as_ref().is_some_and(|r| r.ready) {
            let _making = up.making.lock().await;
            row = self.store.storage_place(i.id).await?;
            if !row.as_ref().is_some_and(|r| r.ready) {
                row = Some(self.ensure_place(&up, i.id, &i.slug, row).await?);
            }
        }
        let Some(row) = row.filter(|r| r.ready) else {
            return Ok(None);
        };
        let (Some(id), Some(sealed)) = (&row.access_key_id, &row.secret_sealed) else {
            return Ok(None);
        };
        let secret = self
            .secrets
            .open(sealed)
            .map_err(|e| CoreError::internal("open a world's storage key", e))?;
        let secret = String::from_utf8(secret)
            .map_err(|e| CoreError::internal("open a world's storage key", e))?;
        let key = Key {
            access_key_id: id.clone(),
            secret: secret.into(),
        };
        let text = foundry_config(up.storage.endpoint(), &place_of(&row), &key);
        Ok(Some(text.into()))
    }

    /// Wakes the keepers of worlds' names and storage: a world came or went.
    pub(crate) fn worlds_changed(&self) {
        self.dns_wake.notify_one();
        self.storage_wake.notify_one();
    }
}

/// A failed attempt: recorded, retried later, news only the first time.
fn failed(
    row: StoragePlace,
    action: &str,
    err: &StorageError,
    recount: SignedDuration,
) -> (StoragePlace, Option<NewEvent>) {
    let at = now();
    let attempts = row.attempts.saturating_add(1);
    let error = err.to_string();
    tracing::warn!(world = %row.slug, attempts, error = %error, "storage: {action} failed; will retry");
    let e = (attempts == 1).then(|| event(&row.slug, action, Outcome::Failure, error.clone()));
    (
        StoragePlace {
            error: Some(error),
            attempts,
            checked_at: at,
            next_attempt_at: at + retry_after(attempts, recount),
            ..row
        },
        e,
    )
}

/// How a world's storage fares, for its page: never its key's secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageStatus {
    /// `bucket` or `bucket/folder`.
    pub place: String,
    pub ready: bool,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// Bytes stored there when last counted.
    pub bytes: Option<u64>,
    pub checked_at: Option<Timestamp>,
}

impl StorageStatus {
    /// A world's storage as its row (if any) has it; `place`: where it
    /// will be, before a row exists.
    pub fn of(place: &Place, row: Option<&StoragePlace>) -> Self {
        match row {
            None => StorageStatus {
                place: place.words(),
                ready: false,
                error: None,
                bytes: None,
                checked_at: None,
            },
            Some(r) => StorageStatus {
                place: place_of(r).words(),
                ready: r.ready,
                error: r.error.clone(),
                bytes: r.bytes,
                checked_at: Some(r.checked_at),
            },
        }
    }
}
