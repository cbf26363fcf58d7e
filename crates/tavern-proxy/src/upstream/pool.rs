//! The idle connections kept per world, and sending a request: on a kept
//! connection when there is one, once more on a fresh one when a kept one
//! was closed as the request left and repeating it is harmless.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::Response;

use super::body::{State, UpstreamBody};
use super::conn::Conn;
use super::head::{Framing, Outgoing};
use super::{RequestBody, UpstreamError};

/// Idle connections kept per world, beyond which they are closed.
const MAX_IDLE_PER_WORLD: usize = 64;
/// How often idle connections are checked for having been closed.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

pub(crate) struct Upstreams {
    /// By the worlds' addresses, which only Tavern chooses (so foldhash,
    /// not the slower DoS-resistant default).
    idle: Mutex<HashMap<SocketAddr, Vec<Conn>, foldhash::fast::RandomState>>,
}

impl Upstreams {
    /// A pool whose idle connections are checked every [`SWEEP_EVERY`]
    /// (those a world closed, or every one of a world that stopped, are
    /// let go) for as long as the pool lives.
    pub(crate) fn new() -> Arc<Self> {
        let pool = Arc::new(Self {
            idle: Mutex::default(),
        });
        let weak = Arc::downgrade(&pool);
        tokio::spawn(sweep(weak));
        pool
    }

    fn take_idle(&self, addr: SocketAddr) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(&addr)?;
        while let Some(conn) = list.pop() {
            if conn.looks_open() {
                return Some(conn);
            }
        }
        None
    }

    pub(super) fn put_idle(&self, addr: SocketAddr, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(addr).or_default();
        if list.len() < MAX_IDLE_PER_WORLD {
            list.push(conn);
        }
    }

    /// Sends a request to the world at `addr`. The response's body is read
    /// from the connection as it is polled, and hands the connection back
    /// when read to the end.
    pub(crate) async fn send<B: RequestBody>(
        self: &Arc<Self>,
        addr: SocketAddr,
        out: Outgoing<B>,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let Outgoing {
            head,
            body,
            chunked,
            asks_head,
            repeatable,
        } = out;
        let (mut conn, reused) = match self.take_idle(addr) {
            Some(conn) => (conn, true),
            None => (Conn::open(addr).await?, false),
        };
        let mut sent = conn.send(&head, body, chunked).await;
        // A kept connection the world closed as this request left: nothing
        // came back and nothing but the head went out, so when repeating
        // the request is harmless, it goes once more on a new connection.
        if reused
            && repeatable
            && conn.buf.is_empty()
            && matches!(&sent, Err(e) if e.nothing_received())
        {
            conn = Conn::open(addr).await?;
            sent = conn.send(&head, http_body_util::Empty::new(), false).await;
        }
        let (head, framing) = sent?;
        let framing = if asks_head { Framing::Empty } else { framing };
        let mut body = UpstreamBody {
            conn: Some(conn),
            state: framing.into(),
            keep_alive: head.keep_alive && framing != Framing::UntilClose,
            pool: Arc::downgrade(self),
            addr,
        };
        if body.state == State::Done {
            body.finish();
        }
        let mut resp = Response::new(body);
        *resp.status_mut() = head.status;
        *resp.version_mut() = head.version;
        *resp.headers_mut() = head.headers;
        Ok(resp)
    }
}

/// Lets go of idle connections their world has closed, until the pool is
/// gone.
async fn sweep(pool: Weak<Upstreams>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(pool) = pool.upgrade() else { return };
        pool.let_go_of_closed();
    }
}

impl Upstreams {
    /// Closes the idle connections whose world has closed them (or sent
    /// something unasked), and forgets worlds left with none.
    pub(super) fn let_go_of_closed(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|_, list| {
            list.retain(Conn::looks_open);
            !list.is_empty()
        });
    }

    /// How many idle connections are kept.
    #[cfg(test)]
    pub(super) fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.values().map(Vec::len).sum()
    }

    /// Whether idle connections to `addr` are kept.
    #[cfg(test)]
    pub(super) fn keeps(&self, addr: SocketAddr) -> bool {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.contains_key(&addr)
    }
}
