//! Refresh: reading a presented refresh token, the policy that applies, rotation around the
//! pure `rotation::decide`, re-issuing access only, the risk rules' reports.

use super::*;
use crate::RepoError;

impl TokenService {
    /// Reads a refresh token of `face`, checking the audience it carries (if any).
    pub(super) fn read_refresh(&self, face: &Face, presented: &str, now: OffsetDateTime) -> Result<RefreshSecret, AuthError> {
        let view = face.format.read_refresh(&self.keyring, presented, now)?;
        if view.audience.as_ref().is_some_and(|a| *a != face.audience) {
            return Err(AuthError::WrongAudience);
        }
        Ok(view.secret)
    }

    /// The refresh secret a presented refresh token stands for. A legacy token (minted by the
    /// original library with the face's configured legacy secret) is adopted first: see
    /// [`Self::adopt_legacy`].
    pub(super) async fn presented_refresh(&self, face: &Face, presented: &str, now: OffsetDateTime) -> Result<RefreshSecret, DomainError> {
        match face.format.read_legacy(presented, TokenKind::Refresh, now) {
            Some(legacy) => self.adopt_legacy(face, &legacy?, now).await,
            None => Ok(self.read_refresh(face, presented, now)?),
        }
    }

    /// A refresh at a face, under the face's policy: `rotate` gives a new pair (grace, reuse
    /// detection), `reuse` a new access token. The face's risk rules are decided on the way:
    /// inside the rotation's transaction for `rotate`.
    #[tracing::instrument(skip_all, fields(api = %face.name))]
    pub async fn refresh(
        &self,
        face: &Face,
        presented: &str,
        input: RefreshInput<'_>,
        now: OffsetDateTime,
    ) -> Result<Refreshed, DomainError> {
        let policy = match self.presented_refresh(face, presented, now).await {
            Ok(secret) => self.policy_of(face, &secret, now).await.map(|p| (secret, p)),
            Err(e) => Err(e),
        };
        let result = match policy {
            Ok((secret, policy)) => {
                let rotated = match policy {
                    RefreshPolicy::Rotate => self.rotate(face, &secret, &input, now).await,
                    RefreshPolicy::Reuse => Ok(Rotation::NotRotated),
                };
                if !matches!(rotated, Ok(Rotation::NotRotated)) {
                    // presented once (a retry within the grace window reads it again): what the
                    // keyring remembered of it goes now rather than when evicted
                    self.keyring.forget(presented);
                }
                match rotated {
                    Ok(Rotation::Done(pair, how)) => Ok((Refreshed::Pair(pair), how)),
                    // `reuse`, or a rotation that found a token of a peer that reuses (as
                    // `policy_of` would have said had it read the token first)
                    Ok(Rotation::NotRotated) => {
                        self.reissue_access(face, &secret, input, now).await.map(|a| (Refreshed::Access(a), RefreshOutcome::AccessOnly))
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        let outcome = match &result {
            Ok((_, how)) => *how,
            Err(DomainError::Auth(AuthError::TokenReused)) => RefreshOutcome::ReuseDetected,
            Err(_) => RefreshOutcome::Refused,
        };
        self.emit(Event::Refresh { face: &face.name, outcome });
        result.map(|(r, _)| r)
    }

    /// The policy a refresh token lives by: that of the face that issued it, wherever it is
    /// presented. Faces that share an audience accept each other's refresh tokens and may
    /// refresh differently; a token rotated at one must not live on at a sibling that reuses.
    /// Nothing is read when the face's peers refresh as it does, nor for a token kept in memory
    /// (one a reusing face issued, see `live_refresh`). At a face that rotates, nothing is read
    /// either: the rotation reads the token's session anyway, and refuses a reusing peer's token
    /// with [`Rotation::NotRotated`] (see `refresh`). Only a face that reuses, beside peers that
    /// rotate, reads a token it has not kept to learn its policy.
    pub(super) async fn policy_of(&self, face: &Face, secret: &RefreshSecret, now: OffsetDateTime) -> Result<RefreshPolicy, DomainError> {
        let peers = self.faces.peers_of(face);
        if peers.iter().all(|p| self.faces.get(p).is_none_or(|f| f.refresh == face.refresh)) {
            return Ok(face.refresh);
        }
        let hash = self.secret_hash(secret.as_bytes());
        if let Some(r) = self.remembered(&hash, now) {
            return Ok(self.faces.get(&r.session.face).map_or(face.refresh, |f| f.refresh));
        }
        if face.refresh == RefreshPolicy::Rotate {
            return Ok(RefreshPolicy::Rotate);
        }
        Ok(match self.find_refresh(secret, hash, now).await? {
            Some((record, session)) => {
                let policy = self.faces.get(&session.face).map_or(face.refresh, |f| f.refresh);
                self.remember(hash, &record, &session, now);
                policy
            }
            None => face.refresh,
        })
    }

    /// A rotation of a presented refresh token, on its route (or, for a token issued before
    /// routing keys, its user's).
    pub(super) async fn rotate(
        &self,
        face: &Face,
        presented: &RefreshSecret,
        input: &RefreshInput<'_>,
        now: OffsetDateTime,
    ) -> Result<Rotation, DomainError> {
        let named = presented.route();
        if let Some(done) = self.rotate_on(face, presented, named, input, now).await? {
            return Ok(done);
        }
        // a token issued before routing keys is where its user's route is, whatever its bytes say
        if self.unrouted_may_live(now).await?
            && let Some((_, session)) = self.store.refresh_by_hash(self.secret_hash(presented.as_bytes()), None).await?
            && session.user_id.route() != named
            && let Some(done) = self.rotate_on(face, presented, session.user_id.route(), input, now).await?
        {
            return Ok(done);
        }
        Err(AuthError::from(crate::RefreshRefusal::Unknown).into())
    }

    /// [`Self::rotate`] on `route`; `None` when no such token is there.
    async fn rotate_on(
        &self,
        face: &Face,
        presented: &RefreshSecret,
        route: Route,
        input: &RefreshInput<'_>,
        now: OffsetDateTime,
    ) -> Result<Option<Rotation>, DomainError> {
        let bound_access = match input.bound_access {
            Some(raw) => {
                let view = face.format.read_access(&self.keyring, raw, None)?;
                if view.audience.as_deref() != Some(face.audience.as_str()) {
                    return Err(AuthError::WrongAudience.into());
                }
                Some(view.jti)
            }
            None => None,
        };
        let secret = RefreshSecret::generate_routed(face.format.secret_len(), route)?;
        let child = self.prepare_refresh(&secret)?;
        let peers = self.faces.peers_of(face);
        // empty (no allocation) where every peer rotates, as in most deployments
        let not_rotated: Vec<String> =
            peers.iter().filter(|p| self.faces.get(p).is_some_and(|f| f.refresh == RefreshPolicy::Reuse)).cloned().collect();
        // The answer is rendered inside the rotation and kept sealed with the child, so that a
        // retry within the grace window gets these very bytes; here it is kept as rendered.
        let rendered: std::sync::Mutex<Option<Result<(String, String), DomainError>>> = std::sync::Mutex::new(None);
        let seal_answer = |session: &Session, record: &RefreshRecord| -> Result<Vec<u8>, RepoError> {
            let answer = self.render_pair(face, session, record, &secret);
            let sealed = match &answer {
                Ok((access, refresh)) => self.seal_pair(record, access, refresh).ok(),
                Err(_) => None,
            };
            let sealed = sealed.ok_or_else(|| RepoError::Unavailable("the rotation's answer could not be rendered and sealed".into()));
            if let Ok(mut slot) = rendered.lock() {
                *slot = Some(answer);
            }
            sealed
        };
        let req = RotateRequest {
            presented: self.secret_hash(presented.as_bytes()),
            route,
            presenting_client: input.client,
            now,
            // widened for a while after a rotation failed on an unreachable store (see `failover`)
            grace: self.lost_answers.grace(face.grace, now),
            child,
            bound_access,
            faces: Some(&peers),
            not_rotated: &not_rotated,
            request: &input.request,
            rules: &face.risk,
            dpop_jkt: input.dpop_jkt,
            seal_answer: &seal_answer,
        };
        let outcome = self.store.rotate(req).await;
        let rendered = rendered.lock().ok().and_then(|mut slot| slot.take());
        if matches!((&outcome, &rendered), (Err(RepoError::Unavailable(_)), None | Some(Ok(_)))) {
            // it may have committed all the same: its answer may be lost (see `failover`)
            self.lost_answers.note(now);
        }
        let outcome = match (outcome, rendered) {
            // the rendering's own error, rather than the storage error it was reported as
            (Err(_), Some(Err(e))) => return Err(e),
            (outcome, rendered) => (outcome?, rendered),
        };
        match outcome {
            (RotateOutcome::Rotated { session, child, signals }, Some(Ok((access, refresh)))) => {
                tracing::info!(session_id = %session.id, "refresh token rotated");
                self.report(face, &session, &signals, now);
                Ok(Some(Rotation::Done(self.issued_pair(&session, &child, secret, access, refresh, now), RefreshOutcome::Rotated)))
            }
            (RotateOutcome::Rotated { .. }, _) => Err(DomainError::Internal("a rotation stored no answer".into())),
            (RotateOutcome::Reissued { session, child, signals }, _) => {
                tracing::info!(session_id = %session.id, "parent presented again within the grace window; same child returned");
                self.report(face, &session, &signals, now);
                let sealed =
                    child.sealed_secret.as_deref().ok_or_else(|| DomainError::Internal("grace child has no sealed secret".into()))?;
                let bytes = self.sealer.open(sealed, &child.hash.0)?;
                let secret = RefreshSecret::from_bytes(bytes)
                    .ok_or_else(|| DomainError::Internal("sealed refresh secret has the wrong length".into()))?;
                if !self.secret_hash(secret.as_bytes()).ct_eq(&child.hash) {
                    return Err(DomainError::Internal("sealed refresh secret does not match its hash".into()));
                }
                let pair = match child.sealed_pair.as_deref() {
                    Some(sealed) => {
                        let (access, refresh) = self.open_pair(&child, sealed)?;
                        self.issued_pair(&session, &child, secret, access, refresh, now)
                    }
                    // rotated before answers were kept: rendered again (deterministic signatures
                    // give the same bytes; others a pair as valid)
                    None => self.pair(face, &session, &child, secret, now)?,
                };
                Ok(Some(Rotation::Done(pair, RefreshOutcome::ReissuedInGrace)))
            }
            (RotateOutcome::Refused { refusal: crate::RefreshRefusal::Unknown, .. }, _) => Ok(None),
            (RotateOutcome::Refused { refusal: crate::RefreshRefusal::NotRotated, .. }, _) => Ok(Some(Rotation::NotRotated)),
            (RotateOutcome::Refused { refusal, session, revoked }, _) => {
                for id in &revoked {
                    self.revocations.note_revoked(*id, now);
                }
                if !revoked.is_empty() {
                    let reason = match refusal {
                        crate::RefreshRefusal::Reused => "reuse_detected",
                        _ => "risk",
                    };
                    self.emit(Event::Revoked { reason, sessions: revoked.len() as u64 });
                }
                match (refusal, session) {
                    (crate::RefreshRefusal::Reused, Some(sid)) => {
                        tracing::warn!(session_id = %sid, "refresh token reuse detected; session revoked")
                    }
                    (crate::RefreshRefusal::RiskDenied(c) | crate::RefreshRefusal::RiskRevoked(c), Some(sid)) => {
                        tracing::warn!(session_id = %sid, condition = c.as_str(), revoked = revoked.len(), "a risk rule refused a refresh")
                    }
                    _ => {}
                }
                Err(AuthError::from(refusal).into())
            }
        }
    }

    /// `reuse`: the refresh token is checked, not consumed; a new access token of its session.
    pub(super) async fn reissue_access(
        &self,
        face: &Face,
        presented: &RefreshSecret,
        input: RefreshInput<'_>,
        now: OffsetDateTime,
    ) -> Result<IssuedAccess, DomainError> {
        let (_, session, _) = self.live_refresh(face, presented, input.client, now).await?;
        // as the rotation rule says: a bound session's refresh token needs its key
        if session.dpop_jkt.as_deref() != input.dpop_jkt {
            return Err(AuthError::DpopKeyMismatch.into());
        }
        let signals = assess(&face.risk, session.ip.as_deref(), session.user_agent.as_deref(), &input.request);
        let strict = signals.iter().find(|s| s.action == strictest(&signals)).map(|s| s.condition);
        match (strictest(&signals), strict) {
            (RiskAction::Deny, Some(c)) => return Err(AuthError::RiskRefused { condition: c, revoked: false }.into()),
            (RiskAction::RevokeFamily, Some(c)) => {
                self.revoke_session(session.id, session.user_id, c.as_str(), now).await?;
                return Err(AuthError::RiskRefused { condition: c, revoked: true }.into());
            }
            (RiskAction::RevokeUser, Some(c)) => {
                self.revoke_all(session.user_id, None, c.as_str(), now).await?;
                return Err(AuthError::RiskRefused { condition: c, revoked: true }.into());
            }
            _ => self.report(face, &session, &signals, now),
        }
        let jti = Uuid::new_v4();
        let access_token = face.format.render_access(&self.keyring, &face.audience, &session, jti, now)?;
        if self.note_session_use(session.id, session.user_id.route(), now) {
            // more held than a flush is meant to carry: written now, by this request
            if let Err(e) = self.flush_session_uses().await {
                tracing::warn!(error = %e, "recording session uses failed");
            }
        }
        Ok(IssuedAccess {
            access_token,
            access_jti: jti,
            expires_in: session.profile.access_ttl().whole_seconds(),
            session_id: session.id,
            user_id: session.user_id,
        })
    }

    pub(super) fn report(&self, face: &Face, session: &Session, signals: &[RiskSignal], now: OffsetDateTime) {
        let notify: Vec<RiskSignal> = signals.iter().filter(|s| s.action == RiskAction::Notify).cloned().collect();
        if notify.is_empty() {
            return;
        }
        for s in &notify {
            tracing::warn!(session_id = %session.id, condition = s.condition.as_str(), "refresh-time risk signal");
        }
        if let Some(n) = &self.notifier {
            n.notify(&face.name, session, &notify, now);
        }
    }

    /// A refresh token that is live at this face: known, the newest of its family, unexpired,
    /// its session live and of the face's audience, its user active (and its client, when the
    /// face has clients). Nothing is written.
    ///
    /// A token issued by a face that reuses refresh tokens is kept in memory once read (its record
    /// and session), and a check reads nothing: whether the session was revoked since is the
    /// revocation list's to say (every instance hears of a revocation), which is trusted for as
    /// long as it remembers (see [`RevocationList::remembers_for`]), at most a minute; the user
    /// is checked as `/v1/me` checks it (see [`Self::current_user`]). Nothing else changes such a
    /// token: a token lives by its issuing face's policy wherever it is presented, so it is never
    /// rotated, and its lifetime and its session's are fixed.
    pub(super) async fn live_refresh(
        &self,
        face: &Face,
        presented: &RefreshSecret,
        client: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(RefreshRecord, Session, User), DomainError> {
        let hash = self.secret_hash(presented.as_bytes());
        let (record, session, revoked) = match self.remembered(&hash, now) {
            Some(r) => (r.record.clone(), r.session.clone(), self.revocations.is_revoked(r.session.id)),
            None => {
                let (record, session) = self.find_refresh(presented, hash, now).await?.ok_or(AuthError::TokenInvalid)?;
                let revoked = session.is_revoked() || record.rotated_at.is_some();
                self.remember(hash, &record, &session, now);
                (record, session, revoked)
            }
        };
        if !self.faces.peers_of(face).contains(&session.face) {
            return Err(AuthError::WrongAudience.into());
        }
        if revoked {
            // the precise reason, read now: a blocked or deleted user's sessions are all revoked
            let user = self.store.user_by_id(session.user_id).await?.ok_or(AuthError::UnknownUser)?;
            if user.status == UserStatus::Blocked {
                return Err(AuthError::UserBlocked.into());
            }
            return Err(AuthError::TokenRevoked.into());
        }
        let user = self.active_user(session.user_id).await?;
        if client.is_some() && session.client_id.as_deref() != client {
            return Err(AuthError::WrongClient.into());
        }
        if record.expires_at <= now || session.expires_at <= now {
            return Err(AuthError::TokenExpired.into());
        }
        Ok((record, session, user))
    }

    /// A refresh token kept in memory, while it may be trusted at `now`.
    fn remembered(&self, hash: &TokenHash, now: OffsetDateTime) -> Option<Arc<Remembered>> {
        let trusted_for = self.revocations.remembers_for().min(MEMO_FRESH);
        self.refresh_memo.get(hash).filter(|r| r.read_at <= now && now - r.read_at < trusted_for)
    }

    /// Keeps a refresh token just read from the store, when it may be: live, and issued by a
    /// face that reuses refresh tokens (nothing rotates it anywhere), and the revocation list
    /// remembers (see [`RevocationList::remembers_for`]).
    fn remember(&self, hash: TokenHash, record: &RefreshRecord, session: &Session, now: OffsetDateTime) {
        let reused = self.faces.get(&session.face).is_some_and(|f| f.refresh == RefreshPolicy::Reuse);
        let live = !session.is_revoked() && record.rotated_at.is_none();
        if reused && live && self.revocations.remembers_for() > Duration::ZERO {
            let r = Remembered { record: record.clone(), session: session.clone(), read_at: now };
            self.refresh_memo.insert(hash, Arc::new(r));
        }
    }

    /// Writes the session uses held since the last call (see `reissue_access`), in one batch.
    pub async fn flush_session_uses(&self) -> Result<usize, DomainError> {
        let uses: Vec<(SessionId, Route, OffsetDateTime)> = match self.session_uses.lock() {
            Ok(mut m) => m.drain().map(|(id, (route, at))| (id, route, at)).collect(),
            Err(_) => return Ok(0),
        };
        self.store.record_session_uses(&uses).await?;
        Ok(uses.len())
    }

    /// Holds a session's use for [`Self::flush_session_uses`].
    fn note_session_use(&self, session: SessionId, route: Route, now: OffsetDateTime) -> bool {
        let Ok(mut m) = self.session_uses.lock() else { return false };
        let (_, at) = m.entry(session).or_insert((route, now));
        *at = (*at).max(now);
        m.len() >= SESSION_USES_HELD
    }

    /// Checks a refresh token of a face without using it (simplejwt's verify).
    pub async fn check_refresh(
        &self,
        face: &Face,
        presented: &str,
        now: OffsetDateTime,
    ) -> Result<(RefreshRecord, Session, User), DomainError> {
        let secret = self.presented_refresh(face, presented, now).await?;
        self.live_refresh(face, &secret, None, now).await
    }

    /// Drops the sealed secret of every refresh token whose grace window (the longest of any
    /// face) has passed: a secret is kept in the database only while it may be handed out again.
    pub async fn sweep_sealed_secrets(&self, now: OffsetDateTime) -> Result<u64, DomainError> {
        // kept for as long as a retry may still get it, widened windows included (see `failover`)
        let grace = self.faces.iter().map(|f| self.lost_answers.grace(f.grace, now)).max().unwrap_or(Duration::ZERO);
        Ok(self.store.drop_sealed_secrets(now - grace - Duration::seconds(1)).await?)
    }

    pub(super) fn prepare_refresh(&self, secret: &RefreshSecret) -> Result<NewRefresh, DomainError> {
        let hash = self.secret_hash(secret.as_bytes());
        let sealed_secret = self.sealer.seal(secret.as_bytes(), &hash.0)?;
        Ok(NewRefresh { hash, sealed_secret, access_jti: Uuid::new_v4() })
    }

    pub(super) fn pair(
        &self,
        face: &Face,
        session: &Session,
        record: &RefreshRecord,
        secret: RefreshSecret,
        now: OffsetDateTime,
    ) -> Result<IssuedPair, DomainError> {
        let (access_token, refresh_token) = self.render_pair(face, session, record, &secret)?;
        Ok(self.issued_pair(session, record, secret, access_token, refresh_token, now))
    }

    /// The access and refresh token of a record, as the face writes them.
    fn render_pair(
        &self,
        face: &Face,
        session: &Session,
        record: &RefreshRecord,
        secret: &RefreshSecret,
    ) -> Result<(String, String), DomainError> {
        let access_token = face.format.render_access(&self.keyring, &face.audience, session, record.access_jti, record.issued_at)?;
        let refresh_token = face.format.render_refresh(&self.keyring, &face.audience, session, record, secret)?;
        Ok((access_token, refresh_token))
    }

    /// A rendered pair, sealed for its record (see [`RefreshRecord::sealed_pair`]): the access
    /// token's length (4 bytes, little-endian), the access token, the refresh token.
    fn seal_pair(&self, record: &RefreshRecord, access: &str, refresh: &str) -> Result<Vec<u8>, DomainError> {
        let len = u32::try_from(access.len()).map_err(|_| DomainError::Internal("access token too long".into()))?;
        let mut plain = Vec::with_capacity(4 + access.len() + refresh.len());
        plain.extend_from_slice(&len.to_le_bytes());
        plain.extend_from_slice(access.as_bytes());
        plain.extend_from_slice(refresh.as_bytes());
        self.sealer.seal(&plain, &pair_aad(record))
    }

    /// [`Self::seal_pair`] undone.
    fn open_pair(&self, record: &RefreshRecord, sealed: &[u8]) -> Result<(String, String), DomainError> {
        let bad = || DomainError::Internal("a sealed pair does not open".into());
        let plain = self.sealer.open(sealed, &pair_aad(record))?;
        let (len, rest) = plain.split_first_chunk::<4>().ok_or_else(bad)?;
        let (access, refresh) = rest.split_at_checked(u32::from_le_bytes(*len) as usize).ok_or_else(bad)?;
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| bad());
        Ok((text(access)?, text(refresh)?))
    }

    /// An issued pair of a record from its two tokens.
    fn issued_pair(
        &self,
        session: &Session,
        record: &RefreshRecord,
        secret: RefreshSecret,
        access_token: String,
        refresh_token: String,
        now: OffsetDateTime,
    ) -> IssuedPair {
        let exp = record.issued_at.unix_timestamp() + session.profile.access_ttl().whole_seconds();
        IssuedPair {
            access_token,
            access_jti: record.access_jti,
            refresh_token,
            refresh_secret: secret,
            expires_in: (exp - now.unix_timestamp()).max(0),
            session_id: session.id,
            user_id: session.user_id,
            refresh_expires_at: record.expires_at,
        }
    }
}

/// What a rotation attempt came to, short of a refusal.
pub(super) enum Rotation {
    /// A new pair, or within the grace window the pair of the first rotation.
    Done(IssuedPair, RefreshOutcome),
    /// A token of a session opened by a face that reuses refresh tokens: nothing was changed,
    /// and the token is to be refreshed as that face refreshes.
    NotRotated,
}

/// What a sealed pair is bound to: its record, and that it is a pair (not the secret, which is
/// sealed for the record's hash alone).
fn pair_aad(record: &RefreshRecord) -> Vec<u8> {
    [b"pair:".as_slice(), record.hash.0.as_slice()].concat()
}
