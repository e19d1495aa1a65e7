//! Real network peers for the gateway tests: an HTTP/1.1 upstream and a raw client, both on
//! loopback, both bounded in time. The client writes bytes as given, so tests control exactly
//! what the gateway receives (`//`, `%2F`, hop-by-hop headers).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

fn read_head<R: BufRead>(r: &mut R) -> Option<(String, HashMap<String, String>)> {
    let mut first = String::new();
    if r.read_line(&mut first).ok()? == 0 {
        return None;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim().to_string();
            headers
                .entry(k)
                .and_modify(|old: &mut String| {
                    old.push_str(", ");
                    old.push_str(&v);
                })
                .or_insert(v);
        }
    }
    Some((first.trim_end().to_string(), headers))
}

fn read_body<R: BufRead>(r: &mut R, headers: &HashMap<String, String>) -> Vec<u8> {
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            if r.read_line(&mut size).unwrap_or(0) == 0 {
                break;
            }
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            if r.read_exact(&mut chunk).is_err() {
                break;
            }
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(len) = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(len, 0);
        let _ = r.read_exact(&mut body);
    }
    body
}

/// Sends `raw` (a whole request) on a new connection and reads the whole response.
pub fn send(port: u16, raw: &[u8]) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the gateway");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(raw).expect("write");
    let mut r = BufReader::new(s);
    read_reply(&mut r, raw.starts_with(b"HEAD ")).expect("a response head")
}

/// Reads one answer (to a `HEAD` request when `head`); `None` when the connection ends first.
pub fn read_reply<R: BufRead>(r: &mut R, head: bool) -> Option<Reply> {
    let (status_line, headers) = read_head(r)?;
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok())?;
    let mut body = Vec::new();
    if head || status == 204 || status == 304 || status < 200 {
        // No body, whatever the headers say.
    } else if headers.contains_key("content-length") || headers.contains_key("transfer-encoding") {
        body = read_body(r, &headers);
    } else {
        let _ = r.read_to_end(&mut body);
    }
    Some(Reply {
        status,
        headers,
        body,
    })
}

/// `GET path` with extra header lines.
pub fn get(port: u16, path: &str, extra: &str) -> Reply {
    send(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n{extra}\r\n")
            .as_bytes(),
    )
}

/// A test upstream: `/sleep/MS` sleeps then answers; anything else echoes the request as JSON.
/// `/vary…` answers carry `Vary: Accept-Language`, `/cookie…` answers a `Set-Cookie`, `…/nostore`
/// and `…/private` answers `Cache-Control: no-store` or `private`. Its answers carry hop-by-hop
/// headers that the gateway must drop.
///
/// Paths ending in one of these words answer in that framing instead (see [`framed`]):
/// `chunked`, `close`, `interim`, `flood`, `empty`, `trailers`, `big`, `huge`, `bye`,
/// `malformed`. `HEAD` answers carry no
/// body. After an answer to a path ending in `dropnext`, the connection's next request is read
/// and left unanswered, the connection closed.
pub struct Upstream {
    pub port: u16,
    pub hits: Arc<AtomicUsize>,
    /// Connections accepted so far.
    pub conns: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let conns = Arc::new(AtomicUsize::new(0));
        let (h, c) = (hits.clone(), conns.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let h = h.clone();
                std::thread::spawn(move || serve(conn, &h));
            }
        });
        Upstream { port, hits, conns }
    }
}

/// How many `huge` answers the upstream could not finish because the gateway closed the
/// connection (only the send-timeout test asks for `huge`).
pub static HUGE_CUT: AtomicUsize = AtomicUsize::new(0);

/// What the upstream did after a framed answer.
enum After {
    KeepAlive,
    Close,
}

