//! The worlds' names Tavern keeps in DNS, and how the last attempt on each
//! went.

use async_trait::async_trait;
use tavern_store::{DnsName, DnsStore, NewEvent, StoreResult};
use tavern_types::Slug;

use super::{Adapter, DbRow, col, commit, insert_event, read_all, read_one, touched};
use crate::adapter::{backend, corrupt, ts};

fn dns_name_from(row: &DbRow) -> StoreResult<DnsName> {
    Ok(DnsName {
        host: col(row, "host")?,
        slug: Slug::parse(&col::<String>(row, "slug")?)
            .map_err(|e| corrupt("dns_names.slug", e))?,
        held: col(row, "held")?,
        error: col(row, "error")?,
        attempts: u32::try_from(col::<i64>(row, "attempts")?)
            .map_err(|e| corrupt("dns_names.attempts", e))?,
        checked_at: ts(col(row, "checked_at")?)?,
        next_attempt_at: ts(col(row, "next_attempt_at")?)?,
    })
}

#[async_trait]
impl DnsStore for Adapter {
    async fn list_dns_names(&self) -> StoreResult<Vec<DnsName>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            dns_cols!(),
            " FROM dns_names ORDER BY host"
        ));
        read_all(&self.readers, q, "list dns names", dns_name_from).await
    }

    async fn dns_name(&self, host: &str) -> StoreResult<Option<DnsName>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            dns_cols!(),
            " FROM dns_names WHERE host = $1"
        ))
        .bind(host);
        read_one(&self.readers, q, "read dns name", dns_name_from).await
    }

    async fn put_dns_name(&self, name: &DnsName, event: Option<&NewEvent>) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(concat!(
            "INSERT INTO dns_names (",
            dns_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (host) DO UPDATE SET \
             slug = excluded.slug, held = excluded.held, error = excluded.error, \
             attempts = excluded.attempts, checked_at = excluded.checked_at, \
             next_attempt_at = excluded.next_attempt_at"
        ))
        .bind(&name.host)
        .bind(name.slug.as_str())
        .bind(name.held)
        .bind(name.error.as_deref())
        .bind(i64::from(name.attempts))
        .bind(name.checked_at.as_microsecond())
        .bind(name.next_attempt_at.as_microsecond())
        .execute(&mut *tx)
        .await
        .map_err(backend("write dns name"))?;
        if let Some(e) = event {
            insert_event(&mut tx, e).await?;
        }
        commit(tx).await
    }

    async fn delete_dns_name(&self, host: &str, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM dns_names WHERE host = $1")
            .bind(host)
            .execute(&mut *tx)
            .await
            .map_err(backend("delete dns name"))?;
        touched(&done, "dns name", host)?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }
}
