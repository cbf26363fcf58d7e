//! Requests to the worlds' servers over kept HTTP/1.1 connections: the
//! request's head written and its body streamed, the response's head parsed
//! (httparse) and its body read, all within the task of the client's
//! request, with no task or channel in between (docs/performance.md). Idle
//! connections are kept per world address and reused; a request that a
//! kept connection, closing as it left, never answered is sent once more on
//! a fresh one when that is safe.
//!
//! `pool` keeps the idle connections and sends a request; `conn` is one
//! connection (writing a request, reading a head); `head` writes request
//! heads and parses response heads; `body` reads a response's body.

mod body;
mod conn;
mod head;
mod pool;

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use hyper::body::Body;

use crate::body::BoxError;

pub(crate) use head::Outgoing;
pub(crate) use pool::Upstreams;

/// What request bodies must be to go upstream.
pub(crate) trait RequestBody:
    Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}
impl<B: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static> RequestBody for B {}

/// Why a request did not get a (whole) response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    #[error("cannot connect to the world's server at {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("the world's server at {addr} did not answer in time")]
    ConnectTimeout { addr: SocketAddr },
    #[error("the connection to the world's server failed: {0}")]
    Io(#[from] io::Error),
    #[error("the world's server closed the connection before its response was complete")]
    Closed,
    #[error("the world's server sent an invalid response: {0}")]
    Invalid(&'static str),
    #[error("the request's body could not be read")]
    Body(#[source] BoxError),
}

impl UpstreamError {
    /// The connection ended (before a byte of the response came back, when
    /// nothing is left in its buffer).
    fn nothing_received(&self) -> bool {
        match self {
            Self::Closed => true,
            Self::Io(e) => matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            ),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use http::{HeaderName, Request, Response, StatusCode, header};
    use http_body_util::{BodyExt as _, Empty, Full, Limited, StreamBody};
    use hyper::body::{Frame, Incoming};
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::body::UpstreamBody;
    use super::head::MAX_HEAD;
    use super::*;

    /// A loopback server answering every request with its method, path,
    /// framing headers and body; it counts the connections it accepts and,
    /// unless `keep_alive`, closes each after one response. Stops when the
    /// test's runtime ends.
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
                        let framing = |name| {
                            req.headers()
                                .get(name)
                                .map_or("-".to_owned(), |v| v.to_str().unwrap().to_owned())
                        };
                        let mut text = format!(
                            "{} {} length={} te={} fwd={} body=",
                            req.method(),
                            req.uri().path(),
                            framing(header::CONTENT_LENGTH),
                            framing(header::TRANSFER_ENCODING),
                            framing(HeaderName::from_static("x-forwarded-for")),
                        );
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        text.push_str(std::str::from_utf8(&body).unwrap());
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
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

    /// What a raw server answers to its nth request.
    type Answer = fn(usize) -> Vec<u8>;

    /// "ok", framed by its length, on a connection kept open.
    const KEPT_OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    /// A loopback server that reads each request's head and answers with
    /// the bytes `answer` gives for it (by its number, from 0), closing the
    /// connection after `per_connection` answers. Counts connections.
    async fn raw_server(answer: Answer, per_connection: usize) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let served = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let served = served.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    for _ in 0..per_connection {
                        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            let mut chunk = [0u8; 1024];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => seen.extend_from_slice(&chunk[..n]),
                            }
                        }
                        seen.clear();
                        let n = served.fetch_add(1, Ordering::SeqCst);
                        if stream.write_all(&answer(n)).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    /// `req` as it goes, with nothing added.
    fn out<B: RequestBody>(req: Request<B>) -> Outgoing<B> {
        Outgoing::new(req, &[])
    }

    async fn text(resp: Response<UpstreamBody>) -> String {
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    async fn get(pool: &Arc<Upstreams>, addr: SocketAddr, path: &str) -> String {
        let req = Request::get(path).body(Empty::<Bytes>::new()).unwrap();
        text(pool.send(addr, out(req)).await.unwrap()).await
    }

    #[tokio::test]
    async fn one_kept_connection_serves_request_after_request() {
        let (addr, accepted) = server(true).await;
        let pool = Upstreams::new();
        for i in 0..20 {
            let expected = format!("GET /r{i} length=- te=- fwd=- body=");
            assert_eq!(get(&pool, addr, &format!("/r{i}")).await, expected);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);

        // Two at once need two connections; both are kept afterwards.
        let (a, b) = tokio::join!(get(&pool, addr, "/a"), get(&pool, addr, "/b"));
        assert!(
            a.starts_with("GET /a ") && b.starts_with("GET /b "),
            "{a} {b}"
        );
        let before = accepted.load(Ordering::SeqCst);
        assert!(before <= 2, "{before}");
        let (a, b) = tokio::join!(get(&pool, addr, "/a"), get(&pool, addr, "/b"));
        assert!(
            a.starts_with("GET /a ") && b.starts_with("GET /b "),
            "{a} {b}"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_server_that_closes_its_connections_still_answers_every_request() {
        let (addr, accepted) = server(false).await;
        let pool = Upstreams::new();
        for i in 0..20 {
            assert!(
                get(&pool, addr, &format!("/c{i}"))
                    .await
                    .starts_with("GET /c")
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 20);
    }

    #[tokio::test]
    async fn a_kept_connection_the_world_closed_silently_is_not_a_failed_request() {
        // Keep-alive framing, no "Connection: close", and then the world
        // hangs up: the next request must still get its answer.
        let (addr, accepted) = raw_server(|_| KEPT_OK.to_vec(), 1).await;
        let pool = Upstreams::new();
        for i in 0..20 {
            assert_eq!(get(&pool, addr, &format!("/s{i}")).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 20);
    }

    #[tokio::test]
    async fn a_request_a_kept_connection_dropped_unanswered_goes_again_only_if_harmless() {
        // Each connection answers its first request, then hangs up on the
        // second without a word, as a world closing an idle connection
        // just as a request arrives.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut head = [0u8; 4096];
                    let _ = stream.read(&mut head).await;
                    stream.write_all(KEPT_OK).await.unwrap();
                    let _ = stream.read(&mut head).await;
                });
            }
        });
        let pool = Upstreams::new();
        assert_eq!(get(&pool, addr, "/first").await, "ok");
        // A GET is sent again, on a new connection.
        assert_eq!(get(&pool, addr, "/again").await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        // A POST is not: the world may have acted on it.
        let req = Request::post("/once").body(Empty::<Bytes>::new()).unwrap();
        let Err(err) = pool.send(addr, out(req)).await else {
            panic!("a POST was sent twice");
        };
        assert!(matches!(err, UpstreamError::Closed), "{err}");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_sweep_lets_go_of_idle_connections_their_world_closed() {
        // The world answers with keep-alive framing and then hangs up: the
        // connection sits idle in the pool until the sweep finds it closed.
        let (addr, _) = raw_server(|_| KEPT_OK.to_vec(), 1).await;
        let (open_addr, _) = server(true).await;
        let pool = Upstreams::new();
        assert_eq!(get(&pool, addr, "/a").await, "ok");
        assert!(get(&pool, open_addr, "/b").await.starts_with("GET /b "));
        assert_eq!(pool.idle_count(), 2);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while pool.idle_count() > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            pool.let_go_of_closed();
        }
        // The closed one is gone; the open one is kept.
        assert_eq!(pool.idle_count(), 1);
        assert!(pool.keeps(open_addr));
    }

    #[tokio::test]
    async fn responses_that_end_their_connection_are_not_followed_by_another_request() {
        // Connection: close, HTTP/1.0, and a response framed both ways:
        // each connection serves one response only.
        let answers: [Answer; 3] = [
            |_| b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok".to_vec(),
            |_| b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
            |_| {
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 9\r\n\r\n\
                  2\r\nok\r\n0\r\n\r\n"
                    .to_vec()
            },
        ];
        for answer in answers {
            let (addr, accepted) = raw_server(answer, 10).await;
            let pool = Upstreams::new();
            for _ in 0..3 {
                assert_eq!(get(&pool, addr, "/").await, "ok");
            }
            assert_eq!(accepted.load(Ordering::SeqCst), 3);
        }
    }

    #[tokio::test]
    async fn a_body_left_unread_closes_its_connection() {
        let (addr, accepted) = server(true).await;
        let pool = Upstreams::new();
        let req = Request::get("/left").body(Empty::<Bytes>::new()).unwrap();
        let resp = pool.send(addr, out(req)).await.unwrap();
        drop(resp);
        assert!(get(&pool, addr, "/next").await.starts_with("GET /next "));
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn chunked_bodies_are_read_whole_and_keep_their_connection() {
        let (addr, accepted) = raw_server(
            |n| match n {
                0 => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                       5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n"
                    .to_vec(),
                _ => b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext".to_vec(),
            },
            10,
        )
        .await;
        let pool = Upstreams::new();
        let req = Request::get("/c").body(Empty::<Bytes>::new()).unwrap();
        let resp = pool.send(addr, out(req)).await.unwrap();
        assert!(resp.headers().contains_key(header::TRANSFER_ENCODING));
        assert_eq!(text(resp).await, "hello world");
        assert_eq!(get(&pool, addr, "/n").await, "next");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_without_length_lasts_until_the_world_closes() {
        let (addr, accepted) = raw_server(
            |_| b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it".to_vec(),
            1,
        )
        .await;
        let pool = Upstreams::new();
        assert_eq!(get(&pool, addr, "/a").await, "all of it");
        assert_eq!(get(&pool, addr, "/b").await, "all of it");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn interim_responses_are_passed_over() {
        let (addr, _) = raw_server(
            |_| {
                b"HTTP/1.1 100 Continue\r\n\r\n\
                  HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok"
                    .to_vec()
            },
            10,
        )
        .await;
        let pool = Upstreams::new();
        let req = Request::post("/p")
            .body(Full::new(Bytes::from("x")))
            .unwrap();
        let resp = pool.send(addr, out(req)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(text(resp).await, "ok");
    }

    #[tokio::test]
    async fn head_and_not_modified_responses_have_no_body_and_keep_their_connection() {
        let (addr, accepted) = raw_server(
            |n| match n {
                0 => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n".to_vec(),
                1 => b"HTTP/1.1 304 Not Modified\r\netag: \"a\"\r\n\r\n".to_vec(),
                _ => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nafter".to_vec(),
            },
            10,
        )
        .await;
        let pool = Upstreams::new();
        let req = Request::head("/h").body(Empty::<Bytes>::new()).unwrap();
        let resp = pool.send(addr, out(req)).await.unwrap();
        assert!(resp.body().is_end_stream());
        assert_eq!(resp.headers()[header::CONTENT_LENGTH], "5");
        assert_eq!(text(resp).await, "");
        let req = Request::get("/m").body(Empty::<Bytes>::new()).unwrap();
        let resp = pool.send(addr, out(req)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(text(resp).await, "");
        assert_eq!(get(&pool, addr, "/g").await, "after");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn invalid_responses_are_clear_errors() {
        let cases: [(Answer, &str); 4] = [
            (
                |_| b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok".to_vec(),
                "conflicting Content-Lengths",
            ),
            (
                |_| b"SMTP ready\r\n\r\n".to_vec(),
                "a malformed response head",
            ),
            (
                |_| {
                    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
                    head.extend(b"x-big: ");
                    head.extend(std::iter::repeat_n(b'a', MAX_HEAD + 1));
                    head
                },
                "a response head too large",
            ),
            (
                |_| b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort".to_vec(),
                "before its response was complete",
            ),
        ];
        for (answer, expected) in cases {
            let (addr, _) = raw_server(answer, 1).await;
            let pool = Upstreams::new();
            let req = Request::get("/").body(Empty::<Bytes>::new()).unwrap();
            let err = match pool.send(addr, out(req)).await {
                Ok(resp) => resp.into_body().collect().await.unwrap_err(),
                Err(e) => e,
            };
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[tokio::test]
    async fn request_bodies_go_with_their_length_or_chunked() {
        let (addr, _) = server(true).await;
        let pool = Upstreams::new();

        // With a field of the proxy's own added.
        let req = Request::post("/full")
            .body(Full::new(Bytes::from("abc")))
            .unwrap();
        let added = [(HeaderName::from_static("x-forwarded-for"), &b"10.0.0.7"[..])];
        let sent = text(pool.send(addr, Outgoing::new(req, &added)).await.unwrap()).await;
        assert_eq!(sent, "POST /full length=3 te=- fwd=10.0.0.7 body=abc");

        let parts = futures_util::stream::iter(
            ["abc", "", "def"].map(|s| Ok::<_, Infallible>(Frame::data(Bytes::from(s)))),
        );
        let req = Request::put("/stream")
            .body(StreamBody::new(parts))
            .unwrap();
        let sent = text(pool.send(addr, out(req)).await.unwrap()).await;
        assert_eq!(sent, "PUT /stream length=- te=chunked fwd=- body=abcdef");

        // An empty POST still says so; a client's claimed length is not
        // what decides it.
        let req = Request::post("/empty")
            .header(header::CONTENT_LENGTH, "99")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let sent = text(pool.send(addr, out(req)).await.unwrap()).await;
        assert_eq!(sent, "POST /empty length=0 te=- fwd=- body=");
        let req = Request::post("/claimed")
            .header(header::TRANSFER_ENCODING, "chunked")
            .body(Full::new(Bytes::from("abc")))
            .unwrap();
        let sent = text(pool.send(addr, out(req)).await.unwrap()).await;
        assert_eq!(sent, "POST /claimed length=3 te=- fwd=- body=abc");
    }

    #[tokio::test]
    async fn a_world_that_refuses_a_body_halfway_is_heard() {
        // It answers after the head and hangs up without reading the rest.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 1024];
            let _ = stream.read(&mut head).await;
            let refusal = b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 3\r\n\r\nno\n";
            stream.write_all(refusal).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
        let pool = Upstreams::new();
        let upload = Bytes::from(vec![b'u'; 32 * 1024 * 1024]);
        let req = Request::post("/upload").body(Full::new(upload)).unwrap();
        let resp = pool.send(addr, out(req)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(text(resp).await, "no\n");
    }

    #[tokio::test]
    async fn a_body_over_its_limit_is_an_error_that_says_so() {
        let (addr, _) = server(true).await;
        let pool = Upstreams::new();
        let body = Limited::new(Full::new(Bytes::from("far too long")), 3);
        let req = Request::post("/up").body(body).unwrap();
        let Err(err) = pool.send(addr, out(req)).await else {
            panic!("an over-long body was sent");
        };
        let source = std::error::Error::source(&err).unwrap();
        assert!(source.is::<http_body_util::LengthLimitError>(), "{source}");
    }

    #[tokio::test]
    async fn nobody_listening_is_a_clear_error() {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let pool = Upstreams::new();
        let req = Request::get("/").body(Empty::<Bytes>::new()).unwrap();
        let Err(err) = pool.send(addr, out(req)).await else {
            panic!("a response from nobody");
        };
        assert!(err.to_string().contains("cannot connect"), "{err}");
    }
}
