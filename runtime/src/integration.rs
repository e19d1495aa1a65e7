//! Integrations: how a matched request is answered.
//!
//! `mock` answers from data compiled into the gateway. `http` (feature `proxy`) forwards to an
//! upstream through one pooled keep-alive client: the URL template is resolved at start, path
//! parameters fill `{name}` placeholders one encoded segment each, the query passes through,
//! hop-by-hop headers are dropped both ways, `X-Forwarded-*` and the request id are set, and
//! bodies stream in both directions.

use std::time::Duration;

use bytes::Bytes;

use crate::router::PathParams;
use crate::stage::{Stage, StartError};

/// How a route is served.
#[derive(Debug, Clone)]
pub enum Integration {
    /// A fixed answer.
    Mock(MockResponse),
    /// A proxied upstream.
    Http(HttpIntegration),
    /// A Lambda function.
    #[cfg(feature = "lambda")]
    Lambda(crate::lambda::LambdaIntegration),
    /// A WebSocket API: the handshake, then the socket.
    #[cfg(feature = "websocket")]
    WebSocket(std::sync::Arc<crate::websocket::Api>),
}

/// A mock answer.
#[derive(Debug, Clone)]
pub struct MockResponse {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, when there is a body.
    pub content_type: Option<&'static str>,
    /// The body.
    pub body: Bytes,
    /// `status_from`: a text template whose value, when it is a status (or a JSON object
    /// whose `statusCode` is one), is answered with.
    pub status_from: Option<&'static [crate::transform::Node]>,
}

impl MockResponse {
    /// A mock answer from compiled-in data.
    pub fn new(status: u16, content_type: Option<&'static str>, body: &'static str) -> Self {
        MockResponse {
            status,
            content_type,
            body: Bytes::from_static(body.as_bytes()),
            status_from: None,
        }
    }

    /// The status comes from the request, through this template, when it renders one (from
    /// 100 to 599); else `status` stands.
    pub fn with_status_from(mut self, template: &'static [crate::transform::Node]) -> Self {
        self.status_from = Some(template);
        self
    }
}

/// One piece of an upstream URL template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UrlPart {
    Lit(String),
    Param(String),
}

/// An upstream URL with `{param}` placeholders, interpolated for the stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    parts: Vec<UrlPart>,
    /// Whether the request path is appended (URLs inherited from `defaults`).
    append_path: bool,
    /// For a template that is an origin alone (`http://host:port`, the request path appended):
    /// its scheme and authority, parsed once.
    origin: Option<(http::uri::Scheme, http::uri::Authority)>,
}

/// `authority` with its text made static, kept for the life of the process (one per upstream
/// origin, made at start). Every request's upstream URI takes a copy of it: a copy of a static one
/// is free, where each copy of a shared one counts a reference on one cache line that every
/// core serving the route writes.
fn static_authority(authority: &http::uri::Authority) -> Option<http::uri::Authority> {
    let text: &'static str = Box::leak(authority.as_str().to_owned().into_boxed_str());
    http::uri::Authority::from_maybe_shared(bytes::Bytes::from_static(text.as_bytes())).ok()
}

