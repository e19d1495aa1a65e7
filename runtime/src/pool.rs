//! The `http` integration's client: pooled keep-alive HTTP/1.1 connections to upstreams,
//! `http://` or `https://` (rustls).
//!
//! The exchange runs inside the request's own task: the request head (and a body that is already
//! whole) leaves in one write, the answer's head is parsed with `httparse` from the connection's
//! read buffer, and its body is read from that buffer as the client reads it. No task, channel or
//! wake-up sits between a request and its connection, as with nginx's upstream module.
//!
//! - A connection goes back to the pool when the answer's body has been read to its end and
//!   both sides allow keep-alive (no `Connection: close`, HTTP/1.1 or an HTTP/1.0 keep-alive),
//!   so a request never waits behind another's body. An answer whose body came with its head
//!   gives the connection back before the answer is returned.
//! - Answer bodies are framed by RFC 9112 §6.3: none for `HEAD`, 1xx, 204 and 304; chunked;
//!   `Content-Length`; or until the upstream closes (that connection is not reused). Interim
//!   1xx answers are skipped. Chunk extensions and trailers are read and dropped.
//! - A request body of known size goes with `Content-Length`, any other with chunked encoding.
//! - A pooled connection that became readable while idle (the upstream closed it, or sent
//!   something unasked) is dropped when taken, at no cost of a system call. A request without a
//!   body, of an idempotent method (RFC 9110 §9.2.2: not POST or PATCH), that fails on a reused
//!   connection before any answer byte (the upstream closed it just then) is sent again on
//!   another; any other is not, since the upstream may have acted on it.
//! - `Content-Length` is digits only (RFC 9110 §8.6): `+5`, `0x5`, `5 5` end the exchange with
//!   an error (502) and the connection is not reused.
//! - Idle connections live 60 s, at most 256 per upstream, for up to 64 upstreams. Heads over
//!   64 KiB or with more than 100 header fields are refused.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::{Buf, Bytes, BytesMut};
use http::uri::{Authority, Scheme};
use http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::h1;
use crate::tls::Connector;

const IDLE_FOR: Duration = Duration::from_secs(60);
const IDLE_MAX: usize = 256;
const UPSTREAMS_MAX: usize = 64;
const HEAD_MAX: usize = 64 * 1024;
const HEADERS_MAX: usize = 100;
/// How much a read asks for at least.
const READ_CHUNK: usize = 16 * 1024;
/// A request body whose first frame is whole and at most this big leaves with the head.
const COALESCE_MAX: usize = 64 * 1024;

type Key = (Scheme, Authority);
type Io = TokioIo<hyper_rustls::MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>>;

/// One connection to an upstream, with the bytes read from it and not yet used. Held boxed: a
/// TLS stream is over a kilobyte, and a connection moves in and out of the pool per request.
struct Conn {
    io: Io,
    read: BytesMut,
    write: Vec<u8>,
    /// The thread that opened it ([`crate::percore::serial`]): with a runtime per thread, the
    /// only one whose runtime drives its socket.
    home: u64,
}

impl Conn {
    /// Whether the upstream closed it or sent something while it was idle. Plain TCP only: a
    /// TLS connection may rightly have session tickets waiting.
    fn became_readable(&self) -> bool {
        if let hyper_rustls::MaybeHttpsStream::Http(tcp) = self.io.inner() {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            return tcp.inner().poll_read_ready(&mut cx).is_ready();
        }
        false
    }

    /// Reads more of the upstream's bytes into the buffer; `Ok(0)` at the end of the stream.
    async fn fill(&mut self) -> io::Result<usize> {
        self.read.reserve(READ_CHUNK);
        self.io.read_buf(&mut self.read).await
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.read.reserve(READ_CHUNK);
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read)
    }
}

struct Idle {
    conn: Box<Conn>,
    /// When it went idle, on [`crate::deadline::coarse_ms`]'s clock.
    since: u64,
}

