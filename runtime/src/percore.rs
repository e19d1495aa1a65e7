//! What lets state scale with cores: each thread's own slot number, values padded to a cache
//! line of their own, and a byte budget split into per-slot stripes.
//!
//! A value that every request writes, on one cache line, is passed from core to core on every
//! write: that costs more with each core added. Tables that requests touch are split into
//! [`SLOTS`] parts, and a thread works in the part its [`slot`] names, reaching into the others
//! only when its own cannot serve it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderMap;

/// Parts a per-core table is split into: at least the cores of most machines, so that threads
/// rarely share one.
pub(crate) const SLOTS: usize = 16;

thread_local! {
    /// This thread's number, unique in the process, given in order on first use.
    static SERIAL: u64 = {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
}

/// The calling thread's slot, below [`SLOTS`]: its [`serial`] number, round-robin.
pub(crate) fn slot() -> usize {
    (serial() % SLOTS as u64) as usize
}

/// The calling thread's number, unique in the process (unlike its slot).
pub(crate) fn serial() -> u64 {
    SERIAL.with(|s| *s)
}

/// Header tables a thread keeps for reuse, at most.
const SPARE_TABLES: usize = 8;

/// Fields a kept table may have room for: a table grown past this (a request with many fields)
/// is freed, not kept.
const SPARE_FIELDS_MAX: usize = 96;

thread_local! {
    /// Emptied header tables, with their room, for the next request's head or answer.
    static SPARE: RefCell<Vec<HeaderMap>> = const { RefCell::new(Vec::new()) };
}

/// A header table with room for `fields` fields: one this thread emptied before when it has
/// one, so that a request's head and its upstream's answer allocate no table of their own.
pub(crate) fn header_table(fields: usize) -> HeaderMap {
    match SPARE.with_borrow_mut(Vec::pop) {
        Some(mut table) => {
            // The room is kept, so this allocates only when `fields` is more than it had.
            table.reserve(fields);
            table
        }
        None => HeaderMap::with_capacity(fields),
    }
}

/// Empties `table` and keeps it for [`header_table`] on this thread (unless the thread keeps
/// enough, or the table grew large).
pub(crate) fn spare_header_table(mut table: HeaderMap) {
    if table.capacity() == 0 || table.capacity() > SPARE_FIELDS_MAX {
        return;
    }
    table.clear();
    SPARE.with_borrow_mut(|spare| {
        if spare.len() < SPARE_TABLES {
            spare.push(table);
        }
    });
}

/// A value on a cache line (two, for CPUs that fetch lines in pairs) of its own, so that
/// writing it never slows a core that reads its neighbour.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A gateway-wide budget of bytes (`limits.validation_memory`) in [`SLOTS`] stripes. A thread
/// takes from its own stripe and gives back to it; only when its stripe runs short does it take
/// the rest from the others. Exact: what is held never passes the total, and a take is refused
/// only when the stripes it looked at could not cover it together (under contention, two
/// takes that each hold part of what they need can both be refused).
#[derive(Debug)]
pub(crate) struct Budget {
    stripes: [Padded<AtomicU64>; SLOTS],
}

impl Budget {
    /// A budget of `total` bytes.
    pub(crate) fn new(total: u64) -> Budget {
        let share = total / SLOTS as u64;
        let extra = total % SLOTS as u64;
        Budget {
            stripes: std::array::from_fn(|i| {
                Padded(AtomicU64::new(share + u64::from((i as u64) < extra)))
            }),
        }
    }

    /// Takes `n` bytes, all or none; `false` when the budget cannot cover them.
    pub(crate) fn take(&self, n: u64) -> bool {
        let own = slot();
        let mut missing = n;
        for k in 0..SLOTS {
            let stripe = &self.stripes[(own + k) % SLOTS];
            let mut free = stripe.load(Ordering::Relaxed);
            while free > 0 {
                let got = free.min(missing);
                match stripe.compare_exchange_weak(
                    free,
                    free - got,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        missing -= got;
                        break;
                    }
                    Err(seen) => free = seen,
                }
            }
            if missing == 0 {
                return true;
            }
        }
        self.give(n - missing);
        false
    }

    /// Gives back `n` bytes taken before.
    pub(crate) fn give(&self, n: u64) {
        if n > 0 {
            self.stripes[slot()].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Bytes not taken.
    #[cfg(test)]
    fn free(&self) -> u64 {
        self.stripes.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spared_header_table_comes_back_empty_with_its_room() {
        std::thread::spawn(|| {
            let mut table = header_table(20);
            table.insert("x-one", http::HeaderValue::from_static("1"));
            table.append("x-one", http::HeaderValue::from_static("2"));
            let room = table.capacity();
            spare_header_table(table);
            let again = header_table(10);
            assert!(again.is_empty(), "{again:?}");
            assert_eq!(again.capacity(), room, "the spared table, not a new one");
            // A table that grew large is not kept.
            let mut large = http::HeaderMap::with_capacity(SPARE_FIELDS_MAX * 2);
            large.insert("x-many", http::HeaderValue::from_static("1"));
            spare_header_table(large);
            assert!(header_table(4).capacity() < SPARE_FIELDS_MAX * 2);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn a_budget_is_exact_across_stripes_and_threads() {
        let budget = Budget::new(1000);
        // More than one stripe holds: the take gathers from all of them.
        assert!(budget.take(900));
        assert!(!budget.take(101), "only 100 are left");
        assert_eq!(budget.free(), 100, "a refused take keeps nothing");
        assert!(budget.take(100));
        assert!(!budget.take(1));
        budget.give(1000);
        assert_eq!(budget.free(), 1000);

        // Threads that take and give back (each on its own slot) never hold more than the total.
        let budget = std::sync::Arc::new(Budget::new(10_000));
        let held = std::sync::Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (budget, held) = (budget.clone(), held.clone());
                std::thread::spawn(move || {
                    for n in 0..20_000u64 {
                        let want = 1 + n % 3_000;
                        if budget.take(want) {
                            let now = held.fetch_add(want, Ordering::SeqCst) + want;
                            assert!(now <= 10_000, "{now} bytes held at once");
                            held.fetch_sub(want, Ordering::SeqCst);
                            budget.give(want);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(budget.free(), 10_000, "every byte came back");
    }
}
