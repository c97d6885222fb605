//! Signing keys while the service runs: the schedule (publish a next key one JWKS max-age ahead,
//! activate it when the period is over, drop a retired key once its last token has expired),
//! reloading the keyring when keys change, and the operators' commands.

use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use tessera_domain::key_schedule::{KeyChange, KeySchedule};
use tessera_domain::ports::{Store, StoredKey};
use tessera_domain::{Algorithm, KeyState, Keyring, OffsetDateTime, Sealer, SigningKey};

pub struct KeyManager {
    store: Arc<dyn Store>,
    sealer: Sealer,
    keyring: Keyring,
    schedule: Option<KeySchedule>,
    /// The algorithms the mounted faces sign with.
    algs: Vec<Algorithm>,
}

impl KeyManager {
    pub fn new(store: Arc<dyn Store>, sealer: Sealer, keyring: Keyring, schedule: Option<KeySchedule>, algs: Vec<Algorithm>) -> Self {
        Self { store, sealer, keyring, schedule, algs }
    }

    /// Every stored key, oldest first.
    pub async fn list(&self) -> anyhow::Result<Vec<StoredKey>> {
        Ok(self.store.signing_keys().await?)
    }

    /// Loads the stored keys into the keyring every face signs and verifies with.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let stored = self.store.signing_keys().await?;
        let keys = stored
            .iter()
            .map(|k| SigningKey::unseal(k, &self.sealer))
            .collect::<Result<Vec<_>, _>>()
            .context("a stored signing key does not open with the configured master key")?;
        if self.keyring.kids() != sorted_kids(&keys) {
            tracing::info!(kids = ?sorted_kids(&keys), "signing keys changed");
        }
        self.keyring.reload(&keys);
        Ok(())
    }

    /// One step of the schedule for every algorithm in use, decided in the database (instances
    /// sharing it make one change per step between them); then a reload.
    pub async fn tick(&self, now: OffsetDateTime) -> anyhow::Result<Vec<KeyChange>> {
        let mut all = vec![];
        if let Some(schedule) = &self.schedule {
            for alg in &self.algs {
                let ours: Vec<StoredKey> = self.store.signing_keys().await?.into_iter().filter(|k| k.alg == alg.as_str()).collect();
                // RSA keys take a while to make: only when one is due
                let due = tessera_domain::key_schedule::plan(&ours, now, schedule).contains(&KeyChange::Publish);
                let candidate = if due || *alg != Algorithm::RS256 {
                    let mut k = SigningKey::generate(*alg, now)?;
                    k.state = KeyState::Next;
                    k.seal(&self.sealer)?
                } else {
                    // an empty secret: storage skips a Publish it cannot make
                    StoredKey {
                        kid: String::new(),
                        alg: alg.as_str().into(),
                        state: KeyState::Next,
                        sealed_secret: vec![],
                        created_at: now,
                        activated_at: None,
                        retired_at: None,
                    }
                };
                let changes = self.store.schedule_keys(&candidate, now, schedule).await?;
                for c in &changes {
                    tracing::info!(alg = alg.as_str(), change = ?c, "key schedule");
                    let (kind, detail) = match c {
                        KeyChange::Publish => ("key_published", json!({"alg": alg.as_str(), "kid": candidate.kid})),
                        KeyChange::Activate { next, retiring } => {
                            ("key_activated", json!({"alg": alg.as_str(), "kid": next, "retired": retiring}))
                        }
                        KeyChange::Drop(kid) => ("key_dropped", json!({"alg": alg.as_str(), "kid": kid})),
                    };
                    self.audit(kind, detail, now).await;
                }
                all.extend(changes);
            }
        }
        self.reload().await?;
        Ok(all)
    }

    /// `tessera key rotate`: a next key is published now if there is none; with `now`, it
    /// signs at once and the active key retires (resource servers then meet an unknown `kid`
    /// and refetch the JWKS).
    pub async fn rotate(&self, alg: Algorithm, activate_now: bool, now: OffsetDateTime) -> anyhow::Result<String> {
        let ours: Vec<StoredKey> = self.list().await?.into_iter().filter(|k| k.alg == alg.as_str()).collect();
        let next = match ours.iter().find(|k| k.state == KeyState::Next) {
            Some(n) => n.kid.clone(),
            None => {
                let mut k = SigningKey::generate(alg, now)?;
                k.state = KeyState::Next;
                self.store.insert_signing_key(&k.seal(&self.sealer)?).await?;
                k.kid
            }
        };
        if activate_now {
            self.store.set_key_state(&next, KeyState::Active, now).await?;
            for old in ours.iter().filter(|k| k.state == KeyState::Active && k.kid != next) {
                self.store.set_key_state(&old.kid, KeyState::Retired, now).await?;
            }
        }
        self.audit("key_rotated", json!({"alg": alg.as_str(), "kid": next, "at_once": activate_now}), now).await;
        Ok(next)
    }

    /// `tessera key retire KID`: the key stops signing; its tokens verify until they expire.
    /// When it was its algorithm's active key, the next key (or a new one) signs from now on.
    pub async fn retire(&self, kid: &str, now: OffsetDateTime) -> anyhow::Result<bool> {
        let Some(key) = self.list().await?.into_iter().find(|k| k.kid == kid) else { return Ok(false) };
        self.store.set_key_state(kid, KeyState::Retired, now).await?;
        self.keep_one_active(&key.alg, now).await?;
        self.audit("key_retired", json!({"alg": key.alg, "kid": kid}), now).await;
        Ok(true)
    }

    /// `tessera key revoke KID`, for a compromised key: it is removed, so every token it signed
    /// is refused at once, everywhere; a new key signs from now on.
    pub async fn revoke(&self, kid: &str, now: OffsetDateTime) -> anyhow::Result<bool> {
        let Some(key) = self.list().await?.into_iter().find(|k| k.kid == kid) else { return Ok(false) };
        self.store.delete_signing_key(kid).await?;
        tracing::warn!(kid, "signing key revoked: its tokens are refused");
        self.keep_one_active(&key.alg, now).await?;
        self.audit("key_revoked", json!({"alg": key.alg, "kid": kid}), now).await;
        Ok(true)
    }

    /// A key change in the audit trail; a failure is logged, never the change's failure.
    async fn audit(&self, kind: &'static str, detail: serde_json::Value, now: OffsetDateTime) {
        let event = tessera_domain::audit::NewAuditEvent { at: now, kind, user_id: None, session_id: None, detail };
        if let Err(e) = self.store.append_audit(&event).await {
            tracing::error!(error = %e, kind, "an audit event could not be written");
        }
    }

    async fn keep_one_active(&self, alg: &str, now: OffsetDateTime) -> anyhow::Result<()> {
        let ours: Vec<StoredKey> = self.list().await?.into_iter().filter(|k| k.alg == alg).collect();
        if ours.iter().any(|k| k.state == KeyState::Active) {
            return Ok(());
        }
        let alg = Algorithm::parse(alg).with_context(|| format!("unknown algorithm {alg}"))?;
        match ours.iter().find(|k| k.state == KeyState::Next) {
            Some(n) => {
                self.store.set_key_state(&n.kid, KeyState::Active, now).await?;
            }
            None => {
                let k = SigningKey::generate(alg, now)?;
                self.store.insert_signing_key(&k.seal(&self.sealer)?).await?;
            }
        }
        Ok(())
    }
}

