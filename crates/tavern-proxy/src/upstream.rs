//! Requests to the worlds' servers over kept HTTP/1.1 connections: the
//! request's head written and its body streamed, the response's head parsed
//! (httparse) and its body read, all within the task of the client's
//! request, with no task or channel in between (docs/performance.md). Idle
//! connections are kept per world address and reused; a request that a
//! kept connection, closing as it left, never answered is sent once more on
//! a fresh one when that is safe.

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use crate::body::BoxError;

/// What request bodies must be to go upstream.
pub(crate) trait RequestBody:
    Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}
impl<B: Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static> RequestBody for B {}

/// Idle connections kept per world, beyond which they are closed.
const MAX_IDLE_PER_WORLD: usize = 64;
/// The largest response head a world may send.
const MAX_HEAD: usize = 64 * 1024;
/// The most header fields in a response head.
const MAX_HEADERS: usize = 100;
/// Bytes asked of the socket at once: from 8 KiB, doubling while reads
/// fill what they are given (a large body), up to 256 KiB.
const READ_SIZE: usize = 8 * 1024;
const MAX_READ_SIZE: usize = 256 * 1024;
/// How often idle connections are checked for having been closed.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

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

    fn put_idle(&self, addr: SocketAddr, conn: Conn) {
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
    fn let_go_of_closed(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|_, list| {
            list.retain(Conn::looks_open);
            !list.is_empty()
        });
    }

    /// How many idle connections are kept.
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.values().map(Vec::len).sum()
    }
}

/// Methods whose repetition changes nothing more than one request would
/// (RFC 9110 9.2.2).
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A request as it goes to a world: its head already written out.
pub(crate) struct Outgoing<B> {
    head: Vec<u8>,
    body: B,
    chunked: bool,
    /// A HEAD request, whose response has no body whatever it says.
    asks_head: bool,
    /// Without a body and idempotent: safe to send a second time.
    repeatable: bool,
}

impl<B: RequestBody> Outgoing<B> {
    /// `req` as written to a world, with the `added` fields after its own.
    pub(crate) fn new(req: Request<B>, added: &[(HeaderName, &[u8])]) -> Self {
        let (parts, body) = req.into_parts();
        let mut head = Vec::with_capacity(256 + parts.headers.len() * 48);
        let chunked = encode_head(&parts, &body, added, &mut head);
        Self {
            head,
            chunked,
            asks_head: parts.method == Method::HEAD,
            repeatable: body.is_end_stream() && idempotent(&parts.method),
            body,
        }
    }
}

/// Writes the request line and header fields for `parts`, then `added`,
/// into `out`; `true` when the body goes chunked. The body's length comes
/// from the body itself (the client's framing, already checked by the
/// server side), never from a Content-Length field it came with.
fn encode_head<B: Body>(
    parts: &http::request::Parts,
    body: &B,
    added: &[(HeaderName, &[u8])],
    out: &mut Vec<u8>,
) -> bool {
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut field = |name: &HeaderName, value: &[u8]| {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    // The framing fields are the proxy's to write, below.
    let mut declared = false;
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH {
            declared = true;
        } else if name != header::TRANSFER_ENCODING {
            field(name, value.as_bytes());
        }
    }
    for (name, value) in added {
        field(name, value);
    }
    let length = if body.is_end_stream() {
        let expects_body = matches!(parts.method, Method::POST | Method::PUT | Method::PATCH);
        (declared || expects_body).then_some(0)
    } else {
        body.size_hint().exact()
    };
    let chunked = !body.is_end_stream() && length.is_none();
    if let Some(n) = length {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
    } else if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
    chunked
}

/// How a response's body is delimited (RFC 9112 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A response's head, parsed.
struct Head {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    keep_alive: bool,
}

