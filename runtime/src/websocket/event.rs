//! The events WebSocket integrations get: API Gateway's WebSocket event, for `$connect`,
//! messages and `$disconnect` (the shapes of AWS's samples, which the tests compare with).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Map, Value};

use super::{Answer, Api};

/// One connection, as its events tell it.
pub(crate) struct Connection {
    /// Its id (`connectionId`).
    pub(crate) id: String,
    /// Its API.
    pub(crate) api: Arc<Api>,
    /// The stage.
    pub(crate) stage: Arc<str>,
    /// The `Host` it connected to.
    pub(crate) domain: String,
    /// The client's address.
    pub(crate) source_ip: IpAddr,
    /// Its `User-Agent`.
    pub(crate) user_agent: Option<String>,
    /// When it connected.
    pub(crate) connected_at: SystemTime,
    /// Who it is, when `$connect` authenticated it.
    pub(crate) identity: Option<crate::auth::Identity>,
    /// The handshake's headers, as an integration may see them.
    pub(crate) headers: HeaderMap,
    /// The handshake's query string.
    pub(crate) query: Option<String>,
    /// The stage's variables.
    pub(crate) stage_variables: std::collections::BTreeMap<String, String>,
}

/// Which event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `$connect`.
    Connect,
    /// A message, to the route with this key.
    Message(&'static str),
    /// `$disconnect`, with the close code and reason.
    Disconnect(u16, &'static str),
}

/// A message's part of its event.
pub(crate) struct Message<'a> {
    /// Its id (`messageId`).
    pub(crate) id: &'a str,
    /// Its payload.
    pub(crate) body: &'a [u8],
    /// Whether it came as a binary frame (then `body` is base64).
    pub(crate) binary: bool,
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Connection {
    /// The event for `kind`, as request `request_id`.
    pub(crate) fn event(
        &self,
        kind: Kind,
        request_id: &str,
        message: Option<Message<'_>>,
    ) -> Value {
        let now = SystemTime::now();
        let (route_key, event_type) = match kind {
            Kind::Connect => ("$connect", "CONNECT"),
            Kind::Message(key) => (key, "MESSAGE"),
            Kind::Disconnect(..) => ("$disconnect", "DISCONNECT"),
        };
        let mut identity = Map::new();
        identity.insert("sourceIp".into(), Value::String(self.source_ip.to_string()));
        if let Some(ua) = &self.user_agent {
            identity.insert("userAgent".into(), Value::String(ua.clone()));
        }
        if let Some((_, name)) = self.identity.as_ref().and_then(|i| i.key.as_ref()) {
            // The key itself is a secret the gateway keeps only hashed: its name stands for it.
            identity.insert("apiKeyId".into(), Value::String(name.clone()));
        }
        let mut context = json!({
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": crate::lambda::event::clf_time(now),
            "messageDirection": "IN",
            "stage": &*self.stage,
            "connectedAt": epoch_ms(self.connected_at),
            "requestTimeEpoch": epoch_ms(now),
            "identity": identity,
            "requestId": request_id,
            "domainName": self.domain,
            "connectionId": self.id,
            "apiId": crate::lambda::event::API_ID,
        });
        let c = context.as_object_mut().expect("an object");
        if let Some(a) = self.authorizer() {
            c.insert("authorizer".into(), a);
        }
        if let Kind::Disconnect(code, reason) = kind {
            c.insert("disconnectStatusCode".into(), json!(code));
            c.insert("disconnectReason".into(), json!(reason));
        }
        let mut event = Map::new();
        if kind == Kind::Connect || matches!(kind, Kind::Disconnect(..)) {
            let (headers, multi) = crate::lambda::event::header_maps(&self.headers);
            event.insert("headers".into(), headers);
            event.insert("multiValueHeaders".into(), multi);
        }
        if kind == Kind::Connect {
            let (query, multi) = crate::lambda::event::query_maps(self.query.as_deref());
            event.insert("queryStringParameters".into(), query);
            event.insert("multiValueQueryStringParameters".into(), multi);
            event.insert(
                "stageVariables".into(),
                crate::lambda::event::text_object(
                    self.stage_variables
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                ),
            );
        }
        if let (Some(m), Some(c)) = (&message, context.as_object_mut()) {
            c.insert("messageId".into(), Value::String(m.id.to_string()));
        }
        event.insert("requestContext".into(), context);
        match message {
            Some(m) => {
                let text = if m.binary {
                    None
                } else {
                    std::str::from_utf8(m.body).ok()
                };
                match text {
                    Some(t) => {
                        event.insert("body".into(), Value::String(t.to_string()));
                        event.insert("isBase64Encoded".into(), Value::Bool(false));
                    }
                    None => {
                        use base64::Engine;
                        event.insert(
                            "body".into(),
                            Value::String(base64::engine::general_purpose::STANDARD.encode(m.body)),
                        );
                        event.insert("isBase64Encoded".into(), Value::Bool(true));
                    }
                }
            }
            None => {
                event.insert("isBase64Encoded".into(), Value::Bool(false));
            }
        }
        Value::Object(event)
    }

    /// `requestContext.authorizer`: a custom authorizer's context and `principalId`, or a JWT's
    /// claims, as AWS gives them to WebSocket routes.
    fn authorizer(&self) -> Option<Value> {
        let identity = self.identity.as_ref()?;
        if let Some(ctx) = crate::lambda::event::authorizer_context(identity) {
            return Some(Value::Object(ctx));
        }
        let claims = identity.claims.as_deref()?;
        Some(json!({ "claims": claims }))
    }
}

/// The handshake's headers and query string as an integration gets them, as an upstream would:
/// those of the client's connection and its own account of forwarding dropped, credentials that
/// did not let the caller in removed, and those whose scheme hides them (API keys and tokens in
/// the query, by default).
pub(crate) fn forwarded(
    x: &crate::pipeline::Exchange<'_, '_>,
    req: &http::Request<axum::body::Body>,
) -> (HeaderMap, Option<String>) {
    let mut headers = req.headers().clone();
    let query = x
        .strip_credentials(req.extensions(), &mut headers, req.uri().query())
        .map(|q| q.into_owned());
    x.strip_connection_headers(&mut headers);
    for name in [
        http::header::SEC_WEBSOCKET_KEY,
        http::header::SEC_WEBSOCKET_EXTENSIONS,
    ] {
        headers.remove(name);
    }
    (headers, query)
}

/// A Lambda function's answer to a WebSocket event: `statusCode` and `body` (a bare JSON answer
/// is a 200 with itself as the body), as API Gateway reads it.
#[cfg_attr(not(feature = "lambda"), allow(dead_code))]
pub(crate) fn lambda_answer(payload: &[u8]) -> Result<Answer, String> {
    let a = crate::lambda::event::answer(crate::lambda::PayloadFormat::V2, payload)
        .map_err(|m| format!("Malformed Lambda proxy response: {}", m.0))?;
    Ok(Answer {
        status: a.status,
        headers: a.headers,
        body: a.body,
    })
}

/// The JSON error API Gateway sends a client in place of an answer
/// (`{"message": …, "connectionId": …, "requestId": …}`).
pub(crate) fn error_message(
    message: &str,
    connection: &str,
    request_id: &str,
    errors: Option<Value>,
) -> Bytes {
    let mut v = json!({
        "message": message,
        "connectionId": connection,
        "requestId": request_id,
    });
    if let Some(e) = errors {
        v["errors"] = e;
    }
    Bytes::from(v.to_string())
}
