//! Which library packages a world uses: the newest version of a package,
//! the requirements that come with a choice, what may not be removed
//! because another choice needs it, what a tier allows, and which choices
//! a Foundry release would stop loading.

use std::cmp::Ordering;

use tavern_foundry::manifest::{Fit, PackageKind};
use tavern_foundry::version::Version;
use tavern_store::LibraryPackage;

/// A package named by kind and id.
pub type Named = (PackageKind, String);

/// One chosen version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Choice {
    pub kind: PackageKind,
    pub id: String,
    pub version: String,
}

impl Choice {
    pub fn of(p: &LibraryPackage) -> Self {
        Self {
            kind: p.kind,
            id: p.id.clone(),
            version: p.version.clone(),
        }
    }

    fn named(&self) -> Named {
        (self.kind, self.id.clone())
    }
}

/// Orders version names: as Foundry versions where both read as such
/// (`1.10` after `1.9`), else as text.
pub fn version_order(a: &str, b: &str) -> Ordering {
    let plain = |s: &str| {
        s.split(['-', '+'])
            .next()
            .and_then(Version::parse)
            .map(|v| (v, !s.contains('-')))
    };
    match (plain(a), plain(b)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        _ => a.cmp(b),
    }
}

/// The newest version of `kind`/`id` in the library.
pub fn newest<'a>(
    library: &'a [LibraryPackage],
    kind: PackageKind,
    id: &str,
) -> Option<&'a LibraryPackage> {
    library
        .iter()
        .filter(|p| p.kind == kind && p.id == id)
        .max_by(|a, b| version_order(&a.version, &b.version))
}

/// The kind of the package `id` in the library, when only one kind has
/// it.
pub fn kind_of(library: &[LibraryPackage], id: &str) -> Result<PackageKind, ChoiceError> {
    let mut kinds: Vec<PackageKind> = library
        .iter()
        .filter(|p| p.id == id)
        .map(|p| p.kind)
        .collect();
    kinds.dedup();
    match kinds.as_slice() {
        [] => Err(ChoiceError::NotInLibrary(id.to_owned())),
        [one] => Ok(*one),
        _ => Err(ChoiceError::Ambiguous(id.to_owned())),
    }
}

/// Why a choice was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    #[error("{0} is not in the community's library")]
    NotInLibrary(String),
    #[error("the library has no version {version} of {id}")]
    NoVersion { id: String, version: String },
    #[error(
        "{0} names both a game system and a module in the library; say which (system:{0} or module:{0})"
    )]
    Ambiguous(String),
    #[error(
        "{needed_by} needs the {kind} {id}, which is not in the community's library; ask an admin to add it"
    )]
    Missing {
        kind: PackageKind,
        id: String,
        needed_by: String,
    },
    #[error("{id} is needed by {by}; remove that first")]
    Needed { id: String, by: String },
    #[error("{0} is not chosen for this world")]
    NotChosen(String),
    #[error("your tier {tier} does not include {id} (limit packages of tier {tier})")]
    NotInTier { id: String, tier: String },
}

/// `current` with `add` chosen (replacing another version of it), and
/// whatever `add` needs, recursively: a requirement already chosen keeps
/// its version, else the library's newest comes. Answers the new choices,
/// sorted.
pub fn with_choice(
    current: &[Choice],
    add: Choice,
    library: &[LibraryPackage],
) -> Result<Vec<Choice>, ChoiceError> {
    let find = |c: &Choice| {
        library
            .iter()
            .find(|p| p.kind == c.kind && p.id == c.id && p.version == c.version)
    };
    if find(&add).is_none() {
        return Err(match newest(library, add.kind, &add.id) {
            None => ChoiceError::NotInLibrary(add.id),
            Some(_) => ChoiceError::NoVersion {
                id: add.id,
                version: add.version,
            },
        });
    }
    let mut out: Vec<Choice> = current
        .iter()
        .filter(|c| c.named() != add.named())
        .cloned()
        .collect();
    let mut queue = vec![add];
    while let Some(next) = queue.pop() {
        if out.iter().any(|c| c.named() == next.named()) {
            continue;
        }
        let Some(p) = find(&next) else { continue };
        for r in &p.requires {
            if out
                .iter()
                .chain(&queue)
                .any(|c| c.kind == r.kind && c.id == r.id)
            {
                continue;
            }
            let Some(n) = newest(library, r.kind, &r.id) else {
                return Err(ChoiceError::Missing {
                    kind: r.kind,
                    id: r.id.clone(),
                    needed_by: p.id.clone(),
                });
            };
            queue.push(Choice::of(n));
        }
        out.push(next);
    }
    out.sort();
    Ok(out)
}

