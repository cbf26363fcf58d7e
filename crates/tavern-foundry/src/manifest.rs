//! Foundry's package manifests as they are found in a user-data folder:
//! `world.json`, `system.json` and `module.json` (the id is `id` since v10,
//! `name` before; a world's Foundry version is `coreVersion`, else its
//! `compatibility`), what a package requires (`relationships.requires`,
//! `dependencies` before v10) and whether a Foundry release fits its
//! `compatibility`. Read leniently, but an id must be a folder name.

use serde_json::Value;

use crate::version::Version;

/// What a manifest describes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
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

    /// The manifest's `type`: `world`, `system`, `module`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::World => "world",
            Self::System => "system",
            Self::Module => "module",
        }
    }

    /// Reads a `type` (`module`), a folder (`modules`) or a manifest's
    /// file name (`module.json`).
    pub fn parse(s: &str) -> Option<Self> {
        [Self::World, Self::System, Self::Module]
            .into_iter()
            .find(|k| s == k.as_str() || s == k.folder() || s == k.file_name())
    }

    pub const ALL: [Self; 3] = [Self::System, Self::Module, Self::World];
}

impl std::fmt::Display for PackageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Foundry versions a package says it works with.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Compatibility {
    pub minimum: Option<String>,
    pub verified: Option<String>,
    pub maximum: Option<String>,
}

/// How a Foundry release fits a package's `compatibility`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// Within what the package was verified on, or nothing is said.
    Works,
    /// Allowed, but newer than the version the package was verified on.
    Unverified { verified: String },
    /// Older than the package's `minimum`: Foundry will not load it.
    TooOld { minimum: String },
    /// Newer than the package's `maximum`: Foundry will not load it.
    TooNew { maximum: String },
}

impl Fit {
    /// Whether Foundry loads the package on that release.
    pub fn loads(&self) -> bool {
        matches!(self, Self::Works | Self::Unverified { .. })
    }
}

/// Whether `release` is past `bound`, comparing only as many parts as
/// `bound` has (`13.351` is not past a maximum of `13`).
fn past(release: &Version, bound: &Version, parts: usize) -> bool {
    release.truncated(parts) > *bound
}

impl Compatibility {
    /// How Foundry `release` fits: below `minimum` or past `maximum` it
    /// is not loaded; past `verified` it loads with a warning. Bounds
    /// that do not read as versions are ignored, as Foundry does.
    pub fn fit(&self, release: &Version) -> Fit {
        let bound = |s: &Option<String>| {
            let s = s.as_deref()?;
            Some((
                s.to_owned(),
                Version::parse(s)?,
                s.trim().split('.').count(),
            ))
        };
        if let Some((s, min, _)) = bound(&self.minimum)
            && *release < min
        {
            return Fit::TooOld { minimum: s };
        }
        if let Some((s, max, parts)) = bound(&self.maximum)
            && past(release, &max, parts)
        {
            return Fit::TooNew { maximum: s };
        }
        if let Some((s, verified, parts)) = bound(&self.verified)
            && past(release, &verified, parts)
        {
            return Fit::Unverified { verified: s };
        }
        Fit::Works
    }
}

/// A package another needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Requirement {
    pub kind: PackageKind,
    pub id: String,
    /// Where its manifest is, when the requiring package says.
    pub manifest: Option<String>,
    pub compatibility: Compatibility,
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
    /// Where the manifest of its newest version is (`manifest`).
    pub manifest: Option<String>,
    /// Where this version's zip is (`download`).
    pub download: Option<String>,
    /// The packages it needs: `relationships.requires` (or the older
    /// `dependencies`), and a world's game system.
    pub requires: Vec<Requirement>,
    /// A premium package (`protected`): its files are signed for one
    /// license and cannot be shared.
    pub protected: bool,
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
    let mut requires = requirements(&m);
    if kind == PackageKind::World
        && let Some(system) = text(m.get("system")).filter(|s| is_package_id(s))
    {
        requires.push(Requirement {
            kind: PackageKind::System,
            id: system,
            manifest: None,
            compatibility: Compatibility::default(),
        });
    }
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
        manifest: text(m.get("manifest")),
        download: text(m.get("download")),
        requires,
        protected: m.get("protected").and_then(Value::as_bool) == Some(true),
    })
}

fn compatibility_of(v: Option<&Value>) -> Compatibility {
    Compatibility {
        minimum: text(v.and_then(|c| c.get("minimum"))),
        verified: text(v.and_then(|c| c.get("verified"))),
        maximum: text(v.and_then(|c| c.get("maximum"))),
    }
}

