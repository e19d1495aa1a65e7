//! Custom authorizers: the gateway POSTs AWS's HTTP-API authorizer event (payload format 2.0)
//! to a URL (`type: http`), or invokes a Lambda function (`type: lambda`) with that event or, in
//! payload format 1.0, a REST API's TOKEN or REQUEST authorizer event; it reads either the simple
//! response (`{"isAuthorized": bool, "context": {…}}`) or a policy document (`principalId`,
//! `policyDocument`, `context`).
//!
//! - Every identity source (a header, query parameter or cookie, or a field of the verified
//!   client certificate, `context.identity.clientCert.subjectDN`) must be present; otherwise the
//!   request is 401 and nothing is called.
//! - With mutual TLS, the events carry the client certificate as API Gateway's do
//!   (`requestContext.identity.clientCert` in 1.0, `requestContext.authentication.clientCert`
//!   in 2.0), and cached answers are kept per certificate as well as per identity.
//! - The event carries the normalised path the router matched (`//a/./b/` is `/a/b`), never the
//!   raw one, in `rawPath`, `requestContext.http.path` and `routeArn`.
//! - Answers (allow and deny alike) are cached for `ttl`; the cache is bounded. A policy
//!   document is cached per identity and evaluated against each request's own `routeArn`, as
//!   AWS does, so an Allow for one route never opens another. A simple answer says nothing of
//!   routes, so it is cached per identity and route.
//! - Calls on behalf of one client address are limited (`calls_per_client` per second, twice that
//!   in a burst; default 10): past it the request is 429 and the authorizer is not called, so an
//!   unauthenticated flood cannot drive it. Cached answers are not counted.
//! - An authorizer that cannot be reached, times out, or answers something else is 503: never
//!   500, and never a pass.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{AuthorizerDef, Credentials, Denial};
use crate::stage::{Stage, StartError};

/// Most cached results kept; beyond it, expired entries go first, then everything.
const MAX_CACHED: usize = 10_000;

type Client =
    hyper_util::client::legacy::Client<crate::tls::Connector, http_body_util::Full<bytes::Bytes>>;

/// What an authorizer said.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Allowed.
    pub allowed: bool,
    /// `context`, passed on as the caller's authorizer context.
    pub context: serde_json::Value,
    /// `principalId`, when a policy document gave one.
    pub principal: Option<String>,
}

/// Where an authorizer is.
enum Transport {
    /// POST the event to a URL.
    Http(Box<(http::Uri, Client)>),
    /// Invoke a Lambda function.
    #[cfg(feature = "lambda")]
    Lambda(std::sync::Arc<crate::lambda::Function>),
}

/// One authorizer.
pub struct Authorizer {
    name: String,
    transport: Transport,
    def: AuthorizerDef,
    cache: Mutex<HashMap<String, (Instant, Answer)>>,
    callers: Mutex<HashMap<std::net::IpAddr, (f64, Instant)>>,
}

/// An authorizer's answer as cached: the verdict of a simple answer, or a policy document to
/// evaluate per request.
#[derive(Debug, Clone)]
enum Answer {
    /// `{"isAuthorized": …}`: for the route it was asked about.
    Simple(Verdict),
    /// A policy document: for any route of the identity, each evaluated on its own.
    Policy(std::sync::Arc<serde_json::Value>),
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("scheme", &self.name)
            .finish()
    }
}

impl Authorizer {
    /// Prepares an authorizer for `stage`.
    pub fn new(def: &AuthorizerDef, stage: &Stage, name: &str) -> Result<Authorizer, StartError> {
        let transport = match def.lambda {
            #[cfg(feature = "lambda")]
            Some(lambda) => Transport::Lambda(crate::lambda::function(
                lambda,
                stage,
                &format!("the authorizer of scheme `{name}`"),
            )?),
            #[cfg(not(feature = "lambda"))]
            Some(_) => {
                return Err(StartError::Invalid(format!(
                    "the authorizer of scheme `{name}` is a Lambda function, and this gateway was built without Lambda"
                )))
            }
            None => {
                let url =
                    stage.http_url(def.url, &format!("the authorizer URL of scheme `{name}`"))?;
                let client = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build(crate::tls::connector());
                Transport::Http(Box::new((url, client)))
            }
        };
        Ok(Authorizer {
            name: name.to_string(),
            transport,
            def: *def,
            cache: Mutex::new(HashMap::new()),
            callers: Mutex::new(HashMap::new()),
        })
    }

