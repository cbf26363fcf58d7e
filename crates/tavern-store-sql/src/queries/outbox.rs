//! The notification outbox and its cursor into the audit log.

use async_trait::async_trait;
use jiff::Timestamp;
use tavern_store::{Delivery, NewNotification, Notification, OutboxStore, StoreResult};

use super::{Adapter, DbRow, col, commit, read_all, touched};
use crate::adapter::{backend, corrupt, opt_ts, ts};

fn notification_from(row: &DbRow) -> StoreResult<Notification> {
    Ok(Notification {
        id: col(row, "id")?,
        kind: col(row, "kind")?,
        destination: col(row, "destination")?,
        message: col(row, "message")?,
        created_at: ts(col(row, "created_at")?)?,
        attempts: u32::try_from(col::<i64>(row, "attempts")?)
            .map_err(|e| corrupt("outbox.attempts", e))?,
        next_attempt_at: ts(col(row, "next_attempt_at")?)?,
        last_error: col(row, "last_error")?,
        delivered_at: opt_ts(col(row, "delivered_at")?)?,
        gave_up_at: opt_ts(col(row, "gave_up_at")?)?,
    })
}

#[async_trait]
impl OutboxStore for Adapter {
    async fn outbox_cursor(&self) -> StoreResult<Option<i64>> {
        sqlx::query_scalar("SELECT event_seq FROM outbox_cursor WHERE id = 1")
            .fetch_optional(&self.readers)
            .await
            .map_err(backend("read outbox cursor"))
    }

    async fn enqueue_notifications(
        &self,
        from: Option<i64>,
        to: i64,
        items: &[NewNotification],
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let moved = match from {
            None => sqlx::query(
                "INSERT INTO outbox_cursor (id, event_seq) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
            )
            .bind(to)
            .execute(&mut *tx)
            .await,
            Some(from) => sqlx::query(
                "UPDATE outbox_cursor SET event_seq = $1 WHERE id = 1 AND event_seq = $2",
            )
            .bind(to)
            .bind(from)
            .execute(&mut *tx)
            .await,
        }
        .map_err(backend("move outbox cursor"))?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        for n in items {
            sqlx::query(
                "INSERT INTO outbox (kind, destination, message, created_at, attempts, next_attempt_at) VALUES ($1, $2, $3, $4, 0, $5)",
            )
            .bind(&n.kind)
            .bind(&n.destination)
            .bind(&n.message)
            .bind(n.created_at.as_microsecond())
            .bind(n.created_at.as_microsecond())
            .execute(&mut *tx)
            .await
            .map_err(backend("enqueue notification"))?;
        }
        commit(tx).await?;
        Ok(true)
    }

    async fn due_notifications(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Notification>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            notification_cols!(),
            " FROM outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT $2"
        ))
        .bind(now.as_microsecond())
        .bind(i64::from(limit));
        read_all(&self.readers, q, "due notifications", notification_from).await
    }

    async fn finish_notification(&self, id: i64, outcome: &Delivery) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let q = match outcome {
            Delivery::Delivered { at } => sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, delivered_at = $1, last_error = NULL WHERE id = $2",
            )
            .bind(at.as_microsecond()),
            Delivery::Retry { next_attempt_at, error } => sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 WHERE id = $3",
            )
            .bind(next_attempt_at.as_microsecond())
            .bind(error.as_str()),
            Delivery::GaveUp { at, error } => sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, gave_up_at = $1, last_error = $2 WHERE id = $3",
            )
            .bind(at.as_microsecond())
            .bind(error.as_str()),
        };
        let done = q
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend("finish notification"))?;
        touched(&done, "notification", id)?;
        commit(tx).await
    }

    async fn list_notifications(&self, limit: u32) -> StoreResult<Vec<Notification>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            notification_cols!(),
            " FROM outbox ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::from(limit));
        read_all(&self.readers, q, "list notifications", notification_from).await
    }
}
