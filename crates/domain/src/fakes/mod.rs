//! In-memory implementations of the ports, for tests of the use-cases at exact instants.
//! `rotate` runs the same rule as storage, under one lock, so the fake is atomic too.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::ports::{ClientRepository, KeyRepository, RotateOutcome, RotateRequest, SessionRepository, StoredKey, UserRepository};
use crate::rotation::{RefreshDecision, RefreshFacts, RefreshRefusal, Verdict, child_record, decide_with_risk};
use crate::{Email, OAuthClient, PasswordHash, RefreshRecord, RepoError, Session, SessionId, TokenHash, User, UserId, UserStatus};

mod services;
pub use services::{InlineHasher, MemoryRevocations};

#[derive(Default)]
struct State {
    identities: HashMap<(String, String), UserId>,
    users: Vec<User>,
    clients: HashMap<String, OAuthClient>,
    sessions: HashMap<SessionId, Session>,
    tokens: HashMap<TokenHash, RefreshRecord>,
    keys: Vec<StoredKey>,
    attempts: HashMap<(String, String), crate::throttle::AttemptRow>,
    audit: Vec<crate::audit::AuditRecord>,
    /// Users' origins (imported users only), the highest id reserved, and imports by origin
    /// (finished or not).
    origins: HashMap<UserId, String>,
    reserved: i64,
    imports: HashMap<String, bool>,
    /// DPoP proofs seen, by key, until their window ends.
    proofs: HashMap<[u8; 32], OffsetDateTime>,
    /// Tokens issued before routing keys (see [`InMemoryStore::issued_before_routes`]).
    unrouted: std::collections::HashSet<TokenHash>,
}

impl State {
    /// A token and its session, where `route` names their user's route (`None`: anywhere).
    fn token_on(&self, hash: &TokenHash, route: Option<crate::Route>) -> Option<(RefreshRecord, Session)> {
        let t = self.tokens.get(hash)?;
        let session = self.sessions.get(&t.session_id)?;
        route.is_none_or(|r| session.user_id.route() == r).then(|| (t.clone(), session.clone()))
    }
}

/// Whether `u` is the user `email` names. A deleted user keeps its placeholder address under a
/// comparison key no address has (as the real stores do): it is nobody's by e-mail.
fn compares_as(u: &User, email: &Email) -> bool {
    u.email != Email::deleted(u.id) && u.email.normalized() == email.normalized()
}

#[derive(Default)]
pub struct InMemoryStore {
    state: Mutex<State>,
    lose_next_answer: std::sync::atomic::AtomicBool,
    refresh_reads: std::sync::atomic::AtomicUsize,
}