/// The pool.
pub struct Pool {
    connector: Connector,
    /// Idle connections by upstream, in shards: a thread puts back into its own shard and takes
    /// from it first, so cores do not take turns at one lock; when its shard has none, the
    /// others are tried without waiting. A gateway talks to a handful of upstreams: a list
    /// scanned in order beats hashing the authority twice per request.
    idle: [Mutex<IdleLists>; POOL_SHARDS],
    /// Each serving thread runs an async runtime of its own (`GWGEN_RUNTIME=per_core`): a
    /// connection then stays with the thread that opened it, whose runtime drives its socket.
    /// Set once before serving, read after.
    per_thread: std::sync::atomic::AtomicBool,
    /// `protocol: http2`: requests go through hyper's HTTP/2 client instead (one multiplexed
    /// connection per upstream; h2 by ALPN over TLS, h2c with prior knowledge over TCP).
    #[cfg(feature = "http2")]
    h2: Option<H2Client>,
}

#[cfg(feature = "http2")]
type H2Client = hyper_util::client::legacy::Client<Connector, Body>;

/// One shard's idle connections, by upstream.
type IdleLists = Vec<(Key, Vec<Idle>)>;

/// Shards of the idle connections; a thread uses the one of its [`crate::percore::slot`].
const POOL_SHARDS: usize = crate::percore::SLOTS;

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish()
    }
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum Error {
    /// The URL is not absolute `http(s)://`.
    Url,
    /// Connecting failed.
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// Reading or writing the connection failed.
    Io(io::Error),
    /// The upstream closed the connection before its answer was whole.
    Closed,
    /// The upstream's answer is not HTTP/1.x as RFC 9112 has it.
    Protocol(&'static str),
    /// The request's body failed (a size limit, or the client went away).
    Body(Box<dyn std::error::Error + Send + Sync>),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Url => f.write_str("the upstream URL is not absolute"),
            Error::Connect(e) => write!(f, "connect: {e}"),
            Error::Io(e) => write!(f, "{e}"),
            Error::Closed => f.write_str("the upstream closed the connection"),
            Error::Protocol(what) => write!(f, "the upstream's answer is malformed: {what}"),
            Error::Body(e) => write!(f, "request body: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect(e) | Error::Body(e) => Some(&**e),
            Error::Io(e) => Some(e),
            Error::Url | Error::Closed | Error::Protocol(_) => None,
        }
    }
}

/// Whether a request of this method may be sent again after a failure (RFC 9110 §9.2.2).
pub(crate) fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

/// An exchange that failed, and whether the request may go again on another connection.
struct Failed {
    error: Error,
    /// Nothing of the request body was used and no answer byte came.
    untouched: bool,
}

impl Pool {
    /// A pool that connects with `connector`.
    pub fn new(connector: Connector) -> Arc<Pool> {
        Arc::new(Pool {
            connector,
            idle: std::array::from_fn(|_| Mutex::new(Vec::new())),
            per_thread: std::sync::atomic::AtomicBool::new(false),
            #[cfg(feature = "http2")]
            h2: None,
        })
    }

    /// A pool that speaks HTTP/2 only, over connections `connector` makes (which offers
    /// only `h2` by ALPN on TLS; plain TCP is h2c with prior knowledge, RFC 9113 §3.3).
    #[cfg(feature = "http2")]
    pub fn http2(connector: Connector) -> Arc<Pool> {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .pool_idle_timeout(IDLE_FOR)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .http2_keep_alive_timeout(Duration::from_secs(20))
                .build(connector.clone());
        Arc::new(Pool {
            connector,
            idle: std::array::from_fn(|_| Mutex::new(Vec::new())),
            per_thread: std::sync::atomic::AtomicBool::new(false),
            h2: Some(client),
        })
    }

    /// Whether requests go over HTTP/2.
    pub(crate) fn is_http2(&self) -> bool {
        #[cfg(feature = "http2")]
        return self.h2.is_some();
        #[cfg(not(feature = "http2"))]
        false
    }

