//! WebSocket connections across instances (`state.backend: redis`): each instance records the
//! connections it holds in Redis, and a message for a connection another instance holds is
//! published on that instance's channel.
//!
//! Keys, under the state prefix (`gwgen:STAGE:`):
//! - `ws:c:ID`: the connection's record (a hash): its instance `i`, API path `p`, `Host` `d`,
//!   client address `ip`, `User-Agent` `ua`, `connectedAt` `t` and `lastActiveAt` `a` (ms;
//!   written with the heartbeat).
//! - `ws:i:INSTANCE`: the ids an instance holds; `ws:live:INSTANCE`: its heartbeat (6 s,
//!   renewed every 2 s); `ws:instances`: the instances that hold connections.
//! - channel `ws:to:INSTANCE`: `S` or `C`, the id, a newline, then the message (`S`end) or
//!   nothing (`C`lose).
//!
//! `$disconnect` fires once per connection: whoever deletes its record fires it. That is the
//! instance that held it, when the client or the gateway closes it; or, when an instance stops
//! without closing (killed, cut off), the first other instance that finds its heartbeat gone.
//! When Redis cannot be reached, an instance goes on with its own connections, as the rest of
//! the state does (`on_state_error`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;

use super::event::Connection;
use super::registry::{unix_ms, Registry, Undelivered};
use crate::state::Shared;

/// How often an instance renews its heartbeat and looks for instances that stopped.
const BEAT: Duration = Duration::from_secs(2);
/// How long a heartbeat lasts: an instance that stops without closing its connections is taken
/// for gone within this and one [`BEAT`] more.
const LIVE_MS: u64 = 6_000;

/// `lastActiveAt` onto a connection's record, if the record is there.
const TOUCH_LUA: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'a', ARGV[1]) end return 0";

/// This instance's part in the cluster.
pub(crate) struct Cluster {
    shared: Arc<Shared>,
    /// This instance's id.
    pub(crate) me: String,
}

impl Cluster {
    pub(crate) fn new(shared: Arc<Shared>) -> Cluster {
        Cluster {
            shared,
            me: super::registry::new_id(),
        }
    }

    fn key(&self, what: &str, id: &str) -> String {
        format!("{}ws:{what}:{id}", self.shared.prefix)
    }

