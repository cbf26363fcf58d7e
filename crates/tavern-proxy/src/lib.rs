//! The reverse proxy in front of the worlds: on the public listener, each
//! request goes to the API (the bare domain), to a world's server
//! (`<slug>.<domain>`, or `/<slug>/` with path routing), to the standby
//! page of a world that is not running, or to a plain 404. The routing
//! decision is one pure function ([`route::decide`]) of the request and the
//! route table the reconciler publishes; the proxy never reads the store.

pub mod acme;
mod admission;
mod backups;
mod body;
mod forward;
mod port;
mod proxy;
pub mod route;
mod standby;
pub mod tls;
mod upstream;

pub use admission::ConnectionLimits;
pub use body::{BoxError, ProxyBody};
pub use port::{Note, SignedIn, TavernPort, Visitor};
pub use proxy::{ApiService, Peer, Proxy, ProxySettings};
pub use route::{Routing, Site};
