//! `[packages]`: the community's package library. `defaults` are the
//! packages every new world starts with (its newest version in the
//! library, and what it needs), each `id` or `system:id` / `module:id` /
//! `world:id` where an id names packages of two kinds.

use serde::{Deserialize, Serialize};
use tavern_foundry::manifest::{PackageKind, is_package_id};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PackagesConfig {
    /// What each new world gets, e.g. `["dnd5e", "module:dice-so-nice"]`.
    pub defaults: Vec<String>,
}

/// Reads `[kind:]id`.
pub fn parse_named(s: &str) -> Result<(Option<PackageKind>, String), String> {
    let (kind, id) = match s.split_once(':') {
        Some((k, id)) => (
            Some(PackageKind::parse(k).ok_or_else(|| {
                format!("{s:?}: the kind before ':' must be system, module or world")
            })?),
            id,
        ),
        None => (None, s),
    };
    if !is_package_id(id) {
        return Err(format!(
            "{s:?}: {id:?} is not a package id (letters, digits, '-', '_' and '.')"
        ));
    }
    Ok((kind, id.to_owned()))
}

impl PackagesConfig {
    /// Where the library is (`DATA_DIR/packages`) and the defaults, for
    /// the core.
    pub fn settings(
        &self,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<tavern_core::packages::PackageSettings> {
        Ok(tavern_core::packages::PackageSettings {
            dir: data_dir.join("packages"),
            defaults: self.defaults()?,
        })
    }

    /// The defaults, read.
    pub fn defaults(&self) -> anyhow::Result<Vec<(Option<PackageKind>, String)>> {
        self.defaults
            .iter()
            .map(|s| {
                parse_named(s)
                    .map_err(|e| anyhow::anyhow!("invalid configuration: packages.defaults: {e}"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_name_a_package_and_perhaps_its_kind() {
        let c = PackagesConfig {
            defaults: vec!["dnd5e".into(), "module:dice-so-nice".into()],
        };
        assert_eq!(
            c.defaults().unwrap(),
            [
                (None, "dnd5e".into()),
                (Some(PackageKind::Module), "dice-so-nice".into())
            ]
        );
        for bad in ["theme:x", "../x", "module:", ""] {
            let c = PackagesConfig {
                defaults: vec![bad.into()],
            };
            assert!(c.defaults().is_err(), "{bad}");
        }
    }
}
