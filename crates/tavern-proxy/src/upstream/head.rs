//! Heads: a request's written out as it goes to a world (its framing the
//! proxy's own), and a response's parsed from the connection's buffer
//! (httparse, the header values sharing the buffer's memory).

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Version};
use hyper::body::Body;

use super::{RequestBody, UpstreamError};

/// The largest response head a world may send.
pub(super) const MAX_HEAD: usize = 64 * 1024;
/// The most header fields in a response head.
pub(super) const MAX_HEADERS: usize = 100;

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
    pub(super) head: Vec<u8>,
    pub(super) body: B,
    pub(super) chunked: bool,
    /// A HEAD request, whose response has no body whatever it says.
    pub(super) asks_head: bool,
    /// Without a body and idempotent: safe to send a second time.
    pub(super) repeatable: bool,
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
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// A response's head, parsed.
pub(super) struct Head {
    pub(super) status: StatusCode,
    pub(super) version: Version,
    pub(super) headers: HeaderMap,
    pub(super) keep_alive: bool,
}

/// Parses a response head from the front of `buf`, taking it off the
/// buffer; `None` while it is incomplete. Header values share the
/// buffer's memory.
pub(super) fn parse_head(buf: &mut BytesMut) -> Result<Option<(Head, Framing)>, UpstreamError> {
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
