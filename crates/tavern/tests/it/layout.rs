//! The shape of the source, held to what docs/architecture.md says: inside
//! each crate, no top-level module imports one that imports it back (one
//! way down, from the service to its resources to the leaves), and no
//! source file is longer than a reader can hold (tests aside).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a source file may be, its tests aside.
const MAX_LINES: usize = 800;

/// Files still longer than that: both are test code compiled only for
/// tests (the fake Kubernetes API server, and the store's conformance
/// suite, each behind its feature). One that shrinks below the limit must
/// leave this list.
const STILL_LONG: &[&str] = &[
    "crates/tavern-runtime/src/kubernetes/fake.rs",
    "crates/tavern-store/src/conformance.rs",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's text before its unit tests (a `#[cfg(test)]` item at the
/// top level), without line comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("\n#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first segment of every `crate::…` path in `code` (each item of a
/// `crate::{a, b::c}` group).
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut item_start, mut items) = (0, true, Vec::new());
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        items.push(ident(&group[j..]).to_owned());
                        item_start = false;
                    }
                    _ => {}
                }
            }
            out.extend(items);
        } else {
            out.push(ident(rest).to_owned());
        }
    }
    out
}

/// Each crate's top-level modules and the ones each imports.
fn module_graphs() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut graphs = BTreeMap::new();
    let crates = workspace().join("crates");
    for krate in std::fs::read_dir(&crates).unwrap() {
        let src = krate.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let module_of = |f: &Path| -> Option<String> {
            let rel = f.strip_prefix(&src).unwrap();
            let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
            let name = first.trim_end_matches(".rs").to_owned();
            (!matches!(name.as_str(), "lib" | "main")).then_some(name)
        };
        let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(f)).collect();
        // Names the crate root re-exports, by the module they come from.
        let mut exported = BTreeMap::new();
        for root in ["lib.rs", "main.rs"] {
            let Ok(text) = std::fs::read_to_string(src.join(root)) else {
                continue;
            };
            for stmt in text.split(';') {
                let Some(path) = stmt.trim().strip_prefix("pub use ") else {
                    continue;
                };
                let from = ident(path).to_owned();
                for name in path.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                    if !name.is_empty() && name != from {
                        exported.insert(name.to_owned(), from.clone());
                    }
                }
            }
        }
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in &files {
            let Some(me) = module_of(f) else { continue };
            let uses = graph.entry(me.clone()).or_default();
            for first in crate_paths(&code(f)) {
                let target = if modules.contains(&first) {
                    Some(first)
                } else {
                    exported.get(&first).cloned()
                };
                if let Some(t) = target.filter(|t| *t != me && modules.contains(t)) {
                    uses.insert(t);
                }
            }
        }
        let name = src.parent().unwrap().file_name().unwrap();
        graphs.insert(name.to_string_lossy().into_owned(), graph);
    }
    graphs
}

/// A circle through `start`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in graph.get(&at).into_iter().flatten() {
            if next == start {
                let mut whole = path.clone();
                whole.push(start.to_owned());
                return Some(whole);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graphs = module_graphs();
    assert!(graphs.contains_key("tavern-core"), "{:?}", graphs.keys());
    let core = &graphs["tavern-core"];
    // The check sees the edges it is meant to: resources import the service.
    assert!(core["instances"].contains("tavern"), "{core:?}");
    let mut circles = Vec::new();
    for (krate, graph) in &graphs {
        for module in graph.keys() {
            if let Some(c) = circle(graph, module) {
                circles.push(format!("{krate}: {}", c.join(" → ")));
            }
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn the_circle_check_finds_a_circle() {
    let graph = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
        ("d".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(circle(&graph, "a").unwrap(), ["a", "b", "c", "a"]);
    assert_eq!(circle(&graph, "d"), None);
    assert_eq!(
        crate_paths("use crate::{a::B, c};\nlet x = crate::d::e(); $crate::f"),
        ["a", "c", "d"]
    );
}

#[test]
fn no_source_file_is_longer_than_a_reader_can_hold() {
    let root = workspace();
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    let mut long = Vec::new();
    let mut shrunk: Vec<String> = STILL_LONG
        .iter()
        .filter(|f| !root.join(f).is_file())
        .map(|f| (*f).to_owned())
        .collect();
    for f in files {
        let rel = f
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let lines = code(&f).lines().count();
        let listed = STILL_LONG.contains(&rel.as_str());
        if lines > MAX_LINES && !listed {
            long.push(format!("{rel}: {lines} lines"));
        }
        if lines <= MAX_LINES && listed {
            shrunk.push(rel);
        }
    }
    assert!(
        long.is_empty(),
        "longer than {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
    assert!(
        shrunk.is_empty(),
        "no longer long (or gone), take off STILL_LONG: {shrunk:?}"
    );
}
