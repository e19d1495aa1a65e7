//! The proxy events API Gateway sends Lambda functions (payload formats 1.0 and 2.0), and how it
//! reads their answers. Pure functions over [`Request`]: the golden tests compare what they
//! build with AWS's own samples, field by field.

use std::collections::BTreeMap;
use std::time::SystemTime;

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{json, Map, Value};

use crate::auth::Identity;

pub use super::PayloadFormat;

/// What an event is made of: the request as the gateway matched it.
pub(crate) struct Request<'a> {
    /// The method.
    pub(crate) method: &'a str,
    /// The normalised path the router matched.
    pub(crate) path: &'a str,
    /// The query string, as sent.
    pub(crate) query: Option<&'a str>,
    /// The headers.
    pub(crate) headers: &'a HeaderMap,
    /// The route's template (`/orders/{id}`).
    pub(crate) resource: &'a str,
    /// Path parameters in template order.
    pub(crate) params: Vec<(&'a str, &'a str)>,
    /// The stage.
    pub(crate) stage: &'a str,
    /// The stage's variables.
    pub(crate) stage_variables: &'a BTreeMap<String, String>,
    /// The request id.
    pub(crate) request_id: &'a str,
    /// The client's address.
    pub(crate) source_ip: String,
    /// Who the caller is, when the route authenticated them.
    pub(crate) identity: Option<&'a Identity>,
    /// The client certificate the TLS handshake verified.
    pub(crate) client_cert: Option<&'a crate::client_cert::ClientCert>,
    /// The body.
    pub(crate) body: &'a [u8],
    /// Whether the body goes base64-encoded.
    pub(crate) binary: bool,
    /// When the request came.
    pub(crate) time: SystemTime,
}

/// The account and API ids of this gateway in events, as in its `routeArn`s.
const ACCOUNT: &str = "gwgen";
pub(crate) const API_ID: &str = "gateway";

