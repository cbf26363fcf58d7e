//! Foundry's own `Config/` files, kept in one place: `options.json` (Tavern's
//! keys written, every other key preserved), `license.json`, `admin.txt`
//! (felddy's PBKDF2 format) and `awsConfig.json` (the world's storage).

use std::path::Path;

use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use crate::FoundryConfig;

pub use tavern_foundry::{DEFAULT_ADMIN_SALT, admin_key_hash, license_json};

/// The world's storage file, in `Config/`; `options.json`'s `awsConfig`
/// names it relative to that folder, as Foundry resolves it.
pub const AWS_CONFIG: &str = "awsConfig.json";

/// Writes `Config/options.json`, `license.json`, `admin.txt` and
/// `awsConfig.json` under
/// `data_dir` for a start on `port`. Keys of `options.json` that Tavern does
/// not manage are kept; a file that is not a JSON object is replaced.
pub fn write_config(data_dir: &Path, port: u16, cfg: &FoundryConfig) -> std::io::Result<()> {
    let config = data_dir.join("Config");
    std::fs::create_dir_all(&config)?;
    let options_path = config.join("options.json");
    let mut options: Map<String, Value> = std::fs::read_to_string(&options_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let managed = json!({
        "port": port,
        "hostname": cfg.hostname,
        "routePrefix": cfg.route_prefix,
        "proxySSL": cfg.proxy_ssl,
        "proxyPort": cfg.proxy_port,
        "upnp": false,
    });
    if let Value::Object(m) = managed {
        options.extend(m);
    }
    // The storage Tavern gives the world, or none: an `awsConfig` of the
    // game master's own (Foundry's setup screen sets one) stays.
    let aws_path = config.join(AWS_CONFIG);
    match &cfg.aws_config {
        Some(text) => {
            write_atomic(&aws_path, text.expose_secret())?;
            options.insert("awsConfig".into(), json!(AWS_CONFIG));
        }
        None => {
            remove_if_there(&aws_path)?;
            if options.get("awsConfig").and_then(Value::as_str) == Some(AWS_CONFIG) {
                options.insert("awsConfig".into(), Value::Null);
            }
        }
    }
    write_atomic(
        &options_path,
        &serde_json::to_string_pretty(&Value::Object(options))?,
    )?;

    let license_path = config.join("license.json");
    if let Some(key) = &cfg.license_key {
        // A license.json signed for this key (here, or carried over from an
        // earlier world) is used as it is; otherwise the plain key.
        let current = std::fs::read_to_string(&license_path).ok();
        let current_signed = current
            .as_deref()
            .is_some_and(|c| is_signed_for(c, key.expose()));
        let carried = cfg
            .signed_license
            .as_deref()
            .filter(|c| is_signed_for(c, key.expose()));
        let current_key = current.as_deref().and_then(license_in);
        match carried {
            _ if current_signed => {}
            Some(signed) => write_atomic(&license_path, signed)?,
            None if current_key.as_deref() == Some(key.expose()) => {}
            None => write_atomic(&license_path, &license_json(key.expose()))?,
        }
    }

    let admin_path = config.join("admin.txt");
    match &cfg.admin_hash {
        Some(hash) => write_atomic(&admin_path, hash)?,
        None => remove_if_there(&admin_path)?,
    }
    Ok(())
}

fn remove_if_there(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// What a world's `Config/` is written from, as it travels to a pod in a
/// Secret (the kubernetes driver's): [`FoundryConfig`] in JSON. Read back by
/// `tavern foundry-config`, Tavern's init container, which calls
/// [`write_config`] in the pod just as the other drivers do on this machine.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeedConfig {
    pub hostname: String,
    pub route_prefix: Option<String>,
    #[serde(rename = "proxySSL")]
    pub proxy_ssl: bool,
    pub proxy_port: Option<u16>,
    pub license_key: Option<String>,
    pub signed_license: Option<String>,
    pub admin_hash: Option<String>,
    /// Left out when there is none, so that a world without storage has
    /// the seed (and the config digest) it had before storage existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_config: Option<String>,
    /// Left out when there are none, likewise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<crate::packages::PackageLink>,
}

/// Leaves the secrets out.
impl std::fmt::Debug for SeedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedConfig")
            .field("hostname", &self.hostname)
            .field("route_prefix", &self.route_prefix)
            .finish_non_exhaustive()
    }
}

