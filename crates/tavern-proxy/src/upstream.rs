//! Keep-alive connections to the worlds' servers: idle HTTP/1.1
//! connections kept per address and reused, a new one opened when none is
//! free, a request that a closing connection never sent retried once on a
//! fresh one. A connection goes back to the pool when its response body
//! has been read to the end.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::TrySendError;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// What request bodies must be to go upstream.
pub(crate) trait RequestBody:
    Body<Data = Bytes, Error: Into<crate::BoxError>> + Send + 'static
{
}
impl<B: Body<Data = Bytes, Error: Into<crate::BoxError>> + Send + 'static> RequestBody for B {}

/// Idle connections kept per world, beyond which they are closed.
const MAX_IDLE_PER_WORLD: usize = 64;

pub(crate) struct Upstreams<B> {
    /// By the worlds' addresses, which only Tavern chooses (so foldhash,
    /// not the slower DoS-resistant default).
    idle: Mutex<HashMap<SocketAddr, Vec<SendRequest<B>>, foldhash::fast::RandomState>>,
}

impl<B> Default for Upstreams<B> {
    fn default() -> Self {
        Self {
            idle: Mutex::default(),
        }
    }
}

/// Why a request did not get a response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("cannot connect to the world's server at {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the world's server at {addr} did not answer in time")]
    ConnectTimeout { addr: SocketAddr },
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

impl<B: RequestBody> Upstreams<B> {
    fn take_idle(&self, addr: SocketAddr) -> Option<SendRequest<B>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.get_mut(&addr)?.pop()
    }

    fn put_idle(&self, addr: SocketAddr, sender: SendRequest<B>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(addr).or_default();
        list.retain(|s| !s.is_closed());
        if list.len() < MAX_IDLE_PER_WORLD {
            list.push(sender);
        }
    }

    async fn connect(addr: SocketAddr) -> Result<SendRequest<B>, UpstreamError> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout { addr })?
            .map_err(|source| UpstreamError::Connect { addr, source })?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %addr, "upstream connection ended");
            }
        });
        Ok(sender)
    }

    /// An idle connection that is still open and ready, else a new one;
    /// `true` when it was reused.
    async fn checkout(&self, addr: SocketAddr) -> Result<(SendRequest<B>, bool), UpstreamError> {
        while let Some(mut sender) = self.take_idle(addr) {
            if sender.ready().await.is_ok() {
                return Ok((sender, true));
            }
        }
        // Boxed: connecting is rare and its state large.
        let connecting = Box::pin(Self::connect(addr));
        Ok((connecting.await?, false))
    }

    /// Sends `req` to the world at `addr`; the response body hands its
    /// connection back when read to the end.
    pub(crate) async fn send(
        self: &Arc<Self>,
        addr: SocketAddr,
        req: Request<B>,
    ) -> Result<Response<Recycle<B>>, UpstreamError> {
        let (mut sender, reused) = self.checkout(addr).await?;
        let resp = match sender.try_send_request(req).await {
            Ok(resp) => resp,
            Err(unsent) => {
                let (fresh, resp) = Self::resend(addr, reused, unsent)?.await?;
                sender = fresh;
                resp
            }
        };
        Ok(resp.map(|body| Recycle {
            body,
            back: Some((Arc::clone(self), addr, sender)),
        }))
    }

    /// A request that a kept connection, closing as the request left,
    /// never sent: it goes once more on a new connection; any other
    /// failure is the error. (Rare, so boxed: its state stays out of every
    /// request's future.)
    fn resend(
        addr: SocketAddr,
        reused: bool,
        mut unsent: TrySendError<Request<B>>,
    ) -> Result<Resent<B>, UpstreamError> {
        match unsent.take_message() {
            Some(req) if reused => Ok(Box::pin(async move {
                let mut sender = Self::connect(addr).await?;
                let resp = sender.send_request(req).await?;
                Ok((sender, resp))
            })),
            _ => Err(unsent.into_error().into()),
        }
    }
}

/// A request sent again on a new connection, and its response.
type Resent<B> = BoxFuture<'static, Result<(SendRequest<B>, Response<Incoming>), UpstreamError>>;

/// A response body from a world; once read to the end, its connection is
/// idle again and goes back to the pool. Dropped earlier, the connection
/// is closed (its state is unknown).
pub(crate) struct Recycle<B: RequestBody> {
    body: Incoming,
    back: Option<(Arc<Upstreams<B>>, SocketAddr, SendRequest<B>)>,
}

impl<B: RequestBody> Recycle<B> {
    fn give_back(&mut self) {
        if let Some((pool, addr, sender)) = self.back.take() {
            pool.put_idle(addr, sender);
        }
    }
}

impl<B: RequestBody> Body for Recycle<B> {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.give_back(),
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B: RequestBody> Drop for Recycle<B> {
    fn drop(&mut self) {
        // An empty body may never be polled.
        if self.body.is_end_stream() {
            self.give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{BodyExt as _, Empty, Full};
    use tokio::net::TcpListener;

    use super::*;

    /// A loopback server answering every request with its path; it counts
    /// the connections it accepts and, unless `keep_alive`, closes each
    /// after one response. Stops when the test's runtime ends.
    async fn server(keep_alive: bool) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let path = req.uri().path().to_owned();
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(path))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(keep_alive)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, accepted)
    }

    async fn get(pool: &Arc<Upstreams<Empty<Bytes>>>, addr: SocketAddr, path: &str) -> String {
        let req = Request::get(path).body(Empty::new()).unwrap();
        let resp = pool.send(addr, req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn one_kept_connection_serves_request_after_request() {
        let (addr, accepted) = server(true).await;
        let pool = Arc::new(Upstreams::default());
        for i in 0..20 {
            assert_eq!(get(&pool, addr, &format!("/r{i}")).await, format!("/r{i}"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        // Two at once need two connections; both are kept afterwards.
        let (a, b) = tokio::join!(get(&pool, addr, "/a"), get(&pool, addr, "/b"));
        assert_eq!((a.as_str(), b.as_str()), ("/a", "/b"));
        let before = accepted.load(Ordering::SeqCst);
        assert!(before <= 2, "{before}");
        let (a, b) = tokio::join!(get(&pool, addr, "/a"), get(&pool, addr, "/b"));
        assert_eq!((a.as_str(), b.as_str()), ("/a", "/b"));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_server_that_closes_its_connections_still_answers_every_request() {
        let (addr, accepted) = server(false).await;
        let pool = Arc::new(Upstreams::default());
        for i in 0..20 {
            assert_eq!(get(&pool, addr, &format!("/c{i}")).await, format!("/c{i}"));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 20);
    }

    #[tokio::test]
    async fn a_body_left_unread_closes_its_connection() {
        let (addr, accepted) = server(true).await;
        let pool = Arc::new(Upstreams::default());
        let req = Request::get("/left").body(Empty::new()).unwrap();
        let resp = pool.send(addr, req).await.unwrap();
        drop(resp);
        assert_eq!(get(&pool, addr, "/next").await, "/next");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn nobody_listening_is_a_clear_error() {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let pool: Arc<Upstreams<Empty<Bytes>>> = Arc::new(Upstreams::default());
        let req = Request::get("/").body(Empty::new()).unwrap();
        let Err(err) = pool.send(addr, req).await else {
            panic!("a response from nobody");
        };
        assert!(err.to_string().contains("cannot connect"), "{err}");
    }
}
