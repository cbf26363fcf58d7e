//! The plumbing around [`decide`]: an HTTP/1.1 server on the public
//! listener that sends each request to the API, to a world's server
//! (bodies streamed both ways, WebSocket upgrades passed through as bytes,
//! keep-alive pooled connections upstream), to a standby page, or to a 404.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tavern_core::Tavern;
use tavern_core::activity::Activity;
use tavern_core::routes::RouteTable;
use tavern_types::Slug;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::acme::ACME_TLS_ALPN;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::route::{Routing, Site, Target, decide};
use crate::standby;
use tavern_types::WakeOnVisit;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
/// Every response body the proxy sends.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;
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
    pub scheme: &'static str,
    /// Largest request body to a world (Foundry's uploads).
    pub body_limit: u64,
    /// Who wakes a sleeping world by visiting it.
    pub wake_on_visit: WakeOnVisit,
}

pub struct Proxy {
    pub(crate) settings: ProxySettings,
    pub(crate) tavern: Tavern,
    activity: Activity,
    routes: watch::Receiver<Arc<RouteTable>>,
    pub(crate) api: ApiService,
    client: Client<HttpConnector, Limited<Incoming>>,
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

pub(crate) fn plain(status: StatusCode, text: &str) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(format!("{text}\n")))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Headers that belong to one hop, never forwarded (RFC 9110 7.6.1).
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for h in HOP_BY_HOP.iter().chain(named.iter()) {
        headers.remove(h);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
}

impl Proxy {
    pub fn new(settings: ProxySettings, tavern: Tavern, api: ApiService) -> Arc<Self> {
        let routes = tavern.routes();
        let activity = tavern.activity();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Arc::new(Self {
            settings,
            tavern,
            activity,
            routes,
            api,
            client,
        })
    }

