//! Argon2id off the async executor: on the blocking pool, at most N at once, so a burst of logins
//! queues instead of starving every other request of CPU.

use std::sync::Arc;

use async_trait::async_trait;
use tessera_domain::password::Argon2Hasher;
use tessera_domain::ports::PasswordHasher;
use tessera_domain::{DomainError, Password, PasswordHash};
use tokio::sync::Semaphore;

pub struct BlockingHasher {
    inner: Arc<Argon2Hasher>,
    permits: Arc<Semaphore>,
}

impl BlockingHasher {
    pub fn new(inner: Argon2Hasher, max_concurrent: usize) -> Self {
        let n = if max_concurrent == 0 { std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) } else { max_concurrent };
        Self { inner: Arc::new(inner), permits: Arc::new(Semaphore::new(n)) }
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&Argon2Hasher) -> T + Send + 'static) -> Result<T, DomainError> {
        let _permit = self.permits.acquire().await.map_err(|_| DomainError::Internal("hasher closed".into()))?;
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
