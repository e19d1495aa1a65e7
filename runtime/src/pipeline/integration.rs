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
pub(super) async fn serve_checked(
    at: &Exchange<'_, '_>,
    req: Request,
    record: &mut AccessRecord,
) -> Result<Response, Problem> {
    let check = at.route.response_check(at.gw);
    let result = serve(at, req, record).await;
    match (check, result) {
        (Some((mode, v)), Ok(resp)) => super::validate::response(at, v, mode, resp).await,
        (_, result) => result,
    }
}

/// Answers the request from the route's integration, through the route's response transform.
pub(super) async fn serve(
    x: &Exchange<'_, '_>,
    req: Request,
    record: &mut AccessRecord,
) -> Result<Response, Problem> {
    let Some(t) = x.route.transform else {
        return answer(x, req, record).await;
    };
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
async fn answer(
    x: &Exchange<'_, '_>,
    req: Request,
    record: &mut AccessRecord,
) -> Result<Response, Problem> {
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
        #[cfg(feature = "proxy")]
        Integration::Http(h) => Box::pin(crate::proxy::forward(x, h, req, record)).await,
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
