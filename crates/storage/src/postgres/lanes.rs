//! The connection pools: one shared, and one for each HTTP worker (a lane).
//!
//! A Postgres connection's socket belongs to the tokio runtime that opened it: that runtime's
//! reactor hears when an answer arrives, and wakes the task wherever it runs. actix-web runs each
//! worker on a runtime of its own (one thread each), so with one pool for all, a worker is mostly
//! handed connections another runtime opened, and each round trip of a transaction woke that
//! other runtime's thread to pass the answer on (strace of a rotated refresh: two such wake-ups
//! a request, 1,350 requests against 2,784 wake-ups of the reactor's thread). A worker with a
//! pool of its own only uses connections it opened.
//!
//! The threads of a multi-thread runtime share one reactor, so they share the one pool: the CLI,
//! the background tasks of `serve`, `tessera-bench`. A lane goes to a thread on a current-thread
//! runtime, at most as many as were asked for; any thread after them uses the shared pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::ThreadId;
use std::time::Duration as StdDuration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use thread_local::ThreadLocal;
use tokio::runtime::{Handle, RuntimeFlavor};

/// A connection used within this long was tested when it went back to the pool (sqlx pings
/// every connection it takes back), so it is handed out again without another ping. One idle
/// longer is pinged first, and dropped if the server is gone. HikariCP skips its test the same
/// way, within 500 ms of a use.
const TESTED_WITHIN: StdDuration = StdDuration::from_secs(1);

/// How the connections are split: `max_connections` in all, among `lanes` workers and the
/// shared pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub shared: u32,
    pub per_lane: u32,
    pub lanes: usize,
}

impl Split {
    /// Each lane gets an even share of `max_connections` counting the shared pool as one more
    /// taker (at least 1); the shared pool gets what is left (at least 1).
    pub fn of(max_connections: u32, lanes: usize) -> Self {
        if lanes == 0 {
            return Self { shared: max_connections.max(1), per_lane: 0, lanes: 0 };
        }
        let takers = u32::try_from(lanes).unwrap_or(u32::MAX).saturating_add(1);
        let per_lane = (max_connections / takers).max(1);
        let given = per_lane.saturating_mul(takers - 1);
        Self { shared: max_connections.saturating_sub(given).max(1), per_lane, lanes }
    }
}

