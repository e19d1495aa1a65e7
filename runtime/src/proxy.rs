//! The `http` integration: the request as the upstream gets it (hop-by-hop headers dropped,
//! `X-Forwarded-*` set, the body held to the limit), sent through the pool in [`crate::pool`],
//! and the answer as the client gets it.

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{header, HeaderValue, Uri};

use crate::integration::HttpIntegration;
use crate::pipeline::Exchange;

const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: http::HeaderName = http::HeaderName::from_static("x-forwarded-host");
use crate::observe::AccessRecord;
use crate::problem::Problem;

pub(crate) type Client = std::sync::Arc<crate::pool::Pool>;

/// Pooled keep-alive connections to upstreams, `http://` or `https://` (rustls; the system's
/// roots or `SSL_CERT_FILE`).
pub(crate) fn client() -> Client {
    crate::pool::Pool::new(crate::tls::connector())
}

/// Forwards the request to the integration's upstream and returns its answer.
///
/// A plain function returning an `async move` block, as `handle_request` is: the request is
/// kept once in its future, not twice.
#[allow(clippy::manual_async_fn)]
pub(crate) fn forward<'x, 'a, 'p>(
    x: &'x Exchange<'a, 'p>,
    h: &'x HttpIntegration,
    req: Request,
    record: &'x mut AccessRecord,
) -> impl std::future::Future<Output = Result<Response, Problem>> + use<'x, 'a, 'p> {
    async move {
        let gw = x.gw;
        let params = x.params.named(x.route.params);
        let (mut parts, body) = req.into_parts();
        // A transform reads the request as the client sent it, before anything below changes it.
        let (edits, json) = crate::transform::render_request(x, &mut parts);
        // The client's URI is taken out: the upstream's replaces it.
        let client_uri = std::mem::take(&mut parts.uri);
        let query = x.strip_credentials(&parts.extensions, &mut parts.headers, client_uri.query());
        let mut edits = edits;
        let query = match edits.as_mut().and_then(|e| e.query.take()) {
            Some(edited) => edited.map(std::borrow::Cow::Owned),
            None => query,
        };
        let path = edits.as_mut().and_then(|e| e.path.take());
        let url_of = |target: &crate::integration::UrlTemplate| {
            if path.is_none() {
                let client = client_uri.path_and_query();
                if let Some(uri) = target.origin_uri(x.segs, query.as_deref(), client) {
                    return Ok(uri);
                }
            }
            let url = match &path {
                Some(path) => target.with_path(&params, path, query.as_deref()),
                None => target.expand(&params, x.segs, query.as_deref()),
            };
            Uri::from_maybe_shared(bytes::Bytes::from(url)).map_err(|_| Problem::bad_gateway())
        };
        let client = h.client.as_ref().unwrap_or(&gw.client);
        // `TE: trailers` is the one connection field HTTP/2 carries (RFC 9113 §8.2.2): a gRPC
        // client says with it that it reads trailers, and gRPC servers ask for it.
        let trailers = client.is_http2() && accepts_trailers(&parts.headers);
        let trusted = x.strip_connection_headers(&mut parts.headers);
        if trailers {
            parts
                .headers
                .insert(header::TE, HeaderValue::from_static("trailers"));
        }
        let host = parts.headers.remove(header::HOST);
        // Every `X-Forwarded-For` line the client sent, in order, then the peer.
        let mut xff = Vec::with_capacity(64);
        for prev in parts.headers.get_all(X_FORWARDED_FOR) {
            xff.extend_from_slice(prev.as_bytes());
            xff.extend_from_slice(b", ");
        }
        crate::observe::push_ip(&mut xff, x.peer.ip());
        if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(xff)) {
            parts.headers.insert(X_FORWARDED_FOR, v);
        }
        // A trusted proxy's own account of the original request stands; anyone else's is replaced.
        if !(trusted && parts.headers.contains_key(X_FORWARDED_PROTO)) {
            parts
                .headers
                .insert(X_FORWARDED_PROTO, HeaderValue::from_static(gw.scheme()));
        }
        if let Some(host) = host {
            if !(trusted && parts.headers.contains_key(X_FORWARDED_HOST)) {
                parts.headers.insert(X_FORWARDED_HOST, host);
            }
        }
        // `x-request-id` is already the request's id (set by `handle_request`).
        // The gateway reads the answer (a body mapping) or codes it itself (`compression`): the
        // upstream is asked for it plain.
        let gateway_codes = x.route.compression.is_some_and(|c| c.responses.is_some())
            || x.route.transform.is_some_and(|t| t.maps_response_body());
        if gateway_codes {
            parts.headers.remove(header::ACCEPT_ENCODING);
        }
        let mut body = body;
        if let Some(mut edits) = edits {
            if let Some(mapped) = edits.mapped_body(json, &mut parts.headers)? {
                body = Body::from(mapped);
            }
            edits.apply_headers(&mut parts.headers);
        }
        parts.version = http::Version::HTTP_11;
        let body_limit = x.route.body_limit(gw);
        if let Some(b) = &h.upstreams {
            let req = http::Request::from_parts(parts, body);
            return Box::pin(balanced(x, h, b, req, url_of, record)).await;
        }
        parts.uri = url_of(&h.url)?;
        let limited = http_body_util::Limited::new(body, body_limit as usize);
        let upstream_req = http::Request::from_parts(parts, limited);
        let started = Instant::now();
        // Pinned where it is made: the deadline holds a reference, not another copy of the
        // call's future (over 800 bytes).
        let call = std::pin::pin!(client.request(upstream_req));
        let result = crate::deadline::timeout(h.timeout, call).await;
        record.integration_latency = Some(started.elapsed());
        match result {
            Err(_) => Err(Problem::gateway_timeout()),
            Ok(Err(e)) => Err(upstream_error(x, e, body_limit)),
            Ok(Ok(r)) => Ok(answer(r)),
        }
    }
}