impl From<&FoundryConfig> for SeedConfig {
    fn from(cfg: &FoundryConfig) -> Self {
        Self {
            hostname: cfg.hostname.clone(),
            route_prefix: cfg.route_prefix.clone(),
            proxy_ssl: cfg.proxy_ssl,
            proxy_port: cfg.proxy_port,
            license_key: cfg.license_key.as_ref().map(|k| k.expose().to_owned()),
            signed_license: cfg.signed_license.clone(),
            admin_hash: cfg.admin_hash.clone(),
            aws_config: cfg
                .aws_config
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            packages: cfg.packages.clone(),
        }
    }
}

impl TryFrom<SeedConfig> for FoundryConfig {
    type Error = String;

    fn try_from(seed: SeedConfig) -> Result<Self, String> {
        let license_key = seed
            .license_key
            .as_deref()
            .map(tavern_types::LicenseKey::parse)
            .transpose()
            .map_err(|e| format!("the seed's license key: {e}"))?;
        Ok(Self {
            hostname: seed.hostname,
            route_prefix: seed.route_prefix,
            proxy_ssl: seed.proxy_ssl,
            proxy_port: seed.proxy_port,
            license_key,
            signed_license: seed.signed_license,
            admin_hash: seed.admin_hash,
            aws_config: seed.aws_config.map(Into::into),
            packages: seed.packages,
        })
    }
}

/// Writes `Config/` under `data_dir` from a seed (its JSON text), for Foundry on its
/// own port in a container or pod ([`crate::FOUNDRY_PORT`]), and links
/// the world's packages to where the pod mounts them
/// ([`crate::packages::CONTAINER_LIBRARY`]).
pub fn write_from_seed(text: &str, data_dir: &Path) -> Result<(), String> {
    let seed: SeedConfig =
        serde_json::from_str(text).map_err(|e| format!("the seed is not Tavern's: {e}"))?;
    let cfg = FoundryConfig::try_from(seed)?;
    write_config(data_dir, crate::FOUNDRY_PORT, &cfg)
        .map_err(|e| format!("cannot write {}: {e}", data_dir.join("Config").display()))?;
    let library = Path::new(crate::packages::CONTAINER_LIBRARY);
    let linked = crate::packages::link_packages(data_dir, &cfg.packages, library, library)
        .map_err(|e| format!("cannot link the world's packages: {e}"))?;
    for (kind, id) in &linked.clashes {
        eprintln!(
            "the world has its own {kind} {id} (installed through Foundry); the library's is not used"
        );
    }
    Ok(())
}

/// Copies `library` into the world's `.tavern/` (replacing any older copy
/// at once, so a Foundry starting meanwhile never loads half a file).
pub fn place_preload(library: &Path, data_dir: &Path) -> Result<(), String> {
    let name = library
        .file_name()
        .ok_or_else(|| format!("{} names no file", library.display()))?;
    let dir = data_dir.join(".tavern");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
    let part = dir.join(".incoming");
    std::fs::copy(library, &part).map_err(|e| format!("cannot copy {}: {e}", library.display()))?;
    std::fs::rename(&part, dir.join(name))
        .map_err(|e| format!("cannot place {}: {e}", library.display()))?;
    Ok(())
}

/// The environment variable a seed may come in (on ECS, from the world's
/// secret) when no file is given.
pub const SEED_ENV: &str = "TAVERN_FOUNDRY_SEED";

