//! The Lambda benchmark's direct peer (`bench/lambda.py`): a function invoked through its own
//! runtime client with nothing in between but the smallest Runtime API host there can be.
//!
//! Usage: `runtime-api-loop SECONDS EVENT_FILE PROGRAM [ARG…]`
//!
//! It hosts the Runtime API on 127.0.0.1, starts PROGRAM with `AWS_LAMBDA_RUNTIME_API` and the
//! variables a runtime client reads, hands it EVENT_FILE's event over and over for SECONDS (one
//! invocation at a time, as one Lambda process runs them), and prints
//! `{"invocations": N, "seconds": S, "mean_us": M}`: M is from handing an event out on `next`
//! to its answer arriving on `response`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

#[derive(Default)]
struct Tally {
    handed: Option<Instant>,
    invocations: u64,
    total: Duration,
    counting: bool,
}

type Answer = hyper::Response<Full<Bytes>>;

async fn api(
    req: hyper::Request<hyper::body::Incoming>,
    event: Bytes,
    tally: Arc<Mutex<Tally>>,
    seq: Arc<std::sync::atomic::AtomicU64>,
) -> Result<Answer, Infallible> {
    let path = req.uri().path().to_string();
    if path.ends_with("/invocation/next") {
        let id = seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tally.lock().unwrap_or_else(|e| e.into_inner()).handed = Some(Instant::now());
        let mut r = hyper::Response::new(Full::new(event));
        let h = r.headers_mut();
        h.insert("lambda-runtime-aws-request-id", id.to_string().parse().unwrap_or(hyper::header::HeaderValue::from_static("0")));
        h.insert("lambda-runtime-deadline-ms", hyper::header::HeaderValue::from_static("99999999999999"));
        h.insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
        h.insert(
            "lambda-runtime-trace-id",
            hyper::header::HeaderValue::from_static("Root=1-00000000-000000000000000000000000"),
        );
        h.insert(
            "lambda-runtime-invoked-function-arn",
            hyper::header::HeaderValue::from_static("arn:aws:lambda:us-east-1:000000000000:function:bench"),
        );
        return Ok(r);
    }
    let _ = req.into_body().collect().await;
    if path.ends_with("/response") {
        let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = t.handed.take() {
            if t.counting {
                t.invocations += 1;
                t.total += at.elapsed();
            }
        }
    }
    let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"{}")));
    *r.status_mut() = hyper::StatusCode::ACCEPTED;
    Ok(r)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [seconds, event_file, program, rest @ ..] = args.as_slice() else {
        eprintln!("usage: runtime-api-loop SECONDS EVENT_FILE PROGRAM [ARG…]");
        std::process::exit(2);
    };
    let seconds: f64 = seconds.parse().expect("SECONDS is a number");
    let event = Bytes::from(std::fs::read(event_file).expect("EVENT_FILE is readable"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("listen");
    let addr = listener.local_addr().expect("address");
    let tally = Arc::new(Mutex::new(Tally::default()));
    let seq = Arc::new(std::sync::atomic::AtomicU64::new(1));
    {
        let (tally, seq) = (tally.clone(), seq.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let (event, tally, seq) = (event.clone(), tally.clone(), seq.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        api(req, event.clone(), tally.clone(), seq.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }
    let mut child = tokio::process::Command::new(program)
        .args(rest)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_REGION", "us-east-1")
        .kill_on_drop(true)
        .spawn()
        .expect("start the function");
    // Warm up for a second (process start, first imports), then count.
    tokio::time::sleep(Duration::from_secs(1)).await;
    tally.lock().unwrap_or_else(|e| e.into_inner()).counting = true;
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let t = tally.lock().unwrap_or_else(|e| e.into_inner());
    let mean_us = if t.invocations > 0 {
        t.total.as_secs_f64() * 1e6 / t.invocations as f64
    } else {
        0.0
    };
    println!(
        "{{\"invocations\": {}, \"seconds\": {seconds}, \"mean_us\": {mean_us:.1}}}",
        t.invocations
    );
    let _ = child.start_kill();
}
