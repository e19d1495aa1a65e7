//! Throttling and quotas: token buckets (`rate` per second, at most `burst` at once) at the
//! usage-plan, route and stage levels, and request quotas per caller per day, week or month.
//!
//! Levels apply in AWS API Gateway's order: the caller's usage plan (its bucket and its quota,
//! decided together), then the route, then the stage. A request refused at one level has used a
//! token at the levels before it, as with AWS. A bucket is one per route (or per stage) unless
//! its `per: ip` keys it by the client address; a plan's bucket and quota are per caller (an API
//! key, or a verified identity whose scheme names the plan).
//!
//! The algorithm is GCRA (the "virtual scheduling" form of a token bucket), the same in memory
//! and in the Redis script, so a spec behaves the same on both backends: one theoretical arrival
//! time per bucket, no timers, exact `RateLimit-Remaining` and `Retry-After`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::observe::Metrics;
use crate::problem::Problem;
#[cfg(feature = "redis")]
use crate::state::Fallback;
use crate::state::{Shared, StateDef};

/// A token bucket from the spec.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Most tokens held at once.
    pub burst: u32,
    /// Whose requests share a bucket.
    pub per: Per,
}

/// Whose requests share a route or stage bucket (`throttle.per`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    /// All callers.
    Route,
    /// Each client address.
    Ip,
    /// Each verified client certificate (by fingerprint); a request without one counts
    /// against its address.
    ClientCert,
}

/// What a request's per-client buckets are keyed by.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// The client's address.
    pub ip: IpAddr,
    /// The fingerprint of the client certificate the handshake verified.
    pub cert: Option<&'a str>,
}

impl Client<'_> {
    /// The bucket key's client part for `per`, or `None` when all callers share it.
    fn part(&self, per: Per) -> Option<String> {
        match (per, self.cert) {
            (Per::Route, _) => None,
            (Per::ClientCert, Some(fingerprint)) => Some(format!("cert:{fingerprint}")),
            (Per::Ip | Per::ClientCert, _) => Some(self.ip.to_string()),
        }
    }
}

impl Rate {
    /// Nanoseconds between two tokens: at least 1, at most a century (a slower rate is the
    /// same as none).
    fn interval_ns(&self) -> u64 {
        const CENTURY_NS: f64 = 100.0 * 365.25 * 86_400.0 * 1e9;
        (1e9 / self.per_second).round().clamp(1.0, CENTURY_NS) as u64
    }
}

/// A quota period, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// From midnight to midnight.
    Day,
    /// From Monday to Monday (ISO weeks).
    Week,
    /// From the first of the month to the first of the next.
    Month,
}

/// A quota from the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaDef {
    /// Requests per period.
    pub limit: u64,
    /// The period.
    pub period: Period,
}

/// A usage plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanDef {
    /// Its name.
    pub name: &'static str,
    /// Its per-caller bucket.
    pub throttle: Option<Rate>,
    /// Its per-caller quota.
    pub quota: Option<QuotaDef>,
}

/// Throttling, quotas, caching and client addresses, as generated code describes them.
#[derive(Debug, Clone, Copy)]
pub struct TrafficDef {
    /// The usage plans.
    pub plans: &'static [PlanDef],
    /// Where state lives.
    pub state: StateDef,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: &'static [&'static str],
}

/// `n` in decimal, as a header value, in one allocation of its length (`HeaderValue::from(u64)`
/// makes two: a buffer, then its bytes shared when it is frozen).
fn number_value(n: u64) -> HeaderValue {
    let mut digits = itoa::Buffer::new();
    HeaderValue::from_str(digits.format(n)).unwrap_or_else(|_| HeaderValue::from(n))
}

/// What a bucket or quota said about a request that passed: the `RateLimit-*` values of the
/// tightest level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// `RateLimit-Limit`.
    pub limit: u64,
    /// `RateLimit-Remaining`.
    pub remaining: u64,
    /// `RateLimit-Reset`, in seconds.
    pub reset: u64,
}

impl Allowance {
    /// Sets the `RateLimit-*` headers.
    pub fn write(&self, headers: &mut HeaderMap) {
        const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
        const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
        const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
        headers.insert(LIMIT, number_value(self.limit));
        headers.insert(REMAINING, number_value(self.remaining));
        headers.insert(RESET, number_value(self.reset));
    }

