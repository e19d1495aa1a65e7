//! The cache's storage: memory (moka) or Redis, and the capture of answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::MAX_ENTRY;
use crate::observe::Metrics;
use crate::problem::Problem;
#[cfg(feature = "redis")]
use crate::state::Fallback;
use crate::state::Shared;

/// A stored answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    route: usize,
    status: u16,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The request headers the answer varies on, and their values when it was stored.
    vary: Vec<(HeaderName, Option<HeaderValue>)>,
    body: Bytes,
    stored_ms: u64,
    ttl_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Entry {
    fn weight(&self) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 16)
            .sum();
        (self.body.len() + headers + 128).min(u32::MAX as usize) as u32
    }

    fn fresh(&self, now: u64) -> bool {
        now < self.stored_ms.saturating_add(self.ttl_ms)
    }

    fn matches(&self, request: &HeaderMap) -> bool {
        self.vary
            .iter()
            .all(|(name, value)| request.get(name) == value.as_ref())
    }

    /// The answer, marked `X-Cache: Hit` or `Miss`, with its `Age`.
    pub fn response(&self, hit: bool, head: bool) -> Response {
        let body = if head {
            Body::empty()
        } else {
            Body::from(self.body.clone())
        };
        let mut r = Response::new(body);
        *r.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let h = r.headers_mut();
        for (k, v) in &self.headers {
            h.append(k.clone(), v.clone());
        }
        h.insert(
            "x-cache",
            HeaderValue::from_static(if hit { "Hit" } else { "Miss" }),
        );
        if hit {
            let age = now_ms().saturating_sub(self.stored_ms) / 1000;
            h.insert(header::AGE, HeaderValue::from(age));
        }
        r
    }

    /// The Redis form: a versioned, length-prefixed record.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 256);
        out.extend_from_slice(b"GWC1");
        out.extend_from_slice(&self.stored_ms.to_be_bytes());
        out.extend_from_slice(&self.ttl_ms.to_be_bytes());
        out.extend_from_slice(&self.status.to_be_bytes());
        let put = |out: &mut Vec<u8>, b: &[u8]| {
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
        };
        out.extend_from_slice(&(self.headers.len() as u32).to_be_bytes());
        for (k, v) in &self.headers {
            put(&mut out, k.as_str().as_bytes());
            put(&mut out, v.as_bytes());
        }
        out.extend_from_slice(&(self.vary.len() as u32).to_be_bytes());
        for (k, v) in &self.vary {
            put(&mut out, k.as_str().as_bytes());
            match v {
                Some(v) => {
                    out.push(1);
                    put(&mut out, v.as_bytes());
                }
                None => out.push(0),
            }
        }
        put(&mut out, &self.body);
        out
    }

    /// Reads [`Entry::encode`]'s form; `None` for anything else.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    fn decode(route: usize, b: &[u8]) -> Option<Entry> {
        struct R<'a>(&'a [u8]);
        impl<'a> R<'a> {
            fn take(&mut self, n: usize) -> Option<&'a [u8]> {
                (self.0.len() >= n).then(|| {
                    let (a, b) = self.0.split_at(n);
                    self.0 = b;
                    a
                })
            }
            fn u32(&mut self) -> Option<usize> {
                Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize)
            }
            fn u64(&mut self) -> Option<u64> {
                Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
            }
            fn bytes(&mut self) -> Option<&'a [u8]> {
                let n = self.u32()?;
                self.take(n)
            }
        }
        let mut r = R(b);
        if r.take(4)? != b"GWC1" {
            return None;
        }
        let stored_ms = r.u64()?;
        let ttl_ms = r.u64()?;
        let status = u16::from_be_bytes(r.take(2)?.try_into().ok()?);
        let n = r.u32()?;
        let mut headers = Vec::with_capacity(n.min(256));
        for _ in 0..n {
            let k = HeaderName::from_bytes(r.bytes()?).ok()?;
            let v = HeaderValue::from_bytes(r.bytes()?).ok()?;
            headers.push((k, v));
        }
        let n = r.u32()?;
        let mut vary = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let k = HeaderName::from_bytes(r.bytes()?).ok()?;
            let v = match r.take(1)?[0] {
                1 => Some(HeaderValue::from_bytes(r.bytes()?).ok()?),
                _ => None,
            };
            vary.push((k, v));
        }
        let body = Bytes::copy_from_slice(r.bytes()?);
        Some(Entry {
            route,
            status,
            headers,
            vary,
            body,
            stored_ms,
            ttl_ms,
        })
    }
}

