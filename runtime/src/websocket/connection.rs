//! One WebSocket connection after its handshake: frames in, messages routed to integrations,
//! replies and management messages out, until one side closes; then `$disconnect`.
//!
//! A connection's messages are handled one at a time, in the order they came. tungstenite
//! answers pings with pongs, reassembles fragments, checks masking and UTF-8, and enforces the
//! frame and message limits (a frame or message over them closes with 1009).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::event::{self, Connection, Kind};
use super::registry::{Command, Handle};
use crate::observe::Metrics;

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// How deep a JSON message may nest, and how many values it may hold, for route selection and
/// schemas (a message is at most `limits.message` bytes, which bounds both further).
const JSON_DEPTH: usize = 128;
const JSON_VALUES: usize = 1_000_000;

/// What a connection reads at a time.
const READ_BUFFER: usize = 4 << 10;

/// A token bucket of one connection's messages (`message_throttle`): GCRA, on this task alone.
struct Bucket {
    interval: Duration,
    window: Duration,
    tat: Instant,
}

impl Bucket {
    fn new(rate: crate::throttle::Rate) -> Option<Bucket> {
        (rate.per_second > 0.0).then(|| {
            let interval = Duration::from_secs_f64(1.0 / rate.per_second);
            Bucket {
                interval,
                window: interval * rate.burst.max(1),
                tat: Instant::now(),
            }
        })
    }

    fn take(&mut self, now: Instant) -> bool {
        let next = self.tat.max(now) + self.interval;
        if next.duration_since(now) > self.window {
            return false;
        }
        self.tat = next;
        true
    }
}

/// Why a connection ended: the close code and reason `$disconnect` gets.
pub(crate) type Ending = (u16, &'static str);

/// Serves the connection until it ends, then tells `$disconnect`.
pub(crate) async fn serve(
    upgraded: hyper::upgrade::Upgraded,
    conn: Arc<Connection>,
    mut handle: Handle,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let api = conn.api.clone();
    let limits = api.def.limits;
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(limits.message);
    config.max_frame_size = Some(limits.frame);
    // A connection mostly waits: 4 KiB read at a time (tungstenite's default allocates 128 KiB
    // per connection up front), larger messages gathered as they come.
    config.read_buffer_size = READ_BUFFER;
    let mut ws =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
    metrics.websocket_opened(api.path);
    let idle = Duration::from_millis(limits.idle_ms);
    let ends = tokio::time::Instant::now() + Duration::from_millis(limits.max_ms);
    let quiet = tokio::time::sleep(idle);
    tokio::pin!(quiet);
    let mut bucket = api.def.per_connection.and_then(Bucket::new);
    let stopping = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopping);
    let ending: Ending = loop {
        tokio::select! {
            biased;
            () = &mut stopping => break close(&mut ws, 1001, "Going away").await,
            () = tokio::time::sleep_until(ends) => break close(&mut ws, 1001, "Going away").await,
            () = &mut quiet => break close(&mut ws, 1001, "Going away").await,
            command = handle.commands.recv() => match command {
                Some(Command::Send(data)) => {
                    if send(&mut ws, data).await.is_err() {
                        break (1006, "Connection lost");
                    }
                    metrics.websocket_message(api.path, "out");
                }
                Some(Command::Close) | None => break close(&mut ws, 1000, "Normal closure").await,
            },
            frame = ws.next() => {
                quiet.as_mut().reset(tokio::time::Instant::now() + idle);
                handle.touch();
                let (body, binary) = match frame {
                    Some(Ok(Message::Text(t))) => (Bytes::from(t), false),
                    Some(Ok(Message::Binary(b))) => (b, true),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                        // The pong tungstenite queued goes out now.
                        let _ = ws.flush().await;
                        continue;
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let _ = ws.flush().await;
                        break match frame {
                            Some(f) => (u16::from(f.code), "Client-side close frame"),
                            None => (1005, "Client-side close frame status not set"),
                        };
                    }
                    Some(Err(WsError::Capacity(_))) => break close(&mut ws, 1009, "Message too big").await,
                    Some(Err(WsError::Utf8(_))) => break close(&mut ws, 1007, "Invalid frame payload data").await,
                    Some(Err(WsError::Protocol(_))) => break close(&mut ws, 1002, "Protocol error").await,
                    Some(Err(_)) | None => break (1006, "Connection lost"),
                };
                metrics.websocket_message(api.path, "in");
                if let Some(b) = &mut bucket {
                    if !b.take(Instant::now()) {
                        let id = request_id();
                        let text = event::error_message("Too Many Requests", &conn.id, &id, None);
                        if send(&mut ws, text).await.is_err() {
                            break (1006, "Connection lost");
                        }
                        continue;
                    }
                }
                if let Some(reply) = on_message(&conn, &body, binary).await {
                    if send(&mut ws, reply).await.is_err() {
                        break (1006, "Connection lost");
                    }
                    metrics.websocket_message(api.path, "out");
                }
            }
        }
    };
    metrics.websocket_closed(api.path, ending.0);
    if handle.leave().await {
        disconnected(&conn, ending).await;
    }
    drop(handle);
}

