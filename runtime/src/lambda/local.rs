//! Local mode (`command: [...]`): the gateway hosts the Lambda Runtime API
//! (`/2018-06-01/runtime/...`) on loopback and runs the function as up to `concurrency`
//! processes, so a function built on an official runtime interface client runs unchanged.
//!
//! - Each process (a *slot*) has its own Runtime API listener, so the gateway always knows which
//!   process holds which invocation. Processes start on the first invocation that finds no idle
//!   one (a cold start) and stay warm; the most recently used idle process is taken first.
//! - An invocation ends as on AWS: the function's answer (`/response`), its error (`/error`, or
//!   `/init/error` before its first `next`), its process exiting (`Runtime.ExitError`), or the
//!   deadline, after which the process is killed and replaced at the next invocation.
//! - With `memory_mb`, a process whose resident memory passes it during an invocation is killed
//!   (`Runtime.OutOfMemory`).
//! - Processes see only `PATH`, `LANG`, the variables an official runtime client reads
//!   (`AWS_LAMBDA_RUNTIME_API`, `_HANDLER`, `AWS_LAMBDA_FUNCTION_*`, …) and the spec's `env`: never
//!   the gateway's own secrets or AWS credentials.
//! - An invocation runs as a task of its own on the runtime of the request that made it, so a
//!   client that goes away never cuts an invocation short (nor kills a warm process). A slot's
//!   listener runs on the runtime that opened it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use super::Failure;

/// The Runtime API version prefix.
const PREFIX: &str = "/2018-06-01/runtime/";

/// The largest answer a function may post (Lambda's synchronous limit).
pub(crate) const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// A local function's settings, resolved for the stage.
#[derive(Debug, Clone)]
pub(crate) struct LocalConfig {
    /// The function's name (`AWS_LAMBDA_FUNCTION_NAME`).
    pub(crate) name: String,
    /// The program and its arguments.
    pub(crate) command: Vec<String>,
    /// Extra environment.
    pub(crate) env: Vec<(String, String)>,
    /// `_HANDLER`.
    pub(crate) handler: String,
    /// The working directory (`LAMBDA_TASK_ROOT`).
    pub(crate) workdir: Option<String>,
    /// Most processes at once.
    pub(crate) concurrency: usize,
    /// Resident memory limit, in MiB (0: none).
    pub(crate) memory_mb: u64,
    /// `AWS_REGION`.
    pub(crate) region: String,
}

/// One function run locally.
pub(crate) struct LocalFunction {
    config: Arc<LocalConfig>,
    permits: Arc<Semaphore>,
    idle: Arc<Mutex<Vec<Slot>>>,
}

impl std::fmt::Debug for LocalFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFunction")
            .field("name", &self.config.name)
            .finish()
    }
}

impl LocalFunction {
    /// A function; no process starts before its first invocation.
    pub(crate) fn new(config: LocalConfig) -> LocalFunction {
        let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
        LocalFunction {
            config: Arc::new(config),
            permits,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs one invocation to its end, whatever becomes of the caller: an answer, an error, or
    /// [`Failure::Timeout`] at `deadline` (waiting for a free process counts).
    pub(crate) async fn invoke(&self, payload: Bytes, timeout: Duration) -> Result<Bytes, Failure> {
        let (tx, rx) = oneshot::channel();
        let (config, permits, idle) =
            (self.config.clone(), self.permits.clone(), self.idle.clone());
        let deadline = Instant::now() + timeout;
        tokio::spawn(async move {
            let Ok(Ok(permit)) = tokio::time::timeout_at(deadline, permits.acquire_owned()).await
            else {
                let _ = tx.send(Err(Failure::Timeout));
                return;
            };
            let slot = idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut slot = match slot {
                Some(s) => s,
                None => match Slot::open(config).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(Failure::Unavailable(e)));
                        return;
                    }
                },
            };
            let outcome = slot.run(payload, deadline, timeout).await;
            idle.lock().unwrap_or_else(|e| e.into_inner()).push(slot);
            drop(permit);
            let _ = tx.send(outcome);
        });
        rx.await.unwrap_or_else(|_| {
            Err(Failure::Unavailable(
                "the local Lambda runtime stopped".into(),
            ))
        })
    }
}

