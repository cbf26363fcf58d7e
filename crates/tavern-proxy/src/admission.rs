//! Who gets a connection on the public listener, decided right after
//! accept, before a byte is read: at most `max_connections` at once, and at
//! most `max_per_client` from one client (an IPv4 address, an IPv6 /64).
//! When either is full, the newcomer takes the place of a connection whose
//! last request began longest ago (of that client; or the stalest of a few
//! sampled among all), which is shut down: at once when it never sent a
//! request (a silent or slow client), else gracefully (an idle kept-alive
//! connection closes at once, a busy one after its response). So idle and
//! slow clients cannot starve the API or the worlds; only when the places
//! being given up run out too is a newcomer refused. WebSockets are never
//! given up: their players are playing. An admitted connection is served
//! here too, within these limits: HTTP/1.1, or HTTP/2 where its TLS
//! handshake chose it (the ALPN the listener offers is here).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// How many connections the listener keeps, and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_per_client: usize,
    /// How long a connection may go without a complete request head: its
    /// first, and each next one on a kept-alive connection (the idle
    /// timeout too).
    pub header_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_per_client: 256,
            header_timeout: Duration::from_secs(30),
        }
    }
}

/// How many connections are sampled to find one to give up.
const SAMPLE: usize = 16;
/// `last_request` of a connection that is never given up (upgraded).
const PINNED: u64 = u64::MAX;

/// One open connection, as admission sees it.
#[derive(Debug)]
pub(crate) struct Entry {
    client: IpAddr,
    /// Milliseconds since the admission's epoch at which its last request
    /// began (or it was accepted); [`PINNED`] once upgraded.
    last_request: AtomicU64,
    /// It has sent a request.
    served: AtomicBool,
    /// It was asked to give its place up.
    shedding: AtomicBool,
    shed: Notify,
}

struct Inner {
    slots: Vec<Option<Arc<Entry>>>,
    free: Vec<usize>,
    open: usize,
    by_client: HashMap<IpAddr, Vec<usize>>,
    /// xorshift state for sampling.
    rng: u64,
}

pub(crate) struct Admission {
    limits: ConnectionLimits,
    epoch: Instant,
    inner: Mutex<Inner>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Its client has as many connections as it may, none to give up.
    Client,
    /// The listener is full, none to give up.
    Full,
}

/// A connection's place; given back when the last clone is dropped.
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    slot: usize,
    entry: Arc<Entry>,
}

impl Admission {
    pub(crate) fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            epoch: Instant::now(),
            inner: Mutex::new(Inner {
                slots: Vec::new(),
                free: Vec::new(),
                open: 0,
                by_client: HashMap::new(),
                rng: 0x9E37_79B9_7F4A_7C15,
            }),
        })
    }

    pub(crate) fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(PINNED - 1)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many connections are open now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.lock().open
    }

    /// A place for a connection from `peer`, making room as the module
    /// says, or why there is none.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Ticket, Refused> {
        let client = tavern_types::client_key(peer);
        let mut inner = self.lock();
        let mine = inner.by_client.get(&client).map_or(0, Vec::len);
        if mine >= self.limits.max_per_client {
            // Its own stalest connection makes room, if one is left to
            // give up (those going already still count).
            let slack = slack(self.limits.max_per_client);
            let victim = inner
                .by_client
                .get(&client)
                .and_then(|slots| stalest(slots.iter().filter_map(|s| inner.slots[*s].as_ref())));
            match victim {
                Some(v) if mine < self.limits.max_per_client + slack => shed(&v),
                _ => return Err(Refused::Client),
            }
        }
        if inner.open >= self.limits.max_connections {
            let slack = slack(self.limits.max_connections);
            match inner.sample_stalest() {
                Some(v) if inner.open < self.limits.max_connections + slack => shed(&v),
                _ => return Err(Refused::Full),
            }
        }
        let entry = Arc::new(Entry {
            client,
            last_request: AtomicU64::new(self.now_ms()),
            served: AtomicBool::new(false),
            shedding: AtomicBool::new(false),
            shed: Notify::new(),
        });
        let slot = match inner.free.pop() {
            Some(s) => {
                inner.slots[s] = Some(entry.clone());
                s
            }
            None => {
                inner.slots.push(Some(entry.clone()));
                inner.slots.len() - 1
            }
        };
        inner.open += 1;
        inner.by_client.entry(client).or_default().push(slot);
        drop(inner);
        Ok(Ticket {
            admission: self.clone(),
            slot,
            entry,
        })
    }

    /// Asks the stalest of a few connections to give its place up (out
    /// of file descriptors, say); answers whether one was found.
    pub(crate) fn shed_one(&self) -> bool {
        let victim = self.lock().sample_stalest();
        victim.map(|v| shed(&v)).is_some()
    }
}

