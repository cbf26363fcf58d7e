//! The storage driver for AWS and S3-compatible providers with IAM's API:
//! buckets, their CORS rule and public reads through S3's API, each
//! world's user, policy and key through IAM's (the AWS SDK for both).
//! Tavern's own credentials come from the configuration or the SDK's
//! default chain.

use std::time::Duration;

use async_trait::async_trait;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{
    BucketLocationConstraint, CorsConfiguration, CorsRule, CreateBucketConfiguration, Delete,
    ObjectIdentifier, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
    PublicAccessBlockConfiguration,
};
use tokio::sync::OnceCell;

use crate::{
    CORS_METHODS, FoundryEndpoint, Key, Layout, Place, StorageError, USER_PATH, USER_POLICY,
    WorldStorage, key_policy, public_read_policy,
};

/// How Tavern reaches the provider.
#[derive(Clone)]
pub struct AwsSettings {
    pub layout: Layout,
    pub foundry: FoundryEndpoint,
    /// S3's endpoint as Tavern reaches it (AWS's when `None`).
    pub s3_endpoint: Option<String>,
    /// IAM's endpoint (AWS's when `None`).
    pub iam_endpoint: Option<String>,
    /// Tavern's access key and secret; the SDK's default chain when `None`.
    pub access_key: Option<(String, String)>,
}

/// Shows whether a secret key is set, not the key.
impl std::fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSettings")
            .field("layout", &self.layout)
            .field("foundry", &self.foundry)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("iam_endpoint", &self.iam_endpoint)
            .field("access_key", &self.access_key.as_ref().map(|(id, _)| id))
            .finish()
    }
}

/// Worlds' storage at AWS or a provider that speaks its APIs.
pub struct AwsStorage {
    settings: AwsSettings,
    clients: OnceCell<(aws_sdk_s3::Client, aws_sdk_iam::Client)>,
}

/// The provider's error code and words, never a key.
fn code_of<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

fn failure<E, R>(what: &str, e: SdkError<E, R>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            let code = err.code().unwrap_or("error");
            let text = format!("{what}: {} ({code})", err.message().unwrap_or(code));
            match code {
                "Throttling"
                | "ThrottlingException"
                | "SlowDown"
                | "ServiceUnavailable"
                | "InternalError"
                | "ServiceFailure" => StorageError::Unreachable(text),
                _ => StorageError::Refused(text),
            }
        }
        SdkError::ConstructionFailure(_) => StorageError::Invalid(format!("{what}: {e}")),
        _ => StorageError::Unreachable(format!(
            "{what}: {}",
            std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string())
        )),
    }
}

/// `result`, with the provider's `codes` (what is already done) taken as
/// success.
fn allowing<T, E, R>(
    what: &str,
    result: Result<T, SdkError<E, R>>,
    codes: &[&str],
) -> Result<(), StorageError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if code_of(&e).is_some_and(|c| codes.contains(&c)) => Ok(()),
        Err(e) => Err(failure(what, e)),
    }
}

impl AwsStorage {
    /// Checks the settings; nothing is sent yet.
    pub fn new(settings: AwsSettings) -> Result<Self, StorageError> {
        if settings.foundry.region.trim().is_empty() {
            return Err(StorageError::Invalid(
                "the storage's region is empty".into(),
            ));
        }
        if let Some((id, secret)) = &settings.access_key
            && (id.trim().is_empty() || secret.trim().is_empty())
        {
            return Err(StorageError::Invalid(
                "the storage's access key is empty".into(),
            ));
        }
        Ok(Self {
            settings,
            clients: OnceCell::new(),
        })
    }