/// An invocation as `next` hands it out.
struct Invocation {
    id: String,
    payload: Bytes,
    deadline: SystemTime,
}

/// What the process posted.
enum Posted {
    /// `/invocation/{id}/response` or `/invocation/{id}/error`.
    Done(String, Result<Bytes, Failure>),
    /// `/init/error`.
    InitError(Bytes),
}

/// One process and its Runtime API listener.
struct Slot {
    config: Arc<LocalConfig>,
    addr: SocketAddr,
    nexts: mpsc::Receiver<oneshot::Sender<Invocation>>,
    posted: mpsc::Receiver<Posted>,
    child: Option<tokio::process::Child>,
    /// The process's id, as the listener checks connections against it.
    pid: Arc<std::sync::atomic::AtomicU32>,
    server: tokio::task::JoinHandle<()>,
    number: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Handlers' side of a slot.
struct Api {
    nexts: mpsc::Sender<oneshot::Sender<Invocation>>,
    posted: mpsc::Sender<Posted>,
    arn: String,
    /// The slot's process (0: none), whose connections alone are served.
    pid: Arc<std::sync::atomic::AtomicU32>,
}

impl Slot {
    async fn open(config: Arc<LocalConfig>) -> Result<Slot, String> {
        static NUMBER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("cannot listen for the Runtime API: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("cannot listen for the Runtime API: {e}"))?;
        let (next_tx, nexts) = mpsc::channel(4);
        let (posted_tx, posted) = mpsc::channel(4);
        let pid = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let api = Arc::new(Api {
            nexts: next_tx,
            posted: posted_tx,
            pid: pid.clone(),
            arn: format!(
                "arn:aws:lambda:{}:000000000000:function:{}",
                config.region, config.name
            ),
        });
        let server = tokio::spawn(serve(listener, api));
        Ok(Slot {
            config,
            addr,
            nexts,
            posted,
            child: None,
            pid,
            server,
            number: NUMBER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Starts the process if it is not running.
    fn start(&mut self) -> Result<(), Failure> {
        if let Some(child) = &mut self.child {
            if matches!(child.try_wait(), Ok(None)) {
                return Ok(());
            }
        }
        self.child = None;
        // A `next` left over from a process that is gone would take the next invocation.
        while self.nexts.try_recv().is_ok() {}
        while self.posted.try_recv().is_ok() {}
        let c = &self.config;
        let Some((program, args)) = c.command.split_first() else {
            return Err(Failure::Unavailable("the function has no command".into()));
        };
        let mut cmd = tokio::process::Command::new(program_path(program));
        cmd.args(args).env_clear();
        for keep in ["PATH", "LANG", "LC_ALL", "SYSTEMROOT"] {
            if let Some(v) = std::env::var_os(keep) {
                cmd.env(keep, v);
            }
        }
        let root = c.workdir.clone().unwrap_or_else(|| {
            std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| ".".into())
        });
        let memory = if c.memory_mb > 0 { c.memory_mb } else { 128 };
        cmd.env("AWS_LAMBDA_RUNTIME_API", self.addr.to_string())
            .env("_HANDLER", &c.handler)
            .env("AWS_LAMBDA_FUNCTION_NAME", &c.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory.to_string())
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", c.name),
            )
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("gwgen/{}", self.number),
            )
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_REGION", &c.region)
            .env("AWS_DEFAULT_REGION", &c.region)
            .env("LAMBDA_TASK_ROOT", &root)
            .env("TZ", ":UTC")
            .envs(c.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&root)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        // The function's output is its log: it goes to the gateway's standard error, never into
        // the access log on standard output.
        use std::os::fd::AsFd as _;
        if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
            cmd.stdout(fd);
        }
        if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
            cmd.stderr(fd);
        }
        let child = cmd
            .spawn()
            .map_err(|e| Failure::Unavailable(format!("cannot start `{program}`: {e}")))?;
        tracing::info!(function = %c.name, pid = child.id().unwrap_or(0), "started a function process");
        self.pid.store(
            child.id().unwrap_or(0),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.child = Some(child);
        Ok(())
    }