    fn tighter(self, other: Option<Allowance>) -> Allowance {
        match other {
            Some(o) if o.remaining < self.remaining => o,
            _ => self,
        }
    }
}

/// One level's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allowed(Allowance),
    /// Refused by a bucket: wait this many nanoseconds.
    Throttled {
        limit: u64,
        retry_ns: u64,
    },
    /// Refused by a quota: the period ends in this many seconds.
    OverQuota {
        limit: u64,
        reset: u64,
    },
}

/// The level a refusal came from, as metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A usage plan's bucket.
    Plan,
    /// A usage plan's quota.
    Quota,
    /// The route's bucket.
    Route,
    /// The stage's bucket.
    Stage,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Plan => "plan",
            Level::Quota => "quota",
            Level::Route => "route",
            Level::Stage => "stage",
        }
    }
}

/// GCRA on one theoretical arrival time (`tat`, ns on the same clock as `now`). The window is
/// computed in 128 bits: `burst` × `interval` does not fit 64 bits for tiny rates.
fn gcra(tat: u64, now: u64, interval: u64, burst: u64) -> (Option<u64>, Verdict) {
    let base = tat.max(now);
    let next = base.saturating_add(interval);
    let window = u128::from(interval) * u128::from(burst);
    let ahead = u128::from(next - now);
    if ahead > window {
        let retry = (ahead - window).min(u128::from(u64::MAX)) as u64;
        (
            None,
            Verdict::Throttled {
                limit: burst,
                retry_ns: retry,
            },
        )
    } else {
        (
            Some(next),
            Verdict::Allowed(Allowance {
                limit: burst,
                remaining: ((window - ahead) / u128::from(interval.max(1))) as u64,
                reset: (next - now).div_ceil(1_000_000_000),
            }),
        )
    }
}

/// Where the current quota period of `period` ends (unix seconds), and its label for keys.
pub fn period_bounds(period: Period, now_secs: u64) -> (u64, String) {
    let days = now_secs / 86_400;
    let (end_day, start_day) = match period {
        Period::Day => (days + 1, days),
        Period::Week => {
            // 1970-01-01 was a Thursday: Monday is 3 days before day 4.
            let start = days - (days + 3) % 7;
            (start + 7, start)
        }
        Period::Month => {
            let (y, m, _) = civil_from_days(days as i64);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (
                days_from_civil(ny, nm, 1) as u64,
                days_from_civil(y, m, 1) as u64,
            )
        }
    };
    let (y, m, d) = civil_from_days(start_day as i64);
    let label = match period {
        Period::Day => format!("{y:04}-{m:02}-{d:02}"),
        Period::Week => format!("w{y:04}-{m:02}-{d:02}"),
        Period::Month => format!("{y:04}-{m:02}"),
    };
    (end_day * 86_400, label)
}

/// Howard Hinnant's `civil_from_days`: (year, month, day) of a day count since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The inverse of [`civil_from_days`].
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A caller's cell: its plan bucket and its quota count.
#[derive(Debug, Default, Clone, Copy)]
struct Cell {
    tat: u64,
    quota_end: u64,
    used: u64,
}

const SHARDS: usize = 16;

/// This instance's buckets and counters.
struct Local {
    base: Instant,
    /// Unkeyed buckets: one per route, then the stage's. Lock-free.
    fixed: Vec<Fixed>,
    shards: Vec<Mutex<Shard>>,
}

#[derive(Default)]
struct Shard {
    cells: HashMap<String, Cell>,
    swept: u64,
}

/// An unkeyed bucket (one for all callers of a route, or of the stage), which every request
/// of the route writes when admitted: one GCRA cell. A bucket with a burst of at least
/// [`BATCHED_BURST`] is drawn on in batches instead: a thread takes up to `burst` / 256 tokens
/// from the cell at once into its own reserve (one per [`crate::percore::slot`], each on its
/// own cache line) and admits requests from there, so the shared cell is written once a batch
/// rather than once a request. The bound, as in docs/performance.md: reserves hold at most
/// `burst` / 16 tokens in all, so over any time t the bucket admits at most `rate` × t +
/// `burst` × 17/16 (an exact bucket: `rate` × t + `burst`), and a request is refused only when
/// the cell is empty, with at most `burst` / 16 tokens left in other threads' reserves.
struct Fixed {
    /// The theoretical arrival time of the next token (GCRA).
    cell: crate::percore::Padded<AtomicU64>,
    /// Tokens taken from the cell and not used yet, by slot; empty when not batched.
    reserves: Box<[crate::percore::Padded<AtomicU64>]>,
    /// The most tokens a thread takes at once.
    batch: u64,
    /// Nanoseconds between two tokens; 0 for no bucket.
    interval: u64,
    burst: u64,
}