    /// Decides a request.
    pub async fn authorize(&self, creds: &Credentials<'_>) -> Result<Verdict, Denial> {
        let mut identity = Vec::new();
        for src in self.def.identity {
            let value = match src.strip_prefix("context.identity.clientCert.") {
                Some(field) => creds
                    .client_cert
                    .and_then(|c| c.field(field))
                    .map(std::borrow::Cow::into_owned),
                None => super::identity_place(src).and_then(|(at, n)| creds.read(at, n)),
            };
            match value.filter(|v| !v.is_empty()) {
                Some(v) => identity.push(v),
                None => {
                    return Err(Denial::Unauthenticated(
                        "Bearer",
                        format!("the identity source `{src}` is missing"),
                    ))
                }
            }
        }
        let mut key = identity.join("\u{0}");
        // The event carries the client certificate, so an answer may depend on it: it is only
        // reused for the same certificate.
        if let Some(cert) = creds.client_cert {
            key.push_str("\u{0}cert:");
            key.push_str(&cert.fingerprint);
        }
        let route_arn = route_arn(creds);
        // A policy is kept under the identity; a simple answer under the identity and route.
        let route_key = format!("{key}\u{0}{}", creds.route_key);
        if self.def.ttl > 0 {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            for k in [&key, &route_key] {
                match cache.get(k) {
                    Some((until, Answer::Policy(p))) if now < *until => {
                        return parse_answer(p, &route_arn).ok_or_else(|| {
                            Denial::Unavailable("the authorizer is not available".into())
                        });
                    }
                    Some((until, Answer::Simple(v))) if now < *until => return Ok(v.clone()),
                    _ => {}
                }
            }
        }
        if !self.admit(creds.source_ip) {
            return Err(Denial::Throttled(
                "too many authorizer calls from this client".into(),
            ));
        }
        let answer = self.call(creds, &identity, &route_arn).await?;
        let verdict = match &answer {
            Answer::Simple(v) => v.clone(),
            Answer::Policy(p) => parse_answer(p, &route_arn)
                .ok_or_else(|| Denial::Unavailable("the authorizer is not available".into()))?,
        };
        let key = match answer {
            Answer::Simple(_) => route_key,
            Answer::Policy(_) => key,
        };
        if self.def.ttl > 0 {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= MAX_CACHED {
                let now = Instant::now();
                cache.retain(|_, (until, _)| *until > now);
                if cache.len() >= MAX_CACHED {
                    cache.clear();
                }
            }
            cache.insert(
                key,
                (Instant::now() + Duration::from_secs(self.def.ttl), answer),
            );
        }
        Ok(verdict)
    }

