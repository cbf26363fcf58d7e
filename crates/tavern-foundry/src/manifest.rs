//! Foundry's package manifests as they are found in a user-data folder:
//! `world.json`, `system.json` and `module.json` (the id is `id` since v10,
//! `name` before; a world's Foundry version is `coreVersion`, else its
//! `compatibility`). Read leniently, but an id must be a folder name.

use serde_json::Value;

use crate::version::Version;

/// What a manifest describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageKind {
    World,
    System,
    Module,
}

impl PackageKind {
    /// The manifest's file name: `world.json`, `system.json`, `module.json`.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::World => "world.json",
            Self::System => "system.json",
            Self::Module => "module.json",
        }
    }

    /// The folder below `Data/` that holds packages of this kind.
    pub fn folder(self) -> &'static str {
        match self {
            Self::World => "worlds",
            Self::System => "systems",
            Self::Module => "modules",
        }
    }
}

/// The Foundry versions a package says it works with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compatibility {
    pub minimum: Option<String>,
    pub verified: Option<String>,
    pub maximum: Option<String>,
}

/// What a manifest says of its package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub kind: PackageKind,
    pub id: String,
    pub title: Option<String>,
    pub version: Option<String>,
    /// A world's game system.
    pub system: Option<String>,
    /// The Foundry version a world was last saved with (`coreVersion`),
    /// else the newest its `compatibility` names.
    pub core_version: Option<String>,
    pub compatibility: Compatibility,
}

impl Package {
    /// The Foundry version a world needs at least: the one it was saved
    /// with, when that reads as a version.
    pub fn needs(&self) -> Option<Version> {
        self.core_version.as_deref().and_then(Version::parse)
    }
}

/// Why a manifest was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("it is not a JSON object")]
    NotJson,
    #[error("it names no id (`id`, or `name` before Foundry 10)")]
    NoId,
    #[error("its id {0:?} is not a folder name (letters, digits, '-', '_' and '.')")]
    BadId(String),
}

/// The longest id taken.
const MAX_ID: usize = 128;

/// Whether `id` can be a package's folder: ASCII letters, digits, `-`,
/// `_` and `.`, not starting with `.`, at most 128 characters.
pub fn is_package_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A string or a number, as text (old manifests wrote `"version": 1.2`).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads a manifest of `kind` from its bytes.
pub fn read(kind: PackageKind, bytes: &[u8]) -> Result<Package, ManifestError> {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(bytes) else {
        return Err(ManifestError::NotJson);
    };
    let id = text(m.get("id"))
        .or_else(|| text(m.get("name")))
        .ok_or(ManifestError::NoId)?;
    if !is_package_id(&id) {
        return Err(ManifestError::BadId(id));
    }
    let compat = m.get("compatibility");
    let compatibility = Compatibility {
        minimum: text(compat.and_then(|c| c.get("minimum")))
            .or_else(|| text(m.get("minimumCoreVersion"))),
        verified: text(compat.and_then(|c| c.get("verified")))
            .or_else(|| text(m.get("compatibleCoreVersion"))),
        maximum: text(compat.and_then(|c| c.get("maximum"))),
    };
    let core_version = match kind {
        PackageKind::World => text(m.get("coreVersion"))
            .or_else(|| compatibility.verified.clone())
            .or_else(|| compatibility.minimum.clone()),
        _ => None,
    };
    Ok(Package {
        kind,
        id,
        title: text(m.get("title")),
        version: text(m.get("version")),
        system: match kind {
            PackageKind::World => text(m.get("system")),
            _ => None,
        },
        core_version,
        compatibility,
    })
}

/// The key a `Config/license.json` names, if it names one.
pub fn license_key_in(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    text(v.get("license"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn worlds_of_each_generation_are_read() {
        let v13 =
            br#"{"id":"lost-mine","title":"Lost Mine","system":"dnd5e","coreVersion":"13.351",
            "compatibility":{"minimum":"13","verified":"13.351"},"systemVersion":"5.1.2"}"#;
        let w = read(PackageKind::World, v13).unwrap();
        assert_eq!(w.id, "lost-mine");
        assert_eq!(w.title.as_deref(), Some("Lost Mine"));
        assert_eq!(w.system.as_deref(), Some("dnd5e"));
        assert_eq!(w.needs(), Version::parse("13.351"));

        let v11 = br#"{"id":"old","title":"Old","system":"pf2e","compatibility":{"minimum":"11","verified":"11.315"}}"#;
        assert_eq!(
            read(PackageKind::World, v11).unwrap().needs(),
            Version::parse("11.315")
        );

        let v9 = br#"{"name":"ancient","title":"Ancient","system":"dnd5e","coreVersion":"9.280"}"#;
        let w = read(PackageKind::World, v9).unwrap();
        assert_eq!(
            (w.id.as_str(), w.needs()),
            ("ancient", Version::parse("9.280"))
        );
    }

    #[test]
    fn packages_give_their_version_and_compatibility() {
        let m = br#"{"id":"dice-so-nice","title":"Dice So Nice!","version":"5.2.1",
            "compatibility":{"minimum":"12","verified":"13","maximum":"13"}}"#;
        let p = read(PackageKind::Module, m).unwrap();
        assert_eq!(p.version.as_deref(), Some("5.2.1"));
        assert_eq!(p.compatibility.maximum.as_deref(), Some("13"));
        assert_eq!(p.core_version, None);
        let old = br#"{"name":"legacy","version":1.5,"minimumCoreVersion":"0.8.6"}"#;
        let p = read(PackageKind::System, old).unwrap();
        assert_eq!(p.version.as_deref(), Some("1.5"));
        assert_eq!(p.compatibility.minimum.as_deref(), Some("0.8.6"));
    }

    #[test]
    fn manifests_without_a_usable_id_are_refused() {
        assert_eq!(read(PackageKind::World, b"[]"), Err(ManifestError::NotJson));
        assert_eq!(
            read(PackageKind::World, b"{\"title\":\"x\"}"),
            Err(ManifestError::NoId)
        );
        for bad in ["../up", "a/b", ".hidden", "", "x y"] {
            let json = serde_json::json!({"id": bad}).to_string();
            assert!(read(PackageKind::Module, json.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(
            license_key_in(br#"{"license":"ABCD","signature":"x"}"#).as_deref(),
            Some("ABCD")
        );
        assert_eq!(license_key_in(b"{}"), None);
    }

    proptest! {
        #[test]
        fn any_bytes_are_read_or_refused_and_ids_are_folder_names(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            for kind in [PackageKind::World, PackageKind::System, PackageKind::Module] {
                if let Ok(p) = read(kind, &bytes) {
                    prop_assert!(is_package_id(&p.id));
                }
            }
        }

        #[test]
        fn any_json_id_is_taken_only_as_a_folder_name(id in "\\PC{0,40}", title in "\\PC{0,20}") {
            let json = serde_json::json!({"id": id, "title": title}).to_string();
            if let Ok(p) = read(PackageKind::World, json.as_bytes()) {
                prop_assert!(is_package_id(&p.id) && !p.id.contains('/') && p.id != "..");
            }
        }
    }
}