/// Whether a `TE` field of the client's names `trailers`.
fn accepts_trailers(headers: &http::HeaderMap) -> bool {
    headers.get_all(header::TE).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|t| {
            let name = t.split(|&b| b == b';').next().unwrap_or_default();
            name.trim_ascii().eq_ignore_ascii_case(b"trailers")
        })
    })
}

/// The client's answer from the upstream's.
fn answer(resp: http::Response<Body>) -> Response {
    // The pool's answers come without hop-by-hop fields (see `pool::parse_head`).
    let (mut parts, body) = resp.into_parts();
    // The client's connection has its own version; the upstream's is not the client's business.
    parts.version = http::Version::HTTP_11;
    Response::from_parts(parts, Body::new(body))
}

/// What a failed exchange with the upstream is to the client.
fn upstream_error(x: &Exchange<'_, '_>, e: crate::pool::Error, body_limit: u64) -> Problem {
    if crate::progress::is_length_limit(&e) {
        return Problem::too_large(body_limit);
    }
    if let Some(max) = crate::compress::inflated_too_large(&e) {
        return Problem::too_large(max);
    }
    if crate::progress::is_stalled(&e) {
        return Problem::request_timeout();
    }
    if matches!(e, crate::pool::Error::Body(_)) {
        // The client's own body failed: malformed chunks, or a client that went away.
        return Problem::bad_request("the request body could not be read");
    }
    tracing::warn!(request_id = x.id, error = ?e, "upstream error");
    Problem::bad_gateway()
}

