//! Generated gateways, end to end: `gwgen build` compiles them (sharing one build cache), they
//! run as real processes on loopback, a real upstream answers, a raw HTTP client asks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::net::{free_port, get, send, Upstream};
use crate::support::{gwgen_bin, repo};

/// The build cache every gateway test shares.
/// Builds `spec` (relative to the repo) once per test run; returns the binary.
pub fn build(spec: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(bin) = map.get(spec) {
        return bin.clone();
    }
    // A relative cache folder, as a user might set it: gwgen makes it absolute (the generated
    // manifest names the cached runtime by path from the crate's own folder).
    let out = Command::new(gwgen_bin())
        .args(["build", spec])
        .current_dir(repo())
        .env("GWGEN_CACHE_DIR", "target/e2e-gwgen-cache")
        .stderr(Stdio::inherit())
        .output()
        .expect("gwgen build runs");
    assert!(out.status.success(), "gwgen build {spec} failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bin = PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("the binary's path is the last line")
            .trim(),
    );
    assert!(bin.exists(), "{} does not exist", bin.display());
    map.insert(spec.to_string(), bin.clone());
    bin
}

/// A running gateway, stopped by PID when dropped.
pub struct Running {
    pub child: Child,
    pub port: u16,
    pub admin: u16,
    log: PathBuf,
}

impl Running {
    /// Starts the gateway on fresh loopback ports; tries new ports if one was taken meanwhile.
    pub fn start(bin: &Path, args: &[&str], env: &[(&str, String)]) -> Running {
        Running::start_on(bin, None, args, env)
    }

    /// Starts the gateway with its admin listener on `admin` (a test's backend must know it
    /// before the gateway starts).
    pub fn start_with_admin(
        bin: &Path,
        admin: u16,
        args: &[&str],
        env: &[(&str, String)],
    ) -> Running {
        Running::start_on(bin, Some(admin), args, env)
    }