/// The key a `license.json` names.
fn license_in(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    v.get("license")?.as_str().map(str::to_owned)
}

/// Whether `text` is a `license.json` that Foundry signed for `key`: it
/// names the key and carries more than the key (Foundry adds its signature).
pub fn is_signed_for(text: &str, key: &str) -> bool {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => {
            m.get("license").and_then(Value::as_str) == Some(key)
                && m.keys().any(|k| k != "license")
        }
        _ => false,
    }
}

fn write_atomic(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tavern-tmp");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_hash_is_pbkdf2_sha512_hex() {
        let h = admin_key_hash(" secret \n", DEFAULT_ADMIN_SALT);
        assert_eq!(h.len(), 128);
        assert!(
            h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(h, admin_key_hash("secret", DEFAULT_ADMIN_SALT));
        assert_ne!(h, admin_key_hash("secret", "other-salt"));
    }

    #[test]
    fn admin_hash_matches_a_known_vector() {
        // node -e 'console.log(require("crypto").pbkdf2Sync("secret",
        //   "17c4f39053ac5a50d5797c665ad1f4e6",1000,64,"sha512").toString("hex"))'
        assert_eq!(
            admin_key_hash("secret", DEFAULT_ADMIN_SALT),
            KNOWN_SECRET_HASH
        );
    }

    fn cfg() -> FoundryConfig {
        FoundryConfig {
            hostname: "dragon.example.org".into(),
            route_prefix: None,
            proxy_ssl: true,
            proxy_port: Some(443),
            license_key: Some(
                tavern_types::LicenseKey::parse("ABCD-EFGH-JKLM-NPQR-STUV-WXYZ").unwrap(),
            ),
            signed_license: None,
            admin_hash: Some(admin_key_hash("k", DEFAULT_ADMIN_SALT)),
            aws_config: None,
            packages: Vec::new(),
        }
    }

    fn options(dir: &Path) -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("Config/options.json")).unwrap())
            .unwrap()
    }

    #[test]
    fn storage_is_written_named_in_options_and_taken_away_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg();
        c.aws_config = Some(r#"{"buckets":["b"]}"#.to_owned().into());
        write_config(dir.path(), 31000, &c).unwrap();
        assert_eq!(options(dir.path())["awsConfig"], AWS_CONFIG);
        let file = dir.path().join("Config").join(AWS_CONFIG);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            r#"{"buckets":["b"]}"#
        );
        // Through the seed (the init container's way) as well.
        let seed = SeedConfig::from(&c);
        assert!(!format!("{seed:?}").contains("buckets"));
        let back = FoundryConfig::try_from(seed).unwrap();
        assert_eq!(
            back.aws_config.map(|t| t.expose_secret().to_owned()),
            Some(r#"{"buckets":["b"]}"#.to_owned())
        );

        write_config(dir.path(), 31000, &cfg()).unwrap();
        assert!(!file.exists());
        assert_eq!(options(dir.path())["awsConfig"], Value::Null);

        // A game master's own stays.
        let mut o = options(dir.path());
        o["awsConfig"] = json!("mine.json");
        std::fs::write(dir.path().join("Config/options.json"), o.to_string()).unwrap();
        write_config(dir.path(), 31000, &cfg()).unwrap();
        assert_eq!(options(dir.path())["awsConfig"], "mine.json");
    }

    #[test]
    fn writes_managed_keys_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("Config")).unwrap();
        std::fs::write(
            dir.path().join("Config/options.json"),
            r#"{"language":"de.core","port":1,"upnp":true}"#,
        )
        .unwrap();
        write_config(dir.path(), 31000, &cfg()).unwrap();
        let o: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("Config/options.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(o["language"], "de.core");
        assert_eq!(o["port"], 31000);
        assert_eq!(o["upnp"], false);
        assert_eq!(o["hostname"], "dragon.example.org");
        assert_eq!(o["proxyPort"], 443);
        assert_eq!(o["routePrefix"], Value::Null);
        let l = std::fs::read_to_string(dir.path().join("Config/license.json")).unwrap();
        assert_eq!(l, r#"{"license":"ABCDEFGHJKLMNPQRSTUVWXYZ"}"#);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("Config/admin.txt")).unwrap(),
            admin_key_hash("k", DEFAULT_ADMIN_SALT)
        );
    }

    #[test]
    fn a_signed_license_for_the_same_key_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("Config")).unwrap();
        let signed = r#"{"license":"ABCDEFGHJKLMNPQRSTUVWXYZ","signature":"abc"}"#;
        std::fs::write(dir.path().join("Config/license.json"), signed).unwrap();
        write_config(dir.path(), 31000, &cfg()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("Config/license.json")).unwrap(),
            signed
        );
        let mut other = cfg();
        other.license_key =
            Some(tavern_types::LicenseKey::parse("ZYXWVUTSRQPNMLKJHGFEDCBA").unwrap());
        other.admin_hash = None;
        write_config(dir.path(), 31000, &other).unwrap();
        assert!(
            std::fs::read_to_string(dir.path().join("Config/license.json"))
                .unwrap()
                .contains("ZYXW")
        );
        assert!(!dir.path().join("Config/admin.txt").exists());
    }

    #[test]
    fn a_carried_signature_is_written_for_its_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let signed = r#"{"license":"ABCDEFGHJKLMNPQRSTUVWXYZ","signature":"sig"}"#;
        let mut c = cfg();
        c.signed_license = Some(signed.into());
        write_config(dir.path(), 31000, &c).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("Config/license.json")).unwrap(),
            signed
        );
        // A signature for another key is not used.
        let dir = tempfile::tempdir().unwrap();
        c.signed_license =
            Some(r#"{"license":"ZZZZZZZZZZZZZZZZZZZZZZZZ","signature":"sig"}"#.into());
        write_config(dir.path(), 31000, &c).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("Config/license.json")).unwrap(),
            r#"{"license":"ABCDEFGHJKLMNPQRSTUVWXYZ"}"#
        );
        assert!(is_signed_for(signed, "ABCDEFGHJKLMNPQRSTUVWXYZ"));
        assert!(!is_signed_for(
            r#"{"license":"ABCDEFGHJKLMNPQRSTUVWXYZ"}"#,
            "ABCDEFGHJKLMNPQRSTUVWXYZ"
        ));
        assert!(!is_signed_for("nonsense", "ABCDEFGHJKLMNPQRSTUVWXYZ"));
    }

    #[test]
    fn a_seed_round_trips_and_writes_the_same_files() {
        let seed = serde_json::to_string(&SeedConfig::from(&cfg())).unwrap();
        assert!(seed.contains("\"proxySSL\":true"), "{seed}");
        let back: FoundryConfig = serde_json::from_str::<SeedConfig>(&seed)
            .unwrap()
            .try_into()
            .unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_config(a.path(), 30000, &cfg()).unwrap();
        write_config(b.path(), 30000, &back).unwrap();
        for file in ["options.json", "license.json", "admin.txt"] {
            assert_eq!(
                std::fs::read_to_string(a.path().join("Config").join(file)).unwrap(),
                std::fs::read_to_string(b.path().join("Config").join(file)).unwrap(),
                "{file}"
            );
        }
        let bad = seed.replace("ABCDEFGHJKLMNPQRSTUVWXYZ", "short");
        let bad: Result<FoundryConfig, _> =
            serde_json::from_str::<SeedConfig>(&bad).unwrap().try_into();
        assert!(bad.unwrap_err().contains("license key"));
    }

    const KNOWN_SECRET_HASH: &str = "2beaee9d322dbb19b86f191599fe132860bd6ec7275218ab3d39fce57b63a454364811cc07d8852ce802a168953a9aae488d1470a70a0924374c03e24d77aa6c";
}
