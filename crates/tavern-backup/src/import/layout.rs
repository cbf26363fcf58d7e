//! What an import holds and where each entry goes, decided from its list of
//! entries and the manifests read on the way (pure): a Foundry user-data
//! folder (its `Data/` and `Backups/` are taken; `Config/`, `Logs/` and
//! felddy's cache are not) or one world (placed at `Data/worlds/<id>/`),
//! at the top or up to two folders down.

use std::collections::{BTreeMap, BTreeSet};

use tavern_foundry::manifest::{self, Package, PackageKind};

/// An entry of what is imported, its path `/`-separated below the top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File { size: u64 },
    Link { target: String },
}

/// The largest manifest read for the survey.
pub const MAX_MANIFEST: u64 = 1024 * 1024;
/// How deep below the top a user-data folder or a world may sit.
const MAX_DEPTH: usize = 2;

/// Whether the reader keeps a file's contents for [`plan`]: a manifest's
/// name, no deeper than a package's manifest below a nested user-data
/// folder, no larger than [`MAX_MANIFEST`].
pub fn wanted(path: &str, size: u64) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    size <= MAX_MANIFEST
        && path.split('/').count() <= MAX_DEPTH + 4
        && matches!(
            name,
            "world.json" | "system.json" | "module.json" | "license.json" | "options.json"
        )
}

/// What was found: a user-data folder or one world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// A user-data folder at `root` (`""` for the top, else `a` or `a/b`).
    UserData { root: String },
    /// One world whose folder is `root`, placed at `Data/worlds/<id>/`.
    World { root: String, id: String },
}

/// Something not taken, with how much and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// A path as found (a folder ends in `/`).
    pub path: String,
    pub files: u64,
    pub bytes: u64,
    pub why: &'static str,
}

/// What an import holds and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub shape: Shape,
    pub worlds: Vec<Package>,
    pub systems: Vec<Package>,
    pub modules: Vec<Package>,
    /// Bytes under `Data/` outside worlds, systems and modules.
    pub assets_bytes: u64,
    /// Files and bytes taken.
    pub files: u64,
    pub bytes: u64,
    pub left_out: Vec<LeftOut>,
    /// The old server's `Config/license.json`, never copied.
    pub license: Option<Vec<u8>>,
    /// Things worth knowing: manifests that do not read, a world whose
    /// system is not there.
    pub notes: Vec<String>,
}

/// Why nothing could be made of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error(
        "it holds neither a Foundry user-data folder (with Data/worlds, Data/systems or \
         Data/modules, or Config/options.json) nor a world (a folder with world.json), at \
         the top or up to two folders down"
    )]
    NotFoundry,
    #[error("it holds more than one user-data folder ({0}): import them one at a time")]
    SeveralUserData(String),
    #[error("it holds more than one world ({0}): import them one at a time")]
    SeveralWorlds(String),
    #[error("{path} does not read: {why}")]
    BadWorld { path: String, why: String },
    #[error("{path} is a link to {target}, which would lead out of the world's data")]
    LinkOut { path: String, target: String },
}

/// `root/rest`, or `rest` for the top.
fn join(root: &str, rest: &str) -> String {
    match root {
        "" => rest.to_owned(),
        r => format!("{r}/{rest}"),
    }
}

/// The path below `root`, if it lies there (`root` itself is `Some("")`).
fn below<'a>(root: &str, path: &'a str) -> Option<&'a str> {
    if root.is_empty() {
        return Some(path);
    }
    match path.strip_prefix(root)? {
        "" => Some(""),
        rest => rest.strip_prefix('/'),
    }
}

/// Every folder that holds something, or is an entry itself.
fn folders(entries: &[Entry]) -> BTreeSet<String> {
    let mut dirs = BTreeSet::new();
    for e in entries {
        if e.kind == EntryKind::Dir {
            dirs.insert(e.path.clone());
        }
        let mut at = e.path.as_str();
        while let Some((parent, _)) = at.rsplit_once('/') {
            if !dirs.insert(parent.to_owned()) {
                break;
            }
            at = parent;
        }
    }
    dirs
}