impl UrlTemplate {
    /// Resolves `template` for `stage`; `append_path` for URLs inherited from `defaults`.
    pub fn new(
        stage: &Stage,
        template: &str,
        append_path: bool,
        context: &str,
    ) -> Result<Self, StartError> {
        // Placeholders are found in the template as written, so a value interpolated into it
        // (an environment variable, say) can never introduce one.
        let mut raw_parts = Vec::new();
        let mut literal = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let is_interpolation = rest[..open].ends_with('$');
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            if is_interpolation {
                literal.push_str(&rest[..open + close + 1]);
            } else {
                literal.push_str(&rest[..open]);
                raw_parts.push(UrlPart::Lit(std::mem::take(&mut literal)));
                // `{proxy+}` (API Gateway's spelling of a greedy variable) names `proxy`.
                let name = &rest[open + 1..open + close];
                raw_parts.push(UrlPart::Param(name.trim_end_matches('+').to_string()));
            }
            rest = &rest[open + close + 1..];
        }
        literal.push_str(rest);
        raw_parts.push(UrlPart::Lit(literal));
        let mut parts = Vec::new();
        for p in raw_parts {
            match p {
                UrlPart::Lit(l) if l.is_empty() => {}
                UrlPart::Lit(l) => parts.push(UrlPart::Lit(stage.interpolate(&l, context)?)),
                param => parts.push(param),
            }
        }
        match parts.first() {
            Some(UrlPart::Lit(l)) if l.starts_with("http://") || l.starts_with("https://") => {}
            _ => {
                return Err(StartError::Invalid(format!(
                    "{context}: `{template}` is not an http:// or https:// URL"
                )))
            }
        }
        let has_params = parts.iter().any(|p| matches!(p, UrlPart::Param(_)));
        let append_path = append_path && !has_params;
        let origin = match &parts[..] {
            [UrlPart::Lit(l)] if append_path => l
                .trim_end_matches('/')
                .parse::<http::Uri>()
                .ok()
                .filter(|u| {
                    u.path_and_query()
                        .is_none_or(|pq| matches!(pq.as_str(), "" | "/"))
                })
                .and_then(|u| {
                    let p = u.into_parts();
                    Some((p.scheme?, static_authority(&p.authority?)?))
                }),
            _ => None,
        };
        Ok(UrlTemplate {
            parts,
            append_path,
            origin,
        })
    }

    /// The upstream URI for one request, as [`UrlTemplate::expand`] would spell it, made without
    /// parsing it again when the template is an origin: its scheme and authority are reused,
    /// and so is the client's own path and query (`client`) when it is what goes upstream.
    /// `None` for other templates.
    #[cfg_attr(not(feature = "proxy"), allow(dead_code))]
    pub(crate) fn origin_uri(
        &self,
        segments: &[&str],
        query: Option<&str>,
        client: Option<&http::uri::PathAndQuery>,
    ) -> Option<http::Uri> {
        let (scheme, authority) = self.origin.as_ref()?;
        let same =
            client.filter(|c| c.query() == query && crate::path::spells_path(c.path(), segments));
        let pq = match same {
            Some(same) => same.clone(),
            None => {
                let mut pq = String::with_capacity(64);
                crate::path::encode_path(&mut pq, segments);
                if let Some(q) = query {
                    pq.push('?');
                    pq.push_str(q);
                }
                http::uri::PathAndQuery::from_maybe_shared(bytes::Bytes::from(pq)).ok()?
            }
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(scheme.clone());
        parts.authority = Some(authority.clone());
        parts.path_and_query = Some(pq);
        http::Uri::from_parts(parts).ok()
    }

    /// The upstream URL for one request: parameters encoded as single segments, the normalised
    /// request path appended where the template asks for it, the raw query passed through.
    pub fn expand(
        &self,
        params: &PathParams<'_>,
        segments: &[&str],
        query: Option<&str>,
    ) -> String {
        let mut out = String::with_capacity(128);
        for p in &self.parts {
            match p {
                UrlPart::Lit(l) => out.push_str(l),
                UrlPart::Param(name) if params.is_greedy(name) => {
                    crate::path::encode_rest(&mut out, params.get(name).unwrap_or_default())
                }
                UrlPart::Param(name) => {
                    crate::path::encode_value(&mut out, params.get(name).unwrap_or_default())
                }
            }
        }
        if self.append_path {
            while out.ends_with('/') {
                out.pop();
            }
            crate::path::encode_path(&mut out, segments);
        }
        if let Some(q) = query {
            out.push(if out.contains('?') { '&' } else { '?' });
            out.push_str(q);
        }
        out
    }

    /// The URL with `path` (already encoded, from a transform) in place of its own path and of
    /// the request path it would append; its scheme and authority stay.
    #[cfg_attr(not(feature = "proxy"), allow(dead_code))]
    pub(crate) fn with_path(
        &self,
        params: &PathParams<'_>,
        path: &str,
        query: Option<&str>,
    ) -> String {
        let mut out = self.expand(params, &[], None);
        let authority = out.find("://").map_or(0, |i| i + 3);
        let end = out[authority..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| authority + i);
        out.truncate(end);
        if !path.starts_with('/') {
            out.push('/');
        }
        out.push_str(path);
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        out
    }
}

