//! The raw-socket suite: over a hundred hostile or ambiguous requests, one table per section
//! (framing, duplicates, paths, bodies, headers and methods, the response cache), each sent as
//! exact bytes on a fresh connection. Every row asserts the gateway's answer and what the test
//! upstream received: nothing at all, or the request as the upstream saw it (the upstream echoes
//! its method, target, headers and body length).
//!
//! Slow clients, connection caps and authorizers have their own tests (`edge.rs`, `auth.rs`):
//! they need time, several connections or a custom authorizer.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use crate::gateway::{build, Running};
use crate::net::Upstream;

/// What the upstream must have received for a row.
enum Up {
    /// Nothing: the request never reached it.
    Nothing,
    /// The request, with every check true of the echo.
    Saw(&'static [Check]),
}

/// One fact about the request the upstream received.
enum Check {
    /// The request target, exactly.
    Target(&'static str),
    /// A header's value (lower-case name); `None`: absent.
    Header(&'static str, Option<&'static str>),
    /// The body's length.
    BodyLen(u64),
    /// The method.
    Method(&'static str),
}

struct Row {
    name: &'static str,
    raw: String,
    /// The status the client gets; 0: the connection is closed without an answer.
    status: u16,
    up: Up,
}

fn row(name: &'static str, raw: impl Into<String>, status: u16, up: Up) -> Row {
    Row {
        name,
        raw: raw.into(),
        status,
        up,
    }
}

/// `GET {target}` with extra head lines, on a closing connection.
fn get(target: &str, lines: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: gw.test\r\n{lines}Connection: close\r\n\r\n")
}

/// `{method} {target}` with a body and extra head lines, its length declared.
fn with_body(method: &str, target: &str, lines: &str, body: &str) -> String {
    format!(
        "{method} {target} HTTP/1.1\r\nHost: gw.test\r\n{lines}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Sends `raw` and reads the answer; `None` when the connection ends without one.
fn exchange(port: u16, raw: &[u8]) -> Option<crate::net::Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.write_all(raw);
    let mut r = BufReader::new(s);
    loop {
        let reply = crate::net::read_reply(&mut r, raw.starts_with(b"HEAD "))?;
        // Interim answers (`100 Continue`) come before the final one.
        if reply.status >= 200 {
            return Some(reply);
        }
    }
}

fn run(port: u16, up: &Upstream, rows: Vec<Row>) -> usize {
    let mut failures = Vec::new();
    let count = rows.len();
    for r in rows {
        let before = up.hits.load(Ordering::SeqCst);
        let reply = exchange(port, r.raw.as_bytes());
        // The upstream counts a request before it answers, so the count is settled here.
        let reached = up.hits.load(Ordering::SeqCst) - before;
        let status = reply.as_ref().map_or(0, |r| r.status);
        let mut wrong = Vec::new();
        if status != r.status {
            wrong.push(format!("status {status}, expected {}", r.status));
        }
        match (&r.up, reached) {
            (Up::Nothing, 0) => {}
            (Up::Nothing, n) => wrong.push(format!("reached the upstream {n} times")),
            (Up::Saw(_), 1) => {}
            (Up::Saw(_), n) => wrong.push(format!("reached the upstream {n} times, not once")),
        }
        if let (Up::Saw(checks), Some(reply)) = (&r.up, &reply) {
            let echo: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            for c in checks.iter() {
                match c {
                    Check::Target(t) if echo["target"] != *t => {
                        wrong.push(format!("upstream target {}, expected {t}", echo["target"]))
                    }
                    Check::Header(h, v) => {
                        let got = echo["headers"].get(*h).and_then(Value::as_str);
                        if got != *v {
                            wrong.push(format!("upstream header {h}: {got:?}, expected {v:?}"));
                        }
                    }
                    Check::BodyLen(n) if echo["body_len"] != *n => wrong.push(format!(
                        "upstream body length {}, expected {n}",
                        echo["body_len"]
                    )),
                    Check::Method(m) if echo["method"] != *m => {
                        wrong.push(format!("upstream method {}, expected {m}", echo["method"]))
                    }
                    _ => {}
                }
            }
        }
        if !wrong.is_empty() {
            failures.push(format!("{}: {}", r.name, wrong.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    count
}

fn framing() -> Vec<Row> {
    use Check::*;
    let ok: &[Check] = &[Target("/echo/x")];
    vec![
        row("a plain request", get("/echo/x", ""), 200, Up::Saw(ok)),
        row(
            "HTTP/1.1 without Host",
            "GET /echo/x HTTP/1.1\r\nConnection: close\r\n\r\n",
            400,
            Up::Nothing,
        ),
        row(
            "two Host fields",
            get("/echo/x", "Host: evil.test\r\n"),
            400,
            Up::Nothing,
        ),
        row(
            "HTTP/1.0 without Host",
            "GET /echo/x HTTP/1.0\r\n\r\n",
            200,
            Up::Saw(ok),
        ),
        // RFC 9112 §6.3: Transfer-Encoding wins, Content-Length is removed, and the connection
        // is closed after the answer, so the bytes after the chunked body are never a request.
        row(
            "Content-Length and Transfer-Encoding together",
            "POST /echo/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: gw.test\r\n\r\n",
            200,
            Up::Saw(&[Target("/echo/x"), BodyLen(0)]),
        ),
        row(
            "two different Content-Lengths",
            "POST /echo/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab",
            400,
            Up::Nothing,
        ),
        row(
            "a signed Content-Length",
            "POST /echo/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: +2\r\nConnection: close\r\n\r\nab",
            400,
            Up::Nothing,
        ),
        row(
            "a Content-Length that is not a number",
            "POST /echo/x HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 2x\r\nConnection: close\r\n\r\nab",
            400,
            Up::Nothing,
        ),
        row(
            "a Transfer-Encoding other than chunked",
            "POST /echo/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\nab",
            400,
            Up::Nothing,
        ),
        row(
            "chunked, then another coding",
            "POST /echo/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked, identity\r\nConnection: close\r\n\r\n0\r\n\r\n",
            400,
            Up::Nothing,
        ),
        row(
            "a chunk size that overflows",
            "POST /echo/x HTTP/1.1\r\nHost: gw.test\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nffffffffffffffffff\r\nab\r\n0\r\n\r\n",
            400,
            Up::Nothing,
        ),
        row(
            "a field folded over two lines",
            "GET /echo/x HTTP/1.1\r\nHost: gw.test\r\nX-Folded: a\r\n b\r\nConnection: close\r\n\r\n",
            400,
            Up::Nothing,
        ),
        row(
            "a space before the colon",
            "GET /echo/x HTTP/1.1\r\nHost : gw.test\r\nConnection: close\r\n\r\n",
            400,
            Up::Nothing,
        ),
        row(
            "a field name with a space",
            "GET /echo/x HTTP/1.1\r\nHost: gw.test\r\nX Bad: 1\r\nConnection: close\r\n\r\n",
            400,
            Up::Nothing,
        ),
        row(
            "a NUL in a field value",
            "GET /echo/x HTTP/1.1\r\nHost: gw.test\r\nX-Bad: a\0b\r\nConnection: close\r\n\r\n",
            400,
            Up::Nothing,
        ),
        row(
            "a bare CR in a field value",
            "GET /echo/x HTTP/1.1\r\nHost: gw.test\r\nX-Bad: a\rb\r\nConnection: close\r\n\r\n",
            400,
            Up::Nothing,
        ),
        row(
            "an HTTP/2 preface on the HTTP/1.1 port",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            0,
            Up::Nothing,
        ),
        row(
            "an unknown HTTP version",
            "GET /echo/x HTTP/1.7\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
            400,
            Up::Nothing,
        ),
        row(
            "a request line with two spaces",
            "GET  /echo/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
            400,
            Up::Nothing,
        ),
        row(
            "a method with a control character",
            "G\x01T /echo/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
            400,
            Up::Nothing,
        ),
        row(
            "a fragment in the request target is dropped",
            get("/echo/x#frag", ""),
            200,
            Up::Saw(&[Target("/echo/x")]),
        ),
        row(
            "a head over the 64 KiB gateway limit",
            get("/echo/x", &format!("X-Big: {}\r\n", "a".repeat(70 << 10))),
            431,
            Up::Nothing,
        ),
        row(
            "a head over the server's 417,792 bytes",
            get("/echo/x", &format!("X-Big: {}\r\n", "a".repeat(420 << 10))),
            431,
            Up::Nothing,
        ),
        row(
            "101 fields",
            get(
                "/echo/x",
                &(0..100).map(|i| format!("X-{i}: v\r\n")).collect::<String>(),
            ),
            431,
            Up::Nothing,
        ),
        row(
            "a request target over 65,534 bytes",
            get(&format!("/echo/{}", "a".repeat(65_535)), ""),
            414,
            Up::Nothing,
        ),
    ]
}

fn duplicates() -> Vec<Row> {
    use Check::*;
    vec![
        row(
            "two Authorization fields",
            get(
                "/echo/x",
                "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n",
            ),
            400,
            Up::Nothing,
        ),
        row(
            "two Content-Type fields",
            with_body(
                "POST",
                "/echo/x",
                "Content-Type: application/json\r\nContent-Type: text/plain\r\n",
                "{}",
            ),
            400,
            Up::Nothing,
        ),
        row(
            "the client's X-Forwarded-Host",
            get("/echo/x", "X-Forwarded-Host: admin.internal\r\n"),
            200,
            Up::Saw(&[Header("x-forwarded-host", Some("gw.test"))]),
        ),
        row(
            "the client's X-Forwarded-Proto",
            get("/echo/x", "X-Forwarded-Proto: https\r\n"),
            200,
            Up::Saw(&[Header("x-forwarded-proto", Some("http"))]),
        ),
        row(
            "the client's Forwarded",
            get("/echo/x", "Forwarded: for=10.0.0.1;proto=https\r\n"),
            200,
            Up::Saw(&[Header("forwarded", None)]),
        ),
        row(
            "the client's X-Real-IP",
            get("/echo/x", "X-Real-IP: 10.0.0.1\r\n"),
            200,
            Up::Saw(&[Header("x-real-ip", None)]),
        ),
        row(
            "the client's X-Forwarded-Port and -Prefix",
            get(
                "/echo/x",
                "X-Forwarded-Port: 8443\r\nX-Forwarded-Prefix: /admin\r\n",
            ),
            200,
            Up::Saw(&[
                Header("x-forwarded-port", None),
                Header("x-forwarded-prefix", None),
            ]),
        ),
        row(
            "a method override",
            get("/echo/x", "X-HTTP-Method-Override: DELETE\r\n"),
            200,
            Up::Saw(&[Header("x-http-method-override", None), Method("GET")]),
        ),
        row(
            "another method override",
            get(
                "/echo/x",
                "X-Method-Override: PUT\r\nX-HTTP-Method: PATCH\r\n",
            ),
            200,
            Up::Saw(&[
                Header("x-method-override", None),
                Header("x-http-method", None),
            ]),
        ),
        row(
            "two X-Forwarded-For lines",
            get(
                "/echo/x",
                "X-Forwarded-For: 203.0.113.1\r\nX-Forwarded-For: 203.0.113.2\r\n",
            ),
            200,
            Up::Saw(&[Header(
                "x-forwarded-for",
                Some("203.0.113.1, 203.0.113.2, 127.0.0.1"),
            )]),
        ),
        row(
            "two X-Request-Id fields",
            get("/echo/x", "X-Request-Id: a\r\nX-Request-Id: b\r\n"),
            200,
            Up::Saw(&[Target("/echo/x")]),
        ),
        row(
            "an X-Request-Id with quotes",
            get("/echo/x", "X-Request-Id: \"><script>\r\n"),
            200,
            Up::Saw(&[Target("/echo/x")]),
        ),
        row(
            "a single-value query parameter twice",
            with_body(
                "POST",
                "/validated/1?mode=fast&mode=safe",
                "Content-Type: application/json\r\n",
                r#"{"name":"a"}"#,
            ),
            400,
            Up::Nothing,
        ),
        row(
            "an array parameter's every copy is checked",
            with_body(
                "POST",
                "/validated/1?mode=fast",
                "Content-Type: application/json\r\n",
                r#"{"name":"a","tags":["a",1]}"#,
            ),
            400,
            Up::Nothing,
        ),
        row(
            "a JSON member twice",
            with_body(
                "POST",
                "/validated/1?mode=fast",
                "Content-Type: application/json\r\n",
                r#"{"name":"a","name":"this one is far too long"}"#,
            ),
            400,
            Up::Nothing,
        ),
        row(
            "a JSON member twice, once escaped",
            with_body(
                "POST",
                "/validated/1?mode=fast",
                "Content-Type: application/json\r\n",
                r#"{"name":"a","n\u0061me":"b"}"#,
            ),
            400,
            Up::Nothing,
        ),
        row(
            "the same request, once",
            with_body(
                "POST",
                "/validated/1?mode=fast",
                "Content-Type: application/json\r\n",
                r#"{"name":"a"}"#,
            ),
            200,
            Up::Saw(&[Target("/validated/1?mode=fast"), BodyLen(12)]),
        ),
    ]
}

fn paths() -> Vec<Row> {
    use Check::*;
    let x: &[Check] = &[Target("/echo/x")];
    let mut rows = vec![
        row("empty segments", get("//echo//x", ""), 200, Up::Saw(x)),
        row("a dot segment", get("/echo/./x", ""), 200, Up::Saw(x)),
        row(
            "a dot-dot segment",
            get("/echo/a/../x", ""),
            200,
            Up::Saw(x),
        ),
        row(
            "climbing above the root",
            get("/../../echo/x", ""),
            200,
            Up::Saw(x),
        ),
        row("a trailing slash", get("/echo/x/", ""), 200, Up::Saw(x)),
        row("a trailing dot", get("/echo/x/.", ""), 200, Up::Saw(x)),
        row("an encoded letter", get("/%65cho/x", ""), 200, Up::Saw(x)),
        row(
            "an encoded letter, lower case",
            get("/ech%6f/x", ""),
            200,
            Up::Saw(x),
        ),
        row(
            "a semicolon is encoded",
            get("/echo/x;jsessionid=1", ""),
            200,
            Up::Saw(&[Target("/echo/x%3Bjsessionid=1")]),
        ),
        row(
            "an encoded semicolon stays encoded",
            get("/echo/x%3By", ""),
            200,
            Up::Saw(&[Target("/echo/x%3By")]),
        ),
        row(
            "an encoded space",
            get("/echo/a%20b", ""),
            200,
            Up::Saw(&[Target("/echo/a%20b")]),
        ),
        row(
            "UTF-8",
            get("/echo/caf%C3%A9", ""),
            200,
            Up::Saw(&[Target("/echo/caf%C3%A9")]),
        ),
        row(
            "a query is passed as sent",
            get("/echo/x?a=1&b=%20", ""),
            200,
            Up::Saw(&[Target("/echo/x?a=1&b=%20")]),
        ),
        row(
            "an empty query",
            get("/echo/x?", ""),
            200,
            Up::Saw(&[Target("/echo/x?")]),
        ),
        row(
            "a template value cannot add a segment",
            get("/items/a%3Fb", ""),
            200,
            Up::Saw(&[Target("/v1/items/a%3Fb")]),
        ),
        row(
            "a template value of dots stays data",
            get("/items/..%3B", ""),
            200,
            Up::Saw(&[Target("/v1/items/..%3B")]),
        ),
        row(
            "letters in another case",
            get("/ECHO/x", ""),
            404,
            Up::Nothing,
        ),
        row("no such path", get("/admin", ""), 404, Up::Nothing),
        row(
            "too many segments",
            get("/echo/a/b/c", ""),
            404,
            Up::Nothing,
        ),
        row(
            "an absolute-form target's path",
            "GET http://gw.test/echo/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
            200,
            Up::Saw(x),
        ),
        row(
            "an absolute-form target naming another host than Host",
            "GET http://elsewhere.test/echo/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
            400,
            Up::Nothing,
        ),
    ];
    for (name, target) in [
        ("an encoded slash", "/echo/a%2Fb"),
        ("an encoded slash, lower case", "/echo/a%2fb"),
        ("an encoded slash climbing", "/echo/..%2F..%2Fadmin"),
        ("an encoded backslash", "/echo/a%5Cb"),
        ("an encoded backslash, lower case", "/echo/a%5cb"),
        ("a raw backslash", "/echo/a\\b"),
        ("an encoded NUL", "/echo/a%00b"),
        ("an encoded dot-dot", "/echo/%2e%2e"),
        ("an encoded dot and a dot", "/echo/.%2e"),
        ("an encoded dot", "/echo/%2E"),
        ("an invalid escape", "/echo/%zz"),
        ("a truncated escape", "/echo/%4"),
        ("invalid UTF-8", "/echo/%ff"),
        ("an overlong slash", "/echo/%c0%af"),
        ("an encoded slash in a template value", "/items/..%2Fadmin"),
    ] {
        rows.push(row(name, get(target, ""), 400, Up::Nothing));
    }
    rows
}

fn bodies() -> Vec<Row> {
    use Check::*;
    let smuggled = "GET /admin HTTP/1.1\r\nHost: internal\r\n\r\n";
    vec![
        row(
            "a body on an operation without requestBody",
            with_body("GET", "/echo/x", "", smuggled),
            400,
            Up::Nothing,
        ),
        row(
            "a chunked body on an operation without requestBody",
            format!("GET /echo/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len()),
            400,
            Up::Nothing,
        ),
        row(
            "an empty chunked body on an operation without requestBody",
            "GET /echo/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
            400,
            Up::Nothing,
        ),
        row(
            "Content-Length: 0 without requestBody",
            with_body("GET", "/echo/x", "", ""),
            200,
            Up::Saw(&[BodyLen(0)]),
        ),
        row(
            "a body dropped where the operation says so",
            with_body("GET", "/quiet/x", "", smuggled),
            200,
            Up::Saw(&[Target("/echo/x"), BodyLen(0), Header("content-length", None)]),
        ),
        row(
            "a declared body passes whole",
            with_body("POST", "/echo/x", "Content-Type: text/plain\r\n", "hello"),
            200,
            Up::Saw(&[BodyLen(5), Method("POST")]),
        ),
        row(
            "a chunked body passes whole",
            "POST /echo/x HTTP/1.1\r\nHost: gw.test\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
            200,
            Up::Saw(&[BodyLen(5)]),
        ),
        row(
            "a chunk extension",
            "POST /echo/x HTTP/1.1\r\nHost: gw.test\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n",
            200,
            Up::Saw(&[BodyLen(5)]),
        ),
        row(
            "a declared length over the operation's limit",
            with_body("POST", "/small/x", "Content-Type: text/plain\r\n", &"a".repeat(2048)),
            413,
            Up::Nothing,
        ),
        row(
            "Expect: 100-continue is answered, not forwarded",
            with_body(
                "POST",
                "/echo/x",
                "Content-Type: text/plain\r\nExpect: 100-continue\r\n",
                "hello",
            ),
            200,
            Up::Saw(&[Header("expect", None), BodyLen(5)]),
        ),
        row(
            "JSON in Latin-1",
            with_body(
                "POST",
                "/validated/1?mode=fast",
                "Content-Type: application/json; charset=iso-8859-1\r\n",
                r#"{"name":"a"}"#,
            ),
            415,
            Up::Nothing,
        ),
        row(
            "JSON in UTF-8 beyond ASCII",
            with_body(
                "POST",
                "/validated/1?mode=fast",
                "Content-Type: application/json; charset=utf-8\r\n",
                "{\"name\":\"caf\u{00e9}\"}",
            ),
            200,
            Up::Saw(&[Target("/validated/1?mode=fast"), BodyLen(16)]),
        ),
        row(
            "a media type the operation does not take",
            with_body(
                "POST",
                "/validated/1?mode=fast",
                "Content-Type: text/csv\r\n",
                "a,b",
            ),
            415,
            Up::Nothing,
        ),
        row(
            "no Content-Type on a JSON operation",
            with_body("POST", "/validated/1?mode=fast", "", r#"{"name":"a"}"#),
            415,
            Up::Nothing,
        ),
        row(
            "JSON that does not parse",
            with_body(
                "POST",
                "/validated/1?mode=fast",
                "Content-Type: application/json\r\n",
                r#"{"name":"a""#,
            ),
            400,
            Up::Nothing,
        ),
        row(
            "JSON with a trailing value",
            with_body(
                "POST",
                "/validated/1?mode=fast",
                "Content-Type: application/json\r\n",
                r#"{"name":"a"} {"name":"b"}"#,
            ),
            400,
            Up::Nothing,
        ),
        row(
            "JSON holding more values than allowed",
            with_body(
                "POST",
                "/validated/1?mode=fast",
                "Content-Type: application/json\r\n",
                &format!(r#"{{"name":"a","tags":[{}]}}"#, vec![r#""t""#; 1200].join(",")),
            ),
            413,
            Up::Nothing,
        ),
        row(
            "JSON nested past the limit",
            with_body(
                "POST",
                "/validated/1?mode=fast",
                "Content-Type: application/json\r\n",
                &format!("{}{}", "[".repeat(200), "]".repeat(200)),
            ),
            400,
            Up::Nothing,
        ),
    ]
}

fn headers_and_methods() -> Vec<Row> {
    use Check::*;
    vec![
        row(
            "Connection cannot strip Authorization",
            get(
                "/echo/x",
                "Connection: authorization\r\nAuthorization: Bearer t\r\n",
            ),
            200,
            Up::Saw(&[Header("authorization", Some("Bearer t"))]),
        ),
        row(
            "Connection cannot strip the request id",
            get(
                "/echo/x",
                "Connection: x-request-id\r\nX-Request-Id: rid-1\r\n",
            ),
            200,
            Up::Saw(&[Header("x-request-id", Some("rid-1"))]),
        ),
        row(
            "Connection cannot strip X-Forwarded-For",
            get("/echo/x", "Connection: x-forwarded-for\r\n"),
            200,
            Up::Saw(&[Header("x-forwarded-for", Some("127.0.0.1"))]),
        ),
        row(
            "Connection strips a field it names",
            get("/echo/x", "Connection: x-hop\r\nX-Hop: 1\r\n"),
            200,
            Up::Saw(&[Header("x-hop", None), Header("connection", None)]),
        ),
        row(
            "Keep-Alive is hop-by-hop",
            get("/echo/x", "Keep-Alive: timeout=5\r\n"),
            200,
            Up::Saw(&[Header("keep-alive", None)]),
        ),
        row(
            "TE is hop-by-hop",
            get("/echo/x", "TE: trailers\r\n"),
            200,
            Up::Saw(&[Header("te", None)]),
        ),
        row(
            "Proxy-Authorization is the gateway's",
            get("/echo/x", "Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"),
            200,
            Up::Saw(&[Header("proxy-authorization", None)]),
        ),
        row(
            "Upgrade is not forwarded",
            get("/echo/x", "Upgrade: websocket\r\n"),
            200,
            Up::Saw(&[Header("upgrade", None)]),
        ),
        row(
            "a traceparent is kept",
            get(
                "/echo/x",
                "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n",
            ),
            200,
            Up::Saw(&[Target("/echo/x")]),
        ),
        row(
            "an ordinary header is kept",
            get("/echo/x", "X-Custom: yes\r\n"),
            200,
            Up::Saw(&[Header("x-custom", Some("yes"))]),
        ),
        row(
            "a method the path does not have",
            with_body("DELETE", "/echo/x", "", ""),
            405,
            Up::Nothing,
        ),
        row(
            "TRACE",
            "TRACE /echo/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
            405,
            Up::Nothing,
        ),
        row(
            "an unknown method",
            "BREW /echo/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
            405,
            Up::Nothing,
        ),
        row(
            "CONNECT names no path the API has",
            "CONNECT gw.test:443 HTTP/1.1\r\nHost: gw.test:443\r\nConnection: close\r\n\r\n",
            404,
            Up::Nothing,
        ),
        // The answer to HEAD has no body to echo the request in; that it arrived is the check.
        row(
            "HEAD is served by GET's integration",
            "HEAD /echo/x HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
            200,
            Up::Saw(&[]),
        ),
        row(
            "a scheme the gateway cannot verify fails closed",
            get("/private", "Authorization: Basic dXNlcjpwYXNz\r\n"),
            401,
            Up::Nothing,
        ),
        row(
            "a mock never reaches the upstream",
            get("/mocked", ""),
            202,
            Up::Nothing,
        ),
    ]
}

#[test]
fn the_raw_socket_suite() {
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/proxy.yaml");
    let gw = Running::start(&bin, &[], &[("UPSTREAM_PORT", upstream.port.to_string())]);
    let mut total = 0;
    for rows in [
        framing(),
        duplicates(),
        paths(),
        bodies(),
        headers_and_methods(),
    ] {
        total += run(gw.port, &upstream, rows);
    }
    total += cache_rows();
    assert!(total >= 100, "{total} rows");
}

/// The response cache: what varies an answer is in the key, what cannot be shared is not
/// stored, and a request that must not be answered from the cache goes past it.
fn cache_rows() -> usize {
    use Check::*;
    let dir = std::env::temp_dir().join(format!("gwgen-attacks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let keys = dir.join("keys.txt");
    std::fs::write(&keys, "").expect("keys");
    let upstream = Upstream::start();
    let bin = build("specs/traffic.yaml");
    let gw = Running::start(
        &bin,
        &[],
        &[
            ("UPSTREAM", format!("http://127.0.0.1:{}", upstream.port)),
            ("API_KEYS_FILE", keys.display().to_string()),
        ],
    );
    let fill = |target: &str| {
        let r = exchange(gw.port, get(target, "").as_bytes()).expect("an answer");
        assert_eq!(r.header("x-cache"), Some("Miss"), "{target}");
    };
    fill("/catalog/1?lang=fr");
    fill("/search?q=a");
    let rows = vec![
        row(
            "the same request is a hit",
            get("/catalog/1?lang=fr", ""),
            200,
            Up::Nothing,
        ),
        row(
            "another id is not",
            get("/catalog/2?lang=fr", ""),
            200,
            Up::Saw(&[Target("/catalog/2?lang=fr")]),
        ),
        row(
            "another declared query value is not",
            get("/catalog/1?lang=de", ""),
            200,
            Up::Saw(&[Target("/catalog/1?lang=de")]),
        ),
        row(
            "an undeclared query parameter is part of the key",
            get("/catalog/1?lang=fr&admin=1", ""),
            200,
            Up::Saw(&[Target("/catalog/1?lang=fr&admin=1")]),
        ),
        row(
            "another spelling of the path is the same entry",
            get("//catalog/./1/?lang=fr", ""),
            200,
            Up::Nothing,
        ),
        row(
            "another Host shares the entry",
            "GET /catalog/1?lang=fr HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
            200,
            Up::Nothing,
        ),
        row(
            "a Range request goes past the cache",
            get("/catalog/1?lang=fr", "Range: bytes=0-3\r\n"),
            200,
            Up::Saw(&[Header("range", Some("bytes=0-3"))]),
        ),
        row(
            "a Cookie goes past the cache",
            get("/catalog/1?lang=fr", "Cookie: session=abc\r\n"),
            200,
            Up::Saw(&[Header("cookie", Some("session=abc"))]),
        ),
        row(
            "Authorization goes past the cache",
            get("/catalog/1?lang=fr", "Authorization: Bearer someone\r\n"),
            200,
            Up::Saw(&[Header("authorization", Some("Bearer someone"))]),
        ),
        row(
            "an anonymous refresh is ignored",
            get("/catalog/1?lang=fr", "Cache-Control: no-cache\r\n"),
            200,
            Up::Nothing,
        ),
        row(
            "stripped undeclared parameters share the entry",
            get("/search?q=a&utm_source=x", ""),
            200,
            Up::Nothing,
        ),
        row(
            "a 206 is passed on, not stored",
            get("/uncached/partial", ""),
            206,
            Up::Saw(&[Target("/uncached/partial")]),
        ),
        row(
            "and is not served from the cache after",
            get("/uncached/partial", ""),
            206,
            Up::Saw(&[Target("/uncached/partial")]),
        ),
        row(
            "a Set-Cookie answer is not stored",
            get("/cookie", ""),
            200,
            Up::Saw(&[Target("/cookie")]),
        ),
        row(
            "nor served after",
            get("/cookie", ""),
            200,
            Up::Saw(&[Target("/cookie")]),
        ),
    ];
    let n = run(gw.port, &upstream, rows);
    let _ = std::fs::remove_dir_all(&dir);
    n
}