/// The request on one of several targets ([`crate::balance`]): chosen, retried on another when
/// that is safe, and each outcome counted towards ejecting a target.
async fn balanced(
    x: &Exchange<'_, '_>,
    h: &HttpIntegration,
    b: &std::sync::Arc<crate::balance::Balancer>,
    req: Request,
    url_of: impl Fn(&crate::integration::UrlTemplate) -> Result<Uri, Problem>,
    record: &mut AccessRecord,
) -> Result<Response, Problem> {
    use crate::balance::NoTarget;
    let (mut parts, body) = req.into_parts();
    let client = h.client.as_ref().unwrap_or(&x.gw.client);
    b.start_checks(client);
    b.earn();
    let body_limit = x.route.body_limit(x.gw);
    // Only a request that can run twice without harm, and whose body is not lost with the first
    // try, is tried again.
    let retryable = crate::pool::idempotent(&parts.method) && http_body::Body::is_end_stream(&body);
    let mut body = Some(body);
    let mut tried = smallvec::SmallVec::<[usize; 4]>::new();
    let mut wait = std::time::Duration::from_millis(25);
    loop {
        let flight = match b.pick(&tried) {
            Ok(f) => f,
            Err(NoTarget::Down) => {
                return Err(Problem::new(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable",
                    "no healthy upstream",
                ))
            }
            Err(NoTarget::Saturated) => {
                let mut p = Problem::new(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable",
                    "upstream overloaded",
                );
                p.headers
                    .push((header::RETRY_AFTER, HeaderValue::from_static("1")));
                return Err(p);
            }
        };
        let i = flight.index;
        tried.push(i);
        let mut req = http::Request::new(http_body_util::Limited::new(
            body.take().unwrap_or_default(),
            body_limit as usize,
        ));
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = url_of(&b.targets[i].url)?;
        *req.version_mut() = http::Version::HTTP_11;
        // A request tried once only keeps its headers; one that may be tried again copies them.
        *req.headers_mut() = if retryable && b.retries() > 0 {
            parts.headers.clone()
        } else {
            std::mem::take(&mut parts.headers)
        };
        let started = Instant::now();
        let call = std::pin::pin!(client.request(req));
        let result = crate::deadline::timeout(h.timeout, call).await;
        record.integration_latency = Some(started.elapsed());
        let failed = match &result {
            Err(_) | Ok(Err(crate::pool::Error::Connect(_) | crate::pool::Error::Io(_))) => true,
            Ok(Err(crate::pool::Error::Closed | crate::pool::Error::Protocol(_))) => true,
            Ok(Err(_)) => false,
            Ok(Ok(r)) => matches!(r.status().as_u16(), 502..=504),
        };
        b.outcome(i, !failed, started.elapsed());
        // A timeout is not tried again: the client has waited long enough.
        let again = failed
            && retryable
            && result.is_ok()
            && tried.len() <= b.retries() as usize
            && tried.len() < b.targets.len()
            && b.spend(i);
        if again {
            drop(flight);
            if let Ok(Ok(_)) = &result {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            tracing::info!(
                request_id = x.id,
                attempt = tried.len() + 1,
                "retrying on another upstream target"
            );
            continue;
        }
        return match result {
            Err(_) => Err(Problem::gateway_timeout()),
            Ok(Err(e)) => Err(upstream_error(x, e, body_limit)),
            // The request counts against its target (`max_requests`, `least_request`) until
            // the answer's body has been sent or dropped: a stream is a request in flight.
            Ok(Ok(r)) => {
                let flight = flight.owned(b);
                Ok(answer(r.map(|body| {
                    Body::new(crate::progress::Holding::new(body, flight))
                })))
            }
        };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn te_trailers_is_found_among_other_codings() {
        let accepts = |values: &[&str]| {
            let mut h = http::HeaderMap::new();
            for v in values {
                h.append(http::header::TE, v.parse().unwrap());
            }
            super::accepts_trailers(&h)
        };
        assert!(accepts(&["trailers"]));
        assert!(accepts(&["gzip;q=0.5, Trailers"]));
        assert!(accepts(&["gzip", "trailers;q=1"]));
        assert!(!accepts(&["gzip"]));
        assert!(!accepts(&["trailersx"]));
        assert!(!accepts(&[]));
    }
}