    /// Kills the process; the next invocation starts another.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// One invocation on this slot's process.
    async fn run(
        &mut self,
        payload: Bytes,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Bytes, Failure> {
        self.start()?;
        let id = uuid::Uuid::new_v4().to_string();
        let wall_deadline = SystemTime::now() + deadline.saturating_duration_since(Instant::now());
        let mut invocation = Some(Invocation {
            id: id.clone(),
            payload,
            deadline: wall_deadline,
        });
        let limit = self.config.memory_mb.saturating_mul(1024 * 1024);
        let mut sampling = tokio::time::interval(Duration::from_millis(50));
        let outcome = loop {
            let Some(child) = self.child.as_mut() else {
                break Err(Failure::Unavailable("the function process is gone".into()));
            };
            let pid = child.id();
            tokio::select! {
                waiter = self.nexts.recv(), if invocation.is_some() => {
                    let Some(waiter) = waiter else { continue };
                    if let Some(inv) = invocation.take() {
                        if let Err(back) = waiter.send(inv) {
                            // That `next` was abandoned: wait for another.
                            invocation = Some(back);
                        }
                    }
                }
                posted = self.posted.recv() => match posted {
                    Some(Posted::Done(done, result)) if done == id => break result,
                    Some(Posted::InitError(body)) => {
                        self.kill().await;
                        break Err(Failure::Function(body));
                    }
                    _ => {}
                },
                status = child.wait() => {
                    self.child = None;
                    let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    break Err(Failure::Function(error_body(
                        &format!("RequestId: {id} Error: Runtime exited with error: {status}"),
                        "Runtime.ExitError",
                    )));
                }
                _ = sampling.tick(), if limit > 0 => {
                    if pid.and_then(resident_bytes).is_some_and(|rss| rss > limit) {
                        self.kill().await;
                        break Err(Failure::Function(error_body(
                            &format!("RequestId: {id} Error: Runtime exited with error: signal: killed"),
                            "Runtime.OutOfMemory",
                        )));
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.kill().await;
                    tracing::warn!(function = %self.config.name, request_id = %id,
                        "Task timed out after {:.2} seconds", timeout.as_secs_f64());
                    break Err(Failure::Timeout);
                }
            }
        };
        outcome
    }
}

/// A process's resident memory, from `/proc` (Linux).
fn resident_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The error document Lambda reports for failures of the runtime itself.
fn error_body(message: &str, kind: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "errorMessage": message, "errorType": kind }).to_string())
}

/// Serves one slot's Runtime API until the slot goes.
async fn serve(listener: tokio::net::TcpListener, api: Arc<Api>) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let pid = api.pid.load(std::sync::atomic::Ordering::Relaxed);
        if !connected_from(pid, peer.port(), port) {
            tracing::warn!(peer = %peer, "refused a Runtime API connection from another process");
            continue;
        }
        let api = api.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(handle(&api, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Whether the loopback connection from `peer_port` to `port` belongs to the process `pid` or
/// one of its descendants (Linux: the socket's inode in `/proc/net/tcp`, then the processes'
/// open files). Any local user can reach a loopback port; only the function may take its
/// invocations. Elsewhere there is no `/proc` and every loopback connection is served.
fn connected_from(pid: u32, peer_port: u16, port: u16) -> bool {
    if !std::path::Path::new("/proc/net/tcp").exists() {
        return true;
    }
    if pid == 0 {
        return false;
    }
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let inode = table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let ends =
            |col: Option<&&str>, p: u16| col.is_some_and(|c| c.ends_with(&format!(":{p:04X}")));
        (ends(cols.get(1), peer_port) && ends(cols.get(2), port))
            .then(|| cols.get(9).map(|i| i.to_string()))?
    });
    let Some(inode) = inode else { return false };
    let wanted = format!("socket:[{inode}]");
    // The process and its descendants, breadth first (a bootstrap script may start the runtime).
    let mut queue = vec![pid];
    let mut seen = 0;
    while let Some(p) = queue.pop() {
        seen += 1;
        if seen > 256 {
            break;
        }
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{p}/fd")) {
            for fd in fds.flatten() {
                if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == wanted.as_str()) {
                    return true;
                }
            }
        }
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                if let Ok(children) = std::fs::read_to_string(t.path().join("children")) {
                    queue.extend(
                        children
                            .split_whitespace()
                            .filter_map(|c| c.parse::<u32>().ok()),
                    );
                }
            }
        }
    }
    false
}

