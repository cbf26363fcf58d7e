//! The packages the stand-in finds, by Foundry's rule: in each of
//! `Data/systems`, `Data/modules` and `Data/worlds`, a folder (or a link
//! to one, followed as Foundry's file system calls follow it) that holds
//! its manifest (`system.json`, `module.json`, `world.json`) whose id is
//! the folder's name. What does not pass is listed with the reason, as
//! Foundry logs it. `GET /_stub/packages` answers this, read afresh.

use std::path::Path;

use serde_json::{Value, json};
use tavern_foundry::manifest::{self, PackageKind};

/// What `data` (a user-data folder) holds, by kind, and what was passed
/// over.
pub fn discover(data: &Path) -> Value {
    let mut found = serde_json::Map::new();
    let mut skipped = Vec::new();
    for kind in [PackageKind::System, PackageKind::Module, PackageKind::World] {
        let dir = data.join("Data").join(kind.folder());
        let mut list = Vec::new();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        for name in names {
            let at = dir.join(&name);
            let linked = std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink());
            let why = match std::fs::metadata(&at) {
                Err(e) => Some(format!("cannot be read: {e}")),
                Ok(m) if !m.is_dir() => Some("is not a folder".to_owned()),
                Ok(_) => None,
            };
            if let Some(why) = why {
                skipped.push(json!({"kind": kind.as_str(), "folder": name, "why": why}));
                continue;
            }
            let read = std::fs::read(at.join(kind.file_name()))
                .map_err(|e| format!("has no readable {}: {e}", kind.file_name()))
                .and_then(|b| manifest::read(kind, &b).map_err(|e| e.to_string()));
            match read {
                Ok(p) if p.id == name => list.push(json!({
                    "id": p.id,
                    "title": p.title,
                    "version": p.version,
                    "linked": linked,
                })),
                Ok(p) => skipped.push(json!({
                    "kind": kind.as_str(), "folder": name,
                    "why": format!("its manifest's id {:?} is not the folder's name", p.id),
                })),
                Err(why) => {
                    skipped.push(json!({"kind": kind.as_str(), "folder": name, "why": why}));
                }
            }
        }
        found.insert(kind.folder().to_owned(), Value::Array(list));
    }
    found.insert("skipped".into(), Value::Array(skipped));
    Value::Object(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_and_links_with_a_matching_manifest_are_found_and_the_rest_said_why() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let modules = data.join("Data/modules");
        std::fs::create_dir_all(modules.join("own")).unwrap();
        std::fs::write(
            modules.join("own/module.json"),
            r#"{"id":"own","version":"1","title":"Own"}"#,
        )
        .unwrap();
        let shared = tmp.path().join("lib/dice/2.0");
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::write(
            shared.join("module.json"),
            r#"{"id":"dice","version":"2.0"}"#,
        )
        .unwrap();
        std::os::unix::fs::symlink(&shared, modules.join("dice")).unwrap();
        std::os::unix::fs::symlink(&shared, modules.join("renamed")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("gone"), modules.join("broken")).unwrap();
        std::fs::create_dir_all(data.join("Data/systems/empty")).unwrap();

        let got = discover(&data);
        let ids: Vec<(&str, bool)> = got["modules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["id"].as_str().unwrap(), m["linked"].as_bool().unwrap()))
            .collect();
        assert_eq!(ids, [("dice", true), ("own", false)]);
        assert_eq!(got["systems"], json!([]));
        let skipped: Vec<&str> = got["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["folder"].as_str().unwrap())
            .collect();
        assert_eq!(skipped, ["empty", "broken", "renamed"]);
    }
}
