//! For tests (here and Tavern's): moto's server with IAM's checks on, so
//! that a key is refused wherever its policy does not reach; Tavern's own
//! key made in it as an admin would; and clients that act as a world.

use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Credentials, Region};
pub use tavern_dns::testing::moto::Moto;

/// moto answering S3 and IAM with IAM's checks on, and a key for Tavern
/// that may do anything.
pub struct Provider {
    pub moto: Moto,
    /// Tavern's access key id and secret.
    pub tavern: (String, String),
}

/// IAM's checks begin after this many requests: the three that make
/// Tavern's key.
const UNCHECKED: &str = "3";

fn s3_config(endpoint: &str, id: &str, secret: &str) -> aws_sdk_s3::Config {
    aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(id, secret, None, None, "test"))
        .build()
}

/// An S3 client with the key `id`/`secret` (a world's, or Tavern's).
pub fn s3(endpoint: &str, id: &str, secret: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(s3_config(endpoint, id, secret))
}

/// An IAM client with the key `id`/`secret`.
pub fn iam(endpoint: &str, id: &str, secret: &str) -> aws_sdk_iam::Client {
    let conf = aws_sdk_iam::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(id, secret, None, None, "test"))
        .build();
    aws_sdk_iam::Client::from_conf(conf)
}

impl Provider {
    /// Started, with Tavern's key made; `None` (the test skips) where moto
    /// is not installed, except under `CI=true`.
    pub async fn start() -> Option<Self> {
        let moto = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", UNCHECKED)])?;
        let admin = iam(&moto.endpoint, "AKIDBOOTSTRAP", "x");
        admin
            .create_user()
            .user_name("tavern")
            .send()
            .await
            .unwrap();
        admin
            .put_user_policy()
            .user_name("tavern")
            .policy_name("everything")
            .policy_document(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            )
            .send()
            .await
            .unwrap();
        let made = admin
            .create_access_key()
            .user_name("tavern")
            .send()
            .await
            .unwrap();
        let key = made.access_key().unwrap();
        Some(Provider {
            tavern: (
                key.access_key_id().to_owned(),
                key.secret_access_key().to_owned(),
            ),
            moto,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.moto.endpoint
    }

    /// An S3 client with Tavern's key.
    pub fn admin_s3(&self) -> aws_sdk_s3::Client {
        s3(self.endpoint(), &self.tavern.0, &self.tavern.1)
    }

    /// An IAM client with Tavern's key.
    pub fn admin_iam(&self) -> aws_sdk_iam::Client {
        iam(self.endpoint(), &self.tavern.0, &self.tavern.1)
    }

    /// Every bucket's name.
    pub async fn buckets(&self) -> Vec<String> {
        let all = self.admin_s3().list_buckets().send().await.unwrap();
        all.buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_owned))
            .collect()
    }

    /// Every user's name under Tavern's path.
    pub async fn users(&self) -> Vec<String> {
        let all = self
            .admin_iam()
            .list_users()
            .path_prefix(crate::USER_PATH)
            .send()
            .await
            .unwrap();
        all.users()
            .iter()
            .map(|u| u.user_name().to_owned())
            .collect()
    }
}

/// Whether the key `id`/`secret` may write `key` into `bucket`: `Ok` when
/// it may, the provider's error code when not.
pub async fn put(
    endpoint: &str,
    (id, secret): (&str, &str),
    bucket: &str,
    key: &str,
    body: &[u8],
) -> Result<(), String> {
    s3(endpoint, id, secret)
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.to_vec().into())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                .unwrap_or("error")
                .to_owned()
        })
}