/// The answers in other framings than `Content-Length`, by the last path segment.
fn framed(w: &mut TcpStream, target: &str) -> Option<After> {
    let last = target.rsplit('/').next().unwrap_or_default();
    let pause = || std::thread::sleep(Duration::from_millis(20));
    let write = |w: &mut TcpStream, b: &[u8]| w.write_all(b).and_then(|()| w.flush());
    let r = match last {
        // Chunks in separate writes, with an extension and a trailer.
        "chunked" => (|| {
            write(w, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5;note=x\r\nhel")?;
            pause();
            write(w, b"lo\r\n6\r\n world\r")?;
            pause();
            write(w, b"\n0\r\nX-Checksum: 1\r\n\r\n")
        })()
        .map(|()| After::KeepAlive),
        // No length: the body runs until the connection closes.
        "close" => write(w, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")
            .map(|()| After::Close),
        // Interim answers before the final one.
        "interim" => write(
            w,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
        )
        .map(|()| After::KeepAlive),
        "empty" => write(w, b"HTTP/1.1 204 No Content\r\n\r\n").map(|()| After::KeepAlive),
        // A DynamoDB `Scan` answer, for mapping templates.
        "dynamo" => {
            let body = r#"{"Count":2,"Items":[{"id":{"S":"1"},"name":{"S":"rex \"the\" dog"},"tags":{"L":[{"S":"a"},{"S":"b"}]}},{"id":{"S":"2"},"name":{"S":"tom"},"tags":{"L":[]}}]}"#;
            write(w, format!("HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
                .map(|()| After::KeepAlive)
        }
        // A flood of interim answers before the final one.
        "flood" => (|| {
            for _ in 0..100 {
                w.write_all(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n")?;
            }
            write(w, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
        })()
        .map(|()| After::Close),
        // A chunked answer whose trailers go on and on (200 KB of them).
        "trailers" => (|| {
            write(w, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n")?;
            for i in 0..2000 {
                w.write_all(format!("X-T{i}: {}\r\n", "t".repeat(90)).as_bytes())?;
            }
            write(w, b"\r\n")
        })()
        .map(|()| After::Close),
        // 3 MiB in 64 KiB writes.
        "big" => (|| {
            write(w, format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 3 << 20).as_bytes())?;
            for _ in 0..48 {
                w.write_all(&[b'z'; 64 * 1024])?;
            }
            w.flush()
        })()
        .map(|()| After::KeepAlive),
        // Up to 1 GiB, for as long as the gateway takes it; a failed write is counted.
        "huge" => {
            let sent = (|| {
                write(w, format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 1u64 << 30).as_bytes())?;
                for _ in 0..(1 << 14) {
                    w.write_all(&[b'z'; 64 * 1024])?;
                }
                w.flush()
            })();
            if sent.is_err() {
                HUGE_CUT.fetch_add(1, Ordering::SeqCst);
            }
            sent.map(|()| After::Close)
        }
        // Keep-alive by its headers, then closed while the gateway holds it idle.
        "bye" => write(w, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye").map(|()| {
            std::thread::sleep(Duration::from_millis(50));
            After::Close
        }),
        "malformed" => write(w, b"HTTP/1.1 OK maybe\r\n\r\n").map(|()| After::Close),
        _ => return None,
    };
    Some(r.unwrap_or(After::Close))
}

fn serve(conn: TcpStream, hits: &AtomicUsize) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut w = conn.try_clone().expect("clone");
    let mut r = BufReader::new(conn);
    // After a `…/dropnext` answer, the next request on the connection is read, then the
    // connection is closed without an answer.
    let mut drop_next = false;
    while let Some((line, headers)) = read_head(&mut r) {
        if drop_next {
            return;
        }
        hits.fetch_add(1, Ordering::SeqCst);
        let body = read_body(&mut r, &headers);
        let mut parts = line.split(' ');
        let method = parts.next().unwrap_or_default().to_string();
        let target = parts.next().unwrap_or_default().to_string();
        drop_next = target.ends_with("/dropnext");
        match framed(&mut w, &target) {
            Some(After::Close) => return,
            Some(After::KeepAlive) => continue,
            None => {}
        }
        let reply = if let Some(ms) = target
            .strip_prefix("/sleep/")
            .and_then(|m| m.parse::<u64>().ok())
        {
            std::thread::sleep(Duration::from_millis(ms));
            serde_json::json!({ "slept": ms })
        } else {
            // A small body comes back as text too (the transform tests read it).
            let text = (body.len() <= 1024).then(|| String::from_utf8_lossy(&body).into_owned());
            serde_json::json!({ "method": method, "target": target, "headers": headers, "body_len": body.len(), "body": text })
        };
        let text = reply.to_string();
        // `/vary…` answers vary on the language; `/cookie…` answers set a cookie.
        let extra = if target.starts_with("/vary") {
            "Vary: Accept-Language\r\n"
        } else if target.starts_with("/cookie") {
            "Set-Cookie: session=s3cret; HttpOnly\r\n"
        } else if target.ends_with("/nostore") {
            "Cache-Control: no-store\r\n"
        } else if target.ends_with("/private") {
            "Cache-Control: private, max-age=60\r\n"
        } else if target.ends_with("/partial") {
            "Content-Range: bytes 0-9/100\r\n"
        } else {
            ""
        };
        let status = if target.ends_with("/partial") {
            "206 Partial Content"
        } else if target.ends_with("/missing") {
            "404 Not Found"
        } else {
            "200 OK"
        };
        let resp = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: x-upstream-secret\r\nX-Upstream-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Upstream: yes\r\n{extra}\r\n{}",
            text.len(),
            if method == "HEAD" { "" } else { &text }
        );
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
        if headers
            .get("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            return;
        }
    }
}

/// A loopback port that no other caller in this run is given and that was free when asked.
///
/// Ports come from just below the kernel's ephemeral range, so an outgoing connection of a
/// concurrent test cannot take the port between this call and the child process's bind (a
/// port from `bind(0)` can be taken that way, and was).
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768)
        .clamp(12000, 65000);
    let span = 10_000;
    let start = std::process::id() % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (low - span + (start + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below {low}")
}

/// A `redis-server` on a free loopback port, stopped by PID when dropped.
pub struct Redis {
    child: std::process::Child,
    pub port: u16,
}

impl Redis {
    pub fn start(port: u16) -> Redis {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (CI installs it; locally: apt-get install redis-server)");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
