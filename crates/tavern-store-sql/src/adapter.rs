//! The one body of both SQL adapters: every query of the Store port,
//! written once in SQL that SQLite and PostgreSQL both accept (`$N`
//! parameters, `ON CONFLICT`), and expanded per engine by [`sql_adapter!`].
//! The engines differ only in how they open, migrate and begin a write.

use std::str::FromStr;

use jiff::Timestamp;
use sqlx::migrate::{Migrate, MigrateError, Migration, MigrationType, Migrator};
use sqlx::{Acquire, SqlStr};
use tavern_store::{StoreError, StoreResult};

// Column lists, as macros so that queries stay string literals.
macro_rules! user_cols {
    () => {
        "id, username, role, password_hash, created_at, tier, email"
    };
}

macro_rules! instance_cols {
    () => {
        "id, slug, owner_id, release, runtime, license_id, desired_state, state, idle_timeout_minutes, created_at, updated_at, state_reason, players, world, foundry_version, admin_key_sealed, awaits_license_id, last_activity_at, sockets, wake_on_visit"
    };
}

macro_rules! session_cols {
    () => {
        "id, instance_id, license_id, starts_at, ends_at, window_start, window_end, created_by, created_at, prepared_at, reminded_at"
    };
}

macro_rules! license_cols {
    () => {
        "id, label, key_sealed, key_last4, owner_id, created_at, bound_instance_id"
    };
}

macro_rules! payment_cols {
    () => {
        "id, message_id, kind, from_name, email, amount_cents, currency, tier_name, first_subscription, paid_at, recorded_at, user_id"
    };
}

macro_rules! invite_cols {
    () => {
        "id, code_hash, role, tier, max_uses, uses, expires_at, created_by, created_at"
    };
}

macro_rules! notification_cols {
    () => {
        "id, kind, destination, message, created_at, attempts, next_attempt_at, last_error, delivered_at, gave_up_at"
    };
}

macro_rules! backup_cols {
    () => {
        "id, instance_id, slug, owner_id, kind, status, live, locked, created_by, created_at, finished_at, target, archive_key, size, sha256, files, bytes, error"
    };
}

/// The error for a failed operation: [`StoreError::Unavailable`] when the
/// database cannot be reached (it is restarting, the network is down, the
/// pool waited in vain), else [`StoreError::Backend`].
pub(crate) fn backend(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| {
        if unreachable(&e) {
            StoreError::Unavailable {
                op,
                source: Box::new(e),
            }
        } else {
            StoreError::Backend {
                op,
                source: Box::new(e),
            }
        }
    }
}

/// Whether an error means the database is out of reach, not that the
/// operation was wrong.
fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL's classes 08 (connection exception) and 57P
        // (operator intervention: shutting down, starting up), and too
        // many connections.
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300"),
        _ => false,
    }
}

