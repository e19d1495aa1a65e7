//! Observability: request ids, the JSON access log, Prometheus metrics named after the
//! OpenTelemetry HTTP semantic conventions, and the operational log.
//!
//! Two logs, both JSON lines: the **access log** (one line a request, on stdout, written in
//! batches by a writer of its own, AWS `$context`-like fields), and the **operational log**
//! (start, stop, Redis degraded, upstream, authorizer and JWKS failures, on stderr) through
//! `tracing`, filtered by `RUST_LOG`. Neither is formatted by hand from client data: every value
//! a client sends is escaped as a JSON string, so no header can add or change a field.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use bytes::Bytes;
use http_body::Frame;

/// Starts the operational log: `tracing` events as JSON lines on stderr, each with
/// `timestamp` (RFC 3339, UTC), `level`, `message`, the event's fields and `target` (the
/// module). `RUST_LOG` filters them with `tracing_subscriber`'s target syntax: `warn`,
/// `info,gwgen_runtime::state=off`, `gwgen_runtime::proxy=debug`; the default is `info`. A value
/// that cannot be read is reported, and `info` applies.
pub fn init_logs() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let default = || Targets::new().with_default(tracing::Level::INFO);
    let (filter, unread) = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => match v.parse::<Targets>() {
            Ok(t) => (t, None),
            Err(e) => (default(), Some((v, e.to_string()))),
        },
        _ => (default(), None),
    };
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let _ = tracing_subscriber::registry().with(json).try_init();
    if let Some((value, error)) = unread {
        tracing::warn!(value = %value, error = %error, "RUST_LOG is not understood; logging at info");
    }
}

/// The request id: the client's `x-request-id` when it sent exactly one in a safe charset
/// (ASCII letters, digits and `-_.:/+=@`, 1 to 128 of them: no quote, backslash, space or
/// anything a log or a downstream parser could take for syntax), else a new UUID. The flag says
/// which: `true` when the client's header is the id (and can stay on the request as it is).
pub fn request_id(headers: &http::HeaderMap) -> (http::HeaderValue, bool) {
    const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
    let mut sent = headers.get_all(X_REQUEST_ID).iter();
    if let (Some(v), None) = (sent.next(), sent.next()) {
        let b = v.as_bytes();
        let safe = |c: &u8| c.is_ascii_alphanumeric() || b"-_.:/+=@".contains(c);
        if !b.is_empty() && b.len() <= 128 && b.iter().all(safe) {
            return (v.clone(), true);
        }
    }
    let made = http::HeaderValue::from_bytes(&fast_uuid()).expect("a UUID is a valid header value");
    (made, false)
}

/// Appends `ip` as text, the hot case of every access log line and `X-Forwarded-For`. A
/// connection's requests come from one address, so each thread keeps the last address it wrote
/// with its text.
pub fn push_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<Option<(std::net::IpAddr, Vec<u8>)>> = const { RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((seen, text)) if *seen == ip => out.extend_from_slice(text),
            _ => {
                let mut text = Vec::with_capacity(15);
                write_ip(&mut text, ip);
                out.extend_from_slice(&text);
                *last = Some((ip, text));
            }
        }
    });
}

/// Writes `ip` as text: IPv4 without the formatting machinery.
fn write_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(digits.format(octet).as_bytes());
            }
        }
        std::net::IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// 16 random bytes from a per-thread xorshift generator seeded once from the operating system:
/// request ids and trace ids need to be unique, not secret, and a system call per request is
/// what this avoids.
pub(crate) fn random_bytes() -> [u8; 16] {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<(u64, u64)> = Cell::new({
            let seed = uuid::Uuid::new_v4().as_u128();
            ((seed as u64) | 1, ((seed >> 64) as u64) | 1)
        });
    }
    STATE.with(|s| {
        // xorshift128+
        let (mut a, mut b) = s.get();
        let mut next = || {
            let (mut t, y) = (a, b);
            a = y;
            t ^= t << 23;
            t ^= t >> 17;
            t ^= y ^ (y >> 26);
            b = t;
            t.wrapping_add(y)
        };
        let (lo, hi) = (next(), next());
        s.set((a, b));
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&lo.to_le_bytes());
        out[8..].copy_from_slice(&hi.to_le_bytes());
        out
    })
}