    fn start_on(bin: &Path, admin: Option<u16>, args: &[&str], env: &[(&str, String)]) -> Running {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Running::try_start(bin, admin, args, env) {
                Ok(running) => return running,
                Err(log) if attempt < 3 && log.contains("Address already in use") => continue,
                Err(log) => panic!("the gateway did not start: {log}"),
            }
        }
    }

    fn try_start(
        bin: &Path,
        admin: Option<u16>,
        args: &[&str],
        env: &[(&str, String)],
    ) -> Result<Running, String> {
        let (port, admin) = (free_port(), admin.unwrap_or_else(free_port));
        let log = std::env::temp_dir().join(format!("gwgen-e2e-{}-{port}.log", std::process::id()));
        let file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(bin);
        cmd.args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ])
        .args(args)
        .stdout(file.try_clone().expect("dup"))
        .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start the gateway");
        let mut running = Running {
            child,
            port,
            admin,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        // The API listeners come first, then the admin listener: both are waited for.
        for at in [port, admin] {
            while std::net::TcpStream::connect(("127.0.0.1", at)).is_err() {
                if let Ok(Some(status)) = running.child.try_wait() {
                    return Err(format!("exited with {status}: {}", running.log_text()));
                }
                if Instant::now() > deadline {
                    return Err(format!("not listening after 20 s: {}", running.log_text()));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(running)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit; returns its exit code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn proxy_gateway() -> (Running, Upstream) {
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/proxy.yaml");
    let gw = Running::start(&bin, &[], &[("UPSTREAM_PORT", upstream.port.to_string())]);
    (gw, upstream)
}

/// The proxy fixture in front of `upstream`, run in runtime mode `mode` (`GWGEN_RUNTIME`).
fn proxy_gateway_in(mode: &str, upstream: &Upstream) -> Running {
    let bin = build("tests/fixtures/gateway/proxy.yaml");
    Running::start(
        &bin,
        &[],
        &[
            ("UPSTREAM_PORT", upstream.port.to_string()),
            ("GWGEN_RUNTIME", mode.to_string()),
        ],
    )
}

#[test]
fn mock_routes_404_405_head_options() {
    let bin = build("specs/petstore.yaml");
    let gw = Running::start(&bin, &[], &[]);
    let r = get(gw.port, "/pets", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!([{ "id": 1, "name": "Rex", "tag": "dog" }])
    );
    assert!(r.header("x-request-id").is_some_and(|id| id.len() == 36));

    let head = send(
        gw.port,
        b"HEAD /pets/7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    let missing = get(gw.port, "/cats", "");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("content-type"),
        Some("application/problem+json")
    );
    let p = missing.json();
    assert_eq!(
        (p["status"].as_u64(), p["title"].as_str()),
        (Some(404), Some("Not Found"))
    );

    let wrong = send(
        gw.port,
        b"DELETE /pets HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("GET, HEAD, OPTIONS, POST"));

    let options = send(
        gw.port,
        b"OPTIONS /pets/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(options.status, 204);
    assert_eq!(options.header("allow"), Some("GET, HEAD, OPTIONS"));

    // The client's request id is kept.
    let r = get(gw.port, "/pets", "X-Request-Id: my-trace-1\r\n");
    assert_eq!(r.header("x-request-id"), Some("my-trace-1"));
}

#[test]
fn proxy_templates_query_and_forwarded_headers() {
    let (gw, upstream) = proxy_gateway();
    // A defaults URL: the normalised request path is appended, the query passed through.
    let r = get(
        gw.port,
        "/echo/hello?x=1&y=%20",
        "X-Request-Id: rid-42\r\nX-Forwarded-For: 203.0.113.9\r\n",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let e = r.json();
    assert_eq!(e["target"], "/echo/hello?x=1&y=%20");
    let h = &e["headers"];
    assert_eq!(h["x-request-id"], "rid-42");
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "gw.test");
    // A template URL: each value is one encoded segment, so it cannot steer the upstream path.
    let r = get(gw.port, "/items/..%3Fx%23y", "");
    assert_eq!(r.json()["target"], "/v1/items/..%3Fx%23y");
    // Mixed segments.
    let r = get(gw.port, "/files/report.tar.gz", "");
    assert_eq!(r.json()["target"], "/store/report/tar.gz");
    assert!(upstream.hits.load(std::sync::atomic::Ordering::SeqCst) >= 3);
}

#[test]
fn hop_by_hop_headers_are_dropped_both_ways() {
    let (gw, _up) = proxy_gateway();
    let r = get(gw.port, "/echo/x", "Connection: close, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=1\r\nTE: trailers\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nX-Kept: yes\r\n");
    let h = &r.json()["headers"];
    for gone in ["x-hop", "keep-alive", "te", "proxy-authorization"] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream: {h}");
    }
    assert_eq!(h["x-kept"], "yes");
    assert_eq!(r.header("x-upstream"), Some("yes"));
    assert!(
        r.header("x-upstream-secret").is_none(),
        "named in the upstream's Connection header"
    );
    assert!(r.header("keep-alive").is_none());
}

#[test]
fn path_normalisation_is_one_policy() {
    let (gw, _up) = proxy_gateway();
    let r = get(gw.port, "//echo/./a/../b/", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["target"], "/echo/b");
    let r = get(gw.port, "/echo/a%2Fb", "");
    assert_eq!(r.status, 400, "an encoded slash is refused by default");
    let r = get(gw.port, "/echo/caf%C3%A9", "");
    assert_eq!(r.json()["target"], "/echo/caf%C3%A9");
    let r = get(gw.port, "/echo/%2e%2e", "");
    assert_eq!(r.status, 400);
    let r = get(gw.port, "/echo/%ff", "");
    assert_eq!(r.status, 400);
    let r = get(gw.port, "/echo/a/b/c", "");
    assert_eq!(r.status, 404);
}

#[test]
fn upstream_failures_are_502_and_504() {
    let (gw, _up) = proxy_gateway();
    let started = Instant::now();
    let r = get(gw.port, "/slow", "");
    assert_eq!(r.status, 504);
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "the 300ms timeout applies"
    );
    assert_eq!(r.json()["title"], "Gateway Timeout");
    let r = get(gw.port, "/down", "");
    assert_eq!(r.status, 502);
    let detail = r.json()["detail"].as_str().unwrap_or_default().to_string();
    assert!(
        !detail.contains("127.0.0.1"),
        "no internals leak to the client: {detail}"
    );
    let r = get(gw.port, "/mocked", "");
    assert_eq!(
        (r.status, r.json()),
        (202, serde_json::json!({ "queued": true }))
    );
    // An answer of the gateway's own carries a date (RFC 9110 §6.6.1), an IMF-fixdate.
    let date = r.header("date").expect("a date");
    assert!(
        date.len() == 29 && date.ends_with(" GMT") && &date[3..5] == ", ",
        "{date}"
    );
}

#[test]
fn bodies_stream_and_the_size_limit_is_413() {
    let (gw, _up) = proxy_gateway();
    let body = vec![b'a'; 512 * 1024];
    let mut req = format!(
        "POST /echo/up HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let r = send(gw.port, &req);
    assert_eq!(r.json()["body_len"], 512 * 1024);
    let big = format!(
        "POST /echo/up HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        2 << 20
    );
    let r = send(gw.port, big.as_bytes());
    assert_eq!(r.status, 413);
    // Chunked, without a length up front: the limit still holds while streaming.
    let mut chunked = b"POST /echo/up HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        chunked.extend_from_slice(format!("{:x}\r\n", 128 * 1024).as_bytes());
        chunked.extend_from_slice(&vec![b'b'; 128 * 1024]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = send(gw.port, &chunked);
    assert_eq!(r.status, 413);
}

#[test]
fn upstream_answers_are_read_in_every_framing_and_connections_are_reused() {
    // One serving thread, so that the requests below share its pooled upstream connections:
    // with a thread a core, a client connection the kernel gives another thread would be
    // served there, over that thread's own upstream connections.
    let up = Upstream::start();
    let gw = proxy_gateway_in("current_thread", &up);
    let r = get(gw.port, "/echo/chunked", "");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world"[..]));
    let r = get(gw.port, "/echo/close", "");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"until close"[..]));
    let r = get(gw.port, "/echo/interim", "");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"final"[..]));
    let r = get(gw.port, "/echo/empty", "");
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = get(gw.port, "/echo/big", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 3 << 20);
    assert!(r.body.iter().all(|b| *b == b'z'));
    let r = send(
        gw.port,
        b"HEAD /echo/head HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert!(r.header("content-length").is_some_and(|n| n != "0"));
    // A head the gateway cannot read is a 502, not a hang or a 500.
    assert_eq!(get(gw.port, "/echo/malformed", "").status, 502);
    // The upstream closes these connections while the gateway holds them idle: the next
    // request still gets its answer.
    for _ in 0..3 {
        let r = get(gw.port, "/echo/bye", "");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"bye"[..]));
        std::thread::sleep(std::time::Duration::from_millis(120));
    }
    // A pooled connection the upstream closes on reading the next request, without answering:
    // that request has no body, so it is sent again on a new connection.
    let r = get(gw.port, "/echo/dropnext", "");
    assert_eq!(r.status, 200);
    let r = get(gw.port, "/echo/after-drop", "");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["target"], "/echo/after-drop");
    // The same with a POST: the upstream may have acted on it, so it is not sent again (502).
    let r = get(gw.port, "/echo/dropnext", "");
    assert_eq!(r.status, 200);
    let r = send(
        gw.port,
        b"POST /echo/not-again HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    // A chunked request body arrives whole.
    let r = send(
        gw.port,
        b"POST /echo/up HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n",
    );
    assert_eq!(r.json()["body_len"], 7);
    // Sequential requests share one pooled connection, whatever the framing of the answers
    // before them.
    let before = up.conns.load(std::sync::atomic::Ordering::SeqCst);
    for path in [
        "/echo/a",
        "/echo/chunked",
        "/echo/b",
        "/echo/empty",
        "/echo/interim",
        "/echo/c",
    ] {
        assert!(get(gw.port, path, "").status < 300, "{path}");
    }
    let after = up.conns.load(std::sync::atomic::Ordering::SeqCst);
    assert!(after <= before + 1, "{before} connections, then {after}");
}

#[test]
fn access_log_metrics_and_health() {
    let (gw, _up) = proxy_gateway();
    let r = get(
        gw.port,
        "/items/abc",
        "User-Agent: e2e\r\nX-Request-Id: log-me\r\n",
    );
    assert_eq!(r.status, 200);
    let health = get(gw.admin, "/healthz", "");
    assert_eq!(health.status, 200);
    assert_eq!(get(gw.admin, "/readyz", "").status, 200);
    let metrics = String::from_utf8_lossy(&get(gw.admin, "/metrics", "").body).into_owned();
    assert!(
        metrics.contains("http_server_request_duration_seconds_count{http_request_method=\"GET\",http_route=\"/items/{id}\",http_response_status_code=\"200\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE http_server_active_requests gauge"));
    // The access log line is written when the response body ends.
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        if let Some(l) = gw
            .log_text()
            .lines()
            .find(|l| l.contains("\"log-me\""))
            .map(str::to_string)
        {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "no access log line: {}",
            gw.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let v: serde_json::Value = serde_json::from_str(&line).expect("the access log is JSON");
    assert_eq!(v["routeKey"], "GET /items/{id}");
    assert_eq!(v["httpMethod"], "GET");
    assert_eq!(v["status"], 200);
    assert_eq!(v["ip"], "127.0.0.1");
    assert_eq!(v["stage"], "dev");
    assert_eq!(v["userAgent"], "e2e");
    assert!(v["responseLength"].as_u64().unwrap_or(0) > 10);
    assert!(v["integrationLatency"].is_u64());
    assert!(v["responseLatency"].is_u64());
    assert!(v["requestTime"].as_str().is_some_and(|t| t.ends_with('Z')));
}

#[test]
fn start_up_errors_name_what_is_missing() {
    let bin = build("tests/fixtures/gateway/proxy.yaml");
    let out = Command::new(&bin)
        .env_remove("UPSTREAM_PORT")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("UPSTREAM_PORT"), "{err}");
    let out = Command::new(&bin)
        .args(["--stage", "broken"])
        .env("UPSTREAM_PORT", "1")
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&out.stderr).contains("SURELY_UNSET_GWGEN_VAR"));
    let out = Command::new(&bin)
        .args(["--stage", "qa"])
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&out.stderr).contains("dev, broken"));
    let out = Command::new(&bin)
        .args(["--listen", "not-an-address"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let help = Command::new(&bin).arg("--help").output().expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--listen",
        "--stage",
        "--admin-listen",
        "GATEWAY_LISTEN",
        "GATEWAY_STAGE",
    ] {
        assert!(help.contains(flag), "{help}");
    }
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_0() {
    let (mut gw, _up) = proxy_gateway();
    let port = gw.port;
    let in_flight = std::thread::spawn(move || get(port, "/drain", ""));
    std::thread::sleep(Duration::from_millis(250));
    gw.terminate();
    let r = in_flight.join().expect("the request thread");
    assert_eq!(r.status, 200, "the in-flight request completes");
    assert_eq!(r.json()["slept"], 800);
    assert_eq!(
        gw.wait(Duration::from_secs(10)),
        Some(0),
        "{}",
        gw.log_text()
    );
}

/// Each way of running on cores (`GWGEN_RUNTIME`) serves concurrent clients, counts every
/// request in `/metrics` whichever thread served it, and drains on SIGTERM.
#[test]
fn every_runtime_mode_serves_counts_and_drains() {
    let upstream = Upstream::start();
    for mode in ["current_thread", "multi_thread", "per_core"] {
        let mut gw = proxy_gateway_in(mode, &upstream);
        let port = gw.port;
        let clients: Vec<_> = (0..8)
            .map(|c| {
                std::thread::spawn(move || {
                    (0..10)
                        .map(|n| get(port, &format!("/echo/{c}-{n}"), "").status)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for c in clients {
            assert!(
                c.join().expect("client").iter().all(|s| *s == 200),
                "{mode}"
            );
        }
        let metrics = String::from_utf8_lossy(&get(gw.admin, "/metrics", "").body).into_owned();
        let counted = metrics
            .lines()
            .find(|l| {
                l.starts_with("http_server_request_duration_seconds_count{")
                    && l.contains("http_route=\"/echo/{rest}\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string);
        assert_eq!(counted.as_deref(), Some("80"), "{mode}: {metrics}");
        if mode == "per_core" {
            // A worker thread a core, each with its own listener.
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let names: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", gw.child.id()))
                .expect("tasks")
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|n| n.starts_with("gwgen-worker-"))
                .collect();
            assert_eq!(names.len(), cores, "{names:?}");
        }
        let in_flight = std::thread::spawn(move || get(port, "/drain", ""));
        std::thread::sleep(Duration::from_millis(250));
        gw.terminate();
        let r = in_flight.join().expect("the request thread");
        assert_eq!(r.status, 200, "{mode}: the in-flight request completes");
        assert_eq!(
            gw.wait(Duration::from_secs(10)),
            Some(0),
            "{mode}: {}",
            gw.log_text()
        );
    }
}

/// A second gateway on a port the first holds fails to start, whatever the runtime mode: the
/// per-core listeners' `SO_REUSEPORT` never lets two processes split one port's connections.
#[test]
fn a_port_in_use_is_refused_not_shared() {
    let bin = build("specs/petstore.yaml");
    for mode in ["per_core", "multi_thread"] {
        let first = Running::start(&bin, &[], &[("GWGEN_RUNTIME", mode.to_string())]);
        let out = Command::new(&bin)
            .args(["--listen", &format!("127.0.0.1:{}", first.port)])
            .env("GWGEN_RUNTIME", "per_core")
            .output()
            .expect("runs");
        let log = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{mode}: {log}");
        assert!(log.contains("in use"), "{mode}: {log}");
        assert_eq!(get(first.port, "/pets", "").status, 200, "{mode}");
    }
    // A mode the gateway does not know stops it at start, with the command-line exit code.
    let out = Command::new(&bin)
        .args(["--listen", "127.0.0.1:0"])
        .env("GWGEN_RUNTIME", "fastest")
        .output()
        .expect("runs");
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(log.contains("GWGEN_RUNTIME"), "{log}");
}

#[test]
fn hostile_spec_generates_a_crate_where_no_spec_text_is_code() {
    let bin = build("tests/fixtures/gateway/hostile.yaml");
    let gw = Running::start(&bin, &[], &[]);
    let r = get(gw.port, "/type/a/b", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["café"], "日本語");
    // The hostile transform's text is data: its literal text and the value it reads.
    let id = r.header("x-request-id").expect("request id");
    assert_eq!(r.header("x-c"), Some(format!("*/ \"# }}}} {id}").as_str()));
    let r = send(gw.port, "POST /%C3%BCn%C3%AFc%C3%B8d%C3%A9/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".as_bytes());
    assert_eq!(r.status, 201);
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        "line one\nline two \"quoted\" \\ backslash"
    );
    // The hostile schema validates as written: its names and patterns are data.
    let body = r#"{"\"=> {} } fn injected_prop() { //": "\")]; fn x() {}", "*/ fn c() {} /*": {"\"}; fn k() {}": [1, "x\"y"]}}"#;
    let post = |body: &str| {
        send(
            gw.port,
            format!("POST /schemas HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes(),
        )
    };
    let r = post(body);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    let errors = r.json()["errors"].clone();
    assert_eq!(errors.as_array().map(Vec::len), Some(1), "{errors}");
    assert_eq!(errors[0]["keyword"], "required");
    assert!(errors[0]["message"]
        .as_str()
        .unwrap_or("")
        .contains("fn injected_required()"));
    let ok = r#"{"\"); fn injected_required() {} //": 1, "*/ fn c() {} /*": "\"]; fn injected_enum() {}"}"#;
    assert_eq!(post(ok).status, 204);
    let bad =
        r#"{"\"); fn injected_required() {} //": 1, "\"=> {} } fn injected_prop() { //": "x"}"#;
    let r = post(bad);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errors"][0]["keyword"], "pattern");
    // Names in a schema checked as the body is read are data too.
    let post_streamed = |body: &str| {
        send(
            gw.port,
            format!("POST /schemas/streamed HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes(),
        )
    };
    let ok = r#"{"}]; fn injected_stream() {} //": [{"*/ fn z() {} /*": 1}], "\"=> false, } fn injected_arm() { //": "x"}"#;
    assert_eq!(post_streamed(ok).status, 204);
    let r = post_streamed(r#"{"}]; fn injected_stream() {} //": [{"*/ fn z() {} /*": "1"}]}"#);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errors"][0]["keyword"], "type");
    assert_eq!(
        r.json()["errors"][0]["pointer"],
        "/}]; fn injected_stream() {} ~1~1/0/*~1 fn z() {} ~1*"
    );
    let r = post_streamed(r#"{"}]; fn injected_stream() {} //": [], "injected_stream": 1}"#);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errors"][0]["keyword"], "additionalProperties");
    // Every function the generated code defines is one the generator chose.
    let (krate, _) = gwgen::generate_file(
        repo().join("tests/fixtures/gateway/hostile.yaml"),
        &Default::default(),
    )
    .expect("generates");
    for (file, expected) in [
        ("src/lib.rs", vec!["app", "gateway", "route"]),
        ("src/main.rs", vec!["main"]),
    ] {
        let parsed = syn::parse_file(&krate.files[file]).expect("valid Rust");
        let mut fns: Vec<String> = parsed
            .items
            .iter()
            .filter_map(|i| match i {
                syn::Item::Fn(f) => Some(f.sig.ident.to_string()),
                _ => None,
            })
            .collect();
        // The route tree's node functions are numbered by the generator: n0, n1, …
        fns.retain(|f| {
            !(f.starts_with('n') && f.len() > 1 && f[1..].bytes().all(|b| b.is_ascii_digit()))
        });
        fns.sort();
        assert_eq!(fns, expected, "{file}");
        assert!(!parsed
            .items
            .iter()
            .any(|i| matches!(i, syn::Item::Macro(_))));
        // The one module holds the compiled schemas: numbered functions and statics only.
        let positional = |name: &str, prefixes: &[&str]| {
            prefixes.iter().any(|p| {
                name.strip_prefix(p)
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
        };
        for item in &parsed.items {
            let syn::Item::Mod(m) = item else { continue };
            assert_eq!(m.ident, "schemas", "{file}");
            for inner in m.content.as_ref().map(|c| &c.1[..]).unwrap_or(&[]) {
                match inner {
                    syn::Item::Fn(f) => assert!(
                        positional(&f.sig.ident.to_string(), &["q", "r", "qz", "qs"]),
                        "{}",
                        f.sig.ident
                    ),
                    syn::Item::Static(st) => assert!(
                        positional(&st.ident.to_string(), &["QP", "QC", "RP", "RC"]),
                        "{}",
                        st.ident
                    ),
                    syn::Item::Use(_) => {}
                    _ => panic!("unexpected item in the schema module of {file}"),
                }
            }
        }
    }
}

#[test]
fn oversized_headers_are_431() {
    let bin = build("specs/petstore.yaml");
    let gw = Running::start(&bin, &[], &[]);
    let big = "a".repeat(70 * 1024);
    let r = get(gw.port, "/pets", &format!("X-Big: {big}\r\n"));
    assert_eq!(r.status, 431);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
}

#[test]
fn curl_talks_to_the_gateway() {
    // The client users reach for first.
    let bin = build("specs/petstore.yaml");
    let gw = Running::start(&bin, &[], &[]);
    let out = Command::new("curl")
        .args([
            "-sS",
            "-i",
            "--max-time",
            "10",
            &format!("http://127.0.0.1:{}/pets/1", gw.port),
        ])
        .output()
        .expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"name\":\"Rex\""), "{text}");
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PATCH",
            &format!("http://127.0.0.1:{}/pets", gw.port),
        ])
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "405");
}

#[test]
fn unverifiable_schemes_fail_closed() {
    let (gw, upstream) = proxy_gateway();
    let before = upstream.hits.load(std::sync::atomic::Ordering::SeqCst);
    let r = get(gw.port, "/private", "Authorization: Basic dXNlcjpwYXNz\r\n");
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").is_some());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        upstream.hits.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "nothing reached the upstream"
    );
    // Public operations are untouched.
    assert_eq!(get(gw.port, "/echo/open", "").status, 200);
}

/// The operational log: JSON lines with timestamp, level and message; a client's request id
/// cannot forge a field; `RUST_LOG` filters it.
#[test]
fn operational_log_is_json_that_clients_cannot_forge_and_rust_log_filters() {
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/proxy.yaml");
    let gw = Running::start(&bin, &[], &[("UPSTREAM_PORT", upstream.port.to_string())]);
    // An upstream error logged with a request id that tries to close the string and add fields.
    let forged = r#"x","level":"ERROR","message":"forged"#;
    let r = get(gw.port, "/down", &format!("x-request-id: {forged}\r\n"));
    assert_eq!(r.status, 502);
    let deadline = Instant::now() + Duration::from_secs(5);
    let events: Vec<serde_json::Value> = loop {
        let text = gw.log_text();
        let events: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.get("level").is_some())
            .collect();
        // With a runtime a core, the workers take requests before the main thread logs
        // "listening": wait for both lines.
        let logged = |m: &str| events.iter().any(|e| e["message"] == m);
        if logged("upstream error") && logged("listening") {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "no upstream error or listening event logged: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let listening = events
        .iter()
        .find(|e| e["message"] == "listening")
        .expect("a listening event");
    assert_eq!(listening["level"], "INFO");
    assert!(listening["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(listening["listen"], format!("127.0.0.1:{}", gw.port));
    let error = events
        .iter()
        .find(|e| e["message"] == "upstream error")
        .expect("an upstream error event");
    assert_eq!(error["level"], "WARN");
    // An id outside the safe charset is replaced, so it never reaches a log at all.
    let id = error["request_id"].as_str().expect("a string id");
    assert!(id != forged && id.len() == 36, "{id}");
    assert!(!events
        .iter()
        .any(|e| e["message"] == "forged" || e["level"] == "ERROR"));
    drop(gw);

    // RUST_LOG=warn: no info events, warnings still.
    let gw = Running::start(
        &bin,
        &[],
        &[
            ("UPSTREAM_PORT", upstream.port.to_string()),
            ("RUST_LOG", "warn".to_string()),
        ],
    );
    assert_eq!(get(gw.port, "/down", "").status, 502);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gw.log_text().contains("upstream error") {
        assert!(Instant::now() < deadline, "no warning: {}", gw.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !gw.log_text().contains("\"listening\""),
        "{}",
        gw.log_text()
    );
}

/// A stand-in OpenTelemetry collector: accepts OTLP/HTTP POSTs and keeps their JSON bodies.
struct Collector {
    port: u16,
    bodies: std::sync::Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Collector {
    fn start() -> Collector {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind collector");
        let port = listener.local_addr().expect("addr").port();
        let bodies = std::sync::Arc::new(Mutex::new(Vec::new()));
        let kept = bodies.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut reader = BufReader::new(conn);
                let (mut length, mut line, mut head) = (0usize, String::new(), String::new());
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                    line.clear();
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                assert!(head.starts_with("POST /v1/traces "), "{head}");
                assert!(head
                    .to_ascii_lowercase()
                    .contains("content-type: application/json"));
                if let Ok(v) = serde_json::from_slice(&body) {
                    kept.lock().unwrap_or_else(|e| e.into_inner()).push(v);
                }
                let _ = reader.get_mut().write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
                );
            }
        });
        Collector { port, bodies }
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<serde_json::Value> {
        let bodies = self.bodies.lock().unwrap_or_else(|e| e.into_inner());
        bodies
            .iter()
            .flat_map(|b| b["resourceSpans"].as_array().cloned().unwrap_or_default())
            .flat_map(|rs| rs["scopeSpans"].as_array().cloned().unwrap_or_default())
            .flat_map(|ss| ss["spans"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

fn attribute<'a>(span: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

/// W3C `traceparent` is continued and propagated, every request is one span named after its
/// route sent to an OTLP collector, and the access log carries the trace id.
#[test]
fn traces_continue_the_clients_traceparent_and_export_a_span_per_request() {
    let upstream = Upstream::start();
    let collector = Collector::start();
    let bin = build("tests/fixtures/gateway/proxy.yaml");
    let gw = Running::start(
        &bin,
        &[],
        &[
            ("UPSTREAM_PORT", upstream.port.to_string()),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{}", collector.port),
            ),
            ("OTEL_SERVICE_NAME", "orders-edge".to_string()),
        ],
    );
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let r = get(
        gw.port,
        "/echo/traced",
        &format!("traceparent: 00-{trace}-{client_span}-01\r\n"),
    );
    assert_eq!(r.status, 200);
    // The upstream gets the same trace, with the gateway's span as the parent.
    let sent = r.json()["headers"]["traceparent"]
        .as_str()
        .expect("traceparent upstream")
        .to_string();
    assert!(sent.starts_with(&format!("00-{trace}-")), "{sent}");
    assert!(sent.ends_with("-01"), "{sent}");
    let gateway_span = sent[36..52].to_string();
    assert_ne!(gateway_span, client_span);
    // A request with no traceparent starts a new trace; a broken one too.
    let r = get(gw.port, "/echo/fresh", "traceparent: 00-XYZ-broken-01\r\n");
    let fresh = r.json()["headers"]["traceparent"]
        .as_str()
        .expect("traceparent upstream")
        .to_string();
    assert!(!fresh.contains(trace) && fresh.len() == 55, "{fresh}");
    assert_eq!(get(gw.port, "/nowhere", "").status, 404);

    let deadline = Instant::now() + Duration::from_secs(10);
    let spans = loop {
        let spans = collector.spans();
        if spans.len() >= 3 {
            break spans;
        }
        assert!(Instant::now() < deadline, "spans: {spans:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let bodies = collector
        .bodies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let service = &bodies[0]["resourceSpans"][0]["resource"]["attributes"][0];
    assert_eq!(service["key"], "service.name");
    assert_eq!(service["value"]["stringValue"], "orders-edge");
    let traced = spans
        .iter()
        .find(|s| s["traceId"] == trace)
        .expect("the continued trace's span");
    assert_eq!(traced["spanId"], gateway_span);
    assert_eq!(traced["parentSpanId"], client_span);
    assert_eq!(traced["name"], "GET /echo/{rest}");
    assert_eq!(traced["kind"], 2);
    assert_eq!(
        attribute(traced, "http.route").expect("route")["stringValue"],
        "/echo/{rest}"
    );
    assert_eq!(
        attribute(traced, "http.response.status_code").expect("status")["intValue"],
        "200"
    );
    let start: u128 = traced["startTimeUnixNano"]
        .as_str()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    let end: u128 = traced["endTimeUnixNano"]
        .as_str()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    assert!(start > 0 && end >= start);
    let fresh_span = spans
        .iter()
        .find(|s| fresh.contains(s["traceId"].as_str().unwrap_or("-")))
        .expect("the new trace's span");
    assert!(fresh_span.get("parentSpanId").is_none());
    let unrouted = spans
        .iter()
        .find(|s| s["name"] == "GET")
        .expect("the 404's span");
    assert!(attribute(unrouted, "http.route").is_none());

    // The access log names the trace.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let logged = gw.log_text().lines().any(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|v| v["traceId"] == trace && v["path"] == "/echo/traced")
        });
        if logged {
            break;
        }
        assert!(Instant::now() < deadline, "{}", gw.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Without an exporter the gateway passes `traceparent` through untouched, and logs its trace.
#[test]
fn without_an_exporter_traceparent_passes_through_and_is_logged() {
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/proxy.yaml");
    let gw = Running::start(&bin, &[], &[("UPSTREAM_PORT", upstream.port.to_string())]);
    let value = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r = get(gw.port, "/echo/plain", &format!("traceparent: {value}\r\n"));
    assert_eq!(r.json()["headers"]["traceparent"], value);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gw
        .log_text()
        .contains("\"traceId\":\"0af7651916cd43dd8448eb211c80319c\"")
    {
        assert!(Instant::now() < deadline, "{}", gw.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    // An exporter the gateway cannot honour stops the start with a reason.
    let out = Command::new(&bin)
        .env("UPSTREAM_PORT", "1")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only http://"));
}