    /// Serves connections from `listener` (over TLS with `tls`) until
    /// `cancel`; then lets open requests finish for up to `grace`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        cancel: CancellationToken,
        grace: Duration,
    ) {
        let tracker = TaskTracker::new();
        loop {
            let (stream, peer) = tokio::select! {
                () = cancel.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: pause, go on.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let proxy = self.clone();
            let cancel = cancel.clone();
            let tls = tls.clone();
            tracker.spawn(async move {
                match tls {
                    None => proxy.connection(TokioIo::new(stream), peer, cancel).await,
                    Some(acceptor) => {
                        let handshake =
                            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                        match handshake.await {
                            Ok(Ok(tls))
                                if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) =>
                            {
                                // A CA validating TLS-ALPN-01: the handshake was the answer.
                                tracing::debug!(%peer, "TLS-ALPN-01 validation answered");
                            }
                            Ok(Ok(tls)) => proxy.connection(TokioIo::new(tls), peer, cancel).await,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, %peer, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                }
            });
        }
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!("connections still open after the grace period; closing anyway");
        }
    }

    /// Serves one client connection (HTTP/1.1, upgrades allowed).
    async fn connection<I>(
        self: Arc<Self>,
        io: TokioIo<I>,
        peer: SocketAddr,
        cancel: CancellationToken,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let proxy = self;
        let service = hyper::service::service_fn(move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, peer).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r { tracing::debug!(error = %e, %peer, "connection ended"); }
            }
            () = cancel.cancelled() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }

    async fn handle(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.to_string()));
        let target = {
            let table = self.routes.borrow();
            decide(
                host.as_deref(),
                req.uri().path(),
                &table,
                &self.settings.site,
            )
        };
        // The standby page's forms, on the world's own address.
        let world = match &target {
            Target::Standby(r) => Some(r.slug.clone()),
            Target::World { slug, .. } => Some(slug.clone()),
            _ => None,
        };
        if let Some(slug) = world
            && let Some(action) = self.own_path(&slug, req.uri().path())
        {
            let action = action.to_owned();
            let prefix = self.prefix(&slug);
            return self
                .tavern_form(req, peer, slug.as_str(), &prefix, &action)
                .await;
        }
        match target {
            Target::Api => {
                req.extensions_mut().insert(Peer(peer));
                call_api_service(&self.api, req.map(standby::boxed)).await
            }
            Target::NotFound => plain(StatusCode::NOT_FOUND, "Not found"),
            Target::Standby(route) => {
                let prefix = self.prefix(&route.slug);
                self.standby(req, peer, &route, &prefix).await
            }
            Target::World { slug, upstream } => {
                let result = if is_upgrade(req.headers()) {
                    self.upgrade(req, peer, host.as_deref(), &slug, upstream)
                        .await
                } else {
                    self.forward(req, peer, host.as_deref(), upstream).await
                };
                result.unwrap_or_else(|(status, why)| {
                    tracing::warn!(%slug, %upstream, error = %why, "proxying failed");
                    plain(status, status.canonical_reason().unwrap_or("Error"))
                })
            }
        }
    }

    /// Where a world's pages live: `""` by host, `/<slug>` by path.
    fn prefix(&self, slug: &Slug) -> String {
        match self.settings.site.routing {
            Routing::Host => String::new(),
            Routing::Path => format!("/{slug}"),
        }
    }

    /// `login` for `<prefix>/_tavern/login`: Tavern's own paths on a
    /// world's address, never passed to Foundry.
    fn own_path<'p>(&self, slug: &Slug, path: &'p str) -> Option<&'p str> {
        path.strip_prefix(&self.prefix(slug))?
            .strip_prefix("/_tavern/")
    }

    /// The request as the world's server gets it: origin-form URI, no
    /// hop-by-hop headers, X-Forwarded-* set by us (never trusted from the
    /// client).
    fn upstream_parts(
        &self,
        parts: &mut http::request::Parts,
        peer: SocketAddr,
        host: Option<&str>,
        upstream: SocketAddr,
    ) -> Result<(), (StatusCode, String)> {
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        parts.uri = Uri::builder()
            .scheme("http")
            .authority(upstream.to_string())
            .path_and_query(path)
            .build()
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        let h = &mut parts.headers;
        for name in [
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "forwarded",
        ] {
            h.remove(name);
        }
        let ip = HeaderValue::from_str(&peer.ip().to_string())
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
        h.insert("x-forwarded-for", ip);
        h.insert(
            "x-forwarded-proto",
            HeaderValue::from_static(self.settings.scheme),
        );
        if let Some(v) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
            h.insert("x-forwarded-host", v);
        }
        Ok(())
    }

    async fn forward(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        host: Option<&str>,
        upstream: SocketAddr,
    ) -> Result<Response<ProxyBody>, (StatusCode, String)> {
        let limit = self.settings.body_limit;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            // Decided before the body arrives.
            return Ok(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the upload is larger than {} MB", limit / 1_000_000),
            ));
        }
        let (mut parts, body) = req.into_parts();
        self.upstream_parts(&mut parts, peer, host, upstream)?;
        strip_hop_by_hop(&mut parts.headers);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let req = Request::from_parts(parts, Limited::new(body, limit));
        match self.client.request(req).await {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Ok(Response::from_parts(
                    parts,
                    body.map_err(BoxError::from).boxed_unsync(),
                ))
            }
            Err(e) => {
                let too_large =
                    std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                        e.source()
                    })
                    .any(|e| e.is::<http_body_util::LengthLimitError>());
                if too_large {
                    Ok(plain(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "the upload is too large",
                    ))
                } else {
                    Err((StatusCode::BAD_GATEWAY, e.to_string()))
                }
            }
        }
    }

    /// A WebSocket (or other) upgrade: a connection of its own to the
    /// world; once both sides switch protocols, bytes are copied both ways
    /// until either closes.
    async fn upgrade(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        host: Option<&str>,
        slug: &Slug,
        upstream: SocketAddr,
    ) -> Result<Response<ProxyBody>, (StatusCode, String)> {
        let bad_gateway = |e: &dyn std::fmt::Display| (StatusCode::BAD_GATEWAY, e.to_string());
        let client_side = hyper::upgrade::on(&mut req);
        let (mut parts, _body) = req.into_parts();
        self.upstream_parts(&mut parts, peer, host, upstream)?;
        let stream = TcpStream::connect(upstream)
            .await
            .map_err(|e| bad_gateway(&e))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| bad_gateway(&e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upgraded upstream connection ended");
            }
        });
        let mut resp = sender
            .send_request(Request::from_parts(parts, Empty::<Bytes>::new()))
            .await
            .map_err(|e| bad_gateway(&e))?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upstream_side = hyper::upgrade::on(&mut resp);
            // An open tab: counted while the connection lasts.
            let open = self.activity.socket_opened(slug);
            tokio::spawn(async move {
                let _open = open;
                match tokio::try_join!(client_side, upstream_side) {
                    Ok((client, world)) => {
                        let (mut client, mut world) = (TokioIo::new(client), TokioIo::new(world));
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut world).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                }
            });
        }
        let (parts, body) = resp.into_parts();
        Ok(Response::from_parts(
            parts,
            body.map_err(BoxError::from).boxed_unsync(),
        ))
    }
}
