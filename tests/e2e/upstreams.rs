//! Several upstream targets (`tests/fixtures/gateway/upstreams.yaml`): three real upstream
//! processes (`tests/tools/counting_upstream.py`), one killed under load and restarted; a sick
//! target, a slow one with a cap, targets where nothing listens. Each upstream logs every request
//! it got (by request id) to a file, so what reached a killed one is still known.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::gateway::{build, Running};
use crate::net::{get, send, Reply};
use crate::support::Killed;

struct Upstream {
    _child: Killed,
    port: u16,
    log: PathBuf,
}

impl Upstream {
    fn start(dir: &Path, name: &str, port: u16, mode: &str) -> Upstream {
        let file = dir.join(format!("{name}.port"));
        let _ = std::fs::remove_file(&file);
        let log = dir.join(format!("{name}.log"));
        let child = std::process::Command::new("python3")
            .arg(crate::support::repo().join("tests/tools/counting_upstream.py"))
            .arg(&file)
            .arg(name)
            .arg(&log)
            .arg(port.to_string())
            .arg(mode)
            .spawn()
            .expect("python3 runs");
        let port = crate::support::port_from_file(&file, name);
        Upstream {
            _child: Killed(child),
            port,
            log,
        }
    }

    /// The request ids of the requests of `method` that reached it.
    fn seen(&self, method: &str) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix(method).map(|id| id.trim().to_string()))
            .collect()
    }
}

fn name(r: &Reply) -> String {
    r.json()["name"].as_str().unwrap_or_default().to_string()
}

fn post(port: u16, path: &str) -> Reply {
    send(
        port,
        format!("POST {path} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}").as_bytes(),
    )
}

