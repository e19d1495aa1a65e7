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
    let (gw, route) = (at.gw, at.route);
    let response_mode = route
        .validation
        .and_then(|v| v.response_mode)
        .or(gw.response_mode)
        .filter(|m| *m != crate::stage::ResponseMode::Off);
    let result = serve(at, req, record).await;
    match (response_mode, route.validation, result) {
        (Some(mode), Some(v), Ok(resp)) if !v.responses.is_empty() => {
            super::validate::response(at, v, mode, resp).await
        }
        (_, _, result) => result,
    }
}

/// Answers the request from the route's integration.
pub(super) async fn serve(
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
            let mut r = Response::new(body);
            *r.status_mut() = StatusCode::from_u16(m.status).unwrap_or(StatusCode::OK);
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
