//! Where throttle buckets, quota counters and cached answers live: in this process (`memory`,
//! the default), or in Redis (`redis`), shared by every instance of the gateway.
//!
//! With Redis, every call has a deadline (`state.timeout`, default 250 ms). When Redis fails or is
//! too slow, the gateway does what `on_state_error` says: `local` (the default) goes on with
//! per-instance limits and cache, logs one warning and counts `gwgen_state_errors_total`; `deny`
//! answers 503. It then leaves Redis alone for a second before trying again, so a dead Redis
//! costs one timeout a second, not one per request; the first call that succeeds ends the
//! degraded mode, with no restart.

// Without the `redis` feature there is no shared side to call: the type stays for signatures.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::observe::Metrics;
use crate::stage::{Stage, StartError};

/// The spec's `x-gateway.state`, as generated code gives it.
#[derive(Debug, Clone, Copy)]
pub struct StateDef {
    /// `state.url` when `backend: redis` (interpolated at start); `None` for `memory`.
    pub redis: Option<&'static str>,
    /// Prefix of every Redis key (default `gwgen:`).
    pub prefix: &'static str,
    /// `on_state_error: deny`: answer 503 when Redis fails, instead of going on locally.
    pub deny: bool,
    /// Deadline of one Redis call, in milliseconds.
    pub timeout_ms: u64,
    /// Bytes the in-memory response cache may hold.
    pub cache_size: u64,
}

/// What to do when shared state cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Go on with this instance's own state.
    Local,
    /// Refuse with 503.
    Deny,
}

/// How often a background task asks Redis whether it is back, during an outage.
#[cfg(feature = "redis")]
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// The shared-state side: a Redis connection with a deadline and a circuit breaker. After a
/// failure, requests leave Redis alone (per-instance limits, or 503 under `deny`) while a
/// background task pings it every 250 ms; the first answer ends the outage, whether or not
/// requests arrive.
pub struct Shared {
    /// This value, for the background probe.
    #[cfg(feature = "redis")]
    me: std::sync::Weak<Shared>,
    #[cfg(feature = "redis")]
    client: redis::Client,
    #[cfg(feature = "redis")]
    conn: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    /// Key prefix, with the stage: `gwgen:prod:`.
    pub prefix: String,
    /// What a failure means.
    pub fallback: Fallback,
    timeout: Duration,
    base: Instant,
    /// Until when (ms since `base`) Redis is left alone after a failure.
    quiet_until: AtomicU64,
    degraded: AtomicBool,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("prefix", &self.prefix)
            .field("fallback", &self.fallback)
            .finish()
    }
}

/// Why a shared-state call did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable;

impl Shared {
    /// Connects lazily to the Redis of `def` for `stage`; `None` for the memory backend.
    pub fn new(
        def: &StateDef,
        stage: &Stage,
        metrics: Arc<Metrics>,
    ) -> Result<Option<Arc<Shared>>, StartError> {
        let Some(url) = def.redis else {
            return Ok(None);
        };
        let url = stage.interpolate(url, "`x-gateway.state.url`")?;
        #[cfg(feature = "redis")]
        {
            let client = redis::Client::open(url.as_str()).map_err(|e| {
                StartError::Invalid(format!("the Redis URL `{url}` is not usable: {e}"))
            })?;
            Ok(Some(Arc::new_cyclic(|me| Shared {
                me: me.clone(),
                client,
                conn: tokio::sync::OnceCell::new(),
                prefix: format!("{}{}:", def.prefix, stage.name),
                fallback: if def.deny {
                    Fallback::Deny
                } else {
                    Fallback::Local
                },
                timeout: Duration::from_millis(def.timeout_ms.max(1)),
                base: Instant::now(),
                quiet_until: AtomicU64::new(0),
                degraded: AtomicBool::new(false),
                metrics,
            })))
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = (url, metrics);
            Err(StartError::Invalid(
                "this gateway was built without Redis support".into(),
            ))
        }
    }

    fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// Whether calls are being skipped: Redis failed and has not answered the probe since.
    fn quiet(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
            || self.now_ms() < self.quiet_until.load(Ordering::Relaxed)
    }

