//! The schema itself on both engines: after all migrations SQLite and
//! PostgreSQL have the tables, columns, unique indexes and foreign keys
//! this file expects; and the database (not only the adapter) refuses a
//! second world with one slug, a world holding two keys and, on
//! PostgreSQL, overlapping reservations of one key (SQLite's adapter checks
//! those in its one-writer transaction; the conformance suite proves it).

use std::collections::BTreeSet;

use sqlx::{Connection, PgConnection, SqliteConnection};
use tavern_store_sql::testing::TestSchema;
use tavern_store_sql::{PgStore, SqliteStore};

/// `table.column type [not null]`, `unique table(columns) [partial]`,
/// `fk table.column -> table.column`: one line each, sorted.
type Schema = BTreeSet<String>;

const EXPECTED: &str = "
fk api_tokens.user_id -> users.id
outbox.attempts integer not null
outbox.created_at integer not null
outbox.delivered_at integer
outbox.destination text not null
outbox.gave_up_at integer
outbox.id integer not null
outbox.kind text not null
outbox.last_error text
outbox.message text not null
outbox.next_attempt_at integer not null
unique outbox(id)
outbox_cursor.event_seq integer not null
outbox_cursor.id integer not null
unique outbox_cursor(id)
dns_names.attempts integer not null
dns_names.checked_at integer not null
dns_names.error text
dns_names.held boolean not null
dns_names.host text not null
dns_names.next_attempt_at integer not null
dns_names.slug text not null
unique dns_names(host)
storage_places.access_key_id text
storage_places.attempts integer not null
storage_places.bucket text not null
storage_places.bytes integer
storage_places.checked_at integer not null
storage_places.error text
storage_places.folder text
storage_places.instance_id text not null
storage_places.next_attempt_at integer not null
storage_places.ready boolean not null
storage_places.secret_sealed bytes
storage_places.slug text not null
storage_places.user_name text not null
unique storage_places(instance_id)
library_packages.added_at integer not null
library_packages.added_by text not null
library_packages.bytes integer not null
library_packages.compat_maximum text
library_packages.compat_minimum text
library_packages.compat_verified text
library_packages.download_url text not null
library_packages.kind text not null
library_packages.manifest_url text not null
library_packages.package_id text not null
library_packages.requires text not null
library_packages.sha256 text not null
library_packages.title text
library_packages.version text not null
unique library_packages(kind, package_id, version)
world_packages.instance_id text not null
world_packages.kind text not null
world_packages.package_id text not null
world_packages.version text not null
unique world_packages(instance_id, kind, package_id)
fk world_packages.instance_id -> instances.id
fk world_packages.kind -> library_packages.kind
fk world_packages.package_id -> library_packages.package_id
fk world_packages.version -> library_packages.version
backup_packages.backup_id text not null
backup_packages.download_url text not null
backup_packages.kind text not null
backup_packages.manifest_url text not null
backup_packages.package_id text not null
backup_packages.sha256 text not null
backup_packages.version text not null
unique backup_packages(backup_id, kind, package_id)
fk backup_packages.backup_id -> backups.id
user_totp.user_id text not null
user_totp.secret_sealed bytes not null
user_totp.created_at integer not null
user_totp.confirmed_at integer
user_totp.last_step integer
unique user_totp(user_id)
fk user_totp.user_id -> users.id
user_recovery_codes.user_id text not null
user_recovery_codes.code_hash text not null
unique user_recovery_codes(user_id, code_hash)
fk user_recovery_codes.user_id -> users.id
user_identities.provider text not null
user_identities.subject text not null
user_identities.user_id text not null
user_identities.linked_at integer not null
unique user_identities(provider, subject)
fk user_identities.user_id -> users.id
fk link_codes.user_id -> users.id
fk payments.user_id -> users.id
link_codes.code_hash text not null
link_codes.expires_at integer not null
link_codes.user_id text not null
unique link_codes(code_hash)
payments.amount_cents integer not null
payments.currency text not null
payments.email text
payments.first_subscription boolean not null
payments.from_name text not null
payments.id text not null
payments.kind text not null
payments.message_id text not null
payments.paid_at integer not null
payments.recorded_at integer not null
payments.tier_name text
payments.user_id text
unique payments(id)
invites.code_hash text not null
invites.created_at integer not null
invites.created_by text not null
invites.expires_at integer not null
invites.id text not null
invites.max_uses integer not null
invites.role text not null
invites.tier text
invites.uses integer not null
unique invites(code_hash)
unique invites(id)
backups.archive_key text
backups.bytes integer
backups.created_at integer not null
backups.created_by text not null
backups.error text
backups.files integer
backups.finished_at integer
backups.format text not null
backups.id text not null
backups.instance_id text not null
backups.kind text not null
backups.live boolean not null
backups.locked boolean not null
backups.owner_id text not null
backups.sha256 text
backups.size integer
backups.slug text not null
backups.status text not null
backups.target text not null
unique backups(id)
sealed_values.created_at integer not null
sealed_values.name text not null
sealed_values.value bytes not null
unique sealed_values(name)
fk instances.awaits_license_id -> licenses.id
fk instances.license_id -> licenses.id
fk instances.owner_id -> users.id
fk licenses.bound_instance_id -> instances.id
fk licenses.owner_id -> users.id
fk sessions.instance_id -> instances.id
fk sessions.license_id -> licenses.id
api_tokens.created_at integer not null
api_tokens.id text not null
api_tokens.label text not null
api_tokens.token_hash text not null
api_tokens.user_id text not null
events.action text not null
events.actor text not null
events.at integer not null
events.detail text
events.id text not null
events.outcome text not null
events.seq integer not null
events.target text not null
instances.admin_key_sealed bytes
instances.awaits_license_id text
instances.created_at integer not null
instances.desired_state text not null
instances.foundry_version text
instances.id text not null
instances.idle_timeout_minutes integer
instances.last_activity_at integer
instances.license_id text
instances.owner_id text not null
instances.players integer not null
instances.release text
instances.runtime text not null
instances.slug text not null
instances.sockets integer not null
instances.state text not null
instances.state_reason text
instances.updated_at integer not null
instances.wake_on_visit text
instances.world text
licenses.bound_instance_id text
licenses.created_at integer not null
licenses.id text not null
licenses.key_last4 text not null
licenses.key_sealed bytes not null
licenses.label text not null
licenses.owner_id text
sessions.created_at integer not null
sessions.created_by text not null
sessions.ends_at integer not null
sessions.id text not null
sessions.instance_id text not null
sessions.license_id text not null
sessions.prepared_at integer
sessions.reminded_at integer
sessions.starts_at integer not null
sessions.window_end integer not null
sessions.window_start integer not null
usage_intervals.id integer not null
usage_intervals.instance_id text not null
usage_intervals.license_id text
usage_intervals.owner_id text not null
usage_intervals.reason text
usage_intervals.slug text not null
usage_intervals.started_at integer not null
usage_intervals.stopped_at integer
unique api_tokens(id)
unique api_tokens(token_hash)
unique events(id)
unique events(seq)
unique instances(id)
unique instances(slug)
unique licenses(bound_instance_id) partial
unique licenses(id)
unique sessions(id)
unique usage_intervals(id)
unique usage_intervals(instance_id) partial
unique users(discord_id) partial
unique users(email) partial
unique users(id)
unique users(username)
users.created_at integer not null
users.discord_id text
users.email text
users.webhook_sealed bytes
users.id text not null
users.password_hash text
users.role text not null
users.tier text
users.username text not null
";