    /// Records a connection this instance now holds.
    pub(crate) async fn joined(&self, c: &Connection) {
        let mut pipe = redis::pipe();
        pipe.hset_multiple(
            self.key("c", &c.id),
            &[
                ("i", self.me.clone()),
                ("p", c.api.path.to_string()),
                ("d", c.domain.clone()),
                ("ip", c.source_ip.to_string()),
                ("ua", c.user_agent.clone().unwrap_or_default()),
                ("t", unix_ms(c.connected_at).to_string()),
                ("a", unix_ms(c.connected_at).to_string()),
            ],
        )
        .ignore()
        .sadd(self.key("i", &self.me), &c.id)
        .ignore()
        .sadd(format!("{}ws:instances", self.shared.prefix), &self.me)
        .ignore()
        .set_options(
            self.key("live", &self.me),
            1,
            redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(LIVE_MS)),
        )
        .ignore();
        let _: Result<(), _> = self.shared.pipeline("WebSocket connect", pipe).await;
    }

    /// Removes the record of a connection this instance held; whether its `$disconnect` is
    /// this instance's to fire (it is, too, when Redis cannot tell).
    pub(crate) async fn left(&self, id: &str) -> bool {
        let mut pipe = redis::pipe();
        pipe.del(self.key("c", id))
            .srem(self.key("i", &self.me), id)
            .ignore();
        match self
            .shared
            .pipeline::<(u32,)>("WebSocket disconnect", pipe)
            .await
        {
            Ok((deleted,)) => deleted == 1,
            Err(_) => true,
        }
    }

    /// Sends `data` (`S`) or a close (`C`) to a connection another instance holds.
    pub(crate) async fn forward(
        &self,
        registry: &Registry,
        id: &str,
        close: bool,
        data: &[u8],
    ) -> Result<(), Undelivered> {
        let (owner, path): (Option<String>, Option<String>) = self
            .shared
            .command(
                "WebSocket post",
                redis::cmd("HMGET")
                    .arg(self.key("c", id))
                    .arg("i")
                    .arg("p")
                    .clone(),
            )
            .await
            .map_err(|_| Undelivered::Gone)?;
        let owner = owner.filter(|o| *o != self.me).ok_or(Undelivered::Gone)?;
        let limit = path
            .and_then(|p| registry.api(&p))
            .map(|api| api.message_limit());
        if limit.is_some_and(|limit| data.len() > limit) {
            return Err(Undelivered::TooLarge);
        }
        let mut payload = Vec::with_capacity(id.len() + data.len() + 2);
        payload.push(if close { b'C' } else { b'S' });
        payload.extend_from_slice(id.as_bytes());
        payload.push(b'\n');
        payload.extend_from_slice(data);
        let receivers: u32 = self
            .shared
            .command(
                "WebSocket post",
                redis::cmd("PUBLISH")
                    .arg(self.key("to", &owner))
                    .arg(payload)
                    .clone(),
            )
            .await
            .map_err(|_| Undelivered::Gone)?;
        if receivers == 0 {
            return Err(Undelivered::Gone);
        }
        Ok(())
    }

    /// A connection another instance holds, as `GET @connections/{id}` describes it.
    pub(crate) async fn describe(&self, id: &str) -> Option<serde_json::Value> {
        let record: std::collections::HashMap<String, String> = self
            .shared
            .command(
                "WebSocket describe",
                redis::cmd("HGETALL").arg(self.key("c", id)).clone(),
            )
            .await
            .ok()?;
        let ms = |k: &str| record.get(k).and_then(|v| v.parse::<u64>().ok());
        let mut identity = serde_json::json!({ "sourceIp": record.get("ip")? });
        if let Some(ua) = record.get("ua").filter(|ua| !ua.is_empty()) {
            identity["userAgent"] = serde_json::Value::String(ua.clone());
        }
        Some(serde_json::json!({
            "connectedAt": super::registry::iso_time(ms("t")?),
            "identity": identity,
            "lastActiveAt": super::registry::iso_time(ms("a").or(ms("t"))?),
        }))
    }

    /// Runs this instance's part: takes what other instances publish to it, renews its
    /// heartbeat (with the last activity of its connections) and sweeps up after instances
    /// that stopped. Returns when the gateway stops.
    pub(crate) async fn run(self: Arc<Self>, registry: Arc<Registry>) {
        let mut stop = registry.stopping();
        let stopping = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::pin!(stopping);
        let listen = tokio::spawn(self.clone().listen(registry.clone()));
        let mut beat = tokio::time::interval(BEAT);
        let mut flushed = std::collections::HashMap::new();
        loop {
            tokio::select! {
                _ = beat.tick() => {
                    self.beat(&registry, &mut flushed).await;
                    self.sweep(&registry).await;
                }
                () = &mut stopping => break,
            }
        }
        listen.abort();
    }

    /// The heartbeat, and the `lastActiveAt` of connections active since the last one.
    async fn beat(
        &self,
        registry: &Registry,
        flushed: &mut std::collections::HashMap<String, u64>,
    ) {
        let mut pipe = redis::pipe();
        pipe.set_options(
            self.key("live", &self.me),
            1,
            redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(LIVE_MS)),
        )
        .ignore();
        let active: std::collections::HashMap<String, u64> =
            registry.activity().into_iter().collect();
        flushed.retain(|id, _| active.contains_key(id));
        for (id, at) in &active {
            if flushed.get(id) != Some(at) {
                // Only onto a record that is there: a record another instance swept stays gone.
                pipe.cmd("EVAL")
                    .arg(TOUCH_LUA)
                    .arg(1)
                    .arg(self.key("c", id))
                    .arg(*at)
                    .ignore();
                flushed.insert(id.clone(), *at);
            }
        }
        let _: Result<(), _> = self.shared.pipeline("WebSocket heartbeat", pipe).await;
        // Records of connections this instance no longer holds: their removal failed while
        // Redis was unreachable (their `$disconnect` fired then). Gone now, so that posts to
        // them are 410 rather than published to nobody.
        let held: Result<Vec<String>, _> = self
            .shared
            .command(
                "WebSocket heartbeat",
                redis::cmd("SMEMBERS").arg(self.key("i", &self.me)).clone(),
            )
            .await;
        let stale: Vec<String> = held
            .unwrap_or_default()
            .into_iter()
            .filter(|id| !active.contains_key(id) && !registry.holds(id))
            .collect();
        if !stale.is_empty() {
            let mut pipe = redis::pipe();
            for id in &stale {
                pipe.del(self.key("c", id))
                    .ignore()
                    .srem(self.key("i", &self.me), id)
                    .ignore();
            }
            let _: Result<(), _> = self.shared.pipeline("WebSocket heartbeat", pipe).await;
        }
    }

    /// Fires `$disconnect` for the connections of instances whose heartbeat is gone.
    async fn sweep(&self, registry: &Registry) {
        let all = format!("{}ws:instances", self.shared.prefix);
        let Ok(instances) = self
            .shared
            .command::<Vec<String>>("WebSocket sweep", redis::cmd("SMEMBERS").arg(&all).clone())
            .await
        else {
            return;
        };
        for other in instances.into_iter().filter(|i| *i != self.me) {
            let alive: Result<bool, _> = self
                .shared
                .command(
                    "WebSocket sweep",
                    redis::cmd("EXISTS").arg(self.key("live", &other)).clone(),
                )
                .await;
            if alive != Ok(false) {
                continue;
            }
            let ids: Vec<String> = self
                .shared
                .command(
                    "WebSocket sweep",
                    redis::cmd("SMEMBERS").arg(self.key("i", &other)).clone(),
                )
                .await
                .unwrap_or_default();
            for id in ids {
                self.orphaned(registry, &id).await;
            }
            let mut pipe = redis::pipe();
            pipe.del(self.key("i", &other))
                .ignore()
                .srem(&all, &other)
                .ignore();
            let _: Result<(), _> = self.shared.pipeline("WebSocket sweep", pipe).await;
        }
    }

    /// A connection whose instance stopped: its `$disconnect` (1006), when this instance is
    /// the one that deletes its record.
    async fn orphaned(&self, registry: &Registry, id: &str) {
        let key = self.key("c", id);
        let mut pipe = redis::pipe();
        pipe.hgetall(&key).del(&key);
        let Ok((record, deleted)) = self
            .shared
            .pipeline::<(std::collections::HashMap<String, String>, u32)>("WebSocket sweep", pipe)
            .await
        else {
            return;
        };
        if deleted != 1 {
            return;
        }
        let Some(api) = record.get("p").and_then(|p| registry.api(p)) else {
            return;
        };
        let at = |k: &str| {
            record
                .get(k)
                .and_then(|v| v.parse::<u64>().ok())
                .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
        };
        let connection = Connection {
            id: id.to_string(),
            stage: api.stage.clone(),
            domain: record.get("d").cloned().unwrap_or_default(),
            source_ip: record
                .get("ip")
                .and_then(|ip| ip.parse().ok())
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
            user_agent: record.get("ua").filter(|u| !u.is_empty()).cloned(),
            connected_at: at("t").unwrap_or(SystemTime::UNIX_EPOCH),
            identity: None,
            headers: http::HeaderMap::new(),
            query: None,
            stage_variables: Default::default(),
            api,
        };
        super::connection::disconnected(
            &connection,
            (
                1006,
                "Going away: the gateway instance holding the connection stopped",
            ),
        )
        .await;
    }

    /// Takes what other instances publish to this one, reconnecting after a failure.
    async fn listen(self: Arc<Self>, registry: Arc<Registry>) {
        let channel = self.key("to", &self.me);
        loop {
            match self.shared.client().get_async_pubsub().await {
                Ok(mut pubsub) => {
                    if pubsub.subscribe(&channel).await.is_ok() {
                        let mut messages = pubsub.on_message();
                        while let Some(m) = messages.next().await {
                            let payload: &[u8] = m.get_payload_bytes();
                            deliver(&registry, payload).await;
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "the WebSocket channel is not reachable"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Carries out what another instance published: a message to send, or a close.
async fn deliver(registry: &Registry, payload: &[u8]) {
    let Some((&op, rest)) = payload.split_first() else {
        return;
    };
    let Some(at) = rest.iter().position(|b| *b == b'\n') else {
        return;
    };
    let Ok(id) = std::str::from_utf8(&rest[..at]) else {
        return;
    };
    let data = Bytes::copy_from_slice(&rest[at + 1..]);
    let _ = match op {
        b'S' => registry.post_here(id, data),
        b'C' => {
            registry.close_here(id).await;
            Ok(())
        }
        _ => Ok(()),
    };
}