/// One connection to a world's server, and what was read from it but not
/// yet used.
struct Conn {
    io: TcpStream,
    buf: BytesMut,
    read_size: usize,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Self, UpstreamError> {
        let connecting = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr));
        let io = connecting
            .await
            .map_err(|_| UpstreamError::ConnectTimeout { addr })?
            .map_err(|source| UpstreamError::Connect { addr, source })?;
        let _ = io.set_nodelay(true);
        Ok(Self {
            io,
            buf: BytesMut::with_capacity(READ_SIZE),
            read_size: READ_SIZE,
        })
    }

    /// An idle connection is fit for another request when the world has
    /// neither closed it nor sent anything on it. Costs no system call
    /// unless the socket has become readable since it was last read.
    fn looks_open(&self) -> bool {
        self.buf.is_empty()
            && matches!(self.io.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Reads what the socket has into the buffer; `0` at its end. The
    /// buffer grows only when less than an eighth of a read's size is
    /// free: small messages are read one after another into the same
    /// memory, the one before still in use (its bytes are the header
    /// values and body of the message being forwarded).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < self.read_size / 8 {
            self.buf.reserve(self.read_size);
        }
        let room = self.buf.capacity() - self.buf.len();
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.buf
        ))?;
        if n == room {
            self.read_size = (self.read_size * 2).min(MAX_READ_SIZE);
        } else if n < self.read_size / 8 {
            self.read_size = (self.read_size / 2).max(READ_SIZE);
        }
        Poll::Ready(Ok(n))
    }

    /// Reads more into the buffer; the connection's end is an error.
    async fn fill(&mut self) -> Result<(), UpstreamError> {
        match std::future::poll_fn(|cx| self.poll_fill(cx)).await? {
            0 => Err(UpstreamError::Closed),
            _ => Ok(()),
        }
    }

    /// Writes the request's head and body, then reads the response's head.
    async fn send<B: RequestBody>(
        &mut self,
        head: &[u8],
        body: B,
        chunked: bool,
    ) -> Result<(Head, Framing), UpstreamError> {
        self.io.write_all(head).await?;
        if !body.is_end_stream()
            && let Err(e) = self.write_body(body, chunked).await
        {
            // The world may have answered before the whole body went out
            // (refusing it) and closed the connection: its answer stands,
            // on a connection not used again.
            if let UpstreamError::Io(_) = e
                && let Ok((head, framing)) = self.read_head().await
            {
                let head = Head {
                    keep_alive: false,
                    ..head
                };
                return Ok((head, framing));
            }
            return Err(e);
        }
        self.read_head().await
    }

    async fn write_body<B: RequestBody>(
        &mut self,
        body: B,
        chunked: bool,
    ) -> Result<(), UpstreamError> {
        let mut body = std::pin::pin!(body);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| UpstreamError::Body(e.into()))?;
            // Trailers are not passed on.
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            if chunked {
                let size = format!("{:x}\r\n", data.len());
                self.io.write_all(size.as_bytes()).await?;
            }
            self.io.write_all(&data).await?;
            if chunked {
                self.io.write_all(b"\r\n").await?;
            }
        }
        if chunked {
            self.io.write_all(b"0\r\n\r\n").await?;
        }
        Ok(())
    }

    /// Reads a final response's head, passing over interim (1xx) ones.
    async fn read_head(&mut self) -> Result<(Head, Framing), UpstreamError> {
        loop {
            if let Some(head) = parse_head(&mut self.buf)? {
                if head.0.status.is_informational() {
                    if head.0.status == StatusCode::SWITCHING_PROTOCOLS {
                        return Err(UpstreamError::Invalid("an upgrade that was not asked for"));
                    }
                    continue;
                }
                return Ok(head);
            }
            if self.buf.len() >= MAX_HEAD {
                return Err(UpstreamError::Invalid("a response head too large"));
            }
            self.fill().await?;
        }
    }
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

