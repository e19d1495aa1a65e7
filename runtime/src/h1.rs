//! The API listener's own HTTP/1.1 server, for connections in clear text that cannot upgrade
//! (listeners without TLS or HTTP/2, specs without WebSocket APIs; the others are served by
//! hyper's).
//!
//! A request's head is parsed from the connection's buffer with `httparse`; a body that came
//! with its head (most of them) is handed to the pipeline whole, and one that did not streams
//! from the socket as the pipeline reads it. The answer's head and its first bytes leave in one
//! write. Framing follows RFC 9112 and refuses what hyper's server refuses: a head past 417,792
//! bytes or 100 fields (431), a request target past 65,534 bytes (414), `Transfer-Encoding` on
//! HTTP/1.0 or not ending in `chunked`, conflicting or malformed `Content-Length`s, and
//! malformed chunks (400). When `Transfer-Encoding` and `Content-Length` come together, the
//! length is dropped and the connection closes after the answer, so nothing after the chunked
//! body is read as a request.

use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderName, HeaderValue, Method, Response, StatusCode, Version};
use http_body::Body as _;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::gateway::Gateway;
use crate::observe::{GatewayRef, LoggedBody};

/// Header fields a request may carry: past them, 431.
const FIELDS_MAX: usize = 100;
/// The largest request head in bytes: past it, 431.
const HEAD_MAX: usize = 8192 + 4096 * 100;
/// The longest request target: past it, 414.
const TARGET_MAX: usize = u16::MAX as usize - 1;
/// What a read asks the socket for at least.
const READ_CHUNK: usize = 8192;
/// Bytes of chunk extensions and trailer fields a chunked body may carry in all (hyper's limit
/// for each). Chunk sizes are not counted: a long body in small chunks is a body like another.
const CHUNK_EXTRAS_MAX: usize = 16 << 10;
/// Answer bytes gathered before a write.
const WRITE_GATHER: usize = 16 << 10;

/// How a stopping gateway tells its idle HTTP/1.1 connections, without a lock that every
/// request takes: a flag read before each wait for a next request, and one [`Notify`] per
/// [`crate::percore::slot`], on which the connections of a thread wait (one registration per
/// connection; each wait then takes only its own slot's lock).
///
/// [`Notify`]: tokio::sync::Notify
pub(crate) struct Stopping {
    stopping: std::sync::atomic::AtomicBool,
    slots: [crate::percore::Padded<tokio::sync::Notify>; crate::percore::SLOTS],
}

impl Default for Stopping {
    fn default() -> Self {
        Stopping {
            stopping: std::sync::atomic::AtomicBool::new(false),
            slots: [const { crate::percore::Padded(tokio::sync::Notify::const_new()) };
                crate::percore::SLOTS],
        }
    }
}

impl Stopping {
    /// Closes the idle connections, and each busy one after its present answer.
    pub(crate) fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for slot in &self.slots {
            slot.0.notify_waiters();
        }
    }

    fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The connection's time limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// A request head must arrive within this, counted from when the connection waits for it.
    pub head: Duration,
    /// A request body must make progress within this.
    pub body: Duration,
    /// The client must take answer bytes within this.
    pub send: Duration,
}

/// The read side of a connection: the socket and what has been read but not yet taken.
struct Reader {
    io: OwnedReadHalf,
    buf: BytesMut,
}

impl Reader {
    /// Reads more into the buffer: 0 when the client has closed.
    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// [`Reader::fill`], polled.
    #[inline]
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.buf.reserve(READ_CHUNK);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }
}

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
}

/// A parsed request head.
struct Head {
    req: http::Request<()>,
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
}

/// Why a connection ends before a request is taken.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// Closed without a word: the client left, went quiet, or spoke HTTP/2.
    Close,
    /// Answered with this status, then closed.
    Answer(StatusCode),
}

/// Serves one connection until the client closes it, a head does not come within the head
/// timeout, an answer cannot be written, or the gateway stops ([`Stopping`]) between requests.
pub(crate) async fn serve(
    gw: Arc<Gateway>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    limits: Timeouts,
) {
    let (io, wr) = stream.into_split();
    let wr = Arc::new(wr);
    let mut reader = Some(Reader {
        io,
        buf: BytesMut::with_capacity(READ_CHUNK),
    });
    let mut out = Vec::with_capacity(1024);
    let mut waits = Waits::new(limits.head, &gw.stopping);
    while let Some(r) = reader.as_mut() {
        let head = match read_head(r, limits.head, &mut waits).await {
            Ok(head) => head,
            Err(Refusal::Close) => return,
            Err(Refusal::Answer(status)) => {
                out.clear();
                refusal(&mut out, status);
                let _ = write_all(&wr, &out, limits.send).await;
                return;
            }
        };
        let Head {
            req,
            framing,
            mut keep_alive,
            expect_continue,
        } = head;
        let method = req.method().clone();
        let version = req.version();
        // The body: whole when it came with its head; else read from the socket as the
        // pipeline asks, the reader given back once the body has ended.
        let mut back = None;
        let body = match framing {
            Framing::Length(0) => Body::empty(),
            Framing::Length(n) if r.buf.len() as u64 >= n => {
                Body::from(r.buf.split_to(n as usize).freeze())
            }
            _ => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                back = Some(rx);
                let streaming = Streaming {
                    reader: reader.take(),
                    decoder: Decoder::new(framing),
                    expect: (expect_continue && version == Version::HTTP_11).then(|| wr.clone()),
                    back: Some(tx),
                };
                Body::new(crate::progress::BodyWatch::new(
                    Body::new(streaming),
                    limits.body,
                ))
            }
        };
        let Ok(answer) =
            crate::server::guarded(GatewayRef::Borrowed(&gw), peer, req.map(|()| body)).await;
        if waits.stopping.is_stopping() {
            keep_alive = false;
        }
        // A streamed body the pipeline let go of before its end: the connection closes (what
        // is left of the body cannot be told from a next request).
        let mut given = None;
        let mut unread = false;
        if let Some(rx) = back.as_mut() {
            match rx.try_recv() {
                Ok((r, true)) => given = Some(r),
                Ok((r, false)) => {
                    keep_alive = false;
                    unread = true;
                    given = Some(r);
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => keep_alive = false,
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
            }
        }
        let sink = Sink {
            wr: &wr,
            send: limits.send,
        };
        let sent = respond(sink, &mut out, answer, &method, version, &mut keep_alive).await;
        if given.is_none() {
            // The body ended, or was let go of, while the answer was written.
            if let Some(Ok((r, ended))) = back.as_mut().map(|rx| rx.try_recv()) {
                keep_alive &= ended;
                unread = !ended;
                given = Some(r);
            }
        }
        if sent.is_err() {
            return;
        }
        if !keep_alive {
            if let Some(r) = given.filter(|_| unread) {
                linger(r, wr).await;
            }
            return;
        }
        if back.is_some() {
            match given {
                Some(r) => reader = Some(r),
                // Still held (a body streamed past its answer): the connection cannot go on.
                None => return,
            }
        }
    }
}

