//! `[storage]`: object storage for worlds' uploads (Foundry's S3
//! integration). With `provider = "s3"` each world gets a bucket of its own
//! (or, with `bucket` set, a folder of that shared bucket) and a key that
//! reaches only it, made through S3's and IAM's APIs (AWS's, or another
//! provider's at `endpoint`) with Tavern's own access key or the AWS SDK's
//! default credentials.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::community::secret_value;

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StorageProvider {
    /// Worlds keep their uploads in their own data folder.
    #[default]
    None,
    /// S3's and IAM's APIs: AWS, or a provider that speaks both.
    S3,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OnDestroy {
    /// A destroyed world's uploads stay where they are (its key is
    /// deleted): nothing is lost until an admin deletes them.
    #[default]
    Keep,
    /// A destroyed world's uploads are deleted with its key.
    Remove,
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub provider: StorageProvider,
    /// One bucket for every world, a folder each; a bucket per world when
    /// left out.
    pub bucket: Option<String>,
    /// What worlds' buckets' (or folders') and users' names begin with.
    pub name_prefix: String,
    pub region: String,
    /// S3's endpoint, for a provider other than AWS.
    pub endpoint: Option<String>,
    /// The endpoint as Foundry's servers reach it, when not `endpoint`.
    pub foundry_endpoint: Option<String>,
    /// IAM's endpoint, for a provider other than AWS (default: `endpoint`).
    pub iam_endpoint: Option<String>,
    /// Buckets addressed in the path, not the host name (default: on with
    /// an `endpoint`, off at AWS).
    pub path_style: Option<bool>,
    /// Tavern's own key, allowed to make buckets and IAM users; the AWS
    /// SDK's default chain (environment, profile, the instance's or task's
    /// role) when left out.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
    /// What becomes of a destroyed world's uploads.
    pub on_destroy: OnDestroy,
    /// How often what each world stores is counted.
    pub recount_seconds: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            provider: StorageProvider::None,
            bucket: None,
            name_prefix: "tavern-".into(),
            region: "us-east-1".into(),
            endpoint: None,
            foundry_endpoint: None,
            iam_endpoint: None,
            path_style: None,
            access_key_id: None,
            secret_access_key: None,
            secret_access_key_file: None,
            on_destroy: OnDestroy::Keep,
            recount_seconds: 3600,
        }
    }
}

/// Shows whether the secret key is set, not the key.
impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("provider", &self.provider)
            .field("bucket", &self.bucket)
            .field("name_prefix", &self.name_prefix)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("foundry_endpoint", &self.foundry_endpoint)
            .field("iam_endpoint", &self.iam_endpoint)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<hidden>"),
            )
            .field("secret_access_key_file", &self.secret_access_key_file)
            .field("on_destroy", &self.on_destroy)
            .field("recount_seconds", &self.recount_seconds)
            .finish()
    }
}

fn invalid(why: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("invalid configuration: {why}")
}

impl StorageConfig {
    /// What worlds' storage needs, ready to use; `None` without a
    /// provider. Checks everything; nothing is sent.
    pub fn uploads(&self) -> anyhow::Result<Option<tavern_core::storage::WorldUploads>> {
        if self.provider == StorageProvider::None {
            return Ok(None);
        }
        anyhow::ensure!(
            self.recount_seconds >= 1,
            invalid("storage.recount_seconds is at least 1")
        );
        let layout = match &self.bucket {
            Some(bucket) => tavern_storage::Layout::folder_per_world(bucket, &self.name_prefix),
            None => tavern_storage::Layout::bucket_per_world(&self.name_prefix),
        }
        .map_err(|e| invalid(format!("storage: {e}")))?;
        for (key, url) in [
            ("storage.endpoint", &self.endpoint),
            ("storage.foundry_endpoint", &self.foundry_endpoint),
            ("storage.iam_endpoint", &self.iam_endpoint),
        ] {
            if let Some(url) = url {
                let parsed: axum::http::Uri = url
                    .parse()
                    .map_err(|e| invalid(format!("{key} {url:?} is not a URL: {e}")))?;
                anyhow::ensure!(
                    matches!(parsed.scheme_str(), Some("http" | "https"))
                        && parsed.host().is_some(),
                    invalid(format!("{key} {url:?} is not an http(s) URL"))
                );
            }
        }
        anyhow::ensure!(
            self.foundry_endpoint.is_none() || self.endpoint.is_some(),
            invalid(
                "storage.foundry_endpoint is another address of storage.endpoint: set that too"
            )
        );
        let secret = secret_value(
            "storage.secret_access_key",
            &self.secret_access_key,
            &self.secret_access_key_file,
        )?;
        let access_key = match (&self.access_key_id, secret) {
            (Some(id), Some(secret)) => Some((id.clone(), secret)),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "storage.access_key_id and storage.secret_access_key go together (or leave both out for the AWS SDK's default credentials)",
                ));
            }
        };
        let foundry = tavern_storage::FoundryEndpoint {
            region: self.region.clone(),
            endpoint: self.foundry_endpoint.clone().or(self.endpoint.clone()),
            path_style: self.path_style.unwrap_or(self.endpoint.is_some()),
        };
        let storage = self.driver(layout, foundry, access_key)?;
        Ok(Some(tavern_core::storage::WorldUploads::new(
            storage,
            self.on_destroy == OnDestroy::Keep,
            jiff::SignedDuration::from_secs(i64::from(self.recount_seconds)),
        )))
    }

    #[cfg(not(feature = "object-storage"))]
    fn driver(
        &self,
        _layout: tavern_storage::Layout,
        _foundry: tavern_storage::FoundryEndpoint,
        _access_key: Option<(String, String)>,
    ) -> anyhow::Result<std::sync::Arc<dyn tavern_storage::WorldStorage>> {
        // Refused before this by `check_features`, with how to get it.
        Err(invalid(
            "storage.provider = \"s3\" needs a build with --features object-storage",
        ))
    }

    #[cfg(feature = "object-storage")]
    fn driver(
        &self,
        layout: tavern_storage::Layout,
        foundry: tavern_storage::FoundryEndpoint,
        access_key: Option<(String, String)>,
    ) -> anyhow::Result<std::sync::Arc<dyn tavern_storage::WorldStorage>> {
        use tavern_storage::aws::{AwsSettings, AwsStorage};
        let storage = AwsStorage::new(AwsSettings {
            layout,
            foundry,
            s3_endpoint: self.endpoint.clone(),
            iam_endpoint: self.iam_endpoint.clone().or(self.endpoint.clone()),
            access_key,
        })
        .map_err(|e| invalid(format!("storage: {e}")))?;
        Ok(std::sync::Arc::new(storage))
    }
}
