//! Foundry's version numbers (`13.351`, `12.331`, `0.8.9`) and their order.

use std::cmp::Ordering;
use std::fmt;

/// The Foundry version Tavern's stand-in (`tavern foundry-stub`) plays, in
/// its status and its log, and that a world on the release `stub` runs.
pub const STAND_IN: &str = "13.351";

/// A Foundry version: dotted numbers, compared number by number (`9.280`
/// comes before `10.291`; a missing part counts as 0).
#[derive(Debug, Clone)]
pub struct Version(Vec<u64>);

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Version {}

impl Version {
    /// Reads a version such as `13.351` (a leading `v` is allowed); `None`
    /// for anything else (`stub`, `latest`, `13.x`).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let s = s.strip_prefix(['v', 'V']).unwrap_or(s);
        if s.is_empty() || s.split('.').count() > 4 {
            return None;
        }
        s.split('.')
            .map(
                |part| match part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty() {
                    true => part.parse().ok(),
                    false => None,
                },
            )
            .collect::<Option<Vec<u64>>>()
            .map(Version)
    }

    /// Only the first `parts` numbers: `13` for `13.351` and 1.
    pub fn truncated(&self, parts: usize) -> Self {
        Version(self.0.iter().copied().take(parts.max(1)).collect())
    }

    /// The generation: `13` for `13.351`.
    pub fn generation(&self) -> u64 {
        self.0.first().copied().unwrap_or(0)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.0.len().max(other.0.len());
        (0..len)
            .map(|i| {
                let a = self.0.get(i).copied().unwrap_or(0);
                let b = other.0.get(i).copied().unwrap_or(0);
                a.cmp(&b)
            })
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn versions_are_ordered_number_by_number() {
        assert!(v("9.280") < v("10.291"));
        assert!(v("12.331") < v("13.351"));
        assert!(v("0.8.9") < v("9.238"));
        assert_eq!(v("13"), v("13.0"));
        assert_eq!(v("v13.351"), v("13.351"));
        assert_eq!(v("13.351").generation(), 13);
        assert_eq!(v("13.351").to_string(), "13.351");
        for bad in [
            "",
            "stub",
            "latest",
            "13.x",
            "13..1",
            ".1",
            "1.2.3.4.5",
            "-1",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_what_parses_prints_back(s in "\\PC{0,24}") {
            if let Some(parsed) = Version::parse(&s) {
                prop_assert_eq!(Version::parse(&parsed.to_string()), Some(parsed));
            }
        }

        #[test]
        fn the_order_is_the_numbers_order(a in proptest::collection::vec(0u64..1000, 1..4),
                                          b in proptest::collection::vec(0u64..1000, 1..4)) {
            let show = |n: &[u64]| n.iter().map(u64::to_string).collect::<Vec<_>>().join(".");
            let (va, vb) = (v(&show(&a)), v(&show(&b)));
            let pad = |n: &[u64]| { let mut n = n.to_vec(); n.resize(4, 0); n };
            prop_assert_eq!(va.cmp(&vb), pad(&a).cmp(&pad(&b)));
        }
    }
}