/// A random (version 4) UUID from [`random_bytes`].
fn fast_uuid() -> [u8; 36] {
    let bytes = random_bytes();
    let mut buf = [0u8; 36];
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut buf);
    buf
}

/// The access log's sink: each thread appends lines to a buffer of its own, which a background
/// thread writes to stdout every 50 ms, or at once when a buffer passes 256 KiB (the thread that
/// filled it wakes the writer), so a request costs no system call and takes no lock another core
/// holds. Only past 16 MiB, when stdout does not keep up, does a serving thread write its buffer
/// itself, which holds its requests back rather than letting memory grow. [`flush_access_log`]
/// writes what is left, at shutdown. Lines of one thread stay in order; lines of different
/// threads interleave by flush.
static BUFFERS: Mutex<Vec<Arc<Mutex<Vec<u8>>>>> = Mutex::new(Vec::new());

/// The background writer, woken early by a thread whose buffer filled.
static WRITER: std::sync::OnceLock<std::thread::Thread> = std::sync::OnceLock::new();

/// A buffer this full wakes the writer.
const WAKE_AT: usize = 256 << 10;
/// A buffer this full is written by its own thread.
const WRITE_AT: usize = 16 << 20;

thread_local! {
    /// This thread's access-log buffer, registered in [`BUFFERS`] on first use.
    static BUFFER: Arc<Mutex<Vec<u8>>> = {
        let buf = Arc::new(Mutex::new(Vec::new()));
        BUFFERS.lock().unwrap_or_else(|e| e.into_inner()).push(buf.clone());
        buf
    };
    /// The flushing thread's empty buffer, swapped for a full one so that the full one is
    /// written without holding its lock, and each buffer keeps a capacity that fits its load.
    static SPARE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn write_out(data: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(data);
    let _ = out.flush();
}

/// Writes one line into this thread's buffer (`write` appends it, without the newline).
fn append_log_line(write: impl FnOnce(&mut Vec<u8>)) {
    WRITER.get_or_init(|| {
        std::thread::Builder::new()
            .name("gwgen-access-log".into())
            .spawn(|| loop {
                std::thread::park_timeout(Duration::from_millis(50));
                flush_access_log();
            })
            .map(|h| h.thread().clone())
            .unwrap_or_else(|_| std::thread::current())
    });
    let len = BUFFER.with(|buf| {
        let mut buf = buf.lock().unwrap_or_else(|e| e.into_inner());
        write(&mut buf);
        buf.push(b'\n');
        buf.len()
    });
    if len > WRITE_AT {
        flush_access_log();
    } else if len > WAKE_AT {
        if let Some(writer) = WRITER.get() {
            writer.unpark();
        }
    }
}

/// Writes the buffered access-log lines of every thread to stdout now.
pub fn flush_access_log() {
    // One flush at a time, so that a buffer taken by one is written before the next is taken.
    static FLUSHING: Mutex<()> = Mutex::new(());
    let _one = FLUSHING.lock().unwrap_or_else(|e| e.into_inner());
    let buffers: Vec<Arc<Mutex<Vec<u8>>>> = {
        let mut all = BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
        // A buffer only this list holds belongs to a thread that ended: flushed once more, then
        // let go.
        let list = all.clone();
        all.retain(|b| Arc::strong_count(b) > 2);
        list
    };
    SPARE.with_borrow_mut(|spare| {
        for buf in buffers {
            {
                let mut buf = buf.lock().unwrap_or_else(|e| e.into_inner());
                if buf.is_empty() {
                    continue;
                }
                std::mem::swap(&mut *buf, spare);
            }
            write_out(spare);
            spare.clear();
        }
    });
}

const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[derive(Default, Clone)]
struct Histogram {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// Request metrics of one gateway, sharded by thread: a thread counts into its own shard, whose
/// lock only a scrape ever contends for, so no lock or counter is shared by the requests of
/// different cores. A scrape sums the shards.
pub struct Metrics {
    /// Tells this gateway's shards from another's in a thread's list.
    id: u64,
    shards: Mutex<Vec<Arc<Mutex<Shard>>>>,
    degraded: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Metrics {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            shards: Mutex::new(Vec::new()),
            degraded: AtomicI64::new(0),
        }
    }
}

/// One thread's counts.
#[derive(Default)]
struct Shard {
    requests: BTreeMap<(&'static str, &'static str, u16), Histogram>,
    invalid_requests: BTreeMap<&'static str, u64>,
    invalid_responses: BTreeMap<&'static str, u64>,
    counters: BTreeMap<(&'static str, &'static str, &'static str), u64>,
    /// WebSocket connections opened minus closed on this thread, by API path.
    websockets: BTreeMap<&'static str, i64>,
    /// Requests started minus requests finished on this thread (a request may finish on
    /// another thread than it started on; the sum over shards is what is in flight).
    active: i64,
}

thread_local! {
    /// This thread's shard of each gateway's metrics, by the gateway's id.
    static SHARDS: std::cell::RefCell<Vec<(u64, Arc<Mutex<Shard>>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The counters of [`Metrics::count`]: name, help, and the names of its two labels (empty: none).
const COUNTERS: &[(&str, &str, &str, &str)] = &[
    (
        "gwgen_throttled_total",
        "Requests refused with 429, by the level that refused them (plan, quota, route, stage).",
        "http_route",
        "level",
    ),
    (
        "gwgen_quota_used_total",
        "Requests counted against usage-plan quotas.",
        "plan",
        "",
    ),
    (
        "gwgen_cache_requests_total",
        "Cacheable requests, by result (hit, miss, refresh, bypass).",
        "http_route",
        "result",
    ),
    (
        "gwgen_websocket_messages_total",
        "WebSocket messages, by API path and direction (in: from clients; out: to them).",
        "http_route",
        "direction",
    ),
    (
        "gwgen_websocket_closes_total",
        "WebSocket connections closed, by API path and close code.",
        "http_route",
        "code",
    ),
    (
        "gwgen_state_errors_total",
        "Calls to the shared state (Redis) that failed or timed out.",
        "",
        "",
    ),
];

impl Metrics {
    /// Runs `f` on this thread's shard (made on the thread's first use).
    fn with_shard<R>(&self, f: impl FnOnce(&mut Shard) -> R) -> R {
        SHARDS.with(|list| {
            let mut list = list.borrow_mut();
            let at = match list.iter().position(|(id, _)| *id == self.id) {
                Some(at) => at,
                None => {
                    let shard = Arc::new(Mutex::new(Shard::default()));
                    self.shards
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(shard.clone());
                    list.push((self.id, shard));
                    list.len() - 1
                }
            };
            let mut shard = list[at].1.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut shard)
        })
    }

    /// Counts a request refused by validation, under its route template.
    pub fn invalid_request(&self, route: &'static str) {
        self.with_shard(|s| *s.invalid_requests.entry(route).or_default() += 1);
    }

    /// Counts an upstream answer that did not conform to the spec, under its route template.
    pub fn invalid_response(&self, route: &'static str) {
        self.with_shard(|s| *s.invalid_responses.entry(route).or_default() += 1);
    }

    /// Adds one to a counter of [`COUNTERS`] with its label values.
    pub fn count(&self, name: &'static str, a: &'static str, b: &'static str) {
        self.with_shard(|s| *s.counters.entry((name, a, b)).or_default() += 1);
    }

    /// Counts a WebSocket connection of the API at `path` as open.
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    pub(crate) fn websocket_opened(&self, path: &'static str) {
        self.with_shard(|s| *s.websockets.entry(path).or_default() += 1);
    }

    /// Counts a WebSocket connection as closed with `code`.
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    pub(crate) fn websocket_closed(&self, path: &'static str, code: u16) {
        const CODES: [&str; 12] = [
            "1000", "1001", "1002", "1003", "1005", "1006", "1007", "1008", "1009", "1010", "1011",
            "other",
        ];
        let code = CODES
            .iter()
            .find(|c| c.parse::<u16>() == Ok(code))
            .unwrap_or(&"other");
        self.with_shard(|s| {
            *s.websockets.entry(path).or_default() -= 1;
            *s.counters
                .entry(("gwgen_websocket_closes_total", path, code))
                .or_default() += 1;
        });
    }

    /// Counts a WebSocket message (`in` or `out`).
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    pub(crate) fn websocket_message(&self, path: &'static str, direction: &'static str) {
        self.count("gwgen_websocket_messages_total", path, direction);
    }

    /// Whether the shared state is failing (`gwgen_state_degraded`).
    pub fn set_degraded(&self, on: bool) {
        self.degraded.store(i64::from(on), Ordering::Relaxed);
    }

    /// Counts a request as started.
    pub fn start(&self) {
        self.with_shard(|s| s.active += 1);
    }

    /// Records a finished request under its route template (`-` when no route matched).
    pub fn finish(
        &self,
        method: &http::Method,
        route: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        let method = match *method {
            http::Method::GET => "GET",
            http::Method::HEAD => "HEAD",
            http::Method::POST => "POST",
            http::Method::PUT => "PUT",
            http::Method::PATCH => "PATCH",
            http::Method::DELETE => "DELETE",
            http::Method::OPTIONS => "OPTIONS",
            http::Method::TRACE => "TRACE",
            _ => "_OTHER",
        };
        let secs = elapsed.as_secs_f64();
        self.with_shard(|s| {
            s.active -= 1;
            let h = s.requests.entry((route, method, status)).or_default();
            h.count += 1;
            h.sum += secs;
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.buckets[i] += 1;
                }
            }
        });
    }

    /// Every shard summed.
    fn total(&self) -> Shard {
        let shards: Vec<Arc<Mutex<Shard>>> = self
            .shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut sum = Shard::default();
        for shard in shards {
            let s = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (k, h) in &s.requests {
                let t = sum.requests.entry(*k).or_default();
                t.count += h.count;
                t.sum += h.sum;
                for (a, b) in t.buckets.iter_mut().zip(h.buckets) {
                    *a += b;
                }
            }
            for (k, n) in &s.invalid_requests {
                *sum.invalid_requests.entry(k).or_default() += n;
            }
            for (k, n) in &s.invalid_responses {
                *sum.invalid_responses.entry(k).or_default() += n;
            }
            for (k, n) in &s.counters {
                *sum.counters.entry(*k).or_default() += n;
            }
            sum.active += s.active;
            for (k, n) in &s.websockets {
                *sum.websockets.entry(k).or_default() += n;
            }
        }
        sum
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP http_server_request_duration_seconds Duration of HTTP server requests.\n",
        );
        out.push_str("# TYPE http_server_request_duration_seconds histogram\n");
        let total = self.total();
        for ((route, method, status), h) in &total.requests {
            let labels = format!(
                "http_request_method=\"{method}\",http_route=\"{}\",http_response_status_code=\"{status}\"",
                escape_label(route)
            );
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "http_server_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "http_server_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "http_server_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "http_server_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        for (name, help, map) in [
            (
                "gwgen_requests_invalid_total",
                "Requests refused by validation (400 or 415).",
                &total.invalid_requests,
            ),
            (
                "gwgen_responses_invalid_total",
                "Upstream answers that do not conform to the spec's response schemas.",
                &total.invalid_responses,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (route, n) in map {
                let _ = writeln!(out, "{name}{{http_route=\"{}\"}} {n}", escape_label(route));
            }
        }
        let counters = &total.counters;
        for (name, help, la, lb) in COUNTERS {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for ((_, a, b), n) in counters.iter().filter(|((n, _, _), _)| n == name) {
                let mut labels = Vec::new();
                if !la.is_empty() {
                    labels.push(format!("{la}=\"{}\"", escape_label(a)));
                }
                if !lb.is_empty() {
                    labels.push(format!("{lb}=\"{}\"", escape_label(b)));
                }
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {n}");
                } else {
                    let _ = writeln!(out, "{name}{{{}}} {n}", labels.join(","));
                }
            }
        }
        out.push_str("# HELP gwgen_state_degraded 1 while the shared state (Redis) is failing and the gateway runs on its own.\n");
        out.push_str("# TYPE gwgen_state_degraded gauge\n");
        let _ = writeln!(
            out,
            "gwgen_state_degraded {}",
            self.degraded.load(Ordering::Relaxed)
        );
        out.push_str("# HELP http_server_active_requests Number of active HTTP server requests.\n");
        out.push_str("# TYPE http_server_active_requests gauge\n");
        let _ = writeln!(out, "http_server_active_requests {}", total.active);
        if !total.websockets.is_empty() {
            out.push_str(
                "# HELP gwgen_websocket_connections Open WebSocket connections, by API path.\n",
            );
            out.push_str("# TYPE gwgen_websocket_connections gauge\n");
            for (path, n) in &total.websockets {
                let _ = writeln!(
                    out,
                    "gwgen_websocket_connections{{http_route=\"{}\"}} {n}",
                    escape_label(path)
                );
            }
        }
        #[cfg(feature = "proxy")]
        crate::balance::render_metrics(&mut out);
        out
    }
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What the access log line says of one request, filled in as the request goes.
pub struct AccessRecord {
    /// The request id (printable ASCII: see [`request_id`]).
    pub request_id: http::HeaderValue,
    /// The client address.
    pub ip: std::net::IpAddr,
    /// Method.
    pub method: http::Method,
    /// `METHOD /template`, or `-`.
    pub route_key: &'static str,
    /// The route template, or `-`.
    pub route: &'static str,
    /// The request target as received.
    pub uri: http::Uri,
    /// HTTP version.
    pub protocol: &'static str,
    /// `User-Agent`.
    pub user_agent: Option<http::HeaderValue>,
    /// When the request arrived.
    pub start: Instant,
    /// Time spent waiting for the upstream's answer head, when there was an upstream.
    pub integration_latency: Option<Duration>,
    /// The final status.
    pub status: u16,
    /// Where the request stands in a trace, when it is in one.
    pub(crate) trace: Option<Trace>,
}

/// A request's place in a trace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trace {
    /// The trace, and the span the access log names: the gateway's when it exports spans, else
    /// the client's.
    pub(crate) ctx: crate::trace::SpanContext,
    /// The client's span, which the gateway's continues.
    pub(crate) parent: Option<[u8; 8]>,
    /// Whether the gateway's span is sent to the exporter.
    pub(crate) exported: bool,
}

/// A response body that counts its bytes and, when it is finished or dropped, writes the access
/// log line and records the metrics, so both cover the whole response.
pub struct LoggedBody<'g> {
    inner: Body,
    bytes: u64,
    /// The request's record, and its gateway (for the metrics and the stage's name). The
    /// record is boxed where the request starts and never moved again: the answer, and this
    /// body with it, is moved several times on its way to the client.
    record: Option<(Box<AccessRecord>, GatewayRef<'g>)>,
}

/// The gateway a request's answer refers to until it is sent. The gateway's own HTTP/1.1
/// server borrows its connection's (it sends each answer before it reads the next request);
/// hyper's servers, whose answers outlive the call that made them, give each request a
/// reference of its own. Borrowed, a request changes no reference count: a count that every
/// request changed would be one cache line that every core writes.
pub(crate) enum GatewayRef<'g> {
    /// The connection's gateway.
    Borrowed(&'g crate::gateway::Gateway),
    /// A reference of the request's own.
    Owned(Arc<crate::gateway::Gateway>),
}

impl std::ops::Deref for GatewayRef<'_> {
    type Target = crate::gateway::Gateway;

    fn deref(&self) -> &crate::gateway::Gateway {
        match self {
            GatewayRef::Borrowed(gw) => gw,
            GatewayRef::Owned(gw) => gw,
        }
    }
}

