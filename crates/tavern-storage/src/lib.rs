//! Worlds' object storage for Foundry's uploads (`[storage]`): where each
//! world keeps them (a bucket of its own, or a folder of one shared
//! bucket), the policy of the key that reaches only there, and the
//! `awsConfig` file Foundry reads. Naming, policies and the file are pure
//! and here; the driver that speaks S3's and IAM's APIs is `aws` (the
//! cargo feature of the same name).

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "testing")]
pub mod testing;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tavern_types::{InstanceId, Slug};

/// The longest bucket name S3 takes.
const BUCKET_MAX: usize = 63;
/// The longest world prefix the configuration takes: room is left for the
/// world's name and its tag.
pub const PREFIX_MAX: usize = 24;
/// Hex digits of the world's id that end its name: a world made later
/// with the same name never gets an earlier one's bucket or user.
const TAG_LEN: usize = 12;
/// The IAM path every world's user is made under.
pub const USER_PATH: &str = "/tavern/";
/// The name of the one inline policy on each world's user.
pub const USER_POLICY: &str = "tavern-world";

/// Why storage could not be set up, read or removed; never names a secret.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The settings cannot work (a bad name, a missing region).
    #[error("{0}")]
    Invalid(String),
    /// The provider answered no (a name taken, access denied).
    #[error("{0}")]
    Refused(String),
    /// The provider could not be reached or failed; worth retrying.
    #[error("{0}")]
    Unreachable(String),
}

/// Where worlds keep their uploads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A bucket for each world, named `<prefix><world>-<tag>`.
    BucketPerWorld { prefix: String },
    /// One bucket for all, a folder `<prefix><world>-<tag>/` for each.
    FolderPerWorld { bucket: String, prefix: String },
}

impl Layout {
    /// A bucket for each world, their names beginning with `prefix`.
    pub fn bucket_per_world(prefix: &str) -> Result<Self, StorageError> {
        check_prefix(prefix)?;
        Ok(Layout::BucketPerWorld {
            prefix: prefix.to_owned(),
        })
    }