    fn failed(&self, what: &str, error: &str) {
        self.quiet_until
            .store(self.now_ms() + 1000, Ordering::Relaxed);
        self.metrics.count("gwgen_state_errors_total", "", "");
        if !self.degraded.swap(true, Ordering::Relaxed) {
            self.metrics.set_degraded(true);
            #[cfg(feature = "redis")]
            if let Some(me) = self.me.upgrade() {
                tokio::spawn(async move { me.probe().await });
            }
            match self.fallback {
                Fallback::Local => tracing::warn!(
                    during = what,
                    error = error,
                    "Redis state is unavailable: limits and cache are per instance until it answers again"
                ),
                Fallback::Deny => tracing::warn!(
                    during = what,
                    error = error,
                    "Redis state is unavailable: requests that need it are refused with 503 until it answers again"
                ),
            }
        }
    }

    fn succeeded(&self) {
        if self.degraded.load(Ordering::Relaxed) && self.degraded.swap(false, Ordering::Relaxed) {
            self.metrics.set_degraded(false);
            tracing::info!("Redis state answers again: limits and cache are shared");
        }
    }

    /// Pings Redis until it answers, then ends the outage.
    #[cfg(feature = "redis")]
    async fn probe(self: Arc<Self>) {
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            let ping = self.attempt(|mut conn| async move {
                redis::cmd("PING").query_async::<String>(&mut conn).await
            });
            if let Ok(Ok(_)) = tokio::time::timeout(self.timeout, ping).await {
                self.quiet_until.store(0, Ordering::Relaxed);
                self.succeeded();
                return;
            }
        }
    }

    /// Runs `script` with `keys` and `args`; `Err` when Redis is down, slow or answers an error.
    #[cfg(feature = "redis")]
    pub async fn script<T: redis::FromRedisValue>(
        &self,
        what: &str,
        script: &redis::Script,
        keys: &[&str],
        args: &[u64],
    ) -> Result<T, Unavailable> {
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(*k);
        }
        for a in args {
            invocation.arg(*a);
        }
        self.run(what, |mut conn| async move {
            invocation.invoke_async::<T>(&mut conn).await
        })
        .await
    }

    /// Runs one command built by `cmd`.
    #[cfg(feature = "redis")]
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    pub async fn command<T: redis::FromRedisValue>(
        &self,
        what: &str,
        cmd: redis::Cmd,
    ) -> Result<T, Unavailable> {
        self.run(what, |mut conn| async move {
            cmd.query_async::<T>(&mut conn).await
        })
        .await
    }

    /// Runs a pipeline (its commands in one round trip).
    #[cfg(feature = "redis")]
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    pub async fn pipeline<T: redis::FromRedisValue>(
        &self,
        what: &str,
        pipe: redis::Pipeline,
    ) -> Result<T, Unavailable> {
        self.run(what, |mut conn| async move {
            pipe.query_async::<T>(&mut conn).await
        })
        .await
    }

    /// The Redis client, for connections of their own (pub/sub).
    #[cfg(feature = "redis")]
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// One call on the connection (made on first use).
    #[cfg(feature = "redis")]
    async fn attempt<T, F, Fut>(&self, call: F) -> redis::RedisResult<T>
    where
        F: FnOnce(redis::aio::ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(0);
                redis::aio::ConnectionManager::new_with_config(self.client.clone(), config).await
            })
            .await?
            .clone();
        call(conn).await
    }

    #[cfg(feature = "redis")]
    async fn run<T, F, Fut>(&self, what: &str, call: F) -> Result<T, Unavailable>
    where
        F: FnOnce(redis::aio::ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if self.quiet() {
            return Err(Unavailable);
        }
        match tokio::time::timeout(self.timeout, self.attempt(call)).await {
            Ok(Ok(v)) => {
                self.succeeded();
                Ok(v)
            }
            Ok(Err(e)) => {
                self.failed(what, &e.to_string());
                Err(Unavailable)
            }
            Err(_) => {
                self.failed(what, "timed out");
                Err(Unavailable)
            }
        }
    }
}