/// The folders at most [`MAX_DEPTH`] deep, the top (`""`) first.
fn roots(dirs: &BTreeSet<String>) -> Vec<String> {
    let mut out = vec![String::new()];
    out.extend(
        dirs.iter()
            .filter(|d| d.split('/').count() <= MAX_DEPTH)
            .cloned(),
    );
    out.sort_by_key(|d| (depth(d), d.clone()));
    out
}

fn depth(root: &str) -> usize {
    match root {
        "" => 0,
        r => r.split('/').count(),
    }
}

/// The shallowest candidates; more than one at that depth is an error.
fn shallowest(
    found: Vec<String>,
    several: fn(String) -> LayoutError,
) -> Result<Option<String>, LayoutError> {
    let Some(first) = found.first() else {
        return Ok(None);
    };
    let level = depth(first);
    let same: Vec<&String> = found.iter().filter(|r| depth(r) == level).collect();
    match same.as_slice() {
        [one] => Ok(Some((*one).clone())),
        many => Err(several(
            many.iter()
                .map(|r| format!("{r}/"))
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

/// Decides what `entries` hold and where each goes. `manifests` holds the
/// contents of the files [`wanted`] picked, by path.
pub fn plan(
    entries: &[Entry],
    manifests: &BTreeMap<String, Vec<u8>>,
) -> Result<Layout, LayoutError> {
    let dirs = folders(entries);
    let files: BTreeSet<&str> = entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::File { .. }))
        .map(|e| e.path.as_str())
        .collect();
    let candidates = roots(&dirs);
    let user_data: Vec<String> = candidates
        .iter()
        .filter(|r| {
            dirs.contains(&join(r, "Data"))
                && (["worlds", "systems", "modules"]
                    .iter()
                    .any(|f| dirs.contains(&join(r, &format!("Data/{f}"))))
                    || files.contains(join(r, "Config/options.json").as_str()))
        })
        .cloned()
        .collect();
    let shape = match shallowest(user_data, LayoutError::SeveralUserData)? {
        Some(root) => Shape::UserData { root },
        None => {
            let worlds: Vec<String> = candidates
                .iter()
                .filter(|r| depth(r) < MAX_DEPTH && files.contains(join(r, "world.json").as_str()))
                .cloned()
                .collect();
            let root =
                shallowest(worlds, LayoutError::SeveralWorlds)?.ok_or(LayoutError::NotFoundry)?;
            let path = join(&root, "world.json");
            let bytes = manifests.get(&path).map_or(&[][..], Vec::as_slice);
            let world =
                manifest::read(PackageKind::World, bytes).map_err(|e| LayoutError::BadWorld {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            Shape::World { root, id: world.id }
        }
    };
    let mut layout = Layout {
        shape,
        worlds: Vec::new(),
        systems: Vec::new(),
        modules: Vec::new(),
        assets_bytes: 0,
        files: 0,
        bytes: 0,
        left_out: Vec::new(),
        license: None,
        notes: Vec::new(),
    };
    layout.read_packages(manifests);
    let mut left: BTreeMap<String, LeftOut> = BTreeMap::new();
    for e in entries {
        let size = match e.kind {
            EntryKind::File { size } => size,
            _ => 0,
        };
        let is_file = matches!(e.kind, EntryKind::File { .. });
        match layout.place(&e.path, e.kind == EntryKind::Dir) {
            Placed::Taken(to) => {
                if let EntryKind::Link { target } = &e.kind
                    && !crate::archive::link_stays_inside(&to, target)
                {
                    return Err(LayoutError::LinkOut {
                        path: e.path.clone(),
                        target: target.clone(),
                    });
                }
                if is_file {
                    layout.files += 1;
                    layout.bytes += size;
                    let in_package = ["worlds/", "systems/", "modules/"]
                        .iter()
                        .any(|p| to.starts_with(&format!("Data/{p}")));
                    if to.starts_with("Data/") && !in_package {
                        layout.assets_bytes += size;
                    }
                }
            }
            Placed::Left { path, why } => {
                if is_file && layout.is_license(&e.path) {
                    layout.license = manifests.get(&e.path).cloned();
                }
                let out = left.entry(path.clone()).or_insert(LeftOut {
                    path,
                    files: 0,
                    bytes: 0,
                    why,
                });
                if is_file {
                    out.files += 1;
                    out.bytes += size;
                }
            }
            Placed::Root => {}
        }
    }
    layout.left_out = left.into_values().collect();
    layout.check_systems();
    Ok(layout)
}

/// Where one entry goes.
enum Placed {
    /// Below the world's data directory, at this path.
    Taken(String),
    /// Not taken: counted under `path`, for `why`.
    Left { path: String, why: &'static str },
    /// The folder that is taken itself, or one above it.
    Root,
}

impl Layout {
    /// Where the entry at `path` goes below the world's data directory, or
    /// `None` when it is not taken.
    pub fn target(&self, path: &str) -> Option<String> {
        match self.place(path, false) {
            Placed::Taken(to) => Some(to),
            _ => None,
        }
    }

    /// Whether `path` is the user-data folder's `Config/license.json`.
    fn is_license(&self, path: &str) -> bool {
        match &self.shape {
            Shape::UserData { root } => path == join(root, "Config/license.json"),
            Shape::World { .. } => false,
        }
    }

    /// Where the entry at `path` goes; a folder (`is_dir`) left out is
    /// shown with a `/`.
    fn place(&self, path: &str, is_dir: bool) -> Placed {
        let folder = |name: &str, whole: bool| match whole && !is_dir {
            true => name.to_owned(),
            false => format!("{name}/"),
        };
        let (root, outside) = match &self.shape {
            Shape::UserData { root } => (root.as_str(), "outside the user-data folder"),
            Shape::World { root, .. } => (root.as_str(), "outside the world's folder"),
        };
        let Some(rest) = below(root, path) else {
            if below(path, root).is_some() {
                return Placed::Root;
            }
            // Shown from the top down to where it parts from the root.
            let parts: Vec<&str> = path.split('/').collect();
            let shared = parts
                .iter()
                .copied()
                .zip(root.split('/'))
                .take_while(|(a, b)| a == b)
                .count();
            let shown = parts[..=shared.min(parts.len() - 1)].join("/");
            let whole = shown == path;
            return Placed::Left {
                path: folder(&shown, whole),
                why: outside,
            };
        };
        if rest.is_empty() {
            return Placed::Root;
        }
        match &self.shape {
            Shape::World { id, .. } => Placed::Taken(format!("Data/worlds/{id}/{rest}")),
            Shape::UserData { root } => {
                let top = rest.split('/').next().unwrap_or(rest);
                let left = |what: &str, why| Placed::Left {
                    path: join(root, what),
                    why,
                };
                match top {
                    "Data" | "Backups" => Placed::Taken(rest.to_owned()),
                    "Config" if rest == "Config" && is_dir => Placed::Root,
                    "Config" => match rest {
                        "Config/license.json" => left(
                            rest,
                            "a license is never copied into a world (see the license below)",
                        ),
                        "Config/options.json" => left(
                            rest,
                            "the old server's ports and paths: Tavern writes its own",
                        ),
                        "Config/admin.txt" => left(
                            rest,
                            "the old administrator password: Tavern gives the world its own admin key",
                        ),
                        _ => left("Config/", "the old server's settings"),
                    },
                    "Logs" => left("Logs/", "the old server's logs"),
                    "container_cache" => {
                        left("container_cache/", "felddy's cache of Foundry's zip")
                    }
                    other => left(
                        &folder(other, other == rest),
                        "not part of Foundry's user data",
                    ),
                }
            }
        }
    }

    fn read_packages(&mut self, manifests: &BTreeMap<String, Vec<u8>>) {
        let data = match &self.shape {
            Shape::UserData { root } => join(root, "Data"),
            Shape::World { root, .. } => {
                let path = join(root, "world.json");
                if let Some(w) = manifests
                    .get(&path)
                    .and_then(|b| manifest::read(PackageKind::World, b).ok())
                {
                    self.worlds.push(w);
                }
                return;
            }
        };
        for kind in [PackageKind::World, PackageKind::System, PackageKind::Module] {
            let folder = format!("{data}/{}/", kind.folder());
            for (path, bytes) in manifests.range(folder.clone()..) {
                let Some(rest) = path.strip_prefix(&folder) else {
                    break;
                };
                let Some((dir, name)) = rest.split_once('/') else {
                    continue;
                };
                if name != kind.file_name() {
                    continue;
                }
                let shown = format!("Data/{}/{rest}", kind.folder());
                match manifest::read(kind, bytes) {
                    Ok(p) => {
                        if p.id != dir {
                            self.notes.push(format!(
                                "{shown} names the id {:?}, but its folder is {dir:?}: Foundry expects them to match",
                                p.id
                            ));
                        }
                        match kind {
                            PackageKind::World => self.worlds.push(p),
                            PackageKind::System => self.systems.push(p),
                            PackageKind::Module => self.modules.push(p),
                        }
                    }
                    Err(e) => self.notes.push(format!(
                        "{shown} does not read ({e}); it is taken as it is, but Foundry will not list it"
                    )),
                }
            }
        }
    }

    /// Notes each world whose game system is not among what is imported
    /// (only for a user-data folder: a lone world never brings its system).
    fn check_systems(&mut self) {
        if !matches!(self.shape, Shape::UserData { .. }) {
            return;
        }
        for w in &self.worlds {
            if let Some(system) = &w.system
                && !self.systems.iter().any(|s| &s.id == system)
            {
                self.notes.push(format!(
                    "the world {} uses the game system {system}, which is not in Data/systems: install it in Foundry before launching the world",
                    w.id
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(path: &str, size: u64) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File { size },
        }
    }

    fn dir(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::Dir,
        }
    }

    fn world_json(id: &str, system: &str, core: &str) -> Vec<u8> {
        serde_json::json!({"id": id, "title": id.to_uppercase(), "system": system, "coreVersion": core})
            .to_string()
            .into_bytes()
    }

    /// A felddy `/data` volume, below `top`.
    fn felddy(top: &str) -> (Vec<Entry>, BTreeMap<String, Vec<u8>>) {
        let p = |s: &str| join(top, s);
        let entries = vec![
            dir(&p("Config")),
            file(&p("Config/options.json"), 300),
            file(&p("Config/admin.txt"), 128),
            file(&p("Config/license.json"), 400),
            file(&p("Data/worlds/lost-mine/world.json"), 200),
            file(&p("Data/worlds/lost-mine/data/actors/000005.ldb"), 5000),
            file(&p("Data/systems/dnd5e/system.json"), 900),
            file(&p("Data/modules/dice-so-nice/module.json"), 700),
            file(&p("Data/maps/cave.webp"), 2_000_000),
            file(&p("Logs/debug.log"), 10_000),
            file(&p("container_cache/foundryvtt-13.351.zip"), 200_000_000),
            file(&p(".fvttrc.yml"), 40),
        ];
        let mut m = BTreeMap::new();
        m.insert(
            p("Data/worlds/lost-mine/world.json"),
            world_json("lost-mine", "dnd5e", "13.351"),
        );
        m.insert(
            p("Data/systems/dnd5e/system.json"),
            br#"{"id":"dnd5e","title":"D&D 5e","version":"5.1.2"}"#.to_vec(),
        );
        m.insert(
            p("Data/modules/dice-so-nice/module.json"),
            br#"{"id":"dice-so-nice","version":"5.2.1"}"#.to_vec(),
        );
        m.insert(p("Config/license.json"), br#"{"license":"ABCD"}"#.to_vec());
        m.insert(p("Config/options.json"), br#"{"port":30000}"#.to_vec());
        (entries, m)
    }

    #[test]
    fn a_felddy_volume_keeps_its_data_and_leaves_the_rest_with_reasons() {
        for top in ["", "data", "srv/foundry"] {
            let (entries, m) = felddy(top);
            let l = plan(&entries, &m).unwrap();
            assert_eq!(l.shape, Shape::UserData { root: top.into() });
            assert_eq!(l.worlds.len(), 1);
            assert_eq!(l.worlds[0].id, "lost-mine");
            assert_eq!(l.systems[0].version.as_deref(), Some("5.1.2"));
            assert_eq!(l.modules[0].id, "dice-so-nice");
            assert_eq!(l.files, 5);
            assert_eq!(l.assets_bytes, 2_000_000);
            assert_eq!(l.license.as_deref(), Some(&br#"{"license":"ABCD"}"#[..]));
            let left: Vec<&str> = l.left_out.iter().map(|o| o.path.as_str()).collect();
            let p = |s: &str| join(top, s);
            for expected in [
                p("Config/options.json"),
                p("Config/admin.txt"),
                p("Config/license.json"),
                p("Logs/"),
                p("container_cache/"),
                p(".fvttrc.yml"),
            ] {
                assert!(left.contains(&expected.as_str()), "{expected} in {left:?}");
            }
            assert_eq!(
                l.target(&p("Data/maps/cave.webp")).as_deref(),
                Some("Data/maps/cave.webp")
            );
            assert_eq!(l.target(&p("Config/license.json")), None);
            assert_eq!(l.target(&p("Logs/debug.log")), None);
            assert!(l.notes.is_empty(), "{:?}", l.notes);
        }
    }

    #[test]
    fn a_lone_world_goes_under_data_worlds_by_its_id() {
        let entries = vec![
            file("My World/world.json", 100),
            file("My World/data/scenes/000003.log", 10),
            file("__MACOSX/._world.json", 4),
        ];
        let mut m = BTreeMap::new();
        m.insert(
            "My World/world.json".into(),
            world_json("my-world", "pf2e", "12.331"),
        );
        let l = plan(&entries, &m).unwrap();
        assert_eq!(
            l.shape,
            Shape::World {
                root: "My World".into(),
                id: "my-world".into()
            }
        );
        assert_eq!(
            l.target("My World/data/scenes/000003.log").as_deref(),
            Some("Data/worlds/my-world/data/scenes/000003.log")
        );
        assert_eq!(l.left_out[0].path, "__MACOSX/");

        // Beside a nested user-data folder: named from where it parts.
        let nested = vec![
            dir("srv/data/Data/worlds"),
            file("srv/old/Config/license.json", 10),
            file("srv/notes.txt", 1),
        ];
        let mut m = BTreeMap::new();
        m.insert("srv/old/Config/license.json".to_owned(), b"{}".to_vec());
        let n = plan(&nested, &m).unwrap();
        let left: Vec<&str> = n.left_out.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(left, ["srv/notes.txt", "srv/old/"]);
        assert_eq!(
            n.license, None,
            "a license.json elsewhere is not the old server's"
        );
        assert_eq!(l.worlds[0].needs().unwrap().to_string(), "12.331");

        let top = vec![file("world.json", 100), file("data/x", 1)];
        let mut m = BTreeMap::new();
        m.insert("world.json".into(), world_json("top", "dnd5e", "11.315"));
        let l = plan(&top, &m).unwrap();
        assert_eq!(
            l.target("data/x").as_deref(),
            Some("Data/worlds/top/data/x")
        );
    }

    #[test]
    fn what_is_not_foundry_or_is_ambiguous_is_refused() {
        assert_eq!(
            plan(&[file("notes.txt", 3)], &BTreeMap::new()),
            Err(LayoutError::NotFoundry)
        );
        let two = vec![dir("a/Data/worlds"), dir("b/Data/modules")];
        assert!(matches!(
            plan(&two, &BTreeMap::new()),
            Err(LayoutError::SeveralUserData(_))
        ));
        let worlds = vec![file("a/world.json", 1), file("b/world.json", 1)];
        assert!(matches!(
            plan(&worlds, &BTreeMap::new()),
            Err(LayoutError::SeveralWorlds(_))
        ));
        let bad = vec![file("w/world.json", 1)];
        let mut m = BTreeMap::new();
        m.insert("w/world.json".into(), br#"{"id":"../escape"}"#.to_vec());
        assert!(matches!(plan(&bad, &m), Err(LayoutError::BadWorld { .. })));
        let link = vec![
            dir("Data/worlds"),
            Entry {
                path: "Data/x".into(),
                kind: EntryKind::Link {
                    target: "../../etc".into(),
                },
            },
        ];
        assert!(matches!(
            plan(&link, &BTreeMap::new()),
            Err(LayoutError::LinkOut { .. })
        ));
    }

    #[test]
    fn a_world_without_its_system_is_noted() {
        let entries = vec![file("Data/worlds/w/world.json", 1)];
        let mut m = BTreeMap::new();
        m.insert(
            "Data/worlds/w/world.json".into(),
            world_json("w", "swade", "13.351"),
        );
        let l = plan(&entries, &m).unwrap();
        assert!(l.notes.iter().any(|n| n.contains("swade")), "{:?}", l.notes);
    }

    fn any_path() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("Data".to_owned()),
                Just("Config".to_owned()),
                Just("worlds".to_owned()),
                Just("world.json".to_owned()),
                Just("Logs".to_owned()),
                "[a-z][a-z.]{0,5}",
            ],
            1..6,
        )
        .prop_map(|parts| parts.join("/"))
    }

    proptest! {
        #[test]
        fn every_target_stays_below_data_or_backups_and_counts_add_up(
            paths in proptest::collection::vec((any_path(), 0u64..1000, any::<bool>()), 0..40)
        ) {
            // As the reader gives them: each path once, nothing below a file.
            let mut entries: Vec<Entry> = Vec::new();
            for (p, size, is_dir) in &paths {
                let clash = entries.iter().any(|e| {
                    e.path == *p
                        || (matches!(e.kind, EntryKind::File { .. }) && p.starts_with(&format!("{}/", e.path)))
                        || (!is_dir && e.path.starts_with(&format!("{p}/")))
                });
                if !clash {
                    entries.push(if *is_dir { dir(p) } else { file(p, *size) });
                }
            }
            let mut m = BTreeMap::new();
            for e in &entries {
                if e.path.ends_with("world.json") {
                    m.insert(e.path.clone(), world_json("w", "s", "13"));
                }
            }
            if let Ok(l) = plan(&entries, &m) {
                let mut files = 0;
                for e in &entries {
                    if let Some(to) = l.target(&e.path) {
                        let top = to.split('/').next().unwrap_or_default();
                        prop_assert!(top == "Data" || top == "Backups", "{}", to);
                        prop_assert!(!to.split('/').any(|c| c == ".." || c.is_empty()), "{}", to);
                        if matches!(e.kind, EntryKind::File { .. }) { files += 1; }
                    }
                }
                let left: u64 = l.left_out.iter().map(|o| o.files).sum();
                let all = entries.iter().filter(|e| matches!(e.kind, EntryKind::File { .. })).count() as u64;
                prop_assert_eq!(l.files, files);
                prop_assert_eq!(l.files + left, all);
            }
        }
    }
}