    /// Says that each serving thread runs an async runtime of its own: from now on a
    /// connection is only lent to the thread that opened it.
    #[cfg(unix)]
    pub(crate) fn keep_connections_per_thread(&self) {
        self.per_thread
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn take(&self, key: &Key) -> Option<Box<Conn>> {
        let own = crate::percore::slot();
        if self.per_thread.load(std::sync::atomic::Ordering::Relaxed) {
            return self.take_own(own, key);
        }
        for n in 0..POOL_SHARDS {
            let shard = &self.idle[(own + n) % POOL_SHARDS];
            let mut idle = if n == 0 {
                shard.lock().unwrap_or_else(|e| e.into_inner())
            } else {
                match shard.try_lock() {
                    Ok(idle) => idle,
                    Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => continue,
                }
            };
            let Some((_, list)) = idle.iter_mut().find(|(k, _)| k == key) else {
                continue;
            };
            let now = crate::deadline::coarse_ms();
            while let Some(i) = list.pop() {
                let fresh = now.saturating_sub(i.since) < IDLE_FOR.as_millis() as u64;
                if fresh && !i.conn.became_readable() {
                    return Some(i.conn);
                }
            }
        }
        None
    }

    /// [`Pool::take`] with a runtime per thread: a connection this thread opened, from its
    /// own shard (a thread's socket is driven by its runtime, so it is never lent to another).
    fn take_own(&self, own: usize, key: &Key) -> Option<Box<Conn>> {
        let me = crate::percore::serial();
        let mut idle = self.idle[own].lock().unwrap_or_else(|e| e.into_inner());
        let (_, list) = idle.iter_mut().find(|(k, _)| k == key)?;
        let now = crate::deadline::coarse_ms();
        while let Some(at) = list.iter().rposition(|i| i.conn.home == me) {
            let i = list.remove(at);
            let fresh = now.saturating_sub(i.since) < IDLE_FOR.as_millis() as u64;
            if fresh && !i.conn.became_readable() {
                return Some(i.conn);
            }
        }
        None
    }

    fn put(&self, key: Key, conn: Box<Conn>) {
        let own = crate::percore::slot();
        let mut idle = self.idle[own].lock().unwrap_or_else(|e| e.into_inner());
        let at = match idle.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            // Past this many upstreams (a URL template that puts a parameter in the host), new
            // ones are not pooled: the scan stays short.
            None if idle.len() >= UPSTREAMS_MAX => return,
            None => {
                idle.push((key, Vec::new()));
                idle.len() - 1
            }
        };
        let list = &mut idle[at].1;
        if list.len() < IDLE_MAX {
            list.push(Idle {
                conn,
                since: crate::deadline::coarse_ms(),
            });
        }
    }

    async fn connect(&self, uri: &Uri) -> Result<Box<Conn>, Error> {
        use tower_service::Service;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(Error::Connect)?;
        let io = connector.call(uri.clone()).await.map_err(Error::Connect)?;
        Ok(Box::new(Conn {
            io: TokioIo::new(io),
            read: BytesMut::with_capacity(READ_CHUNK),
            write: Vec::with_capacity(1024),
            home: crate::percore::serial(),
        }))
    }

    /// Sends `req` (with an absolute URI) and returns the answer, whose body gives the
    /// connection back to the pool when it ends. The answer's head comes without hop-by-hop
    /// fields, nor those its `Connection` names.
    pub async fn request<B>(self: &Arc<Self>, req: Request<B>) -> Result<Response<Body>, Error>
    where
        B: http_body::Body<Data = Bytes> + Unpin + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        #[cfg(feature = "http2")]
        if let Some(h2) = &self.h2 {
            // hyper's HTTP/2 client answers a failed request body with a stream reset and keeps
            // the body's own error to itself: the body notes it here.
            let failure = Arc::new(Mutex::new(None));
            let req = req.map(|inner| {
                Body::new(Noting {
                    inner,
                    failure: failure.clone(),
                })
            });
            return match h2.request(req).await {
                Ok(resp) => Ok(resp.map(Body::new)),
                Err(e) => {
                    let noted = failure.lock().unwrap_or_else(|e| e.into_inner()).take();
                    Err(match noted {
                        Some(body) => Error::Body(body),
                        None => h2_error(e),
                    })
                }
            };
        }
        let (parts, mut body) = req.into_parts();
        let (Some(scheme), Some(authority)) =
            (parts.uri.scheme().cloned(), parts.uri.authority().cloned())
        else {
            return Err(Error::Url);
        };
        let key = (scheme, authority);
        loop {
            let (mut conn, reused) = match self.take(&key) {
                Some(c) => (c, true),
                None => (self.connect(&parts.uri).await?, false),
            };
            match exchange(&mut conn, &parts, &key.1, &mut body).await {
                Ok((head, framing)) => {
                    // The request's fields are written: its table serves the next head.
                    crate::percore::spare_header_table(parts.headers);
                    return Ok(self.answer(conn, key, head, framing));
                }
                Err(f) if reused && f.untouched && idempotent(&parts.method) => continue,
                Err(f) => return Err(f.error),
            }
        }
    }

    /// The answer: its body taken from the buffer when it is all there, else read as the
    /// client reads it.
    fn answer(
        self: &Arc<Self>,
        mut conn: Box<Conn>,
        key: Key,
        head: http::response::Parts,
        framing: Framing,
    ) -> Response<Body> {
        let body = match framing.kind {
            Kind::Length(0) => {
                self.release(conn, key, framing.reusable);
                Body::empty()
            }
            Kind::Length(n) if conn.read.len() as u64 >= n => {
                let bytes = conn.read.split_to(n as usize).freeze();
                self.release(conn, key, framing.reusable);
                Body::from(bytes)
            }
            kind => Body::new(Upstream {
                conn: Some(conn),
                kind,
                back: framing.reusable.then(|| (self.clone(), key)),
            }),
        };
        Response::from_parts(head, body)
    }

    fn release(&self, conn: Box<Conn>, key: Key, reusable: bool) {
        // Bytes past the answer's end mean the upstream and the gateway disagree on framing:
        // that connection is not trusted again.
        if reusable && conn.read.is_empty() {
            self.put(key, conn);
        }
    }
}

