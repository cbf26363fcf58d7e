//! Users, their API tokens, e-mail addresses, Discord links, webhooks and
//! one-time link codes.

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::Transaction;
use tavern_store::{ApiToken, NewEvent, StoreResult, User, UserStore};
use tavern_types::{Role, UserId, Username};

use super::{
    Adapter, Db, DbResult, DbRow, USER, col, commit, insert_event, must_exist, read_all, read_one,
    touched, unique_or,
};
use crate::adapter::{backend, corrupt, parse, ts};

pub(super) fn user_from(row: &DbRow) -> StoreResult<User> {
    Ok(User {
        id: parse("users.id", &col::<String>(row, "id")?)?,
        username: Username::parse(&col::<String>(row, "username")?)
            .map_err(|e| corrupt("users.username", e))?,
        role: parse("users.role", &col::<String>(row, "role")?)?,
        password_hash: col(row, "password_hash")?,
        created_at: ts(col(row, "created_at")?)?,
        tier: col(row, "tier")?,
        email: col(row, "email")?,
    })
}

/// Inserts a user within a transaction.
pub(super) async fn insert_user(tx: &mut Transaction<'static, Db>, user: &User) -> StoreResult<()> {
    sqlx::query(concat!(
        "INSERT INTO users (",
        user_cols!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ))
    .bind(user.id.to_string())
    .bind(user.username.as_str())
    .bind(user.role.as_str())
    .bind(&user.password_hash)
    .bind(user.created_at.as_microsecond())
    .bind(&user.tier)
    .bind(&user.email)
    .execute(&mut **tx)
    .await
    .map_err(unique_or("user", user.username.as_str(), "insert user"))?;
    Ok(())
}

/// Finishes an update of one user row: not found when it changed
/// nothing; else writes the event and answers the row as it is now.
async fn finish_user_update(
    mut tx: Transaction<'static, Db>,
    done: DbResult,
    user: UserId,
    event: &NewEvent,
    op: &'static str,
) -> StoreResult<User> {
    touched(&done, "user", user)?;
    insert_event(&mut tx, event).await?;
    let row = sqlx::query(concat!(
        "SELECT ",
        user_cols!(),
        " FROM users WHERE id = $1"
    ))
    .bind(user.to_string())
    .fetch_one(&mut *tx)
    .await
    .map_err(backend(op))?;
    let user = user_from(&row)?;
    commit(tx).await?;
    Ok(user)
}