/// Waits until `f` holds, for at most `limit`.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn several_targets_balance_eject_retry_and_come_back() {
    let dir = crate::support::scratch("upstreams");
    let a = Upstream::start(&dir, "a", 0, "ok");
    let b = Upstream::start(&dir, "b", 0, "ok");
    let c = Upstream::start(&dir, "c", 0, "ok");
    let sick = Upstream::start(&dir, "sick", 0, "sick");
    let slow = Upstream::start(&dir, "slow", 0, "slow");
    let dead = crate::net::free_port();
    let dead2 = crate::net::free_port();
    let bin = build("tests/fixtures/gateway/upstreams.yaml");
    let gw = Running::start(
        &bin,
        &[],
        &[
            ("A_PORT", a.port.to_string()),
            ("B_PORT", b.port.to_string()),
            ("C_PORT", c.port.to_string()),
            ("SICK_PORT", sick.port.to_string()),
            ("SLOW_PORT", slow.port.to_string()),
            ("DEAD_PORT", dead.to_string()),
            ("DEAD2_PORT", dead2.to_string()),
        ],
    );
    let port = gw.port;

    // Round robin over three: each gets its turn.
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..30 {
        let r = get(port, "/svc", "");
        assert_eq!(r.status, 200, "{}", gw.log_text());
        *counts.entry(name(&r)).or_insert(0) += 1;
    }
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        vec![10, 10, 10],
        "{counts:?}"
    );
    // Weights 3 and 1.
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..40 {
        *counts.entry(name(&get(port, "/weighted", ""))).or_insert(0) += 1;
    }
    assert_eq!(counts.get("a"), Some(&30), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&10), "{counts:?}");

    // C is killed under load: no GET fails (retried on another target), no POST reaches two
    // targets, and C is taken out.
    let c_port = c.port;
    let (gets, posts) = std::thread::scope(|s| {
        let load = s.spawn(|| {
            let mut gets = Vec::new();
            let mut posts = Vec::new();
            for i in 0..300 {
                if i % 5 == 0 {
                    posts.push(post(port, "/svc").status);
                } else {
                    gets.push(get(port, "/svc", "").status);
                }
            }
            (gets, posts)
        });
        std::thread::sleep(Duration::from_millis(150));
        drop(c);
        load.join().expect("load")
    });
    assert!(
        gets.iter().all(|&s| s == 200),
        "every GET answered: {gets:?}"
    );
    assert!(posts.iter().all(|&s| s == 201 || s == 502), "{posts:?}");
    let mut ids: Vec<String> = [&a, &b].iter().flat_map(|u| u.seen("POST")).collect();
    ids.extend(
        std::fs::read_to_string(dir.join("c.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("POST").map(|id| id.trim().to_string())),
    );
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "a POST reached two targets");
    assert_eq!(
        posts.iter().filter(|&&s| s == 201).count(),
        total,
        "every POST answered 201 reached exactly one target"
    );
    // Until the checks caught it, GETs that found C dead went to another target.
    assert!(gw
        .log_text()
        .contains("retrying on another upstream target"));
    assert!(
        gw.log_text().contains("failed its health checks"),
        "{}",
        gw.log_text()
    );
    // Taken out: requests now go to A and B only.
    for _ in 0..10 {
        let r = get(port, "/svc", "");
        assert!(r.status == 200 && name(&r) != "c");
    }
    // C comes back on its port: its health checks pass and it takes requests again.
    let c = Upstream::start(&dir, "c", c_port, "ok");
    assert!(
        eventually(Duration::from_secs(5), || {
            (0..6).any(|_| name(&get(port, "/svc", "")) == "c")
        }),
        "C never came back: {}",
        gw.log_text()
    );
    assert!(gw.log_text().contains("passed its health checks"));
    drop(c);

    // A target that answers 503: retried on the other, then ejected and passed over.
    for _ in 0..10 {
        let r = get(port, "/sick", "");
        assert_eq!((r.status, name(&r).as_str()), (200, "a"));
    }
    let reached = sick.seen("GET").len();
    assert!(
        (1..=3).contains(&reached),
        "ejected after 3 failures: {reached}"
    );
    assert!(gw.log_text().contains("ejected an upstream target"));

    // `max_requests: 1`: a second request while one is in flight is 503 at once.
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| get(port, "/capped", ""));
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        let second = get(port, "/capped", "");
        assert!(t.elapsed() < Duration::from_millis(500), "refused at once");
        (first.join().expect("first"), second)
    });
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 503);
    assert_eq!(second.header("retry-after"), Some("1"));
    assert!(String::from_utf8_lossy(&second.body).contains("upstream overloaded"));

    // Every target down: a clear 503 once the checks have seen it.
    assert!(
        eventually(Duration::from_secs(5), || {
            let r = get(port, "/down", "");
            r.status == 503 && String::from_utf8_lossy(&r.body).contains("no healthy upstream")
        }),
        "{}",
        gw.log_text()
    );

    // `retries: 0`: a request on the dead target is not tried again.
    let statuses: Vec<u16> = (0..4).map(|_| get(port, "/noretry", "").status).collect();
    assert!(statuses.contains(&502), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");

    // Per-target metrics.
    let metrics = String::from_utf8_lossy(&get(gw.admin, "/metrics", "").body).into_owned();
    let value = |name: &str, port: u16| -> u64 {
        let series = format!("{name}{{target=\"http://127.0.0.1:{port}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in {metrics}"))
    };
    assert!(value("gwgen_upstream_requests_total", a.port) > 30);
    assert!(value("gwgen_upstream_ejections_total", sick.port) >= 1);
    assert!(value("gwgen_upstream_failures_total", sick.port) >= 3);
    assert!(
        value("gwgen_upstream_retries_total", c_port) >= 1,
        "C's failures were retried"
    );
    assert_eq!(value("gwgen_upstream_up", dead2), 0);
    assert_eq!(value("gwgen_upstream_up", b.port), 1);
    assert!(metrics.contains("gwgen_upstream_request_duration_seconds_count{target="));
}

