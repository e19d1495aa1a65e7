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
    /// The AWS gateway-response type, where the status alone does not tell it
    /// (`QUOTA_EXCEEDED`, `INVALID_API_KEY`, …).
    pub kind: Option<&'static str>,
}

/// A `gateway_responses` entry: what the spec puts in place of the gateway's own error answers of
/// one AWS gateway-response type.
#[derive(Debug, Clone, Copy)]
pub struct CustomResponse {
    /// `THROTTLED`, `DEFAULT_4XX`, ….
    pub kind: &'static str,
    /// The status to answer with instead.
    pub status: Option<u16>,
    /// A JSON body (text) to answer with instead; in its strings `$context.error.message`,
    /// `$context.error.responseType` and `$context.requestId` are replaced.
    pub body: Option<&'static str>,
    /// Headers to set.
    pub headers: &'static [(&'static str, &'static str)],
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
            kind: None,
        }
    }

    /// Marks the AWS gateway-response type.
    pub fn kind(mut self, kind: &'static str) -> Self {
        self.kind = Some(kind);
        self
    }

    /// The AWS gateway-response type of this answer.
    pub fn response_type(&self) -> &'static str {
        if let Some(k) = self.kind {
            return k;
        }
        match self.status.as_u16() {
            400 if self
                .errors
                .iter()
                .any(|e| e.pointer.is_empty() || e.pointer.starts_with('/')) =>
            {
                "BAD_REQUEST_BODY"
            }
            400 if !self.errors.is_empty() => "BAD_REQUEST_PARAMETERS",
            401 => "UNAUTHORIZED",
            403 => "ACCESS_DENIED",
            404 => "RESOURCE_NOT_FOUND",
            405 => "METHOD_NOT_ALLOWED",
            413 => "REQUEST_TOO_LARGE",
            415 => "UNSUPPORTED_MEDIA_TYPE",
            429 => "THROTTLED",
            502 => "INTEGRATION_FAILURE",
            504 => "INTEGRATION_TIMEOUT",
            s if s >= 500 => "DEFAULT_5XX",
            _ => "DEFAULT_4XX",
        }
    }

    /// The response, as the spec's `gateway_responses` reshape it: the entry of this answer's
    /// type, else `DEFAULT_4XX` or `DEFAULT_5XX`, else the problem document as it is.
    pub fn into_custom_response(self, request_id: &str, custom: &[CustomResponse]) -> Response {
        if custom.is_empty() {
            return self.into_response(request_id);
        }
        let kind = self.response_type();
        let class = if self.status.is_server_error() {
            "DEFAULT_5XX"
        } else {
            "DEFAULT_4XX"
        };
        let Some(c) = custom
            .iter()
            .find(|c| c.kind == kind)
            .or_else(|| custom.iter().find(|c| c.kind == class))
        else {
            return self.into_response(request_id);
        };
        let detail = self.detail.clone();
        // AWS's `$context.error.validationErrorString`: the validation errors, listed.
        let validation = format!(
            "[{}]",
            self.errors
                .iter()
                .map(|e| match e.pointer.as_str() {
                    "" => e.message.to_string(),
                    at => format!("{at}: {}", e.message),
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut resp = match c
            .body
            .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        {
            Some(mut body) => {
                let vars = Vars {
                    message: &detail,
                    kind,
                    request_id,
                    validation: &validation,
                };
                fill(&mut body, &vars);
                let status = self.status;
                let headers = self.headers;
                let mut r = Response::new(Body::from(body.to_string()));
                *r.status_mut() = status;
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                for (k, v) in headers {
                    r.headers_mut().insert(k, v);
                }
                r
            }
            None => self.into_response(request_id),
        };
        if let Some(s) = c.status.and_then(|s| StatusCode::from_u16(s).ok()) {
            *resp.status_mut() = s;
        }
        for (k, v) in c.headers {
            if let (Ok(k), Ok(v)) = (
                header::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                resp.headers_mut().insert(k, v);
            }
        }
        resp
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

    /// 408: the client stopped sending the request body; the connection is closed.
    pub fn request_timeout() -> Self {
        let mut p = Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "Request Timeout",
            "the client sent no part of the request body in time",
        );
        p.headers.push((
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        ));
        p
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

    /// The response, with the request id in the body (see also [`Problem::into_custom_response`]).
    /// The problem as a gRPC client reads it (a "Trailers-Only" answer, as Envoy answers gRPC
    /// calls itself): status 200, a `grpc-status` for what went wrong (invalid request:
    /// INVALID_ARGUMENT; 401: UNAUTHENTICATED; 403: PERMISSION_DENIED; no route or method:
    /// UNIMPLEMENTED; 408 and 504: DEADLINE_EXCEEDED; too large and 429: RESOURCE_EXHAUSTED;
    /// 502 and 503: UNAVAILABLE; else UNKNOWN), and the detail in `grpc-message`
    /// (percent-encoded, as the protocol has it). Its extra headers stay.
    pub fn into_grpc_response(self) -> Response {
        let code: &'static str = match self.status.as_u16() {
            400 | 415 => "3",       // INVALID_ARGUMENT
            401 => "16",            // UNAUTHENTICATED
            403 => "7",             // PERMISSION_DENIED
            404 | 405 => "12",      // UNIMPLEMENTED
            408 | 504 => "4",       // DEADLINE_EXCEEDED
            413 | 429 | 431 => "8", // RESOURCE_EXHAUSTED
            502 | 503 => "14",      // UNAVAILABLE
            _ => "2",               // UNKNOWN
        };
        let mut message = String::with_capacity(self.detail.len());
        for b in self.detail.bytes() {
            if (0x20..=0x7e).contains(&b) && b != b'%' {
                message.push(b as char);
            } else {
                message.push_str(&format!("%{b:02X}"));
            }
        }
        let mut resp = Response::new(Body::empty());
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert("grpc-status", HeaderValue::from_static(code));
        if let Ok(v) = HeaderValue::from_str(&message) {
            h.insert("grpc-message", v);
        }
        for (k, v) in self.headers {
            h.insert(k, v);
        }
        resp
    }

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

/// The values of the `$context` variables a custom body may hold.
struct Vars<'a> {
    message: &'a str,
    kind: &'a str,
    request_id: &'a str,
    validation: &'a str,
}

/// Replaces the `$context` variables in the strings of a custom body.
fn fill(v: &mut serde_json::Value, vars: &Vars<'_>) {
    match v {
        serde_json::Value::String(s) if s.contains("$context.") => {
            *s = s
                .replace("$context.error.validationErrorString", vars.validation)
                .replace("$context.error.messageString", vars.message)
                .replace("$context.error.message", vars.message)
                .replace("$context.error.responseType", vars.kind)
                .replace("$context.requestId", vars.request_id);
        }
        serde_json::Value::Array(items) => {
            for i in items {
                fill(i, vars);
            }
        }
        serde_json::Value::Object(map) => {
            for (_, i) in map.iter_mut() {
                fill(i, vars);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_answers_carry_the_status_and_an_encoded_message() {
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "50% used\névé",
        );
        p.headers
            .push((header::RETRY_AFTER, HeaderValue::from_static("3")));
        let r = p.into_grpc_response();
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers();
        assert_eq!(h["content-type"], "application/grpc");
        assert_eq!(h["grpc-status"], "8");
        assert_eq!(h["grpc-message"], "50%25 used%0A%C3%A9v%C3%A9");
        assert_eq!(h["retry-after"], "3");
        for (status, code) in [
            (400, "3"),
            (401, "16"),
            (403, "7"),
            (404, "12"),
            (502, "14"),
            (504, "4"),
            (500, "2"),
        ] {
            let p = Problem::new(StatusCode::from_u16(status).unwrap(), "t", "d");
            assert_eq!(
                p.into_grpc_response().headers()["grpc-status"],
                code,
                "{status}"
            );
        }
    }

    #[test]
    fn custom_responses_reshape_by_type_then_by_class() {
        const CUSTOM: &[CustomResponse] = &[
            CustomResponse {
                kind: "THROTTLED",
                status: None,
                body: Some(
                    r#"{"message":"slow down: $context.error.message","id":"$context.requestId"}"#,
                ),
                headers: &[("x-why", "throttled")],
            },
            CustomResponse {
                kind: "DEFAULT_4XX",
                status: Some(418),
                body: None,
                headers: &[],
            },
        ];
        let mut p = Problem::new(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", "over");
        p.headers
            .push((header::RETRY_AFTER, HeaderValue::from_static("3")));
        let r = p.into_custom_response("rid", CUSTOM);
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["x-why"], "throttled");
        assert_eq!(r.headers()["retry-after"], "3");
        assert_eq!(r.headers()["content-type"], "application/json");
        let quota = Problem::new(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", "q")
            .kind("QUOTA_EXCEEDED");
        assert_eq!(quota.into_custom_response("rid", CUSTOM).status(), 418);
        let r = Problem::bad_gateway().into_custom_response("rid", CUSTOM);
        assert_eq!(r.status(), 502);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
}