impl<'g> LoggedBody<'g> {
    /// A body that logs nothing: answers that are not a request's (a panic's 500).
    pub fn plain(inner: Body) -> Self {
        LoggedBody {
            inner,
            bytes: 0,
            record: None,
        }
    }

    /// Wraps `inner`.
    pub(crate) fn new(inner: Body, record: Box<AccessRecord>, gw: GatewayRef<'g>) -> Self {
        LoggedBody {
            inner,
            bytes: 0,
            record: Some((record, gw)),
        }
    }

    fn finish(&mut self) {
        if let Some((r, gw)) = self.record.take() {
            let elapsed = r.start.elapsed();
            gw.metrics.finish(&r.method, r.route, r.status, elapsed);
            // Written field by field (strings escaped as serde_json escapes them), without
            // building a value, straight into this thread's log buffer.
            append_log_line(|line| {
                let field = |line: &mut Vec<u8>, name: &str, first: bool| {
                    line.extend_from_slice(if first { b"{\"" } else { b",\"" });
                    line.extend_from_slice(name.as_bytes());
                    line.extend_from_slice(b"\":");
                };
                let text = crate::json::push_json_bytes;
                field(line, "requestId", true);
                text(line, r.request_id.to_str().unwrap_or("-"));
                field(line, "ip", false);
                line.push(b'"');
                push_ip(line, r.ip);
                line.push(b'"');
                field(line, "requestTime", false);
                line.push(b'"');
                rfc3339_into(line, crate::deadline::wall_time(r.start));
                line.push(b'"');
                field(line, "httpMethod", false);
                text(line, r.method.as_str());
                field(line, "routeKey", false);
                text(line, r.route_key);
                field(line, "path", false);
                text(line, r.uri.path());
                field(line, "status", false);
                line.extend_from_slice(itoa::Buffer::new().format(r.status).as_bytes());
                field(line, "protocol", false);
                text(line, r.protocol);
                field(line, "responseLength", false);
                line.extend_from_slice(itoa::Buffer::new().format(self.bytes).as_bytes());
                field(line, "integrationLatency", false);
                match r.integration_latency {
                    Some(d) => {
                        line.extend_from_slice(itoa::Buffer::new().format(d.as_millis()).as_bytes())
                    }
                    None => line.extend_from_slice(b"null"),
                }
                field(line, "responseLatency", false);
                line.extend_from_slice(itoa::Buffer::new().format(elapsed.as_millis()).as_bytes());
                field(line, "stage", false);
                text(line, &gw.stage);
                field(line, "userAgent", false);
                match r.user_agent.as_ref().and_then(|v| v.to_str().ok()) {
                    Some(ua) => text(line, ua),
                    None => text(line, "-"),
                }
                field(line, "traceId", false);
                match &r.trace {
                    Some(t) => {
                        line.push(b'"');
                        crate::trace::push_hex(line, &t.ctx.trace_id);
                        line.push(b'"');
                    }
                    None => line.extend_from_slice(b"null"),
                }
                line.push(b'}');
            });
            if let Some(t) = r.trace.filter(|t| t.exported) {
                let matched = r.route_key != "-";
                crate::trace::export(crate::trace::SpanRecord {
                    ctx: t.ctx,
                    parent: t.parent,
                    name: if matched {
                        r.route_key.to_string()
                    } else {
                        r.method.as_str().to_string()
                    },
                    route: matched.then_some(r.route),
                    method: r.method.clone(),
                    path: r.uri.path().to_string(),
                    status: r.status,
                    start: crate::deadline::wall_time(r.start),
                    end: SystemTime::now(),
                });
            }
        }
    }
}

