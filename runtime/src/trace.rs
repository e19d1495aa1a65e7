//! Distributed tracing: W3C Trace Context (`traceparent`) and OpenTelemetry span export over
//! OTLP/HTTP with JSON encoding.
//!
//! Without an exporter, the gateway takes no part in traces beyond what a proxy must do: the
//! client's `traceparent` and `tracestate` reach the upstream unchanged, and the access log shows
//! the trace id. With one (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), every request is a server span named after its route
//! (`GET /orders/{orderId}`): a child of the client's span when it sent a valid `traceparent`
//! (and is not sampled out, per its flags), else the root of a new trace. The upstream then gets
//! a `traceparent` naming the gateway's span as its parent.
//!
//! Spans leave the request path through a bounded channel (no lock; past 8,192 waiting spans,
//! new ones are dropped and counted); a background thread sends them in batches of up to 512,
//! at least every second.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `traceparent` header.
pub(crate) const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// A trace position: the trace, this hop's span, the span it continues, and whether it is
/// sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpanContext {
    /// The trace id.
    pub(crate) trace_id: [u8; 16],
    /// The span id (the client's, for a parsed header; the gateway's own, once started).
    pub(crate) span_id: [u8; 8],
    /// The `sampled` flag.
    pub(crate) sampled: bool,
}

/// Parses a `traceparent` value as W3C Trace Context level 1 reads it: version `00` exactly 55
/// characters; a later version at least that, its first four fields read the same way; lower-case
/// hex; trace and parent ids not all zero; version `ff` invalid. `None` for anything else (the
/// gateway then starts a new trace rather than trust it).
pub(crate) fn parse_traceparent(v: &[u8]) -> Option<SpanContext> {
    if v.len() < 55 {
        return None;
    }
    let version = hex_byte(&v[0..2])?;
    if version == 0xff
        || (version == 0 && v.len() != 55)
        || (version != 0 && v.len() > 55 && v[55] != b'-')
    {
        return None;
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let mut trace_id = [0u8; 16];
    for (i, b) in trace_id.iter_mut().enumerate() {
        *b = hex_byte(&v[3 + 2 * i..5 + 2 * i])?;
    }
    let mut span_id = [0u8; 8];
    for (i, b) in span_id.iter_mut().enumerate() {
        *b = hex_byte(&v[36 + 2 * i..38 + 2 * i])?;
    }
    let flags = hex_byte(&v[53..55])?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(SpanContext {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(digit(two[0])? << 4 | digit(two[1])?)
}

/// Appends `bytes` as lower-case hex.
pub(crate) fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 15)]);
    }
}

/// The `traceparent` value that names `ctx`'s span.
pub(crate) fn traceparent(ctx: &SpanContext) -> http::HeaderValue {
    let mut v = Vec::with_capacity(55);
    v.extend_from_slice(b"00-");
    push_hex(&mut v, &ctx.trace_id);
    v.push(b'-');
    push_hex(&mut v, &ctx.span_id);
    v.extend_from_slice(if ctx.sampled { b"-01" } else { b"-00" });
    http::HeaderValue::from_maybe_shared(bytes::Bytes::from(v)).unwrap_or_else(|_| {
        http::HeaderValue::from_static("00-00000000000000000000000000000000-0000000000000000-00")
    })
}

/// One finished server span.
#[derive(Debug)]
pub(crate) struct SpanRecord {
    /// The trace and the gateway's span.
    pub(crate) ctx: SpanContext,
    /// The client's span, when the request continued one.
    pub(crate) parent: Option<[u8; 8]>,
    /// `GET /orders/{orderId}`, or the method alone when no route matched.
    pub(crate) name: String,
    /// `http.route`, when a route matched.
    pub(crate) route: Option<&'static str>,
    /// `http.request.method`.
    pub(crate) method: http::Method,
    /// `url.path`.
    pub(crate) path: String,
    /// `http.response.status_code`.
    pub(crate) status: u16,
    /// When the request arrived and when its answer ended.
    pub(crate) start: SystemTime,
    /// When its answer ended.
    pub(crate) end: SystemTime,
}

/// What the sending thread receives.
enum Message {
    /// A span to send.
    Span(Box<SpanRecord>),
    /// Send what is held now, then say so.
    Flush(SyncSender<()>),
}

