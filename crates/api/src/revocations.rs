//! The in-memory revocation list of one instance. Loaded from the database at start, fed by
//! this instance's own revocations at once and by every other instance's through Postgres
//! `LISTEN/NOTIFY`; reloaded whenever the listener had to reconnect (notifications may have been
//! missed). Entries are forgotten once every access token they could refuse has expired.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tessera_domain::ports::{RevocationList, Store};
use tessera_domain::{Duration, OffsetDateTime, SessionId};
use tessera_storage::PgStore;
use uuid::Uuid;

pub struct RevocationCache {
    revoked: RwLock<HashMap<SessionId, OffsetDateTime>>,
    /// How long an entry matters: the longest access-token lifetime plus leeway.
    horizon: Duration,
}

impl RevocationCache {
    pub fn new(horizon: Duration) -> Self {
        Self { revoked: RwLock::new(HashMap::new()), horizon }
    }

    pub fn len(&self) -> usize {
        self.revoked.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn prune(&self, now: OffsetDateTime) {
        if let Ok(mut m) = self.revoked.write() {
            let cutoff = now - self.horizon;
            m.retain(|_, at| *at >= cutoff);
        }
    }

    /// Loads the revocations that can still matter.
    pub async fn reload(&self, store: &dyn Store) -> Result<(), tessera_domain::RepoError> {
        let now = OffsetDateTime::now_utc();
        let rows = store.revoked_since(now - self.horizon).await?;
        if let Ok(mut m) = self.revoked.write() {
            m.extend(rows);
        }
        self.prune(now);
        Ok(())
    }
}

impl RevocationList for RevocationCache {
    fn is_revoked(&self, session: SessionId) -> bool {
        // A poisoned lock fails closed.
        self.revoked.read().map(|m| m.contains_key(&session)).unwrap_or(true)
    }

    fn note_revoked(&self, session: SessionId, at: OffsetDateTime) {
        if let Ok(mut m) = self.revoked.write() {
            m.entry(session).or_insert(at);
        }
    }
}

/// Postgres, where instances share the database: subscribes first and then loads, so nothing
/// revoked in between is missed; then follows the channel until the process ends.
pub async fn start_listener(store: PgStore, cache: Arc<RevocationCache>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut listener = store.revocation_listener().await?;
    cache.reload(&store).await?;
    Ok(tokio::spawn(async move {
        let mut since_prune = 0u32;
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    if let Ok(id) = n.payload().parse::<Uuid>() {
                        cache.note_revoked(SessionId(id), OffsetDateTime::now_utc());
                    }
                    since_prune += 1;
                    if since_prune >= 1024 {
                        since_prune = 0;
                        cache.prune(OffsetDateTime::now_utc());
                    }
                }
                Ok(None) => {
                    tracing::warn!("revocation listener reconnected; reloading revocations");
                    if let Err(e) = cache.reload(&store).await {
                        tracing::error!(error = %e, "reloading revocations failed");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "revocation listener failed; retrying in 1s");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    if let Err(e) = cache.reload(&store).await {
                        tracing::error!(error = %e, "reloading revocations failed");
                    }
                }
            }
        }
    }))
}

/// SQLite: reloads the recent revocations every second, so a revocation written by another
/// process on the same file (an admin command) holds here within a second.
pub fn start_polling(store: std::sync::Arc<dyn Store>, cache: Arc<RevocationCache>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Err(e) = cache.reload(&*store).await {
                tracing::warn!(error = %e, "reloading revocations failed");
            }
        }
    })
}