/// A proxied upstream.
#[derive(Debug, Clone)]
pub struct HttpIntegration {
    /// Where to send requests.
    pub url: UrlTemplate,
    /// How long to wait for the upstream's answer head.
    pub timeout: Duration,
    /// Several targets, health and retries ([`crate::balance`]); `None`: `url` alone.
    #[cfg(feature = "proxy")]
    pub(crate) upstreams: Option<std::sync::Arc<crate::balance::Balancer>>,
    /// Its own connections, for a custom CA or a client certificate (`tls`); `None`: the
    /// gateway's.
    #[cfg(feature = "proxy")]
    pub(crate) client: Option<crate::proxy::Client>,
}

/// An `http` integration's TLS settings (`tls`): paths of PEM files ("": not set), which may
/// interpolate stage and environment variables.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTlsDef {
    /// The CA certificates to trust instead of the system's.
    pub ca: &'static str,
    /// The client certificate chain to present.
    pub cert: &'static str,
    /// Its private key.
    pub key: &'static str,
}

impl Integration {
    /// An `http` integration.
    pub fn http(
        stage: &Stage,
        url: &str,
        append_path: bool,
        timeout_ms: u64,
        context: &str,
    ) -> Result<Self, StartError> {
        Ok(Integration::Http(HttpIntegration {
            url: UrlTemplate::new(stage, url, append_path, context)?,
            timeout: Duration::from_millis(timeout_ms),
            #[cfg(feature = "proxy")]
            upstreams: None,
            #[cfg(feature = "proxy")]
            client: None,
        }))
    }

    /// The same `http` integration over connections of its own: trusting `def.ca`, presenting
    /// `def.cert` and `def.key`. The files are read now: a missing or unreadable one is a
    /// start-up error that names it.
    #[cfg(feature = "proxy")]
    pub fn with_tls(
        self,
        stage: &Stage,
        def: &UpstreamTlsDef,
        context: &str,
    ) -> Result<Self, StartError> {
        let connector = upstream_connector(stage, Some(def), false, context)?;
        Ok(self.with_client(crate::pool::Pool::new(connector)))
    }

    /// The same `http` integration over HTTP/2 (`protocol: http2`): h2 by ALPN to `https://`
    /// upstreams, h2c with prior knowledge to `http://` ones; with `tls` as [`Integration::with_tls`]
    /// has it.
    #[cfg(all(feature = "proxy", feature = "http2"))]
    pub fn over_http2(
        self,
        stage: &Stage,
        tls: Option<&UpstreamTlsDef>,
        context: &str,
    ) -> Result<Self, StartError> {
        let connector = upstream_connector(stage, tls, true, context)?;
        Ok(self.with_client(crate::pool::Pool::http2(connector)))
    }

    #[cfg(feature = "proxy")]
    fn with_client(self, client: crate::proxy::Client) -> Self {
        match self {
            Integration::Http(mut h) => {
                h.client = Some(client);
                Integration::Http(h)
            }
            other => other,
        }
    }

    /// The same `http` integration over several targets, with health checks and retries
    /// (`append_path` as for [`Integration::http`]).
    #[cfg(feature = "proxy")]
    pub fn with_upstreams(
        self,
        stage: &Stage,
        def: &crate::balance::UpstreamsDef,
        append_path: bool,
        context: &str,
    ) -> Result<Self, StartError> {
        match self {
            Integration::Http(mut h) => {
                h.upstreams = Some(crate::balance::Balancer::shared(
                    stage,
                    def,
                    append_path,
                    context,
                )?);
                Ok(Integration::Http(h))
            }
            other => Ok(other),
        }
    }
}

/// The connector of an integration's own connections: `tls`'s files read now (interpolated
/// for the stage), `h2` alone offered by ALPN with `http2`.
#[cfg(feature = "proxy")]
fn upstream_connector(
    stage: &Stage,
    tls: Option<&UpstreamTlsDef>,
    http2: bool,
    context: &str,
) -> Result<crate::tls::Connector, StartError> {
    let path = |p: &str, what: &str| -> Result<Option<String>, StartError> {
        if p.is_empty() {
            return Ok(None);
        }
        stage
            .interpolate(p, &format!("the {what} of {context}"))
            .map(Some)
    };
    let empty = UpstreamTlsDef {
        ca: "",
        cert: "",
        key: "",
    };
    let def = tls.unwrap_or(&empty);
    let ca = path(def.ca, "`tls.ca`")?;
    let cert = path(def.cert, "`tls.cert`")?;
    let key = path(def.key, "`tls.key`")?;
    let identity = match (&cert, &key) {
        (Some(c), Some(k)) => Some((c.as_str(), k.as_str())),
        _ => None,
    };
    crate::tls::connector_with(ca.as_deref(), identity, http2)
        .map_err(|e| StartError::Invalid(format!("{context}: `tls`: {e}")))
}

