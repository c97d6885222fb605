//! Argon2id off the async executor: on threads of its own, at most N at once, with a bounded
//! queue. A burst of logins waits its turn up to `max_queued`; beyond that it is answered 503 at
//! once, so hashing never builds a backlog that makes every login wait for seconds. The hashing
//! threads run below the threads that serve requests (`SCHED_IDLE` on Linux by default, or nice
//! 9: `password.hash_priority`): on a busy machine, refresh and verify get the CPU first and
//! hashing takes what is left.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tessera_domain::password::Argon2Hasher;
use tessera_domain::ports::PasswordHasher;
use tessera_domain::{DomainError, Password, PasswordHash};
use tokio::sync::Semaphore;

use crate::config::HashPriority;

type Job = Box<dyn FnOnce() + Send>;

/// After this long without a hash to run, the hashing memory goes back to the system: a burst
/// of logins keeps its buffers from hash to hash, and the process returns to its steady size
/// once the burst is over (the pool's buffers are dropped, and glibc is asked to return what the
/// burst freed: see [`give_back_freed_memory`]).
const IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// The threads that hash, fed through a channel; at most `concurrency` jobs are ever in it,
/// because a job holds one of the semaphore's permits.
struct HashThreads {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl HashThreads {
    /// `idle` runs once a burst is over: on the first thread that waits `IDLE` for work after
    /// any thread ran some. Not on the thread that worked: threads wait their turn for the
    /// channel, and the one that worked may be the one still waiting for it.
    fn start(n: usize, priority: HashPriority, idle: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        // true at the start: the dummy hash computed at startup left a buffer in the pool
        let worked = Arc::new(AtomicBool::new(true));
        for i in 0..n {
            let rx = rx.clone();
            let idle = idle.clone();
            let worked = worked.clone();
            let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                lower_priority(priority);
                loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv_timeout(IDLE),
                        Err(_) => return,
                    };
                    match job {
                        // a job that panics fails its request (its answer is dropped), not the thread
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            worked.store(true, Ordering::Release);
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            if worked.swap(false, Ordering::AcqRel) {
                                idle();
                            }
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "a hashing thread could not start");
            }
        }
        Self { jobs: Mutex::new(tx) }
    }

    fn submit(&self, job: Job) -> Result<(), DomainError> {
        let jobs = self.jobs.lock().map_err(|_| DomainError::Internal("hashing threads poisoned".into()))?;
        jobs.send(job).map_err(|_| DomainError::Internal("hashing threads stopped".into()))
    }
}

/// Asks glibc to give the memory a burst freed back to the system. glibc keeps freed memory in
/// the arena of the thread that freed it, and returns only the top of a heap by itself: after a
/// login flood, the request threads' arenas stay resident at the flood's size (measured: 38 MiB
/// against 29 MiB steady, 35 MiB once trimmed; the rest is actix-web's per-worker request pools,
/// which a second flood reuses). `malloc_trim(0)` returns every arena's free pages. It locks each
/// arena in turn, briefly: it runs on a hashing thread, once a burst is over, and after each
/// round of the key schedule's maintenance (`keys::spawn`), once a minute by default.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(unsafe_code, reason = "FFI to glibc's malloc_trim")]
pub fn give_back_freed_memory() {
    // SAFETY: malloc_trim takes no pointer and has no precondition; glibc locks its arenas itself.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators (musl, macOS, Windows) return freed memory themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn give_back_freed_memory() {}

/// Below the request threads: `SCHED_IDLE` (Linux) or nice 9, never starved on an idle machine.
fn lower_priority(priority: HashPriority) {
    use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};
    #[cfg(target_os = "linux")]
    if priority == HashPriority::Idle {
        use thread_priority::unix::{NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy, thread_native_id};
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        match set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle) {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = ?e, "the hashing thread cannot run at SCHED_IDLE; it runs at nice 9"),
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
    let result = ThreadPriorityValue::try_from(25u8)
        .map_err(|e| e.to_string())
        .and_then(|v| set_current_thread_priority(ThreadPriority::Crossplatform(v)).map_err(|e| format!("{e:?}")));
    if let Err(e) = result {
        tracing::warn!(error = %e, "the hashing thread keeps the default priority");
    }
}

