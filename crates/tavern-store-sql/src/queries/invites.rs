//! Invitations, and spending one of their uses on a new user.

use async_trait::async_trait;
use tavern_store::{Invite, InviteStore, NewEvent, StoreError, StoreResult, User};
use tavern_types::InviteId;

use super::users::insert_user;
use super::{Adapter, DbRow, col, commit, insert_event, read_all, read_one, touched, unique_or};
use crate::adapter::{backend, corrupt, parse, ts};

fn invite_from(row: &DbRow) -> StoreResult<Invite> {
    let small = |name: &'static str| -> StoreResult<u32> {
        u32::try_from(col::<i64>(row, name)?).map_err(|e| corrupt(name, e))
    };
    Ok(Invite {
        id: parse("invites.id", &col::<String>(row, "id")?)?,
        code_hash: col(row, "code_hash")?,
        role: parse("invites.role", &col::<String>(row, "role")?)?,
        tier: col(row, "tier")?,
        max_uses: small("max_uses")?,
        uses: small("uses")?,
        expires_at: ts(col(row, "expires_at")?)?,
        created_by: col(row, "created_by")?,
        created_at: ts(col(row, "created_at")?)?,
    })
}

#[async_trait]
impl InviteStore for Adapter {
    async fn create_invite(&self, i: &Invite, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(concat!(
            "INSERT INTO invites (",
            invite_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(i.id.to_string())
        .bind(&i.code_hash)
        .bind(i.role.as_str())
        .bind(&i.tier)
        .bind(i64::from(i.max_uses))
        .bind(i64::from(i.uses))
        .bind(i.expires_at.as_microsecond())
        .bind(&i.created_by)
        .bind(i.created_at.as_microsecond())
        .execute(&mut *tx)
        .await
        .map_err(unique_or("invite", &i.id.to_string(), "insert invite"))?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn list_invites(&self) -> StoreResult<Vec<Invite>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            invite_cols!(),
            " FROM invites ORDER BY created_at, id"
        ));
        read_all(&self.readers, q, "list invites", invite_from).await
    }

    async fn invite_by_code(&self, code_hash: &str) -> StoreResult<Option<Invite>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            invite_cols!(),
            " FROM invites WHERE code_hash = $1"
        ))
        .bind(code_hash);
        read_one(&self.readers, q, "get invite", invite_from).await
    }

    async fn delete_invite(&self, id: InviteId, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM invites WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("delete invite"))?;
        touched(&done, "invite", id)?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn accept_invite(
        &self,
        code_hash: &str,
        user: &User,
        event: &NewEvent,
    ) -> StoreResult<Invite> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(concat!(
            "UPDATE invites SET uses = uses + 1 WHERE code_hash = $1 AND uses < max_uses AND expires_at > $2 RETURNING ",
            invite_cols!()
        ))
        .bind(code_hash)
        .bind(user.created_at.as_microsecond())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend("accept invite"))?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                what: "invite",
                key: "(hidden)".into(),
            });
        };
        let invite = invite_from(&row)?;
        insert_user(&mut tx, user).await?;
        insert_event(&mut tx, event).await?;
        commit(tx).await?;
        Ok(invite)
    }
}