pub(super) fn pool(options: PgConnectOptions, max_connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .idle_timeout(crate::IDLE_TIMEOUT)
        .acquire_timeout(StdDuration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > TESTED_WITHIN {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options)
}

/// The workers' pools, made on first use on each worker's thread. A slot is kept with the
/// thread it was made for: `thread_local` gives a dead thread's slot to a new thread, and a pool
/// whose connections belong to a runtime that is gone must not be handed to it (std never reuses
/// a `ThreadId`). Such a thread, a worker actix-web started again, uses the shared pool.
#[derive(Debug)]
pub(super) struct Lanes {
    options: PgConnectOptions,
    per_lane: u32,
    lanes: usize,
    taken: AtomicUsize,
    pools: ThreadLocal<(ThreadId, Option<PgPool>)>,
}

impl Lanes {
    pub(super) fn new(options: PgConnectOptions, split: Split) -> Option<Arc<Self>> {
        (split.lanes > 0).then(|| {
            Arc::new(Self { options, per_lane: split.per_lane, lanes: split.lanes, taken: AtomicUsize::new(0), pools: ThreadLocal::new() })
        })
    }

    /// This thread's pool, if it runs a current-thread runtime and is one of the first `lanes`
    /// such threads to ask.
    pub(super) fn here(&self) -> Option<&PgPool> {
        let me = std::thread::current().id();
        let (made_for, pool) = self.pools.get_or(|| {
            let current_thread = Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::CurrentThread);
            let lane = current_thread && self.taken.fetch_add(1, Ordering::Relaxed) < self.lanes;
            (me, lane.then(|| pool(self.options.clone(), self.per_lane)))
        });
        pool.as_ref().filter(|_| *made_for == me)
    }

    /// Every lane's pool made so far.
    pub(super) fn pools(&self) -> impl Iterator<Item = &PgPool> {
        self.pools.iter().filter_map(|(_, p)| p.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::Split;
    use crate::PgStore;
    use tessera_domain::ports::Health;

    /// Which pool `store.pool()` gives on each of a few threads alive at once, each running a
    /// runtime of its own (current-thread or multi-thread, as `current_thread` says): the pool's
    /// address, and whether it is the shared one. Each asks twice, to see it is kept.
    fn pools_on_threads(store: &PgStore, current_thread: &[bool]) -> Vec<(usize, bool)> {
        let all_there = std::sync::Barrier::new(current_thread.len());
        std::thread::scope(|s| {
            let threads: Vec<_> = current_thread
                .iter()
                .map(|&ct| {
                    let all_there = &all_there;
                    s.spawn(move || {
                        let rt = if ct {
                            tokio::runtime::Builder::new_current_thread().enable_all().build()
                        } else {
                            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()
                        }
                        .unwrap();
                        let _in = rt.enter();
                        let first = std::ptr::from_ref(store.pool()) as usize;
                        assert_eq!(std::ptr::from_ref(store.pool()) as usize, first, "the same thread, the same pool");
                        // the workers live side by side, as actix-web's do
                        all_there.wait();
                        (first, std::ptr::eq(store.pool(), &raw const store.pool))
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        })
    }

    #[test]
    fn each_worker_gets_a_pool_of_its_own_as_many_as_asked_and_the_rest_share_one() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let _in = rt.enter();
        // lazily: nothing connects here
        let store = PgStore::connect_lazy_split("postgres://tessera@127.0.0.1:1/none", Split::of(16, 2)).unwrap();
        assert_eq!(store.pool_stats(), Some((0, 0, 6)), "only the shared pool so far");
        let pools = pools_on_threads(&store, &[false, true, true, true]);
        assert!(pools[0].1, "a multi-thread runtime's threads share one reactor, and the shared pool");
        let mut own: Vec<usize> = pools[1..].iter().filter(|(_, shared)| !shared).map(|(p, _)| *p).collect();
        own.sort_unstable();
        own.dedup();
        assert_eq!(own.len(), 2, "two of the three workers get pools of their own, the third shares: {pools:?}");
        assert_eq!(store.pool_stats(), Some((0, 0, 16)), "6 shared, 5 and 5 in the lanes: never more than asked for");
        // a worker started again after those threads ended shares: a lane's connections belong
        // to its thread's runtime
        assert!(pools_on_threads(&store, &[true])[0].1);
        // the admin commands: no lanes at all
        let admin = PgStore::connect_lazy("postgres://tessera@127.0.0.1:1/none", 16).unwrap();
        assert!(pools_on_threads(&admin, &[true, true]).iter().all(|(_, shared)| *shared));
        assert_eq!(admin.pool_stats(), Some((0, 0, 16)));
    }

    #[test]
    fn the_split_gives_every_lane_and_the_shared_pool_at_least_one_and_no_more_than_asked() {
        assert_eq!(Split::of(16, 2), Split { shared: 6, per_lane: 5, lanes: 2 });
        assert_eq!(Split::of(16, 0), Split { shared: 16, per_lane: 0, lanes: 0 });
        assert_eq!(Split::of(2, 4), Split { shared: 1, per_lane: 1, lanes: 4 });
        assert_eq!(Split::of(1, 1), Split { shared: 1, per_lane: 1, lanes: 1 });
        for max in 3..64 {
            for lanes in 1..8usize {
                let s = Split::of(max, lanes);
                let total = s.shared + s.per_lane * u32::try_from(lanes).unwrap();
                assert!(s.shared >= 1 && s.per_lane >= 1);
                assert!(total <= max.max(u32::try_from(lanes).unwrap() + 1), "{max} {lanes}: {s:?}");
            }
        }
    }
}