impl Request<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn domain(&self) -> &str {
        self.header("host").unwrap_or("localhost")
    }

    fn body(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        match (self.binary, std::str::from_utf8(self.body)) {
            (false, Ok(text)) => Value::String(text.to_string()),
            _ => Value::String(base64::engine::general_purpose::STANDARD.encode(self.body)),
        }
    }

    /// Whether [`Request::body`] is base64: the route says so, or the body is not UTF-8.
    fn base64(&self) -> bool {
        !self.body.is_empty() && (self.binary || std::str::from_utf8(self.body).is_err())
    }

    fn query_pairs(&self) -> Vec<(String, String)> {
        match self.query {
            Some(q) => crate::validate::input::parse_pairs(q)
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            None => Vec::new(),
        }
    }

    fn params(&self) -> Value {
        text_object(self.params.iter().copied())
    }

    fn stage_variables(&self) -> Value {
        text_object(
            self.stage_variables
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }

    fn epoch_ms(&self) -> u64 {
        self.time
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// `15/May/2020:06:01:09 +0000`.
    fn clf_time(&self) -> String {
        clf_time(self.time)
    }

    /// The headers' text values, each name once, its values in order.
    fn header_values(&self, skip: Option<&str>) -> Vec<(&str, Vec<&str>)> {
        let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
        for name in self.headers.keys() {
            if Some(name.as_str()) == skip {
                continue;
            }
            let values: Vec<&str> = self
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if !values.is_empty() {
                out.push((name.as_str(), values));
            }
        }
        out
    }

    /// The authorizer part of `requestContext`: JWT claims, or a custom authorizer's context.
    fn authorizer(&self, format: PayloadFormat) -> Option<Value> {
        let identity = self.identity?;
        if let Some(ctx) = authorizer_context(identity) {
            return Some(match format {
                PayloadFormat::V1 => Value::Object(ctx),
                PayloadFormat::V2 => json!({ "lambda": ctx }),
            });
        }
        let claims = identity.claims.as_deref()?;
        let scopes: Vec<Value> = match claims.get("scope").or_else(|| claims.get("scp")) {
            Some(Value::String(s)) => s.split(' ').map(|s| Value::String(s.into())).collect(),
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        // AWS gives claims as strings (numbers and arrays in their JSON text).
        let text: Map<String, Value> = match claims {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), Value::String(s))
                })
                .collect(),
            _ => Map::new(),
        };
        Some(match format {
            PayloadFormat::V1 => {
                json!({ "claims": text, "scopes": if scopes.is_empty() { Value::Null } else { Value::Array(scopes) } })
            }
            PayloadFormat::V2 => {
                json!({ "jwt": { "claims": text, "scopes": if scopes.is_empty() { Value::Null } else { Value::Array(scopes) } } })
            }
        })
    }

    /// The payload format 1.0 event (REST APIs).
    pub(crate) fn v1(&self) -> Value {
        let (headers, multi) = header_maps(self.headers);
        let (query, multi_query) = query_maps(self.query);
        let key = self.identity.and_then(|i| i.key.as_ref());
        let mut context = json!({
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "domainName": self.domain(),
            "domainPrefix": self.domain().split('.').next().unwrap_or(""),
            "extendedRequestId": self.request_id,
            "httpMethod": self.method,
            "identity": {
                "accessKey": null,
                "accountId": null,
                // The key itself is a secret the gateway keeps only hashed: its name stands for it.
                "apiKey": null,
                "apiKeyId": key.map(|(_, name)| name.as_str()),
                "caller": null,
                "cognitoAuthenticationProvider": null,
                "cognitoAuthenticationType": null,
                "cognitoIdentityId": null,
                "cognitoIdentityPoolId": null,
                "principalOrgId": null,
                "sourceIp": self.source_ip,
                "user": null,
                "userAgent": self.header("user-agent"),
                "userArn": null,
            },
            "path": self.path,
            "protocol": "HTTP/1.1",
            "requestId": self.request_id,
            "requestTime": self.clf_time(),
            "requestTimeEpoch": self.epoch_ms(),
            "resourceId": API_ID,
            "resourcePath": self.resource,
            "stage": self.stage,
        });
        if let (Some(a), Value::Object(c)) = (self.authorizer(PayloadFormat::V1), &mut context) {
            c.insert("authorizer".into(), a);
        }
        if let (Some(cert), Some(Value::Object(i))) =
            (self.client_cert, context.get_mut("identity"))
        {
            i.insert("clientCert".into(), cert.event());
        }
        json!({
            "resource": self.resource,
            "path": self.path,
            "httpMethod": self.method,
            "headers": headers,
            "multiValueHeaders": multi,
            "queryStringParameters": query,
            "multiValueQueryStringParameters": multi_query,
            "pathParameters": self.params(),
            "stageVariables": self.stage_variables(),
            "requestContext": context,
            "body": self.body(),
            "isBase64Encoded": self.base64(),
        })
    }

    /// The payload format 2.0 event (HTTP APIs).
    pub(crate) fn v2(&self, route_key: &str) -> Value {
        let mut headers = Map::new();
        for (name, values) in self.header_values(Some("cookie")) {
            headers.insert(name.into(), Value::String(values.join(",")));
        }
        let cookies: Vec<Value> = self
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| Value::String(c.into()))
            .collect();
        let mut query: Map<String, Value> = Map::new();
        for (k, v) in self.query_pairs() {
            match query.get_mut(&k) {
                Some(Value::String(s)) => {
                    s.push(',');
                    s.push_str(&v);
                }
                _ => {
                    query.insert(k, Value::String(v));
                }
            }
        }
        let mut context = json!({
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "domainName": self.domain(),
            "domainPrefix": self.domain().split('.').next().unwrap_or(""),
            "http": {
                "method": self.method,
                "path": self.path,
                "protocol": "HTTP/1.1",
                "sourceIp": self.source_ip,
                "userAgent": self.header("user-agent").unwrap_or(""),
            },
            "requestId": self.request_id,
            "routeKey": route_key,
            "stage": self.stage,
            "time": self.clf_time(),
            "timeEpoch": self.epoch_ms(),
        });
        let mut event = json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": self.path,
            "rawQueryString": self.query.unwrap_or(""),
            "headers": headers,
            "isBase64Encoded": self.base64(),
        });
        let (Value::Object(c), Value::Object(e)) = (&mut context, &mut event) else {
            unreachable!("objects were built");
        };
        if let Some(a) = self.authorizer(PayloadFormat::V2) {
            c.insert("authorizer".into(), a);
        }
        if let Some(cert) = self.client_cert {
            c.insert(
                "authentication".into(),
                json!({ "clientCert": cert.event() }),
            );
        }
        if !cookies.is_empty() {
            e.insert("cookies".into(), Value::Array(cookies));
        }
        if !query.is_empty() {
            e.insert("queryStringParameters".into(), Value::Object(query));
        }
        if !self.params.is_empty() {
            e.insert("pathParameters".into(), self.params());
        }
        if !self.stage_variables.is_empty() {
            e.insert("stageVariables".into(), self.stage_variables());
        }
        e.insert("requestContext".into(), context);
        if !self.body.is_empty() {
            e.insert("body".into(), self.body());
        }
        event
    }
}