/// Brings a schema up to date with an engine's migrations (`(version,
/// name, sql)`, append-only).
pub(crate) async fn migrate<'a, A>(
    migrations: &[(i64, &str, &'static str)],
    to: A,
) -> StoreResult<()>
where
    A: Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: Migrate,
{
    let migrator = Migrator::with_migrations(
        migrations
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    (*name).to_owned().into(),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    );
    migrator.run(to).await.map_err(|e| match e {
        MigrateError::Execute(e) => backend("migrate database")(e),
        e => StoreError::Backend {
            op: "migrate database",
            source: Box::new(e),
        },
    })
}

/// PostgreSQL's code for a row that an exclusion constraint refuses.
pub(crate) const EXCLUSION_VIOLATION: &str = "23P01";

pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

pub(crate) fn ts(micros: i64) -> StoreResult<Timestamp> {
    Timestamp::from_microsecond(micros).map_err(|e| corrupt("timestamp", e))
}

pub(crate) fn opt_ts(micros: Option<i64>) -> StoreResult<Option<Timestamp>> {
    micros.map(ts).transpose()
}

pub(crate) fn parse<T: FromStr>(what: &'static str, s: &str) -> StoreResult<T>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e: T::Err| corrupt(what, e))
}

/// Expands, inside an engine's module, to the `Store` implementation for
/// `$store`. The module defines `Db`, `DbRow`, `DbPool`, `DbResult` and
/// `DbArgs` for its engine, and `$store` has a `readers` pool and a
/// `begin()` that opens a write transaction.
macro_rules! sql_adapter {
    ($store:ident) => {
        mod adapter_body {
        use async_trait::async_trait;
        use jiff::Timestamp;
        use sqlx::{Row, Transaction};
        use tavern_store::{
            ApiToken, ArchiveFacts, Backup, Delivery, Event, Instance, Invite, License, NewEvent,
            NewNotification, Notification, Observation, Outcome, Payment, PaymentKind, Session,
            Store, StoreError, StoreResult, UsageInterval, User,
        };
        use tavern_types::{
            BackupId, BackupStatus, DesiredState, EventId, InstanceId, InviteId, LicenseId,
            ObservedState, RuntimeKind,
            SessionId, Slug, UserId, Username, WakeOnVisit,
        };

        use super::{Db, DbArgs, DbPool, DbResult, DbRow};
        use $crate::adapter::{EXCLUSION_VIOLATION, backend, corrupt, opt_ts, parse, ts};

        fn col<'r, T>(row: &'r DbRow, name: &'static str) -> StoreResult<T>
        where
            T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
        {
            row.try_get(name).map_err(|e| corrupt(name, e))
        }

        type DbQuery<'q> = sqlx::query::Query<'q, Db, DbArgs>;

        /// Runs a read on the reader pool and maps the row, if any.
        async fn read_one<T>(
            pool: &DbPool,
            q: DbQuery<'_>,
            op: &'static str,
            map: fn(&DbRow) -> StoreResult<T>,
        ) -> StoreResult<Option<T>> {
            q.fetch_optional(pool)
                .await
                .map_err(backend(op))?
                .as_ref()
                .map(map)
                .transpose()
        }

        /// Runs a read on the reader pool and maps every row.
        async fn read_all<T>(
            pool: &DbPool,
            q: DbQuery<'_>,
            op: &'static str,
            map: fn(&DbRow) -> StoreResult<T>,
        ) -> StoreResult<Vec<T>> {
            q.fetch_all(pool)
                .await
                .map_err(backend(op))?
                .iter()
                .map(map)
                .collect()
        }

        /// Finishes an update of one instance row: not found when it changed
        /// nothing; else writes the event and answers the row as it is now.
        async fn finish_instance_update(
            mut tx: Transaction<'static, Db>,
            done: DbResult,
            slug: &Slug,
            event: &NewEvent,
            op: &'static str,
        ) -> StoreResult<Instance> {
            touched(&done, "instance", slug)?;
            insert_event(&mut tx, event).await?;
            let row = sqlx::query(concat!(
                "SELECT ",
                instance_cols!(),
                " FROM instances WHERE slug = $1"
            ))
            .bind(slug.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(backend(op))?;
            let instance = instance_from(&row)?;
            commit(tx).await?;
            Ok(instance)
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
            let row = sqlx::query(concat!("SELECT ", user_cols!(), " FROM users WHERE id = $1"))
                .bind(user.to_string())
                .fetch_one(&mut *tx)
                .await
                .map_err(backend(op))?;
            let user = user_from(&row)?;
            commit(tx).await?;
            Ok(user)
        }

        /// Not found when an update or delete touched no row.
        fn touched(
            done: &DbResult,
            what: &'static str,
            key: impl ToString,
        ) -> StoreResult<()> {
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound {
                    what,
                    key: key.to_string(),
                });
            }
            Ok(())
        }

        async fn commit(tx: Transaction<'static, Db>) -> StoreResult<()> {
            tx.commit().await.map_err(backend("commit"))
        }

        async fn insert_event(tx: &mut Transaction<'static, Db>, e: &NewEvent) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO events (id, at, actor, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(EventId::new().to_string())
            .bind(e.at.as_microsecond())
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.target)
            .bind(e.outcome.as_str())
            .bind(&e.detail)
            .execute(&mut **tx)
            .await
            .map_err(backend("insert event"))?;
            Ok(())
        }

        fn unique_or(
            what: &'static str,
            key: &str,
            op: &'static str,
        ) -> impl FnOnce(sqlx::Error) -> StoreError {
            move |e| match &e {
                sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict {
                    what,
                    key: key.to_owned(),
                },
                _ => backend(op)(e),
            }
        }

        /// What [`must_exist`] looks for: a name for errors, and the query.
        type Referent = (&'static str, &'static str);
        const USER: Referent = ("user", "SELECT 1 FROM users WHERE id = $1");
        const LICENSE: Referent = ("license", "SELECT 1 FROM licenses WHERE id = $1");

        /// Not found unless the row a write refers to exists.
        async fn must_exist(
            tx: &mut Transaction<'static, Db>,
            (what, sql): Referent,
            id: impl ToString,
        ) -> StoreResult<()> {
            let key = id.to_string();
            let row = sqlx::query(sql)
                .bind(&key)
                .fetch_optional(&mut **tx)
                .await
                .map_err(backend("check reference"))?;
            match row {
                Some(_) => Ok(()),
                None => Err(StoreError::NotFound { what, key }),
            }
        }

        fn user_from(row: &DbRow) -> StoreResult<User> {
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

        /// Inserts a user within a transaction.
        async fn insert_user(tx: &mut Transaction<'static, Db>, user: &User) -> StoreResult<()> {
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

        fn usage_from(row: &DbRow) -> StoreResult<UsageInterval> {
            let license: Option<String> = col(row, "license_id")?;
            Ok(UsageInterval {
                instance: parse(
                    "usage_intervals.instance_id",
                    &col::<String>(row, "instance_id")?,
                )?,
                slug: col(row, "slug")?,
                owner: parse("usage_intervals.owner_id", &col::<String>(row, "owner_id")?)?,
                license: license
                    .map(|l| parse("usage_intervals.license_id", &l))
                    .transpose()?,
                started_at: ts(col(row, "started_at")?)?,
                stopped_at: opt_ts(col(row, "stopped_at")?)?,
                reason: col(row, "reason")?,
            })
        }

        fn instance_from(row: &DbRow) -> StoreResult<Instance> {
            let license: Option<String> = col(row, "license_id")?;
            let idle: Option<i64> = col(row, "idle_timeout_minutes")?;
            Ok(Instance {
                id: parse("instances.id", &col::<String>(row, "id")?)?,
                slug: Slug::parse(&col::<String>(row, "slug")?)
                    .map_err(|e| corrupt("instances.slug", e))?,
                owner: parse("instances.owner_id", &col::<String>(row, "owner_id")?)?,
                release: col(row, "release")?,
                runtime: parse("instances.runtime", &col::<String>(row, "runtime")?)?,
                license: license
                    .map(|l| parse("instances.license_id", &l))
                    .transpose()?,
                desired_state: parse(
                    "instances.desired_state",
                    &col::<String>(row, "desired_state")?,
                )?,
                state: parse("instances.state", &col::<String>(row, "state")?)?,
                idle_timeout_minutes: idle
                    .map(|m| u32::try_from(m).map_err(|e| corrupt("instances.idle_timeout_minutes", e)))
                    .transpose()?,
                created_at: ts(col(row, "created_at")?)?,
                updated_at: ts(col(row, "updated_at")?)?,
                state_reason: col(row, "state_reason")?,
                players: u32::try_from(col::<i64>(row, "players")?)
                    .map_err(|e| corrupt("instances.players", e))?,
                world: col(row, "world")?,
                foundry_version: col(row, "foundry_version")?,
                admin_key_sealed: col(row, "admin_key_sealed")?,
                awaits: col::<Option<String>>(row, "awaits_license_id")?
                    .map(|l| parse("instances.awaits_license_id", &l))
                    .transpose()?,
                last_activity_at: opt_ts(col(row, "last_activity_at")?)?,
                sockets: u32::try_from(col::<i64>(row, "sockets")?)
                    .map_err(|e| corrupt("instances.sockets", e))?,
                wake_on_visit: col::<Option<String>>(row, "wake_on_visit")?
                    .map(|w| parse("instances.wake_on_visit", &w))
                    .transpose()?,
            })
        }

        fn count(what: &'static str, n: Option<i64>) -> StoreResult<Option<u64>> {
            n.map(|n| u64::try_from(n).map_err(|e| corrupt(what, e)))
                .transpose()
        }

        fn backup_from(row: &DbRow) -> StoreResult<Backup> {
            let key: Option<String> = col(row, "archive_key")?;
            let archive = match key {
                None => None,
                Some(key) => Some(ArchiveFacts {
                    key,
                    size: count("backups.size", col(row, "size")?)?.unwrap_or_default(),
                    sha256: col::<Option<String>>(row, "sha256")?.unwrap_or_default(),
                    files: count("backups.files", col(row, "files")?)?.unwrap_or_default(),
                    bytes: count("backups.bytes", col(row, "bytes")?)?.unwrap_or_default(),
                }),
            };
            Ok(Backup {
                id: parse("backups.id", &col::<String>(row, "id")?)?,
                instance: parse("backups.instance_id", &col::<String>(row, "instance_id")?)?,
                slug: Slug::parse(&col::<String>(row, "slug")?)
                    .map_err(|e| corrupt("backups.slug", e))?,
                owner: parse("backups.owner_id", &col::<String>(row, "owner_id")?)?,
                kind: parse("backups.kind", &col::<String>(row, "kind")?)?,
                status: parse("backups.status", &col::<String>(row, "status")?)?,
                live: col(row, "live")?,
                locked: col(row, "locked")?,
                created_by: col(row, "created_by")?,
                created_at: ts(col(row, "created_at")?)?,
                finished_at: opt_ts(col(row, "finished_at")?)?,
                target: col(row, "target")?,
                archive,
                error: col(row, "error")?,
            })
        }

        /// A backup as it is now, inside a write.
        async fn backup_in(tx: &mut Transaction<'static, Db>, id: BackupId) -> StoreResult<Backup> {
            let row = sqlx::query(concat!("SELECT ", backup_cols!(), " FROM backups WHERE id = $1"))
                .bind(id.to_string())
                .fetch_one(&mut **tx)
                .await
                .map_err(backend("get backup"))?;
            backup_from(&row)
        }

        fn license_from(row: &DbRow) -> StoreResult<License> {
            let owner: Option<String> = col(row, "owner_id")?;
            let bound: Option<String> = col(row, "bound_instance_id")?;
            Ok(License {
                id: parse("licenses.id", &col::<String>(row, "id")?)?,
                label: col(row, "label")?,
                key_sealed: col(row, "key_sealed")?,
                key_last4: col(row, "key_last4")?,
                owner: owner.map(|o| parse("licenses.owner_id", &o)).transpose()?,
                bound_to: bound
                    .map(|b| parse("licenses.bound_instance_id", &b))
                    .transpose()?,
                created_at: ts(col(row, "created_at")?)?,
            })
        }

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

        /// Compare-and-set: binds `license` to `instance` if it is free.
        async fn claim_free(
            tx: &mut Transaction<'static, Db>,
            license: LicenseId,
            instance: InstanceId,
        ) -> StoreResult<bool> {
            let done = sqlx::query(
                "UPDATE licenses SET bound_instance_id = $1 WHERE id = $2 AND bound_instance_id IS NULL",
            )
            .bind(instance.to_string())
            .bind(license.to_string())
            .execute(&mut **tx)
            .await;
            let done = match done {
                Ok(d) => d,
                // The instance holds another key already.
                Err(sqlx::Error::Database(d)) if d.is_unique_violation() => return Ok(false),
                Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
                    return Err(StoreError::NotFound {
                        what: "instance",
                        key: instance.to_string(),
                    });
                }
                Err(e) => return Err(backend("bind license")(e)),
            };
            Ok(done.rows_affected() == 1)
        }

        #[async_trait]
        impl Store for super::$store {
            async fn create_user(&self, user: &User, event: &NewEvent) -> StoreResult<()> {
                let mut tx = self.begin().await?;
                insert_user(&mut tx, user).await?;
                insert_event(&mut tx, event).await?;
                commit(tx).await
            }

            async fn user(&self, id: UserId) -> StoreResult<Option<User>> {
                let q = sqlx::query(concat!("SELECT ", user_cols!(), " FROM users WHERE id = $1"))
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

            async fn create_instance(&self, i: &Instance, event: &NewEvent) -> StoreResult<()> {
                let mut tx = self.begin().await?;
                must_exist(&mut tx, USER, i.owner).await?;
                if let Some(license) = i.license {
                    must_exist(&mut tx, LICENSE, license).await?;
                }
                sqlx::query(concat!(
                    "INSERT INTO instances (",
                    instance_cols!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
                ))
                .bind(i.id.to_string())
                .bind(i.slug.as_str())
                .bind(i.owner.to_string())
                .bind(&i.release)
                .bind(i.runtime.as_str())
                .bind(i.license.map(|l| l.to_string()))
                .bind(i.desired_state.as_str())
                .bind(i.state.as_str())
                .bind(i.idle_timeout_minutes.map(i64::from))
                .bind(i.created_at.as_microsecond())
                .bind(i.updated_at.as_microsecond())
                .bind(&i.state_reason)
                .bind(i64::from(i.players))
                .bind(&i.world)
                .bind(&i.foundry_version)
                .bind(&i.admin_key_sealed)
                .bind(i.awaits.map(|l| l.to_string()))
                .bind(i.last_activity_at.map(|t| t.as_microsecond()))
                .bind(i64::from(i.sockets))
                .bind(i.wake_on_visit.map(|w| w.as_str()))
                .execute(&mut *tx)
                .await
                .map_err(unique_or("instance", i.slug.as_str(), "insert instance"))?;
                insert_event(&mut tx, event).await?;
                commit(tx).await
            }

            async fn instance(&self, slug: &Slug) -> StoreResult<Option<Instance>> {
                let q = sqlx::query(concat!(
                    "SELECT ",
                    instance_cols!(),
                    " FROM instances WHERE slug = $1"
                ))
                .bind(slug.as_str());
                read_one(&self.readers, q, "get instance", instance_from).await
            }

            async fn list_instances(&self, owner: Option<UserId>) -> StoreResult<Vec<Instance>> {
                let q = match owner {
                    Some(owner) => sqlx::query(concat!(
                        "SELECT ",
                        instance_cols!(),
                        " FROM instances WHERE owner_id = $1 ORDER BY created_at, id"
                    ))
                    .bind(owner.to_string()),
                    None => sqlx::query(concat!(
                        "SELECT ",
                        instance_cols!(),
                        " FROM instances ORDER BY created_at, id"
                    )),
                };
                read_all(&self.readers, q, "list instances", instance_from).await
            }

            async fn delete_instance(&self, slug: &Slug, event: &NewEvent) -> StoreResult<()> {
                let mut tx = self.begin().await?;
                sqlx::query(
                    "UPDATE licenses SET bound_instance_id = NULL \
                     WHERE bound_instance_id = (SELECT id FROM instances WHERE slug = $1)",
                )
                .bind(slug.as_str())
                .execute(&mut *tx)
                .await
                .map_err(backend("release license"))?;
                sqlx::query(
                    "UPDATE usage_intervals SET stopped_at = $1, reason = 'destroyed' \
                     WHERE stopped_at IS NULL AND instance_id = (SELECT id FROM instances WHERE slug = $2)",
                )
                .bind(event.at.as_microsecond())
                .bind(slug.as_str())
                .execute(&mut *tx)
                .await
                .map_err(backend("close usage"))?;
                let done = sqlx::query("DELETE FROM instances WHERE slug = $1")
                    .bind(slug.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("delete instance"))?;
                touched(&done, "instance", slug)?;
                insert_event(&mut tx, event).await?;
                commit(tx).await
            }

            async fn set_desired_state(
                &self,
                slug: &Slug,
                desired: DesiredState,
                reason: Option<&str>,
                event: &NewEvent,
            ) -> StoreResult<Instance> {
                let mut tx = self.begin().await?;
                let done = sqlx::query(
                    "UPDATE instances SET desired_state = $1, updated_at = $2, \
                         awaits_license_id = CASE WHEN $3 = 'running' THEN awaits_license_id END, \
                         state_reason = CASE WHEN $4 = 'running' THEN state_reason ELSE $5 END \
                         WHERE slug = $6",
                )
                .bind(desired.as_str())
                .bind(event.at.as_microsecond())
                .bind(desired.as_str())
                .bind(desired.as_str())
                .bind(reason)
                .bind(slug.as_str())
                .execute(&mut *tx)
                .await
                .map_err(backend("set desired state"))?;
                finish_instance_update(tx, done, slug, event, "set desired state").await
            }

            async fn update_instance_settings(
                &self,
                slug: &Slug,
                idle_timeout_minutes: Option<Option<u32>>,
                wake_on_visit: Option<Option<WakeOnVisit>>,
                event: &NewEvent,
            ) -> StoreResult<Instance> {
                let mut tx = self.begin().await?;
                let done = sqlx::query(
                    "UPDATE instances SET \
                     idle_timeout_minutes = CASE WHEN $1 THEN $2 ELSE idle_timeout_minutes END, \
                     wake_on_visit = CASE WHEN $3 THEN $4 ELSE wake_on_visit END, \
                     updated_at = $5 WHERE slug = $6",
                )
                .bind(idle_timeout_minutes.is_some())
                .bind(idle_timeout_minutes.flatten().map(i64::from))
                .bind(wake_on_visit.is_some())
                .bind(wake_on_visit.flatten().map(|w| w.as_str()))
                .bind(event.at.as_microsecond())
                .bind(slug.as_str())
                .execute(&mut *tx)
                .await
                .map_err(backend("update instance"))?;
                finish_instance_update(tx, done, slug, event, "update instance").await
            }

            async fn set_instance_launch(
                &self,
                slug: &Slug,
                release: &str,
                runtime: RuntimeKind,
                event: &NewEvent,
            ) -> StoreResult<Instance> {
                let mut tx = self.begin().await?;
                let done = sqlx::query(
                    "UPDATE instances SET release = $1, runtime = $4, updated_at = $2 WHERE slug = $3",
                )
                    .bind(release)
                    .bind(event.at.as_microsecond())
                    .bind(slug.as_str())
                    .bind(runtime.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("set instance launch"))?;
                finish_instance_update(tx, done, slug, event, "set instance launch").await
            }

            async fn set_instance_license(
                &self,
                slug: &Slug,
                license: Option<LicenseId>,
                event: &NewEvent,
            ) -> StoreResult<Instance> {
                let mut tx = self.begin().await?;
                if let Some(l) = license {
                    must_exist(&mut tx, LICENSE, l).await?;
                }
                let done =
                    sqlx::query("UPDATE instances SET license_id = $1, updated_at = $2 WHERE slug = $3")
                        .bind(license.map(|l| l.to_string()))
                        .bind(event.at.as_microsecond())
                        .bind(slug.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(backend("set instance license"))?;
                finish_instance_update(tx, done, slug, event, "set instance license").await
            }

            async fn record_observation(
                &self,
                id: InstanceId,
                o: &Observation,
                event: Option<&NewEvent>,
            ) -> StoreResult<()> {
                let mut tx = self.begin().await?;
                let prev: Option<(String, String, String, i64)> = sqlx::query_as(
                    "SELECT state, slug, owner_id, players + sockets FROM instances WHERE id = $1",
                )
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend("record observation"))?;
                let Some((prev, slug, owner, prev_players)) = prev else {
                    return Err(StoreError::NotFound {
                        what: "instance",
                        key: id.to_string(),
                    });
                };
                let was_running = prev == ObservedState::Running.as_str();
                let is_running = o.state == ObservedState::Running;
                // Players (or open tabs) seen now, or until now (the last one just
                // left).
                let active =
                    o.players > 0 || o.sockets > 0 || prev_players > 0 || (is_running && !was_running);
                sqlx::query(
                    "UPDATE instances SET state = $1, state_reason = $2, players = $3, sockets = $4, world = $5, foundry_version = $6, updated_at = $7, \
                     last_activity_at = CASE WHEN $8 THEN $9 ELSE last_activity_at END WHERE id = $10",
                )
                .bind(o.state.as_str())
                .bind(&o.state_reason)
                .bind(i64::from(o.players))
                .bind(i64::from(o.sockets))
                .bind(&o.world)
                .bind(&o.foundry_version)
                .bind(o.at.as_microsecond())
                .bind(active)
                .bind(o.at.as_microsecond())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(backend("record observation"))?;
                if is_running && !was_running {
                    sqlx::query(
                        "INSERT INTO usage_intervals (instance_id, slug, owner_id, license_id, started_at) \
                         VALUES ($1, $2, $3, (SELECT id FROM licenses WHERE bound_instance_id = $4), $5) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(id.to_string())
                    .bind(&slug)
                    .bind(&owner)
                    .bind(id.to_string())
                    .bind(o.at.as_microsecond())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("open usage"))?;
                } else if !is_running {
                    sqlx::query(
                        "UPDATE usage_intervals SET stopped_at = $1, reason = $2 \
                         WHERE instance_id = $3 AND stopped_at IS NULL",
                    )
                    .bind(o.at.as_microsecond())
                    .bind(o.state_reason.as_deref().unwrap_or(o.state.as_str()))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("close usage"))?;
                }
                if let Some(e) = event {
                    insert_event(&mut tx, e).await?;
                }
                commit(tx).await
            }

            async fn bind_license(
                &self,
                license: LicenseId,
                instance: InstanceId,
                bind_event: &NewEvent,
                start: Option<&NewEvent>,
            ) -> StoreResult<bool> {
                let mut tx = self.begin().await?;
                let current: Option<Option<String>> =
                    sqlx::query_scalar("SELECT bound_instance_id FROM licenses WHERE id = $1")
                        .bind(license.to_string())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(backend("bind license"))?;
                let Some(current) = current else {
                    return Err(StoreError::NotFound {
                        what: "license",
                        key: license.to_string(),
                    });
                };
                if current.as_deref() != Some(instance.to_string().as_str()) {
                    if !claim_free(&mut tx, license, instance).await? {
                        return Ok(false);
                    }
                    insert_event(&mut tx, bind_event).await?;
                }
                sqlx::query("UPDATE instances SET awaits_license_id = NULL WHERE id = $1")
                    .bind(instance.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("bind license"))?;
                if let Some(event) = start {
                    let done = sqlx::query(
                        "UPDATE instances SET desired_state = 'running', updated_at = $1 \
                         WHERE id = $2 AND desired_state != 'destroyed'",
                    )
                    .bind(event.at.as_microsecond())
                    .bind(instance.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("start instance"))?;
                    touched(&done, "instance", instance)?;
                    insert_event(&mut tx, event).await?;
                }
                commit(tx).await?;
                Ok(true)
            }

            async fn release_license(
                &self,
                instance: InstanceId,
                event: &NewEvent,
            ) -> StoreResult<Option<LicenseId>> {
                let mut tx = self.begin().await?;
                let held: Option<String> = sqlx::query_scalar(
                    "SELECT l.id FROM licenses l WHERE l.bound_instance_id = $1 AND NOT EXISTS \
                     (SELECT 1 FROM instances i WHERE i.id = l.bound_instance_id \
                      AND i.desired_state = 'running' AND i.state != 'failed')",
                )
                .bind(instance.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend("release license"))?;
                let Some(held) = held else { return Ok(None) };
                sqlx::query("UPDATE licenses SET bound_instance_id = NULL WHERE id = $1")
                    .bind(&held)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("release license"))?;
                insert_event(&mut tx, event).await?;
                commit(tx).await?;
                parse("licenses.id", &held).map(Some)
            }
            async fn create_license(&self, l: &License, event: &NewEvent) -> StoreResult<()> {
                let mut tx = self.begin().await?;
                if let Some(owner) = l.owner {
                    must_exist(&mut tx, USER, owner).await?;
                }
                sqlx::query(concat!(
                    "INSERT INTO licenses (",
                    license_cols!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ))
                .bind(l.id.to_string())
                .bind(&l.label)
                .bind(&l.key_sealed)
                .bind(&l.key_last4)
                .bind(l.owner.map(|o| o.to_string()))
                .bind(l.created_at.as_microsecond())
                .bind(l.bound_to.map(|i| i.to_string()))
                .execute(&mut *tx)
                .await
                .map_err(unique_or("license", &l.id.to_string(), "insert license"))?;
                insert_event(&mut tx, event).await?;
                commit(tx).await
            }

            async fn license(&self, id: LicenseId) -> StoreResult<Option<License>> {
                let q = sqlx::query(concat!(
                    "SELECT ",
                    license_cols!(),
                    " FROM licenses WHERE id = $1"
                ))
                .bind(id.to_string());
                read_one(&self.readers, q, "get license", license_from).await
            }

            async fn list_licenses(&self) -> StoreResult<Vec<License>> {
                let q = sqlx::query(concat!(
                    "SELECT ",
                    license_cols!(),
                    " FROM licenses ORDER BY created_at, id"
                ));
                read_all(&self.readers, q, "list licenses", license_from).await
            }

            async fn update_license(
                &self,
                id: LicenseId,
                label: &str,
                owner: Option<UserId>,
                event: &NewEvent,
            ) -> StoreResult<License> {
                let mut tx = self.begin().await?;
                if let Some(owner) = owner {
                    must_exist(&mut tx, USER, owner).await?;
                    let other: Option<String> = sqlx::query_scalar(
                        "SELECT i.slug FROM instances i LEFT JOIN licenses l ON l.bound_instance_id = i.id \
                         WHERE i.owner_id <> $1 AND (i.license_id = $2 OR i.awaits_license_id = $3 OR l.id = $4) \
                         LIMIT 1",
                    )
                    .bind(owner.to_string())
                    .bind(id.to_string())
                    .bind(id.to_string())
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend("check license use"))?;
                    let reserved: Option<String> = sqlx::query_scalar(
                        "SELECT i.slug FROM sessions s JOIN instances i ON i.id = s.instance_id \
                         WHERE s.license_id = $1 AND s.window_end > $2 AND i.owner_id <> $3 LIMIT 1",
                    )
                    .bind(id.to_string())
                    .bind(event.at.as_microsecond())
                    .bind(owner.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend("check license use"))?;
                    if let Some(slug) = other.or(reserved) {
                        return Err(StoreError::InUse {
                            what: "license",
                            key: id.to_string(),
                            by: format!("instance {slug}"),
                        });
                    }
                }
                let done = sqlx::query("UPDATE licenses SET label = $1, owner_id = $2 WHERE id = $3")
                    .bind(label)
                    .bind(owner.map(|o| o.to_string()))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("update license"))?;
                touched(&done, "license", id)?;
                insert_event(&mut tx, event).await?;
                let row = sqlx::query(concat!(
                    "SELECT ",
                    license_cols!(),
                    " FROM licenses WHERE id = $1"
                ))
                .bind(id.to_string())
                .fetch_one(&mut *tx)
                .await
                .map_err(backend("read license"))?;
                let license = license_from(&row)?;
                commit(tx).await?;
                Ok(license)
            }

            async fn delete_license(&self, id: LicenseId, event: &NewEvent) -> StoreResult<()> {
                let mut tx = self.begin().await?;
                let user: Option<String> = sqlx::query_scalar(
                    "SELECT slug FROM instances WHERE license_id = $1 OR awaits_license_id = $2 LIMIT 1",
                )
                .bind(id.to_string())
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend("check license use"))?;
                let session: Option<String> = sqlx::query_scalar(
                    "SELECT i.slug FROM sessions s JOIN instances i ON i.id = s.instance_id \
                     WHERE s.license_id = $1 AND s.window_end > $2 LIMIT 1",
                )
                .bind(id.to_string())
                .bind(event.at.as_microsecond())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend("check license use"))?;
                if let Some(slug) = session {
                    return Err(StoreError::InUse {
                        what: "license",
                        key: id.to_string(),
                        by: format!("a session of {slug}"),
                    });
                }
                sqlx::query("DELETE FROM sessions WHERE license_id = $1")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("delete ended sessions"))?;
                let bound: Option<String> = sqlx::query_scalar(
                    "SELECT i.slug FROM licenses l JOIN instances i ON i.id = l.bound_instance_id WHERE l.id = $1",
                )
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend("check license use"))?;
                if let Some(slug) = user.or(bound) {
                    return Err(StoreError::InUse {
                        what: "license",
                        key: id.to_string(),
                        by: format!("instance {slug}"),
                    });
                }
                let done = sqlx::query("DELETE FROM licenses WHERE id = $1")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("delete license"))?;
                touched(&done, "license", id)?;
                insert_event(&mut tx, event).await?;
                commit(tx).await
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

            async fn promise_license(
                &self,
                instance: InstanceId,
                license: LicenseId,
                session: Option<SessionId>,
                event: &NewEvent,
            ) -> StoreResult<()> {
                let mut tx = self.begin().await?;
                must_exist(&mut tx, LICENSE, license).await?;
                let done = sqlx::query(
                    "UPDATE instances SET awaits_license_id = \
                     CASE WHEN EXISTS (SELECT 1 FROM licenses WHERE bound_instance_id = instances.id) \
                     THEN NULL ELSE $1 END, desired_state = 'running', updated_at = $2 \
                     WHERE id = $3 AND desired_state != 'destroyed'",
                )
                .bind(license.to_string())
                .bind(event.at.as_microsecond())
                .bind(instance.to_string())
                .execute(&mut *tx)
                .await
                .map_err(backend("promise license"))?;
                touched(&done, "instance", instance)?;
                if let Some(session) = session {
                    let done =
                        sqlx::query("UPDATE sessions SET prepared_at = $1 WHERE id = $2 AND instance_id = $3")
                            .bind(event.at.as_microsecond())
                            .bind(session.to_string())
                            .bind(instance.to_string())
                            .execute(&mut *tx)
                            .await
                            .map_err(backend("prepare session"))?;
                    touched(&done, "session", session)?;
                }
                insert_event(&mut tx, event).await?;
                commit(tx).await
            }

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

            async fn list_usage(
                &self,
                owner: Option<UserId>,
                from: Timestamp,
                to: Timestamp,
            ) -> StoreResult<Vec<UsageInterval>> {
                let q = sqlx::query(
                    "SELECT instance_id, slug, owner_id, license_id, started_at, stopped_at, reason \
                     FROM usage_intervals WHERE started_at < $1 AND (stopped_at IS NULL OR stopped_at > $2) \
                     AND ($3 IS NULL OR owner_id = $4) ORDER BY started_at, id",
                )
                .bind(to.as_microsecond())
                .bind(from.as_microsecond())
                .bind(owner.map(|o| o.to_string()))
                .bind(owner.map(|o| o.to_string()));
                read_all(&self.readers, q, "list usage", usage_from).await
            }

            async fn create_backup(&self, b: &Backup, event: &NewEvent) -> StoreResult<()> {
                let mut tx = self.begin().await?;
                let facts = b.archive.as_ref();
                let big = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                sqlx::query(concat!(
                    "INSERT INTO backups (",
                    backup_cols!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
                ))
                .bind(b.id.to_string())
                .bind(b.instance.to_string())
                .bind(b.slug.as_str())
                .bind(b.owner.to_string())
                .bind(b.kind.as_str())
                .bind(b.status.as_str())
                .bind(b.live)
                .bind(b.locked)
                .bind(&b.created_by)
                .bind(b.created_at.as_microsecond())
                .bind(b.finished_at.map(|t| t.as_microsecond()))
                .bind(&b.target)
                .bind(facts.map(|f| f.key.as_str()))
                .bind(facts.map(|f| big(f.size)))
                .bind(facts.map(|f| f.sha256.as_str()))
                .bind(facts.map(|f| big(f.files)))
                .bind(facts.map(|f| big(f.bytes)))
                .bind(&b.error)
                .execute(&mut *tx)
                .await
                .map_err(unique_or("backup", &b.id.to_string(), "insert backup"))?;
                insert_event(&mut tx, event).await?;
                commit(tx).await
            }

            async fn finish_backup(
                &self,
                id: BackupId,
                at: Timestamp,
                outcome: Result<&ArchiveFacts, &str>,
                event: &NewEvent,
            ) -> StoreResult<Backup> {
                let mut tx = self.begin().await?;
                let big = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                let (status, facts, error) = match outcome {
                    Ok(f) => (BackupStatus::Complete, Some(f), None),
                    Err(why) => (BackupStatus::Failed, None, Some(why)),
                };
                let done = sqlx::query(
                    "UPDATE backups SET status = $1, finished_at = $2, archive_key = $3, size = $4, \
                     sha256 = $5, files = $6, bytes = $7, error = $8 \
                     WHERE id = $9 AND status = 'in_progress'",
                )
                .bind(status.as_str())
                .bind(at.as_microsecond())
                .bind(facts.map(|f| f.key.as_str()))
                .bind(facts.map(|f| big(f.size)))
                .bind(facts.map(|f| f.sha256.as_str()))
                .bind(facts.map(|f| big(f.files)))
                .bind(facts.map(|f| big(f.bytes)))
                .bind(error)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(backend("finish backup"))?;
                touched(&done, "backup in progress", id)?;
                insert_event(&mut tx, event).await?;
                let backup = backup_in(&mut tx, id).await?;
                commit(tx).await?;
                Ok(backup)
            }

            async fn backup(&self, id: BackupId) -> StoreResult<Option<Backup>> {
                let q = sqlx::query(concat!("SELECT ", backup_cols!(), " FROM backups WHERE id = $1"))
                    .bind(id.to_string());
                read_one(&self.readers, q, "get backup", backup_from).await
            }

            async fn list_backups(
                &self,
                owner: Option<UserId>,
                slug: Option<&Slug>,
            ) -> StoreResult<Vec<Backup>> {
                let q = sqlx::query(concat!(
                    "SELECT ",
                    backup_cols!(),
                    " FROM backups WHERE ($1 IS NULL OR owner_id = $1) AND ($2 IS NULL OR slug = $2) \
                     ORDER BY created_at DESC, id DESC"
                ))
                .bind(owner.map(|o| o.to_string()))
                .bind(slug.map(|s| s.as_str()));
                read_all(&self.readers, q, "list backups", backup_from).await
            }

            async fn set_backup_locked(
                &self,
                id: BackupId,
                locked: bool,
                event: &NewEvent,
            ) -> StoreResult<Backup> {
                let mut tx = self.begin().await?;
                let done = sqlx::query("UPDATE backups SET locked = $1 WHERE id = $2")
                    .bind(locked)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("lock backup"))?;
                touched(&done, "backup", id)?;
                insert_event(&mut tx, event).await?;
                let backup = backup_in(&mut tx, id).await?;
                commit(tx).await?;
                Ok(backup)
            }

            async fn delete_backup(&self, id: BackupId, event: &NewEvent) -> StoreResult<()> {
                let mut tx = self.begin().await?;
                let done = sqlx::query("DELETE FROM backups WHERE id = $1")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("delete backup"))?;
                touched(&done, "backup", id)?;
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
                    .map_err(unique_or("e-mail address", email.unwrap_or_default(), "set user email"))?;
                finish_user_update(tx, done, user, event, "set user email").await
            }

            async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
                let q = sqlx::query(concat!("SELECT ", user_cols!(), " FROM users WHERE email = $1"))
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

            async fn take_link_code(
                &self,
                code_hash: &str,
                now: Timestamp,
            ) -> StoreResult<Option<UserId>> {
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
                let q = sqlx::query(concat!("SELECT ", payment_cols!(), " FROM payments WHERE id = $1"))
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

            async fn mark_session_reminded(
                &self,
                id: SessionId,
                event: &NewEvent,
            ) -> StoreResult<bool> {
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
        }
        }
    };
}
