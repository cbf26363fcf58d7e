//! Scheduled sessions; the database refuses two overlapping windows on one
//! key.

use async_trait::async_trait;
use jiff::Timestamp;
use tavern_store::{NewEvent, Session, SessionStore, StoreError, StoreResult};
use tavern_types::{LicenseId, SessionId};

use super::{Adapter, DbRow, col, commit, insert_event, read_all, read_one, touched, unique_or};
use crate::adapter::{EXCLUSION_VIOLATION, backend, opt_ts, parse, ts};

fn session_from(row: &DbRow) -> StoreResult<Session> {
    Ok(Session {
        id: parse("sessions.id", &col::<String>(row, "id")?)?,
        instance: parse("sessions.instance_id", &col::<String>(row, "instance_id")?)?,
        license: parse("sessions.license_id", &col::<String>(row, "license_id")?)?,
        starts_at: ts(col(row, "starts_at")?)?,
        ends_at: ts(col(row, "ends_at")?)?,
        window_start: ts(col(row, "window_start")?)?,
        window_end: ts(col(row, "window_end")?)?,
        created_by: col(row, "created_by")?,
        created_at: ts(col(row, "created_at")?)?,
        prepared_at: opt_ts(col(row, "prepared_at")?)?,
        reminded_at: opt_ts(col(row, "reminded_at")?)?,
    })
}

#[async_trait]
impl SessionStore for Adapter {
    async fn create_session(
        &self,
        session: &Session,
        moves: &[(SessionId, LicenseId)],
        event: &NewEvent,
    ) -> StoreResult<()> {
        let conflict = || StoreError::Conflict {
            what: "reservation",
            key: session.id.to_string(),
        };
        let mut tx = self.begin().await?;
        for (id, license) in moves {
            let done = sqlx::query(
                "UPDATE sessions SET license_id = $1 WHERE id = $2 AND prepared_at IS NULL",
            )
            .bind(license.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("move session"))?;
            if done.rows_affected() == 0 {
                return Err(conflict());
            }
        }
        let inserted = sqlx::query(concat!(
            "INSERT INTO sessions (",
            session_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(session.id.to_string())
        .bind(session.instance.to_string())
        .bind(session.license.to_string())
        .bind(session.starts_at.as_microsecond())
        .bind(session.ends_at.as_microsecond())
        .bind(session.window_start.as_microsecond())
        .bind(session.window_end.as_microsecond())
        .bind(&session.created_by)
        .bind(session.created_at.as_microsecond())
        .bind(session.prepared_at.map(|t| t.as_microsecond()))
        .bind(session.reminded_at.map(|t| t.as_microsecond()))
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
                return Err(StoreError::NotFound {
                    what: "instance or license",
                    key: format!("{} / {}", session.instance, session.license),
                });
            }
            Err(e) => {
                return Err(unique_or(
                    "session",
                    &session.id.to_string(),
                    "insert session",
                )(e));
            }
        }
        // The rule itself, checked on every key this transaction touched.
        let touched = std::iter::once(session.license).chain(moves.iter().map(|(_, l)| *l));
        for license in touched {
            let overlap: Option<String> = sqlx::query_scalar(
                "SELECT a.id FROM sessions a JOIN sessions b \
                 ON a.license_id = b.license_id AND a.id < b.id \
                 AND a.window_start < b.window_end AND b.window_start < a.window_end \
                 WHERE a.license_id = $1 LIMIT 1",
            )
            .bind(license.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend("check reservations"))?;
            if overlap.is_some() {
                return Err(conflict());
            }
        }
        insert_event(&mut tx, event).await?;
        // PostgreSQL's exclusion constraint checks again at commit.
        tx.commit().await.map_err(|e| match &e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some(EXCLUSION_VIOLATION) => {
                conflict()
            }
            _ => backend("commit")(e),
        })
    }

    async fn session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            session_cols!(),
            " FROM sessions WHERE id = $1"
        ))
        .bind(id.to_string());
        read_one(&self.readers, q, "get session", session_from).await
    }

    async fn list_sessions(&self, after: Timestamp) -> StoreResult<Vec<Session>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            session_cols!(),
            " FROM sessions WHERE window_end > $1 ORDER BY starts_at, id"
        ))
        .bind(after.as_microsecond());
        read_all(&self.readers, q, "list sessions", session_from).await
    }

    async fn delete_session(&self, id: SessionId, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("delete session"))?;
        touched(&done, "session", id)?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn mark_session_reminded(&self, id: SessionId, event: &NewEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE sessions SET reminded_at = $1 WHERE id = $2 AND reminded_at IS NULL",
        )
        .bind(event.at.as_microsecond())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(backend("mark session reminded"))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_event(&mut tx, event).await?;
        commit(tx).await?;
        Ok(true)
    }
}