fn expected() -> Schema {
    EXPECTED
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One engine's type names, in the words of [`EXPECTED`].
fn kind(t: &str) -> &'static str {
    match t.to_ascii_lowercase().as_str() {
        "text" => "text",
        "integer" | "bigint" => "integer",
        "blob" | "bytea" => "bytes",
        "boolean" => "boolean",
        other => panic!("a column of unexpected type {other}"),
    }
}

fn column(table: &str, name: &str, t: &str, not_null: bool) -> String {
    let null = if not_null { " not null" } else { "" };
    format!("{table}.{name} {}{null}", kind(t))
}

fn unique(table: &str, cols: &[String], partial: bool) -> String {
    let partial = if partial { " partial" } else { "" };
    format!("unique {table}({}){partial}", cols.join(", "))
}

async fn sqlite_schema(conn: &mut SqliteConnection) -> Schema {
    let mut out = Schema::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for t in tables {
        let cols: Vec<(String, String, bool, i64)> =
            sqlx::query_as("SELECT name, type, \"notnull\", pk FROM pragma_table_info($1)")
                .bind(&t)
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        let mut key: Vec<(i64, String)> = Vec::new();
        for (name, ty, not_null, pk) in cols {
            // A primary key is never null (SQLite says so only for INTEGER ones).
            out.insert(column(&t, &name, &ty, not_null || pk > 0));
            if pk > 0 {
                key.push((pk, name));
            }
        }
        // One unique key over a primary key's columns, in its order.
        key.sort();
        if !key.is_empty() {
            let names: Vec<String> = key.into_iter().map(|(_, n)| n).collect();
            out.insert(unique(&t, &names, false));
        }
        let indexes: Vec<(String, bool, bool, String)> =
            sqlx::query_as("SELECT name, \"unique\", partial, origin FROM pragma_index_list($1)")
                .bind(&t)
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        for (index, is_unique, partial, origin) in indexes {
            if !is_unique || origin == "pk" {
                continue;
            }
            let cols: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                    .bind(&index)
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
            out.insert(unique(&t, &cols, partial));
        }
        let fks: Vec<(String, String, String)> =
            sqlx::query_as("SELECT \"from\", \"table\", \"to\" FROM pragma_foreign_key_list($1)")
                .bind(&t)
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        for (from, table, to) in fks {
            out.insert(format!("fk {t}.{from} -> {table}.{to}"));
        }
    }
    out
}

