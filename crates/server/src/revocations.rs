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

    pub fn prune(&self, now: OffsetDateTime) {
        if let Ok(mut m) = self.revoked.write() {
            let cutoff = now - self.horizon;
            m.retain(|_, at| *at >= cutoff);
        }
    }

    /// Loads the revocations that can still matter.
    pub async fn reload(&self, store: &dyn Store) -> Result<(), tessera_domain::RepoError> {
        self.reload_at(store, OffsetDateTime::now_utc()).await
    }

    /// [`Self::reload`] at a given instant.
    pub async fn reload_at(&self, store: &dyn Store, now: OffsetDateTime) -> Result<(), tessera_domain::RepoError> {
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

    fn remembers_for(&self) -> Duration {
        self.horizon
    }
}

/// Postgres, where instances share the database: subscribes first and then loads, so nothing
/// revoked in between is missed; then follows the channel until the process ends.
/// A client announced as deleted goes to `clients_changed` (`None`: any may have been,
/// notifications were missed).
pub async fn start_listener(
    store: PgStore,
    cache: Arc<RevocationCache>,
    keys_changed: Arc<tokio::sync::Notify>,
    clients_changed: tokio::sync::mpsc::UnboundedSender<Option<String>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut listener = store.revocation_listener().await?;
    cache.reload(&store).await?;
    Ok(tokio::spawn(async move {
        let mut since_prune = 0u32;
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) if n.channel() == tessera_storage::KEYS_CHANNEL => keys_changed.notify_one(),
                Ok(Some(n)) if n.channel() == tessera_storage::CLIENTS_CHANNEL => {
                    let _ = clients_changed.send(Some(n.payload().to_owned()));
                }
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
                    keys_changed.notify_one();
                    let _ = clients_changed.send(None);
                    if let Err(e) = cache.reload(&store).await {
                        tracing::error!(error = %e, "reloading revocations failed");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "revocation listener failed; retrying in 1s");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    let _ = clients_changed.send(None);
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

#[cfg(test)]
mod tests {
    use tessera_domain::fakes::InMemoryStore;
    use tessera_domain::ports::{SessionRepository, UserRepository};
    use tessera_domain::{Email, RefreshRecord, Session, TokenHash, TokenProfile};
    use time::macros::datetime;

    use super::*;

    const T: OffsetDateTime = datetime!(2026-06-01 08:00 UTC);

    #[tokio::test]
    async fn a_revoked_ten_hour_token_stays_refused_three_hours_later_and_after_a_restart() {
        let store = InMemoryStore::default();
        let user = store.create_user(&Email::parse("ann@example.com").unwrap(), None, T).await.unwrap();
        let ten_hours = TokenProfile::new("drf", Duration::hours(10), Duration::days(90)).unwrap();
        let session = Session {
            id: SessionId(Uuid::now_v7()),
            user_id: user.id,
            client_id: None,
            face: "drf-social-oauth2".into(),
            profile: ten_hours.clone(),
            created_at: T,
            expires_at: T + Duration::days(90),
            last_refresh_at: None,
            ip: None,
            user_agent: None,
            revoked_at: None,
            revoked_reason: None,
            subject: None,
            dpop_jkt: None,
        };
        let first = RefreshRecord {
            hash: TokenHash([1; 32]),
            session_id: session.id,
            parent: None,
            access_jti: Uuid::new_v4(),
            issued_at: T,
            expires_at: T + Duration::days(90),
            rotated_at: None,
            sealed_secret: None,
            sealed_pair: None,
        };
        store.open_session(&session, &first).await.unwrap();
        store.revoke_session(session.id, session.user_id.route(), "revoked", T).await.unwrap();
        // the horizon startup computes: the longest access lifetime of any face, plus a minute
        let horizon = ten_hours.access_ttl() + Duration::minutes(1);

        let running = RevocationCache::new(horizon);
        running.note_revoked(session.id, T);
        running.prune(T + Duration::hours(3));
        assert!(running.is_revoked(session.id), "still refused 3 hours later");

        let restarted = RevocationCache::new(horizon);
        restarted.reload_at(&store, T + Duration::hours(3)).await.unwrap();
        assert!(restarted.is_revoked(session.id), "still refused after a restart");
        restarted.reload_at(&store, T + Duration::hours(9) + Duration::minutes(59)).await.unwrap();
        assert!(restarted.is_revoked(session.id), "refused until the token's last second");

        // once every token it could refuse has expired, the entry may go
        running.prune(T + Duration::hours(10) + Duration::minutes(2));
        assert!(!running.is_revoked(session.id));
    }
}