/// Closes a connection whose client may still be sending: the gateway's side is shut first,
/// then what arrives is read and dropped for up to 2 s or 1 MiB, so that closing with unread
/// bytes (a reset, which can destroy the answer before the client reads it) is avoided, as
/// nginx's lingering close does.
async fn linger(mut reader: Reader, wr: Arc<OwnedWriteHalf>) {
    // Dropping the last write half sends FIN.
    drop(wr);
    let drain = async {
        let mut total = 0;
        while total < 1 << 20 {
            reader.buf.clear();
            match reader.fill().await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

/// What a connection waits on beside its socket: the head timer (made once, moved for each
/// head) and the gateway's stop (registered once, see [`Stopping`]).
struct Waits<'g> {
    timer: Pin<Box<tokio::time::Sleep>>,
    stopped: Pin<Box<tokio::sync::futures::Notified<'g>>>,
    stopping: &'g Stopping,
}

impl<'g> Waits<'g> {
    fn new(limit: Duration, stopping: &'g Stopping) -> Waits<'g> {
        let mut stopped = Box::pin(stopping.slots[crate::percore::slot()].0.notified());
        // Registered now, so that a stop while the connection is busy is not missed.
        stopped.as_mut().enable();
        Waits {
            timer: Box::pin(tokio::time::sleep(limit)),
            stopped,
            stopping,
        }
    }
}

/// Reads and parses the next request head, within `limit` from now. An idle connection (no
/// byte of a next request yet) closes when the gateway stops.
async fn read_head(
    reader: &mut Reader,
    limit: Duration,
    waits: &mut Waits<'_>,
) -> Result<Head, Refusal> {
    if let Some(head) = parse(&mut reader.buf)? {
        return Ok(head);
    }
    // Moving a later deadline only records it: the timer is not registered again.
    waits
        .timer
        .as_mut()
        .reset(tokio::time::Instant::now() + limit);
    loop {
        if reader.buf.len() >= HEAD_MAX {
            return Err(Refusal::Answer(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
        }
        let idle = reader.buf.is_empty();
        if idle && waits.stopping.is_stopping() {
            return Err(Refusal::Close);
        }
        let read = std::future::poll_fn(|cx| {
            if let Poll::Ready(n) = reader.poll_fill(cx) {
                return Poll::Ready(Some(n));
            }
            // The stop signal ends the stop future, which is not polled again.
            if (idle && waits.stopped.as_mut().poll(cx).is_ready())
                || waits.timer.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        match read {
            Some(Ok(n)) if n > 0 => {}
            _ => return Err(Refusal::Close),
        }
        if let Some(head) = parse(&mut reader.buf)? {
            return Ok(head);
        }
    }
}

/// Parses a request head from the start of `buf`, taking it out; `None` while it is partial.
fn parse(buf: &mut BytesMut) -> Result<Option<Head>, Refusal> {
    if buf.is_empty() {
        return Ok(None);
    }
    let bad = Refusal::Answer(StatusCode::BAD_REQUEST);
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; FIELDS_MAX];
    let mut parsed = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut parsed,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::Answer(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE))
        }
        // An HTTP/2 client with prior knowledge on an HTTP/1.1 port: nothing to answer.
        Err(httparse::Error::Version) if buf.starts_with(b"PRI * HTTP/2.0") => {
            return Err(Refusal::Close)
        }
        Err(_) => return Err(bad),
    };
    let target = parsed.path.unwrap_or_default();
    if target.len() > TARGET_MAX {
        return Err(Refusal::Answer(StatusCode::URI_TOO_LONG));
    }
    let method = Method::from_bytes(parsed.method.unwrap_or_default().as_bytes())
        .map_err(|_| Refusal::Answer(StatusCode::BAD_REQUEST))?;
    let http11 = parsed.version == Some(1);
    let base = buf.as_ptr() as usize;
    let target_at = target.as_ptr() as usize - base;
    let target_span = (target_at, target_at + target.len());
    let mut spans: smallvec::SmallVec<[(HeaderName, usize, usize); 24]> = smallvec::SmallVec::new();
    for f in parsed.headers.iter() {
        let name = HeaderName::from_bytes(f.name.as_bytes())
            .map_err(|_| Refusal::Answer(StatusCode::BAD_REQUEST))?;
        let start = f.value.as_ptr() as usize - base;
        spans.push((name, start, start + f.value.len()));
    }
    let head = buf.split_to(len).freeze();
    let uri = http::Uri::from_maybe_shared(head.slice(target_span.0..target_span.1))
        .map_err(|_| Refusal::Answer(StatusCode::BAD_REQUEST))?;
    // RFC 9112 §6.3, as hyper reads it: chunked wins over a length; lengths must agree.
    let mut keep_alive = http11;
    let mut close = false;
    let mut length: Option<u64> = None;
    let mut coded = false;
    let mut chunked = false;
    let mut had_length = false;
    let mut expect_continue = false;
    // Room for what the pipeline adds, so the table does not grow on the way.
    let mut headers = crate::percore::header_table(spans.len() + crate::pipeline::FIELDS_ADDED);
    for (name, start, end) in spans.drain(..) {
        let value = head.slice(start..end);
        match name {
            header::TRANSFER_ENCODING => {
                if !http11 {
                    return Err(Refusal::Answer(StatusCode::BAD_REQUEST));
                }
                coded = true;
                if length.take().is_some() {
                    headers.remove(header::CONTENT_LENGTH);
                }
                chunked = ends_chunked(&value);
            }
            header::CONTENT_LENGTH => {
                had_length = true;
                if coded {
                    continue;
                }
                let n = content_length(&value).ok_or(Refusal::Answer(StatusCode::BAD_REQUEST))?;
                match length {
                    Some(prev) if prev != n => {
                        return Err(Refusal::Answer(StatusCode::BAD_REQUEST))
                    }
                    Some(_) => continue,
                    None => length = Some(n),
                }
            }
            header::CONNECTION => {
                if close || has_token(&value, b"close") {
                    close = true;
                    keep_alive = false;
                } else if !keep_alive {
                    keep_alive = has_token(&value, b"keep-alive");
                }
            }
            header::EXPECT => {
                expect_continue = value.eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
        let value = HeaderValue::from_maybe_shared(value)
            .map_err(|_| Refusal::Answer(StatusCode::BAD_REQUEST))?;
        headers.append(name, value);
    }
    if coded && !chunked {
        return Err(Refusal::Answer(StatusCode::BAD_REQUEST));
    }
    if coded && had_length {
        keep_alive = false;
    }
    let framing = if chunked {
        Framing::Chunked
    } else {
        Framing::Length(length.unwrap_or(0))
    };
    let mut req = http::Request::new(());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = if http11 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    *req.headers_mut() = headers;
    Ok(Some(Head {
        req,
        framing,
        keep_alive,
        expect_continue,
    }))
}

/// The value of a `Content-Length` field: decimal digits only (no sign, no list), within
/// `u64`, with any whitespace around them dropped. The client and the server read it alike.
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// The elements of a comma-separated field value (`Connection`, `Transfer-Encoding`), their
/// whitespace dropped; empty elements are kept, and match no token.
pub(crate) fn tokens(value: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(<[u8]>::trim_ascii)
}

/// Whether a `Transfer-Encoding` value ends with `chunked`, the coding that frames a body.
pub(crate) fn ends_chunked(value: &[u8]) -> bool {
    tokens(value)
        .next_back()
        .is_some_and(|last| last.eq_ignore_ascii_case(b"chunked"))
}

/// Whether a comma-separated list holds `token` (any case).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    tokens(value).any(|t| t.eq_ignore_ascii_case(token))
}

/// A body read from the connection as the pipeline asks for it.
struct Streaming {
    reader: Option<Reader>,
    decoder: Decoder,
    /// The connection, while a `100 Continue` is owed.
    expect: Option<Arc<OwnedWriteHalf>>,
    /// Where the reader goes back once the body has ended (`true`) or is let go of before its
    /// end (`false`).
    back: Option<tokio::sync::oneshot::Sender<(Reader, bool)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decode {
    /// Bytes still to come.
    Length(u64),
    Chunked(Chunk),
    Done,
}

/// Where a chunked body's decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk's size.
    Size {
        value: u64,
        digits: u32,
    },
    /// Skipping the size line's extensions, up to its end.
    Extension {
        size: u64,
    },
    /// The size line's `\r` was read: `\n` next.
    SizeEnd {
        size: u64,
    },
    /// Data bytes still to come.
    Data(u64),
    /// After a chunk's data: `\r`, then `\n`.
    DataCr,
    DataLf,
    /// Trailer fields (discarded), up to an empty line.
    Trailers {
        at_line_start: bool,
        cr: bool,
    },
}

/// A body that does not follow HTTP/1.1's chunked framing.
#[derive(Debug)]
struct BadChunk(&'static str);

impl std::fmt::Display for BadChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed chunked body: {}", self.0)
    }
}

impl std::error::Error for BadChunk {}

/// The client closed the connection before the body's end.
#[derive(Debug)]
struct Truncated;

impl std::fmt::Display for Truncated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the connection closed before the body's end")
    }
}

impl std::error::Error for Truncated {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body's framing, decoded from the bytes read.
struct Decoder {
    decode: Decode,
    /// Bytes of chunk extensions and trailer fields seen so far.
    extra_bytes: usize,
}

impl Decoder {
    fn new(framing: Framing) -> Decoder {
        Decoder {
            decode: match framing {
                Framing::Length(0) => Decode::Done,
                Framing::Length(n) => Decode::Length(n),
                Framing::Chunked => Decode::Chunked(Chunk::Size {
                    value: 0,
                    digits: 0,
                }),
            },
            extra_bytes: 0,
        }
    }

    /// Takes what the buffer holds of the body: data, the end, or nothing yet.
    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, BadChunk> {
        loop {
            match self.decode {
                Decode::Done => return Ok(None),
                Decode::Length(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = (buf.len() as u64).min(left) as usize;
                    self.decode = match left - n as u64 {
                        0 => Decode::Done,
                        left => Decode::Length(left),
                    };
                    return Ok(Some(buf.split_to(n).freeze()));
                }
                Decode::Chunked(Chunk::Data(left)) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = (buf.len() as u64).min(left) as usize;
                    self.decode = Decode::Chunked(match left - n as u64 {
                        0 => Chunk::DataCr,
                        left => Chunk::Data(left),
                    });
                    return Ok(Some(buf.split_to(n).freeze()));
                }
                Decode::Chunked(state) => {
                    let Some(&b) = buf.first() else {
                        return Ok(None);
                    };
                    buf.advance(1);
                    if matches!(state, Chunk::Extension { .. } | Chunk::Trailers { .. }) {
                        self.extra_bytes += 1;
                        if self.extra_bytes > CHUNK_EXTRAS_MAX {
                            return Err(BadChunk("over 16 KiB of chunk extensions and trailers"));
                        }
                    }
                    self.decode = chunk_byte(state, b)?;
                }
            }
        }
    }
}

/// The chunked decoder's next state after byte `b` (not in data). Lines end in `\r\n`: a bare
/// `\n` or `\r` is refused, as a size that is not hexadecimal or needs more than 64 bits.
fn chunk_byte(state: Chunk, b: u8) -> Result<Decode, BadChunk> {
    let next = match state {
        Chunk::Size { value, digits } => match (b as char).to_digit(16) {
            Some(_) if digits >= 16 => return Err(BadChunk("a chunk size too large")),
            Some(d) => Chunk::Size {
                value: value << 4 | u64::from(d),
                digits: digits + 1,
            },
            None if digits == 0 => return Err(BadChunk("a chunk without a size")),
            None => match b {
                b';' | b' ' | b'\t' => Chunk::Extension { size: value },
                b'\r' => Chunk::SizeEnd { size: value },
                _ => return Err(BadChunk("a chunk size that is not hexadecimal")),
            },
        },
        Chunk::Extension { size } => match b {
            b'\r' => Chunk::SizeEnd { size },
            b'\n' | 0 => return Err(BadChunk("a bare LF or a NUL in a chunk extension")),
            _ => Chunk::Extension { size },
        },
        Chunk::SizeEnd { size } => match (b, size) {
            (b'\n', 0) => Chunk::Trailers {
                at_line_start: true,
                cr: false,
            },
            (b'\n', size) => Chunk::Data(size),
            _ => return Err(BadChunk("a bare CR after a chunk size")),
        },
        Chunk::Data(_) => return Err(BadChunk("data read as framing")),
        Chunk::DataCr if b == b'\r' => Chunk::DataLf,
        Chunk::DataLf if b == b'\n' => Chunk::Size {
            value: 0,
            digits: 0,
        },
        Chunk::DataCr | Chunk::DataLf => {
            return Err(BadChunk("a chunk's data longer than its size"))
        }
        Chunk::Trailers { at_line_start, cr } => match (b, cr) {
            (b'\n', true) if at_line_start => return Ok(Decode::Done),
            (b'\n', true) => Chunk::Trailers {
                at_line_start: true,
                cr: false,
            },
            (_, true) => return Err(BadChunk("a bare CR in the trailers")),
            (b'\r', false) => Chunk::Trailers {
                at_line_start,
                cr: true,
            },
            (b'\n', false) => return Err(BadChunk("a bare LF in the trailers")),
            _ => Chunk::Trailers {
                at_line_start: false,
                cr: false,
            },
        },
    };
    Ok(Decode::Chunked(next))
}

/// Writes `100 Continue` on the connection once the socket can take it (a client that waits
/// for it but reads nothing waits under the body timeout). The socket signals room for far
/// more than 25 bytes, so the write is whole or fails.
fn poll_continue(wr: &OwnedWriteHalf, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
    let socket: &tokio::net::TcpStream = wr.as_ref();
    loop {
        std::task::ready!(socket.poll_write_ready(cx))?;
        return Poll::Ready(match socket.try_write(CONTINUE) {
            Ok(n) if n == CONTINUE.len() => Ok(()),
            Ok(_) => Err(io::Error::other("the 100 Continue was cut short")),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => Err(e),
        });
    }
}

impl http_body::Body for Streaming {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(reader) = this.reader.as_mut() else {
                // Ended, or failed: a failed body never reads as a whole one.
                return Poll::Ready(match this.decoder.decode {
                    Decode::Done => None,
                    _ => Some(Err(Box::new(Truncated))),
                });
            };
            match this.decoder.step(&mut reader.buf) {
                Err(e) => {
                    this.reader = None;
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
                Ok(Some(data)) => {
                    this.finish_if_done();
                    return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
                }
                Ok(None) if this.decoder.decode == Decode::Done => {
                    this.finish_if_done();
                    return Poll::Ready(None);
                }
                Ok(None) => {}
            }
            if let Some(wr) = this.expect.as_ref() {
                match poll_continue(wr, cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(())) => this.expect = None,
                    Poll::Ready(Err(e)) => {
                        this.expect = None;
                        this.reader = None;
                        return Poll::Ready(Some(Err(Box::new(e))));
                    }
                }
            }
            let Some(reader) = this.reader.as_mut() else {
                return Poll::Ready(None);
            };
            match reader.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    this.reader = None;
                    return Poll::Ready(Some(Err(Box::new(Truncated))));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.reader = None;
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.decode == Decode::Done
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.decoder.decode {
            Decode::Length(n) => http_body::SizeHint::with_exact(n),
            Decode::Done => http_body::SizeHint::with_exact(0),
            Decode::Chunked(_) => http_body::SizeHint::default(),
        }
    }
}