/// A custom authorizer's `context` with its `principalId`, as events give them; `None` when no
/// authorizer let the caller in.
pub(crate) fn authorizer_context(identity: &Identity) -> Option<Map<String, Value>> {
    let (context, principal) = identity.authorizer.as_ref()?;
    let mut ctx = match context {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    if let Some(p) = principal {
        ctx.insert("principalId".into(), Value::String(p.clone()));
    }
    Some(ctx)
}

/// `15/May/2020:06:01:09 +0000`.
pub(crate) fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let ms = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let secs = (ms / 1000) as i64;
    let (y, m, d) = crate::throttle::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{d:02}/{}/{y:04}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m as usize).saturating_sub(1) % 12],
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `headers` (each name's last value) and `multiValueHeaders` (all of them), as payload 1.0 and
/// WebSocket events give them; `null` when there are none.
pub(crate) fn header_maps(headers: &HeaderMap) -> (Value, Value) {
    let (mut single, mut multi) = (Map::new(), Map::new());
    for name in headers.keys() {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if let Some(last) = values.last() {
            single.insert(name.as_str().into(), Value::String((*last).into()));
            multi.insert(
                name.as_str().into(),
                Value::Array(values.iter().map(|v| Value::String((*v).into())).collect()),
            );
        }
    }
    (object_or_null(single), object_or_null(multi))
}

/// `queryStringParameters` (each name's last value) and `multiValueQueryStringParameters`, as
/// payload 1.0 and WebSocket events give them; `null` when there are none.
pub(crate) fn query_maps(query: Option<&str>) -> (Value, Value) {
    let (mut single, mut multi) = (Map::new(), Map::new());
    for (k, v) in query
        .map(crate::validate::input::parse_pairs)
        .unwrap_or_default()
    {
        single.insert(k.to_string(), Value::String(v.to_string()));
        if let Value::Array(a) = multi
            .entry(k.into_owned())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            a.push(Value::String(v.into_owned()));
        }
    }
    (object_or_null(single), object_or_null(multi))
}

/// An object of text members, or `null` when there are none.
pub(crate) fn text_object<'x>(pairs: impl Iterator<Item = (&'x str, &'x str)>) -> Value {
    object_or_null(
        pairs
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    )
}

/// An object, or `null` when it is empty (as payload 1.0 sends empty maps).
fn object_or_null(m: Map<String, Value>) -> Value {
    if m.is_empty() {
        Value::Null
    } else {
        Value::Object(m)
    }
}

/// Whether a body of this `Content-Type` goes to the function base64-encoded. In 1.0, where a
/// media type of `binary` matches (`image/png`, `image/*`, `*/*`); in 2.0, unless it is text
/// (`text/*`, JSON, XML, JavaScript, forms), as HTTP APIs do.
pub(crate) fn is_binary(
    format: PayloadFormat,
    binary: &[&str],
    content_type: Option<&HeaderValue>,
) -> bool {
    let essence = content_type
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match format {
        PayloadFormat::V1 => binary.iter().any(|pattern| {
            let (pt, ps) = pattern.split_once('/').unwrap_or((pattern, "*"));
            let (t, s) = essence.split_once('/').unwrap_or((&essence, ""));
            (pt == "*" || pt.eq_ignore_ascii_case(t)) && (ps == "*" || ps.eq_ignore_ascii_case(s))
        }),
        PayloadFormat::V2 => {
            !(essence.is_empty()
                || essence.starts_with("text/")
                || essence.ends_with("json")
                || essence.ends_with("xml")
                || essence.ends_with("javascript")
                || essence == "application/x-www-form-urlencoded")
        }
    }
}

/// The answer a function gave, as the client gets it.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: bytes::Bytes,
}

/// Why an answer cannot be used (API Gateway's "Malformed Lambda proxy response").
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) String);

