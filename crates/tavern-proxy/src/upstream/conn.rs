//! One connection to a world's server: writing a request's head and body,
//! reading into a buffer that adapts its size to what arrives, and reading
//! a final response's head.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::BytesMut;
use http::StatusCode;
use http_body_util::BodyExt as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use super::head::{Framing, Head, MAX_HEAD, parse_head};
use super::{RequestBody, UpstreamError};

/// Bytes asked of the socket at once: from 8 KiB, doubling while reads
/// fill what they are given (a large body), up to 256 KiB.
const READ_SIZE: usize = 8 * 1024;
const MAX_READ_SIZE: usize = 256 * 1024;

/// One connection to a world's server, and what was read from it but not
/// yet used.
pub(super) struct Conn {
    io: TcpStream,
    pub(super) buf: BytesMut,
    read_size: usize,
}

impl Conn {
    pub(super) async fn open(addr: SocketAddr) -> Result<Self, UpstreamError> {
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
    pub(super) fn looks_open(&self) -> bool {
        self.buf.is_empty()
            && matches!(self.io.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Reads what the socket has into the buffer; `0` at its end. The
    /// buffer grows only when less than an eighth of a read's size is
    /// free: small messages are read one after another into the same
    /// memory, the one before still in use (its bytes are the header
    /// values and body of the message being forwarded).
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
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
    pub(super) async fn send<B: RequestBody>(
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
