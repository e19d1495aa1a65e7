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
    check_length(x.route.body_limit(x.gw), req)
}

/// A body sent to an operation that declares no `requestBody`: 400, or removed
/// (`limits.undeclared_body: drop`). A message has a body when it says so by `Content-Length`
/// other than 0 or by `Transfer-Encoding` (RFC 9112 §6.1), even an empty chunked one.
fn undeclared_body(x: &Exchange<'_, '_>, req: &mut Request) -> Result<(), Problem> {
    let Some(rule) = x.route.undeclared_body else {
        return Ok(());
    };
    let h = req.headers();
    let has_body = h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if !has_body {
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
    match check_request(x.route.body_limit(x.gw), v, req, x.params.values()).await {
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

async fn check_request(
    limit: u64,
    v: &crate::validate::input::RouteValidation,
    req: &mut Request,
    path: &[&str],
) -> Result<(), Problem> {
    use crate::validate::input::{Rejection, RequestParts};
    let reject = |r: Rejection| match r {
        Rejection::Invalid(errors) => Problem::invalid(errors),
        Rejection::Unsupported(detail) => Problem::unsupported_media_type(detail),
    };
    v.check_params(&RequestParts {
        path,
        query: req.uri().query(),
        headers: req.headers(),
    })
    .map_err(reject)?;
    if !v.reads_body() {
        return Ok(());
    }
    let body = std::mem::take(req.body_mut());
    let limited = http_body_util::Limited::new(body, limit as usize);
    let bytes = match http_body_util::BodyExt::collect(limited).await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return Err(if e.is::<http_body_util::LengthLimitError>() {
                Problem::too_large(limit)
            } else if crate::progress::is_stalled(&*e) {
                Problem::request_timeout()
            } else {
                Problem::bad_request("the request body could not be read")
            })
        }
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    v.check_body(content_type, &bytes).map_err(reject)?;
    *req.body_mut() = Body::from(bytes);
    Ok(())
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
