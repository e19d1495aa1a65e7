//! The integration phase: the route's integration answers (a mock from data compiled into the
//! gateway, or the upstream through [`crate::proxy`]), then, when `validate.responses` asks for
//! it, the answer is checked against the spec.

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{header, HeaderValue, Method, StatusCode};

use super::Exchange;
use crate::integration::Integration;
use crate::observe::AccessRecord;
use crate::problem::Problem;

/// The integration, then response validation when the spec asks for it.
///
/// A plain function returning an `async move` block, as `handle_request` is: the request is
/// kept once in its future, not twice.
#[allow(clippy::manual_async_fn)]
pub(super) fn serve_checked<'x, 'a, 'p>(
    at: &'x Exchange<'a, 'p>,
    req: Request,
    record: &'x mut AccessRecord,
) -> impl std::future::Future<Output = Result<Response, Problem>> + use<'x, 'a, 'p> {
    async move {
        let check = at.route.response_check(at.gw);
        let result = serve(at, req, record).await;
        match (check, result) {
            (Some((mode, v)), Ok(resp)) => super::validate::response(at, v, mode, resp).await,
            (_, result) => result,
        }
    }
}

/// Answers the request from the route's integration, through the route's response transform.
///
/// A plain function returning an `async move` block, as `handle_request` is: the request is
/// kept once in its future, not twice.
#[allow(clippy::manual_async_fn)]
pub(super) fn serve<'x, 'a, 'p>(
    x: &'x Exchange<'a, 'p>,
    req: Request,
    record: &'x mut AccessRecord,
) -> impl std::future::Future<Output = Result<Response, Problem>> + use<'x, 'a, 'p> {
    async move {
        match x.route.transform {
            None => answer(x, req, record).await,
            // Boxed: it is rare, and its request copy and the response transform's future would
            // otherwise make every route's future, held for each open connection, three times
            // larger.
            Some(t) => Box::pin(transformed(x, t, req, record)).await,
        }
    }
}

/// [`serve`] for a route with a transform.
async fn transformed(
    x: &Exchange<'_, '_>,
    t: &'static crate::transform::TransformDef,
    req: Request,
    record: &mut AccessRecord,
) -> Result<Response, Problem> {
    let mut req = req;
    if t.reads_request_body() {
        let json = super::validate::json_body(x, &mut req).await?;
        req.extensions_mut()
            .insert(crate::transform::RequestJson(json.map(std::sync::Arc::new)));
    }
    if !t.edits_response() {
        return answer(x, req, record).await;
    }
    let copy = crate::transform::RequestCopy::of(t, &req);
    let resp = answer(x, req, record).await?;
    crate::transform::apply_response(t, copy.as_ref(), x, resp).await
}

/// The route's integration's answer.
///
/// A plain function returning an `async move` block, as `handle_request` is: the request is
/// kept once in its future, not twice.
#[allow(clippy::manual_async_fn)]
fn answer<'x, 'a, 'p>(
    x: &'x Exchange<'a, 'p>,
    req: Request,
    record: &'x mut AccessRecord,
) -> impl std::future::Future<Output = Result<Response, Problem>> + use<'x, 'a, 'p> {
    async move {
        match &x.route.integration {
            Integration::Mock(m) => {
                let body = if req.method() == Method::HEAD {
                    Body::empty()
                } else {
                    Body::from(m.body.clone())
                };
                let status = m
                    .status_from
                    .and_then(|t| crate::transform::status_from(t, x, &req))
                    .unwrap_or(m.status);
                let mut r = Response::new(body);
                *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                if let Some(ct) = m.content_type {
                    r.headers_mut()
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
                }
                if req.method() == Method::HEAD {
                    r.headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(m.body.len()));
                }
                Ok(r)
            }
            #[cfg(feature = "lambda")]
            Integration::Lambda(l) => Box::pin(lambda(x, l, req, record)).await,
            #[cfg(feature = "websocket")]
            Integration::WebSocket(api) => Box::pin(crate::websocket::accept(x, api, req)).await,
            #[cfg(feature = "proxy")]
            // Not boxed, unlike the rarer integrations: a box is one more allocation and one
            // more copy of the future on every proxied request.
            Integration::Http(h) => crate::proxy::forward(x, h, req, record).await,
            #[cfg(not(feature = "proxy"))]
            Integration::Http(_) => {
                let _ = record;
                Err(Problem::new(
                    StatusCode::NOT_IMPLEMENTED,
                    "Not Implemented",
                    "this gateway was built without the http integration",
                ))
            }
        }
    }
}