/// How many places beyond a limit may be held by connections that are
/// giving theirs up.
fn slack(limit: usize) -> usize {
    (limit / 8).max(8)
}

fn shed(entry: &Arc<Entry>) {
    entry.shedding.store(true, Ordering::Relaxed);
    entry.shed.notify_one();
}

/// The connection whose last request began longest ago, among those that
/// may be given up (not upgraded, not going already).
fn stalest<'a>(entries: impl Iterator<Item = &'a Arc<Entry>>) -> Option<Arc<Entry>> {
    entries
        .filter(|e| !e.shedding.load(Ordering::Relaxed))
        .map(|e| (e.last_request.load(Ordering::Relaxed), e))
        .filter(|(at, _)| *at != PINNED)
        .min_by_key(|(at, _)| *at)
        .map(|(_, e)| e.clone())
}

impl Inner {
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// The stalest of up to [`SAMPLE`] connections picked at random.
    fn sample_stalest(&mut self) -> Option<Arc<Entry>> {
        let len = self.slots.len();
        if len == 0 {
            return None;
        }
        let mut picked: Vec<Arc<Entry>> = Vec::with_capacity(SAMPLE);
        for _ in 0..SAMPLE * 4 {
            let i = usize::try_from(self.next_random() % len as u64).unwrap_or(0);
            if let Some(e) = &self.slots[i] {
                picked.push(e.clone());
                if picked.len() == SAMPLE {
                    break;
                }
            }
        }
        stalest(picked.iter())
    }
}

impl Ticket {
    /// A request began on this connection.
    pub(crate) fn request_began(&self) {
        let entry = &self.entry;
        if entry.last_request.load(Ordering::Relaxed) != PINNED {
            entry
                .last_request
                .store(self.admission.now_ms(), Ordering::Relaxed);
        }
        if !entry.served.load(Ordering::Relaxed) {
            entry.served.store(true, Ordering::Relaxed);
        }
    }

    /// How long since its last request began (or it was accepted); zero
    /// once upgraded.
    pub(crate) fn idle_for(&self) -> Duration {
        match self.entry.last_request.load(Ordering::Relaxed) {
            PINNED => Duration::ZERO,
            last => Duration::from_millis(self.admission.now_ms().saturating_sub(last)),
        }
    }

    /// Upgraded (a WebSocket): never given up.
    pub(crate) fn pin(&self) {
        self.entry.last_request.store(PINNED, Ordering::Relaxed);
    }

    /// Resolves once the connection is asked to give its place up;
    /// answers whether it ever sent a request (if not, nothing is lost by
    /// closing it at once).
    pub(crate) async fn shed(&self) -> bool {
        self.entry.shed.notified().await;
        self.entry.served.load(Ordering::Relaxed)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.admission.lock();
        inner.slots[self.slot] = None;
        inner.free.push(self.slot);
        inner.open -= 1;
        let client = self.entry.client;
        if let Some(slots) = inner.by_client.get_mut(&client) {
            if let Some(at) = slots.iter().position(|s| *s == self.slot) {
                slots.swap_remove(at);
            }
            if slots.is_empty() {
                inner.by_client.remove(&client);
            }
        }
    }
}

/// What a refused plain-HTTP client reads before its connection closes.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 38\r\nConnection: close\r\n\r\nToo many connections; try again soon.\n";