impl Streaming {
    /// Once the body has ended, the reader goes back to the connection.
    fn finish_if_done(&mut self) {
        if self.decoder.decode == Decode::Done {
            if let (Some(reader), Some(back)) = (self.reader.take(), self.back.take()) {
                let _ = back.send((reader, true));
            }
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        // Let go of before its end: the connection closes after the answer, lingering.
        if let (Some(reader), Some(back)) = (self.reader.take(), self.back.take()) {
            let _ = back.send((reader, false));
        }
    }
}

/// Writes `answer` to the client; `keep_alive` turns false when the connection cannot carry
/// another request after it. The head is framed by [`encode_head`], and goes out with the
/// body's first bytes.
async fn respond(
    sink: Sink<'_>,
    out: &mut Vec<u8>,
    answer: Response<LoggedBody<'_>>,
    method: &Method,
    version: Version,
    keep_alive: &mut bool,
) -> io::Result<()> {
    let (mut parts, mut body) = answer.into_parts();
    if parts.status.is_informational() {
        // The pipeline answers no interim status of its own (upgrades go through hyper).
        parts.status = StatusCode::INTERNAL_SERVER_ERROR;
        parts.headers.clear();
        body = LoggedBody::plain(Body::empty());
    }
    let size = BodySize {
        empty: http_body::Body::is_end_stream(&body),
        exact: http_body::Body::size_hint(&body).exact(),
    };
    out.clear();
    let encoding = encode_head(out, &parts, size, method, version, keep_alive)?;
    crate::percore::spare_header_table(parts.headers);
    send_body(sink, out, body, encoding, keep_alive).await
}

/// What an answer's body says of its size before it is read.
#[derive(Debug, Clone, Copy)]
struct BodySize {
    /// It has ended already.
    empty: bool,
    /// Its exact length, when known.
    exact: Option<u64>,
}

/// Writes the head of an answer to `out` and says how its body is framed. Framing as hyper's
/// server writes it: a body of known size gets `content-length`, one of unknown size
/// `transfer-encoding: chunked` (or, to an HTTP/1.0 client, the connection's close); answers to
/// `HEAD`, `204` and `304` carry no body (`Encoding::Length(0)`). `keep_alive` turns false
/// when the answer closes the connection.
#[inline]
fn encode_head(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    size: BodySize,
    method: &Method,
    version: Version,
    keep_alive: &mut bool,
) -> io::Result<Encoding> {
    let BodySize { empty, exact } = size;
    let known = if empty { Some(0) } else { exact };
    let status = parts.status;
    let head_method = *method == Method::HEAD;
    let connect_ok = *method == Method::CONNECT && status.is_success();
    let bodiless_status = status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let no_body = head_method || connect_ok || bodiless_status;
    let can_length = !(connect_ok || bodiless_status);
    let http10 = version == Version::HTTP_10;
    let can_chunk = !no_body && !http10;
    if !http10 && status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let mut encoding = Encoding::Length(known.unwrap_or(0));
    let mut wrote_length = false;
    let mut wrote_date = false;
    let mut answer_close = false;
    let mut answer_keep = false;
    for (name, value) in &parts.headers {
        match *name {
            header::CONTENT_LENGTH => {
                if wrote_length {
                    continue;
                }
                match known {
                    // No body: the length is written below, unless this answers a HEAD.
                    Some(0) if empty && !head_method => continue,
                    Some(0) if empty => {}
                    Some(n) => encoding = Encoding::Length(n),
                    None => match content_length(value.as_bytes()) {
                        Some(n) => encoding = Encoding::Length(n),
                        None => return Err(io::Error::other("a bad Content-Length in an answer")),
                    },
                }
                wrote_length = true;
            }
            header::TRANSFER_ENCODING => {
                if wrote_length || !can_chunk {
                    continue;
                }
                encoding = Encoding::Chunked;
                wrote_length = true;
                out.extend_from_slice(b"transfer-encoding: ");
                out.extend_from_slice(value.as_bytes());
                if !ends_chunked(value.as_bytes()) {
                    out.extend_from_slice(b", chunked");
                }
                out.extend_from_slice(b"\r\n");
                continue;
            }
            header::CONNECTION => {
                answer_close |= has_token(value.as_bytes(), b"close");
                answer_keep |= has_token(value.as_bytes(), b"keep-alive");
            }
            header::DATE => wrote_date = true,
            _ => {}
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !wrote_length {
        match known {
            None if can_chunk => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                encoding = Encoding::Chunked;
            }
            None if no_body => {}
            None => {
                // HTTP/1.0 with a body of unknown size: it ends where the connection does.
                encoding = Encoding::UntilClose;
                *keep_alive = false;
            }
            Some(0) => {
                if can_length && !head_method {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
            }
            Some(n) => {
                if can_length {
                    out.extend_from_slice(b"content-length: ");
                    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
    }
    if no_body {
        encoding = Encoding::Length(0);
    }
    if answer_close {
        *keep_alive = false;
    }
    if http10 {
        if *keep_alive && !answer_keep {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
    } else if !*keep_alive && !answer_close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !wrote_date {
        out.extend_from_slice(b"date: ");
        crate::observe::push_http_date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(encoding)
}

/// Sends the body of an answer framed as `encoding` after the head gathered in `out`.
async fn send_body(
    sink: Sink<'_>,
    out: &mut Vec<u8>,
    mut body: LoggedBody<'_>,
    encoding: Encoding,
    keep_alive: &mut bool,
) -> io::Result<()> {
    let Sink { wr, send } = sink;
    let mut left = match encoding {
        Encoding::Length(n) => Some(n),
        _ => None,
    };
    if left == Some(0) {
        drop(body);
        return write_all(wr, out, send).await;
    }
    let chunked = encoding == Encoding::Chunked;
    let mut ended = false;
    while !ended {
        // What the body has ready now goes out with what is gathered; only a wait for more
        // sends the gathered bytes first.
        let polled =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
        let frame = match polled {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if !out.is_empty() {
                    write_all(wr, out, send).await?;
                    out.clear();
                }
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            }
        };
        let mut data = match frame {
            None => break,
            // The answer cannot be finished: the client sees it cut short.
            Some(Err(_)) => {
                let _ = write_all(wr, out, send).await;
                return Err(io::Error::other("the answer's body failed"));
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                // Trailers are not sent over HTTP/1.1.
                _ => continue,
            },
        };
        if let Some(n) = left.as_mut() {
            if data.len() as u64 >= *n {
                // More than declared is cut; the connection is not reused after it.
                if data.len() as u64 > *n {
                    data.truncate(*n as usize);
                    *keep_alive = false;
                }
                ended = true;
            }
            *n -= data.len() as u64;
        }
        if chunked {
            let mut size = [0u8; 16];
            let hex = hex_len(data.len(), &mut size);
            out.extend_from_slice(hex);
            out.extend_from_slice(b"\r\n");
        }
        if out.len() + data.len() <= WRITE_GATHER {
            out.extend_from_slice(&data);
        } else {
            write_vectored_all(wr, &[out, &data], send).await?;
            out.clear();
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    } else if left.is_some_and(|n| n > 0) {
        // The body ended before its declared length: the client cannot tell where another
        // answer would start.
        let _ = write_all(wr, out, send).await;
        return Err(io::Error::other("the answer's body ended early"));
    }
    drop(body);
    if out.is_empty() {
        return Ok(());
    }
    write_all(wr, out, send).await
}

/// Where answers are written, and how long the client may take nothing.
#[derive(Clone, Copy)]
struct Sink<'a> {
    wr: &'a OwnedWriteHalf,
    send: Duration,
}

/// `n` in lowercase hexadecimal, written at the end of `buf`.
fn hex_len(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            return &buf[at..];
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Length(u64),
    Chunked,
    UntilClose,
}

/// The answer to a request refused before it was parsed.
fn refusal(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\nconnection: close\r\ncontent-length: 0\r\ndate: ");
    crate::observe::push_http_date(out);
    out.extend_from_slice(b"\r\n\r\n");
}

/// Writes all of `bytes`; fails when the client takes nothing for `limit`.
async fn write_all(wr: &OwnedWriteHalf, bytes: &[u8], limit: Duration) -> io::Result<()> {
    write_vectored_all(wr, &[bytes], limit).await
}

/// Writes all of `parts` in order, as few system calls as the socket allows.
async fn write_vectored_all(
    wr: &OwnedWriteHalf,
    parts: &[&[u8]],
    limit: Duration,
) -> io::Result<()> {
    let mut part = 0;
    let mut at = 0;
    while part < parts.len() {
        if at == parts[part].len() {
            part += 1;
            at = 0;
            continue;
        }
        let slices: smallvec::SmallVec<[IoSlice<'_>; 4]> = std::iter::once(&parts[part][at..])
            .chain(parts[part + 1..].iter().copied())
            .map(IoSlice::new)
            .collect();
        match wr.try_write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(mut n) => {
                while n > 0 {
                    let here = parts[part].len() - at;
                    if n < here {
                        at += n;
                        n = 0;
                    } else {
                        n -= here;
                        part += 1;
                        at = 0;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match tokio::time::timeout(limit, wr.writable()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Err(io::ErrorKind::TimedOut.into()),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// For the `request_head` fuzz target: any bytes give a head, "not yet" or a refusal, never a
/// panic; a head takes no more bytes than given, and its body's decoder no more than follow it.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let Ok(Some(head)) = parse(&mut buf) else {
        return;
    };
    assert!(buf.len() < data.len());
    let mut decoder = Decoder::new(head.framing);
    let after_head = buf.len();
    let mut data_bytes = 0;
    // The rest arrives in pieces of 7 bytes, as reads may cut it anywhere.
    let rest = buf.split();
    for piece in rest.chunks(7) {
        buf.extend_from_slice(piece);
        while let Ok(Some(data)) = decoder.step(&mut buf) {
            data_bytes += data.len();
        }
    }
    assert!(data_bytes <= after_head);
    assert!(decoder.extra_bytes <= CHUNK_EXTRAS_MAX + 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<Head>, Refusal> {
        parse(&mut BytesMut::from(text.as_bytes()))
    }

    fn refused(text: &str) -> StatusCode {
        match head(text) {
            Err(Refusal::Answer(status)) => status,
            Err(Refusal::Close) => panic!("closed: {text:?}"),
            Ok(_) => panic!("taken: {text:?}"),
        }
    }

    #[test]
    fn heads_are_read_with_their_framing_and_connection() {
        let mut buf = BytesMut::from(
            &b"GET /a/b?c=d HTTP/1.1\r\nHost: x\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET /next"[..],
        );
        let h = parse(&mut buf).unwrap().unwrap();
        assert_eq!(h.req.method(), Method::GET);
        assert_eq!(h.req.uri(), "/a/b?c=d");
        assert_eq!(h.req.version(), Version::HTTP_11);
        let twos: Vec<_> = h.req.headers().get_all("x-two").iter().collect();
        assert_eq!(twos, ["1", "2"]);
        assert_eq!(h.framing, Framing::Length(0));
        assert!(h.keep_alive && !h.expect_continue);
        // What follows the head stays for the next request.
        assert_eq!(&buf[..], b"GET /next");
        assert!(parse(&mut buf).unwrap().is_none());

        let h = head("POST / HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-Continue\r\nConnection: x, Close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.expect_continue && !h.keep_alive);
        let h = head("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        assert_eq!(h.req.version(), Version::HTTP_10);
        let h = head("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        // The same length twice is one length.
        let h = head("POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(2));
        assert_eq!(h.req.headers().get_all("content-length").iter().count(), 1);
    }

    #[test]
    fn chunked_wins_over_a_length_which_is_dropped_and_the_connection_closed() {
        for text in [
            "POST / HTTP/1.1\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n",
        ] {
            let h = head(text).unwrap().unwrap();
            assert_eq!(h.framing, Framing::Chunked, "{text:?}");
            assert!(!h.keep_alive, "{text:?}");
            assert!(h.req.headers().get("content-length").is_none(), "{text:?}");
        }
    }

    #[test]
    fn malformed_heads_are_refused_as_hyper_refuses_them() {
        let bad = StatusCode::BAD_REQUEST;
        for (text, status) in [
            (
                "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                bad,
            ),
            ("POST / HTTP/1.1\r\nContent-Length: +2\r\n\r\n", bad),
            ("POST / HTTP/1.1\r\nContent-Length: 2x\r\n\r\n", bad),
            ("POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", bad),
            (
                "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                bad,
            ),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", bad),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
                bad,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
                bad,
            ),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", bad),
            ("GET / HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n", bad),
            ("GET / HTTP/1.1\r\nHost : x\r\n\r\n", bad),
            ("GET / HTTP/1.1\r\nX-Bad: a\0b\r\n\r\n", bad),
            ("GET / HTTP/1.7\r\n\r\n", bad),
            ("GET  / HTTP/1.1\r\n\r\n", bad),
            ("G\x01T / HTTP/1.1\r\n\r\n", bad),
        ] {
            assert_eq!(refused(text), status, "{text:?}");
        }
        let many: String = (0..=FIELDS_MAX).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            refused(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(TARGET_MAX));
        assert_eq!(refused(&long), StatusCode::URI_TOO_LONG);
        assert_eq!(
            head("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").err(),
            Some(Refusal::Close)
        );
    }

    #[test]
    fn field_lists_and_lengths_read_alike_for_requests_and_answers() {
        assert!(ends_chunked(b"gzip, Chunked "));
        assert!(ends_chunked(b"chunked"));
        for not in [&b"chunked, gzip"[..], b"", b"chunkedx", b"gzip,"] {
            assert!(!ends_chunked(not), "{}", String::from_utf8_lossy(not));
        }
        assert!(has_token(b"Upgrade, close", b"close"));
        assert!(has_token(b"keep-alive ,x", b"keep-alive"));
        assert!(!has_token(b"closed, , x", b"close"));
        assert_eq!(content_length(b"\t42 "), Some(42));
        assert_eq!(content_length(&[b'9'; 19]), Some(9_999_999_999_999_999_999));
        assert_eq!(content_length(b"18446744073709551616"), None);
        assert_eq!(content_length(b"4 2"), None);
    }

    /// The head `encode_head` writes (its `date` line dropped), the framing, and whether the
    /// connection stays open.
    fn answer_head(
        status: u16,
        fields: &[(&str, &str)],
        size: (bool, Option<u64>),
        request: (&Method, Version),
        keep_alive: bool,
    ) -> Result<(String, Encoding, bool), String> {
        let mut answer = Response::builder().status(status);
        for (name, value) in fields {
            answer = answer.header(*name, *value);
        }
        let (parts, ()) = answer.body(()).unwrap().into_parts();
        let mut out = Vec::new();
        let mut keep = keep_alive;
        let size = BodySize {
            empty: size.0,
            exact: size.1,
        };
        let encoding = encode_head(&mut out, &parts, size, request.0, request.1, &mut keep)
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8(out).unwrap();
        let dated = text.lines().filter(|l| l.starts_with("date: ")).count();
        assert_eq!(dated, 1, "{text}");
        let text = text
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with("date: "))
            .collect();
        Ok((text, encoding, keep))
    }

    #[test]
    fn answer_heads_are_framed_as_hyper_frames_them() {
        let get = (&Method::GET, Version::HTTP_11);
        let get10 = (&Method::GET, Version::HTTP_10);
        let head = (&Method::HEAD, Version::HTTP_11);
        let unknown = (false, None);
        let known = (false, Some(5));
        let none = (true, Some(0));
        let ok = |status, fields: &[(&str, &str)], size, request, keep| {
            answer_head(status, fields, size, request, keep).unwrap()
        };
        type Framed = (String, Encoding, bool);
        let cases: Vec<(Framed, (&str, Encoding, bool))> = vec![
            (
                ok(200, &[], known, get, true),
                (
                    "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                    Encoding::Length(5),
                    true,
                ),
            ),
            (
                ok(201, &[("x-a", "1")], unknown, get, true),
                (
                    "HTTP/1.1 201 Created\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n",
                    Encoding::Chunked,
                    true,
                ),
            ),
            // The answer's own coding keeps its place, `chunked` added last.
            (
                ok(200, &[("transfer-encoding", "gzip")], unknown, get, true),
                (
                    "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
                    Encoding::Chunked,
                    true,
                ),
            ),
            (
                ok(
                    200,
                    &[("transfer-encoding", "gzip, chunked")],
                    unknown,
                    get,
                    true,
                ),
                (
                    "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
                    Encoding::Chunked,
                    true,
                ),
            ),
            // HTTP/1.0, unknown length: the body ends with the connection, kept alive or not.
            (
                ok(200, &[], unknown, get10, true),
                ("HTTP/1.0 200 OK\r\n\r\n", Encoding::UntilClose, false),
            ),
            (
                ok(200, &[("transfer-encoding", "gzip")], unknown, get10, true),
                ("HTTP/1.0 200 OK\r\n\r\n", Encoding::UntilClose, false),
            ),
            (
                ok(200, &[], known, get10, true),
                (
                    "HTTP/1.0 200 OK\r\ncontent-length: 5\r\nconnection: keep-alive\r\n\r\n",
                    Encoding::Length(5),
                    true,
                ),
            ),
            // HEAD: the length a GET would get, no body.
            (
                ok(200, &[], known, head, true),
                (
                    "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                    Encoding::Length(0),
                    true,
                ),
            ),
            (
                ok(200, &[("content-length", "7")], none, head, true),
                (
                    "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n",
                    Encoding::Length(0),
                    true,
                ),
            ),
            (
                ok(200, &[], unknown, head, true),
                ("HTTP/1.1 200 OK\r\n\r\n", Encoding::Length(0), true),
            ),
            // 204 and 304: no length, no body.
            (
                ok(204, &[("content-length", "0")], none, get, true),
                ("HTTP/1.1 204 No Content\r\n\r\n", Encoding::Length(0), true),
            ),
            (
                ok(304, &[], known, get, true),
                (
                    "HTTP/1.1 304 Not Modified\r\n\r\n",
                    Encoding::Length(0),
                    true,
                ),
            ),
            (
                ok(200, &[], none, get, true),
                (
                    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
                    Encoding::Length(0),
                    true,
                ),
            ),
            // The connection's end, said once.
            (
                ok(200, &[("connection", "close")], known, get, true),
                (
                    "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 5\r\n\r\n",
                    Encoding::Length(5),
                    false,
                ),
            ),
            (
                ok(200, &[], known, get, false),
                (
                    "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\n",
                    Encoding::Length(5),
                    false,
                ),
            ),
            (
                ok(200, &[("content-length", "9")], unknown, get, true),
                (
                    "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n",
                    Encoding::Length(9),
                    true,
                ),
            ),
        ];
        for (i, (got, (text, encoding, keep))) in cases.into_iter().enumerate() {
            assert_eq!(got, (text.to_string(), encoding, keep), "case {i}");
        }
        assert!(answer_head(200, &[("content-length", "x")], unknown, get, true).is_err());
    }

    /// Decodes `wire` fed `step` bytes at a time: the data, then what is left after the body.
    fn decode(framing: Framing, wire: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), String> {
        let mut d = Decoder::new(framing);
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        for piece in wire.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some(bytes) = d.step(&mut buf).map_err(|e| e.to_string())? {
                data.extend_from_slice(&bytes);
            }
            if d.decode == Decode::Done {
                break;
            }
        }
        if d.decode != Decode::Done {
            return Err("unfinished".into());
        }
        Ok((data, buf.to_vec()))
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_reads_and_stop_at_their_end() {
        let wire =
            b"3\r\nhel\r\n2;name=value\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        for step in [1, 2, 3, 7, wire.len()] {
            let (data, rest) = decode(Framing::Chunked, wire, step).unwrap();
            assert_eq!(data, b"hello", "step {step}");
            // The trailers are dropped; the bytes read after the body stay for the next head.
            assert!(
                b"GET / HTTP/1.1\r\n\r\n".starts_with(&rest),
                "step {step}: {:?}",
                String::from_utf8_lossy(&rest)
            );
        }
        let (data, rest) = decode(Framing::Length(5), b"helloGET", 8).unwrap();
        assert_eq!((&data[..], &rest[..]), (&b"hello"[..], &b"GET"[..]));
        let (data, _) = decode(Framing::Chunked, b"A\r\n0123456789\r\n0\r\n\r\n", 4).unwrap();
        assert_eq!(data, b"0123456789");
        // Many small chunks are a body like another: only extensions and trailers are capped.
        let mut many = b"1\r\na\r\n".repeat(20_000);
        many.extend_from_slice(b"0\r\n\r\n");
        let (data, _) = decode(Framing::Chunked, &many, 4096).unwrap();
        assert_eq!(data.len(), 20_000);
    }

    #[test]
    fn malformed_chunks_are_errors() {
        for wire in [
            &b"ffffffffffffffffff\r\nab\r\n0\r\n\r\n"[..],
            // Stricter than hyper: more than 16 digits, even when they are leading zeros.
            b"00000000000000002\r\nab\r\n0\r\n\r\n",
            b"\r\n",
            b"x\r\n",
            b"3\nabc\r\n0\r\n\r\n",
            b"3\r\nabcd\r\n0\r\n\r\n",
            b"3\r\nabc\n0\r\n\r\n",
            b"3;a\nabc\r\n0\r\n\r\n",
            b"0\r\nX: a\nY: b\r\n\r\n",
            b"0\r\n\r\r\n",
        ] {
            assert!(
                decode(Framing::Chunked, wire, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
        // Endless extensions or trailers are cut.
        let mut endless = b"1;".to_vec();
        endless.extend(std::iter::repeat_n(b'a', CHUNK_EXTRAS_MAX));
        endless.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert!(decode(Framing::Chunked, &endless, 512).is_err());
        let mut trailers = b"0\r\n".to_vec();
        for i in 0..2000 {
            trailers.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        trailers.extend_from_slice(b"\r\n");
        assert!(decode(Framing::Chunked, &trailers, 512).is_err());
    }

    /// A connected pair on loopback: the gateway's read side, and the client.
    async fn pair() -> (Reader, tokio::net::TcpStream, OwnedWriteHalf) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (served, _) = listener.accept().await.unwrap();
        let (io, wr) = served.into_split();
        let reader = Reader {
            io,
            buf: BytesMut::new(),
        };
        (reader, client, wr)
    }

    #[tokio::test]
    async fn heads_too_large_silent_or_stopped_end_the_connection() {
        use tokio::io::AsyncWriteExt;
        let stop = Stopping::default();
        let limit = Duration::from_secs(5);
        // A head that never ends, past the limit: 431.
        let (mut reader, mut client, _wr) = pair().await;
        let mut waits = Waits::new(limit, &stop);
        let feed = tokio::spawn(async move {
            let _ = client.write_all(b"GET / HTTP/1.1\r\n").await;
            let field = format!("X-Big: {}\r\n", "a".repeat(4000));
            for _ in 0..120 {
                if client.write_all(field.as_bytes()).await.is_err() {
                    break;
                }
            }
            client
        });
        let got = read_head(&mut reader, limit, &mut waits).await.err();
        assert_eq!(
            got,
            Some(Refusal::Answer(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE))
        );
        drop(feed.await);
        // Silence past the head timeout: closed.
        let (mut reader, _client, _wr) = pair().await;
        let quick = Duration::from_millis(200);
        let mut waits = Waits::new(quick, &stop);
        let started = std::time::Instant::now();
        assert_eq!(
            read_head(&mut reader, quick, &mut waits).await.err(),
            Some(Refusal::Close)
        );
        assert!(started.elapsed() >= quick);
        // Half a head, then silence: closed too.
        let (mut reader, mut client, _wr) = pair().await;
        client.write_all(b"GET / HTTP/1.1\r\nHost:").await.unwrap();
        let mut waits = Waits::new(quick, &stop);
        assert_eq!(
            read_head(&mut reader, quick, &mut waits).await.err(),
            Some(Refusal::Close)
        );
        // An idle connection when the gateway stops: closed at once, well before the timeout.
        let stop = std::sync::Arc::new(Stopping::default());
        let (mut reader, _client, _wr) = pair().await;
        let mut waits = Waits::new(limit, &stop);
        let started = std::time::Instant::now();
        let stopper = stop.clone();
        let stopping = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            stopper.stop();
        });
        assert_eq!(
            read_head(&mut reader, limit, &mut waits).await.err(),
            Some(Refusal::Close)
        );
        assert!(started.elapsed() < limit);
        stopping.await.unwrap();
        // A connection that comes to wait after the stop closes at once too.
        let (mut reader, _client, _wr) = pair().await;
        let mut waits = Waits::new(limit, &stop);
        assert_eq!(
            read_head(&mut reader, limit, &mut waits).await.err(),
            Some(Refusal::Close)
        );
    }

    #[tokio::test]
    async fn a_100_continue_waits_for_a_client_that_reads_nothing_yet() {
        use http_body_util::BodyExt;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (reader, mut client, wr) = pair().await;
        // Earlier answers the client has not read fill the socket.
        let mut unread = 0usize;
        loop {
            match wr.try_write(&[b'x'; 65536]) {
                Ok(n) => unread += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        let (tx, _rx) = tokio::sync::oneshot::channel();
        let body = Streaming {
            reader: Some(reader),
            decoder: Decoder::new(Framing::Length(3)),
            expect: Some(Arc::new(wr)),
            back: Some(tx),
        };
        let read = tokio::spawn(async move { body.collect().await.map(|b| b.to_bytes()) });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !read.is_finished(),
            "the body failed or ended without its bytes"
        );
        // The client reads what was owed, then the interim answer, then sends the body.
        let mut owed = vec![0u8; unread];
        client.read_exact(&mut owed).await.unwrap();
        let mut interim = [0u8; 25];
        client.read_exact(&mut interim).await.unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        client.write_all(b"abc").await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), read).await;
        assert_eq!(&got.unwrap().unwrap().unwrap()[..], b"abc");
    }

    #[test]
    fn chunk_sizes_are_written_in_hex() {
        let mut buf = [0u8; 16];
        assert_eq!(hex_len(0, &mut buf), b"0");
        assert_eq!(hex_len(255, &mut buf), b"ff");
        assert_eq!(hex_len(0x1_0000, &mut buf), b"10000");
    }
}
