//! The gateway's open WebSocket connections, by id, and the `@connections` management API on
//! the admin listener.
//!
//! A connection is added when its handshake is answered and removed when its task ends. The
//! table is split in [`crate::percore::SLOTS`] shards by id; it is touched when a connection
//! opens or closes and by the management API, never per message.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::event::Connection;

/// What the management API asks of a connection's task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send this message (a text frame when it is UTF-8, else binary).
    Send(Bytes),
    /// Close the connection (`DELETE`).
    Close,
}

/// Messages queued for one connection at most; past it, `POST` is 429.
const QUEUE: usize = 256;

struct Entry {
    tx: mpsc::Sender<Command>,
    connection: Arc<Connection>,
    last_active: Arc<AtomicU64>,
}

/// The open connections of one gateway.
pub struct Registry {
    shards: Box<[Mutex<HashMap<String, Entry>>]>,
    clients: Mutex<HashMap<IpAddr, u32>>,
    stop: watch::Sender<bool>,
    /// The gateway's WebSocket APIs.
    apis: Vec<Arc<super::Api>>,
    /// With Redis: the other instances.
    #[cfg(feature = "redis")]
    cluster: std::sync::OnceLock<Arc<super::cluster::Cluster>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("open", &self.len())
            .finish()
    }
}

impl Registry {
    /// The registry of a gateway with these WebSocket APIs.
    pub(crate) fn new(apis: Vec<Arc<super::Api>>) -> Registry {
        Registry {
            shards: (0..crate::percore::SLOTS)
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            clients: Mutex::new(HashMap::new()),
            stop: watch::channel(false).0,
            apis,
            #[cfg(feature = "redis")]
            cluster: std::sync::OnceLock::new(),
        }
    }
}

/// A place among a client's connections; given back when dropped.
pub(crate) struct Place {
    registry: Arc<Registry>,
    ip: Option<IpAddr>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut clients = self
                .registry
                .clients
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(n) = clients.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    clients.remove(&ip);
                }
            }
        }
    }
}

/// A connection's own end of its entry: the commands for it, and its last activity. The entry
/// goes when this is dropped.
pub(crate) struct Handle {
    registry: Arc<Registry>,
    id: String,
    pub(crate) commands: mpsc::Receiver<Command>,
    last_active: Arc<AtomicU64>,
}

impl Handle {
    /// Notes activity now (for `GET`'s `lastActiveAt`).
    pub(crate) fn touch(&self) {
        self.last_active
            .store(unix_ms(SystemTime::now()), Ordering::Relaxed);
    }

    /// Removes the entry of a connection whose upgrade failed.
    pub(crate) async fn forget(self) {
        self.leave().await;
    }

    /// Gives the connection up: whether its `$disconnect` is this instance's to fire (with
    /// Redis, another instance may have fired it already, for an instance it took for gone).
    pub(crate) async fn leave(&self) -> bool {
        #[cfg(feature = "redis")]
        if let Some(cluster) = self.registry.cluster.get() {
            return cluster.left(&self.id).await;
        }
        true
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.registry
            .shard(&self.id)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

pub(crate) fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A new connection id: 12 random bytes in base64 (16 characters), like API Gateway's, in the
/// URL-safe alphabet (`-`, `_`): it goes into `@connections` URLs as it is.
pub(crate) fn new_id() -> String {
    use base64::Engine;
    let bytes = crate::observe::random_bytes();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..12])
}

/// Why a message could not be posted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Undelivered {
    /// No such connection (410, AWS's `GoneException`).
    Gone,
    /// Its queue is full (429).
    Full,
    /// Larger than its API's message limit (413).
    TooLarge,
}

