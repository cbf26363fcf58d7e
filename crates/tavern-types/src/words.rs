//! How quantities read to people, the same in the dashboard and the CLI:
//! sizes in decimal units, instants to the second; and an error with its
//! causes, on one line.

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// Bytes as people read them: `999 B`, `1.5 KB`, `5.0 MB`, `2.3 GB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// An instant to the second in `zone`, with the zone's abbreviation:
/// `2026-12-02 09:15:03 CET`.
pub fn instant(t: Timestamp, zone: &TimeZone) -> String {
    t.to_zoned(zone.clone())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// An error and its causes on one line (`a: b: c`), for logs and for the
/// reasons Tavern records, where `to_string` would keep only the first.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_reads_with_its_causes() {
        let outer = OuterError(std::io::Error::other("disk full"));
        assert_eq!(error_chain(&outer), "writing the archive: disk full");
        assert_eq!(error_chain(&outer.0), "disk full");
    }

    #[derive(Debug)]
    struct OuterError(std::io::Error);

    impl std::fmt::Display for OuterError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("writing the archive")
        }
    }

    impl std::error::Error for OuterError {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1500), "1.5 KB");
        assert_eq!(size(5_000_000), "5.0 MB");
        assert_eq!(size(2_340_000_000), "2.3 GB");
        assert_eq!(size(3_200_000_000_000_000), "3200.0 TB");
    }

    #[test]
    fn instants_read_to_the_second_in_a_zone() {
        let t: Timestamp = "2026-12-02T08:15:03.5Z".parse().unwrap();
        assert_eq!(instant(t, &TimeZone::UTC), "2026-12-02 08:15:03 UTC");
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(instant(t, &berlin), "2026-12-02 09:15:03 CET");
    }
}