    /// Takes a token from the client's bucket of authorizer calls.
    fn admit(&self, client: std::net::IpAddr) -> bool {
        let rate = self.def.calls_per_client;
        if rate <= 0.0 {
            return true;
        }
        let burst = (rate * 2.0).max(1.0);
        let now = Instant::now();
        let mut callers = self.callers.lock().unwrap_or_else(|e| e.into_inner());
        if callers.len() >= MAX_CACHED && !callers.contains_key(&client) {
            // Buckets that have filled up again hold nothing worth keeping.
            let full = Duration::from_secs_f64(burst / rate);
            callers.retain(|_, (_, at)| now.duration_since(*at) < full);
            if callers.len() >= MAX_CACHED {
                callers.clear();
            }
        }
        let (tokens, at) = callers.entry(client).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    async fn call(
        &self,
        creds: &Credentials<'_>,
        identity: &[String],
        route_arn: &str,
    ) -> Result<Answer, Denial> {
        let unavailable = |why: String| {
            tracing::warn!(scheme = %self.name, error = %why, "the authorizer failed");
            Denial::Unavailable("the authorizer is not available".into())
        };
        let timeout = Duration::from_millis(self.def.timeout);
        let bytes = match &self.transport {
            Transport::Http(http) => {
                let (url, client) = &**http;
                let event = http_api_event(creds, identity, route_arn);
                let req = http::Request::post(url.clone())
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(http_body_util::Full::new(bytes::Bytes::from(
                        event.to_string(),
                    )))
                    .map_err(|e| unavailable(e.to_string()))?;
                let resp = tokio::time::timeout(timeout, client.request(req))
                    .await
                    .map_err(|_| unavailable("timed out".into()))?
                    .map_err(|e| unavailable(e.to_string()))?;
                if !resp.status().is_success() {
                    return Err(unavailable(format!("answered {}", resp.status())));
                }
                let body = http_body_util::Limited::new(resp.into_body(), 1 << 20);
                http_body_util::BodyExt::collect(body)
                    .await
                    .map_err(|e| unavailable(e.to_string()))?
                    .to_bytes()
            }
            #[cfg(feature = "lambda")]
            Transport::Lambda(function) => {
                use crate::lambda::{Failure, PayloadFormat};
                let format = self.def.lambda.map(|l| l.payload_format);
                let event = match format {
                    Some(PayloadFormat::V1) if self.def.token_event => serde_json::json!({
                        "type": "TOKEN",
                        "authorizationToken": identity.first(),
                        "methodArn": route_arn,
                    }),
                    Some(PayloadFormat::V1) => rest_request_event(creds, route_arn),
                    _ => http_api_event(creds, identity, route_arn),
                };
                let payload = bytes::Bytes::from(event.to_string());
                match function.invoke(payload, timeout).await {
                    Ok(answer) => answer,
                    Err(Failure::Function(e)) => {
                        return Err(unavailable(String::from_utf8_lossy(&e).into_owned()))
                    }
                    Err(Failure::Timeout) => return Err(unavailable("timed out".into())),
                    Err(Failure::Unavailable(e)) => return Err(unavailable(e)),
                }
            }
        };
        let answer: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| unavailable(format!("not JSON: {e}")))?;
        if answer.get("isAuthorized").is_some_and(|v| v.is_boolean()) {
            return parse_answer(&answer, route_arn)
                .map(Answer::Simple)
                .ok_or_else(|| unavailable("an answer of neither shape".into()));
        }
        match parse_answer(&answer, route_arn) {
            Some(_) => Ok(Answer::Policy(std::sync::Arc::new(answer))),
            None => Err(unavailable("an answer of neither shape".into())),
        }
    }
}

/// AWS's HTTP-API authorizer event (payload format 2.0).
fn http_api_event(
    creds: &Credentials<'_>,
    identity: &[String],
    route_arn: &str,
) -> serde_json::Value {
    let mut headers = serde_json::Map::new();
    for (k, v) in creds.headers.iter() {
        if let Ok(v) = v.to_str() {
            let entry = headers
                .entry(k.as_str().to_string())
                .or_insert_with(|| serde_json::Value::String(String::new()));
            if let serde_json::Value::String(s) = entry {
                if !s.is_empty() {
                    s.push(',');
                }
                s.push_str(v);
            }
        }
    }
    let query: serde_json::Map<String, serde_json::Value> = creds
        .query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let d = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (d(k), serde_json::Value::String(d(v)))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut path = String::with_capacity(64);
    crate::path::encode_path(&mut path, creds.segs);
    let mut event = serde_json::json!({
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": route_arn,
        "identitySource": identity,
        "routeKey": creds.route_key,
        "rawPath": path,
        "rawQueryString": creds.query.unwrap_or(""),
        "headers": headers,
        "queryStringParameters": query,
        "requestContext": {
            "accountId": "gwgen",
            "apiId": "gateway",
            "http": {
                "method": creds.method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": creds.source_ip.to_string(),
                "userAgent": creds.header("user-agent").unwrap_or(""),
            },
            "requestId": creds.request_id,
            "routeKey": creds.route_key,
            "stage": creds.stage,
            "timeEpoch": now,
        },
    });
    if let Some(cert) = creds.client_cert {
        event["requestContext"]["authentication"] =
            serde_json::json!({ "clientCert": cert.event() });
    }
    event
}