    /// One shared `bucket`, a folder for each world.
    pub fn folder_per_world(bucket: &str, prefix: &str) -> Result<Self, StorageError> {
        check_bucket(bucket)?;
        check_prefix(prefix)?;
        Ok(Layout::FolderPerWorld {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// Where the world `slug` (made as `id`) keeps its uploads.
    pub fn place(&self, slug: &Slug, id: InstanceId) -> Place {
        let prefix = match self {
            Layout::BucketPerWorld { prefix } | Layout::FolderPerWorld { prefix, .. } => prefix,
        };
        let hex = id.as_uuid().simple().to_string();
        let tag = &hex[hex.len() - TAG_LEN..];
        let room = BUCKET_MAX - prefix.len() - 1 - TAG_LEN;
        let world = slug.as_str();
        let world = world[..world.len().min(room)].trim_end_matches('-');
        let name = format!("{prefix}{world}-{tag}");
        match self {
            Layout::BucketPerWorld { .. } => Place {
                bucket: name.clone(),
                folder: None,
                user: name,
            },
            Layout::FolderPerWorld { bucket, .. } => Place {
                bucket: bucket.clone(),
                folder: Some(name.clone()),
                user: name,
            },
        }
    }
}

/// A world's place in object storage, and the IAM user whose key reaches
/// only there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub bucket: String,
    /// The folder within the bucket (no slashes at either end), when the
    /// bucket is shared.
    pub folder: Option<String>,
    pub user: String,
}

impl Place {
    /// The keys of its objects begin so (empty: the whole bucket).
    pub fn key_prefix(&self) -> String {
        self.folder
            .as_deref()
            .map_or_else(String::new, |f| format!("{f}/"))
    }

    /// `bucket` or `bucket/folder/`, for people.
    pub fn words(&self) -> String {
        format!("{}/{}", self.bucket, self.key_prefix())
            .trim_end_matches('/')
            .to_owned()
    }
}

/// A world's key: its id may be shown to admins, its secret only ever goes
/// into the world's `awsConfig` file.
#[derive(Clone)]
pub struct Key {
    pub access_key_id: String,
    pub secret: SecretString,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Where Foundry finds the storage: what goes into `awsConfig` besides the
/// bucket and the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundryEndpoint {
    pub region: String,
    /// Another provider's S3 endpoint, as Foundry's server reaches it;
    /// AWS's own when `None`.
    pub endpoint: Option<String>,
    /// Buckets addressed in the path, not the host (MinIO and most
    /// S3-compatible providers on their own host names).
    pub path_style: bool,
}

/// The one port every storage driver serves.
#[async_trait]
pub trait WorldStorage: Send + Sync {
    /// Where worlds keep their uploads.
    fn layout(&self) -> &Layout;

    /// How Foundry reaches the storage.
    fn endpoint(&self) -> &FoundryEndpoint;

    /// Makes `place` ready for Foundry (the bucket, its CORS rule for
    /// `origin`, public reads of what is uploaded) and a key that reaches
    /// only it; any key made for it before is deleted. Doing it again is
    /// harmless.
    async fn provision(&self, place: &Place, origin: &str) -> Result<Key, StorageError>;

    /// The bytes stored in `place`.
    async fn usage(&self, place: &Place) -> Result<u64, StorageError>;

    /// Deletes `place`'s user and keys and, with `data`, what it holds (its
    /// bucket, or its folder's objects). What is already gone is no error.
    async fn remove(&self, place: &Place, data: bool) -> Result<(), StorageError>;
}

/// The world's `Config/awsConfig.json`, as Foundry reads it: the buckets
/// its file browser offers, the region, the key and, for providers other
/// than AWS, the endpoint and path-style addressing.
pub fn foundry_config(end: &FoundryEndpoint, place: &Place, key: &Key) -> String {
    let mut config = json!({
        "buckets": [place.bucket],
        "region": end.region,
        "credentials": {
            "accessKeyId": key.access_key_id,
            "secretAccessKey": key.secret.expose_secret(),
        },
    });
    if let (Some(url), Value::Object(map)) = (&end.endpoint, &mut config) {
        map.insert("endpoint".into(), json!(url));
        map.insert("forcePathStyle".into(), json!(end.path_style));
    }
    config.to_string()
}

/// The policy of a world's user: read, write and delete its objects
/// (with their ACLs, which Foundry sets on upload) and list only its own.
pub fn key_policy(place: &Place) -> String {
    let bucket = format!("arn:aws:s3:::{}", place.bucket);
    let prefix = place.key_prefix();
    let mut list = json!({
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": [bucket],
    });
    if !prefix.is_empty()
        && let Value::Object(map) = &mut list
    {
        map.insert(
            "Condition".into(),
            json!({"StringLike": {"s3:prefix": [prefix, format!("{prefix}*")]}}),
        );
    }
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:PutObjectAcl", "s3:DeleteObject"],
                "Resource": [format!("{bucket}/{prefix}*")],
            },
            list,
            {
                "Effect": "Allow",
                "Action": ["s3:GetBucketLocation"],
                "Resource": [bucket],
            },
        ],
    })
    .to_string()
}

/// The bucket's policy: anyone may read what is in it (Foundry hands the
/// players its objects' URLs), no one but keys may list or write.
pub fn public_read_policy(bucket: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "PlayersReadUploads",
            "Effect": "Allow",
            "Principal": "*",
            "Action": ["s3:GetObject"],
            "Resource": [format!("arn:aws:s3:::{bucket}/*")],
        }],
    })
    .to_string()
}

/// The methods Foundry's pages use on the bucket from the world's origin.
pub const CORS_METHODS: [&str; 3] = ["GET", "HEAD", "POST"];

fn check_prefix(prefix: &str) -> Result<(), StorageError> {
    let bad = |why: &str| {
        Err(StorageError::Invalid(format!(
            "the storage name prefix {prefix:?} {why}"
        )))
    };
    if prefix.len() > PREFIX_MAX {
        return bad(&format!("is longer than {PREFIX_MAX} characters"));
    }
    if !prefix
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return bad("may hold only a-z, 0-9 and -");
    }
    if prefix.starts_with('-') || prefix.starts_with("xn--") || prefix.starts_with("sthree-") {
        return bad("may not begin with -, xn-- or sthree-");
    }
    Ok(())
}

