//! The [`Proxy`] itself: its settings, the route table and activity it
//! shares with the core, the API it hands the bare domain to, and the
//! pooled connections to worlds. Forwarding and the standby pages are
//! each an `impl Proxy` of their own.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use tavern_core::activity::Activity;
use tavern_core::routes::RouteTable;
use tavern_types::{Scheme, WakeOnVisit};
use tokio::sync::watch;

use crate::admission::{Admission, ConnectionLimits};
use crate::body::ProxyBody;
use crate::port::TavernPort;
use crate::route::Site;
use crate::upstream::Upstreams;

/// The API, as the proxy calls it for the bare domain.
pub type ApiService =
    tower::util::BoxCloneSyncService<Request<ProxyBody>, Response<ProxyBody>, Infallible>;

/// The client's address, on every request handed to the API.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// How the proxy behaves.
#[derive(Clone, Debug)]
pub struct ProxySettings {
    pub site: Site,
    /// `http` or `https`: what clients used (X-Forwarded-Proto).
    pub scheme: Scheme,
    /// Largest request body to a world (Foundry's uploads).
    pub body_limit: u64,
    /// Who wakes a sleeping world by visiting it.
    pub wake_on_visit: WakeOnVisit,
    /// How many connections the listener keeps, and for how long.
    pub connections: ConnectionLimits,
    /// Outside accounts the standby pages offer to sign in with:
    /// (provider, label), as the dashboard names them.
    pub sign_in_ways: Vec<(String, String)>,
    /// Game masters sign in with passwords too (`[auth] passwords`).
    pub passwords: bool,
}

pub struct Proxy {
    pub(crate) settings: ProxySettings,
    pub(crate) tavern: Arc<dyn TavernPort>,
    pub(crate) activity: Activity,
    pub(crate) routes: watch::Receiver<Arc<RouteTable>>,
    pub(crate) api: ApiService,
    pub(crate) upstreams: Arc<Upstreams>,
    pub(crate) admission: Arc<Admission>,
}

impl Proxy {
    pub fn new(settings: ProxySettings, tavern: Arc<dyn TavernPort>, api: ApiService) -> Arc<Self> {
        let routes = tavern.routes();
        let activity = tavern.activity();
        let admission = Admission::new(settings.connections.clone());
        Arc::new(Self {
            admission,
            settings,
            tavern,
            activity,
            routes,
            api,
            upstreams: Upstreams::new(),
        })
    }
}

/// Calls the API. (A boxed, `Send` future of a concrete type: the
/// compiler cannot prove `Send` for `oneshot` on this service inside the
/// connection task.)
pub(crate) fn call_api_service(
    api: &ApiService,
    req: Request<ProxyBody>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<ProxyBody>> + Send>> {
    use tower::Service as _;
    let mut service = api.clone();
    Box::pin(async move {
        let _ = std::future::poll_fn(|cx| service.poll_ready(cx)).await;
        match service.call(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    })
}