/// A REST API REQUEST authorizer's event (payload format 1.0): the proxy event of the request,
/// without its body, with `type` and `methodArn`.
#[cfg(feature = "lambda")]
fn rest_request_event(creds: &Credentials<'_>, route_arn: &str) -> serde_json::Value {
    let mut path = String::with_capacity(64);
    crate::path::encode_path(&mut path, creds.segs);
    let request = crate::lambda::event::Request {
        method: creds.method,
        path: &path,
        query: creds.query,
        headers: creds.headers,
        resource: creds.resource,
        params: creds.params.iter().collect(),
        stage: creds.stage,
        stage_variables: creds.stage_variables,
        request_id: creds.request_id,
        source_ip: creds.source_ip.to_string(),
        identity: None,
        client_cert: creds.client_cert,
        body: b"",
        binary: false,
        time: std::time::SystemTime::now(),
    };
    let mut event = request.v1();
    if let serde_json::Value::Object(e) = &mut event {
        e.remove("body");
        e.remove("isBase64Encoded");
        e.insert("type".into(), "REQUEST".into());
        e.insert("methodArn".into(), route_arn.into());
    }
    event
}

/// The `routeArn` of a request, over the normalised path the router matched.
fn route_arn(creds: &Credentials<'_>) -> String {
    let mut arn = format!(
        "arn:aws:execute-api:local:gwgen:gateway/{}/{}",
        creds.stage, creds.method
    );
    crate::path::encode_path(&mut arn, creds.segs);
    arn
}

/// Reads a simple response or a policy document.
pub fn parse_answer(answer: &serde_json::Value, route_arn: &str) -> Option<Verdict> {
    let context = answer
        .get("context")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    if let Some(allowed) = answer.get("isAuthorized").and_then(|v| v.as_bool()) {
        return Some(Verdict {
            allowed,
            context,
            principal: None,
        });
    }
    let statements = answer.pointer("/policyDocument/Statement")?;
    let statements: Vec<&serde_json::Value> = match statements {
        serde_json::Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut allow = false;
    for st in statements {
        let effect = st.get("Effect").and_then(|v| v.as_str()).unwrap_or("");
        let resources: Vec<&str> = match st.get("Resource") {
            Some(serde_json::Value::String(s)) => vec![s.as_str()],
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect(),
            _ => Vec::new(),
        };
        if !resources.iter().any(|r| arn_matches(r, route_arn)) {
            continue;
        }
        match effect {
            "Deny" => {
                allow = false;
                break;
            }
            "Allow" => allow = true,
            _ => {}
        }
    }
    Some(Verdict {
        allowed: allow,
        context,
        principal: answer
            .get("principalId")
            .and_then(|v| v.as_str())
            .map(str::to_string),
    })
}

/// `*` matches any run of characters, as in IAM resource patterns.
fn arn_matches(pattern: &str, arn: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == arn;
    }
    let mut rest = arn;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let arn = "arn:aws:execute-api:local:gwgen:gateway/dev/GET/orders/1";
        let simple = serde_json::json!({"isAuthorized": true, "context": {"user": "a"}});
        assert!(parse_answer(&simple, arn).is_some_and(|v| v.allowed));
        let policy = serde_json::json!({"principalId": "u1", "policyDocument": {"Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:aws:execute-api:*:*:*/dev/GET/*"}]}});
        let v = parse_answer(&policy, arn).unwrap();
        assert!(v.allowed);
        assert_eq!(v.principal.as_deref(), Some("u1"));
        let deny = serde_json::json!({"policyDocument": {"Statement": [
            {"Effect": "Allow", "Resource": "*"}, {"Effect": "Deny", "Resource": "*/GET/orders/*"}]}});
        assert!(!parse_answer(&deny, arn).unwrap().allowed);
        let elsewhere = serde_json::json!({"policyDocument": {"Statement": [{"Effect": "Allow", "Resource": "*/POST/*"}]}});
        assert!(!parse_answer(&elsewhere, arn).unwrap().allowed);
        assert!(parse_answer(&serde_json::json!({"nothing": 1}), arn).is_none());
    }
}
