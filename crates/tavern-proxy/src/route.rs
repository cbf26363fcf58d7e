//! The routing decision: one pure function of the request's Host and path,
//! the route table and the site's settings. Worlds live at
//! `<slug>.<domain>` (or under `/<slug>/` with path routing); the bare
//! domain, the configured API hosts and IP literals serve the API; anything
//! else is a plain 404, never some other world.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use tavern_core::routes::{Route, RouteTable};
use tavern_types::Slug;

/// How worlds are told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// `<slug>.<domain>`.
    Host,
    /// `<domain>/<slug>/` (Foundry's routePrefix is the slug).
    Path,
}

/// What the proxy serves.
#[derive(Clone, Debug)]
pub struct Site {
    /// Worlds live at `<slug>.<domain>`; the bare domain serves the API.
    pub domain: String,
    /// Other host names that serve the API (the public URL's host).
    pub api_hosts: Vec<String>,
    pub routing: Routing,
}

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Api,
    World {
        slug: Slug,
        upstream: SocketAddr,
    },
    /// A world that is not running: its standby page.
    Standby(Route),
    NotFound,
}

/// The host name of a Host header, lowercased, without port or brackets
/// (borrowed when it already is lowercase, as it nearly always is). Short
/// strings, looked at byte by byte: this runs for every request.
pub fn host_name(host: &str) -> Option<Cow<'_, str>> {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        rest.split_once(']').map(|(v6, _)| v6)?
    } else {
        match host.bytes().rposition(|b| b == b':') {
            Some(colon) if host.as_bytes()[colon + 1..].iter().all(u8::is_ascii_digit) => {
                &host[..colon]
            }
            Some(_) => return None,
            None => host,
        }
    };
    let name = name.trim_end_matches('.');
    let mut upper = false;
    for b in name.bytes() {
        upper |= b.is_ascii_uppercase();
        if !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':')) {
            return None;
        }
    }
    if name.is_empty() {
        None
    } else if upper {
        Some(Cow::Owned(name.to_ascii_lowercase()))
    } else {
        Some(Cow::Borrowed(name))
    }
}

/// An IP address literal (which serves the API): only names made of hex
/// digits, dots and colons are worth parsing as one.
fn is_ip_literal(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_hexdigit() || matches!(b, b'.' | b':'))
        && name.parse::<IpAddr>().is_ok()
}

fn world(route: &Route) -> Target {
    match route.upstream {
        Some(upstream) => Target::World {
            slug: route.slug.clone(),
            upstream,
        },
        None => Target::Standby(route.clone()),
    }
}

/// Decides where a request for `host` and `path` goes.
pub fn decide(host: Option<&str>, path: &str, table: &RouteTable, site: &Site) -> Target {
    let Some(name) = host.and_then(host_name) else {
        return Target::NotFound;
    };
    let name = name.as_ref();
    let is_api_host =
        name == site.domain || site.api_hosts.iter().any(|h| h == name) || is_ip_literal(name);
    if is_api_host {
        if site.routing == Routing::Path {
            let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
            if let Some(route) = table.get(first) {
                return world(route);
            }
        }
        return Target::Api;
    }
    if site.routing == Routing::Host
        && let Some(label) = name
            .strip_suffix(site.domain.as_str())
            .and_then(|rest| rest.strip_suffix('.'))
        && !label.contains('.')
        && let Some(route) = table.get(label)
    {
        return world(route);
    }
    Target::NotFound
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tavern_types::{DesiredState, ObservedState};

    use super::*;

    fn table(worlds: &[(&str, Option<u16>)]) -> RouteTable {
        RouteTable {
            routes: worlds
                .iter()
                .map(|(slug, port)| {
                    let slug = Slug::parse(slug).unwrap();
                    let route = Route {
                        slug: slug.clone(),
                        upstream: port.map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
                        state: if port.is_some() {
                            ObservedState::Running
                        } else {
                            ObservedState::Stopped
                        },
                        since: jiff::Timestamp::UNIX_EPOCH,
                        desired: DesiredState::Stopped,
                        reason: None,
                        next_session: None,
                        wake_on_visit: None,
                    };
                    (slug, route)
                })
                .collect(),
        }
    }

    fn site(routing: Routing) -> Site {
        Site {
            domain: "games.example".into(),
            api_hosts: vec!["tavern.example".into()],
            routing,
        }
    }

    #[test]
    fn host_names_lose_port_case_and_brackets() {
        assert_eq!(
            host_name("Dragon.Games.Example:8080").as_deref(),
            Some("dragon.games.example")
        );
        assert_eq!(
            host_name("games.example.").as_deref(),
            Some("games.example")
        );
        assert_eq!(host_name("[::1]:80").as_deref(), Some("::1"));
        assert_eq!(host_name("127.0.0.1:9").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_name(""), None);
        assert_eq!(host_name("a b"), None);
        assert_eq!(host_name("x:y"), None);
    }

    #[test]
    fn worlds_by_host() {
        let t = table(&[("dragon", Some(30001)), ("curse", None)]);
        let s = site(Routing::Host);
        assert!(matches!(
            decide(Some("dragon.games.example:8080"), "/join", &t, &s),
            Target::World { upstream, .. } if upstream.port() == 30001
        ));
        assert!(
            matches!(decide(Some("curse.games.example"), "/", &t, &s), Target::Standby(r) if r.slug.as_str() == "curse")
        );
        for api in [
            "games.example",
            "tavern.example:443",
            "127.0.0.1:8080",
            "[::1]:8080",
        ] {
            assert_eq!(
                decide(Some(api), "/api/v1/instances", &t, &s),
                Target::Api,
                "{api}"
            );
        }
        for nowhere in [
            "nobody.games.example",
            "a.dragon.games.example",
            "dragon.evil.example",
            "dragon",
            "dragon.games.example.evil",
            "evil.example",
        ] {
            assert_eq!(
                decide(Some(nowhere), "/", &t, &s),
                Target::NotFound,
                "{nowhere}"
            );
        }
        assert_eq!(decide(None, "/", &t, &s), Target::NotFound);
    }

    #[test]
    fn worlds_by_path() {
        let t = table(&[("dragon", Some(30001)), ("curse", None)]);
        let s = site(Routing::Path);
        assert!(matches!(
            decide(Some("games.example"), "/dragon/join", &t, &s),
            Target::World { .. }
        ));
        assert!(matches!(
            decide(Some("games.example"), "/curse/", &t, &s),
            Target::Standby(_)
        ));
        assert_eq!(
            decide(Some("games.example"), "/api/v1/instances", &t, &s),
            Target::Api
        );
        assert_eq!(
            decide(Some("games.example"), "/healthz", &t, &s),
            Target::Api
        );
        assert_eq!(
            decide(Some("dragon.games.example"), "/", &t, &s),
            Target::NotFound
        );
    }

    proptest! {
        /// Whatever the Host says, a request reaches a world only when the
        /// Host names exactly that world.
        #[test]
        fn a_host_reaches_only_the_world_it_names(
            host in "[a-zA-Z0-9.:\\[\\]-]{0,40}",
            path in "/[a-z/]{0,20}",
        ) {
            let t = table(&[("dragon", Some(30001)), ("curse", Some(30002)), ("games", Some(30003))]);
            let s = site(Routing::Host);
            if let Target::World { slug, .. } = decide(Some(&host), &path, &t, &s) {
                prop_assert_eq!(
                    host_name(&host).map(Cow::into_owned),
                    Some(format!("{slug}.games.example"))
                );
            }
        }
    }
}