/// Reads a function's answer as API Gateway does: `statusCode`, `headers`,
/// `multiValueHeaders`, `cookies` (2.0), `body`, `isBase64Encoded`. In 2.0, an answer without
/// `statusCode` (bare JSON) is a 200 whose body is the answer itself.
pub(crate) fn answer(format: PayloadFormat, payload: &[u8]) -> Result<Answer, Malformed> {
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| Malformed(format!("the answer is not JSON: {e}")))?;
    let proxy_shape = value
        .as_object()
        .is_some_and(|o| o.contains_key("statusCode"));
    if format == PayloadFormat::V2 && !proxy_shape {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(Answer {
            status: StatusCode::OK,
            headers,
            body: bytes::Bytes::copy_from_slice(payload),
        });
    }
    let Value::Object(o) = value else {
        return Err(Malformed("the answer is not a JSON object".into()));
    };
    let status = match o.get("statusCode") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .and_then(|s| u16::try_from(s).ok())
    .and_then(|s| StatusCode::from_u16(s).ok())
    .filter(|s| (100..600).contains(&s.as_u16()))
    .ok_or_else(|| Malformed("`statusCode` is not a status".into()))?;
    let mut headers = HeaderMap::new();
    let multi = o.get("multiValueHeaders").and_then(Value::as_object);
    if let Some(h) = o.get("headers").filter(|v| !v.is_null()) {
        let h = h
            .as_object()
            .ok_or_else(|| Malformed("`headers` is not an object".into()))?;
        for (name, value) in h {
            if multi.is_some_and(|m| m.keys().any(|k| k.eq_ignore_ascii_case(name))) {
                continue;
            }
            add_header(&mut headers, name, value)?;
        }
    }
    if let Some(m) = multi {
        for (name, values) in m {
            match values {
                Value::Array(a) => {
                    for v in a {
                        add_header(&mut headers, name, v)?;
                    }
                }
                Value::Null => {}
                _ => {
                    return Err(Malformed(format!(
                        "`multiValueHeaders.{name}` is not a list"
                    )))
                }
            }
        }
    }
    if format == PayloadFormat::V2 {
        if let Some(Value::Array(cookies)) = o.get("cookies") {
            for c in cookies {
                add_header(&mut headers, "set-cookie", c)?;
            }
        }
    }
    let base64 = o.get("isBase64Encoded").and_then(Value::as_bool) == Some(true);
    let body = match o.get("body") {
        None | Some(Value::Null) => bytes::Bytes::new(),
        Some(Value::String(s)) if base64 => base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map(bytes::Bytes::from)
            .map_err(|_| Malformed("`body` is not base64".into()))?,
        Some(Value::String(s)) => bytes::Bytes::from(s.clone()),
        Some(other) if format == PayloadFormat::V2 => bytes::Bytes::from(other.to_string()),
        Some(_) => return Err(Malformed("`body` is not a string".into())),
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Adds one header of an answer; framing and hop-by-hop headers are the gateway's to set.
fn add_header(headers: &mut HeaderMap, name: &str, value: &Value) -> Result<(), Malformed> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return Err(Malformed(format!("the header `{name}` is not text"))),
    };
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Malformed(format!("`{name}` is not a header name")))?;
    if crate::integration::is_hop_by_hop(&name) || name == http::header::CONTENT_LENGTH {
        return Ok(());
    }
    let value = HeaderValue::from_str(&text).map_err(|_| {
        Malformed(format!(
            "the header `{name}` has a value that cannot be sent"
        ))
    })?;
    headers.append(name, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Golden tests: events built from what AWS's own samples describe (the vendored
    //! `tests/corpus/lambda-events`) are compared with those samples, field by field.

    use super::*;
    use std::sync::Arc;

    fn sample(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/corpus/lambda-events")
            .join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).expect("a JSON sample")
    }

    fn text(v: &Value) -> &str {
        v.as_str().unwrap_or_default()
    }

    fn lower_keys(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Every key of `sample`'s object is in `built`'s, but those named in `except`.
    fn keys_cover(built: &Value, sample: &Value, except: &[&str], what: &str) {
        for k in sample.as_object().expect("an object").keys() {
            if !except.contains(&k.as_str()) {
                assert!(
                    built.get(k).is_some(),
                    "{what}: `{k}` is missing from {built}"
                );
            }
        }
    }

    /// What a sample says of its request, in the form a request's event is built from.
    struct Parts<'s> {
        method: &'s str,
        path: &'s str,
        resource: &'s str,
        headers: HeaderMap,
        query: String,
        params: Vec<(String, String)>,
        vars: BTreeMap<String, String>,
        identity: Option<Identity>,
        client_cert: Option<crate::client_cert::ClientCert>,
        source_ip: &'s str,
        epoch_ms: &'s Value,
    }

    impl Parts<'_> {
        fn request<'a>(&'a self, s: &'a Value) -> Request<'a> {
            Request {
                method: self.method,
                path: self.path,
                query: Some(self.query.as_str()).filter(|q| !q.is_empty()),
                headers: &self.headers,
                resource: self.resource,
                params: self
                    .params
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect(),
                stage: text(&s["requestContext"]["stage"]),
                stage_variables: &self.vars,
                request_id: text(&s["requestContext"]["requestId"]),
                source_ip: self.source_ip.to_string(),
                identity: self.identity.as_ref(),
                client_cert: self.client_cert.as_ref(),
                body: text(&s["body"]).as_bytes(),
                binary: false,
                time: at_ms(self.epoch_ms),
            }
        }
    }

    /// The parts of a 1.0 sample (REST) or of a 2.0 one (HTTP API).
    fn parts(s: &Value, rest: bool) -> Parts<'_> {
        let ctx = &s["requestContext"];
        let mut query = String::new();
        if rest {
            for (k, vs) in s["multiValueQueryStringParameters"]
                .as_object()
                .into_iter()
                .flatten()
            {
                for v in vs.as_array().expect("a list") {
                    if !query.is_empty() {
                        query.push('&');
                    }
                    query.push_str(&format!("{k}={}", text(v)));
                }
            }
        } else {
            query = text(&s["rawQueryString"]).to_string();
        }
        let mut headers = HeaderMap::new();
        match rest.then(|| &s["multiValueHeaders"]) {
            Some(Value::Object(m)) => {
                for (k, vs) in m {
                    for v in vs.as_array().expect("a list") {
                        headers.append(
                            HeaderName::from_bytes(k.as_bytes()).expect("a name"),
                            HeaderValue::from_str(text(v)).expect("a value"),
                        );
                    }
                }
            }
            _ => {
                for (k, v) in s["headers"].as_object().into_iter().flatten() {
                    headers.append(
                        HeaderName::from_bytes(k.as_bytes()).expect("a name"),
                        HeaderValue::from_str(text(v)).expect("a value"),
                    );
                }
            }
        }
        if let Some(cookies) = s["cookies"].as_array() {
            let joined: Vec<&str> = cookies.iter().map(text).collect();
            headers.insert(
                http::header::COOKIE,
                HeaderValue::from_str(&joined.join("; ")).expect("cookies"),
            );
        }
        let params = s["pathParameters"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), text(v).to_string()))
            .collect();
        let vars = s["stageVariables"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), text(v).to_string()))
            .collect();
        let auth = &s["requestContext"]["authorizer"];
        let identity =
            if let Some(claims) = auth.pointer("/jwt/claims").or_else(|| auth.get("claims")) {
                Some(Identity {
                    claims: Some(Arc::new(claims.clone())),
                    ..Identity::default()
                })
            } else if let Some(ctx) = auth
                .get("lambda")
                .or_else(|| auth.as_object().map(|_| auth))
            {
                let mut ctx = ctx.clone();
                let principal = ctx
                    .as_object_mut()
                    .and_then(|m| m.remove("principalId"))
                    .map(|p| text(&p).to_string());
                Some(Identity {
                    authorizer: Some((ctx, principal)),
                    ..Identity::default()
                })
            } else {
                None
            };
        Parts {
            method: text(if rest {
                &s["httpMethod"]
            } else {
                &ctx["http"]["method"]
            }),
            path: text(if rest { &s["path"] } else { &s["rawPath"] }),
            resource: text(&s["resource"]),
            headers,
            query,
            params,
            vars,
            identity,
            client_cert: ctx
                .pointer("/identity/clientCert")
                .or_else(|| ctx.pointer("/authentication/clientCert"))
                .filter(|c| c.is_object())
                .map(|c| crate::client_cert::ClientCert {
                    pem: text(&c["clientCertPem"]).into(),
                    subject: text(&c["subjectDN"]).into(),
                    issuer: text(&c["issuerDN"]).into(),
                    serial: text(&c["serialNumber"]).into(),
                    not_before: text(&c["validity"]["notBefore"]).into(),
                    not_after: text(&c["validity"]["notAfter"]).into(),
                    ..Default::default()
                }),
            source_ip: text(if rest {
                &ctx["identity"]["sourceIp"]
            } else {
                &ctx["http"]["sourceIp"]
            }),
            epoch_ms: if rest {
                &ctx["requestTimeEpoch"]
            } else {
                &ctx["timeEpoch"]
            },
        }
    }

    fn at_ms(ms: &Value) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms.as_u64().expect("epoch ms"))
    }

    fn golden_v1(name: &str) {
        let s = sample(name);
        let ctx = &s["requestContext"];
        let p = parts(&s, true);
        let e = p.request(&s).v1();
        keys_cover(&e, &s, &[], name);
        for k in [
            "resource",
            "path",
            "httpMethod",
            "multiValueQueryStringParameters",
            "pathParameters",
            "stageVariables",
            "body",
        ] {
            assert_eq!(e[k], s[k], "{name}: `{k}`");
        }
        // A parameter's last value, as API Gateway sends it (captures of real requests show
        // the last; one hand-written sample shows the first, so it is derived here).
        let last: Map<String, Value> = s["multiValueQueryStringParameters"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, vs)| Some((k.clone(), vs.as_array()?.last()?.clone())))
            .collect();
        assert_eq!(e["queryStringParameters"], Value::Object(last), "{name}"); // Header names arrive lowercase (HTTP/2 has no other case); values and order are AWS's.
        for k in ["headers", "multiValueHeaders"] {
            assert_eq!(e[k], lower_keys(&s[k]), "{name}: `{k}`");
        }
        let c = &e["requestContext"];
        keys_cover(c, ctx, &[], name);
        keys_cover(&c["identity"], &ctx["identity"], &[], name);
        for k in [
            "resourcePath",
            "httpMethod",
            "stage",
            "requestId",
            "requestTimeEpoch",
            "requestTime",
            "protocol",
            "path",
            "authorizer",
        ] {
            assert_eq!(c[k], ctx[k], "{name}: `requestContext.{k}`");
        }
        for k in ["sourceIp", "userAgent"] {
            assert_eq!(
                c["identity"][k], ctx["identity"][k],
                "{name}: `identity.{k}`"
            );
        }
        assert_eq!(
            c["domainName"], s["headers"]["Host"],
            "the Host the client asked for"
        );
    }

    fn golden_v2(name: &str) {
        let s = sample(name);
        let ctx = &s["requestContext"];
        let p = parts(&s, false);
        let e = p.request(&s).v2(text(&s["routeKey"]));
        keys_cover(&e, &s, &[], name);
        for k in [
            "version",
            "routeKey",
            "rawPath",
            "rawQueryString",
            "cookies",
            "queryStringParameters",
            "pathParameters",
            "stageVariables",
            "body",
            "isBase64Encoded",
        ] {
            assert_eq!(e[k], s[k], "{name}: `{k}`");
        }
        assert_eq!(e["headers"], lower_keys(&s["headers"]), "{name}: `headers`");
        let c = &e["requestContext"];
        keys_cover(c, ctx, &[], name);
        if let Some(cert) = ctx.pointer("/authentication/clientCert") {
            for (k, v) in cert.as_object().expect("an object") {
                assert_eq!(&c["authentication"]["clientCert"][k], v, "{name}: `{k}`");
            }
        }
        for k in ["routeKey", "stage", "requestId", "timeEpoch"] {
            assert_eq!(c[k], ctx[k], "{name}: `requestContext.{k}`");
        }
        for k in ["method", "path", "protocol", "sourceIp"] {
            assert_eq!(c["http"][k], ctx["http"][k], "{name}: `http.{k}`");
        }
        if s["headers"].get("user-agent").is_some() {
            assert_eq!(c["http"]["userAgent"], ctx["http"]["userAgent"]);
        }
        if let Some(lambda) = ctx.pointer("/authorizer/lambda") {
            assert_eq!(&c["authorizer"]["lambda"], lambda, "{name}");
        }
        if let Some(claims) = ctx.pointer("/authorizer/jwt/claims") {
            assert_eq!(&c["authorizer"]["jwt"]["claims"], claims, "{name}");
        }
    }

    #[test]
    fn rest_events_match_aws_samples() {
        golden_v1("example-apigw-request.json");
        golden_v1("example-apigw-request-multi-value-parameters.json");
    }

    #[test]
    fn http_api_events_match_aws_samples() {
        golden_v2("example-apigw-v2-request-no-authorizer.json");
        golden_v2("example-apigw-v2-request-multi-value-parameters.json");
        golden_v2("example-apigw-v2-request-jwt-authorizer.json");
        golden_v2("example-apigw-v2-request-lambda-authorizer.json");
        // Its time, a capture of a real request, is what the gateway writes for that instant.
        let s = sample("example-apigw-v2-request-no-authorizer.json");
        let headers = HeaderMap::new();
        let vars = BTreeMap::new();
        let req = Request {
            method: "GET",
            path: "/",
            query: None,
            headers: &headers,
            resource: "/",
            params: Vec::new(),
            stage: "$default",
            stage_variables: &vars,
            request_id: "x",
            source_ip: "1.2.3.4".into(),
            identity: None,
            client_cert: None,
            body: b"",
            binary: false,
            time: at_ms(&s["requestContext"]["timeEpoch"]),
        };
        assert_eq!(
            req.v2("$default")["requestContext"]["time"],
            s["requestContext"]["time"]
        );
    }

    #[test]
    fn answers_read_as_api_gateway_reads_them() {
        let s = sample("example-apigw-response.json");
        let a = answer(PayloadFormat::V1, s.to_string().as_bytes()).expect("AWS's sample answer");
        assert_eq!(
            a.status.as_u16(),
            s["statusCode"].as_u64().expect("status") as u16
        );
        for (k, vs) in s["multiValueHeaders"].as_object().into_iter().flatten() {
            let got: Vec<&str> = a
                .headers
                .get_all(k.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let want: Vec<&str> = vs.as_array().expect("list").iter().map(text).collect();
            assert_eq!(got, want, "{k}");
        }
        assert_eq!(a.body, text(&s["body"]).as_bytes());
        // 2.0: bare JSON is a 200 with that JSON; cookies are Set-Cookie.
        let a = answer(PayloadFormat::V2, br#"{"a":1}"#).expect("bare");
        assert_eq!((a.status.as_u16(), &a.body[..]), (200, &br#"{"a":1}"#[..]));
        let a = answer(
            PayloadFormat::V2,
            br#"{"statusCode":201,"cookies":["a=1","b=2"],"body":"x"}"#,
        )
        .expect("cookies");
        assert_eq!(a.headers.get_all("set-cookie").iter().count(), 2);
        let a = answer(PayloadFormat::V2, br#""text""#).expect("a JSON string");
        assert_eq!(&a.body[..], br#""text""#);
        // What API Gateway calls a malformed proxy response.
        for bad in [
            &br#"not json"#[..],
            br#""text""#,
            br#"{"statusCode":"abc"}"#,
            br#"{"statusCode":700}"#,
            br#"{"statusCode":200,"headers":{"x":{"a":1}}}"#,
            br#"{"statusCode":200,"headers":{"bad name":"v"}}"#,
            br#"{"statusCode":200,"headers":{"x":"a\r\nInjected: 1"}}"#,
            br#"{"statusCode":200,"body":"%%%","isBase64Encoded":true}"#,
            br#"{"statusCode":200,"body":{"a":1}}"#,
        ] {
            assert!(
                answer(PayloadFormat::V1, bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Framing is the gateway's: a function's Content-Length or Transfer-Encoding is dropped.
        let a = answer(PayloadFormat::V1, br#"{"statusCode":200,"headers":{"content-length":"99","transfer-encoding":"chunked","connection":"close"},"body":"x"}"#).expect("answer");
        assert!(a.headers.is_empty(), "{:?}", a.headers);
    }

    #[test]
    fn binary_media_types() {
        let png = HeaderValue::from_static("image/png");
        let json = HeaderValue::from_static("application/json; charset=utf-8");
        assert!(is_binary(PayloadFormat::V1, &["image/*"], Some(&png)));
        assert!(is_binary(PayloadFormat::V1, &["*/*"], Some(&json)));
        assert!(!is_binary(PayloadFormat::V1, &["image/png"], Some(&json)));
        assert!(!is_binary(PayloadFormat::V1, &[], Some(&png)));
        assert!(is_binary(PayloadFormat::V2, &[], Some(&png)));
        assert!(!is_binary(PayloadFormat::V2, &[], Some(&json)));
        assert!(!is_binary(PayloadFormat::V2, &[], None));
    }
}