/// Tells the `$disconnect` route, if the API has one, that `conn` ended.
pub(crate) async fn disconnected(conn: &Connection, ending: Ending) {
    let api = &conn.api;
    if let Some(index) = api.route("$disconnect") {
        let id = request_id();
        let e = conn.event(Kind::Disconnect(ending.0, ending.1), &id, None);
        if let Err(why) = api.invoke(index, &e).await {
            tracing::warn!(route = "$disconnect", api = api.path, error = %why, "the WebSocket integration failed");
        }
    }
}

/// A request id for one event.
fn request_id() -> String {
    crate::trace::hex(&crate::observe::random_bytes())
}

/// Sends a close frame and waits (a moment) for the client's.
async fn close(ws: &mut Socket, code: u16, reason: &'static str) -> Ending {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        if ws.close(Some(frame)).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
    (code, reason)
}

/// Sends `data`: a text frame when it is UTF-8, else binary.
async fn send(ws: &mut Socket, data: Bytes) -> Result<(), WsError> {
    let message = match tokio_tungstenite::tungstenite::Utf8Bytes::try_from(data.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(data),
    };
    ws.send(message).await
}

/// One message: its route, its checks, its integration; the reply to send, if any.
async fn on_message(conn: &Connection, body: &[u8], binary: bool) -> Option<Bytes> {
    let api = &conn.api;
    let def = api.def;
    let id = request_id();
    // Parsed once, when route selection or a route's schema reads it.
    let json = (!def.selection.is_empty() || def.routes.iter().any(|r| r.schema.is_some()))
        .then(|| crate::json::Doc::parse_with_limits(body, JSON_DEPTH, JSON_VALUES));
    let selected = match &json {
        Some(Ok(doc)) => select(def.selection, doc),
        _ => None,
    };
    let index = selected
        .as_deref()
        .and_then(|key| {
            def.routes
                .iter()
                .position(|r| r.key == key && !r.key.starts_with('$'))
        })
        .or_else(|| api.route("$default"));
    let Some(index) = index else {
        return Some(event::error_message("Forbidden", &conn.id, &id, None));
    };
    let route = &def.routes[index];
    if let Err(p) = api.admit(conn, index).await {
        let message = if p.kind == Some("QUOTA_EXCEEDED") {
            "Limit Exceeded"
        } else {
            "Too Many Requests"
        };
        return Some(event::error_message(message, &conn.id, &id, None));
    }
    if let (Some(schema), Some(json)) = (route.schema, &json) {
        if let Err(errors) = check(schema, json) {
            return Some(event::error_message(
                "Invalid request body",
                &conn.id,
                &id,
                Some(errors),
            ));
        }
    }
    let message_id = super::registry::new_id();
    let e = conn.event(
        Kind::Message(route.key),
        &id,
        Some(event::Message {
            id: &message_id,
            body,
            binary,
        }),
    );
    match api.invoke(index, &e).await {
        Ok(answer) if route.respond && !answer.body.is_empty() => Some(answer.body),
        Ok(_) => None,
        Err(why) => {
            tracing::warn!(route = route.key, api = api.path, error = %why, "the WebSocket integration failed");
            Some(event::error_message(
                "Internal server error",
                &conn.id,
                &id,
                None,
            ))
        }
    }
}

/// The route key `route_selection` picks from a message: the string at its pointer in the JSON
/// message; `None` when the message is not JSON or holds no string there.
pub(crate) fn select(pointer: &[&str], doc: &crate::json::Doc<'_>) -> Option<String> {
    if pointer.is_empty() {
        return None;
    }
    let mut at = 0;
    for token in pointer {
        at = doc.get(at, token)?;
    }
    doc.as_str(at).map(|s| s.into_owned())
}

/// Checks a message against its route's schema: the violations as `errors`, as the HTTP
/// answers list them.
fn check(
    schema: crate::validate::input::SchemaFn,
    json: &Result<crate::json::Doc<'_>, crate::json::SyntaxError>,
) -> Result<(), serde_json::Value> {
    let doc = match json {
        Ok(d) => d,
        Err(e) => {
            return Err(
                serde_json::json!([{ "pointer": "", "keyword": "json", "message": e.to_string() }]),
            )
        }
    };
    let mut ctx = crate::validate::Ctx::new();
    if schema(doc, 0, &mut ctx, None) {
        return Ok(());
    }
    Err(ctx
        .errors
        .iter()
        .map(|v| serde_json::json!({ "pointer": v.pointer, "keyword": v.keyword, "message": v.message }))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_selection() {
        let of = |pointer: &[&str], text: &str| {
            select(pointer, &crate::json::Doc::parse_str(text).expect("JSON"))
        };
        assert_eq!(
            of(&["action"], r#"{"action":"send","x":1}"#).as_deref(),
            Some("send")
        );
        assert_eq!(
            of(&["a", "b"], r#"{"a":{"b":"deep"}}"#).as_deref(),
            Some("deep")
        );
        assert_eq!(of(&["action"], r#"{"action":7}"#), None);
        assert_eq!(of(&["missing"], r#"{"action":"send"}"#), None);
        assert_eq!(of(&[], r#"{"action":"send"}"#), None);
    }

    #[test]
    fn bucket() {
        let rate = crate::throttle::Rate {
            per_second: 1.0,
            burst: 2,
            per: crate::throttle::Per::Route,
        };
        let mut b = Bucket::new(rate).unwrap();
        let now = Instant::now();
        assert!(b.take(now));
        assert!(b.take(now));
        assert!(!b.take(now));
        assert!(b.take(now + Duration::from_millis(1100)));
    }
}
