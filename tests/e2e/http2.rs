//! HTTP/2 (`tests/fixtures/gateway/grpc.yaml`): a listener that takes h2c beside HTTP/1.1, and
//! gRPC through the gateway to gRPC servers over h2c and over TLS (ALPN h2), with grpcio's own
//! client and server from PyPI (`tests/tools/grpc_client.py`, `grpc_upstream.py`): unary calls,
//! streams both ways, trailers, error statuses. A raw HTTP/2 client (`tests/tools/h2_probe.py`)
//! does what ordinary clients do not: a `host` that contradicts `:authority`, a rapid-reset flood,
//! a CONTINUATION flood, an idle connection.

use std::path::Path;
use std::process::Command;

use crate::gateway::{build, Running};
use crate::net::Upstream;
use crate::support::{repo, Killed};

/// A gRPC server: h2c, or TLS when `tls` names a certificate and key.
fn grpc_upstream(dir: &Path, name: &str, tls: Option<(&Path, &Path)>) -> (Killed, u16) {
    let file = dir.join(format!("{name}.port"));
    let mut cmd = Command::new(crate::auth::python());
    cmd.arg(repo().join("tests/tools/grpc_upstream.py"))
        .arg(&file);
    if let Some((cert, key)) = tls {
        cmd.arg(cert).arg(key);
    }
    let child = Killed(cmd.spawn().expect("python runs"));
    let port = crate::support::port_from_file(&file, name);
    (child, port)
}

