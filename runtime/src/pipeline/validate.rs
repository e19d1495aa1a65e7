//! The validate phase: the body limit, then the request's parameters and body against the
//! spec's schemas (400 listing every violation, 413, 415); and, after the integration, the
//! answer against the spec when `validate.responses` asks for it.

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{header, StatusCode};

use super::Exchange;
use crate::problem::Problem;

/// The body checks every route makes before anything is read: a body the operation does not
/// declare, and a declared `Content-Length` over the limit.
pub(super) fn check_body(x: &Exchange<'_, '_>, req: &mut Request) -> Result<(), Problem> {
    undeclared_body(x, req)?;
    check_length(x.route.body_limit(x.gw), req)?;
    // A compressed body the route takes is inflated here, before anything reads it.
    #[cfg(feature = "compression")]
    if let Some(def) = x.route.compression.and_then(|c| c.requests.as_ref()) {
        crate::compress::inflate(Some(def), req)?;
    }
    Ok(())
}

/// Whether a request has a body: it says so by `Content-Length` other than 0 or by
/// `Transfer-Encoding` (RFC 9112 §6.1), even an empty chunked one.
fn has_body(h: &http::HeaderMap) -> bool {
    h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// A body sent to an operation that declares no `requestBody`: 400, or removed
/// (`limits.undeclared_body: drop`).
fn undeclared_body(x: &Exchange<'_, '_>, req: &mut Request) -> Result<(), Problem> {
    let Some(rule) = x.route.undeclared_body else {
        return Ok(());
    };
    if !has_body(req.headers()) {
        return Ok(());
    }
    match rule {
        crate::gateway::UndeclaredBody::Reject => {
            Err(Problem::bad_request("this operation takes no request body"))
        }
        crate::gateway::UndeclaredBody::Drop => {
            let h = req.headers_mut();
            h.remove(header::CONTENT_LENGTH);
            h.remove(header::TRANSFER_ENCODING);
            *req.body_mut() = axum::body::Body::empty();
            Ok(())
        }
    }
}

/// Refuses a request whose declared `Content-Length` is over the body limit, before any of it
/// is read. (Bodies without a length are held to the limit as they stream.)
fn check_length(limit: u64, req: &Request) -> Result<(), Problem> {
    match req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(len) if len > limit => Err(Problem::too_large(limit)),
        _ => Ok(()),
    }
}

/// Checks parameters and, when the operation takes one, the body (read whole, within the limit,
/// then handed on). Violations are a 400 listing every one; a media type the operation does not
/// accept is 415.
pub(super) async fn request(x: &Exchange<'_, '_>, req: &mut Request) -> Result<(), Problem> {
    let Some(v) = x.route.validation else {
        return Ok(());
    };
    counted(x, check_request(x, v, req).await)
}

/// [`request`] for a route whose checks are all in the request's head (see
/// [`crate::gateway::RouteDef::is_direct`]): nothing is awaited.
pub(super) fn head(x: &Exchange<'_, '_>, req: &Request) -> Result<(), Problem> {
    let Some(v) = x.route.validation else {
        return Ok(());
    };
    counted(x, check_head(x, v, req))
}

/// Counts a refused request in the metrics.
fn counted(x: &Exchange<'_, '_>, result: Result<(), Problem>) -> Result<(), Problem> {
    match result {
        Err(p)
            if p.status == StatusCode::BAD_REQUEST
                || p.status == StatusCode::UNSUPPORTED_MEDIA_TYPE =>
        {
            x.gw.metrics.invalid_request(x.route.template);
            Err(p)
        }
        result => result,
    }
}

fn reject(r: crate::validate::input::Rejection) -> Problem {
    use crate::validate::input::Rejection;
    match r {
        Rejection::Invalid(errors) => Problem::invalid(errors),
        Rejection::Unsupported(detail) => Problem::unsupported_media_type(detail),
        Rejection::TooLarge(detail) => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large", detail)
        }
    }
}

/// The parameters, and a body that is not read (an opaque media type) by its head.
fn check_head(
    x: &Exchange<'_, '_>,
    v: &crate::validate::input::RouteValidation,
    req: &Request,
) -> Result<(), Problem> {
    use crate::validate::input::RequestParts;
    v.check_params(&RequestParts {
        path: x.params.values(),
        query: req.uri().query(),
        headers: req.headers(),
    })
    .map_err(reject)?;
    if !v.reads_body() && v.requests && v.body.is_some() {
        let h = req.headers();
        let content_type = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        v.check_opaque_body(content_type, has_body(h))
            .map_err(reject)?;
    }
    Ok(())
}

async fn check_request(
    x: &Exchange<'_, '_>,
    v: &crate::validate::input::RouteValidation,
    req: &mut Request,
) -> Result<(), Problem> {
    check_head(x, v, req)?;
    if !v.reads_body() {
        return Ok(());
    }
    let limit = x.route.body_limit(x.gw);
    let body = std::mem::take(req.body_mut());
    let mut held = Held { gw: x.gw, bytes: 0 };
    let bytes = read_whole(body, limit, &mut held).await?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    v.check_body(content_type, &bytes).map_err(reject)?;
    drop(held);
    *req.body_mut() = Body::from(bytes);
    Ok(())
}