impl http_body::Body for LoggedBody<'_> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    self.bytes += d.len() as u64;
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Formats a time as RFC 3339 UTC with milliseconds (the access log writes it in place).
#[cfg(test)]
fn rfc3339(t: SystemTime) -> String {
    let mut out = Vec::with_capacity(24);
    rfc3339_into(&mut out, t);
    String::from_utf8(out).unwrap_or_default()
}

/// Writes a time as RFC 3339 UTC with milliseconds. The text up to the second is formatted
/// once a second per thread.
fn rfc3339_into(out: &mut Vec<u8>, t: SystemTime) {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
    }
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != d.as_secs() {
            let mut text = Vec::with_capacity(24);
            seconds_into(&mut text, d.as_secs() as i64);
            *last = (d.as_secs(), text);
        }
        out.extend_from_slice(&last.1);
    });
    let ms = d.subsec_millis();
    out.extend_from_slice(&[
        b'.',
        b'0' + (ms / 100) as u8,
        b'0' + (ms / 10 % 10) as u8,
        b'0' + (ms % 10) as u8,
        b'Z',
    ]);
}

/// Appends the present time as an HTTP date (RFC 9110 §5.6.7, `Sun, 06 Nov 1994 08:49:37
/// GMT`): made once a second per thread, from the coarse clock.
pub(crate) fn push_http_date(out: &mut Vec<u8>) {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
    }
    let now = crate::deadline::coarse_unix_secs();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != now {
            let mut text = Vec::with_capacity(29);
            http_date_into(&mut text, now as i64);
            *last = (now, text);
        }
        out.extend_from_slice(&last.1);
    });
}

