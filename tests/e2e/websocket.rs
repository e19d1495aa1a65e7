//! WebSocket APIs end to end (`tests/fixtures/gateway/websocket*.yaml`): real clients (the
//! `websockets` library from PyPI, `tests/tools/ws_client.py`) connect through the gateway; a
//! real backend (`tests/tools/ws_backend.py`) gets the routes' events, records them, and answers
//! through the `@connections` management API; with Redis, two gateway instances share their
//! connections. Raw sockets try the handshakes a client should not get through.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::gateway::{build, Running};
use crate::net::{send, Redis};
use crate::support::{repo, scratch};

/// The test backend, stopped by PID when dropped.
struct Backend {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Backend {
    fn start(dir: &Path, admin_url: &str, token: &str) -> Backend {
        let port_file = dir.join("backend.port");
        let log = dir.join("events.jsonl");
        let child = Command::new(crate::auth::python())
            .arg(repo().join("tests/tools/ws_backend.py"))
            .arg(&port_file)
            .arg(&log)
            .arg(admin_url)
            .arg(token)
            .stdout(Stdio::null())
            .spawn()
            .expect("the backend starts");
        let port = crate::support::port_from_file(&port_file, "the WebSocket backend");
        Backend { child, port, log }
    }

    /// Everything it recorded so far.
    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The events of one route path (`/connect`, …) of connection `id` (any: `None`).
    fn of(&self, path: &str, id: Option<&str>) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["path"] == path)
            .filter(|e| id.is_none_or(|id| e["event"]["requestContext"]["connectionId"] == id))
            .map(|e| e["event"].clone())
            .collect()
    }

    /// Waits (bounded) until `f` holds of the events.
    fn wait_for(&self, what: &str, limit: Duration, f: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + limit;
        while !f(&self.events()) {
            assert!(Instant::now() < deadline, "{what}: {:#?}", self.events());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The id of the latest connection whose `$connect` event came with this user agent.
    fn connection_of(&self, agent: &str) -> String {
        self.wait_for("the $connect event", Duration::from_secs(10), |e| {
            e.iter()
                .any(|e| e["path"] == "/connect" && e["event"]["headers"]["user-agent"] == agent)
        });
        let connects = self.of("/connect", None);
        let e = connects
            .iter()
            .rev()
            .find(|e| e["headers"]["user-agent"] == agent)
            .expect("a $connect event");
        e["requestContext"]["connectionId"]
            .as_str()
            .expect("an id")
            .to_string()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one client plan to its end.
pub(crate) fn client(plan: Value) -> Value {
    let out = Command::new(crate::auth::python())
        .arg(repo().join("tests/tools/ws_client.py"))
        .arg(plan.to_string())
        .output()
        .expect("the client runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client prints JSON")
}

/// Starts a client plan in the background; its output once it ends.
struct Background(Child);

impl Background {
    fn start(plan: Value) -> Background {
        Background(
            Command::new(crate::auth::python())
                .arg(repo().join("tests/tools/ws_client.py"))
                .arg(plan.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .expect("the client runs"),
        )
    }

    /// Starts a client plan and waits (bounded) until its handshake has been answered: from
    /// then on the connection is in the gateway's table (a `$connect` event comes before).
    fn connected(plan: Value) -> Background {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let flag = std::env::temp_dir().join(format!("gwgen-ws-ready-{}-{n}", std::process::id()));
        let _ = std::fs::remove_file(&flag);
        let mut plan = plan;
        if let Some(steps) = plan["steps"].as_array_mut() {
            steps.insert(0, json!({ "ready": flag }));
        }
        let mut b = Background::start(plan);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !flag.exists() {
            if let Ok(Some(_)) = b.0.try_wait() {
                panic!("the client ended before connecting: {}", b.finish());
            }
            assert!(Instant::now() < deadline, "the client did not connect");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(&flag);
        b
    }

    fn finish(self) -> Value {
        let out = self.0.wait_with_output().expect("the client ends");
        serde_json::from_slice(&out.stdout).expect("the client prints JSON")
    }
}

/// A plan with a user agent of its own, so that its events can be told apart.
fn plan(url: String, agent: &str, headers: Value, steps: Value) -> Value {
    json!({ "url": url, "agent": agent, "headers": headers, "steps": steps })
}

fn admin(gw: &Running, method: &str, id: &str, token: &str, body: &[u8]) -> crate::net::Reply {
    // Ids are URL-safe: they go into the path as they are.
    let mut raw = format!(
        "{method} /@connections/{id} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    send(gw.admin, &raw)
}

/// Every key of AWS's sample event is in ours (values aside), for the keys both may have.
fn keys_cover(ours: &Value, sample: &Value, what: &str) {
    let (Some(o), Some(s)) = (ours.as_object(), sample.as_object()) else {
        return;
    };
    for (k, v) in s {
        // Headers are the client's; `apiKey` is a secret the gateway keeps hashed (its
        // `apiKeyId` stands for it).
        if ["headers", "multiValueHeaders", "apiKey"].contains(&k.as_str()) {
            continue;
        }
        let mine = o
            .get(k)
            .unwrap_or_else(|| panic!("{what}: `{k}` is missing: {ours:#}"));
        if v.is_object() && k != "queryStringParameters" && k != "multiValueQueryStringParameters" {
            keys_cover(mine, v, &format!("{what}.{k}"));
        }
    }
}

fn sample(name: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("tests/corpus/lambda-events").join(name))
        .expect("the sample");
    serde_json::from_str(&text).expect("JSON")
}

/// The single-instance fixture with its backend, JWKS and an API key.
struct Chat {
    gw: Running,
    backend: Backend,
    key: String,
    /// A key of plan `tiny` (a quota of 4 a day: its handshake and three messages).
    tiny: String,
    tokens: std::collections::HashMap<String, String>,
    _jwks: crate::auth::Jwks,
    _authz: crate::auth::Authz,
}

const TOKEN: &str = "admin-secret-token";

fn chat() -> Chat {
    // Tests run at once: each gateway and backend has a folder of its own.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = scratch(&format!("websocket-{n}"));
    let material = crate::auth::material(&dir);
    let jwks = crate::auth::Jwks::start(material.jwks.clone());
    let authz = crate::auth::Authz::start();
    let bin = build("tests/fixtures/gateway/websocket.yaml");
    let keys = dir.join("keys.txt");
    let key = crate::auth::add_key(&bin, "chat", &keys);
    let tiny = crate::auth::add_key(&bin, "tiny", &keys);
    // The gateway's admin port is chosen when it starts, and the backend needs it: a
    // placeholder backend first, then the real one once the port is known.
    let admin_port = crate::net::free_port();
    let backend = Backend::start(&dir, &format!("http://127.0.0.1:{admin_port}"), TOKEN);
    let gw = Running::start_with_admin(
        &bin,
        admin_port,
        &[],
        &[
            ("BACKEND_PORT", backend.port.to_string()),
            ("JWKS_PORT", jwks.port.to_string()),
            ("AUTHZ_PORT", authz.port.to_string()),
            ("API_KEYS_FILE", keys.display().to_string()),
            ("ADMIN_TOKEN", TOKEN.to_string()),
            ("PYTHON", crate::auth::python().display().to_string()),
            (
                "FUNCTIONS_DIR",
                repo().join("tests/fixtures/lambda").display().to_string(),
            ),
        ],
    );
    Chat {
        gw,
        backend,
        key,
        tiny,
        tokens: material.tokens,
        _jwks: jwks,
        _authz: authz,
    }
}

#[test]
fn websocket_api_authenticates_routes_and_answers_as_api_gateway() {
    let c = chat();
    let url = |q: &str| format!("ws://127.0.0.1:{}/chat{q}", c.gw.port);
    let key = json!({ "x-api-key": c.key });

    // The handshake is the GET operation: its security, parameters and `$connect`.
    let r = client(plan(url(""), "no-credentials", json!({}), json!([])));
    assert_eq!(r["status"], 401, "{r}");
    let r = client(plan(url("?room=BAD"), "bad-room", key.clone(), json!([])));
    assert_eq!(r["status"], 400, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap_or_default()
            .contains("query/room"),
        "{r}"
    );
    let r = client(plan(url("?room=closed"), "refused", key.clone(), json!([])));
    assert_eq!(r["status"], 403, "$connect refused: {r}");
    let refused = c
        .backend
        .of("/connect", None)
        .iter()
        .filter(|e| e["headers"]["user-agent"] == "refused")
        .count();
    assert_eq!(refused, 1, "the refused handshake asked $connect once");
    assert!(
        !c.backend
            .events()
            .iter()
            .any(|e| e["event"]["headers"]["user-agent"] == "no-credentials"
                || e["event"]["headers"]["user-agent"] == "bad-room"),
        "an unauthenticated or invalid handshake never reaches the backend"
    );
    // A browser's JWT in the query string: verified, and not passed on.
    let jwt = &c.tokens["rs256"];
    let r = client(plan(
        url(&format!("?room=abc&token={jwt}")),
        "browser",
        json!({}),
        json!([]),
    ));
    assert_eq!(r["status"], 101, "{r}");
    let id = c.backend.connection_of("browser");
    let connect = &c.backend.of("/connect", Some(&id))[0];
    assert_eq!(
        connect["queryStringParameters"],
        json!({ "room": "abc" }),
        "{connect:#}"
    );
    assert!(
        !connect.to_string().contains(jwt.as_str()),
        "the token is not passed on"
    );
    assert_eq!(
        connect["requestContext"]["authorizer"]["claims"]["iss"],
        "https://issuer.test"
    );
    let r = client(plan(
        url("?token=garbage"),
        "bad-token",
        json!({}),
        json!([]),
    ));
    assert_eq!(r["status"], 401, "{r}");
    // A custom authorizer: its context is in every event of the connection.
    let r = client(plan(url("?ticket=deny"), "denied", json!({}), json!([])));
    assert_eq!(r["status"], 403, "{r}");
    let r = client(plan(
        url("?ticket=allow-ada"),
        "ticketed",
        json!({}),
        json!([{ "send_json": { "action": "echo", "text": "t" } }, { "recv": 5 }]),
    ));
    assert_eq!(r["received"][0], "echo: t", "{r}");
    let id = c.backend.connection_of("ticketed");
    let connect = &c.backend.of("/connect", Some(&id))[0];
    assert_eq!(
        connect["requestContext"]["authorizer"]["user"], "allow-ada",
        "{connect:#}"
    );
    assert_eq!(
        connect["queryStringParameters"],
        Value::Null,
        "the ticket is not passed on"
    );
    let echo = &c.backend.of("/echo", Some(&id))[0];
    assert_eq!(echo["requestContext"]["authorizer"]["user"], "allow-ada");

    // Messages: route selection, `$default`, validation, replies, `@connections`, failures.
    let steps = json!([
        { "send_json": { "action": "echo", "text": "hi" } }, { "recv": 5 },
        { "send_json": { "action": "nope" } }, { "recv": 5 },
        { "send": "not json at all" }, { "recv": 5 },
        { "send_json": { "action": "echo", "text": 7 } }, { "recv": 5 },
        { "send_json": { "action": "notify", "text": "yo" } }, { "recv": 5 },
        { "send_json": { "action": "broken" } }, { "recv": 10 },
        { "send_bytes": 10 }, { "recv": 5 },
        { "send_json": { "action": "lambda", "n": 1 } }, { "recv": 20 },
        { "ping": 5 }
    ]);
    let mut talker = plan(url("?room=abc"), "talker", key.clone(), steps);
    talker["subprotocols"] = json!(["chat", "other"]);
    let r = client(talker);
    assert_eq!(r["status"], 101, "{r}");
    assert_eq!(
        r["protocol"], "chat",
        "$connect's answer picks the subprotocol"
    );
    let mut picky = plan(
        url(""),
        "picky",
        json!({ "x-api-key": c.key, "x-pick": "mqtt" }),
        json!([]),
    );
    picky["subprotocols"] = json!(["chat"]);
    let picked = client(picky);
    assert_eq!(picked["status"], 101, "{picked}");
    assert_eq!(
        picked["protocol"],
        Value::Null,
        "a subprotocol the client did not offer is left out"
    );
    let got: Vec<String> = r["received"]
        .as_array()
        .expect("received")
        .iter()
        .map(|m| m.as_str().unwrap_or("-").to_string())
        .collect();
    assert_eq!(got.len(), 8, "{r}");
    assert_eq!(got[0], "echo: hi");
    assert_eq!(
        got[1], r#"{"message":"no such action"}"#,
        "unknown action: $default"
    );
    assert_eq!(
        got[2], r#"{"message":"no such action"}"#,
        "not JSON: $default"
    );
    let invalid: Value = serde_json::from_str(&got[3]).expect("JSON");
    assert_eq!(invalid["message"], "Invalid request body");
    assert_eq!(invalid["errors"][0]["pointer"], "/text", "{invalid}");
    assert_eq!(
        got[4], "notified: yo",
        "the backend answered through @connections"
    );
    let failed: Value = serde_json::from_str(&got[5]).expect("JSON");
    assert_eq!(failed["message"], "Internal server error");
    assert_eq!(
        got[6], r#"{"message":"no such action"}"#,
        "a binary message: $default"
    );
    // A Lambda function run by AWS's runtime client got the message event; its `body` is the
    // reply.
    let reply: Value = serde_json::from_str(&got[7]).expect("JSON");
    assert_eq!(reply["routeKey"], "lambda", "{reply}");
    assert_eq!(reply["eventType"], "MESSAGE");
    assert_eq!(reply["body"], r#"{"action": "lambda", "n": 1}"#);
    assert_eq!(reply["function"], "ws-test");
    assert_eq!(
        r["pongs"].as_array().map(Vec::len),
        Some(1),
        "pings are answered"
    );
    assert_eq!(r["close"]["code"], 1000, "{r}");

    // The events, as AWS's samples have them; `$disconnect` once.
    let id = c.backend.connection_of("talker");
    let connect = &c.backend.of("/connect", Some(&id))[0];
    keys_cover(
        connect,
        &sample("example-apigw-websocket-request-without-method.json"),
        "CONNECT",
    );
    assert_eq!(connect["requestContext"]["eventType"], "CONNECT");
    assert_eq!(
        connect["requestContext"]["identity"]["apiKeyId"]
            .as_str()
            .map(str::len),
        Some(12)
    );
    // As AWS passes it (`forward_credentials: false` would keep it from the backend).
    assert_eq!(
        connect["headers"]["x-api-key"],
        c.key.as_str(),
        "{connect:#}"
    );
    let echoes = c.backend.of("/echo", Some(&id));
    assert_eq!(
        echoes.len(),
        1,
        "the invalid echo never reached the backend"
    );
    let m = &echoes[0];
    assert_eq!(m["requestContext"]["routeKey"], "echo");
    assert_eq!(m["requestContext"]["eventType"], "MESSAGE");
    assert_eq!(m["requestContext"]["messageDirection"], "IN");
    assert_eq!(
        m["requestContext"]["messageId"].as_str().map(str::len),
        Some(16)
    );
    assert_eq!(m["body"], r#"{"action": "echo", "text": "hi"}"#);
    assert_eq!(m["isBase64Encoded"], false);
    let headers = &c
        .backend
        .events()
        .into_iter()
        .find(|e| {
            e["path"] == "/echo" && e["event"]["requestContext"]["connectionId"] == id.as_str()
        })
        .expect("echo")["headers"];
    assert_eq!(headers["x-gateway-connection-id"], id.as_str());
    assert_eq!(headers["x-gateway-route-key"], "echo");
    c.backend
        .wait_for("$disconnect", Duration::from_secs(10), |_| {
            !c.backend.of("/disconnect", Some(&id)).is_empty()
        });
    let disconnects = c.backend.of("/disconnect", Some(&id));
    assert_eq!(disconnects.len(), 1);
    keys_cover(
        &disconnects[0],
        &sample("example-apigw-websocket-request-disconnect-route.json"),
        "DISCONNECT",
    );
    assert_eq!(
        disconnects[0]["requestContext"]["disconnectStatusCode"],
        1000
    );

    // Metrics.
    let metrics =
        String::from_utf8_lossy(&crate::net::get(c.gw.admin, "/metrics", "").body).into_owned();
    for line in [
        "gwgen_websocket_messages_total{http_route=\"/chat\",direction=\"in\"}",
        "gwgen_websocket_messages_total{http_route=\"/chat\",direction=\"out\"}",
        "gwgen_websocket_closes_total{http_route=\"/chat\",code=\"1000\"}",
        "gwgen_websocket_connections{http_route=\"/chat\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

#[test]
fn websocket_limits_close_with_aws_codes() {
    let c = chat();
    let url = |path: &str| format!("ws://127.0.0.1:{}{path}", c.gw.port);
    let key = json!({ "x-api-key": c.key });
    // A message over `limits.message` (4 KiB): closed with 1009, and `$disconnect` says so.
    let r = client(plan(
        url("/chat"),
        "big",
        key.clone(),
        json!([{ "send_bytes": 5000 }, { "wait_close": 5 }]),
    ));
    assert_eq!(r["close"]["code"], 1009, "{r}");
    let id = c.backend.connection_of("big");
    c.backend
        .wait_for("$disconnect 1009", Duration::from_secs(10), |_| {
            c.backend
                .of("/disconnect", Some(&id))
                .first()
                .is_some_and(|e| e["requestContext"]["disconnectStatusCode"] == 1009)
        });
    // Idle for `limits.idle_timeout` (3 s): 1001.
    let started = Instant::now();
    let r = client(plan(
        url("/chat"),
        "idle",
        key.clone(),
        json!([{ "wait_close": 10 }]),
    ));
    assert_eq!(r["close"]["code"], 1001, "{r}");
    let idle = started.elapsed();
    assert!(
        idle >= Duration::from_millis(2900) && idle < Duration::from_secs(8),
        "{idle:?}"
    );
    // Talking does not keep a connection past `max_duration` (2 s on /open).
    let steps: Vec<Value> = (0..8)
        .flat_map(|_| {
            [
                json!({ "send": "hi" }),
                json!({ "recv": 1 }),
                json!({ "sleep": 0.4 }),
            ]
        })
        .collect();
    let r = client(plan(url("/open"), "long", json!({}), json!(steps)));
    assert_eq!(r["close"]["code"], 1001, "{r}");
    assert!(
        r["received"]
            .as_array()
            .is_some_and(|m| m.len() >= 3 && m[0] == "pong"),
        "{r}"
    );
    // A route's throttle (burst 2): the third message is refused, the connection stays.
    let steps: Vec<Value> = (0..3)
        .flat_map(|_| {
            [
                json!({ "send_json": { "action": "limited" } }),
                json!({ "recv": 5 }),
            ]
        })
        .collect();
    let r = client(plan(url("/chat"), "throttled", key.clone(), json!(steps)));
    let got = r["received"].as_array().expect("received");
    assert_eq!(got[0], "ok");
    assert_eq!(got[1], "ok");
    let refused: Value = serde_json::from_str(got[2].as_str().unwrap_or("{}")).expect("JSON");
    assert_eq!(refused["message"], "Too Many Requests", "{r}");
    let metrics =
        String::from_utf8_lossy(&crate::net::get(c.gw.admin, "/metrics", "").body).into_owned();
    assert!(
        metrics.contains("gwgen_throttled_total{http_route=\"limited\",level=\"route\"} 1"),
        "{metrics}"
    );
    assert_eq!(r["close"]["code"], 1000);
    // A usage plan's quota counts the handshake and the messages of its keys' connections:
    // `tiny` has 4 a day.
    let steps: Vec<Value> = (0..4)
        .flat_map(|_| {
            [
                json!({ "send_json": { "action": "nope" } }),
                json!({ "recv": 5 }),
            ]
        })
        .collect();
    let r = client(plan(
        url("/chat"),
        "tiny",
        json!({ "x-api-key": c.tiny }),
        json!(steps),
    ));
    let got = r["received"].as_array().expect("received");
    assert_eq!(got[2], r#"{"message":"no such action"}"#, "{r}");
    let over: Value = serde_json::from_str(got[3].as_str().unwrap_or("{}")).expect("JSON");
    assert_eq!(over["message"], "Limit Exceeded", "{r}");
    // `message_throttle` (burst 40 a connection): a burst of 60 gets 20 refusals.
    let steps: Vec<Value> = (0..60)
        .map(|_| json!({ "send_json": { "action": "nope" } }))
        .chain((0..60).map(|_| json!({ "recv": 5 })))
        .collect();
    let r = client(plan(url("/chat"), "flood", key.clone(), json!(steps)));
    let refused = r["received"]
        .as_array()
        .expect("received")
        .iter()
        .filter(|m| m.as_str().is_some_and(|m| m.contains("Too Many Requests")))
        .count();
    assert!((17..=20).contains(&refused), "{refused} refused: {r}");
    // Connections per client (`per_client: 2` on /few): the third handshake is 429, and a
    // place comes back when a connection ends.
    let holders: Vec<Background> = (0..2)
        .map(|_| {
            Background::connected(plan(
                url("/few"),
                "holder",
                json!({}),
                json!([{ "sleep": 3 }]),
            ))
        })
        .collect();
    let r = client(plan(url("/few"), "one-too-many", json!({}), json!([])));
    assert_eq!(r["status"], 429, "{r}");
    for h in holders {
        assert_eq!(h.finish()["status"], 101);
    }
    let r = client(plan(
        url("/few"),
        "after",
        json!({}),
        json!([{ "send": "x" }, { "recv": 5 }]),
    ));
    assert_eq!(r["received"][0], "few", "{r}");
}

#[test]
fn management_api_sends_describes_and_disconnects() {
    let c = chat();
    let url = format!("ws://127.0.0.1:{}/chat", c.gw.port);
    let listener = Background::connected(plan(
        url,
        "listener",
        json!({ "x-api-key": c.key }),
        json!([{ "recv": 10 }, { "wait_close": 10 }]),
    ));
    let id = c.backend.connection_of("listener");
    // The admin token is asked for.
    let r = admin(&c.gw, "POST", &id, "wrong", b"hello");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = admin(&c.gw, "GET", &id, TOKEN, b"");
    assert_eq!(r.status, 200);
    let info: Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(info["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(info["identity"]["userAgent"], "listener");
    assert!(
        info["connectedAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 24),
        "{info}"
    );
    assert!(info["lastActiveAt"].is_string(), "{info}");
    let r = admin(&c.gw, "POST", &id, TOKEN, &vec![b'x'; 5000]);
    assert_eq!(r.status, 413, "larger than the API's message limit");
    let r = admin(&c.gw, "POST", &id, TOKEN, b"hello from the backend");
    assert_eq!(r.status, 200);
    std::thread::sleep(Duration::from_millis(300));
    let r = admin(&c.gw, "DELETE", &id, TOKEN, b"");
    assert_eq!(r.status, 204);
    let out = listener.finish();
    assert_eq!(out["received"][0], "hello from the backend", "{out}");
    assert_eq!(out["close"]["code"], 1000, "{out}");
    for method in ["GET", "POST", "DELETE"] {
        assert_eq!(
            admin(&c.gw, method, &id, TOKEN, b"x").status,
            410,
            "{method} after the close"
        );
    }
    assert_eq!(admin(&c.gw, "GET", "no-such-id", TOKEN, b"").status, 410);
    c.backend
        .wait_for("one $disconnect", Duration::from_secs(5), |_| {
            c.backend.of("/disconnect", Some(&id)).len() == 1
        });
}

#[test]
fn handshakes_a_client_should_not_get_through() {
    let c = chat();
    let key = &c.key;
    let handshake = |extra: &str, version: &str| {
        send(
            c.gw.port,
            format!("GET /chat HTTP/{version}\r\nHost: gw.test\r\nx-api-key: {key}\r\n{extra}\r\n")
                .as_bytes(),
        )
    };
    let upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\n";
    let good_key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    // Not a WebSocket handshake: 426 with what one needs.
    let r = handshake("Connection: close\r\n", "1.1");
    assert_eq!(r.status, 426);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    let r = handshake(
        &format!("{upgrade}Sec-WebSocket-Version: 8\r\n{good_key}"),
        "1.1",
    );
    assert_eq!(r.status, 426, "another version");
    assert_eq!(r.header("sec-websocket-version"), Some("13"));
    let r = handshake(
        &format!("{upgrade}Sec-WebSocket-Version: 13\r\n{good_key}"),
        "1.0",
    );
    assert_eq!(r.status, 426, "HTTP/1.0");
    for bad in [
        "Sec-WebSocket-Key: short\r\n".to_string(),
        String::new(),
        format!("{good_key}Sec-WebSocket-Key: eHh4eHh4eHh4eHh4eHh4eA==\r\n"),
    ] {
        let r = handshake(
            &format!("{upgrade}Sec-WebSocket-Version: 13\r\n{bad}"),
            "1.1",
        );
        assert_eq!(r.status, 400, "{bad:?}");
    }
    // A page of another site may not open a socket (`cors.allow_origins`); an allowed one may.
    let ws = format!("{upgrade}Sec-WebSocket-Version: 13\r\n{good_key}");
    let r = handshake(&format!("{ws}Origin: https://evil.example\r\n"), "1.1");
    assert_eq!(r.status, 403, "another origin");
    let r = handshake(&format!("{ws}Origin: https://app.example.com\r\n"), "1.1");
    assert_eq!(r.status, 101, "an allowed origin");
    // The RFC's own example, answered as the RFC says.
    let r = handshake(
        &format!("{upgrade}Sec-WebSocket-Version: 13\r\n{good_key}"),
        "1.1",
    );
    assert_eq!(r.status, 101);
    assert_eq!(
        r.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    // A WebSocket route answers nothing else; other paths are unaffected.
    let r = send(
        c.gw.port,
        b"POST /chat HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    assert_eq!(crate::net::get(c.gw.port, "/health", "").status, 200);
    // None of the refused handshakes reached `$connect`.
    let connects = c.backend.of("/connect", None).len();
    assert_eq!(connects, 2, "only the good handshakes asked $connect");
}

#[test]
fn check_locates_websocket_mistakes() {
    let spec = |ws: &str| {
        format!(
            "openapi: 3.1.0\ninfo: {{ title: T, version: \"1\" }}\nx-gateway: {{ defaults: {{ throttle: {{ rate: 1 }} }} }}\npaths:\n  /chat:\n    x-gateway:\n      websocket: {ws}\n"
        )
    };
    let cases = [
        (
            r#"{ route_selection: "$request.header.x", routes: { $default: { integration: { type: mock } } } }"#,
            "GW0402",
            "not a route selection",
        ),
        (
            r#"{ routes: { send: { integration: { type: mock } } } }"#,
            "GW0402",
            "never selected",
        ),
        (
            r#"{ routes: { $connect: { integration: { type: mock }, respond: true } } }"#,
            "GW0413",
            "no answer to send back",
        ),
        (
            r#"{ routes: { $disconnect: { integration: { type: mock }, schema: { type: object } } } }"#,
            "GW0413",
            "`schema` applies to message routes",
        ),
        (
            r#"{ routes: { $default: { integration: { type: http } } } }"#,
            "GW0402",
            "has no `url`",
        ),
        (
            r#"{ routes: { $default: { integration: { type: http, url: "http://a", retries: 2 } } } }"#,
            "GW0413",
            "does not apply to WebSocket routes",
        ),
        (
            r#"{ routes: { $default: { integration: { type: mock } } }, limits: { per_client: 0 } }"#,
            "GW0402",
            "per_client",
        ),
        (
            r#"{ routes: { $default: { integration: { type: mock } } }, idle: 3 }"#,
            "GW0401",
            "`idle` is not allowed",
        ),
        (
            r#"{ routes: { $default: { integration: { type: mock, body: { a: 1 } }, schema: { type: object, properties: { a: { pattern: "(?<=x)" } } } } } }"#,
            "GW0502",
            "",
        ),
    ];
    for (ws, code, says) in cases {
        let checked = gwgen::check_text("spec.yaml", spec(ws));
        let found = crate::support::errors(&checked);
        assert!(
            found
                .iter()
                .any(|e| e.starts_with("spec.yaml:") && e.contains(code) && e.contains(says)),
            "{ws}: {found:#?}"
        );
    }
    // The handshake has no integration, cache or transform of its own.
    let text = "openapi: 3.1.0\ninfo: { title: T, version: \"1\" }\nx-gateway: { defaults: { throttle: { rate: 1 } } }\npaths:\n  /chat:\n    get:\n      x-gateway: { cache: { ttl: 5s } }\n      responses: { \"101\": { description: ws } }\n    x-gateway:\n      websocket: { routes: { $default: { integration: { type: mock } } } }\n";
    let found = crate::support::errors(&gwgen::check_text("spec.yaml", text.to_string()));
    assert!(
        found.iter().any(|e| e.starts_with("spec.yaml:7:")
            && e.contains("GW0413")
            && e.contains("`cache` does not apply")),
        "{found:#?}"
    );
    // `admin.token` without a WebSocket API, and a query token on an API-key scheme.
    let text = "openapi: 3.1.0\ninfo: { title: T, version: \"1\" }\nx-gateway: { admin: { token: t }, defaults: { throttle: { rate: 1 } } }\ncomponents:\n  securitySchemes:\n    k: { type: apiKey, in: header, name: k, x-gateway: { token_source: query.t } }\npaths: {}\n";
    let found = crate::support::errors(&gwgen::check_text("spec.yaml", text.to_string()));
    assert!(
        found.iter().any(|e| e.starts_with("spec.yaml:3:")
            && e.contains("GW0413")
            && e.contains("admin.token")),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|e| e.starts_with("spec.yaml:6:")
            && e.contains("GW0413")
            && e.contains("token_source")),
        "{found:#?}"
    );
    // The fixtures and example check clean.
    for spec in [
        "tests/fixtures/gateway/websocket.yaml",
        "tests/fixtures/gateway/websocket-redis.yaml",
        "specs/websocket.yaml",
    ] {
        let checked = gwgen::check_file(repo().join(spec));
        assert!(
            crate::support::errors(&checked).is_empty(),
            "{spec}: {:#?}",
            crate::support::errors(&checked)
        );
    }
}

#[test]
fn redis_shares_connections_across_instances_and_disconnect_fires_once() {
    let dir = scratch("websocket-redis");
    let redis = Redis::start(crate::net::free_port());
    let bin = build("tests/fixtures/gateway/websocket-redis.yaml");
    let admin_port = crate::net::free_port();
    // The backend posts through instance A's management API.
    let backend = Backend::start(&dir, &format!("http://127.0.0.1:{admin_port}"), "-");
    let env = [
        ("BACKEND_PORT", backend.port.to_string()),
        ("REDIS_URL", format!("redis://127.0.0.1:{}", redis.port)),
    ];
    let a = Running::start_with_admin(&bin, admin_port, &[], &env);
    let mut b = Running::start(&bin, &[], &env);
    let mut c = Running::start(&bin, &[], &env);
    let on = |gw: &Running| format!("ws://127.0.0.1:{}/chat", gw.port);
    // A client on B gets what the backend posts through A.
    let listener = Background::connected(plan(
        on(&b),
        "on-b",
        json!({}),
        json!([{ "recv": 10 }, { "wait_close": 10 }]),
    ));
    let id_b = backend.connection_of("on-b");
    let r = client(plan(
        on(&a),
        "on-a",
        json!({}),
        json!([{ "send_json": { "action": "notify", "text": "across", "to": id_b } }, { "recv": 5 }]),
    ));
    assert_eq!(r["received"][0], "notified: across", "{r}");
    backend.wait_for("two posts", Duration::from_secs(5), |e| {
        e.iter().filter(|e| e["posted"] == 200).count() == 2
    });
    // A describes and closes it too.
    let r = admin(&a, "GET", &id_b, "-", b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let info: Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(info["identity"]["userAgent"], "on-b");
    assert_eq!(admin(&a, "DELETE", &id_b, "-", b"").status, 204);
    let out = listener.finish();
    assert_eq!(out["received"][0], "notified: across", "{out}");
    assert_eq!(out["close"]["code"], 1000, "{out}");
    backend.wait_for("B's $disconnect", Duration::from_secs(5), |_| {
        backend.of("/disconnect", Some(&id_b)).len() == 1
    });
    assert_eq!(admin(&a, "POST", &id_b, "-", b"late").status, 410);

    // An instance that is killed: its client's `$disconnect` comes from another instance, once.
    let orphan = Background::connected(plan(
        on(&c),
        "on-c",
        json!({}),
        json!([{ "wait_close": 30 }]),
    ));
    let id_c = backend.connection_of("on-c");
    assert_eq!(admin(&a, "GET", &id_c, "-", b"").status, 200);
    let _ = c.child.kill();
    let _ = c.child.wait();
    let out = orphan.finish();
    assert_eq!(out["close"]["code"], 1006, "{out}");
    backend.wait_for("the orphan's $disconnect", Duration::from_secs(20), |_| {
        !backend.of("/disconnect", Some(&id_c)).is_empty()
    });
    let gone = backend.of("/disconnect", Some(&id_c));
    assert_eq!(gone[0]["requestContext"]["disconnectStatusCode"], 1006);
    assert_eq!(gone[0]["requestContext"]["identity"]["userAgent"], "on-c");
    assert_eq!(admin(&a, "GET", &id_c, "-", b"").status, 410);

    // An instance that is stopped closes its clients with 1001 and tells `$disconnect` once.
    let leaving = Background::connected(plan(
        on(&b),
        "leaving",
        json!({}),
        json!([{ "wait_close": 30 }]),
    ));
    let id_l = backend.connection_of("leaving");
    b.terminate();
    assert_eq!(b.wait(Duration::from_secs(20)), Some(0), "{}", b.log_text());
    let out = leaving.finish();
    assert_eq!(out["close"]["code"], 1001, "{out}");
    assert_eq!(backend.of("/disconnect", Some(&id_l)).len(), 1);
    // Later sweeps by the instances left fire nothing more.
    std::thread::sleep(Duration::from_secs(9));
    for id in [&id_b, &id_c, &id_l] {
        assert_eq!(
            backend.of("/disconnect", Some(id)).len(),
            1,
            "{id}: $disconnect once"
        );
    }
    drop(a);
}

/// A client frame (masked unless `unmasked`), as RFC 6455 §5.2 lays it out.
fn frame(first: u8, payload: &[u8], unmasked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if unmasked { 0 } else { 0x80 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n < 65536 => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if unmasked {
        out.extend_from_slice(payload);
    } else {
        let key = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    }
    out
}

/// One server frame: (opcode, payload).
fn read_frame(s: &mut std::net::TcpStream) -> Option<(u8, Vec<u8>)> {
    use std::io::Read;
    let mut head = [0u8; 2];
    s.read_exact(&mut head).ok()?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).ok()?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).ok()?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload).ok()?;
    Some((head[0] & 0x0f, payload))
}

#[test]
fn frames_are_checked_as_rfc_6455_says() {
    use std::io::{Read, Write};
    let c = chat();
    let open = || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", c.gw.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(b"GET /few HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            .expect("write");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).expect("the handshake's answer");
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        s
    };
    let close_code = |s: &mut std::net::TcpStream| loop {
        match read_frame(s) {
            Some((8, p)) => return u16::from_be_bytes([p[0], p[1]]),
            Some(_) => continue,
            None => return 1006,
        }
    };
    // A fragmented message with a ping between its fragments: the pong comes at once, with the
    // ping's payload, and the message is routed whole.
    let mut s = open();
    s.write_all(&frame(0x01, b"he", false)).expect("write");
    s.write_all(&frame(0x89, b"are you there", false))
        .expect("write");
    s.write_all(&frame(0x80, b"llo", false)).expect("write");
    assert_eq!(read_frame(&mut s), Some((0x0a, b"are you there".to_vec())));
    assert_eq!(read_frame(&mut s), Some((0x01, b"few".to_vec())));
    s.write_all(&frame(0x88, &1000u16.to_be_bytes(), false))
        .expect("write");
    assert_eq!(close_code(&mut s), 1000, "the close is answered");
    // An unmasked frame, a reserved bit, an unknown opcode: 1002. Text that is not UTF-8: 1007.
    // A frame longer than `limits.frame` (32 KiB): 1009, before its payload is read.
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (frame(0x81, b"hi", true), 1002),
        (frame(0xc1, b"hi", false), 1002),
        (frame(0x83, b"hi", false), 1002),
        (frame(0x81, b"\xff\xfe", false), 1007),
        (frame(0x82, &vec![0u8; 40_000], false)[..14].to_vec(), 1009),
    ];
    for (bytes, code) in cases {
        let mut s = open();
        s.write_all(&bytes).expect("write");
        assert_eq!(close_code(&mut s), code, "{:02x?}", &bytes[..2]);
    }
    // A connection is counted once its close handshake is over (the gateway waits a moment for
    // the client's close frame).
    let deadline = Instant::now() + Duration::from_secs(15);
    let metrics = loop {
        let m =
            String::from_utf8_lossy(&crate::net::get(c.gw.admin, "/metrics", "").body).into_owned();
        if ["1002", "1007", "1009"]
            .iter()
            .all(|code| m.contains(&format!("code=\"{code}\"")))
            || Instant::now() > deadline
        {
            break m;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for code in ["1002", "1007", "1009"] {
        assert!(
            metrics.contains(&format!(
                "gwgen_websocket_closes_total{{http_route=\"/few\",code=\"{code}\"}}"
            )),
            "{code}: {metrics}"
        );
    }
}