/// Reads the request body whole (within the route's body limit, counted against
/// `limits.validation_memory` while it is read) for a transform that reads it, and parses it as
/// JSON: `None` for an empty body, 400 for one that is not JSON. The request keeps its body.
pub(super) async fn json_body(
    x: &Exchange<'_, '_>,
    req: &mut Request,
) -> Result<Option<serde_json::Value>, Problem> {
    let limit = x.route.body_limit(x.gw);
    let body = std::mem::take(req.body_mut());
    let mut held = Held { gw: x.gw, bytes: 0 };
    let bytes = read_whole(body, limit, &mut held).await?;
    let parsed = if bytes.is_empty() {
        None
    } else {
        Some(serde_json::from_slice(&bytes).map_err(|_| {
            Problem::bad_request(
                "the request body is not JSON, which this operation's transform reads",
            )
        })?)
    };
    *req.body_mut() = Body::from(bytes);
    Ok(parsed)
}

/// Reads a request body whole, within `limit` (and the route's), counted against
/// `limits.validation_memory` while it is read.
#[cfg(feature = "lambda")]
pub(super) async fn whole_body(
    x: &Exchange<'_, '_>,
    body: Body,
    limit: u64,
) -> Result<bytes::Bytes, Problem> {
    let mut held = Held { gw: x.gw, bytes: 0 };
    read_whole(body, limit, &mut held).await
}

/// Bytes of request bodies held for validation, counted against
/// `limits.validation_memory` (gateway-wide) until dropped.
struct Held<'g> {
    gw: &'g crate::gateway::Gateway,
    bytes: u64,
}

impl Held<'_> {
    /// Counts `n` more bytes; `false` when the gateway holds too much already.
    fn take(&mut self, n: u64) -> bool {
        let taken = self.gw.validating.take(n);
        if taken {
            self.bytes += n;
        }
        taken
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.gw.validating.give(self.bytes);
    }
}

/// Reads a body whole, within `limit`, counting what it holds in `held`: 413 past the limit,
/// 503 past the gateway's validation memory, 408 when the client stops sending.
async fn read_whole(body: Body, limit: u64, held: &mut Held<'_>) -> Result<bytes::Bytes, Problem> {
    use http_body_util::BodyExt;
    let mut body = body;
    // A body that comes in one frame is kept as it came; more are copied together.
    let mut first: Option<bytes::Bytes> = None;
    let mut more = bytes::BytesMut::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if let Some(max) = crate::compress::inflated_too_large(&e) {
                Problem::too_large(max)
            } else if crate::progress::is_stalled(&e) {
                Problem::request_timeout()
            } else {
                Problem::bad_request("the request body could not be read")
            }
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        len += data.len() as u64;
        if len > limit {
            return Err(Problem::too_large(limit));
        }
        if !held.take(data.len() as u64) {
            let mut p = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "the gateway is validating too many request bodies at once",
            );
            p.headers
                .push((header::RETRY_AFTER, http::HeaderValue::from_static("1")));
            return Err(p);
        }
        match first.take() {
            None if more.is_empty() => first = Some(data),
            None => more.extend_from_slice(&data),
            Some(f) => {
                more.reserve(f.len() + data.len());
                more.extend_from_slice(&f);
                more.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| more.freeze()))
}

/// Response validation (`validate.responses`): the answer is read whole and checked against the
/// spec's schema for its status and media type. `log` logs and counts a violation and passes the
/// answer on; `enforce` replaces it with 502.
pub(super) async fn response(
    x: &Exchange<'_, '_>,
    v: &crate::validate::input::RouteValidation,
    mode: crate::stage::ResponseMode,
    resp: Response,
) -> Result<Response, Problem> {
    let (gw, route, id) = (x.gw, x.route, x.id);
    const MAX_CHECKED: usize = 16 << 20;
    let (parts, body) = resp.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_CHECKED);
    let bytes = match http_body_util::BodyExt::collect(limited).await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Err(Problem::bad_gateway()),
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if let Err(errors) = v.check_response(parts.status.as_u16(), content_type, &bytes) {
        gw.metrics.invalid_response(route.template);
        let list: Vec<serde_json::Value> = errors
            .iter()
            .map(|e| serde_json::json!({"pointer": e.pointer, "keyword": e.keyword, "message": e.message}))
            .collect();
        tracing::warn!(
            request_id = id,
            route = route.key,
            status = parts.status.as_u16(),
            errors = %serde_json::Value::Array(list),
            "the upstream answer does not conform to the spec"
        );
        if mode == crate::stage::ResponseMode::Enforce {
            let mut p = Problem::new(
                StatusCode::BAD_GATEWAY,
                "Bad Gateway",
                "the upstream answer does not conform to the API's schema",
            );
            p.errors = errors;
            return Err(p);
        }
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}