pub struct BlockingHasher {
    threads: HashThreads,
    inner: Arc<Argon2Hasher>,
    permits: Arc<Semaphore>,
    concurrency: usize,
    max_queued: usize,
    /// Hashes running or waiting now.
    outstanding: Arc<AtomicUsize>,
    /// Of them, new accounts' hashes.
    registrations: Arc<AtomicUsize>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// A failed verification is answered no sooner than this (µs) after its hash began: what
    /// verifying the costliest hash still stored costs (see [`PasswordHasher::calibrate`]). An
    /// unknown e-mail, a wrong password for a user hashed here and one for a user whose imported
    /// hash awaits its re-hashing then take the same time.
    failure_floor: Arc<AtomicU64>,
}

/// Counts a hash as outstanding while it lives.
struct Outstanding(Arc<AtomicUsize>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl BlockingHasher {
    /// `max_concurrent` 0: one per core.
    pub fn new(inner: Argon2Hasher, max_concurrent: usize, max_queued: usize, priority: HashPriority) -> Self {
        let n = if max_concurrent == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) } else { max_concurrent };
        let inner = Arc::new(inner);
        let pool = inner.clone();
        Self {
            threads: HashThreads::start(
                n,
                priority,
                Arc::new(move || {
                    pool.release_memory();
                    give_back_freed_memory();
                }),
            ),
            inner,
            permits: Arc::new(Semaphore::new(n)),
            concurrency: n,
            max_queued,
            outstanding: Arc::default(),
            registrations: Arc::default(),
            metrics: None,
            failure_floor: Arc::default(),
        }
    }

    /// Reports waits and refusals to `metrics`.
    pub fn with_metrics(self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self { metrics: Some(metrics), ..self }
    }

    /// What a failed verification takes at least now.
    pub fn failure_floor(&self) -> Duration {
        Duration::from_micros(self.failure_floor.load(Ordering::Acquire))
    }

    /// Raises the floor to `took`, never lowers it.
    fn raise_floor(&self, took: Duration) {
        self.failure_floor.fetch_max(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::AcqRel);
    }

    /// Verifies on a hashing thread; answers with how long the verification itself ran (the
    /// wait for a turn left out).
    async fn timed_verify(&self, password: Password, hash: Option<PasswordHash>) -> Result<(bool, Duration), DomainError> {
        self.run(move |h| {
            let started = Instant::now();
            let ok = h.verify(&password, hash.as_ref());
            (ok, started.elapsed())
        })
        .await
    }

    /// Hashes waiting for a turn now.
    pub fn queued(&self) -> usize {
        self.outstanding.load(Ordering::Acquire).saturating_sub(self.concurrency)
    }

    /// (waiting, running) now.
    pub fn load(&self) -> (usize, usize) {
        let outstanding = self.outstanding.load(Ordering::Acquire);
        (outstanding.saturating_sub(self.concurrency), outstanding.min(self.concurrency))
    }

    /// Hashes of new accounts that may be running or waiting at once: half the room (at least
    /// one), so that the other half is always there for logins.
    fn registration_room(&self) -> usize {
        ((self.concurrency + self.max_queued) / 2).max(1)
    }

    fn saturated(&self, outstanding: usize) -> Result<(), DomainError> {
        self.saturated_at(outstanding, self.concurrency + self.max_queued)
    }

    fn saturated_at(&self, outstanding: usize, room: usize) -> Result<(), DomainError> {
        if outstanding < room {
            return Ok(());
        }
        if let Some(m) = &self.metrics {
            m.hash_refused.inc();
        }
        // the queue drains at `concurrency` hashes per hash time, a fraction of a second
        Err(DomainError::Overloaded { retry_after: 1 })
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&Argon2Hasher) -> T + Send + 'static) -> Result<T, DomainError> {
        let before = self.outstanding.fetch_add(1, Ordering::AcqRel);
        let _counted = Outstanding(self.outstanding.clone());
        self.saturated(before)?;
        self.run_admitted(f).await
    }

    /// A new account's hash: at most [`Self::registration_room`] of them at once, counted in
    /// the common queue too.
    async fn run_registration<T: Send + 'static>(&self, f: impl FnOnce(&Argon2Hasher) -> T + Send + 'static) -> Result<T, DomainError> {
        let mine = self.registrations.fetch_add(1, Ordering::AcqRel);
        let _mine = Outstanding(self.registrations.clone());
        self.saturated_at(mine, self.registration_room())?;
        self.run(f).await
    }

    async fn run_admitted<T: Send + 'static>(&self, f: impl FnOnce(&Argon2Hasher) -> T + Send + 'static) -> Result<T, DomainError> {
        let waited = std::time::Instant::now();
        let _permit = self.permits.acquire().await.map_err(|_| DomainError::Internal("hasher closed".into()))?;
        if let Some(m) = &self.metrics {
            m.hash_wait.observe(waited.elapsed().as_secs_f64());
        }
        let inner = self.inner.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.threads.submit(Box::new(move || {
            let _ = tx.send(f(&inner));
        }))?;
        rx.await.map_err(|_| DomainError::Internal("a hashing job was dropped".into()))
    }
}