type ApiResponse = http::Response<Full<Bytes>>;

fn reply(status: StatusCode, body: &str) -> ApiResponse {
    let mut r = http::Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// One Runtime API call.
async fn handle(api: &Api, req: http::Request<hyper::body::Incoming>) -> ApiResponse {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return reply(StatusCode::NOT_FOUND, r#"{"errorMessage":"not found"}"#);
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match (req.method(), parts.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => {
            let (tx, rx) = oneshot::channel();
            if api.nexts.send(tx).await.is_err() {
                return reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    r#"{"errorMessage":"stopping"}"#,
                );
            }
            let Ok(inv) = rx.await else {
                return reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    r#"{"errorMessage":"stopping"}"#,
                );
            };
            let deadline_ms = inv
                .deadline
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            let mut r = http::Response::new(Full::new(inv.payload));
            let h = r.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            for (name, value) in [
                ("lambda-runtime-aws-request-id", inv.id),
                ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
                ("lambda-runtime-invoked-function-arn", api.arn.clone()),
                (
                    "lambda-runtime-trace-id",
                    format!("Root=1-{}", uuid::Uuid::new_v4().simple()),
                ),
            ] {
                if let Ok(v) = http::HeaderValue::from_str(&value) {
                    h.insert(name, v);
                }
            }
            r
        }
        (&Method::POST, ["invocation", id, kind @ ("response" | "error")]) => {
            let id = (*id).to_string();
            let error = *kind == "error";
            let body = match Limited::new(req.into_body(), MAX_PAYLOAD).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    let _ = api
                        .posted
                        .send(Posted::Done(
                            id,
                            Err(Failure::Function(error_body(
                                "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
                                "Function.ResponseSizeTooLarge",
                            ))),
                        ))
                        .await;
                    return reply(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        r#"{"errorMessage":"payload too large","errorType":"RequestEntityTooLarge"}"#,
                    );
                }
            };
            let result = if error {
                Err(Failure::Function(body))
            } else {
                Ok(body)
            };
            let _ = api.posted.send(Posted::Done(id, result)).await;
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        (&Method::POST, ["init", "error"]) => {
            let body = Limited::new(req.into_body(), MAX_PAYLOAD)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let _ = api.posted.send(Posted::InitError(body)).await;
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        _ => reply(StatusCode::NOT_FOUND, r#"{"errorMessage":"not found"}"#),
    }
}

/// The program of a function's `command` as the gateway's own folder sees it: a relative path
/// with a `/` (`.venv/bin/python`) would otherwise be looked up from the function's `workdir`,
/// where it is not. A bare name (`python3`) is looked up on `PATH`.
fn program_path(program: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(program);
    if path.is_relative() && program.contains('/') {
        if let Ok(here) = std::env::current_dir() {
            return here.join(path);
        }
    }
    path.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::program_path;

    #[test]
    fn relative_programs_are_found_from_the_gateways_folder() {
        let here = std::env::current_dir().expect("the current folder");
        assert_eq!(
            program_path(".venv/bin/python"),
            here.join(".venv/bin/python")
        );
        assert_eq!(program_path("python3"), std::path::PathBuf::from("python3"));
        assert_eq!(
            program_path("/usr/bin/python3"),
            std::path::PathBuf::from("/usr/bin/python3")
        );
    }
}
