//! The `license.json` Foundry signed for each key, kept sealed under
//! `DATA_DIR/licenses` so the next world with that key need not sign again.

use tavern_runtime::foundry_config;
use tavern_store::{Instance, License};
use tavern_types::LicenseId;

use crate::error::CoreError;
use crate::tavern::Tavern;

impl Tavern {
    fn vault_path(&self, id: LicenseId) -> std::path::PathBuf {
        self.settings
            .license_vault
            .join(id.to_string())
            .join("license.json.sealed")
    }

    /// Keeps the `license.json` Foundry signed in `i`'s world for the key it
    /// holds (sealed), so the next world with this key need not sign again.
    pub(crate) async fn keep_signed_license(
        &self,
        i: &Instance,
        held: &License,
    ) -> Result<(), CoreError> {
        let Some(text) = self.runtime.license_file(&i.slug).await else {
            return Ok(());
        };
        let key = self.license_key(held.id).await?;
        if !foundry_config::is_signed_for(&text, key.expose()) {
            return Ok(());
        }
        self.keep_signed(held.id, &text)
    }

    /// Keeps `text`, a `license.json` Foundry signed for the key `id`,
    /// sealed.
    pub(crate) fn keep_signed(&self, id: LicenseId, text: &str) -> Result<(), CoreError> {
        let sealed = self
            .secrets
            .seal(text.as_bytes())
            .map_err(|e| CoreError::internal("seal the signed license", e))?;
        let path = self.vault_path(id);
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("tmp");
            let _ = std::fs::remove_file(&tmp);
            crate::secrets::write_private(&tmp, &sealed)?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| CoreError::internal("keep the signed license", e))
    }

    /// The signed `license.json` kept for a key, if any.
    pub(crate) fn signed_license(&self, id: LicenseId) -> Option<String> {
        let sealed = std::fs::read(self.vault_path(id)).ok()?;
        String::from_utf8(self.secrets.open(&sealed).ok()?).ok()
    }
}
