//! The fakes' stand-ins for the services beside the store: a password hasher on the calling
//! task, and a revocation list that never forgets.

use std::collections::HashSet;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::password::Argon2Hasher;
use crate::ports::{PasswordHasher, RevocationList};
use crate::{DomainError, Password, PasswordHash, SessionId};

/// Hashes on the calling task: fine for tests with cheap parameters.
pub struct InlineHasher(pub Argon2Hasher);

#[async_trait]
impl PasswordHasher for InlineHasher {
    async fn hash(&self, password: Password) -> Result<PasswordHash, DomainError> {
        self.0.hash(&password)
    }
    async fn verify(&self, password: Password, hash: Option<PasswordHash>) -> Result<bool, DomainError> {
        Ok(self.0.verify(&password, hash.as_ref()))
    }
    fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        self.0.needs_rehash(hash)
    }
    fn current_prefix(&self) -> Option<String> {
        Some(self.0.current_prefix())
    }
}

#[derive(Default)]
pub struct MemoryRevocations(Mutex<HashSet<SessionId>>);

impl RevocationList for MemoryRevocations {
    fn is_revoked(&self, session: SessionId) -> bool {
        self.0.lock().map(|s| s.contains(&session)).unwrap_or(true)
    }
    fn note_revoked(&self, session: SessionId, _at: OffsetDateTime) {
        if let Ok(mut s) = self.0.lock() {
            s.insert(session);
        }
    }
    /// Nothing is ever forgotten here.
    fn remembers_for(&self) -> time::Duration {
        time::Duration::days(36_500)
    }
}