struct PerEntryTtl;

impl moka::Expiry<Vec<u8>, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &Vec<u8>,
        value: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(Duration::from_millis(value.ttl_ms))
    }
}

/// What a lookup found.
pub enum Lookup {
    /// A fresh entry.
    Hit(Arc<Entry>),
    /// Nothing; this request fetches and stores (the guard ends the flight when dropped).
    Lead(Flight),
    /// Another request of the same key is fetching: wait on this, then look again.
    Wait(tokio::sync::watch::Receiver<()>),
}

/// One in-flight fetch of a key; dropping it wakes the requests that wait for it.
pub struct Flight {
    inflight: Arc<Mutex<HashMap<Vec<u8>, tokio::sync::watch::Receiver<()>>>>,
    key: Vec<u8>,
    _done: tokio::sync::watch::Sender<()>,
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// The gateway's response cache.
pub struct ResponseCache {
    memory: moka::sync::Cache<Vec<u8>, Arc<Entry>>,
    counts: Arc<Vec<AtomicU64>>,
    shared: Option<Arc<Shared>>,
    inflight: Arc<Mutex<HashMap<Vec<u8>, tokio::sync::watch::Receiver<()>>>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("entries", &self.memory.entry_count())
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

impl ResponseCache {
    /// A cache of at most `bytes` in memory, for `routes` routes, on `shared` state if given.
    pub fn new(
        bytes: u64,
        routes: usize,
        shared: Option<Arc<Shared>>,
        metrics: Arc<Metrics>,
    ) -> ResponseCache {
        let counts: Arc<Vec<AtomicU64>> =
            Arc::new((0..routes).map(|_| AtomicU64::new(0)).collect());
        let listener_counts = counts.clone();
        let memory = moka::sync::Cache::builder()
            .max_capacity(bytes)
            .weigher(|_k: &Vec<u8>, v: &Arc<Entry>| v.weight())
            .expire_after(PerEntryTtl)
            .eviction_listener(move |_k, v: Arc<Entry>, _cause| {
                if let Some(c) = listener_counts.get(v.route) {
                    let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some(n.saturating_sub(1))
                    });
                }
            })
            .build();
        ResponseCache {
            memory,
            counts,
            shared,
            inflight: Arc::default(),
            metrics,
        }
    }

    /// Counts a cache decision.
    pub fn count(&self, route: &'static str, result: &'static str) {
        self.metrics
            .count("gwgen_cache_requests_total", route, result);
    }

    /// Looks `key` up; on a miss, either leads the fetch or waits for the one in flight.
    pub async fn lookup(
        &self,
        route: usize,
        key: &[u8],
        request: &HeaderMap,
        coalesce: bool,
    ) -> Result<Lookup, Problem> {
        if let Some(e) = self.get(route, key).await? {
            if e.matches(request) {
                return Ok(Lookup::Hit(e));
            }
        }
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if coalesce {
            if let Some(rx) = inflight.get(key) {
                return Ok(Lookup::Wait(rx.clone()));
            }
        }
        let (tx, rx) = tokio::sync::watch::channel(());
        inflight.insert(key.to_vec(), rx);
        Ok(Lookup::Lead(Flight {
            inflight: self.inflight.clone(),
            key: key.to_vec(),
            _done: tx,
        }))
    }

    /// A fresh entry, from Redis or memory.
    pub async fn get(&self, route: usize, key: &[u8]) -> Result<Option<Arc<Entry>>, Problem> {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            let cmd = {
                let mut c = redis::cmd("GET");
                c.arg(redis_key(shared, key));
                c
            };
            match shared
                .command::<Option<Vec<u8>>>("a cache lookup", cmd)
                .await
            {
                Ok(v) => {
                    return Ok(v
                        .and_then(|b| Entry::decode(route, &b))
                        .filter(|e| e.fresh(now_ms()))
                        .map(Arc::new))
                }
                Err(_) if shared.fallback == Fallback::Deny => return Err(unavailable()),
                Err(_) => {}
            }
        }
        let _ = (&self.shared, route);
        Ok(self.memory.get(key).filter(|e| e.fresh(now_ms())))
    }

    /// Stores an answer under `key` if the route has room; Redis failures fall back to memory.
    pub async fn put(&self, key: &[u8], entry: Entry, max_entries: Option<u64>) {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            let mut c = redis::cmd("SET");
            c.arg(redis_key(shared, key))
                .arg(entry.encode())
                .arg("PX")
                .arg(entry.ttl_ms.max(1));
            match shared.command::<()>("a cache store", c).await {
                Ok(()) => return,
                Err(_) if shared.fallback == Fallback::Deny => return,
                Err(_) => {}
            }
        }
        let Some(count) = self.counts.get(entry.route) else {
            return;
        };
        let replacing = self.memory.contains_key(key);
        if !replacing {
            if let Some(max) = max_entries {
                if count.load(Ordering::Relaxed) >= max {
                    return;
                }
            }
        }
        count.fetch_add(1, Ordering::Relaxed);
        self.memory.insert(key.to_vec(), Arc::new(entry));
    }
}