/// `current` without `id`, unless another choice needs it.
pub fn without(
    current: &[Choice],
    kind: PackageKind,
    id: &str,
    library: &[LibraryPackage],
) -> Result<Vec<Choice>, ChoiceError> {
    if !current.iter().any(|c| c.kind == kind && c.id == id) {
        return Err(ChoiceError::NotChosen(id.to_owned()));
    }
    let needers: Vec<&str> = current
        .iter()
        .filter(|c| !(c.kind == kind && c.id == id))
        .filter(|c| {
            library
                .iter()
                .find(|p| p.kind == c.kind && p.id == c.id && p.version == c.version)
                .is_some_and(|p| p.requires.iter().any(|r| r.kind == kind && r.id == id))
        })
        .map(|c| c.id.as_str())
        .collect();
    if !needers.is_empty() {
        return Err(ChoiceError::Needed {
            id: id.to_owned(),
            by: needers.join(", "),
        });
    }
    Ok(current
        .iter()
        .filter(|c| !(c.kind == kind && c.id == id))
        .cloned()
        .collect())
}

/// Whether a tier's `packages` list (`None`: every package) allows `id`.
pub fn allowed(list: Option<&[String]>, id: &str) -> bool {
    list.is_none_or(|l| l.iter().any(|a| a == id || a == "*"))
}