#[test]
fn server_sent_events_pass_through_as_they_arrive() {
    use std::io::{Read, Write};
    let dir = crate::support::scratch("sse");
    let a = Upstream::start(&dir, "a", 0, "ok");
    let dead = crate::net::free_port().to_string();
    let bin = build("tests/fixtures/gateway/upstreams.yaml");
    let env: Vec<(&str, String)> = [
        "B_PORT",
        "C_PORT",
        "SICK_PORT",
        "SLOW_PORT",
        "DEAD_PORT",
        "DEAD2_PORT",
    ]
    .into_iter()
    .map(|k| (k, dead.clone()))
    .chain([("A_PORT", a.port.to_string())])
    .collect();
    let gw = Running::start(&bin, &[], &env);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", gw.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /events HTTP/1.1\r\nHost: gw.test\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n")
        .expect("write");
    let start = Instant::now();
    let mut seen = String::new();
    let mut arrivals = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        let before = seen.matches("data: ").count();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        for _ in before..seen.matches("data: ").count() {
            arrivals.push(start.elapsed());
        }
    }
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(seen
        .to_ascii_lowercase()
        .contains("content-type: text/event-stream"));
    assert_eq!(arrivals.len(), 6, "{seen}");
    // One at a time, as the upstream sent them: not held back until the end.
    assert!(arrivals[0] < Duration::from_millis(250), "{arrivals:?}");
    for pair in arrivals.windows(2) {
        assert!(
            pair[1] - pair[0] > Duration::from_millis(150),
            "{arrivals:?}"
        );
    }
    // The stream outlives the integration's 1 s timeout, which bounds only the wait for the head.
    assert!(arrivals[5] > Duration::from_millis(1400), "{arrivals:?}");

    // A stream is a request in flight until it ends: with `max_requests: 1`, a second request
    // while the first stream runs is 503; once it has ended, one goes through.
    let port = gw.port;
    let (streamed, during) = std::thread::scope(|s| {
        let first = s.spawn(|| get(port, "/events-capped", ""));
        std::thread::sleep(Duration::from_millis(700));
        let during = get(port, "/events-capped", "");
        (first.join().expect("the stream"), during)
    });
    assert_eq!(streamed.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&streamed.body)
            .matches("data: ")
            .count(),
        6
    );
    assert_eq!(during.status, 503, "the running stream did not count");
    assert_eq!(get(port, "/events-capped", "").status, 200);
}

#[test]
fn client_certificates_and_a_custom_ca_per_integration() {
    let dir = crate::support::scratch("upstream-tls");
    let (ca, cert, key) = crate::auth::certificates(&dir);
    let port_file = dir.join("mtls.port");
    let child = std::process::Command::new("python3")
        .arg(crate::support::repo().join("tests/tools/mtls_upstream.py"))
        .arg(&port_file)
        .args([&cert, &key, &ca])
        .spawn()
        .expect("python3 runs");
    let _upstream = Killed(child);
    let mtls_port = crate::support::port_from_file(&port_file, "mtls_upstream.py").to_string();
    let bin = build("tests/fixtures/gateway/upstream-tls.yaml");
    let env = [
        ("MTLS_PORT", mtls_port),
        ("TLS_CA", ca.display().to_string()),
        ("TLS_CERT", cert.display().to_string()),
        ("TLS_KEY", key.display().to_string()),
        // The system's roots, with no test CA among them.
        ("SSL_CERT_FILE", "/nonexistent".to_string()),
    ];
    let gw = Running::start(&bin, &[], &env);
    let r = get(gw.port, "/mtls", "");
    assert_eq!(r.status, 200, "{}", gw.log_text());
    assert_eq!(
        r.json()["client"],
        "127.0.0.1",
        "the gateway presented its certificate"
    );
    assert_eq!(get(gw.port, "/no-client-cert", "").status, 502);
    assert_eq!(get(gw.port, "/untrusted", "").status, 502);
    drop(gw);
    // A certificate file that is not there is a start-up error that names it.
    let mut env = env.to_vec();
    env[2].1 = dir.join("missing.pem").display().to_string();
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(["--listen", "127.0.0.1:0"]);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the gateway runs");
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("missing.pem"), "{text}");
}
