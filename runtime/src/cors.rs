//! CORS from `x-gateway.cors`: preflights are answered by the gateway, before authentication;
//! other answers to a cross-origin request carry the CORS headers.
//!
//! Origins match exactly (scheme, host and port, as the browser sends them). An allowed origin is
//! echoed back with `Vary: Origin`; `*` is sent only for `allow_origins: ["*"]` and then never
//! with `Access-Control-Allow-Credentials` (a credentialed request from any origin is never
//! allowed, whatever the spec says; `gwgen check` warns about such a spec).

use http::{header, HeaderMap, HeaderValue, Method, StatusCode};

/// A route's CORS settings.
#[derive(Debug, Clone, Copy)]
pub struct CorsDef {
    /// Exact origins; `*` allows any (without credentials).
    pub origins: &'static [&'static str],
    /// Allowed methods.
    pub methods: &'static [&'static str],
    /// Allowed request headers (case-insensitive); empty allows none beyond the safelisted.
    pub headers: &'static [&'static str],
    /// Response headers scripts may read.
    pub expose: &'static [&'static str],
    /// `Access-Control-Allow-Credentials`.
    pub credentials: bool,
    /// Preflight cache time, in seconds.
    pub max_age: u64,
}

/// What to answer a request's `Origin` with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    /// Echo this origin (and `Vary: Origin`).
    Origin(HeaderValue),
    /// `*`.
    Any,
}

impl CorsDef {
    /// Whether `origin` may call, and how to say so.
    pub fn allow(&self, origin: &HeaderValue) -> Option<Allowed> {
        let o = origin.to_str().ok()?;
        if self.origins.contains(&o) {
            return Some(Allowed::Origin(origin.clone()));
        }
        if self.origins.contains(&"*") {
            return Some(Allowed::Any);
        }
        None
    }

    fn credentials_for(&self, allowed: &Allowed) -> bool {
        self.credentials && matches!(allowed, Allowed::Origin(_))
    }

    /// Adds the headers of an answer to a cross-origin request.
    pub fn decorate(&self, headers: &mut HeaderMap, origin: Option<&HeaderValue>) {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        let Some(allowed) = origin.and_then(|o| self.allow(o)) else {
            return;
        };
        self.allow_origin(headers, &allowed);
        if !self.expose.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&self.expose.join(", ")) {
                headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
            }
        }
    }

    fn allow_origin(&self, headers: &mut HeaderMap, allowed: &Allowed) {
        let value = match allowed {
            Allowed::Origin(o) => o.clone(),
            Allowed::Any => HeaderValue::from_static("*"),
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        if self.credentials_for(allowed) {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }

    /// Answers a preflight: 204 with the grants, or 403 (without CORS headers, so the browser
    /// refuses) when the origin, method or a header is not allowed.
    pub fn preflight(&self, request: &HeaderMap) -> (StatusCode, HeaderMap) {
        let mut out = HeaderMap::new();
        out.append(header::VARY, HeaderValue::from_static("Origin"));
        out.append(
            header::VARY,
            HeaderValue::from_static(
                "Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        let origin = request.get(header::ORIGIN);
        let Some(allowed) = origin.and_then(|o| self.allow(o)) else {
            return (StatusCode::FORBIDDEN, out);
        };
        let method = request
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .and_then(|m| m.parse::<Method>().ok());
        let Some(method) = method.filter(|m| {
            self.methods
                .iter()
                .any(|a| a.eq_ignore_ascii_case(m.as_str()))
        }) else {
            return (StatusCode::FORBIDDEN, out);
        };
        let requested: Vec<String> = request
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if !requested
            .iter()
            .all(|h| self.headers.iter().any(|a| a.eq_ignore_ascii_case(h)))
        {
            return (StatusCode::FORBIDDEN, out);
        }
        self.allow_origin(&mut out, &allowed);
        if let Ok(v) = HeaderValue::from_str(method.as_str()) {
            out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        if !requested.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&requested.join(", ")) {
                out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
        }
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(self.max_age),
        );
        (StatusCode::NO_CONTENT, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEF: CorsDef = CorsDef {
        origins: &["https://app.example.com"],
        methods: &["GET", "POST"],
        headers: &["content-type", "authorization"],
        expose: &["x-request-id"],
        credentials: true,
        max_age: 600,
    };

    fn req(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn preflights() {
        let (s, h) = DEF.preflight(&req(&[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "Content-Type, Authorization",
            ),
        ]));
        assert_eq!(s, StatusCode::NO_CONTENT);
        assert_eq!(h["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(h["access-control-allow-credentials"], "true");
        assert_eq!(h["access-control-max-age"], "600");
        let (s, h) = DEF.preflight(&req(&[
            ("origin", "https://evil.example.com"),
            ("access-control-request-method", "GET"),
        ]));
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert!(h.get("access-control-allow-origin").is_none());
        let (s, _) = DEF.preflight(&req(&[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "DELETE"),
        ]));
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = DEF.preflight(&req(&[
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "x-secret"),
        ]));
        assert_eq!(s, StatusCode::FORBIDDEN);
    }

    #[test]
    fn any_origin_never_carries_credentials() {
        let any = CorsDef {
            origins: &["*"],
            ..DEF
        };
        let mut h = HeaderMap::new();
        any.decorate(&mut h, Some(&HeaderValue::from_static("https://x.example")));
        assert_eq!(h["access-control-allow-origin"], "*");
        assert!(h.get("access-control-allow-credentials").is_none());
    }
}
