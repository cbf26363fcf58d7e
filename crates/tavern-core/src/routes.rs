//! Where each world can be reached: the table the reconciler publishes
//! after every activation and the proxy reads through a watch channel, so
//! route changes apply at once and the proxy never reads the store.

use std::collections::HashMap;
use std::net::SocketAddr;

use jiff::Timestamp;
use tavern_types::{DesiredState, ObservedState, Slug, WakeOnVisit};

/// One world as the proxy sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub slug: Slug,
    /// Where its server answers; `None` unless it is running.
    pub upstream: Option<SocketAddr>,
    pub state: ObservedState,
    /// When the world's record last changed (for a starting world: about
    /// when it began to start).
    pub since: Timestamp,
    pub desired: DesiredState,
    /// Why it is in its state, for the standby page.
    pub reason: Option<String>,
    /// When its next (or current) session begins.
    pub next_session: Option<Timestamp>,
    /// Who wakes it by visiting, when it says so itself.
    pub wake_on_visit: Option<WakeOnVisit>,
}

/// Every world by slug. (Hashed with foldhash: the proxy looks a world up
/// for every request, and only Tavern puts slugs in the table.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteTable {
    pub routes: HashMap<Slug, Route, foldhash::fast::RandomState>,
}

impl RouteTable {
    /// The world named `slug` (any text: what is not a slug is in no table).
    pub fn get(&self, slug: &str) -> Option<&Route> {
        self.routes.get(slug)
    }
}
