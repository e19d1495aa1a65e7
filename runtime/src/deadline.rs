//! Coarse deadlines for upstream calls: a request's timeout is an entry in a table that a
//! background thread sweeps every 10 ms, instead of a timer registered and cancelled per request.
//! Upstream timeouts are seconds long, so 10 ms of slack costs nothing, and the hot path reads no
//! clock: the sweeper keeps a coarse one. The table is in shards, one picked per thread, so cores
//! do not take turns at one lock.
// Upstream deadlines serve the `proxy` feature; the wall clock serves every gateway.
#![cfg_attr(not(feature = "proxy"), allow(dead_code))]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(10);

/// Shards of the table; a thread uses the one of its [`crate::percore::slot`].
const SHARDS: usize = crate::percore::SLOTS;

struct Entry {
    deadline: u64,
    waker: Option<Waker>,
    fired: bool,
}

struct Table {
    start: Instant,
    /// Milliseconds since `start`, as of the last sweep.
    now: AtomicU64,
    /// The wall clock at `start`, in microseconds since the Unix epoch, as of the last sweep
    /// (so that steps of the system clock show within 10 ms).
    wall_at_start_us: AtomicU64,
    entries: [Mutex<Slots>; SHARDS],
}

/// Entries by slot, with the free slots listed: no hashing on the hot path.
#[derive(Default)]
struct Slots {
    slots: Vec<Option<Entry>>,
    free: Vec<usize>,
}

impl Slots {
    fn insert(&mut self, e: Entry) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(e);
                i
            }
            None => {
                self.slots.push(Some(e));
                self.slots.len() - 1
            }
        }
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Entry> {
        self.slots.get_mut(i).and_then(Option::as_mut)
    }

    fn remove(&mut self, i: usize) {
        if let Some(slot) = self.slots.get_mut(i) {
            if slot.take().is_some() {
                self.free.push(i);
            }
        }
    }
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let _ = std::thread::Builder::new()
            .name("gwgen-deadlines".into())
            .spawn(|| loop {
                std::thread::sleep(TICK);
                sweep(table());
            });
        let start = Instant::now();
        Table {
            start,
            now: AtomicU64::new(0),
            wall_at_start_us: AtomicU64::new(wall_at(start)),
            entries: std::array::from_fn(|_| Mutex::new(Slots::default())),
        }
    })
}

/// The wall clock at `start`, in microseconds since the Unix epoch, from one reading of each clock.
fn wall_at(start: Instant) -> u64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (wall.saturating_sub(start.elapsed()).as_micros()) as u64
}

fn sweep(t: &Table) {
    let now = t.start.elapsed().as_millis() as u64;
    t.now.store(now, Ordering::Relaxed);
    t.wall_at_start_us
        .store(wall_at(t.start), Ordering::Relaxed);
    let mut wake = Vec::new();
    for shard in &t.entries {
        let mut entries = shard.lock().unwrap_or_else(|e| e.into_inner());
        for e in entries.slots.iter_mut().flatten() {
            if !e.fired && e.deadline <= now {
                e.fired = true;
                if let Some(w) = e.waker.take() {
                    wake.push(w);
                }
            }
        }
    }
    for w in wake {
        w.wake();
    }
}

/// Milliseconds on a clock that advances every 10 ms, read without a system call.
pub fn coarse_ms() -> u64 {
    table().now.load(Ordering::Relaxed)
}

/// Seconds since the Unix epoch on the coarse clock (behind the wall clock by up to 10 ms), read
/// without a system call.
#[cfg_attr(not(feature = "jwt"), allow(dead_code))]
pub fn coarse_unix_secs() -> u64 {
    let t = table();
    (t.wall_at_start_us.load(Ordering::Relaxed) / 1000 + t.now.load(Ordering::Relaxed)) / 1000
}

/// The wall-clock time of `at`, without reading the wall clock: the monotonic instant placed on
/// the wall clock as the sweeper last read it (within 10 ms of now).
pub fn wall_time(at: Instant) -> std::time::SystemTime {
    let t = table();
    let since_start = at.saturating_duration_since(t.start);
    std::time::UNIX_EPOCH
        + Duration::from_micros(t.wall_at_start_us.load(Ordering::Relaxed))
        + since_start
}

/// The deadline passed before the call finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// `fut`, or [`Elapsed`] once `limit` has passed (give or take 10 ms).
pub fn timeout<F: Future>(limit: Duration, fut: F) -> Timeout<F> {
    let t = table();
    // One tick of slack on the early side is fine; never fire early by more than that.
    let deadline = t
        .now
        .load(Ordering::Relaxed)
        .saturating_add(limit.as_millis() as u64)
        .saturating_add(TICK.as_millis() as u64);
    Timeout {
        fut,
        id: None,
        deadline,
    }
}

pin_project_lite::pin_project! {
    /// See [`timeout`]. The call's future is held in place, not boxed: a box would be one more
    /// allocation, and one more copy of the future, on every upstream call.
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        // The shard and slot of its entry, once it waits.
        id: Option<(usize, usize)>,
        deadline: u64,
    }

    impl<F> PinnedDrop for Timeout<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some((shard, id)) = this.project().id.take() {
                table().entries[shard]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(id);
            }
        }
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        let t = table();
        match *this.id {
            None => {
                let shard = crate::percore::slot();
                let id = t.entries[shard]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(Entry {
                        deadline: *this.deadline,
                        waker: Some(cx.waker().clone()),
                        fired: false,
                    });
                *this.id = Some((shard, id));
                Poll::Pending
            }
            Some((shard, id)) => {
                let mut entries = t.entries[shard].lock().unwrap_or_else(|e| e.into_inner());
                match entries.get_mut(id) {
                    Some(e) if e.fired => {
                        entries.remove(id);
                        drop(entries);
                        *this.id = None;
                        Poll::Ready(Err(Elapsed))
                    }
                    Some(e) => {
                        if !e.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                            e.waker = Some(cx.waker().clone());
                        }
                        Poll::Pending
                    }
                    None => Poll::Pending,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_call_times_out_and_a_fast_one_does_not() {
        let slow = timeout(Duration::from_millis(50), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let started = Instant::now();
        assert_eq!(slow.await, Err(Elapsed));
        assert!(started.elapsed() < Duration::from_secs(1));
        let fast = timeout(Duration::from_secs(5), async { 7 });
        assert_eq!(fast.await, Ok(7));
        let pending = timeout(Duration::from_secs(5), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            8
        });
        assert_eq!(pending.await, Ok(8));
        for shard in &table().entries {
            let entries = shard.lock().expect("lock");
            assert!(entries.slots.iter().all(Option::is_none));
        }
    }
}
