//! One request, one meaning: raw-socket requests whose meaning depends on which copy of a field
//! a reader takes, or that try to tell the upstream something the gateway did not check. Each
//! case asserts the gateway's answer and, where the request goes through, what the upstream
//! received (the test upstream echoes the request it got).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::gateway::{build, Running};
use crate::net::{get, send, Upstream};

fn proxy() -> (Running, Upstream) {
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/proxy.yaml");
    let gw = Running::start(&bin, &[], &[("UPSTREAM_PORT", upstream.port.to_string())]);
    (gw, upstream)
}

fn raw_get(port: u16, head_lines: &str) -> crate::net::Reply {
    send(
        port,
        format!("GET /echo/x HTTP/1.1\r\n{head_lines}Connection: close\r\n\r\n").as_bytes(),
    )
}

#[test]
fn host_must_be_there_once_in_http_1_1() {
    let (gw, up) = proxy();
    let hits = || up.hits.load(std::sync::atomic::Ordering::SeqCst);
    let before = hits();
    // No Host.
    assert_eq!(raw_get(gw.port, "").status, 400);
    // Two Hosts.
    assert_eq!(
        raw_get(gw.port, "Host: a.test\r\nHost: b.test\r\n").status,
        400
    );
    assert_eq!(hits(), before, "neither reached the upstream");
    // One Host, and HTTP/1.0 without one, go through.
    assert_eq!(raw_get(gw.port, "Host: a.test\r\n").status, 200);
    let r = send(gw.port, b"GET /echo/x HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn several_credentials_or_content_types_are_400() {
    let (gw, up) = proxy();
    let hits = || up.hits.load(std::sync::atomic::Ordering::SeqCst);
    let before = hits();
    let r = raw_get(
        gw.port,
        "Host: a.test\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["status"], 400);
    let r = send(
        gw.port,
        b"POST /echo/x HTTP/1.1\r\nHost: a.test\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    assert_eq!(r.status, 400);
    assert_eq!(hits(), before, "neither reached the upstream");
}

#[test]
fn a_clients_forwarding_and_override_headers_never_reach_the_upstream() {
    let (gw, _up) = proxy();
    let r = raw_get(
        gw.port,
        "Host: api.test\r\n\
         Forwarded: for=6.6.6.6;host=evil.test;proto=https\r\n\
         X-Real-IP: 6.6.6.6\r\n\
         X-Forwarded-Host: evil.test\r\n\
         X-Forwarded-Proto: https\r\n\
         X-Forwarded-Port: 443\r\n\
         X-Forwarded-Prefix: /admin\r\n\
         X-HTTP-Method-Override: DELETE\r\n\
         X-HTTP-Method: DELETE\r\n\
         X-Method-Override: DELETE\r\n\
         X-Forwarded-For: 1.1.1.1\r\n\
         X-Forwarded-For: 2.2.2.2\r\n",
    );
    assert_eq!(r.status, 200);
    let got = r.json();
    let h = &got["headers"];
    for name in [
        "forwarded",
        "x-real-ip",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ] {
        assert!(h.get(name).is_none(), "{name} reached the upstream: {h}");
    }
    assert_eq!(got["method"], "GET");
    assert_eq!(h["x-forwarded-host"], "api.test");
    assert_eq!(h["x-forwarded-proto"], "http");
    // Both lines the client sent are kept, merged, and the peer is appended.
    assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 127.0.0.1");
}

#[test]
fn connection_cannot_strip_what_the_gateway_checked_or_set() {
    let (gw, _up) = proxy();
    let r = raw_get(
        gw.port,
        "Host: api.test\r\nAuthorization: Bearer t\r\nX-Request-Id: rid-1\r\nX-Custom: 1\r\nTraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nConnection: authorization, x-request-id, traceparent, x-forwarded-for, x-custom\r\n",
    );
    assert_eq!(r.status, 200);
    let h = &r.json()["headers"];
    assert_eq!(h["authorization"], "Bearer t");
    assert_eq!(h["x-request-id"], "rid-1");
    assert!(h["traceparent"].is_string());
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert!(
        h.get("x-custom").is_none(),
        "a field named in Connection goes: {h}"
    );
    assert!(
        h.get("connection").is_none_or(
            |c| c != "authorization, x-request-id, traceparent, x-forwarded-for, x-custom"
        )
    );
}

#[test]
fn expect_is_answered_by_the_gateway_and_not_forwarded() {
    let (gw, _up) = proxy();
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"POST /echo/x HTTP/1.1\r\nHost: api.test\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .expect("write head");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    r.read_line(&mut line).expect("interim line");
    assert!(line.starts_with("HTTP/1.1 100"), "{line}");
    let mut blank = String::new();
    r.read_line(&mut blank).expect("end of interim head");
    s.write_all(b"hello").expect("write body");
    let mut rest = String::new();
    let _ = r.read_to_string(&mut rest);
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    let body = rest.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body).expect("the echo");
    assert!(v["headers"].get("expect").is_none(), "{v}");
    assert_eq!(v["body_len"], 5);
}

#[test]
fn request_ids_outside_the_safe_charset_are_replaced() {
    let (gw, _up) = proxy();
    let r = raw_get(
        gw.port,
        "Host: a.test\r\nX-Request-Id: ok-id_1.2:3/4+5=6@7\r\n",
    );
    assert_eq!(r.header("x-request-id"), Some("ok-id_1.2:3/4+5=6@7"));
    for bad in ["a\"b", "a b", "a\\b", "a<b>", &"x".repeat(129)] {
        let r = raw_get(gw.port, &format!("Host: a.test\r\nX-Request-Id: {bad}\r\n"));
        let id = r.header("x-request-id").expect("an id").to_string();
        assert!(id != bad && id.len() == 36, "{bad} → {id}");
        assert_eq!(r.json()["headers"]["x-request-id"], id.as_str());
    }
    // Two ids: neither is taken.
    let r = raw_get(
        gw.port,
        "Host: a.test\r\nX-Request-Id: one\r\nX-Request-Id: two\r\n",
    );
    assert_eq!(r.header("x-request-id").map(str::len), Some(36));
}

#[test]
fn json_bodies_in_another_charset_are_415() {
    let bin = build("specs/validation.yaml");
    let gw = Running::start(&bin, &[], &[]);
    let body = r#"{"sku":"ABC-1234","name":"Teapot","price":24.5}"#;
    let post = |ct: &str| {
        send(
            gw.port,
            format!(
                "POST /items HTTP/1.1\r\nHost: a.test\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    assert_eq!(post("application/json").status, 201);
    assert_eq!(post("application/json; charset=utf-8").status, 201);
    assert_eq!(post("application/json; charset=\"UTF-8\"").status, 201);
    let r = post("application/json; charset=iso-8859-1");
    assert_eq!(r.status, 415);
    assert!(r.json()["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("UTF-8"));
    assert_eq!(post("application/json;charset=utf-16").status, 415);
}

/// `limits` on an operation apply there: its body and head limits, not the gateway's.
#[test]
fn an_operations_own_limits_apply_to_it() {
    let (gw, up) = proxy();
    let hits = || up.hits.load(std::sync::atomic::Ordering::SeqCst);
    let post = |path: &str, body: &str, extra: &str| {
        send(
            gw.port,
            format!(
                "POST {path} HTTP/1.1\r\nHost: a.test\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    let four_kib = "x".repeat(4096);
    let before = hits();
    // Declared length over the operation's 1 KiB: refused before any of it is read.
    let r = post("/small/a", &four_kib, "");
    assert_eq!(r.status, 413);
    assert_eq!(hits(), before);
    // The same body is fine on a route under the gateway's 1 MiB.
    assert_eq!(post("/echo/a", &four_kib, "").status, 200);
    assert_eq!(post("/small/a", "hello", "").status, 200);
    // A chunked body without a length is held to the limit as it streams.
    let r = send(
        gw.port,
        format!(
            "POST /small/a HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n1000\r\n{four_kib}\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 413);
    // The head: 2 KiB on this operation, 64 KiB elsewhere.
    let big_header = format!("X-Pad: {}\r\n", "p".repeat(3000));
    assert_eq!(post("/small/a", "hi", &big_header).status, 431);
    assert_eq!(post("/echo/a", "hi", &big_header).status, 200);
}

/// A connection the gateway admitted and keeps open: it answered a keep-alive request. The
/// start-up probe's own connection may hold a place for a moment, so this tries again until
/// it is gone.
fn admitted(port: u16) -> TcpStream {
    for _ in 0..50 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        c.write_all(b"GET /ping HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .expect("write");
        let mut status = [0u8; 12];
        if c.read_exact(&mut status).is_ok() && &status == b"HTTP/1.1 200" {
            return c;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no connection admitted");
}

/// `GET /ping` on a new connection that closes after the answer.
fn ping(port: u16) -> crate::net::Reply {
    send(
        port,
        b"GET /ping HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
}

fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A client that sends half a head, or goes quiet on an idle keep-alive connection, is cut off
/// after `head_timeout`; past `max_connections`, new connections get 503 and are closed.
#[test]
fn slow_clients_are_cut_off_and_connections_are_capped() {
    let up = Upstream::start();
    let bin = build("tests/fixtures/gateway/connections.yaml");
    let gw = Running::start(&bin, &[], &[("UPSTREAM_PORT", up.port.to_string())]);
    let start = std::time::Instant::now();
    // Half a head, then silence.
    let mut slow = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    slow.write_all(b"GET /ping HTTP/1.1\r\nHost: a.test\r\n")
        .expect("write");
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)),
        "the half head is cut off"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "not before the timeout"
    );
    // One full request on a keep-alive connection, then silence.
    let mut idle = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    idle.write_all(b"GET /ping HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .expect("write");
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).expect("an answer");
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)),
        "the idle connection is closed"
    );

    // Two connections held open (each admitted: it answered, and stays open for the next
    // request): a third is refused with 503.
    std::thread::sleep(Duration::from_millis(200));
    let mut a = admitted(gw.port);
    let mut b = admitted(gw.port);
    let r = ping(gw.port);
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["status"], 503);
    // Their places come back when they close (here, by the head timeout).
    assert!(closed_within(&mut a, Duration::from_secs(5)));
    assert!(closed_within(&mut b, Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(200));
    let r = ping(gw.port);
    assert_eq!(r.status, 200);
}

/// Past `max_connections_per_client`, one address's new connections get 429.
#[test]
fn connections_per_client_are_capped() {
    let up = Upstream::start();
    let bin = build("tests/fixtures/gateway/connections-per-client.yaml");
    let gw = Running::start(&bin, &[], &[("UPSTREAM_PORT", up.port.to_string())]);
    let held = admitted(gw.port);
    let r = ping(gw.port);
    assert_eq!(r.status, 429);
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let r = ping(gw.port);
    assert_eq!(r.status, 200);
    // The same spec keeps escaped slashes: they stay in their segment, one parameter.
    for (sent, forwarded) in [
        ("a%2Fb", "a%2Fb"),
        ("a%5cb", "a%5Cb"),
        ("a%2f..%2fb", "a%2F..%2Fb"),
    ] {
        // One connection at a time: the last one's close must reach the gateway first.
        std::thread::sleep(Duration::from_millis(200));
        let r = get(gw.port, &format!("/files/{sent}"), "");
        assert_eq!(r.status, 200, "{sent}");
        assert_eq!(r.json()["target"], format!("/files/{forwarded}"));
    }
    // NUL is refused even so.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(gw.port, "/files/a%00b", "").status, 400);
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), 3);
}

/// Encoded slashes, backslashes and NULs inside a segment are 400 by default (Envoy's
/// `REJECT_REQUEST`), and nothing reaches the upstream; `;` is encoded when forwarded, so no
/// upstream reads matrix parameters the router never saw.
#[test]
fn encoded_separators_are_refused_and_semicolons_encoded() {
    let (gw, up) = proxy();
    for path in [
        "/echo/a%2Fb",
        "/echo/a%2fb",
        "/echo/..%2F..%2Fadmin",
        "/echo/a%5Cb",
        "/echo/a%5c..%5cb",
        "/echo/a%00",
        "/items/..%2F..%2Fadmin",
        "/items/x%00.json",
        "/echo/a\\..\\b",
    ] {
        let r = get(gw.port, path, "");
        assert_eq!(r.status, 400, "{path}");
        assert!(
            String::from_utf8_lossy(&r.body).contains("the path contains"),
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    let r = get(gw.port, "/echo/a;jsessionid=1", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["target"], "/echo/a%3Bjsessionid=1");
    let r = get(gw.port, "/items/a;b", "");
    assert_eq!(r.json()["target"], "/v1/items/a%3Bb");
    let r = get(gw.port, "/echo/caf%C3%A9%3B", "");
    assert_eq!(r.json()["target"], "/echo/caf%C3%A9%3B");
}

/// SIGTERM drains for `drain_timeout`, then closes what remains and exits 0.
#[test]
fn sigterm_drains_until_its_deadline_then_exits_0() {
    let up = Upstream::start();
    let bin = build("tests/fixtures/gateway/connections.yaml");
    let mut gw = Running::start(&bin, &[], &[("UPSTREAM_PORT", up.port.to_string())]);
    let port = gw.port;
    // A request the upstream takes 4 s to answer.
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(b"GET /sleepy HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    });
    std::thread::sleep(Duration::from_millis(300));
    let stop = std::time::Instant::now();
    gw.terminate();
    assert_eq!(
        gw.wait(Duration::from_secs(10)),
        Some(0),
        "{}",
        gw.log_text()
    );
    let took = stop.elapsed();
    assert!(
        took < Duration::from_millis(3000),
        "stopped at the 1 s deadline, not after the upstream: {took:?}"
    );
    assert!(
        took >= Duration::from_millis(900),
        "drained first: {took:?}"
    );
    let answer = slow.join().expect("the client thread");
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "the slow request was cut at the deadline"
    );
    assert!(
        gw.log_text().contains("drain deadline"),
        "{}",
        gw.log_text()
    );
}

/// A parameter that takes one value, sent twice, is 400; an array parameter takes every copy.
#[test]
fn a_single_value_parameter_sent_twice_is_400() {
    let bin = build("specs/validation.yaml");
    let gw = Running::start(&bin, &[], &[]);
    let get = |q: &str| crate::net::get(gw.port, &format!("/items?{q}"), "");
    assert_eq!(get("limit=5&tag=a&tag=b").status, 200);
    let r = get("limit=5&limit=500");
    assert_eq!(r.status, 400);
    let errors = r.json()["errors"].to_string();
    assert!(
        errors.contains("query/limit") && errors.contains("more than once"),
        "{errors}"
    );
    // Every copy of an array parameter is validated.
    assert_eq!(get("tag=a&tag=").status, 400);
    // A single-value header sent twice.
    let tenant = "X-Tenant: 7f1c8c52-4b0d-4f7e-9d51-1c4f0b8d2a10\r\n";
    assert_eq!(crate::net::get(gw.port, "/items", tenant).status, 200);
    let r = crate::net::get(gw.port, "/items", &format!("{tenant}{tenant}"));
    assert_eq!(r.status, 400);
    assert!(r.json()["errors"].to_string().contains("more than once"));
    // A single-value form field sent twice: which password would the upstream read?
    let login = |form: &str| {
        send(
            gw.port,
            format!(
                "POST /session HTTP/1.1\r\nHost: a.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
                form.len()
            )
            .as_bytes(),
        )
    };
    assert_eq!(login("username=ann&password=secret-123").status, 204);
    let r = login("username=ann&password=secret-123&username=admin");
    assert_eq!(r.status, 400);
    assert!(
        String::from_utf8_lossy(&r.body).contains("`username` takes one value"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // A field the schema does not name is an array of its copies, which the schema allows here.
    assert_eq!(
        login("username=ann&password=secret-123&extra=1&extra=2").status,
        204
    );
    // Many distinct fields are grouped by an index, not by scanning the ones before.
    let many: String = (0..50_000).map(|i| format!("f{i}=1&")).collect();
    let r = login(&format!("{many}username=ann&password=secret-123"));
    assert_eq!(r.status, 204);
}

/// A body sent to an operation that declares no `requestBody` is refused (so no upstream can
/// read it as a second request), or dropped where `limits.undeclared_body: drop` says so.
#[test]
fn a_body_the_operation_does_not_declare_is_refused_or_dropped() {
    let (gw, up) = proxy();
    let smuggled = "GET /admin HTTP/1.1\r\nHost: internal\r\n\r\n";
    let by_length = format!(
        "GET /echo/x HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let chunked = format!(
        "GET /echo/x HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
        smuggled.len()
    );
    let empty_chunked =
        "GET /echo/x HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n";
    for raw in [by_length.as_str(), chunked.as_str(), empty_chunked] {
        let r = send(gw.port, raw.as_bytes());
        assert_eq!(r.status, 400, "{raw}");
        assert!(String::from_utf8_lossy(&r.body).contains("takes no request body"));
    }
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    // No body, or an empty one by length, is fine.
    let r = send(
        gw.port,
        b"GET /echo/x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    // Dropped: the upstream sees a request without a body.
    let dropped = by_length.replace("/echo/x", "/quiet/x");
    let r = send(gw.port, dropped.as_bytes());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let e = r.json();
    assert_eq!(e["target"], "/echo/x");
    assert_eq!(e["body_len"], 0, "{e}");
    assert!(
        e["headers"].get("content-length").is_none_or(|v| v == "0"),
        "{e}"
    );
    assert!(e["headers"].get("transfer-encoding").is_none(), "{e}");
    // Where the operation declares a body, it goes through.
    let r = send(
        gw.port,
        b"POST /echo/x HTTP/1.1\r\nHost: a.test\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert_eq!(r.json()["body_len"], 5);
}

/// A client that stops sending its body gets 408 after `limits.body_timeout`; one that stops
/// reading the answer is cut off after `limits.send_timeout`, and the upstream connection that
/// answer came from is closed with it rather than pinned.
#[test]
fn clients_that_stop_sending_or_reading_are_cut_off() {
    let up = Upstream::start();
    let bin = build("tests/fixtures/gateway/connections.yaml");
    let gw = Running::start(&bin, &[], &[("UPSTREAM_PORT", up.port.to_string())]);
    // Ten bytes of a hundred, then silence.
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(8)))
        .expect("timeout");
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n0123456789")
        .expect("write");
    let started = std::time::Instant::now();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // A gigabyte asked for, none of it read.
    let before = crate::net::HUGE_CUT.load(std::sync::atomic::Ordering::SeqCst);
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    s.write_all(b"GET /huge HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .expect("write");
    let started = std::time::Instant::now();
    while crate::net::HUGE_CUT.load(std::sync::atomic::Ordering::SeqCst) == before {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the upstream connection is still pinned"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The client's connection is closed too: what the buffers held, then the end.
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut sink = vec![0u8; 1 << 20];
    let mut total = 0usize;
    loop {
        match s.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
        assert!(total < 1 << 30, "the whole gigabyte came through");
    }
    assert!(
        total < 512 << 20,
        "{total} bytes sent to a client that did not read"
    );
    // The gateway still serves.
    assert_eq!(ping(gw.port).status, 200);
}

/// Buffered validation is bounded: a JSON body holding more values than `limits.json_values` is
/// 413, and past `limits.validation_memory` held by bodies being validated at once, 503.
#[test]
fn buffered_validation_is_bounded() {
    let (gw, up) = proxy();
    let post = |body: &str| {
        send(
            gw.port,
            format!(
                "POST /validated/1?mode=fast HTTP/1.1\r\nHost: a.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    let many = format!(
        r#"{{"name":"a","tags":[{}]}}"#,
        vec![r#""t""#; 2000].join(",")
    );
    let r = post(&many);
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("1000 values"));
    let few = format!(
        r#"{{"name":"a","tags":[{}]}}"#,
        vec![r#""t""#; 100].join(",")
    );
    assert_eq!(post(&few).status, 200);
    // 40 KB of a body held by a client that went quiet; then another 40 KB body: over 64 KiB.
    let long = format!(r#"{{"name":"a","tags":["{}"]}}"#, "x".repeat(40_000));
    let mut held = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    held.write_all(
        format!(
            "POST /validated/1?mode=fast HTTP/1.1\r\nHost: a.test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            long.len() + 10
        )
        .as_bytes(),
    )
    .expect("head");
    held.write_all(long.as_bytes()).expect("most of the body");
    std::thread::sleep(Duration::from_millis(300));
    let r = post(&long);
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("retry-after"), Some("1"));
    // The quiet client leaves; its bytes are given back.
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(post(&long).status, 200);
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// An upstream that floods interim (1xx) answers gets 502 and its connection dropped; one whose
/// trailers go on past 64 KiB has its answer cut, and the client can tell (no final chunk).
#[test]
fn upstream_interim_floods_and_endless_trailers_are_cut() {
    let (gw, up) = proxy();
    let r = get(gw.port, "/echo/flood", "");
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    // A legitimate pair of interim answers still passes.
    let r = get(gw.port, "/echo/interim", "");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"final"[..]));
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /echo/trailers HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    // The head may be lost with the reset that ends the connection; a whole answer never comes.
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "an answer whose trailers never end must not look complete"
    );
    assert!(up.hits.load(std::sync::atomic::Ordering::SeqCst) >= 3);
}

#[test]
fn pipelined_and_http_1_0_keep_alive_requests_are_answered_in_order() {
    let (gw, _up) = proxy();
    // Three requests in one write: three answers, in order, the last closing.
    let mut s = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(
        b"GET /echo/first HTTP/1.1\r\nHost: a.test\r\n\r\n\
          POST /echo/second HTTP/1.1\r\nHost: a.test\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          GET /echo/third HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .expect("write");
    let mut r = BufReader::new(s);
    for (target, body_len) in [("/echo/first", 0), ("/echo/second", 3), ("/echo/third", 0)] {
        let reply = crate::net::read_reply(&mut r, false).expect("an answer");
        assert_eq!(reply.status, 200, "{target}");
        // A date, as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
        let date = reply.header("date").expect("a date");
        assert!(
            date.len() == 29 && date.ends_with(" GMT") && &date[3..5] == ", ",
            "{date}"
        );
        assert_eq!(reply.json()["target"], target);
        assert_eq!(reply.json()["body_len"], body_len, "{target}");
    }
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing after the closing answer");

    // HTTP/1.0 keeps its connection only when it asks, and is answered in HTTP/1.0.
    let s = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    for _ in 0..2 {
        w.write_all(b"GET /echo/old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .expect("write");
        assert!(
            r.fill_buf()
                .expect("an answer")
                .starts_with(b"HTTP/1.0 200 "),
            "an HTTP/1.0 status line"
        );
        let reply = crate::net::read_reply(&mut r, false).expect("an answer");
        assert_eq!(reply.header("connection"), Some("keep-alive"));
    }
    w.write_all(b"GET /echo/old HTTP/1.0\r\n\r\n")
        .expect("write");
    let reply = crate::net::read_reply(&mut r, false).expect("an answer");
    assert_eq!(reply.status, 200);
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "closed after an HTTP/1.0 request without keep-alive"
    );
}

#[test]
fn an_answer_given_before_the_body_is_read_reaches_a_client_still_sending() {
    let (gw, up) = proxy();
    let hits = || up.hits.load(std::sync::atomic::Ordering::SeqCst);
    let before = hits();
    for _ in 0..3 {
        // A declared megabyte for an operation that takes 1 KiB: 413 at once, while the client
        // is still sending. The client reads the whole answer, then the connection's end.
        let mut s = TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(b"POST /small/x HTTP/1.1\r\nHost: a.test\r\nContent-Type: text/plain\r\nContent-Length: 1048576\r\n\r\n")
            .expect("write head");
        let mut w = s.try_clone().expect("clone");
        let writer = std::thread::spawn(move || {
            let chunk = [b'a'; 16 << 10];
            for _ in 0..64 {
                if w.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        let mut text = Vec::new();
        s.read_to_end(&mut text)
            .expect("the answer, then the end, without a reset");
        let text = String::from_utf8_lossy(&text);
        assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{text}"
        );
        let _ = writer.join();
    }
    assert_eq!(hits(), before, "nothing reached the upstream");
}
