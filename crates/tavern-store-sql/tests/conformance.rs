//! The Store conformance suite against SQLite (each test on a fresh file)
//! and PostgreSQL (each test in a fresh schema of the test database).

async fn fresh() -> (tempfile::TempDir, tavern_store_sql::SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = tavern_store_sql::SqliteStore::open(&dir.path().join("tavern.db"))
        .await
        .unwrap();
    (dir, store)
}

mod sqlite {
    use super::fresh;

    tavern_store::conformance_tests!({
        let (dir, store) = fresh().await;
        Some(Guard(dir, store))
    });

    /// Keeps the temp dir alive as long as the store.
    struct Guard(
        #[allow(dead_code)] tempfile::TempDir,
        tavern_store_sql::SqliteStore,
    );

    impl std::ops::Deref for Guard {
        type Target = tavern_store_sql::SqliteStore;
        fn deref(&self) -> &Self::Target {
            &self.1
        }
    }
}

mod postgres {
    use tavern_store_sql::PgStore;
    use tavern_store_sql::testing::TestSchema;

    tavern_store::conformance_tests!({
        match TestSchema::create().await {
            Some(schema) => Some(Guard(
                PgStore::connect(&schema.url(), 8).await.unwrap(),
                schema,
            )),
            None => None,
        }
    });

    /// Closes the pool, then drops the schema.
    struct Guard(PgStore, #[allow(dead_code)] TestSchema);

    impl std::ops::Deref for Guard {
        type Target = PgStore;
        fn deref(&self) -> &Self::Target {
            &self.0
        }
    }
}

#[tokio::test]
async fn state_survives_reopening() {
    use tavern_store::{NewEvent, User, UserStore, now};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tavern.db");
    let user = User {
        id: tavern_types::UserId::new(),
        username: "alice".parse().unwrap(),
        role: tavern_types::Role::Admin,
        password_hash: None,
        created_at: now(),
        tier: None,
        email: None,
    };
    {
        let store = tavern_store_sql::SqliteStore::open(&path).await.unwrap();
        store
            .create_user(
                &user,
                &NewEvent::success("system", "user.create", "user:alice"),
            )
            .await
            .unwrap();
        store.close().await;
    }
    let store = tavern_store_sql::SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.list_users().await.unwrap(), vec![user]);
}