#[async_trait]
impl UserStore for Adapter {
    async fn create_user(&self, user: &User, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_user(&mut tx, user).await?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn user(&self, id: UserId) -> StoreResult<Option<User>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id.to_string());
        read_one(&self.readers, q, "get user", user_from).await
    }

    async fn user_by_name(&self, name: &Username) -> StoreResult<Option<User>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE username = $1"
        ))
        .bind(name.as_str());
        read_one(&self.readers, q, "get user", user_from).await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users ORDER BY created_at, id"
        ));
        read_all(&self.readers, q, "list users", user_from).await
    }

    async fn count_users(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.readers)
            .await
            .map_err(backend("count users"))?;
        u64::try_from(n).map_err(|e| corrupt("users", e))
    }

    async fn set_user_tier(
        &self,
        user: UserId,
        tier: Option<&str>,
        event: &NewEvent,
    ) -> StoreResult<User> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE users SET tier = $1 WHERE id = $2")
            .bind(tier)
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("set user tier"))?;
        finish_user_update(tx, done, user, event, "set user tier").await
    }

    async fn set_user_role(&self, user: UserId, role: Role, event: &NewEvent) -> StoreResult<User> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("set user role"))?;
        finish_user_update(tx, done, user, event, "set user role").await
    }

    async fn create_token(&self, token: &ApiToken, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, token_hash, label, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token.id.to_string())
        .bind(token.user_id.to_string())
        .bind(&token.token_hash)
        .bind(&token.label)
        .bind(token.created_at.as_microsecond())
        .execute(&mut *tx)
        .await
        .map_err(unique_or("token", &token.id.to_string(), "insert token"))?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn token_by_hash(&self, token_hash: &str) -> StoreResult<Option<(ApiToken, User)>> {
        let row = sqlx::query(
            "SELECT t.id AS token_id, t.token_hash, t.label, t.created_at AS token_created_at, \
             u.id, u.username, u.role, u.password_hash, u.created_at, u.tier, u.email \
             FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.readers)
        .await
        .map_err(backend("get token"))?;
        let Some(row) = row else { return Ok(None) };
        let user = user_from(&row)?;
        let token = ApiToken {
            id: parse("api_tokens.id", &col::<String>(&row, "token_id")?)?,
            user_id: user.id,
            token_hash: col(&row, "token_hash")?,
            label: col(&row, "label")?,
            created_at: ts(col(&row, "token_created_at")?)?,
        };
        Ok(Some((token, user)))
    }

    async fn delete_token(&self, token_hash: &str, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM api_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *tx)
            .await
            .map_err(backend("delete token"))?;
        touched(&done, "token", "(hidden)")?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn set_user_email(
        &self,
        user: UserId,
        email: Option<&str>,
        event: &NewEvent,
    ) -> StoreResult<User> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE users SET email = $1 WHERE id = $2")
            .bind(email)
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(unique_or(
                "e-mail address",
                email.unwrap_or_default(),
                "set user email",
            ))?;
        finish_user_update(tx, done, user, event, "set user email").await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE email = $1"
        ))
        .bind(email);
        read_one(&self.readers, q, "get user by email", user_from).await
    }

    async fn create_link_code(
        &self,
        code_hash: &str,
        user: UserId,
        expires_at: Timestamp,
        event: &NewEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        must_exist(&mut tx, USER, user).await?;
        sqlx::query("INSERT INTO link_codes (code_hash, user_id, expires_at) VALUES ($1, $2, $3)")
            .bind(code_hash)
            .bind(user.to_string())
            .bind(expires_at.as_microsecond())
            .execute(&mut *tx)
            .await
            .map_err(unique_or("link code", "(hidden)", "insert link code"))?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn take_link_code(&self, code_hash: &str, now: Timestamp) -> StoreResult<Option<UserId>> {
        let mut tx = self.begin().await?;
        let user: Option<String> = sqlx::query_scalar(
            "DELETE FROM link_codes WHERE code_hash = $1 AND expires_at > $2 RETURNING user_id",
        )
        .bind(code_hash)
        .bind(now.as_microsecond())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend("take link code"))?;
        sqlx::query("DELETE FROM link_codes WHERE expires_at <= $1")
            .bind(now.as_microsecond())
            .execute(&mut *tx)
            .await
            .map_err(backend("take link code"))?;
        commit(tx).await?;
        user.map(|u| parse("link_codes.user_id", &u)).transpose()
    }

    async fn link_discord(
        &self,
        user: UserId,
        discord_id: Option<&str>,
        event: &NewEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        must_exist(&mut tx, USER, user).await?;
        if let Some(d) = discord_id {
            sqlx::query("UPDATE users SET discord_id = NULL WHERE discord_id = $1")
                .bind(d)
                .execute(&mut *tx)
                .await
                .map_err(backend("link discord"))?;
        }
        sqlx::query("UPDATE users SET discord_id = $1 WHERE id = $2")
            .bind(discord_id)
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("link discord"))?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn user_by_discord(&self, discord_id: &str) -> StoreResult<Option<User>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE discord_id = $1"
        ))
        .bind(discord_id);
        read_one(&self.readers, q, "get user by discord", user_from).await
    }

    async fn discord_of(&self, user: UserId) -> StoreResult<Option<String>> {
        let linked: Option<Option<String>> =
            sqlx::query_scalar("SELECT discord_id FROM users WHERE id = $1")
                .bind(user.to_string())
                .fetch_optional(&self.readers)
                .await
                .map_err(backend("get discord link"))?;
        Ok(linked.flatten())
    }

    async fn set_user_webhook(
        &self,
        user: UserId,
        sealed: Option<&[u8]>,
        event: &NewEvent,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE users SET webhook_sealed = $1 WHERE id = $2")
            .bind(sealed)
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(backend("set user webhook"))?;
        touched(&done, "user", user)?;
        insert_event(&mut tx, event).await?;
        commit(tx).await
    }

    async fn user_webhook(&self, user: UserId) -> StoreResult<Option<Vec<u8>>> {
        let found: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT webhook_sealed FROM users WHERE id = $1")
                .bind(user.to_string())
                .fetch_optional(&self.readers)
                .await
                .map_err(backend("get user webhook"))?;
        Ok(found.flatten())
    }
}