/// What a failed HTTP/2 exchange is, in the terms of the HTTP/1.1 client's errors (a failure
/// of the request body itself is noted by [`Noting`]).
#[cfg(feature = "http2")]
fn h2_error(e: hyper_util::client::legacy::Error) -> Error {
    if e.is_connect() {
        return Error::Connect(Box::new(e));
    }
    Error::Io(io::Error::other(e))
}

/// A request body that keeps its own error (a size limit, a client that stalled or went away)
/// for the exchange to report, and gives the HTTP/2 client a stand-in.
#[cfg(feature = "http2")]
struct Noting<B> {
    inner: B,
    failure: Arc<Mutex<Option<Box<dyn std::error::Error + Send + Sync>>>>,
}

#[cfg(feature = "http2")]
impl<B> http_body::Body for Noting<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => {
                *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.into());
                Poll::Ready(Some(Err(io::Error::other("the request body failed"))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// How an answer's body is delimited, and whether its connection may serve again.
struct Framing {
    kind: Kind,
    reusable: bool,
}

enum Kind {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

#[derive(Clone, Copy)]
enum Chunked {
    Size,
    Data(u64),
    DataEnd,
    /// Trailer fields, with the bytes of them read so far.
    Trailers(usize),
}

/// Most interim (1xx) answers taken before the final one; more is a flood: 502.
const INTERIM_MAX: u32 = 16;

/// Writes the request and reads the answer's head.
async fn exchange<B>(
    conn: &mut Conn,
    parts: &http::request::Parts,
    authority: &Authority,
    body: &mut B,
) -> Result<(http::response::Parts, Framing), Failed>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let untouched = |error| Failed {
        error,
        untouched: true,
    };
    let used = |error| Failed {
        error,
        untouched: false,
    };
    let empty = http_body::Body::is_end_stream(body);
    let chunked = match http_body::Body::size_hint(body).exact() {
        _ if empty => {
            encode_head(&mut conn.write, parts, authority, Some(0));
            false
        }
        Some(n) => {
            encode_head(&mut conn.write, parts, authority, Some(n));
            false
        }
        None => {
            encode_head(&mut conn.write, parts, authority, None);
            true
        }
    };
    if empty {
        conn.io
            .write_all(&conn.write)
            .await
            .map_err(|e| untouched(Error::Io(e)))?;
    } else {
        send_body(conn, body, chunked).await.map_err(used)?;
    }
    conn.io
        .flush()
        .await
        .map_err(|e| Failed::from_io(e, empty))?;
    let head_method = parts.method == Method::HEAD;
    let mut got_any = false;
    let mut interim = 0;
    loop {
        if let Some(parsed) = parse_head(&mut conn.read, head_method, &mut interim).map_err(used)? {
            return Ok(parsed);
        }
        if conn.read.len() > HEAD_MAX {
            return Err(used(Error::Protocol("the head is over 64 KiB")));
        }
        match conn.fill().await {
            Ok(0) if !got_any && conn.read.is_empty() => {
                return Err(Failed {
                    error: Error::Closed,
                    untouched: empty,
                })
            }
            Ok(0) => return Err(used(Error::Closed)),
            Ok(_) => got_any = true,
            Err(e) if !got_any => return Err(Failed::from_io(e, empty)),
            Err(e) => return Err(used(Error::Io(e))),
        }
    }
}

impl Failed {
    fn from_io(e: io::Error, empty: bool) -> Failed {
        Failed {
            error: Error::Io(e),
            untouched: empty,
        }
    }
}

/// The request line and header fields, `Host` first, framed by `length` (`None`: chunked).
/// Framing fields of the incoming request are not copied: this hop frames its own body.
fn encode_head(
    out: &mut Vec<u8>,
    parts: &http::request::Parts,
    authority: &Authority,
    length: Option<u64>,
) {
    out.clear();
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    match parts.uri.path_and_query() {
        Some(pq) if !pq.as_str().is_empty() => out.extend_from_slice(pq.as_str().as_bytes()),
        _ => out.push(b'/'),
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(authority.as_str().as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match length {
        // A request without a body says so only where its method usually has one.
        Some(0)
            if matches!(
                parts.method,
                Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::TRACE
            ) => {}
        Some(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        None => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes the head and the body, one write per frame: the pending bytes (the head, then each
/// chunk's framing) go out with the frame's data when it is small, so a body that is whole in its
/// first frame leaves with the head in one write.
async fn send_body<B>(conn: &mut Conn, body: &mut B, chunked: bool) -> Result<(), Error>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Body(e.into()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers of the client's request are not forwarded
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            push_chunk_size(&mut conn.write, data.len());
        }
        if data.len() <= COALESCE_MAX {
            conn.write.extend_from_slice(&data);
        } else {
            write_pending(conn).await?;
            conn.io.write_all(&data).await.map_err(Error::Io)?;
        }
        if chunked {
            conn.write.extend_from_slice(b"\r\n");
        }
        if http_body::Body::is_end_stream(body) {
            break;
        }
        write_pending(conn).await?;
    }
    if chunked {
        conn.write.extend_from_slice(b"0\r\n\r\n");
    }
    write_pending(conn).await
}

/// Writes the bytes waiting in the connection's write buffer.
async fn write_pending(conn: &mut Conn) -> Result<(), Error> {
    if !conn.write.is_empty() {
        conn.io.write_all(&conn.write).await.map_err(Error::Io)?;
        conn.write.clear();
    }
    Ok(())
}

fn push_chunk_size(out: &mut Vec<u8>, n: usize) {
    use std::io::Write;
    let _ = write!(out, "{n:x}\r\n");
}

/// Parses an answer's head from the front of `buf`, skipping interim (1xx) answers, of which
/// `interim` counts those already skipped (at most [`INTERIM_MAX`]). `None`: the head is not
/// whole yet.
fn parse_head(
    buf: &mut BytesMut,
    head_method: bool,
    interim: &mut u32,
) -> Result<Option<(http::response::Parts, Framing)>, Error> {
    loop {
        let mut fields = [const { std::mem::MaybeUninit::uninit() }; HEADERS_MAX];
        let mut parsed = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut parsed,
            buf,
            &mut fields,
        ) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Error::Protocol("more than 100 header fields"))
            }
            Err(_) => return Err(Error::Protocol("the head does not parse")),
        };
        let code = parsed.code.unwrap_or(0);
        let status = StatusCode::from_u16(code).map_err(|_| Error::Protocol("bad status code"))?;
        if status.is_informational() {
            if code == 101 {
                return Err(Error::Protocol("an upgrade that was not asked for"));
            }
            *interim += 1;
            if *interim > INTERIM_MAX {
                return Err(Error::Protocol("more than 16 interim answers"));
            }
            buf.advance(len);
            continue;
        }
        let http10 = parsed.version == Some(0);
        // Room for what the pipeline adds, so the table does not grow on the way back.
        let mut headers = crate::percore::header_table(
            parsed.headers.len() + crate::pipeline::ANSWER_FIELDS_ADDED,
        );
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut coded = false;
        let mut close = http10;
        let base = buf.as_ptr() as usize;
        let mut spans: smallvec::SmallVec<[(HeaderName, usize, usize); 16]> =
            smallvec::SmallVec::new();
        let mut hop_named: smallvec::SmallVec<[HeaderName; 2]> = smallvec::SmallVec::new();
        for f in parsed.headers.iter() {
            let name = HeaderName::from_bytes(f.name.as_bytes())
                .map_err(|_| Error::Protocol("bad header name"))?;
            if name == header::CONTENT_LENGTH {
                let n = h1::content_length(f.value).ok_or(Error::Protocol("bad Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(Error::Protocol("conflicting Content-Length"));
                }
                length = Some(n);
            } else if name == header::TRANSFER_ENCODING {
                coded = true;
                chunked = h1::ends_chunked(f.value);
            } else if name == header::CONNECTION {
                for token in h1::tokens(f.value) {
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") {
                        if http10 {
                            close = false;
                        }
                    } else if let Ok(named) = HeaderName::from_bytes(token) {
                        hop_named.push(named);
                    }
                }
            }
            // Hop-by-hop fields belong to this connection: the answer never carries them.
            if crate::integration::is_hop_by_hop(&name) {
                continue;
            }
            let start = f.value.as_ptr() as usize - base;
            spans.push((name, start, start + f.value.len()));
        }
        let head = buf.split_to(len).freeze();
        for (name, start, end) in spans.drain(..) {
            let value = HeaderValue::from_maybe_shared(head.slice(start..end))
                .map_err(|_| Error::Protocol("bad header value"))?;
            headers.append(name, value);
        }
        // And so do the fields its `Connection` names (RFC 9110 §7.6.1).
        for named in hop_named {
            headers.remove(named);
        }
        let bodiless =
            head_method || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
        let kind = if bodiless {
            Kind::Length(0)
        } else if coded {
            // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3); a coding that does not
            // end in chunked runs until the upstream closes. An answer with both may be an attempt
            // at response splitting: its connection is not used again.
            if length.is_some() {
                close = true;
            }
            headers.remove(header::CONTENT_LENGTH);
            if chunked {
                Kind::Chunked(Chunked::Size)
            } else {
                close = true;
                Kind::UntilClose
            }
        } else if let Some(n) = length {
            Kind::Length(n)
        } else {
            close = true;
            Kind::UntilClose
        };
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        let (parts, ()) = response.into_parts();
        return Ok(Some((
            parts,
            Framing {
                kind,
                reusable: !close,
            },
        )));
    }
}

/// Parses `data` as an answer head, for the fuzz target: the parser never panics and never
/// takes more bytes than it was given.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_head(data: &[u8], head_method: bool) {
    let mut buf = BytesMut::from(data);
    let mut interim = 0;
    if let Ok(Some((_, framing))) = parse_head(&mut buf, head_method, &mut interim) {
        assert!(buf.len() < data.len());
        let _ = framing.reusable;
    }
    // The one past the limit is counted, then refused.
    assert!(interim <= INTERIM_MAX + 1);
}

/// An answer's body read from its connection, which goes back to the pool at the end.
struct Upstream {
    conn: Option<Box<Conn>>,
    kind: Kind,
    back: Option<(Arc<Pool>, Key)>,
}

impl Upstream {
    fn finish(&mut self) {
        self.kind = Kind::Length(0);
        if let (Some(conn), Some((pool, key))) = (self.conn.take(), self.back.take()) {
            pool.release(conn, key, true);
        }
    }

    fn fail(&mut self, e: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.conn = None;
        self.back = None;
        self.kind = Kind::Length(0);
        Poll::Ready(Some(Err(e)))
    }
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("chunked body: {what}"))
}

