//! Load for `bench/websocket.py`.
//!
//! - `ws-load echo PORT`: a WebSocket echo server on 127.0.0.1:PORT (tokio-tungstenite, one
//!   thread): the direct peer the gateway is compared with.
//! - `ws-load rtt URL CONNECTIONS SECONDS`: each connection sends a small JSON message and waits
//!   for the answer, over and over, for SECONDS; prints `{"messages", "seconds", "rate", "p50_us",
//!   "p99_us"}`.
//! - `ws-load idle URL N HOLD_SECONDS READY_FILE`: opens N connections (64 handshakes at a time),
//!   writes READY_FILE, holds them for HOLD_SECONDS, closes them; prints how many opened.
//!
//! Everything runs on one thread (the script pins it to a core of its own).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const MESSAGE: &str = r#"{"action":"ping","text":"a small message of about sixty bytes"}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(1).as_str() {
        "echo" => runtime.block_on(echo(arg(2).parse().expect("PORT"))),
        "rtt" => runtime.block_on(rtt(
            arg(2),
            arg(3).parse().expect("CONNECTIONS"),
            arg(4).parse().expect("SECONDS"),
        )),
        "idle" => runtime.block_on(idle(
            arg(2),
            arg(3).parse().expect("N"),
            arg(4).parse().expect("HOLD_SECONDS"),
            arg(5),
        )),
        _ => {
            eprintln!("usage: ws-load echo PORT | rtt URL CONNECTIONS SECONDS | idle URL N HOLD READY");
            std::process::exit(2);
        }
    }
}

async fn echo(port: u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            while let Some(Ok(m)) = ws.next().await {
                if m.is_text() || m.is_binary() {
                    if ws.send(m).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

async fn rtt(url: String, connections: usize, seconds: u64) {
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
            let mut times = Vec::new();
            while Instant::now() < until {
                let started = Instant::now();
                ws.send(Message::text(MESSAGE)).await.expect("send");
                loop {
                    match ws.next().await {
                        Some(Ok(m)) if m.is_text() || m.is_binary() => break,
                        Some(Ok(_)) => continue,
                        other => panic!("the connection ended: {other:?}"),
                    }
                }
                times.push(started.elapsed().as_micros() as u64);
            }
            let _ = ws.close(None).await;
            times
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("a connection task"));
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "{{\"messages\": {}, \"seconds\": {secs:.3}, \"rate\": {:.1}, \"p50_us\": {}, \"p99_us\": {}}}",
        all.len(),
        all.len() as f64 / secs,
        pct(0.5),
        pct(0.99)
    );
}

async fn idle(url: String, n: usize, hold: u64, ready: String) {
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let mut pending = Vec::with_capacity(n);
    for _ in 0..n {
        let (url, limit) = (url.clone(), limit.clone());
        pending.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.expect("permits");
            tokio_tungstenite::connect_async(url).await.ok().map(|(ws, _)| ws)
        }));
    }
    let mut open = Vec::with_capacity(n);
    for p in pending {
        if let Ok(Some(ws)) = p.await {
            open.push(ws);
        }
    }
    std::fs::write(&ready, open.len().to_string()).expect("the ready file");
    tokio::time::sleep(Duration::from_secs(hold)).await;
    for mut ws in open {
        let _ = ws.close(None).await;
    }
    println!("{{\"opened\": {}}}", std::fs::read_to_string(&ready).unwrap_or_default());
}