/// S3's rules for a bucket's name, as Tavern takes one.
fn check_bucket(bucket: &str) -> Result<(), StorageError> {
    let ok_chars = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if (3..=BUCKET_MAX).contains(&bucket.len())
        && ok_chars
        && ends(bucket.chars().next())
        && ends(bucket.chars().last())
        && !bucket.contains("..")
    {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "{bucket:?} is not a bucket name: 3 to 63 of a-z, 0-9, - and ., beginning and ending with a letter or digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn slug(s: &str) -> Slug {
        Slug::parse(s).unwrap()
    }

    #[test]
    fn a_world_gets_a_bucket_named_for_it_and_its_id() {
        let id = InstanceId::new();
        let hex = id.as_uuid().simple().to_string();
        let p = Layout::bucket_per_world("tavern-")
            .unwrap()
            .place(&slug("dragon-heist"), id);
        assert_eq!(p.bucket, format!("tavern-dragon-heist-{}", &hex[20..]));
        assert_eq!((p.folder, p.user), (None, p.bucket.clone()));
        let shared = Layout::folder_per_world("uploads.example", "w-")
            .unwrap()
            .place(&slug("dragon-heist"), id);
        assert_eq!(shared.bucket, "uploads.example");
        assert_eq!(
            shared.key_prefix(),
            format!("w-dragon-heist-{}/", &hex[20..])
        );
        assert_eq!(
            shared.words(),
            format!("uploads.example/w-dragon-heist-{}", &hex[20..])
        );
    }

    #[test]
    fn bad_prefixes_and_buckets_are_refused() {
        for p in ["Tavern-", "a_b", "-x", "xn--a", &"a".repeat(25)] {
            assert!(Layout::bucket_per_world(p).is_err(), "{p}");
        }
        for b in ["ab", "Up", "a..b", "-ab", "ab-", "a_b", &"a".repeat(64)] {
            assert!(Layout::folder_per_world(b, "").is_err(), "{b}");
        }
        assert!(Layout::folder_per_world("a.b-c", "").is_ok());
    }

    #[test]
    fn the_awsconfig_file_holds_what_foundry_reads() {
        let place = Place {
            bucket: "b1".into(),
            folder: None,
            user: "u".into(),
        };
        let key = Key {
            access_key_id: "AKID".into(),
            secret: "s3cr3t".into(),
        };
        let aws = FoundryEndpoint {
            region: "eu-west-1".into(),
            endpoint: None,
            path_style: false,
        };
        let v: Value = serde_json::from_str(&foundry_config(&aws, &place, &key)).unwrap();
        assert_eq!(
            v,
            json!({"buckets": ["b1"], "region": "eu-west-1",
                   "credentials": {"accessKeyId": "AKID", "secretAccessKey": "s3cr3t"}})
        );
        let other = FoundryEndpoint {
            endpoint: Some("https://s3.example".into()),
            path_style: true,
            ..aws
        };
        let v: Value = serde_json::from_str(&foundry_config(&other, &place, &key)).unwrap();
        assert_eq!(v["endpoint"], "https://s3.example");
        assert_eq!(v["forcePathStyle"], true);
        assert!(!format!("{key:?}").contains("s3cr3t"));
    }

    #[test]
    fn a_folder_key_lists_and_touches_only_its_folder() {
        let place = Place {
            bucket: "shared".into(),
            folder: Some("w-a-1".into()),
            user: "w-a-1".into(),
        };
        let v: Value = serde_json::from_str(&key_policy(&place)).unwrap();
        assert_eq!(
            v["Statement"][0]["Resource"][0],
            "arn:aws:s3:::shared/w-a-1/*"
        );
        assert_eq!(
            v["Statement"][1]["Condition"]["StringLike"]["s3:prefix"],
            json!(["w-a-1/", "w-a-1/*"])
        );
        let own = Place {
            folder: None,
            ..place
        };
        let v: Value = serde_json::from_str(&key_policy(&own)).unwrap();
        assert_eq!(v["Statement"][0]["Resource"][0], "arn:aws:s3:::shared/*");
        assert!(v["Statement"][1].get("Condition").is_none());
    }

    proptest! {
        /// Every world's bucket and user name is one S3 and IAM take, and
        /// two worlds never share one.
        #[test]
        fn names_are_valid_and_distinct(
            a in "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
            prefix in "([a-z0-9][a-z0-9-]{0,23})?",
        ) {
            prop_assume!(Slug::parse(&a).is_ok());
            let layout = Layout::bucket_per_world(&prefix).unwrap();
            let (one, two) = (InstanceId::new(), InstanceId::new());
            let p = layout.place(&slug(&a), one);
            prop_assert!(check_bucket(&p.bucket).is_ok(), "{}", p.bucket);
            prop_assert!(p.user.len() <= 64);
            prop_assert_ne!(p, layout.place(&slug(&a), two));
        }
    }
}