/// Accepts connections from `listener` until `cancel`, and runs each one
/// admitted with `serve` on a task of `tracker`; a refused one is told so
/// (with `plain`, as HTTP; a TLS client cannot read that) and closed at
/// once. Accept errors (out of file descriptors, say) back off, up to a
/// second, make room, and are logged at most once a second.
pub(crate) async fn accept_loop<F, Fut>(
    listener: &tokio::net::TcpListener,
    admission: &Arc<Admission>,
    plain: bool,
    cancel: &tokio_util::sync::CancellationToken,
    tracker: &tokio_util::task::TaskTracker,
    serve: F,
) where
    F: Fn(tokio::net::TcpStream, std::net::SocketAddr, Arc<Ticket>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut failures: u32 = 0;
    let mut unlogged: u64 = 0;
    let mut logged_at: Option<Instant> = None;
    let mut refused: u64 = 0;
    let mut refusal_logged_at: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => {
                    failures = 0;
                    a
                }
                Err(e) => {
                    unlogged += 1;
                    if logged_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!(error = %e, times = unlogged, "accept failed");
                        unlogged = 0;
                        logged_at = Some(Instant::now());
                    }
                    // Out of descriptors: one connection makes room.
                    admission.shed_one();
                    let wait = Duration::from_millis(10)
                        .saturating_mul(2u32.saturating_pow(failures.min(7)))
                        .min(Duration::from_secs(1));
                    failures = failures.saturating_add(1);
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(wait) => continue,
                    }
                }
            },
        };
        match admission.admit(peer.ip()) {
            Ok(ticket) => {
                let _ = stream.set_nodelay(true);
                tracker.spawn(serve(stream, peer, Arc::new(ticket)));
            }
            Err(why) => {
                refused += 1;
                if refusal_logged_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(%peer, ?why, times = refused, "connection refused by the connection limits");
                    refused = 0;
                    refusal_logged_at = Some(Instant::now());
                }
                if plain {
                    let _ = stream.try_write(REFUSAL);
                }
            }
        }
    }
}

/// Waits until a new plain connection's client sends something (within
/// the header timeout), so that a silent one holds a socket and no HTTP
/// connection's buffers; false when it stayed silent, or was given up or
/// shut down first.
pub(crate) async fn first_bytes(
    stream: &tokio::net::TcpStream,
    ticket: &Ticket,
    cancel: &tokio_util::sync::CancellationToken,
) -> bool {
    let timeout = ticket.admission.limits().header_timeout;
    tokio::select! {
        r = tokio::time::timeout(timeout, stream.readable()) => matches!(r, Ok(Ok(()))),
        _ = ticket.shed() => false,
        () = cancel.cancelled() => false,
    }
}