/// The choices Foundry `release` would not load (or loads unverified),
/// with how they fit; choices that work are left out.
pub fn misfits(
    choices: &[Choice],
    library: &[LibraryPackage],
    release: &Version,
) -> Vec<(Choice, Fit)> {
    choices
        .iter()
        .filter_map(|c| {
            let p = library
                .iter()
                .find(|p| p.kind == c.kind && p.id == c.id && p.version == c.version)?;
            match p.compatibility.fit(release) {
                Fit::Works => None,
                fit => Some((c.clone(), fit)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tavern_foundry::manifest::{Compatibility, Requirement};

    use super::*;

    fn lib(
        kind: PackageKind,
        id: &str,
        version: &str,
        requires: &[(PackageKind, &str)],
    ) -> LibraryPackage {
        LibraryPackage {
            kind,
            id: id.into(),
            version: version.into(),
            title: None,
            manifest_url: String::new(),
            download_url: String::new(),
            sha256: String::new(),
            bytes: 0,
            compatibility: Compatibility {
                minimum: Some("12".into()),
                verified: Some("13".into()),
                maximum: Some("13".into()),
            },
            requires: requires
                .iter()
                .map(|(k, id)| Requirement {
                    kind: *k,
                    id: (*id).into(),
                    manifest: None,
                    compatibility: Compatibility::default(),
                })
                .collect(),
            added_by: String::new(),
            added_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    fn choice(kind: PackageKind, id: &str, version: &str) -> Choice {
        Choice {
            kind,
            id: id.into(),
            version: version.into(),
        }
    }

    use PackageKind::{Module, System};

    #[test]
    fn versions_are_ordered_as_versions() {
        assert_eq!(version_order("1.10.0", "1.9.2"), Ordering::Greater);
        assert_eq!(version_order("2.0.0-beta", "2.0.0"), Ordering::Less);
        assert_eq!(version_order("v3", "2"), Ordering::Greater);
        let l = [lib(Module, "m", "1.9", &[]), lib(Module, "m", "1.10", &[])];
        assert_eq!(newest(&l, Module, "m").unwrap().version, "1.10");
    }

    #[test]
    fn a_choice_brings_what_it_needs_and_keeps_chosen_versions() {
        let library = [
            lib(System, "pf2e", "6.0", &[]),
            lib(Module, "lib-wrapper", "1.0", &[]),
            lib(Module, "lib-wrapper", "1.1", &[]),
            lib(Module, "socket", "2.0", &[(Module, "lib-wrapper")]),
            lib(
                Module,
                "combat",
                "3.0",
                &[(Module, "socket"), (System, "pf2e")],
            ),
            lib(Module, "orphan", "1.0", &[(Module, "absent")]),
        ];
        let current = [choice(Module, "lib-wrapper", "1.0")];
        let got = with_choice(&current, choice(Module, "combat", "3.0"), &library).unwrap();
        assert_eq!(
            got,
            [
                choice(System, "pf2e", "6.0"),
                choice(Module, "combat", "3.0"),
                choice(Module, "lib-wrapper", "1.0"),
                choice(Module, "socket", "2.0"),
            ]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
        assert_eq!(
            with_choice(&current, choice(Module, "orphan", "1.0"), &library),
            Err(ChoiceError::Missing {
                kind: Module,
                id: "absent".into(),
                needed_by: "orphan".into()
            })
        );
        assert!(matches!(
            with_choice(&current, choice(Module, "combat", "9"), &library),
            Err(ChoiceError::NoVersion { .. })
        ));
        // Another version replaces the chosen one.
        let moved = with_choice(&current, choice(Module, "lib-wrapper", "1.1"), &library).unwrap();
        assert_eq!(moved, [choice(Module, "lib-wrapper", "1.1")]);

        assert_eq!(
            without(&got, Module, "socket", &library),
            Err(ChoiceError::Needed {
                id: "socket".into(),
                by: "combat".into()
            })
        );
        let less = without(&got, Module, "combat", &library).unwrap();
        assert_eq!(less.len(), 3);
        assert!(matches!(
            without(&less, Module, "combat", &library),
            Err(ChoiceError::NotChosen(_))
        ));
        assert_eq!(kind_of(&library, "pf2e"), Ok(System));
        assert!(matches!(
            kind_of(&library, "nope"),
            Err(ChoiceError::NotInLibrary(_))
        ));
    }

    #[test]
    fn a_release_change_names_the_choices_it_would_break() {
        let library = [lib(Module, "old", "1", &[]), lib(System, "s", "1", &[])];
        let choices = [choice(Module, "old", "1"), choice(System, "s", "1")];
        assert!(misfits(&choices, &library, &Version::parse("13.351").unwrap()).is_empty());
        let bad = misfits(&choices, &library, &Version::parse("14.1").unwrap());
        assert_eq!(bad.len(), 2);
        assert!(!bad[0].1.loads());
        assert!(allowed(None, "x") && allowed(Some(&["x".into()]), "x"));
        assert!(!allowed(Some(&["y".into()]), "x") && allowed(Some(&["*".into()]), "x"));
    }

    proptest! {
        #[test]
        fn choices_always_hold_their_requirements(
            edges in proptest::collection::vec((0usize..6, 0usize..6), 0..10),
            pick in 0usize..6,
        ) {
            let ids: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
            let library: Vec<LibraryPackage> = (0..6)
                .map(|i| {
                    let needs: Vec<(PackageKind, &str)> = edges
                        .iter()
                        .filter(|(from, to)| *from == i && from != to)
                        .map(|(_, to)| (Module, ids[*to].as_str()))
                        .collect();
                    lib(Module, &ids[i], "1", &needs)
                })
                .collect();
            let got = with_choice(&[], choice(Module, &ids[pick], "1"), &library).unwrap();
            for c in &got {
                let p = library.iter().find(|p| p.id == c.id).unwrap();
                for r in &p.requires {
                    prop_assert!(got.iter().any(|c| c.id == r.id));
                }
            }
            let mut names: Vec<&str> = got.iter().map(|c| c.id.as_str()).collect();
            names.dedup();
            prop_assert_eq!(names.len(), got.len());
        }
    }
}