#[cfg(feature = "lambda")]
impl Integration {
    /// A `lambda` integration: `def`'s function, its events in `def`'s payload format, with
    /// bodies of the `binary` media types base64-encoded (payload 1.0).
    pub fn lambda(
        stage: &Stage,
        def: &crate::lambda::LambdaDef,
        timeout_ms: u64,
        binary: &'static [&'static str],
        context: &str,
    ) -> Result<Self, StartError> {
        crate::lambda::LambdaIntegration::new(stage, def, timeout_ms, binary, context)
            .map(Integration::Lambda)
    }
}

/// Headers that belong to one connection and are never forwarded (RFC 9110 §7.6.1), plus
/// `host`, which the client sets for the upstream.
#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` is one of [`HOP_BY_HOP`].
#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
pub fn is_hop_by_hop(name: &http::HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// Removes hop-by-hop headers and those named in `Connection`, except the named fields `keep`
/// says the gateway validated or set: a client's `Connection: authorization` must not take the
/// credential the gateway checked away from the upstream.
#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
pub fn strip_hop_by_hop_keeping(
    headers: &mut http::HeaderMap,
    keep: impl Fn(&http::HeaderName) -> bool,
) {
    // One pass over the names finds which hop-by-hop headers are there; most messages carry
    // none, or only `Connection: keep-alive`.
    let mut present = 0u16;
    for k in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| *h == k.as_str()) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 {
        let mut named: smallvec::SmallVec<[http::HeaderName; 2]> = smallvec::SmallVec::new();
        for v in headers.get_all(http::header::CONNECTION) {
            for token in v.to_str().unwrap_or_default().split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("keep-alive") || token.eq_ignore_ascii_case("close") {
                    continue;
                }
                if let Ok(n) = http::HeaderName::from_bytes(token.as_bytes()) {
                    if !keep(&n) {
                        named.push(n);
                    }
                }
            }
        }
        for n in named {
            headers.remove(n);
        }
    }
    for (i, n) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(*n);
        }
    }
}

