//! The plumbing around [`decide`]: an HTTP/1.1 server on the public
//! listener that sends each request to the API, to a world's server
//! (bodies streamed both ways, WebSocket upgrades passed through as bytes,
//! keep-alive pooled connections upstream), to a standby page, or to a 404.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Either};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tavern_types::Slug;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::acme::ACME_TLS_ALPN;
use crate::admission::{H2_ALPN, Ticket, accept_loop, first_bytes, serve_http1, serve_http2};
use crate::body::{BoxError, ProxyBody, plain};
use crate::proxy::{Peer, Proxy, call_api_service};
use crate::route::{Routing, Target, decide};
use crate::upstream::{Outgoing, UpstreamError};

/// A request the proxy could not take to its world: logged, and answered
/// with the status alone.
fn failed(slug: &Slug, upstream: SocketAddr, status: StatusCode, why: &str) -> Response<ProxyBody> {
    tracing::warn!(%slug, %upstream, error = %why, "proxying failed");
    plain(status, status.canonical_reason().unwrap_or("Error"))
}

/// Headers that belong to one hop, never forwarded (RFC 9110 7.6.1).
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "keep-alive"
            | "proxy-connection"
    )
}

/// What clients may claim about themselves; the proxy sets these.
fn forwarding(name: &str) -> bool {
    matches!(
        name,
        "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host" | "forwarded"
    )
}

/// Both of the above: what a client's request loses on its way to a world.
fn hop_by_hop_or_forwarding(name: &str) -> bool {
    hop_by_hop(name) || forwarding(name)
}

/// The prefix of every cookie Tavern sets (the session, the sign-in
/// forms' double-submit token, flash messages).
const TAVERN_COOKIE_PREFIX: &str = "tavern_";

/// Removes Tavern's credentials from a request on its way to a world,
/// whose server is not trusted with them: Tavern's own cookies (a world's
/// own cookies are kept, in their order) and an Authorization header that
/// carries a Tavern token. Most requests carry neither, and are looked at
/// without allocating.
fn strip_tavern_credentials(headers: &mut HeaderMap) {
    if headers
        .get(header::AUTHORIZATION)
        .is_some_and(|v| carries_tavern_token(v.as_bytes()))
    {
        headers.remove(header::AUTHORIZATION);
    }
    let ours = |v: &HeaderValue| {
        v.as_bytes()
            .windows(TAVERN_COOKIE_PREFIX.len())
            .any(|w| w == TAVERN_COOKIE_PREFIX.as_bytes())
    };
    if !headers.get_all(header::COOKIE).iter().any(ours) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| without_tavern_cookies(v.as_bytes()))
        .filter_map(|v| HeaderValue::from_bytes(&v).ok())
        .collect();
    headers.remove(header::COOKIE);
    for v in kept {
        headers.append(header::COOKIE, v);
    }
}

/// An Authorization value that holds a Tavern API token (any scheme).
fn carries_tavern_token(value: &[u8]) -> bool {
    let prefix = tavern_core::auth::TOKEN_PREFIX.as_bytes();
    value
        .split(|b| *b == b' ' || *b == b'\t' || *b == b'=' || *b == b',')
        .any(|part| part.starts_with(prefix))
}

/// A Cookie header's value without Tavern's cookies, or `None` when
/// nothing else is left. Pairs are split on `;` (RFC 6265 5.4); a name is
/// compared after trimming spaces, as browsers and servers read it.
fn without_tavern_cookies(value: &[u8]) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(value.len());
    for pair in value.split(|b| *b == b';') {
        let trimmed = pair.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        let name = trimmed
            .split(|b| *b == b'=')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if name.starts_with(TAVERN_COOKIE_PREFIX.as_bytes()) {
            continue;
        }
        if !out.is_empty() {
            out.extend_from_slice(b"; ");
        }
        out.extend_from_slice(trimmed);
    }
    (!out.is_empty()).then_some(out)
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes every header `doomed` names and, when `connection_named`, those
/// the Connection header names. One pass over the (few) headers, without
/// allocating, finds that most messages have none to remove.
fn strip(headers: &mut HeaderMap, doomed: fn(&str) -> bool, connection_named: bool) {
    if !headers.keys().any(|k| doomed(k.as_str())) {
        return;
    }
    let mut remove: Vec<HeaderName> = headers
        .keys()
        .filter(|k| doomed(k.as_str()))
        .cloned()
        .collect();
    if connection_named {
        remove.extend(
            headers
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok()),
        );
    }
    for h in &remove {
        headers.remove(h);
    }
}