/// Serves one HTTP/1.1 connection with `service` (upgrades allowed) until
/// it ends: within the header timeout for each request head, given up
/// when admission asks (at once if it never sent a request, else after
/// its response), and shut down gracefully at `cancel`.
pub(crate) async fn serve_http1<I, S, B>(
    io: I,
    service: S,
    ticket: Arc<Ticket>,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(ticket.admission.limits().header_timeout)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        served = ticket.shed() => {
            if served {
                conn.as_mut().graceful_shutdown();
                conn.await
            } else {
                Ok(())
            }
        }
        () = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

/// HTTP/2's name in a TLS handshake (ALPN).
pub(crate) const H2_ALPN: &[u8] = b"h2";

/// The protocols the public listener offers clients over TLS, best first:
/// HTTP/2, then HTTP/1.1 (for WebSockets, and older clients).
pub(crate) fn http_alpn() -> Vec<Vec<u8>> {
    vec![H2_ALPN.to_vec(), b"http/1.1".to_vec()]
}

/// HTTP/2's limits on one connection: streams open at once (nginx's
/// default), the largest header list a request may have, and how many
/// streams a client may open and reset before they are answered (the
/// "rapid reset" attack) or make the server reset before the connection is
/// closed.
const H2_STREAMS: u32 = 128;
const H2_HEADER_LIST: u32 = 64 * 1024;
const H2_PENDING_RESETS: usize = 20;
const H2_ERROR_RESETS: usize = 256;
/// How often an HTTP/2 connection is pinged, and how long the answer may
/// take before the peer is given up as gone.
const H2_PING: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves one HTTP/2 connection with `service` until it ends, within
/// [`H2_STREAMS`] and the other limits above; closed gracefully (its open
/// streams finish) once no request began for the header timeout (the idle
/// timeout, as for HTTP/1.1), when admission asks, and at `cancel`.
pub(crate) async fn serve_http2<I, S, B>(
    io: I,
    service: S,
    ticket: Arc<Ticket>,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let idle = ticket.admission.limits().header_timeout;
    let mut builder =
        hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(H2_STREAMS)
        .max_header_list_size(H2_HEADER_LIST)
        .max_pending_accept_reset_streams(H2_PENDING_RESETS)
        .max_local_error_reset_streams(H2_ERROR_RESETS)
        .keep_alive_interval(H2_PING)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    loop {
        let quiet = idle.saturating_sub(ticket.idle_for());
        tokio::select! {
            r = conn.as_mut() => return r,
            served = ticket.shed() => {
                if !served {
                    return Ok(());
                }
                break;
            }
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(quiet.max(Duration::from_millis(100))) => {
                if ticket.idle_for() >= idle {
                    break;
                }
            }
        }
    }
    conn.as_mut().graceful_shutdown();
    conn.await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn admission(max: usize, per_client: usize) -> Arc<Admission> {
        Admission::new(ConnectionLimits {
            max_connections: max,
            max_per_client: per_client,
            header_timeout: Duration::from_secs(30),
        })
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 1, n])
    }

    #[test]
    fn a_client_over_its_limit_gives_up_its_own_stalest_place() {
        let a = admission(1000, 2);
        let first = a.admit(ip(1)).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let second = a.admit(ip(1)).unwrap();
        second.request_began();
        // A third: the first (stalest) is asked to go.
        let third = a.admit(ip(1)).unwrap();
        assert!(first.entry.shedding.load(Ordering::Relaxed));
        assert!(!second.entry.shedding.load(Ordering::Relaxed));
        // Another client is not touched.
        let other = a.admit(ip(2)).unwrap();
        assert!(!other.entry.shedding.load(Ordering::Relaxed));
        assert_eq!(a.open(), 4);
        drop((first, second, third, other));
        assert_eq!(a.open(), 0);
        assert!(a.lock().by_client.is_empty());
    }

    #[test]
    fn places_being_given_up_are_bounded_then_newcomers_are_refused() {
        let a = admission(1000, 4);
        let mut held = Vec::new();
        let mut refused = 0;
        for _ in 0..100 {
            match a.admit(ip(1)) {
                Ok(t) => held.push(t),
                Err(r) => {
                    assert_eq!(r, Refused::Client);
                    refused += 1;
                }
            }
        }
        // 4 places and 8 more going away, the rest refused.
        assert_eq!(held.len(), 4 + slack(4));
        assert_eq!(refused, 100 - held.len());
    }

    #[test]
    fn upgraded_connections_are_never_given_up() {
        let a = admission(1000, 2);
        let ws = a.admit(ip(1)).unwrap();
        ws.pin();
        let ws2 = a.admit(ip(1)).unwrap();
        ws2.pin();
        assert_eq!(a.admit(ip(1)).err(), Some(Refused::Client));
        assert!(!ws.entry.shedding.load(Ordering::Relaxed));
    }

    #[test]
    fn a_full_listener_makes_room_from_a_sample() {
        let a = admission(50, 50);
        let held: Vec<Ticket> = (0..50).map(|n| a.admit(ip(n)).unwrap()).collect();
        for t in &held[10..] {
            t.request_began();
        }
        let newcomer = a.admit(ip(200)).unwrap();
        let shed: Vec<&Ticket> = held
            .iter()
            .filter(|t| t.entry.shedding.load(Ordering::Relaxed))
            .collect();
        assert_eq!(shed.len(), 1);
        assert!(!newcomer.entry.shedding.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_connection_hears_it_must_go() {
        let a = admission(10, 1);
        let first = a.admit(ip(1)).unwrap();
        let _second = a.admit(ip(1)).unwrap();
        let served = tokio::time::timeout(Duration::from_secs(1), first.shed())
            .await
            .expect("told to go");
        assert!(!served, "it never sent a request");
    }

    proptest! {
        /// Whatever clients come and go, the counts match the tickets held,
        /// no client holds more than its limit and slack, and the whole
        /// listener no more than its own.
        #[test]
        fn counts_hold(ops in proptest::collection::vec((0u8..6, proptest::bool::ANY), 1..300)) {
            let a = admission(20, 5);
            let mut held: Vec<Ticket> = Vec::new();
            for (client, open) in ops {
                if open {
                    if let Ok(t) = a.admit(ip(client)) {
                        held.push(t);
                    }
                } else if let Some(at) = held.iter().position(|t| t.entry.client == ip(client)) {
                    held.swap_remove(at);
                }
                prop_assert_eq!(a.open(), held.len());
                prop_assert!(held.len() <= 20 + slack(20));
                for c in 0..6 {
                    let n = held.iter().filter(|t| t.entry.client == ip(c)).count();
                    prop_assert!(n <= 5 + slack(5));
                }
            }
        }
    }
}
