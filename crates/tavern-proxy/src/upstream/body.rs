//! A response's body, read from its connection as it is polled: by
//! Content-Length, chunked, or until the connection closes; read to the
//! end, the connection goes back to the pool.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, Bytes};
use hyper::body::{Body, Frame, SizeHint};

use super::UpstreamError;
use super::conn::Conn;
use super::head::{Framing, MAX_HEAD};
use super::pool::Upstreams;

/// Where a response body's reading is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
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
    pub(super) conn: Option<Conn>,
    pub(super) state: State,
    pub(super) keep_alive: bool,
    pub(super) pool: Weak<Upstreams>,
    pub(super) addr: SocketAddr,
}

impl UpstreamBody {
    /// The body is over: its connection goes back to the pool when it can
    /// serve another request.
    pub(super) fn finish(&mut self) {
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