    async fn clients(&self) -> &(aws_sdk_s3::Client, aws_sdk_iam::Client) {
        self.clients
            .get_or_init(|| async {
                let s = &self.settings;
                // Bounded: a provider that does not answer holds up a
                // world's start (or the leader's loop) a minute at most.
                let timeouts = TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(20))
                    .operation_timeout(Duration::from_secs(60))
                    .build();
                let mut conf = aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new(s.foundry.region.clone()))
                    .timeout_config(timeouts);
                if let Some((id, secret)) = &s.access_key {
                    conf = conf.credentials_provider(aws_sdk_s3::config::Credentials::new(
                        id, secret, None, None, "tavern",
                    ));
                }
                let shared = conf.load().await;
                let mut s3 = aws_sdk_s3::config::Builder::from(&shared)
                    .force_path_style(s.foundry.path_style);
                if let Some(url) = &s.s3_endpoint {
                    s3 = s3.endpoint_url(url);
                }
                let mut iam = aws_sdk_iam::config::Builder::from(&shared);
                if let Some(url) = &s.iam_endpoint {
                    iam = iam.endpoint_url(url);
                }
                (
                    aws_sdk_s3::Client::from_conf(s3.build()),
                    aws_sdk_iam::Client::from_conf(iam.build()),
                )
            })
            .await
    }

    /// The bucket, made if it is not there, with what Foundry needs.
    async fn bucket(&self, bucket: &str, origin: &str) -> Result<(), StorageError> {
        let (s3, _) = self.clients().await;
        let region = &self.settings.foundry.region;
        let mut create = s3.create_bucket().bucket(bucket);
        if region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => {}
            Err(e) if code_of(&e) == Some("BucketAlreadyOwnedByYou") => {}
            Err(e) if code_of(&e) == Some("BucketAlreadyExists") => {
                return Err(StorageError::Refused(format!(
                    "the bucket name {bucket} is taken by someone else at the provider"
                )));
            }
            Err(e) => return Err(failure(&format!("making the bucket {bucket}"), e)),
        }
        // Foundry sets a public-read ACL on what it uploads: ACLs stay on.
        let owner = OwnershipControls::builder()
            .rules(
                OwnershipControlsRule::builder()
                    .object_ownership(ObjectOwnership::BucketOwnerPreferred)
                    .build()
                    .map_err(|e| StorageError::Invalid(e.to_string()))?,
            )
            .build()
            .map_err(|e| StorageError::Invalid(e.to_string()))?;
        let done = s3
            .put_bucket_ownership_controls()
            .bucket(bucket)
            .ownership_controls(owner)
            .send()
            .await;
        allowing(&format!("{bucket}'s object ownership"), done, &[])?;
        let open = PublicAccessBlockConfiguration::builder()
            .block_public_acls(false)
            .ignore_public_acls(false)
            .block_public_policy(false)
            .restrict_public_buckets(false)
            .build();
        let done = s3
            .put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(open)
            .send()
            .await;
        allowing(&format!("{bucket}'s public access"), done, &[])?;
        let done = s3
            .put_bucket_policy()
            .bucket(bucket)
            .policy(public_read_policy(bucket))
            .send()
            .await;
        allowing(&format!("{bucket}'s policy"), done, &[])?;
        let rule = CorsRule::builder()
            .allowed_origins(origin)
            .set_allowed_methods(Some(CORS_METHODS.map(str::to_owned).to_vec()))
            .allowed_headers("*")
            .max_age_seconds(3000)
            .build()
            .map_err(|e| StorageError::Invalid(e.to_string()))?;
        let cors = CorsConfiguration::builder()
            .cors_rules(rule)
            .build()
            .map_err(|e| StorageError::Invalid(e.to_string()))?;
        let done = s3
            .put_bucket_cors()
            .bucket(bucket)
            .cors_configuration(cors)
            .send()
            .await;
        allowing(&format!("{bucket}'s CORS rule"), done, &[])
    }

    /// Deletes every key of `user` (there is at most one).
    async fn delete_keys(&self, user: &str) -> Result<(), StorageError> {
        let (_, iam) = self.clients().await;
        let keys = match iam.list_access_keys().user_name(user).send().await {
            Ok(k) => k,
            Err(e) if code_of(&e) == Some("NoSuchEntity") => return Ok(()),
            Err(e) => return Err(failure(&format!("listing {user}'s keys"), e)),
        };
        for k in keys.access_key_metadata() {
            let done = iam
                .delete_access_key()
                .user_name(user)
                .set_access_key_id(k.access_key_id().map(str::to_owned))
                .send()
                .await;
            allowing(
                &format!("deleting a key of {user}"),
                done,
                &["NoSuchEntity"],
            )?;
        }
        Ok(())
    }

    /// Every object key under `place`, a page at a time, to `each`.
    async fn objects(
        &self,
        place: &Place,
        mut each: impl FnMut(Vec<(String, u64)>),
    ) -> Result<(), StorageError> {
        let (s3, _) = self.clients().await;
        let prefix = place.key_prefix();
        // Asked without the folder's final slash (moto refuses the
        // signature of a listing whose prefix holds one, as boto3's too),
        // then kept to the folder here.
        let mut pages = s3
            .list_objects_v2()
            .bucket(&place.bucket)
            .prefix(prefix.trim_end_matches('/'))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(p) => p,
                Err(e) if code_of(&e) == Some("NoSuchBucket") => return Ok(()),
                Err(e) => return Err(failure(&format!("listing {}", place.words()), e)),
            };
            each(
                page.contents()
                    .iter()
                    .filter_map(|o| {
                        let size = u64::try_from(o.size().unwrap_or(0)).unwrap_or(0);
                        o.key()
                            .filter(|k| k.starts_with(&prefix))
                            .map(|k| (k.to_owned(), size))
                    })
                    .collect(),
            );
        }
        Ok(())
    }
}