/// `relationships.requires` (v10+), else `dependencies`; entries without
/// a usable id are left out, and each package is named once.
fn requirements(m: &serde_json::Map<String, Value>) -> Vec<Requirement> {
    let listed = m
        .get("relationships")
        .and_then(|r| r.get("requires"))
        .or_else(|| m.get("dependencies"))
        .and_then(Value::as_array);
    let mut out: Vec<Requirement> = Vec::new();
    for entry in listed.into_iter().flatten() {
        let Some(id) = text(entry.get("id"))
            .or_else(|| text(entry.get("name")))
            .filter(|id| is_package_id(id))
        else {
            continue;
        };
        let kind = text(entry.get("type"))
            .and_then(|t| PackageKind::parse(&t))
            .unwrap_or(PackageKind::Module);
        if out.iter().any(|r| r.kind == kind && r.id == id) {
            continue;
        }
        out.push(Requirement {
            kind,
            id,
            manifest: text(entry.get("manifest")),
            compatibility: compatibility_of(entry.get("compatibility")),
        });
    }
    out
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

    #[test]
    fn requirements_come_from_relationships_or_the_older_dependencies() {
        let m = br#"{"id":"combat-plus","version":"2.0.0","download":"https://x/c.zip",
            "manifest":"https://x/module.json","protected":false,
            "relationships":{"systems":[{"id":"dnd5e"}],"requires":[
              {"id":"lib-wrapper","type":"module","manifest":"https://y/module.json",
               "compatibility":{"minimum":"1.12"}},
              {"id":"pf2e","type":"system"},{"id":"../bad"},{"id":"lib-wrapper","type":"module"}]}}"#;
        let p = read(PackageKind::Module, m).unwrap();
        assert_eq!(p.download.as_deref(), Some("https://x/c.zip"));
        assert_eq!(p.manifest.as_deref(), Some("https://x/module.json"));
        assert!(!p.protected);
        let ids: Vec<_> = p.requires.iter().map(|r| (r.kind, r.id.as_str())).collect();
        assert_eq!(
            ids,
            [
                (PackageKind::Module, "lib-wrapper"),
                (PackageKind::System, "pf2e")
            ]
        );
        assert_eq!(p.requires[0].compatibility.minimum.as_deref(), Some("1.12"));
        let old = br#"{"name":"old","dependencies":[{"name":"socketlib"}],"protected":true}"#;
        let p = read(PackageKind::Module, old).unwrap();
        assert_eq!(p.requires[0].id, "socketlib");
        assert_eq!(p.requires[0].kind, PackageKind::Module);
        assert!(p.protected);
        let world = br#"{"id":"w","system":"dnd5e"}"#;
        let w = read(PackageKind::World, world).unwrap();
        assert_eq!(w.requires[0].kind, PackageKind::System);
        assert_eq!(PackageKind::parse("modules"), Some(PackageKind::Module));
        assert_eq!(PackageKind::parse("system.json"), Some(PackageKind::System));
        assert_eq!(PackageKind::parse("theme"), None);
    }

    #[test]
    fn a_release_fits_a_compatibility_as_foundry_reads_it() {
        let c = |min: Option<&str>, ver: Option<&str>, max: Option<&str>| Compatibility {
            minimum: min.map(str::to_owned),
            verified: ver.map(str::to_owned),
            maximum: max.map(str::to_owned),
        };
        let v = |s| Version::parse(s).unwrap();
        let c12 = c(Some("12"), Some("12.331"), Some("13"));
        assert_eq!(c12.fit(&v("12.331")), Fit::Works);
        assert_eq!(
            c12.fit(&v("13.351")),
            Fit::Unverified {
                verified: "12.331".into()
            }
        );
        assert!(c12.fit(&v("13.351")).loads());
        assert_eq!(
            c12.fit(&v("14.1")),
            Fit::TooNew {
                maximum: "13".into()
            }
        );
        assert_eq!(
            c12.fit(&v("11.315")),
            Fit::TooOld {
                minimum: "12".into()
            }
        );
        assert!(!c12.fit(&v("11.315")).loads());
        assert_eq!(c(None, None, Some("x")).fit(&v("99")), Fit::Works);
        assert_eq!(c(Some("13.345"), None, None).fit(&v("13.351")), Fit::Works);
        assert_eq!(
            c(None, Some("13"), None).fit(&v("13.351")),
            Fit::Works,
            "verified on a generation covers its builds"
        );
    }

    proptest! {
        #[test]
        fn any_release_between_minimum_and_maximum_loads(min in 1u64..20, span in 0u64..5, build in 0u64..400, g in 0u64..25) {
            let c = Compatibility { minimum: Some(min.to_string()), verified: None, maximum: Some((min + span).to_string()) };
            let fit = c.fit(&Version::parse(&format!("{g}.{build}")).unwrap());
            prop_assert_eq!(fit.loads(), (min..=min + span).contains(&g));
        }

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