#[cfg(feature = "redis")]
fn redis_key(shared: &Shared, key: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(key);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}cache:{hex}", shared.prefix)
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
fn unavailable() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Service Unavailable",
        "the response cache cannot be reached right now",
    )
}

/// Reads an answer for storing: `Ok` with the entry when it may be cached, `Err` with the
/// answer to pass on unchanged otherwise (its body re-assembled if reading had begun).
pub async fn capture(
    route: usize,
    ttl_ms: u64,
    request: &HeaderMap,
    resp: Response,
) -> Result<Entry, Response> {
    let (parts, body) = resp.into_parts();
    let cacheable = parts.status.is_success()
        && parts.status != http::StatusCode::PARTIAL_CONTENT
        && !parts.headers.contains_key(header::CONTENT_RANGE)
        && !parts.headers.contains_key(header::SET_COOKIE)
        && !parts
            .headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|d| d.trim().to_ascii_lowercase())
            .any(|d| d.starts_with("no-store") || d.starts_with("private"))
        && parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_none_or(|n| n <= MAX_ENTRY);
    let vary_names: Vec<String> = parts
        .headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if !cacheable || vary_names.iter().any(|v| v == "*") {
        return Err(Response::from_parts(parts, body));
    }
    // Read up to the limit; a longer body goes on as it came, what was read first included.
    let mut body = body;
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut size = 0usize;
    loop {
        match http_body_util::BodyExt::frame(&mut body).await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    size += data.len();
                    chunks.push(data);
                    if size > MAX_ENTRY {
                        let rest = Prefixed {
                            chunks: chunks.into(),
                            rest: body,
                        };
                        return Err(Response::from_parts(parts, Body::new(rest)));
                    }
                }
            }
            Some(Err(_)) => {
                return Err(Problem::bad_gateway().into_response("-"));
            }
        }
    }
    let body = if chunks.len() == 1 {
        chunks.pop().unwrap_or_default()
    } else {
        let mut all = Vec::with_capacity(size);
        for c in &chunks {
            all.extend_from_slice(c);
        }
        Bytes::from(all)
    };
    let skip = |k: &HeaderName| {
        matches!(
            k.as_str(),
            "x-request-id" | "age" | "x-cache" | "date" | "content-length"
        ) || k.as_str().starts_with("ratelimit-")
    };
    let headers = parts
        .headers
        .iter()
        .filter(|(k, _)| !skip(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let vary = vary_names
        .iter()
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .map(|n| {
            let v = request.get(&n).cloned();
            (n, v)
        })
        .collect();
    Ok(Entry {
        route,
        status: parts.status.as_u16(),
        headers,
        vary,
        body,
        stored_ms: now_ms(),
        ttl_ms,
    })
}

/// A body whose first chunks were already read.
struct Prefixed {
    chunks: std::collections::VecDeque<Bytes>,
    rest: Body,
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Some(c) = self.chunks.pop_front() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(c))));
        }
        std::pin::Pin::new(&mut self.rest).poll_frame(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_the_redis_form_and_garbage_is_refused() {
        let e = Entry {
            route: 3,
            status: 203,
            headers: vec![(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
            vary: vec![
                (
                    header::ACCEPT_LANGUAGE,
                    Some(HeaderValue::from_static("fr")),
                ),
                (header::ACCEPT, None),
            ],
            body: Bytes::from_static(b"bonjour"),
            stored_ms: 42,
            ttl_ms: 1000,
        };
        assert_eq!(Entry::decode(3, &e.encode()), Some(e.clone()));
        let bytes = e.encode();
        for cut in 0..bytes.len() {
            assert!(Entry::decode(3, &bytes[..cut]).is_none());
        }
        assert!(Entry::decode(3, b"GWC2").is_none());
    }
}