/// An IP address as text, kept on the stack.
struct AddressText {
    buf: [u8; 45],
    len: usize,
}

impl AddressText {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// `ip` as text. IPv4, by far the common case, is written digit by digit:
/// `core::fmt` for addresses is a tenth of the proxy's own work per
/// request otherwise (docs/performance.md).
fn address_text(ip: IpAddr) -> AddressText {
    let mut text = AddressText {
        buf: [0; 45],
        len: 0,
    };
    let mut rest = &mut text.buf[..];
    match ip {
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    let _ = rest.write_all(b".");
                }
                let _ = rest.write_all(digits.format(octet).as_bytes());
            }
        }
        // At most 39 characters: the buffer holds any.
        IpAddr::V6(v6) => {
            let _ = write!(rest, "{v6}");
        }
    }
    text.len = 45 - rest.len();
    text
}

/// The host a request is for (a cheap, shared copy of its value): the
/// request target's authority when it is in absolute form, else the Host
/// header (RFC 9112 3.2). Two Host headers, or a Host header that names
/// another host than the target, are refused: proxies behind or in front
/// of Tavern could read either one.
fn request_host<B>(req: &Request<B>) -> Result<Option<HeaderValue>, &'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("a request has one Host header");
    }
    let Some(authority) = req.uri().authority() else {
        return Ok(host.cloned());
    };
    match host {
        Some(h)
            if !h
                .as_bytes()
                .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
        {
            Err("the Host header names another host than the request target")
        }
        Some(h) => Ok(Some(h.clone())),
        None => Ok(HeaderValue::from_str(authority.as_str()).ok()),
    }
}

/// A client's request body that, dropped unread (an early answer: too
/// large, malformed, refused), is read to its end and thrown away in the
/// background, up to [`DRAIN_BYTES`] and for [`DRAIN_TIME`]: so that the
/// client, still sending, reads the answer instead of a connection reset.
struct Drained(Option<Incoming>);

const DRAIN_BYTES: u64 = 64 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(10);

impl Drained {
    fn new(body: Incoming) -> Self {
        Self(Some(body))
    }
}

impl hyper::body::Body for Drained {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        match self.0.as_mut() {
            Some(body) => std::pin::Pin::new(body)
                .poll_frame(cx)
                .map_err(BoxError::from),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(hyper::body::Body::is_end_stream)
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.0.as_ref().map_or_else(
            || hyper::body::SizeHint::with_exact(0),
            hyper::body::Body::size_hint,
        )
    }
}