/// Runs a Python tool from `tests/tools` and parses the JSON object it prints.
pub(crate) fn tool(script: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(crate::auth::python())
        .arg(repo().join("tests/tools").join(script))
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The status of a GET of `url` over h2c (curl, prior knowledge).
fn h2_status(url: &str) -> String {
    curl(&[
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        url,
    ])
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn grpc_and_http2_through_the_gateway() {
    let dir = crate::support::scratch("http2");
    let (ca, cert, key) = crate::auth::certificates(&dir);
    let (_plain_grpc, grpc_port) = grpc_upstream(&dir, "grpc", None);
    let (_tls_grpc, grpc_tls_port) = grpc_upstream(&dir, "grpc-tls", Some((&cert, &key)));
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/grpc.yaml");
    let gw = Running::start(
        &bin,
        &[],
        &[
            ("GRPC_PORT", grpc_port.to_string()),
            ("GRPC_TLS_PORT", grpc_tls_port.to_string()),
            ("TLS_CA", ca.display().to_string()),
            ("PLAIN_PORT", upstream.port.to_string()),
        ],
    );
    let target = format!("127.0.0.1:{}", gw.port);

    for service in ["echo.Echo", "secure.Echo"] {
        let got = tool("grpc_client.py", &[&target, service]);
        let unary = &got["unary"];
        assert_eq!(unary["answer"], "echo:hello", "{service}: {got}");
        assert_eq!(unary["code"], "OK");
        assert_eq!(unary["initial"]["x-initial"], "i1", "{service}: {unary}");
        assert_eq!(unary["trailing"]["x-trailer"], "t1", "{service}: {unary}");
        assert!(unary["initial"]["x-request-id"].is_string());
        // An error status and its trailers reach the client as the server sent them.
        let fail = &got["fail"];
        assert_eq!(fail["code"], "NOT_FOUND", "{service}: {fail}");
        assert_eq!(fail["details"], "no such thing");
        assert_eq!(fail["trailing"]["x-why"], "missing");
        // Server streaming: each message arrives when the server sends it (200 ms apart), not
        // all at the end.
        let arrivals = got["server_stream"].as_array().expect("messages");
        let names: Vec<&str> = arrivals.iter().filter_map(|a| a[0].as_str()).collect();
        assert_eq!(names, ["m0", "m1", "m2", "m3"], "{service}");
        let first = arrivals[0][1].as_f64().unwrap_or(f64::MAX);
        let last = arrivals[3][1].as_f64().unwrap_or(0.0);
        assert!(
            first < 0.3,
            "{service}: the first message waited: {arrivals:?}"
        );
        assert!(
            last - first > 0.45,
            "{service}: the messages came together: {arrivals:?}"
        );
        assert_eq!(got["client_stream"], "a,b,c", "{service}");
        assert_eq!(
            got["bidi"],
            serde_json::json!(["re:1", "re:2", "re:3"]),
            "{service}"
        );
        // What the gRPC server got: the caller's metadata, `te: trailers` (grpc-core refuses a
        // call without it), and the gateway's forwarding fields in place of the client's.
        let meta: std::collections::HashMap<String, String> = got["meta"]
            .as_array()
            .expect("metadata")
            .iter()
            .map(|kv| {
                (
                    kv[0].as_str().unwrap_or_default().into(),
                    kv[1].as_str().unwrap_or_default().into(),
                )
            })
            .collect();
        assert_eq!(
            meta.get("x-caller").map(String::as_str),
            Some("c1"),
            "{meta:?}"
        );
        assert_eq!(
            meta.get("x-forwarded-host").map(String::as_str),
            Some(target.as_str()),
            "the client's x-forwarded-host is not the upstream's: {meta:?}"
        );
        assert_eq!(
            meta.get("x-forwarded-for").map(String::as_str),
            Some("127.0.0.1")
        );
        assert!(meta.contains_key("x-request-id"), "{meta:?}");
        // No route: 404, which gRPC clients read as UNIMPLEMENTED.
        assert_eq!(got["unrouted"]["code"], "UNIMPLEMENTED");
    }

    // The gateway's own refusals reach gRPC clients as gRPC statuses with the reason: a method
    // name the spec's pattern refuses, an upstream that does not speak HTTP/2, a call over the
    // route's body limit (cut off while it streams to the HTTP/2 upstream).
    let refused = |service: &str, args: &[&str], code: &str, reason: &str| {
        let mut a = vec![target.as_str(), service];
        a.extend_from_slice(args);
        let got = tool("grpc_client.py", &a);
        assert_eq!(got["code"], code, "{service}: {got}");
        let details = got["details"].as_str().unwrap_or_default();
        assert!(details.contains(reason), "{service}: {got}");
    };
    refused("echo.Echo", &["Bad1"], "INVALID_ARGUMENT", "schema");
    refused("h1only.Echo", &["Unary"], "UNAVAILABLE", "upstream");
    refused(
        "small.Echo",
        &["Unary", "4096"],
        "RESOURCE_EXHAUSTED",
        "1024",
    );
    let fits = tool("grpc_client.py", &[&target, "small.Echo", "Unary", "100"]);
    assert_eq!(fits["code"], "OK", "{fits}");

    // Plain HTTP over h2c (curl, prior knowledge) to an HTTP/1.1 upstream: `:authority` becomes
    // `Host` and `X-Forwarded-Host`; the path parameter is validated as over HTTP/1.1.
    let url = format!("http://127.0.0.1:{}/plain/5", gw.port);
    let answer = curl(&[
        "--http2-prior-knowledge",
        "-H",
        "x-Probe: 1",
        "-w",
        "\n%{http_version} %{http_code}",
        &url,
    ]);
    let (body, status) = answer.rsplit_once('\n').expect("a status line");
    assert_eq!(status, "2 200", "{answer}");
    let echoed: serde_json::Value = serde_json::from_str(body).expect("the upstream's JSON");
    assert_eq!(echoed["target"], "/echo/5");
    let headers = &echoed["headers"];
    let header = |name: &str| {
        headers[name]
            .as_str()
            .map(str::to_owned)
            .or_else(|| headers[name][0].as_str().map(str::to_owned))
    };
    assert_eq!(
        header("x-forwarded-host").as_deref(),
        Some(target.as_str()),
        "{echoed}"
    );
    assert_eq!(header("x-probe").as_deref(), Some("1"), "{echoed}");
    let bad = h2_status(&format!("http://127.0.0.1:{}/plain/x", gw.port));
    assert_eq!(bad, "400");
    // HTTP/1.1 on the same port, as before.
    let h1 = curl(&[
        "--http1.1",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        &url,
    ]);
    assert_eq!(h1, "1.1 200");

    // The limits the gateway announces, and holds: 128 streams at once (the rest of 200 calls
    // opened at once are refused), 64 KiB a stream and 1 MiB a connection of flow-control
    // window, the header limit as the header list size.
    let limits = tool("h2_probe.py", &[&gw.port.to_string(), "limits"]);
    let settings = &limits["settings"];
    assert_eq!(settings["MAX_CONCURRENT_STREAMS"], 128, "{limits}");
    assert_eq!(settings["INITIAL_WINDOW_SIZE"], 65536, "{limits}");
    assert_eq!(settings["MAX_HEADER_LIST_SIZE"], 65536, "{limits}");
    assert_eq!(limits["connection_window"], 1 << 20, "{limits}");
    assert_eq!(limits["refused"], 72, "{limits}");
    assert_eq!(limits["first_refused"], 128, "{limits}");

    // A `host` that names another host than `:authority`: 400, never routed on either.
    let mismatch = tool("h2_probe.py", &[&gw.port.to_string(), "mismatch"]);
    assert_eq!(mismatch["status"], "400", "{mismatch}");
    // A header list over the gateway's header limit (64 KiB): 431, as over HTTP/1.1.
    let big = tool("h2_probe.py", &[&gw.port.to_string(), "big-header"]);
    assert_eq!(big["status"], "431", "{big}");

    // A rapid-reset flood ends with GOAWAY (ENHANCE_YOUR_CALM), and a CONTINUATION flood is cut
    // off; other clients are served meanwhile and after.
    let port = gw.port.to_string();
    let flood = std::thread::spawn(move || {
        (
            tool("h2_probe.py", &[&port, "rapid-reset"]),
            tool("h2_probe.py", &[&port, "continuation"]),
        )
    });
    for _ in 0..20 {
        let served = h2_status(&url);
        assert_eq!(served, "200", "a client was not served during the floods");
    }
    let (reset, continuation) = flood.join().expect("the floods ran");
    assert_eq!(reset["goaway"], "ENHANCE_YOUR_CALM", "{reset}");
    let took = continuation["accepted_bytes_at_most"]
        .as_u64()
        .unwrap_or(u64::MAX);
    assert!(
        took < 16 << 20,
        "the CONTINUATION flood was read to its end: {continuation}"
    );
    assert_eq!(h2_status(&url), "200");

    // A connection that sends its preface and then nothing is closed after the head timeout
    // (2 s in the spec), as an idle HTTP/1.1 one is.
    let idle = tool("h2_probe.py", &[&gw.port.to_string(), "idle"]);
    let after = idle["closed_after_s"].as_f64().unwrap_or(f64::MAX);
    assert!((1.5..10.0).contains(&after), "{idle}");
    let log = gw.log_text();
    assert!(
        log.contains("\"protocol\":\"HTTP/2.0\""),
        "the access log names HTTP/2"
    );
}