/// The least burst that is drawn on in batches.
const BATCHED_BURST: u32 = 512;

impl Fixed {
    fn new(rate: Option<Rate>) -> Fixed {
        let (interval, burst) = rate.map_or((0, 0), |r| (r.interval_ns(), r.burst));
        let batched = burst >= BATCHED_BURST;
        Fixed {
            cell: crate::percore::Padded(AtomicU64::new(0)),
            reserves: (0..if batched { crate::percore::SLOTS } else { 0 })
                .map(|_| crate::percore::Padded(AtomicU64::new(0)))
                .collect(),
            batch: if batched { u64::from(burst) / 256 } else { 1 },
            interval,
            burst: u64::from(burst),
        }
    }

    /// One request at `now`: a token from this thread's reserve, else from the cell.
    fn take(&self, now: u64) -> Verdict {
        if self.interval == 0 {
            return Verdict::Allowed(Allowance {
                limit: 0,
                remaining: 0,
                reset: 0,
            });
        }
        let reserve = self.reserves.get(crate::percore::slot());
        if let Some(reserve) = reserve {
            let mut left = reserve.load(Ordering::Relaxed);
            while left > 0 {
                match reserve.compare_exchange_weak(
                    left,
                    left - 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Verdict::Allowed(self.allowance(now)),
                    Err(seen) => left = seen,
                }
            }
        }
        let window = u128::from(self.interval) * u128::from(self.burst);
        let mut tat = self.cell.load(Ordering::Acquire);
        loop {
            let base = tat.max(now);
            // Tokens the cell holds now: those that fit before the window is full.
            let held = window.saturating_sub(u128::from(base - now)) / u128::from(self.interval);
            if held == 0 {
                let ahead = u128::from(base - now) + u128::from(self.interval);
                return Verdict::Throttled {
                    limit: self.burst,
                    retry_ns: (ahead - window).min(u128::from(u64::MAX)) as u64,
                };
            }
            let got = (held as u64).min(self.batch);
            let next = base.saturating_add(got.saturating_mul(self.interval));
            match self
                .cell
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if let (Some(reserve), true) = (reserve, got > 1) {
                        reserve.fetch_add(got - 1, Ordering::Relaxed);
                    }
                    return Verdict::Allowed(self.allowance(now));
                }
                Err(seen) => tat = seen,
            }
        }
    }

    /// `RateLimit-*` from the cell (tokens in reserves are not counted).
    fn allowance(&self, now: u64) -> Allowance {
        let ahead = self.cell.load(Ordering::Relaxed).max(now) - now;
        let window = u128::from(self.interval) * u128::from(self.burst);
        Allowance {
            limit: self.burst,
            remaining: (window.saturating_sub(u128::from(ahead)) / u128::from(self.interval))
                as u64,
            reset: ahead.div_ceil(1_000_000_000),
        }
    }
}