async fn postgres_schema(conn: &mut PgConnection) -> Schema {
    let mut out = Schema::new();
    let cols: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
         FROM information_schema.columns WHERE table_schema = current_schema() \
         AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for (t, name, ty, nullable) in cols {
        out.insert(column(&t, &name, &ty, nullable == "NO"));
    }
    let indexes: Vec<(String, Vec<String>, bool)> = sqlx::query_as(
        "SELECT t.relname::text, \
         ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(n, o) \
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n ORDER BY k.o), \
         i.indpred IS NOT NULL \
         FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid \
         WHERE i.indisunique AND t.relnamespace = current_schema()::regnamespace \
         AND t.relname NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for (t, cols, partial) in indexes {
        out.insert(unique(&t, &cols, partial));
    }
    let fks: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, a.attname::text, c.confrelid::regclass::text, f.attname::text \
         FROM pg_constraint c CROSS JOIN LATERAL unnest(c.conkey, c.confkey) AS k(from_n, to_n) \
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.from_n \
         JOIN pg_attribute f ON f.attrelid = c.confrelid AND f.attnum = k.to_n \
         WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for (t, from, table, to) in fks {
        out.insert(format!("fk {t}.{from} -> {table}.{to}"));
    }
    out
}

/// Lines in one schema and not the other, for a readable failure.
fn differences(engine: &str, got: &Schema) -> String {
    let want = expected();
    let extra: Vec<_> = got.difference(&want).collect();
    let missing: Vec<_> = want.difference(got).collect();
    format!("{engine}: unexpected {extra:#?}, missing {missing:#?}")
}

async fn fresh_sqlite() -> (tempfile::TempDir, SqliteConnection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tavern.db");
    SqliteStore::open(&path).await.unwrap().close().await;
    let url = format!("sqlite://{}", path.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut conn)
        .await
        .unwrap();
    (dir, conn)
}

async fn fresh_postgres(schema: &TestSchema) -> PgConnection {
    PgStore::connect(&schema.url(), 1)
        .await
        .unwrap()
        .close()
        .await;
    PgConnection::connect(&schema.url()).await.unwrap()
}

