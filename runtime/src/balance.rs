//! Several upstream targets (`integration.targets`), as Envoy's cluster manager does for a
//! cluster: a weighted choice per request, passive ejection of failing targets (outlier
//! detection), active health checks, retries of idempotent requests on another target within a
//! budget, and a cap on each target's requests in flight (circuit breaking).
//!
//! - **Choice**: `round_robin` walks a smooth weighted order (weights 3 and 1: a a b a …);
//!   `least_request` takes the target with the fewest requests in flight for its weight.
//!   Targets that are ejected, unhealthy or at `max_requests` are passed over.
//! - **Passive ejection**: [`EJECT_AFTER`] failures in a row (no connection, no answer, a 502, 503
//!   or 504, a timeout) eject a target for 10 s, doubled at each ejection in a row up to 5 min;
//!   an answer from it ends the run. An ejected target takes requests again when its time is up.
//! - **Active checks** (`health_check`): every `interval`, `GET path` on each target within
//!   `timeout`; a 2xx or 3xx is a pass. `unhealthy_after` failures in a row take a target out,
//!   `healthy_after` passes in a row bring it back (and end an ejection).
//! - **Retries**: only for requests of an idempotent method with no body, after a failure of the
//!   kinds above but a timeout, each on a target not tried yet, at most `retries` times; a retry
//!   costs a token of the route's budget, which each request adds a fifth of a token to (so
//!   retries stay within about 20 % of requests, as Envoy's retry budget), with a floor of 3.
//!   After an answer (502, 503, 504) the next try waits 25 ms, doubled each time; after no
//!   connection, it does not wait.
//! - Every target down: 503 ("no healthy upstream"); every healthy one at `max_requests`: 503 at
//!   once ("upstream overloaded"), with `Retry-After: 1`.
//!
//! The counters of a route with several targets (its turn, each target's requests in flight)
//! are shared by the threads that serve it; a route with one target has none.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::integration::UrlTemplate;
use crate::stage::{Stage, StartError};

/// Failures in a row that eject a target.
pub(crate) const EJECT_AFTER: u32 = 3;
const EJECT_BASE: Duration = Duration::from_secs(10);
const EJECT_MAX: Duration = Duration::from_secs(300);
/// Retry budget, in thousandths of a retry.
const BUDGET_PER_REQUEST: i64 = 200;
const BUDGET_FLOOR: i64 = 3_000;
const BUDGET_MAX: i64 = 10_000;

/// How a target is chosen (`balance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Weighted round robin.
    RoundRobin,
    /// Fewest requests in flight for the weight.
    LeastRequest,
}

/// Active health checks (`health_check`).
#[derive(Debug, Clone, Copy)]
pub struct HealthDef {
    /// The path to `GET`.
    pub path: &'static str,
    /// Between rounds.
    pub interval_ms: u64,
    /// For one check.
    pub timeout_ms: u64,
    /// Failures in a row that take a target out.
    pub unhealthy_after: u32,
    /// Passes in a row that bring it back.
    pub healthy_after: u32,
}

/// An `http` integration's targets and what governs them, as the spec gives them.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamsDef {
    /// `(url, weight)` of each target.
    pub targets: &'static [(&'static str, u32)],
    /// How a target is chosen.
    pub balance: Balance,
    /// Most retries of one request (0: none).
    pub retries: u32,
    /// Most requests in flight per target (0: no cap).
    pub max_requests: u32,
    /// Active health checks.
    pub health: Option<HealthDef>,
}

/// One target and what is known of it.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) url: UrlTemplate,
    /// `scheme://host:port`, for logs.
    label: String,
    weight: u32,
    in_flight: AtomicU32,
    failures: AtomicU32,
    ejections: AtomicU32,
    /// Milliseconds after the balancer's epoch until which it is ejected.
    ejected_until: AtomicU64,
    healthy: AtomicBool,
    /// For `/metrics`: requests sent, failures, ejections, retries after a failure here, and
    /// the microseconds waited for answers.
    requests: AtomicU64,
    failed: AtomicU64,
    ejected: AtomicU64,
    retried: AtomicU64,
    waited_us: AtomicU64,
}

/// A route's targets.
#[derive(Debug)]
pub struct Balancer {
    pub(crate) targets: Vec<Target>,
    order: Vec<usize>,
    turn: AtomicUsize,
    def: UpstreamsDef,
    budget: AtomicI64,
    epoch: Instant,
    checking: OnceLock<()>,
}

/// Why no target can take a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoTarget {
    /// Every target not yet tried is ejected or unhealthy.
    Down,
    /// Every healthy one is at `max_requests`.
    Saturated,
}