impl Local {
    /// Buckets for the unkeyed levels `fixed` (by slot), and room for keyed ones.
    fn new(fixed: &[Option<Rate>]) -> Local {
        Local {
            base: Instant::now(),
            fixed: fixed
                .iter()
                .map(|r| Fixed::new(r.filter(|r| r.per == Per::Route)))
                .collect(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn fixed(&self, slot: usize) -> Verdict {
        match self.fixed.get(slot) {
            Some(bucket) => bucket.take(self.now()),
            None => Verdict::Allowed(Allowance {
                limit: 0,
                remaining: 0,
                reset: 0,
            }),
        }
    }

    /// A keyed bucket and, for plans, the quota; both decided together.
    fn keyed(&self, key: &str, rate: Option<&Rate>, quota: Option<&QuotaDef>) -> Verdict {
        // The shard only spreads lock contention; any stable spread will do.
        let shard_ix = key
            .bytes()
            .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(b as usize))
            % SHARDS;
        let now = self.now();
        let wall = unix_now();
        let mut shard = self.shards[shard_ix]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Full buckets with no quota use left are the same as absent ones: drop them now and
        // then, so memory follows the callers of the last few seconds.
        if shard.cells.len() > 1024 && now.saturating_sub(shard.swept) > 1_000_000_000 {
            shard.swept = now;
            shard
                .cells
                .retain(|_, c| c.tat > now || (c.used > 0 && c.quota_end > wall));
        }
        let cell = shard.cells.entry(key.to_string()).or_default();
        let mut verdict = None;
        let mut next_tat = None;
        if let Some(rate) = rate {
            let (next, v) = gcra(cell.tat, now, rate.interval_ns(), u64::from(rate.burst));
            if next.is_none() {
                return v;
            }
            next_tat = next;
            verdict = Some(v);
        }
        let mut quota_allow = None;
        if let Some(q) = quota {
            let (end, _) = period_bounds(q.period, wall);
            let used = if cell.quota_end == end { cell.used } else { 0 };
            if used >= q.limit {
                return Verdict::OverQuota {
                    limit: q.limit,
                    reset: end.saturating_sub(wall),
                };
            }
            cell.quota_end = end;
            cell.used = used + 1;
            quota_allow = Some(Allowance {
                limit: q.limit,
                remaining: q.limit - used - 1,
                reset: end.saturating_sub(wall),
            });
        }
        if let Some(t) = next_tat {
            cell.tat = t;
        }
        let allowance = match (verdict, quota_allow) {
            (Some(Verdict::Allowed(a)), q) => a.tighter(q),
            (_, Some(q)) => q,
            _ => Allowance {
                limit: 0,
                remaining: 0,
                reset: 0,
            },
        };
        Verdict::Allowed(allowance)
    }
}

/// The GCRA bucket as a Redis script: the same arithmetic in microseconds on Redis's clock, so
/// every instance agrees. Returns `{allowed, limit, remaining or retry µs, reset µs}`.
#[cfg(feature = "redis")]
const BUCKET_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local window = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local nxt = tat + interval
if nxt - now > window then
  return {0, burst, nxt - now - window, tat - now}
end
local used = 0
if #KEYS > 1 then
  used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used >= tonumber(ARGV[3]) then
    return {2, tonumber(ARGV[3]), 0, 0}
  end
end
if interval > 0 then
  redis.call('SET', KEYS[1], string.format('%d', nxt), 'PX', math.floor((nxt - now) / 1000) + 1)
end
local remaining = 0
if interval > 0 then remaining = math.floor((window - (nxt - now)) / interval) end
if #KEYS > 1 then
  used = redis.call('INCR', KEYS[2])
  if used == 1 then redis.call('EXPIREAT', KEYS[2], ARGV[4]) end
  return {1, burst, remaining, nxt - now, used}
end
return {1, burst, remaining, nxt - now}
"#;

/// Throttles and quotas for one gateway.
pub struct Throttler {
    plans: &'static [PlanDef],
    routes: Vec<Option<Rate>>,
    /// Short stable names of the routes for Redis keys (`{r:TAG}`), made once.
    route_tags: Vec<String>,
    stage: Option<Rate>,
    local: Local,
    shared: Option<Arc<Shared>>,
    metrics: Arc<Metrics>,
    #[cfg(feature = "redis")]
    script: redis::Script,
}

impl std::fmt::Debug for Throttler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttler")
            .field("routes", &self.routes.len())
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

/// Who is asking, for the plan level: (plan, caller).
pub type Caller<'a> = Option<(&'a str, &'a str)>;

impl Throttler {
    /// Throttling for routes with these buckets (by route index) and a stage bucket.
    pub fn new(
        plans: &'static [PlanDef],
        routes: Vec<(&'static str, Option<Rate>)>,
        stage: Option<Rate>,
        shared: Option<Arc<Shared>>,
        metrics: Arc<Metrics>,
    ) -> Throttler {
        let route_tags = routes
            .iter()
            .map(|(key, _)| {
                use sha2::Digest;
                let d = sha2::Sha256::digest(key.as_bytes());
                let tag: String = d[..6].iter().map(|b| format!("{b:02x}")).collect();
                format!("{{r:{tag}}}")
            })
            .collect();
        let routes: Vec<Option<Rate>> = routes.into_iter().map(|(_, r)| r).collect();
        let fixed: Vec<Option<Rate>> = routes.iter().copied().chain([stage]).collect();
        Throttler {
            plans,
            local: Local::new(&fixed),
            routes,
            route_tags,
            stage,
            shared,
            metrics,
            #[cfg(feature = "redis")]
            script: redis::Script::new(BUCKET_LUA),
        }
    }

    /// Whether anything throttles `route` for `caller`.
    pub fn applies(&self, route: usize, caller: Caller<'_>) -> bool {
        self.stage.is_some()
            || self.routes.get(route).is_some_and(Option::is_some)
            || caller.is_some_and(|(plan, _)| self.plan(plan).is_some())
    }

    fn plan(&self, name: &str) -> Option<&'static PlanDef> {
        self.plans
            .iter()
            .find(|p| p.name == name && (p.throttle.is_some() || p.quota.is_some()))
    }

    /// Admits a request to `route` from `caller` at `client`, or refuses it with 429 (503 when
    /// shared state fails under `on_state_error: deny`). On success, the tightest level's
    /// `RateLimit-*` values.
    pub async fn admit(
        &self,
        route: usize,
        route_name: &'static str,
        caller: Caller<'_>,
        client: Client<'_>,
    ) -> Result<Option<Allowance>, Problem> {
        let mut tightest: Option<Allowance> = None;
        if let Some(caller) = caller {
            tightest = self.admit_plan(route_name, caller).await?;
        }
        if let Some(rate) = self.routes.get(route).copied().flatten() {
            let tag = &self.route_tags[route];
            let (key, slot) = match client.part(rate.per) {
                Some(who) => (
                    std::borrow::Cow::Owned(format!("{}:{who}}}", &tag[..tag.len() - 1])),
                    None,
                ),
                None => (std::borrow::Cow::Borrowed(tag.as_str()), Some(route)),
            };
            let verdict = self.decide(&key, slot, Some(&rate), None).await?;
            tightest = self.settle(verdict, Level::Route, route_name, tightest)?;
        }
        if let Some(rate) = self.stage {
            let (key, slot) = match client.part(rate.per) {
                Some(who) => (std::borrow::Cow::Owned(format!("{{s:{who}}}")), None),
                None => (std::borrow::Cow::Borrowed("{s}"), Some(self.routes.len())),
            };
            let verdict = self.decide(&key, slot, Some(&rate), None).await?;
            tightest = self.settle(verdict, Level::Stage, route_name, tightest)?;
        }
        Ok(tightest)
    }

    /// The plan level alone: `caller`'s usage plan's bucket and quota (`None` when its plan
    /// has neither). WebSocket messages count here, against the same plan as HTTP requests.
    pub(crate) async fn admit_plan(
        &self,
        route_name: &'static str,
        (plan_name, who): (&str, &str),
    ) -> Result<Option<Allowance>, Problem> {
        let Some(plan) = self.plan(plan_name) else {
            return Ok(None);
        };
        let key = format!("{{c:{}:{}}}", tag(plan_name), tag(who));
        let verdict = self
            .decide(&key, None, plan.throttle.as_ref(), plan.quota.as_ref())
            .await?;
        if matches!(verdict, Verdict::Allowed(_)) && plan.quota.is_some() {
            self.metrics.count("gwgen_quota_used_total", plan.name, "");
        }
        self.settle(verdict, Level::Plan, route_name, None)
    }

    fn settle(
        &self,
        verdict: Verdict,
        level: Level,
        route: &'static str,
        tightest: Option<Allowance>,
    ) -> Result<Option<Allowance>, Problem> {
        match verdict {
            Verdict::Allowed(a) => Ok(Some(a.tighter(tightest))),
            Verdict::Throttled { limit, retry_ns } => {
                self.metrics
                    .count("gwgen_throttled_total", route, level.name());
                let secs = retry_ns.div_ceil(1_000_000_000).max(1);
                Err(too_many(
                    "the request rate is over the limit; retry later",
                    limit,
                    secs,
                ))
            }
            Verdict::OverQuota { limit, reset } => {
                self.metrics
                    .count("gwgen_throttled_total", route, Level::Quota.name());
                Err(too_many(
                    "the usage plan's quota for this period is used up",
                    limit,
                    reset.max(1),
                )
                .kind("QUOTA_EXCEEDED"))
            }
        }
    }

    /// One level, on Redis when configured (falling back as `on_state_error` says), else here.
    async fn decide(
        &self,
        key: &str,
        slot: Option<usize>,
        rate: Option<&Rate>,
        quota: Option<&QuotaDef>,
    ) -> Result<Verdict, Problem> {
        #[cfg(feature = "redis")]
        if let Some(shared) = &self.shared {
            match self.decide_shared(shared, key, rate, quota).await {
                Ok(v) => return Ok(v),
                Err(_) if shared.fallback == Fallback::Deny => {
                    return Err(Problem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Service Unavailable",
                        "rate limits cannot be checked right now",
                    ))
                }
                Err(_) => {}
            }
        }
        Ok(match (slot, rate, quota) {
            (Some(slot), Some(_), None) => self.local.fixed(slot),
            _ => self.local.keyed(key, rate, quota),
        })
    }

    #[cfg(feature = "redis")]
    async fn decide_shared(
        &self,
        shared: &Shared,
        key: &str,
        rate: Option<&Rate>,
        quota: Option<&QuotaDef>,
    ) -> Result<Verdict, crate::state::Unavailable> {
        let bucket_key = format!("{}tb:{key}", shared.prefix);
        let (interval, burst) = match rate {
            Some(r) => ((r.interval_ns() / 1000).max(1), u64::from(r.burst)),
            // No bucket: a window no request can fill.
            None => (0, 1),
        };
        let wall = unix_now();
        let reply: Vec<i64> = match quota {
            Some(q) => {
                let (end, label) = period_bounds(q.period, wall);
                let quota_key = format!("{}q:{key}:{label}", shared.prefix);
                shared
                    .script(
                        "a quota",
                        &self.script,
                        &[&bucket_key, &quota_key],
                        &[interval, burst, q.limit, end],
                    )
                    .await?
            }
            None => {
                shared
                    .script(
                        "a throttle",
                        &self.script,
                        &[&bucket_key],
                        &[interval, burst],
                    )
                    .await?
            }
        };
        let at = |i: usize| reply.get(i).copied().unwrap_or(0).max(0) as u64;
        Ok(match at(0) {
            0 => Verdict::Throttled {
                limit: at(1),
                retry_ns: at(2).saturating_mul(1000),
            },
            2 => {
                let q = quota.map(|q| q.limit).unwrap_or(0);
                let (end, _) = quota
                    .map(|q| period_bounds(q.period, wall))
                    .unwrap_or((wall, String::new()));
                Verdict::OverQuota {
                    limit: q,
                    reset: end.saturating_sub(wall),
                }
            }
            _ => {
                let bucket = Allowance {
                    limit: at(1),
                    remaining: at(2),
                    reset: at(3).div_ceil(1_000_000),
                };
                let quota_allow = quota.map(|q| {
                    let (end, _) = period_bounds(q.period, wall);
                    Allowance {
                        limit: q.limit,
                        remaining: q.limit.saturating_sub(at(4)),
                        reset: end.saturating_sub(wall),
                    }
                });
                Verdict::Allowed(match rate {
                    Some(_) => bucket.tighter(quota_allow),
                    None => quota_allow.unwrap_or(bucket),
                })
            }
        })
    }
}

fn too_many(detail: &str, limit: u64, retry_secs: u64) -> Problem {
    let mut p = Problem::new(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", detail);
    p.headers
        .push((http::header::RETRY_AFTER, HeaderValue::from(retry_secs)));
    p.headers.push((
        http::HeaderName::from_static("ratelimit-limit"),
        HeaderValue::from(limit),
    ));
    p.headers.push((
        http::HeaderName::from_static("ratelimit-remaining"),
        HeaderValue::from(0u64),
    ));
    p.headers.push((
        http::HeaderName::from_static("ratelimit-reset"),
        HeaderValue::from(retry_secs),
    ));
    p
}

/// A name made safe for a Redis key: kept when plain, else a digest (so `{` and `}`, which
/// Redis Cluster reads as hash tags, never come from a caller).
fn tag(s: &str) -> String {
    if !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
    {
        s.to_string()
    } else {
        use sha2::Digest;
        let d = sha2::Sha256::digest(s.as_bytes());
        let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("h{hex}")
    }
}

/// An address or CIDR block of a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1` or `192.168.1.7`.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        (bits <= max).then_some(Cidr { addr, bits })
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy, in which case the
/// nearest address in `X-Forwarded-For` that is not itself a trusted proxy. A malformed entry
/// ends the walk at the last trusted hop, so a client cannot choose its address by sending
/// `X-Forwarded-For` itself.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    if trusted.is_empty() || !trusted.iter().any(|c| c.contains(peer)) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !trusted.iter().any(|c| c.contains(ip)) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// Parses the trusted proxy list at start.
pub fn parse_trusted(list: &[&str]) -> Result<Vec<Cidr>, crate::stage::StartError> {
    list.iter()
        .map(|s| {
            Cidr::parse(s).ok_or_else(|| {
                crate::stage::StartError::Invalid(format!(
                    "`x-gateway.trusted_proxies`: `{s}` is not an address or CIDR block"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_fields_carry_their_numbers() {
        let numbers: Vec<u64> = (0..3000u64)
            .map(|k| k * k * 7919 % 1_000_003)
            .chain([u64::MAX, 0])
            .collect();
        let mut kept = Vec::new();
        for &n in &numbers {
            let mut headers = HeaderMap::new();
            Allowance {
                limit: n,
                remaining: n / 2,
                reset: 60,
            }
            .write(&mut headers);
            kept.push(headers);
        }
        for (headers, &n) in kept.iter().zip(&numbers) {
            let field = |name: &str| headers[name].to_str().unwrap().to_string();
            assert_eq!(field("ratelimit-limit"), n.to_string());
            assert_eq!(field("ratelimit-remaining"), (n / 2).to_string());
            assert_eq!(field("ratelimit-reset"), "60");
        }
    }

    #[test]
    fn buckets_are_keyed_per_route_address_or_certificate() {
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let with = Client {
            ip,
            cert: Some("ab12"),
        };
        let without = Client { ip, cert: None };
        assert_eq!(with.part(Per::Route), None);
        assert_eq!(with.part(Per::Ip).as_deref(), Some("10.0.0.7"));
        assert_eq!(with.part(Per::ClientCert).as_deref(), Some("cert:ab12"));
        // Without a certificate, a request counts against its address.
        assert_eq!(without.part(Per::ClientCert).as_deref(), Some("10.0.0.7"));
    }

    #[test]
    fn tiny_rates_saturate_instead_of_overflowing() {
        let rate = Rate {
            per_second: 1e-300,
            burst: 2,
            per: Per::Route,
        };
        let local = Local::new(&[Some(rate)]);
        assert!(matches!(local.fixed(0), Verdict::Allowed(_)));
        assert!(matches!(local.fixed(0), Verdict::Allowed(_)));
        assert!(matches!(local.fixed(0), Verdict::Throttled { .. }));
        assert!(matches!(local.fixed(0), Verdict::Throttled { .. }));
    }

    #[test]
    fn a_batched_bucket_admits_what_one_exact_bucket_would() {
        let rate = Rate {
            per_second: 1600.0,
            burst: 512,
            per: Per::Route,
        };
        let bucket = Fixed::new(Some(rate));
        assert_eq!(bucket.batch, 2, "batched");
        let admitted = |bucket: &Fixed, now: u64, tries: usize| {
            (0..tries)
                .filter(|_| matches!(bucket.take(now), Verdict::Allowed(_)))
                .count()
        };
        // At one instant, the whole burst and no more.
        assert_eq!(admitted(&bucket, 1_000_000_000, 600), 512);
        match bucket.take(1_000_000_000) {
            Verdict::Throttled { limit, retry_ns } => {
                assert_eq!(limit, 512);
                assert_eq!(retry_ns, 625_000, "the next token");
            }
            v => panic!("{v:?}"),
        }
        // Threads together get the burst, no more.
        let bucket = std::sync::Arc::new(Fixed::new(Some(rate)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let bucket = bucket.clone();
                std::thread::spawn(move || admitted(&bucket, 1_000_000_000, 1000))
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert_eq!(total, 512);
        // Two seconds of 1 ms ticks, drawn on slowly from full: what an exact bucket admits
        // (the burst, then 1600 a second), give or take one batch.
        let exact = Fixed::new(Some(Rate { burst: 511, ..rate }));
        assert_eq!(exact.batch, 1, "not batched");
        let bucket = Fixed::new(Some(rate));
        let (mut total, mut reference) = (0, 0);
        for tick in 0..2000u64 {
            let now = 1_000_000_000 + tick * 1_000_000;
            total += admitted(&bucket, now, 10);
            reference += admitted(&exact, now, 10);
        }
        assert!(total.abs_diff(reference + 1) <= 2, "{total} vs {reference}");
    }

    #[test]
    fn gcra_allows_a_burst_then_refills_at_the_rate() {
        let (interval, burst) = (100_000_000, 3); // 10/s, burst 3
        let mut tat = 0;
        for left in [2, 1, 0] {
            let (next, v) = gcra(tat, 1_000_000_000, interval, burst);
            tat = next.expect("allowed");
            assert!(
                matches!(v, Verdict::Allowed(a) if a.remaining == left),
                "{v:?}"
            );
        }
        let (next, v) = gcra(tat, 1_000_000_000, interval, burst);
        assert!(next.is_none());
        assert_eq!(
            v,
            Verdict::Throttled {
                limit: 3,
                retry_ns: interval
            }
        );
        // One interval later, exactly one more.
        let (next, _) = gcra(tat, 1_100_000_000, interval, burst);
        tat = next.expect("refilled");
        assert!(gcra(tat, 1_100_000_000, interval, burst).0.is_none());
    }

    #[test]
    fn quota_periods_are_utc_calendar_periods() {
        // 2026-11-26T12:00:00Z, a Thursday.
        let t = 1_795_651_200 + 12 * 3600;
        let (end, label) = period_bounds(Period::Day, t);
        assert_eq!(label, "2026-11-26");
        assert_eq!(end, days_from_civil(2026, 11, 27) as u64 * 86_400);
        let (end, label) = period_bounds(Period::Week, t);
        assert_eq!(label, "w2026-11-23");
        assert_eq!(end, days_from_civil(2026, 11, 30) as u64 * 86_400);
        let (end, label) = period_bounds(Period::Month, t);
        assert_eq!(label, "2026-11");
        assert_eq!(end, days_from_civil(2026, 12, 1) as u64 * 86_400);
        let dec = days_from_civil(2026, 12, 31) as u64 * 86_400;
        assert_eq!(
            period_bounds(Period::Month, dec).0,
            days_from_civil(2027, 1, 1) as u64 * 86_400
        );
        for z in [-1000i64, 0, 59, 60, 365, 11_016, 20_000, 100_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn client_address_believes_only_trusted_proxies() {
        let trusted = parse_trusted(&["10.0.0.0/8", "::1"]).expect("parses");
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 1.2.3.4, 10.1.1.1"),
        );
        let peer: IpAddr = "10.0.0.5".parse().expect("ip");
        assert_eq!(
            client_address(peer, &h, &trusted),
            "1.2.3.4".parse::<IpAddr>().expect("ip")
        );
        let stranger: IpAddr = "8.8.8.8".parse().expect("ip");
        assert_eq!(client_address(stranger, &h, &trusted), stranger);
        h.insert("x-forwarded-for", HeaderValue::from_static("nonsense"));
        assert_eq!(client_address(peer, &h, &trusted), peer);
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("::ffff:0:0/96").is_some());
    }

    #[test]
    fn a_plan_cell_decides_bucket_and_quota_together() {
        let local = Local::new(&[]);
        let rate = Rate {
            per_second: 0.001,
            burst: 2,
            per: Per::Route,
        };
        let quota = QuotaDef {
            limit: 3,
            period: Period::Day,
        };
        assert!(matches!(
            local.keyed("a", Some(&rate), Some(&quota)),
            Verdict::Allowed(_)
        ));
        assert!(matches!(
            local.keyed("a", Some(&rate), Some(&quota)),
            Verdict::Allowed(_)
        ));
        // The bucket is empty: refused, and the quota is not charged.
        assert!(matches!(
            local.keyed("a", Some(&rate), Some(&quota)),
            Verdict::Throttled { .. }
        ));
        assert_eq!(
            local
                .shards
                .iter()
                .map(|s| s
                    .lock()
                    .expect("lock")
                    .cells
                    .get("a")
                    .map(|c| c.used)
                    .unwrap_or(0))
                .sum::<u64>(),
            2
        );
        let only_quota = |k| local.keyed(k, None, Some(&quota));
        for _ in 0..3 {
            assert!(matches!(only_quota("b"), Verdict::Allowed(_)));
        }
        assert!(matches!(
            only_quota("b"),
            Verdict::OverQuota { limit: 3, .. }
        ));
    }
}