impl Drop for Drained {
    fn drop(&mut self) {
        let Some(mut body) = self.0.take() else {
            return;
        };
        if hyper::body::Body::is_end_stream(&body) {
            return;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        tokio::spawn(async move {
            let mut left = DRAIN_BYTES;
            let drain = async {
                while let Some(Ok(frame)) = body.frame().await {
                    let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                    left = left.saturating_sub(n);
                    if left == 0 {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        });
    }
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

/// What `handle` found out about a request it does not forward itself.
struct Elsewhere {
    peer: SocketAddr,
    host: Option<HeaderValue>,
    target: Target,
    /// One of Tavern's own paths on a world's address: the world, and the
    /// action (`login` for `/_tavern/login`).
    own: Option<(Slug, String)>,
    /// Whether it asks to upgrade (a WebSocket).
    upgrade: bool,
}

impl Proxy {
    /// Serves connections from `listener` (over TLS with `tls`) until
    /// `cancel`, within the connection limits (see [`crate::admission`]);
    /// then lets open requests finish for up to `grace`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        cancel: CancellationToken,
        grace: Duration,
    ) {
        let tracker = TaskTracker::new();
        let plain = tls.is_none();
        accept_loop(
            &listener,
            &self.admission,
            plain,
            &cancel,
            &tracker,
            |stream, peer, ticket| {
                let proxy = self.clone();
                let cancel = cancel.clone();
                let tls = tls.clone();
                async move {
                    let Some(acceptor) = tls else {
                        if !first_bytes(&stream, &ticket, &cancel).await {
                            return;
                        }
                        let io = TokioIo::new(stream);
                        return proxy.connection(io, peer, ticket, cancel, false).await;
                    };
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) => {
                            // A CA validating TLS-ALPN-01: the handshake was the answer.
                            tracing::debug!(%peer, "TLS-ALPN-01 validation answered");
                        }
                        Ok(Ok(tls)) => {
                            let h2 = tls.get_ref().1.alpn_protocol() == Some(H2_ALPN);
                            let io = TokioIo::new(tls);
                            proxy.connection(io, peer, ticket, cancel, h2).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            },
        )
        .await;
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!("connections still open after the grace period; closing anyway");
        }
    }

    /// Serves one client connection: HTTP/2 when its TLS handshake chose
    /// it (`h2`), else HTTP/1.1 (upgrades allowed, so WebSockets go this
    /// way, as browsers send them). Either way each request is forwarded
    /// to the world over HTTP/1.1.
    async fn connection<I>(
        self: Arc<Self>,
        io: TokioIo<I>,
        peer: SocketAddr,
        ticket: Arc<Ticket>,
        cancel: CancellationToken,
        h2: bool,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let proxy = self;
        let held = ticket.clone();
        let service = hyper::service::service_fn(move |req| proxy.handle(req, peer, &held));
        let served = if h2 {
            serve_http2(io, service, ticket, cancel).await
        } else {
            serve_http1(io, service, ticket, cancel).await
        };
        if let Err(e) = served {
            tracing::debug!(error = %e, %peer, "connection ended");
        }
    }

    /// Where a request goes. Forwarding an ordinary request to a running
    /// world, nearly every request, is one small future, not boxed;
    /// everything else (the API, standby pages,
    /// Tavern's forms, upgrades) is boxed, so that its larger state is not
    /// copied along with every request (docs/performance.md).
    fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        ticket: &Arc<Ticket>,
    ) -> impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + use<> {
        ticket.request_began();
        let refused = |why| -> BoxFuture<'static, Response<ProxyBody>> {
            Box::pin(std::future::ready(plain(StatusCode::BAD_REQUEST, why)))
        };
        let host = match request_host(&req) {
            Ok(host) => host,
            Err(why) => return Either::Right(refused(why)).map(Ok),
        };
        let target = {
            let table = self.routes.borrow();
            decide(
                host.as_ref().and_then(|h| h.to_str().ok()),
                req.uri().path(),
                &table,
                &self.settings.site,
            )
        };
        // Decided once: one of Tavern's own paths on a world's address (the
        // standby page's forms), and whether the request upgrades.
        let world = match &target {
            Target::Standby(r) => Some(&r.slug),
            Target::World { slug, .. } => Some(slug),
            _ => None,
        };
        let own = world.and_then(|slug| {
            let action = self.own_path(slug, req.uri().path())?;
            Some((slug.clone(), action.to_owned()))
        });
        let upgrade = is_upgrade(req.headers());
        let response = match target {
            Target::World { slug, upstream } if own.is_none() && !upgrade => {
                match self.outbound(req, peer, host) {
                    Ok(req) => Either::Left(self.forward(req, slug, upstream)),
                    Err(refused) => Either::Right(
                        Box::pin(std::future::ready(*refused)) as BoxFuture<'static, _>
                    ),
                }
            }
            target => Either::Right(Box::pin(self.clone().elsewhere(
                req,
                Elsewhere {
                    peer,
                    host,
                    target,
                    own,
                    upgrade,
                },
                ticket.clone(),
            )) as BoxFuture<'static, _>),
        };
        response.map(Ok)
    }

    /// Every request but an ordinary one to a running world, with what
    /// `handle` found out about it (`how`).
    async fn elsewhere(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        how: Elsewhere,
        ticket: Arc<Ticket>,
    ) -> Response<ProxyBody> {
        let Elsewhere {
            peer,
            host,
            target,
            own,
            upgrade,
        } = how;
        // The standby page's forms, on the world's own address.
        if let Some((slug, action)) = own {
            let prefix = self.prefix(&slug);
            return self.tavern_form(req, peer, &slug, &prefix, &action).await;
        }
        match target {
            Target::Api => {
                req.extensions_mut().insert(Peer(peer));
                call_api_service(&self.api, req.map(|b| Drained::new(b).boxed_unsync())).await
            }
            Target::NotFound => crate::standby::not_found(self.tavern.site_url()),
            Target::Standby(route) => {
                let prefix = self.prefix(&route.slug);
                self.standby(req, &route, &prefix).await
            }
            Target::World { slug, upstream } if upgrade => self
                .upgrade(req, peer, host, &slug, upstream, ticket)
                .await
                .unwrap_or_else(|(status, why)| failed(&slug, upstream, status, &why)),
            // `handle` forwards these itself; here for completeness only.
            Target::World { slug, upstream } => match self.outbound(req, peer, host) {
                Ok(req) => self.forward(req, slug, upstream).await,
                Err(refused) => *refused,
            },
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

    /// The fields the proxy sets on every request to a world (a client's
    /// own are dropped first, never trusted): X-Forwarded-For, -Proto and
    /// -Host, and Host itself when a request in absolute form came without
    /// one; with how many of the array's entries are in use.
    fn forwarded<'a>(
        &'a self,
        ip: &'a AddressText,
        host: Option<&'a HeaderValue>,
        has_host: bool,
    ) -> ([(HeaderName, &'a [u8]); 4], usize) {
        let host_bytes = host.map_or(&b""[..], HeaderValue::as_bytes);
        let fields = [
            (X_FORWARDED_FOR, ip.as_bytes()),
            (X_FORWARDED_PROTO, self.settings.scheme.as_str().as_bytes()),
            (X_FORWARDED_HOST, host_bytes),
            (header::HOST, host_bytes),
        ];
        let count = match host {
            None => 2,
            Some(_) if has_host => 3,
            Some(_) => 4,
        };
        (fields, count)
    }

    /// An upgrade request as the world's server gets it: origin-form URI,
    /// the proxy's [`Self::forwarded`] fields; Connection and Upgrade kept.
    fn upgrade_parts(
        &self,
        parts: &mut http::request::Parts,
        peer: SocketAddr,
        host: Option<HeaderValue>,
    ) -> Result<(), (StatusCode, String)> {
        // Origin-form, as a client sends it to a server.
        if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
            let path = parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
            parts.uri = Uri::from(path);
        }
        let h = &mut parts.headers;
        strip(h, forwarding, false);
        strip_tavern_credentials(h);
        let ip = address_text(peer.ip());
        let (fields, count) = self.forwarded(&ip, host.as_ref(), h.contains_key(header::HOST));
        for (name, value) in &fields[..count] {
            let value = HeaderValue::from_bytes(value)
                .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
            h.insert(name.clone(), value);
        }
        Ok(())
    }

    /// An ordinary request as it goes to a world: its body limited, its
    /// hop-by-hop and client-claimed forwarding fields dropped, the
    /// proxy's [`Self::forwarded`] fields written after its own; or the
    /// answer that refuses it (a declared body over the limit is refused
    /// before it arrives).
    fn outbound(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        host: Option<HeaderValue>,
    ) -> Result<Outgoing<Limited<Incoming>>, Box<Response<ProxyBody>>> {
        let limit = self.settings.body_limit;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit) {
            drop(Drained::new(req.into_body()));
            return Err(Box::new(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the upload is larger than {} MB", limit / 1_000_000),
            )));
        }
        let (mut parts, body) = req.into_parts();
        strip(&mut parts.headers, hop_by_hop_or_forwarding, true);
        strip_tavern_credentials(&mut parts.headers);
        let ip = address_text(peer.ip());
        let has_host = parts.headers.contains_key(header::HOST);
        let (fields, count) = self.forwarded(&ip, host.as_ref(), has_host);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let req = Request::from_parts(parts, Limited::new(body, limit));
        Ok(Outgoing::new(req, &fields[..count]))
    }

    /// Sends `req` to the world at `upstream` and answers with its response.
    fn forward(
        &self,
        req: Outgoing<Limited<Incoming>>,
        slug: Slug,
        upstream: SocketAddr,
    ) -> impl Future<Output = Response<ProxyBody>> + Send + use<> {
        let upstreams = Arc::clone(&self.upstreams);
        async move {
            match upstreams.send(upstream, req).await {
                Ok(resp) => {
                    let (mut parts, body) = resp.into_parts();
                    strip(&mut parts.headers, hop_by_hop, true);
                    Response::from_parts(parts, body.map_err(BoxError::from).boxed_unsync())
                }
                // The client's own body failed: too large, or malformed
                // (a bad chunk), never the world's fault.
                Err(UpstreamError::Body(cause)) => {
                    let too_large = std::iter::successors(
                        Some(cause.as_ref() as &(dyn std::error::Error + 'static)),
                        |e| e.source(),
                    )
                    .any(|e| e.is::<http_body_util::LengthLimitError>());
                    if too_large {
                        plain(StatusCode::PAYLOAD_TOO_LARGE, "the upload is too large")
                    } else {
                        tracing::debug!(%slug, error = %cause, "a client's request body failed");
                        plain(
                            StatusCode::BAD_REQUEST,
                            "the request's body could not be read",
                        )
                    }
                }
                Err(e) => failed(&slug, upstream, StatusCode::BAD_GATEWAY, &e.to_string()),
            }
        }
    }

    /// A WebSocket (or other) upgrade: a connection of its own to the
    /// world; once both sides switch protocols, bytes are copied both ways
    /// (see [`relay`]).
    async fn upgrade(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        host: Option<HeaderValue>,
        slug: &Slug,
        upstream: SocketAddr,
        ticket: Arc<Ticket>,
    ) -> Result<Response<ProxyBody>, (StatusCode, String)> {
        let bad_gateway = |e: &dyn std::fmt::Display| (StatusCode::BAD_GATEWAY, e.to_string());
        let client_side = hyper::upgrade::on(&mut req);
        let (mut parts, _body) = req.into_parts();
        self.upgrade_parts(&mut parts, peer, host)?;
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
            // A player's socket keeps its place while it lasts, and is
            // never given up for another connection.
            ticket.pin();
            tokio::spawn(async move {
                let _open = open;
                let _place = ticket;
                match tokio::try_join!(client_side, upstream_side) {
                    Ok((client, world)) => {
                        if let Err(e) = relay(client, world).await {
                            tracing::debug!(error = %e, "upgraded connection ended");
                        }
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

/// One side of an upgraded connection: the TCP stream itself when it is
/// one (so that bytes are copied without hyper's I/O layers in between),
/// else hyper's `Upgraded` (a TLS connection, say).
type Side = tokio_util::either::Either<TcpStream, TokioIo<Upgraded>>;

/// Unwraps one side, with the bytes hyper had read past the HTTP head
/// (a client's first frames sent with its request, a world's with its 101).
fn side(upgraded: Upgraded) -> (Side, Bytes) {
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => (Side::Left(parts.io.into_inner()), parts.read_buf),
        // Kept whole, with what it had read still to be read from it.
        Err(upgraded) => (Side::Right(TokioIo::new(upgraded)), Bytes::new()),
    }
}

/// Copies bytes both ways between the two sides of an upgrade, each
/// side's already-read bytes first. A side's end is passed on to the other
/// (its writing half shut); copying stops once both directions have ended,
/// or at the first error.
async fn relay(client: Upgraded, world: Upgraded) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let (mut client, from_client) = side(client);
    let (mut world, from_world) = side(world);
    world.write_all(&from_client).await?;
    client.write_all(&from_world).await?;
    tokio::io::copy_bidirectional(&mut client, &mut world).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut n: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        n.sort_unstable();
        n
    }

    #[test]
    fn hop_by_hop_and_claimed_forwarding_headers_are_dropped() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "secret"),
            ("te", "trailers"),
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
            ("accept", "*/*"),
            ("cookie", "a=b"),
        ]);
        strip(&mut h, hop_by_hop_or_forwarding, true);
        assert_eq!(names(&h), ["accept", "cookie"]);

        // Nothing to drop: nothing changes.
        let mut plain = headers(&[("accept", "*/*"), ("host", "w.example")]);
        strip(&mut plain, hop_by_hop_or_forwarding, true);
        assert_eq!(names(&plain), ["accept", "host"]);
    }

    #[test]
    fn tavern_credentials_never_reach_a_world() {
        let mut h = headers(&[
            (
                "cookie",
                "session=foundry1; tavern_session=tvn_secret; theme=dark",
            ),
            ("cookie", " tavern_pre=abc ;tavern_flash=x"),
            ("authorization", "Bearer tvn_secret"),
            ("accept", "*/*"),
        ]);
        strip_tavern_credentials(&mut h);
        let cookies: Vec<&str> = h
            .get_all(header::COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(cookies, ["session=foundry1; theme=dark"]);
        assert_eq!(names(&h), ["accept", "cookie"]);

        // A world's own credentials are left alone.
        let mut own = headers(&[
            ("cookie", "session=abc"),
            ("authorization", "Basic dXNlcjpwYXNz"),
        ]);
        strip_tavern_credentials(&mut own);
        assert_eq!(own.get(header::COOKIE).unwrap(), "session=abc");
        assert_eq!(
            own.get(header::AUTHORIZATION).unwrap(),
            "Basic dXNlcjpwYXNz"
        );
        // Only Tavern's cookie: no Cookie header is left.
        let mut only = headers(&[("cookie", "tavern_session=tvn_x")]);
        strip_tavern_credentials(&mut only);
        assert!(only.get(header::COOKIE).is_none());
    }

    fn host_of(target: &str, hosts: &[&str]) -> Result<Option<String>, &'static str> {
        let mut b = Request::builder().uri(target);
        for h in hosts {
            b = b.header(header::HOST, *h);
        }
        request_host(&b.body(()).unwrap()).map(|h| h.map(|v| v.to_str().unwrap().to_owned()))
    }

    #[test]
    fn a_request_names_one_host() {
        assert_eq!(host_of("/", &["a.example"]), Ok(Some("a.example".into())));
        assert_eq!(host_of("/", &[]), Ok(None));
        assert!(host_of("/", &["a.example", "b.example"]).is_err());
        assert!(host_of("/", &["a.example", "a.example"]).is_err());
        assert_eq!(
            host_of("http://a.example/x", &[]),
            Ok(Some("a.example".into()))
        );
        assert_eq!(
            host_of("http://a.example:8080/x", &["A.Example:8080"]),
            Ok(Some("A.Example:8080".into()))
        );
        assert!(host_of("http://a.example/x", &["b.example"]).is_err());
        assert!(host_of("http://a.example:8080/x", &["a.example"]).is_err());
    }

    proptest::proptest! {
        /// Whatever hosts a request names, the proxy routes by one only
        /// when they all agree; absolute form decides when given.
        #[test]
        fn one_host_or_a_refusal(
            authority in proptest::option::of("[a-c]\\.example(:80)?"),
            hosts in proptest::collection::vec("[a-c]\\.example(:80)?", 0..3),
        ) {
            let target = authority
                .as_ref()
                .map_or_else(|| "/".to_owned(), |a| format!("http://{a}/"));
            let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
            let got = host_of(&target, &refs);
            match (&authority, hosts.as_slice()) {
                (_, [_, _, ..]) => proptest::prop_assert!(got.is_err()),
                (Some(a), [h]) if !a.eq_ignore_ascii_case(h) => proptest::prop_assert!(got.is_err()),
                (Some(a), _) => proptest::prop_assert_eq!(
                    got.map(|h| h.map(|h| h.to_ascii_lowercase())),
                    Ok(Some(a.to_ascii_lowercase()))
                ),
                (None, [h]) => proptest::prop_assert_eq!(got, Ok(Some(h.clone()))),
                (None, []) => proptest::prop_assert_eq!(got, Ok(None)),
            }
        }

        /// Whatever a Cookie header holds, what is left has none of
        /// Tavern's cookies and every other pair, in order.
        #[test]
        fn cookies_keep_exactly_the_worlds_own(
            pairs in proptest::collection::vec(
                ("(tavern_[a-z]{0,8}|[a-z]{1,8})", "[ -:<-~]{0,12}", "[ ]{0,2}"),
                0..8,
            )
        ) {
            let value: String = pairs
                .iter()
                .map(|(n, v, pad)| format!("{pad}{n}={v}"))
                .collect::<Vec<_>>()
                .join(";");
            let left = without_tavern_cookies(value.as_bytes())
                .map(|v| String::from_utf8(v).unwrap())
                .unwrap_or_default();
            let expected: Vec<String> = pairs
                .iter()
                .filter(|(n, _, _)| !n.starts_with(TAVERN_COOKIE_PREFIX))
                .map(|(n, v, _)| format!("{n}={v}").trim_ascii().to_owned())
                .filter(|p| !p.is_empty())
                .collect();
            let got: Vec<&str> = left.split("; ").filter(|p| !p.is_empty()).collect();
            proptest::prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn addresses_are_written_as_core_writes_them() {
        for ip in [
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "10.1.20.255",
            "::1",
            "2001:db8::8a2e:370:7334",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(address_text(ip).as_bytes(), ip.to_string().as_bytes());
        }
    }

    #[test]
    fn an_upgrade_keeps_connection_and_upgrade() {
        let mut h = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("x-forwarded-host", "evil.example"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        strip(&mut h, forwarding, false);
        assert_eq!(names(&h), ["connection", "sec-websocket-key", "upgrade"]);
        assert!(is_upgrade(&h));
    }

    /// A world that answers an upgrade with its 101 and its first bytes in
    /// one write, then echoes whatever it reads.
    async fn upgrading_world() -> SocketAddr {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let (mut head, mut buf) = (Vec::new(), [0u8; 1024]);
            while !head.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "the upgrade request ended early");
                head.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: test\r\n\r\nfrom the world;")
                .await
                .unwrap();
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
        });
        addr
    }

    /// Serves `server_end` as the proxy's client side would be, relaying an
    /// upgrade to `upgrading_world`; from `client_end`, sends the upgrade
    /// request with the first bytes of the new protocol in the same write,
    /// and checks that everything arrives, in order, both ways.
    async fn relays_both_ways<C, S>(mut client_end: C, server_end: S)
    where
        C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let world = upgrading_world().await;
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| async move {
            let client_side = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let stream = TcpStream::connect(world).await.unwrap();
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(conn.with_upgrades());
                let req = Request::builder()
                    .uri("/")
                    .header(header::HOST, "world")
                    .header(header::CONNECTION, "upgrade")
                    .header(header::UPGRADE, "test")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let mut resp = sender.send_request(req).await.unwrap();
                assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
                let world_side = hyper::upgrade::on(&mut resp).await.unwrap();
                relay(client_side.await.unwrap(), world_side).await.unwrap();
            });
            Ok::<_, Infallible>(
                Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header(header::CONNECTION, "upgrade")
                    .header(header::UPGRADE, "test")
                    .body(Empty::<Bytes>::new())
                    .unwrap(),
            )
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server_end), service)
                .with_upgrades(),
        );