/// Where spans go: the channel to the sending thread.
struct Exporter {
    queue: SyncSender<Message>,
    dropped: std::sync::atomic::AtomicU64,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// Whether spans are exported (an OTLP endpoint was configured at start).
pub(crate) fn exporting() -> bool {
    EXPORTER.get().is_some()
}

/// Hands a finished span to the exporter; drops it when the queue is full.
pub(crate) fn export(span: SpanRecord) {
    if let Some(e) = EXPORTER.get() {
        if let Err(TrySendError::Full(_)) = e.queue.try_send(Message::Span(Box::new(span))) {
            e.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A new random trace id and span id, never all zeros.
pub(crate) fn new_ids() -> ([u8; 16], [u8; 8]) {
    let mut trace_id = crate::observe::random_bytes();
    trace_id[0] |= 1;
    let more = crate::observe::random_bytes();
    let mut span_id = [0u8; 8];
    span_id.copy_from_slice(&more[..8]);
    span_id[0] |= 1;
    (trace_id, span_id)
}

/// An OTLP/HTTP endpoint: where spans are POSTed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `host:port`, as connected to and sent in `Host`.
    pub(crate) authority: String,
    /// The request target, `/v1/traces` by default.
    pub(crate) path: String,
}

/// Reads the standard OpenTelemetry variables: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as
/// is), else `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended). `Ok(None)` when neither is
/// set; an error for what the gateway cannot honour (a protocol other than `http/json`, an
/// `https://` endpoint) rather than a silent lack of traces.
pub(crate) fn endpoint_from(
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Endpoint>, String> {
    let set = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let (url, append) = match (
        set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        set("OTEL_EXPORTER_OTLP_ENDPOINT"),
    ) {
        (Some(u), _) => (u, false),
        (None, Some(u)) => (u, true),
        (None, None) => return Ok(None),
    };
    for k in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(p) = set(k) {
            if p != "http/json" {
                return Err(format!(
                    "{k}={p}: this gateway exports traces as OTLP over HTTP with JSON only; set it to http/json"
                ));
            }
            break;
        }
    }
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("OTLP endpoint `{url}`: only http:// endpoints are supported (send to a local collector)")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("OTLP endpoint `{url}` names no host"));
    }
    let mut path = path.trim_end_matches('/').to_string();
    if append || path.is_empty() {
        path.push_str("/v1/traces");
    }
    Ok(Some(Endpoint {
        authority: authority.to_string(),
        path,
    }))
}

/// Starts exporting to `endpoint` as `service` (`OTEL_SERVICE_NAME`, else the API's title).
pub(crate) fn start_exporter(endpoint: Endpoint, service: String) {
    let (tx, rx) = std::sync::mpsc::sync_channel(8192);
    let exporter = Exporter {
        queue: tx,
        dropped: std::sync::atomic::AtomicU64::new(0),
    };
    if EXPORTER.set(exporter).is_err() {
        return;
    }
    let _ = std::thread::Builder::new()
        .name("gwgen-otlp".into())
        .spawn(move || send_loop(rx, &endpoint, &service));
}

/// Sends what is queued (at shutdown), waiting at most `deadline`.
pub(crate) fn flush(deadline: Duration) {
    let Some(e) = EXPORTER.get() else { return };
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
    let until = std::time::Instant::now() + deadline;
    let mut msg = Message::Flush(done_tx);
    loop {
        match e.queue.try_send(msg) {
            Ok(()) => break,
            Err(TrySendError::Full(m)) if std::time::Instant::now() < until => {
                msg = m;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => return,
        }
    }
    let _ = done_rx.recv_timeout(until.saturating_duration_since(std::time::Instant::now()));
}

fn send_loop(rx: Receiver<Message>, endpoint: &Endpoint, service: &str) {
    let mut batch: Vec<Box<SpanRecord>> = Vec::with_capacity(512);
    let mut waiting: Vec<SyncSender<()>> = Vec::new();
    let mut last_sent = std::time::Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(Message::Span(span)) => batch.push(span),
            Ok(Message::Flush(done)) => waiting.push(done),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(Message::Span(span)) => batch.push(span),
                Ok(Message::Flush(done)) => waiting.push(done),
                Err(_) => break,
            }
        }
        let due = batch.len() >= 512 || last_sent.elapsed() >= Duration::from_secs(1);
        if !batch.is_empty() && (due || !waiting.is_empty()) {
            let body = encode(&batch, service);
            if let Err(e) = post(endpoint, &body) {
                tracing::warn!(endpoint = %endpoint.authority, error = %e, spans = batch.len(), "cannot export spans; they are dropped");
            }
            batch.clear();
            last_sent = std::time::Instant::now();
        }
        for done in waiting.drain(..) {
            let _ = done.try_send(());
        }
    }
}

