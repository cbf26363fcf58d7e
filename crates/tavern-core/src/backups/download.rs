//! Owners download their backups: the archive streamed without Tavern's
//! own secrets of the world, directly or through a short-lived signed
//! link.

use base64::Engine as _;
use futures_util::StreamExt as _;
use jiff::{SignedDuration, Timestamp};
use tavern_backup::archive::{self, Limits};
use tavern_runtime::foundry_config;
use tavern_store::{Backup, Outcome, now};
use tavern_types::{BackupFormat, BackupId};

use super::{backup_event, complete, not_found};
use crate::auth::Caller;
use crate::error::CoreError;
use crate::tavern::Tavern;

/// How long a signed download link works.
const LINK_LIFETIME: SignedDuration = SignedDuration::from_mins(10);

/// How a backup is downloaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DownloadFormat {
    /// Tavern's own archive (tar + zstd, the world's files under `data/`,
    /// with its manifest), as restores and `tar --zstd -xf` read it.
    #[default]
    TarZst,
    /// A zip of `Data/` and `Backups/`, which a plain Foundry install or
    /// felddy takes as its user-data folder as it is.
    Zip,
}

/// A backup's archive, to stream out (its size is known once written).
pub struct BackupDownload {
    pub file_name: String,
    /// A zip (else tar + zstd).
    pub zip: bool,
    pub stream: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send>,
    >,
}

impl BackupDownload {
    /// Its `Content-Type`.
    pub fn content_type(&self) -> &'static str {
        match self.zip {
            true => "application/zip",
            false => "application/zstd",
        }
    }

    /// Its `Content-Disposition`: an attachment under its file name.
    pub fn disposition(&self) -> String {
        format!("attachment; filename=\"{}\"", self.file_name)
    }
}

impl Tavern {
    /// The archive of a complete backup the caller may see, to stream:
    /// its name for the download and its bytes. Tavern's secrets are never
    /// in it, unless an admin asks for them (`with_secrets`): then the
    /// world's `license.json` and `admin.txt` as Tavern would write them
    /// now are put in. With `packages`, the library's packages the world
    /// used go in too, where Foundry looks for them, for use elsewhere.
    pub async fn open_backup(
        &self,
        caller: &Caller,
        id: &str,
        with_secrets: bool,
        packages: bool,
        format: DownloadFormat,
    ) -> Result<BackupDownload, CoreError> {
        if with_secrets {
            caller.require_admin("download a backup with its world's license and admin key")?;
        }
        let b = self.visible_backup(caller, id).await?;
        let secrets = match with_secrets {
            true => self.world_secrets(&b).await?,
            false => Vec::new(),
        };
        if with_secrets {
            let event = backup_event(
                &caller.name(),
                "backup.download_secrets",
                &b,
                Outcome::Success,
                Some("with the world's license and admin key".into()),
            );
            self.store.append_event(&event).await?;
        }
        let added = match packages {
            true => self.added_packages(&b).await?,
            false => Vec::new(),
        };
        self.open_archive(&b, secrets, added, format).await
    }

    /// The library's folders of the packages a backup's world used, where
    /// its `Data/` has them; a version the library has lost since is left
    /// out (a restore fetches it again).
    async fn added_packages(&self, b: &Backup) -> Result<Vec<archive::Added>, CoreError> {
        let held = self.store.list_backup_packages(b.id).await?;
        Ok(held
            .into_iter()
            .filter_map(|p| {
                let r = tavern_packages::PackageRef::new(p.kind, &p.id, &p.version).ok()?;
                self.library.has(&r).then(|| archive::Added {
                    at: format!("Data/{}/{}", p.kind.folder(), p.id),
                    from: self.library.path(&r),
                })
            })
            .collect())
    }

    /// The files Tavern writes from its sealed secrets into the world a
    /// backup was taken of, as it would write them now (none once that
    /// world is gone): `license.json` for the key it holds or is set to
    /// use (signed, when Foundry signed it), and `admin.txt`.
    async fn world_secrets(&self, b: &Backup) -> Result<Vec<(&'static str, Vec<u8>)>, CoreError> {
        let Some(i) = self
            .store
            .instance(&b.slug)
            .await?
            .filter(|i| i.id == b.instance)
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let held = self.held_license(&i).await?.map(|l| l.id).or(i.license);
        if let Some(id) = held {
            let key = self.license_key(id).await?;
            let text = self
                .signed_license(id)
                .filter(|t| foundry_config::is_signed_for(t, key.expose()))
                .unwrap_or_else(|| foundry_config::license_json(key.expose()));
            out.push((archive::WITHHELD[0], text.into_bytes()));
        }
        if let Some(hash) = self.admin_hash(&i)? {
            out.push((archive::WITHHELD[1], hash.into_bytes()));
        }
        Ok(out)
    }