impl Registry {
    fn shard(&self, id: &str) -> &Mutex<HashMap<String, Entry>> {
        let h = id
            .bytes()
            .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(b as usize));
        &self.shards[h % self.shards.len()]
    }

    /// Open connections.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// A place for one more connection from `ip`, unless it holds `limit` already.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, limit: Option<u32>) -> Option<Place> {
        let Some(limit) = limit else {
            return Some(Place {
                registry: self.clone(),
                ip: None,
            });
        };
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let n = clients.entry(ip).or_default();
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Place {
            registry: self.clone(),
            ip: Some(ip),
        })
    }

    /// Adds a connection; its task holds the handle.
    pub(crate) fn insert(self: &Arc<Self>, connection: &Arc<Connection>) -> Handle {
        let (tx, rx) = mpsc::channel(QUEUE);
        let last_active = Arc::new(AtomicU64::new(unix_ms(connection.connected_at)));
        self.shard(&connection.id)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                connection.id.clone(),
                Entry {
                    tx,
                    connection: connection.clone(),
                    last_active: last_active.clone(),
                },
            );
        Handle {
            registry: self.clone(),
            id: connection.id.clone(),
            commands: rx,
            last_active,
        }
    }

    fn sender(&self, id: &str) -> Option<mpsc::Sender<Command>> {
        self.shard(id)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .map(|e| e.tx.clone())
    }

    /// The largest message connection `id`'s API takes, if this instance holds it.
    fn limit_of(&self, id: &str) -> Option<usize> {
        self.shard(id)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .map(|e| e.connection.api.message_limit())
    }

    /// Queues a message for connection `id`, held here or, with Redis, by another instance.
    pub(crate) async fn post(&self, id: &str, data: Bytes) -> Result<(), Undelivered> {
        match self.post_here(id, data.clone()) {
            #[cfg(feature = "redis")]
            Err(Undelivered::Gone) => match self.cluster.get() {
                Some(cluster) => cluster.forward(self, id, false, &data).await,
                None => Err(Undelivered::Gone),
            },
            other => other,
        }
    }

    /// Queues a message for connection `id` if this instance holds it.
    pub(crate) fn post_here(&self, id: &str, data: Bytes) -> Result<(), Undelivered> {
        if self.limit_of(id).is_some_and(|limit| data.len() > limit) {
            return Err(Undelivered::TooLarge);
        }
        let tx = self.sender(id).ok_or(Undelivered::Gone)?;
        tx.try_send(Command::Send(data)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Undelivered::Full,
            mpsc::error::TrySendError::Closed(_) => Undelivered::Gone,
        })
    }

    /// Asks connection `id` to close, wherever it is held; `false` when there is none.
    pub(crate) async fn close(&self, id: &str) -> bool {
        if self.close_here(id).await {
            return true;
        }
        #[cfg(feature = "redis")]
        if let Some(cluster) = self.cluster.get() {
            return cluster.forward(self, id, true, &[]).await.is_ok();
        }
        false
    }

    /// Asks connection `id` to close if this instance holds it.
    pub(crate) async fn close_here(&self, id: &str) -> bool {
        match self.sender(id) {
            Some(tx) => tx.send(Command::Close).await.is_ok(),
            None => false,
        }
    }

    /// What `GET @connections/{id}` says, wherever the connection is held.
    pub(crate) async fn describe(&self, id: &str) -> Option<serde_json::Value> {
        if let Some(v) = self.describe_here(id) {
            return Some(v);
        }
        #[cfg(feature = "redis")]
        if let Some(cluster) = self.cluster.get() {
            return cluster.describe(id).await;
        }
        None
    }

    /// The API served at `path`.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn api(&self, path: &str) -> Option<Arc<super::Api>> {
        self.apis.iter().find(|a| a.path == path).cloned()
    }

    /// Whether connection `id` is held here.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn holds(&self, id: &str) -> bool {
        self.sender(id).is_some()
    }

    /// Each connection held here, with its last activity (ms since the epoch).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn activity(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(
                shard
                    .iter()
                    .map(|(id, e)| (id.clone(), e.last_active.load(Ordering::Relaxed))),
            );
        }
        out
    }

    /// With Redis: connections reach each other through it (see [`super::cluster`]).
    #[cfg(feature = "redis")]
    pub(crate) fn share(&self, shared: Arc<crate::state::Shared>) {
        if !self.apis.is_empty() {
            let _ = self
                .cluster
                .set(Arc::new(super::cluster::Cluster::new(shared)));
        }
    }

    /// Starts this instance's part in the cluster, when there is one: what other instances
    /// publish to it, its heartbeat, and the sweep after instances that stopped.
    pub(crate) fn start(self: &Arc<Self>) {
        #[cfg(feature = "redis")]
        if let Some(cluster) = self.cluster.get() {
            tokio::spawn(cluster.clone().run(self.clone()));
        }
    }

    /// Records a connection that this instance now holds, for the other instances.
    pub(crate) async fn joined(&self, connection: &Connection) {
        #[cfg(feature = "redis")]
        if let Some(cluster) = self.cluster.get() {
            cluster.joined(connection).await;
        }
        let _ = connection;
    }

    /// What `GET @connections/{id}` says of a connection held here: `connectedAt`,
    /// `identity` (`sourceIp`, `userAgent`), `lastActiveAt`, in AWS's shape.
    pub(crate) fn describe_here(&self, id: &str) -> Option<serde_json::Value> {
        let shard = self.shard(id).lock().unwrap_or_else(|e| e.into_inner());
        let e = shard.get(id)?;
        let c = &e.connection;
        let mut identity = serde_json::json!({ "sourceIp": c.source_ip.to_string() });
        if let Some(ua) = &c.user_agent {
            identity["userAgent"] = serde_json::Value::String(ua.clone());
        }
        Some(serde_json::json!({
            "connectedAt": iso_time(unix_ms(c.connected_at)),
            "identity": identity,
            "lastActiveAt": iso_time(e.last_active.load(Ordering::Relaxed)),
        }))
    }

    /// What tells connections the gateway is stopping.
    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Closes every connection (1001, "Going away") and waits, up to `deadline`, until their
    /// `$disconnect` routes have been told.
    pub(crate) async fn close_all(&self, deadline: Duration) {
        let _ = self.stop.send(true);
        let until = tokio::time::Instant::now() + deadline;
        while self.len() > 0 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `2024-02-09T18:23:28.396Z`.
pub(crate) fn iso_time(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (y, m, d) = crate::throttle::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

/// The `@connections` routes of the admin router: `POST` sends the body to the connection,
/// `GET` describes it, `DELETE` closes it; 410 for a connection that is not open. With
/// `admin.token`, each needs `Authorization: Bearer TOKEN`. The paths are
/// `/@connections/{id}` and, as API Gateway's callback URL has it, `/{stage}/@connections/{id}`.
pub(crate) fn routes(
    router: axum::Router,
    registry: Arc<Registry>,
    token: Option<Arc<str>>,
    limit: usize,
) -> axum::Router {
    use axum::extract::Path;
    use axum::routing::get;
    let manager = Arc::new(Manager {
        registry,
        token,
        limit,
    });
    let handler = move |method: http::Method, id: String, headers: http::HeaderMap, body: Bytes| {
        let manager = manager.clone();
        async move { manager.call(method, &id, &headers, body).await }
    };
    let (a, b) = (handler.clone(), handler);
    let one = move |method: http::Method,
                    Path(id): Path<String>,
                    headers: http::HeaderMap,
                    body: Bytes| { a(method, id, headers, body) };
    let staged = move |method: http::Method,
                       Path((_stage, id)): Path<(String, String)>,
                       headers: http::HeaderMap,
                       body: Bytes| { b(method, id, headers, body) };
    router
        .route(
            "/@connections/{id}",
            get(one.clone()).post(one.clone()).delete(one),
        )
        .route(
            "/{stage}/@connections/{id}",
            get(staged.clone()).post(staged.clone()).delete(staged),
        )
        .layer(axum::extract::DefaultBodyLimit::max(limit))
}

/// The management API: the connections, the admin token, the largest message.
struct Manager {
    registry: Arc<Registry>,
    token: Option<Arc<str>>,
    limit: usize,
}

impl Manager {
    /// One management call.
    async fn call(
        &self,
        method: http::Method,
        id: &str,
        headers: &http::HeaderMap,
        body: Bytes,
    ) -> axum::response::Response {
        let (registry, token, limit) = (&*self.registry, self.token.as_deref(), self.limit);
        use axum::response::IntoResponse;
        use http::StatusCode;
        let problem = |status: StatusCode, title: &'static str, detail: &str| {
            crate::problem::Problem::new(status, title, detail.to_string()).into_response("-")
        };
        if let Some(token) = token {
            let given = headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !bool::from(subtle::ConstantTimeEq::ct_eq(
                given.as_bytes(),
                token.as_bytes(),
            )) {
                let mut r = problem(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "the management API needs `Authorization: Bearer` with the admin token",
                );
                r.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                );
                return r;
            }
        }
        let gone = || {
            problem(
                StatusCode::GONE,
                "Gone",
                "no connection with this id is open",
            )
        };
        match method {
            http::Method::POST => {
                let too_large = || {
                    problem(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "Payload Too Large",
                        "the message is larger than the API's message limit",
                    )
                };
                if body.len() > limit {
                    return too_large();
                }
                match registry.post(id, body).await {
                    Ok(()) => StatusCode::OK.into_response(),
                    Err(Undelivered::Gone) => gone(),
                    Err(Undelivered::TooLarge) => too_large(),
                    Err(Undelivered::Full) => problem(
                        StatusCode::TOO_MANY_REQUESTS,
                        "Too Many Requests",
                        "the connection's queue of messages is full",
                    ),
                }
            }
            http::Method::DELETE => {
                if registry.close(id).await {
                    StatusCode::NO_CONTENT.into_response()
                } else {
                    gone()
                }
            }
            _ => match registry.describe(id).await {
                Some(info) => (
                    [(http::header::CONTENT_TYPE, "application/json")],
                    info.to_string(),
                )
                    .into_response(),
                None => gone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_times() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        assert!(ids.iter().all(|id| id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')));
        assert_eq!(iso_time(1_707_503_008_941), "2024-02-09T18:23:28.941Z");
    }

    #[test]
    fn places_per_client() {
        let r = Arc::new(Registry::new(Vec::new()));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let one = r.admit(ip, Some(2)).unwrap();
        let two = r.admit(ip, Some(2)).unwrap();
        assert!(r.admit(ip, Some(2)).is_none());
        assert!(r.admit("::1".parse().unwrap(), Some(2)).is_some());
        drop(one);
        assert!(r.admit(ip, Some(2)).is_some());
        drop(two);
        assert!(r.clients.lock().unwrap().is_empty());
    }
}
