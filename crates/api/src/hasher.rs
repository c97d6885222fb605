//! Argon2id off the async executor: on the blocking pool, at most N at once, with a bounded
//! queue. A burst of logins waits its turn up to `max_queued`; beyond that it is answered 503 at
//! once, so hashing never builds a backlog that makes every login wait for seconds, and never
//! takes the threads refresh and verify run on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use tessera_domain::password::Argon2Hasher;
use tessera_domain::ports::PasswordHasher;
use tessera_domain::{DomainError, Password, PasswordHash};
use tokio::sync::Semaphore;

pub struct BlockingHasher {
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
        Self {
            inner: Arc::new(inner),
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

    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&Argon2Hasher) -> T + Send + 'static) -> Result<T, DomainError> {
        let before = self.outstanding.fetch_add(1, Ordering::AcqRel);
        let _counted = Outstanding(self.outstanding.clone());
        if before >= self.concurrency + self.max_queued {
            if let Some(m) = &self.metrics {
                m.hash_refused.inc();
            }
            // the queue drains at `concurrency` hashes per hash time, a fraction of a second
            return Err(DomainError::Overloaded { retry_after: 1 });
        }
        let waited = std::time::Instant::now();
        let _permit = self.permits.acquire().await.map_err(|_| DomainError::Internal("hasher closed".into()))?;
        if let Some(m) = &self.metrics {
            m.hash_wait.observe(waited.elapsed().as_secs_f64());
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(|e| DomainError::Internal(format!("hashing task failed: {e}")))
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