/// A request in flight on a target: counted until dropped.
pub(crate) struct InFlight<'b> {
    balancer: &'b Balancer,
    pub(crate) index: usize,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.balancer.targets[self.index]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl InFlight<'_> {
    /// The same count, held by something that outlives the request's borrow of `balancer` (an
    /// answer's body that is still streaming).
    pub(crate) fn owned(self, balancer: &Arc<Balancer>) -> OwnedFlight {
        let index = self.index;
        std::mem::forget(self);
        OwnedFlight {
            balancer: balancer.clone(),
            index,
        }
    }
}

/// An [`InFlight`] that owns its balancer.
pub(crate) struct OwnedFlight {
    balancer: Arc<Balancer>,
    index: usize,
}

impl Drop for OwnedFlight {
    fn drop(&mut self) {
        self.balancer.targets[self.index]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Smooth weighted round robin (nginx's): the order in which one cycle visits the targets.
fn smooth_order(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += i64::from(w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        order.push(best);
    }
    order
}

impl Balancer {
    /// The targets of `def` for `stage`, shared with every route that names the same ones with
    /// the same settings (routes that inherit them from `defaults`): one health check each, and
    /// one account of each target's failures, as an Envoy cluster.
    pub(crate) fn shared(
        stage: &Stage,
        def: &UpstreamsDef,
        append_path: bool,
        context: &str,
    ) -> Result<Arc<Balancer>, StartError> {
        let key = format!("{}\0{def:?}\0{append_path}", stage.name);
        REGISTRY.get_or_make(key, || Balancer::new(stage, def, append_path, context))
    }

    /// The targets of `def` for `stage`; `append_path` for URLs inherited from `defaults`.
    pub(crate) fn new(
        stage: &Stage,
        def: &UpstreamsDef,
        append_path: bool,
        context: &str,
    ) -> Result<Balancer, StartError> {
        let mut targets = Vec::with_capacity(def.targets.len());
        for (url, weight) in def.targets {
            let url = UrlTemplate::new(stage, url, append_path, context)?;
            let expanded = url.expand(&crate::router::PathParams::empty(), &[], None);
            let label = expanded
                .find("://")
                .map(|i| {
                    let rest = &expanded[i + 3..];
                    let end = rest.find(['/', '?']).unwrap_or(rest.len());
                    expanded[..i + 3 + end].to_string()
                })
                .unwrap_or(expanded);
            targets.push(Target {
                url,
                label,
                weight: (*weight).max(1),
                in_flight: AtomicU32::new(0),
                failures: AtomicU32::new(0),
                ejections: AtomicU32::new(0),
                ejected_until: AtomicU64::new(0),
                healthy: AtomicBool::new(true),
                requests: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                ejected: AtomicU64::new(0),
                retried: AtomicU64::new(0),
                waited_us: AtomicU64::new(0),
            });
        }
        // Weights scaled down to keep one cycle short.
        let weights: Vec<u32> = targets.iter().map(|t| t.weight.min(100)).collect();
        Ok(Balancer {
            order: smooth_order(&weights),
            targets,
            turn: AtomicUsize::new(0),
            def: *def,
            budget: AtomicI64::new(BUDGET_FLOOR),
            epoch: Instant::now(),
            checking: OnceLock::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn up(&self, i: usize, now: u64) -> bool {
        let t = &self.targets[i];
        t.healthy.load(Ordering::Relaxed) && t.ejected_until.load(Ordering::Relaxed) <= now
    }

    /// Most retries for one request.
    pub(crate) fn retries(&self) -> u32 {
        self.def.retries
    }

    /// Chooses a target not in `tried`, and counts the request on it.
    pub(crate) fn pick(&self, tried: &[usize]) -> Result<InFlight<'_>, NoTarget> {
        let now = self.now_ms();
        let cap = self.def.max_requests;
        let n = self.order.len();
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        let mut saturated = false;
        let mut best: Option<(usize, u64)> = None;
        for k in 0..n {
            let i = self.order[(start + k) % n];
            if tried.contains(&i) || !self.up(i, now) {
                continue;
            }
            let t = &self.targets[i];
            let flying = t.in_flight.load(Ordering::Relaxed);
            if cap > 0 && flying >= cap {
                saturated = true;
                continue;
            }
            match self.def.balance {
                Balance::RoundRobin => {
                    best = Some((i, 0));
                    break;
                }
                Balance::LeastRequest => {
                    // Requests in flight per unit of weight, scaled to stay integral.
                    let load = u64::from(flying) * 1000 / u64::from(t.weight);
                    if best.is_none_or(|(_, l)| load < l) {
                        best = Some((i, load));
                    }
                }
            }
        }
        let Some((i, _)) = best else {
            return Err(if saturated {
                NoTarget::Saturated
            } else {
                NoTarget::Down
            });
        };
        let t = &self.targets[i];
        let before = t.in_flight.fetch_add(1, Ordering::Relaxed);
        let flight = InFlight {
            balancer: self,
            index: i,
        };
        if cap > 0 && before >= cap {
            // Another thread took the last place first.
            drop(flight);
            return Err(NoTarget::Saturated);
        }
        Ok(flight)
    }

    /// What came of a request on target `i` after `waited`: an answer (`true`), or a failure
    /// that counts towards ejecting it.
    pub(crate) fn outcome(&self, i: usize, answered: bool, waited: Duration) {
        let t = &self.targets[i];
        t.requests.fetch_add(1, Ordering::Relaxed);
        t.waited_us
            .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
        if answered {
            if t.failures.load(Ordering::Relaxed) != 0 {
                t.failures.store(0, Ordering::Relaxed);
            }
            if t.ejections.load(Ordering::Relaxed) != 0 {
                t.ejections.store(0, Ordering::Relaxed);
            }
            return;
        }
        t.failed.fetch_add(1, Ordering::Relaxed);
        if t.failures.fetch_add(1, Ordering::Relaxed) + 1 >= EJECT_AFTER {
            t.failures.store(0, Ordering::Relaxed);
            t.ejected.fetch_add(1, Ordering::Relaxed);
            let n = t.ejections.fetch_add(1, Ordering::Relaxed).min(5);
            let time = (EJECT_BASE * 2u32.pow(n)).min(EJECT_MAX);
            t.ejected_until
                .store(self.now_ms() + time.as_millis() as u64, Ordering::Relaxed);
            tracing::warn!(target = %t.label, seconds = time.as_secs(), "ejected an upstream target after failures in a row");
        }
    }

    /// Adds a request's share to the retry budget.
    pub(crate) fn earn(&self) {
        if self.budget.load(Ordering::Relaxed) < BUDGET_MAX {
            self.budget.fetch_add(BUDGET_PER_REQUEST, Ordering::Relaxed);
        }
    }

    /// Takes a retry from the budget, for a request that failed on target `i`.
    pub(crate) fn spend(&self, i: usize) -> bool {
        if self.budget.fetch_sub(1000, Ordering::Relaxed) >= 1000 {
            self.targets[i].retried.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            self.budget.fetch_add(1000, Ordering::Relaxed);
            false
        }
    }

    /// Starts the health checks, once, on the runtime of the first request.
    pub(crate) fn start_checks(self: &Arc<Self>, client: &crate::proxy::Client) {
        let Some(health) = self.def.health else {
            return;
        };
        if self.checking.set(()).is_err() {
            return;
        }
        let (balancer, client) = (self.clone(), client.clone());
        tokio::spawn(async move {
            let mut passes = vec![0u32; balancer.targets.len()];
            let mut fails = vec![0u32; balancer.targets.len()];
            let mut every =
                tokio::time::interval(Duration::from_millis(health.interval_ms.max(100)));
            loop {
                every.tick().await;
                for (i, t) in balancer.targets.iter().enumerate() {
                    let mut url = t.label.clone();
                    url.push_str(health.path);
                    let ok = check(&client, &url, Duration::from_millis(health.timeout_ms)).await;
                    if ok {
                        fails[i] = 0;
                        passes[i] += 1;
                        if !t.healthy.load(Ordering::Relaxed) && passes[i] >= health.healthy_after {
                            t.healthy.store(true, Ordering::Relaxed);
                            t.ejected_until.store(0, Ordering::Relaxed);
                            tracing::info!(target = %t.label, "an upstream target passed its health checks");
                        }
                    } else {
                        passes[i] = 0;
                        fails[i] += 1;
                        if t.healthy.load(Ordering::Relaxed) && fails[i] >= health.unhealthy_after {
                            t.healthy.store(false, Ordering::Relaxed);
                            tracing::warn!(target = %t.label, "an upstream target failed its health checks");
                        }
                    }
                }
            }
        });
    }
}

/// Every route's targets, by what makes them the same (see [`Balancer::shared`]).
static REGISTRY: crate::shared::Registry<Balancer> = crate::shared::Registry::new();

/// The targets' metrics, summed by target (`scheme://host:port`), in Prometheus' text format.
pub(crate) fn render_metrics(out: &mut String) {
    use std::fmt::Write as _;
    let mut by_target: std::collections::BTreeMap<String, [u64; 6]> = Default::default();
    for b in &REGISTRY.live() {
        let now = b.now_ms();
        for (i, t) in b.targets.iter().enumerate() {
            let m = by_target.entry(t.label.clone()).or_default();
            m[0] += t.requests.load(Ordering::Relaxed);
            m[1] += t.failed.load(Ordering::Relaxed);
            m[2] += t.ejected.load(Ordering::Relaxed);
            m[3] += t.retried.load(Ordering::Relaxed);
            m[4] += t.waited_us.load(Ordering::Relaxed);
            m[5] = m[5].max(u64::from(b.up(i, now)));
        }
    }
    if by_target.is_empty() {
        return;
    }
    let series: [(&str, &str, &str, usize); 5] = [
        (
            "gwgen_upstream_requests_total",
            "counter",
            "Requests sent to an upstream target.",
            0,
        ),
        (
            "gwgen_upstream_failures_total",
            "counter",
            "Requests to an upstream target that got no answer, a 502, 503 or 504, or timed out.",
            1,
        ),
        (
            "gwgen_upstream_ejections_total",
            "counter",
            "Times an upstream target was ejected after failures in a row.",
            2,
        ),
        (
            "gwgen_upstream_retries_total",
            "counter",
            "Requests tried again on another target after failing on this one.",
            3,
        ),
        (
            "gwgen_upstream_up",
            "gauge",
            "1 while an upstream target takes requests (healthy and not ejected).",
            5,
        ),
    ];
    for (name, kind, help, k) in series {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (target, m) in &by_target {
            let _ = writeln!(
                out,
                "{name}{{target=\"{}\"}} {}",
                target.replace('"', "%22"),
                m[k]
            );
        }
    }
    let name = "gwgen_upstream_request_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time waited for upstream targets' answers (sum and count)."
    );
    let _ = writeln!(out, "# TYPE {name} summary");
    for (target, m) in &by_target {
        let t = target.replace('"', "%22");
        let _ = writeln!(out, "{name}_sum{{target=\"{t}\"}} {}", m[4] as f64 / 1e6);
        let _ = writeln!(out, "{name}_count{{target=\"{t}\"}} {}", m[0]);
    }
}

/// One health check: `GET url`, a 2xx or 3xx within `timeout`.
async fn check(client: &crate::proxy::Client, url: &str, timeout: Duration) -> bool {
    let Ok(req) = http::Request::get(url)
        .header(http::header::USER_AGENT, "gwgen-health-check")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
    else {
        return false;
    };
    match tokio::time::timeout(timeout, client.request(req)).await {
        Ok(Ok(resp)) => {
            let ok = resp.status().is_success() || resp.status().is_redirection();
            // Read the body to its end, so the connection goes back to the pool.
            let _ =
                tokio::time::timeout(timeout, http_body_util::BodyExt::collect(resp.into_body()))
                    .await;
            ok
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_weighted_order() {
        assert_eq!(smooth_order(&[3, 1]), vec![0, 0, 1, 0]);
        assert_eq!(smooth_order(&[1, 1, 1]), vec![0, 1, 2]);
        let order = smooth_order(&[5, 1, 1]);
        assert_eq!(order.iter().filter(|&&i| i == 0).count(), 5);
        assert_eq!(
            order,
            vec![0, 0, 1, 0, 2, 0, 0],
            "spread, not bunched, as nginx's"
        );
    }

    fn balancer(balance: Balance, max_requests: u32) -> Balancer {
        static TARGETS: [(&str, u32); 2] = [("http://127.0.0.1:1", 1), ("http://127.0.0.1:2", 3)];
        let stage = Stage::new("test", &[]);
        let def = UpstreamsDef {
            targets: &TARGETS,
            balance,
            retries: 1,
            max_requests,
            health: None,
        };
        Balancer::new(&stage, &def, false, "test").expect("a balancer")
    }

    #[test]
    fn least_request_weighs_requests_in_flight() {
        let b = balancer(Balance::LeastRequest, 0);
        // Weight 3 takes three for each one of weight 1.
        let held: Vec<InFlight<'_>> = (0..8).map(|_| b.pick(&[]).expect("a target")).collect();
        let on = |i: usize| held.iter().filter(|f| f.index == i).count();
        assert_eq!((on(0), on(1)), (2, 6));
    }

    #[test]
    fn a_full_or_ejected_target_is_passed_over() {
        let b = balancer(Balance::RoundRobin, 1);
        let first = b.pick(&[]).expect("one");
        let second = b.pick(&[]).expect("the other");
        assert_ne!(first.index, second.index);
        assert_eq!(b.pick(&[]).err(), Some(NoTarget::Saturated));
        let freed = first.index;
        drop(first);
        assert_eq!(b.pick(&[]).expect("a place freed").index, freed);
        // Three failures in a row eject; an answer before the third starts the count again.
        for _ in 0..2 {
            b.outcome(0, false, Duration::ZERO);
        }
        b.outcome(0, true, Duration::ZERO);
        b.outcome(0, false, Duration::ZERO);
        assert!(b.up(0, b.now_ms()));
        for _ in 0..2 {
            b.outcome(0, false, Duration::ZERO);
        }
        assert!(!b.up(0, b.now_ms()), "ejected");
        drop(second);
        assert_eq!(b.pick(&[]).expect("the other target").index, 1);
        assert_eq!(
            b.pick(&[1]).err(),
            Some(NoTarget::Down),
            "the other is tried already"
        );
    }
}