#[async_trait]
impl PasswordHasher for BlockingHasher {
    async fn hash(&self, password: Password) -> Result<PasswordHash, DomainError> {
        self.run(move |h| h.hash(&password)).await?
    }

    async fn hash_new_account(&self, password: Password) -> Result<PasswordHash, DomainError> {
        self.run_registration(move |h| h.hash(&password)).await?
    }

    /// A `false` answer comes no sooner than the failure floor after the hash began: the time
    /// a refusal takes does not tell which kind of hash, if any, the e-mail has.
    async fn verify(&self, password: Password, hash: Option<PasswordHash>) -> Result<bool, DomainError> {
        // an imported hash costlier than the floor (imported since the last calibration) raises it at once
        let stale = hash.as_ref().is_some_and(|h| self.inner.needs_rehash(h));
        let (ok, took) = self.timed_verify(password, hash).await?;
        if stale {
            self.raise_floor(took);
        }
        if !ok && let Some(rest) = self.failure_floor().checked_sub(took) {
            // the hashing turn is given back: the wait holds a connection, not a thread
            tokio::time::sleep(rest).await;
        }
        Ok(ok)
    }

    async fn calibrate(&self, samples: Vec<PasswordHash>) -> Result<Duration, DomainError> {
        let probe = Password::presented("tessera-calibration-probe".into())?;
        let mut floor = Duration::ZERO;
        // the dummy hash an unknown e-mail is checked against, and one hash of each stored kind
        for hash in std::iter::once(None).chain(samples.into_iter().map(Some)) {
            let (_, took) = self.timed_verify(probe.clone(), hash).await?;
            floor = floor.max(took);
        }
        self.failure_floor.store(u64::try_from(floor.as_micros()).unwrap_or(u64::MAX), Ordering::Release);
        Ok(floor)
    }

    fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        self.inner.needs_rehash(hash)
    }

    fn current_prefix(&self) -> Option<String> {
        Some(self.inner.current_prefix())
    }

    fn admit(&self) -> Result<(), DomainError> {
        self.saturated(self.outstanding.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (nice, scheduling policy) of a thread, from its /proc stat line: after the parenthesised
    /// name, state is field 3, nice field 19 and policy field 41.
    #[cfg(target_os = "linux")]
    fn nice_and_policy(stat: &str) -> (i32, u32) {
        let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
        (fields[16].parse().unwrap(), fields[38].parse().unwrap())
    }

    #[cfg(target_os = "linux")]
    const SCHED_IDLE: u32 = 5;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashes_run_on_their_own_threads_below_the_request_threads_priority() {
        let argon = Argon2Hasher::new(tessera_domain::Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 }).unwrap();
        let hasher = BlockingHasher::new(argon, 1, 1, HashPriority::Idle);
        assert!(!hasher.verify(Password::presented("pw".into()).unwrap(), None).await.unwrap());
        let mut hashing = 0;
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            if std::fs::read_to_string(task.path().join("comm")).unwrap_or_default().starts_with("argon2-") {
                // other tests' hashers run at either priority
                let (nice, policy) = nice_and_policy(&std::fs::read_to_string(task.path().join("stat")).unwrap());
                assert!(policy == SCHED_IDLE || nice > 0, "a hashing thread at nice {nice}, policy {policy}");
                hashing += 1;
            }
        }
        assert!(hashing >= 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn idle_is_sched_idle_and_low_is_a_positive_nice() {
        let on_a_thread = |priority| {
            std::thread::spawn(move || {
                lower_priority(priority);
                nice_and_policy(&std::fs::read_to_string("/proc/thread-self/stat").unwrap())
            })
            .join()
            .unwrap()
        };
        assert_eq!(on_a_thread(HashPriority::Idle).1, SCHED_IDLE);
        let (nice, policy) = on_a_thread(HashPriority::Low);
        assert!(nice > 0 && policy == 0, "nice {nice}, policy {policy}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_admission_before_any_work_and_admits_again_once_drained() {
        let argon = Argon2Hasher::new(tessera_domain::Argon2Params { memory_kib: 8 * 1024, iterations: 8, parallelism: 1 }).unwrap();
        let hasher = Arc::new(BlockingHasher::new(argon, 1, 1, HashPriority::Idle));
        assert!(hasher.admit().is_ok());
        let running: Vec<_> = (0..2)
            .map(|_| {
                let h = hasher.clone();
                tokio::spawn(async move { h.verify(Password::presented("pw".into()).unwrap(), None).await })
            })
            .collect();
        while hasher.load() != (1, 1) {
            tokio::task::yield_now().await;
        }
        assert!(matches!(hasher.admit(), Err(DomainError::Overloaded { retry_after: 1 })));
        for t in running {
            assert!(!t.await.unwrap().unwrap());
        }
        assert!(hasher.admit().is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_the_queue_hashes_are_refused_at_once_and_the_pool_stays_at_the_concurrency() {
        let argon = Argon2Hasher::new(tessera_domain::Argon2Params { memory_kib: 8 * 1024, iterations: 4, parallelism: 1 }).unwrap();
        let hasher = Arc::new(BlockingHasher::new(argon, 2, 3, HashPriority::Idle));
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let h = hasher.clone();
                tokio::spawn(async move { h.verify(Password::presented("pw".into()).unwrap(), None).await })
            })
            .collect();
        let mut overloaded = 0;
        let mut done = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => done += 1,
                Err(DomainError::Overloaded { retry_after }) => {
                    assert!(retry_after >= 1);
                    overloaded += 1
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(done >= 5, "two running and three queued are served: {done}");
        assert!(overloaded > 0, "the rest are refused");
        assert_eq!(hasher.queued(), 0);
        assert!(hasher.inner.pooled_buffers() <= 2, "one buffer per concurrent hash: {}", hasher.inner.pooled_buffers());
        // once idle, the memory goes back
        let deadline = std::time::Instant::now() + IDLE * 10;
        while hasher.inner.pooled_buffers() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(hasher.inner.pooled_buffers(), 0, "an idle hasher keeps no buffer");
    }

    #[test]
    fn the_idle_work_runs_once_after_a_burst_not_on_every_idle_tick() {
        let idled = Arc::new(AtomicUsize::new(0));
        let counter = idled.clone();
        let threads = HashThreads::start(
            2,
            HashPriority::Low,
            Arc::new(move || {
                counter.fetch_add(1, Ordering::AcqRel);
            }),
        );
        std::thread::sleep(IDLE * 2 + IDLE / 2);
        assert_eq!(idled.load(Ordering::Acquire), 1, "once after the start (the startup's dummy hash), then quiet");
        let (tx, rx) = mpsc::channel();
        threads.submit(Box::new(move || tx.send(()).unwrap())).unwrap();
        rx.recv().unwrap();
        std::thread::sleep(IDLE * 3 + IDLE / 2);
        assert_eq!(idled.load(Ordering::Acquire), 2, "once after the burst, then quiet");
    }
}