/// The HTTP date of a second since the epoch.
fn http_date_into(out: &mut Vec<u8>, secs: i64) {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = crate::throttle::civil_from_days(days);
    let _ = write!(
        out,
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month as usize).saturating_sub(1).min(11)],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    );
}

/// `YYYY-MM-DDTHH:MM:SS` of a second since the epoch.
fn seconds_into(out: &mut Vec<u8>, secs: i64) {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = crate::throttle::civil_from_days(days);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_are_imf_fixdates() {
        let text = |secs| {
            let mut out = Vec::new();
            http_date_into(&mut out, secs);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(text(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(text(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(text(1_709_210_096), "Thu, 29 Feb 2024 12:34:56 GMT");
        let mut now = Vec::new();
        push_http_date(&mut now);
        let parsed = httpdate_like(&String::from_utf8(now).unwrap());
        assert!(parsed, "the present date is an IMF-fixdate");
    }

    fn httpdate_like(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 29 && &b[3..5] == b", " && s.ends_with(" GMT") && b[19] == b':' && b[22] == b':'
    }

    #[test]
    fn addresses_are_written_whichever_came_before() {
        let text = |ip: &str| {
            let mut out = b"<".to_vec();
            push_ip(&mut out, ip.parse().unwrap());
            String::from_utf8(out).unwrap()
        };
        for ip in [
            "127.0.0.1",
            "127.0.0.1",
            "10.0.0.255",
            "::1",
            "::1",
            "127.0.0.1",
            "0.0.0.0",
        ] {
            assert_eq!(text(ip), format!("<{ip}"));
        }
    }

    #[test]
    fn metrics_of_every_thread_sum_at_scrape() {
        let m = Arc::new(Metrics::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        m.start();
                        m.finish(&http::Method::GET, "/a", 200, Duration::from_millis(1));
                    }
                    m.invalid_request("/a");
                    m.count("gwgen_cache_requests_total", "/a", "hit");
                    // Started here, finished on another thread.
                    m.start();
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        m.finish(&http::Method::GET, "/a", 200, Duration::from_millis(1));
        let text = m.render();
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in {text}"))
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(
            line("http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/a\""),
            "1001"
        );
        assert_eq!(line("gwgen_requests_invalid_total{"), "4");
        assert_eq!(line("gwgen_cache_requests_total{"), "4");
        assert_eq!(line("http_server_active_requests "), "3");
        // Another gateway in the same process counts apart.
        let other = Metrics::default();
        other.start();
        assert!(other.render().contains("http_server_active_requests 1"));
        assert!(m.render().contains("http_server_active_requests 3"));
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40.123Z");
    }

    #[test]
    fn metrics_text() {
        let m = Metrics::default();
        m.start();
        m.finish(
            &http::Method::GET,
            "/a/{id}\"",
            200,
            Duration::from_millis(3),
        );
        let text = m.render();
        assert!(text.contains("http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/a/{id}\\\"\",http_response_status_code=\"200\"} 1"), "{text}");
        assert!(text.contains("http_server_active_requests 0"));
    }

    #[test]
    fn request_ids() {
        let mut h = http::HeaderMap::new();
        h.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(
            request_id(&h),
            (http::HeaderValue::from_static("abc-123"), true)
        );
        h.insert("x-request-id", "has space".parse().unwrap());
        assert_eq!(request_id(&h).0.len(), 36);
        assert!(!request_id(&h).1);
        let (a, b) = (request_id(&h).0, request_id(&h).0);
        assert_ne!(a, b);
        let a = a.to_str().unwrap();
        assert!(crate::validate::format::uuid(a), "{a}");
        assert_eq!(&a[14..15], "4", "version 4: {a}");
    }
}