        async fn read_until<C: tokio::io::AsyncRead + Unpin>(
            c: &mut C,
            got: &mut Vec<u8>,
            end: &[u8],
        ) {
            let mut buf = [0u8; 1024];
            while !got.ends_with(end) {
                let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
                    .await
                    .expect("the relay went quiet")
                    .unwrap();
                assert!(
                    n > 0,
                    "the relay closed early: {}",
                    String::from_utf8_lossy(got)
                );
                got.extend_from_slice(&buf[..n]);
            }
        }
        client_end
            .write_all(b"GET / HTTP/1.1\r\nhost: alpha.localhost\r\nconnection: upgrade\r\nupgrade: test\r\n\r\nearly;")
            .await
            .unwrap();
        let mut got = Vec::new();
        read_until(&mut client_end, &mut got, b"early;").await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 101"), "{text}");
        let after_head = &text[text.find("\r\n\r\n").unwrap() + 4..];
        // The world's first bytes, then its echo of the client's.
        assert_eq!(after_head, "from the world;early;");
        client_end.write_all(b"later;").await.unwrap();
        let mut got = Vec::new();
        read_until(&mut client_end, &mut got, b"later;").await;
        assert_eq!(got, b"later;");
    }

    #[tokio::test]
    async fn an_upgraded_tcp_connection_is_relayed_with_the_bytes_read_past_each_head() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client_end = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server_end, _) = listener.accept().await.unwrap();
        relays_both_ways(client_end, server_end).await;
    }

    #[tokio::test]
    async fn an_upgraded_connection_of_another_kind_is_relayed_the_same() {
        // Not a TcpStream (as a TLS connection is not): hyper's Upgraded is
        // kept, with the bytes it had read past the head still in it.
        let (client_end, server_end) = tokio::io::duplex(4096);
        relays_both_ways(client_end, server_end).await;
    }
}
