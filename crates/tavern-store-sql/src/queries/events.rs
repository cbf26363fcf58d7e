//! The audit log.

use async_trait::async_trait;
use tavern_store::{Event, EventStore, NewEvent, Outcome, StoreResult};

use super::{Adapter, DbRow, col, commit, insert_event, read_all};
use crate::adapter::{backend, corrupt, parse, ts};

fn event_from(row: &DbRow) -> StoreResult<Event> {
    let outcome: String = col(row, "outcome")?;
    Ok(Event {
        id: parse("events.id", &col::<String>(row, "id")?)?,
        actor: col(row, "actor")?,
        action: col(row, "action")?,
        target: col(row, "target")?,
        outcome: Outcome::parse(&outcome).ok_or_else(|| corrupt("events.outcome", &outcome))?,
        detail: col(row, "detail")?,
        at: ts(col(row, "at")?)?,
    })
}

#[async_trait]
impl EventStore for Adapter {
    async fn append_event(&self, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn list_events(&self, limit: u32) -> StoreResult<Vec<Event>> {
        let q = sqlx::query(
            "SELECT id, at, actor, action, target, outcome, detail FROM events ORDER BY seq DESC LIMIT $1",
        )        .bind(i64::from(limit));
        read_all(&self.readers, q, "list events", event_from).await
    }

    async fn events_after(&self, seq: i64, limit: u32) -> StoreResult<Vec<(i64, Event)>> {
        let rows = sqlx::query(
            "SELECT seq, id, at, actor, action, target, outcome, detail FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(seq)
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await
        .map_err(backend("read events"))?;
        rows.iter()
            .map(|r| Ok((col::<i64>(r, "seq")?, event_from(r)?)))
            .collect()
    }

    async fn last_event_seq(&self) -> StoreResult<i64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(&self.readers)
            .await
            .map_err(backend("read events"))?;
        Ok(seq.unwrap_or(0))
    }
}