/// POSTs one OTLP/JSON body; `Ok` on a 2xx answer.
fn post(endpoint: &Endpoint, body: &[u8]) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let timeout = Duration::from_secs(5);
    let addr = endpoint
        .authority
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("the endpoint resolves to no address")?;
    let mut conn =
        std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    conn.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        endpoint.path,
        endpoint.authority,
        body.len()
    );
    conn.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    conn.write_all(body).map_err(|e| e.to_string())?;
    let mut status = [0u8; 12];
    conn.read_exact(&mut status).map_err(|e| e.to_string())?;
    match &status[9..10] {
        b"2" => Ok(()),
        _ => Err(format!(
            "the collector answered `{}`",
            String::from_utf8_lossy(&status)
        )),
    }
}

fn nanos(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        .to_string()
}

/// `bytes` as a lower-case hex string.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut v = Vec::with_capacity(bytes.len() * 2);
    push_hex(&mut v, bytes);
    String::from_utf8(v).unwrap_or_default()
}

/// An `ExportTraceServiceRequest` in OTLP's JSON encoding (ids as hex, 64-bit integers as
/// strings), with the HTTP server semantic conventions as attributes.
fn encode(spans: &[Box<SpanRecord>], service: &str) -> Vec<u8> {
    let attr_s = |k: &str, v: &str| serde_json::json!({ "key": k, "value": { "stringValue": v } });
    let spans: Vec<serde_json::Value> = spans
        .iter()
        .map(|s| {
            let mut attributes = vec![
                attr_s("http.request.method", s.method.as_str()),
                attr_s("url.path", &s.path),
                serde_json::json!({ "key": "http.response.status_code", "value": { "intValue": s.status.to_string() } }),
            ];
            if let Some(route) = s.route {
                attributes.push(attr_s("http.route", route));
            }
            let mut span = serde_json::json!({
                "traceId": hex(&s.ctx.trace_id),
                "spanId": hex(&s.ctx.span_id),
                "name": s.name,
                "kind": 2,
                "startTimeUnixNano": nanos(s.start),
                "endTimeUnixNano": nanos(s.end),
                "attributes": attributes,
                "status": { "code": if s.status >= 500 { 2 } else { 0 } },
            });
            if let Some(parent) = s.parent {
                span["parentSpanId"] = hex(&parent).into();
            }
            span
        })
        .collect();
    let doc = serde_json::json!({
        "resourceSpans": [{
            "resource": { "attributes": [attr_s("service.name", service)] },
            "scopeSpans": [{
                "scope": { "name": "gwgen-runtime", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }],
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trip_and_refusals() {
        let v = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = parse_traceparent(v).unwrap();
        assert!(ctx.sampled);
        assert_eq!(traceparent(&ctx).as_bytes(), v);
        for bad in [
            &b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0"[..],
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(
                parse_traceparent(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A later version may carry more fields after a dash.
        assert!(
            parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x")
                .is_some()
        );
    }

    #[test]
    fn endpoints_from_the_standard_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(endpoint_from(env(&[])), Ok(None));
        assert_eq!(
            endpoint_from(env(&[(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://127.0.0.1:4318"
            )])),
            Ok(Some(Endpoint {
                authority: "127.0.0.1:4318".into(),
                path: "/v1/traces".into()
            }))
        );
        assert_eq!(
            endpoint_from(env(&[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://c:4318/custom"
            )])),
            Ok(Some(Endpoint {
                authority: "c:4318".into(),
                path: "/custom".into()
            }))
        );
        assert!(endpoint_from(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318")])).is_err());
        assert!(endpoint_from(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        ]))
        .is_err());
    }
}