#[tokio::test]
async fn both_engines_reach_the_expected_schema() {
    let (_dir, mut sqlite) = fresh_sqlite().await;
    let got = sqlite_schema(&mut sqlite).await;
    assert_eq!(got, expected(), "{}", differences("sqlite", &got));
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let mut pg = fresh_postgres(&schema).await;
    let got = postgres_schema(&mut pg).await;
    assert_eq!(got, expected(), "{}", differences("postgres", &got));
    // PostgreSQL's own guard against overlapping reservations.
    let exclusion: Vec<String> = sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint WHERE contype = 'x' \
         AND connamespace = current_schema()::regnamespace",
    )
    .fetch_all(&mut pg)
    .await
    .unwrap();
    assert_eq!(exclusion, ["sessions_no_overlap"]);
}

/// Writes rows straight into the tables, past the adapter, on either
/// engine (the SQL is the same on both), and answers what the database
/// said to each statement that must be refused.
macro_rules! refusals {
    ($conn:expr) => {{
        let conn = $conn;
        let ok = |r: Result<_, sqlx::Error>| r.map(|_| ()).unwrap();
        ok(sqlx::query(
            "INSERT INTO users (id, username, role, created_at) VALUES ('u', 'alice', 'gm', 0)",
        )
        .execute(&mut *conn)
        .await);
        for (id, label) in [("k1", "one"), ("k2", "two")] {
            ok(sqlx::query(
                "INSERT INTO licenses (id, label, key_sealed, key_last4, created_at) \
                 VALUES ($1, $2, $3, 'WXYZ', 0)",
            )
            .bind(id)
            .bind(label)
            .bind(vec![1u8, 2, 3])
            .execute(&mut *conn)
            .await);
        }
        let world = "INSERT INTO instances (id, slug, owner_id, runtime, desired_state, state, \
                     created_at, updated_at) VALUES ($1, 'dragon', 'u', 'process', 'stopped', 'stopped', 0, 0)";
        ok(sqlx::query(world).bind("i1").execute(&mut *conn).await);
        let second_slug = sqlx::query(world).bind("i2").execute(&mut *conn).await;
        let bind = "UPDATE licenses SET bound_instance_id = 'i1' WHERE id = $1";
        ok(sqlx::query(bind).bind("k1").execute(&mut *conn).await);
        let second_key = sqlx::query(bind).bind("k2").execute(&mut *conn).await;
        let reserve = "INSERT INTO sessions (id, instance_id, license_id, starts_at, ends_at, \
                       window_start, window_end, created_by, created_at) \
                       VALUES ($1, 'i1', 'k1', $2, $3, $2, $3, 'tester', 0)";
        ok(sqlx::query(reserve).bind("s1").bind(0i64).bind(10i64).execute(&mut *conn).await);
        // Back to back is fine; overlapping is not.
        ok(sqlx::query(reserve).bind("s2").bind(10i64).bind(20i64).execute(&mut *conn).await);
        let overlap = sqlx::query(reserve).bind("s3").bind(5i64).bind(15i64).execute(&mut *conn).await;
        (second_slug.map(|_| ()), second_key.map(|_| ()), overlap.map(|_| ()))
    }};
}

fn is_unique_violation(r: Result<(), sqlx::Error>) -> bool {
    matches!(r, Err(sqlx::Error::Database(d)) if d.is_unique_violation())
}

#[tokio::test]
async fn the_database_refuses_a_shared_slug_and_a_world_with_two_keys() {
    let (_dir, mut sqlite) = fresh_sqlite().await;
    let (slug, key, _) = refusals!(&mut sqlite);
    assert!(
        is_unique_violation(slug),
        "sqlite: a second world named dragon"
    );
    assert!(
        is_unique_violation(key),
        "sqlite: one world bound to two keys"
    );

    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let mut pg = fresh_postgres(&schema).await;
    // Each refusal in a transaction of its own (a failed statement ends
    // PostgreSQL's transaction): the statements run in autocommit.
    let (slug, key, overlap) = refusals!(&mut pg);
    assert!(
        is_unique_violation(slug),
        "postgres: a second world named dragon"
    );
    assert!(
        is_unique_violation(key),
        "postgres: one world bound to two keys"
    );
    // The exclusion constraint is deferred: in autocommit it is checked as
    // the statement commits.
    match overlap {
        Err(sqlx::Error::Database(d)) => assert_eq!(d.code().as_deref(), Some("23P01"), "{d}"),
        other => panic!("postgres took overlapping reservations of one key: {other:?}"),
    }
}
