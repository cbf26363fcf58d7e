//! Names in DNS, behind one port: what a world's host name holds, set and
//! removed through the community's DNS provider ([`DnsProvider`]), and the
//! drivers that speak each provider's protocol (RFC 2136 with TSIG in
//! [`rfc2136`]; Cloudflare's and DigitalOcean's HTTP APIs in [`cloudflare`]
//! and [`digitalocean`]). The decisions (which names, when) are the core's.

use std::net::{Ipv4Addr, Ipv6Addr};

use async_trait::async_trait;

mod api;
pub mod cloudflare;
pub mod digitalocean;
pub mod propagation;
pub mod rfc2136;
#[cfg(feature = "testing")]
pub mod testing;

/// The kinds of record Tavern writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    A,
    Aaaa,
    Cname,
    Txt,
}

/// One record's value.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Record {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// A host name, without the final dot.
    Cname(String),
    /// One string (at most 255 bytes, as an ACME challenge is).
    Txt(String),
}

impl RecordKind {
    /// Its name in DNS (`A`, `AAAA`, `CNAME`, `TXT`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::A => "A",
            RecordKind::Aaaa => "AAAA",
            RecordKind::Cname => "CNAME",
            RecordKind::Txt => "TXT",
        }
    }
}

impl Record {
    /// A record of `kind` read from its text as HTTP APIs give it (an
    /// address, a host name with or without its final dot, a string with
    /// or without quotes); `None` if the text is not one.
    pub fn parse(kind: RecordKind, text: &str) -> Option<Record> {
        let text = text.trim();
        match kind {
            RecordKind::A => text.parse().ok().map(Record::A),
            RecordKind::Aaaa => text.parse().ok().map(Record::Aaaa),
            RecordKind::Cname => {
                let name = text.trim_end_matches('.').to_ascii_lowercase();
                (!name.is_empty()).then_some(Record::Cname(name))
            }
            RecordKind::Txt => {
                let unquoted = text
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .unwrap_or(text);
                Some(Record::Txt(unquoted.to_owned()))
            }
        }
    }

    /// Its value as text, as HTTP APIs take it (a host name without its
    /// final dot).
    pub fn text(&self) -> String {
        match self {
            Record::A(ip) => ip.to_string(),
            Record::Aaaa(ip) => ip.to_string(),
            Record::Cname(name) => name.clone(),
            Record::Txt(text) => text.clone(),
        }
    }

    pub fn kind(&self) -> RecordKind {
        match self {
            Record::A(_) => RecordKind::A,
            Record::Aaaa(_) => RecordKind::Aaaa,
            Record::Cname(_) => RecordKind::Cname,
            Record::Txt(_) => RecordKind::Txt,
        }
    }
}

/// Why the provider did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// Asked for something that cannot be: a name outside the zone, a
    /// value that is not one. Nothing was sent.
    #[error("{0}")]
    Invalid(String),
    /// The provider said no: a wrong key, no right to change that name.
    #[error("the DNS provider refused: {0}")]
    Refused(String),
    /// The provider could not be reached, or did not answer in time.
    #[error("the DNS provider could not be reached: {0}")]
    Unreachable(String),
}

impl DnsError {
    /// Worth trying again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, DnsError::Unreachable(_))
    }
}

/// A DNS provider: reads and changes the records of names in one zone.
/// Every call is whole or not at all for one kind of record, and
/// idempotent.
#[async_trait]
pub trait DnsProvider: Send + Sync + 'static {
    /// The records of `kind` that `name` (a full host name) holds, as the
    /// provider has them.
    async fn get(&self, name: &str, kind: RecordKind) -> Result<Vec<Record>, DnsError>;
    /// Makes `name`'s records of each kind in `records` exactly those
    /// (what was there of that kind is replaced), with `ttl` seconds.
    async fn set(&self, name: &str, records: &[Record], ttl: u32) -> Result<(), DnsError>;
    /// Removes `name`'s records of `kind`; none there is not an error.
    async fn remove(&self, name: &str, kind: RecordKind) -> Result<(), DnsError>;
}

/// Whether `found` is what a name should hold (`wanted`), in any order;
/// when not, what it holds, in words.
pub fn holds(wanted: &[Record], found: &[Record]) -> Result<(), String> {
    let (mut w, mut f) = (wanted.to_vec(), found.to_vec());
    w.sort();
    w.dedup();
    f.sort();
    f.dedup();
    if w == f {
        return Ok(());
    }
    Err(match f.is_empty() {
        true => "nothing".to_owned(),
        false => words(&f),
    })
}

/// Records as people read them: `203.0.113.7, 2001:db8::7`.
pub fn words(records: &[Record]) -> String {
    records
        .iter()
        .map(|r| match r {
            Record::A(ip) => ip.to_string(),
            Record::Aaaa(ip) => ip.to_string(),
            Record::Cname(name) => format!("an alias of {name}"),
            Record::Txt(text) => format!("{text:?}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_from_the_text_http_apis_give() {
        assert_eq!(
            Record::parse(RecordKind::A, " 203.0.113.7 "),
            Some(Record::A("203.0.113.7".parse().unwrap()))
        );
        assert_eq!(Record::parse(RecordKind::A, "2001:db8::7"), None);
        assert_eq!(
            Record::parse(RecordKind::Cname, "Tavern.Example."),
            Some(Record::Cname("tavern.example".into()))
        );
        assert_eq!(
            Record::parse(RecordKind::Txt, "\"abc\""),
            Some(Record::Txt("abc".into()))
        );
        for r in [
            Record::Aaaa("2001:db8::7".parse().unwrap()),
            Record::Cname("tavern.example".into()),
            Record::Txt("token".into()),
        ] {
            assert_eq!(Record::parse(r.kind(), &r.text()), Some(r.clone()));
        }
    }

    #[test]
    fn a_name_holds_what_it_should_in_any_order() {
        let a = Record::A("203.0.113.7".parse().unwrap());
        let b = Record::Aaaa("2001:db8::7".parse().unwrap());
        assert!(holds(&[a.clone(), b.clone()], &[b.clone(), a.clone()]).is_ok());
        assert_eq!(holds(std::slice::from_ref(&a), &[]).unwrap_err(), "nothing");
        assert_eq!(
            holds(std::slice::from_ref(&a), &[a.clone(), b.clone()]).unwrap_err(),
            "203.0.113.7, 2001:db8::7"
        );
        assert_eq!(
            holds(&[a], &[Record::Cname("x.example".into())]).unwrap_err(),
            "an alias of x.example"
        );
    }
}
