//! Second factors of password accounts (a TOTP secret, its last used time
//! step, its hashed recovery codes) and the outside accounts users sign in
//! with.

use async_trait::async_trait;
use jiff::Timestamp;
use tavern_store::{Identity, NewEvent, SignInStore, StoreError, StoreResult, TotpFactor, User};
use tavern_types::UserId;

use super::users::user_from;
use super::{
    Adapter, DbRow, USER, col, commit, insert_event, must_exist, read_all, read_one, unique_or,
};
use crate::adapter::{backend, opt_ts, parse, ts};

fn totp_from(row: &DbRow) -> StoreResult<TotpFactor> {
    Ok(TotpFactor {
        user: parse("user_totp.user_id", &col::<String>(row, "user_id")?)?,
        secret_sealed: col(row, "secret_sealed")?,
        created_at: ts(col(row, "created_at")?)?,
        confirmed_at: opt_ts(col(row, "confirmed_at")?)?,
        last_step: col(row, "last_step")?,
    })
}

fn identity_from(row: &DbRow) -> StoreResult<Identity> {
    Ok(Identity {
        provider: col(row, "provider")?,
        subject: col(row, "subject")?,
        user: parse("user_identities.user_id", &col::<String>(row, "user_id")?)?,
        linked_at: ts(col(row, "linked_at")?)?,
    })
}

#[async_trait]
impl SignInStore for Adapter {
    async fn totp(&self, user: UserId) -> StoreResult<Option<TotpFactor>> {
        let q = sqlx::query(
            "SELECT user_id, secret_sealed, created_at, confirmed_at, last_step FROM user_totp WHERE user_id = $1",
        )
        .bind(user.to_string());
        read_one(&self.readers, q, "get second factor", totp_from).await
    }

    async fn begin_totp(&self, factor: &TotpFactor, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        must_exist(&mut tx, USER, factor.user).await?;
        let confirmed: Option<Option<i64>> =
            sqlx::query_scalar("SELECT confirmed_at FROM user_totp WHERE user_id = $1")
                .bind(factor.user.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend("begin second factor"))?;
        if confirmed.flatten().is_some() {
            return Err(StoreError::Conflict {
                what: "second factor",
                key: factor.user.to_string(),
            });
        }
        sqlx::query(
            "INSERT INTO user_totp (user_id, secret_sealed, created_at, confirmed_at, last_step) \
             VALUES ($1, $2, $3, NULL, NULL) ON CONFLICT (user_id) DO UPDATE SET \
             secret_sealed = excluded.secret_sealed, created_at = excluded.created_at, \
             confirmed_at = NULL, last_step = NULL",
        )
        .bind(factor.user.to_string())
        .bind(&factor.secret_sealed)
        .bind(factor.created_at.as_microsecond())
        .execute(&mut *tx)
        .await
        .map_err(backend("begin second factor"))?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn confirm_totp(
        &self,
        user: UserId,
        step: i64,
        at: Timestamp,
        recovery_hashes: &[String],
        event: &NewEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE user_totp SET confirmed_at = $2, last_step = $3 \
             WHERE user_id = $1 AND confirmed_at IS NULL",
        )
        .bind(user.to_string())
        .bind(at.as_microsecond())
        .bind(step)
        .execute(&mut *tx)
        .await
        .map_err(backend("confirm second factor"))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        put_recovery_codes(&mut tx, user, recovery_hashes).await?;
        insert_event(&mut tx, event).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn use_totp_step(&self, user: UserId, step: i64) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE user_totp SET last_step = $2 WHERE user_id = $1 \
             AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(user.to_string())
        .bind(step)
        .execute(&mut *tx)
        .await
        .map_err(backend("use second factor"))?;
        commit(tx).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        code_hash: &str,
        event: &NewEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done =
            sqlx::query("DELETE FROM user_recovery_codes WHERE user_id = $1 AND code_hash = $2")
                .bind(user.to_string())
                .bind(code_hash)
                .execute(&mut *tx)
                .await
                .map_err(backend("use recovery code"))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_event(&mut tx, event).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn recovery_codes_left(&self, user: UserId) -> StoreResult<u32> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM user_recovery_codes WHERE user_id = $1")
                .bind(user.to_string())
                .fetch_one(&self.readers)
                .await
                .map_err(backend("count recovery codes"))?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        hashes: &[String],
        event: &NewEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        must_exist(&mut tx, USER, user).await?;
        put_recovery_codes(&mut tx, user, hashes).await?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn remove_totp(&self, user: UserId, event: &NewEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        put_recovery_codes(&mut tx, user, &[]).await?;
        let done = sqlx::query("DELETE FROM user_totp WHERE user_id = $1")
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("remove second factor"))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_event(&mut tx, event).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn link_identity(&self, identity: &Identity, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        must_exist(&mut tx, USER, identity.user).await?;
        let key = format!("{}:{}", identity.provider, identity.subject);
        sqlx::query(
            "INSERT INTO user_identities (provider, subject, user_id, linked_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&identity.provider)
        .bind(&identity.subject)
        .bind(identity.user.to_string())
        .bind(identity.linked_at.as_microsecond())
        .execute(&mut *tx)
        .await
        .map_err(unique_or("account link", &key, "link account"))?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn user_by_identity(&self, provider: &str, subject: &str) -> StoreResult<Option<User>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE id = (SELECT user_id FROM user_identities WHERE provider = $1 AND subject = $2)"
        ))
        .bind(provider)
        .bind(subject);
        read_one(&self.readers, q, "get user by account link", user_from).await
    }

    async fn identities(&self, user: UserId) -> StoreResult<Vec<Identity>> {
        let q = sqlx::query(
            "SELECT provider, subject, user_id, linked_at FROM user_identities \
             WHERE user_id = $1 ORDER BY linked_at, provider, subject",
        )
        .bind(user.to_string());
        read_all(&self.readers, q, "list account links", identity_from).await
    }

    async fn unlink_identity(
        &self,
        user: UserId,
        provider: &str,
        event: &NewEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM user_identities WHERE user_id = $1 AND provider = $2")
            .bind(user.to_string())
            .bind(provider)
            .execute(&mut *tx)
            .await
            .map_err(backend("unlink account"))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_event(&mut tx, event).await?;
        commit(tx).await?;
        Ok(true)
    }
}

/// Replaces a user's recovery codes within a write.
async fn put_recovery_codes(
    tx: &mut sqlx::Transaction<'static, super::Db>,
    user: UserId,
    hashes: &[String],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM user_recovery_codes WHERE user_id = $1")
        .bind(user.to_string())
        .execute(&mut **tx)
        .await
        .map_err(backend("replace recovery codes"))?;
    for hash in hashes {
        sqlx::query("INSERT INTO user_recovery_codes (user_id, code_hash) VALUES ($1, $2)")
            .bind(user.to_string())
            .bind(hash)
            .execute(&mut **tx)
            .await
            .map_err(backend("replace recovery codes"))?;
    }
    Ok(())
}
