//! Argon2id off the async executor: on threads of its own, at most N at once, with a bounded
//! queue. A burst of logins waits its turn up to `max_queued`; beyond that it is answered 503 at
//! once, so hashing never builds a backlog that makes every login wait for seconds. The hashing
//! threads run at a lower scheduling priority (nice 9) than the threads that serve requests: on
//! a busy machine, refresh and verify get the CPU first and hashing takes what is left.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use async_trait::async_trait;
use tessera_domain::password::Argon2Hasher;
use tessera_domain::ports::PasswordHasher;
use tessera_domain::{DomainError, Password, PasswordHash};
use tokio::sync::Semaphore;

type Job = Box<dyn FnOnce() + Send>;

/// After this long without a hash to run, the hashing memory goes back to the system: a burst
/// of logins keeps its buffers from hash to hash, and the process returns to its steady size
/// once the burst is over.
const IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// The threads that hash, fed through a channel; at most `concurrency` jobs are ever in it,
/// because a job holds one of the semaphore's permits.
struct HashThreads {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl HashThreads {
    /// `idle` runs on a thread that has waited `IDLE` for work.
    fn start(n: usize, idle: Arc<dyn Fn() + Send + Sync>) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..n {
            let rx = rx.clone();
            let idle = idle.clone();
            let spawned = std::thread::Builder::new().name(format!("argon2-{i}")).spawn(move || {
                lower_priority();
                loop {
                    let job = match rx.lock() {
                        Ok(r) => r.recv_timeout(IDLE),
                        Err(_) => return,
                    };
                    match job {
                        // a job that panics fails its request (its answer is dropped), not the thread
                        Ok(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => idle(),
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

/// Nice 9 on Linux: below the request threads, never starved on an idle machine.
fn lower_priority() {
    use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};
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
    metrics: Option<Arc<crate::metrics::Metrics>>,
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
    pub fn new(inner: Argon2Hasher, max_concurrent: usize, max_queued: usize) -> Self {
        let n = if max_concurrent == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) } else { max_concurrent };
        let inner = Arc::new(inner);
        let pool = inner.clone();
        Self {
            threads: HashThreads::start(n, Arc::new(move || pool.release_memory())),
            inner,
            permits: Arc::new(Semaphore::new(n)),
            concurrency: n,
            max_queued,
            outstanding: Arc::default(),
            metrics: None,
        }
    }

    /// Reports waits and refusals to `metrics`.
    pub fn with_metrics(self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self { metrics: Some(metrics), ..self }
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

    fn saturated(&self, outstanding: usize) -> Result<(), DomainError> {
        if outstanding < self.concurrency + self.max_queued {
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

    async fn verify(&self, password: Password, hash: Option<PasswordHash>) -> Result<bool, DomainError> {
        self.run(move |h| h.verify(&password, hash.as_ref())).await
    }

    fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        self.inner.needs_rehash(hash)
    }

    fn admit(&self) -> Result<(), DomainError> {
        self.saturated(self.outstanding.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashes_run_on_their_own_threads_below_the_request_threads_priority() {
        let argon = Argon2Hasher::new(tessera_domain::Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 }).unwrap();
        let hasher = BlockingHasher::new(argon, 1, 1);
        assert!(!hasher.verify(Password::presented("pw".into()).unwrap(), None).await.unwrap());
        let mut nice = None;
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            if std::fs::read_to_string(task.path().join("comm")).unwrap_or_default().trim() == "argon2-0" {
                let stat = std::fs::read_to_string(task.path().join("stat")).unwrap();
                // fields after the parenthesised name: state is field 3, nice field 19
                let after = stat.rsplit_once(") ").unwrap().1;
                nice = after.split(' ').nth(16).map(|n| n.parse::<i32>().unwrap());
            }
        }
        assert!(nice.is_some_and(|n| n > 0), "the hashing thread's nice value: {nice:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_refuses_admission_before_any_work_and_admits_again_once_drained() {
        let argon = Argon2Hasher::new(tessera_domain::Argon2Params { memory_kib: 8 * 1024, iterations: 8, parallelism: 1 }).unwrap();
        let hasher = Arc::new(BlockingHasher::new(argon, 1, 1));
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
        let hasher = Arc::new(BlockingHasher::new(argon, 2, 3));
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
}