/// One chunk-size line at the front of `buf`: `Ok(None)` when it is not whole yet.
fn chunk_size(buf: &mut BytesMut) -> io::Result<Option<u64>> {
    let Some(line) = take_line(buf, 4096, "a chunk-size line over 4 KiB")? else {
        return Ok(None);
    };
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = line[digits..].trim_ascii();
    if digits == 0 || digits > 15 || !(rest.is_empty() || rest.starts_with(b";")) {
        return Err(malformed("a bad chunk size"));
    }
    let hex = std::str::from_utf8(&line[..digits]).unwrap_or_default();
    u64::from_str_radix(hex, 16)
        .map(Some)
        .map_err(|_| malformed("a bad chunk size"))
}

/// One line (a trailer field, or the empty line that ends them) at the front of `buf`: `None`
/// when it is not whole; `Some(true)` for the empty line.
fn trailer_line(buf: &mut BytesMut) -> io::Result<Option<bool>> {
    let line = take_line(buf, HEAD_MAX, "trailers over 64 KiB")?;
    Ok(line.map(|l| l.trim_ascii().is_empty()))
}

/// The line at the front of `buf` (without its `\n`), taken off it; `None` while it is not
/// whole, an error once `max` bytes have come without one.
fn take_line(buf: &mut BytesMut, max: usize, too_long: &str) -> io::Result<Option<BytesMut>> {
    match buf.iter().position(|b| *b == b'\n') {
        Some(end) => {
            let mut line = buf.split_to(end + 1);
            line.truncate(end);
            Ok(Some(line))
        }
        None if buf.len() > max => Err(malformed(too_long)),
        None => Ok(None),
    }
}