fn sorted_kids(keys: &[SigningKey]) -> Vec<String> {
    let mut kids: Vec<String> = keys.iter().map(|k| k.kid.clone()).collect();
    kids.sort();
    kids
}

/// How often the server logs the audit chain's keyed head (see `tessera audit head`).
const AUDIT_HEAD_EVERY: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// Logs the audit chain's keyed head at the first sealing and then every `AUDIT_HEAD_EVERY`,
/// so that a log kept apart from the database holds heads to check the trail against.
async fn log_audit_head(service: &tessera_domain::TokenService, logged: &mut Option<std::time::Instant>) {
    if logged.is_some_and(|at| at.elapsed() < AUDIT_HEAD_EVERY) {
        return;
    }
    match service.current_audit_head().await {
        Ok(Some(head)) => {
            tracing::info!(seq = head.seq, count = head.count, head = %head, "audit head (keep it; check with tessera audit verify --head)");
            *logged = Some(std::time::Instant::now());
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "reading the audit head failed"),
    }
}

/// Runs the schedule every `schedule_every` (and drops the sealed refresh secrets whose grace
/// window has passed, writes the sessions' last uses held in memory, seals the audit trail and
/// logs its head now and then, then gives the memory the round freed back to the system), and
/// reloads every `reload_every` or at once when `changed` is notified (Postgres: another
/// instance or an operator changed the keys).
pub fn spawn(
    manager: Arc<KeyManager>,
    service: tessera_domain::TokenService,
    schedule_every: std::time::Duration,
    reload_every: std::time::Duration,
    changed: Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut schedule = tokio::time::interval(schedule_every);
        let mut reload = tokio::time::interval(reload_every);
        let mut head_logged: Option<std::time::Instant> = None;
        loop {
            let result = tokio::select! {
                _ = schedule.tick() => {
                    let now = OffsetDateTime::now_utc();
                    match service.sweep_sealed_secrets(now).await {
                        Ok(n) if n > 0 => tracing::debug!(count = n, "sealed refresh secrets dropped after their grace window"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "dropping sealed refresh secrets failed"),
                    }
                    if let Err(e) = service.sweep_login_attempts(now).await {
                        tracing::warn!(error = %e, "forgetting old login attempts failed");
                    }
                    if let Err(e) = service.sweep_dpop_proofs(now).await {
                        tracing::warn!(error = %e, "forgetting old DPoP proofs failed");
                    }
                    service.flush_failed_logins(now).await;
                    if let Err(e) = service.flush_session_uses().await {
                        tracing::warn!(error = %e, "recording sessions' last uses failed");
                    }
                    match service.seal_audit().await {
                        Ok(_) => log_audit_head(&service, &mut head_logged).await,
                        // the chain no longer holds what this process sealed: tampering
                        Err(e @ tessera_domain::DomainError::Internal(_)) => tracing::error!(error = %e, "the audit trail was tampered with"),
                        Err(e) => tracing::warn!(error = %e, "sealing the audit trail failed"),
                    }
                    let ticked = manager.tick(now).await.map(drop);
                    // What the round freed goes back to the system: the rows of a sealed backlog,
                    // and the page caches of the store's connections that closed since the last
                    // round. glibc keeps them in the arena of the thread that freed them.
                    crate::hasher::give_back_freed_memory();
                    ticked
                }
                _ = reload.tick() => manager.reload().await,
                () = changed.notified() => manager.reload().await,
            };
            if let Err(e) = result {
                tracing::warn!(error = %format!("{e:#}"), "signing key maintenance failed; retrying");
            }
        }
    })
}