/// Fields a client may not set for the upstream unless it is a trusted proxy: what it says of
/// the original request (`Forwarded`, `X-Forwarded-Host`, `-Proto`, `-Port`, `-Prefix`,
/// `X-Real-IP`) and method overrides, which would make the upstream run another method than the
/// one the gateway authorised. `Expect` is the gateway's to answer, never forwarded.
#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
pub const CLIENT_FORWARDING: &[&str] = &[
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Fields a client's `Connection` may never remove: what the gateway checked or set.
#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
pub const PROTECTED: &[&str] = &[
    "host",
    "authorization",
    "content-type",
    "content-length",
    "cookie",
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "forwarded",
];

/// Removes the client's forwarding and method-override fields (unless `trusted`), `Expect`, and
/// every `X-Gateway-*` field (the gateway's own account of the caller: nobody else may write
/// it), in one pass over the names.
#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
pub fn strip_client_forwarding(headers: &mut http::HeaderMap, trusted: bool) {
    let mut present = 0u16;
    let mut expect = false;
    let mut gateway_own = false;
    for k in headers.keys() {
        if k == http::header::EXPECT {
            expect = true;
        } else if k.as_str().starts_with(crate::transform::IDENTITY_PREFIX) {
            gateway_own = true;
        } else if !trusted {
            if let Some(i) = CLIENT_FORWARDING.iter().position(|h| *h == k.as_str()) {
                present |= 1 << i;
            }
        }
    }
    if expect {
        headers.remove(http::header::EXPECT);
    }
    if gateway_own {
        let forged: Vec<http::HeaderName> = headers
            .keys()
            .filter(|k| k.as_str().starts_with(crate::transform::IDENTITY_PREFIX))
            .cloned()
            .collect();
        for k in forged {
            headers.remove(k);
        }
    }
    for (i, n) in CLIENT_FORWARDING.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(*n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_go_named_ones_too() {
        let mut h = http::HeaderMap::new();
        h.insert("connection", "keep-alive, X-Secret".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("content-type", "text/plain".parse().unwrap());
        strip_hop_by_hop_keeping(&mut h, |_| false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("content-type"));
    }

    #[test]
    fn templates_cannot_be_steered() {
        let stage = Stage::new("dev", &[("orders", "http://127.0.0.1:9001")]);
        let t = UrlTemplate::new(
            &stage,
            "${stageVariables.orders}/v2/orders/{orderId}",
            false,
            "t",
        )
        .unwrap();
        let mut values = crate::router::Params::default();
        values.push("../../admin?x=1#y");
        let p = values.named(&["orderId"]);
        assert_eq!(
            t.expand(&p, &["ignored"], Some("a=1")),
            "http://127.0.0.1:9001/v2/orders/..%2F..%2Fadmin%3Fx%3D1%23y?a=1"
        );
        let d = UrlTemplate::new(&stage, "${stageVariables.orders}/", true, "t").unwrap();
        assert_eq!(
            d.expand(&p, &["orders", "7"], None),
            "http://127.0.0.1:9001/orders/7"
        );
    }

    #[test]
    fn greedy_values_keep_their_segments_and_nothing_more() {
        let stage = Stage::new("dev", &[]);
        let mut values = crate::router::Params::default();
        values.push_rest(&["a b", "c?d#e", ".."]);
        let p = values.named(&["proxy"]);
        // `{proxy+}` and `{proxy}` alike: each segment encoded, only the `/` between kept.
        for template in ["http://h/static/{proxy+}", "http://h/static/{proxy}"] {
            let t = UrlTemplate::new(&stage, template, false, "t").unwrap();
            assert_eq!(
                t.expand(&p, &[], None),
                "http://h/static/a%20b/c%3Fd%23e/%2E%2E"
            );
        }
    }

    #[test]
    fn origin_uris_are_what_expand_spells() {
        let stage = Stage::new("dev", &[]);
        let none = crate::router::Params::default();
        let p = none.named(&[]);
        // Segments, query, and the client's path and query (reused when they match).
        let cases: [(&[&str], Option<&str>, Option<&str>); 9] = [
            (&["a", "b"], Some("x=1&y=%20"), Some("/a/b?x=1&y=%20")),
            (&["a b", "c%d"], None, Some("/a%20b/c%25d")),
            (&[], None, Some("/")),
            (&[], Some(""), Some("/?")),
            (&["a"], Some("x=1"), Some("/a/../a?x=1")),
            (&["a"], None, None),
            (&["a"], None, Some("/a?")),
            (&["a"], Some("x"), Some("/a")),
            (&["a", "b"], None, Some("//a/b")),
        ];
        for template in [
            "http://127.0.0.1:9001",
            "http://127.0.0.1:9001/",
            "https://up.example//",
        ] {
            let t = UrlTemplate::new(&stage, template, true, "t").unwrap();
            for (segs, query, client) in cases {
                let client = client.map(|c| http::uri::PathAndQuery::try_from(c).unwrap());
                let fast = t
                    .origin_uri(segs, query, client.as_ref())
                    .expect("an origin");
                assert_eq!(
                    fast.to_string(),
                    t.expand(&p, segs, query),
                    "{template} {segs:?}"
                );
            }
        }
        // Templates with a path or placeholders are expanded as text.
        for (template, append) in [
            ("http://127.0.0.1:9001/v2", true),
            ("http://127.0.0.1:9001/?k=1", true),
            ("http://127.0.0.1:9001", false),
            ("http://127.0.0.1:9001/{id}", true),
        ] {
            let t = UrlTemplate::new(&stage, template, append, "t").unwrap();
            assert!(t.origin_uri(&["a"], None, None).is_none(), "{template}");
        }
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = http::HeaderMap::new();
        h.insert("connection", "close, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "5".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop_keeping(&mut h, |_| false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }
}