#[async_trait]
impl WorldStorage for AwsStorage {
    fn layout(&self) -> &Layout {
        &self.settings.layout
    }

    fn endpoint(&self) -> &FoundryEndpoint {
        &self.settings.foundry
    }

    async fn provision(&self, place: &Place, origin: &str) -> Result<Key, StorageError> {
        self.bucket(&place.bucket, origin).await?;
        let (_, iam) = self.clients().await;
        let user = &place.user;
        let made = iam
            .create_user()
            .user_name(user)
            .path(USER_PATH)
            .send()
            .await;
        allowing(
            &format!("making the user {user}"),
            made,
            &["EntityAlreadyExists"],
        )?;
        let done = iam
            .put_user_policy()
            .user_name(user)
            .policy_name(USER_POLICY)
            .policy_document(key_policy(place))
            .send()
            .await;
        allowing(&format!("{user}'s policy"), done, &[])?;
        // A key made before and never kept (Tavern stopped halfway) is
        // deleted: only the key answered here is ever used.
        self.delete_keys(user).await?;
        let made = iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .map_err(|e| failure(&format!("making {user}'s key"), e))?;
        let key = made.access_key().ok_or_else(|| {
            StorageError::Refused(format!(
                "the provider made {user}'s key but did not answer it"
            ))
        })?;
        Ok(Key {
            access_key_id: key.access_key_id().to_owned(),
            secret: key.secret_access_key().to_owned().into(),
        })
    }

    async fn usage(&self, place: &Place) -> Result<u64, StorageError> {
        let mut bytes = 0u64;
        self.objects(place, |page| {
            bytes = page.iter().fold(bytes, |b, (_, s)| b.saturating_add(*s));
        })
        .await?;
        Ok(bytes)
    }

    async fn remove(&self, place: &Place, data: bool) -> Result<(), StorageError> {
        let (s3, iam) = self.clients().await;
        let user = &place.user;
        self.delete_keys(user).await?;
        let done = iam
            .delete_user_policy()
            .user_name(user)
            .policy_name(USER_POLICY)
            .send()
            .await;
        allowing(
            &format!("deleting {user}'s policy"),
            done,
            &["NoSuchEntity"],
        )?;
        let done = iam.delete_user().user_name(user).send().await;
        allowing(
            &format!("deleting the user {user}"),
            done,
            &["NoSuchEntity"],
        )?;
        if !data {
            return Ok(());
        }
        let mut keys = Vec::new();
        self.objects(place, |page| keys.extend(page.into_iter().map(|(k, _)| k)))
            .await?;
        for batch in keys.chunks(1000) {
            let ids = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StorageError::Invalid(e.to_string()))?;
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| StorageError::Invalid(e.to_string()))?;
            let done = s3
                .delete_objects()
                .bucket(&place.bucket)
                .delete(delete)
                .send()
                .await;
            allowing(
                &format!("emptying {}", place.words()),
                done,
                &["NoSuchBucket"],
            )?;
        }
        if place.folder.is_none() {
            let done = s3.delete_bucket().bucket(&place.bucket).send().await;
            allowing(
                &format!("deleting the bucket {}", place.bucket),
                done,
                &["NoSuchBucket"],
            )?;
        }
        Ok(())
    }
}