/// A Lambda function's answer: the request as API Gateway's proxy event, the function's answer
/// as API Gateway reads it ([`crate::lambda`]).
#[cfg(feature = "lambda")]
async fn lambda(
    x: &Exchange<'_, '_>,
    l: &crate::lambda::LambdaIntegration,
    req: Request,
    record: &mut AccessRecord,
) -> Result<Response, Problem> {
    use crate::lambda::{event, Failure, PayloadFormat};
    let (mut parts, body) = req.into_parts();
    // A transform reads the request as the client sent it; its edits apply to the event as they
    // would to an upstream request (headers, query, path, body).
    let (edits, json) = crate::transform::render_request(x, &mut parts);
    let mut edits = edits;
    // The function gets what an upstream would: no hop-by-hop headers, no credential that was
    // not verified, no client copy of the gateway's own `X-Gateway-*` fields.
    let query = x.strip_credentials(&parts.extensions, &mut parts.headers, parts.uri.query());
    let query = match edits.as_mut().and_then(|e| e.query.take()) {
        Some(edited) => edited.map(std::borrow::Cow::Owned),
        None => query,
    };
    let rewritten = edits.as_mut().and_then(|e| e.path.take());
    x.strip_connection_headers(&mut parts.headers);
    let limit = x
        .route
        .body_limit(x.gw)
        .min(crate::lambda::local::MAX_PAYLOAD as u64);
    let mut body = super::validate::whole_body(x, body, limit).await?;
    if let Some(mut edits) = edits {
        if let Some(mapped) = edits.mapped_body(json, &mut parts.headers)? {
            body = bytes::Bytes::from(mapped);
        }
        edits.apply_headers(&mut parts.headers);
    }
    let path = rewritten.unwrap_or_else(|| {
        let mut path = String::with_capacity(64);
        crate::path::encode_path(&mut path, x.segs);
        path
    });
    let request = event::Request {
        method: parts.method.as_str(),
        path: &path,
        query: query.as_deref(),
        headers: &parts.headers,
        resource: x.route.template,
        params: x.params.named(x.route.params).iter().collect(),
        stage: &x.gw.stage,
        stage_variables: &x.gw.stage_variables,
        request_id: x.id,
        source_ip: x.client.to_string(),
        identity: parts.extensions.get::<crate::auth::Identity>(),
        client_cert: x.cert,
        body: &body,
        binary: event::is_binary(l.format, l.binary, parts.headers.get(header::CONTENT_TYPE)),
        time: std::time::SystemTime::now(),
    };
    let payload = match l.format {
        PayloadFormat::V1 => request.v1(),
        PayloadFormat::V2 => request.v2(x.route.key),
    };
    let started = std::time::Instant::now();
    let result = l
        .function
        .invoke(bytes::Bytes::from(payload.to_string()), l.timeout)
        .await;
    record.integration_latency = Some(started.elapsed());
    let failed = |why: &str| {
        tracing::warn!(
            route = x.route.key,
            request_id = x.id,
            error = why,
            "the Lambda function failed"
        );
        Problem::new(
            StatusCode::BAD_GATEWAY,
            "Bad Gateway",
            "Internal server error",
        )
    };
    let answer = match result {
        Ok(answer) => answer,
        Err(Failure::Function(e)) => return Err(failed(&String::from_utf8_lossy(&e))),
        Err(Failure::Unavailable(e)) => return Err(failed(&e)),
        Err(Failure::Timeout) => {
            return Err(Problem::new(
                StatusCode::GATEWAY_TIMEOUT,
                "Gateway Timeout",
                "Endpoint request timed out",
            ))
        }
    };
    let answer = event::answer(l.format, &answer)
        .map_err(|m| failed(&format!("Malformed Lambda proxy response: {}", m.0)))?;
    let mut resp = if parts.method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(answer.body))
    };
    *resp.status_mut() = answer.status;
    *resp.headers_mut() = answer.headers;
    Ok(resp)
}
