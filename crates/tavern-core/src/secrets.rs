//! Secrets at rest: a [`SecretBox`] seals values (license keys, later admin
//! keys) with XChaCha20-Poly1305 under a 32-byte key kept in a file of its own
//! (`DATA_DIR/secret.key`, mode 0600), never in the database.

use std::io::Write;
use std::path::Path;

use chacha20poly1305::aead::{Aead, Generate, Key, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const NONCE_LEN: usize = 24;
const VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot {op} the secret key file {path}")]
    KeyFile {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the secret key file {path} is not 32 bytes: it is damaged or not Tavern's")]
    BadKeyFile { path: String },
    #[error("a sealed value cannot be opened: it is damaged or was sealed with another key")]
    Unseal,
    #[error("sealing failed")]
    Seal,
}

/// Seals and opens small secrets. Cheap to clone.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// Loads the key at `path`, creating it (mode 0600) on first use.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        let shown = path.display().to_string();
        let err = |op| {
            let shown = shown.clone();
            move |source| SecretError::KeyFile {
                op,
                path: shown,
                source,
            }
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Key::<XChaCha20Poly1305>::generate();
                write_private(path, &key).map_err(err("create"))?;
                key.to_vec()
            }
            Err(e) => return Err(err("read")(e)),
        };
        Self::from_file_bytes(&bytes, path)
    }

    /// Loads the key at `path`, which must exist (a key several replicas
    /// share, e.g. from a Kubernetes Secret): 32 random bytes.
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let bytes = std::fs::read(path).map_err(|source| SecretError::KeyFile {
            op: "read",
            path: path.display().to_string(),
            source,
        })?;
        Self::from_file_bytes(&bytes, path)
    }

    /// A key file's content: exactly 32 bytes.
    fn from_file_bytes(bytes: &[u8], path: &Path) -> Result<Self, SecretError> {
        let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadKeyFile {
            path: path.display().to_string(),
        })?;
        Ok(Self::from_key(key))
    }

    pub fn from_key(key: [u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&Key::<XChaCha20Poly1305>::from(key)),
        }
    }

    /// `version || nonce || ciphertext+tag`
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SecretError> {
        let nonce = XNonce::generate();
        let sealed = self
            .cipher
            .encrypt(&nonce, plaintext)
            .map_err(|_| SecretError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        let (&version, rest) = sealed.split_first().ok_or(SecretError::Unseal)?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return Err(SecretError::Unseal);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| SecretError::Unseal)?;
        self.cipher
            .decrypt(&nonce, body)
            .map_err(|_| SecretError::Unseal)
    }
}

/// Creates `dir` (and its parents) readable by its owner only (0700 on
/// Unix), unless it exists.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Writes a new file readable by its owner only (0600 on Unix).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens() {
        let b = SecretBox::from_key([7; 32]);
        let sealed = b.seal(b"ABCDEFGH12345678IJKLMNOP").unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"ABCDEFGH"));
        assert_eq!(b.open(&sealed).unwrap(), b"ABCDEFGH12345678IJKLMNOP");
        // Two seals of one value differ (fresh nonce).
        assert_ne!(sealed, b.seal(b"ABCDEFGH12345678IJKLMNOP").unwrap());
    }

    #[test]
    fn refuses_tampering_and_other_keys() {
        let b = SecretBox::from_key([7; 32]);
        let mut sealed = b.seal(b"secret").unwrap();
        assert!(SecretBox::from_key([8; 32]).open(&sealed).is_err());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(b.open(&sealed).is_err());
        assert!(b.open(&[]).is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let a = SecretBox::load_or_create(&path).unwrap();
        let sealed = a.seal(b"x").unwrap();
        let b = SecretBox::load_or_create(&path).unwrap();
        assert_eq!(b.open(&sealed).unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            SecretBox::load_or_create(&path),
            Err(SecretError::BadKeyFile { .. })
        ));
    }
}
