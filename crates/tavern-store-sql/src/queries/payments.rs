//! Ko-fi supporters' payments, recorded once per transaction.

use async_trait::async_trait;
use tavern_store::{NewEvent, Payment, PaymentKind, PaymentStore, StoreResult};
use tavern_types::UserId;

use super::{Adapter, DbRow, USER, col, commit, insert_event, must_exist, read_all, read_one};
use crate::adapter::{backend, corrupt, parse, ts};

fn payment_from(row: &DbRow) -> StoreResult<Payment> {
    let kind: String = col(row, "kind")?;
    let user: Option<String> = col(row, "user_id")?;
    Ok(Payment {
        transaction: col(row, "id")?,
        message_id: col(row, "message_id")?,
        kind: PaymentKind::parse(&kind).ok_or_else(|| corrupt("payments.kind", &kind))?,
        from_name: col(row, "from_name")?,
        email: col(row, "email")?,
        amount_cents: col(row, "amount_cents")?,
        currency: col(row, "currency")?,
        tier_name: col(row, "tier_name")?,
        first_subscription: col(row, "first_subscription")?,
        paid_at: ts(col(row, "paid_at")?)?,
        recorded_at: ts(col(row, "recorded_at")?)?,
        user: user.map(|u| parse("payments.user_id", &u)).transpose()?,
    })
}

#[async_trait]
impl PaymentStore for Adapter {
    async fn record_payment(&self, p: &Payment, event: &NewEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        if let Some(user) = p.user {
            must_exist(&mut tx, USER, user).await?;
        }
        let done = sqlx::query(concat!(
            "INSERT INTO payments (",
            payment_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING"
        ))
        .bind(&p.transaction)
        .bind(&p.message_id)
        .bind(p.kind.as_str())
        .bind(&p.from_name)
        .bind(&p.email)
        .bind(p.amount_cents)
        .bind(&p.currency)
        .bind(&p.tier_name)
        .bind(p.first_subscription)
        .bind(p.paid_at.as_microsecond())
        .bind(p.recorded_at.as_microsecond())
        .bind(p.user.map(|u| u.to_string()))
        .execute(&mut *tx)
        .await
        .map_err(backend("insert payment"))?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_event(&mut tx, event).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn assign_payments(
        &self,
        user: UserId,
        transaction: Option<&str>,
        email: Option<&str>,
        event: &NewEvent,
    ) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        must_exist(&mut tx, USER, user).await?;
        let done = sqlx::query(
            "UPDATE payments SET user_id = $1 WHERE user_id IS NULL AND (id = $2 OR email = $3)",
        )
        .bind(user.to_string())
        .bind(transaction)
        .bind(email)
        .execute(&mut *tx)
        .await
        .map_err(backend("assign payments"))?;
        if done.rows_affected() > 0 {
            insert_event(&mut tx, event).await?;
        }
        commit(tx).await?;
        Ok(done.rows_affected())
    }

    async fn payment(&self, transaction: &str) -> StoreResult<Option<Payment>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            payment_cols!(),
            " FROM payments WHERE id = $1"
        ))
        .bind(transaction);
        read_one(&self.readers, q, "get payment", payment_from).await
    }

    async fn payer(&self, email: &str) -> StoreResult<Option<UserId>> {
        let user: Option<String> = sqlx::query_scalar(
            "SELECT user_id FROM payments WHERE email = $1 AND user_id IS NOT NULL ORDER BY paid_at DESC LIMIT 1",
        )
        .bind(email)
        .fetch_optional(&self.readers)
        .await
        .map_err(backend("find payer"))?;
        user.map(|u| parse("payments.user_id", &u)).transpose()
    }

    async fn list_payments(&self, user: Option<UserId>) -> StoreResult<Vec<Payment>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            payment_cols!(),
            " FROM payments WHERE ($1 IS NULL OR user_id = $2) ORDER BY paid_at DESC, id"
        ))
        .bind(user.map(|u| u.to_string()))
        .bind(user.map(|u| u.to_string()));
        read_all(&self.readers, q, "list payments", payment_from).await
    }
}
