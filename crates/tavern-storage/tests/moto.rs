//! The AWS driver against moto's S3 and IAM with IAM's checks on: what a
//! world's key may reach, what provisioning makes, what removal leaves.

use secrecy::ExposeSecret;
use tavern_storage::aws::{AwsSettings, AwsStorage};
use tavern_storage::testing::{Provider, put, s3};
use tavern_storage::{FoundryEndpoint, Layout, WorldStorage};
use tavern_types::{InstanceId, Slug};

fn storage(p: &Provider, layout: Layout) -> AwsStorage {
    AwsStorage::new(AwsSettings {
        layout,
        foundry: FoundryEndpoint {
            region: "us-east-1".into(),
            endpoint: Some(p.endpoint().to_owned()),
            path_style: true,
        },
        s3_endpoint: Some(p.endpoint().to_owned()),
        iam_endpoint: Some(p.endpoint().to_owned()),
        access_key: Some(p.tavern.clone()),
    })
    .unwrap()
}

fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap()
}

#[tokio::test]
async fn each_world_gets_a_bucket_and_a_key_that_reaches_only_it() {
    let Some(p) = Provider::start().await else {
        return;
    };
    let st = storage(&p, Layout::bucket_per_world("tavern-").unwrap());
    let a = st.layout().place(&slug("alpha"), InstanceId::new());
    let b = st.layout().place(&slug("beta"), InstanceId::new());
    let ka = st.provision(&a, "https://alpha.games.test").await.unwrap();
    let kb = st.provision(&b, "https://beta.games.test").await.unwrap();
    let key_a = (ka.access_key_id.as_str(), ka.secret.expose_secret());
    let ep = p.endpoint();

    put(ep, key_a, &a.bucket, "maps/cave.webp", b"0123456789")
        .await
        .unwrap();
    assert_eq!(
        put(ep, key_a, &b.bucket, "x.webp", b"1").await,
        Err("AccessDenied".into()),
        "a world's key wrote into another world's bucket"
    );
    let listed = s3(ep, key_a.0, key_a.1)
        .list_objects_v2()
        .bucket(&b.bucket)
        .send()
        .await;
    assert!(
        listed.is_err(),
        "a world's key listed another world's bucket"
    );
    assert_eq!(st.usage(&a).await.unwrap(), 10);
    assert_eq!(st.usage(&b).await.unwrap(), 0);

    let cors = p
        .admin_s3()
        .get_bucket_cors()
        .bucket(&a.bucket)
        .send()
        .await
        .unwrap();
    let rule = &cors.cors_rules()[0];
    assert_eq!(rule.allowed_origins(), ["https://alpha.games.test"]);
    assert_eq!(rule.allowed_methods(), ["GET", "HEAD", "POST"]);
    let policy = p
        .admin_s3()
        .get_bucket_policy()
        .bucket(&a.bucket)
        .send()
        .await
        .unwrap();
    assert!(policy.policy().unwrap().contains("PlayersReadUploads"));

    // Again: the bucket stays as it is, the earlier key is gone.
    let again = st.provision(&a, "https://alpha.games.test").await.unwrap();
    assert_ne!(again.access_key_id, ka.access_key_id);
    assert!(put(ep, key_a, &a.bucket, "y.webp", b"1").await.is_err());
    let key_a2 = (again.access_key_id.as_str(), again.secret.expose_secret());
    put(ep, key_a2, &a.bucket, "y.webp", b"1").await.unwrap();
    assert_eq!(st.usage(&a).await.unwrap(), 11);

    // Removed with its data: no bucket, no user; kept: the bucket stays,
    // its key does not.
    st.remove(&a, true).await.unwrap();
    st.remove(&b, false).await.unwrap();
    assert_eq!(p.buckets().await, vec![b.bucket.clone()]);
    assert!(p.users().await.is_empty(), "{:?}", p.users().await);
    let key_b = (kb.access_key_id.as_str(), kb.secret.expose_secret());
    assert!(put(ep, key_b, &b.bucket, "z.webp", b"1").await.is_err());
    // What is already gone is no error.
    st.remove(&a, true).await.unwrap();
}

#[tokio::test]
async fn worlds_in_one_shared_bucket_reach_only_their_folders() {
    let Some(p) = Provider::start().await else {
        return;
    };
    let st = storage(
        &p,
        Layout::folder_per_world("tavern-uploads", "w-").unwrap(),
    );
    let a = st.layout().place(&slug("alpha"), InstanceId::new());
    let b = st.layout().place(&slug("beta"), InstanceId::new());
    let ka = st.provision(&a, "https://*.games.test").await.unwrap();
    st.provision(&b, "https://*.games.test").await.unwrap();
    let key_a = (ka.access_key_id.as_str(), ka.secret.expose_secret());
    let ep = p.endpoint();

    let mine = format!("{}tokens/hero.png", a.key_prefix());
    put(ep, key_a, "tavern-uploads", &mine, b"12345")
        .await
        .unwrap();
    let theirs = format!("{}tokens/hero.png", b.key_prefix());
    assert_eq!(
        put(ep, key_a, "tavern-uploads", &theirs, b"1").await,
        Err("AccessDenied".into())
    );
    assert_eq!(
        put(ep, key_a, "tavern-uploads", "top.png", b"1").await,
        Err("AccessDenied".into())
    );
    // A neighbour whose folder's name begins as this one's is not counted
    // nor removed with it.
    let neighbour = format!("{}-x/map.png", a.folder.as_deref().unwrap());
    let admin = (p.tavern.0.as_str(), p.tavern.1.as_str());
    put(ep, admin, "tavern-uploads", &neighbour, b"123")
        .await
        .unwrap();
    assert_eq!(st.usage(&a).await.unwrap(), 5);

    st.remove(&a, true).await.unwrap();
    assert_eq!(st.usage(&a).await.unwrap(), 0);
    let left = p
        .admin_s3()
        .list_objects_v2()
        .bucket("tavern-uploads")
        .send()
        .await
        .unwrap();
    let left: Vec<_> = left.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(left, [neighbour.as_str()]);
    assert_eq!(p.buckets().await, vec!["tavern-uploads".to_owned()]);
    assert_eq!(p.users().await, vec![b.user.clone()]);
}