/// Parses a response head from the front of `buf`, taking it off the
/// buffer; `None` while it is incomplete. Header values share the
/// buffer's memory.
fn parse_head(buf: &mut BytesMut) -> Result<Option<(Head, Framing)>, UpstreamError> {
    if buf.is_empty() {
        return Ok(None);
    }
    // Where each name and value lie in the head (the parsed headers borrow
    // the buffer, which is split once they are done).
    let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
    let (len, count, code, minor) = {
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            buf,
            &mut fields,
        );
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(UpstreamError::Invalid("too many header fields"));
            }
            Err(_) => return Err(UpstreamError::Invalid("a malformed response head")),
        };
        let base = buf.as_ptr() as usize;
        let offset = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
        for (span, h) in spans.iter_mut().zip(resp.headers.iter()) {
            let name = offset(h.name.as_bytes());
            let value = offset(h.value);
            *span = (
                name,
                name + h.name.len() as u32,
                value,
                value + h.value.len() as u32,
            );
        }
        let code = resp.code.unwrap_or_default();
        (len, resp.headers.len(), code, resp.version.unwrap_or(1))
    };
    let head = buf.split_to(len).freeze();
    let status = StatusCode::from_u16(code).map_err(|_| UpstreamError::Invalid("a bad status"))?;
    let mut headers = HeaderMap::with_capacity(count);
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut close = minor == 0;
    for &(ns, ne, vs, ve) in &spans[..count] {
        let name = HeaderName::from_bytes(&head[ns as usize..ne as usize])
            .map_err(|_| UpstreamError::Invalid("a bad header name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs as usize..ve as usize))
            .map_err(|_| UpstreamError::Invalid("a bad header value"))?;
        if name == header::CONTENT_LENGTH {
            let n = value
                .to_str()
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(UpstreamError::Invalid("a bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(UpstreamError::Invalid("conflicting Content-Lengths"));
            }
            length = Some(n);
        } else if name == header::TRANSFER_ENCODING {
            // Chunked when chunked is the last coding.
            let last = value.as_bytes().rsplit(|&b| b == b',').next();
            chunked = Some(last.is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked")));
        } else if name == header::CONNECTION {
            let v = value.as_bytes();
            if v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
            {
                close = true;
            }
        }
        headers.append(name, value);
    }
    let framing = if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    // Both framings at once is a sign of trouble: the connection is not
    // used again (RFC 9112 6.3).
    if chunked.is_some() && length.is_some() {
        close = true;
    }
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    Ok(Some((
        Head {
            status,
            version,
            headers,
            keep_alive: !close,
        },
        framing,
    )))
}

/// Where a response body's reading is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// This many bytes of a Content-Length body (or of a chunk) are left.
    Length(u64),
    ChunkSize,
    Chunk(u64),
    ChunkEnd,
    Trailers,
    UntilClose,
    Done,
}

impl From<Framing> for State {
    fn from(framing: Framing) -> Self {
        match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::UntilClose => State::UntilClose,
        }
    }
}

/// A response body from a world, read from its connection as it is
/// polled. Read to the end, the connection goes back to the pool (when the
/// world keeps it open); dropped earlier, it is closed.
pub(crate) struct UpstreamBody {
    conn: Option<Conn>,
    state: State,
    keep_alive: bool,
    pool: Weak<Upstreams>,
    addr: SocketAddr,
}

impl UpstreamBody {
    /// The body is over: its connection goes back to the pool when it can
    /// serve another request.
    fn finish(&mut self) {
        self.state = State::Done;
        let Some(conn) = self.conn.take() else { return };
        if self.keep_alive
            && conn.buf.is_empty()
            && let Some(pool) = self.pool.upgrade()
        {
            pool.put_idle(self.addr, conn);
        }
    }

    /// The next frame of data, or the end.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, UpstreamError>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(Ok(None));
            };
            match self.state {
                State::Done => {
                    self.finish();
                    return Poll::Ready(Ok(None));
                }
                State::Length(left) | State::Chunk(left) if !conn.buf.is_empty() => {
                    let n = conn
                        .buf
                        .len()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    let data = conn.buf.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), _) => State::Length(left),
                        (_, 0) => State::ChunkEnd,
                        (_, _) => State::Chunk(left),
                    };
                    if self.state == State::Done {
                        self.finish();
                    }
                    return Poll::Ready(Ok(Some(data)));
                }
                State::UntilClose if !conn.buf.is_empty() => {
                    return Poll::Ready(Ok(Some(conn.buf.split().freeze())));
                }
                State::ChunkSize if !conn.buf.is_empty() => {
                    match httparse::parse_chunk_size(&conn.buf) {
                        Ok(httparse::Status::Complete((used, size))) => {
                            conn.buf.advance(used);
                            self.state = if size == 0 {
                                State::Trailers
                            } else {
                                State::Chunk(size)
                            };
                            continue;
                        }
                        Ok(httparse::Status::Partial) => {}
                        Err(_) => return Poll::Ready(Err(UpstreamError::Invalid("a bad chunk"))),
                    }
                }
                State::ChunkEnd if conn.buf.len() >= 2 => {
                    if &conn.buf[..2] != b"\r\n" {
                        return Poll::Ready(Err(UpstreamError::Invalid("a bad chunk")));
                    }
                    conn.buf.advance(2);
                    self.state = State::ChunkSize;
                    continue;
                }
                State::Trailers if !conn.buf.is_empty() => {
                    // Trailer fields are passed over, up to the empty line.
                    if let Some(end) = conn.buf.windows(2).position(|w| w == b"\r\n") {
                        conn.buf.advance(end + 2);
                        if end == 0 {
                            self.finish();
                            return Poll::Ready(Ok(None));
                        }
                        continue;
                    }
                }
                _ => {}
            }
            if conn.buf.len() >= MAX_HEAD {
                return Poll::Ready(Err(UpstreamError::Invalid("a chunk head too large")));
            }
            let n = ready!(conn.poll_fill(cx))?;
            if n == 0 {
                if self.state == State::UntilClose {
                    self.state = State::Done;
                    self.conn = None;
                    return Poll::Ready(Ok(None));
                }
                return Poll::Ready(Err(UpstreamError::Closed));
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        match ready!(self.poll_data(cx)) {
            Ok(data) => Poll::Ready(data.map(|d| Ok(Frame::data(d)))),
            Err(e) => {
                // The connection's state is unknown: it is closed.
                self.conn = None;
                self.state = State::Done;
                Poll::Ready(Some(Err(e)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{BodyExt as _, Empty, Full, Limited, StreamBody};
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use tokio::io::AsyncReadExt as _;
    use tokio::net::TcpListener;

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
        assert!(pool.idle.lock().unwrap().contains_key(&open_addr));
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