impl InMemoryStore {
    /// How many times a refresh token was looked up outside a rotation (`refresh_by_hash`).
    pub fn refresh_reads(&self) -> usize {
        self.refresh_reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks a token as issued before routing keys: its bytes name no route.
    pub fn issued_before_routes(&self, hash: TokenHash) {
        if let Ok(mut s) = self.lock() {
            s.unrouted.insert(hash);
        }
    }

    /// The next rotation commits and then reports the store unreachable, as when a database
    /// primary dies between the commit and its acknowledgement.
    pub fn lose_next_rotation_answer(&self) {
        self.lose_next_answer.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, RepoError> {
        self.state.lock().map_err(|_| RepoError::Unavailable("poisoned".into()))
    }
}

#[async_trait]
impl crate::ports::AuditRepository for InMemoryStore {
    async fn append_audit(&self, e: &crate::audit::NewAuditEvent) -> Result<(), RepoError> {
        let mut s = self.lock()?;
        let id = s.audit.len() as i64 + 1;
        s.audit.push(crate::audit::AuditRecord {
            id,
            seq: None,
            at: e.at,
            kind: e.kind.to_owned(),
            user_id: e.user_id,
            session_id: e.session_id,
            detail: e.detail.to_string(),
            prev_hash: None,
            hash: None,
        });
        Ok(())
    }
    async fn seal_audit(
        &self,
        chain: &crate::audit::AuditChain,
        limit: u32,
        after: Option<&crate::audit::ChainPoint>,
    ) -> Result<crate::audit::Sealing, RepoError> {
        use crate::audit::{ChainPoint, Sealing};
        let mut s = self.lock()?;
        let newest =
            s.audit.iter().filter_map(|r| r.seq.zip(r.hash.clone())).max_by_key(|(q, _)| *q).map(|(seq, hash)| ChainPoint { seq, hash });
        if let Some(p) = after
            && !s.audit.iter().any(|r| r.seq == Some(p.seq) && r.hash.as_ref() == Some(&p.hash))
        {
            return Ok(Sealing::Diverged { expected: p.clone(), found: newest });
        }
        let (mut seq, mut prev) = newest.clone().map_or((0, crate::audit::GENESIS.to_vec()), |p| (p.seq, p.hash));
        let above = s.audit.iter().filter(|r| r.seq.is_some()).map(|r| r.id).max().unwrap_or(0);
        let mut n = 0;
        for r in s.audit.iter_mut().filter(|r| r.seq.is_none() && r.id > above).take(limit as usize) {
            seq += 1;
            let h = chain.link(&prev, seq, r);
            r.seq = Some(seq);
            r.prev_hash = Some(prev.clone());
            r.hash = Some(h.to_vec());
            prev = h.to_vec();
            n += 1;
        }
        let head = if n > 0 { Some(ChainPoint { seq, hash: prev }) } else { newest };
        Ok(Sealing::Sealed { count: n, head })
    }
    async fn audit_chain(&self, after_seq: i64, limit: u32) -> Result<Vec<crate::audit::AuditRecord>, RepoError> {
        let s = self.lock()?;
        let mut v: Vec<_> = s.audit.iter().filter(|r| r.seq.is_some_and(|q| q > after_seq)).cloned().collect();
        v.sort_by_key(|r| r.seq);
        v.truncate(limit as usize);
        Ok(v)
    }
    async fn audit_unsealed(&self) -> Result<u64, RepoError> {
        Ok(self.lock()?.audit.iter().filter(|r| r.seq.is_none()).count() as u64)
    }
    async fn audit_unsealed_below_head(&self) -> Result<Option<i64>, RepoError> {
        let s = self.lock()?;
        let above = s.audit.iter().filter(|r| r.seq.is_some()).map(|r| r.id).max().unwrap_or(0);
        Ok(s.audit.iter().filter(|r| r.seq.is_none() && r.id < above).map(|r| r.id).min())
    }
    async fn audit_head(&self) -> Result<Option<(crate::audit::ChainPoint, u64)>, RepoError> {
        let s = self.lock()?;
        let count = s.audit.iter().filter(|r| r.seq.is_some()).count() as u64;
        Ok(s.audit
            .iter()
            .filter_map(|r| r.seq.zip(r.hash.clone()))
            .max_by_key(|(q, _)| *q)
            .map(|(seq, hash)| (crate::audit::ChainPoint { seq, hash }, count)))
    }
    async fn audit_events(
        &self,
        user: Option<i64>,
        since: Option<OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<crate::audit::AuditRecord>, RepoError> {
        let s = self.lock()?;
        Ok(s.audit
            .iter()
            .rev()
            .filter(|r| user.is_none_or(|u| r.user_id == Some(u)) && since.is_none_or(|t| r.at >= t))
            .take(limit as usize)
            .cloned()
            .collect())
    }
}

#[async_trait]
impl crate::ports::ProofRepository for InMemoryStore {
    async fn remember_proof(&self, key: TokenHash, expires_at: OffsetDateTime) -> Result<bool, RepoError> {
        let mut s = self.lock()?;
        if s.proofs.contains_key(&key.0) {
            return Ok(false);
        }
        s.proofs.insert(key.0, expires_at);
        Ok(true)
    }

    async fn prune_proofs(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        let mut s = self.lock()?;
        let n = s.proofs.len();
        s.proofs.retain(|_, until| *until >= before);
        Ok((n - s.proofs.len()) as u64)
    }
}

#[async_trait]
impl crate::ports::LoginAttemptRepository for InMemoryStore {
    async fn login_lock(&self, account: &str, address: &str, now: OffsetDateTime) -> Result<Option<OffsetDateTime>, RepoError> {
        let s = self.lock()?;
        let row = |a: &str| s.attempts.get(&(account.to_owned(), a.to_owned()));
        Ok(crate::LockoutPolicy::lock_in_force(row(address), row(crate::throttle::ANY_ADDRESS), now))
    }
    async fn login_failed(
        &self,
        account: &str,
        address: &str,
        now: OffsetDateTime,
        policy: &crate::LockoutPolicy,
    ) -> Result<Option<OffsetDateTime>, RepoError> {
        let mut s = self.lock()?;
        for (a, threshold) in [(address, policy.threshold), (crate::throttle::ANY_ADDRESS, policy.account_threshold)] {
            let key = (account.to_owned(), a.to_owned());
            let row = s.attempts.remove(&key).unwrap_or_default();
            s.attempts.insert(key, policy.after_failure(row, threshold, now));
        }
        let row = |a: &str| s.attempts.get(&(account.to_owned(), a.to_owned()));
        Ok(crate::LockoutPolicy::lock_in_force(row(address), row(crate::throttle::ANY_ADDRESS), now))
    }
    async fn login_succeeded(&self, account: &str, address: &str, now: OffsetDateTime) -> Result<(), RepoError> {
        let mut s = self.lock()?;
        let key = (account.to_owned(), address.to_owned());
        let row = s.attempts.remove(&key).unwrap_or_default();
        s.attempts.insert(key, crate::LockoutPolicy::after_success(row, now));
        Ok(())
    }
    async fn prune_login_attempts(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        let mut s = self.lock()?;
        let n = s.attempts.len();
        s.attempts.retain(|_, r| r.last_failure_at.max(r.succeeded_at).is_some_and(|t| t >= before));
        Ok((n - s.attempts.len()) as u64)
    }
}

#[async_trait]
impl UserRepository for InMemoryStore {
    async fn create_user(&self, email: &Email, password: Option<&PasswordHash>, now: OffsetDateTime) -> Result<User, RepoError> {
        let mut s = self.lock()?;
        if s.users.iter().any(|u| compares_as(u, email)) {
            return Err(RepoError::Conflict("users_email_key"));
        }
        let user = User {
            id: UserId(s.users.iter().map(|u| u.id.0).max().unwrap_or(0).max(s.reserved) + 1),
            email: email.clone(),
            password_hash: password.cloned(),
            status: UserStatus::Active,
            created_at: now,
            password_changed_at: Some(now),
        };
        s.users.push(user.clone());
        Ok(user)
    }
    async fn import_user(&self, user: &User, origin: &str) -> Result<bool, RepoError> {
        let mut s = self.lock()?;
        if let Some(here) = s.users.iter().find(|u| u.id == user.id) {
            let same = s.origins.get(&user.id).map(String::as_str) == Some(origin) && here.email.normalized() == user.email.normalized();
            return if same { Ok(false) } else { Err(RepoError::Conflict("users_pkey")) };
        }
        if s.users.iter().any(|u| compares_as(u, &user.email)) {
            return Err(RepoError::Conflict("users_email_key"));
        }
        s.users.push(user.clone());
        s.users.sort_by_key(|u| u.id.0);
        s.origins.insert(user.id, origin.to_owned());
        Ok(true)
    }
    async fn user_from(&self, origin: &str, id: UserId) -> Result<Option<User>, RepoError> {
        let s = self.lock()?;
        if s.origins.get(&id).map(String::as_str) != Some(origin) {
            return Ok(None);
        }
        Ok(s.users.iter().find(|u| u.id == id).cloned())
    }
    async fn reserve_user_ids(&self, up_to: i64) -> Result<(), RepoError> {
        let mut s = self.lock()?;
        s.reserved = s.reserved.max(up_to);
        Ok(())
    }
    async fn start_import(&self, origin: &str, _: OffsetDateTime) -> Result<(), RepoError> {
        self.lock()?.imports.entry(origin.to_owned()).or_insert(false);
        Ok(())
    }
    async fn finish_import(&self, origin: &str, _: OffsetDateTime) -> Result<(), RepoError> {
        self.lock()?.imports.insert(origin.to_owned(), true);
        Ok(())
    }
    async fn import_finished(&self, origin: &str) -> Result<bool, RepoError> {
        Ok(self.lock()?.imports.get(origin).copied().unwrap_or(false))
    }
    async fn rehash_password(&self, id: UserId, old: &PasswordHash, new: &PasswordHash) -> Result<bool, RepoError> {
        let mut s = self.lock()?;
        let Some(u) = s.users.iter_mut().find(|u| u.id == id && u.password_hash.as_ref() == Some(old)) else { return Ok(false) };
        u.password_hash = Some(new.clone());
        Ok(true)
    }
    async fn stale_password_hashes(&self, current: &str, after: i64, limit: u32) -> Result<Vec<(UserId, PasswordHash)>, RepoError> {
        let s = self.lock()?;
        let stale = s
            .users
            .iter()
            .filter(|u| u.id.0 > after)
            .filter_map(|u| u.password_hash.as_ref().filter(|h| !h.as_str().starts_with(current)).map(|h| (u.id, h.clone())));
        Ok(stale.take(limit as usize).collect())
    }
    async fn list_users(&self, after: i64, limit: u32) -> Result<Vec<User>, RepoError> {
        Ok(self.lock()?.users.iter().filter(|u| u.id.0 > after).take(limit as usize).cloned().collect())
    }
    async fn set_password(&self, id: UserId, hash: &PasswordHash, now: OffsetDateTime) -> Result<bool, RepoError> {
        let mut s = self.lock()?;
        let Some(u) = s.users.iter_mut().find(|u| u.id == id) else { return Ok(false) };
        u.password_hash = Some(hash.clone());
        u.password_changed_at = Some(now);
        Ok(true)
    }
    async fn delete_user(&self, id: UserId, now: OffsetDateTime) -> Result<Vec<SessionId>, RepoError> {
        let mut s = self.lock()?;
        let user = s.users.iter_mut().find(|u| u.id == id).ok_or(RepoError::NotFound)?;
        user.email = Email::deleted(id);
        user.password_hash = None;
        user.status = UserStatus::Blocked;
        s.origins.remove(&id);
        s.identities.retain(|_, u| *u != id);
        let mut revoked = vec![];
        for sess in s.sessions.values_mut().filter(|x| x.user_id == id && x.revoked_at.is_none()) {
            sess.revoked_at = Some(now);
            sess.revoked_reason = Some("user_deleted".into());
            revoked.push(sess.id);
        }
        Ok(revoked)
    }
    async fn user_by_email(&self, email: &Email) -> Result<Option<User>, RepoError> {
        Ok(self.lock()?.users.iter().find(|u| compares_as(u, email)).cloned())
    }
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, RepoError> {
        Ok(self.lock()?.users.iter().find(|u| u.id == id).cloned())
    }
    async fn user_by_identity(&self, provider: &str, subject: &str) -> Result<Option<User>, RepoError> {
        let s = self.lock()?;
        let id = s.identities.get(&(provider.to_owned(), subject.to_owned())).copied();
        Ok(id.and_then(|id| s.users.iter().find(|u| u.id == id).cloned()))
    }
    async fn create_user_with_identity(
        &self,
        provider: &str,
        subject: &str,
        email: &Email,
        now: OffsetDateTime,
    ) -> Result<User, RepoError> {
        if let Some(u) = self.user_by_identity(provider, subject).await? {
            return Ok(u);
        }
        let mut u = self.create_user(email, None, now).await?;
        u.password_changed_at = None;
        self.lock()?.identities.insert((provider.to_owned(), subject.to_owned()), u.id);
        Ok(u)
    }
    async fn set_user_status(&self, id: UserId, status: UserStatus, now: OffsetDateTime) -> Result<Vec<SessionId>, RepoError> {
        let mut s = self.lock()?;
        let user = s.users.iter_mut().find(|u| u.id == id).ok_or(RepoError::NotFound)?;
        user.status = status;
        let mut revoked = vec![];
        if status == UserStatus::Blocked {
            for sess in s.sessions.values_mut().filter(|x| x.user_id == id && x.revoked_at.is_none()) {
                sess.revoked_at = Some(now);
                sess.revoked_reason = Some("user_blocked".into());
                revoked.push(sess.id);
            }
        }
        Ok(revoked)
    }
}

#[async_trait]
impl ClientRepository for InMemoryStore {
    async fn create_client(&self, client: &OAuthClient) -> Result<(), RepoError> {
        let mut s = self.lock()?;
        if s.clients.contains_key(client.client_id.as_str()) {
            return Err(RepoError::Conflict("clients_pkey"));
        }
        s.clients.insert(client.client_id.as_str().to_owned(), client.clone());
        Ok(())
    }
    async fn client_by_id(&self, client_id: &str) -> Result<Option<OAuthClient>, RepoError> {
        Ok(self.lock()?.clients.get(client_id).cloned())
    }
    async fn list_clients(&self) -> Result<Vec<OAuthClient>, RepoError> {
        let mut all: Vec<_> = self.lock()?.clients.values().cloned().collect();
        all.sort_by(|a, b| a.client_id.as_str().cmp(b.client_id.as_str()));
        Ok(all)
    }
    async fn update_client(&self, client: &OAuthClient) -> Result<bool, RepoError> {
        let mut s = self.lock()?;
        let Some(c) = s.clients.get_mut(client.client_id.as_str()) else { return Ok(false) };
        *c = client.clone();
        Ok(true)
    }
    async fn delete_client(&self, client_id: &str, now: OffsetDateTime) -> Result<Vec<SessionId>, RepoError> {
        let mut s = self.lock()?;
        s.clients.remove(client_id).ok_or(RepoError::NotFound)?;
        let mut revoked = vec![];
        for sess in s.sessions.values_mut().filter(|x| x.client_id.as_deref() == Some(client_id)) {
            if sess.revoked_at.is_none() {
                sess.revoked_at = Some(now);
                sess.revoked_reason = Some("client_deleted".into());
                revoked.push(sess.id);
            }
            sess.client_id = None;
        }
        Ok(revoked)
    }
}

#[async_trait]
impl SessionRepository for InMemoryStore {
    async fn open_session(&self, session: &Session, first: &RefreshRecord) -> Result<(), RepoError> {
        let mut s = self.lock()?;
        s.sessions.insert(session.id, session.clone());
        s.tokens.insert(first.hash, first.clone());
        Ok(())
    }

    async fn open_session_after_login(
        &self,
        session: &Session,
        first: &RefreshRecord,
        account: &str,
        address: &str,
    ) -> Result<(), RepoError> {
        crate::ports::LoginAttemptRepository::login_succeeded(self, account, address, session.created_at).await?;
        self.open_session(session, first).await
    }

    async fn rotate(&self, req: RotateRequest<'_>) -> Result<RotateOutcome, RepoError> {
        let mut s = self.lock()?;
        let Some((token, session)) = s.token_on(&req.presented, Some(req.route)) else {
            return Ok(RotateOutcome::Refused { refusal: RefreshRefusal::Unknown, session: None, revoked: vec![] });
        };
        let child = s.tokens.values().find(|t| t.parent == Some(token.hash)).cloned();
        let user_active = s.users.iter().any(|u| u.id == session.user_id && u.status == UserStatus::Active);
        let facts = RefreshFacts {
            token: &token,
            session: &session,
            child: child.as_ref(),
            user_active,
            presenting_client: req.presenting_client,
            bound_access: req.bound_access,
            faces: req.faces,
            not_rotated: req.not_rotated,
            request: req.request,
            rules: req.rules,
            dpop_jkt: req.dpop_jkt,
        };
        let Verdict { decision, signals } = decide_with_risk(&facts, req.now, req.grace);
        let revoke = |s: &mut State, pick: &dyn Fn(&Session) -> bool, reason: &str| {
            let mut ids = vec![];
            for sess in s.sessions.values_mut().filter(|x| x.revoked_at.is_none() && pick(x)) {
                sess.revoked_at = Some(req.now);
                sess.revoked_reason = Some(reason.into());
                ids.push(sess.id);
            }
            ids
        };
        match decision {
            RefreshDecision::Rotate => {
                let mut new = child_record(&session, &token, req.child, req.now);
                let mut after = session.clone();
                after.last_refresh_at = Some(req.now);
                after.record_request(req.request);
                new.sealed_pair = Some((req.seal_answer)(&after, &new)?);
                if let Some(t) = s.tokens.get_mut(&token.hash) {
                    t.rotated_at = Some(req.now);
                    t.sealed_secret = None;
                    t.sealed_pair = None;
                }
                s.tokens.insert(new.hash, new.clone());
                let sess = s.sessions.get_mut(&session.id).ok_or(RepoError::NotFound)?;
                sess.last_refresh_at = Some(req.now);
                sess.record_request(req.request);
                if self.lose_next_answer.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    return Err(RepoError::Unavailable("the connection was lost after the commit".into()));
                }
                Ok(RotateOutcome::Rotated { session: sess.clone(), child: new, signals })
            }
            RefreshDecision::Reissue => match child {
                Some(child) => Ok(RotateOutcome::Reissued { session, child, signals }),
                None => Err(RepoError::NotFound),
            },
            RefreshDecision::Refuse(refusal) => Ok(RotateOutcome::Refused { refusal, session: Some(session.id), revoked: vec![] }),
            RefreshDecision::RevokeFamily => {
                let revoked = revoke(&mut s, &|x| x.id == session.id, "reuse_detected");
                Ok(RotateOutcome::Refused { refusal: RefreshRefusal::Reused, session: Some(session.id), revoked })
            }
            RefreshDecision::RiskRevoke { condition, user } => {
                let revoked = if user {
                    revoke(&mut s, &|x| x.user_id == session.user_id, condition.as_str())
                } else {
                    revoke(&mut s, &|x| x.id == session.id, condition.as_str())
                };
                Ok(RotateOutcome::Refused { refusal: RefreshRefusal::RiskRevoked(condition), session: Some(session.id), revoked })
            }
        }
    }

    async fn refresh_by_hash(&self, hash: TokenHash, route: Option<crate::Route>) -> Result<Option<(RefreshRecord, Session)>, RepoError> {
        self.refresh_reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.lock()?.token_on(&hash, route))
    }
    async fn unrouted_tokens_live(&self, now: OffsetDateTime) -> Result<bool, RepoError> {
        let s = self.lock()?;
        Ok(s.unrouted.iter().filter_map(|h| s.tokens.get(h)).any(|t| t.expires_at > now))
    }
    async fn session(&self, id: SessionId, route: Option<crate::Route>) -> Result<Option<Session>, RepoError> {
        Ok(self.lock()?.sessions.get(&id).filter(|x| route.is_none_or(|r| x.user_id.route() == r)).cloned())
    }
    async fn sessions_of_user(&self, user: UserId, now: OffsetDateTime, limit: u32) -> Result<Vec<Session>, RepoError> {
        let s = self.lock()?;
        let mut live: Vec<Session> = s
            .sessions
            .values()
            .filter(|x| x.user_id == user && x.revoked_at.is_none() && x.expires_at > now)
            .filter(|x| s.tokens.values().any(|t| t.session_id == x.id && t.rotated_at.is_none() && t.expires_at > now))
            .cloned()
            .collect();
        live.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.0.cmp(&a.id.0)));
        live.truncate(limit as usize);
        Ok(live)
    }
    async fn revoke_session(&self, id: SessionId, route: crate::Route, reason: &str, now: OffsetDateTime) -> Result<bool, RepoError> {
        let mut s = self.lock()?;
        match s.sessions.get_mut(&id) {
            Some(sess) if sess.revoked_at.is_none() && sess.user_id.route() == route => {
                sess.revoked_at = Some(now);
                sess.revoked_reason = Some(reason.into());
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn revoke_user_sessions(
        &self,
        user: UserId,
        except: Option<SessionId>,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionId>, RepoError> {
        let mut s = self.lock()?;
        let mut ids = vec![];
        for sess in s.sessions.values_mut().filter(|x| x.user_id == user && x.revoked_at.is_none() && Some(x.id) != except) {
            sess.revoked_at = Some(now);
            sess.revoked_reason = Some(reason.into());
            ids.push(sess.id);
        }
        Ok(ids)
    }
    async fn revoke_client_sessions(
        &self,
        user: UserId,
        client_id: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionId>, RepoError> {
        let mut s = self.lock()?;
        let mut ids = vec![];
        for sess in
            s.sessions.values_mut().filter(|x| x.user_id == user && x.revoked_at.is_none() && x.client_id.as_deref() == Some(client_id))
        {
            sess.revoked_at = Some(now);
            sess.revoked_reason = Some(reason.into());
            ids.push(sess.id);
        }
        Ok(ids)
    }
    async fn expire_client_refresh_tokens(&self, user: UserId, client_id: &str, now: OffsetDateTime) -> Result<u64, RepoError> {
        let mut s = self.lock()?;
        let ids: Vec<SessionId> =
            s.sessions.values().filter(|x| x.user_id == user && x.client_id.as_deref() == Some(client_id)).map(|x| x.id).collect();
        let mut n = 0;
        for t in s.tokens.values_mut().filter(|t| ids.contains(&t.session_id) && t.rotated_at.is_none() && t.expires_at > now) {
            t.expires_at = now;
            n += 1;
        }
        Ok(n)
    }
    async fn drop_sealed_secrets(&self, before: OffsetDateTime) -> Result<u64, RepoError> {
        let mut s = self.lock()?;
        let mut n = 0;
        for t in s.tokens.values_mut().filter(|t| (t.sealed_secret.is_some() || t.sealed_pair.is_some()) && t.issued_at < before) {
            t.sealed_secret = None;
            t.sealed_pair = None;
            n += 1;
        }
        Ok(n)
    }
    async fn record_session_uses(&self, uses: &[(SessionId, crate::Route, OffsetDateTime)]) -> Result<(), RepoError> {
        let mut s = self.lock()?;
        for (id, route, at) in uses {
            if let Some(sess) = s.sessions.get_mut(id).filter(|x| x.user_id.route() == *route) {
                sess.last_refresh_at = sess.last_refresh_at.max(Some(*at));
            }
        }
        Ok(())
    }
    async fn family(&self, session: SessionId) -> Result<Vec<RefreshRecord>, RepoError> {
        let mut v: Vec<RefreshRecord> = self.lock()?.tokens.values().filter(|t| t.session_id == session).cloned().collect();
        v.sort_by_key(|t| t.issued_at);
        Ok(v)
    }
    async fn longest_live_access_ttl(&self, now: OffsetDateTime) -> Result<Option<time::Duration>, RepoError> {
        let s = self.lock()?;
        Ok(s.sessions.values().filter(|x| x.expires_at + x.profile.access_ttl() > now).map(|x| x.profile.access_ttl()).max())
    }
    async fn revoked_since(&self, since: OffsetDateTime) -> Result<Vec<(SessionId, OffsetDateTime)>, RepoError> {
        let s = self.lock()?;
        Ok(s.sessions.values().filter_map(|x| x.revoked_at.filter(|at| *at >= since).map(|at| (x.id, at))).collect())
    }
}

#[async_trait]
impl KeyRepository for InMemoryStore {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, RepoError> {
        Ok(self.lock()?.keys.clone())
    }
    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), RepoError> {
        self.lock()?.keys.push(key.clone());
        Ok(())
    }
    async fn ensure_signing_key(&self, candidate: &StoredKey) -> Result<Vec<StoredKey>, RepoError> {
        let mut s = self.lock()?;
        if !s.keys.iter().any(|k| k.alg == candidate.alg && k.state == crate::KeyState::Active) {
            s.keys.push(candidate.clone());
        }
        Ok(s.keys.clone())
    }
    async fn schedule_keys(
        &self,
        candidate: &StoredKey,
        now: OffsetDateTime,
        schedule: &crate::key_schedule::KeySchedule,
    ) -> Result<Vec<crate::key_schedule::KeyChange>, RepoError> {
        use crate::key_schedule::KeyChange;
        let mut s = self.lock()?;
        let mine: Vec<StoredKey> = s.keys.iter().filter(|k| k.alg == candidate.alg).cloned().collect();
        let changes = crate::key_schedule::plan(&mine, now, schedule);
        for c in &changes {
            match c {
                KeyChange::Publish if candidate.sealed_secret.is_empty() => {}
                KeyChange::Publish => {
                    s.keys.push(StoredKey { state: crate::KeyState::Next, created_at: now, activated_at: None, ..candidate.clone() })
                }
                KeyChange::Activate { next, retiring } => {
                    for k in s.keys.iter_mut() {
                        if &k.kid == next {
                            k.state = crate::KeyState::Active;
                            k.activated_at = Some(now);
                        } else if retiring.as_ref() == Some(&k.kid) {
                            k.state = crate::KeyState::Retired;
                            k.retired_at = Some(now);
                        }
                    }
                }
                KeyChange::Drop(kid) => s.keys.retain(|k| &k.kid != kid),
            }
        }
        Ok(changes)
    }
    async fn set_key_state(&self, kid: &str, state: crate::KeyState, now: OffsetDateTime) -> Result<bool, RepoError> {
        let mut s = self.lock()?;
        let Some(k) = s.keys.iter_mut().find(|k| k.kid == kid) else { return Ok(false) };
        k.state = state;
        match state {
            crate::KeyState::Active => k.activated_at = Some(now),
            crate::KeyState::Retired => k.retired_at = Some(now),
            crate::KeyState::Next => {}
        }
        Ok(true)
    }
    async fn delete_signing_key(&self, kid: &str) -> Result<bool, RepoError> {
        let mut s = self.lock()?;
        let before = s.keys.len();
        s.keys.retain(|k| k.kid != kid);
        Ok(s.keys.len() < before)
    }
}

#[async_trait]
impl crate::ports::Health for InMemoryStore {
    async fn ping(&self) -> Result<(), RepoError> {
        self.lock().map(drop)
    }
}
