//! Notices between the Taverns on one store: on PostgreSQL each replica
//! hears the others' (NOTIFY/LISTEN), never its own and never those of
//! another schema's Taverns; SQLite carries none.

use std::time::Duration;

use futures_util::{FutureExt as _, StreamExt as _};
use tavern_store::NoticeStore as _;
use tavern_store_sql::testing::TestSchema;
use tavern_store_sql::{PgStore, SqliteStore};

#[tokio::test]
async fn replicas_on_one_schema_hear_each_other_and_no_one_else() {
    let (Some(ours), Some(theirs)) = (TestSchema::create().await, TestSchema::create().await)
    else {
        return;
    };
    let a = PgStore::connect(&ours.url(), 2).await.unwrap();
    let b = PgStore::connect(&ours.url(), 2).await.unwrap();
    let elsewhere = PgStore::connect(&theirs.url(), 2).await.unwrap();
    let mut heard_by_a = a
        .notices()
        .await
        .unwrap()
        .expect("PostgreSQL carries notices");
    let mut heard_by_b = b
        .notices()
        .await
        .unwrap()
        .expect("PostgreSQL carries notices");

    // A's own notices and another schema's, then B's: PostgreSQL hands
    // notices over in the order they were sent, so had A been going to
    // hear any of the first ones, it would have by the time B's arrives.
    a.announce().await.unwrap();
    a.announce().await.unwrap();
    elsewhere.announce().await.unwrap();
    b.announce().await.unwrap();
    let within = Duration::from_secs(10);
    tokio::time::timeout(within, heard_by_a.next())
        .await
        .expect("A hears B")
        .expect("the stream goes on");
    assert!(
        heard_by_a.next().now_or_never().is_none(),
        "A heard more than B's one notice"
    );
    // B hears A's two, and not its own.
    for _ in 0..2 {
        tokio::time::timeout(within, heard_by_b.next())
            .await
            .expect("B hears A")
            .expect("the stream goes on");
    }
    a.announce().await.unwrap();
    tokio::time::timeout(within, heard_by_b.next())
        .await
        .expect("B hears A again")
        .expect("the stream goes on");
    assert!(heard_by_b.next().now_or_never().is_none());
}

#[tokio::test]
async fn a_tavern_alone_on_sqlite_has_no_one_to_tell() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
    store.announce().await.unwrap();
    assert!(store.notices().await.unwrap().is_none());
}
