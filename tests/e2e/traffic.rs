//! Throttling, quotas and the response cache, end to end: in memory on one gateway
//! (`specs/traffic.yaml`), and in a real `redis-server` shared by two gateway instances
//! (`tests/fixtures/gateway/traffic-redis*.yaml`), with Redis killed and restarted under load.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::auth::add_key;
use crate::gateway::{build, Running};
use crate::net::{get, send, Redis, Reply, Upstream};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gwgen-traffic-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn metrics(gw: &Running) -> String {
    String::from_utf8_lossy(&get(gw.admin, "/metrics", "").body).into_owned()
}

/// The value of one metric line (`name{labels}`), 0 when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.header(name).unwrap_or("")
}

/// `GET` with curl from a chosen loopback address (`--interface`), so the gateway sees
/// another TCP peer; returns the status.
fn curl_from(source: &str, port: u16, path: &str, headers: &[&str]) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
    ])
    .args(["--interface", source]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl is installed");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Sends requests until the first 429 (at most `max`); returns how many passed and the 429.
fn until_throttled(port: u16, path: &str, extra: &str, max: usize) -> (usize, Reply, Duration) {
    let started = Instant::now();
    for n in 0..max {
        let r = get(port, path, extra);
        match r.status {
            200 => continue,
            429 => return (n, r, started.elapsed()),
            s => panic!(
                "{path}: unexpected {s}: {}",
                String::from_utf8_lossy(&r.body)
            ),
        }
    }
    panic!("{path}: no 429 after {max} requests");
}

fn traffic_gateway(dir: &Path) -> (Running, Upstream, PathBuf, PathBuf) {
    let upstream = Upstream::start();
    let bin = build("specs/traffic.yaml");
    let keys = dir.join("keys.txt");
    std::fs::write(&keys, "").expect("keys file");
    let gw = Running::start(
        &bin,
        &[],
        &[
            ("UPSTREAM", format!("http://127.0.0.1:{}", upstream.port)),
            ("API_KEYS_FILE", keys.display().to_string()),
        ],
    );
    (gw, upstream, bin, keys)
}

fn reload_keys(gw: &Running, bin: &Path, keys: &Path, plans: &[&str]) -> Vec<String> {
    let added: Vec<String> = plans.iter().map(|p| add_key(bin, p, keys)).collect();
    let status = Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let last = added.last().expect("a key");
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(gw.port, "/plan", &format!("X-Api-Key: {last}\r\n")).status == 401 {
        assert!(Instant::now() < deadline, "keys not reloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    added
}

#[test]
fn buckets_refill_per_route_per_client_and_per_plan_with_quotas() {
    let dir = temp_dir("throttle");
    let (gw, upstream, bin, keys) = traffic_gateway(&dir);

    // A route bucket of 5 that refills at 1/s: the burst passes, then 429 with the headers.
    let first = get(gw.port, "/burst", "");
    assert_eq!(first.status, 200);
    assert_eq!(header(&first, "ratelimit-limit"), "5");
    assert_eq!(header(&first, "ratelimit-remaining"), "4");
    let hits_before = upstream.hits.load(Ordering::SeqCst);
    let (passed, refused, took) = until_throttled(gw.port, "/burst", "", 40);
    // 4 left in the bucket, plus what refilled while the loop ran.
    let refilled = took.as_secs() as usize;
    assert!(
        (4..=4 + refilled + 1).contains(&passed),
        "{passed} passed in {took:?}"
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(header(&refused, "ratelimit-remaining"), "0");
    assert_eq!(header(&refused, "ratelimit-limit"), "5");
    assert!(header(&refused, "content-type").starts_with("application/problem+json"));
    assert_eq!(refused.json()["status"], 429);
    // Refused requests never reached the upstream.
    assert_eq!(upstream.hits.load(Ordering::SeqCst), hits_before + passed);
    // One token a second.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(gw.port, "/burst", "").status, 200);
    assert_eq!(get(gw.port, "/burst", "").status, 429);

    // Per client address: `X-Forwarded-For` from an untrusted peer changes nothing.
    for n in 0..2 {
        let spoof = format!("X-Forwarded-For: 10.9.9.{n}\r\n");
        assert_eq!(get(gw.port, "/per-client", &spoof).status, 200);
    }
    assert_eq!(
        get(gw.port, "/per-client", "X-Forwarded-For: 10.9.9.7\r\n").status,
        429
    );
    // From the trusted proxy (127.0.0.2), each forwarded client has its own bucket.
    for client in ["10.0.0.1", "10.0.0.2"] {
        let xff = format!("X-Forwarded-For: {client}");
        assert_eq!(curl_from("127.0.0.2", gw.port, "/per-client", &[&xff]), 200);
        assert_eq!(curl_from("127.0.0.2", gw.port, "/per-client", &[&xff]), 200);
        assert_eq!(curl_from("127.0.0.2", gw.port, "/per-client", &[&xff]), 429);
    }
    // The access log (written in batches) names the forwarded client.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gw.log_text().contains("\"ip\":\"10.0.0.2\"") {
        assert!(Instant::now() < deadline, "{}", gw.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }

    // Usage plans: each key has its own bucket (free: 3, 1/s) and quota (gold: 5 a day).
    let added = reload_keys(&gw, &bin, &keys, &["free", "free", "gold", "gold"]);
    // `reload_keys` spent one request of the last gold key.
    let (free_a, free_b, gold_a, gold_b) = (&added[0], &added[1], &added[2], &added[3]);
    let with = |k: &str| format!("X-Api-Key: {k}\r\n");
    let (passed, refused, took) = until_throttled(gw.port, "/plan", &with(free_a), 20);
    assert!(
        (3..=3 + took.as_secs() as usize + 1).contains(&passed),
        "{passed} in {took:?}"
    );
    assert_eq!(header(&refused, "ratelimit-limit"), "3");
    assert_eq!(get(gw.port, "/plan", &with(free_b)).status, 200);
    for n in 0..5 {
        let r = get(gw.port, "/plan", &with(gold_a));
        assert_eq!(r.status, 200, "request {n}");
        assert_eq!(
            header(&r, "ratelimit-limit"),
            "5",
            "the quota is the tightest"
        );
        assert_eq!(header(&r, "ratelimit-remaining"), (4 - n).to_string());
    }
    let over = get(gw.port, "/plan", &with(gold_a));
    assert_eq!(over.status, 429);
    // Reshaped by the spec's `gateway_responses.QUOTA_EXCEEDED`.
    assert_eq!(header(&over, "x-quota"), "exceeded");
    assert_eq!(header(&over, "content-type"), "application/json");
    assert_eq!(
        over.json(),
        serde_json::json!({
            "message": "the usage plan's quota for this period is used up",
            "type": "QUOTA_EXCEEDED"
        })
    );
    let retry: u64 = header(&over, "retry-after").parse().expect("Retry-After");
    assert!((1..=86_400).contains(&retry), "until midnight UTC: {retry}");
    // Another key of the plan has its own quota.
    assert_eq!(get(gw.port, "/plan", &with(gold_b)).status, 200);

    let m = metrics(&gw);
    assert!(
        metric(
            &m,
            "gwgen_throttled_total{http_route=\"/burst\",level=\"route\"}"
        ) >= 2.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "gwgen_throttled_total{http_route=\"/per-client\",level=\"route\"}"
        ) >= 3.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "gwgen_throttled_total{http_route=\"/plan\",level=\"plan\"}"
        ) >= 1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "gwgen_throttled_total{http_route=\"/plan\",level=\"quota\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "gwgen_quota_used_total{plan=\"gold\"}"),
        7.0,
        "{m}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A bucket with a large burst is drawn on in batches by each serving thread (one per core):
/// clients on many connections, spread by the kernel over the threads, get the burst and no
/// more, as from one exact bucket.
#[test]
fn a_large_bucket_drawn_on_from_every_core_admits_its_burst_and_no_more() {
    let dir = temp_dir("bulk");
    let (gw, _upstream, _bin, _keys) = traffic_gateway(&dir);
    let port = gw.port;
    let started = Instant::now();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut counts = (0usize, 0usize);
                for _ in 0..100 {
                    match get(port, "/bulk", "").status {
                        200 => counts.0 += 1,
                        429 => counts.1 += 1,
                        other => panic!("status {other}"),
                    }
                }
                counts
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for c in clients {
        let (a, r) = c.join().expect("client");
        ok += a;
        refused += r;
    }
    // One token a second refills while the clients run; a thread's reserve may keep at most a
    // batch less one (600 / 256 = 2 tokens a batch) when the clients stop.
    let refill = started.elapsed().as_secs() as usize + 1;
    let stranded = 16;
    assert!(
        (600 - stranded..=600 + refill).contains(&ok),
        "{ok} admitted in {:?}",
        started.elapsed()
    );
    assert_eq!(ok + refused, 800);
}

#[test]
fn the_cache_hits_expires_separates_callers_and_coalesces_misses() {
    let dir = temp_dir("cache");
    let (gw, upstream, bin, keys) = traffic_gateway(&dir);
    let hits = || upstream.hits.load(Ordering::SeqCst);

    // Miss, then hit; the key is the item and the language.
    let miss = get(gw.port, "/catalog/1?lang=fr", "");
    assert_eq!(miss.status, 200);
    assert_eq!(header(&miss, "x-cache"), "Miss");
    let before = hits();
    let hit = get(gw.port, "/catalog/1?lang=fr", "");
    assert_eq!(header(&hit, "x-cache"), "Hit");
    assert_eq!(hit.body, miss.body);
    assert!(hit.header("age").is_some());
    assert_eq!(hits(), before, "a hit never reaches the upstream");
    assert_eq!(
        header(&get(gw.port, "/catalog/1?lang=en", ""), "x-cache"),
        "Miss"
    );
    assert_eq!(
        header(&get(gw.port, "/catalog/2?lang=fr", ""), "x-cache"),
        "Miss"
    );
    // HEAD is cached on its own.
    let head = send(
        gw.port,
        b"HEAD /catalog/1?lang=fr HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(head.status, 200);
    assert_eq!(header(&head, "x-cache"), "Miss");
    // An anonymous caller cannot refresh: `max-age=0` is ignored.
    let before = hits();
    let r = get(
        gw.port,
        "/catalog/1?lang=fr",
        "Cache-Control: max-age=0\r\n",
    );
    assert_eq!(header(&r, "x-cache"), "Hit");
    assert_eq!(hits(), before);
    // A request with credentials on a public route goes past the cache.
    let r = get(
        gw.port,
        "/catalog/1?lang=fr",
        "Authorization: Bearer someone\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-cache"), None);
    assert_eq!(hits(), before + 1);
    // So does one with a cookie, or one asking for a range.
    for extra in ["Cookie: session=abc\r\n", "Range: bytes=0-9\r\n"] {
        let r = get(gw.port, "/catalog/1?lang=fr", extra);
        assert_eq!(r.header("x-cache"), None, "{extra}");
    }
    assert_eq!(hits(), before + 3);
    // The key holds every path value and query parameter: undeclared ones too, in any order.
    let a = get(gw.port, "/catalog/7?lang=fr&page=1&size=2", "");
    assert_eq!(header(&a, "x-cache"), "Miss");
    let b = get(gw.port, "/catalog/7?size=2&lang=fr&page=1", "");
    assert_eq!(header(&b, "x-cache"), "Hit");
    let c = get(gw.port, "/catalog/7?lang=fr&page=2&size=2", "");
    assert_eq!(
        header(&c, "x-cache"),
        "Miss",
        "another page is another answer"
    );
    assert!(String::from_utf8_lossy(&c.body).contains("page=2"));
    // The normalised path: another spelling of the same item hits.
    assert_eq!(
        header(
            &get(gw.port, "//catalog/./7/?lang=fr&page=1&size=2", ""),
            "x-cache"
        ),
        "Hit"
    );
    let before = hits();
    // POST is never cached.
    for _ in 0..2 {
        let r = send(
            gw.port,
            b"POST /catalog/1 HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-cache"), None);
    }
    assert_eq!(hits(), before + 2);
    // Entries expire after their ttl (2 s).
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(
        header(&get(gw.port, "/catalog/1?lang=fr", ""), "x-cache"),
        "Miss"
    );

    // `Vary` is honoured.
    let fr = get(gw.port, "/vary", "Accept-Language: fr\r\n");
    assert_eq!(header(&fr, "x-cache"), "Miss");
    assert_eq!(
        header(&get(gw.port, "/vary", "Accept-Language: fr\r\n"), "x-cache"),
        "Hit"
    );
    let de = get(gw.port, "/vary", "Accept-Language: de\r\n");
    assert_eq!(
        header(&de, "x-cache"),
        "Miss",
        "a French answer is not German"
    );
    assert!(String::from_utf8_lossy(&de.body).contains("\"de\""));
    // `Set-Cookie` answers are never stored.
    let before = hits();
    for _ in 0..2 {
        let r = get(gw.port, "/cookie", "");
        assert_ne!(header(&r, "x-cache"), "Hit");
        assert!(r.header("set-cookie").is_some());
    }
    assert_eq!(hits(), before + 2);
    // Nor are answers that say `no-store` or `private`, or that are over 1 MiB (3 MiB here,
    // passed through whole as it streams).
    for path in [
        "/uncached/nostore",
        "/uncached/private",
        "/uncached/big",
        "/uncached/partial",
    ] {
        let before = hits();
        for _ in 0..2 {
            let r = get(gw.port, path, "");
            assert_eq!(
                r.status,
                if path.ends_with("partial") { 206 } else { 200 },
                "{path}"
            );
            assert_ne!(header(&r, "x-cache"), "Hit", "{path}");
            if path.ends_with("big") {
                assert_eq!(r.body.len(), 3 << 20);
            }
        }
        assert_eq!(hits(), before + 2, "{path}");
    }

    // Undeclared query parameters stripped before the upstream: one entry, a clean URL.
    let r = get(gw.port, "/search?q=shoes&utm_source=mail", "");
    assert_eq!(header(&r, "x-cache"), "Miss");
    assert_eq!(r.json()["target"], "/search?q=shoes");
    let r = get(gw.port, "/search?utm_source=ad&q=shoes", "");
    assert_eq!(header(&r, "x-cache"), "Hit");
    assert_eq!(
        header(&get(gw.port, "/search?q=boots", ""), "x-cache"),
        "Miss"
    );

    // Per caller on an authenticated route; a team key may refresh, a free key may not.
    let added: Vec<String> = ["team", "free"]
        .iter()
        .map(|p| add_key(&bin, p, &keys))
        .collect();
    let status = Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let (team, free) = (&added[0], &added[1]);
    let with = |k: &str| format!("X-Api-Key: {k}\r\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    let team_first = loop {
        let r = get(gw.port, "/profile", &with(team));
        if r.status == 200 {
            break r;
        }
        assert!(Instant::now() < deadline, "keys not reloaded");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(header(&team_first, "x-cache"), "Miss");
    assert_eq!(
        header(&get(gw.port, "/profile", &with(team)), "x-cache"),
        "Hit"
    );
    let other = get(gw.port, "/profile", &with(free));
    assert_eq!(
        header(&other, "x-cache"),
        "Miss",
        "never another caller's entry"
    );
    assert!(!String::from_utf8_lossy(&other.body).contains(team.as_str()));
    let before = hits();
    let refreshed = get(
        gw.port,
        "/profile",
        &format!("{}Cache-Control: max-age=0\r\n", with(team)),
    );
    assert_eq!(header(&refreshed, "x-cache"), "Miss");
    assert_eq!(hits(), before + 1);
    let ignored = get(
        gw.port,
        "/profile",
        &format!("{}Cache-Control: max-age=0\r\n", with(free)),
    );
    assert_eq!(
        header(&ignored, "x-cache"),
        "Hit",
        "free keys may not refresh"
    );
    assert_eq!(hits(), before + 1);

    // Optional security: the anonymous and the identified never share an entry.
    let anon = get(gw.port, "/feed", "");
    assert_eq!(header(&anon, "x-cache"), "Miss");
    let known = get(gw.port, "/feed", &with(team));
    assert_eq!(
        header(&known, "x-cache"),
        "Miss",
        "an identified caller is not anonymous"
    );
    assert_eq!(known.json()["headers"]["x-api-key"], team.as_str());
    assert_eq!(
        header(&get(gw.port, "/feed", &with(team)), "x-cache"),
        "Hit"
    );
    let again = get(gw.port, "/feed", "");
    assert_eq!(header(&again, "x-cache"), "Hit");
    assert!(!String::from_utf8_lossy(&again.body).contains(team.as_str()));
    // A key that does not verify is anonymous: the anonymous entry, and the key not forwarded.
    let bogus = get(gw.port, "/feed", "X-Api-Key: gw_bogus\r\n");
    assert_eq!(header(&bogus, "x-cache"), "Hit");
    assert_eq!(bogus.body, anon.body);

    // A stampede of 16 concurrent misses makes one upstream call.
    let before = hits();
    let port = gw.port;
    let threads: Vec<_> = (0..16)
        .map(|_| std::thread::spawn(move || get(port, "/slow", "")))
        .collect();
    let replies: Vec<Reply> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    assert!(replies.iter().all(|r| r.status == 200));
    assert_eq!(
        hits(),
        before + 1,
        "one upstream call for 16 concurrent misses"
    );
    assert_eq!(
        replies
            .iter()
            .filter(|r| header(r, "x-cache") == "Miss")
            .count(),
        1
    );

    let m = metrics(&gw);
    assert!(
        metric(
            &m,
            "gwgen_cache_requests_total{http_route=\"/catalog/{id}\",result=\"hit\"}"
        ) >= 2.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "gwgen_cache_requests_total{http_route=\"/catalog/{id}\",result=\"bypass\"}"
        ) >= 1.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "gwgen_cache_requests_total{http_route=\"/slow\",result=\"hit\"}"
        ),
        15.0,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "gwgen_cache_requests_total{http_route=\"/profile\",result=\"refresh\"}"
        ),
        1.0,
        "{m}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redis_shares_buckets_quotas_and_cache_and_survives_its_failure() {
    let dir = temp_dir("redis");
    let redis = Redis::start(crate::net::free_port());
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/traffic-redis.yaml");
    let keys = dir.join("keys.txt");
    std::fs::write(&keys, "").expect("keys");
    let key = add_key(&bin, "gold", &keys);
    let env = vec![
        ("UPSTREAM_PORT", upstream.port.to_string()),
        ("REDIS_URL", redis.url()),
        ("API_KEYS_FILE", keys.display().to_string()),
    ];
    let a = Running::start(&bin, &[], &env);
    let b = Running::start(&bin, &[], &env);

    // One bucket of 4 for both instances.
    for gw in [&a, &a, &b, &b] {
        assert_eq!(get(gw.port, "/shared", "").status, 200);
    }
    assert_eq!(get(a.port, "/shared", "").status, 429);
    assert_eq!(get(b.port, "/shared", "").status, 429);
    // One cache.
    assert_eq!(header(&get(a.port, "/cached/7", ""), "x-cache"), "Miss");
    assert_eq!(header(&get(b.port, "/cached/7", ""), "x-cache"), "Hit");
    // One quota, counted in Redis (3 a day).
    let with = format!("X-Api-Key: {key}\r\n");
    for gw in [&a, &b, &a] {
        assert_eq!(get(gw.port, "/quota", &with).status, 200);
    }
    assert_eq!(get(b.port, "/quota", &with).status, 429);
    let counted = redis.cli(&["--scan", "--pattern", "gwtest:dev:q:*"]);
    assert_eq!(counted.lines().count(), 1, "{counted}");
    assert_eq!(redis.cli(&["GET", counted.trim()]), "3");
    let ttl: i64 = redis.cli(&["TTL", counted.trim()]).parse().expect("ttl");
    assert!(
        (1..=86_400).contains(&ttl),
        "expires at the end of the day: {ttl}"
    );

    // Redis killed while requests flow: under `local`, no 5xx.
    let port = redis.port;
    let (pa, pb) = (a.port, b.port);
    let flow = std::thread::spawn(move || {
        let mut statuses = Vec::new();
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until && statuses.len() < 3000 {
            statuses.push(get(pa, "/flow", "").status);
            statuses.push(get(pb, "/cached/8", "").status);
        }
        statuses
    });
    std::thread::sleep(Duration::from_millis(500));
    drop(redis);
    let statuses = flow.join().expect("flow");
    assert!(statuses.len() > 20);
    assert!(
        statuses.iter().all(|s| *s == 200),
        "no 5xx without Redis: {:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    assert!(
        a.log_text().contains("Redis state is unavailable"),
        "{}",
        a.log_text()
    );
    let m = metrics(&a);
    assert!(metric(&m, "gwgen_state_errors_total") >= 1.0, "{m}");
    assert_eq!(metric(&m, "gwgen_state_degraded"), 1.0, "{m}");

    // Redis back: shared limits come back without a restart, within 2 s, with no request
    // arriving to notice (only the admin listener is asked).
    let redis = Redis::start(port);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if metric(&metrics(&a), "gwgen_state_degraded") == 0.0
            && metric(&metrics(&b), "gwgen_state_degraded") == 0.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", a.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(a.log_text().contains("Redis state answers again"));
    for gw in [&b, &a, &b, &a] {
        assert_eq!(get(gw.port, "/shared", "").status, 200);
    }
    assert_eq!(get(a.port, "/shared", "").status, 429);
    assert_eq!(get(b.port, "/shared", "").status, 429);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn on_state_error_deny_refuses_with_503_and_recovers() {
    let redis = Redis::start(crate::net::free_port());
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/traffic-redis-deny.yaml");
    let env = vec![
        ("UPSTREAM_PORT", upstream.port.to_string()),
        ("REDIS_URL", redis.url()),
    ];
    let gw = Running::start(&bin, &[], &env);
    assert_eq!(get(gw.port, "/flow", "").status, 200);
    let port = redis.port;
    drop(redis);
    let hits = upstream.hits.load(Ordering::SeqCst);
    for _ in 0..5 {
        let r = get(gw.port, "/flow", "");
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(upstream.hits.load(Ordering::SeqCst), hits, "nothing passed");
    let _redis = Redis::start(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    while get(gw.port, "/flow", "").status != 200 {
        assert!(Instant::now() < deadline, "no recovery: {}", gw.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
}
