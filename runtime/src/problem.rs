//! Errors as RFC 9457 `application/problem+json` responses.
//!
//! Every error the gateway answers is a [`Problem`]: who is at fault decides the status, and the
//! detail never carries internals (upstream addresses, Rust errors) to the client; those go to the
//! log instead.

use axum::body::Body;
use axum::response::Response;
use http::{header, HeaderValue, StatusCode};

/// One error answer.
#[derive(Debug, Clone)]
pub struct Problem {
    /// HTTP status.
    pub status: StatusCode,
    /// A short, fixed title for the kind of problem.
    pub title: &'static str,
    /// What happened, for the client.
    pub detail: String,
    /// Extra headers (`Allow`, `Retry-After`, …).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// Validation violations, listed as `errors`.
    pub errors: Vec<crate::validate::Violation>,
}

impl Problem {
    /// A problem with a status, title and detail.
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            title,
            detail: detail.into(),
            headers: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// 404: no route matches the path.
    pub fn not_found(path: &str) -> Self {
        Problem::new(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("no route matches {path}"),
        )
    }

    /// 405 with `Allow`.
    pub fn method_not_allowed(method: &http::Method, allow: &'static str) -> Self {
        let mut p = Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
            format!("{method} is not allowed here; allowed: {allow}"),
        );
        p.headers
            .push((header::ALLOW, HeaderValue::from_static(allow)));
        p
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "Bad Request", detail)
    }

    /// 400 listing every violation of the spec's schemas.
    pub fn invalid(errors: Vec<crate::validate::Violation>) -> Self {
        let detail = match errors.len() {
            1 => "the request does not conform to the API's schema: 1 violation".to_string(),
            n => format!("the request does not conform to the API's schema: {n} violations"),
        };
        let mut p = Problem::new(StatusCode::BAD_REQUEST, "Bad Request", detail);
        p.errors = errors;
        p
    }

    /// 415: the body's media type is not accepted.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type",
            detail,
        )
    }

    /// 502: the upstream could not be reached or answered nonsense.
    pub fn bad_gateway() -> Self {
        Problem::new(
            StatusCode::BAD_GATEWAY,
            "Bad Gateway",
            "the upstream service could not be reached",
        )
    }

    /// 504: the upstream did not answer in time.
    pub fn gateway_timeout() -> Self {
        Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Gateway Timeout",
            "the upstream service did not answer in time",
        )
    }

    /// 413: the body is larger than allowed.
    pub fn too_large(limit: u64) -> Self {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Payload Too Large",
            format!("the request body exceeds {limit} bytes"),
        )
    }

    /// 431: the headers are larger than allowed.
    pub fn headers_too_large(limit: u64) -> Self {
        Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "Request Header Fields Too Large",
            format!("the request headers exceed {limit} bytes"),
        )
    }

    /// The response, with the request id in the body.
    pub fn into_response(self, request_id: &str) -> Response {
        let mut body = serde_json::json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
            "requestId": request_id,
        });
        if !self.errors.is_empty() {
            body["errors"] = self
                .errors
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "pointer": v.pointer,
                        "keyword": v.keyword,
                        "message": v.message,
                    })
                })
                .collect();
        }
        let mut resp = Response::new(Body::from(body.to_string()));
        *resp.status_mut() = self.status;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        for (k, v) in self.headers {
            resp.headers_mut().insert(k, v);
        }
        resp
    }
}