impl http_body::Body for Upstream {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            // Take what the buffer holds.
            match &mut this.kind {
                Kind::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Kind::Length(n) if !conn.read.is_empty() => {
                    let take = (*n).min(conn.read.len() as u64);
                    *n -= take;
                    let data = conn.read.split_to(take as usize).freeze();
                    if *n == 0 {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Kind::UntilClose if !conn.read.is_empty() => {
                    let data = conn.read.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Kind::Chunked(state) => {
                    let step = match *state {
                        Chunked::Size => chunk_size(&mut conn.read).map(|n| {
                            n.map(|n| {
                                *state = if n == 0 {
                                    Chunked::Trailers(0)
                                } else {
                                    Chunked::Data(n)
                                };
                            })
                        }),
                        Chunked::Data(n) if !conn.read.is_empty() => {
                            let take = n.min(conn.read.len() as u64);
                            let data = conn.read.split_to(take as usize).freeze();
                            *state = if take == n {
                                Chunked::DataEnd
                            } else {
                                Chunked::Data(n - take)
                            };
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        }
                        Chunked::Data(_) => Ok(None),
                        Chunked::DataEnd => match conn.read.first() {
                            Some(b'\n') => {
                                conn.read.advance(1);
                                *state = Chunked::Size;
                                Ok(Some(()))
                            }
                            Some(b'\r') if conn.read.len() >= 2 => {
                                if conn.read[1] != b'\n' {
                                    Err(malformed("no CRLF after a chunk"))
                                } else {
                                    conn.read.advance(2);
                                    *state = Chunked::Size;
                                    Ok(Some(()))
                                }
                            }
                            Some(b'\r') | None => Ok(None),
                            Some(_) => Err(malformed("no CRLF after a chunk")),
                        },
                        Chunked::Trailers(read) => {
                            let before = conn.read.len();
                            match trailer_line(&mut conn.read) {
                                Ok(Some(true)) => {
                                    this.finish();
                                    return Poll::Ready(None);
                                }
                                Ok(Some(false)) => {
                                    // Each line is bounded; so is their sum.
                                    let read = read + before - conn.read.len();
                                    *state = Chunked::Trailers(read);
                                    if read > HEAD_MAX {
                                        Err(malformed("trailers over 64 KiB"))
                                    } else {
                                        Ok(Some(()))
                                    }
                                }
                                other => other.map(|o| o.map(|_| ())),
                            }
                        }
                    };
                    match step {
                        Err(e) => return this.fail(e),
                        Ok(Some(())) => continue,
                        Ok(None) => {}
                    }
                }
                _ => {}
            }
            // The buffer is spent: read more.
            let conn = this.conn.as_mut().expect("checked above");
            match conn.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => {
                    if matches!(this.kind, Kind::UntilClose) {
                        this.conn = None;
                        this.back = None;
                        this.kind = Kind::Length(0);
                        return Poll::Ready(None);
                    }
                    return this.fail(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the upstream closed the connection mid-body",
                    ));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || matches!(self.kind, Kind::Length(0))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self.kind {
            Kind::Length(n) => http_body::SizeHint::with_exact(n),
            _ => http_body::SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, head: bool) -> Result<Option<(http::response::Parts, Framing)>, Error> {
        parse_head(&mut BytesMut::from(text), head, &mut 0)
    }

    #[test]
    fn answers_come_without_hop_by_hop_fields() {
        let (parts, _) = parse(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: x\r\nTE: trailers\r\nUpgrade: h2c\r\nContent-Length: 0\r\nX-Kept: 1\r\n\r\n",
            false,
        )
        .expect("parses")
        .expect("whole");
        let mut names: Vec<&str> = parts.headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "x-kept"]);
    }

    /// A whole head's status, framing and whether its connection may serve again.
    fn framing(text: &str, head: bool) -> (http::response::Parts, Kind, bool) {
        let (p, f) = parse(text, head).expect("parses").expect("whole");
        (p, f.kind, f.reusable)
    }

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(h1::content_length(b"5"), Some(5));
        assert_eq!(h1::content_length(b" 42 "), Some(42));
        for bad in [
            &b"+5"[..],
            b"-1",
            b"0x5",
            b"5 5",
            b"5,5",
            b"",
            b"99999999999999999999",
        ] {
            assert_eq!(
                h1::content_length(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
                String::from_utf8_lossy(bad)
            );
            assert!(parse(&head, false).is_err(), "{head}");
        }
        assert!(
            idempotent(&Method::GET) && idempotent(&Method::PUT) && idempotent(&Method::DELETE)
        );
        assert!(!idempotent(&Method::POST) && !idempotent(&Method::PATCH));
    }

    #[test]
    fn heads_choose_the_framing_of_rfc_9112() {
        let (p, kind, reusable) = framing(
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: b\r\n\r\nhello",
            false,
        );
        assert_eq!(
            (p.status, p.headers["x-a"].as_bytes()),
            (StatusCode::OK, &b"b"[..])
        );
        assert!(matches!(kind, Kind::Length(5)) && reusable);
        for (text, head, want_chunked, want_close, want_empty, want_reuse) in [
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
                false,
                true,
                false,
                false,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 9\r\n\r\n",
                false,
                true,
                false,
                false,
                false,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", false, false, true, false, false),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
                true,
                false,
                false,
                true,
                true,
            ),
            (
                "HTTP/1.1 204 No Content\r\n\r\n",
                false,
                false,
                false,
                true,
                true,
            ),
            (
                "HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n",
                false,
                false,
                false,
                false,
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n",
                false,
                false,
                false,
                false,
                false,
            ),
        ] {
            let (_, kind, reusable) = framing(text, head);
            assert_eq!(matches!(kind, Kind::Chunked(_)), want_chunked, "{text}");
            assert_eq!(matches!(kind, Kind::UntilClose), want_close, "{text}");
            assert_eq!(matches!(kind, Kind::Length(0)), want_empty, "{text}");
            assert_eq!(reusable, want_reuse, "{text}");
        }
    }