    async fn open_archive(
        &self,
        b: &Backup,
        secrets: Vec<(&'static str, Vec<u8>)>,
        added: Vec<archive::Added>,
        format: DownloadFormat,
    ) -> Result<BackupDownload, CoreError> {
        let settings = self.backup_settings()?;
        let facts = complete(b)?;
        if b.target != settings.target.to_string() {
            return Err(CoreError::Conflict {
                code: "backup_elsewhere",
                message: format!(
                    "backup {} is kept in {}, not in this server's backup target",
                    b.id, b.target
                ),
            });
        }
        let limits = Limits {
            bytes: facts.bytes,
            files: facts.files,
        };
        let threads = settings.threads;
        let stream = match b.format {
            BackupFormat::Archive => {
                let (_, stream) = settings
                    .target
                    .open(&facts.key)
                    .await
                    .map_err(|e| CoreError::internal("read a backup", e))?;
                // Copied as it is read, verified on the way, without the
                // secrets (archives made before they were left out held
                // them).
                let input = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(
                    futures_util::StreamExt::map(stream, |r| r.map_err(std::io::Error::other)),
                ));
                tavern_backup::stream::blocking_stream(move |out| {
                    let given: Vec<(&str, &[u8])> =
                        secrets.iter().map(|(p, c)| (*p, c.as_slice())).collect();
                    match format {
                        DownloadFormat::TarZst => {
                            archive::rewrite(input, out, threads, Some(limits), &given, &added)
                                .map(|_| ())
                        }
                        DownloadFormat::Zip => tavern_backup::export::foundry_zip(
                            input,
                            out,
                            Some(limits),
                            &given,
                            &added,
                        ),
                    }
                })
                .boxed()
            }
            BackupFormat::Repository => {
                let repo = self.world_repo(&b.slug).await?;
                let id = facts.sha256.clone();
                // Read from the repository as it is written out, each
                // file checked against its snapshot on the way.
                tavern_backup::stream::blocking_stream(move |out| {
                    let given: Vec<(&str, &[u8])> =
                        secrets.iter().map(|(p, c)| (*p, c.as_slice())).collect();
                    match format {
                        DownloadFormat::TarZst => repo
                            .write_archive(&id, limits, out, threads, &given, &added)
                            .map(|_| ()),
                        DownloadFormat::Zip => repo.write_zip(&id, limits, out, &given, &added),
                    }
                })
                .boxed()
            }
        };
        let extension = match format {
            DownloadFormat::TarZst => "tar.zst",
            DownloadFormat::Zip => "zip",
        };
        Ok(BackupDownload {
            file_name: format!(
                "{}-{}.{extension}",
                b.slug,
                b.created_at.strftime("%Y%m%dT%H%M%SZ")
            ),
            zip: format == DownloadFormat::Zip,
            stream,
        })
    }

    /// A link that downloads the backup without a token for a few minutes
    /// (for browsers): `token` goes into `?token=`.
    pub async fn backup_link(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(String, Timestamp), CoreError> {
        let b = self.visible_backup(caller, id).await?;
        complete(&b)?;
        let expires = now() + LINK_LIFETIME;
        let sealed = self
            .secrets
            .seal(format!("{}:{}", b.id, expires.as_second()).as_bytes())
            .map_err(|e| CoreError::internal("sign a link", e))?;
        Ok((
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed),
            expires,
        ))
    }

    /// The archive behind a signed link, while the link is valid.
    pub async fn open_backup_by_link(
        &self,
        id: &str,
        token: &str,
        packages: bool,
        format: DownloadFormat,
    ) -> Result<BackupDownload, CoreError> {
        let refused = || CoreError::Unauthenticated;
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| refused())?;
        let opened = self.secrets.open(&sealed).map_err(|_| refused())?;
        let text = String::from_utf8(opened).map_err(|_| refused())?;
        let (linked, expires) = text.split_once(':').ok_or_else(refused)?;
        let expires: i64 = expires.parse().map_err(|_| refused())?;
        if linked != id || expires < now().as_second() {
            return Err(refused());
        }
        let parsed: BackupId = id.parse().map_err(|_| not_found(id))?;
        let b = self
            .store
            .backup(parsed)
            .await?
            .ok_or_else(|| not_found(id))?;
        let added = match packages {
            true => self.added_packages(&b).await?,
            false => Vec::new(),
        };
        self.open_archive(&b, Vec::new(), added, format).await
    }
}
