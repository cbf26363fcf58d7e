//! The certificate cache: DATA_DIR/acme/<ca>/, the ACME account and each
//! host's chain and key, the keys and the account sealed with Tavern's
//! secret key.

use std::path::{Path, PathBuf};

use tavern_core::secrets::{SecretBox, create_private_dir, write_private};

use super::{AcmeError, CertPem, cache_folder, is_host_name};

/// DATA_DIR/acme/<ca>/: `account.sealed`, and per host `<host>.pem` (the
/// chain) and `<host>.key.sealed`.
pub(super) struct Cache {
    dir: PathBuf,
    secrets: SecretBox,
}

impl Cache {
    pub(super) fn new(cache_dir: &Path, directory: &str, secrets: SecretBox) -> Self {
        Self {
            dir: cache_dir.join(cache_folder(directory)),
            secrets,
        }
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> AcmeError {
        let path = path.to_owned();
        move |source| AcmeError::Cache { path, source }
    }

    /// Writes `contents` to `path` whole or not at all.
    fn put(&self, path: &Path, contents: &[u8]) -> Result<(), AcmeError> {
        create_private_dir(&self.dir).map_err(self.io(&self.dir))?;
        let tmp = path.with_extension("partial");
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, contents).map_err(self.io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(self.io(path))
    }

    pub(super) fn get_sealed(&self, path: &Path) -> Result<Option<Vec<u8>>, AcmeError> {
        match std::fs::read(path) {
            Ok(sealed) => self
                .secrets
                .open(&sealed)
                .map(Some)
                .map_err(|_| AcmeError::Sealed {
                    path: path.to_owned(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(path)(e)),
        }
    }

    pub(super) fn put_sealed(&self, path: &Path, plain: &[u8]) -> Result<(), AcmeError> {
        let sealed = self.secrets.seal(plain).map_err(|_| AcmeError::Sealed {
            path: path.to_owned(),
        })?;
        self.put(path, &sealed)
    }

    /// Stores a host's certificate chain and key (the key sealed).
    pub(super) fn store(
        &self,
        host: &str,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<(), AcmeError> {
        self.put_sealed(
            &self.dir.join(format!("{host}.key.sealed")),
            key_pem.as_bytes(),
        )?;
        self.put(&self.dir.join(format!("{host}.pem")), chain_pem.as_bytes())
    }

    /// Every cached certificate; damaged ones are reported and skipped.
    pub(super) fn load_all(&self) -> Vec<CertPem> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(host) = name.strip_suffix(".pem").filter(|h| is_host_name(h)) else {
                continue;
            };
            let key_path = self.dir.join(format!("{host}.key.sealed"));
            let loaded = std::fs::read_to_string(entry.path())
                .map_err(self.io(&entry.path()))
                .and_then(|chain| Ok((chain, self.get_sealed(&key_path)?)));
            match loaded {
                Ok((chain, Some(key))) => found.push(CertPem {
                    host: host.to_owned(),
                    chain,
                    key: String::from_utf8_lossy(&key).into_owned(),
                }),
                Ok((_, None)) => tracing::warn!(host, "cached certificate has no key; ignored"),
                Err(e) => tracing::warn!(host, error = %e, "cached certificate ignored"),
            }
        }
        found
    }

    pub(super) fn account_path(&self) -> PathBuf {
        self.dir.join("account.sealed")
    }
}