    #[test]
    fn interim_answers_are_skipped_and_bad_heads_refused() {
        let (p, _, _) = framing(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n",
            false,
        );
        assert_eq!(p.status, 201);
        assert!(parse("HTTP/1.1 200 OK\r\ncontent-le", false)
            .unwrap()
            .is_none());
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "NOT HTTP\r\n\r\n",
        ] {
            assert!(parse(bad, false).is_err(), "{bad}");
        }
        let many: String = (0..101).map(|i| format!("x-{i}: v\r\n")).collect();
        assert!(parse(&format!("HTTP/1.1 200 OK\r\n{many}\r\n"), false).is_err());
    }

    #[test]
    fn chunk_size_lines() {
        let mut b = BytesMut::from("1a;ext=1\r\nrest");
        assert_eq!(chunk_size(&mut b).unwrap(), Some(26));
        assert_eq!(&b[..], b"rest");
        assert_eq!(chunk_size(&mut BytesMut::from("1a")).unwrap(), None);
        for bad in ["\r\n", "zz\r\n", "1 x\r\n", "10000000000000000\r\n"] {
            assert!(chunk_size(&mut BytesMut::from(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_heads_frame_their_own_body() {
        let req = Request::builder()
            .method(Method::POST)
            .uri("http://up.example:8080/a/b?c=d")
            .header("host", "client.example")
            .header("content-length", "99")
            .header("transfer-encoding", "chunked")
            .header("x-one", "1")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let authority = parts.uri.authority().unwrap().clone();
        let mut out = Vec::new();
        encode_head(&mut out, &parts, &authority, Some(3));
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "POST /a/b?c=d HTTP/1.1\r\nhost: up.example:8080\r\nx-one: 1\r\ncontent-length: 3\r\n\r\n"
        );
        encode_head(&mut out, &parts, &authority, None);
        assert!(String::from_utf8(out)
            .unwrap()
            .ends_with("x-one: 1\r\ntransfer-encoding: chunked\r\n\r\n"));
    }
}
