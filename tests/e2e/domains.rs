//! Custom domains, base paths and the stage prefix (`tests/fixtures/gateway/domains.yaml`), with
//! raw requests naming the host and an upstream that says which path it got.

use crate::gateway::{build, Running};
use crate::net::{send, Upstream};

fn ask(port: u16, host: &str, path: &str) -> crate::net::Reply {
    send(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

#[test]
fn domains_base_paths_and_the_stage_prefix() {
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/domains.yaml");
    let gw = Running::start(&bin, &[], &[("UPSTREAM_PORT", upstream.port.to_string())]);
    let port = gw.port;
    // The base path and the stage are taken off before routing: the upstream gets the route's
    // own path.
    for (host, path) in [
        ("api.example.test", "/orders/prod/items/5"),
        ("API.Example.TEST:443", "/orders/prod/items/5"),
        ("api.example.test.", "/orders/prod/items/5?x=1"),
        ("a.tenants.test", "/prod/items/5"),
    ] {
        let r = ask(port, host, path);
        assert_eq!(
            r.status,
            200,
            "{host} {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let target = r.json()["target"].as_str().unwrap_or_default().to_string();
        assert!(
            target.starts_with("/items/5"),
            "{host} {path}: the upstream got {target}"
        );
    }
    // A known host, but not under its base path or the stage: 404. Every spelling of the path
    // is normalised first, so a dot segment cannot climb out of the base path.
    for path in [
        "/prod/items/5",
        "/orders/dev/items/5",
        "/orders/items/5",
        "/ordersx/prod/items/5",
        "/orders/../prod/items/5",
        "/other/../prod/items/5",
    ] {
        let r = ask(port, "api.example.test", path);
        assert_eq!(
            r.status,
            404,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // Hosts not listed, and more than one label under the wildcard: 421.
    for host in [
        "other.test",
        "tenants.test",
        "a.b.tenants.test",
        "api.example.test.evil",
    ] {
        let r = ask(port, host, "/orders/prod/items/5");
        assert_eq!(
            r.status,
            421,
            "{host}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    // The host named in an absolute-form target must agree with `Host`: no reader can be
    // steered by the other one.
    let r = send(
        port,
        b"GET http://other.test/orders/prod/items/5 HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    let r = send(
        port,
        b"GET http://api.example.test/orders/prod/items/5 HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(upstream.hits.load(std::sync::atomic::Ordering::SeqCst), 5);
}
